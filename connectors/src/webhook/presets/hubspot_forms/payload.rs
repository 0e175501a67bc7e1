//! What a HubSpot webhook delivery holds, as leads. HubSpot forms reach a webhook through a
//! workflow ("form submission" enrolment trigger + "Send a webhook" action), which POSTs the
//! enrolled contact. Accepted, as one object or a JSON array of them (one lead each):
//! - a CRM object: `{"id"|"vid"|"objectId", "properties": {name: "value" | {"value": …}}, …}`
//!   (the v3 object shape, or the legacy contact shape with `form-submissions`);
//! - a flat object of properties (the workflow action's "customize request body").
//!
//! Webhooks-API subscription events (`subscriptionType`: `contact.creation`, `…propertyChange`)
//! carry ids, not a person, and are skipped.

use serde_json::{Map, Value};

use super::super::common::{FieldSink, json_id, json_time, malformed};
use crate::source::{PresetError, SourceLead};

/// HubSpot's default contact properties that have a canonical meaning.
fn hubspot_canonical(property: &str) -> Option<&'static str> {
    Some(match property {
        "email" => "email",
        "phone" | "mobilephone" => "phone",
        "firstname" => "first_name",
        "lastname" => "last_name",
        "company" => "company",
        "jobtitle" => "job_title",
        "country" => "country",
        "hs_google_click_id" => "gclid",
        "hs_facebook_click_id" => "fbclid",
        "hs_analytics_first_url" => "landing_url",
        "hs_analytics_first_referrer" => "referrer",
        "recent_conversion_event_name" => "form",
        _ => return None,
    })
}

/// Record metadata, not answers.
fn is_metadata(key: &str) -> bool {
    key.starts_with("hs_")
        || matches!(
            key,
            "createdate"
                | "lastmodifieddate"
                | "recent_conversion_date"
                | "recent_conversion_event_name"
                | "first_conversion_date"
                | "first_conversion_event_name"
                | "num_conversion_events"
                | "num_unique_conversion_events"
                | "lifecyclestage"
                | "associatedcompanyid"
                | "eventId"
                | "objectId"
                | "portalId"
                | "occurredAt"
                | "vid"
                | "id"
                | "canonical-vid"
                | "portal-id"
        )
}

/// A property's value: plain (v3 objects, flat bodies) or `{"value": …}` (legacy contacts).
fn property_value(v: &Value) -> Option<Value> {
    match v {
        Value::Object(o) => o.get("value").cloned(),
        Value::Array(_) | Value::Null => None,
        other => Some(other.clone()),
    }
}

/// Every lead in a delivery; a malformed item names its place (`[2].properties`).
pub fn leads(body: &Value) -> Result<Vec<SourceLead>, PresetError> {
    match body {
        Value::Array(items) => {
            let mut out = Vec::new();
            for (i, item) in items.iter().enumerate() {
                let Value::Object(item) = item else {
                    return Err(malformed(format!("[{i}]"), "must be an object"));
                };
                if let Some(lead) = item_lead(item, &format!("[{i}]."))? {
                    out.push(lead);
                }
            }
            Ok(out)
        }
        Value::Object(item) => Ok(item_lead(item, "")?.into_iter().collect()),
        _ => Err(malformed(
            "body",
            "must be a JSON object or an array of objects",
        )),
    }
}

fn item_lead(item: &Map<String, Value>, at: &str) -> Result<Option<SourceLead>, PresetError> {
    if item.contains_key("subscriptionType") {
        return Ok(None);
    }
    let flat;
    let properties = match item.get("properties") {
        Some(Value::Object(p)) => p,
        Some(_) => return Err(malformed(format!("{at}properties"), "must be an object")),
        None => {
            flat = item.clone();
            &flat
        }
    };
    let prop = |name: &str| properties.get(name).and_then(property_value);

    let mut sink = FieldSink::default();
    // The submission itself (legacy contacts list them; the newest first or last: take the latest).
    let latest = latest_form_submission(item);
    if let Some(sub) = latest {
        if let Some(v) = json_id(sub.get("title")).or_else(|| json_id(sub.get("form-id"))) {
            sink.put_canonical("form", "form-id", Value::String(v));
        }
        if let Some(url) = json_id(sub.get("page-url")) {
            sink.put_canonical("landing_url", "page-url", Value::String(url));
        }
    }
    // `phone` before `mobilephone`, whatever the map's order.
    let ordered = properties
        .iter()
        .filter(|(name, _)| name.as_str() != "mobilephone")
        .chain(
            properties
                .iter()
                .filter(|(name, _)| name.as_str() == "mobilephone"),
        );
    for (name, raw) in ordered {
        let Some(value) = property_value(raw) else {
            continue;
        };
        match hubspot_canonical(name) {
            // HubSpot's own fallbacks (first-touch URL, latest conversion name) only fill gaps.
            Some(canonical) if is_metadata(name) && sink.fields.contains_key(canonical) => {}
            Some(canonical) => sink.put_canonical(canonical, name, value),
            None if is_metadata(name) => {}
            None => sink.put(name, value),
        }
    }

    let object_id = json_id(item.get("objectId"))
        .or_else(|| json_id(item.get("id")))
        .or_else(|| json_id(item.get("vid")))
        .or_else(|| json_id(item.get("canonical-vid")))
        .or_else(|| prop("hs_object_id").and_then(|v| json_id(Some(&v))));
    // When this submission happened: the form submission, else the contact's latest conversion.
    let when = latest
        .and_then(|s| s.get("timestamp").cloned())
        .or_else(|| item.get("occurredAt").cloned())
        .or_else(|| prop("recent_conversion_date"))
        .or_else(|| prop("createdate"));
    let captured_at = when.as_ref().and_then(json_time);
    // HubSpot's own ids where there is one; else the contact at that conversion time, so the
    // workflow's retries are one lead and a later submission (re-enrolment) is a new one.
    let event_id = json_id(item.get("eventId"))
        .or_else(|| latest.and_then(|s| json_id(s.get("conversion-id"))))
        .or_else(|| {
            let id = object_id.clone()?;
            Some(match when.as_ref().and_then(|w| json_id(Some(w))) {
                Some(t) => format!("{id}:{t}"),
                None => id,
            })
        });
    if let Some(id) = object_id {
        sink.put("hubspot_contact_id", Value::String(id));
    }
    Ok(Some(SourceLead {
        fields: sink.finish(),
        event_id,
        captured_at,
        is_test: false,
    }))
}

fn latest_form_submission(item: &Map<String, Value>) -> Option<&Map<String, Value>> {
    let Some(Value::Array(subs)) = item.get("form-submissions") else {
        return None;
    };
    subs.iter().filter_map(Value::as_object).max_by_key(|s| {
        s.get("timestamp")
            .and_then(Value::as_i64)
            .unwrap_or(i64::MIN)
    })
}
