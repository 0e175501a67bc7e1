//! The one path every lead takes into the store, whatever delivered it (a webhook preset, a Meta
//! fetch, a poll): platform fields → canonical lead (names, the source's `fields` templates,
//! normalised identity, touchpoint with the platform's own timestamp and `fbc`) → the deliveries
//! its flows cause → a [`NewLead`] deduplicated by the platform's event id.

use tandem_connectors::{source::SourceLead, webhook::Submission};

use super::lead::{FieldError, build_lead};
use crate::{
    daemon::runtime::{Runtime, Source},
    identity,
    store::NewLead,
};

/// What the source sent, kept with the lead (the raw request for webhooks, the platform's record
/// for fetched and polled leads).
pub struct Raw {
    pub body: Vec<u8>,
    pub content_type: Option<String>,
}

/// Builds the lead to store. `sender_key` (an `Idempotency-Key` header) wins over the
/// platform's event id as the dedup key.
pub fn admit(
    rt: &Runtime,
    source_name: &str,
    source: &Source,
    lead: SourceLead,
    raw: Option<Raw>,
    sender_key: Option<String>,
    received_at_ms: i64,
) -> Result<NewLead, FieldError> {
    let captured_at = lead
        .captured_at
        .as_deref()
        .and_then(|t| t.parse::<jiff::Timestamp>().ok())
        .or_else(|| jiff::Timestamp::from_millisecond(received_at_ms).ok())
        .map(|t| t.to_string())
        .unwrap_or_default();
    let raw = match raw {
        Some(r) => r,
        None => Raw {
            body: serde_json::to_vec(&lead).unwrap_or_default(),
            content_type: Some("application/json".into()),
        },
    };
    let idempotency_key = sender_key.or_else(|| lead.event_id.clone());
    let is_test = lead.is_test;
    let mut canonical = build_lead(
        source_name,
        &source.templates,
        source.default_region.as_deref(),
        Submission {
            fields: lead.fields,
        },
        captured_at,
    )?;
    canonical.is_test = is_test;
    let id = uuid::Uuid::now_v7().to_string();
    let deliveries = rt
        .deliveries_for(source, &id, &canonical)
        .map_err(|e| FieldError {
            field: e.field,
            reason: format!("a flow's field mapping failed: {}", e.message),
        })?;
    let person = identity::person_key(canonical.email.as_deref(), canonical.phone.as_deref(), None)
        .ok_or_else(|| FieldError {
            field: "email".into(),
            reason: "a lead needs an email address or a phone number".into(),
        })?;
    Ok(NewLead {
        id,
        source: source_name.to_owned(),
        received_at_ms,
        lead_json: serde_json::to_string(&canonical).unwrap_or_default(),
        raw_body: raw.body,
        content_type: raw.content_type,
        person,
        idempotency_key,
        deliveries,
    })
}
