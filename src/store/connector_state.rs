//! The store as a connector's [`ConnectorState`]: OAuth tokens in the 0600 state database, and
//! remote ids recorded the moment a vendor hands them out.

use std::sync::Arc;

use async_trait::async_trait;
use tandem_connectors::{ConnectorState, TokenSet};

use super::Store;

pub struct StoreConnectorState {
    pub store: Arc<dyn Store>,
    pub connector: String,
}

#[async_trait]
impl ConnectorState for StoreConnectorState {
    async fn load_token(&self) -> Result<Option<TokenSet>, String> {
        let json = self
            .store
            .load_token(&self.connector)
            .await
            .map_err(|e| e.to_string())?;
        json.map(|j| {
            serde_json::from_str(&j).map_err(|e| format!("stored token is unreadable: {e}"))
        })
        .transpose()
    }

    async fn save_token(&self, token: &TokenSet) -> Result<(), String> {
        let json = serde_json::to_string(token).map_err(|e| e.to_string())?;
        self.store
            .save_token(&self.connector, &json)
            .await
            .map_err(|e| e.to_string())
    }

    async fn record_remote_id(&self, delivery_id: i64, remote_id: &str) -> Result<(), String> {
        self.store
            .record_remote_id(delivery_id, remote_id)
            .await
            .map_err(|e| e.to_string())
    }
}
