//! `POST /crm/v4/associations/{fromObjectType}/{toObjectType}/batch/read` between deals and
//! contacts (either way; names, singulars or type ids `0-3` / `0-1`): at most 1,000 inputs, each
//! object's associations paged by `after`, and the 207 HubSpot answers for an object without any
//! (`OBJECT_NOT_FOUND` / `crm.associations.NO_ASSOCIATIONS_FOUND`, also for unknown ids).

use std::collections::BTreeMap;

use axum::{
    Json,
    body::Bytes,
    extract::{Path, State},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
};
use serde_json::Value;

use crate::hubspot::{
    deals_wire::{
        AssociatedObject, AssociationReadResponse, AssociationResult, AssociationType, NextPage,
        ObjectId, Paging,
    },
    wire::{ErrorDetail, StandardError},
};

use super::{
    SandboxState,
    contacts::{as_text, cid, missing_fields, now, parse_json},
    errors,
};

pub const MAX_INPUTS: usize = 1000;
/// HubSpot-defined association type ids (deal→contact 3, contact→deal 4).
const DEAL_TO_CONTACT: i64 = 3;
const CONTACT_TO_DEAL: i64 = 4;

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Deal,
    Contact,
}

fn kind(name: &str) -> Option<Kind> {
    match name.to_ascii_lowercase().as_str() {
        "deals" | "deal" | "0-3" => Some(Kind::Deal),
        "contacts" | "contact" | "0-1" => Some(Kind::Contact),
        _ => None,
    }
}

fn none_found(from: Kind, to: Kind, id: &str) -> StandardError {
    let name = |k| if k == Kind::Deal { "deal" } else { "contact" };
    StandardError {
        status: "error".to_owned(),
        category: "OBJECT_NOT_FOUND".to_owned(),
        sub_category: Some(Value::String(
            "crm.associations.NO_ASSOCIATIONS_FOUND".to_owned(),
        )),
        message: format!("No {} is associated with {} {id}.", name(to), name(from)),
        context: BTreeMap::from([
            ("fromObjectId".to_owned(), vec![id.to_owned()]),
            ("fromObjectType".to_owned(), vec![name(from).to_owned()]),
            ("toObjectType".to_owned(), vec![name(to).to_owned()]),
        ]),
        ..Default::default()
    }
}

pub async fn batch_read(
    State(state): State<SandboxState>,
    Path((from, to)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let started = now();
    state.world().stats.association_read_calls += 1;
    let (Some(from_kind), Some(to_kind)) = (kind(&from), kind(&to)) else {
        let bad = if kind(&from).is_none() { from } else { to };
        return errors::validation(
            format!("Unable to infer object type from: {bad}"),
            Vec::new(),
            cid(&state),
        );
    };
    if from_kind == to_kind {
        return errors::validation(
            format!("No association types exist between {from} and {to}"),
            Vec::new(),
            cid(&state),
        );
    }
    let value = match parse_json(&state, &headers, &body) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let Some(inputs) = value.get("inputs").and_then(Value::as_array) else {
        return missing_fields(
            "BatchInputPublicFetchAssociationsBatchRequest",
            &["inputs"],
            &state,
        );
    };
    if inputs.len() > MAX_INPUTS {
        return errors::validation(
            format!(
                "Batch read of associations is limited to {MAX_INPUTS} inputs. Received {} inputs.",
                inputs.len()
            ),
            vec![ErrorDetail {
                message: format!("inputs must contain at most {MAX_INPUTS} items"),
                in_: Some("inputs".to_owned()),
                ..Default::default()
            }],
            cid(&state),
        );
    }
    let page_size = state.options().association_page_size.max(1);
    let mut response = AssociationReadResponse {
        status: "COMPLETE".to_owned(),
        started_at: started.to_string(),
        ..Default::default()
    };
    {
        let w = state.world();
        for input in inputs {
            let Some(id) = input.get("id").and_then(as_text).filter(|s| !s.is_empty()) else {
                drop(w);
                return missing_fields("PublicFetchAssociationsBatchRequest", &["id"], &state);
            };
            let offset = input
                .get("after")
                .and_then(as_text)
                .and_then(|a| a.parse::<usize>().ok())
                .unwrap_or(0);
            let n = id.parse::<u64>().ok();
            let linked: Vec<u64> = match (from_kind, n) {
                (Kind::Deal, Some(n)) => w
                    .deals
                    .deals
                    .get(&n)
                    .map(|d| d.contacts.clone())
                    .unwrap_or_default(),
                (Kind::Contact, Some(n)) => w
                    .deals
                    .deals
                    .values()
                    .filter(|d| d.contacts.contains(&n))
                    .map(|d| d.id)
                    .collect(),
                _ => Vec::new(),
            };
            if linked.is_empty() {
                response.errors.push(none_found(from_kind, to_kind, &id));
                continue;
            }
            let end = (offset + page_size).min(linked.len());
            let type_id = if from_kind == Kind::Deal {
                DEAL_TO_CONTACT
            } else {
                CONTACT_TO_DEAL
            };
            response.results.push(AssociationResult {
                from: ObjectId { id },
                to: linked
                    .get(offset..end)
                    .unwrap_or_default()
                    .iter()
                    .map(|other| AssociatedObject {
                        to_object_id: other.to_string(),
                        association_types: vec![AssociationType {
                            category: "HUBSPOT_DEFINED".to_owned(),
                            type_id,
                            label: None,
                        }],
                    })
                    .collect(),
                paging: (end < linked.len()).then(|| Paging {
                    next: Some(NextPage {
                        after: end.to_string(),
                        link: None,
                    }),
                }),
            });
        }
    }
    response.completed_at = now().to_string();
    if response.errors.is_empty() {
        (StatusCode::OK, Json(response)).into_response()
    } else {
        response.num_errors = Some(u32::try_from(response.errors.len()).unwrap_or(u32::MAX));
        (StatusCode::MULTI_STATUS, Json(response)).into_response()
    }
}
