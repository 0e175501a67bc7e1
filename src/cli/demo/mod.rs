//! `tandem demo`: the whole loop on one machine. Starts the built-in sandboxes (HubSpot as the
//! CRM; Google Ads' Data Manager, Meta CAPI, LinkedIn and Mailchimp as write-back targets), runs
//! the real daemon against them with config/demo.toml, posts leads from several campaigns to the
//! real webhook endpoint over HTTP, plays salesperson in the HubSpot sandbox (deals qualified,
//! won, lost, one won and then lost), and shows the outcomes come back out: conversions, events,
//! tags and attribution fields on the deals, then the attribution and lead-quality reports.

mod leads;
mod show;

use std::{
    collections::{BTreeMap, BTreeSet},
    future::Future,
    time::{Duration, Instant},
};

use anyhow::Context;
use serde_json::json;
use tandem_connectors::sandbox::{SandboxDeal, WritebackSandbox, start_crm, start_writeback};

use crate::{config::Config, daemon::Daemon, store::Store};

const DEMO_CONFIG: &str = include_str!("../../../config/demo.toml");
/// The write-back targets of config/demo.toml, by connector name (= kind).
const TARGETS: &[&str] = &["google_ads", "meta_capi", "linkedin", "mailchimp"];
const WAIT: Duration = Duration::from_secs(60);

/// One deal the demo's salesperson works: whose it is, its amount, and how it ends.
struct Play {
    lead: usize,
    amount: &'static str,
    end: End,
}

#[derive(Clone, Copy, PartialEq)]
enum End {
    Won,
    Lost,
    /// Won, then lost: the won conversion is retracted where the vendor can say so.
    WonThenLost,
}

const PLAYS: &[Play] = &[
    Play {
        lead: 0,
        amount: "12000.00",
        end: End::Won,
    },
    Play {
        lead: 1,
        amount: "8500.00",
        end: End::Won,
    },
    Play {
        lead: 2,
        amount: "4000.00",
        end: End::Won,
    },
    Play {
        lead: 3,
        amount: "5000.00",
        end: End::Lost,
    },
    Play {
        lead: 4,
        amount: "3000.00",
        end: End::WonThenLost,
    },
];

pub async fn run(once: bool, leads: usize, listen: &str) -> anyhow::Result<i32> {
    crate::daemon::telemetry::init_logging(crate::config::LogFormat::Text);
    let crm = start_crm("hubspot")
        .await
        .context("starting the HubSpot sandbox")?
        .context("this build has no HubSpot sandbox")?;
    let mut targets: BTreeMap<&str, Box<dyn WritebackSandbox>> = BTreeMap::new();
    for kind in TARGETS {
        let sandbox = start_writeback(kind)
            .await
            .with_context(|| format!("starting the {kind} sandbox"))?
            .with_context(|| format!("this build has no {kind} sandbox"))?;
        targets.insert(kind, sandbox);
    }
    let deals = crm
        .deals()
        .context("the HubSpot sandbox has no deal side")?;
    let dir = tempfile_dir()?;
    let mut text = DEMO_CONFIG
        .replace("@LISTEN@", listen)
        .replace("@STATE@", &dir.join("tandem.db").display().to_string())
        .replace(
            "@HUBSPOT@",
            &format!("{}{}", crm.connector_toml(), deals.outcome_toml()),
        );
    for (kind, sandbox) in &targets {
        text = text.replace(
            &format!("@{}@", kind.to_uppercase()),
            &sandbox.connector_toml(),
        );
    }
    let config =
        Config::from_str_at(&text, &dir.join("demo.toml")).map_err(|e| anyhow::anyhow!("{e}"))?;
    let daemon = Daemon::start(config).await?;
    let hook = format!("http://{}/hooks/website", daemon.addr);
    println!("tandem demo: the whole loop against built-in sandboxes");
    println!(
        "  HubSpot (CRM)     {}",
        show::base_url(&crm.connector_toml())
    );
    for (kind, sandbox) in &targets {
        println!("  {kind:<17} {}", show::base_url(&sandbox.connector_toml()));
    }
    println!(
        "  tandem            http://{}   (webhook: POST {hook})",
        daemon.addr
    );
    println!("  state             {}\n", dir.display());
    let started = Instant::now();

    println!("1. Leads come in from four campaigns, posted to the webhook over HTTP");
    let expected = leads::post_all(&hook, leads.max(PLAYS.len())).await?;
    let store = daemon.store();
    wait_for("every accepted lead to reach HubSpot", || async {
        let open: u64 = store
            .status()
            .await
            .ok()?
            .iter()
            .map(|d| d.pending + d.in_flight)
            .sum();
        let arrived = expected
            .iter()
            .filter(|e| crm.record_by_email(e).is_some())
            .count();
        (open == 0 && arrived == expected.len()).then_some(())
    })
    .await?;
    show::contacts(crm.as_ref());

    println!("\n2. Sales works the deals in HubSpot (the sandbox plays salesperson)");
    let stages = deals.stages();
    let mut worked = Vec::new();
    for play in PLAYS {
        let email = leads::email_of(play.lead);
        let id = deals.create_deal(SandboxDeal {
            stage: stages.qualified.clone(),
            amount: Some(play.amount.to_owned()),
            currency: Some("EUR".into()),
            contact_emails: vec![email.clone()],
            ..Default::default()
        });
        worked.push((id, email, play));
    }
    // Every deal is seen qualified before it closes, so the funnel reaches the platforms in order.
    wait_for("the qualified deals to be polled", || async {
        let n = store.attribution_inputs().await.ok()?.deals.len();
        (n == PLAYS.len()).then_some(())
    })
    .await?;
    for (id, email, play) in &worked {
        let stage = match play.end {
            End::Lost => &stages.lost,
            End::Won | End::WonThenLost => &stages.won,
        };
        deals.move_deal(id, stage, None, None);
        println!(
            "  deal {id:<8} {email:<52} EUR {:>9}  {} -> {stage}",
            play.amount, stages.qualified
        );
    }
    let won_key = |id: &str| format!("hubspot:{id}:won");
    let google = &targets["google_ads"];
    let won_ids: Vec<&String> = worked
        .iter()
        .filter(|(_, _, p)| p.end != End::Lost)
        .map(|(id, _, _)| id)
        .collect();
    wait_for("the won conversions at Google", || async {
        let got: BTreeSet<String> = google.received().into_iter().map(|r| r.key).collect();
        won_ids
            .iter()
            .all(|id| got.contains(&won_key(id)))
            .then_some(())
    })
    .await?;
    for (id, email, play) in &worked {
        if play.end == End::WonThenLost {
            deals.move_deal(id, &stages.lost, None, None);
            println!(
                "  deal {id:<8} {email:<52} reopened and lost: {} -> {}",
                stages.won, stages.lost
            );
        }
    }
    wait_for("the retraction and every write-back to settle", || async {
        let status = store.status().await.ok()?;
        let open: u64 = status.iter().map(|d| d.pending + d.in_flight).sum();
        let lost_seen = store
            .attribution_inputs()
            .await
            .ok()?
            .deals
            .iter()
            .filter(|d| d.deal.status == crate::attribution::DealStatus::Lost)
            .count();
        let expected_lost = PLAYS.iter().filter(|p| p.end != End::Won).count();
        (open == 0 && lost_seen == expected_lost).then_some(())
    })
    .await?;

    println!("\n3. Outcomes came back out (what each sandbox accepted)");
    for (kind, sandbox) in &targets {
        show::received(kind, sandbox.as_ref());
    }
    show::deal_fields(
        deals,
        &worked
            .iter()
            .map(|(id, e, _)| (id.clone(), e.clone()))
            .collect::<Vec<_>>(),
    );

    println!("\n4. Reports (tandem report attribution / quality, from the state file)");
    show::reports(store.as_ref()).await?;
    println!(
        "\nCheck by hand (position_based: one touchpoint takes 100%, two split 50/50):\n  Ada's 12,000.00 came through google/cpc (first touch) and the newsletter (her return visit): 6,000.00 each;\n  Grace's 8,500.00 is facebook's, Alan's 4,000.00 linkedin's; Edsger's and Barbara's deals were lost: no revenue."
    );
    print!("\n{}", super::ops::render_status(&store.status().await?));
    println!("whole loop in {:.2?}", started.elapsed());

    let problems = show::check(&targets, &worked_summary(&worked), deals);
    for p in &problems {
        eprintln!("MISMATCH: {p}");
    }
    let code = i32::from(!problems.is_empty());
    if once {
        daemon.shutdown().await;
        return Ok(code);
    }
    println!("\nstill serving; try:");
    println!(
        "  curl -s -XPOST {hook} -H 'content-type: application/json' -d '{}'",
        json!({"email": "you@example.com", "utm_source": "google", "gclid": "try-it"})
    );
    println!("  curl -s http://{}/metrics | grep tandem_", daemon.addr);
    println!(
        "  tandem --config {} report attribution --by source",
        dir.join("demo.toml").display()
    );
    std::fs::write(dir.join("demo.toml"), &text).ok();
    println!("Ctrl-C to stop.");
    tokio::signal::ctrl_c().await?;
    daemon.shutdown().await;
    Ok(code)
}

/// (deal id, won at some point, lost at the end) per worked deal.
fn worked_summary(worked: &[(String, String, &Play)]) -> Vec<(String, bool, bool)> {
    worked
        .iter()
        .map(|(id, _, p)| (id.clone(), p.end != End::Lost, p.end != End::Won))
        .collect()
}

/// Polls `check` every 50 ms until it returns Some, for at most a minute.
async fn wait_for<T, F, Fut>(what: &str, mut check: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(v) = check().await {
            return Ok(v);
        }
        if Instant::now() > deadline {
            anyhow::bail!("timed out after {WAIT:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A fresh directory for the demo's state, kept after exit so it can be inspected.
fn tempfile_dir() -> anyhow::Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!("tandem-demo-{}", uuid::Uuid::now_v7().simple()));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(dir)
}
