//! The SOQL subset the sandbox understands, parsed and evaluated against its records:
//!
//! ```sql
//! SELECT f, Rel.f, (SELECT f, Rel.f FROM ChildRelationship), … FROM Object
//! [WHERE cond [AND|OR cond …], with NOT and brackets]
//! [ORDER BY f [ASC|DESC], …] [LIMIT n]
//! ```
//!
//! where a condition is `f op literal` (`= != < <= > >=`) or `f [NOT] IN (literal, …)`, and a
//! literal is a quoted string (SOQL's backslash escapes), a number, `true`/`false`/`null` or an
//! unquoted datetime (`2026-03-01T10:00:00Z`, `…+01:00`) or date (`2026-03-01`). As in
//! Salesforce, text compares case-insensitively for equality, date and datetime fields take only
//! unquoted date literals, and mixing AND and OR without brackets is refused.

use std::cmp::Ordering;

use serde_json::{Map, Value, json};

use crate::salesforce::wire::FieldDescribe;

use super::{
    SandboxOptions, SfRecord, schema,
    state::{World, sf_datetime},
};

/// A refusal: (errorCode, message), answered as 400.
pub type Refusal = (&'static str, String);

fn malformed(message: impl Into<String>) -> Refusal {
    ("MALFORMED_QUERY", message.into())
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Word(String),
    Str(String),
    /// Digits, dates and datetimes, classified when used.
    Bare(String),
    Comma,
    Open,
    Close,
    Op(&'static str),
}

fn lex(q: &str) -> Result<Vec<Tok>, Refusal> {
    let mut out = Vec::new();
    let mut chars = q.chars().peekable();
    while let Some(&c) = chars.peek() {
        match c {
            c if c.is_whitespace() => {
                chars.next();
            }
            ',' | '(' | ')' => {
                chars.next();
                out.push(match c {
                    ',' => Tok::Comma,
                    '(' => Tok::Open,
                    _ => Tok::Close,
                });
            }
            '=' | '!' | '<' | '>' => {
                chars.next();
                let eq = chars.peek() == Some(&'=');
                if eq {
                    chars.next();
                }
                out.push(Tok::Op(match (c, eq) {
                    ('=', _) => "=",
                    ('!', true) => "!=",
                    ('<', false) => "<",
                    ('<', true) => "<=",
                    ('>', false) => ">",
                    ('>', true) => ">=",
                    _ => return Err(malformed("unexpected token: '!'")),
                }));
            }
            '\'' => {
                chars.next();
                let mut s = String::new();
                loop {
                    match chars.next() {
                        None => return Err(malformed("unterminated string literal")),
                        Some('\'') => break,
                        Some('\\') => match chars.next() {
                            Some('n' | 'N') => s.push('\n'),
                            Some('r' | 'R') => s.push('\r'),
                            Some('t' | 'T') => s.push('\t'),
                            Some('b' | 'B') => s.push('\u{8}'),
                            Some('f' | 'F') => s.push('\u{c}'),
                            Some(e @ ('\'' | '"' | '\\' | '_' | '%')) => s.push(e),
                            Some(other) => {
                                return Err(malformed(format!(
                                    "Invalid string literal '\\{other}'. Illegal character sequence '\\{other}' in string literal."
                                )));
                            }
                            None => return Err(malformed("unterminated string literal")),
                        },
                        Some(other) => s.push(other),
                    }
                }
                out.push(Tok::Str(s));
            }
            c if c.is_ascii_digit() || c == '-' => {
                let mut w = String::new();
                while let Some(&d) = chars.peek() {
                    if d.is_ascii_alphanumeric() || matches!(d, '-' | ':' | '+' | '.') {
                        w.push(d);
                        chars.next();
                    } else {
                        break;
                    }
                }
                out.push(Tok::Bare(w));
            }
            c if c.is_ascii_alphabetic() || c == '_' => {
                let mut w = String::new();
                while let Some(&d) = chars.peek() {
                    if d.is_ascii_alphanumeric() || d == '_' || d == '.' {
                        w.push(d);
                        chars.next();
                    } else {
                        break;
                    }
                }
                out.push(Tok::Word(w));
            }
            other => return Err(malformed(format!("unexpected token: '{other}'"))),
        }
    }
    Ok(out)
}

/// A literal as written.
#[derive(Debug, Clone, PartialEq)]
pub enum Lit {
    Str(String),
    Bare(String),
    Bool(bool),
    Null,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Cond {
    Cmp(String, &'static str, Lit),
    In(String, bool, Vec<Lit>),
    Not(Box<Cond>),
    And(Vec<Cond>),
    Or(Vec<Cond>),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Item {
    Field(String),
    Child(Box<Select>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Select {
    pub items: Vec<Item>,
    pub from: String,
    pub filter: Option<Cond>,
    pub order: Vec<(String, bool)>,
    pub limit: Option<usize>,
}

struct Parser {
    toks: Vec<Tok>,
    pos: usize,
}

fn show(t: Option<&Tok>) -> String {
    match t {
        None => "<EOF>".into(),
        Some(Tok::Word(w) | Tok::Bare(w)) => format!("'{w}'"),
        Some(Tok::Str(s)) => format!("'{s}'"),
        Some(Tok::Comma) => "','".into(),
        Some(Tok::Open) => "'('".into(),
        Some(Tok::Close) => "')'".into(),
        Some(Tok::Op(o)) => format!("'{o}'"),
    }
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos)
    }
    fn unexpected(&self) -> Refusal {
        malformed(format!("unexpected token: {}", show(self.peek())))
    }
    fn is_keyword(&self, k: &str) -> bool {
        matches!(self.peek(), Some(Tok::Word(w)) if w.eq_ignore_ascii_case(k))
    }
    fn keyword(&mut self, k: &str) -> bool {
        let yes = self.is_keyword(k);
        if yes {
            self.pos += 1;
        }
        yes
    }
    fn expect_keyword(&mut self, k: &str) -> Result<(), Refusal> {
        if self.keyword(k) {
            Ok(())
        } else {
            Err(self.unexpected())
        }
    }
    fn expect(&mut self, t: Tok) -> Result<(), Refusal> {
        if self.peek() == Some(&t) {
            self.pos += 1;
            Ok(())
        } else {
            Err(self.unexpected())
        }
    }
    fn word(&mut self) -> Result<String, Refusal> {
        match self.peek().cloned() {
            Some(Tok::Word(w)) => {
                self.pos += 1;
                Ok(w)
            }
            _ => Err(self.unexpected()),
        }
    }

    fn select(&mut self, nested: bool) -> Result<Select, Refusal> {
        self.expect_keyword("SELECT")?;
        let mut items = Vec::new();
        loop {
            if self.peek() == Some(&Tok::Open) {
                if nested {
                    return Err(malformed("nested subqueries are not supported"));
                }
                self.pos += 1;
                let child = self.select(true)?;
                self.expect(Tok::Close)?;
                items.push(Item::Child(Box::new(child)));
            } else {
                items.push(Item::Field(self.word()?));
            }
            if self.is_keyword("FROM") {
                break;
            }
            self.expect(Tok::Comma)?;
        }
        self.expect_keyword("FROM")?;
        let from = self.word()?;
        let filter = if self.keyword("WHERE") {
            Some(self.or()?)
        } else {
            None
        };
        let mut order = Vec::new();
        if self.keyword("ORDER") {
            self.expect_keyword("BY")?;
            loop {
                let f = self.word()?;
                let asc = if self.keyword("DESC") {
                    false
                } else {
                    self.keyword("ASC");
                    true
                };
                order.push((f, asc));
                if self.peek() != Some(&Tok::Comma) {
                    break;
                }
                self.pos += 1;
            }
        }
        let limit = if self.keyword("LIMIT") {
            match self.peek().cloned() {
                Some(Tok::Bare(n)) => {
                    self.pos += 1;
                    Some(
                        n.parse()
                            .map_err(|_| malformed(format!("unexpected token: '{n}'")))?,
                    )
                }
                _ => return Err(self.unexpected()),
            }
        } else {
            None
        };
        Ok(Select {
            items,
            from,
            filter,
            order,
            limit,
        })
    }

    fn or(&mut self) -> Result<Cond, Refusal> {
        let (first, had_and) = self.and()?;
        if !self.is_keyword("OR") {
            return Ok(first);
        }
        if had_and {
            return Err(malformed("unexpected token: 'OR'"));
        }
        let mut all = vec![first];
        while self.keyword("OR") {
            let (next, had_and) = self.and()?;
            if had_and {
                return Err(malformed("unexpected token: 'AND'"));
            }
            all.push(next);
        }
        Ok(Cond::Or(all))
    }

    /// Factors joined by AND, and whether there was an AND (SOQL wants brackets to mix them).
    fn and(&mut self) -> Result<(Cond, bool), Refusal> {
        let first = self.factor()?;
        if !self.is_keyword("AND") {
            return Ok((first, false));
        }
        let mut all = vec![first];
        while self.keyword("AND") {
            all.push(self.factor()?);
        }
        Ok((Cond::And(all), true))
    }

    fn factor(&mut self) -> Result<Cond, Refusal> {
        if self.keyword("NOT") {
            return Ok(Cond::Not(Box::new(self.factor()?)));
        }
        if self.peek() == Some(&Tok::Open) {
            self.pos += 1;
            let c = self.or()?;
            self.expect(Tok::Close)?;
            return Ok(c);
        }
        let field = self.word()?;
        let negated = self.keyword("NOT");
        if self.keyword("IN") {
            self.expect(Tok::Open)?;
            let mut values = vec![self.literal()?];
            loop {
                match self.peek() {
                    Some(Tok::Comma) => {
                        self.pos += 1;
                        values.push(self.literal()?);
                    }
                    Some(Tok::Close) => {
                        self.pos += 1;
                        break;
                    }
                    _ => return Err(self.unexpected()),
                }
            }
            return Ok(Cond::In(field, negated, values));
        }
        if negated {
            return Err(self.unexpected());
        }
        match self.peek().cloned() {
            Some(Tok::Op(op)) => {
                self.pos += 1;
                Ok(Cond::Cmp(field, op, self.literal()?))
            }
            _ => Err(self.unexpected()),
        }
    }

    fn literal(&mut self) -> Result<Lit, Refusal> {
        let lit = match self.peek().cloned() {
            Some(Tok::Str(s)) => Lit::Str(s),
            Some(Tok::Bare(b)) => Lit::Bare(b),
            Some(Tok::Word(w)) if w.eq_ignore_ascii_case("null") => Lit::Null,
            Some(Tok::Word(w)) if w.eq_ignore_ascii_case("true") => Lit::Bool(true),
            Some(Tok::Word(w)) if w.eq_ignore_ascii_case("false") => Lit::Bool(false),
            _ => return Err(self.unexpected()),
        };
        self.pos += 1;
        Ok(lit)
    }
}

pub fn parse(q: &str) -> Result<Select, Refusal> {
    let mut p = Parser {
        toks: lex(q)?,
        pos: 0,
    };
    let s = p.select(false)?;
    if p.pos < p.toks.len() {
        return Err(p.unexpected());
    }
    Ok(s)
}

/// A comparable value.
#[derive(Debug, Clone, PartialEq)]
enum Key {
    Null,
    Bool(bool),
    Num(f64),
    Time(i64),
    Text(String),
}

impl Key {
    fn cmp(&self, other: &Key) -> Option<Ordering> {
        match (self, other) {
            (Key::Null, Key::Null) => Some(Ordering::Equal),
            (Key::Null, _) => Some(Ordering::Less),
            (_, Key::Null) => Some(Ordering::Greater),
            (Key::Bool(a), Key::Bool(b)) => Some(a.cmp(b)),
            (Key::Num(a), Key::Num(b)) => a.partial_cmp(b),
            (Key::Time(a), Key::Time(b)) => Some(a.cmp(b)),
            (Key::Text(a), Key::Text(b)) => Some(a.cmp(b)),
            _ => None,
        }
    }
}

/// Unix ms of an unquoted SOQL date or datetime literal.
fn time_literal(text: &str) -> Option<i64> {
    if let Ok(d) = text.parse::<jiff::civil::Date>() {
        return Some(
            d.to_zoned(jiff::tz::TimeZone::UTC)
                .ok()?
                .timestamp()
                .as_millisecond(),
        );
    }
    text.parse::<jiff::Timestamp>()
        .ok()
        .map(|t| t.as_millisecond())
}

/// One object's records as the evaluator sees them.
pub struct Ctx<'a> {
    pub world: &'a World,
    pub options: &'a SandboxOptions,
    pub version: &'a str,
}

impl Ctx<'_> {
    fn describe(&self, object: &str) -> Vec<FieldDescribe> {
        schema::fields(object, self.options).unwrap_or_default()
    }

    /// The stored text of `field` (canonical name) on `r`.
    fn raw(&self, r: &SfRecord, field: &str) -> Option<String> {
        match field {
            "Id" => Some(r.id.clone()),
            "CreatedDate" => Some(sf_datetime(r.created_at)),
            "LastModifiedDate" | "SystemModstamp" => Some(sf_datetime(r.modified_at)),
            _ => r.fields.get(field).cloned(),
        }
    }

    fn key(&self, r: &SfRecord, d: &FieldDescribe) -> Key {
        match d.name.as_str() {
            "CreatedDate" => return Key::Time(r.created_at.as_millisecond()),
            "LastModifiedDate" | "SystemModstamp" => {
                return Key::Time(r.modified_at.as_millisecond());
            }
            _ => {}
        }
        let Some(v) = self.raw(r, &d.name) else {
            return if d.kind == "boolean" {
                Key::Bool(false)
            } else {
                Key::Null
            };
        };
        match d.kind.as_str() {
            "boolean" => Key::Bool(v == "true"),
            "currency" | "double" | "percent" | "int" => v.parse().map_or(Key::Null, Key::Num),
            "date" | "datetime" => crate::salesforce::deal_cursor::datetime_ms(&v)
                .or_else(|| time_literal(&v))
                .map_or(Key::Null, Key::Time),
            "id" | "reference" => Key::Text(v),
            _ => Key::Text(v.to_lowercase()),
        }
    }

    /// The JSON value of a field as Salesforce types it.
    fn json(&self, r: &SfRecord, d: &FieldDescribe) -> Value {
        let Some(v) = self.raw(r, &d.name) else {
            return if d.kind == "boolean" {
                Value::Bool(false)
            } else {
                Value::Null
            };
        };
        match d.kind.as_str() {
            "boolean" => Value::Bool(v == "true"),
            "currency" | "double" | "percent" => v
                .parse::<f64>()
                .ok()
                .and_then(|n| serde_json::Number::from_f64(n).map(Value::Number))
                .unwrap_or(Value::Null),
            "int" => v.parse::<i64>().map_or(Value::Null, |n| json!(n)),
            _ => Value::String(v),
        }
    }

    fn literal_key(&self, d: &FieldDescribe, lit: &Lit) -> Result<Key, Refusal> {
        let wrong_type = |expected: &str| {
            (
                "INVALID_FIELD",
                format!(
                    "value of filter criterion for field '{}' must be of type {expected} and should not be enclosed in quotes",
                    d.name
                ),
            )
        };
        Ok(match (d.kind.as_str(), lit) {
            (_, Lit::Null) => Key::Null,
            ("date" | "datetime", Lit::Bare(b)) => {
                Key::Time(time_literal(b).ok_or_else(|| wrong_type(&d.kind))?)
            }
            ("date", _) => return Err(wrong_type("date")),
            ("datetime", _) => return Err(wrong_type("dateTime")),
            ("boolean", Lit::Bool(b)) => Key::Bool(*b),
            ("boolean", _) => return Err(wrong_type("boolean")),
            ("currency" | "double" | "percent" | "int", Lit::Bare(b)) => {
                Key::Num(b.parse().map_err(|_| wrong_type("number"))?)
            }
            ("currency" | "double" | "percent" | "int", _) => return Err(wrong_type("number")),
            ("id" | "reference", Lit::Str(s)) => Key::Text(s.clone()),
            (_, Lit::Str(s)) => Key::Text(s.to_lowercase()),
            _ => return Err(wrong_type("string")),
        })
    }

    fn field<'d>(
        &self,
        fields: &'d [FieldDescribe],
        object: &str,
        name: &str,
    ) -> Result<&'d FieldDescribe, Refusal> {
        schema::find(fields, name).ok_or_else(|| no_such_column(name, object))
    }

    fn matches(
        &self,
        r: &SfRecord,
        object: &str,
        fields: &[FieldDescribe],
        c: &Cond,
    ) -> Result<bool, Refusal> {
        Ok(match c {
            Cond::Cmp(f, op, lit) => {
                let d = self.field(fields, object, f)?;
                let want = self.literal_key(d, lit)?;
                let have = self.key(r, d);
                let ord = have.cmp(&want);
                match *op {
                    "=" => ord == Some(Ordering::Equal),
                    "!=" => ord != Some(Ordering::Equal),
                    _ if have == Key::Null || want == Key::Null => false,
                    "<" => ord == Some(Ordering::Less),
                    "<=" => matches!(ord, Some(Ordering::Less | Ordering::Equal)),
                    ">" => ord == Some(Ordering::Greater),
                    _ => matches!(ord, Some(Ordering::Greater | Ordering::Equal)),
                }
            }
            Cond::In(f, negated, lits) => {
                let d = self.field(fields, object, f)?;
                let have = self.key(r, d);
                let mut found = false;
                for lit in lits {
                    found |= have == self.literal_key(d, lit)?;
                }
                found != *negated
            }
            Cond::Not(inner) => !self.matches(r, object, fields, inner)?,
            Cond::And(all) => {
                let mut ok = true;
                for c in all {
                    ok &= self.matches(r, object, fields, c)?;
                }
                ok
            }
            Cond::Or(all) => {
                let mut ok = false;
                for c in all {
                    ok |= self.matches(r, object, fields, c)?;
                }
                ok
            }
        })
    }

    fn attributes(&self, object: &str, id: &str) -> Value {
        json!({"type": object, "url": format!("/services/data/{}/sobjects/{object}/{id}", self.version)})
    }

    /// The selected columns of one record, relationship fields as nested records.
    fn row(
        &self,
        r: &SfRecord,
        object: &str,
        fields: &[FieldDescribe],
        items: &[Item],
    ) -> Result<Map<String, Value>, Refusal> {
        let mut row = Map::new();
        row.insert("attributes".into(), self.attributes(object, &r.id));
        for item in items {
            match item {
                Item::Field(name) => {
                    if let Some((rel, field)) = name.split_once('.') {
                        let Some(&(_, rel_name, target, key)) = schema::PARENTS
                            .iter()
                            .find(|(o, n, _, _)| *o == object && n.eq_ignore_ascii_case(rel))
                        else {
                            return Err(no_such_column(name, object));
                        };
                        let target_fields = self.describe(target);
                        let d = self.field(&target_fields, target, field)?;
                        let parent = r
                            .fields
                            .get(key)
                            .and_then(|id| self.world.records.get(id))
                            .filter(|p| p.object == target);
                        let slot = row.entry(rel_name.to_owned()).or_insert(Value::Null);
                        if let Some(p) = parent {
                            if slot.is_null() {
                                *slot = json!({"attributes": self.attributes(target, &p.id)});
                            }
                            if let Some(o) = slot.as_object_mut() {
                                o.insert(d.name.clone(), self.json(p, d));
                            }
                        }
                    } else {
                        let d = self.field(fields, object, name)?;
                        row.insert(d.name.clone(), self.json(r, d));
                    }
                }
                Item::Child(sub) => {
                    let Some(&(_, rel_name, child, key)) = schema::CHILDREN
                        .iter()
                        .find(|(o, n, _, _)| *o == object && n.eq_ignore_ascii_case(&sub.from))
                    else {
                        return Err((
                            "INVALID_TYPE",
                            format!(
                                "Didn't understand relationship '{}' in FROM part of query call. If you are \
                                 attempting to use a custom relationship, be sure to append the '__r' after the \
                                 custom relationship name.",
                                sub.from
                            ),
                        ));
                    };
                    let child_fields = self.describe(child);
                    let mut rows = Vec::new();
                    for c in self.world.records.values() {
                        if c.object == child && c.fields.get(key) == Some(&r.id) {
                            rows.push(Value::Object(self.row(
                                c,
                                child,
                                &child_fields,
                                &sub.items,
                            )?));
                        }
                    }
                    let v = if rows.is_empty() {
                        Value::Null
                    } else {
                        json!({"totalSize": rows.len(), "done": true, "records": rows})
                    };
                    row.insert(rel_name.to_owned(), v);
                }
            }
        }
        Ok(row)
    }

    /// Runs a top-level query: the matching rows, ordered and limited.
    pub fn run(&self, q: &Select) -> Result<Vec<Map<String, Value>>, Refusal> {
        let Some(object) = schema::OBJECTS
            .iter()
            .find(|o| o.eq_ignore_ascii_case(&q.from))
        else {
            return Err((
                "INVALID_TYPE",
                format!(
                    "sObject type '{}' is not supported. If you are attempting to use a custom object, be sure to \
                     append the '__c' after the entity name. Please reference your WSDL or the describe call for \
                     the appropriate names.",
                    q.from
                ),
            ));
        };
        let fields = self.describe(object);
        let mut order = Vec::new();
        for (f, asc) in &q.order {
            order.push((self.field(&fields, object, f)?.clone(), *asc));
        }
        let mut hits: Vec<&SfRecord> = Vec::new();
        for r in self.world.records.values().filter(|r| r.object == *object) {
            let keep = match &q.filter {
                Some(c) => self.matches(r, object, &fields, c)?,
                None => true,
            };
            if keep {
                hits.push(r);
            }
        }
        hits.sort_by(|a, b| {
            for (d, asc) in &order {
                let o = self
                    .key(a, d)
                    .cmp(&self.key(b, d))
                    .unwrap_or(Ordering::Equal);
                let o = if *asc { o } else { o.reverse() };
                if o != Ordering::Equal {
                    return o;
                }
            }
            Ordering::Equal
        });
        if let Some(limit) = q.limit {
            hits.truncate(limit);
        }
        hits.into_iter()
            .map(|r| self.row(r, object, &fields, &q.items))
            .collect()
    }
}

pub fn no_such_column(field: &str, object: &str) -> Refusal {
    (
        "INVALID_FIELD",
        format!(
            "No such column '{field}' on entity '{object}'. If you are attempting to use a custom field, be sure to \
             append the '__c' after the custom field name. Please reference your WSDL or the describe call for the \
             appropriate names."
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_what_tandem_sends_and_refuses_the_rest() {
        let s = parse(
            r"SELECT Id, Email FROM Lead WHERE Email IN ('a@x.co', 'o\'n@x.co') OR Id IN ('00Q1')",
        )
        .unwrap();
        assert_eq!(
            s.items,
            [Item::Field("Id".into()), Item::Field("Email".into())]
        );
        assert!(matches!(&s.filter, Some(Cond::Or(c)) if c.len() == 2));
        let q = parse(
            "SELECT Id, (SELECT ContactId, Contact.Email FROM OpportunityContactRoles) FROM Opportunity \
             WHERE SystemModstamp > 2026-03-31T00:00:02Z OR (SystemModstamp = 2026-03-31T00:00:02Z AND Id > '006A') \
             ORDER BY SystemModstamp ASC, Id DESC LIMIT 5",
        )
        .unwrap();
        assert!(matches!(&q.items[1], Item::Child(c) if c.from == "OpportunityContactRoles"));
        assert_eq!(
            q.order,
            [
                ("SystemModstamp".to_owned(), true),
                ("Id".to_owned(), false)
            ]
        );
        assert_eq!(q.limit, Some(5));
        assert!(parse("SELECT Id FROM Lead WHERE Email IN ('a'").is_err());
        assert!(parse("SELECT Id FROM Lead WHERE A = 'a' AND B = 'b' OR C = 'c'").is_err());
        assert!(parse("SELECT Id FROM Lead WHERE A = 'a' OR B = 'b' AND C = 'c'").is_err());
        assert!(parse("SELECT Id FROM Lead WHERE (A = 'a' AND B = 'b') OR NOT C = 'c'").is_ok());
        assert!(parse("SELECT Id FROM Lead WHERE Email = 'it''s'").is_err());
        assert_eq!(
            time_literal("2026-03-31T00:00:02Z"),
            Some(1_774_915_202_000)
        );
        assert_eq!(time_literal("2026-03-31"), Some(1_774_915_200_000));
    }
}
