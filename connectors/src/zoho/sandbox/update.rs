//! `PUT /crm/v8/{module}` (update by id) and `DELETE /crm/v8/{module}?ids=…` as Zoho documents
//! them: ≤ 100 records or ids, one `data[]` answer per record in input order (an unknown id is
//! `INVALID_DATA` naming the id), 200 when all succeeded, 207 when some did, 400 when none did;
//! the write faults and credits of the upsert.

use axum::{
    Json,
    body::Bytes,
    extract::{Path, Query, State},
    http::StatusCode,
    response::{IntoResponse, Response},
};
use serde_json::{Value, json};
use std::collections::HashMap;

use super::{
    SandboxState, fields,
    records::{apply, check_row, dropped_connection, record_error, system_user, write_faults},
    state::{now, zoho_error, zoho_time},
};
use crate::zoho::{client::MAX_BATCH, limits::upsert_credits, wire::ZohoStatus};

fn invalid_id(index: usize) -> ZohoStatus {
    record_error(
        "INVALID_DATA",
        "the id given seems to be invalid",
        json!({"api_name": "id", "json_path": format!("$.data[{index}].id")}),
    )
}

fn answer(results: Vec<ZohoStatus>) -> Response {
    let ok = results.iter().filter(|r| r.is_success()).count();
    let status = match ok {
        n if n == results.len() => StatusCode::OK,
        0 => StatusCode::BAD_REQUEST,
        _ => StatusCode::MULTI_STATUS,
    };
    (status, Json(json!({"data": results}))).into_response()
}

pub async fn update(
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
    let options = state.options().clone();
    let mut w = state.world();
    if let Some(refusal) = write_faults(&mut w) {
        return refusal;
    }
    let item_rate = w.faults.item_failure_rate;
    w.stats.update_calls += 1;
    w.stats.batch_sizes.push(data.len());
    w.charge(upsert_credits(data.len()));
    let mut results = Vec::with_capacity(data.len());
    for (index, row) in data.iter().enumerate() {
        let Some(row) = row.as_object() else {
            results.push(invalid_id(index));
            continue;
        };
        let id = row.get("id").and_then(|v| match v {
            Value::String(s) => s.parse::<u64>().ok(),
            Value::Number(n) => n.as_u64(),
            _ => None,
        });
        let Some(id) = id.filter(|id| w.records.get(&module).is_some_and(|m| m.contains_key(id)))
        else {
            results.push(invalid_id(index));
            continue;
        };
        let mut rest = row.clone();
        rest.remove("id");
        let values = match check_row(&options, &module, index, &rest) {
            Ok(v) => v,
            Err(e) => {
                results.push(*e);
                continue;
            }
        };
        if w.roll(item_rate) {
            results.push(record_error(
                "INVALID_DATA",
                "invalid data",
                json!({"api_name": "id", "json_path": format!("$.data[{index}]"), "reason": "sandbox validation rule (fault injection)"}),
            ));
            continue;
        }
        let Some(r) = w.records.get_mut(&module).and_then(|m| m.get_mut(&id)) else {
            results.push(invalid_id(index));
            continue;
        };
        apply(&mut r.fields, values);
        r.modified_time = now();
        r.writes += 1;
        results.push(ZohoStatus {
            code: "SUCCESS".to_owned(),
            details: json!({
                "Modified_Time": zoho_time(r.modified_time),
                "Modified_By": system_user(),
                "Created_Time": zoho_time(r.created_time),
                "id": r.id,
                "Created_By": system_user(),
            })
            .as_object()
            .cloned()
            .unwrap_or_default(),
            message: "record updated".to_owned(),
            status: "success".to_owned(),
            ..ZohoStatus::default()
        });
    }
    if w.faults.drop_after_write_next > 0 {
        w.faults.drop_after_write_next -= 1;
        w.stats.drops += 1;
        return dropped_connection();
    }
    drop(w);
    answer(results)
}

pub async fn delete(
    State(state): State<SandboxState>,
    Path(module): Path<String>,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    if fields::catalogue(&module).is_none() {
        return fields::invalid_module();
    }
    let Some(ids) = params.get("ids").filter(|v| !v.trim().is_empty()) else {
        return zoho_error(
            StatusCode::BAD_REQUEST,
            "REQUIRED_PARAM_MISSING",
            "One of the expected parameter is missing",
            json!({"param": "ids"}),
        );
    };
    let ids: Vec<&str> = ids.split(',').map(str::trim).collect();
    if ids.len() > MAX_BATCH {
        return zoho_error(
            StatusCode::BAD_REQUEST,
            "LIMIT_EXCEEDED",
            "the number of records exceeds the limit",
            json!({"limit": MAX_BATCH}),
        );
    }
    let mut w = state.world();
    if let Some(refusal) = write_faults(&mut w) {
        return refusal;
    }
    w.stats.delete_calls += 1;
    w.charge(upsert_credits(ids.len()));
    let results: Vec<ZohoStatus> = ids
        .iter()
        .map(|raw| {
            let removed = raw
                .parse::<u64>()
                .ok()
                .and_then(|id| w.records.get_mut(&module).and_then(|m| m.remove(&id)));
            match removed {
                Some(_) => ZohoStatus {
                    code: "SUCCESS".to_owned(),
                    details: json!({"id": raw}).as_object().cloned().unwrap_or_default(),
                    message: "record deleted".to_owned(),
                    status: "success".to_owned(),
                    ..ZohoStatus::default()
                },
                None => record_error(
                    "INVALID_DATA",
                    "the related id given seems to be invalid",
                    json!({"id": raw}),
                ),
            }
        })
        .collect();
    if results.iter().any(ZohoStatus::is_success) {
        w.stats.deleted += results.iter().filter(|r| r.is_success()).count() as u64;
    }
    if w.faults.drop_after_write_next > 0 {
        w.faults.drop_after_write_next -= 1;
        w.stats.drops += 1;
        return dropped_connection();
    }
    drop(w);
    answer(results)
}
