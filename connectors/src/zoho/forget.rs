//! `tandem forget` for Zoho: `DELETE /crm/v8/{module}?ids=…&wf_trigger=false` (≤ 100 ids, one
//! `data[]` answer per id, in order; 200 all deleted, 207 some, 400 none). A record Zoho no longer
//! has (`INVALID_DATA` naming the id) counts as deleted. Deleted records wait 60 days in Zoho's
//! recycle bin (docs/crm/zoho.md). No workflow runs on the deletion.

use crate::sink::{BatchOutcome, CallError, ForgetRecord, ItemResult};

use super::{
    MAX_BATCH, ZohoClient, client, limits,
    wire::{DataResponse, ZohoStatus},
};

const NO_RESULT: &str = "Zoho returned no result for this deletion";
/// Per-record codes that are about Zoho's moment, not the record.
const TRANSIENT_CODES: &[&str] = &["INTERNAL_ERROR", "TOO_MANY_REQUESTS", "LIMIT_EXCEEDED"];

fn item(status: Option<&ZohoStatus>, remote_id: &str) -> ItemResult {
    let done = ItemResult::Done {
        remote_id: remote_id.to_owned(),
        created: false,
    };
    match status {
        None => ItemResult::Transient {
            message: NO_RESULT.to_owned(),
        },
        Some(s) if s.is_success() => done,
        // "the related id given seems to be invalid": no such record (deleted, merged, converted).
        Some(s) if s.code == "INVALID_DATA" && s.details.contains_key("id") => done,
        Some(s) if TRANSIENT_CODES.contains(&s.code.as_str()) => ItemResult::Transient {
            message: s.describe(),
        },
        Some(s) => ItemResult::Permanent {
            message: s.describe(),
        },
    }
}

impl ZohoClient {
    /// Deletes every record of the connector's module by id; one result per record, in order.
    pub(super) async fn delete_records(
        &self,
        batch: &[ForgetRecord],
    ) -> Result<BatchOutcome, CallError> {
        let mut items: Vec<Option<ItemResult>> = batch
            .iter()
            .map(|r| {
                let digits =
                    !r.remote_id.is_empty() && r.remote_id.bytes().all(|b| b.is_ascii_digit());
                (!digits).then(|| ItemResult::Permanent {
                    message: format!("{:?} is not a Zoho record id (digits only)", r.remote_id),
                })
            })
            .collect();
        let sent: Vec<usize> = (0..batch.len()).filter(|&i| items[i].is_none()).collect();
        let module = self.module.api_name();
        let mut pause_for = None;
        for chunk in sent.chunks(MAX_BATCH) {
            let ids: Vec<&str> = chunk.iter().map(|&i| batch[i].remote_id.as_str()).collect();
            let ids = ids.join(",");
            let answer = self
                .call(&|base| {
                    self.http()
                        .delete(format!("{base}crm/v8/{module}"))
                        .query(&[("ids", ids.as_str()), ("wf_trigger", "false")])
                })
                .await?;
            let per_record = matches!(answer.status.as_u16(), 200 | 207 | 400)
                .then(|| serde_json::from_slice::<DataResponse>(&answer.body).ok())
                .flatten()
                .filter(|d| answer.status.is_success() || d.data.len() == chunk.len());
            let Some(decoded) = per_record else {
                return Err(client::classify(
                    answer.status,
                    &answer.headers,
                    &answer.body,
                ));
            };
            pause_for = limits::pause_after_success(&answer.headers).or(pause_for);
            for (n, &i) in chunk.iter().enumerate() {
                items[i] = Some(item(decoded.data.get(n), &batch[i].remote_id));
            }
        }
        Ok(BatchOutcome {
            items: items
                .into_iter()
                .map(|r| {
                    r.unwrap_or_else(|| ItemResult::Transient {
                        message: NO_RESULT.to_owned(),
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
        let status = |json: &str| serde_json::from_str::<ZohoStatus>(json).unwrap();
        let gone = status(
            r#"{"code":"INVALID_DATA","details":{"id":"1"},"message":"the related id given seems to be invalid","status":"error"}"#,
        );
        assert!(matches!(item(Some(&gone), "1"), ItemResult::Done { .. }));
        let other = status(
            r#"{"code":"INVALID_DATA","details":{"api_name":"Email"},"message":"invalid data","status":"error"}"#,
        );
        assert!(matches!(
            item(Some(&other), "1"),
            ItemResult::Permanent { .. }
        ));
        let busy =
            status(r#"{"code":"INTERNAL_ERROR","details":{},"message":"x","status":"error"}"#);
        assert!(matches!(
            item(Some(&busy), "1"),
            ItemResult::Transient { .. }
        ));
        assert!(matches!(item(None, "1"), ItemResult::Transient { .. }));
    }
}
