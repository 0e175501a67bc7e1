//! The contacts endpoints: batch upsert/create/read, get one, and the paged list. Request checks
//! follow HubSpot's order (batch size, shape, idProperty, properties, emails, duplicate ids) and
//! refuse the whole batch the way HubSpot does; only injected per-input failures give a 207.

#![allow(
    clippy::result_large_err,
    reason = "the Err is the HTTP answer itself, returned once per request"
)]

use std::collections::{BTreeMap, BTreeSet, HashSet};

use axum::{
    Json,
    body::{Body, Bytes},
    extract::{Path, RawQuery, State},
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde_json::{Value, json};

use crate::hubspot::wire::{ErrorDetail, StandardError, UpsertResponse, UpsertResult};

use super::{
    Contact, STANDARD_PROPERTIES, SandboxState, errors, properties::READ_ONLY_PROPERTIES,
    state::World,
};

const MAX_INPUTS: usize = 100;
const DEFAULT_READ_PROPERTIES: &[&str] = &[
    "createdate",
    "email",
    "firstname",
    "hs_object_id",
    "lastmodifieddate",
    "lastname",
];
/// Set by HubSpot itself on every contact.
const SYSTEM_PROPERTIES: &[&str] = &["hs_object_id", "createdate", "lastmodifieddate"];

pub(super) fn now() -> jiff::Timestamp {
    let ts = jiff::Timestamp::now();
    ts.round(jiff::Unit::Millisecond).unwrap_or(ts)
}

pub(super) fn cid(state: &SandboxState) -> String {
    state.world().correlation_id()
}

/// A response whose body fails after the status line: the client sees the connection die.
pub(super) fn dropped_connection() -> Response {
    let failing = futures_util::stream::once(async {
        Err::<Bytes, std::io::Error>(std::io::Error::new(
            std::io::ErrorKind::ConnectionAborted,
            "hubspot sandbox dropped the connection (fault injection)",
        ))
    });
    let mut r = Response::new(Body::from_stream(failing));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json;charset=utf-8"),
    );
    r
}

pub(super) fn parse_json(
    state: &SandboxState,
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<Value, Response> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !content_type
        .to_ascii_lowercase()
        .starts_with("application/json")
    {
        let mut b = errors::body(
            format!("Content type '{content_type}' not supported"),
            "VALIDATION_ERROR",
            cid(state),
        );
        b.status = "error".to_owned();
        return Err(errors::respond(StatusCode::UNSUPPORTED_MEDIA_TYPE, b));
    }
    serde_json::from_slice(body).map_err(|e| {
        errors::validation(
            format!(
                "Invalid input JSON on line {}, column {}: {e}",
                e.line(),
                e.column()
            ),
            Vec::new(),
            cid(state),
        )
    })
}

pub(super) fn missing_fields(schema: &str, missing: &[&str], state: &SandboxState) -> Response {
    errors::validation(
        format!(
            "Invalid input JSON: Cannot build {schema}, some of required attributes are not set [{}]",
            missing.join(", ")
        ),
        Vec::new(),
        cid(state),
    )
}

pub(super) fn too_many(n: usize, state: &SandboxState) -> Response {
    errors::validation(
        format!(
            "The maximum number of inputs supported in a batch request is {MAX_INPUTS}. Received {n} inputs."
        ),
        vec![ErrorDetail {
            message: format!("inputs must contain at most {MAX_INPUTS} items"),
            in_: Some("inputs".to_owned()),
            code: Some("TOO_MANY_INPUTS".to_owned()),
            ..Default::default()
        }],
        cid(state),
    )
}

/// The `inputs` array, or HubSpot's refusal (missing, not an array, over 100).
fn inputs<'a>(
    value: &'a Value,
    schema: &str,
    state: &SandboxState,
) -> Result<&'a Vec<Value>, Response> {
    let inputs = value
        .get("inputs")
        .and_then(Value::as_array)
        .ok_or_else(|| missing_fields(schema, &["inputs"], state))?;
    if inputs.len() > MAX_INPUTS {
        return Err(too_many(inputs.len(), state));
    }
    Ok(inputs)
}

pub(super) fn as_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Null => Some(String::new()),
        _ => None,
    }
}

pub(super) fn properties_of(input: &Value) -> Option<BTreeMap<String, String>> {
    input
        .get("properties")?
        .as_object()?
        .iter()
        .map(|(k, v)| as_text(v).map(|t| (k.clone(), t)))
        .collect()
}

/// HubSpot's rule of thumb for email: one @, something before it, a dotted domain after it.
fn valid_email(s: &str) -> bool {
    let s = s.trim();
    let Some((local, domain)) = s.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && !domain.contains('@')
        && !s.chars().any(char::is_whitespace)
        && domain.contains('.')
        && domain.split('.').all(|p| !p.is_empty())
}

/// HubSpot's whole-batch answer for bad property values: a JSON list inside the message.
pub(super) fn invalid_properties(
    problems: Vec<(String, &str, String)>,
    state: &SandboxState,
) -> Response {
    let listed: Vec<Value> = problems
        .iter()
        .map(|(name, code, message)| {
            json!({"isValid": false, "message": message, "error": code, "name": name,
                   "localizedErrorMessage": message})
        })
        .collect();
    let details = problems
        .iter()
        .map(|(name, code, message)| ErrorDetail {
            message: message.clone(),
            code: Some((*code).to_owned()),
            context: BTreeMap::from([("propertyName".to_owned(), vec![name.clone()])]),
            ..Default::default()
        })
        .collect();
    errors::validation(
        format!("Property values were not valid: {}", Value::Array(listed)),
        details,
        cid(state),
    )
}

fn check_properties<'a>(
    all: impl Iterator<Item = &'a BTreeMap<String, String>>,
    state: &SandboxState,
) -> Result<(), Response> {
    let options = state.options();
    let mut problems = Vec::new();
    let mut reported = HashSet::new();
    for props in all {
        for (name, value) in props {
            let known = STANDARD_PROPERTIES.contains(&name.as_str())
                || options.custom_properties.contains(name)
                || options.unique_properties.contains(name);
            let read_only = READ_ONLY_PROPERTIES.iter().any(|(n, ..)| n == name);
            if read_only && !SYSTEM_PROPERTIES.contains(&name.as_str()) {
                if reported.insert(name.clone()) {
                    problems.push((
                        name.clone(),
                        "READ_ONLY_VALUE",
                        format!("{name} is a read only property; its value cannot be set."),
                    ));
                }
            } else if !known {
                if reported.insert(name.clone()) {
                    problems.push((
                        name.clone(),
                        "PROPERTY_DOESNT_EXIST",
                        format!("Property \"{name}\" does not exist"),
                    ));
                }
            } else if name == "email" && !value.is_empty() && !valid_email(value) {
                problems.push((
                    name.clone(),
                    "INVALID_EMAIL",
                    format!("Email address {value} is invalid"),
                ));
            }
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(invalid_properties(problems, state))
    }
}

struct UpsertIn {
    id: String,
    id_property: String,
    properties: BTreeMap<String, String>,
    trace: Option<String>,
}

fn normalise(prop: &str, value: &str) -> String {
    if prop == "email" {
        value.trim().to_lowercase()
    } else {
        value.to_owned()
    }
}

impl World {
    fn find(&self, id_property: &str, id: &str) -> Option<u64> {
        match id_property {
            "hs_object_id" => id.parse().ok().filter(|n| self.contacts.contains_key(n)),
            "email" => self.by_email.get(&normalise("email", id)).copied(),
            prop => self
                .contacts
                .iter()
                .find(|(_, c)| c.properties.get(prop).is_some_and(|v| v == id))
                .map(|(n, _)| *n),
        }
    }

    /// Apply a create or update; HubSpot clears a property written as "".
    fn write(
        &mut self,
        existing: Option<u64>,
        mut properties: BTreeMap<String, String>,
        at: jiff::Timestamp,
    ) -> Result<(u64, bool), String> {
        if let Some(email) = properties.get_mut("email") {
            *email = normalise("email", email);
            if let Some(other) = self.by_email.get(email.as_str())
                && Some(*other) != existing
            {
                return Err(format!("Contact already exists. Existing ID: {other}"));
            }
        }
        let (number, created) = match existing {
            Some(n) => (n, false),
            None => {
                let n = self.next_id;
                self.next_id += 1;
                let contact = Contact {
                    id: n.to_string(),
                    properties: BTreeMap::from([
                        ("hs_object_id".to_owned(), n.to_string()),
                        ("createdate".to_owned(), at.to_string()),
                    ]),
                    created_at: at,
                    updated_at: at,
                    writes: 0,
                };
                self.contacts.insert(n, contact);
                (n, true)
            }
        };
        let Some(contact) = self.contacts.get_mut(&number) else {
            return Err("contact vanished".to_owned());
        };
        let old_email = contact.properties.get("email").cloned();
        for (k, v) in properties {
            if SYSTEM_PROPERTIES.contains(&k.as_str()) {
                continue;
            }
            if v.is_empty() {
                contact.properties.remove(&k);
            } else {
                contact.properties.insert(k, v);
            }
        }
        contact
            .properties
            .insert("lastmodifieddate".to_owned(), at.to_string());
        contact.updated_at = at;
        contact.writes += 1;
        let new_email = contact.properties.get("email").cloned();
        if old_email != new_email {
            if let Some(old) = old_email {
                self.by_email.remove(&old);
            }
            if let Some(new) = new_email {
                self.by_email.insert(new, number);
            }
        }
        Ok((number, created))
    }

    fn result(&self, number: u64, new: bool, trace: Option<String>) -> Option<UpsertResult> {
        let c = self.contacts.get(&number)?;
        Some(UpsertResult {
            id: c.id.clone(),
            properties: c
                .properties
                .iter()
                .map(|(k, v)| (k.clone(), Some(v.clone())))
                .collect(),
            created_at: c.created_at.to_string(),
            updated_at: c.updated_at.to_string(),
            archived: false,
            new,
            object_write_trace_id: trace,
        })
    }
}

fn parse_upsert_inputs(list: &[Value], state: &SandboxState) -> Result<Vec<UpsertIn>, Response> {
    let options = state.options();
    let mut parsed = Vec::with_capacity(list.len());
    for input in list {
        let id = input.get("id").and_then(as_text).filter(|s| !s.is_empty());
        let properties = properties_of(input);
        let mut missing = Vec::new();
        if id.is_none() {
            missing.push("id");
        }
        if properties.is_none() {
            missing.push("properties");
        }
        let (Some(id), Some(properties)) = (id, properties) else {
            return Err(missing_fields(
                "SimplePublicObjectBatchInputUpsert",
                &missing,
                state,
            ));
        };
        let id_property = input
            .get("idProperty")
            .and_then(Value::as_str)
            .unwrap_or("hs_object_id")
            .to_owned();
        let usable = id_property == "email"
            || id_property == "hs_object_id"
            || options.unique_properties.contains(&id_property);
        if !usable {
            return Err(errors::validation(
                format!(
                    "Property \"{id_property}\" is not a unique identifier property for object type CONTACT"
                ),
                vec![ErrorDetail {
                    message: format!("{id_property} does not have unique values"),
                    in_: Some("idProperty".to_owned()),
                    ..Default::default()
                }],
                cid(state),
            ));
        }
        let trace = input
            .get("objectWriteTraceId")
            .and_then(as_text)
            .filter(|s| !s.is_empty());
        parsed.push(UpsertIn {
            id,
            id_property,
            properties,
            trace,
        });
    }
    Ok(parsed)
}

pub async fn upsert(
    State(state): State<SandboxState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let started = now();
    let step = {
        let mut w = state.world();
        w.stats.upsert_calls += 1;
        w.next_script_step()
    };
    let mut drop_after_write = false;
    if let Some(step) = step {
        if step.drop {
            drop_after_write = true;
        } else if step.status != 200 {
            return errors::for_status(step.status, step.retry_after, cid(&state));
        }
    }
    let value = match parse_json(&state, &headers, &body) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let list = match value.get("inputs").and_then(Value::as_array) {
        Some(list) => {
            let mut w = state.world();
            w.stats.inputs_received += list.len() as u64;
            w.stats.batch_sizes.push(list.len());
            drop(w);
            match inputs(
                &value,
                "BatchInputSimplePublicObjectBatchInputUpsert",
                &state,
            ) {
                Ok(list) => list,
                Err(r) => return r,
            }
        }
        None => {
            return missing_fields(
                "BatchInputSimplePublicObjectBatchInputUpsert",
                &["inputs"],
                &state,
            );
        }
    };
    let parsed = match parse_upsert_inputs(list, &state) {
        Ok(p) => p,
        Err(r) => return r,
    };
    // The id is a property value too: an email id must be a valid email.
    let with_ids: Vec<BTreeMap<String, String>> = parsed
        .iter()
        .map(|i| {
            let mut p = i.properties.clone();
            if i.id_property != "hs_object_id" {
                p.entry(i.id_property.clone())
                    .or_insert_with(|| i.id.clone());
            }
            p
        })
        .collect();
    if let Err(r) = check_properties(with_ids.iter(), &state) {
        return r;
    }
    let mut seen = BTreeSet::new();
    let mut duplicates = Vec::new();
    for i in &parsed {
        let key = (i.id_property.clone(), normalise(&i.id_property, &i.id));
        if !seen.insert(key) {
            duplicates.push(i.id.clone());
        }
    }
    if !duplicates.is_empty() {
        return errors::validation(
            format!(
                "Duplicate IDs found in batch input: [{}]. IDs must be unique",
                duplicates.join(", ")
            ),
            Vec::new(),
            cid(&state),
        );
    }

    let at = now();
    let mut response = UpsertResponse {
        status: "COMPLETE".to_owned(),
        started_at: started.to_string(),
        ..Default::default()
    };
    let drop_now = {
        let mut w = state.world();
        let item_failure_rate = w.faults.item_failure_rate;
        for (input, mut properties) in parsed.into_iter().zip(with_ids) {
            if w.roll(item_failure_rate) {
                response.errors.push(errors::item_error(
                    "VALIDATION_ERROR",
                    "Property values were not valid (sandbox: injected failure for this input)",
                    input.trace.as_deref(),
                    &input.id,
                ));
                continue;
            }
            if input.id_property == "email" {
                properties.insert("email".to_owned(), normalise("email", &input.id));
            }
            let existing = w.find(&input.id_property, &input.id);
            if existing.is_none() && input.id_property == "hs_object_id" {
                response.errors.push(errors::item_error(
                    "OBJECT_NOT_FOUND",
                    "No contact with this id exists; upserts by object id only update",
                    input.trace.as_deref(),
                    &input.id,
                ));
                continue;
            }
            match w.write(existing, properties, at) {
                Ok((number, created)) => {
                    if let Some(r) = w.result(number, created, input.trace.clone()) {
                        response.results.push(r);
                    }
                }
                Err(message) => response.errors.push(errors::item_error(
                    "CONFLICT",
                    message,
                    input.trace.as_deref(),
                    &input.id,
                )),
            }
        }
        let drop_now = drop_after_write || {
            let rate = w.faults.drop_rate;
            w.roll(rate)
        };
        if drop_now {
            w.stats.drops += 1;
        }
        drop_now
    };
    if drop_now {
        return dropped_connection();
    }
    response.completed_at = now().to_string();
    if response.errors.is_empty() {
        (StatusCode::OK, Json(response)).into_response()
    } else {
        response.num_errors = Some(u32::try_from(response.errors.len()).unwrap_or(u32::MAX));
        (StatusCode::MULTI_STATUS, Json(response)).into_response()
    }
}

pub async fn create(
    State(state): State<SandboxState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let started = now();
    let value = match parse_json(&state, &headers, &body) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let list = match inputs(&value, "BatchInputSimplePublicObjectInputForCreate", &state) {
        Ok(l) => l,
        Err(r) => return r,
    };
    let mut all = Vec::with_capacity(list.len());
    for input in list {
        match properties_of(input) {
            Some(p) => all.push((p, input.get("objectWriteTraceId").and_then(as_text))),
            None => {
                return missing_fields("SimplePublicObjectInputForCreate", &["properties"], &state);
            }
        }
    }
    if let Err(r) = check_properties(all.iter().map(|(p, _)| p), &state) {
        return r;
    }
    let at = now();
    let (results, drop_now) = {
        let mut w = state.world();
        // HubSpot reports only the first existing contact and creates nothing.
        let mut in_batch = HashSet::new();
        for (props, _) in &all {
            if let Some(email) = props
                .get("email")
                .map(|e| normalise("email", e))
                .filter(|e| !e.is_empty())
            {
                if let Some(existing) = w.by_email.get(&email) {
                    let b = errors::body(
                        format!("Contact already exists. Existing ID: {existing}"),
                        "CONFLICT",
                        w.correlation_id(),
                    );
                    return errors::respond(StatusCode::CONFLICT, b);
                }
                if !in_batch.insert(email) {
                    let c = w.correlation_id();
                    drop(w);
                    return errors::validation(
                        "Duplicate email values found in batch input; each contact's email must be unique",
                        Vec::new(),
                        c,
                    );
                }
            }
        }
        let mut results = Vec::new();
        for (props, trace) in all {
            match w.write(None, props, at) {
                Ok((n, _)) => {
                    if let Some(mut r) = w.result(n, true, trace) {
                        r.new = true;
                        results.push(r);
                    }
                }
                Err(message) => {
                    let b = errors::body(message, "CONFLICT", w.correlation_id());
                    return errors::respond(StatusCode::CONFLICT, b);
                }
            }
        }
        let rate = w.faults.drop_rate;
        let drop_now = w.roll(rate);
        if drop_now {
            w.stats.drops += 1;
        }
        (results, drop_now)
    };
    if drop_now {
        return dropped_connection();
    }
    let results: Vec<Value> = results
        .into_iter()
        .map(|r| {
            json!({"id": r.id, "properties": r.properties, "createdAt": r.created_at,
                   "updatedAt": r.updated_at, "archived": false,
                   "objectWriteTraceId": r.object_write_trace_id})
        })
        .collect();
    (
        StatusCode::CREATED,
        Json(json!({"status": "COMPLETE", "results": results,
                    "startedAt": started.to_string(), "completedAt": now().to_string()})),
    )
        .into_response()
}

/// `SimplePublicObject` with the requested properties (HubSpot's defaults when none asked).
fn public_object(c: &Contact, wanted: &[String]) -> Value {
    let mut props = serde_json::Map::new();
    let defaults: Vec<String>;
    let names: &[String] = if wanted.is_empty() {
        defaults = DEFAULT_READ_PROPERTIES
            .iter()
            .map(|s| (*s).to_owned())
            .collect();
        &defaults
    } else {
        wanted
    };
    for name in names
        .iter()
        .map(String::as_str)
        .chain(SYSTEM_PROPERTIES.iter().copied())
    {
        props.insert(
            name.to_owned(),
            c.properties
                .get(name)
                .map_or(Value::Null, |v| Value::String(v.clone())),
        );
    }
    json!({"id": c.id, "properties": props, "createdAt": c.created_at.to_string(),
           "updatedAt": c.updated_at.to_string(), "archived": false})
}

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

pub(super) fn wanted_properties(pairs: &[(String, String)]) -> Vec<String> {
    pairs
        .iter()
        .filter(|(k, _)| k == "properties")
        .flat_map(|(_, v)| {
            v.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .collect()
}

pub async fn read(State(state): State<SandboxState>, headers: HeaderMap, body: Bytes) -> Response {
    let started = now();
    state.world().stats.read_calls += 1;
    let value = match parse_json(&state, &headers, &body) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let list = match inputs(&value, "BatchReadInputSimplePublicObjectId", &state) {
        Ok(l) => l,
        Err(r) => return r,
    };
    let id_property = value
        .get("idProperty")
        .and_then(Value::as_str)
        .unwrap_or("hs_object_id")
        .to_owned();
    let wanted: Vec<String> = value
        .get("properties")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    let w = state.world();
    let mut results = Vec::new();
    let mut missing = Vec::new();
    for input in list {
        let Some(id) = input.get("id").and_then(as_text) else {
            drop(w);
            return missing_fields("SimplePublicObjectId", &["id"], &state);
        };
        match w.find(&id_property, &id).and_then(|n| w.contacts.get(&n)) {
            Some(c) => results.push(public_object(c, &wanted)),
            None => missing.push(id),
        }
    }
    drop(w);
    let mut body = json!({"status": "COMPLETE", "results": results,
                          "startedAt": started.to_string(), "completedAt": now().to_string()});
    if missing.is_empty() {
        return (StatusCode::OK, Json(body)).into_response();
    }
    let error = StandardError {
        status: "error".to_owned(),
        category: "OBJECT_NOT_FOUND".to_owned(),
        message: "Could not get some CONTACT objects, they may be deleted or not exist. Check that ids are valid.".to_owned(),
        context: BTreeMap::from([("ids".to_owned(), missing)]),
        ..Default::default()
    };
    body["errors"] = json!([error]);
    body["numErrors"] = json!(1);
    (StatusCode::MULTI_STATUS, Json(body)).into_response()
}

/// `POST /crm/v3/objects/contacts/gdpr-delete` (`PublicGdprDeleteInput`): the contact is gone for
/// good, 204 without a body. An unknown id answers 404. (HubSpot also blocklists an email it
/// doesn't know when `idProperty` is `email`; the sandbox just answers 404.)
pub async fn gdpr_delete(
    State(state): State<SandboxState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    state.world().stats.gdpr_delete_calls += 1;
    let value = match parse_json(&state, &headers, &body) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let Some(object_id) = value.get("objectId").and_then(as_text) else {
        return missing_fields("PublicGdprDeleteInput", &["objectId"], &state);
    };
    let id_property = value
        .get("idProperty")
        .and_then(Value::as_str)
        .unwrap_or("hs_object_id")
        .to_owned();
    let mut w = state.world();
    let Some(n) = w.find(&id_property, &object_id) else {
        drop(w);
        return errors::not_found(cid(&state));
    };
    if let Some(contact) = w.contacts.remove(&n)
        && let Some(email) = contact.properties.get("email")
    {
        let email = email.clone();
        w.by_email.remove(&email);
    }
    w.stats.gdpr_deleted += 1;
    StatusCode::NO_CONTENT.into_response()
}

pub async fn get_one(
    State(state): State<SandboxState>,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Response {
    let pairs = query_pairs(raw);
    let id_property = pairs
        .iter()
        .find(|(k, _)| k == "idProperty")
        .map_or("hs_object_id", |(_, v)| v.as_str());
    let wanted = wanted_properties(&pairs);
    let found = {
        let w = state.world();
        w.find(id_property, &id)
            .and_then(|n| w.contacts.get(&n))
            .map(|c| public_object(c, &wanted))
    };
    match found {
        Some(obj) => (StatusCode::OK, Json(obj)).into_response(),
        None => errors::not_found(cid(&state)),
    }
}

pub async fn list(State(state): State<SandboxState>, RawQuery(raw): RawQuery) -> Response {
    let pairs = query_pairs(raw);
    let get = |name: &str| {
        pairs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let limit = match get("limit").map(str::parse::<usize>) {
        None => 10,
        Some(Ok(n)) if (1..=100).contains(&n) => n,
        Some(_) => {
            return errors::validation(
                "limit must be a number between 1 and 100",
                vec![ErrorDetail {
                    message: "limit must be a number between 1 and 100".to_owned(),
                    in_: Some("limit".to_owned()),
                    ..Default::default()
                }],
                cid(&state),
            );
        }
    };
    let after = match get("after").map(str::parse::<u64>) {
        None => 0,
        Some(Ok(n)) => n,
        Some(Err(_)) => {
            return errors::validation(
                "after must be a paging cursor from paging.next.after",
                Vec::new(),
                cid(&state),
            );
        }
    };
    let wanted = wanted_properties(&pairs);
    let w = state.world();
    let mut page = w.contacts.range(after..);
    let results: Vec<Value> = page
        .by_ref()
        .take(limit)
        .map(|(_, c)| public_object(c, &wanted))
        .collect();
    let next = page.next().map(|(n, _)| n.to_string());
    drop(w);
    let mut body = json!({ "results": results });
    if let Some(after) = next {
        body["paging"] = json!({"next": {"after": after, "link": format!("?after={after}")}});
    }
    (StatusCode::OK, Json(body)).into_response()
}

#[cfg(test)]
mod tests {
    use super::valid_email;

    #[test]
    fn email_rule_of_thumb() {
        assert!(valid_email("jane@example.com"));
        assert!(valid_email("Jane.Doe+x@sub.example.co"));
        assert!(!valid_email("jane"));
        assert!(!valid_email("jane@localhost"));
        assert!(!valid_email("ja ne@example.com"));
        assert!(!valid_email("a@b@example.com"));
        assert!(!valid_email("@example.com"));
    }
}
