//! The `google_lead_form` preset (being written; issue 4).

use crate::{
    source::{PresetError, PresetOutput, PresetRequest, WebhookPreset},
    webhook::WebhookConfig,
};

pub struct GoogleLeadForm;

impl GoogleLeadForm {
    pub fn new(_config: &WebhookConfig) -> Self {
        GoogleLeadForm
    }
}

impl WebhookPreset for GoogleLeadForm {
    fn verify(&self, _req: &PresetRequest<'_>) -> Result<(), PresetError> {
        Err(PresetError::Unauthorized(
            "the google_lead_form preset is not available yet".into(),
        ))
    }

    fn parse(&self, _req: &PresetRequest<'_>) -> Result<PresetOutput, PresetError> {
        Ok(PresetOutput::Nothing)
    }
}
