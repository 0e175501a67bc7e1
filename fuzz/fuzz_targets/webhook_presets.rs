//! Fuzzes every webhook preset (generic, typeform, webflow, meta_lead_ads, google_lead_form,
//! hubspot_forms) the way the daemon drives them: `verify` on the raw request, then `parse`.
//!
//! Input layout: byte 0 picks the preset (bits 0-2), the Content-Type (bits 3-5) and how the
//! request is signed (bits 6-7); the rest is the body. The harness signs the body itself with the
//! preset's scheme, so a correctly signed variant gets past `verify` and the fuzzer spends its time
//! in `parse`. Asserted: nothing panics; a correctly signed request verifies; an unsigned or
//! wrongly signed one does not; every error and the Meta handshake answer render sanely.

#![no_main]

use std::{collections::BTreeMap, sync::LazyLock};

use hmac::{Hmac, KeyInit, Mac};
use libfuzzer_sys::fuzz_target;
use serde_json::json;
use sha2::Sha256;
use tandem_connectors::{
    Connector,
    source::{Handshake, PresetOutput, PresetRequest, WebhookPreset},
    webhook::{WebhookConfig, sign_hex},
};

const SECRET: &str = "fuzz-secret-0123456789abcdef";
const WRONG_SECRET: &str = "not-the-configured-secret";
const VERIFY_TOKEN: &str = "fuzz-verify-token";
/// The clock the daemon hands the preset; signed timestamps are taken relative to it.
const NOW_MS: i64 = 1_700_000_000_000;
/// hubspot_forms signs the URL HubSpot called: the configured full public URL.
const PUBLIC_URL: &str = "https://leads.example.com/hooks/hs";
/// The URL the daemon saw (behind a proxy, so it differs from the public one).
const REQUEST_URL: &str = "http://127.0.0.1:8080/hooks/hs";

const PRESETS: [&str; 6] = [
    "generic",
    "typeform",
    "webflow",
    "meta_lead_ads",
    "google_lead_form",
    "hubspot_forms",
];

/// What the sender claims the body is; the odd ones are what tests/corpus sends.
const CONTENT_TYPES: [Option<&str>; 8] = [
    Some("application/json"),
    Some("application/x-www-form-urlencoded"),
    None,
    Some("application/vnd.acme.lead+json; version=2"),
    Some("APPLICATION/JSON; charset=utf-8"),
    Some("text/plain"),
    Some("multipart/form-data; boundary=XyZ"),
    Some("application/x-www-form-urlencoded; charset=latin1"),
];

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Signing {
    /// Signed as the platform would, with the configured secret and a fresh timestamp.
    Correct,
    /// No signature headers at all (google_lead_form: the body as it comes).
    Unsigned,
    /// Signed with another secret (and, where there is one, a stale timestamp).
    Wrong,
    /// The preset is configured without any secret; no signature sent.
    NoSecretConfigured,
}

fn preset(name: &str, secret: Option<&str>) -> Box<dyn WebhookPreset> {
    let mut config = json!({
        "preset": name,
        "verify_token": VERIFY_TOKEN,
        "access_token": "fuzz-access-token",
        "public_url": PUBLIC_URL,
    });
    if let Some(secret) = secret {
        config["secret"] = json!(secret);
    }
    let config: WebhookConfig = match serde_json::from_value(config) {
        Ok(c) => c,
        Err(e) => panic!("harness config for {name} does not deserialize: {e}"),
    };
    match config.webhook_preset() {
        Some(p) => p,
        None => panic!("{name} builds no webhook preset"),
    }
}

/// Built once: (with the secret, without any secret) per preset.
static BUILT: LazyLock<Vec<(Box<dyn WebhookPreset>, Box<dyn WebhookPreset>)>> =
    LazyLock::new(|| {
        PRESETS
            .iter()
            .map(|name| (preset(name, Some(SECRET)), preset(name, None)))
            .collect()
    });

fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    let mut mac = match Hmac::<Sha256>::new_from_slice(key) {
        Ok(mac) => mac,
        Err(e) => panic!("HMAC takes keys of any length: {e}"),
    };
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

/// Standard base64 with padding, written out so the harness does not share the code it checks.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// google_lead_form carries its key inside the body: put it first in a JSON object body.
fn with_google_key(body: &[u8], key: &str) -> Vec<u8> {
    let start = body.iter().position(|b| !b.is_ascii_whitespace());
    match start {
        Some(i) if body[i] == b'{' => {
            let rest = &body[i + 1..];
            let closes = rest
                .iter()
                .find(|b| !b.is_ascii_whitespace())
                .is_some_and(|b| *b == b'}');
            let mut out = format!("{{\"google_key\":{}", json!(key)).into_bytes();
            if !closes {
                out.push(b',');
            }
            out.extend_from_slice(rest);
            out
        }
        _ => body.to_vec(),
    }
}

/// The headers (and, for google_lead_form, the body) of one delivery.
fn request_parts(
    preset: &str,
    signing: Signing,
    content_type: Option<&str>,
    body: &[u8],
) -> (BTreeMap<String, String>, Vec<u8>) {
    let mut headers = BTreeMap::new();
    if let Some(ct) = content_type {
        headers.insert("content-type".to_owned(), ct.to_owned());
    }
    let (secret, ts) = match signing {
        Signing::Correct => (SECRET, NOW_MS - 1_000),
        Signing::Wrong => (WRONG_SECRET, NOW_MS - 600_000),
        Signing::Unsigned | Signing::NoSecretConfigured => return (headers, body.to_vec()),
    };
    let ts = ts.to_string();
    let key = secret.as_bytes();
    let mut put = |k: &str, v: String| {
        headers.insert(k.to_owned(), v);
    };
    let mut body = body.to_vec();
    match preset {
        "generic" => put("x-tandem-signature", sign_hex(key, &body)),
        "typeform" => put(
            "typeform-signature",
            format!("sha256={}", base64(&hmac_sha256(key, &[&body]))),
        ),
        "webflow" => {
            put(
                "x-webflow-signature",
                hex::encode(hmac_sha256(key, &[ts.as_bytes(), b":", &body])),
            );
            put("x-webflow-timestamp", ts);
        }
        "meta_lead_ads" => put("x-hub-signature-256", sign_hex(key, &body)),
        "google_lead_form" => body = with_google_key(&body, secret),
        "hubspot_forms" => {
            put(
                "x-hubspot-signature-v3",
                base64(&hmac_sha256(
                    key,
                    &[b"POST", PUBLIC_URL.as_bytes(), &body, ts.as_bytes()],
                )),
            );
            put("x-hubspot-request-timestamp", ts);
        }
        other => panic!("no signing scheme for {other}"),
    }
    (headers, body)
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    let which = usize::from(selector & 0x07) % PRESETS.len();
    let name = PRESETS[which];
    let content_type = CONTENT_TYPES[usize::from((selector >> 3) & 0x07)];
    let signing = match selector >> 6 {
        0 => Signing::Correct,
        1 => Signing::Unsigned,
        2 => Signing::Wrong,
        _ => Signing::NoSecretConfigured,
    };
    let (with_secret, without_secret) = &BUILT[which];
    let preset = match signing {
        Signing::NoSecretConfigured => without_secret,
        _ => with_secret,
    };
    let (headers, body) = request_parts(name, signing, content_type, body);
    let req = PresetRequest {
        method: "POST",
        url: REQUEST_URL,
        headers: &headers,
        body: &body,
        now_ms: NOW_MS,
    };

    let verified = preset.verify(&req);
    if let Err(e) = &verified {
        assert!(!e.to_string().is_empty(), "{name}: empty verify error");
    }
    // google_lead_form's key is in the body, so whether it verifies depends on the body; for
    // every other preset the outcome follows from how the harness signed.
    if name != "google_lead_form" {
        match signing {
            Signing::Correct => {
                assert!(
                    verified.is_ok(),
                    "{name}: correctly signed but {verified:?}"
                )
            }
            Signing::Unsigned | Signing::Wrong => {
                assert!(verified.is_err(), "{name}: accepted a {signing:?} request")
            }
            // Only generic may run without a secret (then it accepts everything).
            Signing::NoSecretConfigured => assert_eq!(
                verified.is_ok(),
                name == "generic",
                "{name}: no secret configured, verify gave {verified:?}"
            ),
        }
    }

    // The daemon parses only what verified; parse is run either way, as nothing it is handed may
    // make it panic.
    match preset.parse(&req) {
        Ok(PresetOutput::Leads(leads)) => {
            for lead in &leads {
                let _ = serde_json::to_string(lead);
            }
        }
        Ok(PresetOutput::Fetch(requests)) => {
            for r in &requests {
                assert!(
                    !r.event_id.is_empty(),
                    "{name}: fetch request without an id"
                );
            }
        }
        Ok(PresetOutput::Nothing) => {}
        Err(e) => assert!(!e.to_string().is_empty(), "{name}: empty parse error"),
    }

    // Meta's GET handshake: the body as a raw query string, and as the challenge of an otherwise
    // valid handshake. An accepted challenge is echoed verbatim, so it must be short and printable.
    if name == "meta_lead_ads" {
        let text = String::from_utf8_lossy(&body);
        let raw = preset.handshake(&text);
        let valid = preset.handshake(&format!(
            "hub.mode=subscribe&hub.verify_token={VERIFY_TOKEN}&hub.challenge={text}"
        ));
        for answer in [raw, valid].into_iter().flatten() {
            if let Handshake::Accept(c) = answer {
                assert!(
                    !c.is_empty() && c.len() <= 256 && c.bytes().all(|b| b.is_ascii_graphic()),
                    "handshake echoed {c:?}"
                );
            }
        }
    }
});
