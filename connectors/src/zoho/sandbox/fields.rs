//! The modules' field catalogue (a subset of Zoho's standard fields) and
//! `GET /crm/v8/settings/fields?module=…`.

use std::collections::HashMap;

use axum::{
    Json,
    extract::{Query, State},
    http::StatusCode,
    response::{IntoResponse, Response},
};
use serde_json::json;

use super::{SandboxState, state::zoho_error};
use crate::zoho::wire::{FieldMeta, FieldsResponse};

/// (api_name, data_type, read_only, system_mandatory)
type FieldDef = (&'static str, &'static str, bool, bool);

const LEADS: &[FieldDef] = &[
    ("Owner", "ownerlookup", false, false),
    ("Company", "text", false, false),
    ("First_Name", "text", false, false),
    ("Last_Name", "text", false, true),
    ("Full_Name", "text", true, false),
    ("Designation", "text", false, false),
    ("Email", "email", false, false),
    ("Secondary_Email", "email", false, false),
    ("Phone", "phone", false, false),
    ("Mobile", "phone", false, false),
    ("Fax", "text", false, false),
    ("Website", "website", false, false),
    ("Lead_Source", "picklist", false, false),
    ("Lead_Status", "picklist", false, false),
    ("Industry", "picklist", false, false),
    ("Rating", "picklist", false, false),
    ("Salutation", "picklist", false, false),
    ("No_of_Employees", "integer", false, false),
    ("Annual_Revenue", "currency", false, false),
    ("Email_Opt_Out", "boolean", false, false),
    ("Street", "text", false, false),
    ("City", "text", false, false),
    ("State", "text", false, false),
    ("Zip_Code", "text", false, false),
    ("Country", "text", false, false),
    ("Description", "textarea", false, false),
    ("Created_Time", "datetime", true, false),
    ("Modified_Time", "datetime", true, false),
];

const CONTACTS: &[FieldDef] = &[
    ("Owner", "ownerlookup", false, false),
    ("Account_Name", "lookup", false, false),
    ("First_Name", "text", false, false),
    ("Last_Name", "text", false, true),
    ("Full_Name", "text", true, false),
    ("Title", "text", false, false),
    ("Department", "text", false, false),
    ("Email", "email", false, false),
    ("Secondary_Email", "email", false, false),
    ("Phone", "phone", false, false),
    ("Mobile", "phone", false, false),
    ("Lead_Source", "picklist", false, false),
    ("Salutation", "picklist", false, false),
    ("Email_Opt_Out", "boolean", false, false),
    ("Mailing_Street", "text", false, false),
    ("Mailing_City", "text", false, false),
    ("Mailing_State", "text", false, false),
    ("Mailing_Zip", "text", false, false),
    ("Mailing_Country", "text", false, false),
    ("Description", "textarea", false, false),
    ("Created_Time", "datetime", true, false),
    ("Modified_Time", "datetime", true, false),
];

pub(super) fn catalogue(module: &str) -> Option<&'static [FieldDef]> {
    match module {
        "Leads" => Some(LEADS),
        "Contacts" => Some(CONTACTS),
        _ => None,
    }
}

/// The definition of `field` in `module`, if the module has it.
pub(super) fn field(module: &str, field: &str) -> Option<FieldDef> {
    catalogue(module)?.iter().find(|f| f.0 == field).copied()
}

pub(super) fn invalid_module() -> Response {
    zoho_error(
        StatusCode::BAD_REQUEST,
        "INVALID_MODULE",
        "the module name given seems to be invalid",
        json!({}),
    )
}

pub async fn handle(
    State(state): State<SandboxState>,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    let Some(module) = params.get("module") else {
        return zoho_error(
            StatusCode::BAD_REQUEST,
            "REQUIRED_PARAM_MISSING",
            "One of the expected parameter is missing",
            json!({"param": "module"}),
        );
    };
    let Some(defs) = catalogue(module) else {
        return invalid_module();
    };
    {
        let mut w = state.world();
        w.stats.fields_calls += 1;
        w.charge(1);
    }
    let fields = defs
        .iter()
        .map(|(api, ty, ro, mandatory)| FieldMeta {
            api_name: (*api).to_owned(),
            display_label: api.replace('_', " "),
            data_type: (*ty).to_owned(),
            read_only: *ro,
            field_read_only: *ro,
            system_mandatory: *mandatory,
            length: Some(if *ty == "textarea" { 32_000 } else { 255 }),
        })
        .collect();
    Json(FieldsResponse { fields }).into_response()
}
