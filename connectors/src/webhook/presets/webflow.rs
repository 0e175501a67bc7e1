//! The `webflow` preset: `x-webflow-signature` = hex HMAC-SHA256(secret, "{x-webflow-timestamp}:{body}")
//! with the millisecond timestamp within 5 minutes of now, and a `form_submission` payload whose
//! `payload.data` maps the form's field labels to the submitted values.

use secrecy::{ExposeSecret, SecretString};
use serde_json::{Map, Value};

use super::common::{
    FieldSink, check_timestamp, ct_eq, hmac_sha256, json_id, json_time, malformed, parse_json,
    require_json,
};
use crate::{
    source::{PresetError, PresetOutput, PresetRequest, SourceLead, WebhookPreset},
    webhook::WebhookConfig,
};

const SIGNATURE_HEADER: &str = "x-webflow-signature";
const TIMESTAMP_HEADER: &str = "x-webflow-timestamp";

pub struct Webflow {
    secret: Option<SecretString>,
}

impl Webflow {
    pub fn new(config: &WebhookConfig) -> Self {
        Webflow {
            secret: config.secret.clone(),
        }
    }
}

/// The hex signature Webflow sends for `body` at `timestamp` (the header's text, milliseconds).
pub fn sign(secret: &[u8], timestamp: &str, body: &[u8]) -> String {
    hex::encode(hmac_sha256(secret, &[timestamp.as_bytes(), b":", body]))
}

impl WebhookPreset for Webflow {
    fn verify(&self, req: &PresetRequest<'_>) -> Result<(), PresetError> {
        let Some(secret) = &self.secret else {
            return Err(PresetError::Unauthorized(
                "no secret is configured for this webflow connector".into(),
            ));
        };
        let given = req
            .headers
            .get(SIGNATURE_HEADER)
            .map(|s| s.trim())
            .filter(|s| !s.is_empty())
            .ok_or_else(|| {
                PresetError::Unauthorized("missing x-webflow-signature header".into())
            })?;
        check_timestamp(
            TIMESTAMP_HEADER,
            req.headers.get(TIMESTAMP_HEADER),
            req.now_ms,
        )?;
        // Signed over the header's text exactly as sent.
        let ts = req
            .headers
            .get(TIMESTAMP_HEADER)
            .map(|s| s.trim())
            .unwrap_or("");
        let expected = sign(secret.expose_secret().as_bytes(), ts, req.body);
        if ct_eq(expected.as_bytes(), given.to_ascii_lowercase().as_bytes()) {
            Ok(())
        } else {
            Err(PresetError::Unauthorized(
                "x-webflow-signature does not match the body".into(),
            ))
        }
    }

    fn parse(&self, req: &PresetRequest<'_>) -> Result<PresetOutput, PresetError> {
        require_json(req.headers)?;
        let body = parse_json(req.body)?;
        let Value::Object(top) = &body else {
            return Err(malformed("body", "must be a JSON object"));
        };
        match top.get("triggerType") {
            Some(Value::String(t)) if t == "form_submission" => {}
            // Other site events (publish, CMS, ecommerce) are not leads.
            Some(Value::String(_)) => return Ok(PresetOutput::Nothing),
            Some(_) => return Err(malformed("triggerType", "must be a string")),
            None => return Err(malformed("triggerType", "is missing")),
        }
        let payload = match top.get("payload") {
            Some(Value::Object(p)) => p,
            Some(_) => return Err(malformed("payload", "must be an object")),
            None => return Err(malformed("payload", "is missing")),
        };
        Ok(PresetOutput::Leads(vec![map_submission(payload)?]))
    }
}

fn map_submission(p: &Map<String, Value>) -> Result<SourceLead, PresetError> {
    let data = match p.get("data") {
        Some(Value::Object(d)) => d,
        Some(_) => return Err(malformed("payload.data", "must be an object")),
        None => return Err(malformed("payload.data", "is missing")),
    };
    let mut sink = FieldSink::default();
    for (label, value) in data {
        // Webflow sends numbers for number-typed inputs (a phone typed as digits arrives as a
        // number); the daemon reads numbers as text.
        sink.put(label, value.clone());
    }
    // The form's name is what marketing recognises; its id is kept beside it.
    let name = json_id(p.get("name"));
    let form_id = json_id(p.get("formId"));
    if let Some(form) = name.clone().or_else(|| form_id.clone()) {
        sink.put_canonical("form", "formName", Value::String(form));
    }
    if let Some(id) = form_id {
        sink.put("formId", Value::String(id));
    }
    if let Some(site) = json_id(p.get("siteId")).or_else(|| json_id(p.get("site"))) {
        sink.put("siteId", Value::String(site));
    }
    // v2 payloads carry `id` and `submittedAt`; v1 ones `_id` and `d`.
    let event_id = json_id(p.get("id")).or_else(|| json_id(p.get("_id")));
    let captured_at = p
        .get("submittedAt")
        .or_else(|| p.get("d"))
        .and_then(json_time);
    Ok(SourceLead {
        fields: sink.finish(),
        event_id,
        captured_at,
        is_test: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vendor_notes_vector() {
        assert_eq!(
            sign(
                b"clientsecret",
                "1663849649733",
                br#"{"triggerType":"form_submission"}"#
            ),
            "d85b0b811d668a490b8871679e04cb9d68f4fe6859859af5dcc588cb2cf73cc1"
        );
    }
}
