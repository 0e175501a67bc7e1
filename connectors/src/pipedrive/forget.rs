//! `tandem forget` for Pipedrive: one `DELETE /api/v2/persons/{id}` per person (Pipedrive has no
//! bulk delete). A person Pipedrive no longer has (404) counts as deleted. Pipedrive keeps a
//! deleted person restorable for 30 days before it purges it; see docs/crm/pipedrive.md.

use reqwest::{Method, StatusCode};

use crate::sink::{BatchOutcome, CallError, ForgetRecord, ItemResult};

use super::{
    client::{PipedriveClient, classify},
    limits::{self, Lane},
};

/// Deletes each record's person, in order. A throttle or outage before anything was deleted
/// fails the call; after that, the deleted keep their results and the rest are handed back as
/// transient. 401/403 always fail the call.
pub async fn run(c: &PipedriveClient, batch: &[ForgetRecord]) -> Result<BatchOutcome, CallError> {
    let mut items = Vec::with_capacity(batch.len());
    let mut pause_for = None;
    for (i, record) in batch.iter().enumerate() {
        let Ok(id) = record.remote_id.trim().parse::<u64>() else {
            items.push(ItemResult::Permanent {
                message: format!(
                    "{:?} is not a Pipedrive person id (a number); delete the person in Pipedrive by hand",
                    record.remote_id
                ),
            });
            continue;
        };
        let answer = c
            .request::<()>(
                Method::DELETE,
                &format!("api/v2/persons/{id}"),
                &[],
                None,
                Lane::General,
            )
            .await;
        let result = match answer {
            Ok(a) if a.status.is_success() || a.status == StatusCode::NOT_FOUND => {
                pause_for = limits::pause_after_success(&a.headers);
                Ok(ItemResult::Done {
                    remote_id: id.to_string(),
                    created: false,
                })
            }
            Ok(a) => match classify(&a) {
                CallError::Permanent { message } => Ok(ItemResult::Permanent { message }),
                other => Err(other),
            },
            Err(e) => Err(e),
        };
        match result {
            Ok(item) => items.push(item),
            Err(e @ CallError::Auth { .. }) => return Err(e),
            Err(e) if items.is_empty() => return Err(e),
            Err(e) => {
                let pause = match &e {
                    CallError::RateLimited { retry_after, .. } => Some(*retry_after),
                    CallError::Transient { retry_after, .. } => *retry_after,
                    _ => None,
                };
                let message = format!("not deleted in this call: {e}");
                items.extend(batch[i..].iter().map(|_| ItemResult::Transient {
                    message: message.clone(),
                }));
                return Ok(BatchOutcome {
                    items,
                    pause_for: pause.or(pause_for),
                });
            }
        }
    }
    Ok(BatchOutcome { items, pause_for })
}
