//! sObject Collections writes: `POST /composite/sobjects` (create), `PATCH /composite/sobjects`
//! (update by Id), `PATCH /composite/sobjects/{Object}/{ExternalIdField}` (upsert) and
//! `DELETE /composite/sobjects?ids=…&allOrNone=…` (delete by Id, ≤ 200, DeleteResults in order;
//! an unknown id is `ENTITY_IS_DELETED`, a malformed one `MALFORMED_ID`; deleting a Contact or an
//! Opportunity deletes its contact roles, as Salesforce's cascade does). Whole-request
//! refusals (over 200 records, unknown field, missing type) are 400 with an error array; everything
//! about one record is a per-record result in request order, `allOrNone` rolls the rest back.

#![allow(
    clippy::result_large_err,
    reason = "the Err is the HTTP answer itself, returned once per request"
)]

use std::collections::{BTreeMap, HashMap};

use axum::{
    Json,
    body::Bytes,
    extract::{Path, State},
    response::{IntoResponse, Response},
};
use serde_json::Value;

use crate::salesforce::wire::{FieldDescribe, RecordError, SaveResult, text};

use super::{SandboxState, errors, schema, state::World};

const MAX_RECORDS: usize = 200;

enum Kind {
    Create,
    Update,
    Upsert { object: String, field: String },
}

enum Op {
    Create(BTreeMap<String, String>),
    Update(String, BTreeMap<String, String>),
    Fail(Vec<RecordError>),
}

struct Parsed {
    all_or_none: bool,
    /// (object, fields with canonical names, Id if given)
    records: Vec<(String, BTreeMap<String, String>, Option<String>)>,
}

fn parse(body: &Bytes, kind: &Kind, state: &SandboxState) -> Result<Parsed, Response> {
    let value: Value = serde_json::from_slice(body).map_err(errors::json_parse)?;
    let all_or_none = value
        .get("allOrNone")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let Some(list) = value.get("records").and_then(Value::as_array) else {
        return Err(errors::bad_request(
            "JSON_PARSER_ERROR",
            "Cannot deserialize instance of SObjectCollection: records is required",
        ));
    };
    if list.len() > MAX_RECORDS {
        return Err(errors::bad_request(
            "EXCEEDED_ID_LIMIT",
            "record limit reached. cannot submit more than 200 records into this call",
        ));
    }
    let mut records = Vec::with_capacity(list.len());
    for r in list {
        let Some(obj) = r.as_object() else {
            return Err(errors::json_parse("records must be JSON objects"));
        };
        let Some(ty) = obj
            .get("attributes")
            .and_then(|a| a.get("type"))
            .and_then(Value::as_str)
        else {
            return Err(errors::bad_request(
                "INVALID_TYPE",
                "No SObject Type defined in the JSON",
            ));
        };
        let Some(object) = schema::OBJECTS.iter().find(|o| o.eq_ignore_ascii_case(ty)) else {
            return Err(errors::bad_request(
                "INVALID_TYPE",
                format!("sObject type '{ty}' is not supported."),
            ));
        };
        if let Kind::Upsert { object: uri, .. } = kind
            && !uri.eq_ignore_ascii_case(object)
        {
            return Err(errors::bad_request(
                "INVALID_TYPE",
                format!("The sObject type {object} of the record doesn't match the URI ({uri})"),
            ));
        }
        let describe = schema::fields(object, state.options()).unwrap_or_default();
        let mut fields = BTreeMap::new();
        let mut id = None;
        for (k, v) in obj {
            if k == "attributes" {
                continue;
            }
            let Some(d) = schema::find(&describe, k) else {
                return Err(errors::bad_request(
                    "INVALID_FIELD",
                    format!("No such column '{k}' on sobject of type {object}"),
                ));
            };
            let Some(v) = text(v).or_else(|| v.is_null().then(String::new)) else {
                return Err(errors::json_parse(format!("field {k} must be a scalar")));
            };
            if d.name == "Id" {
                id = Some(v);
            } else {
                fields.insert(d.name.clone(), v);
            }
        }
        records.push(((*object).to_owned(), fields, id));
    }
    Ok(Parsed {
        all_or_none,
        records,
    })
}

fn valid_email(s: &str) -> bool {
    let Some((local, domain)) = s.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && !domain.contains('@')
        && !s.chars().any(char::is_whitespace)
        && domain.contains('.')
        && domain.split('.').all(|p| !p.is_empty())
}

/// Errors about the values of one record, as Salesforce reports them per record.
fn value_errors(
    describe: &[FieldDescribe],
    fields: &BTreeMap<String, String>,
    create: bool,
) -> Vec<RecordError> {
    let mut errs = Vec::new();
    let locked: Vec<&str> = fields
        .keys()
        .filter_map(|k| schema::find(describe, k))
        .filter(|d| if create { !d.createable } else { !d.updateable })
        .map(|d| d.name.as_str())
        .collect();
    if !locked.is_empty() {
        errs.push(RecordError::new(
            "INVALID_FIELD_FOR_INSERT_UPDATE",
            format!(
                "Unable to create/update fields: {}. Please check the security settings of this field and verify \
                 that it is read/write for your profile or permission set.",
                locked.join(", ")
            ),
            &locked,
        ));
    }
    for (k, v) in fields {
        let Some(d) = schema::find(describe, k) else {
            continue;
        };
        if d.kind == "email" && !v.is_empty() && !valid_email(v.trim()) {
            errs.push(RecordError::new(
                "INVALID_EMAIL_ADDRESS",
                format!("{}: invalid email address: {v}", d.label),
                &[d.name.as_str()],
            ));
        } else if d.length > 0 && v.chars().count() > d.length as usize {
            errs.push(RecordError::new(
                "STRING_TOO_LONG",
                format!(
                    "{}: data value too large: {v} (max length={})",
                    d.label, d.length
                ),
                &[d.name.as_str()],
            ));
        }
    }
    let missing: Vec<&str> = describe
        .iter()
        .filter(|d| d.createable && !d.nillable && !d.defaulted_on_create)
        .filter(|d| match fields.get(&d.name) {
            Some(v) => v.trim().is_empty(),
            None => create,
        })
        .map(|d| d.name.as_str())
        .collect();
    if !missing.is_empty() {
        errs.push(RecordError::new(
            "REQUIRED_FIELD_MISSING",
            format!("Required fields are missing: [{}]", missing.join(", ")),
            &missing,
        ));
    }
    errs
}

fn with_defaults(object: &str, mut fields: BTreeMap<String, String>) -> BTreeMap<String, String> {
    let mut put = |k: &str, v: &str| {
        fields.entry(k.to_owned()).or_insert_with(|| v.to_owned());
    };
    if object == "Lead" {
        put("Status", "Open - Not Contacted");
        put("IsConverted", "false");
    }
    put("HasOptedOutOfEmail", "false");
    put("OwnerId", "005SB0000000001AAA");
    fields.retain(|_, v| !v.is_empty());
    fields
}

/// Decide what each record would do, without changing anything yet.
fn plan(w: &mut World, state: &SandboxState, kind: &Kind, parsed: &Parsed) -> Vec<Op> {
    let options = state.options();
    let item_rate = w.faults.item_failure_rate;
    // Upsert keys that occur more than once in this request.
    let mut key_count: HashMap<String, usize> = HashMap::new();
    if let Kind::Upsert { field, .. } = kind {
        for (_, f, _) in &parsed.records {
            if let Some(v) = f.get(field).filter(|v| !v.is_empty()) {
                *key_count.entry(v.to_lowercase()).or_default() += 1;
            }
        }
    }
    parsed
        .records
        .iter()
        .map(|(object, fields, id)| {
            let describe = schema::fields(object, options).unwrap_or_default();
            let target = match kind {
                Kind::Create => match id {
                    Some(_) => Err(vec![RecordError::new(
                        "INVALID_FIELD",
                        "cannot specify Id in an insert call",
                        &["Id"],
                    )]),
                    None => Ok(None),
                },
                Kind::Update => match id {
                    None => Err(vec![RecordError::new(
                        "MISSING_ARGUMENT",
                        "Id not specified in an update call",
                        &[],
                    )]),
                    Some(id) if !(id.len() == 15 || id.len() == 18) => Err(vec![RecordError::new(
                        "MALFORMED_ID",
                        format!("Id: id value of incorrect type: {id}"),
                        &["Id"],
                    )]),
                    Some(id) => match w.records.get(id) {
                        Some(r) if &r.object == object => Ok(Some(id.clone())),
                        _ => Err(vec![RecordError::new(
                            "ENTITY_IS_DELETED",
                            "entity is deleted",
                            &[],
                        )]),
                    },
                },
                Kind::Upsert { field, .. } => match fields.get(field).filter(|v| !v.is_empty()) {
                    None => Err(vec![RecordError::new(
                        "MISSING_ARGUMENT",
                        format!("{field} not specified"),
                        &[],
                    )]),
                    Some(v) if key_count.get(&v.to_lowercase()).copied().unwrap_or(0) > 1 => {
                        Err(vec![RecordError::new(
                            "DUPLICATE_VALUE",
                            format!("Duplicate external id specified: {v}"),
                            &[field.as_str()],
                        )])
                    }
                    Some(v) => match w.find(object, field, v).as_slice() {
                        [] => Ok(None),
                        [one] => Ok(Some(one.clone())),
                        many => Err(vec![RecordError::new(
                            "DUPLICATE_EXTERNAL_ID",
                            format!(
                                "{field}: more than one record found for external id field: [{}]",
                                many.join(", ")
                            ),
                            &[field.as_str()],
                        )]),
                    },
                },
            };
            let target = match target {
                Ok(t) => t,
                Err(e) => return Op::Fail(e),
            };
            let mut errs = value_errors(&describe, fields, target.is_none());
            if errs.is_empty()
                && target.is_none()
                && options.duplicate_rule
                && let Some(email) = fields.get("Email").filter(|e| !e.is_empty())
                && !w.find(object, "Email", email).is_empty()
            {
                errs.push(RecordError::new(
                    "DUPLICATES_DETECTED",
                    "Use one of these records?",
                    &[],
                ));
            }
            if errs.is_empty() && w.roll(item_rate) {
                errs.push(RecordError::new(
                    "FIELD_CUSTOM_VALIDATION_EXCEPTION",
                    "Sandbox validation rule: this record was refused (fault injection)",
                    &[],
                ));
            }
            match (errs.is_empty(), target) {
                (false, _) => Op::Fail(errs),
                (true, None) => Op::Create(with_defaults(object, fields.clone())),
                (true, Some(id)) => Op::Update(id, fields.clone()),
            }
        })
        .collect()
}

fn rolled_back() -> Vec<RecordError> {
    vec![RecordError::new(
        "ALL_OR_NONE_OPERATION_ROLLED_BACK",
        "Record rolled back because not all records were valid and the request was using AllOrNone header",
        &[],
    )]
}

async fn write(state: SandboxState, kind: Kind, body: Bytes) -> Response {
    let parsed = match parse(&body, &kind, &state) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let mut w = state.world();
    w.stats.writes += 1;
    w.stats.batch_sizes.push(parsed.records.len());
    let ops = plan(&mut w, &state, &kind, &parsed);
    let failed = ops.iter().any(|o| matches!(o, Op::Fail(_)));
    let upsert = matches!(kind, Kind::Upsert { .. });
    let results: Vec<SaveResult> = ops
        .into_iter()
        .zip(&parsed.records)
        .map(|(op, (object, _, _))| {
            let fail = |errors| SaveResult {
                id: None,
                success: false,
                errors,
                created: upsert.then_some(false),
            };
            match op {
                Op::Fail(errors) => fail(errors),
                _ if parsed.all_or_none && failed => fail(rolled_back()),
                Op::Create(fields) => SaveResult {
                    id: Some(w.create(object, fields)),
                    success: true,
                    errors: Vec::new(),
                    created: upsert.then_some(true),
                },
                Op::Update(id, fields) => {
                    w.update(&id, fields);
                    SaveResult {
                        id: Some(id),
                        success: true,
                        errors: Vec::new(),
                        created: upsert.then_some(false),
                    }
                }
            }
        })
        .collect();
    drop(w);
    Json(results).into_response()
}

#[derive(serde::Deserialize)]
pub struct DeleteQuery {
    ids: Option<String>,
    #[serde(rename = "allOrNone")]
    all_or_none: Option<bool>,
}

pub async fn delete(
    State(state): State<SandboxState>,
    axum::extract::Query(q): axum::extract::Query<DeleteQuery>,
) -> Response {
    let Some(ids) = q.ids.filter(|s| !s.trim().is_empty()) else {
        return errors::bad_request("MISSING_ARGUMENT", "ids parameter is required");
    };
    let ids: Vec<String> = ids.split(',').map(|s| s.trim().to_owned()).collect();
    if ids.len() > MAX_RECORDS {
        return errors::bad_request(
            "EXCEEDED_ID_LIMIT",
            "record limit reached. cannot submit more than 200 records into this call",
        );
    }
    let mut w = state.world();
    w.stats.writes += 1;
    w.stats.batch_sizes.push(ids.len());
    let verdicts: Vec<Result<(), RecordError>> = ids
        .iter()
        .map(|id| {
            if !(id.len() == 15 || id.len() == 18) || !id.bytes().all(|b| b.is_ascii_alphanumeric())
            {
                Err(RecordError::new(
                    "MALFORMED_ID",
                    format!("malformed id {id}"),
                    &[],
                ))
            } else if w.records.contains_key(id) {
                Ok(())
            } else {
                Err(RecordError::new(
                    "ENTITY_IS_DELETED",
                    "entity is deleted",
                    &[],
                ))
            }
        })
        .collect();
    let failed = verdicts.iter().any(Result::is_err);
    let rollback = q.all_or_none.unwrap_or(false) && failed;
    let results: Vec<SaveResult> = ids
        .iter()
        .zip(verdicts)
        .map(|(id, verdict)| match verdict {
            Err(e) => SaveResult {
                id: None,
                success: false,
                errors: vec![e],
                created: None,
            },
            Ok(()) if rollback => SaveResult {
                id: Some(id.clone()),
                success: false,
                errors: rolled_back(),
                created: None,
            },
            Ok(()) => {
                w.records.remove(id);
                // Contact roles go with their Contact or Opportunity.
                w.records.retain(|_, r| {
                    !(r.object == "OpportunityContactRole"
                        && (r.fields.get("ContactId") == Some(id)
                            || r.fields.get("OpportunityId") == Some(id)))
                });
                w.stats.deleted += 1;
                SaveResult {
                    id: Some(id.clone()),
                    success: true,
                    errors: Vec::new(),
                    created: None,
                }
            }
        })
        .collect();
    drop(w);
    Json(results).into_response()
}

pub async fn create(State(state): State<SandboxState>, body: Bytes) -> Response {
    write(state, Kind::Create, body).await
}

pub async fn update(State(state): State<SandboxState>, body: Bytes) -> Response {
    write(state, Kind::Update, body).await
}

pub async fn upsert(
    State(state): State<SandboxState>,
    Path((_version, object, field)): Path<(String, String, String)>,
    body: Bytes,
) -> Response {
    let Some(object) = schema::OBJECTS
        .iter()
        .find(|o| o.eq_ignore_ascii_case(&object))
    else {
        return errors::not_found();
    };
    let describe = schema::fields(object, state.options()).unwrap_or_default();
    let Some(d) = schema::find(&describe, &field).filter(|d| d.external_id) else {
        return errors::bad_request(
            "INVALID_FIELD",
            format!(
                "Field name provided, {field} is not an External ID or indexed field for {object}"
            ),
        );
    };
    let kind = Kind::Upsert {
        object: (*object).to_owned(),
        field: d.name.clone(),
    };
    write(state, kind, body).await
}
