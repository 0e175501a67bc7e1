//! Salesforce CRM (being written; see issue 3).

use serde::Deserialize;

/// `[connectors.NAME]` with `kind = "salesforce"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SalesforceConfig {}

impl crate::Connector for SalesforceConfig {
    fn is_crm(&self) -> bool {
        true
    }
}
