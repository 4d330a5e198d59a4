//! The publicity timer: emits the stop-publicity retraction of every failed-information record
//! whose maximum publicity period has ended, at every destination that holds it.
//!
//! A singleton across instances: each tick first takes the `publicity-expiry` lease in the
//! store (owner + expiry), so two instances sharing a store never fire together; and what it
//! emits is idempotent anyway (the retraction's version and idempotency keys are derived from
//! the record and its holders, the store rows are upserts), so a tick repeated after a crash
//! or a lost lease produces the same copies, which delivery recognises as already delivered.
//!
//! Time is the lifecycle clock (`AppState::clock`), which tests move forward instead of
//! waiting; the lease itself runs on the system clock, which instances share.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::lifecycle::hook::HolderRow;
use crate::runtime::state::AppState;
use crate::store::Write;
use crate::store::lifecycle::LifecycleWrite;

const LEASE: &str = "publicity-expiry";
/// Records handled per tick (the rest wait for the next one).
const PER_TICK: i64 = 100;

/// Runs the timers until the session ends.
pub async fn run(state: Arc<AppState>, session: CancellationToken) {
    let owner = format!("{}-{}", std::process::id(), uuid::Uuid::new_v4().simple());
    let every = Duration::from_secs(state.config.process.lifecycle.timer_interval_secs.max(1));
    let mut clock = DeadlineClock::default();
    let deadline_every =
        Duration::from_secs(state.config.process.lifecycle.deadline_interval_secs.max(1));
    let mut deadline_due = tokio::time::Instant::now();
    loop {
        tokio::select! {
            _ = session.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
        match tick(&state, &owner, every).await {
            Ok(0) => {}
            Ok(n) => info!(records = n, "Publicity ended; stop-publicity retractions emitted."),
            Err(error) => warn!(%error, "Publicity timer tick failed; retrying next tick."),
        }
        if tokio::time::Instant::now() >= deadline_due {
            deadline_due = tokio::time::Instant::now() + deadline_every;
            if let Err(error) = clock.tick(&state).await {
                warn!(%error, "Deadline clock tick failed; retrying next tick.");
            }
        }
    }
}

/// How far back the deadline clock looks for open obligations (longer deadlines than this
/// are not configured).
const DEADLINE_HORIZON_DAYS: i64 = 120;

/// The deadline clock: counts reporting obligations by source organisation and status
/// (`credgate_deadline_obligations`) and raises an alert (log, optional webhook) once per
/// obligation that becomes at-risk or breached. Every instance exports its own gauge.
#[derive(Debug, Default)]
struct DeadlineClock {
    /// Label pairs set last time, so a combination that disappeared is set back to 0.
    exported: std::collections::BTreeSet<(String, String)>,
    /// Obligations already alerted in their current status.
    alerted: std::collections::HashSet<String>,
}

impl DeadlineClock {
    async fn tick(&mut self, state: &AppState) -> Result<(), String> {
        let now = state.clock.now();
        let since = now
            .checked_sub(jiff::SignedDuration::from_hours(24 * DEADLINE_HORIZON_DAYS))
            .unwrap_or(now);
        let rows = state
            .store
            .copy_deliveries(None, &crate::pipeline::rfc3339_shanghai(since))
            .await
            .map_err(|e| e.to_string())?;
        let obligations = crate::runtime::lifecycle::obligations(&state.config, rows, now);
        let mut counts: std::collections::BTreeMap<(String, String), u64> = Default::default();
        // Alerts remembered for obligations still in the window only: the set stays as large
        // as the window, not as large as the gateway's history.
        let mut still_alerting = std::collections::HashSet::new();
        for o in &obligations {
            *counts.entry((o.source_org.clone(), o.status().to_owned())).or_default() += 1;
            if matches!(o.status(), "at_risk" | "breached" | "error") {
                let id = format!(
                    "{}|{}|{}|{}|{}",
                    o.record_key,
                    o.record_version,
                    o.destination,
                    o.rule,
                    o.status()
                );
                still_alerting.insert(id.clone());
                if self.alerted.insert(id) {
                    let detail = crate::runtime::lifecycle::obligation_json(o);
                    warn!(record_key = o.record_key, source_org = o.source_org, status = o.status(), obligation = %detail, "Reporting deadline alert.");
                    if let Some(url) = &state.config.process.lifecycle.deadline_webhook {
                        let mut body = detail;
                        body["record_key"] = o.record_key.clone().into();
                        body["source_org"] = o.source_org.clone().into();
                        let sent = reqwest::Client::new()
                            .post(url)
                            .timeout(Duration::from_secs(5))
                            .json(&body)
                            .send()
                            .await;
                        if let Err(error) = sent {
                            warn!(%error, "Deadline webhook failed.");
                        }
                    }
                }
            }
        }
        self.alerted.retain(|id| still_alerting.contains(id));
        for key in std::mem::take(&mut self.exported) {
            if !counts.contains_key(&key) {
                metrics::gauge!(crate::runtime::metrics::DEADLINE_OBLIGATIONS, "source_org" => key.0.clone(), "status" => key.1.clone()).set(0.0);
            }
        }
        for ((org, status), n) in counts {
            metrics::gauge!(crate::runtime::metrics::DEADLINE_OBLIGATIONS, "source_org" => org.clone(), "status" => status.clone()).set(n as f64);
            self.exported.insert((org, status));
        }
        Ok(())
    }
}

/// One tick: takes the lease, finds the records whose publicity ended, publishes their
/// retractions (confirmed) and records them. Returns how many records were stopped.
///
/// # Errors
///
/// A store or broker failure (nothing is marked stopped unless its copies were confirmed).
pub async fn tick(state: &AppState, owner: &str, every: Duration) -> Result<usize, String> {
    let wall = jiff::Timestamp::now();
    let hold =
        jiff::SignedDuration::try_from(every * 3).unwrap_or(jiff::SignedDuration::from_secs(180));
    let until = wall.checked_add(hold).unwrap_or(wall);
    let held = state
        .store
        .take_lease(
            LEASE,
            owner,
            &crate::pipeline::rfc3339_shanghai(wall),
            &crate::pipeline::rfc3339_shanghai(until),
        )
        .await
        .map_err(|e| e.to_string())?;
    if !held {
        return Ok(0);
    }
    let now = state.clock.now();
    let today = crate::lifecycle::shanghai_date(now);
    let due =
        state.store.publicity_due(&today.to_string(), PER_TICK).await.map_err(|e| e.to_string())?;
    let mut stopped = 0;
    for (record_key, max_end) in due {
        let Some(latest) = state
            .store
            .latest_canonical(&record_key)
            .await
            .map_err(|e| e.to_string())?
            .and_then(|json| serde_json::from_str(&json).ok())
            .and_then(|flat| {
                crate::runtime::lifecycle::split_canonical(&state.config.catalog, &flat)
            })
        else {
            continue;
        };
        let holders: Vec<HolderRow> = state
            .store
            .holders(&record_key)
            .await
            .map_err(|e| e.to_string())?
            .into_iter()
            .map(HolderRow::from)
            .collect();
        let stop_on = max_end
            .parse::<jiff::civil::Date>()
            .ok()
            .and_then(|d| d.tomorrow().ok())
            .unwrap_or(today);
        let step =
            crate::lifecycle::hook::publicity_ended(&state.config, &latest, &holders, stop_on);
        crate::runtime::lifecycle::report(&step, &record_key);
        let messages =
            crate::runtime::lifecycle::outgoing(&step, &format!("publicity-timer:{record_key}"));
        if !messages.is_empty() {
            let channel =
                state.publisher.read().await.clone().ok_or("broker connection is down")?;
            crate::broker::publish_all(&channel, messages).await.map_err(|e| e.to_string())?;
        }
        let at = crate::pipeline::rfc3339_shanghai(now);
        let mut writes = crate::runtime::lifecycle::writes(&step, &at);
        writes.push(Write::Lifecycle(Box::new(LifecycleWrite::PublicityStopped {
            record_key: record_key.clone(),
            stopped_at: at.clone(),
        })));
        state.store.write_all(writes).await.map_err(|e| e.to_string())?;
        stopped += 1;
    }
    Ok(stopped)
}
