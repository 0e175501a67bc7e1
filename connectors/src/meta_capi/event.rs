//! One [`Conversion`] → one Conversions API event, as Meta's CRM / Conversion Leads spec asks:
//! `action_source: "system_generated"`, the CRM stage as `event_name`, `event_time` in Unix
//! seconds, `event_id` = the conversion's dedup key (Meta dedups on `event_id` + `event_name`, so
//! a resend after a crash counts once), `user_data.lead_id` unhashed, hashed `em`/`ph`/`fn`/`ln`/
//! `country`, `fbc` unhashed, and `custom_data {event_source: "crm", lead_event_source, value,
//! currency}`.
//!
//! Conversions Meta would refuse are refused here, each with its reason, and never sent: Meta
//! fails a whole request when a single event in it is older than 7 days, so one stale event must
//! not travel with the others.

use serde_json::{Map, Number, Value, json};

use crate::{
    outcome::currency_exponent,
    writeback::{Conversion, WritebackAction},
};

use super::{EventNames, MAX_EVENT_AGE, normalize};

/// Events this close to Meta's 7-day limit are refused too: the request takes a moment to
/// arrive, and an event that turns stale on the way fails every event sent with it.
pub const STALE_MARGIN_MS: i64 = 10 * 60 * 1000;

/// The CRM's product name for `custom_data.lead_event_source` ("HubSpot", …); an unknown kind is
/// passed on as written.
pub fn crm_product_name(kind: &str) -> String {
    match kind.trim().to_ascii_lowercase().as_str() {
        "hubspot" => "HubSpot".to_owned(),
        "salesforce" => "Salesforce".to_owned(),
        "pipedrive" => "Pipedrive".to_owned(),
        "zoho" => "Zoho CRM".to_owned(),
        _ => kind.trim().to_owned(),
    }
}

/// A deal amount as the JSON number `custom_data.value` takes, in major units: `150050` USD →
/// `1500.5`, `150000` USD → `1500`, `1500` JPY → `1500`.
pub fn value_number(amount_minor: i64, currency: &str) -> Option<Number> {
    let scale = 10i64.checked_pow(currency_exponent(currency))?;
    if amount_minor % scale == 0 {
        return Some(Number::from(amount_minor / scale));
    }
    Number::from_f64(amount_minor as f64 / scale as f64)
}

/// `lead_id` as Meta takes it: a number when it is all digits (Meta's lead ids are 15–16
/// digits, well inside a u64), else the text as given.
fn lead_id(raw: &str) -> Option<Value> {
    let id = raw.trim();
    if id.is_empty() || id.len() > 64 {
        return None;
    }
    if id.bytes().all(|b| b.is_ascii_digit())
        && let Ok(n) = id.parse::<u64>()
    {
        return Some(Value::from(n));
    }
    Some(Value::from(id))
}

fn iso(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms)
        .map(|t| t.to_string())
        .unwrap_or_else(|_| format!("{ms} ms"))
}

/// The event for `c`, or why it is not sent (the item's `Permanent` message). `source_name`
/// overrides the CRM's product name in `lead_event_source`.
pub fn build(
    c: &Conversion,
    names: &EventNames,
    source_name: Option<&str>,
    now_ms: i64,
) -> Result<Value, String> {
    if c.action != WritebackAction::Send {
        return Err(
            "Meta's Conversions API has no way to retract or restate an event it received; nothing was sent"
                .to_owned(),
        );
    }
    let Some(event_name) = names.get(c.milestone) else {
        return Err(format!(
            "no event name is configured for the {} milestone (event_names.{})",
            c.milestone.name(),
            c.milestone.name()
        ));
    };
    let limit_ms = i64::try_from(MAX_EVENT_AGE.as_millis()).unwrap_or(i64::MAX);
    if now_ms.saturating_sub(c.occurred_at_ms) > limit_ms - STALE_MARGIN_MS {
        return Err(format!(
            "the {} milestone was reached at {}, more than 7 days ago; Meta's Conversions API refuses events older than 7 days (one would fail the whole request), so it was not sent",
            c.milestone.name(),
            iso(c.occurred_at_ms)
        ));
    }
    // A CRM clock slightly ahead of ours must not make Meta see an event from the future.
    let event_time = c.occurred_at_ms.min(now_ms).div_euclid(1000);

    let mut user = Map::new();
    if let Some(id) = c.clicks.meta_lead_id.as_deref().and_then(lead_id) {
        user.insert("lead_id".into(), id);
    }
    let person = &c.person;
    let hashed = [
        ("em", person.email.as_deref().and_then(normalize::email)),
        ("ph", person.phone.as_deref().and_then(normalize::phone)),
    ];
    for (key, hash) in hashed {
        if let Some(h) = hash {
            user.insert(key.into(), json!([h]));
        }
    }
    if let Some(fbc) = c
        .clicks
        .fbc
        .as_deref()
        .map(str::trim)
        .filter(|f| !f.is_empty())
    {
        user.insert("fbc".into(), Value::from(fbc));
    }
    if user.is_empty() {
        return Err(
            "nothing Meta can match this person on: no Meta lead id, email, phone or fbc click id; nothing was sent"
                .to_owned(),
        );
    }
    // Names and country only sharpen a match; they never make one on their own.
    let extra = [
        ("fn", person.first_name.as_deref().and_then(normalize::name)),
        ("ln", person.last_name.as_deref().and_then(normalize::name)),
        (
            "country",
            person.country.as_deref().and_then(normalize::country),
        ),
    ];
    for (key, hash) in extra {
        if let Some(h) = hash {
            user.insert(key.into(), json!([h]));
        }
    }

    let mut custom = Map::new();
    custom.insert("event_source".into(), Value::from("crm"));
    let source = source_name
        .map(str::trim)
        .map(str::to_owned)
        .unwrap_or_else(|| crm_product_name(&c.crm_kind));
    custom.insert("lead_event_source".into(), Value::from(source));
    // A value needs its currency; a negative amount (a credit note) is no conversion value.
    if let (Some(v), Some(cur)) = (c.value_minor, c.currency.as_deref())
        && v >= 0
        && let Some(n) = value_number(v, cur)
    {
        custom.insert("value".into(), Value::Number(n));
        custom.insert(
            "currency".into(),
            Value::from(cur.trim().to_ascii_uppercase()),
        );
    }

    Ok(json!({
        "event_name": event_name,
        "event_time": event_time,
        "action_source": "system_generated",
        "event_id": c.key,
        "user_data": user,
        "custom_data": custom,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::writeback::{ClickIds, ConversionPerson, Milestone};

    const NOW: i64 = 1_780_000_000_000;

    fn conversion() -> Conversion {
        Conversion {
            delivery_id: 1,
            key: "hubspot:42:won".into(),
            request_key: "hubspot:42:won".into(),
            action: WritebackAction::Send,
            milestone: Milestone::Won,
            crm: "crm".into(),
            crm_kind: "hubspot".into(),
            deal_id: "42".into(),
            occurred_at_ms: NOW - 3_600_000,
            value_minor: Some(150_050),
            currency: Some("usd".into()),
            person: ConversionPerson {
                email: Some("jane@example.com".into()),
                phone: Some("+15551234567".into()),
                first_name: Some("Jane".into()),
                ..Default::default()
            },
            clicks: ClickIds {
                meta_lead_id: Some("1234567890123456".into()),
                ..Default::default()
            },
            attribution: Default::default(),
        }
    }

    #[test]
    fn an_event_follows_the_conversion_leads_spec() {
        let e = build(&conversion(), &EventNames::default(), None, NOW).unwrap();
        assert_eq!(e["event_name"], "Converted");
        assert_eq!(e["event_time"], (NOW - 3_600_000) / 1000);
        assert_eq!(e["action_source"], "system_generated");
        assert_eq!(e["event_id"], "hubspot:42:won");
        assert_eq!(e["user_data"]["lead_id"], json!(1_234_567_890_123_456u64));
        // sha256("15551234567") and sha256("jane"), computed outside this code.
        assert_eq!(
            e["user_data"]["ph"],
            json!(["d6736136ea896c1bfdc553e0e86e702c70d060d805696ca3e4e9e0961353860a"])
        );
        assert_eq!(
            e["user_data"]["fn"],
            json!(["81f8f6dde88365f3928796ec7aa53f72820b06db8664f5fe76a7eb13e24546a2"])
        );
        assert_eq!(
            e["custom_data"],
            json!({"event_source": "crm", "lead_event_source": "HubSpot", "value": 1500.5, "currency": "USD"})
        );
        let e = build(&conversion(), &EventNames::default(), Some("Acme CRM"), NOW).unwrap();
        assert_eq!(e["custom_data"]["lead_event_source"], "Acme CRM");
    }

    #[test]
    fn values_are_major_units_and_lead_ids_numbers_when_digits() {
        assert_eq!(value_number(150_000, "EUR"), Some(Number::from(1500)));
        assert_eq!(value_number(1500, "JPY"), Some(Number::from(1500)));
        assert_eq!(
            value_number(1235, "KWD").map(|n| n.to_string()).as_deref(),
            Some("1.235")
        );
        assert_eq!(lead_id(" 444444444 "), Some(json!(444_444_444u64)));
        assert_eq!(lead_id("l:123"), Some(json!("l:123")));
        assert_eq!(lead_id(""), None);
        assert_eq!(crm_product_name("zoho"), "Zoho CRM");
        assert_eq!(crm_product_name("odoo"), "odoo");
    }

    #[test]
    fn stale_unmatchable_and_adjustments_are_refused_with_a_reason() {
        let names = EventNames::default();
        let mut c = conversion();
        c.occurred_at_ms = NOW - 7 * 86_400_000 + STALE_MARGIN_MS / 2;
        assert!(
            build(&c, &names, None, NOW)
                .unwrap_err()
                .contains("more than 7 days ago")
        );
        c.occurred_at_ms = NOW - 7 * 86_400_000 + 2 * STALE_MARGIN_MS;
        assert!(build(&c, &names, None, NOW).is_ok());
        // A CRM clock ahead of ours: the event is stamped now.
        c.occurred_at_ms = NOW + 5_000;
        assert_eq!(
            build(&c, &names, None, NOW).unwrap()["event_time"],
            NOW / 1000
        );

        let mut c = conversion();
        c.clicks = ClickIds::default();
        c.person = ConversionPerson {
            first_name: Some("Jane".into()),
            country: Some("US".into()),
            ..Default::default()
        };
        let why = build(&c, &names, None, NOW).unwrap_err();
        assert!(why.contains("nothing Meta can match"), "{why}");
        c.clicks.fbc = Some("fb.1.1700000000000.AbCd".into());
        let e = build(&c, &names, None, NOW).unwrap();
        assert_eq!(e["user_data"]["fbc"], "fb.1.1700000000000.AbCd");
        assert!(e["user_data"].get("lead_id").is_none());

        let mut c = conversion();
        c.action = WritebackAction::Retract;
        assert!(
            build(&c, &names, None, NOW)
                .unwrap_err()
                .contains("retract")
        );
        let mut c = conversion();
        c.milestone = Milestone::Lost;
        assert!(
            build(&c, &names, None, NOW)
                .unwrap_err()
                .contains("event_names.lost")
        );
        let mut c = conversion();
        c.value_minor = Some(-500);
        let e = build(&c, &names, None, NOW).unwrap();
        assert!(
            e["custom_data"].get("value").is_none() && e["custom_data"].get("currency").is_none()
        );
    }
}
