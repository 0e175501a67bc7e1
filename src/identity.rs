//! Normalising the identifiers a person is known by: emails trimmed, lowercased and validated
//! strictly (no display names, no domain literals, a TLD required); phones to E.164 with a
//! per-connector default region. The result is the key people are found by.

use email_address::{EmailAddress, Options};

use crate::store::PersonKey;

/// Why an identifier was refused. Never carries the value itself (it is personal data).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    #[error("is not a valid email address (expected name@domain.tld, without a display name)")]
    InvalidEmail,
    #[error("is not a valid phone number{0}")]
    InvalidPhone(&'static str),
}

/// `"  Jane.Doe@Example.COM "` → `"jane.doe@example.com"`, or an error for anything that is not
/// a plain address with a TLD.
pub fn normalize_email(raw: &str) -> Result<String, IdentityError> {
    let lowered = raw.trim().to_lowercase();
    // Invisible characters (zero-width space, BOM, bidi overrides, controls) would make
    // "ann\u{200b}@example.com" a second person who looks exactly like the first.
    if lowered.chars().any(is_invisible) {
        return Err(IdentityError::InvalidEmail);
    }
    let options = Options::default()
        .with_required_tld()
        .without_domain_literal()
        .without_display_text();
    EmailAddress::parse_with_options(&lowered, options)
        .map(|e| e.email().to_string())
        .map_err(|_| IdentityError::InvalidEmail)
}

fn is_invisible(c: char) -> bool {
    c.is_control()
        || matches!(c,
            '\u{00ad}' | '\u{034f}' | '\u{061c}' | '\u{115f}' | '\u{1160}' | '\u{17b4}' | '\u{17b5}'
            | '\u{180b}'..='\u{180f}' | '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}'
            | '\u{2060}'..='\u{206f}' | '\u{3164}' | '\u{fe00}'..='\u{fe0f}' | '\u{feff}'
            | '\u{ffa0}' | '\u{fff0}'..='\u{fff8}' | '\u{1d173}'..='\u{1d17a}' | '\u{e0000}'..='\u{e0fff}')
}

/// A phone number in E.164 (`+14155550100`). Numbers without a country code need `region`.
pub fn normalize_phone(raw: &str, region: Option<&str>) -> Result<String, IdentityError> {
    let raw = raw.trim();
    let country = match region {
        Some(r) => Some(
            r.parse::<phonenumber::country::Id>()
                .map_err(|_| IdentityError::InvalidPhone(" (unknown default_region)"))?,
        ),
        None => None,
    };
    if country.is_none() && !raw.starts_with('+') && !raw.starts_with("00") {
        return Err(IdentityError::InvalidPhone(
            " (no country code, and the connector has no default_region)",
        ));
    }
    let number = phonenumber::parse(country, raw).map_err(|_| IdentityError::InvalidPhone(""))?;
    if !number.is_valid() {
        return Err(IdentityError::InvalidPhone(""));
    }
    Ok(number.format().mode(phonenumber::Mode::E164).to_string())
}

/// The key a person is stored under: email, else phone, else the source's own id.
pub fn person_key(
    email: Option<&str>,
    phone: Option<&str>,
    source_key: Option<String>,
) -> Option<PersonKey> {
    if email.is_none() && phone.is_none() && source_key.is_none() {
        return None;
    }
    Some(PersonKey {
        email: email.map(str::to_owned),
        phone: phone.map(str::to_owned),
        source_key: if email.is_none() && phone.is_none() {
            source_key
        } else {
            None
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_trimmed_lowercased_and_strictly_validated() {
        assert_eq!(
            normalize_email("  Jane.Doe@Example.COM ").unwrap(),
            "jane.doe@example.com"
        );
        for bad in [
            "",
            "jane",
            "jane@localhost",
            "Jane <jane@example.com>",
            "jane@[127.0.0.1]",
            "a@@b.co",
            "a b@c.co",
        ] {
            assert_eq!(
                normalize_email(bad),
                Err(IdentityError::InvalidEmail),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn phones_become_e164_with_or_without_a_region() {
        assert_eq!(
            normalize_phone("+1 (415) 555-2671", None).unwrap(),
            "+14155552671"
        );
        assert_eq!(
            normalize_phone("(415) 555-2671", Some("US")).unwrap(),
            "+14155552671"
        );
        assert_eq!(
            normalize_phone("030 901820", Some("DE")).unwrap(),
            "+4930901820"
        );
        assert!(normalize_phone("415 555 2671", None).is_err());
        assert!(normalize_phone("12", Some("US")).is_err());
        assert!(normalize_phone("+1 415", Some("ZZ")).is_err());
        assert!(normalize_phone("\u{0}\u{ffff}+++", Some("US")).is_err());
    }

    #[test]
    fn the_person_key_prefers_email_then_phone_then_source_id() {
        let k = person_key(Some("a@b.co"), Some("+1"), Some("web:1".into())).unwrap();
        assert_eq!((k.email.as_deref(), k.source_key), (Some("a@b.co"), None));
        let k = person_key(None, None, Some("web:1".into())).unwrap();
        assert_eq!(k.source_key.as_deref(), Some("web:1"));
        assert!(person_key(None, None, None).is_none());
    }
}

#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2_000, failure_persistence: None, ..ProptestConfig::default() })]

        /// Whatever comes in, normalising never panics, and a normalised value normalises to itself.
        #[test]
        fn email_normalisation_never_panics_and_is_idempotent(raw in any::<String>(), local in "[a-zA-Z0-9._+-]{1,20}", domain in "[a-zA-Z0-9-]{1,20}\\.[a-z]{2,6}") {
            if let Ok(e) = normalize_email(&raw) {
                prop_assert_eq!(normalize_email(&e), Ok(e.clone()));
            }
            let plausible = format!("  {local}@{domain} ");
            if let Ok(e) = normalize_email(&plausible) {
                prop_assert_eq!(normalize_email(&e), Ok(e.clone()));
                prop_assert_eq!(e.clone(), e.to_lowercase());
            }
        }

        #[test]
        fn phone_normalisation_never_panics_and_is_idempotent(raw in any::<String>(), digits in "[0-9 ()+-]{0,24}", region in prop::sample::select(vec!["US", "DE", "GB", "FR", "IN", "BR", "JP", "ZZ"])) {
            for input in [raw.as_str(), digits.as_str()] {
                if let Ok(p) = normalize_phone(input, Some(region)) {
                    prop_assert!(p.starts_with('+'));
                    prop_assert_eq!(normalize_phone(&p, None), Ok(p.clone()));
                    prop_assert_eq!(normalize_phone(&p, Some(region)), Ok(p.clone()));
                }
            }
        }
    }
}
