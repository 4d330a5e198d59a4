//! Ingest: one inbound document → pure pipeline → every routed copy published to
//! `credgate.route` with confirms (mandatory) → dedup key and receipt committed → receipt
//! published. Only then is the source answered (AMQP ack, HTTP 202).
//!
//! The AMQP consumer for `credgate.in.<adapter>` lives here too; the HTTP push handler calls
//! the same `ingest` function.

use std::sync::Arc;
use std::time::Instant;

use futures_util::StreamExt;
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

/// Runs one inbound document through the gateway.
///
/// # Errors
///
/// Broker or store failures; nothing was acknowledged and the source must retry with the same
/// message id (copies already published are recognisable by their idempotency keys).
pub async fn ingest(state: &AppState, inbound: &Inbound<'_>) -> Result<IngestOutcome, IngestError> {
    let started = Instant::now();
    metrics::counter!(m::MESSAGES_RECEIVED, "adapter" => inbound.adapter.to_owned(), "doc_type" => inbound.doc_type.to_owned()).increment(1);
    if let Some(first) = state.store.receipt_for(inbound.message_id).await? {
        metrics::counter!(m::DUPLICATES, "adapter" => inbound.adapter.to_owned()).increment(1);
        let mut receipt: Receipt =
            serde_json::from_str(&first).unwrap_or_else(|_| Processed::empty_receipt(inbound));
        receipt.status = ReceiptStatus::Duplicate;
        publish_receipt(state, &receipt).await?;
        count_outcome(inbound, "duplicate");
        return Ok(IngestOutcome { receipt });
    }
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
    // The copies and the receipt go out together and share one wait for confirms. A crash
    // before the dedup key commits means the source's redelivery is processed again and
    // answered again: receipts are at least once, like everything else.
    let mut outgoing = outgoing_messages(inbound, &processed, &receipt);
    outgoing.push(receipt_message(&receipt, receipt_json.as_bytes().to_vec()));
    let channel = publisher(state).await?;
    broker::publish_all(&channel, outgoing).await?;
    state
        .store
        .write(Write::Message {
            message_id: inbound.message_id.to_owned(),
            adapter: inbound.adapter.to_owned(),
            doc_type: inbound.doc_type.to_owned(),
            status: status_name(receipt.status).to_owned(),
            receipt: receipt_json,
            received_at: receipt.received_at.clone(),
        })
        .await?;
    metrics::histogram!(m::PROCESSING_SECONDS, "adapter" => inbound.adapter.to_owned(), "doc_type" => inbound.doc_type.to_owned()).record(started.elapsed().as_secs_f64());
    count_outcome(
        inbound,
        if receipt.status == ReceiptStatus::Rejected { "rejected" } else { "ok" },
    );
    debug!(adapter = inbound.adapter, doc_type = inbound.doc_type, message_id = inbound.message_id, outcome = status_name(receipt.status), routed_to = ?receipt.routed_to, "Document ingested.");
    Ok(IngestOutcome { receipt })
}

fn count_outcome(inbound: &Inbound<'_>, outcome: &'static str) {
    metrics::counter!(m::MESSAGES_PROCESSED, "adapter" => inbound.adapter.to_owned(), "doc_type" => inbound.doc_type.to_owned(), "outcome" => outcome).increment(1);
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
                    let mut h = FieldTable::default();
                    broker::put_str(&mut h, headers::RECORD_KEY, canonical.record_key());
                    broker::put_str(&mut h, headers::RECORD_VERSION, canonical.record_version());
                    broker::put_str(
                        &mut h,
                        headers::CATALOG_ITEM,
                        canonical.get_str("catalog_item"),
                    );
                    broker::put_str(&mut h, headers::OPERATION, canonical.get_str("operation"));
                    broker::put_str(&mut h, headers::SOURCE_MESSAGE_ID, inbound.message_id);
                    broker::put_str(&mut h, headers::SOURCE_ADAPTER, inbound.adapter);
                    broker::put_int(&mut h, headers::ATTEMPT, 0);
                    out.push(Outgoing {
                        exchange: broker::ROUTE_EXCHANGE.to_owned(),
                        routing_key: copy.destination.clone(),
                        body: copy.payload.clone(),
                        properties: broker::properties(&copy.idempotency_key, copy.content_type)
                            .with_headers(h),
                        mandatory: true,
                    });
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

/// Consumes `credgate.in.<adapter>` until the channel dies or shutdown is requested.
/// Deliveries are processed concurrently up to the prefetch; each is acked only after its
/// ingest finished, and on the channel it came from.
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
    info!(adapter, queue, prefetch, "Ingest consumer started.");
    let tasks = tokio_util::task::TaskTracker::new();
    let result = loop {
        tokio::select! {
            _ = shutdown.cancelled() => break Ok(()),
            next = consumer.next() => match next {
                None => break Ok(()),
                Some(Err(error)) => break Err(BrokerError::from(error)),
                Some(Ok(delivery)) => {
                    let published = delivery.properties.timestamp().unwrap_or(0);
                    let tag = delivery.delivery_tag;
                    state.in_flight.start(&queue, tag, published);
                    let (state, adapter, queue) = (state.clone(), adapter.clone(), queue.clone());
                    tasks.spawn(async move {
                        handle_delivery(&state, &adapter, delivery).await;
                        state.settle(&queue, tag);
                    });
                }
            }
        }
    };
    // Stop taking new deliveries, then let the in-flight ones finish (their acks go to this
    // channel, which is still open); anything unfinished is requeued when the channel closes.
    let _ =
        channel.basic_cancel(consumer.tag(), lapin::options::BasicCancelOptions::default()).await;
    tasks.close();
    let _ = tokio::time::timeout(std::time::Duration::from_secs(30), tasks.wait()).await;
    let _ = channel.close(200, "shutdown".into()).await;
    state.in_flight.clear(&queue);
    result
}

async fn handle_delivery(state: &AppState, adapter: &str, delivery: Delivery) {
    let props = &delivery.properties;
    let routing_key = delivery.routing_key.as_str();
    let doc_type = routing_key
        .strip_prefix(adapter)
        .and_then(|r| r.strip_prefix('.'))
        .filter(|d| !d.is_empty())
        .map(str::to_owned)
        .or_else(|| props.kind().as_ref().map(|k| k.as_str().to_owned()))
        .unwrap_or_default();
    let message_id = props.message_id().as_ref().map(|m| m.as_str().to_owned());
    let correlation_id = props.correlation_id().as_ref().map(|c| c.as_str().to_owned());
    let content_type = props.content_type().as_ref().map(|c| c.as_str().to_owned());
    let received_at = jiff::Timestamp::now();
    let result = match &message_id {
        Some(message_id) if !message_id.is_empty() => {
            let inbound = Inbound {
                adapter,
                doc_type: &doc_type,
                body: &delivery.data,
                content_type: content_type.as_deref(),
                message_id,
                correlation_id: correlation_id.as_deref(),
                received_at,
                source_timestamp: props
                    .timestamp()
                    .and_then(|t| jiff::Timestamp::from_second(t as i64).ok()),
            };
            ingest(state, &inbound).await.map(|_| ())
        }
        _ => {
            reject_without_id(
                state,
                adapter,
                &doc_type,
                &delivery,
                correlation_id.as_deref(),
                received_at,
            )
            .await
        }
    };
    match result {
        Ok(()) => {
            metrics::counter!(m::CONSUMED, "queue" => broker::inbound_queue(adapter), "outcome" => "ack").increment(1);
            if let Err(error) = delivery.ack(BasicAckOptions::default()).await {
                warn!(adapter, %error, "Ack failed; the broker will redeliver and dedup will answer.");
            }
        }
        Err(error) => {
            warn!(adapter, doc_type, %error, "Ingest failed; requeueing the delivery.");
            metrics::counter!(m::CONSUMED, "queue" => broker::inbound_queue(adapter), "outcome" => "nack").increment(1);
            let _ = delivery
                .nack(BasicNackOptions { requeue: true, ..BasicNackOptions::default() })
                .await;
        }
    }
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
