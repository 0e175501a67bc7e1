//! The cursor the daemon stores with each page's leads. A *pass* reads every contact stamped
//! after `since`, page by page (offset/limit, oldest first); while pages remain the cursor holds
//! the offset reached, so a restart resumes the pass. When the pass ends, the next one starts at
//! `newest stamp seen − overlap`: contacts sharing that stamp, and writes that became visible late
//! (stamped up to `overlap` in the past), are read again rather than skipped. The re-read ones
//! come back with the same `event_id`, which the daemon drops as duplicates.
//!
//! Each continued page starts a few contacts before where the last one ended (`rewind`), so a
//! contact deleted between two pages (shifting the rest left) doesn't make the next page skip one.

use serde::{Deserialize, Serialize};

/// The cursor, encoded as compact JSON: `{"v":1,"since_ms":…,"offset":…,"max_ms":…}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cursor {
    pub v: u8,
    /// The pass reads contacts stamped after this (unix ms).
    pub since_ms: i64,
    /// Contacts of this pass already read (Brevo's `offset`).
    pub offset: u64,
    /// The newest stamp seen so far (unix ms).
    #[serde(default)]
    pub max_ms: Option<i64>,
}

/// Contacts re-read at the start of each continued page, at most.
pub const REWIND: u64 = 10;

impl Cursor {
    /// The first poll's cursor: `start_from` before now.
    pub fn first(now_ms: i64, start_from_ms: i64) -> Cursor {
        Cursor {
            v: 1,
            since_ms: now_ms.saturating_sub(start_from_ms),
            offset: 0,
            max_ms: None,
        }
    }

    /// A stored cursor; `None` if it isn't one of ours.
    pub fn decode(raw: &str) -> Option<Cursor> {
        let c: Cursor = serde_json::from_str(raw).ok()?;
        (c.v == 1).then_some(c)
    }

    pub fn encode(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Where the next poll continues after a page of `len` contacts (asked for `page_size`,
    /// newest stamp `page_max_ms`, `count` matching in all if Brevo said), and whether more
    /// pages are waiting now.
    pub fn after_page(
        &self,
        len: u64,
        page_size: u64,
        page_max_ms: Option<i64>,
        count: Option<u64>,
        overlap_ms: i64,
    ) -> (Cursor, bool) {
        let max_ms = match (self.max_ms, page_max_ms) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        let reached = self.offset.saturating_add(len);
        let more = len > 0 && (len >= page_size || count.is_some_and(|c| c > reached));
        if more {
            let rewind = REWIND.min(page_size / 10).min(len.saturating_sub(1));
            let next = Cursor {
                offset: reached - rewind,
                max_ms,
                ..*self
            };
            return (next, true);
        }
        let since_ms = match max_ms {
            Some(m) => self.since_ms.max(m.saturating_sub(overlap_ms)),
            None => self.since_ms,
        };
        let next = Cursor {
            v: 1,
            since_ms,
            offset: 0,
            max_ms,
        };
        (next, false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pass_pages_then_restarts_overlapping_the_newest_stamp() {
        let c = Cursor::first(1_000_000, 100_000);
        assert_eq!(c.since_ms, 900_000);
        let (c1, more) = c.after_page(100, 100, Some(950_000), None, 5_000);
        assert!(more);
        assert_eq!(
            (c1.since_ms, c1.offset, c1.max_ms),
            (900_000, 90, Some(950_000))
        );
        let (c2, more) = c1.after_page(30, 100, Some(960_000), Some(120), 5_000);
        assert!(!more);
        assert_eq!(
            (c2.since_ms, c2.offset, c2.max_ms),
            (955_000, 0, Some(960_000))
        );
        assert_eq!(Cursor::decode(&c2.encode()), Some(c2));
        // Nothing new: the cursor stays where it is (never moves to "now").
        let (c3, more) = c2.after_page(0, 100, None, Some(0), 5_000);
        assert!(!more);
        assert_eq!(c3, c2);
        // An old stamp seen again never moves `since` back.
        let (c4, _) = c2.after_page(1, 100, Some(100), None, 5_000);
        assert_eq!(c4.since_ms, 955_000);
    }

    #[test]
    fn pages_always_progress_and_foreign_cursors_are_refused() {
        let c = Cursor::first(0, 0);
        let (c1, more) = c.after_page(1, 1, Some(5), None, 1);
        assert!(more);
        assert_eq!(c1.offset, 1);
        assert_eq!(Cursor::decode("garbage"), None);
        assert_eq!(Cursor::decode(r#"{"v":2,"since_ms":0,"offset":0}"#), None);
    }
}
