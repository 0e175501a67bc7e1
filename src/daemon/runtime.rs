//! Everything built from one validated [`Config`]: compiled templates, connector clients and the
//! routes from sources to destinations. A reload builds a new `Runtime` and swaps it in whole, so
//! a request never sees half of an old config and half of a new one.

use std::{collections::BTreeMap, sync::Arc};

use anyhow::Context;
use serde_json::json;
use tandem_connectors::{
    ConnectorContext, Lead, LeadSink, OnConflict, RateLimit, RecordFields,
    source::{LeadFetcher, PolledSource, WebhookPreset},
};

use crate::{
    config::Config,
    mapping::{FieldTemplates, RenderError},
    store::{LeadDelivery, Store, StoreConnectorState},
};

/// A connector leads come from: pushed webhooks (with a preset, and for Meta a fetcher) or a
/// polled platform.
pub struct Source {
    /// The webhook's own field templates (empty for polled sources).
    pub templates: FieldTemplates,
    /// Region for phone numbers without a country code.
    pub default_region: Option<String>,
    /// Platform test leads reach a CRM only when this is true.
    pub deliver_test_leads: bool,
    /// Flows that start at this source.
    pub flows: Vec<Arc<Flow>>,
    /// Verifies and parses `POST /hooks/NAME` (webhook sources).
    pub preset: Option<Box<dyn WebhookPreset>>,
    /// Fetches leads announced by id only (Meta).
    pub fetcher: Option<Arc<dyn LeadFetcher>>,
    /// Polled platforms.
    pub poller: Option<Arc<dyn PolledSource>>,
}

/// A compiled `[flows.NAME]`.
pub struct Flow {
    pub name: String,
    pub from: Vec<String>,
    pub to: String,
    pub templates: FieldTemplates,
    /// Fields whose `on_conflict` is not `overwrite`.
    pub conflict: BTreeMap<String, OnConflict>,
}

pub struct Runtime {
    pub config: Config,
    pub sources: BTreeMap<String, Source>,
    pub flows: BTreeMap<String, Arc<Flow>>,
    /// CRM connectors that some flow delivers to, with their effective rate limit.
    pub sinks: BTreeMap<String, (Arc<dyn LeadSink>, RateLimit)>,
}

impl Runtime {
    /// Builds clients and compiles templates. The config was validated on load, so a failure here
    /// is an environment problem (e.g. the TLS stack), reported with the connector's name.
    /// Connectors get a [`ConnectorContext`] backed by `store` (OAuth tokens, remote ids).
    pub fn build(config: Config, store: Arc<dyn Store>) -> anyhow::Result<Runtime> {
        let mut flows = BTreeMap::new();
        for (name, f) in &config.flows {
            let templates = FieldTemplates::from_flow(&f.fields).map_err(|errs| {
                anyhow::anyhow!("flow {name}: templates do not compile: {}", describe(&errs))
            })?;
            flows.insert(
                name.clone(),
                Arc::new(Flow {
                    name: name.clone(),
                    from: f.from.clone(),
                    to: f.to.clone(),
                    templates,
                    conflict: f
                        .fields
                        .iter()
                        .filter(|(_, m)| m.on_conflict() != OnConflict::Overwrite)
                        .map(|(k, m)| (k.clone(), m.on_conflict()))
                        .collect(),
                }),
            );
        }
        let mut sources = BTreeMap::new();
        let mut sinks = BTreeMap::new();
        for (name, kind) in &config.connectors {
            if kind.is_source() {
                let ctx = || ConnectorContext {
                    name: name.clone(),
                    state: Arc::new(StoreConnectorState {
                        store: store.clone(),
                        connector: name.clone(),
                    }),
                };
                let (templates, default_region, deliver_test_leads) = match kind.webhook() {
                    Some(w) => (
                        FieldTemplates::compile(&w.fields).map_err(|errs| {
                            anyhow::anyhow!(
                                "connector {name}: templates do not compile: {}",
                                describe(&errs)
                            )
                        })?,
                        w.default_region.clone(),
                        w.deliver_test_leads,
                    ),
                    None => (
                        FieldTemplates::compile(&BTreeMap::new())
                            .map_err(|_| anyhow::anyhow!("templates"))?,
                        None,
                        false,
                    ),
                };
                let flows = flows
                    .values()
                    .filter(|f| f.from.iter().any(|s| s == name))
                    .cloned()
                    .collect();
                sources.insert(
                    name.clone(),
                    Source {
                        templates,
                        default_region,
                        deliver_test_leads,
                        flows,
                        preset: kind.webhook_preset(),
                        fetcher: kind
                            .lead_fetcher(ctx())
                            .with_context(|| format!("connector {name}"))?,
                        poller: kind
                            .polled_source(ctx())
                            .with_context(|| format!("connector {name}"))?,
                    },
                );
            }
            let is_destination = flows.values().any(|f| &f.to == name);
            if is_destination
                && let Some(sink) = kind
                    .lead_sink(ConnectorContext {
                        name: name.clone(),
                        state: Arc::new(StoreConnectorState {
                            store: store.clone(),
                            connector: name.clone(),
                        }),
                    })
                    .with_context(|| format!("connector {name}"))?
            {
                let limit = sink.default_rate_limit();
                sinks.insert(name.clone(), (sink, limit));
            }
        }
        Ok(Runtime {
            config,
            sources,
            flows,
            sinks,
        })
    }

    /// The deliveries one lead causes: one per flow from its source, with the flow's fields
    /// rendered against the lead now, so the outbox row is complete on its own.
    pub fn deliveries_for(
        &self,
        source: &Source,
        lead_id: &str,
        lead: &Lead,
    ) -> Result<Vec<LeadDelivery>, RenderError> {
        if lead.is_test && !source.deliver_test_leads {
            // Stored and visible, never sent to a CRM unless the source says so.
            return Ok(Vec::new());
        }
        let ctx = json!({ "lead": lead, "lead_id": lead_id });
        source
            .flows
            .iter()
            .map(|flow| render_delivery(flow, &ctx))
            .collect()
    }
}

/// Renders one flow for one lead (also used by replay).
pub fn render_delivery(flow: &Flow, ctx: &serde_json::Value) -> Result<LeadDelivery, RenderError> {
    let fields = RecordFields {
        properties: flow.templates.render(ctx)?,
        conflict: flow.conflict.clone(),
    };
    Ok(LeadDelivery {
        flow: flow.name.clone(),
        destination: flow.to.clone(),
        payload: serde_json::to_string(&fields).unwrap_or_else(|_| "{}".into()),
    })
}

fn describe(errs: &[(String, String)]) -> String {
    errs.iter()
        .map(|(k, m)| format!("{k}: {m}"))
        .collect::<Vec<_>>()
        .join("; ")
}

impl Runtime {
    /// `check --connect`: asks every CRM connector a flow delivers to whether its credentials work
    /// and every mapped field exists with a writable type. Returns (connector, problem) lines.
    pub async fn verify_connections(&self) -> Vec<(String, String)> {
        let mut problems = Vec::new();
        for (name, (sink, _)) in &self.sinks {
            let fields: Vec<String> = self
                .config
                .flows
                .values()
                .filter(|f| &f.to == name)
                .flat_map(|f| f.fields.keys().cloned())
                .collect::<std::collections::BTreeSet<_>>()
                .into_iter()
                .collect();
            for problem in sink.verify(&fields).await {
                problems.push((name.clone(), problem));
            }
        }
        problems
    }
}
