//! A Klaviyo profile → a [`SourceLead`]: standard attributes under canonical names, location
//! parts and other attributes under Klaviyo's own names, custom `properties` under their own
//! keys (canonical when they are utm/click-id values).

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use crate::source::SourceLead;

use super::{LeadsFrom, wire::Profile};

/// Which stamp makes a profile a lead, and its attribute name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stamp {
    Created,
    Updated,
    /// Joining the configured list (`joined_group_at`, from a list's members).
    Joined,
}

impl Stamp {
    pub fn for_config(mode: LeadsFrom, list: bool) -> Stamp {
        match (mode, list) {
            (_, true) => Stamp::Joined,
            (LeadsFrom::Created, false) => Stamp::Created,
            (LeadsFrom::Updated, false) => Stamp::Updated,
        }
    }

    /// The attribute (and `filter`/`sort` field) name.
    pub fn field(self) -> &'static str {
        match self {
            Stamp::Created => "created",
            Stamp::Updated => "updated",
            Stamp::Joined => "joined_group_at",
        }
    }
}

fn canonical_property(name: &str) -> Option<String> {
    let lower = name.trim().to_ascii_lowercase();
    match lower.as_str() {
        "gclid" | "gbraid" | "wbraid" | "fbclid" | "li_fat_id" | "landing_url" | "referrer"
        | "campaign_id" | "campaign_name" | "ad_id" | "adset_id" | "form" | "consent" => {
            Some(lower)
        }
        "landing_page" => Some("landing_url".to_owned()),
        "referer" => Some("referrer".to_owned()),
        _ if lower.starts_with("utm_") && lower.len() > 4 => Some(lower),
        _ => None,
    }
}

fn blank(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::String(s) => s.trim().is_empty(),
        Value::Object(m) => m.is_empty(),
        _ => false,
    }
}

/// A Klaviyo stamp (`2024-06-01T10:00:00+00:00`, fractions allowed) as unix ms.
pub fn stamp_ms(v: Option<&Value>) -> Option<i64> {
    let ts: jiff::Timestamp = v?.as_str()?.trim().parse().ok()?;
    Some(ts.as_millisecond())
}

pub fn rfc3339(ms: i64) -> Option<String> {
    crate::brevo::mapping::rfc3339(ms)
}

pub fn lead_stamp_ms(profile: &Profile, stamp: Stamp) -> Option<i64> {
    stamp_ms(profile.attributes.get(stamp.field()))
        .or_else(|| stamp_ms(profile.attributes.get("created")))
}

fn put_custom(fields: &mut BTreeMap<String, Value>, prefix: &str, name: &str, value: &Value) {
    let key = if fields.contains_key(name) {
        format!("{prefix}.{name}")
    } else {
        name.to_owned()
    };
    fields.insert(key, value.clone());
}

/// The lead for one profile; `None` for a resource that isn't a profile with an id.
pub fn to_lead(profile: &Profile, stamp: Stamp) -> Option<SourceLead> {
    if profile.id.trim().is_empty() || !(profile.kind.is_empty() || profile.kind == "profile") {
        return None;
    }
    let at = lead_stamp_ms(profile, stamp);
    let mut fields: BTreeMap<String, Value> = BTreeMap::new();
    let empty = Map::new();
    let attrs = &profile.attributes;
    for (from, to) in [
        ("email", "email"),
        ("phone_number", "phone"),
        ("first_name", "first_name"),
        ("last_name", "last_name"),
        ("organization", "company"),
        ("title", "job_title"),
    ] {
        if let Some(v) = attrs.get(from).filter(|v| !blank(v)) {
            fields.insert(to.to_owned(), v.clone());
        }
    }
    let location = attrs
        .get("location")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    if let Some(v) = location.get("country").filter(|v| !blank(v)) {
        fields.insert("country".to_owned(), v.clone());
    }
    let properties = attrs
        .get("properties")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    let mut custom = Vec::new();
    for (name, value) in properties {
        if blank(value) {
            continue;
        }
        match canonical_property(name) {
            Some(key) => {
                fields.entry(key).or_insert_with(|| value.clone());
            }
            None => custom.push((name, value)),
        }
    }
    for (name, value) in custom {
        put_custom(&mut fields, "properties", name, value);
    }
    for (name, value) in location {
        if name != "country" && !blank(value) {
            put_custom(&mut fields, "location", name, value);
        }
    }
    const HANDLED: &[&str] = &[
        "email",
        "phone_number",
        "first_name",
        "last_name",
        "organization",
        "title",
        "location",
        "properties",
        "created",
        "updated",
        "joined_group_at",
        "last_event_date",
    ];
    for (name, value) in attrs {
        if !HANDLED.contains(&name.as_str()) && !blank(value) {
            put_custom(&mut fields, "attributes", name, value);
        }
    }
    let id = profile.id.trim().to_owned();
    let event_id = match (stamp, at.and_then(rfc3339)) {
        (Stamp::Updated, Some(when)) => format!("{id}@{when}"),
        _ => id,
    };
    Some(SourceLead {
        fields,
        event_id: Some(event_id),
        captured_at: at.and_then(rfc3339),
        is_test: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_realistic_profile_maps_to_canonical_and_custom_fields() {
        let p: Profile = serde_json::from_value(serde_json::json!({
            "type": "profile", "id": "01GDDKASAP8TKDDA2GRZDSVP4H",
            "attributes": {"email": "sarah.mason@klaviyo-demo.com", "phone_number": "+15005550006",
                "external_id": "crm-9", "first_name": "Sarah", "last_name": "Mason",
                "organization": "Example Corporation", "locale": "en-US", "title": "Regional Manager",
                "image": null, "created": "2022-11-08T00:00:00+00:00", "updated": "2022-11-09T10:00:00.250+00:00",
                "last_event_date": "2022-11-08T00:00:00+00:00",
                "location": {"address1": "89 E 42nd St", "city": "New York", "country": "United States",
                    "region": "NY", "zip": "10017", "timezone": "America/New_York", "latitude": null},
                "properties": {"utm_source": "facebook", "fbclid": "IwAR1", "Plan": "Pro", "email": "dup"}}
        }))
        .unwrap();
        let lead = to_lead(&p, Stamp::Created).unwrap();
        assert_eq!(lead.event_id.as_deref(), Some("01GDDKASAP8TKDDA2GRZDSVP4H"));
        assert_eq!(
            lead.captured_at.as_deref(),
            Some("2022-11-08T00:00:00.000Z")
        );
        let f = &lead.fields;
        for (k, v) in [
            ("email", "sarah.mason@klaviyo-demo.com"),
            ("phone", "+15005550006"),
            ("first_name", "Sarah"),
            ("last_name", "Mason"),
            ("company", "Example Corporation"),
            ("job_title", "Regional Manager"),
            ("country", "United States"),
            ("utm_source", "facebook"),
            ("fbclid", "IwAR1"),
            ("Plan", "Pro"),
            ("properties.email", "dup"),
            ("city", "New York"),
            ("zip", "10017"),
            ("external_id", "crm-9"),
            ("locale", "en-US"),
        ] {
            assert_eq!(f.get(k), Some(&Value::from(v)), "{k}");
        }
        assert!(!f.contains_key("image") && !f.contains_key("latitude"));
        let upd = to_lead(&p, Stamp::Updated).unwrap();
        assert_eq!(
            upd.event_id.as_deref(),
            Some("01GDDKASAP8TKDDA2GRZDSVP4H@2022-11-09T10:00:00.250Z")
        );
        assert!(!format!("{p:?}").contains("sarah"));
    }

    #[test]
    fn other_resources_are_not_leads() {
        let p: Profile =
            serde_json::from_value(serde_json::json!({"type": "list", "id": "x"})).unwrap();
        assert!(to_lead(&p, Stamp::Created).is_none());
        let p: Profile = serde_json::from_value(serde_json::json!({"type": "profile"})).unwrap();
        assert!(to_lead(&p, Stamp::Created).is_none());
    }
}
