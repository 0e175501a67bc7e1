//! The embedded SQLite engine: WAL with `synchronous=FULL`, one writer thread doing group commit
//! ([`writer`]), a small pool of read connections beside it, and an exclusive lock file so two
//! daemons never share one state file.

#[cfg(test)]
mod outcome_tests;
mod outcomes;
mod queries;
mod schema;
#[cfg(test)]
mod tests;
mod writer;

use std::{
    fs::{File, OpenOptions},
    os::unix::fs::{OpenOptionsExt, PermissionsExt},
    path::{Path, PathBuf},
    sync::{Arc, Mutex, atomic::Ordering},
    time::Duration,
};

use async_trait::async_trait;
use rusqlite::{Connection, OpenFlags};

use super::{
    Claimed, ClaimedFetch, DeadLetter, DestinationStatus, ForgetAudit, ForgetIdentifier,
    ForgetOutcome, ForgetTarget, Ingested, NewDelivery, NewLead, Settlement, Store, StoreError,
    StoredLead,
};

pub use schema::CURRENT_VERSION;

pub(crate) fn now_ms() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}

/// Tuning for [`SqliteStore::open`].
#[derive(Debug, Clone)]
pub struct SqliteOptions {
    /// Writes that may wait for the writer before intake sheds load with 503.
    pub max_pending_writes: usize,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        SqliteOptions {
            max_pending_writes: 10_000,
        }
    }
}

pub struct SqliteStore {
    path: PathBuf,
    writer: Option<writer::Writer>,
    readers: Arc<Mutex<Vec<Connection>>>,
    read_only: bool,
    /// Held for the life of the store: the OS releases it if the process dies, even by SIGKILL.
    _lock: Option<File>,
}

impl SqliteStore {
    /// Opens (creating if needed, mode 0600) the database for the daemon: takes the state lock,
    /// migrates, and starts the writer.
    pub fn open(path: &Path, options: SqliteOptions) -> Result<SqliteStore, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| {
                StoreError::Unavailable(format!("cannot create {}: {e}", dir.display()))
            })?;
        }
        let lock = lock_state(path)?;
        // Create the file ourselves so it is 0600 from its first byte; SQLite gives the WAL and
        // shared-memory files the same mode as the database.
        OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(path)
            .map_err(|e| {
                StoreError::Unavailable(format!("cannot create {}: {e}", path.display()))
            })?;
        let mut conn = Connection::open(path)?;
        configure(&conn)?;
        schema::migrate(&mut conn)?;
        let writer = writer::Writer::spawn(conn, options.max_pending_writes)
            .map_err(|e| StoreError::Unavailable(format!("cannot start the writer thread: {e}")))?;
        Ok(SqliteStore {
            path: path.to_owned(),
            writer: Some(writer),
            readers: Arc::new(Mutex::new(Vec::new())),
            read_only: false,
            _lock: Some(lock),
        })
    }

    /// Opens an existing database for reading only (the CLI while the daemon is down). Writes
    /// fail with [`StoreError::ReadOnly`].
    pub fn open_read_only(path: &Path) -> Result<SqliteStore, StoreError> {
        if !path.exists() {
            return Err(StoreError::Unavailable(format!(
                "no state database at {}",
                path.display()
            )));
        }
        Ok(SqliteStore {
            path: path.to_owned(),
            writer: None,
            readers: Arc::new(Mutex::new(Vec::new())),
            read_only: true,
            _lock: None,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// How long ago the writer thread last showed life; `None` for a read-only store.
    pub fn writer_silence(&self) -> Option<Duration> {
        let w = self.writer.as_ref()?;
        let ms = (now_ms() - w.heartbeat.load(Ordering::Relaxed)).max(0);
        Some(Duration::from_millis(ms as u64))
    }

    /// Commits so far (each is one fsync'd group).
    pub fn commit_groups(&self) -> i64 {
        self.writer
            .as_ref()
            .map_or(0, |w| w.groups.load(Ordering::Relaxed))
    }

    async fn write<T, F>(&self, shed: bool, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let writer = self.writer.as_ref().ok_or(StoreError::ReadOnly)?;
        writer::submit(&writer.queue, shed, f).await
    }

    async fn read<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let pool = self.readers.clone();
        let path = self.path.clone();
        let read_only = self.read_only;
        tokio::task::spawn_blocking(move || {
            let pooled = pool
                .lock()
                .map_err(|_| StoreError::Unavailable("reader pool poisoned".into()))?
                .pop();
            let conn = match pooled {
                Some(c) => c,
                None => open_reader(&path, read_only)?,
            };
            let result = f(&conn);
            if let Ok(mut p) = pool.lock() {
                p.push(conn);
            }
            result
        })
        .await
        .map_err(|e| StoreError::Unavailable(format!("reader task failed: {e}")))?
    }
}

fn configure(conn: &Connection) -> Result<(), StoreError> {
    conn.pragma_update(None, "journal_mode", "WAL")?;
    // FULL: a commit is on disk when COMMIT returns, so a 202 never outlives a power cut's loss.
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    // Freed space in a page is zeroed, so a forgotten person's old values don't linger in the
    // file's free space (FAST: without extra I/O).
    conn.pragma_update(None, "secure_delete", "FAST")?;
    conn.busy_timeout(Duration::from_secs(5))?;
    Ok(())
}

fn open_reader(path: &Path, read_only: bool) -> Result<Connection, StoreError> {
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags)?;
    conn.busy_timeout(Duration::from_secs(5))?;
    if read_only {
        // Don't let a root shell leave root-owned files next to the daemon's database.
        conn.pragma_update(None, "query_only", true)?;
    }
    Ok(conn)
}

fn lock_state(db: &Path) -> Result<File, StoreError> {
    let mut lock_path = db.as_os_str().to_owned();
    lock_path.push(".lock");
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(&lock_path)
        .map_err(|e| StoreError::Unavailable(format!("cannot open lock file: {e}")))?;
    let _ = file.set_permissions(std::fs::Permissions::from_mode(0o600));
    file.try_lock().map_err(|_| {
        StoreError::Unavailable(format!(
            "{} is in use by another tandem process (lock file {:?} is held)",
            db.display(),
            lock_path
        ))
    })?;
    Ok(file)
}

#[async_trait]
impl Store for SqliteStore {
    async fn ingest(&self, lead: NewLead) -> Result<Ingested, StoreError> {
        self.write(true, move |c| queries::ingest(c, &lead, now_ms()))
            .await
    }

    async fn claim(
        &self,
        destination: &str,
        owner: &str,
        limit: usize,
        lease: Duration,
    ) -> Result<Vec<Claimed>, StoreError> {
        let (destination, owner) = (destination.to_owned(), owner.to_owned());
        let lease_ms = lease.as_millis() as i64;
        self.write(false, move |c| {
            queries::claim(c, &destination, &owner, limit, lease_ms, now_ms())
        })
        .await
    }

    async fn settle(&self, settlements: Vec<Settlement>) -> Result<(), StoreError> {
        self.write(false, move |c| queries::settle(c, &settlements, now_ms()))
            .await
    }

    async fn release_owner(&self, owner: &str) -> Result<usize, StoreError> {
        let owner = owner.to_owned();
        self.write(false, move |c| {
            queries::release(c, Some(&owner), true, now_ms())
        })
        .await
    }

    async fn release_all_leases(&self) -> Result<usize, StoreError> {
        self.write(false, move |c| queries::release(c, None, false, now_ms()))
            .await
    }

    async fn enqueue(&self, deliveries: Vec<NewDelivery>) -> Result<usize, StoreError> {
        self.write(false, move |c| queries::enqueue(c, &deliveries, now_ms()))
            .await
    }

    async fn leads_since(
        &self,
        sources: Vec<String>,
        since_ms: i64,
    ) -> Result<Vec<StoredLead>, StoreError> {
        self.read(move |c| queries::leads_since(c, &sources, since_ms))
            .await
    }

    async fn status(&self) -> Result<Vec<DestinationStatus>, StoreError> {
        self.read(move |c| queries::status(c, now_ms())).await
    }

    async fn dead_letters(
        &self,
        destination: Option<String>,
        limit: usize,
    ) -> Result<Vec<DeadLetter>, StoreError> {
        self.read(move |c| queries::dead_letters(c, destination.as_deref(), limit))
            .await
    }

    async fn retry_dead(&self, ids: Option<Vec<i64>>) -> Result<usize, StoreError> {
        self.write(false, move |c| {
            queries::retry_dead(c, ids.as_deref(), now_ms())
        })
        .await
    }

    async fn drop_dead(&self, ids: Option<Vec<i64>>) -> Result<usize, StoreError> {
        self.write(false, move |c| queries::drop_dead(c, ids.as_deref()))
            .await
    }

    async fn remote_id(
        &self,
        person_id: i64,
        connector: &str,
    ) -> Result<Option<String>, StoreError> {
        let connector = connector.to_owned();
        self.read(move |c| queries::remote_id(c, person_id, &connector))
            .await
    }

    async fn set_paused(&self, connector: &str, reason: Option<String>) -> Result<(), StoreError> {
        let connector = connector.to_owned();
        self.write(false, move |c| {
            queries::set_paused(c, &connector, reason.as_deref(), now_ms())
        })
        .await
    }

    async fn paused(&self) -> Result<Vec<(String, String)>, StoreError> {
        self.read(queries::paused).await
    }

    async fn enqueue_fetches(
        &self,
        source: &str,
        requests: Vec<(String, String)>,
    ) -> Result<usize, StoreError> {
        let source = source.to_owned();
        self.write(true, move |c| {
            queries::enqueue_fetches(c, &source, &requests, now_ms())
        })
        .await
    }

    async fn claim_fetches(
        &self,
        source: &str,
        owner: &str,
        limit: usize,
        lease: Duration,
    ) -> Result<Vec<ClaimedFetch>, StoreError> {
        let (source, owner) = (source.to_owned(), owner.to_owned());
        let lease_ms = lease.as_millis() as i64;
        self.write(false, move |c| {
            queries::claim_fetches(c, &source, &owner, limit, lease_ms, now_ms())
        })
        .await
    }

    async fn complete_fetch(&self, fetch_id: i64, lead: NewLead) -> Result<Ingested, StoreError> {
        self.write(false, move |c| {
            queries::complete_fetch(c, fetch_id, &lead, now_ms())
        })
        .await
    }

    async fn settle_fetches(&self, settlements: Vec<Settlement>) -> Result<(), StoreError> {
        self.write(false, move |c| {
            queries::settle_fetches(c, &settlements, now_ms())
        })
        .await
    }

    async fn ingest_page(
        &self,
        leads: Vec<NewLead>,
        cursor_name: &str,
        cursor: &str,
    ) -> Result<Vec<Ingested>, StoreError> {
        let (name, value) = (cursor_name.to_owned(), cursor.to_owned());
        self.write(false, move |c| {
            queries::ingest_page(c, &leads, &name, &value, now_ms())
        })
        .await
    }

    async fn record_remote_id(&self, delivery_id: i64, remote_id: &str) -> Result<(), StoreError> {
        let remote_id = remote_id.to_owned();
        self.write(false, move |c| {
            queries::record_remote_id(c, delivery_id, &remote_id, now_ms())
        })
        .await
    }

    async fn load_token(&self, connector: &str) -> Result<Option<String>, StoreError> {
        let connector = connector.to_owned();
        self.read(move |c| queries::load_token(c, &connector)).await
    }

    async fn save_token(&self, connector: &str, token_json: &str) -> Result<(), StoreError> {
        let (connector, token_json) = (connector.to_owned(), token_json.to_owned());
        self.write(false, move |c| {
            queries::save_token(c, &connector, &token_json, now_ms())
        })
        .await
    }

    async fn cursor(&self, name: &str) -> Result<Option<String>, StoreError> {
        let name = name.to_owned();
        self.read(move |c| queries::cursor(c, &name)).await
    }

    async fn set_cursor(&self, name: &str, value: &str) -> Result<(), StoreError> {
        let (name, value) = (name.to_owned(), value.to_owned());
        self.write(false, move |c| {
            queries::set_cursor(c, &name, &value, now_ms())
        })
        .await
    }

    async fn forget(
        &self,
        identifier: ForgetIdentifier,
        targets: Vec<ForgetTarget>,
    ) -> Result<ForgetOutcome, StoreError> {
        self.write(false, move |c| {
            queries::forget(c, &identifier, &targets, now_ms())
        })
        .await
    }

    async fn forget_audits(&self, limit: usize) -> Result<Vec<ForgetAudit>, StoreError> {
        self.read(move |c| queries::forget_audits(c, limit)).await
    }

    async fn outcome_context(
        &self,
        crm: &str,
        deals: Vec<(String, Vec<tandem_connectors::outcome::DealContact>)>,
    ) -> Result<Vec<super::DealContext>, StoreError> {
        let crm = crm.to_owned();
        self.read(move |c| outcomes::outcome_context(c, &crm, &deals))
            .await
    }

    async fn record_outcomes(
        &self,
        batch: super::OutcomeBatch,
    ) -> Result<super::OutcomesRecorded, StoreError> {
        self.write(false, move |c| {
            outcomes::record_outcomes(c, &batch, now_ms())
        })
        .await
    }

    async fn attribution_inputs(&self) -> Result<super::AttributionInputs, StoreError> {
        self.read(outcomes::attribution_inputs).await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.write(true, |c| Ok(c.query_row("SELECT 1", [], |_| Ok(()))?))
            .await
    }
}
