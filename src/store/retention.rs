//! The store side of retention (`crate::retention` says how long): batched purges that each
//! touch at most `limit` rows in one short transaction, so a purge never holds ingest's group
//! commits for long, and that are idempotent, so instances sharing a store may run them at the
//! same time. Bodies are emptied in place (the metadata row stays); metadata rows are deleted
//! with what hangs off them (identifier index, routed copies, attempts).

use super::backend::{Tx, on_conn};
use super::lineage::{PerRow, SAME_BODY, with_own_fields};
use super::{Pool, Store, StoreError};

/// Rows touched by one purge batch.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Purged {
    pub bodies: u64,
    pub rows: u64,
}

impl Purged {
    pub fn total(self) -> u64 {
        self.bodies + self.rows
    }
}

impl Store {
    /// Empties up to `limit` bodies of `item` older than `before` (store time text): canonical
    /// records and dead-lettered payloads.
    ///
    /// # Errors
    ///
    /// A statement failed.
    pub async fn purge_bodies(
        &self,
        item: &str,
        before: &str,
        limit: i64,
    ) -> Result<u64, StoreError> {
        let pick = "SELECT message_id, record_index, record_key, record_version, body_sha256, canonical FROM record_versions \
                    WHERE catalog_item = $1 AND received_at < $2 AND canonical <> '' LIMIT $3";
        let dead = "UPDATE dead_letters SET payload = $4 WHERE dead_id IN (SELECT dead_id FROM \
                    dead_letters WHERE catalog_item = $1 AND dead_at < $2 AND length(payload) > 0 LIMIT $3)";
        let empty: Vec<u8> = Vec::new();
        let begin = if matches!(self.pool, Pool::Sqlite(_)) { "BEGIN IMMEDIATE" } else { "BEGIN" };
        let n = on_pool!(&self.pool, p => {
            let mut tx = p.begin_with(begin).await?;
            let picked = pick_versions(&mut tx, pick, [item, before], limit).await?;
            let mut n = 0;
            if !picked.is_empty() {
                let keys: Vec<(String, i64)> = picked.iter().map(|r| (r.0.clone(), r.1)).collect();
                let mut q = sqlx::QueryBuilder::new("UPDATE record_versions SET canonical = '' WHERE (message_id, record_index) IN (");
                push_keys(&mut q, &keys);
                q.push(")");
                n += q.build().execute(&mut *tx).await?.rows_affected();
            }
            n += sqlx::query(dead).bind(item).bind(before).bind(limit).bind(&empty).execute(&mut *tx).await?.rows_affected();
            tx.commit().await?;
            n
        });
        Ok(n)
    }

    /// Deletes up to `limit` record versions of `item` older than `before` with their index
    /// entries, routed copies and the attempts of those copies, and up to `limit` of its dead
    /// letters; one transaction.
    ///
    /// # Errors
    ///
    /// A statement failed.
    pub async fn purge_metadata(
        &self,
        item: &str,
        before: &str,
        limit: i64,
    ) -> Result<u64, StoreError> {
        self.catch_up_lineage().await?;
        let pick = "SELECT message_id, record_index, record_key, record_version, body_sha256, canonical FROM record_versions WHERE catalog_item = $1 AND received_at < $2 LIMIT $3";
        let dead = "DELETE FROM dead_letters WHERE dead_id IN (SELECT dead_id FROM dead_letters \
                    WHERE catalog_item = $1 AND dead_at < $2 LIMIT $3)";
        // SQLite: take the write lock up front (waiting for the group-commit writer like any
        // writer does) instead of upgrading a read transaction, which fails at once when the
        // writer committed in between.
        let begin = if matches!(self.pool, Pool::Sqlite(_)) { "BEGIN IMMEDIATE" } else { "BEGIN" };
        let n = on_pool!(&self.pool, p => {
            let mut tx = p.begin_with(begin).await?;
            let picked = pick_versions(&mut tx, pick, [item, before], limit).await?;
            let mut n = 0;
            if !picked.is_empty() {
                let keys: Vec<(String, i64)> = picked.iter().map(|r| (r.0.clone(), r.1)).collect();
                let record_keys: Vec<String> = picked.into_iter().map(|r| r.2).collect::<std::collections::BTreeSet<_>>().into_iter().collect();
                // The versions go first; a copy and an index row belong to a record key, not
                // to one document (0007), so they go once no version they describe is left.
                let mut q = sqlx::QueryBuilder::new("DELETE FROM record_versions WHERE (message_id, record_index) IN (");
                push_keys(&mut q, &keys);
                q.push(")");
                n += q.build().execute(&mut *tx).await?.rows_affected();
                // Copies of the picked keys whose version is gone: named by record key (the
                // leading column of `routed_copies`' key), each checked with a seek on
                // `record_versions_key`.
                let orphaned_copies = |q: &mut sqlx::QueryBuilder<_>| {
                    q.push("record_key IN (");
                    push_values(q, &record_keys);
                    q.push(") AND NOT EXISTS (SELECT 1 FROM record_versions rv WHERE rv.record_key = routed_copies.record_key AND rv.record_version = routed_copies.record_version)");
                };
                // Attempts before their copies: they are found through them.
                let mut q = sqlx::QueryBuilder::new("DELETE FROM delivery_attempts WHERE at < ");
                q.push_bind(before);
                q.push(" AND idempotency_key IN (SELECT idempotency_key FROM routed_copies WHERE ");
                orphaned_copies(&mut q);
                q.push(")");
                n += q.build().execute(&mut *tx).await?.rows_affected();
                let mut q = sqlx::QueryBuilder::new("DELETE FROM routed_copies WHERE ");
                orphaned_copies(&mut q);
                n += q.build().execute(&mut *tx).await?.rows_affected();
                let mut q = sqlx::QueryBuilder::new("DELETE FROM record_index WHERE record_key IN (");
                push_values(&mut q, &record_keys);
                q.push(") AND NOT EXISTS (SELECT 1 FROM record_versions rv WHERE rv.record_key = record_index.record_key)");
                n += q.build().execute(&mut *tx).await?.rows_affected();
            }
            n += sqlx::query(dead).bind(item).bind(before).bind(limit).execute(&mut *tx).await?.rows_affected();
            tx.commit().await?;
            n
        });
        Ok(n)
    }

    /// What has no catalog item: rejected originals (bodies emptied before `bodies_before`, rows
    /// deleted before `metadata_before`) and dedup keys (deleted before `metadata_before`); up to
    /// `limit` rows each.
    ///
    /// # Errors
    ///
    /// A statement failed.
    pub async fn purge_unclassified(
        &self,
        bodies_before: &str,
        metadata_before: &str,
        limit: i64,
    ) -> Result<Purged, StoreError> {
        retrying(|| self.purge_unclassified_once(bodies_before, metadata_before, limit)).await
    }

    async fn purge_unclassified_once(
        &self,
        bodies_before: &str,
        metadata_before: &str,
        limit: i64,
    ) -> Result<Purged, StoreError> {
        let bodies = "UPDATE rejected_inputs SET body = $3 WHERE message_id IN (SELECT message_id \
                      FROM rejected_inputs WHERE received_at < $1 AND length(body) > 0 LIMIT $2)";
        let rejected = "DELETE FROM rejected_inputs WHERE message_id IN (SELECT message_id FROM \
                        rejected_inputs WHERE received_at < $1 LIMIT $2)";
        let dedup = "DELETE FROM inbound_messages WHERE message_id IN (SELECT message_id FROM \
                     inbound_messages WHERE received_at < $1 LIMIT $2)";
        let empty: Vec<u8> = Vec::new();
        let purged = on_pool!(&self.pool, p => {
            let b = sqlx::query(bodies).bind(bodies_before).bind(limit).bind(&empty).execute(p).await?.rows_affected();
            let r = sqlx::query(rejected).bind(metadata_before).bind(limit).execute(p).await?.rows_affected();
            let d = sqlx::query(dedup).bind(metadata_before).bind(limit).execute(p).await?.rows_affected();
            Purged { bodies: b, rows: r + d }
        });
        Ok(purged)
    }
}

/// How often a batch is tried: SQLite answers "busy" at once when a transaction that began
/// reading must upgrade to writing after another connection (the group-commit writer) wrote;
/// the batch is then simply run again. PostgreSQL waits on locks instead.
const TRIES: u32 = 20;

async fn retrying<T, F, Fut>(mut batch: F) -> Result<T, StoreError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, StoreError>>,
{
    let mut tries = 0;
    loop {
        match batch().await {
            Ok(done) => return Ok(done),
            Err(error) if tries + 1 >= TRIES => return Err(error),
            Err(_) => {
                tries += 1;
                tokio::time::sleep(std::time::Duration::from_millis(10 * u64::from(tries))).await;
            }
        }
    }
}

/// A version row picked for a purge: message id, record index, record key, version, body
/// digest and stored `canonical`.
type PickedVersion = (String, i64, String, String, String, String);

/// Takes a purge batch: up to `limit` version rows of `item` received before `before` (`pick`
/// binds them in that order), with every shared body they hold handed on first
/// ([`hand_over_bodies`]).
async fn pick_versions<T: Tx>(
    tx: &mut T,
    pick: &'static str,
    [item, before]: [&str; 2],
    limit: i64,
) -> Result<Vec<PickedVersion>, sqlx::Error> {
    let picked: Vec<PickedVersion> = on_conn!(tx.conn(), c => {
        sqlx::query_as(pick).bind(item).bind(before).bind(limit).fetch_all(&mut *c).await?
    });
    hand_over_bodies(tx, &picked).await?;
    Ok(picked)
}

/// Before a purge empties or deletes rows, each picked row that holds a body other rows share
/// (`lineage::SAME_BODY`) hands it to the newest row sharing it ([`HEIR_OF_BODY`]), with that
/// row's own per-receipt fields, so every row retention keeps still reads its record. When the
/// heir is itself expiring, so is every other row sharing the body (all are older).
async fn hand_over_bodies<T: Tx>(tx: &mut T, picked: &[PickedVersion]) -> Result<(), sqlx::Error> {
    let holders = picked.iter().filter(|r| !r.4.is_empty() && !r.5.is_empty() && r.5 != SAME_BODY);
    for (_, _, record_key, version, digest, body) in holders {
        on_conn!(tx.conn(), c => {
            let heir: Option<(String, i64, String, String)> = sqlx::query_as(HEIR_OF_BODY)
                .bind(record_key).bind(version).bind(digest).fetch_optional(&mut *c).await?;
            if let Some((message_id, record_index, received_at, raw_sha256)) = heir {
                let row = PerRow { message_id: &message_id, received_at: &received_at, raw_sha256: &raw_sha256, record_version: version };
                let own = with_own_fields(body, &row);
                sqlx::query("UPDATE record_versions SET canonical = $1 WHERE message_id = $2 AND record_index = $3")
                    .bind(own).bind(&message_id).bind(record_index).execute(&mut *c).await?;
            }
        });
    }
    Ok(())
}

/// The newest row sharing a holder's body (binds: record key, version, digest).
const HEIR_OF_BODY: &str = "SELECT message_id, record_index, received_at, raw_sha256 FROM record_versions \
    WHERE record_key = $1 AND record_version = $2 AND body_sha256 = $3 AND canonical = '=' \
    ORDER BY received_at DESC LIMIT 1";

/// `v1, v2, …` with every value bound.
fn push_values<DB>(q: &mut sqlx::QueryBuilder<DB>, values: &[String])
where
    DB: sqlx::Database,
    for<'q> String: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
{
    let mut separated = q.separated(", ");
    for value in values {
        separated.push_bind(value.clone());
    }
}

/// `(m1, i1), (m2, i2), …` with every value bound.
fn push_keys<DB>(q: &mut sqlx::QueryBuilder<DB>, keys: &[(String, i64)])
where
    DB: sqlx::Database,
    for<'q> String: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    for<'q> i64: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
{
    let mut first = true;
    for (message_id, index) in keys {
        if !first {
            q.push(", ");
        }
        first = false;
        q.push("(");
        q.push_bind(message_id.clone());
        q.push(", ");
        q.push_bind(*index);
        q.push(")");
    }
}
