//! The Zoho sandbox as a [`CrmSandbox`] for the cross-CRM conformance suite: Leads module,
//! credentials the sandbox accepts, Accounts host and API domain pointing at it.

use async_trait::async_trait;

use super::{SandboxOptions, ZohoSandbox};
use crate::sandbox::{CrmFaults, CrmFieldNames, CrmRecord, CrmSandbox, CrmStats};

const MODULE: &str = "Leads";

/// A running Zoho sandbox seen through the conformance contract.
#[derive(Debug)]
pub struct Conformance {
    pub sandbox: ZohoSandbox,
}

pub async fn start() -> std::io::Result<Box<dyn CrmSandbox>> {
    let sandbox = ZohoSandbox::start(
        "127.0.0.1:0".parse().expect("loopback address"),
        SandboxOptions::default(),
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
}
