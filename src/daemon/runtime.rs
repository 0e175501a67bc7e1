//! Everything built from one validated [`Config`]: compiled templates, connector clients and the
//! routes from sources to destinations. A reload builds a new `Runtime` and swaps it in whole, so
//! a request never sees half of an old config and half of a new one.

use std::{collections::BTreeMap, sync::Arc};

use anyhow::Context;
use serde_json::json;
use tandem_connectors::{
    ConnectorContext, ConnectorKind, Lead, OnConflict, RecordFields,
    outcome::{OutcomeSource, OutcomeWebhook},
    source::{LeadFetcher, PolledSource, WebhookPreset},
    writeback::{Milestone, WritebackAction},
};

use crate::{
    config::Config,
    engine::Sinks,
    mapping::{FieldTemplates, RenderError},
    outcomes::{Destination, LoopConfig, milestones::StageMap, plan::Caps},
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

/// The deal side of `[attribution]`: the CRM's outcome source and the write-back planner.
pub struct OutcomeSide {
    pub source: Arc<dyn OutcomeSource>,
    /// The CRM's deal webhook (`POST /hooks/CRM`), when it has one configured.
    pub webhook: Option<Box<dyn OutcomeWebhook>>,
    pub plan: Arc<LoopConfig>,
}

pub struct Runtime {
    pub config: Config,
    pub sources: BTreeMap<String, Source>,
    pub flows: BTreeMap<String, Arc<Flow>>,
    /// Destination connectors: CRMs some flow delivers to, and `[attribution] to` targets.
    pub sinks: BTreeMap<String, Sinks>,
    pub outcomes: Option<OutcomeSide>,
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
                let flows: Vec<Arc<Flow>> = flows
                    .values()
                    .filter(|f| f.from.iter().any(|s| s == name))
                    .cloned()
                    .collect();
                // A platform that is only a write-back target (Mailchimp taking tags) is not
                // polled for leads: nothing would route them, and tandem's own writes would come
                // back as touchpoints.
                let polled = !flows.is_empty();
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
                        poller: if polled {
                            kind.polled_source(ctx())
                                .with_context(|| format!("connector {name}"))?
                        } else {
                            None
                        },
                    },
                );
            }
            let ctx = || ConnectorContext {
                name: name.clone(),
                state: Arc::new(StoreConnectorState {
                    store: store.clone(),
                    connector: name.clone(),
                }),
            };
            let lead = if flows.values().any(|f| &f.to == name) {
                kind.lead_sink(ctx())
                    .with_context(|| format!("connector {name}"))?
            } else {
                None
            };
            let writes_back = config
                .attribution
                .as_ref()
                .is_some_and(|a| a.to.contains(name));
            let writeback = if writes_back {
                kind.writeback_sink(ctx())
                    .with_context(|| format!("connector {name}"))?
            } else {
                None
            };
            let limit = match (&lead, &writeback) {
                (Some(l), _) => Some(l.default_rate_limit()),
                (None, Some(w)) => Some(w.default_rate_limit()),
                (None, None) => None,
            };
            if let Some(limit) = limit {
                sinks.insert(
                    name.clone(),
                    Sinks {
                        lead,
                        writeback,
                        limit,
                    },
                );
            }
        }
        let outcomes = outcome_side(&config, &sinks, &store)?;
        Ok(Runtime {
            config,
            sources,
            flows,
            sinks,
            outcomes,
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

/// Builds `[attribution]`'s deal side: the CRM's outcome source and, per write-back destination,
/// the milestones it takes and the adjustments it can express.
fn outcome_side(
    config: &Config,
    sinks: &BTreeMap<String, Sinks>,
    store: &Arc<dyn Store>,
) -> anyhow::Result<Option<OutcomeSide>> {
    let Some(a) = &config.attribution else {
        return Ok(None);
    };
    let Some(kind) = config.connectors.get(&a.from) else {
        return Ok(None);
    };
    let ctx = ConnectorContext {
        name: a.from.clone(),
        state: Arc::new(StoreConnectorState {
            store: store.clone(),
            connector: a.from.clone(),
        }),
    };
    let source = kind
        .outcome_source(ctx)
        .with_context(|| format!("connector {}", a.from))?
        .ok_or_else(|| {
            anyhow::anyhow!(
                "connector {} (kind {}) cannot report deal outcomes",
                a.from,
                kind.kind_name()
            )
        })?;
    let destinations =
        a.to.iter()
            .filter_map(|name| {
                let sink = sinks.get(name)?.writeback.as_ref()?;
                Some(Destination {
                    name: name.clone(),
                    accepts: Milestone::ALL
                        .into_iter()
                        .filter(|m| sink.accepts(*m))
                        .collect(),
                    caps: Caps {
                        restate: sink.supports(WritebackAction::Restate),
                        retract: sink.supports(WritebackAction::Retract),
                    },
                })
            })
            .collect();
    let meta_sources = config
        .connectors
        .iter()
        .filter(|(_, k)| is_meta_lead_ads(k))
        .map(|(n, _)| n.clone())
        .collect();
    let plan = LoopConfig {
        crm: a.from.clone(),
        crm_kind: kind.kind_name().to_owned(),
        model: a.model,
        params: a.params(),
        lookback: a.lookback.0,
        stages: StageMap::new(&a.milestones),
        meta_sources,
        destinations,
    };
    Ok(Some(OutcomeSide {
        webhook: source.outcome_webhook(),
        source,
        plan: Arc::new(plan),
    }))
}

/// Whether a connector delivers Meta lead ads (whose event ids are Meta lead ids).
fn is_meta_lead_ads(kind: &ConnectorKind) -> bool {
    kind.webhook()
        .is_some_and(|w| w.preset == tandem_connectors::webhook::Preset::MetaLeadAds)
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
        for (name, sinks) in &self.sinks {
            if let Some(wb) = &sinks.writeback {
                for problem in wb.verify().await {
                    problems.push((name.clone(), problem));
                }
            }
            let Some(sink) = &sinks.lead else {
                continue;
            };
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
