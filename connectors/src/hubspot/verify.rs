//! `tandem check --connect` for HubSpot: `GET /crm/v3/properties/contacts` proves the credentials
//! work (401/403 become a line saying what to fix), then every mapped property must exist (with a
//! did-you-mean from the portal's names and labels), must not be read-only
//! (`modificationMetadata.readOnlyValue`) and must not be calculated. HubSpot takes every other
//! property type as a string (numbers, dates, enumeration values, booleans) and validates the
//! value itself per write, so a bad value is one lead's permanent error, not a mapping error.

use crate::sink::CallError;

use super::wire::Property;

/// A failed properties call as one actionable line.
pub fn call_problem(e: &CallError) -> String {
    match e {
        CallError::Auth {
            status: 403,
            message,
        } => format!(
            "HubSpot refused to list contact properties ({message}); give the app the scopes crm.objects.contacts.read, crm.objects.contacts.write and crm.schemas.contacts.read (private app: Settings → Integrations → Private apps → Scopes; OAuth app: add the scopes and reinstall it)"
        ),
        CallError::Auth { message, .. } if message.contains("reconnect needed") => message.clone(),
        CallError::Auth { message, .. } => format!(
            "HubSpot refused the credentials ({message}); for a private app copy the access token again (Settings → Integrations → Private apps → Auth), for an OAuth app reinstall it and update refresh_token"
        ),
        CallError::RateLimited { message, .. } | CallError::Transient { message, .. } => format!(
            "could not verify the HubSpot mapping right now ({message}); run the check again"
        ),
        CallError::Permanent { message } => format!(
            "HubSpot refused the properties request ({message}); check that base_url points at HubSpot's API"
        ),
    }
}

/// One line per mapped field that can't be written.
pub fn check(properties: &[Property], fields: &[String]) -> Vec<String> {
    let mut problems = Vec::new();
    for field in fields {
        let Some(p) = properties.iter().find(|p| p.name == *field) else {
            let hint = match suggest(properties, field) {
                Some(name) => format!("did you mean `{name}`?"),
                None => "use the property's internal name (Settings → Properties → the property → internal name), or create it as a custom contact property".to_owned(),
            };
            problems.push(format!("HubSpot has no contact property `{field}`; {hint}"));
            continue;
        };
        if p.calculated || p.field_type.starts_with("calculation") {
            problems.push(format!(
                "HubSpot contact property `{field}` ({}) is calculated by HubSpot and can't be written; map the value to a plain property instead",
                p.label
            ));
        } else if p.modification_metadata.read_only_value {
            problems.push(format!(
                "HubSpot contact property `{field}` ({}) is read-only (HubSpot sets its value); map the value to a writable property instead",
                p.label
            ));
        }
    }
    problems
}

fn squash(s: &str) -> String {
    s.chars()
        .filter(|c| c.is_alphanumeric())
        .flat_map(char::to_lowercase)
        .collect()
}

/// The writable property whose name or label is closest to `field`, if any is close.
fn suggest<'a>(properties: &'a [Property], field: &str) -> Option<&'a str> {
    let wanted = squash(field);
    let limit = (wanted.chars().count() / 3).max(2);
    properties
        .iter()
        .filter(|p| !p.modification_metadata.read_only_value && !p.calculated)
        .map(|p| {
            let d = distance(&wanted, &squash(&p.name)).min(distance(&wanted, &squash(&p.label)));
            (d, p.name.as_str())
        })
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, name)| name)
}

/// Levenshtein distance.
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hubspot::wire::ModificationMetadata;

    fn prop(name: &str, label: &str, read_only: bool, calculated: bool) -> Property {
        Property {
            name: name.into(),
            label: label.into(),
            calculated,
            modification_metadata: ModificationMetadata {
                read_only_value: read_only,
                ..Default::default()
            },
            ..Default::default()
        }
    }

    #[test]
    fn misspelt_read_only_and_calculated_fields_are_reported() {
        let props = [
            prop("firstname", "First Name", false, false),
            prop("phone", "Phone Number", false, false),
            prop("hs_object_id", "Record ID", true, false),
            prop("hs_analytics_num_visits", "Number of Sessions", true, true),
        ];
        let fields: Vec<String> = [
            "firstname",
            "first_name",
            "phone_number",
            "hs_object_id",
            "hs_analytics_num_visits",
            "zzz",
        ]
        .map(String::from)
        .to_vec();
        let p = check(&props, &fields);
        assert_eq!(p.len(), 5, "{p:#?}");
        assert!(
            p[0].contains("`first_name`") && p[0].contains("did you mean `firstname`?"),
            "{}",
            p[0]
        );
        assert!(p[1].contains("did you mean `phone`?"), "by label: {}", p[1]);
        assert!(p[2].contains("read-only"), "{}", p[2]);
        assert!(p[3].contains("calculated"), "{}", p[3]);
        assert!(p[4].contains("internal name"), "{}", p[4]);
        assert!(check(&props, &["firstname".into(), "phone".into()]).is_empty());
    }

    #[test]
    fn levenshtein() {
        assert_eq!(distance("kitten", "sitting"), 3);
        assert_eq!(distance("", "abc"), 3);
        assert_eq!(distance("same", "same"), 0);
    }
}
