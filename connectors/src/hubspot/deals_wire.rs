//! HubSpot's JSON bodies for the deal side, named after the OpenAPI schemas in `deals.json` and
//! `associations.json`: the CRM search (`PublicObjectSearchRequest` →
//! `CollectionResponseWithTotalSimplePublicObject`), deals batch update
//! (`BatchInputSimplePublicObjectBatchInput` → `BatchResponseSimplePublicObject[WithErrors]`) and
//! the v4 association batch read (`BatchInputPublicFetchAssociationsBatchRequest` →
//! `BatchResponsePublicAssociationMultiWithLabel[WithErrors]`). The client and the sandbox share
//! them; decoding is lenient (ids as strings or numbers, error fields optional), encoding exact.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize};

use super::wire::StandardError;

/// `PublicObjectSearchRequest`. The spec marks every field required, `after` included.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SearchRequest {
    pub filter_groups: Vec<FilterGroup>,
    /// HubSpot's docs (and the API) take `{"propertyName", "direction"}` objects; the spec's
    /// `string` items are a known error in it (see docs/crm/hubspot.md).
    pub sorts: Vec<Sort>,
    pub properties: Vec<String>,
    pub limit: u32,
    pub after: String,
}

/// `FilterGroup`: its filters are ANDed; the groups of a request are ORed.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FilterGroup {
    pub filters: Vec<Filter>,
}

/// `Filter`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Filter {
    pub property_name: String,
    pub operator: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub values: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub high_value: Option<String>,
}

impl Filter {
    pub fn single(property: &str, operator: &str, value: impl Into<String>) -> Filter {
        Filter {
            property_name: property.to_owned(),
            operator: operator.to_owned(),
            value: Some(value.into()),
            ..Filter::default()
        }
    }

    pub fn many(property: &str, operator: &str, values: Vec<String>) -> Filter {
        Filter {
            property_name: property.to_owned(),
            operator: operator.to_owned(),
            values: Some(values),
            ..Filter::default()
        }
    }
}

/// One sort rule (HubSpot applies one).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Sort {
    pub property_name: String,
    /// `ASCENDING` or `DESCENDING`.
    pub direction: String,
}

/// `CollectionResponseWithTotalSimplePublicObject`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SearchResponse {
    #[serde(default)]
    pub total: u64,
    #[serde(default)]
    pub results: Vec<DealObject>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paging: Option<Paging>,
}

/// `Paging` / `ForwardPaging`: no `next` means the last page.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Paging {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<NextPage>,
}

/// `NextPage`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct NextPage {
    pub after: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
}

/// `SimplePublicObject` as the deal endpoints return it; unset properties come as `null`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DealObject {
    #[serde(deserialize_with = "id_text")]
    pub id: String,
    #[serde(default)]
    pub properties: BTreeMap<String, Option<String>>,
    #[serde(default)]
    pub created_at: String,
    #[serde(default)]
    pub updated_at: String,
    #[serde(default)]
    pub archived: bool,
}

impl DealObject {
    /// A property's value, `None` when unset or blank.
    pub fn prop(&self, name: &str) -> Option<&str> {
        self.properties
            .get(name)?
            .as_deref()
            .map(str::trim)
            .filter(|v| !v.is_empty())
    }
}

/// `BatchInputSimplePublicObjectBatchInput`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BatchUpdateRequest {
    pub inputs: Vec<BatchUpdateInput>,
}

/// `SimplePublicObjectBatchInput`: `id` and `properties` are required.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BatchUpdateInput {
    pub id: String,
    pub properties: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object_write_trace_id: Option<String>,
}

/// `BatchResponseSimplePublicObject` (200) and `…WithErrors` (207) in one type.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BatchUpdateResponse {
    #[serde(default)]
    pub status: String,
    #[serde(default)]
    pub results: Vec<DealObject>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<StandardError>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub num_errors: Option<u32>,
    #[serde(default)]
    pub started_at: String,
    #[serde(default)]
    pub completed_at: String,
}

/// `BatchInputPublicFetchAssociationsBatchRequest`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct AssociationReadRequest {
    pub inputs: Vec<AssociationReadInput>,
}

/// `PublicFetchAssociationsBatchRequest`: `after` continues one object's associations.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AssociationReadInput {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<String>,
}

/// `BatchResponsePublicAssociationMultiWithLabel` (200) and `…WithErrors` (207).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AssociationReadResponse {
    #[serde(default)]
    pub status: String,
    #[serde(default)]
    pub results: Vec<AssociationResult>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<StandardError>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub num_errors: Option<u32>,
    #[serde(default)]
    pub started_at: String,
    #[serde(default)]
    pub completed_at: String,
}

/// `PublicAssociationMultiWithLabel`: one object's associations (a page of them when `paging`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct AssociationResult {
    pub from: ObjectId,
    #[serde(default)]
    pub to: Vec<AssociatedObject>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paging: Option<Paging>,
}

/// `PublicObjectId`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ObjectId {
    #[serde(deserialize_with = "id_text")]
    pub id: String,
}

/// `MultiAssociatedObjectWithLabel`. The spec types `toObjectId` as a string; HubSpot has been
/// seen sending a number, so both are read.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AssociatedObject {
    #[serde(deserialize_with = "id_text")]
    pub to_object_id: String,
    #[serde(default)]
    pub association_types: Vec<AssociationType>,
}

/// `AssociationSpecWithLabel`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AssociationType {
    pub category: String,
    pub type_id: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
}

/// An id HubSpot may send as a JSON string or number.
fn id_text<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    match serde_json::Value::deserialize(d)? {
        serde_json::Value::String(s) => Ok(s),
        serde_json::Value::Number(n) => Ok(n.to_string()),
        other => Err(serde::de::Error::custom(format!(
            "expected an id (string or number), got {other}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_read_as_strings_or_numbers() {
        let r: AssociationReadResponse = serde_json::from_str(
            r#"{"status":"COMPLETE","results":[{"from":{"id":"7"},"to":[{"toObjectId":901,"associationTypes":[{"category":"HUBSPOT_DEFINED","typeId":3,"label":null}]}]}],"startedAt":"x","completedAt":"y"}"#,
        )
        .unwrap();
        assert_eq!(r.results[0].from.id, "7");
        assert_eq!(r.results[0].to[0].to_object_id, "901");
        assert!(serde_json::from_str::<ObjectId>(r#"{"id":true}"#).is_err());
    }

    #[test]
    fn blank_and_null_properties_read_as_unset() {
        let d: DealObject = serde_json::from_str(
            r#"{"id":"1","properties":{"amount":null,"dealstage":" ","pipeline":"default"}}"#,
        )
        .unwrap();
        assert_eq!(d.prop("amount"), None);
        assert_eq!(d.prop("dealstage"), None);
        assert_eq!(d.prop("pipeline"), Some("default"));
        assert_eq!(d.prop("missing"), None);
    }
}
