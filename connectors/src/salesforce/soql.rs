//! The SOQL tandem sends: `SELECT … FROM Object WHERE Field IN ('…') [OR Id IN ('…')]`, with
//! string literals escaped the way SOQL defines (backslash escapes for quotes, backslash and
//! control characters), and field names checked to be API names before they get near a query.

use super::is_api_name;

/// A SOQL string literal, quotes included.
pub fn quote(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('\'');
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

/// One `Field IN (…)` condition.
pub struct InClause<'a> {
    pub field: &'a str,
    pub values: Vec<String>,
}

/// `SELECT Id, <fields> FROM <object> WHERE <a> OR <b>`; `None` if nothing is asked for or a
/// name isn't an API name. `fields` are deduplicated case-insensitively, `Id` first.
pub fn select_in(object: &str, fields: &[&str], conditions: &[InClause<'_>]) -> Option<String> {
    let conditions: Vec<&InClause<'_>> =
        conditions.iter().filter(|c| !c.values.is_empty()).collect();
    if conditions.is_empty() || !is_api_name(object) {
        return None;
    }
    let mut select: Vec<&str> = vec!["Id"];
    for f in fields {
        if !is_api_name(f) {
            return None;
        }
        if !select.iter().any(|s| s.eq_ignore_ascii_case(f)) {
            select.push(f);
        }
    }
    let mut wheres = Vec::new();
    for c in conditions {
        if !is_api_name(c.field) {
            return None;
        }
        let list: Vec<String> = c.values.iter().map(|v| quote(v)).collect();
        wheres.push(format!("{} IN ({})", c.field, list.join(", ")));
    }
    Some(format!(
        "SELECT {} FROM {object} WHERE {}",
        select.join(", "),
        wheres.join(" OR ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_are_escaped() {
        assert_eq!(quote("o'neil@x.com"), r"'o\'neil@x.com'");
        assert_eq!(quote(r"a\b"), r"'a\\b'");
        assert_eq!(quote("a\nb\"c"), r#"'a\nb\"c'"#);
    }

    #[test]
    fn queries_select_id_first_and_join_conditions_with_or() {
        let q = select_in(
            "Lead",
            &["Email", "Phone", "email"],
            &[
                InClause {
                    field: "Email",
                    values: vec!["a@x.co".into(), "b'@x.co".into()],
                },
                InClause {
                    field: "Id",
                    values: vec!["00Q1".into()],
                },
            ],
        );
        assert_eq!(
            q.as_deref(),
            Some(
                r"SELECT Id, Email, Phone FROM Lead WHERE Email IN ('a@x.co', 'b\'@x.co') OR Id IN ('00Q1')"
            )
        );
        let empty = select_in(
            "Lead",
            &[],
            &[InClause {
                field: "Email",
                values: vec![],
            }],
        );
        assert_eq!(empty, None);
        assert_eq!(
            select_in(
                "Lead",
                &["x) OR (1"],
                &[InClause {
                    field: "Email",
                    values: vec!["a".into()]
                }]
            ),
            None
        );
    }
}
