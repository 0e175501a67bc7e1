//! [`MailchimpSource`]: one members page per poll, no retries of its own (the daemon owns them).
//! Every failure is classified for the engine.

use std::time::{Duration, Instant};

use async_trait::async_trait;
use reqwest::{StatusCode, Url, header::HeaderMap};
use secrecy::{ExposeSecret, SecretString};

use crate::{
    BuildError, ConnectorContext,
    linkedin_lead_gen::StartFrom,
    sink::{CallError, RateLimit},
    source::{PollPage, PolledSource},
};

use super::{
    MailchimpConfig,
    cursor::{Cursor, PageFacts},
    mapping::map_member,
    wire::{MembersPage, Problem},
};

/// A 429 says nothing about when to come back (no `Retry-After`): the 10-connection limit frees
/// as soon as other requests finish, so a short wait is enough.
pub const THROTTLE_WAIT: Duration = Duration::from_secs(10);
const BODY_EXCERPT: usize = 200;

fn now_ms() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}

/// Mailchimp's filters take whole seconds: `2026-03-01T10:00:00+00:00`.
pub fn iso_seconds(secs: i64) -> String {
    jiff::Timestamp::from_second(secs)
        .unwrap_or(jiff::Timestamp::UNIX_EPOCH)
        .strftime("%Y-%m-%dT%H:%M:%S+00:00")
        .to_string()
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

pub(crate) enum Auth {
    /// HTTP Basic `anystring:KEY`.
    ApiKey(SecretString),
    /// `Authorization: Bearer` (OAuth; Mailchimp's tokens don't expire).
    Bearer(SecretString),
}

impl Auth {
    pub(crate) fn from_config(config: &MailchimpConfig) -> Result<Auth, BuildError> {
        match (&config.api_key, &config.access_token) {
            (Some(k), None) => Ok(Auth::ApiKey(k.clone())),
            (None, Some(t)) => Ok(Auth::Bearer(t.clone())),
            _ => Err(BuildError::Http(
                "set exactly one of `api_key` and `access_token`".to_owned(),
            )),
        }
    }

    pub(crate) fn apply(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match self {
            Auth::ApiKey(k) => request.basic_auth("tandem", Some(k.expose_secret())),
            Auth::Bearer(t) => request.bearer_auth(t.expose_secret()),
        }
    }
}

/// The API root (`…/3.0/`) and the audience id of a config, checked.
pub(crate) fn base_and_list(config: &MailchimpConfig) -> Result<(Url, String), BuildError> {
    let raw = config.effective_base_url().ok_or_else(|| {
        BuildError::Http(
            "no Mailchimp data centre: use an API key ending in \"-us21\", or set `dc`".to_owned(),
        )
    })?;
    let base = crate::hubspot::parse_base_url(&raw).map_err(|reason| BuildError::BaseUrl {
        url: raw.clone(),
        reason,
    })?;
    let list_id = config.list_id.trim().to_owned();
    if list_id.is_empty() || !list_id.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(BuildError::Http(
            "`list_id` is not an audience id".to_owned(),
        ));
    }
    Ok((base, list_id))
}

/// The polled Mailchimp source of one connector.
pub struct MailchimpSource {
    http: reqwest::Client,
    auth: Auth,
    members_url: Url,
    list_id: String,
    statuses: Vec<String>,
    interval: Duration,
    start_from: StartFrom,
    overlap_ms: i64,
    page_size: u32,
    timeout: Duration,
    pacer: Pacer,
}

impl std::fmt::Debug for MailchimpSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MailchimpSource")
            .field("members_url", &self.members_url.as_str())
            .field("auth", &"[redacted]")
            .finish_non_exhaustive()
    }
}

impl MailchimpSource {
    pub fn new(config: &MailchimpConfig, _ctx: ConnectorContext) -> Result<Self, BuildError> {
        let (base, list_id) = base_and_list(config)?;
        let members_url = base
            .join(&format!("lists/{list_id}/members"))
            .map_err(|e| BuildError::BaseUrl {
                url: base.to_string(),
                reason: e.to_string(),
            })?;
        let auth = Auth::from_config(config)?;
        let http = reqwest::Client::builder()
            .user_agent(concat!("tandem/", env!("CARGO_PKG_VERSION")))
            .timeout(config.timeout.0)
            .connect_timeout(config.timeout.0.min(Duration::from_secs(10)))
            .build()
            .map_err(|e| BuildError::Http(e.to_string()))?;
        Ok(MailchimpSource {
            http,
            auth,
            members_url,
            list_id,
            statuses: config.statuses.clone(),
            interval: config.poll_interval.0,
            start_from: config.start_from,
            overlap_ms: i64::try_from(config.overlap.0.as_millis()).unwrap_or(i64::MAX),
            page_size: config.page_size.clamp(1, super::MAX_PAGE_SIZE),
            timeout: config.timeout.0,
            pacer: Pacer::new(config.effective_rate_limit()),
        })
    }

    /// One page of members changed in `[from_ms, to_ms]`, oldest change first.
    pub async fn fetch(
        &self,
        from_ms: i64,
        to_ms: i64,
        offset: u64,
    ) -> Result<MembersPage, CallError> {
        let since = iso_seconds(from_ms.div_euclid(1000));
        // The upper bound stays a full second behind "now" (whether Mailchimp's bound is
        // inclusive or not): a member edited while the window is paged then always leaves it
        // (`total_items` shrinks, the window is read again) instead of moving to its end within
        // the same second, which would shift an unread member to an offset already passed.
        // Members of that last second are read by the next window.
        let before = iso_seconds(to_ms.div_euclid(1000) - 1);
        let mut request = self.http.get(self.members_url.clone()).query(&[
            ("since_last_changed", since.as_str()),
            ("before_last_changed", before.as_str()),
            ("sort_field", "last_changed"),
            ("sort_dir", "ASC"),
            ("count", &self.page_size.to_string()),
            ("offset", &offset.to_string()),
        ]);
        request = self.auth.apply(request);
        self.pacer.wait().await;
        let response = request.send().await.map_err(|e| self.transport_error(&e))?;
        let status = response.status();
        let headers = response.headers().clone();
        let body = response
            .bytes()
            .await
            .map_err(|e| self.transport_error(&e))?;
        if !status.is_success() {
            return Err(classify(status, &headers, &body));
        }
        serde_json::from_slice::<MembersPage>(&body).map_err(|e| CallError::Transient {
            // serde's message may quote the body (personal data): say where, not what.
            message: format!(
                "Mailchimp answered {status} with a body tandem could not read ({:?} error at line {}, column {})",
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
                "Mailchimp did not answer within {}",
                crate::units::HumanDuration(self.timeout)
            )
        } else if e.is_connect() {
            "could not connect to Mailchimp".to_owned()
        } else if e.is_body() || e.is_decode() {
            "the connection to Mailchimp broke off mid-answer".to_owned()
        } else {
            "the request to Mailchimp failed".to_owned()
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

/// A non-success answer in the engine's terms.
pub fn classify(status: StatusCode, headers: &HeaderMap, body: &[u8]) -> CallError {
    let problem = serde_json::from_slice::<Problem>(body)
        .ok()
        .and_then(|p| p.describe());
    let message = match &problem {
        Some(d) => format!("Mailchimp {}: {d}", status.as_u16()),
        None => {
            let text = String::from_utf8_lossy(body);
            let excerpt: String = text.trim().chars().take(BODY_EXCERPT).collect();
            if excerpt.is_empty() {
                format!("Mailchimp answered {status} with an empty body")
            } else {
                format!("Mailchimp answered {status}: {excerpt}")
            }
        }
    };
    let retry_after = retry_after(headers);
    let throttle_wait = retry_after.unwrap_or(THROTTLE_WAIT);
    match status.as_u16() {
        // Under very high load Mailchimp's edge answers a bare 403 (no problem body): a
        // throttle, not a verdict on the credentials.
        403 if problem.is_none() => CallError::RateLimited {
            message,
            retry_after: throttle_wait,
        },
        s => CallError::from_status(s, message, throttle_wait, retry_after),
    }
}

#[async_trait]
impl PolledSource for MailchimpSource {
    fn interval(&self) -> Duration {
        self.interval
    }

    async fn poll(&self, cursor: Option<&str>) -> Result<PollPage, CallError> {
        let now = now_ms();
        let stored = cursor.and_then(|raw| {
            let c = Cursor::decode(raw, &self.list_id);
            if c.is_none() {
                tracing::warn!(
                    "mailchimp: the stored cursor is unreadable or for another audience; starting again from start_from (members already taken are deduplicated)"
                );
            }
            c
        });
        let mut cursor =
            stored.unwrap_or_else(|| Cursor::new(&self.list_id, self.start_from.resolve(now)));
        let (from, to, offset) = cursor.window.open(now);
        let page = self.fetch(from, to, offset).await?;
        let mut leads = Vec::new();
        let mut max_ms = None;
        let mut skipped = 0usize;
        for member in &page.members {
            let Some(m) = map_member(member, &self.list_id) else {
                skipped += 1;
                continue;
            };
            // The window is on last_changed, whatever the status: a page of unsubscribes still
            // moves the cursor.
            max_ms = max_ms.max(m.last_changed_ms.map(|t| t.min(to)));
            if m.status.as_ref().is_some_and(|s| self.statuses.contains(s)) {
                leads.push(m.lead);
            }
        }
        if skipped > 0 {
            tracing::warn!(skipped, "mailchimp: members without an id were left out");
        }
        let facts = PageFacts {
            returned: page.members.len() as u64,
            asked: u64::from(self.page_size),
            total: page.total_items,
            max_ms,
        };
        let more = cursor.window.advance(facts, self.overlap_ms);
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
        let body = br#"{"type":"https://mailchimp.com/developer/marketing/docs/errors/","title":"Invalid Resource","status":400,"detail":"Your merge fields were invalid.","instance":"8cf2","errors":[{"field":"VORNAME","message":"Please enter a value"}]}"#;
        assert_eq!(
            classify(StatusCode::BAD_REQUEST, &h, body),
            CallError::Permanent {
                message: "Mailchimp 400: Invalid Resource: Your merge fields were invalid. (VORNAME: Please enter a value)".into()
            }
        );
        let not_found = br#"{"title":"Resource Not Found","status":404,"detail":"The requested resource could not be found."}"#;
        assert!(matches!(
            classify(StatusCode::NOT_FOUND, &h, not_found),
            CallError::Permanent { .. }
        ));
        assert!(matches!(
            classify(StatusCode::UNAUTHORIZED, &h, b"{}"),
            CallError::Auth { status: 401, .. }
        ));
        let forbidden = br#"{"title":"Forbidden","status":403,"detail":"User disabled"}"#;
        assert!(matches!(
            classify(StatusCode::FORBIDDEN, &h, forbidden),
            CallError::Auth { status: 403, .. }
        ));
        assert!(matches!(
            classify(StatusCode::FORBIDDEN, &h, b""),
            CallError::RateLimited { .. }
        ));
        assert_eq!(
            classify(StatusCode::TOO_MANY_REQUESTS, &h, b""),
            CallError::RateLimited {
                message: "Mailchimp answered 429 Too Many Requests with an empty body".into(),
                retry_after: THROTTLE_WAIT
            }
        );
        assert!(matches!(
            classify(StatusCode::SERVICE_UNAVAILABLE, &h, b"<html>"),
            CallError::Transient { .. }
        ));
    }

    #[test]
    fn filters_are_whole_seconds_in_utc() {
        assert_eq!(iso_seconds(1_772_323_200), "2026-03-01T00:00:00+00:00");
    }
}
