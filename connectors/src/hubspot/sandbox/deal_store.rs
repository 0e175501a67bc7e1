//! The sandbox's deals: the portal's default pipeline, deals with HubSpot's own properties (as
//! strings, datetimes in ISO 8601 with milliseconds), their contact associations, and the CRM
//! search's filter and sort semantics over them.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::hubspot::deals_wire::{DealObject, Filter};

/// The default pipeline's stages: (id, label, closed, won).
pub const DEFAULT_STAGES: &[(&str, &str, bool, bool)] = &[
    (
        "appointmentscheduled",
        "Appointment Scheduled",
        false,
        false,
    ),
    ("qualifiedtobuy", "Qualified To Buy", false, false),
    (
        "presentationscheduled",
        "Presentation Scheduled",
        false,
        false,
    ),
    (
        "decisionmakerboughtin",
        "Decision Maker Bought-In",
        false,
        false,
    ),
    ("contractsent", "Contract Sent", false, false),
    ("closedwon", "Closed Won", true, true),
    ("closedlost", "Closed Lost", true, false),
];

/// Properties HubSpot returns on a search when none are asked for.
pub const DEFAULT_SEARCH_PROPERTIES: &[&str] = &[
    "amount",
    "closedate",
    "createdate",
    "dealname",
    "dealstage",
    "hs_lastmodifieddate",
    "hs_object_id",
    "pipeline",
];
/// Always part of a returned deal.
pub const ALWAYS: &[&str] = &["createdate", "hs_lastmodifieddate", "hs_object_id"];
/// Deal properties compared as times (ms) in filters and sorts.
const TIME_PROPERTIES: &[&str] = &["createdate", "closedate", "hs_lastmodifieddate"];
/// Deal properties compared as numbers.
const NUMBER_PROPERTIES: &[&str] = &["amount", "hs_object_id"];

/// One deal.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Deal {
    pub id: u64,
    pub properties: BTreeMap<String, String>,
    /// Contact ids, in association order.
    pub contacts: Vec<u64>,
    /// Property writes through the API (tandem's), as opposed to salesperson edits.
    pub api_writes: u32,
}

/// HubSpot's datetime text: ISO 8601, UTC, milliseconds.
pub fn iso(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms)
        .map(|t| t.strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string())
        .unwrap_or_default()
}

fn parse_time(text: &str) -> Option<i64> {
    crate::hubspot::outcomes::mapping::parse_ms(text)
}

/// (closed, won) for a stage id of the default pipeline; unknown stages are open.
pub fn stage_flags(stage: &str) -> (bool, bool) {
    DEFAULT_STAGES
        .iter()
        .find(|(id, ..)| *id == stage)
        .map_or((false, false), |(_, _, closed, won)| (*closed, *won))
}

impl Deal {
    pub fn modified_ms(&self) -> i64 {
        self.properties
            .get("hs_lastmodifieddate")
            .and_then(|t| parse_time(t))
            .unwrap_or_default()
    }

    /// Sets the stage (and what HubSpot derives from it), stamped `at_ms`.
    pub fn set_stage(&mut self, stage: &str, at_ms: i64) {
        let (closed, won) = stage_flags(stage);
        self.properties.insert("dealstage".into(), stage.into());
        self.properties
            .insert("hs_is_closed".into(), closed.to_string());
        self.properties
            .insert("hs_is_closed_won".into(), won.to_string());
        if closed {
            self.properties.insert("closedate".into(), iso(at_ms));
        }
        self.touch(at_ms);
    }

    pub fn touch(&mut self, at_ms: i64) {
        self.properties
            .insert("hs_lastmodifieddate".into(), iso(at_ms));
    }

    /// The deal as the API returns it, with `wanted` properties (HubSpot's defaults when empty).
    pub fn public(&self, wanted: &[String]) -> DealObject {
        let defaults: Vec<String>;
        let names: &[String] = if wanted.is_empty() {
            defaults = DEFAULT_SEARCH_PROPERTIES
                .iter()
                .map(|s| (*s).to_owned())
                .collect();
            &defaults
        } else {
            wanted
        };
        let properties = names
            .iter()
            .map(String::as_str)
            .chain(ALWAYS.iter().copied())
            .map(|n| (n.to_owned(), self.properties.get(n).cloned()))
            .collect();
        DealObject {
            id: self.id.to_string(),
            properties,
            created_at: self
                .properties
                .get("createdate")
                .cloned()
                .unwrap_or_default(),
            updated_at: self
                .properties
                .get("hs_lastmodifieddate")
                .cloned()
                .unwrap_or_default(),
            archived: false,
        }
    }

    /// The value a filter or sort compares, typed by the property.
    pub fn sort_key(&self, property: &str) -> Key {
        let Some(raw) = self.properties.get(property) else {
            return Key::Missing;
        };
        key_of(property, raw)
    }

    /// Whether the deal passes one filter.
    pub fn matches(&self, f: &Filter) -> bool {
        let have = self.sort_key(&f.property_name);
        let value = |v: &str| key_of(&f.property_name, v);
        let one = f.value.as_deref().map(value);
        let many: BTreeSet<Key> = f.values.iter().flatten().map(|v| value(v)).collect();
        match f.operator.as_str() {
            "HAS_PROPERTY" => have != Key::Missing,
            "NOT_HAS_PROPERTY" => have == Key::Missing,
            _ if have == Key::Missing => f.operator == "NEQ" || f.operator == "NOT_IN",
            "EQ" => one.is_some_and(|v| have == v),
            "NEQ" => one.is_some_and(|v| have != v),
            "GT" => one.is_some_and(|v| have > v),
            "GTE" => one.is_some_and(|v| have >= v),
            "LT" => one.is_some_and(|v| have < v),
            "LTE" => one.is_some_and(|v| have <= v),
            "BETWEEN" => {
                let high = f.high_value.as_deref().map(value);
                matches!((one, high), (Some(lo), Some(hi)) if have >= lo && have <= hi)
            }
            "IN" => many.contains(&have),
            "NOT_IN" => !many.contains(&have),
            "CONTAINS_TOKEN" | "NOT_CONTAINS_TOKEN" => {
                let token = f.value.as_deref().unwrap_or("").to_lowercase();
                let text = self
                    .properties
                    .get(&f.property_name)
                    .map(|s| s.to_lowercase())
                    .unwrap_or_default();
                let hit = text
                    .split(|c: char| !c.is_alphanumeric())
                    .any(|t| t == token.trim_matches('*'));
                hit == (f.operator == "CONTAINS_TOKEN")
            }
            _ => false,
        }
    }
}

/// A comparable property value: times and numbers by value, text case-insensitively.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Key {
    Missing,
    Number(i128),
    Text(String),
}

fn key_of(property: &str, raw: &str) -> Key {
    if TIME_PROPERTIES.contains(&property) {
        return parse_time(raw).map_or(Key::Missing, |ms| Key::Number(i128::from(ms)));
    }
    if NUMBER_PROPERTIES.contains(&property) {
        // Amounts compare in thousandths, enough for every currency's minor units.
        let minor = crate::outcome::to_minor_units(raw, "KWD");
        return minor.map_or(Key::Text(raw.to_lowercase()), |m| {
            Key::Number(i128::from(m))
        });
    }
    Key::Text(raw.trim().to_lowercase())
}

/// Every deal and the next id.
#[derive(Debug, Clone, Default)]
pub struct DealBook {
    pub deals: BTreeMap<u64, Deal>,
    pub next_id: u64,
}

impl DealBook {
    pub fn new(first_id: u64) -> Self {
        DealBook {
            deals: BTreeMap::new(),
            next_id: first_id,
        }
    }

    /// A new deal in `pipeline` at `stage`, created and stamped `at_ms`.
    #[allow(clippy::too_many_arguments)]
    pub fn create(
        &mut self,
        name: &str,
        pipeline: &str,
        stage: &str,
        amount: Option<&str>,
        currency: Option<&str>,
        contacts: Vec<u64>,
        at_ms: i64,
    ) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        let mut properties = BTreeMap::from([
            ("hs_object_id".to_owned(), id.to_string()),
            ("dealname".to_owned(), name.to_owned()),
            ("pipeline".to_owned(), pipeline.to_owned()),
            ("createdate".to_owned(), iso(at_ms)),
        ]);
        if let Some(a) = amount {
            properties.insert("amount".into(), a.into());
        }
        if let Some(c) = currency {
            properties.insert("deal_currency_code".into(), c.to_ascii_uppercase());
        }
        let mut deal = Deal {
            id,
            properties,
            contacts,
            api_writes: 0,
        };
        deal.set_stage(stage, at_ms);
        self.deals.insert(id, deal);
        id
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_compare_times_numbers_and_text_by_type() {
        let mut book = DealBook::new(100);
        let id = book.create(
            "Acme",
            "default",
            "closedwon",
            Some("1500.50"),
            Some("eur"),
            vec![],
            1_700_000_000_123,
        );
        let d = &book.deals[&id];
        assert_eq!(
            d.properties["hs_lastmodifieddate"],
            "2023-11-14T22:13:20.123Z"
        );
        assert_eq!(d.properties["hs_is_closed_won"], "true");
        assert_eq!(d.properties["deal_currency_code"], "EUR");
        let f = |p: &str, op: &str, v: &str| Filter::single(p, op, v);
        assert!(d.matches(&f("hs_lastmodifieddate", "GTE", "1700000000123")));
        assert!(!d.matches(&f("hs_lastmodifieddate", "GT", "1700000000123")));
        assert!(d.matches(&f("hs_lastmodifieddate", "EQ", "2023-11-14T22:13:20.123Z")));
        assert!(d.matches(&f("amount", "GT", "1500.4")));
        assert!(d.matches(&f("hs_object_id", "LT", "1000")));
        assert!(d.matches(&f("dealstage", "EQ", "ClosedWon")));
        assert!(d.matches(&Filter::many("hs_object_id", "NOT_IN", vec!["99".into()])));
        assert!(!d.matches(&Filter::many("hs_object_id", "NOT_IN", vec!["100".into()])));
        assert!(d.matches(&Filter::many("hs_object_id", "IN", vec!["100".into()])));
        assert!(d.matches(&f("dealname", "CONTAINS_TOKEN", "acme")));
        assert!(!d.matches(&f("description", "EQ", "x")));
        assert!(d.matches(&f("description", "NEQ", "x")));
        assert!(d.matches(&Filter {
            property_name: "description".into(),
            operator: "NOT_HAS_PROPERTY".into(),
            ..Default::default()
        }));
    }
}
