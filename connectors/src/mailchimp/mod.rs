//! Mailchimp as a polled lead source (being written; issue 4).

use serde::Deserialize;

/// `[connectors.NAME]` with `kind = "mailchimp"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MailchimpConfig {}

impl crate::Connector for MailchimpConfig {
    fn is_source(&self) -> bool {
        true
    }
}
