//! What a salesperson does in HubSpot's UI, for tests and the demo: create a deal with its
//! contacts, move it through the pipeline (optionally stamped in the past, a write HubSpot's
//! search shows late), and look at a deal's properties. Not API writes: they don't count as
//! requests and aren't rate limited.

use super::{SandboxState, deal_store::Deal};

/// A deal as the UI creates it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NewDeal {
    pub name: String,
    /// `None`: the default pipeline.
    pub pipeline: Option<String>,
    pub stage: String,
    pub amount: Option<String>,
    /// `deal_currency_code`; `None`: the account currency.
    pub currency: Option<String>,
    /// Contacts to associate, by email (unknown emails are skipped).
    pub contact_emails: Vec<String>,
    /// Created and last modified at (unix ms); `None` = now.
    pub at_ms: Option<i64>,
}

fn now_ms() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}

impl SandboxState {
    /// Creates a deal; returns its id.
    pub fn create_deal(&self, deal: NewDeal) -> String {
        let mut w = self.world();
        let contacts = deal
            .contact_emails
            .iter()
            .filter_map(|e| w.by_email.get(&e.trim().to_lowercase()).copied())
            .collect();
        let at = deal.at_ms.unwrap_or_else(now_ms);
        let name = if deal.name.is_empty() {
            format!("Deal {}", w.deals.next_id)
        } else {
            deal.name
        };
        w.deals
            .create(
                &name,
                deal.pipeline.as_deref().unwrap_or("default"),
                &deal.stage,
                deal.amount.as_deref(),
                deal.currency.as_deref(),
                contacts,
                at,
            )
            .to_string()
    }

    /// Moves a deal to `stage` (won/lost stages set `closedate`), optionally changing its amount,
    /// stamped `at_ms` (`None` = now). False when there is no such deal.
    pub fn move_deal(
        &self,
        deal_id: &str,
        stage: &str,
        amount: Option<&str>,
        at_ms: Option<i64>,
    ) -> bool {
        let mut w = self.world();
        let Some(d) = deal_id
            .parse::<u64>()
            .ok()
            .and_then(|n| w.deals.deals.get_mut(&n))
        else {
            return false;
        };
        if let Some(a) = amount {
            d.properties.insert("amount".into(), a.into());
        }
        d.set_stage(stage, at_ms.unwrap_or_else(now_ms));
        true
    }

    /// Associates one more contact (by email) with a deal, as the UI does; stamps the deal now.
    pub fn associate(&self, deal_id: &str, email: &str) -> bool {
        let mut w = self.world();
        let Some(&contact) = w.by_email.get(&email.trim().to_lowercase()) else {
            return false;
        };
        let Some(d) = deal_id
            .parse::<u64>()
            .ok()
            .and_then(|n| w.deals.deals.get_mut(&n))
        else {
            return false;
        };
        if !d.contacts.contains(&contact) {
            d.contacts.push(contact);
        }
        d.touch(now_ms());
        true
    }

    pub fn deal(&self, deal_id: &str) -> Option<Deal> {
        let w = self.world();
        w.deals.deals.get(&deal_id.parse::<u64>().ok()?).cloned()
    }

    pub fn deals(&self) -> Vec<Deal> {
        self.world().deals.deals.values().cloned().collect()
    }
}
