//! The LinkedIn Lead Gen source against its sandbox over real loopback HTTP: first and
//! incremental polls, equal timestamps across pages, late arrivals, cursor replay after a crash,
//! paging, every error class, OAuth refresh, and arbitrary answers that must never panic.
#![cfg(feature = "sandbox")]

use std::{collections::BTreeSet, time::Duration};

use serde_json::{Value, json};
use tandem_connectors::{
    CallError, ConnectorContext, ConnectorKind,
    linkedin_lead_gen::{
        LinkedinLeadGenConfig, LinkedinLeadGenSource, client, mapping,
        sandbox::{ACCOUNT, CLIENT_ID, CLIENT_SECRET, LinkedinSandbox, REFRESH_TOKEN, TOKEN},
        wire,
    },
    sandbox::{CrmFaults, start_source},
    source::{PollPage, PolledSource},
};

const MIN: i64 = 60_000;

fn now_ms() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}

async fn sandbox() -> LinkedinSandbox {
    LinkedinSandbox::start("127.0.0.1:0".parse().unwrap())
        .await
        .expect("sandbox binds")
}

fn config(sb: &LinkedinSandbox, extra: Value) -> LinkedinLeadGenConfig {
    let mut cfg = json!({
        "access_token": TOKEN, "ad_accounts": [ACCOUNT], "base_url": sb.base_url(),
        "start_from": "1d", "overlap": "5m", "rate_limit": "600/1m", "timeout": "2s"
    });
    if let (Some(c), Some(e)) = (cfg.as_object_mut(), extra.as_object()) {
        c.extend(e.clone());
    }
    let cfg: LinkedinLeadGenConfig = serde_json::from_value(cfg).expect("config");
    assert!(cfg.validate().is_empty(), "{:?}", cfg.validate());
    cfg
}

fn source(sb: &LinkedinSandbox, extra: Value) -> LinkedinLeadGenSource {
    LinkedinLeadGenSource::new(&config(sb, extra), ConnectorContext::in_memory("li"))
        .expect("builds")
}

fn ids(page: &PollPage) -> Vec<String> {
    page.leads
        .iter()
        .filter_map(|l| l.event_id.clone())
        .collect()
}

/// Polls until `more` is false, returning every page.
async fn drain(src: &dyn PolledSource, mut cursor: Option<String>) -> (Vec<PollPage>, String) {
    let mut pages = Vec::new();
    for _ in 0..50 {
        let page = src.poll(cursor.as_deref()).await.expect("poll");
        cursor = Some(page.next_cursor.clone());
        let more = page.more;
        pages.push(page);
        if !more {
            break;
        }
    }
    (pages, cursor.unwrap_or_default())
}

fn all_ids(pages: &[PollPage]) -> BTreeSet<String> {
    pages.iter().flat_map(ids).collect()
}

#[tokio::test]
async fn the_first_poll_starts_at_start_from_and_the_next_takes_only_new_leads() {
    let sb = sandbox().await;
    let now = now_ms();
    let too_old = sb.submit("old@example.com", "Old", Some(now - 2 * 86_400_000), false);
    let recent = sb.submit("jane@example.com", "Jane", Some(now - 60 * MIN), false);
    let src = source(&sb, json!({}));
    let first = src.poll(None).await.expect("first poll");
    assert_eq!(ids(&first), vec![recent.clone()]);
    assert!(!first.more);
    let lead = &first.leads[0];
    assert_eq!(lead.fields["email"], "jane@example.com");
    assert_eq!(lead.fields["first_name"], "Jane");
    assert_eq!(lead.fields["Team size"], "11-50");
    assert_eq!(lead.fields["utm_source"], "linkedin");
    assert_eq!(lead.fields["campaign_id"], "556677");
    assert_eq!(lead.fields["ad_id"], "241257736");
    assert_eq!(lead.fields["form"], "Sandbox demo request");
    assert!(
        lead.captured_at
            .as_deref()
            .is_some_and(|c| c.ends_with('Z'))
    );

    let newer = sb.submit("joe@example.com", "Joe", None, false);
    let second = src
        .poll(Some(&first.next_cursor))
        .await
        .expect("second poll");
    // The newest lead already seen is read again (the window restarts at max − overlap, so equal
    // timestamps are never skipped); the daemon dedups it by event_id.
    assert_eq!(ids(&second), vec![newer, recent]);
    assert!(!ids(&second).contains(&too_old));
    assert_eq!(sb.stats().api_calls, 2);
}

#[tokio::test]
async fn start_from_now_takes_nothing_older() {
    let sb = sandbox().await;
    sb.submit("before@example.com", "B", Some(now_ms() - 10 * MIN), false);
    let src = source(&sb, json!({"start_from": "now"}));
    let page = src.poll(None).await.unwrap();
    assert!(page.leads.is_empty());
    let later = sb.submit("after@example.com", "A", None, false);
    let page = src.poll(Some(&page.next_cursor)).await.unwrap();
    assert_eq!(ids(&page), vec![later]);
}

#[tokio::test]
async fn equal_timestamps_across_a_page_boundary_are_all_delivered() {
    let sb = sandbox().await;
    let t = now_ms() - 30 * MIN;
    let mut expected = BTreeSet::new();
    for i in 0..5 {
        expected.insert(sb.submit(&format!("p{i}@example.com"), "P", Some(t), false));
    }
    let src = source(&sb, json!({"page_size": 2}));
    let (pages, cursor) = drain(&src, None).await;
    assert_eq!(
        pages.iter().map(|p| p.more).collect::<Vec<_>>(),
        [true, true, false]
    );
    assert_eq!(all_ids(&pages), expected);
    // Two more at the very same instant, after the window closed: the overlap re-reads them.
    let a = sb.submit("q1@example.com", "Q", Some(t), false);
    let b = sb.submit("q2@example.com", "Q", Some(t), false);
    let (pages, _) = drain(&src, Some(cursor)).await;
    let got = all_ids(&pages);
    assert!(got.contains(&a) && got.contains(&b), "{got:?}");
}

#[tokio::test]
async fn a_late_arrival_stamped_in_the_past_is_still_delivered() {
    let sb = sandbox().await;
    let t = now_ms() - 10 * MIN;
    sb.submit("first@example.com", "F", Some(t), false);
    let src = source(&sb, json!({}));
    let page = src.poll(None).await.unwrap();
    assert_eq!(page.leads.len(), 1);
    // Becomes visible only now, stamped 3 minutes before the newest lead seen (overlap 5m).
    let late = sb.submit("late@example.com", "L", Some(t - 3 * MIN), false);
    let page = src.poll(Some(&page.next_cursor)).await.unwrap();
    assert!(ids(&page).contains(&late), "{:?}", ids(&page));
}

#[tokio::test]
async fn a_replayed_cursor_yields_the_same_event_ids_and_loses_nothing() {
    let sb = sandbox().await;
    let base = now_ms() - 40 * MIN;
    let mut expected = BTreeSet::new();
    for i in 0..7 {
        expected.insert(sb.submit(
            &format!("r{i}@example.com"),
            "R",
            Some(base + i * 1000),
            false,
        ));
    }
    let src = source(&sb, json!({"page_size": 3}));
    let p1 = src.poll(None).await.unwrap();
    assert!(p1.more);
    // Crash after fetching page 2 but before committing it: page 2 is fetched again.
    let p2a = src.poll(Some(&p1.next_cursor)).await.unwrap();
    let p2b = src.poll(Some(&p1.next_cursor)).await.unwrap();
    assert_eq!(ids(&p2a), ids(&p2b));
    assert_eq!(p2a.next_cursor, p2b.next_cursor);
    let (rest, _) = drain(&src, Some(p2b.next_cursor.clone())).await;
    let mut got: BTreeSet<String> = ids(&p1).into_iter().collect();
    got.extend(ids(&p2b));
    got.extend(all_ids(&rest));
    assert_eq!(got, expected);
    // A garbage cursor starts over from start_from: re-reads, loses nothing.
    let (again, _) = drain(&src, Some("{not a cursor".to_owned())).await;
    assert_eq!(all_ids(&again), expected);
}

#[tokio::test]
async fn every_error_class_is_reported_for_the_engine() {
    let sb = sandbox().await;
    sb.submit("e@example.com", "E", None, false);
    let src = source(&sb, json!({}));

    sb.set_faults(CrmFaults {
        rate_limit_next: 1,
        ..Default::default()
    });
    match src.poll(None).await {
        Err(CallError::RateLimited {
            message,
            retry_after,
        }) => {
            assert!(message.contains("TOO_MANY_REQUESTS"), "{message}");
            assert!(retry_after >= Duration::from_secs(1) && retry_after <= client::THROTTLE_WAIT);
        }
        other => panic!("{other:?}"),
    }
    sb.set_faults(CrmFaults {
        server_error_next: 1,
        ..Default::default()
    });
    assert!(matches!(
        src.poll(None).await,
        Err(CallError::Transient { .. })
    ));
    sb.set_faults(CrmFaults {
        server_error_rate: 1.0,
        ..Default::default()
    });
    assert!(matches!(
        src.poll(None).await,
        Err(CallError::Transient { .. })
    ));
    sb.set_faults(CrmFaults {
        drop_after_write_next: 1,
        ..Default::default()
    });
    match src.poll(None).await {
        Err(CallError::Transient { message, .. }) => {
            assert!(message.contains("LinkedIn"), "{message}")
        }
        other => panic!("{other:?}"),
    }
    sb.set_faults(CrmFaults {
        delay_ms: 2_500,
        ..Default::default()
    });
    match src.poll(None).await {
        Err(CallError::Transient { message, .. }) => {
            assert!(message.contains("did not answer"), "{message}")
        }
        other => panic!("{other:?}"),
    }
    sb.set_faults(CrmFaults::default());
    assert_eq!(src.poll(None).await.unwrap().leads.len(), 1, "recovers");

    let bad_token = source(&sb, json!({"access_token": "AQ-wrong-token"}));
    match bad_token.poll(None).await {
        Err(CallError::Auth {
            status: 401,
            message,
        }) => {
            assert!(message.contains("INVALID_ACCESS_TOKEN"), "{message}");
            assert!(!message.contains("AQ-wrong-token"));
        }
        other => panic!("{other:?}"),
    }
    let other_account = source(&sb, json!({"ad_accounts": ["999"]}));
    assert!(matches!(
        other_account.poll(None).await,
        Err(CallError::Auth { status: 403, .. })
    ));
    let old_version = source(&sb, json!({"linkedin_version": "202301"}));
    match old_version.poll(None).await {
        Err(CallError::Permanent { message }) => {
            assert!(message.contains("NONEXISTENT_VERSION"), "{message}")
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn oauth_refreshes_and_retries_once_after_a_401() {
    let sb = sandbox().await;
    sb.submit("o@example.com", "O", None, false);
    let cfg = config(
        &sb,
        json!({"access_token": null, "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET,
               "refresh_token": REFRESH_TOKEN, "token_url": sb.token_url()}),
    );
    let src = LinkedinLeadGenSource::new(&cfg, ConnectorContext::in_memory("li")).unwrap();
    assert_eq!(src.poll(None).await.unwrap().leads.len(), 1);
    assert_eq!(sb.stats().token_refreshes, 1);
    sb.expire_tokens();
    assert_eq!(src.poll(None).await.unwrap().leads.len(), 1);
    assert_eq!(sb.stats().token_refreshes, 2);
    let wrong = config(
        &sb,
        json!({"access_token": null, "client_id": CLIENT_ID, "client_secret": "nope",
               "refresh_token": REFRESH_TOKEN, "token_url": sb.token_url()}),
    );
    let src = LinkedinLeadGenSource::new(&wrong, ConnectorContext::in_memory("li")).unwrap();
    match src.poll(None).await {
        Err(CallError::Auth { message, .. }) => assert!(!message.contains("nope")),
        other => panic!("{other:?}"),
    }
}

/// `connector_toml` lines → a JSON object (the lines are `key = "string"` or `key = ["…"]`).
fn toml_lines_to_json(toml: &str) -> Value {
    let mut map = serde_json::Map::new();
    for line in toml.lines().filter(|l| !l.trim().is_empty()) {
        let (k, v) = line.split_once('=').expect("key = value");
        map.insert(
            k.trim().to_owned(),
            serde_json::from_str(v.trim()).expect("JSON-compatible value"),
        );
    }
    Value::Object(map)
}

#[tokio::test]
async fn the_source_suite_sandbox_describes_a_working_connector() {
    let sb = start_source("linkedin_lead_gen")
        .await
        .unwrap()
        .expect("linkedin sandbox");
    assert_eq!(sb.kind(), "linkedin_lead_gen");
    let mut table = toml_lines_to_json(&sb.connector_toml());
    let kind = table.as_object_mut().unwrap().remove("kind").unwrap();
    let connector = ConnectorKind::from_kind(kind.as_str().unwrap(), table).expect("parses");
    assert!(
        connector.validate().is_empty(),
        "{:?}",
        connector.validate()
    );
    assert!(connector.is_source());
    let src = connector
        .polled_source(ConnectorContext::in_memory("li"))
        .unwrap()
        .expect("a polled source");
    assert_eq!(src.interval(), Duration::from_millis(200));
    let id = sb.add_lead("suite@example.com", "Suite", None);
    let page = src.poll(None).await.unwrap();
    assert_eq!(ids(&page), vec![id]);
    assert_eq!(sb.stats().api_calls, 1);
}

/// A tiny deterministic generator, so the fuzz loop needs no extra crate.
struct XorShift(u64);
impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

#[test]
fn arbitrary_and_mutated_answers_never_panic() {
    let realistic = serde_json::to_vec(&json!({
        "paging": {"start": 0, "count": 10, "total": 1, "links": []},
        "elements": [{
            "id": "x-1", "submittedAt": 1_700_000_000_000_i64, "testLead": false,
            "leadMetadata": {"sponsoredLeadMetadata": {"campaign": "urn:li:sponsoredCampaign:1"}},
            "associatedEntity": {"associatedCreative": "urn:li:sponsoredCreative:2"},
            "versionedLeadGenFormUrn": "urn:li:versionedLeadGenForm:(urn:li:leadGenForm:3,1)",
            "formResponse": {"answers": [{"questionId": 4, "answerDetails": {"textQuestionAnswer": {"answer": "a@b.co"}}}],
                              "consentResponses": [{"accepted": false, "consentId": 9}]},
            "form": {"name": "F", "id": 3, "hiddenFields": [{"name": "utm_medium", "value": "paid"}],
                     "content": {"questions": [{"questionId": 4, "predefinedField": "EMAIL"}]}}
        }]
    }))
    .unwrap();
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    let headers = reqwest::header::HeaderMap::new();
    for round in 0..4000 {
        let mut bytes = realistic.clone();
        match round % 4 {
            0 => {
                let n = usize::try_from(rng.next() % 8).unwrap() + 1;
                for _ in 0..n {
                    let i = usize::try_from(rng.next()).unwrap() % bytes.len();
                    bytes[i] = u8::try_from(rng.next() & 0xff).unwrap();
                }
            }
            1 => {
                let cut = usize::try_from(rng.next()).unwrap() % bytes.len();
                bytes.truncate(cut);
            }
            2 => {
                let len = usize::try_from(rng.next() % 64).unwrap();
                bytes = (0..len)
                    .map(|_| u8::try_from(rng.next() & 0xff).unwrap())
                    .collect();
            }
            _ => {
                // Swap a value for another JSON type.
                let s = String::from_utf8_lossy(&bytes).into_owned();
                let pick = [
                    "\"x-1\"",
                    "1700000000000",
                    "false",
                    "4",
                    "\"a@b.co\"",
                    "[]",
                    "{}",
                    "null",
                ];
                let from = pick[usize::try_from(rng.next()).unwrap() % pick.len()];
                let to = pick[usize::try_from(rng.next()).unwrap() % pick.len()];
                bytes = s.replacen(from, to, 1).into_bytes();
            }
        }
        if let Ok(page) = serde_json::from_slice::<wire::ResponsesPage>(&bytes) {
            for e in &page.elements {
                let _ = mapping::map_element(e);
            }
        }
        if let Ok(v) = serde_json::from_slice::<Value>(&bytes) {
            let _ = mapping::map_element(&v);
            if let Some(els) = v.get("elements").and_then(Value::as_array) {
                for e in els {
                    let _ = mapping::map_element(e);
                }
            }
        }
        for status in [400u16, 401, 403, 404, 426, 429, 500, 503] {
            let status = reqwest::StatusCode::from_u16(status).unwrap();
            let _ = client::classify(
                status,
                &headers,
                &bytes,
                i64::try_from(rng.next() >> 1).unwrap(),
            );
        }
    }
}

#[tokio::test]
async fn garbage_from_the_server_is_a_transient_error_not_a_panic() {
    use axum::{Router, routing::get};
    let bodies: Vec<&'static [u8]> = vec![
        b"",
        b"<html>gateway</html>",
        b"{\"elements\": 5}",
        b"{\"paging\": {\"total\": -1}, \"elements\": []}",
        b"{\"elements\": [null, 1, \"x\", {\"id\": {}}]}",
        b"\xff\xfe\x00",
    ];
    for body in bodies {
        let app = Router::new().route("/rest/leadFormResponses", get(move || async move { body }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        let cfg: LinkedinLeadGenConfig = serde_json::from_value(json!({
            "access_token": "t", "ad_accounts": ["1"], "base_url": format!("http://{addr}/rest")
        }))
        .unwrap();
        let src = LinkedinLeadGenSource::new(&cfg, ConnectorContext::in_memory("li")).unwrap();
        match src.poll(None).await {
            Ok(page) => assert!(page.leads.is_empty()),
            Err(CallError::Transient { message, .. }) => {
                assert!(
                    !message.contains("gateway"),
                    "no body text on a 200: {message}"
                )
            }
            Err(other) => panic!("{other:?}"),
        }
        server.abort();
    }
}
