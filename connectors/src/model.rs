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
    "adset_id",
    "page_id",
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
    /// A platform's test submission: stored, shown, but sent to a CRM only when the source's
    /// `deliver_test_leads` says so.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub is_test: bool,
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
    pub adset_id: Option<String>,
    pub page_id: Option<String>,
    pub utm_source: Option<String>,
    pub utm_medium: Option<String>,
    pub utm_campaign: Option<String>,
    pub utm_term: Option<String>,
    pub utm_content: Option<String>,
    pub gclid: Option<String>,
    pub gbraid: Option<String>,
    pub wbraid: Option<String>,
    pub fbclid: Option<String>,
    /// Meta's click id in its `fb.1.<ms>.<fbclid>` form, built from `fbclid` and `captured_at`.
    pub fbc: Option<String>,
    pub li_fat_id: Option<String>,
    pub landing_url: Option<String>,
    pub referrer: Option<String>,
    /// RFC 3339 instant the platform captured the lead (or tandem received it).
    pub captured_at: String,
}

/// What a CRM may do to a field that already holds a value (per mapped field, `on_conflict`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnConflict {
    /// The lead's value wins (the default).
    #[default]
    Overwrite,
    /// Written only where the CRM's field is empty: never clobber what sales typed.
    FillEmpty,
    /// Written only when the record is created; an existing record's value is never touched.
    Never,
}

/// A flow's rendered output for one lead, as the outbox stores it: the CRM's own property names
/// and values, plus the fields whose conflict rule is not `overwrite`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RecordFields {
    pub properties: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub conflict: BTreeMap<String, OnConflict>,
}

/// One lead as a CRM should receive it: the flow's field mapping already applied.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SinkRecord {
    /// The delivery (outbox row) this record belongs to; results are matched back by it.
    pub delivery_id: i64,
    /// Target property name → value, rendered from the flow's `fields`.
    pub properties: BTreeMap<String, String>,
    /// Fields whose `on_conflict` is not `overwrite` (absent = overwrite).
    #[serde(default)]
    pub conflict: BTreeMap<String, OnConflict>,
    /// The id this CRM gave the person on an earlier delivery, if any: connectors without a
    /// native upsert update it instead of searching (and never create a second record).
    #[serde(default)]
    pub remote_id: Option<String>,
}

impl SinkRecord {
    /// The rule for one property.
    pub fn rule(&self, property: &str) -> OnConflict {
        self.conflict.get(property).copied().unwrap_or_default()
    }

    /// Properties to write to a record that already exists and currently holds `existing`
    /// (property → current value; missing or empty = empty). Creates take every property.
    pub fn properties_for_update<'a>(
        &'a self,
        existing: impl Fn(&str) -> Option<&'a str>,
    ) -> BTreeMap<String, String> {
        self.properties
            .iter()
            .filter(|(k, _)| match self.rule(k) {
                OnConflict::Overwrite => true,
                OnConflict::FillEmpty => existing(k).is_none_or(|v| v.trim().is_empty()),
                OnConflict::Never => false,
            })
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conflict_rules_decide_what_an_update_may_write() {
        let r = SinkRecord {
            delivery_id: 1,
            properties: BTreeMap::from([
                ("email".into(), "a@b.co".into()),
                ("phone".into(), "+1555".into()),
                ("lead_source".into(), "web".into()),
            ]),
            conflict: BTreeMap::from([
                ("phone".into(), OnConflict::FillEmpty),
                ("lead_source".into(), OnConflict::Never),
            ]),
            remote_id: None,
        };
        let with_phone = r.properties_for_update(|k| (k == "phone").then_some("+1999"));
        assert_eq!(with_phone.keys().collect::<Vec<_>>(), ["email"]);
        let empty_phone = r.properties_for_update(|k| (k == "phone").then_some(" "));
        assert_eq!(empty_phone.keys().collect::<Vec<_>>(), ["email", "phone"]);
        assert_eq!(r.rule("email"), OnConflict::Overwrite);
    }
}
