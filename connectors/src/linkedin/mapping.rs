//! One [`Conversion`] → one LinkedIn conversion event, or the reason it can't go (that item's
//! `Permanent`, never sent):
//!
//! - only sends: LinkedIn's Conversions API has no restatement or retraction;
//! - the milestone must map to a conversion rule;
//! - LinkedIn takes events up to 90 days old, and none from the future (10 minutes of clock
//!   skew are sent as "now");
//! - match keys: `SHA256_EMAIL` (SHA-256 of the trimmed, lowercased email) and the `li_fat_id`
//!   click id as `LINKEDIN_FIRST_PARTY_ADS_TRACKING_UUID`; with neither, LinkedIn can't match;
//! - a person whose latest lead declined consent is not sent: LinkedIn's API has no field to
//!   carry the refusal, so withholding the event is the only way to honour it;
//! - `eventId` = the conversion's dedup key (LinkedIn deduplicates on it); the value goes as
//!   `{"currencyCode", "amount"}` decimal text, only when both amount and currency are known.

use std::collections::BTreeMap;

use crate::{
    outcome::minor_units_text,
    writeback::{Conversion, Milestone, WritebackAction, sha256_hex},
};

use super::wire::{ConversionEvent, FIRST_PARTY_TRACKING, Money, SHA256_EMAIL, User, UserId};

/// LinkedIn's oldest accepted conversion.
pub const MAX_AGE_MS: i64 = 90 * 86_400_000;
/// Clock skew tolerated on a conversion time ahead of ours.
pub const FUTURE_SKEW_MS: i64 = 10 * 60_000;

pub const NO_ADJUSTMENTS: &str = "LinkedIn's Conversions API can't restate or retract a conversion; change it in Campaign Manager if it matters";

fn non_empty(v: &Option<String>) -> Option<&str> {
    v.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

/// The event for `c`, or why it is not sent.
pub fn event(
    c: &Conversion,
    rules: &BTreeMap<Milestone, String>,
    now_ms: i64,
) -> Result<ConversionEvent, String> {
    if c.action != WritebackAction::Send {
        return Err(NO_ADJUSTMENTS.to_owned());
    }
    let Some(rule) = rules.get(&c.milestone) else {
        return Err(format!(
            "no LinkedIn conversion rule is configured for the `{m}` milestone; add `{m} = \"urn:lla:llaPartnerConversion:<id>\"` to conversions",
            m = c.milestone.name()
        ));
    };
    if c.occurred_at_ms > now_ms + FUTURE_SKEW_MS {
        return Err(format!(
            "the {} milestone is stamped {} minutes in the future; LinkedIn refuses future conversions (check the CRM's clock) — not sent",
            c.milestone.name(),
            (c.occurred_at_ms - now_ms) / 60_000
        ));
    }
    let at_ms = c.occurred_at_ms.min(now_ms);
    if now_ms - at_ms > MAX_AGE_MS {
        return Err(format!(
            "the {} milestone was reached {} days ago; LinkedIn accepts conversions up to 90 days old — not sent",
            c.milestone.name(),
            (now_ms - at_ms) / 86_400_000
        ));
    }
    if c.person.consent == Some(false) {
        return Err(
            "the person's latest lead declined consent, and LinkedIn's API can't carry a refusal — not sent"
                .to_owned(),
        );
    }
    let mut user_ids = Vec::new();
    if let Some(email) = non_empty(&c.person.email) {
        user_ids.push(UserId {
            id_type: SHA256_EMAIL.to_owned(),
            id_value: sha256_hex(&email.to_lowercase()),
        });
    }
    if let Some(li_fat_id) = non_empty(&c.clicks.li_fat_id) {
        user_ids.push(UserId {
            id_type: FIRST_PARTY_TRACKING.to_owned(),
            id_value: li_fat_id.to_owned(),
        });
    }
    if user_ids.is_empty() {
        return Err(
            "nothing LinkedIn can match this conversion on: no email and no li_fat_id click id — not sent"
                .to_owned(),
        );
    }
    let conversion_value = match (c.value_minor, non_empty(&c.currency)) {
        (Some(v), Some(currency)) => Some(Money {
            currency_code: currency.to_ascii_uppercase(),
            amount: minor_units_text(v, currency),
        }),
        _ => None,
    };
    Ok(ConversionEvent {
        conversion: rule.clone(),
        conversion_happened_at: at_ms,
        conversion_value,
        event_id: Some(c.key.clone()),
        user: User {
            user_ids,
            user_info: None,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::writeback::{ClickIds, ConversionPerson};

    const NOW: i64 = 1_790_000_000_000;
    const DAY: i64 = 86_400_000;

    fn rules() -> BTreeMap<Milestone, String> {
        BTreeMap::from([(
            Milestone::Won,
            "urn:lla:llaPartnerConversion:123".to_owned(),
        )])
    }

    fn won(at: i64) -> Conversion {
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
            value_minor: Some(150_000),
            currency: Some("eur".into()),
            person: ConversionPerson {
                email: Some("person@example.com".into()),
                ..Default::default()
            },
            clicks: ClickIds {
                li_fat_id: Some("df5gf5-gh6t7".into()),
                gclid: Some("not-for-linkedin".into()),
                ..Default::default()
            },
            attribution: Default::default(),
        }
    }

    #[test]
    fn a_send_becomes_linkedins_event() {
        let e = event(&won(NOW - DAY), &rules(), NOW).unwrap();
        assert_eq!(
            serde_json::to_value(&e).unwrap(),
            serde_json::json!({
                "conversion": "urn:lla:llaPartnerConversion:123",
                "conversionHappenedAt": NOW - DAY,
                "conversionValue": {"currencyCode": "EUR", "amount": "1500.00"},
                "eventId": "hubspot:42:won",
                "user": {"userIds": [
                    // printf %s 'person@example.com' | sha256sum
                    {"idType": "SHA256_EMAIL", "idValue": "542d240129883c019e106e3b1b2d3f3cb3537c43c425364de8e951d5a3083345"},
                    {"idType": "LINKEDIN_FIRST_PARTY_ADS_TRACKING_UUID", "idValue": "df5gf5-gh6t7"}]}
            })
        );
    }

    #[test]
    fn what_linkedin_cant_take_is_a_reason() {
        let mut restate = won(NOW);
        restate.action = WritebackAction::Restate;
        assert_eq!(event(&restate, &rules(), NOW).unwrap_err(), NO_ADJUSTMENTS);
        assert!(
            event(&won(NOW - 91 * DAY), &rules(), NOW)
                .unwrap_err()
                .contains("91 days ago")
        );
        assert!(
            event(&won(NOW + DAY), &rules(), NOW)
                .unwrap_err()
                .contains("future")
        );
        assert_eq!(
            event(&won(NOW + 60_000), &rules(), NOW)
                .unwrap()
                .conversion_happened_at,
            NOW
        );
        let mut anonymous = won(NOW);
        anonymous.person.email = None;
        anonymous.clicks.li_fat_id = Some(" ".into());
        assert!(
            event(&anonymous, &rules(), NOW)
                .unwrap_err()
                .contains("nothing LinkedIn can match")
        );
        let mut declined = won(NOW);
        declined.person.consent = Some(false);
        assert!(
            event(&declined, &rules(), NOW)
                .unwrap_err()
                .contains("declined consent")
        );
        let mut lost = won(NOW);
        lost.milestone = Milestone::Lost;
        assert!(
            event(&lost, &rules(), NOW)
                .unwrap_err()
                .contains("`lost = ")
        );
        let mut no_currency = won(NOW);
        no_currency.currency = None;
        assert_eq!(
            event(&no_currency, &rules(), NOW).unwrap().conversion_value,
            None
        );
    }
}
