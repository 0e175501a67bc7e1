//! A Brevo contact → a [`SourceLead`]: standard attributes under canonical names, every other
//! attribute under its own (upper-case) name, `createdAt` (or `modifiedAt`) as `captured_at`.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::source::SourceLead;

use super::{LeadsFrom, wire::Contact};

/// Brevo's standard attribute names (and common custom spellings) → canonical field names.
fn canonical(attribute: &str) -> Option<String> {
    let lower = attribute.trim().to_ascii_lowercase();
    let known = match lower.as_str() {
        "firstname" | "first_name" | "prenom" | "vorname" => "first_name",
        "lastname" | "last_name" | "nom" | "nachname" => "last_name",
        "sms" | "phone" | "mobile" | "whatsapp" => "phone",
        "company" | "company_name" | "companyname" | "organization" => "company",
        "job_title" | "jobtitle" | "title" => "job_title",
        "country" | "country_code" => "country",
        "gclid" | "gbraid" | "wbraid" | "fbclid" | "li_fat_id" | "consent" | "referrer"
        | "campaign_id" | "campaign_name" | "ad_id" | "adset_id" | "form" | "landing_url" => {
            return Some(lower);
        }
        "landing_page" => "landing_url",
        "referer" => "referrer",
        _ if lower.starts_with("utm_") && lower.len() > 4 => return Some(lower),
        _ => return None,
    };
    Some(known.to_owned())
}

fn is_blank(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::String(s) => s.trim().is_empty(),
        _ => false,
    }
}

/// The contact id as text (`123`), if the contact has a usable one.
pub fn contact_id(contact: &Contact) -> Option<String> {
    match &contact.id {
        Value::Number(n) => Some(n.to_string()),
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_owned()),
        _ => None,
    }
}

/// A stamp from Brevo (`2024-06-01T10:00:00.000+02:00`) as unix ms.
pub fn stamp_ms(raw: Option<&str>) -> Option<i64> {
    let ts: jiff::Timestamp = raw?.trim().parse().ok()?;
    Some(ts.as_millisecond())
}

/// Unix ms as RFC 3339 UTC with milliseconds.
pub fn rfc3339(ms: i64) -> Option<String> {
    jiff::Timestamp::from_millisecond(ms)
        .ok()
        .map(|t| t.strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string())
}

/// The stamp that decides whether and when this contact is a lead.
pub fn lead_stamp_ms(contact: &Contact, mode: LeadsFrom) -> Option<i64> {
    match mode {
        LeadsFrom::Created => stamp_ms(contact.created_at.as_deref()),
        LeadsFrom::Updated => stamp_ms(contact.modified_at.as_deref())
            .or_else(|| stamp_ms(contact.created_at.as_deref())),
    }
}

/// The lead for one contact; `None` for a contact without an id (nothing to dedup by).
pub fn to_lead(contact: &Contact, mode: LeadsFrom) -> Option<SourceLead> {
    let id = contact_id(contact)?;
    let stamp = lead_stamp_ms(contact, mode);
    let mut fields: BTreeMap<String, Value> = BTreeMap::new();
    if let Some(email) = contact.email.as_deref().filter(|e| !e.trim().is_empty()) {
        fields.insert("email".to_owned(), Value::String(email.trim().to_owned()));
    }
    let mut custom = Vec::new();
    for (name, value) in &contact.attributes {
        if is_blank(value) {
            continue;
        }
        match canonical(name) {
            // The first non-blank value wins (`SMS` before a custom `PHONE`, in Brevo's order).
            Some(key) => {
                fields.entry(key).or_insert_with(|| value.clone());
            }
            None => custom.push((name.clone(), value.clone())),
        }
    }
    for (name, value) in custom {
        let key = if fields.contains_key(&name) {
            format!("attributes.{name}")
        } else {
            name
        };
        fields.insert(key, value);
    }
    if !contact.list_ids.is_empty() {
        fields.insert("listIds".to_owned(), Value::Array(contact.list_ids.clone()));
    }
    for (key, flag) in [
        ("emailBlacklisted", contact.email_blacklisted),
        ("smsBlacklisted", contact.sms_blacklisted),
    ] {
        if let Some(flag) = flag {
            fields.insert(key.to_owned(), Value::Bool(flag));
        }
    }
    let event_id = match mode {
        LeadsFrom::Created => id,
        LeadsFrom::Updated => match stamp.and_then(rfc3339) {
            Some(at) => format!("{id}@{at}"),
            None => id,
        },
    };
    Some(SourceLead {
        fields,
        event_id: Some(event_id),
        captured_at: stamp.and_then(rfc3339),
        is_test: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_realistic_contact_maps_to_canonical_and_custom_fields() {
        let contact: Contact = serde_json::from_value(serde_json::json!({
            "email": "jane.doe@example.com", "id": 42, "emailBlacklisted": false,
            "smsBlacklisted": true, "createdAt": "2024-06-01T12:00:00.250+02:00",
            "modifiedAt": "2024-06-03T08:00:00.000+02:00", "listIds": [2, 7],
            "attributes": {"FIRSTNAME": "Jane", "LASTNAME": "Doe", "SMS": "+33612345678",
                "COMPANY": "Acme", "JOB_TITLE": "CTO", "COUNTRY": "FR", "UTM_SOURCE": "newsletter",
                "GCLID": "Cj0KCQ", "PLAN": "pro", "SCORE": 12, "EMPTY": ""}
        }))
        .unwrap();
        let lead = to_lead(&contact, LeadsFrom::Created).unwrap();
        assert_eq!(lead.event_id.as_deref(), Some("42"));
        assert_eq!(
            lead.captured_at.as_deref(),
            Some("2024-06-01T10:00:00.250Z")
        );
        let f = &lead.fields;
        assert_eq!(f["email"], "jane.doe@example.com");
        assert_eq!(f["first_name"], "Jane");
        assert_eq!(f["last_name"], "Doe");
        assert_eq!(f["phone"], "+33612345678");
        assert_eq!(f["company"], "Acme");
        assert_eq!(f["job_title"], "CTO");
        assert_eq!(f["country"], "FR");
        assert_eq!(f["utm_source"], "newsletter");
        assert_eq!(f["gclid"], "Cj0KCQ");
        assert_eq!(f["PLAN"], "pro");
        assert_eq!(f["SCORE"], 12);
        assert_eq!(f["listIds"], serde_json::json!([2, 7]));
        assert_eq!(f["smsBlacklisted"], true);
        assert!(!f.contains_key("EMPTY"));
        let updated = to_lead(&contact, LeadsFrom::Updated).unwrap();
        assert_eq!(
            updated.event_id.as_deref(),
            Some("42@2024-06-03T06:00:00.000Z")
        );
        assert!(!format!("{contact:?}").contains("jane"));
    }

    #[test]
    fn a_contact_without_an_id_is_not_a_lead() {
        let contact: Contact =
            serde_json::from_value(serde_json::json!({"email": "a@b.c"})).unwrap();
        assert!(to_lead(&contact, LeadsFrom::Created).is_none());
    }
}
