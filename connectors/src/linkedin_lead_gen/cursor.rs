//! The poll cursor: per ad account, a time window over `submittedAt` that is paged with
//! `start`/`count` while it is open, and closed to `max submittedAt seen − overlap` once its last
//! page is read. The whole state is one small JSON string the daemon stores with each page's
//! leads, so a crash between pages resumes at the page after the last committed one.
//!
//! Why it never skips a lead:
//! - the upper bound of an open window is frozen (`to_ms`), so offsets stay stable while paging;
//!   a lead that becomes visible inside the window meanwhile can only shift others to later
//!   offsets (read twice, deduplicated by `event_id`), never to earlier ones;
//! - should a page report fewer results than the page before (something left the window), the
//!   window is read again from offset 0 (at most [`MAX_RESTARTS`] times);
//! - the next window starts at `max seen − overlap`, never later than the newest lead already
//!   seen, so equal timestamps and writes that show up late (stamped up to `overlap` before the
//!   newest lead) are read again. Re-reads are harmless: the daemon dedups by `event_id`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub use crate::poll_window::{MAX_RESTARTS, PageFacts, Window};

/// The cursor of a LinkedIn connector: one [`Window`] per ad account URN.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cursor {
    pub v: u32,
    pub accounts: BTreeMap<String, Window>,
}

impl Cursor {
    /// Reads a stored cursor; `None` when it isn't one of ours (the caller starts over, which
    /// re-reads but loses nothing).
    pub fn decode(raw: &str) -> Option<Cursor> {
        let c: Cursor = serde_json::from_str(raw).ok()?;
        (c.v == 1).then_some(c)
    }

    pub fn encode(&self) -> String {
        // A struct of integers and strings always serialises.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// The cursor for exactly `accounts`: their stored windows, or fresh ones from `start_ms`.
    pub fn for_accounts(previous: Option<Cursor>, accounts: &[String], start_ms: i64) -> Cursor {
        let mut old = previous.map(|c| c.accounts).unwrap_or_default();
        let accounts = accounts
            .iter()
            .map(|a| {
                let w = old
                    .remove(a)
                    .unwrap_or_else(|| Window::starting_at(start_ms));
                (a.clone(), w)
            })
            .collect();
        Cursor { v: 1, accounts }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(returned: u64, asked: u64, total: Option<u64>, max_ms: Option<i64>) -> PageFacts {
        PageFacts {
            returned,
            asked,
            total,
            max_ms,
        }
    }

    #[test]
    fn a_window_pages_then_closes_to_max_minus_overlap() {
        let mut w = Window::starting_at(1_000);
        assert_eq!(w.open(10_000), (1_000, 10_000, 0));
        assert!(w.advance(facts(2, 2, Some(3), Some(5_000)), 100));
        assert_eq!(w.open(99_999), (1_000, 10_000, 2), "frozen upper bound");
        assert!(!w.advance(facts(1, 2, Some(3), Some(4_000)), 100));
        assert_eq!(w, Window::starting_at(4_900));
        assert!(!w.is_open());
    }

    #[test]
    fn nothing_seen_keeps_the_lower_bound_and_it_never_moves_back() {
        let mut w = Window::starting_at(1_000);
        w.open(2_000);
        assert!(!w.advance(facts(0, 10, Some(0), None), 100));
        assert_eq!(w.from_ms, 1_000);
        w.open(3_000);
        assert!(!w.advance(facts(1, 10, None, Some(1_050)), 100));
        assert_eq!(w.from_ms, 1_000, "max − overlap before from: keep from");
    }

    #[test]
    fn a_shrinking_total_rereads_the_window_a_bounded_number_of_times() {
        let mut w = Window::starting_at(0);
        w.open(100);
        assert!(w.advance(facts(2, 2, Some(6), Some(10)), 5));
        for _ in 0..MAX_RESTARTS {
            let shrunk = w.total.unwrap() - 1;
            assert!(w.advance(facts(2, 2, Some(shrunk), Some(10)), 5));
            assert_eq!(w.offset, 0, "read again from the top");
        }
        // Out of restarts: page on.
        assert!(w.advance(facts(2, 2, Some(2 + 1), Some(10)), 5) || w.offset == 2);
        assert_ne!(w.offset, 0);
    }

    #[test]
    fn cursors_round_trip_and_follow_the_configured_accounts() {
        let accounts = vec!["urn:li:sponsoredAccount:1".to_owned()];
        let c = Cursor::for_accounts(None, &accounts, 7);
        let back = Cursor::decode(&c.encode()).unwrap();
        assert_eq!(back, c);
        let two = vec![accounts[0].clone(), "urn:li:sponsoredAccount:2".to_owned()];
        let mut moved = back.clone();
        moved.accounts.get_mut(&accounts[0]).unwrap().from_ms = 50;
        let c2 = Cursor::for_accounts(Some(moved), &two, 9);
        assert_eq!(c2.accounts[&two[0]].from_ms, 50);
        assert_eq!(c2.accounts[&two[1]].from_ms, 9);
        assert!(Cursor::decode("garbage").is_none());
        assert!(Cursor::decode(r#"{"v":2,"accounts":{}}"#).is_none());
    }
}
