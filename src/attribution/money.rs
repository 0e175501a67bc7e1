//! Exact money splitting: integer minor units, largest remainder.

/// Weights are quantised to this many parts before rounding, so that weights meant to be equal
/// (`0.3 + 0.05` and `0.35`) tie exactly and the tie goes to the earlier touchpoint.
pub const WEIGHT_SCALE: i128 = 1_000_000_000_000;

/// Splits `amount_minor` over `weights` by largest remainder so the parts sum to `amount_minor`
/// exactly, for any amount (zero and negative included; a negative amount is split as its
/// absolute value and negated, so `allocate(-a, w) == -allocate(a, w)`).
///
/// Each part first gets `floor(|amount| × share)`; the units left over (fewer than the number of
/// parts) go one each to the parts with the largest remainders, ties to the earlier part.
/// Shares are `weight / Σ weights` quantised to [`WEIGHT_SCALE`]; non-finite or negative weights
/// count as 0 and if no weight is left the split is equal. No weights: an empty vector (there is
/// nothing to credit; the caller reports the amount as unattributed).
pub fn allocate(amount_minor: i64, weights: &[f64]) -> Vec<i64> {
    let n = weights.len();
    if n == 0 {
        return Vec::new();
    }
    let shares = quantise(weights);
    let total: i128 = shares.iter().sum();
    let magnitude = i128::from(amount_minor).abs();
    // magnitude <= 2^63 and share <= 10^12 < 2^40: the product fits in i128.
    let mut parts: Vec<i128> = shares.iter().map(|s| magnitude * s / total).collect();
    let remainders: Vec<i128> = shares.iter().map(|s| magnitude * s % total).collect();
    let left = magnitude - parts.iter().sum::<i128>();
    let mut order: Vec<usize> = (0..n).collect();
    // Stable sort: equal remainders keep index order, so ties go to the earlier part.
    order.sort_by(|&a, &b| remainders[b].cmp(&remainders[a]));
    // `left < n` because each part lost less than one unit to flooring.
    for &i in order.iter().take(usize::try_from(left).unwrap_or(n)) {
        parts[i] += 1;
    }
    let sign = if amount_minor < 0 { -1 } else { 1 };
    parts
        .into_iter()
        // |part| <= 2^63, and a part of 2^63 only occurs for i64::MIN, where it is negated.
        .map(|p| i64::try_from(sign * p).unwrap_or(if sign < 0 { i64::MIN } else { i64::MAX }))
        .collect()
}

/// Integer shares in `0..=WEIGHT_SCALE`, at least one of them positive.
fn quantise(weights: &[f64]) -> Vec<i128> {
    let mut clean: Vec<f64> = weights
        .iter()
        .map(|&w| if w.is_finite() && w > 0.0 { w } else { 0.0 })
        .collect();
    // Scale by the largest first so the sum cannot overflow to infinity.
    let max = clean.iter().copied().fold(0.0, f64::max);
    if max > 0.0 {
        clean.iter_mut().for_each(|w| *w /= max);
    }
    let total: f64 = clean.iter().sum();
    let shares: Vec<i128> = if total > 0.0 && total.is_finite() {
        clean
            .iter()
            .map(|w| ((w / total) * WEIGHT_SCALE as f64).round() as i128)
            .collect()
    } else {
        vec![0; clean.len()]
    };
    if shares.iter().all(|&s| s == 0) {
        vec![1; weights.len()]
    } else {
        shares
    }
}
