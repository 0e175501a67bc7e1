//! The outcome poll's cursor, committed by the daemon with each page of deals.
//!
//! Deals are read oldest change first (`updated_since` is inclusive, `sort_by=update_time`).
//! A *sweep* pages forward by time, not by Pipedrive's page cursor: after each page the next
//! request starts again at the newest `update_time` on it, so a deal changed while the sweep
//! pages (which moves it to the end of the list and shifts the others) is never stepped over.
//! Only when a full page holds nothing but one timestamp does the sweep follow Pipedrive's
//! cursor for that timestamp, since asking again from it would return the same page.
//!
//! When a sweep reaches the end, the next one starts `overlap` before the newest change seen,
//! so writes that became visible late are still read. What was already returned is remembered
//! (deal id → update time and a hash of the reported outcome) for the deals inside the overlap,
//! so a re-read reports only deals whose outcome changed; deals changed twice within one second
//! (Pipedrive's timestamps are whole seconds) differ in the hash and are reported again.
//! The memory is bounded: past [`MAX_SEEN`] entries the oldest are forgotten, which can only
//! cost a duplicate (a no-op for the daemon), never a gap.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Remembered deals at most; beyond this the oldest are forgotten (duplicates, not gaps).
pub const MAX_SEEN: usize = 1000;

/// Encoded as compact JSON: `{"v":1,"hw":…,"at":…,"vc":"…","seen":{"42":[ms,"hash"]}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DealCursor {
    pub v: u8,
    /// The newest `update_time` read so far (Unix ms).
    pub hw: i64,
    /// The sweep in progress: the next request's `updated_since` (Unix ms). `None`: the next
    /// poll starts a sweep at `hw - overlap`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<i64>,
    /// Pipedrive's page cursor, only while paging through deals that all share `at`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vc: Option<String>,
    /// Deals already returned: id → (update time ms, outcome hash).
    #[serde(default)]
    pub seen: BTreeMap<u64, (i64, String)>,
}

/// One deal of a page, as the cursor needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    pub id: u64,
    pub at_ms: i64,
    pub hash: String,
}

impl DealCursor {
    /// The first poll: a sweep from `start_ms`.
    pub fn first(start_ms: i64) -> DealCursor {
        DealCursor {
            v: 1,
            hw: start_ms,
            at: Some(start_ms),
            vc: None,
            seen: BTreeMap::new(),
        }
    }

    pub fn decode(raw: &str) -> Option<DealCursor> {
        let c: DealCursor = serde_json::from_str(raw).ok()?;
        (c.v == 1).then_some(c)
    }

    pub fn encode(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// What to ask for: `updated_since` (Unix ms) and Pipedrive's cursor, if one is being
    /// followed.
    pub fn request(&self, overlap_ms: i64) -> (i64, Option<&str>) {
        match self.at {
            Some(at) => (at, self.vc.as_deref()),
            None => (self.hw.saturating_sub(overlap_ms), None),
        }
    }

    /// Whether this deal's outcome has not been returned before.
    pub fn is_new(&self, id: u64, hash: &str) -> bool {
        self.seen.get(&id).is_none_or(|(_, h)| h != hash)
    }

    /// The cursor after a page asked with `updated_since = since_ms`, holding `page` (every deal
    /// on it, returned or not), with Pipedrive's `next` cursor; and whether more pages wait.
    pub fn after_page(
        &self,
        since_ms: i64,
        page: &[Seen],
        next: Option<String>,
        overlap_ms: i64,
    ) -> (DealCursor, bool) {
        let mut c = self.clone();
        let page_max = page.iter().map(|s| s.at_ms).max();
        for s in page {
            c.seen.insert(s.id, (s.at_ms, s.hash.clone()));
        }
        if let Some(m) = page_max {
            c.hw = c.hw.max(m);
        }
        let more = match (next, page_max) {
            (Some(next), Some(max)) => {
                if max > since_ms {
                    // Progress: ask again from the newest stamp on the page.
                    c.at = Some(max);
                    c.vc = None;
                } else {
                    // A full page of one timestamp: only Pipedrive's cursor gets past it.
                    c.at = Some(since_ms);
                    c.vc = Some(next);
                }
                true
            }
            _ => {
                c.at = None;
                c.vc = None;
                false
            }
        };
        c.prune(overlap_ms);
        (c, more)
    }

    /// Forgets deals no request can return again, then the oldest beyond [`MAX_SEEN`].
    fn prune(&mut self, overlap_ms: i64) {
        let next_sweep = self.hw.saturating_sub(overlap_ms);
        let floor = self.at.map_or(next_sweep, |at| at.min(next_sweep));
        self.seen.retain(|_, (at, _)| *at >= floor);
        if self.seen.len() > MAX_SEEN {
            let mut stamps: Vec<i64> = self.seen.values().map(|(at, _)| *at).collect();
            stamps.sort_unstable();
            let cut = stamps[stamps.len() - MAX_SEEN];
            self.seen.retain(|_, (at, _)| *at >= cut);
            // Ties at the cut can leave a few over: drop arbitrary ones among the oldest.
            while self.seen.len() > MAX_SEEN {
                let Some(id) = self
                    .seen
                    .iter()
                    .min_by_key(|(_, (at, _))| *at)
                    .map(|(id, _)| *id)
                else {
                    break;
                };
                self.seen.remove(&id);
            }
        }
    }
}

/// Unix ms as Pipedrive's `updated_since`: RFC 3339 in whole seconds, floored (which only
/// widens the window).
pub fn since_param(ms: i64) -> Option<String> {
    jiff::Timestamp::from_second(ms.div_euclid(1000))
        .ok()
        .map(|t| t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen(id: u64, at_ms: i64, hash: &str) -> Seen {
        Seen {
            id,
            at_ms,
            hash: hash.into(),
        }
    }

    #[test]
    fn a_sweep_pages_by_time_and_restarts_with_the_overlap() {
        let c = DealCursor::first(1_000_000);
        assert_eq!(c.request(60_000), (1_000_000, None));
        let (c1, more) = c.after_page(
            1_000_000,
            &[seen(1, 1_000_000, "a"), seen(2, 1_005_000, "b")],
            Some("p2".into()),
            60_000,
        );
        assert!(more);
        assert_eq!(
            c1.request(60_000),
            (1_005_000, None),
            "keyset, not the page cursor"
        );
        assert!(!c1.is_new(2, "b"));
        assert!(c1.is_new(2, "changed within the same second"));
        let (c2, more) = c1.after_page(1_005_000, &[seen(3, 1_070_000, "c")], None, 60_000);
        assert!(!more);
        assert_eq!(c2.hw, 1_070_000);
        assert_eq!(c2.request(60_000), (1_010_000, None));
        // Deals older than the next sweep can't come back: forgotten.
        assert!(c2.is_new(1, "a"));
        assert!(!c2.is_new(3, "c"));
        assert_eq!(DealCursor::decode(&c2.encode()), Some(c2.clone()));
        assert_eq!(DealCursor::decode("{}"), None);
        assert_eq!(DealCursor::decode("not json"), None);
    }

    #[test]
    fn a_full_page_of_one_timestamp_follows_pipedrives_cursor() {
        let c = DealCursor::first(5_000);
        let page: Vec<Seen> = (1..=3).map(|i| seen(i, 5_000, "x")).collect();
        let (c1, more) = c.after_page(5_000, &page, Some("next".into()), 0);
        assert!(more);
        assert_eq!(c1.request(0), (5_000, Some("next")));
        let (c2, more) = c1.after_page(
            5_000,
            &[seen(4, 5_000, "x"), seen(5, 6_000, "y")],
            Some("n2".into()),
            0,
        );
        assert!(more);
        assert_eq!(
            c2.request(0),
            (6_000, None),
            "past the timestamp: keyset again"
        );
        let (c3, more) = c2.after_page(6_000, &[], None, 0);
        assert!(!more);
        assert_eq!(c3.request(0), (6_000, None));
    }

    #[test]
    fn the_memory_is_bounded() {
        let mut c = DealCursor::first(0);
        for chunk in 0..3u64 {
            let page: Vec<Seen> = (0..600)
                .map(|i| seen(chunk * 1000 + i, 1_000 + (chunk * 1000 + i) as i64, "h"))
                .collect();
            c = c.after_page(0, &page, None, i64::MAX / 4).0;
        }
        assert_eq!(c.seen.len(), MAX_SEEN);
        assert!(!c.is_new(2599, "h"), "the newest are kept");
        assert!(c.is_new(0, "h"), "the oldest are forgotten");
    }

    #[test]
    fn since_is_whole_seconds_floored() {
        assert_eq!(
            since_param(1_727_447_128_999).as_deref(),
            Some("2024-09-27T14:25:28Z")
        );
        assert_eq!(since_param(-1).as_deref(), Some("1969-12-31T23:59:59Z"));
        assert_eq!(since_param(i64::MAX), None);
    }
}
