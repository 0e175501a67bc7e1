//! The poll cursor: a time window over the members' `last_changed`, paged with `offset`/`count`
//! while it is open (its upper bound `before_last_changed` frozen, so offsets stay stable), then
//! closed to `max last_changed seen − overlap`. The state is one small JSON string the daemon
//! stores with each page's leads, so a crash between pages resumes after the last committed page.
//!
//! Why it never skips a member:
//! - a member that becomes visible inside the open window can only push others to later offsets
//!   (read twice, deduplicated by `event_id`);
//! - a member that *leaves* the window while it is paged (its profile changed, so its
//!   `last_changed` moved past the frozen bound) would pull the rest one offset earlier: the page
//!   then reports a smaller `total_items`, and the window is read again from offset 0 (at most
//!   [`MAX_RESTARTS`] times; the moved member itself turns up in the next window);
//! - the next window starts at `max seen − overlap`, so equal timestamps and writes that show up
//!   late (stamped up to `overlap` before the newest member seen) are read again.

use serde::{Deserialize, Serialize};

pub use crate::poll_window::{MAX_RESTARTS, PageFacts, Window};

/// The cursor of a Mailchimp connector: the audience it belongs to and its [`Window`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cursor {
    pub v: u32,
    pub list_id: String,
    pub window: Window,
}

impl Cursor {
    /// The stored cursor if it is ours and for `list_id`; `None` starts over (re-reads, loses
    /// nothing).
    pub fn decode(raw: &str, list_id: &str) -> Option<Cursor> {
        let c: Cursor = serde_json::from_str(raw).ok()?;
        (c.v == 1 && c.list_id == list_id).then_some(c)
    }

    pub fn new(list_id: &str, from_ms: i64) -> Cursor {
        Cursor {
            v: 1,
            list_id: list_id.to_owned(),
            window: Window::starting_at(from_ms),
        }
    }

    pub fn encode(&self) -> String {
        // Integers and strings always serialise.
        serde_json::to_string(self).unwrap_or_default()
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
    fn pages_then_closes_to_max_minus_overlap() {
        let mut w = Window::starting_at(1_000);
        assert_eq!(w.open(10_000), (1_000, 10_000, 0));
        assert!(w.advance(facts(2, 2, Some(3), Some(5_000)), 100));
        assert_eq!(w.open(99_999), (1_000, 10_000, 2), "frozen upper bound");
        assert!(!w.advance(facts(1, 2, Some(3), Some(4_000)), 100));
        assert_eq!(w, Window::starting_at(4_900));
    }

    #[test]
    fn a_member_leaving_the_window_rereads_it() {
        let mut w = Window::starting_at(0);
        w.open(100);
        assert!(w.advance(facts(2, 2, Some(5), Some(10)), 5));
        assert_eq!(w.offset, 2);
        assert!(w.advance(facts(2, 2, Some(4), Some(10)), 5));
        assert_eq!((w.offset, w.restarts), (0, 1));
    }

    #[test]
    fn cursors_belong_to_their_list() {
        let c = Cursor::new("abc123", 5);
        assert_eq!(Cursor::decode(&c.encode(), "abc123"), Some(c.clone()));
        assert_eq!(Cursor::decode(&c.encode(), "other"), None);
        assert_eq!(Cursor::decode("][", "abc123"), None);
    }
}
