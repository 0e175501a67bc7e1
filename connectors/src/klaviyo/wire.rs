//! Klaviyo's JSON:API bodies for reading profiles, shared by the client and the sandbox.
//! Decoding is lenient: each profile is read on its own, attributes as any JSON.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// A collection answer: `{"data": [...], "links": {"self", "next", "prev"}}`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Collection {
    #[serde(default)]
    pub data: Vec<Value>,
    #[serde(default)]
    pub links: Links,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Links {
    #[serde(default, rename = "self", skip_serializing_if = "Option::is_none")]
    pub this: Option<String>,
    #[serde(default)]
    pub next: Option<String>,
    #[serde(default)]
    pub prev: Option<String>,
}

/// One `profile` resource.
#[derive(Clone, Default, Serialize, Deserialize)]
pub struct Profile {
    #[serde(default, rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub id: String,
    /// `email`, `phone_number`, `first_name`, …, `location{…}`, `properties{…}`, `created`,
    /// `updated` (and `joined_group_at` from a list's members).
    #[serde(default)]
    pub attributes: Map<String, Value>,
}

/// Personal data stays out of Debug output.
impl std::fmt::Debug for Profile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Profile")
            .field("id", &self.id)
            .field("attributes", &self.attributes.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// `{"errors": [{"id", "status", "code", "title", "detail", "source"}]}`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ErrorBody {
    #[serde(default)]
    pub errors: Vec<ErrorObject>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ErrorObject {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// A number in Klaviyo's answers; a string is tolerated.
    #[serde(default)]
    pub status: Value,
    #[serde(default)]
    pub code: String,
    #[serde(default)]
    pub title: String,
    #[serde(default)]
    pub detail: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<Value>,
}

/// Steady-window headers on every non-429 answer.
pub const H_LIMIT: &str = "ratelimit-limit";
pub const H_REMAINING: &str = "ratelimit-remaining";
pub const H_RESET: &str = "ratelimit-reset";
