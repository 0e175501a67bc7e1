//! The closed loop's statements: deals and their history, the people behind a deal, what each
//! write-back destination has been told, and the inputs of the reports.

use std::collections::BTreeMap;

use rusqlite::{Connection, OptionalExtension, params};
use tandem_connectors::{
    outcome::{DealContact, DealState},
    writeback::Milestone,
};

use crate::attribution::{Deal, DealStatus};
use crate::outcomes::{
    milestones::Reached,
    plan::{Told, decide, request_key},
    touch::{LeadRow, read_lead},
};
use crate::store::{
    AttributionInputs, DealContext, KnownDeal, OutcomeBatch, OutcomesRecorded, PersonLeads,
    StoreError, StoredDeal,
};

fn state_name(s: DealState) -> &'static str {
    match s {
        DealState::Open => "open",
        DealState::Won => "won",
        DealState::Lost => "lost",
    }
}

fn parse_state(s: &str) -> DealState {
    match s {
        "won" => DealState::Won,
        "lost" => DealState::Lost,
        _ => DealState::Open,
    }
}

fn reached_json(r: &Reached) -> String {
    let named: BTreeMap<&str, i64> = r.iter().map(|(m, t)| (m.name(), *t)).collect();
    serde_json::to_string(&named).unwrap_or_else(|_| "{}".into())
}

fn parse_reached(s: &str) -> Reached {
    let named: BTreeMap<String, i64> = serde_json::from_str(s).unwrap_or_default();
    named
        .into_iter()
        .filter_map(|(k, t)| Milestone::parse(&k).map(|m| (m, t)))
        .collect()
}

fn known_deal(
    conn: &Connection,
    crm: &str,
    deal_id: &str,
) -> Result<Option<KnownDeal>, StoreError> {
    Ok(conn
        .prepare_cached(
            "SELECT stage, state, milestone, amount_minor, currency, reached_json
               FROM deals WHERE crm = ?1 AND deal_id = ?2",
        )?
        .query_row(params![crm, deal_id], |r| {
            Ok(KnownDeal {
                stage: r.get(0)?,
                state: parse_state(&r.get::<_, String>(1)?),
                milestone: Milestone::parse(&r.get::<_, String>(2)?)
                    .unwrap_or(Milestone::Opportunity),
                amount_minor: r.get(3)?,
                currency: r.get(4)?,
                reached: parse_reached(&r.get::<_, String>(5)?),
            })
        })
        .optional()?)
}

/// The person a CRM contact is: by the id the CRM gave a person tandem delivered, else by email.
fn resolve_contact(
    conn: &Connection,
    crm: &str,
    c: &DealContact,
) -> Result<Option<i64>, StoreError> {
    let by_id: Option<i64> = conn
        .prepare_cached(
            "SELECT person_id FROM person_remote_ids WHERE connector = ?1 AND remote_id = ?2
              ORDER BY updated_at DESC LIMIT 1",
        )?
        .query_row(params![crm, c.remote_id], |r| r.get(0))
        .optional()?;
    if by_id.is_some() {
        return Ok(by_id);
    }
    let Some(email) = c.email.as_deref().map(|e| e.trim().to_lowercase()) else {
        return Ok(None);
    };
    Ok(conn
        .prepare_cached("SELECT id FROM people WHERE email = ?1")?
        .query_row([email], |r| r.get(0))
        .optional()?)
}

fn person_leads(conn: &Connection, person_id: i64) -> Result<PersonLeads, StoreError> {
    let remote_ids = conn
        .prepare_cached("SELECT connector, remote_id FROM person_remote_ids WHERE person_id = ?1")?
        .query_map([person_id], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<BTreeMap<String, String>, _>>()?;
    let leads = conn
        .prepare_cached(
            "SELECT l.id, l.source, l.received_at, l.lead_json,
                    (SELECT k.key FROM idempotency_keys k WHERE k.lead_id = l.id LIMIT 1)
               FROM leads l WHERE l.person_id = ?1 ORDER BY l.received_at, l.id",
        )?
        .query_map([person_id], lead_row)?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(PersonLeads {
        person_id,
        remote_ids,
        leads,
    })
}

fn lead_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<LeadRow> {
    Ok(LeadRow {
        lead_id: r.get(0)?,
        source: r.get(1)?,
        received_at_ms: r.get(2)?,
        lead_json: r.get(3)?,
        event_id: r.get(4)?,
    })
}

pub(super) fn outcome_context(
    conn: &Connection,
    crm: &str,
    deals: &[(String, Vec<DealContact>)],
) -> Result<Vec<DealContext>, StoreError> {
    let tx = conn.unchecked_transaction()?;
    let mut out = Vec::with_capacity(deals.len());
    for (deal_id, contacts) in deals {
        let mut ids = Vec::new();
        for c in contacts {
            if let Some(p) = resolve_contact(&tx, crm, c)?
                && !ids.contains(&p)
            {
                ids.push(p);
            }
        }
        let people = ids
            .into_iter()
            .map(|p| person_leads(&tx, p))
            .collect::<Result<Vec<_>, _>>()?;
        out.push(DealContext {
            known: known_deal(&tx, crm, deal_id)?,
            people,
        });
    }
    tx.finish()?;
    Ok(out)
}

pub(super) fn record_outcomes(
    conn: &Connection,
    batch: &OutcomeBatch,
    now: i64,
) -> Result<OutcomesRecorded, StoreError> {
    let mut report = OutcomesRecorded::default();
    for d in &batch.deals {
        let o = &d.outcome;
        let before = known_deal(conn, &batch.crm, &o.deal_id)?;
        let changed = before.as_ref().is_none_or(|k| {
            k.stage != o.stage
                || k.state != o.state
                || k.milestone != d.milestone
                || k.amount_minor != o.amount_minor
                || k.currency != o.currency
        });
        if changed {
            report.changed += 1;
            conn.prepare_cached(
                "INSERT INTO deal_history (crm, deal_id, stage, state, milestone, amount_minor,
                                           currency, changed_at, observed_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            )?
            .execute(params![
                batch.crm,
                o.deal_id,
                o.stage,
                state_name(o.state),
                d.milestone.name(),
                o.amount_minor,
                o.currency,
                o.modified_at_ms,
                now
            ])?;
        }
        conn.prepare_cached(
            "INSERT INTO deals (crm, deal_id, pipeline, stage, state, milestone, amount_minor,
                                currency, created_at, closed_at, modified_at, reached_json,
                                first_seen_at, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?13)
             ON CONFLICT (crm, deal_id) DO UPDATE SET
                pipeline = excluded.pipeline, stage = excluded.stage, state = excluded.state,
                milestone = excluded.milestone, amount_minor = excluded.amount_minor,
                currency = excluded.currency, created_at = excluded.created_at,
                closed_at = excluded.closed_at,
                modified_at = max(deals.modified_at, excluded.modified_at),
                reached_json = excluded.reached_json, updated_at = excluded.updated_at",
        )?
        .execute(params![
            batch.crm,
            o.deal_id,
            o.pipeline,
            o.stage,
            state_name(o.state),
            d.milestone.name(),
            o.amount_minor,
            o.currency,
            o.created_at_ms,
            o.closed_at_ms,
            o.modified_at_ms,
            reached_json(&d.reached),
            now
        ])?;
        conn.prepare_cached("DELETE FROM deal_people WHERE crm = ?1 AND deal_id = ?2")?
            .execute(params![batch.crm, o.deal_id])?;
        for p in &d.person_ids {
            conn.prepare_cached(
                "INSERT OR IGNORE INTO deal_people (crm, deal_id, person_id) VALUES (?1, ?2, ?3)",
            )?
            .execute(params![batch.crm, o.deal_id, p])?;
        }
        for plan in &d.writebacks {
            let c = &plan.conversion;
            let told: Option<Told> = conn
                .prepare_cached(
                    "SELECT status, value_minor, currency, version FROM writebacks
                      WHERE destination = ?1 AND crm = ?2 AND deal_id = ?3 AND milestone = ?4",
                )?
                .query_row(
                    params![plan.destination, batch.crm, o.deal_id, c.milestone.name()],
                    |r| {
                        Ok(Told {
                            retracted: r.get::<_, String>(0)? == "retracted",
                            value_minor: r.get(1)?,
                            currency: r.get(2)?,
                            version: r.get(3)?,
                        })
                    },
                )
                .optional()?;
            let Some((action, after)) = decide(told.as_ref(), &plan.want, plan.caps) else {
                continue;
            };
            let mut conversion = c.clone();
            conversion.action = action;
            conversion.request_key = request_key(&c.key, action, after.version);
            let payload = serde_json::to_string(&conversion)
                .map_err(|e| StoreError::Corrupt(format!("unserialisable conversion: {e}")))?;
            conn.prepare_cached(
                "INSERT INTO outbox (lead_id, person_id, flow, destination, payload, state,
                                     created_at, next_attempt_at, op)
                 VALUES (?1, ?2, 'attribution', ?3, ?4, 'pending', ?5, ?5, 'writeback')",
            )?
            .execute(params![
                plan.lead_id,
                plan.person_id,
                plan.destination,
                payload,
                now
            ])?;
            conn.prepare_cached(
                "INSERT INTO writebacks (destination, crm, deal_id, milestone, status, value_minor,
                                         currency, version, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
                 ON CONFLICT (destination, crm, deal_id, milestone) DO UPDATE SET
                    status = excluded.status, value_minor = excluded.value_minor,
                    currency = excluded.currency, version = excluded.version,
                    updated_at = excluded.updated_at",
            )?
            .execute(params![
                plan.destination,
                batch.crm,
                o.deal_id,
                c.milestone.name(),
                if after.retracted { "retracted" } else { "sent" },
                after.value_minor,
                after.currency,
                after.version,
                now
            ])?;
            *report.enqueued.entry(plan.destination.clone()).or_default() += 1;
        }
    }
    if let Some((name, value)) = &batch.cursor {
        super::queries::set_cursor(conn, name, value, now)?;
    }
    Ok(report)
}

pub(super) fn attribution_inputs(conn: &Connection) -> Result<AttributionInputs, StoreError> {
    let tx = conn.unchecked_transaction()?;
    let mut people_of: BTreeMap<(String, String), Vec<i64>> = BTreeMap::new();
    {
        let mut stmt = tx.prepare("SELECT crm, deal_id, person_id FROM deal_people")?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
        for row in rows {
            let (crm, deal, person): (String, String, i64) = row?;
            people_of.entry((crm, deal)).or_default().push(person);
        }
    }
    let mut deals = Vec::new();
    {
        let mut stmt = tx.prepare(
            "SELECT crm, deal_id, milestone, amount_minor, currency, created_at, closed_at,
                    reached_json, state
               FROM deals ORDER BY crm, deal_id",
        )?;
        let rows = stmt.query_map([], |r| {
            let crm: String = r.get(0)?;
            let id: String = r.get(1)?;
            let milestone: String = r.get(2)?;
            let state: String = r.get(8)?;
            let status = match Milestone::parse(&milestone) {
                Some(Milestone::Won) => DealStatus::Won,
                Some(Milestone::Lost) => DealStatus::Lost,
                _ => match parse_state(&state) {
                    DealState::Won => DealStatus::Won,
                    DealState::Lost => DealStatus::Lost,
                    DealState::Open => DealStatus::Open,
                },
            };
            Ok((
                crm,
                Deal {
                    id,
                    created_at_ms: r.get(5)?,
                    closed_at_ms: r.get(6)?,
                    status,
                    amount_minor: r.get::<_, Option<i64>>(3)?.unwrap_or(0),
                    currency: r.get::<_, Option<String>>(4)?.unwrap_or_default(),
                },
                parse_reached(&r.get::<_, String>(7)?),
            ))
        })?;
        for row in rows {
            let (crm, deal, reached) = row?;
            let people = people_of
                .remove(&(crm.clone(), deal.id.clone()))
                .unwrap_or_default();
            deals.push(StoredDeal {
                crm,
                deal,
                people,
                reached,
            });
        }
    }
    let mut touches: BTreeMap<i64, Vec<crate::attribution::Touch>> = BTreeMap::new();
    {
        let mut stmt =
            tx.prepare("SELECT id, source, received_at, lead_json, NULL, person_id FROM leads")?;
        let rows = stmt.query_map([], |r| Ok((lead_row(r)?, r.get::<_, i64>(5)?)))?;
        for row in rows {
            let (lead, person) = row?;
            touches
                .entry(person)
                .or_default()
                .push(read_lead(&lead, &[]).touch);
        }
    }
    tx.finish()?;
    Ok(AttributionInputs { deals, touches })
}
