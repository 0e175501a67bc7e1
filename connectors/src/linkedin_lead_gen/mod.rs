//! LinkedIn Lead Gen Forms (`kind = "linkedin_lead_gen"`), polled through the Lead Sync API:
//! `GET /rest/leadFormResponses?q=owner&owner=(sponsoredAccount:…)&leadType=(leadType:SPONSORED)
//! &submittedAtTimeRange=(start:…,end:…)&start=…&count=…` with `LinkedIn-Version` and
//! `X-Restli-Protocol-Version: 2.0.0`, authenticated with a 3-legged OAuth token carrying
//! `r_marketing_leadgen_automation` (static, or refreshed through the shared [`crate::oauth`]).
//!
//! - [`client`]: the [`crate::source::PolledSource`] and its error classification.
//! - [`cursor`]: per-account time windows with overlap (never skips, re-reads harmlessly).
//! - [`mapping`]: a form response → a [`crate::source::SourceLead`].
//! - [`wire`]: LinkedIn's JSON bodies, shared with the sandbox.
//! - `sandbox` (feature `sandbox`): a faithful fake of the finder, for tests and the demo.
//!
//! ```toml
//! [connectors.linkedin]
//! kind = "linkedin_lead_gen"
//! access_token = "${env:LINKEDIN_TOKEN}"   # 3-legged, r_marketing_leadgen_automation
//! # …or refresh it (LinkedIn-approved apps get refresh tokens):
//! # client_id = "…"
//! # client_secret = "${env:LINKEDIN_CLIENT_SECRET}"
//! # refresh_token = "${env:LINKEDIN_REFRESH_TOKEN}"
//! ad_accounts = ["urn:li:sponsoredAccount:512345678"]   # or just "512345678"
//! # linkedin_version = "202601"
//! # poll_interval = "5m"
//! # start_from = "7d"        # "now", a duration back, or an RFC 3339 instant
//! # overlap = "5m"
//! # page_size = 100
//! # rate_limit = "100/1m"
//! # timeout = "30s"
//! # base_url = "https://api.linkedin.com/rest"
//! ```

pub mod client;
pub mod cursor;
pub mod mapping;
#[cfg(feature = "sandbox")]
pub mod sandbox;
pub mod wire;

use std::{fmt, str::FromStr, time::Duration};

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Deserializer};

use crate::{sink::RateLimit, units::HumanDuration};

pub use client::LinkedinLeadGenSource;

/// LinkedIn's versioned Marketing API.
pub const DEFAULT_BASE_URL: &str = "https://api.linkedin.com/rest";
/// LinkedIn's OAuth 2.0 token endpoint (refresh grant).
pub const DEFAULT_TOKEN_URL: &str = "https://www.linkedin.com/oauth/v2/accessToken";
/// A Marketing API version LinkedIn serves (versions are sunset after about a year).
pub const DEFAULT_VERSION: &str = "202601";
/// The ceiling tandem accepts for `rate_limit`. LinkedIn publishes no fixed number for
/// `leadFormResponses` (each app's quotas are shown in its developer portal, reset daily at
/// 00:00 UTC); tandem paces itself below the 600/min LinkedIn states for its Marketing APIs.
pub const MAX_RATE_LIMIT: RateLimit = RateLimit {
    requests: 600,
    per: Duration::from_secs(60),
};
/// The pace tandem keeps unless told otherwise: far below any quota, plenty for polling.
pub const DEFAULT_RATE_LIMIT: RateLimit = RateLimit {
    requests: 100,
    per: Duration::from_secs(60),
};
/// The largest `count` tandem asks for (LinkedIn's documented examples use 10; 100 is the usual
/// Rest.li ceiling — unconfirmed for this finder, so it is the cap, not a promise).
pub const MAX_PAGE_SIZE: u32 = 100;
/// LinkedIn keeps form responses for 365 days.
pub const RETENTION: Duration = Duration::from_secs(365 * 86_400);

/// Where the first poll starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartFrom {
    /// Only leads submitted from now on.
    Now,
    /// This far back from the first poll.
    Ago(Duration),
    /// From this instant.
    At(jiff::Timestamp),
}

impl StartFrom {
    /// The unix ms the first window starts at, for a first poll at `now_ms`.
    pub fn resolve(self, now_ms: i64) -> i64 {
        match self {
            StartFrom::Now => now_ms,
            StartFrom::Ago(d) => {
                now_ms.saturating_sub(i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
            }
            StartFrom::At(t) => t.as_millisecond(),
        }
    }
}

impl FromStr for StartFrom {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim();
        if t.eq_ignore_ascii_case("now") {
            return Ok(StartFrom::Now);
        }
        if let Ok(d) = t.parse::<HumanDuration>() {
            return Ok(StartFrom::Ago(d.0));
        }
        t.parse::<jiff::Timestamp>().map(StartFrom::At).map_err(|_| {
            format!(
                "{s:?} is not a start; write \"now\", a duration back such as \"7d\", or an RFC 3339 instant such as \"2026-01-01T00:00:00Z\""
            )
        })
    }
}

impl fmt::Display for StartFrom {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StartFrom::Now => f.write_str("now"),
            StartFrom::Ago(d) => write!(f, "{}", HumanDuration(*d)),
            StartFrom::At(t) => write!(f, "{t}"),
        }
    }
}

impl<'de> Deserialize<'de> for StartFrom {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// `[connectors.NAME]` with `kind = "linkedin_lead_gen"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinkedinLeadGenConfig {
    /// A member's 3-legged access token with `r_marketing_leadgen_automation` (LinkedIn's are
    /// valid 60 days). Either this, or the three OAuth keys below.
    #[serde(default)]
    pub access_token: Option<SecretString>,
    #[serde(default)]
    pub client_id: Option<String>,
    #[serde(default)]
    pub client_secret: Option<SecretString>,
    /// A refresh token (LinkedIn hands them to approved Marketing partners; valid 365 days).
    #[serde(default)]
    pub refresh_token: Option<SecretString>,
    /// Default `https://www.linkedin.com/oauth/v2/accessToken`.
    #[serde(default)]
    pub token_url: Option<String>,
    /// Sponsored ad accounts whose lead forms to read: `urn:li:sponsoredAccount:123` or `123`.
    #[serde(default)]
    pub ad_accounts: Vec<String>,
    /// The `LinkedIn-Version` header, `YYYYMM`.
    #[serde(default = "default_version")]
    pub linkedin_version: String,
    #[serde(default = "default_base_url")]
    pub base_url: String,
    #[serde(default = "default_poll_interval")]
    pub poll_interval: HumanDuration,
    #[serde(default = "default_start_from")]
    pub start_from: StartFrom,
    #[serde(default = "default_overlap")]
    pub overlap: HumanDuration,
    #[serde(default = "default_page_size")]
    pub page_size: u32,
    #[serde(default)]
    pub rate_limit: Option<RateLimit>,
    #[serde(default = "default_timeout")]
    pub timeout: HumanDuration,
}

fn default_version() -> String {
    DEFAULT_VERSION.to_owned()
}
fn default_base_url() -> String {
    DEFAULT_BASE_URL.to_owned()
}
fn default_poll_interval() -> HumanDuration {
    HumanDuration(Duration::from_secs(300))
}
fn default_start_from() -> StartFrom {
    StartFrom::Ago(Duration::from_secs(7 * 86_400))
}
fn default_overlap() -> HumanDuration {
    HumanDuration(Duration::from_secs(300))
}
fn default_page_size() -> u32 {
    MAX_PAGE_SIZE
}
fn default_timeout() -> HumanDuration {
    HumanDuration(Duration::from_secs(30))
}

fn secret_set(s: &Option<SecretString>) -> bool {
    s.as_ref()
        .is_some_and(|s| !s.expose_secret().trim().is_empty())
}

/// Whether `wanted` allows more requests per second than `allowed`.
pub(crate) fn rate_exceeds(wanted: RateLimit, allowed: RateLimit) -> bool {
    let w = u128::from(wanted.requests) * allowed.per.as_millis();
    let a = u128::from(allowed.requests) * wanted.per.as_millis();
    w > a
}

/// `urn:li:sponsoredAccount:123` from `123` or the URN itself; `None` if it is neither.
pub fn account_urn(raw: &str) -> Option<String> {
    let t = raw.trim();
    let id = t.strip_prefix("urn:li:sponsoredAccount:").unwrap_or(t);
    (!id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()))
        .then(|| format!("urn:li:sponsoredAccount:{id}"))
}

impl LinkedinLeadGenConfig {
    /// `true` for a refreshable OAuth config, `false` for a static token (when valid).
    pub fn uses_oauth(&self) -> bool {
        self.access_token.is_none()
            && (self.client_id.is_some()
                || self.client_secret.is_some()
                || self.refresh_token.is_some())
    }

    /// The configured accounts as URNs (invalid ones left out; `validate` names them).
    pub fn account_urns(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .ad_accounts
            .iter()
            .filter_map(|a| account_urn(a))
            .collect();
        out.dedup();
        out
    }

    pub fn effective_rate_limit(&self) -> RateLimit {
        self.rate_limit.unwrap_or(DEFAULT_RATE_LIMIT)
    }

    pub fn validate(&self) -> Vec<(String, String)> {
        let mut p = Vec::new();
        let mut push = |k: &str, m: String| p.push((k.to_owned(), m));
        let oauth_keys = [
            self.client_id.is_some(),
            self.client_secret.is_some(),
            self.refresh_token.is_some(),
        ];
        match (&self.access_token, oauth_keys) {
            (Some(_), [false, false, false]) => {
                if !secret_set(&self.access_token) {
                    push(
                        "access_token",
                        "the access token is empty; generate one with r_marketing_leadgen_automation (LinkedIn developer portal → your app → Auth → OAuth 2.0 tools)".to_owned(),
                    );
                }
            }
            (Some(_), _) => push(
                "access_token",
                "both `access_token` and OAuth keys are set; keep `access_token` alone, or `client_id` + `client_secret` + `refresh_token`".to_owned(),
            ),
            (None, [false, false, false]) => push(
                "access_token",
                "no LinkedIn credentials: set `access_token` (3-legged, scope r_marketing_leadgen_automation), or `client_id`, `client_secret` and `refresh_token`".to_owned(),
            ),
            (None, _) => {
                if self.client_id.as_deref().is_none_or(|s| s.trim().is_empty()) {
                    push("client_id", "`client_id` is missing or empty; OAuth needs `client_id`, `client_secret` and `refresh_token` together".to_owned());
                }
                if !secret_set(&self.client_secret) {
                    push("client_secret", "`client_secret` is missing or empty; OAuth needs `client_id`, `client_secret` and `refresh_token` together".to_owned());
                }
                if !secret_set(&self.refresh_token) {
                    push("refresh_token", "`refresh_token` is missing or empty; OAuth needs `client_id`, `client_secret` and `refresh_token` together".to_owned());
                }
            }
        }
        if self.token_url.is_some() && !self.uses_oauth() {
            push(
                "token_url",
                "token_url is only used with `refresh_token`; remove it".to_owned(),
            );
        }
        if let Some(u) = &self.token_url
            && let Err(reason) = crate::hubspot::parse_base_url(u)
        {
            push(
                "token_url",
                format!("{u:?} is not a usable URL ({reason}); write e.g. \"{DEFAULT_TOKEN_URL}\""),
            );
        }
        if self.ad_accounts.is_empty() {
            push(
                "ad_accounts",
                "name at least one sponsored ad account, e.g. [\"urn:li:sponsoredAccount:512345678\"] (Campaign Manager shows the account id next to the account name)".to_owned(),
            );
        }
        for (i, a) in self.ad_accounts.iter().enumerate() {
            if account_urn(a).is_none() {
                push(
                    &format!("ad_accounts[{i}]"),
                    format!(
                        "{a:?} is not an ad account; write its number or \"urn:li:sponsoredAccount:NUMBER\""
                    ),
                );
            }
        }
        let v = self.linkedin_version.trim();
        let month = v.get(4..).and_then(|m| m.parse::<u32>().ok());
        if v.len() != 6
            || !v.bytes().all(|b| b.is_ascii_digit())
            || !month.is_some_and(|m| (1..=12).contains(&m))
        {
            push(
                "linkedin_version",
                format!(
                    "{v:?} is not a LinkedIn-Version; write YYYYMM, e.g. \"{DEFAULT_VERSION}\""
                ),
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
        if self.poll_interval.0 < Duration::from_millis(100) {
            push(
                "poll_interval",
                "poll at most every 100ms; write e.g. \"5m\"".to_owned(),
            );
        }
        if let StartFrom::Ago(d) = self.start_from
            && d > RETENTION
        {
            push(
                "start_from",
                "LinkedIn keeps form responses for 365 days; start at most \"365d\" back"
                    .to_owned(),
            );
        }
        if self.overlap.0 < Duration::from_secs(1) {
            push(
                "overlap",
                "overlap must be at least 1s (timestamps have whole seconds; equal ones must be read again); write e.g. \"5m\"".to_owned(),
            );
        }
        if !(1..=MAX_PAGE_SIZE).contains(&self.page_size) {
            push(
                "page_size",
                format!("page_size must be between 1 and {MAX_PAGE_SIZE}"),
            );
        }
        if let Some(r) = self.rate_limit
            && rate_exceeds(r, MAX_RATE_LIMIT)
        {
            push(
                "rate_limit",
                format!(
                    "{r} exceeds {MAX_RATE_LIMIT}, the most tandem allows against LinkedIn's Marketing API; lower it"
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

impl crate::Connector for LinkedinLeadGenConfig {
    fn validate(&self) -> Vec<(String, String)> {
        LinkedinLeadGenConfig::validate(self)
    }

    fn is_source(&self) -> bool {
        true
    }

    fn polled_source(
        &self,
        ctx: crate::ConnectorContext,
    ) -> Result<Option<std::sync::Arc<dyn crate::source::PolledSource>>, crate::BuildError> {
        Ok(Some(std::sync::Arc::new(LinkedinLeadGenSource::new(
            self, ctx,
        )?)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(v: serde_json::Value) -> LinkedinLeadGenConfig {
        serde_json::from_value(v).expect("config parses")
    }

    #[test]
    fn defaults_and_redaction() {
        let c =
            config(serde_json::json!({"access_token": "AQV-secret", "ad_accounts": ["512345678"]}));
        assert!(c.validate().is_empty(), "{:?}", c.validate());
        assert_eq!(c.base_url, DEFAULT_BASE_URL);
        assert_eq!(c.linkedin_version, "202601");
        assert_eq!(c.poll_interval.0, Duration::from_secs(300));
        assert_eq!(c.overlap.0, Duration::from_secs(300));
        assert_eq!(
            c.start_from,
            StartFrom::Ago(Duration::from_secs(7 * 86_400))
        );
        assert_eq!(c.account_urns(), vec!["urn:li:sponsoredAccount:512345678"]);
        assert!(!format!("{c:?}").contains("AQV-secret"));
    }

    #[test]
    fn unknown_keys_and_bad_values_are_refused_with_the_key() {
        assert!(
            serde_json::from_value::<LinkedinLeadGenConfig>(
                serde_json::json!({"access_token": "t", "ad_acounts": []})
            )
            .is_err()
        );
        assert!(
            serde_json::from_value::<LinkedinLeadGenConfig>(
                serde_json::json!({"access_token": "t", "start_from": "last tuesday"})
            )
            .is_err()
        );
        let c = config(serde_json::json!({
            "access_token": "t", "ad_accounts": ["urn:li:organization:1"],
            "linkedin_version": "2026-01", "rate_limit": "1000/1m", "page_size": 0,
            "start_from": "400d", "client_id": "x"
        }));
        let keys: Vec<String> = c.validate().into_iter().map(|(k, _)| k).collect();
        assert_eq!(
            keys,
            [
                "access_token",
                "ad_accounts[0]",
                "linkedin_version",
                "start_from",
                "page_size",
                "rate_limit"
            ]
        );
        let oauth = config(serde_json::json!({"client_id": "x", "ad_accounts": ["1"]}));
        let keys: Vec<String> = oauth.validate().into_iter().map(|(k, _)| k).collect();
        assert_eq!(keys, ["client_secret", "refresh_token"]);
    }

    #[test]
    fn start_from_reads_now_durations_and_instants() {
        assert_eq!("now".parse::<StartFrom>().unwrap().resolve(5), 5);
        assert_eq!("1s".parse::<StartFrom>().unwrap().resolve(5_000), 4_000);
        assert_eq!(
            "2026-01-01T00:00:00Z"
                .parse::<StartFrom>()
                .unwrap()
                .resolve(0),
            1_767_225_600_000
        );
        assert_eq!("7d".parse::<StartFrom>().unwrap().to_string(), "7d");
    }
}
