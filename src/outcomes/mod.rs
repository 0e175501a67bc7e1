//! The closed loop, daemon side: what a polled deal means for tandem. Each observation of a deal
//! is mapped to a milestone, its reached milestones are carried forward, its people's touchpoints
//! are attributed by the configured model, and one write-back plan is made per destination and
//! milestone; the store then enqueues only what a destination hasn't been told yet, in the same
//! transaction as the deal and the cursor.
//!
//! - [`milestones`]: stage → milestone, reached milestones, which still hold.
//! - [`plan`]: send / restate / retract decisions against what a destination was told.
//! - [`touch`]: stored leads read back as touchpoints, identifiers and click ids.
//! - [`report`]: the attribution and quality reports over the store's deals and leads.

pub mod milestones;
pub mod plan;
pub mod report;
pub mod touch;

use std::{collections::BTreeSet, time::Duration};

use tandem_connectors::{
    outcome::Outcome,
    writeback::{AttributionSummary, Conversion, CreditSummary, Milestone, WritebackAction},
};

use crate::attribution::{self, Deal, DealStatus, Model, ModelParams};
use crate::store::{DealContext, DealRecord, WritebackPlan};
use milestones::{Reached, StageMap, advance, holds};
use plan::{Caps, Want};
use touch::{ReadLead, merge_person, read_lead, summary};

/// One write-back destination as the planner sees it.
#[derive(Debug, Clone)]
pub struct Destination {
    pub name: String,
    /// Milestones it takes.
    pub accepts: BTreeSet<Milestone>,
    pub caps: Caps,
}

/// Everything the planner needs from `[attribution]` and the runtime.
#[derive(Debug, Clone)]
pub struct LoopConfig {
    /// The CRM connector's name and kind.
    pub crm: String,
    pub crm_kind: String,
    pub model: Model,
    pub params: ModelParams,
    pub lookback: Duration,
    pub stages: StageMap,
    /// Source connectors whose event ids are Meta lead ids.
    pub meta_sources: Vec<String>,
    pub destinations: Vec<Destination>,
}

/// The deal as attribution sees it, given its milestone now.
pub fn attribution_deal(o: &Outcome, milestone: Milestone) -> Deal {
    Deal {
        id: o.deal_id.clone(),
        created_at_ms: o.created_at_ms,
        closed_at_ms: o.closed_at_ms,
        status: match milestone {
            Milestone::Won => DealStatus::Won,
            Milestone::Lost => DealStatus::Lost,
            _ => DealStatus::Open,
        },
        amount_minor: o.amount_minor.unwrap_or(0),
        currency: o.currency.clone().unwrap_or_default(),
    }
}

/// A deal's credits as the CRM's deal fields and the write-backs carry them.
pub fn attribution_summary(
    cfg: &LoopConfig,
    deal: &Deal,
    leads: &[ReadLead],
    now_ms: i64,
) -> AttributionSummary {
    let touches: Vec<_> = leads.iter().map(|l| l.touch.clone()).collect();
    let credited =
        attribution::attribute(cfg.model, &cfg.params, deal, &touches, cfg.lookback, now_ms);
    AttributionSummary {
        model: cfg.model.name().to_owned(),
        first_touch: credited.credits.first().map(|c| summary(&c.touch)),
        last_touch: credited.credits.last().map(|c| summary(&c.touch)),
        credits: credited
            .credits
            .iter()
            .map(|c| CreditSummary {
                touch: summary(&c.touch),
                weight: c.weight,
                amount_minor: c.amount_minor,
            })
            .collect(),
    }
}

/// Turns one polled deal and what the store knew of it into the record to store, with a
/// write-back plan per destination and accepted milestone, in funnel order (so earlier milestones
/// are queued, and therefore sent, before later ones).
pub fn deal_record(
    cfg: &LoopConfig,
    outcome: Outcome,
    ctx: DealContext,
    now_ms: i64,
) -> DealRecord {
    let milestone = cfg.stages.milestone_of(&outcome);
    let at = match milestone {
        Milestone::Won | Milestone::Lost => outcome.closed_at_ms.unwrap_or(outcome.modified_at_ms),
        _ => outcome.modified_at_ms,
    };
    let before = ctx.known.map(|k| k.reached).unwrap_or_default();
    let reached: Reached = advance(&before, milestone, at);
    let person_ids: Vec<i64> = ctx.people.iter().map(|p| p.person_id).collect();
    let all_leads: Vec<ReadLead> = ctx
        .people
        .iter()
        .flat_map(|p| p.leads.iter().map(|l| read_lead(l, &cfg.meta_sources)))
        .collect();
    let deal = attribution_deal(&outcome, milestone);
    let summary = attribution_summary(cfg, &deal, &all_leads, now_ms);
    let mut writebacks = Vec::new();
    // The conversion is about the deal's first person the store knows (the CRM's primary contact).
    if let Some(primary) = ctx.people.first()
        && let Some(latest) = primary.leads.last()
    {
        let own: Vec<ReadLead> = primary
            .leads
            .iter()
            .map(|l| read_lead(l, &cfg.meta_sources))
            .collect();
        let (person, clicks) = merge_person(&own);
        for dest in &cfg.destinations {
            for m in Milestone::ALL
                .into_iter()
                .filter(|m| dest.accepts.contains(m))
            {
                let mut person = person.clone();
                person.remote_id = primary.remote_ids.get(&dest.name).cloned();
                writebacks.push(WritebackPlan {
                    destination: dest.name.clone(),
                    want: Want {
                        holds: holds(&reached, m, milestone),
                        value_minor: outcome.amount_minor,
                        currency: outcome.currency.clone(),
                    },
                    // Only revenue is restated: the value reported with an earlier milestone
                    // was the pipeline's value at that time and stays as told.
                    caps: Caps {
                        restate: dest.caps.restate && m == Milestone::Won,
                        retract: dest.caps.retract,
                    },
                    person_id: primary.person_id,
                    lead_id: latest.lead_id.clone(),
                    conversion: Conversion {
                        delivery_id: 0,
                        key: format!("{}:{}:{}", cfg.crm, outcome.deal_id, m.name()),
                        request_key: String::new(),
                        action: WritebackAction::Send,
                        milestone: m,
                        crm: cfg.crm.clone(),
                        crm_kind: cfg.crm_kind.clone(),
                        deal_id: outcome.deal_id.clone(),
                        occurred_at_ms: reached.get(&m).copied().unwrap_or(at),
                        value_minor: outcome.amount_minor,
                        currency: outcome.currency.clone(),
                        person,
                        clicks: clicks.clone(),
                        attribution: summary.clone(),
                    },
                });
            }
        }
    }
    DealRecord {
        outcome,
        milestone,
        reached,
        person_ids,
        writebacks,
    }
}
