//! Dead letters, replay, lineage, pause and the audit log against a real broker and a gateway
//! process: a destination that refuses everything → dead letters in the store → the
//! destination is fixed → replay → each copy delivered once; replay again → still once; the
//! lineage by USCC shows every version, destination, attempt and answer; a paused destination
//! receives nothing, also across a restart, until resumed; the audit log verifies.

use std::process::Command;
use std::sync::atomic::Ordering;
use std::time::Duration;

use credgate::testkit;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use super::support::{self, Gateway, TestConfig};

const USCC: &str = "91420100MA4P7Q8R8N";
const PERSON_ID: &str = "420111198501011234";

/// Runs the CLI on the test configuration: (exit code, stdout, stderr).
fn cli(config: &TestConfig, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_credgate"))
        .args(["--config", config.path().to_str().unwrap()])
        .args(args)
        .env("CREDGATE_ACTOR", "operator-wang")
        .output()
        .expect("run credgate");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Every hb-credit copy of every version in a `/v1/records` answer.
fn copies(records: &Value) -> Vec<Value> {
    let mut out = Vec::new();
    for record in records["records"].as_array().unwrap() {
        for version in record["versions"].as_array().unwrap() {
            for copy in version["copies"].as_array().unwrap() {
                if copy["destination"] == "hb-credit" {
                    out.push(copy.clone());
                }
            }
        }
    }
    out
}

fn outcomes(copy: &Value) -> Vec<String> {
    copy["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["outcome"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_replay_once_and_lineage_shows_it() {
    support::within(Duration::from_secs(300), async {
        let Some(broker) = support::shared_broker() else { return };
        let vhost_guard = support::Vhost::new(&broker, "dlq-replay");
        let vhost = vhost_guard.name.clone();
        let stop = CancellationToken::new();
        let (credit, broken, endpoints) = support::refusing_credit_site(&stop).await;
        let config = TestConfig::new(&broker, &vhost, &endpoints, "[1]", 2);
        let mut gateway = Gateway::spawn(&config);
        let admin = support::Admin::new(&config).acting_as("operator-li");
        let connection = support::connect(&broker, &vhost).await;
        let channel = credgate::broker::confirm_channel(&connection).await.unwrap();

        // Three penalties; the credit site refuses every copy (400: permanent).
        let n = 3;
        for i in 0..n {
            testkit::publish_document(
                &channel,
                "wh-ggzy",
                "penalty",
                &format!("dlq-p-{i}"),
                "application/json",
                &support::penalty(3000 + i),
            )
            .await
            .unwrap();
        }
        let admin_ref = &admin;
        support::eventually(
            Duration::from_secs(60),
            "three dead letters in the store",
            || async move {
                let (status, body) = admin_ref.get("/v1/dlq?destination=hb-credit").await;
                status == 200 && body["dead_letters"].as_array().is_some_and(|l| l.len() == n)
            },
        )
        .await;
        let (_, listed) = admin.get("/v1/dlq?destination=hb-credit&reason=rejected").await;
        let letters = listed["dead_letters"].as_array().unwrap().clone();
        assert_eq!(letters.len(), n);
        assert!(letters.iter().all(|l| l["source_adapter"] == "wh-ggzy" && l["attempts"] == 1));
        assert!(credit.accepted().is_empty());
        // The bytes are in the store; the record is shown masked unless revealed.
        let id = letters[0]["dead_id"].as_str().unwrap();
        let (code, shown, _) = cli(&config, &["dlq", "show", id]);
        assert_eq!(code, 0);
        assert!(!shown.contains(PERSON_ID), "an ID number leaked: {shown}");
        assert!(shown.contains("400"), "the destination's answer is kept: {shown}");
        let (_, revealed, _) = cli(&config, &["dlq", "show", id, "--reveal"]);
        assert!(revealed.contains(PERSON_ID));

        // Dry run: nothing is published.
        let (code, out, err) = cli(
            &config,
            &["--output", "json", "dlq", "replay", "--destination", "hb-credit", "--dry-run"],
        );
        assert_eq!(code, 0, "{err}");
        let report: Value = serde_json::from_str(&out).unwrap();
        assert_eq!((report["matched"].as_u64(), report["replayed"].as_u64()), (Some(3), Some(0)));
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert!(credit.requests().len() == n, "a dry run sent something");

        // The destination is fixed; replay from the CLI (rate-limited, with progress).
        broken.store(false, Ordering::SeqCst);
        let (code, out, err) = cli(
            &config,
            &["--output", "json", "dlq", "replay", "--destination", "hb-credit", "--rate", "20"],
        );
        assert_eq!(code, 0, "{err}");
        assert!(err.contains("replayed 3/3"), "progress: {err}");
        let report: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(report["replayed"], 3);
        let credit_ref = &credit;
        support::eventually(Duration::from_secs(30), "replayed copies delivered", || async move {
            credit_ref.accepted().len() == n
        })
        .await;

        // Replaying again: by default nothing matches (already replayed); forced through the API,
        // the copies are published again, but delivery recognises the delivered version.
        let (code, out, _) =
            cli(&config, &["--output", "json", "dlq", "replay", "--destination", "hb-credit"]);
        assert_eq!(code, 0);
        assert_eq!(serde_json::from_str::<Value>(&out).unwrap()["matched"], 0);
        let (status, report) = admin
        .post(
            "/v1/dlq/replay",
            serde_json::json!({"destination": "hb-credit", "include_replayed": true, "rate": 50}),
        )
        .await;
        assert_eq!(status, 200, "{report}");
        assert_eq!(report["replayed"], 3);
        let uscc_query = format!("/v1/records?uscc={USCC}");
        let query = uscc_query.as_str();
        support::eventually(Duration::from_secs(30), "second replay settled", || async move {
            let (_, records) = admin_ref.get(query).await;
            let copies = copies(&records);
            copies.len() == n
                && copies.iter().all(|c| outcomes(c).iter().any(|o| o == "already_delivered"))
        })
        .await;
        let accepted = credit.accepted();
        assert_eq!(accepted.len(), n);
        assert!(accepted.values().all(|times| *times == 1), "delivered twice: {accepted:?}");

        // Lineage by USCC: each version, where it went, every attempt with the answer, the replay
        // links; ID numbers masked unless asked.
        let (status, records) = admin.get(query).await;
        assert_eq!(status, 200);
        // The operations API wants the admin token, and exactly one search key.
        let anonymous = reqwest::get(format!("{}{query}", admin.base)).await.unwrap();
        assert_eq!(anonymous.status(), 401);
        assert_eq!(admin.get("/v1/records").await.0, 400);
        assert_eq!(records["records"].as_array().unwrap().len(), n);
        for copy in copies(&records) {
            assert_eq!(copy["status"], "delivered");
            assert_eq!(outcomes(&copy), ["dead", "delivered", "already_delivered"]);
            let attempts = copy["attempts"].as_array().unwrap();
            assert!(attempts[0]["response"].as_str().unwrap().starts_with("400"));
            assert_eq!(attempts[1]["replay_of"], copy["dead_letters"][0]["dead_id"]);
            assert_eq!(copy["dead_letters"][0]["replay_count"], 2);
        }
        let version = &records["records"][0]["versions"][0];
        assert_eq!(version["source_adapter"], "wh-ggzy");
        assert!(version["receipt_status"].as_str().unwrap().starts_with("accepted"));
        let fields = version["record"]["fields"].as_array().unwrap();
        let rep = fields.iter().find(|f| f["field"] == "legal_rep_id_no").unwrap();
        assert_eq!(rep["label"], "法定代表人证件号码");
        assert_eq!(rep["value"], "4201************34");
        assert!(!records.to_string().contains(PERSON_ID));
        let (_, revealed) = admin.get(&format!("{query}&reveal=true")).await;
        assert!(revealed.to_string().contains(PERSON_ID));
        // The CLI answers the same question, by 文书号 in a variant spelling too.
        let (code, out, _) =
            cli(&config, &["records", "search", "--doc-no", "鄂公管罚[2026]第3001号"]);
        assert_eq!(code, 0);
        assert!(out.contains("admin_penalty:11420000MB0P1Q2R33|鄂公管罚〔2026〕3001号"), "{out}");
        assert!(out.contains("法定代表人证件号码") && !out.contains(PERSON_ID), "{out}");

        // Pause: the destination receives nothing, across a restart, until resumed.
        let (status, _) = admin
            .post("/v1/destinations/hb-credit/pause", serde_json::json!({"reason": "升级维护"}))
            .await;
        assert_eq!(status, 200);
        tokio::time::sleep(Duration::from_secs(3)).await;
        let before = credit.requests().len();
        testkit::publish_document(
            &channel,
            "wh-ggzy",
            "penalty",
            "dlq-paused",
            "application/json",
            &support::penalty(3100),
        )
        .await
        .unwrap();
        tokio::time::sleep(Duration::from_secs(4)).await;
        assert_eq!(credit.requests().len(), before, "a paused destination received a copy");
        assert_eq!(gateway.terminate(), Some(0), "log:\n{}", gateway.log_text());
        gateway.start();
        tokio::time::sleep(Duration::from_secs(4)).await;
        assert_eq!(credit.requests().len(), before, "the pause did not survive the restart");
        let (code, out, _) = cli(&config, &["--output", "json", "destinations", "list"]);
        assert_eq!(code, 0);
        assert!(out.contains("\"paused\": true"), "{out}");
        let (code, _, err) = cli(&config, &["destinations", "resume", "hb-credit"]);
        assert_eq!(code, 0, "{err}");
        support::eventually(Duration::from_secs(30), "delivered after resume", || async move {
            credit_ref.accepted().len() == n + 1
        })
        .await;

        // The audit log names who did what, and verifies.
        let (code, out, _) = cli(&config, &["--output", "json", "audit", "list"]);
        assert_eq!(code, 0);
        let entries: Vec<Value> = serde_json::from_str(&out).unwrap();
        let actions: Vec<(String, String)> = entries
            .iter()
            .map(|e| {
                (e["action"].as_str().unwrap().to_owned(), e["actor"].as_str().unwrap().to_owned())
            })
            .collect();
        assert_eq!(
            actions,
            [
                ("dlq.replay".to_owned(), "cli:operator-wang".to_owned()),
                ("dlq.replay".to_owned(), "api:operator-li".to_owned()),
                // Revealing personal identifiers through the API is audited.
                ("records.reveal".to_owned(), "api:admin-api".to_owned()),
                ("destination.pause".to_owned(), "api:operator-li".to_owned()),
                ("destination.resume".to_owned(), "cli:operator-wang".to_owned()),
            ]
        );
        let (code, out, _) = cli(&config, &["audit", "verify"]);
        assert_eq!(code, 0, "{out}");

        // Rejected input is kept with its bytes: after the mapping is fixed (the platform renamed
        // the 文书号 column), re-ingest publishes it again and it goes through.
        let mut renamed: Value = serde_json::from_slice(&support::penalty(3200)).unwrap();
        let doc_no = renamed.as_object_mut().unwrap().remove("CF_WSH").unwrap();
        renamed["CF_WSH_NEW"] = doc_no;
        testkit::publish_document(
            &channel,
            "wh-ggzy",
            "penalty",
            "dlq-renamed",
            "application/json",
            &serde_json::to_vec(&renamed).unwrap(),
        )
        .await
        .unwrap();
        let config_ref = &config;
        support::eventually(Duration::from_secs(30), "rejected original stored", || async move {
            let (_, out, _) =
                cli(config_ref, &["dlq", "reingest", "--adapter", "wh-ggzy", "--dry-run"]);
            out.contains("dlq-renamed") && out.contains("still_rejected")
        })
        .await;
        let mapping = config.path().join("adapters/wh-ggzy.toml");
        let text = std::fs::read_to_string(&mapping).unwrap();
        let fixed = text.replacen(
            "decision_doc_no = \"CF_WSH\"",
            "decision_doc_no = { from = [\"CF_WSH\", \"CF_WSH_NEW\"] }",
            1,
        );
        assert_ne!(fixed, text);
        std::fs::write(&mapping, fixed).unwrap();
        assert_eq!(gateway.terminate(), Some(0));
        gateway.start();
        let (code, out, err) = cli(&config, &["dlq", "reingest", "--adapter", "wh-ggzy"]);
        assert_eq!(code, 0, "{err}");
        assert!(out.contains("reingested as dlq-renamed#reingest-1"), "{out}");
        support::eventually(
            Duration::from_secs(30),
            "re-ingested record delivered",
            || async move { credit_ref.accepted().len() == n + 2 },
        )
        .await;
        // Purge: the API's dry run lists the dead letters and deletes nothing; the CLI deletes
        // them, audited.
        let (status, dry) = admin
            .post(
                "/v1/dlq/purge",
                serde_json::json!({"destination": "hb-credit", "include_replayed": true, "dry_run": true}),
            )
            .await;
        assert_eq!(status, 200, "{dry}");
        let matched = dry["matched"].as_u64().unwrap();
        assert!(matched > 0 && dry["purged"] == 0, "{dry}");
        let (code, out, err) =
            cli(&config, &["dlq", "purge", "--destination", "hb-credit", "--include-replayed"]);
        assert_eq!(code, 0, "{err}");
        assert!(out.contains(&format!("{matched} matched, {matched} purged, audit #")), "{out}");
        let (_, listed) = admin.get("/v1/dlq?destination=hb-credit&include_replayed=true").await;
        assert_eq!(listed["dead_letters"].as_array().map(Vec::len), Some(0), "{listed}");
        let (_, out, _) = cli(&config, &["--output", "json", "audit", "list", "--from", "5"]);
        assert!(out.contains("rejected.reingest"), "{out}");
        assert!(out.contains("dlq.purge"), "{out}");
        let (code, out, _) = cli(&config, &["audit", "verify"]);
        assert_eq!(code, 0, "{out}");

        assert_eq!(gateway.terminate(), Some(0));
        assert!(!gateway.log_text().contains(PERSON_ID), "an ID number reached the log");
        stop.cancel();
        support::close(&connection).await;
    })
    .await
}

/// Dead-letter replay at volume: N copies refused (400) → N dead letters; the destination is
/// fixed; one unthrottled replay delivers each exactly once; a forced second replay delivers
/// nothing again. Prints the replay time. N is 300 in the suite; the closing figure is
/// `CREDGATE_REPLAY_N=10000 cargo test --release --test it replay_at_volume -- --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_at_volume_delivers_each_dead_letter_once() {
    let n: usize =
        std::env::var("CREDGATE_REPLAY_N").ok().and_then(|v| v.parse().ok()).unwrap_or(300);
    support::within(Duration::from_secs(300 + n as u64 / 10), async {
        let Some(broker) = support::shared_broker() else { return };
        let vhost_guard = support::Vhost::new(&broker, "dlq-volume");
        let vhost = vhost_guard.name.clone();
        let stop = CancellationToken::new();
        let (credit, broken, endpoints) = support::refusing_credit_site(&stop).await;
        let config = TestConfig::new(&broker, &vhost, &endpoints, "[1]", 2);
        // The shipped 50/s limit of the provincial site would measure the limiter, not replay.
        let adapter = config.path().join("adapters/hb-credit.toml");
        let text = std::fs::read_to_string(&adapter).unwrap();
        std::fs::write(&adapter, text.replacen("rate_per_second = 50", "rate_per_second = 0", 1))
            .unwrap();
        let mut gateway = Gateway::spawn(&config);
        let connection = support::connect(&broker, &vhost).await;
        let channel = credgate::broker::confirm_channel(&connection).await.unwrap();
        for i in 0..n {
            testkit::publish_document(
                &channel,
                "wh-ggzy",
                "penalty",
                &format!("vol-{i}"),
                "application/json",
                &support::penalty(50_000 + i),
            )
            .await
            .unwrap();
        }
        let dlq_queue = "credgate.dlq.hb-credit";
        let connection_ref = &connection;
        support::eventually(
            Duration::from_secs(60 + n as u64 / 20),
            "every copy dead-lettered",
            || async move { support::depth(connection_ref, dlq_queue).await == n as u32 },
        )
        .await;
        assert!(credit.accepted().is_empty());

        broken.store(false, Ordering::SeqCst);
        let limit = n.to_string();
        let started = std::time::Instant::now();
        let (code, out, err) = cli(
            &config,
            &[
                "--output",
                "json",
                "dlq",
                "replay",
                "--destination",
                "hb-credit",
                "--rate",
                "0",
                "--limit",
                &limit,
            ],
        );
        assert_eq!(code, 0, "{err}");
        let published = started.elapsed();
        let report: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(report["replayed"], n, "{}", report["failed"]);
        let credit_ref = &credit;
        support::eventually(
            Duration::from_secs(60 + n as u64 / 20),
            "replayed copies delivered",
            || async move { credit_ref.accepted().len() == n },
        )
        .await;
        let delivered = started.elapsed();

        // Forced again: published, but every copy is recognised as delivered.
        let (code, _, err) = cli(
            &config,
            &[
                "dlq",
                "replay",
                "--destination",
                "hb-credit",
                "--include-replayed",
                "--rate",
                "0",
                "--limit",
                &limit,
            ],
        );
        assert_eq!(code, 0, "{err}");
        let out_queue = "credgate.out.hb-credit";
        support::eventually(
            Duration::from_secs(60 + n as u64 / 20),
            "second replay drained",
            || async move { support::depth(connection_ref, out_queue).await == 0 },
        )
        .await;
        tokio::time::sleep(Duration::from_secs(2)).await;
        let accepted = credit.accepted();
        let duplicates: usize = accepted.values().map(|times| times - 1).sum();
        assert_eq!((accepted.len(), duplicates), (n, 0));
        println!(
            "replay at volume: {n} dead letters published again in {:.1} s, delivered in {:.1} s \
             ({:.0}/s); forced second replay: duplicates {duplicates}",
            published.as_secs_f64(),
            delivered.as_secs_f64(),
            n as f64 / delivered.as_secs_f64()
        );
        assert_eq!(gateway.terminate(), Some(0));
        stop.cancel();
        support::close(&connection).await;
    })
    .await
}
