//! Ingest: one inbound document → pure pipeline → every routed copy published to
//! `credgate.route` with confirms (mandatory) while its lineage commits → receipt published
//! (confirmed) while the dedup key and receipt commit. Only then is the source answered (AMQP
//! ack, HTTP 202).
//!
//! The AMQP consumer for `credgate.in.<adapter>` lives here too; the HTTP push handler calls
//! the same `ingest` function.

use std::sync::Arc;
use std::time::Instant;

use futures_util::{FutureExt, StreamExt};
use lapin::message::Delivery;
use lapin::options::{BasicAckOptions, BasicConsumeOptions, BasicNackOptions, BasicQosOptions};
use lapin::types::FieldTable;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::broker::{self, BrokerError, Outgoing};
use crate::pipeline::{self, Inbound, Processed, Receipt, ReceiptStatus, RecordStatus};
use crate::route::RouteDecision;
use crate::runtime::metrics as m;
use crate::runtime::state::AppState;
use crate::store::{StoreError, Write};

/// Why ingest could not finish; the source must retry (AMQP: requeue; HTTP: 503).
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error(transparent)]
    Broker(#[from] BrokerError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("broker connection is down")]
    NotConnected,
    /// A failure shared by the whole batch (store query or commit).
    #[error("{0}")]
    Batch(String),
}

/// The answer to the source.
#[derive(Debug, Clone)]
pub struct IngestOutcome {
    pub receipt: Receipt,
}

/// Header names on canonical envelopes in `credgate.route` and the destination queues.
pub mod headers {
    pub const RECORD_KEY: &str = "x-credgate-record-key";
    pub const RECORD_VERSION: &str = "x-credgate-record-version";
    pub const CATALOG_ITEM: &str = "x-credgate-catalog-item";
    pub const OPERATION: &str = "x-credgate-operation";
    pub const SOURCE_MESSAGE_ID: &str = "x-credgate-source-message-id";
    pub const SOURCE_ADAPTER: &str = "x-credgate-source-adapter";
    pub const ATTEMPT: &str = "x-credgate-attempt";
    pub const ATTEMPT_HISTORY: &str = "x-credgate-attempt-history";
    pub const DEAD_REASON: &str = "x-credgate-dead-reason";
    pub const REMOTE_RESPONSE: &str = "x-credgate-remote-response";
    pub const VIOLATIONS: &str = "x-credgate-violations";
    pub const DOC_TYPE: &str = "x-credgate-doc-type";
}

/// Runs one inbound document through the gateway (the HTTP push path).
///
/// # Errors
///
/// Broker or store failures; nothing was acknowledged and the source must retry with the same
/// message id (copies already published are recognisable by their idempotency keys).
pub async fn ingest(state: &AppState, inbound: &Inbound<'_>) -> Result<IngestOutcome, IngestError> {
    ingest_batch(state, std::slice::from_ref(inbound))
        .await
        .into_iter()
        .next()
        .unwrap_or(Err(IngestError::NotConnected))
}

/// What ingest decided for one document of a batch before anything was published.
enum Plan {
    /// Seen before (its first receipt is in the store): answer `duplicate`, publish nothing.
    Known(Receipt),
    /// The same message id came twice in this batch: answer like the first, once it is safe.
    RepeatOf(usize),
    /// New: the pipeline's result and its receipt.
    Fresh { processed: Processed, receipt: Receipt, receipt_json: String },
}

/// Runs a batch of inbound documents through the gateway: one dedup query for the batch, the
/// pure pipeline per document, every copy of the batch published pipelined under one wait for
/// confirms (while the lineage commits), then every receipt under one more (while one store
/// commit takes all dedup rows). Each document gets its own result, so a document whose copy was
/// unroutable fails alone.
///
/// The per-document order is the same as for a single document — copies confirmed and lineage
/// committed, then the receipt confirmed and the dedup key committed, then the source
/// answered — so batching changes the cost, not the guarantees: a crash anywhere before the
/// answer means the source's redelivery is processed and answered again.
pub async fn ingest_batch(
    state: &AppState,
    batch: &[Inbound<'_>],
) -> Vec<Result<IngestOutcome, IngestError>> {
    let started = Instant::now();
    let ids: Vec<&str> = batch.iter().map(|inbound| inbound.message_id).collect();
    let known = match state.store.receipts_for(&ids).await {
        Ok(known) => known,
        Err(error) => return fail_all(batch.len(), &error.to_string()),
    };
    let mut first_in_batch: std::collections::HashMap<&str, usize> =
        std::collections::HashMap::with_capacity(batch.len());
    let mut plans = Vec::with_capacity(batch.len());
    for (index, inbound) in batch.iter().enumerate() {
        if let Some(first) = known.get(inbound.message_id) {
            let mut receipt: Receipt =
                serde_json::from_str(first).unwrap_or_else(|_| Processed::empty_receipt(inbound));
            receipt.status = ReceiptStatus::Duplicate;
            plans.push(Plan::Known(receipt));
        } else if let Some(first) = first_in_batch.get(inbound.message_id) {
            plans.push(Plan::RepeatOf(*first));
        } else {
            first_in_batch.insert(inbound.message_id, index);
            plans.push(fresh_plan(state, inbound));
        }
    }

    // The lifecycle step: store lookups first, then the pure hook, all before anything is
    // published, so generated copies share the documents' confirm wait and ack discipline.
    let steps = match after_accept(state, &mut plans, batch).await {
        Ok(steps) => steps,
        Err(error) => return fail_all(batch.len(), &error.to_string()),
    };

    // Per document: its copies (and the lifecycle step's), then its receipt, published once
    // the lineage is committed.
    let (copy_groups, receipt_groups): (Vec<Vec<Outgoing>>, Vec<Vec<Outgoing>>) = plans
        .iter()
        .zip(batch)
        .zip(&steps)
        .map(|((plan, inbound), step)| match plan {
            Plan::Known(receipt) => (
                Vec::new(),
                vec![receipt_message(receipt, serde_json::to_vec(receipt).unwrap_or_default())],
            ),
            Plan::RepeatOf(first) => match &plans[*first] {
                Plan::Fresh { receipt, .. } => {
                    let repeat = duplicate_of(receipt);
                    (
                        Vec::new(),
                        vec![receipt_message(
                            &repeat,
                            serde_json::to_vec(&repeat).unwrap_or_default(),
                        )],
                    )
                }
                _ => (Vec::new(), Vec::new()),
            },
            Plan::Fresh { processed, receipt, receipt_json } => {
                let mut copies = outgoing_messages(inbound, processed, receipt);
                copies.extend(crate::runtime::lifecycle::outgoing(step, inbound.message_id));
                (copies, vec![receipt_message(receipt, receipt_json.as_bytes().to_vec())])
            }
        })
        .unzip();
    let Ok(channel) = publisher(state).await else {
        return batch.iter().map(|_| Err(IngestError::NotConnected)).collect();
    };
    // Lineage is history, written idempotently, so it commits while the copies are being
    // published instead of after their confirms: the store's commit hides behind the broker's.
    // It does not wait for the disk: the dedup rows' commit below does, and carries it. The
    // dedup key still commits only after the confirms, so a document is answered (and never
    // re-processed) only once its copies are safe and its lineage is durable.
    let record_lineage = state.config.process.store.lineage;
    let lineage_rows: Vec<Write> = if record_lineage {
        fresh_documents(&plans, batch)
            .flat_map(|(inbound, processed, receipt)| {
                crate::store::lineage::lineage_writes(inbound, processed, receipt)
            })
            .collect()
    } else {
        Vec::new()
    };
    let (mut published, lineage_committed) = tokio::join!(
        broker::publish_groups(&channel, copy_groups),
        state.store.write_all_flushed_later(lineage_rows)
    );

    // A repeat inside the batch stands or falls with its first occurrence.
    for index in 0..plans.len() {
        if let Plan::RepeatOf(first) = plans[index]
            && published[first].is_err()
        {
            published[index] = Err(BrokerError::Abandoned(
                "the first delivery of this message id in the batch failed".into(),
            ));
        }
    }
    // Receipts go out once the lineage is committed: a source holding a receipt finds its
    // records (`GET /v1/records`), and a credit repair it sends next finds every holder of the
    // record it repairs. A document that will not be answered gets none now; its redelivery
    // brings one.
    let receipt_groups = receipt_groups
        .into_iter()
        .zip(&plans)
        .zip(&published)
        .map(|((receipt, plan), copies)| {
            let lineage_needed = !matches!(plan, Plan::Known(_));
            let answered = copies.is_ok() && (!lineage_needed || lineage_committed.is_ok());
            if answered { receipt } else { Vec::new() }
        })
        .collect();

    // Dedup key and lifecycle state of every published document commit in one transaction,
    // after its lineage, while the receipts are being confirmed. A document whose copies could
    // not be published keeps its lineage (the source's redelivery re-writes the same rows), and
    // each of its copies gets an attempt saying so, so the record's history does not show them
    // as simply queued. (One whose receipt then fails is not answered: its redelivery is a
    // known message id and gets the first receipt, marked `duplicate`, as contract §5 says.)
    let mut rows: Vec<Write> = Vec::new();
    for (((plan, inbound), outcome), step) in plans.iter().zip(batch).zip(&published).zip(&steps) {
        let Plan::Fresh { processed, receipt, receipt_json } = plan else { continue };
        match outcome {
            Ok(()) => {
                // Lifecycle rows always: list events, retractions and publicity are state,
                // not history (retraction holders still come from lineage, see
                // docs/lifecycle.md).
                rows.extend(crate::runtime::lifecycle::writes(step, &receipt.received_at));
                crate::runtime::lifecycle::report(step, inbound.message_id);
                rows.push(Write::Message {
                    message_id: inbound.message_id.to_owned(),
                    adapter: inbound.adapter.to_owned(),
                    doc_type: inbound.doc_type.to_owned(),
                    status: status_name(receipt.status).to_owned(),
                    receipt: receipt_json.clone(),
                    received_at: receipt.received_at.clone(),
                });
            }
            Err(error) if record_lineage && lineage_committed.is_ok() => {
                rows.extend(crate::store::lineage::unpublished_attempts(
                    processed,
                    &error.to_string(),
                    &pipeline::rfc3339_shanghai(jiff::Timestamp::now()),
                ));
            }
            Err(_) => {}
        }
    }
    let (receipts_published, committed) =
        tokio::join!(broker::publish_groups(&channel, receipt_groups), async {
            match lineage_committed {
                Ok(()) => state.store.write_all(rows).await.map_err(|e| e.to_string()),
                // Without its lineage no document may be answered: all are redelivered.
                Err(error) => Err(error.to_string()),
            }
        });
    for (outcome, receipt_sent) in published.iter_mut().zip(receipts_published) {
        if outcome.is_ok() {
            *outcome = receipt_sent;
        }
    }

    let mut tally = Tally::default();
    let results = plans
        .into_iter()
        .zip(batch)
        .zip(published)
        .map(|((plan, inbound), outcome)| {
            tally.received(inbound);
            outcome?;
            let receipt = match plan {
                Plan::Known(receipt) => {
                    tally.outcome(inbound, "duplicate");
                    receipt
                }
                Plan::RepeatOf(_) => {
                    committed.as_ref().map_err(|e| IngestError::Batch(e.clone()))?;
                    tally.outcome(inbound, "duplicate");
                    Receipt { status: ReceiptStatus::Duplicate, ..Processed::empty_receipt(inbound) }
                }
                Plan::Fresh { receipt, .. } => {
                    committed.as_ref().map_err(|e| IngestError::Batch(e.clone()))?;
                    let outcome = if receipt.status == ReceiptStatus::Rejected {
                        "rejected"
                    } else {
                        "ok"
                    };
                    tally.outcome(inbound, outcome);
                    debug!(adapter = inbound.adapter, doc_type = inbound.doc_type, message_id = inbound.message_id, outcome = status_name(receipt.status), routed_to = ?receipt.routed_to, "Document ingested.");
                    receipt
                }
            };
            Ok(IngestOutcome { receipt })
        })
        .collect();
    tally.flush(started.elapsed().as_secs_f64());
    results
}

/// The new documents of a batch, with what the pipeline made of them.
fn fresh_documents<'a>(
    plans: &'a [Plan],
    batch: &'a [Inbound<'a>],
) -> impl Iterator<Item = (&'a Inbound<'a>, &'a Processed, &'a Receipt)> {
    plans.iter().zip(batch).filter_map(|(plan, inbound)| match plan {
        Plan::Fresh { processed, receipt, .. } => Some((inbound, processed, receipt)),
        _ => None,
    })
}

/// Runs the lifecycle step over the new documents of a batch (one `Step` per plan, empty for
/// the others) and brings their receipts up to date with what it changed.
async fn after_accept(
    state: &AppState,
    plans: &mut [Plan],
    batch: &[Inbound<'_>],
) -> Result<Vec<crate::lifecycle::hook::Step>, StoreError> {
    let fresh: Vec<&Processed> = plans
        .iter()
        .filter_map(|p| match p {
            Plan::Fresh { processed, .. } => Some(processed),
            _ => None,
        })
        .collect();
    let needs = crate::runtime::lifecycle::needs(&fresh);
    let known = crate::runtime::lifecycle::lookups(state, &needs).await?;
    let mut docs: Vec<&mut Processed> = plans
        .iter_mut()
        .filter_map(|p| match p {
            Plan::Fresh { processed, .. } => Some(processed),
            _ => None,
        })
        .collect();
    // The hook changes a document only by holding copies back or adding findings; the receipt
    // is rebuilt for those alone (most documents, every ordinary penalty, are left as they are).
    let shape = |p: &Processed| -> (usize, usize) {
        p.records.iter().fold((0, 0), |(v, c), r| (v + r.violations.len(), c + r.copies.len()))
    };
    let before: Vec<(usize, usize)> = docs.iter().map(|p| shape(p)).collect();
    let mut fresh_steps =
        crate::lifecycle::hook::after_accept(&state.config, &mut docs, &known).into_iter();
    let changed: Vec<bool> = docs.iter().zip(before).map(|(p, was)| shape(p) != was).collect();
    drop(docs);
    let mut changed = changed.into_iter();
    let mut steps = Vec::with_capacity(plans.len());
    for (plan, inbound) in plans.iter_mut().zip(batch) {
        match plan {
            Plan::Fresh { processed, receipt, receipt_json } => {
                let step = fresh_steps.next().unwrap_or_default();
                if changed.next().unwrap_or(true) || !step.warnings.is_empty() {
                    *receipt = processed.receipt(inbound);
                    *receipt_json = serde_json::to_string(&*receipt).unwrap_or_default();
                }
                steps.push(step);
            }
            _ => steps.push(Default::default()),
        }
    }
    Ok(steps)
}

/// Processes a new document (pure stages) and prepares its receipt.
fn fresh_plan(state: &AppState, inbound: &Inbound<'_>) -> Plan {
    // Large documents are decoded off the async workers so one upload cannot stall the rest.
    let processed = if inbound.body.len() > 256 * 1024 {
        tokio::task::block_in_place(|| pipeline::process(&state.config, inbound))
    } else {
        pipeline::process(&state.config, inbound)
    };
    let receipt = processed.receipt(inbound);
    for v in
        processed.records.iter().flat_map(|r| &r.violations).chain(&processed.document_violations)
    {
        if v.severity == crate::record::Severity::Error {
            metrics::counter!(m::VALIDATION_FAILURES, "adapter" => inbound.adapter.to_owned(), "doc_type" => inbound.doc_type.to_owned(), "keyword" => v.rule.clone()).increment(1);
        }
    }
    let receipt_json = serde_json::to_string(&receipt).unwrap_or_default();
    Plan::Fresh { processed, receipt, receipt_json }
}

fn duplicate_of(receipt: &Receipt) -> Receipt {
    Receipt { status: ReceiptStatus::Duplicate, ..receipt.clone() }
}

fn fail_all(n: usize, reason: &str) -> Vec<Result<IngestOutcome, IngestError>> {
    (0..n).map(|_| Err(IngestError::Batch(reason.to_owned()))).collect()
}

/// Per-batch metric counts, so the labels are built once per batch and not once per message.
#[derive(Default)]
struct Tally<'a> {
    received: Vec<((&'a str, &'a str), u64)>,
    outcomes: Vec<((&'a str, &'a str, &'static str), u64)>,
}

impl<'a> Tally<'a> {
    fn received(&mut self, inbound: &Inbound<'a>) {
        bump(&mut self.received, (inbound.adapter, inbound.doc_type));
    }

    fn outcome(&mut self, inbound: &Inbound<'a>, outcome: &'static str) {
        bump(&mut self.outcomes, (inbound.adapter, inbound.doc_type, outcome));
    }

    fn flush(self, elapsed_secs: f64) {
        for ((adapter, doc_type), n) in self.received {
            metrics::counter!(m::MESSAGES_RECEIVED, "adapter" => adapter.to_owned(), "doc_type" => doc_type.to_owned()).increment(n);
        }
        for ((adapter, doc_type, outcome), n) in self.outcomes {
            metrics::counter!(m::MESSAGES_PROCESSED, "adapter" => adapter.to_owned(), "doc_type" => doc_type.to_owned(), "outcome" => outcome).increment(n);
            if outcome == "duplicate" {
                metrics::counter!(m::DUPLICATES, "adapter" => adapter.to_owned()).increment(n);
            }
            // Every document of a batch took the batch's time to be answered.
            let histogram = metrics::histogram!(m::PROCESSING_SECONDS, "adapter" => adapter.to_owned(), "doc_type" => doc_type.to_owned());
            for _ in 0..n {
                histogram.record(elapsed_secs);
            }
        }
    }
}

fn bump<K: PartialEq>(counts: &mut Vec<(K, u64)>, key: K) {
    match counts.iter_mut().find(|(k, _)| *k == key) {
        Some((_, n)) => *n += 1,
        None => counts.push((key, 1)),
    }
}

pub fn status_name(status: ReceiptStatus) -> &'static str {
    match status {
        ReceiptStatus::Accepted => "accepted",
        ReceiptStatus::AcceptedWithWarnings => "accepted_with_warnings",
        ReceiptStatus::Rejected => "rejected",
        ReceiptStatus::Duplicate => "duplicate",
    }
}

async fn publisher(state: &AppState) -> Result<lapin::Channel, IngestError> {
    state.publisher.read().await.clone().ok_or(IngestError::NotConnected)
}

/// Publishes a receipt (confirmed; the adapter's receipt queue always exists).
pub async fn publish_receipt(state: &AppState, receipt: &Receipt) -> Result<(), IngestError> {
    let channel = publisher(state).await?;
    let body = serde_json::to_vec(receipt).unwrap_or_default();
    broker::publish_all(&channel, vec![receipt_message(receipt, body)]).await?;
    Ok(())
}

/// The receipt as a message on `credgate.receipts`, routing key = the source adapter.
fn receipt_message(receipt: &Receipt, body: Vec<u8>) -> Outgoing {
    let mut properties =
        broker::properties(&format!("receipt:{}", receipt.message_id), "application/json");
    if let Some(correlation_id) = &receipt.correlation_id {
        properties = properties.with_correlation_id(correlation_id.as_str().into());
    }
    Outgoing {
        exchange: broker::RECEIPTS_EXCHANGE.to_owned(),
        routing_key: receipt.adapter.clone(),
        body,
        properties,
        mandatory: false,
    }
}

/// Every message one processed document produces: a canonical envelope per routed copy,
/// unmatched records to the unmatched dead-letter queue, rejected records (with the original
/// bytes and the violation list) to the adapter's rejected queue.
fn outgoing_messages(
    inbound: &Inbound<'_>,
    processed: &Processed,
    receipt: &Receipt,
) -> Vec<Outgoing> {
    let mut out = Vec::new();
    for record in &processed.records {
        let Some(canonical) = &record.record else { continue };
        match &record.route {
            Some(RouteDecision::To(_)) => {
                for copy in &record.copies {
                    out.push(copy_message(canonical, copy, inbound.message_id, inbound.adapter));
                }
            }
            Some(RouteDecision::Unmatched) => {
                let mut h = FieldTable::default();
                broker::put_str(&mut h, headers::RECORD_KEY, canonical.record_key());
                broker::put_str(&mut h, headers::SOURCE_MESSAGE_ID, inbound.message_id);
                broker::put_str(&mut h, headers::SOURCE_ADAPTER, inbound.adapter);
                broker::put_str(&mut h, headers::DEAD_REASON, "unmatched");
                out.push(Outgoing {
                    exchange: broker::DLQ_EXCHANGE.to_owned(),
                    routing_key: broker::UNMATCHED.to_owned(),
                    body: serde_json::to_vec(&canonical.to_json()).unwrap_or_default(),
                    properties: broker::properties(
                        &format!("unmatched:{}:{}", inbound.message_id, record.index),
                        "application/json",
                    )
                    .with_headers(h),
                    mandatory: true,
                });
            }
            None => {}
        }
    }
    let any_rejected = !processed.document_violations.is_empty()
        || processed.records.iter().any(|r| r.status == RecordStatus::Rejected);
    if any_rejected {
        let mut h = FieldTable::default();
        broker::put_str(&mut h, headers::SOURCE_MESSAGE_ID, inbound.message_id);
        broker::put_str(&mut h, headers::SOURCE_ADAPTER, inbound.adapter);
        broker::put_str(&mut h, headers::DOC_TYPE, inbound.doc_type);
        broker::put_str(
            &mut h,
            headers::VIOLATIONS,
            &serde_json::to_string(receipt).unwrap_or_default(),
        );
        out.push(Outgoing {
            exchange: broker::REJECTED_EXCHANGE.to_owned(),
            routing_key: inbound.adapter.to_owned(),
            body: inbound.body.to_vec(),
            properties: broker::properties(
                &format!("rejected:{}", inbound.message_id),
                inbound.content_type.unwrap_or("application/octet-stream"),
            )
            .with_headers(h),
            mandatory: true,
        });
    }
    out
}

/// One routed copy as a canonical envelope on `credgate.route` (routing key = destination,
/// mandatory), with the headers delivery works from.
pub(crate) fn copy_message(
    canonical: &crate::pipeline::CanonicalRecord,
    copy: &crate::pipeline::OutboundCopy,
    source_message_id: &str,
    source_adapter: &str,
) -> Outgoing {
    let mut h = FieldTable::default();
    broker::put_str(&mut h, headers::RECORD_KEY, canonical.record_key());
    broker::put_str(&mut h, headers::RECORD_VERSION, canonical.record_version());
    broker::put_str(&mut h, headers::CATALOG_ITEM, canonical.get_str("catalog_item"));
    broker::put_str(&mut h, headers::OPERATION, canonical.get_str("operation"));
    broker::put_str(&mut h, headers::SOURCE_MESSAGE_ID, source_message_id);
    broker::put_str(&mut h, headers::SOURCE_ADAPTER, source_adapter);
    broker::put_int(&mut h, headers::ATTEMPT, 0);
    Outgoing {
        exchange: broker::ROUTE_EXCHANGE.to_owned(),
        routing_key: copy.destination.clone(),
        body: copy.payload.clone(),
        properties: broker::properties(&copy.idempotency_key, copy.content_type).with_headers(h),
        mandatory: true,
    }
}

impl Processed {
    /// A receipt with no records, for when a stored first receipt cannot be read back.
    pub fn empty_receipt(inbound: &Inbound<'_>) -> Receipt {
        Receipt {
            message_id: inbound.message_id.to_owned(),
            correlation_id: inbound.correlation_id.map(str::to_owned),
            adapter: inbound.adapter.to_owned(),
            doc_type: inbound.doc_type.to_owned(),
            status: ReceiptStatus::Duplicate,
            violations: Vec::new(),
            records: Vec::new(),
            routed_to: Vec::new(),
            received_at: pipeline::rfc3339_shanghai(inbound.received_at),
        }
    }
}

/// Most batches processed at once per consumer; with the prefetch this bounds the memory.
const BATCHES_IN_FLIGHT: usize = 4;

/// Consumes `credgate.in.<adapter>` until the channel dies or shutdown is requested.
///
/// Deliveries are taken in batches — the first one that arrives plus whatever else the
/// prefetch already buffered, up to half the prefetch — and batches are processed concurrently
/// (at most `BATCHES_IN_FLIGHT`). They are settled strictly in the order they were taken, on the
/// channel they came from, so a batch whose documents all succeeded is answered with a single
/// `multiple` ack: every tag up to its last one belongs to it or to an already settled batch.
///
/// # Errors
///
/// The consumer could not be started or its channel failed (the supervisor reconnects).
pub async fn consume_adapter(
    state: Arc<AppState>,
    connection: &lapin::Connection,
    adapter: String,
    shutdown: CancellationToken,
) -> Result<(), BrokerError> {
    let channel = connection.create_channel().await?;
    let prefetch = state.config.process.amqp.prefetch;
    channel.basic_qos(prefetch, BasicQosOptions::default()).await?;
    let queue = broker::inbound_queue(&adapter);
    let mut consumer = channel
        .basic_consume(
            queue.as_str().into(),
            format!("credgate-ingest-{adapter}").into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    let max_batch = usize::from(prefetch / 2).clamp(1, 256);
    info!(adapter, queue, prefetch, max_batch, "Ingest consumer started.");
    let (to_settle, settle_queue) = tokio::sync::mpsc::channel(BATCHES_IN_FLIGHT);
    let settler =
        tokio::spawn(settle_in_order(state.clone(), channel.clone(), queue.clone(), settle_queue));
    let result = loop {
        let first = tokio::select! {
            _ = shutdown.cancelled() => break Ok(()),
            next = consumer.next() => match next {
                None => break Ok(()),
                Some(Err(error)) => break Err(BrokerError::from(error)),
                Some(Ok(delivery)) => delivery,
            }
        };
        let mut batch = vec![first];
        let mut failed = None;
        while batch.len() < max_batch {
            match consumer.next().now_or_never() {
                Some(Some(Ok(delivery))) => batch.push(delivery),
                Some(Some(Err(error))) => {
                    failed = Some(BrokerError::from(error));
                    break;
                }
                // Nothing more buffered right now (or the stream ended: the next turn sees it).
                _ => break,
            }
        }
        for delivery in &batch {
            let published = delivery.properties.timestamp().unwrap_or(0);
            state.in_flight.start(&queue, delivery.delivery_tag, published);
        }
        let work = tokio::spawn(process_batch(state.clone(), adapter.clone(), batch));
        // Bounded: when BATCHES_IN_FLIGHT batches are unsettled, taking more waits here.
        if to_settle.send(work).await.is_err() {
            break Ok(());
        }
        if let Some(error) = failed {
            break Err(error);
        }
    };
    // Stop taking deliveries, then let the batches in flight finish and be settled (their acks
    // go to this channel, still open); anything unfinished is requeued when the channel closes.
    let _ =
        channel.basic_cancel(consumer.tag(), lapin::options::BasicCancelOptions::default()).await;
    drop(to_settle);
    let _ = tokio::time::timeout(std::time::Duration::from_secs(30), settler).await;
    let _ = channel.close(200, "shutdown".into()).await;
    state.in_flight.clear(&queue);
    result
}

/// One delivery's outcome: its tag and whether ingest finished.
type Settlement = (u64, Result<(), IngestError>);

/// Acks or requeues each batch's deliveries, batches in the order they were taken.
async fn settle_in_order(
    state: Arc<AppState>,
    channel: lapin::Channel,
    queue: String,
    mut batches: tokio::sync::mpsc::Receiver<tokio::task::JoinHandle<Vec<Settlement>>>,
) {
    // After a batch task died, its tags are unknown: `multiple` could ack them, so from then
    // on every delivery is acked on its own (the lost ones are requeued with the channel).
    let mut lost_track = false;
    while let Some(work) = batches.recv().await {
        let settled = match work.await {
            Ok(settled) => settled,
            Err(error) => {
                warn!(queue, %error, "An ingest batch task died; its deliveries will be redelivered.");
                lost_track = true;
                continue;
            }
        };
        let all_ok = settled.iter().all(|(_, outcome)| outcome.is_ok());
        let acked = settled.iter().filter(|(_, outcome)| outcome.is_ok()).count() as u64;
        let requeued = settled.len() as u64 - acked;
        match settled.last() {
            Some((last, _)) if all_ok && !lost_track => {
                if let Err(error) =
                    channel.basic_ack(*last, BasicAckOptions { multiple: true }).await
                {
                    warn!(queue, %error, "Ack failed; the broker will redeliver and dedup will answer.");
                }
            }
            _ => {
                for (tag, outcome) in &settled {
                    let answered = match outcome {
                        Ok(()) => channel.basic_ack(*tag, BasicAckOptions::default()).await,
                        Err(error) => {
                            warn!(queue, %error, "Ingest failed; requeueing the delivery.");
                            channel
                                .basic_nack(
                                    *tag,
                                    BasicNackOptions {
                                        requeue: true,
                                        ..BasicNackOptions::default()
                                    },
                                )
                                .await
                        }
                    };
                    if let Err(error) = answered {
                        warn!(queue, %error, "Settling a delivery failed; the broker will redeliver it.");
                    }
                }
            }
        }
        for (tag, _) in &settled {
            state.settle(&queue, *tag);
        }
        metrics::counter!(m::CONSUMED, "queue" => queue.clone(), "outcome" => "ack")
            .increment(acked);
        if requeued > 0 {
            metrics::counter!(m::CONSUMED, "queue" => queue.clone(), "outcome" => "nack")
                .increment(requeued);
        }
    }
}

/// The properties of one delivery that ingest needs, owned so the batch can borrow them.
struct DeliveryMeta {
    doc_type: String,
    message_id: Option<String>,
    correlation_id: Option<String>,
    content_type: Option<String>,
    source_timestamp: Option<jiff::Timestamp>,
}

impl DeliveryMeta {
    fn of(adapter: &str, delivery: &Delivery) -> DeliveryMeta {
        let props = &delivery.properties;
        let doc_type = delivery
            .routing_key
            .as_str()
            .strip_prefix(adapter)
            .and_then(|r| r.strip_prefix('.'))
            .filter(|d| !d.is_empty())
            .map(str::to_owned)
            .or_else(|| props.kind().as_ref().map(|k| k.as_str().to_owned()))
            .unwrap_or_default();
        DeliveryMeta {
            doc_type,
            message_id: props
                .message_id()
                .as_ref()
                .map(|m| m.as_str().to_owned())
                .filter(|m| !m.is_empty()),
            correlation_id: props.correlation_id().as_ref().map(|c| c.as_str().to_owned()),
            content_type: props.content_type().as_ref().map(|c| c.as_str().to_owned()),
            source_timestamp: props
                .timestamp()
                .and_then(|t| jiff::Timestamp::from_second(t as i64).ok()),
        }
    }
}

/// Ingests one batch of deliveries; deliveries without a message id are rejected one by one.
async fn process_batch(
    state: Arc<AppState>,
    adapter: String,
    deliveries: Vec<Delivery>,
) -> Vec<Settlement> {
    let received_at = jiff::Timestamp::now();
    let metas: Vec<DeliveryMeta> =
        deliveries.iter().map(|d| DeliveryMeta::of(&adapter, d)).collect();
    let mut outcomes: Vec<Option<Result<(), IngestError>>> = Vec::with_capacity(deliveries.len());
    let mut inbound = Vec::with_capacity(deliveries.len());
    let mut positions = Vec::with_capacity(deliveries.len());
    for (index, (delivery, meta)) in deliveries.iter().zip(&metas).enumerate() {
        match &meta.message_id {
            Some(message_id) => {
                outcomes.push(None);
                positions.push(index);
                inbound.push(Inbound {
                    adapter: &adapter,
                    doc_type: &meta.doc_type,
                    body: &delivery.data,
                    content_type: meta.content_type.as_deref(),
                    message_id,
                    correlation_id: meta.correlation_id.as_deref(),
                    received_at,
                    source_timestamp: meta.source_timestamp,
                });
            }
            None => outcomes.push(Some(
                reject_without_id(
                    &state,
                    &adapter,
                    &meta.doc_type,
                    delivery,
                    meta.correlation_id.as_deref(),
                    received_at,
                )
                .await,
            )),
        }
    }
    if !inbound.is_empty() {
        for (position, result) in positions.into_iter().zip(ingest_batch(&state, &inbound).await) {
            outcomes[position] = Some(result.map(|_| ()));
        }
    }
    deliveries
        .iter()
        .zip(outcomes)
        .map(|(delivery, outcome)| {
            (delivery.delivery_tag, outcome.unwrap_or(Err(IngestError::NotConnected)))
        })
        .collect()
}

/// A message without `message_id` cannot be deduplicated: it is rejected with a receipt
/// saying so (contract §5), and its bytes kept in the rejected queue.
async fn reject_without_id(
    state: &AppState,
    adapter: &str,
    doc_type: &str,
    delivery: &Delivery,
    correlation_id: Option<&str>,
    received_at: jiff::Timestamp,
) -> Result<(), IngestError> {
    let digest = hex::encode(&<sha2::Sha256 as sha2::Digest>::digest(&delivery.data)[..12]);
    let synthetic = format!("missing-message-id:{digest}");
    let receipt = Receipt {
        message_id: String::new(),
        correlation_id: correlation_id.map(str::to_owned),
        adapter: adapter.to_owned(),
        doc_type: doc_type.to_owned(),
        status: ReceiptStatus::Rejected,
        violations: vec![crate::record::Violation {
            rule: "MESSAGE-ID".into(),
            path: String::new(),
            field: String::new(),
            code: None,
            message: "消息缺少 message_id 属性（幂等键），已拒收".into(),
            severity: crate::record::Severity::Error,
        }],
        records: Vec::new(),
        routed_to: Vec::new(),
        received_at: pipeline::rfc3339_shanghai(received_at),
    };
    let mut h = FieldTable::default();
    broker::put_str(&mut h, headers::SOURCE_ADAPTER, adapter);
    broker::put_str(&mut h, headers::DOC_TYPE, doc_type);
    broker::put_str(
        &mut h,
        headers::VIOLATIONS,
        &serde_json::to_string(&receipt).unwrap_or_default(),
    );
    let channel = publisher(state).await?;
    broker::publish_all(
        &channel,
        vec![Outgoing {
            exchange: broker::REJECTED_EXCHANGE.to_owned(),
            routing_key: adapter.to_owned(),
            body: delivery.data.clone(),
            properties: broker::properties(&synthetic, "application/octet-stream").with_headers(h),
            mandatory: true,
        }],
    )
    .await?;
    publish_receipt(state, &receipt).await?;
    Ok(())
}
