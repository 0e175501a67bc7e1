//! LinkedinLeadGen as a polled lead source (being written; issue 4).

use serde::Deserialize;

/// `[connectors.NAME]` with `kind = "linkedin_lead_gen"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinkedinLeadGenConfig {}

impl crate::Connector for LinkedinLeadGenConfig {
    fn is_source(&self) -> bool {
        true
    }
}
