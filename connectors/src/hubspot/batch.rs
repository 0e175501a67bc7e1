//! Turning a batch of [`SinkRecord`]s into one upsert request, and HubSpot's 200/207 answer back
//! into one [`ItemResult`] per record. HubSpot doesn't promise result order, so results are matched
//! by the `objectWriteTraceId` we send (the delivery id), falling back to the id property's value.

use std::collections::{HashMap, HashSet};

use crate::{model::SinkRecord, sink::ItemResult};

use super::wire::{StandardError, UpsertInput, UpsertResponse};

pub const NO_ID_MESSAGE: &str =
    "lead has no email and no id_property is configured for this HubSpot connector";
const NO_ID_VALUE_MESSAGE: &str =
    "lead has no email and no value for the configured id_property of this HubSpot connector";
const DUPLICATE_MESSAGE: &str = "another lead in the same batch has the same HubSpot id property value; HubSpot refuses duplicate ids in one batch, so this one waits for the next batch";
const OVERFLOW_MESSAGE: &str =
    "batch held more leads than HubSpot accepts in one call; this one waits for the next batch";
pub const NO_RESULT_MESSAGE: &str = "HubSpot returned no result for this input";

/// What to send, plus the results already known without asking HubSpot.
pub struct Prepared {
    /// One slot per input record: `Some` = decided locally, `None` = sent (see `sent`).
    pub local: Vec<Option<ItemResult>>,
    /// Index into the batch of each sent input, parallel to `inputs`.
    pub sent: Vec<usize>,
    pub inputs: Vec<UpsertInput>,
}

fn non_empty<'a>(record: &'a SinkRecord, key: &str) -> Option<&'a str> {
    record
        .properties
        .get(key)
        .map(|v| v.trim())
        .filter(|v| !v.is_empty())
}

/// Emails are compared the way HubSpot stores them: lowercased.
pub(crate) fn id_key(id_property: &str, value: &str) -> String {
    if id_property == "email" {
        value.to_lowercase()
    } else {
        value.to_owned()
    }
}

pub fn prepare(batch: &[SinkRecord], id_property: Option<&str>, max_inputs: usize) -> Prepared {
    let mut prepared = Prepared {
        local: Vec::with_capacity(batch.len()),
        sent: Vec::new(),
        inputs: Vec::new(),
    };
    let mut seen = HashSet::new();
    for (index, record) in batch.iter().enumerate() {
        let chosen = match (non_empty(record, "email"), id_property) {
            (Some(email), _) => Ok(("email", email)),
            (None, Some(prop)) => non_empty(record, prop)
                .map(|v| (prop, v))
                .ok_or(NO_ID_VALUE_MESSAGE),
            (None, None) => Err(NO_ID_MESSAGE),
        };
        let (prop, value) = match chosen {
            Ok(pair) => pair,
            Err(message) => {
                prepared.local.push(Some(ItemResult::Permanent {
                    message: message.to_owned(),
                }));
                continue;
            }
        };
        if prepared.inputs.len() >= max_inputs {
            prepared.local.push(Some(ItemResult::Transient {
                message: OVERFLOW_MESSAGE.to_owned(),
            }));
            continue;
        }
        // One duplicate would make HubSpot refuse the whole batch; the engine normally never
        // batches one person twice, so deferring the later copy is the safe answer.
        if !seen.insert((prop, id_key(prop, value))) {
            prepared.local.push(Some(ItemResult::Transient {
                message: DUPLICATE_MESSAGE.to_owned(),
            }));
            continue;
        }
        // The id value also stays in `properties` (trimmed), so a create sets it even where
        // HubSpot would not copy `id` into the property by itself.
        let mut properties = record.properties.clone();
        properties.insert(prop.to_owned(), value.to_owned());
        prepared.local.push(None);
        prepared.sent.push(index);
        prepared.inputs.push(UpsertInput {
            id: value.to_owned(),
            id_property: Some(prop.to_owned()),
            properties,
            object_write_trace_id: Some(record.delivery_id.to_string()),
        });
    }
    prepared
}

/// Whether a per-input error is worth retrying: HubSpot-side trouble rather than a refusal of
/// the data itself.
fn is_transient(error: &StandardError) -> bool {
    const TRANSIENT: &[&str] = &[
        "RATE_LIMITS",
        "RATE_LIMIT",
        "INTERNAL_ERROR",
        "SERVICE_UNAVAILABLE",
        "TIMEOUT",
        "RETRYABLE",
        "LOCKED",
    ];
    let status_transient = error
        .status
        .parse::<u16>()
        .is_ok_and(|s| s == 429 || s >= 500);
    status_transient
        || TRANSIENT
            .iter()
            .any(|c| error.category.eq_ignore_ascii_case(c))
}

/// Merge HubSpot's answer into the locally decided slots, one result per input record.
pub fn map_response(prepared: Prepared, response: UpsertResponse) -> Vec<ItemResult> {
    let Prepared {
        mut local,
        sent,
        inputs,
    } = prepared;
    let mut by_trace: HashMap<&str, usize> = HashMap::new();
    let mut by_id: HashMap<(String, String), usize> = HashMap::new();
    for (pos, input) in inputs.iter().enumerate() {
        if let Some(t) = &input.object_write_trace_id {
            by_trace.insert(t.as_str(), pos);
        }
        let prop = input.id_property.as_deref().unwrap_or("hs_object_id");
        by_id.insert((prop.to_owned(), id_key(prop, &input.id)), pos);
    }
    let find_by_values = |values: &mut dyn Iterator<Item = (&str, &str)>| {
        values
            .filter_map(|(prop, v)| by_id.get(&(prop.to_owned(), id_key(prop, v))).copied())
            .next()
    };

    let mut answered: Vec<Option<ItemResult>> = vec![None; inputs.len()];
    for result in &response.results {
        let pos = result
            .object_write_trace_id
            .as_deref()
            .and_then(|t| by_trace.get(t).copied())
            .or_else(|| {
                find_by_values(
                    &mut result
                        .properties
                        .iter()
                        .filter_map(|(k, v)| v.as_deref().map(|v| (k.as_str(), v))),
                )
            });
        if let Some(pos) = pos {
            answered[pos] = Some(ItemResult::Done {
                remote_id: result.id.clone(),
                created: result.new,
            });
        }
    }
    for error in &response.errors {
        let trace_pos = error
            .context
            .get("objectWriteTraceId")
            .into_iter()
            .flatten()
            .filter_map(|t| by_trace.get(t.as_str()).copied())
            .collect::<Vec<_>>();
        let positions = if trace_pos.is_empty() {
            // Without a trace id, any context value equal to a sent id names the input.
            let mut found = Vec::new();
            for (pos, input) in inputs.iter().enumerate() {
                let prop = input.id_property.as_deref().unwrap_or("hs_object_id");
                let key = id_key(prop, &input.id);
                if error
                    .context
                    .values()
                    .flatten()
                    .any(|v| id_key(prop, v) == key)
                {
                    found.push(pos);
                }
            }
            found
        } else {
            trace_pos
        };
        let item = if is_transient(error) {
            ItemResult::Transient {
                message: error.describe(),
            }
        } else {
            ItemResult::Permanent {
                message: error.describe(),
            }
        };
        for pos in positions {
            // A result beats an error for the same input: the contact is there.
            if answered[pos].is_none() {
                answered[pos] = Some(item.clone());
            }
        }
    }
    for (pos, index) in sent.into_iter().enumerate() {
        local[index] = Some(answered[pos].take().unwrap_or(ItemResult::Transient {
            message: NO_RESULT_MESSAGE.to_owned(),
        }));
    }
    local
        .into_iter()
        .map(|slot| {
            slot.unwrap_or(ItemResult::Transient {
                message: NO_RESULT_MESSAGE.to_owned(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::hubspot::wire::UpsertResult;

    fn record(id: i64, props: &[(&str, &str)]) -> SinkRecord {
        SinkRecord {
            remote_id: None,
            conflict: Default::default(),
            delivery_id: id,
            properties: props
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    #[test]
    fn email_wins_then_id_property_then_refusal() {
        let batch = [
            record(1, &[("email", "A@x.io"), ("crm_key", "k1")]),
            record(2, &[("crm_key", "k2")]),
            record(3, &[("firstname", "Nobody")]),
            record(4, &[("email", "  ")]),
        ];
        let p = prepare(&batch, Some("crm_key"), 100);
        assert_eq!(p.sent, vec![0, 1]);
        assert_eq!(p.inputs[0].id_property.as_deref(), Some("email"));
        assert_eq!(p.inputs[1].id_property.as_deref(), Some("crm_key"));
        assert_eq!(p.inputs[1].id, "k2");
        assert!(matches!(p.local[2], Some(ItemResult::Permanent { .. })));
        assert!(matches!(p.local[3], Some(ItemResult::Permanent { .. })));

        let p = prepare(&batch[1..], None, 100);
        assert!(p.inputs.is_empty());
        assert_eq!(
            p.local[0],
            Some(ItemResult::Permanent {
                message: NO_ID_MESSAGE.into()
            })
        );
    }

    #[test]
    fn duplicate_emails_in_one_batch_defer_the_later_one() {
        let batch = [
            record(1, &[("email", "a@x.io")]),
            record(2, &[("email", "A@X.io")]),
        ];
        let p = prepare(&batch, None, 100);
        assert_eq!(p.sent, vec![0]);
        assert!(matches!(p.local[1], Some(ItemResult::Transient { .. })));
    }

    #[test]
    fn results_are_matched_by_trace_id_or_email_not_by_position() {
        let batch = [
            record(10, &[("email", "a@x.io")]),
            record(11, &[("email", "B@x.io")]),
            record(12, &[("email", "c@x.io")]),
            record(13, &[("email", "d@x.io")]),
        ];
        let p = prepare(&batch, None, 100);
        let result = |id: &str, trace: Option<&str>, email: &str, new| UpsertResult {
            id: id.into(),
            properties: BTreeMap::from([("email".into(), Some(email.into()))]),
            created_at: String::new(),
            updated_at: String::new(),
            archived: false,
            new,
            object_write_trace_id: trace.map(Into::into),
        };
        let response = UpsertResponse {
            status: "COMPLETE".into(),
            results: vec![
                result("902", None, "b@x.io", false),
                result("901", Some("10"), "a@x.io", true),
            ],
            errors: vec![StandardError {
                status: "error".into(),
                category: "VALIDATION_ERROR".into(),
                message: "Property values were not valid".into(),
                context: BTreeMap::from([("objectWriteTraceId".into(), vec!["12".into()])]),
                ..Default::default()
            }],
            ..Default::default()
        };
        let items = map_response(p, response);
        assert_eq!(
            items[0],
            ItemResult::Done {
                remote_id: "901".into(),
                created: true
            }
        );
        assert_eq!(
            items[1],
            ItemResult::Done {
                remote_id: "902".into(),
                created: false
            }
        );
        assert!(
            matches!(&items[2], ItemResult::Permanent { message } if message.contains("VALIDATION_ERROR"))
        );
        assert_eq!(
            items[3],
            ItemResult::Transient {
                message: NO_RESULT_MESSAGE.into()
            }
        );
    }

    #[test]
    fn hubspot_side_item_errors_are_transient() {
        let e = StandardError {
            category: "INTERNAL_ERROR".into(),
            ..Default::default()
        };
        assert!(is_transient(&e));
        let e = StandardError {
            status: "503".into(),
            category: "SOMETHING".into(),
            ..Default::default()
        };
        assert!(is_transient(&e));
        let e = StandardError {
            status: "error".into(),
            category: "CONFLICT".into(),
            ..Default::default()
        };
        assert!(!is_transient(&e));
    }
}
