//! Every direction end to end on a real broker (the shared node, in a vhost of its own):
//! upward 双公示 to the provincial credit site over signed HTTP, downward list entries to the
//! trading platforms over AMQP, sideways alerts to the regulator and clean governance, disposal
//! feedback back to supervision; receipts; rejected input; duplicates; HTTP push with its
//! signature checks; graceful shutdown.

use std::collections::BTreeSet;

use std::time::Duration;

use credgate::testkit;

use super::support::{self, Publisher, Rig, RigSetup};

fn fixture(adapter: &str, case: &str, file: &str) -> Vec<u8> {
    std::fs::read(format!("{}/adapters/fixtures/{adapter}/{case}/{file}", support::REPO)).unwrap()
}

/// Publishes one fixture document as its platform would.
async fn publish_fixture(
    channel: &lapin::Channel,
    adapter: &str,
    doc_type: &str,
    message_id: &str,
    content_type: &str,
    case: &str,
    file: &str,
) {
    let body = fixture(adapter, case, file);
    testkit::publish_document(channel, adapter, doc_type, message_id, content_type, &body)
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_direction_end_to_end() {
    support::within(Duration::from_secs(300), async {
        let Some(broker) = support::shared_broker() else { return };
        let rig = RigSetup::new(&broker, "e2e").regulator().start().await;
        let trading = rig.collect("hb-ggzy-trading", "t").await;
        let clean_gov = rig.collect("hb-clean-gov", "t").await;
        let supervision = rig.collect("hb-smart-supervision", "t").await;
        // Bound in the order the test declared them, so they are dropped in reverse: the
        // vhost last.
        let Rig {
            vhost: _vhost,
            stop,
            credit,
            regulator,
            config,
            mut gateway,
            connection,
            publisher: Publisher { channel },
            ..
        } = rig;

        // Upward: 30 penalties from the city bureau over AMQP.
        let n = 30;
        for i in 0..n {
            testkit::publish_document(
                &channel,
                "wh-ggzy",
                "penalty",
                &format!("e2e-p-{i}"),
                "application/json",
                &support::penalty(1000 + i),
            )
            .await
            .unwrap();
        }
        // Downward: a severe-dishonesty listing from the provincial platform.
        publish_fixture(
            &channel,
            "hb-credit",
            "blacklist",
            "e2e-bl",
            "application/json",
            "blacklist-listing-ok",
            "input.json",
        )
        .await;
        // Sideways: a high-severity alert, and the regulator's disposal feedback.
        publish_fixture(
            &channel,
            "hb-smart-supervision",
            "alert",
            "e2e-alert",
            "application/json",
            "alert-high-severity",
            "input.json",
        )
        .await;
        publish_fixture(
            &channel,
            "hb-housing-regulator",
            "disposal",
            "e2e-disp",
            "application/json",
            "disposal-ok",
            "input.json",
        )
        .await;
        // A GB18030 CSV with one bad row, and a document that cannot be decoded at all.
        publish_fixture(
            &channel,
            "gc-county-credit",
            "penalty_csv",
            "e2e-csv",
            "text/csv",
            "penalty-csv-ok",
            "penalties.csv",
        )
        .await;
        testkit::publish_document(
            &channel,
            "wh-ggzy",
            "penalty",
            "e2e-garbage",
            "application/json",
            b"{not json",
        )
        .await
        .unwrap();
        // The same message id again: answered `duplicate`, no second copy.
        testkit::publish_document(
            &channel,
            "wh-ggzy",
            "penalty",
            "e2e-p-0",
            "application/json",
            &support::penalty(1000),
        )
        .await
        .unwrap();

        support::eventually(
            Duration::from_secs(60),
            "penalties delivered to the credit site",
            || {
                let accepted = credit.accepted();
                let keys: BTreeSet<String> = accepted.keys().cloned().collect();
                // 30 penalties and 2 of the 3 good CSV rows (the listing came from hb-credit, so
                // not back; row 2, a 1 500 元 fine of a 个体工商户, is 轻微 and not forwarded for
                // publicity).
                async move { keys.len() >= n + 2 }
            },
        )
        .await;
        // Every delivery to the provincial site was signed with the configured key.
        assert!(credit.requests().iter().all(|r| r.signature_ok == Some(true)));
        // The record versions are receipt times here, so match penalties by record key.
        let credit_keys: BTreeSet<String> =
            credit.requests().iter().map(|r| r.record_key.clone()).collect();
        for i in 0..n {
            let key = format!("admin_penalty:11420000MB0P1Q2R33|鄂公管罚〔2026〕{}号", 1000 + i);
            assert!(
                credit_keys
                    .iter()
                    .any(|k| k.contains(&key.escape_default().to_string()) || *k == key),
                "penalty {i} not delivered upward"
            );
        }
        support::eventually(
            Duration::from_secs(30),
            "list entry, alert and disposal delivered",
            || {
                let (t, c, s, r) = (
                    trading.lock().unwrap().len(),
                    clean_gov.lock().unwrap().len(),
                    supervision.lock().unwrap().len(),
                    regulator.accepted().len(),
                );
                async move { t >= 1 && c >= 1 && s >= 1 && r >= 1 }
            },
        )
        .await;
        // The trading platform sees the listing without personal identifiers of natural persons.
        let listing: serde_json::Value =
            serde_json::from_slice(&trading.lock().unwrap()[0].1).unwrap();
        assert_eq!(listing["catalog_item"], "dishonest_list_entry");

        // Receipts: one per inbound message, the repeat answered `duplicate`.
        let receipts = support::drain_queue(&connection, "credgate.receipts.wh-ggzy").await;
        let statuses: Vec<serde_json::Value> =
            receipts.iter().map(|(_, _, b)| serde_json::from_slice(b).unwrap()).collect();
        assert_eq!(statuses.iter().filter(|r| r["status"] == "duplicate").count(), 1);
        assert_eq!(
            statuses
                .iter()
                .filter(|r| r["message_id"] == "e2e-garbage" && r["status"] == "rejected")
                .count(),
            1
        );
        assert_eq!(statuses.len(), n + 2);
        // Rejected input is kept with its violation list.
        let rejected = support::drain_queue(&connection, "credgate.rejected.wh-ggzy").await;
        assert_eq!(rejected.len(), 1);
        assert_eq!(rejected[0].2, b"{not json");
        assert!(rejected[0].1.get("x-credgate-violations").is_some_and(|v| v.contains("DECODE")));
        let csv_rejected =
            support::drain_queue(&connection, "credgate.rejected.gc-county-credit").await;
        assert_eq!(csv_rejected.len(), 1, "the CSV with one bad row is kept for correction");

        // HTTP push: signed, answered after confirms; a repeat is `duplicate`; forgeries refused.
        let client = reqwest::Client::new();
        let url = format!("http://127.0.0.1:{}/v1/inbound/wh-ggzy/penalty", config.ingest_port);
        let body = support::penalty(2000);
        let push = |body: Vec<u8>, id: &str, secret: &str, skew: i64| {
            let ts = (jiff::Timestamp::now().as_second() + skew).to_string();
            let signature = credgate::runtime::sinks::sign(secret, &ts, &body);
            client
                .post(&url)
                .header("content-type", "application/json")
                .header("x-credgate-key-id", "wh-ggzy-2026")
                .header("x-credgate-timestamp", ts)
                .header("x-credgate-signature", signature)
                .header("x-credgate-message-id", id)
                .body(body)
                .send()
        };
        let first = push(body.clone(), "e2e-http-1", support::SECRET, 0).await.unwrap();
        assert_eq!(first.status(), 202);
        let receipt: serde_json::Value = first.json().await.unwrap();
        assert_eq!(receipt["routed_to"], serde_json::json!(["hb-credit"]));
        let again = push(body.clone(), "e2e-http-1", support::SECRET, 1).await.unwrap();
        assert_eq!(again.status(), 200);
        assert_eq!(again.json::<serde_json::Value>().await.unwrap()["status"], "duplicate");
        assert_eq!(
            push(body.clone(), "e2e-http-2", "wrong-secret", 0).await.unwrap().status(),
            401
        );
        assert_eq!(
            push(body.clone(), "e2e-http-3", support::SECRET, -400).await.unwrap().status(),
            401
        );
        let invalid = push(b"{\"CF_XDR_MC\":\"x\"}".to_vec(), "e2e-http-4", support::SECRET, 0)
            .await
            .unwrap();
        assert_eq!(invalid.status(), 422);

        // Everything settles: no copy left queued or waiting for retry.
        let conn = &connection;
        support::eventually(Duration::from_secs(30), "destination queues empty", || async move {
            let mut total = 0;
            for q in [
                "credgate.out.hb-credit",
                "credgate.out.hb-ggzy-trading",
                "credgate.out.hb-clean-gov",
                "credgate.out.hb-smart-supervision",
                "credgate.out.hb-housing-regulator",
                "credgate.in.wh-ggzy",
            ] {
                total += support::depth(conn, q).await;
            }
            total == 0
        })
        .await;
        // Metrics are exposed with the documented names.
        let metrics = reqwest::get(format!("http://127.0.0.1:{}/metrics", config.admin_port))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(metrics.contains("credgate_messages_received_total"));
        assert!(metrics.contains("credgate_queue_depth"));

        // SIGTERM drains and exits 0.
        assert_eq!(gateway.terminate(), Some(0), "log:\n{}", gateway.log_text());
        // No personal identifier in the logs.
        assert!(!gateway.log_text().contains("420111198501011234"));
        stop.cancel();
        support::close(&connection).await;
    })
    .await
}
