//! One OAuth 2.0 refresh-token lifecycle for every connector that needs it: refresh ahead of
//! expiry, one refresh at a time (single-flight), rotated refresh tokens persisted through the
//! daemon before they are used, and every way a vendor says "this grant is dead" (400/401
//! `invalid_grant`, or a 200 whose body carries an `error`) turned into a loud "reconnect needed"
//! auth error instead of silent failure.

use std::{sync::Arc, time::Duration};

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use tokio::sync::Mutex;

use crate::{
    context::{ConnectorState, TokenSet},
    sink::CallError,
};

/// How the client authenticates itself to the token endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    /// `client_id` and `client_secret` as form fields (HubSpot, Salesforce, Zoho, Google).
    Body,
    /// HTTP Basic `client_id:client_secret` (Pipedrive).
    Basic,
    /// Every parameter (`grant_type`, `refresh_token`, `client_id`, `client_secret`) in the query
    /// string of an empty-bodied POST, as Zoho Accounts documents its refresh request.
    Query,
}

/// Static settings of one OAuth client.
#[derive(Clone)]
pub struct OAuthSettings {
    pub token_url: String,
    pub client_id: String,
    pub client_secret: SecretString,
    /// The refresh token from the config; a rotated one saved in the store takes precedence.
    pub refresh_token: SecretString,
    pub auth: ClientAuth,
    /// Refresh this long before the access token expires.
    pub refresh_ahead: Duration,
    /// For vendors that don't say how long a token lives (Salesforce): assume this.
    pub assumed_lifetime: Option<Duration>,
}

/// A connector's access-token source.
pub struct OAuthClient {
    settings: OAuthSettings,
    http: reqwest::Client,
    state: Arc<dyn ConnectorState>,
    /// The current token. Holding the lock across a refresh makes refreshes single-flight.
    current: Mutex<Option<TokenSet>>,
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: Option<String>,
    refresh_token: Option<String>,
    expires_in: Option<serde_json::Value>,
    /// A string for most vendors; kept as JSON so an object-shaped `error` still decodes.
    error: Option<serde_json::Value>,
    error_description: Option<String>,
    #[serde(flatten)]
    rest: serde_json::Map<String, serde_json::Value>,
}

fn now_ms() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}

impl OAuthClient {
    pub fn new(
        settings: OAuthSettings,
        http: reqwest::Client,
        state: Arc<dyn ConnectorState>,
    ) -> Self {
        OAuthClient {
            settings,
            http,
            state,
            current: Mutex::new(None),
        }
    }

    /// A usable token: the current one, or a fresh one if it is missing or about to expire.
    pub async fn token(&self) -> Result<TokenSet, CallError> {
        let mut current = self.current.lock().await;
        if current.is_none() {
            *current = self.state.load_token().await.map_err(store_error)?;
        }
        let ahead = self.settings.refresh_ahead.as_millis() as i64;
        match &*current {
            Some(t)
                if !t.access_token.is_empty()
                    && t.expires_at_ms.is_none_or(|e| e - ahead > now_ms()) =>
            {
                Ok(t.clone())
            }
            _ => {
                let fresh = self.refresh(current.as_ref()).await?;
                *current = Some(fresh.clone());
                Ok(fresh)
            }
        }
    }

    /// The vendor rejected `stale` (e.g. Salesforce `INVALID_SESSION_ID`): refresh, unless
    /// another task already did while this one waited, then hand out the newer token.
    pub async fn token_after_rejection(&self, stale: &TokenSet) -> Result<TokenSet, CallError> {
        let mut current = self.current.lock().await;
        if current.is_none() {
            *current = self.state.load_token().await.map_err(store_error)?;
        }
        if let Some(t) = &*current
            && t.access_token != stale.access_token
        {
            return Ok(t.clone());
        }
        let fresh = self.refresh(current.as_ref()).await?;
        *current = Some(fresh.clone());
        Ok(fresh)
    }

    async fn refresh(&self, previous: Option<&TokenSet>) -> Result<TokenSet, CallError> {
        let s = &self.settings;
        let refresh_token = previous
            .and_then(|t| t.refresh_token.clone())
            .unwrap_or_else(|| s.refresh_token.expose_secret().to_owned());
        let mut form = vec![
            ("grant_type", "refresh_token".to_owned()),
            ("refresh_token", refresh_token.clone()),
        ];
        let mut req = self.http.post(&s.token_url);
        match s.auth {
            ClientAuth::Body | ClientAuth::Query => {
                form.push(("client_id", s.client_id.clone()));
                form.push(("client_secret", s.client_secret.expose_secret().to_owned()));
            }
            ClientAuth::Basic => {
                req = req.basic_auth(&s.client_id, Some(s.client_secret.expose_secret()))
            }
        }
        req = match s.auth {
            ClientAuth::Query => req.query(&form),
            ClientAuth::Body | ClientAuth::Basic => req.form(&form),
        };
        let resp = req.send().await.map_err(|e| CallError::Transient {
            message: format!("token refresh failed: {}", without_url(&e)),
            retry_after: None,
        })?;
        let status = resp.status().as_u16();
        let body: Option<TokenResponse> = resp.json().await.ok();
        let reconnect = |why: String| CallError::Auth {
            status: 401,
            message: format!(
                "reconnect needed: the OAuth refresh was refused ({why}); authorize tandem again and update the refresh token"
            ),
        };
        if status >= 500 || status == 429 {
            return Err(CallError::Transient {
                message: format!("token endpoint answered {status}"),
                retry_after: None,
            });
        }
        let Some(body) = body else {
            return Err(CallError::Transient {
                message: format!("token endpoint answered {status} without JSON"),
                retry_after: None,
            });
        };
        if let Some(err) = body.error.as_ref().filter(|e| !e.is_null()) {
            // Some vendors (Zoho) say it with a 200.
            let err = err.as_str().map_or_else(|| err.to_string(), str::to_owned);
            let why = match &body.error_description {
                Some(d) => format!("{err}: {d}"),
                None => err,
            };
            return Err(reconnect(why));
        }
        let Some(access_token) = body.access_token.filter(|t| !t.is_empty()) else {
            // HubSpot's refusal has no `error`: `{"status":"BAD_REFRESH_TOKEN","message":…}`.
            let text = |k: &str| body.rest.get(k).and_then(|v| v.as_str()).unwrap_or("");
            let why = match (text("status"), text("message")) {
                ("", "") => format!("HTTP {status} without an access_token"),
                (code, "") | ("", code) => format!("HTTP {status} {code}"),
                (code, message) => format!("HTTP {status} {code}: {message}"),
            };
            return Err(reconnect(why));
        };
        if status >= 400 {
            return Err(reconnect(format!("HTTP {status}")));
        }
        let lifetime = body
            .expires_in
            .as_ref()
            .and_then(|v| v.as_i64().or_else(|| v.as_str()?.parse().ok()))
            .map(|secs| secs * 1000)
            .or(s.assumed_lifetime.map(|d| d.as_millis() as i64));
        // Strings, numbers and booleans (HubSpot's `hub_id` is a number); arrays and objects aren't
        // extras anyone looks up.
        let extra = body
            .rest
            .iter()
            .filter_map(|(k, v)| match v {
                serde_json::Value::String(s) => Some((k.clone(), s.clone())),
                serde_json::Value::Number(_) | serde_json::Value::Bool(_) => {
                    Some((k.clone(), v.to_string()))
                }
                _ => None,
            })
            .collect();
        let token = TokenSet {
            access_token,
            // Rotation: keep the new refresh token when one is sent, else the one just used.
            refresh_token: Some(body.refresh_token.unwrap_or(refresh_token)),
            expires_at_ms: lifetime.map(|l| now_ms() + l),
            extra,
        };
        // Persist before use: a rotated refresh token that only lived in memory dies with a crash.
        self.state.save_token(&token).await.map_err(store_error)?;
        Ok(token)
    }
}

fn store_error(e: String) -> CallError {
    CallError::Transient {
        message: format!("could not persist the OAuth token: {e}"),
        retry_after: None,
    }
}

/// reqwest errors print the URL; token URLs carry no secrets, but keep messages short and uniform.
fn without_url(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "timeout".into()
    } else if e.is_connect() {
        "connection failed".into()
    } else {
        "request failed".into()
    }
}
