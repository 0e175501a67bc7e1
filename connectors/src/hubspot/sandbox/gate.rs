//! What happens to every `/crm/…` request before a handler sees it, in HubSpot's order: auth
//! (the private-app token, or an unexpired OAuth access token), then the rate limit, then the
//! injected faults (forced 429, delay, 5xx). Every admitted answer carries HubSpot's
//! `X-HubSpot-RateLimit-*` headers (except CRM search answers, which have none); OAuth calls get
//! no `…-Daily` ones (they have no daily cap).

use axum::{
    extract::{Request, State},
    http::{HeaderMap, HeaderValue, header},
    middleware::Next,
    response::Response,
};

use crate::hubspot::limits::{H_DAILY, H_DAILY_REMAINING, H_INTERVAL_MS, H_MAX, H_REMAINING};

use super::{
    SandboxState, errors,
    state::{Budget, Caller},
};

/// OAuth apps share one window per account, whichever access token they use.
const OAUTH_WINDOW: &str = "oauth-app";

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

fn add_budget_headers(response: &mut Response, budget: Budget) {
    let h = response.headers_mut();
    if budget.has_daily {
        h.insert(H_DAILY, HeaderValue::from(budget.daily));
        h.insert(H_DAILY_REMAINING, HeaderValue::from(budget.daily_remaining));
    }
    h.insert(
        H_INTERVAL_MS,
        HeaderValue::from(u64::try_from(budget.interval.as_millis()).unwrap_or(u64::MAX)),
    );
    h.insert(H_MAX, HeaderValue::from(budget.max));
    h.insert(H_REMAINING, HeaderValue::from(budget.remaining));
}

pub async fn gate(State(state): State<SandboxState>, request: Request, next: Next) -> Response {
    let options = state.options().clone();
    let token = bearer(request.headers()).map(str::to_owned);
    // CRM search answers carry no X-HubSpot-RateLimit-* headers (VENDOR-NOTES §1.3).
    let is_search = request.uri().path().ends_with("/search");
    let decided = {
        let mut w = state.world();
        w.stats.requests += 1;
        let caller = match token.as_deref() {
            Some(t) => w.caller(t, &options),
            None => Caller::Unknown,
        };
        let (window, daily) = match caller {
            Caller::PrivateApp => (token.as_deref().unwrap_or_default(), true),
            Caller::OAuth => (OAUTH_WINDOW, false),
            Caller::Expired { at, ago_secs } => {
                w.stats.unauthorized += 1;
                let cid = w.correlation_id();
                return errors::expired(at, ago_secs, cid);
            }
            Caller::Unknown => {
                w.stats.unauthorized += 1;
                let cid = w.correlation_id();
                return errors::unauthorized(cid);
            }
        };
        let token = window;
        match w.admit(token, daily, &options) {
            Err(throttled) => {
                w.stats.rate_limited += 1;
                let cid = w.correlation_id();
                let retry = options
                    .retry_after_header
                    .then_some(throttled.retry_after_secs);
                let mut response = errors::rate_limited(throttled.policy, retry, cid);
                add_budget_headers(&mut response, throttled.budget);
                return response;
            }
            Ok(budget) => {
                let faults = w.faults.clone();
                let forced_429 = w.roll(faults.rate_limit_rate);
                let fail = !forced_429 && w.roll(faults.error_rate);
                let wait = w.window_wait_secs(token, &options);
                (budget, faults, forced_429, fail, wait)
            }
        }
    };
    let (budget, faults, forced_429, fail, wait) = decided;

    let mut response = if forced_429 {
        let cid = state.world().correlation_id();
        errors::rate_limited(
            "TEN_SECONDLY_ROLLING",
            options.retry_after_header.then_some(wait),
            cid,
        )
    } else {
        if faults.delay_ms > 0 {
            tokio::time::sleep(std::time::Duration::from_millis(faults.delay_ms)).await;
        }
        if fail {
            let cid = state.world().correlation_id();
            errors::server_error(faults.error_status.unwrap_or(503), cid)
        } else {
            next.run(request).await
        }
    };
    let status = response.status();
    {
        let mut w = state.world();
        if status.as_u16() == 429 {
            w.stats.rate_limited += 1;
        } else if status.is_server_error() {
            w.stats.server_errors += 1;
        }
    }
    if !is_search {
        add_budget_headers(&mut response, budget);
    }
    response
}
