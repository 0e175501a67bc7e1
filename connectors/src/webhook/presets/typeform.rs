//! The `typeform` preset: `Typeform-Signature: sha256=<base64 HMAC-SHA256(secret, raw body)>`, and
//! a `form_response` payload whose answers are mapped by the question's `ref` (or title) and type.
//! Typeform sends no timestamp header, so there is no replay window: a replayed delivery carries
//! the same `event_id` and the daemon's dedup answers it as a duplicate.

use secrecy::{ExposeSecret, SecretString};
use serde_json::{Map, Value};

use super::common::{
    FieldSink, base64, canonical_name, ct_eq, hmac_sha256, is_full_name, json_id, malformed,
    parse_json, require_json,
};
use crate::{
    source::{PresetError, PresetOutput, PresetRequest, SourceLead, WebhookPreset},
    webhook::WebhookConfig,
};

const SIGNATURE_HEADER: &str = "typeform-signature";

pub struct Typeform {
    secret: Option<SecretString>,
}

impl Typeform {
    pub fn new(config: &WebhookConfig) -> Self {
        Typeform {
            secret: config.secret.clone(),
        }
    }
}

/// `sha256=<base64>` for `body` under `secret`: what Typeform sends.
pub fn sign(secret: &[u8], body: &[u8]) -> String {
    format!("sha256={}", base64(&hmac_sha256(secret, &[body])))
}

impl WebhookPreset for Typeform {
    fn verify(&self, req: &PresetRequest<'_>) -> Result<(), PresetError> {
        let Some(secret) = &self.secret else {
            return Err(PresetError::Unauthorized(
                "no secret is configured for this typeform connector".into(),
            ));
        };
        let given = req
            .headers
            .get(SIGNATURE_HEADER)
            .map(|s| s.trim())
            .filter(|s| !s.is_empty())
            .ok_or_else(|| PresetError::Unauthorized("missing Typeform-Signature header".into()))?;
        if !given.starts_with("sha256=") {
            return Err(PresetError::Unauthorized(
                "Typeform-Signature must be \"sha256=\" followed by base64".into(),
            ));
        }
        let expected = sign(secret.expose_secret().as_bytes(), req.body);
        if ct_eq(expected.as_bytes(), given.as_bytes()) {
            Ok(())
        } else {
            Err(PresetError::Unauthorized(
                "Typeform-Signature does not match the body".into(),
            ))
        }
    }

    fn parse(&self, req: &PresetRequest<'_>) -> Result<PresetOutput, PresetError> {
        require_json(req.headers)?;
        let body = parse_json(req.body)?;
        let Value::Object(top) = &body else {
            return Err(malformed("body", "must be a JSON object"));
        };
        match top.get("event_type") {
            None | Some(Value::Null) => {}
            Some(Value::String(t)) if t == "form_response" => {}
            // Partial responses and any future event types carry no finished submission.
            Some(Value::String(_)) => return Ok(PresetOutput::Nothing),
            Some(_) => return Err(malformed("event_type", "must be a string")),
        }
        let response = match top.get("form_response") {
            Some(Value::Object(r)) => r,
            Some(_) => return Err(malformed("form_response", "must be an object")),
            None => return Err(malformed("form_response", "is missing")),
        };
        Ok(PresetOutput::Leads(vec![map_response(top, response)?]))
    }
}

fn map_response(
    top: &Map<String, Value>,
    r: &Map<String, Value>,
) -> Result<SourceLead, PresetError> {
    let titles = question_titles(r);
    let mut sink = FieldSink::default();
    let answers = match r.get("answers") {
        None | Some(Value::Null) => &Vec::new(),
        Some(Value::Array(a)) => a,
        Some(_) => return Err(malformed("form_response.answers", "must be an array")),
    };
    for (i, answer) in answers.iter().enumerate() {
        let Value::Object(answer) = answer else {
            return Err(malformed(
                format!("form_response.answers[{i}]"),
                "must be an object",
            ));
        };
        map_answer(answer, &titles, &mut sink);
    }
    // Hidden fields (utm_*, gclid… passed in the form's URL): canonical where the name says so.
    match r.get("hidden") {
        None | Some(Value::Null) => {}
        Some(Value::Object(hidden)) => {
            for (k, v) in hidden {
                sink.put(k, v.clone());
            }
        }
        Some(_) => return Err(malformed("form_response.hidden", "must be an object")),
    }
    if let Some(Value::Object(calc)) = r.get("calculated")
        && let Some(score) = calc.get("score")
    {
        sink.put("score", score.clone());
    }
    if let Some(form) = json_id(r.get("form_id")) {
        sink.put_canonical("form", "form_id", Value::String(form));
    }
    let event_id = json_id(top.get("event_id")).or_else(|| json_id(r.get("token")));
    let captured_at = match r.get("submitted_at") {
        Some(Value::String(s)) if !s.trim().is_empty() => Some(s.trim().to_owned()),
        _ => None,
    };
    Ok(SourceLead {
        fields: sink.finish(),
        event_id,
        captured_at,
        is_test: false,
    })
}

/// Field id → (ref, title) from `form_response.definition.fields`.
fn question_titles(r: &Map<String, Value>) -> Vec<(String, String)> {
    let Some(Value::Object(def)) = r.get("definition") else {
        return Vec::new();
    };
    let Some(Value::Array(fields)) = def.get("fields") else {
        return Vec::new();
    };
    fields
        .iter()
        .filter_map(|f| {
            let id = f.get("id")?.as_str()?;
            let title = f.get("title")?.as_str()?;
            Some((id.to_owned(), title.to_owned()))
        })
        .collect()
}

fn map_answer(answer: &Map<String, Value>, titles: &[(String, String)], sink: &mut FieldSink) {
    let Some(kind) = answer.get("type").and_then(Value::as_str) else {
        return;
    };
    let Some(value) = answer_value(kind, answer) else {
        return;
    };
    let field = answer.get("field").and_then(Value::as_object);
    let get = |k: &str| field.and_then(|f| f.get(k)).and_then(Value::as_str);
    let id = get("id").unwrap_or("");
    let field_type = get("type").unwrap_or("");
    let title = titles
        .iter()
        .find(|(fid, _)| !id.is_empty() && fid == id)
        .map(|(_, t)| t.as_str());
    // The key a custom field is kept under: the question's ref (stable, set by the form's author),
    // else its id.
    let key = get("ref").filter(|r| !r.is_empty()).unwrap_or(id);
    let key = if key.is_empty() { kind } else { key };

    // By answer type first: an email question is the email whatever its ref.
    let by_type = match (kind, field_type) {
        ("email", _) => Some("email"),
        ("phone_number", _) => Some("phone"),
        (_, "legal") => Some("consent"),
        _ => None,
    };
    if let Some(name) = by_type {
        sink.put_canonical(name, key, value);
        return;
    }
    // Then by ref, then by the question's title ("What's your first name?" is not matched; a
    // title of "First name" is).
    let named = canonical_name(key).or_else(|| title.and_then(canonical_name));
    if let Some(name) = named {
        sink.put_canonical(name, key, value);
    } else if is_full_name(key) || title.is_some_and(is_full_name) {
        match &value {
            Value::String(s) => sink.put_full_name(key, s),
            _ => sink.put(key, value),
        }
    } else {
        sink.put(key, value);
    }
}

/// An answer's value lives under the key its `type` names.
fn answer_value(kind: &str, answer: &Map<String, Value>) -> Option<Value> {
    let raw = answer.get(kind)?;
    Some(match (kind, raw) {
        ("choice", Value::Object(c)) => c
            .get("label")
            .or_else(|| c.get("other"))
            .cloned()
            .unwrap_or(Value::Null),
        ("choices", Value::Object(c)) => {
            let mut labels: Vec<Value> = match c.get("labels") {
                Some(Value::Array(l)) => l.iter().filter(|v| v.is_string()).cloned().collect(),
                _ => Vec::new(),
            };
            if let Some(other @ Value::String(_)) = c.get("other") {
                labels.push(other.clone());
            }
            Value::Array(labels)
        }
        _ => raw.clone(),
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde_json::json;

    use super::*;

    #[test]
    fn vendor_notes_vector() {
        assert_eq!(
            sign(b"abc123", br#"{"event_id":"x"}"#),
            "sha256=U1rJymdgorpNL5RkZrWJNbgFqLo1b0tqVtnqONoXh1w="
        );
    }

    #[test]
    fn choices_and_unknown_types_keep_their_values() {
        let answer = json!({"type":"choices","choices":{"labels":["A","B"],"other":"C"},
            "field":{"id":"f1","type":"multiple_choice","ref":"interests"}});
        let mut sink = FieldSink::default();
        map_answer(answer.as_object().unwrap(), &[], &mut sink);
        let answer = json!({"type":"number","number":7,"field":{"id":"f2","type":"number"}});
        map_answer(answer.as_object().unwrap(), &[], &mut sink);
        let fields: BTreeMap<_, _> = sink.finish();
        assert_eq!(fields["interests"], json!(["A", "B", "C"]));
        assert_eq!(fields["f2"], json!(7));
    }
}
