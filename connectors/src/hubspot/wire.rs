//! HubSpot's JSON bodies for the contacts batch endpoints, named after the OpenAPI schemas in
//! `contacts.json`. The client and the sandbox share them so the two can't drift apart; decoding
//! is lenient (HubSpot says to treat every error field as optional), encoding is exact.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// `BatchInputSimplePublicObjectBatchInputUpsert`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UpsertRequest {
    pub inputs: Vec<UpsertInput>,
}

/// `SimplePublicObjectBatchInputUpsert`: `id` and `properties` are required.
#[derive(Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UpsertInput {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id_property: Option<String>,
    pub properties: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object_write_trace_id: Option<String>,
}

/// Personal data stays out of Debug output: only the shape is shown.
impl std::fmt::Debug for UpsertInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpsertInput")
            .field("id_property", &self.id_property)
            .field("properties", &self.properties.keys().collect::<Vec<_>>())
            .field("object_write_trace_id", &self.object_write_trace_id)
            .finish_non_exhaustive()
    }
}

/// `BatchResponseSimplePublicUpsertObject` (200) and `…WithErrors` (207) in one type.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UpsertResponse {
    pub status: String,
    #[serde(default)]
    pub results: Vec<UpsertResult>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<StandardError>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub num_errors: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requested_at: Option<String>,
    #[serde(default)]
    pub started_at: String,
    #[serde(default)]
    pub completed_at: String,
}

/// `SimplePublicUpsertObject`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UpsertResult {
    pub id: String,
    #[serde(default)]
    pub properties: BTreeMap<String, Option<String>>,
    #[serde(default)]
    pub created_at: String,
    #[serde(default)]
    pub updated_at: String,
    #[serde(default)]
    pub archived: bool,
    /// Whether this call created the contact.
    #[serde(default)]
    pub new: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object_write_trace_id: Option<String>,
}

/// `StandardError`: one failed input of a 207.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StandardError {
    #[serde(default)]
    pub status: String,
    #[serde(default)]
    pub category: String,
    #[serde(default)]
    pub message: String,
    #[serde(default)]
    pub context: BTreeMap<String, Vec<String>>,
    #[serde(default)]
    pub errors: Vec<ErrorDetail>,
    #[serde(default)]
    pub links: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The spec types it as an object; HubSpot sends a string such as
    /// `crm.associations.NO_ASSOCIATIONS_FOUND`, so any JSON is read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub_category: Option<serde_json::Value>,
}

/// `Error`: the body of a whole-call failure (4xx/5xx), and of 429s with their extra fields.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ErrorBody {
    #[serde(default)]
    pub status: String,
    #[serde(default)]
    pub message: String,
    #[serde(default)]
    pub correlation_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub_category: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<ErrorDetail>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub context: BTreeMap<String, Vec<String>>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub links: BTreeMap<String, String>,
    /// Only on 429s: `RATE_LIMIT`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_type: Option<String>,
    /// Only on 429s: `TEN_SECONDLY_ROLLING`, `SECONDLY` or `DAILY`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_name: Option<String>,
}

/// `ErrorDetail`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ErrorDetail {
    #[serde(default)]
    pub message: String,
    #[serde(default, rename = "in", skip_serializing_if = "Option::is_none")]
    pub in_: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    #[serde(
        default,
        rename = "subCategory",
        skip_serializing_if = "Option::is_none"
    )]
    pub sub_category: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub context: BTreeMap<String, Vec<String>>,
}

impl ErrorBody {
    /// HubSpot's message followed by its per-field details, which usually name the culprit.
    pub fn describe(&self) -> String {
        describe_error(self.category.as_deref(), &self.message, &self.errors)
    }
}

impl StandardError {
    /// Like [`ErrorBody::describe`], for one input's error inside a 207.
    pub fn describe(&self) -> String {
        describe_error(Some(&self.category), &self.message, &self.errors)
    }

    /// The `subCategory` when it is text.
    pub fn sub_category_text(&self) -> Option<&str> {
        self.sub_category.as_ref()?.as_str()
    }
}

/// `CATEGORY: message (detail; detail)`: the vendor's own words, nothing added.
fn describe_error(category: Option<&str>, message: &str, errors: &[ErrorDetail]) -> String {
    let mut text = match category {
        Some(c) if !c.is_empty() => format!("{c}: {message}"),
        _ => message.to_owned(),
    };
    let details: Vec<&str> = errors
        .iter()
        .map(|e| e.message.as_str())
        .filter(|m| !m.is_empty() && !message.contains(m))
        .collect();
    if !details.is_empty() {
        text.push_str(" (");
        text.push_str(&details.join("; "));
        text.push(')');
    }
    text
}

/// `PublicGdprDeleteInput`: permanently delete one contact, by id or by a unique property
/// (`idProperty: "email"`).
#[derive(Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GdprDeleteInput {
    pub object_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id_property: Option<String>,
}

/// The object id may be an email: personal data stays out of Debug output.
impl std::fmt::Debug for GdprDeleteInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("GdprDeleteInput(..)")
    }
}

/// `BatchReadInputSimplePublicObjectId`: read many contacts by one id property.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BatchReadRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id_property: Option<String>,
    pub inputs: Vec<ReadId>,
    pub properties: Vec<String>,
    pub properties_with_history: Vec<String>,
}

/// `SimplePublicObjectId`.
#[derive(Clone, Serialize, Deserialize)]
pub struct ReadId {
    pub id: String,
}

/// Ids are emails: personal data stays out of Debug output.
impl std::fmt::Debug for ReadId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ReadId(..)")
    }
}

/// `BatchResponseSimplePublicObject` (200) and `…WithErrors` (207, ids not found).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BatchReadResponse {
    #[serde(default)]
    pub status: String,
    #[serde(default)]
    pub results: Vec<PublicObject>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<StandardError>,
}

/// `SimplePublicObject`: HubSpot sends unset properties as `null`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PublicObject {
    pub id: String,
    #[serde(default)]
    pub properties: BTreeMap<String, Option<String>>,
}

/// `CollectionResponsePropertyNoPaging`: `GET /crm/v3/properties/contacts`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct PropertiesResponse {
    #[serde(default)]
    pub results: Vec<Property>,
}

/// `Property`: the fields tandem looks at, plus the ones the sandbox sends for realism.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Property {
    pub name: String,
    #[serde(default)]
    pub label: String,
    /// `string`, `number`, `date`, `datetime`, `enumeration`, `bool`, `phone_number`…
    #[serde(default, rename = "type")]
    pub type_: String,
    /// `text`, `textarea`, `number`, `select`, `booleancheckbox`, `calculation_equation`…
    #[serde(default)]
    pub field_type: String,
    #[serde(default)]
    pub group_name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub calculated: bool,
    #[serde(default)]
    pub has_unique_value: bool,
    #[serde(default)]
    pub hidden: bool,
    #[serde(default)]
    pub hubspot_defined: bool,
    #[serde(default)]
    pub form_field: bool,
    #[serde(default)]
    pub modification_metadata: ModificationMetadata,
}

/// `PropertyModificationMetadata`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ModificationMetadata {
    #[serde(default)]
    pub archivable: bool,
    #[serde(default)]
    pub read_only_definition: bool,
    #[serde(default)]
    pub read_only_value: bool,
}
