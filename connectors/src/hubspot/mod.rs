//! HubSpot CRM. (being written)
use secrecy::SecretString;
use serde::Deserialize;

use crate::{BuildError, sink::*};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HubspotConfig {
    pub token: SecretString,
}

pub struct HubspotClient;
impl HubspotClient {
    pub fn new(_c: &HubspotConfig) -> Result<Self, BuildError> {
        Ok(HubspotClient)
    }
}
#[async_trait::async_trait]
impl LeadSink for HubspotClient {
    fn max_batch(&self) -> usize {
        100
    }
    fn default_rate_limit(&self) -> RateLimit {
        RateLimit {
            requests: 190,
            per: std::time::Duration::from_secs(10),
        }
    }
    async fn upsert_people(&self, _batch: &[crate::SinkRecord]) -> Result<BatchOutcome, CallError> {
        unimplemented!()
    }
}
