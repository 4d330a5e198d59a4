//! `credgate-bench`: micro-benchmark of the pure pipeline (issue 3).
//!
//! decode → map → validate → route → encode (`credgate::pipeline::process`) on the §7.1
//! penalty record (domain-fixtures.md) in JSON, XML and GB18030 CSV, on one thread, plus
//! a per-stage breakdown and a "bare" baseline: `serde_json` parse → `jsonschema` validate
//! (the plain penalty schema, default options) → `serde_json` serialise.
//!
//! Built with `--features bench-alloc` it also counts allocations per record with the
//! `stats_alloc` counting allocator (its atomics slow every allocation down, so take the
//! records-per-second figures from a build without the feature). See `bench/README.md`.
//!
//! ```text
//! cargo run --release --bin credgate-bench -- [--config bench/config] [--secs 3] [--markdown]
//! ```

use std::hint::black_box;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use credgate::config::{CompiledConfig, LoadOptions};
use credgate::decode;
use credgate::domain::rules::RuleContext;
use credgate::encode;
use credgate::pipeline::{self, Inbound, ReceiptStatus};
use credgate::route::RouteInput;
use serde_json::{Map, Value};

/// The same allocator as the `credgate` binary, so the figures are the service's.
#[cfg(not(feature = "bench-alloc"))]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[cfg(feature = "bench-alloc")]
#[global_allocator]
static GLOBAL: &stats_alloc::StatsAlloc<std::alloc::System> = &stats_alloc::INSTRUMENTED_SYSTEM;

/// The §7.1 record (行政处罚 — company), as the JSON source sends it.
const SAMPLE_JSON: &str = include_str!("samples/penalty-7.1.json");

/// Received two days after the decision, so SG-12 (publicity deadline) holds and the record is
/// `accepted` without warnings, as in normal operation.
const RECEIVED_AT: &str = "2026-09-30T10:00:00+08:00";

#[derive(Debug)]
struct Args {
    config: PathBuf,
    secs: f64,
    markdown: bool,
    /// `--profile CODEC N`: only run `process` N times on that codec (for callgrind/perf).
    profile: Option<(String, u64)>,
}

fn parse_args() -> Result<Args> {
    let mut args = Args {
        config: PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("bench/config"),
        secs: 3.0,
        markdown: false,
        profile: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--config" => args.config = it.next().context("--config DIR")?.into(),
            "--secs" => args.secs = it.next().context("--secs N")?.parse()?,
            "--markdown" => args.markdown = true,
            "--profile" => {
                let codec = it.next().context("--profile CODEC N")?;
                let n = it.next().context("--profile CODEC N")?.parse()?;
                args.profile = Some((codec, n));
            }
            "-h" | "--help" => {
                println!(
                    "credgate-bench [--config DIR] [--secs SECONDS_PER_CASE] [--markdown] [--profile json|xml|csv-gb18030 N]"
                );
                std::process::exit(0);
            }
            other => bail!("unknown argument {other}"),
        }
    }
    Ok(args)
}

/// One input document.
#[derive(Debug)]
struct Input {
    codec: &'static str,
    adapter: &'static str,
    content_type: &'static str,
    body: Vec<u8>,
}

fn sample() -> Result<Map<String, Value>> {
    match serde_json::from_str(SAMPLE_JSON)? {
        Value::Object(map) => Ok(map),
        _ => bail!("sample is not an object"),
    }
}

fn text_of(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The same record as an XML export: `<penalties><penalty><CF_XDR_MC>…</CF_XDR_MC>…`.
fn to_xml(record: &Map<String, Value>) -> Vec<u8> {
    let mut xml = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<penalties><penalty>");
    for (k, v) in record {
        let text = text_of(v);
        xml.push_str(&format!("<{k}>{}</{k}>", quick_xml::escape::escape(text.as_str())));
    }
    xml.push_str("</penalty></penalties>\n");
    xml.into_bytes()
}

/// The same record as a GB18030 CSV export: a header row of column codes and one data row.
fn to_gb18030_csv(record: &Map<String, Value>) -> Result<Vec<u8>> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(record.keys())?;
    w.write_record(record.values().map(text_of))?;
    let utf8 = String::from_utf8(w.into_inner().map_err(|e| anyhow!("csv: {e}"))?)?;
    let (bytes, _, unmappable) = encoding_rs::GB18030.encode(&utf8);
    if unmappable {
        bail!("sample not representable in GB18030");
    }
    Ok(bytes.into_owned())
}

/// Runs `f` repeatedly for about `secs` (after a short warm-up) and returns records per second.
fn rate(secs: f64, mut f: impl FnMut()) -> f64 {
    let warm = Instant::now();
    while warm.elapsed() < Duration::from_millis(300) {
        f();
    }
    let budget = Duration::from_secs_f64(secs);
    let started = Instant::now();
    let mut n: u64 = 0;
    loop {
        for _ in 0..256 {
            f();
        }
        n += 256;
        if started.elapsed() >= budget {
            break;
        }
    }
    n as f64 / started.elapsed().as_secs_f64()
}

/// Allocations (including reallocations) and bytes allocated per call of `f`.
#[cfg(feature = "bench-alloc")]
fn allocs(mut f: impl FnMut()) -> Option<(f64, f64)> {
    f();
    const N: usize = 2000;
    let region = stats_alloc::Region::new(GLOBAL);
    for _ in 0..N {
        f();
    }
    let s = region.change();
    Some(((s.allocations + s.reallocations) as f64 / N as f64, s.bytes_allocated as f64 / N as f64))
}

#[cfg(not(feature = "bench-alloc"))]
fn allocs(_f: impl FnMut()) -> Option<(f64, f64)> {
    None
}

#[derive(Debug)]
struct Row {
    case: String,
    per_sec: f64,
    allocs: Option<(f64, f64)>,
    note: String,
}

fn measure(rows: &mut Vec<Row>, secs: f64, case: &str, note: &str, mut f: impl FnMut()) {
    let per_sec = rate(secs, &mut f);
    let allocs = allocs(&mut f);
    rows.push(Row { case: case.to_owned(), per_sec, allocs, note: note.to_owned() });
    eprintln!("  {case:<34} {per_sec:>10.0} rec/s");
}

fn main() -> Result<()> {
    let args = parse_args()?;
    let config = CompiledConfig::load(&args.config, &LoadOptions { resolve_secrets: false })
        .map_err(|errors| {
            anyhow!(
                "configuration {} invalid: {}",
                args.config.display(),
                errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
            )
        })?;
    let received_at: jiff::Timestamp = RECEIVED_AT.parse()?;
    let record = sample()?;
    let inputs = [
        Input {
            codec: "json",
            adapter: "bench-json",
            content_type: "application/json",
            body: SAMPLE_JSON.as_bytes().to_vec(),
        },
        Input {
            codec: "xml",
            adapter: "bench-xml",
            content_type: "application/xml",
            body: to_xml(&record),
        },
        Input {
            codec: "csv-gb18030",
            adapter: "bench-csv",
            content_type: "text/csv; charset=gb18030",
            body: to_gb18030_csv(&record)?,
        },
    ];
    let secs = args.secs;
    let mut rows = Vec::new();
    eprintln!(
        "credgate-bench: config {}, {secs} s per case, one thread{}",
        args.config.display(),
        if cfg!(feature = "bench-alloc") { ", counting allocator ON" } else { "" }
    );

    let mut canonical_fields: Option<Map<String, Value>> = None;
    for input in &inputs {
        let inbound = Inbound {
            adapter: input.adapter,
            doc_type: "penalty",
            body: &input.body,
            content_type: Some(input.content_type),
            message_id: "bench-7.1-0001",
            correlation_id: None,
            received_at,
            source_timestamp: None,
        };
        // Sanity: the record is accepted and routed to the one bench destination.
        let processed = pipeline::process(&config, &inbound);
        let copies: usize = processed.records.iter().map(|r| r.copies.len()).sum();
        if processed.status != ReceiptStatus::Accepted || copies != 1 {
            bail!(
                "{}: expected accepted with 1 copy, got {:?} with {copies}: {:?}",
                input.codec,
                processed.status,
                processed.receipt(&inbound)
            );
        }
        if let Some((codec, n)) = &args.profile {
            if codec == input.codec {
                for _ in 0..*n {
                    black_box(pipeline::process(&config, black_box(&inbound)));
                }
                return Ok(());
            }
            continue;
        }
        if canonical_fields.is_none() {
            canonical_fields = processed.records[0].record.as_ref().map(|r| r.fields.clone());
        }

        let codec = input.codec;
        measure(
            &mut rows,
            secs,
            &format!("{codec}: process (full)"),
            &format!(
                "{} B in, {} B out",
                input.body.len(),
                processed.records[0].copies[0].payload.len()
            ),
            || {
                black_box(pipeline::process(&config, black_box(&inbound)));
            },
        );
        measure(
            &mut rows,
            secs,
            &format!("{codec}: process + receipt JSON"),
            "what ingest does before IO",
            || {
                let p = pipeline::process(&config, black_box(&inbound));
                let receipt = p.receipt(&inbound);
                black_box(serde_json::to_vec(&receipt).unwrap_or_default());
            },
        );

        // Per-stage breakdown on prepared inputs.
        let adapter = config.adapters.get(input.adapter).context("adapter")?;
        let doc = adapter.inbound.get("penalty").context("doc")?;
        let mut options = doc.decode.clone();
        if let Ok((_, Some(cs))) = decode::parse_content_type(input.content_type) {
            options.charset = Some(cs);
        }
        measure(&mut rows, secs, &format!("{codec}:   decode"), "", || {
            black_box(decode::decode(black_box(&input.body), &options).ok());
        });
        let decoded = decode::decode(&input.body, &options)
            .map_err(|e| anyhow!("decode: {e}"))?
            .into_iter()
            .next()
            .context("no record")?
            .map_err(|e| anyhow!("record: {}", e.message))?;
        measure(&mut rows, secs, &format!("{codec}:   map"), "", || {
            black_box(doc.mapper.map(black_box(&decoded)));
        });
        let mut mapped = doc.mapper.map(&decoded);
        let item = &doc.mapper.item;
        let ctx = RuleContext {
            received_at_date: received_at.to_zoned(pipeline::shanghai()).date(),
            working_days: Some(&config.calendar),
        };
        measure(&mut rows, secs, &format!("{codec}:   validate"), "", || {
            black_box(credgate::validate::validate(item, black_box(&mut mapped.fields), &ctx));
        });
        measure(&mut rows, secs, &format!("{codec}:   route"), "", || {
            black_box(config.router.route(&RouteInput {
                catalog_item: &item.item,
                operation: "upsert",
                source_adapter: &adapter.id,
                fields: black_box(&mapped.fields),
            }));
        });
        let dest = config
            .adapters
            .get("bench-sink")
            .and_then(|a| a.destination.as_ref())
            .context("bench-sink destination")?;
        let envelope = processed.records[0].record.as_ref().context("record")?.envelope.clone();
        measure(&mut rows, secs, &format!("{codec}:   mask + encode"), "", || {
            let released = dest.policy.release(item, black_box(&mapped.fields));
            black_box(encode::render_released(dest.format, item, &envelope, &released).ok());
        });
    }

    // Bare baseline: parse → validate against the plain penalty schema → serialise.
    let schema_path = args.config.join("../../schemas/admin_penalty/1.schema.json");
    let schema: Value = serde_json::from_slice(
        &std::fs::read(&schema_path).with_context(|| schema_path.display().to_string())?,
    )?;
    let validator = jsonschema::validator_for(&schema).map_err(|e| anyhow!("schema: {e}"))?;
    let canonical = serde_json::to_vec(&canonical_fields.context("no canonical record")?)?;
    let check: Value = serde_json::from_slice(&canonical)?;
    if !validator.is_valid(&check) {
        bail!("bare: canonical record does not validate against the plain schema");
    }
    measure(
        &mut rows,
        secs,
        "bare: parse → jsonschema → serialise",
        &format!("{} B canonical JSON", canonical.len()),
        || {
            let v: Value = serde_json::from_slice(black_box(&canonical)).unwrap_or_default();
            black_box(validator.is_valid(&v));
            black_box(serde_json::to_vec(&v).unwrap_or_default());
        },
    );

    print_table(&rows, args.markdown);
    Ok(())
}

fn print_table(rows: &[Row], markdown: bool) {
    let bare = rows.iter().find(|r| r.case.starts_with("bare")).map_or(f64::NAN, |r| r.per_sec);
    let with_allocs = rows.iter().any(|r| r.allocs.is_some());
    if markdown {
        println!(
            "| case | rec/s (1 thread) | µs/rec | full/bare |{}",
            if with_allocs { " allocs/rec | bytes/rec |" } else { "" }
        );
        println!("|---|---:|---:|---:|{}", if with_allocs { "---:|---:|" } else { "" });
    } else {
        println!(
            "{:<36} {:>11} {:>8} {:>9}{}  note",
            "case",
            "rec/s",
            "µs/rec",
            "full/bare",
            if with_allocs { "  allocs/rec  bytes/rec" } else { "" }
        );
    }
    for r in rows {
        let ratio = if r.case.contains("(full)") || r.case.starts_with("bare") {
            format!("{:.2}", r.per_sec / bare)
        } else {
            String::new()
        };
        let us = 1e6 / r.per_sec;
        let (a, b) = r.allocs.map_or((String::new(), String::new()), |(a, b)| {
            (format!("{a:.1}"), format!("{b:.0}"))
        });
        if markdown {
            print!("| {} | {:.0} | {us:.2} | {ratio} |", r.case.trim(), r.per_sec);
            if with_allocs {
                print!(" {a} | {b} |");
            }
            println!();
        } else {
            print!("{:<36} {:>11.0} {us:>8.2} {ratio:>9}", r.case, r.per_sec);
            if with_allocs {
                print!("  {a:>10} {b:>10}");
            }
            println!("  {}", r.note);
        }
    }
}
