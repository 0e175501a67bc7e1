//! Attribution written back onto HubSpot's own deals, as a [`WritebackSink`]: the three
//! `deal_fields` (first touch, last touch, the model's credit line) through
//! `POST /crm/v3/objects/deals/batch/update`, up to 100 deals per call; HubSpot answers 200, or
//! 207 with one error per refused deal. Every action (send, restate, retract) rewrites the three
//! fields from the conversion's current attribution, so a retry or a replay is harmless.
//! `verify` reads each field's definition (`GET /crm/v3/properties/deals/{name}`).

use std::collections::{BTreeMap, HashMap};

use async_trait::async_trait;
use reqwest::StatusCode;

use crate::{
    BuildError, ConnectorContext,
    sink::{BatchOutcome, CallError, ItemResult, RateLimit},
    writeback::{Conversion, Milestone, WritebackAction, WritebackSink},
};

use super::{
    DealFields, HubspotClient, HubspotConfig,
    client::classify,
    deals_wire::{BatchUpdateInput, BatchUpdateRequest, BatchUpdateResponse},
    limits, verify,
    wire::{Property, StandardError},
};

pub const UPDATE_PATH: &str = "crm/v3/objects/deals/batch/update";
pub const PROPERTY_PATH: &str = "crm/v3/properties/deals";
/// HubSpot's batch limit for CRM objects.
pub const MAX_BATCH: usize = 100;
/// HubSpot's cap on a text property value.
pub const MAX_VALUE_CHARS: usize = 65_536;

const NO_DEAL_MESSAGE: &str = "the conversion names no HubSpot deal id";
const NO_RESULT_MESSAGE: &str = "HubSpot returned no result for this deal";
const OVERFLOW_MESSAGE: &str =
    "batch held more deals than HubSpot updates in one call; this one waits for the next batch";

/// Writes attribution onto deals of one HubSpot account.
pub struct HubspotDealFields {
    client: HubspotClient,
    update_url: reqwest::Url,
    property_url: reqwest::Url,
    fields: DealFields,
    rate_limit: RateLimit,
}

fn clip(text: String) -> String {
    if text.chars().count() <= MAX_VALUE_CHARS {
        return text;
    }
    text.chars().take(MAX_VALUE_CHARS).collect()
}

/// The three properties of one conversion (an empty value clears the field in HubSpot).
pub fn properties(fields: &DealFields, c: &Conversion) -> BTreeMap<String, String> {
    let a = &c.attribution;
    let label = |t: &Option<crate::writeback::TouchSummary>| {
        t.as_ref().map(|t| t.label()).unwrap_or_default()
    };
    BTreeMap::from([
        (fields.first_touch.clone(), clip(label(&a.first_touch))),
        (fields.last_touch.clone(), clip(label(&a.last_touch))),
        (
            fields.attribution.clone(),
            clip(format!("{}: {}", a.model, a.credit_line())),
        ),
    ])
}

/// One request for the batch: each deal once, carrying its newest conversion (the highest
/// delivery id), and the index in `batch` each input answers for.
fn plan(
    fields: &DealFields,
    batch: &[Conversion],
) -> (
    Vec<BatchUpdateInput>,
    Vec<Option<usize>>,
    Vec<Option<ItemResult>>,
) {
    let mut local = vec![None; batch.len()];
    let mut chosen: HashMap<&str, usize> = HashMap::new();
    for (i, c) in batch.iter().enumerate() {
        let id = c.deal_id.trim();
        if id.is_empty() {
            local[i] = Some(ItemResult::Permanent {
                message: NO_DEAL_MESSAGE.to_owned(),
            });
            continue;
        }
        match chosen.get(id) {
            Some(&j) if batch[j].delivery_id >= c.delivery_id => {}
            _ => {
                chosen.insert(id, i);
            }
        }
    }
    let mut order: Vec<usize> = chosen.into_values().collect();
    order.sort_unstable();
    // More deals than one call takes would make HubSpot refuse the whole batch: the rest wait.
    let overflow: Vec<usize> = order.split_off(order.len().min(MAX_BATCH));
    for &o in &overflow {
        let id = batch[o].deal_id.trim();
        for (i, c) in batch.iter().enumerate() {
            if c.deal_id.trim() == id {
                local[i] = Some(ItemResult::Transient {
                    message: OVERFLOW_MESSAGE.to_owned(),
                });
            }
        }
    }
    let inputs = order
        .iter()
        .map(|&i| BatchUpdateInput {
            id: batch[i].deal_id.trim().to_owned(),
            properties: properties(fields, &batch[i]),
            object_write_trace_id: Some(batch[i].delivery_id.to_string()),
        })
        .collect();
    let input_of = batch
        .iter()
        .enumerate()
        .map(|(i, c)| {
            local[i]
                .is_none()
                .then(|| {
                    order
                        .iter()
                        .position(|&j| batch[j].deal_id.trim() == c.deal_id.trim())
                })
                .flatten()
        })
        .collect();
    (inputs, input_of, local)
}

fn is_transient(e: &StandardError) -> bool {
    let status = e.status.parse::<u16>().is_ok_and(|s| s == 429 || s >= 500);
    status
        || [
            "RATE_LIMITS",
            "INTERNAL_ERROR",
            "SERVICE_UNAVAILABLE",
            "TIMEOUT",
            "LOCKED",
        ]
        .iter()
        .any(|c| e.category.eq_ignore_ascii_case(c))
}

/// HubSpot's answer → one result per input (matched by deal id, or the trace id we sent).
fn map_inputs(inputs: &[BatchUpdateInput], response: BatchUpdateResponse) -> Vec<ItemResult> {
    let mut out: Vec<Option<ItemResult>> = vec![None; inputs.len()];
    let position = |id: &str| inputs.iter().position(|i| i.id == id);
    for r in &response.results {
        if let Some(p) = position(&r.id) {
            out[p] = Some(ItemResult::Done {
                remote_id: r.id.clone(),
                created: false,
            });
        }
    }
    for e in &response.errors {
        let item = if is_transient(e) {
            ItemResult::Transient {
                message: e.describe(),
            }
        } else {
            ItemResult::Permanent {
                message: e.describe(),
            }
        };
        let by_trace = e
            .context
            .get("objectWriteTraceId")
            .into_iter()
            .flatten()
            .filter_map(|t| {
                inputs
                    .iter()
                    .position(|i| i.object_write_trace_id.as_deref() == Some(t.as_str()))
            });
        let by_id = ["ids", "id", "objectId"]
            .into_iter()
            .filter_map(|k| e.context.get(k))
            .flatten()
            .filter_map(|id| position(id));
        for p in by_trace.chain(by_id) {
            if out[p].is_none() {
                out[p] = Some(item.clone());
            }
        }
    }
    out.into_iter()
        .map(|r| {
            r.unwrap_or(ItemResult::Transient {
                message: NO_RESULT_MESSAGE.to_owned(),
            })
        })
        .collect()
}

impl HubspotDealFields {
    pub fn new(config: &HubspotConfig, ctx: ConnectorContext) -> Result<Self, BuildError> {
        let client = HubspotClient::new(config, ctx)?;
        Ok(HubspotDealFields {
            update_url: client.endpoint(UPDATE_PATH)?,
            property_url: client.endpoint(PROPERTY_PATH)?,
            client,
            fields: config.deal_fields.clone(),
            rate_limit: config.effective_rate_limit(),
        })
    }

    /// One line per problem with the deal property `name` configured as `key`.
    async fn check_field(&self, key: &str, name: &str) -> Result<Option<String>, String> {
        let mut url = self.property_url.clone();
        url.path_segments_mut()
            .map_err(|()| "base_url can't take a path".to_owned())?
            .push(name);
        let answer = self
            .client
            .call(|token| self.client.http().get(url.clone()).bearer_auth(token))
            .await
            .map_err(|e| deal_call_problem(&e))?;
        if answer.status == StatusCode::NOT_FOUND {
            return Ok(Some(format!(
                "HubSpot has no deal property `{name}` (deal_fields.{key}); create it as a single-line text deal property (Settings → Properties → Deal properties → Create property), or set deal_fields.{key} to an existing one's internal name"
            )));
        }
        if !answer.status.is_success() {
            return Err(deal_call_problem(&classify(
                answer.status,
                &answer.headers,
                &answer.body,
            )));
        }
        let p: Property = serde_json::from_slice(&answer.body).map_err(|e| {
            format!(
                "HubSpot's definition of deal property `{name}` could not be read ({e}); check base_url points at HubSpot's API"
            )
        })?;
        Ok(if p.calculated || p.field_type.starts_with("calculation") {
            Some(format!(
                "HubSpot deal property `{name}` (deal_fields.{key}) is calculated and can't be written; use a text property"
            ))
        } else if p.modification_metadata.read_only_value {
            Some(format!(
                "HubSpot deal property `{name}` (deal_fields.{key}) is read-only; use a writable text property"
            ))
        } else if p.type_ != "string" {
            Some(format!(
                "HubSpot deal property `{name}` (deal_fields.{key}) is of type {} ({}), which can't hold attribution text; use a single-line or multi-line text property",
                p.type_, p.field_type
            ))
        } else {
            None
        })
    }
}

/// A failed deal-property call as one actionable line.
fn deal_call_problem(e: &CallError) -> String {
    match e {
        CallError::Auth {
            status: 403,
            message,
        } => format!(
            "HubSpot refused to read deal properties ({message}); give the app the scopes crm.objects.deals.read, crm.objects.deals.write and crm.schemas.deals.read (private app: Settings → Integrations → Private apps → Scopes; OAuth app: add them and reinstall it)"
        ),
        other => verify::call_problem(other),
    }
}

#[async_trait]
impl WritebackSink for HubspotDealFields {
    fn max_batch(&self) -> usize {
        MAX_BATCH
    }

    fn default_rate_limit(&self) -> RateLimit {
        self.rate_limit
    }

    fn accepts(&self, _milestone: Milestone) -> bool {
        true
    }

    fn supports(&self, _action: WritebackAction) -> bool {
        true
    }

    async fn send(&self, batch: &[Conversion]) -> Result<BatchOutcome, CallError> {
        let (inputs, input_of, mut local) = plan(&self.fields, batch);
        let mut sent: Vec<ItemResult> = Vec::new();
        let mut pause_for = None;
        if !inputs.is_empty() {
            let request = BatchUpdateRequest {
                inputs: inputs.clone(),
            };
            let answer = self
                .client
                .call(|token| {
                    self.client
                        .http()
                        .post(self.update_url.clone())
                        .bearer_auth(token)
                        .json(&request)
                })
                .await?;
            if !(answer.status == StatusCode::OK || answer.status == StatusCode::MULTI_STATUS) {
                return Err(classify(answer.status, &answer.headers, &answer.body));
            }
            let decoded: BatchUpdateResponse =
                serde_json::from_slice(&answer.body).map_err(|e| CallError::Transient {
                    message: format!(
                        "HubSpot answered {} to the deal update with a body tandem could not read: {e}",
                        answer.status
                    ),
                    retry_after: None,
                })?;
            sent = map_inputs(&inputs, decoded);
            pause_for = limits::pause_after_success(&answer.headers);
        }
        let items = local
            .iter_mut()
            .zip(input_of)
            .map(|(slot, input)| match (slot.take(), input) {
                (Some(result), _) => result,
                (None, Some(p)) => sent.get(p).cloned().unwrap_or(ItemResult::Transient {
                    message: NO_RESULT_MESSAGE.to_owned(),
                }),
                (None, None) => ItemResult::Transient {
                    message: NO_RESULT_MESSAGE.to_owned(),
                },
            })
            .collect();
        Ok(BatchOutcome { items, pause_for })
    }

    async fn verify(&self) -> Vec<String> {
        let mut problems = Vec::new();
        for (key, name) in self.fields.named() {
            match self.check_field(key, name).await {
                Ok(None) => {}
                Ok(Some(p)) => problems.push(p),
                // A credentials problem is the same for all three: say it once.
                Err(p) => return vec![p],
            }
        }
        problems
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::writeback::{
        AttributionSummary, ClickIds, ConversionPerson, CreditSummary, TouchSummary,
    };

    fn touch(source: &str, medium: Option<&str>, campaign: Option<&str>) -> TouchSummary {
        TouchSummary {
            source: source.into(),
            medium: medium.map(Into::into),
            campaign: campaign.map(Into::into),
            captured_at_ms: 1,
        }
    }

    pub(crate) fn conversion(delivery_id: i64, deal_id: &str) -> Conversion {
        let first = touch("google", Some("cpc"), Some("spring"));
        let last = touch("newsletter", Some("email"), None);
        Conversion {
            delivery_id,
            key: format!("hubspot:{deal_id}:won"),
            request_key: format!("hubspot:{deal_id}:won"),
            action: WritebackAction::Send,
            milestone: Milestone::Won,
            crm: "hubspot".into(),
            crm_kind: "hubspot".into(),
            deal_id: deal_id.into(),
            occurred_at_ms: 1,
            value_minor: Some(100),
            currency: Some("EUR".into()),
            person: ConversionPerson::default(),
            clicks: ClickIds::default(),
            attribution: AttributionSummary {
                model: "linear".into(),
                first_touch: Some(first.clone()),
                last_touch: Some(last.clone()),
                credits: vec![
                    CreditSummary {
                        touch: first,
                        weight: 0.4,
                        amount_minor: 40,
                    },
                    CreditSummary {
                        touch: last,
                        weight: 0.6,
                        amount_minor: 60,
                    },
                ],
            },
        }
    }

    #[test]
    fn three_text_fields_from_the_attribution() {
        let p = properties(&DealFields::default(), &conversion(1, "77"));
        assert_eq!(p["tandem_first_touch"], "google / cpc / spring");
        assert_eq!(p["tandem_last_touch"], "newsletter / email");
        assert_eq!(
            p["tandem_attribution"],
            "linear: 40% google / cpc / spring; 60% newsletter / email"
        );
        let mut bare = conversion(2, "78");
        bare.attribution = AttributionSummary {
            model: "first_touch".into(),
            ..Default::default()
        };
        let p = properties(&DealFields::default(), &bare);
        assert_eq!(p["tandem_first_touch"], "", "empty clears the field");
        assert_eq!(p["tandem_attribution"], "first_touch: unattributed");
    }

    #[test]
    fn one_input_per_deal_carrying_its_newest_conversion() {
        let mut older = conversion(5, "77");
        older.attribution.model = "old".into();
        let batch = [
            older,
            conversion(9, "77"),
            conversion(6, " "),
            conversion(7, "80"),
        ];
        let (inputs, input_of, local) = plan(&DealFields::default(), &batch);
        assert_eq!(inputs.len(), 2);
        assert_eq!(inputs[0].id, "77");
        assert_eq!(inputs[0].object_write_trace_id.as_deref(), Some("9"));
        assert!(inputs[0].properties["tandem_attribution"].starts_with("linear:"));
        assert_eq!(input_of, vec![Some(0), Some(0), None, Some(1)]);
        assert!(matches!(local[2], Some(ItemResult::Permanent { .. })));

        let many: Vec<Conversion> = (0..102)
            .map(|i| conversion(i, &format!("{}", 500 + i)))
            .collect();
        let (inputs, input_of, local) = plan(&DealFields::default(), &many);
        assert_eq!(inputs.len(), MAX_BATCH);
        assert_eq!(input_of[99], Some(99));
        assert_eq!((input_of[100], input_of[101]), (None, None));
        assert!(matches!(local[101], Some(ItemResult::Transient { .. })));
    }

    #[test]
    fn long_credit_lines_are_cut_to_hubspots_limit() {
        let long = "x".repeat(MAX_VALUE_CHARS + 10);
        assert_eq!(clip(long).chars().count(), MAX_VALUE_CHARS);
    }
}
