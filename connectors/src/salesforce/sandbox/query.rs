//! `GET /query?q=…` for the SOQL subset tandem sends — `SELECT f, … FROM Object [WHERE F IN
//! ('a', …) [OR F = 'b' …]] [LIMIT n]` with SOQL's string escapes — and `GET /query/{cursor}`
//! for the next pages. Text compares case-insensitively, as in Salesforce. Anything else is
//! `MALFORMED_QUERY`; unknown objects and fields get Salesforce's `INVALID_TYPE`/`INVALID_FIELD`.

use axum::{
    Json,
    extract::{Path, Query, State},
    response::{IntoResponse, Response},
};
use serde_json::{Map, Value, json};

use super::{SandboxState, errors, schema, state::sf_datetime};

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Word(String),
    Str(String),
    Comma,
    Open,
    Close,
    Eq,
}

fn tokenize(q: &str) -> Result<Vec<Token>, String> {
    let mut out = Vec::new();
    let mut chars = q.chars().peekable();
    while let Some(&c) = chars.peek() {
        match c {
            c if c.is_whitespace() => {
                chars.next();
            }
            ',' | '(' | ')' | '=' => {
                chars.next();
                out.push(match c {
                    ',' => Token::Comma,
                    '(' => Token::Open,
                    ')' => Token::Close,
                    _ => Token::Eq,
                });
            }
            '\'' => {
                chars.next();
                let mut s = String::new();
                loop {
                    match chars.next() {
                        None => return Err("unterminated string literal".into()),
                        Some('\'') => break,
                        Some('\\') => match chars.next() {
                            Some('n' | 'N') => s.push('\n'),
                            Some('r' | 'R') => s.push('\r'),
                            Some('t' | 'T') => s.push('\t'),
                            Some('b' | 'B') => s.push('\u{8}'),
                            Some('f' | 'F') => s.push('\u{c}'),
                            Some(e @ ('\'' | '"' | '\\' | '_' | '%')) => s.push(e),
                            Some(other) => {
                                return Err(format!(
                                    "Invalid string literal '\\{other}'. Illegal character sequence '\\{other}' in string literal."
                                ));
                            }
                            None => return Err("unterminated string literal".into()),
                        },
                        Some(other) => s.push(other),
                    }
                }
                out.push(Token::Str(s));
            }
            c if c.is_ascii_alphanumeric() || c == '_' || c == '.' => {
                let mut w = String::new();
                while let Some(&c) = chars.peek() {
                    if c.is_ascii_alphanumeric() || c == '_' || c == '.' {
                        w.push(c);
                        chars.next();
                    } else {
                        break;
                    }
                }
                out.push(Token::Word(w));
            }
            other => return Err(format!("unexpected token: '{other}'")),
        }
    }
    Ok(out)
}

#[derive(Debug, Default)]
struct Soql {
    fields: Vec<String>,
    object: String,
    /// OR-ed `field IN (values)` conditions; none = every record.
    conditions: Vec<(String, Vec<String>)>,
    limit: Option<usize>,
}

struct Parser {
    tokens: Vec<Token>,
    pos: usize,
}

impl Parser {
    fn next(&mut self) -> Option<Token> {
        let t = self.tokens.get(self.pos).cloned();
        self.pos += 1;
        t
    }
    fn word(&mut self) -> Result<String, String> {
        match self.next() {
            Some(Token::Word(w)) => Ok(w),
            other => Err(format!("unexpected token: {}", show(other))),
        }
    }
    fn keyword(&mut self, k: &str) -> Result<(), String> {
        let w = self.word()?;
        if w.eq_ignore_ascii_case(k) {
            Ok(())
        } else {
            Err(format!("unexpected token: '{w}'"))
        }
    }
    fn peek_keyword(&self, k: &str) -> bool {
        matches!(self.tokens.get(self.pos), Some(Token::Word(w)) if w.eq_ignore_ascii_case(k))
    }
    fn expect(&mut self, t: Token) -> Result<(), String> {
        match self.next() {
            Some(got) if got == t => Ok(()),
            other => Err(format!("unexpected token: {}", show(other))),
        }
    }
    fn string(&mut self) -> Result<String, String> {
        match self.next() {
            Some(Token::Str(s)) => Ok(s),
            other => Err(format!("unexpected token: {}", show(other))),
        }
    }
}

fn show(t: Option<Token>) -> String {
    match t {
        None => "<EOF>".into(),
        Some(Token::Word(w)) => format!("'{w}'"),
        Some(Token::Str(s)) => format!("'{s}'"),
        Some(Token::Comma) => "','".into(),
        Some(Token::Open) => "'('".into(),
        Some(Token::Close) => "')'".into(),
        Some(Token::Eq) => "'='".into(),
    }
}

fn parse(q: &str) -> Result<Soql, String> {
    let mut p = Parser {
        tokens: tokenize(q)?,
        pos: 0,
    };
    let mut soql = Soql::default();
    p.keyword("SELECT")?;
    loop {
        soql.fields.push(p.word()?);
        if p.peek_keyword("FROM") {
            break;
        }
        p.expect(Token::Comma)?;
    }
    p.keyword("FROM")?;
    soql.object = p.word()?;
    if p.peek_keyword("WHERE") {
        p.pos += 1;
        loop {
            let field = p.word()?;
            if p.peek_keyword("IN") {
                p.pos += 1;
                p.expect(Token::Open)?;
                let mut values = vec![p.string()?];
                loop {
                    match p.next() {
                        Some(Token::Comma) => values.push(p.string()?),
                        Some(Token::Close) => break,
                        other => return Err(format!("unexpected token: {}", show(other))),
                    }
                }
                soql.conditions.push((field, values));
            } else {
                p.expect(Token::Eq)?;
                soql.conditions.push((field, vec![p.string()?]));
            }
            if p.peek_keyword("OR") {
                p.pos += 1;
            } else {
                break;
            }
        }
    }
    if p.peek_keyword("LIMIT") {
        p.pos += 1;
        let n = p.word()?;
        soql.limit = Some(n.parse().map_err(|_| format!("unexpected token: '{n}'"))?);
    }
    match p.next() {
        None => Ok(soql),
        other => Err(format!("unexpected token: {}", show(other))),
    }
}

fn no_such_column(field: &str, object: &str) -> Response {
    errors::bad_request(
        "INVALID_FIELD",
        format!(
            "No such column '{field}' on entity '{object}'. If you are attempting to use a custom field, be sure to \
             append the '__c' after the custom field name. Please reference your WSDL or the describe call for the \
             appropriate names."
        ),
    )
}

#[derive(serde::Deserialize)]
pub struct Q {
    q: Option<String>,
}

pub async fn run(
    State(state): State<SandboxState>,
    Path(version): Path<String>,
    Query(q): Query<Q>,
) -> Response {
    state.world().stats.queries += 1;
    let Some(q) = q.q else {
        return errors::bad_request("MALFORMED_QUERY", "A query string has to be specified");
    };
    let soql = match parse(&q) {
        Ok(s) => s,
        Err(message) => return errors::bad_request("MALFORMED_QUERY", message),
    };
    let Some(object) = schema::OBJECTS
        .iter()
        .find(|o| o.eq_ignore_ascii_case(&soql.object))
    else {
        return errors::bad_request(
            "INVALID_TYPE",
            format!(
                "sObject type '{}' is not supported. If you are attempting to use a custom object, be sure to \
                 append the '__c' after the entity name. Please reference your WSDL or the describe call for \
                 the appropriate names.",
                soql.object
            ),
        );
    };
    let fields = schema::fields(object, state.options()).unwrap_or_default();
    let mut select = Vec::new();
    for f in &soql.fields {
        match schema::find(&fields, f) {
            Some(d) => select.push(d.name.clone()),
            None => return no_such_column(f, object),
        }
    }
    let mut conditions = Vec::new();
    for (f, values) in &soql.conditions {
        match schema::find(&fields, f) {
            Some(d) => conditions.push((d.name.clone(), values)),
            None => return no_such_column(f, object),
        }
    }
    let page_size = state.options().query_page_size.max(1);
    let mut w = state.world();
    let mut rows: Vec<Map<String, Value>> = w
        .records
        .values()
        .filter(|r| r.object == *object)
        .filter(|r| {
            conditions.is_empty()
                || conditions.iter().any(|(f, values)| {
                    let v = if f == "Id" { Some(&r.id) } else { r.fields.get(f) };
                    v.is_some_and(|v| values.iter().any(|x| x.eq_ignore_ascii_case(v)))
                })
        })
        .map(|r| {
            let mut row = Map::new();
            row.insert(
                "attributes".into(),
                json!({"type": object, "url": format!("/services/data/{version}/sobjects/{object}/{}", r.id)}),
            );
            for f in &select {
                let v = match f.as_str() {
                    "Id" => Value::String(r.id.clone()),
                    "CreatedDate" => Value::String(sf_datetime(r.created_at)),
                    "LastModifiedDate" | "SystemModstamp" => Value::String(sf_datetime(r.modified_at)),
                    _ => r.fields.get(f).map_or(Value::Null, |v| Value::String(v.clone())),
                };
                row.insert(f.clone(), v);
            }
            row
        })
        .collect();
    if let Some(limit) = soql.limit {
        rows.truncate(limit);
    }
    let total = rows.len();
    let rest = if rows.len() > page_size {
        rows.split_off(page_size)
    } else {
        Vec::new()
    };
    let next = (!rest.is_empty()).then(|| {
        let cursor = w.new_cursor(rest);
        format!("/services/data/{version}/query/{cursor}-{page_size}")
    });
    drop(w);
    page(total, rows, next)
}

fn page(total: usize, rows: Vec<Map<String, Value>>, next: Option<String>) -> Response {
    let mut body = json!({"totalSize": total, "done": next.is_none(), "records": rows});
    if let Some(n) = next {
        body["nextRecordsUrl"] = Value::String(n);
    }
    Json(body).into_response()
}

pub async fn more(
    State(state): State<SandboxState>,
    Path((version, locator)): Path<(String, String)>,
) -> Response {
    let Some((cursor, offset)) = locator.rsplit_once('-') else {
        return errors::bad_request("INVALID_QUERY_LOCATOR", "invalid query locator");
    };
    let Ok(offset) = offset.parse::<usize>() else {
        return errors::bad_request("INVALID_QUERY_LOCATOR", "invalid query locator");
    };
    let page_size = state.options().query_page_size.max(1);
    let mut w = state.world();
    w.stats.queries += 1;
    let Some(mut rows) = w.cursors.remove(cursor) else {
        return errors::bad_request("INVALID_QUERY_LOCATOR", "invalid query locator");
    };
    let total = offset + rows.len();
    let rest = if rows.len() > page_size {
        rows.split_off(page_size)
    } else {
        Vec::new()
    };
    let next = (!rest.is_empty()).then(|| {
        w.cursors.insert(cursor.to_owned(), rest);
        format!(
            "/services/data/{version}/query/{cursor}-{}",
            offset + page_size
        )
    });
    drop(w);
    page(total, rows, next)
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
        assert_eq!(s.fields, ["Id", "Email"]);
        assert_eq!(s.object, "Lead");
        assert_eq!(s.conditions[0].1, ["a@x.co", "o'n@x.co"]);
        assert_eq!(s.conditions[1], ("Id".to_owned(), vec!["00Q1".to_owned()]));
        assert!(parse("SELECT Id FROM Lead WHERE Email IN ('a'").is_err());
        assert!(parse("SELECT Id FROM Lead WHERE Email IN ('a') AND X = 'b'").is_err());
        assert!(parse("SELECT Id FROM Lead WHERE Email = 'it''s'").is_err());
        assert_eq!(parse("select Id from Lead limit 5").unwrap().limit, Some(5));
    }
}
