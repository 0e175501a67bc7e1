//! The sandbox org's objects: Lead and Contact (a subset of the standard fields plus the optional
//! External ID text field), Opportunity (standard fields, tandem's three attribution fields, and
//! `CurrencyIsoCode` when the org has multiple currencies) and OpportunityContactRole; their
//! relationships for SOQL; and `GET /sobjects/{Object}/describe`.

use axum::{
    Json,
    extract::{Path, State},
    response::{IntoResponse, Response},
};
use serde_json::json;

use crate::salesforce::wire::FieldDescribe;

use super::{SandboxOptions, SandboxState, errors};

pub const OBJECTS: &[&str] = &["Lead", "Contact", "Opportunity", "OpportunityContactRole"];

/// Parent relationships usable as `Rel.Field` in SOQL: (object, relationship, target, key field).
pub const PARENTS: &[(&str, &str, &str, &str)] = &[
    ("OpportunityContactRole", "Contact", "Contact", "ContactId"),
    (
        "OpportunityContactRole",
        "Opportunity",
        "Opportunity",
        "OpportunityId",
    ),
];

/// Child relationships usable as subqueries: (object, relationship, child object, child's key).
pub const CHILDREN: &[(&str, &str, &str, &str)] = &[(
    "Opportunity",
    "OpportunityContactRoles",
    "OpportunityContactRole",
    "OpportunityId",
)];

/// The key prefix of an object's record ids.
pub fn key_prefix(object: &str) -> &'static str {
    match object {
        "Contact" => "003",
        "Opportunity" => "006",
        "OpportunityContactRole" => "00K",
        _ => "00Q",
    }
}

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
    ("ConvertedContactId", "reference", false, false, true, false),
    (
        "ConvertedOpportunityId",
        "reference",
        false,
        false,
        true,
        false,
    ),
    ("ConvertedDate", "date", false, false, true, false),
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

const OPPORTUNITY: &[Spec] = &[
    ("Id", "id", false, false, false, true),
    ("Name", "string", true, true, false, false),
    ("StageName", "picklist", true, true, false, false),
    ("Amount", "currency", true, true, true, false),
    ("CloseDate", "date", true, true, false, false),
    ("Probability", "percent", true, true, true, true),
    ("IsClosed", "boolean", false, false, false, true),
    ("IsWon", "boolean", false, false, false, true),
    ("AccountId", "reference", true, true, true, false),
    ("ContactId", "reference", true, false, true, false),
    ("LeadSource", "picklist", true, true, true, false),
    ("Description", "textarea", true, true, true, false),
    ("OwnerId", "reference", true, true, false, true),
    ("CreatedDate", "datetime", false, false, false, true),
    ("LastModifiedDate", "datetime", false, false, false, true),
    ("SystemModstamp", "datetime", false, false, false, true),
    ("Tandem_First_Touch__c", "string", true, true, true, false),
    ("Tandem_Last_Touch__c", "string", true, true, true, false),
    ("Tandem_Attribution__c", "textarea", true, true, true, false),
];

const CONTACT_ROLE: &[Spec] = &[
    ("Id", "id", false, false, false, true),
    ("OpportunityId", "reference", true, false, false, false),
    ("ContactId", "reference", true, true, false, false),
    ("Role", "picklist", true, true, true, false),
    ("IsPrimary", "boolean", true, true, false, true),
    ("CreatedDate", "datetime", false, false, false, true),
    ("LastModifiedDate", "datetime", false, false, false, true),
    ("SystemModstamp", "datetime", false, false, false, true),
];

/// Long Text Area fields: 32,768 characters unless the org chose less.
fn length(name: &str, kind: &str) -> u32 {
    match (name, kind) {
        ("Tandem_Attribution__c", _) => 32_768,
        ("CurrencyIsoCode", _) => 3,
        (_, "string" | "url" | "phone") => 255,
        (_, "email") => 80,
        (_, "textarea") => 32_000,
        (_, "id" | "reference") => 18,
        _ => 0,
    }
}

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
        "Opportunity" => OPPORTUNITY,
        "OpportunityContactRole" => CONTACT_ROLE,
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
                length: length(name, kind),
            },
        )
        .collect();
    if object == "Opportunity" && options.multi_currency {
        out.push(FieldDescribe {
            name: "CurrencyIsoCode".to_owned(),
            label: "Opportunity Currency".to_owned(),
            kind: "picklist".to_owned(),
            createable: true,
            updateable: true,
            nillable: true,
            defaulted_on_create: true,
            length: 3,
            ..FieldDescribe::default()
        });
    }
    if let Some(ext) = &options.external_id_field
        && matches!(object, "Lead" | "Contact")
    {
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
        "keyPrefix": key_prefix(canonical),
    });
    body["fields"] = serde_json::to_value(fields).unwrap_or_default();
    Json(body).into_response()
}
