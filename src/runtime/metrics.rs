//! Metric names (ecosystem conventions §D, prefix `credgate_`) and the recorder set-up.

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

pub const MESSAGES_RECEIVED: &str = "credgate_messages_received_total";
pub const MESSAGES_PROCESSED: &str = "credgate_messages_processed_total";
pub const PROCESSING_SECONDS: &str = "credgate_message_processing_duration_seconds";
pub const VALIDATION_FAILURES: &str = "credgate_validation_failures_total";
pub const IN_FLIGHT: &str = "credgate_messages_in_flight";
pub const CONNECTION_UP: &str = "credgate_amqp_connection_up";
pub const RECONNECTS: &str = "credgate_amqp_reconnects_total";
pub const PUBLISHED: &str = "credgate_amqp_published_total";
pub const CONSUMED: &str = "credgate_amqp_consumed_total";
pub const UPSTREAM_REQUESTS: &str = "credgate_upstream_requests_total";
pub const UPSTREAM_SECONDS: &str = "credgate_upstream_request_duration_seconds";
pub const UPSTREAM_RETRIES: &str = "credgate_upstream_retries_total";
pub const DEAD_LETTERED: &str = "credgate_dead_lettered_total";
pub const SUPERSEDED: &str = "credgate_superseded_total";
pub const DUPLICATES: &str = "credgate_idempotency_duplicates_total";
pub const QUEUE_DEPTH: &str = "credgate_queue_depth";
pub const QUEUE_OLDEST_AGE: &str = "credgate_queue_oldest_message_age_seconds";
pub const QUEUE_CONSUMERS: &str = "credgate_queue_consumers";
pub const HTTP_SECONDS: &str = "http_server_request_duration_seconds";
pub const BUILD_INFO: &str = "credgate_build_info";
pub const CALENDAR_LAST_YEAR: &str = "credgate_calendar_last_year_loaded";
pub const DEADLINE_OBLIGATIONS: &str = "credgate_deadline_obligations";

/// Installs the global recorder once and returns its handle; later calls (tests that start
/// several gateways in one process) get a fresh unregistered handle.
pub fn install() -> PrometheusHandle {
    static HANDLE: std::sync::OnceLock<PrometheusHandle> = std::sync::OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new();
            match builder.install_recorder() {
                Ok(handle) => handle,
                Err(_) => PrometheusBuilder::new().build_recorder().handle(),
            }
        })
        .clone()
}
