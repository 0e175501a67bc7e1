//! Zoho Accounts' token endpoint, refresh grant only: parameters in the query string, every
//! answer a 200 (a refusal carries just `error`), 1-hour tokens, `api_domain` = this sandbox.

use std::collections::HashMap;

use axum::{
    Json,
    extract::{Query, State},
    response::{IntoResponse, Response},
};

use super::SandboxState;
use crate::zoho::wire::TokenAnswer;

fn refusal(state: &SandboxState, error: &str) -> Response {
    state.world().stats.token_refusals += 1;
    Json(TokenAnswer {
        error: Some(error.to_owned()),
        ..Default::default()
    })
    .into_response()
}

pub async fn token(
    State(state): State<SandboxState>,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    let options = state.options().clone();
    let get = |k: &str| params.get(k).map(String::as_str).unwrap_or("");
    if get("grant_type") != "refresh_token" {
        return refusal(&state, "unsupported_grant_type");
    }
    if get("client_id") != options.client_id || get("client_secret") != options.client_secret {
        return refusal(&state, "invalid_client");
    }
    let access_token = {
        let mut w = state.world();
        if !w.refresh_tokens.contains(get("refresh_token")) {
            drop(w);
            return refusal(&state, "invalid_code");
        }
        w.stats.token_refreshes += 1;
        w.issue_token(options.token_lifetime)
    };
    Json(TokenAnswer {
        access_token: Some(access_token),
        scope: Some(
            "ZohoCRM.modules.ALL ZohoCRM.settings.fields.READ ZohoCRM.coql.READ".to_owned(),
        ),
        api_domain: Some(state.base_url().to_owned()),
        token_type: Some("Bearer".to_owned()),
        expires_in: Some(options.token_lifetime.as_secs()),
        error: None,
    })
    .into_response()
}
