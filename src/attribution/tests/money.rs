use super::*;

#[test]
fn hundred_over_three_linear() {
    // 33.33… each: floors 33 × 3 = 99, one left; equal remainders → the earliest.
    let d = won("X", 0, 10 * D, 100, "EUR");
    let ts = [t("a", D), t("b", 2 * D), t("c", 3 * D)];
    let w: Vec<f64> = credit_default(Model::Linear, &d, &ts, 0)
        .into_iter()
        .map(|(_, w)| w)
        .collect();
    assert_eq!(allocate(100, &w), [34, 33, 33]);
    assert_eq!(allocate(-100, &w), [-34, -33, -33]);
    assert_eq!(allocate(2, &w), [1, 1, 0]);
}

#[test]
fn ties_go_to_the_earlier_touchpoint() {
    // 10 over six equal parts: 1.666… each, floors 6, four left → the first four.
    assert_eq!(allocate(10, &[1.0; 6]), [2, 2, 2, 2, 1, 1]);
    // Position based, 101 over 0.4 / 0.1 / 0.1 / 0.4: 40.4, 10.1, 10.1, 40.4 → floors 100; the
    // one left goes to the largest remainder .4, a tie of first and last → the first.
    assert_eq!(allocate(101, &[0.4, 0.1, 0.1, 0.4]), [41, 10, 10, 40]);
    // Weights that are equal only up to float rounding still tie: 0.3 + 0.05 vs 0.35.
    assert_eq!(allocate(1, &[0.35, 0.3 + 0.05, 0.3]), [1, 0, 0]);
    assert_eq!(allocate(1, &[0.3, 0.3 + 0.05, 0.35]), [0, 1, 0]);
}

#[test]
fn largest_remainder_wins() {
    // 1000 × (1/7, 2/7, 4/7) = 142.857, 285.714, 571.428: floors 998, two left → .857, .714.
    assert_eq!(allocate(1000, &[1.0, 2.0, 4.0]), [143, 286, 571]);
    // 999 × (0.3, 0.3, 0.1, 0.3): remainders .7 .7 .9 .7 → c, a, b.
    assert_eq!(allocate(999, &[0.3, 0.3, 0.1, 0.3]), [300, 300, 100, 299]);
    // Negative amounts mirror: -999 → -300, -300, -100, -299.
    assert_eq!(
        allocate(-999, &[0.3, 0.3, 0.1, 0.3]),
        [-300, -300, -100, -299]
    );
}

#[test]
fn zero_and_degenerate_weights() {
    assert_eq!(allocate(0, &[0.2, 0.8]), [0, 0]);
    assert!(allocate(100, &[]).is_empty());
    // Nothing usable: equal split.
    assert_eq!(allocate(5, &[0.0, 0.0]), [3, 2]);
    assert_eq!(allocate(5, &[f64::NAN, -1.0, f64::INFINITY]), [2, 2, 1]);
    // Zero and NaN weights get nothing when another weight is positive.
    assert_eq!(allocate(7, &[0.0, f64::NAN, 2.0]), [0, 0, 7]);
    // Huge finite weights do not overflow the sum.
    assert_eq!(allocate(3, &[f64::MAX, f64::MAX, f64::MAX]), [1, 1, 1]);
}

#[test]
fn extreme_amounts() {
    // i64::MIN = -2^63 over two halves: -2^62 each.
    assert_eq!(allocate(i64::MIN, &[1.0, 1.0]), [-(1 << 62), -(1 << 62)]);
    // i64::MAX = 2^63 - 1: 2^62 - 0.5 each → floors 2^62 - 1, one left → the first.
    assert_eq!(allocate(i64::MAX, &[1.0, 1.0]), [1 << 62, (1 << 62) - 1]);
    assert_eq!(allocate(i64::MIN, &[1.0]), [i64::MIN]);
    assert_eq!(allocate(i64::MAX, &[0.5, 0.0]), [i64::MAX, 0]);
}
