//! Circuit breaker of one destination: after `failure_threshold` consecutive retriable failures
//! (connect errors, timeouts, 5xx) the destination's lanes stop sending for `open_secs`, then
//! one trial copy goes out (half-open); success closes the breaker, failure opens it again for
//! twice as long, up to `max_open_secs`.
//!
//! While open, lanes wait in `acquire` holding their copy unacked: the lanes fill up, the
//! consumer stops taking deliveries once the prefetch window is used, and everything else stays
//! in RabbitMQ. Nothing is lost and no retry budget (`max_attempts`) is spent on a destination
//! that is known to be down. Every wait ends at once when the worker's stop token (shutdown or
//! pause) is cancelled; each destination has its own breaker, so other destinations never wait.

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::config::raw::BreakerSettings;
use crate::runtime::metrics as m;

/// How often a lane waiting for a half-open trial looks again.
const TRIAL_POLL: Duration = Duration::from_millis(100);

/// The state as reported (`credgate_destination_breaker_state`: 0, 1, 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BreakerState {
    Closed,
    HalfOpen,
    Open,
}

impl BreakerState {
    pub fn gauge(self) -> f64 {
        match self {
            BreakerState::Closed => 0.0,
            BreakerState::HalfOpen => 1.0,
            BreakerState::Open => 2.0,
        }
    }
}

#[derive(Debug)]
enum Inner {
    Closed {
        failures: u32,
    },
    Open {
        until: Instant,
    },
    /// A trial copy is out (or about to be); everybody else waits for its outcome.
    HalfOpen,
}

#[derive(Debug)]
struct Shared {
    inner: Inner,
    /// Times the breaker opened in a row without a success (drives the doubling).
    streak: u32,
}

/// The breaker of one destination, shared by its lanes (and kept across reconnects).
#[derive(Debug)]
pub struct Breaker {
    destination: String,
    settings: BreakerSettings,
    shared: Mutex<Shared>,
    /// What `open_secs` counts in: a second (unit tests shrink it).
    unit: Duration,
}

/// Leave to send one copy; report its outcome with `success` or `failure`. A permit dropped
/// without an outcome (the copy was not sent after all) lets another lane try.
#[derive(Debug)]
pub struct Permit<'a> {
    breaker: &'a Breaker,
    trial: bool,
    settled: bool,
}

impl Breaker {
    pub fn new(destination: &str, settings: BreakerSettings) -> Breaker {
        let breaker = Breaker {
            destination: destination.to_owned(),
            settings,
            shared: Mutex::new(Shared { inner: Inner::Closed { failures: 0 }, streak: 0 }),
            unit: Duration::from_secs(1),
        };
        breaker.publish(BreakerState::Closed);
        breaker
    }

    pub fn state(&self) -> BreakerState {
        match self.shared.lock().map(|s| match s.inner {
            Inner::Closed { .. } => BreakerState::Closed,
            Inner::Open { .. } => BreakerState::Open,
            Inner::HalfOpen => BreakerState::HalfOpen,
        }) {
            Ok(state) => state,
            Err(_) => BreakerState::Closed,
        }
    }

    /// Waits until a copy may be sent; `None` when `stop` was cancelled first.
    pub async fn acquire(&self, stop: &CancellationToken) -> Option<Permit<'_>> {
        if !self.settings.enabled {
            return Some(Permit { breaker: self, trial: false, settled: false });
        }
        loop {
            let wait_until = {
                let Ok(mut shared) = self.shared.lock() else {
                    return Some(Permit { breaker: self, trial: false, settled: false });
                };
                match shared.inner {
                    Inner::Closed { .. } => {
                        return Some(Permit { breaker: self, trial: false, settled: false });
                    }
                    Inner::Open { until } if until <= Instant::now() => {
                        shared.inner = Inner::HalfOpen;
                        drop(shared);
                        self.publish(BreakerState::HalfOpen);
                        info!(
                            destination = self.destination,
                            "Circuit half-open; sending a trial copy."
                        );
                        return Some(Permit { breaker: self, trial: true, settled: false });
                    }
                    Inner::Open { until } => until,
                    Inner::HalfOpen => Instant::now() + TRIAL_POLL,
                }
            };
            tokio::select! {
                _ = stop.cancelled() => return None,
                _ = tokio::time::sleep_until(wait_until) => {}
            }
        }
    }

    fn open_for(&self, streak: u32) -> Duration {
        let factor = 1u64 << streak.saturating_sub(1).min(20);
        let units = self.settings.open_secs.saturating_mul(factor).min(self.settings.max_open_secs);
        self.unit.saturating_mul(u32::try_from(units).unwrap_or(u32::MAX))
    }

    fn settle(&self, outcome: Option<bool>, trial: bool) {
        if !self.settings.enabled {
            return;
        }
        let Ok(mut shared) = self.shared.lock() else { return };
        let before = match shared.inner {
            Inner::Closed { .. } => BreakerState::Closed,
            Inner::Open { .. } => BreakerState::Open,
            Inner::HalfOpen => BreakerState::HalfOpen,
        };
        match outcome {
            // The destination answered (2xx, or 4xx: a rejection is still a live destination).
            Some(true) => {
                shared.inner = Inner::Closed { failures: 0 };
                shared.streak = 0;
            }
            Some(false) => {
                let open = match &mut shared.inner {
                    Inner::Closed { failures } => {
                        *failures += 1;
                        *failures >= self.settings.failure_threshold
                    }
                    // Only the trial's failure reopens; a copy sent before the breaker opened
                    // failing late changes nothing.
                    Inner::HalfOpen => trial,
                    Inner::Open { .. } => false,
                };
                if open {
                    shared.streak += 1;
                    let open_for = self.open_for(shared.streak);
                    shared.inner = Inner::Open { until: Instant::now() + open_for };
                    warn!(
                        destination = self.destination,
                        open_ms = open_for.as_millis() as u64,
                        "Circuit open: the destination keeps failing; delivery held back."
                    );
                }
            }
            // The trial was not sent: let the next lane trial at once.
            None => {
                if trial && matches!(shared.inner, Inner::HalfOpen) {
                    shared.inner = Inner::Open { until: Instant::now() };
                }
            }
        }
        let after = match shared.inner {
            Inner::Closed { .. } => BreakerState::Closed,
            Inner::Open { .. } => BreakerState::Open,
            Inner::HalfOpen => BreakerState::HalfOpen,
        };
        drop(shared);
        if before != after {
            if after == BreakerState::Closed {
                info!(destination = self.destination, "Circuit closed; delivery resumed.");
            }
            self.publish(after);
        }
    }

    fn publish(&self, state: BreakerState) {
        metrics::gauge!(m::BREAKER_STATE, "destination" => self.destination.clone())
            .set(state.gauge());
    }
}

impl Permit<'_> {
    /// The destination answered (accepted or permanently rejected).
    pub fn success(mut self) {
        self.settled = true;
        self.breaker.settle(Some(true), self.trial);
    }

    /// A retriable failure: connect error, timeout, 5xx.
    pub fn failure(mut self) {
        self.settled = true;
        self.breaker.settle(Some(false), self.trial);
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        if !self.settled {
            self.breaker.settle(None, self.trial);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Seconds of the settings are 20 ms here.
    const UNIT: Duration = Duration::from_millis(20);

    fn breaker(enabled: bool) -> Breaker {
        let settings =
            BreakerSettings { enabled, failure_threshold: 3, open_secs: 1, max_open_secs: 4 };
        Breaker { unit: UNIT, ..Breaker::new("d", settings) }
    }

    async fn open(b: &Breaker) {
        let stop = CancellationToken::new();
        for _ in 0..3 {
            b.acquire(&stop).await.unwrap().failure();
        }
    }

    #[tokio::test]
    async fn opens_after_threshold_then_half_opens_and_closes() {
        let b = breaker(true);
        let stop = CancellationToken::new();
        b.acquire(&stop).await.unwrap().failure();
        b.acquire(&stop).await.unwrap().success();
        b.acquire(&stop).await.unwrap().failure();
        b.acquire(&stop).await.unwrap().failure();
        assert_eq!(b.state(), BreakerState::Closed, "a success resets the count");
        open(&b).await;
        assert_eq!(b.state(), BreakerState::Open);
        let started = Instant::now();
        let trial = b.acquire(&stop).await.unwrap();
        assert!(started.elapsed() >= UNIT);
        assert!(trial.trial);
        assert_eq!(b.state(), BreakerState::HalfOpen);
        trial.success();
        assert_eq!(b.state(), BreakerState::Closed);
    }

    #[tokio::test]
    async fn failed_trial_doubles_up_to_the_cap() {
        let b = breaker(true);
        open(&b).await;
        let mut waits = Vec::new();
        for _ in 0..4 {
            let started = Instant::now();
            let trial = b.acquire(&CancellationToken::new()).await.unwrap();
            waits.push(started.elapsed());
            trial.failure();
        }
        for (wait, units) in waits.iter().zip([1, 2, 4, 4]) {
            assert!(*wait >= UNIT * units && *wait < UNIT * units + UNIT * 5, "{waits:?}");
        }
    }

    #[tokio::test]
    async fn waits_end_on_stop_and_one_trial_at_a_time() {
        let b = std::sync::Arc::new(breaker(true));
        open(&b).await;
        let trial = b.acquire(&CancellationToken::new()).await.unwrap();
        // A second lane waits while the trial is out, and gives up on stop.
        let stop = CancellationToken::new();
        let (b2, stop2) = (b.clone(), stop.clone());
        let waiter = tokio::spawn(async move { b2.acquire(&stop2).await.is_some() });
        tokio::time::sleep(UNIT * 10).await;
        assert!(!waiter.is_finished());
        stop.cancel();
        assert!(!waiter.await.unwrap());
        drop(trial);
        // An unsent trial lets the next lane trial at once.
        assert!(b.acquire(&CancellationToken::new()).await.unwrap().trial);
    }

    #[tokio::test]
    async fn disabled_never_blocks() {
        let b = breaker(false);
        open(&b).await;
        open(&b).await;
        assert_eq!(b.state(), BreakerState::Closed);
    }
}
