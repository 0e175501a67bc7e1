//! The webhook HTTP contract over real loopback HTTP: what a sender gets back for every kind of
//! submission, and that a 202 means the lead is stored and on its way.

mod common;

use std::time::Duration;

use common::{Harness, SECRET};
use serde_json::{Value, json};
use tandem::store::Store;
use tandem_connectors::webhook::sign_hex;

#[tokio::test]
async fn a_202_means_stored_and_the_lead_reaches_hubspot() {
    let h = Harness::start().await;
    let (status, body) = h
        .post_lead(json!({"email": "Ann@Example.com", "first_name": "Ann", "plan": "pro"}))
        .await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["duplicate"], json!(false));
    let lead_id = body["lead_id"].as_str().unwrap().to_owned();
    // The lead is in the store the moment the 202 is out.
    let leads = h
        .daemon()
        .store()
        .leads_since(vec!["website".into()], 0)
        .await
        .unwrap();
    assert_eq!(leads.len(), 1);
    assert_eq!(leads[0].id, lead_id);
    let stored: Value = serde_json::from_str(&leads[0].lead_json).unwrap();
    assert_eq!(
        stored["custom"]["plan"],
        json!("pro"),
        "unknown fields are kept as custom fields"
    );
    h.drain(Duration::from_secs(10)).await;
    let c = h
        .sandbox
        .contact_by_email("ann@example.com")
        .expect("contact created");
    assert_eq!(c.properties["firstname"], "Ann");
    assert_eq!(c.properties["lifecyclestage"], "lead");
}

#[tokio::test]
async fn form_urlencoded_bodies_are_leads_too() {
    let h = Harness::start().await;
    let r = h
        .http
        .post(h.url("/hooks/website"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("email=bo%40example.com&first_name=Bo&phone=%28415%29+555-2671")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    h.drain(Duration::from_secs(10)).await;
    let c = h.sandbox.contact_by_email("bo@example.com").unwrap();
    assert_eq!(
        c.properties["phone"], "+14155552671",
        "phone normalised to E.164 with the connector's region"
    );
}

#[tokio::test]
async fn malformed_bodies_are_refused_with_the_reason_and_nothing_is_stored() {
    let h = Harness::start().await;
    let post = |ct: &'static str, body: &'static str| {
        h.http
            .post(h.url("/hooks/website"))
            .header("content-type", ct)
            .body(body)
            .send()
    };
    let cases: &[(&str, &str, u16, &str)] = &[
        ("application/json", "{\"email\": ", 400, "malformed_body"),
        ("application/json", "[1,2]", 400, "malformed_body"),
        ("application/json", "", 400, "malformed_body"),
        (
            "application/json",
            "{\"email\": \"nope\"}",
            400,
            "invalid_field",
        ),
        (
            "application/json",
            "{\"first_name\": \"NoContact\"}",
            400,
            "invalid_field",
        ),
        ("text/plain", "email=a@b.co", 415, "unsupported_media_type"),
        ("application/xml", "<lead/>", 415, "unsupported_media_type"),
    ];
    for (ct, body, want, code) in cases {
        let r = post(ct, body).await.unwrap();
        assert_eq!(r.status().as_u16(), *want, "{ct} {body:?}");
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["error"], json!(code), "{ct} {body:?}: {v}");
        assert!(v["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
    let (_, v) = h.post_lead(json!({"email": "nope"})).await;
    assert_eq!(v["field"], json!("email"), "the 400 names the field");
    assert!(
        h.daemon()
            .store()
            .leads_since(vec!["website".into()], 0)
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn oversized_bodies_get_413_with_or_without_a_content_length() {
    let h = Harness::start_with(
        Default::default(),
        "[daemon.limits]\nmax_body_bytes = 2048",
        "",
    )
    .await;
    let big = format!("{{\"email\":\"a@b.co\",\"pad\":\"{}\"}}", "x".repeat(4096));
    let r = h
        .http
        .post(h.url("/hooks/website"))
        .header("content-type", "application/json")
        .body(big.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    // Chunked: no Content-Length to refuse up front; the limit applies while reading.
    let head = "POST /hooks/website HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n";
    let mut req = head.as_bytes().to_vec();
    for chunk in big.as_bytes().chunks(1000) {
        req.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        req.extend_from_slice(chunk);
        req.extend_from_slice(b"\r\n");
    }
    req.extend_from_slice(b"0\r\n\r\n");
    let answer = common::raw_http(h.daemon().addr, &req).await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("too_large"), "{answer}");
}

#[tokio::test]
async fn signatures_are_checked_on_the_raw_body() {
    let h = Harness::start().await;
    let body = r#"{"email":"sig@example.com"}"#;
    let send = |sig: Option<String>| {
        let mut r = h
            .http
            .post(h.url("/hooks/signed"))
            .header("content-type", "application/json")
            .body(body);
        if let Some(s) = sig {
            r = r.header("x-tandem-signature", s);
        }
        r.send()
    };
    assert_eq!(send(None).await.unwrap().status(), 401);
    assert_eq!(send(Some("sha256=00".into())).await.unwrap().status(), 401);
    assert_eq!(
        send(Some(sign_hex(b"wrong", body.as_bytes())))
            .await
            .unwrap()
            .status(),
        401
    );
    let ok = send(Some(sign_hex(SECRET.as_bytes(), body.as_bytes())))
        .await
        .unwrap();
    assert_eq!(ok.status(), 202);
}

#[tokio::test]
async fn idempotency_keys_return_the_first_lead_and_store_nothing_new() {
    let h = Harness::start().await;
    let post = || {
        h.http
            .post(h.url("/hooks/website"))
            .header("idempotency-key", "form-42")
            .json(&json!({"email": "idem@example.com"}))
            .send()
    };
    let first: Value = post().await.unwrap().json().await.unwrap();
    let second = post().await.unwrap();
    assert_eq!(second.status(), 202);
    let second: Value = second.json().await.unwrap();
    assert_eq!(
        (second["lead_id"].clone(), second["duplicate"].clone()),
        (first["lead_id"].clone(), json!(true))
    );
    assert_eq!(
        h.daemon()
            .store()
            .leads_since(vec!["website".into()], 0)
            .await
            .unwrap()
            .len(),
        1
    );
    let long = "k".repeat(300);
    let r = h
        .http
        .post(h.url("/hooks/website"))
        .header("idempotency-key", long)
        .json(&json!({"email": "a@b.co"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
}

#[tokio::test]
async fn unknown_connectors_and_non_sources_are_404() {
    let h = Harness::start().await;
    for path in ["/hooks/nope", "/hooks/hubspot"] {
        let r = h
            .http
            .post(h.url(path))
            .json(&json!({"email": "a@b.co"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 404, "{path}");
    }
    let r = h.http.get(h.url("/hooks/website")).send().await.unwrap();
    assert_eq!(r.status(), 405, "the generic preset has no handshake");
}

#[tokio::test]
async fn health_readiness_and_metrics() {
    let h = Harness::start().await;
    assert_eq!(
        h.http.get(h.url("/healthz")).send().await.unwrap().status(),
        200
    );
    assert_eq!(
        h.http.get(h.url("/readyz")).send().await.unwrap().status(),
        200
    );
    h.post_lead(json!({"email": "m@example.com"})).await;
    h.post_lead(json!({"email": "bad"})).await;
    h.drain(Duration::from_secs(10)).await;
    let text = h
        .http
        .get(h.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for needle in [
        "tandem_leads_received_total",
        "tandem_leads_rejected_total",
        "reason=\"invalid_field\"",
        "tandem_deliveries_total",
        "tandem_queue_pending",
        "tandem_queue_oldest_pending_age_seconds",
        "tandem_batch_size",
        "tandem_vendor_calls_total",
        "tandem_intake_seconds_bucket",
        "tandem_delivery_latency_seconds_bucket",
    ] {
        assert!(text.contains(needle), "/metrics lacks {needle}");
    }
    assert!(
        !text.contains("m@example.com"),
        "no personal data in metrics"
    );
}

#[tokio::test]
async fn the_admin_api_needs_the_bearer_token() {
    let h = Harness::start().await;
    let r = h.http.get(h.url("/api/status")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let r = h
        .http
        .get(h.url("/api/status"))
        .bearer_auth("admin-secreT")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    // Auth comes before the body: a stranger learns nothing, not even that the JSON was bad.
    for path in ["/api/replay", "/api/dlq/retry", "/api/dlq/drop"] {
        let r = h
            .http
            .post(h.url(path))
            .header("content-type", "text/plain")
            .body("not json")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401, "{path}");
    }
    h.post_lead(json!({"email": "s@example.com"})).await;
    h.drain(Duration::from_secs(10)).await;
    let v: Value = h
        .http
        .get(h.url("/api/status"))
        .bearer_auth("admin-secret")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["destinations"][0]["destination"], json!("hubspot"));
    assert_eq!(v["destinations"][0]["done"], json!(1));
}

#[tokio::test]
async fn during_shutdown_intake_answers_503_while_in_flight_calls_finish() {
    let mut h = Harness::start().await;
    h.sandbox
        .set_faults(tandem_connectors::hubspot::sandbox::Faults {
            delay_ms: 1500,
            ..Default::default()
        })
        .unwrap();
    h.post_lead(json!({"email": "slow@example.com"})).await;
    // Counted on arrival, before the sandbox's delay: the call is really in flight.
    common::wait_until(
        Duration::from_secs(5),
        "the vendor call to be in flight",
        || async { (h.sandbox.stats().requests >= 1).then_some(()) },
    )
    .await;
    let daemon = h.daemon.take().unwrap();
    let url = format!("http://{}/hooks/website", daemon.addr);
    let store = daemon.store();
    let stopping = tokio::spawn(daemon.shutdown());
    tokio::time::sleep(Duration::from_millis(200)).await;
    let r = h
        .http
        .post(&url)
        .json(&json!({"email": "late@example.com"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    assert!(r.headers().contains_key("retry-after"));
    stopping.await.unwrap();
    // The call in flight finished and was recorded; the late lead was never stored.
    assert_eq!(store.status().await.unwrap()[0].done, 1);
    assert!(h.sandbox.contact_by_email("slow@example.com").is_some());
    assert_eq!(
        store
            .leads_since(vec!["website".into()], 0)
            .await
            .unwrap()
            .len(),
        1
    );
}

#[tokio::test]
async fn replay_resends_a_flows_leads_as_updates_never_duplicates() {
    let h = Harness::start().await;
    for i in 0..3 {
        assert_eq!(
            h.post_lead(json!({"email": format!("r{i}@example.com")}))
                .await
                .0,
            202
        );
    }
    h.drain(Duration::from_secs(10)).await;
    let replay = |body: Value| {
        h.http
            .post(h.url("/api/replay"))
            .bearer_auth("admin-secret")
            .json(&body)
            .send()
    };
    let r = replay(json!({"flow": "inbound", "since": "1h"}))
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["enqueued"], json!(3));
    let s = h.drain(Duration::from_secs(10)).await;
    assert_eq!(s[0].done, 6);
    let contacts = h.sandbox.contacts();
    assert_eq!(contacts.len(), 3, "a replay updates the same contacts");
    assert!(contacts.iter().all(|c| c.writes == 2));
    let r = replay(json!({"flow": "nope", "since": "1h"}))
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let r = replay(json!({"flow": "inbound", "since": "yesterday-ish"}))
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let future = replay(json!({"flow": "inbound", "since": "2999-01-01T00:00:00Z"}))
        .await
        .unwrap();
    assert_eq!(future.json::<Value>().await.unwrap()["enqueued"], json!(0));
}
