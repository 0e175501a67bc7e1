//! Pipedrive CRM (`kind = "pipedrive"`): leads become persons through API v2
//! (`POST /api/v2/persons`, `PATCH /api/v2/persons/{id}`), found first by the id tandem stored on
//! an earlier delivery, else by an exact email search, else among the persons added in the last
//! few minutes (the search index lags behind writes). Optionally each delivery also opens a
//! Pipedrive lead (`POST /api/v1/leads`) linked to the person. Pipedrive has no batch or upsert
//! endpoint, so a batch is worked through record by record, and a created id is recorded in the
//! daemon's store before the next record starts. The same connector is the deal side of the loop:
//! deals polled as outcomes, attribution written onto their custom fields, and `tandem forget`
//! deleting persons (docs/crm/pipedrive.md).
//!
//! - [`client`]: the [`crate::LeadSink`]: auth (API token or OAuth), pacing, error classes.
//! - [`upsert`]: one batch, record by record: find, decide conflict rules, write, open the lead.
//! - [`mapping`]: tandem properties → Pipedrive's person body, and the reverse for existing values.
//! - [`wire`]: Pipedrive's JSON envelopes and bodies, shared with the sandbox.
//! - [`limits`]: plan limits, the `x-ratelimit-*` and daily-budget headers, the request pacer.
//! - [`verify`]: `check --connect` against `GET /api/v1/personFields`.
//! - [`forget`]: `tandem forget` as `DELETE /api/v2/persons/{id}`.
//! - [`deals`] and [`deal_cursor`]: the [`crate::outcome::OutcomeSource`]: deals changed since
//!   a cursor (`GET /api/v2/deals`), with their person and participants.
//! - [`hook`]: the deal-change webhook (v2 bodies, HTTP Basic auth) as a wake-up for that poll.
//! - [`deal_fields`]: the [`crate::writeback::WritebackSink`] that writes attribution onto the
//!   deal's custom fields (`PATCH /api/v2/deals/{id}`).
//! - [`shared`]: one client (credentials, pacer) per connector for all of the above.
//! - `sandbox` (feature `sandbox`): a faithful fake of the endpoints above, with search lag.
//!
//! ```toml
//! [connectors.pipedrive]
//! kind = "pipedrive"
//! api_token = "${env:PIPEDRIVE_TOKEN}"      # or client_id + client_secret + refresh_token
//! plan = "essential"                        # essential | advanced | professional | enterprise
//! # create_lead = true
//! # lead_title = "{name} (web form)"
//! # base_url = "https://api.pipedrive.com"
//! # token_url = "https://oauth.pipedrive.com/oauth/token"
//! # recent_window = "10m"
//! # rate_limit = "20/2s"
//! # timeout = "30s"
//! # outcome_poll_interval = "1m"            # the deal side: outcomes and attribution fields
//! # outcomes_since = "2026-01-01T00:00:00Z"  # first poll; default 30 days back
//! # outcome_overlap = "2m"
//! # currency = "USD"
//! # deal_participants = true
//! # webhook_user = "tandem"                  # the webhook's http_auth_user / http_auth_password
//! # webhook_password = "${env:PIPEDRIVE_HOOK_PASSWORD}"
//! # deal_fields = { first_touch = "tandem first touch", last_touch = "tandem last touch", attribution = "tandem attribution" }
//! ```

pub mod client;
pub mod deal_cursor;
pub mod deal_fields;
pub mod deals;
pub mod forget;
pub mod hook;
pub mod limits;
pub mod mapping;
#[cfg(feature = "sandbox")]
pub mod sandbox;
pub mod shared;
pub mod upsert;
pub mod verify;
pub mod wire;

#[cfg(all(test, feature = "sandbox"))]
mod loopback_tests;

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use crate::{sink::RateLimit, units::HumanDuration};

pub use client::{MAX_BATCH, PipedriveClient};
pub use limits::Plan;

/// Pipedrive's production API host (v1 under `/api/v1`, v2 under `/api/v2`).
pub const DEFAULT_BASE_URL: &str = "https://api.pipedrive.com";
/// Pipedrive's OAuth token endpoint.
pub const DEFAULT_TOKEN_URL: &str = "https://oauth.pipedrive.com/oauth/token";

/// `[connectors.NAME]` with `kind = "pipedrive"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipedriveConfig {
    /// Personal API token (Settings → Personal preferences → API), sent as `x-api-token`.
    #[serde(default)]
    pub api_token: Option<SecretString>,
    /// OAuth app (Marketplace Manager): client id, secret, and a refresh token from the install.
    #[serde(default)]
    pub client_id: Option<String>,
    #[serde(default)]
    pub client_secret: Option<SecretString>,
    #[serde(default)]
    pub refresh_token: Option<SecretString>,
    /// Where the API lives (API-token mode; in OAuth mode the token's `api_domain` wins).
    #[serde(default = "default_base_url")]
    pub base_url: String,
    /// The OAuth token endpoint.
    #[serde(default = "default_token_url")]
    pub token_url: String,
    /// The account's plan, which decides the burst limit per 2-second window.
    #[serde(default)]
    pub plan: Plan,
    /// Slower than the plan allows (requests per window), e.g. to leave room for other apps.
    #[serde(default)]
    pub rate_limit: Option<RateLimit>,
    /// Also open a Pipedrive lead (v1 `/leads`) linked to the person, once per delivery.
    #[serde(default)]
    pub create_lead: bool,
    /// The lead's title; `{name}`, `{email}`, `{first_name}`, … are replaced by the record's
    /// property of that name (missing = empty).
    #[serde(default = "default_lead_title")]
    pub lead_title: String,
    /// How far back the newest persons are checked by email when the search finds nothing
    /// (Pipedrive's search index lags behind writes; a lost create is found here).
    #[serde(default = "default_recent_window")]
    pub recent_window: HumanDuration,
    /// Per request, connecting included.
    #[serde(default = "default_timeout")]
    pub timeout: HumanDuration,
    /// How often deals are polled when nothing more is waiting.
    #[serde(default = "crate::outcome::default_poll_interval")]
    pub outcome_poll_interval: HumanDuration,
    /// RFC 3339: where the first outcome poll starts (default: 30 days before the first poll).
    #[serde(default)]
    pub outcomes_since: Option<String>,
    /// How far before the newest change seen each poll reads again, for writes that become
    /// visible late.
    #[serde(default = "crate::outcome::default_overlap")]
    pub outcome_overlap: HumanDuration,
    /// ISO 4217 code for deals without a currency of their own.
    #[serde(default = "crate::outcome::default_currency")]
    pub currency: String,
    /// Also read a deal's participants (beyond its main person) when it has any.
    #[serde(default = "default_deal_participants")]
    pub deal_participants: bool,
    /// The custom deal fields attribution is written into: API keys (40 hex characters) or the
    /// fields' names.
    #[serde(default)]
    pub deal_fields: DealFieldNames,
    /// HTTP Basic user the deal webhook was created with (`http_auth_user`).
    #[serde(default)]
    pub webhook_user: Option<String>,
    /// HTTP Basic password the deal webhook was created with (`http_auth_password`).
    #[serde(default)]
    pub webhook_password: Option<SecretString>,
}

/// Pipedrive addresses custom fields by generated keys, so no key can be a default: the defaults
/// are field names, resolved to keys through `GET /api/v1/dealFields`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PipedriveDealFieldNames;

impl crate::writeback::DealFieldDefaults for PipedriveDealFieldNames {
    const NAMES: [&'static str; 3] = [
        "tandem first touch",
        "tandem last touch",
        "tandem attribution",
    ];
}

/// `deal_fields`: the custom deal fields attribution is written into, by API key or name.
pub type DealFieldNames = crate::writeback::DealFields<PipedriveDealFieldNames>;

fn default_base_url() -> String {
    DEFAULT_BASE_URL.to_owned()
}
fn default_token_url() -> String {
    DEFAULT_TOKEN_URL.to_owned()
}
fn default_lead_title() -> String {
    "{name}".to_owned()
}
fn default_recent_window() -> HumanDuration {
    HumanDuration(Duration::from_secs(600))
}
fn default_timeout() -> HumanDuration {
    HumanDuration(Duration::from_secs(30))
}
fn default_deal_participants() -> bool {
    true
}
/// Whether `s` is shaped like a Pipedrive custom field key (40 hex characters).
pub(crate) fn is_field_key(s: &str) -> bool {
    s.len() == 40 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The longest `outcome_overlap` accepted: every poll re-reads this much history.
const MAX_OVERLAP: Duration = Duration::from_secs(86_400);

/// A URL tandem can call: http(s) with a host, no query or fragment; a trailing slash is added
/// so joining API paths keeps any path prefix.
pub(crate) fn parse_url(raw: &str) -> Result<reqwest::Url, String> {
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

/// How the connector authenticates, once validated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMode {
    ApiToken,
    OAuth,
}

impl PipedriveConfig {
    /// The auth mode the keys select, if exactly one is complete.
    pub fn auth_mode(&self) -> Option<AuthMode> {
        let oauth = self.client_id.is_some()
            && self.client_secret.is_some()
            && self.refresh_token.is_some();
        match (self.api_token.is_some(), oauth) {
            (true, false)
                if self.client_id.is_none()
                    && self.client_secret.is_none()
                    && self.refresh_token.is_none() =>
            {
                Some(AuthMode::ApiToken)
            }
            (false, true) => Some(AuthMode::OAuth),
            _ => None,
        }
    }

    /// The limit tandem paces its requests by: the user's override, else the plan's.
    pub fn effective_rate_limit(&self) -> RateLimit {
        let mode = self.auth_mode().unwrap_or(AuthMode::ApiToken);
        self.rate_limit
            .unwrap_or_else(|| self.plan.rate_limit(mode))
    }

    /// Problems serde can't see, as (key, message with a hint). Empty when the config is usable.
    pub fn validate(&self) -> Vec<(String, String)> {
        let mut problems = Vec::new();
        let mut push = |k: &str, m: String| problems.push((k.to_owned(), m));
        if let Err(reason) = parse_url(&self.base_url) {
            push(
                "base_url",
                format!(
                    "{:?} is not a usable URL ({reason}); write e.g. \"{DEFAULT_BASE_URL}\"",
                    self.base_url
                ),
            );
        }
        if let Err(reason) = parse_url(&self.token_url) {
            push(
                "token_url",
                format!(
                    "{:?} is not a usable URL ({reason}); write e.g. \"{DEFAULT_TOKEN_URL}\"",
                    self.token_url
                ),
            );
        }
        let oauth_keys = [
            ("client_id", self.client_id.is_some()),
            ("client_secret", self.client_secret.is_some()),
            ("refresh_token", self.refresh_token.is_some()),
        ];
        let any_oauth = oauth_keys.iter().any(|(_, set)| *set);
        if self.api_token.is_some() && any_oauth {
            push(
                "api_token",
                "set either api_token or the OAuth keys (client_id, client_secret, refresh_token), not both; \
                 OAuth is for Marketplace apps, api_token for your own account"
                    .to_owned(),
            );
        } else if self.api_token.is_none() && !any_oauth {
            push(
                "api_token",
                "no credentials: set api_token (Pipedrive → Personal preferences → API) or client_id, \
                 client_secret and refresh_token of an OAuth app"
                    .to_owned(),
            );
        } else if any_oauth {
            for (key, set) in oauth_keys {
                if !set {
                    push(
                        key,
                        format!(
                            "OAuth needs client_id, client_secret and refresh_token; {key} is missing"
                        ),
                    );
                }
            }
        }
        if let Some(id) = &self.client_id
            && id.trim().is_empty()
        {
            push("client_id", "client_id is empty; copy it from Marketplace Manager → your app → OAuth & access scopes".to_owned());
        }
        if let Some(wanted) = self.rate_limit {
            let mode = self.auth_mode().unwrap_or(AuthMode::ApiToken);
            let allowed = self.plan.rate_limit(mode);
            if limits::exceeds(wanted, allowed) {
                push(
                    "rate_limit",
                    format!(
                        "{wanted} exceeds the {} plan's {allowed} ({}); Pipedrive would answer 429. \
                         Lower it, or set `plan` if the account has a higher one",
                        self.plan.display_name(),
                        match mode {
                            AuthMode::ApiToken => "per api_token",
                            AuthMode::OAuth => "per OAuth access token",
                        }
                    ),
                );
            }
        }
        if self.create_lead && self.lead_title.trim().is_empty() {
            push(
                "lead_title",
                "a Pipedrive lead needs a title; write e.g. \"{name} (web form)\"".to_owned(),
            );
        }
        if let Err(e) = mapping::check_title_template(&self.lead_title) {
            push("lead_title", e);
        }
        if self.timeout.0.is_zero() {
            push(
                "timeout",
                "a zero timeout fails every call; write e.g. \"30s\"".to_owned(),
            );
        }
        if self.recent_window.0 < Duration::from_secs(10) {
            push(
                "recent_window",
                "must be at least \"10s\" (Pipedrive's search can lag behind a create by seconds); the default is \"10m\"".to_owned(),
            );
        }
        self.validate_deal_side(&mut push);
        problems
    }

    /// The deal side's keys: outcome polling, currency, deal fields, webhook credentials.
    fn validate_deal_side(&self, push: &mut impl FnMut(&str, String)) {
        if self.outcome_poll_interval.0 < Duration::from_millis(100) {
            push(
                "outcome_poll_interval",
                "must be at least \"100ms\"; every poll is one request against the daily budget, the default is \"1m\"".to_owned(),
            );
        }
        if self.outcome_overlap.0 > MAX_OVERLAP {
            push(
                "outcome_overlap",
                "must be at most \"1d\" (every poll reads this much history again); the default is \"2m\"".to_owned(),
            );
        }
        if let Some(since) = &self.outcomes_since
            && since.trim().parse::<jiff::Timestamp>().is_err()
        {
            push(
                "outcomes_since",
                format!("{since:?} is not an RFC 3339 time; write e.g. \"2026-01-01T00:00:00Z\""),
            );
        }
        let c = self.currency.trim();
        if c.len() != 3 || !c.bytes().all(|b| b.is_ascii_alphabetic()) {
            push(
                "currency",
                format!(
                    "{:?} is not an ISO 4217 code; write e.g. \"USD\" or \"EUR\"",
                    self.currency
                ),
            );
        }
        let entries = self.deal_fields.named();
        for (i, (key, value)) in entries.iter().enumerate() {
            if value.trim().is_empty() {
                push(
                    &format!("deal_fields.{key}"),
                    "is empty; write the API key (Settings → Data fields → Deal → the field) or the name of a text custom field".to_owned(),
                );
            } else if let Some((other, _)) = entries[..i]
                .iter()
                .find(|(_, v)| v.trim().eq_ignore_ascii_case(value.trim()))
            {
                push(
                    &format!("deal_fields.{key}"),
                    format!(
                        "names the same field as deal_fields.{other}; each needs a field of its own"
                    ),
                );
            }
        }
        match (&self.webhook_user, &self.webhook_password) {
            (None, None) => {}
            (Some(_), None) => push(
                "webhook_password",
                "webhook_user is set without webhook_password; set both (the webhook's http_auth_user and http_auth_password), or neither to rely on polling".to_owned(),
            ),
            (None, Some(_)) => push(
                "webhook_user",
                "webhook_password is set without webhook_user; set both (the webhook's http_auth_user and http_auth_password), or neither to rely on polling".to_owned(),
            ),
            (Some(user), Some(password)) => {
                if user.trim().is_empty() || user.contains(':') {
                    push(
                        "webhook_user",
                        "must be non-empty and contain no ':' (HTTP Basic auth splits user and password at the first colon)".to_owned(),
                    );
                }
                if password.expose_secret().is_empty() {
                    push(
                        "webhook_password",
                        "is empty; Pipedrive's webhooks carry no signature, so the Basic auth password is their only proof".to_owned(),
                    );
                }
            }
        }
    }
}

impl crate::Connector for PipedriveConfig {
    fn validate(&self) -> Vec<(String, String)> {
        PipedriveConfig::validate(self)
    }

    fn lead_sink(
        &self,
        ctx: crate::ConnectorContext,
    ) -> Result<Option<std::sync::Arc<dyn crate::LeadSink>>, crate::BuildError> {
        Ok(Some(shared::client(self, ctx)?))
    }

    fn is_crm(&self) -> bool {
        true
    }

    fn outcome_source(
        &self,
        ctx: crate::ConnectorContext,
    ) -> Result<Option<std::sync::Arc<dyn crate::outcome::OutcomeSource>>, crate::BuildError> {
        let client = shared::client(self, ctx)?;
        Ok(Some(std::sync::Arc::new(deals::DealPoller::new(
            self, client,
        ))))
    }

    fn writeback_sink(
        &self,
        ctx: crate::ConnectorContext,
    ) -> Result<Option<std::sync::Arc<dyn crate::writeback::WritebackSink>>, crate::BuildError>
    {
        let client = shared::client(self, ctx)?;
        Ok(Some(std::sync::Arc::new(
            deal_fields::DealFieldWriter::new(self, client),
        )))
    }

    fn is_writeback(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::LeadSink;

    fn config(json: serde_json::Value) -> PipedriveConfig {
        serde_json::from_value(json).expect("config parses")
    }

    #[test]
    fn defaults_are_explicit() {
        let c = config(serde_json::json!({"api_token": "secret-token-1"}));
        assert_eq!(c.base_url, DEFAULT_BASE_URL);
        assert_eq!(c.token_url, DEFAULT_TOKEN_URL);
        assert_eq!(c.plan, Plan::Essential);
        assert_eq!(c.timeout.0, Duration::from_secs(30));
        assert_eq!(c.recent_window.0, Duration::from_secs(600));
        assert!(!c.create_lead);
        assert_eq!(c.lead_title, "{name}");
        assert_eq!(c.auth_mode(), Some(AuthMode::ApiToken));
        assert_eq!(c.effective_rate_limit().to_string(), "20/2s");
        assert!(c.validate().is_empty(), "{:?}", c.validate());
        let client = PipedriveClient::new(&c, crate::ConnectorContext::in_memory("pd")).unwrap();
        assert_eq!(client.max_batch(), MAX_BATCH);
        assert!(!format!("{c:?}{client:?}").contains("secret-token-1"));
    }

    #[test]
    fn exactly_one_auth_mode() {
        let both = config(serde_json::json!({"api_token": "t", "client_id": "c"}));
        assert_eq!(both.validate()[0].0, "api_token");
        assert!(both.validate()[0].1.contains("not both"));
        let none = config(serde_json::json!({}));
        assert!(none.validate()[0].1.contains("no credentials"));
        let half = config(serde_json::json!({"client_id": "c", "refresh_token": "r"}));
        let p = half.validate();
        assert_eq!(p.len(), 1, "{p:?}");
        assert_eq!(p[0].0, "client_secret");
        let oauth = config(
            serde_json::json!({"client_id": "c", "client_secret": "s", "refresh_token": "r"}),
        );
        assert!(oauth.validate().is_empty());
        assert_eq!(oauth.auth_mode(), Some(AuthMode::OAuth));
        assert_eq!(oauth.effective_rate_limit().to_string(), "80/2s");
        assert!(
            serde_json::from_value::<PipedriveConfig>(serde_json::json!({"api_tokn": "x"}))
                .is_err()
        );
    }

    #[test]
    fn deal_side_keys_have_defaults_and_are_validated() {
        let c = config(serde_json::json!({"api_token": "t"}));
        assert_eq!(c.outcome_poll_interval.0, Duration::from_secs(60));
        assert_eq!(c.outcome_overlap.0, Duration::from_secs(120));
        assert_eq!(
            (c.currency.as_str(), c.outcomes_since.as_deref()),
            ("USD", None)
        );
        assert!(c.deal_participants);
        assert_eq!(c.deal_fields.first_touch, "tandem first touch");
        assert_eq!(c.deal_fields.attribution, "tandem attribution");
        assert!(crate::Connector::is_writeback(&c));
        let c = config(serde_json::json!({
            "api_token": "t", "outcome_poll_interval": "10ms", "outcome_overlap": "2d",
            "outcomes_since": "last tuesday", "currency": "EURO",
            "deal_fields": {"first_touch": " ", "last_touch": "A", "attribution": "a"},
            "webhook_user": "a:b", "webhook_password": ""
        }));
        let keys: Vec<String> = c.validate().into_iter().map(|(k, _)| k).collect();
        assert_eq!(
            keys,
            [
                "outcome_poll_interval",
                "outcome_overlap",
                "outcomes_since",
                "currency",
                "deal_fields.first_touch",
                "deal_fields.attribution",
                "webhook_user",
                "webhook_password"
            ]
        );
        let half = config(serde_json::json!({"api_token": "t", "webhook_user": "u"}));
        assert_eq!(half.validate()[0].0, "webhook_password");
        let good = config(serde_json::json!({
            "api_token": "t", "outcomes_since": "2026-01-01T00:00:00Z", "currency": "eur",
            "webhook_user": "u", "webhook_password": "hook-secret-9",
            "deal_fields": {"first_touch": "4f6c1a0e2b9d8c7f6e5d4c3b2a1f0e9d8c7b6a5f"}
        }));
        assert!(good.validate().is_empty(), "{:?}", good.validate());
        assert!(!format!("{good:?}").contains("hook-secret-9"));
        assert!(
            serde_json::from_value::<PipedriveConfig>(
                serde_json::json!({"api_token": "t", "deal_fields": {"first_tuch": "x"}})
            )
            .is_err()
        );
    }

    #[test]
    fn validate_names_the_key_and_says_why() {
        let c = config(serde_json::json!({
            "api_token": "t", "base_url": "ftp://x", "token_url": "nope", "rate_limit": "30/2s",
            "create_lead": true, "lead_title": " ", "timeout": "0s", "recent_window": "1s"
        }));
        let keys: Vec<String> = c.validate().into_iter().map(|(k, _)| k).collect();
        assert_eq!(
            keys,
            [
                "base_url",
                "token_url",
                "rate_limit",
                "lead_title",
                "timeout",
                "recent_window"
            ]
        );
        let msg = &c.validate()[2].1;
        assert!(msg.contains("exceeds the Essential plan's 20/2s"), "{msg}");
        let c = config(
            serde_json::json!({"api_token": "t", "plan": "enterprise", "rate_limit": "100/2s"}),
        );
        assert!(c.validate().is_empty());
        let c = config(serde_json::json!({"api_token": "t", "lead_title": "{name"}));
        assert_eq!(c.validate()[0].0, "lead_title");
    }
}
