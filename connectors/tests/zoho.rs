//! The Zoho CRM connector against its sandbox over real loopback HTTP: upserts, duplicates,
//! conflict rules, partial failures, throttling, 5xx, dead grants, token expiry, verify(), the
//! documented request shapes, and the API calls 1,000 new leads cost.
#![cfg(feature = "sandbox")]

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use serde_json::{Value, json};
use tandem_connectors::{
    CallError, ConnectorContext, ItemResult, LeadSink, OnConflict, SinkRecord,
    sandbox::{CrmFaults, start_crm},
    zoho::{
        ZohoClient, ZohoConfig,
        sandbox::{SandboxOptions, ZohoSandbox},
    },
};

fn options() -> SandboxOptions {
    SandboxOptions {
        seed: Some(42),
        ..Default::default()
    }
}

async fn sandbox(options: SandboxOptions) -> ZohoSandbox {
    ZohoSandbox::start("127.0.0.1:0".parse().unwrap(), options)
        .await
        .expect("sandbox binds a loopback port")
}

/// A client for `sb`: Accounts at the sandbox, and (unless `extra` says otherwise) the API base
/// taken from the token's `api_domain`, as in production.
fn client_with(sb: &ZohoSandbox, extra: Value) -> ZohoClient {
    let o = sb.options();
    let mut cfg = json!({
        "client_id": o.client_id, "client_secret": o.client_secret,
        "refresh_token": o.refresh_token, "accounts_url": sb.base_url(), "timeout": "5s"
    });
    if let (Some(cfg), Some(extra)) = (cfg.as_object_mut(), extra.as_object()) {
        cfg.extend(extra.clone());
    }
    let cfg: ZohoConfig = serde_json::from_value(cfg).expect("config");
    assert!(cfg.validate().is_empty(), "{:?}", cfg.validate());
    ZohoClient::new(&cfg, ConnectorContext::in_memory("zoho")).expect("client")
}

fn client(sb: &ZohoSandbox) -> ZohoClient {
    client_with(sb, json!({}))
}

fn rec(delivery_id: i64, props: &[(&str, &str)]) -> SinkRecord {
    SinkRecord {
        delivery_id,
        properties: props
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        conflict: Default::default(),
        remote_id: None,
    }
}

fn lead(n: i64) -> SinkRecord {
    rec(
        n,
        &[
            ("Email", &format!("lead{n}@example.com")),
            ("First_Name", "Lead"),
            ("Last_Name", &format!("Number{n}")),
            ("Lead_Source", "Web Download"),
        ],
    )
}

fn done(item: &ItemResult) -> (String, bool) {
    match item {
        ItemResult::Done { remote_id, created } => (remote_id.clone(), *created),
        other => panic!("expected Done, got {other:?}"),
    }
}

#[tokio::test]
async fn create_then_update_the_same_email_is_one_record() {
    let sb = sandbox(options()).await;
    let c = client(&sb);
    let first = c
        .upsert_people(&[rec(
            1,
            &[("Email", "Jane@Example.com"), ("First_Name", "Jane")],
        )])
        .await
        .expect("first call");
    let (id, created) = done(&first.items[0]);
    assert!(created);
    let jane = sb.record_by_email("Leads", "jane@example.com").unwrap();
    assert_eq!(
        jane.fields["Last_Name"], "Unknown",
        "the documented default"
    );

    let second = c
        .upsert_people(&[rec(
            2,
            &[("Email", "jane@example.com"), ("Last_Name", "Doe")],
        )])
        .await
        .expect("second call");
    assert_eq!(done(&second.items[0]), (id.clone(), false));
    // A later lead without a last name does not put the default over the real one.
    let third = c
        .upsert_people(&[rec(
            3,
            &[("Email", "JANE@example.com"), ("Phone", "+15550100")],
        )])
        .await
        .expect("third call");
    assert_eq!(done(&third.items[0]), (id.clone(), false));

    let all = sb.records("Leads");
    assert_eq!(all.len(), 1);
    let jane = &all[0];
    assert_eq!(jane.id, id);
    assert_eq!(jane.writes, 3);
    assert_eq!(jane.fields["First_Name"], "Jane");
    assert_eq!(jane.fields["Last_Name"], "Doe");
    assert_eq!(jane.fields["Phone"], "+15550100");
    let s = sb.stats();
    assert_eq!(s.upsert_calls, 3);
    assert_eq!(s.token_refreshes, 1, "one token for the whole run");
}

#[tokio::test]
async fn contacts_module_works_the_same() {
    let sb = sandbox(options()).await;
    let c = client_with(&sb, json!({"module": "Contacts"}));
    let out = c
        .upsert_people(&[rec(
            1,
            &[
                ("Email", "c@example.com"),
                ("Last_Name", "C"),
                ("Title", "CTO"),
            ],
        )])
        .await
        .unwrap();
    done(&out.items[0]);
    assert_eq!(sb.records("Contacts").len(), 1);
    assert!(sb.records("Leads").is_empty());
}

#[tokio::test]
async fn a_dropped_response_then_retry_is_still_one_record() {
    let sb = sandbox(options()).await;
    sb.set_faults(CrmFaults {
        drop_after_write_next: 1,
        ..Default::default()
    });
    let c = client(&sb);
    let batch: Vec<SinkRecord> = (1..=3).map(lead).collect();
    match c.upsert_people(&batch).await {
        Err(CallError::Transient { .. }) => {}
        other => panic!("{other:?}"),
    }
    assert_eq!(sb.stats().drops, 1);
    assert_eq!(sb.records("Leads").len(), 3, "the write happened");
    let retry = c.upsert_people(&batch).await.expect("retry");
    for (item, r) in retry.items.iter().zip(&batch) {
        let stored = sb.record_by_email("Leads", &r.properties["Email"]).unwrap();
        assert_eq!(done(item), (stored.id, false));
    }
    assert_eq!(sb.records("Leads").len(), 3, "no duplicates");
}

#[tokio::test]
async fn duplicates_in_one_batch_wait_and_leads_without_a_key_are_refused_locally() {
    let sb = sandbox(options()).await;
    let c = client(&sb);
    let out = c
        .upsert_people(&[
            lead(1),
            rec(2, &[("Email", "LEAD1@example.com"), ("Last_Name", "Again")]),
            rec(3, &[("First_Name", "No email")]),
        ])
        .await
        .unwrap();
    done(&out.items[0]);
    assert!(
        matches!(&out.items[1], ItemResult::Transient { message } if message.contains("same batch"))
    );
    assert!(
        matches!(&out.items[2], ItemResult::Permanent { message } if message.contains("Email"))
    );
    assert_eq!(sb.stats().batch_sizes, [1]);
    assert_eq!(sb.records("Leads").len(), 1);
}

#[tokio::test]
async fn conflict_rules_keep_what_sales_typed() {
    let sb = sandbox(options()).await;
    let c = client(&sb);
    let create = |n: i64| {
        let mut r = rec(
            n,
            &[
                ("Email", "pat@example.com"),
                ("Last_Name", "Smith"),
                ("Phone", "+15550001"),
                ("Mobile", "+15550002"),
                ("Lead_Source", "Web Download"),
            ],
        );
        r.conflict = BTreeMap::from([
            ("Phone".to_owned(), OnConflict::FillEmpty),
            ("Mobile".to_owned(), OnConflict::FillEmpty),
            ("Lead_Source".to_owned(), OnConflict::Never),
        ]);
        r
    };
    // On create every field is written, `never` included.
    let out = c.upsert_people(&[create(1)]).await.unwrap();
    assert!(done(&out.items[0]).1);
    let pat = sb.record_by_email("Leads", "pat@example.com").unwrap();
    assert_eq!(pat.fields["Lead_Source"], "Web Download");
    assert_eq!(pat.fields["Phone"], "+15550001");

    // Sales edits: types a phone, clears the mobile, changes the source.
    sb.state()
        .edit("Leads", "pat@example.com", "Phone", "+4420000000");
    sb.state().edit("Leads", "pat@example.com", "Mobile", "");
    sb.state()
        .edit("Leads", "pat@example.com", "Lead_Source", "Trade Show");
    let before = sb.stats();

    let mut again = create(2);
    again.properties.insert("Phone".into(), "+15559999".into());
    again.properties.insert("Mobile".into(), "+15558888".into());
    again
        .properties
        .insert("Lead_Source".into(), "Advertisement".into());
    again.properties.insert("First_Name".into(), "Pat".into());
    let out = c.upsert_people(&[again]).await.unwrap();
    assert!(!done(&out.items[0]).1);
    let pat = sb.record_by_email("Leads", "pat@example.com").unwrap();
    assert_eq!(
        pat.fields["Phone"], "+4420000000",
        "fill_empty keeps a salesperson's value"
    );
    assert_eq!(
        pat.fields["Mobile"], "+15558888",
        "fill_empty fills an empty one"
    );
    assert_eq!(
        pat.fields["Lead_Source"], "Trade Show",
        "never only writes on create"
    );
    assert_eq!(pat.fields["First_Name"], "Pat", "overwrite still writes");
    let after = sb.stats();
    assert_eq!(
        after.api_calls - before.api_calls,
        2,
        "one COQL read + one upsert"
    );
    assert_eq!(after.coql_calls, 2);
    assert!(
        after.queries[1].starts_with("select id, Email, Last_Name, "),
        "{}",
        after.queries[1]
    );
    assert!(after.queries[1].contains("from Leads where Email in ('pat@example.com') limit 200"));
}

#[tokio::test]
async fn a_partial_failure_refuses_only_the_bad_record_with_zohos_message() {
    let sb = sandbox(options()).await;
    let c = client(&sb);
    let out = c
        .upsert_people(&[
            lead(1),
            rec(2, &[("Email", "not-an-email"), ("Last_Name", "X")]),
            rec(
                3,
                &[
                    ("Email", "x3@example.com"),
                    ("Last_Name", "Y"),
                    ("Favourite_Colour", "teal"),
                ],
            ),
            lead(4),
        ])
        .await
        .expect("207 is a success");
    done(&out.items[0]);
    assert_eq!(
        out.items[1],
        ItemResult::Permanent {
            message: "INVALID_DATA: invalid data (field Email, expected email)".into()
        }
    );
    assert_eq!(
        out.items[2],
        ItemResult::Permanent {
            message: "INVALID_DATA: invalid data (field Favourite_Colour)".into()
        }
    );
    done(&out.items[3]);
    assert_eq!(sb.records("Leads").len(), 2);

    // Every record refused: Zoho answers 400 with one entry each; still per-record results.
    sb.set_faults(CrmFaults {
        item_failure_rate: 1.0,
        seed: Some(1),
        ..Default::default()
    });
    let out = c
        .upsert_people(&[lead(5), lead(6)])
        .await
        .expect("per-record 400");
    assert!(out.items.iter().all(
        |i| matches!(i, ItemResult::Permanent { message } if message.starts_with("INVALID_DATA"))
    ));

    // Seeded dice refuse some of a big batch; each result matches its own record.
    sb.set_faults(CrmFaults {
        item_failure_rate: 0.3,
        seed: Some(7),
        ..Default::default()
    });
    let batch: Vec<SinkRecord> = (10..60).map(lead).collect();
    let out = c.upsert_people(&batch).await.unwrap();
    let mut failed = 0;
    for (r, item) in batch.iter().zip(&out.items) {
        let stored = sb.record_by_email("Leads", &r.properties["Email"]);
        match item {
            ItemResult::Done { remote_id, .. } => assert_eq!(&stored.unwrap().id, remote_id),
            ItemResult::Permanent { .. } => {
                failed += 1;
                assert!(stored.is_none());
            }
            other => panic!("{other:?}"),
        }
    }
    assert!(failed > 0 && failed < 50, "{failed}");
}

#[tokio::test]
async fn the_sandbox_refuses_like_zoho_missing_last_name_and_oversized_batches() {
    let sb = sandbox(options()).await;
    // The client always fills Last_Name on creates, so Zoho's refusal is shown on the raw API.
    let token: Value = reqwest::Client::new()
        .post(format!("{}/oauth/v2/token", sb.base_url()))
        .query(&[
            ("grant_type", "refresh_token"),
            ("client_id", sb.options().client_id.as_str()),
            ("client_secret", sb.options().client_secret.as_str()),
            ("refresh_token", sb.options().refresh_token.as_str()),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(token["expires_in"], 3600);
    assert_eq!(token["api_domain"], sb.base_url());
    assert_eq!(token["token_type"], "Bearer");
    let r = reqwest::Client::new()
        .post(format!("{}/crm/v8/Leads/upsert", sb.base_url()))
        .header("Authorization", format!("Zoho-oauthtoken {}", token["access_token"].as_str().unwrap()))
        .json(&json!({"data": [{"Email": "m@example.com"}], "duplicate_check_fields": ["Email"], "trigger": []}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["data"][0]["code"], "MANDATORY_NOT_FOUND");
    assert_eq!(body["data"][0]["details"]["api_name"], "Last_Name");
    assert_eq!(body["data"][0]["status"], "error");

    // 101 records: the whole call is refused.
    let rows: Vec<Value> = (0..101)
        .map(|n| json!({"Email": format!("p{n}@example.com"), "Last_Name": "P"}))
        .collect();
    let r = reqwest::Client::new()
        .post(format!("{}/crm/v8/Leads/upsert", sb.base_url()))
        .header(
            "Authorization",
            format!(
                "Zoho-oauthtoken {}",
                token["access_token"].as_str().unwrap()
            ),
        )
        .json(&json!({"data": rows}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["code"], "LIMIT_EXCEEDED");
    assert!(sb.records("Leads").is_empty());
}

#[tokio::test]
async fn throttling_is_rate_limited_with_a_sensible_wait() {
    let sb = sandbox(options()).await;
    sb.set_faults(CrmFaults {
        rate_limit_next: 1,
        ..Default::default()
    });
    let c = client(&sb);
    match c.upsert_people(&[lead(1)]).await {
        Err(CallError::RateLimited {
            message,
            retry_after,
        }) => {
            assert_eq!(
                message,
                "Zoho 429: TOO_MANY_REQUESTS: concurrency limit exceeded"
            );
            assert_eq!(
                retry_after,
                Duration::from_secs(5),
                "the documented default"
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(sb.records("Leads").is_empty());
    done(&c.upsert_people(&[lead(1)]).await.unwrap().items[0]);

    // The rolling-24-hour credits: 100 records cost 10 credits; the next call is refused until
    // the oldest credits free up, which the headers say.
    let sb = sandbox(SandboxOptions {
        daily_credits: 10,
        ..options()
    })
    .await;
    let c = client(&sb);
    let batch: Vec<SinkRecord> = (1..=100).map(lead).collect();
    c.upsert_people(&batch).await.expect("exactly the budget");
    assert_eq!(sb.stats().credits_used, 10);
    match c.upsert_people(&[lead(101)]).await {
        Err(CallError::RateLimited {
            retry_after,
            message,
        }) => {
            assert!(message.contains("API credit limit"), "{message}");
            assert!(
                retry_after > Duration::from_secs(23 * 3600),
                "{retry_after:?}"
            );
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(sb.stats().rate_limited, 1);
}

#[tokio::test]
async fn the_concurrency_cap_answers_429() {
    let sb = sandbox(SandboxOptions {
        concurrency: 2,
        ..options()
    })
    .await;
    sb.set_faults(CrmFaults {
        delay_ms: 300,
        ..Default::default()
    });
    let c = Arc::new(client(&sb));
    c.upsert_people(&[lead(0)])
        .await
        .expect("warm-up gets the token");
    let calls: Vec<_> = (1..=4)
        .map(|n| {
            let c = c.clone();
            tokio::spawn(async move { c.upsert_people(&[lead(n)]).await })
        })
        .collect();
    let mut limited = 0;
    for call in calls {
        if let Err(CallError::RateLimited { .. }) = call.await.unwrap() {
            limited += 1;
        }
    }
    assert_eq!(limited, 2, "two slots, four callers");
}

#[tokio::test]
async fn server_errors_and_timeouts_are_transient() {
    let sb = sandbox(options()).await;
    sb.set_faults(CrmFaults {
        server_error_next: 1,
        ..Default::default()
    });
    let c = client(&sb);
    match c.upsert_people(&[lead(1)]).await {
        Err(CallError::Transient { message, .. }) => {
            assert_eq!(message, "Zoho 500: INTERNAL_ERROR: Internal Server Error")
        }
        other => panic!("{other:?}"),
    }
    sb.set_faults(CrmFaults {
        server_error_rate: 1.0,
        ..Default::default()
    });
    assert!(matches!(
        c.upsert_people(&[lead(1)]).await,
        Err(CallError::Transient { .. })
    ));
    assert_eq!(sb.stats().server_errors, 2);
    assert!(sb.records("Leads").is_empty());

    sb.set_faults(CrmFaults {
        delay_ms: 1500,
        ..Default::default()
    });
    let slow = client_with(&sb, json!({"timeout": "300ms"}));
    // The token endpoint is not delayed; the API call is.
    match slow.upsert_people(&[lead(2)]).await {
        Err(CallError::Transient { message, .. }) => {
            assert!(message.contains("did not answer within 300ms"), "{message}")
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_dead_refresh_grant_pauses_with_reconnect_needed() {
    let sb = sandbox(options()).await;
    let c = client(&sb);
    done(&c.upsert_people(&[lead(1)]).await.unwrap().items[0]);
    sb.revoke_refresh_token();
    match c.upsert_people(&[lead(2)]).await {
        Err(CallError::Auth { status, message }) => {
            assert_eq!(status, 401);
            assert!(message.starts_with("reconnect needed"), "{message}");
            assert!(message.contains("invalid_code"), "{message}");
            assert!(!message.contains(&sb.options().refresh_token));
        }
        other => panic!("{other:?}"),
    }
    let s = sb.stats();
    assert_eq!(s.token_refusals, 1, "refused once, not retried in a loop");
    assert_eq!(
        s.unauthorized, 1,
        "the stale token's 401, then no second API call"
    );

    // A wrong client secret is the same kind of dead end.
    let wrong = client_with(&sb, json!({"client_secret": "nope"}));
    assert!(matches!(
        wrong.upsert_people(&[lead(3)]).await,
        Err(CallError::Auth { status: 401, message }) if message.contains("invalid_client")
    ));
}

#[tokio::test]
async fn token_expiry_mid_run_refreshes_once_for_concurrent_calls() {
    let sb = sandbox(options()).await;
    let c = Arc::new(client(&sb));
    done(&c.upsert_people(&[lead(0)]).await.unwrap().items[0]);
    assert_eq!(sb.stats().token_refreshes, 1);
    sb.expire_tokens();
    let calls: Vec<_> = (1..=6)
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
        assert!(done(&out.items[0]).1);
    }
    let s = sb.stats();
    assert_eq!(
        s.token_refreshes, 2,
        "single-flight: one refresh for six callers"
    );
    assert_eq!(s.unauthorized, 6);
    assert_eq!(sb.records("Leads").len(), 7);
}

#[tokio::test]
async fn verify_flags_misspelt_read_only_and_non_text_fields() {
    let sb = sandbox(options()).await;
    let c = client(&sb);
    let good: Vec<String> = [
        "Email",
        "First_Name",
        "Last_Name",
        "Phone",
        "Company",
        "Lead_Source",
        "Description",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    assert_eq!(c.verify(&good).await, Vec::<String>::new());
    let bad: Vec<String> = [
        "Frist_Name",
        "email",
        "Full_Name",
        "No_of_Employees",
        "Favourite_Colour",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let problems = c.verify(&bad).await;
    assert_eq!(problems.len(), 5, "{problems:#?}");
    assert!(
        problems[0].contains("no field \"Frist_Name\"; did you mean \"First_Name\"?"),
        "{}",
        problems[0]
    );
    assert!(
        problems[1].contains("did you mean \"Email\""),
        "{}",
        problems[1]
    );
    assert!(
        problems[2].contains("\"Full_Name\" is read-only"),
        "{}",
        problems[2]
    );
    assert!(problems[3].contains("type integer"), "{}", problems[3]);
    assert!(problems[4].contains("API Names"), "{}", problems[4]);
    assert!(sb.records("Leads").is_empty(), "verify never writes");

    sb.revoke_refresh_token();
    let problems = client(&sb).verify(&good).await;
    assert_eq!(problems.len(), 1);
    assert!(problems[0].contains("reconnect needed"), "{}", problems[0]);
}

/// Headers, query and JSON body of one request the recording server saw.
type Seen = (String, BTreeMap<String, String>, String, Value);

#[tokio::test]
async fn requests_match_zohos_documented_shapes() {
    let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let record = seen.clone();
    let api_domain = base.clone();
    let app = axum::Router::new().fallback(
        move |uri: axum::http::Uri, headers: axum::http::HeaderMap, body: axum::body::Bytes| {
            let record = record.clone();
            let api_domain = api_domain.clone();
            async move {
                let h = headers
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_owned()))
                    .collect();
                let json = serde_json::from_slice(&body).unwrap_or(Value::Null);
                let path = uri.path().to_owned();
                record.lock().unwrap().push((path.clone(), h, uri.query().unwrap_or("").to_owned(), json));
                let answer = match path.as_str() {
                    "/oauth/v2/token" => json!({"access_token": "1000.tok.en", "api_domain": api_domain, "token_type": "Bearer", "expires_in": 3600}),
                    "/crm/v8/coql" => json!({"data": [], "info": {"count": 0, "more_records": false}}),
                    _ => json!({"data": [
                        {"code": "SUCCESS", "duplicate_field": null, "action": "insert", "details": {"id": "11"}, "message": "record added", "status": "success"},
                        {"code": "SUCCESS", "duplicate_field": "Email", "action": "update", "details": {"id": "12"}, "message": "record updated", "status": "success"}
                    ]}),
                };
                axum::Json(answer)
            }
        },
    );
    tokio::spawn(async move { axum::serve(listener, app).await.ok() });
    let cfg: ZohoConfig = serde_json::from_value(json!({
        "client_id": "1000.CID", "client_secret": "csecret", "refresh_token": "1000.rt",
        "accounts_url": base, "trigger": ["workflow"]
    }))
    .unwrap();
    let c = ZohoClient::new(&cfg, ConnectorContext::in_memory("zoho")).unwrap();
    let mut second = rec(2, &[("Email", "b@example.com"), ("Phone", "+1")]);
    second.conflict = BTreeMap::from([("Phone".to_owned(), OnConflict::FillEmpty)]);
    let out = c.upsert_people(&[lead(1), second]).await.unwrap();
    assert_eq!(
        out.items[0],
        ItemResult::Done {
            remote_id: "11".into(),
            created: true
        }
    );
    assert_eq!(
        out.items[1],
        ItemResult::Done {
            remote_id: "12".into(),
            created: false
        }
    );

    let seen = seen.lock().unwrap();
    let paths: Vec<&str> = seen.iter().map(|s| s.0.as_str()).collect();
    assert_eq!(
        paths,
        ["/oauth/v2/token", "/crm/v8/coql", "/crm/v8/Leads/upsert"]
    );

    let (_, headers, query, body) = &seen[0];
    let params: BTreeMap<String, String> = query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    assert_eq!(params["grant_type"], "refresh_token");
    assert_eq!(params["client_id"], "1000.CID");
    assert_eq!(params["client_secret"], "csecret");
    assert_eq!(params["refresh_token"], "1000.rt");
    assert!(
        body.is_null(),
        "parameters go in the query string, not the body"
    );
    assert!(!headers.contains_key("authorization"));

    let (_, headers, _, body) = &seen[1];
    assert_eq!(headers["authorization"], "Zoho-oauthtoken 1000.tok.en");
    assert_eq!(
        body,
        &json!({"select_query": "select id, Email, Last_Name, Phone from Leads where Email in ('lead1@example.com', 'b@example.com') limit 200"})
    );

    let (_, headers, _, body) = &seen[2];
    assert_eq!(headers["authorization"], "Zoho-oauthtoken 1000.tok.en");
    assert!(headers["content-type"].starts_with("application/json"));
    assert!(headers["user-agent"].starts_with("tandem/"));
    let keys: Vec<&String> = body.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["data", "duplicate_check_fields", "trigger"]);
    assert_eq!(body["duplicate_check_fields"], json!(["Email"]));
    assert_eq!(body["trigger"], json!(["workflow"]));
    assert_eq!(body["data"][0]["Email"], "lead1@example.com");
    assert_eq!(body["data"][0]["Last_Name"], "Number1");
    assert_eq!(
        body["data"][1],
        json!({"Email": "b@example.com", "Phone": "+1", "Last_Name": "Unknown"})
    );
}

#[tokio::test]
async fn the_conformance_adapter_is_a_working_connector() {
    let sb = start_crm("zoho")
        .await
        .unwrap()
        .expect("zoho has a sandbox");
    assert_eq!(sb.kind(), "zoho");
    assert_eq!(sb.batch_limit(), 100);
    let toml = sb.connector_toml();
    assert!(toml.starts_with("kind = \"zoho\"\n"), "{toml}");
    assert!(toml.contains("timeout = \"2s\""));
    // The lines are `key = "string"`: read them the way the daemon's TOML loader would.
    let mut table = serde_json::Map::new();
    for line in toml.lines().skip(1) {
        let (k, v) = line.split_once(" = ").unwrap();
        table.insert(k.to_owned(), Value::from(v.trim_matches('"')));
    }
    let cfg: ZohoConfig = serde_json::from_value(Value::Object(table)).unwrap();
    assert!(cfg.validate().is_empty());
    let c = ZohoClient::new(&cfg, ConnectorContext::in_memory("zoho")).unwrap();
    let f = sb.fields();
    let out = c
        .upsert_people(&[rec(
            1,
            &[
                (f.email, "s@example.com"),
                (f.last_name, "S"),
                (f.company, "Acme"),
            ],
        )])
        .await
        .unwrap();
    done(&out.items[0]);
    sb.edit("s@example.com", f.phone, "+1555");
    let r = sb.record_by_email("S@example.com").unwrap();
    assert_eq!(
        (r.fields[f.phone].as_str(), r.writes),
        ("+1555", 1),
        "edits are not API writes"
    );
    sb.expire_tokens();
    done(
        &c.upsert_people(&[rec(2, &[(f.email, "t@example.com"), (f.last_name, "T")])])
            .await
            .unwrap()
            .items[0],
    );
    let s = sb.stats();
    assert_eq!((s.token_refreshes, s.api_calls), (2, 3));
}

/// The number docs/crm/zoho.md quotes: API calls (and credits) for 1,000 new leads.
#[tokio::test]
async fn api_calls_per_thousand_new_leads() {
    async fn run(make: impl Fn(i64) -> SinkRecord) -> (u64, u64) {
        let sb = sandbox(SandboxOptions {
            daily_credits: 1_000_000,
            ..options()
        })
        .await;
        let c = client(&sb);
        let leads: Vec<SinkRecord> = (0..1000).map(&make).collect();
        for chunk in leads.chunks(c.max_batch()) {
            let out = c.upsert_people(chunk).await.unwrap();
            assert!(
                out.items
                    .iter()
                    .all(|i| matches!(i, ItemResult::Done { created: true, .. }))
            );
        }
        assert_eq!(sb.records("Leads").len(), 1000);
        let s = sb.stats();
        (s.api_calls, s.credits_used)
    }
    let plain = run(lead).await;
    let with_rules = run(|n| {
        let mut r = lead(n);
        r.properties.insert("Phone".into(), "+15550100".into());
        r.conflict = BTreeMap::from([("Phone".to_owned(), OnConflict::FillEmpty)]);
        r
    })
    .await;
    let no_last_name = run(|n| rec(n, &[("Email", &format!("x{n}@example.com"))])).await;
    println!(
        "zoho: 1000 new leads = {plain:?} (api calls, credits); with conflict rules {with_rules:?}; without Last_Name {no_last_name:?}"
    );
    assert_eq!(plain, (10, 100), "the floor: 1000 / 100 per call");
    assert_eq!(with_rules, (20, 110), "one COQL read per batch");
    assert_eq!(no_last_name, (20, 110));
}
