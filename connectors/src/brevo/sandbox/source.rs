//! The Brevo sandbox as a [`SourceSandbox`] for the polled-source suite.

use async_trait::async_trait;
use serde_json::{Map, Value};

use crate::sandbox::{CrmFaults, CrmStats, SourceSandbox};

use super::{BrevoSandbox, SandboxOptions};

/// A started Brevo sandbox behind the suite's trait.
pub struct BrevoSource {
    sandbox: BrevoSandbox,
}

impl BrevoSource {
    pub fn sandbox(&self) -> &BrevoSandbox {
        &self.sandbox
    }
}

pub async fn start() -> std::io::Result<Box<dyn SourceSandbox>> {
    let sandbox =
        BrevoSandbox::start(([127, 0, 0, 1], 0).into(), SandboxOptions::default()).await?;
    Ok(Box::new(BrevoSource { sandbox }))
}

#[async_trait]
impl SourceSandbox for BrevoSource {
    fn kind(&self) -> &'static str {
        "brevo"
    }

    fn connector_toml(&self) -> String {
        format!(
            "kind = \"brevo\"\napi_key = \"{}\"\nbase_url = \"{}\"\npoll_interval = \"200ms\"\ntimeout = \"2s\"\n",
            self.sandbox.state().options().api_key,
            self.sandbox.base_url(),
        )
    }

    fn add_lead(&self, email: &str, first_name: &str, at_ms: Option<i64>) -> String {
        let mut attributes = Map::new();
        attributes.insert("FIRSTNAME".to_owned(), Value::from(first_name));
        self.sandbox
            .state()
            .add_contact(email, attributes, Vec::new(), at_ms)
            .to_string()
    }

    fn set_faults(&self, faults: CrmFaults) {
        self.sandbox.state().set_faults(faults);
    }

    fn stats(&self) -> CrmStats {
        let s = self.sandbox.stats();
        CrmStats {
            api_calls: s.requests,
            rate_limited: s.rate_limited,
            token_refreshes: 0,
        }
    }
}
