//! The generic preset's signature: `X-Tandem-Signature: sha256=<hex HMAC-SHA256(secret, raw body)>`,
//! checked in constant time over the raw bytes, before the body is parsed.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// The header the generic preset's signature travels in.
pub const SIGNATURE_HEADER: &str = "x-tandem-signature";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("missing X-Tandem-Signature header")]
    Missing,
    #[error("X-Tandem-Signature must be \"sha256=\" followed by 64 hex digits")]
    Malformed,
    #[error("signature does not match the body")]
    Mismatch,
}

/// `sha256=<hex>` for `body` under `secret`: what a sender puts in the header.
pub fn sign_hex(secret: &[u8], body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// Checks a `sha256=<hex>` header value against the raw body.
pub fn verify_hex_signature(
    secret: &[u8],
    body: &[u8],
    header: Option<&str>,
) -> Result<(), SignatureError> {
    let header = header.ok_or(SignatureError::Missing)?;
    let hex_part = header
        .trim()
        .strip_prefix("sha256=")
        .ok_or(SignatureError::Malformed)?;
    let given = hex::decode(hex_part).map_err(|_| SignatureError::Malformed)?;
    if given.len() != 32 {
        return Err(SignatureError::Malformed);
    }
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(body);
    // verify_slice compares in constant time.
    mac.verify_slice(&given)
        .map_err(|_| SignatureError::Mismatch)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_made_by_sign_hex_verifies_and_a_changed_body_does_not() {
        let sig = sign_hex(b"s3cret", b"{\"email\":\"a@b.co\"}");
        assert!(sig.starts_with("sha256=") && sig.len() == 7 + 64);
        assert_eq!(
            verify_hex_signature(b"s3cret", b"{\"email\":\"a@b.co\"}", Some(&sig)),
            Ok(())
        );
        assert_eq!(
            verify_hex_signature(b"s3cret", b"{\"email\":\"x@b.co\"}", Some(&sig)),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify_hex_signature(b"other", b"{\"email\":\"a@b.co\"}", Some(&sig)),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn missing_and_malformed_headers_are_told_apart() {
        assert_eq!(
            verify_hex_signature(b"k", b"x", None),
            Err(SignatureError::Missing)
        );
        assert_eq!(
            verify_hex_signature(b"k", b"x", Some("md5=abcd")),
            Err(SignatureError::Malformed)
        );
        assert_eq!(
            verify_hex_signature(b"k", b"x", Some("sha256=zz")),
            Err(SignatureError::Malformed)
        );
        assert_eq!(
            verify_hex_signature(b"k", b"x", Some("sha256=abcd")),
            Err(SignatureError::Malformed)
        );
    }

    #[test]
    fn matches_a_known_hmac_sha256_vector() {
        // RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?".
        assert_eq!(
            sign_hex(b"Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
