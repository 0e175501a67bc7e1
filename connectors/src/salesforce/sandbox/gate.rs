//! What happens to every `/services/data/…` request before a handler sees it, in Salesforce's
//! order: API version, session, daily budget, then the injected faults (concurrency limit, 5xx,
//! delay; on writes only except the delay). After a write, `drop_after_write_next` cuts the
//! connection instead of answering. Every answer carries `Sforce-Limit-Info`.

use axum::{
    body::{Body, Bytes},
    extract::{Request, State},
    http::{HeaderMap, HeaderValue, Method, header},
    middleware::Next,
    response::Response,
};

use crate::salesforce::{limits::LIMIT_INFO, parse_api_version};

use super::{LoggedRequest, SandboxState, errors};

/// Kept for assertions; older entries are dropped past this many.
const LOG_LIMIT: usize = 500;

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// A response whose body fails after the status line: the client sees the connection die.
fn dropped_connection() -> Response {
    let failing = futures_util::stream::once(async {
        Err::<Bytes, std::io::Error>(std::io::Error::new(
            std::io::ErrorKind::ConnectionAborted,
            "salesforce sandbox dropped the connection (fault injection)",
        ))
    });
    let mut r = Response::new(Body::from_stream(failing));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json;charset=UTF-8"),
    );
    r
}

fn with_usage(mut response: Response, used: u64, max: u64) -> Response {
    if let Ok(v) = HeaderValue::from_str(&format!("api-usage={used}/{max}")) {
        response.headers_mut().insert(LIMIT_INFO, v);
    }
    response
}

pub async fn gate(State(state): State<SandboxState>, request: Request, next: Next) -> Response {
    let options = state.options().clone();
    let max = options.daily_limit;
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let query = request.uri().query().map(str::to_owned);
    let is_write = (method == Method::POST || method == Method::PATCH || method == Method::DELETE)
        && path.contains("/composite/sobjects");

    // Buffer the body so the log can keep it; handlers get it back unchanged.
    let (parts, body) = request.into_parts();
    let bytes = axum::body::to_bytes(body, 16 * 1024 * 1024)
        .await
        .unwrap_or_default();
    let request = Request::from_parts(parts, Body::from(bytes.clone()));

    let token = bearer(request.headers()).map(str::to_owned);
    let version_ok = path
        .strip_prefix("/services/data/")
        .and_then(|rest| rest.split('/').next())
        .and_then(parse_api_version)
        .is_some();

    let (used, faults) = {
        let mut w = state.world();
        w.stats.api_calls += 1;
        if w.stats.log.len() >= LOG_LIMIT {
            w.stats.log.remove(0);
        }
        w.stats.log.push(LoggedRequest {
            method: method.to_string(),
            path: path.clone(),
            query: query.clone(),
            body: serde_json::from_slice(&bytes).ok(),
        });
        let live = token.as_deref().is_some_and(|t| {
            w.sessions.get(t).is_some_and(|issued| {
                options
                    .session_timeout
                    .is_none_or(|timeout| issued.elapsed() < timeout)
            })
        });
        if !live {
            w.stats.unauthorized += 1;
            return errors::invalid_session();
        }
        if !version_ok {
            let used = w.daily_used;
            return with_usage(errors::not_found(), used, max);
        }
        if w.daily_used >= max {
            w.stats.rate_limited += 1;
            let used = w.daily_used;
            return with_usage(errors::daily_limit(), used, max);
        }
        w.daily_used += 1;
        let used = w.daily_used;
        if is_write && w.faults.rate_limit_next > 0 {
            w.faults.rate_limit_next -= 1;
            w.stats.rate_limited += 1;
            return with_usage(errors::concurrent_limit(), used, max);
        }
        let rate = w.faults.server_error_rate;
        if is_write && (w.faults.server_error_next > 0 || w.roll(rate)) {
            w.faults.server_error_next = w.faults.server_error_next.saturating_sub(1);
            w.stats.server_errors += 1;
            return with_usage(errors::unavailable(), used, max);
        }
        (used, w.faults.clone())
    };
    if faults.delay_ms > 0 {
        tokio::time::sleep(std::time::Duration::from_millis(faults.delay_ms)).await;
    }
    let response = next.run(request).await;
    if is_write && response.status().is_success() {
        let mut w = state.world();
        if w.faults.drop_after_write_next > 0 {
            w.faults.drop_after_write_next -= 1;
            w.stats.drops += 1;
            return dropped_connection();
        }
    }
    with_usage(response, used, max)
}
