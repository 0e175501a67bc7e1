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
//! ```

pub mod batch;
pub mod client;
pub mod limits;
pub mod lookup;
#[cfg(feature = "sandbox")]
pub mod sandbox;
pub mod verify;
pub mod wire;

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use crate::{sink::RateLimit, units::HumanDuration};

pub use client::{MAX_BATCH, ZohoClient};
pub use limits::Edition;

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
        problems
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
}
