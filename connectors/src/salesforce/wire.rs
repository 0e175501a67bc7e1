//! Salesforce's JSON bodies as tandem sends and reads them, shared with the sandbox so both sides
//! agree on every name. Top-level REST errors say `errorCode`; per-record errors in collection
//! results say `statusCode` (VENDOR-NOTES §2.2).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// One entry of a REST error body (the body is a JSON array of these).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ApiError {
    pub message: String,
    #[serde(rename = "errorCode")]
    pub error_code: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<String>,
}

impl ApiError {
    pub fn new(code: &str, message: impl Into<String>) -> Self {
        ApiError {
            message: message.into(),
            error_code: code.to_owned(),
            fields: Vec::new(),
        }
    }
}

/// "CODE: message" for every entry, the way it lands in the dead-letter list.
pub fn describe_errors(errors: &[ApiError]) -> String {
    errors
        .iter()
        .map(|e| format!("{}: {}", e.error_code, e.message))
        .collect::<Vec<_>>()
        .join("; ")
}

/// One per-record error in a collection result.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RecordError {
    #[serde(rename = "statusCode")]
    pub status_code: String,
    pub message: String,
    #[serde(default)]
    pub fields: Vec<String>,
}

impl RecordError {
    pub fn new(code: &str, message: impl Into<String>, fields: &[&str]) -> Self {
        RecordError {
            status_code: code.to_owned(),
            message: message.into(),
            fields: fields.iter().map(|f| (*f).to_owned()).collect(),
        }
    }

    pub fn describe(&self) -> String {
        if self.fields.is_empty() {
            format!("{}: {}", self.status_code, self.message)
        } else {
            format!(
                "{}: {} (fields: {})",
                self.status_code,
                self.message,
                self.fields.join(", ")
            )
        }
    }
}

/// SaveResult / UpsertResult: one per record of a collection call, in request order.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SaveResult {
    pub id: Option<String>,
    pub success: bool,
    #[serde(default)]
    pub errors: Vec<RecordError>,
    /// Upserts only: true = inserted, false = updated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<bool>,
}

/// The body of every sObject Collections write.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CollectionRequest {
    #[serde(rename = "allOrNone")]
    pub all_or_none: bool,
    pub records: Vec<Map<String, Value>>,
}

/// A record body: `{"attributes":{"type":"Lead"}, field: value, …}`.
pub fn record(
    object: &str,
    fields: impl IntoIterator<Item = (String, String)>,
) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("attributes".into(), serde_json::json!({ "type": object }));
    for (k, v) in fields {
        m.insert(k, Value::String(v));
    }
    m
}

/// A page of SOQL results.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct QueryResponse {
    #[serde(rename = "totalSize")]
    pub total_size: u64,
    pub done: bool,
    #[serde(
        rename = "nextRecordsUrl",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub next_records_url: Option<String>,
    pub records: Vec<Map<String, Value>>,
}

/// A field value as text: strings as they are, numbers/booleans printed, null = None.
pub fn text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// `GET /sobjects/{Object}/describe`, the parts tandem reads.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Describe {
    pub name: String,
    pub fields: Vec<FieldDescribe>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FieldDescribe {
    pub name: String,
    pub label: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub createable: bool,
    pub updateable: bool,
    #[serde(rename = "externalId")]
    pub external_id: bool,
    pub nillable: bool,
    #[serde(rename = "defaultedOnCreate")]
    pub defaulted_on_create: bool,
    #[serde(default)]
    pub unique: bool,
    #[serde(default)]
    pub length: u32,
}

/// What `POST /services/oauth2/token` answers for a refresh (no `expires_in`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TokenResponse {
    pub access_token: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    pub signature: String,
    pub scope: String,
    pub instance_url: String,
    pub id: String,
    pub token_type: String,
    pub issued_at: String,
}
