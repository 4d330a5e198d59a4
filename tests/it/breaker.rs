//! The circuit breaker per destination (issue 5 item 6): the credit site answers 500 for a
//! while; with the breaker it receives few requests while failing, without it every copy keeps
//! retrying. The regulator (another destination) keeps delivering meanwhile, and after the
//! recovery every penalty is delivered: lost = 0, nothing dead-lettered.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use credgate::broker::{self, Outgoing};
use credgate::testkit::{Behaviour, MockDestination};
use tokio_util::sync::CancellationToken;

use super::support::{self, Broker, Gateway, TestConfig};

const VERSION: &str = "2026-10-09T09:30:00+08:00";
/// How long the credit site answers 500 after publishing starts.
const FAILING: Duration = Duration::from_secs(10);

fn header_key(raw: &str) -> String {
    raw.chars().filter(|c| !c.is_control()).collect::<String>().escape_default().to_string()
}

fn penalty(n: usize) -> Vec<u8> {
    let mut doc: serde_json::Value = serde_json::from_slice(&support::penalty(n)).unwrap();
    doc["DATA_TIMESTAMP"] = VERSION.into();
    serde_json::to_vec(&doc).unwrap()
}

fn alert(i: usize) -> Vec<u8> {
    let path = format!(
        "{}/adapters/fixtures/hb-smart-supervision/alert-high-severity/input.json",
        support::REPO
    );
    let mut doc: serde_json::Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    doc["alertId"] = format!("BR-YJ-2026-{i:06}").into();
    doc["level"] = "2".into();
    serde_json::to_vec(&doc).unwrap()
}

fn inbound(adapter: &str, doc_type: &str, message_id: &str, body: Vec<u8>) -> Outgoing {
    Outgoing {
        exchange: broker::IN_EXCHANGE.to_owned(),
        routing_key: format!("{adapter}.{doc_type}"),
        body,
        properties: broker::properties(message_id, "application/json"),
        mandatory: true,
    }
}

/// Deletes a run's vhost when it ends, also when it fails.
/// What one run saw.
#[derive(Debug)]
struct Run {
    /// The worst `breaker` of hb-credit seen in GET /v1/destinations while it failed.
    api_state: String,
    /// The worst `credgate_destination_breaker_state{destination="hb-credit"}` seen.
    gauge: f64,
    /// Requests the credit site answered 500 (all of them fall in its failing window).
    failed_requests: usize,
    regulator_done_while_failing: bool,
    lost: usize,
    dead_lettered: usize,
    delivered: usize,
}

/// Polls the admin API until the breaker reads open (or `timeout`): (state, gauge).
async fn observe_breaker(admin_port: u16, timeout: Duration) -> (String, f64) {
    let client = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{admin_port}");
    let started = Instant::now();
    let (mut state, mut gauge) = (String::new(), 0.0_f64);
    while started.elapsed() < timeout && state != "open" {
        let destinations: serde_json::Value = match client
            .get(format!("{base}/v1/destinations"))
            .bearer_auth(support::SECRET)
            .send()
            .await
        {
            Ok(r) => r.json().await.unwrap_or_default(),
            Err(_) => serde_json::Value::Null,
        };
        if let Some(list) = destinations["destinations"].as_array()
            && let Some(credit) = list.iter().find(|d| d["destination"] == "hb-credit")
        {
            let now = credit["breaker"].as_str().unwrap_or_default().to_owned();
            if state != "open" {
                state = now;
            }
        }
        let metrics =
            match client.get(format!("{base}/metrics")).bearer_auth(support::SECRET).send().await {
                Ok(r) => r.text().await.unwrap_or_default(),
                Err(_) => String::new(),
            };
        for line in metrics.lines() {
            if let Some(value) =
                line.strip_prefix("credgate_destination_breaker_state{destination=\"hb-credit\"} ")
            {
                gauge = gauge.max(value.trim().parse().unwrap_or(0.0));
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    (state, gauge)
}

async fn run(broker: &Broker, tag: &str, breaker: bool) -> Run {
    let (n_penalties, n_alerts) = (40, 20);
    let vhost_guard = support::Vhost::new(broker, tag);
    let vhost = vhost_guard.name.clone();
    let stop = CancellationToken::new();
    let regulator =
        MockDestination::start("127.0.0.1:0", Behaviour::Accept, None, stop.clone()).await.unwrap();
    let credit_port = support::free_port_near(0);
    let endpoints = BTreeMap::from([
        ("hb-credit", format!("http://127.0.0.1:{credit_port}/api/credit/push")),
        ("hb-housing-regulator", format!("http://{}/regulator/alerts", regulator.addr)),
    ]);
    // Retry tiers of 1–2 s and enough attempts that nothing is dead-lettered in the window.
    let config = TestConfig::new(broker, &vhost, &endpoints, "[1, 2]", 12);
    let process = config.path().join("credgate.toml");
    let mut text = std::fs::read_to_string(&process).unwrap();
    text.push_str(&format!(
        "\n[outbound.breaker]\nenabled = {breaker}\nfailure_threshold = 3\nopen_secs = 1\nmax_open_secs = 4\n"
    ));
    std::fs::write(&process, text).unwrap();
    let credit_file = config.path().join("adapters/hb-credit.toml");
    let text = std::fs::read_to_string(&credit_file).unwrap();
    let re = regex::Regex::new(r"rate_per_second = \d+").unwrap();
    std::fs::write(&credit_file, re.replace(&text, "rate_per_second = 1000").as_bytes()).unwrap();

    // Phases are logged with their time, so a run that overruns its bound says where.
    let started = Instant::now();
    let phase =
        |what: &str| eprintln!("[breaker {tag}] {:>5.1} s {what}", started.elapsed().as_secs_f64());
    let mut gateway = tokio::task::block_in_place(|| Gateway::spawn(&config));
    phase("gateway started");
    let connection = support::connect(broker, &vhost).await;
    let channel = broker::confirm_channel(&connection).await.unwrap();
    let fail_until = Instant::now() + FAILING;
    let credit =
        support::credit_mock_at(credit_port, Behaviour::FailUntil(fail_until), &stop).await;
    let mut documents = Vec::new();
    for i in 0..n_penalties {
        documents.push(inbound("wh-ggzy", "penalty", &format!("{tag}-p-{i}"), penalty(50_000 + i)));
    }
    for i in 0..n_alerts {
        documents.push(inbound("hb-smart-supervision", "alert", &format!("{tag}-a-{i}"), alert(i)));
    }
    broker::publish_all(&channel, documents).await.unwrap();
    phase("published");

    // The state is visible while the credit site fails: in GET /v1/destinations and the gauge.
    let (api_state, gauge) = observe_breaker(config.admin_port, Duration::from_secs(5)).await;

    let alerts: BTreeSet<String> = (0..n_alerts)
        .map(|i| header_key(&format!("supervision_alert:BR-YJ-2026-{i:06}")))
        .collect();
    let regulator_done = support::wait_for(Duration::from_secs(30), || {
        let seen: BTreeSet<String> =
            regulator.requests().into_iter().map(|r| r.record_key).collect();
        alerts.iter().all(|k| seen.contains(k))
    })
    .await;
    let regulator_done_while_failing = regulator_done && Instant::now() < fail_until;
    phase("regulator checked");

    let expected: BTreeSet<String> =
        (0..n_penalties).map(|i| support::penalty_key("hb-credit", 50_000 + i, VERSION)).collect();
    let all_in = support::wait_for(Duration::from_secs(90), || {
        let accepted = credit.accepted();
        expected.iter().all(|k| accepted.contains_key(k))
    })
    .await;
    phase("credit site checked");
    assert_eq!(
        tokio::task::block_in_place(|| gateway.terminate()),
        Some(0),
        "log:\n{}",
        gateway.log_text()
    );
    phase("gateway stopped");
    // A fresh connection for the count: the first one has lived through the whole run, and a
    // dead one would read as "no dead letters".
    let counting = support::connect(broker, &vhost).await;
    let dead: BTreeSet<String> = support::drain_queue(&counting, &broker::dlq_queue("hb-credit"))
        .await
        .into_iter()
        .map(|(id, _, _)| id)
        .collect();
    let accounting = support::account(&expected, &credit.accepted(), &dead);
    let failed_requests =
        credit.requests().iter().filter(|r| !(200..300).contains(&r.status)).count();
    eprintln!(
        "[breaker {tag}] breaker {breaker} (seen: {api_state}, gauge {gauge}): credit site answered 500 to {failed_requests} requests \
         in its {} s failing window; regulator done while failing: {regulator_done_while_failing}; \
         all delivered: {all_in}; {accounting:?}",
        FAILING.as_secs()
    );
    support::close(&counting).await;
    support::close(&connection).await;
    drop(vhost_guard);
    stop.cancel();
    Run {
        api_state,
        gauge,
        failed_requests,
        regulator_done_while_failing,
        lost: accounting.lost,
        dead_lettered: accounting.dead_lettered,
        delivered: accounting.delivered,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn breaker_backs_off_a_failing_destination_only() {
    // Two gateway runs of up to ~3 min each when the machine is loaded by the other tests.
    support::within(Duration::from_secs(600), async {
        let Some(broker) = support::shared_broker() else { return };
        let with = run(&broker, "breaker-on", true).await;
        let without = run(&broker, "breaker-off", false).await;
        for r in [&with, &without] {
            assert_eq!(r.lost, 0, "{r:?}");
            assert_eq!(r.dead_lettered, 0, "{r:?}");
            assert_eq!(r.delivered, 40, "{r:?}");
            assert!(
                r.regulator_done_while_failing,
                "the regulator waited for the credit site: {r:?}"
            );
        }
        assert_eq!((with.api_state.as_str(), with.gauge), ("open", 2.0), "{with:?}");
        assert_eq!((without.api_state.as_str(), without.gauge), ("closed", 0.0), "{without:?}");
        // Without a breaker each of the 40 copies retries every 1–2 s for 10 s.
        assert!(without.failed_requests >= 100, "{without:?}");
        // With it: the lanes' first failures (at most one per lane in flight when it opens) and one
        // trial per open period (1, 2, 4, 4 s).
        assert!(with.failed_requests <= 25, "{with:?}");
    })
    .await
}
