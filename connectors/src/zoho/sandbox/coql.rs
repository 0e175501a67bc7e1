//! `POST /crm/v8/coql` for the subset of COQL tandem sends:
//! `select f1, Lookup.f2, … from Module where <criteria> [order by f [asc|desc], …]
//! [limit N [offset M]]`, criteria being `field in ('a', 'b')` (≤ 50 values) or `field op value`
//! (`= != < <= > >=`, a quoted string or a number), combined with `and`/`or` and brackets (≤ 25
//! criteria, ≤ 10 order-by fields). Strings are single-quoted with backslash escapes; keywords any
//! case. Text compares ignoring case, datetimes as instants, ids and numbers as numbers.
//! Answers `{"data":[…],"info":{"count","more_records"}}` with Zoho's JSON types (numbers for
//! currency and integer fields, `{"id"}` for lookups), or 204 when nothing matched.

use std::cmp::Ordering;

use axum::{
    Json,
    body::Bytes,
    extract::State,
    http::StatusCode,
    response::{IntoResponse, Response},
};
use serde_json::{Map, Value, json};

use super::{
    SandboxOptions, SandboxState, ZohoRecord, fields,
    state::{World, zoho_error, zoho_time},
};
use crate::zoho::{
    lookup::{IN_VALUES, MAX_COLUMNS, MAX_CRITERIA},
    wire::{CoqlInfo, CoqlResponse},
};

/// Fields per ORDER BY.
pub const MAX_ORDER: usize = 10;

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Word(String),
    Str(String),
    Num(String),
    Open,
    Close,
    Comma,
    Op(&'static str),
}

/// A parsed query.
#[derive(Debug, Clone, PartialEq)]
pub struct Query {
    pub columns: Vec<String>,
    pub module: String,
    pub criteria: Option<Expr>,
    /// (field, ascending)
    pub order: Vec<(String, bool)>,
    pub limit: usize,
    pub offset: usize,
}

/// A value as written in a criterion.
#[derive(Debug, Clone, PartialEq)]
pub enum Lit {
    Str(String),
    Num(String),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    In(String, Vec<Lit>),
    Cmp(String, &'static str, Lit),
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
}

impl Expr {
    fn count(&self) -> usize {
        match self {
            Expr::In(..) | Expr::Cmp(..) => 1,
            Expr::And(a, b) | Expr::Or(a, b) => a.count() + b.count(),
        }
    }

    fn fields(&self, out: &mut Vec<String>) {
        match self {
            Expr::In(f, _) | Expr::Cmp(f, ..) => out.push(f.clone()),
            Expr::And(a, b) | Expr::Or(a, b) => {
                a.fields(out);
                b.fields(out);
            }
        }
    }

    /// Whether a record matches, `key(field, literal)` giving (record's key, literal's key).
    pub fn matches(&self, key: &dyn Fn(&str, Option<&Lit>) -> Key) -> bool {
        match self {
            Expr::In(f, vs) => {
                let have = key(f, None);
                vs.iter().any(|v| have == key(f, Some(v)))
            }
            Expr::Cmp(f, op, v) => {
                let (have, want) = (key(f, None), key(f, Some(v)));
                let ord = have.cmp(&want);
                match *op {
                    "=" => ord == Some(Ordering::Equal),
                    "!=" => ord != Some(Ordering::Equal),
                    _ if have == Key::Null => false,
                    "<" => ord == Some(Ordering::Less),
                    "<=" => matches!(ord, Some(Ordering::Less | Ordering::Equal)),
                    ">" => ord == Some(Ordering::Greater),
                    _ => matches!(ord, Some(Ordering::Greater | Ordering::Equal)),
                }
            }
            Expr::And(a, b) => a.matches(key) && b.matches(key),
            Expr::Or(a, b) => a.matches(key) || b.matches(key),
        }
    }
}

/// A comparable value.
#[derive(Debug, Clone, PartialEq)]
pub enum Key {
    Null,
    Int(i128),
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
            (Key::Int(a), Key::Int(b)) => Some(a.cmp(b)),
            (Key::Num(a), Key::Num(b)) => a.partial_cmp(b),
            (Key::Time(a), Key::Time(b)) => Some(a.cmp(b)),
            (Key::Text(a), Key::Text(b)) => Some(a.cmp(b)),
            _ => None,
        }
    }
}

/// Why a query was refused: (code, message, details).
pub type Refusal = (&'static str, String, Value);

fn syntax(at: &str) -> Refusal {
    (
        "SYNTAX_ERROR",
        "error occured while parsing the query".to_owned(),
        json!({"near": at}),
    )
}

fn lex(q: &str) -> Result<Vec<Tok>, Refusal> {
    let mut out = Vec::new();
    let mut chars = q.chars().peekable();
    while let Some(&c) = chars.peek() {
        match c {
            c if c.is_whitespace() => {
                chars.next();
            }
            '(' | ')' | ',' => {
                chars.next();
                out.push(match c {
                    '(' => Tok::Open,
                    ')' => Tok::Close,
                    _ => Tok::Comma,
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
                    _ => return Err(syntax("!")),
                }));
            }
            '\'' => {
                chars.next();
                let mut s = String::new();
                loop {
                    match chars.next() {
                        Some('\\') => match chars.next() {
                            Some(e) => s.push(e),
                            None => return Err(syntax("unterminated string")),
                        },
                        Some('\'') => break,
                        Some(x) => s.push(x),
                        None => return Err(syntax("unterminated string")),
                    }
                }
                out.push(Tok::Str(s));
            }
            c if c.is_ascii_digit() || c == '-' => {
                let mut n = String::new();
                n.push(c);
                chars.next();
                while let Some(&d) = chars.peek().filter(|d| d.is_ascii_digit() || **d == '.') {
                    n.push(d);
                    chars.next();
                }
                out.push(Tok::Num(n));
            }
            c if c.is_ascii_alphabetic() || c == '_' || c == '$' => {
                let mut w = String::new();
                while let Some(&d) = chars
                    .peek()
                    .filter(|d| d.is_ascii_alphanumeric() || **d == '_' || **d == '$' || **d == '.')
                {
                    w.push(d);
                    chars.next();
                }
                out.push(Tok::Word(w));
            }
            other => return Err(syntax(&other.to_string())),
        }
    }
    Ok(out)
}

struct Parser {
    toks: Vec<Tok>,
    pos: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos)
    }

    fn next(&mut self) -> Option<Tok> {
        let t = self.toks.get(self.pos).cloned();
        self.pos += 1;
        t
    }

    fn keyword(&mut self, kw: &str) -> bool {
        if matches!(self.peek(), Some(Tok::Word(w)) if w.eq_ignore_ascii_case(kw)) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn expect_keyword(&mut self, kw: &str) -> Result<(), Refusal> {
        if self.keyword(kw) {
            Ok(())
        } else {
            Err(syntax(kw))
        }
    }

    fn ident(&mut self) -> Result<String, Refusal> {
        match self.next() {
            Some(Tok::Word(w)) => Ok(w),
            other => Err(syntax(&format!("{other:?}"))),
        }
    }

    fn number(&mut self) -> Result<usize, Refusal> {
        match self.next() {
            Some(Tok::Num(n)) => n.parse().map_err(|_| syntax(&n)),
            other => Err(syntax(&format!("{other:?}"))),
        }
    }

    fn value(&mut self) -> Result<Lit, Refusal> {
        match self.next() {
            Some(Tok::Str(s)) => Ok(Lit::Str(s)),
            Some(Tok::Num(n)) => Ok(Lit::Num(n)),
            other => Err(syntax(&format!("{other:?}"))),
        }
    }

    fn expr(&mut self) -> Result<Expr, Refusal> {
        let mut left = self.term()?;
        loop {
            if self.keyword("or") {
                left = Expr::Or(Box::new(left), Box::new(self.term()?));
            } else if self.keyword("and") {
                left = Expr::And(Box::new(left), Box::new(self.term()?));
            } else {
                return Ok(left);
            }
        }
    }

    fn term(&mut self) -> Result<Expr, Refusal> {
        if self.peek() == Some(&Tok::Open) {
            self.pos += 1;
            let e = self.expr()?;
            return match self.next() {
                Some(Tok::Close) => Ok(e),
                _ => Err(syntax(")")),
            };
        }
        let field = self.ident()?;
        if let Some(Tok::Op(op)) = self.peek().cloned() {
            self.pos += 1;
            return Ok(Expr::Cmp(field, op, self.value()?));
        }
        self.expect_keyword("in")?;
        if self.next() != Some(Tok::Open) {
            return Err(syntax("in"));
        }
        let mut values = Vec::new();
        loop {
            values.push(self.value()?);
            match self.next() {
                Some(Tok::Comma) => continue,
                Some(Tok::Close) => break,
                other => return Err(syntax(&format!("{other:?}"))),
            }
        }
        if values.len() > IN_VALUES {
            return Err((
                "LIMIT_EXCEEDED",
                format!("the in operator accepts at most {IN_VALUES} values"),
                json!({"operator": "in", "limit": IN_VALUES}),
            ));
        }
        Ok(Expr::In(field, values))
    }
}

/// Parses the subset; `Err` carries Zoho's error code, message and details.
pub fn parse(q: &str) -> Result<Query, Refusal> {
    let mut p = Parser {
        toks: lex(q)?,
        pos: 0,
    };
    p.expect_keyword("select")?;
    let mut columns = vec![p.ident()?];
    while p.peek() == Some(&Tok::Comma) {
        p.pos += 1;
        columns.push(p.ident()?);
    }
    if columns.len() > MAX_COLUMNS {
        return Err((
            "LIMIT_EXCEEDED",
            format!("at most {MAX_COLUMNS} fields can be selected"),
            json!({"clause": "select", "limit": MAX_COLUMNS}),
        ));
    }
    p.expect_keyword("from")?;
    let module = p.ident()?;
    let criteria = if p.keyword("where") {
        Some(p.expr()?)
    } else {
        None
    };
    let mut order = Vec::new();
    if p.keyword("order") {
        p.expect_keyword("by")?;
        loop {
            let f = p.ident()?;
            let asc = !p.keyword("desc");
            if asc {
                p.keyword("asc");
            }
            if order.iter().any(|(o, _)| *o == f) {
                return Err((
                    "DUPLICATE_DATA",
                    "duplicate data".to_owned(),
                    json!({"clause": "order by", "field": f}),
                ));
            }
            order.push((f, asc));
            if p.peek() != Some(&Tok::Comma) {
                break;
            }
            p.pos += 1;
        }
        if order.len() > MAX_ORDER {
            return Err((
                "LIMIT_EXCEEDED",
                format!("at most {MAX_ORDER} fields can be given in order by"),
                json!({"clause": "order by", "limit": MAX_ORDER}),
            ));
        }
    }
    let mut limit = 200;
    let mut offset = 0;
    if p.keyword("limit") {
        limit = p.number()?;
        if p.peek() == Some(&Tok::Comma) {
            p.pos += 1;
            offset = limit;
            limit = p.number()?;
        }
    }
    if p.keyword("offset") {
        offset = p.number()?;
    }
    if p.pos < p.toks.len() {
        return Err(syntax(&format!("{:?}", p.toks[p.pos])));
    }
    if criteria.as_ref().is_some_and(|c| c.count() > MAX_CRITERIA) {
        return Err((
            "LIMIT_EXCEEDED",
            format!("at most {MAX_CRITERIA} criteria are allowed in the where clause"),
            json!({"clause": "where", "limit": MAX_CRITERIA}),
        ));
    }
    if !(1..=2000).contains(&limit) {
        return Err((
            "LIMIT_EXCEEDED",
            "limit must be between 1 and 2000".to_owned(),
            json!({"clause": "limit", "limit": 2000}),
        ));
    }
    Ok(Query {
        columns,
        module,
        criteria,
        order,
        limit,
        offset,
    })
}

/// Credits a query costs by its LIMIT.
fn credits(limit: usize) -> u64 {
    match limit {
        0..=200 => 1,
        201..=1000 => 2,
        _ => 3,
    }
}

/// Evaluates columns and criteria against the sandbox's records.
struct Eval<'a> {
    world: &'a World,
    options: &'a SandboxOptions,
    module: &'a str,
}

impl Eval<'_> {
    /// (module, field type) of a column: plain, `id`, or `Lookup.field`.
    fn resolve(&self, column: &str) -> Option<(&'static str, &'static str)> {
        let data_type = |module: &str, f: &str| -> Option<&'static str> {
            if f == "id" {
                return Some("bigint");
            }
            fields::field(self.options, module, f).map(|d| d.1)
        };
        match column.split_once('.') {
            None => Some(("", data_type(self.module, column)?)),
            Some((lookup, f)) => {
                let &(_, _, target) = fields::LOOKUPS
                    .iter()
                    .find(|(m, l, _)| *m == self.module && *l == lookup)?;
                Some((target, data_type(target, f)?))
            }
        }
    }

    /// The record a column reads from (the record itself, or the one its lookup points at).
    fn source<'r>(&'r self, r: &'r ZohoRecord, column: &str) -> Option<(&'r ZohoRecord, String)> {
        match column.split_once('.') {
            None => Some((r, column.to_owned())),
            Some((lookup, f)) => {
                let &(_, _, target) = fields::LOOKUPS
                    .iter()
                    .find(|(m, l, _)| *m == self.module && *l == lookup)?;
                let id: u64 = r.fields.get(lookup)?.parse().ok()?;
                Some((self.world.records.get(target)?.get(&id)?, f.to_owned()))
            }
        }
    }

    fn raw(r: &ZohoRecord, field: &str) -> Option<String> {
        match field {
            "id" => Some(r.id.clone()),
            "Created_Time" => Some(zoho_time(r.created_time)),
            "Modified_Time" => Some(zoho_time(r.modified_time)),
            _ => r.fields.get(field).cloned(),
        }
    }

    fn key_of(data_type: &str, text: Option<&str>) -> Key {
        let Some(t) = text.map(str::trim) else {
            return Key::Null;
        };
        match data_type {
            "bigint" | "integer" | "lookup" | "ownerlookup" => {
                t.parse().map_or(Key::Text(t.to_lowercase()), Key::Int)
            }
            "currency" | "double" => t.parse().map_or(Key::Null, Key::Num),
            "datetime" | "date" => crate::salesforce::deal_cursor::datetime_ms(t)
                .or_else(|| crate::salesforce::deal_cursor::date_ms(t))
                .map_or(Key::Text(t.to_lowercase()), Key::Time),
            _ => Key::Text(t.to_lowercase()),
        }
    }

    fn key(&self, r: &ZohoRecord, column: &str, lit: Option<&Lit>) -> Key {
        let data_type = self.resolve(column).map_or("text", |(_, t)| t);
        match lit {
            Some(Lit::Str(s) | Lit::Num(s)) => Self::key_of(data_type, Some(s)),
            None => {
                let text = self
                    .source(r, column)
                    .and_then(|(src, f)| Self::raw(src, &f));
                Self::key_of(data_type, text.as_deref())
            }
        }
    }

    fn json(&self, r: &ZohoRecord, column: &str) -> Value {
        let Some(data_type) = self.resolve(column).map(|(_, t)| t) else {
            return Value::Null;
        };
        let Some(text) = self
            .source(r, column)
            .and_then(|(src, f)| Self::raw(src, &f))
        else {
            return Value::Null;
        };
        match data_type {
            "lookup" | "ownerlookup" => json!({ "id": text }),
            "currency" | "double" => match text.parse::<f64>() {
                Ok(n) if n.fract() == 0.0 && n.abs() < 9e15 => json!(n as i64),
                Ok(n) => json!(n),
                Err(_) => Value::Null,
            },
            "integer" => text.parse::<i64>().map_or(Value::Null, |n| json!(n)),
            "boolean" => Value::Bool(text == "true"),
            _ => Value::String(text),
        }
    }
}

pub async fn handle(State(state): State<SandboxState>, body: Bytes) -> Response {
    let refuse = |(code, message, details): Refusal| {
        zoho_error(StatusCode::BAD_REQUEST, code, &message, details)
    };
    let Some(q) = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|b| b.get("select_query")?.as_str().map(str::to_owned))
    else {
        return zoho_error(
            StatusCode::BAD_REQUEST,
            "REQUIRED_PARAM_MISSING",
            "One of the expected parameter is missing",
            json!({"param": "select_query"}),
        );
    };
    let query = match parse(&q) {
        Ok(query) => query,
        Err(r) => return refuse(r),
    };
    if fields::catalogue(&query.module).is_none() {
        return zoho_error(
            StatusCode::BAD_REQUEST,
            "INVALID_QUERY",
            "invalid query formed",
            json!({"reason": "invalid module given", "module": query.module}),
        );
    }
    let options = state.options().clone();
    let mut w = state.world();
    let eval = Eval {
        world: &w,
        options: &options,
        module: &query.module,
    };
    let mut named = query.columns.clone();
    if let Some(c) = &query.criteria {
        c.fields(&mut named);
    }
    named.extend(query.order.iter().map(|(f, _)| f.clone()));
    if let Some(bad) = named.iter().find(|f| eval.resolve(f).is_none()) {
        return zoho_error(
            StatusCode::BAD_REQUEST,
            "INVALID_QUERY",
            "invalid query formed",
            json!({"column_name": bad, "reason": "invalid column given"}),
        );
    }
    let mut matching: Vec<&ZohoRecord> = w
        .records
        .get(&query.module)
        .map(|m| m.values().collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .filter(|r| {
            query
                .criteria
                .as_ref()
                .is_none_or(|c| c.matches(&|f, lit| eval.key(r, f, lit)))
        })
        .collect();
    // Without ORDER BY, Zoho sorts by id; the BTreeMap already holds them so.
    matching.sort_by(|a, b| {
        for (f, asc) in &query.order {
            let o = eval
                .key(a, f, None)
                .cmp(&eval.key(b, f, None))
                .unwrap_or(Ordering::Equal);
            let o = if *asc { o } else { o.reverse() };
            if o != Ordering::Equal {
                return o;
            }
        }
        Ordering::Equal
    });
    let total = matching.len();
    let page: Vec<Map<String, Value>> = matching
        .into_iter()
        .skip(query.offset)
        .take(query.limit)
        .map(|r| {
            let mut row = Map::new();
            for col in &query.columns {
                row.insert(col.clone(), eval.json(r, col));
            }
            row.entry("id").or_insert_with(|| Value::from(r.id.clone()));
            row
        })
        .collect();
    w.stats.coql_calls += 1;
    w.stats.queries.push(q.clone());
    w.charge(credits(query.limit));
    drop(w);
    if page.is_empty() {
        return StatusCode::NO_CONTENT.into_response();
    }
    let info = CoqlInfo {
        count: page.len() as u64,
        more_records: query.offset + page.len() < total,
    };
    Json(CoqlResponse { data: page, info }).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_what_the_client_sends_and_refuses_the_rest() {
        let q = parse(r"SELECT id, Email, Phone from Leads where (Email in ('a@x.io', 'o\'n@x.io')) or (Email = 'c@x.io') limit 200 offset 200").unwrap();
        assert_eq!(q.columns, ["id", "Email", "Phone"]);
        assert_eq!(q.module, "Leads");
        assert_eq!((q.limit, q.offset), (200, 200));
        let c = q.criteria.unwrap();
        assert_eq!(c.count(), 2);
        let text = |v: Option<&str>| v.map_or(Key::Null, |s| Key::Text(s.to_lowercase()));
        let key = |have: Option<&'static str>| {
            move |_: &str, lit: Option<&Lit>| match lit {
                Some(Lit::Str(s) | Lit::Num(s)) => text(Some(s)),
                None => text(have),
            }
        };
        assert!(c.matches(&key(Some("O'N@x.io"))));
        assert!(!c.matches(&key(None)));
        let d = parse(
            "select id, Contact_Name.Email from Deals where (Modified_Time > '2026-03-31T00:00:02+00:00') \
             or ((Modified_Time = '2026-03-31T00:00:02+00:00') and (id > 5725767000000524001)) \
             order by Modified_Time asc, id desc limit 200",
        )
        .unwrap();
        assert_eq!(
            d.order,
            [("Modified_Time".to_owned(), true), ("id".to_owned(), false)]
        );
        assert_eq!(d.criteria.unwrap().count(), 3);
        assert_eq!(
            parse("select id from Leads where Email like 'a%'")
                .unwrap_err()
                .0,
            "SYNTAX_ERROR"
        );
        assert_eq!(
            parse("select id from Deals order by id, id").unwrap_err().0,
            "DUPLICATE_DATA"
        );
        let many: Vec<String> = (0..51).map(|n| format!("'{n}'")).collect();
        let e = parse(&format!(
            "select id from Leads where Email in ({})",
            many.join(",")
        ))
        .unwrap_err();
        assert_eq!(e.0, "LIMIT_EXCEEDED");
    }
}
