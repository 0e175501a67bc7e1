//! The HubSpot connector against its sandbox over real loopback HTTP, and both against HubSpot's
//! published OpenAPI spec.
#![cfg(feature = "sandbox")]

use std::{
    collections::{BTreeMap, HashSet},
    sync::{Arc, Mutex},
    time::Duration,
};

use serde_json::{Value, json};
use tandem_connectors::{
    CallError, ConnectorContext, ItemResult, LeadSink, OnConflict, SinkRecord, TokenSet,
    hubspot::{
        HubspotClient, HubspotConfig,
        sandbox::{Faults, HubspotSandbox, SandboxOptions, ScriptStep},
    },
    sandbox::CrmFaults,
};

const TOKEN: &str = "pat-test-token";

fn options() -> SandboxOptions {
    SandboxOptions {
        token: TOKEN.to_owned(),
        seed: Some(42),
        ..Default::default()
    }
}

async fn sandbox(options: SandboxOptions) -> HubspotSandbox {
    HubspotSandbox::start("127.0.0.1:0".parse().unwrap(), options)
        .await
        .expect("sandbox binds a loopback port")
}

fn client_with(sb: &HubspotSandbox, extra: Value) -> HubspotClient {
    let mut cfg = json!({"token": TOKEN, "base_url": sb.base_url(), "timeout": "5s"});
    if let (Some(cfg), Some(extra)) = (cfg.as_object_mut(), extra.as_object()) {
        cfg.extend(extra.clone());
    }
    let cfg: HubspotConfig = serde_json::from_value(cfg).expect("config");
    assert!(cfg.validate().is_empty(), "{:?}", cfg.validate());
    HubspotClient::new(
        &cfg,
        tandem_connectors::ConnectorContext::in_memory("hubspot"),
    )
    .expect("client")
}

fn client(sb: &HubspotSandbox) -> HubspotClient {
    client_with(sb, json!({}))
}

fn rec(delivery_id: i64, props: &[(&str, &str)]) -> SinkRecord {
    SinkRecord {
        remote_id: None,
        conflict: Default::default(),
        delivery_id,
        properties: props
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    }
}

fn lead(n: i64) -> SinkRecord {
    rec(
        n,
        &[
            ("email", &format!("lead{n}@example.com")),
            ("firstname", "Lead"),
            ("lifecyclestage", "lead"),
        ],
    )
}

fn done(item: &ItemResult) -> (String, bool) {
    match item {
        ItemResult::Done { remote_id, created } => (remote_id.clone(), *created),
        other => panic!("expected Done, got {other:?}"),
    }
}

async fn raw_post(sb: &HubspotSandbox, path: &str, body: Value) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!("{}{path}", sb.base_url()))
        .bearer_auth(TOKEN)
        .json(&body)
        .send()
        .await
        .expect("sandbox answers")
}

#[tokio::test]
async fn create_then_update_the_same_email_is_one_contact() {
    let sb = sandbox(options()).await;
    let c = client(&sb);
    let first = c
        .upsert_people(&[rec(
            1,
            &[("email", "Jane@Example.com"), ("firstname", "Jane")],
        )])
        .await
        .expect("first call");
    let (id, created) = done(&first.items[0]);
    assert!(created);
    let second = c
        .upsert_people(&[rec(
            2,
            &[("email", "jane@example.com"), ("lastname", "Doe")],
        )])
        .await
        .expect("second call");
    assert_eq!(done(&second.items[0]), (id.clone(), false));

    let contacts = sb.contacts();
    assert_eq!(contacts.len(), 1);
    let jane = sb.contact_by_email("JANE@example.com").expect("stored");
    assert_eq!(jane.id, id);
    assert_eq!(jane.writes, 2);
    assert_eq!(jane.properties["email"], "jane@example.com");
    assert_eq!(jane.properties["firstname"], "Jane");
    assert_eq!(jane.properties["lastname"], "Doe");
    assert_eq!(sb.stats().upsert_calls, 2);
}

#[tokio::test]
async fn a_lead_without_email_is_refused_locally_and_the_rest_go_through() {
    let sb = sandbox(options()).await;
    let c = client(&sb);
    let out = c
        .upsert_people(&[lead(1), rec(2, &[("firstname", "No email")]), lead(3)])
        .await
        .expect("call");
    assert_eq!(out.items.len(), 3);
    done(&out.items[0]);
    assert!(
        matches!(&out.items[1], ItemResult::Permanent { message } if message.contains("no email")),
        "{:?}",
        out.items[1]
    );
    done(&out.items[2]);
    assert_eq!(sb.stats().batch_sizes, vec![2]);

    // Nothing sendable: no call at all.
    let out = c
        .upsert_people(&[rec(4, &[("firstname", "x")])])
        .await
        .expect("no call");
    assert!(matches!(out.items[0], ItemResult::Permanent { .. }));
    assert_eq!(sb.stats().upsert_calls, 1);
}

#[tokio::test]
async fn a_configured_id_property_keys_leads_without_email() {
    let sb = sandbox(SandboxOptions {
        unique_properties: vec!["crm_key".into()],
        ..options()
    })
    .await;
    let c = client_with(&sb, json!({"id_property": "crm_key"}));
    let out = c
        .upsert_people(&[rec(1, &[("crm_key", "K-1"), ("phone", "+15555550100")])])
        .await
        .expect("call");
    let (id, created) = done(&out.items[0]);
    assert!(created);
    let out = c
        .upsert_people(&[rec(2, &[("crm_key", "K-1"), ("firstname", "Kay")])])
        .await
        .expect("call");
    assert_eq!(done(&out.items[0]), (id, false));
    let contacts = sb.contacts();
    assert_eq!(contacts.len(), 1);
    assert_eq!(contacts[0].properties["crm_key"], "K-1");
    assert_eq!(contacts[0].properties["firstname"], "Kay");
}

#[tokio::test]
async fn partial_failures_map_to_the_right_records() {
    let sb = sandbox(options()).await;
    sb.set_faults(Faults {
        item_failure_rate: 0.5,
        seed: Some(7),
        ..Default::default()
    })
    .unwrap();
    let batch: Vec<SinkRecord> = (1..=20).map(lead).collect();
    let out = client(&sb)
        .upsert_people(&batch)
        .await
        .expect("207 is a success");
    assert_eq!(out.items.len(), 20);
    let mut failed = 0;
    for (record, item) in batch.iter().zip(&out.items) {
        let stored = sb.contact_by_email(&record.properties["email"]);
        match item {
            ItemResult::Done { remote_id, created } => {
                assert!(created);
                assert_eq!(&stored.expect("done means stored").id, remote_id);
            }
            ItemResult::Permanent { message } => {
                failed += 1;
                assert!(message.contains("VALIDATION_ERROR"), "{message}");
                assert!(stored.is_none(), "a failed input was not applied");
            }
            other => panic!("{other:?}"),
        }
    }
    assert!(failed > 0 && failed < 20, "seeded dice fail some: {failed}");
    assert_eq!(sb.contacts().len(), 20 - failed);
}

#[tokio::test]
async fn throttling_reports_retry_after_or_the_interval() {
    let sb = sandbox(options()).await;
    sb.set_faults(Faults {
        script: vec![ScriptStep {
            retry_after: Some(7),
            ..ScriptStep::status(429, 1)
        }],
        ..Default::default()
    })
    .unwrap();
    let c = client(&sb);
    match c.upsert_people(&[lead(1)]).await {
        Err(CallError::RateLimited {
            retry_after,
            message,
        }) => {
            assert_eq!(retry_after, Duration::from_secs(7));
            assert!(message.contains("ten_secondly_rolling"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    assert!(sb.contacts().is_empty());
    done(
        &c.upsert_people(&[lead(1)])
            .await
            .expect("script used up")
            .items[0],
    );

    // Without Retry-After the client falls back to X-HubSpot-RateLimit-Interval-Milliseconds.
    let sb = sandbox(SandboxOptions {
        retry_after_header: false,
        rate_limit: 1,
        rate_window: Duration::from_millis(3000),
        ..options()
    })
    .await;
    let c = client(&sb);
    c.upsert_people(&[lead(1)]).await.expect("first fits");
    assert_eq!(
        c.upsert_people(&[lead(2)]).await.unwrap_err(),
        CallError::RateLimited {
            message: "HubSpot 429: You have reached your ten_secondly_rolling limit.".into(),
            retry_after: Duration::from_millis(3000),
        }
        .clone()
    );
}

#[tokio::test]
async fn the_rolling_window_admits_exactly_the_limit() {
    let sb = sandbox(SandboxOptions {
        rate_limit: 3,
        rate_window: Duration::from_millis(800),
        ..options()
    })
    .await;
    let c = client(&sb);
    for n in 1..=2 {
        let out = c.upsert_people(&[lead(n)]).await.expect("within limit");
        assert_eq!(out.pause_for, None);
    }
    let third = c.upsert_people(&[lead(3)]).await.expect("last in window");
    assert_eq!(
        third.pause_for,
        Some(Duration::from_millis(800)),
        "Remaining: 0 tells the engine to wait"
    );
    match c.upsert_people(&[lead(4)]).await {
        Err(CallError::RateLimited { retry_after, .. }) => {
            assert_eq!(
                retry_after,
                Duration::from_secs(1),
                "rounded up to whole seconds"
            )
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(sb.stats().rate_limited, 1);
    tokio::time::sleep(Duration::from_millis(850)).await;
    done(
        &c.upsert_people(&[lead(4)])
            .await
            .expect("window rolled")
            .items[0],
    );
    assert_eq!(sb.contacts().len(), 4);
}

#[tokio::test]
async fn server_errors_are_transient() {
    let sb = sandbox(options()).await;
    sb.set_faults(Faults {
        script: vec![
            ScriptStep::status(502, 1),
            ScriptStep {
                retry_after: Some(4),
                ..ScriptStep::status(503, 1)
            },
        ],
        ..Default::default()
    })
    .unwrap();
    let c = client(&sb);
    assert!(matches!(
        c.upsert_people(&[lead(1)]).await,
        Err(CallError::Transient {
            retry_after: None,
            ..
        })
    ));
    assert!(matches!(
        c.upsert_people(&[lead(1)]).await,
        Err(CallError::Transient { retry_after: Some(d), .. }) if d == Duration::from_secs(4)
    ));
    sb.set_faults(Faults {
        error_rate: 1.0,
        error_status: Some(504),
        ..Default::default()
    })
    .unwrap();
    match c.upsert_people(&[lead(1)]).await {
        Err(CallError::Transient { message, .. }) => assert!(message.contains("504"), "{message}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(sb.stats().server_errors, 3);
    assert!(sb.contacts().is_empty());
}

#[tokio::test]
async fn a_wrong_token_is_an_auth_error() {
    let sb = sandbox(options()).await;
    let cfg: HubspotConfig =
        serde_json::from_value(json!({"token": "pat-wrong", "base_url": sb.base_url()})).unwrap();
    match HubspotClient::new(
        &cfg,
        tandem_connectors::ConnectorContext::in_memory("hubspot"),
    )
    .unwrap()
    .upsert_people(&[lead(1)])
    .await
    {
        Err(CallError::Auth { status, message }) => {
            assert_eq!(status, 401);
            assert!(
                message.contains("Authentication credentials not found"),
                "{message}"
            );
            assert!(!message.contains("pat-wrong"));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(sb.stats().unauthorized, 1);
}

#[tokio::test]
async fn whole_batch_validation_errors_are_permanent_with_hubspots_message() {
    let sb = sandbox(options()).await;
    let c = client(&sb);
    match c
        .upsert_people(&[
            lead(1),
            rec(
                2,
                &[("email", "x@example.com"), ("favourite_colour", "teal")],
            ),
        ])
        .await
    {
        Err(CallError::Permanent { message }) => {
            assert!(message.contains("VALIDATION_ERROR"), "{message}");
            assert!(
                message.contains("Property values were not valid"),
                "{message}"
            );
            assert!(
                message.contains(r#"Property \"favourite_colour\" does not exist"#)
                    || message.contains(r#"Property "favourite_colour" does not exist"#),
                "{message}"
            );
        }
        other => panic!("{other:?}"),
    }
    match c
        .upsert_people(&[rec(3, &[("email", "not-an-email")])])
        .await
    {
        Err(CallError::Permanent { message }) => {
            assert!(message.contains("INVALID_EMAIL"), "{message}")
        }
        other => panic!("{other:?}"),
    }
    assert!(sb.contacts().is_empty(), "a refused batch writes nothing");
}

#[tokio::test]
async fn a_dropped_connection_is_transient_and_the_retry_is_an_update() {
    let sb = sandbox(options()).await;
    sb.set_faults(Faults {
        script: vec![ScriptStep::drop_after_write(1)],
        ..Default::default()
    })
    .unwrap();
    let c = client(&sb);
    match c.upsert_people(&[lead(1)]).await {
        Err(CallError::Transient { .. }) => {}
        other => panic!("{other:?}"),
    }
    assert_eq!(sb.stats().drops, 1);
    let stored = sb
        .contact_by_email("lead1@example.com")
        .expect("the write happened");
    let retry = c.upsert_people(&[lead(1)]).await.expect("retry");
    assert_eq!(done(&retry.items[0]), (stored.id, false));
    assert_eq!(sb.contacts().len(), 1);
}

#[tokio::test]
async fn a_slow_answer_times_out_as_transient() {
    let sb = sandbox(options()).await;
    sb.set_faults(Faults {
        delay_ms: 1500,
        ..Default::default()
    })
    .unwrap();
    let c = client_with(&sb, json!({"timeout": "200ms"}));
    match c.upsert_people(&[lead(1)]).await {
        Err(CallError::Transient { message, .. }) => {
            assert!(message.contains("did not answer within 200ms"), "{message}")
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn the_sandbox_refuses_oversized_and_duplicate_batches_like_hubspot() {
    let sb = sandbox(options()).await;
    let inputs: Vec<Value> = (0..101)
        .map(
            |n| json!({"idProperty": "email", "id": format!("p{n}@example.com"), "properties": {}}),
        )
        .collect();
    let r = raw_post(
        &sb,
        "/crm/v3/objects/contacts/batch/upsert",
        json!({"inputs": inputs}),
    )
    .await;
    assert_eq!(r.status(), 400);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["category"], "VALIDATION_ERROR");
    assert_eq!(body["status"], "error");
    assert!(body["message"].as_str().unwrap().contains("100"));

    let dup = json!({"inputs": [
        {"idProperty": "email", "id": "a@example.com", "properties": {}},
        {"idProperty": "email", "id": "A@example.com", "properties": {}}]});
    let r = raw_post(&sb, "/crm/v3/objects/contacts/batch/upsert", dup).await;
    assert_eq!(r.status(), 400);
    let body: Value = r.json().await.unwrap();
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .starts_with("Duplicate IDs found in batch input")
    );

    let missing = json!({"inputs": [{"idProperty": "email", "properties": {}}]});
    let r = raw_post(&sb, "/crm/v3/objects/contacts/batch/upsert", missing).await;
    assert_eq!(r.status(), 400);
    let body: Value = r.json().await.unwrap();
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("required attributes are not set [id]")
    );
    assert!(sb.contacts().is_empty());
}

#[tokio::test]
async fn batch_create_of_an_existing_email_is_a_409_conflict() {
    let sb = sandbox(options()).await;
    let out = client(&sb).upsert_people(&[lead(1)]).await.unwrap();
    let (id, _) = done(&out.items[0]);
    let r = raw_post(
        &sb,
        "/crm/v3/objects/contacts/batch/create",
        json!({"inputs": [
            {"properties": {"email": "new@example.com"}, "associations": []},
            {"properties": {"email": "LEAD1@example.com"}, "associations": []}]}),
    )
    .await;
    assert_eq!(r.status(), 409);
    let body: Value = r.json().await.unwrap();
    assert_eq!(
        body["message"],
        format!("Contact already exists. Existing ID: {id}")
    );
    assert_eq!(body["category"], "CONFLICT");
    assert_eq!(body["correlationId"].as_str().unwrap().len(), 36);
    assert_eq!(
        sb.contacts().len(),
        1,
        "a conflicting batch creates nothing"
    );

    let r = raw_post(
        &sb,
        "/crm/v3/objects/contacts/batch/create",
        json!({"inputs": [{"properties": {"email": "new@example.com"}, "associations": []}]}),
    )
    .await;
    assert_eq!(r.status(), 201);
    assert_eq!(sb.contacts().len(), 2);
}

#[tokio::test]
async fn list_pages_with_the_after_cursor_and_get_reads_by_email() {
    let sb = sandbox(options()).await;
    let batch: Vec<SinkRecord> = (1..=25).map(lead).collect();
    client(&sb).upsert_people(&batch).await.unwrap();
    let http = reqwest::Client::new();
    let mut seen = HashSet::new();
    let mut after: Option<String> = None;
    let mut pages = 0;
    loop {
        let mut url = format!("{}/crm/v3/objects/contacts?limit=10", sb.base_url());
        if let Some(a) = &after {
            url.push_str(&format!("&after={a}"));
        }
        let page: Value = http
            .get(url)
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        pages += 1;
        for r in page["results"].as_array().unwrap() {
            assert!(seen.insert(r["id"].as_str().unwrap().to_owned()));
            assert!(
                r["properties"]["email"]
                    .as_str()
                    .unwrap()
                    .ends_with("@example.com")
            );
        }
        match page["paging"]["next"]["after"].as_str() {
            Some(a) => after = Some(a.to_owned()),
            None => break,
        }
    }
    assert_eq!((pages, seen.len()), (3, 25));

    let one = http
        .get(format!(
            "{}/crm/v3/objects/contacts/LEAD7@example.com?idProperty=email&properties=firstname",
            sb.base_url()
        ))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(one.status(), 200);
    let one: Value = one.json().await.unwrap();
    assert_eq!(one["properties"]["firstname"], "Lead");
    let missing = http
        .get(format!("{}/crm/v3/objects/contacts/999999", sb.base_url()))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    let body: Value = missing.json().await.unwrap();
    assert_eq!(body["category"], "OBJECT_NOT_FOUND");

    let read = raw_post(
        &sb,
        "/crm/v3/objects/contacts/batch/read",
        json!({"idProperty": "email", "inputs": [{"id": "lead3@example.com"}, {"id": "ghost@example.com"}],
               "properties": ["email"], "propertiesWithHistory": []}),
    )
    .await;
    assert_eq!(read.status(), 207);
    let read: Value = read.json().await.unwrap();
    assert_eq!(read["results"].as_array().unwrap().len(), 1);
    assert_eq!(read["errors"][0]["context"]["ids"][0], "ghost@example.com");
}

#[tokio::test]
async fn http_inspection_and_fault_endpoints_and_rate_limit_headers() {
    let sb = sandbox(SandboxOptions {
        rate_limit: 50,
        ..options()
    })
    .await;
    let http = reqwest::Client::new();
    let set = http
        .post(format!("{}/__sandbox/faults", sb.base_url()))
        .json(&json!({"script": [{"times": 1, "status": 503}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(set.status(), 200);
    let bad = http
        .post(format!("{}/__sandbox/faults", sb.base_url()))
        .json(&json!({"error_rate": 2.0}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);

    let body = json!({"inputs": [{"idProperty": "email", "id": "v@example.com", "properties": {"firstname": "V"}}]});
    let r = raw_post(
        &sb,
        "/crm/objects/2026-03/contacts/batch/upsert",
        body.clone(),
    )
    .await;
    assert_eq!(r.status(), 503, "the scripted answer comes first");
    let r = raw_post(&sb, "/crm/objects/2026-03/contacts/batch/upsert", body).await;
    assert_eq!(r.status(), 200, "the date-versioned path is an alias");
    let h = r.headers();
    assert_eq!(h["x-hubspot-ratelimit-max"], "50");
    assert_eq!(h["x-hubspot-ratelimit-remaining"], "48");
    assert_eq!(h["x-hubspot-ratelimit-interval-milliseconds"], "10000");
    assert_eq!(h["x-hubspot-ratelimit-daily"], "1000000");
    assert_eq!(h["x-hubspot-ratelimit-daily-remaining"], "999998");

    let contacts: Value = http
        .get(format!("{}/__sandbox/contacts", sb.base_url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(contacts[0]["properties"]["email"], "v@example.com");
    let stats: Value = http
        .get(format!("{}/__sandbox/stats", sb.base_url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(stats["upsert_calls"], 2);
    assert_eq!(stats["server_errors"], 1);
    sb.shutdown().await;
}

// ---- checks against HubSpot's published OpenAPI spec ----

/// Headers and JSON body of one request the recording server saw.
type Recorded = (BTreeMap<String, String>, Value);

fn spec() -> Value {
    tandem_connectors::hubspot::sandbox::spec::load("contacts.json")
        .unwrap_or_else(|e| panic!("required for this test: {e}"))
}

fn assert_conforms(spec: &Value, schema_name: &str, value: &Value) {
    check_conforms(spec, schema_name, value, true);
}

fn assert_answer_conforms(spec: &Value, schema_name: &str, value: &Value) {
    check_conforms(spec, schema_name, value, false);
}

/// With `strict`, keys the spec lacks are errors: we notice sending what the spec lacks; answers
/// are checked leniently (HubSpot's bodies carry documented extras the spec omits).
fn check_conforms(spec: &Value, schema_name: &str, value: &Value, strict: bool) {
    let problems = tandem_connectors::hubspot::sandbox::spec::schema_problems(
        spec,
        schema_name,
        value,
        strict,
    );
    assert!(
        problems.is_empty(),
        "{value} does not match {schema_name}: {problems:#?}"
    );
}

#[tokio::test]
async fn the_clients_request_matches_the_spec_schema() {
    let spec = spec();
    let op = &spec["paths"]["/crm/v3/objects/contacts/batch/upsert"]["post"];
    assert!(!op.is_null(), "the spec documents POST batch/upsert");
    let request_schema = &op["requestBody"]["content"]["application/json"]["schema"];
    assert_eq!(
        request_schema["$ref"], "#/components/schemas/BatchInputSimplePublicObjectBatchInputUpsert",
        "the spec's request schema"
    );

    // A recording HubSpot: keep the body, answer a valid empty batch.
    let seen: Arc<Mutex<Vec<Recorded>>> = Arc::default();
    let record = seen.clone();
    let app = axum::Router::new().route(
        "/crm/v3/objects/contacts/batch/upsert",
        axum::routing::post(move |headers: axum::http::HeaderMap, body: axum::body::Bytes| {
            let record = record.clone();
            async move {
                let h = headers
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_owned()))
                    .collect();
                record.lock().unwrap().push((h, serde_json::from_slice(&body).unwrap_or(Value::Null)));
                axum::Json(json!({"status": "COMPLETE", "results": [], "startedAt": "2026-01-01T00:00:00Z", "completedAt": "2026-01-01T00:00:00Z"}))
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.ok() });
    let cfg: HubspotConfig =
        serde_json::from_value(json!({"token": TOKEN, "base_url": base, "id_property": "crm_key"}))
            .unwrap();
    let out = HubspotClient::new(
        &cfg,
        tandem_connectors::ConnectorContext::in_memory("hubspot"),
    )
    .unwrap()
    .upsert_people(&[lead(1), rec(2, &[("crm_key", "K2"), ("firstname", "K")])])
    .await
    .unwrap();
    assert!(
        out.items
            .iter()
            .all(|i| matches!(i, ItemResult::Transient { .. })),
        "no results → retry later"
    );

    let seen = seen.lock().unwrap();
    let (headers, body) = &seen[0];
    assert_eq!(headers["authorization"], format!("Bearer {TOKEN}"));
    assert!(headers["user-agent"].starts_with("tandem/"));
    assert!(headers["content-type"].starts_with("application/json"));
    assert_conforms(&spec, "BatchInputSimplePublicObjectBatchInputUpsert", body);
    assert_eq!(body["inputs"][0]["idProperty"], "email");
    assert_eq!(body["inputs"][0]["id"], "lead1@example.com");
    assert_eq!(body["inputs"][0]["objectWriteTraceId"], "1");
    assert_eq!(body["inputs"][1]["idProperty"], "crm_key");
    assert_eq!(body["inputs"][1]["id"], "K2");
}

#[tokio::test]
async fn the_sandboxs_answers_match_the_spec_schemas() {
    let spec = spec();
    let sb = sandbox(options()).await;
    let input = |n: i64| {
        json!({"idProperty": "email", "id": format!("s{n}@example.com"),
                                "properties": {"firstname": "S"}, "objectWriteTraceId": n.to_string()})
    };
    let ok = raw_post(
        &sb,
        "/crm/v3/objects/contacts/batch/upsert",
        json!({"inputs": [input(1)]}),
    )
    .await;
    assert_eq!(ok.status(), 200);
    assert_conforms(
        &spec,
        "BatchResponseSimplePublicUpsertObject",
        &ok.json().await.unwrap(),
    );

    sb.set_faults(Faults {
        item_failure_rate: 1.0,
        ..Default::default()
    })
    .unwrap();
    let partial = raw_post(
        &sb,
        "/crm/v3/objects/contacts/batch/upsert",
        json!({"inputs": [input(2)]}),
    )
    .await;
    assert_eq!(partial.status(), 207);
    let partial: Value = partial.json().await.unwrap();
    assert_conforms(
        &spec,
        "BatchResponseSimplePublicUpsertObjectWithErrors",
        &partial,
    );
    assert_eq!(
        partial["errors"][0]["context"]["objectWriteTraceId"][0],
        "2"
    );
    sb.set_faults(Faults::default()).unwrap();

    let bad = raw_post(&sb, "/crm/v3/objects/contacts/batch/upsert",
                       json!({"inputs": [{"idProperty": "email", "id": "x@example.com", "properties": {"nope": "1"}}]})).await;
    assert_eq!(bad.status(), 400);
    assert_answer_conforms(&spec, "Error", &bad.json().await.unwrap());

    let list: Value = reqwest::Client::new()
        .get(format!("{}/crm/v3/objects/contacts?limit=1", sb.base_url()))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_conforms(
        &spec,
        "CollectionResponseSimplePublicObjectWithAssociationsForwardPaging",
        &list,
    );
}

// ---- OAuth ----

fn oauth_config(sb: &HubspotSandbox, extra: Value) -> HubspotConfig {
    let o = sb.state().options();
    let mut cfg = json!({"client_id": o.client_id, "client_secret": o.client_secret,
                         "refresh_token": o.refresh_token, "base_url": sb.base_url(), "timeout": "5s"});
    if let (Some(cfg), Some(extra)) = (cfg.as_object_mut(), extra.as_object()) {
        cfg.extend(extra.clone());
    }
    let cfg: HubspotConfig = serde_json::from_value(cfg).expect("config");
    assert!(cfg.validate().is_empty(), "{:?}", cfg.validate());
    cfg
}

fn oauth_client(sb: &HubspotSandbox, ctx: ConnectorContext) -> HubspotClient {
    HubspotClient::new(&oauth_config(sb, json!({})), ctx).expect("client")
}

#[tokio::test]
async fn oauth_refreshes_once_persists_the_token_and_upserts() {
    let sb = sandbox(options()).await;
    let ctx = ConnectorContext::in_memory("hubspot");
    let c = oauth_client(&sb, ctx.clone());
    for n in 1..=3 {
        done(&c.upsert_people(&[lead(n)]).await.expect("upsert").items[0]);
    }
    let stats = sb.stats();
    assert_eq!(
        stats.token_refreshes, 1,
        "one refresh serves every call for 30 minutes"
    );
    assert_eq!((stats.upsert_calls, stats.unauthorized), (3, 0));
    let saved = ctx
        .state
        .load_token()
        .await
        .unwrap()
        .expect("saved in the daemon's state");
    assert!(saved.access_token.starts_with("sandbox-oauth-"));
    assert_eq!(
        saved.refresh_token.as_deref(),
        Some("sandbox-refresh-token")
    );
    assert_eq!(
        saved.extra.get("hub_id").map(String::as_str),
        Some("24681357")
    );
    let ttl = saved.expires_at_ms.unwrap() - jiff::Timestamp::now().as_millisecond();
    assert!(
        (1_790_000..=1_800_000).contains(&ttl),
        "expires_in 1800 s: {ttl}"
    );

    // OAuth calls carry the window headers but no daily ones (no daily cap for OAuth).
    let r = reqwest::Client::new()
        .get(format!("{}/crm/v3/objects/contacts", sb.base_url()))
        .bearer_auth(&saved.access_token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers().contains_key("x-hubspot-ratelimit-remaining"));
    assert!(!r.headers().contains_key("x-hubspot-ratelimit-daily"));
}

#[tokio::test]
async fn an_expired_token_mid_run_is_refreshed_once_for_concurrent_calls() {
    let sb = sandbox(options()).await;
    let c = Arc::new(oauth_client(&sb, ConnectorContext::in_memory("hubspot")));
    done(&c.upsert_people(&[lead(0)]).await.unwrap().items[0]);
    sb.expire_tokens();
    let calls: Vec<_> = (1..=12)
        .map(|n| {
            let c = c.clone();
            tokio::spawn(async move { c.upsert_people(&[lead(n)]).await })
        })
        .collect();
    for call in calls {
        let out = call
            .await
            .unwrap()
            .expect("the batch succeeds after the refresh");
        done(&out.items[0]);
    }
    let stats = sb.stats();
    assert_eq!(
        stats.token_refreshes, 2,
        "initial + exactly one after the expiry: {stats:?}"
    );
    assert!(stats.unauthorized >= 1, "{stats:?}");
    assert_eq!(sb.contacts().len(), 13);
}

#[tokio::test]
async fn the_token_is_refreshed_five_minutes_ahead_of_expiry() {
    let sb = sandbox(options()).await;
    let ctx = ConnectorContext::in_memory("hubspot");
    // A token saved by an earlier run, four minutes from expiry, and a refresh token that the
    // config doesn't know (the saved one wins).
    ctx.state
        .save_token(&TokenSet {
            access_token: "stale-but-not-expired".into(),
            refresh_token: Some("sandbox-refresh-token".into()),
            expires_at_ms: Some(jiff::Timestamp::now().as_millisecond() + 240_000),
            extra: Default::default(),
        })
        .await
        .unwrap();
    let cfg = oauth_config(&sb, json!({"refresh_token": "an-old-config-token"}));
    let c = HubspotClient::new(&cfg, ctx).unwrap();
    done(&c.upsert_people(&[lead(1)]).await.unwrap().items[0]);
    let stats = sb.stats();
    assert_eq!(
        (stats.token_refreshes, stats.unauthorized),
        (1, 0),
        "{stats:?}"
    );
}

#[tokio::test]
async fn a_dead_refresh_grant_pauses_with_reconnect_needed() {
    let sb = sandbox(options()).await;
    let cfg = oauth_config(&sb, json!({"refresh_token": "revoked-SECRET"}));
    let c = HubspotClient::new(&cfg, ConnectorContext::in_memory("hubspot")).unwrap();
    match c.upsert_people(&[lead(1)]).await {
        Err(CallError::Auth { status, message }) => {
            assert_eq!(status, 401);
            assert!(message.contains("reconnect needed"), "{message}");
            assert!(
                message.contains("BAD_REFRESH_TOKEN: missing or invalid refresh token"),
                "HubSpot's own words: {message}"
            );
            assert!(!message.contains("SECRET"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    let stats = sb.stats();
    assert_eq!(
        (stats.requests, stats.token_refused),
        (0, 1),
        "no API call without a token"
    );
    let lines = c.verify(&["email".into()]).await;
    assert!(
        lines.len() == 1 && lines[0].contains("reconnect needed"),
        "{lines:?}"
    );
}

#[tokio::test]
async fn a_401_that_survives_a_refresh_is_an_auth_error_after_one_retry() {
    let sb = sandbox(options()).await;
    let c = oauth_client(&sb, ConnectorContext::in_memory("hubspot"));
    sb.set_faults(Faults {
        script: vec![ScriptStep::status(401, 5)],
        ..Default::default()
    })
    .unwrap();
    match c.upsert_people(&[lead(1)]).await {
        Err(CallError::Auth {
            status: 401,
            message,
        }) => {
            assert!(message.contains("INVALID_AUTHENTICATION"), "{message}")
        }
        other => panic!("{other:?}"),
    }
    let stats = sb.stats();
    assert_eq!(stats.upsert_calls, 2, "the call and its one retry");
    assert_eq!(stats.token_refreshes, 2, "initial + one after the 401");
}

// ---- conflict rules ----

fn ruled(n: i64, props: &[(&str, &str)], rules: &[(&str, OnConflict)]) -> SinkRecord {
    SinkRecord {
        conflict: rules.iter().map(|(k, r)| (k.to_string(), *r)).collect(),
        ..rec(n, props)
    }
}

#[tokio::test]
async fn conflict_rules_keep_what_sales_typed_and_fill_what_is_empty() {
    let sb = sandbox(options()).await;
    let c = oauth_client(&sb, ConnectorContext::in_memory("hubspot"));
    let rules = [
        ("phone", OnConflict::FillEmpty),
        ("company", OnConflict::Never),
    ];
    let email = "rita@example.com";
    let first = ruled(
        1,
        &[
            ("email", email),
            ("firstname", "R"),
            ("phone", "+14155550101"),
            ("company", "First Co"),
        ],
        &rules,
    );
    let (id, created) = done(&c.upsert_people(&[first]).await.unwrap().items[0]);
    assert!(created);
    let stored = sb.contact_by_email(email).unwrap();
    assert_eq!(
        (
            stored.properties["phone"].as_str(),
            stored.properties["company"].as_str()
        ),
        ("+14155550101", "First Co"),
        "a create takes everything, `never` included"
    );

    // Sales types a phone; the next lead must not clobber it (fill_empty) nor the company (never).
    assert!(sb.edit(email, "phone", "+12125550199"));
    let second = ruled(
        2,
        &[
            ("email", email),
            ("firstname", "Rita"),
            ("phone", "+14155550102"),
            ("company", "Second Co"),
        ],
        &rules,
    );
    assert_eq!(
        done(&c.upsert_people(&[second]).await.unwrap().items[0]),
        (id.clone(), false)
    );
    let stored = sb.contact_by_email(email).unwrap();
    assert_eq!(
        stored.properties["firstname"], "Rita",
        "overwrite fields still update"
    );
    assert_eq!(
        stored.properties["phone"], "+12125550199",
        "fill_empty kept sales' phone"
    );
    assert_eq!(
        stored.properties["company"], "First Co",
        "never: untouched on update"
    );

    // Sales clears the phone; the next lead fills it.
    assert!(sb.edit(email, "phone", ""));
    let third = ruled(
        3,
        &[
            ("email", email),
            ("phone", "+14155550103"),
            ("company", "Third Co"),
        ],
        &rules,
    );
    done(&c.upsert_people(&[third]).await.unwrap().items[0]);
    let stored = sb.contact_by_email(email).unwrap();
    assert_eq!(stored.properties["phone"], "+14155550103");
    assert_eq!(stored.properties["company"], "First Co");
    assert_eq!(stored.writes, 3, "sales' edits are not tandem writes");

    // One read per batch with rules, none without.
    let before = sb.stats();
    assert_eq!((before.read_calls, before.upsert_calls), (3, 3));
    done(&c.upsert_people(&[lead(9)]).await.unwrap().items[0]);
    assert_eq!(sb.stats().read_calls, 3);

    // A mixed batch: existing + new with rules, one without → still one read.
    let batch = [
        ruled(10, &[("email", email), ("phone", "+19999999999")], &rules),
        ruled(
            11,
            &[
                ("email", "new@example.com"),
                ("phone", "+15555550111"),
                ("company", "New Co"),
            ],
            &rules,
        ),
        lead(12),
    ];
    let out = c.upsert_people(&batch).await.unwrap();
    assert_eq!(done(&out.items[0]), (id, false));
    assert!(done(&out.items[1]).1 && done(&out.items[2]).1);
    assert_eq!(sb.stats().read_calls, 4);
    assert_eq!(
        sb.contact_by_email(email).unwrap().properties["phone"],
        "+14155550103"
    );
    let new = sb.contact_by_email("new@example.com").unwrap();
    assert_eq!(
        (
            new.properties["phone"].as_str(),
            new.properties["company"].as_str()
        ),
        ("+15555550111", "New Co")
    );
}

// ---- verify ----

#[tokio::test]
async fn verify_names_misspelt_and_read_only_fields_and_accepts_good_ones() {
    let sb = sandbox(SandboxOptions {
        custom_properties: vec!["crm_lead_source".into()],
        ..options()
    })
    .await;
    let c = oauth_client(&sb, ConnectorContext::in_memory("hubspot"));
    let good: Vec<String> = [
        "email",
        "firstname",
        "lastname",
        "phone",
        "company",
        "crm_lead_source",
    ]
    .map(String::from)
    .to_vec();
    assert_eq!(c.verify(&good).await, Vec::<String>::new());
    let lines = c
        .verify(&[
            "email".into(),
            "first_name".into(),
            "crm_lead_sourc".into(),
            "createdate".into(),
            "hs_analytics_num_visits".into(),
        ])
        .await;
    assert_eq!(lines.len(), 4, "{lines:#?}");
    assert!(
        lines[0].contains("`first_name`") && lines[0].contains("did you mean `firstname`?"),
        "{}",
        lines[0]
    );
    assert!(
        lines[1].contains("did you mean `crm_lead_source`?"),
        "{}",
        lines[1]
    );
    assert!(
        lines[2].contains("`createdate`") && lines[2].contains("read-only"),
        "{}",
        lines[2]
    );
    assert!(lines[3].contains("calculated"), "{}", lines[3]);
    assert_eq!(sb.stats().properties_calls, 2);
    assert!(sb.contacts().is_empty(), "verify never writes");

    let cfg: HubspotConfig =
        serde_json::from_value(json!({"token": "pat-wrong", "base_url": sb.base_url()})).unwrap();
    let lines = HubspotClient::new(&cfg, ConnectorContext::in_memory("hubspot"))
        .unwrap()
        .verify(&good)
        .await;
    assert_eq!(lines.len(), 1);
    assert!(
        lines[0].contains("refused the credentials") && lines[0].contains("Private apps"),
        "{}",
        lines[0]
    );
    assert!(!lines[0].contains("pat-wrong"));
}

// ---- the token endpoint and request shapes ----

fn oauth_spec() -> Value {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/specs/hubspot/oauth.json");
    serde_json::from_str(&std::fs::read_to_string(&path).expect("HubSpot's oauth.json spec"))
        .expect("JSON")
}

#[tokio::test]
async fn the_sandboxs_token_endpoint_answers_like_hubspot() {
    let spec = oauth_spec();
    let sb = sandbox(options()).await;
    let http = reqwest::Client::new();
    let o = sb.state().options().clone();
    let form = |rt: &str| {
        vec![
            ("grant_type", "refresh_token".to_owned()),
            ("client_id", o.client_id.clone()),
            ("client_secret", o.client_secret.clone()),
            ("refresh_token", rt.to_owned()),
        ]
    };
    let ok = http
        .post(sb.token_url())
        .form(&form(&o.refresh_token))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    let body: Value = ok.json().await.unwrap();
    assert_conforms(&spec, "AccessTokenResponse", &body);
    assert_eq!(
        (body["expires_in"].as_u64(), body["token_type"].as_str()),
        (Some(1800), Some("bearer"))
    );
    assert_eq!(
        body["refresh_token"],
        o.refresh_token.as_str(),
        "HubSpot doesn't rotate refresh tokens"
    );

    let bad = http
        .post(sb.token_url())
        .form(&form("nope"))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    let bad: Value = bad.json().await.unwrap();
    assert_eq!(
        (bad["status"].as_str(), bad["message"].as_str()),
        (
            Some("BAD_REFRESH_TOKEN"),
            Some("missing or invalid refresh token")
        )
    );
    assert_eq!(bad["correlationId"].as_str().unwrap().len(), 36);

    let mut wrong_secret = form(&o.refresh_token);
    wrong_secret[2].1 = "x".into();
    let r: Value = http
        .post(sb.token_url())
        .form(&wrong_secret)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(r["status"], "BAD_CLIENT_SECRET");
    assert_eq!(
        sb.stats().requests,
        0,
        "the token endpoint is not an API call"
    );
    assert_eq!(
        (sb.stats().token_refreshes, sb.stats().token_refused),
        (1, 2)
    );

    // With rotation on, a used refresh token dies and the new one works.
    let sb = sandbox(SandboxOptions {
        rotate_refresh_tokens: true,
        ..options()
    })
    .await;
    let first: Value = http
        .post(sb.token_url())
        .form(&form(&o.refresh_token))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let rotated = first["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(rotated, o.refresh_token);
    assert_eq!(
        http.post(sb.token_url())
            .form(&form(&o.refresh_token))
            .send()
            .await
            .unwrap()
            .status(),
        400
    );
    assert_eq!(
        http.post(sb.token_url())
            .form(&form(&rotated))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );

    // An expired access token gets HubSpot's EXPIRED_AUTHENTICATION 401.
    let access = first["access_token"].as_str().unwrap().to_owned();
    sb.expire_tokens();
    let r = http
        .get(format!("{}/crm/v3/objects/contacts", sb.base_url()))
        .bearer_auth(&access)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r: Value = r.json().await.unwrap();
    assert_eq!(r["category"], "EXPIRED_AUTHENTICATION");
    assert!(
        r["message"]
            .as_str()
            .unwrap()
            .starts_with("The OAuth token used to make this call expired")
    );
    assert_answer_conforms(&self::spec(), "Error", &r);
}

#[tokio::test]
async fn the_clients_token_and_batch_read_requests_match_hubspots_docs() {
    let spec = spec();
    let seen: Arc<Mutex<Vec<(String, Recorded)>>> = Arc::default();
    let record = seen.clone();
    let app = axum::Router::new().fallback(move |uri: axum::http::Uri, headers: axum::http::HeaderMap, body: axum::body::Bytes| {
        let record = record.clone();
        async move {
            let h = headers.iter().map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_owned())).collect();
            let path = uri.path().to_owned();
            let parsed = if path == "/oauth/v1/token" {
                Value::String(String::from_utf8_lossy(&body).into_owned())
            } else {
                serde_json::from_slice(&body).unwrap_or(Value::Null)
            };
            record.lock().unwrap().push((path.clone(), (h, parsed)));
            match path.as_str() {
                "/oauth/v1/token" => axum::Json(json!({"access_token": "at-1", "refresh_token": "rt-1", "expires_in": 1800, "token_type": "bearer", "token_use": "access_token"})),
                "/crm/v3/objects/contacts/batch/read" => axum::Json(json!({"status": "COMPLETE", "results": [
                    {"id": "51", "properties": {"email": "old@example.com", "phone": "+1999", "hs_object_id": "51"}, "createdAt": "2026-01-01T00:00:00Z", "updatedAt": "2026-01-01T00:00:00Z", "archived": false}],
                    "startedAt": "2026-01-01T00:00:00Z", "completedAt": "2026-01-01T00:00:00Z"})),
                _ => axum::Json(json!({"status": "COMPLETE", "results": [], "startedAt": "2026-01-01T00:00:00Z", "completedAt": "2026-01-01T00:00:00Z"})),
            }
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.ok() });
    let cfg: HubspotConfig =
        serde_json::from_value(json!({"client_id": "cid", "client_secret": "csecret",
        "refresh_token": "rt-0", "base_url": base}))
        .unwrap();
    let c = HubspotClient::new(&cfg, ConnectorContext::in_memory("hubspot")).unwrap();
    let rules = [("phone", OnConflict::FillEmpty)];
    c.upsert_people(&[
        ruled(
            1,
            &[
                ("email", "Old@example.com"),
                ("phone", "+1555"),
                ("firstname", "O"),
            ],
            &rules,
        ),
        ruled(
            2,
            &[("email", "new@example.com"), ("phone", "+1666")],
            &rules,
        ),
    ])
    .await
    .unwrap();

    let seen = seen.lock().unwrap();
    let paths: Vec<&str> = seen.iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(
        paths,
        [
            "/oauth/v1/token",
            "/crm/v3/objects/contacts/batch/read",
            "/crm/v3/objects/contacts/batch/upsert"
        ]
    );
    let (headers, form) = &seen[0].1;
    assert_eq!(headers["content-type"], "application/x-www-form-urlencoded");
    let form = form.as_str().unwrap();
    let mut fields: Vec<&str> = form.split('&').collect();
    fields.sort();
    assert_eq!(
        fields,
        [
            "client_id=cid",
            "client_secret=csecret",
            "grant_type=refresh_token",
            "refresh_token=rt-0"
        ]
    );

    let (headers, read) = &seen[1].1;
    assert_eq!(headers["authorization"], "Bearer at-1");
    assert_conforms(&spec, "BatchReadInputSimplePublicObjectId", read);
    assert_eq!(read["idProperty"], "email");
    assert_eq!(read["properties"], json!(["email", "phone"]));
    assert_eq!(
        read["inputs"],
        json!([{"id": "Old@example.com"}, {"id": "new@example.com"}])
    );

    let (_, upsert) = &seen[2].1;
    assert_conforms(
        &spec,
        "BatchInputSimplePublicObjectBatchInputUpsert",
        upsert,
    );
    assert_eq!(
        upsert["inputs"][0]["properties"],
        json!({"email": "Old@example.com", "firstname": "O"}),
        "the existing phone stays"
    );
    assert_eq!(
        upsert["inputs"][1]["properties"],
        json!({"email": "new@example.com", "phone": "+1666"})
    );
}

// ---- the conformance adapter and the cost per 1,000 leads ----

/// The `key = "value"` lines of `connector_toml()` as a config (tests have no TOML parser).
fn config_from_toml(lines: &str) -> HubspotConfig {
    let mut map = serde_json::Map::new();
    for line in lines.lines().filter(|l| !l.trim().is_empty()) {
        let (k, v) = line.split_once('=').expect("key = value");
        let v = v.trim().trim_matches('"');
        if k.trim() != "kind" {
            map.insert(k.trim().to_owned(), Value::String(v.to_owned()));
        } else {
            assert_eq!(v, "hubspot");
        }
    }
    serde_json::from_value(Value::Object(map)).expect("connector_toml is a valid hubspot config")
}

#[tokio::test]
async fn the_conformance_adapter_drives_the_sandbox() {
    let sb = tandem_connectors::sandbox::start_crm("hubspot")
        .await
        .unwrap()
        .expect("hubspot has a sandbox");
    assert_eq!((sb.kind(), sb.batch_limit()), ("hubspot", 100));
    let toml = sb.connector_toml();
    assert!(
        toml.starts_with("kind = \"hubspot\"\n") && toml.contains("timeout = \"2s\""),
        "{toml}"
    );
    let cfg = config_from_toml(&toml);
    assert!(cfg.validate().is_empty());
    assert_eq!(
        cfg.auth_mode(),
        Some(tandem_connectors::hubspot::AuthMode::OAuth)
    );
    let c = HubspotClient::new(&cfg, ConnectorContext::in_memory("crm")).unwrap();

    sb.set_faults(CrmFaults {
        drop_after_write_next: 1,
        ..Default::default()
    });
    assert!(matches!(
        c.upsert_people(&[lead(1)]).await,
        Err(CallError::Transient { .. })
    ));
    assert!(
        sb.record_by_email("lead1@example.com").is_some(),
        "the write happened"
    );
    done(&c.upsert_people(&[lead(1)]).await.unwrap().items[0]);
    assert_eq!(sb.records().len(), 1, "the retry updated, never duplicated");

    sb.set_faults(CrmFaults {
        rate_limit_next: 1,
        server_error_next: 1,
        ..Default::default()
    });
    assert!(
        matches!(c.upsert_people(&[lead(2)]).await, Err(CallError::RateLimited { retry_after, .. }) if retry_after == Duration::from_secs(1))
    );
    assert!(matches!(
        c.upsert_people(&[lead(2)]).await,
        Err(CallError::Transient { .. })
    ));
    sb.set_faults(CrmFaults {
        item_failure_rate: 1.0,
        ..Default::default()
    });
    assert!(
        matches!(&c.upsert_people(&[lead(3)]).await.unwrap().items[0], ItemResult::Permanent { message } if message.contains("VALIDATION_ERROR"))
    );
    sb.set_faults(CrmFaults::default());

    let f = sb.fields();
    sb.edit("lead1@example.com", f.phone, "+12125550199");
    let r = sb.record_by_email("LEAD1@example.com").unwrap();
    assert_eq!((r.fields[f.phone].as_str(), r.writes), ("+12125550199", 2));

    let before = sb.stats();
    sb.expire_tokens();
    done(&c.upsert_people(&[lead(4)]).await.unwrap().items[0]);
    let after = sb.stats();
    assert_eq!(after.token_refreshes, before.token_refreshes + 1);
    assert_eq!(
        after.api_calls,
        before.api_calls + 2,
        "the refused call and its retry"
    );
    assert!(after.rate_limited >= 1);
}

async fn calls_for_1000(rules: bool, existing: bool) -> u64 {
    let sb = sandbox(SandboxOptions {
        rate_limit: 10_000,
        ..options()
    })
    .await;
    let c = oauth_client(&sb, ConnectorContext::in_memory("hubspot"));
    let leads: Vec<SinkRecord> = (0..1000)
        .map(|n| {
            let r = rec(
                n,
                &[
                    ("email", &format!("p{n}@example.com")),
                    ("firstname", "P"),
                    ("phone", "+15555550100"),
                ],
            );
            if rules {
                SinkRecord {
                    conflict: [("phone".to_owned(), OnConflict::FillEmpty)].into(),
                    ..r
                }
            } else {
                r
            }
        })
        .collect();
    if existing {
        for chunk in leads.chunks(100) {
            c.upsert_people(chunk).await.unwrap();
        }
    }
    let before = sb.stats().requests;
    for chunk in leads.chunks(100) {
        let out = c.upsert_people(chunk).await.unwrap();
        assert!(
            out.items
                .iter()
                .all(|i| matches!(i, ItemResult::Done { .. }))
        );
    }
    assert_eq!(sb.contacts().len(), 1000);
    sb.stats().requests - before
}

#[tokio::test]
async fn api_calls_per_1000_leads() {
    let new = calls_for_1000(false, false).await;
    let new_rules = calls_for_1000(true, false).await;
    let existing_rules = calls_for_1000(true, true).await;
    eprintln!(
        "HubSpot API calls per 1,000 leads: new {new}, new with conflict rules {new_rules}, existing with conflict rules {existing_rules}"
    );
    assert_eq!(new, 10, "the floor: 1,000 / 100 per batch");
    assert_eq!(new_rules, 20);
    assert_eq!(existing_rules, 20);
}
