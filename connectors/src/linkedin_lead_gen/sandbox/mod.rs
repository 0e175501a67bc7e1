//! A faithful fake of LinkedIn's Lead Sync finder (feature `sandbox`), for tests and the demo:
//! `GET /rest/leadFormResponses?q=owner&owner=(sponsoredAccount:…)&leadType=(leadType:SPONSORED)
//! &submittedAtTimeRange=(start:…,end:…)&start=…&count=…` with Rest.li 2.0 query syntax, the
//! `LinkedIn-Version` and `X-Restli-Protocol-Version` headers checked, `start`/`count` paging with
//! `paging.total`, newest first, LinkedIn's `{"status","serviceErrorCode","code","message"}` error
//! bodies, 429 throttles, the OAuth refresh endpoint (`POST /oauth/v2/accessToken`), and faults.
//!
//! Filtering is on each response's own `submittedAt` (both ends inclusive); a response added with a
//! past timestamp models a late-arriving lead: stamped in the past, visible from now on.

mod finder;
pub mod source;

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex, MutexGuard},
};

use axum::{
    Form, Json, Router,
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::{get, post},
};
use rand::{Rng, SeedableRng, rngs::StdRng};
use serde::Deserialize;
use tokio::{net::TcpListener, sync::oneshot, task::JoinHandle};

use crate::sandbox::{CrmFaults, CrmStats};

/// The access token the sandbox accepts from the start.
pub const TOKEN: &str = "sandbox-linkedin-token";
pub const CLIENT_ID: &str = "sandbox-linkedin-client";
pub const CLIENT_SECRET: &str = "sandbox-linkedin-secret";
pub const REFRESH_TOKEN: &str = "sandbox-linkedin-refresh";
/// The ad account the sandbox's forms belong to.
pub const ACCOUNT: &str = "urn:li:sponsoredAccount:500100200";
/// The form every sandbox lead is submitted on.
pub const FORM_ID: i64 = 7_234_246;

/// One stored form response.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredResponse {
    pub id: String,
    pub account: String,
    pub submitted_at_ms: i64,
    pub email: String,
    pub first_name: String,
    pub test: bool,
    pub campaign: i64,
    pub creative: i64,
    /// Insertion order, to break timestamp ties.
    pub seq: u64,
}

#[derive(Debug)]
pub(crate) struct World {
    pub responses: Vec<StoredResponse>,
    pub faults: CrmFaults,
    pub stats: CrmStats,
    pub tokens: Vec<String>,
    pub rng: StdRng,
    pub seq: u64,
}

impl World {
    pub fn roll(&mut self, p: f64) -> bool {
        p > 0.0 && self.rng.random_bool(p.clamp(0.0, 1.0))
    }
}

/// Shared sandbox state.
#[derive(Clone)]
pub struct LinkedinState(Arc<Mutex<World>>);

impl LinkedinState {
    pub(crate) fn world(&self) -> MutexGuard<'_, World> {
        // A panic while holding the lock can't leave the world half-written in a way that
        // matters to a fake; keep serving.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[derive(Deserialize)]
struct TokenForm {
    grant_type: Option<String>,
    refresh_token: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
}

async fn token(
    axum::extract::State(state): axum::extract::State<LinkedinState>,
    Form(f): Form<TokenForm>,
) -> Response {
    let ok = f.grant_type.as_deref() == Some("refresh_token")
        && f.client_id.as_deref() == Some(CLIENT_ID)
        && f.client_secret.as_deref() == Some(CLIENT_SECRET)
        && f.refresh_token.as_deref() == Some(REFRESH_TOKEN);
    if !ok {
        return (
            StatusCode::BAD_REQUEST,
            Json(serde_json::json!({
                "error": "invalid_request",
                "error_description": "The provided authorization grant or refresh token is invalid, expired or revoked."
            })),
        )
            .into_response();
    }
    let mut w = state.world();
    w.stats.token_refreshes += 1;
    let n: u64 = w.rng.random();
    let access = format!("AQ-sandbox-{n:016x}");
    w.tokens.push(access.clone());
    Json(serde_json::json!({
        "access_token": access,
        "expires_in": 5_184_000,
        "refresh_token": REFRESH_TOKEN,
        "refresh_token_expires_in": 31_536_000
    }))
    .into_response()
}

pub fn router(state: LinkedinState) -> Router {
    Router::new()
        .route("/rest/leadFormResponses", get(finder::find))
        .route("/oauth/v2/accessToken", post(token))
        .with_state(state)
}

/// A running LinkedIn sandbox on a loopback port. Dropping it stops the server.
pub struct LinkedinSandbox {
    addr: SocketAddr,
    state: LinkedinState,
    _stop: oneshot::Sender<()>,
    _task: JoinHandle<()>,
}

impl LinkedinSandbox {
    pub async fn start(listen: SocketAddr) -> std::io::Result<Self> {
        let listener = TcpListener::bind(listen).await?;
        let addr = listener.local_addr()?;
        let state = LinkedinState(Arc::new(Mutex::new(World {
            responses: Vec::new(),
            faults: CrmFaults::default(),
            stats: CrmStats::default(),
            tokens: Vec::new(),
            rng: StdRng::seed_from_u64(7),
            seq: 0,
        })));
        let app = router(state.clone());
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let serve = axum::serve(listener, app).with_graceful_shutdown(async move {
                let _ = stopped.await;
            });
            if let Err(e) = serve.await {
                tracing::warn!(error = %e, "linkedin sandbox stopped with an error");
            }
        });
        Ok(LinkedinSandbox {
            addr,
            state,
            _stop: stop,
            _task: task,
        })
    }

    /// What to put in a connector's `base_url`.
    pub fn base_url(&self) -> String {
        format!("http://{}/rest", self.addr)
    }

    pub fn token_url(&self) -> String {
        format!("http://{}/oauth/v2/accessToken", self.addr)
    }

    /// A member submits the lead form at `at_ms` (now if `None`); returns the response id.
    pub fn submit(&self, email: &str, first_name: &str, at_ms: Option<i64>, test: bool) -> String {
        let mut w = self.state.world();
        w.seq += 1;
        let seq = w.seq;
        let id = format!("{:08x}-c0a3-42e3-8af1-{:012x}-4", 0x5a9a_0000 + seq, seq);
        let submitted_at_ms = at_ms.unwrap_or_else(|| jiff::Timestamp::now().as_millisecond());
        w.responses.push(StoredResponse {
            id: id.clone(),
            account: ACCOUNT.to_owned(),
            submitted_at_ms,
            email: email.to_owned(),
            first_name: first_name.to_owned(),
            test,
            campaign: 556_677,
            creative: 241_257_736,
            seq,
        });
        id
    }

    pub fn set_faults(&self, faults: CrmFaults) {
        self.state.world().faults = faults;
    }

    pub fn stats(&self) -> CrmStats {
        self.state.world().stats.clone()
    }

    /// Ends every OAuth access token issued so far.
    pub fn expire_tokens(&self) {
        self.state.world().tokens.clear();
    }
}
