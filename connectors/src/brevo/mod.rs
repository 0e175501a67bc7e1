//! Brevo as a polled lead source (being written; issue 4).

use serde::Deserialize;

/// `[connectors.NAME]` with `kind = "brevo"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BrevoConfig {}

impl crate::Connector for BrevoConfig {
    fn is_source(&self) -> bool {
        true
    }
}
