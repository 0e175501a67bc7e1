//! The `typeform` preset (being written; issue 4).

use crate::{
    source::{PresetError, PresetOutput, PresetRequest, WebhookPreset},
    webhook::WebhookConfig,
};

pub struct Typeform;

impl Typeform {
    pub fn new(_config: &WebhookConfig) -> Self {
        Typeform
    }
}

impl WebhookPreset for Typeform {
    fn verify(&self, _req: &PresetRequest<'_>) -> Result<(), PresetError> {
        Err(PresetError::Unauthorized(
            "the typeform preset is not available yet".into(),
        ))
    }

    fn parse(&self, _req: &PresetRequest<'_>) -> Result<PresetOutput, PresetError> {
        Ok(PresetOutput::Nothing)
    }
}
