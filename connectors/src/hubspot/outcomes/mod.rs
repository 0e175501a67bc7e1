//! The deal side of HubSpot as an [`OutcomeSource`]: deals changed since the cursor, read with
//! `POST /crm/v3/objects/deals/search` (200 per page, keyset paging on `hs_lastmodifieddate`,
//! see [`cursor`]), each with its contacts from the v4 association batch read
//! ([`associations`]), mapped by [`mapping`]. Deal webhooks ([`crate::hubspot::deal_webhook`])
//! only wake the poll up.

pub mod associations;
pub mod cursor;
pub mod mapping;

use std::time::Duration;

use async_trait::async_trait;
use reqwest::{StatusCode, header::HeaderMap};

use crate::{
    BuildError, ConnectorContext,
    outcome::{OutcomePage, OutcomeSource, OutcomeWebhook},
    sink::{CallError, RateLimit},
};

use super::{
    HubspotClient, HubspotConfig, client, deal_config, deal_webhook::DealWebhook,
    deals_wire::SearchResponse, limits,
};
use cursor::{Cursor, Stamped};

pub const SEARCH_PATH: &str = "crm/v3/objects/deals/search";
pub const ASSOCIATIONS_PATH: &str = "crm/v4/associations/deals/contacts/batch/read";

/// HubSpot's CRM search limit per token (VENDOR-NOTES §1.3: 4/s in the changelog, 5/s commonly
/// cited; tandem takes the documented 4).
pub const SEARCH_LIMIT: RateLimit = RateLimit {
    requests: 4,
    per: Duration::from_secs(1),
};

/// Deals changed since a cursor, with their people.
pub struct HubspotOutcomes {
    client: HubspotClient,
    search_url: reqwest::Url,
    associations_url: reqwest::Url,
    interval: Duration,
    overlap_ms: i64,
    since_ms: Option<i64>,
    currency: String,
    rate_limit: RateLimit,
    webhook: Option<DealWebhook>,
}

/// The slower of two limits (each as requests per period).
fn stricter(a: RateLimit, b: RateLimit) -> RateLimit {
    let per_ms = |r: RateLimit| f64::from(r.requests) / r.per.as_millis().max(1) as f64;
    if per_ms(a) <= per_ms(b) { a } else { b }
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

impl HubspotOutcomes {
    pub fn new(config: &HubspotConfig, ctx: ConnectorContext) -> Result<Self, BuildError> {
        let client = HubspotClient::new(config, ctx)?;
        // Each poll is one search plus (usually) one association read, both on the account's
        // general limit too.
        let general = config.effective_rate_limit();
        let per_poll = RateLimit {
            requests: (general.requests / 2).max(1),
            per: general.per,
        };
        Ok(HubspotOutcomes {
            search_url: client.endpoint(SEARCH_PATH)?,
            associations_url: client.endpoint(ASSOCIATIONS_PATH)?,
            client,
            interval: config.outcome_poll_interval.0,
            overlap_ms: millis(config.outcome_overlap.0),
            since_ms: deal_config::since_ms(config.outcomes_since.as_deref()).and_then(Result::ok),
            currency: config.currency.trim().to_ascii_uppercase(),
            rate_limit: stricter(SEARCH_LIMIT, per_poll),
            webhook: DealWebhook::from_config(config),
        })
    }

    fn start(&self, cursor: Option<&str>) -> Cursor {
        let first = || {
            Cursor::first(self.since_ms.unwrap_or_else(|| {
                jiff::Timestamp::now().as_millisecond() - millis(deal_config::DEFAULT_LOOKBACK)
            }))
        };
        match cursor {
            None => first(),
            Some(raw) => Cursor::decode(raw).unwrap_or_else(|| {
                tracing::warn!(
                    "hubspot: the stored deal cursor is not one this connector wrote; reading again from outcomes_since (re-read deals are no-ops)"
                );
                first()
            }),
        }
    }

    async fn search(&self, cursor: &Cursor) -> Result<SearchResponse, CallError> {
        let request = cursor.search(mapping::PROPERTIES);
        let answer = self
            .client
            .call(|token| {
                self.client
                    .http()
                    .post(self.search_url.clone())
                    .bearer_auth(token)
                    .json(&request)
            })
            .await?;
        if answer.status != StatusCode::OK {
            return Err(classify_search(
                answer.status,
                &answer.headers,
                &answer.body,
            ));
        }
        serde_json::from_slice(&answer.body).map_err(|e| CallError::Transient {
            message: format!(
                "HubSpot answered the deal search with a body tandem could not read: {e}"
            ),
            retry_after: None,
        })
    }
}

/// Like [`client::classify`], but a throttled search waits its own one-second window: search
/// answers carry no `X-HubSpot-RateLimit-*` headers to say otherwise.
pub fn classify_search(status: StatusCode, headers: &HeaderMap, body: &[u8]) -> CallError {
    match client::classify(status, headers, body) {
        CallError::RateLimited { message, .. } => CallError::RateLimited {
            message,
            retry_after: limits::retry_after(headers).unwrap_or(SEARCH_LIMIT.per),
        },
        other => other,
    }
}

#[async_trait]
impl OutcomeSource for HubspotOutcomes {
    fn interval(&self) -> Duration {
        self.interval
    }

    fn rate_limit(&self) -> RateLimit {
        self.rate_limit
    }

    async fn poll_outcomes(&self, cursor: Option<&str>) -> Result<OutcomePage, CallError> {
        let at = self.start(cursor);
        let page = self.search(&at).await?;
        let last_page = page.paging.as_ref().and_then(|p| p.next.as_ref()).is_none();
        let mut outcomes = Vec::with_capacity(page.results.len());
        let mut stamps = Vec::with_capacity(page.results.len());
        for deal in &page.results {
            match mapping::outcome(deal, &self.currency) {
                Some(o) => {
                    stamps.push(Stamped {
                        id: o.deal_id.clone(),
                        modified_ms: o.modified_at_ms,
                    });
                    outcomes.push(o);
                }
                None => tracing::warn!(
                    deal_id = %deal.id,
                    "hubspot: skipped a deal without a readable hs_lastmodifieddate"
                ),
            }
        }
        if !outcomes.is_empty() {
            let ids: Vec<String> = outcomes.iter().map(|o| o.deal_id.clone()).collect();
            let mut people = associations::read(&self.client, &self.associations_url, &ids).await?;
            for o in &mut outcomes {
                o.contacts = people.remove(&o.deal_id).unwrap_or_default();
            }
        }
        let (next, more) = at.advance(&stamps, last_page, self.overlap_ms);
        Ok(OutcomePage {
            outcomes,
            next_cursor: next.encode(),
            more,
        })
    }

    fn outcome_webhook(&self) -> Option<Box<dyn OutcomeWebhook>> {
        self.webhook
            .clone()
            .map(|w| Box::new(w) as Box<dyn OutcomeWebhook>)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_poll_is_paced_by_the_search_limit_or_half_the_general_one() {
        let rl = |s: &str| s.parse::<RateLimit>().unwrap();
        assert_eq!(stricter(SEARCH_LIMIT, rl("95/10s")), SEARCH_LIMIT);
        assert_eq!(stricter(SEARCH_LIMIT, rl("10/10s")), rl("10/10s"));
        let h = HeaderMap::new();
        assert_eq!(
            classify_search(StatusCode::TOO_MANY_REQUESTS, &h, b"{}"),
            CallError::RateLimited {
                message: "HubSpot answered 429 Too Many Requests: {}".into(),
                retry_after: Duration::from_secs(1)
            }
        );
    }
}
