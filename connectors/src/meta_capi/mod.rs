//! Meta Conversions API (`kind = "meta_capi"`) as a write-back destination: a deal's milestones
//! go back to a Meta dataset (pixel) as CRM events of the Conversion Leads funnel,
//! `POST {base_url}/{api_version}/{dataset_id}/events?access_token=…`, so Meta learns which of
//! its leads qualified, became opportunities and closed.
//!
//! - [`client`]: the [`crate::writeback::WritebackSink`] (send, verify).
//! - [`event`]: one [`crate::writeback::Conversion`] → one CAPI event, and the 7-day rule.
//! - [`normalize`]: identifiers normalised and SHA-256 hashed exactly as Meta specifies.
//! - [`crate::meta_graph`]: the Graph error envelope in the engine's terms (shared with Lead Ads).
//! - `sandbox` (feature `sandbox`): a faithful fake of the events endpoint.
//!
//! See docs/writeback/meta_capi.md for what is sent and the decisions taken here.
//!
//! ```toml
//! [connectors.meta]
//! kind = "meta_capi"
//! dataset_id = "1234567890123456"            # Events Manager → Data sources → the dataset's id
//! access_token = "${env:META_CAPI_TOKEN}"    # a system-user token with ads_management
//! # api_version = "v24.0"
//! # event_names = { qualified = "Marketing Qualified Lead", opportunity = "Sales Opportunity", won = "Converted" }
//! # test_event_code = "TEST12345"            # Events Manager → Test events (never in production)
//! # lead_event_source = "HubSpot"            # default: the CRM's product name
//! # rate_limit = "10/1s"
//! # timeout = "30s"
//! # base_url = "https://graph.facebook.com"
//! ```

pub mod client;
pub mod event;
pub mod normalize;
#[cfg(feature = "sandbox")]
pub mod sandbox;
#[cfg(all(test, feature = "sandbox"))]
mod tests;

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use crate::{sink::RateLimit, units::HumanDuration, writeback::Milestone};

pub use client::MetaCapiSink;

/// Graph's production host.
pub const DEFAULT_BASE_URL: &str = "https://graph.facebook.com";
/// The Graph API version tandem was built against.
pub const DEFAULT_API_VERSION: &str = "v24.0";
/// "You can send up to 1,000 events in `data`."
pub const MAX_EVENTS: usize = 1000;
/// Meta refuses a whole request when any event in it is older than this.
pub const MAX_EVENT_AGE: Duration = Duration::from_secs(7 * 86_400);
/// Meta publishes no per-dataset request rate for the Conversions API (the Graph platform
/// limits apply); each request carries up to 1,000 events, so a modest pace is plenty.
pub const DEFAULT_RATE_LIMIT: RateLimit = RateLimit {
    requests: 10,
    per: Duration::from_secs(1),
};
/// Longest event name accepted (Meta's limit on custom event names).
pub const MAX_EVENT_NAME: usize = 50;

/// `event_names = { … }`: the CAPI `event_name` per milestone. An empty string turns that
/// milestone off; `lost` is off unless named.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventNames {
    #[serde(default = "default_qualified")]
    pub qualified: String,
    #[serde(default = "default_opportunity")]
    pub opportunity: String,
    #[serde(default = "default_won")]
    pub won: String,
    #[serde(default)]
    pub lost: String,
}

fn default_qualified() -> String {
    "Marketing Qualified Lead".to_owned()
}
fn default_opportunity() -> String {
    "Sales Opportunity".to_owned()
}
fn default_won() -> String {
    "Converted".to_owned()
}

impl Default for EventNames {
    fn default() -> Self {
        EventNames {
            qualified: default_qualified(),
            opportunity: default_opportunity(),
            won: default_won(),
            lost: String::new(),
        }
    }
}

impl EventNames {
    /// The event name configured for `m`, `None` when the milestone is off.
    pub fn get(&self, m: Milestone) -> Option<&str> {
        let name = match m {
            Milestone::Qualified => &self.qualified,
            Milestone::Opportunity => &self.opportunity,
            Milestone::Won => &self.won,
            Milestone::Lost => &self.lost,
        };
        Some(name.trim()).filter(|n| !n.is_empty())
    }
}

/// `[connectors.NAME]` with `kind = "meta_capi"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetaCapiConfig {
    /// The dataset (pixel) id the events go to.
    #[serde(default)]
    pub dataset_id: String,
    /// A token that may post to the dataset (system user with `ads_management`).
    #[serde(default)]
    pub access_token: Option<SecretString>,
    #[serde(default = "default_api_version")]
    pub api_version: String,
    #[serde(default)]
    pub event_names: EventNames,
    /// Routes every event to Events Manager › Test events only.
    #[serde(default)]
    pub test_event_code: Option<String>,
    /// `custom_data.lead_event_source`; default: the CRM's product name ("HubSpot", …).
    #[serde(default)]
    pub lead_event_source: Option<String>,
    #[serde(default = "default_base_url")]
    pub base_url: String,
    #[serde(default)]
    pub rate_limit: Option<RateLimit>,
    #[serde(default = "default_timeout")]
    pub timeout: HumanDuration,
}

fn default_api_version() -> String {
    DEFAULT_API_VERSION.to_owned()
}
fn default_base_url() -> String {
    DEFAULT_BASE_URL.to_owned()
}
fn default_timeout() -> HumanDuration {
    HumanDuration(Duration::from_secs(30))
}

/// `v24.0`: a `v`, a major and a minor number.
pub fn valid_api_version(v: &str) -> bool {
    let Some((major, minor)) = v.strip_prefix('v').and_then(|r| r.split_once('.')) else {
        return false;
    };
    let digits = |s: &str| !s.is_empty() && s.len() <= 4 && s.bytes().all(|b| b.is_ascii_digit());
    digits(major) && digits(minor)
}

impl MetaCapiConfig {
    pub fn effective_rate_limit(&self) -> RateLimit {
        self.rate_limit.unwrap_or(DEFAULT_RATE_LIMIT)
    }

    pub fn validate(&self) -> Vec<(String, String)> {
        let mut p: Vec<(String, String)> = Vec::new();
        let mut push = |k: &str, m: String| p.push((k.to_owned(), m));
        let id = self.dataset_id.trim();
        if id.is_empty() || id.len() > 32 || !id.bytes().all(|b| b.is_ascii_digit()) {
            push(
                "dataset_id",
                format!(
                    "{:?} is not a dataset id; copy the numeric id from Events Manager → Data sources (the pixel id), e.g. \"1234567890123456\"",
                    self.dataset_id
                ),
            );
        }
        match &self.access_token {
            None => push(
                "access_token",
                "no access token: create a system user token with ads_management in Business settings (or Events Manager → Settings → Conversions API → Generate access token)".to_owned(),
            ),
            Some(t) if t.expose_secret().trim().is_empty() => {
                push("access_token", "the access token is empty".to_owned())
            }
            Some(_) => {}
        }
        if !valid_api_version(self.api_version.trim()) {
            push(
                "api_version",
                format!(
                    "{:?} is not a Graph API version; write e.g. \"{DEFAULT_API_VERSION}\"",
                    self.api_version
                ),
            );
        }
        let mut any = false;
        let mut seen: Vec<(&str, &str)> = Vec::new();
        for m in Milestone::ALL {
            let raw = match m {
                Milestone::Qualified => &self.event_names.qualified,
                Milestone::Opportunity => &self.event_names.opportunity,
                Milestone::Won => &self.event_names.won,
                Milestone::Lost => &self.event_names.lost,
            };
            let key = format!("event_names.{}", m.name());
            let Some(name) = self.event_names.get(m) else {
                continue;
            };
            any = true;
            if name.chars().count() > MAX_EVENT_NAME {
                push(
                    &key,
                    format!("event names have at most {MAX_EVENT_NAME} characters; shorten it"),
                );
            } else if raw.trim() != raw.as_str() {
                push(
                    &key,
                    format!("{raw:?} has spaces around it; write {name:?}"),
                );
            }
            if let Some((other, _)) = seen.iter().find(|(_, n)| *n == name) {
                push(
                    &key,
                    format!(
                        "{name:?} is also the event name of `{other}`; Meta dedups on event_id + event_name, so give each milestone its own name"
                    ),
                );
            }
            seen.push((m.name(), name));
        }
        if !any {
            push(
                "event_names",
                "every milestone is off; name at least one event, e.g. won = \"Converted\""
                    .to_owned(),
            );
        }
        if let Some(code) = &self.test_event_code {
            let c = code.trim();
            if c.is_empty() || c.len() > 64 || !c.bytes().all(|b| b.is_ascii_alphanumeric()) {
                push(
                    "test_event_code",
                    format!(
                        "{code:?} is not a test event code; copy it from Events Manager → Test events (e.g. \"TEST12345\"), or remove the key"
                    ),
                );
            }
        }
        if let Some(s) = &self.lead_event_source
            && (s.trim().is_empty() || s.chars().count() > 100)
        {
            push(
                "lead_event_source",
                "name the CRM in 1 to 100 characters (e.g. \"HubSpot\"), or remove the key to use the CRM's product name".to_owned(),
            );
        }
        if let Err(reason) = crate::hubspot::parse_base_url(&self.base_url) {
            push(
                "base_url",
                format!(
                    "{:?} is not a usable URL ({reason}); write e.g. \"{DEFAULT_BASE_URL}\"",
                    self.base_url
                ),
            );
        }
        if self.timeout.0.is_zero() {
            push(
                "timeout",
                "a zero timeout fails every call; write e.g. \"30s\"".to_owned(),
            );
        }
        p
    }
}

impl crate::Connector for MetaCapiConfig {
    fn validate(&self) -> Vec<(String, String)> {
        MetaCapiConfig::validate(self)
    }

    fn writeback_sink(
        &self,
        ctx: crate::ConnectorContext,
    ) -> Result<Option<std::sync::Arc<dyn crate::writeback::WritebackSink>>, crate::BuildError>
    {
        Ok(Some(std::sync::Arc::new(MetaCapiSink::new(self, ctx)?)))
    }

    fn is_writeback(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod config_tests {
    use super::*;

    fn config(v: serde_json::Value) -> MetaCapiConfig {
        serde_json::from_value(v).expect("config parses")
    }

    #[test]
    fn defaults_and_redaction() {
        let c =
            config(serde_json::json!({"dataset_id": "1234567890", "access_token": "EAAB-secret"}));
        assert!(c.validate().is_empty(), "{:?}", c.validate());
        assert_eq!(c.api_version, "v24.0");
        assert_eq!(c.base_url, "https://graph.facebook.com");
        assert_eq!(
            c.event_names.get(Milestone::Qualified),
            Some("Marketing Qualified Lead")
        );
        assert_eq!(
            c.event_names.get(Milestone::Opportunity),
            Some("Sales Opportunity")
        );
        assert_eq!(c.event_names.get(Milestone::Won), Some("Converted"));
        assert_eq!(c.event_names.get(Milestone::Lost), None);
        assert_eq!(c.effective_rate_limit().to_string(), "10/1s");
        assert!(!format!("{c:?}").contains("EAAB-secret"));
        // Naming one event keeps the other defaults; an empty name turns a milestone off.
        let c = config(serde_json::json!({"dataset_id": "1", "access_token": "t",
            "event_names": {"won": "Purchase", "qualified": "", "lost": "Lost"}}));
        assert_eq!(c.event_names.get(Milestone::Qualified), None);
        assert_eq!(
            c.event_names.get(Milestone::Opportunity),
            Some("Sales Opportunity")
        );
        assert_eq!(c.event_names.get(Milestone::Won), Some("Purchase"));
        assert_eq!(c.event_names.get(Milestone::Lost), Some("Lost"));
    }

    #[test]
    fn bad_values_are_named_with_a_hint() {
        assert!(
            serde_json::from_value::<MetaCapiConfig>(
                serde_json::json!({"dataset_id": "1", "access_token": "t", "pixel": "1"})
            )
            .is_err()
        );
        assert!(
            serde_json::from_value::<MetaCapiConfig>(serde_json::json!({
                "dataset_id": "1", "access_token": "t", "event_names": {"closed": "X"}
            }))
            .is_err()
        );
        let c = config(serde_json::json!({
            "dataset_id": "px-1", "api_version": "24", "test_event_code": "TEST 1",
            "event_names": {"qualified": "Converted", "opportunity": " Opp "},
            "base_url": "ftp://x", "timeout": "0s", "lead_event_source": " "
        }));
        let keys: Vec<String> = c.validate().into_iter().map(|(k, _)| k).collect();
        assert_eq!(
            keys,
            [
                "dataset_id",
                "access_token",
                "api_version",
                "event_names.opportunity",
                "event_names.won",
                "test_event_code",
                "lead_event_source",
                "base_url",
                "timeout"
            ]
        );
        let c = config(serde_json::json!({"dataset_id": "1", "access_token": "t",
            "event_names": {"qualified": "", "opportunity": "", "won": ""}}));
        assert_eq!(c.validate()[0].0, "event_names");
        assert!(
            valid_api_version("v24.0") && !valid_api_version("v24") && !valid_api_version("24.0")
        );
    }
}
