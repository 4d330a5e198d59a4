//! Purging dead letters an operator has dealt with (`credgate dlq purge`, `POST
//! /v1/dlq/purge`): the same filters as listing, a dry run that only says what would go, and
//! the deletion committed in one transaction with its hash-chained audit entry, so a purge is
//! never unrecorded and a recorded purge always happened.

use std::time::Duration;

use serde::Serialize;

use super::dlq::DlqFilter;
use super::{Pool, Store, StoreError};

/// Dead-letter ids per DELETE statement.
const IDS_PER_DELETE: usize = 500;
/// Tries when SQLite reports the database busy.
const TRIES: usize = 20;

/// What a purge did (or would do).
#[derive(Debug, Clone, Serialize)]
pub struct PurgeReport {
    pub dry_run: bool,
    pub matched: usize,
    pub purged: u64,
    pub dead_ids: Vec<String>,
    /// The audit entry of the purge (none for a dry run or when nothing matched).
    pub audit_seq: Option<i64>,
}

impl Store {
    /// Deletes the dead letters matching `filter` (at most its limit, 1000 by default) and
    /// audits it in the same transaction; with `dry_run` only reports them.
    ///
    /// # Errors
    ///
    /// A query failed.
    pub async fn purge_dead_letters(
        &self,
        filter: &DlqFilter,
        dry_run: bool,
        actor: &str,
    ) -> Result<PurgeReport, StoreError> {
        let letters = self.dead_letters(filter).await?;
        let dead_ids: Vec<String> = letters.into_iter().map(|l| l.dead_id).collect();
        let mut report =
            PurgeReport { dry_run, matched: dead_ids.len(), purged: 0, dead_ids, audit_seq: None };
        if dry_run || report.dead_ids.is_empty() {
            return Ok(report);
        }
        let target = if filter.destination.is_empty() { "*" } else { filter.destination.as_str() };
        let details = serde_json::json!({
            "filter": {
                "destination": filter.destination, "reason": filter.reason, "since": filter.since,
                "until": filter.until, "record_key": filter.record_key, "source": filter.source,
                "include_replayed": filter.include_replayed, "limit": filter.limit,
            },
            "count": report.dead_ids.len(),
            "dead_ids": report.dead_ids,
        });
        let mut last_error = None;
        for attempt in 0..TRIES {
            let result: Result<(u64, i64), sqlx::Error> = on_pool!(&self.pool, p => async {
                let mut tx = p.begin().await?;
                let mut purged = 0;
                for chunk in report.dead_ids.chunks(IDS_PER_DELETE) {
                    let mut q = sqlx::QueryBuilder::new("DELETE FROM dead_letters WHERE dead_id IN (");
                    let mut list = q.separated(", ");
                    for id in chunk {
                        list.push_bind(id.clone());
                    }
                    q.push(")");
                    purged += q.build().execute(&mut *tx).await?.rows_affected();
                }
                let entry = super::audit::append(&mut tx, actor, "dlq.purge", target, &details).await?;
                tx.commit().await?;
                Ok((purged, entry.seq))
            }.await);
            match result {
                Ok((purged, seq)) => {
                    report.purged = purged;
                    report.audit_seq = Some(seq);
                    return Ok(report);
                }
                Err(error) => {
                    last_error = Some(error);
                    tokio::time::sleep(Duration::from_millis(10 * (attempt as u64 + 1))).await;
                }
            }
        }
        Err(StoreError::Sql(last_error.unwrap_or(sqlx::Error::PoolTimedOut)))
    }
}
