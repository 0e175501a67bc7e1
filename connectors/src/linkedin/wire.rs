//! LinkedIn's JSON for the Conversions API (Rest.li 2.0), shared with the sandbox:
//! `POST /rest/conversionEvents` with `X-RestLi-Method: BATCH_CREATE` and `{"elements":[…]}`,
//! answered `{"elements":[{"status":201}, {"status":400,"error":{…}}, …]}` in input order, and
//! `GET /rest/conversions/{id}` for a conversion rule. Errors use LinkedIn's
//! `{"status","serviceErrorCode","code","message"}` ([`ErrorBody`]).

use serde::{Deserialize, Serialize};

pub use crate::linkedin_lead_gen::wire::ErrorBody;

/// `idType` of a SHA-256 of the lowercased email.
pub const SHA256_EMAIL: &str = "SHA256_EMAIL";
/// `idType` of the `li_fat_id` click id of LinkedIn's first-party ads tracking.
pub const FIRST_PARTY_TRACKING: &str = "LINKEDIN_FIRST_PARTY_ADS_TRACKING_UUID";
/// The prefix of a Conversions API conversion rule URN.
pub const RULE_URN_PREFIX: &str = "urn:lla:llaPartnerConversion:";

/// One conversion event. Fields default so the sandbox can answer a missing one per element,
/// as LinkedIn does; unknown fields are refused.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConversionEvent {
    /// `urn:lla:llaPartnerConversion:{rule id}`.
    #[serde(default)]
    pub conversion: String,
    /// Unix ms.
    #[serde(default)]
    pub conversion_happened_at: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conversion_value: Option<Money>,
    /// LinkedIn deduplicates on it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_id: Option<String>,
    #[serde(default)]
    pub user: User,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Money {
    #[serde(default)]
    pub currency_code: String,
    /// Decimal text, e.g. "1500.00".
    #[serde(default)]
    pub amount: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct User {
    #[serde(default)]
    pub user_ids: Vec<UserId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_info: Option<UserInfo>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UserId {
    #[serde(default)]
    pub id_type: String,
    #[serde(default)]
    pub id_value: String,
}

/// Plain-text person details LinkedIn can also match on (tandem does not send them).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UserInfo {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub company_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country_code: Option<String>,
}

/// The `BATCH_CREATE` body.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchCreate {
    #[serde(default)]
    pub elements: Vec<ConversionEvent>,
}

/// The `BATCH_CREATE` answer: one status per element, in input order.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct BatchCreateResponse {
    #[serde(default)]
    pub elements: Vec<ElementStatus>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ElementStatus {
    #[serde(default)]
    pub status: u16,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorBody>,
}

/// A conversion rule (`GET /rest/conversions/{id}`), the fields tandem checks.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConversionRule {
    #[serde(default)]
    pub id: i64,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub conversion_method: String,
    #[serde(default)]
    pub enabled: bool,
}
