//! Turning a batch of [`SinkRecord`]s into upsert rows, and Zoho's `data[]` answer back into one
//! [`ItemResult`] per record. Zoho answers in input order without a per-record trace id, so
//! results are matched by position (and refused if the counts differ).

use std::collections::{BTreeMap, HashSet};

use crate::{
    model::{OnConflict, SinkRecord},
    sink::ItemResult,
};

use super::{LAST_NAME, lookup::Existing, wire::DataResponse};

const DUPLICATE_MESSAGE: &str = "another lead in the same batch has the same duplicate-check value; this one waits for the next batch so Zoho sees them one after the other";
const OVERFLOW_MESSAGE: &str =
    "batch held more leads than Zoho accepts in one call; this one waits for the next batch";
pub const NO_RESULT_MESSAGE: &str = "Zoho returned no result for this record";
/// Per-record codes that are about Zoho's moment, not the data.
const TRANSIENT_CODES: &[&str] = &["INTERNAL_ERROR", "TOO_MANY_REQUESTS", "LIMIT_EXCEEDED"];

/// What to send, plus the results already known without asking Zoho.
#[derive(Debug)]
pub struct Prepared {
    /// One slot per input record: `Some` = decided locally, `None` = sent.
    pub local: Vec<Option<ItemResult>>,
    /// Index into the batch of each sent record.
    pub sent: Vec<usize>,
    /// Per sent record: its non-empty duplicate-check values, in duplicate-check order.
    pub keys: Vec<Vec<(String, String)>>,
}

fn non_empty<'a>(record: &'a SinkRecord, key: &str) -> Option<&'a str> {
    record
        .properties
        .get(key)
        .map(|v| v.trim())
        .filter(|v| !v.is_empty())
}

pub fn prepare(batch: &[SinkRecord], duplicate_check_fields: &[String], max: usize) -> Prepared {
    let mut prepared = Prepared {
        local: Vec::with_capacity(batch.len()),
        sent: Vec::new(),
        keys: Vec::new(),
    };
    let mut seen = HashSet::new();
    for (index, record) in batch.iter().enumerate() {
        let keys: Vec<(String, String)> = duplicate_check_fields
            .iter()
            .filter_map(|f| non_empty(record, f).map(|v| (f.clone(), v.to_owned())))
            .collect();
        if keys.is_empty() {
            prepared.local.push(Some(ItemResult::Permanent {
                message: format!(
                    "lead has no value for Zoho's duplicate-check field{} {}; without one Zoho would create a duplicate, so it was not sent",
                    if duplicate_check_fields.len() == 1 { "" } else { "s" },
                    duplicate_check_fields.join(", ")
                ),
            }));
            continue;
        }
        if prepared.sent.len() >= max {
            prepared.local.push(Some(ItemResult::Transient {
                message: OVERFLOW_MESSAGE.to_owned(),
            }));
            continue;
        }
        let lowered: Vec<(String, String)> = keys
            .iter()
            .map(|(f, v)| (f.clone(), v.to_lowercase()))
            .collect();
        if lowered.iter().any(|k| seen.contains(k)) {
            prepared.local.push(Some(ItemResult::Transient {
                message: DUPLICATE_MESSAGE.to_owned(),
            }));
            continue;
        }
        seen.extend(lowered);
        prepared.local.push(None);
        prepared.sent.push(index);
        prepared.keys.push(keys);
    }
    prepared
}

/// Whether the rows can't be built without knowing what Zoho holds: some record has a
/// non-overwrite rule, or lacks the mandatory `Last_Name` (whose default must not clobber an
/// existing record's name).
pub fn needs_lookup(batch: &[SinkRecord], prepared: &Prepared) -> bool {
    prepared.sent.iter().any(|&i| {
        let r = &batch[i];
        non_empty(r, LAST_NAME).is_none()
            || r.conflict.values().any(|c| *c != OnConflict::Overwrite)
    })
}

/// The columns the read must return: keys, `Last_Name`, and every field with a rule.
pub fn lookup_columns(
    batch: &[SinkRecord],
    prepared: &Prepared,
    duplicate_check_fields: &[String],
) -> Vec<String> {
    let mut cols: Vec<String> = duplicate_check_fields.to_vec();
    cols.push(LAST_NAME.to_owned());
    for &i in &prepared.sent {
        for (field, rule) in &batch[i].conflict {
            if *rule != OnConflict::Overwrite && !cols.contains(field) {
                cols.push(field.clone());
            }
        }
    }
    cols
}

/// One upsert row per sent record. `existing` is `None` when no read was needed (every record
/// is overwrite-only and has a `Last_Name`), else the read's match per sent record.
pub fn rows(
    batch: &[SinkRecord],
    prepared: &Prepared,
    existing: Option<&[Option<Existing>]>,
    default_last_name: &str,
) -> Vec<BTreeMap<String, String>> {
    prepared
        .sent
        .iter()
        .enumerate()
        .map(|(pos, &i)| {
            let record = &batch[i];
            let found = existing.and_then(|e| e[pos].as_ref());
            let mut row = match found {
                Some(e) => record.properties_for_update(|k| e.fields.get(k).map(String::as_str)),
                None => record.properties.clone(),
            };
            // The key values always go out (trimmed), or the upsert could not match.
            for (field, value) in &prepared.keys[pos] {
                row.insert(field.clone(), value.clone());
            }
            if row.get(LAST_NAME).is_none_or(|v| v.trim().is_empty()) {
                row.remove(LAST_NAME);
                // Known new (or not looked up because every record had one): fill the default.
                if found.is_none() {
                    row.insert(LAST_NAME.to_owned(), default_last_name.to_owned());
                }
            }
            row
        })
        .collect()
}

/// Merge Zoho's answer into the locally decided slots, one result per input record.
pub fn map_response(prepared: Prepared, response: DataResponse) -> Vec<ItemResult> {
    let Prepared {
        mut local, sent, ..
    } = prepared;
    let count_ok = response.data.len() == sent.len();
    for (pos, index) in sent.into_iter().enumerate() {
        let item = match response.data.get(pos).filter(|_| count_ok) {
            None => ItemResult::Transient {
                message: NO_RESULT_MESSAGE.to_owned(),
            },
            Some(r) if r.is_success() => match r.id() {
                Some(remote_id) => ItemResult::Done {
                    remote_id,
                    created: r.action.as_deref() == Some("insert"),
                },
                None => ItemResult::Transient {
                    message: format!("Zoho answered {} without a record id", r.describe()),
                },
            },
            Some(r)
                if TRANSIENT_CODES
                    .iter()
                    .any(|c| r.code.eq_ignore_ascii_case(c)) =>
            {
                ItemResult::Transient {
                    message: r.describe(),
                }
            }
            Some(r) => ItemResult::Permanent {
                message: r.describe(),
            },
        };
        local[index] = Some(item);
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
    use super::*;
    use crate::zoho::wire::ZohoStatus;

    fn record(id: i64, props: &[(&str, &str)]) -> SinkRecord {
        SinkRecord {
            delivery_id: id,
            properties: props
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            conflict: Default::default(),
            remote_id: None,
        }
    }

    fn email() -> Vec<String> {
        vec!["Email".into()]
    }

    #[test]
    fn keys_duplicates_and_overflow_are_decided_locally() {
        let batch = [
            record(1, &[("Email", " A@x.io "), ("Last_Name", "A")]),
            record(2, &[("First_Name", "No email")]),
            record(3, &[("Email", "a@X.io")]),
            record(4, &[("Email", "b@x.io")]),
            record(5, &[("Email", "c@x.io")]),
        ];
        let p = prepare(&batch, &email(), 2);
        assert_eq!(p.sent, [0, 3]);
        assert_eq!(p.keys[0], [("Email".to_owned(), "A@x.io".to_owned())]);
        assert!(
            matches!(&p.local[1], Some(ItemResult::Permanent { message }) if message.contains("Email"))
        );
        assert!(
            matches!(&p.local[2], Some(ItemResult::Transient { message }) if message.contains("same batch"))
        );
        assert!(
            matches!(&p.local[4], Some(ItemResult::Transient { message }) if message.contains("more leads"))
        );
        assert!(needs_lookup(&batch, &p), "b@x.io has no Last_Name");
    }

    #[test]
    fn rows_apply_rules_to_existing_records_and_default_the_last_name_of_new_ones() {
        let mut r = record(
            1,
            &[("Email", "a@x.io"), ("Phone", "+1"), ("Lead_Source", "Web")],
        );
        r.conflict = BTreeMap::from([
            ("Phone".to_owned(), OnConflict::FillEmpty),
            ("Lead_Source".to_owned(), OnConflict::Never),
        ]);
        let batch = [r.clone(), record(2, &[("Email", "n@x.io")])];
        let p = prepare(&batch, &email(), 100);
        let cols = lookup_columns(&batch, &p, &email());
        assert_eq!(cols, ["Email", "Last_Name", "Lead_Source", "Phone"]);
        let existing = vec![
            Some(Existing {
                id: "9".into(),
                fields: BTreeMap::from([
                    ("Phone".to_owned(), "+9".to_owned()),
                    ("Last_Name".to_owned(), "Real".to_owned()),
                ]),
            }),
            None,
        ];
        let rows = rows(&batch, &p, Some(&existing), "Unknown");
        assert_eq!(
            rows[0].keys().collect::<Vec<_>>(),
            ["Email"],
            "no default over a real name"
        );
        assert_eq!(rows[1]["Last_Name"], "Unknown");
        let created = super::rows(
            &batch[..1],
            &prepare(&batch[..1], &email(), 100),
            Some(&[None]),
            "X",
        );
        assert_eq!(
            created[0]["Lead_Source"], "Web",
            "never applies only to updates"
        );
        assert_eq!(created[0]["Last_Name"], "X");
    }

    #[test]
    fn results_map_by_position_and_code() {
        let batch = [
            record(1, &[("Email", "a@x.io")]),
            record(2, &[]),
            record(3, &[("Email", "b@x.io")]),
            record(4, &[("Email", "c@x.io")]),
        ];
        let p = prepare(&batch, &email(), 100);
        let ok = |id: &str, action: &str| ZohoStatus {
            code: "SUCCESS".into(),
            status: "success".into(),
            message: "record added".into(),
            action: Some(action.into()),
            details: serde_json::json!({"id": id}).as_object().unwrap().clone(),
            ..Default::default()
        };
        let bad = |code: &str| ZohoStatus {
            code: code.into(),
            status: "error".into(),
            message: "invalid data".into(),
            details: serde_json::json!({"api_name": "Phone"})
                .as_object()
                .unwrap()
                .clone(),
            ..Default::default()
        };
        let items = map_response(
            p,
            DataResponse {
                data: vec![
                    ok("11", "insert"),
                    bad("INVALID_DATA"),
                    bad("INTERNAL_ERROR"),
                ],
            },
        );
        assert_eq!(
            items[0],
            ItemResult::Done {
                remote_id: "11".into(),
                created: true
            }
        );
        assert!(matches!(items[1], ItemResult::Permanent { .. }));
        assert_eq!(
            items[2],
            ItemResult::Permanent {
                message: "INVALID_DATA: invalid data (field Phone)".into()
            }
        );
        assert!(matches!(items[3], ItemResult::Transient { .. }));

        let p = prepare(&batch, &email(), 100);
        let short = map_response(
            p,
            DataResponse {
                data: vec![ok("1", "update")],
            },
        );
        assert!(short.iter().enumerate().all(|(i, r)| i == 1
            || *r
                == ItemResult::Transient {
                    message: NO_RESULT_MESSAGE.into()
                }));
    }
}
