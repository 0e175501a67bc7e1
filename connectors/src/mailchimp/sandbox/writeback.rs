//! The Mailchimp sandbox behind the closed-loop suite's [`WritebackSandbox`] trait: `received()`
//! lists tag changes (key `"{subscriber_hash}:{tag}"`, name = the tag, adjustment
//! `Some("inactive")` for a removed tag).

use crate::sandbox::{CrmFaults, CrmStats, ReceivedWriteback, WritebackSandbox};

use super::MailchimpSandbox;

/// A started Mailchimp sandbox as a [`WritebackSandbox`].
pub struct MailchimpWritebackSandbox {
    sandbox: MailchimpSandbox,
}

impl MailchimpWritebackSandbox {
    /// The concrete sandbox, for members, tags and the raw write calls.
    pub fn sandbox(&self) -> &MailchimpSandbox {
        &self.sandbox
    }
}

pub async fn start() -> std::io::Result<Box<dyn WritebackSandbox>> {
    let sandbox = MailchimpSandbox::start(([127, 0, 0, 1], 0).into()).await?;
    Ok(Box::new(MailchimpWritebackSandbox { sandbox }))
}

impl WritebackSandbox for MailchimpWritebackSandbox {
    fn kind(&self) -> &'static str {
        "mailchimp"
    }

    fn connector_toml(&self) -> String {
        self.sandbox.writeback_toml()
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
