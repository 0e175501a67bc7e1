//! `tandem-connectors`: how tandem talks to each platform. Nothing here knows about scheduling,
//! durability or retries; that is the daemon's job. Each platform lives in its own folder and
//! implements [`Connector`] for its config type.
//!
//! The registry is [`ConnectorKind`]: one closed, serde-tagged enum (`kind = "…"` in the config),
//! generated from the single list in `registry!` below. Adding a platform means one folder under
//! `src/` and one line in that list.

pub mod brevo;
pub mod context;
pub mod google_ads;
pub mod hubspot;
pub mod klaviyo;
pub mod linkedin;
pub mod linkedin_lead_gen;
pub mod mailchimp;
pub mod meta_capi;
pub mod meta_graph;
pub mod model;
pub mod oauth;
pub mod outcome;
pub mod pipedrive;
pub mod poll_window;
pub mod salesforce;
#[cfg(feature = "sandbox")]
pub mod sandbox;
pub mod sink;
pub mod source;
pub mod units;
pub mod webhook;
pub mod writeback;
pub mod zoho;

use std::sync::Arc;

use serde::{Deserialize, Deserializer};

pub use context::{ConnectorContext, ConnectorState, TokenSet};
pub use model::{Lead, OnConflict, RecordFields, SinkRecord, Touchpoint};
pub use sink::{
    BatchOutcome, CallError, FORGET_UNSUPPORTED, ForgetRecord, ItemResult, LeadSink, RateLimit,
};

/// What every platform's config type provides to the daemon.
pub trait Connector {
    /// Problems the type system can't catch, as (key relative to the connector, message + hint).
    fn validate(&self) -> Vec<(String, String)> {
        Vec::new()
    }
    /// The CRM side, if this platform receives leads.
    fn lead_sink(&self, _ctx: ConnectorContext) -> Result<Option<Arc<dyn LeadSink>>, BuildError> {
        Ok(None)
    }
    /// Whether this platform is a CRM (answerable without building a client).
    fn is_crm(&self) -> bool {
        false
    }
    /// The webhook side, if this platform takes form posts on `/hooks/NAME`.
    fn webhook(&self) -> Option<&webhook::WebhookConfig> {
        None
    }
    /// The pushed-webhook preset (signature scheme + payload shape), for webhook platforms.
    fn webhook_preset(&self) -> Option<Box<dyn source::WebhookPreset>> {
        None
    }
    /// The fetcher for leads announced by id only (Meta Lead Ads).
    fn lead_fetcher(
        &self,
        _ctx: ConnectorContext,
    ) -> Result<Option<Arc<dyn source::LeadFetcher>>, BuildError> {
        Ok(None)
    }
    /// The polled side, if tandem asks this platform for new leads.
    fn polled_source(
        &self,
        _ctx: ConnectorContext,
    ) -> Result<Option<Arc<dyn source::PolledSource>>, BuildError> {
        Ok(None)
    }
    /// Whether this platform can be a flow's `from` (answerable without building a client).
    fn is_source(&self) -> bool {
        self.webhook().is_some()
    }
    /// The deal side of a CRM: outcomes read by cursor (`[attribution] from`).
    fn outcome_source(
        &self,
        _ctx: ConnectorContext,
    ) -> Result<Option<Arc<dyn outcome::OutcomeSource>>, BuildError> {
        Ok(None)
    }
    /// The write-back side (`[attribution] to`): conversions, tags, deal fields.
    fn writeback_sink(
        &self,
        _ctx: ConnectorContext,
    ) -> Result<Option<Arc<dyn writeback::WritebackSink>>, BuildError> {
        Ok(None)
    }
    /// Whether this platform can be an `[attribution] to` (answerable without building a client).
    fn is_writeback(&self) -> bool {
        false
    }
}

macro_rules! registry {
    ($( $(#[$doc:meta])* $variant:ident($config:ty) = $kind:literal, )*) => {
        /// Every platform tandem can talk to, as configured in `[connectors.NAME]`.
        #[derive(Debug, Clone, Deserialize)]
        #[serde(tag = "kind", rename_all = "snake_case")]
        pub enum ConnectorKind {
            $( $(#[$doc])* $variant($config), )*
        }

        /// Every `kind = "…"` value, in registry order.
        pub const KINDS: &[&str] = &[$($kind),*];

        impl ConnectorKind {
            /// The `kind = "…"` string, for messages.
            pub fn kind_name(&self) -> &'static str {
                match self { $( ConnectorKind::$variant(_) => $kind, )* }
            }

            /// Parses the rest of a `[connectors.NAME]` table (without `kind`) as the config type
            /// of `kind`, so serde's errors point at the offending key.
            pub fn from_kind<'de, D: Deserializer<'de>>(kind: &str, table: D) -> Result<ConnectorKind, D::Error> {
                match kind {
                    $( $kind => <$config>::deserialize(table).map(ConnectorKind::$variant), )*
                    other => Err(serde::de::Error::unknown_variant(other, KINDS)),
                }
            }

            fn connector(&self) -> &dyn Connector {
                match self { $( ConnectorKind::$variant(c) => c, )* }
            }
        }
    };
}

registry! {
    /// Form submissions pushed to `POST /hooks/NAME`.
    Webhook(webhook::WebhookConfig) = "webhook",
    /// HubSpot CRM (contacts batch upsert).
    Hubspot(hubspot::HubspotConfig) = "hubspot",
    /// Salesforce Lead or Contact (sObject Collections upsert).
    Salesforce(salesforce::SalesforceConfig) = "salesforce",
    /// Pipedrive persons (and optionally leads).
    Pipedrive(pipedrive::PipedriveConfig) = "pipedrive",
    /// Zoho CRM Leads or Contacts.
    Zoho(zoho::ZohoConfig) = "zoho",
    /// LinkedIn Lead Gen Forms responses (polled).
    LinkedinLeadGen(linkedin_lead_gen::LinkedinLeadGenConfig) = "linkedin_lead_gen",
    /// Mailchimp audience members (polled source; tags as write-back).
    Mailchimp(mailchimp::MailchimpConfig) = "mailchimp",
    /// Brevo contacts created or updated since the cursor (polled).
    Brevo(brevo::BrevoConfig) = "brevo",
    /// Klaviyo profiles created or updated since the cursor (polled).
    Klaviyo(klaviyo::KlaviyoConfig) = "klaviyo",
    /// Meta Conversions API: CRM milestones back to a dataset (write-back).
    MetaCapi(meta_capi::MetaCapiConfig) = "meta_capi",
    /// Google Ads offline conversions (Data Manager API; Google Ads API for grandfathered tokens).
    GoogleAds(google_ads::GoogleAdsConfig) = "google_ads",
    /// LinkedIn Conversions API (write-back of deal milestones).
    Linkedin(linkedin::LinkedinConfig) = "linkedin",
}

impl ConnectorKind {
    pub fn validate(&self) -> Vec<(String, String)> {
        self.connector().validate()
    }

    pub fn lead_sink(
        &self,
        ctx: ConnectorContext,
    ) -> Result<Option<Arc<dyn LeadSink>>, BuildError> {
        self.connector().lead_sink(ctx)
    }

    pub fn is_crm(&self) -> bool {
        self.connector().is_crm()
    }

    pub fn webhook(&self) -> Option<&webhook::WebhookConfig> {
        self.connector().webhook()
    }

    pub fn webhook_preset(&self) -> Option<Box<dyn source::WebhookPreset>> {
        self.connector().webhook_preset()
    }

    pub fn lead_fetcher(
        &self,
        ctx: ConnectorContext,
    ) -> Result<Option<Arc<dyn source::LeadFetcher>>, BuildError> {
        self.connector().lead_fetcher(ctx)
    }

    pub fn polled_source(
        &self,
        ctx: ConnectorContext,
    ) -> Result<Option<Arc<dyn source::PolledSource>>, BuildError> {
        self.connector().polled_source(ctx)
    }

    pub fn is_source(&self) -> bool {
        self.connector().is_source()
    }

    pub fn outcome_source(
        &self,
        ctx: ConnectorContext,
    ) -> Result<Option<Arc<dyn outcome::OutcomeSource>>, BuildError> {
        self.connector().outcome_source(ctx)
    }

    pub fn writeback_sink(
        &self,
        ctx: ConnectorContext,
    ) -> Result<Option<Arc<dyn writeback::WritebackSink>>, BuildError> {
        self.connector().writeback_sink(ctx)
    }

    pub fn is_writeback(&self) -> bool {
        self.connector().is_writeback()
    }
}

/// A connector could not be built from its (already validated) configuration.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("invalid base_url {url:?}: {reason}")]
    BaseUrl { url: String, reason: String },
    #[error("http client: {0}")]
    Http(String),
}
