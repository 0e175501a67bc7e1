//! `POST /oauth/token` as Pipedrive runs it: client credentials in HTTP Basic auth, a form body
//! with `grant_type=refresh_token`, an answer with `access_token`, `token_type`, `expires_in`,
//! `scope`, `refresh_token` and `api_domain` (here: the sandbox itself).

use std::time::Instant;

use axum::{
    Form, Json,
    extract::State,
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde_json::json;

use super::SandboxState;

fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    (
        status,
        Json(json!({"success": false, "error": error, "error_description": description})),
    )
        .into_response()
}

/// Standard base64 (with or without padding), enough for a Basic header.
fn base64_decode(s: &str) -> Option<Vec<u8>> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::new();
    let mut buf = 0u32;
    let mut bits = 0;
    for c in s.trim().trim_end_matches('=').bytes() {
        let v = ALPHABET.iter().position(|a| *a == c)? as u32;
        buf = (buf << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((buf >> bits) as u8);
            buf &= (1 << bits) - 1;
        }
    }
    Some(out)
}

fn basic(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = String::from_utf8(base64_decode(encoded)?).ok()?;
    let (id, secret) = decoded.split_once(':')?;
    Some((id.to_owned(), secret.to_owned()))
}

pub async fn token(
    State(state): State<SandboxState>,
    headers: HeaderMap,
    Form(form): Form<std::collections::HashMap<String, String>>,
) -> Response {
    let options = state.options().clone();
    match basic(&headers) {
        Some((id, secret)) if id == options.client_id && secret == options.client_secret => {}
        _ => {
            return oauth_error(
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                "Invalid client credentials",
            );
        }
    }
    if form.get("grant_type").map(String::as_str) != Some("refresh_token") {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "Only refresh_token is supported here",
        );
    }
    let presented = form.get("refresh_token").cloned().unwrap_or_default();
    let mut w = state.world();
    if !w.refresh_tokens.contains(&presented) {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            "Invalid refresh token",
        );
    }
    w.stats.token_refreshes += 1;
    let access = w.new_token("sandbox-access-");
    w.access_tokens.insert(
        access.clone(),
        Instant::now() + options.access_token_lifetime,
    );
    let refresh = if options.rotate_refresh_tokens {
        w.refresh_tokens.remove(&presented);
        let r = w.new_token("sandbox-refresh-");
        w.refresh_tokens.insert(r.clone());
        r
    } else {
        presented
    };
    Json(json!({
        "access_token": access,
        "token_type": "Bearer",
        "refresh_token": refresh,
        "scope": "base,contacts:full,leads:full",
        "expires_in": options.access_token_lifetime.as_secs(),
        "api_domain": state.inner.base_url,
    }))
    .into_response()
}

#[cfg(test)]
mod tests {
    use super::base64_decode;

    #[test]
    fn base64_decodes_basic_credentials() {
        assert_eq!(
            base64_decode("YWxhZGRpbjpvcGVuc2VzYW1l").unwrap(),
            b"aladdin:opensesame"
        );
        assert_eq!(base64_decode("YQ==").unwrap(), b"a");
        assert!(base64_decode("*").is_none());
    }
}
