//! Fault injection (reliability.md §8, §11): the broker SIGKILLed mid-stream, the gateway
//! SIGKILLed mid-stream, a destination failing then recovering beside one that permanently
//! rejects some copies, and poison documents on both the ingest and the delivery side.
//!
//! Every test ends with the checker of §11.4 per destination: each expected record is delivered
//! or dead-lettered (lost = 0), nothing unexpected arrives, no record is both delivered and
//! dead-lettered, raw duplicate deliveries are reported and bounded, and every queue that is not
//! terminal (`credgate.in.*`, `credgate.out.*`, `credgate.retry.*`) is empty after the drain.
//!
//! Records are compared by record key (the `x-credgate-record-key` header the mock records),
//! since a document processed twice may carry another record version; the penalties here carry
//! a fixed `DATA_TIMESTAMP`, so all copies of one record must also share one idempotency key.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use credgate::broker::{self, Outgoing};
use credgate::testkit::{Behaviour, MockDestination};
use tokio_util::sync::CancellationToken;

use super::support::{self, Accounting, Broker, Gateway, TestConfig};

/// The record version given to every penalty (`DATA_TIMESTAMP`), so idempotency keys are stable.
const VERSION: &str = "2026-10-09T09:30:00+08:00";
/// Ingest prefetch of the test configuration (`[amqp] prefetch`).
const INGEST_PREFETCH: usize = 100;
/// Unacked copies a delivery worker may hold (`LANES × LANE_DEPTH` in runtime/delivery.rs).
const DELIVERY_WINDOW: usize = 128;

/// A wh-ggzy penalty with its own decision number, a fixed version and optionally a marker in
/// its reason text (which the credit site's column format carries).
fn penalty(n: usize, marker: Option<&str>) -> Vec<u8> {
    let mut doc: serde_json::Value = serde_json::from_slice(&support::penalty(n)).unwrap();
    doc["DATA_TIMESTAMP"] = VERSION.into();
    if let Some(marker) = marker {
        let reason = doc["CF_SY"].as_str().unwrap_or_default().to_owned();
        doc["CF_SY"] = format!("{reason}（{marker}）").into();
    }
    serde_json::to_vec(&doc).unwrap()
}

/// A record key as HTTP destinations see it in `x-credgate-record-key` (header-safe form).
fn header_key(raw: &str) -> String {
    raw.chars().filter(|c| !c.is_control()).collect::<String>().escape_default().to_string()
}

fn penalty_record_key(n: usize) -> String {
    header_key(&format!("admin_penalty:11420000MB0P1Q2R33|鄂公管罚〔2026〕{n}号"))
}

fn fixture(adapter: &str, case: &str, file: &str) -> Vec<u8> {
    std::fs::read(format!("{}/adapters/fixtures/{adapter}/{case}/{file}", support::REPO)).unwrap()
}

/// A medium-severity supervision alert (routed to the housing regulator only).
fn alert(i: usize, marker: Option<&str>) -> Vec<u8> {
    let mut doc: serde_json::Value = serde_json::from_slice(&fixture(
        "hb-smart-supervision",
        "alert-high-severity",
        "input.json",
    ))
    .unwrap();
    doc["alertId"] = alert_id(i).into();
    doc["level"] = "2".into();
    if let Some(marker) = marker {
        let text = doc["description"].as_str().unwrap_or_default().to_owned();
        doc["description"] = format!("{text} {marker}").into();
    }
    serde_json::to_vec(&doc).unwrap()
}

fn alert_id(i: usize) -> String {
    format!("FT-YJ-2026-{i:06}")
}

fn alert_record_key(i: usize) -> String {
    header_key(&format!("supervision_alert:{}", alert_id(i)))
}

/// What a mock destination saw, by record key.
#[derive(Debug, Default)]
struct Tally {
    /// record key → times answered 2xx.
    accepted: BTreeMap<String, usize>,
    /// record key → distinct idempotency keys answered 2xx.
    idempotency_keys: BTreeMap<String, BTreeSet<String>>,
    /// record key → every status answered, in order.
    statuses: BTreeMap<String, Vec<u16>>,
    requests: usize,
    failures: usize,
}

fn tally(mock: &MockDestination) -> Tally {
    let mut t = Tally::default();
    for r in mock.requests() {
        t.requests += 1;
        t.statuses.entry(r.record_key.clone()).or_default().push(r.status);
        if (200..300).contains(&r.status) {
            *t.accepted.entry(r.record_key.clone()).or_insert(0) += 1;
            t.idempotency_keys.entry(r.record_key).or_default().insert(r.idempotency_key);
        } else {
            t.failures += 1;
        }
    }
    t
}

/// The non-terminal queues of the configuration: all must be empty after the drain.
fn live_queues(config: &TestConfig) -> Vec<String> {
    broker::queue_names(&config.load())
        .into_iter()
        .filter(|q| {
            q.starts_with("credgate.in.")
                || q.starts_with("credgate.out.")
                || q.starts_with("credgate.retry.")
        })
        .collect()
}

/// Depths of the queues that are not empty (unreadable counts as `u32::MAX`).
async fn non_empty(connection: &lapin::Connection, queues: &[String]) -> BTreeMap<String, u32> {
    let mut out = BTreeMap::new();
    for q in queues {
        let depth = support::depth(connection, q).await;
        if depth != 0 {
            out.insert(q.clone(), depth);
        }
    }
    out
}

/// Waits until every queue reads empty for `stable` without interruption (a restarted quorum
/// queue may read 0 before its log is recovered, and copies can sit in retry queues); returns
/// what was still queued on timeout.
async fn wait_empty(
    connection: &lapin::Connection,
    queues: &[String],
    stable: Duration,
    timeout: Duration,
) -> Result<(), BTreeMap<String, u32>> {
    let started = Instant::now();
    let mut empty_since: Option<Instant> = None;
    loop {
        let left = non_empty(connection, queues).await;
        if left.is_empty() {
            let since = *empty_since.get_or_insert_with(Instant::now);
            if since.elapsed() >= stable {
                return Ok(());
            }
        } else {
            empty_since = None;
            if started.elapsed() > timeout {
                return Err(left);
            }
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// A dead letter: record key (header-safe form) and its headers.
type DeadLetter = (String, BTreeMap<String, String>);

async fn dead_letters(connection: &lapin::Connection, destination: &str) -> Vec<DeadLetter> {
    support::drain_queue(connection, &broker::dlq_queue(destination))
        .await
        .into_iter()
        .map(|(_, headers, _)| {
            let key =
                headers.get("x-credgate-record-key").map(|k| header_key(k)).unwrap_or_default();
            (key, headers)
        })
        .collect()
}

/// The checker for one destination, with the extra conditions of §11.4 asserted.
fn check(
    what: &str,
    expected: &BTreeSet<String>,
    seen: &Tally,
    dead: &[DeadLetter],
    max_raw_duplicates: usize,
) -> Accounting {
    let dead_keys: BTreeSet<String> = dead.iter().map(|(k, _)| k.clone()).collect();
    let accounting = support::account(expected, &seen.accepted, &dead_keys);
    let both: Vec<&String> = dead_keys.iter().filter(|k| seen.accepted.contains_key(*k)).collect();
    let missing: Vec<&String> = expected
        .iter()
        .filter(|k| !seen.accepted.contains_key(*k) && !dead_keys.contains(*k))
        .take(5)
        .collect();
    let several_keys = seen.idempotency_keys.values().filter(|k| k.len() > 1).count();
    eprintln!(
        "[{what}] expected {} delivered {} dead-lettered {} lost {} unexpected {} raw duplicates {} \
         (bound {max_raw_duplicates}) requests {} failed answers {} records with >1 idempotency key {}",
        accounting.expected,
        accounting.delivered,
        accounting.dead_lettered,
        accounting.lost,
        accounting.unexpected,
        accounting.raw_duplicates,
        seen.requests,
        seen.failures,
        several_keys,
    );
    assert_eq!(accounting.lost, 0, "[{what}] lost records, e.g. {missing:?}");
    assert_eq!(accounting.unexpected, 0, "[{what}] unexpected records delivered");
    assert!(both.is_empty(), "[{what}] delivered and dead-lettered: {both:?}");
    assert_eq!(dead.len(), dead_keys.len(), "[{what}] a record dead-lettered twice");
    assert!(
        accounting.raw_duplicates <= max_raw_duplicates,
        "[{what}] {} raw duplicates > bound {max_raw_duplicates}",
        accounting.raw_duplicates
    );
    accounting
}

/// One confirmed publish of a platform document (`routing key`, message id, body).
fn inbound(adapter: &str, doc_type: &str, message_id: &str, body: Vec<u8>) -> Outgoing {
    Outgoing {
        exchange: broker::IN_EXCHANGE.to_owned(),
        routing_key: format!("{adapter}.{doc_type}"),
        body,
        properties: broker::properties(message_id, "application/json")
            .with_correlation_id(format!("corr-{message_id}").into()),
        mandatory: true,
    }
}

async fn try_connect(uri: &str) -> Option<(lapin::Connection, lapin::Channel)> {
    let connect = lapin::Connection::connect(uri, lapin::ConnectionProperties::default());
    let connection = tokio::time::timeout(Duration::from_secs(5), connect).await.ok()?.ok()?;
    let channel = broker::confirm_channel(&connection).await.ok()?;
    Some((connection, channel))
}

/// What the platform publisher went through.
#[derive(Debug, Default)]
struct PublishReport {
    failed_windows: usize,
    republished: usize,
    first_failure: Option<Instant>,
    recovered: Option<Instant>,
}

/// A platform publisher that survives broker crashes: documents go out in windows with
/// confirms; a window whose publish or confirm fails (connection gone, nack, return, timeout) is
/// unknown, so once a connection is back the whole window is published again with the same
/// message ids (the gateway answers `duplicate` for those it already took).
async fn publish_reliably(
    uri: String,
    documents: Vec<Outgoing>,
    window: usize,
    confirmed: Arc<AtomicUsize>,
) -> PublishReport {
    let mut report = PublishReport::default();
    let mut session: Option<(lapin::Connection, lapin::Channel)> = None;
    let mut next = 0;
    let started = Instant::now();
    while next < documents.len() {
        assert!(started.elapsed() < Duration::from_secs(240), "publisher gave up at {next}");
        let Some((_, channel)) = &session else {
            session = try_connect(&uri).await;
            if session.is_none() {
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            continue;
        };
        let end = (next + window).min(documents.len());
        let batch = documents[next..end].to_vec();
        match tokio::time::timeout(Duration::from_secs(15), broker::publish_all(channel, batch))
            .await
        {
            Ok(Ok(())) => {
                if report.first_failure.is_some() && report.recovered.is_none() {
                    report.recovered = Some(Instant::now());
                }
                next = end;
                confirmed.store(next, Ordering::SeqCst);
            }
            _ => {
                report.failed_windows += 1;
                report.republished += end - next;
                report.first_failure.get_or_insert_with(Instant::now);
                if let Some((connection, _)) = session.take() {
                    let close = connection.close(200, "retry".into());
                    let _ = tokio::time::timeout(Duration::from_secs(2), close).await;
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        }
    }
    if let Some((connection, _)) = session {
        support::close(&connection).await;
    }
    report
}

async fn ready(gateway: &Gateway) -> bool {
    let url = format!("http://127.0.0.1:{}/readyz", gateway.admin_port);
    reqwest::get(url).await.is_ok_and(|r| r.status().is_success())
}

/// Neither a broker nor a gateway log may show an ack of a void delivery tag.
fn assert_clean_log(gateway: &Gateway) {
    let log = gateway.log_text();
    assert!(
        !log.contains("unknown delivery tag") && !log.contains("PRECONDITION_FAILED"),
        "gateway acked a void delivery tag:\n{log}"
    );
}

/// Raises a destination's `rate_per_second` in a test configuration: the credit site's
/// production limit (50/s) would turn these runs into throughput tests.
fn set_rate(config: &TestConfig, destination: &str, per_second: u32) {
    let path = config.path().join(format!("adapters/{destination}.toml"));
    let text = std::fs::read_to_string(&path).unwrap();
    let re = regex::Regex::new(r"rate_per_second = \d+").unwrap();
    let text = re.replace(&text, format!("rate_per_second = {per_second}").as_str());
    std::fs::write(&path, text.as_bytes()).unwrap();
}

fn endpoints<'a>(
    credit: &MockDestination,
    regulator: Option<&MockDestination>,
) -> BTreeMap<&'a str, String> {
    let mut out =
        BTreeMap::from([("hb-credit", format!("http://{}/api/credit/push", credit.addr))]);
    if let Some(regulator) = regulator {
        out.insert("hb-housing-regulator", format!("http://{}/regulator/alerts", regulator.addr));
    }
    out
}

/// R2 (CI size): the broker is SIGKILLed at ~30 % of the platform's sends and restarted; the
/// platform republishes what was unconfirmed; every penalty reaches the credit site.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_killed_mid_stream() {
    support::within(Duration::from_secs(420), async {
    if support::shared_broker().is_none() {
        return;
    }
    let started = Instant::now();
    let n = 2000;
    let broker = Broker::start_private("bk");
    let vhost_guard = support::Vhost::new(&broker, "broker-kill");
    let vhost = vhost_guard.name.clone();
    let stop = CancellationToken::new();
    let credit = support::credit_mock(Behaviour::Accept, &stop).await;
    let config = TestConfig::new(&broker, &vhost, &endpoints(&credit, None), "[1, 2]", 8);
    set_rate(&config, "hb-credit", 1000);
    let mut gateway = tokio::task::block_in_place(|| Gateway::spawn(&config));

    let documents: Vec<Outgoing> = (0..n)
        .map(|i| inbound("wh-ggzy", "penalty", &format!("bk-p-{i}"), penalty(10_000 + i, None)))
        .collect();
    let expected: BTreeSet<String> = (0..n).map(|i| penalty_record_key(10_000 + i)).collect();
    let uri = broker::amqp_uri(&broker.amqp_url(&vhost), "guest", Some("guest"), 5);
    let confirmed = Arc::new(AtomicUsize::new(0));
    let publisher = tokio::spawn(publish_reliably(uri, documents, 50, confirmed.clone()));

    assert!(
        support::wait_for(Duration::from_secs(60), || confirmed.load(Ordering::SeqCst) >= n * 3 / 10).await,
        "publisher stuck before the kill"
    );
    let at_kill = confirmed.load(Ordering::SeqCst);
    let delivered_at_kill = tally(&credit).accepted.len();
    let killed = Instant::now();
    tokio::task::block_in_place(|| broker.kill9());
    tokio::task::block_in_place(|| broker.restart());
    let broker_back = Instant::now();
    let mut gateway_back = None;
    while gateway_back.is_none() && broker_back.elapsed() < Duration::from_secs(60) {
        if ready(&gateway).await {
            gateway_back = Some(Instant::now());
        } else {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    let gateway_back = gateway_back.expect("gateway did not reconnect within 60 s of the restart");
    let report = publisher.await.unwrap();

    let all_in = support::wait_for(Duration::from_secs(120), || {
        let seen = tally(&credit);
        expected.iter().all(|k| seen.accepted.contains_key(k))
    })
    .await;
    let connection = support::connect(&broker, &vhost).await;
    let queues = live_queues(&config);
    let drained = wait_empty(&connection, &queues, Duration::from_secs(3), Duration::from_secs(60));
    let drained = drained.await;
    assert_eq!(gateway.terminate(), Some(0), "log:\n{}", gateway.log_text());
    let after_stop = non_empty(&connection, &queues).await;
    let dead = dead_letters(&connection, "hb-credit").await;
    let seen = tally(&credit);
    eprintln!(
        "[broker_killed_mid_stream] N {n}, killed at {at_kill} confirmed sends ({delivered_at_kill} \
         delivered); broker down→up {:.1} s, gateway ready {:.1} s after the broker, publisher \
         back {:.1} s after the kill ({} failed windows, {} republished); total {:.1} s",
        (broker_back - killed).as_secs_f64(),
        (gateway_back - broker_back).as_secs_f64(),
        report.recovered.map_or(f64::NAN, |r| (r - killed).as_secs_f64()),
        report.failed_windows,
        report.republished,
        started.elapsed().as_secs_f64(),
    );
    // Raw duplicates: at most the unacked copies in the delivery window plus the documents in
    // the ingest window at the kill.
    let accounting = check(
        "broker_killed_mid_stream/hb-credit",
        &expected,
        &seen,
        &dead,
        DELIVERY_WINDOW + INGEST_PREFETCH,
    );
    assert!(all_in || accounting.lost == 0);
    assert_eq!(accounting.dead_lettered, 0, "nothing should be dead-lettered");
    assert!(seen.idempotency_keys.values().all(|k| k.len() == 1), "one idempotency key per record");
    assert_eq!(drained, Ok(()), "queues not drained");
    assert!(after_stop.is_empty(), "queues not empty after the gateway stopped: {after_stop:?}");
    assert_clean_log(&gateway);
    stop.cancel();
    support::close(&connection).await;
    })
    .await
}

/// R4 (CI size): the gateway is SIGKILLed at ~30 % and ~60 % of processing and restarted each
/// time; unacked deliveries come back and are redelivered with the same idempotency key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_killed_mid_stream() {
    support::within(Duration::from_secs(420), async {
    let Some(broker) = support::shared_broker() else { return };
    let started = Instant::now();
    let n = 1500;
    let vhost_guard = support::Vhost::new(&broker, "gateway-kill");
    let vhost = vhost_guard.name.clone();
    let stop = CancellationToken::new();
    let credit = support::credit_mock(Behaviour::Accept, &stop).await;
    let config = TestConfig::new(&broker, &vhost, &endpoints(&credit, None), "[1, 2]", 8);
    set_rate(&config, "hb-credit", 1000);
    let mut gateway = tokio::task::block_in_place(|| Gateway::spawn(&config));
    let connection = support::connect(&broker, &vhost).await;
    let expected: BTreeSet<String> = (0..n).map(|i| penalty_record_key(20_000 + i)).collect();
    let documents: Vec<Outgoing> = (0..n)
        .map(|i| inbound("wh-ggzy", "penalty", &format!("gk-p-{i}"), penalty(20_000 + i, None)))
        .collect();
    // The platform keeps sending (50 documents every 150 ms) while the gateway is killed, so
    // both ingest and delivery are mid-stream at each kill.
    let publishing = {
        let channel = broker::confirm_channel(&connection).await.unwrap();
        tokio::spawn(async move {
            for window in documents.chunks(50) {
                broker::publish_all(&channel, window.to_vec()).await.unwrap();
                tokio::time::sleep(Duration::from_millis(150)).await;
            }
            Instant::now()
        })
    };

    let mut kills = Vec::new();
    for fraction in [3, 6] {
        let reached = support::wait_for(Duration::from_secs(120), || {
            tally(&credit).accepted.len() >= n * fraction / 10
        })
        .await;
        assert!(reached, "processing stalled before {fraction}0 %");
        let before = tally(&credit).accepted.len();
        tokio::task::block_in_place(|| gateway.kill9());
        kills.push(before);
        tokio::task::block_in_place(|| gateway.start());
    }

    let published = publishing.await.unwrap();
    let all_in = support::wait_for(Duration::from_secs(120), || {
        let seen = tally(&credit);
        expected.iter().all(|k| seen.accepted.contains_key(k))
    })
    .await;
    let delivered_in = published.elapsed();
    let queues = live_queues(&config);
    let drained =
        wait_empty(&connection, &queues, Duration::from_secs(2), Duration::from_secs(60)).await;
    assert_eq!(gateway.terminate(), Some(0), "log:\n{}", gateway.log_text());
    let after_stop = non_empty(&connection, &queues).await;
    let dead = dead_letters(&connection, "hb-credit").await;
    let seen = tally(&credit);
    let receipts = support::drain_queue(&connection, "credgate.receipts.wh-ggzy").await;
    let duplicates_answered = receipts
        .iter()
        .filter(|(_, _, b)| {
            serde_json::from_slice::<serde_json::Value>(b).is_ok_and(|r| r["status"] == "duplicate")
        })
        .count();
    eprintln!(
        "[gateway_killed_mid_stream] N {n}, kills at {kills:?} delivered records, all delivered \
         {:.1} s after the last publish, {duplicates_answered} redelivered documents answered \
         `duplicate`; total {:.1} s",
        delivered_in.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
    let accounting = check(
        "gateway_killed_mid_stream/hb-credit",
        &expected,
        &seen,
        &dead,
        (INGEST_PREFETCH + DELIVERY_WINDOW) * kills.len(),
    );
    assert!(all_in || accounting.lost == 0);
    assert_eq!(accounting.dead_lettered, 0);
    // Every redelivered copy carried the same Idempotency-Key as the first.
    assert!(seen.idempotency_keys.values().all(|k| k.len() == 1), "one idempotency key per record");
    assert_eq!(drained, Ok(()), "queues not drained");
    assert!(after_stop.is_empty(), "queues not empty after the gateway stopped: {after_stop:?}");
    assert_clean_log(&gateway);
    stop.cancel();
    support::close(&connection).await;
    })
    .await
}

/// R6/R8: the credit site answers 500 for 6 s and then recovers — every penalty is delivered
/// (through the retry tiers and the destination's circuit breaker), nothing dead-lettered; meanwhile the regulator permanently rejects
/// the alerts carrying a marker — those are dead-lettered after one attempt with the reason and
/// the remote answer, and the regulator's other alerts are delivered while the credit site is
/// still failing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn destination_failing_then_recovering_and_one_permanently_rejecting() {
    support::within(Duration::from_secs(420), async {
        let Some(broker) = support::shared_broker() else { return };
        let started = Instant::now();
        let (n_penalties, n_alerts) = (40, 30);
        const MARKER: &str = "REJECT-ME-400";
        let rejected: BTreeSet<usize> = (0..n_alerts).filter(|i| i % 5 == 2).collect();
        let vhost_guard = support::Vhost::new(&broker, "dest-faults");
        let vhost = vhost_guard.name.clone();
        let stop = CancellationToken::new();
        let regulator = MockDestination::start(
            "127.0.0.1:0",
            Behaviour::RejectContaining(MARKER.into()),
            None,
            stop.clone(),
        )
        .await
        .unwrap();
        // The credit site fails for 6 s from the moment publishing starts: its mock starts on a
        // reserved port once the gateway is up (nothing reaches it before the first publish).
        let credit_port = support::free_port_near(0);
        let endpoints = BTreeMap::from([
            ("hb-credit", format!("http://127.0.0.1:{credit_port}/api/credit/push")),
            ("hb-housing-regulator", format!("http://{}/regulator/alerts", regulator.addr)),
        ]);
        let config = TestConfig::new(&broker, &vhost, &endpoints, "[1, 2]", 8);
        set_rate(&config, "hb-credit", 1000);
        let mut gateway = tokio::task::block_in_place(|| Gateway::spawn(&config));
        let connection = support::connect(&broker, &vhost).await;
        let channel = broker::confirm_channel(&connection).await.unwrap();
        let fail_until = Instant::now() + Duration::from_secs(6);
        let credit =
            support::credit_mock_at(credit_port, Behaviour::FailUntil(fail_until), &stop).await;
        let published = Instant::now();
        let mut documents = Vec::new();
        for i in 0..n_penalties.max(n_alerts) {
            if i < n_penalties {
                documents.push(inbound(
                    "wh-ggzy",
                    "penalty",
                    &format!("df-p-{i}"),
                    penalty(30_000 + i, None),
                ));
            }
            if i < n_alerts {
                let marker = rejected.contains(&i).then_some(MARKER);
                documents.push(inbound(
                    "hb-smart-supervision",
                    "alert",
                    &format!("df-a-{i}"),
                    alert(i, marker),
                ));
            }
        }
        broker::publish_all(&channel, documents).await.unwrap();

        let good_alerts: BTreeSet<String> =
            (0..n_alerts).filter(|i| !rejected.contains(i)).map(alert_record_key).collect();
        let bad_alerts: BTreeSet<String> = rejected.iter().map(|i| alert_record_key(*i)).collect();
        let all_alerts: BTreeSet<String> = good_alerts.union(&bad_alerts).cloned().collect();
        let penalties: BTreeSet<String> =
            (0..n_penalties).map(|i| penalty_record_key(30_000 + i)).collect();

        // Isolation: the regulator gets its good alerts while the credit site still fails.
        let regulator_done = support::wait_for(Duration::from_secs(30), || {
            let seen = tally(&regulator);
            good_alerts.iter().all(|k| seen.accepted.contains_key(k))
        })
        .await;
        let regulator_done_at = Instant::now();
        let credit_while_failing = tally(&credit);
        assert!(regulator_done, "regulator's good alerts not delivered");
        assert!(
            regulator_done_at < fail_until,
            "regulator's alerts were delivered only after the credit site recovered"
        );
        assert!(credit_while_failing.accepted.is_empty(), "credit site accepted while failing");
        assert!(credit_while_failing.failures > 0, "credit site saw no requests while failing");

        let credit_done = support::wait_for(Duration::from_secs(60), || {
            let seen = tally(&credit);
            penalties.iter().all(|k| seen.accepted.contains_key(k))
        })
        .await;
        let credit_done_in = published.elapsed();
        let queues = live_queues(&config);
        let drained =
            wait_empty(&connection, &queues, Duration::from_secs(2), Duration::from_secs(60)).await;
        assert_eq!(gateway.terminate(), Some(0), "log:\n{}", gateway.log_text());
        let credit_seen = tally(&credit);
        let regulator_seen = tally(&regulator);
        let credit_dead = dead_letters(&connection, "hb-credit").await;
        let regulator_dead = dead_letters(&connection, "hb-housing-regulator").await;
        let attempts: Vec<usize> = credit_seen.statuses.values().map(Vec::len).collect();
        eprintln!(
            "[destination_failing…] credit site: {n_penalties} penalties, {} requests ({} answered \
         500), attempts per record {}..={}, all delivered {:.1} s after publishing (failure \
         window {:.1} s); regulator: {} good alerts delivered {:.1} s after publishing, {} \
         rejected; total {:.1} s",
            credit_seen.requests,
            credit_seen.failures,
            attempts.iter().min().unwrap_or(&0),
            attempts.iter().max().unwrap_or(&0),
            credit_done_in.as_secs_f64(),
            (fail_until - published).as_secs_f64(),
            good_alerts.len(),
            (regulator_done_at - published).as_secs_f64(),
            bad_alerts.len(),
            started.elapsed().as_secs_f64()
        );
        assert!(credit_done, "credit site backlog not delivered after recovery");
        let credit_accounting =
            check("destination_failing…/hb-credit", &penalties, &credit_seen, &credit_dead, 0);
        assert_eq!(credit_accounting.dead_lettered, 0, "nothing dead-lettered at the credit site");
        // The destination's circuit breaker opens after a few 500s, so the copies it held back
        // are sent once after the recovery; those that got a 500 were retried.
        assert!(attempts.iter().any(|a| *a >= 2), "no penalty was retried after a 500");
        assert!(
            credit_seen.statuses.values().flatten().all(|s| *s == 200 || *s == 500),
            "unexpected statuses at the credit site"
        );
        let regulator_accounting = check(
            "destination_failing…/hb-housing-regulator",
            &all_alerts,
            &regulator_seen,
            &regulator_dead,
            0,
        );
        assert_eq!(regulator_accounting.delivered, good_alerts.len());
        assert_eq!(regulator_accounting.dead_lettered, bad_alerts.len());
        for (key, headers) in &regulator_dead {
            assert!(bad_alerts.contains(key), "a good alert was dead-lettered: {key}");
            assert_eq!(regulator_seen.statuses[key], vec![400], "{key}: not exactly one attempt");
            assert_eq!(headers.get("x-credgate-dead-reason").map(String::as_str), Some("http 400"));
            let remote = headers.get("x-credgate-remote-response").cloned().unwrap_or_default();
            assert!(
                remote.starts_with("400") && remote.contains("E500"),
                "remote answer: {remote}"
            );
            let history: Vec<serde_json::Value> =
                serde_json::from_str(&headers["x-credgate-attempt-history"]).unwrap();
            assert_eq!(history.len(), 1, "{key}: attempt history {history:?}");
            assert_eq!(history[0]["outcome"], "permanent");
        }
        assert_eq!(drained, Ok(()), "queues not drained");
        stop.cancel();
        support::close(&connection).await;
    })
    .await
}

/// R8 / §9: undecodable and schema-invalid documents interleaved with good ones never block the
/// inbound queue — each is kept in the rejected queue with a rejected receipt — and a copy the
/// destination permanently rejects does not hold up the copies queued behind it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_document_does_not_block_the_queue() {
    support::within(Duration::from_secs(420), async {
    let Some(broker) = support::shared_broker() else { return };
    let started = Instant::now();
    const MARKER: &str = "DELIVERY-POISON";
    let vhost_guard = support::Vhost::new(&broker, "poison");
    let vhost = vhost_guard.name.clone();
    let stop = CancellationToken::new();
    let credit = support::credit_mock(Behaviour::RejectContaining(MARKER.into()), &stop).await;
    let config = TestConfig::new(&broker, &vhost, &endpoints(&credit, None), "[1, 2]", 8);
    set_rate(&config, "hb-credit", 1000);
    let mut gateway = tokio::task::block_in_place(|| Gateway::spawn(&config));
    let connection = support::connect(&broker, &vhost).await;
    let channel = broker::confirm_channel(&connection).await.unwrap();

    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000)).into_bytes();
    let mut bad_uscc: serde_json::Value = serde_json::from_slice(&penalty(40_900, None)).unwrap();
    bad_uscc["CF_XDR_SHXYM"] = "91420100MA4K3R7QXX".into();
    let mut no_doc_no: serde_json::Value = serde_json::from_slice(&penalty(40_901, None)).unwrap();
    no_doc_no.as_object_mut().unwrap().remove("CF_WSH");
    let mut bad_date: serde_json::Value = serde_json::from_slice(&penalty(40_902, None)).unwrap();
    bad_date["CF_JDRQ"] = "2026-02-30".into();
    let poison: Vec<(&str, Vec<u8>)> = vec![
        ("not-json", b"{not json".to_vec()),
        ("invalid-utf8", vec![0xff, 0xfe, 0x00, 0x81, b'{']),
        ("empty", Vec::new()),
        ("json-null", b"null".to_vec()),
        ("deep-nesting", deep),
        ("bad-uscc", serde_json::to_vec(&bad_uscc).unwrap()),
        ("missing-doc-no", serde_json::to_vec(&no_doc_no).unwrap()),
        ("impossible-date", serde_json::to_vec(&bad_date).unwrap()),
    ];
    // Copies the credit site rejects go first, so the good copies queue behind them.
    let n_rejected_copies = 5;
    let n_good = 40;
    let mut documents = Vec::new();
    for i in 0..n_rejected_copies {
        documents.push(inbound(
            "wh-ggzy",
            "penalty",
            &format!("po-d-{i}"),
            penalty(40_000 + i, Some(MARKER)),
        ));
    }
    let mut poison_ids = Vec::new();
    let mut poison = poison.into_iter();
    for i in 0..n_good {
        documents.push(inbound(
            "wh-ggzy",
            "penalty",
            &format!("po-g-{i}"),
            penalty(40_100 + i, None),
        ));
        if i % 4 == 1
            && let Some((name, body)) = poison.next()
        {
            let id = format!("po-x-{name}");
            documents.push(inbound("wh-ggzy", "penalty", &id, body));
            poison_ids.push(id);
        }
    }
    assert!(poison.next().is_none(), "not every poison document was interleaved");
    let published = Instant::now();
    broker::publish_all(&channel, documents).await.unwrap();
    // And one without a message id (cannot be deduplicated: rejected with a receipt).
    let mut no_id = inbound("wh-ggzy", "penalty", "", penalty(40_903, None));
    no_id.properties = lapin::BasicProperties::default().with_delivery_mode(2);
    broker::publish_all(&channel, vec![no_id]).await.unwrap();
    let n_poison = poison_ids.len() + 1;
    let total_documents = n_rejected_copies + n_good + n_poison;

    let good: BTreeSet<String> = (0..n_good).map(|i| penalty_record_key(40_100 + i)).collect();
    let refused: BTreeSet<String> =
        (0..n_rejected_copies).map(|i| penalty_record_key(40_000 + i)).collect();
    let expected: BTreeSet<String> = good.union(&refused).cloned().collect();
    let delivered = support::wait_for(Duration::from_secs(30), || {
        let seen = tally(&credit);
        good.iter().all(|k| seen.accepted.contains_key(k))
    })
    .await;
    let delivered_in = published.elapsed();
    let conn = &connection;
    support::eventually(Duration::from_secs(30), "a receipt for every document", || async move {
        support::depth(conn, "credgate.receipts.wh-ggzy").await as usize >= total_documents
    })
    .await;
    let queues = live_queues(&config);
    let drained =
        wait_empty(&connection, &queues, Duration::from_secs(2), Duration::from_secs(30)).await;
    assert_eq!(gateway.terminate(), Some(0), "log:\n{}", gateway.log_text());
    let seen = tally(&credit);
    let dead = dead_letters(&connection, "hb-credit").await;
    let rejected = support::drain_queue(&connection, "credgate.rejected.wh-ggzy").await;
    let receipts: Vec<serde_json::Value> =
        support::drain_queue(&connection, "credgate.receipts.wh-ggzy")
            .await
            .iter()
            .map(|(_, _, b)| serde_json::from_slice(b).unwrap())
            .collect();
    eprintln!(
        "[poison_document_does_not_block_the_queue] {n_good} good + {n_poison} poison documents + \
         {n_rejected_copies} copies refused by the destination; good copies all delivered {:.1} \
         s after publishing; {} kept as rejected, {} dead-lettered; total {:.1} s",
        delivered_in.as_secs_f64(),
        rejected.len(),
        dead.len(),
        started.elapsed().as_secs_f64()
    );
    assert!(delivered, "good penalties not delivered");
    let accounting = check("poison/hb-credit", &expected, &seen, &dead, 0);
    assert_eq!(accounting.delivered, n_good);
    assert_eq!(accounting.dead_lettered, n_rejected_copies);
    for (key, headers) in &dead {
        assert!(refused.contains(key), "{key} dead-lettered");
        assert_eq!(seen.statuses[key], vec![400], "{key}: not exactly one attempt");
        assert_eq!(headers.get("x-credgate-dead-reason").map(String::as_str), Some("http 400"));
    }
    // Ingest side: every poison document kept once with its violations, with a rejected receipt.
    assert_eq!(
        rejected.len(),
        n_poison,
        "rejected queue: {:?}",
        rejected.iter().map(|r| &r.0).collect::<Vec<_>>()
    );
    for id in &poison_ids {
        let kept = rejected
            .iter()
            .filter(|(_, h, _)| h.get("x-credgate-source-message-id") == Some(id))
            .count();
        assert_eq!(kept, 1, "{id} kept {kept} times in the rejected queue");
        let receipt = receipts.iter().find(|r| r["message_id"] == id.as_str());
        assert_eq!(
            receipt.map(|r| r["status"].clone()),
            Some(serde_json::json!("rejected")),
            "{id}: receipt {receipt:?}"
        );
    }
    assert!(
        rejected.iter().any(|(id, _, _)| id.starts_with("missing-message-id:")),
        "document without a message id not kept"
    );
    assert!(
        receipts.iter().any(|r| r["message_id"] == ""
            && r["status"] == "rejected"
            && r["violations"][0]["rule"] == "MESSAGE-ID"),
        "no rejected receipt for the document without a message id"
    );
    for i in 0..n_good {
        let id = format!("po-g-{i}");
        let receipt = receipts.iter().find(|r| r["message_id"] == id.as_str()).unwrap();
        assert!(
            receipt["status"] == "accepted" || receipt["status"] == "accepted_with_warnings",
            "{id}: {receipt}"
        );
    }
    assert_eq!(receipts.len(), total_documents);
    assert_eq!(drained, Ok(()), "queues not drained");
    stop.cancel();
    support::close(&connection).await;
    })
    .await
}
