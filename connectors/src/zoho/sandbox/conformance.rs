//! The Zoho sandbox as a [`CrmSandbox`] for the cross-CRM conformance suite: Leads module,
//! credentials the sandbox accepts, Accounts host and API domain pointing at it; and as a
//! [`DealSandbox`] for the closed-loop suite (Deals in the default stages, Leads converted to
//! Contacts when put on a deal; no deal webhooks).

use std::collections::BTreeMap;

use async_trait::async_trait;

use super::{SandboxOptions, ZohoSandbox, deals::NewDeal};
use crate::sandbox::{
    CrmFaults, CrmFieldNames, CrmRecord, CrmSandbox, CrmStats, DealSandbox, DealStages, SandboxDeal,
};

const MODULE: &str = "Leads";

/// A running Zoho sandbox seen through the conformance contract.
#[derive(Debug)]
pub struct Conformance {
    pub sandbox: ZohoSandbox,
}

pub async fn start() -> std::io::Result<Box<dyn CrmSandbox>> {
    let sandbox = ZohoSandbox::start(
        "127.0.0.1:0".parse().expect("loopback address"),
        // Multiple currencies, so a deal's own currency reaches the closed loop.
        SandboxOptions {
            multi_currency: true,
            ..SandboxOptions::default()
        },
    )
    .await?;
    Ok(Box::new(Conformance { sandbox }))
}

#[async_trait]
impl CrmSandbox for Conformance {
    fn kind(&self) -> &'static str {
        "zoho"
    }

    fn connector_toml(&self) -> String {
        let o = self.sandbox.options();
        let base = self.sandbox.base_url();
        format!(
            "kind = \"zoho\"\nmodule = \"{MODULE}\"\nclient_id = \"{}\"\nclient_secret = \"{}\"\nrefresh_token = \"{}\"\naccounts_url = \"{base}\"\nbase_url = \"{base}\"\ntimeout = \"2s\"\n",
            o.client_id, o.client_secret, o.refresh_token
        )
    }

    fn fields(&self) -> CrmFieldNames {
        CrmFieldNames {
            email: "Email",
            first_name: "First_Name",
            last_name: "Last_Name",
            phone: "Phone",
            company: "Company",
        }
    }

    fn records(&self) -> Vec<CrmRecord> {
        self.sandbox
            .records(MODULE)
            .into_iter()
            .map(|r| CrmRecord {
                id: r.id,
                fields: r.fields,
                writes: r.writes,
            })
            .collect()
    }

    fn edit(&self, email: &str, field: &str, value: &str) {
        self.sandbox.state().edit(MODULE, email, field, value);
    }

    fn set_faults(&self, faults: CrmFaults) {
        self.sandbox.set_faults(faults);
    }

    fn expire_tokens(&self) {
        self.sandbox.expire_tokens();
    }

    fn stats(&self) -> CrmStats {
        let s = self.sandbox.stats();
        CrmStats {
            api_calls: s.api_calls,
            rate_limited: s.rate_limited,
            token_refreshes: s.token_refreshes,
        }
    }

    fn batch_limit(&self) -> usize {
        crate::zoho::MAX_BATCH
    }

    fn deals(&self) -> Option<&dyn DealSandbox> {
        Some(self)
    }
}

#[async_trait]
impl DealSandbox for Conformance {
    fn create_deal(&self, deal: SandboxDeal) -> String {
        self.sandbox.state().create_deal(NewDeal {
            stage: &deal.stage,
            amount: deal.amount.as_deref(),
            currency: deal.currency.as_deref(),
            contact_emails: &deal.contact_emails,
            at_ms: deal.at_ms,
        })
    }

    fn move_deal(&self, deal_id: &str, stage: &str, amount: Option<&str>, at_ms: Option<i64>) {
        self.sandbox
            .state()
            .move_deal(deal_id, stage, amount, at_ms);
    }

    fn stages(&self) -> DealStages {
        DealStages {
            qualified: "Qualification".to_owned(),
            opportunity: "Proposal/Price Quote".to_owned(),
            won: "Closed Won".to_owned(),
            lost: "Closed Lost".to_owned(),
        }
    }

    fn deal_fields(&self, deal_id: &str) -> BTreeMap<String, String> {
        self.sandbox
            .state()
            .record("Deals", deal_id)
            .map(|r| r.fields)
            .unwrap_or_default()
    }

    fn outcome_toml(&self) -> String {
        "outcome_poll_interval = \"200ms\"\nmulti_currency = true\n".to_owned()
    }

    /// Zoho's notification API (watch channels) is out of scope: the poll is the only way deals
    /// arrive.
    async fn notify(&self, _hook_url: &str, _deal_id: &str) -> Option<u16> {
        None
    }
}
