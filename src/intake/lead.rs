//! From a decoded form submission to a canonical [`Lead`]: canonical fields by name or by the
//! connector's `fields` templates, everything else kept as custom fields, identifiers normalised,
//! utm_* recovered from the landing page's query when the form did not send them.

use std::collections::BTreeMap;

use serde_json::Value;
use tandem_connectors::{Lead, Touchpoint, webhook::Submission};

use crate::{
    identity::{self, IdentityError},
    mapping::FieldTemplates,
};

pub use tandem_connectors::model::CANONICAL_FIELDS;

/// The longest value tandem accepts in one canonical field; longer is a broken form, not a lead.
const MAX_FIELD_LEN: usize = 2048;

/// Why a submission could not become a lead. `field` names the culprit for the 400 body.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct FieldError {
    pub field: String,
    pub reason: String,
}

impl FieldError {
    fn new(field: &str, reason: impl Into<String>) -> Self {
        FieldError {
            field: field.to_owned(),
            reason: reason.into(),
        }
    }
}

/// Builds the canonical lead. `captured_at` is when tandem received it (RFC 3339).
pub fn build_lead(
    source: &str,
    templates: &FieldTemplates,
    default_region: Option<&str>,
    submission: Submission,
    captured_at: String,
) -> Result<Lead, FieldError> {
    let ctx = Value::Object(
        submission
            .fields
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
    );
    let mapped = templates.render(&ctx).map_err(|e| {
        FieldError::new(
            &e.field,
            format!("the connector's field template failed: {}", e.message),
        )
    })?;
    let mut fields = submission.fields;
    let mut take = |name: &str| -> Result<Option<String>, FieldError> {
        let direct = fields.remove(name);
        if let Some(v) = mapped.get(name) {
            return Ok(Some(v.clone()));
        }
        match direct {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(Value::Number(n)) => Ok(Some(n.to_string())),
            Some(Value::Bool(b)) => Ok(Some(b.to_string())),
            Some(Value::Array(items)) if items.iter().all(|i| i.is_string()) => Ok(Some(
                items
                    .iter()
                    .filter_map(Value::as_str)
                    .collect::<Vec<_>>()
                    .join(","),
            )),
            Some(_) => Err(FieldError::new(name, "must be a string, number or boolean")),
        }
        .and_then(
            |v| match v.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()) {
                Some(s) if s.len() > MAX_FIELD_LEN => Err(FieldError::new(
                    name,
                    format!("is longer than {MAX_FIELD_LEN} bytes"),
                )),
                Some(s) if s.contains('\0') => {
                    Err(FieldError::new(name, "contains a NUL character"))
                }
                other => Ok(other),
            },
        )
    };
    let mut values: BTreeMap<&str, String> = BTreeMap::new();
    for name in CANONICAL_FIELDS {
        if let Some(v) = take(name)? {
            values.insert(name, v);
        }
    }
    let mut custom: BTreeMap<String, Value> = fields.into_iter().collect();

    let email = match values.remove("email") {
        Some(raw) => Some(
            identity::normalize_email(&raw).map_err(|e| FieldError::new("email", e.to_string()))?,
        ),
        None => None,
    };
    let phone = match values.remove("phone") {
        None => None,
        Some(raw) => match identity::normalize_phone(&raw, default_region) {
            Ok(p) => Some(p),
            // With an email the lead is still a person: keep it, and keep the number as typed.
            Err(_) if email.is_some() => {
                custom.insert("phone_unparsed".into(), Value::String(raw));
                None
            }
            Err(e @ IdentityError::InvalidPhone(_)) | Err(e @ IdentityError::InvalidEmail) => {
                return Err(FieldError::new("phone", e.to_string()));
            }
        },
    };
    if email.is_none() && phone.is_none() {
        return Err(FieldError::new(
            "email",
            "a lead needs an email address or a phone number",
        ));
    }

    let mut v = |name: &str| values.remove(name);
    let mut touchpoint = Touchpoint {
        source: source.to_owned(),
        form: v("form"),
        campaign_id: v("campaign_id"),
        campaign_name: v("campaign_name"),
        ad_id: v("ad_id"),
        adset_id: v("adset_id"),
        page_id: v("page_id"),
        utm_source: v("utm_source"),
        utm_medium: v("utm_medium"),
        utm_campaign: v("utm_campaign"),
        utm_term: v("utm_term"),
        utm_content: v("utm_content"),
        gclid: v("gclid"),
        gbraid: v("gbraid"),
        wbraid: v("wbraid"),
        fbclid: v("fbclid"),
        fbc: None,
        li_fat_id: v("li_fat_id"),
        landing_url: v("landing_url"),
        referrer: v("referrer"),
        captured_at,
    };
    fill_from_landing_url(&mut touchpoint);
    touchpoint.fbc = fbc(&touchpoint);
    Ok(Lead {
        email,
        phone,
        first_name: v("first_name"),
        last_name: v("last_name"),
        company: v("company"),
        job_title: v("job_title"),
        country: v("country"),
        consent: v("consent"),
        custom,
        touchpoint,
        is_test: false,
    })
}

/// Meta's click id as the Conversions API wants it: `fb.1.<capture time in ms>.<fbclid>`.
fn fbc(tp: &Touchpoint) -> Option<String> {
    let fbclid = tp.fbclid.as_deref()?;
    let ms = tp
        .captured_at
        .parse::<jiff::Timestamp>()
        .ok()?
        .as_millisecond();
    Some(format!("fb.1.{ms}.{fbclid}"))
}

/// utm_* and click ids the form did not send, taken from the landing page's query string.
fn fill_from_landing_url(tp: &mut Touchpoint) {
    let Some(url) = tp
        .landing_url
        .as_deref()
        .and_then(|u| reqwest::Url::parse(u).ok())
    else {
        return;
    };
    for (k, val) in url.query_pairs() {
        let slot = match k.as_ref() {
            "utm_source" => &mut tp.utm_source,
            "utm_medium" => &mut tp.utm_medium,
            "utm_campaign" => &mut tp.utm_campaign,
            "utm_term" => &mut tp.utm_term,
            "utm_content" => &mut tp.utm_content,
            "gclid" => &mut tp.gclid,
            "gbraid" => &mut tp.gbraid,
            "wbraid" => &mut tp.wbraid,
            "fbclid" => &mut tp.fbclid,
            "li_fat_id" => &mut tp.li_fat_id,
            _ => continue,
        };
        if slot.is_none() && !val.trim().is_empty() {
            *slot = Some(val.into_owned());
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn submission(v: Value) -> Submission {
        Submission {
            fields: v.as_object().unwrap().clone().into_iter().collect(),
        }
    }

    fn no_templates() -> FieldTemplates {
        FieldTemplates::compile(&BTreeMap::new()).unwrap()
    }

    #[test]
    fn canonical_fields_by_name_and_the_rest_as_custom() {
        let lead = build_lead(
            "web",
            &no_templates(),
            Some("US"),
            submission(json!({"email": " Ann@Example.COM ", "phone": "(415) 555-2671", "first_name": "Ann",
                "plan": "pro", "seats": 12, "landing_url": "https://x.co/p?utm_source=google&utm_medium=cpc&gclid=abc"})),
            "2026-11-24T00:00:00Z".into(),
        )
        .unwrap();
        assert_eq!(lead.email.as_deref(), Some("ann@example.com"));
        assert_eq!(lead.phone.as_deref(), Some("+14155552671"));
        assert_eq!(lead.first_name.as_deref(), Some("Ann"));
        assert_eq!(lead.custom["plan"], json!("pro"));
        assert_eq!(lead.custom["seats"], json!(12));
        assert_eq!(lead.touchpoint.utm_source.as_deref(), Some("google"));
        assert_eq!(lead.touchpoint.gclid.as_deref(), Some("abc"));
        assert_eq!(lead.touchpoint.fbc, None, "no fbclid, no fbc");
        let fb = build_lead(
            "web",
            &no_templates(),
            None,
            submission(json!({"email": "a@b.co", "landing_url": "https://x.co/?fbclid=IwAR2x"})),
            "2026-11-24T00:00:00Z".into(),
        )
        .unwrap();
        assert_eq!(
            fb.touchpoint.fbc.as_deref(),
            Some("fb.1.1795478400000.IwAR2x")
        );
        assert_eq!(lead.touchpoint.source, "web");
    }

    #[test]
    fn templates_map_a_forms_own_names() {
        let t = FieldTemplates::compile(&BTreeMap::from([
            ("email".to_string(), "{{ your_email }}".to_string()),
            (
                "first_name".to_string(),
                "{{ name | split | first }}".to_string(),
            ),
        ]))
        .unwrap();
        let lead = build_lead(
            "web",
            &t,
            None,
            submission(json!({"your_email": "b@x.co", "name": "Bo Li"})),
            "t".into(),
        )
        .unwrap();
        assert_eq!(lead.email.as_deref(), Some("b@x.co"));
        assert_eq!(lead.first_name.as_deref(), Some("Bo"));
    }

    #[test]
    fn bad_fields_are_named() {
        let err = |v: Value| {
            build_lead("web", &no_templates(), None, submission(v), "t".into()).unwrap_err()
        };
        assert_eq!(err(json!({"email": "not-an-email"})).field, "email");
        assert_eq!(err(json!({"first_name": "x"})).field, "email");
        assert_eq!(err(json!({"email": {"a": 1}})).field, "email");
        assert_eq!(err(json!({"phone": "12345"})).field, "phone");
        assert_eq!(
            err(json!({"email": "a@b.co", "company": "x".repeat(5000)})).field,
            "company"
        );
    }

    #[test]
    fn an_unparseable_phone_next_to_a_good_email_is_kept_not_refused() {
        let lead = build_lead(
            "web",
            &no_templates(),
            None,
            submission(json!({"email": "a@b.co", "phone": "555"})),
            "t".into(),
        )
        .unwrap();
        assert_eq!(
            (lead.phone, &lead.custom["phone_unparsed"]),
            (None, &json!("555"))
        );
    }
}
