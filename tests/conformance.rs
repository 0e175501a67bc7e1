//! One conformance suite for every CRM connector, run against each CRM's sandbox over loopback
//! HTTP with the real daemon: create, update, dedup, conflict rules, partial batch failure, 429
//! storm, 5xx, timeout, token expiry mid-run, crash and restart, and API calls per 1,000 leads.
//! Adding a CRM means passing it: `CRM_KINDS` lists every kind, and a kind without a sandbox fails.

mod common;

use std::{collections::BTreeMap, path::Path, time::Duration};

use common::process::{TandemProcess, free_port};
use serde_json::{Value, json};
use tandem::{config::Config, daemon::Daemon, store::Store};
use tandem_connectors::sandbox::{CRM_KINDS, CrmFaults, CrmSandbox, start_crm};

const LONG: Duration = Duration::from_secs(30);

fn config_text(
    sb: &dyn CrmSandbox,
    state: &Path,
    listen: &str,
    conflict_rules: bool,
    delivery_extra: &str,
) -> String {
    let f = sb.fields();
    let (phone, company) = if conflict_rules {
        (
            "{ value = \"{{ lead.phone }}\", on_conflict = \"fill_empty\" }".to_string(),
            "{ value = \"{{ lead.company }}\", on_conflict = \"never\" }".to_string(),
        )
    } else {
        (
            "\"{{ lead.phone }}\"".to_string(),
            "\"{{ lead.company }}\"".to_string(),
        )
    };
    format!(
        r#"
[daemon]
listen = "{listen}"
state = "sqlite:{state}"
admin_token = "admin-secret"
stop_timeout = "5s"

[daemon.delivery]
backoff_base = "50ms"
backoff_max = "400ms"
{linger}
max_attempts = 10
lease = "20s"
call_timeout = "10s"
{delivery_extra}

[connectors.website]
kind = "webhook"
default_region = "US"

[connectors.crm]
{connector}

[flows.inbound]
from = ["website"]
to = "crm"

[flows.inbound.fields]
{email} = "{{{{ lead.email }}}}"
{first} = "{{{{ lead.first_name }}}}"
{last} = "{{{{ lead.last_name }}}}"
{phone_field} = {phone}
{company_field} = {company}
"#,
        state = state.display(),
        linger = if delivery_extra.contains("linger") {
            ""
        } else {
            "linger = \"20ms\""
        },
        connector = sb.connector_toml(),
        email = f.email,
        first = f.first_name,
        last = f.last_name,
        phone_field = f.phone,
        company_field = f.company,
    )
}

struct Crm {
    sb: Box<dyn CrmSandbox>,
    daemon: Option<Daemon>,
    _dir: tempfile::TempDir,
    http: reqwest::Client,
}

impl Crm {
    async fn start(kind: &str, conflict_rules: bool) -> Crm {
        Self::start_tuned(kind, conflict_rules, "").await
    }

    /// `delivery_extra`: more `[daemon.delivery]` lines.
    async fn start_tuned(kind: &str, conflict_rules: bool, delivery_extra: &str) -> Crm {
        let sb = start_crm(kind)
            .await
            .expect("sandbox starts")
            .unwrap_or_else(|| {
                panic!("kind {kind} has no sandbox: it cannot pass the conformance suite")
            });
        let dir = tempfile::tempdir().expect("tempdir");
        let text = config_text(
            sb.as_ref(),
            &dir.path().join("tandem.db"),
            "127.0.0.1:0",
            conflict_rules,
            delivery_extra,
        );
        let config = Config::from_str_at(&text, &dir.path().join("tandem.toml"))
            .unwrap_or_else(|e| panic!("{kind}: {e}"));
        let daemon = Daemon::start(config).await.expect("daemon starts");
        Crm {
            sb,
            daemon: Some(daemon),
            _dir: dir,
            http: reqwest::Client::new(),
        }
    }

    fn daemon(&self) -> &Daemon {
        self.daemon.as_ref().expect("daemon")
    }

    async fn post(&self, lead: Value) -> u16 {
        let url = format!("http://{}/hooks/website", self.daemon().addr);
        self.http
            .post(url)
            .json(&lead)
            .send()
            .await
            .map(|r| r.status().as_u16())
            .unwrap_or(0)
    }

    async fn post_all(&self, leads: Vec<Value>) {
        let url = format!("http://{}/hooks/website", self.daemon().addr);
        let posts: Vec<_> = leads
            .into_iter()
            .map(|l| {
                let (http, url) = (self.http.clone(), url.clone());
                tokio::spawn(async move {
                    http.post(url)
                        .json(&l)
                        .send()
                        .await
                        .map(|r| r.status().as_u16())
                })
            })
            .collect();
        for p in posts {
            assert_eq!(p.await.expect("post task").expect("post"), 202);
        }
    }

    /// Waits until nothing is pending or in flight; returns (done, dead).
    async fn drain(&self) -> (u64, u64) {
        self.drain_within(LONG).await
    }

    /// Like `drain`, for scenarios that make the vendor impose waits of its own.
    async fn drain_within(&self, within: Duration) -> (u64, u64) {
        let store = self.daemon().store();
        common::wait_until(within, "the queue to drain", || async {
            let s = store.status().await.ok()?;
            s.iter()
                .all(|d| d.pending == 0 && d.in_flight == 0)
                .then(|| {
                    (
                        s.iter().map(|d| d.done).sum(),
                        s.iter().map(|d| d.dead).sum(),
                    )
                })
        })
        .await
    }

    async fn dead_letters(&self) -> Vec<tandem::store::DeadLetter> {
        self.daemon()
            .store()
            .dead_letters(None, 1000)
            .await
            .expect("dead letters")
    }

    fn field(&self, email: &str, field: &str) -> Option<String> {
        self.sb
            .record_by_email(email)
            .and_then(|r| r.fields.get(field).cloned())
    }

    /// Records per email: more than one for any email is a duplicate.
    fn duplicates(&self) -> Vec<(String, usize)> {
        let email = self.sb.fields().email;
        let mut count: BTreeMap<String, usize> = BTreeMap::new();
        for r in self.sb.records() {
            *count
                .entry(
                    r.fields
                        .get(email)
                        .cloned()
                        .unwrap_or_default()
                        .to_lowercase(),
                )
                .or_default() += 1;
        }
        count.into_iter().filter(|(_, n)| *n > 1).collect()
    }
}

fn lead(email: &str, first: &str) -> Value {
    json!({"email": email, "first_name": first, "last_name": "Conform", "phone": "+1 415 555 2671", "company": "Acme"})
}

fn leads(prefix: &str, n: usize) -> Vec<Value> {
    (0..n)
        .map(|i| {
            lead(
                &format!("{prefix}{i}@conform.example.com"),
                &format!("P{i}"),
            )
        })
        .collect()
}

async fn create_then_update_is_one_record(kind: &str) {
    let c = Crm::start(kind, false).await;
    assert_eq!(c.post(lead("ann@conform.example.com", "Ann")).await, 202);
    c.drain().await;
    let first =
        c.sb.record_by_email("ann@conform.example.com")
            .expect("created");
    assert_eq!(c.post(lead("ann@conform.example.com", "Anna")).await, 202);
    let (done, dead) = c.drain().await;
    assert_eq!((done, dead), (2, 0));
    let second =
        c.sb.record_by_email("ann@conform.example.com")
            .expect("still there");
    assert_eq!(first.id, second.id, "updated, not recreated");
    assert_eq!(
        c.field("ann@conform.example.com", c.sb.fields().first_name)
            .as_deref(),
        Some("Anna")
    );
    assert_eq!(c.sb.records().len(), 1);
}

async fn the_same_person_in_a_burst_is_one_record(kind: &str) {
    let c = Crm::start(kind, false).await;
    let mut burst = leads("burst", 15);
    for i in 0..5 {
        burst.push(lead("same@conform.example.com", &format!("S{i}")));
    }
    c.post_all(burst).await;
    let (done, dead) = c.drain().await;
    assert_eq!((done, dead), (20, 0));
    assert!(
        c.duplicates().is_empty(),
        "duplicates: {:?}",
        c.duplicates()
    );
    assert_eq!(c.sb.records().len(), 16);
}

async fn conflict_rules_never_clobber_what_sales_typed(kind: &str) {
    let c = Crm::start(kind, true).await;
    let f = c.sb.fields();
    let email = "rules@conform.example.com";
    let mut l = lead(email, "R");
    l["phone"] = json!("+1 415 555 0101");
    l["company"] = json!("First Co");
    assert_eq!(c.post(l.clone()).await, 202);
    c.drain().await;
    assert_eq!(
        c.field(email, f.company).as_deref(),
        Some("First Co"),
        "never: written on create"
    );
    // Sales edits the phone in the CRM; a later lead must not overwrite it (fill_empty), nor the
    // company (never).
    c.sb.edit(email, f.phone, "+1 212 555 0199");
    l["phone"] = json!("+1 415 555 0102");
    l["company"] = json!("Second Co");
    l["first_name"] = json!("Rita");
    assert_eq!(c.post(l.clone()).await, 202);
    c.drain().await;
    assert_eq!(
        c.field(email, f.first_name).as_deref(),
        Some("Rita"),
        "overwrite fields still update"
    );
    let phone = c.field(email, f.phone).unwrap_or_default();
    assert!(
        phone.contains("212"),
        "fill_empty kept sales' phone, got {phone:?}"
    );
    assert_eq!(
        c.field(email, f.company).as_deref(),
        Some("First Co"),
        "never: not touched on update"
    );
    // Sales clears the phone; the next lead fills it.
    c.sb.edit(email, f.phone, "");
    l["phone"] = json!("+1 415 555 0103");
    assert_eq!(c.post(l).await, 202);
    let (_, dead) = c.drain().await;
    assert_eq!(dead, 0);
    let phone = c.field(email, f.phone).unwrap_or_default();
    assert!(
        phone.contains("0103"),
        "fill_empty filled the empty phone, got {phone:?}"
    );
}

async fn a_partial_batch_failure_dead_letters_only_the_refused(kind: &str) {
    let c = Crm::start(kind, false).await;
    c.sb.set_faults(CrmFaults {
        item_failure_rate: 0.3,
        seed: Some(5),
        ..Default::default()
    });
    c.post_all(leads("partial", 30)).await;
    let (done, dead) = c.drain().await;
    assert_eq!(done + dead, 30);
    assert!(dead > 0 && done > 0, "done {done}, dead {dead}");
    let letters = c.dead_letters().await;
    assert!(
        letters
            .iter()
            .all(|l| !l.error.trim().is_empty() && l.attempts == 1),
        "{letters:?}"
    );
    assert_eq!(
        c.sb.records().len() as u64,
        done,
        "refused records are not in the CRM"
    );
    assert!(c.duplicates().is_empty());
}

async fn a_429_storm_delays_but_loses_nothing(kind: &str) {
    let c = Crm::start(kind, false).await;
    c.sb.set_faults(CrmFaults {
        rate_limit_next: 6,
        ..Default::default()
    });
    c.post_all(leads("storm", 25)).await;
    // Each 429 holds the destination off for the vendor's wait (Zoho's default is 5 s without
    // headers): six of them alone take 30 s, so allow for them.
    let (done, dead) = c.drain_within(LONG * 3).await;
    assert_eq!((done, dead), (25, 0), "429s spend no retry budget");
    assert!(c.sb.stats().rate_limited >= 1);
    assert!(c.duplicates().is_empty());
}

async fn server_errors_are_retried(kind: &str) {
    let c = Crm::start(kind, false).await;
    c.sb.set_faults(CrmFaults {
        server_error_next: 4,
        ..Default::default()
    });
    c.post_all(leads("fivexx", 20)).await;
    let (done, dead) = c.drain().await;
    assert_eq!((done, dead), (20, 0));
    assert_eq!(c.sb.records().len(), 20);
}

async fn timeouts_are_retried_without_duplicates(kind: &str) {
    let c = Crm::start(kind, false).await;
    // Slower than the connector's 2 s timeout: the vendor may apply writes tandem never hears of.
    c.sb.set_faults(CrmFaults {
        delay_ms: 2_600,
        ..Default::default()
    });
    c.post_all(leads("slow", 8)).await;
    tokio::time::sleep(Duration::from_millis(3_000)).await;
    c.sb.set_faults(CrmFaults::default());
    let (done, dead) = c.drain().await;
    assert_eq!((done, dead), (8, 0));
    assert!(
        c.duplicates().is_empty(),
        "duplicates: {:?}",
        c.duplicates()
    );
    assert_eq!(c.sb.records().len(), 8);
}

async fn an_expired_token_mid_run_is_refreshed(kind: &str) {
    let c = Crm::start(kind, false).await;
    c.post_all(leads("tok-a", 10)).await;
    c.drain().await;
    let before = c.sb.stats().token_refreshes;
    c.sb.expire_tokens();
    c.post_all(leads("tok-b", 10)).await;
    let (done, dead) = c.drain().await;
    assert_eq!((done, dead), (20, 0), "no lead lost to the expiry");
    assert!(
        c.sb.stats().token_refreshes > before,
        "the connector refreshed its token"
    );
    assert!(
        c.daemon()
            .store()
            .paused()
            .await
            .expect("paused")
            .is_empty()
    );
    assert!(c.duplicates().is_empty());
}

async fn dropped_answers_and_a_crash_never_duplicate(kind: &str) {
    let sb = start_crm(kind)
        .await
        .expect("sandbox")
        .expect("a sandbox for every CRM kind");
    sb.set_faults(CrmFaults {
        drop_after_write_next: 2,
        delay_ms: 5,
        ..Default::default()
    });
    let dir = tempfile::tempdir().expect("tempdir");
    let addr: std::net::SocketAddr = ([127, 0, 0, 1], free_port()).into();
    let config = dir.path().join("tandem.toml");
    std::fs::write(
        &config,
        config_text(
            sb.as_ref(),
            &dir.path().join("tandem.db"),
            &addr.to_string(),
            false,
            "",
        ),
    )
    .expect("config");
    let log = dir.path().join("tandem.log");
    let http = reqwest::Client::new();
    let post = |email: String| {
        let http = http.clone();
        async move {
            http.post(format!("http://{addr}/hooks/website"))
                .json(&lead(&email, "K"))
                .send()
                .await
                .is_ok_and(|r| r.status() == 202)
                .then_some(email)
        }
    };
    let first = TandemProcess::start(&config, addr, &log).await;
    let mut acked = Vec::new();
    for i in 0..40 {
        acked.extend(post(format!("crash{i}@conform.example.com")).await);
    }
    tokio::time::sleep(Duration::from_millis(150)).await;
    first.kill_hard();
    let second = TandemProcess::start(&config, addr, &log).await;
    let email = sb.fields().email;
    common::wait_until(LONG, "every acknowledged lead in the CRM", || {
        let missing = acked
            .iter()
            .filter(|e| sb.record_by_email(e).is_none())
            .count();
        async move { (missing == 0).then_some(()) }
    })
    .await;
    let mut count: BTreeMap<String, usize> = BTreeMap::new();
    for r in sb.records() {
        *count
            .entry(
                r.fields
                    .get(email)
                    .cloned()
                    .unwrap_or_default()
                    .to_lowercase(),
            )
            .or_default() += 1;
    }
    assert!(
        count.values().all(|n| *n == 1),
        "duplicates after drops and a SIGKILL: {count:?}"
    );
    assert_eq!(count.len(), acked.len());
    second.signal("TERM");
    assert_eq!(second.wait_exit(Duration::from_secs(15)).await, Some(0));
}

/// API calls per 1,000 new leads, next to the floor the vendor's batch limit allows. Measured on
/// two full batches' worth (at least 40 leads) and scaled: Pipedrive's documented search limit
/// (10 per 2 s) would make 1,000 real leads a three-minute test.
async fn api_calls_per_thousand_new_leads(kind: &str) {
    // One worker lingering long enough for the whole sample to arrive: a backlog, sent in full
    // batches, which is what the floor describes.
    let c = Crm::start_tuned(kind, false, "concurrency = 1\nlinger = \"400ms\"").await;
    let batch = c.sb.batch_limit().max(1) as u64;
    let n = (2 * batch).clamp(40, 1000);
    let before = c.sb.stats().api_calls;
    for chunk in leads("k", n as usize).chunks(100) {
        c.post_all(chunk.to_vec()).await;
    }
    let (done, dead) = c.drain().await;
    assert_eq!((done, dead), (n, 0));
    let calls = c.sb.stats().api_calls - before;
    let floor = n.div_ceil(batch);
    let per_thousand = calls * 1000 / n;
    eprintln!(
        "conformance {kind}: {per_thousand} API calls per 1,000 new leads (batch-limit floor {}; measured {calls} calls for {n} leads)",
        1000u64.div_ceil(batch)
    );
    assert!(
        calls >= floor,
        "{kind}: {calls} calls for {n} leads is below the floor {floor}: the sandbox miscounts"
    );
    assert!(
        calls <= 3 * floor + 3,
        "{kind}: {calls} calls for {n} leads, floor {floor}"
    );
}

macro_rules! conformance {
    ($($kind:ident),* $(,)?) => {
        $(
            mod $kind {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn create_then_update_is_one_record() { super::create_then_update_is_one_record(stringify!($kind)).await }
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn the_same_person_in_a_burst_is_one_record() { super::the_same_person_in_a_burst_is_one_record(stringify!($kind)).await }
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn conflict_rules_never_clobber_what_sales_typed() { super::conflict_rules_never_clobber_what_sales_typed(stringify!($kind)).await }
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn a_partial_batch_failure_dead_letters_only_the_refused() { super::a_partial_batch_failure_dead_letters_only_the_refused(stringify!($kind)).await }
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn a_429_storm_delays_but_loses_nothing() { super::a_429_storm_delays_but_loses_nothing(stringify!($kind)).await }
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn server_errors_are_retried() { super::server_errors_are_retried(stringify!($kind)).await }
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn timeouts_are_retried_without_duplicates() { super::timeouts_are_retried_without_duplicates(stringify!($kind)).await }
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn an_expired_token_mid_run_is_refreshed() { super::an_expired_token_mid_run_is_refreshed(stringify!($kind)).await }
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn dropped_answers_and_a_crash_never_duplicate() { super::dropped_answers_and_a_crash_never_duplicate(stringify!($kind)).await }
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn api_calls_per_thousand_new_leads() { super::api_calls_per_thousand_new_leads(stringify!($kind)).await }
            }
        )*

        #[test]
        fn every_crm_kind_is_in_the_suite() {
            let covered: &[&str] = &[$(stringify!($kind)),*];
            for kind in CRM_KINDS {
                assert!(covered.contains(kind), "CRM kind {kind} is not run by the conformance suite");
            }
        }
    };
}

conformance!(hubspot, salesforce, pipedrive, zoho);
