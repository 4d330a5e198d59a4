//! The admin API the operator console needs beyond the operations API: who the token belongs
//! to (`/v1/whoami`), receipts per source (`/v1/receipts`) and the queue table with the
//! counters rates are computed from (`/v1/queues/overview`).
//!
//! Rates are not kept here: the overview returns this instance's counters with the instant
//! they were read, and the console divides the difference of two polls by the time between
//! them. The server stays stateless, and a restart (counters back at zero) shows as "no rate"
//! instead of a wrong one.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::runtime::access::{self, Permission};
use crate::runtime::metrics as m;
use crate::runtime::state::AppState;
use crate::store::backend::parse_instant;

/// The routes, to be merged into the admin router.
pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/v1/whoami", get(whoami))
        .route("/v1/receipts", get(receipts))
        .route("/v1/queues/overview", get(overview))
}

fn error(status: StatusCode, message: &str) -> Response {
    (status, axum::Json(json!({ "error": message }))).into_response()
}

fn store_error(e: impl std::fmt::Display) -> Response {
    tracing::warn!(error = %e, "Console API: store error.");
    error(StatusCode::SERVICE_UNAVAILABLE, "store unavailable")
}

async fn whoami(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    let caller = match access::require(&state, &headers, Permission::Read) {
        Ok(caller) => caller,
        Err(denied) => return denied.into_response(),
    };
    let permissions: BTreeMap<&str, bool> = Permission::ALL
        .iter()
        .map(|p| {
            let name = match p {
                Permission::Read => "read",
                Permission::Reveal => "reveal",
                Permission::Replay => "replay",
                Permission::Pause => "pause",
            };
            (name, caller.may(*p))
        })
        .collect();
    axum::Json(json!({
        "name": caller.name,
        "role": caller.role.as_str(),
        "permissions": permissions,
    }))
    .into_response()
}

#[derive(Debug, Deserialize, Default)]
struct ReceiptParams {
    #[serde(default)]
    adapter: String,
    #[serde(default)]
    since: String,
    #[serde(default)]
    status: String,
    limit: Option<i64>,
}

/// Receipts of one source (`adapter`), newest first, with counts per status over the same
/// period; always lists the sources there are, so a caller without `adapter` learns them.
async fn receipts(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Query(params): Query<ReceiptParams>,
) -> Response {
    if let Err(denied) = access::require(&state, &headers, Permission::Read) {
        return denied.into_response();
    }
    let sources: Vec<Value> = state
        .config
        .adapters
        .values()
        .filter(|a| !a.inbound.is_empty())
        .map(|a| json!({ "adapter": a.id, "name": a.name }))
        .collect();
    if params.adapter.is_empty() {
        return axum::Json(json!({ "sources": sources, "receipts": [], "counts": {} }))
            .into_response();
    }
    if state.config.adapters.get(&params.adapter).is_none_or(|a| a.inbound.is_empty()) {
        return error(StatusCode::NOT_FOUND, "unknown source");
    }
    let since = if params.since.is_empty() {
        String::new()
    } else {
        match parse_instant(&params.since) {
            Ok(s) => s,
            Err(message) => return error(StatusCode::BAD_REQUEST, &message),
        }
    };
    let limit = params.limit.unwrap_or(100).clamp(1, 1000);
    let rows = state.store.receipts(&params.adapter, &since, &params.status, limit).await;
    let counts = state.store.receipt_counts(&params.adapter, &since).await;
    match (rows, counts) {
        (Ok(rows), Ok(counts)) => axum::Json(json!({
            "sources": sources,
            "adapter": params.adapter,
            "since": since,
            "counts": counts.into_iter().collect::<BTreeMap<_, _>>(),
            "receipts": rows,
        }))
        .into_response(),
        (Err(e), _) | (_, Err(e)) => store_error(e),
    }
}

/// What a topology queue is for and whose it is, from its name (`broker` names them
/// `credgate.<kind>.<owner>[.<tier>]`).
fn queue_kind(name: &str) -> (&'static str, &str) {
    let rest = name.strip_prefix("credgate.").unwrap_or(name);
    let (kind, owner) = rest.split_once('.').unwrap_or((rest, ""));
    match kind {
        "in" => ("inbound", owner),
        "out" => ("outbound", owner),
        "retry" => ("retry", owner.rsplit_once('.').map_or(owner, |(d, _)| d)),
        "dlq" => ("dead_letter", owner),
        "rejected" => ("rejected", owner),
        "receipts" => ("receipts", owner),
        _ => ("other", owner),
    }
}

/// Sums the samples of a counter by one label, over the samples matching `filter`.
fn sum_by(
    samples: &[(BTreeMap<String, String>, f64)],
    label: &str,
    filter: impl Fn(&BTreeMap<String, String>) -> bool,
) -> BTreeMap<String, f64> {
    let mut sums = BTreeMap::new();
    for (labels, value) in samples.iter().filter(|(l, _)| filter(l)) {
        if let Some(key) = labels.get(label) {
            *sums.entry(key.clone()).or_insert(0.0) += value;
        }
    }
    sums
}

/// The queue table (depth, consumers, age of the oldest message being worked on), the
/// destinations with their pause state, and the counters the console derives rates from.
async fn overview(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    if let Err(denied) = access::require(&state, &headers, Permission::Read) {
        return denied.into_response();
    }
    let mut queues = crate::runtime::http::queue_table(&state).await;
    let rendered = state.prometheus.render();
    let consumed = sum_by(&m::samples(&rendered, m::CONSUMED), "queue", |l| {
        l.get("outcome").is_some_and(|o| o == "ack")
    });
    let upstream = m::samples(&rendered, m::UPSTREAM_REQUESTS);
    let attempts = sum_by(&upstream, "destination", |_| true);
    let outcome = |o: &'static str| {
        sum_by(&upstream, "destination", move |l| l.get("outcome").is_some_and(|x| x == o))
    };
    let (delivered, retriable, permanent) =
        (outcome("delivered"), outcome("retriable"), outcome("permanent"));
    let dead = sum_by(&m::samples(&rendered, m::DEAD_LETTERED), "destination", |_| true);
    let received = sum_by(&m::samples(&rendered, m::MESSAGES_RECEIVED), "adapter", |_| true);
    let now = jiff::Timestamp::now();
    let now_secs = u64::try_from(now.as_second()).unwrap_or(0);
    for row in &mut queues {
        let Some(name) = row.get("queue").and_then(Value::as_str).map(str::to_owned) else {
            continue;
        };
        let (kind, owner) = queue_kind(&name);
        // What leaves the queue: acked inbound documents, or delivery attempts of its
        // destination (an outbound queue's consumer is the destination's worker).
        // A counter nobody incremented yet is zero, not unknown.
        let taken = match kind {
            "inbound" => Some(consumed.get(&name).copied().unwrap_or(0.0)),
            "outbound" => Some(attempts.get(owner).copied().unwrap_or(0.0)),
            _ => None,
        };
        row["kind"] = kind.into();
        row["owner"] = owner.into();
        row["oldest_age_secs"] = state.in_flight.oldest_age(&name, now_secs).into();
        row["taken_total"] = taken.into();
    }
    let destinations =
        match crate::runtime::ops::destination_list(&state.store, &state.config).await {
            Ok(mut list) => {
                for d in &mut list {
                    let id = d["destination"].as_str().unwrap_or_default().to_owned();
                    let get = |map: &BTreeMap<String, f64>| map.get(&id).copied().unwrap_or(0.0);
                    d["delivered_total"] = get(&delivered).into();
                    d["retriable_total"] = get(&retriable).into();
                    d["permanent_total"] = get(&permanent).into();
                    d["dead_lettered_total"] = get(&dead).into();
                }
                list
            }
            Err(e) => return store_error(e),
        };
    let sources: Vec<Value> = state
        .config
        .adapters
        .values()
        .filter(|a| !a.inbound.is_empty())
        .map(|a| {
            json!({
                "adapter": a.id, "name": a.name,
                "received_total": received.get(&a.id).copied().unwrap_or(0.0),
            })
        })
        .collect();
    axum::Json(json!({
        "at": crate::pipeline::rfc3339_shanghai(now),
        "at_ms": now.as_millisecond(),
        "broker_up": state.is_ready(),
        "queues": queues,
        "destinations": destinations,
        "sources": sources,
    }))
    .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_names_say_kind_and_owner() {
        assert_eq!(queue_kind("credgate.in.wh-ggzy"), ("inbound", "wh-ggzy"));
        assert_eq!(queue_kind("credgate.out.hb-credit"), ("outbound", "hb-credit"));
        assert_eq!(queue_kind("credgate.retry.hb-credit.2"), ("retry", "hb-credit"));
        assert_eq!(queue_kind("credgate.dlq._unmatched"), ("dead_letter", "_unmatched"));
        assert_eq!(queue_kind("credgate.receipts.wh-ggzy"), ("receipts", "wh-ggzy"));
    }
}
