//! The deal endpoints: `POST …/deals/search` (the CRM search: filter groups ORed, filters ANDed,
//! one sort, `limit` ≤ 200, offset `after`, 10,000 results at most, its own 4/s limit per token
//! and no `X-HubSpot-RateLimit-*` headers), `POST …/deals/batch/update` (≤ 100 inputs, 200 or
//! 207 with one error per refused deal) and `GET …/deals/{id}`. Requests are refused the way
//! HubSpot does, as a whole, before anything is applied.

#![allow(
    clippy::result_large_err,
    reason = "the Err is the HTTP answer itself, returned once per request"
)]

use std::collections::{BTreeMap, BTreeSet};

use axum::{
    Json,
    body::Bytes,
    extract::{Path, RawQuery, State},
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde_json::{Value, json};

use crate::hubspot::{
    deals_wire::{BatchUpdateResponse, DealObject, Filter, SearchRequest, SearchResponse, Sort},
    wire::{ErrorBody, ErrorDetail, StandardError},
};

use super::{
    SandboxState,
    contacts::{
        as_text, cid, dropped_connection, invalid_properties, missing_fields, now, parse_json,
        properties_of, query_pairs, too_many, wanted_properties,
    },
    deal_properties, errors,
};

/// HubSpot's search limits (the 2024 expansion: 5 groups, 10 filters per group, 25 in all).
const MAX_LIMIT: u64 = 200;
const MAX_GROUPS: usize = 5;
const MAX_FILTERS_PER_GROUP: usize = 10;
const MAX_FILTERS: usize = 25;
/// Values in one IN / NOT_IN filter (decision: see docs/crm/hubspot.md).
const MAX_VALUES: usize = 100;
const OPERATORS: &[&str] = &[
    "BETWEEN",
    "CONTAINS_TOKEN",
    "EQ",
    "GT",
    "GTE",
    "HAS_PROPERTY",
    "IN",
    "LT",
    "LTE",
    "NEQ",
    "NOT_CONTAINS_TOKEN",
    "NOT_HAS_PROPERTY",
    "NOT_IN",
];

fn bearer(headers: &HeaderMap) -> String {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .map(|(_, t)| t.trim().to_owned())
        .unwrap_or_default()
}

/// The search's own throttle answer: secondly policy, and (as commonly reported for search) no
/// rate-limit headers and no `Retry-After`.
fn search_throttled(state: &SandboxState) -> Response {
    let b = ErrorBody {
        status: "error".to_owned(),
        message: "You have reached your secondly limit.".to_owned(),
        correlation_id: cid(state),
        error_type: Some("RATE_LIMIT".to_owned()),
        policy_name: Some("SECONDLY".to_owned()),
        group_name: Some("publicapi-crm-search".to_owned()),
        ..Default::default()
    };
    (StatusCode::TOO_MANY_REQUESTS, Json(b)).into_response()
}

fn bad(state: &SandboxState, message: String, field: &str) -> Response {
    errors::validation(
        message.clone(),
        vec![ErrorDetail {
            message,
            in_: Some(field.to_owned()),
            ..Default::default()
        }],
        cid(state),
    )
}

/// A `sorts` item: HubSpot's `{propertyName, direction}`, or the spec's bare property name
/// (ascending).
fn sort_of(v: &Value) -> Option<Sort> {
    match v {
        Value::String(p) => Some(Sort {
            property_name: p.clone(),
            direction: "ASCENDING".to_owned(),
        }),
        other => serde_json::from_value(other.clone()).ok(),
    }
}

/// The request, checked the way HubSpot checks it.
fn parse_search(value: &Value, state: &SandboxState) -> Result<(SearchRequest, usize), Response> {
    let limit = match value.get("limit") {
        None | Some(Value::Null) => 10,
        Some(v) => match v.as_u64() {
            Some(n) if (1..=MAX_LIMIT).contains(&n) => n,
            _ => {
                return Err(bad(
                    state,
                    format!("limit must be between 1 and {MAX_LIMIT}, got {v}"),
                    "limit",
                ));
            }
        },
    };
    let offset = match value.get("after") {
        None | Some(Value::Null) => 0,
        Some(v) => match as_text(v).and_then(|t| {
            if t.is_empty() {
                Some(0)
            } else {
                t.parse::<usize>().ok()
            }
        }) {
            Some(n) => n,
            None => {
                return Err(bad(
                    state,
                    format!("after must be a paging cursor from paging.next.after, got {v}"),
                    "after",
                ));
            }
        },
    };
    let cap = state.options().search_result_cap;
    if offset >= cap {
        return Err(bad(
            state,
            format!(
                "Search results are limited to {cap} records; after={offset} is past the last one. Narrow the filters to page further."
            ),
            "after",
        ));
    }
    let groups: Vec<crate::hubspot::deals_wire::FilterGroup> = match value.get("filterGroups") {
        None | Some(Value::Null) => Vec::new(),
        Some(v) => serde_json::from_value(v.clone()).map_err(|e| {
            errors::validation(
                format!("Invalid input JSON: Cannot build FilterGroup: {e}"),
                Vec::new(),
                cid(state),
            )
        })?,
    };
    if groups.len() > MAX_GROUPS {
        return Err(bad(
            state,
            format!(
                "Too many filter groups ({}); the maximum is {MAX_GROUPS}",
                groups.len()
            ),
            "filterGroups",
        ));
    }
    let total: usize = groups.iter().map(|g| g.filters.len()).sum();
    if total > MAX_FILTERS
        || groups
            .iter()
            .any(|g| g.filters.len() > MAX_FILTERS_PER_GROUP)
    {
        return Err(bad(
            state,
            format!(
                "Too many filters: at most {MAX_FILTERS_PER_GROUP} per group and {MAX_FILTERS} in all"
            ),
            "filterGroups",
        ));
    }
    for f in groups.iter().flat_map(|g| &g.filters) {
        if !OPERATORS.contains(&f.operator.as_str()) {
            return Err(bad(
                state,
                format!("Unknown filter operator {:?}", f.operator),
                "filterGroups",
            ));
        }
        if !deal_properties::exists(state.options(), &f.property_name) {
            return Err(bad(
                state,
                format!("Property \"{}\" does not exist", f.property_name),
                "filterGroups",
            ));
        }
        let needs_values = matches!(f.operator.as_str(), "IN" | "NOT_IN");
        let n = f.values.as_ref().map_or(0, Vec::len);
        if needs_values && (n == 0 || n > MAX_VALUES) {
            return Err(bad(
                state,
                format!(
                    "{} on {} takes 1 to {MAX_VALUES} values, got {n}",
                    f.operator, f.property_name
                ),
                "filterGroups",
            ));
        }
    }
    let sorts: Vec<Sort> = value
        .get("sorts")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(sort_of).collect())
        .unwrap_or_default();
    let properties = value
        .get("properties")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    Ok((
        SearchRequest {
            filter_groups: groups,
            sorts,
            properties,
            limit: u32::try_from(limit).unwrap_or(200),
            after: offset.to_string(),
        },
        offset,
    ))
}

pub async fn search(
    State(state): State<SandboxState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let options = state.options().clone();
    let gate = {
        let mut w = state.world();
        w.stats.search_calls += 1;
        match w.next_search_step() {
            Some(step) if step.status != 200 => Err(step),
            _ => Ok(w.admit_search(&bearer(&headers), &options)),
        }
    };
    match gate {
        Err(step) if step.status == 429 => return search_throttled(&state),
        Err(step) => return errors::for_status(step.status, step.retry_after, cid(&state)),
        Ok(Err(_wait)) => {
            state.world().stats.search_rate_limited += 1;
            return search_throttled(&state);
        }
        Ok(Ok(())) => {}
    }
    let value = match parse_json(&state, &headers, &body) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let (request, offset) = match parse_search(&value, &state) {
        Ok(r) => r,
        Err(r) => return r,
    };
    let w = state.world();
    let mut hits: Vec<&super::deal_store::Deal> = w
        .deals
        .deals
        .values()
        .filter(|d| {
            request.filter_groups.is_empty()
                || request
                    .filter_groups
                    .iter()
                    .any(|g| g.filters.iter().all(|f: &Filter| d.matches(f)))
        })
        .collect();
    if let Some(sort) = request.sorts.first() {
        let descending = sort.direction.eq_ignore_ascii_case("DESCENDING");
        hits.sort_by(|a, b| {
            let order = a
                .sort_key(&sort.property_name)
                .cmp(&b.sort_key(&sort.property_name))
                .then(a.id.cmp(&b.id));
            if descending { order.reverse() } else { order }
        });
    }
    let total = hits.len();
    let reachable = total.min(options.search_result_cap);
    let limit = request.limit as usize;
    let end = (offset + limit).min(reachable);
    let results: Vec<DealObject> = hits
        .get(offset..end)
        .unwrap_or_default()
        .iter()
        .map(|d| d.public(&request.properties))
        .collect();
    drop(w);
    let paging = (end < reachable).then(|| crate::hubspot::deals_wire::Paging {
        next: Some(crate::hubspot::deals_wire::NextPage {
            after: end.to_string(),
            link: None,
        }),
    });
    Json(SearchResponse {
        total: total as u64,
        results,
        paging,
    })
    .into_response()
}

/// Properties HubSpot sets itself on a deal.
fn read_only(name: &str) -> bool {
    deal_properties::catalogue_entry(name).is_some_and(|p| p.modification_metadata.read_only_value)
}

pub async fn batch_update(
    State(state): State<SandboxState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let started = now();
    let step = {
        let mut w = state.world();
        w.stats.deal_update_calls += 1;
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
    let Some(list) = value.get("inputs").and_then(Value::as_array) else {
        return missing_fields(
            "BatchInputSimplePublicObjectBatchInput",
            &["inputs"],
            &state,
        );
    };
    state.world().stats.deal_inputs_received += list.len() as u64;
    if list.len() > 100 {
        return too_many(list.len(), &state);
    }
    let mut parsed = Vec::with_capacity(list.len());
    for input in list {
        let id = input.get("id").and_then(as_text).filter(|s| !s.is_empty());
        let properties = properties_of(input);
        let (Some(id), Some(properties)) = (id.clone(), properties.clone()) else {
            let mut missing = Vec::new();
            if id.is_none() {
                missing.push("id");
            }
            if properties.is_none() {
                missing.push("properties");
            }
            return missing_fields("SimplePublicObjectBatchInput", &missing, &state);
        };
        if let Some(p) = input.get("idProperty").and_then(Value::as_str)
            && p != "hs_object_id"
        {
            return errors::validation(
                format!(
                    "Property \"{p}\" is not a unique identifier property for object type DEAL"
                ),
                Vec::new(),
                cid(&state),
            );
        }
        let trace = input.get("objectWriteTraceId").and_then(as_text);
        parsed.push((id, properties, trace));
    }
    let mut problems = Vec::new();
    let mut reported = BTreeSet::new();
    for (name, _) in parsed.iter().flat_map(|(_, p, _)| p) {
        if !reported.insert(name.clone()) {
            continue;
        }
        if read_only(name) {
            problems.push((
                name.clone(),
                "READ_ONLY_VALUE",
                format!("{name} is a read only property; its value cannot be set."),
            ));
        } else if !deal_properties::exists(state.options(), name) {
            problems.push((
                name.clone(),
                "PROPERTY_DOESNT_EXIST",
                format!("Property \"{name}\" does not exist"),
            ));
        }
    }
    if !problems.is_empty() {
        return invalid_properties(problems, &state);
    }
    let mut seen = BTreeSet::new();
    let duplicates: Vec<String> = parsed
        .iter()
        .filter(|(id, ..)| !seen.insert(id.clone()))
        .map(|(id, ..)| id.clone())
        .collect();
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

    let at = now().as_millisecond();
    let mut response = BatchUpdateResponse {
        status: "COMPLETE".to_owned(),
        started_at: started.to_string(),
        ..Default::default()
    };
    let mut missing = Vec::new();
    let drop_now = {
        let mut w = state.world();
        let item_failure_rate = w.faults.item_failure_rate;
        for (id, properties, trace) in parsed {
            if w.roll(item_failure_rate) {
                response.errors.push(errors::item_error(
                    "VALIDATION_ERROR",
                    "Property values were not valid (sandbox: injected failure for this input)",
                    trace.as_deref(),
                    &id,
                ));
                continue;
            }
            let Some(deal) = id
                .parse::<u64>()
                .ok()
                .and_then(|n| w.deals.deals.get_mut(&n))
            else {
                missing.push(id);
                continue;
            };
            let names: Vec<String> = properties.keys().cloned().collect();
            for (k, v) in properties {
                if v.is_empty() {
                    deal.properties.remove(&k);
                } else {
                    deal.properties.insert(k, v);
                }
            }
            deal.touch(at);
            deal.api_writes += 1;
            let mut public = deal.public(&names);
            // `public` lists cleared properties as null; HubSpot echoes them as "".
            for v in public.properties.values_mut() {
                v.get_or_insert_with(String::new);
            }
            response.results.push(public);
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
    if !missing.is_empty() {
        response.errors.push(StandardError {
            status: "error".to_owned(),
            category: "OBJECT_NOT_FOUND".to_owned(),
            message: "Could not get some DEAL objects, they may be deleted or not exist. Check that ids are valid.".to_owned(),
            context: BTreeMap::from([("ids".to_owned(), missing)]),
            ..Default::default()
        });
    }
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

pub async fn get_one(
    State(state): State<SandboxState>,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Response {
    let wanted = wanted_properties(&query_pairs(raw));
    let found = {
        let w = state.world();
        id.parse::<u64>()
            .ok()
            .and_then(|n| w.deals.deals.get(&n))
            .map(|d| d.public(&wanted))
    };
    match found {
        Some(d) => Json(json!(d)).into_response(),
        None => errors::not_found(cid(&state)),
    }
}
