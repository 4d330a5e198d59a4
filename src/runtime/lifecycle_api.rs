//! The lifecycle part of the admin API: the severe-dishonesty list as of an instant, as a
//! delta since a list version, or as a snapshot; and the test clock.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::lifecycle::dishonest_list::Entry;
use crate::runtime::access::{self, Permission};
use crate::runtime::state::AppState;

/// The routes, merged into the admin router.
pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/v1/lists/dishonest", get(dishonest_list))
        .route("/v1/lifecycle/clock", get(clock_show).post(clock_set))
        .route("/v1/scorecard", get(scorecard))
}

fn error(status: StatusCode, message: &str) -> Response {
    (status, axum::Json(json!({ "error": message }))).into_response()
}

#[derive(Debug, Deserialize, Default)]
struct ListParams {
    as_of: Option<String>,
    since_version: Option<u64>,
    /// With `as_of`: what the list said at this list version (an audit of a past answer).
    known_version: Option<u64>,
    #[serde(default)]
    reveal: bool,
}

/// ID numbers of listed natural persons are masked unless `reveal` is asked.
fn shown(entries: Vec<Entry>, reveal: bool) -> Vec<Value> {
    entries
        .into_iter()
        .map(|mut e| {
            if !reveal && let Some(id) = &e.data.subject.id_no {
                e.data.subject.id_no = Some(crate::domain::ids::mask_id(id));
            }
            let effective_from = crate::pipeline::rfc3339_shanghai(e.data.effective_from());
            let effective_to = e.data.effective_to().map(crate::pipeline::rfc3339_shanghai);
            let mut v = serde_json::to_value(&e).unwrap_or(Value::Null);
            v["effective_from"] = effective_from.into();
            v["effective_to"] = effective_to.map_or(Value::Null, Value::from);
            v
        })
        .collect()
}

async fn dishonest_list(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Query(params): Query<ListParams>,
) -> Response {
    if let Err(denied) = access::require(&state, &headers, Permission::to_show(params.reveal)) {
        return denied.into_response();
    }
    let list = match state.store.dishonest_list().await {
        Ok(list) => list,
        Err(e) => {
            tracing::warn!(error = %e, "Dishonest list: store error.");
            return error(StatusCode::SERVICE_UNAVAILABLE, "store unavailable");
        }
    };
    if let Some(since) = params.since_version {
        return match list.delta(since) {
            Ok(delta) => {
                let changes: Vec<Value> = delta
                    .changes
                    .into_iter()
                    .map(|c| {
                        let (from, to) = c.data.as_ref().map_or((None, None), |d| {
                            (
                                Some(crate::pipeline::rfc3339_shanghai(d.effective_from())),
                                d.effective_to().map(crate::pipeline::rfc3339_shanghai),
                            )
                        });
                        let mut data = c.data;
                        if !params.reveal
                            && let Some(d) = data.as_mut()
                            && let Some(id) = &d.subject.id_no
                        {
                            d.subject.id_no = Some(crate::domain::ids::mask_id(id));
                        }
                        json!({
                            "blacklist_id": c.blacklist_id,
                            "record_version": c.record_version,
                            "list_version": c.list_version,
                            "change": if data.is_some() { "upsert" } else { "retract" },
                            "effective_from": from,
                            "effective_to": to,
                            "data": data,
                        })
                    })
                    .collect();
                axum::Json(json!({
                    "since": delta.since,
                    "list_version": delta.list_version,
                    "changes": changes,
                }))
                .into_response()
            }
            Err(e) => error(StatusCode::CONFLICT, &e.to_string()),
        };
    }
    if let Some(text) = params.as_of {
        let Ok(at) = text.parse::<jiff::Timestamp>() else {
            return error(StatusCode::BAD_REQUEST, "as_of must be an RFC 3339 timestamp");
        };
        let entries = match params.known_version {
            Some(v) => list.as_of_known(at, v),
            None => list.as_of(at),
        };
        return axum::Json(json!({
            "as_of": crate::pipeline::rfc3339_shanghai(at),
            "list_version": params.known_version.unwrap_or(list.version()).min(list.version()),
            "entries": shown(entries, params.reveal),
        }))
        .into_response();
    }
    let snapshot = list.snapshot();
    axum::Json(json!({
        "snapshot": true,
        "list_version": snapshot.list_version,
        "entries": shown(snapshot.entries, params.reveal),
    }))
    .into_response()
}

async fn clock_show(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    if let Err(denied) = access::require(&state, &headers, Permission::Read) {
        return denied.into_response();
    }
    axum::Json(json!({ "now": crate::pipeline::rfc3339_shanghai(state.clock.now()) }))
        .into_response()
}

#[derive(Debug, Deserialize)]
struct ClockBody {
    now: String,
}

/// Moves the lifecycle clock forward (test configurations only).
async fn clock_set(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    axum::Json(body): axum::Json<ClockBody>,
) -> Response {
    // Moving time is an operator's act, like pausing a destination.
    if let Err(denied) = access::require(&state, &headers, Permission::Pause) {
        return denied.into_response();
    }
    if !state.config.process.lifecycle.test_clock {
        return error(
            StatusCode::FORBIDDEN,
            "the clock can only be moved with [lifecycle] test_clock = true",
        );
    }
    let Ok(to) = body.now.parse::<jiff::Timestamp>() else {
        return error(StatusCode::BAD_REQUEST, "now must be an RFC 3339 timestamp");
    };
    state.clock.set(to);
    axum::Json(json!({ "now": crate::pipeline::rfc3339_shanghai(state.clock.now()) }))
        .into_response()
}

#[derive(Debug, Deserialize, Default)]
struct ScorecardParams {
    /// First day (YYYY-MM-DD, Asia/Shanghai); default 30 days before `to`.
    from: Option<String>,
    /// Last day; default today on the lifecycle clock.
    to: Option<String>,
    #[serde(default)]
    csv: bool,
}

async fn scorecard(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Query(params): Query<ScorecardParams>,
) -> Response {
    if let Err(denied) = access::require(&state, &headers, Permission::Read) {
        return denied.into_response();
    }
    let now = state.clock.now();
    let Ok((from, to)) = scorecard_days(params.from.as_deref(), params.to.as_deref(), now) else {
        return error(StatusCode::BAD_REQUEST, "from / to must be dates (YYYY-MM-DD)");
    };
    match crate::runtime::scorecard::scorecard(&state.config, &state.store, from, to, now).await {
        Ok(rows) if params.csv => {
            let mut text = String::from(crate::runtime::scorecard::ScoreRow::CSV_HEADER);
            text.push('\n');
            for row in &rows {
                text.push_str(&row.csv());
                text.push('\n');
            }
            ([(axum::http::header::CONTENT_TYPE, "text/csv; charset=utf-8")], text).into_response()
        }
        Ok(rows) => axum::Json(json!({
            "from": from.to_string(),
            "to": to.to_string(),
            "rows": rows,
        }))
        .into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "Scorecard: store error.");
            error(StatusCode::SERVICE_UNAVAILABLE, "store unavailable")
        }
    }
}

/// The day range of a scorecard request: `to` defaults to today, `from` to 30 days before.
///
/// # Errors
///
/// A day is not a date.
pub fn scorecard_days(
    from: Option<&str>,
    to: Option<&str>,
    now: jiff::Timestamp,
) -> Result<(jiff::civil::Date, jiff::civil::Date), jiff::Error> {
    let to = match to {
        Some(t) => t.parse()?,
        None => crate::lifecycle::shanghai_date(now),
    };
    let from = match from {
        Some(f) => f.parse()?,
        None => to.checked_sub(jiff::Span::new().days(30))?,
    };
    Ok((from, to))
}
