//! `GET /crm/v3/properties/contacts`: the portal's contact properties as HubSpot describes them
//! (`name`, `label`, `type`, `fieldType`, `groupName`, `calculated`, `hasUniqueValue`,
//! `modificationMetadata`…): the standard writable ones, HubSpot's read-only and calculated ones,
//! and the custom ones from [`super::SandboxOptions`].

use axum::{
    Json,
    extract::State,
    response::{IntoResponse, Response},
};

use crate::hubspot::wire::{ModificationMetadata, PropertiesResponse, Property};

use super::{STANDARD_PROPERTIES, SandboxState};

/// Standard properties HubSpot sets itself: (name, label, type, fieldType, calculated).
pub const READ_ONLY_PROPERTIES: &[(&str, &str, &str, &str, bool)] = &[
    ("hs_object_id", "Record ID", "number", "number", false),
    ("createdate", "Create Date", "datetime", "date", false),
    (
        "lastmodifieddate",
        "Last Modified Date",
        "datetime",
        "date",
        false,
    ),
    (
        "hs_analytics_source",
        "Original Traffic Source",
        "enumeration",
        "select",
        false,
    ),
    (
        "hs_analytics_num_visits",
        "Number of Sessions",
        "number",
        "number",
        true,
    ),
    (
        "num_associated_deals",
        "Number of Associated Deals",
        "number",
        "calculation_rollup",
        true,
    ),
];

/// (label, type, fieldType, group) of a standard writable property.
fn describe(name: &str) -> (&'static str, &'static str, &'static str, &'static str) {
    match name {
        "email" => ("Email", "string", "text", "contactinformation"),
        "firstname" => ("First Name", "string", "text", "contactinformation"),
        "lastname" => ("Last Name", "string", "text", "contactinformation"),
        "phone" => (
            "Phone Number",
            "string",
            "phonenumber",
            "contactinformation",
        ),
        "mobilephone" => (
            "Mobile Phone Number",
            "string",
            "phonenumber",
            "contactinformation",
        ),
        "company" => ("Company Name", "string", "text", "contactinformation"),
        "jobtitle" => ("Job Title", "string", "text", "contactinformation"),
        "country" => ("Country/Region", "string", "text", "contactinformation"),
        "city" => ("City", "string", "text", "contactinformation"),
        "state" => ("State/Region", "string", "text", "contactinformation"),
        "zip" => ("Postal Code", "string", "text", "contactinformation"),
        "address" => ("Street Address", "string", "text", "contactinformation"),
        "website" => ("Website URL", "string", "text", "contactinformation"),
        "lifecyclestage" => (
            "Lifecycle Stage",
            "enumeration",
            "radio",
            "contactinformation",
        ),
        "hs_lead_status" => ("Lead Status", "enumeration", "radio", "sales_properties"),
        "industry" => ("Industry", "string", "text", "contactinformation"),
        "salutation" => ("Salutation", "string", "text", "contactinformation"),
        "fax" => ("Fax Number", "string", "text", "contactinformation"),
        "message" => ("Message", "string", "textarea", "contactinformation"),
        "numemployees" => (
            "Number of Employees",
            "enumeration",
            "select",
            "contactinformation",
        ),
        "annualrevenue" => ("Annual Revenue", "string", "text", "contactinformation"),
        "hs_language" => (
            "Preferred language",
            "enumeration",
            "select",
            "contactinformation",
        ),
        "hs_persona" => ("Persona", "enumeration", "radio", "contactinformation"),
        "hubspot_owner_id" => ("Contact owner", "enumeration", "select", "sales_properties"),
        _ => ("", "string", "text", "contactinformation"),
    }
}

/// Every property of the portal.
pub fn catalogue(options: &super::SandboxOptions) -> Vec<Property> {
    let writable = |name: &str, hubspot_defined: bool, unique: bool| {
        let (label, type_, field_type, group) = describe(name);
        Property {
            name: name.to_owned(),
            label: if label.is_empty() {
                name.to_owned()
            } else {
                label.to_owned()
            },
            type_: type_.to_owned(),
            field_type: field_type.to_owned(),
            group_name: group.to_owned(),
            has_unique_value: unique || name == "email",
            hubspot_defined,
            form_field: true,
            modification_metadata: ModificationMetadata {
                archivable: !hubspot_defined,
                read_only_definition: hubspot_defined,
                read_only_value: false,
            },
            ..Default::default()
        }
    };
    let mut all: Vec<Property> = STANDARD_PROPERTIES
        .iter()
        .map(|n| writable(n, true, false))
        .collect();
    all.extend(
        READ_ONLY_PROPERTIES
            .iter()
            .map(|(name, label, type_, field_type, calculated)| Property {
                name: (*name).to_owned(),
                label: (*label).to_owned(),
                type_: (*type_).to_owned(),
                field_type: (*field_type).to_owned(),
                group_name: "contactinformation".to_owned(),
                calculated: *calculated,
                has_unique_value: *name == "hs_object_id",
                hubspot_defined: true,
                modification_metadata: ModificationMetadata {
                    archivable: false,
                    read_only_definition: true,
                    read_only_value: true,
                },
                ..Default::default()
            }),
    );
    all.extend(
        options
            .custom_properties
            .iter()
            .map(|n| writable(n, false, false)),
    );
    all.extend(
        options
            .unique_properties
            .iter()
            .map(|n| writable(n, false, true)),
    );
    all
}

pub async fn list(State(state): State<SandboxState>) -> Response {
    state.world().stats.properties_calls += 1;
    Json(PropertiesResponse {
        results: catalogue(state.options()),
    })
    .into_response()
}
