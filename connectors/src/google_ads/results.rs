//! One batch's results when it takes several Google calls (one `events:ingest` per conversion
//! action; uploads and adjustments apart): each item's result is set as its call answers. A call
//! that fails as a whole before any other was answered fails the batch (the engine retries it
//! and Google's dedup makes the resend harmless); once something was accepted, a later failing
//! call only marks its own items, so accepted ones are not reported as failed. Auth failures
//! always fail the batch: pausing the connector matters more than the bookkeeping.

use std::time::Duration;

use crate::sink::{BatchOutcome, CallError, ItemResult};

pub struct Results {
    items: Vec<Option<ItemResult>>,
    answered: bool,
    pause_for: Option<Duration>,
}

impl Results {
    pub fn new(len: usize) -> Self {
        Results {
            items: vec![None; len],
            answered: false,
            pause_for: None,
        }
    }

    pub fn set(&mut self, index: usize, result: ItemResult) {
        if let Some(slot) = self.items.get_mut(index) {
            *slot = Some(result);
        }
    }

    /// A call got an answer (whatever it said about its items).
    pub fn answered(&mut self) {
        self.answered = true;
    }

    /// The call carrying `indexes` failed as a whole with `error`.
    pub fn call_failed(&mut self, indexes: &[usize], error: CallError) -> Result<(), CallError> {
        if !self.answered || matches!(error, CallError::Auth { .. }) {
            return Err(error);
        }
        let result = match error {
            CallError::RateLimited {
                message,
                retry_after,
            } => {
                self.pause_for = Some(self.pause_for.map_or(retry_after, |p| p.max(retry_after)));
                ItemResult::Transient { message }
            }
            CallError::Transient { message, .. } => ItemResult::Transient { message },
            CallError::Permanent { message } | CallError::Auth { message, .. } => {
                ItemResult::Permanent { message }
            }
        };
        // Items an earlier round of the same call already settled keep their result.
        for &i in indexes {
            if let Some(slot @ None) = self.items.get_mut(i) {
                *slot = Some(result.clone());
            }
        }
        Ok(())
    }

    pub fn finish(self) -> BatchOutcome {
        BatchOutcome {
            items: self
                .items
                .into_iter()
                .map(|r| {
                    r.unwrap_or_else(|| ItemResult::Transient {
                        message: "Google gave no answer for this conversion".to_owned(),
                    })
                })
                .collect(),
            pause_for: self.pause_for,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn later_failures_mark_only_their_items() {
        let mut r = Results::new(3);
        let throttled = CallError::RateLimited {
            message: "slow down".into(),
            retry_after: Duration::from_secs(30),
        };
        assert_eq!(
            r.call_failed(&[0], throttled.clone()),
            Err(throttled.clone())
        );
        r.set(
            0,
            ItemResult::Done {
                remote_id: "k".into(),
                created: true,
            },
        );
        r.answered();
        r.call_failed(&[1, 2], throttled).unwrap();
        let auth = CallError::Auth {
            status: 401,
            message: "x".into(),
        };
        assert_eq!(r.call_failed(&[2], auth.clone()), Err(auth));
        let out = r.finish();
        assert_eq!(out.pause_for, Some(Duration::from_secs(30)));
        assert!(matches!(out.items[0], ItemResult::Done { .. }));
        assert_eq!(
            out.items[1],
            ItemResult::Transient {
                message: "slow down".into()
            }
        );
    }
}
