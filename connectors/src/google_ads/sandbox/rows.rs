//! The Google Ads API's per-row rules, shared by both upload methods: what makes a click
//! conversion or an adjustment row fail (with Google's error family, code and message, located
//! by its `fieldPathElements`), and how an accepted row changes what Google holds.

use serde_json::{Value, json};

use super::state::{StoredConversion, World, value_text};
use crate::{
    google_ads::{
        identity::is_sha256_hex,
        wire::{ClickConversion, ConversionAdjustment},
    },
    sandbox::ReceivedWriteback,
};

const WINDOW_MS: i64 = 90 * 86_400_000;

/// One row error: (family, code, message, trailing field).
pub type RowError = (
    &'static str,
    &'static str,
    &'static str,
    Option<&'static str>,
);

/// `yyyy-mm-dd hh:mm:ss+|-hh:mm` → Unix ms.
pub fn parse_google_ads_time(text: &str) -> Option<i64> {
    let b = text.as_bytes();
    if b.len() != 25 || b[10] != b' ' || !matches!(b[19], b'+' | b'-') || b[22] != b':' {
        return None;
    }
    let rfc = format!("{}T{}", &text[..10], &text[11..]);
    rfc.parse::<jiff::Timestamp>()
        .ok()
        .map(|t| t.as_millisecond())
}

pub fn action_of<'a>(resource: &'a str, customer: &str) -> Option<&'a str> {
    let rest = resource.strip_prefix("customers/")?;
    let (c, id) = rest.split_once("/conversionActions/")?;
    (c == customer && !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit())).then_some(id)
}

pub fn check_upload(
    w: &World,
    customer: &str,
    actions: &[String],
    row: &ClickConversion,
    seen: &[&str],
    now: i64,
) -> Option<RowError> {
    let Some(action) = action_of(&row.conversion_action, customer) else {
        return Some((
            "conversionUploadError",
            "NO_CONVERSION_ACTION_FOUND",
            "The conversion action specified in the upload request cannot be found. Make sure it's available in this account.",
            Some("conversion_action"),
        ));
    };
    if !actions.iter().any(|a| a == action) {
        return Some((
            "conversionUploadError",
            "NO_CONVERSION_ACTION_FOUND",
            "The conversion action specified in the upload request cannot be found. Make sure it's available in this account.",
            Some("conversion_action"),
        ));
    }
    let Some(at) = parse_google_ads_time(&row.conversion_date_time) else {
        return Some((
            "dateError",
            "INVALID_FIELD_VALUES_IN_DATE_TIME",
            "The field values in the date time are invalid.",
            Some("conversion_date_time"),
        ));
    };
    let set = |v: &Option<String>| v.as_deref().is_some_and(|s| !s.is_empty());
    if set(&row.gbraid) && set(&row.wbraid) {
        return Some((
            "conversionUploadError",
            "GBRAID_WBRAID_BOTH_SET",
            "Both gbraid and wbraid are set; set only one.",
            None,
        ));
    }
    if set(&row.gclid) && (set(&row.gbraid) || set(&row.wbraid)) {
        return Some((
            "fieldError",
            "VALUE_MUST_BE_UNSET",
            "Only one of gclid, gbraid and wbraid may be set.",
            Some("gbraid"),
        ));
    }
    if row.user_identifiers.len() > 5 {
        return Some((
            "collectionSizeError",
            "TOO_MANY",
            "Too many user identifiers: at most 5.",
            Some("user_identifiers"),
        ));
    }
    for id in &row.user_identifiers {
        let value = match (&id.hashed_email, &id.hashed_phone_number) {
            (Some(v), None) | (None, Some(v)) => v,
            _ => {
                return Some((
                    "conversionUploadError",
                    "UNSUPPORTED_USER_IDENTIFIER",
                    "Only hashed_email and hashed_phone_number are supported, one per identifier.",
                    Some("user_identifiers"),
                ));
            }
        };
        if !is_sha256_hex(value) {
            return Some((
                "conversionUploadError",
                "INVALID_USER_IDENTIFIER",
                "The user identifier is not a SHA-256 hex digest of a normalized value.",
                Some("user_identifiers"),
            ));
        }
    }
    if !set(&row.gclid) && !set(&row.gbraid) && !set(&row.wbraid) && row.user_identifiers.is_empty()
    {
        return Some((
            "fieldError",
            "REQUIRED",
            "One of gclid, gbraid, wbraid or user_identifiers is required.",
            None,
        ));
    }
    if now - at > WINDOW_MS {
        return Some((
            "conversionUploadError",
            "EXPIRED_EVENT",
            "The imported event can't be recorded because its click occurred before this conversion's click-through window. Make sure you import the most recent data.",
            None,
        ));
    }
    if let Some(order) = row.order_id.as_deref() {
        if seen.contains(&order) {
            return Some((
                "conversionUploadError",
                "DUPLICATE_ORDER_ID",
                "The same order ID is used more than once in the request.",
                Some("order_id"),
            ));
        }
        if w.conversions
            .contains_key(&(action.to_owned(), order.to_owned()))
        {
            return Some((
                "conversionUploadError",
                "ORDER_ID_ALREADY_IN_USE",
                "The order ID was already used for another conversion of this conversion action.",
                Some("order_id"),
            ));
        }
    }
    None
}

pub fn check_adjustment(w: &World, customer: &str, row: &ConversionAdjustment) -> Option<RowError> {
    let Some(action) = action_of(&row.conversion_action, customer) else {
        return Some((
            "conversionAdjustmentUploadError",
            "INVALID_CONVERSION_ACTION",
            "The conversion action is invalid.",
            Some("conversion_action"),
        ));
    };
    let Some(at) = parse_google_ads_time(&row.adjustment_date_time) else {
        return Some((
            "dateError",
            "INVALID_FIELD_VALUES_IN_DATE_TIME",
            "The field values in the date time are invalid.",
            Some("adjustment_date_time"),
        ));
    };
    let restatement = match row.adjustment_type.as_str() {
        "RESTATEMENT" => true,
        "RETRACTION" => false,
        _ => {
            return Some((
                "conversionAdjustmentUploadError",
                "INVALID_ADJUSTMENT_TYPE",
                "Only RETRACTION and RESTATEMENT are supported here.",
                Some("adjustment_type"),
            ));
        }
    };
    if restatement
        && row
            .restatement_value
            .as_ref()
            .and_then(|r| r.adjusted_value)
            .is_none()
    {
        return Some((
            "fieldError",
            "REQUIRED",
            "restatement_value is required for restatements.",
            Some("restatement_value"),
        ));
    }
    if !restatement && row.restatement_value.is_some() {
        return Some((
            "fieldError",
            "VALUE_MUST_BE_UNSET",
            "restatement_value must not be set for retractions.",
            Some("restatement_value"),
        ));
    }
    let Some(order) = row.order_id.as_deref() else {
        return Some((
            "fieldError",
            "REQUIRED",
            "order_id is required to identify the conversion.",
            Some("order_id"),
        ));
    };
    let Some(stored) = w.conversions.get(&(action.to_owned(), order.to_owned())) else {
        return Some((
            "conversionAdjustmentUploadError",
            "CONVERSION_NOT_FOUND",
            "The conversion for this adjustment was not found.",
            None,
        ));
    };
    if stored.retracted {
        return Some((
            "conversionAdjustmentUploadError",
            "CONVERSION_ALREADY_RETRACTED",
            "The conversion has already been retracted.",
            None,
        ));
    }
    if at < stored.at_ms {
        return Some((
            "conversionAdjustmentUploadError",
            "ADJUSTMENT_PRECEDES_CONVERSION",
            "The adjustment date time precedes the conversion.",
            Some("adjustment_date_time"),
        ));
    }
    if restatement && stored.restatements.contains(&row.adjustment_date_time) {
        return Some((
            "conversionAdjustmentUploadError",
            "RESTATEMENT_ALREADY_EXISTS",
            "A restatement with this adjustment date time already exists.",
            None,
        ));
    }
    None
}

pub fn row_error(list: &str, index: usize, (family, code, message, field): RowError) -> Value {
    let mut path = vec![json!({"fieldName": list, "index": index})];
    if let Some(f) = field {
        path.push(json!({"fieldName": f}));
    }
    json!({"errorCode": {family: code}, "message": message, "location": {"fieldPathElements": path}})
}

pub fn record_upload(w: &mut World, customer: &str, row: &ClickConversion, now: i64) {
    let Some(action) = action_of(&row.conversion_action, customer) else {
        return;
    };
    let key = row.order_id.clone().unwrap_or_else(|| {
        format!(
            "{}@{}",
            row.gclid.clone().unwrap_or_default(),
            row.conversion_date_time
        )
    });
    let mut identifiers = Vec::new();
    for (k, v) in [
        ("gclid", &row.gclid),
        ("gbraid", &row.gbraid),
        ("wbraid", &row.wbraid),
    ] {
        if v.is_some() {
            identifiers.push(k.to_owned());
        }
    }
    for id in &row.user_identifiers {
        if id.hashed_email.is_some() {
            identifiers.push("hashed_email".to_owned());
        }
        if id.hashed_phone_number.is_some() {
            identifiers.push("hashed_phone".to_owned());
        }
    }
    w.conversions.insert(
        (action.to_owned(), key.clone()),
        StoredConversion {
            action_id: action.to_owned(),
            key: key.clone(),
            at_ms: parse_google_ads_time(&row.conversion_date_time).unwrap_or(now),
            value: row.conversion_value,
            currency: row.currency_code.clone(),
            retracted: false,
            restatements: Default::default(),
        },
    );
    w.received.push(ReceivedWriteback {
        key,
        name: action.to_owned(),
        value: row
            .conversion_value
            .map(|v| value_text(v, row.currency_code.as_deref())),
        currency: row.currency_code.clone(),
        adjustment: None,
        identifiers,
    });
}

pub fn record_adjustment(w: &mut World, customer: &str, row: &ConversionAdjustment) {
    let (Some(action), Some(order)) = (
        action_of(&row.conversion_action, customer),
        row.order_id.clone(),
    ) else {
        return;
    };
    let Some(stored) = w.conversions.get_mut(&(action.to_owned(), order.clone())) else {
        return;
    };
    let restated = row.restatement_value.as_ref();
    if row.adjustment_type == "RETRACTION" {
        stored.retracted = true;
    } else {
        stored.value = restated.and_then(|r| r.adjusted_value);
        if let Some(c) = restated.and_then(|r| r.currency_code.clone()) {
            stored.currency = Some(c);
        }
        stored.restatements.insert(row.adjustment_date_time.clone());
    }
    let currency = stored.currency.clone();
    w.received.push(ReceivedWriteback {
        key: order,
        name: action.to_owned(),
        value: restated
            .and_then(|r| r.adjusted_value)
            .map(|v| value_text(v, currency.as_deref())),
        currency: restated.and(currency),
        adjustment: Some(row.adjustment_type.clone()),
        identifiers: Vec::new(),
    });
}
