//! One worker's loop for one destination: claim → linger → rate-limit → call → settle. What each
//! class of failure means is decided here, once, for every connector:
//! item results settle their own row; a 429 or vendor pause holds the whole destination off
//! without spending attempts; 401/403 pauses the destination until a probe or reload succeeds;
//! a batch refused as a whole is retried record by record so one bad lead cannot sink 99 good ones.

use std::{sync::Arc, time::Duration};

use rand::SeedableRng;
use rand::rngs::SmallRng;
use tandem_connectors::{
    BatchOutcome, CallError, ForgetRecord, ItemResult, RecordFields, SinkRecord,
    writeback::Conversion,
};
use tokio_util::sync::CancellationToken;

use super::{Destination, EngineOptions, retry::Next};
use crate::store::{Claimed, DeliveryOp, Settlement, Store, sqlite::now_ms};

pub(super) async fn run(
    dest: Arc<Destination>,
    store: Arc<dyn Store>,
    opts: EngineOptions,
    owner: String,
    cancel: CancellationToken,
) {
    let mut rng = SmallRng::from_os_rng();
    while !cancel.is_cancelled() {
        dest.heartbeat
            .store(now_ms(), std::sync::atomic::Ordering::Relaxed);
        if let Some(wait) = dest.limiter.vendor_wait() {
            // In short steps, so the watchdog keeps hearing from this worker.
            if sleep_or_cancel(wait.min(Duration::from_secs(5)), &cancel).await {
                break;
            }
            continue;
        }
        let paused = dest.paused_reason().is_some();
        let limit = if paused { 1 } else { dest.sinks.max_claim() };
        let mut batch = match store.claim(&dest.name, &owner, limit, opts.lease).await {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(destination = %dest.name, error = %e, "claim failed; retrying shortly");
                if sleep_or_cancel(Duration::from_secs(1), &cancel).await {
                    break;
                }
                continue;
            }
        };
        if batch.is_empty() {
            tokio::select! {
                _ = dest.wake.notified() => {}
                _ = tokio::time::sleep(opts.idle_poll) => {}
                _ = cancel.cancelled() => break,
            }
            continue;
        }
        if batch.len() < limit && !opts.linger.is_zero() && !paused {
            // A short linger turns a trickle of single leads into fuller batches.
            if !sleep_or_cancel(opts.linger, &cancel).await
                && let Ok(more) = store
                    .claim(&dest.name, &owner, limit - batch.len(), opts.lease)
                    .await
            {
                batch.extend(more);
            }
        }
        tokio::select! {
            _ = dest.limiter.ready() => {}
            _ = cancel.cancelled() => break,
        }
        deliver(&dest, store.as_ref(), &opts, batch, &mut rng).await;
    }
    // Whatever this worker still holds (claimed, not sent) goes back without spending an attempt.
    if let Err(e) = store.release_owner(&owner).await {
        tracing::warn!(destination = %dest.name, error = %e, "could not release leases; they expire on their own");
    }
}

/// Returns true when cancelled.
async fn sleep_or_cancel(d: Duration, cancel: &CancellationToken) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(d) => false,
        _ = cancel.cancelled() => true,
    }
}

async fn deliver(
    dest: &Destination,
    store: &dyn Store,
    opts: &EngineOptions,
    batch: Vec<Claimed>,
    rng: &mut SmallRng,
) {
    // Each kind of row goes in its own calls: upserts and write-backs batched, deletions one by
    // one (they are rare).
    let mut upserts = Vec::new();
    let mut writebacks = Vec::new();
    let mut forgets = Vec::new();
    for c in batch {
        match c.op {
            DeliveryOp::Upsert => upserts.push(c),
            DeliveryOp::Writeback => writebacks.push(c),
            DeliveryOp::Forget => forgets.push(c),
        }
    }
    let mut settlements = Vec::new();
    let mut called = false;
    if !upserts.is_empty() {
        called = true;
        settlements.extend(deliver_upserts(dest, store, opts, &upserts, rng).await);
    }
    if !writebacks.is_empty() {
        if called {
            dest.limiter.ready().await;
        }
        called = true;
        settlements.extend(deliver_writebacks(dest, store, opts, &writebacks, rng).await);
    }
    for c in &forgets {
        let Some(remote_id) = c.remote_id.clone() else {
            // The destination never got this person (or the upsert it waited for failed).
            settlements.push(Settlement::Done {
                id: c.id,
                remote_id: None,
            });
            continue;
        };
        if called {
            dest.limiter.ready().await;
        }
        called = true;
        let record = ForgetRecord {
            delivery_id: c.id,
            remote_id,
        };
        let records = std::slice::from_ref(&record);
        let result = match (&dest.sinks.lead, &dest.sinks.writeback) {
            (Some(lead), _) if lead.supports_forget() => {
                call(dest, opts, lead.forget(records)).await
            }
            (_, Some(wb)) if wb.supports_forget() => call(dest, opts, wb.forget(records)).await,
            (Some(lead), _) => call(dest, opts, lead.forget(records)).await,
            (None, Some(wb)) => call(dest, opts, wb.forget(records)).await,
            (None, None) => Err(CallError::Permanent {
                message: tandem_connectors::FORGET_UNSUPPORTED.to_owned(),
            }),
        };
        settlements.extend(consequences(dest, store, opts, &[c], result, rng).await);
    }
    for s in &settlements {
        let outcome = match s {
            Settlement::Done { .. } => "done",
            Settlement::Retry { .. } => "retry",
            Settlement::Dead { .. } => "dead",
        };
        metrics::counter!("tandem_deliveries_total", "destination" => dest.name.clone(), "outcome" => outcome).increment(1);
    }
    if let Err(e) = store.settle(settlements).await {
        // The leases will expire and the rows be tried again; the vendor upsert is idempotent.
        tracing::error!(destination = %dest.name, error = %e, "could not record delivery results");
    }
}

async fn deliver_upserts(
    dest: &Destination,
    store: &dyn Store,
    opts: &EngineOptions,
    batch: &[Claimed],
    rng: &mut SmallRng,
) -> Vec<Settlement> {
    let Some(sink) = dest.sinks.lead.clone() else {
        return dead_all(
            batch,
            "this connector does not receive leads; drop this dead letter",
        );
    };
    let (records, settlements) = to_records(batch);
    let limit = sink.max_batch().max(1);
    let send = move |chunk: Vec<SinkRecord>| {
        let sink = sink.clone();
        async move { sink.upsert_people(&chunk).await }
    };
    send_in_batches(
        dest,
        store,
        opts,
        batch,
        records,
        limit,
        |r| r.delivery_id,
        send,
        settlements,
        rng,
    )
    .await
}

async fn deliver_writebacks(
    dest: &Destination,
    store: &dyn Store,
    opts: &EngineOptions,
    batch: &[Claimed],
    rng: &mut SmallRng,
) -> Vec<Settlement> {
    let Some(sink) = dest.sinks.writeback.clone() else {
        return dead_all(
            batch,
            "this connector no longer takes write-backs ([attribution] to); drop this dead letter",
        );
    };
    let mut settled = Vec::new();
    let mut conversions = Vec::new();
    for c in batch {
        if let Some(done) = cancelled(c) {
            settled.push(done);
            continue;
        }
        match serde_json::from_str::<Conversion>(&c.payload) {
            Ok(mut conversion) => {
                conversion.delivery_id = c.id;
                conversion.person.remote_id = c.remote_id.clone().or(conversion.person.remote_id);
                conversions.push(conversion);
            }
            Err(e) => settled.push(Settlement::Dead {
                id: c.id,
                error: format!("stored write-back is unreadable: {e}"),
            }),
        }
    }
    let limit = sink.max_batch().max(1);
    // A write-back's id is kept only where it names the person (a destination that can delete
    // people on `forget`); a CRM answers with the deal's id, which must never replace the
    // person's id there.
    let keeps_ids = sink.supports_forget() && dest.sinks.lead.is_none();
    let send = move |chunk: Vec<Conversion>| {
        let sink = sink.clone();
        async move { sink.send(&chunk).await }
    };
    let mut out = send_in_batches(
        dest,
        store,
        opts,
        batch,
        conversions,
        limit,
        |c| c.delivery_id,
        send,
        settled,
        rng,
    )
    .await;
    if !keeps_ids {
        for s in &mut out {
            if let Settlement::Done { remote_id, .. } = s {
                *remote_id = None;
            }
        }
    }
    out
}

fn dead_all(batch: &[Claimed], error: &str) -> Vec<Settlement> {
    batch
        .iter()
        .map(|c| Settlement::Dead {
            id: c.id,
            error: error.to_owned(),
        })
        .collect()
}

/// Sends `items` (the live rows of `batch`, matched by `id_of`) in calls of at most `limit`; a
/// call refused as a whole is retried item by item, so one bad record cannot sink the rest.
#[allow(clippy::too_many_arguments)]
async fn send_in_batches<T, F, Fut>(
    dest: &Destination,
    store: &dyn Store,
    opts: &EngineOptions,
    batch: &[Claimed],
    items: Vec<T>,
    limit: usize,
    id_of: impl Fn(&T) -> i64,
    send: F,
    mut settlements: Vec<Settlement>,
    rng: &mut SmallRng,
) -> Vec<Settlement>
where
    T: Clone,
    F: Fn(Vec<T>) -> Fut,
    Fut: std::future::Future<Output = Result<BatchOutcome, CallError>>,
{
    let by_id: std::collections::HashMap<i64, &Claimed> = batch.iter().map(|c| (c.id, c)).collect();
    let mut first = true;
    let mut items = items.into_iter().peekable();
    while items.peek().is_some() {
        let chunk: Vec<T> = items.by_ref().take(limit).collect();
        if !first {
            dest.limiter.ready().await;
        }
        first = false;
        let live: Vec<&Claimed> = chunk
            .iter()
            .filter_map(|item| by_id.get(&id_of(item)).copied())
            .collect();
        metrics::histogram!("tandem_batch_size", "destination" => dest.name.clone())
            .record(chunk.len() as f64);
        match call(dest, opts, send(chunk.clone())).await {
            Err(CallError::Permanent { .. }) if chunk.len() > 1 => {
                tracing::warn!(destination = %dest.name, size = chunk.len(), "batch refused as a whole; retrying its records one by one");
                for (claimed, item) in live.iter().zip(chunk) {
                    dest.limiter.ready().await;
                    let single = call(dest, opts, send(vec![item])).await;
                    settlements
                        .extend(consequences(dest, store, opts, &[*claimed], single, rng).await);
                }
            }
            result => settlements.extend(consequences(dest, store, opts, &live, result, rng).await),
        }
    }
    settlements
}

/// A row whose person was forgotten while it waited (its payload erased): it ends here, never sent.
fn cancelled(c: &Claimed) -> Option<Settlement> {
    c.payload.is_empty().then_some(Settlement::Done {
        id: c.id,
        remote_id: None,
    })
}

fn to_records(batch: &[Claimed]) -> (Vec<SinkRecord>, Vec<Settlement>) {
    let mut records = Vec::with_capacity(batch.len());
    let mut settled = Vec::new();
    for c in batch {
        if let Some(done) = cancelled(c) {
            settled.push(done);
            continue;
        }
        match serde_json::from_str::<RecordFields>(&c.payload) {
            Ok(fields) => records.push(SinkRecord {
                delivery_id: c.id,
                properties: fields.properties,
                conflict: fields.conflict,
                remote_id: c.remote_id.clone(),
            }),
            Err(e) => settled.push(Settlement::Dead {
                id: c.id,
                error: format!("stored payload is unreadable: {e}"),
            }),
        }
    }
    (records, settled)
}

async fn call(
    dest: &Destination,
    opts: &EngineOptions,
    request: impl std::future::Future<Output = Result<BatchOutcome, CallError>>,
) -> Result<BatchOutcome, CallError> {
    let started = std::time::Instant::now();
    let result = match tokio::time::timeout(opts.call_timeout, request).await {
        Ok(r) => r,
        Err(_) => Err(CallError::Transient {
            message: format!("no answer within {:?}", opts.call_timeout),
            retry_after: None,
        }),
    };
    let label = match &result {
        Ok(_) => "ok",
        Err(CallError::Transient { .. }) => "transient",
        Err(CallError::RateLimited { .. }) => "rate_limited",
        Err(CallError::Auth { .. }) => "auth",
        Err(CallError::Permanent { .. }) => "permanent",
    };
    metrics::counter!("tandem_vendor_calls_total", "destination" => dest.name.clone(), "result" => label).increment(1);
    metrics::histogram!("tandem_vendor_call_seconds", "destination" => dest.name.clone())
        .record(started.elapsed().as_secs_f64());
    if let Err(CallError::RateLimited { .. }) = &result {
        metrics::counter!("tandem_vendor_429_total", "destination" => dest.name.clone())
            .increment(1);
    }
    result
}

/// What one call's result means for each row it carried.
async fn consequences(
    dest: &Destination,
    store: &dyn Store,
    opts: &EngineOptions,
    live: &[&Claimed],
    result: Result<BatchOutcome, CallError>,
    rng: &mut SmallRng,
) -> Vec<Settlement> {
    let now = now_ms();
    match result {
        Ok(outcome) => {
            if let Some(pause) = outcome.pause_for {
                dest.limiter.hold_off(pause);
            }
            if dest.paused_reason().is_some() {
                set_pause(dest, store, None).await;
                tracing::info!(destination = %dest.name, "access is back; destination resumed");
            }
            live.iter()
                .enumerate()
                .map(|(i, c)| match outcome.items.get(i) {
                    Some(ItemResult::Done { remote_id, .. }) => {
                        metrics::histogram!("tandem_delivery_latency_seconds", "destination" => dest.name.clone())
                            .record((now - c.created_at_ms).max(0) as f64 / 1000.0);
                        Settlement::Done { id: c.id, remote_id: Some(remote_id.clone()) }
                    }
                    Some(ItemResult::Permanent { message }) => Settlement::Dead { id: c.id, error: message.clone() },
                    Some(ItemResult::Transient { message }) => retry_or_give_up(opts, c, message, None, now, rng),
                    None => retry_or_give_up(opts, c, "the connector returned no result for this record", None, now, rng),
                })
                .collect()
        }
        Err(CallError::Transient {
            message,
            retry_after,
        }) => live
            .iter()
            .map(|c| retry_or_give_up(opts, c, &message, retry_after, now, rng))
            .collect(),
        Err(CallError::RateLimited {
            message,
            retry_after,
        }) => {
            // Throttling is not the record's fault: hold the whole destination off, spend no attempt.
            dest.limiter.hold_off(retry_after);
            tracing::warn!(destination = %dest.name, retry_after_ms = retry_after.as_millis() as u64, "vendor rate limit hit; holding off");
            let at_ms = now + retry_after.as_millis() as i64;
            live.iter()
                .map(|c| Settlement::Retry {
                    id: c.id,
                    at_ms,
                    error: message.clone(),
                    refund: true,
                })
                .collect()
        }
        Err(CallError::Auth { status, message }) => {
            let reason = format!(
                "HTTP {status} from the vendor: {message}; fix the credentials and reload (SIGHUP), or wait for the next probe"
            );
            if dest.paused_reason().is_none() {
                tracing::error!(destination = %dest.name, status, "authentication failed; destination PAUSED: {message}");
            }
            set_pause(dest, store, Some(reason.clone())).await;
            // The pause lives in the destination's limiter, not on the rows: they stay due, so
            // the next probe or a reload (a fresh engine, a fresh limiter) sends them at once.
            dest.limiter.hold_off(opts.probe_interval);
            live.iter()
                .map(|c| Settlement::Retry {
                    id: c.id,
                    at_ms: now,
                    error: reason.clone(),
                    refund: true,
                })
                .collect()
        }
        Err(CallError::Permanent { message }) => live
            .iter()
            .map(|c| Settlement::Dead {
                id: c.id,
                error: message.clone(),
            })
            .collect(),
    }
}

/// Pauses (Some) or resumes (None) a destination everywhere it is visible: workers, metrics, and
/// the store (so `tandem status` from another process shows it).
async fn set_pause(dest: &Destination, store: &dyn Store, reason: Option<String>) {
    let gauge = if reason.is_some() { 1.0 } else { 0.0 };
    metrics::gauge!("tandem_connector_paused", "connector" => dest.name.clone()).set(gauge);
    dest.set_paused(reason.clone());
    if let Err(e) = store.set_paused(&dest.name, reason).await {
        tracing::warn!(destination = %dest.name, error = %e, "could not record the pause state");
    }
}

fn retry_or_give_up(
    opts: &EngineOptions,
    c: &Claimed,
    error: &str,
    retry_after: Option<Duration>,
    now: i64,
    rng: &mut SmallRng,
) -> Settlement {
    let age = Duration::from_millis((now - c.created_at_ms).max(0) as u64);
    match opts.retry.next(c.attempts, age, retry_after, rng) {
        Next::RetryIn(d) => Settlement::Retry {
            id: c.id,
            at_ms: now + d.as_millis() as i64,
            error: error.to_owned(),
            refund: false,
        },
        Next::GiveUp => Settlement::Dead {
            id: c.id,
            error: format!(
                "gave up after {} attempts over {}s; last error: {error}",
                c.attempts,
                age.as_secs()
            ),
        },
    }
}
