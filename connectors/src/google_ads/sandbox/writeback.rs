//! The Google sandbox as a [`WritebackSandbox`] for the closed-loop suite: every milestone mapped
//! to one of the sandbox account's conversion actions, credentials the sandbox accepts. [`start`]
//! configures the Data Manager API (tandem's default: sends and restatements, no retraction);
//! [`start_legacy`] the Google Ads API (sends, restatements and retractions).

use super::{GoogleAdsSandbox, SandboxOptions};
use crate::sandbox::{CrmFaults, CrmStats, ReceivedWriteback, WritebackSandbox};

/// A running Google sandbox seen through the closed-loop contract.
#[derive(Debug)]
pub struct Writeback {
    pub sandbox: GoogleAdsSandbox,
    /// `api = "…"` of the connector it configures.
    pub api: &'static str,
}

/// The sandbox, configured for the Data Manager API.
pub async fn start() -> std::io::Result<Box<dyn WritebackSandbox>> {
    let sandbox = GoogleAdsSandbox::start(SandboxOptions::default()).await?;
    Ok(Box::new(Writeback {
        sandbox,
        api: "data_manager",
    }))
}

/// The sandbox, configured for the Google Ads API (a grandfathered developer token).
pub async fn start_legacy() -> std::io::Result<Box<dyn WritebackSandbox>> {
    let sandbox = GoogleAdsSandbox::start(SandboxOptions::default()).await?;
    Ok(Box::new(Writeback {
        sandbox,
        api: "google_ads",
    }))
}

impl WritebackSandbox for Writeback {
    fn kind(&self) -> &'static str {
        "google_ads"
    }

    fn connector_toml(&self) -> String {
        self.sandbox.toml_for(self.api)
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
            token_refreshes: s.token_refreshes,
        }
    }
}
