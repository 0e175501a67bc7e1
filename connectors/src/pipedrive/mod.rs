//! Pipedrive CRM (being written; see issue 3).

use serde::Deserialize;

/// `[connectors.NAME]` with `kind = "pipedrive"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipedriveConfig {}

impl crate::Connector for PipedriveConfig {
    fn is_crm(&self) -> bool {
        true
    }
}
