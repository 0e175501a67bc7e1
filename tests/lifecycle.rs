//! The daemon's life as systemd and an operator see it, with the real binary: SIGTERM drains and
//! exits 0; SIGHUP swaps in a valid config and refuses a broken one while staying up; the CLI's
//! `check`, `status` and `dlq` answer with the right exit codes and text.

mod common;

use std::time::Duration;

use common::process::{TandemProcess, free_port, tandem};
use serde_json::json;
use tandem_connectors::hubspot::sandbox::{Faults, HubspotSandbox, SandboxOptions};

struct Setup {
    sandbox: HubspotSandbox,
    dir: tempfile::TempDir,
    addr: std::net::SocketAddr,
    config: std::path::PathBuf,
    log: std::path::PathBuf,
}

async fn setup() -> Setup {
    let sandbox = HubspotSandbox::start(([127, 0, 0, 1], 0).into(), SandboxOptions::default())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let addr: std::net::SocketAddr = ([127, 0, 0, 1], free_port()).into();
    let config = dir.path().join("tandem.toml");
    let log = dir.path().join("tandem.log");
    let s = Setup {
        sandbox,
        dir,
        addr,
        config,
        log,
    };
    write_config(&s, "lead");
    s
}

fn write_config(s: &Setup, lifecycle: &str) {
    let text = common::config_text(
        &s.sandbox.base_url(),
        &s.dir.path().join("tandem.db"),
        "",
        "",
    )
    .replace(
        "listen = \"127.0.0.1:0\"",
        &format!("listen = \"{}\"", s.addr),
    )
    .replace(
        "lifecyclestage = \"lead\"",
        &format!("lifecyclestage = \"{lifecycle}\""),
    );
    std::fs::write(&s.config, text).unwrap();
}

async fn post(addr: std::net::SocketAddr, email: &str) -> u16 {
    reqwest::Client::new()
        .post(format!("http://{addr}/hooks/website"))
        .json(&json!({ "email": email }))
        .send()
        .await
        .map(|r| r.status().as_u16())
        .unwrap_or(0)
}

#[tokio::test]
async fn sigterm_finishes_in_flight_work_and_exits_zero() {
    let s = setup().await;
    s.sandbox
        .set_faults(Faults {
            delay_ms: 800,
            ..Default::default()
        })
        .unwrap();
    let p = TandemProcess::start(&s.config, s.addr, &s.log).await;
    assert_eq!(post(s.addr, "term@example.com").await, 202);
    tokio::time::sleep(Duration::from_millis(300)).await; // the call is now in flight
    p.signal("TERM");
    let log = p.log.clone();
    assert_eq!(p.wait_exit(Duration::from_secs(15)).await, Some(0));
    assert!(
        s.sandbox.contact_by_email("term@example.com").is_some(),
        "the in-flight call completed"
    );
    let text = std::fs::read_to_string(log).unwrap();
    assert!(text.contains("stopped"), "{text}");
}

#[tokio::test]
async fn sighup_applies_a_valid_config_and_refuses_a_broken_one() {
    let s = setup().await;
    let p = TandemProcess::start(&s.config, s.addr, &s.log).await;
    std::fs::write(
        &s.config,
        "[daemon]\nlisten = \"127.0.0.1:1\"\nbogus_key = 1\n",
    )
    .unwrap();
    p.signal("HUP");
    common::wait_until(
        Duration::from_secs(10),
        "the reload to be refused",
        || async { p.log_text().contains("reload refused").then_some(()) },
    )
    .await;
    assert!(
        p.log_text().contains("bogus_key"),
        "the log says why: {}",
        p.log_text()
    );
    assert_eq!(
        post(s.addr, "still@example.com").await,
        202,
        "still serving on the old config"
    );

    write_config(&s, "subscriber");
    p.signal("HUP");
    common::wait_until(Duration::from_secs(10), "the reload to apply", || async {
        p.log_text()
            .contains("configuration reloaded")
            .then_some(())
    })
    .await;
    assert_eq!(post(s.addr, "after@example.com").await, 202);
    let contact = common::wait_until(Duration::from_secs(10), "the lead to arrive", || async {
        s.sandbox.contact_by_email("after@example.com")
    })
    .await;
    assert_eq!(
        contact.properties["lifecyclestage"], "subscriber",
        "the new mapping is in force"
    );
    p.signal("TERM");
    assert_eq!(p.wait_exit(Duration::from_secs(15)).await, Some(0));
}

#[tokio::test]
async fn check_reports_every_problem_with_file_line_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(
        &path,
        "[daemon]\nlisten = \"127.0.0.1:8080\"\n\n[connectors.crm]\nkind = \"hubspot\"\ntokn = \"x\"\n\n[flows.f]\nfrom = [\"nowhere\"]\nto = \"crm\"\n[flows.f.fields]\nemail = \"{{ lead.email \"\n",
    )
    .unwrap();
    let out = tandem(&["check", "--config", path.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.toml:6:1: connectors.crm.tokn"), "{err}");
    assert!(err.contains("flows.f.from"), "{err}");
    assert!(err.contains("flows.f.fields.email"), "{err}");

    let good = dir.path().join("good.toml");
    std::fs::write(
        &good,
        std::fs::read_to_string(path)
            .unwrap()
            .replace("tokn", "token")
            .replace("nowhere", "web")
            .replace("{{ lead.email \"", "{{ lead.email }}\"")
            + "\n[connectors.web]\nkind = \"webhook\"\n",
    )
    .unwrap();
    let out = tandem(&["check", "--config", good.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("config OK"));
}

#[tokio::test]
async fn status_and_dlq_work_with_the_daemon_up_and_down() {
    let s = setup().await;
    let p = TandemProcess::start(&s.config, s.addr, &s.log).await;
    assert_eq!(post(s.addr, "ok@example.com").await, 202);
    // A lead without email: HubSpot has no id_property here, so it is a dead letter at once.
    let r = reqwest::Client::new()
        .post(format!("http://{}/hooks/website", s.addr))
        .json(&json!({"phone": "+1 415 555 2671"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let cfg = s.config.to_str().unwrap().to_owned();
    common::wait_until(Duration::from_secs(10), "one done and one dead", || {
        let cfg = cfg.clone();
        async move {
            let out = tandem(&["status", "--json", "--config", &cfg])
                .output()
                .ok()?;
            let v: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
            let d = &v["destinations"][0];
            (d["done"] == json!(1) && d["dead"] == json!(1)).then_some(())
        }
    })
    .await;
    let out = tandem(&["status", "--config", &cfg]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("inbound") && text.contains("hubspot"),
        "{text}"
    );
    assert!(
        !text.contains("ok@example.com"),
        "status shows no personal data"
    );

    let out = tandem(&["dlq", "list", "--config", &cfg]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("1 dead letter(s)") && text.contains("id_property"),
        "{text}"
    );
    let out = tandem(&["dlq", "drop", "--all", "--config", &cfg])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("1 dead letter(s) dropped"));

    let log = p.log_text();
    for canary in [
        "ok@example.com",
        "4155552671",
        common::TOKEN,
        "admin-secret",
        common::SECRET,
    ] {
        assert!(
            !log.contains(canary),
            "the daemon's log leaks {canary:?}:\n{log}"
        );
    }
    p.signal("TERM");
    assert_eq!(p.wait_exit(Duration::from_secs(15)).await, Some(0));
    // Down: status reads the state file; changes are refused with a reason.
    let out = tandem(&["status", "--config", &cfg]).output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not running"));
    let out = tandem(&["dlq", "retry", "--all", "--config", &cfg])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not running"));
}

#[tokio::test]
async fn systemd_hears_ready_reloading_watchdog_and_stopping() {
    let s = setup().await;
    let sock_path = s.dir.path().join("notify.sock");
    let sock = std::os::unix::net::UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let heard = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reader = {
        let (heard, done) = (heard.clone(), done.clone());
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                if let Ok(n) = sock.recv(&mut buf) {
                    heard
                        .lock()
                        .unwrap()
                        .push(String::from_utf8_lossy(&buf[..n]).into_owned());
                }
            }
        })
    };
    let socket = sock_path.to_str().unwrap().to_owned();
    // WATCHDOG_USEC=400ms: the daemon should ping every ~200 ms while healthy.
    let env = [
        ("NOTIFY_SOCKET", socket.as_str()),
        ("WATCHDOG_USEC", "400000"),
    ];
    let p = TandemProcess::start_with_env(&s.config, s.addr, &s.log, &env).await;
    let heard_now = || heard.lock().unwrap().join("|");
    common::wait_until(
        Duration::from_secs(10),
        "READY=1 and watchdog pings",
        || async {
            let h = heard_now();
            (h.contains("READY=1") && h.matches("WATCHDOG=1").count() >= 3).then_some(())
        },
    )
    .await;
    p.signal("HUP");
    common::wait_until(
        Duration::from_secs(10),
        "RELOADING=1 with MONOTONIC_USEC, then READY=1",
        || async {
            let h = heard.lock().unwrap().clone();
            let reload = h
                .iter()
                .position(|m| m.contains("RELOADING=1") && m.contains("MONOTONIC_USEC="))?;
            h[reload + 1..]
                .iter()
                .any(|m| m.contains("READY=1"))
                .then_some(())
        },
    )
    .await;
    p.signal("TERM");
    assert_eq!(p.wait_exit(Duration::from_secs(15)).await, Some(0));
    common::wait_until(Duration::from_secs(5), "STOPPING=1", || async {
        heard_now().contains("STOPPING=1").then_some(())
    })
    .await;
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    reader.join().unwrap();
    let first = heard.lock().unwrap()[0].clone();
    assert!(
        first.contains("READY=1"),
        "READY=1 comes first, once store and listener are up: {first}"
    );
}

// Multi-threaded: the sandbox serves from this runtime while `tandem check` blocks a thread.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_connect_catches_a_misspelt_crm_field_before_any_lead_is_sent() {
    let s = setup().await;
    let good = std::fs::read_to_string(&s.config).unwrap();
    std::fs::write(&s.config, good.replace("firstname = ", "firstnme = ")).unwrap();
    let cfg = s.config.to_str().unwrap().to_owned();
    // Daemon down: the check runs in-process.
    let out = tandem(&["check", "--connect", "--config", &cfg])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("hubspot:") && text.contains("firstnme"),
        "{text}"
    );
    assert!(
        text.contains("firstname"),
        "the fix names the real property: {text}"
    );
    assert_eq!(s.sandbox.stats().upsert_calls, 0, "nothing was written");

    // Daemon up: the same check goes through its admin API.
    std::fs::write(&s.config, &good).unwrap();
    let p = TandemProcess::start(&s.config, s.addr, &s.log).await;
    let out = tandem(&["check", "--connect", "--config", &cfg])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("connections OK"), "{text}");
    p.signal("TERM");
    assert_eq!(p.wait_exit(Duration::from_secs(15)).await, Some(0));
}
