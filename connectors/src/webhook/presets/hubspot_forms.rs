//! The `hubspot_forms` preset (being written; issue 4).

use crate::{
    source::{PresetError, PresetOutput, PresetRequest, WebhookPreset},
    webhook::WebhookConfig,
};

pub struct HubspotForms;

impl HubspotForms {
    pub fn new(_config: &WebhookConfig) -> Self {
        HubspotForms
    }
}

impl WebhookPreset for HubspotForms {
    fn verify(&self, _req: &PresetRequest<'_>) -> Result<(), PresetError> {
        Err(PresetError::Unauthorized(
            "the hubspot_forms preset is not available yet".into(),
        ))
    }

    fn parse(&self, _req: &PresetRequest<'_>) -> Result<PresetOutput, PresetError> {
        Ok(PresetOutput::Nothing)
    }
}
