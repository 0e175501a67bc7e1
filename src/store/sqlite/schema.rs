//! Versioned migrations, applied in order inside one transaction at open. `PRAGMA user_version`
//! records how far a database has come; a database from a newer tandem is refused, not guessed at.

use rusqlite::Connection;

use crate::store::StoreError;

/// Each entry migrates from version `index` to `index + 1`. Never edit a shipped entry: add one.
const MIGRATIONS: &[&str] = &[
    // 1: leads, people, outbox, idempotency keys, cursors, connector state.
    r#"
    CREATE TABLE people (
        id          INTEGER PRIMARY KEY,
        email       TEXT UNIQUE,
        phone       TEXT UNIQUE,
        source_key  TEXT UNIQUE,
        created_at  INTEGER NOT NULL,
        updated_at  INTEGER NOT NULL
    );
    CREATE TABLE person_remote_ids (
        person_id   INTEGER NOT NULL REFERENCES people(id),
        connector   TEXT NOT NULL,
        remote_id   TEXT NOT NULL,
        updated_at  INTEGER NOT NULL,
        PRIMARY KEY (person_id, connector)
    ) WITHOUT ROWID;
    CREATE TABLE leads (
        id           TEXT PRIMARY KEY,
        source       TEXT NOT NULL,
        person_id    INTEGER NOT NULL REFERENCES people(id),
        received_at  INTEGER NOT NULL,
        lead_json    TEXT NOT NULL,
        raw_body     BLOB NOT NULL,
        content_type TEXT
    ) WITHOUT ROWID;
    CREATE INDEX leads_by_source_time ON leads(source, received_at);
    CREATE TABLE outbox (
        id              INTEGER PRIMARY KEY,
        lead_id         TEXT NOT NULL REFERENCES leads(id),
        person_id       INTEGER NOT NULL,
        flow            TEXT NOT NULL,
        destination     TEXT NOT NULL,
        payload         TEXT NOT NULL,
        state           TEXT NOT NULL CHECK (state IN ('pending', 'inflight', 'done', 'dead')),
        attempts        INTEGER NOT NULL DEFAULT 0,
        created_at      INTEGER NOT NULL,
        next_attempt_at INTEGER NOT NULL,
        lease_owner     TEXT,
        lease_until     INTEGER,
        last_error      TEXT,
        remote_id       TEXT,
        finished_at     INTEGER
    );
    -- Due work per destination. For in-flight rows next_attempt_at is the lease expiry, so one
    -- range scan finds both pending rows that are due and leases that a crashed worker left behind.
    CREATE INDEX outbox_due ON outbox(destination, next_attempt_at, id) WHERE state IN ('pending', 'inflight');
    CREATE INDEX outbox_person_open ON outbox(destination, person_id, id) WHERE state IN ('pending', 'inflight');
    CREATE INDEX outbox_dead ON outbox(finished_at) WHERE state = 'dead';
    CREATE TABLE idempotency_keys (
        source      TEXT NOT NULL,
        key         TEXT NOT NULL,
        lead_id     TEXT NOT NULL,
        created_at  INTEGER NOT NULL,
        PRIMARY KEY (source, key)
    ) WITHOUT ROWID;
    CREATE TABLE cursors (
        name        TEXT PRIMARY KEY,
        value       TEXT NOT NULL,
        updated_at  INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE TABLE connector_state (
        connector   TEXT PRIMARY KEY,
        paused      TEXT,
        updated_at  INTEGER NOT NULL
    ) WITHOUT ROWID;
    "#,
    // 2: OAuth token sets (refresh tokens rotate; a rotated one must survive a crash).
    r#"
    CREATE TABLE oauth_tokens (
        connector   TEXT PRIMARY KEY,
        token_json  TEXT NOT NULL,
        updated_at  INTEGER NOT NULL
    ) WITHOUT ROWID;
    "#,
    // 3: leads announced by id only (Meta) waiting to be fetched; identity merges.
    r#"
    CREATE TABLE fetches (
        id              INTEGER PRIMARY KEY,
        source          TEXT NOT NULL,
        event_id        TEXT NOT NULL,
        request_json    TEXT NOT NULL,
        state           TEXT NOT NULL CHECK (state IN ('pending', 'inflight', 'done', 'dead')),
        attempts        INTEGER NOT NULL DEFAULT 0,
        created_at      INTEGER NOT NULL,
        next_attempt_at INTEGER NOT NULL,
        lease_owner     TEXT,
        last_error      TEXT,
        lead_id         TEXT,
        finished_at     INTEGER,
        UNIQUE (source, event_id)
    );
    CREATE INDEX fetches_due ON fetches(source, next_attempt_at, id) WHERE state IN ('pending', 'inflight');
    CREATE TABLE person_merges (
        id          INTEGER PRIMARY KEY,
        kept        INTEGER NOT NULL,
        merged      INTEGER NOT NULL,
        reason      TEXT NOT NULL,
        merged_at   INTEGER NOT NULL
    );
    "#,
    // 4: `tandem forget`: deletion deliveries in the outbox, forgotten people, the audit of
    // forgets (a salted hash instead of the identifier) and the per-database salt.
    r#"
    ALTER TABLE outbox ADD COLUMN op TEXT NOT NULL DEFAULT 'upsert' CHECK (op IN ('upsert', 'forget'));
    ALTER TABLE people ADD COLUMN forgotten_at INTEGER;
    CREATE TABLE meta (
        key         TEXT PRIMARY KEY,
        value       TEXT NOT NULL
    ) WITHOUT ROWID;
    CREATE TABLE forget_audit (
        id              INTEGER PRIMARY KEY,
        person_id       INTEGER NOT NULL,
        requested_at    INTEGER NOT NULL,
        identifier_hash TEXT NOT NULL,
        connectors      TEXT NOT NULL,
        status          TEXT NOT NULL CHECK (status IN ('pending', 'done', 'failed')),
        finished_at     INTEGER
    );
    CREATE INDEX forget_audit_by_hash ON forget_audit(identifier_hash);
    "#,
    // 5: the closed loop. Deals as the CRM reports them, every observed change as history, the
    // deal's people, what each write-back destination has been told per (deal, milestone), and
    // write-back rows in the outbox (the `op` check is widened by rebuilding the table, the
    // documented way to change a constraint in SQLite).
    r#"
    CREATE TABLE deals (
        crm           TEXT NOT NULL,
        deal_id       TEXT NOT NULL,
        pipeline      TEXT,
        stage         TEXT NOT NULL,
        state         TEXT NOT NULL CHECK (state IN ('open', 'won', 'lost')),
        milestone     TEXT NOT NULL,
        amount_minor  INTEGER,
        currency      TEXT,
        created_at    INTEGER NOT NULL,
        closed_at     INTEGER,
        modified_at   INTEGER NOT NULL,
        reached_json  TEXT NOT NULL,
        first_seen_at INTEGER NOT NULL,
        updated_at    INTEGER NOT NULL,
        PRIMARY KEY (crm, deal_id)
    ) WITHOUT ROWID;
    CREATE TABLE deal_history (
        id            INTEGER PRIMARY KEY,
        crm           TEXT NOT NULL,
        deal_id       TEXT NOT NULL,
        stage         TEXT NOT NULL,
        state         TEXT NOT NULL,
        milestone     TEXT NOT NULL,
        amount_minor  INTEGER,
        currency      TEXT,
        changed_at    INTEGER NOT NULL,
        observed_at   INTEGER NOT NULL
    );
    CREATE INDEX deal_history_by_deal ON deal_history(crm, deal_id, id);
    CREATE TABLE deal_people (
        crm           TEXT NOT NULL,
        deal_id       TEXT NOT NULL,
        person_id     INTEGER NOT NULL,
        PRIMARY KEY (crm, deal_id, person_id)
    ) WITHOUT ROWID;
    CREATE INDEX deal_people_by_person ON deal_people(person_id);
    CREATE TABLE writebacks (
        destination   TEXT NOT NULL,
        crm           TEXT NOT NULL,
        deal_id       TEXT NOT NULL,
        milestone     TEXT NOT NULL,
        status        TEXT NOT NULL CHECK (status IN ('sent', 'retracted')),
        value_minor   INTEGER,
        currency      TEXT,
        version       INTEGER NOT NULL,
        updated_at    INTEGER NOT NULL,
        PRIMARY KEY (destination, crm, deal_id, milestone)
    ) WITHOUT ROWID;
    CREATE INDEX person_remote_ids_by_remote ON person_remote_ids(connector, remote_id);
    CREATE TABLE outbox_v5 (
        id              INTEGER PRIMARY KEY,
        lead_id         TEXT NOT NULL REFERENCES leads(id),
        person_id       INTEGER NOT NULL,
        flow            TEXT NOT NULL,
        destination     TEXT NOT NULL,
        payload         TEXT NOT NULL,
        state           TEXT NOT NULL CHECK (state IN ('pending', 'inflight', 'done', 'dead')),
        attempts        INTEGER NOT NULL DEFAULT 0,
        created_at      INTEGER NOT NULL,
        next_attempt_at INTEGER NOT NULL,
        lease_owner     TEXT,
        lease_until     INTEGER,
        last_error      TEXT,
        remote_id       TEXT,
        finished_at     INTEGER,
        op              TEXT NOT NULL DEFAULT 'upsert' CHECK (op IN ('upsert', 'forget', 'writeback'))
    );
    INSERT INTO outbox_v5 SELECT id, lead_id, person_id, flow, destination, payload, state, attempts,
        created_at, next_attempt_at, lease_owner, lease_until, last_error, remote_id, finished_at, op
        FROM outbox;
    DROP TABLE outbox;
    ALTER TABLE outbox_v5 RENAME TO outbox;
    CREATE INDEX outbox_due ON outbox(destination, next_attempt_at, id) WHERE state IN ('pending', 'inflight');
    CREATE INDEX outbox_person_open ON outbox(destination, person_id, id) WHERE state IN ('pending', 'inflight');
    CREATE INDEX outbox_dead ON outbox(finished_at) WHERE state = 'dead';
    "#,
];

#[cfg(test)]
pub(super) const MIGRATIONS_FOR_TESTS: &[&str] = MIGRATIONS;

/// The schema version this build writes.
pub const CURRENT_VERSION: i64 = MIGRATIONS.len() as i64;

/// Brings `conn` up to [`CURRENT_VERSION`].
pub fn migrate(conn: &mut Connection) -> Result<i64, StoreError> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let version: i64 = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if version > CURRENT_VERSION {
        return Err(StoreError::Corrupt(format!(
            "the database is at schema version {version}, newer than this tandem understands ({CURRENT_VERSION}); run the newer tandem or restore a backup"
        )));
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", (i + 1) as i64)?;
    }
    tx.commit()?;
    Ok(CURRENT_VERSION)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrating_twice_is_a_no_op_and_newer_databases_are_refused() {
        let mut conn = Connection::open_in_memory().unwrap();
        assert_eq!(migrate(&mut conn).unwrap(), CURRENT_VERSION);
        assert_eq!(migrate(&mut conn).unwrap(), CURRENT_VERSION);
        let tables: i64 = conn
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE type = 'table'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(tables, 16);
        conn.pragma_update(None, "user_version", CURRENT_VERSION + 1)
            .unwrap();
        assert!(matches!(migrate(&mut conn), Err(StoreError::Corrupt(_))));
    }
}
