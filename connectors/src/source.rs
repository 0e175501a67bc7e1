//! The contract between the daemon and the marketing side: how a platform's delivery becomes
//! leads. Three shapes, one output ([`SourceLead`]):
//! - a pushed webhook [`WebhookPreset`]: verify the raw request, then parse it (or answer the
//!   platform's verification handshake);
//! - a notification that carries only ids (Meta): the preset returns [`FetchRequest`]s, the daemon
//!   stores them durably, answers 200, and works them through a [`LeadFetcher`] with retries;
//! - a [`PolledSource`]: `poll(cursor)` → leads + the cursor to commit with them.
//!
//! The daemon maps `fields` onto the canonical lead (names, the connector's `fields` templates),
//! normalises identities and dedups by `event_id`.

use std::{collections::BTreeMap, time::Duration};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::sink::CallError;

/// One lead as a platform delivered it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SourceLead {
    /// Canonical field names where the platform's meaning is known (`email`, `phone`,
    /// `first_name`, `last_name`, `company`, `job_title`, `country`, `consent`, `utm_*`, `gclid`,
    /// `fbclid`, `landing_url`, `form`, `campaign_id`, `campaign_name`, `ad_id`, `adset_id`,
    /// `page_id`, …); every other answer under the platform's own key (kept as a custom field).
    pub fields: BTreeMap<String, serde_json::Value>,
    /// The platform's id for this submission; deliveries with the same id are one lead.
    pub event_id: Option<String>,
    /// When the platform captured it (RFC 3339), if it says.
    pub captured_at: Option<String>,
    /// A platform test submission (Google `is_test`, Meta test leads…).
    pub is_test: bool,
}

/// The parts of an HTTP request a preset may look at.
#[derive(Debug, Clone)]
pub struct PresetRequest<'a> {
    pub method: &'a str,
    /// The URL the platform called, as it would have signed it (scheme, host, path and query).
    pub url: &'a str,
    /// Header names lowercased.
    pub headers: &'a BTreeMap<String, String>,
    pub body: &'a [u8],
    pub now_ms: i64,
}

/// What a verified webhook delivery contains.
#[derive(Debug, Clone, PartialEq)]
pub enum PresetOutput {
    Leads(Vec<SourceLead>),
    /// Only ids: the lead must be fetched (Meta Lead Ads).
    Fetch(Vec<FetchRequest>),
    /// A delivery that carries no lead (a ping, a test event without data): answer 200.
    Nothing,
}

/// A lead to fetch later, stored durably by the daemon before it answers the platform.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FetchRequest {
    /// The platform's lead id (dedup key).
    pub event_id: String,
    /// Ids that came with the notification (form, ad, adset, campaign, page, created time…).
    pub hints: BTreeMap<String, String>,
}

/// Why a webhook delivery is refused. `Unauthorized` → 401, `Malformed` → 400 naming the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PresetError {
    #[error("{0}")]
    Unauthorized(String),
    #[error("{field}: {reason}")]
    Malformed { field: String, reason: String },
    #[error("{0}")]
    UnsupportedMediaType(String),
}

/// The answer to a platform's GET verification handshake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Handshake {
    /// 200 with this plain-text body (e.g. Meta's `hub.challenge`).
    Accept(String),
    /// 403 with this reason (wrong verify token).
    Refuse(String),
}

/// A pushed form/lead webhook of one platform.
pub trait WebhookPreset: Send + Sync {
    /// Authenticity, checked on the raw bytes before anything is parsed (signatures in constant
    /// time, timestamps within the platform's window).
    fn verify(&self, req: &PresetRequest<'_>) -> Result<(), PresetError>;
    fn parse(&self, req: &PresetRequest<'_>) -> Result<PresetOutput, PresetError>;
    /// `GET /hooks/NAME` with this query string; `None` = this platform has no handshake (405).
    fn handshake(&self, _query: &str) -> Option<Handshake> {
        None
    }
}

/// Fetches a lead a notification announced (Meta's `GET /{leadgen_id}`).
#[async_trait]
pub trait LeadFetcher: Send + Sync {
    async fn fetch(&self, request: &FetchRequest) -> Result<SourceLead, CallError>;
    /// The vendor's documented limit for this account.
    fn rate_limit(&self) -> crate::RateLimit;
}

/// One poll's result.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PollPage {
    pub leads: Vec<SourceLead>,
    /// Committed together with `leads`, in one transaction.
    pub next_cursor: String,
    /// More pages are waiting now: poll again at once.
    pub more: bool,
}

/// A source tandem asks for new leads (LinkedIn Lead Gen, Mailchimp, Brevo, Klaviyo…).
#[async_trait]
pub trait PolledSource: Send + Sync {
    /// How often to poll when there is nothing more waiting.
    fn interval(&self) -> Duration;
    /// The vendor's limit, when the daemon should pace this source's polls (a backlog is paged
    /// with `more: true` back to back). `None`: the source paces its own requests.
    fn rate_limit(&self) -> Option<crate::RateLimit> {
        None
    }
    /// Leads since `cursor` (`None`: the first poll, from the configured start). Cursors overlap
    /// on purpose (equal timestamps, late writes); the daemon dedups by `event_id`.
    async fn poll(&self, cursor: Option<&str>) -> Result<PollPage, CallError>;
}
