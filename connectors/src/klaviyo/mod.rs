//! Klaviyo as a polled lead source (being written; issue 4).

use serde::Deserialize;

/// `[connectors.NAME]` with `kind = "klaviyo"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KlaviyoConfig {}

impl crate::Connector for KlaviyoConfig {
    fn is_source(&self) -> bool {
        true
    }
}
