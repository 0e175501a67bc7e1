//! The deal endpoints: `GET /api/v2/deals` (filters, `updated_since`/`updated_until`, sorting,
//! `include_fields`, `ids`, cursor paging up to 500), `GET` and `PATCH /api/v2/deals/{id}`
//! (schema-checked like Pipedrive: unknown keys, unknown custom field keys, value types and the
//! 255-character `varchar`), v1 `dealFields` and a deal's v1 `participants`.

use std::collections::BTreeMap;

use axum::{
    body::Bytes,
    extract::{Path, RawQuery, State},
    response::{IntoResponse, Json, Response},
};
use serde_json::{Map, Value, json};

use super::{
    SandboxState,
    deal_state::{STAGES, StoredDeal},
    errors,
    persons::{ok, param, query_pairs},
    state::{World, now},
};

/// Values `include_fields` takes on `GET /api/v2/deals`.
const INCLUDE_FIELDS: &[&str] = &[
    "next_activity_id",
    "last_activity_id",
    "first_won_time",
    "products_count",
    "files_count",
    "notes_count",
    "followers_count",
    "email_messages_count",
    "activities_count",
    "done_activities_count",
    "undone_activities_count",
    "participants_count",
    "last_incoming_mail_time",
    "last_outgoing_mail_time",
    "smart_bcc_email",
];

/// Keys `PATCH /api/v2/deals/{id}` takes (UpdateDealRequest).
const UPDATE_KEYS: &[&str] = &[
    "title",
    "owner_id",
    "person_id",
    "org_id",
    "pipeline_id",
    "stage_id",
    "value",
    "currency",
    "add_time",
    "update_time",
    "stage_change_time",
    "is_deleted",
    "is_archived",
    "archive_time",
    "status",
    "probability",
    "lost_reason",
    "visible_to",
    "close_time",
    "won_time",
    "lost_time",
    "expected_close_date",
    "label_ids",
    "custom_fields",
];

/// Deal fields every company has (key, name, field_type, edit_flag).
const STANDARD_FIELDS: &[(&str, &str, &str, bool)] = &[
    ("title", "Title", "varchar", true),
    ("value", "Value", "monetary", true),
    ("currency", "Currency", "varchar_options", true),
    ("person_id", "Contact person", "people", true),
    ("org_id", "Organization", "org", true),
    ("pipeline_id", "Pipeline", "double", true),
    ("stage_id", "Stage", "stage", true),
    ("status", "Status", "status", true),
    ("user_id", "Owner", "user", true),
    ("add_time", "Deal created", "date", false),
    ("update_time", "Update time", "date", false),
    ("won_time", "Won time", "date", false),
    ("lost_time", "Lost time", "date", false),
    ("close_time", "Deal closed on", "date", false),
    ("expected_close_date", "Expected close date", "date", true),
    ("id", "ID", "int", false),
];

fn time(t: Option<jiff::Timestamp>) -> Value {
    t.map_or(Value::Null, |t| Value::String(t.to_string()))
}

/// A deal as API v2 shows it.
pub(super) fn deal_json(d: &StoredDeal, include: &[&str]) -> Value {
    let value = d
        .value
        .as_deref()
        .and_then(|v| serde_json::from_str::<serde_json::Number>(v.trim()).ok())
        .map_or(json!(0), Value::Number);
    let mut v = json!({
        "id": d.id, "title": d.title, "creator_user_id": 1, "owner_id": 1, "value": value,
        "person_id": d.person_id, "org_id": null, "stage_id": d.stage_id, "pipeline_id": d.pipeline_id,
        "currency": d.currency, "add_time": d.add_time.to_string(), "update_time": d.update_time.to_string(),
        "stage_change_time": time(d.stage_change_time), "is_deleted": false, "is_archived": false,
        "archive_time": null, "status": d.status, "probability": null, "lost_reason": null,
        "visible_to": 3, "close_time": time(d.close_time), "won_time": time(d.won_time),
        "lost_time": time(d.lost_time), "expected_close_date": null, "label_ids": [],
        "origin": "ManuallyCreated", "channel": null, "channel_id": null,
        "custom_fields": d.custom_fields,
    });
    if include.contains(&"participants_count") {
        v["participants_count"] = json!(d.participants.len());
    }
    if include.contains(&"first_won_time") {
        v["first_won_time"] = time(d.won_time);
    }
    v
}

#[allow(clippy::result_large_err, reason = "the Err is the HTTP answer itself")]
fn parse_time(name: &str, raw: Option<&str>) -> Result<Option<jiff::Timestamp>, Response> {
    match raw.map(|s| s.parse::<jiff::Timestamp>()) {
        None => Ok(None),
        Some(Ok(t)) => Ok(Some(t)),
        Some(Err(_)) => Err(errors::validation(format!(
            "{name}: Invalid RFC3339 date-time"
        ))),
    }
}

#[allow(clippy::result_large_err, reason = "the Err is the HTTP answer itself")]
fn ids_param(raw: &str) -> Result<Vec<u64>, Response> {
    let ids = raw
        .split(',')
        .filter(|s| !s.trim().is_empty())
        .map(|s| s.trim().parse::<u64>())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| errors::validation("ids: Expected a comma-separated list of numbers"))?;
    if ids.len() > 100 {
        return Err(errors::validation(
            "ids: Array must contain at most 100 element(s)",
        ));
    }
    Ok(ids)
}

pub async fn list(State(state): State<SandboxState>, RawQuery(raw): RawQuery) -> Response {
    let pairs = query_pairs(raw);
    match list_inner(&state, &pairs) {
        Ok(r) | Err(r) => r,
    }
}

#[allow(clippy::result_large_err, reason = "the Err is the HTTP answer itself")]
fn list_inner(state: &SandboxState, pairs: &[(String, String)]) -> Result<Response, Response> {
    let limit = match param(pairs, "limit").map(str::parse::<usize>) {
        None => 100,
        Some(Ok(n)) if (1..=500).contains(&n) => n,
        Some(_) => {
            return Err(errors::validation(
                "limit: Number must be between 1 and 500",
            ));
        }
    };
    let sort_by = param(pairs, "sort_by").unwrap_or("id");
    if !matches!(sort_by, "id" | "update_time" | "add_time") {
        return Err(errors::validation(
            "sort_by: Invalid enum value. Expected 'id' | 'update_time' | 'add_time'",
        ));
    }
    let desc = match param(pairs, "sort_direction").unwrap_or("asc") {
        "asc" => false,
        "desc" => true,
        _ => {
            return Err(errors::validation(
                "sort_direction: Invalid enum value. Expected 'asc' | 'desc'",
            ));
        }
    };
    let since = parse_time("updated_since", param(pairs, "updated_since"))?;
    let until = parse_time("updated_until", param(pairs, "updated_until"))?;
    let include: Vec<&str> = param(pairs, "include_fields")
        .map(|f| {
            f.split(',')
                .map(str::trim)
                .filter(|f| !f.is_empty())
                .collect()
        })
        .unwrap_or_default();
    if let Some(bad) = include.iter().find(|f| !INCLUDE_FIELDS.contains(f)) {
        return Err(errors::validation(format!(
            "include_fields: Invalid enum value '{bad}'"
        )));
    }
    let statuses: Vec<&str> = match param(pairs, "status") {
        None => vec!["open", "won", "lost"],
        Some(s) => s.split(',').map(str::trim).collect(),
    };
    if let Some(bad) = statuses
        .iter()
        .find(|s| !matches!(**s, "open" | "won" | "lost" | "deleted"))
    {
        return Err(errors::validation(format!(
            "status: Invalid enum value '{bad}'. Expected 'open' | 'won' | 'lost' | 'deleted'"
        )));
    }
    let number = |name: &str| -> Result<Option<u64>, Response> {
        param(pairs, name)
            .map(|v| {
                v.parse::<u64>()
                    .map_err(|_| errors::validation(format!("{name}: Expected number")))
            })
            .transpose()
    };
    let (pipeline, stage, person) = (
        number("pipeline_id")?,
        number("stage_id")?,
        number("person_id")?,
    );
    let ids = param(pairs, "ids").map(ids_param).transpose()?;
    let offset = match param(pairs, "cursor") {
        None => 0,
        Some(c) => c
            .strip_prefix("ZGVh")
            .and_then(|n| usize::from_str_radix(n, 16).ok())
            .ok_or_else(|| errors::validation("cursor: Invalid cursor"))?,
    };
    let mut w = state.world();
    w.stats.deal_reads += 1;
    let mut all: Vec<&StoredDeal> = w
        .deals
        .values()
        .filter(|d| statuses.contains(&d.status.as_str()))
        .filter(|d| since.is_none_or(|s| d.update_time >= s))
        .filter(|d| until.is_none_or(|u| d.update_time < u))
        .filter(|d| pipeline.is_none_or(|p| d.pipeline_id == p))
        .filter(|d| stage.is_none_or(|s| d.stage_id == s))
        .filter(|d| person.is_none_or(|p| d.participants.contains(&p)))
        .filter(|d| ids.as_ref().is_none_or(|ids| ids.contains(&d.id)))
        .collect();
    all.sort_by_key(|d| match sort_by {
        "update_time" => (d.update_time, d.id),
        "add_time" => (d.add_time, d.id),
        _ => (jiff::Timestamp::UNIX_EPOCH, d.id),
    });
    if desc {
        all.reverse();
    }
    let page: Vec<Value> = all
        .iter()
        .skip(offset)
        .take(limit)
        .map(|d| deal_json(d, &include))
        .collect();
    // Pipedrive's cursors are opaque; this one is an offset, as offset-like as theirs behave.
    let next = (offset + limit < all.len()).then(|| format!("ZGVh{:x}", offset + limit));
    Ok(ok(json!(page), Some(json!({"next_cursor": next}))))
}

pub async fn get_one(State(state): State<SandboxState>, Path(id): Path<String>) -> Response {
    let mut w = state.world();
    w.stats.deal_reads += 1;
    match id.parse::<u64>().ok().and_then(|id| w.deals.get(&id)) {
        Some(d) => ok(deal_json(d, &[]), None),
        None => errors::not_found("Deal"),
    }
}

/// The body checked the way Pipedrive's schema validation does.
#[allow(clippy::result_large_err, reason = "the Err is the HTTP answer itself")]
fn check_body(state: &SandboxState, body: &Bytes) -> Result<Map<String, Value>, Response> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| errors::validation(format!("body: Invalid JSON ({e})")))?;
    let Value::Object(map) = value else {
        return Err(errors::validation("body: Expected object"));
    };
    if let Some(bad) = map.keys().find(|k| !UPDATE_KEYS.contains(&k.as_str())) {
        return Err(errors::validation(format!(
            "body: Unrecognized key(s) in object: '{bad}'"
        )));
    }
    if let Some(stage) = map.get("stage_id")
        && !stage
            .as_u64()
            .is_some_and(|s| STAGES.iter().any(|(id, _)| *id == s))
    {
        return Err(errors::validation("stage_id: Stage not found"));
    }
    if let Some(status) = map.get("status")
        && !matches!(status.as_str(), Some("open" | "won" | "lost"))
    {
        return Err(errors::validation(
            "status: Invalid enum value. Expected 'open' | 'won' | 'lost'",
        ));
    }
    if let Some(custom) = map.get("custom_fields") {
        let Value::Object(custom) = custom else {
            return Err(errors::validation("custom_fields: Expected object"));
        };
        let known = &state.options().deal_custom_fields;
        for (key, v) in custom {
            let Some((_, _, field_type)) = known.iter().find(|(k, _, _)| k == key) else {
                return Err(errors::validation(format!(
                    "custom_fields: Unknown custom field key '{key}'"
                )));
            };
            match (field_type.as_str(), v) {
                (_, Value::Null) => {}
                ("varchar" | "varchar_auto", Value::String(s)) if s.chars().count() > 255 => {
                    return Err(errors::validation(format!(
                        "custom_fields.{key}: String must contain at most 255 character(s)"
                    )));
                }
                ("varchar" | "varchar_auto" | "text", Value::String(_)) => {}
                ("enum" | "double" | "monetary", Value::Number(_)) => {}
                (t, _) => {
                    return Err(errors::validation(format!(
                        "custom_fields.{key}: Invalid value for a field of type {t}"
                    )));
                }
            }
        }
    }
    Ok(map)
}

pub async fn patch(
    State(state): State<SandboxState>,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let Ok(id) = id.parse::<u64>() else {
        return errors::validation("id: Expected number");
    };
    let map = match check_body(&state, &body) {
        Ok(m) => m,
        Err(r) => return r,
    };
    let mut w = state.world();
    w.stats.deal_updates += 1;
    let World { deals, .. } = &mut *w;
    let Some(d) = deals.get_mut(&id) else {
        return errors::not_found("Deal");
    };
    let at = now();
    for (key, v) in map {
        match (key.as_str(), v) {
            ("custom_fields", Value::Object(custom)) => d.custom_fields.extend(custom),
            ("title", Value::String(t)) => d.title = t,
            ("value", v) => d.value = v.as_f64().map(|n| n.to_string()),
            ("currency", Value::String(c)) => d.currency = c,
            ("stage_id", v) => {
                if let Some(s) = v.as_u64() {
                    d.stage_id = s;
                    d.stage_change_time = Some(at);
                }
            }
            ("status", Value::String(s)) => {
                d.close_time = (s != "open").then_some(at);
                d.won_time = (s == "won").then_some(at);
                d.lost_time = (s == "lost").then_some(at);
                d.status = s;
            }
            // Accepted and not modelled.
            _ => {}
        }
    }
    d.update_time = at;
    d.writes += 1;
    ok(deal_json(d, &[]), None)
}

pub async fn deal_fields(State(state): State<SandboxState>, RawQuery(raw): RawQuery) -> Response {
    let pairs = query_pairs(raw);
    let limit = param(&pairs, "limit")
        .and_then(|l| l.parse::<usize>().ok())
        .unwrap_or(100)
        .clamp(1, 500);
    let start = param(&pairs, "start")
        .and_then(|l| l.parse::<usize>().ok())
        .unwrap_or(0);
    state.world().stats.deal_field_reads += 1;
    let custom = state
        .options()
        .deal_custom_fields
        .iter()
        .map(|(k, n, t)| (k.as_str(), n.as_str(), t.as_str(), true));
    let all: Vec<Value> = STANDARD_FIELDS
        .iter()
        .copied()
        .chain(custom)
        .enumerate()
        .map(|(i, (key, name, field_type, edit_flag))| {
            json!({"id": 12_000 + i, "key": key, "name": name, "field_type": field_type,
                   "edit_flag": edit_flag, "bulk_edit_allowed": edit_flag,
                   "mandatory_flag": key == "title", "active_flag": true})
        })
        .collect();
    let more = start + limit < all.len();
    let page: Vec<Value> = all.into_iter().skip(start).take(limit).collect();
    ok(
        json!(page),
        Some(
            json!({"pagination": {"start": start, "limit": limit, "more_items_in_collection": more,
                                   "next_start": more.then_some(start + limit)}}),
        ),
    )
}

/// `GET /api/v1/deals/{id}/participants`: every person on the deal, the main one included.
pub async fn participants(
    State(state): State<SandboxState>,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Response {
    let pairs = query_pairs(raw);
    let limit = param(&pairs, "limit")
        .and_then(|l| l.parse::<usize>().ok())
        .unwrap_or(100)
        .clamp(1, 500);
    let start = param(&pairs, "start")
        .and_then(|l| l.parse::<usize>().ok())
        .unwrap_or(0);
    let mut w = state.world();
    w.stats.participant_reads += 1;
    let Some(d) = id.parse::<u64>().ok().and_then(|id| w.deals.get(&id)) else {
        return errors::not_found("Deal");
    };
    let all: Vec<Value> = d
        .participants
        .iter()
        .enumerate()
        .filter_map(|(i, pid)| {
            let p = w.persons.get(pid)?;
            Some(json!({
                "id": d.id * 1000 + i as u64,
                "person_id": {"active_flag": true, "name": p.name, "email": p.emails, "phone": p.phones,
                              "owner_id": p.owner_id, "value": p.id},
                "add_time": d.add_time.to_string(), "active_flag": true,
                "related_item_data": {"deal_id": d.id, "title": d.title},
            }))
        })
        .collect();
    let more = start + limit < all.len();
    let page: Vec<Value> = all.into_iter().skip(start).take(limit).collect();
    ok(
        json!(page),
        Some(
            json!({"pagination": {"start": start, "limit": limit, "more_items_in_collection": more,
                                   "next_start": more.then_some(start + limit)}}),
        ),
    )
}

/// `GET /__sandbox/deals`: every deal as stored (no auth).
pub async fn inspect(State(state): State<SandboxState>) -> Response {
    Json(state.deals()).into_response()
}

/// For the conformance view: a deal's properties under Pipedrive's names, custom fields by key.
pub(super) fn flat_deal(d: &StoredDeal) -> BTreeMap<String, String> {
    let mut f = BTreeMap::from([
        ("id".to_owned(), d.id.to_string()),
        ("title".to_owned(), d.title.clone()),
        ("pipeline_id".to_owned(), d.pipeline_id.to_string()),
        ("stage_id".to_owned(), d.stage_id.to_string()),
        ("status".to_owned(), d.status.clone()),
        ("currency".to_owned(), d.currency.clone()),
        ("update_time".to_owned(), d.update_time.to_string()),
    ]);
    if let Some(v) = &d.value {
        f.insert("value".to_owned(), v.clone());
    }
    if let Some(p) = d.person_id {
        f.insert("person_id".to_owned(), p.to_string());
    }
    for (k, t) in [
        ("won_time", d.won_time),
        ("lost_time", d.lost_time),
        ("close_time", d.close_time),
    ] {
        if let Some(t) = t {
            f.insert(k.to_owned(), t.to_string());
        }
    }
    for (k, v) in &d.custom_fields {
        match v {
            Value::String(s) => {
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
