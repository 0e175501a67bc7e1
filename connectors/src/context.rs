//! What a connector may ask of the daemon while it works: persist OAuth tokens (refresh tokens
//! rotate, and a rotated one that is lost is a dead integration) and record a remote id the moment
//! the vendor hands it out, before the rest of the batch is done (so a crash mid-batch never leads
//! to a second create). The daemon implements it on its store; tests use [`MemoryState`].

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex},
};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

/// An OAuth token set as persisted. Fields are plain strings because they are written to the
/// daemon's 0600 state store; they never reach logs (no Debug output of the values).
#[derive(Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TokenSet {
    pub access_token: String,
    #[serde(default)]
    pub refresh_token: Option<String>,
    /// Unix ms after which the access token is no longer valid (None = the vendor didn't say).
    #[serde(default)]
    pub expires_at_ms: Option<i64>,
    /// Vendor extras that come with a token: Salesforce `instance_url`, Pipedrive `api_domain`…
    #[serde(default)]
    pub extra: BTreeMap<String, String>,
}

impl std::fmt::Debug for TokenSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenSet")
            .field("access_token", &"[redacted]")
            .field(
                "refresh_token",
                &self.refresh_token.as_ref().map(|_| "[redacted]"),
            )
            .field("expires_at_ms", &self.expires_at_ms)
            .field("extra", &self.extra)
            .finish()
    }
}

/// The daemon's side of a connector's persistence needs.
#[async_trait]
pub trait ConnectorState: Send + Sync {
    /// The token set saved by an earlier refresh, if any.
    async fn load_token(&self) -> Result<Option<TokenSet>, String>;
    /// Saves a token set; durable when this returns.
    async fn save_token(&self, token: &TokenSet) -> Result<(), String>;
    /// Remembers that the person behind `delivery_id` is `remote_id` in this connector, now.
    async fn record_remote_id(&self, delivery_id: i64, remote_id: &str) -> Result<(), String>;
}

/// What every connector is built with.
#[derive(Clone)]
pub struct ConnectorContext {
    /// The connector's configured name (`[connectors.NAME]`).
    pub name: String,
    pub state: Arc<dyn ConnectorState>,
}

impl ConnectorContext {
    /// A context backed by memory only: for tests and for `check`, which must not write state.
    pub fn in_memory(name: &str) -> ConnectorContext {
        ConnectorContext {
            name: name.to_owned(),
            state: Arc::new(MemoryState::default()),
        }
    }
}

/// [`ConnectorState`] in memory.
#[derive(Default)]
pub struct MemoryState {
    pub token: Mutex<Option<TokenSet>>,
    pub remote_ids: Mutex<BTreeMap<i64, String>>,
}

#[async_trait]
impl ConnectorState for MemoryState {
    async fn load_token(&self) -> Result<Option<TokenSet>, String> {
        Ok(self.token.lock().map_err(|e| e.to_string())?.clone())
    }

    async fn save_token(&self, token: &TokenSet) -> Result<(), String> {
        *self.token.lock().map_err(|e| e.to_string())? = Some(token.clone());
        Ok(())
    }

    async fn record_remote_id(&self, delivery_id: i64, remote_id: &str) -> Result<(), String> {
        self.remote_ids
            .lock()
            .map_err(|e| e.to_string())?
            .insert(delivery_id, remote_id.to_owned());
        Ok(())
    }
}
