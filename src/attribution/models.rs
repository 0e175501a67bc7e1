//! The attribution models: how one deal's credit is split over its touchpoints.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::touches::{Deal, Touch, in_capture_order};

/// An attribution model, named as in the config (`model = "position_based"`) and on the
/// command line (`--model w_shaped`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Model {
    /// 100% to the first touchpoint.
    FirstTouch,
    /// 100% to the last touchpoint.
    LastTouch,
    /// Equal shares.
    Linear,
    /// 40% first, 40% last, 20% over the rest ([`PositionWeights`]).
    PositionBased,
    /// 30% first, 30% last before creation, 30% last before close, 10% others ([`WShapedWeights`]).
    WShaped,
    /// Weight `2^(-age / half_life)` ([`TimeDecay`]).
    TimeDecay,
}

impl Model {
    /// Every model, in documentation order.
    pub const ALL: [Model; 6] = [
        Model::FirstTouch,
        Model::LastTouch,
        Model::Linear,
        Model::PositionBased,
        Model::WShaped,
        Model::TimeDecay,
    ];

    /// The config / command-line name.
    pub fn name(self) -> &'static str {
        match self {
            Model::FirstTouch => "first_touch",
            Model::LastTouch => "last_touch",
            Model::Linear => "linear",
            Model::PositionBased => "position_based",
            Model::WShaped => "w_shaped",
            Model::TimeDecay => "time_decay",
        }
    }
}

impl fmt::Display for Model {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An unknown model name.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown attribution model {0:?}; expected one of first_touch, last_touch, linear, position_based, w_shaped, time_decay"
)]
pub struct UnknownModel(pub String);

impl FromStr for Model {
    type Err = UnknownModel;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Model::ALL
            .into_iter()
            .find(|m| m.name() == s)
            .ok_or_else(|| UnknownModel(s.to_owned()))
    }
}

/// `position_based` weights. Defaults 0.4 / 0.4 / 0.2.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PositionWeights {
    /// Share of the first touchpoint.
    pub first: f64,
    /// Share of the last touchpoint.
    pub last: f64,
    /// Share split equally over the touchpoints between the first and the last.
    pub middle: f64,
}

impl Default for PositionWeights {
    fn default() -> Self {
        PositionWeights {
            first: 0.4,
            last: 0.4,
            middle: 0.2,
        }
    }
}

/// `w_shaped` weights. Defaults 0.3 / 0.3 / 0.3 / 0.1.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WShapedWeights {
    /// Share of the first touchpoint.
    pub first: f64,
    /// Share of the last touchpoint captured at or before the deal's creation.
    pub created: f64,
    /// Share of the last touchpoint captured at or before the deal's close (now, if open).
    pub closed: f64,
    /// Share split equally over the touchpoints that hold none of the three roles.
    pub others: f64,
}

impl Default for WShapedWeights {
    fn default() -> Self {
        WShapedWeights {
            first: 0.3,
            created: 0.3,
            closed: 0.3,
            others: 0.1,
        }
    }
}

/// One day in milliseconds.
pub const DAY_MS: i64 = 86_400_000;

/// `time_decay` parameters. Default half-life 7 days.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TimeDecay {
    /// Half-life in milliseconds (> 0).
    pub half_life_ms: i64,
}

impl Default for TimeDecay {
    fn default() -> Self {
        TimeDecay {
            half_life_ms: 7 * DAY_MS,
        }
    }
}

/// The configurable parameters of all models (each model reads its own part).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ModelParams {
    pub position_based: PositionWeights,
    pub w_shaped: WShapedWeights,
    pub time_decay: TimeDecay,
}

/// A parameter that `ModelParams::validate` rejects. `path` is relative to `[attribution]`.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("{path}: {reason}")]
pub struct ParamsError {
    pub path: String,
    pub reason: String,
}

impl ModelParams {
    /// Every weight finite and non-negative, each model's weights summing to 1 (±1e-9), the
    /// half-life positive. [`credit`] never panics on invalid parameters (it normalises, and
    /// falls back to equal shares when nothing is left), but a config should be refused.
    pub fn validate(&self) -> Result<(), Vec<ParamsError>> {
        let mut errors = Vec::new();
        let p = &self.position_based;
        check_weights(
            "position_based",
            &[("first", p.first), ("last", p.last), ("middle", p.middle)],
            &mut errors,
        );
        let w = &self.w_shaped;
        check_weights(
            "w_shaped",
            &[
                ("first", w.first),
                ("created", w.created),
                ("closed", w.closed),
                ("others", w.others),
            ],
            &mut errors,
        );
        if self.time_decay.half_life_ms <= 0 {
            errors.push(ParamsError {
                path: "time_decay.half_life_ms".into(),
                reason: format!("must be positive, got {}", self.time_decay.half_life_ms),
            });
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }
}

fn check_weights(model: &str, weights: &[(&str, f64)], errors: &mut Vec<ParamsError>) {
    let mut ok = true;
    for (name, w) in weights {
        if !w.is_finite() || *w < 0.0 {
            ok = false;
            errors.push(ParamsError {
                path: format!("{model}.{name}"),
                reason: format!("must be a finite number >= 0, got {w}"),
            });
        }
    }
    let sum: f64 = weights.iter().map(|(_, w)| w).sum();
    if ok && (sum - 1.0).abs() > 1e-9 {
        let names: Vec<&str> = weights.iter().map(|(n, _)| *n).collect();
        errors.push(ParamsError {
            path: model.to_owned(),
            reason: format!("{} must sum to 1, got {sum}", names.join(" + ")),
        });
    }
}

/// Splits a deal's credit over its touchpoints: `(touch id, weight)` in capture order, one entry
/// per touchpoint (zero weights included), weights summing to 1 (up to floating-point rounding).
/// No touchpoints: an empty list (the deal is unattributed).
///
/// `touches` are the deal's touchpoints as [`super::touches_for_deal`] returns them; they are
/// put in capture order (and de-duplicated by id) here again, so the result does not depend on
/// their order. `now_ms` is the end of an open deal (see [`Deal::end_ms`]).
pub fn credit(
    model: Model,
    params: &ModelParams,
    deal: &Deal,
    touches: &[Touch],
    now_ms: i64,
) -> Vec<(String, f64)> {
    let touches = in_capture_order(touches.iter().cloned());
    if touches.is_empty() {
        return Vec::new();
    }
    let raw = raw_weights(model, params, deal, &touches, now_ms);
    let weights = normalise(raw);
    touches.into_iter().map(|t| t.id).zip(weights).collect()
}

/// Unnormalised weights, one per touchpoint in capture order (`touches` is not empty).
fn raw_weights(
    model: Model,
    params: &ModelParams,
    deal: &Deal,
    touches: &[Touch],
    now_ms: i64,
) -> Vec<f64> {
    let n = touches.len();
    let mut w = vec![0.0; n];
    match model {
        Model::FirstTouch => w[0] = 1.0,
        Model::LastTouch => w[n - 1] = 1.0,
        Model::Linear => w.fill(1.0),
        Model::PositionBased => {
            let p = &params.position_based;
            match n {
                1 => w[0] = 1.0,
                // Two touchpoints: first and last in the ratio first : last (50/50 by default).
                2 => {
                    w[0] = p.first;
                    w[1] = p.last;
                }
                _ => {
                    w[0] = p.first;
                    w[n - 1] = p.last;
                    let each = p.middle / (n - 2) as f64;
                    w[1..n - 1].fill(each);
                }
            }
        }
        Model::WShaped => {
            let p = &params.w_shaped;
            let end = deal.end_ms(now_ms);
            let first = 0;
            // The last touchpoint captured at or before creation; none: the first touchpoint.
            let created = touches
                .iter()
                .rposition(|t| t.captured_at_ms <= deal.created_at_ms)
                .unwrap_or(first);
            // The last touchpoint captured at or before the end (close, or now for an open deal).
            // With windowed input this is the last one; should none precede the end, the last.
            let closed = touches
                .iter()
                .rposition(|t| t.captured_at_ms <= end)
                .unwrap_or(n - 1);
            w[first] += p.first;
            w[created] += p.created;
            w[closed] += p.closed;
            let mut roles = vec![first, created, closed];
            roles.sort_unstable();
            roles.dedup();
            let others: Vec<usize> = (0..n).filter(|i| !roles.contains(i)).collect();
            let receivers = if others.is_empty() { &roles } else { &others };
            let each = p.others / receivers.len() as f64;
            for &i in receivers {
                w[i] += each;
            }
        }
        Model::TimeDecay => {
            let end = i128::from(deal.end_ms(now_ms));
            let half_life = params.time_decay.half_life_ms.max(1) as f64;
            let ages: Vec<i128> = touches
                .iter()
                .map(|t| end - i128::from(t.captured_at_ms))
                .collect();
            // 2^(-age/h) relative to the youngest touchpoint: the same after normalising, and
            // it cannot underflow to all zeros however old the touchpoints are.
            let youngest = ages.iter().copied().min().unwrap_or(0);
            for (wi, age) in w.iter_mut().zip(ages) {
                *wi = (-((age - youngest) as f64) / half_life).exp2();
            }
        }
    }
    w
}

/// Divides by the total; non-finite or negative weights count as 0; if nothing is left, equal
/// shares.
fn normalise(mut w: Vec<f64>) -> Vec<f64> {
    for x in &mut w {
        if !x.is_finite() || *x < 0.0 {
            *x = 0.0;
        }
    }
    // Scale by the largest first so the sum cannot overflow to infinity.
    let max = w.iter().copied().fold(0.0, f64::max);
    if max > 0.0 {
        w.iter_mut().for_each(|x| *x /= max);
    }
    let total: f64 = w.iter().sum();
    if total > 0.0 && total.is_finite() {
        for x in &mut w {
            *x /= total;
        }
    } else {
        let each = 1.0 / w.len() as f64;
        w.fill(each);
    }
    w
}
