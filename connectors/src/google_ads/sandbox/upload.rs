//! The Google Ads API's `customers/{id}:uploadClickConversions` and
//! `customers/{id}:uploadConversionAdjustments`: `developer-token` required, `login-customer-id`
//! when access goes through a manager, `partialFailure` required, ≤ 2,000 rows; each row applied
//! on its own ([`super::rows`]), a failed row answered `{}` in `results` and described in
//! `partialFailureError.details[].errors[]` with its `fieldPathElements` index.

use axum::{
    Json,
    body::Bytes,
    extract::{Path, State},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
};
use serde_json::{Value, json};

use super::{
    SandboxState,
    rows::{check_adjustment, check_upload, record_adjustment, record_upload, row_error},
    state::{LoggedRequest, dropped_connection, google_ads_failure, google_error},
};
use crate::google_ads::wire::{
    ClickConversion, ConversionAdjustment, UploadClickConversionsRequest,
    UploadConversionAdjustmentsRequest,
};

const MAX_ROWS: usize = 2000;

fn header(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)?
        .to_str()
        .ok()
        .map(|s| s.trim().to_owned())
}

fn failure(
    status: StatusCode,
    grpc: &str,
    message: &str,
    version: &str,
    errors: Vec<Value>,
    request_id: &str,
) -> Response {
    google_error(
        status,
        grpc,
        message,
        vec![google_ads_failure(version, errors, request_id)],
    )
}

/// The action id of `customers/{customer}/conversionActions/{id}` when `customer` is ours.
pub async fn handle(
    State(state): State<SandboxState>,
    Path((version, target)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let options = state.options().clone();
    let mut w = state.world();
    let request_id = w.request_id();
    let Some((customer, method)) = target.split_once(':') else {
        return google_error(
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            "Method not found.",
            vec![],
        );
    };
    let adjustments = match method {
        "uploadClickConversions" => false,
        "uploadConversionAdjustments" => true,
        _ => {
            return google_error(
                StatusCode::NOT_FOUND,
                "NOT_FOUND",
                "Method not found.",
                vec![],
            );
        }
    };
    if adjustments {
        w.stats.adjustment_calls += 1;
    } else {
        w.stats.upload_calls += 1;
    }
    w.log(LoggedRequest {
        path: format!("/{version}/customers/{target}"),
        headers: headers
            .iter()
            .filter(|(k, _)| *k != axum::http::header::AUTHORIZATION)
            .filter_map(|(k, v)| Some((k.as_str().to_owned(), v.to_str().ok()?.to_owned())))
            .collect(),
        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
    });
    if header(&headers, "developer-token").as_deref() != Some(options.developer_token.as_str()) {
        return failure(
            StatusCode::UNAUTHORIZED,
            "UNAUTHENTICATED",
            "Request is missing required authentication credential.",
            &version,
            vec![
                json!({"errorCode": {"authenticationError": "DEVELOPER_TOKEN_INVALID"}, "message": "The developer token is not valid."}),
            ],
            &request_id,
        );
    }
    if customer != options.customer_id
        || header(&headers, "login-customer-id") != options.login_customer_id
    {
        return failure(
            StatusCode::FORBIDDEN,
            "PERMISSION_DENIED",
            "The caller does not have permission",
            &version,
            vec![
                json!({"errorCode": {"authorizationError": "USER_PERMISSION_DENIED"}, "message": "User doesn't have permission to access customer. Note: If you're accessing a client customer, the manager's customer id must be set in the 'login-customer-id' header."}),
            ],
            &request_id,
        );
    }
    if !options.legacy_allowlisted {
        return failure(
            StatusCode::FORBIDDEN,
            "PERMISSION_DENIED",
            "The caller does not have permission",
            &version,
            vec![
                json!({"errorCode": {"authorizationError": "CUSTOMER_NOT_ALLOWLISTED_FOR_THIS_FEATURE"}, "message": "Customer is not allowlisted for accessing this feature."}),
            ],
            &request_id,
        );
    }
    let invalid_json = |e: serde_json::Error| {
        google_error(
            StatusCode::BAD_REQUEST,
            "INVALID_ARGUMENT",
            &format!("Invalid JSON payload received. {e}"),
            vec![],
        )
    };
    let now = jiff::Timestamp::now().as_millisecond();
    let (rows, partial_failure, validate_only) = if adjustments {
        match serde_json::from_slice::<UploadConversionAdjustmentsRequest>(&body) {
            Ok(r) => (
                Rows::Adjust(r.conversion_adjustments),
                r.partial_failure,
                r.validate_only,
            ),
            Err(e) => return invalid_json(e),
        }
    } else {
        match serde_json::from_slice::<UploadClickConversionsRequest>(&body) {
            Ok(r) => (
                Rows::Upload(r.conversions),
                r.partial_failure,
                r.validate_only,
            ),
            Err(e) => return invalid_json(e),
        }
    };
    if !partial_failure {
        return failure(
            StatusCode::BAD_REQUEST,
            "INVALID_ARGUMENT",
            "Request contains an invalid argument.",
            &version,
            vec![
                json!({"errorCode": {"requestError": "INVALID_INPUT"}, "message": "Partial failure mode is required for this request. Set partial_failure to true."}),
            ],
            &request_id,
        );
    }
    let size_problem = match rows.len() {
        0 => Some(("fieldError", "REQUIRED", "At least one row is required.")),
        n if n > MAX_ROWS => Some((
            "conversionUploadError",
            "TOO_MANY_CONVERSIONS_IN_REQUEST",
            "Upload fewer than 2001 events in a single request.",
        )),
        _ => None,
    };
    if let Some((family, code, msg)) = size_problem {
        return failure(
            StatusCode::BAD_REQUEST,
            "INVALID_ARGUMENT",
            "Request contains an invalid argument.",
            &version,
            vec![json!({"errorCode": {family: code}, "message": msg})],
            &request_id,
        );
    }
    let mut errors = Vec::new();
    let mut results = Vec::new();
    let item_failure = w.faults.item_failure_rate;
    match rows {
        Rows::Upload(rows) => {
            let mut seen: Vec<&str> = Vec::new();
            for (i, row) in rows.iter().enumerate() {
                let mut problem = check_upload(
                    &w,
                    &options.customer_id,
                    &options.conversion_actions,
                    row,
                    &seen,
                    now,
                );
                if problem.is_none() && w.roll(item_failure) {
                    problem = Some((
                        "conversionUploadError",
                        "CLICK_NOT_FOUND",
                        "The imported event could not be matched to a click. (sandbox fault injection)",
                        None,
                    ));
                }
                if let Some(p) = problem {
                    errors.push(row_error("conversions", i, p));
                    results.push(json!({}));
                    continue;
                }
                seen.extend(row.order_id.as_deref());
                let mut result = json!({"conversionAction": row.conversion_action, "conversionDateTime": row.conversion_date_time});
                for (k, v) in [
                    ("gclid", &row.gclid),
                    ("gbraid", &row.gbraid),
                    ("wbraid", &row.wbraid),
                ] {
                    if let Some(v) = v {
                        result[k] = json!(v);
                    }
                }
                if !row.user_identifiers.is_empty() {
                    result["userIdentifiers"] =
                        serde_json::to_value(&row.user_identifiers).unwrap_or(Value::Null);
                }
                results.push(result);
                if !validate_only {
                    record_upload(&mut w, &options.customer_id, row, now);
                }
            }
        }
        Rows::Adjust(rows) => {
            for (i, row) in rows.iter().enumerate() {
                if let Some(p) = check_adjustment(&w, &options.customer_id, row) {
                    errors.push(row_error("conversion_adjustments", i, p));
                    results.push(json!({}));
                    continue;
                }
                results.push(json!({"conversionAction": row.conversion_action, "adjustmentType": row.adjustment_type,
                    "adjustmentDateTime": row.adjustment_date_time, "orderId": row.order_id}));
                if !validate_only {
                    record_adjustment(&mut w, &options.customer_id, row);
                }
            }
        }
    }
    let mut answer = json!({});
    if !validate_only {
        answer["results"] = Value::Array(results);
        answer["jobId"] = json!(format!("{}", 9_000_000 + w.next_request));
    }
    if !errors.is_empty() {
        let first = errors[0]["message"].as_str().unwrap_or("").to_owned();
        answer["partialFailureError"] = json!({"code": 3, "message": first,
            "details": [google_ads_failure(&version, errors, &request_id)]});
    }
    if !validate_only && w.take_drop() {
        return dropped_connection();
    }
    (StatusCode::OK, Json(answer)).into_response()
}

enum Rows {
    Upload(Vec<ClickConversion>),
    Adjust(Vec<ConversionAdjustment>),
}

impl Rows {
    fn len(&self) -> usize {
        match self {
            Rows::Upload(r) => r.len(),
            Rows::Adjust(r) => r.len(),
        }
    }
}
