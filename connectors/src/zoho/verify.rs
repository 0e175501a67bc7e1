//! `tandem check --connect` for Zoho: get a token (proves the credentials and the data centre),
//! read `GET /crm/v8/settings/fields?module=…`, and check every mapped field and every
//! duplicate-check field: it exists (else a did-you-mean), is writable, and has a type a string
//! can be written to. Never writes anything.

use reqwest::StatusCode;

use super::{ZohoClient, client, wire::FieldsResponse};

/// Zoho data types a rendered string is a valid value for.
const STRING_TYPES: &[&str] = &[
    "text", "textarea", "email", "phone", "website", "picklist", "date", "datetime",
];

/// Edit distance, for did-you-mean hints.
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur.push((prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

/// The closest known API name, if one is close enough to be the intended one.
pub fn suggest<'a>(wanted: &str, known: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    let w = wanted.to_lowercase().replace([' ', '-'], "_");
    known
        .map(|k| (distance(&w, &k.to_lowercase()), k))
        .filter(|(d, k)| *d <= 3.max(k.len() / 4))
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

pub async fn verify(client: &ZohoClient, fields: &[String]) -> Vec<String> {
    let module = client.module.api_name();
    let answer = match client
        .call(&|base| {
            client
                .http()
                .get(format!("{base}crm/v8/settings/fields"))
                .query(&[("module", module)])
        })
        .await
    {
        Ok(a) => a,
        Err(e) => {
            return vec![format!(
                "Zoho: {e}; check client_id, client_secret, refresh_token and data_center (docs/crm/zoho.md)"
            )];
        }
    };
    if answer.status != StatusCode::OK {
        let e = client::classify(answer.status, &answer.headers, &answer.body);
        let hint = if matches!(answer.status.as_u16(), 401 | 403) {
            "; the refresh token needs the scope ZohoCRM.settings.fields.READ"
        } else {
            ""
        };
        return vec![format!(
            "Zoho could not list the {module} fields: {e}{hint}"
        )];
    }
    let meta: FieldsResponse = match serde_json::from_slice(&answer.body) {
        Ok(m) => m,
        Err(e) => {
            return vec![format!(
                "Zoho answered the fields metadata with a body tandem could not read: {e}"
            )];
        }
    };
    let mut problems = Vec::new();
    let mut wanted: Vec<&String> = fields.iter().collect();
    for f in &client.duplicate_check_fields {
        if !wanted.contains(&f) {
            wanted.push(f);
        }
    }
    for name in wanted {
        let Some(field) = meta.fields.iter().find(|f| f.api_name == *name) else {
            let known = meta.fields.iter().map(|f| f.api_name.as_str());
            let hint = match suggest(name, known) {
                Some(s) => {
                    format!("did you mean \"{s}\"? Zoho field names are case-sensitive API names")
                }
                None => format!(
                    "use the field's API name (Setup > Developer Hub > APIs and SDKs > API Names > {module})"
                ),
            };
            problems.push(format!("Zoho {module} has no field \"{name}\"; {hint}"));
            continue;
        };
        if field.read_only || field.field_read_only {
            problems.push(format!(
                "Zoho {module} field \"{name}\" is read-only; remove it from the flow's fields"
            ));
        } else if !STRING_TYPES.contains(&field.data_type.as_str()) {
            problems.push(format!(
                "Zoho {module} field \"{name}\" has type {}, which tandem cannot write from text; map a text, email, phone, picklist, website, textarea or date field instead",
                field.data_type
            ));
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggestions_catch_case_and_typos_only() {
        let known = ["Email", "First_Name", "Last_Name", "Lead_Source", "Phone"];
        assert_eq!(suggest("email", known.iter().copied()), Some("Email"));
        assert_eq!(
            suggest("Frist_Name", known.iter().copied()),
            Some("First_Name")
        );
        assert_eq!(
            suggest("lead source", known.iter().copied()),
            Some("Lead_Source")
        );
        assert_eq!(suggest("Favourite_Colour", known.iter().copied()), None);
    }
}
