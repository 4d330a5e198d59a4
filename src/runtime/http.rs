//! HTTP: the ingest listener for platforms that push (`POST /v1/inbound/{adapter}/{doc_type}`,
//! HMAC-signed) and the admin listener (health, readiness, metrics, queue table).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use hmac::Mac;
use lapin::options::QueueDeclareOptions;
use lapin::types::FieldTable;
use serde_json::json;

use crate::broker;
use crate::pipeline::{Inbound, ReceiptStatus};
use crate::runtime::ingest::{self, IngestError};
use crate::runtime::metrics as m;
use crate::runtime::state::AppState;

/// Concurrent pushes per adapter before answering 429 (fairness between platforms).
const PUSHES_PER_ADAPTER: usize = 64;

/// State of the ingest listener.
#[derive(Debug, Clone)]
pub struct IngestHttp {
    state: Arc<AppState>,
    /// Signatures seen inside the window: a replayed request is refused even before dedup.
    replay: Arc<std::sync::Mutex<HashMap<String, i64>>>,
    /// Per-adapter concurrency limits.
    limits: Arc<HashMap<String, Arc<tokio::sync::Semaphore>>>,
}

/// The ingest router.
pub fn ingest_router(state: Arc<AppState>) -> Router {
    let limits = state
        .config
        .adapters
        .keys()
        .map(|id| (id.clone(), Arc::new(tokio::sync::Semaphore::new(PUSHES_PER_ADAPTER))))
        .collect();
    let max_body = state.config.process.http.max_body_bytes;
    let ingest = IngestHttp { state, replay: Arc::default(), limits: Arc::new(limits) };
    Router::new()
        .route("/v1/inbound/{adapter}/{doc_type}", post(push))
        .route("/healthz", get(|| async { "ok" }))
        .layer(DefaultBodyLimit::max(max_body))
        .with_state(ingest)
}

fn problem(status: StatusCode, message: &str) -> Response {
    let mut response = (status, axum::Json(json!({ "error": message }))).into_response();
    if status == StatusCode::SERVICE_UNAVAILABLE || status == StatusCode::TOO_MANY_REQUESTS {
        response.headers_mut().insert(header::RETRY_AFTER, header::HeaderValue::from_static("5"));
    }
    response
}

async fn push(
    State(http): State<IngestHttp>,
    Path((adapter_id, doc_type)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let started = std::time::Instant::now();
    let response = push_inner(&http, &adapter_id, &doc_type, &headers, &body).await;
    metrics::histogram!(m::HTTP_SECONDS, "http_route" => "/v1/inbound/{adapter}/{doc_type}", "http_request_method" => "POST", "http_response_status_code" => response.status().as_u16().to_string())
        .record(started.elapsed().as_secs_f64());
    response
}

async fn push_inner(
    http: &IngestHttp,
    adapter_id: &str,
    doc_type: &str,
    headers: &HeaderMap,
    body: &Bytes,
) -> Response {
    let state = &http.state;
    let Some(adapter) = state.config.adapters.get(adapter_id) else {
        return problem(StatusCode::NOT_FOUND, "unknown adapter");
    };
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
    // Authentication first: an unauthenticated caller learns nothing else.
    let (Some(key_id), Some(timestamp), Some(signature)) = (
        header("x-credgate-key-id"),
        header("x-credgate-timestamp"),
        header("x-credgate-signature"),
    ) else {
        return problem(StatusCode::UNAUTHORIZED, "missing signature headers");
    };
    let Some((expected_key_id, Some(secret))) = &adapter.inbound_auth else {
        return problem(StatusCode::FORBIDDEN, "adapter does not accept HTTP pushes");
    };
    if !adapter.inbound_transports.iter().any(|t| t == "http") {
        return problem(StatusCode::FORBIDDEN, "adapter does not accept HTTP pushes");
    }
    if &key_id != expected_key_id {
        let other = state
            .config
            .adapters
            .values()
            .any(|a| a.inbound_auth.as_ref().is_some_and(|(k, _)| *k == key_id));
        return if other {
            problem(StatusCode::FORBIDDEN, "key is not allowed to push for this adapter")
        } else {
            problem(StatusCode::UNAUTHORIZED, "unknown key id")
        };
    }
    let Ok(ts) = timestamp.parse::<i64>() else {
        return problem(StatusCode::UNAUTHORIZED, "bad timestamp");
    };
    let now = jiff::Timestamp::now().as_second();
    let window = state.config.process.http.signature_window_secs as i64;
    if (now - ts).abs() > window {
        return problem(StatusCode::UNAUTHORIZED, "timestamp outside the signature window");
    }
    if !verify(secret.expose(), &timestamp, body, &signature) {
        return problem(StatusCode::UNAUTHORIZED, "bad signature");
    }
    {
        let mut seen = http.replay.lock().unwrap_or_else(|e| e.into_inner());
        seen.retain(|_, at| (now - *at).abs() <= window);
        if seen.contains_key(&signature) {
            return problem(StatusCode::UNAUTHORIZED, "replayed request");
        }
        if seen.len() >= 200_000 {
            return problem(
                StatusCode::TOO_MANY_REQUESTS,
                "too many requests in the signature window",
            );
        }
        seen.insert(signature.clone(), now);
    }
    let Some(message_id) = header("x-credgate-message-id")
        .or_else(|| header("idempotency-key"))
        .filter(|m| !m.is_empty())
    else {
        return (StatusCode::UNPROCESSABLE_ENTITY, axum::Json(json!({
            "status": "rejected",
            "violations": [{"rule": "MESSAGE-ID", "path": "", "field": "", "message": "缺少 X-Credgate-Message-Id（幂等键）", "severity": "error"}]
        }))).into_response();
    };
    if !state.broker_up.load(Ordering::Relaxed) || state.broker_blocked.load(Ordering::Relaxed) {
        return problem(StatusCode::SERVICE_UNAVAILABLE, "broker unavailable");
    }
    let Some(permit) = http.limits.get(adapter_id).and_then(|s| s.clone().try_acquire_owned().ok())
    else {
        return problem(
            StatusCode::TOO_MANY_REQUESTS,
            "too many concurrent pushes for this adapter",
        );
    };
    let content_type = header("content-type");
    let correlation = header("x-correlation-id");
    let inbound = Inbound {
        adapter: adapter_id,
        doc_type,
        body,
        content_type: content_type.as_deref(),
        message_id: &message_id,
        correlation_id: correlation.as_deref(),
        received_at: jiff::Timestamp::now(),
        source_timestamp: None,
    };
    // A push never waits forever: past the deadline the platform retries with the same id.
    // A broker resource alarm blocks publishing without failing it: answer 503 as soon as
    // the broker says so instead of holding the platform until the confirm times out. The
    // dedup key is only written after confirms, so the platform's retry is ingested again.
    let result = tokio::select! {
        r = tokio::time::timeout(Duration::from_secs(60), ingest::ingest(state, &inbound)) => r,
        _ = broker_blocked(state) => {
            drop(permit);
            return problem(StatusCode::SERVICE_UNAVAILABLE, "broker resource alarm: publishing blocked");
        }
    };
    drop(permit);
    match result {
        Ok(Ok(outcome)) => {
            let status = match outcome.receipt.status {
                ReceiptStatus::Rejected => StatusCode::UNPROCESSABLE_ENTITY,
                ReceiptStatus::Duplicate => StatusCode::OK,
                _ => StatusCode::ACCEPTED,
            };
            (status, axum::Json(outcome.receipt)).into_response()
        }
        Ok(Err(IngestError::NotConnected)) | Err(_) => {
            problem(StatusCode::SERVICE_UNAVAILABLE, "broker unavailable")
        }
        Ok(Err(error)) => {
            tracing::warn!(adapter = adapter_id, doc_type, %error, "Push not ingested.");
            problem(StatusCode::SERVICE_UNAVAILABLE, "not stored; retry with the same message id")
        }
    }
}

/// Resolves once the broker blocks publishing (resource alarm) or the connection drops.
async fn broker_blocked(state: &AppState) {
    loop {
        if state.broker_blocked.load(Ordering::Relaxed) || !state.broker_up.load(Ordering::Relaxed)
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Constant-time check of `HMAC-SHA256(secret, timestamp + "\n" + body)` given in hex.
pub fn verify(secret: &str, timestamp: &str, body: &[u8], signature_hex: &str) -> bool {
    let Ok(signature) = hex::decode(signature_hex.trim()) else { return false };
    let Ok(mut mac) = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()) else {
        return false;
    };
    mac.update(timestamp.as_bytes());
    mac.update(b"\n");
    mac.update(body);
    mac.verify_slice(&signature).is_ok()
}

/// The admin router: health, readiness, metrics and the queue table.
pub fn admin_router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_text))
        .route("/v1/queues", get(queues))
        .merge(crate::runtime::admin_ops::routes())
        .merge(crate::runtime::console_api::routes())
        .merge(crate::runtime::console::routes())
        .with_state(state)
}

async fn readyz(State(state): State<Arc<AppState>>) -> Response {
    let broker = state.is_ready();
    let store = state.store.ping().await;
    let body = json!({"broker": broker, "store": store, "config": true});
    let status = if broker && store { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, axum::Json(body)).into_response()
}

/// Whether the request carries any known admin token (read access; handlers that change or
/// reveal something check `access::require` with their permission instead).
pub(crate) fn authorized(state: &AppState, headers: &HeaderMap) -> bool {
    crate::runtime::access::caller(state, headers).is_some()
}

/// Depth and consumers of every queue of the topology (passive declares).
pub async fn queue_table(state: &AppState) -> Vec<serde_json::Value> {
    let Some(channel) = state.inspector.read().await.clone() else { return Vec::new() };
    let names = broker::queue_names(&state.config);
    let mut rows = Vec::with_capacity(names.len());
    for name in names {
        let passive =
            QueueDeclareOptions { passive: true, durable: true, ..QueueDeclareOptions::default() };
        match channel.queue_declare(name.as_str().into(), passive, FieldTable::default()).await {
            Ok(queue) => {
                metrics::gauge!(m::QUEUE_DEPTH, "queue" => name.clone())
                    .set(f64::from(queue.message_count()));
                metrics::gauge!(m::QUEUE_CONSUMERS, "queue" => name.clone())
                    .set(f64::from(queue.consumer_count()));
                rows.push(json!({"queue": name, "depth": queue.message_count(), "consumers": queue.consumer_count()}));
            }
            Err(error) => rows.push(json!({"queue": name, "error": error.to_string()})),
        }
    }
    rows
}

async fn queues(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    if !authorized(&state, &headers) {
        return problem(StatusCode::UNAUTHORIZED, "admin token required");
    }
    axum::Json(queue_table(&state).await).into_response()
}

async fn metrics_text(State(state): State<Arc<AppState>>) -> Response {
    // Queue gauges are refreshed at scrape time so they are never stale.
    let _ = queue_table(&state).await;
    metrics::gauge!(m::CONNECTION_UP).set(if state.is_ready() { 1.0 } else { 0.0 });
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], state.prometheus.render())
        .into_response()
}
