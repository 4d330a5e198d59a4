//! Receipts per source, as the operator console lists them: the receipt every inbound message
//! got (kept with its dedup key in `inbound_messages`), newest first, and how many of each
//! status a source got in a period. Both read the `(adapter, received_at)` index, so a source
//! is always named.

use serde::Serialize;

use super::{Pool, Store, StoreError};

/// One inbound message's receipt.
#[derive(Debug, Clone, Serialize)]
pub struct ReceiptRow {
    pub message_id: String,
    pub adapter: String,
    pub doc_type: String,
    pub status: String,
    pub received_at: String,
    /// The receipt as sent to the platform (violations already masked by the pipeline).
    pub receipt: serde_json::Value,
}

type Row = (String, String, String, String, String, String);

impl Store {
    /// The newest receipts of a source since `since` (a store timestamp, `""`: any time), at
    /// most `limit`, optionally only of one status.
    ///
    /// # Errors
    ///
    /// The query failed.
    pub async fn receipts(
        &self,
        adapter: &str,
        since: &str,
        status: &str,
        limit: i64,
    ) -> Result<Vec<ReceiptRow>, StoreError> {
        let sql = "SELECT message_id, adapter, doc_type, status, receipt, received_at FROM inbound_messages WHERE adapter = $1 AND received_at >= $2 AND ($3 = '' OR status = $3) ORDER BY received_at DESC, message_id LIMIT $4";
        let rows: Vec<Row> = on_pool!(&self.pool, p => sqlx::query_as(sql)
            .bind(adapter).bind(since).bind(status).bind(limit.max(1))
            .fetch_all(p).await?);
        Ok(rows
            .into_iter()
            .map(|r| ReceiptRow {
                message_id: r.0,
                adapter: r.1,
                doc_type: r.2,
                status: r.3,
                receipt: serde_json::from_str(&r.4).unwrap_or(serde_json::Value::Null),
                received_at: r.5,
            })
            .collect())
    }

    /// How many receipts of each status a source got since `since`, by status.
    ///
    /// # Errors
    ///
    /// The query failed.
    pub async fn receipt_counts(
        &self,
        adapter: &str,
        since: &str,
    ) -> Result<Vec<(String, i64)>, StoreError> {
        let sql = "SELECT status, COUNT(*) FROM inbound_messages WHERE adapter = $1 AND received_at >= $2 GROUP BY status ORDER BY status";
        let rows: Vec<(String, i64)> = on_pool!(&self.pool, p => sqlx::query_as(sql)
            .bind(adapter).bind(since).fetch_all(p).await?);
        Ok(rows)
    }
}
