//! The writer thread and its handle, [`Recorder`].
//!
//! `Recorder::record` is called on the packet path: it only does a `try_send` into a bounded
//! queue and never waits. One writer thread owns a SQLite connection and commits what it
//! receives in batches, one transaction per batch (up to `Config::batch_max` events or
//! `Config::flush_interval` after the first event of the batch). Between batches it runs one
//! retention step at a time, so deleting old rows never stalls inserts for long.
//!
//! When a commit fails (disk full, read-only, ...) the writer keeps the events in memory (up to
//! `Config::retry_capacity`), reports [`Health::Failing`] to subscribers, and retries with
//! back-off; when the commit goes through again it reports [`Health::Healthy`].

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{
    self, Receiver, RecvTimeoutError, Sender, SyncSender, TryRecvError, TrySendError,
};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rusqlite::{params, Connection};

use crate::config::Config;
use crate::error::{HistoryError, WriteFault, WriteFaultKind};
use crate::model::{Coded, Event, Millis, Protocol, Verdict};
use crate::time::{day_of, now_ms, DAY_MS};

/// Name of the stored counter of events dropped because the queue was full.
pub(crate) const DROPPED_COUNTER: &str = "dropped_events";

/// Longest back-off between retries of a failing write. Five seconds keeps a full disk from
/// costing battery while still resuming within seconds of space returning.
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// First back-off after a failure.
const FIRST_BACKOFF: Duration = Duration::from_millis(250);
/// Pages returned to the file system per retention step (8 MB at 4 KiB pages).
const VACUUM_PAGES_PER_STEP: u32 = 2_000;
/// Coalescing keys remembered before old ones are pruned. Bounded memory: at ~100 bytes a key
/// this is under 1 MB.
const COALESCE_KEYS_MAX: usize = 8_192;

/// State of the writer, for the shell to show ("history paused: storage full").
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Health {
    /// Commits go through.
    Healthy,
    /// The last commit failed; events are held in memory and retried.
    Failing {
        /// Why.
        fault: WriteFault,
        /// When the failures started.
        since_ms: Millis,
    },
}

/// What `record` did with an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recorded {
    /// Queued for the writer.
    Queued,
    /// Not recorded on purpose (an allowed connection while `record_allowed` is off).
    Skipped,
    /// The queue was full or the writer gone: counted in the dropped counter.
    Dropped,
}

/// Counters of the writer since the store was opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct WriterCounters {
    /// Events committed to the database.
    pub committed: u64,
    /// Events dropped (queue full, retry buffer full, or writer gone).
    pub dropped: u64,
}

/// Rows removed by a retention run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RetentionReport {
    /// Rows older than the retention age.
    pub deleted_by_age: u64,
    /// Rows removed to get under the size cap.
    pub deleted_by_size: u64,
}

/// Events are boxed so a queue slot is two words: std's bounded channel allocates every slot up
/// front, and 65,536 slots of a 232-byte `Event` would be 15 MB on a phone.
pub(crate) enum Msg {
    Event(Box<Event>),
    Flush(Sender<Result<(), WriteFault>>),
    Retention(Sender<Result<RetentionReport, WriteFault>>),
    Shutdown,
}

pub(crate) struct Shared {
    committed: AtomicU64,
    dropped_total: AtomicU64,
    /// Dropped events not yet added to the stored counter.
    dropped_unsaved: AtomicU64,
    health: Mutex<Health>,
    subscribers: Mutex<Vec<Sender<Health>>>,
    /// `Config::record_allowed`, changeable while recording ([`Recorder::set_record_allowed`]).
    record_allowed: AtomicBool,
}

impl Shared {
    fn new() -> Self {
        Shared {
            committed: AtomicU64::new(0),
            dropped_total: AtomicU64::new(0),
            dropped_unsaved: AtomicU64::new(0),
            health: Mutex::new(Health::Healthy),
            subscribers: Mutex::new(Vec::new()),
            record_allowed: AtomicBool::new(true),
        }
    }

    fn count_drop(&self, n: u64) {
        self.dropped_total.fetch_add(n, Ordering::Relaxed);
        self.dropped_unsaved.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn health(&self) -> Health {
        match self.health.lock() {
            Ok(h) => h.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    fn set_health(&self, new: Health) {
        let mut guard = match self.health.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        let changed = match (&*guard, &new) {
            (Health::Healthy, Health::Healthy) => false,
            (Health::Failing { fault: a, .. }, Health::Failing { fault: b, .. }) => {
                a.kind != b.kind
            }
            _ => true,
        };
        if !changed {
            return;
        }
        *guard = new.clone();
        drop(guard);
        match &new {
            Health::Healthy => log::info!("history: writes resumed"),
            Health::Failing { fault, .. } => log::warn!("{fault}"),
        }
        if let Ok(mut subs) = self.subscribers.lock() {
            subs.retain(|s| s.send(new.clone()).is_ok());
        }
    }

    pub(crate) fn subscribe(&self) -> Receiver<Health> {
        let (tx, rx) = mpsc::channel();
        if let Ok(mut subs) = self.subscribers.lock() {
            subs.push(tx);
        }
        rx
    }

    pub(crate) fn counters(&self) -> WriterCounters {
        WriterCounters {
            committed: self.committed.load(Ordering::Relaxed),
            dropped: self.dropped_total.load(Ordering::Relaxed),
        }
    }

    pub(crate) fn dropped_unsaved(&self) -> u64 {
        self.dropped_unsaved.load(Ordering::Relaxed)
    }
}

/// Cloneable, thread-safe handle to the writer. Cheap to clone; give one to each packet thread.
#[derive(Clone)]
pub struct Recorder {
    tx: SyncSender<Msg>,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Recorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recorder")
            .field("counters", &self.shared.counters())
            .field("health", &self.shared.health())
            .finish()
    }
}

impl Recorder {
    /// Hands an event to the writer. Never blocks and never fails: when the queue is full the
    /// event is counted as dropped, and that count is stored with the next commit.
    pub fn record(&self, event: Event) -> Recorded {
        if event.verdict == Verdict::Allow && !self.shared.record_allowed.load(Ordering::Relaxed) {
            return Recorded::Skipped;
        }
        match self.tx.try_send(Msg::Event(Box::new(event))) {
            Ok(()) => Recorded::Queued,
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                self.shared.count_drop(1);
                Recorded::Dropped
            }
        }
    }

    /// Records allowed connections from now on, or stops recording them
    /// (`Config::record_allowed`, for every clone of this recorder).
    pub fn set_record_allowed(&self, record_allowed: bool) {
        self.shared
            .record_allowed
            .store(record_allowed, Ordering::Relaxed);
    }

    /// Waits until every event recorded before this call is committed. Returns the write fault
    /// if the writer is failing (the events stay queued in memory and are retried).
    pub fn flush(&self) -> Result<(), HistoryError> {
        let (reply, answer) = mpsc::channel();
        self.tx
            .send(Msg::Flush(reply))
            .map_err(|_| HistoryError::Closed)?;
        match answer.recv() {
            Ok(Ok(())) => Ok(()),
            Ok(Err(fault)) => Err(HistoryError::Write(fault)),
            Err(_) => Err(HistoryError::Closed),
        }
    }

    /// Current state of the writer.
    pub fn health(&self) -> Health {
        self.shared.health()
    }

    /// A channel that receives every change of [`Health`] (failing, and healthy again).
    pub fn health_events(&self) -> Receiver<Health> {
        self.shared.subscribe()
    }

    /// Events committed and dropped since the store was opened.
    pub fn counters(&self) -> WriterCounters {
        self.shared.counters()
    }

    pub(crate) fn run_retention(&self) -> Result<RetentionReport, HistoryError> {
        let (reply, answer) = mpsc::channel();
        self.tx
            .send(Msg::Retention(reply))
            .map_err(|_| HistoryError::Closed)?;
        match answer.recv() {
            Ok(Ok(report)) => Ok(report),
            Ok(Err(fault)) => Err(HistoryError::Write(fault)),
            Err(_) => Err(HistoryError::Closed),
        }
    }

    pub(crate) fn shutdown(&self) {
        let _ = self.tx.send(Msg::Shutdown);
    }

    pub(crate) fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }
}

/// How long the writer naps between drains of the queue while it gathers a batch: it wakes
/// at most 100 times a second under any event rate, and a flush or shutdown request waits at
/// most this long behind a batch being gathered. 8,192 queue slots (the smallest `embargo run`
/// uses) hold 10 ms of a 46k events/s flood.
const GATHER_NAP: Duration = Duration::from_millis(10);

/// Starts the writer thread on `conn` (already migrated).
pub(crate) fn spawn(
    conn: Connection,
    config: &Config,
) -> Result<(Recorder, std::thread::JoinHandle<()>), HistoryError> {
    let (tx, rx) = mpsc::sync_channel(config.queue_capacity.max(1));
    let shared = Arc::new(Shared::new());
    shared
        .record_allowed
        .store(config.record_allowed, Ordering::Relaxed);
    let writer = Writer::new(conn, config.clone(), shared.clone());
    let handle = std::thread::Builder::new()
        .name("embargo-history-writer".into())
        .spawn(move || writer.run(rx))
        .map_err(HistoryError::io("starting the history writer thread"))?;
    Ok((Recorder { tx, shared }, handle))
}

/// Coalescing key: (app, name or else address, protocol, decision). A row's fields must be true
/// of every event counted in it: a DNS question for a name and a connection to it are two
/// different things an app did (the second one shows the app bypassed or outlived the DNS
/// block), so the protocol is part of the key. The port is not: a name reached on 443 and on
/// 80 is the same story.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    app: Option<String>,
    name: Option<String>,
    addr: Option<IpAddr>,
    protocol: Protocol,
    verdict: Verdict,
}

impl Key {
    fn of(e: &Event) -> Key {
        Key {
            app: e.app.clone(),
            name: e.name.clone(),
            addr: if e.name.is_none() { e.addr } else { None },
            protocol: e.protocol,
            verdict: e.verdict,
        }
    }
}

/// Row that later events of the same key may coalesce into.
#[derive(Debug, Clone, Copy)]
struct Slot {
    id: i64,
    first_seen: Millis,
}

struct Writer {
    conn: Connection,
    config: Config,
    shared: Arc<Shared>,
    /// Events received and not yet committed (includes a failed batch being retried).
    pending: Vec<Event>,
    /// Invariant: every slot names a committed row of its key, or a row id not in use. It is
    /// cleared when a transaction rolls back or retention deletes rows, since either can make a
    /// remembered id refer to nothing or, after reuse, to another key's row.
    coalesce: HashMap<Key, Slot>,
    retry_at: Option<Instant>,
    backoff: Duration,
    retention_due: Instant,
    retention_active: bool,
    /// Every `Recorder` is gone: commit what is left and stop.
    disconnected: bool,
    /// Open a new connection before the next write (after a read-only fault).
    reconnect: bool,
}

enum Control {
    Flush(Sender<Result<(), WriteFault>>),
    Retention(Sender<Result<RetentionReport, WriteFault>>),
    Shutdown,
}

const INSERT_SQL: &str = "INSERT INTO records (first_seen, last_seen, count, app, name, addr, \
    port, protocol, decision, rule, list, line, owner, owner_source, country, country_source, \
    certainty, category) VALUES (?1, ?1, 1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, \
    ?14, ?15, ?16)";

const UPDATE_SQL: &str = "UPDATE records SET count = count + 1, last_seen = max(last_seen, ?1), \
    addr = ?2, port = ?3, protocol = ?4, rule = ?5, list = ?6, line = ?7, owner = ?8, \
    owner_source = ?9, country = ?10, country_source = ?11, certainty = ?12, category = ?14 \
    WHERE id = ?13";

const DAILY_SQL: &str = "INSERT INTO daily (day, app, owner, country, blocked, allowed) \
    VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (day, app, owner, country) DO UPDATE SET \
    blocked = blocked + excluded.blocked, allowed = allowed + excluded.allowed";

const DAILY_BY_SQL: &str = "INSERT INTO daily_by (dim, day, value, blocked, allowed) \
    VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (dim, day, value) DO UPDATE SET \
    blocked = blocked + excluded.blocked, allowed = allowed + excluded.allowed";

pub(crate) const COUNTER_ADD_SQL: &str = "INSERT INTO counters (name, value) VALUES (?1, ?2) \
    ON CONFLICT (name) DO UPDATE SET value = value + excluded.value";

impl Writer {
    /// A writer on `conn` with nothing pending and retention due at once.
    fn new(conn: Connection, config: Config, shared: Arc<Shared>) -> Writer {
        Writer {
            conn,
            config,
            shared,
            pending: Vec::new(),
            coalesce: HashMap::new(),
            retry_at: None,
            backoff: FIRST_BACKOFF,
            retention_due: Instant::now(),
            retention_active: false,
            disconnected: false,
            reconnect: false,
        }
    }

    fn run(mut self, rx: Receiver<Msg>) {
        loop {
            let control = self.gather(&rx);
            match control {
                Some(Control::Flush(reply)) => {
                    let _ = reply.send(self.commit_pending());
                }
                Some(Control::Retention(reply)) => {
                    // Retention runs even when commits fail: on a full disk it is what frees
                    // the space for them.
                    let committed = self.commit_pending();
                    let result = self.retention_full();
                    if committed.is_err() {
                        let _ = self.commit_pending();
                    }
                    let _ = reply.send(result);
                }
                Some(Control::Shutdown) => {
                    let _ = self.commit_pending();
                    self.finish();
                    return;
                }
                None => {}
            }
            let retry_due = self.retry_at.is_none_or(|t| Instant::now() >= t);
            if !self.pending.is_empty() && retry_due {
                let _ = self.commit_pending();
            }
            if self.disconnected {
                let _ = self.commit_pending();
                self.finish();
                return;
            }
            let disk_full = matches!(
                self.shared.health(),
                Health::Failing { ref fault, .. } if fault.kind == WriteFaultKind::DiskFull
            );
            if (self.pending.is_empty() && self.retry_at.is_none()) || disk_full {
                self.retention_tick();
            }
        }
    }

    /// How long to sleep waiting for the first event of a batch.
    fn idle_timeout(&self) -> Duration {
        let now = Instant::now();
        if self.retention_active {
            return Duration::ZERO;
        }
        let mut wake = self.retention_due;
        if let Some(retry) = self.retry_at {
            wake = wake.min(retry);
        }
        wake.saturating_duration_since(now)
    }

    /// Receives events until a batch is full, the flush interval has passed since the first
    /// one, or a control message arrives.
    fn gather(&mut self, rx: &Receiver<Msg>) -> Option<Control> {
        let mut msg = match rx.recv_timeout(self.idle_timeout()) {
            Ok(m) => m,
            Err(RecvTimeoutError::Timeout) => return None,
            Err(RecvTimeoutError::Disconnected) => {
                self.disconnected = true;
                return None;
            }
        };
        let started = Instant::now();
        loop {
            match msg {
                Msg::Event(e) => self.accept(*e),
                Msg::Flush(reply) => return Some(Control::Flush(reply)),
                Msg::Retention(reply) => return Some(Control::Retention(reply)),
                Msg::Shutdown => return Some(Control::Shutdown),
            }
            // While failing, the batch size is not a reason to wake: retries follow back-off.
            if self.retry_at.is_none() && self.pending.len() >= self.config.batch_max {
                return None;
            }
            // Within a batch the queue is drained, then napped on, not blocked on: a receiver
            // blocked on the queue is woken by every send (a futex wake and two context
            // switches per event, about a fifth of Embargo's CPU under a DNS flood), a napping
            // one takes whatever arrived meanwhile in one go.
            msg = loop {
                match rx.try_recv() {
                    Ok(m) => break m,
                    Err(TryRecvError::Disconnected) => {
                        self.disconnected = true;
                        return None;
                    }
                    Err(TryRecvError::Empty) => {
                        let remaining =
                            self.config.flush_interval.saturating_sub(started.elapsed());
                        if remaining.is_zero() {
                            return None;
                        }
                        std::thread::sleep(remaining.min(GATHER_NAP));
                    }
                }
            };
        }
    }

    fn accept(&mut self, event: Event) {
        if self.pending.len() >= self.config.retry_capacity.max(self.config.batch_max) {
            self.shared.count_drop(1);
        } else {
            self.pending.push(event);
        }
    }

    /// Commits every pending event (and the unsaved dropped count) in one transaction.
    fn commit_pending(&mut self) -> Result<(), WriteFault> {
        let drops = self.shared.dropped_unsaved.swap(0, Ordering::Relaxed);
        if self.pending.is_empty() && drops == 0 {
            return Ok(());
        }
        match self.write(drops) {
            Ok(()) => {
                self.shared
                    .committed
                    .fetch_add(self.pending.len() as u64, Ordering::Relaxed);
                if let Some(newest) = self.pending.iter().map(|e| e.time_ms).max() {
                    self.prune_coalesce(newest);
                }
                self.pending.clear();
                self.retry_at = None;
                self.backoff = FIRST_BACKOFF;
                self.shared.set_health(Health::Healthy);
                Ok(())
            }
            Err(err) => {
                self.shared
                    .dropped_unsaved
                    .fetch_add(drops, Ordering::Relaxed);
                // The rolled-back transaction may have put ids in the map that do not exist.
                self.coalesce.clear();
                let fault = WriteFault::from_sqlite(&err);
                self.reconnect = fault.kind == WriteFaultKind::ReadOnly;
                self.retry_at = Some(Instant::now() + self.backoff);
                self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
                let since_ms = match self.shared.health() {
                    Health::Failing { since_ms, .. } => since_ms,
                    Health::Healthy => {
                        if fault.kind == WriteFaultKind::DiskFull {
                            // Old rows may be due for deletion: free what retention allows now.
                            self.retention_due = Instant::now();
                        }
                        now_ms()
                    }
                };
                self.shared.set_health(Health::Failing {
                    fault: fault.clone(),
                    since_ms,
                });
                Err(fault)
            }
        }
    }

    fn write(&mut self, drops: u64) -> rusqlite::Result<()> {
        if self.reconnect {
            // A connection that met a read-only file stays read-only; a new one sees the file
            // as it is now (e.g. the file system was remounted read-write).
            match crate::open::connect(
                &self.config.path,
                self.config.hard_max_bytes,
                self.config.cache_bytes,
            ) {
                Ok(conn) => {
                    self.conn = conn;
                    self.reconnect = false;
                }
                Err(HistoryError::Sqlite { source, .. }) => return Err(source),
                Err(other) => {
                    return Err(rusqlite::Error::ToSqlConversionFailure(Box::new(
                        std::io::Error::other(other.to_string()),
                    )))
                }
            }
        }
        let window = self.config.coalesce_window.as_millis() as Millis;
        let tx = self.conn.transaction()?;
        {
            let mut insert = tx.prepare_cached(INSERT_SQL)?;
            let mut update = tx.prepare_cached(UPDATE_SQL)?;
            let mut daily: HashMap<(i64, &str, &str, &str), (i64, i64)> = HashMap::new();
            for e in &self.pending {
                let addr = e.addr.map(|a| a.to_string());
                let mut coalesced = false;
                let key = if window > 0 { Some(Key::of(e)) } else { None };
                if let Some(slot) = key.as_ref().and_then(|k| self.coalesce.get(k)) {
                    let age = e.time_ms - slot.first_seen;
                    if (0..window).contains(&age) {
                        let changed = update.execute(params![
                            e.time_ms,
                            addr,
                            e.port,
                            e.protocol.code(),
                            e.rule,
                            e.list,
                            e.line,
                            e.owner,
                            e.owner_source,
                            e.country,
                            e.country_source,
                            e.certainty.code(),
                            slot.id,
                            e.category,
                        ])?;
                        coalesced = changed == 1;
                    }
                }
                if !coalesced {
                    insert.execute(params![
                        e.time_ms,
                        e.app,
                        e.name,
                        addr,
                        e.port,
                        e.protocol.code(),
                        e.verdict.code(),
                        e.rule,
                        e.list,
                        e.line,
                        e.owner,
                        e.owner_source,
                        e.country,
                        e.country_source,
                        e.certainty.code(),
                        e.category,
                    ])?;
                    if let Some(key) = key {
                        let id = tx.last_insert_rowid();
                        self.coalesce.insert(
                            key,
                            Slot {
                                id,
                                first_seen: e.time_ms,
                            },
                        );
                    }
                }
                let cell = daily
                    .entry((
                        day_of(e.time_ms),
                        e.app.as_deref().unwrap_or(""),
                        e.owner.as_deref().unwrap_or(""),
                        e.country.as_deref().unwrap_or(""),
                    ))
                    .or_default();
                match e.verdict {
                    Verdict::Block => cell.0 += 1,
                    Verdict::Allow => cell.1 += 1,
                }
            }
            let mut upsert = tx.prepare_cached(DAILY_SQL)?;
            let mut by: HashMap<(i64, i64, &str), (i64, i64)> = HashMap::new();
            for ((day, app, owner, country), (blocked, allowed)) in daily {
                upsert.execute(params![day, app, owner, country, blocked, allowed])?;
                for (dim, value) in [(0, app), (1, owner), (2, country)] {
                    let cell = by.entry((dim, day, value)).or_default();
                    cell.0 += blocked;
                    cell.1 += allowed;
                }
            }
            let mut upsert_by = tx.prepare_cached(DAILY_BY_SQL)?;
            for ((dim, day, value), (blocked, allowed)) in by {
                upsert_by.execute(params![dim, day, value, blocked, allowed])?;
            }
            if drops > 0 {
                tx.execute(COUNTER_ADD_SQL, params![DROPPED_COUNTER, drops as i64])?;
            }
        }
        tx.commit()
    }

    /// Forgets keys whose window has passed; bounded memory even with many distinct keys.
    fn prune_coalesce(&mut self, newest: Millis) {
        if self.coalesce.len() <= COALESCE_KEYS_MAX / 2 {
            return;
        }
        let window = self.config.coalesce_window.as_millis() as Millis;
        self.coalesce
            .retain(|_, slot| newest - slot.first_seen < window);
        if self.coalesce.len() > COALESCE_KEYS_MAX {
            self.coalesce.clear();
        }
    }

    fn retention_tick(&mut self) {
        if !self.retention_active && Instant::now() >= self.retention_due {
            self.retention_active = true;
            self.retention_due = Instant::now() + self.config.retention_interval;
        }
        if !self.retention_active {
            return;
        }
        match self.retention_step() {
            Ok((report, vacuumed)) => {
                if report.deleted_by_age + report.deleted_by_size + vacuumed == 0 {
                    self.retention_active = false;
                }
            }
            Err(err) => {
                log::warn!("history: retention step failed: {err}");
                self.retention_active = false;
            }
        }
    }

    fn retention_full(&mut self) -> Result<RetentionReport, WriteFault> {
        let mut total = RetentionReport::default();
        loop {
            let (report, vacuumed) = self
                .retention_step()
                .map_err(|e| WriteFault::from_sqlite(&e))?;
            total.deleted_by_age += report.deleted_by_age;
            total.deleted_by_size += report.deleted_by_size;
            if report.deleted_by_age + report.deleted_by_size + vacuumed == 0 {
                self.retention_active = false;
                return Ok(total);
            }
        }
    }

    /// One bounded step: at most `retention_batch` rows deleted (by age first, then by size),
    /// then at most `VACUUM_PAGES_PER_STEP` free pages returned. Returns the rows deleted and
    /// pages vacuumed; zero for both means retention is done.
    fn retention_step(&mut self) -> rusqlite::Result<(RetentionReport, u64)> {
        let batch = self.config.retention_batch.max(1) as i64;
        let cutoff = now_ms().saturating_sub(self.config.retention.as_millis() as Millis);
        let mut report = RetentionReport {
            deleted_by_age: self.conn.execute(
                "DELETE FROM records WHERE id IN (SELECT id FROM records WHERE last_seen < ?1 \
                 ORDER BY last_seen LIMIT ?2)",
                params![cutoff, batch],
            )? as u64,
            deleted_by_size: 0,
        };
        if report.deleted_by_age < batch as u64 {
            // Whole days before the cutoff's day; the cutoff's own day stays until tomorrow.
            self.conn
                .execute("DELETE FROM daily WHERE day < ?1", params![cutoff / DAY_MS])?;
            self.conn.execute(
                "DELETE FROM daily_by WHERE day < ?1",
                params![cutoff / DAY_MS],
            )?;
        }
        if report.deleted_by_age == 0 {
            if let Some(max) = self.config.max_bytes {
                if live_bytes(&self.conn)? > max {
                    report.deleted_by_size = self.conn.execute(
                        "DELETE FROM records WHERE id IN (SELECT id FROM records \
                         ORDER BY last_seen LIMIT ?1)",
                        params![batch],
                    )? as u64;
                }
            }
        }
        if report.deleted_by_age + report.deleted_by_size > 0 {
            self.coalesce.clear();
        }
        let vacuumed = incremental_vacuum(&self.conn, VACUUM_PAGES_PER_STEP)?;
        Ok((report, vacuumed))
    }

    fn finish(&mut self) {
        if let Err(err) = self.conn.execute_batch("PRAGMA optimize;") {
            log::debug!("history: PRAGMA optimize failed: {err}");
        }
    }
}

/// Bytes in pages that hold data (free pages excluded), the measure the size cap applies to.
pub(crate) fn live_bytes(conn: &Connection) -> rusqlite::Result<u64> {
    let pages: i64 = conn.query_row("PRAGMA page_count", [], |r| r.get(0))?;
    let free: i64 = conn.query_row("PRAGMA freelist_count", [], |r| r.get(0))?;
    let size: i64 = conn.query_row("PRAGMA page_size", [], |r| r.get(0))?;
    Ok(((pages - free).max(0) * size) as u64)
}

/// Returns up to `pages` free pages to the file system; the count actually freed.
fn incremental_vacuum(conn: &Connection, pages: u32) -> rusqlite::Result<u64> {
    let before: i64 = conn.query_row("PRAGMA freelist_count", [], |r| r.get(0))?;
    if before == 0 {
        return Ok(0);
    }
    let mut stmt = conn.prepare(&format!("PRAGMA incremental_vacuum({pages})"))?;
    let mut rows = stmt.query([])?;
    while rows.next()?.is_some() {}
    drop(rows);
    let after: i64 = conn.query_row("PRAGMA freelist_count", [], |r| r.get(0))?;
    Ok((before - after).max(0) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Protocol;

    fn writer(dir: &std::path::Path, config: impl FnOnce(&mut Config)) -> Writer {
        let mut cfg = Config::new(dir.join("w.db"));
        config(&mut cfg);
        let (conn, _) = crate::open::open(&cfg.path, None).unwrap();
        Writer::new(conn, cfg, Arc::new(Shared::new()))
    }

    fn blocked(time_ms: Millis, name: Option<&str>, addr: Option<&str>) -> Event {
        let mut e = Event::new(time_ms, Protocol::Tcp, Verdict::Block);
        e.app = Some("app".into());
        e.name = name.map(Into::into);
        e.addr = addr.map(|a| a.parse().unwrap());
        e
    }

    #[test]
    fn key_uses_the_address_only_when_there_is_no_name() {
        let a = Key::of(&blocked(0, Some("x.example"), Some("192.0.2.1")));
        let b = Key::of(&blocked(0, Some("x.example"), Some("192.0.2.2")));
        assert_eq!(a, b, "same name, other address: same story");
        let c = Key::of(&blocked(0, None, Some("192.0.2.1")));
        let d = Key::of(&blocked(0, None, Some("192.0.2.2")));
        assert_ne!(c, d, "bare addresses are told apart");
    }

    #[test]
    fn key_tells_a_dns_question_from_a_connection() {
        let tcp = blocked(0, Some("x.example"), None);
        let mut dns = tcp.clone();
        dns.protocol = Protocol::Dns;
        assert_ne!(Key::of(&tcp), Key::of(&dns));
    }

    #[test]
    fn retention_deletes_at_most_one_batch_per_step() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = writer(dir.path(), |c| {
            c.coalesce_window = Duration::ZERO;
            c.retention_batch = 300;
        });
        let old = now_ms() - 60 * DAY_MS;
        w.pending = (0..1_000)
            .map(|i| blocked(old + i, Some("x"), None))
            .collect();
        w.commit_pending().unwrap();
        let steps: Vec<u64> = (0..5)
            .map(|_| w.retention_step().unwrap().0.deleted_by_age)
            .collect();
        assert_eq!(steps, [300, 300, 300, 100, 0]);
    }

    #[test]
    fn read_only_fault_reconnects_and_resumes() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = writer(dir.path(), |_| {});
        // A connection that can only read, as SQLite gives when the file is write-protected.
        w.conn =
            Connection::open_with_flags(&w.config.path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
                .unwrap();
        w.pending = vec![blocked(now_ms(), Some("a"), None)];
        let fault = w.commit_pending().unwrap_err();
        assert_eq!(fault.kind, WriteFaultKind::ReadOnly, "{fault}");
        assert!(fault.to_string().contains("read-only"), "{fault}");
        assert!(w.reconnect);
        // The file is writable: the retry opens a new connection and the event is written.
        w.commit_pending().unwrap();
        assert!(!w.reconnect);
        assert_eq!(w.shared.health(), Health::Healthy);
        assert_eq!(w.shared.counters().committed, 1);
    }

    #[test]
    fn a_rolled_back_batch_leaves_no_stale_coalescing_slot() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = writer(dir.path(), |_| {});
        let t = now_ms();
        w.pending = vec![blocked(t, Some("a"), None)];
        w.commit_pending().unwrap();
        assert_eq!(w.coalesce.len(), 1);
        // Make the next commit fail half-way (after its record insert): hide a table.
        w.conn
            .execute_batch("ALTER TABLE daily RENAME TO daily_gone")
            .unwrap();
        w.pending = vec![blocked(t + 1, Some("b"), None)];
        assert!(w.commit_pending().is_err());
        assert!(w.coalesce.is_empty(), "slots cleared after a rollback");
        assert!(w.retry_at.is_some());
        assert!(matches!(w.shared.health(), Health::Failing { .. }));
        w.conn
            .execute_batch("ALTER TABLE daily_gone RENAME TO daily")
            .unwrap();
        w.commit_pending().unwrap();
        assert_eq!(w.shared.health(), Health::Healthy);
        let rows: i64 = w
            .conn
            .query_row("SELECT count(*) FROM records", [], |r| r.get(0))
            .unwrap();
        assert_eq!(rows, 2);
    }
}
