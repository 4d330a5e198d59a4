//! Peers for exercising a running gateway: mock HTTP destinations that record what they
//! receive and answer as scripted, a platform publisher, and queue collectors. Used by the
//! `credgate demo` command (the sample platforms of the main job) and by the integration tests.
//! Everything binds to loopback.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::AtomicBool;
use std::sync::atomic::Ordering::SeqCst;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::post;
use futures_util::StreamExt;
use lapin::options::{BasicAckOptions, BasicConsumeOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use tokio_util::sync::CancellationToken;

/// How a mock destination answers.
#[derive(Debug, Clone)]
pub enum Behaviour {
    /// 200 `{"code":"0"}` always.
    Accept,
    /// 500 for the first `n` requests, then accept.
    FailFirst(usize),
    /// 500 while `until` is in the future, then accept.
    FailUntil(std::time::Instant),
    /// 400 for requests whose body contains the marker, accept the others.
    RejectContaining(String),
    /// 400 while the switch is on, then accept: a destination its operators fixed.
    RejectWhile(Arc<AtomicBool>),
}

/// One request a mock destination received.
#[derive(Debug, Clone)]
pub struct Received {
    pub idempotency_key: String,
    pub record_key: String,
    pub operation: String,
    pub body: Vec<u8>,
    pub status: u16,
    pub signature_ok: Option<bool>,
}

#[derive(Debug)]
struct MockState {
    behaviour: Behaviour,
    secret: Option<String>,
    requests: Mutex<Vec<Received>>,
}

/// A mock HTTP destination (the provincial credit site, a regulator).
#[derive(Debug, Clone)]
pub struct MockDestination {
    pub addr: SocketAddr,
    state: Arc<MockState>,
}

impl MockDestination {
    /// Starts a mock on `addr` (use port 0 for any) until `stop` is cancelled.
    ///
    /// # Errors
    ///
    /// The address cannot be bound.
    pub async fn start(
        addr: &str,
        behaviour: Behaviour,
        secret: Option<String>,
        stop: CancellationToken,
    ) -> std::io::Result<MockDestination> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(MockState { behaviour, secret, requests: Mutex::new(Vec::new()) });
        let app = Router::new().fallback(post(receive)).with_state(state.clone());
        tokio::spawn(
            axum::serve(listener, app).with_graceful_shutdown(stop.cancelled_owned()).into_future(),
        );
        Ok(MockDestination { addr, state })
    }

    pub fn requests(&self) -> Vec<Received> {
        self.state.requests.lock().map(|r| r.clone()).unwrap_or_default()
    }

    /// Idempotency keys answered 2xx, with how often each was accepted.
    pub fn accepted(&self) -> BTreeMap<String, usize> {
        let mut out = BTreeMap::new();
        for r in self.requests().into_iter().filter(|r| (200..300).contains(&r.status)) {
            *out.entry(r.idempotency_key).or_insert(0) += 1;
        }
        out
    }
}

async fn receive(
    State(state): State<Arc<MockState>>,
    headers: HeaderMap,
    body: Bytes,
) -> impl IntoResponse {
    let h =
        |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    let signature_ok = state.secret.as_ref().map(|secret| {
        crate::runtime::http::verify(
            secret,
            &h("x-credgate-timestamp"),
            &body,
            &h("x-credgate-signature"),
        )
    });
    let mut requests = state.requests.lock().unwrap_or_else(|e| e.into_inner());
    let n_before = requests.len();
    let status = if signature_ok == Some(false) {
        401
    } else {
        match &state.behaviour {
            Behaviour::Accept => 200,
            Behaviour::FailFirst(n) => {
                if n_before < *n {
                    500
                } else {
                    200
                }
            }
            Behaviour::FailUntil(until) => {
                if std::time::Instant::now() < *until {
                    500
                } else {
                    200
                }
            }
            Behaviour::RejectContaining(marker) => {
                if String::from_utf8_lossy(&body).contains(marker.as_str()) { 400 } else { 200 }
            }
            Behaviour::RejectWhile(on) => {
                if on.load(SeqCst) {
                    400
                } else {
                    200
                }
            }
        }
    };
    requests.push(Received {
        idempotency_key: h("idempotency-key"),
        record_key: h("x-credgate-record-key"),
        operation: h("x-credgate-operation"),
        body: body.to_vec(),
        status,
        signature_ok,
    });
    let body = if status == 200 {
        r#"{"code":"0","message":"接收成功"}"#
    } else {
        r#"{"code":"E500","message":"失败"}"#
    };
    (StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR), body)
}

/// Binds a durable queue to a platform exchange and collects what arrives (acking it).
///
/// # Errors
///
/// The broker refuses the declaration.
pub async fn collect_exchange(
    connection: &lapin::Connection,
    exchange: &str,
    queue: &str,
    stop: CancellationToken,
) -> Result<Arc<Mutex<Vec<(String, Vec<u8>)>>>, lapin::Error> {
    let channel = connection.create_channel().await?;
    channel
        .exchange_declare(
            exchange.into(),
            lapin::ExchangeKind::Topic,
            lapin::options::ExchangeDeclareOptions { durable: true, ..Default::default() },
            FieldTable::default(),
        )
        .await?;
    channel
        .queue_declare(
            queue.into(),
            QueueDeclareOptions { durable: true, ..Default::default() },
            FieldTable::default(),
        )
        .await?;
    channel
        .queue_bind(
            queue.into(),
            exchange.into(),
            "#".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await?;
    collect_queue(&channel, queue, stop).await
}

/// Collects `(message_id, body)` of everything arriving on a queue (acking it).
///
/// # Errors
///
/// The consumer cannot start.
pub async fn collect_queue(
    channel: &lapin::Channel,
    queue: &str,
    stop: CancellationToken,
) -> Result<Arc<Mutex<Vec<(String, Vec<u8>)>>>, lapin::Error> {
    let mut consumer = channel
        .basic_consume(
            queue.into(),
            format!("collector-{queue}").into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    let seen = Arc::new(Mutex::new(Vec::new()));
    let out = seen.clone();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = stop.cancelled() => break,
                next = consumer.next() => match next {
                    Some(Ok(delivery)) => {
                        let id = delivery.properties.message_id().as_ref().map(|m| m.as_str().to_owned()).unwrap_or_default();
                        if let Ok(mut seen) = out.lock() {
                            seen.push((id, delivery.data.clone()));
                        }
                        let _ = delivery.ack(BasicAckOptions::default()).await;
                    }
                    _ => break,
                }
            }
        }
    });
    Ok(seen)
}

/// Publishes one platform document to `credgate.in` with a confirm.
///
/// # Errors
///
/// The publish failed or was not confirmed.
pub async fn publish_document(
    channel: &lapin::Channel,
    adapter: &str,
    doc_type: &str,
    message_id: &str,
    content_type: &str,
    body: &[u8],
) -> Result<(), crate::broker::BrokerError> {
    crate::broker::publish_all(
        channel,
        vec![crate::broker::Outgoing {
            exchange: crate::broker::IN_EXCHANGE.to_owned(),
            routing_key: format!("{adapter}.{doc_type}"),
            body: body.to_vec(),
            properties: crate::broker::properties(message_id, content_type)
                .with_correlation_id(format!("corr-{message_id}").into()),
            mandatory: true,
        }],
    )
    .await
}
