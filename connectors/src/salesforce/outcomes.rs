//! The Opportunity poll ([`OutcomeSource`]): one SOQL query per pass,
//!
//! ```sql
//! SELECT Id, StageName, IsClosed, IsWon, Amount, [CurrencyIsoCode,] CloseDate, CreatedDate,
//!        SystemModstamp, (SELECT ContactId, Contact.Email FROM OpportunityContactRoles)
//! FROM Opportunity WHERE SystemModstamp >= 2026-03-01T10:00:00Z ORDER BY SystemModstamp, Id
//! ```
//!
//! paged by following `nextRecordsUrl`, one page per poll, with the cursor of [`DealCursor`].
//! The people come from the same call (the `OpportunityContactRoles` subquery), so a page costs
//! one API request. When the connector writes Leads (`object = "Lead"`), the Contacts on a deal
//! are usually converted Leads: a second query per page (`SELECT Id, ConvertedContactId FROM
//! Lead WHERE ConvertedContactId IN (…)`) maps each Contact back to the Lead id tandem's
//! deliveries got, and the Contact's email travels along for the fallback match.

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use reqwest::{Method, StatusCode};
use serde_json::{Map, Value};

use crate::{
    BuildError, ConnectorContext,
    outcome::{DealContact, DealState, Outcome, OutcomePage, OutcomeSource, to_minor_units},
    sink::{CallError, RateLimit},
};

use super::{
    SObject, SalesforceClient, SalesforceConfig,
    deal_cursor::{self, DealCursor},
    soql::{self, InClause},
    wire::{self, ApiError, QueryResponse},
};

/// What a 403 on these reads lacks.
const NEED: &str = "read access to Opportunity, OpportunityContactRole and Contact";
/// Guard against a server that never says `done` on a subquery or an id lookup.
const MAX_SUB_PAGES: usize = 20;
/// Contact ids per `ConvertedContactId IN (…)` (keeps the SOQL well under its length limit).
const IN_CHUNK: usize = 200;

type Row = Map<String, Value>;

/// Reads Opportunities changed since the cursor, with their Contacts.
pub struct SalesforceOutcomes {
    client: SalesforceClient,
    interval: Duration,
    overlap_ms: i64,
    start_ms: i64,
    currency: String,
    multi_currency: bool,
    map_converted_leads: bool,
    rate_limit: RateLimit,
}

impl std::fmt::Debug for SalesforceOutcomes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SalesforceOutcomes")
            .field("client", &self.client)
            .field("interval", &self.interval)
            .field("multi_currency", &self.multi_currency)
            .finish_non_exhaustive()
    }
}

/// A SOQL datetime literal (unquoted, UTC, whole seconds): `2026-03-01T10:00:00Z`.
pub fn soql_datetime(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms.div_euclid(1000) * 1000)
        .unwrap_or(jiff::Timestamp::UNIX_EPOCH)
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

/// The query of one pass, from its start or resumed after the cursor's last row.
pub fn query(cursor: &DealCursor, multi_currency: bool) -> String {
    let currency = if multi_currency {
        "CurrencyIsoCode, "
    } else {
        ""
    };
    let filter = match &cursor.after {
        None => format!("SystemModstamp >= {}", soql_datetime(cursor.from_ms)),
        Some((ms, id)) => {
            let t = soql_datetime(*ms);
            format!(
                "SystemModstamp > {t} OR (SystemModstamp = {t} AND Id > {})",
                soql::quote(id)
            )
        }
    };
    format!(
        "SELECT Id, StageName, IsClosed, IsWon, Amount, {currency}CloseDate, CreatedDate, SystemModstamp, \
         (SELECT ContactId, Contact.Email FROM OpportunityContactRoles) \
         FROM Opportunity WHERE {filter} ORDER BY SystemModstamp ASC, Id ASC"
    )
}

fn text_of(row: &Row, field: &str) -> Option<String> {
    row.get(field)
        .and_then(wire::text)
        .filter(|s| !s.is_empty())
}

fn flag(row: &Row, field: &str) -> bool {
    match row.get(field) {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => s.eq_ignore_ascii_case("true"),
        _ => false,
    }
}

fn malformed(what: &str) -> CallError {
    CallError::Transient {
        message: format!("Salesforce returned an Opportunity without {what}"),
        retry_after: None,
    }
}

/// One Opportunity row as an [`Outcome`] (people filled in later), and its (stamp, id).
pub fn outcome(
    row: &Row,
    default_currency: &str,
    multi_currency: bool,
) -> Result<Outcome, CallError> {
    let deal_id = text_of(row, "Id").ok_or_else(|| malformed("an Id"))?;
    let modified_at_ms = text_of(row, "SystemModstamp")
        .and_then(|t| deal_cursor::datetime_ms(&t))
        .ok_or_else(|| malformed("a readable SystemModstamp"))?;
    let state = match (flag(row, "IsClosed"), flag(row, "IsWon")) {
        (_, true) => DealState::Won,
        (true, false) => DealState::Lost,
        (false, false) => DealState::Open,
    };
    let currency = multi_currency
        .then(|| text_of(row, "CurrencyIsoCode"))
        .flatten()
        .filter(|c| deal_cursor::check_currency(c).is_ok())
        .unwrap_or_else(|| default_currency.to_owned())
        .to_ascii_uppercase();
    let amount_minor = text_of(row, "Amount").and_then(|a| to_minor_units(&a, &currency));
    // CloseDate is the expected close date while a deal is open; it only means "closed then" after.
    let closed_at_ms = (state != DealState::Open)
        .then(|| text_of(row, "CloseDate").and_then(|d| deal_cursor::date_ms(&d)))
        .flatten()
        // A date, not an instant: the end of that day, or the last change if earlier.
        .map(|day| crate::outcome::close_instant_of_date(day, modified_at_ms));
    let created_at_ms = text_of(row, "CreatedDate")
        .and_then(|t| deal_cursor::datetime_ms(&t))
        .unwrap_or(modified_at_ms);
    Ok(Outcome {
        deal_id,
        pipeline: None,
        stage: text_of(row, "StageName").unwrap_or_default(),
        state,
        amount_minor,
        currency: Some(currency),
        created_at_ms,
        closed_at_ms,
        modified_at_ms,
        contacts: Vec::new(),
    })
}

/// A contact role row: (ContactId, Contact.Email).
fn contact_role(row: &Row) -> Option<(String, Option<String>)> {
    let id = text_of(row, "ContactId")?;
    let email = row
        .get("Contact")
        .and_then(Value::as_object)
        .and_then(|c| text_of(c, "Email"));
    Some((id, email))
}

impl SalesforceOutcomes {
    pub fn new(config: &SalesforceConfig, ctx: ConnectorContext) -> Result<Self, BuildError> {
        Ok(SalesforceOutcomes {
            client: SalesforceClient::new(config, ctx)?,
            interval: config.outcome_poll_interval.0,
            overlap_ms: config.outcome_overlap.0.as_millis() as i64,
            start_ms: deal_cursor::start_ms(config.outcomes_since.as_deref()),
            currency: config.currency.to_ascii_uppercase(),
            multi_currency: config.multi_currency,
            map_converted_leads: config.object == SObject::Lead,
            rate_limit: config.effective_rate_limit(),
        })
    }

    async fn get_page(
        &self,
        path: &str,
        query: &[(&str, &str)],
    ) -> Result<QueryResponse, CallError> {
        let answer = self
            .client
            .call_needing(NEED, Method::GET, path, query, None)
            .await?;
        SalesforceClient::decode(&answer)
    }

    /// The rest of a pass by its query locator; `None` when Salesforce no longer has it (locators
    /// expire after 15 minutes unused), so the caller re-queries from the cursor.
    async fn resume(&self, locator: &str) -> Result<Option<QueryResponse>, CallError> {
        let raw = self
            .client
            .call_raw(Method::GET, locator, &[], None)
            .await?;
        if raw.status.is_success() {
            let answer = super::client::Answer {
                headers: raw.headers,
                body: raw.body,
            };
            return SalesforceClient::decode(&answer).map(Some);
        }
        let errors: Vec<ApiError> = serde_json::from_slice(&raw.body).unwrap_or_default();
        let expired = raw.status == StatusCode::NOT_FOUND
            || errors
                .iter()
                .any(|e| e.error_code == "INVALID_QUERY_LOCATOR");
        if expired {
            tracing::info!(
                connector = %self.client.ctx.name,
                "Salesforce query locator expired; querying again from the cursor"
            );
            return Ok(None);
        }
        Err(self
            .client
            .classify(raw.status, &raw.headers, &raw.body, NEED))
    }

    /// Every contact role of a deal row, following the subquery's own paging.
    async fn roles(&self, row: &Row) -> Result<Vec<(String, Option<String>)>, CallError> {
        let Some(Value::Object(sub)) = row.get("OpportunityContactRoles") else {
            return Ok(Vec::new());
        };
        let mut page: QueryResponse =
            serde_json::from_value(Value::Object(sub.clone())).unwrap_or_default();
        let mut roles: Vec<_> = page.records.iter().filter_map(contact_role).collect();
        let mut pages = 1;
        while let (false, Some(next)) = (page.done, page.next_records_url.take()) {
            if pages >= MAX_SUB_PAGES {
                break;
            }
            page = self.get_page(&next, &[]).await?;
            roles.extend(page.records.iter().filter_map(contact_role));
            pages += 1;
        }
        Ok(roles)
    }

    /// Contact id → the ids of the Leads converted into it.
    async fn converted_leads(
        &self,
        contact_ids: &[String],
    ) -> Result<HashMap<String, Vec<String>>, CallError> {
        let mut map: HashMap<String, Vec<String>> = HashMap::new();
        for chunk in contact_ids.chunks(IN_CHUNK) {
            let Some(q) = soql::select_in(
                "Lead",
                &["ConvertedContactId"],
                &[InClause {
                    field: "ConvertedContactId",
                    values: chunk.to_vec(),
                }],
            ) else {
                continue;
            };
            let path = self.client.data_path("query");
            let mut page = self.get_page(&path, &[("q", &q)]).await?;
            let mut pages = 1;
            loop {
                for r in &page.records {
                    if let (Some(lead), Some(contact)) =
                        (text_of(r, "Id"), text_of(r, "ConvertedContactId"))
                    {
                        map.entry(contact).or_default().push(lead);
                    }
                }
                match (page.done, page.next_records_url.take()) {
                    (false, Some(next)) if pages < MAX_SUB_PAGES => {
                        page = self.get_page(&next, &[]).await?;
                        pages += 1;
                    }
                    _ => break,
                }
            }
        }
        Ok(map)
    }
}

#[async_trait]
impl OutcomeSource for SalesforceOutcomes {
    fn interval(&self) -> Duration {
        self.interval
    }

    fn rate_limit(&self) -> RateLimit {
        self.rate_limit
    }

    async fn poll_outcomes(&self, cursor: Option<&str>) -> Result<OutcomePage, CallError> {
        let mut c = DealCursor::decode(cursor, self.start_ms, &self.client.ctx.name);
        let resumed = match c.locator.take() {
            Some(locator) => self.resume(&locator).await?,
            None => None,
        };
        let page = match resumed {
            Some(p) => p,
            None => {
                let q = query(&c, self.multi_currency);
                self.get_page(&self.client.data_path("query"), &[("q", &q)])
                    .await?
            }
        };
        let mut outcomes = Vec::with_capacity(page.records.len());
        let mut roles = Vec::with_capacity(page.records.len());
        for row in &page.records {
            outcomes.push(outcome(row, &self.currency, self.multi_currency)?);
            roles.push(self.roles(row).await?);
        }
        let leads = if self.map_converted_leads {
            let mut ids: Vec<String> = roles.iter().flatten().map(|(id, _)| id.clone()).collect();
            ids.sort();
            ids.dedup();
            self.converted_leads(&ids).await?
        } else {
            HashMap::new()
        };
        for (o, roles) in outcomes.iter_mut().zip(roles) {
            for (contact_id, email) in roles {
                let ids = leads
                    .get(&contact_id)
                    .cloned()
                    .unwrap_or_else(|| vec![contact_id.clone()]);
                for remote_id in ids {
                    if !o.contacts.iter().any(|p| p.remote_id == remote_id) {
                        o.contacts.push(DealContact {
                            remote_id,
                            email: email.clone(),
                        });
                    }
                }
            }
        }
        c.page_read(
            outcomes
                .iter()
                .map(|o| (o.modified_at_ms, o.deal_id.as_str())),
        );
        let more = match (page.done, page.next_records_url) {
            (false, Some(next)) => {
                c.locator = Some(next);
                true
            }
            _ => {
                c.end_pass(self.overlap_ms);
                false
            }
        };
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
    fn passes_start_at_the_cursor_and_resume_after_its_last_row() {
        let mut c = DealCursor::starting_at(1_774_915_201_999);
        assert_eq!(
            query(&c, false),
            "SELECT Id, StageName, IsClosed, IsWon, Amount, CloseDate, CreatedDate, SystemModstamp, \
             (SELECT ContactId, Contact.Email FROM OpportunityContactRoles) FROM Opportunity \
             WHERE SystemModstamp >= 2026-03-31T00:00:01Z ORDER BY SystemModstamp ASC, Id ASC"
        );
        c.page_read([(1_774_915_202_000, "006A'")]);
        let q = query(&c, true);
        assert!(q.contains("Amount, CurrencyIsoCode, CloseDate"), "{q}");
        assert!(
            q.contains(
                "WHERE SystemModstamp > 2026-03-31T00:00:02Z OR (SystemModstamp = 2026-03-31T00:00:02Z AND Id > '006A\\'')"
            ),
            "{q}"
        );
    }

    #[test]
    fn rows_become_outcomes_with_the_crms_verdict() {
        let row: Row = serde_json::from_value(serde_json::json!({
            "attributes": {"type": "Opportunity"},
            "Id": "006A", "StageName": "Closed Won", "IsClosed": true, "IsWon": true,
            "Amount": 1500.5, "CurrencyIsoCode": "EUR", "CloseDate": "2026-03-31",
            "CreatedDate": "2026-03-01T00:00:00.000+0000",
            "SystemModstamp": "2026-03-31T00:00:01.000+0000",
            "OpportunityContactRoles": null
        }))
        .unwrap();
        let o = outcome(&row, "USD", true).unwrap();
        assert_eq!(o.state, DealState::Won);
        assert_eq!(
            (o.amount_minor, o.currency.as_deref()),
            (Some(150_050), Some("EUR"))
        );
        // CloseDate 2026-03-31, changed one second into that day: closed by the end of that second.
        assert_eq!(o.closed_at_ms, Some(1_774_915_201_999));
        assert_eq!(o.modified_at_ms, 1_774_915_201_000);
        let o = outcome(&row, "JPY", false).unwrap();
        assert_eq!(
            (o.amount_minor, o.currency.as_deref()),
            (Some(1501), Some("JPY"))
        );
        let mut open = row.clone();
        open.insert("IsClosed".into(), Value::Bool(false));
        open.insert("IsWon".into(), Value::Bool(false));
        open.insert("Amount".into(), Value::Null);
        let o = outcome(&open, "USD", false).unwrap();
        assert_eq!(
            (o.state, o.closed_at_ms, o.amount_minor),
            (DealState::Open, None, None)
        );
        let mut lost = row.clone();
        lost.insert("IsWon".into(), Value::Bool(false));
        assert_eq!(outcome(&lost, "USD", false).unwrap().state, DealState::Lost);
        let mut broken = row;
        broken.remove("SystemModstamp");
        assert!(matches!(
            outcome(&broken, "USD", false),
            Err(CallError::Transient { .. })
        ));
    }
}
