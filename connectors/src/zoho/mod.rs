//! Zoho CRM (`kind = "zoho"`): leads become Leads (or Contacts) through
//! `POST {api_domain}/crm/v8/{module}/upsert`, keyed by Zoho's duplicate-check fields (Email by
//! default), 100 records per call, authenticated with an OAuth refresh token against the
//! account's data-centre-specific Zoho Accounts host.
//!
//! - [`client`]: the [`crate::LeadSink`] implementation, the token/`api_domain` handling and the
//!   error classification.
//! - [`batch`]: records → upsert rows (keys, in-batch duplicates, required-field defaults,
//!   conflict rules) and Zoho's per-record answers → one result per record, in input order.
//! - [`lookup`]: the one COQL read of existing values that conflict rules need.
//! - [`verify`]: `tandem check --connect` against the fields metadata.
//! - `forget`: `tandem forget`'s deletions (`DELETE /crm/v8/{module}?ids=…`).
//! - [`outcomes`]: the Deals poll ([`crate::outcome::OutcomeSource`], COQL by keyset);
//!   [`deal_fields`]: attribution written onto the Deal ([`crate::writeback::WritebackSink`]).
//! - [`limits`]: editions, concurrency caps and the rate-limit headers.
//! - [`wire`]: Zoho's JSON bodies, shared with the sandbox.
//! - `sandbox` (feature `sandbox`): a faithful fake of the endpoints above and of Zoho Accounts.
//!
//! ```toml
//! [connectors.zoho]
//! kind = "zoho"
//! data_center = "eu"                     # us | eu | in | au | jp | ca | cn | sa
//! client_id = "${env:ZOHO_CLIENT_ID}"
//! client_secret = "${env:ZOHO_CLIENT_SECRET}"
//! refresh_token = "${env:ZOHO_REFRESH_TOKEN}"
//! # module = "Leads"                     # or "Contacts"
//! # duplicate_check_fields = ["Email"]
//! # default_last_name = "Unknown"        # Last_Name is mandatory in Zoho
//! # trigger = []                         # workflow | approval | blueprint
//! # edition = "professional"             # free | standard | professional | enterprise | ultimate
//! # rate_limit = "10/1s"
//! # accounts_url = "https://accounts.zoho.eu"   # default from data_center
//! # base_url = "https://www.zohoapis.eu"        # default: the api_domain Zoho hands out
//! # timeout = "30s"
//! # outcome_poll_interval = "1m"         # the Deals poll
//! # outcomes_since = "2026-01-01T00:00:00Z"
//! # outcome_overlap = "2m"
//! # currency = "USD"
//! # multi_currency = false               # true: read each Deal's Currency
//! # won_stages = ["Closed Won"]
//! # lost_stages = ["Closed Lost", "Closed-Lost to Competition"]
//! # deal_fields = { first_touch = "Tandem_First_Touch", last_touch = "Tandem_Last_Touch", attribution = "Tandem_Attribution" }
//! ```

pub mod batch;
pub mod client;
pub mod deal_fields;
#[cfg(all(test, feature = "sandbox"))]
mod deal_tests;
mod forget;
pub mod limits;
pub mod lookup;
pub mod outcomes;
#[cfg(feature = "sandbox")]
pub mod sandbox;
pub mod verify;
pub mod wire;

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use crate::{sink::RateLimit, units::HumanDuration};

pub use client::{MAX_BATCH, ZohoClient};
pub use deal_fields::ZohoDealFields;
pub use limits::Edition;
pub use outcomes::ZohoOutcomes;

/// `[connectors.NAME]` with `kind = "zoho"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ZohoConfig {
    /// Where the Zoho account lives; picks the Accounts host and the default API domain.
    #[serde(default)]
    pub data_center: DataCenter,
    /// From the Zoho API Console (server-based or self client).
    pub client_id: String,
    pub client_secret: SecretString,
    /// Long-lived; Zoho does not rotate it.
    pub refresh_token: SecretString,
    /// Zoho Accounts base (the token endpoint is `{accounts_url}/oauth/v2/token`). Default: the
    /// data centre's host. Tests point it at the sandbox.
    #[serde(default)]
    pub accounts_url: Option<String>,
    /// The API base. Default: the `api_domain` of the token response (else the data centre's).
    #[serde(default)]
    pub base_url: Option<String>,
    /// `Leads` (default) or `Contacts`.
    #[serde(default)]
    pub module: Module,
    /// Fields Zoho matches existing records on, in order.
    #[serde(default = "default_duplicate_check_fields")]
    pub duplicate_check_fields: Vec<String>,
    /// Written to `Last_Name` (mandatory in Zoho) when a new record has none.
    #[serde(default = "default_last_name")]
    pub default_last_name: String,
    /// Zoho automation to run on each write (`workflow`, `approval`, `blueprint`); none by default.
    #[serde(default)]
    pub trigger: Vec<String>,
    /// The account's Zoho CRM edition, which decides the concurrency cap.
    #[serde(default)]
    pub edition: Edition,
    /// Slower than the edition allows.
    #[serde(default)]
    pub rate_limit: Option<RateLimit>,
    /// Per request, connecting included.
    #[serde(default = "default_timeout")]
    pub timeout: HumanDuration,
    /// How often the Deals poll runs when nothing more is waiting.
    #[serde(default = "crate::outcome::default_poll_interval")]
    pub outcome_poll_interval: HumanDuration,
    /// RFC 3339 start of the first Deals poll (default: 30 days before the first start).
    #[serde(default)]
    pub outcomes_since: Option<String>,
    /// How far before the newest `Modified_Time` seen each pass re-reads, for late writes.
    #[serde(default = "crate::outcome::default_overlap")]
    pub outcome_overlap: HumanDuration,
    /// The org's home currency, for amounts (and for every amount unless `multi_currency`).
    #[serde(default = "crate::outcome::default_currency")]
    pub currency: String,
    /// The org has multiple currencies enabled: read each Deal's `Currency`.
    #[serde(default)]
    pub multi_currency: bool,
    /// Deal stages that mean won (compared ignoring case).
    #[serde(default = "default_won_stages")]
    pub won_stages: Vec<String>,
    /// Deal stages that mean lost (compared ignoring case).
    #[serde(default = "default_lost_stages")]
    pub lost_stages: Vec<String>,
    /// The Deals text fields tandem writes attribution to.
    #[serde(default)]
    pub deal_fields: DealFields,
}

/// Zoho's default Deals field API names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZohoDealFieldNames;

impl crate::writeback::DealFieldDefaults for ZohoDealFieldNames {
    const NAMES: [&'static str; 3] = [
        "Tandem_First_Touch",
        "Tandem_Last_Touch",
        "Tandem_Attribution",
    ];
}

/// `deal_fields`: the Deals text fields tandem writes attribution to (API names).
pub type DealFields = crate::writeback::DealFields<ZohoDealFieldNames>;

/// Zoho's default won stage.
fn default_won_stages() -> Vec<String> {
    vec!["Closed Won".to_owned()]
}
/// Zoho's default lost stages.
fn default_lost_stages() -> Vec<String> {
    vec![
        "Closed Lost".to_owned(),
        "Closed-Lost to Competition".to_owned(),
    ]
}

/// The Zoho data centres (where the account was created).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DataCenter {
    #[default]
    Us,
    Eu,
    In,
    Au,
    Jp,
    Ca,
    Cn,
    Sa,
}

impl DataCenter {
    /// The Zoho Accounts host that issues this data centre's tokens.
    pub fn accounts_url(self) -> &'static str {
        match self {
            DataCenter::Us => "https://accounts.zoho.com",
            DataCenter::Eu => "https://accounts.zoho.eu",
            DataCenter::In => "https://accounts.zoho.in",
            DataCenter::Au => "https://accounts.zoho.com.au",
            DataCenter::Jp => "https://accounts.zoho.jp",
            DataCenter::Ca => "https://accounts.zohocloud.ca",
            DataCenter::Cn => "https://accounts.zoho.com.cn",
            DataCenter::Sa => "https://accounts.zoho.sa",
        }
    }

    /// The CRM API domain, used when the token response names none.
    pub fn api_domain(self) -> &'static str {
        match self {
            DataCenter::Us => "https://www.zohoapis.com",
            DataCenter::Eu => "https://www.zohoapis.eu",
            DataCenter::In => "https://www.zohoapis.in",
            DataCenter::Au => "https://www.zohoapis.com.au",
            DataCenter::Jp => "https://www.zohoapis.jp",
            DataCenter::Ca => "https://www.zohoapis.ca",
            DataCenter::Cn => "https://www.zohoapis.com.cn",
            DataCenter::Sa => "https://www.zohoapis.sa",
        }
    }
}

/// The Zoho module leads are written to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub enum Module {
    #[default]
    Leads,
    Contacts,
}

impl Module {
    pub fn api_name(self) -> &'static str {
        match self {
            Module::Leads => "Leads",
            Module::Contacts => "Contacts",
        }
    }
}

/// The field Zoho refuses to create a record without, in both modules.
pub const LAST_NAME: &str = "Last_Name";
/// The default key field of Leads and Contacts.
pub const EMAIL: &str = "Email";

fn default_duplicate_check_fields() -> Vec<String> {
    vec![EMAIL.to_owned()]
}

fn default_last_name() -> String {
    "Unknown".to_owned()
}

fn default_timeout() -> HumanDuration {
    HumanDuration(Duration::from_secs(30))
}

/// A base URL tandem can call: http(s) with a host, no query; a trailing slash is added so
/// joining API paths keeps any path prefix.
pub(crate) fn parse_base_url(raw: &str) -> Result<reqwest::Url, String> {
    crate::hubspot::parse_base_url(raw)
}

/// Zoho field API names: letters, digits and underscores.
fn is_api_name(name: &str) -> bool {
    !name.is_empty()
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !name.starts_with(|c: char| c.is_ascii_digit())
}

impl ZohoConfig {
    /// The limit tandem paces itself by: the user's override, else the edition's default.
    pub fn effective_rate_limit(&self) -> RateLimit {
        self.rate_limit
            .unwrap_or_else(|| self.edition.default_rate_limit())
    }

    pub fn accounts_url(&self) -> &str {
        self.accounts_url
            .as_deref()
            .unwrap_or_else(|| self.data_center.accounts_url())
    }

    /// Problems serde can't see, as (key, message with a hint). Empty when the config is usable.
    pub fn validate(&self) -> Vec<(String, String)> {
        let mut problems = Vec::new();
        let mut p = |key: &str, msg: String| problems.push((key.to_owned(), msg));
        if let Some(url) = &self.accounts_url
            && let Err(reason) = parse_base_url(url)
        {
            p(
                "accounts_url",
                format!(
                    "{url:?} is not a usable URL ({reason}); leave it out to use the data centre's ({}), or write e.g. \"https://accounts.zoho.eu\"",
                    self.data_center.accounts_url()
                ),
            );
        }
        if let Some(url) = &self.base_url
            && let Err(reason) = parse_base_url(url)
        {
            p(
                "base_url",
                format!(
                    "{url:?} is not a usable URL ({reason}); leave it out to use the api_domain Zoho hands out, or write e.g. \"{}\"",
                    self.data_center.api_domain()
                ),
            );
        }
        // One auth mode (OAuth refresh token); every key of it is required.
        if self.client_id.trim().is_empty() {
            p(
                "client_id",
                "is empty; copy the Client ID from the Zoho API Console (api-console.zoho.com)"
                    .to_owned(),
            );
        }
        if self.client_secret.expose_secret().trim().is_empty() {
            p(
                "client_secret",
                "is empty; copy the Client Secret from the Zoho API Console".to_owned(),
            );
        }
        if self.refresh_token.expose_secret().trim().is_empty() {
            p(
                "refresh_token",
                "is empty; exchange a grant code (scope ZohoCRM.modules.ALL,ZohoCRM.settings.fields.READ,ZohoCRM.coql.READ) for a refresh token, see docs/crm/zoho.md".to_owned(),
            );
        }
        if self.duplicate_check_fields.is_empty() {
            p(
                "duplicate_check_fields",
                "is empty; Zoho would create a new record for every lead. Write [\"Email\"]"
                    .to_owned(),
            );
        }
        for f in &self.duplicate_check_fields {
            if !is_api_name(f) {
                p(
                    "duplicate_check_fields",
                    format!(
                        "{f:?} is not a Zoho field API name; use names like \"Email\" (Setup > Developer Hub > APIs > API names)"
                    ),
                );
            }
        }
        if self.default_last_name.trim().is_empty() {
            p(
                "default_last_name",
                "is empty; Zoho refuses to create a record without Last_Name. Write e.g. \"Unknown\"".to_owned(),
            );
        }
        for t in &self.trigger {
            if !matches!(t.as_str(), "workflow" | "approval" | "blueprint") {
                p(
                    "trigger",
                    format!(
                        "{t:?} is not a Zoho trigger; use \"workflow\", \"approval\" or \"blueprint\""
                    ),
                );
            }
        }
        if let Some(wanted) = self.rate_limit {
            let allowed = self.edition.max_rate_limit();
            if crate::hubspot::limits::exceeds(wanted, allowed) {
                p(
                    "rate_limit",
                    format!(
                        "{wanted} exceeds the {} edition's {allowed} (its concurrency cap of {} calls); Zoho would answer 429 TOO_MANY_REQUESTS. Lower it, or set `edition` if the account has a higher one",
                        self.edition.display_name(),
                        self.edition.concurrency()
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
        self.validate_deal_side(&mut p);
        problems
    }

    /// The deal-side keys: poll timing, start, currency, stages, field names.
    fn validate_deal_side(&self, p: &mut impl FnMut(&str, String)) {
        use crate::salesforce::deal_cursor::{check_currency, check_outcomes_since};
        let interval = self.outcome_poll_interval.0;
        if interval.is_zero() || interval > Duration::from_secs(86_400) {
            p(
                "outcome_poll_interval",
                "must be between 1ms and 1d; every poll costs an API credit, so write e.g. \"1m\""
                    .to_owned(),
            );
        }
        if self.outcome_overlap.0 > Duration::from_secs(86_400) {
            p(
                "outcome_overlap",
                "must be at most 1d (each pass re-reads that much); write e.g. \"2m\"".to_owned(),
            );
        }
        if let Some(since) = &self.outcomes_since
            && let Err(m) = check_outcomes_since(since)
        {
            p("outcomes_since", m);
        }
        if let Err(m) = check_currency(&self.currency) {
            p("currency", m);
        }
        if self.won_stages.iter().all(|s| s.trim().is_empty()) {
            p(
                "won_stages",
                "is empty, so no deal would ever count as won; write e.g. [\"Closed Won\"]"
                    .to_owned(),
            );
        }
        if let Some(both) = self.won_stages.iter().find(|w| {
            self.lost_stages
                .iter()
                .any(|l| l.trim().eq_ignore_ascii_case(w.trim()))
        }) {
            p(
                "lost_stages",
                format!("{both:?} is in won_stages too; a stage is won or lost, not both"),
            );
        }
        let named = self.deal_fields.named();
        for (i, (key, field)) in named.iter().enumerate() {
            if !is_api_name(field) {
                p(
                    &format!("deal_fields.{key}"),
                    format!(
                        "{field:?} is not a Zoho field API name; use the Deals field's API name \
                         (Setup > Developer Hub > APIs and SDKs > API Names > Deals), e.g. \"Tandem_First_Touch\""
                    ),
                );
            } else if let Some((other, _)) = named[..i].iter().find(|(_, f)| *f == *field) {
                p(
                    &format!("deal_fields.{key}"),
                    format!(
                        "{field} is also deal_fields.{other}; each needs its own Deals field, or one \
                         would overwrite the other"
                    ),
                );
            }
        }
    }
}

impl crate::Connector for ZohoConfig {
    fn validate(&self) -> Vec<(String, String)> {
        ZohoConfig::validate(self)
    }

    fn lead_sink(
        &self,
        ctx: crate::ConnectorContext,
    ) -> Result<Option<std::sync::Arc<dyn crate::LeadSink>>, crate::BuildError> {
        Ok(Some(std::sync::Arc::new(ZohoClient::new(self, ctx)?)))
    }

    fn is_crm(&self) -> bool {
        true
    }

    fn outcome_source(
        &self,
        ctx: crate::ConnectorContext,
    ) -> Result<Option<std::sync::Arc<dyn crate::outcome::OutcomeSource>>, crate::BuildError> {
        Ok(Some(std::sync::Arc::new(outcomes::ZohoOutcomes::new(
            self, ctx,
        )?)))
    }

    fn writeback_sink(
        &self,
        ctx: crate::ConnectorContext,
    ) -> Result<Option<std::sync::Arc<dyn crate::writeback::WritebackSink>>, crate::BuildError>
    {
        Ok(Some(std::sync::Arc::new(deal_fields::ZohoDealFields::new(
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
    use crate::LeadSink;

    fn config(json: serde_json::Value) -> ZohoConfig {
        serde_json::from_value(json).expect("config parses")
    }

    fn minimal() -> serde_json::Value {
        serde_json::json!({
            "client_id": "1000.ABC", "client_secret": "s3cret-value", "refresh_token": "1000.rt.secret"
        })
    }

    #[test]
    fn defaults_are_explicit_and_documented() {
        let c = config(minimal());
        assert_eq!(c.data_center, DataCenter::Us);
        assert_eq!(c.accounts_url(), "https://accounts.zoho.com");
        assert_eq!(c.module, Module::Leads);
        assert_eq!(c.duplicate_check_fields, ["Email"]);
        assert_eq!(c.default_last_name, "Unknown");
        assert!(c.trigger.is_empty());
        assert_eq!(c.timeout.0, Duration::from_secs(30));
        assert_eq!(c.effective_rate_limit().to_string(), "10/1s");
        assert!(c.validate().is_empty(), "{:?}", c.validate());
        let client = ZohoClient::new(&c, crate::ConnectorContext::in_memory("zoho")).unwrap();
        assert_eq!(client.max_batch(), 100);
        let shown = format!("{c:?}{client:?}");
        assert!(!shown.contains("s3cret-value") && !shown.contains("1000.rt.secret"));
    }

    #[test]
    fn data_centres_pick_their_hosts() {
        let mut j = minimal();
        j["data_center"] = "eu".into();
        let c = config(j.clone());
        assert_eq!(c.accounts_url(), "https://accounts.zoho.eu");
        assert_eq!(c.data_center.api_domain(), "https://www.zohoapis.eu");
        j["data_center"] = "ca".into();
        assert_eq!(
            config(j.clone()).accounts_url(),
            "https://accounts.zohocloud.ca"
        );
        j["data_center"] = "au".into();
        assert_eq!(
            config(j.clone()).accounts_url(),
            "https://accounts.zoho.com.au"
        );
        j["data_center"] = "mars".into();
        assert!(serde_json::from_value::<ZohoConfig>(j).is_err());
        let mut j = minimal();
        j["accounts_url"] = "http://127.0.0.1:9".into();
        assert_eq!(config(j).accounts_url(), "http://127.0.0.1:9");
    }

    #[test]
    fn unknown_keys_and_modules_are_refused() {
        let mut j = minimal();
        j["modul"] = "Leads".into();
        assert!(serde_json::from_value::<ZohoConfig>(j).is_err());
        let mut j = minimal();
        j["module"] = "Deals".into();
        assert!(serde_json::from_value::<ZohoConfig>(j).is_err());
        let mut j = minimal();
        j["module"] = "Contacts".into();
        assert_eq!(config(j).module, Module::Contacts);
        let j = serde_json::json!({"client_id": "x", "client_secret": "y"});
        assert!(
            serde_json::from_value::<ZohoConfig>(j).is_err(),
            "refresh_token is required"
        );
    }

    #[test]
    fn validate_names_the_key_and_says_why() {
        let mut j = minimal();
        j["client_id"] = " ".into();
        j["refresh_token"] = "".into();
        j["base_url"] = "ftp://example.com".into();
        j["rate_limit"] = "20/1s".into();
        j["trigger"] = serde_json::json!(["workflows"]);
        j["duplicate_check_fields"] = serde_json::json!(["E-mail"]);
        j["default_last_name"] = "".into();
        let problems = config(j).validate();
        let keys: Vec<&str> = problems.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            keys,
            [
                "base_url",
                "client_id",
                "refresh_token",
                "duplicate_check_fields",
                "default_last_name",
                "trigger",
                "rate_limit"
            ],
            "{problems:?}"
        );
        let rate = &problems[6].1;
        assert!(
            rate.contains("exceeds the Professional edition's 15/1s"),
            "{rate}"
        );
        let mut j = minimal();
        j["edition"] = "ultimate".into();
        j["rate_limit"] = "20/1s".into();
        assert!(config(j).validate().is_empty());
    }

    #[test]
    fn deal_side_keys_have_defaults_and_are_validated() {
        use crate::Connector;
        let c = config(minimal());
        assert_eq!(c.outcome_poll_interval.0, Duration::from_secs(60));
        assert_eq!(c.outcome_overlap.0, Duration::from_secs(120));
        assert_eq!((c.currency.as_str(), c.multi_currency), ("USD", false));
        assert_eq!(c.won_stages, ["Closed Won"]);
        assert_eq!(c.lost_stages, ["Closed Lost", "Closed-Lost to Competition"]);
        assert_eq!(
            c.deal_fields.named().map(|(_, f)| f),
            [
                "Tandem_First_Touch",
                "Tandem_Last_Touch",
                "Tandem_Attribution"
            ]
        );
        assert!(c.is_writeback());
        let ctx = || crate::ConnectorContext::in_memory("zoho");
        assert!(c.outcome_source(ctx()).unwrap().is_some());
        assert!(c.writeback_sink(ctx()).unwrap().is_some());
        let mut j = minimal();
        j["outcome_poll_interval"] = "0ms".into();
        j["outcomes_since"] = "2999-01-01T00:00:00Z".into();
        j["currency"] = "€".into();
        j["won_stages"] = serde_json::json!([]);
        j["lost_stages"] = serde_json::json!(["closed won"]);
        j["deal_fields"] =
            serde_json::json!({"first_touch": "Touch-1", "last_touch": "A", "attribution": "A"});
        j["won_stages"] = serde_json::json!(["Closed Won"]);
        let p = config(j.clone()).validate();
        let keys: Vec<&str> = p.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            keys,
            [
                "outcome_poll_interval",
                "outcomes_since",
                "currency",
                "lost_stages",
                "deal_fields.first_touch",
                "deal_fields.attribution"
            ],
            "{p:?}"
        );
        assert!(p[1].1.contains("future"), "{p:?}");
        j["won_stages"] = serde_json::json!([" "]);
        j["lost_stages"] = serde_json::json!([]);
        let p = config(j).validate();
        assert!(
            p.iter()
                .any(|(k, m)| k == "won_stages" && m.contains("no deal would ever count as won")),
            "{p:?}"
        );
        let mut j = minimal();
        j["deal_fields"] = serde_json::json!({"first_touch": "X", "other": "Y"});
        assert!(serde_json::from_value::<ZohoConfig>(j).is_err());
    }
}
