//! The `google_lead_form` preset: Google Ads lead form webhooks. Google signs nothing; the body
//! carries the key the advertiser typed on the form (`google_key`), which is compared with the
//! configured `secret` in constant time. The lead is `user_column_data[]` (one entry per question,
//! keyed by `column_id`) plus the ids of the ad that produced it. The key never leaves `verify`.

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::{Map, Value};

use super::common::{FieldSink, ct_eq, json_id, malformed, parse_json, require_json};
use crate::{
    source::{PresetError, PresetOutput, PresetRequest, SourceLead, WebhookPreset},
    webhook::WebhookConfig,
};

pub struct GoogleLeadForm {
    secret: Option<SecretString>,
}

impl GoogleLeadForm {
    pub fn new(config: &WebhookConfig) -> Self {
        GoogleLeadForm {
            secret: config.secret.clone(),
        }
    }
}

/// Only the key: verify reads nothing else from the unauthenticated body.
#[derive(Deserialize)]
struct KeyOnly {
    #[serde(default)]
    google_key: Option<Value>,
}

impl WebhookPreset for GoogleLeadForm {
    fn verify(&self, req: &PresetRequest<'_>) -> Result<(), PresetError> {
        let Some(secret) = &self.secret else {
            return Err(PresetError::Unauthorized(
                "no secret is configured for this google_lead_form connector".into(),
            ));
        };
        // The key is inside the body, so a body that is not JSON carries no key.
        require_json(req.headers)?;
        let given = serde_json::from_slice::<KeyOnly>(req.body)
            .ok()
            .and_then(|k| k.google_key)
            .and_then(|k| match k {
                Value::String(s) => Some(s),
                _ => None,
            })
            .ok_or_else(|| PresetError::Unauthorized("missing google_key in the body".into()))?;
        if ct_eq(given.as_bytes(), secret.expose_secret().as_bytes()) {
            Ok(())
        } else {
            Err(PresetError::Unauthorized(
                "google_key does not match the configured key".into(),
            ))
        }
    }

    fn parse(&self, req: &PresetRequest<'_>) -> Result<PresetOutput, PresetError> {
        require_json(req.headers)?;
        let body = parse_json(req.body)?;
        let Value::Object(lead) = &body else {
            return Err(malformed("body", "must be a JSON object"));
        };
        Ok(PresetOutput::Leads(vec![map_lead(lead)?]))
    }
}

fn map_lead(lead: &Map<String, Value>) -> Result<SourceLead, PresetError> {
    let columns = match lead.get("user_column_data") {
        Some(Value::Array(c)) => c,
        Some(_) => return Err(malformed("user_column_data", "must be an array")),
        None => return Err(malformed("user_column_data", "is missing")),
    };
    let mut sink = FieldSink::default();
    for (i, column) in columns.iter().enumerate() {
        let Value::Object(column) = column else {
            return Err(malformed(
                format!("user_column_data[{i}]"),
                "must be an object",
            ));
        };
        let value = match column.get("string_value") {
            None | Some(Value::Null) => continue,
            Some(Value::String(s)) => s.clone(),
            Some(other @ (Value::Number(_) | Value::Bool(_))) => other.to_string(),
            Some(_) => {
                return Err(malformed(
                    format!("user_column_data[{i}].string_value"),
                    "must be a string",
                ));
            }
        };
        let id = column
            .get("column_id")
            .and_then(Value::as_str)
            .unwrap_or("");
        let name = column
            .get("column_name")
            .and_then(Value::as_str)
            .unwrap_or("");
        // Custom questions are kept under Google's column id (their own key), else the label.
        let key = if id.is_empty() { name } else { id };
        if key.is_empty() {
            continue;
        }
        let value_json = Value::String(value.clone());
        match id {
            "EMAIL" | "WORK_EMAIL" => sink.put_canonical("email", key, value_json),
            "PHONE_NUMBER" | "WORK_PHONE" => sink.put_canonical("phone", key, value_json),
            "FIRST_NAME" => sink.put_canonical("first_name", key, value_json),
            "LAST_NAME" => sink.put_canonical("last_name", key, value_json),
            "FULL_NAME" => sink.put_full_name(key, &value),
            "COMPANY_NAME" => sink.put_canonical("company", key, value_json),
            "JOB_TITLE" => sink.put_canonical("job_title", key, value_json),
            "COUNTRY" => sink.put_canonical("country", key, value_json),
            _ => sink.put(key, value_json),
        }
    }
    let mut ids = |from: &str, to: &str| {
        if let Some(v) = json_id(lead.get(from)) {
            sink.put_canonical(to, from, Value::String(v));
        }
    };
    ids("gcl_id", "gclid");
    ids("campaign_id", "campaign_id");
    // An ad group is Google's ad set; a creative is the ad.
    ids("adgroup_id", "adset_id");
    ids("creative_id", "ad_id");
    ids("form_id", "form");
    if let Some(v) = json_id(lead.get("asset_group_id")) {
        sink.put("asset_group_id", Value::String(v));
    }
    let is_test = match lead.get("is_test") {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => s.eq_ignore_ascii_case("true"),
        _ => false,
    };
    Ok(SourceLead {
        fields: sink.finish(),
        event_id: json_id(lead.get("lead_id")),
        // Google's payload carries no submission time; the daemon uses the time it received it.
        captured_at: None,
        is_test,
    })
}
