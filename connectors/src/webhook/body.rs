//! Decoding a submitted body into fields: a JSON object, or `application/x-www-form-urlencoded`.
//! Anything else is refused with a reason the sender can act on.

use std::collections::BTreeMap;

use serde_json::Value;

/// A decoded form submission: field name → value as submitted.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Submission {
    pub fields: BTreeMap<String, Value>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    #[error(
        "content type {0:?} is not accepted; send application/json or application/x-www-form-urlencoded"
    )]
    UnsupportedContentType(String),
    #[error("body is not valid JSON: {0}")]
    InvalidJson(String),
    #[error("body must be a JSON object, got {0}")]
    NotAnObject(&'static str),
    #[error("form body is not valid UTF-8 after percent-decoding")]
    InvalidUtf8,
    #[error("body is empty")]
    Empty,
}

impl BodyError {
    /// Whether this is a 415 (wrong media type) rather than a 400 (bad content).
    pub fn is_media_type(&self) -> bool {
        matches!(self, BodyError::UnsupportedContentType(_))
    }
}

/// Decodes `body` according to its `Content-Type` header value.
pub fn parse_body(content_type: Option<&str>, body: &[u8]) -> Result<Submission, BodyError> {
    let essence = content_type
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match essence.as_str() {
        "application/json" => parse_json(body),
        "application/x-www-form-urlencoded" => parse_form(body),
        _ if essence.ends_with("+json") => parse_json(body),
        _ => Err(BodyError::UnsupportedContentType(if essence.is_empty() {
            "(none)".into()
        } else {
            essence
        })),
    }
}

fn parse_json(body: &[u8]) -> Result<Submission, BodyError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(BodyError::Empty);
    }
    let value: Value =
        serde_json::from_slice(body).map_err(|e| BodyError::InvalidJson(e.to_string()))?;
    match value {
        Value::Object(map) => Ok(Submission {
            fields: map.into_iter().collect(),
        }),
        Value::Array(_) => Err(BodyError::NotAnObject("an array")),
        Value::String(_) => Err(BodyError::NotAnObject("a string")),
        Value::Number(_) => Err(BodyError::NotAnObject("a number")),
        Value::Bool(_) => Err(BodyError::NotAnObject("a boolean")),
        Value::Null => Err(BodyError::NotAnObject("null")),
    }
}

fn parse_form(body: &[u8]) -> Result<Submission, BodyError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(BodyError::Empty);
    }
    // form_urlencoded would replace invalid UTF-8 silently; a lead's name must not be mangled.
    let mut fields: BTreeMap<String, Value> = BTreeMap::new();
    for pair in body.split(|b| *b == b'&').filter(|p| !p.is_empty()) {
        let (k, v) = match pair.iter().position(|b| *b == b'=') {
            Some(i) => (&pair[..i], &pair[i + 1..]),
            None => (pair, &b""[..]),
        };
        let key = decode_component(k)?;
        let value = Value::String(decode_component(v)?);
        // Repeated keys (checkbox groups) become an array, in submission order.
        match fields.get_mut(&key) {
            None => {
                fields.insert(key, value);
            }
            Some(Value::Array(items)) => items.push(value),
            Some(first) => {
                let first = first.take();
                fields.insert(key, Value::Array(vec![first, value]));
            }
        }
    }
    Ok(Submission { fields })
}

fn decode_component(raw: &[u8]) -> Result<String, BodyError> {
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        match raw[i] {
            b'+' => out.push(b' '),
            b'%' => match hex_pair(raw.get(i + 1..i + 3)) {
                Some(byte) => {
                    out.push(byte);
                    i += 2;
                }
                None => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).map_err(|_| BodyError::InvalidUtf8)
}

fn hex_pair(pair: Option<&[u8]>) -> Option<u8> {
    let pair = pair?;
    let s = std::str::from_utf8(pair).ok()?;
    if !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u8::from_str_radix(s, 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_objects_and_forms_decode_to_the_same_fields() {
        let j = parse_body(
            Some("application/json; charset=utf-8"),
            br#"{"email":"a@b.co","first_name":"Ann"}"#,
        )
        .unwrap();
        let f = parse_body(
            Some("application/x-www-form-urlencoded"),
            b"email=a%40b.co&first_name=Ann",
        )
        .unwrap();
        assert_eq!(j, f);
    }

    #[test]
    fn form_decoding_handles_plus_percent_and_repeated_keys() {
        let f = parse_body(
            Some("application/x-www-form-urlencoded"),
            b"n=J%C3%BCrgen+M&i=a&i=b&i=c&bad=%zz&empty",
        )
        .unwrap();
        assert_eq!(f.fields["n"], Value::String("Jürgen M".into()));
        assert_eq!(f.fields["i"], serde_json::json!(["a", "b", "c"]));
        assert_eq!(f.fields["bad"], Value::String("%zz".into()));
        assert_eq!(f.fields["empty"], Value::String(String::new()));
    }

    #[test]
    fn bad_bodies_say_what_is_wrong() {
        assert!(
            parse_body(Some("text/plain"), b"x")
                .unwrap_err()
                .is_media_type()
        );
        assert!(parse_body(None, b"x").unwrap_err().is_media_type());
        assert_eq!(
            parse_body(Some("application/json"), b"[1]"),
            Err(BodyError::NotAnObject("an array"))
        );
        assert!(matches!(
            parse_body(Some("application/json"), b"{\"a\":"),
            Err(BodyError::InvalidJson(_))
        ));
        assert_eq!(
            parse_body(Some("application/json"), b"  "),
            Err(BodyError::Empty)
        );
        assert_eq!(
            parse_body(Some("application/x-www-form-urlencoded"), b"n=%ff"),
            Err(BodyError::InvalidUtf8)
        );
    }
}
