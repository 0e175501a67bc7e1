//! Meta's Page webhook body → one [`FetchRequest`] per `leadgen` change:
//! `{"object":"page","entry":[{"id":PAGE,"time":…,"changes":[{"field":"leadgen","value":{…}}]}]}`.
//! Other objects and other fields are not leads and are skipped; anything shaped wrongly is
//! refused naming the JSON path of the offending field.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use crate::source::{FetchRequest, PresetError};

/// Longest id accepted from a notification (Meta's are 15–17 digits).
const MAX_ID_LEN: usize = 64;

fn malformed(field: impl Into<String>, reason: impl Into<String>) -> PresetError {
    PresetError::Malformed {
        field: field.into(),
        reason: reason.into(),
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A Graph id: digits (or letters, `_`, `-`), as a JSON string or a non-negative integer.
/// `Ok(None)` when absent or null.
fn id_at(
    obj: &serde_json::Map<String, Value>,
    key: &str,
    path: &str,
) -> Result<Option<String>, PresetError> {
    let field = || format!("{path}.{key}");
    let id = match obj.get(key) {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::String(s)) => s.trim().to_owned(),
        Some(Value::Number(n)) if n.is_u64() => n.to_string(),
        Some(other) => {
            return Err(malformed(
                field(),
                format!("must be an id (string of digits), got {}", kind(other)),
            ));
        }
    };
    if id.is_empty() {
        return Ok(None);
    }
    if id.len() > MAX_ID_LEN
        || !id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        return Err(malformed(
            field(),
            format!("must be an id of at most {MAX_ID_LEN} letters or digits"),
        ));
    }
    Ok(Some(id))
}

/// `created_time` as Meta sends it (unix seconds) → RFC 3339; an RFC 3339 string is kept.
fn created_time_at(
    obj: &serde_json::Map<String, Value>,
    path: &str,
) -> Result<Option<String>, PresetError> {
    let field = || format!("{path}.created_time");
    let secs = match obj.get("created_time") {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Number(n)) => n.as_i64(),
        Some(Value::String(s)) => match s.trim().parse::<i64>() {
            Ok(n) => Some(n),
            Err(_) => {
                return super::lead::meta_time_to_rfc3339(s)
                    .map(Some)
                    .ok_or_else(|| malformed(field(), "must be a unix timestamp in seconds"));
            }
        },
        Some(other) => {
            return Err(malformed(
                field(),
                format!("must be a unix timestamp in seconds, got {}", kind(other)),
            ));
        }
    };
    secs.and_then(|s| jiff::Timestamp::from_second(s).ok())
        .map(|t| Some(t.to_string()))
        .ok_or_else(|| malformed(field(), "must be a unix timestamp in seconds"))
}

/// Every lead a notification announces, in order, each leadgen id once.
pub fn parse_notification(body: &[u8]) -> Result<Vec<FetchRequest>, PresetError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(malformed("body", "is empty"));
    }
    let root: Value = serde_json::from_slice(body)
        .map_err(|e| malformed("body", format!("is not valid JSON: {e}")))?;
    let Value::Object(root) = root else {
        return Err(malformed(
            "body",
            format!("must be a JSON object, got {}", kind(&root)),
        ));
    };
    match root.get("object") {
        Some(Value::String(o)) if o == "page" => {}
        // Another object's webhook on the same URL (user, instagram…) carries no leadgen.
        Some(Value::String(_)) => return Ok(Vec::new()),
        Some(other) => {
            return Err(malformed(
                "object",
                format!("must be a string, got {}", kind(other)),
            ));
        }
        None => return Err(malformed("object", "is missing")),
    }
    let entries = match root.get("entry") {
        Some(Value::Array(e)) => e,
        Some(other) => {
            return Err(malformed(
                "entry",
                format!("must be an array, got {}", kind(other)),
            ));
        }
        None => return Err(malformed("entry", "is missing")),
    };
    let mut out = Vec::new();
    let mut seen = BTreeSet::new();
    for (i, entry) in entries.iter().enumerate() {
        let path = format!("entry[{i}]");
        let Value::Object(entry) = entry else {
            return Err(malformed(
                path,
                format!("must be an object, got {}", kind(entry)),
            ));
        };
        let entry_page = id_at(entry, "id", &path)?;
        let changes = match entry.get("changes") {
            Some(Value::Array(c)) => c,
            // Page webhooks of other products (messaging, standby) have no `changes`.
            None | Some(Value::Null) => continue,
            Some(other) => {
                return Err(malformed(
                    format!("{path}.changes"),
                    format!("must be an array, got {}", kind(other)),
                ));
            }
        };
        for (j, change) in changes.iter().enumerate() {
            let path = format!("{path}.changes[{j}]");
            let Value::Object(change) = change else {
                return Err(malformed(
                    path,
                    format!("must be an object, got {}", kind(change)),
                ));
            };
            match change.get("field") {
                Some(Value::String(f)) if f == "leadgen" => {}
                Some(Value::String(_)) => continue,
                Some(other) => {
                    return Err(malformed(
                        format!("{path}.field"),
                        format!("must be a string, got {}", kind(other)),
                    ));
                }
                None => return Err(malformed(format!("{path}.field"), "is missing")),
            }
            let path = format!("{path}.value");
            let value = match change.get("value") {
                Some(Value::Object(v)) => v,
                Some(other) => {
                    return Err(malformed(
                        path,
                        format!("must be an object, got {}", kind(other)),
                    ));
                }
                None => return Err(malformed(path, "is missing")),
            };
            let Some(leadgen_id) = id_at(value, "leadgen_id", &path)? else {
                return Err(malformed(format!("{path}.leadgen_id"), "is missing"));
            };
            let mut hints = BTreeMap::new();
            for (hint, key) in [
                ("form_id", "form_id"),
                ("ad_id", "ad_id"),
                ("adset_id", "adgroup_id"),
                ("campaign_id", "campaign_id"),
                ("page_id", "page_id"),
            ] {
                if let Some(id) = id_at(value, key, &path)? {
                    hints.insert(hint.to_owned(), id);
                }
            }
            if !hints.contains_key("page_id")
                && let Some(page) = &entry_page
            {
                hints.insert("page_id".to_owned(), page.clone());
            }
            if let Some(t) = created_time_at(value, &path)? {
                hints.insert("created_time".to_owned(), t);
            }
            if seen.insert(leadgen_id.clone()) {
                out.push(FetchRequest {
                    event_id: leadgen_id,
                    hints,
                });
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_payload_becomes_one_request_with_every_hint() {
        let body = br#"{"object":"page","entry":[{"id":"123","time":1502121655,
          "changes":[{"field":"leadgen","value":{"leadgen_id":"444444444","page_id":"123",
          "form_id":"555555","adgroup_id":"66666","ad_id":"77777","created_time":1502121655}}]}]}"#;
        let r = parse_notification(body).unwrap();
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].event_id, "444444444");
        assert_eq!(r[0].hints["form_id"], "555555");
        assert_eq!(r[0].hints["adset_id"], "66666");
        assert_eq!(r[0].hints["ad_id"], "77777");
        assert_eq!(r[0].hints["page_id"], "123");
        assert_eq!(r[0].hints["created_time"], "2017-08-07T16:00:55Z");
    }

    #[test]
    fn malformed_bodies_name_the_field() {
        let field = |b: &[u8]| match parse_notification(b) {
            Err(PresetError::Malformed { field, .. }) => field,
            other => panic!("expected Malformed, got {other:?}"),
        };
        assert_eq!(field(b"[]"), "body");
        assert_eq!(field(br#"{"entry":[]}"#), "object");
        assert_eq!(field(br#"{"object":"page"}"#), "entry");
        assert_eq!(
            field(br#"{"object":"page","entry":[{"changes":[{"field":"leadgen","value":{}}]}]}"#),
            "entry[0].changes[0].value.leadgen_id"
        );
        assert_eq!(
            field(br#"{"object":"page","entry":[{"changes":[{"field":"leadgen","value":{"leadgen_id":"../x"}}]}]}"#),
            "entry[0].changes[0].value.leadgen_id"
        );
        assert_eq!(
            field(br#"{"object":"page","entry":[{"changes":[{"field":"leadgen","value":{"leadgen_id":"1","form_id":{}}}]}]}"#),
            "entry[0].changes[0].value.form_id"
        );
    }
}
