//! Which tags a write-back sets on an audience member. Each milestone has its tag (`sql`,
//! `opportunity`, `deal-won`, `deal-lost` by default); a won deal also makes the person a
//! customer. A retraction switches the milestone's tag off again, and a won deal that is
//! retracted (won, then lost) also drops the customer tag and takes the lost tag, so the member's
//! tags say what the CRM says now.

use serde::Deserialize;

use crate::writeback::{Milestone, WritebackAction};

/// Mailchimp's limit on a tag name.
pub const MAX_TAG_LEN: usize = 100;

/// `writeback_tags = { … }`: the tag per milestone; an empty string turns that milestone off.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WritebackTags {
    #[serde(default = "default_qualified")]
    pub qualified: String,
    #[serde(default = "default_opportunity")]
    pub opportunity: String,
    #[serde(default = "default_won")]
    pub won: String,
    #[serde(default = "default_lost")]
    pub lost: String,
}

fn default_qualified() -> String {
    "sql".to_owned()
}
fn default_opportunity() -> String {
    "opportunity".to_owned()
}
fn default_won() -> String {
    "deal-won".to_owned()
}
fn default_lost() -> String {
    "deal-lost".to_owned()
}

impl Default for WritebackTags {
    fn default() -> Self {
        WritebackTags {
            qualified: default_qualified(),
            opportunity: default_opportunity(),
            won: default_won(),
            lost: default_lost(),
        }
    }
}

impl WritebackTags {
    /// The raw configured text for `m`.
    pub fn raw(&self, m: Milestone) -> &str {
        match m {
            Milestone::Qualified => &self.qualified,
            Milestone::Opportunity => &self.opportunity,
            Milestone::Won => &self.won,
            Milestone::Lost => &self.lost,
        }
    }

    /// The tag for `m`, `None` when the milestone is off.
    pub fn get(&self, m: Milestone) -> Option<&str> {
        Some(self.raw(m).trim()).filter(|t| !t.is_empty())
    }
}

/// One entry of `POST …/tags`: `{"name": …, "status": "active" | "inactive"}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagChange {
    pub name: String,
    pub active: bool,
}

impl TagChange {
    fn new(name: &str, active: bool) -> TagChange {
        TagChange {
            name: name.to_owned(),
            active,
        }
    }
}

/// The tag changes for `action` on `milestone`; empty when there is nothing to express (the
/// milestone is off, or a restatement: tags carry no value).
pub fn plan(
    tags: &WritebackTags,
    customer: Option<&str>,
    action: WritebackAction,
    milestone: Milestone,
) -> Vec<TagChange> {
    let Some(tag) = tags.get(milestone) else {
        return Vec::new();
    };
    let customer = customer.map(str::trim).filter(|c| !c.is_empty());
    let won = milestone == Milestone::Won;
    let mut out = Vec::new();
    match action {
        WritebackAction::Send => {
            out.push(TagChange::new(tag, true));
            if won && let Some(c) = customer {
                out.push(TagChange::new(c, true));
            }
        }
        WritebackAction::Retract => {
            out.push(TagChange::new(tag, false));
            if won {
                if let Some(c) = customer {
                    out.push(TagChange::new(c, false));
                }
                if let Some(lost) = tags.get(Milestone::Lost) {
                    out.push(TagChange::new(lost, true));
                }
            }
        }
        WritebackAction::Restate => {}
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(changes: &[TagChange]) -> Vec<(String, bool)> {
        changes.iter().map(|c| (c.name.clone(), c.active)).collect()
    }

    #[test]
    fn sends_set_the_milestone_tag_and_a_win_makes_a_customer() {
        let t = WritebackTags::default();
        let p = plan(
            &t,
            Some("customer"),
            WritebackAction::Send,
            Milestone::Qualified,
        );
        assert_eq!(names(&p), [("sql".to_owned(), true)]);
        let p = plan(&t, Some("customer"), WritebackAction::Send, Milestone::Won);
        assert_eq!(
            names(&p),
            [("deal-won".to_owned(), true), ("customer".to_owned(), true)]
        );
        let p = plan(&t, None, WritebackAction::Send, Milestone::Won);
        assert_eq!(names(&p), [("deal-won".to_owned(), true)]);
    }

    #[test]
    fn a_retracted_win_drops_won_and_customer_and_takes_lost() {
        let t = WritebackTags::default();
        let p = plan(
            &t,
            Some("customer"),
            WritebackAction::Retract,
            Milestone::Won,
        );
        assert_eq!(
            names(&p),
            [
                ("deal-won".to_owned(), false),
                ("customer".to_owned(), false),
                ("deal-lost".to_owned(), true)
            ]
        );
        let p = plan(
            &t,
            Some("customer"),
            WritebackAction::Retract,
            Milestone::Opportunity,
        );
        assert_eq!(names(&p), [("opportunity".to_owned(), false)]);
        assert!(
            plan(
                &t,
                Some("customer"),
                WritebackAction::Restate,
                Milestone::Won
            )
            .is_empty()
        );
        let off = WritebackTags {
            lost: String::new(),
            ..Default::default()
        };
        assert!(plan(&off, None, WritebackAction::Send, Milestone::Lost).is_empty());
        let p = plan(&off, Some(" "), WritebackAction::Retract, Milestone::Won);
        assert_eq!(names(&p), [("deal-won".to_owned(), false)]);
    }
}
