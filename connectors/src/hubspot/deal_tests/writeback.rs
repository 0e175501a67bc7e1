//! Attribution written onto deals over HTTP: the three fields, partial failures mapped to the
//! right conversion, one input per deal, throttling and credentials, and `verify`.

use serde_json::json;

use super::*;
use crate::{
    hubspot::{
        deal_writeback::HubspotDealFields,
        sandbox::{Faults, ScriptStep},
    },
    sink::{CallError, ItemResult},
    writeback::{
        AttributionSummary, ClickIds, Conversion, ConversionPerson, CreditSummary, Milestone,
        TouchSummary, WritebackAction, WritebackSink,
    },
};

fn touch(source: &str, medium: &str, campaign: Option<&str>) -> TouchSummary {
    TouchSummary {
        source: source.into(),
        medium: Some(medium.into()),
        campaign: campaign.map(Into::into),
        captured_at_ms: 1,
    }
}

fn conversion(delivery_id: i64, deal_id: &str, action: WritebackAction) -> Conversion {
    let first = touch("google", "cpc", Some("spring"));
    let last = touch("newsletter", "email", None);
    Conversion {
        delivery_id,
        key: format!("hubspot:{deal_id}:won"),
        request_key: format!("hubspot:{deal_id}:won"),
        action,
        milestone: Milestone::Won,
        crm: "hubspot".into(),
        crm_kind: "hubspot".into(),
        deal_id: deal_id.into(),
        occurred_at_ms: 1,
        value_minor: Some(10_000),
        currency: Some("EUR".into()),
        person: ConversionPerson::default(),
        clicks: ClickIds::default(),
        attribution: AttributionSummary {
            model: "position_based".into(),
            first_touch: Some(first.clone()),
            last_touch: Some(last.clone()),
            credits: vec![
                CreditSummary {
                    touch: first,
                    weight: 0.5,
                    amount_minor: 5_000,
                },
                CreditSummary {
                    touch: last,
                    weight: 0.5,
                    amount_minor: 5_000,
                },
            ],
        },
    }
}

fn sink(sb: &HubspotSandbox, extra: Value) -> HubspotDealFields {
    HubspotDealFields::new(&config(sb, extra), ConnectorContext::in_memory("hubspot"))
        .expect("builds")
}

fn done(id: &str) -> ItemResult {
    ItemResult::Done {
        remote_id: id.into(),
        created: false,
    }
}

#[tokio::test]
async fn the_three_deal_fields_are_written_over_http() {
    let sb = sandbox(options()).await;
    let a = sb.create_deal(deal("closedwon", Some("100"), &[], None));
    let b = sb.create_deal(deal("qualifiedtobuy", None, &[], None));
    let s = sink(&sb, json!({}));
    assert_eq!(s.max_batch(), 100);
    assert!(Milestone::ALL.iter().all(|m| s.accepts(*m)));
    assert!(s.supports(WritebackAction::Retract) && s.supports(WritebackAction::Restate));
    let out = s
        .send(&[
            conversion(1, &a, WritebackAction::Send),
            conversion(2, &b, WritebackAction::Send),
        ])
        .await
        .unwrap();
    assert_eq!(out.items, vec![done(&a), done(&b)]);
    let fields = sb.deal(&a).unwrap().properties;
    assert_eq!(fields["tandem_first_touch"], "google / cpc / spring");
    assert_eq!(fields["tandem_last_touch"], "newsletter / email");
    assert_eq!(
        fields["tandem_attribution"],
        "position_based: 50% google / cpc / spring; 50% newsletter / email"
    );
    assert_eq!(fields["dealstage"], "closedwon", "nothing else touched");
    assert_eq!(sb.stats().deal_update_calls, 1);

    // A retraction (won, then lost) rewrites the fields from the current attribution.
    let mut retract = conversion(3, &a, WritebackAction::Retract);
    retract.attribution = AttributionSummary {
        model: "position_based".into(),
        ..Default::default()
    };
    assert_eq!(s.send(&[retract]).await.unwrap().items, vec![done(&a)]);
    let fields = sb.deal(&a).unwrap().properties;
    assert!(
        !fields.contains_key("tandem_first_touch"),
        "cleared: {fields:?}"
    );
    assert_eq!(fields["tandem_attribution"], "position_based: unattributed");
    sb.shutdown().await;
}

#[tokio::test]
async fn configured_field_names_are_used() {
    let sb = sandbox(SandboxOptions {
        deal_properties: vec!["src_first".into(), "src_last".into(), "src_credit".into()],
        ..options()
    })
    .await;
    let a = sb.create_deal(deal("closedwon", None, &[], None));
    let s = sink(
        &sb,
        json!({"deal_fields": {"first_touch": "src_first", "last_touch": "src_last", "attribution": "src_credit"}}),
    );
    assert!(s.verify().await.is_empty());
    s.send(&[conversion(1, &a, WritebackAction::Send)])
        .await
        .unwrap();
    let fields = sb.deal(&a).unwrap().properties;
    assert_eq!(fields["src_first"], "google / cpc / spring");
    assert!(fields["src_credit"].starts_with("position_based: 50%"));
    sb.shutdown().await;
}

#[tokio::test]
async fn a_missing_deal_is_permanent_with_hubspots_message_and_the_rest_are_done() {
    let sb = sandbox(options()).await;
    let a = sb.create_deal(deal("closedwon", None, &[], None));
    let b = sb.create_deal(deal("closedwon", None, &[], None));
    let out = sink(&sb, json!({}))
        .send(&[
            conversion(1, &a, WritebackAction::Send),
            conversion(2, "999999", WritebackAction::Send),
            conversion(3, &b, WritebackAction::Restate),
        ])
        .await
        .unwrap();
    assert_eq!(out.items[0], done(&a));
    assert_eq!(out.items[2], done(&b));
    match &out.items[1] {
        ItemResult::Permanent { message } => assert!(
            message.contains("OBJECT_NOT_FOUND: Could not get some DEAL objects"),
            "{message}"
        ),
        other => panic!("{other:?}"),
    }
    // Injected validation failures land on the right deal too (207 with its trace id).
    sb.set_faults(Faults {
        item_failure_rate: 1.0,
        ..Faults::default()
    })
    .unwrap();
    let out = sink(&sb, json!({}))
        .send(&[conversion(4, &a, WritebackAction::Send)])
        .await
        .unwrap();
    assert!(
        matches!(&out.items[0], ItemResult::Permanent { message } if message.contains("VALIDATION_ERROR")),
        "{:?}",
        out.items
    );
    sb.shutdown().await;
}

#[tokio::test]
async fn two_milestones_of_one_deal_in_a_batch_are_one_input() {
    let sb = sandbox(options()).await;
    let a = sb.create_deal(deal("closedwon", None, &[], None));
    let mut older = conversion(1, &a, WritebackAction::Send);
    older.milestone = Milestone::Qualified;
    older.attribution.model = "stale".into();
    let out = sink(&sb, json!({}))
        .send(&[
            older,
            conversion(2, &a, WritebackAction::Send),
            conversion(3, "", WritebackAction::Send),
        ])
        .await
        .unwrap();
    assert_eq!(out.items[..2], [done(&a), done(&a)]);
    assert!(matches!(out.items[2], ItemResult::Permanent { .. }));
    assert_eq!(sb.stats().deal_inputs_received, 1);
    assert!(sb.deal(&a).unwrap().properties["tandem_attribution"].starts_with("position_based"));
    sb.shutdown().await;
}

#[tokio::test]
async fn throttles_outages_and_bad_credentials_are_classified() {
    let sb = sandbox(options()).await;
    let a = sb.create_deal(deal("closedwon", None, &[], None));
    let s = sink(&sb, json!({}));
    sb.set_faults(Faults {
        script: vec![
            ScriptStep {
                retry_after: Some(3),
                ..ScriptStep::status(429, 1)
            },
            ScriptStep::status(502, 1),
            ScriptStep::drop_after_write(1),
        ],
        ..Faults::default()
    })
    .unwrap();
    let batch = [conversion(1, &a, WritebackAction::Send)];
    match s.send(&batch).await {
        Err(CallError::RateLimited {
            retry_after,
            message,
        }) => {
            assert_eq!(retry_after, std::time::Duration::from_secs(3));
            assert!(message.contains("ten_secondly_rolling"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        s.send(&batch).await,
        Err(CallError::Transient { .. })
    ));
    assert!(
        matches!(s.send(&batch).await, Err(CallError::Transient { .. })),
        "dropped"
    );
    assert_eq!(
        s.send(&batch).await.unwrap().items,
        vec![done(&a)],
        "the retry is harmless"
    );

    let wrong = sink(&sb, json!({"token": "pat-wrong"}));
    assert!(matches!(
        wrong.send(&batch).await,
        Err(CallError::Auth { status: 401, .. })
    ));
    let problems = wrong.verify().await;
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(
        problems[0].contains("refused the credentials"),
        "{}",
        problems[0]
    );
    sb.shutdown().await;
}

#[tokio::test]
async fn verify_checks_each_field_exists_and_takes_text() {
    let sb = sandbox(options()).await;
    assert!(sink(&sb, json!({})).verify().await.is_empty());
    assert_eq!(sb.stats().deal_property_calls, 3);
    let problems = sink(
        &sb,
        json!({"deal_fields": {"first_touch": "tandem_frist_touch", "last_touch": "amount", "attribution": "hs_is_closed_won"}}),
    )
    .verify()
    .await;
    assert_eq!(problems.len(), 3, "{problems:#?}");
    assert!(
        problems[0].contains("no deal property `tandem_frist_touch` (deal_fields.first_touch)"),
        "{}",
        problems[0]
    );
    assert!(problems[1].contains("of type number"), "{}", problems[1]);
    assert!(problems[2].contains("calculated"), "{}", problems[2]);
    sb.shutdown().await;
}
