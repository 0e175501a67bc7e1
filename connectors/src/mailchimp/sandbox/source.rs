//! The Mailchimp sandbox behind the source suite's [`SourceSandbox`] trait.

use async_trait::async_trait;

use crate::sandbox::{CrmFaults, CrmStats, SourceSandbox};

use super::{API_KEY, LIST_ID, MailchimpSandbox};

/// A started Mailchimp sandbox as a [`SourceSandbox`].
pub struct MailchimpSource {
    sandbox: MailchimpSandbox,
}

impl MailchimpSource {
    pub fn sandbox(&self) -> &MailchimpSandbox {
        &self.sandbox
    }
}

pub async fn start() -> std::io::Result<Box<dyn SourceSandbox>> {
    let sandbox = MailchimpSandbox::start(([127, 0, 0, 1], 0).into()).await?;
    Ok(Box::new(MailchimpSource { sandbox }))
}

#[async_trait]
impl SourceSandbox for MailchimpSource {
    fn kind(&self) -> &'static str {
        "mailchimp"
    }

    fn connector_toml(&self) -> String {
        format!(
            "kind = \"mailchimp\"\napi_key = \"{API_KEY}\"\nlist_id = \"{LIST_ID}\"\nbase_url = \"{}\"\npoll_interval = \"200ms\"\nstart_from = \"1d\"\noverlap = \"5m\"\ntimeout = \"5s\"\n",
            self.sandbox.base_url()
        )
    }

    fn add_lead(&self, email: &str, first_name: &str, at_ms: Option<i64>) -> String {
        self.sandbox
            .subscribe(email, first_name, at_ms, "subscribed")
    }

    fn set_faults(&self, faults: CrmFaults) {
        self.sandbox.set_faults(faults);
    }

    fn stats(&self) -> CrmStats {
        self.sandbox.stats()
    }
}
