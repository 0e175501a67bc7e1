//! The people of a page of deals: `POST /crm/v4/associations/deals/contacts/batch/read`, at most
//! 1,000 inputs per call, following each deal's own `paging.next.after` when it has more contacts
//! than one answer carries. A deal with no contact is not an error for tandem, though HubSpot
//! reports it as one (207, `OBJECT_NOT_FOUND` / `crm.associations.NO_ASSOCIATIONS_FOUND`); any
//! other per-deal error fails the poll, so a deal is never handed over without its people.

use std::collections::{BTreeMap, BTreeSet};

use reqwest::StatusCode;

use crate::{outcome::DealContact, sink::CallError};

use crate::hubspot::{
    client::{HubspotClient, classify},
    deals_wire::{AssociationReadInput, AssociationReadRequest, AssociationReadResponse},
    wire::StandardError,
};

/// HubSpot refuses larger association batch reads (since 2025-02-10).
pub const MAX_INPUTS: usize = 1000;
/// Follow-up rounds for deals with many contacts, before giving up on the page.
const MAX_ROUNDS: usize = 100;

fn no_associations(e: &StandardError) -> bool {
    e.sub_category_text()
        .is_some_and(|s| s.ends_with("NO_ASSOCIATIONS_FOUND"))
}

/// The ids an error is about (`fromObjectId`, or `ids`).
fn error_ids(e: &StandardError) -> impl Iterator<Item = &String> {
    ["fromObjectId", "ids"]
        .into_iter()
        .filter_map(|k| e.context.get(k))
        .flatten()
}

/// Contacts per deal id, for every id in `deal_ids` (empty when the deal has none).
pub async fn read(
    client: &HubspotClient,
    url: &reqwest::Url,
    deal_ids: &[String],
) -> Result<BTreeMap<String, Vec<DealContact>>, CallError> {
    let mut found: BTreeMap<String, Vec<DealContact>> =
        deal_ids.iter().map(|id| (id.clone(), Vec::new())).collect();
    let mut pending: Vec<AssociationReadInput> = found
        .keys()
        .map(|id| AssociationReadInput {
            id: id.clone(),
            after: None,
        })
        .collect();
    let mut rounds = 0;
    while !pending.is_empty() {
        rounds += 1;
        if rounds > MAX_ROUNDS {
            return Err(CallError::Transient {
                message: format!(
                    "HubSpot kept paging deal→contact associations after {MAX_ROUNDS} rounds; the poll will try again"
                ),
                retry_after: None,
            });
        }
        let mut following = Vec::new();
        for chunk in pending.chunks(MAX_INPUTS) {
            let answer = read_chunk(client, url, chunk).await?;
            for result in answer.results {
                let contacts = found.entry(result.from.id.clone()).or_default();
                let known: BTreeSet<String> =
                    contacts.iter().map(|c| c.remote_id.clone()).collect();
                contacts.extend(
                    result
                        .to
                        .into_iter()
                        .filter(|t| !known.contains(&t.to_object_id))
                        .map(|t| DealContact {
                            remote_id: t.to_object_id,
                            email: None,
                        }),
                );
                if let Some(next) = result.paging.and_then(|p| p.next) {
                    following.push(AssociationReadInput {
                        id: result.from.id,
                        after: Some(next.after),
                    });
                }
            }
            if let Some(e) = answer.errors.iter().find(|e| !no_associations(e)) {
                let ids: Vec<&String> = error_ids(e).collect();
                return Err(CallError::Transient {
                    message: format!(
                        "HubSpot could not read the contacts of deal(s) {ids:?}: {}",
                        e.describe()
                    ),
                    retry_after: None,
                });
            }
        }
        pending = following;
    }
    Ok(found)
}

async fn read_chunk(
    client: &HubspotClient,
    url: &reqwest::Url,
    inputs: &[AssociationReadInput],
) -> Result<AssociationReadResponse, CallError> {
    let request = AssociationReadRequest {
        inputs: inputs.to_vec(),
    };
    let answer = client
        .call(|token| {
            client
                .http()
                .post(url.clone())
                .bearer_auth(token)
                .json(&request)
        })
        .await?;
    if !(answer.status == StatusCode::OK || answer.status == StatusCode::MULTI_STATUS) {
        return Err(classify(answer.status, &answer.headers, &answer.body));
    }
    serde_json::from_slice(&answer.body).map_err(|e| CallError::Transient {
        message: format!(
            "HubSpot answered {} to the association read with a body tandem could not read: {e}",
            answer.status
        ),
        retry_after: None,
    })
}
