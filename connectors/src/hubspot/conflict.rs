//! Per-field `on_conflict` rules on top of HubSpot's batch upsert, which has no such rule of its
//! own: when some record of a batch carries a `fill_empty` or `never` rule, ONE
//! `POST /crm/v3/objects/contacts/batch/read` (by email, asking only for the rule-bearing
//! properties) precedes the upsert. Contacts that exist get [`SinkRecord::properties_for_update`];
//! contacts the read didn't find are new and get every property. Batches without rules skip the
//! read entirely.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::{
    model::{OnConflict, SinkRecord},
    sink::CallError,
};

use super::{
    batch::{Prepared, id_key},
    wire::{BatchReadRequest, BatchReadResponse, ReadId},
};

/// Current values of existing contacts, by (id property, normalised id value).
#[derive(Default)]
pub struct Existing {
    contacts: HashMap<(String, String), BTreeMap<String, String>>,
}

impl Existing {
    pub fn get(&self, id_property: &str, id: &str) -> Option<&BTreeMap<String, String>> {
        self.contacts
            .get(&(id_property.to_owned(), id_key(id_property, id)))
    }
}

fn has_rules(record: &SinkRecord) -> bool {
    record.conflict.iter().any(|(field, rule)| {
        *rule != OnConflict::Overwrite && record.properties.contains_key(field)
    })
}

/// Whether any record that will be sent carries a non-overwrite rule.
pub fn needs_read(batch: &[SinkRecord], prepared: &Prepared) -> bool {
    prepared.sent.iter().any(|&i| has_rules(&batch[i]))
}

/// The batch reads to make: one per id property among the rule-bearing records (normally just
/// `email`), each asking for the rule-bearing fields plus the id property to match results by.
pub fn read_requests(batch: &[SinkRecord], prepared: &Prepared) -> Vec<BatchReadRequest> {
    let mut groups: BTreeMap<String, (Vec<ReadId>, BTreeSet<String>)> = BTreeMap::new();
    for (pos, &index) in prepared.sent.iter().enumerate() {
        let record = &batch[index];
        if !has_rules(record) {
            continue;
        }
        let input = &prepared.inputs[pos];
        let prop = input
            .id_property
            .clone()
            .unwrap_or_else(|| "email".to_owned());
        let (ids, props) = groups.entry(prop.clone()).or_default();
        ids.push(ReadId {
            id: input.id.clone(),
        });
        props.insert(prop);
        props.extend(
            record
                .conflict
                .iter()
                .filter(|(f, r)| **r != OnConflict::Overwrite && record.properties.contains_key(*f))
                .map(|(f, _)| f.clone()),
        );
    }
    groups
        .into_iter()
        .map(|(prop, (inputs, properties))| BatchReadRequest {
            id_property: Some(prop),
            inputs,
            properties: properties.into_iter().collect(),
            properties_with_history: Vec::new(),
        })
        .collect()
}

/// Adds one batch read's answer. Ids HubSpot didn't find (`OBJECT_NOT_FOUND` in a 207) are new
/// contacts; any other per-id error means tandem can't know what the contact holds, so the
/// batch waits rather than risk overwriting a salesperson's value.
pub fn index(
    existing: &mut Existing,
    id_property: &str,
    response: BatchReadResponse,
) -> Result<(), CallError> {
    if let Some(e) = response
        .errors
        .iter()
        .find(|e| !e.category.eq_ignore_ascii_case("OBJECT_NOT_FOUND"))
    {
        return Err(CallError::Transient {
            message: format!(
                "HubSpot could not read the existing contacts that on_conflict rules need: {}",
                e.describe()
            ),
            retry_after: None,
        });
    }
    for object in response.results {
        let values: BTreeMap<String, String> = object
            .properties
            .into_iter()
            .filter_map(|(k, v)| v.map(|v| (k, v)))
            .collect();
        if let Some(id) = values.get(id_property) {
            let key = (id_property.to_owned(), id_key(id_property, id));
            existing.contacts.insert(key, values);
        }
    }
    Ok(())
}

/// Narrows the properties of every input whose contact exists to what its rules allow.
pub fn apply(batch: &[SinkRecord], prepared: &mut Prepared, existing: &Existing) {
    for (pos, &index) in prepared.sent.iter().enumerate() {
        let record = &batch[index];
        if !has_rules(record) {
            continue;
        }
        let input = &mut prepared.inputs[pos];
        let prop = input
            .id_property
            .clone()
            .unwrap_or_else(|| "email".to_owned());
        let Some(current) = existing.get(&prop, &input.id) else {
            continue;
        };
        let mut properties = record.properties_for_update(|k| current.get(k).map(String::as_str));
        // The id stays: it is what the upsert matches on.
        properties.insert(prop, input.id.clone());
        input.properties = properties;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hubspot::{batch::prepare, wire::PublicObject};

    fn record(id: i64, props: &[(&str, &str)], rules: &[(&str, OnConflict)]) -> SinkRecord {
        SinkRecord {
            delivery_id: id,
            properties: props
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            conflict: rules.iter().map(|(k, r)| (k.to_string(), *r)).collect(),
            remote_id: None,
        }
    }

    #[test]
    fn no_rules_no_read() {
        let batch = [record(1, &[("email", "a@x.io"), ("phone", "1")], &[])];
        let p = prepare(&batch, None, 100);
        assert!(!needs_read(&batch, &p));
        // A rule on a field the lead doesn't carry changes nothing either.
        let batch = [record(
            1,
            &[("email", "a@x.io")],
            &[("phone", OnConflict::FillEmpty)],
        )];
        let p = prepare(&batch, None, 100);
        assert!(!needs_read(&batch, &p));
    }

    #[test]
    fn one_read_asks_only_for_rule_fields_and_rules_narrow_updates() {
        let batch = [
            record(
                1,
                &[
                    ("email", "Old@x.io"),
                    ("phone", "+1"),
                    ("hs_lead_status", "NEW"),
                    ("firstname", "A"),
                ],
                &[
                    ("phone", OnConflict::FillEmpty),
                    ("hs_lead_status", OnConflict::Never),
                ],
            ),
            record(
                2,
                &[("email", "new@x.io"), ("phone", "+2")],
                &[("phone", OnConflict::FillEmpty)],
            ),
            record(3, &[("email", "plain@x.io"), ("phone", "+3")], &[]),
        ];
        let mut p = prepare(&batch, None, 100);
        assert!(needs_read(&batch, &p));
        let reads = read_requests(&batch, &p);
        assert_eq!(reads.len(), 1);
        assert_eq!(reads[0].id_property.as_deref(), Some("email"));
        assert_eq!(reads[0].properties, ["email", "hs_lead_status", "phone"]);
        assert_eq!(
            reads[0]
                .inputs
                .iter()
                .map(|i| i.id.as_str())
                .collect::<Vec<_>>(),
            ["Old@x.io", "new@x.io"]
        );

        let mut existing = Existing::default();
        let found = PublicObject {
            id: "7".into(),
            properties: BTreeMap::from([
                ("email".into(), Some("old@x.io".into())),
                ("phone".into(), Some("+1999".into())),
                ("hs_lead_status".into(), None),
            ]),
        };
        index(
            &mut existing,
            "email",
            BatchReadResponse {
                results: vec![found],
                ..Default::default()
            },
        )
        .unwrap();
        apply(&batch, &mut p, &existing);
        assert_eq!(
            p.inputs[0].properties.keys().collect::<Vec<_>>(),
            ["email", "firstname"]
        );
        assert_eq!(
            p.inputs[1].properties.keys().collect::<Vec<_>>(),
            ["email", "phone"],
            "new: all"
        );
        assert_eq!(
            p.inputs[2].properties.keys().collect::<Vec<_>>(),
            ["email", "phone"]
        );
    }

    #[test]
    fn unexpected_read_errors_hold_the_batch() {
        let mut existing = Existing::default();
        let response = BatchReadResponse {
            errors: vec![crate::hubspot::wire::StandardError {
                category: "INTERNAL_ERROR".into(),
                message: "boom".into(),
                ..Default::default()
            }],
            ..Default::default()
        };
        assert!(matches!(
            index(&mut existing, "email", response),
            Err(CallError::Transient { .. })
        ));
    }
}
