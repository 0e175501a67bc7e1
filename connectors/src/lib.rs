//! `tandem-connectors`: how tandem talks to each platform. Nothing here knows about scheduling,
//! durability or retries; that is the daemon's job. Each platform lives in its own folder.
//!
//! The registry is [`ConnectorKind`]: one closed, serde-tagged enum (`kind = "…"` in the config).
//! Adding a platform means one folder under `src/` and one variant here; the compiler then points at
//! every `match` that must learn about it.

pub mod hubspot;
pub mod model;
pub mod sink;
pub mod units;
pub mod webhook;

use std::sync::Arc;

use serde::Deserialize;

pub use model::{Lead, SinkRecord, Touchpoint};
pub use sink::{BatchOutcome, CallError, ItemResult, LeadSink, RateLimit};

/// Every platform tandem can talk to, as configured in `[connectors.NAME]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ConnectorKind {
    /// Form submissions pushed to `POST /hooks/NAME`.
    Webhook(webhook::WebhookConfig),
    /// HubSpot CRM (contacts batch upsert).
    Hubspot(hubspot::HubspotConfig),
}

impl ConnectorKind {
    /// The `kind = "…"` string, for messages.
    pub fn kind_name(&self) -> &'static str {
        match self {
            ConnectorKind::Webhook(_) => "webhook",
            ConnectorKind::Hubspot(_) => "hubspot",
        }
    }

    /// The CRM side of this connector, if it receives leads.
    pub fn lead_sink(&self) -> Result<Option<Arc<dyn LeadSink>>, BuildError> {
        Ok(match self {
            ConnectorKind::Webhook(_) => None,
            ConnectorKind::Hubspot(c) => Some(Arc::new(hubspot::HubspotClient::new(c)?)),
        })
    }

    /// Whether this connector takes form posts on `/hooks/NAME`.
    pub fn webhook(&self) -> Option<&webhook::WebhookConfig> {
        match self {
            ConnectorKind::Webhook(c) => Some(c),
            ConnectorKind::Hubspot(_) => None,
        }
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
