//! tandem properties ↔ Pipedrive persons. Standard keys map to the person's own fields
//! (`name`, `first_name`/`last_name` → `name`, `email` → `emails`, `phone` → `phones`, `org_id`,
//! `owner_id`); every other key is a custom field's hash key under `custom_fields`. Updates
//! apply the record's conflict rules against the person's current values, and merge emails and
//! phones into the existing lists (Pipedrive replaces a list written in a PATCH).

use std::collections::BTreeMap;

use serde_json::Value;

use crate::model::SinkRecord;

use super::wire::{ContactValue, Person, PersonBody};

/// Property names with a meaning of their own; anything else is a custom field key.
pub const STANDARD_KEYS: &[&str] = &[
    "name",
    "first_name",
    "last_name",
    "email",
    "phone",
    "org_id",
    "owner_id",
];

fn non_empty<'a>(props: &'a BTreeMap<String, String>, key: &str) -> Option<&'a str> {
    props.get(key).map(|v| v.trim()).filter(|v| !v.is_empty())
}

/// The record's email, trimmed, if any.
pub fn email_of(record: &SinkRecord) -> Option<&str> {
    non_empty(&record.properties, "email")
}

fn id_value(props: &BTreeMap<String, String>, key: &str) -> Result<Option<u64>, String> {
    match non_empty(props, key) {
        None => Ok(None),
        Some(v) => v.parse::<u64>().map(Some).map_err(|_| {
            format!("{key} must be the numeric id of a Pipedrive {} (got a value that is not a number); map the id, not the name",
                if key == "org_id" { "organization" } else { "user" })
        }),
    }
}

/// `first last`, skipping empty parts.
fn join_name(first: Option<&str>, last: Option<&str>) -> Option<String> {
    let name = [first, last]
        .into_iter()
        .flatten()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    (!name.is_empty()).then_some(name)
}

fn custom_fields(props: &BTreeMap<String, String>) -> BTreeMap<String, Value> {
    props
        .iter()
        .filter(|(k, _)| !STANDARD_KEYS.contains(&k.as_str()))
        .map(|(k, v)| {
            (
                k.clone(),
                if v.is_empty() {
                    Value::Null
                } else {
                    Value::String(v.clone())
                },
            )
        })
        .collect()
}

/// The body of `POST /api/v2/persons`: every property. Pipedrive requires a name; without one
/// the first and last names, else the email, stand in.
pub fn create_body(record: &SinkRecord) -> Result<PersonBody, String> {
    let p = &record.properties;
    let name = non_empty(p, "name")
        .map(str::to_owned)
        .or_else(|| join_name(non_empty(p, "first_name"), non_empty(p, "last_name")))
        .or_else(|| non_empty(p, "email").map(str::to_owned))
        .ok_or_else(|| {
            "lead has no name, first_name, last_name or email; Pipedrive requires a person's name"
                .to_owned()
        })?;
    Ok(PersonBody {
        name: Some(name),
        owner_id: id_value(p, "owner_id")?,
        org_id: id_value(p, "org_id")?,
        emails: non_empty(p, "email").map(|e| vec![ContactValue::primary(e)]),
        phones: non_empty(p, "phone").map(|ph| vec![ContactValue::primary(ph)]),
        visible_to: None,
        custom_fields: custom_fields(p),
    })
}

fn value_text(v: &Value) -> Option<String> {
    match v {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        // Option fields, monetary values, addresses: their `value`/`id` is what a person sees.
        Value::Object(o) => o.get("value").or_else(|| o.get("id")).and_then(value_text),
        Value::Array(a) => (!a.is_empty()).then(|| Value::Array(a.clone()).to_string()),
    }
}

fn primary(list: &[ContactValue]) -> Option<&str> {
    list.iter()
        .find(|c| c.primary)
        .or_else(|| list.first())
        .map(|c| c.value.as_str())
}

/// The person's current value for a tandem property name (for conflict rules).
pub fn existing_value(person: &Person, key: &str) -> Option<String> {
    let split = || {
        let name = person.name.as_deref().unwrap_or("").trim();
        name.split_once(' ')
            .map(|(f, l)| (f.to_owned(), l.trim().to_owned()))
            .unwrap_or((name.to_owned(), String::new()))
    };
    match key {
        "name" => person.name.clone(),
        "first_name" => person.first_name.clone().or_else(|| Some(split().0)),
        "last_name" => person.last_name.clone().or_else(|| Some(split().1)),
        "email" => primary(&person.emails).map(str::to_owned),
        "phone" => primary(&person.phones).map(str::to_owned),
        "org_id" => person.org_id.map(|n| n.to_string()),
        "owner_id" => person.owner_id.map(|n| n.to_string()),
        custom => person.custom_fields.get(custom).and_then(value_text),
    }
    .filter(|v| !v.trim().is_empty())
}

fn digits(s: &str) -> String {
    s.chars().filter(char::is_ascii_digit).collect()
}

/// `value` as the new primary, the person's other values kept (not primary any more); `None`
/// when the person already has it (nothing to write).
fn merged(
    existing: &[ContactValue],
    value: &str,
    same: impl Fn(&str, &str) -> bool,
) -> Option<Vec<ContactValue>> {
    if existing.iter().any(|c| same(&c.value, value)) {
        return None;
    }
    let mut list = vec![ContactValue::primary(value)];
    list.extend(existing.iter().map(|c| ContactValue {
        primary: false,
        ..c.clone()
    }));
    Some(list)
}

/// The body of `PATCH /api/v2/persons/{id}` for a person that exists. With the person's current
/// values (`existing`) the conflict rules apply and emails/phones are merged; without them
/// (`None`: nothing was read because no rule needed it) every property is written.
pub fn update_body(record: &SinkRecord, existing: Option<&Person>) -> Result<PersonBody, String> {
    let current: BTreeMap<String, String> = match existing {
        Some(person) => record
            .properties
            .keys()
            .filter_map(|k| existing_value(person, k).map(|v| (k.clone(), v)))
            .collect(),
        None => BTreeMap::new(),
    };
    let props = record.properties_for_update(|k| current.get(k).map(String::as_str));
    let name = non_empty(&props, "name").map(str::to_owned).or_else(|| {
        let first = non_empty(&props, "first_name");
        let last = non_empty(&props, "last_name");
        if first.is_none() && last.is_none() {
            return None;
        }
        let keep = |k: &str| existing.and_then(|p| existing_value(p, k));
        let first = first.map(str::to_owned).or_else(|| keep("first_name"));
        let last = last.map(str::to_owned).or_else(|| keep("last_name"));
        join_name(first.as_deref(), last.as_deref())
    });
    let emails = non_empty(&props, "email").and_then(|e| match existing {
        Some(p) => merged(&p.emails, e, |a, b| a.trim().eq_ignore_ascii_case(b.trim())),
        None => Some(vec![ContactValue::primary(e)]),
    });
    let phones = non_empty(&props, "phone").and_then(|ph| match existing {
        Some(p) => merged(&p.phones, ph, |a, b| {
            digits(a) == digits(b) && !digits(b).is_empty()
        }),
        None => Some(vec![ContactValue::primary(ph)]),
    });
    Ok(PersonBody {
        name,
        owner_id: id_value(&props, "owner_id")?,
        org_id: id_value(&props, "org_id")?,
        emails,
        phones,
        visible_to: None,
        custom_fields: custom_fields(&props)
            .into_iter()
            .filter(|(_, v)| !v.is_null())
            .collect(),
    })
}

/// `lead_title` must have balanced `{…}` placeholders.
pub fn check_title_template(template: &str) -> Result<(), String> {
    let mut open = false;
    for c in template.chars() {
        match (c, open) {
            ('{', false) => open = true,
            ('}', true) => open = false,
            ('{', true) | ('}', false) => {
                return Err(format!(
                    "{template:?} has unbalanced braces; write placeholders like \"{{name}} (web form)\""
                ));
            }
            _ => {}
        }
    }
    if open {
        return Err(format!(
            "{template:?} has an unclosed \"{{\"; write placeholders like \"{{name}} (web form)\""
        ));
    }
    Ok(())
}

/// The lead title: `{key}` → the record's property `key` (`{name}` falls back to first + last
/// name, then email); never empty.
pub fn render_title(template: &str, record: &SinkRecord) -> String {
    let p = &record.properties;
    let lookup = |key: &str| -> String {
        match key {
            "name" => non_empty(p, "name")
                .map(str::to_owned)
                .or_else(|| join_name(non_empty(p, "first_name"), non_empty(p, "last_name")))
                .or_else(|| non_empty(p, "email").map(str::to_owned))
                .unwrap_or_default(),
            k => non_empty(p, k).unwrap_or_default().to_owned(),
        }
    };
    let mut out = String::new();
    let mut rest = template;
    while let Some(start) = rest.find('{') {
        out.push_str(&rest[..start]);
        match rest[start..].find('}') {
            Some(end) => {
                out.push_str(&lookup(rest[start + 1..start + end].trim()));
                rest = &rest[start + end + 1..];
            }
            None => {
                out.push_str(&rest[start..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    let out = out.trim().to_owned();
    if !out.is_empty() {
        return out;
    }
    let name = lookup("name");
    if name.is_empty() {
        "Web lead".to_owned()
    } else {
        name
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::OnConflict;

    fn rec(props: &[(&str, &str)]) -> SinkRecord {
        SinkRecord {
            delivery_id: 1,
            properties: props
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            conflict: Default::default(),
            remote_id: None,
        }
    }

    #[test]
    fn create_maps_standard_keys_and_custom_fields() {
        let r = rec(&[
            ("first_name", "Ada"),
            ("last_name", "Lovelace"),
            ("email", "ada@x.io"),
            ("phone", "+44 20"),
            ("org_id", "7"),
            ("abc123hash", "web"),
        ]);
        let b = create_body(&r).unwrap();
        let json = serde_json::to_value(&b).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"name": "Ada Lovelace", "org_id": 7,
                "emails": [{"value": "ada@x.io", "primary": true, "label": "work"}],
                "phones": [{"value": "+44 20", "primary": true, "label": "work"}],
                "custom_fields": {"abc123hash": "web"}})
        );
        assert!(
            create_body(&rec(&[("email", "a@x.io"), ("owner_id", "bob")]))
                .unwrap_err()
                .contains("owner_id must be the numeric id")
        );
        assert_eq!(
            create_body(&rec(&[("email", "a@x.io")]))
                .unwrap()
                .name
                .as_deref(),
            Some("a@x.io")
        );
    }

    #[test]
    fn updates_follow_conflict_rules_and_merge_lists() {
        let mut r = rec(&[
            ("email", "ada@x.io"),
            ("phone", "+1 555"),
            ("first_name", "Ada"),
            ("src", "web"),
            ("owner_id", "9"),
        ]);
        r.conflict.insert("phone".into(), OnConflict::FillEmpty);
        r.conflict.insert("src".into(), OnConflict::FillEmpty);
        r.conflict.insert("owner_id".into(), OnConflict::Never);
        let person = Person {
            id: 5,
            name: Some("Ada Byron".into()),
            emails: vec![ContactValue::primary("ADA@x.io")],
            phones: vec![ContactValue::primary("+1 999")],
            custom_fields: BTreeMap::from([("src".into(), Value::Null)]),
            owner_id: Some(3),
            ..Default::default()
        };
        let b = update_body(&r, Some(&person)).unwrap();
        assert_eq!(b.name.as_deref(), Some("Ada Byron"));
        assert_eq!(b.emails, None, "already has the email");
        assert_eq!(b.phones, None, "fill_empty keeps the salesperson's phone");
        assert_eq!(b.owner_id, None);
        assert_eq!(
            b.custom_fields.get("src"),
            Some(&Value::String("web".into()))
        );
        let mut r2 = rec(&[("email", "new@x.io")]);
        r2.remote_id = Some("5".into());
        let b = update_body(&r2, Some(&person)).unwrap();
        let emails = b.emails.unwrap();
        assert_eq!(
            (emails[0].value.as_str(), emails[0].primary),
            ("new@x.io", true)
        );
        assert_eq!(
            (emails[1].value.as_str(), emails[1].primary),
            ("ADA@x.io", false)
        );
    }

    #[test]
    fn lead_titles_render_placeholders() {
        let r = rec(&[
            ("first_name", "Ada"),
            ("email", "ada@x.io"),
            ("utm_source", "google"),
        ]);
        assert_eq!(render_title("{name}", &r), "Ada");
        assert_eq!(
            render_title("{name} via {utm_source}", &r),
            "Ada via google"
        );
        assert_eq!(render_title("Web lead", &r), "Web lead");
        assert!(check_title_template("{name").is_err());
        assert!(check_title_template("a}").is_err());
        assert!(check_title_template("{name} ({email})").is_ok());
    }
}
