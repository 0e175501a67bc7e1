//! Every statement of the SQLite engine, exercised through the `Store` trait on a real file.

use std::{os::unix::fs::PermissionsExt, sync::Arc, time::Duration};

use super::*;
use crate::store::{
    DeliveryOp, ForgetIdentifier, ForgetOutcome, ForgetTarget, LeadDelivery, PersonKey,
};

fn open(dir: &tempfile::TempDir) -> SqliteStore {
    SqliteStore::open(&dir.path().join("t.db"), SqliteOptions::default()).unwrap()
}

fn lead(id: &str, email: &str, destinations: &[&str]) -> NewLead {
    NewLead {
        id: id.into(),
        source: "web".into(),
        received_at_ms: now_ms(),
        lead_json: format!(r#"{{"email":"{email}"}}"#),
        raw_body: b"raw".to_vec(),
        content_type: Some("application/json".into()),
        person: PersonKey {
            email: Some(email.into()),
            ..Default::default()
        },
        idempotency_key: None,
        deliveries: destinations
            .iter()
            .map(|d| LeadDelivery {
                flow: "f".into(),
                destination: (*d).into(),
                payload: "{}".into(),
            })
            .collect(),
    }
}

const LEASE: Duration = Duration::from_secs(60);

#[tokio::test]
async fn ingest_stores_once_per_idempotency_key_and_reuses_people() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(&dir);
    let mut a = lead("L1", "a@x.co", &["crm"]);
    a.idempotency_key = Some("k1".into());
    assert_eq!(
        s.ingest(a.clone()).await.unwrap(),
        Ingested {
            lead_id: "L1".into(),
            duplicate: false
        }
    );
    let mut again = lead("L2", "a@x.co", &["crm"]);
    again.idempotency_key = Some("k1".into());
    assert_eq!(
        s.ingest(again).await.unwrap(),
        Ingested {
            lead_id: "L1".into(),
            duplicate: true
        }
    );
    s.ingest(lead("L3", "a@x.co", &["crm"])).await.unwrap();
    let leads = s.leads_since(vec!["web".into()], 0).await.unwrap();
    assert_eq!(
        leads.iter().map(|l| l.id.as_str()).collect::<Vec<_>>(),
        ["L1", "L3"]
    );
    assert_eq!(
        leads[0].person_id, leads[1].person_id,
        "same email, same person"
    );
    assert!(
        s.leads_since(vec!["other".into()], 0)
            .await
            .unwrap()
            .is_empty()
    );
    let st = s.status().await.unwrap();
    assert_eq!((st[0].pending, st[0].destination.as_str()), (2, "crm"));
}

#[tokio::test]
async fn claim_takes_one_row_per_person_in_order_and_settling_frees_the_next() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(&dir);
    s.ingest(lead("A1", "a@x.co", &["crm"])).await.unwrap();
    s.ingest(lead("A2", "a@x.co", &["crm"])).await.unwrap();
    s.ingest(lead("B1", "b@x.co", &["crm"])).await.unwrap();
    s.ingest(lead("C1", "c@x.co", &["other"])).await.unwrap();

    let batch = s.claim("crm", "w1", 10, LEASE).await.unwrap();
    assert_eq!(
        batch.iter().map(|c| c.lead_id.as_str()).collect::<Vec<_>>(),
        ["A1", "B1"]
    );
    assert!(batch.iter().all(|c| c.attempts == 1));
    assert!(
        s.claim("crm", "w2", 10, LEASE).await.unwrap().is_empty(),
        "A2 waits for A1"
    );

    s.settle(vec![Settlement::Done {
        id: batch[0].id,
        remote_id: Some("901".into()),
    }])
    .await
    .unwrap();
    assert_eq!(
        s.remote_id(batch[0].person_id, "crm")
            .await
            .unwrap()
            .as_deref(),
        Some("901")
    );
    let next = s.claim("crm", "w2", 10, LEASE).await.unwrap();
    assert_eq!(
        next.iter().map(|c| c.lead_id.as_str()).collect::<Vec<_>>(),
        ["A2"]
    );
    let st = s.status().await.unwrap();
    let crm = st.iter().find(|d| d.destination == "crm").unwrap();
    assert_eq!((crm.pending, crm.in_flight, crm.done), (0, 2, 1));
    assert!(crm.oldest_pending_age_ms.is_some());
}

#[tokio::test]
async fn retries_wait_until_due_refunds_keep_budget_and_dead_rows_stop_blocking() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(&dir);
    s.ingest(lead("A1", "a@x.co", &["crm"])).await.unwrap();
    s.ingest(lead("A2", "a@x.co", &["crm"])).await.unwrap();
    let c = s.claim("crm", "w", 10, LEASE).await.unwrap();
    s.settle(vec![Settlement::Retry {
        id: c[0].id,
        at_ms: now_ms() + 60_000,
        error: "503".into(),
        refund: true,
    }])
    .await
    .unwrap();
    assert!(
        s.claim("crm", "w", 10, LEASE).await.unwrap().is_empty(),
        "not due, and A2 must wait"
    );
    s.settle(vec![Settlement::Retry {
        id: c[0].id,
        at_ms: 0,
        error: "503".into(),
        refund: false,
    }])
    .await
    .unwrap();
    // A Retry on a pending row still applies (a late settlement): it becomes due now.
    let again = s.claim("crm", "w", 10, LEASE).await.unwrap();
    assert_eq!(
        (again[0].lead_id.as_str(), again[0].attempts),
        ("A1", 1),
        "refund gave the attempt back"
    );
    s.settle(vec![Settlement::Dead {
        id: again[0].id,
        error: "INVALID_EMAIL".into(),
    }])
    .await
    .unwrap();
    let next = s.claim("crm", "w", 10, LEASE).await.unwrap();
    assert_eq!(
        next[0].lead_id, "A2",
        "a dead row no longer blocks its person"
    );
    let dl = s.dead_letters(None, 10).await.unwrap();
    assert_eq!(
        (dl.len(), dl[0].error.as_str(), dl[0].lead_id.as_str()),
        (1, "INVALID_EMAIL", "A1")
    );
    assert!(
        s.dead_letters(Some("other".into()), 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        s.status().await.unwrap()[0].last_error.as_deref(),
        Some("INVALID_EMAIL")
    );
}

#[tokio::test]
async fn dead_letters_can_be_retried_or_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(&dir);
    for (i, e) in ["a@x.co", "b@x.co", "c@x.co"].iter().enumerate() {
        s.ingest(lead(&format!("L{i}"), e, &["crm"])).await.unwrap();
    }
    let c = s.claim("crm", "w", 10, LEASE).await.unwrap();
    s.settle(
        c.iter()
            .map(|c| Settlement::Dead {
                id: c.id,
                error: "bad".into(),
            })
            .collect(),
    )
    .await
    .unwrap();
    assert_eq!(s.retry_dead(Some(vec![c[0].id])).await.unwrap(), 1);
    let again = s.claim("crm", "w", 10, LEASE).await.unwrap();
    assert_eq!(
        (again.len(), again[0].attempts),
        (1, 1),
        "fresh attempt budget"
    );
    assert_eq!(s.drop_dead(Some(vec![c[1].id])).await.unwrap(), 1);
    assert_eq!(s.dead_letters(None, 10).await.unwrap().len(), 1);
    assert_eq!(s.retry_dead(None).await.unwrap(), 1);
    assert_eq!(s.drop_dead(None).await.unwrap(), 0);
}

#[tokio::test]
async fn expired_leases_are_reclaimed_and_releases_hand_rows_back() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(&dir);
    s.ingest(lead("A1", "a@x.co", &["crm"])).await.unwrap();
    s.ingest(lead("B1", "b@x.co", &["crm"])).await.unwrap();
    let short = s
        .claim("crm", "crashed", 1, Duration::from_millis(1))
        .await
        .unwrap();
    assert_eq!(short[0].lead_id, "A1");
    tokio::time::sleep(Duration::from_millis(5)).await;
    let reclaimed = s.claim("crm", "w2", 10, LEASE).await.unwrap();
    assert_eq!(
        reclaimed
            .iter()
            .map(|c| c.lead_id.as_str())
            .collect::<Vec<_>>(),
        ["A1", "B1"]
    );
    assert_eq!(reclaimed[0].attempts, 2);
    assert_eq!(s.release_owner("w2").await.unwrap(), 2);
    let c = s.claim("crm", "w3", 10, LEASE).await.unwrap();
    assert_eq!(c[0].attempts, 2, "a graceful release refunds the attempt");
    assert_eq!(s.release_all_leases().await.unwrap(), 2);
    let c = s.claim("crm", "w4", 10, LEASE).await.unwrap();
    assert_eq!(
        c[0].attempts, 3,
        "a crash release does not: the vendor may have seen it"
    );
}

#[tokio::test]
async fn enqueue_pause_cursors_and_ping() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(&dir);
    s.ingest(lead("A1", "a@x.co", &[])).await.unwrap();
    let l = &s.leads_since(vec!["web".into()], 0).await.unwrap()[0];
    let d = NewDelivery {
        lead_id: l.id.clone(),
        person_id: l.person_id,
        flow: "f".into(),
        destination: "crm".into(),
        payload: "{}".into(),
    };
    assert_eq!(s.enqueue(vec![d]).await.unwrap(), 1);
    assert_eq!(s.claim("crm", "w", 10, LEASE).await.unwrap().len(), 1);
    s.set_paused("crm", Some("401 from HubSpot".into()))
        .await
        .unwrap();
    assert_eq!(
        s.paused().await.unwrap(),
        vec![("crm".to_string(), "401 from HubSpot".to_string())]
    );
    s.set_paused("crm", None).await.unwrap();
    assert!(s.paused().await.unwrap().is_empty());
    s.ping().await.unwrap();
    assert_eq!(s.cursor("mailchimp").await.unwrap(), None);
    s.set_cursor("mailchimp", "2026-11-01T00:00:00Z")
        .await
        .unwrap();
    s.set_cursor("mailchimp", "2026-11-02T00:00:00Z")
        .await
        .unwrap();
    assert_eq!(
        s.cursor("mailchimp").await.unwrap().as_deref(),
        Some("2026-11-02T00:00:00Z")
    );
}

#[tokio::test]
async fn concurrent_writes_share_commits_and_survive_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    {
        let s = Arc::new(SqliteStore::open(&path, SqliteOptions::default()).unwrap());
        let tasks: Vec<_> = (0..200)
            .map(|i| {
                let s = s.clone();
                tokio::spawn(async move {
                    s.ingest(lead(&format!("L{i:03}"), &format!("p{i}@x.co"), &["crm"]))
                        .await
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap().unwrap();
        }
        assert!(
            s.commit_groups() < 200,
            "200 writes took {} commits: no grouping",
            s.commit_groups()
        );
        assert!(s.writer_silence().unwrap() < Duration::from_secs(5));
    }
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let s = SqliteStore::open(&path, SqliteOptions::default()).unwrap();
    assert_eq!(s.status().await.unwrap()[0].pending, 200);
    let ro = SqliteStore::open_read_only(&path).unwrap();
    assert_eq!(ro.status().await.unwrap()[0].pending, 200);
    assert!(matches!(ro.ping().await, Err(StoreError::ReadOnly)));
}

#[tokio::test]
async fn a_second_daemon_cannot_open_the_same_state() {
    let dir = tempfile::tempdir().unwrap();
    let _first = open(&dir);
    let second = SqliteStore::open(&dir.path().join("t.db"), SqliteOptions::default());
    assert!(matches!(second, Err(StoreError::Unavailable(m)) if m.contains("another tandem")));
}

#[tokio::test]
async fn a_full_write_queue_sheds_intake_instead_of_queueing_forever() {
    let dir = tempfile::tempdir().unwrap();
    let s = Arc::new(
        SqliteStore::open(
            &dir.path().join("t.db"),
            SqliteOptions {
                max_pending_writes: 1,
            },
        )
        .unwrap(),
    );
    let tasks: Vec<_> = (0..300)
        .map(|i| {
            let s = s.clone();
            tokio::spawn(async move {
                s.ingest(lead(&format!("L{i}"), &format!("p{i}@x.co"), &["crm"]))
                    .await
            })
        })
        .collect();
    let mut busy = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => {}
            Err(StoreError::Busy) => busy += 1,
            Err(e) => panic!("unexpected {e}"),
        }
    }
    assert!(
        busy > 0,
        "a queue bound of 1 must shed some of 300 concurrent writes"
    );
    let stored = s.leads_since(vec!["web".into()], 0).await.unwrap().len();
    assert_eq!(
        stored,
        300 - busy,
        "every write that was not shed is stored, none half-stored"
    );
}

#[tokio::test]
async fn tokens_persist_and_remote_ids_recorded_mid_batch_come_back_on_the_next_claim() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(&dir);
    assert_eq!(s.load_token("crm").await.unwrap(), None);
    s.save_token("crm", r#"{"access_token":"a1"}"#)
        .await
        .unwrap();
    s.save_token("crm", r#"{"access_token":"a2"}"#)
        .await
        .unwrap();
    assert_eq!(
        s.load_token("crm").await.unwrap().as_deref(),
        Some(r#"{"access_token":"a2"}"#)
    );

    s.ingest(lead("A1", "a@x.co", &["crm"])).await.unwrap();
    s.ingest(lead("A2", "a@x.co", &["crm"])).await.unwrap();
    let first = s.claim("crm", "w", 10, LEASE).await.unwrap();
    assert_eq!(first[0].remote_id, None);
    // The vendor created the person; the process dies before the batch settles.
    s.record_remote_id(first[0].id, "P-77").await.unwrap();
    assert_eq!(s.release_all_leases().await.unwrap(), 1);
    let again = s.claim("crm", "w", 10, LEASE).await.unwrap();
    assert_eq!(
        again[0].remote_id.as_deref(),
        Some("P-77"),
        "a retry updates, it does not create"
    );
    s.settle(vec![Settlement::Done {
        id: again[0].id,
        remote_id: Some("P-77".into()),
    }])
    .await
    .unwrap();
    let next = s.claim("crm", "w", 10, LEASE).await.unwrap();
    assert_eq!(
        (next[0].lead_id.as_str(), next[0].remote_id.as_deref()),
        ("A2", Some("P-77"))
    );
}

#[tokio::test]
async fn fetches_are_queued_once_claimed_under_lease_and_completed_with_their_lead() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(&dir);
    let req = |id: &str| (id.to_string(), format!(r#"{{"event_id":"{id}"}}"#));
    assert_eq!(
        s.enqueue_fetches("fb", vec![req("L1"), req("L2")])
            .await
            .unwrap(),
        2
    );
    assert_eq!(
        s.enqueue_fetches("fb", vec![req("L1")]).await.unwrap(),
        0,
        "Meta retries: queued once"
    );
    let claimed = s.claim_fetches("fb", "w", 10, LEASE).await.unwrap();
    assert_eq!(
        claimed
            .iter()
            .map(|f| f.event_id.as_str())
            .collect::<Vec<_>>(),
        ["L1", "L2"]
    );
    assert!(
        s.claim_fetches("fb", "w2", 10, LEASE)
            .await
            .unwrap()
            .is_empty(),
        "leased"
    );
    assert_eq!(
        s.release_all_leases().await.unwrap(),
        2,
        "a restart takes fetch leases back too"
    );
    let claimed = s.claim_fetches("fb", "w", 10, LEASE).await.unwrap();
    assert_eq!(claimed.len(), 2);
    let mut lead = lead("F1", "f@x.co", &["crm"]);
    lead.source = "fb".into();
    lead.idempotency_key = Some("L1".into());
    let ingested = s.complete_fetch(claimed[0].id, lead).await.unwrap();
    assert!(!ingested.duplicate);
    s.settle_fetches(vec![Settlement::Retry {
        id: claimed[1].id,
        at_ms: 0,
        error: "503".into(),
        refund: false,
    }])
    .await
    .unwrap();
    let again = s.claim_fetches("fb", "w", 10, LEASE).await.unwrap();
    assert_eq!((again.len(), again[0].attempts), (1, 3));
    s.settle_fetches(vec![Settlement::Dead {
        id: again[0].id,
        error: "unknown lead".into(),
    }])
    .await
    .unwrap();
    assert!(
        s.claim_fetches("fb", "w", 10, LEASE)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        s.settle_fetches(vec![Settlement::Done {
            id: 1,
            remote_id: None
        }])
        .await
        .is_err()
    );
    assert_eq!(
        s.status().await.unwrap()[0].pending,
        1,
        "the fetched lead was enqueued for the CRM"
    );
}

#[tokio::test]
async fn a_polled_page_and_its_cursor_commit_together() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(&dir);
    let mut a = lead("P1", "a@x.co", &["crm"]);
    a.idempotency_key = Some("member-1".into());
    let mut b = lead("P2", "b@x.co", &["crm"]);
    b.idempotency_key = Some("member-2".into());
    let out = s
        .ingest_page(vec![a.clone(), b], "mailchimp", "2026-11-24T10:00:00Z")
        .await
        .unwrap();
    assert_eq!(out.iter().filter(|i| !i.duplicate).count(), 2);
    assert_eq!(
        s.cursor("mailchimp").await.unwrap().as_deref(),
        Some("2026-11-24T10:00:00Z")
    );
    // The overlap window brings member-1 again: a duplicate, nothing new stored.
    a.id = "P3".into();
    let out = s
        .ingest_page(vec![a], "mailchimp", "2026-11-24T10:05:00Z")
        .await
        .unwrap();
    assert_eq!((out[0].duplicate, out[0].lead_id.as_str()), (true, "P1"));
    assert_eq!(s.leads_since(vec!["web".into()], 0).await.unwrap().len(), 2);
}

fn lead_with(id: &str, email: Option<&str>, phone: Option<&str>) -> NewLead {
    let mut l = lead(id, email.unwrap_or("x@x.co"), &["crm"]);
    l.person = PersonKey {
        email: email.map(str::to_owned),
        phone: phone.map(str::to_owned),
        source_key: None,
    };
    l
}

#[tokio::test]
async fn an_email_and_a_phone_of_two_people_merge_them_and_the_merge_is_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(&dir);
    s.ingest(lead_with("E1", Some("ann@x.co"), None))
        .await
        .unwrap();
    s.ingest(lead_with("P1", None, Some("+14155552671")))
        .await
        .unwrap();
    let people = |s: &SqliteStore| {
        let conn = Connection::open(s.path()).unwrap();
        conn.query_row("SELECT count(*) FROM people", [], |r| r.get::<_, i64>(0))
            .unwrap()
    };
    assert_eq!(people(&s), 2);
    // Both get delivered: the CRM has two records for now.
    let c = s.claim("crm", "w", 10, LEASE).await.unwrap();
    s.settle(vec![
        Settlement::Done {
            id: c[0].id,
            remote_id: Some("crm-ann".into()),
        },
        Settlement::Done {
            id: c[1].id,
            remote_id: Some("crm-phone".into()),
        },
    ])
    .await
    .unwrap();
    // A lead with both proves they are one human.
    s.ingest(lead_with("B1", Some("ann@x.co"), Some("+14155552671")))
        .await
        .unwrap();
    assert_eq!(people(&s), 1);
    let leads = s.leads_since(vec!["web".into()], 0).await.unwrap();
    assert!(
        leads.iter().all(|l| l.person_id == leads[0].person_id),
        "every touchpoint on one person"
    );
    assert_eq!(
        s.remote_id(leads[0].person_id, "crm")
            .await
            .unwrap()
            .as_deref(),
        Some("crm-ann")
    );
    let conn = Connection::open(s.path()).unwrap();
    let reason: String = conn
        .query_row("SELECT reason FROM person_merges", [], |r| r.get(0))
        .unwrap();
    assert!(
        reason.contains("crm-phone"),
        "the CRM's second record is noted: {reason}"
    );
    // A phone-only person later seen with an email gains the email, no new person.
    s.ingest(lead_with("P2", None, Some("+14155550000")))
        .await
        .unwrap();
    s.ingest(lead_with("P3", Some("bo@x.co"), Some("+14155550000")))
        .await
        .unwrap();
    assert_eq!(people(&s), 2);
}

#[tokio::test]
async fn a_phone_shared_by_two_emails_keeps_them_two_people() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(&dir);
    s.ingest(lead_with("A", Some("ann@x.co"), Some("+14155552671")))
        .await
        .unwrap();
    s.ingest(lead_with("B", Some("bo@x.co"), Some("+14155552671")))
        .await
        .unwrap();
    s.ingest(lead_with("C", Some("cy@x.co"), Some("+14155552671")))
        .await
        .unwrap();
    let leads = s.leads_since(vec!["web".into()], 0).await.unwrap();
    let persons: std::collections::BTreeSet<i64> = leads.iter().map(|l| l.person_id).collect();
    assert_eq!(
        persons.len(),
        3,
        "a reception desk's phone does not make three people one"
    );
    let conn = Connection::open(s.path()).unwrap();
    let merges: i64 = conn
        .query_row("SELECT count(*) FROM person_merges", [], |r| r.get(0))
        .unwrap();
    assert_eq!(merges, 0);
}

fn personal_lead(id: &str, email: &str, phone: Option<&str>, destinations: &[&str]) -> NewLead {
    let mut l = lead(id, email, destinations);
    l.lead_json = serde_json::json!({
        "email": email, "phone": phone, "first_name": "Zelda",
        "touchpoint": {"source": "web", "utm_campaign": "spring", "gclid": "GCL-1",
                       "captured_at": "2026-11-01T10:00:00Z"}
    })
    .to_string();
    l.raw_body = format!("email={email}&first_name=Zelda").into_bytes();
    l.person.phone = phone.map(str::to_owned);
    for d in &mut l.deliveries {
        d.payload = format!(r#"{{"properties":{{"email":"{email}","firstname":"Zelda"}}}}"#);
    }
    l
}

/// Every text or blob value in every table that contains `needle`, as `table.column`.
fn occurrences(path: &std::path::Path, needle: &str) -> Vec<String> {
    let conn = rusqlite::Connection::open(path).unwrap();
    let tables: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table'")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let mut found = Vec::new();
    for t in tables {
        let mut stmt = conn.prepare(&format!("SELECT * FROM \"{t}\"")).unwrap();
        let names: Vec<String> = stmt.column_names().map(str::to_owned).collect();
        let mut rows = stmt.query([]).unwrap();
        while let Some(row) = rows.next().unwrap() {
            for (i, name) in names.iter().enumerate() {
                let text = match row.get_ref(i).unwrap() {
                    rusqlite::types::ValueRef::Text(b) | rusqlite::types::ValueRef::Blob(b) => {
                        String::from_utf8_lossy(b).into_owned()
                    }
                    _ => continue,
                };
                if text.contains(needle) {
                    found.push(format!("{t}.{name}"));
                }
            }
        }
    }
    found
}

fn crm_target(supports_deletion: bool) -> Vec<ForgetTarget> {
    vec![ForgetTarget {
        destination: "crm".into(),
        supports_deletion,
    }]
}

#[tokio::test]
async fn forget_erases_personal_data_cancels_upserts_queues_deletions_and_audits_a_hash() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(&dir);
    let path = dir.path().join("t.db");
    let mut first = personal_lead("Z1", "zelda@x.co", Some("+14155550111"), &["crm", "old"]);
    first.idempotency_key = Some("evt-1".into());
    s.ingest(first).await.unwrap();
    s.ingest(lead("B1", "bob@x.co", &["crm"])).await.unwrap();
    // Zelda reached the CRM once; an upsert to "old" is in flight when she is forgotten.
    let claimed = s.claim("crm", "w", 10, LEASE).await.unwrap();
    assert_eq!(claimed.len(), 2);
    assert!(claimed.iter().all(|c| c.op == DeliveryOp::Upsert));
    s.settle(
        claimed
            .iter()
            .map(|c| Settlement::Done {
                id: c.id,
                remote_id: Some(format!("R-{}", c.lead_id)),
            })
            .collect(),
    )
    .await
    .unwrap();
    let in_flight = s.claim("old", "w", 10, LEASE).await.unwrap();
    assert_eq!(in_flight.len(), 1);
    s.ingest(personal_lead("Z2", "zelda@x.co", None, &["crm"]))
        .await
        .unwrap();

    let outcome = s
        .forget(
            ForgetIdentifier::Email("zelda@x.co".into()),
            crm_target(true),
        )
        .await
        .unwrap();
    let ForgetOutcome::Forgotten {
        audit,
        leads,
        cancelled_deliveries,
    } = outcome
    else {
        panic!("{outcome:?}")
    };
    assert_eq!(
        (leads, cancelled_deliveries),
        (2, 1),
        "Z2's upsert is cancelled"
    );
    assert_eq!(audit.status, "pending");
    assert_eq!(audit.identifier_hash.len(), 64);
    let fanout: Vec<(&str, &str)> = audit
        .connectors
        .iter()
        .map(|f| (f.connector.as_str(), f.status.as_str()))
        .collect();
    assert_eq!(fanout, [("crm", "queued"), ("old", "not_configured")]);
    for needle in ["zelda@x.co", "4155550111", "Zelda", "GCL-1", "evt-1"] {
        assert_eq!(occurrences(&path, needle), Vec::<String>::new(), "{needle}");
    }
    assert!(
        !occurrences(&path, "bob@x.co").is_empty(),
        "Bob is untouched"
    );
    let kept = s.leads_since(vec!["web".into()], 0).await.unwrap();
    let z1 = kept.iter().find(|l| l.id == "Z1").unwrap();
    let anonymised: tandem_connectors::Lead = serde_json::from_str(&z1.lead_json).unwrap();
    assert_eq!(
        anonymised.touchpoint.utm_campaign.as_deref(),
        Some("spring")
    );
    assert_eq!(anonymised.touchpoint.captured_at, "2026-11-01T10:00:00Z");

    // Nothing but the deletion is left for the CRM; it carries the id the CRM gave Zelda.
    let next = s.claim("crm", "w", 10, LEASE).await.unwrap();
    assert_eq!(next.len(), 1, "{next:?}");
    assert_eq!(next[0].op, DeliveryOp::Forget);
    assert_eq!(next[0].remote_id.as_deref(), Some("R-Z1"));
    s.settle(vec![Settlement::Done {
        id: next[0].id,
        remote_id: Some("R-Z1".into()),
    }])
    .await
    .unwrap();
    assert_eq!(s.remote_id(audit.person_id, "crm").await.unwrap(), None);
    let audits = s.forget_audits(10).await.unwrap();
    assert_eq!(
        (audits[0].id, audits[0].status.as_str()),
        (audit.id, "done")
    );
    assert!(audits[0].finished_at_ms.is_some());

    // The upsert that was in flight ends when it settles, and is never retried.
    s.settle(vec![Settlement::Retry {
        id: in_flight[0].id,
        at_ms: 0,
        error: "vendor said zelda@x.co is odd".into(),
        refund: false,
    }])
    .await
    .unwrap();
    assert!(s.claim("old", "w", 10, LEASE).await.unwrap().is_empty());
    assert!(occurrences(&path, "zelda@x.co").is_empty());

    // Asked again: recognised by the hash; a stranger is not found.
    match s
        .forget(
            ForgetIdentifier::Email("zelda@x.co".into()),
            crm_target(true),
        )
        .await
        .unwrap()
    {
        ForgetOutcome::AlreadyForgotten { audit: again } => assert_eq!(again.id, audit.id),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        s.forget(
            ForgetIdentifier::Email("nobody@x.co".into()),
            crm_target(true)
        )
        .await
        .unwrap(),
        ForgetOutcome::NotFound
    );
    // Zelda comes back: a new person, who can be forgotten in turn.
    s.ingest(lead("Z3", "zelda@x.co", &[])).await.unwrap();
    assert!(matches!(
        s.forget(
            ForgetIdentifier::Email("zelda@x.co".into()),
            crm_target(true)
        )
        .await
        .unwrap(),
        ForgetOutcome::Forgotten { .. }
    ));
}

#[tokio::test]
async fn a_deletion_the_connector_cannot_do_dead_letters_and_fails_the_audit() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(&dir);
    s.ingest(lead_with("P1", None, Some("+14155550122")))
        .await
        .unwrap();
    let c = s.claim("crm", "w", 10, LEASE).await.unwrap();
    s.settle(vec![Settlement::Done {
        id: c[0].id,
        remote_id: Some("R-P1".into()),
    }])
    .await
    .unwrap();
    let ForgetOutcome::Forgotten { audit, .. } = s
        .forget(
            ForgetIdentifier::Phone("+14155550122".into()),
            crm_target(false),
        )
        .await
        .unwrap()
    else {
        panic!()
    };
    assert_eq!(audit.connectors[0].status, "unsupported");
    let c = s.claim("crm", "w", 10, LEASE).await.unwrap();
    assert_eq!(c[0].op, DeliveryOp::Forget);
    s.settle(vec![Settlement::Dead {
        id: c[0].id,
        error: "can't delete".into(),
    }])
    .await
    .unwrap();
    assert_eq!(s.forget_audits(1).await.unwrap()[0].status, "failed");
    assert_eq!(s.dead_letters(None, 10).await.unwrap()[0].flow, "forget");

    // A person no CRM knows: nothing to fan out, the audit is done at once; one salt per file.
    s.ingest(lead("Q1", "quiet@x.co", &[])).await.unwrap();
    let ForgetOutcome::Forgotten { audit, .. } = s
        .forget(
            ForgetIdentifier::Email("quiet@x.co".into()),
            crm_target(true),
        )
        .await
        .unwrap()
    else {
        panic!()
    };
    assert!(audit.connectors.is_empty());
    assert_eq!(audit.status, "done");
    let conn = rusqlite::Connection::open(dir.path().join("t.db")).unwrap();
    let salt: String = conn
        .query_row(
            "SELECT value FROM meta WHERE key = 'identifier_salt'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(
        audit.identifier_hash,
        super::queries::identifier_hash(&salt, "quiet@x.co")
    );
    assert_ne!(
        audit.identifier_hash,
        super::queries::identifier_hash("other", "quiet@x.co")
    );
}
