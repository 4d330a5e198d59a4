//! RabbitMQ: connection, the topology of contract §5, and publishing with confirms.
//!
//! Every queue is a quorum queue with an explicit `x-delivery-limit` and dead-letter target,
//! because RabbitMQ 3.10 has no defaults for either. Retries wait in per-destination TTL queues
//! that dead-letter back to `credgate.route`, so no delivery is held unacked while it waits.

use std::time::Duration;

use lapin::options::{
    BasicPublishOptions, ConfirmSelectOptions, ExchangeDeclareOptions, QueueBindOptions,
    QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, ExchangeKind};

use crate::config::CompiledConfig;

pub const IN_EXCHANGE: &str = "credgate.in";
pub const ROUTE_EXCHANGE: &str = "credgate.route";
pub const RETRY_EXCHANGE: &str = "credgate.retry";
pub const DLQ_EXCHANGE: &str = "credgate.dlq";
pub const REJECTED_EXCHANGE: &str = "credgate.rejected";
pub const RECEIPTS_EXCHANGE: &str = "credgate.receipts";
/// Routing key (and DLQ suffix) of records no route matched.
pub const UNMATCHED: &str = "_unmatched";

pub fn inbound_queue(adapter: &str) -> String {
    format!("credgate.in.{adapter}")
}
pub fn outbound_queue(destination: &str) -> String {
    format!("credgate.out.{destination}")
}
pub fn retry_queue(destination: &str, tier: usize) -> String {
    format!("credgate.retry.{destination}.{tier}")
}
pub fn dlq_queue(destination: &str) -> String {
    format!("credgate.dlq.{destination}")
}
pub fn rejected_queue(adapter: &str) -> String {
    format!("credgate.rejected.{adapter}")
}
pub fn receipts_queue(adapter: &str) -> String {
    format!("credgate.receipts.{adapter}")
}

/// Errors talking to the broker.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error("amqp: {0}")]
    Amqp(#[from] lapin::Error),
    #[error("publish to {exchange}/{routing_key} was returned as unroutable")]
    Returned { exchange: String, routing_key: String },
    #[error("publish to {exchange}/{routing_key} was nacked by the broker")]
    Nacked { exchange: String, routing_key: String },
    #[error("publish to {exchange} not confirmed within {secs} s")]
    ConfirmTimeout { exchange: String, secs: u64 },
    #[error("not published: an earlier publish on the channel failed ({0})")]
    Abandoned(String),
}

/// Opens a connection with the configured credentials and a heartbeat ≤ 15 s.
///
/// # Errors
///
/// The broker is unreachable or refuses the credentials.
pub async fn connect(config: &CompiledConfig, name: &str) -> Result<Connection, BrokerError> {
    let amqp = &config.process.amqp;
    let uri = amqp_uri(
        &amqp.url,
        &amqp.username,
        config.amqp_password.as_ref().map(|s| s.expose()),
        amqp.heartbeat_secs,
    );
    let properties = ConnectionProperties::default().with_connection_name(LongString::from(name));
    Ok(Connection::connect(&uri, properties).await?)
}

/// Builds the URI with credentials and heartbeat; never logged.
pub fn amqp_uri(url: &str, username: &str, password: Option<&str>, heartbeat_secs: u16) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("amqp", url));
    let credentials = match password {
        Some(password) => format!("{}:{}@", pct(username), pct(password)),
        None => format!("{}@", pct(username)),
    };
    let separator = if rest.contains('?') { '&' } else { '?' };
    format!("{scheme}://{credentials}{rest}{separator}heartbeat={heartbeat_secs}")
}

fn pct(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn quorum_args(delivery_limit: u32, dlx: &str, dlx_key: &str) -> FieldTable {
    let mut args = FieldTable::default();
    args.insert("x-queue-type".into(), AMQPValue::LongString("quorum".into()));
    args.insert("x-delivery-limit".into(), AMQPValue::LongInt(delivery_limit as i32));
    args.insert("x-dead-letter-exchange".into(), AMQPValue::LongString(dlx.into()));
    args.insert("x-dead-letter-routing-key".into(), AMQPValue::LongString(dlx_key.into()));
    args
}

fn durable() -> QueueDeclareOptions {
    QueueDeclareOptions { durable: true, ..QueueDeclareOptions::default() }
}

async fn exchange(channel: &Channel, name: &str, kind: ExchangeKind) -> Result<(), BrokerError> {
    channel
        .exchange_declare(
            name.into(),
            kind,
            ExchangeDeclareOptions { durable: true, ..ExchangeDeclareOptions::default() },
            FieldTable::default(),
        )
        .await?;
    Ok(())
}

async fn queue(channel: &Channel, name: &str, args: FieldTable) -> Result<(), BrokerError> {
    channel.queue_declare(name.into(), durable(), args).await?;
    Ok(())
}

async fn bind(
    channel: &Channel,
    queue: &str,
    exchange: &str,
    key: &str,
) -> Result<(), BrokerError> {
    channel
        .queue_bind(
            queue.into(),
            exchange.into(),
            key.into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await?;
    Ok(())
}

/// What `declare_topology` created, for `credgate topology status`.
#[derive(Debug, Default, Clone)]
pub struct TopologySummary {
    pub exchanges: Vec<String>,
    pub queues: Vec<String>,
}

/// Declares the whole topology (idempotent).
///
/// # Errors
///
/// The broker refuses a declaration (e.g. an existing queue with other arguments).
pub async fn declare_topology(
    channel: &Channel,
    config: &CompiledConfig,
) -> Result<TopologySummary, BrokerError> {
    let limit = config.process.amqp.delivery_limit;
    let mut summary = TopologySummary::default();
    for (name, kind) in [
        (IN_EXCHANGE, ExchangeKind::Topic),
        (ROUTE_EXCHANGE, ExchangeKind::Direct),
        (RETRY_EXCHANGE, ExchangeKind::Direct),
        (DLQ_EXCHANGE, ExchangeKind::Direct),
        (REJECTED_EXCHANGE, ExchangeKind::Direct),
        (RECEIPTS_EXCHANGE, ExchangeKind::Topic),
    ] {
        exchange(channel, name, kind).await?;
        summary.exchanges.push(name.to_owned());
    }
    let mut dlq = |name: String| {
        summary.queues.push(name.clone());
        name
    };
    // Unmatched records are parked where operators look for dead letters.
    let unmatched = dlq(dlq_queue(UNMATCHED));
    queue(channel, &unmatched, terminal_args()).await?;
    bind(channel, &unmatched, DLQ_EXCHANGE, UNMATCHED).await?;

    for adapter in config.adapters.values() {
        if adapter.inbound_transports.iter().any(|t| t == "amqp") {
            let inq = dlq(inbound_queue(&adapter.id));
            // A document that keeps crashing ingest ends in the adapter's rejected queue.
            queue(channel, &inq, quorum_args(limit, REJECTED_EXCHANGE, &adapter.id)).await?;
            bind(channel, &inq, IN_EXCHANGE, &format!("{}.#", adapter.id)).await?;
        }
        if !adapter.inbound.is_empty() {
            let rejected = dlq(rejected_queue(&adapter.id));
            queue(channel, &rejected, terminal_args()).await?;
            bind(channel, &rejected, REJECTED_EXCHANGE, &adapter.id).await?;
            let receipts = dlq(receipts_queue(&adapter.id));
            queue(channel, &receipts, receipts_args()).await?;
            bind(channel, &receipts, RECEIPTS_EXCHANGE, &adapter.id).await?;
        }
        if let Some(destination) = &adapter.destination {
            let out = dlq(outbound_queue(&adapter.id));
            queue(channel, &out, quorum_args(limit, DLQ_EXCHANGE, &adapter.id)).await?;
            bind(channel, &out, ROUTE_EXCHANGE, &adapter.id).await?;
            for (tier, secs) in destination.raw.retry.tiers_secs.iter().enumerate() {
                let rq = dlq(retry_queue(&adapter.id, tier));
                let mut args = quorum_args(limit, ROUTE_EXCHANGE, &adapter.id);
                // The queue TTL caps the per-message (jittered) expiration.
                args.insert("x-message-ttl".into(), AMQPValue::LongLongInt((secs * 1250) as i64));
                queue(channel, &rq, args).await?;
                bind(channel, &rq, RETRY_EXCHANGE, &format!("{}.{tier}", adapter.id)).await?;
            }
            let dead = dlq(dlq_queue(&adapter.id));
            queue(channel, &dead, terminal_args()).await?;
            bind(channel, &dead, DLQ_EXCHANGE, &adapter.id).await?;
        }
    }
    Ok(summary)
}

/// Every queue of the topology, in a stable order.
pub fn queue_names(config: &CompiledConfig) -> Vec<String> {
    let mut names = vec![dlq_queue(UNMATCHED)];
    for adapter in config.adapters.values() {
        if adapter.inbound_transports.iter().any(|t| t == "amqp") {
            names.push(inbound_queue(&adapter.id));
        }
        if !adapter.inbound.is_empty() {
            names.push(rejected_queue(&adapter.id));
            names.push(receipts_queue(&adapter.id));
        }
        if let Some(destination) = &adapter.destination {
            names.push(outbound_queue(&adapter.id));
            for tier in 0..destination.raw.retry.tiers_secs.len() {
                names.push(retry_queue(&adapter.id, tier));
            }
            names.push(dlq_queue(&adapter.id));
        }
    }
    names
}

/// Terminal queues (dead letters, rejected input) dead-letter nowhere.
fn terminal_args() -> FieldTable {
    let mut args = FieldTable::default();
    args.insert("x-queue-type".into(), AMQPValue::LongString("quorum".into()));
    args
}

/// Receipt queues keep the latest 100 000 receipts for platforms that poll.
fn receipts_args() -> FieldTable {
    let mut args = terminal_args();
    args.insert("x-max-length".into(), AMQPValue::LongLongInt(100_000));
    args
}

/// A channel in confirm mode for publishing.
///
/// # Errors
///
/// The channel cannot be opened.
pub async fn confirm_channel(connection: &Connection) -> Result<Channel, BrokerError> {
    let channel = connection.create_channel().await?;
    channel.confirm_select(ConfirmSelectOptions::default()).await?;
    Ok(channel)
}

/// One message to publish.
#[derive(Debug, Clone)]
pub struct Outgoing {
    pub exchange: String,
    pub routing_key: String,
    pub body: Vec<u8>,
    pub properties: BasicProperties,
    /// `mandatory`: an unroutable publish is an error, not a silent drop.
    pub mandatory: bool,
}

/// How long a publish may wait for its confirm before it counts as unknown.
pub const CONFIRM_TIMEOUT: Duration = Duration::from_secs(30);

/// Publishes all messages (pipelined) and waits for every confirm.
///
/// # Errors
///
/// Any publish fails, is nacked, returned (mandatory) or not confirmed in time. Some of the
/// messages may have been stored anyway: callers must treat this as "unknown" and retry with
/// the same message ids.
pub async fn publish_all(channel: &Channel, messages: Vec<Outgoing>) -> Result<(), BrokerError> {
    publish_groups(channel, vec![messages]).await.pop().unwrap_or(Ok(()))
}

/// Publishes several groups of messages, all pipelined on one channel, and tells per group
/// whether every one of its messages was confirmed. The batched ingest publishes the copies
/// and receipts of a whole batch of inbound documents this way: one wait for all confirms,
/// yet one unroutable copy fails only the document it belongs to.
pub async fn publish_groups(
    channel: &Channel,
    groups: Vec<Vec<Outgoing>>,
) -> Vec<Result<(), BrokerError>> {
    let mut results: Vec<Result<(), BrokerError>> = Vec::with_capacity(groups.len());
    let mut pending = Vec::with_capacity(groups.iter().map(Vec::len).sum());
    let mut publish_failed: Option<String> = None;
    for (group, messages) in groups.into_iter().enumerate() {
        results.push(Ok(()));
        for message in messages {
            if let Some(reason) = &publish_failed {
                results[group] = Err(BrokerError::Abandoned(reason.clone()));
                break;
            }
            let publish = channel
                .basic_publish(
                    ShortString::from(message.exchange.as_str()),
                    ShortString::from(message.routing_key.as_str()),
                    BasicPublishOptions {
                        mandatory: message.mandatory,
                        ..BasicPublishOptions::default()
                    },
                    &message.body,
                    message.properties,
                )
                .await;
            match publish {
                Ok(confirm) => {
                    pending.push((group, message.exchange, message.routing_key, confirm))
                }
                Err(error) => {
                    // The channel is gone: nothing after this can be published on it.
                    publish_failed = Some(error.to_string());
                    results[group] = Err(BrokerError::Amqp(error));
                    break;
                }
            }
        }
    }
    let deadline = tokio::time::Instant::now() + CONFIRM_TIMEOUT;
    for (group, exchange, routing_key, confirm) in pending {
        let outcome = match tokio::time::timeout_at(deadline, confirm).await {
            Err(_) => {
                Err(BrokerError::ConfirmTimeout { exchange, secs: CONFIRM_TIMEOUT.as_secs() })
            }
            Ok(Err(error)) => Err(BrokerError::Amqp(error)),
            Ok(Ok(confirmation)) => {
                if confirmation.is_nack() {
                    Err(BrokerError::Nacked { exchange, routing_key })
                } else if confirmation.take_message().is_some() {
                    Err(BrokerError::Returned { exchange, routing_key })
                } else {
                    Ok(())
                }
            }
        };
        if let Err(error) = outcome
            && results[group].is_ok()
        {
            results[group] = Err(error);
        }
    }
    results
}

/// Persistent message properties with a message id.
pub fn properties(message_id: &str, content_type: &str) -> BasicProperties {
    BasicProperties::default()
        .with_delivery_mode(2)
        .with_message_id(message_id.into())
        .with_content_type(content_type.into())
        .with_app_id(concat!("credgate/", env!("CARGO_PKG_VERSION")).into())
        .with_timestamp(jiff::Timestamp::now().as_second().max(0) as u64)
}

/// A string header value.
pub fn header_str(headers: &FieldTable, key: &str) -> Option<String> {
    match headers.inner().get(key)? {
        AMQPValue::LongString(s) => Some(String::from_utf8_lossy(s.as_bytes()).into_owned()),
        AMQPValue::ShortString(s) => Some(s.as_str().to_owned()),
        _ => None,
    }
}

/// An integer header value.
pub fn header_int(headers: &FieldTable, key: &str) -> Option<i64> {
    match headers.inner().get(key)? {
        AMQPValue::LongLongInt(n) => Some(*n),
        AMQPValue::LongInt(n) => Some(i64::from(*n)),
        AMQPValue::ShortInt(n) => Some(i64::from(*n)),
        AMQPValue::ShortShortInt(n) => Some(i64::from(*n)),
        AMQPValue::LongUInt(n) => Some(i64::from(*n)),
        _ => None,
    }
}

pub fn put_str(headers: &mut FieldTable, key: &str, value: &str) {
    headers.insert(key.into(), AMQPValue::LongString(value.into()));
}

pub fn put_int(headers: &mut FieldTable, key: &str, value: i64) {
    headers.insert(key.into(), AMQPValue::LongLongInt(value));
}
