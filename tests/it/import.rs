//! `credgate import` against a real broker and a gateway process, with the shipped sample
//! files of the county credit office (`docs/import/`): a dry run reports every row and
//! publishes nothing; the import publishes the valid rows (the rejected one only reported),
//! the gateway stores and delivers them and answers one receipt per row; importing the same
//! file again (waiting for the receipts) is answered `duplicate` and delivers nothing new; the
//! xlsx sample goes the same way with exit 0; receipts that do not come (no gateway), an
//! unreachable broker are exit 1 and usage errors exit 2.

use std::collections::BTreeSet;
use std::process::Command;
use std::time::Duration;

use credgate::pipeline::Receipt;
use serde_json::Value;

use super::support::{self, Rig, RigSetup};

const ADAPTER: &str = "gc-county-credit";
/// The ID number of the sample CSV's rejected row (bad check digit).
const BAD_ID: &str = "420102199003071230";

fn sample(name: &str) -> String {
    format!("{}/docs/import/{name}", support::REPO)
}

/// Runs `credgate --config DIR --output json import --adapter gc-county-credit ARGS…`:
/// (exit code, the JSON report, stderr).
fn import(config: &std::path::Path, args: &[&str]) -> (i32, Value, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_credgate"))
        .args(["--config", config.to_str().unwrap(), "--output", "json", "import"])
        .args(["--adapter", ADAPTER, "--doc-type", "penalty_csv"])
        .args(args)
        .output()
        .expect("run credgate");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(!stdout.contains(BAD_ID), "an ID number leaked into the report: {stdout}");
    (
        out.status.code().unwrap_or(-1),
        serde_json::from_str(&stdout).unwrap_or(Value::Null),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The message ids of the report's published rows.
fn published_ids(report: &Value) -> BTreeSet<String> {
    report["rows"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["published"] == true)
        .map(|r| r["message_id"].as_str().unwrap().to_owned())
        .collect()
}

/// How many of the report's published rows go to the provincial credit platform (轻微 failed
/// information is not publicised there).
fn to_credit(report: &Value) -> usize {
    report["rows"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["published"] == true)
        .filter(|r| r["routed_to"].as_array().unwrap().iter().any(|d| d == "hb-credit"))
        .count()
}

/// Waits for `n` receipts on the adapter's receipts queue and takes them.
async fn receipts(connection: &lapin::Connection, n: u32) -> Vec<Receipt> {
    let queue = credgate::broker::receipts_queue(ADAPTER);
    support::eventually(Duration::from_secs(60), "receipts", || async {
        support::depth(connection, &queue).await >= n
    })
    .await;
    support::drain_queue(connection, &queue)
        .await
        .into_iter()
        .map(|(_, _, body)| serde_json::from_slice(&body).unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_publishes_valid_rows_and_reports_every_row() {
    support::within(Duration::from_secs(300), async {
        let Some(broker) = support::shared_broker() else { return };
        let setup = RigSetup::new(&broker, "import").tiers("[1]").configure().await;
        let config = &setup.config;
        let csv = sample("gc-county-credit-penalties.csv");
        // Before any gateway declared the topology: nothing to publish to, exit 1.
        let (code, report, stderr) = import(config.path(), &["--quiet", &csv]);
        assert_eq!(code, 1, "{stderr}");
        assert!(stderr.contains("the exchange credgate.in does not exist"), "{stderr}");
        assert_eq!(report["summary"]["published"], 0);

        let rig = setup.spawn().await;
        let Rig { vhost: _vhost, stop, credit, config, mut gateway, admin, connection, .. } = rig;

        // Dry run: every row reported, as a spreadsheet numbers them; nothing published.
        let (code, dry, stderr) = import(config.path(), &["--dry-run", &csv]);
        assert_eq!(code, 3, "one row is invalid: {stderr}");
        assert_eq!(dry["dry_run"], true);
        let rows = dry["rows"].as_array().unwrap();
        let numbers: Vec<u64> = rows.iter().map(|r| r["row"].as_u64().unwrap()).collect();
        assert_eq!(numbers, [2, 3, 4, 5]);
        let outcomes: Vec<&str> = rows.iter().map(|r| r["outcome"].as_str().unwrap()).collect();
        assert_eq!(outcomes[1], "rejected");
        assert!(outcomes.iter().enumerate().all(|(i, o)| i == 1 || o.starts_with("accepted")));
        assert!(
            rows[1]["violations"].as_array().unwrap().iter().any(|v| v["rule"] == "SG-06"),
            "{}",
            rows[1]
        );
        assert!(
            rows[0]["record_key"]
                .as_str()
                .is_some_and(|k| k.starts_with("admin_penalty:11420625MB15228045|")),
            "{}",
            rows[0]
        );
        assert_eq!(dry["summary"]["to_publish"], 3);
        assert_eq!(dry["summary"]["published"], 0);
        assert!(rows.iter().all(|r| r["published"] == false));

        // The import: the three valid rows published and confirmed, the rejected one not.
        let (code, report, stderr) = import(config.path(), &[&csv]);
        assert_eq!(code, 3, "{stderr}");
        assert_eq!(report["dry_run"], false);
        assert_eq!(report["summary"]["published"], 3);
        let published: Vec<bool> = report["rows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["published"].as_bool().unwrap())
            .collect();
        assert_eq!(published, [true, false, true, true]);
        let ids = published_ids(&report);
        // The same ids as in the dry run: they depend on the rows only.
        assert_eq!(
            ids,
            dry["rows"]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(|r| r["message_id"].as_str().map(str::to_owned))
                .collect()
        );

        // The gateway answers each with a receipt (exactly three: the dry run sent nothing),
        // stores the records and delivers them to the provincial credit platform.
        let first = receipts(&connection, 3).await;
        assert_eq!(first.len(), 3);
        assert_eq!(first.iter().map(|r| r.message_id.clone()).collect::<BTreeSet<_>>(), ids);
        assert!(
            first.iter().all(|r| r.status != credgate::pipeline::ReceiptStatus::Rejected
                && r.status != credgate::pipeline::ReceiptStatus::Duplicate),
            "{first:?}"
        );
        assert!(first.iter().all(|r| {
            r.correlation_id
                .as_deref()
                .is_some_and(|c| c.starts_with("import:gc-county-credit-penalties.csv:"))
        }));
        // The routes the report announced are the gateway's: the company's 30000 元 and the
        // person's 800 元 penalties go to hb-credit; the 1,500 元 one is 轻微, not publicised.
        assert_eq!(to_credit(&report), 2);
        for receipt in &first {
            let rows = report["rows"].as_array().unwrap();
            let row = rows.iter().find(|r| r["message_id"] == receipt.message_id.as_str()).unwrap();
            assert_eq!(serde_json::to_value(&receipt.routed_to).unwrap(), row["routed_to"]);
            assert_eq!(serde_json::to_value(receipt.records[0].status).unwrap(), row["outcome"]);
        }
        let delivered =
            support::wait_for(Duration::from_secs(60), || credit.accepted().len() == 2).await;
        assert!(delivered, "copies at hb-credit: {:?}; receipts: {first:?}", credit.accepted());
        for row in report["rows"].as_array().unwrap().iter().filter(|r| r["published"] == true) {
            let key = row["record_key"].as_str().unwrap();
            let (status, body) = admin.records_by_key(key).await;
            assert_eq!(status, 200, "{body}");
            assert_eq!(body["records"].as_array().map(Vec::len), Some(1), "{key}: {body}");
        }

        // The same file again, waiting for the receipts: answered `duplicate`, nothing
        // delivered twice.
        let (code, again, stderr) = import(config.path(), &["--quiet", "--wait", "60", &csv]);
        assert_eq!(code, 3, "{stderr}");
        assert_eq!(published_ids(&again), ids);
        assert_eq!(again["summary"]["receipts"]["duplicate"], 3, "{again}");
        assert_eq!(again["summary"]["receipts"]["missing"], 0);
        for row in again["rows"].as_array().unwrap() {
            let expected = if row["published"] == true { "duplicate" } else { "null" };
            assert_eq!(row["receipt"].to_string().trim_matches('"'), expected, "{row}");
        }
        // The platform's own receipts queue got them too.
        let second = receipts(&connection, 3).await;
        assert!(
            second.iter().all(|r| r.status == credgate::pipeline::ReceiptStatus::Duplicate),
            "{second:?}"
        );

        // The xlsx sample: three valid rows, exit 0.
        let (code, xlsx, stderr) =
            import(config.path(), &[&sample("gc-county-credit-penalties.xlsx")]);
        assert_eq!(code, 0, "{stderr} {xlsx}");
        assert_eq!(xlsx["format"], "xlsx");
        assert_eq!(xlsx["summary"]["published"], 3);
        let numbers: Vec<u64> =
            xlsx["rows"].as_array().unwrap().iter().map(|r| r["row"].as_u64().unwrap()).collect();
        assert_eq!(numbers, [2, 3, 4]);
        let third = receipts(&connection, 3).await;
        assert_eq!(third.len(), 3);
        let expected = 2 + to_credit(&xlsx);
        let delivered =
            support::wait_for(Duration::from_secs(60), || credit.accepted().len() == expected)
                .await;
        assert!(delivered, "copies at hb-credit: {:?}; receipts: {third:?}", credit.accepted());
        assert!(credit.accepted().values().all(|&n| n == 1), "a copy was delivered twice");

        assert_eq!(gateway.terminate(), Some(0));
        // No gateway: published (RabbitMQ keeps them), but no receipt comes: exit 1.
        let (code, _, stderr) = import(config.path(), &["--quiet", "--wait", "2", &csv]);
        assert_eq!(code, 1, "{stderr}");
        assert!(stderr.contains("3 of 3 published messages got no receipt"), "{stderr}");
        stop.cancel();
    })
    .await;
}

/// Exit 1 with a clear message when the broker is unreachable, exit 2 for usage errors; no
/// broker needed.
#[test]
fn broker_unreachable_and_usage_errors() {
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str], env: &[(&str, &str)]| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_credgate"));
        cmd.args(["--config", &format!("{}/config", support::REPO), "import"]).args(args);
        cmd.env("CREDGATE_AMQP_PASSWORD", "guest");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let out = cmd.output().unwrap();
        (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    let csv = sample("gc-county-credit-penalties.csv");
    // Nothing listens on port 1.
    let (code, stderr) = run(
        &["--adapter", ADAPTER, "--doc-type", "penalty_csv", "--quiet", &csv],
        &[("CREDGATE_AMQP__URL", "amqp://127.0.0.1:1/%2f")],
    );
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("cannot connect to RabbitMQ at amqp://127.0.0.1:1/%2f"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");

    let (code, stderr) = run(&["--adapter", "nope", &csv], &[]);
    assert_eq!(code, 2);
    assert!(stderr.contains("unknown adapter \"nope\""), "{stderr}");
    // Two CSV document types: the header row tells which (penalty_csv); where it does not,
    // --doc-type must say.
    let (code, stderr) = run(&["--adapter", ADAPTER, "--dry-run", "--quiet", &csv], &[]);
    assert_eq!(code, 3, "the sample's row 3 is invalid: {stderr}");
    let unknown = dir.path().join("unknown-columns.csv");
    std::fs::write(&unknown, "名称,金额\n甲,1\n").unwrap();
    let (code, stderr) = run(&["--adapter", ADAPTER, "--dry-run", unknown.to_str().unwrap()], &[]);
    assert_eq!(code, 2);
    assert!(stderr.contains("header row does not tell which"), "{stderr}");
    assert!(stderr.contains("--doc-type (license_csv, penalty_csv)"), "{stderr}");
    let pdf = dir.path().join("penalties.pdf");
    std::fs::write(&pdf, b"%PDF").unwrap();
    let (code, stderr) = run(&["--adapter", ADAPTER, pdf.to_str().unwrap()], &[]);
    assert_eq!(code, 2);
    assert!(stderr.contains("unsupported file type"), "{stderr}");
    // A JSON file for an adapter without a JSON document type.
    let json = dir.path().join("p.json");
    std::fs::write(&json, b"[]").unwrap();
    let (code, stderr) = run(&["--adapter", ADAPTER, json.to_str().unwrap()], &[]);
    assert_eq!(code, 2);
    assert!(stderr.contains("has no json document type"), "{stderr}");
    // An adapter that receives over HTTP only has no credgate.in queue: dry run only.
    let http_only = http_only_config(dir.path());
    let out = Command::new(env!("CARGO_BIN_EXE_credgate"))
        .args(["--config", http_only.to_str().unwrap(), "import", "--adapter", ADAPTER])
        .args(["--doc-type", "penalty_csv", &csv])
        .env("CREDGATE_AMQP_PASSWORD", "guest")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("does not receive over AMQP"), "{stderr}");
    // A decompression bomb: refused before anything is decompressed for real.
    let bomb = dir.path().join("bomb.xlsx");
    std::fs::write(&bomb, bomb_xlsx()).unwrap();
    let (code, stderr) = run(
        &["--adapter", ADAPTER, "--doc-type", "penalty_csv", "--dry-run", bomb.to_str().unwrap()],
        &[],
    );
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("over the limit"), "{stderr}");
}

/// The shipped configuration with gc-county-credit receiving over HTTP only.
fn http_only_config(dir: &std::path::Path) -> std::path::PathBuf {
    let root = std::path::Path::new(support::REPO);
    let config = dir.join("config");
    let adapters = dir.join("adapters");
    std::fs::create_dir_all(&config).unwrap();
    std::fs::create_dir_all(&adapters).unwrap();
    let process = std::fs::read_to_string(root.join("config/credgate.toml"))
        .unwrap()
        .replace(r#"schemas = "../schemas""#, &format!("schemas = {:?}", root.join("schemas")))
        .replace(r#"adapters = "../adapters""#, &format!("adapters = {adapters:?}"))
        .replace(
            r#"calendars = "calendars""#,
            &format!("calendars = {:?}", root.join("config/calendars")),
        );
    std::fs::write(config.join("credgate.toml"), process).unwrap();
    std::fs::copy(root.join("config/routes.toml"), config.join("routes.toml")).unwrap();
    for entry in std::fs::read_dir(root.join("adapters")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            let text = std::fs::read_to_string(&path).unwrap();
            let text = if path.ends_with("gc-county-credit.toml") {
                text.replace(
                    r#"transports = ["amqp"]"#,
                    "transports = [\"http\"]\nauth = { kind = \"hmac-sha256\", key_id = \"gc\", \
                     secret = \"${env:CREDGATE_GC_SECRET}\" }",
                )
            } else {
                text
            };
            std::fs::write(adapters.join(path.file_name().unwrap()), text).unwrap();
        }
    }
    config
}

/// A zip whose one part declares 300 MiB uncompressed (the central directory says so; the
/// size check reads only that).
fn bomb_xlsx() -> Vec<u8> {
    use std::io::Write;
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    zip.start_file("xl/worksheets/sheet1.xml", options).unwrap();
    zip.write_all(&[b'0'; 1024]).unwrap();
    let mut bytes = zip.finish().unwrap().into_inner();
    let claim = (300u32 * 1024 * 1024).to_le_bytes();
    bytes[22..26].copy_from_slice(&claim);
    let central = bytes.windows(4).rposition(|w| w == b"PK\x01\x02").unwrap();
    bytes[central + 24..central + 28].copy_from_slice(&claim);
    bytes
}
