//! What the demo prints: the CRM's contacts, what each write-back sandbox accepted, the attribution
//! fields on the deals, the reports, and the checks behind `--once`'s exit code.

use std::collections::BTreeMap;
use std::time::Duration;

use tandem_connectors::sandbox::{CrmSandbox, DealSandbox, WritebackSandbox};

use crate::{
    attribution::{Dimension, Format, Model, ModelParams},
    outcomes::report::{ReportPeriod, attribution_report, quality_report},
    store::{Store, sqlite::now_ms},
};

/// The `base_url = "…"` of a sandbox's connector lines.
pub fn base_url(connector_toml: &str) -> String {
    connector_toml
        .lines()
        .find_map(|l| l.trim().strip_prefix("base_url = "))
        .map(|v| v.trim_matches('"').to_owned())
        .unwrap_or_default()
}

pub fn contacts(crm: &dyn CrmSandbox) {
    let f = crm.fields();
    let records = crm.records();
    println!("\n  HubSpot contacts ({}):", records.len());
    println!(
        "  {:<12} {:<52} {:<10} {:<18} {:>6}",
        "ID", "EMAIL", "FIRSTNAME", "PHONE", "WRITES"
    );
    for r in &records {
        let p = |k: &str| r.fields.get(k).cloned().unwrap_or_default();
        println!(
            "  {:<12} {:<52} {:<10} {:<18} {:>6}",
            r.id,
            p(f.email),
            p(f.first_name),
            p(f.phone),
            r.writes
        );
    }
    let stats = crm.stats();
    println!(
        "  {} API calls, {} x 429",
        stats.api_calls, stats.rate_limited
    );
}

pub fn received(kind: &str, sandbox: &dyn WritebackSandbox) {
    let got = sandbox.received();
    println!("\n  {kind} accepted {}:", got.len());
    for r in got {
        let value = match (&r.value, &r.currency) {
            (Some(v), Some(c)) => format!("{c} {v}"),
            (Some(v), None) => v.clone(),
            _ => String::new(),
        };
        println!(
            "    {:<34} {:<26} {:<14} {:<11} matched on {}",
            r.key,
            r.name,
            value,
            r.adjustment.as_deref().unwrap_or(""),
            r.identifiers.join(", ")
        );
    }
}

pub fn deal_fields(deals: &dyn DealSandbox, worked: &[(String, String)]) {
    println!("\n  attribution fields tandem wrote on the HubSpot deals:");
    for (id, email) in worked {
        let fields = deals.deal_fields(id);
        println!("    deal {id} ({email})");
        for (k, v) in fields.iter().filter(|(k, _)| k.starts_with("tandem_")) {
            println!("      {k:<20} {v}");
        }
    }
}

pub async fn reports(store: &dyn Store) -> anyhow::Result<()> {
    let inputs = store.attribution_inputs().await?;
    let period = ReportPeriod::default();
    let report = attribution_report(
        &inputs,
        Model::PositionBased,
        &ModelParams::default(),
        Duration::from_secs(90 * 86_400),
        &period,
        Dimension::Campaign,
        now_ms(),
    );
    println!("\n  $ tandem report attribution --model position_based --by campaign");
    print!("{}", indent(&report.render(Format::Table)));
    let quality = quality_report(&inputs, &period, Dimension::Source);
    println!("\n  $ tandem report quality --by source");
    print!("{}", indent(&quality.render(Format::Table)));
    Ok(())
}

fn indent(text: &str) -> String {
    text.lines().map(|l| format!("  {l}\n")).collect()
}

/// What `--once` insists on: each won deal reached every ad platform once, Mailchimp tagged the
/// winners and the losers, and every deal carries its attribution fields. One line per problem.
pub fn check(
    targets: &BTreeMap<&str, Box<dyn WritebackSandbox>>,
    worked: &[(String, bool, bool)],
    deals: &dyn DealSandbox,
) -> Vec<String> {
    let mut problems = Vec::new();
    for (id, _, _) in worked.iter().filter(|(_, won, _)| *won) {
        let key = format!("hubspot:{id}:won");
        for kind in ["google_ads", "meta_capi", "linkedin"] {
            let sends = targets[kind]
                .received()
                .iter()
                .filter(|r| r.key == key && r.adjustment.is_none())
                .count();
            if sends != 1 {
                problems.push(format!(
                    "{kind} accepted {sends} won conversions for deal {id}, not 1"
                ));
            }
        }
    }
    let tags = targets["mailchimp"].received();
    for (tag, wanted) in [
        ("deal-won", worked.iter().filter(|(_, won, _)| *won).count()),
        (
            "deal-lost",
            worked.iter().filter(|(_, _, lost)| *lost).count(),
        ),
    ] {
        let got = tags
            .iter()
            .filter(|r| r.name == tag && r.adjustment.is_none())
            .count();
        if got < wanted {
            problems.push(format!(
                "mailchimp set {tag} {got} times, expected {wanted}"
            ));
        }
    }
    for (id, _, _) in worked {
        if !deals
            .deal_fields(id)
            .values()
            .any(|v| v.starts_with("position_based:"))
        {
            problems.push(format!("deal {id} has no attribution fields"));
        }
    }
    problems
}
