//! `POST /services/oauth2/token` with `grant_type=refresh_token`: Salesforce's answer has no
//! `expires_in` (a session lasts until the org's timeout or a revocation) and carries
//! `instance_url`; a new `refresh_token` only when rotation is on. Refusals are OAuth-style
//! `{"error","error_description"}` with 400.

use std::{collections::HashMap, time::Instant};

use axum::{
    Form, Json,
    extract::State,
    http::StatusCode,
    response::{IntoResponse, Response},
};
use serde_json::json;

use crate::salesforce::wire::TokenResponse;

use super::SandboxState;

fn refuse(state: &SandboxState, error: &str, description: &str) -> Response {
    state.world().stats.token_refusals += 1;
    (
        StatusCode::BAD_REQUEST,
        Json(json!({"error": error, "error_description": description})),
    )
        .into_response()
}

pub async fn token(
    State(state): State<SandboxState>,
    form: Result<Form<HashMap<String, String>>, axum::extract::rejection::FormRejection>,
) -> Response {
    let Ok(Form(form)) = form else {
        return refuse(&state, "invalid_request", "invalid request body");
    };
    let get = |k: &str| form.get(k).map(String::as_str).unwrap_or("");
    let options = state.options().clone();
    if get("grant_type") != "refresh_token" {
        return refuse(&state, "unsupported_grant_type", "grant type not supported");
    }
    if get("client_id") != options.client_id {
        return refuse(&state, "invalid_client_id", "client identifier invalid");
    }
    if get("client_secret") != options.client_secret {
        return refuse(&state, "invalid_client", "invalid client credentials");
    }
    let base = state.base_url().to_owned();
    let mut w = state.world();
    let presented = get("refresh_token");
    if !w.refresh_tokens.contains(presented) {
        drop(w);
        return refuse(&state, "invalid_grant", "expired access/refresh token");
    }
    let access_token = format!("00DSB0000000001!{}", w.random_token(96));
    w.sessions.insert(access_token.clone(), Instant::now());
    let refresh_token = if options.rotate_refresh_tokens {
        let fresh = format!("5Aep861{}", w.random_token(80));
        w.refresh_tokens.remove(presented);
        w.refresh_tokens.insert(fresh.clone());
        Some(fresh)
    } else {
        None
    };
    let signature = w.random_token(43);
    w.stats.token_refreshes += 1;
    drop(w);
    Json(TokenResponse {
        access_token,
        refresh_token,
        signature: format!("{signature}="),
        scope: "api refresh_token".to_owned(),
        instance_url: base.clone(),
        id: format!("{base}/id/00DSB0000000001AAA/005SB0000000001AAA"),
        token_type: "Bearer".to_owned(),
        issued_at: jiff::Timestamp::now().as_millisecond().to_string(),
    })
    .into_response()
}
