//! Klaviyo as a polled lead source (`kind = "klaviyo"`): new profiles are read with
//! `GET /api/profiles?filter=greater-than(created,…)&sort=created&page[size]=100` (JSON:API,
//! `Authorization: Klaviyo-API-Key pk_…`, a pinned `revision` header), following `links.next`
//! page cursors; each profile is a lead whose `event_id` is the Klaviyo profile id. With
//! `list_id`, joining that list is what makes a lead (`/api/lists/{id}/profiles`, by
//! `joined_group_at`).
//!
//! - [`client`]: the [`crate::source::PolledSource`] and its error classification.
//! - [`cursor`]: the opaque cursor (the pass's `since`, Klaviyo's page cursor inside it, the
//!   newest stamp seen).
//! - [`mapping`]: a profile → a [`crate::source::SourceLead`].
//! - [`wire`]: Klaviyo's JSON:API bodies, shared with the sandbox.
//! - `sandbox` (feature `sandbox`): a faithful fake of the profiles read API.
//!
//! ```toml
//! [connectors.klaviyo]
//! kind = "klaviyo"
//! api_key = "${env:KLAVIYO_API_KEY}"   # private key pk_…, scope profiles:read (+ lists:read)
//! # list_id = "Y6nRLr"                 # only people joining this list
//! # leads_from = "created"             # created (new profiles only) | updated (every change)
//! # revision = "2026-01-15"
//! # poll_interval = "5m"
//! # start_from = "7d"
//! # overlap = "5m"
//! # page_size = 100                    # 1..=100
//! # rate_limit = "700/1m"
//! # base_url = "https://a.klaviyo.com"
//! # timeout = "30s"
//! ```

pub mod client;
pub mod cursor;
pub mod mapping;
#[cfg(feature = "sandbox")]
pub mod sandbox;
pub mod wire;

use std::{sync::Arc, time::Duration};

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use crate::{sink::RateLimit, units::HumanDuration};

pub use client::KlaviyoSource;

/// Klaviyo's production API (paths start with `/api/`).
pub const DEFAULT_BASE_URL: &str = "https://a.klaviyo.com";
/// The API revision tandem is written against (sent as the `revision` header).
pub const DEFAULT_REVISION: &str = "2026-01-15";
/// Klaviyo's cap on `page[size]` for profiles.
pub const MAX_PAGE_SIZE: u32 = 100;
/// Get Profiles / Get List Profiles: steady 700 per minute (burst 75 per second).
pub const DOCUMENTED_RATE_LIMIT: RateLimit = RateLimit {
    requests: 700,
    per: Duration::from_secs(60),
};

/// Which change to a profile makes a lead.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LeadsFrom {
    /// Creation (or joining `list_id`): one lead per profile, ever (`event_id` = profile id).
    #[default]
    Created,
    /// Every update: one lead per profile and `updated` (`event_id` = `"{id}@{updated}"`).
    Updated,
}

/// `[connectors.NAME]` with `kind = "klaviyo"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KlaviyoConfig {
    /// A private API key (`pk_…`) with `profiles:read` (and `lists:read` for `list_id`).
    pub api_key: SecretString,
    #[serde(default = "default_base_url")]
    pub base_url: String,
    /// The `revision` header: the API version the requests and answers follow.
    #[serde(default = "default_revision")]
    pub revision: String,
    #[serde(default = "default_poll_interval")]
    pub poll_interval: HumanDuration,
    #[serde(default = "default_start_from")]
    pub start_from: HumanDuration,
    #[serde(default = "default_overlap")]
    pub overlap: HumanDuration,
    #[serde(default = "default_timeout")]
    pub timeout: HumanDuration,
    #[serde(default)]
    pub rate_limit: Option<RateLimit>,
    /// Only people who join this list (its id from the list's URL in Klaviyo).
    #[serde(default)]
    pub list_id: Option<String>,
    #[serde(default)]
    pub leads_from: LeadsFrom,
    #[serde(default = "default_page_size")]
    pub page_size: u32,
}

fn default_base_url() -> String {
    DEFAULT_BASE_URL.to_owned()
}
fn default_revision() -> String {
    DEFAULT_REVISION.to_owned()
}
fn default_poll_interval() -> HumanDuration {
    HumanDuration(Duration::from_secs(300))
}
fn default_start_from() -> HumanDuration {
    HumanDuration(Duration::from_secs(7 * 86_400))
}
fn default_overlap() -> HumanDuration {
    HumanDuration(Duration::from_secs(300))
}
fn default_timeout() -> HumanDuration {
    HumanDuration(Duration::from_secs(30))
}
fn default_page_size() -> u32 {
    MAX_PAGE_SIZE
}

/// `YYYY-MM-DD`, optionally `.pre` (Klaviyo's beta revisions).
fn revision_ok(r: &str) -> bool {
    let date = r.strip_suffix(".pre").unwrap_or(r);
    date.len() == 10
        && date.parse::<jiff::civil::Date>().is_ok()
        && date.as_bytes().get(4) == Some(&b'-')
}

fn list_id_ok(id: &str) -> bool {
    !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_alphanumeric())
}

impl KlaviyoConfig {
    pub fn effective_rate_limit(&self) -> RateLimit {
        self.rate_limit.unwrap_or(DOCUMENTED_RATE_LIMIT)
    }

    /// Problems serde can't see, as (key, message with a hint). Empty when the config is usable.
    pub fn validate(&self) -> Vec<(String, String)> {
        let mut problems = Vec::new();
        let mut push = |k: &str, m: String| problems.push((k.to_owned(), m));
        let key = self.api_key.expose_secret().trim();
        if key.is_empty() {
            push(
                "api_key",
                "the API key is empty; create a private key (pk_…) in Klaviyo under Settings → API keys with profiles:read".to_owned(),
            );
        } else if !key.starts_with("pk_") {
            push(
                "api_key",
                "this is not a Klaviyo private API key (they start with pk_; the 6-character public key can't read profiles)".to_owned(),
            );
        }
        if let Err(reason) = crate::brevo::parse_base_url(&self.base_url) {
            push(
                "base_url",
                format!(
                    "{:?} is not a usable URL ({reason}); write e.g. \"{DEFAULT_BASE_URL}\"",
                    self.base_url
                ),
            );
        }
        if !revision_ok(&self.revision) {
            push(
                "revision",
                format!(
                    "{:?} is not a Klaviyo API revision; write a date such as \"{DEFAULT_REVISION}\"",
                    self.revision
                ),
            );
        }
        if self.poll_interval.0.is_zero() {
            push(
                "poll_interval",
                "a zero interval would poll in a loop; write e.g. \"5m\"".to_owned(),
            );
        }
        if self.overlap.0 < Duration::from_secs(1) {
            push(
                "overlap",
                "an overlap under 1s skips profiles that share the last stamp seen (Klaviyo's filter is strictly greater-than, to the second) or arrive late; write e.g. \"5m\"".to_owned(),
            );
        }
        if self.timeout.0.is_zero() {
            push(
                "timeout",
                "a zero timeout fails every call; write e.g. \"30s\"".to_owned(),
            );
        }
        if !(1..=MAX_PAGE_SIZE).contains(&self.page_size) {
            push(
                "page_size",
                format!(
                    "{} is outside Klaviyo's 1..={MAX_PAGE_SIZE} profiles per page",
                    self.page_size
                ),
            );
        }
        if let Some(wanted) = self.rate_limit
            && crate::brevo::exceeds(wanted, DOCUMENTED_RATE_LIMIT)
        {
            push(
                "rate_limit",
                format!(
                    "{wanted} exceeds Klaviyo's {DOCUMENTED_RATE_LIMIT} for reading profiles; Klaviyo would answer 429. Lower it"
                ),
            );
        }
        if let Some(id) = &self.list_id {
            if !list_id_ok(id) {
                push(
                    "list_id",
                    format!(
                        "{id:?} is not a Klaviyo list id; copy it from the list's URL (e.g. \"Y6nRLr\")"
                    ),
                );
            } else if self.leads_from == LeadsFrom::Updated {
                push(
                    "leads_from",
                    "with list_id a lead is joining the list; Klaviyo's list members can't be filtered by update, so leave leads_from at \"created\"".to_owned(),
                );
            }
        }
        problems
    }
}

impl crate::Connector for KlaviyoConfig {
    fn validate(&self) -> Vec<(String, String)> {
        KlaviyoConfig::validate(self)
    }

    fn is_source(&self) -> bool {
        true
    }

    fn polled_source(
        &self,
        _ctx: crate::ConnectorContext,
    ) -> Result<Option<Arc<dyn crate::source::PolledSource>>, crate::BuildError> {
        Ok(Some(Arc::new(KlaviyoSource::new(self)?)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Connector;

    fn config(json: serde_json::Value) -> KlaviyoConfig {
        serde_json::from_value(json).expect("config parses")
    }

    #[test]
    fn defaults_are_documented() {
        let c = config(serde_json::json!({"api_key": "pk_SECRET"}));
        assert_eq!(c.base_url, DEFAULT_BASE_URL);
        assert_eq!(c.revision, "2026-01-15");
        assert_eq!(c.page_size, 100);
        assert_eq!(c.overlap.to_string(), "5m");
        assert_eq!(c.effective_rate_limit().to_string(), "700/1m");
        assert!(c.validate().is_empty(), "{:?}", c.validate());
        assert!(c.is_source());
        assert!(
            c.polled_source(crate::ConnectorContext::in_memory("k"))
                .unwrap()
                .is_some()
        );
        assert!(!format!("{c:?}").contains("SECRET"));
    }

    #[test]
    fn refuses_what_klaviyo_would_refuse() {
        assert!(
            serde_json::from_value::<KlaviyoConfig>(
                serde_json::json!({"api_key": "pk_x", "list": "a"})
            )
            .is_err()
        );
        let c = config(serde_json::json!({
            "api_key": "AbC123", "base_url": "nope", "revision": "2026-13-01", "overlap": "500ms",
            "page_size": 101, "rate_limit": "20/s", "list_id": "bad id"
        }));
        let keys: Vec<String> = c.validate().into_iter().map(|(k, _)| k).collect();
        assert_eq!(
            keys,
            [
                "api_key",
                "base_url",
                "revision",
                "overlap",
                "page_size",
                "rate_limit",
                "list_id"
            ]
        );
        let c = config(
            serde_json::json!({"api_key": "pk_x", "list_id": "Y6nRLr", "leads_from": "updated"}),
        );
        assert_eq!(c.validate()[0].0, "leads_from");
        let c = config(
            serde_json::json!({"api_key": "pk_x", "revision": "2025-07-15.pre", "rate_limit": "10/s"}),
        );
        assert!(c.validate().is_empty(), "{:?}", c.validate());
    }
}
