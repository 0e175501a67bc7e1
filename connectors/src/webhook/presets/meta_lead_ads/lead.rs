//! A Graph API Lead object → [`SourceLead`]. `field_data[{name, values[]}]` answers map onto
//! canonical names where Meta's standard question keys have a known meaning; every other answer
//! (custom questions, `city`, `zip_code`…) is kept under Meta's own key.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::source::{FetchRequest, SourceLead};

/// Meta's Lead Ads Testing Tool fills every answer it is not given with
/// `<test lead: dummy data for QUESTION>`; a lead carrying that marker is a test lead.
pub const TEST_LEAD_MARKER: &str = "<test lead";

/// Standard question keys with a canonical meaning (Meta key → canonical name).
const CANONICAL: &[(&str, &str)] = &[
    ("email", "email"),
    ("phone_number", "phone"),
    ("first_name", "first_name"),
    ("last_name", "last_name"),
    ("company_name", "company"),
    ("job_title", "job_title"),
    ("country", "country"),
];

/// Fallbacks used only when the primary question was not asked (Meta key → canonical name).
const FALLBACK: &[(&str, &str)] = &[("work_email", "email"), ("work_phone_number", "phone")];

/// Meta's `2024-06-01T12:00:00+0000` (or RFC 3339, or unix seconds) → RFC 3339 in UTC.
pub(crate) fn meta_time_to_rfc3339(raw: &str) -> Option<String> {
    let raw = raw.trim();
    if raw.is_empty() || raw.len() > 64 {
        return None;
    }
    if let Ok(ts) = raw.parse::<jiff::Timestamp>() {
        return Some(ts.to_string());
    }
    if let Ok(z) =
        jiff::fmt::strtime::parse("%Y-%m-%dT%H:%M:%S%z", raw).and_then(|tm| tm.to_timestamp())
    {
        return Some(z.to_string());
    }
    raw.parse::<i64>()
        .ok()
        .and_then(|s| jiff::Timestamp::from_second(s).ok())
        .map(|t| t.to_string())
}

/// A Graph id/name at `key` as a string (ids may come as numbers).
fn text(obj: &serde_json::Map<String, Value>, key: &str) -> Option<String> {
    match obj.get(key)? {
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_owned()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// The answers of `field_data`, each as its list of string values (non-strings are skipped).
fn answers(obj: &serde_json::Map<String, Value>) -> Vec<(String, Vec<String>)> {
    let Some(Value::Array(items)) = obj.get("field_data") else {
        return Vec::new();
    };
    items
        .iter()
        .filter_map(|item| {
            let item = item.as_object()?;
            let name = item.get("name")?.as_str()?.trim();
            if name.is_empty() {
                return None;
            }
            let values = match item.get("values") {
                Some(Value::Array(vs)) => vs
                    .iter()
                    .filter_map(|v| match v {
                        Value::String(s) => Some(s.clone()),
                        Value::Number(n) => Some(n.to_string()),
                        Value::Bool(b) => Some(b.to_string()),
                        _ => None,
                    })
                    .collect(),
                Some(Value::String(s)) => vec![s.clone()],
                _ => Vec::new(),
            };
            Some((name.to_owned(), values))
        })
        .collect()
}

fn as_value(values: &[String]) -> Value {
    match values {
        [one] => Value::String(one.clone()),
        many => Value::Array(many.iter().cloned().map(Value::String).collect()),
    }
}

/// "Jane van Doe" → ("Jane", "van Doe"); a single word is a first name.
fn split_full_name(full: &str) -> (Option<String>, Option<String>) {
    let full = full.trim();
    match full.split_once(char::is_whitespace) {
        Some((first, last)) => (
            Some(first.to_owned()).filter(|s| !s.is_empty()),
            Some(last.trim().to_owned()).filter(|s| !s.is_empty()),
        ),
        None if full.is_empty() => (None, None),
        None => (Some(full.to_owned()), None),
    }
}

/// Maps a Graph Lead object (already parsed JSON) and the notification's hints.
pub fn map_lead(request: &FetchRequest, lead: &Value) -> SourceLead {
    let empty = serde_json::Map::new();
    let obj = lead.as_object().unwrap_or(&empty);
    let mut fields: BTreeMap<String, Value> = BTreeMap::new();
    let mut is_test = false;
    let answers = answers(obj);
    let asked = |key: &str| answers.iter().any(|(n, v)| n == key && !v.is_empty());

    for (name, values) in &answers {
        if values.is_empty() {
            continue;
        }
        if values.iter().any(|v| {
            v.trim_start()
                .to_ascii_lowercase()
                .starts_with(TEST_LEAD_MARKER)
        }) {
            is_test = true;
        }
        let canonical = CANONICAL
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, c)| *c)
            .or_else(|| {
                FALLBACK
                    .iter()
                    .find(|(k, c)| {
                        k == name && !CANONICAL.iter().any(|(p, pc)| pc == c && asked(p))
                    })
                    .map(|(_, c)| *c)
            });
        match canonical {
            Some(c) => {
                fields.insert(c.to_owned(), as_value(values));
            }
            None => {
                fields.insert(name.clone(), as_value(values));
            }
        }
    }
    if let Some(Value::String(full)) = fields.get("full_name") {
        let (first, last) = split_full_name(full);
        for (key, part) in [("first_name", first), ("last_name", last)] {
            if let Some(part) = part
                && !fields.contains_key(key)
            {
                fields.insert(key.to_owned(), Value::String(part));
            }
        }
    }

    // Ids: the Graph answer first, the notification's hints where Graph said nothing.
    for (canonical, graph_key, hint_key) in [
        ("form", "form_id", "form_id"),
        ("ad_id", "ad_id", "ad_id"),
        ("adset_id", "adset_id", "adset_id"),
        ("campaign_id", "campaign_id", "campaign_id"),
        ("page_id", "page_id", "page_id"),
    ] {
        let v = text(obj, graph_key).or_else(|| request.hints.get(hint_key).cloned());
        if let Some(v) = v {
            fields.insert(canonical.to_owned(), Value::String(v));
        }
    }
    for (canonical, graph_key) in [
        ("campaign_name", "campaign_name"),
        ("ad_name", "ad_name"),
        ("adset_name", "adset_name"),
        ("platform", "platform"),
    ] {
        if let Some(v) = text(obj, graph_key) {
            fields.insert(canonical.to_owned(), Value::String(v));
        }
    }
    if let Some(Value::Bool(b)) = obj.get("is_organic") {
        fields.insert("is_organic".to_owned(), Value::Bool(*b));
    }

    let captured_at = text(obj, "created_time")
        .and_then(|t| meta_time_to_rfc3339(&t))
        .or_else(|| {
            request
                .hints
                .get("created_time")
                .and_then(|t| meta_time_to_rfc3339(t))
        });
    SourceLead {
        fields,
        event_id: Some(request.event_id.clone()),
        captured_at,
        is_test,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn meta_times_become_rfc3339() {
        assert_eq!(
            meta_time_to_rfc3339("2024-06-01T12:00:00+0000").as_deref(),
            Some("2024-06-01T12:00:00Z")
        );
        assert_eq!(
            meta_time_to_rfc3339("2024-06-01T14:00:00+0200").as_deref(),
            Some("2024-06-01T12:00:00Z")
        );
        assert_eq!(
            meta_time_to_rfc3339("2024-06-01T12:00:00Z").as_deref(),
            Some("2024-06-01T12:00:00Z")
        );
        assert_eq!(
            meta_time_to_rfc3339("1502121655").as_deref(),
            Some("2017-08-07T16:00:55Z")
        );
        assert_eq!(meta_time_to_rfc3339("yesterday"), None);
    }

    #[test]
    fn full_name_splits_and_work_email_is_a_fallback() {
        let req = FetchRequest {
            event_id: "1".into(),
            hints: BTreeMap::new(),
        };
        let lead = map_lead(
            &req,
            &json!({"field_data":[
                {"name":"full_name","values":["Jane van Doe"]},
                {"name":"work_email","values":["jane@work.example"]},
                {"name":"favourite_colours","values":["red","blue"]}
            ]}),
        );
        assert_eq!(lead.fields["first_name"], json!("Jane"));
        assert_eq!(lead.fields["last_name"], json!("van Doe"));
        assert_eq!(lead.fields["email"], json!("jane@work.example"));
        assert_eq!(lead.fields["favourite_colours"], json!(["red", "blue"]));
        assert!(!lead.is_test);

        let both = map_lead(
            &req,
            &json!({"field_data":[
                {"name":"email","values":["me@home.example"]},
                {"name":"work_email","values":["me@work.example"]}
            ]}),
        );
        assert_eq!(both.fields["email"], json!("me@home.example"));
        assert_eq!(both.fields["work_email"], json!("me@work.example"));
    }

    #[test]
    fn testing_tool_dummy_data_marks_a_test_lead() {
        let req = FetchRequest {
            event_id: "1".into(),
            hints: BTreeMap::new(),
        };
        let lead = map_lead(
            &req,
            &json!({"field_data":[{"name":"full_name","values":["<test lead: dummy data for full_name>"]}]}),
        );
        assert!(lead.is_test);
    }
}
