//! The Deals poll ([`OutcomeSource`]): one COQL query per page,
//!
//! ```sql
//! select id, Stage, Amount, [Currency,] Closing_Date, Created_Time, Modified_Time, Contact_Name,
//!        Contact_Name.Email from Deals
//! where Modified_Time >= '2026-03-01T10:00:00+00:00'
//! order by Modified_Time asc, id asc limit 200
//! ```
//!
//! paged by keyset (`(Modified_Time > 'T') or ((Modified_Time = 'T') and (id > N))`) with the
//! cursor of [`DealCursor`], never by OFFSET: a deal modified mid-pass moves to the end of the
//! order, and an offset would then skip the row after it (and COQL stops offsets at 100,000).
//! COQL was chosen over `GET /Deals` with `If-Modified-Since`: it orders by (time, id), pages
//! without a server-side token that expires, and reads the contact's email in the same call.
//! A page of up to 200 rows costs one API credit. The person is the deal's `Contact_Name` (a
//! Contact id) with its email; Zoho converts a Lead into a Contact, so for orgs where tandem writes
//! Leads the email is what links the two (docs/crm/zoho.md).

use std::time::Duration;

use async_trait::async_trait;
use reqwest::StatusCode;
use serde_json::{Map, Value};

use crate::{
    BuildError, ConnectorContext,
    outcome::{DealContact, DealState, Outcome, OutcomePage, OutcomeSource, to_minor_units},
    salesforce::deal_cursor::{self, DealCursor},
    sink::{CallError, RateLimit},
};

use super::{
    ZohoClient, ZohoConfig, client,
    wire::{CoqlRequest, CoqlResponse, cell_text},
};

/// Rows per page: the most one API credit buys.
pub const PAGE: usize = 200;

type Row = Map<String, Value>;

/// Reads Deals changed since the cursor, with their contact.
pub struct ZohoOutcomes {
    client: ZohoClient,
    name: String,
    interval: Duration,
    overlap_ms: i64,
    start_ms: i64,
    currency: String,
    multi_currency: bool,
    won: Vec<String>,
    lost: Vec<String>,
    rate_limit: RateLimit,
}

impl std::fmt::Debug for ZohoOutcomes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ZohoOutcomes")
            .field("client", &self.client)
            .field("interval", &self.interval)
            .field("won", &self.won)
            .field("lost", &self.lost)
            .finish_non_exhaustive()
    }
}

/// A COQL datetime value (quoted, UTC, whole seconds): `'2026-03-01T10:00:00+00:00'`.
pub fn coql_datetime(ms: i64) -> String {
    let t = jiff::Timestamp::from_millisecond(ms.div_euclid(1000) * 1000)
        .unwrap_or(jiff::Timestamp::UNIX_EPOCH);
    format!("'{}'", t.strftime("%Y-%m-%dT%H:%M:%S+00:00"))
}

/// The query of one page: from the pass's start, or after the cursor's last row.
pub fn query(cursor: &DealCursor, multi_currency: bool) -> String {
    let currency = if multi_currency { "Currency, " } else { "" };
    let after = cursor
        .after
        .as_ref()
        .filter(|(_, id)| !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()));
    let filter = match after {
        None => format!("Modified_Time >= {}", coql_datetime(cursor.from_ms)),
        Some((ms, id)) => {
            let t = coql_datetime(*ms);
            format!("(Modified_Time > {t}) or ((Modified_Time = {t}) and (id > {id}))")
        }
    };
    format!(
        "select id, Stage, Amount, {currency}Closing_Date, Created_Time, Modified_Time, Contact_Name, \
         Contact_Name.Email from Deals where {filter} order by Modified_Time asc, id asc limit {PAGE}"
    )
}

fn text_of(row: &Row, field: &str) -> Option<String> {
    row.get(field).and_then(cell_text).filter(|s| !s.is_empty())
}

/// A lookup cell's id: `{"id": "…"}` (or a bare id).
fn lookup_id(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::Object(o) => match o.get("id")? {
            Value::String(s) if !s.is_empty() => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        },
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn malformed(what: &str) -> CallError {
    CallError::Transient {
        message: format!("Zoho returned a Deal without {what}"),
        retry_after: None,
    }
}

impl ZohoOutcomes {
    pub fn new(config: &ZohoConfig, ctx: ConnectorContext) -> Result<Self, BuildError> {
        let trimmed = |v: &[String]| {
            v.iter()
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
                .collect()
        };
        Ok(ZohoOutcomes {
            name: ctx.name.clone(),
            client: ZohoClient::new(config, ctx)?,
            interval: config.outcome_poll_interval.0,
            overlap_ms: config.outcome_overlap.0.as_millis() as i64,
            start_ms: deal_cursor::start_ms(config.outcomes_since.as_deref()),
            currency: config.currency.to_ascii_uppercase(),
            multi_currency: config.multi_currency,
            won: trimmed(&config.won_stages),
            lost: trimmed(&config.lost_stages),
            rate_limit: config.effective_rate_limit(),
        })
    }

    /// The stage's verdict by the configured won and lost stages.
    pub fn state(&self, stage: &str) -> DealState {
        let stage = stage.trim();
        if self.won.iter().any(|s| s.eq_ignore_ascii_case(stage)) {
            DealState::Won
        } else if self.lost.iter().any(|s| s.eq_ignore_ascii_case(stage)) {
            DealState::Lost
        } else {
            DealState::Open
        }
    }

    /// One Deals row as an [`Outcome`].
    pub fn outcome(&self, row: &Row) -> Result<Outcome, CallError> {
        let deal_id = lookup_id(row.get("id")).ok_or_else(|| malformed("an id"))?;
        let modified_at_ms = text_of(row, "Modified_Time")
            .and_then(|t| deal_cursor::datetime_ms(&t))
            .ok_or_else(|| malformed("a readable Modified_Time"))?;
        let stage = text_of(row, "Stage").unwrap_or_default();
        let state = self.state(&stage);
        let currency = self
            .multi_currency
            .then(|| text_of(row, "Currency"))
            .flatten()
            .filter(|c| deal_cursor::check_currency(c).is_ok())
            .unwrap_or_else(|| self.currency.clone())
            .to_ascii_uppercase();
        let amount_minor = text_of(row, "Amount").and_then(|a| to_minor_units(&a, &currency));
        // Closing_Date is the expected date while a deal is open.
        let closed_at_ms = (state != DealState::Open)
            .then(|| text_of(row, "Closing_Date").and_then(|d| deal_cursor::date_ms(&d)))
            .flatten()
            // A date, not an instant: the end of that day, or the last change if earlier.
            .map(|day| crate::outcome::close_instant_of_date(day, modified_at_ms));
        let created_at_ms = text_of(row, "Created_Time")
            .and_then(|t| deal_cursor::datetime_ms(&t))
            .unwrap_or(modified_at_ms);
        let contacts = lookup_id(row.get("Contact_Name"))
            .map(|remote_id| DealContact {
                remote_id,
                email: text_of(row, "Contact_Name.Email"),
            })
            .into_iter()
            .collect();
        Ok(Outcome {
            deal_id,
            pipeline: None,
            stage,
            state,
            amount_minor,
            currency: Some(currency),
            created_at_ms,
            closed_at_ms,
            modified_at_ms,
            contacts,
        })
    }
}

#[async_trait]
impl OutcomeSource for ZohoOutcomes {
    fn interval(&self) -> Duration {
        self.interval
    }

    fn rate_limit(&self) -> RateLimit {
        self.rate_limit
    }

    async fn poll_outcomes(&self, cursor: Option<&str>) -> Result<OutcomePage, CallError> {
        let mut c = DealCursor::decode(cursor, self.start_ms, &self.name);
        let request = CoqlRequest {
            select_query: query(&c, self.multi_currency),
        };
        let answer = self
            .client
            .call(&|base| {
                self.client
                    .http()
                    .post(format!("{base}crm/v8/coql"))
                    .json(&request)
            })
            .await?;
        let page = match answer.status {
            StatusCode::NO_CONTENT => CoqlResponse::default(),
            StatusCode::OK => {
                serde_json::from_slice(&answer.body).map_err(|e| CallError::Transient {
                    message: format!(
                        "Zoho answered the Deals query with a body tandem could not read: {e}"
                    ),
                    retry_after: None,
                })?
            }
            s => return Err(client::classify(s, &answer.headers, &answer.body)),
        };
        let outcomes = page
            .data
            .iter()
            .map(|row| self.outcome(row))
            .collect::<Result<Vec<_>, _>>()?;
        c.page_read(
            outcomes
                .iter()
                .map(|o| (o.modified_at_ms, o.deal_id.as_str())),
        );
        let more = page.info.more_records && !outcomes.is_empty();
        if !more {
            c.end_pass(self.overlap_ms);
        }
        Ok(OutcomePage {
            outcomes,
            next_cursor: c.encode(),
            more,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_start_at_the_cursor_and_resume_after_its_last_row() {
        let mut c = DealCursor::starting_at(1_774_915_201_999);
        assert_eq!(
            query(&c, false),
            "select id, Stage, Amount, Closing_Date, Created_Time, Modified_Time, Contact_Name, \
             Contact_Name.Email from Deals where Modified_Time >= '2026-03-31T00:00:01+00:00' \
             order by Modified_Time asc, id asc limit 200"
        );
        c.page_read([(1_774_915_202_000, "5725767000000524001")]);
        let q = query(&c, true);
        assert!(q.contains("Amount, Currency, Closing_Date"), "{q}");
        assert!(
            q.contains(
                "where (Modified_Time > '2026-03-31T00:00:02+00:00') or ((Modified_Time = \
                 '2026-03-31T00:00:02+00:00') and (id > 5725767000000524001))"
            ),
            "{q}"
        );
        // An id that is not a Zoho id never reaches the query.
        c.after = Some((1_774_915_202_000, "1) or (1=1".to_owned()));
        assert!(query(&c, false).contains("Modified_Time >= "));
    }
}
