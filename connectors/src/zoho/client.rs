//! [`ZohoClient`]: the [`LeadSink`] that upserts Leads/Contacts 100 at a time. Every call gets
//! an access token from the shared [`OAuthClient`] (Zoho Accounts, parameters in the query
//! string) and goes to the `api_domain` that token came with. The only retry it makes is the
//! one after a 401 `INVALID_TOKEN`: refresh (single-flight) and send again; every other failure
//! is classified and handed to the engine.

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use async_trait::async_trait;
use reqwest::{
    StatusCode,
    header::{AUTHORIZATION, HeaderMap},
};

use crate::{
    BuildError, ConnectorContext, TokenSet,
    model::SinkRecord,
    oauth::{ClientAuth, OAuthClient, OAuthSettings},
    sink::{BatchOutcome, CallError, ForgetRecord, LeadSink, RateLimit},
};

use super::{
    Module, ZohoConfig, batch, limits,
    lookup::{self, Existing},
    parse_base_url,
    wire::{CoqlRequest, CoqlResponse, DataResponse, UpsertRequest, ZohoStatus},
};

/// Zoho's documented cap on records per insert/update/upsert call.
pub const MAX_BATCH: usize = 100;
/// Enough of an unexpected (non-JSON) error body to recognise it, not enough to flood a log.
const BODY_EXCERPT: usize = 200;
/// More COQL pages than this for one batch means something else is wrong.
const MAX_LOOKUP_PAGES: usize = 5;

/// One HTTP answer, read whole.
pub(super) struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

/// Upserts leads into one Zoho CRM org.
pub struct ZohoClient {
    http: reqwest::Client,
    oauth: Arc<OAuthClient>,
    base_override: Option<reqwest::Url>,
    default_base: reqwest::Url,
    pub(super) module: Module,
    pub(super) duplicate_check_fields: Vec<String>,
    default_last_name: String,
    trigger: Vec<String>,
    rate_limit: RateLimit,
    timeout: Duration,
}

impl std::fmt::Debug for ZohoClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ZohoClient")
            .field("module", &self.module)
            .field(
                "base_override",
                &self.base_override.as_ref().map(|u| u.as_str()),
            )
            .field("duplicate_check_fields", &self.duplicate_check_fields)
            .field("rate_limit", &self.rate_limit)
            .finish_non_exhaustive()
    }
}

fn bad_url(url: &str, reason: String) -> BuildError {
    BuildError::BaseUrl {
        url: url.to_owned(),
        reason,
    }
}

impl ZohoClient {
    pub fn new(config: &ZohoConfig, ctx: ConnectorContext) -> Result<Self, BuildError> {
        let base_override = match &config.base_url {
            Some(u) => Some(parse_base_url(u).map_err(|r| bad_url(u, r))?),
            None => None,
        };
        let default_api = config.data_center.api_domain();
        let default_base = parse_base_url(default_api).map_err(|r| bad_url(default_api, r))?;
        let accounts =
            parse_base_url(config.accounts_url()).map_err(|r| bad_url(config.accounts_url(), r))?;
        let token_url = accounts
            .join("oauth/v2/token")
            .map_err(|e| bad_url(config.accounts_url(), e.to_string()))?;
        let http = reqwest::Client::builder()
            .user_agent(concat!("tandem/", env!("CARGO_PKG_VERSION")))
            .timeout(config.timeout.0)
            .connect_timeout(config.timeout.0.min(Duration::from_secs(10)))
            .build()
            .map_err(|e| BuildError::Http(e.to_string()))?;
        let oauth = OAuthClient::new(
            OAuthSettings {
                token_url: token_url.to_string(),
                client_id: config.client_id.trim().to_owned(),
                client_secret: config.client_secret.clone(),
                refresh_token: config.refresh_token.clone(),
                auth: ClientAuth::Query,
                refresh_ahead: Duration::from_secs(300),
                assumed_lifetime: Some(Duration::from_secs(3600)),
            },
            http.clone(),
            ctx.state,
        );
        Ok(ZohoClient {
            http,
            oauth: Arc::new(oauth),
            base_override,
            default_base,
            module: config.module,
            duplicate_check_fields: config
                .duplicate_check_fields
                .iter()
                .map(|f| f.trim().to_owned())
                .collect(),
            default_last_name: config.default_last_name.clone(),
            trigger: config.trigger.clone(),
            rate_limit: config.effective_rate_limit(),
            timeout: config.timeout.0,
        })
    }

    /// Where API calls go: the configured `base_url`, else the token's `api_domain`, else the
    /// data centre's API domain.
    fn api_base(&self, token: &TokenSet) -> reqwest::Url {
        if let Some(b) = &self.base_override {
            return b.clone();
        }
        token
            .extra
            .get("api_domain")
            .and_then(|d| parse_base_url(d).ok())
            .unwrap_or_else(|| self.default_base.clone())
    }

    fn transport_error(&self, e: reqwest::Error) -> CallError {
        let message = if e.is_timeout() {
            format!(
                "Zoho did not answer within {}",
                crate::units::HumanDuration(self.timeout)
            )
        } else if e.is_connect() {
            format!("could not connect to Zoho: {}", error_chain(e))
        } else {
            format!("Zoho connection failed: {}", error_chain(e))
        };
        CallError::Transient {
            message,
            retry_after: None,
        }
    }

    async fn send_once(
        &self,
        build: &(dyn Fn(&reqwest::Url) -> reqwest::RequestBuilder + Send + Sync),
        token: &TokenSet,
    ) -> Result<Answer, CallError> {
        let response = build(&self.api_base(token))
            .header(
                AUTHORIZATION,
                format!("Zoho-oauthtoken {}", token.access_token),
            )
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
        Ok(Answer {
            status,
            headers,
            body: body.to_vec(),
        })
    }

    /// One API call with a valid token; a 401 `INVALID_TOKEN` refreshes (once, shared with
    /// concurrent callers) and sends again.
    pub(super) async fn call(
        &self,
        build: &(dyn Fn(&reqwest::Url) -> reqwest::RequestBuilder + Send + Sync),
    ) -> Result<Answer, CallError> {
        let token = self.oauth.token().await?;
        let answer = self.send_once(build, &token).await?;
        if answer.status == StatusCode::UNAUTHORIZED && is_invalid_token(&answer.body) {
            let fresh = self.oauth.token_after_rejection(&token).await?;
            return self.send_once(build, &fresh).await;
        }
        Ok(answer)
    }

    pub(super) fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// The one COQL read (paged only if Zoho holds more matching rows than one page).
    async fn lookup(
        &self,
        batch: &[SinkRecord],
        prepared: &batch::Prepared,
    ) -> Result<Vec<Option<Existing>>, CallError> {
        let columns = batch::lookup_columns(batch, prepared, &self.duplicate_check_fields);
        let mut keys: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for record_keys in &prepared.keys {
            for (field, value) in record_keys {
                let values = keys.entry(field.clone()).or_default();
                if !values.iter().any(|v| v.eq_ignore_ascii_case(value)) {
                    values.push(value.clone());
                }
            }
        }
        let Some(where_clause) = lookup::where_clause(&keys) else {
            return Err(CallError::Permanent {
                message: "too many duplicate_check_fields to read existing records in one COQL query; configure at most 12".to_owned(),
            });
        };
        let mut found = Vec::new();
        for page in 0..MAX_LOOKUP_PAGES {
            let request = CoqlRequest {
                select_query: lookup::query(
                    self.module.api_name(),
                    &columns,
                    &where_clause,
                    page * lookup::PAGE,
                ),
            };
            let answer = self
                .call(&|base| self.http.post(format!("{base}crm/v8/coql")).json(&request))
                .await?;
            if answer.status == StatusCode::NO_CONTENT {
                break;
            }
            if answer.status != StatusCode::OK {
                return Err(classify(answer.status, &answer.headers, &answer.body));
            }
            let decoded: CoqlResponse =
                serde_json::from_slice(&answer.body).map_err(|e| CallError::Transient {
                    message: format!(
                        "Zoho answered the COQL read with a body tandem could not read: {e}"
                    ),
                    retry_after: None,
                })?;
            found.extend(lookup::rows(&decoded.data));
            if !decoded.info.more_records {
                break;
            }
        }
        Ok(lookup::match_existing(&prepared.keys, &found))
    }
}

fn is_invalid_token(body: &[u8]) -> bool {
    serde_json::from_slice::<ZohoStatus>(body).is_ok_and(|s| s.code == "INVALID_TOKEN")
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

/// Zoho's own error text, or a short excerpt when the body isn't Zoho JSON (a proxy page).
pub(super) fn describe_error_body(status: StatusCode, body: &[u8]) -> String {
    match serde_json::from_slice::<ZohoStatus>(body) {
        Ok(s) if !s.code.is_empty() || !s.message.is_empty() => {
            format!("Zoho {}: {}", status.as_u16(), s.describe())
        }
        _ => {
            let text = String::from_utf8_lossy(body);
            let excerpt: String = text.trim().chars().take(BODY_EXCERPT).collect();
            if excerpt.is_empty() {
                format!("Zoho answered {status} with an empty body")
            } else {
                format!("Zoho answered {status}: {excerpt}")
            }
        }
    }
}

/// Classify a whole-call failure into what the engine should do.
pub(super) fn classify(status: StatusCode, headers: &HeaderMap, body: &[u8]) -> CallError {
    let message = describe_error_body(status, body);
    CallError::from_status(
        status.as_u16(),
        message,
        limits::throttle_wait(headers),
        crate::hubspot::limits::retry_after(headers),
    )
}

#[async_trait]
impl LeadSink for ZohoClient {
    fn max_batch(&self) -> usize {
        MAX_BATCH
    }

    fn default_rate_limit(&self) -> RateLimit {
        self.rate_limit
    }

    async fn verify(&self, fields: &[String]) -> Vec<String> {
        super::verify::verify(self, fields).await
    }

    fn supports_forget(&self) -> bool {
        true
    }

    /// `DELETE /crm/v8/{module}?ids=…` (see `forget.rs`).
    async fn forget(&self, batch: &[ForgetRecord]) -> Result<BatchOutcome, CallError> {
        self.delete_records(batch).await
    }

    async fn upsert_people(&self, batch: &[SinkRecord]) -> Result<BatchOutcome, CallError> {
        let prepared = batch::prepare(batch, &self.duplicate_check_fields, MAX_BATCH);
        if prepared.sent.is_empty() {
            return Ok(BatchOutcome {
                items: batch::map_response(prepared, DataResponse::default()),
                pause_for: None,
            });
        }
        let existing = if batch::needs_lookup(batch, &prepared) {
            Some(self.lookup(batch, &prepared).await?)
        } else {
            None
        };
        let request = UpsertRequest {
            data: batch::rows(
                batch,
                &prepared,
                existing.as_deref(),
                &self.default_last_name,
            ),
            duplicate_check_fields: self.duplicate_check_fields.clone(),
            trigger: self.trigger.clone(),
        };
        let path = format!("crm/v8/{}/upsert", self.module.api_name());
        let answer = self
            .call(&|base| self.http.post(format!("{base}{path}")).json(&request))
            .await?;
        // 200 all written, 207 some refused, 400 with one entry per record = all refused.
        let per_record = matches!(answer.status.as_u16(), 200 | 201 | 202 | 207 | 400)
            .then(|| serde_json::from_slice::<DataResponse>(&answer.body).ok())
            .flatten()
            .filter(|d| answer.status.is_success() || d.data.len() == prepared.sent.len());
        let Some(decoded) = per_record else {
            if answer.status.is_success() {
                return Err(CallError::Transient {
                    message: format!(
                        "Zoho answered {} with a body tandem could not read",
                        answer.status
                    ),
                    retry_after: None,
                });
            }
            return Err(classify(answer.status, &answer.headers, &answer.body));
        };
        Ok(BatchOutcome {
            items: batch::map_response(prepared, decoded),
            pause_for: limits::pause_after_success(&answer.headers),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_map_to_what_the_engine_should_do() {
        let h = HeaderMap::new();
        let body = br#"{"code":"INVALID_TOKEN","details":{},"message":"invalid oauth token","status":"error"}"#;
        assert!(is_invalid_token(body));
        assert_eq!(
            classify(StatusCode::UNAUTHORIZED, &h, body),
            CallError::Auth {
                status: 401,
                message: "Zoho 401: INVALID_TOKEN: invalid oauth token".into()
            }
        );
        let scope = br#"{"code":"OAUTH_SCOPE_MISMATCH","details":{},"message":"invalid oauth scope to access this URL","status":"error"}"#;
        assert!(!is_invalid_token(scope));
        assert!(matches!(
            classify(StatusCode::UNAUTHORIZED, &h, scope),
            CallError::Auth { status: 401, .. }
        ));
        assert!(matches!(
            classify(StatusCode::BAD_REQUEST, &h, br#"{"code":"INVALID_MODULE","details":{},"message":"the module name given seems to be invalid","status":"error"}"#),
            CallError::Permanent { message } if message.contains("INVALID_MODULE")
        ));
        for s in [500, 502, 503, 504] {
            assert!(matches!(
                classify(StatusCode::from_u16(s).unwrap(), &h, b"<html>oops</html>"),
                CallError::Transient { .. }
            ));
        }
        assert_eq!(
            classify(StatusCode::TOO_MANY_REQUESTS, &h, b""),
            CallError::RateLimited {
                message: "Zoho answered 429 Too Many Requests with an empty body".into(),
                retry_after: limits::DEFAULT_THROTTLE_WAIT,
            }
        );
    }
}
