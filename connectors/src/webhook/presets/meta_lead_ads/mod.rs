//! The `meta_lead_ads` preset: Meta (Facebook/Instagram) Lead Ads through a Page webhook.
//!
//! Meta's delivery carries ids only. The flow is:
//! 1. `GET /hooks/NAME?hub.mode=subscribe&hub.verify_token=…&hub.challenge=…`: the subscription
//!    handshake ([`MetaLeadAds::handshake`]), answered with the challenge when the verify token
//!    matches (compared in constant time).
//! 2. `POST /hooks/NAME` with `X-Hub-Signature-256: sha256=<hex HMAC-SHA256(app secret, raw body)>`
//!    ([`MetaLeadAds::verify`]) and a `{"object":"page","entry":[…]}` body whose `leadgen` changes
//!    become [`FetchRequest`]s ([`MetaLeadAds::parse`]); the daemon stores them and answers 200.
//! 3. The daemon works each request through [`GraphFetcher`]: `GET {api_base_url}/{leadgen_id}`
//!    on the Graph API, mapped onto a [`SourceLead`](crate::source::SourceLead).
//!
//! See docs/sources/meta_lead_ads.md for the setup and the decisions taken here.

mod fetch;
mod lead;
mod notification;
#[cfg(feature = "sandbox")]
pub mod sandbox;

use hmac::{Hmac, KeyInit, Mac};
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};

pub use fetch::{DEFAULT_API_BASE_URL, DEFAULT_RATE_LIMIT, GraphFetcher, LEAD_FIELDS};
pub use lead::{TEST_LEAD_MARKER, map_lead};
pub use notification::parse_notification;

use crate::{
    source::{Handshake, PresetError, PresetOutput, PresetRequest, WebhookPreset},
    webhook::{SignatureError, WebhookConfig, verify_hex_signature},
};

/// The header Meta signs deliveries with (lowercased, as the daemon hands headers over).
pub const SIGNATURE_HEADER_256: &str = "x-hub-signature-256";

/// Longest `hub.challenge` echoed back (Meta sends a short integer).
const MAX_CHALLENGE_LEN: usize = 256;

/// The webhook side of a Meta Lead Ads connector.
pub struct MetaLeadAds {
    app_secret: Option<SecretString>,
    verify_token: Option<SecretString>,
}

impl MetaLeadAds {
    pub fn new(config: &WebhookConfig) -> Self {
        MetaLeadAds {
            app_secret: config.secret.clone(),
            verify_token: config.verify_token.clone(),
        }
    }
}

/// `sha256=<hex HMAC-SHA256(app_secret, body)>`: what Meta puts in `X-Hub-Signature-256`.
pub fn sign(app_secret: &[u8], body: &[u8]) -> String {
    crate::webhook::sign_hex(app_secret, body)
}

/// `hex(HMAC-SHA256(app_secret, access_token))`: Graph's `appsecret_proof` parameter.
pub(crate) fn appsecret_proof(app_secret: &[u8], access_token: &[u8]) -> String {
    // HMAC accepts keys of any length, so this never fails; an empty proof would be refused by
    // Graph with its own message rather than panic here.
    match Hmac::<Sha256>::new_from_slice(app_secret) {
        Ok(mut mac) => {
            mac.update(access_token);
            hex::encode(mac.finalize().into_bytes())
        }
        Err(_) => String::new(),
    }
}

/// Equality of two secrets without an early exit on the first differing byte (nor on length:
/// both sides are hashed first).
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let (ha, hb) = (Sha256::digest(a), Sha256::digest(b));
    let diff = ha
        .iter()
        .zip(hb.iter())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

/// The `hub.*` parameters of a handshake query string, percent-decoded.
fn hub_params(query: &str) -> (Option<String>, Option<String>, Option<String>) {
    let (mut mode, mut token, mut challenge) = (None, None, None);
    let query = query.strip_prefix('?').unwrap_or(query);
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let slot = match percent_decode(k).as_str() {
            "hub.mode" => &mut mode,
            "hub.verify_token" => &mut token,
            "hub.challenge" => &mut challenge,
            _ => continue,
        };
        if slot.is_none() {
            *slot = Some(percent_decode(v));
        }
    }
    (mode, token, challenge)
}

/// `application/x-www-form-urlencoded` decoding of one component; invalid escapes stay as typed
/// and invalid UTF-8 becomes U+FFFD (a token with such bytes then simply doesn't match).
fn percent_decode(raw: &str) -> String {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = bytes
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .filter(|h| h.bytes().all(|b| b.is_ascii_hexdigit()))
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                match hex {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl WebhookPreset for MetaLeadAds {
    fn verify(&self, req: &PresetRequest<'_>) -> Result<(), PresetError> {
        let Some(secret) = &self.app_secret else {
            return Err(PresetError::Unauthorized(
                "no app secret configured (`secret`): X-Hub-Signature-256 cannot be checked".into(),
            ));
        };
        let given = req.headers.get(SIGNATURE_HEADER_256).map(String::as_str);
        verify_hex_signature(secret.expose_secret().as_bytes(), req.body, given).map_err(|e| {
            PresetError::Unauthorized(
                match e {
                    SignatureError::Missing => "missing X-Hub-Signature-256 header",
                    SignatureError::Malformed => {
                        "X-Hub-Signature-256 must be \"sha256=\" followed by 64 hex digits"
                    }
                    SignatureError::Mismatch => {
                        "X-Hub-Signature-256 does not match the body (check the app secret)"
                    }
                }
                .into(),
            )
        })
    }

    fn parse(&self, req: &PresetRequest<'_>) -> Result<PresetOutput, PresetError> {
        let essence = req
            .headers
            .get("content-type")
            .map(String::as_str)
            .unwrap_or("")
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        if essence != "application/json" && !essence.ends_with("+json") {
            return Err(PresetError::UnsupportedMediaType(format!(
                "content type {:?} is not accepted; Meta sends application/json",
                if essence.is_empty() {
                    "(none)"
                } else {
                    essence.as_str()
                }
            )));
        }
        let requests = parse_notification(req.body)?;
        if requests.is_empty() {
            Ok(PresetOutput::Nothing)
        } else {
            Ok(PresetOutput::Fetch(requests))
        }
    }

    fn handshake(&self, query: &str) -> Option<Handshake> {
        let (mode, token, challenge) = hub_params(query);
        if mode.as_deref() != Some("subscribe") {
            return Some(Handshake::Refuse(
                "hub.mode must be \"subscribe\"".to_owned(),
            ));
        }
        let Some(expected) = &self.verify_token else {
            return Some(Handshake::Refuse(
                "no verify_token is configured for this connector".to_owned(),
            ));
        };
        let Some(token) = token else {
            return Some(Handshake::Refuse("hub.verify_token is missing".to_owned()));
        };
        if !constant_time_eq(token.as_bytes(), expected.expose_secret().as_bytes()) {
            return Some(Handshake::Refuse(
                "hub.verify_token does not match the configured verify_token".to_owned(),
            ));
        }
        match challenge {
            Some(c)
                if !c.is_empty()
                    && c.len() <= MAX_CHALLENGE_LEN
                    && c.bytes().all(|b| b.is_ascii_graphic()) =>
            {
                Some(Handshake::Accept(c))
            }
            Some(_) => Some(Handshake::Refuse(
                "hub.challenge must be 1 to 256 printable ASCII characters".to_owned(),
            )),
            None => Some(Handshake::Refuse("hub.challenge is missing".to_owned())),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn preset() -> MetaLeadAds {
        MetaLeadAds {
            app_secret: Some(SecretString::from("appsecret")),
            verify_token: Some(SecretString::from("my verify/token")),
        }
    }

    #[test]
    fn the_vendor_notes_signature_vector_holds() {
        assert_eq!(
            sign(b"appsecret", br#"{"object":"page"}"#),
            "sha256=b38a2f589e8e63c7fc3318ee5fad162aa1c05bd62cb1ec87c9a61641619505e2"
        );
    }

    #[test]
    fn handshake_decodes_the_query_and_echoes_the_challenge() {
        let p = preset();
        assert_eq!(
            p.handshake(
                "hub.mode=subscribe&hub.challenge=1158201444&hub.verify_token=my+verify%2Ftoken"
            ),
            Some(Handshake::Accept("1158201444".into()))
        );
        assert!(matches!(
            p.handshake("hub.mode=subscribe&hub.challenge=1&hub.verify_token=nope"),
            Some(Handshake::Refuse(_))
        ));
        assert!(matches!(
            p.handshake("hub.mode=unsubscribe&hub.challenge=1&hub.verify_token=my+verify%2Ftoken"),
            Some(Handshake::Refuse(_))
        ));
        assert!(matches!(
            p.handshake("hub.mode=subscribe&hub.verify_token=my+verify%2Ftoken"),
            Some(Handshake::Refuse(_))
        ));
        assert!(matches!(
            p.handshake("hub.mode=subscribe&hub.challenge=%3Cscript%3E%20&hub.verify_token=my+verify%2Ftoken"),
            Some(Handshake::Refuse(_))
        ));
    }

    #[test]
    fn constant_time_eq_is_equality() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
        assert!(constant_time_eq(b"", b""));
    }

    #[test]
    fn verify_refuses_missing_malformed_and_wrong_signatures() {
        let p = preset();
        let body = br#"{"object":"page"}"#;
        let mut headers = BTreeMap::new();
        let req = |headers: &BTreeMap<String, String>| {
            p.verify(&PresetRequest {
                method: "POST",
                url: "https://x/hooks/fb",
                headers,
                body,
                now_ms: 0,
            })
        };
        assert!(matches!(req(&headers), Err(PresetError::Unauthorized(_))));
        headers.insert(SIGNATURE_HEADER_256.into(), "sha1=abc".into());
        assert!(matches!(req(&headers), Err(PresetError::Unauthorized(_))));
        headers.insert(SIGNATURE_HEADER_256.into(), sign(b"other", body));
        assert!(matches!(req(&headers), Err(PresetError::Unauthorized(_))));
        headers.insert(SIGNATURE_HEADER_256.into(), sign(b"appsecret", body));
        assert_eq!(req(&headers), Ok(()));
    }

    #[test]
    fn appsecret_proof_is_hex_hmac_of_the_token() {
        let proof = appsecret_proof(b"appsecret", b"token");
        assert_eq!(proof.len(), 64);
        assert_eq!(
            format!("sha256={proof}"),
            crate::webhook::sign_hex(b"appsecret", b"token")
        );
    }
}
