//! Mailchimp's JSON for `GET /3.0/lists/{list_id}/members`, shared with the sandbox. Members are
//! kept as raw JSON and mapped leniently ([`super::mapping`]): one odd member must not cost the
//! page.

use serde::{Deserialize, Serialize};

/// `{"members":[…],"list_id":"…","total_items":N,"_links":[…]}`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct MembersPage {
    #[serde(default)]
    pub members: Vec<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub list_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_items: Option<u64>,
    #[serde(default, rename = "_links")]
    pub links: Vec<serde_json::Value>,
}

/// One entry of an error's `errors` list.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct FieldError {
    #[serde(default)]
    pub field: String,
    #[serde(default)]
    pub message: String,
}

/// Mailchimp's RFC 7807-style error body.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Problem {
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
    #[serde(default)]
    pub title: Option<String>,
    #[serde(default)]
    pub status: Option<u16>,
    #[serde(default)]
    pub detail: Option<String>,
    #[serde(default)]
    pub instance: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
}

impl Problem {
    /// "Invalid Resource: Your merge fields were invalid. (VORNAME: Please enter a value)".
    pub fn describe(&self) -> Option<String> {
        let title = self.title.as_deref().map(str::trim).unwrap_or("");
        let detail = self.detail.as_deref().map(str::trim).unwrap_or("");
        let mut out = match (title.is_empty(), detail.is_empty()) {
            (true, true) => return None,
            (false, true) => title.to_owned(),
            (true, false) => detail.to_owned(),
            (false, false) => format!("{title}: {detail}"),
        };
        let fields: Vec<String> = self
            .errors
            .iter()
            .filter(|e| !e.field.is_empty() || !e.message.is_empty())
            .map(|e| format!("{}: {}", e.field, e.message))
            .collect();
        if !fields.is_empty() {
            out.push_str(&format!(" ({})", fields.join("; ")));
        }
        Some(out)
    }
}
