//! HubSpot's deal-change webhooks as an [`OutcomeWebhook`]: a wake-up for the deal poll, accepted
//! only with a valid `X-HubSpot-Signature-v3`: base64 HMAC-SHA256, keyed with the app's client
//! secret (`webhook_secret`), over `method + URI + body + X-HubSpot-Request-Timestamp`, the
//! timestamp (ms) within 5 minutes, compared in constant time. The answer is the number of
//! `deal.*` events in the JSON array HubSpot posts (also generic `object.*` events for object
//! type `0-3`, deals).
//!
//! The signed URI is the one HubSpot called: `webhook_url` when set (tandem behind a proxy),
//! else the URL tandem saw, and its `https` form (HubSpot only calls https targets, so a TLS
//! proxy in front of tandem is the usual setup). HubSpot decodes some percent-escapes before
//! signing; both the decoded and the as-sent URI are accepted.

use secrecy::{ExposeSecret, SecretString};

use crate::{
    outcome::OutcomeWebhook,
    source::{PresetError, PresetRequest},
    webhook::presets::common::{check_timestamp, ct_eq},
};

#[cfg(any(test, feature = "sandbox"))]
pub use crate::webhook::presets::hubspot_forms::signature::sign_v1;
/// The same v3 signature HubSpot puts on form-submission webhooks.
pub use crate::webhook::presets::hubspot_forms::signature::{decode_signed_escapes, sign_v3};

use super::HubspotConfig;

pub const SIGNATURE_HEADER: &str = "x-hubspot-signature-v3";
pub const TIMESTAMP_HEADER: &str = "x-hubspot-request-timestamp";

/// The deal webhook of one HubSpot connector.
#[derive(Clone)]
pub struct DealWebhook {
    secret: SecretString,
    url: Option<String>,
}

impl std::fmt::Debug for DealWebhook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DealWebhook")
            .field("secret", &"[redacted]")
            .field("url", &self.url)
            .finish()
    }
}

/// Whether one event of the array is about a deal.
fn is_deal_event(event: &serde_json::Value) -> bool {
    let kind = event
        .get("subscriptionType")
        .and_then(serde_json::Value::as_str)
        .unwrap_or("");
    kind.starts_with("deal.")
        || (kind.starts_with("object.")
            && event
                .get("objectTypeId")
                .and_then(serde_json::Value::as_str)
                == Some("0-3"))
}

impl DealWebhook {
    /// The webhook of `config`, when `webhook_secret` is set.
    pub fn from_config(config: &HubspotConfig) -> Option<DealWebhook> {
        let secret = config.webhook_secret.clone()?;
        if secret.expose_secret().trim().is_empty() {
            return None;
        }
        Some(DealWebhook {
            secret,
            url: config
                .webhook_url
                .as_deref()
                .map(str::trim)
                .filter(|u| !u.is_empty())
                .map(str::to_owned),
        })
    }

    /// The URIs HubSpot may have signed for this request.
    fn candidate_uris(&self, seen: &str) -> Vec<String> {
        let mut base = match &self.url {
            Some(configured) => vec![configured.clone()],
            None => {
                let mut v = vec![seen.to_owned()];
                if let Some(rest) = seen.strip_prefix("http://") {
                    v.push(format!("https://{rest}"));
                }
                v
            }
        };
        let decoded: Vec<String> = base.iter().map(|u| decode_signed_escapes(u)).collect();
        for d in decoded {
            if !base.contains(&d) {
                base.push(d);
            }
        }
        base
    }
}

impl OutcomeWebhook for DealWebhook {
    fn verify(&self, req: &PresetRequest<'_>) -> Result<usize, PresetError> {
        let given = req
            .headers
            .get(SIGNATURE_HEADER)
            .map(|s| s.trim())
            .filter(|s| !s.is_empty())
            .ok_or_else(|| {
                PresetError::Unauthorized("missing X-HubSpot-Signature-v3 header".into())
            })?;
        // HubSpot: refuse timestamps more than 5 minutes from now.
        check_timestamp(
            "X-HubSpot-Request-Timestamp",
            req.headers.get(TIMESTAMP_HEADER),
            req.now_ms,
        )?;
        let raw_ts = req
            .headers
            .get(TIMESTAMP_HEADER)
            .map(|s| s.trim())
            .unwrap_or_default();
        let method = req.method.to_ascii_uppercase();
        let secret = self.secret.expose_secret().as_bytes();
        let signed = self.candidate_uris(req.url).iter().any(|uri| {
            let expected = sign_v3(secret, &method, uri, req.body, raw_ts);
            ct_eq(expected.as_bytes(), given.as_bytes())
        });
        if !signed {
            return Err(PresetError::Unauthorized(
                "X-HubSpot-Signature-v3 does not match this request (check webhook_secret is the app's client secret, and webhook_url if a proxy changes the URL)"
                    .into(),
            ));
        }
        let body: serde_json::Value =
            serde_json::from_slice(req.body).map_err(|e| PresetError::Malformed {
                field: "body".into(),
                reason: format!("not JSON: {e}"),
            })?;
        let events = body.as_array().ok_or_else(|| PresetError::Malformed {
            field: "body".into(),
            reason: "HubSpot posts a JSON array of events".into(),
        })?;
        Ok(events.iter().filter(|e| is_deal_event(e)).count())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    const SECRET: &str = "yyyyyyyy-yyyy-yyyy-yyyy-yyyyyyyyyyyy";

    fn hook(url: Option<&str>) -> DealWebhook {
        DealWebhook {
            secret: SecretString::from(SECRET),
            url: url.map(str::to_owned),
        }
    }

    fn headers(sig: &str, ts: &str) -> BTreeMap<String, String> {
        BTreeMap::from([
            (SIGNATURE_HEADER.to_owned(), sig.to_owned()),
            (TIMESTAMP_HEADER.to_owned(), ts.to_owned()),
        ])
    }

    fn verify(
        h: &DealWebhook,
        url: &str,
        headers: &BTreeMap<String, String>,
        body: &str,
        now_ms: i64,
    ) -> Result<usize, PresetError> {
        h.verify(&PresetRequest {
            method: "POST",
            url,
            headers,
            body: body.as_bytes(),
            now_ms,
        })
    }

    #[test]
    fn a_signed_delivery_counts_its_deal_events() {
        let body = r#"[{"subscriptionType":"deal.propertyChange","objectId":1},{"subscriptionType":"contact.creation","objectId":2},{"subscriptionType":"deal.creation","objectId":3},{"subscriptionType":"object.propertyChange","objectTypeId":"0-3","objectId":4},{"subscriptionType":"object.creation","objectTypeId":"0-1","objectId":5}]"#;
        let ts = "1700000000000";
        let url = "https://www.example.com/hooks/hs";
        let sig = sign_v3(SECRET.as_bytes(), "POST", url, body.as_bytes(), ts);
        let h = hook(None);
        assert_eq!(
            verify(&h, url, &headers(&sig, ts), body, 1_700_000_060_000),
            Ok(3)
        );
        // Behind a TLS proxy tandem sees http://; HubSpot signed https://.
        assert_eq!(
            verify(
                &h,
                "http://www.example.com/hooks/hs",
                &headers(&sig, ts),
                body,
                1_700_000_000_000
            ),
            Ok(3)
        );
        // A proxy that rewrites the path: webhook_url says what HubSpot signed.
        let h = hook(Some(url));
        assert_eq!(
            verify(
                &h,
                "http://127.0.0.1:8080/hooks/x",
                &headers(&sig, ts),
                body,
                1_700_000_000_000
            ),
            Ok(3)
        );
        let sig = sign_v3(SECRET.as_bytes(), "POST", url, b"[]", ts);
        assert_eq!(
            verify(&h, url, &headers(&sig, ts), "[]", 1_700_000_000_000),
            Ok(0)
        );
    }

    #[test]
    fn forged_stale_and_malformed_deliveries_are_refused() {
        let body = r#"[{"subscriptionType":"deal.creation","objectId":3}]"#;
        let url = "https://x.example/hooks/hs";
        let ts = "1700000000000";
        let now = 1_700_000_000_000;
        let h = hook(None);
        let sig = sign_v3(SECRET.as_bytes(), "POST", url, body.as_bytes(), ts);
        let forged = sign_v3(b"wrong secret", "POST", url, body.as_bytes(), ts);
        let unauthorized =
            |r: Result<usize, PresetError>| matches!(r, Err(PresetError::Unauthorized(_)));
        assert!(unauthorized(verify(
            &h,
            url,
            &headers(&forged, ts),
            body,
            now
        )));
        // The body changed after signing.
        assert!(unauthorized(verify(&h, url, &headers(&sig, ts), "[]", now)));
        // The timestamp changed after signing.
        assert!(unauthorized(verify(
            &h,
            url,
            &headers(&sig, "1700000000001"),
            body,
            now
        )));
        // Six minutes old (and six minutes early).
        let old = now + 6 * 60 * 1000;
        let r = verify(&h, url, &headers(&sig, ts), body, old);
        assert!(
            matches!(&r, Err(PresetError::Unauthorized(m)) if m.contains("stale")),
            "{r:?}"
        );
        assert!(unauthorized(verify(
            &h,
            url,
            &headers(&sig, ts),
            body,
            now - 6 * 60 * 1000
        )));
        let none = BTreeMap::new();
        assert!(unauthorized(verify(&h, url, &none, body, now)));
        assert!(unauthorized(verify(
            &h,
            url,
            &headers(&sig, "soon"),
            body,
            now
        )));
        // Signed but not HubSpot's array.
        let obj = r#"{"subscriptionType":"deal.creation"}"#;
        let sig = sign_v3(SECRET.as_bytes(), "POST", url, obj.as_bytes(), ts);
        assert!(matches!(
            verify(&h, url, &headers(&sig, ts), obj, now),
            Err(PresetError::Malformed { .. })
        ));
        assert!(!format!("{h:?}").contains(SECRET));
    }

    #[test]
    fn listed_escapes_are_decoded_before_signing() {
        let signed = "https://x.example/hooks/hs?r=a:b";
        let seen = "https://x.example/hooks/hs?r=a%3Ab";
        let ts = "1700000000000";
        let sig = sign_v3(SECRET.as_bytes(), "POST", signed, b"[]", ts);
        assert_eq!(
            verify(
                &hook(None),
                seen,
                &headers(&sig, ts),
                "[]",
                1_700_000_000_000
            ),
            Ok(0)
        );
        assert_eq!(decode_signed_escapes("%é%3%2f"), "%é%3/");
    }
}
