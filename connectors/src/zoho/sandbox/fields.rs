//! The modules' field catalogue (a subset of Zoho's standard fields, plus tandem's three
//! attribution fields on Deals, and Deals' `Currency` only when the org has multiple currencies),
//! the lookups COQL may follow, and `GET /crm/v8/settings/fields?module=…`.

use std::collections::HashMap;

use axum::{
    Json,
    extract::{Query, State},
    http::StatusCode,
    response::{IntoResponse, Response},
};
use serde_json::json;

use super::{SandboxOptions, SandboxState, state::zoho_error};
use crate::zoho::wire::{FieldMeta, FieldsResponse, PickListValue};

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

const DEALS: &[FieldDef] = &[
    ("Owner", "ownerlookup", false, false),
    ("Deal_Name", "text", false, true),
    ("Account_Name", "lookup", false, false),
    ("Contact_Name", "lookup", false, false),
    ("Stage", "picklist", false, true),
    ("Amount", "currency", false, false),
    ("Currency", "picklist", false, false),
    ("Closing_Date", "date", false, true),
    ("Probability", "integer", false, false),
    ("Lead_Source", "picklist", false, false),
    ("Description", "textarea", false, false),
    ("Tandem_First_Touch", "text", false, false),
    ("Tandem_Last_Touch", "text", false, false),
    ("Tandem_Attribution", "textarea", false, false),
    ("Created_Time", "datetime", true, false),
    ("Modified_Time", "datetime", true, false),
];

/// Zoho's default Deals stages with their probability.
pub const STAGES: &[(&str, u32)] = &[
    ("Qualification", 10),
    ("Needs Analysis", 20),
    ("Value Proposition", 40),
    ("Identify Decision Makers", 60),
    ("Proposal/Price Quote", 75),
    ("Negotiation/Review", 90),
    ("Closed Won", 100),
    ("Closed Lost", 0),
    ("Closed-Lost to Competition", 0),
];

/// Lookups COQL may follow as `Field.Other`: (module, lookup field, target module).
pub const LOOKUPS: &[(&str, &str, &str)] = &[("Deals", "Contact_Name", "Contacts")];

pub(super) fn catalogue(module: &str) -> Option<&'static [FieldDef]> {
    match module {
        "Leads" => Some(LEADS),
        "Contacts" => Some(CONTACTS),
        "Deals" => Some(DEALS),
        _ => None,
    }
}

/// The definition of `field` in `module`, if the module has it in this org.
pub(super) fn field(options: &SandboxOptions, module: &str, field: &str) -> Option<FieldDef> {
    if module == "Deals" && field == "Currency" && !options.multi_currency {
        return None;
    }
    catalogue(module)?.iter().find(|f| f.0 == field).copied()
}

/// The most characters a field of `data_type` holds (0 = not a text field).
pub(super) fn max_length(data_type: &str) -> usize {
    match data_type {
        "text" => 255,
        "textarea" => 32_000,
        _ => 0,
    }
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
    let options = state.options();
    let fields = defs
        .iter()
        .filter(|(api, ..)| field(options, module, api).is_some())
        .map(|(api, ty, ro, mandatory)| FieldMeta {
            api_name: (*api).to_owned(),
            display_label: api.replace('_', " "),
            data_type: (*ty).to_owned(),
            read_only: *ro,
            field_read_only: *ro,
            system_mandatory: *mandatory,
            length: Some(if *ty == "textarea" { 32_000 } else { 255 }),
            pick_list_values: if (module.as_str(), *api) == ("Deals", "Stage") {
                STAGES
                    .iter()
                    .map(|(s, _)| PickListValue {
                        display_value: (*s).to_owned(),
                        actual_value: (*s).to_owned(),
                    })
                    .collect()
            } else {
                Vec::new()
            },
        })
        .collect();
    Json(FieldsResponse { fields }).into_response()
}
