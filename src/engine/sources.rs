//! The engine's work for the marketing side: fetching leads that a notification announced by id
//! only (Meta), and polling platforms that don't push (LinkedIn, Mailchimp, Brevo, Klaviyo).
//! Both end in the same admission path as webhooks, and both keep the engine's promises: a fetch
//! is durable before the platform hears 200 and is retried with backoff; a polled page and its
//! cursor are committed in one transaction, so a crash between fetch and commit re-polls and
//! loses nothing (duplicates from the overlap are dropped by event id).

use std::{sync::Arc, time::Duration};

use rand::{SeedableRng, rngs::SmallRng};
use tandem_connectors::{
    CallError,
    source::{FetchRequest, LeadFetcher, PolledSource},
};
use tokio_util::sync::CancellationToken;

use super::{EngineOptions, Wakers, limits::DestinationLimiter, retry::Next};
use crate::{
    daemon::runtime::Runtime,
    intake::admit::admit,
    store::{Settlement, Store, sqlite::now_ms},
};

/// Fetches announced leads of one source until cancelled.
pub(super) async fn fetch_worker(
    source: String,
    fetcher: Arc<dyn LeadFetcher>,
    runtime: Arc<Runtime>,
    store: Arc<dyn Store>,
    wakers: Arc<Wakers>,
    opts: EngineOptions,
    cancel: CancellationToken,
) {
    let wake = wakers.get(&crate::intake::fetch_waker(&source));
    let owner = format!(
        "{}/fetch/{source}/{}",
        std::process::id(),
        uuid::Uuid::now_v7().simple()
    );
    let limiter = DestinationLimiter::new(fetcher.rate_limit());
    let mut rng = SmallRng::from_os_rng();
    while !cancel.is_cancelled() {
        if let Some(wait) = limiter.vendor_wait() {
            if sleep_or_cancel(wait.min(Duration::from_secs(5)), &cancel).await {
                break;
            }
            continue;
        }
        let claimed = match store.claim_fetches(&source, &owner, 10, opts.lease).await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(source = %source, error = %e, "claiming fetches failed; retrying shortly");
                if sleep_or_cancel(Duration::from_secs(1), &cancel).await {
                    break;
                }
                continue;
            }
        };
        if claimed.is_empty() {
            tokio::select! {
                _ = wake.notified() => {}
                _ = tokio::time::sleep(opts.idle_poll) => {}
                _ = cancel.cancelled() => break,
            }
            continue;
        }
        for fetch in claimed {
            if cancel.is_cancelled() {
                break;
            }
            limiter.ready().await;
            let now = now_ms();
            let request: FetchRequest = match serde_json::from_str(&fetch.request_json) {
                Ok(r) => r,
                Err(e) => {
                    let dead = Settlement::Dead {
                        id: fetch.id,
                        error: format!("stored request is unreadable: {e}"),
                    };
                    let _ = store.settle_fetches(vec![dead]).await;
                    continue;
                }
            };
            let result =
                match tokio::time::timeout(opts.call_timeout, fetcher.fetch(&request)).await {
                    Ok(r) => r,
                    Err(_) => Err(CallError::Transient {
                        message: "the fetch timed out".into(),
                        retry_after: None,
                    }),
                };
            let settlement = match result {
                Ok(lead) => {
                    let Some(src) = runtime.sources.get(&source) else {
                        break;
                    };
                    match admit(
                        &runtime,
                        &source,
                        src,
                        lead,
                        None,
                        Some(request.event_id.clone()),
                        now,
                    ) {
                        Ok(new) => {
                            let destinations: Vec<String> = new
                                .deliveries
                                .iter()
                                .map(|d| d.destination.clone())
                                .collect();
                            match store.complete_fetch(fetch.id, new).await {
                                Ok(_) => {
                                    metrics::counter!("tandem_fetches_total", "source" => source.clone(), "outcome" => "done").increment(1);
                                    for d in destinations {
                                        wakers.wake(&d);
                                    }
                                    None
                                }
                                Err(e) => Some(Settlement::Retry {
                                    id: fetch.id,
                                    at_ms: now + 1000,
                                    error: e.to_string(),
                                    refund: true,
                                }),
                            }
                        }
                        Err(e) => Some(Settlement::Dead {
                            id: fetch.id,
                            error: format!("{}: {}", e.field, e.reason),
                        }),
                    }
                }
                Err(CallError::RateLimited {
                    message,
                    retry_after,
                }) => {
                    limiter.hold_off(retry_after);
                    Some(Settlement::Retry {
                        id: fetch.id,
                        at_ms: now + retry_after.as_millis() as i64,
                        error: message,
                        refund: true,
                    })
                }
                Err(CallError::Auth { status, message }) => {
                    let reason = format!(
                        "HTTP {status} from the vendor: {message}; fix the credentials and reload (SIGHUP)"
                    );
                    tracing::error!(source = %source, status, "fetching leads failed: authentication; source PAUSED");
                    let _ = store.set_paused(&source, Some(reason.clone())).await;
                    limiter.hold_off(opts.probe_interval);
                    Some(Settlement::Retry {
                        id: fetch.id,
                        at_ms: now,
                        error: reason,
                        refund: true,
                    })
                }
                Err(CallError::Permanent { message }) => Some(Settlement::Dead {
                    id: fetch.id,
                    error: message,
                }),
                Err(CallError::Transient {
                    message,
                    retry_after,
                }) => {
                    let age = Duration::from_millis((now - fetch.created_at_ms).max(0) as u64);
                    Some(
                        match opts.retry.next(fetch.attempts, age, retry_after, &mut rng) {
                            Next::RetryIn(d) => Settlement::Retry {
                                id: fetch.id,
                                at_ms: now + d.as_millis() as i64,
                                error: message,
                                refund: false,
                            },
                            Next::GiveUp => Settlement::Dead {
                                id: fetch.id,
                                error: format!(
                                    "gave up after {} attempts; last error: {message}",
                                    fetch.attempts
                                ),
                            },
                        },
                    )
                }
            };
            if let Some(s) = settlement {
                let outcome = if matches!(s, Settlement::Dead { .. }) {
                    "dead"
                } else {
                    "retry"
                };
                metrics::counter!("tandem_fetches_total", "source" => source.clone(), "outcome" => outcome).increment(1);
                if let Err(e) = store.settle_fetches(vec![s]).await {
                    tracing::error!(source = %source, error = %e, "could not record a fetch result; its lease will expire");
                }
            }
        }
    }
    let _ = store.release_owner(&owner).await;
}

/// Polls one source until cancelled.
pub(super) async fn poll_loop(
    source: String,
    poller: Arc<dyn PolledSource>,
    runtime: Arc<Runtime>,
    store: Arc<dyn Store>,
    wakers: Arc<Wakers>,
    opts: EngineOptions,
    cancel: CancellationToken,
) {
    let mut failures = 0u32;
    let mut rng = SmallRng::from_os_rng();
    let limiter = poller.rate_limit().map(DestinationLimiter::new);
    while !cancel.is_cancelled() {
        if let Some(limiter) = &limiter {
            tokio::select! {
                _ = limiter.ready() => {}
                _ = cancel.cancelled() => break,
            }
        }
        let cursor = match store.cursor(&source).await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(source = %source, error = %e, "reading the cursor failed");
                if sleep_or_cancel(Duration::from_secs(1), &cancel).await {
                    break;
                }
                continue;
            }
        };
        let result = tokio::select! {
            r = tokio::time::timeout(opts.call_timeout, poller.poll(cursor.as_deref())) => r.unwrap_or_else(|_| {
                Err(CallError::Transient { message: "the poll timed out".into(), retry_after: None })
            }),
            _ = cancel.cancelled() => break,
        };
        let wait = match result {
            Ok(page) => {
                failures = 0;
                let now = now_ms();
                let Some(src) = runtime.sources.get(&source) else {
                    break;
                };
                let mut leads = Vec::with_capacity(page.leads.len());
                for lead in page.leads {
                    match admit(&runtime, &source, src, lead, None, None, now) {
                        Ok(new) => leads.push(new),
                        Err(e) => {
                            // The platform's record can't become a lead (no usable email or phone).
                            metrics::counter!("tandem_leads_rejected_total", "connector" => source.clone(), "reason" => "invalid_field").increment(1);
                            tracing::warn!(source = %source, field = %e.field, "skipped a polled record: {}", e.reason);
                        }
                    }
                }
                let destinations: std::collections::BTreeSet<String> = leads
                    .iter()
                    .flat_map(|l| l.deliveries.iter().map(|d| d.destination.clone()))
                    .collect();
                match store.ingest_page(leads, &source, &page.next_cursor).await {
                    Ok(ingested) => {
                        let new = ingested.iter().filter(|i| !i.duplicate).count();
                        metrics::counter!("tandem_leads_received_total", "connector" => source.clone(), "outcome" => "stored").increment(new as u64);
                        metrics::counter!("tandem_polls_total", "source" => source.clone(), "result" => "ok").increment(1);
                        for d in destinations {
                            wakers.wake(&d);
                        }
                        if page.more {
                            Duration::ZERO
                        } else {
                            poller.interval()
                        }
                    }
                    Err(e) => {
                        tracing::error!(source = %source, error = %e, "could not store a polled page; polling again from the old cursor");
                        Duration::from_secs(1)
                    }
                }
            }
            Err(e) => {
                failures += 1;
                metrics::counter!("tandem_polls_total", "source" => source.clone(), "result" => "error").increment(1);
                wait_after_error(&source, e, failures, &opts, &mut rng, store.as_ref()).await
            }
        };
        if !wait.is_zero() && sleep_or_cancel(wait, &cancel).await {
            break;
        }
    }
}

/// How long a poll loop waits after a failed poll: a throttle's own wait, the probe interval
/// after an auth failure (the source is marked paused, loudly), backoff after a transient one.
pub(super) async fn wait_after_error(
    name: &str,
    e: CallError,
    failures: u32,
    opts: &EngineOptions,
    rng: &mut SmallRng,
    store: &dyn Store,
) -> Duration {
    match e {
        CallError::RateLimited { retry_after, .. } => retry_after,
        CallError::Auth { status, message } => {
            let reason = format!(
                "HTTP {status} from the vendor: {message}; fix the credentials and reload (SIGHUP)"
            );
            tracing::error!(connector = %name, status, "polling failed: authentication; PAUSED");
            let _ = store.set_paused(name, Some(reason)).await;
            opts.probe_interval
        }
        CallError::Transient { retry_after, .. } => {
            match opts
                .retry
                .next(failures.min(20), Duration::ZERO, retry_after, rng)
            {
                Next::RetryIn(d) => d.max(Duration::from_millis(200)),
                Next::GiveUp => opts.retry.cap,
            }
        }
        CallError::Permanent { message } => {
            tracing::error!(connector = %name, "polling refused by the vendor: {message}");
            opts.retry.cap
        }
    }
}

pub(super) async fn sleep_or_cancel(d: Duration, cancel: &CancellationToken) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(d) => false,
        _ = cancel.cancelled() => true,
    }
}
