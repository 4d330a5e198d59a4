//! Shared state of a running gateway.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

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
    /// Publish timestamps of deliveries being worked on, per consumed queue.
    pub in_flight: InFlight,
    /// Circuit breaker per destination; outlives reconnects so an outage is remembered.
    pub breakers: HashMap<String, Arc<crate::runtime::breaker::Breaker>>,
    /// "Now" for lifecycle decisions (movable only with `[lifecycle] test_clock = true`).
    pub clock: crate::runtime::lifecycle::Clock,
}

/// Deliveries taken from a queue and not yet settled, with the time each was published.
///
/// A consumer with prefetch reads a queue from its head, so the oldest unsettled delivery is
/// the oldest message of that queue: that is how credgate reports "oldest message age" without
/// the management plugin. Bounded by the prefetch of the consumers that fill it.
#[derive(Debug, Default)]
pub struct InFlight {
    queues: Mutex<HashMap<String, BTreeMap<u64, u64>>>,
}

impl InFlight {
    /// Starts tracking a delivery (`published_at` in unix seconds, 0 when unknown).
    pub fn start(&self, queue: &str, tag: u64, published_at: u64) {
        if let Ok(mut queues) = self.queues.lock() {
            queues.entry(queue.to_owned()).or_default().insert(tag, published_at);
        }
    }

    pub fn finish(&self, queue: &str, tag: u64) {
        if let Ok(mut queues) = self.queues.lock()
            && let Some(tags) = queues.get_mut(queue)
        {
            tags.remove(&tag);
        }
    }

    /// Forgets a queue's deliveries (its channel closed: the broker requeued them).
    pub fn clear(&self, queue: &str) {
        if let Ok(mut queues) = self.queues.lock() {
            queues.remove(queue);
        }
    }

    /// Age in seconds of the oldest unsettled delivery of a queue, if any.
    pub fn oldest_age(&self, queue: &str, now: u64) -> Option<u64> {
        let queues = self.queues.lock().ok()?;
        let oldest = queues.get(queue)?.values().filter(|ts| **ts > 0).min().copied()?;
        Some(now.saturating_sub(oldest))
    }
}

impl AppState {
    /// A delivery of `queue` was acked, nacked or moved: stop counting it as in flight.
    pub fn settle(&self, queue: &str, tag: u64) {
        self.in_flight.finish(queue, tag);
    }

    /// A breaker per destination of `config`.
    pub fn breakers_for(
        config: &CompiledConfig,
    ) -> HashMap<String, Arc<crate::runtime::breaker::Breaker>> {
        config
            .adapters
            .values()
            .filter_map(|a| {
                let d = a.destination.as_ref()?;
                Some((
                    a.id.clone(),
                    Arc::new(crate::runtime::breaker::Breaker::new(&a.id, d.breaker)),
                ))
            })
            .collect()
    }

    pub fn is_ready(&self) -> bool {
        self.broker_up.load(Ordering::Relaxed)
    }
}
