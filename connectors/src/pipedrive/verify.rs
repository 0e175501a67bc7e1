//! `tandem check --connect` for Pipedrive: one `GET /api/v1/personFields` (which also proves the
//! credentials), then every mapped property is checked: standard keys are always fine; anything
//! else must be a person field's key (custom fields have 40-character hash keys), writable, of a
//! type a text value fits. Unknown names get a did-you-mean from keys and display names.

use reqwest::Method;

use super::{
    client::{PipedriveClient, classify, decode},
    limits::Lane,
    mapping::STANDARD_KEYS,
    wire::PersonField,
};

/// Field types whose values are option ids, not free text.
const OPTION_TYPES: &[&str] = &["enum", "set"];
/// Field types a text value cannot be written to.
const UNWRITABLE_TYPES: &[&str] = &["picture", "user", "org", "people"];

pub async fn verify(c: &PipedriveClient, fields: &[String]) -> Vec<String> {
    let all = match person_fields(c).await {
        Ok(f) => f,
        Err(problem) => return vec![problem],
    };
    let mut problems = Vec::new();
    for wanted in fields {
        if STANDARD_KEYS.contains(&wanted.as_str()) {
            continue;
        }
        match all.iter().find(|f| f.key == *wanted) {
            Some(f) if !f.edit_flag && !f.key.chars().all(|ch| ch.is_ascii_hexdigit()) => problems.push(format!(
                "person field {wanted:?} ({}) is maintained by Pipedrive and cannot be written; remove it from the flow's fields",
                f.name
            )),
            Some(f) if UNWRITABLE_TYPES.contains(&f.field_type.as_str()) => problems.push(format!(
                "person field {wanted:?} ({}) is of type {}, which takes an id, not text; map it to a text field instead",
                f.name, f.field_type
            )),
            Some(f) if OPTION_TYPES.contains(&f.field_type.as_str()) => problems.push(format!(
                "person field {wanted:?} ({}) is a {} field: its value must be an option id (see GET /v1/personFields), not the option's label",
                f.name, f.field_type
            )),
            Some(_) => {}
            None => problems.push(unknown(wanted, &all)),
        }
    }
    problems
}

async fn person_fields(c: &PipedriveClient) -> Result<Vec<PersonField>, String> {
    let mut out = Vec::new();
    let mut start = 0u64;
    loop {
        let query = [("start", start.to_string()), ("limit", "500".to_owned())];
        let a = c
            .request::<()>(
                Method::GET,
                "api/v1/personFields",
                &query,
                None,
                Lane::General,
            )
            .await
            .map_err(|e| format!("could not read Pipedrive's person fields: {e}"))?;
        if !a.status.is_success() {
            let e = classify(&a);
            return Err(match a.status.as_u16() {
                401 => format!(
                    "Pipedrive refused the credentials ({e}); check api_token, or re-authorize the OAuth app"
                ),
                403 => format!(
                    "Pipedrive refused access to person fields ({e}); the user or app needs access to contacts"
                ),
                _ => format!("could not read Pipedrive's person fields: {e}"),
            });
        }
        let page = decode::<Vec<PersonField>>(&a).map_err(|e| e.to_string())?;
        out.extend(page.data.unwrap_or_default());
        match page.additional_data.and_then(|d| d.pagination) {
            Some(p) if p.more_items_in_collection => start = p.next_start.unwrap_or(start + 500),
            _ => return Ok(out),
        }
    }
}

fn unknown(wanted: &str, all: &[PersonField]) -> String {
    let lower = wanted.to_lowercase();
    // The display name instead of the key: say which key it is.
    if let Some(f) = all.iter().find(|f| f.name.to_lowercase() == lower) {
        return format!(
            "{wanted:?} is the name of a Pipedrive person field; map its key instead: \"{}\"",
            f.key
        );
    }
    let candidates = STANDARD_KEYS
        .iter()
        .map(|k| (k.to_string(), k.to_string()))
        .chain(all.iter().flat_map(|f| {
            [
                (f.key.clone(), f.key.clone()),
                (f.name.to_lowercase(), f.key.clone()),
            ]
        }));
    let best = candidates
        .map(|(text, key)| (distance(&lower, &text.to_lowercase()), key))
        .min_by_key(|(d, _)| *d);
    match best {
        Some((d, key)) if d <= 2.max(wanted.len() / 3) => format!(
            "{wanted:?} is not a Pipedrive person field; did you mean \"{key}\"? (custom fields are written by their key, see Settings → Data fields)"
        ),
        _ => format!(
            "{wanted:?} is not a Pipedrive person field; use one of {} or a custom field's key (Settings → Data fields → the field → API key)",
            STANDARD_KEYS.join(", ")
        ),
    }
}

/// Levenshtein distance, for short names.
fn distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            cur[j + 1] = (prev[j] + usize::from(ca != cb))
                .min(prev[j + 1] + 1)
                .min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(key: &str, name: &str) -> PersonField {
        PersonField {
            id: 1,
            key: key.into(),
            name: name.into(),
            field_type: "varchar".into(),
            edit_flag: true,
            bulk_edit_allowed: true,
        }
    }

    #[test]
    fn unknown_names_get_a_hint() {
        let all = [field(
            "4f6c1a0e2b9d8c7f6e5d4c3b2a1f0e9d8c7b6a5f",
            "Lead source",
        )];
        assert!(unknown("emial", &all).contains("did you mean \"email\""));
        assert!(
            unknown("Lead source", &all)
                .contains("map its key instead: \"4f6c1a0e2b9d8c7f6e5d4c3b2a1f0e9d8c7b6a5f\"")
        );
        assert!(
            unknown("lead sorce", &all)
                .contains("did you mean \"4f6c1a0e2b9d8c7f6e5d4c3b2a1f0e9d8c7b6a5f\"")
        );
        assert!(unknown("zzzzzzzz", &all).contains("use one of name, first_name"));
        assert_eq!(distance("kitten", "sitting"), 3);
    }
}
