//! `tandem forget` over HTTP: persons deleted with `DELETE /api/v2/persons/{id}`, an already
//! deleted one counted as deleted, refusals with Pipedrive's words, throttles and credentials.

use std::sync::Arc;

use serde_json::json;

use crate::{
    CallError, Connector, ConnectorContext, ForgetRecord, ItemResult, LeadSink, sandbox::CrmFaults,
};

use super::{client, config, deal, sandbox};

fn record(delivery_id: i64, remote_id: impl ToString) -> ForgetRecord {
    ForgetRecord {
        delivery_id,
        remote_id: remote_id.to_string(),
    }
}

fn deleted(id: u64) -> ItemResult {
    ItemResult::Done {
        remote_id: id.to_string(),
        created: false,
    }
}

#[tokio::test]
async fn persons_are_deleted_and_one_already_gone_counts_as_deleted() {
    let sb = sandbox().await;
    let st = sb.state();
    let ana = st.add_person("Ana", "ana@example.com");
    let ben = st.add_person("Ben", "ben@example.com");
    let keep = st.add_person("Cy", "cy@example.com");
    let d = st.create_deal(&deal(
        "1",
        None,
        &["ana@example.com", "cy@example.com"],
        None,
    ));
    let cfg = config(&sb, json!({}));
    let sink: Arc<dyn LeadSink> = cfg
        .lead_sink(ConnectorContext::in_memory("pd"))
        .unwrap()
        .unwrap();
    assert!(sink.supports_forget());
    let out = sink
        .forget(&[
            record(1, ana),
            record(2, 424_242),
            record(3, ben),
            record(4, "ana@example.com"),
            record(5, ana),
        ])
        .await
        .expect("call");
    assert_eq!(out.items[0], deleted(ana));
    assert_eq!(out.items[1], deleted(424_242), "404: already gone");
    assert_eq!(out.items[2], deleted(ben));
    assert!(
        matches!(&out.items[3], ItemResult::Permanent { message } if message.contains("not a Pipedrive person id")),
        "{:?}",
        out.items[3]
    );
    assert_eq!(out.items[4], deleted(ana), "a repeat is a no-op");
    let left: Vec<u64> = st.persons().iter().map(|p| p.id).collect();
    assert_eq!(left, [keep]);
    assert_eq!(
        (st.stats().person_delete_calls, st.stats().persons_deleted),
        (4, 2)
    );
    // The deal loses the person, not its other participant.
    assert_eq!(st.deal(d).and_then(|d| d.person_id), Some(keep));
}

#[tokio::test]
async fn refusals_throttles_and_credentials_are_classified() {
    let sb = sandbox().await;
    let st = sb.state();
    let ids: Vec<u64> = (0..3)
        .map(|i| st.add_person("P", &format!("p{i}@example.com")))
        .collect();
    let c = client(&config(&sb, json!({})));
    st.set_faults(CrmFaults {
        item_failure_rate: 1.0,
        seed: Some(3),
        ..Default::default()
    });
    let out = c.forget(&[record(1, ids[0])]).await.unwrap();
    assert_eq!(
        out.items,
        [ItemResult::Permanent {
            message: "Pipedrive 400: Person can not be deleted (sandbox: injected refusal)".into()
        }]
    );
    st.set_faults(CrmFaults {
        rate_limit_next: 1,
        ..Default::default()
    });
    assert!(matches!(
        c.forget(&[record(1, ids[0])]).await,
        Err(CallError::RateLimited { .. })
    ));
    st.set_faults(CrmFaults {
        server_error_next: 1,
        ..Default::default()
    });
    assert!(matches!(
        c.forget(&[record(1, ids[0])]).await,
        Err(CallError::Transient { .. })
    ));
    st.set_faults(CrmFaults::default());
    // Throttled after the first delete: it keeps its result, the rest are transient.
    st.throttle_after_writes(1);
    let out = c
        .forget(&ids.iter().map(|id| record(1, id)).collect::<Vec<_>>())
        .await
        .unwrap();
    assert_eq!(out.items[0], deleted(ids[0]));
    for item in &out.items[1..] {
        assert!(
            matches!(item, ItemResult::Transient { message } if message.contains("429")),
            "{item:?}"
        );
    }
    assert!(out.pause_for.is_some());
    assert_eq!(st.persons().len(), 2);
    let bad = client(&config(&sb, json!({"api_token": "wrong"})));
    assert!(matches!(
        bad.forget(&[record(1, ids[1])]).await,
        Err(CallError::Auth { status: 401, .. })
    ));
}
