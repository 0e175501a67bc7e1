//! The deal side of the Pipedrive connector against its sandbox over real loopback HTTP:
//! outcomes by cursor ([`outcomes`]), attribution written onto deals ([`deal_fields`]), the
//! deal webhook ([`webhook`]), and person deletion ([`forget`]).

mod deal_fields;
mod forget;
mod outcomes;
mod webhook;

use std::sync::Arc;

use serde_json::{Value, json};

use crate::{
    ConnectorContext,
    outcome::{Outcome, OutcomePage, OutcomeSource},
    sandbox::SandboxDeal,
    writeback::{
        AttributionSummary, Conversion, CreditSummary, Milestone, TouchSummary, WritebackAction,
    },
};

use super::{
    PipedriveClient, PipedriveConfig,
    deals::DealPoller,
    sandbox::{PipedriveSandbox, SandboxOptions},
};

pub(super) fn options() -> SandboxOptions {
    SandboxOptions {
        seed: Some(7),
        ..Default::default()
    }
}

pub(super) async fn sandbox_with(options: SandboxOptions) -> PipedriveSandbox {
    PipedriveSandbox::start("127.0.0.1:0".parse().expect("addr"), options)
        .await
        .expect("sandbox binds")
}

pub(super) async fn sandbox() -> PipedriveSandbox {
    sandbox_with(options()).await
}

/// An API-token config pointing at `sb`, with `extra` keys on top.
pub(super) fn config(sb: &PipedriveSandbox, extra: Value) -> PipedriveConfig {
    let o = sb.state().options();
    let mut cfg = json!({
        "api_token": o.api_token, "base_url": sb.base_url(), "timeout": "2s", "plan": "enterprise"
    });
    if let (Some(c), Some(e)) = (cfg.as_object_mut(), extra.as_object()) {
        c.extend(e.clone());
    }
    let cfg: PipedriveConfig = serde_json::from_value(cfg).expect("config");
    assert!(cfg.validate().is_empty(), "{:?}", cfg.validate());
    cfg
}

pub(super) fn client(cfg: &PipedriveConfig) -> Arc<PipedriveClient> {
    Arc::new(PipedriveClient::new(cfg, ConnectorContext::in_memory("pd")).expect("client"))
}

pub(super) fn poller(sb: &PipedriveSandbox, extra: Value) -> DealPoller {
    let cfg = config(sb, extra);
    DealPoller::new(&cfg, client(&cfg))
}

/// A deal as a salesperson makes it: `stage`, `amount`, people by email, stamped `at_ms`.
pub(super) fn deal(
    stage: &str,
    amount: Option<&str>,
    emails: &[&str],
    at_ms: Option<i64>,
) -> SandboxDeal {
    SandboxDeal {
        pipeline: None,
        stage: stage.to_owned(),
        amount: amount.map(str::to_owned),
        currency: None,
        contact_emails: emails.iter().map(|e| e.to_string()).collect(),
        at_ms,
    }
}

/// Polls until nothing more waits; every outcome, the last cursor and the pages it took.
pub(super) async fn drain(
    p: &DealPoller,
    mut cursor: Option<String>,
) -> (Vec<Outcome>, String, usize) {
    let mut all = Vec::new();
    for pages in 1..=100 {
        let OutcomePage {
            outcomes,
            next_cursor,
            more,
        } = p.poll_outcomes(cursor.as_deref()).await.expect("poll");
        all.extend(outcomes);
        cursor = Some(next_cursor);
        if !more {
            return (all, cursor.unwrap_or_default(), pages);
        }
    }
    panic!("the poll never reached the end");
}

pub(super) fn ids(outcomes: &[Outcome]) -> Vec<String> {
    outcomes.iter().map(|o| o.deal_id.clone()).collect()
}

pub(super) fn now_ms() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}

pub(super) fn touch(source: &str, campaign: &str) -> TouchSummary {
    TouchSummary {
        source: source.into(),
        medium: Some("cpc".into()),
        campaign: Some(campaign.into()),
        captured_at_ms: 1_700_000_000_000,
    }
}

pub(super) fn conversion(
    deal_id: &str,
    action: WritebackAction,
    credits: &[(&str, f64)],
) -> Conversion {
    let credits: Vec<CreditSummary> = credits
        .iter()
        .map(|(s, w)| CreditSummary {
            touch: touch(s, "spring"),
            weight: *w,
            amount_minor: 0,
        })
        .collect();
    Conversion {
        delivery_id: 1,
        key: format!("pd:{deal_id}:won"),
        request_key: format!("pd:{deal_id}:won"),
        action,
        milestone: Milestone::Won,
        crm: "pd".into(),
        crm_kind: "pipedrive".into(),
        deal_id: deal_id.into(),
        occurred_at_ms: 1_700_000_000_000,
        value_minor: Some(100),
        currency: Some("USD".into()),
        person: Default::default(),
        clicks: Default::default(),
        attribution: AttributionSummary {
            model: "linear".into(),
            first_touch: credits.first().map(|c| c.touch.clone()),
            last_touch: credits.last().map(|c| c.touch.clone()),
            credits,
        },
    }
}
