//! The two ways a batch is written.
//!
//! - External id: (one SOQL read of current values, only when a conflict rule or a required-field
//!   default needs it) then one `PATCH /composite/sobjects/{Object}/{Field}` upsert.
//! - Email: one SOQL read by `Email` (plus `Id` for records tandem already knows, when their
//!   values are needed), then `POST /composite/sobjects` for the new ones, whose ids are recorded
//!   with the daemon at once, then `PATCH /composite/sobjects` by Id for the rest.

use std::collections::HashMap;

use reqwest::{Method, header::HeaderMap};
use serde_json::{Map, Value};

use crate::sink::{BatchOutcome, CallError, ItemResult};

use super::{
    client::SalesforceClient,
    plan::{EMAIL, Prepared},
    results,
    soql::{self, InClause},
    wire::{self, CollectionRequest, QueryResponse, SaveResult},
};

/// More pages than any batch of 200 keys can need; a guard against a server that never says done.
const MAX_QUERY_PAGES: usize = 20;

type Row = Map<String, Value>;

fn field_value(row: &Row, field: &str) -> Option<String> {
    row.get(field)
        .or_else(|| {
            row.iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(field))
                .map(|(_, v)| v)
        })
        .and_then(wire::text)
}

impl SalesforceClient {
    /// Every row of a SOQL query, following `nextRecordsUrl`; also the last answer's headers.
    async fn query_all(&self, q: &str) -> Result<(Vec<Row>, HeaderMap), CallError> {
        let first = self
            .call(Method::GET, &self.data_path("query"), &[("q", q)], None)
            .await?;
        let mut page: QueryResponse = Self::decode(&first)?;
        let mut headers = first.headers;
        let mut rows = std::mem::take(&mut page.records);
        let mut pages = 1;
        while let (false, Some(next)) = (page.done, page.next_records_url.take()) {
            if pages >= MAX_QUERY_PAGES {
                return Err(CallError::Transient {
                    message: "Salesforce kept paging a query past any sensible size".to_owned(),
                    retry_after: None,
                });
            }
            let answer = self.call(Method::GET, &next, &[], None).await?;
            page = Self::decode(&answer)?;
            headers = answer.headers;
            rows.append(&mut page.records);
            pages += 1;
        }
        Ok((rows, headers))
    }

    async fn write_collection(
        &self,
        method: Method,
        path: &str,
        records: Vec<Row>,
    ) -> Result<(Vec<SaveResult>, HeaderMap), CallError> {
        let body = serde_json::to_value(CollectionRequest {
            all_or_none: false,
            records,
        })
        .map_err(|e| CallError::Permanent {
            message: format!("cannot encode the Salesforce request: {e}"),
        })?;
        let answer = self.call(method, path, &[], Some(&body)).await?;
        let results: Vec<SaveResult> = Self::decode(&answer)?;
        Ok((results, answer.headers))
    }

    pub(super) async fn upsert_by_external_id(
        &self,
        prepared: Prepared<'_>,
    ) -> Result<BatchOutcome, CallError> {
        let s = &self.settings;
        let object = s.object.name();
        let key_field = s.key_field().to_owned();
        // Current values, by lowercased key. Only read when some record needs them.
        let mut current: HashMap<String, Row> = HashMap::new();
        let read = prepared.needs_read(s);
        if read {
            let mut fields = vec![key_field.as_str()];
            let rule_fields = prepared.rule_fields();
            fields.extend(rule_fields.iter().map(String::as_str));
            let keys = prepared
                .items
                .iter()
                .filter_map(|i| i.key.clone())
                .collect();
            if let Some(q) = soql::select_in(
                object,
                &fields,
                &[InClause {
                    field: &key_field,
                    values: keys,
                }],
            ) {
                let (rows, _) = self.query_all(&q).await?;
                for row in rows {
                    if let Some(k) = field_value(&row, &key_field) {
                        current.entry(k.to_lowercase()).or_insert(row);
                    }
                }
            }
        }
        let records: Vec<Row> = prepared
            .items
            .iter()
            .map(|item| {
                let existing = item.key_lower().and_then(|k| current.get(&k));
                let fields = match existing {
                    Some(row) => item.update_fields(s, Some(row)),
                    // Known to be new (read done) → a create; not read → nothing needs defaults.
                    None if read => item.create_fields(s),
                    None => item.fields.clone(),
                };
                wire::record(object, fields)
            })
            .collect();
        let path = self.data_path(&format!("composite/sobjects/{object}/{key_field}"));
        let (saved, headers) = self.write_collection(Method::PATCH, &path, records).await?;
        let items = (0..prepared.items.len())
            .map(|i| results::item(saved.get(i), true))
            .collect();
        Ok(BatchOutcome {
            items: prepared.finish(items),
            pause_for: self.pause_for(&headers),
        })
    }

    pub(super) async fn upsert_by_email(
        &self,
        prepared: Prepared<'_>,
    ) -> Result<BatchOutcome, CallError> {
        let s = &self.settings;
        let object = s.object.name();
        let rule_fields = prepared.rule_fields();
        let has_rules = !rule_fields.is_empty();
        let emails: Vec<String> = prepared
            .items
            .iter()
            .filter(|i| i.record.remote_id.is_none())
            .filter_map(|i| i.key.clone())
            .collect();
        let ids: Vec<String> = if has_rules {
            prepared
                .items
                .iter()
                .filter_map(|i| i.record.remote_id.clone())
                .collect()
        } else {
            Vec::new()
        };
        let mut by_email: HashMap<String, Vec<Row>> = HashMap::new();
        let mut by_id: HashMap<String, Row> = HashMap::new();
        let mut headers = None;
        let mut fields = vec![EMAIL];
        fields.extend(rule_fields.iter().map(String::as_str));
        let conditions = [
            InClause {
                field: EMAIL,
                values: emails,
            },
            InClause {
                field: "Id",
                values: ids,
            },
        ];
        if let Some(q) = soql::select_in(object, &fields, &conditions) {
            let (rows, h) = self.query_all(&q).await?;
            headers = Some(h);
            for row in rows {
                if let Some(id) = field_value(&row, "Id") {
                    by_id.insert(id, row.clone());
                }
                if let Some(email) = field_value(&row, EMAIL) {
                    by_email.entry(email.to_lowercase()).or_default().push(row);
                }
            }
        }

        let n = prepared.items.len();
        let mut outcome: Vec<Option<ItemResult>> = vec![None; n];
        let mut creates: Vec<usize> = Vec::new();
        let mut updates: Vec<(usize, String)> = Vec::new();
        for (pos, item) in prepared.items.iter().enumerate() {
            if let Some(id) = &item.record.remote_id {
                updates.push((pos, id.clone()));
                continue;
            }
            let matches = item
                .key_lower()
                .and_then(|k| by_email.get(&k))
                .map(Vec::as_slice)
                .unwrap_or_default();
            match matches {
                [] => creates.push(pos),
                [one] => match field_value(one, "Id") {
                    Some(id) => updates.push((pos, id)),
                    None => creates.push(pos),
                },
                many => {
                    let ids: Vec<String> =
                        many.iter().filter_map(|r| field_value(r, "Id")).collect();
                    outcome[pos] = Some(ItemResult::Permanent {
                        message: format!(
                            "{} {object} records have this Email ({}); merge them in Salesforce, or use \
                             match = \"external_id\"",
                            many.len(),
                            ids.join(", ")
                        ),
                    });
                }
            }
        }

        let collection = self.data_path("composite/sobjects");
        if !creates.is_empty() {
            let records = creates
                .iter()
                .map(|&pos| wire::record(object, prepared.items[pos].create_fields(s)))
                .collect();
            let (saved, h) = self
                .write_collection(Method::POST, &collection, records)
                .await?;
            headers = Some(h);
            for (i, &pos) in creates.iter().enumerate() {
                let result = results::item(saved.get(i), true);
                if let ItemResult::Done { remote_id, .. } = &result {
                    // Remember the id now: if anything below fails, the retry updates this record.
                    let delivery = prepared.items[pos].record.delivery_id;
                    if let Err(e) = self.ctx.state.record_remote_id(delivery, remote_id).await {
                        tracing::warn!(connector = %self.ctx.name, delivery, error = %e,
                            "could not record a Salesforce id; a retry will find the record by email");
                    }
                }
                outcome[pos] = Some(result);
            }
        }
        let mut sent_updates: Vec<usize> = Vec::new();
        let mut records = Vec::new();
        for (pos, id) in &updates {
            let item = &prepared.items[*pos];
            let fields = item.update_fields(s, by_id.get(id));
            if fields.is_empty() {
                // Every field is protected by its rule: nothing to write, the record is as wanted.
                outcome[*pos] = Some(ItemResult::Done {
                    remote_id: id.clone(),
                    created: false,
                });
                continue;
            }
            let mut row = wire::record(object, fields);
            row.insert("Id".to_owned(), Value::String(id.clone()));
            records.push(row);
            sent_updates.push(*pos);
        }
        if !records.is_empty() {
            let (saved, h) = self
                .write_collection(Method::PATCH, &collection, records)
                .await?;
            headers = Some(h);
            for (i, &pos) in sent_updates.iter().enumerate() {
                let result = match results::item(saved.get(i), false) {
                    ItemResult::Done { remote_id, .. } => ItemResult::Done {
                        remote_id,
                        created: false,
                    },
                    other => other,
                };
                outcome[pos] = Some(result);
            }
        }
        let items = outcome
            .into_iter()
            .map(|o| {
                o.unwrap_or_else(|| ItemResult::Transient {
                    message: results::NO_RESULT.to_owned(),
                })
            })
            .collect();
        Ok(BatchOutcome {
            items: prepared.finish(items),
            pause_for: headers.as_ref().and_then(|h| self.pause_for(h)),
        })
    }
}
