//! HubSpot CRM (`kind = "hubspot"`): leads become contacts through
//! `POST /crm/v3/objects/contacts/batch/upsert`, keyed by email (or a configured unique property
//! for leads without one), 100 per call, authenticated with a private-app token.
//!
//! - [`client`]: the [`crate::LeadSink`] implementation and its error classification.
//! - [`batch`]: records → request inputs, and the 200/207 answer → one result per record.
//! - [`wire`]: HubSpot's JSON bodies, shared with the sandbox.
//! - [`limits`]: the tier table and the `X-HubSpot-RateLimit-*` headers.
//! - `sandbox` (feature `sandbox`): a faithful fake of the contacts API for tests and the demo.
//!
//! ```toml
//! [connectors.hubspot]
//! kind = "hubspot"
//! token = "${env:HUBSPOT_TOKEN}"   # private app, scope crm.objects.contacts.write
//! tier = "professional"            # free | starter | professional | enterprise | api_add_on
//! # rate_limit = "150/10s"         # leave headroom for other integrations on the same account
//! # id_property = "crm_lead_key"   # unique contact property for leads without an email
//! # base_url = "https://api.hubapi.com"
//! # timeout = "30s"
//! ```

pub mod batch;
pub mod client;
pub mod limits;
#[cfg(feature = "sandbox")]
pub mod sandbox;
pub mod wire;

use std::time::Duration;

use secrecy::SecretString;
use serde::Deserialize;

use crate::{sink::RateLimit, units::HumanDuration};

pub use client::{HubspotClient, MAX_BATCH};
pub use limits::Tier;

/// HubSpot's production API.
pub const DEFAULT_BASE_URL: &str = "https://api.hubapi.com";

/// `[connectors.NAME]` with `kind = "hubspot"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HubspotConfig {
    /// Private-app access token, sent as `Authorization: Bearer`.
    pub token: SecretString,
    /// Where the API lives; tests and the demo point this at the sandbox.
    #[serde(default = "default_base_url")]
    pub base_url: String,
    /// The account's subscription, which decides HubSpot's rate limit.
    #[serde(default)]
    pub tier: Tier,
    /// Slower than the tier allows, e.g. to leave room for other apps on the same account.
    #[serde(default)]
    pub rate_limit: Option<RateLimit>,
    /// A unique-value contact property used as `idProperty` for leads that have no email.
    #[serde(default)]
    pub id_property: Option<String>,
    /// Per request, connecting included.
    #[serde(default = "default_timeout")]
    pub timeout: HumanDuration,
}

fn default_base_url() -> String {
    DEFAULT_BASE_URL.to_owned()
}

fn default_timeout() -> HumanDuration {
    HumanDuration(Duration::from_secs(30))
}

/// A base URL tandem can call: http(s) with a host. A trailing slash is added so joining API
/// paths keeps any path prefix (a proxy's `/hubspot/`).
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

impl HubspotConfig {
    /// The limit tandem paces itself by: the user's override, else the tier's.
    pub fn effective_rate_limit(&self) -> RateLimit {
        self.rate_limit.unwrap_or_else(|| self.tier.rate_limit())
    }

    /// Problems serde can't see, as (key, message with a hint). Empty when the config is usable.
    pub fn validate(&self) -> Vec<(String, String)> {
        let mut problems = Vec::new();
        if let Err(reason) = parse_base_url(&self.base_url) {
            problems.push((
                "base_url".to_owned(),
                format!(
                    "{:?} is not a usable URL ({reason}); write e.g. \"{DEFAULT_BASE_URL}\"",
                    self.base_url
                ),
            ));
        }
        if let Some(wanted) = self.rate_limit {
            let allowed = self.tier.rate_limit();
            if limits::exceeds(wanted, allowed) {
                problems.push((
                    "rate_limit".to_owned(),
                    format!(
                        "{wanted} exceeds the {} tier's {allowed}; HubSpot would answer 429. \
                         Lower it, or set `tier` if the account has a higher one",
                        self.tier.display_name()
                    ),
                ));
            }
        }
        if let Some(p) = &self.id_property
            && (p.trim().is_empty() || p.trim() != p)
        {
            problems.push((
                "id_property".to_owned(),
                format!(
                    "{p:?} is not a HubSpot property name; use the property's internal name, e.g. \"crm_lead_key\""
                ),
            ));
        }
        if self.timeout.0.is_zero() {
            problems.push((
                "timeout".to_owned(),
                "a zero timeout fails every call; write e.g. \"30s\"".to_owned(),
            ));
        }
        problems
    }
}

impl crate::Connector for HubspotConfig {
    fn validate(&self) -> Vec<(String, String)> {
        HubspotConfig::validate(self)
    }

    fn lead_sink(
        &self,
        ctx: crate::ConnectorContext,
    ) -> Result<Option<std::sync::Arc<dyn crate::LeadSink>>, crate::BuildError> {
        Ok(Some(std::sync::Arc::new(HubspotClient::new(self, ctx)?)))
    }

    fn is_crm(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use secrecy::ExposeSecret;

    use super::*;
    use crate::LeadSink;

    fn config(json: serde_json::Value) -> HubspotConfig {
        serde_json::from_value(json).expect("config parses")
    }

    #[test]
    fn defaults_are_explicit_and_documented() {
        let c = config(serde_json::json!({"token": "pat-na1-secret"}));
        assert_eq!(c.base_url, DEFAULT_BASE_URL);
        assert_eq!(c.tier, Tier::Professional);
        assert_eq!(c.timeout.0, Duration::from_secs(30));
        assert_eq!(c.effective_rate_limit().to_string(), "190/10s");
        assert!(c.validate().is_empty());
        assert_eq!(c.token.expose_secret(), "pat-na1-secret");
        let client =
            HubspotClient::new(&c, crate::ConnectorContext::in_memory("hubspot")).expect("builds");
        assert_eq!(client.max_batch(), 100);
        assert!(!format!("{c:?}{client:?}").contains("pat-na1-secret"));
    }

    #[test]
    fn unknown_keys_and_bad_tiers_are_refused() {
        let e =
            serde_json::from_value::<HubspotConfig>(serde_json::json!({"token": "t", "tokn": "x"}));
        assert!(e.is_err());
        let e = serde_json::from_value::<HubspotConfig>(
            serde_json::json!({"token": "t", "tier": "gold"}),
        );
        assert!(e.is_err());
        let c = config(
            serde_json::json!({"token": "t", "tier": "api_add_on", "rate_limit": "240/10s"}),
        );
        assert!(c.validate().is_empty());
        assert_eq!(
            HubspotClient::new(&c, crate::ConnectorContext::in_memory("hubspot"))
                .unwrap()
                .default_rate_limit()
                .requests,
            240
        );
    }

    #[test]
    fn validate_names_the_key_and_says_why() {
        let c = config(serde_json::json!({
            "token": "t", "base_url": "ftp://example.com", "rate_limit": "200/10s"
        }));
        let problems = c.validate();
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert_eq!(problems[0].0, "base_url");
        assert_eq!(problems[1].0, "rate_limit");
        assert!(
            problems[1]
                .1
                .contains("exceeds the Professional tier's 190/10s; HubSpot would answer 429")
        );
        let c =
            config(serde_json::json!({"token": "t", "tier": "starter", "rate_limit": "150/10s"}));
        assert!(c.validate()[0].1.contains("Starter tier's 100/10s"));
        assert!(
            HubspotClient::new(
                &config(serde_json::json!({"token": "t", "base_url": "not a url"})),
                crate::ConnectorContext::in_memory("hubspot")
            )
            .is_err()
        );
    }

    #[test]
    fn base_url_keeps_a_path_prefix() {
        let u = parse_base_url("http://127.0.0.1:9/hubspot").unwrap();
        assert_eq!(
            u.join("crm/v3/objects/contacts/batch/upsert")
                .unwrap()
                .as_str(),
            "http://127.0.0.1:9/hubspot/crm/v3/objects/contacts/batch/upsert"
        );
    }
}
