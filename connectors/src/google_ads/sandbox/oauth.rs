//! Google's token endpoint, refresh grant only: form body, `expires_in: 3599`, the refresh token
//! is not rotated; `401 invalid_client` for a wrong client, `400 invalid_grant` for a revoked
//! or unknown refresh token (Google's own error shapes).

use std::collections::HashMap;

use axum::{
    Form, Json,
    extract::State,
    http::StatusCode,
    response::{IntoResponse, Response},
};
use serde_json::json;

use super::SandboxState;

fn refusal(state: &SandboxState, status: StatusCode, error: &str, description: &str) -> Response {
    state.world().stats.token_refusals += 1;
    (
        status,
        Json(json!({"error": error, "error_description": description})),
    )
        .into_response()
}

pub async fn token(
    State(state): State<SandboxState>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let options = state.options().clone();
    let get = |k: &str| form.get(k).map(String::as_str).unwrap_or("");
    if get("grant_type") != "refresh_token" {
        return refusal(
            &state,
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "Invalid grant_type: ",
        );
    }
    if get("client_id") != options.client_id || get("client_secret") != options.client_secret {
        return refusal(
            &state,
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "The OAuth client was not found.",
        );
    }
    let access_token = {
        let mut w = state.world();
        if !w.refresh_token_live || get("refresh_token") != options.refresh_token {
            drop(w);
            return refusal(
                &state,
                StatusCode::BAD_REQUEST,
                "invalid_grant",
                "Token has been expired or revoked.",
            );
        }
        w.stats.token_refreshes += 1;
        w.issue_token(options.token_lifetime)
    };
    Json(json!({
        "access_token": access_token,
        "expires_in": options.token_lifetime.as_secs(),
        "scope": "https://www.googleapis.com/auth/datamanager https://www.googleapis.com/auth/adwords",
        "token_type": "Bearer"
    }))
    .into_response()
}
