//! The retention task: every `interval_secs`, for every catalog item, empties bodies older
//! than `bodies_days` and deletes metadata older than `metadata_days` (`crate::retention`), in
//! batches of `batch_rows` with a pause in between, so ingest's commits are never held for
//! long. The purges are idempotent: instances sharing a store may run it at the same time.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::retention::RetentionPolicy;
use crate::runtime::state::AppState;
use crate::store::{Store, StoreError};

/// Rows purged in one pass, per catalog item (`_unclassified`: rejected originals and dedup
/// keys).
pub type PassReport = std::collections::BTreeMap<String, crate::store::retention::Purged>;

/// Runs passes until shutdown.
pub async fn run(state: Arc<AppState>, shutdown: CancellationToken) {
    let policy = &state.config.retention;
    if !policy.enabled {
        return;
    }
    // A first pass shortly after start, not in the middle of the start-up backlog.
    let mut wait = Duration::from_secs(60);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
        }
        wait = Duration::from_secs(policy.interval_secs);
        match pass(&state.store, policy, jiff::Timestamp::now(), &shutdown).await {
            Ok(report) => {
                let total: u64 = report.values().map(|p| p.total()).sum();
                if total > 0 {
                    info!(purged = ?report, "Retention pass done.");
                }
            }
            Err(error) => warn!(%error, "Retention pass failed; trying again next interval."),
        }
    }
}

fn cutoff(now: jiff::Timestamp, days: u32) -> String {
    let before = now
        .checked_sub(jiff::SignedDuration::from_hours(24 * i64::from(days)))
        .unwrap_or(jiff::Timestamp::MIN);
    crate::pipeline::rfc3339_shanghai(before)
}

/// One pass as of `now`; stops early (with what was done) on shutdown.
///
/// # Errors
///
/// A purge statement failed.
pub async fn pass(
    store: &Store,
    policy: &RetentionPolicy,
    now: jiff::Timestamp,
    shutdown: &CancellationToken,
) -> Result<PassReport, StoreError> {
    let limit = i64::from(policy.batch_rows);
    let pause = Duration::from_millis(policy.pause_ms);
    let mut report = PassReport::new();
    // Between two batches: a pause, or the end of the pass on shutdown.
    let breathe = || async {
        tokio::select! {
            _ = shutdown.cancelled() => false,
            _ = tokio::time::sleep(pause) => true,
        }
    };
    for (item, days) in &policy.items {
        let entry = report.entry(item.clone()).or_default();
        let bodies_before = cutoff(now, days.bodies_days);
        loop {
            let n = store.purge_bodies(item, &bodies_before, limit).await?;
            entry.bodies += n;
            if n == 0 || !breathe().await {
                break;
            }
        }
        let metadata_before = cutoff(now, days.metadata_days);
        loop {
            let n = store.purge_metadata(item, &metadata_before, limit).await?;
            entry.rows += n;
            if n == 0 || !breathe().await {
                break;
            }
        }
        if shutdown.is_cancelled() {
            return Ok(report);
        }
    }
    let bodies_before = cutoff(now, policy.default.bodies_days);
    let metadata_before = cutoff(now, policy.default.metadata_days);
    let entry = report.entry("_unclassified".to_owned()).or_default();
    loop {
        let n = store.purge_unclassified(&bodies_before, &metadata_before, limit).await?;
        entry.bodies += n.bodies;
        entry.rows += n.rows;
        if n.total() == 0 || !breathe().await {
            break;
        }
    }
    // Claims of instances that died long ago.
    let _ = store.purge_stale_claims(Duration::from_secs(3600), limit).await;
    Ok(report)
}
