//! [`HubspotClient`]: the [`LeadSink`] that upserts contacts by email in batches of 100. One call
//! per batch (two when a record carries an `on_conflict` rule), no retries: the engine owns retry
//! scheduling, so every failure is classified and handed back. The one exception is OAuth: a 401
//! on an OAuth access token gets one refresh and one retry before it becomes an auth error.

use std::time::Duration;

use async_trait::async_trait;
use reqwest::{StatusCode, header::HeaderMap};

use crate::{
    BuildError,
    model::SinkRecord,
    sink::{BatchOutcome, CallError, ForgetRecord, ItemResult, LeadSink, RateLimit},
};

use super::{
    AuthMode, HubspotConfig,
    auth::{Auth, OAuthCredentials},
    batch, conflict, limits, verify,
    wire::{BatchReadResponse, ErrorBody, PropertiesResponse, UpsertRequest, UpsertResponse},
};

/// HubSpot's documented cap on inputs per CRM batch request.
pub const MAX_BATCH: usize = 100;
const UPSERT_PATH: &str = "/crm/v3/objects/contacts/batch/upsert";
const READ_PATH: &str = "/crm/v3/objects/contacts/batch/read";
const PROPERTIES_PATH: &str = "/crm/v3/properties/contacts";
const GDPR_DELETE_PATH: &str = "/crm/v3/objects/contacts/gdpr-delete";
/// Enough of an unexpected (non-JSON) error body to recognise it, not enough to flood a log.
const BODY_EXCERPT: usize = 200;

/// Upserts contacts into one HubSpot account.
#[derive(Debug, Clone)]
pub struct HubspotClient {
    http: reqwest::Client,
    /// The configured API root, with a trailing slash (the deal side joins its own paths).
    base: reqwest::Url,
    auth: Auth,
    upsert_url: reqwest::Url,
    read_url: reqwest::Url,
    properties_url: reqwest::Url,
    gdpr_delete_url: reqwest::Url,
    rate_limit: RateLimit,
    id_property: Option<String>,
    timeout: Duration,
}

/// One HTTP answer, read to the end.
pub(crate) struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl HubspotClient {
    pub fn new(config: &HubspotConfig, ctx: crate::ConnectorContext) -> Result<Self, BuildError> {
        let base =
            super::parse_base_url(&config.base_url).map_err(|reason| BuildError::BaseUrl {
                url: config.base_url.clone(),
                reason,
            })?;
        let join = |path: &str| {
            base.join(path.trim_start_matches('/'))
                .map_err(|e| BuildError::BaseUrl {
                    url: config.base_url.clone(),
                    reason: e.to_string(),
                })
        };
        let http = reqwest::Client::builder()
            .user_agent(concat!("tandem/", env!("CARGO_PKG_VERSION")))
            .timeout(config.timeout.0)
            .connect_timeout(config.timeout.0.min(Duration::from_secs(10)))
            .build()
            .map_err(|e| BuildError::Http(e.to_string()))?;
        let auth = match (config.auth_mode(), &config.token) {
            (Some(AuthMode::PrivateApp), Some(token)) => Auth::PrivateApp(token.clone()),
            (Some(AuthMode::OAuth), _) => {
                let token_url =
                    config
                        .effective_token_url()
                        .map_err(|reason| BuildError::BaseUrl {
                            url: config.token_url.clone().unwrap_or_default(),
                            reason,
                        })?;
                let creds = OAuthCredentials {
                    token_url,
                    client_id: config.client_id.clone().unwrap_or_default(),
                    client_secret: config.client_secret.clone().unwrap_or_default(),
                    refresh_token: config.refresh_token.clone().unwrap_or_default(),
                };
                Auth::oauth(creds, http.clone(), ctx.state.clone())
            }
            _ => {
                return Err(BuildError::Http(
                    "no usable HubSpot credentials: set `token`, or `client_id`, `client_secret` and `refresh_token`".to_owned(),
                ));
            }
        };
        Ok(HubspotClient {
            upsert_url: join(UPSERT_PATH)?,
            read_url: join(READ_PATH)?,
            properties_url: join(PROPERTIES_PATH)?,
            gdpr_delete_url: join(GDPR_DELETE_PATH)?,
            http,
            base,
            auth,
            rate_limit: config.effective_rate_limit(),
            id_property: config.id_property.clone().filter(|p| !p.trim().is_empty()),
            timeout: config.timeout.0,
        })
    }

    /// `path` (no leading slash needed) under the configured base URL.
    pub(crate) fn endpoint(&self, path: &str) -> Result<reqwest::Url, BuildError> {
        self.base
            .join(path.trim_start_matches('/'))
            .map_err(|e| BuildError::BaseUrl {
                url: self.base.to_string(),
                reason: e.to_string(),
            })
    }

    /// The HTTP client, for requests built by the deal side.
    pub(crate) fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// Whether this client authenticates as an OAuth app.
    pub fn uses_oauth(&self) -> bool {
        self.auth.is_oauth()
    }

    /// One authenticated request. A 401 on an OAuth token gets one refreshed token (unless a
    /// concurrent call already refreshed it) and one retry; any other answer is returned as is.
    pub(crate) async fn call(
        &self,
        build: impl Fn(&str) -> reqwest::RequestBuilder,
    ) -> Result<Answer, CallError> {
        let bearer = self.auth.bearer().await?;
        let answer = self.send(build(&bearer.value)).await?;
        if answer.status == StatusCode::UNAUTHORIZED
            && let Some(fresh) = self.auth.after_rejection(&bearer).await?
        {
            return self.send(build(&fresh.value)).await;
        }
        Ok(answer)
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> Result<Answer, CallError> {
        let response = request.send().await.map_err(|e| self.transport_error(e))?;
        let status = response.status();
        let headers = response.headers().clone();
        // A body cut off mid-way is a dropped connection: the write may have happened, and the
        // retry's upsert makes that harmless.
        let body = response
            .bytes()
            .await
            .map_err(|e| self.transport_error(e))?;
        Ok(Answer {
            status,
            headers,
            body: body.to_vec(),
        })
    }

    /// Reads the current values of the rule-bearing properties of the contacts in this batch
    /// (one `batch/read` per id property in use: one, unless `id_property` keys some leads).
    async fn read_existing(
        &self,
        batch: &[SinkRecord],
        prepared: &batch::Prepared,
    ) -> Result<conflict::Existing, CallError> {
        let mut existing = conflict::Existing::default();
        for request in conflict::read_requests(batch, prepared) {
            let id_property = request.id_property.clone().unwrap_or_default();
            let answer = self
                .call(|token| {
                    self.http
                        .post(self.read_url.clone())
                        .bearer_auth(token)
                        .json(&request)
                })
                .await?;
            if !(answer.status == StatusCode::OK || answer.status == StatusCode::MULTI_STATUS) {
                return Err(classify(answer.status, &answer.headers, &answer.body));
            }
            let decoded: BatchReadResponse =
                serde_json::from_slice(&answer.body).map_err(|e| CallError::Transient {
                    message: format!(
                        "HubSpot answered {} to the batch read with a body tandem could not read: {e}",
                        answer.status
                    ),
                    retry_after: None,
                })?;
            conflict::index(&mut existing, &id_property, decoded)?;
        }
        Ok(existing)
    }

    /// One GDPR delete by contact id: 204 = deleted; 404 = HubSpot has no such contact (already
    /// deleted, by us or by hand), which is what a forget wants too.
    async fn gdpr_delete(&self, record: &ForgetRecord) -> Result<ItemResult, CallError> {
        let body = super::wire::GdprDeleteInput {
            object_id: record.remote_id.clone(),
            id_property: None,
        };
        let answer = self
            .call(|token| {
                self.http
                    .post(self.gdpr_delete_url.clone())
                    .bearer_auth(token)
                    .json(&body)
            })
            .await?;
        match answer.status {
            s if s.is_success() || s == StatusCode::NOT_FOUND => Ok(ItemResult::Done {
                remote_id: record.remote_id.clone(),
                created: false,
            }),
            s => Err(classify(s, &answer.headers, &answer.body)),
        }
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
pub(crate) fn classify(status: StatusCode, headers: &HeaderMap, body: &[u8]) -> CallError {
    let message = describe_error_body(status, body);
    CallError::from_status(
        status.as_u16(),
        message,
        limits::throttle_wait(headers),
        limits::retry_after(headers),
    )
}

#[async_trait]
impl LeadSink for HubspotClient {
    fn max_batch(&self) -> usize {
        MAX_BATCH
    }

    fn default_rate_limit(&self) -> RateLimit {
        self.rate_limit
    }

    async fn verify(&self, fields: &[String]) -> Vec<String> {
        let answer = self
            .call(|token| {
                self.http
                    .get(self.properties_url.clone())
                    .query(&[("archived", "false")])
                    .bearer_auth(token)
            })
            .await;
        let answer = match answer {
            Ok(a) if a.status.is_success() => a,
            Ok(a) => {
                return vec![verify::call_problem(&classify(
                    a.status, &a.headers, &a.body,
                ))];
            }
            Err(e) => return vec![verify::call_problem(&e)],
        };
        match serde_json::from_slice::<PropertiesResponse>(&answer.body) {
            Ok(list) => verify::check(&list.results, fields),
            Err(e) => vec![format!(
                "HubSpot's list of contact properties could not be read ({e}); try again, and check base_url points at HubSpot's API"
            )],
        }
    }

    fn supports_forget(&self) -> bool {
        true
    }

    /// `POST /crm/v3/objects/contacts/gdpr-delete`, one contact per call (HubSpot has no batch
    /// form). A lone record's failure is the call's; in a longer batch the records after a
    /// throttle or outage are handed back as transient, never sent.
    async fn forget(&self, batch: &[ForgetRecord]) -> Result<BatchOutcome, CallError> {
        let mut items = Vec::with_capacity(batch.len());
        for (i, record) in batch.iter().enumerate() {
            match self.gdpr_delete(record).await {
                Ok(item) => items.push(item),
                Err(e) if batch.len() == 1 => return Err(e),
                Err(CallError::Permanent { message }) => {
                    items.push(ItemResult::Permanent { message })
                }
                Err(e) => {
                    let message = e.to_string();
                    items.extend(batch[i..].iter().map(|_| ItemResult::Transient {
                        message: message.clone(),
                    }));
                    break;
                }
            }
        }
        Ok(BatchOutcome {
            items,
            pause_for: None,
        })
    }

    async fn upsert_people(&self, batch: &[SinkRecord]) -> Result<BatchOutcome, CallError> {
        let mut prepared = batch::prepare(batch, self.id_property.as_deref(), MAX_BATCH);
        if prepared.inputs.is_empty() {
            return Ok(BatchOutcome {
                items: batch::map_response(prepared, UpsertResponse::default()),
                pause_for: None,
            });
        }
        if conflict::needs_read(batch, &prepared) {
            let existing = self.read_existing(batch, &prepared).await?;
            conflict::apply(batch, &mut prepared, &existing);
        }
        let request = UpsertRequest {
            inputs: prepared.inputs.clone(),
        };
        let answer = self
            .call(|token| {
                self.http
                    .post(self.upsert_url.clone())
                    .bearer_auth(token)
                    .json(&request)
            })
            .await?;
        let Answer {
            status,
            headers,
            body,
        } = answer;
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
