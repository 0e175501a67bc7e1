//! What happens to every `/crm/…` request before a handler sees it: counted as an API call,
//! then auth (`Zoho-oauthtoken`), the rolling-24-hour credits, the concurrency cap, and the
//! injected delay. Write faults (429/5xx/drops, item failures) live in the upsert handler.

use axum::{
    extract::{Request, State},
    http::{StatusCode, header},
    middleware::Next,
    response::Response,
};
use serde_json::json;

use super::{
    SandboxState,
    state::{credit_headers, zoho_error},
};

/// Decrements the in-flight count however the request ends (even if the client hangs up).
struct InFlight(SandboxState);

impl Drop for InFlight {
    fn drop(&mut self) {
        let mut w = self.0.world();
        w.in_flight = w.in_flight.saturating_sub(1);
    }
}

pub async fn gate(State(state): State<SandboxState>, request: Request, next: Next) -> Response {
    let options = state.options().clone();
    let token = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| *scheme == "Zoho-oauthtoken")
        .map(|(_, t)| t.trim().to_owned());
    let (guard, delay_ms) = {
        let mut w = state.world();
        w.stats.api_calls += 1;
        let Some(token) = token else {
            w.stats.unauthorized += 1;
            return zoho_error(
                StatusCode::UNAUTHORIZED,
                "AUTHENTICATION_FAILURE",
                "Authentication failed",
                json!({}),
            );
        };
        if !w.token_is_live(&token) {
            w.stats.unauthorized += 1;
            return zoho_error(
                StatusCode::UNAUTHORIZED,
                "INVALID_TOKEN",
                "invalid oauth token",
                json!({}),
            );
        }
        let (used, reset_at) = w.credits_in_window();
        if used >= options.daily_credits {
            w.stats.rate_limited += 1;
            let mut r = zoho_error(
                StatusCode::TOO_MANY_REQUESTS,
                "TOO_MANY_REQUESTS",
                "you have exceeded the API credit limit for the last 24 hours",
                json!({}),
            );
            credit_headers(&mut r, options.daily_credits, reset_at);
            return r;
        }
        if w.in_flight >= options.concurrency {
            w.stats.rate_limited += 1;
            return zoho_error(
                StatusCode::TOO_MANY_REQUESTS,
                "TOO_MANY_REQUESTS",
                "concurrency limit exceeded",
                json!({"limit": options.concurrency}),
            );
        }
        w.in_flight += 1;
        (InFlight(state.clone()), w.faults.delay_ms)
    };
    if delay_ms > 0 {
        tokio::time::sleep(std::time::Duration::from_millis(delay_ms)).await;
    }
    let response = next.run(request).await;
    drop(guard);
    response
}
