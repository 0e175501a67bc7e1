//! The `webflow` preset (being written; issue 4).

use crate::{
    source::{PresetError, PresetOutput, PresetRequest, WebhookPreset},
    webhook::WebhookConfig,
};

pub struct Webflow;

impl Webflow {
    pub fn new(_config: &WebhookConfig) -> Self {
        Webflow
    }
}

impl WebhookPreset for Webflow {
    fn verify(&self, _req: &PresetRequest<'_>) -> Result<(), PresetError> {
        Err(PresetError::Unauthorized(
            "the webflow preset is not available yet".into(),
        ))
    }

    fn parse(&self, _req: &PresetRequest<'_>) -> Result<PresetOutput, PresetError> {
        Ok(PresetOutput::Nothing)
    }
}
