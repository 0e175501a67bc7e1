//! The Google sandbox's memory: live access tokens, the conversions Google holds (one store for
//! both APIs: a Data Manager `transactionId` and a Google Ads `orderId` are the same key per
//! conversion action), what was accepted, the request log, the per-minute quota window, faults
//! and their dice. One mutex, never held across an await.

use std::{
    collections::{BTreeMap, BTreeSet, VecDeque},
    sync::{Arc, Mutex, MutexGuard},
    time::{Duration, Instant},
};

use axum::{
    Json,
    body::{Body, Bytes},
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use rand::{Rng, SeedableRng, rngs::StdRng};
use serde_json::{Value, json};

use super::SandboxOptions;
use crate::sandbox::{CrmFaults, ReceivedWriteback};

/// Kept for assertions; older entries are dropped past this many.
const LOG_LIMIT: usize = 500;

/// One conversion as Google holds it.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredConversion {
    pub action_id: String,
    pub key: String,
    pub at_ms: i64,
    pub value: Option<f64>,
    pub currency: Option<String>,
    pub retracted: bool,
    /// `adjustmentDateTime`s of the restatements applied (Google Ads API).
    pub restatements: BTreeSet<String>,
}

/// One API request as received (the `Authorization` header left out).
#[derive(Debug, Clone, PartialEq)]
pub struct LoggedRequest {
    pub path: String,
    pub headers: BTreeMap<String, String>,
    pub body: Value,
}

/// What the sandbox has seen, for assertions.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SandboxStats {
    /// Every API request, refused or not (token requests are not API calls).
    pub api_calls: u64,
    pub ingest_calls: u64,
    pub upload_calls: u64,
    pub adjustment_calls: u64,
    pub token_refreshes: u64,
    pub token_refusals: u64,
    pub rate_limited: u64,
    pub server_errors: u64,
    pub unauthorized: u64,
    pub drops: u64,
    /// Events Google deduplicated (same transaction id, nothing changed).
    pub deduplicated: u64,
    /// Events accepted by `events:ingest` but dropped in processing for being older than the
    /// 90-day window (Google reports these asynchronously through `requestStatus`).
    pub dropped_stale: u64,
}

pub(crate) struct World {
    pub tokens: VecDeque<(String, Instant)>,
    pub refresh_token_live: bool,
    pub conversions: BTreeMap<(String, String), StoredConversion>,
    pub received: Vec<ReceivedWriteback>,
    pub log: Vec<LoggedRequest>,
    pub window: VecDeque<Instant>,
    pub faults: CrmFaults,
    pub rng: StdRng,
    pub stats: SandboxStats,
    pub next_request: u64,
}

impl World {
    pub fn roll(&mut self, probability: f64) -> bool {
        probability > 0.0 && self.rng.random_bool(probability.clamp(0.0, 1.0))
    }

    pub fn token_is_live(&self, token: &str) -> bool {
        let now = Instant::now();
        self.tokens.iter().any(|(t, exp)| t == token && *exp > now)
    }

    pub fn issue_token(&mut self, lifetime: Duration) -> String {
        let token = format!("ya29.sandbox-{:032x}", self.rng.random::<u128>());
        self.tokens
            .push_back((token.clone(), Instant::now() + lifetime));
        while self.tokens.len() > 100 {
            self.tokens.pop_front();
        }
        token
    }

    /// Counts a request against the per-minute quota; false when it is spent.
    pub fn take_quota(&mut self, per_minute: u32) -> bool {
        let now = Instant::now();
        while self
            .window
            .front()
            .is_some_and(|t| now.duration_since(*t) >= Duration::from_secs(60))
        {
            self.window.pop_front();
        }
        if self.window.len() >= per_minute as usize {
            return false;
        }
        self.window.push_back(now);
        true
    }

    pub fn log(&mut self, request: LoggedRequest) {
        if self.log.len() >= LOG_LIMIT {
            self.log.remove(0);
        }
        self.log.push(request);
    }

    pub fn request_id(&mut self) -> String {
        self.next_request += 1;
        format!("sandbox-request-{:06}", self.next_request)
    }

    /// Consumes one `drop_after_write_next`.
    pub fn take_drop(&mut self) -> bool {
        if self.faults.drop_after_write_next > 0 {
            self.faults.drop_after_write_next -= 1;
            self.stats.drops += 1;
            return true;
        }
        false
    }
}

/// Shared handle to the sandbox; cheap to clone.
#[derive(Clone)]
pub struct SandboxState {
    inner: Arc<Inner>,
}

struct Inner {
    options: SandboxOptions,
    world: Mutex<World>,
}

impl std::fmt::Debug for SandboxState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SandboxState").finish_non_exhaustive()
    }
}

impl SandboxState {
    pub fn new(options: SandboxOptions) -> Self {
        let rng = match options.seed {
            Some(s) => StdRng::seed_from_u64(s),
            None => StdRng::from_os_rng(),
        };
        let world = World {
            tokens: VecDeque::new(),
            refresh_token_live: true,
            conversions: BTreeMap::new(),
            received: Vec::new(),
            log: Vec::new(),
            window: VecDeque::new(),
            faults: CrmFaults::default(),
            rng,
            stats: SandboxStats::default(),
            next_request: 0,
        };
        SandboxState {
            inner: Arc::new(Inner {
                options,
                world: Mutex::new(world),
            }),
        }
    }

    pub fn options(&self) -> &SandboxOptions {
        &self.inner.options
    }

    /// A poisoned lock only means a handler panicked; the data is still the best we have.
    pub(crate) fn world(&self) -> MutexGuard<'_, World> {
        self.inner
            .world
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Google's error envelope.
pub fn google_error(
    status: StatusCode,
    grpc_status: &str,
    message: &str,
    details: Vec<Value>,
) -> Response {
    let mut error = json!({"code": status.as_u16(), "message": message, "status": grpc_status});
    if !details.is_empty() {
        error["details"] = Value::Array(details);
    }
    (status, Json(json!({ "error": error }))).into_response()
}

/// A `google.rpc.ErrorInfo` detail.
pub fn error_info(reason: &str, domain: &str, request_id: &str) -> Value {
    json!({"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": reason,
        "domain": domain, "metadata": {"requestId": request_id}})
}

/// A `GoogleAdsFailure` detail of API `version`.
pub fn google_ads_failure(version: &str, errors: Vec<Value>, request_id: &str) -> Value {
    json!({"@type": format!("type.googleapis.com/google.ads.googleads.{version}.errors.GoogleAdsFailure"),
        "errors": errors, "requestId": request_id})
}

/// A response whose body fails after the status line: the client sees the connection die.
pub fn dropped_connection() -> Response {
    let failing = futures_util::stream::once(async {
        Err::<Bytes, std::io::Error>(std::io::Error::new(
            std::io::ErrorKind::ConnectionAborted,
            "google sandbox dropped the connection (fault injection)",
        ))
    });
    let mut r = Response::new(Body::from_stream(failing));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=UTF-8"),
    );
    r
}

/// `1500.5` with `USD` → `"1500.50"`: the decimal text `received()` reports.
pub fn value_text(value: f64, currency: Option<&str>) -> String {
    let currency = currency.unwrap_or("USD");
    let exp = crate::outcome::currency_exponent(currency);
    let minor = (value * 10f64.powi(exp as i32)).round() as i64;
    crate::outcome::minor_units_text(minor, currency)
}
