//! Brevo's JSON bodies for `GET /v3/contacts`, shared by the client and the sandbox. Decoding is
//! lenient (every field optional, attributes any JSON), so one odd contact never sinks a page.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// `GetContacts`: one page and the number of contacts matching the filter.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ContactsPage {
    #[serde(default)]
    pub contacts: Vec<Contact>,
    #[serde(default)]
    pub count: Option<u64>,
}

/// `GetContactDetails`.
#[derive(Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Contact {
    /// Brevo's numeric contact id (kept as JSON: a number, or a string from a proxy).
    #[serde(default)]
    pub id: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email_blacklisted: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sms_blacklisted: Option<bool>,
    /// RFC 3339 with an offset, e.g. `2024-06-01T10:00:00.000+02:00`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub modified_at: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub list_ids: Vec<Value>,
    /// Upper-case attribute names (`FIRSTNAME`, `LASTNAME`, `SMS`, custom ones).
    #[serde(default)]
    pub attributes: Map<String, Value>,
}

/// Personal data stays out of Debug output: ids, stamps and attribute names only.
impl std::fmt::Debug for Contact {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Contact")
            .field("id", &self.id)
            .field("created_at", &self.created_at)
            .field("modified_at", &self.modified_at)
            .field("attributes", &self.attributes.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

/// Brevo's error body: `{"code": "invalid_parameter", "message": "…"}`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ErrorBody {
    #[serde(default)]
    pub code: String,
    #[serde(default)]
    pub message: String,
}

/// Rate-limit headers on every answer of a limited endpoint.
pub const H_LIMIT: &str = "x-sib-ratelimit-limit";
pub const H_REMAINING: &str = "x-sib-ratelimit-remaining";
/// Seconds until the window resets.
pub const H_RESET: &str = "x-sib-ratelimit-reset";
