//! Zoho CRM's JSON bodies for the endpoints tandem uses (upsert, COQL, fields metadata, the
//! Accounts token answer), shared by the client and the sandbox so the two can't drift apart.
//! Decoding is lenient (every field optional), encoding is exact.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// `POST /crm/v8/{module}/upsert`.
#[derive(Clone, Serialize, Deserialize)]
pub struct UpsertRequest {
    pub data: Vec<BTreeMap<String, String>>,
    pub duplicate_check_fields: Vec<String>,
    pub trigger: Vec<String>,
}

/// Personal data stays out of Debug output: only the shape is shown.
impl std::fmt::Debug for UpsertRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpsertRequest")
            .field("records", &self.data.len())
            .field("duplicate_check_fields", &self.duplicate_check_fields)
            .field("trigger", &self.trigger)
            .finish()
    }
}

/// `{"data":[…]}`: one entry per input record, in input order (upsert answers 200, 207 or 400).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct DataResponse {
    #[serde(default)]
    pub data: Vec<ZohoStatus>,
}

/// Zoho's status object: a per-record result inside `data[]`, and also the body of a
/// whole-call error (`{"code":"INVALID_TOKEN","details":{},"message":"…","status":"error"}`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ZohoStatus {
    #[serde(default)]
    pub code: String,
    #[serde(default)]
    pub details: serde_json::Map<String, Value>,
    #[serde(default)]
    pub message: String,
    #[serde(default)]
    pub status: String,
    /// Upsert successes only: `insert` or `update`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    /// Upsert successes only: the field an update matched on (null for inserts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duplicate_field: Option<Value>,
}

impl ZohoStatus {
    pub fn is_success(&self) -> bool {
        self.status.eq_ignore_ascii_case("success") && self.code.eq_ignore_ascii_case("SUCCESS")
    }

    /// `details.id`, as a string whatever JSON type it came as.
    pub fn id(&self) -> Option<String> {
        match self.details.get("id")? {
            Value::String(s) if !s.is_empty() => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        }
    }

    fn detail_str(&self, key: &str) -> Option<&str> {
        self.details.get(key)?.as_str().filter(|s| !s.is_empty())
    }

    /// `CODE: message (field Email, expected email)`: Zoho's own words, the culprit named.
    pub fn describe(&self) -> String {
        let mut text = match (self.code.is_empty(), self.message.is_empty()) {
            (false, false) => format!("{}: {}", self.code, self.message),
            (false, true) => self.code.clone(),
            (true, _) => self.message.clone(),
        };
        let mut extra = Vec::new();
        if let Some(f) = self.detail_str("api_name") {
            extra.push(format!("field {f}"));
        }
        if let Some(t) = self.detail_str("expected_data_type") {
            extra.push(format!("expected {t}"));
        }
        if let Some(v) = self.details.get("limit").filter(|v| !v.is_null()) {
            extra.push(format!("limit {v}"));
        }
        if !extra.is_empty() {
            text.push_str(&format!(" ({})", extra.join(", ")));
        }
        text
    }
}

/// `POST /crm/v8/coql`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CoqlRequest {
    pub select_query: String,
}

/// The COQL answer (204 No Content when nothing matched).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct CoqlResponse {
    #[serde(default)]
    pub data: Vec<serde_json::Map<String, Value>>,
    #[serde(default)]
    pub info: CoqlInfo,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct CoqlInfo {
    #[serde(default)]
    pub count: u64,
    #[serde(default)]
    pub more_records: bool,
}

/// `GET /crm/v8/settings/fields?module=…`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct FieldsResponse {
    #[serde(default)]
    pub fields: Vec<FieldMeta>,
}

/// One field of the metadata (the attributes tandem reads).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct FieldMeta {
    pub api_name: String,
    #[serde(default)]
    pub display_label: String,
    #[serde(default)]
    pub data_type: String,
    #[serde(default)]
    pub read_only: bool,
    #[serde(default)]
    pub field_read_only: bool,
    #[serde(default)]
    pub system_mandatory: bool,
    #[serde(default)]
    pub length: Option<u32>,
    /// Picklists only: the values the field takes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pick_list_values: Vec<PickListValue>,
}

/// One value of a picklist field.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct PickListValue {
    #[serde(default)]
    pub display_value: String,
    #[serde(default)]
    pub actual_value: String,
}

/// `PUT /crm/v8/{module}` (update by id).
#[derive(Clone, Serialize, Deserialize)]
pub struct UpdateRequest {
    pub data: Vec<serde_json::Map<String, Value>>,
    pub trigger: Vec<String>,
}

impl std::fmt::Debug for UpdateRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpdateRequest")
            .field("records", &self.data.len())
            .field("trigger", &self.trigger)
            .finish()
    }
}

/// Zoho Accounts' answer to a refresh (`POST /oauth/v2/token?…`); a dead grant is a 200 with
/// only `error`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct TokenAnswer {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_domain: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_in: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A COQL cell as text: null and non-strings the way a person would read them.
pub fn cell_text(v: &Value) -> Option<String> {
    match v {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        Value::Object(o) => o.get("name").and_then(cell_text),
        other => Some(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn describe_keeps_zohos_words_and_names_the_field() {
        let s: ZohoStatus = serde_json::from_str(
            r#"{"code":"INVALID_DATA","details":{"expected_data_type":"email","api_name":"Email","json_path":"$.data[0].Email"},"message":"invalid data","status":"error"}"#,
        )
        .unwrap();
        assert_eq!(
            s.describe(),
            "INVALID_DATA: invalid data (field Email, expected email)"
        );
        let ok: ZohoStatus = serde_json::from_str(
            r#"{"code":"SUCCESS","duplicate_field":null,"action":"insert","details":{"id":"5725767000000524157"},"message":"record added","status":"success"}"#,
        )
        .unwrap();
        assert!(ok.is_success());
        assert_eq!(ok.id().as_deref(), Some("5725767000000524157"));
    }
}
