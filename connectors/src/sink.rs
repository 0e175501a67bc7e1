//! The contract between the delivery engine and a CRM connector: a batch of records goes in, one
//! classified result per record comes out, or the whole call failed in a classified way.

use std::time::Duration;

use async_trait::async_trait;

use crate::model::SinkRecord;

/// "N requests per period", the way vendors state their limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    pub requests: u32,
    pub per: Duration,
}

/// What happened to one record of a batch.
#[derive(Debug, Clone, PartialEq)]
pub enum ItemResult {
    /// The CRM holds the record; `remote_id` is its id there.
    Done { remote_id: String, created: bool },
    /// Worth trying again later (vendor-side hiccup for this one item).
    Transient { message: String },
    /// The vendor refused this record for good; `message` is the vendor's own text.
    Permanent { message: String },
}

/// How a whole call failed. Every variant says what the engine should do next.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CallError {
    /// 5xx, timeout, connection reset: retry the batch with backoff.
    #[error("transient: {message}")]
    Transient {
        message: String,
        retry_after: Option<Duration>,
    },
    /// 429: the vendor throttled us; wait at least `retry_after` before calling again.
    #[error("rate limited: {message}")]
    RateLimited {
        message: String,
        retry_after: Duration,
    },
    /// 401/403: credentials are wrong or lack a scope. Pause the connector; retrying won't help.
    #[error("auth ({status}): {message}")]
    Auth { status: u16, message: String },
    /// The vendor refused the request as a whole (validation 4xx): every record is dead.
    #[error("permanent: {message}")]
    Permanent { message: String },
}

impl CallError {
    /// The common reading of an HTTP status, for every connector: 429 is throttling (wait
    /// `throttle_wait`); 401/403 are credentials; 408, 425 and 5xx are about the moment (retry,
    /// no sooner than `retry_after`); any other status is a verdict on the request. Connectors
    /// match their vendor's own exceptions first and fall back to this.
    pub fn from_status(
        status: u16,
        message: String,
        throttle_wait: Duration,
        retry_after: Option<Duration>,
    ) -> CallError {
        match status {
            429 => CallError::RateLimited {
                message,
                retry_after: throttle_wait,
            },
            401 | 403 => CallError::Auth { status, message },
            408 | 425 => CallError::Transient {
                message,
                retry_after,
            },
            s if s >= 500 => CallError::Transient {
                message,
                retry_after,
            },
            _ => CallError::Permanent { message },
        }
    }
}

/// A successful call: one result per input record, in input order.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchOutcome {
    pub items: Vec<ItemResult>,
    /// The vendor's headers say its window is spent: don't call again before this much time.
    pub pause_for: Option<Duration>,
}

/// One person to delete from a CRM (`tandem forget`): the outbox row and the id the CRM gave
/// the person.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForgetRecord {
    pub delivery_id: i64,
    pub remote_id: String,
}

/// What [`LeadSink::forget`] answers for connectors that can't delete yet.
pub const FORGET_UNSUPPORTED: &str = "this CRM connector can't delete records yet; delete the person in the CRM by hand, then drop this dead letter";

/// A CRM that receives leads.
#[async_trait]
pub trait LeadSink: Send + Sync {
    /// The most records one call may carry (the vendor's batch limit).
    fn max_batch(&self) -> usize;
    /// The vendor's documented limit for this account, before any user override.
    fn default_rate_limit(&self) -> RateLimit;
    /// Upsert every record; the result vector has exactly one entry per record, in order.
    async fn upsert_people(&self, batch: &[SinkRecord]) -> Result<BatchOutcome, CallError>;

    /// `tandem check --connect`: are the credentials good, and does every property a flow maps
    /// (`fields`) exist in the CRM with a type a string can be written to? One line per problem,
    /// each saying how to fix it; empty = all good. Never writes anything.
    async fn verify(&self, fields: &[String]) -> Vec<String>;

    /// Whether [`LeadSink::forget`] deletes records (rather than refusing every one).
    fn supports_forget(&self) -> bool {
        false
    }

    /// Permanently deletes each person from the CRM; one result per record, in order. A record
    /// the CRM no longer has counts as deleted. Connectors that can't delete refuse the call, so
    /// the deletion dead-letters where an operator sees it.
    async fn forget(&self, batch: &[ForgetRecord]) -> Result<BatchOutcome, CallError> {
        let _ = batch;
        Err(CallError::Permanent {
            message: FORGET_UNSUPPORTED.to_owned(),
        })
    }
}
