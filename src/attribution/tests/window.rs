use std::time::Duration;

use super::*;

const TEN_DAYS: Duration = Duration::from_secs(10 * 86_400);

fn ids(ts: &[Touch]) -> Vec<&str> {
    ts.iter().map(|t| t.id.as_str()).collect()
}

#[test]
fn closed_deal_window_includes_both_bounds() {
    // Closed at 20d, lookback 10d: [10d, 20d].
    let d = won("X", 0, 20 * D, 1, "EUR");
    let ts = [
        t("early", 10 * D - 1),
        t("start", 10 * D),
        t("close", 20 * D),
        t("after", 20 * D + 1),
    ];
    assert_eq!(
        ids(&touches_for_deal(&d, &ts, TEN_DAYS, 99 * D)),
        ["start", "close"]
    );
    // Lost deals look back from their close too.
    let lost = deal("L", 0, Some(20 * D), DealStatus::Lost, 1, "EUR");
    assert_eq!(
        ids(&touches_for_deal(&lost, &ts, TEN_DAYS, 99 * D)),
        ["start", "close"]
    );
}

#[test]
fn open_deal_looks_back_from_now() {
    let d = deal("X", 0, None, DealStatus::Open, 1, "EUR");
    let ts = [t("old", 4 * D), t("recent", 14 * D), t("future", 16 * D)];
    assert_eq!(
        ids(&touches_for_deal(&d, &ts, TEN_DAYS, 15 * D)),
        ["recent"]
    );
    // An open deal with a stale close time (reopened) still uses now; so does a won deal the
    // CRM gave no close time.
    let reopened = deal("X", 0, Some(5 * D), DealStatus::Open, 1, "EUR");
    assert_eq!(reopened.end_ms(15 * D), 15 * D);
    let no_close = deal("X", 0, None, DealStatus::Won, 1, "EUR");
    assert_eq!(no_close.end_ms(15 * D), 15 * D);
}

#[test]
fn capture_order_ties_by_id_and_duplicates_collapse() {
    let d = won("X", 0, 20 * D, 1, "EUR");
    let ts = [
        t("c", 15 * D),
        t("b", 12 * D),
        t("a", 15 * D),
        t("b", 13 * D),
    ];
    // a and c tie at 15d → by id; b twice → the earlier copy.
    let got = touches_for_deal(&d, &ts, TEN_DAYS, 0);
    assert_eq!(ids(&got), ["b", "a", "c"]);
    assert_eq!(got[0].captured_at_ms, 12 * D);
}

#[test]
fn extreme_lookback_and_times() {
    let d = won("X", 0, i64::MIN + 5, 1, "EUR");
    let ts = [t("a", i64::MIN), t("b", i64::MIN + 5), t("c", i64::MAX)];
    // end - lookback saturates at i64::MIN.
    assert_eq!(
        ids(&touches_for_deal(&d, &ts, Duration::MAX, 0)),
        ["a", "b"]
    );
    let d = won("X", 0, i64::MAX, 1, "EUR");
    assert_eq!(ids(&touches_for_deal(&d, &ts, Duration::ZERO, 0)), ["c"]);
}

#[test]
fn period_is_half_open() {
    let p = Period {
        since_ms: Some(10),
        until_ms: Some(20),
    };
    assert!(!p.contains(9) && p.contains(10) && p.contains(19) && !p.contains(20));
    assert!(Period::default().contains(i64::MIN));
    let w = won("X", 0, 10, 1, "EUR");
    assert!(w.won_in(&p));
    assert!(!deal("X", 0, Some(10), DealStatus::Lost, 1, "EUR").won_in(&p));
}
