//! The sandbox org's Lead and Contact fields (a subset of the standard ones plus the optional
//! External ID text field) and `GET /sobjects/{Object}/describe`.

use axum::{
    Json,
    extract::{Path, State},
    response::{IntoResponse, Response},
};
use serde_json::json;

use crate::salesforce::wire::FieldDescribe;

use super::{SandboxOptions, SandboxState, errors};

pub const OBJECTS: &[&str] = &["Lead", "Contact"];

/// (name, type, createable, updateable, nillable, defaulted on create)
type Spec = (&'static str, &'static str, bool, bool, bool, bool);

const LEAD: &[Spec] = &[
    ("Id", "id", false, false, false, true),
    ("FirstName", "string", true, true, true, false),
    ("LastName", "string", true, true, false, false),
    ("Company", "string", true, true, false, false),
    ("Email", "email", true, true, true, false),
    ("Phone", "phone", true, true, true, false),
    ("MobilePhone", "phone", true, true, true, false),
    ("Title", "string", true, true, true, false),
    ("Website", "url", true, true, true, false),
    ("Description", "textarea", true, true, true, false),
    ("City", "string", true, true, true, false),
    ("Country", "string", true, true, true, false),
    ("Status", "picklist", true, true, false, true),
    ("LeadSource", "picklist", true, true, true, false),
    ("Industry", "picklist", true, true, true, false),
    ("NumberOfEmployees", "int", true, true, true, false),
    ("HasOptedOutOfEmail", "boolean", true, true, false, true),
    ("OwnerId", "reference", true, true, false, true),
    ("IsConverted", "boolean", false, false, false, true),
    ("CreatedDate", "datetime", false, false, false, true),
    ("LastModifiedDate", "datetime", false, false, false, true),
    ("SystemModstamp", "datetime", false, false, false, true),
];

const CONTACT: &[Spec] = &[
    ("Id", "id", false, false, false, true),
    ("FirstName", "string", true, true, true, false),
    ("LastName", "string", true, true, false, false),
    ("Email", "email", true, true, true, false),
    ("Phone", "phone", true, true, true, false),
    ("MobilePhone", "phone", true, true, true, false),
    ("Title", "string", true, true, true, false),
    ("Department", "string", true, true, true, false),
    ("Description", "textarea", true, true, true, false),
    ("MailingCity", "string", true, true, true, false),
    ("LeadSource", "picklist", true, true, true, false),
    ("AccountId", "reference", true, true, true, false),
    ("HasOptedOutOfEmail", "boolean", true, true, false, true),
    ("OwnerId", "reference", true, true, false, true),
    ("CreatedDate", "datetime", false, false, false, true),
    ("LastModifiedDate", "datetime", false, false, false, true),
    ("SystemModstamp", "datetime", false, false, false, true),
];

fn label(name: &str) -> String {
    let base = name.trim_end_matches("__c").replace('_', " ");
    let mut out = String::new();
    for (i, c) in base.chars().enumerate() {
        if i > 0 && c.is_ascii_uppercase() && !out.ends_with(' ') {
            out.push(' ');
        }
        out.push(c);
    }
    out
}

/// Every field of `object` in this org, or `None` for an object the sandbox doesn't have.
pub fn fields(object: &str, options: &SandboxOptions) -> Option<Vec<FieldDescribe>> {
    let specs = match object {
        "Lead" => LEAD,
        "Contact" => CONTACT,
        _ => return None,
    };
    let mut out: Vec<FieldDescribe> = specs
        .iter()
        .map(
            |&(name, kind, createable, updateable, nillable, defaulted)| FieldDescribe {
                name: name.to_owned(),
                label: label(name),
                kind: kind.to_owned(),
                createable,
                updateable,
                external_id: false,
                nillable,
                defaulted_on_create: defaulted,
                unique: false,
                length: match kind {
                    "string" | "url" | "phone" => 255,
                    "email" => 80,
                    "textarea" => 32_000,
                    "id" | "reference" => 18,
                    _ => 0,
                },
            },
        )
        .collect();
    if let Some(ext) = &options.external_id_field {
        out.push(FieldDescribe {
            name: ext.clone(),
            label: label(ext),
            kind: "string".to_owned(),
            createable: true,
            updateable: true,
            external_id: true,
            nillable: true,
            defaulted_on_create: false,
            unique: false,
            length: 255,
        });
    }
    Some(out)
}

/// `field`'s describe entry, matched case-insensitively as Salesforce matches API names.
pub fn find<'a>(fields: &'a [FieldDescribe], field: &str) -> Option<&'a FieldDescribe> {
    fields.iter().find(|f| f.name.eq_ignore_ascii_case(field))
}

pub async fn describe(
    State(state): State<SandboxState>,
    Path((_version, object)): Path<(String, String)>,
) -> Response {
    let Some(canonical) = OBJECTS.iter().find(|o| o.eq_ignore_ascii_case(&object)) else {
        return errors::not_found();
    };
    let Some(fields) = fields(canonical, state.options()) else {
        return errors::not_found();
    };
    let mut body = json!({
        "name": canonical,
        "label": canonical,
        "createable": true,
        "updateable": true,
        "queryable": true,
        "custom": false,
        "keyPrefix": if *canonical == "Contact" { "003" } else { "00Q" },
    });
    body["fields"] = serde_json::to_value(fields).unwrap_or_default();
    Json(body).into_response()
}
