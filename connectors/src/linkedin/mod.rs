//! LinkedIn conversions (`kind = "linkedin"`): a deal's milestones written back through
//! LinkedIn's Conversions API, `POST https://api.linkedin.com/rest/conversionEvents` with
//! `X-RestLi-Method: BATCH_CREATE` (≤ 5,000 events a call), `LinkedIn-Version` and
//! `X-Restli-Protocol-Version: 2.0.0`, authenticated with a 3-legged token carrying
//! `rw_conversions`. Not to be confused with `linkedin_lead_gen`, the lead-form source.
//!
//! - [`client`]: the [`crate::writeback::WritebackSink`] and LinkedIn's error classification.
//! - [`mapping`]: one conversion → one event (rules, time window, hashed email, `li_fat_id`).
//! - [`wire`]: LinkedIn's JSON, shared with the sandbox.
//! - `sandbox` (feature `sandbox`): a faithful fake of the endpoint, for tests and the demo.
//!
//! ```toml
//! [connectors.linkedin]
//! kind = "linkedin"
//! access_token = "${env:LINKEDIN_TOKEN}"      # 3-legged, rw_conversions (+ r_ads)
//! conversions = { won = "urn:lla:llaPartnerConversion:123", qualified = "456" }
//! # linkedin_version = "202611"
//! # rate_limit = "600/1m"
//! # timeout = "30s"
//! # base_url = "https://api.linkedin.com/rest"
//! ```

pub mod client;
pub mod mapping;
#[cfg(feature = "sandbox")]
pub mod sandbox;
#[cfg(all(test, feature = "sandbox"))]
mod sandbox_tests;
pub mod wire;

use std::{collections::BTreeMap, time::Duration};

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use crate::{sink::RateLimit, units::HumanDuration, writeback::Milestone};

pub use client::LinkedinConversions;

/// LinkedIn's versioned Marketing API.
pub const DEFAULT_BASE_URL: &str = "https://api.linkedin.com/rest";
/// A Marketing API version LinkedIn serves (versions are sunset after about a year).
pub const DEFAULT_VERSION: &str = "202611";
/// Events per `BATCH_CREATE`.
pub const MAX_BATCH: usize = 5000;
/// LinkedIn's Conversions API limit: 600 requests a minute (and 300,000 a day).
pub const RATE_LIMIT: RateLimit = RateLimit {
    requests: 600,
    per: Duration::from_secs(60),
};

/// `[connectors.NAME]` with `kind = "linkedin"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinkedinConfig {
    /// A member's 3-legged access token with `rw_conversions` (LinkedIn's last 60 days).
    pub access_token: SecretString,
    /// `LinkedIn-Version`, `YYYYMM`.
    #[serde(default = "default_version")]
    pub linkedin_version: String,
    /// Milestone → conversion rule (`urn:lla:llaPartnerConversion:123`, or just `123`), a rule
    /// whose `conversionMethod` is `CONVERSIONS_API`. Milestones not listed are not sent.
    #[serde(default)]
    pub conversions: BTreeMap<Milestone, String>,
    #[serde(default = "default_base_url")]
    pub base_url: String,
    /// Slower than LinkedIn allows.
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

fn default_timeout() -> HumanDuration {
    HumanDuration(Duration::from_secs(30))
}

/// `"123"` or `"urn:lla:llaPartnerConversion:123"` → the URN; `None` for anything else.
pub fn rule_urn(raw: &str) -> Option<String> {
    let t = raw.trim();
    let id = t.strip_prefix(wire::RULE_URN_PREFIX).unwrap_or(t);
    (!id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()))
        .then(|| format!("{}{id}", wire::RULE_URN_PREFIX))
}

/// `YYYYMM` with a real month.
fn is_version(v: &str) -> bool {
    v.len() == 6
        && v.bytes().all(|b| b.is_ascii_digit())
        && matches!(v[4..].parse::<u8>(), Ok(1..=12))
}

impl LinkedinConfig {
    /// Milestone → rule URN, for the milestones whose rule is usable.
    pub fn rules(&self) -> BTreeMap<Milestone, String> {
        self.conversions
            .iter()
            .filter_map(|(m, raw)| Some((*m, rule_urn(raw)?)))
            .collect()
    }

    pub fn effective_rate_limit(&self) -> RateLimit {
        self.rate_limit.unwrap_or(RATE_LIMIT)
    }

    /// Problems serde can't see, as (key, message with a hint). Empty when the config is usable.
    pub fn validate(&self) -> Vec<(String, String)> {
        let mut problems = Vec::new();
        let mut p = |key: &str, msg: String| problems.push((key.to_owned(), msg));
        if self.access_token.expose_secret().trim().is_empty() {
            p(
                "access_token",
                "is empty; authorize tandem's LinkedIn app with the rw_conversions scope (3-legged OAuth) and paste the token".to_owned(),
            );
        }
        if !is_version(self.linkedin_version.trim()) {
            p(
                "linkedin_version",
                format!(
                    "{:?} is not a LinkedIn-Version; write YYYYMM, e.g. \"{DEFAULT_VERSION}\"",
                    self.linkedin_version
                ),
            );
        }
        if self.conversions.is_empty() {
            p(
                "conversions",
                "is empty, so nothing would be sent; map milestones to Conversions API rules, e.g. conversions = { won = \"urn:lla:llaPartnerConversion:123\" }".to_owned(),
            );
        }
        for (milestone, raw) in &self.conversions {
            if rule_urn(raw).is_none() {
                p(
                    &format!("conversions.{}", milestone.name()),
                    format!(
                        "{raw:?} is not a conversion rule; write \"urn:lla:llaPartnerConversion:<id>\" (or the id alone) of a rule whose method is Conversions API"
                    ),
                );
            }
        }
        if let Err(reason) = crate::hubspot::parse_base_url(&self.base_url) {
            p(
                "base_url",
                format!(
                    "{:?} is not a usable URL ({reason}); leave it out to use {DEFAULT_BASE_URL}",
                    self.base_url
                ),
            );
        }
        if let Some(wanted) = self.rate_limit
            && crate::hubspot::limits::exceeds(wanted, RATE_LIMIT)
        {
            p(
                "rate_limit",
                format!(
                    "{wanted} exceeds LinkedIn's {RATE_LIMIT} for the Conversions API; LinkedIn would answer 429"
                ),
            );
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

impl crate::Connector for LinkedinConfig {
    fn validate(&self) -> Vec<(String, String)> {
        LinkedinConfig::validate(self)
    }

    fn writeback_sink(
        &self,
        _ctx: crate::ConnectorContext,
    ) -> Result<Option<std::sync::Arc<dyn crate::writeback::WritebackSink>>, crate::BuildError>
    {
        Ok(Some(std::sync::Arc::new(LinkedinConversions::new(self)?)))
    }

    fn is_writeback(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::writeback::{WritebackAction, WritebackSink};

    fn config(json: serde_json::Value) -> LinkedinConfig {
        serde_json::from_value(json).expect("config parses")
    }

    fn minimal() -> serde_json::Value {
        serde_json::json!({"access_token": "AQ-s3cret-token", "conversions": {"won": "123"}})
    }

    #[test]
    fn defaults_are_explicit_and_documented() {
        let c = config(minimal());
        assert_eq!(c.linkedin_version, "202611");
        assert_eq!(c.base_url, DEFAULT_BASE_URL);
        assert_eq!(c.effective_rate_limit().to_string(), "600/1m");
        assert_eq!(c.timeout.0, Duration::from_secs(30));
        assert_eq!(
            c.rules(),
            BTreeMap::from([(
                Milestone::Won,
                "urn:lla:llaPartnerConversion:123".to_owned()
            )])
        );
        assert!(c.validate().is_empty(), "{:?}", c.validate());
        let sink = LinkedinConversions::new(&c).unwrap();
        assert_eq!(sink.max_batch(), 5000);
        assert!(sink.accepts(Milestone::Won) && !sink.accepts(Milestone::Qualified));
        assert!(sink.supports(WritebackAction::Send));
        assert!(
            !sink.supports(WritebackAction::Restate) && !sink.supports(WritebackAction::Retract)
        );
        assert!(!format!("{c:?}{sink:?}").contains("s3cret"));
    }

    #[test]
    fn validate_names_the_key_and_says_why() {
        assert!(
            serde_json::from_value::<LinkedinConfig>(serde_json::json!({"conversions": {}}))
                .is_err()
        );
        let mut j = minimal();
        j["ad_account"] = "1".into();
        assert!(serde_json::from_value::<LinkedinConfig>(j).is_err());
        let mut j = minimal();
        j["access_token"] = "".into();
        j["linkedin_version"] = "2026-11".into();
        j["conversions"] = serde_json::json!({"won": "urn:li:conversion:9", "qualified": "urn:lla:llaPartnerConversion:7"});
        j["base_url"] = "api.linkedin.com".into();
        j["rate_limit"] = "20/1s".into();
        let problems = config(j).validate();
        let keys: Vec<&str> = problems.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            keys,
            [
                "access_token",
                "linkedin_version",
                "conversions.won",
                "base_url",
                "rate_limit"
            ],
            "{problems:?}"
        );
        assert!(!is_version("202613") && is_version("202601"));
    }
}
