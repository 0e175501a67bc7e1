//! The inputs of attribution (touchpoints and deals) and the lookback window that decides which
//! touchpoints belong to a deal.

use std::cmp::Ordering;
use std::collections::HashSet;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// One touchpoint: where and when one lead of a person was captured. `id` is the lead id.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Touch {
    /// The lead id (unique per lead; a touchpoint is credited under this id).
    pub id: String,
    /// Capture time, Unix milliseconds.
    pub captured_at_ms: i64,
    /// `utm_source` or, failing that, the source connector's name.
    pub source: String,
    /// `utm_medium`, if any.
    pub medium: Option<String>,
    /// `utm_campaign` or the ad platform's campaign name, if any.
    pub campaign: Option<String>,
}

/// Where a deal is in its life, as mapped from the CRM's pipeline stages.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DealStatus {
    Open,
    Won,
    Lost,
}

/// A deal (opportunity) as the CRM reports it, reduced to what attribution needs.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Deal {
    pub id: String,
    /// Creation time, Unix milliseconds.
    pub created_at_ms: i64,
    /// Close time, Unix milliseconds; only read when the status is won or lost.
    pub closed_at_ms: Option<i64>,
    pub status: DealStatus,
    /// The amount in integer minor units of `currency` (cents for EUR/USD, yen for JPY). May be
    /// zero or negative (a refund/credit note); attribution splits it exactly either way.
    pub amount_minor: i64,
    /// ISO 4217 code as the CRM gives it; amounts of different currencies are never added.
    pub currency: String,
}

impl Deal {
    /// The instant attribution looks back from: the close time of a won or lost deal, otherwise
    /// (open deal, or a closed deal without a close time) `now_ms`.
    pub fn end_ms(&self, now_ms: i64) -> i64 {
        match (self.status, self.closed_at_ms) {
            (DealStatus::Won | DealStatus::Lost, Some(closed)) => closed,
            _ => now_ms,
        }
    }

    /// Whether this is a won deal whose close time lies in `period`.
    pub fn won_in(&self, period: &Period) -> bool {
        self.status == DealStatus::Won && self.closed_at_ms.is_some_and(|t| period.contains(t))
    }
}

/// A half-open time range `[since_ms, until_ms)`; a missing bound is unbounded.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Period {
    pub since_ms: Option<i64>,
    pub until_ms: Option<i64>,
}

impl Period {
    /// `since_ms <= t < until_ms`.
    pub fn contains(&self, t: i64) -> bool {
        self.since_ms.is_none_or(|s| t >= s) && self.until_ms.is_none_or(|u| t < u)
    }
}

/// Capture order: capture time, then id, then the remaining fields, so the order is total and
/// does not depend on the order the touchpoints were handed in.
pub(crate) fn capture_order(a: &Touch, b: &Touch) -> Ordering {
    a.captured_at_ms
        .cmp(&b.captured_at_ms)
        .then_with(|| a.id.cmp(&b.id))
        .then_with(|| a.source.cmp(&b.source))
        .then_with(|| a.medium.cmp(&b.medium))
        .then_with(|| a.campaign.cmp(&b.campaign))
}

/// Sorts into capture order and keeps one touchpoint per id (the earliest in capture order), so
/// a lead reachable through two people of the same deal is credited once.
pub fn in_capture_order(touches: impl IntoIterator<Item = Touch>) -> Vec<Touch> {
    let mut touches: Vec<Touch> = touches.into_iter().collect();
    touches.sort_by(capture_order);
    let mut seen = HashSet::new();
    touches.retain(|t| seen.insert(t.id.clone()));
    touches
}

/// Milliseconds in `d`, saturated to `i64::MAX`.
pub(crate) fn duration_ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// The touchpoints of a deal: those of its people captured within `lookback` before the deal's
/// end ([`Deal::end_ms`]: its close time, or `now_ms` for an open deal), bounds included
/// (`end - lookback <= captured_at <= end`), in capture order, one per id.
pub fn touches_for_deal(
    deal: &Deal,
    person_touches: &[Touch],
    lookback: Duration,
    now_ms: i64,
) -> Vec<Touch> {
    let end = deal.end_ms(now_ms);
    let start = end.saturating_sub(duration_ms(lookback));
    in_capture_order(
        person_touches
            .iter()
            .filter(|t| (start..=end).contains(&t.captured_at_ms))
            .cloned(),
    )
}
