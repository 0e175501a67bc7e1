//! The deal side's config keys of `[connectors.NAME]` with `kind = "hubspot"`: how deals are
//! polled (`outcome_poll_interval`, `outcomes_since`, `outcome_overlap`, `currency`), the deal
//! webhook (`webhook_secret`, `webhook_url`) and the deal properties attribution is written to
//! (`deal_fields`). Defaults and the checks serde can't make live here.

use std::time::Duration;

use secrecy::ExposeSecret;

use super::HubspotConfig;

/// The first poll reads this far back when `outcomes_since` is not set.
pub const DEFAULT_LOOKBACK: Duration = Duration::from_secs(30 * 86_400);
/// Polls faster than this would spend the search's 4/s on nothing.
const MIN_POLL_INTERVAL: Duration = Duration::from_millis(100);
/// An overlap beyond this re-reads a day of deals on every poll.
const MAX_OVERLAP: Duration = Duration::from_secs(86_400);

/// HubSpot's default deal properties (internal names, single-line or multi-line text).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HubspotDealFields;

impl crate::writeback::DealFieldDefaults for HubspotDealFields {
    const NAMES: [&'static str; 3] = [
        "tandem_first_touch",
        "tandem_last_touch",
        "tandem_attribution",
    ];
}

/// `deal_fields`: the deal properties tandem writes attribution to.
pub type DealFields = crate::writeback::DealFields<HubspotDealFields>;

/// `outcomes_since` as unix ms, when it is set and valid.
pub fn since_ms(raw: Option<&str>) -> Option<Result<i64, String>> {
    let raw = raw?;
    Some(
        raw.trim()
            .parse::<jiff::Timestamp>()
            .map(|t| t.as_millisecond())
            .map_err(|e| e.to_string()),
    )
}

/// The deal side's problems, as (key, message with a hint).
pub fn problems(c: &HubspotConfig, now_ms: i64) -> Vec<(String, String)> {
    let mut out = Vec::new();
    if c.outcome_poll_interval.0 < MIN_POLL_INTERVAL {
        out.push((
            "outcome_poll_interval".to_owned(),
            format!(
                "{} polls HubSpot's search faster than its 4 requests/s allow; write e.g. \"1m\" (at least \"100ms\")",
                c.outcome_poll_interval
            ),
        ));
    }
    match since_ms(c.outcomes_since.as_deref()) {
        Some(Err(reason)) => out.push((
            "outcomes_since".to_owned(),
            format!(
                "{:?} is not an RFC 3339 time ({reason}); write e.g. \"2026-01-01T00:00:00Z\"",
                c.outcomes_since.as_deref().unwrap_or_default()
            ),
        )),
        Some(Ok(ms)) if ms > now_ms => out.push((
            "outcomes_since".to_owned(),
            "is in the future, so no deal would be read until then; use a past time or leave it out (30 days back)".to_owned(),
        )),
        _ => {}
    }
    if c.outcome_overlap.0 > MAX_OVERLAP {
        out.push((
            "outcome_overlap".to_owned(),
            format!(
                "{} re-reads that much of every deal change on every poll; keep it at minutes (default \"2m\")",
                c.outcome_overlap
            ),
        ));
    }
    let cur = c.currency.trim();
    if cur.len() != 3 || !cur.bytes().all(|b| b.is_ascii_alphabetic()) {
        out.push((
            "currency".to_owned(),
            format!(
                "{:?} is not an ISO 4217 code; write the account's currency, e.g. \"USD\" or \"EUR\"",
                c.currency
            ),
        ));
    }
    let mut names = Vec::new();
    for (key, name) in c.deal_fields.named() {
        if name.trim().is_empty() || name.trim() != name || name.contains(char::is_whitespace) {
            out.push((
                format!("deal_fields.{key}"),
                format!(
                    "{name:?} is not a HubSpot property name; use the deal property's internal name, e.g. \"tandem_{key}\""
                ),
            ));
        } else if names.contains(&name) {
            out.push((
                format!("deal_fields.{key}"),
                format!(
                    "`{name}` is already used by another deal field; give each of first_touch, last_touch and attribution its own property"
                ),
            ));
        }
        names.push(name);
    }
    if let Some(secret) = &c.webhook_secret
        && secret.expose_secret().trim().is_empty()
    {
        out.push((
            "webhook_secret".to_owned(),
            "the webhook secret is empty; set it to the HubSpot app's client secret (the key HubSpot signs X-HubSpot-Signature-v3 with), or leave it out to rely on polling".to_owned(),
        ));
    }
    if let Some(url) = &c.webhook_url {
        let ok = reqwest::Url::parse(url.trim())
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some());
        if ok.is_none() {
            out.push((
                "webhook_url".to_owned(),
                format!(
                    "{url:?} is not a URL; write the target URL exactly as entered in the HubSpot app's webhook settings, e.g. \"https://tandem.example.com/hooks/hubspot\""
                ),
            ));
        } else if c.webhook_secret.is_none() {
            out.push((
                "webhook_url".to_owned(),
                "webhook_url is only used to check signed deal webhooks; set webhook_secret too, or remove it".to_owned(),
            ));
        }
    }
    out
}
