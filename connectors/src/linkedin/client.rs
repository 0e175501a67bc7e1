//! [`LinkedinConversions`]: the [`WritebackSink`] for LinkedIn's Conversions API. One
//! `BATCH_CREATE` per batch, each element's status mapped back to its conversion; no retries of
//! its own (the daemon owns them; LinkedIn's dedup on `eventId` makes a resend harmless).

use std::{collections::BTreeMap, time::Duration};

use async_trait::async_trait;
use reqwest::{StatusCode, Url, header::HeaderMap};
use secrecy::{ExposeSecret, SecretString};

use crate::{
    BuildError,
    sink::{BatchOutcome, CallError, ItemResult, RateLimit},
    writeback::{Conversion, Milestone, WritebackAction, WritebackSink},
};

use super::{
    LinkedinConfig, MAX_BATCH, mapping,
    wire::{BatchCreate, BatchCreateResponse, ConversionRule, ErrorBody},
};

/// The Rest.li protocol version every versioned LinkedIn API expects.
pub const RESTLI_PROTOCOL: &str = "2.0.0";
/// A 429 without `Retry-After`: the Conversions API's limit is per minute.
pub const THROTTLE_WAIT: Duration = Duration::from_secs(60);
const BODY_EXCERPT: usize = 200;

/// Writes conversions to LinkedIn.
pub struct LinkedinConversions {
    http: reqwest::Client,
    base: Url,
    token: SecretString,
    version: String,
    rules: BTreeMap<Milestone, String>,
    rate_limit: RateLimit,
    timeout: Duration,
}

impl std::fmt::Debug for LinkedinConversions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LinkedinConversions")
            .field("base", &self.base.as_str())
            .field("version", &self.version)
            .field("rules", &self.rules)
            .field("token", &"[redacted]")
            .finish_non_exhaustive()
    }
}

fn now_ms() -> i64 {
    jiff::Timestamp::now().as_millisecond()
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

fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let v = headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?;
    v.trim().parse::<u64>().ok().map(Duration::from_secs)
}

/// A non-success answer in the engine's terms (no LinkedIn exception to the common reading).
pub fn classify(status: StatusCode, headers: &HeaderMap, body: &[u8]) -> CallError {
    let named = retry_after(headers);
    CallError::from_status(
        status.as_u16(),
        describe(status, body),
        named.unwrap_or(THROTTLE_WAIT),
        named,
    )
}

impl LinkedinConversions {
    pub fn new(config: &LinkedinConfig) -> Result<Self, BuildError> {
        let base = crate::hubspot::parse_base_url(&config.base_url).map_err(|reason| {
            BuildError::BaseUrl {
                url: config.base_url.clone(),
                reason,
            }
        })?;
        let http = reqwest::Client::builder()
            .user_agent(concat!("tandem/", env!("CARGO_PKG_VERSION")))
            .timeout(config.timeout.0)
            .connect_timeout(config.timeout.0.min(Duration::from_secs(10)))
            .build()
            .map_err(|e| BuildError::Http(e.to_string()))?;
        Ok(LinkedinConversions {
            http,
            base,
            token: config.access_token.clone(),
            version: config.linkedin_version.trim().to_owned(),
            rules: config.rules(),
            rate_limit: config.effective_rate_limit(),
            timeout: config.timeout.0,
        })
    }

    fn url(&self, path: &str) -> Url {
        let mut url = self.base.clone();
        url.set_path(&format!("{}{path}", self.base.path()));
        url
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

    async fn call(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<(StatusCode, HeaderMap, Vec<u8>), CallError> {
        let response = request
            .bearer_auth(self.token.expose_secret())
            .header("LinkedIn-Version", &self.version)
            .header("X-Restli-Protocol-Version", RESTLI_PROTOCOL)
            .send()
            .await
            .map_err(|e| self.transport_error(&e))?;
        let status = response.status();
        let headers = response.headers().clone();
        // A body cut off mid-way is a dropped connection: the events may be in, and the resend
        // is deduplicated by LinkedIn on eventId.
        let body = response
            .bytes()
            .await
            .map_err(|e| self.transport_error(&e))?;
        Ok((status, headers, body.to_vec()))
    }

    /// One element's status as the item's result.
    fn element_result(c: &Conversion, status: u16, error: Option<&ErrorBody>) -> ItemResult {
        let text = || {
            let why = error
                .and_then(ErrorBody::describe)
                .unwrap_or_else(|| format!("status {status}"));
            format!("LinkedIn {status}: {why}")
        };
        match status {
            200 | 201 => ItemResult::Done {
                remote_id: c.key.clone(),
                created: true,
            },
            // Already there: the event of an earlier, unrecorded send.
            409 => ItemResult::Done {
                remote_id: c.key.clone(),
                created: false,
            },
            408 | 425 | 429 => ItemResult::Transient { message: text() },
            s if s >= 500 => ItemResult::Transient { message: text() },
            _ => ItemResult::Permanent { message: text() },
        }
    }
}

#[async_trait]
impl WritebackSink for LinkedinConversions {
    fn max_batch(&self) -> usize {
        MAX_BATCH
    }

    fn default_rate_limit(&self) -> RateLimit {
        self.rate_limit
    }

    fn accepts(&self, milestone: Milestone) -> bool {
        self.rules.contains_key(&milestone)
    }

    /// Sends only: the Conversions API has no restatement or retraction.
    fn supports(&self, action: WritebackAction) -> bool {
        action == WritebackAction::Send
    }

    async fn send(&self, batch: &[Conversion]) -> Result<BatchOutcome, CallError> {
        let now = now_ms();
        let mut items: Vec<Option<ItemResult>> = vec![None; batch.len()];
        let mut sent = Vec::new();
        let mut elements = Vec::new();
        for (i, c) in batch.iter().enumerate() {
            match mapping::event(c, &self.rules, now) {
                Ok(e) => {
                    sent.push(i);
                    elements.push(e);
                }
                Err(message) => items[i] = Some(ItemResult::Permanent { message }),
            }
        }
        if !elements.is_empty() {
            let body = BatchCreate { elements };
            let request = self
                .http
                .post(self.url("conversionEvents"))
                .header("X-RestLi-Method", "BATCH_CREATE")
                .json(&body);
            let (status, headers, raw) = self.call(request).await?;
            if !status.is_success() {
                return Err(classify(status, &headers, &raw));
            }
            let answer = serde_json::from_slice::<BatchCreateResponse>(&raw)
                .ok()
                .filter(|a| a.elements.len() == sent.len())
                .ok_or_else(|| CallError::Transient {
                    message: format!(
                        "LinkedIn answered {status} without one status per event ({} sent)",
                        sent.len()
                    ),
                    retry_after: None,
                })?;
            for (&i, element) in sent.iter().zip(&answer.elements) {
                items[i] = Some(Self::element_result(
                    &batch[i],
                    element.status,
                    element.error.as_ref(),
                ));
            }
        }
        Ok(BatchOutcome {
            items: items
                .into_iter()
                .map(|r| {
                    r.unwrap_or_else(|| ItemResult::Transient {
                        message: "LinkedIn gave no answer for this conversion".to_owned(),
                    })
                })
                .collect(),
            pause_for: None,
        })
    }

    /// Reads each configured rule (`GET /rest/conversions/{id}`): it must exist, be enabled and
    /// take Conversions API events. Writes nothing.
    async fn verify(&self) -> Vec<String> {
        let mut problems = Vec::new();
        let mut seen = Vec::new();
        for (milestone, urn) in &self.rules {
            if seen.contains(urn) {
                continue;
            }
            seen.push(urn.clone());
            let id = urn.trim_start_matches(super::wire::RULE_URN_PREFIX);
            let request = self.http.get(self.url(&format!("conversions/{id}")));
            let (status, headers, body) = match self.call(request).await {
                Ok(answer) => answer,
                Err(e) => {
                    problems.push(format!("could not reach LinkedIn: {e}"));
                    return problems;
                }
            };
            let rule = format!("conversion rule {id} ({})", milestone.name());
            if status.is_success() {
                match serde_json::from_slice::<ConversionRule>(&body) {
                    Ok(r) if r.conversion_method != "CONVERSIONS_API" => problems.push(format!(
                        "{rule} \"{}\" takes {} events, not Conversions API ones; create a rule with method \"Conversions API\" in Campaign Manager and configure its id",
                        r.name, r.conversion_method
                    )),
                    Ok(r) if !r.enabled => problems.push(format!(
                        "{rule} \"{}\" is disabled; enable it in Campaign Manager (Analyze > Conversion tracking)",
                        r.name
                    )),
                    Ok(_) => {}
                    Err(_) => problems.push(format!("{rule}: LinkedIn answered {status} with a body tandem could not read")),
                }
                continue;
            }
            match classify(status, &headers, &body) {
                CallError::Auth { message, .. } => {
                    problems.push(format!(
                        "{message}; the access token must belong to a member with a role in the ad account and carry rw_conversions (tokens last 60 days)"
                    ));
                    return problems;
                }
                e if status == StatusCode::NOT_FOUND => problems.push(format!(
                    "{rule} does not exist ({e}); copy the id of a Conversions API rule from Campaign Manager"
                )),
                e => problems.push(format!("{rule}: {e}")),
            }
        }
        problems
    }
}
