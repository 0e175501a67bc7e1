//! Attribution onto the Zoho Deal ([`WritebackSink`]): three text fields (`deal_fields`, default
//! `Tandem_First_Touch`, `Tandem_Last_Touch`, `Tandem_Attribution`) rewritten from each
//! conversion's current attribution with one `PUT /crm/v8/Deals` (update by id, ≤ 100 records,
//! one `data[]` answer per record in order: 200 all written, 207 some, 400 none). Send, restate
//! and retract all write the same thing, so every action is idempotent. No workflow, approval or
//! blueprint runs on these writes (`trigger: []`): they are bookkeeping, not a sales event.
//!
//! Values longer than a field holds are cut to its length (read once from the fields metadata).

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use async_trait::async_trait;
use reqwest::StatusCode;
use serde_json::{Map, Value};

use crate::{
    BuildError, ConnectorContext,
    sink::{BatchOutcome, CallError, ItemResult, RateLimit},
    writeback::{Conversion, Milestone, WritebackAction, WritebackSink},
};

use super::{
    DealFields, MAX_BATCH, ZohoClient, ZohoConfig, client, limits,
    verify::suggest,
    wire::{DataResponse, FieldsResponse, UpdateRequest, ZohoStatus},
};

pub const MODULE: &str = "Deals";
const OVERFLOW: &str =
    "batch held more deals than Zoho updates in one call (100); this one waits for the next batch";
const NO_RESULT: &str = "Zoho returned no result for this deal";
/// Per-record codes that are about Zoho's moment, not the data.
const TRANSIENT_CODES: &[&str] = &["INTERNAL_ERROR", "TOO_MANY_REQUESTS", "LIMIT_EXCEEDED"];
/// Data types a text value can be written to.
const TEXT_TYPES: &[&str] = &["text", "textarea"];

/// Writes attribution fields onto Deals.
pub struct ZohoDealFields {
    client: ZohoClient,
    fields: DealFields,
    rate_limit: RateLimit,
    multi_currency: bool,
    stages: Vec<String>,
    /// Field → its length, from the first successful metadata read.
    lengths: Mutex<Option<HashMap<String, usize>>>,
}

impl std::fmt::Debug for ZohoDealFields {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ZohoDealFields")
            .field("client", &self.client)
            .field("fields", &self.fields)
            .finish_non_exhaustive()
    }
}

/// `text` cut to `max` characters, the last one an ellipsis when anything was cut.
fn fit(text: String, max: Option<usize>) -> String {
    match max {
        Some(max) if max > 0 && text.chars().count() > max => {
            let mut cut: String = text.chars().take(max - 1).collect();
            cut.push('…');
            cut
        }
        _ => text,
    }
}

/// One per-record answer as a result for `deal_id`.
fn item(status: Option<&ZohoStatus>, deal_id: &str) -> ItemResult {
    match status {
        None => ItemResult::Transient {
            message: NO_RESULT.to_owned(),
        },
        Some(s) if s.is_success() => ItemResult::Done {
            remote_id: deal_id.to_owned(),
            created: false,
        },
        Some(s) if TRANSIENT_CODES.contains(&s.code.as_str()) => ItemResult::Transient {
            message: s.describe(),
        },
        Some(s) => ItemResult::Permanent {
            message: s.describe(),
        },
    }
}

impl ZohoDealFields {
    pub fn new(config: &ZohoConfig, ctx: ConnectorContext) -> Result<Self, BuildError> {
        Ok(ZohoDealFields {
            client: ZohoClient::new(config, ctx)?,
            fields: config.deal_fields.clone(),
            rate_limit: config.effective_rate_limit(),
            multi_currency: config.multi_currency,
            stages: config
                .won_stages
                .iter()
                .chain(&config.lost_stages)
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
                .collect(),
            lengths: Mutex::new(None),
        })
    }

    async fn metadata(&self) -> Result<FieldsResponse, CallError> {
        let answer = self
            .client
            .call(&|base| {
                self.client
                    .http()
                    .get(format!("{base}crm/v8/settings/fields"))
                    .query(&[("module", MODULE)])
            })
            .await?;
        if answer.status != StatusCode::OK {
            return Err(client::classify(
                answer.status,
                &answer.headers,
                &answer.body,
            ));
        }
        serde_json::from_slice(&answer.body).map_err(|e| CallError::Transient {
            message: format!(
                "Zoho answered the Deals fields metadata with a body tandem could not read: {e}"
            ),
            retry_after: None,
        })
    }

    /// The configured fields' lengths, read once; `None` until a read succeeds (values are then
    /// sent whole and Zoho judges them).
    async fn lengths(&self) -> Option<HashMap<String, usize>> {
        if let Ok(guard) = self.lengths.lock()
            && let Some(known) = guard.as_ref()
        {
            return Some(known.clone());
        }
        let meta = match self.metadata().await {
            Ok(m) => m,
            Err(e) => {
                tracing::debug!(error = %e, "could not read the Deals fields; deal fields are sent uncut");
                return None;
            }
        };
        let known: HashMap<String, usize> = meta
            .fields
            .iter()
            .filter_map(|f| Some((f.api_name.clone(), f.length? as usize)))
            .collect();
        if let Ok(mut guard) = self.lengths.lock() {
            *guard = Some(known.clone());
        }
        Some(known)
    }

    fn row(
        &self,
        deal_id: &str,
        c: &Conversion,
        lengths: &HashMap<String, usize>,
    ) -> Map<String, Value> {
        let mut row = Map::new();
        row.insert("id".into(), Value::String(deal_id.to_owned()));
        let values = crate::salesforce::deal_fields::values(c);
        for ((_, field), value) in self.fields.named().into_iter().zip(values) {
            let max = lengths.get(field).copied();
            let v = value.map_or(Value::Null, |v| Value::String(fit(v, max)));
            row.insert(field.to_owned(), v);
        }
        row
    }
}

#[async_trait]
impl WritebackSink for ZohoDealFields {
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
        // Each action rewrites the fields from the deal's current attribution.
        true
    }

    async fn send(&self, batch: &[Conversion]) -> Result<BatchOutcome, CallError> {
        let mut items: Vec<Option<ItemResult>> = vec![None; batch.len()];
        // One row per deal: its last conversion carries the newest attribution.
        let mut last: BTreeMap<&str, usize> = BTreeMap::new();
        for (i, c) in batch.iter().enumerate() {
            if !c.deal_id.is_empty() && c.deal_id.bytes().all(|b| b.is_ascii_digit()) {
                last.insert(c.deal_id.as_str(), i);
            } else {
                items[i] = Some(ItemResult::Permanent {
                    message: format!("{:?} is not a Zoho Deal id (digits only)", c.deal_id),
                });
            }
        }
        let mut order: Vec<(&str, usize)> = last.into_iter().collect();
        order.sort_by_key(|(_, i)| *i);
        if order.len() > MAX_BATCH {
            for (deal, _) in order.split_off(MAX_BATCH) {
                for (i, c) in batch.iter().enumerate() {
                    if c.deal_id == deal {
                        items[i] = Some(ItemResult::Transient {
                            message: OVERFLOW.to_owned(),
                        });
                    }
                }
            }
        }
        let mut pause_for = None;
        if !order.is_empty() {
            let lengths = self.lengths().await.unwrap_or_default();
            let request = UpdateRequest {
                data: order
                    .iter()
                    .map(|(deal, i)| self.row(deal, &batch[*i], &lengths))
                    .collect(),
                trigger: Vec::new(),
            };
            let answer = self
                .client
                .call(&|base| {
                    self.client
                        .http()
                        .put(format!("{base}crm/v8/{MODULE}"))
                        .json(&request)
                })
                .await?;
            // 200 all written, 207 some refused, 400 with one entry per record = all refused.
            let per_record = matches!(answer.status.as_u16(), 200 | 202 | 207 | 400)
                .then(|| serde_json::from_slice::<DataResponse>(&answer.body).ok())
                .flatten()
                .filter(|d| answer.status.is_success() || d.data.len() == order.len());
            let Some(decoded) = per_record else {
                if answer.status.is_success() {
                    return Err(CallError::Transient {
                        message: format!(
                            "Zoho answered {} with a body tandem could not read",
                            answer.status
                        ),
                        retry_after: None,
                    });
                }
                return Err(client::classify(
                    answer.status,
                    &answer.headers,
                    &answer.body,
                ));
            };
            pause_for = limits::pause_after_success(&answer.headers);
            let by_deal: HashMap<&str, ItemResult> = order
                .iter()
                .enumerate()
                .map(|(n, (deal, _))| (*deal, item(decoded.data.get(n), deal)))
                .collect();
            for (i, c) in batch.iter().enumerate() {
                if items[i].is_none()
                    && let Some(r) = by_deal.get(c.deal_id.as_str())
                {
                    items[i] = Some(r.clone());
                }
            }
        }
        Ok(BatchOutcome {
            items: items
                .into_iter()
                .map(|r| {
                    r.unwrap_or_else(|| ItemResult::Transient {
                        message: NO_RESULT.to_owned(),
                    })
                })
                .collect(),
            pause_for,
        })
    }

    async fn verify(&self) -> Vec<String> {
        let meta = match self.metadata().await {
            Ok(m) => m,
            Err(e) => {
                let hint = match e {
                    CallError::Auth { .. } => {
                        "; the refresh token needs the scopes ZohoCRM.modules.deals.ALL (or \
                         ZohoCRM.modules.ALL), ZohoCRM.coql.READ and ZohoCRM.settings.fields.READ"
                    }
                    _ => "",
                };
                return vec![format!(
                    "Zoho could not list the {MODULE} fields: {e}{hint}"
                )];
            }
        };
        let mut problems = Vec::new();
        for (key, wanted) in self.fields.named() {
            let Some(f) = meta.fields.iter().find(|f| f.api_name == wanted) else {
                let known = meta.fields.iter().map(|f| f.api_name.as_str());
                problems.push(match suggest(wanted, known) {
                    Some(s) => format!(
                        "deal_fields.{key}: Zoho {MODULE} has no field \"{wanted}\"; did you mean \"{s}\"? \
                         Zoho field names are case-sensitive API names"
                    ),
                    None => format!(
                        "deal_fields.{key}: Zoho {MODULE} has no field \"{wanted}\"; create it (Setup > \
                         Customization > Modules and Fields > Deals, a Single Line or Multi Line field) \
                         and use its API name"
                    ),
                });
                continue;
            };
            if f.read_only || f.field_read_only {
                problems.push(format!(
                    "deal_fields.{key}: Zoho {MODULE} field \"{wanted}\" is read-only; name a writable field"
                ));
            } else if !TEXT_TYPES.contains(&f.data_type.as_str()) {
                problems.push(format!(
                    "deal_fields.{key}: Zoho {MODULE} field \"{wanted}\" has type {}, which does not take \
                     text; use a Single Line or Multi Line field",
                    f.data_type
                ));
            }
        }
        let has_currency = meta.fields.iter().any(|f| f.api_name == "Currency");
        if self.multi_currency && !has_currency {
            problems.push(
                "multi_currency = true, but Deals has no Currency field (multiple currencies are not \
                 enabled in this org); remove multi_currency"
                    .to_owned(),
            );
        } else if !self.multi_currency && has_currency {
            problems.push(
                "this org has multiple currencies enabled; set multi_currency = true, or every Deal \
                 amount is read as the configured currency"
                    .to_owned(),
            );
        }
        if let Some(stage) = meta.fields.iter().find(|f| f.api_name == "Stage")
            && !stage.pick_list_values.is_empty()
        {
            for wanted in &self.stages {
                let known = stage.pick_list_values.iter().any(|v| {
                    v.actual_value.eq_ignore_ascii_case(wanted)
                        || v.display_value.eq_ignore_ascii_case(wanted)
                });
                if !known {
                    let values: Vec<&str> = stage
                        .pick_list_values
                        .iter()
                        .map(|v| v.actual_value.as_str())
                        .collect();
                    problems.push(format!(
                        "stage \"{wanted}\" (won_stages/lost_stages) is not a Deals stage in this org; \
                         the stages are: {}",
                        values.join(", ")
                    ));
                }
            }
        }
        problems
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_record_answers_keep_zohos_words() {
        let bad: ZohoStatus = serde_json::from_str(
            r#"{"code":"INVALID_DATA","details":{"api_name":"id","json_path":"$.data[1].id"},"message":"the id given seems to be invalid","status":"error"}"#,
        )
        .unwrap();
        assert_eq!(
            item(Some(&bad), "1"),
            ItemResult::Permanent {
                message: "INVALID_DATA: the id given seems to be invalid (field id)".into()
            }
        );
        assert!(matches!(item(None, "1"), ItemResult::Transient { .. }));
        assert_eq!(fit("abcdef".into(), Some(3)), "ab…");
    }
}
