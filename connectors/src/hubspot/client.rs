//! [`HubspotClient`]: the [`LeadSink`] that upserts contacts by email in batches of 100. One call,
//! no retries: the engine owns retry scheduling, so every failure is classified and handed back.

use std::time::Duration;

use async_trait::async_trait;
use reqwest::{StatusCode, header::HeaderMap};
use secrecy::{ExposeSecret, SecretString};

use crate::{
    BuildError,
    model::SinkRecord,
    sink::{BatchOutcome, CallError, LeadSink, RateLimit},
};

use super::{
    HubspotConfig, batch, limits,
    wire::{ErrorBody, UpsertRequest, UpsertResponse},
};

/// HubSpot's documented cap on inputs per CRM batch request.
pub const MAX_BATCH: usize = 100;
const UPSERT_PATH: &str = "/crm/v3/objects/contacts/batch/upsert";
/// Enough of an unexpected (non-JSON) error body to recognise it, not enough to flood a log.
const BODY_EXCERPT: usize = 200;

/// Upserts contacts into one HubSpot account.
#[derive(Debug, Clone)]
pub struct HubspotClient {
    http: reqwest::Client,
    token: SecretString,
    upsert_url: reqwest::Url,
    rate_limit: RateLimit,
    id_property: Option<String>,
    timeout: Duration,
}

impl HubspotClient {
    pub fn new(config: &HubspotConfig, _ctx: crate::ConnectorContext) -> Result<Self, BuildError> {
        let base =
            super::parse_base_url(&config.base_url).map_err(|reason| BuildError::BaseUrl {
                url: config.base_url.clone(),
                reason,
            })?;
        let upsert_url = base
            .join(UPSERT_PATH.trim_start_matches('/'))
            .map_err(|e| BuildError::BaseUrl {
                url: config.base_url.clone(),
                reason: e.to_string(),
            })?;
        let http = reqwest::Client::builder()
            .user_agent(concat!("tandem/", env!("CARGO_PKG_VERSION")))
            .timeout(config.timeout.0)
            .connect_timeout(config.timeout.0.min(Duration::from_secs(10)))
            .build()
            .map_err(|e| BuildError::Http(e.to_string()))?;
        Ok(HubspotClient {
            http,
            token: config.token.clone(),
            upsert_url,
            rate_limit: config.effective_rate_limit(),
            id_property: config.id_property.clone().filter(|p| !p.trim().is_empty()),
            timeout: config.timeout.0,
        })
    }

    fn transport_error(&self, e: reqwest::Error) -> CallError {
        let message = if e.is_timeout() {
            format!(
                "HubSpot did not answer within {}",
                crate::units::HumanDuration(self.timeout)
            )
        } else if e.is_connect() {
            format!("could not connect to HubSpot: {}", error_chain(e))
        } else {
            format!("HubSpot connection failed: {}", error_chain(e))
        };
        CallError::Transient {
            message,
            retry_after: None,
        }
    }
}

/// reqwest's error and its causes on one line ("error sending request: connection reset"), since
/// the top-level text alone rarely says what happened.
fn error_chain(e: reqwest::Error) -> String {
    let e = e.without_url();
    let mut text = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(cause) = source {
        let part = cause.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = cause.source();
    }
    text
}

/// The error text HubSpot gave, or a short excerpt when the body isn't HubSpot JSON (a CDN page).
fn describe_error_body(status: StatusCode, body: &[u8]) -> String {
    match serde_json::from_slice::<ErrorBody>(body) {
        Ok(e) if !e.message.is_empty() => format!("HubSpot {}: {}", status.as_u16(), e.describe()),
        _ => {
            let text = String::from_utf8_lossy(body);
            let excerpt: String = text.trim().chars().take(BODY_EXCERPT).collect();
            if excerpt.is_empty() {
                format!("HubSpot answered {status} with an empty body")
            } else {
                format!("HubSpot answered {status}: {excerpt}")
            }
        }
    }
}

/// Classify a non-success status into what the engine should do.
fn classify(status: StatusCode, headers: &HeaderMap, body: &[u8]) -> CallError {
    let message = describe_error_body(status, body);
    match status.as_u16() {
        429 => CallError::RateLimited {
            message,
            retry_after: limits::throttle_wait(headers),
        },
        401 | 403 => CallError::Auth {
            status: status.as_u16(),
            message,
        },
        // Request timeout and "too early" are about the moment, not the data.
        408 | 425 => CallError::Transient {
            message,
            retry_after: limits::retry_after(headers),
        },
        s if s >= 500 => CallError::Transient {
            message,
            retry_after: limits::retry_after(headers),
        },
        _ => CallError::Permanent { message },
    }
}

#[async_trait]
impl LeadSink for HubspotClient {
    fn max_batch(&self) -> usize {
        MAX_BATCH
    }

    fn default_rate_limit(&self) -> RateLimit {
        self.rate_limit
    }

    async fn verify(&self, _fields: &[String]) -> Vec<String> {
        // Being written with HubSpot OAuth and conflict rules (issue 3).
        Vec::new()
    }

    async fn upsert_people(&self, batch: &[SinkRecord]) -> Result<BatchOutcome, CallError> {
        let prepared = batch::prepare(batch, self.id_property.as_deref(), MAX_BATCH);
        if prepared.inputs.is_empty() {
            return Ok(BatchOutcome {
                items: batch::map_response(prepared, UpsertResponse::default()),
                pause_for: None,
            });
        }
        let request = UpsertRequest {
            inputs: prepared.inputs.clone(),
        };
        let response = self
            .http
            .post(self.upsert_url.clone())
            .bearer_auth(self.token.expose_secret())
            .json(&request)
            .send()
            .await
            .map_err(|e| self.transport_error(e))?;
        let status = response.status();
        let headers = response.headers().clone();
        // A body cut off mid-way is a dropped connection: the write may have happened, and the
        // retry's upsert makes that harmless.
        let body = response
            .bytes()
            .await
            .map_err(|e| self.transport_error(e))?;
        if !(status == StatusCode::OK || status == StatusCode::MULTI_STATUS) {
            return Err(classify(status, &headers, &body));
        }
        let decoded: UpsertResponse =
            serde_json::from_slice(&body).map_err(|e| CallError::Transient {
                message: format!(
                    "HubSpot answered {status} with a body tandem could not read: {e}"
                ),
                retry_after: None,
            })?;
        Ok(BatchOutcome {
            items: batch::map_response(prepared, decoded),
            pause_for: limits::pause_after_success(&headers),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_map_to_what_the_engine_should_do() {
        let h = HeaderMap::new();
        let body = br#"{"status":"error","message":"bad","correlationId":"x","category":"VALIDATION_ERROR","errors":[{"message":"Property \"foo\" does not exist"}]}"#;
        match classify(StatusCode::BAD_REQUEST, &h, body) {
            CallError::Permanent { message } => {
                assert!(message.contains("VALIDATION_ERROR: bad"), "{message}");
                assert!(
                    message.contains("Property \"foo\" does not exist"),
                    "{message}"
                );
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            classify(StatusCode::CONFLICT, &h, b""),
            CallError::Permanent { .. }
        ));
        assert!(matches!(
            classify(StatusCode::FORBIDDEN, &h, b"{}"),
            CallError::Auth { status: 403, .. }
        ));
        for s in [500, 502, 503, 504, 521, 522, 523] {
            let status = StatusCode::from_u16(s).unwrap();
            assert!(matches!(
                classify(status, &h, b"<html>oops</html>"),
                CallError::Transient { .. }
            ));
        }
        assert_eq!(
            classify(StatusCode::TOO_MANY_REQUESTS, &h, b""),
            CallError::RateLimited {
                message: "HubSpot answered 429 Too Many Requests with an empty body".into(),
                retry_after: Duration::from_secs(10)
            }
        );
    }
}
