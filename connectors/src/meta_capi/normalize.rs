//! Customer information as Meta matches it: each identifier normalised by Meta's rules, then
//! SHA-256 hashed (lowercase hex). A value that normalises to nothing is left out rather than
//! sent as the hash of an empty string, which would match nobody and cost match quality.
//!
//! The rules (Meta's customer information parameters): email trimmed and lowercased; phone
//! digits only, with the country code, no `+`, no leading zeros; first and last name lowercased
//! with no punctuation; country the ISO 3166-1 alpha-2 code in lowercase. `lead_id` and `fbc` are
//! never hashed.

use crate::writeback::sha256_hex;

/// Hashed email, from any casing and surrounding whitespace.
pub fn email(raw: &str) -> Option<String> {
    let e = raw.trim().to_lowercase();
    (e.contains('@') && !e.contains(char::is_whitespace)).then(|| sha256_hex(&e))
}

/// Digits only, with the country code and no leading zeros (`+44 844 412 4653` →
/// `448444124653`), as Meta hashes phones.
pub fn phone_digits(raw: &str) -> Option<String> {
    let digits: String = raw.chars().filter(char::is_ascii_digit).collect();
    let digits = digits.trim_start_matches('0');
    // E.164 allows at most 15 digits; fewer than 7 can't be a number with its country code.
    (7..=15).contains(&digits.len()).then(|| digits.to_owned())
}

/// Hashed phone (see [`phone_digits`]).
pub fn phone(raw: &str) -> Option<String> {
    phone_digits(raw).map(|d| sha256_hex(&d))
}

/// A first or last name as Meta hashes it: lowercased, punctuation dropped, inner whitespace
/// collapsed to one space (`" O'Brien-Smith "` → `obriensmith`, `"Mary  Ann"` → `mary ann`).
pub fn name_text(raw: &str) -> Option<String> {
    let kept: String = raw
        .chars()
        .filter(|c| c.is_alphanumeric() || c.is_whitespace())
        .flat_map(char::to_lowercase)
        .collect();
    let n = kept.split_whitespace().collect::<Vec<_>>().join(" ");
    (!n.is_empty()).then_some(n)
}

/// Hashed first or last name (see [`name_text`]).
pub fn name(raw: &str) -> Option<String> {
    name_text(raw).map(|n| sha256_hex(&n))
}

/// Hashed country: the two-letter code in lowercase (`"DE"` → sha256 of `de`).
pub fn country(raw: &str) -> Option<String> {
    let c = raw.trim().to_ascii_lowercase();
    (c.len() == 2 && c.bytes().all(|b| b.is_ascii_lowercase())).then(|| sha256_hex(&c))
}

/// Whether `v` looks like what Meta wants in a hashed field: 64 lowercase hex digits.
pub fn is_sha256_hex(v: &str) -> bool {
    v.len() == 64 && v.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_match_meta_s_published_example_and_independent_vectors() {
        // Meta's own example: Person@Example.com → person@example.com.
        assert_eq!(
            email(" Person@Example.com ").as_deref(),
            Some("542d240129883c019e106e3b1b2d3f3cb3537c43c425364de8e951d5a3083345")
        );
        assert_eq!(email("no-at-sign"), None);
        // Meta's phone example: +44 844 412 4653 → 448444124653.
        assert_eq!(
            phone_digits("+44 844 412 4653").as_deref(),
            Some("448444124653")
        );
        assert_eq!(
            phone_digits("0044 844 412 4653").as_deref(),
            Some("448444124653")
        );
        assert_eq!(phone_digits("+1"), None);
        // sha256("15551234567") and sha256("448444124653") (Meta's example), computed outside
        // this code.
        assert_eq!(
            phone("+1 (555) 123-4567").as_deref(),
            Some("d6736136ea896c1bfdc553e0e86e702c70d060d805696ca3e4e9e0961353860a")
        );
        assert_eq!(
            phone("+44 844 412 4653").as_deref(),
            Some("dc008fda46e2e64002cf2f82a4906236282d431c4f75e5b60bfe79fc48546383")
        );
        assert_eq!(name_text(" O'Brien-Smith ").as_deref(), Some("obriensmith"));
        assert_eq!(name_text("Mary  Ann").as_deref(), Some("mary ann"));
        assert_eq!(name_text("Zoë").as_deref(), Some("zoë"));
        assert_eq!(name_text(" .- "), None);
        // sha256("jane"), computed outside this code.
        assert_eq!(
            name("Jane").as_deref(),
            Some("81f8f6dde88365f3928796ec7aa53f72820b06db8664f5fe76a7eb13e24546a2")
        );
        // sha256("us"), computed outside this code.
        assert_eq!(
            country("US").as_deref(),
            Some("79adb2a2fce5c6ba215fe5f27f532d4e7edbac4b6a5e09e1ef3a08084a904621")
        );
        assert_eq!(country("USA"), None);
        assert!(is_sha256_hex(&sha256_hex("x")) && !is_sha256_hex("ABC"));
    }
}
