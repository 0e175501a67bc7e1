//! Salesforce's per-record answers (SaveResult / UpsertResult, in request order) as one
//! [`ItemResult`] per record. A record refused for its data is permanent with Salesforce's own
//! words; a record that hit a lock or a busy server is worth another try.

use crate::sink::ItemResult;

use super::wire::{RecordError, SaveResult};

pub const NO_RESULT: &str = "Salesforce returned no result for this record";

/// Codes that are about the moment, not the data.
const TRANSIENT_CODES: &[&str] = &[
    "UNABLE_TO_LOCK_ROW",
    "SERVER_UNAVAILABLE",
    "REQUEST_RUNNING_TOO_LONG",
    "REQUEST_LIMIT_EXCEEDED",
    "QUERY_TIMEOUT",
    // Only with allOrNone=true, which tandem never sends; the record itself was fine.
    "ALL_OR_NONE_OPERATION_ROLLED_BACK",
];

pub fn is_transient(error: &RecordError) -> bool {
    TRANSIENT_CODES.contains(&error.status_code.as_str())
}

/// One result; `created` is what a success means when Salesforce doesn't say (creates: true,
/// updates: false; upserts say it themselves).
pub fn item(result: Option<&SaveResult>, created: bool) -> ItemResult {
    let Some(result) = result else {
        return ItemResult::Transient {
            message: NO_RESULT.to_owned(),
        };
    };
    if result.success {
        return match &result.id {
            Some(id) if !id.is_empty() => ItemResult::Done {
                remote_id: id.clone(),
                created: result.created.unwrap_or(created),
            },
            _ => ItemResult::Transient {
                message: "Salesforce reported success without a record id".to_owned(),
            },
        };
    }
    let message = if result.errors.is_empty() {
        "Salesforce refused the record without saying why".to_owned()
    } else {
        result
            .errors
            .iter()
            .map(RecordError::describe)
            .collect::<Vec<_>>()
            .join("; ")
    };
    if !result.errors.is_empty() && result.errors.iter().all(is_transient) {
        ItemResult::Transient { message }
    } else {
        ItemResult::Permanent { message }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failed(code: &str, message: &str, fields: &[&str]) -> SaveResult {
        SaveResult {
            id: None,
            success: false,
            errors: vec![RecordError::new(code, message, fields)],
            created: None,
        }
    }

    #[test]
    fn results_keep_salesforces_words_and_class() {
        let ok = SaveResult {
            id: Some("00Q1".into()),
            success: true,
            errors: vec![],
            created: Some(false),
        };
        assert_eq!(
            item(Some(&ok), true),
            ItemResult::Done {
                remote_id: "00Q1".into(),
                created: false
            }
        );
        assert_eq!(
            item(Some(&failed("REQUIRED_FIELD_MISSING", "Required fields are missing: [LastName]", &["LastName"])), true),
            ItemResult::Permanent {
                message: "REQUIRED_FIELD_MISSING: Required fields are missing: [LastName] (fields: LastName)".into()
            }
        );
        assert!(matches!(
            item(
                Some(&failed(
                    "UNABLE_TO_LOCK_ROW",
                    "unable to obtain exclusive access to this record",
                    &[]
                )),
                true
            ),
            ItemResult::Transient { .. }
        ));
        assert!(matches!(item(None, true), ItemResult::Transient { .. }));
    }
}
