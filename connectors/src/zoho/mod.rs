//! Zoho CRM (being written; see issue 3).

use serde::Deserialize;

/// `[connectors.NAME]` with `kind = "zoho"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ZohoConfig {}

impl crate::Connector for ZohoConfig {
    fn is_crm(&self) -> bool {
        true
    }
}
