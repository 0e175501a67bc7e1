//! The canonical records every connector speaks: a [`Lead`] with its [`Touchpoint`], and the
//! [`SinkRecord`] a CRM receives once a flow has mapped the lead to the CRM's own properties.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The canonical lead fields a form may send by name (or map with a webhook's `fields`
/// templates): the [`Lead`] and [`Touchpoint`] names a submission can fill.
pub const CANONICAL_FIELDS: &[&str] = &[
    "email",
    "phone",
    "first_name",
    "last_name",
    "company",
    "job_title",
    "country",
    "consent",
    "utm_source",
    "utm_medium",
    "utm_campaign",
    "utm_term",
    "utm_content",
    "gclid",
    "gbraid",
    "wbraid",
    "fbclid",
    "li_fat_id",
    "landing_url",
    "referrer",
    "form",
    "campaign_id",
    "campaign_name",
    "ad_id",
];

/// One capture event: a person's fields plus the touchpoint that produced it. Immutable once stored.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Lead {
    pub email: Option<String>,
    /// E.164 when the source gave a number that parses.
    pub phone: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub company: Option<String>,
    pub job_title: Option<String>,
    pub country: Option<String>,
    /// What the person agreed to, as the form said it ("true", "yes", "marketing,sales", ...).
    pub consent: Option<String>,
    /// Every submitted field tandem has no canonical name for, kept as sent.
    pub custom: BTreeMap<String, serde_json::Value>,
    pub touchpoint: Touchpoint,
}

/// Where and when a lead was captured.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Touchpoint {
    /// Name of the connector that delivered the lead.
    pub source: String,
    pub form: Option<String>,
    pub campaign_id: Option<String>,
    pub campaign_name: Option<String>,
    pub ad_id: Option<String>,
    pub utm_source: Option<String>,
    pub utm_medium: Option<String>,
    pub utm_campaign: Option<String>,
    pub utm_term: Option<String>,
    pub utm_content: Option<String>,
    pub gclid: Option<String>,
    pub gbraid: Option<String>,
    pub wbraid: Option<String>,
    pub fbclid: Option<String>,
    pub li_fat_id: Option<String>,
    pub landing_url: Option<String>,
    pub referrer: Option<String>,
    /// RFC 3339 instant the platform captured the lead (or tandem received it).
    pub captured_at: String,
}

/// One lead as a CRM should receive it: the flow's field mapping already applied.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SinkRecord {
    /// The delivery (outbox row) this record belongs to; results are matched back by it.
    pub delivery_id: i64,
    /// Target property name → value, rendered from the flow's `fields`.
    pub properties: BTreeMap<String, String>,
}
