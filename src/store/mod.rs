//! Durable state behind one trait: leads (immutable, raw payload kept), people and the remote ids
//! each connector gave them, the outbox of deliveries, dead letters, cursors and idempotency keys.
//!
//! The trait speaks in whole operations (ingest a lead with its deliveries; claim a batch; settle
//! results) so that each is one transaction, and every claim is one statement with a lease, so a
//! PostgreSQL engine can implement it without changing callers. [`sqlite`] is the embedded default.

pub mod anonymise;
mod connector_state;
pub mod sqlite;
mod types;

use std::time::Duration;

use async_trait::async_trait;

pub use connector_state::StoreConnectorState;
pub use types::*;

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Too many writes are already waiting for the writer: shed load (HTTP 503) and retry later.
    #[error("the store's write queue is full")]
    Busy,
    /// The writer is gone (shutting down, or crashed) or the database can't be written.
    #[error("the store is unavailable: {0}")]
    Unavailable(String),
    #[error("database error: {0}")]
    Database(#[from] rusqlite::Error),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    #[error("this store was opened read-only")]
    ReadOnly,
}

/// Everything the daemon needs to remember, as whole operations.
#[async_trait]
pub trait Store: Send + Sync {
    /// Stores a lead, resolves its person and enqueues its deliveries, in one transaction that is
    /// durable (fsync'd) when this returns. A known idempotency key returns the first lead instead.
    async fn ingest(&self, lead: NewLead) -> Result<Ingested, StoreError>;

    /// Claims up to `limit` due deliveries for `destination` under a lease held by `owner`: at most
    /// one per person, and only each person's oldest unfinished delivery (so order is kept). Rows
    /// whose lease expired (a crashed worker) are due again.
    async fn claim(
        &self,
        destination: &str,
        owner: &str,
        limit: usize,
        lease: Duration,
    ) -> Result<Vec<Claimed>, StoreError>;

    /// Records what happened to claimed deliveries, all in one transaction.
    async fn settle(&self, settlements: Vec<Settlement>) -> Result<(), StoreError>;

    /// Hands every delivery leased by `owner` back to the queue without spending an attempt
    /// (shutdown, or a connector that just paused).
    async fn release_owner(&self, owner: &str) -> Result<usize, StoreError>;

    /// Hands back every leased delivery: at startup, when this process holds the state lock, no
    /// other worker can still be running, so there is no reason to wait for leases to expire.
    async fn release_all_leases(&self) -> Result<usize, StoreError>;

    /// Adds deliveries for already stored leads (replay).
    async fn enqueue(&self, deliveries: Vec<NewDelivery>) -> Result<usize, StoreError>;

    /// Leads from `sources` received at or after `since_ms`, oldest first (replay).
    async fn leads_since(
        &self,
        sources: Vec<String>,
        since_ms: i64,
    ) -> Result<Vec<StoredLead>, StoreError>;

    /// Queue figures per destination.
    async fn status(&self) -> Result<Vec<DestinationStatus>, StoreError>;

    /// Dead letters, newest first, optionally for one destination.
    async fn dead_letters(
        &self,
        destination: Option<String>,
        limit: usize,
    ) -> Result<Vec<DeadLetter>, StoreError>;

    /// Puts dead letters back in the queue with a fresh attempt budget. `None` = all.
    async fn retry_dead(&self, ids: Option<Vec<i64>>) -> Result<usize, StoreError>;

    /// Deletes dead letters for good. `None` = all.
    async fn drop_dead(&self, ids: Option<Vec<i64>>) -> Result<usize, StoreError>;

    /// The id `connector` gave this person, if any delivery there succeeded.
    async fn remote_id(
        &self,
        person_id: i64,
        connector: &str,
    ) -> Result<Option<String>, StoreError>;

    /// Records (or clears, with `None`) why a connector is paused, so `status` can say so.
    async fn set_paused(&self, connector: &str, reason: Option<String>) -> Result<(), StoreError>;

    /// Paused connectors and why.
    async fn paused(&self) -> Result<Vec<(String, String)>, StoreError>;

    /// Stores leads announced by id only (Meta), to be fetched; a known `(source, event_id)` is
    /// not queued twice. Durable when this returns; sheds load like `ingest`.
    async fn enqueue_fetches(
        &self,
        source: &str,
        requests: Vec<(String, String)>,
    ) -> Result<usize, StoreError>;

    /// Claims due fetches of `source` under a lease (expired leases are due again).
    async fn claim_fetches(
        &self,
        source: &str,
        owner: &str,
        limit: usize,
        lease: Duration,
    ) -> Result<Vec<ClaimedFetch>, StoreError>;

    /// A fetch succeeded: stores its lead and marks the fetch done, in one transaction.
    async fn complete_fetch(&self, fetch_id: i64, lead: NewLead) -> Result<Ingested, StoreError>;

    /// A fetch failed: retry later or give up (the same settlements as deliveries).
    async fn settle_fetches(&self, settlements: Vec<Settlement>) -> Result<(), StoreError>;

    /// One polled page: its leads and the cursor after them, in one transaction, so a crash
    /// between fetch and commit re-polls from the old cursor and loses nothing.
    async fn ingest_page(
        &self,
        leads: Vec<NewLead>,
        cursor_name: &str,
        cursor: &str,
    ) -> Result<Vec<Ingested>, StoreError>;

    /// Remembers the id a destination gave the person of `delivery_id`, at once (mid-batch).
    async fn record_remote_id(&self, delivery_id: i64, remote_id: &str) -> Result<(), StoreError>;

    /// A connector's saved OAuth token set (JSON), if any.
    async fn load_token(&self, connector: &str) -> Result<Option<String>, StoreError>;

    /// Saves a connector's OAuth token set (JSON); durable when this returns.
    async fn save_token(&self, connector: &str, token_json: &str) -> Result<(), StoreError>;

    /// A polled source's saved position (`None` before its first poll).
    async fn cursor(&self, name: &str) -> Result<Option<String>, StoreError>;

    /// Saves a polled source's position.
    async fn set_cursor(&self, name: &str, value: &str) -> Result<(), StoreError>;

    /// `tandem forget`: in one transaction, erases the personal data of the person known by
    /// `identifier` (their keys, every lead's personal fields and raw body, idempotency keys,
    /// queued and dead-lettered payloads, which are cancelled), keeps the leads' attribution
    /// fields, queues a deletion delivery for every target that knows the person, and records an
    /// audit entry holding only a salted hash of the identifier.
    async fn forget(
        &self,
        identifier: ForgetIdentifier,
        targets: Vec<ForgetTarget>,
    ) -> Result<ForgetOutcome, StoreError>;

    /// Forget audit entries, newest first.
    async fn forget_audits(&self, limit: usize) -> Result<Vec<ForgetAudit>, StoreError>;

    /// For each polled deal (id and contacts): what the store knew of it, and its people with
    /// their leads. Read-only.
    async fn outcome_context(
        &self,
        crm: &str,
        deals: Vec<(String, Vec<tandem_connectors::outcome::DealContact>)>,
    ) -> Result<Vec<DealContext>, StoreError>;

    /// Records a page of deals in one transaction: the deal rows, a history row for each change,
    /// the deal's people, the write-backs each destination hasn't been told yet, and the cursor.
    async fn record_outcomes(&self, batch: OutcomeBatch) -> Result<OutcomesRecorded, StoreError>;

    /// Every deal with its people and every person's touchpoints (reports).
    async fn attribution_inputs(&self) -> Result<AttributionInputs, StoreError>;

    /// A no-op write through the writer: proves the store is writable right now (readiness).
    async fn ping(&self) -> Result<(), StoreError>;
}
