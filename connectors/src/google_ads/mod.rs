//! Google Ads offline conversions (`kind = "google_ads"`): a deal's milestones written back as
//! conversions of the conversion actions the config names per milestone.
//!
//! Two APIs, one config:
//! - `api = "data_manager"` (default): Google's Data Manager API, `POST
//!   https://datamanager.googleapis.com/v1/events:ingest`, one request per conversion action in
//!   a batch (≤ 2,000 events), `transactionId` = the conversion's dedup key, restatements by
//!   sending the same `transactionId` again with the new value. Since 2026-06-15 the only path
//!   for integrations that were not already uploading click conversions.
//! - `api = "google_ads"`: the Google Ads API's `uploadClickConversions` (`orderId` = the dedup
//!   key, partial failure) and `uploadConversionAdjustments` (restatements and retractions by
//!   `orderId`), for developer tokens Google grandfathered.
//!
//! - [`client`]: the [`crate::writeback::WritebackSink`], OAuth and the HTTP call.
//! - [`prepare`]: one conversion → click id, hashed identifiers, value, time-window rules.
//! - [`identity`]: Google's email/phone normalisation and hashing.
//! - [`data_manager`], [`legacy`]: the two wire protocols and their per-item results.
//! - [`errors`]: Google's error envelope → [`crate::sink::CallError`].
//! - [`verify`]: `tandem check --connect` with `validateOnly`.
//! - [`wire`]: Google's JSON, shared with the sandbox.
//! - `sandbox` (feature `sandbox`): a faithful fake of both APIs and Google's token endpoint.
//!
//! ```toml
//! [connectors.google_ads]
//! kind = "google_ads"
//! customer_id = "1234567890"              # 10 digits, no dashes
//! # login_customer_id = "9876543210"      # the manager account, when access goes through one
//! client_id = "….apps.googleusercontent.com"
//! client_secret = "${env:GOOGLE_CLIENT_SECRET}"
//! refresh_token = "${env:GOOGLE_REFRESH_TOKEN}"   # scope datamanager (or adwords for api = "google_ads")
//! conversion_actions = { won = "987654", qualified = "987655" }
//! # api = "data_manager"                  # or "google_ads" (grandfathered tokens only)
//! # developer_token = "${env:GOOGLE_ADS_DEVELOPER_TOKEN}"   # api = "google_ads" only
//! # api_version = "v26"                   # api = "google_ads" only
//! # event_source = "other"                # web | app | in_store | phone | other
//! # rate_limit = "300/1m"
//! # timeout = "30s"
//! # token_url = "https://oauth2.googleapis.com/token"
//! # base_url = "https://datamanager.googleapis.com"   # or https://googleads.googleapis.com
//! ```

pub mod client;
pub mod data_manager;
pub mod errors;
pub mod identity;
pub mod legacy;
pub mod prepare;
mod results;
#[cfg(feature = "sandbox")]
pub mod sandbox;
#[cfg(all(test, feature = "sandbox"))]
mod sandbox_tests;
pub mod verify;
pub mod wire;

use std::{collections::BTreeMap, time::Duration};

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use crate::{sink::RateLimit, units::HumanDuration, writeback::Milestone};

pub use client::GoogleAdsWriteback;

/// The Data Manager API.
pub const DATA_MANAGER_URL: &str = "https://datamanager.googleapis.com";
/// The Google Ads API.
pub const GOOGLE_ADS_URL: &str = "https://googleads.googleapis.com";
/// Google's OAuth 2.0 token endpoint.
pub const DEFAULT_TOKEN_URL: &str = "https://oauth2.googleapis.com/token";
/// The Google Ads API version for `api = "google_ads"` (current as of November 2026).
pub const DEFAULT_API_VERSION: &str = "v26";
/// Events per `events:ingest`, and conversions per upload call: both 2,000.
pub const MAX_BATCH: usize = 2000;
/// Data Manager: 300 requests per minute per Google Cloud project (`IngestionService`).
pub const DATA_MANAGER_RATE_LIMIT: RateLimit = RateLimit {
    requests: 300,
    per: Duration::from_secs(60),
};
/// Google Ads API: no per-minute figure is published for uploads (quotas are per developer
/// token and day); tandem keeps to one call a second unless told otherwise.
pub const GOOGLE_ADS_RATE_LIMIT: RateLimit = RateLimit {
    requests: 60,
    per: Duration::from_secs(60),
};

/// Which Google API carries the conversions.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Api {
    /// `POST /v1/events:ingest`.
    #[default]
    DataManager,
    /// `customers/{id}:uploadClickConversions` (grandfathered developer tokens only).
    GoogleAds,
}

impl Api {
    pub fn default_base_url(self) -> &'static str {
        match self {
            Api::DataManager => DATA_MANAGER_URL,
            Api::GoogleAds => GOOGLE_ADS_URL,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Api::DataManager => "data_manager",
            Api::GoogleAds => "google_ads",
        }
    }
}

/// Where the conversion happened (Data Manager `eventSource`, required for offline
/// conversions).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventSource {
    Web,
    App,
    InStore,
    Phone,
    /// A CRM milestone: a sale closed by a person, not on the site.
    #[default]
    Other,
}

impl EventSource {
    pub fn wire(self) -> &'static str {
        match self {
            EventSource::Web => "WEB",
            EventSource::App => "APP",
            EventSource::InStore => "IN_STORE",
            EventSource::Phone => "PHONE",
            EventSource::Other => "OTHER",
        }
    }
}

/// `[connectors.NAME]` with `kind = "google_ads"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GoogleAdsConfig {
    /// The Google Ads account that owns the conversion actions: 10 digits, no dashes.
    pub customer_id: String,
    /// The manager account tandem's Google user reaches `customer_id` through, if any.
    #[serde(default)]
    pub login_customer_id: Option<String>,
    /// OAuth client of the Google Cloud project with the Data Manager (or Google Ads) API on.
    pub client_id: String,
    pub client_secret: SecretString,
    pub refresh_token: SecretString,
    #[serde(default = "default_token_url")]
    pub token_url: String,
    #[serde(default)]
    pub api: Api,
    /// `api = "google_ads"` only.
    #[serde(default)]
    pub developer_token: Option<SecretString>,
    /// `api = "google_ads"` only.
    #[serde(default = "default_api_version")]
    pub api_version: String,
    /// Milestone → conversion action id (digits). Milestones not listed are not sent.
    #[serde(default)]
    pub conversion_actions: BTreeMap<Milestone, String>,
    #[serde(default)]
    pub event_source: EventSource,
    /// Default: the API's production URL.
    #[serde(default)]
    pub base_url: Option<String>,
    /// Slower than the API allows.
    #[serde(default)]
    pub rate_limit: Option<RateLimit>,
    #[serde(default = "default_timeout")]
    pub timeout: HumanDuration,
}

fn default_token_url() -> String {
    DEFAULT_TOKEN_URL.to_owned()
}

fn default_api_version() -> String {
    DEFAULT_API_VERSION.to_owned()
}

fn default_timeout() -> HumanDuration {
    HumanDuration(Duration::from_secs(30))
}

/// A Google Ads customer id problem, with the fix.
fn customer_id_problem(raw: &str) -> Option<String> {
    let t = raw.trim();
    if t.len() == 12 && t.chars().filter(|c| *c == '-').count() == 2 {
        let digits: String = t.chars().filter(|c| *c != '-').collect();
        if digits.len() == 10 && digits.bytes().all(|b| b.is_ascii_digit()) {
            return Some(format!(
                "{raw:?} has dashes; Google's APIs take the 10 digits alone: write \"{digits}\""
            ));
        }
    }
    (t.len() != 10 || !t.bytes().all(|b| b.is_ascii_digit())).then(|| {
        format!(
            "{raw:?} is not a Google Ads customer id; copy the 10 digits shown top right in Google Ads, e.g. \"1234567890\""
        )
    })
}

/// A conversion action id problem, with the fix.
fn action_id_problem(raw: &str) -> Option<String> {
    let t = raw.trim();
    if let Some((_, id)) = t.split_once("/conversionActions/") {
        return Some(format!(
            "{raw:?} is a resource name; write the conversion action id alone: \"{id}\""
        ));
    }
    (t.is_empty() || !t.bytes().all(|b| b.is_ascii_digit())).then(|| {
        format!(
            "{raw:?} is not a conversion action id; use the digits of `ctId=` in the conversion action's URL in Google Ads (Goals > Conversions)"
        )
    })
}

impl GoogleAdsConfig {
    /// The API base: the configured `base_url`, else the API's production URL.
    pub fn base_url(&self) -> &str {
        self.base_url
            .as_deref()
            .unwrap_or_else(|| self.api.default_base_url())
    }

    fn max_rate_limit(&self) -> RateLimit {
        match self.api {
            Api::DataManager => DATA_MANAGER_RATE_LIMIT,
            Api::GoogleAds => RateLimit {
                requests: 600,
                per: Duration::from_secs(60),
            },
        }
    }

    /// The limit tandem paces its batches by. One Data Manager batch makes one request per
    /// conversion action in it, so the default shares Google's 300 requests a minute among the
    /// configured actions.
    pub fn effective_rate_limit(&self) -> RateLimit {
        let actions: std::collections::BTreeSet<&str> = self
            .conversion_actions
            .values()
            .map(|id| id.trim())
            .collect();
        let per_batch = u32::try_from(actions.len()).unwrap_or(u32::MAX).max(1);
        self.rate_limit.unwrap_or(match self.api {
            Api::DataManager => RateLimit {
                requests: (DATA_MANAGER_RATE_LIMIT.requests / per_batch).max(1),
                per: DATA_MANAGER_RATE_LIMIT.per,
            },
            Api::GoogleAds => GOOGLE_ADS_RATE_LIMIT,
        })
    }

    /// Problems serde can't see, as (key, message with a hint). Empty when the config is usable.
    pub fn validate(&self) -> Vec<(String, String)> {
        let mut problems = Vec::new();
        let mut p = |key: &str, msg: String| problems.push((key.to_owned(), msg));
        if let Some(m) = customer_id_problem(&self.customer_id) {
            p("customer_id", m);
        }
        if let Some(m) = self
            .login_customer_id
            .as_deref()
            .and_then(customer_id_problem)
        {
            p("login_customer_id", m);
        }
        if self.client_id.trim().is_empty() {
            p(
                "client_id",
                "is empty; copy the OAuth client id from the Google Cloud console (APIs & Services > Credentials)".to_owned(),
            );
        }
        if self.client_secret.expose_secret().trim().is_empty() {
            p(
                "client_secret",
                "is empty; copy the OAuth client secret from the Google Cloud console".to_owned(),
            );
        }
        if self.refresh_token.expose_secret().trim().is_empty() {
            p(
                "refresh_token",
                "is empty; authorize tandem's OAuth client with the https://www.googleapis.com/auth/datamanager scope (adwords for api = \"google_ads\"), see docs/writeback/google_ads.md".to_owned(),
            );
        }
        if let Err(reason) = crate::hubspot::parse_base_url(&self.token_url) {
            p(
                "token_url",
                format!(
                    "{:?} is not a usable URL ({reason}); leave it out to use {DEFAULT_TOKEN_URL}",
                    self.token_url
                ),
            );
        }
        if let Some(url) = &self.base_url
            && let Err(reason) = crate::hubspot::parse_base_url(url)
        {
            p(
                "base_url",
                format!(
                    "{url:?} is not a usable URL ({reason}); leave it out to use {}",
                    self.api.default_base_url()
                ),
            );
        }
        match self.api {
            Api::GoogleAds => {
                if self
                    .developer_token
                    .as_ref()
                    .is_none_or(|t| t.expose_secret().trim().is_empty())
                {
                    p(
                        "developer_token",
                        "api = \"google_ads\" needs the developer token of the Google Ads API Center; without an already-uploading token, use api = \"data_manager\"".to_owned(),
                    );
                }
                let v = self.api_version.trim();
                if !(v.len() > 1
                    && v.starts_with('v')
                    && v[1..].bytes().all(|b| b.is_ascii_digit()))
                {
                    p(
                        "api_version",
                        format!(
                            "{:?} is not a Google Ads API version; write e.g. \"{DEFAULT_API_VERSION}\"",
                            self.api_version
                        ),
                    );
                }
            }
            Api::DataManager => {
                if self.developer_token.is_some() {
                    p(
                        "developer_token",
                        "is only used with api = \"google_ads\"; the Data Manager API needs none, remove it".to_owned(),
                    );
                }
            }
        }
        if self.conversion_actions.is_empty() {
            p(
                "conversion_actions",
                "is empty, so nothing would be sent; map milestones to conversion action ids, e.g. conversion_actions = { won = \"987654\" }".to_owned(),
            );
        }
        for (milestone, id) in &self.conversion_actions {
            if let Some(m) = action_id_problem(id) {
                p(&format!("conversion_actions.{}", milestone.name()), m);
            }
        }
        if let Some(wanted) = self.rate_limit {
            let allowed = self.max_rate_limit();
            if crate::hubspot::limits::exceeds(wanted, allowed) {
                p(
                    "rate_limit",
                    format!(
                        "{wanted} exceeds Google's {allowed} for api = \"{}\"; Google would answer 429 RESOURCE_EXHAUSTED",
                        self.api.name()
                    ),
                );
            }
        }
        if self.timeout.0.is_zero() {
            p(
                "timeout",
                "a zero timeout fails every call; write e.g. \"30s\"".to_owned(),
            );
        }
        problems
    }
}

impl crate::Connector for GoogleAdsConfig {
    fn validate(&self) -> Vec<(String, String)> {
        GoogleAdsConfig::validate(self)
    }

    fn writeback_sink(
        &self,
        ctx: crate::ConnectorContext,
    ) -> Result<Option<std::sync::Arc<dyn crate::writeback::WritebackSink>>, crate::BuildError>
    {
        Ok(Some(std::sync::Arc::new(GoogleAdsWriteback::new(
            self, ctx,
        )?)))
    }

    fn is_writeback(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::writeback::WritebackSink;

    fn config(json: serde_json::Value) -> GoogleAdsConfig {
        serde_json::from_value(json).expect("config parses")
    }

    fn minimal() -> serde_json::Value {
        serde_json::json!({
            "customer_id": "1234567890", "client_id": "cid.apps.googleusercontent.com",
            "client_secret": "s3cret-value", "refresh_token": "1//rt-secret",
            "conversion_actions": {"won": "987654"}
        })
    }

    #[test]
    fn defaults_are_explicit_and_documented() {
        let c = config(minimal());
        assert_eq!(c.api, Api::DataManager);
        assert_eq!(c.base_url(), DATA_MANAGER_URL);
        assert_eq!(c.token_url, DEFAULT_TOKEN_URL);
        assert_eq!(c.api_version, "v26");
        assert_eq!(c.event_source, EventSource::Other);
        assert_eq!(c.effective_rate_limit().to_string(), "300/1m");
        let mut j = minimal();
        j["conversion_actions"] = serde_json::json!({"won": "1", "qualified": "2", "lost": "2"});
        assert_eq!(
            config(j).effective_rate_limit().to_string(),
            "150/1m",
            "two requests per batch at most"
        );
        assert_eq!(c.timeout.0, Duration::from_secs(30));
        assert!(c.validate().is_empty(), "{:?}", c.validate());
        let sink = GoogleAdsWriteback::new(&c, crate::ConnectorContext::in_memory("g")).unwrap();
        assert_eq!(sink.max_batch(), 2000);
        assert!(sink.accepts(Milestone::Won) && !sink.accepts(Milestone::Lost));
        let shown = format!("{c:?}{sink:?}");
        assert!(!shown.contains("s3cret-value") && !shown.contains("1//rt-secret"));
        let mut j = minimal();
        j["api"] = "google_ads".into();
        j["developer_token"] = "dev-token".into();
        let legacy = config(j);
        assert_eq!(legacy.base_url(), GOOGLE_ADS_URL);
        assert_eq!(legacy.effective_rate_limit().to_string(), "60/1m");
        assert!(legacy.validate().is_empty(), "{:?}", legacy.validate());
    }

    #[test]
    fn unknown_keys_and_milestones_are_refused() {
        let mut j = minimal();
        j["customer"] = "1".into();
        assert!(serde_json::from_value::<GoogleAdsConfig>(j).is_err());
        let mut j = minimal();
        j["conversion_actions"] = serde_json::json!({"closed": "1"});
        assert!(serde_json::from_value::<GoogleAdsConfig>(j).is_err());
        let mut j = minimal();
        j["api"] = "adwords".into();
        assert!(serde_json::from_value::<GoogleAdsConfig>(j).is_err());
    }

    #[test]
    fn validate_names_the_key_and_says_why() {
        let mut j = minimal();
        j["customer_id"] = "123-456-7890".into();
        j["login_customer_id"] = "12345".into();
        j["refresh_token"] = " ".into();
        j["conversion_actions"] = serde_json::json!({"won": "customers/1234567890/conversionActions/987654", "lost": "x"});
        j["rate_limit"] = "400/1m".into();
        j["developer_token"] = "t".into();
        let problems = config(j).validate();
        let keys: Vec<&str> = problems.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            keys,
            [
                "customer_id",
                "login_customer_id",
                "refresh_token",
                "developer_token",
                "conversion_actions.won",
                "conversion_actions.lost",
                "rate_limit"
            ],
            "{problems:?}"
        );
        assert!(
            problems[0].1.contains("write \"1234567890\""),
            "{problems:?}"
        );
        assert!(problems[4].1.contains("\"987654\""), "{problems:?}");
        let mut j = minimal();
        j["api"] = "google_ads".into();
        j["api_version"] = "26".into();
        j["conversion_actions"] = serde_json::json!({});
        let problems = config(j).validate();
        let keys: Vec<&str> = problems.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            keys,
            ["developer_token", "api_version", "conversion_actions"],
            "{problems:?}"
        );
    }
}
