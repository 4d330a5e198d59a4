//! Dead letters as a store: every copy a destination refused for good (or that ran out of
//! retries) is kept with its bytes, the destination, the reason class, the destination's
//! answer, the attempt history and the record it came from, so it can be browsed, filtered
//! and replayed; every replay is linked to the dead letter it came from. Rejected inbound
//! documents are kept with their original bytes, for re-ingest after a mapping or catalog fix.

use std::fmt;

use serde::Serialize;
use sha2::{Digest, Sha256};

use super::backend::{Tx, on_conn};
use super::{Pool, Store, StoreError};

/// A dead-lettered copy.
#[derive(Clone)]
pub struct DeadLetter {
    /// See [`dead_id`].
    pub dead_id: String,
    pub idempotency_key: String,
    pub destination: String,
    pub record_key: String,
    pub record_version: String,
    pub catalog_item: String,
    pub operation: String,
    pub source_adapter: String,
    pub source_message_id: String,
    pub content_type: String,
    /// The copy exactly as it was sent to the destination.
    pub payload: Vec<u8>,
    /// `rejected` (the destination refused it) or `retries_exhausted`.
    pub reason_class: String,
    pub reason: String,
    pub response: String,
    pub attempts: i64,
    /// JSON array of `{attempt, at, outcome, reason, response}`.
    pub history: String,
    /// The dead letter this copy was itself replayed from, or empty.
    pub replay_of: String,
    pub dead_at: String,
}

impl fmt::Debug for DeadLetter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The payload may carry personal data released to that destination: never printed.
        f.debug_struct("DeadLetter")
            .field("dead_id", &self.dead_id)
            .field("destination", &self.destination)
            .field("record_key", &self.record_key)
            .field("reason_class", &self.reason_class)
            .finish_non_exhaustive()
    }
}

/// Identifies one death of one copy: the same copy redelivered after a crash dies with the same
/// id (so it is stored once), while a replayed copy that dies again gets a new one.
pub fn dead_id(idempotency_key: &str, attempts: i64, replay_of: &str) -> String {
    let mut hasher = Sha256::new();
    hasher.update(idempotency_key.as_bytes());
    hasher.update([0]);
    hasher.update(attempts.to_string().as_bytes());
    hasher.update([0]);
    hasher.update(replay_of.as_bytes());
    format!("dl-{}", hex::encode(&hasher.finalize()[..12]))
}

/// A dead letter was published again to `credgate.route`.
#[derive(Debug, Clone)]
pub struct Replayed {
    pub replay_id: String,
    pub replay_of: String,
    pub idempotency_key: String,
    pub destination: String,
    pub actor: String,
    pub at: String,
}

/// A rejected inbound document with its original bytes.
#[derive(Clone)]
pub struct RejectedInput {
    pub message_id: String,
    pub adapter: String,
    pub doc_type: String,
    pub content_type: String,
    pub body: Vec<u8>,
    /// The receipt given, with its violation list.
    pub receipt: String,
    pub received_at: String,
    /// `source_org_uscc` of a rejected record, if mapping got that far; else empty.
    pub source_org: String,
}

impl fmt::Debug for RejectedInput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RejectedInput")
            .field("message_id", &self.message_id)
            .field("adapter", &self.adapter)
            .field("doc_type", &self.doc_type)
            .field("bytes", &self.body.len())
            .finish_non_exhaustive()
    }
}

pub(super) async fn commit_dead_letter<T: Tx>(
    tx: &mut T,
    w: &DeadLetter,
) -> Result<(), sqlx::Error> {
    on_conn!(tx.conn(), c => {
        sqlx::query("INSERT INTO dead_letters (dead_id, idempotency_key, destination, record_key, record_version, catalog_item, operation, source_adapter, source_message_id, content_type, payload, reason_class, reason, response, attempts, history, replay_of, dead_at, replay_count, replayed_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, 0, '') ON CONFLICT (dead_id) DO NOTHING")
            .bind(&w.dead_id).bind(&w.idempotency_key).bind(&w.destination).bind(&w.record_key)
            .bind(&w.record_version).bind(&w.catalog_item).bind(&w.operation).bind(&w.source_adapter)
            .bind(&w.source_message_id).bind(&w.content_type).bind(&w.payload).bind(&w.reason_class)
            .bind(&w.reason).bind(&w.response).bind(w.attempts).bind(&w.history).bind(&w.replay_of)
            .bind(&w.dead_at)
            .execute(&mut *c).await?;
        Ok(())
    })
}

pub(super) async fn commit_replayed<T: Tx>(tx: &mut T, w: &Replayed) -> Result<(), sqlx::Error> {
    on_conn!(tx.conn(), c => {
        let inserted = sqlx::query("INSERT INTO dlq_replays (replay_id, replay_of, idempotency_key, destination, actor, at) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (replay_id) DO NOTHING")
            .bind(&w.replay_id).bind(&w.replay_of).bind(&w.idempotency_key).bind(&w.destination)
            .bind(&w.actor).bind(&w.at)
            .execute(&mut *c).await?;
        // Counted once per replay even if this write is retried.
        if inserted.rows_affected() > 0 {
            sqlx::query("UPDATE dead_letters SET replay_count = replay_count + 1, replayed_at = $1 WHERE dead_id = $2")
                .bind(&w.at).bind(&w.replay_of)
                .execute(&mut *c).await?;
        }
        Ok(())
    })
}

pub(super) async fn commit_rejected<T: Tx>(
    tx: &mut T,
    w: &RejectedInput,
) -> Result<(), sqlx::Error> {
    on_conn!(tx.conn(), c => {
        sqlx::query("INSERT INTO rejected_inputs (message_id, adapter, doc_type, content_type, body, receipt, received_at, reingest_count, reingested_at, source_org) VALUES ($1, $2, $3, $4, $5, $6, $7, 0, '', $8) ON CONFLICT (message_id) DO NOTHING")
            .bind(&w.message_id).bind(&w.adapter).bind(&w.doc_type).bind(&w.content_type)
            .bind(&w.body).bind(&w.receipt).bind(&w.received_at).bind(&w.source_org)
            .execute(&mut *c).await?;
        Ok(())
    })
}

/// Which dead letters a listing or a replay concerns. Empty strings mean "any"; `since` and
/// `until` are store timestamps (see `backend::parse_instant`), `until` exclusive.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DlqFilter {
    pub destination: String,
    /// Reason class (`rejected`, `retries_exhausted`).
    pub reason: String,
    pub since: String,
    pub until: String,
    pub record_key: String,
    /// Source adapter.
    pub source: String,
    /// Also dead letters that were replayed already.
    pub include_replayed: bool,
    /// At most this many (0: 1000).
    pub limit: i64,
}

/// A dead letter as listed (without its bytes).
#[derive(Debug, Clone, Serialize)]
pub struct DeadLetterSummary {
    pub dead_id: String,
    pub destination: String,
    pub record_key: String,
    pub record_version: String,
    pub catalog_item: String,
    pub source_adapter: String,
    pub source_message_id: String,
    pub reason_class: String,
    pub reason: String,
    pub attempts: i64,
    pub dead_at: String,
    pub replay_count: i64,
    pub replayed_at: String,
    pub idempotency_key: String,
    pub replay_of: String,
}

/// A dead letter with everything replay needs.
#[derive(Debug, Clone, Serialize)]
pub struct DeadLetterDetail {
    #[serde(flatten)]
    pub summary: DeadLetterSummary,
    pub operation: String,
    pub content_type: String,
    pub response: String,
    pub history: serde_json::Value,
    #[serde(skip)]
    pub payload: Vec<u8>,
}

type SummaryRow = (
    String,
    String,
    String,
    String,
    String,
    String,
    String,
    String,
    String,
    i64,
    String,
    i64,
    String,
    String,
    String,
);

/// The columns of [`SummaryRow`], as a literal so queries stay static text.
macro_rules! summary_columns {
    () => {
        "dead_id, destination, record_key, record_version, catalog_item, source_adapter, source_message_id, reason_class, reason, attempts, dead_at, replay_count, replayed_at, idempotency_key, replay_of"
    };
}

fn summary(row: SummaryRow) -> DeadLetterSummary {
    DeadLetterSummary {
        dead_id: row.0,
        destination: row.1,
        record_key: row.2,
        record_version: row.3,
        catalog_item: row.4,
        source_adapter: row.5,
        source_message_id: row.6,
        reason_class: row.7,
        reason: row.8,
        attempts: row.9,
        dead_at: row.10,
        replay_count: row.11,
        replayed_at: row.12,
        idempotency_key: row.13,
        replay_of: row.14,
    }
}

type RejectedRow = (String, String, String, String, Vec<u8>, String, i64);

/// A rejected document as listed.
#[derive(Debug, Clone, Serialize)]
pub struct RejectedSummary {
    pub message_id: String,
    pub adapter: String,
    pub doc_type: String,
    pub content_type: String,
    pub bytes: i64,
    pub received_at: String,
    pub reingest_count: i64,
    #[serde(skip)]
    pub body: Vec<u8>,
}

impl Store {
    /// Dead letters matching a filter, oldest first.
    ///
    /// # Errors
    ///
    /// The query failed.
    pub async fn dead_letters(
        &self,
        filter: &DlqFilter,
    ) -> Result<Vec<DeadLetterSummary>, StoreError> {
        let sql = concat!(
            "SELECT ",
            summary_columns!(),
            " FROM dead_letters WHERE ($1 = '' OR destination = $1) AND ($2 = '' OR reason_class = $2) AND ($3 = '' OR dead_at >= $3) AND ($4 = '' OR dead_at < $4) AND ($5 = '' OR record_key = $5) AND ($6 = '' OR source_adapter = $6) AND ($7 = 1 OR replay_count = 0) ORDER BY dead_at, dead_id LIMIT $8"
        );
        let limit = if filter.limit > 0 { filter.limit } else { 1000 };
        let rows: Vec<SummaryRow> = on_pool!(&self.pool, p => sqlx::query_as(sql)
            .bind(&filter.destination).bind(&filter.reason).bind(&filter.since).bind(&filter.until)
            .bind(&filter.record_key).bind(&filter.source).bind(i64::from(filter.include_replayed)).bind(limit)
            .fetch_all(p).await?);
        Ok(rows.into_iter().map(summary).collect())
    }

    /// Dead letters with their bytes and history, by id (those that exist): two queries for a
    /// whole replay chunk instead of two per letter.
    ///
    /// # Errors
    ///
    /// A query failed.
    pub async fn dead_letters_by_id(
        &self,
        dead_ids: &[&str],
    ) -> Result<std::collections::HashMap<String, DeadLetterDetail>, StoreError> {
        type DetailRow = (String, String, String, String, String, Vec<u8>);
        let mut found = std::collections::HashMap::new();
        for chunk in dead_ids.chunks(500) {
            let placeholders: Vec<String> = (1..=chunk.len()).map(|i| format!("${i}")).collect();
            let list = placeholders.join(", ");
            let sql = format!(
                "SELECT {} FROM dead_letters WHERE dead_id IN ({list})",
                summary_columns!()
            );
            let summaries: Vec<SummaryRow> = on_pool!(&self.pool, p => {
                // Only numbered placeholders are formatted in; every value is bound.
                let mut query = sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str()));
                for id in chunk {
                    query = query.bind(*id);
                }
                query.fetch_all(p).await?
            });
            let sql = format!(
                "SELECT dead_id, operation, content_type, response, history, payload FROM dead_letters WHERE dead_id IN ({list})"
            );
            let details: Vec<DetailRow> = on_pool!(&self.pool, p => {
                let mut query = sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str()));
                for id in chunk {
                    query = query.bind(*id);
                }
                query.fetch_all(p).await?
            });
            let mut details: std::collections::HashMap<String, DetailRow> =
                details.into_iter().map(|d| (d.0.clone(), d)).collect();
            for row in summaries {
                let Some((_, operation, content_type, response, history, payload)) =
                    details.remove(&row.0)
                else {
                    continue;
                };
                found.insert(
                    row.0.clone(),
                    DeadLetterDetail {
                        summary: summary(row),
                        operation,
                        content_type,
                        response,
                        history: serde_json::from_str(&history).unwrap_or(serde_json::Value::Null),
                        payload,
                    },
                );
            }
        }
        Ok(found)
    }

    /// One dead letter with its bytes and history.
    ///
    /// # Errors
    ///
    /// The query failed.
    pub async fn dead_letter(&self, dead_id: &str) -> Result<Option<DeadLetterDetail>, StoreError> {
        Ok(self.dead_letters_by_id(&[dead_id]).await?.remove(dead_id))
    }

    /// Rejected inbound documents of an adapter (empty: all), oldest first.
    ///
    /// # Errors
    ///
    /// The query failed.
    pub async fn rejected_inputs(
        &self,
        adapter: &str,
        since: &str,
        limit: i64,
    ) -> Result<Vec<RejectedSummary>, StoreError> {
        let sql = "SELECT message_id, adapter, doc_type, content_type, body, received_at, reingest_count FROM rejected_inputs WHERE ($1 = '' OR adapter = $1) AND ($2 = '' OR received_at >= $2) ORDER BY received_at, message_id LIMIT $3";
        let rows: Vec<RejectedRow> = on_pool!(&self.pool, p => sqlx::query_as(sql).bind(adapter).bind(since).bind(limit.max(1)).fetch_all(p).await?);
        Ok(rows
            .into_iter()
            .map(|r| RejectedSummary {
                message_id: r.0,
                adapter: r.1,
                doc_type: r.2,
                content_type: r.3,
                bytes: i64::try_from(r.4.len()).unwrap_or(i64::MAX),
                body: r.4,
                received_at: r.5,
                reingest_count: r.6,
            })
            .collect())
    }

    /// Counts a re-ingest of a rejected document.
    ///
    /// # Errors
    ///
    /// The update failed.
    pub async fn mark_reingested(&self, message_id: &str) -> Result<(), StoreError> {
        let sql = "UPDATE rejected_inputs SET reingest_count = reingest_count + 1, reingested_at = $1 WHERE message_id = $2";
        let now = super::backend::now();
        on_pool!(&self.pool, p => sqlx::query(sql).bind(now).bind(message_id).execute(p).await.map(|_| ())?);
        Ok(())
    }
}
