//! The `meta_lead_ads` preset and its Graph fetcher, over real loopback HTTP against the Meta
//! sandbox: handshake, signatures (incl. the VENDOR-NOTES §15 vector), notification parsing,
//! the lead mapping, every error class, and arbitrary input never panicking.

use std::{collections::BTreeMap, net::SocketAddr, sync::Arc, time::Duration};

use serde_json::json;
use tandem_connectors::{
    CallError, ConnectorContext, ConnectorKind,
    sandbox::{CrmFaults, SourceSandbox},
    source::{
        FetchRequest, Handshake, LeadFetcher, PresetError, PresetOutput, PresetRequest,
        WebhookPreset,
    },
    webhook::{
        WebhookConfig,
        presets::meta_lead_ads::{
            self, GraphFetcher, MetaLeadAds,
            sandbox::{MetaSandbox, MetaSandboxOptions, SandboxLead},
        },
    },
};

const LOOPBACK: &str = "127.0.0.1:0";

fn loopback() -> SocketAddr {
    LOOPBACK.parse().expect("loopback address")
}

fn config_for(sandbox: &MetaSandbox) -> WebhookConfig {
    let o = sandbox.options();
    serde_json::from_value(json!({
        "preset": "meta_lead_ads",
        "secret": o.app_secret,
        "verify_token": o.verify_token,
        "access_token": o.access_token,
        "api_base_url": sandbox.base_url(),
    }))
    .expect("config")
}

fn offline_config() -> WebhookConfig {
    serde_json::from_value(json!({
        "preset": "meta_lead_ads",
        "secret": "appsecret",
        "verify_token": "tok-123",
        "access_token": "page-token",
    }))
    .expect("config")
}

async fn start(options: MetaSandboxOptions) -> (MetaSandbox, GraphFetcher, MetaLeadAds) {
    let sandbox = MetaSandbox::start(loopback(), options)
        .await
        .expect("sandbox");
    let config = config_for(&sandbox);
    let fetcher = GraphFetcher::new(&config, ConnectorContext::in_memory("fb")).expect("fetcher");
    (sandbox, fetcher, MetaLeadAds::new(&config))
}

fn json_headers(signature: Option<String>) -> BTreeMap<String, String> {
    let mut h = BTreeMap::new();
    h.insert("content-type".to_owned(), "application/json".to_owned());
    if let Some(s) = signature {
        h.insert("x-hub-signature-256".to_owned(), s);
    }
    h
}

fn request<'a>(headers: &'a BTreeMap<String, String>, body: &'a [u8]) -> PresetRequest<'a> {
    PresetRequest {
        method: "POST",
        url: "https://tandem.example/hooks/fb",
        headers,
        body,
        now_ms: 0,
    }
}

fn fetch_request(id: &str) -> FetchRequest {
    FetchRequest {
        event_id: id.to_owned(),
        hints: BTreeMap::new(),
    }
}

// ---------------------------------------------------------------------------------------------
// Handshake and signatures

#[test]
fn handshake_accepts_the_right_token_and_refuses_the_rest() {
    let preset = MetaLeadAds::new(&offline_config());
    assert_eq!(
        preset.handshake("hub.mode=subscribe&hub.challenge=1158201444&hub.verify_token=tok-123"),
        Some(Handshake::Accept("1158201444".to_owned()))
    );
    for refused in [
        "hub.mode=subscribe&hub.challenge=1158201444&hub.verify_token=tok-124",
        "hub.mode=subscribe&hub.challenge=1158201444&hub.verify_token=tok-12",
        "hub.mode=subscribe&hub.challenge=1158201444",
        "hub.mode=other&hub.challenge=1158201444&hub.verify_token=tok-123",
        "hub.challenge=1158201444&hub.verify_token=tok-123",
        "hub.mode=subscribe&hub.verify_token=tok-123",
        "",
    ] {
        assert!(
            matches!(preset.handshake(refused), Some(Handshake::Refuse(_))),
            "{refused}"
        );
    }
}

#[tokio::test]
async fn the_sandbox_handshake_query_is_accepted() {
    let (sandbox, _, preset) = start(MetaSandboxOptions::default()).await;
    assert_eq!(
        preset.handshake(&sandbox.handshake_query("42")),
        Some(Handshake::Accept("42".to_owned()))
    );
}

#[test]
fn vendor_notes_section_15_meta_vector() {
    let body = br#"{"object":"page"}"#;
    let expected = "sha256=b38a2f589e8e63c7fc3318ee5fad162aa1c05bd62cb1ec87c9a61641619505e2";
    assert_eq!(meta_lead_ads::sign(b"appsecret", body), expected);
    let preset = MetaLeadAds::new(&offline_config());
    let headers = json_headers(Some(expected.to_owned()));
    assert_eq!(preset.verify(&request(&headers, body)), Ok(()));
    // Upper-case hex is the same signature.
    let headers = json_headers(Some(expected.to_uppercase().replace("SHA256=", "sha256=")));
    assert_eq!(preset.verify(&request(&headers, body)), Ok(()));
}

#[tokio::test]
async fn signatures_good_bad_and_missing() {
    let (sandbox, _, preset) = start(MetaSandboxOptions::default()).await;
    let id = sandbox.add_lead(SandboxLead::new("1001", "2002").field("email", "a@b.co"));
    let body = sandbox.notification_body(&[&id]);
    let good = json_headers(Some(sandbox.sign(&body)));
    assert_eq!(preset.verify(&request(&good, &body)), Ok(()));

    let mut tampered = body.clone();
    tampered.push(b' ');
    assert!(matches!(
        preset.verify(&request(&good, &tampered)),
        Err(PresetError::Unauthorized(_))
    ));
    let wrong = json_headers(Some(meta_lead_ads::sign(b"not-the-secret", &body)));
    assert!(matches!(
        preset.verify(&request(&wrong, &body)),
        Err(PresetError::Unauthorized(_))
    ));
    let missing = json_headers(None);
    match preset.verify(&request(&missing, &body)) {
        Err(PresetError::Unauthorized(m)) => assert!(m.contains("X-Hub-Signature-256")),
        other => panic!("{other:?}"),
    }
    // The legacy SHA-1 header alone is not enough.
    let mut legacy = json_headers(None);
    legacy.insert("x-hub-signature".to_owned(), "sha1=abcdef".to_owned());
    assert!(preset.verify(&request(&legacy, &body)).is_err());
    let malformed = json_headers(Some("sha256=xyz".to_owned()));
    assert!(preset.verify(&request(&malformed, &body)).is_err());
    // A configuration without the app secret refuses rather than accepting unsigned posts.
    let no_secret: WebhookConfig = serde_json::from_value(json!({
        "preset": "meta_lead_ads", "verify_token": "v", "access_token": "t"
    }))
    .unwrap();
    assert!(
        MetaLeadAds::new(&no_secret)
            .verify(&request(&good, &body))
            .is_err()
    );
}

#[test]
fn errors_and_debug_output_carry_no_secrets() {
    let config = offline_config();
    let debug = format!("{config:?}");
    assert!(!debug.contains("appsecret") && !debug.contains("page-token"));
    let preset = MetaLeadAds::new(&config);
    let body = b"{}";
    let headers = json_headers(Some(meta_lead_ads::sign(b"x", body)));
    let err = preset.verify(&request(&headers, body)).unwrap_err();
    assert!(!err.to_string().contains("appsecret"));
    match preset.handshake("hub.mode=subscribe&hub.challenge=1&hub.verify_token=guess") {
        Some(Handshake::Refuse(reason)) => {
            assert!(!reason.contains("tok-123") && !reason.contains("guess"))
        }
        other => panic!("{other:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Notifications

#[test]
fn notifications_with_several_entries_and_other_fields() {
    let preset = MetaLeadAds::new(&offline_config());
    let body = json!({
        "object": "page",
        "entry": [
            {"id": "111", "time": 1717243200, "changes": [
                {"field": "leadgen", "value": {"leadgen_id": "9001", "page_id": "111",
                    "form_id": "501", "adgroup_id": "601", "ad_id": "701",
                    "created_time": 1717243200}},
                {"field": "feed", "value": {"item": "status", "verb": "add"}},
                {"field": "leadgen", "value": {"leadgen_id": 9002, "form_id": 502,
                    "created_time": "1717243260", "campaign_id": "801"}}
            ]},
            {"id": "222", "time": 1717243300, "messaging": [{"sender": {"id": "1"}}]},
            {"id": "333", "time": 1717243300, "changes": [
                {"field": "leadgen", "value": {"leadgen_id": "9003", "page_id": "333"}},
                {"field": "leadgen", "value": {"leadgen_id": "9001", "page_id": "111"}}
            ]}
        ]
    })
    .to_string();
    let headers = json_headers(None);
    let Ok(PresetOutput::Fetch(requests)) = preset.parse(&request(&headers, body.as_bytes()))
    else {
        panic!("expected Fetch");
    };
    let ids: Vec<&str> = requests.iter().map(|r| r.event_id.as_str()).collect();
    assert_eq!(
        ids,
        ["9001", "9002", "9003"],
        "one request per lead, duplicates once"
    );
    let first = &requests[0].hints;
    assert_eq!(first["form_id"], "501");
    assert_eq!(first["adset_id"], "601");
    assert_eq!(first["ad_id"], "701");
    assert_eq!(first["page_id"], "111");
    assert_eq!(first["created_time"], "2024-06-01T12:00:00Z");
    let second = &requests[1].hints;
    assert_eq!(second["form_id"], "502");
    assert_eq!(second["campaign_id"], "801");
    assert_eq!(second["page_id"], "111", "page from the entry id");
    assert_eq!(second["created_time"], "2024-06-01T12:01:00Z");
    assert!(!second.contains_key("ad_id"));

    // Only non-leadgen changes, or another object: nothing to do, answer 200.
    let only_feed =
        json!({"object":"page","entry":[{"id":"1","changes":[{"field":"feed","value":{}}]}]});
    assert_eq!(
        preset.parse(&request(&headers, only_feed.to_string().as_bytes())),
        Ok(PresetOutput::Nothing)
    );
    let user = json!({"object":"user","entry":[{"id":"1","changes":[{"field":"email"}]}]});
    assert_eq!(
        preset.parse(&request(&headers, user.to_string().as_bytes())),
        Ok(PresetOutput::Nothing)
    );
}

#[test]
fn malformed_notifications_name_the_field_and_other_media_types_are_415() {
    let preset = MetaLeadAds::new(&offline_config());
    let headers = json_headers(None);
    let field_of = |body: serde_json::Value| match preset
        .parse(&request(&headers, body.to_string().as_bytes()))
    {
        Err(PresetError::Malformed { field, .. }) => field,
        other => panic!("expected Malformed, got {other:?}"),
    };
    assert_eq!(field_of(json!({"object":"page","entry":{}})), "entry");
    assert_eq!(field_of(json!({"object":"page","entry":[1]})), "entry[0]");
    assert_eq!(
        field_of(json!({"object":"page","entry":[{"changes":{}}]})),
        "entry[0].changes"
    );
    assert_eq!(
        field_of(json!({"object":"page","entry":[{"changes":[{"field":"leadgen"}]}]})),
        "entry[0].changes[0].value"
    );
    assert_eq!(
        field_of(
            json!({"object":"page","entry":[{},{"changes":[{"field":"leadgen","value":{"leadgen_id":true}}]}]})
        ),
        "entry[1].changes[0].value.leadgen_id"
    );
    assert_eq!(
        field_of(
            json!({"object":"page","entry":[{"changes":[{"field":"leadgen","value":{"leadgen_id":"1","created_time":"soon"}}]}]})
        ),
        "entry[0].changes[0].value.created_time"
    );
    assert!(matches!(
        preset.parse(&request(&headers, b"not json")),
        Err(PresetError::Malformed { field, .. }) if field == "body"
    ));
    let mut form = BTreeMap::new();
    form.insert(
        "content-type".to_owned(),
        "application/x-www-form-urlencoded".to_owned(),
    );
    assert!(matches!(
        preset.parse(&request(&form, b"a=b")),
        Err(PresetError::UnsupportedMediaType(_))
    ));
}

// ---------------------------------------------------------------------------------------------
// Fetching

#[tokio::test]
async fn a_notification_end_to_end_maps_field_data_and_every_id() {
    let (sandbox, fetcher, preset) = start(MetaSandboxOptions::default()).await;
    let id = sandbox.add_lead(
        SandboxLead::new(sandbox.next_lead_id(), "555555")
            .field("email", "Jane.Doe@Example.com")
            .field("full_name", "Jane van Doe")
            .field("phone_number", "+15555555555")
            .field("company_name", "Acme")
            .field("job_title", "CTO")
            .field("country", "US")
            .field("city", "Springfield")
            .values("which_products?", &["widgets", "gadgets"])
            .ad("66666", "77777", "88888")
            .names("Spring ad", "Spring set", "Spring campaign")
            .created(1_717_243_200)
            .platform("ig"),
    );
    let body = sandbox.notification_body(&[&id]);
    let headers = json_headers(Some(sandbox.sign(&body)));
    preset.verify(&request(&headers, &body)).expect("signed");
    let Ok(PresetOutput::Fetch(requests)) = preset.parse(&request(&headers, &body)) else {
        panic!("expected Fetch");
    };
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].hints["adset_id"], "77777");

    let lead = fetcher.fetch(&requests[0]).await.expect("lead");
    let f = &lead.fields;
    assert_eq!(lead.event_id.as_deref(), Some(id.as_str()));
    assert_eq!(lead.captured_at.as_deref(), Some("2024-06-01T12:00:00Z"));
    assert!(!lead.is_test);
    assert_eq!(f["email"], json!("Jane.Doe@Example.com"));
    assert_eq!(f["phone"], json!("+15555555555"));
    assert_eq!(f["first_name"], json!("Jane"));
    assert_eq!(f["last_name"], json!("van Doe"));
    assert_eq!(f["company"], json!("Acme"));
    assert_eq!(f["job_title"], json!("CTO"));
    assert_eq!(f["country"], json!("US"));
    assert_eq!(f["city"], json!("Springfield"));
    assert_eq!(f["which_products?"], json!(["widgets", "gadgets"]));
    assert_eq!(f["form"], json!("555555"));
    assert_eq!(f["ad_id"], json!("66666"));
    assert_eq!(f["adset_id"], json!("77777"));
    assert_eq!(f["campaign_id"], json!("88888"));
    assert_eq!(f["campaign_name"], json!("Spring campaign"));
    assert_eq!(f["page_id"], json!(sandbox.options().page_id));
    assert_eq!(f["platform"], json!("ig"));
    assert_eq!(f["is_organic"], json!(false));
    assert!(!f.contains_key("phone_number") && !f.contains_key("company_name"));
    let stats = sandbox.stats();
    assert_eq!((stats.requests, stats.leads_served), (1, 1));
    assert_eq!(
        stats.proofs_ok, 1,
        "appsecret_proof is sent when the secret is known"
    );
}

#[tokio::test]
async fn organic_and_testing_tool_leads() {
    let (sandbox, fetcher, _) = start(MetaSandboxOptions::default()).await;
    let organic = sandbox.add_lead(
        SandboxLead::new("3001", "4001")
            .field("email", "o@example.com")
            .created(1_717_243_200),
    );
    let mut hints = BTreeMap::new();
    hints.insert("page_id".to_owned(), "999".to_owned());
    let lead = fetcher
        .fetch(&FetchRequest {
            event_id: organic,
            hints,
        })
        .await
        .unwrap();
    assert_eq!(lead.fields["is_organic"], json!(true));
    assert_eq!(lead.fields["page_id"], json!("999"), "page from the hints");
    assert!(!lead.fields.contains_key("ad_id"));
    assert!(!lead.is_test);

    let test = sandbox.add_lead(
        SandboxLead::new("3002", "4001")
            .field("email", "test@fb.com")
            .field("full_name", "<test lead: dummy data for full_name>"),
    );
    let lead = fetcher.fetch(&fetch_request(&test)).await.unwrap();
    assert!(
        lead.is_test,
        "the Lead Ads Testing Tool's dummy data marks a test lead"
    );
}

#[tokio::test]
async fn an_unknown_lead_is_permanent_with_metas_message() {
    let (sandbox, fetcher, _) = start(MetaSandboxOptions::default()).await;
    match fetcher.fetch(&fetch_request("123456789")).await {
        Err(CallError::Permanent { message }) => {
            assert!(message.contains("100/33"), "{message}");
            assert!(message.contains("does not exist"), "{message}");
            assert!(message.contains("fbtrace_id"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(sandbox.stats().not_found, 1);
    // An id that is not a Graph id never reaches the network.
    assert!(matches!(
        fetcher.fetch(&fetch_request("../me/accounts")).await,
        Err(CallError::Permanent { .. })
    ));
    assert_eq!(sandbox.stats().requests, 1);
}

#[tokio::test]
async fn expired_and_wrong_tokens_are_auth_errors_without_the_token() {
    let (sandbox, fetcher, _) = start(MetaSandboxOptions::default()).await;
    let id = sandbox.add_lead(SandboxLead::new("5001", "1").field("email", "a@b.co"));
    sandbox.expire_token();
    match fetcher.fetch(&fetch_request(&id)).await {
        Err(CallError::Auth { status, message }) => {
            assert_eq!(status, 401);
            assert!(
                message.contains("190/463") && message.contains("expired"),
                "{message}"
            );
            assert!(!message.contains(&sandbox.options().access_token));
        }
        other => panic!("{other:?}"),
    }
    sandbox.restore_token();
    assert!(fetcher.fetch(&fetch_request(&id)).await.is_ok());

    let mut config = config_for(&sandbox);
    config.access_token = Some("some-other-token".to_owned().into());
    let wrong = GraphFetcher::new(&config, ConnectorContext::in_memory("fb")).unwrap();
    assert!(matches!(
        wrong.fetch(&fetch_request(&id)).await,
        Err(CallError::Auth { status: 401, .. })
    ));
    assert_eq!(sandbox.stats().unauthorized, 2);
}

#[tokio::test]
async fn appsecret_proof_required_and_missing_is_an_auth_error() {
    let options = MetaSandboxOptions {
        require_appsecret_proof: true,
        ..Default::default()
    };
    let (sandbox, fetcher, _) = start(options).await;
    let id = sandbox.add_lead(SandboxLead::new("5101", "1").field("email", "a@b.co"));
    assert!(fetcher.fetch(&fetch_request(&id)).await.is_ok());
    let mut config = config_for(&sandbox);
    config.secret = None;
    let no_proof = GraphFetcher::new(&config, ConnectorContext::in_memory("fb")).unwrap();
    assert!(matches!(
        no_proof.fetch(&fetch_request(&id)).await,
        Err(CallError::Auth { .. })
    ));
}

#[tokio::test]
async fn throttling_is_rate_limited_with_the_wait_from_the_usage_headers() {
    let (sandbox, fetcher, _) = start(MetaSandboxOptions {
        regain_access_minutes: 3,
        ..Default::default()
    })
    .await;
    let id = sandbox.add_lead(SandboxLead::new("6001", "1").field("email", "a@b.co"));
    sandbox.set_faults(CrmFaults {
        rate_limit_next: 1,
        ..Default::default()
    });
    match fetcher.fetch(&fetch_request(&id)).await {
        Err(CallError::RateLimited {
            message,
            retry_after,
        }) => {
            assert_eq!(retry_after, Duration::from_secs(180));
            assert!(message.contains("80005"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    assert!(fetcher.fetch(&fetch_request(&id)).await.is_ok());

    // The app-level code 4 without a BUC wait falls back to the default.
    let (sandbox, fetcher, _) = start(MetaSandboxOptions {
        rate_limit: 2,
        throttle_code: 4,
        ..Default::default()
    })
    .await;
    let id = sandbox.add_lead(SandboxLead::new("6002", "1").field("email", "a@b.co"));
    for _ in 0..2 {
        fetcher.fetch(&fetch_request(&id)).await.unwrap();
    }
    match fetcher.fetch(&fetch_request(&id)).await {
        Err(CallError::RateLimited { retry_after, .. }) => {
            // The window is an hour: about 60 minutes to regain access.
            assert!(
                retry_after >= Duration::from_secs(59 * 60),
                "{retry_after:?}"
            );
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(sandbox.stats().rate_limited, 1);
}

#[tokio::test]
async fn server_errors_and_dropped_connections_are_transient() {
    let (sandbox, fetcher, _) = start(MetaSandboxOptions::default()).await;
    let id = sandbox.add_lead(SandboxLead::new("7001", "1").field("email", "a@b.co"));
    sandbox.set_faults(CrmFaults {
        server_error_next: 1,
        drop_after_write_next: 1,
        ..Default::default()
    });
    assert!(matches!(
        fetcher.fetch(&fetch_request(&id)).await,
        Err(CallError::Transient { .. })
    ));
    match fetcher.fetch(&fetch_request(&id)).await {
        Err(CallError::Transient { message, .. }) => {
            assert!(!message.contains("appsecret_proof"), "{message}")
        }
        other => panic!("{other:?}"),
    }
    assert!(fetcher.fetch(&fetch_request(&id)).await.is_ok());
    let stats = sandbox.stats();
    assert_eq!((stats.server_errors, stats.drops), (1, 1));
}

#[tokio::test]
async fn an_unreachable_graph_is_transient() {
    // Bind and drop to find a port nothing listens on.
    let port = std::net::TcpListener::bind(LOOPBACK)
        .and_then(|l| l.local_addr())
        .unwrap()
        .port();
    let config: WebhookConfig = serde_json::from_value(json!({
        "preset": "meta_lead_ads", "secret": "s", "verify_token": "v", "access_token": "t",
        "api_base_url": format!("http://127.0.0.1:{port}/v21.0"),
    }))
    .unwrap();
    let fetcher = GraphFetcher::new(&config, ConnectorContext::in_memory("fb")).unwrap();
    assert!(matches!(
        fetcher.fetch(&fetch_request("1")).await,
        Err(CallError::Transient { .. })
    ));
}

#[tokio::test]
async fn the_registry_builds_the_preset_and_the_fetcher() {
    let sandbox = MetaSandbox::start(loopback(), MetaSandboxOptions::default())
        .await
        .unwrap();
    let mut table = String::new();
    for line in sandbox.connector_toml().lines() {
        if !line.starts_with("kind") {
            table.push_str(line);
            table.push('\n');
        }
    }
    let config: WebhookConfig = parse_toml_table(&table);
    let kind = ConnectorKind::Webhook(config);
    assert!(kind.validate().is_empty(), "{:?}", kind.validate());
    assert!(kind.webhook_preset().is_some());
    let fetcher: Arc<dyn LeadFetcher> = kind
        .lead_fetcher(ConnectorContext::in_memory("fb"))
        .unwrap()
        .expect("meta_lead_ads has a fetcher");
    assert!(fetcher.rate_limit().requests > 0);
    let id = SourceSandbox::add_lead(&sandbox, "p@example.com", "Pat", Some(1_717_243_200_000));
    let lead = fetcher.fetch(&fetch_request(&id)).await.unwrap();
    assert_eq!(lead.fields["email"], json!("p@example.com"));
    assert_eq!(lead.fields["first_name"], json!("Pat"));
    assert_eq!(lead.captured_at.as_deref(), Some("2024-06-01T12:00:00Z"));
    assert_eq!(SourceSandbox::stats(&sandbox).api_calls, 1);
}

/// The few `key = "value"` lines `connector_toml` writes, as a config (no toml crate here).
fn parse_toml_table(table: &str) -> WebhookConfig {
    let mut map = serde_json::Map::new();
    for line in table.lines() {
        let (k, v) = line.split_once(" = ").expect("key = value");
        let v: String = serde_json::from_str(v).expect("a quoted string");
        map.insert(k.to_owned(), v.into());
    }
    serde_json::from_value(serde_json::Value::Object(map)).unwrap()
}

// ---------------------------------------------------------------------------------------------
// Arbitrary input never panics

/// xorshift64*: deterministic, dependency-free.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next() as u8).collect()
    }
}

const INTERESTING: &[&[u8]] = &[
    b"{",
    b"}",
    b"[",
    b"]",
    b"\"",
    b":",
    b",",
    b"null",
    b"true",
    b"-1",
    b"1e999",
    b"\"leadgen\"",
    b"\"changes\"",
    b"\"entry\"",
    b"\"value\"",
    b"\\u0000",
    b"\xff\xfe",
    b"18446744073709551616",
    b"\"created_time\":-99999999999999",
];

fn mutate(rng: &mut Rng, seed: &[u8]) -> Vec<u8> {
    let mut b = seed.to_vec();
    for _ in 0..=rng.below(4) {
        let at = rng.below(b.len() + 1);
        match rng.below(5) {
            0 if !b.is_empty() => {
                let i = rng.below(b.len());
                b[i] = rng.next() as u8;
            }
            1 => b.truncate(at),
            2 => {
                let piece = INTERESTING[rng.below(INTERESTING.len())];
                b.splice(at..at, piece.iter().copied());
            }
            3 if at < b.len() => {
                let end = (at + rng.below(16)).min(b.len());
                b.drain(at..end);
            }
            _ => {
                let len = rng.below(8);
                let junk = rng.bytes(len);
                b.splice(at..at, junk);
            }
        }
    }
    b
}

#[test]
fn arbitrary_bytes_never_panic_the_preset() {
    let preset = MetaLeadAds::new(&offline_config());
    let seed = json!({"object":"page","entry":[{"id":"1","time":1,"changes":[
        {"field":"leadgen","value":{"leadgen_id":"2","page_id":"1","form_id":"3",
         "adgroup_id":"4","ad_id":"5","created_time":1717243200}}]}]})
    .to_string()
    .into_bytes();
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let headers = json_headers(Some(meta_lead_ads::sign(b"appsecret", &seed)));
    let mut outcomes = [0usize; 3];
    for i in 0..20_000 {
        let body = if i % 5 == 0 {
            let len = rng.below(300);
            rng.bytes(len)
        } else {
            mutate(&mut rng, &seed)
        };
        let req = request(&headers, &body);
        let _ = preset.verify(&req);
        match preset.parse(&req) {
            Ok(PresetOutput::Fetch(r)) => {
                outcomes[0] += 1;
                for r in r {
                    assert!(!r.event_id.is_empty() && r.event_id.len() <= 64);
                    assert!(
                        r.event_id
                            .bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
                    );
                }
            }
            Ok(_) => outcomes[1] += 1,
            Err(_) => outcomes[2] += 1,
        }
        // The same bytes as a handshake query and as a Graph lead.
        let query = String::from_utf8_lossy(&body);
        let _ = preset.handshake(&query);
        if let Ok(v) = serde_json::from_slice::<serde_json::Value>(&body) {
            let _ = meta_lead_ads::map_lead(&fetch_request("1"), &v);
        }
    }
    assert!(outcomes.iter().all(|n| *n > 0), "{outcomes:?}");
}

#[test]
fn arbitrary_graph_leads_never_panic_the_mapping() {
    let seed = json!({"id":"1","created_time":"2024-06-01T12:00:00+0000","ad_id":"2",
        "form_id":"3","is_organic":false,"platform":"fb","field_data":[
        {"name":"email","values":["a@b.co"]},{"name":"full_name","values":["A B"]},
        {"name":"work_email","values":["w@b.co"]}]})
    .to_string()
    .into_bytes();
    let mut rng = Rng(0xD1B5_4A32_D192_ED03);
    for _ in 0..20_000 {
        let body = mutate(&mut rng, &seed);
        if let Ok(v) = serde_json::from_slice::<serde_json::Value>(&body) {
            let lead = meta_lead_ads::map_lead(&fetch_request("1"), &v);
            assert_eq!(lead.event_id.as_deref(), Some("1"));
        }
    }
}

/// A server answering every request with `status` and `body`, whatever was asked.
async fn canned_server(status: u16, body: Vec<u8>) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind(LOOPBACK).await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        while let Ok((mut socket, _)) = listener.accept().await {
            let body = body.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 8192];
                let _ = socket.read(&mut buf).await;
                let head = format!(
                    "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nx-app-usage: {{\"call_count\":95}}\r\nconnection: close\r\n\r\n",
                    body.len()
                );
                let _ = socket.write_all(head.as_bytes()).await;
                let _ = socket.write_all(&body).await;
            });
        }
    });
    addr
}

#[tokio::test]
async fn arbitrary_graph_answers_never_panic_the_fetcher() {
    let seed = br#"{"error":{"message":"m","type":"OAuthException","code":80005,"error_subcode":2446079,"fbtrace_id":"A"}}"#;
    let mut rng = Rng(0xA076_1D64_78BD_642F);
    for i in 0..60 {
        let status = [200u16, 400, 403, 429, 500, 503][i % 6];
        let body = if i % 3 == 0 {
            let len = rng.below(200);
            rng.bytes(len)
        } else {
            mutate(&mut rng, seed)
        };
        let addr = canned_server(status, body).await;
        let config: WebhookConfig = serde_json::from_value(json!({
            "preset": "meta_lead_ads", "secret": "s", "verify_token": "v", "access_token": "t",
            "api_base_url": format!("http://{addr}/v21.0"),
        }))
        .unwrap();
        let fetcher = GraphFetcher::new(&config, ConnectorContext::in_memory("fb")).unwrap();
        let result = fetcher.fetch(&fetch_request("42")).await;
        if status == 429 {
            assert!(
                matches!(result, Err(CallError::RateLimited { .. })),
                "{result:?}"
            );
        }
        if status >= 500 {
            assert!(
                result.is_err() && !matches!(result, Err(CallError::Permanent { .. })),
                "{result:?}"
            );
        }
    }
}
