//! One audience member → a [`SourceLead`]. The member's `id` (MD5 of the lowercased email, stable
//! for the life of the membership) is the `event_id`, so a profile update that brings a member
//! back into a later poll is the same event and never a second lead. Never panics on any JSON.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::source::SourceLead;

/// Merge tags with a canonical meaning (Mailchimp tags are at most 10 characters, hence the
/// abbreviations).
const MERGE_TAGS: &[(&str, &str)] = &[
    ("FNAME", "first_name"),
    ("FIRSTNAME", "first_name"),
    ("LNAME", "last_name"),
    ("LASTNAME", "last_name"),
    ("PHONE", "phone"),
    ("MOBILE", "phone"),
    ("COMPANY", "company"),
    ("JOBTITLE", "job_title"),
    ("TITLE", "job_title"),
    ("COUNTRY", "country"),
    ("UTM_SOURCE", "utm_source"),
    ("UTM_SRC", "utm_source"),
    ("UTM_MEDIUM", "utm_medium"),
    ("UTM_CAMP", "utm_campaign"),
    ("UTM_CAMPAI", "utm_campaign"),
    ("UTM_CMPGN", "utm_campaign"),
    ("UTM_TERM", "utm_term"),
    ("UTM_CONT", "utm_content"),
    ("UTM_CONTEN", "utm_content"),
    ("GCLID", "gclid"),
    ("GBRAID", "gbraid"),
    ("WBRAID", "wbraid"),
    ("FBCLID", "fbclid"),
    ("LI_FAT_ID", "li_fat_id"),
    ("LANDING", "landing_url"),
    ("LANDINGURL", "landing_url"),
    ("REFERRER", "referrer"),
];

/// A mapped member, its status and its `last_changed` (unix ms) for the cursor.
#[derive(Debug, Clone, PartialEq)]
pub struct Mapped {
    pub lead: SourceLead,
    pub status: Option<String>,
    pub last_changed_ms: Option<i64>,
}

/// Mailchimp's timestamps (`2024-06-01T12:00:00+00:00`; `""` when unset) as unix ms.
pub fn timestamp_ms(v: Option<&Value>) -> Option<i64> {
    let s = v?.as_str()?.trim();
    if s.is_empty() {
        return None;
    }
    s.parse::<jiff::Timestamp>()
        .ok()
        .map(|t| t.as_millisecond())
}

fn rfc3339(ms: i64) -> Option<String> {
    jiff::Timestamp::from_millisecond(ms)
        .ok()
        .map(|t| t.to_string())
}

fn non_empty(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::String(s) => !s.trim().is_empty(),
        Value::Object(o) => o.values().any(non_empty),
        Value::Array(a) => !a.is_empty(),
        _ => true,
    }
}

/// Maps one member; `None` when it has no `id` (nothing to dedup a re-read by).
pub fn map_member(member: &Value, list_id: &str) -> Option<Mapped> {
    let obj = member.as_object()?;
    let id = obj
        .get("id")
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())?
        .to_owned();
    let mut fields: BTreeMap<String, Value> = BTreeMap::new();
    if let Some(e) = obj
        .get("email_address")
        .and_then(Value::as_str)
        .filter(|s| !s.trim().is_empty())
    {
        fields.insert("email".to_owned(), json!(e));
    }
    if let Some(merge) = obj.get("merge_fields").and_then(Value::as_object) {
        for (tag, value) in merge {
            if !non_empty(value) {
                continue;
            }
            let upper = tag.trim().to_ascii_uppercase();
            if upper == "ADDRESS" {
                if let Some(c) = value
                    .get("country")
                    .and_then(Value::as_str)
                    .filter(|c| !c.trim().is_empty())
                {
                    fields
                        .entry("country".to_owned())
                        .or_insert_with(|| json!(c));
                }
                fields.insert(tag.clone(), value.clone());
                continue;
            }
            match MERGE_TAGS.iter().find(|(t, _)| *t == upper) {
                Some((_, canonical)) => {
                    fields.insert((*canonical).to_owned(), value.clone());
                }
                None => {
                    fields.insert(tag.clone(), value.clone());
                }
            }
        }
    }
    let tags: Vec<Value> = obj
        .get("tags")
        .and_then(Value::as_array)
        .map(|t| {
            t.iter()
                .filter_map(|t| t.get("name").and_then(Value::as_str).map(|n| json!(n)))
                .collect()
        })
        .unwrap_or_default();
    if !tags.is_empty() {
        fields.insert("tags".to_owned(), Value::Array(tags));
    }
    let status = obj.get("status").and_then(Value::as_str).map(str::to_owned);
    if let Some(s) = &status {
        fields.insert("status".to_owned(), json!(s));
    }
    for key in ["source", "unique_email_id", "contact_id", "language"] {
        if let Some(v) = obj.get(key).filter(|v| v.is_string() && non_empty(v)) {
            fields.insert(key.to_owned(), v.clone());
        }
    }
    // Consent: the audience's GDPR marketing permissions when it has them; else a subscribed
    // member has opted in to email (a pending one hasn't confirmed yet).
    let permissions = obj.get("marketing_permissions").and_then(Value::as_array);
    match permissions.filter(|p| !p.is_empty()) {
        Some(perms) => {
            let enabled: Vec<String> = perms
                .iter()
                .filter(|p| p.get("enabled").and_then(Value::as_bool) == Some(true))
                .filter_map(|p| p.get("text").and_then(Value::as_str).map(str::to_owned))
                .collect();
            let consent = if enabled.is_empty() {
                "false".to_owned()
            } else {
                enabled.join(",")
            };
            fields.insert("consent".to_owned(), json!(consent));
        }
        None if status.as_deref() == Some("subscribed") => {
            fields.insert("consent".to_owned(), json!("true"));
        }
        None => {}
    }
    fields.insert("form".to_owned(), json!(list_id));

    let last_changed_ms = timestamp_ms(obj.get("last_changed"));
    let captured_ms = timestamp_ms(obj.get("timestamp_signup"))
        .or_else(|| timestamp_ms(obj.get("timestamp_opt")))
        .or(last_changed_ms);
    Some(Mapped {
        lead: SourceLead {
            fields,
            event_id: Some(id),
            captured_at: captured_ms.and_then(rfc3339),
            is_test: false,
        },
        status,
        last_changed_ms,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn realistic() -> Value {
        json!({
            "id": "0cba00ca3da1b283a57287bcceb17e35",
            "email_address": "Jane.Doe@Example.com",
            "unique_email_id": "a1b2c3d4e5",
            "contact_id": "9f8e7d6c5b4a39281706f5e4d3c2b1a0",
            "full_name": "Jane Doe",
            "web_id": 123_456,
            "email_type": "html",
            "status": "subscribed",
            "merge_fields": {
                "FNAME": "Jane", "LNAME": "Doe", "PHONE": "+1 415 555 0100", "COMPANY": "Acme",
                "ADDRESS": {"addr1": "1 Main St", "addr2": "", "city": "Springfield", "state": "IL", "zip": "62701", "country": "US"},
                "UTM_SOURCE": "google", "UTM_CAMP": "spring", "BIRTHDAY": "04/01", "MMERGE9": ""
            },
            "ip_signup": "", "timestamp_signup": "2026-03-01T10:00:00+00:00",
            "ip_opt": "203.0.113.9", "timestamp_opt": "2026-03-01T10:05:00+00:00",
            "last_changed": "2026-03-02T08:00:00+00:00",
            "language": "en", "vip": false, "source": "Hosted Signup Form",
            "tags_count": 2, "tags": [{"id": 1, "name": "webinar"}, {"id": 2, "name": "pricing"}],
            "list_id": "abc123def4"
        })
    }

    #[test]
    fn a_realistic_member_maps_onto_canonical_names() {
        let m = map_member(&realistic(), "abc123def4").expect("maps");
        let f = &m.lead.fields;
        assert_eq!(f["email"], "Jane.Doe@Example.com");
        assert_eq!(f["first_name"], "Jane");
        assert_eq!(f["last_name"], "Doe");
        assert_eq!(f["phone"], "+1 415 555 0100");
        assert_eq!(f["company"], "Acme");
        assert_eq!(f["country"], "US");
        assert_eq!(f["utm_source"], "google");
        assert_eq!(f["utm_campaign"], "spring");
        assert_eq!(f["BIRTHDAY"], "04/01");
        assert!(
            !f.contains_key("MMERGE9"),
            "empty merge fields are left out"
        );
        assert_eq!(f["ADDRESS"]["city"], "Springfield");
        assert_eq!(f["tags"], json!(["webinar", "pricing"]));
        assert_eq!(f["source"], "Hosted Signup Form");
        assert_eq!(f["consent"], "true");
        assert_eq!(f["form"], "abc123def4");
        assert_eq!(
            m.lead.event_id.as_deref(),
            Some("0cba00ca3da1b283a57287bcceb17e35")
        );
        assert_eq!(m.lead.captured_at.as_deref(), Some("2026-03-01T10:00:00Z"));
        assert_eq!(m.status.as_deref(), Some("subscribed"));
        assert_eq!(m.last_changed_ms, Some(1_772_438_400_000));
    }

    #[test]
    fn fallbacks_and_odd_shapes() {
        let mut v = realistic();
        v["timestamp_signup"] = json!("");
        v["marketing_permissions"] = json!([{"marketing_permission_id": "1", "text": "Email", "enabled": true}, {"text": "Ads", "enabled": false}]);
        let m = map_member(&v, "l").unwrap();
        assert_eq!(m.lead.captured_at.as_deref(), Some("2026-03-01T10:05:00Z"));
        assert_eq!(m.lead.fields["consent"], "Email");
        assert!(map_member(&json!({"email_address": "x@y.z"}), "l").is_none());
        let odd = json!({"id": "h", "merge_fields": [1], "tags": {"a": 1}, "last_changed": 5, "status": 3});
        let m = map_member(&odd, "l").unwrap();
        assert_eq!(m.last_changed_ms, None);
        assert_eq!(m.lead.captured_at, None);
    }
}
