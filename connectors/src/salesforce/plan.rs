//! From a batch of [`SinkRecord`]s to what Salesforce should receive: the match key of every
//! record (external id value or email), the records refused or deferred without asking Salesforce,
//! and the field values of a create (every mapped field plus the required-field defaults) or of an
//! update (the conflict rules applied to the record's current values).
//!
//! An empty rendered value is "not provided": it is never sent, so a blank form field never
//! clears what Salesforce holds.

use std::collections::{BTreeMap, HashSet};

use serde_json::{Map, Value};

use crate::{
    model::{OnConflict, SinkRecord},
    sink::ItemResult,
};

use super::{MatchMode, SObject, is_api_name, wire};

pub const EMAIL: &str = "Email";
const DUPLICATE_MESSAGE: &str = "another lead in the same batch has the same Salesforce match key; \
     this one waits for the next batch so the two never race into two records";
const OVERFLOW_MESSAGE: &str = "batch held more leads than Salesforce accepts in one call (200); this one waits for the next batch";

/// What shapes a batch's requests.
#[derive(Debug, Clone)]
pub struct Settings {
    pub object: SObject,
    pub match_mode: MatchMode,
    pub external_id_field: Option<String>,
    pub default_last_name: String,
    pub default_company: String,
}

impl Settings {
    /// The field a record is matched by.
    pub fn key_field(&self) -> &str {
        match self.match_mode {
            MatchMode::ExternalId => self.external_id_field.as_deref().unwrap_or(EMAIL),
            MatchMode::Email => EMAIL,
        }
    }

    fn default_for(&self, field: &str) -> &str {
        if field == "Company" {
            &self.default_company
        } else {
            &self.default_last_name
        }
    }
}

/// One record that goes to Salesforce.
#[derive(Debug, Clone)]
pub struct Item<'a> {
    /// Position in the batch.
    pub index: usize,
    pub record: &'a SinkRecord,
    /// The match key as sent (`None` in email mode for a record known only by its remote id).
    pub key: Option<String>,
    /// Mapped fields with a non-empty value (and, in external-id mode, the key field).
    pub fields: BTreeMap<String, String>,
}

impl Item<'_> {
    /// Match keys compare case-insensitively, as Salesforce compares text in SOQL and external ids.
    pub fn key_lower(&self) -> Option<String> {
        self.key.as_ref().map(|k| k.to_lowercase())
    }

    fn has_rules(&self) -> bool {
        self.fields
            .keys()
            .any(|k| self.record.rule(k) != OnConflict::Overwrite)
    }

    fn lacks_required(&self, object: SObject) -> bool {
        object
            .required_fields()
            .iter()
            .any(|f| !self.fields.contains_key(*f))
    }

    /// Every field of a create: the mapped ones and a default for each missing required one.
    pub fn create_fields(&self, s: &Settings) -> BTreeMap<String, String> {
        let mut fields = self.fields.clone();
        for f in s.object.required_fields() {
            fields
                .entry((*f).to_owned())
                .or_insert_with(|| s.default_for(f).to_owned());
        }
        fields
    }

    /// The fields of an update of a record that currently holds `existing`.
    pub fn update_fields(
        &self,
        s: &Settings,
        existing: Option<&Map<String, Value>>,
    ) -> BTreeMap<String, String> {
        let filtered = SinkRecord {
            delivery_id: self.record.delivery_id,
            properties: self.fields.clone(),
            conflict: self.record.conflict.clone(),
            remote_id: None,
        };
        let current: BTreeMap<String, String> = existing
            .map(|m| {
                m.iter()
                    .filter_map(|(k, v)| Some((k.to_lowercase(), wire::text(v)?)))
                    .collect()
            })
            .unwrap_or_default();
        let mut fields =
            filtered.properties_for_update(|k| current.get(&k.to_lowercase()).map(String::as_str));
        // The key is how the upsert finds the record: it always goes along.
        if s.match_mode == MatchMode::ExternalId
            && let Some(key) = &self.key
        {
            fields.insert(s.key_field().to_owned(), key.clone());
        }
        fields
    }
}

/// A batch, split into what Salesforce will see and what was decided here.
pub struct Prepared<'a> {
    /// One slot per batch record: `Some` = decided locally.
    pub local: Vec<Option<ItemResult>>,
    pub items: Vec<Item<'a>>,
}

impl Prepared<'_> {
    /// Whether the current values must be read before writing: some record has a conflict rule,
    /// or (in external-id mode, where create and update are one call) lacks a required field
    /// whose default must only go into a create.
    pub fn needs_read(&self, s: &Settings) -> bool {
        self.items.iter().any(|i| {
            i.has_rules() || (s.match_mode == MatchMode::ExternalId && i.lacks_required(s.object))
        })
    }

    /// Fields whose current value the conflict rules need.
    pub fn rule_fields(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for item in &self.items {
            for k in item.fields.keys() {
                if item.record.rule(k) != OnConflict::Overwrite
                    && !out.iter().any(|o| o.eq_ignore_ascii_case(k))
                {
                    out.push(k.clone());
                }
            }
        }
        out
    }

    /// Fill the undecided slots with `results` (parallel to `items`).
    pub fn finish(self, mut results: Vec<ItemResult>) -> Vec<ItemResult> {
        let mut decided = self.local;
        for item in self.items.iter().rev() {
            let r = results.pop().unwrap_or_else(|| ItemResult::Transient {
                message: super::results::NO_RESULT.to_owned(),
            });
            decided[item.index] = Some(r);
        }
        decided
            .into_iter()
            .map(|d| {
                d.unwrap_or_else(|| ItemResult::Transient {
                    message: super::results::NO_RESULT.to_owned(),
                })
            })
            .collect()
    }
}

fn non_empty(fields: &BTreeMap<String, String>, key: &str) -> Option<String> {
    fields
        .get(key)
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
}

pub fn prepare<'a>(batch: &'a [SinkRecord], s: &Settings, max: usize) -> Prepared<'a> {
    let mut prepared = Prepared {
        local: Vec::with_capacity(batch.len()),
        items: Vec::new(),
    };
    let mut seen = HashSet::new();
    for (index, record) in batch.iter().enumerate() {
        let decided = decide(record, s).and_then(|(key, fields)| {
            if prepared.items.len() >= max {
                return Err(ItemResult::Transient {
                    message: OVERFLOW_MESSAGE.to_owned(),
                });
            }
            let identity = match (&key, &record.remote_id) {
                (_, Some(id)) if s.match_mode == MatchMode::Email => format!("id:{id}"),
                (Some(k), _) => format!("key:{}", k.to_lowercase()),
                (None, _) => String::new(),
            };
            if !seen.insert(identity) {
                return Err(ItemResult::Transient {
                    message: DUPLICATE_MESSAGE.to_owned(),
                });
            }
            Ok(Item {
                index,
                record,
                key,
                fields,
            })
        });
        match decided {
            Ok(item) => {
                prepared.local.push(None);
                prepared.items.push(item);
            }
            Err(result) => prepared.local.push(Some(result)),
        }
    }
    prepared
}

type Decided = (Option<String>, BTreeMap<String, String>);

fn decide(record: &SinkRecord, s: &Settings) -> Result<Decided, ItemResult> {
    let permanent = |message: String| ItemResult::Permanent { message };
    if let Some(bad) = record.properties.keys().find(|k| !is_api_name(k)) {
        return Err(permanent(format!(
            "{bad:?} is not a Salesforce field API name; fix the flow's field mapping (e.g. \"LastName\", \"Tandem_Email__c\")"
        )));
    }
    let mut fields: BTreeMap<String, String> = record
        .properties
        .iter()
        .filter(|(_, v)| !v.trim().is_empty())
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let email = non_empty(&fields, EMAIL);
    match s.match_mode {
        MatchMode::ExternalId => {
            let field = s.key_field().to_owned();
            let key = non_empty(&fields, &field).or_else(|| email.map(|e| e.to_lowercase()));
            let Some(key) = key else {
                return Err(permanent(format!(
                    "lead has no Email and no {field} value, so Salesforce can't match it; map Email in the flow"
                )));
            };
            fields.insert(field, key.clone());
            Ok((Some(key), fields))
        }
        MatchMode::Email => {
            if email.is_none() && record.remote_id.is_none() {
                return Err(permanent(
                    "lead has no Email, so tandem can't look it up in Salesforce; map Email in the flow \
                     (or use match = \"external_id\")"
                        .to_owned(),
                ));
            }
            Ok((email, fields))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(mode: MatchMode) -> Settings {
        Settings {
            object: SObject::Lead,
            match_mode: mode,
            external_id_field: (mode == MatchMode::ExternalId)
                .then(|| "Tandem_Email__c".to_owned()),
            default_last_name: "[not provided]".into(),
            default_company: "[none]".into(),
        }
    }

    fn rec(id: i64, props: &[(&str, &str)]) -> SinkRecord {
        SinkRecord {
            delivery_id: id,
            properties: props
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            conflict: BTreeMap::new(),
            remote_id: None,
        }
    }

    #[test]
    fn external_id_mode_keys_by_the_lowercased_email_unless_mapped() {
        let s = settings(MatchMode::ExternalId);
        let batch = [
            rec(
                1,
                &[
                    ("Email", " Jane@X.com "),
                    ("LastName", "Doe"),
                    ("Company", "Acme"),
                ],
            ),
            rec(2, &[("Email", "a@x.com"), ("Tandem_Email__c", "custom-7")]),
            rec(3, &[("FirstName", "NoMail")]),
            rec(4, &[("Email", "JANE@x.com")]),
            rec(5, &[("Bad Field", "x"), ("Email", "b@x.com")]),
        ];
        let p = prepare(&batch, &s, 200);
        assert_eq!(p.items.len(), 2);
        assert_eq!(p.items[0].key.as_deref(), Some("jane@x.com"));
        assert_eq!(p.items[0].fields["Tandem_Email__c"], "jane@x.com");
        assert_eq!(p.items[1].key.as_deref(), Some("custom-7"));
        assert!(matches!(p.local[2], Some(ItemResult::Permanent { .. })));
        assert!(matches!(p.local[3], Some(ItemResult::Transient { .. })));
        assert!(
            matches!(&p.local[4], Some(ItemResult::Permanent { message }) if message.contains("Bad Field"))
        );
        // Record 2 lacks LastName/Company: its default may only go into a create.
        assert!(p.needs_read(&s));
        assert_eq!(p.items[1].create_fields(&s)["Company"], "[none]");
        assert!(!p.items[1].update_fields(&s, None).contains_key("Company"));
    }

    #[test]
    fn email_mode_needs_no_read_of_values_without_rules_and_drops_empty_values() {
        let s = settings(MatchMode::Email);
        let batch = [rec(1, &[("Email", "a@x.com"), ("Phone", " ")])];
        let p = prepare(&batch, &s, 200);
        assert!(!p.needs_read(&s));
        assert!(!p.items[0].fields.contains_key("Phone"));
        let created = p.items[0].create_fields(&s);
        assert_eq!(created["LastName"], "[not provided]");
        assert_eq!(
            p.finish(vec![ItemResult::Transient {
                message: "x".into()
            }])
            .len(),
            1
        );
    }

    #[test]
    fn conflict_rules_apply_to_current_values_case_insensitively() {
        let s = settings(MatchMode::Email);
        let mut r = rec(
            1,
            &[
                ("Email", "a@x.com"),
                ("Phone", "+1"),
                ("LeadSource", "Web"),
                ("Title", "CTO"),
            ],
        );
        r.conflict.insert("Phone".into(), OnConflict::FillEmpty);
        r.conflict.insert("LeadSource".into(), OnConflict::Never);
        let batch = [r];
        let p = prepare(&batch, &s, 200);
        assert!(p.needs_read(&s));
        assert_eq!(p.rule_fields(), ["LeadSource", "Phone"]);
        let existing: Map<String, Value> = serde_json::from_value(
            serde_json::json!({"Id": "00Q1", "Phone": "+9", "LeadSource": null}),
        )
        .unwrap();
        let f = p.items[0].update_fields(&s, Some(&existing));
        assert_eq!(f.keys().collect::<Vec<_>>(), ["Email", "Title"]);
        let empty: Map<String, Value> =
            serde_json::from_value(serde_json::json!({"Phone": null})).unwrap();
        assert!(
            p.items[0]
                .update_fields(&s, Some(&empty))
                .contains_key("Phone")
        );
    }
}
