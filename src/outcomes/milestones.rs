//! Where a deal is in tandem's funnel: each CRM stage mapped to a milestone, and the milestones a
//! deal has reached so far (kept across observations, so a deal that jumps from "new" straight to
//! "closed won" still reports qualified and opportunity first).

use std::collections::BTreeMap;

use tandem_connectors::{
    outcome::{DealState, Outcome},
    writeback::Milestone,
};

use crate::config::MilestoneMap;

/// `[attribution.milestones]`, ready for lookups.
#[derive(Debug, Clone, Default)]
pub struct StageMap(BTreeMap<String, Milestone>);

impl StageMap {
    pub fn new(map: &MilestoneMap) -> StageMap {
        StageMap(map.index())
    }

    /// The deal's milestone now: its stage as mapped (`pipeline:stage` before the bare stage),
    /// else the CRM's own verdict (won / lost), else `opportunity` (a deal exists).
    pub fn milestone_of(&self, o: &Outcome) -> Milestone {
        let qualified = o
            .pipeline
            .as_ref()
            .and_then(|p| self.0.get(&format!("{p}:{}", o.stage)));
        if let Some(m) = qualified.or_else(|| self.0.get(&o.stage)) {
            return *m;
        }
        match o.state {
            DealState::Won => Milestone::Won,
            DealState::Lost => Milestone::Lost,
            DealState::Open => Milestone::Opportunity,
        }
    }
}

/// Milestone → when it was first reached (Unix ms).
pub type Reached = BTreeMap<Milestone, i64>;

/// The milestones reached after observing `current` at `at_ms`, given those reached before.
/// Reaching a milestone implies the funnel steps before it: won implies qualified and
/// opportunity; lost and opportunity imply nothing earlier (a deal lost at first contact was never
/// qualified). Times of milestones reached earlier are kept.
pub fn advance(before: &Reached, current: Milestone, at_ms: i64) -> Reached {
    let mut reached = before.clone();
    let implied: &[Milestone] = match current {
        Milestone::Qualified => &[Milestone::Qualified],
        Milestone::Opportunity => &[Milestone::Opportunity],
        Milestone::Won => &[Milestone::Qualified, Milestone::Opportunity, Milestone::Won],
        Milestone::Lost => &[Milestone::Lost],
    };
    for m in implied {
        reached.entry(*m).or_insert(at_ms);
    }
    reached
}

/// Whether `milestone` still holds for a deal whose milestone is now `current`. Qualified and
/// opportunity, once reached, stay reached (history); won and lost hold only while they are the
/// deal's present verdict, so a won deal that is later lost withdraws its won conversion.
pub fn holds(reached: &Reached, milestone: Milestone, current: Milestone) -> bool {
    match milestone {
        Milestone::Qualified | Milestone::Opportunity => reached.contains_key(&milestone),
        Milestone::Won | Milestone::Lost => current == milestone,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(pipeline: Option<&str>, stage: &str, state: DealState) -> Outcome {
        Outcome {
            deal_id: "1".into(),
            pipeline: pipeline.map(str::to_owned),
            stage: stage.into(),
            state,
            amount_minor: None,
            currency: None,
            created_at_ms: 0,
            closed_at_ms: None,
            modified_at_ms: 0,
            contacts: vec![],
        }
    }

    #[test]
    fn stages_map_by_pipeline_then_stage_then_the_crms_verdict() {
        let map = StageMap::new(&MilestoneMap {
            qualified: vec!["qualifiedtobuy".into(), "enterprise:discovery".into()],
            opportunity: vec![],
            won: vec!["closedwon".into()],
            lost: vec!["discovery".into()],
        });
        let m = |p, s, st| map.milestone_of(&outcome(p, s, st));
        assert_eq!(
            m(None, "qualifiedtobuy", DealState::Open),
            Milestone::Qualified
        );
        assert_eq!(
            m(Some("enterprise"), "discovery", DealState::Open),
            Milestone::Qualified
        );
        assert_eq!(
            m(Some("smb"), "discovery", DealState::Open),
            Milestone::Lost
        );
        assert_eq!(m(None, "custom_won", DealState::Won), Milestone::Won);
        assert_eq!(m(None, "custom_lost", DealState::Lost), Milestone::Lost);
        assert_eq!(m(None, "demo", DealState::Open), Milestone::Opportunity);
        // The mapping wins over the verdict.
        assert_eq!(m(None, "closedwon", DealState::Open), Milestone::Won);
    }

    #[test]
    fn won_implies_the_funnel_and_times_of_earlier_milestones_are_kept() {
        let r = advance(&Reached::new(), Milestone::Qualified, 10);
        let r = advance(&r, Milestone::Won, 30);
        assert_eq!(
            r,
            Reached::from([
                (Milestone::Qualified, 10),
                (Milestone::Opportunity, 30),
                (Milestone::Won, 30)
            ])
        );
        let r = advance(&r, Milestone::Lost, 40);
        assert!(holds(&r, Milestone::Qualified, Milestone::Lost));
        assert!(!holds(&r, Milestone::Won, Milestone::Lost));
        assert!(holds(&r, Milestone::Lost, Milestone::Lost));
        let lost_first = advance(&Reached::new(), Milestone::Lost, 5);
        assert_eq!(lost_first.keys().collect::<Vec<_>>(), [&Milestone::Lost]);
    }
}
