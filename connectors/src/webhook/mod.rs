//! Form webhooks (`kind = "webhook"`): what a pushed form submission looks like on the wire, how
//! its signature is checked, and how its body becomes a flat map of submitted fields. Mapping those
//! fields onto the canonical lead is the daemon's job (it owns the templates).

mod body;
pub mod presets;
mod signature;

use std::collections::BTreeMap;

use secrecy::SecretString;
use serde::Deserialize;

pub use body::{BodyError, Submission, parse_body};
pub use signature::{SIGNATURE_HEADER, SignatureError, sign_hex, verify_hex_signature};

/// `[connectors.NAME]` with `kind = "webhook"`. One struct for every preset; `validate()` says
/// which keys the chosen preset needs.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// Payload shape and signature scheme: generic, typeform, webflow, meta_lead_ads,
    /// google_lead_form, hubspot_forms.
    #[serde(default)]
    pub preset: Preset,
    /// The shared secret the platform signs with (generic: `X-Tandem-Signature`; typeform and
    /// webflow: their signing secret; meta_lead_ads: the app secret; google_lead_form: the
    /// `google_key`; hubspot_forms: the app's client secret). Optional only for `generic`.
    #[serde(default)]
    pub secret: Option<SecretString>,
    /// meta_lead_ads: the token Meta echoes in its GET verification handshake.
    #[serde(default)]
    pub verify_token: Option<SecretString>,
    /// meta_lead_ads: the Page access token used to fetch each lead from the Graph API.
    #[serde(default)]
    pub access_token: Option<SecretString>,
    /// meta_lead_ads: Graph API base (default `https://graph.facebook.com/v21.0`; tests point it
    /// at the sandbox).
    #[serde(default)]
    pub api_base_url: Option<String>,
    /// hubspot_forms: the public URL HubSpot calls (it signs the full URL).
    #[serde(default)]
    pub public_url: Option<String>,
    /// Platform test leads (Google `is_test`, Meta test tool) are stored and marked test; they
    /// reach a CRM only when this is true. Default false.
    #[serde(default)]
    pub deliver_test_leads: bool,
    /// Canonical lead field → template over the submitted fields, for forms whose field names
    /// differ from tandem's (e.g. `email = "{{ your_email }}"`).
    #[serde(default)]
    pub fields: BTreeMap<String, String>,
    /// Region for phone numbers written without a country code (ISO 3166 alpha-2, e.g. "US").
    #[serde(default)]
    pub default_region: Option<String>,
}

impl crate::Connector for WebhookConfig {
    fn webhook(&self) -> Option<&WebhookConfig> {
        Some(self)
    }

    fn validate(&self) -> Vec<(String, String)> {
        presets::validate(self)
    }

    fn webhook_preset(&self) -> Option<Box<dyn crate::source::WebhookPreset>> {
        Some(presets::build(self))
    }

    fn lead_fetcher(
        &self,
        ctx: crate::ConnectorContext,
    ) -> Result<Option<std::sync::Arc<dyn crate::source::LeadFetcher>>, crate::BuildError> {
        presets::lead_fetcher(self, ctx)
    }
}

/// Which platform's payload and signature scheme a webhook connector speaks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Preset {
    /// Any flat JSON object or form-urlencoded body; optional `X-Tandem-Signature`.
    #[default]
    Generic,
    /// Typeform: `Typeform-Signature: sha256=<base64 HMAC-SHA256 of the body>`.
    Typeform,
    /// Webflow form submissions: `x-webflow-signature` = hex HMAC of "{timestamp}:{body}".
    Webflow,
    /// Meta Lead Ads: GET handshake, `X-Hub-Signature-256`, leads fetched from the Graph API.
    MetaLeadAds,
    /// Google Ads lead form extensions: `google_key` in the body.
    GoogleLeadForm,
    /// HubSpot form submissions (workflow webhooks): `X-HubSpot-Signature-v3`.
    HubspotForms,
}
