//! The operator audit log: who did what, when, to what — replays, destination pause/resume,
//! configuration reloads, purges. Entries are hash-chained: each entry's hash is SHA-256 over
//! its canonical serialisation including the previous entry's hash, and the store keeps the
//! head (last sequence number and hash), so altering, removing or reordering an entry, or
//! cutting the tail, is found by [`Store::verify_audit`], which names the first broken entry.
//!
//! Destination pause state lives here too because every change of it is audited in the same
//! transaction.

use std::time::Duration;

use serde::Serialize;
use sha2::{Digest, Sha256};

use super::backend::{Tx, now, on_conn};
use super::{Pool, Store, StoreError};

/// `prev_hash` of the first entry.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// One audit entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditEntry {
    pub seq: i64,
    pub at: String,
    pub actor: String,
    pub action: String,
    pub target: String,
    /// JSON text, hashed exactly as stored.
    pub details: String,
    pub prev_hash: String,
    pub hash: String,
}

/// SHA-256 (hex) over the canonical serialisation of an entry: the JSON array
/// `[seq, at, actor, action, target, details, prev_hash]` (serde_json escapes every string the
/// same way each time, so the bytes are reproducible).
pub fn entry_hash(
    seq: i64,
    at: &str,
    actor: &str,
    action: &str,
    target: &str,
    details: &str,
    prev_hash: &str,
) -> String {
    let canonical = serde_json::json!([seq, at, actor, action, target, details, prev_hash]);
    hex::encode(Sha256::digest(canonical.to_string().as_bytes()))
}

/// Where the chain is broken, if it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditBreak {
    /// The sequence number of the first entry that does not verify.
    pub seq: i64,
    pub problem: String,
}

/// The result of checking the chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditVerdict {
    pub entries: i64,
    pub first_broken: Option<AuditBreak>,
}

/// A destination's pause state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DestinationState {
    pub destination: String,
    pub paused: bool,
    pub reason: String,
    pub changed_by: String,
    pub changed_at: String,
}

/// Appends an entry inside the caller's transaction. The first statement takes the audit lock
/// row for writing, which serialises appenders across connections and instances (SQLite: the
/// write lock; PostgreSQL: the row lock), so two entries never claim one sequence number.
pub(super) async fn append<T: Tx>(
    tx: &mut T,
    actor: &str,
    action: &str,
    target: &str,
    details: &serde_json::Value,
) -> Result<AuditEntry, sqlx::Error> {
    let at = now();
    let details = details.to_string();
    on_conn!(tx.conn(), c => {
        sqlx::query("UPDATE store_meta SET value = value WHERE name = 'audit_lock'").execute(&mut *c).await?;
        let last: Option<(i64, String)> = sqlx::query_as("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1").fetch_optional(&mut *c).await?;
        let (seq, prev_hash) = last.map_or((1, GENESIS.to_owned()), |(s, h)| (s + 1, h));
        let hash = entry_hash(seq, &at, actor, action, target, &details, &prev_hash);
        sqlx::query("INSERT INTO audit_log (seq, at, actor, action, target, details, prev_hash, hash) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)")
            .bind(seq).bind(&at).bind(actor).bind(action).bind(target).bind(&details).bind(&prev_hash).bind(&hash)
            .execute(&mut *c).await?;
        sqlx::query("INSERT INTO store_meta (name, value) VALUES ('audit_head', $1) ON CONFLICT (name) DO UPDATE SET value = excluded.value")
            .bind(format!("{seq}:{hash}"))
            .execute(&mut *c).await?;
        Ok(AuditEntry { seq, at, actor: actor.to_owned(), action: action.to_owned(), target: target.to_owned(), details, prev_hash, hash })
    })
}

async fn set_paused_in<T: Tx>(
    tx: &mut T,
    destination: &str,
    paused: bool,
    reason: &str,
    actor: &str,
) -> Result<(), sqlx::Error> {
    let at = now();
    on_conn!(tx.conn(), c => {
        sqlx::query("INSERT INTO destination_state (destination, paused, reason, changed_by, changed_at) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (destination) DO UPDATE SET paused = excluded.paused, reason = excluded.reason, changed_by = excluded.changed_by, changed_at = excluded.changed_at")
            .bind(destination).bind(i64::from(paused)).bind(reason).bind(actor).bind(at)
            .execute(&mut *c).await?;
        Ok(())
    })
}

/// How often an append is tried when SQLite reports the database busy (another connection
/// upgraded to writing first); PostgreSQL waits on the lock row instead.
const APPEND_TRIES: usize = 20;

impl Store {
    /// Appends an audit entry in its own transaction.
    ///
    /// # Errors
    ///
    /// The transaction kept failing.
    pub async fn audit(
        &self,
        actor: &str,
        action: &str,
        target: &str,
        details: &serde_json::Value,
    ) -> Result<AuditEntry, StoreError> {
        self.audited(actor, action, target, details, None).await
    }

    /// Pauses or resumes a destination and audits it, in one transaction. Delivery workers
    /// poll this state, so it holds across restarts and for every instance sharing the store.
    ///
    /// # Errors
    ///
    /// The transaction kept failing.
    pub async fn set_destination_paused(
        &self,
        destination: &str,
        paused: bool,
        reason: &str,
        actor: &str,
    ) -> Result<AuditEntry, StoreError> {
        let action = if paused { "destination.pause" } else { "destination.resume" };
        let details = serde_json::json!({ "reason": reason });
        self.audited(actor, action, destination, &details, Some((destination, paused, reason)))
            .await
    }

    async fn audited(
        &self,
        actor: &str,
        action: &str,
        target: &str,
        details: &serde_json::Value,
        pause: Option<(&str, bool, &str)>,
    ) -> Result<AuditEntry, StoreError> {
        let mut last_error = None;
        for attempt in 0..APPEND_TRIES {
            let result: Result<AuditEntry, sqlx::Error> = on_pool!(&self.pool, p => async {
                let mut tx = p.begin().await?;
                if let Some((destination, paused, reason)) = pause {
                    set_paused_in(&mut tx, destination, paused, reason, actor).await?;
                }
                let entry = append(&mut tx, actor, action, target, details).await?;
                tx.commit().await?;
                Ok(entry)
            }.await);
            match result {
                Ok(entry) => return Ok(entry),
                Err(error) => {
                    last_error = Some(error);
                    let wait = 10 * (attempt as u64 + 1);
                    tokio::time::sleep(Duration::from_millis(wait)).await;
                }
            }
        }
        Err(StoreError::Sql(last_error.unwrap_or(sqlx::Error::PoolTimedOut)))
    }

    /// Audit entries from `from_seq` on, at most `limit`.
    ///
    /// # Errors
    ///
    /// The query failed.
    pub async fn audit_entries(
        &self,
        from_seq: i64,
        limit: i64,
    ) -> Result<Vec<AuditEntry>, StoreError> {
        let sql = "SELECT seq, at, actor, action, target, details, prev_hash, hash FROM audit_log WHERE seq >= $1 ORDER BY seq LIMIT $2";
        type Row = (i64, String, String, String, String, String, String, String);
        let rows: Vec<Row> = on_pool!(&self.pool, p => sqlx::query_as(sql).bind(from_seq).bind(limit).fetch_all(p).await?);
        Ok(rows
            .into_iter()
            .map(|r| AuditEntry {
                seq: r.0,
                at: r.1,
                actor: r.2,
                action: r.3,
                target: r.4,
                details: r.5,
                prev_hash: r.6,
                hash: r.7,
            })
            .collect())
    }

    /// Walks the chain from the first entry and names the first one that does not verify:
    /// a gap in the sequence (removed), a `prev_hash` that is not the previous entry's hash
    /// (reordered or replaced), a hash that does not match the content (altered), or a chain
    /// that ends before the recorded head (tail removed).
    ///
    /// # Errors
    ///
    /// A query failed.
    pub async fn verify_audit(&self) -> Result<AuditVerdict, StoreError> {
        const PAGE: i64 = 1000;
        let mut expected_seq = 1;
        let mut prev = GENESIS.to_owned();
        let mut entries = 0;
        loop {
            let page = self.audit_entries(expected_seq, PAGE).await?;
            let n = page.len();
            for entry in page {
                let broken = |problem: String| {
                    Ok(AuditVerdict {
                        entries: 0,
                        first_broken: Some(AuditBreak { seq: expected_seq, problem }),
                    })
                };
                if entry.seq != expected_seq {
                    return broken(format!(
                        "entry {expected_seq} is missing (the next stored entry is {})",
                        entry.seq
                    ));
                }
                if entry.prev_hash != prev {
                    return broken(format!(
                        "entry {expected_seq} does not follow entry {}: its prev_hash is not that entry's hash (reordered or replaced)",
                        expected_seq - 1
                    ));
                }
                let hash = entry_hash(
                    entry.seq,
                    &entry.at,
                    &entry.actor,
                    &entry.action,
                    &entry.target,
                    &entry.details,
                    &entry.prev_hash,
                );
                if hash != entry.hash {
                    return broken(format!(
                        "entry {expected_seq} was altered: its hash does not match its content"
                    ));
                }
                prev = entry.hash;
                expected_seq += 1;
                entries += 1;
            }
            if n < PAGE as usize {
                break;
            }
        }
        let sql = "SELECT value FROM store_meta WHERE name = 'audit_head'";
        let head: Option<(String,)> =
            on_pool!(&self.pool, p => sqlx::query_as(sql).fetch_optional(p).await?);
        let last = expected_seq - 1;
        if let Some((head,)) = head {
            let (head_seq, head_hash) = head.split_once(':').unwrap_or((head.as_str(), ""));
            let head_seq: i64 = head_seq.parse().unwrap_or(-1);
            if head_seq != last || head_hash != prev {
                return Ok(AuditVerdict {
                    entries,
                    first_broken: Some(AuditBreak {
                        seq: (last + 1).min(head_seq.max(1)),
                        problem: format!(
                            "the chain ends at entry {last} but the recorded head is entry {head_seq} (entries removed from the end, or the head altered)"
                        ),
                    }),
                });
            }
        } else if last > 0 {
            return Ok(AuditVerdict {
                entries,
                first_broken: Some(AuditBreak {
                    seq: last,
                    problem: "the recorded head of the chain is missing".to_owned(),
                }),
            });
        }
        Ok(AuditVerdict { entries, first_broken: None })
    }

    /// Whether a destination is paused.
    ///
    /// # Errors
    ///
    /// The query failed.
    pub async fn destination_paused(&self, destination: &str) -> Result<bool, StoreError> {
        let sql = "SELECT paused FROM destination_state WHERE destination = $1";
        let row: Option<(i64,)> = on_pool!(&self.pool, p => sqlx::query_as(sql).bind(destination).fetch_optional(p).await?);
        Ok(row.is_some_and(|(p,)| p != 0))
    }

    /// Every destination whose state was ever changed.
    ///
    /// # Errors
    ///
    /// The query failed.
    pub async fn destination_states(&self) -> Result<Vec<DestinationState>, StoreError> {
        let sql = "SELECT destination, paused, reason, changed_by, changed_at FROM destination_state ORDER BY destination";
        let rows: Vec<(String, i64, String, String, String)> =
            on_pool!(&self.pool, p => sqlx::query_as(sql).fetch_all(p).await?);
        Ok(rows
            .into_iter()
            .map(|r| DestinationState {
                destination: r.0,
                paused: r.1 != 0,
                reason: r.2,
                changed_by: r.3,
                changed_at: r.4,
            })
            .collect())
    }
}
