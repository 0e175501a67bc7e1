//! The parsed TOML document with byte spans, and typed deserialization of one section at a time.
//!
//! toml 1 keeps spans on every key and value (`toml::de::DeTable`), and its `ValueDeserializer`
//! reports serde errors with the span of the offending key or value. Deserializing each section
//! separately means one broken section does not hide the problems of the others; retrying after
//! dropping an unknown key reports every unknown key of a section, not just the first.

use std::ops::Range;

use serde::de::DeserializeOwned;
use toml::{
    Spanned,
    de::{DeTable, DeValue, ValueDeserializer},
};

use super::error::{Reporter, did_you_mean};

/// Span of the value at `path` (or of the deepest part of it that exists). A numeric segment
/// indexes an array. A table is located by its key, since its own span may be a whole block.
pub(crate) fn span_of(root: &DeTable<'_>, path: &[&str]) -> Option<Range<usize>> {
    let (first, rest) = path.split_first()?;
    let (k, v) = root.get_key_value(*first)?;
    let here = if matches!(v.get_ref(), DeValue::Table(_)) {
        k.span()
    } else {
        v.span()
    };
    Some(span_below(v, rest).unwrap_or(here))
}

fn span_below(value: &Spanned<DeValue<'_>>, path: &[&str]) -> Option<Range<usize>> {
    let (first, rest) = path.split_first()?;
    match value.get_ref() {
        DeValue::Table(t) => span_of(t, path),
        DeValue::Array(items) => {
            let item = items.get(first.parse::<usize>().ok()?)?;
            Some(span_below(item, rest).unwrap_or(item.span()))
        }
        _ => None,
    }
}

/// Dotted path of the deepest key or value containing byte offset `pos`, below `value`.
pub(crate) fn path_at(value: &DeValue<'_>, pos: usize) -> Vec<String> {
    let contains = |s: Range<usize>| s.start <= pos && pos < s.end.max(s.start + 1);
    match value {
        DeValue::Table(t) => {
            for (k, v) in t.iter() {
                // Children of a `[header]` table are not inside its span, so always look deeper.
                let below = path_at(v.get_ref(), pos);
                if !below.is_empty() || contains(k.span()) || contains(v.span()) {
                    let mut path = vec![k.get_ref().to_string()];
                    path.extend(below);
                    return path;
                }
            }
            Vec::new()
        }
        DeValue::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                let below = path_at(item.get_ref(), pos);
                if !below.is_empty() || contains(item.span()) {
                    let mut path = vec![i.to_string()];
                    path.extend(below);
                    return path;
                }
            }
            Vec::new()
        }
        _ => Vec::new(),
    }
}

/// Deserializes one section, reporting every problem serde finds in it. `prefix` is the section's
/// dotted path (`connectors.hubspot`).
///
/// serde stops at the first error, so after each one the offending entry is dropped and the
/// section deserialized again. A dropped required key then shows up as "missing"; that follow-up
/// is not reported, since the real problem already was.
pub(crate) fn section<T: DeserializeOwned>(
    value: &Spanned<DeValue<'_>>,
    prefix: &str,
    rep: &mut Reporter<'_>,
) -> Option<T> {
    section_with(value, prefix, rep, |d| T::deserialize(d))
}

/// Like [`section`], with the deserialization chosen by the caller (a connector's `kind`).
pub(crate) fn section_with<T>(
    value: &Spanned<DeValue<'_>>,
    prefix: &str,
    rep: &mut Reporter<'_>,
    parse: impl Fn(ValueDeserializer<'_>) -> Result<T, toml::de::Error>,
) -> Option<T> {
    let mut work = value.clone();
    let mut failed = false;
    let mut dropped: Vec<String> = Vec::new();
    // Bounded: each retry removes one entry, so this ends; the bound only guards against surprises.
    for _ in 0..256 {
        let attempt = parse(ValueDeserializer::from(work.clone()));
        let err = match attempt {
            Ok(v) => return (!failed).then_some(v),
            Err(e) => e,
        };
        failed = true;
        let span = err.span();
        let path = span
            .as_ref()
            .map(|s| path_at(work.get_ref(), s.start))
            .unwrap_or_default();
        let mut key = prefix.to_string();
        for part in &path {
            key.push('.');
            key.push_str(part);
        }
        let (message, hint) = translate(err.message(), &mut key);
        if dropped.contains(&key) {
            return None;
        }
        rep.push(span, key.clone(), message, hint);
        match remove_path(work.get_mut(), &path) {
            Some(removed) => dropped.push(format!("{prefix}.{removed}")),
            None => return None,
        }
    }
    None
}

/// Removes the entry at `path` (an array is removed whole); returns the removed dotted path.
fn remove_path(value: &mut DeValue<'_>, path: &[String]) -> Option<String> {
    let DeValue::Table(t) = value else {
        return None;
    };
    let (first, rest) = path.split_first()?;
    let child = t.get_mut(first.as_str())?;
    if !rest.is_empty()
        && matches!(child.get_ref(), DeValue::Table(_))
        && let Some(below) = remove_path(child.get_mut(), rest)
    {
        return Some(format!("{first}.{below}"));
    }
    t.remove(first.as_str());
    Some(first.clone())
}

/// Turns serde's messages into the config's vocabulary: (message, hint). May extend `key`, since
/// a missing field's path should name the field itself.
pub(crate) fn translate(msg: &str, key: &mut String) -> (String, Option<String>) {
    if let Some(rest) = msg.strip_prefix("unknown field ") {
        let (word, expected) = split_expected(rest);
        return (
            "unknown key".into(),
            expected_hint(&word, &expected, "keys"),
        );
    }
    if let Some(rest) = msg.strip_prefix("unknown variant ") {
        let (word, expected) = split_expected(rest);
        return (
            format!("unknown value {word:?}"),
            expected_hint(&word, &expected, "values"),
        );
    }
    if let Some(rest) = msg.strip_prefix("missing field ") {
        let field = rest.trim_matches('`');
        key.push('.');
        key.push_str(field);
        return (format!("required key `{field}` is missing"), None);
    }
    (msg.to_string(), None)
}

/// Splits "`word`, expected one of `a`, `b`" into ("word", ["a", "b"]).
fn split_expected(rest: &str) -> (String, Vec<String>) {
    let mut ticks = rest.split('`').skip(1).step_by(2).map(str::to_string);
    let word = ticks.next().unwrap_or_default();
    let expected = if rest.contains("expected") {
        ticks.collect()
    } else {
        Vec::new()
    };
    (word, expected)
}

fn expected_hint(word: &str, expected: &[String], what: &str) -> Option<String> {
    if expected.is_empty() {
        return Some(format!("this table takes no {what}"));
    }
    let list = expected.join(", ");
    Some(
        match did_you_mean(word, expected.iter().map(String::as_str)) {
            Some(close) => format!("did you mean `{close}`? expected one of {list}"),
            None => format!("expected one of {list}"),
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn translates_unknown_fields_with_a_suggestion() {
        let mut key = "connectors.hubspot.tokn".to_string();
        let (msg, hint) = translate(
            "unknown field `tokn`, expected one of `token`, `base_url`",
            &mut key,
        );
        assert_eq!(msg, "unknown key");
        assert_eq!(
            hint.as_deref(),
            Some("did you mean `token`? expected one of token, base_url")
        );
    }

    #[test]
    fn missing_fields_name_the_key() {
        let mut key = "flows.x".to_string();
        let (msg, _) = translate("missing field `to`", &mut key);
        assert_eq!(key, "flows.x.to");
        assert!(msg.contains("`to`"));
    }

    #[test]
    fn paths_and_spans_agree() {
        let text = "[a]\nb = 1\n[a.c]\nd = \"x\"\n";
        let root = DeTable::parse(text).unwrap();
        let pos = text.find('d').unwrap();
        let root_value = DeValue::Table(root.get_ref().clone());
        assert_eq!(path_at(&root_value, pos), ["a", "c", "d"]);
        let span = span_of(root.get_ref(), &["a", "c", "d"]).unwrap();
        assert_eq!(&text[span], "\"x\"");
    }
}
