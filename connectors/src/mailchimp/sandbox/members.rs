//! `GET /3.0/lists/{list_id}/members`: query checks, filtering, sorting, paging, and the
//! member JSON (shared with the write endpoints). The connection limit, faults and auth are
//! [`super::http::enter`].

use std::collections::HashMap;

use axum::{
    extract::{Path, Query, State},
    http::HeaderMap,
    response::Response,
};
use serde_json::{Value, json};

use super::{
    LIST_ID, MailchimpState, Member,
    http::{enter, invalid, json_answer, not_found},
};

fn iso(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms)
        .unwrap_or(jiff::Timestamp::UNIX_EPOCH)
        .strftime("%Y-%m-%dT%H:%M:%S+00:00")
        .to_string()
}

/// A tag's id: stable per name, as a list's tag ids are.
fn tag_id(name: &str) -> u64 {
    u64::from_str_radix(&super::md5::md5_hex(name.as_bytes())[..6], 16).unwrap_or(0)
}

pub(crate) fn member_json(m: &Member) -> Value {
    let pending = m.status == "pending";
    let tags: Vec<Value> = m
        .tags
        .iter()
        .map(|t| json!({"id": tag_id(t), "name": t}))
        .collect();
    json!({
        "id": m.id,
        "email_address": m.email,
        "unique_email_id": &m.id[..10],
        "contact_id": format!("{}{}", &m.id[16..], &m.id[..16]),
        "full_name": m.first_name,
        "web_id": 100_000 + m.seq,
        "email_type": "html",
        "status": m.status,
        "consents_to_one_to_one_messaging": true,
        "merge_fields": {
            "FNAME": m.first_name, "LNAME": m.last_name, "PHONE": "", "BIRTHDAY": "",
            "ADDRESS": "", "UTM_SOURCE": "newsletter"
        },
        "stats": {"avg_open_rate": 0, "avg_click_rate": 0},
        "ip_signup": "",
        "timestamp_signup": iso(m.signup_ms),
        "ip_opt": "",
        "timestamp_opt": if pending { String::new() } else { iso(m.signup_ms) },
        "member_rating": 2,
        "last_changed": iso(m.last_changed_ms),
        "language": "",
        "vip": false,
        "email_client": "",
        "location": {"latitude": 0, "longitude": 0, "gmtoff": 0, "dstoff": 0, "country_code": "", "timezone": ""},
        "source": "Hosted Signup Form",
        "tags_count": tags.len(),
        "tags": tags,
        "list_id": LIST_ID,
        "_links": []
    })
}

fn parse_time(v: Option<&String>) -> Result<Option<i64>, ()> {
    match v.map(|s| s.trim()).filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some(s) => s
            .parse::<jiff::Timestamp>()
            .map(|t| Some(t.as_millisecond()))
            .map_err(|_| ()),
    }
}

pub async fn list(
    State(state): State<MailchimpState>,
    Path(list_id): Path<String>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let admitted = match enter(&state, &headers).await {
        Ok(a) => a,
        Err(answer) => return answer,
    };
    let instance = admitted.instance.clone();
    if list_id != LIST_ID {
        return not_found(instance);
    }
    let number = |k: &str, default: u64| match q.get(k) {
        None => Ok(default),
        Some(v) => v.trim().parse::<u64>().map_err(|_| ()),
    };
    let Ok(count) = number("count", 10) else {
        return invalid("count", "Must be an integer", instance);
    };
    if count > 1000 {
        return invalid("count", "Must be 1000 or fewer", instance);
    }
    let Ok(offset) = number("offset", 0) else {
        return invalid("offset", "Must be an integer", instance);
    };
    let Ok(since) = parse_time(q.get("since_last_changed")) else {
        return invalid("since_last_changed", "Must be an ISO 8601 date", instance);
    };
    let Ok(before) = parse_time(q.get("before_last_changed")) else {
        return invalid("before_last_changed", "Must be an ISO 8601 date", instance);
    };
    let sort_field = q.get("sort_field").map(String::as_str);
    if !matches!(
        sort_field,
        None | Some("timestamp_opt" | "timestamp_signup" | "last_changed")
    ) {
        return invalid(
            "sort_field",
            "Must be one of timestamp_opt, timestamp_signup, last_changed",
            instance,
        );
    }
    let desc = match q.get("sort_dir").map(String::as_str) {
        None | Some("ASC") => false,
        Some("DESC") => true,
        Some(_) => return invalid("sort_dir", "Must be ASC or DESC", instance),
    };
    let status = q.get("status").cloned();

    let (page, total) = {
        let w = state.world();
        let mut hits: Vec<&Member> = w
            .members
            .iter()
            .filter(|m| since.is_none_or(|s| m.last_changed_ms > s))
            .filter(|m| before.is_none_or(|b| m.last_changed_ms < b))
            .filter(|m| status.as_ref().is_none_or(|s| &m.status == s))
            .collect();
        match sort_field {
            Some("last_changed") => hits.sort_by_key(|m| (m.last_changed_ms, m.seq)),
            Some(_) => hits.sort_by_key(|m| (m.signup_ms, m.seq)),
            None => hits.sort_by_key(|m| m.id.clone()),
        }
        if desc {
            hits.reverse();
        }
        let total = hits.len();
        let page: Vec<Value> = hits
            .into_iter()
            .skip(usize::try_from(offset).unwrap_or(usize::MAX))
            .take(usize::try_from(count).unwrap_or(usize::MAX))
            .map(member_json)
            .collect();
        (page, total)
    };
    let body = json!({"members": page, "list_id": LIST_ID, "total_items": total, "_links": []});
    json_answer(&body, admitted.drop_after)
}
