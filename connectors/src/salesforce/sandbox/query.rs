//! `GET /query?q=…` for the SOQL subset of [`super::soql`] and `GET /query/{cursor}` for the
//! next pages (`nextRecordsUrl`, Salesforce's query locator). The rows of a query are fixed when
//! it runs, as Salesforce's server-side cursor is; a locator answers once and then moves on, and
//! [`SandboxState::expire_query_locators`] drops them all, as Salesforce does after 15 idle minutes.

use axum::{
    Json,
    extract::{Path, Query, State},
    response::{IntoResponse, Response},
};
use serde_json::{Map, Value, json};

use super::{SandboxState, errors, soql};

#[derive(serde::Deserialize)]
pub struct Q {
    q: Option<String>,
}

pub async fn run(
    State(state): State<SandboxState>,
    Path(version): Path<String>,
    Query(q): Query<Q>,
) -> Response {
    state.world().stats.queries += 1;
    let Some(q) = q.q else {
        return errors::bad_request("MALFORMED_QUERY", "A query string has to be specified");
    };
    let parsed = match soql::parse(&q) {
        Ok(s) => s,
        Err((code, message)) => return errors::bad_request(code, message),
    };
    let page_size = state.options().query_page_size.max(1);
    let mut w = state.world();
    let run = soql::Ctx {
        world: &w,
        options: state.options(),
        version: &version,
    }
    .run(&parsed);
    let mut rows = match run {
        Ok(rows) => rows,
        Err((code, message)) => {
            drop(w);
            return errors::bad_request(code, message);
        }
    };
    let total = rows.len();
    let rest = if rows.len() > page_size {
        rows.split_off(page_size)
    } else {
        Vec::new()
    };
    let next = (!rest.is_empty()).then(|| {
        let cursor = w.new_cursor(rest);
        format!("/services/data/{version}/query/{cursor}-{page_size}")
    });
    drop(w);
    page(total, rows, next)
}

fn page(total: usize, rows: Vec<Map<String, Value>>, next: Option<String>) -> Response {
    let mut body = json!({"totalSize": total, "done": next.is_none(), "records": rows});
    if let Some(n) = next {
        body["nextRecordsUrl"] = Value::String(n);
    }
    Json(body).into_response()
}

pub async fn more(
    State(state): State<SandboxState>,
    Path((version, locator)): Path<(String, String)>,
) -> Response {
    let Some((cursor, offset)) = locator.rsplit_once('-') else {
        return errors::bad_request("INVALID_QUERY_LOCATOR", "invalid query locator");
    };
    let Ok(offset) = offset.parse::<usize>() else {
        return errors::bad_request("INVALID_QUERY_LOCATOR", "invalid query locator");
    };
    let page_size = state.options().query_page_size.max(1);
    let mut w = state.world();
    w.stats.queries += 1;
    let Some(mut rows) = w.cursors.remove(cursor) else {
        return errors::bad_request("INVALID_QUERY_LOCATOR", "invalid query locator");
    };
    let total = offset + rows.len();
    let rest = if rows.len() > page_size {
        rows.split_off(page_size)
    } else {
        Vec::new()
    };
    let next = (!rest.is_empty()).then(|| {
        w.cursors.insert(cursor.to_owned(), rest);
        format!(
            "/services/data/{version}/query/{cursor}-{}",
            offset + page_size
        )
    });
    drop(w);
    page(total, rows, next)
}
