//! `POST /oauth/v1/token` with `grant_type=refresh_token` (form-encoded `client_id`,
//! `client_secret`, `refresh_token`), answered like HubSpot: `AccessTokenResponse` with
//! `expires_in` 1800 and the same refresh token (unless rotation is switched on for tests), or a
//! 400 `{"status":"BAD_…","message":…}` naming what was wrong. Not rate limited, not counted as
//! an API call.

use axum::{
    Json,
    body::Bytes,
    extract::State,
    http::{HeaderMap, header},
    response::{IntoResponse, Response},
};
use serde_json::json;

use super::{SandboxState, errors};

fn form(body: &[u8]) -> Vec<(String, String)> {
    reqwest::Url::parse(&format!(
        "http://sandbox/?{}",
        String::from_utf8_lossy(body)
    ))
    .map(|u| {
        u.query_pairs()
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect()
    })
    .unwrap_or_default()
}

pub async fn token(State(state): State<SandboxState>, headers: HeaderMap, body: Bytes) -> Response {
    let options = state.options().clone();
    let is_form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.to_ascii_lowercase()
                .starts_with("application/x-www-form-urlencoded")
        });
    let fields = if is_form { form(&body) } else { Vec::new() };
    let get = |k: &str| {
        fields
            .iter()
            .find(|(name, _)| name == k)
            .map(|(_, v)| v.as_str())
            .unwrap_or("")
    };
    let mut w = state.world();
    let refused = |w: &mut super::state::World, status: &str, message: &str| {
        w.stats.token_refused += 1;
        let cid = w.correlation_id();
        errors::oauth_error(status, message, cid)
    };
    if get("grant_type") != "refresh_token" {
        return refused(&mut w, "BAD_GRANT_TYPE", "missing or unknown grant type");
    }
    if get("client_id") != options.client_id {
        return refused(&mut w, "BAD_CLIENT_ID", "missing or unknown client id");
    }
    if get("client_secret") != options.client_secret {
        return refused(
            &mut w,
            "BAD_CLIENT_SECRET",
            "missing or invalid client secret",
        );
    }
    let used = get("refresh_token").to_owned();
    if !w.refresh_tokens.contains(&used) {
        return refused(
            &mut w,
            "BAD_REFRESH_TOKEN",
            "missing or invalid refresh token",
        );
    }
    let (access, refresh) = w.issue_tokens(&used, &options);
    w.stats.token_refreshes += 1;
    drop(w);
    Json(json!({
        "token_type": "bearer",
        "refresh_token": refresh,
        "access_token": access,
        "expires_in": options.access_token_lifetime.as_secs(),
        "token_use": "access_token",
        "hub_id": 24_681_357,
        "user_id": 1_234_567,
        "scopes": ["oauth", "crm.objects.contacts.read", "crm.objects.contacts.write", "crm.schemas.contacts.read"],
    }))
    .into_response()
}
