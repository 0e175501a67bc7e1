//! The closed loop's statements through the `Store` trait on a real file: deals and their
//! history, people resolved by remote id or email, the write-back ledger's send / restate /
//! retract decisions, forget reaching queued write-backs, and the migration keeping old rows.

use std::time::Duration;

use tandem_connectors::{
    outcome::{DealContact, DealState, Outcome},
    writeback::{Conversion, Milestone},
};

use super::*;
use crate::outcomes::{Destination, LoopConfig, deal_record, milestones::StageMap, plan::Caps};
use crate::store::{
    DeliveryOp, ForgetIdentifier, ForgetTarget, LeadDelivery, OutcomeBatch, PersonKey, Settlement,
};

fn open(dir: &tempfile::TempDir) -> SqliteStore {
    SqliteStore::open(&dir.path().join("t.db"), SqliteOptions::default()).unwrap()
}

fn lead(id: &str, email: &str, received: i64, json_touch: &str) -> NewLead {
    NewLead {
        id: id.into(),
        source: "web".into(),
        received_at_ms: received,
        lead_json: format!(r#"{{"email":"{email}","touchpoint":{json_touch}}}"#),
        raw_body: b"raw".to_vec(),
        content_type: None,
        person: PersonKey {
            email: Some(email.into()),
            ..Default::default()
        },
        idempotency_key: None,
        deliveries: vec![LeadDelivery {
            flow: "f".into(),
            destination: "crm".into(),
            payload: "{}".into(),
        }],
    }
}

fn outcome(stage: &str, state: DealState, amount: i64, modified: i64, contact: &str) -> Outcome {
    Outcome {
        deal_id: "D1".into(),
        pipeline: None,
        stage: stage.into(),
        state,
        amount_minor: Some(amount),
        currency: Some("EUR".into()),
        created_at_ms: 1_000,
        closed_at_ms: (state != DealState::Open).then_some(modified),
        modified_at_ms: modified,
        contacts: vec![DealContact {
            remote_id: contact.into(),
            email: Some("ANN@example.com".into()),
        }],
    }
}

fn plan_config() -> LoopConfig {
    LoopConfig {
        crm: "crm".into(),
        crm_kind: "hubspot".into(),
        model: crate::attribution::Model::Linear,
        params: Default::default(),
        lookback: Duration::from_secs(90 * 86_400),
        stages: StageMap::default(),
        meta_sources: vec![],
        destinations: vec![
            Destination {
                name: "ads".into(),
                accepts: [Milestone::Opportunity, Milestone::Won].into(),
                caps: Caps {
                    restate: true,
                    retract: true,
                },
            },
            Destination {
                name: "capi".into(),
                accepts: Milestone::ALL.into(),
                caps: Caps {
                    restate: false,
                    retract: false,
                },
            },
        ],
    }
}

/// Polls one observation through the same steps the engine takes; returns what was enqueued.
async fn observe(s: &SqliteStore, o: Outcome, cursor: &str) -> crate::store::OutcomesRecorded {
    let cfg = plan_config();
    let ctx = s
        .outcome_context("crm", vec![(o.deal_id.clone(), o.contacts.clone())])
        .await
        .unwrap();
    let record = deal_record(&cfg, o, ctx.into_iter().next().unwrap(), 10_000_000);
    s.record_outcomes(OutcomeBatch {
        crm: "crm".into(),
        deals: vec![record],
        cursor: Some(("outcomes:crm".into(), cursor.into())),
    })
    .await
    .unwrap()
}

async fn writebacks(s: &SqliteStore, destination: &str) -> Vec<Conversion> {
    let mut out = Vec::new();
    loop {
        let claimed = s
            .claim(destination, "t", 10, Duration::from_secs(60))
            .await
            .unwrap();
        if claimed.is_empty() {
            return out;
        }
        for c in &claimed {
            assert_eq!(c.op, DeliveryOp::Writeback);
            out.push(serde_json::from_str(&c.payload).unwrap());
        }
        s.settle(
            claimed
                .iter()
                .map(|c| Settlement::Done {
                    id: c.id,
                    remote_id: None,
                })
                .collect(),
        )
        .await
        .unwrap();
    }
}

fn names(cs: &[Conversion]) -> Vec<String> {
    cs.iter().map(|c| c.request_key.clone()).collect()
}

#[tokio::test]
async fn a_deal_is_told_once_per_milestone_restated_retracted_and_kept_as_history() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(&dir);
    s.ingest(lead(
        "L1",
        "ann@example.com",
        500,
        r#"{"utm_source":"google","utm_medium":"cpc","gclid":"G1","captured_at":"1970-01-01T00:00:00.500Z"}"#,
    ))
    .await
    .unwrap();

    // Open: opportunity for both destinations; the contact resolves by email (no remote id yet).
    let r = observe(
        &s,
        outcome("demo", DealState::Open, 10_000, 2_000, "C9"),
        "c1",
    )
    .await;
    assert_eq!(r.changed, 1);
    let ads = writebacks(&s, "ads").await;
    assert_eq!(names(&ads), ["crm:D1:opportunity"]);
    assert_eq!(ads[0].person.email.as_deref(), Some("ann@example.com"));
    assert_eq!(ads[0].clicks.gclid.as_deref(), Some("G1"));
    assert_eq!(ads[0].attribution.credit_line(), "100% google / cpc");
    assert_eq!(names(&writebacks(&s, "capi").await), ["crm:D1:opportunity"]);

    // The same observation again (an overlapping cursor): nothing new.
    let r = observe(
        &s,
        outcome("demo", DealState::Open, 10_000, 2_000, "C9"),
        "c1",
    )
    .await;
    assert_eq!((r.changed, r.enqueued.len()), (0, 0));

    // Won: the funnel fills in (qualified is implied), in funnel order.
    observe(
        &s,
        outcome("closedwon", DealState::Won, 10_000, 3_000, "C9"),
        "c2",
    )
    .await;
    assert_eq!(names(&writebacks(&s, "ads").await), ["crm:D1:won"]);
    assert_eq!(
        names(&writebacks(&s, "capi").await),
        ["crm:D1:qualified", "crm:D1:won"]
    );

    // The amount changes: the destination that can restate gets a restatement, the other nothing.
    observe(
        &s,
        outcome("closedwon", DealState::Won, 12_500, 4_000, "C9"),
        "c3",
    )
    .await;
    let restated = writebacks(&s, "ads").await;
    assert_eq!(names(&restated), ["crm:D1:won:restate:1"]);
    assert_eq!(
        (restated[0].key.as_str(), restated[0].value_minor),
        ("crm:D1:won", Some(12_500))
    );
    assert!(writebacks(&s, "capi").await.is_empty());

    // Lost after won: a retraction where the vendor has one; the lost milestone where accepted.
    observe(
        &s,
        outcome("closedlost", DealState::Lost, 12_500, 5_000, "C9"),
        "c4",
    )
    .await;
    assert_eq!(
        names(&writebacks(&s, "ads").await),
        ["crm:D1:won:retract:2"]
    );
    assert_eq!(names(&writebacks(&s, "capi").await), ["crm:D1:lost"]);

    assert_eq!(
        s.cursor("outcomes:crm").await.unwrap().as_deref(),
        Some("c4")
    );
    let inputs = s.attribution_inputs().await.unwrap();
    assert_eq!(inputs.deals.len(), 1);
    assert_eq!(
        inputs.deals[0].deal.status,
        crate::attribution::DealStatus::Lost
    );
    assert_eq!(inputs.deals[0].people.len(), 1);
    assert_eq!(inputs.touches.values().next().unwrap()[0].source, "google");
    let history: i64 = s
        .read(|c| Ok(c.query_row("SELECT count(*) FROM deal_history", [], |r| r.get(0))?))
        .await
        .unwrap();
    assert_eq!(
        history, 4,
        "open, won, amount change, lost; the repeat is not history"
    );
}

#[tokio::test]
async fn contacts_resolve_by_the_crms_id_first_and_unknown_people_cause_no_writeback() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(&dir);
    s.ingest(lead("L1", "ann@example.com", 1, r#"{"captured_at":""}"#))
        .await
        .unwrap();
    s.ingest(lead("L2", "bob@example.com", 2, r#"{"captured_at":""}"#))
        .await
        .unwrap();
    let claimed = s
        .claim("crm", "t", 10, Duration::from_secs(60))
        .await
        .unwrap();
    let bob = claimed.iter().find(|c| c.lead_id == "L2").unwrap();
    s.record_remote_id(bob.id, "C-BOB").await.unwrap();
    // The CRM id names Bob even though the email given with it is Ann's.
    let ctx = s
        .outcome_context(
            "crm",
            vec![
                (
                    "D1".into(),
                    vec![DealContact {
                        remote_id: "C-BOB".into(),
                        email: Some("ann@example.com".into()),
                    }],
                ),
                (
                    "D2".into(),
                    vec![DealContact {
                        remote_id: "C-NOBODY".into(),
                        email: None,
                    }],
                ),
            ],
        )
        .await
        .unwrap();
    assert_eq!(ctx[0].people.len(), 1);
    assert_eq!(ctx[0].people[0].leads[0].lead_id, "L2");
    assert!(ctx[1].people.is_empty());
    let mut o = outcome("demo", DealState::Open, 1, 2, "C-NOBODY");
    o.deal_id = "D2".into();
    o.contacts[0].email = None;
    let record = deal_record(&plan_config(), o, ctx[1].clone(), 3);
    assert!(
        record.writebacks.is_empty(),
        "no person, nothing to match a conversion on"
    );
}

#[tokio::test]
async fn forget_cancels_queued_writebacks_of_the_person() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(&dir);
    s.ingest(lead(
        "L1",
        "ann@example.com",
        1,
        r#"{"gclid":"G1","captured_at":""}"#,
    ))
    .await
    .unwrap();
    observe(&s, outcome("demo", DealState::Open, 100, 2, "C9"), "c1").await;
    s.forget(
        ForgetIdentifier::Email("ann@example.com".into()),
        vec![ForgetTarget {
            destination: "crm".into(),
            supports_deletion: true,
        }],
    )
    .await
    .unwrap();
    assert!(
        writebacks(&s, "ads").await.is_empty(),
        "nothing about the person leaves after a forget"
    );
}

#[test]
fn migrating_an_existing_outbox_keeps_its_rows_and_admits_writebacks() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.db");
    let mut conn = rusqlite::Connection::open(&path).unwrap();
    // Bring a database to version 4 by hand, then give it a lead and a queued delivery.
    let tx = conn.transaction().unwrap();
    for (i, sql) in super::schema::MIGRATIONS_FOR_TESTS
        .iter()
        .take(4)
        .enumerate()
    {
        tx.execute_batch(sql).unwrap();
        tx.pragma_update(None, "user_version", (i + 1) as i64)
            .unwrap();
    }
    tx.commit().unwrap();
    conn.execute_batch(
        "INSERT INTO people (id, email, created_at, updated_at) VALUES (1, 'a@x.co', 0, 0);
         INSERT INTO leads VALUES ('L1', 'web', 1, 0, '{}', x'', NULL);
         INSERT INTO outbox (lead_id, person_id, flow, destination, payload, state, created_at,
                             next_attempt_at, op)
         VALUES ('L1', 1, 'f', 'crm', '{}', 'pending', 0, 0, 'forget');",
    )
    .unwrap();
    super::schema::migrate(&mut conn).unwrap();
    let (n, op): (i64, String) = conn
        .query_row("SELECT count(*), max(op) FROM outbox", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap();
    assert_eq!((n, op.as_str()), (1, "forget"));
    conn.execute(
        "INSERT INTO outbox (lead_id, person_id, flow, destination, payload, state, created_at,
                             next_attempt_at, op)
         VALUES ('L1', 1, 'attribution', 'ads', '{}', 'pending', 0, 0, 'writeback')",
        [],
    )
    .unwrap();
    assert!(
        conn.execute("UPDATE outbox SET op = 'bogus' WHERE id = 1", [],)
            .is_err(),
        "the op check still holds"
    );
}
