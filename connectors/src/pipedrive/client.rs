//! [`PipedriveClient`]: the [`LeadSink`]. It owns the HTTP client, the credentials (API token, or
//! the shared OAuth lifecycle with Pipedrive's `api_domain`), the request pacer, and the one
//! place where a Pipedrive answer is classified into what the engine should do. No retries,
//! except the single refresh-and-retry after an expired OAuth access token.

use std::time::Duration;

use async_trait::async_trait;
use reqwest::{Method, StatusCode, header::HeaderMap};
use secrecy::{ExposeSecret, SecretString};
use serde::{Serialize, de::DeserializeOwned};

use crate::{
    BuildError, ConnectorContext,
    model::SinkRecord,
    oauth::{ClientAuth, OAuthClient, OAuthSettings},
    sink::{BatchOutcome, CallError, ForgetRecord, LeadSink, RateLimit},
    units::HumanDuration,
};

use super::{
    AuthMode, PipedriveConfig, limits,
    limits::{Lane, Pacer},
    wire::ErrorBody,
};

/// Records per engine call. Pipedrive has no batch endpoint, so a call works through its records
/// one by one (2–3 requests each); 20 keeps one call well under the engine's call timeout.
pub const MAX_BATCH: usize = 20;
/// Enough of an unexpected (non-JSON) error body to recognise it.
const BODY_EXCERPT: usize = 200;

pub(super) enum Auth {
    Token(SecretString),
    OAuth(Box<OAuthClient>),
}

/// Upserts persons into one Pipedrive company.
pub struct PipedriveClient {
    pub(super) http: reqwest::Client,
    pub(super) auth: Auth,
    pub(super) base: reqwest::Url,
    pub(super) rate_limit: RateLimit,
    pub(super) pacer: Pacer,
    pub(super) timeout: Duration,
    pub(super) ctx: ConnectorContext,
    pub(super) create_lead: bool,
    pub(super) lead_title: String,
    pub(super) recent_window: Duration,
}

impl std::fmt::Debug for PipedriveClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PipedriveClient")
            .field("base", &self.base.as_str())
            .field(
                "auth",
                &match self.auth {
                    Auth::Token(_) => "api_token",
                    Auth::OAuth(_) => "oauth",
                },
            )
            .field("rate_limit", &self.rate_limit)
            .field("create_lead", &self.create_lead)
            .finish_non_exhaustive()
    }
}

/// One HTTP answer, whatever its status.
pub(super) struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl PipedriveClient {
    pub fn new(config: &PipedriveConfig, ctx: ConnectorContext) -> Result<Self, BuildError> {
        let bad = |url: &str, reason: String| BuildError::BaseUrl {
            url: url.to_owned(),
            reason,
        };
        let base = super::parse_url(&config.base_url).map_err(|r| bad(&config.base_url, r))?;
        let http = reqwest::Client::builder()
            .user_agent(concat!("tandem/", env!("CARGO_PKG_VERSION")))
            .timeout(config.timeout.0)
            .connect_timeout(config.timeout.0.min(Duration::from_secs(10)))
            .build()
            .map_err(|e| BuildError::Http(e.to_string()))?;
        let auth = match (config.auth_mode(), &config.api_token) {
            (Some(AuthMode::ApiToken), Some(token)) => Auth::Token(token.clone()),
            (Some(AuthMode::OAuth), _) => {
                super::parse_url(&config.token_url).map_err(|r| bad(&config.token_url, r))?;
                let settings = OAuthSettings {
                    token_url: config.token_url.trim().to_owned(),
                    client_id: config.client_id.clone().unwrap_or_default(),
                    client_secret: config
                        .client_secret
                        .clone()
                        .unwrap_or_else(|| SecretString::from("")),
                    refresh_token: config
                        .refresh_token
                        .clone()
                        .unwrap_or_else(|| SecretString::from("")),
                    auth: ClientAuth::Basic,
                    refresh_ahead: Duration::from_secs(60),
                    assumed_lifetime: None,
                };
                Auth::OAuth(Box::new(OAuthClient::new(
                    settings,
                    http.clone(),
                    ctx.state.clone(),
                )))
            }
            _ => {
                return Err(BuildError::Http(
                    "set either api_token or client_id + client_secret + refresh_token".to_owned(),
                ));
            }
        };
        let rate_limit = config.effective_rate_limit();
        Ok(PipedriveClient {
            http,
            auth,
            base,
            rate_limit,
            pacer: Pacer::new(rate_limit),
            timeout: config.timeout.0,
            ctx,
            create_lead: config.create_lead,
            lead_title: config.lead_title.clone(),
            recent_window: config.recent_window.0,
        })
    }

    fn transport_error(&self, e: reqwest::Error) -> CallError {
        let message = if e.is_timeout() {
            format!(
                "Pipedrive did not answer within {}",
                HumanDuration(self.timeout)
            )
        } else if e.is_connect() {
            format!("could not connect to Pipedrive: {}", error_chain(e))
        } else {
            format!("Pipedrive connection failed: {}", error_chain(e))
        };
        CallError::Transient {
            message,
            retry_after: None,
        }
    }

    /// Sends one request (paced, authenticated) and returns the answer whatever its status.
    /// An OAuth 401 is answered by one refresh and one resend; a second 401 is returned.
    pub(super) async fn request<B: Serialize + ?Sized>(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&B>,
        lane: Lane,
    ) -> Result<Answer, CallError> {
        let mut stale = None;
        loop {
            let token = match &self.auth {
                Auth::Token(_) => None,
                Auth::OAuth(o) => Some(match &stale {
                    None => o.token().await?,
                    Some(s) => o.token_after_rejection(s).await?,
                }),
            };
            let base = match token.as_ref().and_then(|t| t.extra.get("api_domain")) {
                Some(domain) => {
                    super::parse_url(domain).map_err(|reason| CallError::Transient {
                        message: format!(
                            "the OAuth token's api_domain is not a usable URL ({reason})"
                        ),
                        retry_after: None,
                    })?
                }
                None => self.base.clone(),
            };
            let mut url =
                base.join(path.trim_start_matches('/'))
                    .map_err(|e| CallError::Permanent {
                        message: format!("cannot build the Pipedrive URL for {path}: {e}"),
                    })?;
            if !query.is_empty() {
                let mut pairs = url.query_pairs_mut();
                for (k, v) in query {
                    pairs.append_pair(k, v);
                }
            }
            self.pacer.acquire(lane).await;
            let mut req = self.http.request(method.clone(), url);
            req = match (&self.auth, &token) {
                (Auth::Token(t), _) => req.header("x-api-token", t.expose_secret()),
                (Auth::OAuth(_), Some(t)) => req.bearer_auth(&t.access_token),
                (Auth::OAuth(_), None) => req,
            };
            if let Some(b) = body {
                req = req.json(b);
            }
            let resp = req.send().await.map_err(|e| self.transport_error(e))?;
            let status = resp.status();
            let headers = resp.headers().clone();
            // A body cut off mid-way is a dropped connection: the write may have happened.
            let body = resp
                .bytes()
                .await
                .map_err(|e| self.transport_error(e))?
                .to_vec();
            if let Some(wait) =
                limits::pause_after_success(&headers).filter(|w| *w <= limits::WINDOW * 2)
            {
                self.pacer.hold(wait).await;
            }
            if status == StatusCode::UNAUTHORIZED
                && stale.is_none()
                && let Some(t) = token
            {
                stale = Some(t);
                continue;
            }
            return Ok(Answer {
                status,
                headers,
                body,
            });
        }
    }
}

/// reqwest's error and its causes on one line.
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

/// Pipedrive's own error text, or a short excerpt when the body isn't Pipedrive JSON.
pub(super) fn describe_error(status: StatusCode, body: &[u8]) -> String {
    match serde_json::from_slice::<ErrorBody>(body) {
        Ok(e) if !e.error.is_empty() => format!("Pipedrive {}: {}", status.as_u16(), e.error),
        _ => {
            let text = String::from_utf8_lossy(body);
            let excerpt: String = text.trim().chars().take(BODY_EXCERPT).collect();
            if excerpt.is_empty() {
                format!("Pipedrive answered {status} with an empty body")
            } else {
                format!("Pipedrive answered {status}: {excerpt}")
            }
        }
    }
}

/// What a non-success answer means for the engine.
pub(super) fn classify(answer: &Answer) -> CallError {
    let message = describe_error(answer.status, &answer.body);
    CallError::from_status(
        answer.status.as_u16(),
        message,
        limits::throttle_wait(&answer.headers),
        limits::retry_after(&answer.headers),
    )
}

/// The `data` of a success envelope.
pub(super) fn decode<T: DeserializeOwned>(
    answer: &Answer,
) -> Result<super::wire::Envelope<T>, CallError> {
    serde_json::from_slice(&answer.body).map_err(|e| CallError::Transient {
        message: format!(
            "Pipedrive answered {} with a body tandem could not read: {e}",
            answer.status
        ),
        retry_after: None,
    })
}

#[async_trait]
impl LeadSink for PipedriveClient {
    fn max_batch(&self) -> usize {
        MAX_BATCH
    }

    fn default_rate_limit(&self) -> RateLimit {
        self.rate_limit
    }

    async fn upsert_people(&self, batch: &[SinkRecord]) -> Result<BatchOutcome, CallError> {
        super::upsert::run(self, batch).await
    }

    async fn verify(&self, fields: &[String]) -> Vec<String> {
        super::verify::verify(self, fields).await
    }

    fn supports_forget(&self) -> bool {
        true
    }

    /// `DELETE /api/v2/persons/{id}` per person; see [`super::forget`].
    async fn forget(&self, batch: &[ForgetRecord]) -> Result<BatchOutcome, CallError> {
        super::forget::run(self, batch).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(status: u16, headers: &[(&'static str, &'static str)], body: &str) -> Answer {
        let mut h = HeaderMap::new();
        for (k, v) in headers {
            h.insert(*k, reqwest::header::HeaderValue::from_static(v));
        }
        Answer {
            status: StatusCode::from_u16(status).unwrap(),
            headers: h,
            body: body.as_bytes().to_vec(),
        }
    }

    #[test]
    fn statuses_map_to_what_the_engine_should_do() {
        let e = classify(&answer(
            400,
            &[],
            r#"{"success":false,"error":"Validation failed: name: Required","error_info":"x"}"#,
        ));
        assert_eq!(
            e,
            CallError::Permanent {
                message: "Pipedrive 400: Validation failed: name: Required".into()
            }
        );
        assert!(matches!(
            classify(&answer(401, &[], "{}")),
            CallError::Auth { status: 401, .. }
        ));
        assert!(matches!(
            classify(&answer(403, &[], "")),
            CallError::Auth { status: 403, .. }
        ));
        assert!(matches!(
            classify(&answer(502, &[], "<html>")),
            CallError::Transient { .. }
        ));
        assert_eq!(
            classify(&answer(
                429,
                &[("retry-after", "2")],
                r#"{"success":false,"error":"Request over limit"}"#
            )),
            CallError::RateLimited {
                message: "Pipedrive 429: Request over limit".into(),
                retry_after: Duration::from_secs(2)
            }
        );
    }
}
