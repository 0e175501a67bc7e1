//! The sandbox's write side and the reads `verify` makes: member upsert, member read, tags,
//! permanent delete, the audience and its merge fields. Every endpoint passes
//! [`super::http::enter`] first (connection limit, faults, credentials).

use std::collections::HashMap;

use axum::{
    body::Bytes,
    extract::{Path, Query, RawQuery, State},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
};
use serde_json::{Map, Value, json};

use crate::sandbox::ReceivedWriteback;

use super::{
    LIST_ID, MailchimpState, Member, WriteCall,
    http::{Admitted, dropped, enter, invalid, json_answer, not_found, problem},
    md5::subscriber_hash,
    members::member_json,
    whole_seconds,
};

/// Statuses a member may be given.
const STATUSES: &[&str] = &[
    "subscribed",
    "unsubscribed",
    "cleaned",
    "pending",
    "transactional",
];
/// The sandbox audience's merge fields: (tag, name, type).
const MERGE_FIELDS: &[(&str, &str, &str)] = &[
    ("FNAME", "First Name", "text"),
    ("LNAME", "Last Name", "text"),
    ("PHONE", "Phone Number", "phone"),
    ("BIRTHDAY", "Birthday", "birthday"),
    ("ADDRESS", "Address", "address"),
    ("UTM_SOURCE", "UTM source", "text"),
];
const MAX_TAG_LEN: usize = 100;

fn now_ms() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}

/// The member a path segment names: its subscriber hash, or the email itself (Mailchimp takes
/// both).
fn member_key(segment: &str) -> String {
    if segment.contains('@') {
        subscriber_hash(segment)
    } else {
        segment.trim().to_ascii_lowercase()
    }
}

/// Mailchimp's own check is stricter and secret; this one refuses what is plainly no address.
fn plausible_email(email: &str) -> bool {
    let Some((local, domain)) = email.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && !domain.contains('@')
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !email.chars().any(char::is_whitespace)
}

fn record(state: &MailchimpState, method: &str, path: String, query: &str, body: &Value) {
    state.world().writes.push(WriteCall {
        method: method.to_owned(),
        path,
        query: query.to_owned(),
        body: body.clone(),
    });
}

/// The gate plus the audience check shared by every endpoint.
async fn admit(
    state: &MailchimpState,
    headers: &HeaderMap,
    list_id: &str,
) -> Result<Admitted, Response> {
    let admitted = enter(state, headers).await?;
    if list_id != LIST_ID {
        return Err(not_found(admitted.instance));
    }
    Ok(admitted)
}

#[allow(clippy::result_large_err, reason = "the Err is the HTTP answer itself")]
fn parse_object(body: &[u8], instance: String) -> Result<Map<String, Value>, Response> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(o)) => Ok(o),
        _ => Err(problem(
            400,
            "Invalid Resource",
            "The resource submitted could not be validated. The request body is not a JSON object.",
            instance,
            None,
        )),
    }
}

pub async fn get_list(
    State(state): State<MailchimpState>,
    Path(list_id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let a = match admit(&state, &headers, &list_id).await {
        Ok(a) => a,
        Err(answer) => return answer,
    };
    let count = state.world().members.len();
    json_answer(
        &json!({"id": LIST_ID, "web_id": 1, "name": "tandem sandbox audience",
                "stats": {"member_count": count}, "_links": []}),
        a.drop_after,
    )
}

pub async fn merge_fields(
    State(state): State<MailchimpState>,
    Path(list_id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let a = match admit(&state, &headers, &list_id).await {
        Ok(a) => a,
        Err(answer) => return answer,
    };
    let required = state.world().required_merge_fields.clone();
    let fields: Vec<Value> = MERGE_FIELDS
        .iter()
        .enumerate()
        .map(|(i, (tag, name, kind))| {
            json!({"merge_id": i + 1, "tag": tag, "name": name, "type": kind,
                   "required": required.iter().any(|r| r == tag), "default_value": "",
                   "public": true, "display_order": i + 1, "list_id": LIST_ID})
        })
        .collect();
    let total = fields.len();
    json_answer(
        &json!({"merge_fields": fields, "list_id": LIST_ID, "total_items": total, "_links": []}),
        a.drop_after,
    )
}

pub async fn get_member(
    State(state): State<MailchimpState>,
    Path((list_id, segment)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let a = match admit(&state, &headers, &list_id).await {
        Ok(a) => a,
        Err(answer) => return answer,
    };
    let id = member_key(&segment);
    let member = state.world().members.iter().find(|m| m.id == id).cloned();
    match member {
        Some(m) => json_answer(&member_json(&m), a.drop_after),
        None => not_found(a.instance),
    }
}

pub async fn upsert_member(
    State(state): State<MailchimpState>,
    Path((list_id, segment)): Path<(String, String)>,
    RawQuery(raw_query): RawQuery,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let a = match admit(&state, &headers, &list_id).await {
        Ok(a) => a,
        Err(answer) => return answer,
    };
    let instance = a.instance.clone();
    let body = match parse_object(&body, instance.clone()) {
        Ok(b) => b,
        Err(answer) => return answer,
    };
    record(
        &state,
        "PUT",
        format!("/lists/{list_id}/members/{segment}"),
        raw_query.as_deref().unwrap_or(""),
        &Value::Object(body.clone()),
    );
    let Some(email) = body
        .get("email_address")
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|e| !e.is_empty())
    else {
        return invalid("email_address", "This value should not be blank.", instance);
    };
    if !plausible_email(email) {
        return problem(
            400,
            "Invalid Resource",
            &format!("{email} looks fake or invalid, please enter a real email address."),
            instance,
            None,
        );
    }
    let id = subscriber_hash(email);
    if member_key(&segment) != id {
        return invalid(
            "email_address",
            "The email address does not match the subscriber hash in the URL.",
            instance,
        );
    }
    let status_of = |key: &str| body.get(key).and_then(Value::as_str).map(str::to_owned);
    for key in ["status_if_new", "status"] {
        if let Some(s) = status_of(key)
            && !STATUSES.contains(&s.as_str())
        {
            return invalid(
                key,
                &format!("Must be one of {}.", STATUSES.join(", ")),
                instance,
            );
        }
    }
    let merges: Map<String, Value> = body
        .get("merge_fields")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let merge = |tag: &str| {
        merges
            .get(tag)
            .and_then(Value::as_str)
            .map(str::trim)
            .map(str::to_owned)
    };
    let skip = q.get("skip_merge_validation").is_some_and(|v| v == "true")
        || body.get("skip_merge_validation") == Some(&Value::Bool(true));
    let mut w = state.world();
    if w.forgotten.contains(&id) {
        return problem(
            400,
            "Forgotten Email Not Subscribed",
            &format!(
                "{email} was permanently deleted and cannot be re-imported. The contact must re-subscribe to get back on the list."
            ),
            instance,
            None,
        );
    }
    let existing = w.members.iter().position(|m| m.id == id);
    if existing.is_none() && status_of("status_if_new").is_none() && status_of("status").is_none() {
        return invalid(
            "status_if_new",
            "This value should not be blank when the member is new.",
            instance,
        );
    }
    if !skip {
        let known = |tag: &str| match existing.map(|i| &w.members[i]) {
            Some(m) if tag == "FNAME" => !m.first_name.is_empty(),
            Some(m) if tag == "LNAME" => !m.last_name.is_empty(),
            _ => false,
        };
        if let Some(tag) = w
            .required_merge_fields
            .iter()
            .find(|t| merge(t).is_none_or(|v| v.is_empty()) && !known(t))
        {
            return problem(
                400,
                "Invalid Resource",
                "Your merge fields were invalid.",
                instance,
                Some(json!([{"field": tag, "message": "Please enter a value"}])),
            );
        }
    }
    let p = w.faults.item_failure_rate;
    if w.roll(p) {
        return problem(
            400,
            "Invalid Resource",
            "Your merge fields were invalid.",
            instance,
            Some(json!([{"field": "FNAME", "message": "Please enter a value"}])),
        );
    }
    let now = whole_seconds(now_ms());
    w.seq += 1;
    let seq = w.seq;
    let member = match existing {
        Some(i) => {
            let m = &mut w.members[i];
            if let Some(s) = status_of("status") {
                m.status = s;
            }
            if let Some(f) = merge("FNAME") {
                m.first_name = f;
            }
            if let Some(l) = merge("LNAME") {
                m.last_name = l;
            }
            m.last_changed_ms = now;
            m.seq = seq;
            m.clone()
        }
        None => {
            // `tags` in the body is honoured on create only, as Mailchimp does.
            let tags: Vec<String> = body
                .get("tags")
                .and_then(Value::as_array)
                .map(|ts| {
                    ts.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default();
            let m = Member {
                id: id.clone(),
                email: email.to_owned(),
                first_name: merge("FNAME").unwrap_or_default(),
                last_name: merge("LNAME").unwrap_or_default(),
                status: status_of("status")
                    .or_else(|| status_of("status_if_new"))
                    .unwrap_or_default(),
                tags,
                signup_ms: now,
                last_changed_ms: now,
                seq,
            };
            w.members.push(m.clone());
            m
        }
    };
    drop(w);
    json_answer(&member_json(&member), a.drop_after)
}

pub async fn tags(
    State(state): State<MailchimpState>,
    Path((list_id, segment)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let a = match admit(&state, &headers, &list_id).await {
        Ok(a) => a,
        Err(answer) => return answer,
    };
    let instance = a.instance.clone();
    let body = match parse_object(&body, instance.clone()) {
        Ok(b) => b,
        Err(answer) => return answer,
    };
    record(
        &state,
        "POST",
        format!("/lists/{list_id}/members/{segment}/tags"),
        "",
        &Value::Object(body.clone()),
    );
    let Some(list) = body.get("tags").and_then(Value::as_array) else {
        return invalid(
            "tags",
            "Schema describes array, NULL found instead",
            instance,
        );
    };
    let mut changes: Vec<(String, bool)> = Vec::new();
    for (i, t) in list.iter().enumerate() {
        let name = t.get("name").and_then(Value::as_str).map(str::trim);
        let Some(name) = name.filter(|n| !n.is_empty() && n.chars().count() <= MAX_TAG_LEN) else {
            return invalid(
                &format!("tags.item:{i}.name"),
                "Tag names have 1 to 100 characters.",
                instance,
            );
        };
        let active = match t.get("status").and_then(Value::as_str) {
            Some("active") => true,
            Some("inactive") => false,
            _ => {
                return invalid(
                    &format!("tags.item:{i}.status"),
                    "Must be one of active, inactive.",
                    instance,
                );
            }
        };
        changes.push((name.to_owned(), active));
    }
    let id = member_key(&segment);
    {
        let mut w = state.world();
        let Some(i) = w.members.iter().position(|m| m.id == id) else {
            return not_found(instance);
        };
        let mut seen = Vec::new();
        for (name, active) in changes {
            let tags = &mut w.members[i].tags;
            let at = tags.iter().position(|t| t.eq_ignore_ascii_case(&name));
            // A tag already in the asked state changes nothing, and is not reported again.
            let changed = match (active, at) {
                (true, None) => {
                    tags.push(name.clone());
                    true
                }
                (false, Some(pos)) => {
                    tags.remove(pos);
                    true
                }
                _ => false,
            };
            if changed {
                seen.push(ReceivedWriteback {
                    key: format!("{id}:{name}"),
                    name,
                    value: None,
                    currency: None,
                    adjustment: (!active).then(|| "inactive".to_owned()),
                    identifiers: vec!["subscriber_hash".to_owned()],
                });
            }
        }
        w.received.extend(seen);
    }
    if a.drop_after {
        return dropped(b"{}".to_vec());
    }
    StatusCode::NO_CONTENT.into_response()
}

pub async fn delete_permanent(
    State(state): State<MailchimpState>,
    Path((list_id, segment)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let a = match admit(&state, &headers, &list_id).await {
        Ok(a) => a,
        Err(answer) => return answer,
    };
    record(
        &state,
        "POST",
        format!("/lists/{list_id}/members/{segment}/actions/delete-permanent"),
        "",
        &Value::Null,
    );
    let id = member_key(&segment);
    {
        let mut w = state.world();
        let Some(i) = w.members.iter().position(|m| m.id == id) else {
            return not_found(a.instance);
        };
        w.members.remove(i);
        w.forgotten.push(id);
    }
    if a.drop_after {
        return dropped(b"{}".to_vec());
    }
    StatusCode::NO_CONTENT.into_response()
}
