//! Pipedrive's deal-change webhook (webhooks v2) as a wake-up for the outcome poll.
//!
//! Pipedrive signs nothing: a webhook proves itself only by the HTTP Basic credentials it was
//! created with (`http_auth_user` / `http_auth_password` on `POST /v1/webhooks`). tandem checks
//! them in constant time, then refuses bodies whose `meta.timestamp` is more than
//! [`MAX_AGE_MS`] from now (a replayed capture), and counts the events about deals
//! (`meta.entity == "deal"`; v1 bodies say `meta.object`). v2 sends one event per request.
//! The poll stays the source of truth, so a refused or lost notification only costs latency.

use std::collections::BTreeMap;

use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::{
    outcome::OutcomeWebhook,
    source::{PresetError, PresetRequest},
};

use super::PipedriveConfig;

/// How far `meta.timestamp` may be from now, either way. Pipedrive retries a failed delivery
/// within minutes (schedule unconfirmed), which this leaves room for.
pub const MAX_AGE_MS: i64 = 15 * 60 * 1000;

/// The configured credentials of the deal webhook.
#[derive(Clone)]
pub struct DealWebhook {
    user: String,
    password: SecretString,
}

impl std::fmt::Debug for DealWebhook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DealWebhook").finish_non_exhaustive()
    }
}

impl DealWebhook {
    /// `Some` when both `webhook_user` and `webhook_password` are set: without credentials
    /// anyone could make tandem poll, so the webhook stays off.
    pub fn from_config(config: &PipedriveConfig) -> Option<DealWebhook> {
        match (&config.webhook_user, &config.webhook_password) {
            (Some(user), Some(password))
                if !user.trim().is_empty() && !password.expose_secret().is_empty() =>
            {
                Some(DealWebhook {
                    user: user.clone(),
                    password: password.clone(),
                })
            }
            _ => None,
        }
    }

    fn authenticate(&self, headers: &BTreeMap<String, String>) -> Result<(), PresetError> {
        let unauthorized = |m: &str| PresetError::Unauthorized(m.to_owned());
        let value = headers.get("authorization").ok_or_else(|| {
            unauthorized(
                "missing Authorization header; create the Pipedrive webhook with http_auth_user and http_auth_password",
            )
        })?;
        let (scheme, encoded) = value
            .trim()
            .split_once(' ')
            .ok_or_else(|| unauthorized("Authorization is not HTTP Basic"))?;
        if !scheme.eq_ignore_ascii_case("basic") {
            return Err(unauthorized("Authorization is not HTTP Basic"));
        }
        let decoded = base64_decode(encoded.trim())
            .ok_or_else(|| unauthorized("Authorization is not valid base64"))?;
        let colon = decoded
            .iter()
            .position(|b| *b == b':')
            .ok_or_else(|| unauthorized("Authorization has no user:password"))?;
        let (user, password) = (&decoded[..colon], &decoded[colon + 1..]);
        // Both compared, always: which one was wrong is not for the caller to learn.
        let good = ct_eq(user, self.user.as_bytes())
            & ct_eq(password, self.password.expose_secret().as_bytes());
        if good {
            Ok(())
        } else {
            Err(unauthorized("wrong webhook credentials"))
        }
    }
}

impl OutcomeWebhook for DealWebhook {
    fn verify(&self, req: &PresetRequest<'_>) -> Result<usize, PresetError> {
        self.authenticate(req.headers)?;
        let malformed = |field: &str, reason: &str| PresetError::Malformed {
            field: field.to_owned(),
            reason: reason.to_owned(),
        };
        let body: Value = serde_json::from_slice(req.body)
            .map_err(|e| malformed("body", &format!("not valid JSON: {e}")))?;
        let meta = body.get("meta").and_then(Value::as_object).ok_or_else(|| {
            malformed(
                "meta",
                "missing; Pipedrive webhook bodies carry a meta object",
            )
        })?;
        let stamp = meta
            .get("timestamp")
            .and_then(|t| t.as_i64().or_else(|| t.as_str()?.trim().parse().ok()))
            .ok_or_else(|| malformed("meta.timestamp", "missing or not a number"))?;
        // v2 says seconds; a millisecond value is read as such rather than refused.
        let stamp_ms = if stamp.abs() < 100_000_000_000 {
            stamp.saturating_mul(1000)
        } else {
            stamp
        };
        if req.now_ms.abs_diff(stamp_ms) > MAX_AGE_MS.unsigned_abs() {
            return Err(PresetError::Unauthorized(
                "stale webhook: meta.timestamp is more than 15 minutes from now".to_owned(),
            ));
        }
        let entity = meta
            .get("entity")
            .or_else(|| meta.get("object"))
            .and_then(Value::as_str)
            .unwrap_or("");
        Ok(usize::from(entity == "deal"))
    }
}

/// Equality in constant time whatever the lengths: both sides are hashed first.
fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    let (ha, hb) = (Sha256::digest(a), Sha256::digest(b));
    bool::from(ha.as_slice().ct_eq(hb.as_slice()))
}

/// Standard base64 (RFC 4648 §4), padding optional.
pub fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let (mut buf, mut bits) = (0u32, 0u32);
    for c in s.trim_end_matches('=').bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        };
        buf = (buf << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((buf >> bits) as u8);
            buf &= (1 << bits) - 1;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hook() -> DealWebhook {
        DealWebhook {
            user: "tandem".into(),
            password: SecretString::from("s3cret"),
        }
    }

    fn check(auth: Option<&str>, body: &str, now_ms: i64) -> Result<usize, PresetError> {
        let mut headers = BTreeMap::new();
        if let Some(a) = auth {
            headers.insert("authorization".to_owned(), a.to_owned());
        }
        hook().verify(&PresetRequest {
            method: "POST",
            url: "https://tandem.example/hooks/pd",
            headers: &headers,
            body: body.as_bytes(),
            now_ms,
        })
    }

    // base64("tandem:s3cret")
    const GOOD: &str = "Basic dGFuZGVtOnMzY3JldA==";

    #[test]
    fn credentials_and_freshness_decide_and_only_deal_events_count() {
        let now = 1_727_447_128_000;
        let deal = r#"{"meta":{"action":"change","entity":"deal","entity_id":"7","version":"2.0","timestamp":1727447128},"data":{"id":7},"previous":{"stage_id":1}}"#;
        assert_eq!(check(Some(GOOD), deal, now), Ok(1));
        assert_eq!(check(Some("basic dGFuZGVtOnMzY3JldA"), deal, now), Ok(1));
        let person = deal.replace(r#""entity":"deal""#, r#""entity":"person""#);
        assert_eq!(check(Some(GOOD), &person, now), Ok(0));
        let v1 = r#"{"v":1,"event":"updated.deal","meta":{"object":"deal","id":7,"timestamp":1727447128000}}"#;
        assert_eq!(check(Some(GOOD), v1, now), Ok(1));
        // base64("tandem:wrong"), base64("tandemx:s3cret")
        for forged in [
            None,
            Some("Basic dGFuZGVtOndyb25n"),
            Some("Basic dGFuZGVteDpzM2NyZXQ="),
            Some("Bearer s3cret"),
            Some("Basic !!"),
        ] {
            assert!(
                matches!(check(forged, deal, now), Err(PresetError::Unauthorized(_))),
                "{forged:?}"
            );
        }
        let stale = check(Some(GOOD), deal, now + MAX_AGE_MS + 1000);
        assert!(
            matches!(&stale, Err(PresetError::Unauthorized(m)) if m.contains("stale")),
            "{stale:?}"
        );
        assert!(
            matches!(check(Some(GOOD), "{}", now), Err(PresetError::Malformed { field, .. }) if field == "meta")
        );
        assert!(
            matches!(check(Some(GOOD), "nope", now), Err(PresetError::Malformed { field, .. }) if field == "body")
        );
        // Credentials are checked before the body is read.
        assert!(matches!(
            check(None, "nope", now),
            Err(PresetError::Unauthorized(_))
        ));
        assert!(!format!("{:?}", hook()).contains("s3cret"));
    }

    #[test]
    fn base64_matches_rfc4648() {
        for (plain, encoded) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64_decode(encoded).as_deref(), Some(plain.as_bytes()));
        }
        assert_eq!(base64_decode("Zg"), Some(b"f".to_vec()));
        assert_eq!(base64_decode("Z*"), None);
    }
}
