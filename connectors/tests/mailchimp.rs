//! The Mailchimp source against its sandbox over real loopback HTTP: first and incremental
//! polls, statuses, profile updates that must not become new leads, equal timestamps across
//! pages, late arrivals, cursor replay after a crash, paging, every error class (the
//! 10-connection rule included), and arbitrary answers that must never panic.
#![cfg(feature = "sandbox")]

use std::{collections::BTreeSet, sync::Arc, time::Duration};

use serde_json::{Value, json};
use tandem_connectors::{
    CallError, ConnectorContext, ConnectorKind,
    mailchimp::{
        MailchimpConfig, MailchimpSource, client, mapping,
        sandbox::{API_KEY, LIST_ID, MailchimpSandbox, OAUTH_TOKEN},
        wire,
    },
    sandbox::{CrmFaults, start_source},
    source::{PollPage, PolledSource},
};

const SEC: i64 = 1000;
const MIN: i64 = 60 * SEC;

fn now_ms() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}

async fn sandbox() -> MailchimpSandbox {
    MailchimpSandbox::start("127.0.0.1:0".parse().unwrap())
        .await
        .expect("sandbox binds")
}

fn config(sb: &MailchimpSandbox, extra: Value) -> MailchimpConfig {
    let mut cfg = json!({
        "api_key": API_KEY, "list_id": LIST_ID, "base_url": sb.base_url(),
        "start_from": "1d", "overlap": "5m", "timeout": "2s"
    });
    if let (Some(c), Some(e)) = (cfg.as_object_mut(), extra.as_object()) {
        c.extend(e.clone());
    }
    let cfg: MailchimpConfig = serde_json::from_value(cfg).expect("config");
    assert!(cfg.validate().is_empty(), "{:?}", cfg.validate());
    cfg
}

fn source(sb: &MailchimpSandbox, extra: Value) -> MailchimpSource {
    MailchimpSource::new(&config(sb, extra), ConnectorContext::in_memory("mc")).expect("builds")
}

fn ids(page: &PollPage) -> Vec<String> {
    page.leads
        .iter()
        .filter_map(|l| l.event_id.clone())
        .collect()
}

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
async fn first_poll_from_start_from_then_only_new_members_and_only_lead_statuses() {
    let sb = sandbox().await;
    let now = now_ms();
    let too_old = sb.subscribe(
        "old@example.com",
        "Old",
        Some(now - 2 * 86_400_000),
        "subscribed",
    );
    let jane = sb.subscribe(
        "Jane.Doe@Example.com",
        "Jane",
        Some(now - 60 * MIN),
        "subscribed",
    );
    let pending = sb.subscribe(
        "pending@example.com",
        "Pat",
        Some(now - 50 * MIN),
        "pending",
    );
    let _gone = sb.subscribe(
        "gone@example.com",
        "Gone",
        Some(now - 40 * MIN),
        "unsubscribed",
    );
    let src = source(&sb, json!({}));
    let first = src.poll(None).await.expect("first poll");
    assert_eq!(ids(&first), vec![jane.clone(), pending.clone()]);
    assert_eq!(
        jane, "0cba00ca3da1b283a57287bcceb17e35",
        "member id = MD5 of the lowercased email"
    );
    let lead = &first.leads[0];
    assert_eq!(lead.fields["email"], "Jane.Doe@Example.com");
    assert_eq!(lead.fields["first_name"], "Jane");
    assert_eq!(lead.fields["utm_source"], "newsletter");
    assert_eq!(lead.fields["tags"], json!(["signup-form"]));
    assert_eq!(lead.fields["source"], "Hosted Signup Form");
    assert!(
        !lead.fields.contains_key("last_name"),
        "empty merge fields are left out"
    );
    assert!(
        lead.captured_at
            .as_deref()
            .is_some_and(|c| c.ends_with('Z'))
    );

    let newer = sb.subscribe(
        "joe@example.com",
        "Joe",
        Some(now_ms() - 5 * SEC),
        "subscribed",
    );
    let second = src
        .poll(Some(&first.next_cursor))
        .await
        .expect("second poll");
    assert!(ids(&second).contains(&newer));
    assert!(!ids(&second).contains(&too_old));
    // Only statuses that count: the default is subscribed + pending.
    let only_subscribed = source(&sb, json!({"statuses": ["subscribed"]}));
    let page = only_subscribed.poll(None).await.unwrap();
    assert!(!ids(&page).contains(&pending));
}

#[tokio::test]
async fn a_profile_update_brings_the_member_back_with_the_same_event_id() {
    let sb = sandbox().await;
    let id = sb.subscribe(
        "ann@example.com",
        "Ann",
        Some(now_ms() - 30 * MIN),
        "subscribed",
    );
    let src = source(&sb, json!({}));
    let first = src.poll(None).await.unwrap();
    assert_eq!(ids(&first), vec![id.clone()]);
    assert!(sb.update_profile("ann@example.com", "Annie"));
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let (pages, _) = drain(&src, Some(first.next_cursor)).await;
    let seen: Vec<String> = pages.iter().flat_map(ids).collect();
    assert!(
        !seen.is_empty() && seen.iter().all(|s| *s == id),
        "{seen:?}: same id, so the daemon dedups it"
    );
}

#[tokio::test]
async fn equal_timestamps_across_a_page_boundary_are_all_delivered() {
    let sb = sandbox().await;
    let t = now_ms() - 30 * MIN;
    let mut expected = BTreeSet::new();
    for i in 0..5 {
        expected.insert(sb.subscribe(&format!("p{i}@example.com"), "P", Some(t), "subscribed"));
    }
    let src = source(&sb, json!({"page_size": 2}));
    let (pages, cursor) = drain(&src, None).await;
    assert_eq!(
        pages.iter().map(|p| p.more).collect::<Vec<_>>(),
        [true, true, false]
    );
    assert_eq!(all_ids(&pages), expected);
    let a = sb.subscribe("q1@example.com", "Q", Some(t), "subscribed");
    let (pages, _) = drain(&src, Some(cursor)).await;
    assert!(all_ids(&pages).contains(&a));
}

#[tokio::test]
async fn a_late_arrival_stamped_in_the_past_is_still_delivered() {
    let sb = sandbox().await;
    let t = now_ms() - 10 * MIN;
    sb.subscribe("first@example.com", "F", Some(t), "subscribed");
    let src = source(&sb, json!({}));
    let page = src.poll(None).await.unwrap();
    assert_eq!(page.leads.len(), 1);
    let late = sb.subscribe("late@example.com", "L", Some(t - 3 * MIN), "subscribed");
    let page = src.poll(Some(&page.next_cursor)).await.unwrap();
    assert!(ids(&page).contains(&late), "{:?}", ids(&page));
}

#[tokio::test]
async fn a_member_edited_while_a_window_is_paged_costs_no_one_their_lead() {
    let sb = sandbox().await;
    let base = now_ms() - 3 * 60 * MIN;
    let mut expected = BTreeSet::new();
    let mut emails = Vec::new();
    for i in 0..6 {
        let email = format!("m{i}@example.com");
        expected.insert(sb.subscribe(&email, "M", Some(base + i * 20 * MIN), "subscribed"));
        emails.push(email);
    }
    let src = source(&sb, json!({"page_size": 2, "overlap": "1s"}));
    let p1 = src.poll(None).await.unwrap();
    assert!(p1.more);
    // The first member changes: it leaves the frozen window, pulling the rest one offset earlier.
    sb.update_profile(&emails[0], "Edited");
    let (rest, _) = drain(&src, Some(p1.next_cursor.clone())).await;
    let mut got: BTreeSet<String> = ids(&p1).into_iter().collect();
    got.extend(all_ids(&rest));
    assert_eq!(got, expected);
}

#[tokio::test]
async fn a_replayed_cursor_yields_the_same_event_ids_and_loses_nothing() {
    let sb = sandbox().await;
    let base = now_ms() - 40 * MIN;
    let mut expected = BTreeSet::new();
    for i in 0..7 {
        expected.insert(sb.subscribe(
            &format!("r{i}@example.com"),
            "R",
            Some(base + i * SEC),
            "subscribed",
        ));
    }
    let src = source(&sb, json!({"page_size": 3}));
    let p1 = src.poll(None).await.unwrap();
    assert!(p1.more);
    let p2a = src.poll(Some(&p1.next_cursor)).await.unwrap();
    let p2b = src.poll(Some(&p1.next_cursor)).await.unwrap();
    assert_eq!(ids(&p2a), ids(&p2b));
    assert_eq!(p2a.next_cursor, p2b.next_cursor);
    let (rest, _) = drain(&src, Some(p2b.next_cursor.clone())).await;
    let mut got: BTreeSet<String> = ids(&p1).into_iter().collect();
    got.extend(ids(&p2b));
    got.extend(all_ids(&rest));
    assert_eq!(got, expected);
    let (again, _) = drain(&src, Some("{\"v\":1,\"list_id\":\"other\"}".to_owned())).await;
    assert_eq!(
        all_ids(&again),
        expected,
        "another audience's cursor starts over"
    );
    let calls = sb.stats().api_calls;
    assert!(calls >= 6, "{calls}");
}

#[tokio::test]
async fn every_error_class_is_reported_for_the_engine() {
    let sb = sandbox().await;
    sb.subscribe("e@example.com", "E", Some(now_ms() - MIN), "subscribed");
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
            assert!(message.contains("10 simultaneous connections"), "{message}");
            assert_eq!(retry_after, client::THROTTLE_WAIT);
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
    assert!(matches!(
        src.poll(None).await,
        Err(CallError::Transient { .. })
    ));
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

    let bad_key = source(&sb, json!({"api_key": "ffffffffffffffff-us1"}));
    match bad_key.poll(None).await {
        Err(CallError::Auth {
            status: 401,
            message,
        }) => {
            assert!(message.contains("API Key Invalid"), "{message}");
            assert!(!message.contains("ffffffffffffffff"));
        }
        other => panic!("{other:?}"),
    }
    let wrong_list = source(&sb, json!({"list_id": "zzzzzzzzzz"}));
    match wrong_list.poll(None).await {
        Err(CallError::Permanent { message }) => {
            assert!(message.contains("Resource Not Found"), "{message}")
        }
        other => panic!("{other:?}"),
    }
    let oauth = source(
        &sb,
        json!({"api_key": null, "access_token": OAUTH_TOKEN, "dc": "us1"}),
    );
    assert_eq!(oauth.poll(None).await.unwrap().leads.len(), 1);
    assert_eq!(
        sb.stats().api_calls,
        9,
        "one call per poll, no retries of its own"
    );
}

#[tokio::test]
async fn more_than_ten_simultaneous_connections_are_throttled() {
    let sb = sandbox().await;
    sb.subscribe("c@example.com", "C", Some(now_ms() - MIN), "subscribed");
    sb.set_faults(CrmFaults {
        delay_ms: 400,
        ..Default::default()
    });
    let sources: Vec<Arc<MailchimpSource>> =
        (0..14).map(|_| Arc::new(source(&sb, json!({})))).collect();
    let tasks: Vec<_> = sources
        .into_iter()
        .map(|s| tokio::spawn(async move { s.poll(None).await }))
        .collect();
    let mut limited = 0;
    let mut ok = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => ok += 1,
            Err(CallError::RateLimited { .. }) => limited += 1,
            Err(other) => panic!("{other:?}"),
        }
    }
    assert!(limited >= 1 && ok >= 1, "ok {ok}, limited {limited}");
    assert_eq!(sb.stats().rate_limited, limited);
}

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
    let sb = start_source("mailchimp")
        .await
        .unwrap()
        .expect("mailchimp sandbox");
    assert_eq!(sb.kind(), "mailchimp");
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
        .polled_source(ConnectorContext::in_memory("mc"))
        .unwrap()
        .expect("a polled source");
    assert_eq!(src.interval(), Duration::from_millis(200));
    let id = sb.add_lead("suite@example.com", "Suite", None);
    // A member of the current second is read once that second is over (the window's upper bound
    // stays a second behind): poll like the daemon does until it shows up.
    let mut cursor: Option<String> = None;
    let mut seen = Vec::new();
    for _ in 0..20 {
        let page = src.poll(cursor.as_deref()).await.unwrap();
        seen.extend(ids(&page));
        cursor = Some(page.next_cursor);
        if seen.contains(&id) {
            break;
        }
        tokio::time::sleep(src.interval()).await;
    }
    assert!(seen.contains(&id));
    assert!(sb.stats().api_calls >= 1);
}

struct XorShift(u64);
impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % u64::try_from(n.max(1)).unwrap()).unwrap()
    }
}

#[test]
fn arbitrary_and_mutated_answers_never_panic() {
    let realistic = serde_json::to_vec(&json!({
        "members": [{
            "id": "0cba00ca3da1b283a57287bcceb17e35", "email_address": "a@b.co", "status": "subscribed",
            "merge_fields": {"FNAME": "A", "ADDRESS": {"country": "US", "city": ""}, "UTM_CAMP": "x"},
            "timestamp_signup": "2026-03-01T10:00:00+00:00", "timestamp_opt": "",
            "last_changed": "2026-03-02T08:00:00+00:00", "tags": [{"id": 1, "name": "t"}],
            "marketing_permissions": [{"text": "Email", "enabled": true}]
        }],
        "list_id": "a1b2c3d4e5", "total_items": 1, "_links": []
    }))
    .unwrap();
    let mut rng = XorShift(0x2545_f491_4f6c_dd1d);
    let headers = reqwest::header::HeaderMap::new();
    for round in 0..4000 {
        let mut bytes = realistic.clone();
        match round % 4 {
            0 => {
                for _ in 0..=rng.below(8) {
                    let i = rng.below(bytes.len());
                    bytes[i] = u8::try_from(rng.next() & 0xff).unwrap();
                }
            }
            1 => {
                let cut = rng.below(bytes.len());
                bytes.truncate(cut);
            }
            2 => {
                let len = rng.below(64);
                bytes = (0..len)
                    .map(|_| u8::try_from(rng.next() & 0xff).unwrap())
                    .collect();
            }
            _ => {
                let s = String::from_utf8_lossy(&bytes).into_owned();
                let pick = [
                    "\"a@b.co\"",
                    "\"subscribed\"",
                    "\"US\"",
                    "1",
                    "[]",
                    "{}",
                    "null",
                    "\"2026-03-02T08:00:00+00:00\"",
                    "true",
                ];
                let from = pick[rng.below(pick.len())];
                let to = pick[rng.below(pick.len())];
                bytes = s.replacen(from, to, 1).into_bytes();
            }
        }
        if let Ok(page) = serde_json::from_slice::<wire::MembersPage>(&bytes) {
            for m in &page.members {
                let _ = mapping::map_member(m, "l");
            }
        }
        if let Ok(v) = serde_json::from_slice::<Value>(&bytes) {
            let _ = mapping::map_member(&v, "l");
            if let Some(ms) = v.get("members").and_then(Value::as_array) {
                for m in ms {
                    let _ = mapping::map_member(m, "l");
                }
            }
        }
        for status in [400u16, 401, 403, 404, 429, 500, 503] {
            let status = reqwest::StatusCode::from_u16(status).unwrap();
            let _ = client::classify(status, &headers, &bytes);
        }
    }
}

#[tokio::test]
async fn garbage_from_the_server_is_a_transient_error_not_a_panic() {
    use axum::{Router, routing::get};
    let bodies: Vec<&'static [u8]> = vec![
        b"",
        b"<html>maintenance</html>",
        b"{\"members\": 5}",
        b"{\"members\": [], \"total_items\": -3}",
        b"{\"members\": [null, 1, \"x\", {\"id\": 7}, {\"id\": \"h\", \"last_changed\": \"yesterday\"}]}",
        b"\xff\xfe\x00",
    ];
    for body in bodies {
        let app = Router::new().route("/3.0/lists/{id}/members", get(move || async move { body }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        let cfg: MailchimpConfig = serde_json::from_value(json!({
            "api_key": "k-us1", "list_id": "abc", "base_url": format!("http://{addr}/3.0")
        }))
        .unwrap();
        let src = MailchimpSource::new(&cfg, ConnectorContext::in_memory("mc")).unwrap();
        match src.poll(None).await {
            Ok(page) => assert!(page.leads.is_empty()),
            Err(CallError::Transient { message, .. }) => {
                assert!(
                    !message.contains("maintenance"),
                    "no body text on a 200: {message}"
                )
            }
            Err(other) => panic!("{other:?}"),
        }
        server.abort();
    }
}
