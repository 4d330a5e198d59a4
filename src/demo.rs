//! `credgate demo`: plays the sample platforms against a running gateway — publishes every
//! fixture document of every adapter, answers as the HTTP destinations (the provincial credit
//! site, the regulator) on loopback, listens on the AMQP destinations' exchanges — and prints
//! what happened: per source accepted/rejected, per destination delivered/retrying/
//! dead-lettered, and the receipts.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use lapin::options::{BasicAckOptions, BasicConsumeOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use serde::Deserialize;
use tokio_util::sync::CancellationToken;

use crate::broker;
use crate::config::CompiledConfig;
use crate::pipeline::{Receipt, ReceiptStatus};
use crate::testkit::{self, Behaviour, MockDestination};

#[derive(Debug, Deserialize)]
struct CaseFile {
    doc_type: String,
    input: String,
    #[serde(default)]
    content_type: Option<String>,
}

/// Runs the demo; `wait_for_ctrl_c` keeps the mock platforms up afterwards.
///
/// # Errors
///
/// The broker is unreachable or a mock cannot bind.
pub async fn run(
    config: &CompiledConfig,
    timeout: Duration,
    wait_for_ctrl_c: bool,
) -> anyhow::Result<bool> {
    let stop = CancellationToken::new();
    let run_id = jiff::Timestamp::now().as_millisecond().to_string();

    // The HTTP destinations on loopback.
    let mut mocks: BTreeMap<String, MockDestination> = BTreeMap::new();
    for adapter in config.adapters.values() {
        let Some(dest) = &adapter.destination else { continue };
        let Some(http) = &dest.raw.http else { continue };
        let Some(hostport) =
            http.endpoint.strip_prefix("http://").and_then(|r| r.split('/').next())
        else {
            continue;
        };
        if !hostport.starts_with("127.") && !hostport.starts_with("localhost") {
            continue;
        }
        let secret = dest.http_secret.as_ref().map(|s| s.expose().to_owned());
        let mock =
            MockDestination::start(hostport, Behaviour::Accept, secret, stop.clone()).await?;
        println!("playing {} ({}) at http://{}", adapter.id, adapter.name, mock.addr);
        mocks.insert(adapter.id.clone(), mock);
    }

    let connection = broker::connect(config, "credgate-demo").await?;
    // The AMQP destinations: a queue per platform exchange, as the platform would bind.
    let mut collectors = BTreeMap::new();
    for adapter in config.adapters.values() {
        let Some(amqp) = adapter.destination.as_ref().and_then(|d| d.raw.amqp.as_ref()) else {
            continue;
        };
        let queue = format!("demo.platform.{}", adapter.id);
        let seen =
            testkit::collect_exchange(&connection, &amqp.exchange, &queue, stop.clone()).await?;
        collectors.insert(adapter.id.clone(), seen);
    }
    // Receipts for our message ids.
    let receipts: std::sync::Arc<std::sync::Mutex<BTreeMap<String, Receipt>>> = Default::default();
    for adapter in config.adapters.values().filter(|a| !a.inbound.is_empty()) {
        let channel = connection.create_channel().await?;
        let queue = broker::receipts_queue(&adapter.id);
        // Declared passively: the gateway owns the topology.
        channel
            .queue_declare(
                queue.as_str().into(),
                QueueDeclareOptions { passive: true, durable: true, ..Default::default() },
                FieldTable::default(),
            )
            .await?;
        let mut consumer = channel
            .basic_consume(
                queue.as_str().into(),
                format!("demo-{queue}").into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await?;
        let (receipts, stop, run_id) = (receipts.clone(), stop.clone(), run_id.clone());
        tokio::spawn(async move {
            let _keep = channel;
            loop {
                tokio::select! {
                    _ = stop.cancelled() => break,
                    next = consumer.next() => match next {
                        Some(Ok(d)) => {
                            if let Ok(receipt) = serde_json::from_slice::<Receipt>(&d.data)
                                && receipt.message_id.ends_with(&run_id) {
                                    let key = if receipt.status == ReceiptStatus::Duplicate { format!("{}#dup", receipt.message_id) } else { receipt.message_id.clone() };
                                    if let Ok(mut r) = receipts.lock() { r.insert(key, receipt); }
                                }
                            let _ = d.ack(BasicAckOptions::default()).await;
                        }
                        _ => break,
                    }
                }
            }
        });
    }

    // Publish every fixture document as its platform would.
    let publisher = broker::confirm_channel(&connection).await?;
    let fixtures_root = config.config_dir.join(&config.process.paths.adapters).join("fixtures");
    let mut sent: Vec<(String, String)> = Vec::new();
    for adapter_dir in sorted_dirs(&fixtures_root) {
        let adapter = name_of(&adapter_dir);
        let Some(compiled) = config.adapters.get(&adapter) else { continue };
        if !compiled.inbound_transports.iter().any(|t| t == "amqp") {
            continue;
        }
        for case_dir in sorted_dirs(&adapter_dir) {
            let Ok(text) = std::fs::read_to_string(case_dir.join("case.toml")) else { continue };
            let Ok(case) = toml::from_str::<CaseFile>(&text) else { continue };
            let Ok(body) = std::fs::read(case_dir.join(&case.input)) else { continue };
            let message_id = format!("demo:{adapter}:{}:{run_id}", name_of(&case_dir));
            let content_type =
                case.content_type.clone().unwrap_or_else(|| default_content_type(&case.input));
            testkit::publish_document(
                &publisher,
                &adapter,
                &case.doc_type,
                &message_id,
                &content_type,
                &body,
            )
            .await?;
            // Platforms send over time, not all at once: each document waits for the answer
            // to the one before, so the lifecycle step always sees its predecessors (a repair
            // finds the copies of the penalty it repairs, a bid result the list entry before
            // it) and every run reports the same deliveries.
            let answered = Instant::now();
            while answered.elapsed() < Duration::from_secs(10)
                && !receipts.lock().map(|r| r.contains_key(&message_id)).unwrap_or(true)
            {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            // The receipt is published just before the store commits the document's lineage.
            tokio::time::sleep(Duration::from_millis(50)).await;
            sent.push((adapter.clone(), message_id));
        }
    }
    // The same document twice: the second answer must be `duplicate`, with no second copy.
    if let Some((adapter, message_id)) = sent.first().cloned() {
        let case = message_id.split(':').nth(2).unwrap_or_default().to_owned();
        let case_dir = fixtures_root.join(&adapter).join(&case);
        if let Ok(case_file) = std::fs::read_to_string(case_dir.join("case.toml"))
            .map(|t| toml::from_str::<CaseFile>(&t))
            && let Ok(case_file) = case_file
            && let Ok(body) = std::fs::read(case_dir.join(&case_file.input))
        {
            let content_type = case_file
                .content_type
                .clone()
                .unwrap_or_else(|| default_content_type(&case_file.input));
            testkit::publish_document(
                &publisher,
                &adapter,
                &case_file.doc_type,
                &message_id,
                &content_type,
                &body,
            )
            .await?;
        }
    }
    println!(
        "published {} documents from {} platforms (and one repeated message id)",
        sent.len(),
        sent.iter().map(|s| &s.0).collect::<std::collections::BTreeSet<_>>().len()
    );

    // Wait for every receipt, then for the destination queues to drain.
    let started = Instant::now();
    while started.elapsed() < timeout {
        let n = receipts.lock().map(|r| r.len()).unwrap_or(0);
        if n > sent.len() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let inspector = connection.create_channel().await?;
    let depth = |queue: String| {
        let inspector = inspector.clone();
        async move {
            inspector
                .queue_declare(
                    queue.as_str().into(),
                    QueueDeclareOptions { passive: true, durable: true, ..Default::default() },
                    FieldTable::default(),
                )
                .await
                .map(|q| q.message_count())
                .unwrap_or(0)
        }
    };
    let destinations: Vec<&crate::config::Adapter> =
        config.adapters.values().filter(|a| a.destination.is_some()).map(|a| a.as_ref()).collect();
    while started.elapsed() < timeout {
        let mut pending = 0;
        for d in &destinations {
            pending += depth(broker::outbound_queue(&d.id)).await;
            if let Some(dest) = &d.destination {
                for tier in 0..dest.raw.retry.tiers_secs.len() {
                    pending += depth(broker::retry_queue(&d.id, tier)).await;
                }
            }
        }
        if pending == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }

    // Report.
    let receipts = receipts.lock().map(|r| r.clone()).unwrap_or_default();
    println!("\nper source (documents):");
    let mut by_source: BTreeMap<String, BTreeMap<&'static str, usize>> = BTreeMap::new();
    for (adapter, message_id) in &sent {
        let status = receipts
            .get(message_id)
            .map_or("no receipt", |r| crate::runtime::ingest::status_name(r.status));
        *by_source.entry(adapter.clone()).or_default().entry(status).or_insert(0) += 1;
    }
    for (adapter, counts) in &by_source {
        let parts: Vec<String> = counts.iter().map(|(k, v)| format!("{k} {v}")).collect();
        println!("  {adapter:<24} {}", parts.join(", "));
    }
    let duplicates = receipts.keys().filter(|k| k.ends_with("#dup")).count();
    println!("  repeated message id answered `duplicate`: {duplicates}");
    println!("\nper destination (copies):");
    let mut all_ok = receipts.len() > sent.len();
    for d in &destinations {
        let delivered = if let Some(mock) = mocks.get(&d.id) {
            mock.accepted().len()
        } else if let Some(seen) = collectors.get(&d.id) {
            seen.lock().map(|s| s.len()).unwrap_or(0)
        } else {
            0
        };
        let mut retrying = 0;
        if let Some(dest) = &d.destination {
            for tier in 0..dest.raw.retry.tiers_secs.len() {
                retrying += depth(broker::retry_queue(&d.id, tier)).await;
            }
        }
        let queued = depth(broker::outbound_queue(&d.id)).await;
        let dead = depth(broker::dlq_queue(&d.id)).await;
        println!(
            "  {:<24} delivered {delivered}, queued {queued}, retrying {retrying}, dead-lettered {dead}",
            d.id
        );
        all_ok &= queued == 0 && retrying == 0;
    }
    let unmatched = depth(broker::dlq_queue(broker::UNMATCHED)).await;
    println!("  {:<24} {unmatched}", "unmatched (parked)");
    println!(
        "\nreceipts: {} for {} documents sent (+1 duplicate); rejected documents kept in credgate.rejected.<adapter>",
        receipts.len(),
        sent.len()
    );
    for (message_id, receipt) in
        receipts.iter().filter(|(_, r)| r.status == ReceiptStatus::Rejected).take(5)
    {
        let first = receipt.violations.first().or_else(|| {
            receipt
                .records
                .iter()
                .flat_map(|r| &r.violations)
                .find(|v| v.severity == crate::record::Severity::Error)
        });
        if let Some(v) = first {
            println!("  rejected {message_id}: [{}] {} {}", v.rule, v.field, v.message);
        }
    }
    if wait_for_ctrl_c {
        println!("\nThe sample platforms keep answering; press Ctrl-C to stop.");
        crate::telemetry::wait_for_signal().await;
    }
    stop.cancel();
    let _ = connection.close(200, "demo done".into()).await;
    Ok(all_ok)
}

fn default_content_type(input: &str) -> String {
    if input.ends_with(".xml") {
        "application/xml".into()
    } else if input.ends_with(".csv") {
        "text/csv".into()
    } else {
        "application/json".into()
    }
}

fn sorted_dirs(dir: &std::path::Path) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|e| e.filter_map(|e| e.ok()).map(|e| e.path()).filter(|p| p.is_dir()).collect())
        .unwrap_or_default();
    dirs.sort();
    dirs
}

fn name_of(path: &std::path::Path) -> String {
    path.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_owned()
}
