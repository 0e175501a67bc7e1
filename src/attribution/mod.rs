//! Attribution, the pure computation layer: which touchpoints belong to a deal, how a model splits
//! the deal's credit over them, how its amount is rounded to exact minor units, the lead-quality
//! figures per source / medium / campaign, and the report formats. Nothing here touches the store
//! or the network; the daemon feeds it deals, people and touchpoints and prints or writes back what
//! comes out. `docs/attribution.md` describes every rule exactly as implemented.
//!
//! - [`touches`]: the inputs ([`Touch`], [`Deal`]) and the lookback window ([`touches_for_deal`]).
//! - [`models`]: [`Model`], its parameters and [`credit`] (weights summing to 1).
//! - [`money`]: [`allocate`], largest-remainder rounding that sums exactly to the amount.
//! - [`attribute`] (here): window + model + rounding for one deal → [`DealCredit`].
//! - [`quality`]: lead quality per source / medium / campaign ([`quality_rows`]).
//! - [`report`]: grouping by [`Dimension`] and the table / csv / json formats.

pub mod models;
pub mod money;
pub mod quality;
pub mod report;
pub mod touches;

#[cfg(test)]
mod tests;

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use models::{
    DAY_MS, Model, ModelParams, ParamsError, PositionWeights, TimeDecay, UnknownModel,
    WShapedWeights, credit,
};
pub use money::allocate;
pub use quality::{PersonRecord, QualityReport, QualityRow, quality_rows};
pub use report::{AttributionReport, AttributionRow, Format, UnattributedRow, attribution_rows};
pub use touches::{Deal, DealStatus, Period, Touch, in_capture_order, touches_for_deal};

/// One touchpoint's share of one deal.
#[derive(Clone, Debug, PartialEq)]
pub struct Credit {
    pub touch: Touch,
    /// The model's weight (the deal's weights sum to 1).
    pub weight: f64,
    /// This touchpoint's part of the deal amount (the deal's parts sum to its amount exactly).
    pub amount_minor: i64,
}

/// A deal with its credits. No credits: the deal had no touchpoint in its window and is reported
/// as unattributed.
#[derive(Clone, Debug, PartialEq)]
pub struct DealCredit {
    pub deal: Deal,
    /// In capture order.
    pub credits: Vec<Credit>,
}

impl DealCredit {
    pub fn is_unattributed(&self) -> bool {
        self.credits.is_empty()
    }
}

/// Attributes one deal: [`touches_for_deal`] (the window), [`credit`] (the model), then
/// [`allocate`] (the amount, exactly).
pub fn attribute(
    model: Model,
    params: &ModelParams,
    deal: &Deal,
    person_touches: &[Touch],
    lookback: Duration,
    now_ms: i64,
) -> DealCredit {
    let touches = touches_for_deal(deal, person_touches, lookback, now_ms);
    let weights = credit(model, params, deal, &touches, now_ms);
    let shares: Vec<f64> = weights.iter().map(|(_, w)| *w).collect();
    let amounts = allocate(deal.amount_minor, &shares);
    // `credit` returns the touchpoints in the same (capture) order `touches_for_deal` did.
    let credits = touches
        .into_iter()
        .zip(shares)
        .zip(amounts)
        .map(|((touch, weight), amount_minor)| Credit {
            touch,
            weight,
            amount_minor,
        })
        .collect();
    DealCredit {
        deal: deal.clone(),
        credits,
    }
}

/// What report rows are grouped by. Coarser to finer: `source` groups by source alone, `medium`
/// by (source, medium), `campaign` by (source, medium, campaign). Columns not grouped by are
/// `null` (JSON) / empty (CSV) / left out (table).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Dimension {
    Source,
    Medium,
    #[default]
    Campaign,
}

impl Dimension {
    pub fn name(self) -> &'static str {
        match self {
            Dimension::Source => "source",
            Dimension::Medium => "medium",
            Dimension::Campaign => "campaign",
        }
    }

    /// The grouping key of a touchpoint. Outer `None`: not grouped by this column; inner `None`
    /// (medium, campaign): the touchpoint has no value.
    pub fn key(self, touch: &Touch) -> GroupKey {
        GroupKey {
            source: Some(touch.source.clone()),
            medium: (self >= Dimension::Medium).then(|| touch.medium.clone()),
            campaign: (self >= Dimension::Campaign).then(|| touch.campaign.clone()),
        }
    }
}

impl fmt::Display for Dimension {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Dimension {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "source" => Ok(Dimension::Source),
            "medium" => Ok(Dimension::Medium),
            "campaign" => Ok(Dimension::Campaign),
            _ => Err(format!(
                "unknown dimension {s:?}; expected one of source, medium, campaign"
            )),
        }
    }
}

/// A row's grouping key (see [`Dimension::key`]). Orders `None` before `Some`, then by text.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GroupKey {
    pub source: Option<String>,
    pub medium: Option<Option<String>>,
    pub campaign: Option<Option<String>>,
}
