//! `GET /{version}/{lead-id}` (and `GET /{lead-id}`) as Graph answers it: token from
//! `Authorization: Bearer|OAuth` or `access_token`, optional `appsecret_proof`, `fields`
//! selection (unknown fields refused with error 100), Graph's error bodies, the usage headers on
//! every authenticated answer, and the injected faults.

use std::collections::BTreeMap;

use axum::{
    body::{Body, Bytes},
    extract::{Path, Query, State},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde_json::{Value, json};

use super::{SandboxLead, state::SandboxState};
use crate::webhook::presets::meta_lead_ads::{appsecret_proof, constant_time_eq};

/// Fields a Lead node has (Graph refuses any other with error 100).
const LEAD_NODE_FIELDS: &[&str] = &[
    "id",
    "created_time",
    "field_data",
    "ad_id",
    "ad_name",
    "adset_id",
    "adset_name",
    "campaign_id",
    "campaign_name",
    "form_id",
    "platform",
    "is_organic",
    "custom_disclaimer_responses",
    "home_listing",
    "partner_name",
    "post",
    "retailer_item_id",
    "vehicle",
];

fn graph_error(
    status: StatusCode,
    message: &str,
    kind: &str,
    code: i64,
    subcode: Option<i64>,
    fbtrace_id: String,
) -> Response {
    let mut error = json!({
        "message": message,
        "type": kind,
        "code": code,
        "fbtrace_id": fbtrace_id,
    });
    if let Some(sub) = subcode {
        error["error_subcode"] = sub.into();
    }
    if code == 1 || code == 2 {
        error["is_transient"] = true.into();
    }
    let mut r = (status, axum::Json(json!({ "error": error }))).into_response();
    // Graph marks its errors in a header too.
    r.headers_mut().insert(
        "www-authenticate",
        HeaderValue::from_static("OAuth \"Facebook Platform\" \"invalid_request\""),
    );
    r
}

fn token_of(headers: &HeaderMap, query: &BTreeMap<String, String>) -> Option<String> {
    if let Some(value) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        && let Some((scheme, token)) = value.split_once(' ')
        && (scheme.eq_ignore_ascii_case("bearer") || scheme.eq_ignore_ascii_case("oauth"))
    {
        return Some(token.trim().to_owned());
    }
    query.get("access_token").cloned()
}

/// A response whose body fails after the status line: the client sees the connection die.
fn dropped_connection() -> Response {
    let failing = futures_util::stream::once(async {
        Err::<Bytes, std::io::Error>(std::io::Error::new(
            std::io::ErrorKind::ConnectionAborted,
            "meta sandbox dropped the connection (fault injection)",
        ))
    });
    let mut r = Response::new(Body::from_stream(failing));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=UTF-8"),
    );
    r
}

fn usage_headers(r: &mut Response, page_id: &str, percent: u64, regain_minutes: u64) {
    let app = json!({
        "call_count": percent,
        "total_cputime": percent / 4,
        "total_time": percent / 2,
    });
    let buc = json!({
        page_id: [{
            "type": "pages",
            "call_count": percent,
            "total_cputime": percent / 4,
            "total_time": percent / 2,
            "estimated_time_to_regain_access": regain_minutes,
        }]
    });
    for (name, value) in [("x-app-usage", app), ("x-business-use-case-usage", buc)] {
        if let Ok(v) = HeaderValue::from_str(&value.to_string()) {
            r.headers_mut().insert(name, v);
        }
    }
}

/// Meta's `created_time` format: `2024-06-01T12:00:00+0000`.
fn graph_time(secs: i64) -> String {
    jiff::Timestamp::from_second(secs)
        .unwrap_or(jiff::Timestamp::UNIX_EPOCH)
        .to_zoned(jiff::tz::TimeZone::UTC)
        .strftime("%Y-%m-%dT%H:%M:%S%z")
        .to_string()
}

fn lead_json(lead: &SandboxLead, fields: &[&str]) -> Value {
    let mut out = serde_json::Map::new();
    for field in fields {
        let v = match *field {
            "id" => Some(Value::String(lead.id.clone())),
            "created_time" => Some(Value::String(graph_time(lead.created_time))),
            "field_data" => Some(Value::Array(
                lead.field_data
                    .iter()
                    .map(|(name, values)| json!({"name": name, "values": values}))
                    .collect(),
            )),
            "ad_id" => lead.ad_id.clone().map(Value::String),
            "ad_name" => lead.ad_name.clone().map(Value::String),
            "adset_id" => lead.adset_id.clone().map(Value::String),
            "adset_name" => lead.adset_name.clone().map(Value::String),
            "campaign_id" => lead.campaign_id.clone().map(Value::String),
            "campaign_name" => lead.campaign_name.clone().map(Value::String),
            "form_id" => Some(Value::String(lead.form_id.clone())),
            "platform" => Some(Value::String(lead.platform.clone())),
            "is_organic" => Some(Value::Bool(lead.is_organic)),
            _ => None,
        };
        if let Some(v) = v {
            out.insert((*field).to_owned(), v);
        }
    }
    Value::Object(out)
}

pub async fn lead_versioned(
    State(state): State<SandboxState>,
    Path((_version, id)): Path<(String, String)>,
    Query(query): Query<BTreeMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    serve_lead(state, id, query, headers).await
}

pub async fn lead_unversioned(
    State(state): State<SandboxState>,
    Path(id): Path<String>,
    Query(query): Query<BTreeMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    serve_lead(state, id, query, headers).await
}

enum Decision {
    Answer(Response),
    Serve {
        delay_ms: u64,
        fail: bool,
        drop: bool,
    },
}

async fn serve_lead(
    state: SandboxState,
    id: String,
    query: BTreeMap<String, String>,
    headers: HeaderMap,
) -> Response {
    let options = state.options().clone();
    let token = token_of(&headers, &query);
    let decision = {
        let mut w = state.world();
        w.stats.requests += 1;
        let cid = w.fbtrace_id();
        let bad = StatusCode::BAD_REQUEST;
        match token {
            None => {
                w.stats.unauthorized += 1;
                return graph_error(
                    bad,
                    "An access token is required to request this resource.",
                    "OAuthException",
                    104,
                    None,
                    cid,
                );
            }
            Some(t) if !constant_time_eq(t.as_bytes(), options.access_token.as_bytes()) => {
                w.stats.unauthorized += 1;
                return graph_error(
                    bad,
                    "Invalid OAuth access token - Cannot parse access token",
                    "OAuthException",
                    190,
                    None,
                    cid,
                );
            }
            Some(_) if w.token_expired => {
                w.stats.unauthorized += 1;
                return graph_error(
                    bad,
                    "Error validating access token: Session has expired on Saturday, 01-Jun-24 12:00:00 PDT. The current time is Sunday, 02-Jun-24 12:00:00 PDT.",
                    "OAuthException",
                    190,
                    Some(463),
                    cid,
                );
            }
            Some(_) => {}
        }
        let expected_proof = appsecret_proof(
            options.app_secret.as_bytes(),
            options.access_token.as_bytes(),
        );
        match query.get("appsecret_proof") {
            Some(p) if constant_time_eq(p.as_bytes(), expected_proof.as_bytes()) => {
                w.stats.proofs_ok += 1;
            }
            Some(_) => {
                w.stats.unauthorized += 1;
                return graph_error(
                    bad,
                    "Invalid appsecret_proof provided in the API argument",
                    "GraphMethodException",
                    100,
                    None,
                    cid,
                );
            }
            None if options.require_appsecret_proof => {
                w.stats.unauthorized += 1;
                return graph_error(
                    bad,
                    "API calls from the server require an appsecret_proof argument",
                    "GraphMethodException",
                    100,
                    None,
                    cid,
                );
            }
            None => {}
        }

        // Throttling: a forced one, or the rolling window being full.
        let forced = if w.faults.rate_limit_next > 0 {
            w.faults.rate_limit_next -= 1;
            true
        } else {
            false
        };
        let full = w.window_calls(&options) >= options.rate_limit as usize;
        if forced || full {
            w.stats.rate_limited += 1;
            let regain = if full {
                w.regain_minutes(&options)
            } else {
                options.regain_access_minutes
            };
            let mut r = graph_error(
                bad,
                if options.throttle_code == 4 {
                    "(#4) Application request limit reached"
                } else {
                    "(#80005) There have been too many leadgen api calls to this Page. Wait a bit and try again. For more info, please refer to https://developers.facebook.com/docs/graph-api/overview/rate-limiting."
                },
                "OAuthException",
                options.throttle_code,
                None,
                cid,
            );
            usage_headers(&mut r, &options.page_id, 100, regain);
            Decision::Answer(r)
        } else {
            w.calls.push_back(std::time::Instant::now());
            let fail = if w.faults.server_error_next > 0 {
                w.faults.server_error_next -= 1;
                true
            } else {
                let rate = w.faults.server_error_rate;
                w.roll(rate)
            };
            let drop = !fail && w.faults.drop_after_write_next > 0;
            if drop {
                w.faults.drop_after_write_next -= 1;
            }
            Decision::Serve {
                delay_ms: w.faults.delay_ms,
                fail,
                drop,
            }
        }
    };
    let (delay_ms, fail, drop) = match decision {
        Decision::Answer(r) => return r,
        Decision::Serve {
            delay_ms,
            fail,
            drop,
        } => (delay_ms, fail, drop),
    };
    if delay_ms > 0 {
        tokio::time::sleep(std::time::Duration::from_millis(delay_ms)).await;
    }
    let mut w = state.world();
    let cid = w.fbtrace_id();
    let usage = w.usage_percent(&options);
    let mut response = if fail {
        w.stats.server_errors += 1;
        graph_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "An unexpected error has occurred. Please retry your request later.",
            "OAuthException",
            2,
            None,
            cid,
        )
    } else {
        let requested: Vec<&str> = match query.get("fields") {
            Some(f) => f
                .split(',')
                .map(str::trim)
                .filter(|f| !f.is_empty())
                .collect(),
            None => vec!["created_time", "id"],
        };
        if let Some(unknown) = requested.iter().find(|f| !LEAD_NODE_FIELDS.contains(f)) {
            graph_error(
                StatusCode::BAD_REQUEST,
                &format!(
                    "(#100) Tried accessing nonexisting field ({unknown}) on node type (Lead)"
                ),
                "OAuthException",
                100,
                None,
                cid,
            )
        } else if let Some(lead) = w.leads.get(&id).cloned() {
            if drop {
                w.stats.drops += 1;
                return dropped_connection();
            }
            w.stats.leads_served += 1;
            let mut fields = vec!["id"];
            fields.extend(requested.iter().copied().filter(|f| *f != "id"));
            axum::Json(lead_json(&lead, &fields)).into_response()
        } else {
            w.stats.not_found += 1;
            graph_error(
                StatusCode::BAD_REQUEST,
                &format!(
                    "Unsupported get request. Object with ID '{id}' does not exist, cannot be loaded due to missing permissions, or does not support this operation. Please read the Graph API documentation at https://developers.facebook.com/docs/graph-api"
                ),
                "GraphMethodException",
                100,
                Some(33),
                cid,
            )
        }
    };
    usage_headers(&mut response, &options.page_id, usage, 0);
    response
}
