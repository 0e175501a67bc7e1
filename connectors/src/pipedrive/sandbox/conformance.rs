//! The Pipedrive sandbox as a [`CrmSandbox`] for the cross-CRM conformance suite. The connector
//! it describes uses OAuth (so token expiry and refreshes are exercised), with `api_domain`
//! pointing back here.

use async_trait::async_trait;

use crate::sandbox::{CrmFaults, CrmFieldNames, CrmRecord, CrmSandbox, CrmStats};

use super::{COMPANY_FIELD_KEY, PipedriveSandbox, SandboxOptions, persons::flat_fields};

struct Conformance {
    sandbox: PipedriveSandbox,
}

pub async fn start() -> std::io::Result<Box<dyn CrmSandbox>> {
    let sandbox = PipedriveSandbox::start(
        "127.0.0.1:0".parse().map_err(std::io::Error::other)?,
        SandboxOptions::default(),
    )
    .await?;
    Ok(Box::new(Conformance { sandbox }))
}

#[async_trait]
impl CrmSandbox for Conformance {
    fn kind(&self) -> &'static str {
        "pipedrive"
    }

    fn connector_toml(&self) -> String {
        let o = self.sandbox.state().options();
        format!(
            "kind = \"pipedrive\"\nclient_id = \"{}\"\nclient_secret = \"{}\"\nrefresh_token = \"{}\"\nbase_url = \"{}\"\ntoken_url = \"{}\"\ntimeout = \"2s\"\n",
            o.client_id,
            o.client_secret,
            o.refresh_token,
            self.sandbox.base_url(),
            self.sandbox.token_url()
        )
    }

    fn fields(&self) -> CrmFieldNames {
        CrmFieldNames {
            email: "email",
            first_name: "first_name",
            last_name: "last_name",
            phone: "phone",
            company: COMPANY_FIELD_KEY,
        }
    }

    fn records(&self) -> Vec<CrmRecord> {
        self.sandbox
            .state()
            .persons()
            .iter()
            .map(|p| CrmRecord {
                id: p.id.to_string(),
                fields: flat_fields(p),
                writes: p.writes,
            })
            .collect()
    }

    fn edit(&self, email: &str, field: &str, value: &str) {
        self.sandbox.state().edit(email, field, value);
    }

    fn set_faults(&self, faults: CrmFaults) {
        self.sandbox.state().set_faults(faults);
    }

    fn expire_tokens(&self) {
        self.sandbox.state().expire_tokens();
    }

    fn stats(&self) -> CrmStats {
        let s = self.sandbox.state().stats();
        CrmStats {
            api_calls: s.api_calls,
            rate_limited: s.rate_limited,
            token_refreshes: s.token_refreshes,
        }
    }

    /// Pipedrive writes one person per request (no batch endpoint).
    fn batch_limit(&self) -> usize {
        1
    }
}
