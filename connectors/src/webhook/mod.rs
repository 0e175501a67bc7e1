//! Form webhooks (`kind = "webhook"`): what a pushed form submission looks like on the wire, how
//! its signature is checked, and how its body becomes a flat map of submitted fields. Mapping those
//! fields onto the canonical lead is the daemon's job (it owns the templates).

mod body;
mod signature;

use std::collections::BTreeMap;

use secrecy::SecretString;
use serde::Deserialize;

pub use body::{BodyError, Submission, parse_body};
pub use signature::{SIGNATURE_HEADER, SignatureError, sign_hex, verify_hex_signature};

/// `[connectors.NAME]` with `kind = "webhook"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// Payload shape and signature scheme. Only `generic` exists so far.
    #[serde(default)]
    pub preset: Preset,
    /// When set, every POST must carry `X-Tandem-Signature: sha256=<hex HMAC-SHA256 of the raw body>`.
    #[serde(default)]
    pub secret: Option<SecretString>,
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
}

/// Which platform's payload and signature scheme a webhook connector speaks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Preset {
    /// Any flat JSON object or form-urlencoded body.
    #[default]
    Generic,
}
