//! `[connectors.NAME]`: picks the connector kind and deserializes its table with precise error
//! positions, then checks what serde can't (webhook field names, templates, vendor rules).

use toml::{
    Spanned,
    de::{DeTable, DeValue},
};

use tandem_connectors::{ConnectorKind, webhook::WebhookConfig};

use super::{document, error::Reporter};
use crate::mapping::FieldTemplates;

pub use tandem_connectors::model::CANONICAL_FIELDS;

/// Every `kind` the connectors crate knows, read from its own registry so this list can't drift.
pub fn known_kinds() -> Vec<String> {
    tandem_connectors::KINDS
        .iter()
        .map(|k| k.to_string())
        .collect()
}

/// Deserializes one connector; reports problems and returns `None` when it is unusable.
pub(crate) fn connector(
    name: &str,
    value: &Spanned<DeValue<'_>>,
    name_span: std::ops::Range<usize>,
    rep: &mut Reporter<'_>,
) -> Option<ConnectorKind> {
    let prefix = format!("connectors.{name}");
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        rep.push(
            Some(name_span.clone()),
            prefix.clone(),
            "connector names may only use letters, digits, `_` and `-`",
            Some("the name becomes part of the webhook URL /hooks/NAME".into()),
        );
    }
    let DeValue::Table(table) = value.get_ref() else {
        rep.push(
            Some(value.span()),
            prefix,
            format!("expected a table, found a {}", value.get_ref().type_str()),
            Some(format!("write [connectors.{name}] with kind = \"…\"")),
        );
        return None;
    };
    let kinds = known_kinds();
    let kinds_hint = || Some(format!("known kinds: {}", kinds.join(", ")));
    let Some(kind_value) = table.get("kind") else {
        rep.push(
            Some(name_span),
            format!("{prefix}.kind"),
            "required key `kind` is missing",
            kinds_hint(),
        );
        return None;
    };
    let Some(kind) = kind_value.get_ref().as_str() else {
        rep.push(
            Some(kind_value.span()),
            format!("{prefix}.kind"),
            format!(
                "expected a string, found a {}",
                kind_value.get_ref().type_str()
            ),
            kinds_hint(),
        );
        return None;
    };
    if !kinds.iter().any(|k| k == kind) {
        let hint = match super::error::did_you_mean(kind, kinds.iter().map(String::as_str)) {
            Some(close) => format!("did you mean `{close}`? known kinds: {}", kinds.join(", ")),
            None => format!("known kinds: {}", kinds.join(", ")),
        };
        rep.push(
            Some(kind_value.span()),
            format!("{prefix}.kind"),
            format!("unknown kind {kind:?}"),
            Some(hint),
        );
        return None;
    }
    // The registry's enum is internally tagged, and serde buffers such input: errors inside it
    // lose their position. So the kinds known here get their own struct deserialized directly.
    let mut rest: DeTable<'_> = table.clone();
    rest.remove("kind");
    let rest = Spanned::new(value.span(), DeValue::Table(rest));
    let parsed = match kind {
        "webhook" => document::section(&rest, &prefix, rep).map(ConnectorKind::Webhook),
        "hubspot" => document::section(&rest, &prefix, rep).map(ConnectorKind::Hubspot),
        // A kind added to the registry but not here still works, with coarser error positions.
        _ => document::section::<ConnectorKind>(value, &prefix, rep),
    }?;
    validate(name, &parsed, table, rep);
    Some(parsed)
}

fn validate(name: &str, kind: &ConnectorKind, table: &DeTable<'_>, rep: &mut Reporter<'_>) {
    let prefix = format!("connectors.{name}");
    let span = |path: &[&str]| document::span_of(table, path);
    if let Some(w) = kind.webhook() {
        validate_webhook(&prefix, w, table, rep);
    }
    for (key, message) in kind.validate() {
        rep.push(span(&[&key]), format!("{prefix}.{key}"), message, None);
    }
}

fn validate_webhook(prefix: &str, w: &WebhookConfig, table: &DeTable<'_>, rep: &mut Reporter<'_>) {
    let span = |path: &[&str]| document::span_of(table, path);
    for field in w.fields.keys() {
        if !CANONICAL_FIELDS.contains(&field.as_str()) {
            let hint = match super::error::did_you_mean(field, CANONICAL_FIELDS.iter().copied()) {
                Some(close) => format!(
                    "did you mean `{close}`? canonical fields: {}",
                    CANONICAL_FIELDS.join(", ")
                ),
                None => format!("canonical fields: {}", CANONICAL_FIELDS.join(", ")),
            };
            rep.push(
                field_key_span(table, field),
                format!("{prefix}.fields.{field}"),
                format!("{field:?} is not a canonical lead field"),
                Some(hint),
            );
        }
    }
    if let Err(broken) = FieldTemplates::compile(&w.fields) {
        for (field, message) in broken {
            rep.push(
                span(&["fields", &field]),
                format!("{prefix}.fields.{field}"),
                format!("template does not compile: {message}"),
                None,
            );
        }
    }
    if let Some(region) = &w.default_region
        && !(region.len() == 2 && region.bytes().all(|b| b.is_ascii_uppercase()))
    {
        rep.push(
            span(&["default_region"]),
            format!("{prefix}.default_region"),
            format!("{region:?} is not an ISO 3166 alpha-2 region"),
            Some("write two uppercase letters, e.g. \"US\" or \"DE\"".into()),
        );
    }
}

/// Span of the key (not the value) of `fields.NAME`, where "unknown name" errors belong.
fn field_key_span(table: &DeTable<'_>, field: &str) -> Option<std::ops::Range<usize>> {
    match table.get("fields").map(Spanned::get_ref) {
        Some(DeValue::Table(f)) => f.get_key_value(field).map(|(k, _)| k.span()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_kinds_come_from_the_registry() {
        let kinds = known_kinds();
        assert!(kinds.contains(&"webhook".to_string()), "{kinds:?}");
        assert!(kinds.contains(&"hubspot".to_string()), "{kinds:?}");
    }
}
