//! The time window every offset-paged polled source walks (LinkedIn Lead Gen, Mailchimp): paged
//! with a frozen upper bound while open, closed to `newest seen − overlap`, and re-read from the
//! start when the vendor's total shrinks mid-window. Each source wraps it in its own cursor type.

use serde::{Deserialize, Serialize};

/// Restarts of one window when its result count shrinks, before paging on regardless.
pub const MAX_RESTARTS: u32 = 3;

/// One position: an ad account's, an audience's…
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Window {
    /// Lower bound (unix ms, inclusive) of the current or next window.
    pub from_ms: i64,
    /// Upper bound of the window being paged; `None` = no window open (the next poll opens one
    /// ending "now").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_ms: Option<i64>,
    /// Results of the open window already returned.
    #[serde(default)]
    pub offset: u64,
    /// The newest record timestamp seen in the open window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_ms: Option<i64>,
    /// The result count the last page of the open window reported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total: Option<u64>,
    #[serde(default)]
    pub restarts: u32,
}

/// What one page said, in the cursor's terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageFacts {
    /// Records on the page.
    pub returned: u64,
    /// The page size asked for.
    pub asked: u64,
    /// The vendor's total for the window, if it gave one.
    pub total: Option<u64>,
    /// The newest record timestamp on the page.
    pub max_ms: Option<i64>,
}

impl Window {
    pub fn starting_at(from_ms: i64) -> Window {
        Window {
            from_ms,
            to_ms: None,
            offset: 0,
            max_ms: None,
            total: None,
            restarts: 0,
        }
    }

    pub fn is_open(&self) -> bool {
        self.to_ms.is_some()
    }

    /// Opens a window ending at `now_ms` unless one is open; returns `(from, to, offset)` to ask.
    pub fn open(&mut self, now_ms: i64) -> (i64, i64, u64) {
        let to = match self.to_ms {
            Some(to) => to,
            None => {
                // A clock that went backwards must not make an empty (inverted) range.
                let to = now_ms.max(self.from_ms);
                *self = Window {
                    to_ms: Some(to),
                    ..Window::starting_at(self.from_ms)
                };
                to
            }
        };
        (self.from_ms, to, self.offset)
    }

    /// Advances past a page; returns whether more pages of this window remain.
    pub fn advance(&mut self, page: PageFacts, overlap_ms: i64) -> bool {
        self.max_ms = match (self.max_ms, page.max_ms) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        if let (Some(before), Some(now)) = (self.total, page.total)
            && now < before
            && self.restarts < MAX_RESTARTS
        {
            self.restarts += 1;
            self.offset = 0;
            self.total = Some(now);
            return true;
        }
        self.offset = self.offset.saturating_add(page.returned);
        self.total = page.total.or(self.total);
        // A vendor may cap the page below what was asked: with a total, trust the total.
        let done = page.returned == 0
            || match page.total {
                Some(t) => self.offset >= t,
                None => page.returned < page.asked,
            };
        if done {
            let next_from = self.max_ms.map_or(self.from_ms, |m| {
                m.saturating_sub(overlap_ms).max(self.from_ms)
            });
            *self = Window::starting_at(next_from);
        }
        !done
    }
}
