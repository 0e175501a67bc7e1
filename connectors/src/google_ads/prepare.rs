//! One [`Conversion`] → what both Google APIs need to send it, or the reason it can't go: the
//! conversion action of its milestone, one click id (gclid, else gbraid, else wbraid — Google
//! takes one), hashed email/phone, the value in major units, and the time-window rules.
//!
//! Time windows (decided; see docs/writeback/google_ads.md):
//! - a conversion reported more than 90 days after it happened is refused (Google's longest
//!   click-through window is 90 days, so no click can still be attributed);
//! - a click id whose click is more than 90 days before the conversion, or after it, is dropped
//!   (Google would answer `EXPIRED_EVENT` / `CONVERSION_PRECEDES_EVENT`); the email and phone
//!   still go;
//! - a conversion stamped more than 10 minutes in the future is refused (a CRM clock problem);
//!   one within that skew is sent as "now".
//!
//! A refused conversion is that item's `Permanent` and is never sent: Google's Data Manager API
//! fails a whole request for one bad event.

use std::collections::BTreeMap;

use crate::{
    outcome::currency_exponent,
    writeback::{Conversion, Milestone, WritebackAction},
};

use super::identity;

/// Google's longest click-through conversion window.
pub const MAX_AGE_MS: i64 = 90 * 86_400_000;
/// Clock skew tolerated on a conversion time ahead of ours.
pub const FUTURE_SKEW_MS: i64 = 10 * 60_000;

/// The one click id sent with a conversion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClickId {
    Gclid(String),
    Gbraid(String),
    Wbraid(String),
}

impl ClickId {
    pub fn kind(&self) -> &'static str {
        match self {
            ClickId::Gclid(_) => "gclid",
            ClickId::Gbraid(_) => "gbraid",
            ClickId::Wbraid(_) => "wbraid",
        }
    }

    pub fn value(&self) -> &str {
        match self {
            ClickId::Gclid(v) | ClickId::Gbraid(v) | ClickId::Wbraid(v) => v,
        }
    }
}

/// A conversion ready for either API.
#[derive(Debug, Clone)]
pub struct Prepared<'a> {
    /// Position in the batch, for the result.
    pub index: usize,
    pub conversion: &'a Conversion,
    /// The conversion action id (digits).
    pub action_id: String,
    pub click: Option<ClickId>,
    pub hashed_email: Option<String>,
    pub hashed_phone: Option<String>,
    /// Major units of `currency`.
    pub value: Option<f64>,
    pub currency: Option<String>,
    /// When it happened, Unix ms (never later than now).
    pub at_ms: i64,
}

impl Prepared<'_> {
    pub fn has_identifier(&self) -> bool {
        self.click.is_some() || self.hashed_email.is_some() || self.hashed_phone.is_some()
    }

    /// The match keys, as the sandbox's `received()` names them.
    pub fn identifier_names(&self) -> Vec<&'static str> {
        let mut names = Vec::new();
        names.extend(self.click.as_ref().map(ClickId::kind));
        if self.hashed_email.is_some() {
            names.push("hashed_email");
        }
        if self.hashed_phone.is_some() {
            names.push("hashed_phone");
        }
        names
    }
}

fn days(ms: i64) -> i64 {
    ms / 86_400_000
}

fn non_empty(v: &Option<String>) -> Option<String> {
    v.as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

/// The click id Google can still attribute `c` to, if any.
fn usable_click(c: &Conversion, at_ms: i64) -> Option<ClickId> {
    let click = non_empty(&c.clicks.gclid)
        .map(ClickId::Gclid)
        .or_else(|| non_empty(&c.clicks.gbraid).map(ClickId::Gbraid))
        .or_else(|| non_empty(&c.clicks.wbraid).map(ClickId::Wbraid))?;
    match c.clicks.google_click_at_ms {
        // The click came after the milestone: it can't have produced it.
        Some(clicked) if clicked > at_ms + FUTURE_SKEW_MS => None,
        Some(clicked) if at_ms - clicked > MAX_AGE_MS => None,
        _ => Some(click),
    }
}

/// Major units of a minor-unit amount (`150050` USD → `1500.5`).
pub fn major_units(value_minor: i64, currency: Option<&str>) -> f64 {
    let exp = currency.map_or(2, currency_exponent);
    value_minor as f64 / 10f64.powi(exp as i32)
}

/// Checks and maps one conversion. `needs_identifier`: the request must carry a click id or a
/// hashed identifier (every Data Manager event, and legacy sends; legacy adjustments find the
/// conversion by order id instead).
pub fn prepare<'a>(
    index: usize,
    c: &'a Conversion,
    actions: &BTreeMap<Milestone, String>,
    now_ms: i64,
    needs_identifier: bool,
) -> Result<Prepared<'a>, String> {
    let Some(action_id) = actions.get(&c.milestone) else {
        return Err(format!(
            "no Google conversion action is configured for the `{m}` milestone; add `{m} = \"<conversion action id>\"` to conversion_actions",
            m = c.milestone.name()
        ));
    };
    if c.occurred_at_ms > now_ms + FUTURE_SKEW_MS {
        return Err(format!(
            "the {} milestone is stamped {} minutes in the future; Google refuses future conversions (check the CRM's clock) — not sent",
            c.milestone.name(),
            (c.occurred_at_ms - now_ms) / 60_000
        ));
    }
    let at_ms = c.occurred_at_ms.min(now_ms);
    if c.action == WritebackAction::Send && now_ms - at_ms > MAX_AGE_MS {
        return Err(format!(
            "the {} milestone was reached {} days ago; Google attributes offline conversions only within its 90-day click-through window — not sent",
            c.milestone.name(),
            days(now_ms - at_ms)
        ));
    }
    let p = Prepared {
        index,
        conversion: c,
        action_id: action_id.clone(),
        click: usable_click(c, at_ms),
        hashed_email: c.person.email.as_deref().and_then(identity::hashed_email),
        hashed_phone: c.person.phone.as_deref().and_then(identity::hashed_phone),
        value: c.value_minor.map(|v| major_units(v, c.currency.as_deref())),
        currency: non_empty(&c.currency).map(|s| s.to_ascii_uppercase()),
        at_ms,
    };
    if needs_identifier && !p.has_identifier() {
        return Err(
            "nothing Google can match this conversion on: no gclid/gbraid/wbraid from a click within 90 days before it, and no email or phone — not sent"
                .to_owned(),
        );
    }
    Ok(p)
}

/// `2026-03-01T12:00:00Z` (Data Manager `eventTimestamp`, RFC 3339, whole seconds, UTC).
pub fn rfc3339(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms)
        .map(|t| t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_else(|_| "1970-01-01T00:00:00Z".to_owned())
}

/// `2026-03-01 12:00:00+00:00` (Google Ads API `conversionDateTime`).
pub fn google_ads_time(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms)
        .map(|t| t.strftime("%Y-%m-%d %H:%M:%S+00:00").to_string())
        .unwrap_or_else(|_| "1970-01-01 00:00:00+00:00".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::writeback::{ClickIds, ConversionPerson};

    const NOW: i64 = 1_790_000_000_000;
    const DAY: i64 = 86_400_000;

    fn conversion(clicks: ClickIds, person: ConversionPerson, at: i64) -> Conversion {
        Conversion {
            delivery_id: 1,
            key: "hubspot:42:won".into(),
            request_key: "hubspot:42:won".into(),
            action: WritebackAction::Send,
            milestone: Milestone::Won,
            crm: "hubspot".into(),
            crm_kind: "hubspot".into(),
            deal_id: "42".into(),
            occurred_at_ms: at,
            value_minor: Some(150_050),
            currency: Some("usd".into()),
            person,
            clicks,
            attribution: Default::default(),
        }
    }

    fn actions() -> BTreeMap<Milestone, String> {
        BTreeMap::from([(Milestone::Won, "987654".to_owned())])
    }

    #[test]
    fn gclid_wins_over_braids_and_stale_clicks_are_dropped() {
        let clicks = ClickIds {
            gclid: Some("G".into()),
            gbraid: Some("B".into()),
            wbraid: Some("W".into()),
            google_click_at_ms: Some(NOW - 5 * DAY),
            ..Default::default()
        };
        let c = conversion(clicks.clone(), Default::default(), NOW - DAY);
        let p = prepare(0, &c, &actions(), NOW, true).unwrap();
        assert_eq!(p.click, Some(ClickId::Gclid("G".into())));
        assert_eq!(p.value, Some(1500.5));
        assert_eq!(p.currency.as_deref(), Some("USD"));
        let braids = ClickIds {
            gclid: Some(" ".into()),
            ..clicks.clone()
        };
        let c = conversion(braids, Default::default(), NOW - DAY);
        assert_eq!(
            prepare(0, &c, &actions(), NOW, true).unwrap().click,
            Some(ClickId::Gbraid("B".into()))
        );
        // Clicked after the milestone, or 91 days before it: not attributable.
        for clicked in [NOW, NOW - DAY - 91 * DAY] {
            let late = ClickIds {
                google_click_at_ms: Some(clicked),
                ..clicks.clone()
            };
            let c = conversion(late, Default::default(), NOW - DAY);
            let err = prepare(0, &c, &actions(), NOW, true).unwrap_err();
            assert!(err.contains("nothing Google can match"), "{err}");
        }
    }

    #[test]
    fn time_window_and_missing_action_are_reasons_not_sends() {
        let person = ConversionPerson {
            email: Some("a@example.com".into()),
            ..Default::default()
        };
        let old = conversion(Default::default(), person.clone(), NOW - 91 * DAY);
        let err = prepare(0, &old, &actions(), NOW, true).unwrap_err();
        assert!(
            err.contains("91 days ago") && err.contains("not sent"),
            "{err}"
        );
        let future = conversion(Default::default(), person.clone(), NOW + 3_600_000);
        assert!(
            prepare(0, &future, &actions(), NOW, true)
                .unwrap_err()
                .contains("future")
        );
        let skewed = conversion(Default::default(), person.clone(), NOW + 60_000);
        assert_eq!(
            prepare(0, &skewed, &actions(), NOW, true).unwrap().at_ms,
            NOW
        );
        let mut lost = conversion(Default::default(), person, NOW);
        lost.milestone = Milestone::Lost;
        assert!(
            prepare(0, &lost, &actions(), NOW, true)
                .unwrap_err()
                .contains("`lost = \"<conversion action id>\"`")
        );
    }

    #[test]
    fn times_are_formatted_for_each_api() {
        assert_eq!(rfc3339(1_772_366_400_000), "2026-03-01T12:00:00Z");
        assert_eq!(
            google_ads_time(1_772_366_400_999),
            "2026-03-01 12:00:00+00:00"
        );
        assert_eq!(major_units(1500, Some("JPY")), 1500.0);
        assert_eq!(major_units(1235, Some("KWD")), 1.235);
    }
}
