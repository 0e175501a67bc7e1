//! The LinkedIn sandbox behind the source suite's [`SourceSandbox`] trait.

use async_trait::async_trait;

use crate::sandbox::{CrmFaults, CrmStats, SourceSandbox};

use super::{ACCOUNT, LinkedinSandbox, TOKEN};

/// A started LinkedIn sandbox as a [`SourceSandbox`].
pub struct LinkedinSource {
    sandbox: LinkedinSandbox,
}

impl LinkedinSource {
    pub fn sandbox(&self) -> &LinkedinSandbox {
        &self.sandbox
    }
}

pub async fn start() -> std::io::Result<Box<dyn SourceSandbox>> {
    let sandbox = LinkedinSandbox::start(([127, 0, 0, 1], 0).into()).await?;
    Ok(Box::new(LinkedinSource { sandbox }))
}

#[async_trait]
impl SourceSandbox for LinkedinSource {
    fn kind(&self) -> &'static str {
        "linkedin_lead_gen"
    }

    fn connector_toml(&self) -> String {
        format!(
            "kind = \"linkedin_lead_gen\"\naccess_token = \"{TOKEN}\"\nad_accounts = [\"{ACCOUNT}\"]\nbase_url = \"{}\"\npoll_interval = \"200ms\"\nstart_from = \"1d\"\noverlap = \"5m\"\nrate_limit = \"600/1m\"\ntimeout = \"5s\"\n",
            self.sandbox.base_url()
        )
    }

    fn add_lead(&self, email: &str, first_name: &str, at_ms: Option<i64>) -> String {
        self.sandbox.submit(email, first_name, at_ms, false)
    }

    fn set_faults(&self, faults: CrmFaults) {
        self.sandbox.set_faults(faults);
    }

    fn stats(&self) -> CrmStats {
        self.sandbox.stats()
    }
}
