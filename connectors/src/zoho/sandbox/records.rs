//! `POST /crm/v8/{module}/upsert` as Zoho documents it: duplicate check on the request's
//! `duplicate_check_fields` (default Email) in order, records applied one after another, one
//! `data[]` entry per record in input order; 200 when all succeeded, 207 when some did, 400 when
//! none did. Also the unauthenticated `GET /__sandbox/records`.

use std::collections::BTreeMap;

use axum::{
    Json,
    body::{Body, Bytes},
    extract::{Path, State},
    http::{StatusCode, header},
    response::{IntoResponse, Response},
};
use serde_json::{Value, json};

use super::{
    SandboxOptions, SandboxState, ZohoRecord, fields,
    state::{World, now, zoho_error, zoho_time},
};
use crate::zoho::{client::MAX_BATCH, limits::upsert_credits, wire::ZohoStatus};

/// A response whose body fails after the status line: the client sees the connection die.
pub(super) fn dropped_connection() -> Response {
    let failing = futures_util::stream::once(async {
        Err::<Bytes, std::io::Error>(std::io::Error::new(
            std::io::ErrorKind::ConnectionAborted,
            "zoho sandbox dropped the connection (fault injection)",
        ))
    });
    let mut r = Response::new(Body::from_stream(failing));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json;charset=utf-8"),
    );
    r
}

pub(super) fn record_error(code: &str, message: &str, details: Value) -> ZohoStatus {
    ZohoStatus {
        code: code.to_owned(),
        details: details.as_object().cloned().unwrap_or_default(),
        message: message.to_owned(),
        status: "error".to_owned(),
        ..Default::default()
    }
}

fn invalid_field(index: usize, api_name: &str, expected: Option<&str>) -> ZohoStatus {
    let mut details =
        json!({"api_name": api_name, "json_path": format!("$.data[{index}].{api_name}")});
    if let Some(t) = expected {
        details["expected_data_type"] = t.into();
    }
    record_error("INVALID_DATA", "invalid data", details)
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        Value::Bool(_) | Value::Number(_) => Some(v.to_string()),
        _ => None,
    }
}

fn looks_like_email(s: &str) -> bool {
    let s = s.trim();
    s.split_once('@')
        .is_some_and(|(l, d)| !l.is_empty() && d.contains('.') && !d.starts_with('.'))
        && !s.contains(' ')
}

pub(super) fn system_user() -> Value {
    json!({"name": "tandem sandbox", "id": "5725767000000412001"})
}

/// The injected refusals of a write call (429, 5xx), in Zoho's shapes.
pub(super) fn write_faults(w: &mut World) -> Option<Response> {
    if w.faults.rate_limit_next > 0 {
        w.faults.rate_limit_next -= 1;
        w.stats.rate_limited += 1;
        return Some(zoho_error(
            StatusCode::TOO_MANY_REQUESTS,
            "TOO_MANY_REQUESTS",
            "concurrency limit exceeded",
            json!({}),
        ));
    }
    let rate = w.faults.server_error_rate;
    let forced_5xx = if w.faults.server_error_next > 0 {
        w.faults.server_error_next -= 1;
        true
    } else {
        w.roll(rate)
    };
    if forced_5xx {
        w.stats.server_errors += 1;
        return Some(zoho_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "INTERNAL_ERROR",
            "Internal Server Error",
            json!({}),
        ));
    }
    None
}

/// Validates one input row: every key a writable field of the module, values of the right shape
/// and length.
pub(super) fn check_row(
    options: &SandboxOptions,
    module: &str,
    index: usize,
    row: &serde_json::Map<String, Value>,
) -> Result<BTreeMap<String, Option<String>>, Box<ZohoStatus>> {
    let mut values = BTreeMap::new();
    for (k, v) in row {
        let Some((_, ty, read_only, _)) = fields::field(options, module, k) else {
            return Err(Box::new(invalid_field(index, k, None)));
        };
        if read_only {
            return Err(Box::new(invalid_field(index, k, None)));
        }
        let value = match v {
            Value::Null => None,
            Value::String(_) | Value::Number(_) | Value::Bool(_) => text(v),
            _ => return Err(Box::new(invalid_field(index, k, Some(ty)))),
        };
        if ty == "email"
            && let Some(e) = value.as_deref().filter(|e| !e.is_empty())
            && !looks_like_email(e)
        {
            return Err(Box::new(invalid_field(index, k, Some("email"))));
        }
        let max = fields::max_length(ty);
        if max > 0
            && let Some(text) = value.as_deref()
            && text.chars().count() > max
        {
            return Err(Box::new(record_error(
                "INVALID_DATA",
                "invalid data",
                json!({"api_name": k, "maximum_length": max, "json_path": format!("$.data[{index}].{k}")}),
            )));
        }
        values.insert(k.clone(), value);
    }
    Ok(values)
}

fn find_existing(
    w: &World,
    module: &str,
    dup: &[String],
    values: &BTreeMap<String, Option<String>>,
) -> Option<(u64, String)> {
    let records = w.records.get(module)?;
    dup.iter().find_map(|f| {
        let v = values.get(f)?.as_deref()?.trim().to_lowercase();
        if v.is_empty() {
            return None;
        }
        records
            .values()
            .find(|r| {
                r.fields
                    .get(f)
                    .is_some_and(|x| x.trim().to_lowercase() == v)
            })
            .map(|r| (r.id.parse().unwrap_or_default(), f.clone()))
    })
}

pub(super) fn apply(
    fields: &mut BTreeMap<String, String>,
    values: BTreeMap<String, Option<String>>,
) {
    for (k, v) in values {
        match v.filter(|v| !v.is_empty()) {
            Some(v) => fields.insert(k, v),
            None => fields.remove(&k),
        };
    }
}

pub async fn upsert(
    State(state): State<SandboxState>,
    Path(module): Path<String>,
    body: Bytes,
) -> Response {
    if fields::catalogue(&module).is_none() {
        return fields::invalid_module();
    }
    let Ok(body) = serde_json::from_slice::<Value>(&body) else {
        return zoho_error(
            StatusCode::BAD_REQUEST,
            "INVALID_DATA",
            "body is not a valid JSON",
            json!({}),
        );
    };
    let Some(data) = body
        .get("data")
        .and_then(Value::as_array)
        .filter(|d| !d.is_empty())
    else {
        return zoho_error(
            StatusCode::BAD_REQUEST,
            "REQUIRED_PARAM_MISSING",
            "One of the expected parameter is missing",
            json!({"param": "data"}),
        );
    };
    if data.len() > MAX_BATCH {
        return zoho_error(
            StatusCode::BAD_REQUEST,
            "LIMIT_EXCEEDED",
            "the number of records exceeds the limit",
            json!({"limit": MAX_BATCH}),
        );
    }
    let dup: Vec<String> = match body.get("duplicate_check_fields") {
        None | Some(Value::Null) => vec!["Email".to_owned()],
        Some(Value::Array(a)) => {
            let mut out = Vec::new();
            for (i, f) in a.iter().enumerate() {
                match f
                    .as_str()
                    .filter(|f| fields::field(state.options(), &module, f).is_some())
                {
                    Some(f) => out.push(f.to_owned()),
                    None => {
                        return zoho_error(
                            StatusCode::BAD_REQUEST,
                            "INVALID_DATA",
                            "invalid data",
                            json!({"api_name": f, "json_path": format!("$.duplicate_check_fields[{i}]")}),
                        );
                    }
                }
            }
            out
        }
        Some(_) => {
            return zoho_error(
                StatusCode::BAD_REQUEST,
                "INVALID_DATA",
                "invalid data",
                json!({"json_path": "$.duplicate_check_fields"}),
            );
        }
    };
    if let Some(t) = body.get("trigger")
        && !t.as_array().is_some_and(|a| {
            a.iter()
                .all(|x| matches!(x.as_str(), Some("workflow" | "approval" | "blueprint")))
        })
    {
        return zoho_error(
            StatusCode::BAD_REQUEST,
            "INVALID_DATA",
            "invalid data",
            json!({"json_path": "$.trigger"}),
        );
    }

    let mut w = state.world();
    let faults = w.faults.clone();
    if let Some(refusal) = write_faults(&mut w) {
        return refusal;
    }
    w.stats.upsert_calls += 1;
    w.stats.batch_sizes.push(data.len());
    w.charge(upsert_credits(data.len()));

    let mut results = Vec::with_capacity(data.len());
    for (index, row) in data.iter().enumerate() {
        let Some(row) = row.as_object() else {
            results.push(record_error(
                "INVALID_DATA",
                "invalid data",
                json!({"json_path": format!("$.data[{index}]")}),
            ));
            continue;
        };
        let values = match check_row(state.options(), &module, index, row) {
            Ok(v) => v,
            Err(e) => {
                results.push(*e);
                continue;
            }
        };
        if w.roll(faults.item_failure_rate) {
            results.push(invalid_field(index, "Email", Some("email")));
            continue;
        }
        let stamp = now();
        let existing = find_existing(&w, &module, &dup, &values);
        let records = w.records.entry(module.clone()).or_default();
        let (record, action, duplicate_field) = match existing
            .and_then(|(id, f)| records.get_mut(&id).map(|r| (r, f)))
        {
            Some((r, f)) => {
                apply(&mut r.fields, values);
                r.modified_time = stamp;
                r.writes += 1;
                (r.clone(), "update", Value::from(f))
            }
            None => {
                let has_last_name = values
                    .get("Last_Name")
                    .and_then(|v| v.as_deref())
                    .is_some_and(|v| !v.trim().is_empty());
                if !has_last_name {
                    results.push(record_error("MANDATORY_NOT_FOUND", "required field not found", json!({"api_name": "Last_Name", "json_path": format!("$.data[{index}].Last_Name")})));
                    continue;
                }
                let id = w.take_id();
                let mut fields = BTreeMap::new();
                apply(&mut fields, values);
                let r = ZohoRecord {
                    id: id.to_string(),
                    module: module.clone(),
                    fields,
                    created_time: stamp,
                    modified_time: stamp,
                    writes: 1,
                };
                w.records
                    .entry(module.clone())
                    .or_default()
                    .insert(id, r.clone());
                (r, "insert", Value::Null)
            }
        };
        results.push(ZohoStatus {
            code: "SUCCESS".to_owned(),
            details: json!({
                "Modified_Time": zoho_time(record.modified_time),
                "Modified_By": system_user(),
                "Created_Time": zoho_time(record.created_time),
                "id": record.id,
                "Created_By": system_user(),
            })
            .as_object()
            .cloned()
            .unwrap_or_default(),
            message: if action == "insert" {
                "record added"
            } else {
                "record updated"
            }
            .to_owned(),
            status: "success".to_owned(),
            action: Some(action.to_owned()),
            duplicate_field: Some(duplicate_field),
        });
    }
    if w.faults.drop_after_write_next > 0 {
        w.faults.drop_after_write_next -= 1;
        w.stats.drops += 1;
        return dropped_connection();
    }
    drop(w);
    let ok = results.iter().filter(|r| r.is_success()).count();
    let status = match ok {
        n if n == results.len() => StatusCode::OK,
        0 => StatusCode::BAD_REQUEST,
        _ => StatusCode::MULTI_STATUS,
    };
    (status, Json(json!({"data": results}))).into_response()
}

/// Every record of every module (unauthenticated; for the demo and debugging).
pub async fn inspect(State(state): State<SandboxState>) -> Response {
    let w = state.world();
    let all: Vec<&ZohoRecord> = w.records.values().flat_map(|m| m.values()).collect();
    Json(json!(all)).into_response()
}
