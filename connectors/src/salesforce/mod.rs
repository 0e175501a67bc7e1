//! Salesforce (`kind = "salesforce"`): leads become Lead (or Contact) records through the REST
//! API's sObject Collections, 200 per call, with the OAuth 2.0 refresh-token flow and the org's
//! `instance_url` as the API base.
//!
//! Two ways to find an existing record (`match`):
//! - `"external_id"`: one `PATCH /composite/sobjects/{Object}/{external_id_field}` upsert per
//!   batch (the field's value is the lowercased email unless the flow maps the field itself);
//! - `"email"` (default, for orgs without such a field): one SOQL query by `Email`, then
//!   `POST /composite/sobjects` for the creates (ids recorded at once) and `PATCH` for updates.
//!
//! - [`client`]: the [`crate::LeadSink`], the refresh-and-retry-once on `INVALID_SESSION_ID`,
//!   error classification and `verify()`.
//! - [`plan`]: records → request bodies (defaults, conflict rules, local refusals).
//! - [`results`]: Salesforce's per-record answers → one [`crate::ItemResult`] per record.
//! - [`soql`]: SOQL string escaping and the `IN (…)` reads.
//! - [`limits`]: the `Sforce-Limit-Info` daily budget and `REQUEST_LIMIT_EXCEEDED`.
//! - `write` / `verify`: the two write paths, and `check --connect` against the describe call.
//! - `forget`: `tandem forget`'s deletions (`DELETE /composite/sobjects?ids=…`).
//! - [`outcomes`]: the Opportunity poll ([`crate::outcome::OutcomeSource`]), with its cursor in
//!   [`deal_cursor`]; [`deal_fields`]: attribution written onto the Opportunity
//!   ([`crate::writeback::WritebackSink`]).
//! - [`wire`]: Salesforce's JSON bodies, shared with the sandbox.
//! - `sandbox` (feature `sandbox`): a faithful fake of the endpoints above.
//!
//! ```toml
//! [connectors.salesforce]
//! kind = "salesforce"
//! client_id = "${env:SF_CONSUMER_KEY}"
//! client_secret = "${env:SF_CONSUMER_SECRET}"
//! refresh_token = "${env:SF_REFRESH_TOKEN}"
//! # login_url = "https://login.salesforce.com"   # test.salesforce.com or a My Domain URL
//! # object = "Lead"                              # or "Contact"
//! # match = "email"                              # or "external_id" with external_id_field
//! # external_id_field = "Tandem_Email__c"
//! # api_version = "v62.0"
//! # default_last_name = "[not provided]"
//! # default_company = "[not provided]"
//! # api_reserve_percent = 2.0
//! # limit_pause = "15m"
//! # timeout = "30s"
//! # rate_limit = "10/1s"
//! # base_url = "https://example.my.salesforce.com"   # default: instance_url from the token
//! # outcome_poll_interval = "1m"                # the Opportunity poll
//! # outcomes_since = "2026-01-01T00:00:00Z"     # first poll; default 30 days back
//! # outcome_overlap = "2m"
//! # currency = "USD"
//! # multi_currency = false                      # true: read CurrencyIsoCode
//! # deal_fields = { first_touch = "Tandem_First_Touch__c", last_touch = "Tandem_Last_Touch__c", attribution = "Tandem_Attribution__c" }
//! ```

pub mod client;
pub mod deal_cursor;
pub mod deal_fields;
#[cfg(all(test, feature = "sandbox"))]
mod deal_tests;
mod forget;
pub mod limits;
pub mod outcomes;
pub mod plan;
pub mod results;
#[cfg(feature = "sandbox")]
pub mod sandbox;
pub mod soql;
mod verify;
pub mod wire;
mod write;

use std::time::Duration;

use secrecy::SecretString;
use serde::Deserialize;

use crate::{sink::RateLimit, units::HumanDuration};

pub use client::{MAX_BATCH, SalesforceClient};
pub use deal_fields::SalesforceDealFields;
pub use outcomes::SalesforceOutcomes;

/// Where refresh tokens are exchanged for production orgs.
pub const DEFAULT_LOGIN_URL: &str = "https://login.salesforce.com";
/// The REST API version tandem speaks unless told otherwise.
pub const DEFAULT_API_VERSION: &str = "v62.0";
/// What a required field gets when the flow left it out or it rendered empty.
pub const NOT_PROVIDED: &str = "[not provided]";
/// Pace when the user sets none: far more than a lead flow needs (200 records a call).
pub const DEFAULT_RATE_LIMIT: RateLimit = RateLimit {
    requests: 10,
    per: Duration::from_secs(1),
};
/// Salesforce allows 25 concurrent long-running requests per org; tandem refuses to pace above
/// that many calls per second (the daily budget is the real limit, see [`limits`]).
pub const MAX_RATE_LIMIT: RateLimit = RateLimit {
    requests: 25,
    per: Duration::from_secs(1),
};
/// sObject Collections upsert by external id exists from this version on.
const MIN_API_VERSION: (u32, u32) = (46, 0);

/// The sObject tandem writes people to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub enum SObject {
    #[default]
    Lead,
    Contact,
}

impl SObject {
    pub fn name(self) -> &'static str {
        match self {
            SObject::Lead => "Lead",
            SObject::Contact => "Contact",
        }
    }

    /// Fields Salesforce refuses a create without (besides those with defaults).
    pub fn required_fields(self) -> &'static [&'static str] {
        match self {
            SObject::Lead => &["LastName", "Company"],
            SObject::Contact => &["LastName"],
        }
    }
}

/// How an existing record is found.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MatchMode {
    /// Upsert by a custom field marked External ID (`external_id_field`): one call per batch.
    ExternalId,
    /// Query by `Email`, then create or update by record Id: two or three calls per batch.
    #[default]
    Email,
}

/// `[connectors.NAME]` with `kind = "salesforce"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SalesforceConfig {
    /// Where the token endpoint lives: `{login_url}/services/oauth2/token`.
    #[serde(default = "default_login_url")]
    pub login_url: String,
    /// The connected app's consumer key (refresh-token mode).
    #[serde(default)]
    pub client_id: Option<String>,
    /// The connected app's consumer secret (refresh-token mode).
    #[serde(default)]
    pub client_secret: Option<SecretString>,
    /// A refresh token granted to the connected app (refresh-token mode).
    #[serde(default)]
    pub refresh_token: Option<SecretString>,
    /// A fixed access token (session id) instead of the refresh flow; needs `base_url`.
    #[serde(default)]
    pub access_token: Option<SecretString>,
    /// API base override. Default: the `instance_url` Salesforce returns with each token.
    #[serde(default)]
    pub base_url: Option<String>,
    #[serde(default = "default_api_version")]
    pub api_version: String,
    #[serde(default)]
    pub object: SObject,
    #[serde(default, rename = "match")]
    pub match_mode: MatchMode,
    /// The External ID field upserts are keyed by (`match = "external_id"`).
    #[serde(default)]
    pub external_id_field: Option<String>,
    /// Sent as `LastName` on create when the flow gives none.
    #[serde(default = "default_not_provided")]
    pub default_last_name: String,
    /// Sent as `Company` on Lead creates when the flow gives none.
    #[serde(default = "default_not_provided")]
    pub default_company: String,
    /// Pause deliveries when less than this share of the org's daily API requests is left.
    #[serde(default = "default_reserve")]
    pub api_reserve_percent: f64,
    /// How long to pause when the daily budget is spent or down to the reserve.
    #[serde(default = "default_limit_pause")]
    pub limit_pause: HumanDuration,
    /// Per request, connecting included.
    #[serde(default = "default_timeout")]
    pub timeout: HumanDuration,
    /// Slower than tandem's default pace (at most 25/1s).
    #[serde(default)]
    pub rate_limit: Option<RateLimit>,
    /// How often the Opportunity poll runs when nothing more is waiting.
    #[serde(default = "crate::outcome::default_poll_interval")]
    pub outcome_poll_interval: HumanDuration,
    /// RFC 3339 start of the first Opportunity poll (default: 30 days before the first start).
    #[serde(default)]
    pub outcomes_since: Option<String>,
    /// How far before the newest `SystemModstamp` seen each pass re-reads, for late writes.
    #[serde(default = "crate::outcome::default_overlap")]
    pub outcome_overlap: HumanDuration,
    /// The org's currency, for amounts (and for every amount unless `multi_currency`).
    #[serde(default = "crate::outcome::default_currency")]
    pub currency: String,
    /// The org has multiple currencies enabled: read each Opportunity's `CurrencyIsoCode`.
    #[serde(default)]
    pub multi_currency: bool,
    /// The Opportunity text fields tandem writes attribution to.
    #[serde(default)]
    pub deal_fields: DealFields,
}

/// Salesforce's default Opportunity field API names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SalesforceDealFieldNames;

impl crate::writeback::DealFieldDefaults for SalesforceDealFieldNames {
    const NAMES: [&'static str; 3] = [
        "Tandem_First_Touch__c",
        "Tandem_Last_Touch__c",
        "Tandem_Attribution__c",
    ];
}

/// `deal_fields`: the Opportunity text fields tandem writes attribution to (API names).
pub type DealFields = crate::writeback::DealFields<SalesforceDealFieldNames>;

fn default_login_url() -> String {
    DEFAULT_LOGIN_URL.to_owned()
}
fn default_api_version() -> String {
    DEFAULT_API_VERSION.to_owned()
}
fn default_not_provided() -> String {
    NOT_PROVIDED.to_owned()
}
fn default_reserve() -> f64 {
    2.0
}
fn default_limit_pause() -> HumanDuration {
    HumanDuration(Duration::from_secs(15 * 60))
}
fn default_timeout() -> HumanDuration {
    HumanDuration(Duration::from_secs(30))
}

/// A base URL tandem can call: http(s) with a host, no query; a trailing slash is added so
/// joining API paths keeps any path prefix.
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

/// An API name Salesforce accepts for an object or field (`LastName`, `Tandem_Email__c`).
pub fn is_api_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !s.ends_with('_')
}

/// `"v62.0"` → (62, 0).
pub fn parse_api_version(s: &str) -> Option<(u32, u32)> {
    let (major, minor) = s.strip_prefix('v')?.split_once('.')?;
    if minor.len() != 1 {
        return None;
    }
    Some((major.parse().ok()?, minor.parse().ok()?))
}

fn exceeds(wanted: RateLimit, allowed: RateLimit) -> bool {
    // requests per second, compared without rounding: w.r / w.per > a.r / a.per
    u128::from(wanted.requests) * allowed.per.as_millis()
        > u128::from(allowed.requests) * wanted.per.as_millis()
}

impl SalesforceConfig {
    pub fn token_url(&self) -> String {
        format!(
            "{}/services/oauth2/token",
            self.login_url.trim().trim_end_matches('/')
        )
    }

    pub fn effective_rate_limit(&self) -> RateLimit {
        self.rate_limit.unwrap_or(DEFAULT_RATE_LIMIT)
    }

    /// Problems serde can't see, as (key, message with a hint). Empty when the config is usable.
    pub fn validate(&self) -> Vec<(String, String)> {
        let mut p: Vec<(String, String)> = Vec::new();
        let mut push = |k: &str, m: String| p.push((k.to_owned(), m));
        if let Err(reason) = parse_base_url(&self.login_url) {
            push(
                "login_url",
                format!(
                    "{:?} is not a usable URL ({reason}); write \"{DEFAULT_LOGIN_URL}\", \
                     \"https://test.salesforce.com\" for a sandbox org, or your My Domain URL",
                    self.login_url
                ),
            );
        }
        if let Some(b) = &self.base_url
            && let Err(reason) = parse_base_url(b)
        {
            push(
                "base_url",
                format!(
                    "{b:?} is not a usable URL ({reason}); write e.g. \"https://yourdomain.my.salesforce.com\", \
                     or leave it out to use the instance_url Salesforce returns"
                ),
            );
        }
        match (&self.refresh_token, &self.access_token) {
            (Some(_), Some(_)) => push(
                "access_token",
                "set either refresh_token (with client_id and client_secret) or access_token, not both; \
                 refresh_token is the one that keeps working when sessions expire"
                    .to_owned(),
            ),
            (None, None) => push(
                "refresh_token",
                "missing credentials: set refresh_token, client_id and client_secret from your \
                 connected app (see docs/crm/salesforce.md)"
                    .to_owned(),
            ),
            (Some(_), None) => {
                if self.client_id.as_deref().is_none_or(|s| s.trim().is_empty()) {
                    push(
                        "client_id",
                        "refresh_token needs client_id: the connected app's Consumer Key".to_owned(),
                    );
                }
                if self.client_secret.is_none() {
                    push(
                        "client_secret",
                        "refresh_token needs client_secret: the connected app's Consumer Secret"
                            .to_owned(),
                    );
                }
            }
            (None, Some(_)) => {
                if self.base_url.is_none() {
                    push(
                        "base_url",
                        "access_token needs base_url (your org's https://….my.salesforce.com), \
                         since there is no token response to take instance_url from"
                            .to_owned(),
                    );
                }
                if self.client_id.is_some() || self.client_secret.is_some() {
                    push(
                        "client_id",
                        "client_id/client_secret are only used with refresh_token; remove them or \
                         replace access_token with refresh_token"
                            .to_owned(),
                    );
                }
            }
        }
        match parse_api_version(&self.api_version) {
            None => push(
                "api_version",
                format!(
                    "{:?} is not a Salesforce API version; write it like \"{DEFAULT_API_VERSION}\"",
                    self.api_version
                ),
            ),
            Some(v) if v < MIN_API_VERSION => push(
                "api_version",
                format!(
                    "{} is too old: sObject Collections upsert needs v46.0 or later; write \"{DEFAULT_API_VERSION}\"",
                    self.api_version
                ),
            ),
            Some(_) => {}
        }
        match (self.match_mode, self.external_id_field.as_deref()) {
            (MatchMode::ExternalId, None) => push(
                "external_id_field",
                "match = \"external_id\" needs external_id_field: a custom text field marked \
                 External ID on the object, e.g. \"Tandem_Email__c\" (or use match = \"email\")"
                    .to_owned(),
            ),
            (MatchMode::ExternalId, Some(f)) if !is_api_name(f) => push(
                "external_id_field",
                format!(
                    "{f:?} is not a field API name; use the API name shown in Object Manager, e.g. \"Tandem_Email__c\""
                ),
            ),
            (MatchMode::ExternalId, Some(f))
                if f.eq_ignore_ascii_case("Email") || f.eq_ignore_ascii_case("Id") =>
            {
                push(
                    "external_id_field",
                    format!(
                        "{f} is not an External ID field; create a custom text field with \
                         \"External ID\" ticked (e.g. Tandem_Email__c), or use match = \"email\""
                    ),
                )
            }
            (MatchMode::Email, Some(_)) => push(
                "external_id_field",
                "external_id_field is only used with match = \"external_id\"; add that, or remove the key"
                    .to_owned(),
            ),
            _ => {}
        }
        if self.default_last_name.trim().is_empty() {
            push(
                "default_last_name",
                format!(
                    "must not be empty (Salesforce requires LastName); e.g. \"{NOT_PROVIDED}\""
                ),
            );
        }
        if self.object == SObject::Lead && self.default_company.trim().is_empty() {
            push(
                "default_company",
                format!("must not be empty (a Lead requires Company); e.g. \"{NOT_PROVIDED}\""),
            );
        }
        if !(0.0..=50.0).contains(&self.api_reserve_percent) {
            push(
                "api_reserve_percent",
                format!(
                    "{} is out of range; write a percentage between 0 and 50, e.g. 2.0",
                    self.api_reserve_percent
                ),
            );
        }
        if self.limit_pause.0 < Duration::from_secs(60) {
            push(
                "limit_pause",
                "must be at least 1m: the daily budget is a rolling 24 hours; e.g. \"15m\""
                    .to_owned(),
            );
        }
        if self.timeout.0.is_zero() {
            push(
                "timeout",
                "a zero timeout fails every call; write e.g. \"30s\"".to_owned(),
            );
        }
        self.validate_deal_side(&mut push);
        if let Some(wanted) = self.rate_limit
            && exceeds(wanted, MAX_RATE_LIMIT)
        {
            push(
                "rate_limit",
                format!(
                    "{wanted} exceeds {MAX_RATE_LIMIT}: Salesforce allows 25 concurrent requests per org \
                     and every call spends the daily API budget; each call carries up to 200 leads, so \
                     lower it (the default {DEFAULT_RATE_LIMIT} is plenty)"
                ),
            );
        }
        p
    }
}

impl SalesforceConfig {
    /// The deal-side keys: poll timing, start, currency, field names.
    fn validate_deal_side(&self, push: &mut impl FnMut(&str, String)) {
        let interval = self.outcome_poll_interval.0;
        if interval.is_zero() || interval > Duration::from_secs(86_400) {
            push(
                "outcome_poll_interval",
                "must be between 1ms and 1d; every poll is one or two API calls from the org's \
                 daily budget, so write e.g. \"1m\""
                    .to_owned(),
            );
        }
        if self.outcome_overlap.0 > Duration::from_secs(86_400) {
            push(
                "outcome_overlap",
                "must be at most 1d (each pass re-reads that much); write e.g. \"2m\"".to_owned(),
            );
        }
        if let Some(since) = &self.outcomes_since
            && let Err(m) = deal_cursor::check_outcomes_since(since)
        {
            push("outcomes_since", m);
        }
        if let Err(m) = deal_cursor::check_currency(&self.currency) {
            push("currency", m);
        }
        let named = self.deal_fields.named();
        for (i, (key, field)) in named.iter().enumerate() {
            if !is_api_name(field) {
                push(
                    &format!("deal_fields.{key}"),
                    format!(
                        "{field:?} is not a field API name; use the Opportunity field's API name from \
                         Object Manager, e.g. \"Tandem_First_Touch__c\""
                    ),
                );
            } else if let Some((other, _)) = named[..i]
                .iter()
                .find(|(_, f)| f.eq_ignore_ascii_case(field))
            {
                push(
                    &format!("deal_fields.{key}"),
                    format!(
                        "{field} is also deal_fields.{other}; each needs its own Opportunity field, \
                         or one would overwrite the other"
                    ),
                );
            }
        }
    }
}

impl crate::Connector for SalesforceConfig {
    fn validate(&self) -> Vec<(String, String)> {
        SalesforceConfig::validate(self)
    }

    fn lead_sink(
        &self,
        ctx: crate::ConnectorContext,
    ) -> Result<Option<std::sync::Arc<dyn crate::LeadSink>>, crate::BuildError> {
        Ok(Some(std::sync::Arc::new(SalesforceClient::new(self, ctx)?)))
    }

    fn is_crm(&self) -> bool {
        true
    }

    fn outcome_source(
        &self,
        ctx: crate::ConnectorContext,
    ) -> Result<Option<std::sync::Arc<dyn crate::outcome::OutcomeSource>>, crate::BuildError> {
        Ok(Some(std::sync::Arc::new(
            outcomes::SalesforceOutcomes::new(self, ctx)?,
        )))
    }

    fn writeback_sink(
        &self,
        ctx: crate::ConnectorContext,
    ) -> Result<Option<std::sync::Arc<dyn crate::writeback::WritebackSink>>, crate::BuildError>
    {
        Ok(Some(std::sync::Arc::new(
            deal_fields::SalesforceDealFields::new(self, ctx)?,
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

    fn config(json: serde_json::Value) -> SalesforceConfig {
        serde_json::from_value(json).expect("config parses")
    }

    fn creds() -> serde_json::Value {
        serde_json::json!({"client_id": "3MVG9.key", "client_secret": "s3cr3t", "refresh_token": "5Aep861.rt"})
    }

    fn with(extra: serde_json::Value) -> SalesforceConfig {
        let mut c = creds();
        c.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        config(c)
    }

    #[test]
    fn defaults_are_explicit_and_documented() {
        let c = config(creds());
        assert_eq!(c.login_url, DEFAULT_LOGIN_URL);
        assert_eq!(
            c.token_url(),
            "https://login.salesforce.com/services/oauth2/token"
        );
        assert_eq!(c.api_version, "v62.0");
        assert_eq!(c.object, SObject::Lead);
        assert_eq!(c.match_mode, MatchMode::Email);
        assert_eq!(c.default_last_name, "[not provided]");
        assert_eq!(c.default_company, "[not provided]");
        assert_eq!(c.limit_pause.0, Duration::from_secs(900));
        assert_eq!(c.timeout.0, Duration::from_secs(30));
        assert_eq!(c.effective_rate_limit().to_string(), "10/1s");
        assert!(c.base_url.is_none());
        assert!(c.validate().is_empty(), "{:?}", c.validate());
        let client = SalesforceClient::new(&c, crate::ConnectorContext::in_memory("sf")).unwrap();
        assert_eq!(client.max_batch(), 200);
        let debug = format!("{c:?}{client:?}");
        assert!(
            !debug.contains("s3cr3t") && !debug.contains("5Aep861"),
            "{debug}"
        );
    }

    #[test]
    fn unknown_keys_and_bad_values_are_refused() {
        assert!(
            serde_json::from_value::<SalesforceConfig>(serde_json::json!({"clientid": "x"}))
                .is_err()
        );
        assert!(
            serde_json::from_value::<SalesforceConfig>(serde_json::json!({"object": "Account"}))
                .is_err()
        );
        assert!(
            serde_json::from_value::<SalesforceConfig>(serde_json::json!({"match": "phone"}))
                .is_err()
        );
        let c = with(
            serde_json::json!({"object": "Contact", "match": "external_id", "external_id_field": "Tandem_Email__c"}),
        );
        assert!(c.validate().is_empty(), "{:?}", c.validate());
    }

    #[test]
    fn auth_modes_must_be_exactly_one_and_complete() {
        let keys =
            |c: SalesforceConfig| c.validate().into_iter().map(|(k, _)| k).collect::<Vec<_>>();
        assert_eq!(keys(config(serde_json::json!({}))), ["refresh_token"]);
        assert_eq!(
            keys(config(serde_json::json!({"refresh_token": "x"}))),
            ["client_id", "client_secret"]
        );
        assert_eq!(
            keys(config(serde_json::json!({"access_token": "x"}))),
            ["base_url"]
        );
        assert!(
            keys(config(
                serde_json::json!({"access_token": "x", "base_url": "https://a.my.salesforce.com"})
            ))
            .is_empty()
        );
        assert_eq!(
            keys(with(serde_json::json!({"access_token": "x"}))),
            ["access_token"]
        );
    }

    #[test]
    fn validate_names_the_key_and_says_how_to_fix_it() {
        let c = with(serde_json::json!({
            "login_url": "login.salesforce.com", "api_version": "62", "match": "external_id",
            "rate_limit": "100/1s", "api_reserve_percent": 80.0, "timeout": "0s"
        }));
        let p = c.validate();
        let keys: Vec<_> = p.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            keys,
            [
                "login_url",
                "api_version",
                "external_id_field",
                "api_reserve_percent",
                "timeout",
                "rate_limit"
            ],
            "{p:?}"
        );
        assert!(p[2].1.contains("Tandem_Email__c"));
        assert!(p[5].1.contains("exceeds 25/1s"));
        let old = with(serde_json::json!({"api_version": "v45.0"}));
        assert!(old.validate()[0].1.contains("v46.0"));
        let email_with_field = with(serde_json::json!({"external_id_field": "X__c"}));
        assert_eq!(email_with_field.validate()[0].0, "external_id_field");
        let std_field =
            with(serde_json::json!({"match": "external_id", "external_id_field": "Email"}));
        assert!(
            std_field.validate()[0]
                .1
                .contains("not an External ID field")
        );
    }

    #[test]
    fn api_names_and_versions() {
        assert!(is_api_name("Tandem_Email__c") && is_api_name("LastName"));
        assert!(
            !is_api_name("Last Name")
                && !is_api_name("x'--")
                && !is_api_name("_x")
                && !is_api_name("")
        );
        assert_eq!(parse_api_version("v62.0"), Some((62, 0)));
        assert_eq!(parse_api_version("62.0"), None);
        assert!(exceeds("26/1s".parse().unwrap(), MAX_RATE_LIMIT));
        assert!(!exceeds("250/10s".parse().unwrap(), MAX_RATE_LIMIT));
    }

    #[test]
    fn deal_side_keys_have_defaults_and_are_validated() {
        use crate::Connector;
        let c = config(creds());
        assert_eq!(c.outcome_poll_interval.0, Duration::from_secs(60));
        assert_eq!(c.outcome_overlap.0, Duration::from_secs(120));
        assert_eq!((c.currency.as_str(), c.multi_currency), ("USD", false));
        assert!(c.outcomes_since.is_none());
        assert_eq!(
            c.deal_fields.named().map(|(_, f)| f),
            [
                "Tandem_First_Touch__c",
                "Tandem_Last_Touch__c",
                "Tandem_Attribution__c"
            ]
        );
        assert!(c.is_writeback());
        let ctx = || crate::ConnectorContext::in_memory("sf");
        assert!(c.outcome_source(ctx()).unwrap().is_some());
        assert!(c.writeback_sink(ctx()).unwrap().is_some());
        let bad = with(serde_json::json!({
            "outcome_poll_interval": "0s", "outcome_overlap": "2d", "outcomes_since": "2026-01-01",
            "currency": "EURO",
            "deal_fields": {"first_touch": "First Touch", "last_touch": "Same__c", "attribution": "same__c"}
        }));
        let p = bad.validate();
        let keys: Vec<&str> = p.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            keys,
            [
                "outcome_poll_interval",
                "outcome_overlap",
                "outcomes_since",
                "currency",
                "deal_fields.first_touch",
                "deal_fields.attribution"
            ],
            "{p:?}"
        );
        assert!(p[2].1.contains("RFC 3339"), "{p:?}");
        assert!(p[5].1.contains("also deal_fields.last_touch"), "{p:?}");
        assert!(
            serde_json::from_value::<SalesforceConfig>(
                serde_json::json!({"deal_fields": {"first": "X__c"}})
            )
            .is_err()
        );
        let ok = with(serde_json::json!({
            "outcomes_since": "2026-01-01T00:00:00Z", "currency": "eur", "multi_currency": true,
            "deal_fields": {"attribution": "Attribution__c"}
        }));
        assert!(ok.validate().is_empty(), "{:?}", ok.validate());
        assert_eq!(ok.deal_fields.first_touch, "Tandem_First_Touch__c");
    }
}
