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
pub const BREAKER_STATE: &str = "credgate_destination_breaker_state";
pub const SUPERSEDED: &str = "credgate_superseded_total";
pub const HELD: &str = "credgate_held_by_objection_total";
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

/// The samples of one metric in a Prometheus text rendering, each as its labels and value:
/// the console reads this instance's counters back instead of keeping a second set.
pub fn samples(
    rendered: &str,
    name: &str,
) -> Vec<(std::collections::BTreeMap<String, String>, f64)> {
    let mut out = Vec::new();
    for line in rendered.lines() {
        let Some(rest) = line.strip_prefix(name) else { continue };
        let (labels, value) = match rest.strip_prefix('{') {
            Some(inner) => match inner.rsplit_once('}') {
                Some((labels, value)) => (parse_labels(labels), value),
                None => continue,
            },
            // Another metric whose name starts with this one.
            None if !rest.starts_with(' ') => continue,
            None => (std::collections::BTreeMap::new(), rest),
        };
        if let Ok(value) = value.trim().parse::<f64>() {
            out.push((labels, value));
        }
    }
    out
}

/// `a="x",b="y \"q\""` → labels (the exposition format escapes `\`, `"` and newlines).
fn parse_labels(text: &str) -> std::collections::BTreeMap<String, String> {
    let mut labels = std::collections::BTreeMap::new();
    let mut chars = text.chars().peekable();
    loop {
        let name: String = chars.by_ref().take_while(|c| *c != '=').collect();
        if chars.next() != Some('"') {
            break;
        }
        let mut value = String::new();
        while let Some(c) = chars.next() {
            match c {
                '"' => break,
                '\\' => match chars.next() {
                    Some('n') => value.push('\n'),
                    Some(other) => value.push(other),
                    None => break,
                },
                other => value.push(other),
            }
        }
        labels.insert(name.trim_start_matches(',').trim().to_owned(), value);
        if chars.peek().is_none() {
            break;
        }
    }
    labels
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_are_read_back_from_the_rendering() {
        let text = "# TYPE credgate_upstream_requests_total counter\n\
            credgate_upstream_requests_total{destination=\"hb-credit\",outcome=\"delivered\"} 3\n\
            credgate_upstream_requests_total{destination=\"a \\\"b\\\"\",outcome=\"permanent\"} 1\n\
            credgate_upstream_requests_total_other 9\n\
            credgate_build_info 1\n";
        let found = samples(text, UPSTREAM_REQUESTS);
        assert_eq!(found.len(), 2);
        assert_eq!(found[0].0["destination"], "hb-credit");
        assert_eq!(found[0].0["outcome"], "delivered");
        assert!((found[0].1 - 3.0).abs() < f64::EPSILON);
        assert_eq!(found[1].0["destination"], "a \"b\"");
        assert_eq!(samples(text, BUILD_INFO).len(), 1);
    }
}
