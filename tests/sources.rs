//! The marketing side end to end, over loopback HTTP with the real daemon: a Typeform
//! submission, a Meta lead (notification → durable fetch from the Graph sandbox) and a Google
//! lead-form lead of one person become ONE CRM contact with three touchpoints; forged and
//! replayed deliveries are refused or deduplicated.

mod common;

use std::time::Duration;

use hmac::{Hmac, KeyInit, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use tandem::{config::Config, daemon::Daemon, store::Store};
use tandem_connectors::{
    Lead,
    hubspot::sandbox::{HubspotSandbox, SandboxOptions},
    webhook::presets::meta_lead_ads::sandbox::{MetaSandbox, MetaSandboxOptions, SandboxLead},
};

const TYPEFORM_SECRET: &str = "tf-secret";
const GOOGLE_KEY: &str = "g-key-123";
const EMAIL: &str = "lea.martin@example.com";

fn base64(bytes: &[u8]) -> String {
    const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut s = String::new();
    for c in bytes.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..4 {
            s.push(if i <= c.len() {
                char::from(A[((n >> (18 - 6 * i)) & 63) as usize])
            } else {
                '='
            });
        }
    }
    s
}

fn typeform_signature(body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(TYPEFORM_SECRET.as_bytes()).expect("key");
    mac.update(body);
    format!("sha256={}", base64(&mac.finalize().into_bytes()))
}

fn typeform_body(event_id: &str) -> String {
    json!({
        "event_id": event_id,
        "event_type": "form_response",
        "form_response": {
            "form_id": "demoForm",
            "token": format!("tok-{event_id}"),
            "submitted_at": "2026-11-20T09:00:00Z",
            "hidden": {"utm_source": "newsletter", "utm_medium": "email", "utm_campaign": "nov"},
            "definition": {"id": "demoForm", "title": "Demo", "fields": [
                {"id": "f1", "title": "First name", "type": "short_text", "ref": "first_name"},
                {"id": "f2", "title": "Email", "type": "email", "ref": "email"}
            ]},
            "answers": [
                {"type": "text", "text": "Lea", "field": {"id": "f1", "type": "short_text", "ref": "first_name"}},
                {"type": "email", "email": EMAIL, "field": {"id": "f2", "type": "email", "ref": "email"}}
            ]
        }
    })
    .to_string()
}

fn google_body(key: &str) -> String {
    json!({
        "lead_id": "google-lead-1",
        "api_version": "1.0",
        "form_id": 40000000001_u64,
        "campaign_id": 12345678901_u64,
        "google_key": key,
        "is_test": false,
        "gcl_id": "EAIaIQobChMI-gclid-lea",
        "adgroup_id": 20000000002_u64,
        "creative_id": 30000000003_u64,
        "user_column_data": [
            {"column_name": "Full Name", "string_value": "Lea Martin", "column_id": "FULL_NAME"},
            {"column_name": "User Email", "string_value": EMAIL, "column_id": "EMAIL"},
            {"column_name": "User Phone", "string_value": "+16505550100", "column_id": "PHONE_NUMBER"}
        ]
    })
    .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_platforms_one_person_one_contact_three_touchpoints() {
    let hubspot = HubspotSandbox::start(([127, 0, 0, 1], 0).into(), SandboxOptions::default())
        .await
        .unwrap();
    let meta = MetaSandbox::start(([127, 0, 0, 1], 0).into(), MetaSandboxOptions::default())
        .await
        .unwrap();
    let m = MetaSandboxOptions::default();
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        r#"
[daemon]
listen = "127.0.0.1:0"
state = "sqlite:{state}"
stop_timeout = "5s"

[daemon.delivery]
backoff_base = "50ms"
backoff_max = "300ms"
linger = "10ms"

[connectors.typeform]
kind = "webhook"
preset = "typeform"
secret = "{TYPEFORM_SECRET}"

[connectors.meta]
kind = "webhook"
preset = "meta_lead_ads"
secret = "{app_secret}"
verify_token = "{verify_token}"
access_token = "{access_token}"
api_base_url = "{meta_url}"

[connectors.google]
kind = "webhook"
preset = "google_lead_form"
secret = "{GOOGLE_KEY}"

[connectors.hubspot]
kind = "hubspot"
token = "{hs_token}"
base_url = "{hs_url}"

[flows.inbound]
from = ["typeform", "meta", "google"]
to = "hubspot"
[flows.inbound.fields]
email = "{{{{ lead.email }}}}"
firstname = "{{{{ lead.first_name }}}}"
phone = "{{{{ lead.phone }}}}"
"#,
        state = dir.path().join("tandem.db").display(),
        app_secret = m.app_secret,
        verify_token = m.verify_token,
        access_token = m.access_token,
        meta_url = meta.base_url(),
        hs_token = common::TOKEN,
        hs_url = hubspot.base_url(),
    );
    let config = Config::from_str_at(&text, &dir.path().join("tandem.toml"))
        .unwrap_or_else(|e| panic!("{e}"));
    let daemon = Daemon::start(config).await.unwrap();
    let http = reqwest::Client::new();
    let url = |p: &str| format!("http://{}{p}", daemon.addr);

    // Meta's subscription handshake: the challenge comes back only with the right verify token.
    let ok = http
        .get(url(&format!(
            "/hooks/meta?{}",
            meta.handshake_query("ch4ll3nge")
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(
        (ok.status().as_u16(), ok.text().await.unwrap()),
        (200, "ch4ll3nge".to_string())
    );
    let wrong = http
        .get(url(
            "/hooks/meta?hub.mode=subscribe&hub.verify_token=nope&hub.challenge=x",
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 403);

    // 1. Typeform, signed; the replay is a duplicate; a forgery is refused.
    let body = typeform_body("tf-evt-1");
    let post_tf = |sig: String| {
        http.post(url("/hooks/typeform"))
            .header("content-type", "application/json")
            .header("typeform-signature", sig)
            .body(body.clone())
            .send()
    };
    let first: Value = post_tf(typeform_signature(body.as_bytes()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(first["duplicate"], json!(false), "{first}");
    let replay: Value = post_tf(typeform_signature(body.as_bytes()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        (replay["duplicate"].clone(), replay["lead_id"].clone()),
        (json!(true), first["lead_id"].clone())
    );
    assert_eq!(
        post_tf(typeform_signature(b"something else"))
            .await
            .unwrap()
            .status(),
        401
    );

    // 2. Meta: the notification carries only ids; tandem answers 200 and fetches the lead.
    let lead_id = meta.add_lead(
        SandboxLead::new(meta.next_lead_id(), "form-77")
            .field("email", EMAIL)
            .field("full_name", "Lea Martin")
            .ad("ad-1", "adset-1", "campaign-1"),
    );
    let note = meta.notification_body(&[&lead_id]);
    let post_meta = |sig: String| {
        http.post(url("/hooks/meta"))
            .header("content-type", "application/json")
            .header("x-hub-signature-256", sig)
            .body(note.clone())
            .send()
    };
    let queued = post_meta(meta.sign(&note)).await.unwrap();
    assert_eq!(queued.status(), 200);
    assert_eq!(queued.json::<Value>().await.unwrap()["queued"], json!(1));
    let again: Value = post_meta(meta.sign(&note))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        again["queued"],
        json!(0),
        "Meta retries: the fetch is queued once"
    );
    assert_eq!(post_meta("sha256=00".into()).await.unwrap().status(), 401);

    // 3. Google lead form: the key travels in the body.
    let google = |key: &str| {
        http.post(url("/hooks/google"))
            .header("content-type", "application/json")
            .body(google_body(key))
            .send()
    };
    assert_eq!(google("wrong-key").await.unwrap().status(), 401);
    assert_eq!(google(GOOGLE_KEY).await.unwrap().status(), 202);

    // One human: one HubSpot contact, written once per touchpoint.
    let contact = common::wait_until(
        Duration::from_secs(30),
        "three deliveries to one contact",
        || async { hubspot.contact_by_email(EMAIL).filter(|c| c.writes == 3) },
    )
    .await;
    assert_eq!(hubspot.contacts().len(), 1);
    assert_eq!(
        contact.properties.get("phone").map(String::as_str),
        Some("+16505550100")
    );

    let store = daemon.store();
    let mut leads: Vec<(String, Lead, i64)> = Vec::new();
    for source in ["typeform", "meta", "google"] {
        for l in store.leads_since(vec![source.into()], 0).await.unwrap() {
            leads.push((
                source.to_owned(),
                serde_json::from_str(&l.lead_json).unwrap(),
                l.person_id,
            ));
        }
    }
    assert_eq!(
        leads.len(),
        3,
        "one lead per platform, replays deduplicated"
    );
    assert!(
        leads.iter().all(|(_, _, p)| *p == leads[0].2),
        "all three touchpoints on one person"
    );
    let tp = |s: &str| {
        leads
            .iter()
            .find(|(src, _, _)| src == s)
            .map(|(_, l, _)| l.touchpoint.clone())
            .unwrap()
    };
    assert_eq!(tp("typeform").utm_source.as_deref(), Some("newsletter"));
    assert_eq!(
        tp("typeform").captured_at,
        "2026-11-20T09:00:00Z",
        "the platform's own timestamp"
    );
    assert_eq!(tp("meta").campaign_id.as_deref(), Some("campaign-1"));
    assert_eq!(
        tp("meta").adset_id.as_deref(),
        Some("adset-1"),
        "{:?}",
        leads.iter().find(|(s, _, _)| s == "meta")
    );
    assert_eq!(tp("meta").form.as_deref(), Some("form-77"));
    assert_eq!(
        tp("google").gclid.as_deref(),
        Some("EAIaIQobChMI-gclid-lea")
    );
    daemon.shutdown().await;
}

fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("key");
    for p in parts {
        mac.update(p);
    }
    mac.finalize().into_bytes().to_vec()
}

const WEBFLOW_SECRET: &str = "wf-secret";
const HUBSPOT_APP_SECRET: &str = "hs-client-secret";

/// Webflow and HubSpot form webhooks through the daemon into the CRM: good signatures are
/// accepted, stale and forged ones refused with 401, replays deduplicated.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webflow_and_hubspot_forms_end_to_end() {
    let hubspot = HubspotSandbox::start(([127, 0, 0, 1], 0).into(), SandboxOptions::default())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        r#"
[daemon]
listen = "127.0.0.1:0"
state = "sqlite:{state}"

[daemon.delivery]
backoff_base = "50ms"
linger = "10ms"

[connectors.webflow]
kind = "webhook"
preset = "webflow"
secret = "{WEBFLOW_SECRET}"

[connectors.hs]
kind = "webhook"
preset = "hubspot_forms"
secret = "{HUBSPOT_APP_SECRET}"
public_url = "https://leads.example.com"

[connectors.hubspot]
kind = "hubspot"
token = "{token}"
base_url = "{hs_url}"

[flows.inbound]
from = ["webflow", "hs"]
to = "hubspot"
[flows.inbound.fields]
email = "{{{{ lead.email }}}}"
firstname = "{{{{ lead.first_name }}}}"
company = "{{{{ lead.company }}}}"
"#,
        state = dir.path().join("tandem.db").display(),
        token = common::TOKEN,
        hs_url = hubspot.base_url(),
    );
    let config = Config::from_str_at(&text, &dir.path().join("tandem.toml"))
        .unwrap_or_else(|e| panic!("{e}"));
    let daemon = Daemon::start(config).await.unwrap();
    let http = reqwest::Client::new();
    let url = |p: &str| format!("http://{}{p}", daemon.addr);
    let now = jiff::Timestamp::now().as_millisecond();

    let webflow_body = json!({
        "triggerType": "form_submission",
        "payload": {"name": "Contact Us", "siteId": "site-1", "id": "wf-sub-1", "formId": "form-1",
                    "submittedAt": "2026-11-20T10:00:00.000Z",
                    "data": {"First Name": "Zaphod", "email": "zaphod@example.com", "Company": "Heart of Gold"}}
    })
    .to_string();
    let post_webflow = |ts: i64, secret: &str| {
        let sig = hex::encode(hmac_sha256(
            secret.as_bytes(),
            &[ts.to_string().as_bytes(), b":", webflow_body.as_bytes()],
        ));
        http.post(url("/hooks/webflow"))
            .header("content-type", "application/json")
            .header("x-webflow-timestamp", ts.to_string())
            .header("x-webflow-signature", sig)
            .body(webflow_body.clone())
            .send()
    };
    assert_eq!(
        post_webflow(now, WEBFLOW_SECRET).await.unwrap().status(),
        202
    );
    assert_eq!(
        post_webflow(now - 10 * 60_000, WEBFLOW_SECRET)
            .await
            .unwrap()
            .status(),
        401,
        "stale"
    );
    assert_eq!(
        post_webflow(now, "forged").await.unwrap().status(),
        401,
        "forged"
    );
    let replay: Value = post_webflow(now, WEBFLOW_SECRET)
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(replay["duplicate"], json!(true));

    let hs_body = json!({
        "vid": 3201,
        "properties": {"email": {"value": "maria@example.com"}, "firstname": {"value": "Maria"},
                       "company": {"value": "Globex"}},
        "form-submissions": [{"conversion-id": "conv-1", "timestamp": 1717243200000_i64,
                              "form-id": "f-1", "page-url": "https://www.example.com/demo?utm_source=linkedin",
                              "title": "Demo request"}]
    })
    .to_string();
    let post_hs = |ts: i64| {
        // HubSpot signs the URL it called: the public one, behind the proxy.
        let signed = "https://leads.example.com/hooks/hs";
        let sig = base64(&hmac_sha256(
            HUBSPOT_APP_SECRET.as_bytes(),
            &[
                b"POST",
                signed.as_bytes(),
                hs_body.as_bytes(),
                ts.to_string().as_bytes(),
            ],
        ));
        http.post(url("/hooks/hs"))
            .header("content-type", "application/json")
            .header("x-hubspot-signature-v3", sig)
            .header("x-hubspot-request-timestamp", ts.to_string())
            .body(hs_body.clone())
            .send()
    };
    assert_eq!(post_hs(now).await.unwrap().status(), 202);
    assert_eq!(
        post_hs(now - 10 * 60_000).await.unwrap().status(),
        401,
        "stale"
    );

    for (email, first, company) in [
        ("zaphod@example.com", "Zaphod", "Heart of Gold"),
        ("maria@example.com", "Maria", "Globex"),
    ] {
        let c = common::wait_until(Duration::from_secs(20), "the lead in HubSpot", || async {
            hubspot.contact_by_email(email)
        })
        .await;
        assert_eq!(
            c.properties.get("firstname").map(String::as_str),
            Some(first)
        );
        assert_eq!(
            c.properties.get("company").map(String::as_str),
            Some(company)
        );
        assert_eq!(c.writes, 1, "replays were not delivered again");
    }
    let store = daemon.store();
    let hs_leads = store.leads_since(vec!["hs".into()], 0).await.unwrap();
    let lead: Lead = serde_json::from_str(&hs_leads[0].lead_json).unwrap();
    assert_eq!(
        lead.touchpoint.utm_source.as_deref(),
        Some("linkedin"),
        "utm from the page URL"
    );
    daemon.shutdown().await;
}
