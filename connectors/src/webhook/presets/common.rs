//! Helpers the platform presets share: media-type checks, constant-time comparisons, base64,
//! timestamps, and the mapping of a platform's field names onto tandem's canonical ones.

use std::collections::BTreeMap;

use hmac::{Hmac, KeyInit, Mac};
use serde_json::Value;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::source::PresetError;

/// How far a signed timestamp may be from our clock (both ways), in milliseconds.
pub const MAX_SKEW_MS: i64 = 5 * 60 * 1000;

pub fn malformed(field: impl Into<String>, reason: impl Into<String>) -> PresetError {
    PresetError::Malformed {
        field: field.into(),
        reason: reason.into(),
    }
}

/// 415 unless the request says it is JSON (`application/json` or `*/*+json`).
pub fn require_json(headers: &BTreeMap<String, String>) -> Result<(), PresetError> {
    let essence = headers
        .get("content-type")
        .map(String::as_str)
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if essence == "application/json" || essence.ends_with("+json") {
        Ok(())
    } else {
        Err(PresetError::UnsupportedMediaType(format!(
            "content type {:?} is not accepted; this platform sends application/json",
            if essence.is_empty() {
                "(none)"
            } else {
                &essence
            }
        )))
    }
}

/// The body as JSON; a 400 naming `body` when it is not.
pub fn parse_json(body: &[u8]) -> Result<Value, PresetError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(malformed("body", "body is empty"));
    }
    serde_json::from_slice(body).map_err(|e| malformed("body", format!("not valid JSON: {e}")))
}

/// HMAC-SHA256 of the concatenated parts.
pub fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    // HMAC accepts keys of any length, so this never fails.
    let mut mac = match Hmac::<Sha256>::new_from_slice(key) {
        Ok(mac) => mac,
        Err(_) => return [0; 32],
    };
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

/// Constant-time equality that does not leak the length either: both sides are hashed first.
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    let ha = Sha256::digest(a);
    let hb = Sha256::digest(b);
    bool::from(ha.as_slice().ct_eq(hb.as_slice())) && a.len() == b.len()
}

/// Standard base64 with padding (RFC 4648 §4).
pub fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
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

/// A millisecond epoch timestamp header: present, numeric, and within [`MAX_SKEW_MS`] of now.
pub fn check_timestamp(
    header: &str,
    raw: Option<&String>,
    now_ms: i64,
) -> Result<i64, PresetError> {
    let raw = raw
        .map(|s| s.trim())
        .filter(|s| !s.is_empty())
        .ok_or_else(|| PresetError::Unauthorized(format!("missing {header} header")))?;
    let ts: i64 = raw.parse().map_err(|_| {
        PresetError::Unauthorized(format!("{header} is not a millisecond timestamp"))
    })?;
    if now_ms.abs_diff(ts) > MAX_SKEW_MS.unsigned_abs() {
        return Err(PresetError::Unauthorized(format!(
            "stale timestamp: {header} is more than 5 minutes from now"
        )));
    }
    Ok(ts)
}

/// A millisecond epoch as RFC 3339 (UTC).
pub fn ms_to_rfc3339(ms: i64) -> Option<String> {
    jiff::Timestamp::from_millisecond(ms)
        .ok()
        .map(|t| t.to_string())
}

/// A JSON value that is a millisecond epoch (number or numeric string) as RFC 3339; an RFC 3339
/// string is passed through.
pub fn json_time(v: &Value) -> Option<String> {
    match v {
        Value::Number(n) => n.as_i64().and_then(ms_to_rfc3339),
        Value::String(s) => match s.trim().parse::<i64>() {
            Ok(ms) => ms_to_rfc3339(ms),
            Err(_) => s
                .parse::<jiff::Timestamp>()
                .ok()
                .map(|t| t.to_string())
                .or_else(|| Some(s.clone()).filter(|s| !s.trim().is_empty())),
        },
        _ => None,
    }
}

/// A JSON id (string or number) as a string.
pub fn json_id(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_owned()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Lowercase, every run of non-alphanumerics as one `_`, trimmed: "Your E-mail " → "your_e_mail".
pub fn normalize_key(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    for c in raw.trim().chars() {
        if c.is_alphanumeric() {
            out.extend(c.to_lowercase());
        } else if !out.ends_with('_') {
            out.push('_');
        }
    }
    out.trim_matches('_').to_owned()
}

/// The canonical lead field a platform's field name means, where it is unambiguous.
pub fn canonical_name(raw: &str) -> Option<&'static str> {
    let key = normalize_key(raw);
    Some(match key.as_str() {
        "email" | "e_mail" | "email_address" | "emailaddress" | "your_email" | "your_e_mail"
        | "work_email" | "business_email" | "mail" => "email",
        "phone" | "phone_number" | "phonenumber" | "telephone" | "tel" | "mobile"
        | "mobile_phone" | "mobilephone" | "mobile_number" | "cell" | "your_phone" => "phone",
        "first_name" | "firstname" | "fname" | "given_name" | "forename" => "first_name",
        "last_name" | "lastname" | "lname" | "surname" | "family_name" => "last_name",
        "company" | "company_name" | "companyname" | "organization" | "organisation"
        | "organization_name" | "business_name" => "company",
        "job_title" | "jobtitle" | "job" | "position" => "job_title",
        "country" | "country_code" => "country",
        "consent" | "marketing_consent" | "gdpr_consent" | "opt_in" | "optin" => "consent",
        "utm_source" => "utm_source",
        "utm_medium" => "utm_medium",
        "utm_campaign" => "utm_campaign",
        "utm_term" => "utm_term",
        "utm_content" => "utm_content",
        "gclid" => "gclid",
        "gbraid" => "gbraid",
        "wbraid" => "wbraid",
        "fbclid" => "fbclid",
        "li_fat_id" => "li_fat_id",
        "landing_url" | "landing_page" | "page_url" | "pageurl" => "landing_url",
        "referrer" | "referer" | "referrer_url" => "referrer",
        "campaign_id" => "campaign_id",
        "campaign_name" => "campaign_name",
        "ad_id" => "ad_id",
        "adset_id" => "adset_id",
        "page_id" => "page_id",
        _ => return None,
    })
}

/// Whether a field name means a person's full name (split into first/last when those are absent).
pub fn is_full_name(raw: &str) -> bool {
    matches!(
        normalize_key(raw).as_str(),
        "name" | "full_name" | "fullname" | "your_name" | "contact_name"
    )
}

/// A value the daemon accepts for a canonical field: string, number, boolean or list of strings.
fn canonical_ok(v: &Value) -> bool {
    match v {
        Value::String(_) | Value::Number(_) | Value::Bool(_) => true,
        Value::Array(items) => items.iter().all(Value::is_string),
        _ => false,
    }
}

fn is_blank(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::String(s) => s.trim().is_empty(),
        _ => false,
    }
}

/// Builds a lead's field map: canonical names where known, the platform's key otherwise.
#[derive(Debug, Default)]
pub struct FieldSink {
    pub fields: BTreeMap<String, Value>,
    full_name: Option<String>,
}

impl FieldSink {
    /// Under the canonical name its key means (first one wins), else under `raw_key`.
    pub fn put(&mut self, raw_key: &str, value: Value) {
        if is_blank(&value) || raw_key.is_empty() {
            return;
        }
        if let Some(name) = canonical_name(raw_key)
            && canonical_ok(&value)
            && !self.fields.contains_key(name)
        {
            self.fields.insert(name.to_owned(), value);
            return;
        }
        if is_full_name(raw_key)
            && let Value::String(s) = &value
            && self.full_name.is_none()
        {
            self.full_name = Some(s.clone());
        }
        self.fields.entry(raw_key.to_owned()).or_insert(value);
    }

    /// Under this canonical name (first one wins; a second goes under `raw_key`).
    pub fn put_canonical(&mut self, name: &str, raw_key: &str, value: Value) {
        if is_blank(&value) {
            return;
        }
        if canonical_ok(&value) && !self.fields.contains_key(name) {
            self.fields.insert(name.to_owned(), value);
        } else if !raw_key.is_empty() {
            self.fields.entry(raw_key.to_owned()).or_insert(value);
        }
    }

    /// A full name, kept under `raw_key` and split into first/last names when those are absent.
    pub fn put_full_name(&mut self, raw_key: &str, value: &str) {
        if value.trim().is_empty() {
            return;
        }
        if self.full_name.is_none() {
            self.full_name = Some(value.to_owned());
        }
        self.fields
            .entry(raw_key.to_owned())
            .or_insert_with(|| Value::String(value.to_owned()));
    }

    /// The fields, with a full name split when no first/last name came on their own.
    pub fn finish(mut self) -> BTreeMap<String, Value> {
        if let Some(full) = self.full_name.take()
            && !self.fields.contains_key("first_name")
            && !self.fields.contains_key("last_name")
        {
            let mut words = full.split_whitespace();
            if let Some(first) = words.next() {
                self.fields
                    .insert("first_name".into(), Value::String(first.to_owned()));
                let rest = words.collect::<Vec<_>>().join(" ");
                if !rest.is_empty() {
                    self.fields.insert("last_name".into(), Value::String(rest));
                }
            }
        }
        self.fields
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn base64_matches_rfc4648_vectors() {
        for (input, want) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(input.as_bytes()), want);
        }
    }

    #[test]
    fn names_map_to_canonical_fields_and_full_names_split() {
        assert_eq!(canonical_name("Your E-mail"), Some("email"));
        assert_eq!(canonical_name("Phone Number"), Some("phone"));
        assert_eq!(canonical_name("favourite colour"), None);
        let mut sink = FieldSink::default();
        sink.put("Name", json!("Jane van Doe"));
        sink.put("Email", json!("a@b.co"));
        sink.put("email_address", json!("second@b.co"));
        sink.put("notes", json!(""));
        let fields = sink.finish();
        assert_eq!(fields["first_name"], json!("Jane"));
        assert_eq!(fields["last_name"], json!("van Doe"));
        assert_eq!(fields["email"], json!("a@b.co"));
        assert_eq!(fields["email_address"], json!("second@b.co"));
        assert_eq!(fields["Name"], json!("Jane van Doe"));
        assert!(!fields.contains_key("notes"));
    }

    #[test]
    fn timestamps_outside_five_minutes_are_stale() {
        let now = 1_700_000_000_000;
        let ts = |v: i64| Some(v.to_string());
        assert!(check_timestamp("t", ts(now - 299_000).as_ref(), now).is_ok());
        assert!(check_timestamp("t", ts(now + 299_000).as_ref(), now).is_ok());
        let stale = check_timestamp("t", ts(now - 301_000).as_ref(), now).unwrap_err();
        assert!(stale.to_string().contains("stale timestamp"));
        assert!(check_timestamp("t", None, now).is_err());
        assert!(check_timestamp("t", Some(&"abc".to_owned()), now).is_err());
        assert!(check_timestamp("t", ts(i64::MIN).as_ref(), i64::MAX).is_err());
    }

    #[test]
    fn constant_time_compare() {
        assert!(ct_eq(b"abc", b"abc"));
        assert!(!ct_eq(b"abc", b"abd"));
        assert!(!ct_eq(b"abc", b"abcd"));
    }
}
