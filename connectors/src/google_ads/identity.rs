//! Google's normalisation of user-provided data before SHA-256 (Data Manager "formatting
//! guidelines", the same rule the Google Ads API uses for enhanced conversions for leads):
//!
//! - email: trim, lowercase; for `gmail.com` and `googlemail.com` remove every `.` before the
//!   `@` (`Jane.Doe@Gmail.com` → `janedoe@gmail.com`);
//! - phone: E.164 (`+` and 8–15 digits), hashed with the `+`.
//!
//! Hashes are lowercase hex (`encoding: "HEX"`). Values that don't normalise are left out rather
//! than sent malformed: Google would refuse the whole request for one bad identifier.

use crate::writeback::sha256_hex;

/// The normalised email Google hashes, or `None` for text that is not an address.
pub fn normalise_email(email: &str) -> Option<String> {
    let e = email.trim().to_lowercase();
    let (local, domain) = e.rsplit_once('@')?;
    if local.is_empty()
        || domain.is_empty()
        || !domain.contains('.')
        || e.chars().any(char::is_whitespace)
    {
        return None;
    }
    let local = if matches!(domain, "gmail.com" | "googlemail.com") {
        local.replace('.', "")
    } else {
        local.to_owned()
    };
    if local.is_empty() {
        return None;
    }
    Some(format!("{local}@{domain}"))
}

/// The E.164 phone Google hashes (`+` then 8–15 digits), or `None`.
pub fn normalise_phone(phone: &str) -> Option<String> {
    let p = phone.trim();
    let digits = p.strip_prefix('+')?;
    let ok = (8..=15).contains(&digits.len())
        && digits.bytes().all(|b| b.is_ascii_digit())
        && !digits.starts_with('0');
    ok.then(|| p.to_owned())
}

/// Lowercase hex SHA-256 of the normalised email.
pub fn hashed_email(email: &str) -> Option<String> {
    normalise_email(email).map(|e| sha256_hex(&e))
}

/// Lowercase hex SHA-256 of the E.164 phone.
pub fn hashed_phone(phone: &str) -> Option<String> {
    normalise_phone(phone).map(|p| sha256_hex(&p))
}

/// Whether `s` looks like what [`sha256_hex`] produces (64 hex digits).
pub fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_normalise_the_google_way() {
        assert_eq!(
            normalise_email(" Jane.Doe@Gmail.com ").as_deref(),
            Some("janedoe@gmail.com")
        );
        assert_eq!(
            normalise_email("j.a.n.e@googlemail.com").as_deref(),
            Some("jane@googlemail.com")
        );
        // Dots stay everywhere else.
        assert_eq!(
            normalise_email("Jane.Doe@Example.com").as_deref(),
            Some("jane.doe@example.com")
        );
        for bad in [
            "",
            "jane",
            "@example.com",
            "jane@localhost",
            "ja ne@example.com",
            "...@gmail.com",
        ] {
            assert_eq!(normalise_email(bad), None, "{bad:?}");
        }
        // Independently computed: printf %s 'janedoe@gmail.com' | sha256sum
        assert_eq!(
            hashed_email("Jane.Doe@Gmail.com").as_deref(),
            Some("d6117306485ed0e50afab3ac871e98f81699151f30281527d63ff5f233656c69")
        );
        // VENDOR-NOTES §15: Person@Example.com → person@example.com.
        assert_eq!(
            hashed_email("Person@Example.com").as_deref(),
            Some("542d240129883c019e106e3b1b2d3f3cb3537c43c425364de8e951d5a3083345")
        );
    }

    #[test]
    fn phones_must_be_e164() {
        // printf %s '+15555550100' | sha256sum
        assert_eq!(
            hashed_phone(" +15555550100 ").as_deref(),
            Some("0cbf019479241f66c9c60d39e69e06989f108bc47da5b938a87045a615cad4a4")
        );
        for bad in [
            "15555550100",
            "+1 555 555 0100",
            "+0123456789",
            "+1234567",
            "+1234567890123456",
        ] {
            assert_eq!(normalise_phone(bad), None, "{bad:?}");
        }
        assert!(is_sha256_hex(&sha256_hex("x")) && !is_sha256_hex("jane@example.com"));
    }
}
