//! The one writer thread and its group commit. Every write is a job on a bounded queue; the thread
//! takes every job waiting, runs each inside its own savepoint of one transaction, commits once
//! (one fsync with `synchronous=FULL`), and only then answers each caller. Durability costs one
//! fsync per group, not per lead.

use std::{
    sync::{
        Arc,
        atomic::{AtomicI64, Ordering},
    },
    thread::JoinHandle,
    time::Duration,
};

use rusqlite::Connection;

use crate::store::StoreError;

/// Tells a waiting caller how its job ended once the group's commit is known.
pub(super) type Reply = Box<dyn FnOnce(Result<(), String>) + Send>;
/// A job runs on the writer thread. `None` means the transaction could not even begin: answer
/// the caller with the failure. Returns whether the job's own statements succeeded, and its reply.
pub(super) type Job = Box<dyn FnOnce(Option<&Connection>) -> (bool, Reply) + Send>;

/// The most jobs folded into one transaction; bounds the latency a huge backlog adds to one commit.
const MAX_GROUP: usize = 2048;

pub(super) struct Writer {
    pub(super) queue: flume::Sender<Job>,
    /// Unix ms of the thread's last sign of life (it ticks at least twice a second when idle).
    pub(super) heartbeat: Arc<AtomicI64>,
    pub(super) groups: Arc<AtomicI64>,
    thread: Option<JoinHandle<()>>,
}

impl Writer {
    pub(super) fn spawn(conn: Connection, capacity: usize) -> std::io::Result<Writer> {
        let (queue, rx) = flume::bounded::<Job>(capacity.max(1));
        let heartbeat = Arc::new(AtomicI64::new(super::now_ms()));
        let groups = Arc::new(AtomicI64::new(0));
        let (hb, gr) = (heartbeat.clone(), groups.clone());
        let thread = std::thread::Builder::new()
            .name("tandem-store-writer".into())
            .spawn(move || run(conn, rx, hb, gr))?;
        Ok(Writer {
            queue,
            heartbeat,
            groups,
            thread: Some(thread),
        })
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        // Closing the queue lets the thread finish the jobs already queued, then exit.
        let (closed, _) = flume::bounded(1);
        drop(std::mem::replace(&mut self.queue, closed));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn run(
    mut conn: Connection,
    rx: flume::Receiver<Job>,
    heartbeat: Arc<AtomicI64>,
    groups: Arc<AtomicI64>,
) {
    loop {
        let first = match rx.recv_timeout(Duration::from_millis(500)) {
            Ok(job) => job,
            Err(flume::RecvTimeoutError::Timeout) => {
                heartbeat.store(super::now_ms(), Ordering::Relaxed);
                continue;
            }
            Err(flume::RecvTimeoutError::Disconnected) => return,
        };
        let mut jobs = Vec::with_capacity(64);
        jobs.push(first);
        while jobs.len() < MAX_GROUP {
            match rx.try_recv() {
                Ok(job) => jobs.push(job),
                Err(_) => break,
            }
        }
        commit_group(&mut conn, jobs);
        groups.fetch_add(1, Ordering::Relaxed);
        heartbeat.store(super::now_ms(), Ordering::Relaxed);
    }
}

fn commit_group(conn: &mut Connection, jobs: Vec<Job>) {
    if let Err(e) = conn.execute_batch("BEGIN IMMEDIATE") {
        let msg = format!("could not begin a transaction: {e}");
        for job in jobs {
            let (_, reply) = job(None);
            reply(Err(msg.clone()));
        }
        return;
    }
    let mut replies = Vec::with_capacity(jobs.len());
    for job in jobs {
        // A savepoint per job: one caller's failed statement must not undo its neighbours' work.
        if let Err(e) = conn.execute_batch("SAVEPOINT job") {
            let (_, reply) = job(None);
            replies.push((reply, Some(format!("savepoint: {e}"))));
            continue;
        }
        let (ok, reply) = job(Some(conn));
        let undo = if ok {
            "RELEASE job"
        } else {
            "ROLLBACK TO job; RELEASE job"
        };
        let failed = conn
            .execute_batch(undo)
            .err()
            .map(|e| format!("savepoint: {e}"));
        replies.push((reply, failed));
    }
    let commit = conn.execute_batch("COMMIT").map_err(|e| {
        let _ = conn.execute_batch("ROLLBACK");
        format!("commit failed: {e}")
    });
    for (reply, failed) in replies {
        match (&commit, failed) {
            (Err(e), _) => reply(Err(e.clone())),
            (Ok(()), Some(e)) => reply(Err(e)),
            (Ok(()), None) => reply(Ok(())),
        }
    }
}

/// Queues `f` for the writer and waits for the group's commit. With `shed`, a full queue fails at
/// once with [`StoreError::Busy`] instead of waiting (intake answers 503 rather than pile up).
pub(super) async fn submit<T, F>(
    queue: &flume::Sender<Job>,
    shed: bool,
    f: F,
) -> Result<T, StoreError>
where
    T: Send + 'static,
    F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
{
    let (tx, rx) = tokio::sync::oneshot::channel::<Result<T, StoreError>>();
    let job: Job = Box::new(move |conn| match conn {
        None => (
            false,
            Box::new(move |r: Result<(), String>| {
                let _ = tx.send(Err(StoreError::Unavailable(r.err().unwrap_or_default())));
            }),
        ),
        Some(conn) => {
            let result = f(conn);
            let ok = result.is_ok();
            (
                ok,
                Box::new(move |commit: Result<(), String>| {
                    let _ = tx.send(match (result, commit) {
                        (Err(e), _) => Err(e),
                        (Ok(_), Err(e)) => Err(StoreError::Unavailable(e)),
                        (Ok(v), Ok(())) => Ok(v),
                    });
                }),
            )
        }
    });
    let sent = if shed {
        queue.try_send(job).map_err(|e| match e {
            flume::TrySendError::Full(_) => StoreError::Busy,
            flume::TrySendError::Disconnected(_) => {
                StoreError::Unavailable("the writer has stopped".into())
            }
        })
    } else {
        queue
            .send_async(job)
            .await
            .map_err(|_| StoreError::Unavailable("the writer has stopped".into()))
    };
    sent?;
    rx.await
        .map_err(|_| StoreError::Unavailable("the writer stopped before committing".into()))?
}
