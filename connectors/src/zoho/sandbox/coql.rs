//! `POST /crm/v8/coql` for the subset of COQL tandem sends:
//! `select f1, f2 from Module where <criteria> [limit N [offset M]]`, criteria being
//! `field in ('a', 'b')` (≤ 50 values) or `field = 'a'`, combined with `and`/`or` and brackets
//! (≤ 25 criteria). Strings are single-quoted with backslash escapes; keywords any case.
//! Answers `{"data":[…],"info":{"count","more_records"}}`, or 204 when nothing matched.

use axum::{
    Json,
    body::Bytes,
    extract::State,
    http::StatusCode,
    response::{IntoResponse, Response},
};
use serde_json::{Map, Value, json};

use super::{SandboxState, fields, state::zoho_error};
use crate::zoho::{
    lookup::{IN_VALUES, MAX_COLUMNS, MAX_CRITERIA},
    wire::{CoqlInfo, CoqlResponse},
};

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Word(String),
    Str(String),
    Num(u64),
    Open,
    Close,
    Comma,
    Eq,
}

/// A parsed query.
#[derive(Debug, Clone, PartialEq)]
pub struct Query {
    pub columns: Vec<String>,
    pub module: String,
    pub criteria: Option<Expr>,
    pub limit: usize,
    pub offset: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    In(String, Vec<String>),
    Eq(String, String),
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
}

impl Expr {
    fn count(&self) -> usize {
        match self {
            Expr::In(..) | Expr::Eq(..) => 1,
            Expr::And(a, b) | Expr::Or(a, b) => a.count() + b.count(),
        }
    }

    fn fields(&self, out: &mut Vec<String>) {
        match self {
            Expr::In(f, _) | Expr::Eq(f, _) => out.push(f.clone()),
            Expr::And(a, b) | Expr::Or(a, b) => {
                a.fields(out);
                b.fields(out);
            }
        }
    }

    fn matches(&self, get: &dyn Fn(&str) -> Option<String>) -> bool {
        let eq = |f: &str, v: &str| get(f).is_some_and(|x| x.trim().eq_ignore_ascii_case(v.trim()));
        match self {
            Expr::In(f, vs) => vs.iter().any(|v| eq(f, v)),
            Expr::Eq(f, v) => eq(f, v),
            Expr::And(a, b) => a.matches(get) && b.matches(get),
            Expr::Or(a, b) => a.matches(get) || b.matches(get),
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
            '(' | ')' | ',' | '=' => {
                chars.next();
                out.push(match c {
                    '(' => Tok::Open,
                    ')' => Tok::Close,
                    ',' => Tok::Comma,
                    _ => Tok::Eq,
                });
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
            c if c.is_ascii_digit() => {
                let mut n = String::new();
                while let Some(&d) = chars.peek().filter(|d| d.is_ascii_digit()) {
                    n.push(d);
                    chars.next();
                }
                out.push(Tok::Num(n.parse().map_err(|_| syntax(&n))?));
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
            Some(Tok::Num(n)) => Ok(n as usize),
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
        if self.peek() == Some(&Tok::Eq) {
            self.pos += 1;
            return match self.next() {
                Some(Tok::Str(s)) => Ok(Expr::Eq(field, s)),
                other => Err(syntax(&format!("{other:?}"))),
            };
        }
        self.expect_keyword("in")?;
        if self.next() != Some(Tok::Open) {
            return Err(syntax("in"));
        }
        let mut values = Vec::new();
        loop {
            match self.next() {
                Some(Tok::Str(s)) => values.push(s),
                other => return Err(syntax(&format!("{other:?}"))),
            }
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
    let mut named = query.columns.clone();
    if let Some(c) = &query.criteria {
        c.fields(&mut named);
    }
    if let Some(bad) = named
        .iter()
        .find(|f| f.as_str() != "id" && fields::field(&query.module, f).is_none())
    {
        return zoho_error(
            StatusCode::BAD_REQUEST,
            "INVALID_QUERY",
            "invalid query formed",
            json!({"column_name": bad, "reason": "invalid column given"}),
        );
    }
    let mut w = state.world();
    w.stats.coql_calls += 1;
    w.stats.queries.push(q.clone());
    w.charge(credits(query.limit));
    let matching: Vec<Map<String, Value>> = w
        .records
        .get(&query.module)
        .map(|m| m.values().collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .filter(|r| {
            query.criteria.as_ref().is_none_or(|c| {
                c.matches(&|f| {
                    if f == "id" {
                        Some(r.id.clone())
                    } else {
                        r.fields.get(f).cloned()
                    }
                })
            })
        })
        .map(|r| {
            let mut row = Map::new();
            for col in &query.columns {
                let v = if col == "id" {
                    Some(r.id.clone())
                } else {
                    r.fields.get(col).cloned()
                };
                row.insert(col.clone(), v.map(Value::from).unwrap_or(Value::Null));
            }
            row.entry("id").or_insert_with(|| Value::from(r.id.clone()));
            row
        })
        .collect();
    drop(w);
    let total = matching.len();
    let page: Vec<_> = matching
        .into_iter()
        .skip(query.offset)
        .take(query.limit)
        .collect();
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
        assert!(c.matches(&|f| (f == "Email").then(|| "O'N@x.io".to_owned())));
        assert!(!c.matches(&|_| None));
        assert_eq!(
            parse("select id from Leads where Email like 'a%'")
                .unwrap_err()
                .0,
            "SYNTAX_ERROR"
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
