//! Fuzzes field templates (`tandem::mapping::FieldTemplates`): compile fuzzed template text, then
//! render it against a fixed, fully populated lead context (what a flow renders at delivery) and
//! against fuzzed JSON (what a webhook's `fields` render over: the submitted fields), bare and
//! wrapped as `{"lead": …}`.
//!
//! Input layout: template text, a NUL byte, then the JSON context. The template part is split on
//! 0x01 into up to four fields (`f0`…`f3`). Asserted: nothing panics; compile errors name only
//! fields that exist; a render error names a field that exists; rendered values are trimmed and
//! never empty (empty ones are left out).

#![no_main]

use std::{collections::BTreeMap, sync::LazyLock};

use libfuzzer_sys::fuzz_target;
use serde_json::{Value, json};
use tandem::mapping::FieldTemplates;
use tandem_connectors::{Lead, Touchpoint};

const MAX_FIELDS: usize = 4;

/// A lead with every canonical field set, as the delivery engine renders it.
static LEAD_CTX: LazyLock<Value> = LazyLock::new(|| {
    let lead = Lead {
        email: Some("ada@example.com".into()),
        phone: Some("+15550100".into()),
        first_name: Some("Ada".into()),
        last_name: Some("Lovelace".into()),
        company: Some("Smith & O'Neil <Ltd>".into()),
        job_title: Some("Engineer".into()),
        country: Some("GB".into()),
        consent: Some("marketing,sales".into()),
        custom: [
            ("budget".to_owned(), json!(1500.5)),
            ("interests".to_owned(), json!(["a", "b"])),
            ("notes".to_owned(), json!(null)),
            ("nested".to_owned(), json!({"x": {"y": [1, true, "z"]}})),
        ]
        .into_iter()
        .collect(),
        touchpoint: Touchpoint {
            source: "webhook".into(),
            form: Some("Contact".into()),
            utm_source: Some("google".into()),
            gclid: Some("Cj0KCQ".into()),
            captured_at: "2024-01-02T03:04:05Z".into(),
            ..Default::default()
        },
        is_test: false,
    };
    let lead = serde_json::to_value(lead).unwrap_or_else(|e| panic!("lead serializes: {e}"));
    json!({ "lead": lead, "lead_id": 42 })
});

fn check(fields: &BTreeMap<String, String>, t: &FieldTemplates, ctx: &Value) {
    match t.render(ctx) {
        Ok(out) => {
            for (name, value) in &out {
                assert!(fields.contains_key(name), "rendered unknown field {name}");
                assert!(!value.is_empty(), "{name} rendered empty but was kept");
                assert_eq!(value.trim(), value, "{name} not trimmed");
            }
        }
        Err(e) => {
            assert!(fields.contains_key(&e.field), "error names {:?}", e.field);
            let _ = e.to_string();
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let (templates, ctx) = match data.iter().position(|b| *b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    let text = String::from_utf8_lossy(templates);
    let fields: BTreeMap<String, String> = text
        .split('\u{1}')
        .take(MAX_FIELDS)
        .enumerate()
        .map(|(i, t)| (format!("f{i}"), t.to_owned()))
        .collect();
    let t = match FieldTemplates::compile(&fields) {
        Ok(t) => t,
        Err(errors) => {
            assert!(!errors.is_empty(), "compile failed with no error");
            for (name, message) in &errors {
                assert!(fields.contains_key(name), "error names {name:?}");
                assert!(!message.is_empty(), "{name}: empty compile error");
            }
            return;
        }
    };
    assert_eq!(t.names().count(), fields.len());
    check(&fields, &t, &LEAD_CTX);
    if let Ok(fuzzed) = serde_json::from_slice::<Value>(ctx) {
        check(&fields, &t, &fuzzed);
        check(&fields, &t, &json!({ "lead": fuzzed }));
    }
});
