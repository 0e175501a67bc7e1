//! [`SalesforceClient`]: the [`LeadSink`] for one org. Every call goes through [`SalesforceClient::call`],
//! which takes the API base from the token's `instance_url` (or `base_url`), answers a 401
//! `INVALID_SESSION_ID` with one refresh (single-flight, shared by concurrent calls) and one retry
//! of the same request, and classifies every other failure for the engine. No other retries.

use std::time::Duration;

use async_trait::async_trait;
use reqwest::{
    Method, StatusCode,
    header::{HeaderMap, RETRY_AFTER},
};
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;

use crate::{
    BuildError, ConnectorContext,
    context::TokenSet,
    model::SinkRecord,
    oauth::{ClientAuth, OAuthClient, OAuthSettings},
    sink::{BatchOutcome, CallError, ForgetRecord, LeadSink, RateLimit},
};

use super::{
    MatchMode, SalesforceConfig, limits, parse_base_url,
    plan::{self, Settings},
    wire::{self, ApiError},
};

/// sObject Collections' documented cap on records per request.
pub const MAX_BATCH: usize = 200;
/// Enough of an unexpected (non-JSON) error body to recognise it, not enough to flood a log.
const BODY_EXCERPT: usize = 200;

pub(super) enum Auth {
    OAuth(Box<OAuthClient>),
    Static(SecretString),
}

/// A 2xx answer.
pub(super) struct Answer {
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

/// Any answer, status included.
pub(super) struct RawAnswer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

/// Upserts leads or contacts into one Salesforce org.
pub struct SalesforceClient {
    http: reqwest::Client,
    auth: Auth,
    base_override: Option<reqwest::Url>,
    pub(super) api_version: String,
    pub(super) settings: Settings,
    pub(super) ctx: ConnectorContext,
    reserve_percent: f64,
    limit_pause: Duration,
    rate_limit: RateLimit,
    timeout: Duration,
}

impl std::fmt::Debug for SalesforceClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SalesforceClient")
            .field("connector", &self.ctx.name)
            .field(
                "base_override",
                &self.base_override.as_ref().map(|u| u.as_str()),
            )
            .field("api_version", &self.api_version)
            .field("settings", &self.settings)
            .field("rate_limit", &self.rate_limit)
            .finish_non_exhaustive()
    }
}

impl SalesforceClient {
    pub fn new(config: &SalesforceConfig, ctx: ConnectorContext) -> Result<Self, BuildError> {
        let bad = |url: &str, reason: String| BuildError::BaseUrl {
            url: url.to_owned(),
            reason,
        };
        let base_override = match &config.base_url {
            Some(b) => Some(parse_base_url(b).map_err(|r| bad(b, r))?),
            None => None,
        };
        parse_base_url(&config.login_url).map_err(|r| bad(&config.login_url, r))?;
        let http = reqwest::Client::builder()
            .user_agent(concat!("tandem/", env!("CARGO_PKG_VERSION")))
            .timeout(config.timeout.0)
            .connect_timeout(config.timeout.0.min(Duration::from_secs(10)))
            .build()
            .map_err(|e| BuildError::Http(e.to_string()))?;
        let auth = match (&config.refresh_token, &config.access_token) {
            (Some(refresh_token), _) => Auth::OAuth(Box::new(OAuthClient::new(
                OAuthSettings {
                    token_url: config.token_url(),
                    client_id: config.client_id.clone().unwrap_or_default(),
                    client_secret: config
                        .client_secret
                        .clone()
                        .unwrap_or_else(|| SecretString::from("")),
                    refresh_token: refresh_token.clone(),
                    auth: ClientAuth::Body,
                    refresh_ahead: Duration::ZERO,
                    // No expires_in: a session lives until Salesforce says INVALID_SESSION_ID.
                    assumed_lifetime: None,
                },
                http.clone(),
                ctx.state.clone(),
            ))),
            (None, Some(token)) => Auth::Static(token.clone()),
            (None, None) => Auth::Static(SecretString::from("")),
        };
        Ok(SalesforceClient {
            http,
            auth,
            base_override,
            api_version: config.api_version.clone(),
            settings: Settings {
                object: config.object,
                match_mode: config.match_mode,
                external_id_field: config.external_id_field.clone(),
                default_last_name: config.default_last_name.clone(),
                default_company: config.default_company.clone(),
            },
            ctx,
            reserve_percent: config.api_reserve_percent,
            limit_pause: config.limit_pause.0,
            rate_limit: config.effective_rate_limit(),
            timeout: config.timeout.0,
        })
    }

    /// `services/data/vXX.X/{rest}`, relative to the API base.
    pub(super) fn data_path(&self, rest: &str) -> String {
        format!("services/data/{}/{rest}", self.api_version)
    }

    async fn token(&self) -> Result<TokenSet, CallError> {
        match &self.auth {
            Auth::OAuth(o) => o.token().await,
            Auth::Static(t) => Ok(TokenSet {
                access_token: t.expose_secret().to_owned(),
                ..Default::default()
            }),
        }
    }

    fn base(&self, token: &TokenSet) -> Result<reqwest::Url, CallError> {
        if let Some(b) = &self.base_override {
            return Ok(b.clone());
        }
        let instance = token.extra.get("instance_url").ok_or_else(|| CallError::Auth {
            status: 401,
            message: "Salesforce's token response carried no instance_url; set base_url to your org's \
                      https://….my.salesforce.com"
                .to_owned(),
        })?;
        parse_base_url(instance).map_err(|reason| CallError::Auth {
            status: 401,
            message: format!(
                "Salesforce returned an unusable instance_url ({reason}); set base_url"
            ),
        })
    }

    /// One API call (`path` relative to the base, e.g. from [`Self::data_path`] or a
    /// `nextRecordsUrl`): 2xx → the answer; 401 → one refresh and one retry; else classified.
    pub(super) async fn call(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, &str)],
        body: Option<&Value>,
    ) -> Result<Answer, CallError> {
        let need = format!("create/edit on {}", self.settings.object.name());
        self.call_needing(&need, method, path, query, body).await
    }

    /// [`Self::call`], with `need` saying what a 403 lacks ("read on Opportunity").
    pub(super) async fn call_needing(
        &self,
        need: &str,
        method: Method,
        path: &str,
        query: &[(&str, &str)],
        body: Option<&Value>,
    ) -> Result<Answer, CallError> {
        let raw = self.call_raw(method, path, query, body).await?;
        if raw.status.is_success() {
            return Ok(Answer {
                headers: raw.headers,
                body: raw.body,
            });
        }
        Err(self.classify(raw.status, &raw.headers, &raw.body, need))
    }

    /// One API call with the session handling of [`Self::call`] but any status returned as it
    /// came, for callers that read a particular refusal themselves (an expired query locator).
    pub(super) async fn call_raw(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, &str)],
        body: Option<&Value>,
    ) -> Result<RawAnswer, CallError> {
        let mut token = self.token().await?;
        let mut refreshed = false;
        loop {
            let url = self
                .base(&token)?
                .join(path.trim_start_matches('/'))
                .map_err(|e| CallError::Permanent {
                    message: format!("cannot build the Salesforce URL for {path:?}: {e}"),
                })?;
            let mut request = self
                .http
                .request(method.clone(), url)
                .bearer_auth(&token.access_token)
                .header(reqwest::header::ACCEPT, "application/json");
            if !query.is_empty() {
                request = request.query(query);
            }
            if let Some(b) = body {
                request = request.json(b);
            }
            let response = request.send().await.map_err(|e| self.transport_error(e))?;
            let status = response.status();
            let headers = response.headers().clone();
            // A body cut off mid-way is a dropped connection: the write may have happened; the
            // retry finds the record (upsert key, or the email query) instead of creating twice.
            let bytes = response
                .bytes()
                .await
                .map_err(|e| self.transport_error(e))?;
            if status == StatusCode::UNAUTHORIZED
                && !refreshed
                && let Auth::OAuth(o) = &self.auth
            {
                tracing::info!(connector = %self.ctx.name, "Salesforce session expired; refreshing");
                token = o.token_after_rejection(&token).await?;
                refreshed = true;
                continue;
            }
            return Ok(RawAnswer {
                status,
                headers,
                body: bytes.to_vec(),
            });
        }
    }

    /// A 2xx body as `T`, or a transient error (a proxy's page, a cut body).
    pub(super) fn decode<T: serde::de::DeserializeOwned>(answer: &Answer) -> Result<T, CallError> {
        serde_json::from_slice(&answer.body).map_err(|e| CallError::Transient {
            message: format!("Salesforce answered with a body tandem could not read: {e}"),
            retry_after: None,
        })
    }

    pub(super) fn pause_for(&self, headers: &HeaderMap) -> Option<Duration> {
        limits::pause_after_success(headers, self.reserve_percent, self.limit_pause)
    }

    fn transport_error(&self, e: reqwest::Error) -> CallError {
        let message = if e.is_timeout() {
            format!(
                "Salesforce did not answer within {}",
                crate::units::HumanDuration(self.timeout)
            )
        } else if e.is_connect() {
            format!("could not connect to Salesforce: {}", error_chain(e))
        } else {
            format!("Salesforce connection failed: {}", error_chain(e))
        };
        CallError::Transient {
            message,
            retry_after: None,
        }
    }

    /// A refusal as what the engine should do; `need` names the access a 403 lacks.
    pub(super) fn classify(
        &self,
        status: StatusCode,
        headers: &HeaderMap,
        body: &[u8],
        need: &str,
    ) -> CallError {
        let errors: Vec<ApiError> = serde_json::from_slice(body).unwrap_or_default();
        let message = if errors.is_empty() {
            let text = String::from_utf8_lossy(body);
            let excerpt: String = text.trim().chars().take(BODY_EXCERPT).collect();
            if excerpt.is_empty() {
                format!("Salesforce answered {status} with an empty body")
            } else {
                format!("Salesforce answered {status}: {excerpt}")
            }
        } else {
            format!(
                "Salesforce {}: {}",
                status.as_u16(),
                wire::describe_errors(&errors)
            )
        };
        let retry_after = || {
            headers
                .get(RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(Duration::from_secs)
        };
        match status.as_u16() {
            401 => CallError::Auth {
                status: 401,
                message: match self.auth {
                    Auth::OAuth(_) => format!("{message} (even with a freshly refreshed session)"),
                    Auth::Static(_) => format!(
                        "{message}; the configured access_token has expired: configure refresh_token, \
                         client_id and client_secret instead"
                    ),
                },
            },
            403 => limits::limit_refusal(&errors, headers, self.limit_pause, &message).unwrap_or(
                CallError::Auth {
                    status: 403,
                    message: format!("{message}; give the integration user API Enabled and {need}"),
                },
            ),
            429 => CallError::RateLimited {
                message,
                retry_after: retry_after().unwrap_or(limits::CONCURRENT_WAIT),
            },
            408 | 425 => CallError::Transient {
                message,
                retry_after: retry_after(),
            },
            s if s >= 500 => CallError::Transient {
                message,
                retry_after: retry_after(),
            },
            _ => CallError::Permanent { message },
        }
    }
}

/// reqwest's error and its causes on one line, without the URL.
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

#[async_trait]
impl LeadSink for SalesforceClient {
    fn max_batch(&self) -> usize {
        MAX_BATCH
    }

    fn default_rate_limit(&self) -> RateLimit {
        self.rate_limit
    }

    async fn upsert_people(&self, batch: &[SinkRecord]) -> Result<BatchOutcome, CallError> {
        let prepared = plan::prepare(batch, &self.settings, MAX_BATCH);
        if prepared.items.is_empty() {
            return Ok(BatchOutcome {
                items: prepared.finish(Vec::new()),
                pause_for: None,
            });
        }
        match self.settings.match_mode {
            MatchMode::ExternalId => self.upsert_by_external_id(prepared).await,
            MatchMode::Email => self.upsert_by_email(prepared).await,
        }
    }

    async fn verify(&self, fields: &[String]) -> Vec<String> {
        self.verify_fields(fields).await
    }

    fn supports_forget(&self) -> bool {
        true
    }

    /// `DELETE /composite/sobjects?ids=…` (see `forget.rs`).
    async fn forget(&self, batch: &[ForgetRecord]) -> Result<BatchOutcome, CallError> {
        self.delete_records(batch).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client() -> SalesforceClient {
        let c: SalesforceConfig = serde_json::from_value(serde_json::json!({
            "client_id": "k", "client_secret": "s", "refresh_token": "r"
        }))
        .unwrap();
        SalesforceClient::new(&c, ConnectorContext::in_memory("sf")).unwrap()
    }

    #[test]
    fn statuses_map_to_what_the_engine_should_do() {
        let c = client();
        let h = HeaderMap::new();
        let classify = |s, h: &HeaderMap, b: &[u8]| c.classify(s, h, b, "create/edit on Lead");
        let body = |code: &str, msg: &str| serde_json::to_vec(&[ApiError::new(code, msg)]).unwrap();
        assert!(matches!(
            classify(StatusCode::FORBIDDEN, &h, &body("INSUFFICIENT_ACCESS", "no")),
            CallError::Auth { status: 403, message } if message.contains("INSUFFICIENT_ACCESS: no")
                && message.ends_with("create/edit on Lead")
        ));
        assert!(matches!(
            classify(StatusCode::FORBIDDEN, &h, &body("REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded.")),
            CallError::RateLimited { retry_after, .. } if retry_after == Duration::from_secs(900)
        ));
        assert_eq!(
            classify(
                StatusCode::BAD_REQUEST,
                &h,
                &body(
                    "INVALID_FIELD",
                    "No such column 'X' on sobject of type Lead"
                )
            ),
            CallError::Permanent {
                message:
                    "Salesforce 400: INVALID_FIELD: No such column 'X' on sobject of type Lead"
                        .into()
            }
        );
        assert!(matches!(
            classify(StatusCode::MULTIPLE_CHOICES, &h, b"[]"),
            CallError::Permanent { .. }
        ));
        assert!(matches!(
            classify(StatusCode::BAD_GATEWAY, &h, b"<html>"),
            CallError::Transient { message, .. } if message.contains("<html>")
        ));
        assert!(matches!(
            classify(
                StatusCode::UNAUTHORIZED,
                &h,
                &body("INVALID_SESSION_ID", "Session expired or invalid")
            ),
            CallError::Auth { status: 401, .. }
        ));
    }
}
