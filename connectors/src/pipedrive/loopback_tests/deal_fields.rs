//! Attribution written onto deals over HTTP: the three fields by key or by name, one request
//! per deal, a missing deal refused with Pipedrive's words, long lines cut to fit, partial
//! failures, throttling, outages, credentials, and `verify`.

use serde_json::{Value, json};

use crate::{
    CallError, ItemResult,
    sandbox::CrmFaults,
    writeback::{Conversion, WritebackAction, WritebackSink},
};

use super::{client, config, conversion, deal, options, sandbox, sandbox_with};
use crate::pipedrive::{
    deal_fields::{DealFieldWriter, VARCHAR_MAX},
    sandbox::{
        ATTRIBUTION_FIELD_KEY, DEAL_TYPE_FIELD_KEY, FIRST_TOUCH_FIELD_KEY, LAST_TOUCH_FIELD_KEY,
        PipedriveSandbox,
    },
};

fn writer(sb: &PipedriveSandbox, extra: Value) -> DealFieldWriter {
    let cfg = config(sb, extra);
    DealFieldWriter::new(&cfg, client(&cfg))
}

/// The keys the sandbox pre-created, as `outcome_toml()` configures them.
fn by_key() -> Value {
    json!({"deal_fields": {"first_touch": FIRST_TOUCH_FIELD_KEY, "last_touch": LAST_TOUCH_FIELD_KEY, "attribution": ATTRIBUTION_FIELD_KEY}})
}

fn deals(sb: &PipedriveSandbox, n: usize) -> Vec<String> {
    let st = sb.state();
    st.add_person("Ana", "ana@example.com");
    (0..n)
        .map(|_| {
            st.create_deal(&deal("3", Some("10"), &["ana@example.com"], None))
                .to_string()
        })
        .collect()
}

fn field(sb: &PipedriveSandbox, deal_id: &str, key: &str) -> Value {
    sb.state()
        .deal(deal_id.parse().unwrap())
        .and_then(|d| d.custom_fields.get(key).cloned())
        .unwrap_or(Value::Null)
}

#[tokio::test]
async fn attribution_lands_on_each_deal_and_a_missing_deal_is_permanent_with_pipedrives_words() {
    let sb = sandbox().await;
    let ids = deals(&sb, 2);
    let w = writer(&sb, by_key());
    let batch = [
        conversion(
            &ids[0],
            WritebackAction::Send,
            &[("google", 0.4), ("newsletter", 0.6)],
        ),
        conversion("999999", WritebackAction::Send, &[("google", 1.0)]),
        conversion(&ids[1], WritebackAction::Retract, &[]),
        conversion(
            &ids[0],
            WritebackAction::Restate,
            &[("google", 0.4), ("newsletter", 0.6)],
        ),
        conversion("not-a-number", WritebackAction::Send, &[]),
    ];
    let out = w.send(&batch).await.expect("call");
    let done = |id: &str| ItemResult::Done {
        remote_id: id.to_owned(),
        created: false,
    };
    assert_eq!(out.items[0], done(&ids[0]));
    assert_eq!(
        out.items[1],
        ItemResult::Permanent {
            message: "Pipedrive 404: Deal not found".into()
        }
    );
    assert_eq!(out.items[2], done(&ids[1]));
    assert_eq!(out.items[3], done(&ids[0]));
    assert!(
        matches!(&out.items[4], ItemResult::Permanent { message } if message.contains("not a Pipedrive deal id"))
    );
    assert_eq!(out.items.len(), batch.len());
    assert_eq!(
        field(&sb, &ids[0], FIRST_TOUCH_FIELD_KEY),
        json!("google / cpc / spring")
    );
    assert_eq!(
        field(&sb, &ids[0], LAST_TOUCH_FIELD_KEY),
        json!("newsletter / cpc / spring")
    );
    assert_eq!(
        field(&sb, &ids[0], ATTRIBUTION_FIELD_KEY),
        json!("linear: 40% google / cpc / spring; 60% newsletter / cpc / spring")
    );
    // A retraction rewrites the fields from the current attribution: here, none.
    assert_eq!(field(&sb, &ids[1], FIRST_TOUCH_FIELD_KEY), Value::Null);
    assert_eq!(
        field(&sb, &ids[1], ATTRIBUTION_FIELD_KEY),
        json!("linear: unattributed")
    );
    // One PATCH per deal and value set: the restatement with the same values was not sent again.
    assert_eq!(sb.state().stats().deal_updates, 3);
    // Writing again is idempotent.
    let again = w.send(&batch[..1]).await.unwrap();
    assert_eq!(again.items, [done(&ids[0])]);
    assert_eq!(
        field(&sb, &ids[0], FIRST_TOUCH_FIELD_KEY),
        json!("google / cpc / spring")
    );
}

#[tokio::test]
async fn default_field_names_resolve_through_deal_fields_once() {
    let sb = sandbox().await;
    let ids = deals(&sb, 1);
    let w = writer(&sb, json!({}));
    for _ in 0..2 {
        let out = w
            .send(&[conversion(
                &ids[0],
                WritebackAction::Send,
                &[("google", 1.0)],
            )])
            .await
            .unwrap();
        assert!(
            matches!(out.items[0], ItemResult::Done { .. }),
            "{:?}",
            out.items
        );
    }
    assert_eq!(
        field(&sb, &ids[0], ATTRIBUTION_FIELD_KEY),
        json!("linear: 100% google / cpc / spring")
    );
    assert_eq!(
        sb.state().stats().deal_field_reads,
        1,
        "the field list is cached"
    );
    // A name that matches no field fails the call, saying what to create.
    let w = writer(
        &sb,
        json!({"deal_fields": {"first_touch": "first touch (typo)"}}),
    );
    match w
        .send(&[conversion(&ids[0], WritebackAction::Send, &[])])
        .await
    {
        Err(CallError::Permanent { message }) => {
            assert!(message.contains("deal_fields.first_touch"), "{message}");
            assert!(message.contains("no deal field named"), "{message}");
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_long_credit_line_is_cut_to_fit_a_short_text_field() {
    let mut o = options();
    if let Some(f) = o
        .deal_custom_fields
        .iter_mut()
        .find(|f| f.0 == ATTRIBUTION_FIELD_KEY)
    {
        f.2 = "varchar".into();
    }
    let sb = sandbox_with(o).await;
    let ids = deals(&sb, 1);
    let credits: Vec<(String, f64)> = (0..30)
        .map(|i| (format!("source-{i}"), 1.0 / 30.0))
        .collect();
    let credits: Vec<(&str, f64)> = credits.iter().map(|(s, w)| (s.as_str(), *w)).collect();
    let out = writer(&sb, by_key())
        .send(&[conversion(&ids[0], WritebackAction::Send, &credits)])
        .await
        .unwrap();
    assert!(
        matches!(out.items[0], ItemResult::Done { .. }),
        "{:?}",
        out.items
    );
    let written = field(&sb, &ids[0], ATTRIBUTION_FIELD_KEY);
    let text = written.as_str().unwrap_or_default();
    assert_eq!(text.chars().count(), VARCHAR_MAX);
    assert!(text.starts_with("linear: 3% source-0 / cpc / spring; ") && text.ends_with('…'));
}

#[tokio::test]
async fn refusals_throttles_outages_and_credentials_are_classified() {
    // Every write refused by validation: each item dead with Pipedrive's message.
    let sb = sandbox().await;
    let ids = deals(&sb, 2);
    let w = writer(&sb, by_key());
    sb.state().set_faults(CrmFaults {
        item_failure_rate: 1.0,
        seed: Some(1),
        ..Default::default()
    });
    let out = w
        .send(&[
            conversion(&ids[0], WritebackAction::Send, &[]),
            conversion(&ids[1], WritebackAction::Send, &[]),
        ])
        .await
        .unwrap();
    for item in &out.items {
        assert_eq!(
            item,
            &ItemResult::Permanent {
                message: "Pipedrive 400: Validation failed: custom_fields: Invalid value (sandbox: injected refusal)".into()
            }
        );
    }
    // A throttle or outage before anything was written fails the call.
    sb.state().set_faults(CrmFaults {
        rate_limit_next: 1,
        ..Default::default()
    });
    assert!(matches!(
        w.send(&[conversion(&ids[0], WritebackAction::Send, &[])])
            .await,
        Err(CallError::RateLimited { .. })
    ));
    sb.state().set_faults(CrmFaults {
        server_error_next: 1,
        ..Default::default()
    });
    match w
        .send(&[conversion(&ids[0], WritebackAction::Send, &[])])
        .await
    {
        Err(CallError::Transient { message, .. }) => {
            assert!(message.contains("Pipedrive 500"), "{message}")
        }
        other => panic!("{other:?}"),
    }
    sb.state().set_faults(CrmFaults::default());
    let bad = writer(&sb, json!({"api_token": "wrong"}));
    assert!(matches!(
        bad.send(&[conversion(&ids[0], WritebackAction::Send, &[])])
            .await,
        Err(CallError::Auth { status: 401, .. })
    ));

    // The window spent mid-call by another app: what was written keeps its result, the rest
    // comes back transient with Pipedrive's wait.
    let sb = sandbox().await;
    let ids = deals(&sb, 3);
    sb.state().throttle_after_writes(1);
    let w = writer(&sb, by_key());
    let batch: Vec<Conversion> = ids
        .iter()
        .map(|id| conversion(id, WritebackAction::Send, &[("google", 1.0)]))
        .collect();
    let out = w.send(&batch).await.unwrap();
    assert_eq!(
        out.items[0],
        ItemResult::Done {
            remote_id: ids[0].clone(),
            created: false
        }
    );
    for item in &out.items[1..] {
        assert!(
            matches!(item, ItemResult::Transient { message } if message.contains("429")),
            "{item:?}"
        );
    }
    assert!(out.pause_for.is_some());
}

#[tokio::test]
async fn verify_checks_credentials_and_that_each_field_takes_text() {
    let sb = sandbox().await;
    assert_eq!(writer(&sb, by_key()).verify().await, Vec::<String>::new());
    assert_eq!(writer(&sb, json!({})).verify().await, Vec::<String>::new());
    let problems = writer(
        &sb,
        json!({"deal_fields": {"first_touch": "Deal type", "last_touch": "no such field", "attribution": "abcdefabcdefabcdefabcdefabcdefabcdefabcd"}}),
    )
    .verify()
    .await;
    assert_eq!(problems.len(), 3, "{problems:?}");
    assert!(problems[0].contains("is of type enum"), "{}", problems[0]);
    assert!(
        problems[1].contains("no deal field named \"no such field\""),
        "{}",
        problems[1]
    );
    assert!(
        problems[2].contains("no deal field with the key"),
        "{}",
        problems[2]
    );
    let same = writer(&sb, json!({"deal_fields": {"first_touch": "tandem first touch", "last_touch": FIRST_TOUCH_FIELD_KEY}})).verify().await;
    assert!(
        same.iter()
            .any(|p| p.contains("are the same Pipedrive field")),
        "{same:?}"
    );
    let title = writer(&sb, json!({"deal_fields": {"attribution": "Title"}}))
        .verify()
        .await;
    assert!(title[0].contains("Pipedrive's own deal field"), "{title:?}");
    let bad = writer(&sb, json!({"api_token": "wrong"})).verify().await;
    assert_eq!(bad.len(), 1);
    assert!(bad[0].contains("refused the credentials"), "{bad:?}");
    let _ = DEAL_TYPE_FIELD_KEY;
}
