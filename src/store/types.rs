//! The records that cross the [`Store`](super::Store) trait.

use serde::{Deserialize, Serialize};

/// How a person is recognised: normalised email, else E.164 phone, else the source's own id.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PersonKey {
    pub email: Option<String>,
    pub phone: Option<String>,
    /// `connector:id` when the lead has neither email nor phone.
    pub source_key: Option<String>,
}

/// A lead to store, with the deliveries it causes.
#[derive(Debug, Clone)]
pub struct NewLead {
    pub id: String,
    pub source: String,
    pub received_at_ms: i64,
    /// The canonical lead as JSON.
    pub lead_json: String,
    /// The body exactly as received.
    pub raw_body: Vec<u8>,
    pub content_type: Option<String>,
    pub person: PersonKey,
    /// `Idempotency-Key` header or the platform's event id, scoped to `source`.
    pub idempotency_key: Option<String>,
    /// Deliveries to enqueue (person id is filled in by the store).
    pub deliveries: Vec<LeadDelivery>,
}

/// One delivery of a new lead, before it has a person id.
#[derive(Debug, Clone)]
pub struct LeadDelivery {
    pub flow: String,
    pub destination: String,
    /// The rendered properties, as JSON.
    pub payload: String,
}

/// A delivery for an already stored lead (replay).
#[derive(Debug, Clone)]
pub struct NewDelivery {
    pub lead_id: String,
    pub person_id: i64,
    pub flow: String,
    pub destination: String,
    pub payload: String,
}

/// The answer to an ingest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Ingested {
    pub lead_id: String,
    pub duplicate: bool,
}

/// A stored lead, as replay reads it back.
#[derive(Debug, Clone)]
pub struct StoredLead {
    pub id: String,
    pub source: String,
    pub person_id: i64,
    pub received_at_ms: i64,
    pub lead_json: String,
}

/// A delivery a worker holds under lease.
#[derive(Debug, Clone, PartialEq)]
pub struct Claimed {
    pub id: i64,
    pub lead_id: String,
    pub person_id: i64,
    pub flow: String,
    pub destination: String,
    pub payload: String,
    /// Attempts including this one.
    pub attempts: u32,
    pub created_at_ms: i64,
    /// The id the destination gave this person on an earlier delivery, if any.
    pub remote_id: Option<String>,
    /// What to do: upsert the payload, or delete the person there (`tandem forget`).
    pub op: DeliveryOp,
}

/// What an outbox row asks of its destination.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryOp {
    /// Create or update the person with the rendered payload.
    #[default]
    Upsert,
    /// Delete the person the destination knows as `remote_id` (a forget's fan-out).
    Forget,
    /// Send a deal milestone (a `Conversion`) to a write-back destination.
    Writeback,
}

impl DeliveryOp {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryOp::Upsert => "upsert",
            DeliveryOp::Forget => "forget",
            DeliveryOp::Writeback => "writeback",
        }
    }

    pub fn parse(s: &str) -> DeliveryOp {
        match s {
            "forget" => DeliveryOp::Forget,
            "writeback" => DeliveryOp::Writeback,
            _ => DeliveryOp::Upsert,
        }
    }
}

/// How an operator names the person to forget, already normalised (see `crate::identity`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ForgetIdentifier {
    Email(String),
    Phone(String),
}

impl ForgetIdentifier {
    pub fn value(&self) -> &str {
        match self {
            ForgetIdentifier::Email(v) | ForgetIdentifier::Phone(v) => v,
        }
    }
}

/// A configured CRM destination, as a forget's fan-out sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForgetTarget {
    pub destination: String,
    /// Whether its connector can delete a record; one that can't still gets a row, which
    /// dead-letters at once with the connector's reason, so the manual step stays visible.
    pub supports_deletion: bool,
}

/// What a forget did to one connector that knows (or may be about to know) the person.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ForgetFanout {
    pub connector: String,
    /// `queued` (deletion delivery enqueued), `unsupported` (enqueued; it dead-letters at once:
    /// delete the record by hand), `not_configured` (the connector is gone from the config).
    pub status: String,
    /// The outbox row carrying the deletion, when one was queued.
    pub delivery_id: Option<i64>,
}

/// The audit record of one forget: no identifier, only its salted hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ForgetAudit {
    pub id: i64,
    pub person_id: i64,
    pub requested_at_ms: i64,
    /// Hex SHA-256 of the per-database salt and the normalised identifier.
    pub identifier_hash: String,
    pub connectors: Vec<ForgetFanout>,
    /// `pending` (deletions still queued), `done`, or `failed` (a deletion was dead-lettered).
    pub status: String,
    pub finished_at_ms: Option<i64>,
}

/// The answer to a forget request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum ForgetOutcome {
    /// The person's personal data is gone from the store; deletions are queued.
    Forgotten {
        audit: ForgetAudit,
        leads: usize,
        /// Queued or dead-lettered upserts that will now never be sent.
        cancelled_deliveries: usize,
    },
    /// Nobody holds this identifier now, but it was forgotten before (matched by its hash).
    AlreadyForgotten { audit: ForgetAudit },
    /// Nobody holds this identifier, and it was never forgotten here.
    NotFound,
}

/// What became of one claimed delivery.
#[derive(Debug, Clone, PartialEq)]
pub enum Settlement {
    /// The destination confirmed it; remember the id it gave the person.
    Done { id: i64, remote_id: Option<String> },
    /// Try again at `at_ms`. `refund` gives the attempt back (throttling and auth pauses are not
    /// the record's fault and must not burn its retry budget).
    Retry {
        id: i64,
        at_ms: i64,
        error: String,
        refund: bool,
    },
    /// Give up: the destination refused it for good, or the retry budget is spent.
    Dead { id: i64, error: String },
}

/// Queue figures for one destination.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DestinationStatus {
    pub destination: String,
    pub flow: String,
    pub pending: u64,
    pub in_flight: u64,
    pub done: u64,
    pub dead: u64,
    /// Age in ms of the oldest unfinished delivery.
    pub oldest_pending_age_ms: Option<i64>,
    pub last_error: Option<String>,
}

/// A delivery that was given up on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeadLetter {
    pub id: i64,
    pub lead_id: String,
    pub flow: String,
    pub destination: String,
    pub attempts: u32,
    pub error: String,
    pub created_at_ms: i64,
    pub dead_at_ms: i64,
}

/// A lead announced by id only, held under lease by a fetch worker.
#[derive(Debug, Clone, PartialEq)]
pub struct ClaimedFetch {
    pub id: i64,
    pub source: String,
    pub event_id: String,
    pub request_json: String,
    pub attempts: u32,
    pub created_at_ms: i64,
}

/// What the store already knows about a deal (the previous observation).
#[derive(Debug, Clone, PartialEq)]
pub struct KnownDeal {
    pub stage: String,
    pub state: tandem_connectors::outcome::DealState,
    pub milestone: tandem_connectors::writeback::Milestone,
    pub amount_minor: Option<i64>,
    pub currency: Option<String>,
    /// Milestones reached so far and when.
    pub reached: crate::outcomes::milestones::Reached,
}

/// One person linked to a deal, with everything a write-back is built from.
#[derive(Debug, Clone, PartialEq)]
pub struct PersonLeads {
    pub person_id: i64,
    /// Connector → the id it gave this person.
    pub remote_ids: std::collections::BTreeMap<String, String>,
    /// The person's leads, oldest first.
    pub leads: Vec<crate::outcomes::touch::LeadRow>,
}

/// A polled deal and its people, as the store resolves them.
#[derive(Debug, Clone, PartialEq)]
pub struct DealContext {
    pub known: Option<KnownDeal>,
    /// The people the deal's contacts resolve to (by the CRM's id for them, else by email), in
    /// the CRM's contact order, each once.
    pub people: Vec<PersonLeads>,
}

/// One deal observation to record, with the write-backs it may cause.
#[derive(Debug, Clone, PartialEq)]
pub struct DealRecord {
    pub outcome: tandem_connectors::outcome::Outcome,
    pub milestone: tandem_connectors::writeback::Milestone,
    pub reached: crate::outcomes::milestones::Reached,
    pub person_ids: Vec<i64>,
    pub writebacks: Vec<WritebackPlan>,
}

/// A write-back the store enqueues if the destination hasn't been told this yet.
#[derive(Debug, Clone, PartialEq)]
pub struct WritebackPlan {
    pub destination: String,
    pub want: crate::outcomes::plan::Want,
    pub caps: crate::outcomes::plan::Caps,
    pub person_id: i64,
    /// The lead the outbox row hangs off (the person's latest).
    pub lead_id: String,
    /// The conversion; `action` and `request_key` are set by the store from its decision.
    pub conversion: tandem_connectors::writeback::Conversion,
}

/// One polled page of deals and the cursor after it.
#[derive(Debug, Clone, PartialEq)]
pub struct OutcomeBatch {
    pub crm: String,
    pub deals: Vec<DealRecord>,
    /// (cursor name, value), committed with the deals.
    pub cursor: Option<(String, String)>,
}

/// What recording a page did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OutcomesRecorded {
    /// Deals seen for the first time or changed (a history row each).
    pub changed: usize,
    /// Write-back deliveries enqueued, by destination.
    pub enqueued: std::collections::BTreeMap<String, usize>,
}

/// A deal as reports read it.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredDeal {
    pub crm: String,
    pub deal: crate::attribution::Deal,
    pub people: Vec<i64>,
    pub reached: crate::outcomes::milestones::Reached,
}

/// Everything the attribution and quality reports are computed from.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AttributionInputs {
    pub deals: Vec<StoredDeal>,
    /// Person → their touchpoints (one per lead).
    pub touches: std::collections::BTreeMap<i64, Vec<crate::attribution::Touch>>,
}
