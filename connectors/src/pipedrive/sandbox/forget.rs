//! `DELETE /api/v2/persons/{id}`: the person is gone (`{"success":true,"data":{"id":…}}`), and
//! unlinked from the deals it was on; an unknown or already deleted id is a 404.

use axum::{
    extract::{Path, State},
    response::Response,
};
use serde_json::json;

use super::{SandboxState, errors, persons::ok};

pub async fn delete_person(State(state): State<SandboxState>, Path(id): Path<String>) -> Response {
    let Ok(id) = id.parse::<u64>() else {
        return errors::validation("id: Expected number");
    };
    let mut w = state.world();
    w.stats.person_delete_calls += 1;
    if w.persons.remove(&id).is_none() {
        return errors::not_found("Person");
    }
    w.stats.persons_deleted += 1;
    for d in w.deals.values_mut() {
        d.participants.retain(|p| *p != id);
        if d.person_id == Some(id) {
            d.person_id = d.participants.first().copied();
        }
    }
    w.leads.retain(|l| l.person_id != id);
    ok(json!({"id": id}), None)
}
