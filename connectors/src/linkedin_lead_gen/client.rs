//! [`LinkedinLeadGenSource`]: one `leadFormResponses` page per ad account per poll, no retries
//! of its own (the daemon owns them) except one token refresh after a 401 on a refreshable
//! OAuth token. Every failure is classified for the engine.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use async_trait::async_trait;
use reqwest::{StatusCode, Url, header::HeaderMap};
use secrecy::{ExposeSecret, SecretString};

use crate::{
    BuildError, ConnectorContext,
    context::TokenSet,
    oauth::{ClientAuth, OAuthClient, OAuthSettings},
    sink::{CallError, RateLimit},
    source::{PollPage, PolledSource},
};

use super::{
    DEFAULT_TOKEN_URL, LinkedinLeadGenConfig, StartFrom,
    cursor::{Cursor, PageFacts, Window},
    mapping::map_element,
    wire::{ErrorBody, ResponsesPage},
};

/// The Rest.li protocol version every versioned LinkedIn API expects.
pub const RESTLI_PROTOCOL: &str = "2.0.0";
/// The fields projected into each response, the form (questions, hidden fields) included.
pub const FIELDS: &str = "id,submittedAt,testLead,leadType,owner,versionedLeadGenFormUrn,associatedEntity,leadMetadata,formResponse,form:(hiddenFields,name,id,content)";
/// A 429 without `Retry-After`: LinkedIn's quotas are daily (reset 00:00 UTC); wait this long,
/// or until midnight UTC if that is sooner.
pub const THROTTLE_WAIT: Duration = Duration::from_secs(15 * 60);
const BODY_EXCERPT: usize = 200;

fn now_ms() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}

/// Keeps at least `gap` between the starts of two requests.
#[derive(Debug)]
pub(crate) struct Pacer {
    gap: Duration,
    last: tokio::sync::Mutex<Option<Instant>>,
}

impl Pacer {
    pub(crate) fn new(limit: RateLimit) -> Pacer {
        Pacer {
            gap: limit.per / limit.requests.max(1),
            last: tokio::sync::Mutex::new(None),
        }
    }

    pub(crate) async fn wait(&self) {
        let mut last = self.last.lock().await;
        if let Some(at) = *last {
            let due = at + self.gap;
            let now = Instant::now();
            if due > now {
                tokio::time::sleep(due - now).await;
            }
        }
        *last = Some(Instant::now());
    }
}

enum Auth {
    Static(SecretString),
    OAuth(Arc<OAuthClient>),
}

/// The polled LinkedIn Lead Gen source of one connector.
pub struct LinkedinLeadGenSource {
    http: reqwest::Client,
    auth: Auth,
    endpoint: Url,
    version: String,
    accounts: Vec<String>,
    interval: Duration,
    start_from: StartFrom,
    overlap_ms: i64,
    page_size: u32,
    timeout: Duration,
    pacer: Pacer,
}

impl std::fmt::Debug for LinkedinLeadGenSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LinkedinLeadGenSource")
            .field("endpoint", &self.endpoint.as_str())
            .field("accounts", &self.accounts)
            .field("auth", &"[redacted]")
            .finish_non_exhaustive()
    }
}

/// `urn:li:sponsoredAccount:1` → `urn%3Ali%3AsponsoredAccount%3A1`, as Rest.li 2.0 wants URNs
/// inside its `(key:value)` query syntax.
fn restli_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 2);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

impl LinkedinLeadGenSource {
    pub fn new(config: &LinkedinLeadGenConfig, ctx: ConnectorContext) -> Result<Self, BuildError> {
        let bad = |url: &str, reason: String| BuildError::BaseUrl {
            url: url.to_owned(),
            reason,
        };
        let base = crate::hubspot::parse_base_url(&config.base_url)
            .map_err(|r| bad(&config.base_url, r))?;
        let endpoint = base
            .join("leadFormResponses")
            .map_err(|e| bad(&config.base_url, e.to_string()))?;
        let http = reqwest::Client::builder()
            .user_agent(concat!("tandem/", env!("CARGO_PKG_VERSION")))
            .timeout(config.timeout.0)
            .connect_timeout(config.timeout.0.min(Duration::from_secs(10)))
            .build()
            .map_err(|e| BuildError::Http(e.to_string()))?;
        let auth = match (&config.access_token, config.uses_oauth()) {
            (Some(t), _) => Auth::Static(t.clone()),
            (None, true) => {
                let token_url = config.token_url.as_deref().unwrap_or(DEFAULT_TOKEN_URL);
                crate::hubspot::parse_base_url(token_url).map_err(|r| bad(token_url, r))?;
                let settings = OAuthSettings {
                    token_url: token_url.trim().to_owned(),
                    client_id: config.client_id.clone().unwrap_or_default(),
                    client_secret: config
                        .client_secret
                        .clone()
                        .unwrap_or_else(|| SecretString::from("")),
                    refresh_token: config
                        .refresh_token
                        .clone()
                        .unwrap_or_else(|| SecretString::from("")),
                    auth: ClientAuth::Body,
                    refresh_ahead: Duration::from_secs(10 * 60),
                    assumed_lifetime: None,
                };
                Auth::OAuth(Arc::new(OAuthClient::new(
                    settings,
                    http.clone(),
                    ctx.state.clone(),
                )))
            }
            (None, false) => {
                return Err(BuildError::Http(
                    "no LinkedIn credentials: set `access_token`, or `client_id`, `client_secret` and `refresh_token`".to_owned(),
                ));
            }
        };
        let accounts = config.account_urns();
        if accounts.is_empty() {
            return Err(BuildError::Http(
                "no usable `ad_accounts`: name at least one urn:li:sponsoredAccount:NUMBER"
                    .to_owned(),
            ));
        }
        Ok(LinkedinLeadGenSource {
            http,
            auth,
            endpoint,
            version: config.linkedin_version.trim().to_owned(),
            accounts,
            interval: config.poll_interval.0,
            start_from: config.start_from,
            overlap_ms: i64::try_from(config.overlap.0.as_millis()).unwrap_or(i64::MAX),
            page_size: config.page_size.clamp(1, super::MAX_PAGE_SIZE),
            timeout: config.timeout.0,
            pacer: Pacer::new(config.effective_rate_limit()),
        })
    }

    /// The finder URL for one account, window and page.
    pub fn page_url(&self, account: &str, from_ms: i64, to_ms: i64, start: u64) -> Url {
        let mut url = self.endpoint.clone();
        let query = format!(
            "q=owner&owner=(sponsoredAccount:{})&leadType=(leadType:SPONSORED)&limitedToTestLeads=false&submittedAtTimeRange=(start:{from_ms},end:{to_ms})&fields={FIELDS}&start={start}&count={}",
            restli_encode(account),
            self.page_size
        );
        url.set_query(Some(&query));
        url
    }

    async fn bearer(&self) -> Result<(String, Option<TokenSet>), CallError> {
        match &self.auth {
            Auth::Static(t) => Ok((t.expose_secret().to_owned(), None)),
            Auth::OAuth(c) => {
                let t = c.token().await?;
                Ok((t.access_token.clone(), Some(t)))
            }
        }
    }

    async fn send(
        &self,
        url: &Url,
        token: &str,
    ) -> Result<(StatusCode, HeaderMap, Vec<u8>), CallError> {
        self.pacer.wait().await;
        let response = self
            .http
            .get(url.clone())
            .bearer_auth(token)
            .header("LinkedIn-Version", &self.version)
            .header("X-Restli-Protocol-Version", RESTLI_PROTOCOL)
            .send()
            .await
            .map_err(|e| self.transport_error(&e))?;
        let status = response.status();
        let headers = response.headers().clone();
        let body = response
            .bytes()
            .await
            .map_err(|e| self.transport_error(&e))?;
        Ok((status, headers, body.to_vec()))
    }

    /// One page of one account's window.
    pub async fn fetch(
        &self,
        account: &str,
        from_ms: i64,
        to_ms: i64,
        start: u64,
    ) -> Result<ResponsesPage, CallError> {
        let url = self.page_url(account, from_ms, to_ms, start);
        let (token, oauth) = self.bearer().await?;
        let mut answer = self.send(&url, &token).await?;
        if answer.0 == StatusCode::UNAUTHORIZED
            && let (Auth::OAuth(c), Some(stale)) = (&self.auth, &oauth)
        {
            let fresh = c.token_after_rejection(stale).await?;
            answer = self.send(&url, &fresh.access_token).await?;
        }
        let (status, headers, body) = answer;
        if !status.is_success() {
            return Err(classify(status, &headers, &body, now_ms()));
        }
        serde_json::from_slice::<ResponsesPage>(&body).map_err(|e| CallError::Transient {
            // serde's message may quote the body (personal data): say where, not what.
            message: format!(
                "LinkedIn answered {status} with a body tandem could not read ({:?} error at line {}, column {})",
                e.classify(),
                e.line(),
                e.column()
            ),
            retry_after: None,
        })
    }

    fn transport_error(&self, e: &reqwest::Error) -> CallError {
        let message = if e.is_timeout() {
            format!(
                "LinkedIn did not answer within {}",
                crate::units::HumanDuration(self.timeout)
            )
        } else if e.is_connect() {
            "could not connect to LinkedIn".to_owned()
        } else if e.is_body() || e.is_decode() {
            "the connection to LinkedIn broke off mid-answer".to_owned()
        } else {
            "the request to LinkedIn failed".to_owned()
        };
        CallError::Transient {
            message,
            retry_after: None,
        }
    }
}

fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let v = headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?;
    v.trim().parse::<u64>().ok().map(Duration::from_secs)
}

/// How long until the next 00:00 UTC, when LinkedIn's daily quotas reset.
fn until_utc_midnight(now_ms: i64) -> Duration {
    let day = 86_400_000_i64;
    let left = day - now_ms.rem_euclid(day);
    Duration::from_millis(u64::try_from(left).unwrap_or(0))
}

fn describe(status: StatusCode, body: &[u8]) -> String {
    match serde_json::from_slice::<ErrorBody>(body)
        .ok()
        .and_then(|b| b.describe())
    {
        Some(d) => format!("LinkedIn {}: {d}", status.as_u16()),
        None => {
            let text = String::from_utf8_lossy(body);
            let excerpt: String = text.trim().chars().take(BODY_EXCERPT).collect();
            if excerpt.is_empty() {
                format!("LinkedIn answered {status} with an empty body")
            } else {
                format!("LinkedIn answered {status}: {excerpt}")
            }
        }
    }
}

/// A non-success answer in the engine's terms.
pub fn classify(status: StatusCode, headers: &HeaderMap, body: &[u8], now_ms: i64) -> CallError {
    let message = describe(status, body);
    let retry_after = retry_after(headers);
    let throttle_wait = retry_after.unwrap_or_else(|| {
        THROTTLE_WAIT
            .min(until_utc_midnight(now_ms))
            .max(Duration::from_secs(1))
    });
    CallError::from_status(status.as_u16(), message, throttle_wait, retry_after)
}

#[async_trait]
impl PolledSource for LinkedinLeadGenSource {
    fn interval(&self) -> Duration {
        self.interval
    }

    async fn poll(&self, cursor: Option<&str>) -> Result<PollPage, CallError> {
        let now = now_ms();
        let previous = match cursor {
            None => None,
            Some(raw) => {
                let c = Cursor::decode(raw);
                if c.is_none() {
                    tracing::warn!(
                        "linkedin_lead_gen: the stored cursor is unreadable; starting again from start_from (leads already taken are deduplicated)"
                    );
                }
                c
            }
        };
        let mut cursor =
            Cursor::for_accounts(previous, &self.accounts, self.start_from.resolve(now));
        // While some account is mid-window, finish those before opening new windows.
        let any_open = cursor.accounts.values().any(Window::is_open);
        let mut leads = Vec::new();
        let mut more = false;
        let mut skipped = 0usize;
        for (account, window) in cursor.accounts.iter_mut() {
            if any_open && !window.is_open() {
                continue;
            }
            let (from, to, start) = window.open(now);
            let page = self.fetch(account, from, to, start).await?;
            let mut max_ms = None;
            for element in &page.elements {
                match map_element(element) {
                    Some(m) => {
                        max_ms = max_ms.max(m.submitted_at_ms.map(|t| t.min(to)));
                        leads.push(m.lead);
                    }
                    None => skipped += 1,
                }
            }
            let facts = PageFacts {
                returned: page.elements.len() as u64,
                asked: u64::from(self.page_size),
                total: page.paging.total,
                max_ms,
            };
            more |= window.advance(facts, self.overlap_ms);
        }
        if skipped > 0 {
            tracing::warn!(
                skipped,
                "linkedin_lead_gen: form responses without an id were left out"
            );
        }
        Ok(PollPage {
            leads,
            next_cursor: cursor.encode(),
            more,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_map_to_what_the_engine_should_do() {
        let h = HeaderMap::new();
        let body = br#"{"status":400,"serviceErrorCode":100,"code":"ILLEGAL_ARGUMENT","message":"Invalid param"}"#;
        assert_eq!(
            classify(StatusCode::BAD_REQUEST, &h, body, 0),
            CallError::Permanent {
                message: "LinkedIn 400: ILLEGAL_ARGUMENT (100): Invalid param".into()
            }
        );
        assert!(matches!(
            classify(StatusCode::UNAUTHORIZED, &h, b"{}", 0),
            CallError::Auth { status: 401, .. }
        ));
        assert!(matches!(
            classify(StatusCode::FORBIDDEN, &h, b"", 0),
            CallError::Auth { status: 403, .. }
        ));
        assert!(matches!(
            classify(StatusCode::BAD_GATEWAY, &h, b"<html>", 0),
            CallError::Transient { .. }
        ));
        // Five minutes before midnight UTC: wait until the quota resets, not 15 minutes.
        let at = 86_400_000 - 300_000;
        match classify(StatusCode::TOO_MANY_REQUESTS, &h, b"", at) {
            CallError::RateLimited { retry_after, .. } => {
                assert_eq!(retry_after, Duration::from_secs(300))
            }
            other => panic!("{other:?}"),
        }
        let mut h = HeaderMap::new();
        h.insert("retry-after", "7".parse().unwrap());
        match classify(StatusCode::TOO_MANY_REQUESTS, &h, b"", 0) {
            CallError::RateLimited { retry_after, .. } => {
                assert_eq!(retry_after, Duration::from_secs(7))
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn urns_are_encoded_the_restli_way() {
        assert_eq!(
            restli_encode("urn:li:sponsoredAccount:123"),
            "urn%3Ali%3AsponsoredAccount%3A123"
        );
    }
}
