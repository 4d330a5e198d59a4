//! Shared state of a running gateway.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::config::CompiledConfig;
use crate::store::Store;

/// What every task of the gateway shares.
#[derive(Debug)]
pub struct AppState {
    pub config: Arc<CompiledConfig>,
    pub store: Store,
    /// True while a broker connection is up (for `/readyz` and the HTTP ingest).
    pub broker_up: AtomicBool,
    /// True while the broker reports a resource alarm (connection blocked): pushes get 503.
    pub broker_blocked: AtomicBool,
    /// Publisher channel of the current connection, replaced on reconnect.
    pub publisher: tokio::sync::RwLock<Option<lapin::Channel>>,
    /// Connection used for queue inspection (`/v1/queues`), replaced on reconnect.
    pub inspector: tokio::sync::RwLock<Option<lapin::Channel>>,
    pub prometheus: metrics_exporter_prometheus::PrometheusHandle,
}

impl AppState {
    pub fn is_ready(&self) -> bool {
        self.broker_up.load(Ordering::Relaxed)
    }
}
