//! The `hubspot_forms` preset: HubSpot form submissions delivered by a workflow's webhook action,
//! signed with `X-HubSpot-Signature-v3` (see [`signature`]) and mapped by [`payload`].

mod payload;
pub mod signature;

use secrecy::{ExposeSecret, SecretString};

use super::common::{check_timestamp, ct_eq, parse_json, require_json};
use crate::{
    source::{PresetError, PresetOutput, PresetRequest, WebhookPreset},
    webhook::WebhookConfig,
};

const SIGNATURE_HEADER: &str = "x-hubspot-signature-v3";
const TIMESTAMP_HEADER: &str = "x-hubspot-request-timestamp";

pub struct HubspotForms {
    secret: Option<SecretString>,
    public_url: Option<String>,
}

impl HubspotForms {
    pub fn new(config: &WebhookConfig) -> Self {
        HubspotForms {
            secret: config.secret.clone(),
            public_url: config.public_url.clone(),
        }
    }
}

impl WebhookPreset for HubspotForms {
    fn verify(&self, req: &PresetRequest<'_>) -> Result<(), PresetError> {
        let Some(secret) = &self.secret else {
            return Err(PresetError::Unauthorized(
                "no client secret is configured for this hubspot_forms connector".into(),
            ));
        };
        let given = req
            .headers
            .get(SIGNATURE_HEADER)
            .map(|s| s.trim())
            .filter(|s| !s.is_empty())
            .ok_or_else(|| {
                PresetError::Unauthorized("missing X-HubSpot-Signature-v3 header".into())
            })?;
        check_timestamp(
            TIMESTAMP_HEADER,
            req.headers.get(TIMESTAMP_HEADER),
            req.now_ms,
        )?;
        let timestamp = req
            .headers
            .get(TIMESTAMP_HEADER)
            .map(|s| s.trim())
            .unwrap_or("");
        let url = signature::signed_url(self.public_url.as_deref(), req.url);
        let decoded = signature::decode_signed_escapes(&url);
        let method = req.method.to_ascii_uppercase();
        // The URI as HubSpot's instructions decode it; the URI exactly as sent is accepted too,
        // since which escapes HubSpot decodes is not confirmed.
        let matches = |uri: &str| {
            let expected = signature::sign_v3(
                secret.expose_secret().as_bytes(),
                &method,
                uri,
                req.body,
                timestamp,
            );
            ct_eq(expected.as_bytes(), given.as_bytes())
        };
        if matches(&decoded) || (decoded != url && matches(&url)) {
            Ok(())
        } else {
            Err(PresetError::Unauthorized(
                "X-HubSpot-Signature-v3 does not match this request (check public_url and the client secret)"
                    .into(),
            ))
        }
    }

    fn parse(&self, req: &PresetRequest<'_>) -> Result<PresetOutput, PresetError> {
        require_json(req.headers)?;
        let body = parse_json(req.body)?;
        let leads = payload::leads(&body)?;
        Ok(if leads.is_empty() {
            PresetOutput::Nothing
        } else {
            PresetOutput::Leads(leads)
        })
    }
}
