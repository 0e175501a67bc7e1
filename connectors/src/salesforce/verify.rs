//! `tandem check --connect` for Salesforce: one `GET /sobjects/{Object}/describe`, then every
//! mapped field must exist (else the closest name is suggested), be writable on create and
//! update, and have a type a text value can be written to; the external id field must be marked
//! External ID. Never writes.

use reqwest::Method;

use super::{
    MatchMode,
    client::SalesforceClient,
    plan::EMAIL,
    wire::{Describe, FieldDescribe},
};

/// Field types Salesforce takes a JSON string for.
const WRITABLE_TYPES: &[&str] = &[
    "string",
    "email",
    "phone",
    "textarea",
    "url",
    "picklist",
    "multipicklist",
    "combobox",
    "encryptedstring",
    "date",
    "datetime",
    "time",
    "double",
    "int",
    "long",
    "currency",
    "percent",
];

fn distance(a: &str, b: &str) -> usize {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut row = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != cb);
            row.push((prev[j] + cost).min(prev[j + 1] + 1).min(row[j] + 1));
        }
        prev = row;
    }
    prev[b.len()]
}

/// The field whose name is closest to `wanted`, if it is close enough to be a typo.
pub(super) fn closest<'a>(wanted: &str, fields: &'a [FieldDescribe]) -> Option<&'a str> {
    let w = wanted.to_lowercase();
    fields
        .iter()
        .map(|f| (distance(&w, &f.name.to_lowercase()), f.name.as_str()))
        .filter(|(d, _)| *d <= 3.max(w.len() / 4))
        .min_by_key(|(d, _)| *d)
        .map(|(_, n)| n)
}

fn type_hint(kind: &str) -> &'static str {
    match kind {
        "boolean" => {
            "a checkbox takes true/false, not text; map a text or picklist field, or set the checkbox with a Salesforce flow"
        }
        "reference" => {
            "a lookup holds another record's Id, not text; map a text field and let a Salesforce flow resolve it"
        }
        "id" => "the record Id is set by Salesforce",
        _ => "map a text, email, phone, URL or picklist field instead",
    }
}

pub fn check_field(object: &str, wanted: &str, fields: &[FieldDescribe]) -> Option<String> {
    let Some(f) = fields.iter().find(|f| f.name == wanted) else {
        if let Some(f) = fields.iter().find(|f| f.name.eq_ignore_ascii_case(wanted)) {
            return Some(format!(
                "field {wanted} on {object} is spelt {} in Salesforce; write it exactly so in the flow",
                f.name
            ));
        }
        return Some(match closest(wanted, fields) {
            Some(near) => format!("unknown field {wanted} on {object} — did you mean {near}?"),
            None => format!(
                "unknown field {wanted} on {object}; use the field's API name from Object Manager \
                 (custom fields end in __c)"
            ),
        });
    };
    if !WRITABLE_TYPES.contains(&f.kind.as_str()) {
        return Some(format!(
            "field {wanted} on {object} is of type {}: {}",
            f.kind,
            type_hint(&f.kind)
        ));
    }
    match (f.createable, f.updateable) {
        (false, false) => Some(format!(
            "field {wanted} on {object} is read-only for the integration user; remove it from the flow, \
             or grant edit access to it (field-level security)"
        )),
        (false, true) => Some(format!(
            "field {wanted} on {object} can't be set when a record is created; remove it from the flow"
        )),
        (true, false) => Some(format!(
            "field {wanted} on {object} can only be set on create; give it on_conflict = \"never\" \
             or remove it from the flow"
        )),
        (true, true) => None,
    }
}

impl SalesforceClient {
    pub(super) async fn verify_fields(&self, wanted: &[String]) -> Vec<String> {
        let object = self.settings.object.name();
        let path = self.data_path(&format!("sobjects/{object}/describe"));
        let describe: Describe = match self.call(Method::GET, &path, &[], None).await {
            Ok(answer) => match Self::decode(&answer) {
                Ok(d) => d,
                Err(e) => {
                    return vec![format!(
                        "could not read the {object} fields from Salesforce: {e}"
                    )];
                }
            },
            Err(e) => {
                return vec![format!(
                    "could not read the {object} fields from Salesforce: {e}"
                )];
            }
        };
        let mut problems: Vec<String> = wanted
            .iter()
            .filter_map(|w| check_field(object, w, &describe.fields))
            .collect();
        if self.settings.match_mode == MatchMode::ExternalId
            && let Some(ext) = &self.settings.external_id_field
        {
            match describe.fields.iter().find(|f| f.name.eq_ignore_ascii_case(ext)) {
                None => problems.push(match closest(ext, &describe.fields) {
                    Some(near) => format!(
                        "external_id_field {ext} does not exist on {object} — did you mean {near}?"
                    ),
                    None => format!(
                        "external_id_field {ext} does not exist on {object}; create a text field with \
                         \"External ID\" ticked, or use match = \"email\""
                    ),
                }),
                Some(f) if !f.external_id => problems.push(format!(
                    "external_id_field {ext} on {object} is not marked External ID; tick \"External ID\" \
                     on the field in Object Manager (and \"Unique\" to keep duplicates out)"
                )),
                Some(f) if !(f.createable && f.updateable) => problems.push(format!(
                    "external_id_field {ext} on {object} is not writable by the integration user; \
                     grant edit access to it (field-level security)"
                )),
                Some(_) => {}
            }
        }
        if self.settings.match_mode == MatchMode::Email && !wanted.iter().any(|w| w == EMAIL) {
            problems.push(format!(
                "the flow maps no {EMAIL}: with match = \"email\" tandem can't find existing {object} \
                 records; map Email = \"{{{{ lead.email }}}}\""
            ));
        }
        problems
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(name: &str, kind: &str, c: bool, u: bool) -> FieldDescribe {
        FieldDescribe {
            name: name.into(),
            kind: kind.into(),
            createable: c,
            updateable: u,
            ..Default::default()
        }
    }

    #[test]
    fn misspelt_and_unwritable_fields_get_a_hint() {
        let fs = [
            field("LastName", "string", true, true),
            field("Company", "string", true, true),
            field("HasOptedOutOfEmail", "boolean", true, true),
            field("OwnerId", "reference", true, true),
            field("IsConverted", "boolean", false, false),
            field("Status", "picklist", true, true),
        ];
        assert_eq!(check_field("Lead", "Status", &fs), None);
        assert_eq!(
            check_field("Lead", "Compnay", &fs).unwrap(),
            "unknown field Compnay on Lead — did you mean Company?"
        );
        assert!(
            check_field("Lead", "lastname", &fs)
                .unwrap()
                .contains("spelt LastName")
        );
        assert!(
            check_field("Lead", "HasOptedOutOfEmail", &fs)
                .unwrap()
                .contains("checkbox")
        );
        assert!(
            check_field("Lead", "OwnerId", &fs)
                .unwrap()
                .contains("lookup")
        );
        assert!(
            check_field("Lead", "Zzzzzzzzzzz", &fs)
                .unwrap()
                .contains("API name")
        );
        assert_eq!(distance("kitten", "sitting"), 3);
    }
}
