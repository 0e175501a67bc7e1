//! The Google Ads API protocol (`api = "google_ads"`, grandfathered developer tokens only):
//! sends through `customers/{id}:uploadClickConversions`, restatements and retractions through
//! `customers/{id}:uploadConversionAdjustments`, both with `partialFailure: true` and
//! `orderId` = the conversion's dedup key.
//!
//! Per-row errors come back in `partialFailureError.details[].errors[]`, each located by
//! `fieldPathElements[{fieldName: "conversions" | "conversion_adjustments", index}]`. Google's
//! "already there" answers to a resend (`ORDER_ID_ALREADY_IN_USE`,
//! `CLICK_CONVERSION_ALREADY_EXISTS`, `CONVERSION_ALREADY_RETRACTED` for a retraction,
//! `RESTATEMENT_ALREADY_EXISTS`) mean the earlier call landed: the item is done. "Too recent"
//! answers are worth a later retry; every other row error is that item's `Permanent` with
//! Google's code and message.

use crate::{
    sink::{BatchOutcome, CallError, ItemResult},
    writeback::{Conversion, WritebackAction},
};

use super::{
    GoogleAdsWriteback,
    client::now_ms,
    errors,
    prepare::{ClickId, Prepared, google_ads_time, prepare},
    results::Results,
    wire::{
        ClickConversion, ConversionAdjustment, GoogleAdsError, LegacyConsent, LegacyUserIdentifier,
        RestatementValue, UploadClickConversionsRequest, UploadConversionAdjustmentsRequest,
        UploadResponse,
    },
};

/// Row errors that mean "the earlier request already did this".
const ALREADY_DONE: &[&str] = &[
    "ORDER_ID_ALREADY_IN_USE",
    "DUPLICATE_ORDER_ID",
    "CLICK_CONVERSION_ALREADY_EXISTS",
    "RESTATEMENT_ALREADY_EXISTS",
];
/// Row errors about the moment, not the row.
const RETRY_LATER: &[&str] = &[
    "TOO_RECENT_EVENT",
    "TOO_RECENT_CONVERSION_ACTION",
    "TOO_RECENT_CONVERSION",
    "CONVERSION_NOT_FOUND",
    "INTERNAL_ERROR",
    "TRANSIENT_ERROR",
];

pub(super) fn action_resource(client: &GoogleAdsWriteback, action_id: &str) -> String {
    format!(
        "customers/{}/conversionActions/{action_id}",
        client.customer_id
    )
}

/// One send as a `ClickConversion`.
pub(super) fn click_conversion(client: &GoogleAdsWriteback, p: &Prepared<'_>) -> ClickConversion {
    let c = p.conversion;
    let mut row = ClickConversion {
        conversion_action: action_resource(client, &p.action_id),
        conversion_date_time: google_ads_time(p.at_ms),
        conversion_value: p.value,
        currency_code: p.value.and(p.currency.clone()),
        order_id: Some(c.key.clone()),
        ..Default::default()
    };
    match &p.click {
        Some(ClickId::Gclid(v)) => row.gclid = Some(v.clone()),
        Some(ClickId::Gbraid(v)) => row.gbraid = Some(v.clone()),
        Some(ClickId::Wbraid(v)) => row.wbraid = Some(v.clone()),
        None => {}
    }
    let first_party = || Some("FIRST_PARTY".to_owned());
    row.user_identifiers
        .extend(p.hashed_email.clone().map(|h| LegacyUserIdentifier {
            hashed_email: Some(h),
            hashed_phone_number: None,
            user_identifier_source: first_party(),
        }));
    row.user_identifiers
        .extend(p.hashed_phone.clone().map(|h| LegacyUserIdentifier {
            hashed_email: None,
            hashed_phone_number: Some(h),
            user_identifier_source: first_party(),
        }));
    row.consent = c.person.consent.map(|g| LegacyConsent {
        ad_user_data: Some(if g { "GRANTED" } else { "DENIED" }.to_owned()),
    });
    row
}

/// One restatement or retraction, by order id.
fn adjustment(client: &GoogleAdsWriteback, p: &Prepared<'_>) -> ConversionAdjustment {
    let restate = p.conversion.action == WritebackAction::Restate;
    ConversionAdjustment {
        conversion_action: action_resource(client, &p.action_id),
        adjustment_type: if restate { "RESTATEMENT" } else { "RETRACTION" }.to_owned(),
        order_id: Some(p.conversion.key.clone()),
        adjustment_date_time: google_ads_time(p.at_ms),
        restatement_value: restate.then(|| RestatementValue {
            adjusted_value: p.value,
            currency_code: p.currency.clone(),
        }),
    }
}

fn row_result(p: &Prepared<'_>, errors: &[&GoogleAdsError]) -> ItemResult {
    let done = || ItemResult::Done {
        remote_id: p.conversion.key.clone(),
        created: false,
    };
    let codes: Vec<String> = errors.iter().map(|e| e.code()).collect();
    let retraction = p.conversion.action == WritebackAction::Retract;
    if codes.iter().any(|c| {
        ALREADY_DONE.contains(&c.as_str()) || (retraction && c == "CONVERSION_ALREADY_RETRACTED")
    }) {
        return done();
    }
    let text = errors
        .iter()
        .map(|e| format!("{}: {}", e.code(), e.message))
        .collect::<Vec<_>>()
        .join("; ");
    if codes.iter().all(|c| RETRY_LATER.contains(&c.as_str())) {
        return ItemResult::Transient {
            message: format!("Google Ads asks to try this conversion later: {text}"),
        };
    }
    ItemResult::Permanent {
        message: format!("Google Ads refused this conversion: {text}"),
    }
}

/// One result per row from an upload answer.
fn map_rows(rows: &[Prepared<'_>], answer: &UploadResponse, results: &mut Results) {
    let errors = answer
        .partial_failure_error
        .as_ref()
        .map(|s| s.google_ads_errors())
        .unwrap_or_default();
    let unlocated: Vec<&GoogleAdsError> = errors.iter().filter(|e| e.row().is_none()).collect();
    for (r, p) in rows.iter().enumerate() {
        let mine: Vec<&GoogleAdsError> = errors.iter().filter(|e| e.row() == Some(r)).collect();
        let empty_result = answer
            .results
            .get(r)
            .is_none_or(|v| v.as_object().is_some_and(|o| o.is_empty()));
        let result = if !mine.is_empty() {
            row_result(p, &mine)
        } else if empty_result && !unlocated.is_empty() {
            row_result(p, &unlocated)
        } else if empty_result && answer.partial_failure_error.is_some() {
            let message = answer
                .partial_failure_error
                .as_ref()
                .map(|s| s.message.clone())
                .unwrap_or_default();
            ItemResult::Permanent {
                message: format!("Google Ads refused this conversion: {message}"),
            }
        } else {
            ItemResult::Done {
                remote_id: p.conversion.key.clone(),
                created: p.conversion.action == WritebackAction::Send,
            }
        };
        results.set(p.index, result);
    }
}

async fn call<T: serde::Serialize>(
    client: &GoogleAdsWriteback,
    method: &str,
    body: &T,
) -> Result<UploadResponse, CallError> {
    let answer = client.post(&client.google_ads_url(method), body).await?;
    if !answer.status.is_success() {
        return Err(errors::classify(
            errors::Api::GoogleAds,
            answer.status,
            &answer.headers,
            &answer.body,
        ));
    }
    serde_json::from_slice::<UploadResponse>(&answer.body).map_err(|e| CallError::Transient {
        message: format!(
            "Google Ads answered {} with a body tandem could not read ({:?} error at line {}, column {})",
            answer.status,
            e.classify(),
            e.line(),
            e.column()
        ),
        retry_after: None,
    })
}

pub(super) async fn upload_click_conversions(
    client: &GoogleAdsWriteback,
    rows: &[Prepared<'_>],
    validate_only: bool,
) -> Result<UploadResponse, CallError> {
    let body = UploadClickConversionsRequest {
        conversions: rows.iter().map(|p| click_conversion(client, p)).collect(),
        partial_failure: true,
        validate_only,
    };
    call(client, "uploadClickConversions", &body).await
}

pub(super) async fn send(
    client: &GoogleAdsWriteback,
    batch: &[Conversion],
) -> Result<BatchOutcome, CallError> {
    let now = now_ms();
    let mut results = Results::new(batch.len());
    let mut uploads = Vec::new();
    let mut adjustments = Vec::new();
    for (i, c) in batch.iter().enumerate() {
        let send = c.action == WritebackAction::Send;
        match prepare(i, c, &client.actions, now, send) {
            Ok(p) if c.action == WritebackAction::Restate && p.value.is_none() => results.set(
                i,
                ItemResult::Permanent {
                    message: "a restatement needs the deal's new amount, and this one has none"
                        .to_owned(),
                },
            ),
            Ok(p) if send => uploads.push(p),
            Ok(p) => adjustments.push(p),
            Err(message) => results.set(i, ItemResult::Permanent { message }),
        }
    }
    if !uploads.is_empty() {
        let indexes: Vec<usize> = uploads.iter().map(|p| p.index).collect();
        match upload_click_conversions(client, &uploads, false).await {
            Ok(answer) => {
                results.answered();
                map_rows(&uploads, &answer, &mut results);
            }
            Err(e) => results.call_failed(&indexes, e)?,
        }
    }
    if !adjustments.is_empty() {
        let indexes: Vec<usize> = adjustments.iter().map(|p| p.index).collect();
        let body = UploadConversionAdjustmentsRequest {
            conversion_adjustments: adjustments.iter().map(|p| adjustment(client, p)).collect(),
            partial_failure: true,
            validate_only: false,
        };
        match call(client, "uploadConversionAdjustments", &body).await {
            Ok(answer) => {
                results.answered();
                map_rows(&adjustments, &answer, &mut results);
            }
            Err(e) => results.call_failed(&indexes, e)?,
        }
    }
    Ok(results.finish())
}
