//! Delivery: one worker per destination consumes `credgate.out.<destination>`, so a slow or
//! dead destination never holds up another. Copies of the same record key go through the same
//! lane, in order; different keys proceed in parallel. Each copy is acked only after the
//! destination accepted it, or after it was moved (with a confirm) to a retry queue or the
//! dead-letter queue with its reason, remote answer and attempt history.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use lapin::message::Delivery;
use lapin::options::{BasicAckOptions, BasicConsumeOptions, BasicNackOptions, BasicQosOptions};
use lapin::types::FieldTable;
use rand::Rng;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use crate::broker::{self, BrokerError, Outgoing};
use crate::runtime::ingest::headers;
use crate::runtime::metrics as m;
use crate::runtime::sinks::{Copy, Sink, SinkOutcome};
use crate::runtime::state::AppState;
use crate::store::Write;
use crate::store::dlq::{self, DeadLetter};
use crate::store::lineage::Attempt;

/// How often a worker reads its destination's pause state.
const PAUSE_POLL: Duration = Duration::from_secs(1);

/// Header on a replayed copy: the dead letter it was replayed from.
pub const REPLAY_OF: &str = "x-credgate-replay-of";

/// How long a delivery claim holds on a shared store at least: longer than a send takes, short
/// enough that an instance that died holding claims delays their copies only briefly. A
/// destination with a long HTTP timeout gets twice its timeout plus 10 s.
const CLAIM_LEASE: Duration = Duration::from_secs(30);
/// How often a copy another instance holds a claim on is looked at again.
const CLAIM_POLL: Duration = Duration::from_millis(500);

/// This process as the owner of delivery claims.
fn owner() -> &'static str {
    static OWNER: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    OWNER.get_or_init(|| format!("{}-{:016x}", std::process::id(), rand::rng().random::<u64>()))
}

/// Parallel lanes per destination; copies of one record key always share a lane.
const LANES: usize = 8;
/// Deliveries a lane may hold waiting (bounded: the broker keeps the rest).
const LANE_DEPTH: usize = 16;

/// Consumes one destination queue until its channel fails or shutdown is requested.
///
/// # Errors
///
/// The consumer could not start or its channel died (the supervisor reconnects).
pub async fn consume_destination(
    state: Arc<AppState>,
    connection: &lapin::Connection,
    destination: String,
    shutdown: CancellationToken,
) -> Result<(), BrokerError> {
    let mut announced = false;
    // One warning per outage of the store, not one per poll.
    let mut warned = false;
    loop {
        // Paused (by an operator, in the store): consume nothing until resumed. The state is
        // read from the store, so it holds across restarts and for every instance.
        loop {
            match state.store.destination_paused(&destination).await {
                Ok(false) => {
                    warned = false;
                    break;
                }
                Ok(true) => {
                    warned = false;
                    if !announced {
                        info!(destination, "Destination paused; delivery stopped until resumed.");
                        announced = true;
                    }
                }
                Err(error) => {
                    if !warned {
                        warn!(destination, %error, "Cannot read the pause state; waiting.");
                        warned = true;
                    }
                }
            }
            tokio::select! {
                _ = shutdown.cancelled() => return Ok(()),
                _ = tokio::time::sleep(PAUSE_POLL) => {}
            }
        }
        if announced {
            info!(destination, "Destination resumed.");
            announced = false;
        }
        let paused = Arc::new(AtomicBool::new(false));
        let stop = shutdown.child_token();
        let watcher = tokio::spawn(watch_pause(
            state.clone(),
            destination.clone(),
            paused.clone(),
            stop.clone(),
        ));
        let result = serve_destination(&state, connection, &destination, &stop, &paused).await;
        stop.cancel();
        let _ = watcher.await;
        result?;
        if shutdown.is_cancelled() || !paused.load(Ordering::Relaxed) {
            return Ok(());
        }
    }
}

/// Polls the pause state while the worker consumes; on pause, raises `paused` (lanes then
/// requeue instead of sending) and stops the worker.
async fn watch_pause(
    state: Arc<AppState>,
    destination: String,
    paused: Arc<AtomicBool>,
    stop: CancellationToken,
) {
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(PAUSE_POLL) => {}
        }
        if let Ok(true) = state.store.destination_paused(&destination).await {
            paused.store(true, Ordering::Relaxed);
            stop.cancel();
            return;
        }
    }
}

/// Consumes the destination queue until `stop` (shutdown or pause) or a channel failure.
async fn serve_destination(
    state: &Arc<AppState>,
    connection: &lapin::Connection,
    destination: &str,
    stop: &CancellationToken,
    paused: &Arc<AtomicBool>,
) -> Result<(), BrokerError> {
    let destination = destination.to_owned();
    let shutdown = stop;
    let Some(dest) = state.config.adapters.get(&destination).and_then(|a| a.destination.as_ref())
    else {
        return Ok(());
    };
    let sink = match Sink::build(dest, &state.config.config_dir) {
        Ok(s) => Arc::new(s),
        Err(message) => {
            error!(destination, error = message, "Cannot build the sink; destination not served.");
            return Ok(());
        }
    };
    let consume_channel = connection.create_channel().await?;
    // Enough unacked copies to keep every lane busy, few enough to bound memory.
    consume_channel.basic_qos((LANES * LANE_DEPTH) as u16, BasicQosOptions::default()).await?;
    let publish_channel = broker::confirm_channel(connection).await?;
    let queue = broker::outbound_queue(&destination);
    let mut consumer = consume_channel
        .basic_consume(
            queue.as_str().into(),
            format!("credgate-deliver-{destination}").into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    info!(destination, queue, "Delivery worker started.");

    let limiter = Arc::new(RateLimiter::new(dest.raw.rate_per_second));
    let lease = dest.raw.http.as_ref().map_or(CLAIM_LEASE, |h| {
        CLAIM_LEASE.max(Duration::from_secs(h.timeout_secs.saturating_mul(2).saturating_add(10)))
    });
    let breaker = state.breakers.get(&destination).cloned().unwrap_or_else(|| {
        Arc::new(crate::runtime::breaker::Breaker::new(&destination, dest.breaker))
    });
    let mut lanes = Vec::with_capacity(LANES);
    let mut lane_tasks = Vec::with_capacity(LANES);
    for _ in 0..LANES {
        let (tx, rx) = mpsc::channel::<Delivery>(LANE_DEPTH);
        lanes.push(tx);
        let worker = LaneWorker {
            state: state.clone(),
            destination: destination.clone(),
            sink: sink.clone(),
            publish: publish_channel.clone(),
            limiter: limiter.clone(),
            queue: queue.clone(),
            paused: paused.clone(),
            breaker: breaker.clone(),
            stop: shutdown.clone(),
            lease,
        };
        lane_tasks.push(tokio::spawn(worker.run(rx)));
    }
    let result = loop {
        tokio::select! {
            _ = shutdown.cancelled() => break Ok(()),
            next = consumer.next() => match next {
                None => break Ok(()),
                Some(Err(error)) => break Err(BrokerError::from(error)),
                Some(Ok(delivery)) => {
                    state.in_flight.start(&queue, delivery.delivery_tag, delivery.properties.timestamp().unwrap_or(0));
                    let key = delivery.properties.headers().as_ref()
                        .and_then(|h| broker::header_str(h, headers::RECORD_KEY))
                        .unwrap_or_default();
                    let mut hasher = DefaultHasher::new();
                    key.hash(&mut hasher);
                    let lane = (hasher.finish() as usize) % LANES;
                    // A full lane (a slow destination, an open breaker) must not keep this loop
                    // from seeing shutdown; an unsent delivery goes back with the channel.
                    tokio::select! {
                        _ = shutdown.cancelled() => break Ok(()),
                        sent = lanes[lane].send(delivery) => if sent.is_err() { break Ok(()) },
                    }
                }
            }
        }
    };
    let _ = consume_channel
        .basic_cancel(consumer.tag(), lapin::options::BasicCancelOptions::default())
        .await;
    drop(lanes);
    for task in lane_tasks {
        let _ = tokio::time::timeout(Duration::from_secs(30), task).await;
    }
    let _ = consume_channel.close(200, "shutdown".into()).await;
    let _ = publish_channel.close(200, "shutdown".into()).await;
    state.in_flight.clear(&queue);
    result
}

struct LaneWorker {
    state: Arc<AppState>,
    destination: String,
    sink: Arc<Sink>,
    publish: lapin::Channel,
    /// Shared by the destination's lanes: the destination's `rate_per_second`.
    limiter: Arc<RateLimiter>,
    queue: String,
    /// Raised when an operator paused the destination: copies still in the lanes go back to
    /// the queue unsent.
    paused: Arc<AtomicBool>,
    /// The destination's circuit breaker, shared by its lanes.
    breaker: Arc<crate::runtime::breaker::Breaker>,
    /// The worker's stop (shutdown or pause): ends every wait of the lane.
    stop: CancellationToken,
    /// Lease of this destination's delivery claims (shared store only).
    lease: Duration,
}

/// Spaces calls to a destination evenly (`rate_per_second`, 0 = unlimited). Waiting here
/// holds at most the lanes' bounded deliveries; the rest stays in the broker.
#[derive(Debug)]
struct RateLimiter {
    interval: Option<Duration>,
    next: tokio::sync::Mutex<tokio::time::Instant>,
}

impl RateLimiter {
    fn new(per_second: u32) -> RateLimiter {
        RateLimiter {
            interval: (per_second > 0).then(|| Duration::from_secs(1) / per_second),
            next: tokio::sync::Mutex::new(tokio::time::Instant::now()),
        }
    }

    async fn wait(&self) {
        let Some(interval) = self.interval else { return };
        let slot = {
            let mut next = self.next.lock().await;
            let now = tokio::time::Instant::now();
            let slot = (*next).max(now);
            *next = slot + interval;
            slot
        };
        tokio::time::sleep_until(slot).await;
    }
}

impl LaneWorker {
    async fn run(self, mut rx: mpsc::Receiver<Delivery>) {
        let this = Arc::new(self);
        while let Some(delivery) = rx.recv().await {
            if !delivery.acker.usable() {
                // The channel it came on is gone: the broker has requeued it, and sending it
                // now would only produce a duplicate that can never be acked.
                this.state.settle(&this.queue, delivery.delivery_tag);
                continue;
            }
            let worker = this.clone();
            // A panic while delivering one copy must not take the lane down: the copy is
            // requeued and, past the queue's delivery limit, dead-lettered by the broker.
            let delivery = Arc::new(delivery);
            let inner = delivery.clone();
            let handle = tokio::spawn(async move { worker.handle(&inner).await });
            if handle.await.is_err() {
                error!(
                    destination = this.destination,
                    "Delivery task panicked; requeueing the copy."
                );
                requeue(&delivery).await;
            }
            this.state.settle(&this.queue, delivery.delivery_tag);
        }
    }

    async fn handle(&self, delivery: &Delivery) {
        if self.paused.load(Ordering::Relaxed) {
            // Paused while this copy waited in the lane: back to the queue, unsent.
            requeue(delivery).await;
            return;
        }
        let empty = FieldTable::default();
        let h = delivery.properties.headers().as_ref().unwrap_or(&empty);
        let record_key = broker::header_str(h, headers::RECORD_KEY).unwrap_or_default();
        let record_version = broker::header_str(h, headers::RECORD_VERSION).unwrap_or_default();
        let catalog_item = broker::header_str(h, headers::CATALOG_ITEM).unwrap_or_default();
        let operation =
            broker::header_str(h, headers::OPERATION).unwrap_or_else(|| "upsert".into());
        let attempt = broker::header_int(h, headers::ATTEMPT).unwrap_or(0);
        let replay_of = broker::header_str(h, REPLAY_OF).unwrap_or_default();
        let idempotency_key = delivery
            .properties
            .message_id()
            .as_ref()
            .map(|m| m.as_str().to_owned())
            .unwrap_or_default();
        let content_type = delivery
            .properties
            .content_type()
            .as_ref()
            .map(|c| c.as_str().to_owned())
            .unwrap_or_else(|| "application/json".into());
        let attempt_record = |outcome: &str, reason: &str, response: &str| {
            Write::Attempt(Box::new(Attempt {
                idempotency_key: idempotency_key.clone(),
                destination: self.destination.clone(),
                record_key: record_key.clone(),
                record_version: record_version.clone(),
                attempt: attempt + 1,
                outcome: outcome.to_owned(),
                reason: reason.to_owned(),
                response: response.chars().take(2000).collect(),
                replay_of: replay_of.clone(),
                at: crate::pipeline::rfc3339_shanghai(jiff::Timestamp::now()),
            }))
        };

        // An older version arriving after a newer one was delivered is dropped, not sent; the
        // same version already delivered (a redelivery, a replay of a copy that got through
        // after all, a second replay) is acknowledged without sending it again. On a shared
        // store, a copy another instance is sending right now (a live claim) is checked again
        // once that instance is done.
        let mut claimed = false;
        let release = || {
            Write::ReleaseClaim(Box::new(crate::store::claims::Release {
                destination: self.destination.clone(),
                idempotency_key: idempotency_key.clone(),
                owner: owner().to_owned(),
            }))
        };
        let already =
            |outcome: &str, reason: &str, response: &str| attempt_record(outcome, reason, response);
        if self.settled_already(delivery, &record_key, &record_version, &already).await {
            return;
        }
        let permit = loop {
            // While the breaker is open the copy waits here unacked (the broker keeps the rest);
            // on shutdown or pause it goes back to the queue unsent.
            let Some(permit) = self.breaker.acquire(&self.stop).await else {
                requeue(delivery).await;
                return;
            };
            if !self.state.store.shared() {
                break permit;
            }
            match self
                .state
                .store
                .claim_delivery(&self.destination, &idempotency_key, owner(), self.lease)
                .await
            {
                Ok(true) => {
                    claimed = true;
                    // Checked again with the claim held: another instance may have delivered
                    // it (and released its claim) since the first look.
                    if self.settled_already(delivery, &record_key, &record_version, &already).await
                    {
                        drop(permit);
                        self.record(release()).await;
                        return;
                    }
                    break permit;
                }
                Ok(false) => {
                    drop(permit);
                    tokio::select! {
                        _ = self.stop.cancelled() => {
                            requeue(delivery).await;
                            return;
                        }
                        _ = tokio::time::sleep(CLAIM_POLL) => {}
                    }
                    if self.settled_already(delivery, &record_key, &record_version, &already).await
                    {
                        return;
                    }
                }
                Err(error) => {
                    drop(permit);
                    warn!(destination = self.destination, %error, "Cannot claim the copy; requeueing.");
                    requeue(delivery).await;
                    return;
                }
            }
        };

        let copy = Copy {
            destination: &self.destination,
            idempotency_key: &idempotency_key,
            record_key: &record_key,
            catalog_item: &catalog_item,
            operation: &operation,
            content_type: &content_type,
            body: &delivery.data,
        };
        self.limiter.wait().await;
        let started = Instant::now();
        let outcome = self.sink.deliver(&copy, Some(&self.publish)).await;
        match &outcome {
            SinkOutcome::Retriable { .. } => permit.failure(),
            SinkOutcome::Delivered { .. } | SinkOutcome::Permanent { .. } => permit.success(),
        }
        metrics::histogram!(m::UPSTREAM_SECONDS, "destination" => self.destination.clone())
            .record(started.elapsed().as_secs_f64());
        let (outcome_label, reason, response) = match &outcome {
            SinkOutcome::Delivered { response } => ("delivered", String::new(), response.clone()),
            SinkOutcome::Retriable { reason, response } => {
                ("retriable", reason.clone(), response.clone())
            }
            SinkOutcome::Permanent { reason, response } => {
                ("permanent", reason.clone(), response.clone())
            }
        };
        metrics::counter!(m::UPSTREAM_REQUESTS, "destination" => self.destination.clone(), "outcome" => outcome_label).increment(1);
        let mut history: Vec<serde_json::Value> = broker::header_str(h, headers::ATTEMPT_HISTORY)
            .and_then(|s| serde_json::from_str(&s).ok())
            .unwrap_or_default();
        history.push(serde_json::json!({
            "attempt": attempt + 1,
            "at": crate::pipeline::rfc3339_shanghai(jiff::Timestamp::now()),
            "outcome": outcome_label,
            "reason": reason,
            "response": response.chars().take(500).collect::<String>(),
        }));
        let delivered_ok = matches!(outcome, SinkOutcome::Delivered { .. });
        match outcome {
            SinkOutcome::Delivered { response } => {
                let attempt_write = attempt_record("delivered", "", &response);
                let write = Write::Delivered {
                    destination: self.destination.clone(),
                    record_key: record_key.clone(),
                    record_version: record_version.clone(),
                    idempotency_key: idempotency_key.clone(),
                    delivered_at: crate::pipeline::rfc3339_shanghai(jiff::Timestamp::now()),
                    response,
                };
                // Both go to the store together (one group commit); the claim is released in
                // the transaction that records the delivery, so no other instance can claim the
                // copy in between and send it again.
                let writes = if claimed { vec![write, release()] } else { vec![write] };
                let (delivered, _) =
                    tokio::join!(self.state.store.write_all(writes), self.record(attempt_write));
                if let Err(error) = delivered {
                    // Delivered but not recorded: redelivery will send the same idempotency key.
                    warn!(destination = self.destination, %error, "Delivery not recorded; requeueing.");
                    requeue(delivery).await;
                    return;
                }
                self.ack(delivery).await;
            }
            SinkOutcome::Retriable { reason, response } => {
                let max_attempts = self.max_attempts();
                if attempt + 1 >= i64::from(max_attempts) {
                    let dead = Dead {
                        class: "retries_exhausted",
                        reason: format!("retries exhausted: {reason}"),
                        response,
                        attempts: attempt + 1,
                        replay_of: replay_of.clone(),
                    };
                    self.dead_letter(delivery, &dead, &history).await;
                } else {
                    self.record(attempt_record("retry", &reason, &response)).await;
                    self.retry(delivery, attempt + 1, &history, &reason).await;
                }
            }
            SinkOutcome::Permanent { reason, response } => {
                let dead = Dead {
                    class: "rejected",
                    reason,
                    response,
                    attempts: attempt + 1,
                    replay_of: replay_of.clone(),
                };
                self.dead_letter(delivery, &dead, &history).await;
            }
        }
        if claimed && !delivered_ok {
            // Retried or dead-lettered: the next attempt (anywhere) may claim it again. A lost
            // release only delays that until the lease ends.
            self.record(release()).await;
        }
    }

    /// An older version arriving after a newer one was delivered is dropped, not sent; the same
    /// version already delivered (a redelivery, a replay of a copy that got through after all, a
    /// second replay, a copy another instance sent) is acknowledged without sending it again.
    /// A copy of a record an open objection holds is parked at a destination that suspends
    /// held records: acknowledged unsent, its attempt recorded as `held` — the objection's
    /// release (or correction, or retraction) is what reaches the destination, rendered from
    /// the stored record. Copies the objection itself generated, and retractions, pass.
    /// True when the delivery was settled here (acked, or requeued because the store is down).
    async fn settled_already(
        &self,
        delivery: &Delivery,
        record_key: &str,
        record_version: &str,
        attempt: &(dyn Fn(&str, &str, &str) -> Write + Sync),
    ) -> bool {
        match self.state.store.delivery_view(&self.destination, record_key).await {
            Ok((Some(delivered), _)) if delivered.as_str() >= record_version => {
                let outcome = if delivered == record_version {
                    "already_delivered"
                } else {
                    metrics::counter!(m::SUPERSEDED, "destination" => self.destination.clone())
                        .increment(1);
                    "superseded"
                };
                info!(
                    destination = self.destination,
                    record_key,
                    record_version,
                    delivered_version = delivered,
                    outcome,
                    "Copy not sent: this or a newer version was delivered already."
                );
                self.record(attempt(outcome, "", &delivered)).await;
                self.ack(delivery).await;
                true
            }
            Ok((_, true))
                if !crate::lifecycle::is_generated_version(record_version)
                    && crate::lifecycle::objection::policy_of(
                        &self.state.config,
                        &self.destination,
                    ) == crate::lifecycle::dispute::HoldPolicy::Suspend =>
            {
                metrics::counter!(m::HELD, "destination" => self.destination.clone()).increment(1);
                info!(
                    destination = self.destination,
                    record_key,
                    record_version,
                    "Copy held: an objection (异议) suspends this record here until it is resolved."
                );
                self.record(attempt("held", "异议处理中：暂停推送", "")).await;
                self.ack(delivery).await;
                true
            }
            Ok(_) => false,
            Err(error) => {
                warn!(destination = self.destination, %error, "Store unavailable; requeueing.");
                requeue(delivery).await;
                true
            }
        }
    }

    /// Records an attempt. Lineage is bookkeeping: a store failure here is logged and does not
    /// hold up the copy (the delivered version and dead letters, which do matter, are checked).
    async fn record(&self, write: Write) {
        if let Err(error) = self.state.store.write(write).await {
            warn!(destination = self.destination, %error, "Delivery attempt not recorded.");
        }
    }

    fn max_attempts(&self) -> u32 {
        self.state
            .config
            .adapters
            .get(&self.destination)
            .and_then(|a| a.destination.as_ref())
            .map_or(1, |d| d.raw.retry.max_attempts)
    }

    async fn ack(&self, delivery: &Delivery) {
        if let Err(error) = delivery.ack(BasicAckOptions::default()).await {
            warn!(destination = self.destination, %error, "Ack failed; the copy will be redelivered with the same idempotency key.");
        }
    }

    /// Moves the copy to the retry tier for its attempt, with ±20 % jitter on the delay.
    async fn retry(
        &self,
        delivery: &Delivery,
        attempt: i64,
        history: &[serde_json::Value],
        reason: &str,
    ) {
        let tiers = self
            .state
            .config
            .adapters
            .get(&self.destination)
            .and_then(|a| a.destination.as_ref())
            .map(|d| d.raw.retry.tiers_secs.clone())
            .unwrap_or_else(|| vec![2]);
        let tier = (attempt as usize - 1).min(tiers.len() - 1);
        let base_ms = tiers[tier] * 1000;
        let jitter = rand::rng().random_range(0.8..1.2);
        let delay_ms = ((base_ms as f64) * jitter) as u64;
        let mut h = delivery.properties.headers().clone().unwrap_or_default();
        broker::put_int(&mut h, headers::ATTEMPT, attempt);
        broker::put_str(
            &mut h,
            headers::ATTEMPT_HISTORY,
            &serde_json::to_string(history).unwrap_or_default(),
        );
        let properties = delivery
            .properties
            .clone()
            .with_headers(h)
            .with_expiration(delay_ms.to_string().into());
        let message = Outgoing {
            exchange: broker::RETRY_EXCHANGE.to_owned(),
            routing_key: format!("{}.{tier}", self.destination),
            body: delivery.data.clone(),
            properties,
            mandatory: true,
        };
        metrics::counter!(m::UPSTREAM_RETRIES, "destination" => self.destination.clone())
            .increment(1);
        match broker::publish_all(&self.publish, vec![message]).await {
            Ok(()) => {
                warn!(
                    destination = self.destination,
                    attempt,
                    delay_ms,
                    reason,
                    outcome = "retry",
                    "Delivery failed; retrying later."
                );
                self.ack(delivery).await;
            }
            Err(error) => {
                warn!(destination = self.destination, %error, "Could not park the copy for retry; requeueing.");
                requeue(delivery).await;
            }
        }
    }

    /// Stores the dead letter (bytes, record, reason, answer, attempts) and moves the copy to
    /// `credgate.dlq.<destination>` with the same; acked only after both.
    async fn dead_letter(&self, delivery: &Delivery, dead: &Dead, history: &[serde_json::Value]) {
        let empty = FieldTable::default();
        let h0 = delivery.properties.headers().as_ref().unwrap_or(&empty);
        let get = |name: &str| broker::header_str(h0, name).unwrap_or_default();
        let idempotency_key = delivery
            .properties
            .message_id()
            .as_ref()
            .map(|m| m.as_str().to_owned())
            .unwrap_or_default();
        let history_json = serde_json::to_string(history).unwrap_or_default();
        let now = crate::pipeline::rfc3339_shanghai(jiff::Timestamp::now());
        let letter = DeadLetter {
            dead_id: dlq::dead_id(&idempotency_key, dead.attempts, &dead.replay_of),
            idempotency_key: idempotency_key.clone(),
            destination: self.destination.clone(),
            record_key: get(headers::RECORD_KEY),
            record_version: get(headers::RECORD_VERSION),
            catalog_item: get(headers::CATALOG_ITEM),
            operation: broker::header_str(h0, headers::OPERATION)
                .unwrap_or_else(|| "upsert".into()),
            source_adapter: get(headers::SOURCE_ADAPTER),
            source_message_id: get(headers::SOURCE_MESSAGE_ID),
            content_type: delivery
                .properties
                .content_type()
                .as_ref()
                .map(|c| c.as_str().to_owned())
                .unwrap_or_else(|| "application/json".into()),
            payload: delivery.data.clone(),
            reason_class: dead.class.to_owned(),
            reason: dead.reason.clone(),
            response: dead.response.chars().take(2000).collect(),
            attempts: dead.attempts,
            history: history_json.clone(),
            replay_of: dead.replay_of.clone(),
            dead_at: now.clone(),
        };
        let attempt = Write::Attempt(Box::new(Attempt {
            idempotency_key,
            destination: self.destination.clone(),
            record_key: letter.record_key.clone(),
            record_version: letter.record_version.clone(),
            attempt: dead.attempts,
            outcome: "dead".to_owned(),
            reason: dead.reason.clone(),
            response: letter.response.clone(),
            replay_of: dead.replay_of.clone(),
            at: now,
        }));
        let (stored, _) = tokio::join!(
            self.state.store.write(Write::DeadLetter(Box::new(letter))),
            self.record(attempt)
        );
        if let Err(error) = stored {
            warn!(destination = self.destination, %error, "Could not store the dead letter; requeueing.");
            requeue(delivery).await;
            return;
        }
        let mut h = delivery.properties.headers().clone().unwrap_or_default();
        broker::put_str(&mut h, headers::DEAD_REASON, &dead.reason);
        broker::put_str(
            &mut h,
            headers::REMOTE_RESPONSE,
            &dead.response.chars().take(2000).collect::<String>(),
        );
        broker::put_str(&mut h, headers::ATTEMPT_HISTORY, &history_json);
        let message = Outgoing {
            exchange: broker::DLQ_EXCHANGE.to_owned(),
            routing_key: self.destination.clone(),
            body: delivery.data.clone(),
            properties: without_expiration(&delivery.properties).with_headers(h),
            mandatory: true,
        };
        match broker::publish_all(&self.publish, vec![message]).await {
            Ok(()) => {
                metrics::counter!(m::DEAD_LETTERED, "destination" => self.destination.clone())
                    .increment(1);
                error!(
                    destination = self.destination,
                    reason = dead.reason,
                    reason_class = dead.class,
                    outcome = "dead_lettered",
                    "Copy dead-lettered."
                );
                self.ack(delivery).await;
            }
            Err(error) => {
                warn!(destination = self.destination, %error, "Could not dead-letter the copy; requeueing.");
                requeue(delivery).await;
            }
        }
    }
}

/// Hands the copy back to its queue unsent, to be delivered again (by this worker or, after a
/// restart, another). A nack that fails is not retried: it fails because the channel is gone,
/// and the broker requeues every copy a closed channel held unacked.
async fn requeue(delivery: &Delivery) {
    let _ = delivery.nack(BasicNackOptions { requeue: true, ..BasicNackOptions::default() }).await;
}

/// Why a copy is dead.
struct Dead {
    /// `rejected` or `retries_exhausted`.
    class: &'static str,
    reason: String,
    response: String,
    attempts: i64,
    replay_of: String,
}

/// The copy's properties without any per-message TTL: a dead letter must never expire.
fn without_expiration(properties: &lapin::BasicProperties) -> lapin::BasicProperties {
    let mut out = lapin::BasicProperties::default().with_delivery_mode(2);
    if let Some(id) = properties.message_id() {
        out = out.with_message_id(id.clone());
    }
    if let Some(content_type) = properties.content_type() {
        out = out.with_content_type(content_type.clone());
    }
    if let Some(timestamp) = properties.timestamp() {
        out = out.with_timestamp(*timestamp);
    }
    if let Some(app_id) = properties.app_id() {
        out = out.with_app_id(app_id.clone());
    }
    out
}
