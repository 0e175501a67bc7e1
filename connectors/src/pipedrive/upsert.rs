//! One engine call, record by record, with as few requests as the guarantees allow:
//!
//! 1. Records with a stored `remote_id` are that person. Others are looked up by an exact email
//!    search; when the search finds nothing, the persons added within `recent_window` are listed
//!    once per call (newest first, no index lag) and matched by email, so a create whose answer
//!    was lost is found before a second one is made.
//! 2. One batch read (`GET /api/v2/persons?ids=…`) of the existing persons, only when a record
//!    needs their current values: a non-overwrite conflict rule, or an email/phone/name part to
//!    merge (Pipedrive replaces a list written in a PATCH).
//! 3. Writes in input order: PATCH the existing person (a 404 means it was deleted or merged:
//!    search again, else create), or POST a new one and record its id in the daemon's store at
//!    once. Then, with `create_lead`, a lead for the delivery.
//!
//! A whole-call failure (429, 5xx, timeout, dropped connection) before any record finished is
//! returned as the call's error; after some finished, those keep their results and the rest are
//! handed back as transient. 401/403 always fail the call.

use std::collections::HashMap;

use reqwest::{Method, StatusCode, header::HeaderMap};

use crate::{
    model::{OnConflict, SinkRecord},
    sink::{BatchOutcome, CallError, ItemResult},
};

use super::{
    client::{Answer, PipedriveClient, classify, decode},
    limits::{self, Lane},
    mapping,
    wire::{Lead, LeadBody, Person, SearchData},
};

pub const NO_EMAIL_MESSAGE: &str = "lead has no email and no Pipedrive person id from an earlier delivery; tandem matches Pipedrive persons by email, so it cannot tell whether this person exists";
const PERSONS: &str = "api/v2/persons";
/// Newest-first pages read when looking for persons the search can't see yet.
const RECENT_PAGES: usize = 5;
const RECENT_PAGE_SIZE: usize = 100;

/// Where a record's person is, as far as known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Found {
    /// Nothing found: create.
    New,
    /// This id (from remote_id, search, recent list or an earlier create in this call).
    Id(u64),
}

struct Run<'a> {
    c: &'a PipedriveClient,
    batch: &'a [SinkRecord],
    items: Vec<Option<ItemResult>>,
    /// Full persons read in this call, by id.
    persons: HashMap<u64, Person>,
    /// Persons added recently (lazy: fetched at most once per call).
    recent: Option<Vec<Person>>,
    /// Ids the record came with (stored remote ids that parse).
    known: Vec<Option<u64>>,
    last_headers: Option<HeaderMap>,
}

/// Entry point: [`crate::LeadSink::upsert_people`].
pub async fn run(c: &PipedriveClient, batch: &[SinkRecord]) -> Result<BatchOutcome, CallError> {
    let mut run = Run {
        c,
        batch,
        items: vec![None; batch.len()],
        persons: HashMap::new(),
        recent: None,
        known: batch
            .iter()
            .map(|r| r.remote_id.as_deref().and_then(|id| id.trim().parse().ok()))
            .collect(),
        last_headers: None,
    };
    let result = run.work().await;
    let pause_for = run
        .last_headers
        .as_ref()
        .and_then(limits::pause_after_success);
    match result {
        Ok(()) => Ok(BatchOutcome {
            items: run
                .items
                .into_iter()
                .map(|i| i.unwrap_or_else(|| transient("no result for this record")))
                .collect(),
            pause_for,
        }),
        Err(e @ CallError::Auth { .. }) => Err(e),
        Err(e) if run.items.iter().all(Option::is_none) => Err(e),
        Err(e) => {
            let pause = match &e {
                CallError::RateLimited { retry_after, .. } => Some(*retry_after),
                CallError::Transient { retry_after, .. } => *retry_after,
                _ => None,
            };
            let message = format!("not finished in this call: {e}");
            Ok(BatchOutcome {
                items: run
                    .items
                    .into_iter()
                    .map(|i| i.unwrap_or_else(|| transient(&message)))
                    .collect(),
                pause_for: pause.or(pause_for),
            })
        }
    }
}

fn transient(message: &str) -> ItemResult {
    ItemResult::Transient {
        message: message.to_owned(),
    }
}

fn permanent(message: impl Into<String>) -> ItemResult {
    ItemResult::Permanent {
        message: message.into(),
    }
}

/// Whether writing `record` to an existing person needs the person's current values.
fn needs_current_values(record: &SinkRecord, by_stored_id: bool) -> bool {
    let p = &record.properties;
    let has = |k: &str| p.get(k).is_some_and(|v| !v.trim().is_empty());
    record
        .conflict
        .values()
        .any(|r| *r != OnConflict::Overwrite)
        || has("phone")
        || (!has("name") && (has("first_name") || has("last_name")))
        || (by_stored_id && has("email"))
}

impl Run<'_> {
    fn note(&mut self, answer: &Answer) {
        self.last_headers = Some(answer.headers.clone());
    }

    async fn get(
        &mut self,
        path: &str,
        query: &[(&str, String)],
        lane: Lane,
    ) -> Result<Answer, CallError> {
        let a = self
            .c
            .request::<()>(Method::GET, path, query, None, lane)
            .await?;
        self.note(&a);
        Ok(a)
    }

    #[allow(
        clippy::needless_range_loop,
        reason = "several parallel per-record vectors are indexed together"
    )]
    async fn work(&mut self) -> Result<(), CallError> {
        let n = self.batch.len();
        let mut found = vec![Found::New; n];
        // 1. Find every person that isn't known by id.
        for i in 0..n {
            let record = &self.batch[i];
            if let Some(id) = self.known[i] {
                found[i] = Found::Id(id);
                continue;
            }
            let Some(email) = mapping::email_of(record).map(str::to_owned) else {
                self.items[i] = Some(permanent(NO_EMAIL_MESSAGE));
                continue;
            };
            // Two records of one person in a call: the later one follows the earlier.
            if let Some(j) = (0..i).find(|j| {
                self.known[*j].is_none()
                    && mapping::email_of(&self.batch[*j])
                        .is_some_and(|e| e.eq_ignore_ascii_case(&email))
            }) {
                found[i] = found[j];
                continue;
            }
            match self.find_by_email(&email).await? {
                Ok(f) => found[i] = f,
                Err(message) => self.items[i] = Some(permanent(message)),
            }
        }
        // 2. One read of the current values, where a record needs them.
        let wanted: Vec<u64> = (0..n)
            .filter(|i| self.items[*i].is_none())
            .filter_map(|i| match found[i] {
                Found::Id(id)
                    if !self.persons.contains_key(&id)
                        && needs_current_values(&self.batch[i], self.known[i].is_some()) =>
                {
                    Some(id)
                }
                _ => None,
            })
            .collect();
        if !wanted.is_empty() {
            self.read_persons(&wanted).await?;
            // A stored id that is gone (deleted, merged): find the person again by email.
            for i in 0..n {
                if self.items[i].is_none()
                    && let (Some(id), Found::Id(f)) = (self.known[i], found[i])
                    && id == f
                    && wanted.contains(&id)
                    && !self.persons.contains_key(&id)
                {
                    found[i] = self.refind(i).await?;
                }
            }
        }
        // 3. Writes, in input order.
        let mut created_here: HashMap<usize, u64> = HashMap::new();
        for i in 0..n {
            if self.items[i].is_some() {
                continue;
            }
            // A duplicate of an earlier record that was created in this call: update that one.
            if found[i] == Found::New
                && let Some(email) = mapping::email_of(&self.batch[i])
                && let Some((_, id)) = created_here.iter().find(|(j, _)| {
                    mapping::email_of(&self.batch[**j])
                        .is_some_and(|e| e.eq_ignore_ascii_case(email))
                })
            {
                found[i] = Found::Id(*id);
            }
            let result = self.write(i, found[i]).await?;
            if let ItemResult::Done {
                remote_id,
                created: true,
            } = &result
                && let Ok(id) = remote_id.parse()
            {
                created_here.insert(i, id);
            }
            self.items[i] = Some(result);
        }
        Ok(())
    }

    /// Exact email search, then the recent persons. `Ok(Err(msg))` = Pipedrive refused the search.
    async fn find_by_email(&mut self, email: &str) -> Result<Result<Found, String>, CallError> {
        let query = [
            ("term", email.to_owned()),
            ("fields", "email".to_owned()),
            ("exact_match", "true".to_owned()),
            ("limit", "10".to_owned()),
        ];
        let a = self
            .get(&format!("{PERSONS}/search"), &query, Lane::Search)
            .await?;
        if !a.status.is_success() {
            return match classify(&a) {
                CallError::Permanent { message } => Ok(Err(message)),
                other => Err(other),
            };
        }
        let data: SearchData = decode(&a)?.data.unwrap_or_default();
        let hit = data
            .items
            .iter()
            .filter(|h| {
                h.item
                    .email_values()
                    .any(|e| e.trim().eq_ignore_ascii_case(email))
            })
            .map(|h| h.item.id)
            .min();
        if let Some(id) = hit {
            return Ok(Ok(Found::Id(id)));
        }
        if self.recent.is_none() {
            self.recent = Some(self.recent_persons().await?);
        }
        let recent = self.recent.as_deref().unwrap_or_default();
        match recent
            .iter()
            .filter(|p| p.has_email(email))
            .min_by_key(|p| p.id)
        {
            Some(p) => {
                let id = p.id;
                self.persons.insert(id, p.clone());
                Ok(Ok(Found::Id(id)))
            }
            None => Ok(Ok(Found::New)),
        }
    }

    /// Persons added within the recent window, newest first (the list has no index lag).
    async fn recent_persons(&mut self) -> Result<Vec<Person>, CallError> {
        let since = jiff::Timestamp::now()
            - jiff::SignedDuration::try_from(self.c.recent_window).unwrap_or_default();
        let mut out = Vec::new();
        let mut cursor: Option<String> = None;
        for _ in 0..RECENT_PAGES {
            let mut query = vec![
                ("sort_by", "add_time".to_owned()),
                ("sort_direction", "desc".to_owned()),
                ("limit", RECENT_PAGE_SIZE.to_string()),
            ];
            if let Some(c) = &cursor {
                query.push(("cursor", c.clone()));
            }
            let a = self.get(PERSONS, &query, Lane::General).await?;
            if !a.status.is_success() {
                return Err(classify(&a));
            }
            let page = decode::<Vec<Person>>(&a)?;
            let persons = page.data.unwrap_or_default();
            let older = persons
                .iter()
                .filter_map(|p| p.add_time.as_deref()?.parse::<jiff::Timestamp>().ok())
                .any(|t| t < since);
            out.extend(persons);
            cursor = page.additional_data.and_then(|d| d.next_cursor);
            if older || cursor.is_none() {
                break;
            }
        }
        Ok(out)
    }

    /// `GET /api/v2/persons?ids=…` into `self.persons`; missing ids are gone.
    async fn read_persons(&mut self, ids: &[u64]) -> Result<(), CallError> {
        let list = ids.iter().map(u64::to_string).collect::<Vec<_>>().join(",");
        let query = [("ids", list), ("limit", ids.len().max(1).to_string())];
        let a = self.get(PERSONS, &query, Lane::General).await?;
        if !a.status.is_success() {
            return Err(classify(&a));
        }
        for p in decode::<Vec<Person>>(&a)?.data.unwrap_or_default() {
            if !p.is_deleted {
                self.persons.insert(p.id, p);
            }
        }
        Ok(())
    }

    /// The stored id of record `i` is gone: search by email (and read what is found).
    async fn refind(&mut self, i: usize) -> Result<Found, CallError> {
        self.known[i] = None;
        let Some(email) = mapping::email_of(&self.batch[i]).map(str::to_owned) else {
            return Ok(Found::New);
        };
        let found = match self.find_by_email(&email).await? {
            Ok(f) => f,
            Err(_) => Found::New,
        };
        if let Found::Id(id) = found
            && !self.persons.contains_key(&id)
        {
            self.read_persons(&[id]).await?;
        }
        Ok(found)
    }

    async fn write(&mut self, i: usize, found: Found) -> Result<ItemResult, CallError> {
        let record = &self.batch[i];
        let (person_id, created) = match found {
            Found::Id(id) => match self.patch(i, id).await? {
                Patched::Done => (id, false),
                Patched::Refused(message) => return Ok(permanent(message)),
                Patched::Gone => match self.refind(i).await? {
                    Found::Id(other) if other != id => match self.patch(i, other).await? {
                        Patched::Done => (other, false),
                        Patched::Refused(m) => return Ok(permanent(m)),
                        Patched::Gone => {
                            return Ok(transient(
                                "the person was deleted or merged while tandem wrote to it",
                            ));
                        }
                    },
                    _ => match self.create(record).await? {
                        Ok(new_id) => (new_id, true),
                        Err(m) => return Ok(permanent(m)),
                    },
                },
            },
            Found::New => match self.create(record).await? {
                Ok(id) => (id, true),
                Err(m) => return Ok(permanent(m)),
            },
        };
        if self.c.create_lead
            && let Err(message) = self.open_lead(record, person_id, created).await?
        {
            return Ok(permanent(format!(
                "person {person_id} was saved, but Pipedrive refused the lead: {message}"
            )));
        }
        Ok(ItemResult::Done {
            remote_id: person_id.to_string(),
            created,
        })
    }

    async fn patch(&mut self, i: usize, id: u64) -> Result<Patched, CallError> {
        let record = &self.batch[i];
        let body = match mapping::update_body(record, self.persons.get(&id)) {
            Ok(b) => b,
            Err(m) => return Ok(Patched::Refused(m)),
        };
        if body.is_empty() {
            // Every property is ruled out (or already there): nothing to write.
            return Ok(Patched::Done);
        }
        let a = self
            .c
            .request(
                Method::PATCH,
                &format!("{PERSONS}/{id}"),
                &[],
                Some(&body),
                Lane::General,
            )
            .await?;
        self.note(&a);
        Ok(match a.status {
            s if s.is_success() => Patched::Done,
            StatusCode::NOT_FOUND | StatusCode::GONE => Patched::Gone,
            _ => match classify(&a) {
                CallError::Permanent { message } => Patched::Refused(message),
                other => return Err(other),
            },
        })
    }

    /// POST a new person and record its id at once. `Ok(Err(msg))` = Pipedrive refused it.
    async fn create(&mut self, record: &SinkRecord) -> Result<Result<u64, String>, CallError> {
        let body = match mapping::create_body(record) {
            Ok(b) => b,
            Err(m) => return Ok(Err(m)),
        };
        let a = self
            .c
            .request(Method::POST, PERSONS, &[], Some(&body), Lane::General)
            .await?;
        self.note(&a);
        if !a.status.is_success() {
            return match classify(&a) {
                CallError::Permanent { message } => Ok(Err(message)),
                other => Err(other),
            };
        }
        let Some(person) = decode::<Person>(&a)?.data else {
            return Err(CallError::Transient {
                message: "Pipedrive answered the create without the person".to_owned(),
                retry_after: None,
            });
        };
        // Before anything else: a retry of this delivery must update, not create.
        if let Err(e) = self
            .c
            .ctx
            .state
            .record_remote_id(record.delivery_id, &person.id.to_string())
            .await
        {
            tracing::warn!(connector = %self.c.ctx.name, delivery_id = record.delivery_id, error = %e, "could not record the new Pipedrive person id");
        }
        if let Some(email) = mapping::email_of(record)
            && let Some(recent) = &mut self.recent
            && person.has_email(email)
        {
            recent.push(person.clone());
        }
        self.persons.insert(person.id, person.clone());
        Ok(Ok(person.id))
    }

    /// One lead per delivery. For a person that already existed, the person's leads are checked
    /// first: a lead with the same title added within the recent window is this delivery's
    /// (its create answer was lost), so no second one is opened.
    async fn open_lead(
        &mut self,
        record: &SinkRecord,
        person_id: u64,
        person_created: bool,
    ) -> Result<Result<(), String>, CallError> {
        let title = mapping::render_title(&self.c.lead_title, record);
        if !person_created {
            let query = [
                ("person_id", person_id.to_string()),
                ("limit", "50".to_owned()),
                ("sort", "add_time DESC".to_owned()),
            ];
            let a = self.get("api/v1/leads", &query, Lane::General).await?;
            if !a.status.is_success() {
                return match classify(&a) {
                    CallError::Permanent { message } => Ok(Err(message)),
                    other => Err(other),
                };
            }
            let since = jiff::Timestamp::now()
                - jiff::SignedDuration::try_from(self.c.recent_window).unwrap_or_default();
            let leads: Vec<Lead> = decode(&a)?.data.unwrap_or_default();
            let already = leads.iter().any(|l| {
                l.title == title
                    && l.add_time
                        .as_deref()
                        .and_then(parse_time)
                        .is_some_and(|t| t >= since)
            });
            if already {
                return Ok(Ok(()));
            }
        }
        let body = LeadBody { title, person_id };
        let a = self
            .c
            .request(
                Method::POST,
                "api/v1/leads",
                &[],
                Some(&body),
                Lane::General,
            )
            .await?;
        self.note(&a);
        if a.status.is_success() {
            return Ok(Ok(()));
        }
        match classify(&a) {
            CallError::Permanent { message } => Ok(Err(message)),
            other => Err(other),
        }
    }
}

enum Patched {
    Done,
    Gone,
    Refused(String),
}

/// Pipedrive writes times as RFC 3339 (v2) or `YYYY-MM-DD HH:MM:SS` in UTC (v1).
fn parse_time(s: &str) -> Option<jiff::Timestamp> {
    s.parse::<jiff::Timestamp>().ok().or_else(|| {
        let dt: jiff::civil::DateTime = s.trim().replace(' ', "T").parse().ok()?;
        dt.to_zoned(jiff::tz::TimeZone::UTC)
            .ok()
            .map(|z| z.timestamp())
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    #[test]
    fn current_values_are_read_only_when_a_rule_or_a_merge_needs_them() {
        let mut r = SinkRecord {
            delivery_id: 1,
            properties: BTreeMap::from([
                ("email".into(), "a@x.io".into()),
                ("name".into(), "A".into()),
            ]),
            conflict: Default::default(),
            remote_id: None,
        };
        assert!(!needs_current_values(&r, false));
        assert!(
            needs_current_values(&r, true),
            "a stored id may have another email"
        );
        r.conflict.insert("name".into(), OnConflict::FillEmpty);
        assert!(needs_current_values(&r, false));
        r.conflict.clear();
        r.properties.insert("phone".into(), "+1".into());
        assert!(needs_current_values(&r, false));
    }

    #[test]
    fn times_parse_in_both_api_versions() {
        assert!(parse_time("2026-01-02T03:04:05Z").is_some());
        assert_eq!(
            parse_time("2026-01-02 03:04:05"),
            parse_time("2026-01-02T03:04:05Z")
        );
    }
}
