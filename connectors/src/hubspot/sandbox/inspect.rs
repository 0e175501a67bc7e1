//! `/__sandbox/*`: look inside the fake and change its faults over HTTP, so the demo and shell
//! scripts can drive it without linking the crate. Not part of HubSpot's API; no auth.

use axum::{
    Json,
    extract::State,
    http::StatusCode,
    response::{IntoResponse, Response},
};
use serde_json::json;

use super::{Faults, SandboxState};

pub async fn contacts(State(state): State<SandboxState>) -> Response {
    Json(state.contacts()).into_response()
}

pub async fn deals(State(state): State<SandboxState>) -> Response {
    Json(state.deals()).into_response()
}

pub async fn stats(State(state): State<SandboxState>) -> Response {
    Json(state.stats()).into_response()
}

pub async fn get_faults(State(state): State<SandboxState>) -> Response {
    Json(state.faults()).into_response()
}

/// Replaces every fault setting at once; fields left out are off.
pub async fn set_faults(
    State(state): State<SandboxState>,
    body: Result<Json<Faults>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let faults = match body {
        Ok(Json(f)) => f,
        Err(e) => {
            return (
                StatusCode::BAD_REQUEST,
                Json(json!({"error": e.body_text()})),
            )
                .into_response();
        }
    };
    match state.set_faults(faults) {
        Ok(()) => Json(state.faults()).into_response(),
        Err(message) => (StatusCode::BAD_REQUEST, Json(json!({"error": message}))).into_response(),
    }
}
