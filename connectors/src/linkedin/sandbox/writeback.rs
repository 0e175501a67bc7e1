//! The LinkedIn Conversions API sandbox as a [`WritebackSandbox`] for the closed-loop suite:
//! every milestone mapped to one of the sandbox account's Conversions API rules.

use super::{LinkedinCapiSandbox, SandboxOptions};
use crate::sandbox::{CrmFaults, CrmStats, ReceivedWriteback, WritebackSandbox};

/// A running LinkedIn sandbox seen through the closed-loop contract.
#[derive(Debug)]
pub struct Writeback {
    pub sandbox: LinkedinCapiSandbox,
}

pub async fn start() -> std::io::Result<Box<dyn WritebackSandbox>> {
    let sandbox = LinkedinCapiSandbox::start(SandboxOptions::default()).await?;
    Ok(Box::new(Writeback { sandbox }))
}

impl WritebackSandbox for Writeback {
    fn kind(&self) -> &'static str {
        "linkedin"
    }

    fn connector_toml(&self) -> String {
        self.sandbox.connector_toml()
    }

    fn received(&self) -> Vec<ReceivedWriteback> {
        self.sandbox.received()
    }

    fn set_faults(&self, faults: CrmFaults) {
        self.sandbox.set_faults(faults);
    }

    fn stats(&self) -> CrmStats {
        let s = self.sandbox.stats();
        CrmStats {
            api_calls: s.api_calls,
            rate_limited: s.rate_limited,
            token_refreshes: 0,
        }
    }
}
