//! One [`PipedriveClient`] per connector for every role it plays (lead sink, outcome source,
//! deal-field write-back). Pipedrive counts its burst window per token, so the three roles must
//! share one pacer; and with OAuth they must share one token lifecycle, or two refreshes could
//! race on a rotated refresh token and the loser would read as "reconnect needed".
//!
//! The daemon builds each role separately from the same config and context; the first build
//! makes the client, later ones get the same one while it lives. A changed config (reload)
//! or another context makes a new one.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, OnceLock, Weak},
};

use secrecy::{ExposeSecret, SecretString};

use crate::{BuildError, ConnectorContext, writeback::sha256_hex};

use super::{PipedriveClient, PipedriveConfig};

/// (connector name, identity of its state store, what the client was built from).
type Key = (String, usize, String);

fn registry() -> &'static Mutex<HashMap<Key, Weak<PipedriveClient>>> {
    static CLIENTS: OnceLock<Mutex<HashMap<Key, Weak<PipedriveClient>>>> = OnceLock::new();
    CLIENTS.get_or_init(|| Mutex::new(HashMap::new()))
}

/// Everything the client is built from; secrets only as hashes (this stays in memory).
fn fingerprint(c: &PipedriveConfig) -> String {
    let secret = |s: &Option<SecretString>| {
        s.as_ref()
            .map(|s| sha256_hex(s.expose_secret()))
            .unwrap_or_default()
    };
    format!(
        "{}|{}|{:?}|{:?}|{:?}|{}|{}|{:?}|{:?}|{}|{}|{}",
        c.base_url.trim(),
        c.token_url.trim(),
        c.client_id,
        c.plan,
        c.rate_limit,
        c.create_lead,
        c.lead_title,
        c.recent_window,
        c.timeout,
        secret(&c.api_token),
        secret(&c.client_secret),
        secret(&c.refresh_token),
    )
}

/// The connector's client, shared with its other roles while any of them holds it.
pub fn client(
    config: &PipedriveConfig,
    ctx: ConnectorContext,
) -> Result<Arc<PipedriveClient>, BuildError> {
    // The store's address tells contexts apart; the client keeps its store alive, so the address
    // can't be reused while the entry can still be upgraded.
    let store = Arc::as_ptr(&ctx.state).cast::<()>() as usize;
    let key = (ctx.name.clone(), store, fingerprint(config));
    let mut map = registry().lock().unwrap_or_else(|p| p.into_inner());
    map.retain(|_, weak| weak.strong_count() > 0);
    if let Some(existing) = map.get(&key).and_then(Weak::upgrade) {
        return Ok(existing);
    }
    let fresh = Arc::new(PipedriveClient::new(config, ctx)?);
    map.insert(key, Arc::downgrade(&fresh));
    Ok(fresh)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(json: serde_json::Value) -> PipedriveConfig {
        serde_json::from_value(json).expect("config parses")
    }

    #[test]
    fn roles_of_one_connector_share_a_client_and_others_do_not() {
        let c = config(serde_json::json!({"api_token": "shared-secret-1"}));
        let ctx = ConnectorContext::in_memory("pd-shared");
        let a = client(&c, ctx.clone()).unwrap();
        let b = client(&c, ctx.clone()).unwrap();
        assert!(Arc::ptr_eq(&a, &b));
        // Another context (another daemon store, or a test) gets its own.
        let other = client(&c, ConnectorContext::in_memory("pd-shared")).unwrap();
        assert!(!Arc::ptr_eq(&a, &other));
        // A changed credential (a reload) gets a new one.
        let changed = config(serde_json::json!({"api_token": "shared-secret-2"}));
        assert!(!Arc::ptr_eq(&a, &client(&changed, ctx.clone()).unwrap()));
        assert!(!fingerprint(&c).contains("shared-secret"));
        // Once every role dropped it, the next build starts afresh.
        let weak = Arc::downgrade(&a);
        drop((a, b));
        assert!(weak.upgrade().is_none());
        let _again = client(&c, ctx).unwrap();
    }
}
