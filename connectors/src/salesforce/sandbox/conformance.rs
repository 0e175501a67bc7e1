//! The Salesforce sandbox as a [`CrmSandbox`] for the cross-CRM conformance suite: a Lead org
//! with the `Tandem_Email__c` External ID field, and a connector table that upserts by it; and
//! as a [`DealSandbox`] for the closed-loop suite (Opportunities in the default sales process,
//! Leads converted to Contacts when put on a deal; no deal webhooks).

use std::collections::BTreeMap;

use async_trait::async_trait;

use crate::sandbox::{
    CrmFaults, CrmFieldNames, CrmRecord, CrmSandbox, CrmStats, DealSandbox, DealStages, SandboxDeal,
};

use super::{NewDeal, SalesforceSandbox, SandboxOptions};

/// The object the conformance connector writes people to.
const PEOPLE: &str = "Lead";

struct Conformance {
    sandbox: SalesforceSandbox,
    options: SandboxOptions,
}

pub async fn start() -> std::io::Result<Box<dyn CrmSandbox>> {
    // Multiple currencies, so a deal's own currency reaches the closed loop.
    let options = SandboxOptions {
        multi_currency: true,
        ..SandboxOptions::default()
    };
    let sandbox =
        SalesforceSandbox::start("127.0.0.1:0".parse().expect("loopback"), options.clone()).await?;
    Ok(Box::new(Conformance { sandbox, options }))
}

#[async_trait]
impl CrmSandbox for Conformance {
    fn kind(&self) -> &'static str {
        "salesforce"
    }

    fn connector_toml(&self) -> String {
        let o = &self.options;
        format!(
            "kind = \"salesforce\"\n\
             login_url = \"{}\"\n\
             client_id = \"{}\"\n\
             client_secret = \"{}\"\n\
             refresh_token = \"{}\"\n\
             object = \"{PEOPLE}\"\n\
             match = \"external_id\"\n\
             external_id_field = \"{}\"\n\
             timeout = \"2s\"\n",
            self.sandbox.base_url(),
            o.client_id,
            o.client_secret,
            o.refresh_token,
            o.external_id_field.as_deref().unwrap_or("Tandem_Email__c"),
        )
    }

    fn fields(&self) -> CrmFieldNames {
        CrmFieldNames {
            email: "Email",
            first_name: "FirstName",
            last_name: "LastName",
            phone: "Phone",
            company: "Company",
        }
    }

    /// The Leads (the people tandem writes here); Contacts, Opportunities and their roles are the
    /// deal side's.
    fn records(&self) -> Vec<CrmRecord> {
        self.sandbox
            .records()
            .into_iter()
            .filter(|r| r.object == PEOPLE)
            .map(|r| CrmRecord {
                id: r.id,
                fields: r.fields,
                writes: r.writes,
            })
            .collect()
    }

    fn edit(&self, email: &str, field: &str, value: &str) {
        let found = self.sandbox.records().into_iter().find(|r| {
            r.object == PEOPLE
                && r.fields
                    .get("Email")
                    .is_some_and(|e| e.eq_ignore_ascii_case(email))
        });
        if let Some(r) = found {
            self.sandbox.state().edit(&r.id, field, value);
        }
    }

    fn set_faults(&self, faults: CrmFaults) {
        self.sandbox.state().set_faults(faults);
    }

    fn expire_tokens(&self) {
        self.sandbox.state().expire_tokens();
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
        200
    }

    fn deals(&self) -> Option<&dyn DealSandbox> {
        Some(self)
    }
}

#[async_trait]
impl DealSandbox for Conformance {
    fn create_deal(&self, deal: SandboxDeal) -> String {
        self.sandbox.state().create_opportunity(NewDeal {
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
            .move_opportunity(deal_id, stage, amount, at_ms);
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
            .record(deal_id)
            .filter(|r| r.object == "Opportunity")
            .map(|r| r.fields)
            .unwrap_or_default()
    }

    fn outcome_toml(&self) -> String {
        "outcome_poll_interval = \"200ms\"\nmulti_currency = true\n".to_owned()
    }

    /// Salesforce's deal-change notifications (Outbound Messages, Change Data Capture) are out
    /// of scope: the poll is the only way deals arrive.
    async fn notify(&self, _hook_url: &str, _deal_id: &str) -> Option<u16> {
        None
    }
}
