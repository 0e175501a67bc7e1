//! The generic preset: any flat JSON object or form-urlencoded body, optionally signed with
//! `X-Tandem-Signature: sha256=<hex HMAC-SHA256 of the raw body>`. Field names are taken as they
//! come (canonical ones by name); the sender's `Idempotency-Key` header is the dedup key.

use secrecy::{ExposeSecret, SecretString};

use crate::{
    source::{PresetError, PresetOutput, PresetRequest, SourceLead, WebhookPreset},
    webhook::{SIGNATURE_HEADER, WebhookConfig, parse_body, verify_hex_signature},
};

pub struct Generic {
    secret: Option<SecretString>,
}

impl Generic {
    pub fn new(config: &WebhookConfig) -> Self {
        Generic {
            secret: config.secret.clone(),
        }
    }
}

impl WebhookPreset for Generic {
    fn verify(&self, req: &PresetRequest<'_>) -> Result<(), PresetError> {
        let Some(secret) = &self.secret else {
            return Ok(());
        };
        let given = req.headers.get(SIGNATURE_HEADER).map(String::as_str);
        verify_hex_signature(secret.expose_secret().as_bytes(), req.body, given)
            .map_err(|e| PresetError::Unauthorized(e.to_string()))
    }

    fn parse(&self, req: &PresetRequest<'_>) -> Result<PresetOutput, PresetError> {
        let submission = parse_body(
            req.headers.get("content-type").map(String::as_str),
            req.body,
        )
        .map_err(|e| {
            if e.is_media_type() {
                PresetError::UnsupportedMediaType(e.to_string())
            } else {
                PresetError::Malformed {
                    field: "body".into(),
                    reason: e.to_string(),
                }
            }
        })?;
        Ok(PresetOutput::Leads(vec![SourceLead {
            fields: submission.fields,
            ..Default::default()
        }]))
    }
}
