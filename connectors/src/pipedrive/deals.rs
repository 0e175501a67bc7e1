//! [`DealPoller`]: the [`OutcomeSource`]. One poll is one
//! `GET /api/v2/deals?updated_since=…&sort_by=update_time&sort_direction=asc&limit=500` (see
//! [`super::deal_cursor`] for how the cursor moves), plus, for deals with participants besides
//! their main person, `GET /api/v1/deals/{id}/participants`.
//!
//! A deal is reported with `stage` = its `stage_id` while open, and `"won"` / `"lost"` once
//! closed: Pipedrive keeps a closed deal in the stage it was closed from and says won/lost in
//! `status`, while tandem's milestone map looks at stages first.

use std::{sync::Arc, time::Duration};

use async_trait::async_trait;
use reqwest::{Method, StatusCode};

use crate::{
    outcome::{
        DealContact, DealState, Outcome, OutcomePage, OutcomeSource, OutcomeWebhook, to_minor_units,
    },
    sink::{CallError, RateLimit},
    writeback::sha256_hex,
};

use super::{
    PipedriveClient, PipedriveConfig,
    client::{classify, decode},
    deal_cursor::{DealCursor, Seen, since_param},
    hook::DealWebhook,
    limits::Lane,
    wire::{Deal, Participant},
};

/// Pipedrive's largest page.
pub const PAGE_SIZE: usize = 500;
/// Where the first poll starts when `outcomes_since` is not set.
const DEFAULT_LOOKBACK: Duration = Duration::from_secs(30 * 86_400);
/// Participants read per deal, at most (pages of 100).
const PARTICIPANT_PAGES: usize = 5;
const DEALS: &str = "api/v2/deals";

/// Reads deal outcomes from one Pipedrive company.
pub struct DealPoller {
    client: Arc<PipedriveClient>,
    interval: Duration,
    overlap_ms: i64,
    /// `outcomes_since`, validated; `None`: 30 days before the first poll.
    since_ms: Option<i64>,
    currency: String,
    participants: bool,
    page_size: usize,
    webhook: Option<DealWebhook>,
}

impl std::fmt::Debug for DealPoller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DealPoller")
            .field("client", &self.client)
            .field("interval", &self.interval)
            .field("overlap_ms", &self.overlap_ms)
            .field("webhook", &self.webhook.is_some())
            .finish_non_exhaustive()
    }
}

impl DealPoller {
    pub fn new(config: &PipedriveConfig, client: Arc<PipedriveClient>) -> Self {
        DealPoller {
            client,
            interval: config.outcome_poll_interval.0,
            overlap_ms: i64::try_from(config.outcome_overlap.0.as_millis()).unwrap_or(i64::MAX),
            since_ms: config
                .outcomes_since
                .as_deref()
                .and_then(|s| s.trim().parse::<jiff::Timestamp>().ok())
                .map(|t| t.as_millisecond()),
            currency: config.currency.trim().to_ascii_uppercase(),
            participants: config.deal_participants,
            page_size: PAGE_SIZE,
            webhook: DealWebhook::from_config(config),
        }
    }

    /// A smaller page than Pipedrive's 500, so tests can cross page boundaries cheaply.
    pub fn with_page_size(mut self, size: usize) -> Self {
        self.page_size = size.clamp(1, PAGE_SIZE);
        self
    }

    fn start(&self, cursor: Option<&str>) -> DealCursor {
        let first = || {
            DealCursor::first(self.since_ms.unwrap_or_else(|| {
                jiff::Timestamp::now().as_millisecond() - DEFAULT_LOOKBACK.as_millis() as i64
            }))
        };
        match cursor {
            None => first(),
            Some(raw) => DealCursor::decode(raw).unwrap_or_else(|| {
                tracing::warn!(
                    connector = %self.client.ctx.name,
                    "pipedrive: the stored outcome cursor is not one this connector wrote; reading deals again from outcomes_since (re-reads are no-ops)"
                );
                first()
            }),
        }
    }

    /// The deal as tandem's [`Outcome`], with its main person only.
    pub fn outcome_of(&self, d: &Deal, modified_at_ms: i64) -> Outcome {
        let state = match d.status.as_deref().map(str::trim) {
            Some("won") => DealState::Won,
            Some("lost") => DealState::Lost,
            _ => DealState::Open,
        };
        let stage = match state {
            DealState::Won => "won".to_owned(),
            DealState::Lost => "lost".to_owned(),
            DealState::Open => d.stage_id.map(|s| s.to_string()).unwrap_or_default(),
        };
        let currency = d
            .currency
            .as_deref()
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .map_or_else(|| self.currency.clone(), str::to_ascii_uppercase);
        // Pipedrive has no empty value: a deal without one says 0.
        let amount_minor = d
            .value
            .as_ref()
            .and_then(|v| match v {
                serde_json::Value::Number(n) => Some(n.to_string()),
                serde_json::Value::String(s) => Some(s.clone()),
                _ => None,
            })
            .and_then(|text| to_minor_units(&text, &currency))
            .filter(|minor| *minor != 0);
        let time = |t: &Option<String>| t.as_deref().and_then(parse_time_ms);
        // Pipedrive stamps to the second and the close happened somewhere in that second: take
        // its end, so a touchpoint captured earlier in the same second still counts.
        let closed_at_ms = match state {
            DealState::Won => time(&d.won_time).or_else(|| time(&d.close_time)),
            DealState::Lost => time(&d.lost_time).or_else(|| time(&d.close_time)),
            DealState::Open => None,
        }
        .map(|t| t - t.rem_euclid(1000) + 999);
        Outcome {
            deal_id: d.id.to_string(),
            pipeline: d.pipeline_id.map(|p| p.to_string()),
            stage,
            state,
            amount_minor,
            currency: Some(currency),
            created_at_ms: time(&d.add_time).unwrap_or(modified_at_ms),
            closed_at_ms,
            modified_at_ms,
            contacts: d
                .person()
                .map(|id| DealContact {
                    remote_id: id.to_string(),
                    email: None,
                })
                .into_iter()
                .collect(),
        }
    }

    /// The deal's participants besides its main person (v1: the only API that lists them),
    /// with their primary emails. A deal gone meanwhile has none.
    async fn participants(&self, deal_id: u64) -> Result<Vec<DealContact>, CallError> {
        let mut out = Vec::new();
        let mut start = 0u64;
        for _ in 0..PARTICIPANT_PAGES {
            let query = [("start", start.to_string()), ("limit", "100".to_owned())];
            let a = self
                .client
                .request::<()>(
                    Method::GET,
                    &format!("api/v1/deals/{deal_id}/participants"),
                    &query,
                    None,
                    Lane::General,
                )
                .await?;
            if a.status == StatusCode::NOT_FOUND {
                return Ok(out);
            }
            if !a.status.is_success() {
                return Err(classify(&a));
            }
            let page = decode::<Vec<Participant>>(&a)?;
            out.extend(
                page.data
                    .unwrap_or_default()
                    .into_iter()
                    .filter(|p| p.active_flag)
                    .filter_map(|p| p.person_id)
                    .map(|p| DealContact {
                        remote_id: p.value.to_string(),
                        email: p.primary_email().map(str::to_owned),
                    }),
            );
            match page.additional_data.and_then(|d| d.pagination) {
                Some(p) if p.more_items_in_collection => {
                    start = p.next_start.unwrap_or(start + 100)
                }
                _ => break,
            }
        }
        Ok(out)
    }
}

/// The outcome's identity for "already returned": everything but the cursor field, plus the
/// participant count (participants are read only for deals that are new to the cursor).
fn fingerprint(o: &Outcome, participants: Option<u32>) -> String {
    let mut o = o.clone();
    o.modified_at_ms = 0;
    let text = serde_json::to_string(&(o, participants)).unwrap_or_default();
    sha256_hex(&text)[..16].to_owned()
}

/// Pipedrive's times: RFC 3339 (v2), `YYYY-MM-DD HH:MM:SS` in UTC (v1), or a bare date
/// (00:00 UTC). Unix ms.
pub fn parse_time_ms(s: &str) -> Option<i64> {
    let s = s.trim();
    if let Ok(t) = s.parse::<jiff::Timestamp>() {
        return Some(t.as_millisecond());
    }
    let utc = |dt: jiff::civil::DateTime| {
        dt.to_zoned(jiff::tz::TimeZone::UTC)
            .ok()
            .map(|z| z.timestamp().as_millisecond())
    };
    if let Ok(dt) = s.replacen(' ', "T", 1).parse::<jiff::civil::DateTime>() {
        return utc(dt);
    }
    s.parse::<jiff::civil::Date>()
        .ok()
        .and_then(|d| utc(d.to_datetime(jiff::civil::Time::midnight())))
}

#[async_trait]
impl OutcomeSource for DealPoller {
    fn interval(&self) -> Duration {
        self.interval
    }

    /// A poll is one list request (two or more with participants), paced like every other
    /// request of this token.
    fn rate_limit(&self) -> RateLimit {
        self.client.rate_limit
    }

    async fn poll_outcomes(&self, cursor: Option<&str>) -> Result<OutcomePage, CallError> {
        let cur = self.start(cursor);
        let (since_ms, vendor_cursor) = cur.request(self.overlap_ms);
        let since = since_param(since_ms).ok_or_else(|| CallError::Permanent {
            message: format!("the outcome cursor's time {since_ms} ms is out of range"),
        })?;
        let mut query = vec![
            ("updated_since", since),
            ("sort_by", "update_time".to_owned()),
            ("sort_direction", "asc".to_owned()),
            ("limit", self.page_size.to_string()),
        ];
        if self.participants {
            query.push(("include_fields", "participants_count".to_owned()));
        }
        if let Some(vc) = vendor_cursor {
            query.push(("cursor", vc.to_owned()));
        }
        let a = self
            .client
            .request::<()>(Method::GET, DEALS, &query, None, Lane::General)
            .await?;
        if !a.status.is_success() {
            return Err(classify(&a));
        }
        let page = decode::<Vec<Deal>>(&a)?;
        let next = page
            .additional_data
            .and_then(|d| d.next_cursor)
            .filter(|c| !c.is_empty());
        let mut seen = Vec::new();
        let mut outcomes = Vec::new();
        for deal in page.data.unwrap_or_default() {
            let Some(at_ms) = deal.update_time.as_deref().and_then(parse_time_ms) else {
                tracing::warn!(connector = %self.client.ctx.name, deal_id = deal.id, "pipedrive: deal without a readable update_time skipped");
                continue;
            };
            if deal.is_deleted || deal.status.as_deref() == Some("deleted") {
                seen.push(Seen {
                    id: deal.id,
                    at_ms,
                    hash: "deleted".to_owned(),
                });
                continue;
            }
            let mut outcome = self.outcome_of(&deal, at_ms);
            let hash = fingerprint(&outcome, deal.participants_count);
            if cur.is_new(deal.id, &hash) {
                let main = u32::from(deal.person().is_some());
                if self.participants && deal.participants_count.is_some_and(|n| n > main) {
                    for p in self.participants(deal.id).await? {
                        match outcome
                            .contacts
                            .iter_mut()
                            .find(|c| c.remote_id == p.remote_id)
                        {
                            Some(known) => known.email = known.email.take().or(p.email),
                            None => outcome.contacts.push(p),
                        }
                    }
                }
                outcomes.push(outcome);
            }
            seen.push(Seen {
                id: deal.id,
                at_ms,
                hash,
            });
        }
        let (next_cursor, more) = cur.after_page(since_ms, &seen, next, self.overlap_ms);
        Ok(OutcomePage {
            outcomes,
            next_cursor: next_cursor.encode(),
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
    fn times_parse_in_every_shape_pipedrive_writes() {
        assert_eq!(
            parse_time_ms("2026-01-02T03:04:05Z"),
            Some(1_767_323_045_000)
        );
        assert_eq!(
            parse_time_ms("2026-01-02 03:04:05"),
            Some(1_767_323_045_000)
        );
        assert_eq!(parse_time_ms("2026-01-02"), Some(1_767_312_000_000));
        assert_eq!(parse_time_ms("yesterday"), None);
    }

    #[test]
    fn the_fingerprint_ignores_the_cursor_field_only() {
        let o = Outcome {
            deal_id: "1".into(),
            pipeline: Some("1".into()),
            stage: "3".into(),
            state: DealState::Open,
            amount_minor: Some(100),
            currency: Some("EUR".into()),
            created_at_ms: 1,
            closed_at_ms: None,
            modified_at_ms: 5,
            contacts: vec![],
        };
        let mut later = o.clone();
        later.modified_at_ms = 9;
        assert_eq!(fingerprint(&o, None), fingerprint(&later, None));
        later.stage = "4".into();
        assert_ne!(fingerprint(&o, None), fingerprint(&later, None));
        assert_ne!(fingerprint(&o, None), fingerprint(&o, Some(2)));
    }
}
