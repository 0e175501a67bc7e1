//! The `meta_lead_ads` preset (being written; issue 4).

use crate::{
    BuildError, ConnectorContext, RateLimit,
    sink::CallError,
    source::{
        FetchRequest, LeadFetcher, PresetError, PresetOutput, PresetRequest, SourceLead,
        WebhookPreset,
    },
    webhook::WebhookConfig,
};

pub struct MetaLeadAds;

impl MetaLeadAds {
    pub fn new(_config: &WebhookConfig) -> Self {
        MetaLeadAds
    }
}

impl WebhookPreset for MetaLeadAds {
    fn verify(&self, _req: &PresetRequest<'_>) -> Result<(), PresetError> {
        Err(PresetError::Unauthorized(
            "the meta_lead_ads preset is not available yet".into(),
        ))
    }

    fn parse(&self, _req: &PresetRequest<'_>) -> Result<PresetOutput, PresetError> {
        Ok(PresetOutput::Nothing)
    }
}

pub struct GraphFetcher;

impl GraphFetcher {
    pub fn new(_config: &WebhookConfig, _ctx: ConnectorContext) -> Result<Self, BuildError> {
        Ok(GraphFetcher)
    }
}

#[async_trait::async_trait]
impl LeadFetcher for GraphFetcher {
    async fn fetch(&self, _request: &FetchRequest) -> Result<SourceLead, CallError> {
        Err(CallError::Permanent {
            message: "the meta_lead_ads fetcher is not available yet".into(),
        })
    }

    fn rate_limit(&self) -> RateLimit {
        RateLimit {
            requests: 200,
            per: std::time::Duration::from_secs(3600),
        }
    }
}
