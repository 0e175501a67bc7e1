//! Google's JSON for the two conversion APIs tandem speaks, shared with the sandbox:
//!
//! - Data Manager API `POST /v1/events:ingest` ([`IngestEventsRequest`]): one request names its
//!   destinations (account + conversion action) and carries up to 2,000 events.
//! - Google Ads API (legacy, grandfathered developer tokens only)
//!   `customers/{id}:uploadClickConversions` and `customers/{id}:uploadConversionAdjustments`,
//!   with `partialFailure: true` and per-row errors in `partialFailureError`.
//! - The standard Google error envelope both APIs answer with ([`ErrorEnvelope`]).
//!
//! Request types refuse unknown fields, as Google does ("Invalid JSON payload received. Unknown
//! name …"), so the sandbox catches a misspelled field instead of ignoring it.

use serde::{Deserialize, Serialize};

/// `accountType` of a Google Ads account in a Data Manager destination.
pub const GOOGLE_ADS_ACCOUNT: &str = "GOOGLE_ADS";
/// `encoding` of hashed user identifiers: lowercase hex SHA-256.
pub const HEX: &str = "HEX";

// ---------------------------------------------------------------------------------------------
// Data Manager API

/// `POST https://datamanager.googleapis.com/v1/events:ingest`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IngestEventsRequest {
    #[serde(default)]
    pub destinations: Vec<Destination>,
    #[serde(default)]
    pub events: Vec<Event>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consent: Option<Consent>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub validate_only: bool,
    /// `HEX` or `BASE64`; required when any event carries `userData`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encoding: Option<String>,
}

/// Where the events go: the Google Ads account (and the manager it is reached through) and the
/// conversion action (`productDestinationId`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Destination {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub login_account: Option<ProductAccount>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operating_account: Option<ProductAccount>,
    #[serde(default)]
    pub product_destination_id: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ProductAccount {
    #[serde(default)]
    pub account_type: String,
    #[serde(default)]
    pub account_id: String,
}

/// One conversion. Everything optional here so the sandbox can say which required field is
/// missing, the way Google does.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Event {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transaction_id: Option<String>,
    /// RFC 3339.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_timestamp: Option<String>,
    /// RFC 3339; set on adjustments.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_updated_timestamp: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_data: Option<UserData>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consent: Option<Consent>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ad_identifiers: Option<AdIdentifiers>,
    /// ISO 4217.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub currency: Option<String>,
    /// Major units.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conversion_value: Option<f64>,
    /// `WEB`, `APP`, `IN_STORE`, `PHONE`, `OTHER`; required for offline conversions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_source: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UserData {
    #[serde(default)]
    pub user_identifiers: Vec<UserIdentifier>,
}

/// A oneof: exactly one field set. Values are normalised, SHA-256 hashed and `encoding`-encoded.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UserIdentifier {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email_address: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone_number: Option<String>,
}

/// Click identifiers; Google takes one of gclid, gbraid and wbraid per event.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AdIdentifiers {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gclid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gbraid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wbraid: Option<String>,
}

/// Data Manager consent: `CONSENT_GRANTED` / `CONSENT_DENIED`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Consent {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ad_user_data: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ad_personalization: Option<String>,
}

/// A successful ingest: `{"requestId": "…"}` (empty for `validateOnly`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IngestEventsResponse {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

// ---------------------------------------------------------------------------------------------
// Google Ads API (legacy)

/// `POST /{version}/customers/{customer_id}:uploadClickConversions`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UploadClickConversionsRequest {
    #[serde(default)]
    pub conversions: Vec<ClickConversion>,
    /// Google: "should always be set to true".
    #[serde(default)]
    pub partial_failure: bool,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub validate_only: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ClickConversion {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gclid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gbraid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wbraid: Option<String>,
    /// `customers/{customer_id}/conversionActions/{id}`.
    #[serde(default)]
    pub conversion_action: String,
    /// `yyyy-mm-dd hh:mm:ss+|-hh:mm`.
    #[serde(default)]
    pub conversion_date_time: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conversion_value: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub currency_code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order_id: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub user_identifiers: Vec<LegacyUserIdentifier>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consent: Option<LegacyConsent>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LegacyUserIdentifier {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hashed_email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hashed_phone_number: Option<String>,
    /// `FIRST_PARTY`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_identifier_source: Option<String>,
}

/// Google Ads consent: `GRANTED` / `DENIED`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LegacyConsent {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ad_user_data: Option<String>,
}

/// `POST /{version}/customers/{customer_id}:uploadConversionAdjustments`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UploadConversionAdjustmentsRequest {
    #[serde(default)]
    pub conversion_adjustments: Vec<ConversionAdjustment>,
    #[serde(default)]
    pub partial_failure: bool,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub validate_only: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConversionAdjustment {
    #[serde(default)]
    pub conversion_action: String,
    /// `RETRACTION` or `RESTATEMENT`.
    #[serde(default)]
    pub adjustment_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order_id: Option<String>,
    /// `yyyy-mm-dd hh:mm:ss+|-hh:mm`; after the conversion's, and new for every restatement.
    #[serde(default)]
    pub adjustment_date_time: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restatement_value: Option<RestatementValue>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RestatementValue {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adjusted_value: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub currency_code: Option<String>,
}

/// The answer of both upload methods: one `results` entry per row (`{}` for a failed row) and
/// the failed rows' errors in `partialFailureError`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UploadResponse {
    #[serde(default)]
    pub results: Vec<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partial_failure_error: Option<Status>,
    /// int64, which proto3 JSON writes as a string.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_id: Option<serde_json::Value>,
}

/// One error of a `GoogleAdsFailure`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GoogleAdsError {
    /// `{"conversionUploadError": "UNPARSEABLE_GCLID"}`: one key naming the error family.
    #[serde(default)]
    pub error_code: serde_json::Map<String, serde_json::Value>,
    #[serde(default)]
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<ErrorLocation>,
}

impl GoogleAdsError {
    /// `UNPARSEABLE_GCLID` (the value of the one `errorCode` key).
    pub fn code(&self) -> String {
        self.error_code
            .values()
            .next()
            .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned))
            .unwrap_or_default()
    }

    /// The row this error is about: the index of the `conversions` /
    /// `conversion_adjustments` element of its field path.
    pub fn row(&self) -> Option<usize> {
        self.location
            .as_ref()?
            .field_path_elements
            .iter()
            .find(|e| {
                matches!(
                    e.field_name.as_str(),
                    "conversions" | "conversion_adjustments" | "conversionAdjustments"
                )
            })?
            .index
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ErrorLocation {
    #[serde(default)]
    pub field_path_elements: Vec<FieldPathElement>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FieldPathElement {
    #[serde(default)]
    pub field_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index: Option<usize>,
}

/// `type.googleapis.com/google.ads.googleads.v{N}.errors.GoogleAdsFailure`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GoogleAdsFailure {
    #[serde(default)]
    pub errors: Vec<GoogleAdsError>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

// ---------------------------------------------------------------------------------------------
// The standard Google error model

/// `{"error": {"code": 400, "message": "…", "status": "INVALID_ARGUMENT", "details": […]}}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ErrorEnvelope {
    #[serde(default)]
    pub error: Status,
}

/// `google.rpc.Status` as REST JSON.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Status {
    #[serde(default)]
    pub code: i64,
    #[serde(default)]
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub details: Vec<serde_json::Value>,
}

/// One `google.rpc.BadRequest.FieldViolation`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FieldViolation {
    #[serde(default)]
    pub field: String,
    #[serde(default)]
    pub description: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

fn detail_type(detail: &serde_json::Value) -> &str {
    detail.get("@type").and_then(|t| t.as_str()).unwrap_or("")
}

impl Status {
    /// Every field violation of the `google.rpc.BadRequest` details.
    pub fn field_violations(&self) -> Vec<FieldViolation> {
        self.details
            .iter()
            .filter(|d| detail_type(d).ends_with("google.rpc.BadRequest"))
            .filter_map(|d| d.get("fieldViolations"))
            .filter_map(|v| serde_json::from_value::<Vec<FieldViolation>>(v.clone()).ok())
            .flatten()
            .collect()
    }

    /// The `google.rpc.ErrorInfo` reason (`RATE_LIMIT_EXCEEDED`, `INVALID_ARGUMENT`, …).
    pub fn error_info_reason(&self) -> Option<String> {
        self.details
            .iter()
            .filter(|d| detail_type(d).ends_with("google.rpc.ErrorInfo"))
            .find_map(|d| d.get("reason")?.as_str().map(str::to_owned))
    }

    /// The errors of a `GoogleAdsFailure` detail (legacy API).
    pub fn google_ads_errors(&self) -> Vec<GoogleAdsError> {
        self.details
            .iter()
            .filter(|d| detail_type(d).ends_with("errors.GoogleAdsFailure"))
            .filter_map(|d| serde_json::from_value::<GoogleAdsFailure>(d.clone()).ok())
            .flat_map(|f| f.errors)
            .collect()
    }

    /// How long Google asks us to wait: `google.rpc.RetryInfo.retryDelay`, or a Google Ads
    /// `QuotaError`'s `details.quotaErrorDetails.retryDelay` (both Duration text like "30s").
    pub fn retry_delay(&self) -> Option<std::time::Duration> {
        fn find(v: &serde_json::Value) -> Option<&str> {
            match v {
                serde_json::Value::Object(m) => m
                    .get("retryDelay")
                    .and_then(|d| d.as_str())
                    .or_else(|| m.values().find_map(find)),
                serde_json::Value::Array(a) => a.iter().find_map(find),
                _ => None,
            }
        }
        let text = self.details.iter().find_map(find)?;
        let secs: f64 = text.trim().strip_suffix('s')?.parse().ok()?;
        (secs.is_finite() && secs >= 0.0).then(|| std::time::Duration::from_secs_f64(secs))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_details_are_read_by_type() {
        let body = serde_json::json!({"error": {"code": 400, "message": "There was a problem with the request.",
            "status": "INVALID_ARGUMENT", "details": [
                {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "INVALID_ARGUMENT",
                 "domain": "datamanager.googleapis.com", "metadata": {"requestId": "t-1"}},
                {"@type": "type.googleapis.com/google.rpc.BadRequest", "fieldViolations": [
                    {"field": "events[1].ad_identifiers", "description": "Only one click id.", "reason": "INVALID_EVENT"}]},
                {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "2.5s"}]}});
        let env: ErrorEnvelope = serde_json::from_value(body).unwrap();
        let v = env.error.field_violations();
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].field, "events[1].ad_identifiers");
        assert_eq!(v[0].reason.as_deref(), Some("INVALID_EVENT"));
        assert_eq!(
            env.error.error_info_reason().as_deref(),
            Some("INVALID_ARGUMENT")
        );
        assert_eq!(
            env.error.retry_delay(),
            Some(std::time::Duration::from_millis(2500))
        );
    }

    #[test]
    fn google_ads_failures_name_their_row() {
        let status: Status = serde_json::from_value(serde_json::json!({
            "code": 3, "message": "…",
            "details": [{"@type": "type.googleapis.com/google.ads.googleads.v26.errors.GoogleAdsFailure",
                "errors": [{"errorCode": {"conversionUploadError": "UNPARSEABLE_GCLID"}, "message": "bad gclid",
                    "location": {"fieldPathElements": [{"fieldName": "conversions", "index": 2}, {"fieldName": "gclid"}]}}],
                "requestId": "r"}]}))
        .unwrap();
        let errors = status.google_ads_errors();
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].code(), "UNPARSEABLE_GCLID");
        assert_eq!(errors[0].row(), Some(2));
    }

    #[test]
    fn requests_refuse_unknown_fields_like_google() {
        let bad = serde_json::json!({"destinations": [], "events": [{"transactionID": "x"}]});
        assert!(serde_json::from_value::<IngestEventsRequest>(bad).is_err());
        let skipped = serde_json::to_value(IngestEventsRequest::default()).unwrap();
        assert_eq!(
            skipped,
            serde_json::json!({"destinations": [], "events": []})
        );
    }
}
