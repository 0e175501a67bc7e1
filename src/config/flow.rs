//! `[flows.NAME]`: a route from lead sources to one CRM, with the CRM properties to write.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, de};

/// `[flows.NAME]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlowConfig {
    /// Source connectors; a single name is accepted for a one-source flow.
    #[serde(default, deserialize_with = "one_or_many")]
    pub from: Vec<String>,
    /// The CRM connector that receives the leads.
    pub to: String,
    /// CRM property → template over `lead` (the canonical lead).
    #[serde(default)]
    pub fields: BTreeMap<String, FieldMapping>,
}

/// One CRM property: `email = "{{ lead.email }}"` or
/// `phone = { value = "{{ lead.phone }}", on_conflict = "fill_empty" }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FieldMapping {
    Template(String),
    Detailed {
        value: String,
        on_conflict: OnConflict,
    },
}

impl FieldMapping {
    /// The template source.
    pub fn value(&self) -> &str {
        match self {
            FieldMapping::Template(v) | FieldMapping::Detailed { value: v, .. } => v,
        }
    }

    pub fn on_conflict(&self) -> OnConflict {
        match self {
            FieldMapping::Template(_) => OnConflict::Overwrite,
            FieldMapping::Detailed { on_conflict, .. } => *on_conflict,
        }
    }
}

pub use tandem_connectors::OnConflict;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Detailed {
    value: String,
    #[serde(default)]
    on_conflict: OnConflict,
}

// Hand-written rather than `#[serde(untagged)]`: untagged buffers the input and its errors lose
// both the span and the reason ("data did not match any variant").
impl<'de> Deserialize<'de> for FieldMapping {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> de::Visitor<'de> for V {
            type Value = FieldMapping;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a template string or a table { value = \"…\", on_conflict = \"…\" }")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<FieldMapping, E> {
                Ok(FieldMapping::Template(v.to_owned()))
            }
            fn visit_map<A: de::MapAccess<'de>>(self, map: A) -> Result<FieldMapping, A::Error> {
                let d = Detailed::deserialize(de::value::MapAccessDeserializer::new(map))?;
                Ok(FieldMapping::Detailed {
                    value: d.value,
                    on_conflict: d.on_conflict,
                })
            }
        }
        d.deserialize_any(V)
    }
}

fn one_or_many<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    struct V;
    impl<'de> de::Visitor<'de> for V {
        type Value = Vec<String>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a connector name or a list of connector names")
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<Vec<String>, E> {
            Ok(vec![v.to_owned()])
        }
        fn visit_seq<A: de::SeqAccess<'de>>(self, seq: A) -> Result<Vec<String>, A::Error> {
            Vec::deserialize(de::value::SeqAccessDeserializer::new(seq))
        }
    }
    d.deserialize_any(V)
}
