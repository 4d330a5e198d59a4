//! The store: dedup keys and receipts of inbound messages, and the last version delivered per
//! destination and record key (for supersession). Embedded SQLite by default, PostgreSQL for
//! several instances; the same SQL runs on both.
//!
//! Writes go through one writer task that commits in batches (group commit): many concurrent
//! callers share one transaction and each is answered only after that transaction committed,
//! so nothing acknowledged is lost and the per-message cost of a commit is amortised.

use std::time::Duration;

use backend::{Tx, on_conn};
use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use tokio::sync::{mpsc, oneshot};

/// Schema migrations, applied in order: (version, SQLite text, PostgreSQL text). Only 0005
/// has two texts; PostgreSQL runs the others through [`for_postgres`].
const MIGRATIONS: &[(i64, &str, &str)] = &[
    (1, include_str!("store/0001_init.sql"), include_str!("store/0001_init.sql")),
    (2, include_str!("store/0002_lineage.sql"), include_str!("store/0002_lineage.sql")),
    (3, include_str!("store/0003_claims.sql"), include_str!("store/0003_claims.sql")),
    (4, include_str!("store/0004_lifecycle.sql"), include_str!("store/0004_lifecycle.sql")),
    (
        5,
        include_str!("store/0005_lineage_compact_sqlite.sql"),
        include_str!("store/0005_lineage_compact_postgres.sql"),
    ),
    (6, include_str!("store/0006_disputes.sql"), include_str!("store/0006_disputes.sql")),
    (
        7,
        include_str!("store/0007_lineage_per_key.sql"),
        include_str!("store/0007_lineage_per_key.sql"),
    ),
    (
        8,
        include_str!("store/0008_lineage_backlog.sql"),
        include_str!("store/0008_lineage_backlog.sql"),
    ),
    (9, include_str!("store/0009_shared_bodies.sql"), include_str!("store/0009_shared_bodies.sql")),
];

/// How many backlog rows one indexing transaction moves. A pass costs about as much as the
/// index pages it visits (sorted keys visit each page once), so bigger passes cost less per
/// row, but hold the writer longer: passes of 4 500 rows of records of their own took 130–350
/// ms (`credgate-store-bench --distinct`), growing with the indexes.
const INDEX_PASS_MAX: i64 = 8192;
/// How many unindexed backlog rows make the writer index them before its next group.
const INDEX_PASS_MIN: usize = 4096;
/// How often light traffic's backlog is moved.
const INDEX_WHEN_LIGHT: Duration = Duration::from_millis(100);
/// Below this many rows per second traffic is light: 100 ms of it make a pass of at most 200
/// rows (a few milliseconds). At 1 000 msg/s passes of 4 096 rows put ~60 ms on the p99
/// latency; under a draining backlog (4 000–6 000 msg/s) small passes would cost more per row.
const INDEX_LIGHT_RATE: f64 = 2000.0;
/// How long the writer waits for the next write before it indexes the backlog anyway.
const INDEX_WHEN_IDLE: Duration = Duration::from_millis(20);
/// How often a reader asks for the backlog to be moved before it reads without rows another
/// instance holds locked (5 ms apart).
const CATCH_UP_TRIES: usize = 200;
/// How many writes one transaction may carry.
const BATCH_MAX: usize = 1024;
/// How long a group of unsynced writes waits for company before it commits.
const LATER_GATHER: Duration = Duration::from_millis(3);
/// The smallest group of unsynced writes that waits for company (a batch of 64 records).
const LATER_GATHER_MIN: usize = 64;
/// Dedup rows per multi-row INSERT (6 parameters each).
const MESSAGE_ROWS_PER_INSERT: usize = 100;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store: {0}")]
    Sql(#[from] sqlx::Error),
    #[error("store url `{0}` is neither sqlite:// nor postgres://")]
    BadUrl(String),
    #[error("store writer stopped")]
    WriterGone,
}

#[derive(Debug, Clone)]
enum Pool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// A handle to the store; cheap to clone.
#[derive(Debug, Clone)]
pub struct Store {
    pool: Pool,
    writer: mpsc::Sender<Request>,
}

/// One write.
#[derive(Debug, Clone)]
pub enum Write {
    /// Remember an inbound message id and its receipt (the dedup key).
    Message {
        message_id: String,
        adapter: String,
        doc_type: String,
        status: String,
        receipt: String,
        received_at: String,
    },
    /// A copy was delivered: keep the highest version per destination and key.
    Delivered {
        destination: String,
        record_key: String,
        record_version: String,
        idempotency_key: String,
        delivered_at: String,
        response: String,
    },
    /// One accepted record version with its index values and routed copies (`lineage`).
    Lineage(Box<lineage::RecordLineage>),
    /// One delivery attempt of a copy and its outcome (`lineage`).
    Attempt(Box<lineage::Attempt>),
    /// A dead-lettered copy with its bytes, reason and attempt history (`dlq`).
    DeadLetter(Box<dlq::DeadLetter>),
    /// A dead letter was re-published (`dlq`).
    Replayed(Box<dlq::Replayed>),
    /// A rejected inbound document kept with its bytes for re-ingest after a fix (`dlq`).
    Rejected(Box<dlq::RejectedInput>),
    /// A delivery claim is given up, with the copy's outcome (`claims`).
    ReleaseClaim(Box<claims::Release>),
    /// A list event, a planned retraction or a publicity decision (`lifecycle`).
    Lifecycle(Box<lifecycle::LifecycleWrite>),
}

macro_rules! on_pool {
    ($pool:expr, $p:ident => $body:expr) => {
        match $pool {
            Pool::Sqlite($p) => $body,
            Pool::Postgres($p) => $body,
        }
    };
}

impl Store {
    /// Opens (creating if needed) the store and runs migrations. A relative SQLite path is
    /// resolved against `base_dir`.
    ///
    /// # Errors
    ///
    /// The URL is unsupported or the database cannot be opened or migrated.
    pub async fn open(url: &str, base_dir: &std::path::Path) -> Result<Store, StoreError> {
        let pool = if let Some(path) = url.strip_prefix("sqlite://") {
            let path = if path == ":memory:" {
                std::path::PathBuf::from(path)
            } else {
                base_dir.join(path)
            };
            if let Some(parent) = path.parent() {
                let _ = std::fs::create_dir_all(parent);
            }
            let options = SqliteConnectOptions::new()
                .filename(&path)
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                // FULL: a commit survives power loss; group commit keeps the cost per batch.
                .synchronous(SqliteSynchronous::Full)
                .busy_timeout(Duration::from_secs(10))
                // A multi-row INSERT in the group commit keeps a statement journal (to undo
                // itself alone); in memory instead of a temporary file it costs no write calls.
                // It has no part in durability: the WAL and its fsync at commit are unchanged.
                .pragma("temp_store", "memory")
                // Room for a whole group commit's dirty pages (up to BATCH_MAX writes, ~2 MB
                // with lineage), so none are spilled into the WAL before the commit.
                .pragma("cache_size", "-4096");
            Pool::Sqlite(SqlitePoolOptions::new().max_connections(4).connect_with(options).await?)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Pool::Postgres(PgPoolOptions::new().max_connections(8).connect(url).await?)
        } else {
            return Err(StoreError::BadUrl(url.to_owned()));
        };
        migrate(&pool).await?;
        let (tx, rx) = mpsc::channel(4096);
        tokio::spawn(writer(pool.clone(), rx));
        Ok(Store { pool, writer: tx })
    }

    pub fn backend(&self) -> &'static str {
        match self.pool {
            Pool::Sqlite(_) => "sqlite",
            Pool::Postgres(_) => "postgres",
        }
    }

    /// Commits a write (in a batch with others) and returns once it is durable.
    ///
    /// # Errors
    ///
    /// The batch's transaction failed or the writer stopped.
    pub async fn write(&self, write: Write) -> Result<(), StoreError> {
        self.write_all(vec![write]).await
    }

    /// Commits several writes atomically (in one batch with others) and returns once they
    /// are durable. The batched ingest hands over all dedup rows of a batch at once.
    ///
    /// # Errors
    ///
    /// The batch's transaction failed or the writer stopped.
    pub async fn write_all(&self, writes: Vec<Write>) -> Result<(), StoreError> {
        self.submit(writes, Sync::Now).await
    }

    /// Commits several writes atomically, like [`Store::write_all`], but without waiting for
    /// the disk: they are durable once a later `write_all` has returned, because both backends
    /// log commits in order and that commit's flush carries everything logged before it
    /// (SQLite's WAL, PostgreSQL's WAL). For rows nothing is acted on until such a commit
    /// follows: ingest writes a batch's lineage this way while its copies are being
    /// published, and acknowledges only after the dedup rows' `write_all`.
    ///
    /// # Errors
    ///
    /// The batch's transaction failed or the writer stopped.
    pub async fn write_all_flushed_later(&self, writes: Vec<Write>) -> Result<(), StoreError> {
        self.submit(writes, Sync::Later).await
    }

    async fn submit(&self, writes: Vec<Write>, sync: Sync) -> Result<(), StoreError> {
        if writes.is_empty() {
            return Ok(());
        }
        let (tx, rx) = oneshot::channel();
        self.writer
            .send(Request::Commit((writes, sync, tx)))
            .await
            .map_err(|_| StoreError::WriterGone)?;
        Self::answer(rx).await
    }

    /// Has the lineage backlog moved into `record_index` and `routed_copies`, so that a read of
    /// them that follows sees every record committed before the call — by this process or by
    /// any other on the same store (a `credgate` command, another instance on PostgreSQL): a
    /// credit repair must find every holder of the record, whoever routed it. Every reader of
    /// those tables calls it first; so do tests that look at the tables directly. One short
    /// query when the backlog is empty.
    ///
    /// # Errors
    ///
    /// A query or the indexing transaction failed, or the writer stopped.
    pub async fn catch_up_lineage(&self) -> Result<(), StoreError> {
        let newest = "SELECT MAX(seq) FROM lineage_backlog";
        let Some(newest): Option<i64> =
            on_pool!(&self.pool, p => sqlx::query_scalar(newest).fetch_one(p).await?)
        else {
            return Ok(());
        };
        let left =
            "SELECT COUNT(*) FROM (SELECT 1 FROM lineage_backlog WHERE seq <= $1 LIMIT 1) AS t";
        for attempt in 0..CATCH_UP_TRIES {
            if attempt > 0 {
                // Rows another instance is moving right now (locked): its commit is near.
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            let (tx, rx) = oneshot::channel();
            self.writer.send(Request::CatchUp(tx)).await.map_err(|_| StoreError::WriterGone)?;
            Self::answer(rx).await?;
            let remaining: i64 = on_pool!(&self.pool, p => sqlx::query_scalar(left).bind(newest).fetch_one(p).await?);
            if remaining == 0 {
                return Ok(());
            }
        }
        tracing::warn!(
            "rows of the lineage backlog stayed locked by another instance; reading without them"
        );
        Ok(())
    }

    async fn answer(rx: oneshot::Receiver<Result<(), String>>) -> Result<(), StoreError> {
        match rx.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(message)) => Err(StoreError::Sql(sqlx::Error::Protocol(message))),
            Err(_) => Err(StoreError::WriterGone),
        }
    }

    /// The receipt already given for an inbound message id, if any.
    ///
    /// # Errors
    ///
    /// The query failed.
    pub async fn receipt_for(&self, message_id: &str) -> Result<Option<String>, StoreError> {
        let sql = "SELECT receipt FROM inbound_messages WHERE message_id = $1";
        let row: Option<(String,)> = on_pool!(&self.pool, p => sqlx::query_as(sql).bind(message_id).fetch_optional(p).await?);
        Ok(row.map(|(r,)| r))
    }

    /// The receipts already given for any of these inbound message ids, by message id: one
    /// query for a whole ingest batch instead of one per message.
    ///
    /// # Errors
    ///
    /// The query failed.
    pub async fn receipts_for(
        &self,
        message_ids: &[&str],
    ) -> Result<std::collections::HashMap<String, String>, StoreError> {
        let mut found = std::collections::HashMap::new();
        // Bounded IN lists: SQLite's variable limit is far above this, and PostgreSQL plans a
        // short list as well as an array parameter.
        for chunk in message_ids.chunks(500) {
            let placeholders: Vec<String> = (1..=chunk.len()).map(|i| format!("${i}")).collect();
            let sql = format!(
                "SELECT message_id, receipt FROM inbound_messages WHERE message_id IN ({})",
                placeholders.join(", ")
            );
            let rows: Vec<(String, String)> = on_pool!(&self.pool, p => {
                // Only numbered placeholders are formatted in; every value is bound.
                let mut query = sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str()));
                for id in chunk {
                    query = query.bind(*id);
                }
                query.fetch_all(p).await?
            });
            found.extend(rows);
        }
        Ok(found)
    }

    /// The highest version delivered to a destination for a record key.
    ///
    /// # Errors
    ///
    /// The query failed.
    pub async fn delivered_version(
        &self,
        destination: &str,
        record_key: &str,
    ) -> Result<Option<String>, StoreError> {
        let sql = "SELECT record_version FROM delivered WHERE destination = $1 AND record_key = $2";
        let row: Option<(String,)> = on_pool!(&self.pool, p => sqlx::query_as(sql).bind(destination).bind(record_key).fetch_optional(p).await?);
        Ok(row.map(|(v,)| v))
    }

    /// What a delivery worker must know before sending a copy, in one round trip: the highest
    /// version delivered to the destination for the record key, and whether an open objection
    /// holds the record.
    ///
    /// # Errors
    ///
    /// The query failed.
    pub async fn delivery_view(
        &self,
        destination: &str,
        record_key: &str,
    ) -> Result<(Option<String>, bool), StoreError> {
        let sql = "SELECT (SELECT record_version FROM delivered WHERE destination = $1 AND record_key = $2), (SELECT COUNT(*) FROM disputes WHERE target_record_key = $2 AND holding = 1)";
        let (delivered, holds): (Option<String>, i64) = on_pool!(&self.pool, p => sqlx::query_as(sql).bind(destination).bind(record_key).fetch_one(p).await?);
        Ok((delivered, holds > 0))
    }

    /// Whether the store answers.
    pub async fn ping(&self) -> bool {
        on_pool!(&self.pool, p => sqlx::query("SELECT 1").execute(p).await.is_ok())
    }
}

/// A migration's text for PostgreSQL: SQLite's `WITHOUT ROWID` table option removed (a
/// PostgreSQL table is always organised apart from its primary key index), and SQLite's
/// numbered key (`INTEGER PRIMARY KEY`, the rowid) made PostgreSQL's (`BIGSERIAL`). Migrations
/// before 0007 hold neither.
fn for_postgres(sql: &str) -> String {
    sql.replace(") WITHOUT ROWID", ")").replace(" INTEGER PRIMARY KEY", " BIGSERIAL PRIMARY KEY")
}

async fn migrate(pool: &Pool) -> Result<(), StoreError> {
    let postgres = matches!(pool, Pool::Postgres(_));
    on_pool!(pool, p => {
        sqlx::query("CREATE TABLE IF NOT EXISTS schema_version (version BIGINT PRIMARY KEY)").execute(p).await?;
        for (version, sqlite, pg) in MIGRATIONS {
            let sql = if postgres { for_postgres(pg) } else { (*sqlite).to_owned() };
            let done: Option<(i64,)> = sqlx::query_as("SELECT version FROM schema_version WHERE version = $1").bind(*version).fetch_optional(p).await?;
            if done.is_some() {
                continue;
            }
            let mut tx = p.begin().await?;
            for statement in sql.split(';').map(str::trim).filter(|s| !s.is_empty()) {
                sqlx::query(sqlx::AssertSqlSafe(statement.to_owned())).execute(&mut *tx).await?;
            }
            sqlx::query("INSERT INTO schema_version (version) VALUES ($1)").bind(*version).execute(&mut *tx).await?;
            tx.commit().await?;
        }
    });
    Ok(())
}

/// Writes that commit together, whether they wait for the disk, and who waits for them.
type Pending = (Vec<Write>, Sync, oneshot::Sender<Result<(), String>>);

/// What the writer is asked to do.
enum Request {
    /// Commit these writes (in a group with others).
    Commit(Pending),
    /// Index the whole lineage backlog, then answer ([`Store::catch_up_lineage`]).
    CatchUp(oneshot::Sender<Result<(), String>>),
}

/// Whether a commit waits for its log to reach the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sync {
    /// Durable when the commit returns (SQLite `synchronous = FULL`, PostgreSQL
    /// `synchronous_commit = on`): the default for every write.
    Now,
    /// Durable once a later `Now` commit returns ([`Store::write_all_flushed_later`]).
    Later,
}

/// The single writer: takes what is queued (up to `BATCH_MAX` writes) and commits it in one
/// transaction. It never waits for company: whatever arrives while a commit is running joins
/// the next one, so batches grow with the load and an idle gateway pays no added latency.
///
/// It also indexes the lineage backlog (0008): before the next group once `INDEX_PASS_MIN`
/// rows are pending, at once for a reader that asked ([`Request::CatchUp`]), and whenever no
/// write came for `INDEX_WHEN_IDLE`. One task doing both keeps SQLite's single write lock
/// uncontended.
async fn writer(pool: Pool, mut rx: mpsc::Receiver<Request>) {
    // Backlog rows this writer appended and has not moved yet. Starts at 1: rows an earlier
    // run left in the backlog are moved at the first idle moment.
    let mut unindexed: usize = 1;
    let mut batch: Vec<Pending> = Vec::with_capacity(64);
    let mut catch_ups: Vec<oneshot::Sender<Result<(), String>>> = Vec::new();
    // Doubles after each failed idle pass (up to 5 s), so a broken store is not retried, and
    // logged, fifty times a second.
    let mut idle = INDEX_WHEN_IDLE;
    let mut last_pass = tokio::time::Instant::now();
    loop {
        let first = if unindexed > 0 {
            match tokio::time::timeout(idle, rx.recv()).await {
                Ok(first) => first,
                Err(_) => {
                    idle = match index_all(&pool, &mut unindexed).await {
                        Ok(()) => INDEX_WHEN_IDLE,
                        Err(e) => {
                            tracing::warn!(error = %e, "indexing the lineage backlog failed; retried when next idle");
                            (idle * 2).min(Duration::from_secs(5))
                        }
                    };
                    continue;
                }
            }
        } else {
            rx.recv().await
        };
        let Some(first) = first else { break };
        let mut writes = take(first, &mut batch, &mut catch_ups).0;
        while writes < BATCH_MAX {
            let Ok(next) = rx.try_recv() else { break };
            writes += take(next, &mut batch, &mut catch_ups).0;
        }
        // Nobody waits on a group of unsynced writes but ingest, and ingest is waiting for
        // its confirms meanwhile: under load (a group of whole batches' lineage) a short wait
        // lets other batches' lineage join, and a bigger commit costs less per row. A small
        // group commits at once: at a low rate the confirms are quicker than the wait. A write
        // that must be durable now ends the wait. (Waiting up to 25 ms while dedup rows keep
        // coming, so that a batch's lineage commits with the previous batch's dedup rows, cost
        // the same CPU and 13.8 % of the drain rate against 8.4 % over 16 interleaved pairs: a
        // batch then waits for the one before it.)
        if writes >= LATER_GATHER_MIN && batch.iter().all(|(_, sync, _)| *sync == Sync::Later) {
            let until = tokio::time::Instant::now() + LATER_GATHER;
            while writes < BATCH_MAX {
                let Ok(Some(next)) = tokio::time::timeout_at(until, rx.recv()).await else {
                    break;
                };
                let (taken, now) = take(next, &mut batch, &mut catch_ups);
                writes += taken;
                if now {
                    break;
                }
            }
        }
        if !batch.is_empty() {
            // One write that must be durable now makes the whole group wait for the disk.
            let sync = if batch.iter().any(|(_, sync, _)| *sync == Sync::Now) {
                Sync::Now
            } else {
                Sync::Later
            };
            let result = commit(&pool, Work::Group(&batch), sync).await;
            if let Ok(appended) = result {
                unindexed += appended;
            }
            let result = result.map(|_| ()).map_err(|e| e.to_string());
            for (_, _, reply) in batch.drain(..) {
                let _ = reply.send(result.clone());
            }
        }
        // Light traffic (rows arriving slower than INDEX_LIGHT_RATE) is moved every
        // INDEX_WHEN_LIGHT in short passes that delay the next group by a few milliseconds,
        // instead of one pass of INDEX_PASS_MIN rows, long enough to show in the latency of
        // every message behind it. Heavy traffic gathers INDEX_PASS_MIN rows, where a pass
        // costs least per row.
        let since = last_pass.elapsed();
        #[allow(clippy::cast_precision_loss)] // a count of rows, far below 2^52
        let light = unindexed > 0
            && since >= INDEX_WHEN_LIGHT
            && (unindexed as f64) < INDEX_LIGHT_RATE * since.as_secs_f64();
        if !catch_ups.is_empty() || unindexed >= INDEX_PASS_MIN || light {
            last_pass = tokio::time::Instant::now();
            let result = index_all(&pool, &mut unindexed).await.map_err(|e| e.to_string());
            for reply in catch_ups.drain(..) {
                let _ = reply.send(result.clone());
            }
        }
    }
}

/// Files a request into the group being gathered: how many writes it adds, and whether they
/// must be durable now.
fn take(
    request: Request,
    batch: &mut Vec<Pending>,
    catch_ups: &mut Vec<oneshot::Sender<Result<(), String>>>,
) -> (usize, bool) {
    match request {
        Request::Commit(pending) => {
            let taken = (pending.0.len(), pending.1 == Sync::Now);
            batch.push(pending);
            taken
        }
        Request::CatchUp(reply) => {
            catch_ups.push(reply);
            (0, false)
        }
    }
}

/// Indexes the lineage backlog until it is empty, one transaction per `INDEX_PASS_MAX` rows.
/// The rows are durable already (ingest's dedup commit flushed them); moving them needs no
/// flush of its own: a move lost in a crash leaves them in the backlog.
async fn index_all(pool: &Pool, unindexed: &mut usize) -> Result<(), sqlx::Error> {
    loop {
        let started = std::time::Instant::now();
        let moved = commit(pool, Work::IndexBacklog, Sync::Later).await?;
        tracing::debug!(moved, ms = started.elapsed().as_millis(), "lineage backlog indexed");
        *unindexed = unindexed.saturating_sub(moved);
        if i64::try_from(moved).unwrap_or(i64::MAX) < INDEX_PASS_MAX {
            // Empty now (rows other processes appended included), but for rows another
            // instance holds locked, which it is moving itself.
            *unindexed = 0;
            return Ok(());
        }
    }
}

/// What one writer transaction does.
#[derive(Clone, Copy)]
enum Work<'a> {
    /// A group of queued writes.
    Group(&'a [Pending]),
    /// One pass over the lineage backlog (`lineage::index_backlog`).
    IndexBacklog,
}

impl Work<'_> {
    /// Runs the work in an open transaction; how many backlog rows it moved.
    async fn run<T: Tx>(self, tx: &mut T) -> Result<usize, sqlx::Error> {
        match self {
            Work::Group(batch) => fill(tx, batch).await,
            Work::IndexBacklog => lineage::index_backlog(tx, INDEX_PASS_MAX).await,
        }
    }
}

async fn commit(pool: &Pool, work: Work<'_>, sync: Sync) -> Result<usize, sqlx::Error> {
    // SQLite: take the write lock up front. A deferred transaction that reads first (the index
    // key, the backlog) fails at once when it must turn into a write after another process
    // (`credgate` CLI commands, a second gateway on the file) committed in between.
    let begin = if matches!(pool, Pool::Sqlite(_)) { "BEGIN IMMEDIATE" } else { "BEGIN" };
    match (pool, sync) {
        (_, Sync::Now) => on_pool!(pool, p => {
            let mut tx = p.begin_with(begin).await?;
            let moved = work.run(&mut tx).await?;
            tx.commit().await.map(|()| moved)
        }),
        // `SET LOCAL` ends with the transaction.
        (Pool::Postgres(p), Sync::Later) => {
            let mut tx = p.begin().await?;
            sqlx::query("SET LOCAL synchronous_commit = off").execute(&mut *tx).await?;
            let moved = work.run(&mut tx).await?;
            tx.commit().await.map(|()| moved)
        }
        // SQLite's setting belongs to the connection: it is set back to FULL whatever happened,
        // so that no other writer (audit, retention) ever commits on it without waiting for
        // the disk.
        (Pool::Sqlite(p), Sync::Later) => {
            use sqlx::Connection;
            let mut conn = p.acquire().await?;
            sqlx::query("PRAGMA synchronous = NORMAL").execute(&mut *conn).await?;
            let result = async {
                let mut tx = conn.begin_with(begin).await?;
                let moved = work.run(&mut tx).await?;
                tx.commit().await.map(|()| moved)
            }
            .await;
            let restored = sqlx::query("PRAGMA synchronous = FULL").execute(&mut *conn).await;
            if restored.is_err() {
                // A connection whose setting is unknown must not go back to the pool.
                conn.detach();
            }
            result.and_then(|moved| restored.map(|_| moved))
        }
    }
}

/// Runs a group's writes in an open transaction; how many backlog rows it appended.
async fn fill<T: Tx>(tx: &mut T, batch: &[Pending]) -> Result<usize, sqlx::Error> {
    let writes = || batch.iter().flat_map(|(writes, _, _)| writes);
    // Dedup rows are most of the traffic: a multi-row INSERT per hundred rows instead of one
    // statement (and one round trip to the database thread) per row.
    let messages: Vec<[&String; 6]> = writes()
        .filter_map(|w| match w {
            Write::Message { message_id, adapter, doc_type, status, receipt, received_at } => {
                Some([message_id, adapter, doc_type, status, receipt, received_at])
            }
            _ => None,
        })
        .collect();
    let lineage: Vec<&lineage::RecordLineage> = writes()
        .filter_map(|w| match w {
            Write::Lineage(record) => Some(&**record),
            _ => None,
        })
        .collect();
    let publicity: Vec<&crate::lifecycle::hook::PublicityRow> = writes()
        .filter_map(|w| match w {
            Write::Lifecycle(l) => match &**l {
                lifecycle::LifecycleWrite::Publicity(row) => Some(row),
                _ => None,
            },
            _ => None,
        })
        .collect();
    on_conn!(tx.conn(), c => {
        for chunk in lineage::shaped_chunks(&messages, MESSAGE_ROWS_PER_INSERT) {
            let mut q = sqlx::QueryBuilder::new("INSERT INTO inbound_messages (message_id, adapter, doc_type, status, receipt, received_at) ");
            q.push_values(chunk, |mut row, columns| {
                for value in columns {
                    row.push_bind(*value);
                }
            });
            q.push(" ON CONFLICT (message_id) DO NOTHING");
            q.build().execute(&mut *c).await?;
        }
    });
    let appended = lineage::append_backlog(tx, &lineage).await?;
    lifecycle::commit_publicity(tx, &publicity).await?;
    for write in writes() {
        match write {
            Write::Message { .. } | Write::Lineage(_) => {}
            Write::Lifecycle(w) if matches!(**w, lifecycle::LifecycleWrite::Publicity(_)) => {}
            Write::Delivered {
                destination,
                record_key,
                record_version,
                idempotency_key,
                delivered_at,
                response,
            } => {
                on_conn!(tx.conn(), c => {
                    sqlx::query("INSERT INTO delivered (destination, record_key, record_version, idempotency_key, delivered_at, response) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (destination, record_key) DO UPDATE SET record_version = excluded.record_version, idempotency_key = excluded.idempotency_key, delivered_at = excluded.delivered_at, response = excluded.response WHERE excluded.record_version > delivered.record_version")
                        .bind(destination).bind(record_key).bind(record_version).bind(idempotency_key).bind(delivered_at).bind(response)
                        .execute(&mut *c).await?;
                });
            }
            Write::Attempt(w) => lineage::commit_attempt(tx, w).await?,
            Write::DeadLetter(w) => dlq::commit_dead_letter(tx, w).await?,
            Write::Replayed(w) => dlq::commit_replayed(tx, w).await?,
            Write::Rejected(w) => dlq::commit_rejected(tx, w).await?,
            Write::ReleaseClaim(w) => claims::commit_release(tx, w).await?,
            Write::Lifecycle(w) => lifecycle::commit_lifecycle(tx, w).await?,
        }
    }
    Ok(appended)
}

pub mod audit;
pub mod backend;
pub mod claims;
pub mod dlq;
pub mod dlq_purge;
pub mod lifecycle;
pub mod lineage;
pub mod receipts;
pub mod retention;

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// A SQLite store `test.db` in a fresh directory named after `tag`, and its pool.
    async fn sqlite_store(tag: &str) -> (std::path::PathBuf, Store, SqlitePool) {
        let dir = std::env::temp_dir().join(format!("credgate-{tag}-{}", uuid::Uuid::new_v4()));
        let store = Store::open("sqlite://test.db", &dir).await.unwrap();
        let Pool::Sqlite(pool) = store.pool.clone() else { unreachable!("a sqlite:// store") };
        (dir, store, pool)
    }

    /// The lineage of a penalty version `v1` with one 文书号 and one copy to hb-credit.
    fn penalty_lineage(
        message_id: &str,
        record_key: &str,
        received_at: &str,
        doc_no: &str,
        idempotency_key: &str,
    ) -> Write {
        Write::Lineage(Box::new(lineage::RecordLineage {
            message_id: message_id.into(),
            record_index: 0,
            record_key: record_key.into(),
            record_version: "v1".into(),
            source_adapter: "wh-ggzy".into(),
            doc_type: "penalty".into(),
            catalog_item: "admin_penalty".into(),
            catalog_version: "1".into(),
            operation: "upsert".into(),
            status: "accepted".into(),
            raw_sha256: "x".into(),
            canonical: "{}".into(),
            body_sha256: "".into(),
            received_at: received_at.into(),
            index: vec![lineage::IndexEntry {
                kind: lineage::IndexKind::DocNo,
                field: "decision_doc_no".into(),
                value: doc_no.into(),
            }],
            copies: vec![lineage::RoutedCopy {
                destination: "hb-credit".into(),
                idempotency_key: idempotency_key.into(),
            }],
        }))
    }

    /// A commit that does not wait for the disk is visible at once, and leaves every pooled
    /// SQLite connection waiting for the disk again (FULL = 2), so audit appends, retention and
    /// every `write_all` after it stay durable when they return.
    #[tokio::test]
    async fn flushed_later_commits_leave_connections_synchronous() {
        let dir = std::env::temp_dir().join(format!("credgate-sync-{}", uuid::Uuid::new_v4()));
        let store = Store::open("sqlite://sync.db", &dir).await.unwrap();
        for i in 0..6 {
            let write = Write::Message {
                message_id: format!("later-{i}"),
                adapter: "wh-ggzy".into(),
                doc_type: "penalty".into(),
                status: "accepted".into(),
                receipt: "{}".into(),
                received_at: "2026-11-24T10:00:00.000+08:00".into(),
            };
            store.write_all_flushed_later(vec![write]).await.unwrap();
            assert!(store.receipt_for(&format!("later-{i}")).await.unwrap().is_some());
        }
        let Pool::Sqlite(pool) = &store.pool else { unreachable!("a sqlite:// store") };
        // Every connection of the pool at once, so each one is looked at.
        let mut held = Vec::new();
        for _ in 0..pool.size() {
            let mut conn = pool.acquire().await.unwrap();
            let (level,): (i64,) =
                sqlx::query_as("PRAGMA synchronous").fetch_one(&mut *conn).await.unwrap();
            assert_eq!(level, 2, "a pooled connection was left without FULL");
            held.push(conn);
        }
        assert!(!held.is_empty());
        drop(held);
        drop(store);
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// Lineage lands in the backlog and the writer moves it into the lineage tables by itself
    /// once nothing else is queued; rows a crashed run left in the backlog are moved by the
    /// next run; a reader that asks sees everything committed before it asked.
    #[tokio::test]
    async fn the_lineage_backlog_is_indexed_when_idle_and_on_demand() {
        let (dir, store, pool) = sqlite_store("backlog").await;
        let count = |table: &'static str| {
            let pool = pool.clone();
            async move {
                let sql = sqlx::AssertSqlSafe(format!("SELECT COUNT(*) FROM {table}"));
                sqlx::query_scalar::<_, i64>(sql).fetch_one(&pool).await.unwrap()
            }
        };
        let record = |i: usize| {
            penalty_lineage(
                &format!("m-{i}"),
                &format!("admin_penalty:k{i}"),
                "2026-11-24T10:00:00.000+08:00",
                &format!("鄂罚〔2026〕{i}号"),
                &format!("hb-credit:k{i}:v1"),
            )
        };
        // Idle: moved without anyone asking, within a few idle periods.
        store.write_all(vec![record(1), record(2)]).await.unwrap();
        let mut waited = Duration::ZERO;
        while count("lineage_backlog").await > 0 && waited < Duration::from_secs(5) {
            tokio::time::sleep(Duration::from_millis(10)).await;
            waited += Duration::from_millis(10);
        }
        assert_eq!(count("lineage_backlog").await, 0, "the idle writer left the backlog");
        assert_eq!(count("record_versions").await, 2);
        assert_eq!(count("routed_copies").await, 2);
        assert_eq!(count("record_index").await, 2);
        // Left over by a crashed run: appended, never moved.
        for sql in [
            "INSERT INTO record_versions (message_id, record_index, record_key, record_version, source_adapter, doc_type, catalog_item, catalog_version, operation, status, raw_sha256, canonical, received_at) VALUES ('m-9', 0, 'admin_penalty:k9', 'v1', 'wh-ggzy', 'penalty', 'admin_penalty', '1', 'upsert', 'accepted', 'x', '{}', '2026-11-24T10:00:00.000+08:00')",
            "INSERT INTO lineage_backlog (message_id, record_index, record_key, record_version, received_at, index_rows, copies) VALUES ('m-9', 0, 'admin_penalty:k9', 'v1', '2026-11-24T10:00:00.000+08:00', '[[\"doc_no\",\"D9\",\"decision_doc_no\"]]', '[[\"hb-credit\",\"hb-credit:k9:v1\"]]')",
        ] {
            sqlx::query(sql).execute(&pool).await.unwrap();
        }
        drop(store);
        let store = Store::open("sqlite://test.db", &dir).await.unwrap();
        // On demand: a reader sees its own writes at once, and the leftover row too.
        store.write_all(vec![record(3)]).await.unwrap();
        store.catch_up_lineage().await.unwrap();
        let Pool::Sqlite(pool) = store.pool.clone() else { unreachable!("a sqlite:// store") };
        let (backlog,): (i64,) =
            sqlx::query_as("SELECT COUNT(*) FROM lineage_backlog").fetch_one(&pool).await.unwrap();
        assert_eq!(backlog, 0);
        let history = store.record_history("admin_penalty:k9").await.unwrap().unwrap();
        assert_eq!(history.versions.len(), 1);
        assert_eq!(history.versions[0].copies[0].idempotency_key, "hb-credit:k9:v1");
        let found = store
            .find_record_keys(&lineage::RecordQuery::DocNo("鄂罚〔2026〕3号".into()), 10)
            .await
            .unwrap();
        assert_eq!(found.len(), 1, "indexed by 文书号");
        // Appended by another process (a `credgate` command, another instance): this writer
        // does not know of it, a reader finds it all the same.
        sqlx::query("INSERT INTO lineage_backlog (message_id, record_index, record_key, record_version, received_at, index_rows, copies) VALUES ('m-10', 0, 'admin_penalty:k10', 'v1', '2026-11-24T10:00:00.000+08:00', '[[\"doc_no\",\"D10\",\"decision_doc_no\"]]', '[]')")
            .execute(&pool)
            .await
            .unwrap();
        let found =
            store.find_record_keys(&lineage::RecordQuery::DocNo("D10".into()), 10).await.unwrap();
        assert_eq!(found.len(), 1, "another process's backlog row is moved before the read");
        drop(store);
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A version received again with the same content (0009) stores no second body and adds no
    /// backlog row once its copies are recorded; one with a copy not recorded yet (routing
    /// changed) gets a row without index rows; other content under the same version, or a new
    /// version, keeps a body of its own.
    #[tokio::test]
    async fn a_version_received_again_shares_its_body_and_adds_no_backlog_row() {
        let (dir, store, pool) = sqlite_store("shared").await;
        let receipt = |message_id: &str, version: &str, digest: &str, copies: &[&str]| {
            let Write::Lineage(mut lineage) = penalty_lineage(
                message_id,
                "admin_penalty:k1",
                &format!("2026-11-24T10:00:0{}.000+08:00", message_id.len() % 10),
                "鄂罚〔2026〕1号",
                "hb-credit:k1:v1",
            ) else {
                unreachable!("a lineage write")
            };
            lineage.record_version = version.into();
            lineage.canonical = serde_json::json!({
                "record_key": "admin_penalty:k1",
                "record_version": version,
                "message_id": message_id,
                "received_at": &*lineage.received_at,
                "raw_sha256": &*lineage.raw_sha256,
                "penalty_content": digest,
            })
            .to_string();
            lineage.body_sha256 = digest.into();
            lineage.copies = copies
                .iter()
                .map(|d| lineage::RoutedCopy {
                    destination: (*d).to_owned(),
                    idempotency_key: format!("{d}:k1:{version}"),
                })
                .collect();
            lineage
        };
        let first = receipt("m-1", "v1", "d1", &["hb-credit"]);
        store.write(Write::Lineage(first)).await.unwrap();
        store.catch_up_lineage().await.unwrap();

        // Appended in a transaction of the test's own, so the writer's idle pass cannot move
        // the rows before they are counted.
        let again = receipt("m-22", "v1", "d1", &["hb-credit"]);
        let rerouted = receipt("m-333", "v1", "d1", &["hb-credit", "gc-county-credit"]);
        let corrected = receipt("m-4444", "v1", "d2", &["hb-credit"]);
        // A new version keeps its body (holders are found by version), and its copy is in the
        // backlog row m-55555 appended in this transaction.
        let unchanged_v2 = receipt("m-55555", "v2", "d1", &["hb-credit"]);
        let v2_again = receipt("m-666666", "v2", "d1", &["hb-credit"]);
        // A new version twice in one chunk (one delivery batch shares its receipt time, so
        // its version): the first row holds the body, the second is held by it.
        let v3 = receipt("m-7", "v3", "d1", &["hb-credit"]);
        let v3_again = receipt("m-88888888", "v3", "d1", &["hb-credit"]);
        let mut tx = pool.begin_with("BEGIN IMMEDIATE").await.unwrap();
        let receipts =
            [&*again, &*rerouted, &*v3, &*v3_again, &*corrected, &*unchanged_v2, &*v2_again];
        // Seven rows go in as 4 + 2 + 1, so m-666666 comes after m-55555 is inserted.
        assert_eq!(lineage::shaped_chunks(&receipts, lineage::ROWS_PER_INSERT).len(), 3);
        lineage::append_backlog(&mut tx, &receipts).await.unwrap();
        let backlog: Vec<(String, String)> =
            sqlx::query_as("SELECT message_id, index_rows FROM lineage_backlog ORDER BY seq")
                .fetch_all(&mut *tx)
                .await
                .unwrap();
        let backlog: Vec<(&str, bool)> =
            backlog.iter().map(|(m, index)| (m.as_str(), index == "[]")).collect();
        // Index rows only for the content not seen before; no row at all for m-22, m-88888888
        // and m-666666.
        assert_eq!(
            backlog,
            [("m-333", true), ("m-7", false), ("m-4444", false), ("m-55555", false)]
        );
        let shared: Vec<(String,)> = sqlx::query_as(
            "SELECT message_id FROM record_versions WHERE canonical = '=' ORDER BY message_id",
        )
        .fetch_all(&mut *tx)
        .await
        .unwrap();
        let shared: Vec<&str> = shared.iter().map(|(m,)| m.as_str()).collect();
        assert_eq!(shared, ["m-22", "m-333", "m-666666", "m-88888888"]);
        tx.commit().await.unwrap();

        let history = store.record_history("admin_penalty:k1").await.unwrap().unwrap();
        assert_eq!(history.versions.len(), 8);
        for version in &history.versions {
            let record = &version.canonical;
            assert_eq!(record["message_id"], version.message_id.as_str());
            assert_eq!(record["received_at"], version.received_at.as_str());
            assert_eq!(record["record_version"], version.record_version.as_str());
            let digest = if version.message_id == "m-4444" { "d2" } else { "d1" };
            assert_eq!(record["penalty_content"], digest);
        }
        let mut destinations: Vec<String> = store
            .holders("admin_penalty:k1")
            .await
            .unwrap()
            .into_iter()
            .map(|h| h.destination)
            .collect();
        destinations.sort();
        assert_eq!(destinations, ["gc-county-credit", "hb-credit"], "the new copy is recorded");
        let found = store
            .find_record_keys(&lineage::RecordQuery::DocNo("鄂罚〔2026〕1号".into()), 10)
            .await
            .unwrap();
        assert_eq!(found.len(), 1, "indexed once, from the holder's row");
        let Pool::Sqlite(pool) = store.pool.clone() else { unreachable!("a sqlite:// store") };
        let (copies,): (i64,) =
            sqlx::query_as("SELECT COUNT(*) FROM routed_copies").fetch_one(&pool).await.unwrap();
        assert_eq!(copies, 4, "hb-credit v1, v2 and v3, gc-county-credit v1");
        drop(store);
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A SQLite store written before 0005 keeps its lineage through the rebuild of
    /// `record_index` and `routed_copies`: found by identifier, copies listed, holders known.
    #[tokio::test]
    async fn migration_0005_keeps_existing_lineage() {
        let dir = std::env::temp_dir().join(format!("credgate-0005-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("old.db");
        {
            let options = SqliteConnectOptions::new().filename(&path).create_if_missing(true);
            let pool =
                SqlitePoolOptions::new().max_connections(1).connect_with(options).await.unwrap();
            sqlx::query("CREATE TABLE schema_version (version BIGINT PRIMARY KEY)")
                .execute(&pool)
                .await
                .unwrap();
            for (version, sql, _) in &MIGRATIONS[..4] {
                for statement in sql.split(';').map(str::trim).filter(|s| !s.is_empty()) {
                    sqlx::query(statement).execute(&pool).await.unwrap();
                }
                sqlx::query("INSERT INTO schema_version (version) VALUES ($1)")
                    .bind(*version)
                    .execute(&pool)
                    .await
                    .unwrap();
            }
            for sql in [
                "INSERT INTO record_versions VALUES ('m1', 0, 'admin_penalty:k', 'v1', 'wh-ggzy', 'penalty', 'admin_penalty', '1', 'upsert', 'accepted', 'x', '{}', '2026-11-23T10:00:00.000+08:00')",
                "INSERT INTO record_index VALUES ('doc_no', 'X〔2026〕1号', 'decision_doc_no', 'm1', 0, 'admin_penalty:k')",
                "INSERT INTO routed_copies VALUES ('idem-1', 'm1', 0, 'hb-credit', 'admin_penalty:k', 'v1', '2026-11-23T10:00:00.000+08:00')",
            ] {
                sqlx::query(sql).execute(&pool).await.unwrap();
            }
            pool.close().await;
        }
        let store = Store::open(&format!("sqlite://{}", path.display()), &dir).await.unwrap();
        let found = store
            .find_record_keys(&lineage::RecordQuery::DocNo("X〔2026〕1号".into()), 10)
            .await
            .unwrap();
        assert_eq!(found, vec![("admin_penalty:k".to_owned(), vec!["decision_doc_no".to_owned()])]);
        let holders = store.holders("admin_penalty:k").await.unwrap();
        assert_eq!(holders.len(), 1);
        assert_eq!(
            (holders[0].destination.as_str(), holders[0].routed_version.as_str()),
            ("hb-credit", "v1")
        );
        let history = store.record_history("admin_penalty:k").await.unwrap().unwrap();
        assert_eq!(history.versions[0].copies[0].idempotency_key, "idem-1");
        // Written again after the migration: no duplicate rows (the new keys conflict alike).
        let again = penalty_lineage(
            "m1",
            "admin_penalty:k",
            "2026-11-23T10:00:00.000+08:00",
            "X〔2026〕1号",
            "idem-1",
        );
        store.write(again.clone()).await.unwrap();
        store.write(again).await.unwrap();
        let history = store.record_history("admin_penalty:k").await.unwrap().unwrap();
        assert_eq!(history.versions.len(), 1);
        assert_eq!(history.versions[0].copies.len(), 1);
        drop(store);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
