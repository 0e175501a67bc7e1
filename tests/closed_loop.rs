//! The closed loop, end to end over loopback HTTP, for every CRM: leads posted to the real
//! webhook reach the CRM sandbox; a salesperson creates a deal and wins it there; tandem polls the
//! outcome and writes it back to every marketing platform's sandbox (Google Data Manager, Meta
//! CAPI, LinkedIn, Mailchimp) and onto the CRM's own deal; a won deal later lost is retracted
//! where the vendor can express it; a CRM webhook only wakes the poll; the reports read it all
//! back. Adding a CRM or a write-back platform means passing this suite.

mod common;

use std::{path::Path, time::Duration};

use serde_json::{Value, json};
use tandem::{
    attribution::{Dimension, Model, ModelParams},
    config::Config,
    daemon::Daemon,
    outcomes::report::{ReportPeriod, attribution_report, quality_report},
    store::Store,
};
use tandem_connectors::sandbox::{
    CRM_KINDS, CrmSandbox, ReceivedWriteback, SandboxDeal, WRITEBACK_KINDS, WritebackSandbox,
    start_crm, start_writeback,
};

const LONG: Duration = Duration::from_secs(30);

struct Loop {
    crm: Box<dyn CrmSandbox>,
    /// (connector name, sandbox): every write-back kind, plus Google through the Google Ads API
    /// (`google_legacy`), the path that can retract.
    targets: Vec<(String, Box<dyn WritebackSandbox>)>,
    daemon: Daemon,
    _dir: tempfile::TempDir,
    http: reqwest::Client,
}

fn config_text(
    crm: &dyn CrmSandbox,
    targets: &[(String, Box<dyn WritebackSandbox>)],
    state: &Path,
) -> String {
    let deals = crm.deals().expect("the CRM sandbox has a deal side");
    let stages = deals.stages();
    let f = crm.fields();
    let mut text = format!(
        r#"
[daemon]
listen = "127.0.0.1:0"
state = "sqlite:{state}"
stop_timeout = "5s"
admin_token = "loop-admin"

[daemon.delivery]
backoff_base = "50ms"
backoff_max = "400ms"
linger = "20ms"
lease = "20s"
call_timeout = "10s"

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
{email} = "{{{{ lead.email }}}}"
{first} = "{{{{ lead.first_name }}}}"
{last} = "{{{{ lead.last_name }}}}"

[attribution]
from = "crm"
model = "linear"
lookback = "90d"
to = ["crm", {to}]

[attribution.milestones]
qualified = ["{q}"]
opportunity = ["{o}"]
won = ["{w}"]
lost = ["{l}"]
"#,
        state = state.display(),
        crm_toml = crm.connector_toml(),
        outcome_toml = deals.outcome_toml(),
        email = f.email,
        first = f.first_name,
        last = f.last_name,
        to = targets
            .iter()
            .map(|(name, _)| format!("\"{name}\""))
            .collect::<Vec<_>>()
            .join(", "),
        q = stages.qualified,
        o = stages.opportunity,
        w = stages.won,
        l = stages.lost,
    );
    for (name, t) in targets {
        text.push_str(&format!("\n[connectors.{name}]\n{}\n", t.connector_toml()));
    }
    text
}

impl Loop {
    async fn start(kind: &str) -> Loop {
        let crm = start_crm(kind)
            .await
            .expect("CRM sandbox starts")
            .unwrap_or_else(|| panic!("{kind} has no sandbox"));
        let mut targets = Vec::new();
        for wb in WRITEBACK_KINDS {
            let sandbox = start_writeback(wb)
                .await
                .expect("write-back sandbox starts")
                .unwrap_or_else(|| panic!("write-back kind {wb} has no sandbox"));
            targets.push((wb.to_string(), sandbox));
        }
        let legacy = tandem_connectors::google_ads::sandbox::writeback::start_legacy()
            .await
            .expect("Google Ads API sandbox starts");
        targets.push(("google_legacy".to_string(), legacy));
        let dir = tempfile::tempdir().expect("tempdir");
        let text = config_text(crm.as_ref(), &targets, &dir.path().join("tandem.db"));
        // On disk too, for the CLI's `report` (which reads the state file read-only).
        std::fs::write(dir.path().join("tandem.toml"), &text).expect("config file");
        let config = Config::from_str_at(&text, &dir.path().join("tandem.toml"))
            .unwrap_or_else(|e| panic!("{kind}: {e}\n{text}"));
        let daemon = Daemon::start(config).await.expect("daemon starts");
        Loop {
            crm,
            targets,
            daemon,
            _dir: dir,
            http: reqwest::Client::new(),
        }
    }

    fn target(&self, name: &str) -> &dyn WritebackSandbox {
        self.targets
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, t)| t.as_ref())
            .expect("target")
    }

    async fn post(&self, lead: Value) {
        let url = format!("http://{}/hooks/website", self.daemon.addr);
        let status = self
            .http
            .post(url)
            .json(&lead)
            .send()
            .await
            .map(|r| r.status().as_u16())
            .unwrap_or(0);
        assert_eq!(status, 202);
    }

    /// Waits until `kind` has received a write-back matching `pred`.
    async fn received(
        &self,
        kind: &str,
        what: &str,
        pred: impl Fn(&ReceivedWriteback) -> bool,
    ) -> ReceivedWriteback {
        let target = self.target(kind);
        common::wait_until(LONG, &format!("{kind}: {what}"), || async {
            target.received().into_iter().find(|r| pred(r))
        })
        .await
    }
}

fn ann() -> Value {
    json!({
        "email": "ann@loop.example.com", "first_name": "Ann", "last_name": "Loop",
        "utm_source": "google", "utm_medium": "cpc", "utm_campaign": "spring",
        "gclid": "Cj0KCQiA-loop-gclid", "fbclid": "IwAR-loop-fbclid", "li_fat_id": "li-loop-uuid",
    })
}

async fn a_won_deal_comes_back_out_everywhere(kind: &str) {
    let l = Loop::start(kind).await;
    l.post(ann()).await;
    l.post(
        json!({"email": "ann@loop.example.com", "utm_source": "newsletter", "utm_medium": "email"}),
    )
    .await;
    l.post(json!({"email": "bob@loop.example.com", "first_name": "Bob", "last_name": "Loop"}))
        .await;
    common::wait_until(LONG, "both people in the CRM", || async {
        (l.crm.record_by_email("ann@loop.example.com").is_some()
            && l.crm.record_by_email("bob@loop.example.com").is_some())
        .then_some(())
    })
    .await;

    let deals = l.crm.deals().expect("deal side");
    let stages = deals.stages();
    let deal = deals.create_deal(SandboxDeal {
        stage: stages.qualified.clone(),
        amount: Some("1500.00".into()),
        currency: Some("EUR".into()),
        contact_emails: vec!["ann@loop.example.com".into()],
        ..Default::default()
    });
    let key = |m: &str| format!("crm:{deal}:{m}");
    // Qualified reaches the platforms that take it before anything later.
    l.received("meta_capi", "the qualified event", |r| {
        r.key == key("qualified")
    })
    .await;
    deals.move_deal(&deal, &stages.won, None, None);

    let google = l
        .received("google_ads", "the won conversion", |r| {
            r.key == key("won") && r.adjustment.is_none()
        })
        .await;
    assert!(
        google.identifiers.iter().any(|i| i == "gclid"),
        "{google:?}"
    );
    assert_eq!(
        google.value.as_deref().map(|v| v.parse::<f64>().ok()),
        Some(Some(1500.0))
    );
    assert_eq!(google.currency.as_deref(), Some("EUR"));
    let meta = l
        .received("meta_capi", "the won event", |r| r.key == key("won"))
        .await;
    assert!(!meta.identifiers.is_empty(), "{meta:?}");
    let linkedin = l
        .received("linkedin", "the won conversion", |r| r.key == key("won"))
        .await;
    assert!(
        linkedin.identifiers.iter().any(|i| i == "SHA256_EMAIL"),
        "{linkedin:?}"
    );
    l.received("mailchimp", "the deal-won tag", |r| {
        r.name == "deal-won" && r.adjustment.is_none()
    })
    .await;
    common::wait_until(LONG, "attribution fields on the CRM deal", || async {
        let fields = deals.deal_fields(&deal);
        fields
            .values()
            .any(|v| v.contains("linear:") && v.contains("google / cpc / spring"))
            .then_some(())
    })
    .await;
    // Meta got the funnel in order, and each milestone once.
    let meta_keys: Vec<String> = l
        .target("meta_capi")
        .received()
        .into_iter()
        .map(|r| r.key)
        .collect();
    let pos = |k: &str| meta_keys.iter().position(|x| x == k);
    assert!(pos(&key("qualified")) < pos(&key("won")), "{meta_keys:?}");
    assert_eq!(meta_keys.iter().filter(|k| **k == key("won")).count(), 1);

    // Won, then lost: retracted where the vendor can say so (the Google Ads API; Data Manager
    // has no retraction); the lost tag replaces the won one.
    deals.move_deal(&deal, &stages.lost, None, None);
    l.received("google_legacy", "the retraction", |r| {
        r.key == key("won") && r.adjustment.as_deref() == Some("RETRACTION")
    })
    .await;
    l.received("mailchimp", "the deal-won tag removed", |r| {
        r.name == "deal-won" && r.adjustment.as_deref() == Some("inactive")
    })
    .await;
    l.received("mailchimp", "the deal-lost tag", |r| {
        r.name == "deal-lost" && r.adjustment.is_none()
    })
    .await;

    // A CRM webhook wakes the poll at once (where the vendor has deal webhooks).
    let second = deals.create_deal(SandboxDeal {
        stage: stages.won.clone(),
        amount: Some("200".into()),
        currency: Some("EUR".into()),
        contact_emails: vec!["bob@loop.example.com".into()],
        ..Default::default()
    });
    let hook = format!("http://{}/hooks/crm", l.daemon.addr);
    if let Some(status) = deals.notify(&hook, &second).await {
        assert_eq!(status, 200, "{kind}: the CRM webhook is accepted");
    }
    common::wait_until(LONG, "the second deal recorded", || async {
        let inputs = l.daemon.store().attribution_inputs().await.ok()?;
        (inputs.deals.len() == 2).then_some(())
    })
    .await;

    // Every write-back settled, none dead; nothing sent twice.
    let store = l.daemon.store();
    let status = common::wait_until(LONG, "write-backs to drain", || async {
        let s = store.status().await.ok()?;
        s.iter()
            .all(|d| d.pending == 0 && d.in_flight == 0)
            .then_some(s)
    })
    .await;
    let dead: u64 = status.iter().map(|d| d.dead).sum();
    assert_eq!(dead, 0, "{:?}", store.dead_letters(None, 10).await);
    for (name, t) in &l.targets {
        let mut seen = std::collections::BTreeSet::new();
        for r in t.received() {
            assert!(
                seen.insert((r.key.clone(), r.name.clone(), r.adjustment.clone())),
                "{name}: {r:?} arrived twice"
            );
        }
    }
    assert!(
        !l.target("google_ads")
            .received()
            .iter()
            .any(|r| r.adjustment.is_some()),
        "Data Manager is never sent an adjustment it cannot express"
    );

    // The reports read the same truth back: the lost deal earns nothing, Bob's won deal is
    // credited to his one touchpoint (the website form), and Ann counts as a lost google lead.
    let inputs = store.attribution_inputs().await.expect("inputs");
    let period = ReportPeriod::default();
    let report = attribution_report(
        &inputs,
        Model::Linear,
        &ModelParams::default(),
        Duration::from_secs(90 * 86_400),
        &period,
        Dimension::Source,
        i64::MAX / 2,
    );
    let revenue: i128 = report.rows.iter().map(|r| r.revenue_minor).sum();
    assert_eq!(
        revenue, 20_000,
        "{kind}: only the won 200.00 EUR deal counts"
    );
    // The CLI reads the same numbers from the state file while the daemon runs.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tandem"))
        .arg("--config")
        .arg(l._dir.path().join("tandem.toml"))
        .args([
            "report",
            "attribution",
            "--by",
            "source",
            "--format",
            "json",
        ])
        .output()
        .expect("tandem report runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: Value = serde_json::from_slice(&out.stdout).expect("report JSON");
    assert_eq!(
        json["model"], "linear",
        "[attribution] model is the default"
    );
    assert_eq!(json["rows"][0]["source"], "website");
    assert_eq!(json["rows"][0]["revenue_minor"], 20_000);
    assert_eq!(json["rows"][0]["currency"], "EUR");
    assert_eq!(json["unattributed"], json!([]));
    let keys: Vec<&str> = json
        .as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(keys, ["model", "rows", "since", "unattributed", "until"]);
    let quality = quality_report(&inputs, &period, Dimension::Source);
    let google_row = quality
        .rows
        .iter()
        .find(|r| r.source.as_deref() == Some("google"))
        .expect("google row");
    assert_eq!(
        (google_row.leads, google_row.lost, google_row.won),
        (1, 1, 0)
    );

    // `tandem forget` fans the deletion out to the CRM and to Mailchimp, which both know Ann now.
    let forgot: Value = l
        .http
        .post(format!("http://{}/api/forget", l.daemon.addr))
        .bearer_auth("loop-admin")
        .json(&json!({"identifier": "ann@loop.example.com"}))
        .send()
        .await
        .expect("forget")
        .json()
        .await
        .expect("forget answer");
    let fanout = forgot["audit"]["connectors"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    for connector in ["crm", "mailchimp"] {
        assert!(
            fanout
                .iter()
                .any(|f| f["connector"] == connector && f["status"] == "queued"),
            "{kind}: {connector} not in the fan-out: {forgot}"
        );
    }
    common::wait_until(LONG, "the deletions to finish", || async {
        let audits = store.forget_audits(1).await.ok()?;
        let status = audits.first()?.status.clone();
        assert_ne!(status, "failed", "{kind}: {audits:?}");
        (status == "done").then_some(())
    })
    .await;
}

macro_rules! per_crm {
    ($($name:ident = $kind:literal,)*) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $name() {
                a_won_deal_comes_back_out_everywhere($kind).await;
            }
        )*

        #[test]
        fn every_crm_kind_is_covered() {
            let covered = [$($kind),*];
            for kind in CRM_KINDS {
                assert!(covered.contains(kind), "{kind} is not in the closed-loop suite");
            }
        }
    };
}

per_crm! {
    hubspot_closes_the_loop = "hubspot",
    salesforce_closes_the_loop = "salesforce",
    pipedrive_closes_the_loop = "pipedrive",
    zoho_closes_the_loop = "zoho",
}

/// `tandem demo --once`, the real binary: a lead goes in, becomes a won deal, and comes back out as
/// a Google conversion, a Meta CAPI event, a Mailchimp tag and CRM attribution fields, with
/// reports whose numbers are the hand-computed ones; exit 0.
#[test]
fn the_demo_runs_the_whole_loop_and_its_numbers_check_out() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tandem"))
        .args(["demo", "--once"])
        .env("RUST_LOG", "warn")
        .output()
        .expect("tandem demo runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "demo failed: {}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    // Conversions and events by their dedup keys, Meta's won event, Mailchimp's tag.
    for needle in [":won ", "Converted", "deal-won"] {
        assert!(stdout.contains(needle), "{needle:?} missing:\n{stdout}");
    }
    let row = |source: &str| {
        stdout
            .lines()
            .find(|l| l.trim_start().starts_with(source) && l.contains("EUR"))
            .unwrap_or_else(|| panic!("no {source} row:\n{stdout}"))
            .split_whitespace()
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    // position_based over the demo's deals: Ada's 12,000.00 split 50/50 between google and the
    // newsletter; Grace's 8,500.00 facebook's; Alan's 4,000.00 linkedin's.
    assert!(row("facebook").contains(&"850000".to_owned()));
    assert!(row("google").contains(&"600000".to_owned()));
    assert!(row("newsletter").contains(&"600000".to_owned()));
    assert!(row("linkedin").contains(&"400000".to_owned()));
    assert!(stdout.contains("tandem_attribution   position_based: 50% google / cpc / q4-brand-search; 50% newsletter / email"));
}
