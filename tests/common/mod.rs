//! Shared harness for the integration tests: a HubSpot sandbox and a real tandem daemon, both on
//! loopback port 0, wired together by a config written the way a user would write it.
#![allow(dead_code)]

pub mod process;

use std::{
    path::PathBuf,
    time::{Duration, Instant},
};

use serde_json::Value;
use tandem::{
    config::Config,
    daemon::Daemon,
    store::{DestinationStatus, Store},
};
use tandem_connectors::hubspot::sandbox::{HubspotSandbox, SandboxOptions};

pub const TOKEN: &str = "sandbox-token";
pub const SECRET: &str = "whsec-test-secret";

/// The config every test starts from; `extra` is appended (more connectors, overrides).
pub fn config_text(
    hubspot_url: &str,
    state: &std::path::Path,
    daemon_extra: &str,
    extra: &str,
) -> String {
    format!(
        r#"
[daemon]
listen = "127.0.0.1:0"
state = "sqlite:{state}"
admin_token = "admin-secret"
stop_timeout = "5s"
{daemon_extra}

[daemon.delivery]
backoff_base = "50ms"
backoff_max = "300ms"
linger = "10ms"
max_attempts = 6

[connectors.website]
kind = "webhook"
default_region = "US"

[connectors.signed]
kind = "webhook"
secret = "{SECRET}"

[connectors.hubspot]
kind = "hubspot"
token = "{TOKEN}"
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
{extra}
"#,
        state = state.display()
    )
}

pub struct Harness {
    pub sandbox: HubspotSandbox,
    pub daemon: Option<Daemon>,
    pub dir: tempfile::TempDir,
    pub http: reqwest::Client,
}

impl Harness {
    pub async fn start() -> Harness {
        Self::start_with(SandboxOptions::default(), "", "").await
    }

    pub async fn start_with(options: SandboxOptions, daemon_extra: &str, extra: &str) -> Harness {
        Self::start_from(options, |url, state| {
            config_text(url, state, daemon_extra, extra)
        })
        .await
    }

    /// Starts a sandbox, then a daemon on the config `make(sandbox_url, state_path)` writes.
    async fn start_from(
        options: SandboxOptions,
        make: impl FnOnce(&str, &std::path::Path) -> String,
    ) -> Harness {
        let sandbox = HubspotSandbox::start(([127, 0, 0, 1], 0).into(), options)
            .await
            .expect("sandbox starts");
        let dir = tempfile::tempdir().expect("tempdir");
        let text = make(&sandbox.base_url(), &dir.path().join("tandem.db"));
        let config = Config::from_str_at(&text, &dir.path().join("tandem.toml"))
            .unwrap_or_else(|e| panic!("{e}"));
        let daemon = Daemon::start(config).await.expect("daemon starts");
        Harness {
            sandbox,
            daemon: Some(daemon),
            dir,
            http: reqwest::Client::new(),
        }
    }

    pub fn daemon(&self) -> &Daemon {
        self.daemon.as_ref().expect("daemon running")
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.daemon().addr)
    }

    /// POSTs a JSON lead to `/hooks/website` and returns (status, body).
    pub async fn post_lead(&self, body: Value) -> (u16, Value) {
        let r = self
            .http
            .post(self.url("/hooks/website"))
            .json(&body)
            .send()
            .await
            .expect("request");
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    pub async fn status(&self) -> Vec<DestinationStatus> {
        self.daemon().store().status().await.expect("status")
    }

    /// Waits until nothing is pending or in flight (or panics after `within`).
    pub async fn drain(&self, within: Duration) -> Vec<DestinationStatus> {
        wait_until(within, "the queue to drain", || async {
            let s = self.status().await;
            s.iter()
                .all(|d| d.pending == 0 && d.in_flight == 0)
                .then_some(s)
        })
        .await
    }

    pub fn state_path(&self) -> PathBuf {
        self.dir.path().join("tandem.db")
    }
}

/// Polls `check` every 20 ms until it returns Some, or panics naming `what`.
pub async fn wait_until<T, F, Fut>(within: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {within:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Sends raw bytes over one TCP connection and returns everything the server answered.
pub async fn raw_http(addr: std::net::SocketAddr, request: &[u8]) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    s.write_all(request).await.expect("write");
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

/// Sets `key = value` inside the TOML table `[header]` of `text`: replaces the key's line when the
/// table has it, else adds the line right under the header. For keys `extra` cannot reach
/// (`[daemon.delivery]`, `[connectors.hubspot]`).
pub fn set_key(text: &str, header: &str, key: &str, value: &str) -> String {
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    let start = lines
        .iter()
        .position(|l| l.trim() == format!("[{header}]"))
        .unwrap_or_else(|| panic!("the config has no [{header}] table"));
    let end = lines[start + 1..]
        .iter()
        .position(|l| l.trim_start().starts_with('['))
        .map_or(lines.len(), |i| start + 1 + i);
    let line = format!("{key} = {value}");
    match lines[start + 1..end]
        .iter()
        .position(|l| l.split('=').next().is_some_and(|k| k.trim() == key))
    {
        Some(i) => lines[start + 1 + i] = line,
        None => lines.insert(start + 1, line),
    }
    lines.join("\n")
}

impl Harness {
    /// Like [`Harness::start_with`], but the default config text passes through `edit` first.
    pub async fn start_edited(options: SandboxOptions, edit: impl Fn(String) -> String) -> Harness {
        Self::start_from(options, |url, state| edit(config_text(url, state, "", ""))).await
    }

    /// A freshly loaded config for this harness (same sandbox and state file), edited by `edit`,
    /// as `tandem` would load it on SIGHUP.
    pub fn fresh_config(&self, edit: impl Fn(String) -> String) -> Config {
        let text = edit(config_text(
            &self.sandbox.base_url(),
            &self.state_path(),
            "",
            "",
        ));
        Config::from_str_at(&text, &self.dir.path().join("tandem.toml"))
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// POSTs every body to `/hooks/website` at once and returns the statuses, in order.
    pub async fn post_all(&self, bodies: Vec<Value>) -> Vec<u16> {
        let url = self.url("/hooks/website");
        let tasks: Vec<_> = bodies
            .into_iter()
            .map(|b| {
                let (http, url) = (self.http.clone(), url.clone());
                tokio::spawn(async move {
                    http.post(url)
                        .json(&b)
                        .send()
                        .await
                        .expect("request")
                        .status()
                        .as_u16()
                })
            })
            .collect();
        let mut out = Vec::with_capacity(tasks.len());
        for t in tasks {
            out.push(t.await.expect("post task"));
        }
        out
    }

    /// The daemon's `/metrics` text.
    pub async fn metrics_text(&self) -> String {
        self.http
            .get(self.url("/metrics"))
            .send()
            .await
            .expect("metrics")
            .text()
            .await
            .expect("metrics body")
    }
}
