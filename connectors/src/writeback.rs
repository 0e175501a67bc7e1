//! The tandem → marketing direction: a deal's milestones (and the attribution behind them) sent
//! to an ad platform, an email platform or back onto the CRM's deal.
//!
//! The daemon decides *what* to send and when (one [`Conversion`] per destination, deal and
//! milestone, earlier milestones first, restatements and retractions when a deal changes) and
//! keeps each one in the outbox with the engine's retries and dead letters. A [`WritebackSink`]
//! only knows its vendor's wire format, its dedup key and which of the daemon's requests it can
//! express.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::sink::{BatchOutcome, CallError, FORGET_UNSUPPORTED, ForgetRecord, RateLimit};

/// tandem's stages of a deal, in funnel order. The config maps each CRM's pipelines and stages
/// onto them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Milestone {
    Qualified,
    Opportunity,
    Won,
    Lost,
}

impl Milestone {
    pub const ALL: [Milestone; 4] = [
        Milestone::Qualified,
        Milestone::Opportunity,
        Milestone::Won,
        Milestone::Lost,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Milestone::Qualified => "qualified",
            Milestone::Opportunity => "opportunity",
            Milestone::Won => "won",
            Milestone::Lost => "lost",
        }
    }

    pub fn parse(s: &str) -> Option<Milestone> {
        Milestone::ALL.into_iter().find(|m| m.name() == s)
    }
}

/// What the daemon asks of the destination for one (deal, milestone).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WritebackAction {
    /// The deal reached the milestone: report it.
    Send,
    /// The milestone's value changed (a won deal's amount): report the new value.
    Restate,
    /// The deal left the milestone (won, then lost): withdraw what was reported.
    Retract,
}

/// The click ids and platform ids of the person's touchpoints that the ad platforms match on,
/// from the most recent touchpoint that carries each.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ClickIds {
    pub gclid: Option<String>,
    pub gbraid: Option<String>,
    pub wbraid: Option<String>,
    /// `fb.1.<ms>.<fbclid>`.
    pub fbc: Option<String>,
    /// The Meta Lead Ads `leadgen_id` when the person came through a Meta lead form.
    pub meta_lead_id: Option<String>,
    pub li_fat_id: Option<String>,
    /// When the touchpoint carrying `gclid`/`gbraid`/`wbraid` was captured (Unix ms).
    pub google_click_at_ms: Option<i64>,
}

/// The person the conversion is about, in tandem's normalised form (the connector hashes what
/// its vendor wants hashed, exactly as the vendor specifies). Empty after a `forget`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ConversionPerson {
    /// Trimmed, lowercased.
    pub email: Option<String>,
    /// E.164.
    pub phone: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    /// ISO 3166-1 alpha-2, when a lead said.
    pub country: Option<String>,
    /// The id this destination gave the person on an earlier delivery (a CRM, Mailchimp).
    pub remote_id: Option<String>,
    /// Consent as the person's latest lead stated it (`None`: the form did not ask).
    pub consent: Option<bool>,
}

/// One touchpoint as a summary for the CRM's deal fields.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TouchSummary {
    pub source: String,
    pub medium: Option<String>,
    pub campaign: Option<String>,
    /// Unix ms.
    pub captured_at_ms: i64,
}

impl TouchSummary {
    /// `source / medium / campaign`, missing parts left out.
    pub fn label(&self) -> String {
        let mut parts = vec![self.source.as_str()];
        parts.extend(self.medium.as_deref());
        parts.extend(self.campaign.as_deref());
        parts.join(" / ")
    }
}

/// One touchpoint's credit under the configured model.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CreditSummary {
    pub touch: TouchSummary,
    /// The model's weight, 0..=1 (a deal's weights sum to 1).
    pub weight: f64,
    /// The touchpoint's exact part of the deal amount.
    pub amount_minor: i64,
}

/// The attribution of a deal as the CRM's deal fields show it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AttributionSummary {
    pub model: String,
    pub first_touch: Option<TouchSummary>,
    pub last_touch: Option<TouchSummary>,
    /// In capture order; empty when the deal has no touchpoint in its lookback window.
    pub credits: Vec<CreditSummary>,
}

impl AttributionSummary {
    /// `40% google / cpc / spring; 60% newsletter / email` — the one-line credit text for a CRM
    /// text field.
    pub fn credit_line(&self) -> String {
        if self.credits.is_empty() {
            return "unattributed".to_owned();
        }
        self.credits
            .iter()
            .map(|c| format!("{:.0}% {}", c.weight * 100.0, c.touch.label()))
            .collect::<Vec<_>>()
            .join("; ")
    }
}

/// One write-back, as the outbox stores it (JSON) and a [`WritebackSink`] receives it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Conversion {
    /// The outbox row; results are matched back by position, this is for logs and remote ids.
    #[serde(default)]
    pub delivery_id: i64,
    /// The vendor-side dedup key of the (deal, milestone): `"{crm}:{deal_id}:{milestone}"`. The
    /// same for a send and its later restatements and retractions, which reference it
    /// (`transactionId`, `order_id`, `event_id`, `eventId`).
    pub key: String,
    /// Unique per request, for vendors that dedup requests rather than conversions:
    /// `key` for a send, `key + ":restate:N"` / `key + ":retract:N"` after.
    pub request_key: String,
    pub action: WritebackAction,
    pub milestone: Milestone,
    /// The CRM connector the deal lives in, and its kind (`hubspot`, …).
    pub crm: String,
    pub crm_kind: String,
    pub deal_id: String,
    /// When the milestone was reached (the stage change's time in the CRM), Unix ms.
    pub occurred_at_ms: i64,
    /// The deal amount in minor units at this milestone, when it has one.
    pub value_minor: Option<i64>,
    pub currency: Option<String>,
    pub person: ConversionPerson,
    pub clicks: ClickIds,
    pub attribution: AttributionSummary,
}

/// A marketing-side platform (or the CRM's own deal) that receives write-backs.
#[async_trait]
pub trait WritebackSink: Send + Sync {
    /// The most conversions one call may carry.
    fn max_batch(&self) -> usize;
    /// The vendor's documented limit for this account, before any user override.
    fn default_rate_limit(&self) -> RateLimit;
    /// Whether this destination takes `milestone` at all (e.g. a Google conversion action is
    /// configured for it). The daemon enqueues nothing it would refuse.
    fn accepts(&self, milestone: Milestone) -> bool;
    /// Whether the vendor can express `action` (retractions and restatements are not universal).
    fn supports(&self, action: WritebackAction) -> bool {
        action == WritebackAction::Send
    }
    /// Sends every conversion; exactly one result per conversion, in order. A conversion the
    /// vendor refuses for good (too old, unmatched) is `Permanent` with the vendor's own message;
    /// one that lacks what the vendor needs to match it (no click id, no hashed identifier) too.
    async fn send(&self, batch: &[Conversion]) -> Result<BatchOutcome, CallError>;
    /// `tandem check --connect`: credentials and configured targets (Google `validateOnly`,
    /// Meta dataset, Mailchimp list, CRM deal fields). One line per problem, each with its fix.
    async fn verify(&self) -> Vec<String>;

    /// Whether [`WritebackSink::forget`] deletes people (Mailchimp's permanent delete).
    fn supports_forget(&self) -> bool {
        false
    }

    /// `tandem forget` fan-out: permanently deletes each person this destination knows as
    /// `remote_id` (the id a write-back's `Done` result returned); one result per record, and a
    /// person the vendor no longer has counts as deleted.
    async fn forget(&self, batch: &[ForgetRecord]) -> Result<BatchOutcome, CallError> {
        let _ = batch;
        Err(CallError::Permanent {
            message: FORGET_UNSUPPORTED.to_owned(),
        })
    }
}

/// Lowercase hex SHA-256, the hashing every ad platform asks for after its own normalisation.
pub fn sha256_hex(value: &str) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(value.as_bytes()))
}

/// A CRM's default names for the three attribution fields on its deals: first touch, last touch,
/// attribution (the credit line).
pub trait DealFieldDefaults {
    const NAMES: [&'static str; 3];
}

/// `deal_fields = { first_touch = "…", last_touch = "…", attribution = "…" }`: the CRM's names of
/// the deal fields tandem writes attribution to; a key left out takes the CRM's default (`D`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DealFields<D> {
    pub first_touch: String,
    pub last_touch: String,
    pub attribution: String,
    defaults: std::marker::PhantomData<D>,
}

impl<D: DealFieldDefaults> Default for DealFields<D> {
    fn default() -> Self {
        let [first_touch, last_touch, attribution] = D::NAMES.map(str::to_owned);
        DealFields {
            first_touch,
            last_touch,
            attribution,
            defaults: std::marker::PhantomData,
        }
    }
}

impl<D> DealFields<D> {
    /// (config key, field name), in the order they are written.
    pub fn named(&self) -> [(&'static str, &str); 3] {
        [
            ("first_touch", self.first_touch.as_str()),
            ("last_touch", self.last_touch.as_str()),
            ("attribution", self.attribution.as_str()),
        ]
    }
}

impl<'de, D: DealFieldDefaults> Deserialize<'de> for DealFields<D> {
    fn deserialize<De: serde::Deserializer<'de>>(d: De) -> Result<Self, De::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Given {
            first_touch: Option<String>,
            last_touch: Option<String>,
            attribution: Option<String>,
        }
        let given = Given::deserialize(d)?;
        let mut fields = DealFields::<D>::default();
        if let Some(v) = given.first_touch {
            fields.first_touch = v;
        }
        if let Some(v) = given.last_touch {
            fields.last_touch = v;
        }
        if let Some(v) = given.attribution {
            fields.attribution = v;
        }
        Ok(fields)
    }
}
