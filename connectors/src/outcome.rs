//! The CRM → tandem direction: deals (opportunities) as the CRM reports them, read by cursor.
//!
//! An [`OutcomeSource`] answers "which deals changed since this cursor", each with the people
//! associated with it, so the daemon can keep every stage change as history, link the deal to the
//! leads that produced it, and decide which conversions to write back. Cursors overlap on purpose
//! (equal timestamps, late writes): the daemon treats a deal it has already seen in the same state
//! as a no-op, so re-reading is always safe and skipping never is.
//!
//! CRM webhooks (HubSpot v3, Pipedrive) are an [`OutcomeWebhook`]: verified, then used as a
//! wake-up for the poll. The poll stays the one source of truth, so a lost, forged or replayed
//! notification can cost latency but never correctness.

use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::sink::{CallError, RateLimit};
use crate::source::{PresetError, PresetRequest};

/// The CRM's own verdict on a deal (HubSpot `hs_is_closed_won`, Salesforce `IsWon`/`IsClosed`,
/// Pipedrive `status`, Zoho's closed stages). Milestone mapping in the config may refine it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DealState {
    Open,
    Won,
    Lost,
}

/// One person associated with a deal, as the CRM knows them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DealContact {
    /// The CRM's id of the person (HubSpot contact id, Salesforce Contact/Lead id, Pipedrive
    /// person id, Zoho Contact id): matched against the ids tandem's deliveries got back.
    pub remote_id: String,
    /// The person's email when the CRM returned it with the association (a fallback match).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
}

/// A deal as the CRM reports it now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outcome {
    /// The CRM's deal / opportunity id.
    pub deal_id: String,
    /// Pipeline id, for CRMs that have several (HubSpot, Pipedrive); `None` otherwise.
    pub pipeline: Option<String>,
    /// Stage id (HubSpot `dealstage`, Salesforce `StageName`, Pipedrive `stage_id`, Zoho `Stage`).
    pub stage: String,
    pub state: DealState,
    /// Amount in integer minor units of `currency` (see [`to_minor_units`]); `None` when unset.
    pub amount_minor: Option<i64>,
    /// ISO 4217 code; the account currency when the deal has none of its own.
    pub currency: Option<String>,
    /// Unix ms.
    pub created_at_ms: i64,
    /// Unix ms; the CRM's close date for won/lost deals, when it has one.
    pub closed_at_ms: Option<i64>,
    /// Unix ms of the last change: the cursor field (`hs_lastmodifieddate`, `SystemModstamp`,
    /// `update_time`, `Modified_Time`).
    pub modified_at_ms: i64,
    /// The deal's people (HubSpot deal→contact associations, Salesforce OpportunityContactRoles,
    /// Pipedrive `person_id` and participants, Zoho `Contact_Name`).
    pub contacts: Vec<DealContact>,
}

/// One poll's result.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OutcomePage {
    pub outcomes: Vec<Outcome>,
    /// Committed together with the outcomes, in one transaction.
    pub next_cursor: String,
    /// More pages are waiting now: poll again at once.
    pub more: bool,
}

/// A CRM tandem reads deal outcomes from.
#[async_trait]
pub trait OutcomeSource: Send + Sync {
    /// How often to poll when nothing more is waiting.
    fn interval(&self) -> Duration;
    /// The limit the daemon paces this source's polls with (HubSpot's search limit, …).
    fn rate_limit(&self) -> RateLimit;
    /// Deals changed since `cursor` (`None`: the first poll, from the configured start), with
    /// their people.
    async fn poll_outcomes(&self, cursor: Option<&str>) -> Result<OutcomePage, CallError>;
    /// The CRM's change notifications, when it has them and they are configured.
    fn outcome_webhook(&self) -> Option<Box<dyn OutcomeWebhook>> {
        None
    }
}

/// A CRM's deal-change webhook: authenticated, then a wake-up for the poll.
pub trait OutcomeWebhook: Send + Sync {
    /// Authenticity (signature and timestamp window, or Basic auth) on the raw request, then the
    /// number of deal events it announces (0 = nothing about deals: answer 200, don't poll).
    fn verify(&self, req: &PresetRequest<'_>) -> Result<usize, PresetError>;
}

/// `outcome_poll_interval`'s default, for every CRM.
pub fn default_poll_interval() -> crate::units::HumanDuration {
    crate::units::HumanDuration(Duration::from_secs(60))
}

/// `outcome_overlap`'s default (the re-read window for late writes), for every CRM.
pub fn default_overlap() -> crate::units::HumanDuration {
    crate::units::HumanDuration(Duration::from_secs(120))
}

/// `currency`'s default (for deals without one of their own), for every CRM.
pub fn default_currency() -> String {
    "USD".to_owned()
}

/// The close instant of a CRM that only keeps a close *date* (Salesforce `CloseDate`, Zoho
/// `Closing_Date`): the end of that day (UTC), but never later than the deal's last change (the
/// end of its second: both CRMs stamp changes to the second). A deal closed today and read now
/// closes "now", so today's touchpoints and clicks count and the conversion never precedes the
/// click; a deal read long after its close date closes at the end of that day.
pub fn close_instant_of_date(date_midnight_ms: i64, modified_at_ms: i64) -> i64 {
    const DAY_MS: i64 = 86_400_000;
    date_midnight_ms
        .saturating_add(DAY_MS - 1)
        .min(modified_at_ms.saturating_add(999).max(date_midnight_ms))
}

/// Minor units per major unit for an ISO 4217 code (JPY 0, KWD 3, most 2).
pub fn currency_exponent(currency: &str) -> u32 {
    match currency.to_ascii_uppercase().as_str() {
        "BIF" | "CLP" | "DJF" | "GNF" | "ISK" | "JPY" | "KMF" | "KRW" | "PYG" | "RWF" | "UGX"
        | "UYI" | "VND" | "VUV" | "XAF" | "XOF" | "XPF" => 0,
        "BHD" | "IQD" | "JOD" | "KWD" | "LYD" | "OMR" | "TND" => 3,
        _ => 2,
    }
}

/// A decimal amount as a CRM returns it ("1500", "1500.5", "-12.345", 1500.5 as JSON text) in
/// integer minor units of `currency`, rounded half away from zero. `None` for text that is not a
/// plain decimal or does not fit an i64.
pub fn to_minor_units(amount: &str, currency: &str) -> Option<i64> {
    let text = amount.trim();
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
    if whole.is_empty() && fraction.is_empty()
        || !whole.bytes().all(|b| b.is_ascii_digit())
        || !fraction.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let exp = currency_exponent(currency) as usize;
    let mut minor: i128 = 0;
    for b in whole.bytes() {
        minor = minor.checked_mul(10)?.checked_add(i128::from(b - b'0'))?;
        if minor > i128::from(i64::MAX) * 10 {
            return None;
        }
    }
    let frac = fraction.as_bytes();
    for i in 0..exp {
        let d = frac.get(i).map_or(0, |b| b - b'0');
        minor = minor * 10 + i128::from(d);
    }
    if frac.get(exp).is_some_and(|b| *b >= b'5') {
        minor += 1;
    }
    let minor = if negative { -minor } else { minor };
    i64::try_from(minor).ok()
}

/// Minor units back to the decimal text vendors take ("1500.00", "12", "-0.05").
pub fn minor_units_text(amount_minor: i64, currency: &str) -> String {
    let exp = currency_exponent(currency);
    if exp == 0 {
        return amount_minor.to_string();
    }
    let scale = 10u64.pow(exp);
    let abs = amount_minor.unsigned_abs();
    let sign = if amount_minor < 0 { "-" } else { "" };
    format!(
        "{sign}{}.{:0width$}",
        abs / scale,
        abs % scale,
        width = exp as usize
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_close_date_closes_at_the_end_of_its_day_or_at_the_last_change() {
        let day = 1_795_564_800_000; // midnight UTC
        assert_eq!(close_instant_of_date(day, day + 3_600_000), day + 3_600_999);
        assert_eq!(
            close_instant_of_date(day, day + 5 * 86_400_000),
            day + 86_399_999
        );
        // A close date after the last change (an expected date kept on a won deal): the date.
        assert_eq!(close_instant_of_date(day, day - 5_000), day);
    }

    #[test]
    fn amounts_become_exact_minor_units_per_currency() {
        assert_eq!(to_minor_units("1500", "EUR"), Some(150_000));
        assert_eq!(to_minor_units("1500.5", "USD"), Some(150_050));
        assert_eq!(to_minor_units("0.005", "USD"), Some(1));
        assert_eq!(to_minor_units("-12.345", "USD"), Some(-1235));
        assert_eq!(to_minor_units("1500", "JPY"), Some(1500));
        assert_eq!(to_minor_units("1.2345", "KWD"), Some(1235));
        assert_eq!(to_minor_units(".5", "EUR"), Some(50));
        assert_eq!(to_minor_units("", "EUR"), None);
        assert_eq!(to_minor_units("1e3", "EUR"), None);
        assert_eq!(to_minor_units("12,5", "EUR"), None);
        assert_eq!(to_minor_units("99999999999999999999999", "EUR"), None);
        assert_eq!(minor_units_text(150_050, "usd"), "1500.50");
        assert_eq!(minor_units_text(-5, "EUR"), "-0.05");
        assert_eq!(minor_units_text(1500, "JPY"), "1500");
        assert_eq!(minor_units_text(1235, "KWD"), "1.235");
    }
}
