//! Brevo (ex-Sendinblue) as a polled lead source (`kind = "brevo"`): new contacts are read with
//! `GET /v3/contacts?createdSince=…&sort=asc&limit=…&offset=…` (header `api-key`), each one a
//! lead whose `event_id` is the Brevo contact id.
//!
//! - [`client`]: the [`crate::source::PolledSource`] and its error classification.
//! - [`cursor`]: the opaque cursor (the pass's `since`, the offset inside it, the newest stamp
//!   seen) and how a page moves it.
//! - [`mapping`]: a contact → a [`crate::source::SourceLead`] (canonical names, custom fields).
//! - [`wire`]: Brevo's JSON bodies, shared with the sandbox.
//! - `sandbox` (feature `sandbox`): a faithful fake of the contacts read API.
//!
//! ```toml
//! [connectors.brevo]
//! kind = "brevo"
//! api_key = "${env:BREVO_API_KEY}"   # SMTP & API → API keys (xkeysib-…)
//! # leads_from = "created"           # created (new contacts only) | updated (every change)
//! # list_ids = [12, 34]              # only contacts in one of these lists
//! # poll_interval = "5m"
//! # start_from = "7d"                # how far back the very first poll reaches
//! # overlap = "5m"                   # re-read window for equal stamps and late writes
//! # page_size = 500                  # 1..=1000
//! # rate_limit = "10/s"              # Brevo's contacts limit; lower to leave room for others
//! # base_url = "https://api.brevo.com"
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

pub use client::BrevoSource;

/// Brevo's production API (paths start with `/v3/`).
pub const DEFAULT_BASE_URL: &str = "https://api.brevo.com";
/// Brevo's documented cap on `limit` for `GET /v3/contacts`.
pub const MAX_PAGE_SIZE: u32 = 1000;
/// Brevo's general limit for the `/v3/contacts` family: 36,000 requests per hour, 10 per second.
pub const DOCUMENTED_RATE_LIMIT: RateLimit = RateLimit {
    requests: 10,
    per: Duration::from_secs(1),
};

/// Which change to a contact makes a lead.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LeadsFrom {
    /// A contact's creation: one lead per contact, ever (`event_id` = the contact id).
    #[default]
    Created,
    /// Every modification: one lead per contact and `modifiedAt`
    /// (`event_id` = `"{id}@{modifiedAt}"`).
    Updated,
}

/// `[connectors.NAME]` with `kind = "brevo"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BrevoConfig {
    /// The account's API key (sent as the `api-key` header).
    pub api_key: SecretString,
    /// Where the API lives (without `/v3`); tests and the demo point this at the sandbox.
    #[serde(default = "default_base_url")]
    pub base_url: String,
    /// How often to poll when nothing more is waiting.
    #[serde(default = "default_poll_interval")]
    pub poll_interval: HumanDuration,
    /// How far back the first poll (no cursor yet) reaches.
    #[serde(default = "default_start_from")]
    pub start_from: HumanDuration,
    /// Every pass re-reads this much before the newest stamp seen, so contacts sharing a stamp
    /// and writes that become visible late are not skipped (duplicates are dropped by event id).
    #[serde(default = "default_overlap")]
    pub overlap: HumanDuration,
    /// Per request, connecting included.
    #[serde(default = "default_timeout")]
    pub timeout: HumanDuration,
    /// Slower than Brevo's documented limit, to leave room for other integrations.
    #[serde(default)]
    pub rate_limit: Option<RateLimit>,
    /// Only contacts in one of these lists (Brevo's `listIds` filter).
    #[serde(default)]
    pub list_ids: Vec<u64>,
    #[serde(default)]
    pub leads_from: LeadsFrom,
    /// Contacts per request (Brevo's `limit`), 1..=1000.
    #[serde(default = "default_page_size")]
    pub page_size: u32,
}

fn default_base_url() -> String {
    DEFAULT_BASE_URL.to_owned()
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
    500
}

/// A base URL tandem can call: http(s) with a host, no query. A trailing slash is added so
/// joining `v3/contacts` keeps a path prefix (a proxy's `/brevo/`).
pub(crate) fn parse_base_url(raw: &str) -> Result<reqwest::Url, String> {
    let mut url = reqwest::Url::parse(raw.trim()).map_err(|e| e.to_string())?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!("scheme {:?} is not http or https", url.scheme()));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err("no host".to_owned());
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err("a base URL takes no query or fragment".to_owned());
    }
    if !url.path().ends_with('/') {
        let path = format!("{}/", url.path());
        url.set_path(&path);
    }
    Ok(url)
}

/// Whether `wanted` allows more requests per unit of time than `allowed`.
pub(crate) fn exceeds(wanted: RateLimit, allowed: RateLimit) -> bool {
    u128::from(wanted.requests) * allowed.per.as_millis()
        > u128::from(allowed.requests) * wanted.per.as_millis()
}

impl BrevoConfig {
    /// The limit tandem paces itself by: the override, else Brevo's documented one.
    pub fn effective_rate_limit(&self) -> RateLimit {
        self.rate_limit.unwrap_or(DOCUMENTED_RATE_LIMIT)
    }

    /// Problems serde can't see, as (key, message with a hint). Empty when the config is usable.
    pub fn validate(&self) -> Vec<(String, String)> {
        let mut problems = Vec::new();
        let mut push = |k: &str, m: String| problems.push((k.to_owned(), m));
        if self.api_key.expose_secret().trim().is_empty() {
            push(
                "api_key",
                "the API key is empty; create one in Brevo under SMTP & API → API keys".to_owned(),
            );
        }
        if let Err(reason) = parse_base_url(&self.base_url) {
            push(
                "base_url",
                format!(
                    "{:?} is not a usable URL ({reason}); write e.g. \"{DEFAULT_BASE_URL}\"",
                    self.base_url
                ),
            );
        }
        if self.poll_interval.0.is_zero() {
            push(
                "poll_interval",
                "a zero interval would poll in a loop; write e.g. \"5m\"".to_owned(),
            );
        }
        if self.overlap.0.is_zero() {
            push(
                "overlap",
                "a zero overlap skips contacts that share the last stamp seen or arrive late; write e.g. \"5m\"".to_owned(),
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
                    "{} is outside Brevo's 1..={MAX_PAGE_SIZE} contacts per request",
                    self.page_size
                ),
            );
        }
        if let Some(wanted) = self.rate_limit
            && exceeds(wanted, DOCUMENTED_RATE_LIMIT)
        {
            push(
                "rate_limit",
                format!(
                    "{wanted} exceeds Brevo's {DOCUMENTED_RATE_LIMIT} for the contacts API; Brevo would answer 429. Lower it"
                ),
            );
        }
        if self.list_ids.contains(&0) {
            push(
                "list_ids",
                "Brevo list ids start at 1; copy them from Contacts → Lists".to_owned(),
            );
        }
        problems
    }
}

impl crate::Connector for BrevoConfig {
    fn validate(&self) -> Vec<(String, String)> {
        BrevoConfig::validate(self)
    }

    fn is_source(&self) -> bool {
        true
    }

    fn polled_source(
        &self,
        _ctx: crate::ConnectorContext,
    ) -> Result<Option<Arc<dyn crate::source::PolledSource>>, crate::BuildError> {
        Ok(Some(Arc::new(BrevoSource::new(self)?)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Connector;

    fn config(json: serde_json::Value) -> BrevoConfig {
        serde_json::from_value(json).expect("config parses")
    }

    #[test]
    fn defaults_are_documented() {
        let c = config(serde_json::json!({"api_key": "xkeysib-SECRET"}));
        assert_eq!(c.base_url, DEFAULT_BASE_URL);
        assert_eq!(c.poll_interval.to_string(), "5m");
        assert_eq!(c.start_from.to_string(), "7d");
        assert_eq!(c.overlap.to_string(), "5m");
        assert_eq!(c.page_size, 500);
        assert_eq!(c.leads_from, LeadsFrom::Created);
        assert_eq!(c.effective_rate_limit().to_string(), "10/1s");
        assert!(c.validate().is_empty());
        assert!(c.is_source());
        let source = c
            .polled_source(crate::ConnectorContext::in_memory("brevo"))
            .expect("builds");
        assert!(source.is_some());
        assert!(!format!("{c:?}").contains("SECRET"));
    }

    #[test]
    fn refuses_unknown_keys_and_names_bad_values() {
        assert!(
            serde_json::from_value::<BrevoConfig>(
                serde_json::json!({"api_key": "k", "apikey": "x"})
            )
            .is_err()
        );
        assert!(serde_json::from_value::<BrevoConfig>(serde_json::json!({})).is_err());
        let c = config(serde_json::json!({
            "api_key": " ", "base_url": "ftp://x", "rate_limit": "20/s", "page_size": 1001,
            "overlap": "0s", "list_ids": [0]
        }));
        let keys: Vec<String> = c.validate().into_iter().map(|(k, _)| k).collect();
        assert_eq!(
            keys,
            [
                "api_key",
                "base_url",
                "overlap",
                "page_size",
                "rate_limit",
                "list_ids"
            ]
        );
        let c = config(serde_json::json!({"api_key": "k", "rate_limit": "30000/1h"}));
        assert!(c.validate().is_empty(), "{:?}", c.validate());
    }
}
