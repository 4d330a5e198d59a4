//! The runtime side of the lifecycle step of ingest: loads what `lifecycle::hook` needs from
//! the store, and turns its result into messages (published with the document's own copies,
//! under the same confirm wait) and store writes (committed with the document's lineage).

use std::collections::BTreeMap;

use serde_json::{Map, Value};
use tracing::info;

use crate::broker::Outgoing;
use crate::catalog::Catalog;
use crate::lifecycle::hook::{self, HolderRow, Known, Needs, Step, Target};
use crate::pipeline::CanonicalRecord;
use crate::runtime::state::AppState;
use crate::store::lifecycle::LifecycleWrite;
use crate::store::lineage::{RecordLineage, RoutedCopy, index_entries};
use crate::store::{StoreError, Write};

/// Splits a stored flat canonical record (contract §3) back into envelope and catalog fields,
/// by the fields its catalog item declares.
pub fn split_canonical(catalog: &Catalog, flat: &Value) -> Option<CanonicalRecord> {
    let object = flat.as_object()?;
    let item = catalog.latest(object.get("catalog_item")?.as_str()?)?;
    let mut envelope = Map::new();
    let mut fields = Map::new();
    for (key, value) in object {
        if item.fields.contains_key(key) {
            fields.insert(key.clone(), value.clone());
            // `source_org_uscc` is both an envelope key and a field of most items.
            if key == "source_org_uscc" {
                envelope.insert(key.clone(), value.clone());
            }
        } else {
            envelope.insert(key.clone(), value.clone());
        }
    }
    Some(CanonicalRecord { envelope, fields })
}

/// Loads the store state the lifecycle step of a batch needs.
///
/// # Errors
///
/// A store query failed (the batch is retried).
pub async fn lookups(state: &AppState, needs: &Needs) -> Result<Known, StoreError> {
    let mut known = Known::default();
    for key in &needs.targets {
        let latest = state
            .store
            .latest_canonical(key)
            .await?
            .and_then(|json| serde_json::from_str::<Value>(&json).ok())
            .and_then(|flat| split_canonical(&state.config.catalog, &flat));
        let holders = state.store.holders(key).await?.into_iter().map(HolderRow::from).collect();
        known.targets.insert(key.clone(), Target { latest, holders });
    }
    if !needs.objections.is_empty() {
        // The batch's objections, and every other objection on their targets (a record stays
        // held while any of them holds it).
        known.disputes = state.store.disputes_on(&needs.targets).await?;
        known.disputes.extend(state.store.disputes_by_id(&needs.objections).await?);
    }
    if needs.list {
        known.list = state.store.dishonest_list().await?;
        for uscc in &needs.subjects {
            known.penalties.extend(state.store.serious_penalties(uscc).await?);
        }
    }
    Ok(known)
}

/// The messages of a step's generated records (one per copy), each built like a document's own
/// copy; `source` is the inbound message that set them off.
pub fn outgoing(step: &Step, source_message_id: &str) -> Vec<Outgoing> {
    step.generated
        .iter()
        .flat_map(|g| {
            g.copies.iter().map(|copy| {
                crate::runtime::ingest::copy_message(
                    &g.record,
                    copy,
                    source_message_id,
                    crate::lifecycle::bid_warning::GENERATED_BY,
                )
            })
        })
        .collect()
}

/// The store writes of a step: lineage of each generated record (so `/v1/records` shows the
/// retraction or warning with its copies and their attempts) and the lifecycle rows.
pub fn writes(step: &Step, at: &str) -> Vec<Write> {
    let mut out = Vec::new();
    for g in &step.generated {
        let record = &g.record;
        out.push(Write::Lineage(Box::new(RecordLineage {
            // Several retractions of one record share the envelope's message id; the version
            // keeps their lineage rows apart.
            message_id: format!("{}@{}", record.get_str("message_id"), record.record_version())
                .into(),
            record_index: 0,
            record_key: record.record_key().into(),
            record_version: record.record_version().into(),
            source_adapter: crate::lifecycle::bid_warning::GENERATED_BY.into(),
            doc_type: format!("lifecycle:{}", g.kind).into(),
            catalog_item: record.get_str("catalog_item").into(),
            catalog_version: record.get_str("catalog_version").into(),
            operation: record.get_str("operation").into(),
            status: "accepted".into(),
            raw_sha256: record.get_str("raw_sha256").into(),
            canonical: record.to_json_string(),
            // The row's message id is not the envelope's: the body is never shared.
            body_sha256: "".into(),
            received_at: at.into(),
            index: index_entries(&record.fields),
            copies: g.copies.iter().map(RoutedCopy::from).collect(),
        })));
    }
    for (record_key, event) in &step.list_events {
        out.push(Write::Lifecycle(Box::new(LifecycleWrite::ListEvent {
            record_key: record_key.clone(),
            event: event.clone(),
            accepted_at: at.to_owned(),
        })));
    }
    for r in &step.retractions {
        out.push(Write::Lifecycle(Box::new(LifecycleWrite::Retraction {
            cause: r.cause.clone(),
            tracker: r.tracker.clone(),
            planned_at: at.to_owned(),
        })));
        // A retracted record's publicity has ended: the publicity timer has nothing left to do.
        out.push(Write::Lifecycle(Box::new(LifecycleWrite::PublicityStopped {
            record_key: r.tracker.target_record_key.clone(),
            stopped_at: at.to_owned(),
        })));
    }
    for p in &step.publicity {
        out.push(Write::Lifecycle(Box::new(LifecycleWrite::Publicity(p.clone()))));
    }
    for row in &step.disputes {
        out.push(Write::Lifecycle(Box::new(LifecycleWrite::Dispute {
            row: row.clone(),
            updated_at: at.to_owned(),
        })));
    }
    out
}

/// Logs what a step did and could not do (notes are never dropped silently).
pub fn report(step: &Step, message_id: &str) {
    for note in &step.notes {
        info!(message_id, note, "Lifecycle step.");
    }
    let mut generated: BTreeMap<&str, usize> = BTreeMap::new();
    for g in &step.generated {
        *generated.entry(g.kind).or_default() += g.copies.len();
    }
    for (kind, copies) in generated {
        info!(message_id, kind, copies, "Lifecycle step generated copies.");
    }
}

/// Re-exported for the ingest batch: what the documents need looked up.
pub fn needs(docs: &[&crate::pipeline::Processed]) -> Needs {
    hook::needs(docs)
}

/// The lifecycle's notion of "now": the system clock plus an offset that only a test
/// configuration (`[lifecycle] test_clock = true`) lets an operator move through
/// `POST /v1/lifecycle/clock`, so publicity expiry and deadlines can be shown without waiting.
#[derive(Debug, Default)]
pub struct Clock {
    offset_secs: std::sync::atomic::AtomicI64,
}

impl Clock {
    pub fn now(&self) -> jiff::Timestamp {
        let offset = self.offset_secs.load(std::sync::atomic::Ordering::Relaxed);
        let now = jiff::Timestamp::now();
        now.checked_add(jiff::SignedDuration::from_secs(offset)).unwrap_or(now)
    }

    /// Moves "now" to `to` (never backwards: timers already fired stay fired).
    pub fn set(&self, to: jiff::Timestamp) {
        let offset = to.as_second() - jiff::Timestamp::now().as_second();
        self.offset_secs.fetch_max(offset, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Adds the lifecycle state of a presented record history (`/v1/records`, `records show`):
/// publicity decisions of its versions, the reporting deadlines of its copies (due / at-risk /
/// met / breached) and its retractions with each holder's acknowledgement (confirmed /
/// pending / overdue), all as of `now`.
///
/// # Errors
///
/// A store query failed.
pub async fn annotate(
    config: &crate::config::CompiledConfig,
    store: &crate::store::Store,
    record: &mut Value,
    now: jiff::Timestamp,
) -> Result<(), StoreError> {
    let Some(key) = record.get("record_key").and_then(Value::as_str).map(str::to_owned) else {
        return Ok(());
    };
    let retractions = store.retractions(&key, now).await?;
    let publicity = store.publicity(&key).await?;
    let disputes = store.disputes_of(&key).await?;
    let deadlines: Vec<Value> =
        obligations(config, store.copy_deliveries(Some(&key), "").await?, now)
            .iter()
            .map(obligation_json)
            .collect();
    if retractions.is_empty() && publicity.is_empty() && deadlines.is_empty() && disputes.is_empty()
    {
        return Ok(());
    }
    // How each holder treats the record while an objection holds it.
    let holders: Vec<Value> = if disputes.is_empty() {
        Vec::new()
    } else {
        store
            .holders(&key)
            .await?
            .into_iter()
            .map(|h| {
                serde_json::json!({
                    "destination": h.destination,
                    "policy": crate::lifecycle::objection::policy_of(config, &h.destination),
                })
            })
            .collect()
    };
    let disputes: Vec<Value> = disputes
        .into_iter()
        .map(|d| {
            let mut v = serde_json::to_value(&d).unwrap_or_default();
            v["holders"] = Value::Array(holders.clone());
            v
        })
        .collect();
    record["lifecycle"] = serde_json::json!({
        "as_of": crate::pipeline::rfc3339_shanghai(now),
        "publicity": publicity,
        "deadlines": deadlines,
        "retractions": retractions,
        "disputes": disputes,
    });
    Ok(())
}

/// The obligations of stored copies (`Store::copy_deliveries` rows) at `now`.
pub fn obligations(
    config: &crate::config::CompiledConfig,
    rows: Vec<(String, String, Option<String>)>,
    now: jiff::Timestamp,
) -> Vec<crate::lifecycle::obligations::Obligation> {
    rows.into_iter()
        .filter_map(|(canonical, destination, delivered)| {
            let flat: Value = serde_json::from_str(&canonical).ok()?;
            let record = split_canonical(&config.catalog, &flat)?;
            let delivered = delivered.and_then(|at| at.parse::<jiff::Timestamp>().ok());
            Some(crate::lifecycle::obligations::of_copy(
                config,
                &record,
                &destination,
                delivered,
                now,
            ))
        })
        .flatten()
        .collect()
}

/// An obligation as operators see it.
pub fn obligation_json(o: &crate::lifecycle::obligations::Obligation) -> Value {
    let mut v = serde_json::json!({
        "record_version": o.record_version,
        "destination": o.destination,
        "rule": o.rule,
        "status": o.status(),
    });
    match &o.assessment {
        Ok(a) => {
            v["start"] = a.start.to_string().into();
            v["due"] = a.due.to_string().into();
            v["working_days_left"] = a.working_days_left.map_or(Value::Null, Value::from);
            v["delivered_on"] = a.delivered_on.map_or(Value::Null, |d| d.to_string().into());
        }
        Err(e) => v["error"] = e.clone().into(),
    }
    v
}
