//! What happens to every API request before a handler sees it, in Pipedrive's order: auth
//! (`x-api-token`, `?api_token=`, or an OAuth Bearer token that hasn't expired), the burst window
//! per token (and the search API's own), the daily token budget, then injected faults. Every
//! answer carries `x-ratelimit-limit/-remaining/-reset` and the daily budget header;
//! `x-daily-requests-left` comes on writes made with an api_token.
//!
//! Token costs per request (documented as examples by Pipedrive, unconfirmed per endpoint):
//! single GET 2, list 20 (persons, deals, leads, fields, participants), write or delete 10,
//! search 40. Faults apply to writes and deletes.

use std::time::Duration;

use axum::{
    extract::{Request, State},
    http::{HeaderValue, Method, header},
    middleware::Next,
    response::Response,
};

use crate::pipedrive::limits::{
    H_DAILY_REQUESTS_LEFT, H_DAILY_TOKENS_LEFT, H_LIMIT, H_REMAINING, H_RESET,
};

use super::{SandboxState, errors, state::admit};

/// Pipedrive's fair-use cap on POST/PUT per api_token per day.
const DAILY_WRITES: u64 = 10_000;

fn credential(request: &Request, state: &SandboxState) -> Option<(String, bool)> {
    let options = state.options();
    if let Some(t) = request
        .headers()
        .get("x-api-token")
        .and_then(|v| v.to_str().ok())
    {
        return (t == options.api_token).then(|| (t.to_owned(), true));
    }
    if let Some(q) = request.uri().query()
        && let Some(t) = q.split('&').find_map(|kv| kv.strip_prefix("api_token="))
    {
        return (t == options.api_token).then(|| (t.to_owned(), true));
    }
    let value = request
        .headers()
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, token) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let w = state.world();
    let valid = w
        .access_tokens
        .get(token.trim())
        .is_some_and(|exp| *exp > std::time::Instant::now());
    valid.then(|| (token.trim().to_owned(), false))
}

fn cost(method: &Method, path: &str, has_ids: bool) -> u64 {
    if path.ends_with("/search") {
        40
    } else if *method != Method::GET {
        10
    } else if (path.ends_with("/persons") || path.ends_with("/deals")) && !has_ids
        || path.ends_with("/leads")
        || path.ends_with("personFields")
        || path.ends_with("dealFields")
        || path.ends_with("/participants")
    {
        20
    } else {
        2
    }
}

fn secs(d: Duration) -> u64 {
    (d.as_millis().div_ceil(1000) as u64).max(1)
}

fn until_midnight() -> u64 {
    let s = jiff::Timestamp::now().as_second().rem_euclid(86_400) as u64;
    86_400 - s
}

pub async fn gate(State(state): State<SandboxState>, request: Request, next: Next) -> Response {
    let options = state.options().clone();
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let is_write = method == Method::POST
        || method == Method::PATCH
        || method == Method::PUT
        || method == Method::DELETE;
    let has_ids = request
        .uri()
        .query()
        .is_some_and(|q| q.split('&').any(|kv| kv.starts_with("ids=")));
    state.world().stats.api_calls += 1;
    let Some((token, is_api_token)) = credential(&request, &state) else {
        state.world().stats.unauthorized += 1;
        return errors::unauthorized();
    };
    let (remaining, budget_left, writes_left, forced) = {
        let mut w = state.world();
        let window = w.windows.entry(token.clone()).or_default();
        let remaining = match admit(window, options.rate_limit, options.rate_window) {
            Ok(r) => r,
            Err(wait) => {
                w.stats.rate_limited += 1;
                let mut r = errors::rate_limited(secs(wait), false);
                let h = r.headers_mut();
                h.insert(H_LIMIT, HeaderValue::from(options.rate_limit));
                h.insert(H_REMAINING, HeaderValue::from(0));
                h.insert(H_RESET, HeaderValue::from(secs(wait)));
                return r;
            }
        };
        if path.ends_with("/search") {
            let sw = w.search_windows.entry(token.clone()).or_default();
            if let Err(wait) = admit(sw, options.search_rate_limit, options.rate_window) {
                w.stats.rate_limited += 1;
                let mut r = errors::rate_limited(secs(wait), false);
                r.headers_mut()
                    .insert(H_RESET, HeaderValue::from(secs(wait)));
                return r;
            }
        }
        let c = cost(&method, &path, has_ids);
        if w.budget_used + c > options.daily_budget {
            w.stats.rate_limited += 1;
            let mut r = errors::rate_limited(until_midnight(), true);
            r.headers_mut()
                .insert(H_DAILY_TOKENS_LEFT, HeaderValue::from(0));
            return r;
        }
        w.budget_used += c;
        if is_write {
            w.writes_today += 1;
        }
        // Faults on write calls, in order: 429, 5xx, refusal, drop.
        let mut forced = None;
        let (p_error, p_item) = (w.faults.server_error_rate, w.faults.item_failure_rate);
        let roll_error = is_write && w.roll(p_error);
        let roll_item = is_write && !roll_error && w.roll(p_item);
        let throttle_now = is_write
            && match w.throttle_after_writes {
                Some(0) => {
                    w.throttle_after_writes = None;
                    true
                }
                Some(n) => {
                    w.throttle_after_writes = Some(n - 1);
                    false
                }
                None => false,
            };
        if is_write {
            if throttle_now {
                forced = Some(Forced::RateLimit);
            } else if w.faults.rate_limit_next > 0 {
                w.faults.rate_limit_next -= 1;
                forced = Some(Forced::RateLimit);
            } else if w.faults.server_error_next > 0 {
                w.faults.server_error_next -= 1;
                forced = Some(Forced::ServerError);
            } else if roll_error {
                forced = Some(Forced::ServerError);
            } else if roll_item {
                forced = Some(Forced::Invalid);
            } else if w.faults.drop_after_write_next > 0 {
                w.faults.drop_after_write_next -= 1;
                forced = Some(Forced::Drop);
            }
        }
        (
            remaining,
            options.daily_budget.saturating_sub(w.budget_used),
            DAILY_WRITES.saturating_sub(w.writes_today),
            forced,
        )
    };
    let delay = state.world().faults.delay_ms;
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    let mut response = match forced {
        Some(Forced::RateLimit) => {
            state.world().stats.rate_limited += 1;
            errors::rate_limited(secs(options.rate_window), false)
        }
        Some(Forced::ServerError) => {
            state.world().stats.server_errors += 1;
            errors::server_error(500)
        }
        Some(Forced::Invalid) if path.contains("/deals") => {
            errors::validation("custom_fields: Invalid value (sandbox: injected refusal)")
        }
        Some(Forced::Invalid) if method == Method::DELETE => errors::respond(
            axum::http::StatusCode::BAD_REQUEST,
            "Person can not be deleted (sandbox: injected refusal)",
            None,
            false,
        ),
        Some(Forced::Invalid) => {
            errors::validation("emails/0/value: Invalid email address (sandbox: injected refusal)")
        }
        Some(Forced::Drop) => {
            let _applied = next.run(request).await;
            state.world().stats.drops += 1;
            return errors::dropped_connection();
        }
        None => next.run(request).await,
    };
    let h = response.headers_mut();
    h.insert(H_LIMIT, HeaderValue::from(options.rate_limit));
    if !h.contains_key(H_REMAINING) {
        h.insert(H_REMAINING, HeaderValue::from(remaining));
    }
    h.insert(H_RESET, HeaderValue::from(secs(options.rate_window)));
    h.insert(H_DAILY_TOKENS_LEFT, HeaderValue::from(budget_left));
    if is_write && method != Method::DELETE && is_api_token {
        h.insert(H_DAILY_REQUESTS_LEFT, HeaderValue::from(writes_left));
    }
    response
}

enum Forced {
    RateLimit,
    ServerError,
    Invalid,
    Drop,
}
