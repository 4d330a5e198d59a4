//! Delivery claims: several gateway instances on one store (PostgreSQL) consume the same
//! destination queues as competing consumers. One copy can be in two of them at once (an
//! inbound document re-ingested after a crash publishes its copies again, with the same
//! idempotency key; a copy redelivered after an instance died), and both would see "not
//! delivered yet" and send it. Before sending, a worker claims (destination, idempotency key)
//! with a lease; whoever holds a live claim of another owner waits until it is delivered (then
//! acks without sending) or the lease ran out (the owner died: it may claim then). The claim
//! is released in the same transaction that records the outcome.
//!
//! A lone instance never needs claims (its lanes already serialise the copies of a record key),
//! so the delivery worker only claims on a shared store; the SQL runs on both backends.

use std::time::Duration;

use super::backend::{Tx, on_conn};
use super::{Pool, Store, StoreError};

/// A claim to release (after the outcome was recorded).
#[derive(Debug, Clone)]
pub struct Release {
    pub destination: String,
    pub idempotency_key: String,
    pub owner: String,
}

fn now_ms() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}

impl Store {
    /// Whether other instances may share this store (PostgreSQL), so deliveries need claims.
    pub fn shared(&self) -> bool {
        matches!(self.pool, Pool::Postgres(_))
    }

    /// Claims a copy for `owner` for `lease`: true if granted (no claim, an expired one, or
    /// `owner`'s own), false while another owner's claim is live.
    ///
    /// # Errors
    ///
    /// The statement failed.
    pub async fn claim_delivery(
        &self,
        destination: &str,
        idempotency_key: &str,
        owner: &str,
        lease: Duration,
    ) -> Result<bool, StoreError> {
        let now = now_ms();
        let until = now + i64::try_from(lease.as_millis()).unwrap_or(i64::MAX / 2);
        // One statement, atomic on both backends: the conflicting row is only taken over when
        // its lease ran out or it is ours.
        let sql = "INSERT INTO delivery_claims (destination, idempotency_key, owner, lease_until_ms) \
                   VALUES ($1, $2, $3, $4) ON CONFLICT (destination, idempotency_key) DO UPDATE \
                   SET owner = excluded.owner, lease_until_ms = excluded.lease_until_ms \
                   WHERE delivery_claims.lease_until_ms < $5 OR delivery_claims.owner = excluded.owner";
        let done = on_pool!(&self.pool, p => sqlx::query(sql)
            .bind(destination).bind(idempotency_key).bind(owner).bind(until).bind(now)
            .execute(p).await?.rows_affected());
        Ok(done == 1)
    }

    /// Releases a claim now (the copy was not sent after all).
    ///
    /// # Errors
    ///
    /// The statement failed.
    pub async fn release_claim(&self, release: &Release) -> Result<(), StoreError> {
        on_pool!(&self.pool, p => sqlx::query(RELEASE)
            .bind(&release.destination).bind(&release.idempotency_key).bind(&release.owner)
            .execute(p).await.map(|_| ())?);
        Ok(())
    }

    /// Deletes claims whose lease ran out long ago (their owners died); at most `limit` rows.
    ///
    /// # Errors
    ///
    /// The statement failed.
    pub async fn purge_stale_claims(
        &self,
        older_than: Duration,
        limit: i64,
    ) -> Result<u64, StoreError> {
        let before = now_ms() - i64::try_from(older_than.as_millis()).unwrap_or(0);
        let sql = "DELETE FROM delivery_claims WHERE (destination, idempotency_key) IN \
                   (SELECT destination, idempotency_key FROM delivery_claims WHERE lease_until_ms < $1 LIMIT $2)";
        let n = on_pool!(&self.pool, p => sqlx::query(sql).bind(before).bind(limit).execute(p).await?.rows_affected());
        Ok(n)
    }
}

const RELEASE: &str =
    "DELETE FROM delivery_claims WHERE destination = $1 AND idempotency_key = $2 AND owner = $3";

/// Releases a claim inside the transaction that records the copy's outcome.
pub(super) async fn commit_release<T: Tx>(tx: &mut T, w: &Release) -> Result<(), sqlx::Error> {
    on_conn!(tx.conn(), c => {
        sqlx::query(RELEASE).bind(&w.destination).bind(&w.idempotency_key).bind(&w.owner).execute(&mut *c).await?;
    });
    Ok(())
}
