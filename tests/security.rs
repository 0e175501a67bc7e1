//! Security over real loopback HTTP: slow clients can't pin connections (header read timeout,
//! whole-request timeout, idle keep-alive timeout, the connection cap); the admin API takes
//! exactly one bearer token; and no secret or personal data reaches the daemon's log, CLI output,
//! `/metrics` or `/api/status` (the canary test, with the real binary at `RUST_LOG=debug`).

mod common;

use std::{
    net::SocketAddr,
    os::unix::fs::PermissionsExt,
    path::Path,
    time::{Duration, Instant},
};

use common::{
    Harness,
    process::{TandemProcess, free_port, tandem},
};
use serde_json::{Value, json};
use tandem::store::Store;
use tandem_connectors::{
    hubspot::sandbox::{Faults, HubspotSandbox, SandboxOptions, ScriptStep},
    webhook::sign_hex,
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

/// Short limits so the tests don't wait long: 1 s for the request head, 2 s for the whole request.
const LIMITS: &str = "\n[daemon.limits]\nheader_timeout = \"1s\"\nrequest_timeout = \"2s\"\n";
const HEADER_TIMEOUT: Duration = Duration::from_secs(1);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);
/// Generous slack for a loaded CI machine.
const MARGIN: Duration = Duration::from_secs(4);

/// How a trickling client's connection ended.
struct Cut {
    /// Whatever the server sent before closing (empty, or a `408`).
    answer: String,
    /// When the server answered or closed, from the first byte sent.
    after: Option<Duration>,
}

/// Writes `first`, then one byte of `trickle` every second, until the server answers or closes
/// the connection, or `give_up` passes (`after: None`).
async fn trickle(addr: SocketAddr, first: &[u8], byte: u8, give_up: Duration) -> Cut {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    let started = Instant::now();
    s.write_all(first).await.expect("write the start");
    let deadline = tokio::time::Instant::now() + give_up;
    let mut tick = tokio::time::interval_at(
        tokio::time::Instant::now() + Duration::from_secs(1),
        Duration::from_secs(1),
    );
    let mut answer = Vec::new();
    let mut chunk = [0u8; 1024];
    loop {
        tokio::select! {
            r = s.read(&mut chunk) => match r {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    answer.extend_from_slice(&chunk[..n]);
                    if answer.windows(4).any(|w| w == b"\r\n\r\n") {
                        break;
                    }
                }
            },
            _ = tick.tick() => {
                if s.write_all(&[byte]).await.is_err() {
                    break;
                }
            }
            _ = tokio::time::sleep_until(deadline) => {
                return Cut { answer: String::from_utf8_lossy(&answer).into_owned(), after: None };
            }
        }
    }
    Cut {
        answer: String::from_utf8_lossy(&answer).into_owned(),
        after: Some(started.elapsed()),
    }
}

fn assert_cut(cut: &Cut, within: Duration, what: &str) {
    let after = cut
        .after
        .unwrap_or_else(|| panic!("{what}: still connected after the test gave up"));
    assert!(
        after < within,
        "{what}: cut off only after {after:?} (limit {within:?})"
    );
    assert!(
        cut.answer.is_empty() || cut.answer.starts_with("HTTP/1.1 408"),
        "{what}: closed, or answered 408; got {:?}",
        cut.answer
    );
}

async fn slowloris(addr: SocketAddr) -> Cut {
    trickle(
        addr,
        b"POST /hooks/website HTTP/1.1\r\nHost: x\r\n",
        b'X',
        Duration::from_secs(20),
    )
    .await
}

#[tokio::test]
async fn a_slowloris_client_is_cut_off_and_others_are_still_served() {
    let h = Harness::start_with(SandboxOptions::default(), LIMITS, "").await;
    let addr = h.daemon().addr;

    let alone = slowloris(addr).await;
    assert_cut(&alone, HEADER_TIMEOUT + MARGIN, "one slow client");

    let crowd: Vec<_> = (0..50).map(|_| tokio::spawn(slowloris(addr))).collect();
    tokio::time::sleep(Duration::from_millis(300)).await; // all 50 connected and trickling
    let started = Instant::now();
    let (status, body) = h.post_lead(json!({ "email": "prompt@example.com" })).await;
    assert_eq!(status, 202, "{body}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "a normal sender waited {:?} behind slow clients",
        started.elapsed()
    );
    for (i, t) in crowd.into_iter().enumerate() {
        let cut = t.await.expect("slow client task");
        assert_cut(&cut, HEADER_TIMEOUT + MARGIN, &format!("slow client {i}"));
    }
}

#[tokio::test]
async fn a_slow_body_is_cut_off_and_nothing_is_stored() {
    let h = Harness::start_with(SandboxOptions::default(), LIMITS, "").await;
    let head = b"POST /hooks/website HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"email\":\"slowbody@example.com\",\"note\":\"";
    let cut = trickle(h.daemon().addr, head, b'a', Duration::from_secs(20)).await;
    assert_cut(&cut, REQUEST_TIMEOUT + MARGIN, "slow body");

    let leads = h
        .daemon()
        .store()
        .leads_since(vec!["website".into()], 0)
        .await
        .expect("leads");
    assert!(leads.is_empty(), "a cut-off body stored a lead");
    assert!(
        h.status()
            .await
            .iter()
            .all(|d| d.pending + d.in_flight + d.done + d.dead == 0),
        "no delivery was queued"
    );
    let (status, body) = h
        .post_lead(json!({ "email": "after-slow@example.com" }))
        .await;
    assert_eq!(status, 202, "still serving: {body}");
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_after_the_header_timeout() {
    let h = Harness::start_with(SandboxOptions::default(), LIMITS, "").await;
    let mut s = TcpStream::connect(h.daemon().addr).await.unwrap();
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let started = Instant::now();
    let mut out = Vec::new();
    let closed = tokio::time::timeout(HEADER_TIMEOUT + MARGIN, s.read_to_end(&mut out)).await;
    let text = String::from_utf8_lossy(&out);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(
        closed.is_ok(),
        "the idle kept-alive connection is still open after {:?}",
        started.elapsed()
    );
    assert!(
        started.elapsed() >= HEADER_TIMEOUT / 2,
        "keep-alive is honoured for a while: closed after {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn at_the_connection_cap_new_connections_wait_for_a_free_slot() {
    let limits = format!("{LIMITS}max_connections = 2\n");
    let h = Harness::start_with(SandboxOptions::default(), &limits, "").await;
    let addr = h.daemon().addr;
    // Two connections that never send a byte hold both slots until the header timeout.
    let mut idle = Vec::new();
    for _ in 0..2 {
        idle.push(TcpStream::connect(addr).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let started = Instant::now();
    let (status, body) = h.post_lead(json!({ "email": "queued@example.com" })).await;
    let waited = started.elapsed();
    assert_eq!(status, 202, "{body}");
    assert!(
        waited >= HEADER_TIMEOUT / 2 && waited < Duration::from_secs(10),
        "the third connection waited for a slot ({waited:?})"
    );
    for mut s in idle {
        let mut buf = Vec::new();
        let r = tokio::time::timeout(MARGIN, s.read_to_end(&mut buf)).await;
        assert!(r.is_ok(), "idle connection closed by the header timeout");
    }
}

#[tokio::test]
async fn header_timeout_and_connection_cap_are_validated() {
    let dir = tempfile::tempdir().unwrap();
    for (limits, key) in [
        ("header_timeout = \"0s\"", "daemon.limits.header_timeout"),
        ("header_timeout = \"1h\"", "daemon.limits.header_timeout"),
        ("request_timeout = \"0s\"", "daemon.limits.request_timeout"),
        ("request_timeout = \"2d\"", "daemon.limits.request_timeout"),
        ("max_connections = 0", "daemon.limits.max_connections"),
        (
            "max_connections = 50000000",
            "daemon.limits.max_connections",
        ),
    ] {
        let text = common::config_text(
            "http://127.0.0.1:9",
            &dir.path().join("t.db"),
            &format!("\n[daemon.limits]\n{limits}\n"),
            "",
        );
        let err = tandem::config::Config::from_str_at(&text, &dir.path().join("t.toml"))
            .err()
            .unwrap_or_else(|| panic!("{limits} was accepted"))
            .to_string();
        assert!(err.contains(key) && err.contains("hint"), "{limits}: {err}");
    }
}

// ----- the admin API -----

const ADMIN_ROUTES: [(&str, &str); 6] = [
    ("GET", "/api/status"),
    ("GET", "/api/dlq"),
    ("POST", "/api/dlq/retry"),
    ("POST", "/api/dlq/drop"),
    ("POST", "/api/replay"),
    ("POST", "/api/verify"),
];

async fn admin_call(h: &Harness, method: &str, path: &str, auth: Option<&str>) -> (u16, Value) {
    let mut r = match method {
        "GET" => h.http.get(h.url(path)),
        _ => {
            // A valid body, so the only thing wrong with a refused call is its credentials.
            let body = match path {
                "/api/replay" => json!({ "flow": "inbound", "since": "1h" }),
                "/api/verify" => json!({}),
                _ => json!({ "ids": [] }),
            };
            h.http.post(h.url(path)).json(&body)
        }
    };
    if let Some(a) = auth {
        r = r.header("authorization", a);
    }
    let r = r.send().await.expect("admin request");
    let status = r.status().as_u16();
    if status == 401 {
        assert_eq!(
            r.headers()
                .get("www-authenticate")
                .and_then(|v| v.to_str().ok()),
            Some("Bearer"),
            "{method} {path}"
        );
    }
    (status, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn every_admin_route_takes_exactly_the_bearer_token() {
    let h = Harness::start().await;
    // base64("admin:admin-secret")
    let refused = [
        None,
        Some("Bearer wrong-token"),
        Some("Bearer admin-secret-and-more"),
        Some("Bearer admin-secretX"),
        Some("Bearer admin-secre"),
        Some("Bearer "),
        Some("Bearer"),
        Some("admin-secret"),
        Some("Basic YWRtaW46YWRtaW4tc2VjcmV0"),
        Some("Token admin-secret"),
    ];
    for (method, path) in ADMIN_ROUTES {
        for auth in refused {
            let (status, body) = admin_call(&h, method, path, auth).await;
            assert_eq!(status, 401, "{method} {path} with {auth:?}: {body}");
        }
        let (status, body) = admin_call(&h, method, path, Some("Bearer admin-secret")).await;
        assert_eq!(status, 200, "{method} {path} with the token: {body}");
    }
}

#[tokio::test]
async fn without_an_admin_token_the_admin_api_is_off() {
    let h = Harness::start_edited(SandboxOptions::default(), |t| {
        t.replace("admin_token = \"admin-secret\"\n", "")
    })
    .await;
    for (method, path) in ADMIN_ROUTES {
        for auth in [None, Some("Bearer admin-secret"), Some("Bearer ")] {
            let (status, body) = admin_call(&h, method, path, auth).await;
            assert_eq!(status, 404, "{method} {path}: {body}");
            assert!(
                body["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("admin API is off")),
                "{method} {path}: {body}"
            );
        }
    }
}

// ----- the canary: secrets and personal data never leave through logs or outputs -----

const ADMIN_CANARY: &str = "canary-admin-Q7v2Lx9wPp";
const HUBSPOT_CANARY: &str = "canary-hubspot-pat-M4k8Zr1dJ";
const WEBHOOK_CANARY: &str = "canary-whsec-T3n6Yb5sKe";
const SECRETS: [&str; 3] = [ADMIN_CANARY, HUBSPOT_CANARY, WEBHOOK_CANARY];

const EMAIL: &str = "zanzibar.quokka71@example.com";
const SIGNED_EMAIL: &str = "zanzibar.quokka72@example.com";
const BAD_EMAIL: &str = "zanzibar.quokka73@@example";
const REFUSED_EMAIL: &str = "zanzibar.quokka74@example.com";
const PAUSED_EMAIL: &str = "zanzibar.quokka75@example.com";
const PHONE: &str = "+1 415 555 2689";
const NAME: &str = "Xerxesquillon";
/// Every way the personal data could show up: as sent, normalised, or as bare digits.
const PERSONAL: [&str; 9] = [
    EMAIL,
    SIGNED_EMAIL,
    "zanzibar.quokka73",
    REFUSED_EMAIL,
    PAUSED_EMAIL,
    "4155552689",
    "415 555 2689",
    NAME,
    "zanzibar",
];

fn canary_config(addr: SocketAddr, dir: &Path, hubspot_url: &str) -> String {
    format!(
        r#"
[daemon]
listen = "{addr}"
state = "sqlite:{state}"
admin_token = "{ADMIN_CANARY}"
stop_timeout = "5s"

[daemon.delivery]
backoff_base = "50ms"
backoff_max = "300ms"
linger = "10ms"
max_attempts = 3
probe_interval = "1s"

[connectors.website]
kind = "webhook"
default_region = "US"

[connectors.signed]
kind = "webhook"
secret = "${{file:webhook.secret}}"

[connectors.hubspot]
kind = "hubspot"
token = "${{env:CANARY_HUBSPOT_TOKEN}}"
base_url = "{hubspot_url}"
timeout = "5s"

[flows.inbound]
from = ["website", "signed"]
to = "hubspot"

[flows.inbound.fields]
email = "{{{{ lead.email }}}}"
firstname = "{{{{ lead.first_name }}}}"
phone = "{{{{ lead.phone }}}}"
lifecyclestage = "lead"
"#,
        state = dir.join("tandem.db").display()
    )
}

/// The good config with every secret also pasted where it does not belong: unknown keys next to
/// the real ones, and as the value of keys of the wrong type.
fn broken_config(good: &str) -> String {
    let text = common::set_key(good, "daemon", "admin_tokn", &format!("\"{ADMIN_CANARY}\""));
    let text = common::set_key(
        &text,
        "connectors.hubspot",
        "tokn",
        &format!("\"{HUBSPOT_CANARY}\""),
    );
    let text = common::set_key(
        &text,
        "connectors.hubspot",
        "timeout",
        &format!("\"{HUBSPOT_CANARY}\""),
    );
    let text = common::set_key(
        &text,
        "connectors.signed",
        "secrett",
        &format!("\"{WEBHOOK_CANARY}\""),
    );
    common::set_key(
        &text,
        "daemon.delivery",
        "max_attempts",
        &format!("\"{WEBHOOK_CANARY}\""),
    )
}

struct Output {
    what: String,
    code: Option<i32>,
    text: String,
}

fn run_cli(args: &[&str]) -> Output {
    let out = tandem(args)
        .env("RUST_LOG", "debug")
        .env("CANARY_HUBSPOT_TOKEN", HUBSPOT_CANARY)
        .output()
        .expect("run tandem");
    Output {
        what: format!("tandem {}", args.join(" ")),
        code: out.status.code(),
        text: format!(
            "{}\n--- stderr ---\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    }
}

fn assert_absent(haystack: &str, needles: &[&str], what: &str) {
    for n in needles {
        assert!(!haystack.contains(n), "{what} leaks {n:?}:\n{haystack}");
    }
}

fn mode(path: &Path) -> Option<u32> {
    std::fs::metadata(path)
        .ok()
        .map(|m| m.permissions().mode() & 0o777)
}

fn assert_private_files(dir: &Path, when: &str) {
    let mut seen = 0;
    for name in [
        "tandem.db",
        "tandem.db-wal",
        "tandem.db-shm",
        "tandem.db.lock",
    ] {
        if let Some(m) = mode(&dir.join(name)) {
            seen += 1;
            assert_eq!(m, 0o600, "{name} is mode {m:o} {when}");
        }
    }
    assert!(seen > 0, "no state files found {when}");
}

async fn admin_get(http: &reqwest::Client, addr: SocketAddr, path: &str) -> String {
    http.get(format!("http://{addr}{path}"))
        .bearer_auth(ADMIN_CANARY)
        .send()
        .await
        .expect("admin request")
        .text()
        .await
        .expect("admin body")
}

async fn admin_status(http: &reqwest::Client, addr: SocketAddr) -> Value {
    serde_json::from_str(&admin_get(http, addr, "/api/status").await).unwrap_or(Value::Null)
}

#[tokio::test]
async fn canaries_never_reach_logs_cli_output_metrics_or_status() {
    let sandbox = HubspotSandbox::start(
        ([127, 0, 0, 1], 0).into(),
        SandboxOptions {
            token: HUBSPOT_CANARY.to_owned(),
            ..SandboxOptions::default()
        },
    )
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let secret_file = dir.path().join("webhook.secret");
    std::fs::write(&secret_file, format!("{WEBHOOK_CANARY}\n")).unwrap();
    std::fs::set_permissions(&secret_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let addr: SocketAddr = ([127, 0, 0, 1], free_port()).into();
    let config = dir.path().join("tandem.toml");
    let good = canary_config(addr, dir.path(), &sandbox.base_url());
    std::fs::write(&config, &good).unwrap();
    let cfg = config.to_str().unwrap().to_owned();
    let log = dir.path().join("tandem.log");
    let p = TandemProcess::start_with_env(
        &config,
        addr,
        &log,
        &[
            ("RUST_LOG", "debug"),
            ("CANARY_HUBSPOT_TOKEN", HUBSPOT_CANARY),
        ],
    )
    .await;
    let http = reqwest::Client::new();
    let hook = |name: &str| format!("http://{addr}/hooks/{name}");

    // A good lead, and a signed one.
    let r = http
        .post(hook("website"))
        .json(&json!({ "email": EMAIL, "phone": PHONE, "first_name": NAME }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let body = serde_json::to_vec(&json!({ "email": SIGNED_EMAIL, "first_name": NAME })).unwrap();
    let r = http
        .post(hook("signed"))
        .header("content-type", "application/json")
        .header(
            "x-tandem-signature",
            sign_hex(WEBHOOK_CANARY.as_bytes(), &body),
        )
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    common::wait_until(Duration::from_secs(15), "both leads in HubSpot", || async {
        (sandbox.contact_by_email(EMAIL).is_some()
            && sandbox.contact_by_email(SIGNED_EMAIL).is_some())
        .then_some(())
    })
    .await;

    // A lead intake refuses: a bad email.
    let r = http
        .post(hook("website"))
        .json(&json!({ "email": BAD_EMAIL, "phone": PHONE, "first_name": NAME }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);

    // A lead HubSpot refuses: a dead letter with the vendor's message.
    sandbox
        .set_faults(Faults {
            item_failure_rate: 1.0,
            ..Faults::default()
        })
        .unwrap();
    let r = http
        .post(hook("website"))
        .json(&json!({ "email": REFUSED_EMAIL, "phone": PHONE, "first_name": NAME }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    common::wait_until(
        Duration::from_secs(15),
        "the refused lead to be dead",
        || async {
            let s = admin_status(&http, addr).await;
            (s["destinations"][0]["dead"] == json!(1)).then_some(())
        },
    )
    .await;

    // A 401 from HubSpot: the destination pauses, then a probe finds access back.
    sandbox
        .set_faults(Faults {
            script: vec![ScriptStep {
                times: 1,
                status: 401,
                drop: false,
                retry_after: None,
            }],
            ..Faults::default()
        })
        .unwrap();
    let r = http
        .post(hook("website"))
        .json(&json!({ "email": PAUSED_EMAIL, "first_name": NAME }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    common::wait_until(
        Duration::from_secs(15),
        "the pause to be logged",
        || async { p.log_text().contains("PAUSED").then_some(()) },
    )
    .await;
    common::wait_until(
        Duration::from_secs(15),
        "the paused lead to arrive",
        || async { sandbox.contact_by_email(PAUSED_EMAIL) },
    )
    .await;

    // A reload refused: the broken file holds every secret in places it doesn't belong.
    let broken = broken_config(&good);
    std::fs::write(&config, &broken).unwrap();
    p.signal("HUP");
    common::wait_until(
        Duration::from_secs(10),
        "the reload to be refused",
        || async { p.log_text().contains("reload refused").then_some(()) },
    )
    .await;
    std::fs::write(&config, &good).unwrap();

    // The operator's view.
    let broken_path = dir.path().join("broken.toml");
    std::fs::write(&broken_path, &broken).unwrap();
    let check = run_cli(&["check", "--config", broken_path.to_str().unwrap()]);
    assert_eq!(check.code, Some(1), "{}", check.text);
    assert!(
        check.text.contains("tokn"),
        "check names the bad key: {}",
        check.text
    );
    let status = run_cli(&["status", "--config", &cfg]);
    let status_json = run_cli(&["status", "--json", "--config", &cfg]);
    let dlq = run_cli(&["dlq", "list", "--config", &cfg]);
    let dlq_json = run_cli(&["dlq", "list", "--json", "--config", &cfg]);
    for o in [&status, &status_json, &dlq, &dlq_json] {
        assert_eq!(o.code, Some(0), "{}: {}", o.what, o.text);
    }
    assert!(dlq.text.contains("1 dead letter(s)"), "{}", dlq.text);
    let metrics = admin_get(&http, addr, "/metrics").await;
    assert!(metrics.contains("tandem_"), "{metrics}");
    let api_status = admin_get(&http, addr, "/api/status").await;

    assert_private_files(dir.path(), "while the daemon runs");
    p.signal("TERM");
    let log_path = p.log.clone();
    assert_eq!(p.wait_exit(Duration::from_secs(15)).await, Some(0));
    let offline = run_cli(&["status", "--config", &cfg]);
    let offline_dlq = run_cli(&["dlq", "list", "--config", &cfg]);
    assert_private_files(
        dir.path(),
        "after the daemon stopped and the CLI read the state",
    );
    let log = std::fs::read_to_string(log_path).unwrap();

    // Secrets: nowhere.
    assert_absent(&log, &SECRETS, "the daemon's log");
    for o in [
        &check,
        &status,
        &status_json,
        &dlq,
        &dlq_json,
        &offline,
        &offline_dlq,
    ] {
        assert_absent(&o.text, &SECRETS, &o.what);
    }
    assert_absent(&metrics, &SECRETS, "/metrics");
    assert_absent(&api_status, &SECRETS, "/api/status");
    // Personal data: not in the log, metrics or status. The dead-letter list shows the vendor's
    // own message; HubSpot's words for this refusal don't name the contact, so no email either.
    assert_absent(&log, &PERSONAL, "the daemon's log");
    assert_absent(&metrics, &PERSONAL, "/metrics");
    assert_absent(&api_status, &PERSONAL, "/api/status");
    for o in [
        &status,
        &status_json,
        &offline,
        &dlq,
        &dlq_json,
        &offline_dlq,
    ] {
        assert_absent(&o.text, &PERSONAL, &o.what);
    }
    // The log did say what happened, without the data.
    assert!(log.contains("reload refused"), "{log}");
    assert!(log.contains("PAUSED"), "{log}");
}

/// A secret written literally in the file (not through `${env:…}`/`${file:…}`/`${cred:…}`) and
/// also pasted, by mistake, as the value of a key of another type is echoed by the type error:
/// the config redactor only knows values it resolved from references. Kept as the regression test
/// for that fix (src/config/mod.rs `from_str_at` + src/config/secrets.rs `Redactor`).
#[tokio::test]
async fn literal_secrets_pasted_into_a_wrong_key_are_redacted_from_config_errors() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("broken.toml");
    std::fs::write(
        &path,
        format!(
            "[daemon]\nadmin_token = \"{ADMIN_CANARY}\"\nstop_timeout = \"{ADMIN_CANARY}\"\n\n\
             [connectors.hubspot]\nkind = \"hubspot\"\ntoken = \"{HUBSPOT_CANARY}\"\ntimeout = \"{HUBSPOT_CANARY}\"\n"
        ),
    )
    .unwrap();
    let check = run_cli(&["check", "--config", path.to_str().unwrap()]);
    assert_eq!(check.code, Some(1), "{}", check.text);
    assert_absent(&check.text, &SECRETS, &check.what);
}

/// The closed loop's half of the canary: a person's email, phone and name travel to four
/// marketing platforms (normalised, hashed where the vendor wants it), and every platform refuses
/// some of it with its own error text; none of that personal data, and none of the platforms'
/// credentials, may show up in the daemon's debug log, the dead letters, `/metrics`, `status`,
/// or `report` output.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_closed_loop_keeps_personal_data_and_credentials_out_of_every_output() {
    use tandem_connectors::sandbox::{CrmFaults, SandboxDeal, start_crm, start_writeback};

    const LOOP_EMAIL: &str = "zanzibar.quokka81@example.com";
    let crm = start_crm("hubspot").await.unwrap().unwrap();
    let deals = crm.deals().unwrap();
    let mut targets = Vec::new();
    for kind in ["google_ads", "meta_capi", "linkedin", "mailchimp"] {
        targets.push((kind, start_writeback(kind).await.unwrap().unwrap()));
    }
    let dir = tempfile::tempdir().unwrap();
    let addr: SocketAddr = ([127, 0, 0, 1], free_port()).into();
    let stages = deals.stages();
    let mut text = format!(
        r#"
[daemon]
listen = "{addr}"
state = "sqlite:{state}"
admin_token = "{ADMIN_CANARY}"
stop_timeout = "5s"

[daemon.delivery]
backoff_base = "50ms"
backoff_max = "200ms"
linger = "10ms"
max_attempts = 2

[connectors.website]
kind = "webhook"
default_region = "US"

[connectors.crm]
{crm_toml}
{outcome_toml}

[flows.inbound]
from = ["website"]
to = "crm"
[flows.inbound.fields]
email = "{{{{ lead.email }}}}"
firstname = "{{{{ lead.first_name }}}}"
phone = "{{{{ lead.phone }}}}"

[attribution]
from = "crm"
to = ["crm", "google_ads", "meta_capi", "linkedin", "mailchimp"]
[attribution.milestones]
won = ["{won}"]
"#,
        state = dir.path().join("tandem.db").display(),
        crm_toml = crm.connector_toml(),
        outcome_toml = deals.outcome_toml(),
        won = stages.won,
    );
    for (kind, t) in &targets {
        text.push_str(&format!("\n[connectors.{kind}]\n{}\n", t.connector_toml()));
    }
    // Every credential the sandboxes hand out: the values of secret-looking keys.
    let credentials: Vec<String> = text
        .lines()
        .filter_map(|l| l.split_once(" = "))
        .filter(|(k, _)| {
            ["token", "secret", "api_key", "password"]
                .iter()
                .any(|s| k.contains(s))
        })
        .map(|(_, v)| v.trim_matches('"').to_owned())
        .filter(|v| v.len() >= 8)
        .collect();
    assert!(credentials.len() >= 5, "{credentials:?}");
    let config = dir.path().join("tandem.toml");
    std::fs::write(&config, &text).unwrap();
    let cfg = config.to_str().unwrap().to_owned();
    let log = dir.path().join("tandem.log");
    let p = TandemProcess::start_with_env(&config, addr, &log, &[("RUST_LOG", "debug")]).await;
    let http = reqwest::Client::new();

    let r = http
        .post(format!("http://{addr}/hooks/website"))
        .json(&json!({ "email": LOOP_EMAIL, "phone": PHONE, "first_name": NAME, "gclid": "canary-click" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    common::wait_until(Duration::from_secs(15), "the person in the CRM", || async {
        crm.record_by_email(LOOP_EMAIL).map(|_| ())
    })
    .await;
    // Half the platforms refuse every item with their own validation error.
    for (kind, t) in &targets {
        if matches!(*kind, "google_ads" | "linkedin") {
            t.set_faults(CrmFaults {
                item_failure_rate: 1.0,
                ..CrmFaults::default()
            });
        }
    }
    deals.create_deal(SandboxDeal {
        stage: stages.won.clone(),
        amount: Some("990.00".into()),
        currency: Some("EUR".into()),
        contact_emails: vec![LOOP_EMAIL.into()],
        ..Default::default()
    });
    common::wait_until(
        Duration::from_secs(30),
        "every write-back settled",
        || async {
            let s = admin_status(&http, addr).await;
            let rows = s["destinations"].as_array()?.clone();
            let attribution: Vec<&Value> =
                rows.iter().filter(|d| d["flow"] == "attribution").collect();
            let settled = attribution.len() == 5
                && attribution
                    .iter()
                    .all(|d| d["pending"] == json!(0) && d["in_flight"] == json!(0));
            let dead: u64 = attribution.iter().filter_map(|d| d["dead"].as_u64()).sum();
            (settled && dead >= 1).then_some(())
        },
    )
    .await;
    let received: usize = targets
        .iter()
        .filter(|(k, _)| matches!(*k, "meta_capi" | "mailchimp"))
        .map(|(_, t)| t.received().len())
        .sum();
    assert!(received > 0, "the accepting platforms got the conversion");

    let mut needles: Vec<&str> = vec![
        LOOP_EMAIL,
        "zanzibar.quokka81",
        "4155552689",
        "415 555 2689",
        NAME,
    ];
    needles.extend(credentials.iter().map(String::as_str));
    needles.push(ADMIN_CANARY);
    let dlq = run_cli(&["dlq", "list", "--config", &cfg]);
    assert!(dlq.text.contains("attribution"), "{}", dlq.text);
    for o in [
        &dlq,
        &run_cli(&["dlq", "list", "--json", "--config", &cfg]),
        &run_cli(&["status", "--config", &cfg]),
        &run_cli(&["report", "attribution", "--config", &cfg]),
        &run_cli(&["report", "quality", "--format", "json", "--config", &cfg]),
    ] {
        assert_absent(&o.text, &needles, &o.what);
    }
    assert_absent(
        &admin_get(&http, addr, "/metrics").await,
        &needles,
        "/metrics",
    );
    assert_absent(
        &admin_get(&http, addr, "/api/dlq").await,
        &needles,
        "/api/dlq",
    );
    p.signal("TERM");
    assert_eq!(p.wait_exit(Duration::from_secs(20)).await, Some(0));
    let log_text = std::fs::read_to_string(&log).unwrap();
    assert!(log_text.contains("deal outcomes recorded"), "{log_text}");
    assert_absent(&log_text, &needles, "the daemon's debug log");
}
