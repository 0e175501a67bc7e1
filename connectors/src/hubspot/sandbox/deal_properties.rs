//! `GET /crm/v3/properties/deals` and `GET /crm/v3/properties/deals/{propertyName}`: the deal
//! properties of the portal as HubSpot describes them: the standard ones (some set by HubSpot
//! itself, read-only or calculated) and the custom text properties from
//! [`super::SandboxOptions::deal_properties`]. An unknown name answers 404.

use axum::{
    Json,
    extract::{Path, State},
    response::{IntoResponse, Response},
};

use crate::hubspot::wire::{ModificationMetadata, PropertiesResponse, Property};

use super::{SandboxOptions, SandboxState, errors};

/// Standard deal properties: (name, label, type, fieldType, read-only, calculated).
const STANDARD: &[(&str, &str, &str, &str, bool, bool)] = &[
    ("dealname", "Deal Name", "string", "text", false, false),
    ("amount", "Amount", "number", "number", false, false),
    (
        "deal_currency_code",
        "Currency",
        "enumeration",
        "select",
        false,
        false,
    ),
    (
        "dealstage",
        "Deal Stage",
        "enumeration",
        "radio",
        false,
        false,
    ),
    (
        "pipeline",
        "Pipeline",
        "enumeration",
        "select",
        false,
        false,
    ),
    ("closedate", "Close Date", "datetime", "date", false, false),
    (
        "dealtype",
        "Deal Type",
        "enumeration",
        "radio",
        false,
        false,
    ),
    (
        "description",
        "Deal Description",
        "string",
        "textarea",
        false,
        false,
    ),
    (
        "hubspot_owner_id",
        "Deal owner",
        "enumeration",
        "select",
        false,
        false,
    ),
    ("createdate", "Create Date", "datetime", "date", true, false),
    (
        "hs_lastmodifieddate",
        "Last Modified Date",
        "datetime",
        "date",
        true,
        false,
    ),
    ("hs_object_id", "Record ID", "number", "number", true, false),
    (
        "hs_is_closed",
        "Is Deal Closed?",
        "bool",
        "calculation_equation",
        true,
        true,
    ),
    (
        "hs_is_closed_won",
        "Is Closed Won",
        "bool",
        "calculation_equation",
        true,
        true,
    ),
];

fn standard(entry: &(&str, &str, &str, &str, bool, bool)) -> Property {
    let (name, label, type_, field_type, read_only, calculated) = *entry;
    Property {
        name: name.to_owned(),
        label: label.to_owned(),
        type_: type_.to_owned(),
        field_type: field_type.to_owned(),
        group_name: "dealinformation".to_owned(),
        calculated,
        has_unique_value: name == "hs_object_id",
        hubspot_defined: true,
        form_field: !read_only,
        modification_metadata: ModificationMetadata {
            archivable: false,
            read_only_definition: true,
            read_only_value: read_only,
        },
        ..Default::default()
    }
}

fn custom(name: &str) -> Property {
    Property {
        name: name.to_owned(),
        label: name.replace('_', " "),
        type_: "string".to_owned(),
        field_type: "text".to_owned(),
        group_name: "dealinformation".to_owned(),
        form_field: true,
        modification_metadata: ModificationMetadata {
            archivable: true,
            read_only_definition: false,
            read_only_value: false,
        },
        ..Default::default()
    }
}

/// A standard deal property by name.
pub fn catalogue_entry(name: &str) -> Option<Property> {
    STANDARD.iter().find(|e| e.0 == name).map(standard)
}

/// Every deal property of the portal.
pub fn catalogue(options: &SandboxOptions) -> Vec<Property> {
    STANDARD
        .iter()
        .map(standard)
        .chain(options.deal_properties.iter().map(|n| custom(n)))
        .collect()
}

pub fn exists(options: &SandboxOptions, name: &str) -> bool {
    catalogue_entry(name).is_some() || options.deal_properties.iter().any(|p| p == name)
}

pub async fn list(State(state): State<SandboxState>) -> Response {
    state.world().stats.deal_property_calls += 1;
    Json(PropertiesResponse {
        results: catalogue(state.options()),
    })
    .into_response()
}

pub async fn one(State(state): State<SandboxState>, Path(name): Path<String>) -> Response {
    state.world().stats.deal_property_calls += 1;
    match catalogue(state.options())
        .into_iter()
        .find(|p| p.name == name)
    {
        Some(p) => Json(p).into_response(),
        None => {
            let cid = state.world().correlation_id();
            errors::respond(
                axum::http::StatusCode::NOT_FOUND,
                errors::body(
                    format!("Unable to find property {name} for object type DEAL"),
                    "OBJECT_NOT_FOUND",
                    cid,
                ),
            )
        }
    }
}
