//! Deals in the sandbox's memory, and the salesperson's side of them: add a person, create a
//! deal for some persons, move it between stages, win it, lose it, reopen it, with times stamped as asked (a
//! past time models a late write: visible at once, stamped earlier).
//!
//! The default pipeline (id 1) has Pipedrive's default stages: 1 Qualified, 2 Contact Made,
//! 3 Proposal Made, 4 Negotiations Started. Won and lost are not stages in Pipedrive but the
//! deal's `status`: moving a deal to `"won"` / `"lost"` sets the status and `won_time` /
//! `lost_time` / `close_time` and keeps its stage; moving it to a numeric stage (or `"open"`)
//! reopens it, as a salesperson's Reopen does.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

use crate::{pipedrive::wire::ContactValue, sandbox::SandboxDeal};

use super::{
    SandboxState,
    state::{StoredPerson, now},
};

/// The default pipeline.
pub const PIPELINE_ID: u64 = 1;
/// (stage id, name) of the default pipeline, in order.
pub const STAGES: &[(u64, &str)] = &[
    (1, "Qualified"),
    (2, "Contact Made"),
    (3, "Proposal Made"),
    (4, "Negotiations Started"),
];

/// One stored deal (Pipedrive's v2 fields that the sandbox models).
#[derive(Debug, Clone, Serialize)]
pub struct StoredDeal {
    pub id: u64,
    pub title: String,
    pub pipeline_id: u64,
    pub stage_id: u64,
    /// `open`, `won` or `lost`.
    pub status: String,
    /// Decimal text as typed; `None` = no value (Pipedrive shows 0).
    pub value: Option<String>,
    pub currency: String,
    pub person_id: Option<u64>,
    /// Every person on the deal, the main one first (Pipedrive's participants).
    pub participants: Vec<u64>,
    pub add_time: jiff::Timestamp,
    pub update_time: jiff::Timestamp,
    pub stage_change_time: Option<jiff::Timestamp>,
    pub won_time: Option<jiff::Timestamp>,
    pub lost_time: Option<jiff::Timestamp>,
    pub close_time: Option<jiff::Timestamp>,
    /// Every custom deal field's key, `null` until written.
    pub custom_fields: BTreeMap<String, Value>,
    /// Updates through the API.
    pub writes: u32,
}

/// `at_ms` in Pipedrive's precision (whole seconds), or now.
fn stamp(at_ms: Option<i64>) -> jiff::Timestamp {
    at_ms
        .and_then(|ms| jiff::Timestamp::from_second(ms.div_euclid(1000)).ok())
        .unwrap_or_else(now)
}

impl StoredDeal {
    /// Moves to `stage` (a stage id, `won`, `lost` or `open`) at `at`; `false` for an unknown
    /// stage.
    fn apply_stage(&mut self, stage: &str, at: jiff::Timestamp) -> bool {
        match stage.trim() {
            "won" => {
                self.status = "won".to_owned();
                self.won_time = Some(at);
                self.lost_time = None;
                self.close_time = Some(at);
            }
            "lost" => {
                self.status = "lost".to_owned();
                self.lost_time = Some(at);
                self.won_time = None;
                self.close_time = Some(at);
            }
            other => {
                if other != "open" {
                    let Some(id) = other
                        .parse::<u64>()
                        .ok()
                        .filter(|id| STAGES.iter().any(|(s, _)| s == id))
                    else {
                        return false;
                    };
                    if id != self.stage_id {
                        self.stage_id = id;
                        self.stage_change_time = Some(at);
                    }
                }
                self.status = "open".to_owned();
                self.won_time = None;
                self.lost_time = None;
                self.close_time = None;
            }
        }
        true
    }
}

impl SandboxState {
    /// A salesperson adds a person by hand (searchable at once); returns its id.
    pub fn add_person(&self, name: &str, email: &str) -> u64 {
        let at = now();
        let custom = self
            .options()
            .custom_fields
            .iter()
            .map(|(k, _, _)| (k.clone(), Value::Null))
            .collect();
        let mut w = self.world();
        let id = w.next_id;
        w.next_id += 1;
        w.persons.insert(
            id,
            StoredPerson {
                id,
                name: name.to_owned(),
                emails: vec![ContactValue::primary(email)],
                phones: Vec::new(),
                org_id: None,
                owner_id: None,
                custom_fields: custom,
                add_time: at,
                update_time: at,
                writes: 0,
                written_at: None,
                searches_since_write: 0,
            },
        );
        id
    }

    /// A salesperson adds a deal; returns its id. Emails without a person are left out.
    pub fn create_deal(&self, deal: &SandboxDeal) -> u64 {
        let at = stamp(deal.at_ms);
        let custom: BTreeMap<String, Value> = self
            .options()
            .deal_custom_fields
            .iter()
            .map(|(k, _, _)| (k.clone(), Value::Null))
            .collect();
        let currency = deal
            .currency
            .clone()
            .unwrap_or_else(|| self.options().company_currency.clone());
        let participants: Vec<u64> = deal
            .contact_emails
            .iter()
            .filter_map(|e| self.person_by_email(e).map(|p| p.id))
            .fold(Vec::new(), |mut acc, id| {
                if !acc.contains(&id) {
                    acc.push(id);
                }
                acc
            });
        let mut w = self.world();
        let id = w.next_deal_id;
        w.next_deal_id += 1;
        let mut d = StoredDeal {
            id,
            title: format!("Deal {id}"),
            pipeline_id: deal
                .pipeline
                .as_deref()
                .and_then(|p| p.parse().ok())
                .unwrap_or(PIPELINE_ID),
            stage_id: STAGES[0].0,
            status: "open".to_owned(),
            value: deal.amount.clone(),
            currency,
            person_id: participants.first().copied(),
            participants,
            add_time: at,
            update_time: at,
            stage_change_time: None,
            won_time: None,
            lost_time: None,
            close_time: None,
            custom_fields: custom,
            writes: 0,
        };
        if !d.apply_stage(&deal.stage, at) {
            tracing::warn!(stage = %deal.stage, "pipedrive sandbox: unknown stage; the deal starts in stage 1");
        }
        w.deals.insert(id, d);
        id
    }

    /// A salesperson moves a deal (and maybe changes its value) at `at_ms`.
    pub fn move_deal(&self, id: u64, stage: &str, amount: Option<&str>, at_ms: Option<i64>) {
        let at = stamp(at_ms);
        let mut w = self.world();
        let Some(d) = w.deals.get_mut(&id) else {
            tracing::warn!(deal_id = id, "pipedrive sandbox: no such deal to move");
            return;
        };
        if !d.apply_stage(stage, at) {
            tracing::warn!(deal_id = id, %stage, "pipedrive sandbox: unknown stage; deal not moved");
            return;
        }
        if let Some(a) = amount {
            d.value = Some(a.to_owned());
        }
        d.update_time = at;
    }

    pub fn deal(&self, id: u64) -> Option<StoredDeal> {
        self.world().deals.get(&id).cloned()
    }

    pub fn deals(&self) -> Vec<StoredDeal> {
        self.world().deals.values().cloned().collect()
    }

    /// A salesperson deletes a deal.
    pub fn delete_deal(&self, id: u64) {
        self.world().deals.remove(&id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deal() -> StoredDeal {
        let at = now();
        StoredDeal {
            id: 1,
            title: String::new(),
            pipeline_id: 1,
            stage_id: 1,
            status: "open".into(),
            value: None,
            currency: "USD".into(),
            person_id: None,
            participants: vec![],
            add_time: at,
            update_time: at,
            stage_change_time: None,
            won_time: None,
            lost_time: None,
            close_time: None,
            custom_fields: BTreeMap::new(),
            writes: 0,
        }
    }

    #[test]
    fn won_and_lost_are_a_status_and_keep_the_stage() {
        let mut d = deal();
        let at = now();
        assert!(d.apply_stage("3", at));
        assert_eq!((d.stage_id, d.status.as_str()), (3, "open"));
        assert!(d.apply_stage("won", at));
        assert_eq!((d.stage_id, d.status.as_str()), (3, "won"));
        assert_eq!((d.won_time, d.close_time), (Some(at), Some(at)));
        assert!(d.apply_stage("lost", at));
        assert_eq!((d.won_time, d.lost_time), (None, Some(at)));
        assert!(d.apply_stage("4", at));
        assert_eq!(
            (d.stage_id, d.status.as_str(), d.close_time),
            (4, "open", None)
        );
        assert!(!d.apply_stage("99", at));
        assert!(!d.apply_stage("closedwon", at));
    }
}
