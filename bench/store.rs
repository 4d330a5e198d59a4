//! `credgate-store-bench`: what ingest's store commit costs per message, with and without the
//! lineage (issue 5), without the broker.
//!
//! The §7.1 penalty is processed `--n` times with distinct message ids and receive times
//! (untimed), then committed the way `ingest_batch` does it: per batch of `--batch` documents
//! the lineage writes (`lineage_writes`, when on, `write_all_flushed_later`), then the dedup
//! rows (`write_all`), `--tasks` batches in flight at once. `--distinct`: every document a
//! record of its own (own 文书号, record key and index rows), as real traffic is. Reported per message:
//! the time until the lineage backlog is indexed included: wall time and process CPU time (utime + stime from `/proc/self/stat`, every thread, so the
//! SQLite worker is in). `--mode off|on|both` (both: off, on, off, on, each on a fresh store).
//!
//! ```text
//! cargo run --release --bin credgate-store-bench -- --n 20000 --batch 250 --mode both
//! ```

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use credgate::config::{CompiledConfig, LoadOptions};
use credgate::pipeline::{self, Inbound, Processed, Receipt};
use credgate::store::{Store, Write};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const SAMPLE_JSON: &str = include_str!("samples/penalty-7.1.json");

#[derive(Debug)]
struct Args {
    config: PathBuf,
    n: usize,
    batch: usize,
    tasks: usize,
    mode: String,
    url: Option<String>,
    /// Every document a record of its own (its own 文书号, so its own record key and index
    /// rows), as real traffic is, instead of one penalty re-sent `n` times.
    distinct: bool,
    /// Documents received in the same millisecond. The penalty has no version field, so its
    /// version is the receipt time: at the runtime benchmark's ~8 000 msg/s about eight
    /// re-sent documents share a version (and so a stored body, 0009).
    per_ms: usize,
}

fn parse_args() -> Result<Args> {
    let mut args = Args {
        config: PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("bench/config"),
        n: 20_000,
        batch: 250,
        tasks: 2,
        mode: "both".into(),
        url: None,
        distinct: false,
        per_ms: 1,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = || it.next().with_context(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--config" => args.config = value()?.into(),
            "--n" => args.n = value()?.parse()?,
            "--batch" => args.batch = value()?.parse()?,
            "--tasks" => args.tasks = value()?.parse()?,
            "--mode" => args.mode = value()?,
            "--url" => args.url = Some(value()?),
            "--distinct" => args.distinct = true,
            "--per-ms" => args.per_ms = value()?.parse::<usize>()?.max(1),
            other => bail!(
                "unknown argument {other} (--config DIR --n N --batch B --tasks T --mode off|on|both --url URL --distinct --per-ms K)"
            ),
        }
    }
    Ok(args)
}

/// CPU seconds of this process so far (all threads).
fn cpu_secs() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which is in parentheses): utime is the 14th field.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}

struct Doc {
    message_id: String,
    body: Vec<u8>,
    processed: Processed,
    receipt: Receipt,
    receipt_json: String,
}

fn prepare(config: &CompiledConfig, n: usize, distinct: bool, per_ms: usize) -> Vec<Doc> {
    let start: jiff::Timestamp = "2026-09-30T02:00:00Z".parse().unwrap_or_default();
    (0..n)
        .map(|i| {
            let message_id = format!("store-bench-{i:08}");
            let received_at = start
                .checked_add(jiff::SignedDuration::from_millis(
                    i64::try_from(i / per_ms).unwrap_or(0),
                ))
                .unwrap_or(start);
            let body = if distinct {
                // Document numbers in no particular order, as different bureaus' decisions
                // arrive: each record key lands somewhere in the middle of the index.
                let number = (i as u64).wrapping_mul(2_654_435_761) % 10_000_000;
                SAMPLE_JSON.replace("〔2026〕12号", &format!("〔2026〕{number}号")).into_bytes()
            } else {
                SAMPLE_JSON.as_bytes().to_vec()
            };
            let inbound = inbound(&message_id, &body, received_at);
            let processed = pipeline::process(config, &inbound);
            let receipt = processed.receipt(&inbound);
            let receipt_json = serde_json::to_string(&receipt).unwrap_or_default();
            Doc { message_id, body, processed, receipt, receipt_json }
        })
        .collect()
}

fn inbound<'a>(message_id: &'a str, body: &'a [u8], received_at: jiff::Timestamp) -> Inbound<'a> {
    Inbound {
        adapter: "bench-json",
        doc_type: "penalty",
        body,
        content_type: Some("application/json"),
        message_id,
        correlation_id: None,
        received_at,
        source_timestamp: None,
    }
}

/// What ingest hands to the store for one batch: the lineage (committed while the copies
/// are published, without waiting for the disk) and the dedup rows (after the confirms).
fn lineage_rows(docs: &[Doc]) -> Vec<Write> {
    let mut rows = Vec::with_capacity(docs.len());
    for doc in docs {
        let inbound = inbound(&doc.message_id, &doc.body, jiff::Timestamp::UNIX_EPOCH);
        rows.extend(credgate::store::lineage::lineage_writes(
            &inbound,
            &doc.processed,
            &doc.receipt,
        ));
    }
    rows
}

fn dedup_rows(docs: &[Doc]) -> Vec<Write> {
    let mut rows = Vec::with_capacity(docs.len());
    for doc in docs {
        rows.push(Write::Message {
            message_id: doc.message_id.clone(),
            adapter: "bench-json".into(),
            doc_type: "penalty".into(),
            status: "accepted".into(),
            receipt: doc.receipt_json.clone(),
            received_at: doc.receipt.received_at.clone(),
        });
    }
    rows
}

async fn run_once(args: &Args, docs: &std::sync::Arc<Vec<Doc>>, lineage: bool) -> Result<()> {
    let dir = std::env::temp_dir().join(format!(
        "credgate-store-bench-{}-{}",
        std::process::id(),
        uuid::Uuid::new_v4().simple()
    ));
    std::fs::create_dir_all(&dir)?;
    let url = args.url.clone().unwrap_or_else(|| "sqlite://bench.db".into());
    let store = Store::open(&url, &dir).await?;
    let cpu0 = cpu_secs();
    let t0 = Instant::now();
    let batches: Vec<(usize, usize)> = (0..docs.len())
        .step_by(args.batch)
        .map(|s| (s, (s + args.batch).min(docs.len())))
        .collect();
    let next = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let batches = std::sync::Arc::new(batches);
    let mut tasks = Vec::new();
    for _ in 0..args.tasks.max(1) {
        let (store, docs, next, batches) =
            (store.clone(), docs.clone(), next.clone(), batches.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(&(s, e)) = batches.get(i) else { return Ok::<_, anyhow::Error>(()) };
                if lineage {
                    store.write_all_flushed_later(lineage_rows(&docs[s..e])).await?;
                }
                store.write_all(dedup_rows(&docs[s..e])).await?;
            }
        }));
    }
    for task in tasks {
        task.await??;
    }
    // The lineage counts once it is in the lineage tables, not when it sits in the backlog:
    // whatever the writer has not moved yet is moved inside the timed span.
    store.catch_up_lineage().await?;
    let wall = t0.elapsed().as_secs_f64();
    let cpu = cpu_secs() - cpu0;
    #[allow(clippy::cast_precision_loss)]
    let n = docs.len() as f64;
    println!(
        "lineage={} n={} batch={} tasks={} per_ms={} wall_us_per_msg={:.1} cpu_us_per_msg={:.1} msg_per_s={:.0}",
        if lineage { "on" } else { "off" },
        docs.len(),
        args.batch,
        args.tasks,
        args.per_ms,
        wall * 1e6 / n,
        cpu * 1e6 / n,
        n / wall
    );
    drop(store);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

fn main() -> Result<()> {
    let args = parse_args()?;
    let config = CompiledConfig::load(&args.config, &LoadOptions { resolve_secrets: false })
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let docs = std::sync::Arc::new(prepare(&config, args.n, args.distinct, args.per_ms));
    let runtime = tokio::runtime::Runtime::new()?;
    let modes: Vec<bool> = match args.mode.as_str() {
        "off" => vec![false],
        "on" => vec![true],
        "both" => vec![false, true, false, true],
        other => bail!("--mode {other}: off, on or both"),
    };
    for lineage in modes {
        runtime.block_on(run_once(&args, &docs, lineage))?;
    }
    Ok(())
}
