//! Lifecycle state in the store (issue 6): the severe-dishonesty list as its accepted events
//! (the list at any version is rebuilt from them), planned retractions with their holders and
//! due day (acknowledgements are read from the delivery attempts of the retract copies, so the
//! delivery workers need no extra write), the publicity decision of each failed-information
//! record version, and leases for singleton timers.
//!
//! Every write is idempotent on its natural key, like the rest of the group-commit writes.

use serde::Serialize;
use sha2::{Digest, Sha256};

use super::backend::{Tx, on_conn};
use super::lineage::{PerRow, body_sql, own_envelope};
use super::{Pool, Store, StoreError};
use crate::lifecycle::dishonest_list::{DishonestList, ListEvent};
use crate::lifecycle::dispute::Dispute;
use crate::lifecycle::hook::{DisputeRow, HolderRow, PublicityRow};
use crate::lifecycle::publicity::PublicityDecision;
use crate::lifecycle::retraction::{AckState, AckTracker, RetractionCause};

/// One lifecycle write (rides in the same transaction as the lineage of its document).
#[derive(Clone)]
pub enum LifecycleWrite {
    /// An accepted `dishonest_list_entry` as a list event.
    ListEvent { record_key: String, event: ListEvent, accepted_at: String },
    /// A retraction planned at every holder.
    Retraction { cause: RetractionCause, tracker: AckTracker, planned_at: String },
    /// The publicity decision of a failed-information record version.
    Publicity(PublicityRow),
    /// The publicity timer emitted the stop-publicity retraction of a record.
    PublicityStopped { record_key: String, stopped_at: String },
    /// An objection's new state, and whether it holds its record.
    Dispute { row: DisputeRow, updated_at: String },
}

impl std::fmt::Debug for LifecycleWrite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // List entries name persons (ID numbers): only coordinates are printed.
        match self {
            LifecycleWrite::ListEvent { record_key, event, .. } => {
                write!(f, "ListEvent({record_key} @ {})", event.record_version)
            }
            LifecycleWrite::Retraction { tracker, .. } => {
                write!(f, "Retraction({} @ {})", tracker.target_record_key, tracker.retract_version)
            }
            LifecycleWrite::Publicity(row) => {
                write!(f, "Publicity({} @ {})", row.record_key, row.record_version)
            }
            LifecycleWrite::PublicityStopped { record_key, .. } => {
                write!(f, "PublicityStopped({record_key})")
            }
            LifecycleWrite::Dispute { row, .. } => write!(
                f,
                "Dispute({} on {}: {})",
                row.dispute.objection_id,
                row.dispute.target_record_key,
                row.dispute.state.label()
            ),
        }
    }
}

fn digest(event: &ListEvent) -> String {
    let bytes = serde_json::to_vec(&event.entry).unwrap_or_default();
    hex::encode(&Sha256::digest(&bytes)[..16])
}

pub(super) async fn commit_lifecycle<T: Tx>(
    tx: &mut T,
    w: &LifecycleWrite,
) -> Result<(), sqlx::Error> {
    match w {
        LifecycleWrite::ListEvent { record_key, event, accepted_at } => {
            let json = serde_json::to_string(event).unwrap_or_default();
            // The sequence is the order events were committed in: rebuilding the list in that
            // order reproduces the list versions platforms were told. `WHERE 1 = 1` lets
            // SQLite parse the upsert after a SELECT.
            on_conn!(tx.conn(), c => {
                sqlx::query("INSERT INTO list_events (blacklist_id, record_version, digest, seq, event, record_key, accepted_at) SELECT $1, $2, $3, COALESCE(MAX(seq), 0) + 1, $4, $5, $6 FROM list_events WHERE 1 = 1 ON CONFLICT (blacklist_id, record_version, digest) DO NOTHING")
                    .bind(&event.blacklist_id).bind(&event.record_version).bind(digest(event))
                    .bind(json).bind(record_key).bind(accepted_at)
                    .execute(&mut *c).await?;
                Ok(())
            })
        }
        LifecycleWrite::Retraction { cause, tracker, planned_at } => {
            let holders = serde_json::to_string(&tracker.acks).unwrap_or_default();
            let cause_json = serde_json::to_string(cause).unwrap_or_default();
            on_conn!(tx.conn(), c => {
                sqlx::query("INSERT INTO retractions (target_record_key, retract_version, basis_record_key, cause, due, holders, planned_at) VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (target_record_key, retract_version) DO NOTHING")
                    .bind(&tracker.target_record_key).bind(&tracker.retract_version)
                    .bind(&cause.basis_record_key).bind(cause_json).bind(tracker.due.to_string())
                    .bind(holders).bind(planned_at)
                    .execute(&mut *c).await?;
                Ok(())
            })
        }
        LifecycleWrite::PublicityStopped { record_key, stopped_at } => {
            on_conn!(tx.conn(), c => {
                sqlx::query("UPDATE publicity SET stopped_at = $1 WHERE record_key = $2 AND stopped_at = ''")
                    .bind(stopped_at).bind(record_key)
                    .execute(&mut *c).await?;
                Ok(())
            })
        }
        LifecycleWrite::Dispute { row, updated_at } => {
            let d = &row.dispute;
            let json = serde_json::to_string(d).unwrap_or_default();
            // A state only moves forward (the lifecycle step refuses other transitions), and
            // the history only grows: a redelivered older state never overwrites a newer one.
            on_conn!(tx.conn(), c => {
                sqlx::query("INSERT INTO disputes (objection_id, target_record_key, held_version, state, dispute, holding, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (objection_id) DO UPDATE SET state = excluded.state, dispute = excluded.dispute, holding = excluded.holding, updated_at = excluded.updated_at WHERE LENGTH(excluded.dispute) >= LENGTH(disputes.dispute)")
                    .bind(&d.objection_id).bind(&d.target_record_key).bind(&d.held_version)
                    .bind(d.state.label()).bind(json).bind(i64::from(row.holding)).bind(updated_at)
                    .execute(&mut *c).await?;
                Ok(())
            })
        }
        // Batched by the store's commit (`commit_publicity`); one row alone goes the same way.
        LifecycleWrite::Publicity(row) => commit_publicity(tx, &[row]).await,
    }
}

/// Publicity decisions, one multi-row INSERT per chunk: every accepted failed-information
/// record has one, so a statement (and a round trip to the database thread) per row would cost
/// ingest more than the rest of the lifecycle step.
pub(super) async fn commit_publicity<T: Tx>(
    tx: &mut T,
    rows: &[&PublicityRow],
) -> Result<(), sqlx::Error> {
    // 11 columns: 80 rows stay far below SQLite's bound-parameter limit.
    const ROWS_PER_INSERT: usize = 80;
    struct Columns<'a> {
        row: &'a PublicityRow,
        publish: i64,
        tier: String,
        rule: String,
        min_end: String,
        max_end: String,
        decision: String,
    }
    let columns: Vec<Columns<'_>> = rows
        .iter()
        .map(|row| {
            let (publish, tier, rule, min_end, max_end) = match &row.decision {
                PublicityDecision::Publish { tier, rule_version, min_end, max_end, .. } => (
                    1_i64,
                    tier.label().to_owned(),
                    rule_version.clone(),
                    min_end.to_string(),
                    max_end.to_string(),
                ),
                PublicityDecision::DoNotPublish { rule_version, .. } => {
                    (0, "轻微".to_owned(), rule_version.clone(), String::new(), String::new())
                }
            };
            let decision = serde_json::to_string(&row.decision).unwrap_or_default();
            Columns { row, publish, tier, rule, min_end, max_end, decision }
        })
        .collect();
    on_conn!(tx.conn(), c => {
        for chunk in columns.chunks(ROWS_PER_INSERT) {
            let mut q = sqlx::QueryBuilder::new("INSERT INTO publicity (record_key, record_version, catalog_item, source_org, decision, publish, tier, rule_version, min_end, max_end, stopped_at) ");
            q.push_values(chunk, |mut b, v| {
                b.push_bind(&v.row.record_key).push_bind(&v.row.record_version).push_bind(&v.row.catalog_item)
                    .push_bind(&v.row.source_org).push_bind(&v.decision).push_bind(v.publish).push_bind(&v.tier)
                    .push_bind(&v.rule).push_bind(&v.min_end).push_bind(&v.max_end).push_bind("");
            });
            q.push(" ON CONFLICT (record_key, record_version) DO NOTHING");
            q.build().execute(&mut *c).await?;
        }
        Ok(())
    })
}

/// A destination that was routed some version of a record, with what it accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HolderState {
    pub destination: String,
    pub delivered_version: Option<String>,
    pub routed_version: String,
}

impl From<HolderState> for HolderRow {
    /// The lifecycle step's view of a holder: the same three facts, in the pure module's type.
    fn from(holder: HolderState) -> HolderRow {
        HolderRow {
            destination: holder.destination,
            delivered_version: holder.delivered_version,
            routed_version: holder.routed_version,
        }
    }
}

/// One holder's acknowledgement of a retraction, as shown to operators.
#[derive(Debug, Clone, Serialize)]
pub struct HolderAck {
    pub destination: String,
    /// `confirmed`, `pending` or `overdue`.
    pub status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub confirmed_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub on_time: Option<bool>,
}

/// A retraction of a record and where each holder stands.
#[derive(Debug, Clone, Serialize)]
pub struct RetractionView {
    pub retract_version: String,
    pub cause: serde_json::Value,
    pub due: String,
    pub planned_at: String,
    pub holders: Vec<HolderAck>,
}

/// The publicity decision of one record version, as shown to operators.
#[derive(Debug, Clone, Serialize)]
pub struct PublicityView {
    pub record_version: String,
    pub publish: bool,
    pub tier: String,
    pub rule_version: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub min_end: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub max_end: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub stopped_at: String,
    pub decision: serde_json::Value,
}

/// An objection against a record, as shown to operators.
#[derive(Debug, Clone, Serialize)]
pub struct DisputeView {
    pub objection_id: String,
    pub status: String,
    pub holding: bool,
    pub held_version: String,
    pub updated_at: String,
    /// Each status with the instant it was entered.
    pub history: Vec<(String, String)>,
}

type RetractionRow = (String, String, String, String, String);
/// A version row's stored `canonical`, its body (`lineage::body_sql`), message id, receipt
/// time, raw hash and version: [`BODY_COLUMNS`].
type BodyRow = (String, String, String, String, String, String);

/// The columns of a [`BodyRow`] after the body, of the version row `rv`.
const BODY_COLUMNS: &str = "rv.message_id, rv.received_at, rv.raw_sha256, rv.record_version";

/// The canonical record of a [`BodyRow`] as it was received.
fn as_received(
    (stored, body, message_id, received_at, raw_sha256, record_version): BodyRow,
) -> String {
    let row = PerRow {
        message_id: &message_id,
        received_at: &received_at,
        raw_sha256: &raw_sha256,
        record_version: &record_version,
    };
    own_envelope(&stored, body, &row)
}

/// (received_at, adapter, doc_type, receipt, source_org) of a rejected document.
pub type RejectedRow = (String, String, String, String, String);
type PublicityDbRow = (String, i64, String, String, String, String, String, String);

impl Store {
    /// The newest stored canonical record (flat JSON) of a record key.
    ///
    /// # Errors
    ///
    /// The query failed.
    pub async fn latest_canonical(&self, record_key: &str) -> Result<Option<String>, StoreError> {
        let sql = format!(
            "SELECT rv.canonical, {}, {BODY_COLUMNS} FROM record_versions rv WHERE rv.record_key = $1 ORDER BY rv.record_version DESC LIMIT 1",
            body_sql("rv")
        );
        let row: Option<BodyRow> = on_pool!(&self.pool, p => sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(record_key).fetch_optional(p).await?);
        Ok(row.map(as_received))
    }

    /// Every destination that was ever routed any version of a record (lineage), with the
    /// newest version routed to it and the newest it accepted.
    ///
    /// # Errors
    ///
    /// A query failed.
    pub async fn holders(&self, record_key: &str) -> Result<Vec<HolderState>, StoreError> {
        self.catch_up_lineage().await?;
        let sql = "SELECT destination, MAX(record_version) FROM routed_copies WHERE record_key = $1 GROUP BY destination ORDER BY destination";
        let routed: Vec<(String, String)> =
            on_pool!(&self.pool, p => sqlx::query_as(sql).bind(record_key).fetch_all(p).await?);
        let sql = "SELECT destination, record_version FROM delivered WHERE record_key = $1";
        let delivered: std::collections::BTreeMap<String, String> = on_pool!(&self.pool, p => sqlx::query_as::<_, (String, String)>(sql).bind(record_key).fetch_all(p).await?)
            .into_iter()
            .collect();
        Ok(routed
            .into_iter()
            .map(|(destination, routed_version)| HolderState {
                delivered_version: delivered.get(&destination).cloned(),
                destination,
                routed_version,
            })
            .collect())
    }

    /// Stored objections by id (those that exist).
    ///
    /// # Errors
    ///
    /// A query failed.
    pub async fn disputes_by_id(
        &self,
        ids: impl IntoIterator<Item = &String>,
    ) -> Result<std::collections::BTreeMap<String, Dispute>, StoreError> {
        let mut out = std::collections::BTreeMap::new();
        for id in ids {
            let sql = "SELECT dispute FROM disputes WHERE objection_id = $1";
            let row: Option<(String,)> =
                on_pool!(&self.pool, p => sqlx::query_as(sql).bind(id).fetch_optional(p).await?);
            match row.map(|(json,)| serde_json::from_str::<Dispute>(&json)) {
                Some(Ok(dispute)) => {
                    out.insert(id.clone(), dispute);
                }
                Some(Err(error)) => {
                    tracing::warn!(%error, objection_id = id, "Unreadable objection in the store; treated as new.")
                }
                None => {}
            }
        }
        Ok(out)
    }

    /// Every stored objection against any of these records, by id.
    ///
    /// # Errors
    ///
    /// A query failed.
    pub async fn disputes_on(
        &self,
        record_keys: impl IntoIterator<Item = &String>,
    ) -> Result<std::collections::BTreeMap<String, Dispute>, StoreError> {
        let mut out = std::collections::BTreeMap::new();
        for key in record_keys {
            let sql = "SELECT dispute FROM disputes WHERE target_record_key = $1";
            let rows: Vec<(String,)> =
                on_pool!(&self.pool, p => sqlx::query_as(sql).bind(key).fetch_all(p).await?);
            for dispute in
                rows.iter().filter_map(|(json,)| serde_json::from_str::<Dispute>(json).ok())
            {
                out.insert(dispute.objection_id.clone(), dispute);
            }
        }
        Ok(out)
    }

    /// The objections against a record, oldest first.
    ///
    /// # Errors
    ///
    /// The query failed.
    pub async fn disputes_of(&self, record_key: &str) -> Result<Vec<DisputeView>, StoreError> {
        let sql = "SELECT dispute, holding, updated_at FROM disputes WHERE target_record_key = $1 ORDER BY objection_id";
        let rows: Vec<(String, i64, String)> =
            on_pool!(&self.pool, p => sqlx::query_as(sql).bind(record_key).fetch_all(p).await?);
        Ok(rows
            .into_iter()
            .filter_map(|(json, holding, updated_at)| {
                let d: Dispute = serde_json::from_str(&json).ok()?;
                Some(DisputeView {
                    status: d.state.label().to_owned(),
                    history: d
                        .history
                        .iter()
                        .map(|(at, s)| {
                            (crate::pipeline::rfc3339_shanghai(*at), s.label().to_owned())
                        })
                        .collect(),
                    objection_id: d.objection_id,
                    holding: holding != 0,
                    held_version: d.held_version,
                    updated_at,
                })
            })
            .collect())
    }

    /// The severe-dishonesty list rebuilt from its stored events, in commit order.
    ///
    /// # Errors
    ///
    /// The query failed.
    pub async fn dishonest_list(&self) -> Result<DishonestList, StoreError> {
        let sql =
            "SELECT event FROM list_events ORDER BY seq, blacklist_id, record_version, digest";
        let rows: Vec<(String,)> =
            on_pool!(&self.pool, p => sqlx::query_as(sql).fetch_all(p).await?);
        let mut list = DishonestList::new();
        for (json,) in rows {
            match serde_json::from_str::<ListEvent>(&json) {
                Ok(event) => {
                    list.apply(event);
                }
                Err(error) => {
                    tracing::warn!(%error, "Unreadable list event in the store; skipped.")
                }
            }
        }
        Ok(list)
    }

    /// The retractions of a record, each holder's acknowledgement as of `now`: a holder has
    /// confirmed once its retract copy was delivered (or found already delivered).
    ///
    /// # Errors
    ///
    /// A query failed.
    pub async fn retractions(
        &self,
        record_key: &str,
        now: jiff::Timestamp,
    ) -> Result<Vec<RetractionView>, StoreError> {
        let sql = "SELECT retract_version, cause, due, holders, planned_at FROM retractions WHERE target_record_key = $1 ORDER BY retract_version";
        let rows: Vec<RetractionRow> =
            on_pool!(&self.pool, p => sqlx::query_as(sql).bind(record_key).fetch_all(p).await?);
        let mut out = Vec::with_capacity(rows.len());
        for (retract_version, cause, due, holders, planned_at) in rows {
            let (Ok(acks), Ok(due_date)) =
                (serde_json::from_str(&holders), due.parse::<jiff::civil::Date>())
            else {
                continue;
            };
            let mut tracker = AckTracker {
                target_record_key: record_key.to_owned(),
                retract_version: retract_version.clone(),
                due: due_date,
                acks,
            };
            let destinations: Vec<String> = tracker.acks.keys().cloned().collect();
            for destination in &destinations {
                let key =
                    crate::pipeline::idempotency_key(destination, record_key, &retract_version);
                let sql = "SELECT MIN(at) FROM delivery_attempts WHERE idempotency_key = $1 AND outcome IN ('delivered', 'already_delivered')";
                let (at,): (Option<String>,) =
                    on_pool!(&self.pool, p => sqlx::query_as(sql).bind(&key).fetch_one(p).await?);
                if let Some(at) = at.and_then(|a| a.parse::<jiff::Timestamp>().ok()) {
                    let _ = tracker.confirm(destination, at);
                }
            }
            let holders = tracker
                .status(now)
                .into_iter()
                .map(|(destination, state)| match state {
                    AckState::Confirmed { at, on_time } => HolderAck {
                        destination,
                        status: "confirmed".into(),
                        confirmed_at: Some(crate::pipeline::rfc3339_shanghai(at)),
                        on_time: Some(on_time),
                    },
                    AckState::Pending => HolderAck {
                        destination,
                        status: "pending".into(),
                        confirmed_at: None,
                        on_time: None,
                    },
                    AckState::Overdue => HolderAck {
                        destination,
                        status: "overdue".into(),
                        confirmed_at: None,
                        on_time: None,
                    },
                })
                .collect();
            out.push(RetractionView {
                retract_version,
                cause: serde_json::from_str(&cause).unwrap_or(serde_json::Value::Null),
                due,
                planned_at,
                holders,
            });
        }
        Ok(out)
    }

    /// The publicity decisions of a record's versions.
    ///
    /// # Errors
    ///
    /// The query failed.
    pub async fn publicity(&self, record_key: &str) -> Result<Vec<PublicityView>, StoreError> {
        let sql = "SELECT record_version, publish, tier, rule_version, min_end, max_end, stopped_at, decision FROM publicity WHERE record_key = $1 ORDER BY record_version";
        let rows: Vec<PublicityDbRow> =
            on_pool!(&self.pool, p => sqlx::query_as(sql).bind(record_key).fetch_all(p).await?);
        Ok(rows
            .into_iter()
            .map(|r| PublicityView {
                record_version: r.0,
                publish: r.1 != 0,
                tier: r.2,
                rule_version: r.3,
                min_end: r.4,
                max_end: r.5,
                stopped_at: r.6,
                decision: serde_json::from_str(&r.7).unwrap_or(serde_json::Value::Null),
            })
            .collect())
    }

    /// Record keys whose newest publicised version's maximum publicity ended before `today`
    /// (YYYY-MM-DD) and whose stop was not yet emitted, oldest first, at most `limit`.
    ///
    /// # Errors
    ///
    /// The query failed.
    pub async fn publicity_due(
        &self,
        today: &str,
        limit: i64,
    ) -> Result<Vec<(String, String)>, StoreError> {
        let sql = "SELECT record_key, MAX(max_end) FROM publicity WHERE publish = 1 AND stopped_at = '' AND max_end < $1 GROUP BY record_key ORDER BY MAX(max_end), record_key LIMIT $2";
        let rows: Vec<(String, String)> = on_pool!(&self.pool, p => sqlx::query_as(sql).bind(today).bind(limit).fetch_all(p).await?);
        Ok(rows)
    }

    /// Routed copies with their record (flat canonical JSON) and the first time the
    /// destination accepted them: of one record key, or (`key = None`) of the 双公示 items
    /// received since `since`. What deadline obligations are assessed on.
    ///
    /// # Errors
    ///
    /// The query failed.
    pub async fn copy_deliveries(
        &self,
        key: Option<&str>,
        since: &str,
    ) -> Result<Vec<(String, String, Option<String>)>, StoreError> {
        self.catch_up_lineage().await?;
        // Copies are joined by record key first: the leading column of `routed_copies`' key
        // (SQLite) or of its record-key index (PostgreSQL), so each version's copies are a seek.
        let select = format!(
            "SELECT rv.canonical, {}, {BODY_COLUMNS}, rc.destination, (SELECT MIN(da.at) FROM delivery_attempts da WHERE da.idempotency_key = rc.idempotency_key AND da.outcome IN ('delivered', 'already_delivered')) FROM record_versions rv JOIN routed_copies rc ON rc.record_key = rv.record_key AND rc.message_id = rv.message_id AND rc.record_index = rv.record_index",
            body_sql("rv")
        );
        type Row = (String, String, String, String, String, String, String, Option<String>);
        let rows: Vec<Row> = match key {
            Some(key) => {
                let sql = format!(
                    "{select} WHERE rc.record_key = $1 ORDER BY rv.record_version, rc.destination"
                );
                on_pool!(&self.pool, p => sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str())).bind(key).fetch_all(p).await?)
            }
            None => {
                let sql = format!(
                    "{select} WHERE rv.received_at >= $1 AND rv.catalog_item IN ('admin_penalty', 'admin_license') AND rv.operation = 'upsert'"
                );
                on_pool!(&self.pool, p => sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str())).bind(since).fetch_all(p).await?)
            }
        };
        Ok(rows
            .into_iter()
            .map(|(stored, body, message_id, received_at, raw, version, destination, delivered)| {
                let canonical = as_received((stored, body, message_id, received_at, raw, version));
                (canonical, destination, delivered)
            })
            .collect())
    }

    /// Publicised serious (严重) penalties naming `uscc` as their subject: the keyed USCC index
    /// gives the `admin_penalty` keys naming it in `subject_uscc`, the publicity table their
    /// tier and window, the newest stored version their document number and authority.
    ///
    /// # Errors
    ///
    /// A query failed.
    pub async fn serious_penalties(
        &self,
        uscc: &str,
    ) -> Result<Vec<crate::lifecycle::bid_warning::PublicisedPenalty>, StoreError> {
        use crate::lifecycle::publicity::Tier;
        let query = super::lineage::RecordQuery::Uscc(uscc.to_owned());
        let mut out = Vec::new();
        for (key, fields) in self.find_record_keys(&query, 200).await? {
            if !key.starts_with("admin_penalty:") || !fields.iter().any(|f| f == "subject_uscc") {
                continue;
            }
            let sql = "SELECT decision, max_end, stopped_at FROM publicity WHERE record_key = $1 AND publish = 1 AND tier = '严重' ORDER BY record_version DESC LIMIT 1";
            let row: Option<(String, String, String)> =
                on_pool!(&self.pool, p => sqlx::query_as(sql).bind(&key).fetch_optional(p).await?);
            let Some((decision, max_end, stopped_at)) = row else { continue };
            let Ok(PublicityDecision::Publish { anchor, .. }) = serde_json::from_str(&decision)
            else {
                continue;
            };
            let Ok(until) = max_end.parse::<jiff::civil::Date>() else { continue };
            let latest: Option<serde_json::Value> = self
                .latest_canonical(&key)
                .await?
                .and_then(|json| serde_json::from_str(&json).ok());
            let text = |name: &str| {
                latest
                    .as_ref()
                    .and_then(|v| v.get(name))
                    .and_then(|v| v.as_str())
                    .map(str::to_owned)
            };
            out.push(crate::lifecycle::bid_warning::PublicisedPenalty {
                record_key: key.clone(),
                subject_uscc: uscc.to_owned(),
                tier: Tier::Serious,
                decision_doc_no: text("decision_doc_no"),
                authority_name: text("authority_name"),
                publicity_from: anchor,
                publicity_until: until,
                ended_on: stopped_at
                    .parse::<jiff::Timestamp>()
                    .ok()
                    .map(crate::lifecycle::shanghai_date),
            });
        }
        Ok(out)
    }

    /// Accepted record versions received in `[from, to)` (store text instants), without the
    /// gateway's own generated records: (received_at, status, canonical).
    ///
    /// # Errors
    ///
    /// The query failed.
    pub async fn received_between(
        &self,
        from: &str,
        to: &str,
    ) -> Result<Vec<(String, String, String)>, StoreError> {
        let sql = format!(
            "SELECT rv.status, rv.canonical, {}, {BODY_COLUMNS} FROM record_versions rv WHERE rv.received_at >= $1 AND rv.received_at < $2 AND rv.source_adapter <> 'credgate'",
            body_sql("rv")
        );
        type Row = (String, String, String, String, String, String, String);
        let rows: Vec<Row> = on_pool!(&self.pool, p => sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(from).bind(to).fetch_all(p).await?);
        Ok(rows
            .into_iter()
            .map(|(status, stored, body, message_id, received_at, raw, version)| {
                let canonical =
                    as_received((stored, body, message_id, received_at.clone(), raw, version));
                (received_at, status, canonical)
            })
            .collect())
    }

    /// Rejected inbound documents received in `[from, to)`: (received_at, adapter, doc_type,
    /// receipt JSON, source organisation named by the data or empty).
    ///
    /// # Errors
    ///
    /// The query failed.
    pub async fn rejected_between(
        &self,
        from: &str,
        to: &str,
    ) -> Result<Vec<RejectedRow>, StoreError> {
        let sql = "SELECT received_at, adapter, doc_type, receipt, source_org FROM rejected_inputs WHERE received_at >= $1 AND received_at < $2";
        let rows: Vec<RejectedRow> =
            on_pool!(&self.pool, p => sqlx::query_as(sql).bind(from).bind(to).fetch_all(p).await?);
        Ok(rows)
    }

    /// Takes or renews the lease `name` for `owner` until `until` if it is free, expired or
    /// already `owner`'s; true when `owner` holds it afterwards. Two instances asking at once
    /// cannot both get it: the conditional upsert is one statement on one row.
    ///
    /// # Errors
    ///
    /// The query failed.
    pub async fn take_lease(
        &self,
        name: &str,
        owner: &str,
        now: &str,
        until: &str,
    ) -> Result<bool, StoreError> {
        let sql = "INSERT INTO leases (name, owner, expires_at) VALUES ($1, $2, $3) ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, expires_at = excluded.expires_at WHERE leases.owner = excluded.owner OR leases.expires_at < $4";
        on_pool!(&self.pool, p => {
            sqlx::query(sql).bind(name).bind(owner).bind(until).bind(now).execute(p).await?;
        });
        let sql = "SELECT owner FROM leases WHERE name = $1";
        let row: Option<(String,)> =
            on_pool!(&self.pool, p => sqlx::query_as(sql).bind(name).fetch_optional(p).await?);
        Ok(row.is_some_and(|(o,)| o == owner))
    }
}
