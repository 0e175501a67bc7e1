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
    CallError, ItemResult, LeadSink, SinkRecord,
    hubspot::{
        HubspotClient, HubspotConfig,
        sandbox::{Faults, HubspotSandbox, SandboxOptions, ScriptStep},
    },
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
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/specs/hubspot/contacts.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!("HubSpot's contacts OpenAPI spec is required for this test but {} could not be read: {e}", path.display())
    });
    serde_json::from_str(&text).expect("contacts.json is JSON")
}

fn resolve<'a>(spec: &'a Value, schema: &'a Value) -> &'a Value {
    match schema.get("$ref").and_then(Value::as_str) {
        Some(r) => {
            let name = r.rsplit('/').next().unwrap();
            let found = &spec["components"]["schemas"][name];
            assert!(!found.is_null(), "spec has no schema {name}");
            resolve(spec, found)
        }
        None => schema,
    }
}

/// Enough of JSON Schema for HubSpot's schemas: $ref, required, properties, additionalProperties,
/// items, type and enum. With `strict`, unknown object keys are errors, so we notice sending what
/// the spec lacks; answers are checked leniently because HubSpot's own bodies carry documented
/// extras the spec omits (`"status":"error"` on every error body).
fn conforms(
    spec: &Value,
    schema: &Value,
    value: &Value,
    at: &str,
    strict: bool,
    problems: &mut Vec<String>,
) {
    let schema = resolve(spec, schema);
    if let Some(options) = schema.get("enum").and_then(Value::as_array)
        && !options.contains(value)
    {
        problems.push(format!("{at}: {value} not in {options:?}"));
    }
    match schema.get("type").and_then(Value::as_str) {
        Some("object") => {
            let Some(obj) = value.as_object() else {
                return problems.push(format!("{at}: expected object, got {value}"));
            };
            for req in schema["required"].as_array().into_iter().flatten() {
                if !obj.contains_key(req.as_str().unwrap()) {
                    problems.push(format!("{at}: missing required {req}"));
                }
            }
            for (k, v) in obj {
                if let Some(s) = schema.get("properties").and_then(|p| p.get(k)) {
                    conforms(spec, s, v, &format!("{at}.{k}"), strict, problems);
                } else if let Some(s) = schema.get("additionalProperties").filter(|s| s.is_object())
                {
                    if !v.is_null() {
                        conforms(spec, s, v, &format!("{at}.{k}"), strict, problems);
                    }
                } else if strict {
                    problems.push(format!("{at}: key {k} is not in the spec"));
                }
            }
        }
        Some("array") => match value.as_array() {
            Some(items) => {
                for (i, item) in items.iter().enumerate() {
                    conforms(
                        spec,
                        &schema["items"],
                        item,
                        &format!("{at}[{i}]"),
                        strict,
                        problems,
                    );
                }
            }
            None => problems.push(format!("{at}: expected array")),
        },
        Some("string") if !value.is_string() => {
            problems.push(format!("{at}: expected string, got {value}"))
        }
        Some("boolean") if !value.is_boolean() => problems.push(format!("{at}: expected boolean")),
        Some("integer") if !value.is_i64() && !value.is_u64() => {
            problems.push(format!("{at}: expected integer"))
        }
        _ => {}
    }
}

fn assert_conforms(spec: &Value, schema_name: &str, value: &Value) {
    check_conforms(spec, schema_name, value, true);
}

fn assert_answer_conforms(spec: &Value, schema_name: &str, value: &Value) {
    check_conforms(spec, schema_name, value, false);
}

fn check_conforms(spec: &Value, schema_name: &str, value: &Value, strict: bool) {
    let mut problems = Vec::new();
    let schema = json!({"$ref": format!("#/components/schemas/{schema_name}")});
    conforms(spec, &schema, value, schema_name, strict, &mut problems);
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
