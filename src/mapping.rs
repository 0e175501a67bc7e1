//! Field templates: how a flow turns a canonical lead into CRM properties, and how a webhook turns a
//! form's own field names into canonical lead fields. Each value is a minijinja template compiled
//! once at config load, so a broken template is a config error and never a delivery-time surprise.

use std::collections::BTreeMap;

use minijinja::{AutoEscape, Environment, UndefinedBehavior, Value};

use crate::config::FieldMapping;

/// A compiled set of `name = "template"` pairs.
pub struct FieldTemplates {
    env: Environment<'static>,
    /// Field name → how to produce its value. Kept in a BTreeMap so output order is stable.
    fields: BTreeMap<String, Source>,
}

enum Source {
    /// A plain string; no engine involved, so `"50% off {not a tag}"` is taken literally.
    Constant(String),
    /// Compiled into `env` under the field's own name.
    Template,
}

/// A template failed while rendering (e.g. a filter applied to a value of the wrong type).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("field {field}: {message}")]
pub struct RenderError {
    pub field: String,
    pub message: String,
}

impl std::fmt::Debug for FieldTemplates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FieldTemplates")
            .field("fields", &self.fields.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl FieldTemplates {
    /// Compiles every template; on failure returns every broken field with minijinja's message.
    pub fn compile(fields: &BTreeMap<String, String>) -> Result<Self, Vec<(String, String)>> {
        let mut env = Environment::new();
        // These values go into CRMs and JSON payloads, not HTML: escaping would corrupt `&` and `'`.
        env.set_auto_escape_callback(|_| AutoEscape::None);
        // A lead that lacks a field (even a whole object, as in `lead.touchpoint.x` when there is
        // no touchpoint) must render that field as empty, not fail the delivery.
        env.set_undefined_behavior(UndefinedBehavior::Chainable);
        // `none` would otherwise print as the word "none" and end up in the CRM.
        env.set_formatter(|out, state, value| {
            if value.is_none() || value.is_undefined() {
                Ok(())
            } else {
                minijinja::escape_formatter(out, state, value)
            }
        });
        let mut compiled = BTreeMap::new();
        let mut errors = Vec::new();
        for (name, source) in fields {
            if is_template(source) {
                match env.add_template_owned(name.clone(), source.clone()) {
                    Ok(()) => {
                        compiled.insert(name.clone(), Source::Template);
                    }
                    Err(e) => errors.push((name.clone(), describe(&e))),
                }
            } else {
                compiled.insert(name.clone(), Source::Constant(source.clone()));
            }
        }
        if errors.is_empty() {
            Ok(FieldTemplates {
                env,
                fields: compiled,
            })
        } else {
            Err(errors)
        }
    }

    /// Compiles a flow's `fields` (the `value` of each mapping).
    pub fn from_flow(
        fields: &BTreeMap<String, FieldMapping>,
    ) -> Result<Self, Vec<(String, String)>> {
        let plain = fields
            .iter()
            .map(|(k, m)| (k.clone(), m.value().to_owned()))
            .collect();
        Self::compile(&plain)
    }

    /// The field names, in order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.fields.keys().map(String::as_str)
    }

    /// Renders every template against `ctx` (normally a JSON object such as `{"lead": …}`).
    ///
    /// Values are trimmed, and fields that render empty are left out of the result so that an
    /// absent phone never clears the phone already stored in the CRM. `null` in `ctx` counts as
    /// absent, so `default("direct")` applies to it as it does to a missing key.
    pub fn render(&self, ctx: &serde_json::Value) -> Result<BTreeMap<String, String>, RenderError> {
        // Only an object has names to look up; anything else renders as if no variables were set.
        let ctx = match ctx {
            serde_json::Value::Object(_) => to_value(ctx),
            _ => Value::from_pairs(std::iter::empty::<(String, Value)>()),
        };
        let mut out = BTreeMap::new();
        for (name, source) in &self.fields {
            let rendered = match source {
                Source::Constant(s) => s.clone(),
                Source::Template => self
                    .env
                    .get_template(name)
                    .and_then(|t| t.render(&ctx))
                    .map_err(|e| RenderError {
                        field: name.clone(),
                        message: describe(&e),
                    })?,
            };
            let trimmed = rendered.trim();
            if !trimmed.is_empty() {
                out.insert(name.clone(), trimmed.to_owned());
            }
        }
        Ok(out)
    }
}

/// A plain string without `{{` or `{%` is a constant.
fn is_template(s: &str) -> bool {
    s.contains("{{") || s.contains("{%")
}

/// minijinja's message with its line number, without the template name (the caller knows the field).
fn describe(e: &minijinja::Error) -> String {
    let mut msg = match e.detail() {
        Some(detail) => format!("{}: {detail}", e.kind()),
        None => e.kind().to_string(),
    };
    if let Some(line) = e.line() {
        msg.push_str(&format!(" (template line {line})"));
    }
    msg
}

/// JSON → template value, dropping `null` members so templates see them as undefined (and
/// `default(…)` applies). Hand-rolled because minijinja's `serde` feature is not enabled.
fn to_value(v: &serde_json::Value) -> Value {
    use serde_json::Value as J;
    match v {
        J::Null => Value::from(()),
        J::Bool(b) => Value::from(*b),
        J::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
            (Some(i), _, _) => Value::from(i),
            (None, Some(u), _) => Value::from(u),
            (None, None, Some(f)) => Value::from(f),
            _ => Value::from(n.to_string()),
        },
        J::String(s) => Value::from(s.as_str()),
        J::Array(items) => items.iter().map(to_value).collect(),
        J::Object(map) => Value::from_pairs(
            map.iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.as_str(), to_value(v))),
        ),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::config::OnConflict;

    fn fields(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn constants_and_lead_fields_render() {
        let t = FieldTemplates::compile(&fields(&[
            ("lifecyclestage", "lead"),
            ("email", "{{ lead.email }}"),
            ("note", "50% off {not a tag}"),
        ]))
        .unwrap();
        let out = t
            .render(&json!({"lead": {"email": "ada@example.com"}}))
            .unwrap();
        assert_eq!(out["lifecyclestage"], "lead");
        assert_eq!(out["email"], "ada@example.com");
        assert_eq!(out["note"], "50% off {not a tag}");
    }

    #[test]
    fn default_applies_to_missing_and_null_values() {
        let t = FieldTemplates::compile(&fields(&[(
            "source",
            r#"{{ lead.touchpoint.utm_source | default("direct") }}"#,
        )]))
        .unwrap();
        for ctx in [
            json!({"lead": {"touchpoint": {"utm_source": null}}}),
            json!({"lead": {}}),
            json!({}),
        ] {
            assert_eq!(t.render(&ctx).unwrap()["source"], "direct", "{ctx}");
        }
        let out = t
            .render(&json!({"lead": {"touchpoint": {"utm_source": "google"}}}))
            .unwrap();
        assert_eq!(out["source"], "google");
    }

    #[test]
    fn empty_values_are_omitted_not_sent_as_blank_or_none() {
        let t = FieldTemplates::compile(&fields(&[
            ("email", "{{ lead.email }}"),
            ("phone", "{{ lead.phone }}"),
            ("company", "  {{ lead.company }}  "),
        ]))
        .unwrap();
        let out = t
            .render(&json!({"lead": {"email": "a@b.co", "phone": null, "company": " "}}))
            .unwrap();
        assert_eq!(out.len(), 1, "{out:?}");
        assert_eq!(out["email"], "a@b.co");
    }

    #[test]
    fn no_html_escaping() {
        let t = FieldTemplates::compile(&fields(&[("company", "{{ lead.company }}")])).unwrap();
        let out = t
            .render(&json!({"lead": {"company": "Smith & O'Neil <Ltd>"}}))
            .unwrap();
        assert_eq!(out["company"], "Smith & O'Neil <Ltd>");
    }

    #[test]
    fn syntax_errors_name_every_broken_field() {
        let errs = FieldTemplates::compile(&fields(&[
            ("email", "{{ lead.email"),
            ("ok", "{{ lead.phone }}"),
            ("phone", "{% if %}"),
        ]))
        .unwrap_err();
        let names: Vec<_> = errs.iter().map(|(f, _)| f.as_str()).collect();
        assert_eq!(names, ["email", "phone"]);
        assert!(errs[0].1.contains("syntax error"), "{}", errs[0].1);
    }

    #[test]
    fn render_errors_carry_the_field() {
        let t = FieldTemplates::compile(&fields(&[("n", "{{ lead.email | int }}")])).unwrap();
        let err = t
            .render(&json!({"lead": {"email": "not a number"}}))
            .unwrap_err();
        assert_eq!(err.field, "n");
        assert!(!err.message.is_empty());
    }

    #[test]
    fn render_never_panics_on_odd_input() {
        let t = FieldTemplates::compile(&fields(&[
            ("a", "{{ lead.email }}"),
            ("b", "{{ lead.touchpoint.x.y.z | default('d') }}"),
            ("c", "{% for x in lead %}{{ x }}{% endfor %}"),
            ("d", "{{ lead[0] }}{{ lead.email | lower }}"),
        ]))
        .unwrap();
        for ctx in [
            json!(null),
            json!(42),
            json!("string"),
            json!([1, 2, 3]),
            json!({"lead": [null, {"email": 1}]}),
            json!({"lead": {"email": {"nested": [1.5, true]}}}),
            json!({"lead": "\u{0}\u{ffff}"}),
        ] {
            let _ = t.render(&ctx);
        }
    }

    #[test]
    fn from_flow_uses_each_mapping_value() {
        let mut m = BTreeMap::new();
        m.insert(
            "email".to_string(),
            FieldMapping::Template("{{ lead.email }}".into()),
        );
        m.insert(
            "phone".to_string(),
            FieldMapping::Detailed {
                value: "{{ lead.phone }}".into(),
                on_conflict: OnConflict::FillEmpty,
            },
        );
        let t = FieldTemplates::from_flow(&m).unwrap();
        let out = t
            .render(&json!({"lead": {"email": "e@x.io", "phone": "+15550100"}}))
            .unwrap();
        assert_eq!(out["phone"], "+15550100");
        assert_eq!(t.names().collect::<Vec<_>>(), ["email", "phone"]);
    }
}
