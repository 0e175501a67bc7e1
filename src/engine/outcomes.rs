//! The deal side's poll loop: ask the CRM for deals changed since the cursor, plan each deal's
//! write-backs against what the store knew, and record the page, its write-backs and the next
//! cursor in one transaction, so a crash anywhere re-reads the page and loses nothing. A verified
//! CRM webhook rings [`outcome_waker`] to poll at once instead of at the next interval.

use std::{sync::Arc, time::Duration};

use rand::{SeedableRng, rngs::SmallRng};
use tandem_connectors::{CallError, outcome::OutcomeSource};
use tokio_util::sync::CancellationToken;

use super::{EngineOptions, Wakers, limits::DestinationLimiter, sources::wait_after_error};
use crate::{
    outcomes::{LoopConfig, deal_record},
    store::{OutcomeBatch, Store, sqlite::now_ms},
};

/// The waker a CRM's deal webhook rings.
pub fn outcome_waker(crm: &str) -> String {
    format!("outcomes:{crm}")
}

/// The cursor the loop keeps for `crm`.
pub fn outcome_cursor(crm: &str) -> String {
    format!("outcomes:{crm}")
}

/// Polls `source` until cancelled.
pub(super) async fn outcome_loop(
    source: Arc<dyn OutcomeSource>,
    cfg: Arc<LoopConfig>,
    store: Arc<dyn Store>,
    wakers: Arc<Wakers>,
    opts: EngineOptions,
    cancel: CancellationToken,
) {
    let crm = cfg.crm.clone();
    let cursor_name = outcome_cursor(&crm);
    let wake = wakers.get(&outcome_waker(&crm));
    let limiter = DestinationLimiter::new(source.rate_limit());
    let mut failures = 0u32;
    let mut rng = SmallRng::from_os_rng();
    // Shown by `tandem status` while the CRM refuses the deal poll's credentials.
    let pause_key = format!("{crm} (deal outcomes)");
    let mut paused = false;
    while !cancel.is_cancelled() {
        tokio::select! {
            _ = limiter.ready() => {}
            _ = cancel.cancelled() => break,
        }
        let wait = match poll_once(
            source.as_ref(),
            &cfg,
            store.as_ref(),
            &wakers,
            &opts,
            &cursor_name,
            &cancel,
        )
        .await
        {
            Ok(Some(more)) => {
                failures = 0;
                if std::mem::take(&mut paused) {
                    let _ = store.set_paused(&pause_key, None).await;
                    tracing::info!(crm = %crm, "deal outcomes readable again");
                }
                if more {
                    Duration::ZERO
                } else {
                    source.interval()
                }
            }
            Ok(None) => break,
            Err(e) => {
                failures += 1;
                metrics::counter!("tandem_outcome_polls_total", "crm" => crm.clone(), "result" => "error").increment(1);
                tracing::warn!(crm = %crm, error = %e, "polling deal outcomes failed");
                paused |= matches!(e, CallError::Auth { .. });
                wait_after_error(&pause_key, e, failures, &opts, &mut rng, store.as_ref()).await
            }
        };
        if wait.is_zero() {
            continue;
        }
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            // A CRM webhook: poll now (the poll, not the notification, is the truth).
            _ = wake.notified(), if failures == 0 => {}
            _ = cancel.cancelled() => break,
        }
    }
}

/// One page. `Ok(Some(more))` after a page was recorded, `Ok(None)` when cancelled.
async fn poll_once(
    source: &dyn OutcomeSource,
    cfg: &LoopConfig,
    store: &dyn Store,
    wakers: &Wakers,
    opts: &EngineOptions,
    cursor_name: &str,
    cancel: &CancellationToken,
) -> Result<Option<bool>, CallError> {
    let crm = &cfg.crm;
    let cursor = store.cursor(cursor_name).await.map_err(store_error)?;
    let page = tokio::select! {
        r = tokio::time::timeout(opts.call_timeout, source.poll_outcomes(cursor.as_deref())) => r.unwrap_or_else(|_| {
            Err(CallError::Transient { message: "the deal poll timed out".into(), retry_after: None })
        })?,
        _ = cancel.cancelled() => return Ok(None),
    };
    let keys = page
        .outcomes
        .iter()
        .map(|o| (o.deal_id.clone(), o.contacts.clone()))
        .collect();
    let contexts = store
        .outcome_context(crm, keys)
        .await
        .map_err(store_error)?;
    let now = now_ms();
    let deals = page
        .outcomes
        .into_iter()
        .zip(contexts)
        .map(|(o, ctx)| deal_record(cfg, o, ctx, now))
        .collect::<Vec<_>>();
    let seen = deals.len();
    let recorded = store
        .record_outcomes(OutcomeBatch {
            crm: crm.clone(),
            deals,
            cursor: Some((cursor_name.to_owned(), page.next_cursor)),
        })
        .await
        .map_err(store_error)?;
    metrics::counter!("tandem_outcome_polls_total", "crm" => crm.clone(), "result" => "ok")
        .increment(1);
    metrics::counter!("tandem_deal_changes_total", "crm" => crm.clone())
        .increment(recorded.changed as u64);
    for (destination, n) in &recorded.enqueued {
        metrics::counter!("tandem_writebacks_enqueued_total", "destination" => destination.clone())
            .increment(*n as u64);
        wakers.wake(destination);
    }
    if recorded.changed > 0 || !recorded.enqueued.is_empty() {
        tracing::info!(crm = %crm, deals = seen, changed = recorded.changed, writebacks = recorded.enqueued.values().sum::<usize>(), "deal outcomes recorded");
    }
    Ok(Some(page.more))
}

fn store_error(e: crate::store::StoreError) -> CallError {
    CallError::Transient {
        message: format!("the store: {e}"),
        retry_after: Some(Duration::from_secs(1)),
    }
}
