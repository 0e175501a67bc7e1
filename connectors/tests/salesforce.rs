//! The Salesforce connector against its sandbox over real loopback HTTP: both match modes, the
//! conflict rules, every failure class, the session refresh, `verify()`, the request shapes, and
//! the measured API calls per 1,000 new leads quoted in docs/crm/salesforce.md.
#![cfg(feature = "sandbox")]

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use serde_json::{Value, json};
use tandem_connectors::{
    CallError, ConnectorContext, ItemResult, LeadSink, OnConflict, SinkRecord,
    context::MemoryState,
    salesforce::{
        SalesforceClient, SalesforceConfig,
        sandbox::{CrmFaults, SalesforceSandbox, SandboxOptions},
    },
};

fn options() -> SandboxOptions {
    SandboxOptions {
        seed: Some(7),
        ..Default::default()
    }
}

async fn sandbox(options: SandboxOptions) -> SalesforceSandbox {
    SalesforceSandbox::start("127.0.0.1:0".parse().unwrap(), options)
        .await
        .expect("sandbox binds a loopback port")
}

fn config(sb: &SalesforceSandbox, extra: Value) -> SalesforceConfig {
    let o = options();
    let mut cfg = json!({
        "login_url": sb.base_url(), "client_id": o.client_id, "client_secret": o.client_secret,
        "refresh_token": o.refresh_token, "timeout": "3s"
    });
    cfg.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    let cfg: SalesforceConfig = serde_json::from_value(cfg).expect("config");
    assert!(cfg.validate().is_empty(), "{:?}", cfg.validate());
    cfg
}

fn client_with_state(sb: &SalesforceSandbox, extra: Value) -> (SalesforceClient, Arc<MemoryState>) {
    let state = Arc::new(MemoryState::default());
    let ctx = ConnectorContext {
        name: "salesforce".into(),
        state: state.clone(),
    };
    (
        SalesforceClient::new(&config(sb, extra), ctx).expect("client"),
        state,
    )
}

fn ext_client(sb: &SalesforceSandbox) -> SalesforceClient {
    client_with_state(
        sb,
        json!({"match": "external_id", "external_id_field": "Tandem_Email__c"}),
    )
    .0
}

fn email_client(sb: &SalesforceSandbox) -> (SalesforceClient, Arc<MemoryState>) {
    client_with_state(sb, json!({"match": "email"}))
}

fn rec(delivery_id: i64, props: &[(&str, &str)]) -> SinkRecord {
    SinkRecord {
        delivery_id,
        properties: props
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        conflict: BTreeMap::new(),
        remote_id: None,
    }
}

fn lead(n: i64) -> SinkRecord {
    rec(
        n,
        &[
            ("Email", &format!("lead{n}@example.com")),
            ("FirstName", "Lead"),
            ("LastName", &format!("Number{n}")),
            ("Company", "Acme"),
        ],
    )
}

fn done(item: &ItemResult) -> (String, bool) {
    match item {
        ItemResult::Done { remote_id, created } => (remote_id.clone(), *created),
        other => panic!("expected Done, got {other:?}"),
    }
}

fn by_email(
    sb: &SalesforceSandbox,
    email: &str,
) -> Vec<tandem_connectors::salesforce::sandbox::SfRecord> {
    sb.records()
        .into_iter()
        .filter(|r| {
            r.fields
                .get("Email")
                .is_some_and(|e| e.eq_ignore_ascii_case(email))
        })
        .collect()
}

#[tokio::test]
async fn external_id_upsert_creates_then_updates_one_lead_with_required_defaults_only_on_create() {
    let sb = sandbox(options()).await;
    let c = ext_client(&sb);
    let first = c
        .upsert_people(&[rec(
            1,
            &[("Email", "Jane@Example.com"), ("FirstName", "Jane")],
        )])
        .await
        .expect("first call");
    let (id, created) = done(&first.items[0]);
    assert!(created && id.starts_with("00Q") && id.len() == 18, "{id}");
    let jane = &by_email(&sb, "jane@example.com")[0];
    assert_eq!(jane.fields["LastName"], "[not provided]");
    assert_eq!(jane.fields["Company"], "[not provided]");
    assert_eq!(jane.fields["Tandem_Email__c"], "jane@example.com");
    assert_eq!(jane.fields["Status"], "Open - Not Contacted");

    // A salesperson fills the real company; the next delivery (no Company mapped) must not put
    // the placeholder back, and updates what it maps.
    sb.state().edit(&id, "Company", "Initech");
    let second = c
        .upsert_people(&[rec(
            2,
            &[("Email", "jane@example.com"), ("LastName", "Doe")],
        )])
        .await
        .expect("second call");
    assert_eq!(done(&second.items[0]), (id.clone(), false));
    let all = sb.records();
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].fields["Company"], "Initech");
    assert_eq!(all[0].fields["LastName"], "Doe");
    assert_eq!(all[0].writes, 2);
}

#[tokio::test]
async fn email_mode_creates_records_the_id_at_once_and_updates_by_it() {
    let sb = sandbox(options()).await;
    let (c, state) = email_client(&sb);
    let out = c
        .upsert_people(&[
            lead(1),
            rec(
                2,
                &[("Email", "o'neil@example.com"), ("LastName", "O'Neil")],
            ),
        ])
        .await
        .unwrap();
    let (id1, created1) = done(&out.items[0]);
    let (id2, _) = done(&out.items[1]);
    assert!(created1);
    let recorded = state.remote_ids.lock().unwrap().clone();
    assert_eq!(
        recorded,
        BTreeMap::from([(1, id1.clone()), (2, id2.clone())])
    );
    assert_eq!(
        by_email(&sb, "o'neil@example.com")[0].fields["Company"],
        "[not provided]"
    );

    // Same person by email (apostrophe escaped in SOQL): found, updated, not created again.
    let again = c
        .upsert_people(&[rec(3, &[("Email", "O'Neil@example.com"), ("Title", "CTO")])])
        .await
        .unwrap();
    assert_eq!(done(&again.items[0]), (id2.clone(), false));

    // With the remote id tandem already knows: no query at all, one PATCH by Id.
    let before = sb.stats().api_calls;
    let mut known = rec(4, &[("Email", "lead1@example.com"), ("Title", "VP")]);
    known.remote_id = Some(id1.clone());
    let out = c.upsert_people(&[known]).await.unwrap();
    assert_eq!(done(&out.items[0]), (id1.clone(), false));
    assert_eq!(sb.stats().api_calls - before, 1);
    assert_eq!(sb.records().len(), 2);
    assert_eq!(
        sb.state()
            .records()
            .iter()
            .find(|r| r.id == id1)
            .unwrap()
            .fields["Title"],
        "VP"
    );
}

#[tokio::test]
async fn a_create_whose_answer_was_dropped_is_retried_without_a_duplicate() {
    for mode in ["external_id", "email"] {
        let sb = sandbox(options()).await;
        let (c, _) = client_with_state(
            &sb,
            if mode == "email" {
                json!({"match": "email"})
            } else {
                json!({"match": "external_id", "external_id_field": "Tandem_Email__c"})
            },
        );
        sb.state().set_faults(CrmFaults {
            drop_after_write_next: 1,
            ..Default::default()
        });
        let err = c.upsert_people(&[lead(1), lead(2)]).await.unwrap_err();
        assert!(
            matches!(err, CallError::Transient { .. }),
            "{mode}: {err:?}"
        );
        assert_eq!(sb.records().len(), 2, "{mode}: the write was applied");
        let retry = c.upsert_people(&[lead(1), lead(2)]).await.expect("retry");
        for item in &retry.items {
            assert!(!done(item).1, "{mode}: the retry must update, not create");
        }
        assert_eq!(sb.records().len(), 2, "{mode}: still one record per person");
        assert_eq!(sb.stats().drops, 1);
    }
}

#[tokio::test]
async fn conflict_rules_keep_what_sales_typed_in_both_modes() {
    for mode in ["external_id", "email"] {
        let sb = sandbox(options()).await;
        let (c, _) = client_with_state(
            &sb,
            if mode == "email" {
                json!({"match": "email"})
            } else {
                json!({"match": "external_id", "external_id_field": "Tandem_Email__c"})
            },
        );
        let ruled = |n: i64, phone: &str, title: &str, source: &str| {
            let mut r = rec(
                n,
                &[
                    ("Email", "sam@example.com"),
                    ("LastName", "Sam"),
                    ("Company", "Acme"),
                    ("Phone", phone),
                    ("Title", title),
                    ("LeadSource", source),
                ],
            );
            r.conflict = BTreeMap::from([
                ("Phone".to_owned(), OnConflict::FillEmpty),
                ("Title".to_owned(), OnConflict::FillEmpty),
                ("LeadSource".to_owned(), OnConflict::Never),
            ]);
            r
        };
        let out = c
            .upsert_people(&[ruled(1, "+1 555 0100", "", "Web")])
            .await
            .unwrap();
        let (id, created) = done(&out.items[0]);
        assert!(created, "{mode}");
        let r = &by_email(&sb, "sam@example.com")[0];
        assert_eq!(
            r.fields["LeadSource"], "Web",
            "{mode}: never still writes on create"
        );
        assert!(!r.fields.contains_key("Title"));

        sb.state().edit(&id, "Phone", "+1 555 0199"); // sales typed a better number
        let before = sb.stats();
        let out = c
            .upsert_people(&[ruled(2, "+1 555 0100", "CTO", "Ads")])
            .await
            .unwrap();
        assert_eq!(done(&out.items[0]), (id.clone(), false), "{mode}");
        let r = &by_email(&sb, "sam@example.com")[0];
        assert_eq!(
            r.fields["Phone"], "+1 555 0199",
            "{mode}: fill_empty kept the salesperson's value"
        );
        assert_eq!(
            r.fields["Title"], "CTO",
            "{mode}: fill_empty filled an empty field"
        );
        assert_eq!(
            r.fields["LeadSource"], "Web",
            "{mode}: never is only on create"
        );
        let after = sb.stats();
        assert_eq!(
            after.queries - before.queries,
            1,
            "{mode}: one batch read of current values"
        );
        assert_eq!(
            after.api_calls - before.api_calls,
            2,
            "{mode}: read + write"
        );
        assert_eq!(sb.records().len(), 1);
    }
}

#[tokio::test]
async fn one_bad_record_fails_alone_with_salesforces_message() {
    let sb = sandbox(options()).await;
    let c = ext_client(&sb);
    let mut batch = vec![lead(1), lead(2), lead(3)];
    batch[1] = rec(
        2,
        &[
            ("Email", "lead2@example.com"),
            ("Phone", "x".repeat(300).as_str()),
        ],
    );
    let out = c.upsert_people(&batch).await.unwrap();
    done(&out.items[0]);
    done(&out.items[2]);
    assert_eq!(
        out.items[1],
        ItemResult::Permanent {
            message: format!(
                "STRING_TOO_LONG: Phone: data value too large: {} (max length=255) (fields: Phone)",
                "x".repeat(300)
            )
        }
    );

    let (ec, _) = email_client(&sb);
    let out = ec
        .upsert_people(&[
            lead(4),
            rec(5, &[("Email", "not-an-email"), ("LastName", "X")]),
        ])
        .await
        .unwrap();
    done(&out.items[0]);
    assert_eq!(
        out.items[1],
        ItemResult::Permanent {
            message:
                "INVALID_EMAIL_ADDRESS: Email: invalid email address: not-an-email (fields: Email)"
                    .into()
        }
    );

    // A validation rule (injected): every record refused with Salesforce's per-record shape.
    sb.state().set_faults(CrmFaults {
        item_failure_rate: 1.0,
        seed: Some(1),
        ..Default::default()
    });
    let out = c.upsert_people(&[lead(6)]).await.unwrap();
    assert!(matches!(&out.items[0], ItemResult::Permanent { message }
        if message.starts_with("FIELD_CUSTOM_VALIDATION_EXCEPTION: ")));
    assert_eq!(sb.records().len(), 3, "leads 1, 3 and 4");
}

#[tokio::test]
async fn an_ambiguous_match_is_permanent_for_that_record_only() {
    let sb = sandbox(options()).await;
    let a = sb.state().insert(
        "Lead",
        &[
            ("LastName", "A"),
            ("Company", "X"),
            ("Email", "twin@example.com"),
            ("Tandem_Email__c", "twin@example.com"),
        ],
    );
    let b = sb.state().insert(
        "Lead",
        &[
            ("LastName", "B"),
            ("Company", "X"),
            ("Email", "twin@example.com"),
            ("Tandem_Email__c", "twin@example.com"),
        ],
    );
    let c = ext_client(&sb);
    let out = c
        .upsert_people(&[rec(1, &[("Email", "twin@example.com")]), lead(2)])
        .await
        .unwrap();
    assert_eq!(
        out.items[0],
        ItemResult::Permanent {
            message: format!(
                "DUPLICATE_EXTERNAL_ID: Tandem_Email__c: more than one record found for external id field: [{a}, {b}] (fields: Tandem_Email__c)"
            )
        }
    );
    done(&out.items[1]);
    let (ec, _) = email_client(&sb);
    let out = ec
        .upsert_people(&[rec(3, &[("Email", "TWIN@example.com")])])
        .await
        .unwrap();
    assert!(
        matches!(&out.items[0], ItemResult::Permanent { message } if message.contains(&a) && message.contains("merge them"))
    );
}

#[tokio::test]
async fn limits_are_rate_limits_never_auth_and_the_budget_reserve_pauses() {
    let sb = sandbox(options()).await;
    let c = ext_client(&sb);
    // Concurrency pressure: 403 REQUEST_LIMIT_EXCEEDED, a short wait.
    sb.state().set_faults(CrmFaults {
        rate_limit_next: 1,
        ..Default::default()
    });
    match c.upsert_people(&[lead(1)]).await.unwrap_err() {
        CallError::RateLimited {
            message,
            retry_after,
        } => {
            assert_eq!(retry_after, Duration::from_secs(3));
            assert!(
                message.contains("REQUEST_LIMIT_EXCEEDED: ConcurrentRequests"),
                "{message}"
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(sb.records().is_empty());
    // Budget nearly spent: the call works and tells the engine to pause.
    sb.state().set_daily_used(98_500);
    let out = c.upsert_people(&[lead(1)]).await.unwrap();
    assert_eq!(out.pause_for, Some(Duration::from_secs(15 * 60)));
    // Budget spent: 403 REQUEST_LIMIT_EXCEEDED TotalRequests → the long limit_pause.
    sb.state().set_daily_used(100_000);
    match c.upsert_people(&[lead(2)]).await.unwrap_err() {
        CallError::RateLimited {
            message,
            retry_after,
        } => {
            assert_eq!(retry_after, Duration::from_secs(15 * 60));
            assert!(
                message.contains("TotalRequests Limit exceeded."),
                "{message}"
            );
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(sb.stats().rate_limited, 2);
    sb.state().set_daily_used(10);
    let out = c.upsert_people(&[lead(2)]).await.unwrap();
    assert_eq!(out.pause_for, None);
}

#[tokio::test]
async fn server_errors_and_timeouts_are_transient() {
    let sb = sandbox(options()).await;
    let (c, _) = email_client(&sb);
    sb.state().set_faults(CrmFaults {
        server_error_next: 1,
        ..Default::default()
    });
    match c.upsert_people(&[lead(1)]).await.unwrap_err() {
        CallError::Transient { message, .. } => {
            assert!(
                message.contains("503") && message.contains("SERVER_UNAVAILABLE"),
                "{message}"
            )
        }
        other => panic!("{other:?}"),
    }
    assert!(sb.records().is_empty());
    sb.state().set_faults(CrmFaults {
        delay_ms: 4_000,
        ..Default::default()
    });
    match c.upsert_people(&[lead(1)]).await.unwrap_err() {
        CallError::Transient { message, .. } => {
            assert!(message.contains("did not answer within 3s"), "{message}")
        }
        other => panic!("{other:?}"),
    }
    sb.state().set_faults(CrmFaults::default());
    done(&c.upsert_people(&[lead(1)]).await.unwrap().items[0]);
}

#[tokio::test]
async fn a_dead_refresh_grant_asks_for_a_reconnect() {
    let sb = sandbox(options()).await;
    let c = ext_client(&sb);
    done(&c.upsert_people(&[lead(1)]).await.unwrap().items[0]);
    sb.state().revoke_refresh_tokens();
    match c.upsert_people(&[lead(2)]).await.unwrap_err() {
        CallError::Auth { status, message } => {
            assert_eq!(status, 401);
            assert!(message.starts_with("reconnect needed"), "{message}");
            assert!(message.contains("invalid_grant"), "{message}");
            assert!(!message.contains(&options().client_secret));
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn an_expired_session_is_refreshed_once_for_concurrent_calls() {
    let sb = sandbox(options()).await;
    let c = Arc::new(ext_client(&sb));
    done(&c.upsert_people(&[lead(0)]).await.unwrap().items[0]);
    assert_eq!(sb.stats().token_refreshes, 1);
    sb.state().expire_tokens();
    let calls = (1..=4).map(|n| {
        let c = c.clone();
        tokio::spawn(async move { c.upsert_people(&[lead(n)]).await })
    });
    for call in calls {
        let out = call.await.unwrap().expect("refreshed and retried");
        assert!(done(&out.items[0]).1);
    }
    assert_eq!(
        sb.stats().token_refreshes,
        2,
        "one refresh shared by all four calls"
    );
    assert_eq!(sb.records().len(), 5);
    // Calls that asked for a token while the refresh ran got the fresh one without a 401.
    assert!((1..=4).contains(&sb.stats().unauthorized));
}

#[tokio::test]
async fn rotated_refresh_tokens_are_persisted_and_used() {
    let sb = sandbox(SandboxOptions {
        rotate_refresh_tokens: true,
        ..options()
    })
    .await;
    let (c, state) = client_with_state(&sb, json!({"match": "email"}));
    done(&c.upsert_people(&[lead(1)]).await.unwrap().items[0]);
    let saved = state.token.lock().unwrap().clone().expect("token saved");
    let rotated = saved.refresh_token.clone().unwrap();
    assert_ne!(rotated, options().refresh_token);
    assert_eq!(saved.extra["instance_url"], sb.base_url());
    sb.state().expire_tokens();
    done(&c.upsert_people(&[lead(99)]).await.unwrap().items[0]);
    let again = state.token.lock().unwrap().clone().unwrap();
    assert_ne!(
        again.refresh_token.unwrap(),
        rotated,
        "rotated again, old one no longer valid"
    );
}

#[tokio::test]
async fn verify_names_misspelt_and_unwritable_fields_with_a_fix() {
    let sb = sandbox(options()).await;
    let c = ext_client(&sb);
    let good: Vec<String> = [
        "Email",
        "FirstName",
        "LastName",
        "Company",
        "Phone",
        "LeadSource",
    ]
    .map(String::from)
    .to_vec();
    assert_eq!(c.verify(&good).await, Vec::<String>::new());
    let problems = c
        .verify(&[
            "Emial".into(),
            "HasOptedOutOfEmail".into(),
            "IsConverted".into(),
            "Compnay".into(),
        ])
        .await;
    assert_eq!(problems.len(), 4, "{problems:?}");
    assert_eq!(
        problems[0],
        "unknown field Emial on Lead — did you mean Email?"
    );
    assert!(problems[1].contains("type boolean") && problems[1].contains("checkbox"));
    assert!(problems[2].contains("IsConverted"));
    assert_eq!(
        problems[3],
        "unknown field Compnay on Lead — did you mean Company?"
    );
    assert!(sb.records().is_empty(), "verify never writes");

    // An external id field that isn't one, and an org without it.
    let (bad, _) = client_with_state(
        &sb,
        json!({"match": "external_id", "external_id_field": "Title"}),
    );
    assert!(bad.verify(&good).await[0].contains("is not marked External ID"));
    let bare = sandbox(SandboxOptions {
        external_id_field: None,
        ..options()
    })
    .await;
    let (missing, _) = client_with_state(
        &bare,
        json!({"match": "external_id", "external_id_field": "Tandem_Email__c"}),
    );
    assert!(missing.verify(&good).await[0].contains("does not exist on Lead"));
    // Email mode without Email mapped can't find anyone.
    let (ec, _) = email_client(&sb);
    assert!(ec.verify(&["LastName".into()]).await[0].contains("maps no Email"));
}

#[tokio::test]
async fn requests_match_salesforces_documented_shapes() {
    let sb = sandbox(options()).await;
    let c = ext_client(&sb);
    c.upsert_people(&[rec(
        1,
        &[("Email", "A@x.com"), ("LastName", "A"), ("Company", "C")],
    )])
    .await
    .unwrap();
    let log = sb.stats().log;
    assert_eq!(log.len(), 1);
    assert_eq!(log[0].method, "PATCH");
    assert_eq!(
        log[0].path,
        "/services/data/v62.0/composite/sobjects/Lead/Tandem_Email__c"
    );
    assert_eq!(
        log[0].body,
        Some(json!({"allOrNone": false, "records": [{
            "attributes": {"type": "Lead"}, "Email": "A@x.com", "LastName": "A", "Company": "C",
            "Tandem_Email__c": "a@x.com"
        }]}))
    );

    let (ec, _) = client_with_state(
        &sb,
        json!({"match": "email", "object": "Contact", "api_version": "v60.0"}),
    );
    ec.upsert_people(&[rec(2, &[("Email", "b@x.com")])])
        .await
        .unwrap();
    let log = sb.stats().log;
    let q = &log[1];
    assert_eq!(
        (q.method.as_str(), q.path.as_str()),
        ("GET", "/services/data/v60.0/query")
    );
    let query: Vec<(String, String)> = url_decode_pairs(q.query.as_deref().unwrap());
    assert_eq!(
        query,
        [(
            "q".to_owned(),
            "SELECT Id, Email FROM Contact WHERE Email IN ('b@x.com')".to_owned()
        )]
    );
    assert_eq!(
        (log[2].method.as_str(), log[2].path.as_str()),
        ("POST", "/services/data/v60.0/composite/sobjects")
    );
    assert_eq!(
        log[2].body,
        Some(
            json!({"allOrNone": false, "records": [{"attributes": {"type": "Contact"}, "Email": "b@x.com", "LastName": "[not provided]"}]})
        )
    );
    let id = sb
        .records()
        .into_iter()
        .find(|r| r.object == "Contact")
        .unwrap()
        .id;
    ec.upsert_people(&[rec(3, &[("Email", "b@x.com"), ("Title", "CEO")])])
        .await
        .unwrap();
    let log = sb.stats().log;
    assert_eq!(
        (log[4].method.as_str(), log[4].path.as_str()),
        ("PATCH", "/services/data/v60.0/composite/sobjects")
    );
    assert_eq!(
        log[4].body,
        Some(
            json!({"allOrNone": false, "records": [{"attributes": {"type": "Contact"}, "Id": id, "Email": "b@x.com", "Title": "CEO"}]})
        )
    );
}

fn url_decode_pairs(q: &str) -> Vec<(String, String)> {
    reqwest::Url::parse(&format!("http://x/?{q}"))
        .unwrap()
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

#[tokio::test]
async fn the_sandbox_answers_like_salesforce() {
    let sb = sandbox(options()).await;
    let http = reqwest::Client::new();
    let base = sb.base_url();
    // Token endpoint: no expires_in, instance_url, refusals in OAuth shape.
    let o = options();
    let tok: Value = http
        .post(format!("{base}/services/oauth2/token"))
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", o.refresh_token.as_str()),
            ("client_id", o.client_id.as_str()),
            ("client_secret", o.client_secret.as_str()),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        tok.get("expires_in").is_none()
            && tok["instance_url"] == base
            && tok["token_type"] == "Bearer"
    );
    let bad = http
        .post(format!("{base}/services/oauth2/token"))
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", "nope"),
            ("client_id", o.client_id.as_str()),
            ("client_secret", o.client_secret.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    assert_eq!(bad.json::<Value>().await.unwrap()["error"], "invalid_grant");
    let token = tok["access_token"].as_str().unwrap().to_owned();
    // 401 shape.
    let r = http
        .get(format!("{base}/services/data/v62.0/sobjects/Lead/describe"))
        .bearer_auth("x")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!([{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}])
    );
    // Over 200 records: refused whole, with the usage header.
    let records: Vec<Value> = (0..201).map(|i| json!({"attributes": {"type": "Lead"}, "LastName": "x", "Company": "y", "Email": format!("n{i}@x.co")})).collect();
    let r = http
        .post(format!("{base}/services/data/v62.0/composite/sobjects"))
        .bearer_auth(&token)
        .json(&json!({"allOrNone": false, "records": records}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(r.headers()["sforce-limit-info"], "api-usage=1/100000");
    assert_eq!(
        r.json::<Value>().await.unwrap()[0]["errorCode"],
        "EXCEEDED_ID_LIMIT"
    );
    // Unknown field: whole request; allOrNone rolls back the good record.
    let r = http.post(format!("{base}/services/data/v62.0/composite/sobjects")).bearer_auth(&token)
        .json(&json!({"allOrNone": false, "records": [{"attributes": {"type": "Lead"}, "Foo__c": "1"}]})).send().await.unwrap();
    assert_eq!(
        r.json::<Value>().await.unwrap()[0]["errorCode"],
        "INVALID_FIELD"
    );
    let r: Value = http
        .post(format!("{base}/services/data/v62.0/composite/sobjects"))
        .bearer_auth(&token)
        .json(&json!({"allOrNone": true, "records": [
            {"attributes": {"type": "Lead"}, "LastName": "ok", "Company": "c"},
            {"attributes": {"type": "Lead"}, "LastName": "no company"}]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        r[0]["errors"][0]["statusCode"],
        "ALL_OR_NONE_OPERATION_ROLLED_BACK"
    );
    assert_eq!(
        r[1]["errors"][0],
        json!({"statusCode": "REQUIRED_FIELD_MISSING", "message": "Required fields are missing: [Company]", "fields": ["Company"]})
    );
    assert!(sb.records().is_empty());
    // SOQL paging and malformed queries.
    let small = sandbox(SandboxOptions {
        query_page_size: 2,
        ..options()
    })
    .await;
    for i in 0..5 {
        small.state().insert(
            "Lead",
            &[
                ("LastName", "x"),
                ("Company", "c"),
                ("Email", &format!("p{i}@x.co")),
            ],
        );
    }
    let (c, _) = client_with_state(&small, json!({"match": "email"}));
    let batch: Vec<SinkRecord> = (0..5)
        .map(|i| rec(i, &[("Email", &format!("p{i}@x.co"))]))
        .collect();
    let out = c.upsert_people(&batch).await.unwrap();
    assert!(
        out.items.iter().all(|i| !done(i).1),
        "all five found across three pages"
    );
    assert_eq!(small.stats().queries, 3);
    assert_eq!(small.records().len(), 5);
    let r = http
        .get(format!("{base}/services/data/v62.0/query"))
        .query(&[("q", "SELECT Id FROM Lead WHERE")])
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(
        r.json::<Value>().await.unwrap()[0]["errorCode"],
        "MALFORMED_QUERY"
    );
}

#[tokio::test]
async fn the_conformance_adapter_points_a_working_connector_at_the_sandbox() {
    let sb = tandem_connectors::sandbox::start_crm("salesforce")
        .await
        .unwrap()
        .expect("salesforce sandbox");
    let toml = sb.connector_toml();
    assert!(toml.starts_with("kind = \"salesforce\"\n"));
    // The table body is flat `key = "string"` lines.
    let mut table = serde_json::Map::new();
    for line in toml.lines().skip(1) {
        let (k, v) = line.split_once(" = ").unwrap();
        table.insert(k.to_owned(), Value::String(v.trim_matches('"').to_owned()));
    }
    let cfg: SalesforceConfig = serde_json::from_value(Value::Object(table)).unwrap();
    assert!(cfg.validate().is_empty());
    let c = SalesforceClient::new(&cfg, ConnectorContext::in_memory("sf")).unwrap();
    let f = sb.fields();
    let r = rec(
        1,
        &[
            (f.email, "conf@example.com"),
            (f.last_name, "Conf"),
            (f.company, "Acme"),
        ],
    );
    done(&c.upsert_people(&[r]).await.unwrap().items[0]);
    sb.edit("conf@example.com", f.phone, "+1 555");
    let stored = sb.record_by_email("CONF@example.com").unwrap();
    assert_eq!(stored.fields[f.phone], "+1 555");
    assert_eq!(stored.writes, 1, "an edit is not a tandem write");
    assert_eq!(
        (
            sb.stats().api_calls,
            sb.stats().token_refreshes,
            sb.batch_limit()
        ),
        (1, 1, 200)
    );
}

/// The number quoted in docs/crm/salesforce.md: API calls (token refreshes excluded) for 1,000
/// new leads in full batches of 200, per mode, without and with conflict rules.
#[tokio::test]
async fn api_calls_per_thousand_new_leads() {
    let mut figures = Vec::new();
    for (mode, rules) in [
        ("external_id", false),
        ("external_id", true),
        ("email", false),
        ("email", true),
    ] {
        let sb = sandbox(options()).await;
        let (c, _) = client_with_state(
            &sb,
            if mode == "email" {
                json!({"match": "email"})
            } else {
                json!({"match": "external_id", "external_id_field": "Tandem_Email__c"})
            },
        );
        let leads: Vec<SinkRecord> = (0..1000)
            .map(|n| {
                let mut r = lead(n);
                r.properties.insert("Phone".into(), "+1 555 0100".into());
                if rules {
                    r.conflict.insert("Phone".into(), OnConflict::FillEmpty);
                }
                r
            })
            .collect();
        for chunk in leads.chunks(c.max_batch()) {
            let out = c.upsert_people(chunk).await.unwrap();
            assert!(out.items.iter().all(|i| done(i).1));
        }
        assert_eq!(sb.records().len(), 1000);
        let calls = sb.stats().api_calls;
        figures.push(((mode, rules), calls));
        eprintln!(
            "salesforce match={mode} conflict_rules={rules}: {calls} API calls per 1,000 new leads"
        );
    }
    assert_eq!(
        figures,
        [
            (("external_id", false), 5),
            (("external_id", true), 10),
            (("email", false), 10),
            (("email", true), 10),
        ]
    );
}

#[tokio::test]
async fn a_duplicate_rule_refusal_is_permanent_with_salesforces_words() {
    // An older lead without the external id value: the upsert creates, the org's duplicate rule
    // refuses. The fix (backfill Tandem_Email__c) is in the docs.
    let sb = sandbox(SandboxOptions {
        duplicate_rule: true,
        ..options()
    })
    .await;
    sb.state().insert(
        "Lead",
        &[
            ("LastName", "Old"),
            ("Company", "X"),
            ("Email", "old@example.com"),
        ],
    );
    let c = ext_client(&sb);
    let out = c
        .upsert_people(&[rec(1, &[("Email", "old@example.com")]), lead(2)])
        .await
        .unwrap();
    assert_eq!(
        out.items[0],
        ItemResult::Permanent {
            message: "DUPLICATES_DETECTED: Use one of these records?".into()
        }
    );
    done(&out.items[1]);
}
