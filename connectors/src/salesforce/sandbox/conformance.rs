//! The Salesforce sandbox as a [`CrmSandbox`] for the cross-CRM conformance suite: a Lead org
//! with the `Tandem_Email__c` External ID field, and a connector table that upserts by it.

use async_trait::async_trait;

use crate::sandbox::{CrmFaults, CrmFieldNames, CrmRecord, CrmSandbox, CrmStats};

use super::{SalesforceSandbox, SandboxOptions};

struct Conformance {
    sandbox: SalesforceSandbox,
    options: SandboxOptions,
}

pub async fn start() -> std::io::Result<Box<dyn CrmSandbox>> {
    let options = SandboxOptions::default();
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
             object = \"Lead\"\n\
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

    fn records(&self) -> Vec<CrmRecord> {
        self.sandbox
            .records()
            .into_iter()
            .map(|r| CrmRecord {
                id: r.id,
                fields: r.fields,
                writes: r.writes,
            })
            .collect()
    }

    fn edit(&self, email: &str, field: &str, value: &str) {
        let found = self.sandbox.records().into_iter().find(|r| {
            r.fields
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
}
