//! The shared OAuth lifecycle (`tandem_connectors::oauth`) against a tiny token server over
//! loopback HTTP: single-flight refreshes, rotation persisted before use, the saved token beating
//! the config's, and every way a token endpoint says no.
#![cfg(feature = "sandbox")]

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicU32, Ordering},
    },
    time::Duration,
};

use async_trait::async_trait;
use axum::{Form, Json, extract::State, http::StatusCode, response::IntoResponse};
use serde_json::json;
use tandem_connectors::{
    CallError, ConnectorState, TokenSet,
    context::MemoryState,
    oauth::{ClientAuth, OAuthClient, OAuthSettings},
};

/// How the token server answers.
#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Ok,
    /// Every refresh hands out a new refresh token and retires the used one.
    Rotate,
    InvalidGrant,
    ErrorWith200,
    Unavailable,
}

/// The refresh token and `Authorization` header of one token request.
type Seen = (String, Option<String>);

#[derive(Clone)]
struct Server {
    mode: Mode,
    refreshes: Arc<AtomicU32>,
    /// The refresh token and Authorization header of every request.
    seen: Arc<Mutex<Vec<Seen>>>,
    valid: Arc<Mutex<Vec<String>>>,
}

async fn token(
    State(s): State<Server>,
    headers: axum::http::HeaderMap,
    Form(form): Form<std::collections::HashMap<String, String>>,
) -> axum::response::Response {
    // Slow enough that concurrent callers pile up behind the first refresh.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let rt = form.get("refresh_token").cloned().unwrap_or_default();
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    s.seen.lock().unwrap().push((rt.clone(), auth));
    match s.mode {
        Mode::InvalidGrant => {
            return (
                StatusCode::BAD_REQUEST,
                Json(json!({"error": "invalid_grant", "error_description": "token revoked"})),
            )
                .into_response();
        }
        Mode::ErrorWith200 => return Json(json!({"error": "invalid_code"})).into_response(),
        Mode::Unavailable => {
            return (StatusCode::SERVICE_UNAVAILABLE, "upstream down").into_response();
        }
        Mode::Ok | Mode::Rotate => {}
    }
    if form.get("grant_type").map(String::as_str) != Some("refresh_token")
        || !s.valid.lock().unwrap().contains(&rt)
    {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": "invalid_grant"})),
        )
            .into_response();
    }
    let n = s.refreshes.fetch_add(1, Ordering::SeqCst) + 1;
    let refresh = if s.mode == Mode::Rotate {
        let fresh = format!("rt-{n}");
        let mut valid = s.valid.lock().unwrap();
        valid.retain(|t| *t != rt);
        valid.push(fresh.clone());
        fresh
    } else {
        rt
    };
    Json(
        json!({"access_token": format!("at-{n}"), "refresh_token": refresh,
                "expires_in": 1800, "token_type": "bearer", "hub_id": 42}),
    )
    .into_response()
}

async fn server(mode: Mode) -> (String, Server) {
    let s = Server {
        mode,
        refreshes: Arc::default(),
        seen: Arc::default(),
        valid: Arc::new(Mutex::new(vec!["rt-0".to_owned(), "rt-saved".to_owned()])),
    };
    let app = axum::Router::new()
        .route("/token", axum::routing::post(token))
        .with_state(s.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/token", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.ok() });
    (url, s)
}

fn settings(url: &str, auth: ClientAuth) -> OAuthSettings {
    OAuthSettings {
        token_url: url.to_owned(),
        client_id: "cid".to_owned(),
        client_secret: "csecret".to_owned().into(),
        refresh_token: "rt-0".to_owned().into(),
        auth,
        refresh_ahead: Duration::from_secs(300),
        assumed_lifetime: None,
    }
}

fn client(url: &str, state: Arc<dyn ConnectorState>) -> OAuthClient {
    OAuthClient::new(
        settings(url, ClientAuth::Body),
        reqwest::Client::new(),
        state,
    )
}

fn expired(refresh: &str) -> TokenSet {
    TokenSet {
        access_token: "at-old".into(),
        refresh_token: Some(refresh.into()),
        expires_at_ms: Some(jiff::Timestamp::now().as_millisecond() - 1000),
        extra: Default::default(),
    }
}

#[tokio::test]
async fn twenty_concurrent_calls_on_an_expired_token_make_one_refresh() {
    let (url, s) = server(Mode::Ok).await;
    let state = Arc::new(MemoryState::default());
    state.save_token(&expired("rt-0")).await.unwrap();
    let c = Arc::new(client(&url, state.clone()));
    let calls: Vec<_> = (0..20)
        .map(|_| {
            let c = c.clone();
            tokio::spawn(async move { c.token().await })
        })
        .collect();
    for call in calls {
        assert_eq!(call.await.unwrap().unwrap().access_token, "at-1");
    }
    assert_eq!(s.refreshes.load(Ordering::SeqCst), 1);
    let saved = state.load_token().await.unwrap().unwrap();
    assert_eq!(saved.access_token, "at-1");
    assert_eq!(saved.extra.get("hub_id").map(String::as_str), Some("42"));
    // Fresh for 30 minutes: no refresh on the next call.
    c.token().await.unwrap();
    assert_eq!(s.refreshes.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_rotated_refresh_token_is_saved_before_use_and_used_next_time() {
    let (url, s) = server(Mode::Rotate).await;
    let state = Arc::new(MemoryState::default());
    let c = client(&url, state.clone());
    let first = c.token().await.unwrap();
    assert_eq!(first.refresh_token.as_deref(), Some("rt-1"));
    assert_eq!(
        state
            .load_token()
            .await
            .unwrap()
            .unwrap()
            .refresh_token
            .as_deref(),
        Some("rt-1"),
        "persisted by the time the token is handed out"
    );
    let second = c.token_after_rejection(&first).await.unwrap();
    assert_eq!(second.access_token, "at-2");
    let seen: Vec<String> = s
        .seen
        .lock()
        .unwrap()
        .iter()
        .map(|(rt, _)| rt.clone())
        .collect();
    assert_eq!(
        seen,
        ["rt-0", "rt-1"],
        "the rotated token, not the config's, on the next refresh"
    );

    // A restarted daemon (new client, same store) continues with the rotated token.
    let again = client(&url, state.clone());
    again.token_after_rejection(&second).await.unwrap();
    assert_eq!(s.seen.lock().unwrap().last().unwrap().0, "rt-2");
}

/// A store whose writes fail: a rotated token that can't be saved must not be used.
struct ReadOnlyStore;

#[async_trait]
impl ConnectorState for ReadOnlyStore {
    async fn load_token(&self) -> Result<Option<TokenSet>, String> {
        Ok(None)
    }
    async fn save_token(&self, _: &TokenSet) -> Result<(), String> {
        Err("disk full".into())
    }
    async fn record_remote_id(&self, _: i64, _: &str) -> Result<(), String> {
        Ok(())
    }
}

#[tokio::test]
async fn a_token_that_cannot_be_persisted_is_not_handed_out() {
    let (url, _s) = server(Mode::Rotate).await;
    match client(&url, Arc::new(ReadOnlyStore)).token().await {
        Err(CallError::Transient { message, .. }) => {
            assert!(
                message.contains("could not persist the OAuth token: disk full"),
                "{message}"
            )
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_saved_token_beats_the_configs() {
    let (url, s) = server(Mode::Ok).await;
    // Still valid: used as is, no refresh at all.
    let state = Arc::new(MemoryState::default());
    let mut valid = expired("rt-saved");
    valid.access_token = "at-saved".into();
    valid.expires_at_ms = Some(jiff::Timestamp::now().as_millisecond() + 3_600_000);
    state.save_token(&valid).await.unwrap();
    assert_eq!(
        client(&url, state).token().await.unwrap().access_token,
        "at-saved"
    );
    assert_eq!(s.refreshes.load(Ordering::SeqCst), 0);

    // Expired: refreshed with the saved refresh token, not the config's `rt-0`.
    let state = Arc::new(MemoryState::default());
    state.save_token(&expired("rt-saved")).await.unwrap();
    client(&url, state).token().await.unwrap();
    assert_eq!(s.seen.lock().unwrap()[0].0, "rt-saved");
}

async fn refusal(mode: Mode) -> CallError {
    let (url, _s) = server(mode).await;
    client(&url, Arc::new(MemoryState::default()))
        .token()
        .await
        .expect_err("the token endpoint refuses")
}

#[tokio::test]
async fn invalid_grant_is_reconnect_needed() {
    match refusal(Mode::InvalidGrant).await {
        CallError::Auth { status, message } => {
            assert_eq!(status, 401);
            assert!(message.starts_with("reconnect needed"), "{message}");
            assert!(
                message.contains("invalid_grant: token revoked"),
                "{message}"
            );
            assert!(!message.contains("csecret") && !message.contains("rt-0"));
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_200_with_an_error_is_an_auth_error() {
    match refusal(Mode::ErrorWith200).await {
        CallError::Auth { message, .. } => {
            assert!(
                message.contains("reconnect needed") && message.contains("invalid_code"),
                "{message}"
            )
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_5xx_from_the_token_endpoint_is_transient() {
    match refusal(Mode::Unavailable).await {
        CallError::Transient { message, .. } => assert!(message.contains("503"), "{message}"),
        other => panic!("{other:?}"),
    }
    // Nothing listening at all: transient too.
    let c = client("http://127.0.0.1:9/token", Arc::new(MemoryState::default()));
    assert!(matches!(c.token().await, Err(CallError::Transient { .. })));
}

#[tokio::test]
async fn a_rejection_after_another_task_refreshed_makes_no_second_refresh() {
    let (url, s) = server(Mode::Ok).await;
    let c = client(&url, Arc::new(MemoryState::default()));
    let stale = c.token().await.unwrap();
    let fresh = c.token_after_rejection(&stale).await.unwrap();
    assert_eq!(
        (
            fresh.access_token.as_str(),
            s.refreshes.load(Ordering::SeqCst)
        ),
        ("at-2", 2)
    );
    // A second task that also held `stale` gets the newer token without a refresh.
    let other = c.token_after_rejection(&stale).await.unwrap();
    assert_eq!(other.access_token, "at-2");
    assert_eq!(s.refreshes.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn basic_client_auth_sends_the_secret_in_the_header_only() {
    let (url, s) = server(Mode::Ok).await;
    let c = OAuthClient::new(
        settings(&url, ClientAuth::Basic),
        reqwest::Client::new(),
        Arc::new(MemoryState::default()),
    );
    c.token().await.unwrap();
    let (_, auth) = s.seen.lock().unwrap()[0].clone();
    // base64("cid:csecret")
    assert_eq!(auth.as_deref(), Some("Basic Y2lkOmNzZWNyZXQ="));
}
