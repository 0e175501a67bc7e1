//! [`BrevoSource`]: one `GET /v3/contacts` per poll, oldest first, no retries (the daemon's
//! engine owns them): every failure comes back classified.

use std::time::Duration;

use async_trait::async_trait;
use reqwest::{StatusCode, header::HeaderMap};
use secrecy::{ExposeSecret, SecretString};

use crate::{
    BuildError,
    sink::{CallError, RateLimit},
    source::{PollPage, PolledSource},
    units::HumanDuration,
};

use super::{
    BrevoConfig, LeadsFrom,
    cursor::Cursor,
    mapping,
    wire::{Contact, ErrorBody, H_RESET},
};

const CONTACTS_PATH: &str = "v3/contacts";
/// Enough of an unexpected (non-JSON) body to recognise it, not enough to flood a log.
const BODY_EXCERPT: usize = 200;
/// A 429 without any header saying how long: Brevo's windows are per second or per hour.
const DEFAULT_THROTTLE: Duration = Duration::from_secs(10);

/// Reads new Brevo contacts as leads.
#[derive(Debug, Clone)]
pub struct BrevoSource {
    http: reqwest::Client,
    contacts_url: reqwest::Url,
    api_key: SecretString,
    interval: Duration,
    start_from: Duration,
    overlap: Duration,
    timeout: Duration,
    page_size: u32,
    list_ids: Vec<u64>,
    leads_from: LeadsFrom,
    rate_limit: RateLimit,
}

impl BrevoSource {
    pub fn new(config: &BrevoConfig) -> Result<Self, BuildError> {
        let bad_url = |reason: String| BuildError::BaseUrl {
            url: config.base_url.clone(),
            reason,
        };
        let contacts_url = super::parse_base_url(&config.base_url)
            .map_err(bad_url)?
            .join(CONTACTS_PATH)
            .map_err(|e| bad_url(e.to_string()))?;
        if config.api_key.expose_secret().trim().is_empty() {
            return Err(BuildError::Http("the Brevo api_key is empty".to_owned()));
        }
        let http = reqwest::Client::builder()
            .user_agent(concat!("tandem/", env!("CARGO_PKG_VERSION")))
            .timeout(config.timeout.0)
            .connect_timeout(config.timeout.0.min(Duration::from_secs(10)))
            .build()
            .map_err(|e| BuildError::Http(e.to_string()))?;
        Ok(BrevoSource {
            http,
            contacts_url,
            api_key: config.api_key.clone(),
            interval: config.poll_interval.0,
            start_from: config.start_from.0,
            overlap: config.overlap.0,
            timeout: config.timeout.0,
            page_size: config.page_size.clamp(1, super::MAX_PAGE_SIZE),
            list_ids: config.list_ids.clone(),
            leads_from: config.leads_from,
            rate_limit: config.effective_rate_limit(),
        })
    }

    /// The limit the daemon should pace this connector's calls by.
    pub fn rate_limit(&self) -> RateLimit {
        self.rate_limit
    }

    fn start(&self, cursor: Option<&str>) -> Cursor {
        let now = jiff::Timestamp::now().as_millisecond();
        let first = || Cursor::first(now, millis(self.start_from));
        match cursor {
            None => first(),
            Some(raw) => Cursor::decode(raw).unwrap_or_else(|| {
                tracing::warn!(
                    "brevo: the stored cursor is not one this connector wrote; starting again from start_from (duplicates are dropped by event id)"
                );
                first()
            }),
        }
    }

    fn transport_error(&self, e: reqwest::Error) -> CallError {
        let message = if e.is_timeout() {
            format!(
                "Brevo did not answer within {}",
                HumanDuration(self.timeout)
            )
        } else if e.is_connect() {
            format!("could not connect to Brevo: {}", error_chain(&e))
        } else {
            format!("Brevo connection failed: {}", error_chain(&e))
        };
        CallError::Transient {
            message,
            retry_after: None,
        }
    }
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// reqwest's error and its causes on one line, without the URL.
pub(crate) fn error_chain(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
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

fn header_secs(headers: &HeaderMap, name: &str) -> Option<Duration> {
    let raw = headers.get(name)?.to_str().ok()?.trim();
    // Brevo documents whole seconds; tolerate a fraction.
    let secs: f64 = raw.parse().ok()?;
    (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs.min(86_400.0)))
}

/// How long Brevo says to wait: `x-sib-ratelimit-reset`, else a `Retry-After` (seconds).
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    header_secs(headers, H_RESET).or_else(|| header_secs(headers, "retry-after"))
}

fn describe(status: StatusCode, body: &[u8]) -> String {
    match serde_json::from_slice::<ErrorBody>(body) {
        Ok(e) if !e.message.is_empty() || !e.code.is_empty() => {
            let code = if e.code.is_empty() { "error" } else { &e.code };
            format!("Brevo {} {code}: {}", status.as_u16(), e.message)
        }
        _ => {
            let text = String::from_utf8_lossy(body);
            let excerpt: String = text.trim().chars().take(BODY_EXCERPT).collect();
            if excerpt.is_empty() {
                format!("Brevo answered {status} with an empty body")
            } else {
                format!("Brevo answered {status}: {excerpt}")
            }
        }
    }
}

/// A non-success answer, as what the engine should do next.
pub fn classify(status: StatusCode, headers: &HeaderMap, body: &[u8]) -> CallError {
    let message = describe(status, body);
    let retry_after = retry_after(headers);
    CallError::from_status(
        status.as_u16(),
        message,
        retry_after.unwrap_or(DEFAULT_THROTTLE),
        retry_after,
    )
}

/// A decoded page: its leads, how many contacts it held, its newest stamp and Brevo's `count`.
#[derive(Debug, Default)]
pub struct Decoded {
    pub leads: Vec<crate::source::SourceLead>,
    pub len: u64,
    pub newest_ms: Option<i64>,
    pub count: Option<u64>,
}

/// A 200's body → a [`Decoded`] page. Never panics; a body that isn't a contacts page is an
/// error, one unreadable contact is skipped.
pub fn decode_page(body: &[u8], mode: LeadsFrom) -> Result<Decoded, String> {
    // Brevo answers an empty result with an empty body on some endpoints; treat it as no contacts.
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Decoded {
            count: Some(0),
            ..Decoded::default()
        });
    }
    let page: RawPage = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    let len = u64::try_from(page.contacts.len()).unwrap_or(u64::MAX);
    // One contact tandem can't read never sinks its page: it is skipped and counted.
    let contacts: Vec<Contact> = page
        .contacts
        .into_iter()
        .filter_map(|c| serde_json::from_value(c).ok())
        .collect();
    let unreadable = page_len(len) - contacts.len();
    if unreadable > 0 {
        tracing::warn!(unreadable, "brevo: skipped contacts tandem could not read");
    }
    let newest = contacts
        .iter()
        .filter_map(|c| mapping::lead_stamp_ms(c, mode))
        .max();
    let leads = contacts
        .iter()
        .filter_map(|c| mapping::to_lead(c, mode))
        .collect();
    let count = page.count.as_ref().and_then(serde_json::Value::as_u64);
    Ok(Decoded {
        leads,
        len,
        newest_ms: newest,
        count,
    })
}

/// A page decoded only as far as its list, so each contact is read on its own.
#[derive(serde::Deserialize)]
struct RawPage {
    #[serde(default, deserialize_with = "null_as_empty")]
    contacts: Vec<serde_json::Value>,
    #[serde(default)]
    count: Option<serde_json::Value>,
}

fn null_as_empty<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Vec<serde_json::Value>, D::Error> {
    use serde::Deserialize;
    Ok(Option::<Vec<serde_json::Value>>::deserialize(d)?.unwrap_or_default())
}

fn page_len(len: u64) -> usize {
    usize::try_from(len).unwrap_or(usize::MAX)
}

#[async_trait]
impl PolledSource for BrevoSource {
    fn interval(&self) -> Duration {
        self.interval
    }

    fn rate_limit(&self) -> Option<RateLimit> {
        Some(BrevoSource::rate_limit(self))
    }

    async fn poll(&self, cursor: Option<&str>) -> Result<PollPage, CallError> {
        let at = self.start(cursor);
        let since = mapping::rfc3339(at.since_ms).unwrap_or_default();
        let since_key = match self.leads_from {
            LeadsFrom::Created => "createdSince",
            LeadsFrom::Updated => "modifiedSince",
        };
        let mut query: Vec<(&str, String)> = vec![
            ("limit", self.page_size.to_string()),
            ("offset", at.offset.to_string()),
            ("sort", "asc".to_owned()),
            (since_key, since),
        ];
        for id in &self.list_ids {
            query.push(("listIds", id.to_string()));
        }
        let response = self
            .http
            .get(self.contacts_url.clone())
            .header("api-key", self.api_key.expose_secret())
            .header(reqwest::header::ACCEPT, "application/json")
            .query(&query)
            .send()
            .await
            .map_err(|e| self.transport_error(e))?;
        let status = response.status();
        let headers = response.headers().clone();
        let body = response
            .bytes()
            .await
            .map_err(|e| self.transport_error(e))?;
        if !status.is_success() {
            return Err(classify(status, &headers, &body));
        }
        let page = decode_page(&body, self.leads_from).map_err(|e| CallError::Transient {
            message: format!("Brevo answered {status} with a body tandem could not read: {e}"),
            retry_after: None,
        })?;
        let (next, more) = at.after_page(
            page.len,
            u64::from(self.page_size),
            page.newest_ms,
            page.count,
            millis(self.overlap),
        );
        Ok(PollPage {
            leads: page.leads,
            next_cursor: next.encode(),
            more,
        })
    }
}

#[cfg(test)]
mod tests {
    use reqwest::header::HeaderValue;

    use super::*;

    #[test]
    fn classification_follows_status_and_headers() {
        let mut h = HeaderMap::new();
        h.insert(H_RESET, HeaderValue::from_static("7"));
        let e = classify(
            StatusCode::TOO_MANY_REQUESTS,
            &h,
            br#"{"code":"too_many_requests","message":"slow down"}"#,
        );
        assert_eq!(
            e,
            CallError::RateLimited {
                message: "Brevo 429 too_many_requests: slow down".to_owned(),
                retry_after: Duration::from_secs(7)
            }
        );
        let e = classify(StatusCode::UNAUTHORIZED, &HeaderMap::new(), b"");
        assert!(matches!(e, CallError::Auth { status: 401, .. }));
        let e = classify(
            StatusCode::BAD_GATEWAY,
            &HeaderMap::new(),
            b"<html>bad</html>",
        );
        assert!(
            matches!(e, CallError::Transient { ref message, .. } if message.contains("<html>bad"))
        );
        let e = classify(
            StatusCode::BAD_REQUEST,
            &HeaderMap::new(),
            br#"{"code":"invalid_parameter","message":"createdSince is invalid"}"#,
        );
        assert_eq!(
            e,
            CallError::Permanent {
                message: "Brevo 400 invalid_parameter: createdSince is invalid".to_owned()
            }
        );
    }

    #[test]
    fn arbitrary_bodies_never_panic() {
        let seeds: [&[u8]; 6] = [
            br#"{"contacts":[{"id":1,"email":"a@b.co","createdAt":"2024-01-01T00:00:00Z","attributes":{"SMS":1}}],"count":1}"#,
            br#"{"contacts":[{"id":"x","createdAt":"not a date","attributes":[]}]}"#,
            br#"{"contacts":null}"#,
            b"[]",
            b"\xff\xfe",
            b"",
        ];
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        for seed in seeds {
            for round in 0..400 {
                let mut bytes = seed.to_vec();
                for _ in 0..(round % 7) {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    if bytes.is_empty() {
                        bytes.push(state as u8);
                        continue;
                    }
                    let at = (state as usize) % bytes.len();
                    match state % 3 {
                        0 => bytes[at] = (state >> 8) as u8,
                        1 => bytes.truncate(at),
                        _ => bytes.insert(at, b"{}[]\",:0"[(state >> 16) as usize % 8]),
                    }
                }
                let _ = decode_page(&bytes, LeadsFrom::Created);
                let _ = decode_page(&bytes, LeadsFrom::Updated);
                let _ = classify(StatusCode::BAD_REQUEST, &HeaderMap::new(), &bytes);
            }
        }
    }
}
