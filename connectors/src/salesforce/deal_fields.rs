//! Attribution onto the Opportunity itself ([`WritebackSink`]): three text fields
//! (`deal_fields`, default `Tandem_First_Touch__c`, `Tandem_Last_Touch__c`,
//! `Tandem_Attribution__c`) rewritten from each conversion's current attribution with one
//! `PATCH /composite/sobjects` (update by Id, `allOrNone: false`, ≤ 200 records, results in
//! order). Send, restate and retract all write the same thing, so every action is idempotent.
//!
//! Values longer than a field holds are cut to its length (read once from the describe call), so
//! a long credit line lands shortened instead of dead-lettering on `STRING_TOO_LONG`.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use async_trait::async_trait;
use reqwest::Method;
use serde_json::{Map, Value};

use crate::{
    BuildError, ConnectorContext,
    sink::{BatchOutcome, CallError, ItemResult, RateLimit},
    writeback::{Conversion, Milestone, WritebackAction, WritebackSink},
};

use super::{
    DealFields, MAX_BATCH, SalesforceClient, SalesforceConfig, results,
    verify::closest,
    wire::{CollectionRequest, Describe, SaveResult},
};

pub const OBJECT: &str = "Opportunity";
const OVERFLOW: &str = "batch held more deals than Salesforce updates in one call (200); this one waits for the next batch";
/// Field types a text value can be written to.
const TEXT_TYPES: &[&str] = &["string", "textarea"];

/// Writes attribution fields onto Opportunities.
pub struct SalesforceDealFields {
    client: SalesforceClient,
    fields: DealFields,
    rate_limit: RateLimit,
    multi_currency: bool,
    /// Field → its length, from the first successful describe.
    lengths: Mutex<Option<HashMap<String, usize>>>,
}

impl std::fmt::Debug for SalesforceDealFields {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SalesforceDealFields")
            .field("client", &self.client)
            .field("fields", &self.fields)
            .finish_non_exhaustive()
    }
}

/// An 18- or 15-character record id (what `Done` results and outcomes carry).
pub(super) fn is_record_id(id: &str) -> bool {
    matches!(id.len(), 15 | 18) && id.bytes().all(|b| b.is_ascii_alphanumeric())
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

/// The three values for one conversion, `None` clearing a field.
pub fn values(c: &Conversion) -> [Option<String>; 3] {
    let a = &c.attribution;
    [
        a.first_touch.as_ref().map(|t| t.label()),
        a.last_touch.as_ref().map(|t| t.label()),
        Some(format!("{}: {}", a.model, a.credit_line())),
    ]
}

impl SalesforceDealFields {
    pub fn new(config: &SalesforceConfig, ctx: ConnectorContext) -> Result<Self, BuildError> {
        Ok(SalesforceDealFields {
            client: SalesforceClient::new(config, ctx)?,
            fields: config.deal_fields.clone(),
            rate_limit: config.effective_rate_limit(),
            multi_currency: config.multi_currency,
            lengths: Mutex::new(None),
        })
    }

    fn need(&self) -> String {
        format!(
            "edit access to the Opportunity fields {}, {} and {}",
            self.fields.first_touch, self.fields.last_touch, self.fields.attribution
        )
    }

    async fn describe(&self) -> Result<Describe, CallError> {
        let path = self
            .client
            .data_path(&format!("sobjects/{OBJECT}/describe"));
        let answer = self
            .client
            .call_needing(&self.need(), Method::GET, &path, &[], None)
            .await?;
        SalesforceClient::decode(&answer)
    }

    /// The configured fields' lengths, described once; `None` until a describe succeeds (values
    /// are then sent whole and Salesforce judges them).
    async fn lengths(&self) -> Option<HashMap<String, usize>> {
        if let Ok(guard) = self.lengths.lock()
            && let Some(known) = guard.as_ref()
        {
            return Some(known.clone());
        }
        let describe = match self.describe().await {
            Ok(d) => d,
            Err(e) => {
                tracing::debug!(connector = %self.client.ctx.name, error = %e,
                    "could not describe Opportunity; deal fields are sent uncut");
                return None;
            }
        };
        let known: HashMap<String, usize> = describe
            .fields
            .iter()
            .filter(|f| f.length > 0)
            .map(|f| (f.name.to_ascii_lowercase(), f.length as usize))
            .collect();
        if let Ok(mut guard) = self.lengths.lock() {
            *guard = Some(known.clone());
        }
        Some(known)
    }

    fn record(
        &self,
        deal_id: &str,
        c: &Conversion,
        lengths: &HashMap<String, usize>,
    ) -> Map<String, Value> {
        let mut row = Map::new();
        row.insert("attributes".into(), serde_json::json!({ "type": OBJECT }));
        row.insert("Id".into(), Value::String(deal_id.to_owned()));
        for ((_, field), value) in self.fields.named().into_iter().zip(values(c)) {
            let max = lengths.get(&field.to_ascii_lowercase()).copied();
            let v = value.map_or(Value::Null, |v| Value::String(fit(v, max)));
            row.insert(field.to_owned(), v);
        }
        row
    }
}

#[async_trait]
impl WritebackSink for SalesforceDealFields {
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
        // One record per deal: the last conversion of a deal carries its newest attribution, and
        // one Id twice in a call is wasted at best (Apex refuses "Duplicate id in list").
        let mut last: BTreeMap<&str, usize> = BTreeMap::new();
        for (i, c) in batch.iter().enumerate() {
            if is_record_id(&c.deal_id) {
                last.insert(c.deal_id.as_str(), i);
            } else {
                items[i] = Some(ItemResult::Permanent {
                    message: format!(
                        "{:?} is not a Salesforce Opportunity id (15 or 18 letters and digits)",
                        c.deal_id
                    ),
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
            let records = order
                .iter()
                .map(|(deal, i)| self.record(deal, &batch[*i], &lengths))
                .collect();
            let body = serde_json::to_value(CollectionRequest {
                all_or_none: false,
                records,
            })
            .map_err(|e| CallError::Permanent {
                message: format!("cannot encode the Salesforce request: {e}"),
            })?;
            let path = self.client.data_path("composite/sobjects");
            let answer = self
                .client
                .call_needing(&self.need(), Method::PATCH, &path, &[], Some(&body))
                .await?;
            let saved: Vec<SaveResult> = SalesforceClient::decode(&answer)?;
            pause_for = self.client.pause_for(&answer.headers);
            let by_deal: HashMap<&str, ItemResult> = order
                .iter()
                .enumerate()
                .map(|(n, (deal, _))| {
                    let result = match results::item(saved.get(n), false) {
                        ItemResult::Done { .. } => ItemResult::Done {
                            remote_id: (*deal).to_owned(),
                            created: false,
                        },
                        other => other,
                    };
                    (*deal, result)
                })
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
                        message: results::NO_RESULT.to_owned(),
                    })
                })
                .collect(),
            pause_for,
        })
    }

    async fn verify(&self) -> Vec<String> {
        let describe = match self.describe().await {
            Ok(d) => d,
            Err(e) => {
                return vec![format!(
                    "could not read the {OBJECT} fields from Salesforce: {e}"
                )];
            }
        };
        let mut problems = Vec::new();
        for (key, wanted) in self.fields.named() {
            let Some(f) = describe
                .fields
                .iter()
                .find(|f| f.name.eq_ignore_ascii_case(wanted))
            else {
                problems.push(match closest(wanted, &describe.fields) {
                    Some(near) => format!(
                        "deal_fields.{key}: {OBJECT} has no field {wanted} — did you mean {near}?"
                    ),
                    None => format!(
                        "deal_fields.{key}: {OBJECT} has no field {wanted}; create it (Setup > Object \
                         Manager > Opportunity > Fields & Relationships, type Text(255) or Long Text \
                         Area), or name an existing text field in deal_fields.{key}"
                    ),
                });
                continue;
            };
            if !TEXT_TYPES.contains(&f.kind.as_str()) {
                problems.push(format!(
                    "deal_fields.{key}: {OBJECT} field {wanted} is of type {}, which does not take text; \
                     use a Text or Long Text Area field",
                    f.kind
                ));
            } else if !f.updateable {
                problems.push(format!(
                    "deal_fields.{key}: {OBJECT} field {wanted} is read-only for the integration user; \
                     grant edit access to it (field-level security)"
                ));
            }
        }
        let has_currency = describe.fields.iter().any(|f| f.name == "CurrencyIsoCode");
        if self.multi_currency && !has_currency {
            problems.push(
                "multi_currency = true, but this org has no CurrencyIsoCode on Opportunity (multiple \
                 currencies are not enabled); remove multi_currency"
                    .to_owned(),
            );
        } else if !self.multi_currency && has_currency {
            problems.push(
                "this org has multiple currencies enabled; set multi_currency = true, or every \
                 Opportunity amount is read as the configured currency"
                    .to_owned(),
            );
        }
        problems
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_values_are_cut_with_an_ellipsis() {
        assert_eq!(fit("abcdef".into(), Some(4)), "abc…");
        assert_eq!(fit("abcd".into(), Some(4)), "abcd");
        assert_eq!(fit("abcdef".into(), None), "abcdef");
        assert!(is_record_id("006Dn0000000001AAA") && is_record_id("006Dn0000000001"));
        assert!(!is_record_id("006'); DROP"));
    }
}
