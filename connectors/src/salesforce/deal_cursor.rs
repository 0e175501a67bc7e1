//! The cursor of a CRM deal poll that reads "changed since" by a modification stamp with
//! keyset paging: Salesforce (`SystemModstamp, Id`) and Zoho (`Modified_Time, id`) share it.
//!
//! A poll walks *passes*. A pass starts at `from_ms` (inclusive, `>=`) and pages through the
//! deals in (stamp, id) order; between pages the cursor holds the last row returned, so the next
//! page asks for `stamp > s OR (stamp = s AND id > i)`: deals sharing one stamp across a page
//! boundary are neither skipped nor repeated. When a pass ends, the next starts at the newest stamp
//! seen minus the overlap, so a write that became visible late (stamped before the cursor, as a
//! long transaction's is) is still found. Nothing else is remembered: both CRMs stamp to the
//! second, so an (id, stamp) pair seen before does not prove the deal unchanged, and the daemon
//! treats re-reads of an unchanged deal as no-ops anyway. The cursor stays a few dozen bytes.
//!
//! Every page's cursor is safe to commit: a crash between pages resumes after the last committed
//! row (or, when a Salesforce query locator expired meanwhile, re-queries from it).

use serde::{Deserialize, Serialize};

/// Where a deal poll stands. Serialized as JSON; opaque to the daemon.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DealCursor {
    /// Lower bound (unix ms, inclusive) of the pass in progress, or of the next one.
    pub from_ms: i64,
    /// The last row (stamp ms, id) of the pass in progress; the next page starts after it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<(i64, String)>,
    /// The vendor's own handle on the rest of the pass (Salesforce `nextRecordsUrl`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locator: Option<String>,
    /// The newest stamp seen in any pass so far.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub high_ms: Option<i64>,
}

impl DealCursor {
    pub fn starting_at(from_ms: i64) -> DealCursor {
        DealCursor {
            from_ms,
            ..DealCursor::default()
        }
    }

    /// The committed cursor, or a fresh one at `start_ms` for the first poll. A cursor tandem
    /// cannot read (written by another version, edited by hand) also starts over at `start_ms`:
    /// re-reading deals is harmless, skipping them is not.
    pub fn decode(text: Option<&str>, start_ms: i64, connector: &str) -> DealCursor {
        match text {
            None => DealCursor::starting_at(start_ms),
            Some(t) => serde_json::from_str(t).unwrap_or_else(|e| {
                tracing::warn!(
                    connector,
                    error = %e,
                    "unreadable deal cursor; reading deals again from the configured start"
                );
                DealCursor::starting_at(start_ms)
            }),
        }
    }

    pub fn encode(&self) -> String {
        // A struct of integers and strings always serializes.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Whether a pass is in progress (a page was read and more were announced).
    pub fn in_pass(&self) -> bool {
        self.after.is_some() || self.locator.is_some()
    }

    /// Advances past one page's rows, given in the query's (stamp, id) order.
    pub fn page_read<'a>(&mut self, rows: impl IntoIterator<Item = (i64, &'a str)>) {
        for (ms, id) in rows {
            self.high_ms = Some(self.high_ms.map_or(ms, |h| h.max(ms)));
            self.after = Some((ms, id.to_owned()));
        }
    }

    /// The pass is over: the next one starts `overlap_ms` before the newest stamp seen (never
    /// earlier than this pass started).
    pub fn end_pass(&mut self, overlap_ms: i64) {
        if let Some(high) = self.high_ms {
            self.from_ms = self.from_ms.max(high.saturating_sub(overlap_ms));
        }
        self.after = None;
        self.locator = None;
    }
}

/// Unix ms of a CRM date without time (`2026-03-31`): 00:00 UTC that day.
pub fn date_ms(date: &str) -> Option<i64> {
    let d: jiff::civil::Date = date.trim().parse().ok()?;
    let ts = d.to_zoned(jiff::tz::TimeZone::UTC).ok()?.timestamp();
    Some(ts.as_millisecond())
}

/// Unix ms of a CRM datetime: RFC 3339 (`2026-03-01T10:00:00+05:30`, Zoho) or Salesforce's
/// `2026-03-01T10:00:00.000+0000`.
pub fn datetime_ms(text: &str) -> Option<i64> {
    let text = text.trim();
    if let Ok(ts) = text.parse::<jiff::Timestamp>() {
        return Some(ts.as_millisecond());
    }
    ["%Y-%m-%dT%H:%M:%S%.f%z", "%Y-%m-%dT%H:%M:%S%z"]
        .iter()
        .find_map(|f| jiff::Timestamp::strptime(f, text).ok())
        .map(|ts| ts.as_millisecond())
}

/// The first-poll start: `outcomes_since` when configured, else 30 days before now.
pub fn start_ms(outcomes_since: Option<&str>) -> i64 {
    outcomes_since
        .and_then(|s| s.trim().parse::<jiff::Timestamp>().ok())
        .map(|t| t.as_millisecond())
        .unwrap_or_else(|| {
            jiff::Timestamp::now().as_millisecond() - DEFAULT_LOOKBACK.as_millis() as i64
        })
}

/// How far back the first poll reads when `outcomes_since` is not set.
pub const DEFAULT_LOOKBACK: std::time::Duration = std::time::Duration::from_secs(30 * 86_400);

/// Checks an `outcomes_since` value: RFC 3339, not in the future.
pub fn check_outcomes_since(value: &str) -> Result<(), String> {
    match value.trim().parse::<jiff::Timestamp>() {
        Err(e) => Err(format!(
            "{value:?} is not an RFC 3339 timestamp ({e}); write e.g. \"2026-01-01T00:00:00Z\", or \
             leave it out to start 30 days back"
        )),
        Ok(t) if t > jiff::Timestamp::now() => Err(format!(
            "{value:?} is in the future, so no deal would be read until then; write a past time, or \
             leave it out to start 30 days back"
        )),
        Ok(_) => Ok(()),
    }
}

/// Checks a `currency` value: an ISO 4217 code, three letters.
pub fn check_currency(value: &str) -> Result<(), String> {
    if value.len() == 3 && value.bytes().all(|b| b.is_ascii_alphabetic()) {
        Ok(())
    } else {
        Err(format!(
            "{value:?} is not an ISO 4217 currency code; write three letters, e.g. \"USD\" or \"EUR\""
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passes_resume_after_the_last_row_and_restart_within_the_overlap() {
        let mut c = DealCursor::starting_at(1_000);
        assert!(!c.in_pass());
        c.page_read([(5_000, "a"), (7_000, "b"), (7_000, "c")]);
        assert_eq!(c.after, Some((7_000, "c".to_owned())));
        assert!(c.in_pass());
        let text = c.encode();
        let back = DealCursor::decode(Some(&text), 0, "t");
        assert_eq!(back, c);
        c.end_pass(3_000);
        assert_eq!(c.from_ms, 4_000);
        assert!(!c.in_pass());
        // An empty pass keeps the start; the overlap never moves it back before it.
        c.page_read([]);
        c.end_pass(60_000);
        assert_eq!(c.from_ms, 4_000);
        assert_eq!(
            DealCursor::decode(Some("{not json"), 42, "t"),
            DealCursor::starting_at(42)
        );
        assert_eq!(DealCursor::decode(None, 7, "t").from_ms, 7);
    }

    #[test]
    fn vendor_times_and_dates_become_unix_ms() {
        assert_eq!(date_ms("2026-03-31"), Some(1_774_915_200_000));
        assert_eq!(date_ms("31/03/2026"), None);
        assert_eq!(
            datetime_ms("2026-03-31T00:00:01.000+0000"),
            Some(1_774_915_201_000)
        );
        assert_eq!(
            datetime_ms("2026-03-31T05:30:01+05:30"),
            Some(1_774_915_201_000)
        );
        assert_eq!(datetime_ms("2026-03-31T00:00:01Z"), Some(1_774_915_201_000));
        assert_eq!(datetime_ms("yesterday"), None);
        assert!(check_outcomes_since("2026-01-01T00:00:00Z").is_ok());
        assert!(check_outcomes_since("2026-01-01").is_err());
        assert!(check_outcomes_since("2999-01-01T00:00:00Z").is_err());
        assert!(check_currency("eur").is_ok());
        assert!(check_currency("EURO").is_err() && check_currency("E1R").is_err());
        let now = jiff::Timestamp::now().as_millisecond();
        let start = start_ms(None);
        assert!((now - start - 30 * 86_400_000).abs() < 5_000);
        assert_eq!(start_ms(Some("2026-03-31T00:00:00Z")), 1_774_915_200_000);
    }
}
