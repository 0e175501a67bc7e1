//! `tandem forget` for Salesforce: `DELETE /composite/sobjects?ids=…&allOrNone=false` (≤ 200 ids,
//! one DeleteResult per id, in order). A record Salesforce no longer has (`ENTITY_IS_DELETED`, or
//! `INVALID_CROSS_REFERENCE_KEY` for an id that never existed) counts as deleted. A whole-call 404
//! does not: on this endpoint it means a wrong base URL or API version, and marking a deletion done
//! on that would be a silent failure. Salesforce keeps deleted records in the Recycle Bin for 15
//! days (docs/crm/salesforce.md).

use reqwest::Method;

use crate::sink::{BatchOutcome, CallError, ForgetRecord, ItemResult};

use super::{
    MAX_BATCH, SalesforceClient,
    deal_fields::is_record_id,
    results,
    wire::{RecordError, SaveResult},
};

/// Per-record codes that mean "no such record": the deletion is already done.
const GONE: &[&str] = &["ENTITY_IS_DELETED", "INVALID_CROSS_REFERENCE_KEY"];

fn item(result: Option<&SaveResult>, remote_id: &str) -> ItemResult {
    let gone = |r: &SaveResult| {
        !r.success
            && !r.errors.is_empty()
            && r.errors
                .iter()
                .all(|e: &RecordError| GONE.contains(&e.status_code.as_str()))
    };
    match result {
        Some(r) if r.success || gone(r) => ItemResult::Done {
            remote_id: remote_id.to_owned(),
            created: false,
        },
        other => match results::item(other, false) {
            ItemResult::Done { .. } => ItemResult::Transient {
                message: "Salesforce reported a deletion as an update".to_owned(),
            },
            refused => refused,
        },
    }
}

impl SalesforceClient {
    /// Deletes every record by id; one result per record, in order.
    pub(super) async fn delete_records(
        &self,
        batch: &[ForgetRecord],
    ) -> Result<BatchOutcome, CallError> {
        let mut items: Vec<Option<ItemResult>> = batch
            .iter()
            .map(|r| {
                (!is_record_id(&r.remote_id)).then(|| ItemResult::Permanent {
                    message: format!(
                        "{:?} is not a Salesforce record id (15 or 18 letters and digits)",
                        r.remote_id
                    ),
                })
            })
            .collect();
        let sent: Vec<usize> = (0..batch.len()).filter(|&i| items[i].is_none()).collect();
        let mut pause_for = None;
        let need = format!("delete on {}", self.settings.object.name());
        let path = self.data_path("composite/sobjects");
        for chunk in sent.chunks(MAX_BATCH) {
            let ids: Vec<&str> = chunk.iter().map(|&i| batch[i].remote_id.as_str()).collect();
            let ids = ids.join(",");
            let answer = self
                .call_needing(
                    &need,
                    Method::DELETE,
                    &path,
                    &[("ids", &ids), ("allOrNone", "false")],
                    None,
                )
                .await?;
            let deleted: Vec<SaveResult> = Self::decode(&answer)?;
            pause_for = self.pause_for(&answer.headers).or(pause_for);
            for (n, &i) in chunk.iter().enumerate() {
                items[i] = Some(item(deleted.get(n), &batch[i].remote_id));
            }
        }
        Ok(BatchOutcome {
            items: items
                .into_iter()
                .map(|r| {
                    r.unwrap_or_else(|| ItemResult::Transient {
                        message: results::NO_RESULT.to_owned(),
                    })
                })
                .collect(),
            pause_for,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_records_count_as_deleted_and_other_refusals_keep_their_words() {
        let failed = |code: &str| SaveResult {
            id: None,
            success: false,
            errors: vec![RecordError::new(code, "m", &[])],
            created: None,
        };
        let done = ItemResult::Done {
            remote_id: "00Q".into(),
            created: false,
        };
        assert_eq!(item(Some(&failed("ENTITY_IS_DELETED")), "00Q"), done);
        assert_eq!(
            item(Some(&failed("INVALID_CROSS_REFERENCE_KEY")), "00Q"),
            done
        );
        assert_eq!(
            item(Some(&failed("INSUFFICIENT_ACCESS_OR_READONLY")), "00Q"),
            ItemResult::Permanent {
                message: "INSUFFICIENT_ACCESS_OR_READONLY: m".into()
            }
        );
        assert!(matches!(
            item(Some(&failed("UNABLE_TO_LOCK_ROW")), "00Q"),
            ItemResult::Transient { .. }
        ));
        assert!(matches!(item(None, "00Q"), ItemResult::Transient { .. }));
    }
}
