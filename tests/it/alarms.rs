//! A broker resource alarm (disk) blocks publishing: pushes are answered 503 with
//! `Retry-After` within seconds instead of hanging, and go through once the alarm clears.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use credgate::testkit::Behaviour;
use tokio_util::sync::CancellationToken;

use super::support::{self, Broker, Gateway, TestConfig};

async fn push(port: u16, id: &str, n: usize) -> reqwest::Response {
    let body = support::penalty(n);
    let ts = jiff::Timestamp::now().as_second().to_string();
    reqwest::Client::new()
        .post(format!("http://127.0.0.1:{port}/v1/inbound/wh-ggzy/penalty"))
        .header("content-type", "application/json")
        .header("x-credgate-key-id", "wh-ggzy-2026")
        .header("x-credgate-signature", credgate::runtime::sinks::sign(support::SECRET, &ts, &body))
        .header("x-credgate-timestamp", ts)
        .header("x-credgate-message-id", id)
        .body(body)
        .timeout(Duration::from_secs(90))
        .send()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resource_alarm_answers_503_then_recovers() {
    support::within(Duration::from_secs(420), async {
        if support::shared_broker().is_none() {
            return;
        }
        let broker = Broker::start_private("alarm");
        let vhost = broker.vhost("alarm");
        let stop = CancellationToken::new();
        let credit = support::credit_mock(Behaviour::Accept, &stop).await;
        let endpoints = BTreeMap::from([("hb-credit", format!("http://{}/push", credit.addr))]);
        let config = TestConfig::new(&broker, &vhost, &endpoints, "[1, 2]", 5);
        let mut gateway = Gateway::spawn(&config);

        assert_eq!(push(config.ingest_port, "alarm-1", 1).await.status(), 202);
        assert!(broker.ctl(&["set_disk_free_limit", "100000GB"]), "set_disk_free_limit");
        let started = Instant::now();
        let blocked = push(config.ingest_port, "alarm-2", 2).await;
        let waited = started.elapsed();
        assert_eq!(blocked.status(), 503);
        assert!(blocked.headers().contains_key("retry-after"));
        assert!(waited < Duration::from_secs(10), "push held {waited:?} during the alarm");
        // While blocked, further pushes are refused at once.
        let started = Instant::now();
        assert_eq!(push(config.ingest_port, "alarm-3", 3).await.status(), 503);
        assert!(started.elapsed() < Duration::from_secs(2));
        eprintln!("alarm: first push answered 503 after {waited:?}");

        assert!(broker.ctl(&["set_disk_free_limit", "50MB"]));
        // The platform retries with the same ids until accepted.
        for (id, n) in [("alarm-2", 2), ("alarm-3", 3)] {
            let started = Instant::now();
            loop {
                let status = push(config.ingest_port, id, n).await.status().as_u16();
                if status == 202 || status == 200 {
                    break;
                }
                assert!(
                    started.elapsed() < Duration::from_secs(60),
                    "{id} still {status} after the alarm cleared"
                );
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
        support::eventually(Duration::from_secs(30), "all three penalties delivered", || {
            let keys = credit
                .requests()
                .iter()
                .filter(|r| r.status == 200)
                .map(|r| r.record_key.clone())
                .collect::<std::collections::BTreeSet<_>>();
            async move { keys.len() == 3 }
        })
        .await;
        assert_eq!(gateway.terminate(), Some(0));
        stop.cancel();
    })
    .await
}
