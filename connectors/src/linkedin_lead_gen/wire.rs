//! LinkedIn's JSON for `GET /rest/leadFormResponses?q=owner…` (Rest.li 2.0), shared with the
//! sandbox. Elements are kept as raw JSON and mapped leniently ([`super::mapping`]): one odd
//! element must not cost the page.

use serde::{Deserialize, Serialize};

/// The finder's answer: `{"paging":{"start","count","total","links"},"elements":[…]}`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ResponsesPage {
    #[serde(default)]
    pub paging: Paging,
    #[serde(default)]
    pub elements: Vec<serde_json::Value>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Paging {
    #[serde(default)]
    pub start: u64,
    #[serde(default)]
    pub count: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total: Option<u64>,
    #[serde(default)]
    pub links: Vec<serde_json::Value>,
}

/// LinkedIn's error body: `{"status":429,"serviceErrorCode":101,"code":"TOO_MANY_REQUESTS",
/// "message":"…"}` (every key optional here: proxies answer other shapes).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ErrorBody {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_error_code: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

impl ErrorBody {
    /// "TOO_MANY_REQUESTS (101): Resource level throttle …", from whatever parts are present.
    pub fn describe(&self) -> Option<String> {
        let message = self.message.as_deref().map(str::trim).unwrap_or("");
        let code = match (self.code.as_deref(), self.service_error_code) {
            (Some(c), Some(n)) => format!("{c} ({n})"),
            (Some(c), None) => c.to_owned(),
            (None, Some(n)) => format!("serviceErrorCode {n}"),
            (None, None) => String::new(),
        };
        match (code.is_empty(), message.is_empty()) {
            (true, true) => None,
            (false, true) => Some(code),
            (true, false) => Some(message.to_owned()),
            (false, false) => Some(format!("{code}: {message}")),
        }
    }
}
