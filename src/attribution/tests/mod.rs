//! Tests of the attribution layer. Times are whole days (`D`) to keep the arithmetic readable.

mod models;
mod money;
mod props;
mod quality;
mod report;
mod window;

use super::*;

pub(super) const D: i64 = DAY_MS;

pub(super) fn touch(
    id: &str,
    at: i64,
    source: &str,
    medium: Option<&str>,
    campaign: Option<&str>,
) -> Touch {
    Touch {
        id: id.to_owned(),
        captured_at_ms: at,
        source: source.to_owned(),
        medium: medium.map(str::to_owned),
        campaign: campaign.map(str::to_owned),
    }
}

/// A touchpoint from `google / cpc / spring`.
pub(super) fn t(id: &str, at: i64) -> Touch {
    touch(id, at, "google", Some("cpc"), Some("spring"))
}

pub(super) fn deal(
    id: &str,
    created: i64,
    closed: Option<i64>,
    status: DealStatus,
    amount: i64,
    currency: &str,
) -> Deal {
    Deal {
        id: id.to_owned(),
        created_at_ms: created,
        closed_at_ms: closed,
        status,
        amount_minor: amount,
        currency: currency.to_owned(),
    }
}

pub(super) fn won(id: &str, created: i64, closed: i64, amount: i64, currency: &str) -> Deal {
    deal(id, created, Some(closed), DealStatus::Won, amount, currency)
}

/// Asserts ids in order and weights to 1e-12.
#[track_caller]
pub(super) fn assert_weights(got: &[(String, f64)], want: &[(&str, f64)]) {
    let ids: Vec<&str> = got.iter().map(|(id, _)| id.as_str()).collect();
    let want_ids: Vec<&str> = want.iter().map(|(id, _)| *id).collect();
    assert_eq!(ids, want_ids);
    for ((id, g), (_, w)) in got.iter().zip(want) {
        assert!(
            (g - w).abs() < 1e-12,
            "{id}: got {g}, want {w} (all: {got:?})"
        );
    }
}

/// Credit with the default parameters.
pub(super) fn credit_default(
    model: Model,
    deal: &Deal,
    touches: &[Touch],
    now: i64,
) -> Vec<(String, f64)> {
    credit(model, &ModelParams::default(), deal, touches, now)
}
