//! Every SQL statement the SQLite engine runs, as plain functions over a connection. The writer
//! thread calls the mutating ones inside its group transaction; readers and the read-only CLI call
//! the rest. Each is exercised by the tests in `tests.rs` beside this file.

use rusqlite::{Connection, OptionalExtension, params};

use crate::store::{
    Claimed, ClaimedFetch, DeadLetter, DeliveryOp, DestinationStatus, ForgetAudit, ForgetFanout,
    ForgetIdentifier, ForgetOutcome, ForgetTarget, Ingested, NewDelivery, NewLead, PersonKey,
    Settlement, StoreError, StoredLead,
};

pub(super) fn ingest(conn: &Connection, lead: &NewLead, now: i64) -> Result<Ingested, StoreError> {
    if let Some(key) = &lead.idempotency_key {
        let existing: Option<String> = conn
            .query_row(
                "SELECT lead_id FROM idempotency_keys WHERE source = ?1 AND key = ?2",
                params![lead.source, key],
                |r| r.get(0),
            )
            .optional()?;
        if let Some(lead_id) = existing {
            return Ok(Ingested {
                lead_id,
                duplicate: true,
            });
        }
    }
    let person_id = resolve_person(conn, &lead.person, now)?;
    conn.execute(
        "INSERT INTO leads (id, source, person_id, received_at, lead_json, raw_body, content_type)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![
            lead.id,
            lead.source,
            person_id,
            lead.received_at_ms,
            lead.lead_json,
            lead.raw_body,
            lead.content_type
        ],
    )?;
    if let Some(key) = &lead.idempotency_key {
        conn.execute(
            "INSERT INTO idempotency_keys (source, key, lead_id, created_at) VALUES (?1, ?2, ?3, ?4)",
            params![lead.source, key, lead.id, now],
        )?;
    }
    let mut insert = conn.prepare_cached(
        "INSERT INTO outbox (lead_id, person_id, flow, destination, payload, state, created_at, next_attempt_at)
         VALUES (?1, ?2, ?3, ?4, ?5, 'pending', ?6, ?6)",
    )?;
    for d in &lead.deliveries {
        insert.execute(params![
            lead.id,
            person_id,
            d.flow,
            d.destination,
            d.payload,
            now
        ])?;
    }
    Ok(Ingested {
        lead_id: lead.id.clone(),
        duplicate: false,
    })
}

/// Finds or creates the person a lead belongs to: by normalised email, else E.164 phone, else
/// the source's own id. A lead whose email belongs to one person and whose phone belongs to a
/// person known by that phone alone proves they are one human: the phone's person is merged into
/// the email's (leads, queued deliveries and remote ids move over; the merge is recorded in
/// `person_merges`). A phone-only person who now comes with an email gains the email. A phone
/// shared by people with different emails links nobody.
fn resolve_person(conn: &Connection, key: &PersonKey, now: i64) -> Result<i64, StoreError> {
    let find = |column: &str, value: &str| -> Result<Option<i64>, StoreError> {
        Ok(conn
            .query_row(
                &format!("SELECT id FROM people WHERE {column} = ?1"),
                [value],
                |r| r.get(0),
            )
            .optional()?)
    };
    let by_email = key
        .email
        .as_deref()
        .map(|e| find("email", e))
        .transpose()?
        .flatten();
    let by_phone = key
        .phone
        .as_deref()
        .map(|p| find("phone", p))
        .transpose()?
        .flatten();
    // A phone links or merges only a person known by that phone alone: two different emails
    // behind one phone (a reception desk, a shared mobile) stay two people.
    let phone_only = |id: i64| -> Result<bool, StoreError> {
        Ok(conn.query_row(
            "SELECT email IS NULL FROM people WHERE id = ?1",
            [id],
            |r| r.get(0),
        )?)
    };
    let insert = |email: Option<&str>,
                  phone: Option<&str>,
                  source_key: Option<&str>|
     -> Result<i64, StoreError> {
        conn.execute(
            "INSERT INTO people (email, phone, source_key, created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?4)",
            params![email, phone, source_key, now],
        )?;
        Ok(conn.last_insert_rowid())
    };
    let id = match (by_email, by_phone) {
        (Some(kept), Some(merged)) if kept != merged && phone_only(merged)? => {
            merge_people(conn, kept, merged, now)?;
            kept
        }
        (Some(id), _) => id,
        (None, Some(id)) if key.email.is_none() => id,
        (None, Some(id)) if phone_only(id)? => {
            conn.execute(
                "UPDATE people SET email = ?2 WHERE id = ?1",
                params![id, key.email],
            )?;
            id
        }
        // The phone belongs to someone with another email: a new person, without the phone.
        (None, Some(_)) => return insert(key.email.as_deref(), None, None),
        (None, None) => {
            if key.email.is_some() || key.phone.is_some() {
                return insert(key.email.as_deref(), key.phone.as_deref(), None);
            }
            let Some(source_key) = key.source_key.as_deref() else {
                return Err(StoreError::Corrupt(
                    "a lead needs an email, a phone or a source id".into(),
                ));
            };
            match find("source_key", source_key)? {
                Some(found) => found,
                None => return insert(None, None, Some(source_key)),
            }
        }
    };
    conn.execute(
        "UPDATE people SET updated_at = ?2 WHERE id = ?1",
        params![id, now],
    )?;
    if let Some(phone) = &key.phone {
        conn.execute(
            "UPDATE people SET phone = ?2 WHERE id = ?1 AND phone IS NULL
               AND NOT EXISTS (SELECT 1 FROM people WHERE phone = ?2)",
            params![id, phone],
        )?;
    }
    Ok(id)
}

/// Moves everything of `merged` onto `kept` and records it. A CRM id `merged` had for a connector
/// where `kept` has none moves over; where both have one, the CRM holds two records of this human
/// (merging them there is the CRM's business): `kept`'s stays and the other is kept in the record.
fn merge_people(conn: &Connection, kept: i64, merged: i64, now: i64) -> Result<(), StoreError> {
    let clashing: Vec<(String, String)> = conn
        .prepare_cached(
            "SELECT m.connector, m.remote_id FROM person_remote_ids m
               JOIN person_remote_ids k ON k.connector = m.connector AND k.person_id = ?1
              WHERE m.person_id = ?2",
        )?
        .query_map(params![kept, merged], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<_, _>>()?;
    conn.execute(
        "UPDATE leads SET person_id = ?1 WHERE person_id = ?2",
        params![kept, merged],
    )?;
    conn.execute(
        "UPDATE outbox SET person_id = ?1 WHERE person_id = ?2",
        params![kept, merged],
    )?;
    conn.execute(
        "UPDATE OR IGNORE person_remote_ids SET person_id = ?1 WHERE person_id = ?2",
        params![kept, merged],
    )?;
    conn.execute(
        "DELETE FROM person_remote_ids WHERE person_id = ?1",
        [merged],
    )?;
    let phone: Option<String> =
        conn.query_row("SELECT phone FROM people WHERE id = ?1", [merged], |r| {
            r.get(0)
        })?;
    conn.execute("DELETE FROM people WHERE id = ?1", [merged])?;
    if let Some(phone) = phone {
        conn.execute(
            "UPDATE people SET phone = ?2 WHERE id = ?1 AND phone IS NULL",
            params![kept, phone],
        )?;
    }
    let reason = serde_json::json!({
        "why": "a lead carried the email of one and the phone of the other",
        "duplicate_remote_ids": clashing.into_iter().map(|(c, r)| serde_json::json!({"connector": c, "remote_id": r})).collect::<Vec<_>>(),
    });
    conn.execute(
        "INSERT INTO person_merges (kept, merged, reason, merged_at) VALUES (?1, ?2, ?3, ?4)",
        params![kept, merged, reason.to_string(), now],
    )?;
    Ok(())
}

/// One statement: lease each person's oldest unfinished delivery that is due (or whose lease ran
/// out), oldest due first. A leased row blocks its person's later rows, so a batch never holds two
/// rows of one person and per-person order holds across workers.
pub(super) fn claim(
    conn: &Connection,
    destination: &str,
    owner: &str,
    limit: usize,
    lease_ms: i64,
    now: i64,
) -> Result<Vec<Claimed>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "UPDATE outbox
            SET state = 'inflight', lease_owner = ?2, lease_until = ?3, next_attempt_at = ?3,
                attempts = attempts + 1
          WHERE id IN (
                SELECT o.id FROM outbox o
                 WHERE o.destination = ?1
                   AND o.state IN ('pending', 'inflight')
                   AND o.next_attempt_at <= ?4
                   AND NOT EXISTS (
                        SELECT 1 FROM outbox e
                         WHERE e.destination = o.destination AND e.person_id = o.person_id
                           AND e.state IN ('pending', 'inflight') AND e.id < o.id)
                 ORDER BY o.next_attempt_at, o.id
                 LIMIT ?5)
        RETURNING id, lead_id, person_id, flow, destination, payload, attempts, created_at, op",
    )?;
    let mut rows = stmt
        .query_map(
            params![destination, owner, now + lease_ms, now, limit as i64],
            |r| {
                Ok(Claimed {
                    id: r.get(0)?,
                    lead_id: r.get(1)?,
                    person_id: r.get(2)?,
                    flow: r.get(3)?,
                    destination: r.get(4)?,
                    payload: r.get(5)?,
                    attempts: r.get(6)?,
                    created_at_ms: r.get(7)?,
                    remote_id: None,
                    op: DeliveryOp::parse(&r.get::<_, String>(8)?),
                })
            },
        )?
        .collect::<Result<Vec<_>, _>>()?;
    rows.sort_by_key(|c| c.id);
    let mut known = conn.prepare_cached(
        "SELECT remote_id FROM person_remote_ids WHERE person_id = ?1 AND connector = ?2",
    )?;
    for row in &mut rows {
        row.remote_id = known
            .query_row(params![row.person_id, destination], |r| r.get(0))
            .optional()?;
    }
    Ok(rows)
}

pub(super) fn settle(
    conn: &Connection,
    settlements: &[Settlement],
    now: i64,
) -> Result<(), StoreError> {
    for s in settlements {
        match s {
            Settlement::Done { id, remote_id } => {
                let op = row_op(conn, *id)?;
                conn.prepare_cached(
                    "UPDATE outbox SET state = 'done', remote_id = ?2, finished_at = ?3, lease_owner = NULL,
                            lease_until = NULL, last_error = NULL
                      WHERE id = ?1 AND state IN ('pending', 'inflight')",
                )?
                .execute(params![id, remote_id, now])?;
                match op {
                    // The destination no longer holds the person: its id is not needed any more.
                    Some(DeliveryOp::Forget) => {
                        conn.prepare_cached(
                            "DELETE FROM person_remote_ids WHERE (person_id, connector) IN
                                (SELECT person_id, destination FROM outbox WHERE id = ?1)",
                        )?
                        .execute([id])?;
                        refresh_forget_audit(conn, *id, now)?;
                    }
                    _ => {
                        if let Some(remote_id) = remote_id {
                            record_remote_id(conn, *id, remote_id, now)?;
                        }
                    }
                }
            }
            Settlement::Retry {
                id,
                at_ms,
                error,
                refund,
            } => {
                cancel_if_forgotten(conn, *id, now)?;
                conn.prepare_cached(
                    "UPDATE outbox SET state = 'pending', next_attempt_at = ?2, last_error = ?3,
                            attempts = max(0, attempts - ?4), lease_owner = NULL, lease_until = NULL
                      WHERE id = ?1 AND state IN ('pending', 'inflight')",
                )?
                .execute(params![id, at_ms, error, *refund as i64])?;
            }
            Settlement::Dead { id, error } => {
                cancel_if_forgotten(conn, *id, now)?;
                conn.prepare_cached(
                    "UPDATE outbox SET state = 'dead', last_error = ?2, finished_at = ?3, lease_owner = NULL,
                            lease_until = NULL
                      WHERE id = ?1 AND state IN ('pending', 'inflight')",
                )?
                .execute(params![id, error, now])?;
                if row_op(conn, *id)? == Some(DeliveryOp::Forget) {
                    refresh_forget_audit(conn, *id, now)?;
                }
            }
        }
    }
    Ok(())
}

fn row_op(conn: &Connection, id: i64) -> Result<Option<DeliveryOp>, StoreError> {
    let op: Option<String> = conn
        .prepare_cached("SELECT op FROM outbox WHERE id = ?1")?
        .query_row([id], |r| r.get(0))
        .optional()?;
    Ok(op.as_deref().map(DeliveryOp::parse))
}

/// An upsert that was in flight when its person was forgotten (its payload erased) is not
/// retried or dead-lettered with a vendor message that may quote the person: it ends here.
fn cancel_if_forgotten(conn: &Connection, id: i64, now: i64) -> Result<(), StoreError> {
    conn.prepare_cached(
        "UPDATE outbox SET state = 'done', last_error = NULL, finished_at = ?2, lease_owner = NULL,
                lease_until = NULL
          WHERE id = ?1 AND op IN ('upsert', 'writeback') AND payload = ''
            AND state IN ('pending', 'inflight')",
    )?
    .execute(params![id, now])?;
    Ok(())
}

/// After a deletion delivery finished: its forget is `done` once every deletion is, `failed`
/// once none is left queued and one was dead-lettered.
fn refresh_forget_audit(conn: &Connection, delivery_id: i64, now: i64) -> Result<(), StoreError> {
    conn.prepare_cached(
        "UPDATE forget_audit SET
                status = CASE WHEN open > 0 THEN 'pending' WHEN dead > 0 THEN 'failed' ELSE 'done' END,
                finished_at = CASE WHEN open > 0 THEN NULL ELSE ?2 END
           FROM (SELECT sum(o.state IN ('pending', 'inflight')) AS open, sum(o.state = 'dead') AS dead
                   FROM outbox o
                  WHERE o.op = 'forget'
                    AND json_extract(o.payload, '$.audit_id') =
                        (SELECT json_extract(payload, '$.audit_id') FROM outbox WHERE id = ?1))
          WHERE forget_audit.id = (SELECT json_extract(payload, '$.audit_id') FROM outbox WHERE id = ?1)",
    )?
    .execute(params![delivery_id, now])?;
    Ok(())
}

/// Returns leased rows to the queue. `refund` gives the attempt back: right for a graceful
/// release (the vendor never saw the row), wrong after a crash (it may have).
pub(super) fn release(
    conn: &Connection,
    owner: Option<&str>,
    refund: bool,
    now: i64,
) -> Result<usize, StoreError> {
    let deliveries = conn.execute(
        "UPDATE outbox SET state = 'pending', next_attempt_at = ?2, lease_owner = NULL, lease_until = NULL,
                attempts = max(0, attempts - ?3)
          WHERE state = 'inflight' AND (?1 IS NULL OR lease_owner = ?1)",
        params![owner, now, refund as i64],
    )?;
    let fetches = conn.execute(
        "UPDATE fetches SET state = 'pending', next_attempt_at = ?2, lease_owner = NULL,
                attempts = max(0, attempts - ?3)
          WHERE state = 'inflight' AND (?1 IS NULL OR lease_owner = ?1)",
        params![owner, now, refund as i64],
    )?;
    Ok(deliveries + fetches)
}

pub(super) fn enqueue(
    conn: &Connection,
    deliveries: &[NewDelivery],
    now: i64,
) -> Result<usize, StoreError> {
    let mut insert = conn.prepare_cached(
        "INSERT INTO outbox (lead_id, person_id, flow, destination, payload, state, created_at, next_attempt_at)
         VALUES (?1, ?2, ?3, ?4, ?5, 'pending', ?6, ?6)",
    )?;
    for d in deliveries {
        insert.execute(params![
            d.lead_id,
            d.person_id,
            d.flow,
            d.destination,
            d.payload,
            now
        ])?;
    }
    Ok(deliveries.len())
}

pub(super) fn leads_since(
    conn: &Connection,
    sources: &[String],
    since_ms: i64,
) -> Result<Vec<StoredLead>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, source, person_id, received_at, lead_json FROM leads
          WHERE source = ?1 AND received_at >= ?2 ORDER BY received_at, id",
    )?;
    let mut out = Vec::new();
    for source in sources {
        let rows = stmt.query_map(params![source, since_ms], |r| {
            Ok(StoredLead {
                id: r.get(0)?,
                source: r.get(1)?,
                person_id: r.get(2)?,
                received_at_ms: r.get(3)?,
                lead_json: r.get(4)?,
            })
        })?;
        for row in rows {
            out.push(row?);
        }
    }
    out.sort_by(|a, b| (a.received_at_ms, &a.id).cmp(&(b.received_at_ms, &b.id)));
    Ok(out)
}

pub(super) fn status(conn: &Connection, now: i64) -> Result<Vec<DestinationStatus>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT destination, flow,
                sum(state = 'pending'), sum(state = 'inflight'), sum(state = 'done'), sum(state = 'dead'),
                min(CASE WHEN state IN ('pending', 'inflight') THEN created_at END),
                (SELECT last_error FROM outbox l
                  WHERE l.destination = o.destination AND l.flow = o.flow AND l.last_error IS NOT NULL
                  ORDER BY l.id DESC LIMIT 1)
           FROM outbox o GROUP BY destination, flow ORDER BY destination, flow",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok(DestinationStatus {
            destination: r.get(0)?,
            flow: r.get(1)?,
            pending: r.get::<_, i64>(2)? as u64,
            in_flight: r.get::<_, i64>(3)? as u64,
            done: r.get::<_, i64>(4)? as u64,
            dead: r.get::<_, i64>(5)? as u64,
            oldest_pending_age_ms: r.get::<_, Option<i64>>(6)?.map(|t| (now - t).max(0)),
            last_error: r.get(7)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

pub(super) fn dead_letters(
    conn: &Connection,
    destination: Option<&str>,
    limit: usize,
) -> Result<Vec<DeadLetter>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, lead_id, flow, destination, attempts, coalesce(last_error, ''), created_at, finished_at
           FROM outbox WHERE state = 'dead' AND (?1 IS NULL OR destination = ?1)
          ORDER BY finished_at DESC, id DESC LIMIT ?2",
    )?;
    let rows = stmt.query_map(params![destination, limit as i64], |r| {
        Ok(DeadLetter {
            id: r.get(0)?,
            lead_id: r.get(1)?,
            flow: r.get(2)?,
            destination: r.get(3)?,
            attempts: r.get(4)?,
            error: r.get(5)?,
            created_at_ms: r.get(6)?,
            dead_at_ms: r.get(7)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// A retried dead letter gets a fresh attempt and age budget: it is due now, as if new.
pub(super) fn retry_dead(
    conn: &Connection,
    ids: Option<&[i64]>,
    now: i64,
) -> Result<usize, StoreError> {
    let sql =
        "UPDATE outbox SET state = 'pending', attempts = 0, next_attempt_at = ?2, created_at = ?2,
                      finished_at = NULL
                WHERE state = 'dead' AND (?1 IS NULL OR id = ?1)";
    for_ids(conn, sql, ids, now)
}

pub(super) fn drop_dead(conn: &Connection, ids: Option<&[i64]>) -> Result<usize, StoreError> {
    for_ids(
        conn,
        "DELETE FROM outbox WHERE state = 'dead' AND (?1 IS NULL OR id = ?1)",
        ids,
        0,
    )
}

fn for_ids(
    conn: &Connection,
    sql: &str,
    ids: Option<&[i64]>,
    now: i64,
) -> Result<usize, StoreError> {
    let mut stmt = conn.prepare_cached(sql)?;
    let takes_now = stmt.parameter_count() == 2;
    let mut run = |id: Option<i64>| -> Result<usize, StoreError> {
        Ok(if takes_now {
            stmt.execute(params![id, now])?
        } else {
            stmt.execute(params![id])?
        })
    };
    match ids {
        None => run(None),
        Some(ids) => ids.iter().try_fold(0, |n, id| Ok(n + run(Some(*id))?)),
    }
}

pub(super) fn remote_id(
    conn: &Connection,
    person_id: i64,
    connector: &str,
) -> Result<Option<String>, StoreError> {
    Ok(conn
        .query_row(
            "SELECT remote_id FROM person_remote_ids WHERE person_id = ?1 AND connector = ?2",
            params![person_id, connector],
            |r| r.get(0),
        )
        .optional()?)
}

pub(super) fn set_paused(
    conn: &Connection,
    connector: &str,
    reason: Option<&str>,
    now: i64,
) -> Result<(), StoreError> {
    conn.execute(
        "INSERT INTO connector_state (connector, paused, updated_at) VALUES (?1, ?2, ?3)
         ON CONFLICT (connector) DO UPDATE SET paused = excluded.paused, updated_at = excluded.updated_at",
        params![connector, reason, now],
    )?;
    Ok(())
}

pub(super) fn paused(conn: &Connection) -> Result<Vec<(String, String)>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT connector, paused FROM connector_state WHERE paused IS NOT NULL ORDER BY connector",
    )?;
    let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

pub(super) fn cursor(conn: &Connection, name: &str) -> Result<Option<String>, StoreError> {
    Ok(conn
        .query_row("SELECT value FROM cursors WHERE name = ?1", [name], |r| {
            r.get(0)
        })
        .optional()?)
}

pub(super) fn set_cursor(
    conn: &Connection,
    name: &str,
    value: &str,
    now: i64,
) -> Result<(), StoreError> {
    conn.execute(
        "INSERT INTO cursors (name, value, updated_at) VALUES (?1, ?2, ?3)
         ON CONFLICT (name) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
        params![name, value, now],
    )?;
    Ok(())
}

pub(super) fn record_remote_id(
    conn: &Connection,
    delivery_id: i64,
    remote_id: &str,
    now: i64,
) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT INTO person_remote_ids (person_id, connector, remote_id, updated_at)
         SELECT person_id, destination, ?2, ?3 FROM outbox WHERE id = ?1
         ON CONFLICT (person_id, connector) DO UPDATE
            SET remote_id = excluded.remote_id, updated_at = excluded.updated_at",
    )?
    .execute(params![delivery_id, remote_id, now])?;
    Ok(())
}

pub(super) fn load_token(conn: &Connection, connector: &str) -> Result<Option<String>, StoreError> {
    Ok(conn
        .query_row(
            "SELECT token_json FROM oauth_tokens WHERE connector = ?1",
            [connector],
            |r| r.get(0),
        )
        .optional()?)
}

pub(super) fn save_token(
    conn: &Connection,
    connector: &str,
    token_json: &str,
    now: i64,
) -> Result<(), StoreError> {
    conn.execute(
        "INSERT INTO oauth_tokens (connector, token_json, updated_at) VALUES (?1, ?2, ?3)
         ON CONFLICT (connector) DO UPDATE SET token_json = excluded.token_json, updated_at = excluded.updated_at",
        params![connector, token_json, now],
    )?;
    Ok(())
}

pub(super) fn enqueue_fetches(
    conn: &Connection,
    source: &str,
    requests: &[(String, String)],
    now: i64,
) -> Result<usize, StoreError> {
    let mut insert = conn.prepare_cached(
        "INSERT INTO fetches (source, event_id, request_json, state, created_at, next_attempt_at)
         VALUES (?1, ?2, ?3, 'pending', ?4, ?4) ON CONFLICT (source, event_id) DO NOTHING",
    )?;
    let mut n = 0;
    for (event_id, json) in requests {
        n += insert.execute(params![source, event_id, json, now])?;
    }
    Ok(n)
}

pub(super) fn claim_fetches(
    conn: &Connection,
    source: &str,
    owner: &str,
    limit: usize,
    lease_ms: i64,
    now: i64,
) -> Result<Vec<ClaimedFetch>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "UPDATE fetches SET state = 'inflight', lease_owner = ?2, next_attempt_at = ?3, attempts = attempts + 1
          WHERE id IN (SELECT id FROM fetches
                        WHERE source = ?1 AND state IN ('pending', 'inflight') AND next_attempt_at <= ?4
                        ORDER BY next_attempt_at, id LIMIT ?5)
        RETURNING id, source, event_id, request_json, attempts, created_at",
    )?;
    let mut rows = stmt
        .query_map(
            params![source, owner, now + lease_ms, now, limit as i64],
            |r| {
                Ok(ClaimedFetch {
                    id: r.get(0)?,
                    source: r.get(1)?,
                    event_id: r.get(2)?,
                    request_json: r.get(3)?,
                    attempts: r.get(4)?,
                    created_at_ms: r.get(5)?,
                })
            },
        )?
        .collect::<Result<Vec<_>, _>>()?;
    rows.sort_by_key(|f| f.id);
    Ok(rows)
}

pub(super) fn complete_fetch(
    conn: &Connection,
    fetch_id: i64,
    lead: &NewLead,
    now: i64,
) -> Result<Ingested, StoreError> {
    let ingested = ingest(conn, lead, now)?;
    conn.prepare_cached(
        "UPDATE fetches SET state = 'done', lead_id = ?2, finished_at = ?3, lease_owner = NULL, last_error = NULL
          WHERE id = ?1",
    )?
    .execute(params![fetch_id, ingested.lead_id, now])?;
    Ok(ingested)
}

pub(super) fn settle_fetches(
    conn: &Connection,
    settlements: &[Settlement],
    now: i64,
) -> Result<(), StoreError> {
    for s in settlements {
        match s {
            Settlement::Retry {
                id,
                at_ms,
                error,
                refund,
            } => {
                conn.prepare_cached(
                    "UPDATE fetches SET state = 'pending', next_attempt_at = ?2, last_error = ?3,
                            attempts = max(0, attempts - ?4), lease_owner = NULL
                      WHERE id = ?1 AND state IN ('pending', 'inflight')",
                )?
                .execute(params![id, at_ms, error, *refund as i64])?;
            }
            Settlement::Dead { id, error } => {
                conn.prepare_cached(
                    "UPDATE fetches SET state = 'dead', last_error = ?2, finished_at = ?3, lease_owner = NULL
                      WHERE id = ?1 AND state IN ('pending', 'inflight')",
                )?
                .execute(params![id, error, now])?;
            }
            Settlement::Done { .. } => {
                return Err(StoreError::Corrupt(
                    "a fetch is completed with its lead, not settled as done".into(),
                ));
            }
        }
    }
    Ok(())
}

pub(super) fn ingest_page(
    conn: &Connection,
    leads: &[NewLead],
    cursor_name: &str,
    cursor: &str,
    now: i64,
) -> Result<Vec<Ingested>, StoreError> {
    let mut out = Vec::with_capacity(leads.len());
    for lead in leads {
        out.push(ingest(conn, lead, now)?);
    }
    set_cursor(conn, cursor_name, cursor, now)?;
    Ok(out)
}

/// The per-database salt of identifier hashes, made (from the OS's randomness) on first use.
fn identifier_salt(conn: &Connection) -> Result<String, StoreError> {
    let existing: Option<String> = conn
        .query_row(
            "SELECT value FROM meta WHERE key = 'identifier_salt'",
            [],
            |r| r.get(0),
        )
        .optional()?;
    if let Some(salt) = existing {
        return Ok(salt);
    }
    let bytes: [u8; 32] = rand::random();
    let salt = hex::encode(bytes);
    conn.execute(
        "INSERT INTO meta (key, value) VALUES ('identifier_salt', ?1)",
        [&salt],
    )?;
    Ok(salt)
}

/// Hex SHA-256 of `salt:identifier`: a repeated request matches; the identifier can't be read
/// back, and without the salt (which never leaves the database) not even guessed from a list.
pub(super) fn identifier_hash(salt: &str, identifier: &str) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(salt.as_bytes());
    h.update(b":");
    h.update(identifier.as_bytes());
    hex::encode(h.finalize())
}

pub(super) fn forget(
    conn: &Connection,
    identifier: &ForgetIdentifier,
    targets: &[ForgetTarget],
    now: i64,
) -> Result<ForgetOutcome, StoreError> {
    let salt = identifier_salt(conn)?;
    let hash = identifier_hash(&salt, identifier.value());
    let column = match identifier {
        ForgetIdentifier::Email(_) => "email",
        ForgetIdentifier::Phone(_) => "phone",
    };
    let person: Option<i64> = conn
        .query_row(
            &format!("SELECT id FROM people WHERE {column} = ?1"),
            [identifier.value()],
            |r| r.get(0),
        )
        .optional()?;
    let Some(person) = person else {
        let earlier: Option<i64> = conn
            .query_row(
                "SELECT id FROM forget_audit WHERE identifier_hash = ?1 ORDER BY id DESC LIMIT 1",
                [&hash],
                |r| r.get(0),
            )
            .optional()?;
        return Ok(match earlier {
            Some(id) => ForgetOutcome::AlreadyForgotten {
                audit: forget_audit(conn, id)?,
            },
            None => ForgetOutcome::NotFound,
        });
    };

    // Leads: attribution fields only; the body as received is gone.
    let leads: Vec<(String, String, String, i64)> = conn
        .prepare_cached(
            "SELECT id, lead_json, source, received_at FROM leads WHERE person_id = ?1
              ORDER BY received_at, id",
        )?
        .query_map([person], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
        })?
        .collect::<Result<_, _>>()?;
    let mut update =
        conn.prepare_cached("UPDATE leads SET lead_json = ?2, raw_body = x'' WHERE id = ?1")?;
    for (id, json, source, received_at) in &leads {
        let anonymised = crate::store::anonymise::anonymised_lead_json(json, source, *received_at);
        update.execute(params![id, anonymised])?;
    }
    conn.execute(
        "DELETE FROM idempotency_keys WHERE lead_id IN (SELECT id FROM leads WHERE person_id = ?1)",
        [person],
    )?;
    conn.execute(
        "UPDATE fetches SET request_json = '{}', last_error = NULL
          WHERE lead_id IN (SELECT id FROM leads WHERE person_id = ?1)",
        [person],
    )?;
    // Upserts not yet sent (or given up on) are cancelled: nothing about the person leaves after
    // a forget. One in flight keeps its lease but loses its payload; it ends when it settles.
    let cancelled = conn.execute(
        "UPDATE outbox SET state = 'done', payload = '', last_error = NULL, finished_at = ?2,
                lease_owner = NULL, lease_until = NULL
          WHERE person_id = ?1 AND op IN ('upsert', 'writeback') AND state IN ('pending', 'dead')",
        params![person, now],
    )?;
    conn.execute(
        "UPDATE outbox SET payload = '', last_error = NULL
          WHERE person_id = ?1 AND op IN ('upsert', 'writeback') AND state IN ('inflight', 'done')",
        [person],
    )?;

    conn.execute(
        "INSERT INTO forget_audit (person_id, requested_at, identifier_hash, connectors, status)
         VALUES (?1, ?2, ?3, '[]', 'pending')",
        params![person, now, hash],
    )?;
    let audit_id = conn.last_insert_rowid();

    // The fan-out: every connector that knows the person, or may be about to (an upsert in
    // flight settles before the deletion is claimed: per-person order).
    let known: Vec<String> = conn
        .prepare_cached(
            "SELECT connector FROM person_remote_ids WHERE person_id = ?1
             UNION
             SELECT destination FROM outbox WHERE person_id = ?1 AND op IN ('upsert', 'writeback')
                AND state = 'inflight'
             ORDER BY 1",
        )?
        .query_map([person], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    let last_lead: Option<String> = leads.last().map(|l| l.0.clone());
    let mut fanout = Vec::new();
    for connector in known {
        let target = targets.iter().find(|t| t.destination == connector);
        let (Some(target), Some(lead_id)) = (target, last_lead.as_deref()) else {
            fanout.push(ForgetFanout {
                connector,
                status: "not_configured".to_owned(),
                delivery_id: None,
            });
            continue;
        };
        conn.prepare_cached(
            "INSERT INTO outbox (lead_id, person_id, flow, destination, payload, state, created_at,
                                 next_attempt_at, op)
             VALUES (?1, ?2, 'forget', ?3, ?4, 'pending', ?5, ?5, 'forget')",
        )?
        .execute(params![
            lead_id,
            person,
            connector,
            serde_json::json!({ "audit_id": audit_id }).to_string(),
            now
        ])?;
        fanout.push(ForgetFanout {
            connector,
            status: if target.supports_deletion {
                "queued"
            } else {
                "unsupported"
            }
            .to_owned(),
            delivery_id: Some(conn.last_insert_rowid()),
        });
    }
    let queued = fanout.iter().any(|f| f.delivery_id.is_some());
    conn.execute(
        "UPDATE forget_audit SET connectors = ?2, status = ?3, finished_at = ?4 WHERE id = ?1",
        params![
            audit_id,
            serde_json::to_string(&fanout).unwrap_or_else(|_| "[]".to_owned()),
            if queued { "pending" } else { "done" },
            (!queued).then_some(now)
        ],
    )?;
    conn.execute(
        "UPDATE people SET email = NULL, phone = NULL, source_key = NULL, forgotten_at = ?2,
                updated_at = ?2
          WHERE id = ?1",
        params![person, now],
    )?;
    Ok(ForgetOutcome::Forgotten {
        audit: forget_audit(conn, audit_id)?,
        leads: leads.len(),
        cancelled_deliveries: cancelled,
    })
}

fn audit_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<ForgetAudit> {
    let connectors: String = r.get(4)?;
    Ok(ForgetAudit {
        id: r.get(0)?,
        person_id: r.get(1)?,
        requested_at_ms: r.get(2)?,
        identifier_hash: r.get(3)?,
        connectors: serde_json::from_str(&connectors).unwrap_or_default(),
        status: r.get(5)?,
        finished_at_ms: r.get(6)?,
    })
}

const AUDIT_COLUMNS: &str =
    "id, person_id, requested_at, identifier_hash, connectors, status, finished_at";

fn forget_audit(conn: &Connection, id: i64) -> Result<ForgetAudit, StoreError> {
    Ok(conn.query_row(
        &format!("SELECT {AUDIT_COLUMNS} FROM forget_audit WHERE id = ?1"),
        [id],
        audit_row,
    )?)
}

pub(super) fn forget_audits(
    conn: &Connection,
    limit: usize,
) -> Result<Vec<ForgetAudit>, StoreError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {AUDIT_COLUMNS} FROM forget_audit ORDER BY id DESC LIMIT ?1"
    ))?;
    let rows = stmt.query_map([limit as i64], audit_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}
