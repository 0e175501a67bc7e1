//! The persons, leads and person-fields endpoints. Bodies are checked the way Pipedrive's schema
//! validation does (unknown keys, types, required name, email format, unknown custom field keys)
//! and refused with its `Validation failed: …` envelope.

use std::{collections::BTreeMap, time::Instant};

use axum::{
    Json,
    body::Bytes,
    extract::{Path, RawQuery, State},
    http::StatusCode,
    response::{IntoResponse, Response},
};
use serde_json::{Value, json};

use crate::pipedrive::wire::{ContactValue, PersonBody};

use super::{
    SandboxState, errors,
    state::{StoredLead, StoredPerson, World, now},
};

/// Person fields every company has (key, name, field_type, edit_flag).
const STANDARD_FIELDS: &[(&str, &str, &str, bool)] = &[
    ("name", "Name", "varchar", true),
    ("first_name", "First name", "varchar", true),
    ("last_name", "Last name", "varchar", true),
    ("email", "Email", "varchar", true),
    ("phone", "Phone", "phone", true),
    ("org_id", "Organization", "org", true),
    ("owner_id", "Owner", "user", true),
    ("label_ids", "Labels", "set", true),
    ("add_time", "Person created", "date", false),
    ("update_time", "Update time", "date", false),
    ("id", "ID", "int", false),
];

pub(super) fn query_pairs(raw: Option<String>) -> Vec<(String, String)> {
    let Some(raw) = raw else { return Vec::new() };
    reqwest::Url::parse(&format!("http://sandbox/?{raw}"))
        .map(|u| {
            u.query_pairs()
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect()
        })
        .unwrap_or_default()
}

pub(super) fn param<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

pub(super) fn ok(data: Value, additional: Option<Value>) -> Response {
    let mut body = json!({"success": true, "data": data});
    if let Some(a) = additional {
        body["additional_data"] = a;
    }
    (StatusCode::OK, Json(body)).into_response()
}

/// A v2 person as Pipedrive shows it.
fn person_json(p: &StoredPerson) -> Value {
    let (first, last) = p
        .name
        .split_once(' ')
        .map_or((p.name.as_str(), ""), |(f, l)| (f, l.trim()));
    json!({
        "id": p.id, "name": p.name, "first_name": first, "last_name": if last.is_empty() { Value::Null } else { json!(last) },
        "owner_id": p.owner_id, "org_id": p.org_id,
        "add_time": p.add_time.to_string(), "update_time": p.update_time.to_string(),
        "emails": p.emails, "phones": p.phones, "is_deleted": false, "visible_to": 3,
        "label_ids": [], "picture_id": null, "custom_fields": p.custom_fields,
    })
}

fn valid_email(s: &str) -> bool {
    let Some((local, domain)) = s.trim().split_once('@') else {
        return false;
    };
    !local.is_empty()
        && !domain.contains('@')
        && domain.contains('.')
        && !s.trim().contains(' ')
        && domain.split('.').all(|p| !p.is_empty())
}

/// The body as `PersonBody`, or Pipedrive's validation refusal.
#[allow(clippy::result_large_err, reason = "the Err is the HTTP answer itself")]
fn parse_body(state: &SandboxState, body: &Bytes, creating: bool) -> Result<PersonBody, Response> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| errors::validation(format!("body: Invalid JSON ({e})")))?;
    let parsed: PersonBody =
        serde_json::from_value(value).map_err(|e| errors::validation(format!("body: {e}")))?;
    if creating && parsed.name.as_deref().is_none_or(|n| n.trim().is_empty()) {
        return Err(errors::validation("name: Required"));
    }
    for (i, e) in parsed.emails.iter().flatten().enumerate() {
        if !valid_email(&e.value) {
            return Err(errors::validation(format!(
                "emails/{i}/value: Invalid email address"
            )));
        }
    }
    let known = &state.options().custom_fields;
    for key in parsed.custom_fields.keys() {
        if !known.iter().any(|(k, _, _)| k == key) {
            return Err(errors::validation(format!(
                "custom_fields: Unknown custom field key '{key}'"
            )));
        }
    }
    Ok(parsed)
}

fn apply(p: &mut StoredPerson, b: PersonBody) {
    if let Some(n) = b.name {
        p.name = n;
    }
    if let Some(e) = b.emails {
        p.emails = e;
    }
    if let Some(ph) = b.phones {
        p.phones = ph;
    }
    if b.org_id.is_some() {
        p.org_id = b.org_id;
    }
    if b.owner_id.is_some() {
        p.owner_id = b.owner_id;
    }
    for (k, v) in b.custom_fields {
        p.custom_fields.insert(k, v);
    }
    p.update_time = now();
    p.written_at = Some(Instant::now());
    p.searches_since_write = 0;
    p.writes += 1;
}

pub async fn create(State(state): State<SandboxState>, body: Bytes) -> Response {
    let parsed = match parse_body(&state, &body, true) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let mut w = state.world();
    w.stats.creates += 1;
    let id = w.next_id;
    w.next_id += 1;
    let at = now();
    let mut p = StoredPerson {
        id,
        name: String::new(),
        emails: Vec::new(),
        phones: Vec::new(),
        org_id: None,
        owner_id: None,
        custom_fields: BTreeMap::new(),
        add_time: at,
        update_time: at,
        writes: 0,
        written_at: None,
        searches_since_write: 0,
    };
    for (k, _, _) in &state.options().custom_fields {
        p.custom_fields.insert(k.clone(), Value::Null);
    }
    apply(&mut p, parsed);
    let out = person_json(&p);
    w.persons.insert(id, p);
    ok(out, None)
}

pub async fn patch(
    State(state): State<SandboxState>,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let Ok(id) = id.parse::<u64>() else {
        return errors::validation("id: Expected number");
    };
    let parsed = match parse_body(&state, &body, false) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let mut w = state.world();
    w.stats.updates += 1;
    let Some(p) = w.persons.get_mut(&id) else {
        return errors::not_found("Person");
    };
    apply(p, parsed);
    ok(person_json(p), None)
}

pub async fn get_one(State(state): State<SandboxState>, Path(id): Path<String>) -> Response {
    let mut w = state.world();
    w.stats.reads += 1;
    match id.parse::<u64>().ok().and_then(|id| w.persons.get(&id)) {
        Some(p) => ok(person_json(p), None),
        None => errors::not_found("Person"),
    }
}

pub async fn list(State(state): State<SandboxState>, RawQuery(raw): RawQuery) -> Response {
    let pairs = query_pairs(raw);
    let limit = match param(&pairs, "limit").map(str::parse::<usize>) {
        None => 100,
        Some(Ok(n)) if (1..=500).contains(&n) => n,
        Some(_) => return errors::validation("limit: Number must be between 1 and 500"),
    };
    let mut w = state.world();
    if let Some(ids) = param(&pairs, "ids") {
        w.stats.reads += 1;
        let mut ids_parsed = Vec::new();
        for id in ids.split(',').filter(|s| !s.trim().is_empty()) {
            match id.trim().parse::<u64>() {
                Ok(n) => ids_parsed.push(n),
                Err(_) => {
                    return errors::validation("ids: Expected a comma-separated list of numbers");
                }
            }
        }
        if ids_parsed.len() > 100 {
            return errors::validation("ids: Array must contain at most 100 element(s)");
        }
        let data: Vec<Value> = ids_parsed
            .iter()
            .filter_map(|id| w.persons.get(id))
            .map(person_json)
            .collect();
        return ok(json!(data), Some(json!({"next_cursor": null})));
    }
    w.stats.lists += 1;
    let sort_by = param(&pairs, "sort_by").unwrap_or("id");
    if !matches!(sort_by, "id" | "update_time" | "add_time") {
        return errors::validation(
            "sort_by: Invalid enum value. Expected 'id' | 'update_time' | 'add_time'",
        );
    }
    let desc = match param(&pairs, "sort_direction").unwrap_or("asc") {
        "asc" => false,
        "desc" => true,
        _ => {
            return errors::validation(
                "sort_direction: Invalid enum value. Expected 'asc' | 'desc'",
            );
        }
    };
    let since = match param(&pairs, "updated_since").map(str::parse::<jiff::Timestamp>) {
        None => None,
        Some(Ok(t)) => Some(t),
        Some(Err(_)) => return errors::validation("updated_since: Invalid RFC3339 date-time"),
    };
    let offset = match param(&pairs, "cursor") {
        None => 0,
        Some(c) => match c
            .strip_prefix("c2Vx")
            .and_then(|n| usize::from_str_radix(n, 16).ok())
        {
            Some(n) => n,
            None => return errors::validation("cursor: Invalid cursor"),
        },
    };
    let mut all: Vec<&StoredPerson> = w
        .persons
        .values()
        .filter(|p| since.is_none_or(|s| p.update_time >= s))
        .collect();
    all.sort_by_key(|p| match sort_by {
        "update_time" => (p.update_time, p.id),
        "add_time" => (p.add_time, p.id),
        _ => (jiff::Timestamp::UNIX_EPOCH, p.id),
    });
    if desc {
        all.reverse();
    }
    let page: Vec<Value> = all
        .iter()
        .skip(offset)
        .take(limit)
        .map(|p| person_json(p))
        .collect();
    let next = (offset + limit < all.len()).then(|| format!("c2Vx{:x}", offset + limit));
    ok(json!(page), Some(json!({"next_cursor": next})))
}

pub async fn search(State(state): State<SandboxState>, RawQuery(raw): RawQuery) -> Response {
    let pairs = query_pairs(raw);
    let term = param(&pairs, "term").unwrap_or("").trim().to_lowercase();
    let exact = param(&pairs, "exact_match") == Some("true");
    if term.is_empty() || (!exact && term.chars().count() < 2) {
        return errors::validation("term: String must contain at least 2 character(s)");
    }
    let fields: Vec<&str> = param(&pairs, "fields").map_or(
        vec!["name", "email", "phone", "custom_fields", "notes"],
        |f| f.split(',').map(str::trim).collect(),
    );
    if let Some(bad) = fields
        .iter()
        .find(|f| !matches!(**f, "name" | "email" | "phone" | "custom_fields" | "notes"))
    {
        return errors::validation(format!(
            "fields: Invalid enum value '{bad}'. Expected 'name' | 'email' | 'phone' | 'notes' | 'custom_fields'"
        ));
    }
    let options = state.options().clone();
    let mut w = state.world();
    w.stats.searches += 1;
    let hit = |text: &str| {
        let text = text.trim().to_lowercase();
        if exact {
            text == term
        } else {
            text.contains(&term)
        }
    };
    let mut items = Vec::new();
    let World { persons, .. } = &mut *w;
    for p in persons.values_mut() {
        if !World::searchable(p, &options) {
            p.searches_since_write += 1;
            continue;
        }
        let matched = (fields.contains(&"name") && hit(&p.name))
            || (fields.contains(&"email") && p.emails.iter().any(|e| hit(&e.value)))
            || (fields.contains(&"phone") && p.phones.iter().any(|e| hit(&e.value)))
            || (fields.contains(&"custom_fields")
                && p.custom_fields.values().filter_map(Value::as_str).any(hit));
        if matched {
            items.push(json!({
                "result_score": 1.0,
                "item": {
                    "id": p.id, "type": "person", "name": p.name,
                    "phones": p.phones.iter().map(|c| c.value.clone()).collect::<Vec<_>>(),
                    "emails": p.emails.iter().map(|c| c.value.clone()).collect::<Vec<_>>(),
                    "primary_email": p.emails.iter().find(|c| c.primary).map(|c| c.value.clone()),
                    "visible_to": 3, "owner": p.owner_id.map(|id| json!({"id": id})),
                    "organization": p.org_id.map(|id| json!({"id": id})),
                    "custom_fields": [], "notes": [], "update_time": p.update_time.to_string(),
                }
            }));
        }
    }
    ok(json!({"items": items}), Some(json!({"next_cursor": null})))
}

pub async fn create_lead(State(state): State<SandboxState>, body: Bytes) -> Response {
    let Ok(value) = serde_json::from_slice::<Value>(&body) else {
        return errors::respond(StatusCode::BAD_REQUEST, "Invalid JSON body", None, false);
    };
    let title = value
        .get("title")
        .and_then(Value::as_str)
        .unwrap_or("")
        .trim()
        .to_owned();
    if title.is_empty() {
        return errors::respond(
            StatusCode::BAD_REQUEST,
            "Validation failed: title: Required",
            Some("ERR_SCHEMA_VALIDATION_FAILED"),
            false,
        );
    }
    let Some(person_id) = value.get("person_id").and_then(Value::as_u64) else {
        return errors::respond(
            StatusCode::BAD_REQUEST,
            "A lead must be linked to a person or an organization.",
            None,
            false,
        );
    };
    let mut w = state.world();
    w.stats.leads += 1;
    if !w.persons.contains_key(&person_id) {
        return errors::respond(
            StatusCode::BAD_REQUEST,
            format!("Person with id {person_id} does not exist"),
            None,
            false,
        );
    }
    let lead = StoredLead {
        id: w.uuid(),
        title,
        person_id,
        add_time: now(),
    };
    w.leads.push(lead.clone());
    (
        StatusCode::CREATED,
        Json(json!({"success": true, "data": lead_json(&lead)})),
    )
        .into_response()
}

fn lead_json(l: &StoredLead) -> Value {
    json!({"id": l.id, "title": l.title, "person_id": l.person_id, "organization_id": null,
           "owner_id": 1, "label_ids": [], "is_archived": false, "was_seen": false,
           "value": null, "add_time": l.add_time.to_string(), "update_time": l.add_time.to_string()})
}

pub async fn list_leads(State(state): State<SandboxState>, RawQuery(raw): RawQuery) -> Response {
    let pairs = query_pairs(raw);
    let person = param(&pairs, "person_id").and_then(|p| p.parse::<u64>().ok());
    let limit = param(&pairs, "limit")
        .and_then(|l| l.parse::<usize>().ok())
        .unwrap_or(100)
        .clamp(1, 500);
    let start = param(&pairs, "start")
        .and_then(|l| l.parse::<usize>().ok())
        .unwrap_or(0);
    let desc = param(&pairs, "sort").is_some_and(|s| s.to_lowercase().ends_with("desc"));
    let mut w = state.world();
    w.stats.lists += 1;
    let mut all: Vec<&StoredLead> = w
        .leads
        .iter()
        .filter(|l| person.is_none_or(|p| l.person_id == p))
        .collect();
    if desc {
        all.reverse();
    }
    let page: Vec<Value> = all
        .iter()
        .skip(start)
        .take(limit)
        .map(|l| lead_json(l))
        .collect();
    let more = start + limit < all.len();
    ok(
        json!(page),
        Some(
            json!({"pagination": {"start": start, "limit": limit, "more_items_in_collection": more, "next_start": more.then_some(start + limit)}}),
        ),
    )
}

pub async fn person_fields(State(state): State<SandboxState>, RawQuery(raw): RawQuery) -> Response {
    let pairs = query_pairs(raw);
    let limit = param(&pairs, "limit")
        .and_then(|l| l.parse::<usize>().ok())
        .unwrap_or(100)
        .clamp(1, 500);
    let start = param(&pairs, "start")
        .and_then(|l| l.parse::<usize>().ok())
        .unwrap_or(0);
    state.world().stats.field_reads += 1;
    let custom = state
        .options()
        .custom_fields
        .iter()
        .map(|(k, n, t)| (k.as_str(), n.as_str(), t.as_str(), true));
    let all: Vec<Value> = STANDARD_FIELDS
        .iter()
        .copied()
        .chain(custom)
        .enumerate()
        .map(|(i, (key, name, field_type, edit_flag))| {
            json!({"id": 9000 + i, "key": key, "name": name, "field_type": field_type, "edit_flag": edit_flag,
                   "bulk_edit_allowed": edit_flag, "mandatory_flag": key == "name", "active_flag": true})
        })
        .collect();
    let more = start + limit < all.len();
    let page: Vec<Value> = all.into_iter().skip(start).take(limit).collect();
    ok(
        json!(page),
        Some(
            json!({"pagination": {"start": start, "limit": limit, "more_items_in_collection": more, "next_start": more.then_some(start + limit)}}),
        ),
    )
}

pub async fn inspect_persons(State(state): State<SandboxState>) -> Response {
    Json(state.persons()).into_response()
}

pub async fn inspect_stats(State(state): State<SandboxState>) -> Response {
    Json(state.stats()).into_response()
}

/// For the conformance view: a person's fields under tandem's property names.
pub(super) fn flat_fields(p: &StoredPerson) -> BTreeMap<String, String> {
    let mut f = BTreeMap::new();
    let (first, last) = p
        .name
        .split_once(' ')
        .map_or((p.name.clone(), String::new()), |(a, b)| {
            (a.to_owned(), b.trim().to_owned())
        });
    f.insert("name".to_owned(), p.name.clone());
    if !first.is_empty() {
        f.insert("first_name".to_owned(), first);
    }
    if !last.is_empty() {
        f.insert("last_name".to_owned(), last);
    }
    let primary = |l: &[ContactValue]| {
        l.iter()
            .find(|c| c.primary)
            .or(l.first())
            .map(|c| c.value.clone())
    };
    if let Some(e) = primary(&p.emails) {
        f.insert("email".to_owned(), e);
    }
    if let Some(ph) = primary(&p.phones) {
        f.insert("phone".to_owned(), ph);
    }
    if let Some(o) = p.org_id {
        f.insert("org_id".to_owned(), o.to_string());
    }
    if let Some(o) = p.owner_id {
        f.insert("owner_id".to_owned(), o.to_string());
    }
    for (k, v) in &p.custom_fields {
        match v {
            Value::String(s) if !s.is_empty() => {
                f.insert(k.clone(), s.clone());
            }
            Value::Number(n) => {
                f.insert(k.clone(), n.to_string());
            }
            _ => {}
        }
    }
    f
}
