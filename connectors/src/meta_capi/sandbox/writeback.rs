//! The Conversions API sandbox behind the closed-loop suite's [`WritebackSandbox`] trait.

use crate::sandbox::{CrmFaults, CrmStats, ReceivedWriteback, WritebackSandbox};

use super::MetaCapiSandbox;

/// A started Conversions API sandbox as a [`WritebackSandbox`].
pub struct MetaCapiWriteback {
    sandbox: MetaCapiSandbox,
}

impl MetaCapiWriteback {
    /// The concrete sandbox, for the raw events and requests.
    pub fn sandbox(&self) -> &MetaCapiSandbox {
        &self.sandbox
    }
}

pub async fn start() -> std::io::Result<Box<dyn WritebackSandbox>> {
    let sandbox = MetaCapiSandbox::start(([127, 0, 0, 1], 0).into()).await?;
    Ok(Box::new(MetaCapiWriteback { sandbox }))
}

impl WritebackSandbox for MetaCapiWriteback {
    fn kind(&self) -> &'static str {
        "meta_capi"
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
        self.sandbox.stats()
    }
}
