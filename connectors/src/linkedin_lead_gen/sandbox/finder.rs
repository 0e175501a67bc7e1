//! `GET /rest/leadFormResponses?q=owner…`: auth, version and protocol headers, Rest.li 2.0
//! query parsing, faults, filtering, paging, and the element JSON with the form projected.

use std::time::Duration;

use axum::{
    Json,
    body::{Body, Bytes},
    extract::{RawQuery, State},
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde_json::{Value, json};

use super::{FORM_ID, LinkedinState, StoredResponse, TOKEN};

fn error(status: u16, service_code: i64, code: &str, message: &str) -> Response {
    let s = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (
        s,
        Json(json!({"status": status, "serviceErrorCode": service_code, "code": code, "message": message})),
    )
        .into_response()
}

fn bad_request(message: &str) -> Response {
    error(400, 100, "ILLEGAL_ARGUMENT", message)
}

fn header_str<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name).and_then(|v| v.to_str().ok()).map(str::trim)
}

/// `(key:value)` → `value` (after percent-decoding).
fn paren_value<'a>(raw: &'a str, key: &str) -> Option<&'a str> {
    raw.strip_prefix('(')?
        .strip_suffix(')')?
        .strip_prefix(key)?
        .strip_prefix(':')
}

/// `(start:1,end:2)` → (1, 2); either part may be missing.
fn time_range(raw: &str) -> Option<(Option<i64>, Option<i64>)> {
    let inner = raw.strip_prefix('(')?.strip_suffix(')')?;
    let (mut start, mut end) = (None, None);
    for part in inner.split(',') {
        let (k, v) = part.split_once(':')?;
        let v: i64 = v.trim().parse().ok()?;
        match k.trim() {
            "start" => start = Some(v),
            "end" => end = Some(v),
            _ => return None,
        }
    }
    Some((start, end))
}

fn element(r: &StoredResponse) -> Value {
    let answers = vec![
        json!({"answerDetails": {"textQuestionAnswer": {"answer": r.first_name}}, "questionId": 100 + FORM_ID}),
        json!({"answerDetails": {"textQuestionAnswer": {"answer": r.email}}, "questionId": 300 + FORM_ID}),
        json!({"answerDetails": {"multipleChoiceAnswer": {"options": [2]}}, "questionId": 900 + FORM_ID}),
    ];
    json!({
        "owner": {"sponsoredAccount": r.account},
        "leadType": "SPONSORED",
        "versionedLeadGenFormUrn": format!("urn:li:versionedLeadGenForm:(urn:li:leadGenForm:{FORM_ID},1)"),
        "id": r.id,
        "submittedAt": r.submitted_at_ms,
        "testLead": r.test,
        "leadMetadata": {"sponsoredLeadMetadata": {"campaign": format!("urn:li:sponsoredCampaign:{}", r.campaign)}},
        "associatedEntity": {"associatedCreative": format!("urn:li:sponsoredCreative:{}", r.creative)},
        "formResponse": {"answers": answers, "consentResponses": [{"accepted": true, "consentId": 1}]},
        "form": {
            "name": "Sandbox demo request",
            "id": FORM_ID,
            "hiddenFields": [{"name": "utm_source", "value": "linkedin"}, {"name": "utm_campaign", "value": "sandbox-q3"}],
            "creationLocale": {"country": "US", "language": "en"},
            "content": {"questions": [
                {"questionId": 100 + FORM_ID, "name": "First name", "predefinedField": "FIRST_NAME",
                 "question": {"localized": {"en_US": "First name"}}, "responseRequired": true},
                {"questionId": 300 + FORM_ID, "name": "Email", "predefinedField": "EMAIL",
                 "question": {"localized": {"en_US": "Email address"}}, "responseRequired": true},
                {"questionId": 900 + FORM_ID, "name": "Team size",
                 "question": {"localized": {"en_US": "How large is your team?"}},
                 "questionDetails": {"multipleChoiceQuestionDetails": {"options": [
                    {"id": 1, "text": {"localized": {"en_US": "1-10"}}},
                    {"id": 2, "text": {"localized": {"en_US": "11-50"}}}]}}}
            ]}
        }
    })
}

/// A body cut off mid-way, as when the connection drops before the answer is complete.
fn dropped(body: Vec<u8>) -> Response {
    let half = body.len() / 2;
    let parts: Vec<Result<Bytes, std::io::Error>> = vec![
        Ok(Bytes::from(body[..half].to_vec())),
        Err(std::io::Error::other("connection dropped")),
    ];
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        Body::from_stream(futures_util::stream::iter(parts)),
    )
        .into_response()
}

pub async fn find(
    State(state): State<LinkedinState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let (delay, fault) = {
        let mut w = state.world();
        w.stats.api_calls += 1;
        let f = w.faults.clone();
        let fault = if w.faults.rate_limit_next > 0 {
            w.faults.rate_limit_next -= 1;
            Some(429)
        } else if w.faults.server_error_next > 0 {
            w.faults.server_error_next -= 1;
            Some(500)
        } else if w.roll(f.server_error_rate) {
            Some(503)
        } else if w.faults.drop_after_write_next > 0 {
            w.faults.drop_after_write_next -= 1;
            Some(0)
        } else {
            None
        };
        (f.delay_ms, fault)
    };
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    // Auth first, as LinkedIn's gateway does.
    let bearer = header_str(&headers, "authorization")
        .and_then(|v| v.split_once(' '))
        .filter(|(s, _)| s.eq_ignore_ascii_case("bearer"))
        .map(|(_, t)| t.trim().to_owned());
    let authorised = bearer
        .as_deref()
        .is_some_and(|t| t == TOKEN || state.world().tokens.iter().any(|k| k == t));
    if !authorised {
        return error(401, 65600, "INVALID_ACCESS_TOKEN", "Invalid access token");
    }
    match fault {
        Some(429) => {
            state.world().stats.rate_limited += 1;
            return error(
                429,
                101,
                "TOO_MANY_REQUESTS",
                "Resource level throttle APPLICATION DAY limit for calls to this resource is reached.",
            );
        }
        Some(500) => return error(500, 0, "INTERNAL_SERVER_ERROR", "Internal Server Error"),
        Some(503) => {
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                "<html><body>503 Service Unavailable</body></html>",
            )
                .into_response();
        }
        _ => {}
    }
    match header_str(&headers, "linkedin-version") {
        None => {
            return error(
                400,
                0,
                "VERSION_MISSING",
                "A version must be present. Please specify a version by adding the LinkedIn-Version header.",
            );
        }
        Some(v) if v.len() != 6 || !v.bytes().all(|b| b.is_ascii_digit()) || v < "202501" => {
            return error(
                426,
                0,
                "NONEXISTENT_VERSION",
                &format!("Requested version {v} is not active"),
            );
        }
        Some(_) => {}
    }
    if header_str(&headers, "x-restli-protocol-version") != Some("2.0.0") {
        return bad_request("Invalid query parameters passed to request");
    }
    let raw = query.unwrap_or_default();
    let Ok(url) = reqwest::Url::parse(&format!("http://sandbox/?{raw}")) else {
        return bad_request("Invalid query parameters passed to request");
    };
    let params: Vec<(String, String)> = url.query_pairs().into_owned().collect();
    let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    if get("q") != Some("owner") {
        return bad_request("Invalid query parameters passed to request");
    }
    let Some(account) = get("owner").and_then(|o| paren_value(o, "sponsoredAccount")) else {
        return bad_request("Invalid value for param: owner");
    };
    if !account.starts_with("urn:li:sponsoredAccount:") {
        return bad_request("Invalid value for param: owner");
    }
    if get("leadType").and_then(|l| paren_value(l, "leadType")) != Some("SPONSORED") {
        return bad_request("Invalid value for param: leadType");
    }
    let range = match get("submittedAtTimeRange") {
        None => (None, None),
        Some(r) => match time_range(r) {
            Some(r) => r,
            None => return bad_request("Invalid value for param: submittedAtTimeRange"),
        },
    };
    let number = |k: &str, default: u64| match get(k) {
        None => Some(default),
        Some(v) => v.parse::<u64>().ok(),
    };
    let Some(start) = number("start", 0) else {
        return bad_request("Invalid value for param: start");
    };
    let count = match number("count", 10) {
        Some(n) if n <= 100 => n,
        Some(_) => return bad_request("count must be at most 100"),
        None => return bad_request("Invalid value for param: count"),
    };
    let only_test = get("limitedToTestLeads") == Some("true");

    let (page, total) = {
        let w = state.world();
        if account != super::ACCOUNT {
            return error(
                403,
                100,
                "ACCESS_DENIED",
                "Not enough permissions to access: partnerApiLeadFormResponses.FINDER-owner.20260101",
            );
        }
        let mut hits: Vec<&StoredResponse> = w
            .responses
            .iter()
            .filter(|r| r.account == account)
            .filter(|r| range.0.is_none_or(|s| r.submitted_at_ms >= s))
            .filter(|r| range.1.is_none_or(|e| r.submitted_at_ms <= e))
            .filter(|r| !only_test || r.test)
            .collect();
        // Newest first.
        hits.sort_by(|a, b| {
            b.submitted_at_ms
                .cmp(&a.submitted_at_ms)
                .then(b.seq.cmp(&a.seq))
        });
        let total = hits.len() as u64;
        let page: Vec<Value> = hits
            .into_iter()
            .skip(usize::try_from(start).unwrap_or(usize::MAX))
            .take(usize::try_from(count).unwrap_or(usize::MAX))
            .map(element)
            .collect();
        (page, total)
    };
    let body = json!({
        "paging": {"start": start, "count": count, "links": [], "total": total},
        "elements": page
    });
    let bytes = serde_json::to_vec(&body).unwrap_or_default();
    if fault == Some(0) {
        return dropped(bytes);
    }
    ([(header::CONTENT_TYPE, "application/json")], bytes).into_response()
}
