//! [`MetaCapiSink`]: a batch of conversions → one `POST /{api_version}/{dataset_id}/events`
//! (1,000 events at most), no retries of its own (the daemon owns them). Conversions Meta would
//! refuse (stale, unmatchable, adjustments) are refused per item before the request; a request
//! Meta refuses as a whole refuses every event in it, with Meta's own message.

use std::time::Duration;

use async_trait::async_trait;
use reqwest::Url;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::{
    BuildError, ConnectorContext,
    sink::{BatchOutcome, CallError, ItemResult, RateLimit},
    writeback::{Conversion, Milestone, WritebackAction, WritebackSink},
};

use super::{EventNames, MAX_EVENTS, MetaCapiConfig, event, valid_api_version};
use crate::meta_graph as graph;

fn now_ms() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}

/// `{"events_received":N,"messages":[],"fbtrace_id":"…"}`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct EventsResponse {
    pub events_received: Option<u64>,
    pub messages: Vec<Value>,
    pub fbtrace_id: Option<String>,
}

/// The write-back side of one `meta_capi` connector.
pub struct MetaCapiSink {
    http: reqwest::Client,
    events_url: Url,
    dataset_url: Url,
    dataset_id: String,
    token: SecretString,
    names: EventNames,
    test_event_code: Option<String>,
    lead_event_source: Option<String>,
    rate_limit: RateLimit,
    timeout: Duration,
}

impl std::fmt::Debug for MetaCapiSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetaCapiSink")
            .field("events_url", &self.events_url.as_str())
            .field("token", &"[redacted]")
            .finish_non_exhaustive()
    }
}

impl MetaCapiSink {
    pub fn new(config: &MetaCapiConfig, _ctx: ConnectorContext) -> Result<Self, BuildError> {
        let raw = config.base_url.trim().to_owned();
        let bad = |reason: String| BuildError::BaseUrl {
            url: raw.clone(),
            reason,
        };
        let base = crate::hubspot::parse_base_url(&raw).map_err(bad)?;
        let version = config.api_version.trim();
        if !valid_api_version(version) {
            return Err(BuildError::Http(format!(
                "`api_version` {version:?} is not a Graph API version"
            )));
        }
        let dataset_id = config.dataset_id.trim().to_owned();
        if dataset_id.is_empty() || !dataset_id.bytes().all(|b| b.is_ascii_digit()) {
            return Err(BuildError::Http(
                "`dataset_id` is not a dataset id".to_owned(),
            ));
        }
        let token = match &config.access_token {
            Some(t) if !t.expose_secret().trim().is_empty() => t.clone(),
            _ => return Err(BuildError::Http("`access_token` is missing".to_owned())),
        };
        let dataset_url = base
            .join(&format!("{version}/{dataset_id}"))
            .map_err(|e| bad(e.to_string()))?;
        let events_url = base
            .join(&format!("{version}/{dataset_id}/events"))
            .map_err(|e| bad(e.to_string()))?;
        let http = reqwest::Client::builder()
            .user_agent(concat!("tandem/", env!("CARGO_PKG_VERSION")))
            .timeout(config.timeout.0)
            .connect_timeout(config.timeout.0.min(Duration::from_secs(10)))
            .build()
            .map_err(|e| BuildError::Http(e.to_string()))?;
        Ok(MetaCapiSink {
            http,
            events_url,
            dataset_url,
            dataset_id,
            token,
            names: config.event_names.clone(),
            test_event_code: config
                .test_event_code
                .as_deref()
                .map(str::trim)
                .map(str::to_owned),
            lead_event_source: config.lead_event_source.clone(),
            rate_limit: config.effective_rate_limit(),
            timeout: config.timeout.0,
        })
    }

    /// Never `e.to_string()`: reqwest's text carries the URL, and the URL carries the token.
    fn transport_error(&self, e: &reqwest::Error) -> CallError {
        let message = if e.is_timeout() {
            format!(
                "Meta did not answer within {}",
                crate::units::HumanDuration(self.timeout)
            )
        } else if e.is_connect() {
            "could not connect to Meta's Graph API".to_owned()
        } else if e.is_body() || e.is_decode() {
            "the connection to Meta broke off mid-answer".to_owned()
        } else {
            "the request to Meta's Graph API failed".to_owned()
        };
        CallError::Transient {
            message,
            retry_after: None,
        }
    }

    /// One request; the answer's body on success, the classified failure otherwise.
    async fn call(&self, request: reqwest::RequestBuilder) -> Result<Vec<u8>, CallError> {
        let response = request
            .query(&[("access_token", self.token.expose_secret())])
            .send()
            .await
            .map_err(|e| self.transport_error(&e))?;
        let status = response.status();
        let headers = response.headers().clone();
        let body = response
            .bytes()
            .await
            .map_err(|e| self.transport_error(&e))?;
        if !status.is_success() {
            return Err(graph::classify(status, &headers, &body));
        }
        Ok(body.to_vec())
    }

    /// Posts `events` (≤ [`MAX_EVENTS`]) and checks Meta took every one.
    async fn post(&self, events: Vec<Value>) -> Result<(), CallError> {
        let count = events.len() as u64;
        let mut body = json!({ "data": events });
        if let Some(code) = &self.test_event_code {
            body["test_event_code"] = Value::from(code.as_str());
        }
        let answer = self
            .call(self.http.post(self.events_url.clone()).json(&body))
            .await?;
        let parsed = serde_json::from_slice::<EventsResponse>(&answer).unwrap_or_default();
        match parsed.events_received {
            Some(n) if n == count => Ok(()),
            // Sending again is safe (Meta dedups on event_id + event_name); guessing which
            // events were dropped is not.
            Some(n) => Err(CallError::Transient {
                message: format!(
                    "Meta confirmed {n} of {count} events; sending them again (Meta deduplicates on event_id)"
                ),
                retry_after: None,
            }),
            None => Err(CallError::Transient {
                message: "Meta's answer did not say how many events it received; sending them again (Meta deduplicates on event_id)".to_owned(),
                retry_after: None,
            }),
        }
    }
}

/// One result per conversion, in order.
fn finish(items: Vec<Option<ItemResult>>, pause_for: Option<Duration>) -> BatchOutcome {
    BatchOutcome {
        items: items
            .into_iter()
            .map(|r| {
                r.unwrap_or(ItemResult::Transient {
                    message: "not sent".to_owned(),
                })
            })
            .collect(),
        pause_for,
    }
}

#[async_trait]
impl WritebackSink for MetaCapiSink {
    fn max_batch(&self) -> usize {
        MAX_EVENTS
    }

    fn default_rate_limit(&self) -> RateLimit {
        self.rate_limit
    }

    fn accepts(&self, milestone: Milestone) -> bool {
        self.names.get(milestone).is_some()
    }

    fn supports(&self, action: WritebackAction) -> bool {
        action == WritebackAction::Send
    }

    async fn send(&self, batch: &[Conversion]) -> Result<BatchOutcome, CallError> {
        let now = now_ms();
        let mut items: Vec<Option<ItemResult>> = vec![None; batch.len()];
        let mut events: Vec<Value> = vec![Value::Null; batch.len()];
        let mut sent = Vec::new();
        for (i, c) in batch.iter().enumerate() {
            match event::build(c, &self.names, self.lead_event_source.as_deref(), now) {
                Ok(e) => {
                    events[i] = e;
                    sent.push(i);
                }
                Err(message) => items[i] = Some(ItemResult::Permanent { message }),
            }
        }
        // In the batch's order, in requests of at most 1,000 (the daemon's batches already are).
        let mut posted = 0;
        for chunk in sent.chunks(MAX_EVENTS) {
            let chunk_events: Vec<Value> = chunk
                .iter()
                .map(|&i| std::mem::take(&mut events[i]))
                .collect();
            let result = match self.post(chunk_events).await {
                Ok(()) => None,
                // Meta refused the request as a whole: every event sent in it is refused with
                // Meta's words; those refused before sending keep their own reason.
                Err(CallError::Permanent { message }) => Some(message),
                // Nothing confirmed yet, or the token is bad: the whole call failed. Otherwise
                // what was confirmed stands and the rest waits (Meta dedups whatever is sent
                // again).
                Err(e) if posted == 0 || matches!(e, CallError::Auth { .. }) => return Err(e),
                Err(e) => {
                    let pause_for = match &e {
                        CallError::RateLimited { retry_after, .. } => Some(*retry_after),
                        _ => None,
                    };
                    let message = e.to_string();
                    for &i in &sent[posted..] {
                        items[i] = Some(ItemResult::Transient {
                            message: message.clone(),
                        });
                    }
                    return Ok(finish(items, pause_for));
                }
            };
            for &i in chunk {
                items[i] = Some(match &result {
                    Some(message) => ItemResult::Permanent {
                        message: message.clone(),
                    },
                    None => ItemResult::Done {
                        remote_id: batch[i].key.clone(),
                        created: true,
                    },
                });
            }
            posted += chunk.len();
        }
        Ok(finish(items, None))
    }

    async fn verify(&self) -> Vec<String> {
        let request = self
            .http
            .get(self.dataset_url.clone())
            .query(&[("fields", "id,name")]);
        let id = &self.dataset_id;
        match self.call(request).await {
            Ok(body) => {
                let seen = serde_json::from_slice::<Value>(&body)
                    .ok()
                    .and_then(|v| v.get("id").and_then(Value::as_str).map(str::to_owned));
                if seen.as_deref() == Some(id.as_str()) {
                    Vec::new()
                } else {
                    vec![format!(
                        "Meta answered for dataset {id} without its id; check that `dataset_id` is the dataset (pixel) id from Events Manager"
                    )]
                }
            }
            Err(CallError::Auth { message, .. }) => vec![format!(
                "Meta refused the access token ({message}); generate a new one (a system user with ads_management and access to dataset {id}) and update `access_token`"
            )],
            Err(CallError::Permanent { message }) => vec![format!(
                "dataset {id} can't be used ({message}); check `dataset_id` and that the token's system user was given access to the dataset"
            )],
            Err(e) => vec![format!("could not check dataset {id} now ({e}); try again")],
        }
    }
}
