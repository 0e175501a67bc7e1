//! Pipedrive's JSON: the `{success, data, additional_data}` envelope, the error envelope
//! `{success:false, error, error_info}`, v2 persons (body, record, search hit), v1 leads and
//! person fields, v2 deals, v1 deal fields and deal participants. Shared by the client and the
//! sandbox; decoding is lenient, encoding exact.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Every successful answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Envelope<T> {
    pub success: bool,
    pub data: Option<T>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub additional_data: Option<AdditionalData>,
}

/// Paging: v2 cursors, v1 offsets.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct AdditionalData {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pagination: Option<Pagination>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Pagination {
    pub start: u64,
    pub limit: u64,
    pub more_items_in_collection: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_start: Option<u64>,
}

/// Every failed answer.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ErrorBody {
    #[serde(default)]
    pub success: bool,
    #[serde(default)]
    pub error: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    #[serde(default, rename = "errorCode", skip_serializing_if = "Option::is_none")]
    pub error_code: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_info: Option<String>,
    #[serde(default)]
    pub data: Option<Value>,
    #[serde(default)]
    pub additional_data: Option<Value>,
}

/// One email or phone of a person.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct ContactValue {
    pub value: String,
    #[serde(default)]
    pub primary: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
}

impl std::fmt::Debug for ContactValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ContactValue")
            .field("primary", &self.primary)
            .finish_non_exhaustive()
    }
}

impl ContactValue {
    /// A work value marked primary, the way tandem writes them.
    pub fn primary(value: &str) -> Self {
        ContactValue {
            value: value.to_owned(),
            primary: true,
            label: Some("work".to_owned()),
        }
    }
}

/// `AddPersonRequest` / `UpdatePersonRequest` of API v2 (only the fields tandem writes).
#[derive(Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PersonBody {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner_id: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org_id: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub emails: Option<Vec<ContactValue>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phones: Option<Vec<ContactValue>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub visible_to: Option<u32>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub custom_fields: BTreeMap<String, Value>,
}

impl std::fmt::Debug for PersonBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PersonBody")
            .field("name", &self.name.as_ref().map(|_| "…"))
            .field("emails", &self.emails.as_ref().map(Vec::len))
            .field("phones", &self.phones.as_ref().map(Vec::len))
            .field(
                "custom_fields",
                &self.custom_fields.keys().collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

impl PersonBody {
    pub fn is_empty(&self) -> bool {
        *self == PersonBody::default()
    }
}

/// A v2 person as Pipedrive returns it.
#[derive(Clone, Default, Serialize, Deserialize)]
pub struct Person {
    pub id: u64,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub first_name: Option<String>,
    #[serde(default)]
    pub last_name: Option<String>,
    #[serde(default)]
    pub owner_id: Option<u64>,
    #[serde(default)]
    pub org_id: Option<u64>,
    #[serde(default)]
    pub add_time: Option<String>,
    #[serde(default)]
    pub update_time: Option<String>,
    #[serde(default)]
    pub emails: Vec<ContactValue>,
    #[serde(default)]
    pub phones: Vec<ContactValue>,
    #[serde(default)]
    pub is_deleted: bool,
    #[serde(default)]
    pub visible_to: Option<u32>,
    #[serde(default)]
    pub custom_fields: BTreeMap<String, Value>,
}

impl std::fmt::Debug for Person {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Person")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl Person {
    /// Whether one of the person's emails is `email` (case-insensitive).
    pub fn has_email(&self, email: &str) -> bool {
        self.emails
            .iter()
            .any(|e| e.value.trim().eq_ignore_ascii_case(email.trim()))
    }
}

/// `GET /api/v2/persons/search` data.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SearchData {
    #[serde(default)]
    pub items: Vec<SearchHit>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SearchHit {
    #[serde(default)]
    pub result_score: f64,
    pub item: SearchItem,
}

/// A search result's person: emails and phones are plain strings here.
#[derive(Clone, Serialize, Deserialize)]
pub struct SearchItem {
    pub id: u64,
    #[serde(rename = "type", default)]
    pub kind: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub emails: Vec<Value>,
    #[serde(default)]
    pub phones: Vec<Value>,
    #[serde(default)]
    pub visible_to: Option<u32>,
}

impl std::fmt::Debug for SearchItem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SearchItem")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl SearchItem {
    pub fn email_values(&self) -> impl Iterator<Item = &str> {
        self.emails.iter().filter_map(|v| match v {
            Value::String(s) => Some(s.as_str()),
            Value::Object(o) => o.get("value").and_then(Value::as_str),
            _ => None,
        })
    }
}

/// v1 `AddLeadRequest` (the fields tandem sends).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LeadBody {
    pub title: String,
    pub person_id: u64,
}

/// A v1 lead (ids are UUID strings).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Lead {
    pub id: String,
    #[serde(default)]
    pub title: String,
    #[serde(default)]
    pub person_id: Option<u64>,
    #[serde(default)]
    pub add_time: Option<String>,
}

/// One entry of `GET /api/v1/personFields`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PersonField {
    #[serde(default)]
    pub id: u64,
    pub key: String,
    pub name: String,
    #[serde(default)]
    pub field_type: String,
    #[serde(default)]
    pub edit_flag: bool,
    #[serde(default)]
    pub bulk_edit_allowed: bool,
}

/// A deal as API v2 returns it (the fields tandem reads). v1 shapes (`person_id` as an object,
/// `YYYY-MM-DD HH:MM:SS` times) are read too, so a v1 body never breaks a poll.
#[derive(Clone, Default, Serialize, Deserialize)]
pub struct Deal {
    pub id: u64,
    #[serde(default)]
    pub title: Option<String>,
    #[serde(default)]
    pub pipeline_id: Option<u64>,
    #[serde(default)]
    pub stage_id: Option<u64>,
    /// `open`, `won`, `lost` (or `deleted` when asked for).
    #[serde(default)]
    pub status: Option<String>,
    /// A JSON number (v2) or a numeric string.
    #[serde(default)]
    pub value: Option<Value>,
    #[serde(default)]
    pub currency: Option<String>,
    #[serde(default)]
    pub add_time: Option<String>,
    #[serde(default)]
    pub update_time: Option<String>,
    #[serde(default)]
    pub won_time: Option<String>,
    #[serde(default)]
    pub lost_time: Option<String>,
    #[serde(default)]
    pub close_time: Option<String>,
    /// The deal's main person: a number (v2) or `{value, name, email…}` (v1).
    #[serde(default)]
    pub person_id: Option<Value>,
    #[serde(default)]
    pub is_deleted: bool,
    /// Only with `include_fields=participants_count`.
    #[serde(default)]
    pub participants_count: Option<u32>,
    #[serde(default)]
    pub custom_fields: BTreeMap<String, Value>,
}

impl std::fmt::Debug for Deal {
    // Titles and custom fields often carry a person's or company's name: ids and states only.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Deal")
            .field("id", &self.id)
            .field("pipeline_id", &self.pipeline_id)
            .field("stage_id", &self.stage_id)
            .field("status", &self.status)
            .field("update_time", &self.update_time)
            .finish_non_exhaustive()
    }
}

impl Deal {
    /// The main person's id, whichever API version shaped it.
    pub fn person(&self) -> Option<u64> {
        match self.person_id.as_ref()? {
            Value::Number(n) => n.as_u64(),
            Value::String(s) => s.trim().parse().ok(),
            Value::Object(o) => o.get("value").and_then(|v| {
                v.as_u64()
                    .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
            }),
            _ => None,
        }
    }
}

/// `PATCH /api/v2/deals/{id}` as tandem sends it: only the custom fields it owns.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DealFieldsBody {
    pub custom_fields: BTreeMap<String, Value>,
}

/// One entry of `GET /api/v1/dealFields` (the same shape as person fields).
pub type DealField = PersonField;

/// One entry of `GET /api/v1/deals/{id}/participants`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Participant {
    #[serde(default)]
    pub id: u64,
    #[serde(default)]
    pub person_id: Option<ParticipantPerson>,
    #[serde(default = "active")]
    pub active_flag: bool,
}

fn active() -> bool {
    true
}

/// The person inside a participant entry (v1 shape: the id is `value`).
#[derive(Clone, Serialize, Deserialize)]
pub struct ParticipantPerson {
    pub value: u64,
    #[serde(default)]
    pub email: Vec<ContactValue>,
}

impl std::fmt::Debug for ParticipantPerson {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ParticipantPerson")
            .field("value", &self.value)
            .finish_non_exhaustive()
    }
}

impl ParticipantPerson {
    /// The primary email, else the first one.
    pub fn primary_email(&self) -> Option<&str> {
        self.email
            .iter()
            .find(|e| e.primary)
            .or(self.email.first())
            .map(|e| e.value.trim())
            .filter(|e| !e.is_empty())
    }
}
