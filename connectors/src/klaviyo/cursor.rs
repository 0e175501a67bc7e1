//! The cursor the daemon stores with each page's leads. A *pass* reads every profile stamped
//! after `since` (Klaviyo's `greater-than`, oldest first), following Klaviyo's page cursors; while
//! pages remain the stored cursor holds Klaviyo's page cursor, so a restart resumes the pass where
//! the last committed page ended. When the pass ends the next starts at `newest stamp seen −
//! overlap`, so profiles sharing that stamp and writes that became visible late (up to `overlap`)
//! are read again, not skipped; they come back with the same `event_id`.

use serde::{Deserialize, Serialize};

/// Encoded as compact JSON: `{"v":1,"since_ms":…,"page":"…","max_ms":…}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cursor {
    pub v: u8,
    pub since_ms: i64,
    /// Klaviyo's `page[cursor]` for the next page of this pass.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub page: Option<String>,
    #[serde(default)]
    pub max_ms: Option<i64>,
}

impl Cursor {
    pub fn first(now_ms: i64, start_from_ms: i64) -> Cursor {
        Cursor {
            v: 1,
            since_ms: now_ms.saturating_sub(start_from_ms),
            page: None,
            max_ms: None,
        }
    }

    pub fn decode(raw: &str) -> Option<Cursor> {
        let c: Cursor = serde_json::from_str(raw).ok()?;
        (c.v == 1).then_some(c)
    }

    pub fn encode(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// The filter's lower bound, whole seconds: flooring only widens the window.
    pub fn since_filter(&self) -> Option<String> {
        let secs = self.since_ms.div_euclid(1000);
        jiff::Timestamp::from_second(secs)
            .ok()
            .map(|t| t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string())
    }

    /// Where the next poll continues after a page whose newest stamp is `page_max_ms`, given
    /// Klaviyo's next page cursor (if any); and whether more pages are waiting now.
    pub fn after_page(
        &self,
        page_max_ms: Option<i64>,
        next_page: Option<String>,
        overlap_ms: i64,
    ) -> (Cursor, bool) {
        let max_ms = match (self.max_ms, page_max_ms) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        if let Some(page) = next_page {
            let next = Cursor {
                v: 1,
                since_ms: self.since_ms,
                page: Some(page),
                max_ms,
            };
            return (next, true);
        }
        (self.restart(max_ms, overlap_ms), false)
    }

    /// A new pass from `newest − overlap` (never earlier than this pass's `since`).
    pub fn restart(&self, max_ms: Option<i64>, overlap_ms: i64) -> Cursor {
        let since_ms = match max_ms {
            Some(m) => self.since_ms.max(m.saturating_sub(overlap_ms)),
            None => self.since_ms,
        };
        Cursor {
            v: 1,
            since_ms,
            page: None,
            max_ms,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_follow_klaviyo_then_a_pass_restarts_with_overlap() {
        let c = Cursor::first(10_000_500, 1_000_000);
        assert_eq!(c.since_filter().as_deref(), Some("1970-01-01T02:30:00Z"));
        let (c1, more) = c.after_page(Some(9_500_000), Some("abc".into()), 60_000);
        assert!(more);
        assert_eq!(c1.page.as_deref(), Some("abc"));
        assert_eq!(c1.since_ms, c.since_ms);
        let (c2, more) = c1.after_page(Some(9_000_000), None, 60_000);
        assert!(!more);
        assert_eq!(
            (c2.since_ms, c2.page.clone(), c2.max_ms),
            (9_440_000, None, Some(9_500_000))
        );
        assert_eq!(Cursor::decode(&c2.encode()), Some(c2.clone()));
        let (c3, _) = c2.after_page(None, None, 60_000);
        assert_eq!(c3, c2);
        assert_eq!(Cursor::decode("{}"), None);
        assert_eq!(Cursor::first(i64::MIN, i64::MAX).since_filter(), None);
    }
}
