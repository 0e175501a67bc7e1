//! The Klaviyo sandbox as a [`SourceSandbox`] for the polled-source suite.

use async_trait::async_trait;
use serde_json::{Map, Value};

use crate::sandbox::{CrmFaults, CrmStats, SourceSandbox};

use super::{KlaviyoSandbox, SandboxOptions};

pub struct KlaviyoSource {
    sandbox: KlaviyoSandbox,
}

impl KlaviyoSource {
    pub fn sandbox(&self) -> &KlaviyoSandbox {
        &self.sandbox
    }
}

pub async fn start() -> std::io::Result<Box<dyn SourceSandbox>> {
    let sandbox =
        KlaviyoSandbox::start(([127, 0, 0, 1], 0).into(), SandboxOptions::default()).await?;
    Ok(Box::new(KlaviyoSource { sandbox }))
}

#[async_trait]
impl SourceSandbox for KlaviyoSource {
    fn kind(&self) -> &'static str {
        "klaviyo"
    }

    fn connector_toml(&self) -> String {
        format!(
            "kind = \"klaviyo\"\napi_key = \"{}\"\nbase_url = \"{}\"\npoll_interval = \"200ms\"\ntimeout = \"2s\"\n",
            self.sandbox.state().options().api_key,
            self.sandbox.base_url(),
        )
    }

    fn add_lead(&self, email: &str, first_name: &str, at_ms: Option<i64>) -> String {
        let mut attributes = Map::new();
        attributes.insert("email".to_owned(), Value::from(email));
        attributes.insert("first_name".to_owned(), Value::from(first_name));
        let list = self.sandbox.state().options().list_id.clone();
        self.sandbox
            .state()
            .add_profile(attributes, Some(&list), at_ms)
    }

    fn set_faults(&self, faults: CrmFaults) {
        self.sandbox.state().set_faults(faults);
    }

    fn stats(&self) -> CrmStats {
        let s = self.sandbox.stats();
        CrmStats {
            api_calls: s.requests,
            rate_limited: s.rate_limited,
            token_refreshes: 0,
        }
    }
}
