//! The operations API on the admin listener (token auth, permissions by role as
//! `runtime::access` says): record lineage, dead letters and their replay, destination
//! pause/resume, and the audit log. Revealing personal identifiers is audited.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::json;

use crate::runtime::access::{self, Permission};
use crate::runtime::ops::{self, ReplayOptions};
use crate::runtime::state::AppState;
use crate::store::backend::parse_instant;
use crate::store::dlq::DlqFilter;
use crate::store::lineage::RecordQuery;

/// The routes, to be merged into the admin router.
pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/v1/records", get(records))
        .route("/v1/dlq", get(dlq_list))
        .route("/v1/dlq/replay", post(dlq_replay))
        .route("/v1/dlq/purge", post(dlq_purge))
        .route("/v1/dlq/{id}", get(dlq_show))
        .route("/v1/destinations", get(destinations))
        .route("/v1/destinations/{id}/{action}", post(destination_action))
        .route("/v1/audit", get(audit_list))
        .route("/v1/audit/verify", get(audit_verify))
        .merge(crate::runtime::lifecycle_api::routes())
}

fn error(status: StatusCode, message: &str) -> Response {
    (status, axum::Json(json!({ "error": message }))).into_response()
}

fn store_error(e: impl std::fmt::Display) -> Response {
    tracing::warn!(error = %e, "Operations API: store error.");
    error(StatusCode::SERVICE_UNAVAILABLE, "store unavailable")
}

#[derive(Debug, Deserialize, Default)]
struct RecordParams {
    uscc: Option<String>,
    id_no: Option<String>,
    key: Option<String>,
    doc_no: Option<String>,
    deal_code: Option<String>,
    message_id: Option<String>,
    #[serde(default)]
    reveal: bool,
    limit: Option<i64>,
}

async fn records(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Query(params): Query<RecordParams>,
) -> Response {
    let caller = match access::require(&state, &headers, Permission::to_show(params.reveal)) {
        Ok(caller) => caller,
        Err(denied) => return denied.into_response(),
    };
    let mut queries = Vec::new();
    if let Some(v) = params.uscc {
        queries.push(RecordQuery::Uscc(v));
    }
    if let Some(v) = params.id_no {
        queries.push(RecordQuery::IdNo(v));
    }
    if let Some(v) = params.key {
        queries.push(RecordQuery::Key(v));
    }
    if let Some(v) = params.doc_no {
        queries.push(RecordQuery::DocNo(v));
    }
    if let Some(v) = params.deal_code {
        queries.push(RecordQuery::DealCode(v));
    }
    if let Some(v) = params.message_id {
        queries.push(RecordQuery::MessageId(v));
    }
    let [query] = queries.as_slice() else {
        return error(
            StatusCode::BAD_REQUEST,
            "give exactly one of uscc, id_no, key, doc_no, deal_code, message_id",
        );
    };
    let limit = params.limit.unwrap_or(50).clamp(1, 500);
    match state.store.search_records(query, limit).await {
        Ok(histories) => {
            if params.reveal {
                let keys: Vec<&str> = histories.iter().map(|h| h.record_key.as_str()).collect();
                // The query as `Debug` prints it: an ID number stays masked in the log.
                let details = json!({ "query": format!("{query:?}"), "record_keys": keys });
                if let Err(e) =
                    state.store.audit(&caller.actor, "records.reveal", "records", &details).await
                {
                    return store_error(e);
                }
            }
            let mut shown: Vec<_> = histories
                .iter()
                .map(|h| ops::present_history(&state.config.catalog, h, params.reveal))
                .collect();
            let now = state.clock.now();
            for record in &mut shown {
                if let Err(e) =
                    crate::runtime::lifecycle::annotate(&state.config, &state.store, record, now)
                        .await
                {
                    return store_error(e);
                }
            }
            axum::Json(json!({ "records": shown })).into_response()
        }
        Err(e) => store_error(e),
    }
}

#[derive(Debug, Deserialize, Default)]
struct DlqParams {
    #[serde(default)]
    destination: String,
    #[serde(default)]
    reason: String,
    #[serde(default)]
    since: String,
    #[serde(default)]
    until: String,
    #[serde(default)]
    record_key: String,
    #[serde(default)]
    source: String,
    #[serde(default)]
    include_replayed: bool,
    #[serde(default)]
    limit: i64,
    // Replay and purge.
    #[serde(default)]
    dry_run: bool,
    /// Replay exactly these dead letters (the console's row button) instead of a filter.
    #[serde(default)]
    dead_ids: Vec<String>,
    #[serde(default)]
    rate: f64,
}

impl DlqParams {
    fn filter(&self) -> Result<DlqFilter, String> {
        let instant = |s: &str| if s.is_empty() { Ok(String::new()) } else { parse_instant(s) };
        Ok(DlqFilter {
            destination: self.destination.clone(),
            reason: self.reason.clone(),
            since: instant(&self.since)?,
            until: instant(&self.until)?,
            record_key: self.record_key.clone(),
            source: self.source.clone(),
            include_replayed: self.include_replayed,
            limit: self.limit,
        })
    }
}

async fn dlq_list(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Query(params): Query<DlqParams>,
) -> Response {
    if let Err(denied) = access::require(&state, &headers, Permission::Read) {
        return denied.into_response();
    }
    let filter = match params.filter() {
        Ok(f) => f,
        Err(message) => return error(StatusCode::BAD_REQUEST, &message),
    };
    match state.store.dead_letters(&filter).await {
        Ok(letters) => axum::Json(json!({ "dead_letters": letters })).into_response(),
        Err(e) => store_error(e),
    }
}

#[derive(Debug, Deserialize, Default)]
struct ShowParams {
    #[serde(default)]
    reveal: bool,
}

async fn dlq_show(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(params): Query<ShowParams>,
) -> Response {
    let caller = match access::require(&state, &headers, Permission::to_show(params.reveal)) {
        Ok(caller) => caller,
        Err(denied) => return denied.into_response(),
    };
    match ops::dead_letter_view(&state.store, &state.config.catalog, &id, params.reveal).await {
        Ok(Some(view)) => {
            if params.reveal
                && let Err(e) =
                    state.store.audit(&caller.actor, "dlq.reveal", &id, &json!({})).await
            {
                return store_error(e);
            }
            axum::Json(view).into_response()
        }
        Ok(None) => error(StatusCode::NOT_FOUND, "no such dead letter"),
        Err(e) => store_error(e),
    }
}

async fn dlq_replay(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Option<axum::Json<DlqParams>>,
) -> Response {
    let params = body.map(|b| b.0).unwrap_or_default();
    let (caller, filter) = match dlq_action(&state, &headers, &params, Permission::Replay) {
        Ok(allowed) => allowed,
        Err(response) => return *response,
    };
    let options = ReplayOptions { dry_run: params.dry_run, rate: params.rate, actor: caller.actor };
    let channel = state.publisher.read().await.clone();
    let result = if params.dead_ids.is_empty() {
        ops::replay(&state.store, channel.as_ref(), &filter, &options, |_, _| {}).await
    } else {
        ops::replay_ids(&state.store, channel.as_ref(), &params.dead_ids, &options).await
    };
    match result {
        Ok(report) => {
            let status = if report.failed > 0 { StatusCode::BAD_GATEWAY } else { StatusCode::OK };
            (status, axum::Json(report)).into_response()
        }
        Err(ops::OpsError::NotFound(id)) => {
            error(StatusCode::NOT_FOUND, &format!("no dead letter {id}"))
        }
        Err(e) => store_error(e),
    }
}

/// The caller and filter of a dead-letter action (replay, purge): a dry run changes nothing,
/// so reading is enough for it; otherwise the caller needs `permission`.
fn dlq_action(
    state: &AppState,
    headers: &HeaderMap,
    params: &DlqParams,
    permission: Permission,
) -> Result<(access::Caller, DlqFilter), Box<Response>> {
    let permission = if params.dry_run { Permission::Read } else { permission };
    let caller = access::require(state, headers, permission)
        .map_err(|denied| Box::new(denied.into_response()))?;
    let filter =
        params.filter().map_err(|message| Box::new(error(StatusCode::BAD_REQUEST, &message)))?;
    Ok((caller, filter))
}

/// Deletes matching dead letters (`dry_run`: only lists them); audited.
async fn dlq_purge(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Option<axum::Json<DlqParams>>,
) -> Response {
    let params = body.map(|b| b.0).unwrap_or_default();
    let (caller, filter) = match dlq_action(&state, &headers, &params, Permission::Purge) {
        Ok(allowed) => allowed,
        Err(response) => return *response,
    };
    match state.store.purge_dead_letters(&filter, params.dry_run, &caller.actor).await {
        Ok(report) => axum::Json(report).into_response(),
        Err(e) => store_error(e),
    }
}

async fn destinations(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    if let Err(denied) = access::require(&state, &headers, Permission::Read) {
        return denied.into_response();
    }
    match ops::destination_list(&state.store, &state.config, Some(&state.breakers)).await {
        Ok(list) => axum::Json(json!({ "destinations": list })).into_response(),
        Err(e) => store_error(e),
    }
}

#[derive(Debug, Deserialize, Default)]
struct PauseBody {
    #[serde(default)]
    reason: String,
}

async fn destination_action(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path((id, action)): Path<(String, String)>,
    body: Option<axum::Json<PauseBody>>,
) -> Response {
    let caller = match access::require(&state, &headers, Permission::Pause) {
        Ok(caller) => caller,
        Err(denied) => return denied.into_response(),
    };
    let paused = match action.as_str() {
        "pause" => true,
        "resume" => false,
        _ => return error(StatusCode::NOT_FOUND, "action is pause or resume"),
    };
    if state.config.adapters.get(&id).is_none_or(|a| a.destination.is_none()) {
        return error(StatusCode::NOT_FOUND, "unknown destination");
    }
    let reason = body.map(|b| b.0.reason).unwrap_or_default();
    match state.store.set_destination_paused(&id, paused, &reason, &caller.actor).await {
        Ok(entry) => axum::Json(json!({
            "destination": id, "paused": paused, "audit_seq": entry.seq,
        }))
        .into_response(),
        Err(e) => store_error(e),
    }
}

#[derive(Debug, Deserialize, Default)]
struct AuditParams {
    from: Option<i64>,
    limit: Option<i64>,
}

async fn audit_list(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Query(params): Query<AuditParams>,
) -> Response {
    if let Err(denied) = access::require(&state, &headers, Permission::Read) {
        return denied.into_response();
    }
    let (from, limit) = (params.from.unwrap_or(1), params.limit.unwrap_or(100).clamp(1, 1000));
    match state.store.audit_entries(from, limit).await {
        Ok(entries) => axum::Json(json!({ "entries": entries })).into_response(),
        Err(e) => store_error(e),
    }
}

async fn audit_verify(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    if let Err(denied) = access::require(&state, &headers, Permission::Read) {
        return denied.into_response();
    }
    match state.store.verify_audit().await {
        Ok(verdict) => {
            let status =
                if verdict.first_broken.is_some() { StatusCode::CONFLICT } else { StatusCode::OK };
            (status, axum::Json(verdict)).into_response()
        }
        Err(e) => store_error(e),
    }
}
