//! `[attribution]`: where deal outcomes are read, how their credit is split over touchpoints, how
//! each CRM's stages map to tandem's milestones, and where the results are written back.

use std::collections::BTreeMap;

use serde::Deserialize;
use tandem_connectors::{units::HumanDuration, writeback::Milestone};

use crate::attribution::{Model, ModelParams, PositionWeights, TimeDecay, WShapedWeights};

/// `[attribution]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttributionConfig {
    /// The CRM connector whose deals are read.
    pub from: String,
    /// The model reports and write-backs use unless `--model` says otherwise.
    #[serde(default = "default_model")]
    pub model: Model,
    /// How far before a deal's close (or now, for open deals) its people's touchpoints count.
    #[serde(default = "default_lookback")]
    pub lookback: HumanDuration,
    /// Write-back destinations: ad platforms, the email platform, the CRM itself.
    #[serde(default)]
    pub to: Vec<String>,
    /// `position_based` weights (`first`, `last`, `middle`).
    #[serde(default)]
    pub position_based: PositionWeights,
    /// `w_shaped` weights (`first`, `created`, `closed`, `others`).
    #[serde(default)]
    pub w_shaped: WShapedWeights,
    /// `time_decay` half-life.
    #[serde(default = "default_half_life")]
    pub half_life: HumanDuration,
    /// Stage → milestone, for the stages of the CRM in `from`.
    #[serde(default)]
    pub milestones: MilestoneMap,
}

/// `[attribution.milestones]`: lists of the CRM's stage ids per milestone. A stage is named by
/// its id (`closedwon`) or, for CRMs with several pipelines, `pipeline:stage` (which wins over the
/// bare id). Unmapped stages of an open deal count as `opportunity`; won / lost follow the CRM's own
/// verdict when the stage isn't mapped.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MilestoneMap {
    #[serde(default)]
    pub qualified: Vec<String>,
    #[serde(default)]
    pub opportunity: Vec<String>,
    #[serde(default)]
    pub won: Vec<String>,
    #[serde(default)]
    pub lost: Vec<String>,
}

impl MilestoneMap {
    /// Stage key → milestone, for lookups.
    pub fn index(&self) -> BTreeMap<String, Milestone> {
        let mut map = BTreeMap::new();
        for (milestone, stages) in [
            (Milestone::Qualified, &self.qualified),
            (Milestone::Opportunity, &self.opportunity),
            (Milestone::Won, &self.won),
            (Milestone::Lost, &self.lost),
        ] {
            for s in stages {
                map.insert(s.clone(), milestone);
            }
        }
        map
    }

    /// Stages listed under two milestones.
    pub fn conflicts(&self) -> Vec<String> {
        let mut seen = BTreeMap::new();
        let mut dup = Vec::new();
        for stages in [&self.qualified, &self.opportunity, &self.won, &self.lost] {
            for s in stages {
                if seen.insert(s.clone(), ()).is_some() {
                    dup.push(s.clone());
                }
            }
        }
        dup
    }
}

impl AttributionConfig {
    pub fn params(&self) -> ModelParams {
        ModelParams {
            position_based: self.position_based.clone(),
            w_shaped: self.w_shaped.clone(),
            time_decay: TimeDecay {
                half_life_ms: i64::try_from(self.half_life.0.as_millis()).unwrap_or(i64::MAX),
            },
        }
    }
}

fn default_model() -> Model {
    Model::PositionBased
}

fn default_lookback() -> HumanDuration {
    HumanDuration(std::time::Duration::from_secs(90 * 86_400))
}

fn default_half_life() -> HumanDuration {
    HumanDuration(std::time::Duration::from_secs(7 * 86_400))
}
