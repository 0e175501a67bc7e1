//! HubSpot CRM (`kind = "hubspot"`): leads become contacts through
//! `POST /crm/v3/objects/contacts/batch/upsert`, keyed by email (or a configured unique property
//! for leads without one), 100 per call, authenticated with a private-app token or an OAuth app.
//!
//! - [`client`]: the [`crate::LeadSink`] implementation and its error classification.
//! - [`auth`]: private-app token or OAuth (the shared [`crate::oauth`] lifecycle).
//! - [`batch`]: records → request inputs, and the 200/207 answer → one result per record.
//! - [`conflict`]: per-field `on_conflict` rules, from one batch read before the upsert.
//! - [`verify`]: `check --connect`: credentials and mapped properties against the portal.
//! - [`wire`]: HubSpot's JSON bodies, shared with the sandbox.
//! - [`limits`]: the tier table and the `X-HubSpot-RateLimit-*` headers.
//! - `sandbox` (feature `sandbox`): a faithful fake of the contacts and deals APIs for tests and
//!   the demo.
//!
//! The deal side (closing the loop):
//! - [`outcomes`]: the [`crate::outcome::OutcomeSource`]: deals changed since a cursor
//!   (`POST /crm/v3/objects/deals/search`, keyset-paged) with their contacts (v4 associations).
//! - [`deal_webhook`]: deal-change webhooks (`X-HubSpot-Signature-v3`) as wake-ups for the poll.
//! - [`deal_writeback`]: the [`crate::writeback::WritebackSink`] writing first touch, last touch
//!   and the credit line onto the deal (`POST /crm/v3/objects/deals/batch/update`).
//! - [`deal_config`]: their config keys; [`deals_wire`]: their JSON bodies.
//!
//! ```toml
//! [connectors.hubspot]
//! kind = "hubspot"
//! token = "${env:HUBSPOT_TOKEN}"   # private app, scope crm.objects.contacts.write
//! # …or an OAuth app instead of `token`:
//! # client_id = "…"
//! # client_secret = "${env:HUBSPOT_CLIENT_SECRET}"
//! # refresh_token = "${env:HUBSPOT_REFRESH_TOKEN}"
//! # token_url = "https://api.hubapi.com/oauth/v1/token"   # default: {base_url}/oauth/v1/token
//! tier = "professional"            # free | starter | professional | enterprise | api_add_on
//! # rate_limit = "150/10s"         # leave headroom for other integrations on the same account
//! # id_property = "crm_lead_key"   # unique contact property for leads without an email
//! # base_url = "https://api.hubapi.com"
//! # timeout = "30s"
//! # The deal side (`[attribution] from` / `to`):
//! # outcome_poll_interval = "1m"
//! # outcomes_since = "2026-01-01T00:00:00Z"   # first poll; default 30 days back
//! # outcome_overlap = "2m"
//! # currency = "USD"                # for deals without deal_currency_code
//! # deal_fields = { first_touch = "tandem_first_touch", last_touch = "tandem_last_touch", attribution = "tandem_attribution" }
//! # webhook_secret = "${env:HUBSPOT_CLIENT_SECRET}"   # the app's client secret: deal webhooks
//! # webhook_url = "https://tandem.example.com/hooks/hubspot"  # as entered in HubSpot, behind a proxy
//! ```

pub mod auth;
pub mod batch;
pub mod client;
pub mod conflict;
pub mod deal_config;
pub mod deal_webhook;
pub mod deal_writeback;
pub mod deals_wire;
pub mod limits;
pub mod outcomes;
#[cfg(feature = "sandbox")]
pub mod sandbox;
pub mod verify;
pub mod wire;

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use crate::{sink::RateLimit, units::HumanDuration};

pub use client::{HubspotClient, MAX_BATCH};
pub use deal_config::DealFields;
pub use limits::Tier;

/// HubSpot's production API.
pub const DEFAULT_BASE_URL: &str = "https://api.hubapi.com";

/// `[connectors.NAME]` with `kind = "hubspot"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HubspotConfig {
    /// Private-app access token, sent as `Authorization: Bearer`. Either this, or the three
    /// OAuth keys below.
    #[serde(default)]
    pub token: Option<SecretString>,
    /// OAuth app: its client id (App → Auth in HubSpot's developer account).
    #[serde(default)]
    pub client_id: Option<String>,
    /// OAuth app: its client secret.
    #[serde(default)]
    pub client_secret: Option<SecretString>,
    /// OAuth app: the refresh token from installing the app in the portal. A newer one saved
    /// in tandem's state takes precedence.
    #[serde(default)]
    pub refresh_token: Option<SecretString>,
    /// OAuth token endpoint; default `{base_url}/oauth/v1/token`.
    #[serde(default)]
    pub token_url: Option<String>,
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
    /// How often deals are polled when nothing more waits (`[attribution] from`).
    #[serde(default = "crate::outcome::default_poll_interval")]
    pub outcome_poll_interval: HumanDuration,
    /// Where the first deal poll starts (RFC 3339); default 30 days before it.
    #[serde(default)]
    pub outcomes_since: Option<String>,
    /// Each pass re-reads this much before the newest deal seen, for writes HubSpot's search
    /// shows late.
    #[serde(default = "crate::outcome::default_overlap")]
    pub outcome_overlap: HumanDuration,
    /// The account currency, for deals without a `deal_currency_code`.
    #[serde(default = "crate::outcome::default_currency")]
    pub currency: String,
    /// The deal properties attribution is written to (`[attribution] to`).
    #[serde(default)]
    pub deal_fields: DealFields,
    /// The app's client secret, to check `X-HubSpot-Signature-v3` on deal webhooks; unset =
    /// no deal webhook (polling only).
    #[serde(default)]
    pub webhook_secret: Option<SecretString>,
    /// The webhook target URL exactly as entered in HubSpot (it is part of the signature), when
    /// tandem sits behind a proxy that changes it.
    #[serde(default)]
    pub webhook_url: Option<String>,
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

/// Which credentials a config uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMode {
    PrivateApp,
    OAuth,
}

const OAUTH_KEYS_HINT: &str = "an OAuth app needs `client_id`, `client_secret` and `refresh_token` together (from installing the app in the portal)";

fn secret_set(s: &Option<SecretString>) -> bool {
    s.as_ref()
        .is_some_and(|s| !s.expose_secret().trim().is_empty())
}

impl HubspotConfig {
    /// The credentials this config uses, when exactly one mode is fully configured.
    pub fn auth_mode(&self) -> Option<AuthMode> {
        let oauth = [
            self.client_id
                .as_ref()
                .is_some_and(|s| !s.trim().is_empty()),
            secret_set(&self.client_secret),
            secret_set(&self.refresh_token),
        ];
        match (secret_set(&self.token), oauth) {
            (true, [false, false, false]) => Some(AuthMode::PrivateApp),
            (false, [true, true, true]) => Some(AuthMode::OAuth),
            _ => None,
        }
    }

    /// Whether any OAuth key is present (even empty), to tell the modes apart in messages.
    fn mentions_oauth(&self) -> bool {
        self.client_id.is_some() || self.client_secret.is_some() || self.refresh_token.is_some()
    }

    /// The OAuth token endpoint: `token_url`, else `{base_url}/oauth/v1/token`.
    pub fn effective_token_url(&self) -> Result<String, String> {
        match &self.token_url {
            Some(u) => parse_base_url(u).map(|_| u.trim().to_owned()),
            None => parse_base_url(&self.base_url)?
                .join("oauth/v1/token")
                .map(|u| u.to_string())
                .map_err(|e| e.to_string()),
        }
    }

    /// The limit tandem paces itself by: the user's override, else the tier's (private app) or
    /// HubSpot's per-account limit for OAuth apps.
    pub fn effective_rate_limit(&self) -> RateLimit {
        self.rate_limit
            .unwrap_or_else(|| self.documented_rate_limit())
    }

    /// HubSpot's documented burst limit for this config's auth mode.
    pub fn documented_rate_limit(&self) -> RateLimit {
        match self.auth_mode() {
            Some(AuthMode::OAuth) => limits::OAUTH_APP_LIMIT,
            _ => self.tier.rate_limit(),
        }
    }

    fn auth_problems(&self, problems: &mut Vec<(String, String)>) {
        let token = self.token.is_some();
        if token && self.mentions_oauth() {
            problems.push((
                "token".to_owned(),
                "both a private-app `token` and OAuth keys are set; keep exactly one: `token` for a private app, or `client_id` + `client_secret` + `refresh_token` for an OAuth app".to_owned(),
            ));
            return;
        }
        if token {
            if !secret_set(&self.token) {
                problems.push((
                    "token".to_owned(),
                    "the private-app token is empty; copy it from HubSpot: Settings → Integrations → Private apps → the app → Auth → Access token".to_owned(),
                ));
            }
            if self.token_url.is_some() {
                problems.push((
                    "token_url".to_owned(),
                    "token_url is only used with OAuth (`client_id`, `client_secret`, `refresh_token`); remove it for a private-app token".to_owned(),
                ));
            }
            return;
        }
        if !self.mentions_oauth() {
            problems.push((
                "token".to_owned(),
                "no HubSpot credentials: set `token` to a private app's access token, or `client_id`, `client_secret` and `refresh_token` for an OAuth app".to_owned(),
            ));
            return;
        }
        let present = [
            (
                "client_id",
                self.client_id
                    .as_ref()
                    .is_some_and(|s| !s.trim().is_empty()),
            ),
            ("client_secret", secret_set(&self.client_secret)),
            ("refresh_token", secret_set(&self.refresh_token)),
        ];
        for (key, ok) in present {
            if !ok {
                problems.push((
                    key.to_owned(),
                    format!("`{key}` is missing or empty; {OAUTH_KEYS_HINT}"),
                ));
            }
        }
        if let Err(reason) = self.effective_token_url() {
            let key = if self.token_url.is_some() {
                "token_url"
            } else {
                "base_url"
            };
            if key == "token_url" {
                problems.push((
                    key.to_owned(),
                    format!(
                        "{:?} is not a usable URL ({reason}); write e.g. \"{DEFAULT_BASE_URL}/oauth/v1/token\" or leave it out",
                        self.token_url.as_deref().unwrap_or_default()
                    ),
                ));
            }
        }
    }

    /// Problems serde can't see, as (key, message with a hint). Empty when the config is usable.
    pub fn validate(&self) -> Vec<(String, String)> {
        let mut problems = Vec::new();
        self.auth_problems(&mut problems);
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
            let allowed = self.documented_rate_limit();
            if limits::exceeds(wanted, allowed) {
                let message = if self.auth_mode() == Some(AuthMode::OAuth) {
                    format!(
                        "{wanted} exceeds HubSpot's {allowed} for an OAuth app in one account; HubSpot would answer 429. Lower it (the tier doesn't raise OAuth limits)"
                    )
                } else {
                    format!(
                        "{wanted} exceeds the {} tier's {allowed}; HubSpot would answer 429. \
                         Lower it, or set `tier` if the account has a higher one",
                        self.tier.display_name()
                    )
                };
                problems.push(("rate_limit".to_owned(), message));
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
        problems.extend(deal_config::problems(
            self,
            jiff::Timestamp::now().as_millisecond(),
        ));
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

    fn outcome_source(
        &self,
        ctx: crate::ConnectorContext,
    ) -> Result<Option<std::sync::Arc<dyn crate::outcome::OutcomeSource>>, crate::BuildError> {
        Ok(Some(std::sync::Arc::new(outcomes::HubspotOutcomes::new(
            self, ctx,
        )?)))
    }

    fn writeback_sink(
        &self,
        ctx: crate::ConnectorContext,
    ) -> Result<Option<std::sync::Arc<dyn crate::writeback::WritebackSink>>, crate::BuildError>
    {
        Ok(Some(std::sync::Arc::new(
            deal_writeback::HubspotDealFields::new(self, ctx)?,
        )))
    }

    fn is_writeback(&self) -> bool {
        true
    }
}

#[cfg(all(test, feature = "sandbox"))]
mod deal_tests;

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
        assert_eq!(c.token.as_ref().unwrap().expose_secret(), "pat-na1-secret");
        assert_eq!(c.auth_mode(), Some(AuthMode::PrivateApp));
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
    fn exactly_one_auth_mode_with_hints() {
        let oauth = serde_json::json!({
            "client_id": "cid", "client_secret": "cs-SECRET-1", "refresh_token": "rt-SECRET-2"
        });
        let c = config(oauth.clone());
        assert!(c.validate().is_empty(), "{:?}", c.validate());
        assert_eq!(c.auth_mode(), Some(AuthMode::OAuth));
        assert_eq!(
            c.effective_token_url().unwrap(),
            "https://api.hubapi.com/oauth/v1/token"
        );
        assert_eq!(c.effective_rate_limit().to_string(), "110/10s");
        let client =
            HubspotClient::new(&c, crate::ConnectorContext::in_memory("hubspot")).expect("builds");
        assert!(client.uses_oauth());
        let shown = format!("{c:?}{client:?}");
        assert!(!shown.contains("SECRET"), "{shown}");

        let none = config(serde_json::json!({}));
        let p = none.validate();
        assert_eq!(p[0].0, "token");
        assert!(p[0].1.contains("no HubSpot credentials"), "{p:?}");
        assert!(HubspotClient::new(&none, crate::ConnectorContext::in_memory("h")).is_err());

        let both = config(serde_json::json!({"token": "t", "client_id": "cid"}));
        assert!(
            both.validate()[0].1.contains("keep exactly one"),
            "{:?}",
            both.validate()
        );

        let partial = config(serde_json::json!({"client_id": "cid", "refresh_token": ""}));
        let keys: Vec<String> = partial.validate().into_iter().map(|(k, _)| k).collect();
        assert_eq!(keys, ["client_secret", "refresh_token"]);
        assert!(
            partial.validate()[0]
                .1
                .contains("client_id`, `client_secret` and `refresh_token` together")
        );

        let stray = config(serde_json::json!({"token": "t", "token_url": "https://x.example/t"}));
        assert_eq!(stray.validate()[0].0, "token_url");

        let mut o = oauth.clone();
        o["token_url"] = "not a url".into();
        assert_eq!(config(o).validate()[0].0, "token_url");

        let mut o = oauth;
        o["rate_limit"] = "150/10s".into();
        o["tier"] = "enterprise".into();
        let p = config(o).validate();
        assert!(p[0].1.contains("110/10s for an OAuth app"), "{p:?}");
    }

    #[test]
    fn deal_side_defaults_and_checks() {
        let c = config(serde_json::json!({"token": "t", "webhook_secret": "whsec-SECRET-3"}));
        assert_eq!(c.outcome_poll_interval.0, Duration::from_secs(60));
        assert_eq!(c.outcome_overlap.0, Duration::from_secs(120));
        assert_eq!(c.currency, "USD");
        assert_eq!(c.outcomes_since, None);
        assert_eq!(c.deal_fields, DealFields::default());
        assert_eq!(c.deal_fields.attribution, "tandem_attribution");
        assert!(c.validate().is_empty(), "{:?}", c.validate());
        assert!(!format!("{c:?}").contains("SECRET"));
        assert!(
            serde_json::from_value::<HubspotConfig>(
                serde_json::json!({"token": "t", "deal_fields": {"first": "x"}})
            )
            .is_err(),
            "unknown deal_fields keys are refused"
        );
        let partial =
            config(serde_json::json!({"token": "t", "deal_fields": {"attribution": "credit"}}));
        assert_eq!(partial.deal_fields.first_touch, "tandem_first_touch");

        let bad = config(serde_json::json!({
            "token": "t",
            "outcome_poll_interval": "10ms",
            "outcomes_since": "last tuesday",
            "outcome_overlap": "2d",
            "currency": "euro",
            "deal_fields": {"first_touch": "same", "last_touch": "same", "attribution": "has space"},
            "webhook_secret": " ",
            "webhook_url": "not a url"
        }));
        let keys: Vec<String> = bad.validate().into_iter().map(|(k, _)| k).collect();
        assert_eq!(
            keys,
            [
                "outcome_poll_interval",
                "outcomes_since",
                "outcome_overlap",
                "currency",
                "deal_fields.last_touch",
                "deal_fields.attribution",
                "webhook_secret",
                "webhook_url"
            ]
        );
        let future =
            config(serde_json::json!({"token": "t", "outcomes_since": "2999-01-01T00:00:00Z"}));
        assert!(future.validate()[0].1.contains("in the future"));
        let stray = config(serde_json::json!({"token": "t", "webhook_url": "https://x.example/h"}));
        assert!(stray.validate()[0].1.contains("set webhook_secret too"));
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
