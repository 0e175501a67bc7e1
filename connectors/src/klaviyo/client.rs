//! [`KlaviyoSource`]: one JSON:API GET per poll, oldest first, no retries (the daemon's engine
//! owns them): every failure comes back classified.

use std::time::Duration;

use async_trait::async_trait;
use reqwest::{StatusCode, header::HeaderMap};
use secrecy::{ExposeSecret, SecretString};

use crate::{
    BuildError,
    sink::{CallError, RateLimit},
    source::{PollPage, PolledSource, SourceLead},
    units::HumanDuration,
};

use super::{
    KlaviyoConfig,
    cursor::Cursor,
    mapping::{self, Stamp},
    wire::{Collection, ErrorBody, H_RESET, Profile},
};

const BODY_EXCERPT: usize = 200;
/// A 429 without `Retry-After`: the steady window is a minute.
const DEFAULT_THROTTLE: Duration = Duration::from_secs(60);
const JSON_API: &str = "application/vnd.api+json";

/// Reads new Klaviyo profiles (or new members of one list) as leads.
#[derive(Debug, Clone)]
pub struct KlaviyoSource {
    http: reqwest::Client,
    url: reqwest::Url,
    api_key: SecretString,
    revision: String,
    stamp: Stamp,
    interval: Duration,
    start_from: Duration,
    overlap: Duration,
    timeout: Duration,
    page_size: u32,
    rate_limit: RateLimit,
}

impl KlaviyoSource {
    pub fn new(config: &KlaviyoConfig) -> Result<Self, BuildError> {
        let bad_url = |reason: String| BuildError::BaseUrl {
            url: config.base_url.clone(),
            reason,
        };
        let path = match &config.list_id {
            Some(id) if id.bytes().all(|b| b.is_ascii_alphanumeric()) && !id.is_empty() => {
                format!("api/lists/{id}/profiles")
            }
            Some(_) => return Err(BuildError::Http("list_id is not a Klaviyo list id".into())),
            None => "api/profiles".to_owned(),
        };
        let url = crate::brevo::parse_base_url(&config.base_url)
            .map_err(bad_url)?
            .join(&path)
            .map_err(|e| bad_url(e.to_string()))?;
        if config.api_key.expose_secret().trim().is_empty() {
            return Err(BuildError::Http("the Klaviyo api_key is empty".to_owned()));
        }
        let http = reqwest::Client::builder()
            .user_agent(concat!("tandem/", env!("CARGO_PKG_VERSION")))
            .timeout(config.timeout.0)
            .connect_timeout(config.timeout.0.min(Duration::from_secs(10)))
            .build()
            .map_err(|e| BuildError::Http(e.to_string()))?;
        Ok(KlaviyoSource {
            http,
            url,
            api_key: config.api_key.clone(),
            revision: config.revision.trim().to_owned(),
            stamp: Stamp::for_config(config.leads_from, config.list_id.is_some()),
            interval: config.poll_interval.0,
            start_from: config.start_from.0,
            overlap: config.overlap.0,
            timeout: config.timeout.0,
            page_size: config.page_size.clamp(1, super::MAX_PAGE_SIZE),
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
                    "klaviyo: the stored cursor is not one this connector wrote; starting again from start_from (duplicates are dropped by event id)"
                );
                first()
            }),
        }
    }

    fn transport_error(&self, e: reqwest::Error) -> CallError {
        let chain = crate::brevo::client::error_chain(&e);
        let message = if e.is_timeout() {
            format!(
                "Klaviyo did not answer within {}",
                HumanDuration(self.timeout)
            )
        } else if e.is_connect() {
            format!("could not connect to Klaviyo: {chain}")
        } else {
            format!("Klaviyo connection failed: {chain}")
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

fn header_secs(headers: &HeaderMap, name: &str) -> Option<Duration> {
    let raw = headers.get(name)?.to_str().ok()?.trim();
    let secs: f64 = raw.parse().ok()?;
    (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs.min(86_400.0)))
}

/// `Retry-After` (seconds) on a 429, else the steady window's `RateLimit-Reset`.
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    header_secs(headers, "retry-after").or_else(|| header_secs(headers, H_RESET))
}

fn describe(status: StatusCode, body: &[u8]) -> String {
    if let Ok(e) = serde_json::from_slice::<ErrorBody>(body)
        && !e.errors.is_empty()
    {
        let parts: Vec<String> = e
            .errors
            .iter()
            .take(3)
            .map(|o| {
                let code = if o.code.is_empty() { "error" } else { &o.code };
                let text = if o.detail.is_empty() {
                    &o.title
                } else {
                    &o.detail
                };
                format!("{code}: {text}")
            })
            .collect();
        return format!("Klaviyo {} {}", status.as_u16(), parts.join("; "));
    }
    let text = String::from_utf8_lossy(body);
    let excerpt: String = text.trim().chars().take(BODY_EXCERPT).collect();
    if excerpt.is_empty() {
        format!("Klaviyo answered {status} with an empty body")
    } else {
        format!("Klaviyo answered {status}: {excerpt}")
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

/// `page[cursor]` out of a `links.next` URL.
pub fn page_cursor(next: &str) -> Option<String> {
    let url = reqwest::Url::parse(next.trim()).ok()?;
    url.query_pairs()
        .find(|(k, _)| k == "page[cursor]")
        .map(|(_, v)| v.into_owned())
        .filter(|v| !v.is_empty())
}

/// A decoded page: its leads, newest stamp, and Klaviyo's next page cursor.
#[derive(Debug, Default)]
pub struct Decoded {
    pub leads: Vec<SourceLead>,
    pub newest_ms: Option<i64>,
    pub next_page: Option<String>,
    pub resources: usize,
}

/// A 200's body → a [`Decoded`] page. Never panics; a body that isn't a JSON:API collection is
/// an error, one unreadable profile is skipped.
pub fn decode_page(body: &[u8], stamp: Stamp) -> Result<Decoded, String> {
    let page: Collection = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    let resources = page.data.len();
    let profiles: Vec<Profile> = page
        .data
        .into_iter()
        .filter_map(|v| serde_json::from_value(v).ok())
        .collect();
    if profiles.len() < resources {
        tracing::warn!(
            unreadable = resources - profiles.len(),
            "klaviyo: skipped profiles tandem could not read"
        );
    }
    Ok(Decoded {
        newest_ms: profiles
            .iter()
            .filter_map(|p| mapping::lead_stamp_ms(p, stamp))
            .max(),
        leads: profiles
            .iter()
            .filter_map(|p| mapping::to_lead(p, stamp))
            .collect(),
        next_page: page.links.next.as_deref().and_then(page_cursor),
        resources,
    })
}

#[async_trait]
impl PolledSource for KlaviyoSource {
    fn interval(&self) -> Duration {
        self.interval
    }

    fn rate_limit(&self) -> Option<RateLimit> {
        Some(KlaviyoSource::rate_limit(self))
    }

    async fn poll(&self, cursor: Option<&str>) -> Result<PollPage, CallError> {
        let at = self.start(cursor);
        let field = self.stamp.field();
        let mut query = vec![
            (
                "filter",
                format!(
                    "greater-than({field},{})",
                    at.since_filter()
                        .unwrap_or_else(|| "1970-01-01T00:00:00Z".into())
                ),
            ),
            ("sort", field.to_owned()),
            ("page[size]", self.page_size.to_string()),
        ];
        if let Some(page) = &at.page {
            query.push(("page[cursor]", page.clone()));
        }
        let response = self
            .http
            .get(self.url.clone())
            .header(
                reqwest::header::AUTHORIZATION,
                format!("Klaviyo-API-Key {}", self.api_key.expose_secret().trim()),
            )
            .header("revision", &self.revision)
            .header(reqwest::header::ACCEPT, JSON_API)
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
        if status == StatusCode::BAD_REQUEST && at.page.is_some() {
            // A page cursor Klaviyo no longer accepts (expired): restart this pass from its
            // `since`; what was read already comes again under the same event ids.
            tracing::warn!(
                "klaviyo: the page cursor was refused ({}); restarting the pass",
                describe(status, &body)
            );
            return Ok(PollPage {
                leads: Vec::new(),
                next_cursor: Cursor { page: None, ..at }.encode(),
                more: true,
            });
        }
        if !status.is_success() {
            return Err(classify(status, &headers, &body));
        }
        let page = decode_page(&body, self.stamp).map_err(|e| CallError::Transient {
            message: format!("Klaviyo answered {status} with a body tandem could not read: {e}"),
            retry_after: None,
        })?;
        // An empty page, or one pointing at itself, ends the pass (never loop on it).
        let next_page = page
            .next_page
            .filter(|p| page.resources > 0 && Some(p) != at.page.as_ref());
        let (next, more) = at.after_page(page.newest_ms, next_page, millis(self.overlap));
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
    fn classification_follows_status_and_json_api_errors() {
        let mut h = HeaderMap::new();
        h.insert("retry-after", HeaderValue::from_static("3"));
        let e = classify(
            StatusCode::TOO_MANY_REQUESTS,
            &h,
            br#"{"errors":[{"status":429,"code":"throttled","title":"Request was throttled.","detail":"Expected available in 3 seconds."}]}"#,
        );
        assert_eq!(
            e,
            CallError::RateLimited {
                message: "Klaviyo 429 throttled: Expected available in 3 seconds.".into(),
                retry_after: Duration::from_secs(3)
            }
        );
        let e = classify(
            StatusCode::BAD_REQUEST,
            &HeaderMap::new(),
            br#"{"errors":[{"status":400,"code":"invalid","title":"Invalid input.","detail":"'foo' is not a valid field for the resource 'profile'.","source":{"parameter":"filter"}}]}"#,
        );
        assert!(
            matches!(e, CallError::Permanent { ref message } if message == "Klaviyo 400 invalid: 'foo' is not a valid field for the resource 'profile'."),
            "{e:?}"
        );
        assert!(matches!(
            classify(StatusCode::FORBIDDEN, &HeaderMap::new(), b"{}"),
            CallError::Auth { status: 403, .. }
        ));
        assert!(matches!(
            classify(
                StatusCode::SERVICE_UNAVAILABLE,
                &HeaderMap::new(),
                b"<html>"
            ),
            CallError::Transient { .. }
        ));
    }

    #[test]
    fn page_cursors_come_out_of_links_next() {
        assert_eq!(
            page_cursor("https://a.klaviyo.com/api/profiles?page%5Bcursor%5D=bmV4dDo6aWQ6OjQz&page%5Bsize%5D=100")
                .as_deref(),
            Some("bmV4dDo6aWQ6OjQz")
        );
        assert_eq!(page_cursor("not a url"), None);
        assert_eq!(
            page_cursor("https://a.klaviyo.com/api/profiles?page[size]=1"),
            None
        );
    }

    #[test]
    fn arbitrary_bodies_never_panic() {
        let seeds: [&[u8]; 5] = [
            br#"{"data":[{"type":"profile","id":"01A","attributes":{"email":"a@b.co","created":"2024-01-01T00:00:00+00:00","location":{"country":"DE"},"properties":{"utm_source":"x"}}}],"links":{"next":"https://a.klaviyo.com/api/profiles?page%5Bcursor%5D=abc"}}"#,
            br#"{"data":[{"type":"profile","id":5,"attributes":[]}],"links":null}"#,
            br#"{"data":null}"#,
            br#"{"errors":[{"status":"500"}]}"#,
            b"",
        ];
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
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
                for stamp in [Stamp::Created, Stamp::Updated, Stamp::Joined] {
                    let _ = decode_page(&bytes, stamp);
                }
                let _ = classify(StatusCode::BAD_REQUEST, &HeaderMap::new(), &bytes);
            }
        }
    }
}
