//! The one read of existing records that conflict rules (and the `Last_Name` default) need:
//! a COQL query `select id, <fields> from <Module> where (Email in ('…', …)) or (…) limit 200`
//! over every key of the batch. COQL allows 50 values per `in` and 25 criteria, so a batch of
//! 100 is two `in` lists OR-ed in one query; more rows than fit one page are paged by OFFSET.

use std::collections::{BTreeMap, HashMap};

use serde_json::Value;

use super::wire::cell_text;

/// Values per COQL `in (…)`.
pub const IN_VALUES: usize = 50;
/// Criteria per WHERE clause.
pub const MAX_CRITERIA: usize = 25;
/// Columns per SELECT.
pub const MAX_COLUMNS: usize = 50;
/// Rows per page: the most that still costs one credit.
pub const PAGE: usize = 200;

/// A record that already exists in Zoho, with the values the read asked for.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Existing {
    pub id: String,
    pub fields: BTreeMap<String, String>,
}

/// A string literal in COQL: single-quoted, backslash-escaped.
pub fn quote(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('\'');
    for c in value.chars() {
        if c == '\'' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('\'');
    out
}

/// `a or (b or (c …))`: COQL wants every pair of criteria in brackets.
fn or_all(criteria: &[String]) -> String {
    match criteria {
        [] => String::new(),
        [one] => one.clone(),
        [first, rest @ ..] => format!("({first}) or ({})", or_all(rest)),
    }
}

/// The WHERE clause for `keys` (field → values); `None` when there is nothing to look up or
/// the keys need more criteria than one query allows.
pub fn where_clause(keys: &BTreeMap<String, Vec<String>>) -> Option<String> {
    let mut criteria = Vec::new();
    for (field, values) in keys {
        for chunk in values.chunks(IN_VALUES) {
            let list: Vec<String> = chunk.iter().map(|v| quote(v)).collect();
            criteria.push(format!("{field} in ({})", list.join(", ")));
        }
    }
    if criteria.is_empty() || criteria.len() > MAX_CRITERIA {
        return None;
    }
    Some(or_all(&criteria))
}

/// The full query for one page.
pub fn query(module: &str, columns: &[String], where_clause: &str, offset: usize) -> String {
    let mut cols = vec!["id".to_owned()];
    for c in columns {
        if !cols.contains(c) && cols.len() < MAX_COLUMNS {
            cols.push(c.clone());
        }
    }
    let mut q = format!(
        "select {} from {module} where {where_clause} limit {PAGE}",
        cols.join(", ")
    );
    if offset > 0 {
        q.push_str(&format!(" offset {offset}"));
    }
    q
}

/// Rows of a COQL answer as [`Existing`] records.
pub fn rows(data: &[serde_json::Map<String, Value>]) -> Vec<Existing> {
    data.iter()
        .filter_map(|row| {
            let id = row.get("id").and_then(cell_text)?;
            let fields = row
                .iter()
                .filter(|(k, _)| k.as_str() != "id")
                .filter_map(|(k, v)| cell_text(v).map(|t| (k.clone(), t)))
                .collect();
            Some(Existing { id, fields })
        })
        .collect()
}

/// Finds, for each record's keys (in duplicate-check order), the existing record Zoho's upsert
/// will match: the first key whose value some row holds (compared case-insensitively).
pub fn match_existing(keys: &[Vec<(String, String)>], found: &[Existing]) -> Vec<Option<Existing>> {
    let mut index: HashMap<(String, String), usize> = HashMap::new();
    for (i, row) in found.iter().enumerate() {
        for (field, value) in &row.fields {
            index
                .entry((field.clone(), value.trim().to_lowercase()))
                .or_insert(i);
        }
    }
    keys.iter()
        .map(|record_keys| {
            record_keys.iter().find_map(|(field, value)| {
                index
                    .get(&(field.clone(), value.trim().to_lowercase()))
                    .map(|&i| found[i].clone())
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_quote_chunk_and_bracket() {
        assert_eq!(quote("o'neil@x.io"), r"'o\'neil@x.io'");
        let one = BTreeMap::from([("Email".to_owned(), vec!["a@x.io".to_owned()])]);
        assert_eq!(where_clause(&one).unwrap(), "Email in ('a@x.io')");
        let many: Vec<String> = (0..120).map(|n| format!("p{n}@x.io")).collect();
        let w = where_clause(&BTreeMap::from([("Email".to_owned(), many)])).unwrap();
        assert_eq!(w.matches(" in (").count(), 3);
        assert!(w.starts_with("(Email in ('p0@x.io'"), "{w}");
        assert!(w.contains(") or ((Email in ("), "{w}");
        assert_eq!(
            query(
                "Leads",
                &["Email".into(), "Phone".into()],
                "Email in ('a')",
                200
            ),
            "select id, Email, Phone from Leads where Email in ('a') limit 200 offset 200"
        );
        assert!(where_clause(&BTreeMap::new()).is_none());
    }

    #[test]
    fn matches_follow_duplicate_check_order_case_insensitively() {
        let found = rows(&[
            serde_json::from_str(r#"{"id":"1","Email":"A@x.io","Phone":null}"#).unwrap(),
            serde_json::from_str(r#"{"id":"2","Email":"b@x.io","Phone":"+1"}"#).unwrap(),
        ]);
        assert_eq!(found[0].fields.get("Phone"), None);
        let keys = vec![
            vec![("Email".to_owned(), "a@X.io".to_owned())],
            vec![
                ("Email".to_owned(), "new@x.io".to_owned()),
                ("Phone".to_owned(), "+1".to_owned()),
            ],
            vec![("Email".to_owned(), "c@x.io".to_owned())],
        ];
        let m = match_existing(&keys, &found);
        assert_eq!(m[0].as_ref().unwrap().id, "1");
        assert_eq!(m[1].as_ref().unwrap().id, "2");
        assert!(m[2].is_none());
    }
}
