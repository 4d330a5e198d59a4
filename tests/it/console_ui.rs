//! The operator console end to end in headless Chromium: a gateway on the shared broker with
//! an operator and an auditor token, two penalties dead-lettered by a refusing destination,
//! then `tests/ui/console.spec.mjs` (playwright-core driving Debian's `/usr/bin/chromium`)
//! logs in, finds the records by USCC with the ID number masked, replays one dead letter
//! (the destination was fixed) and sees it delivered, pauses and resumes the destination, and
//! as auditor reveals the ID number. Screenshots go to a temporary directory, or to
//! `$CREDGATE_SCREENSHOTS` (`docs/screenshots` refreshes the committed ones). Afterwards the
//! store must show exactly what the browser did: one copy delivered, the other still dead,
//! and the audit log naming the operator and the auditor.
//!
//! Skipped (with a message) without Chromium or Node, unless `CREDGATE_REQUIRE_BROWSER` is set
//! (`scripts/test.sh` sets it after installing them).

use std::path::Path;
use std::process::Command;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use credgate::testkit;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use super::support::{self, Gateway, TestConfig};

const CHROMIUM: &str = "/usr/bin/chromium";
const USCC: &str = "91420100MA4P7Q8R8N";
const PERSON_ID: &str = "420111198501011234";
const OPERATOR_TOKEN: &str = "console-operator-token";
const AUDITOR_TOKEN: &str = "console-auditor-token";

/// Chromium, Node and playwright-core (installed into tests/ui/node_modules when missing), or
/// why not.
fn browser_ready() -> Result<(), String> {
    if !Path::new(CHROMIUM).exists() {
        return Err(format!("{CHROMIUM} not found (apt-get install chromium fonts-wqy-microhei)"));
    }
    if Command::new("node").arg("--version").output().is_err() {
        return Err("node not found".into());
    }
    let ui = Path::new(support::REPO).join("tests/ui");
    if !ui.join("node_modules/playwright-core").exists() {
        let status = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund"])
            .current_dir(&ui)
            .status()
            .map_err(|e| format!("npm: {e}"))?;
        if !status.success() {
            return Err("npm ci in tests/ui failed".into());
        }
    }
    Ok(())
}

async fn get(client: &reqwest::Client, url: &str, token: &str) -> (u16, Value) {
    let response = client.get(url).bearer_auth(token).send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn post(client: &reqwest::Client, url: &str, token: &str, body: Value) -> u16 {
    client.post(url).bearer_auth(token).json(&body).send().await.unwrap().status().as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_finds_records_replays_a_dead_letter_and_pauses_in_a_browser() {
    if let Err(why) = browser_ready() {
        assert!(
            std::env::var("CREDGATE_REQUIRE_BROWSER").is_err(),
            "the console test needs a browser: {why}"
        );
        eprintln!("skipping the console test: {why}");
        return;
    }
    support::within(Duration::from_secs(420), console_in_a_browser()).await;
}

async fn console_in_a_browser() {
    let Some(broker) = support::shared_broker() else { return };
    let vhost_guard = support::Vhost::new(&broker, "console");
    let vhost = vhost_guard.name.clone();
    let stop = CancellationToken::new();
    let (credit, broken, endpoints) = support::refusing_credit_site(&stop).await;
    let config = TestConfig::new(&broker, &vhost, &endpoints, "[1]", 2);
    // An operator and an auditor besides the admin token, secrets from files as always.
    std::fs::write(config.path().join("operator.txt"), OPERATOR_TOKEN).unwrap();
    std::fs::write(config.path().join("auditor.txt"), AUDITOR_TOKEN).unwrap();
    let process = config.path().join("credgate.toml");
    let mut text = std::fs::read_to_string(&process).unwrap();
    text.push_str(
        r#"
[[admin.tokens]]
name = "wang-operator"
role = "operator"
token = "${file:operator.txt}"

[[admin.tokens]]
name = "li-auditor"
role = "auditor"
token = "${file:auditor.txt}"
"#,
    );
    std::fs::write(&process, text).unwrap();
    let mut gateway = Gateway::spawn(&config);
    let base = format!("http://127.0.0.1:{}", config.admin_port);
    let client = reqwest::Client::new();

    // Two penalties of one company; the credit platform refuses both (400: dead at once).
    let connection = support::connect(&broker, &vhost).await;
    let channel = credgate::broker::confirm_channel(&connection).await.unwrap();
    for i in 0..2 {
        testkit::publish_document(
            &channel,
            "wh-ggzy",
            "penalty",
            &format!("console-p-{i}"),
            "application/json",
            &support::penalty(5000 + i),
        )
        .await
        .unwrap();
    }
    let dlq_url = format!("{base}/v1/dlq?destination=hb-credit");
    let (client_ref, dlq_ref) = (&client, dlq_url.as_str());
    support::eventually(Duration::from_secs(60), "two dead letters", || async move {
        let (status, body) = get(client_ref, dlq_ref, support::SECRET).await;
        status == 200 && body["dead_letters"].as_array().is_some_and(|l| l.len() == 2)
    })
    .await;
    let (_, listed) = get(&client, &dlq_url, support::SECRET).await;
    let letters = listed["dead_letters"].as_array().unwrap();
    let (replayed_id, kept_id) = (
        letters[0]["dead_id"].as_str().unwrap().to_owned(),
        letters[1]["dead_id"].as_str().unwrap().to_owned(),
    );

    // The permission table, through the API the console uses.
    let (status, me) = get(&client, &format!("{base}/v1/whoami"), OPERATOR_TOKEN).await;
    assert_eq!((status, me["role"].as_str()), (200, Some("operator")));
    let reveal = format!("{base}/v1/records?uscc={USCC}&reveal=true");
    assert_eq!(get(&client, &reveal, OPERATOR_TOKEN).await.0, 403);
    assert_eq!(get(&client, &format!("{base}/v1/whoami"), "nonsense").await.0, 401);
    let replay = format!("{base}/v1/dlq/replay");
    let pause = format!("{base}/v1/destinations/hb-credit/pause");
    let body = serde_json::json!({ "dead_ids": [replayed_id.clone()] });
    assert_eq!(post(&client, &replay, AUDITOR_TOKEN, body.clone()).await, 403);
    assert_eq!(post(&client, &pause, AUDITOR_TOKEN, serde_json::json!({})).await, 403);
    let dry = serde_json::json!({ "dead_ids": [replayed_id.clone()], "dry_run": true });
    assert_eq!(post(&client, &replay, AUDITOR_TOKEN, dry).await, 200);
    let page = client.get(format!("{base}/ui/")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.headers()["content-security-policy"].to_str().unwrap().contains("'self'"));

    // The destination is fixed; now the browser.
    broken.store(false, Ordering::SeqCst);
    // The committed screenshots are refreshed on request (CREDGATE_SCREENSHOTS=docs/screenshots);
    // an ordinary run, CI included, leaves the work tree clean.
    let screenshots = match std::env::var("CREDGATE_SCREENSHOTS") {
        Ok(dir) if !dir.is_empty() => Path::new(support::REPO).join(dir),
        _ => std::env::temp_dir().join(format!("credgate-screenshots-{}", std::process::id())),
    };
    std::fs::create_dir_all(&screenshots).unwrap();
    let profile = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let output = tokio::process::Command::new("node")
        .arg(Path::new(support::REPO).join("tests/ui/console.spec.mjs"))
        .env("CONSOLE_URL", format!("{base}/ui/"))
        .env("OPERATOR_TOKEN", OPERATOR_TOKEN)
        .env("AUDITOR_TOKEN", AUDITOR_TOKEN)
        .env("USCC", USCC)
        .env("PERSON_ID", PERSON_ID)
        .env("REPLAY_DEAD_ID", &replayed_id)
        .env("KEEP_DEAD_ID", &kept_id)
        .env("CHROMIUM", CHROMIUM)
        .env("USER_DATA_DIR", profile.path())
        .env("SCREENSHOTS", &screenshots)
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(240), output)
        .await
        .expect("the browser script took over 4 minutes")
        .unwrap();
    let (stdout, stderr) =
        (String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    eprintln!("{stdout}{stderr}");
    eprintln!("console browser script: {:.1} s", started.elapsed().as_secs_f64());
    assert!(output.status.success(), "console.spec.mjs failed; gateway log:\n{}", {
        let log = gateway.log_text();
        log[log.len().saturating_sub(4000)..].to_owned()
    });

    // What the browser did, as the store saw it: the replayed copy delivered once, the other
    // still a dead letter, and the audit log naming who replayed, paused and revealed.
    let accepted = credit.accepted();
    assert_eq!(accepted.len(), 1, "{accepted:?}");
    assert!(accepted.values().all(|n| *n == 1));
    let (_, open) = get(&client, &dlq_url, support::SECRET).await;
    let open: Vec<&str> = open["dead_letters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["dead_id"].as_str().unwrap())
        .collect();
    assert_eq!(open, [kept_id.as_str()]);
    let (_, audit) = get(&client, &format!("{base}/v1/audit"), AUDITOR_TOKEN).await;
    let actions: Vec<(String, String)> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (e["action"].as_str().unwrap().to_owned(), e["actor"].as_str().unwrap().to_owned())
        })
        .collect();
    let expect = |action: &str, actor: &str| {
        assert!(
            actions.iter().any(|(a, b)| a == action && b == actor),
            "no {action} by {actor} in {actions:?}"
        );
    };
    expect("dlq.replay", "api:wang-operator");
    expect("destination.pause", "api:wang-operator");
    expect("destination.resume", "api:wang-operator");
    expect("records.reveal", "api:li-auditor");
    let replay_entry =
        audit["entries"].as_array().unwrap().iter().find(|e| e["action"] == "dlq.replay").unwrap();
    assert!(replay_entry["details"].as_str().unwrap().contains(&replayed_id));
    let (status, verdict) = get(&client, &format!("{base}/v1/audit/verify"), AUDITOR_TOKEN).await;
    assert_eq!(status, 200, "{verdict}");
    let (_, destinations) = get(&client, &format!("{base}/v1/destinations"), OPERATOR_TOKEN).await;
    let credit_state = destinations["destinations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["destination"] == "hb-credit")
        .unwrap()
        .clone();
    assert_eq!(credit_state["paused"], false);

    assert_eq!(gateway.terminate(), Some(0));
    assert!(!gateway.log_text().contains(PERSON_ID), "an ID number reached the log");
    stop.cancel();
    support::close(&connection).await;
}
