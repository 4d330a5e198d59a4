//! Command-line interface (contract §7). Each subcommand returns its exit code: 0 ok,
//! 1 runtime failure, 2 usage or configuration error, 3 data failed validation.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};

use crate::config::{CompiledConfig, LoadOptions};
use crate::fixtures::{self, CaseOutcome};
use crate::pipeline::{self, Inbound, RecordStatus};

mod import;
mod ops;

#[derive(Debug, Parser)]
#[command(name = "credgate", version, about = "Credit data-exchange gateway", long_about = None)]
pub struct Cli {
    /// Configuration directory (holds credgate.toml and routes.toml).
    #[arg(long, global = true, env = "CREDGATE_CONFIG", default_value = "config")]
    pub config: PathBuf,
    /// Output style of reports.
    #[arg(long, global = true, value_enum, default_value_t = OutputFormat::Table)]
    pub output: OutputFormat,
    /// Log line format.
    #[arg(long, global = true, value_enum)]
    pub log_format: Option<LogFormat>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum OutputFormat {
    Table,
    Json,
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum LogFormat {
    Json,
    Pretty,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Parse and compile all configuration, adapters, schemas, mappings, routes and masking
    /// policies; list every error.
    Check,
    /// Offline: decode → map → validate documents and print the violation list.
    Validate {
        #[arg(long)]
        adapter: String,
        #[arg(long)]
        doc_type: String,
        /// Content type of the files, e.g. `text/csv; charset=gb18030` (default: the adapter's).
        #[arg(long)]
        content_type: Option<String>,
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Run the gateway service until SIGTERM/SIGINT, then drain and exit 0.
    Run,
    /// Apply or show the AMQP topology.
    Topology {
        #[arg(value_enum)]
        action: TopologyAction,
    },
    /// Play the sample platforms against a running gateway and report what happened.
    Demo {
        /// Exit after the report instead of waiting for Ctrl-C.
        #[arg(long)]
        once: bool,
        /// Seconds to wait for receipts and deliveries.
        #[arg(long, default_value_t = 60)]
        timeout: u64,
    },
    /// Run every adapter's fixtures offline and compare with the expectations.
    Test {
        /// Only this adapter's fixtures.
        #[arg(long)]
        adapter: Option<String>,
        /// Rewrite expected.json from the current output (review the diff afterwards).
        #[arg(long)]
        bless: bool,
    },
    /// Lineage from the store: what was received about a subject and where each version went.
    #[command(subcommand)]
    Records(ops::RecordsCommand),
    /// Dead letters: list, show, replay; re-ingest of rejected documents.
    #[command(subcommand)]
    Dlq(ops::DlqCommand),
    /// Destination pause / resume (persisted, audited).
    #[command(subcommand)]
    Destinations(ops::DestinationsCommand),
    /// The operator audit log.
    #[command(subcommand)]
    Audit(ops::AuditCommand),
    /// Batch ingest of a file (.csv, .xlsx, .json, .xml): checks every row offline, prints a
    /// per-row report and publishes the valid rows into the gateway as the platform would.
    Import(import::ImportArgs),
    /// Compliance scorecard per day, source organisation and catalog item.
    Scorecard {
        /// First day (YYYY-MM-DD); default 30 days before --to.
        #[arg(long)]
        from: Option<String>,
        /// Last day (YYYY-MM-DD); default today.
        #[arg(long)]
        to: Option<String>,
        /// CSV instead of a table (or JSON with --output json).
        #[arg(long)]
        csv: bool,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum TopologyAction {
    Declare,
    Status,
}

/// Runs the parsed command.
pub fn run(cli: Cli) -> ExitCode {
    match &cli.command {
        Command::Check => check(&cli),
        Command::Validate { adapter, doc_type, content_type, files } => {
            validate(&cli, adapter, doc_type, content_type.as_deref(), files)
        }
        Command::Test { adapter, bless } => test(&cli, adapter.as_deref(), *bless),
        Command::Run => service(&cli),
        Command::Demo { once, timeout } => demo(&cli, *once, *timeout),
        Command::Topology { action } => topology(&cli, *action),
        Command::Records(command) => ops::records(&cli, command),
        Command::Dlq(command) => ops::dlq(&cli, command),
        Command::Destinations(command) => ops::destinations(&cli, command),
        Command::Audit(command) => ops::audit(&cli, command),
        Command::Import(args) => import::import(&cli, args),
        Command::Scorecard { from, to, csv } => {
            ops::scorecard(&cli, from.as_deref(), to.as_deref(), *csv)
        }
    }
}

fn load(cli: &Cli, resolve_secrets: bool) -> Result<CompiledConfig, ExitCode> {
    CompiledConfig::load(&cli.config, &LoadOptions { resolve_secrets }).map_err(|errors| {
        eprintln!(
            "configuration in {} is invalid ({} problems):",
            cli.config.display(),
            errors.len()
        );
        for error in &errors {
            eprintln!("  {error}");
        }
        ExitCode::from(2)
    })
}

fn check(cli: &Cli) -> ExitCode {
    let config = match load(cli, false) {
        Ok(c) => c,
        Err(code) => return code,
    };
    for warning in &config.warnings {
        eprintln!("warning: {warning}");
    }
    let n_docs: usize = config.adapters.values().map(|a| a.inbound.len()).sum();
    let n_dest = config.adapters.values().filter(|a| a.destination.is_some()).count();
    println!(
        "configuration ok: {} catalog items, {} adapters ({} inbound document types, {} destinations), calendar up to {}",
        config.catalog.items().count(),
        config.adapters.len(),
        n_docs,
        n_dest,
        config.calendar.last_year_loaded().map_or("none".to_owned(), |y| y.to_string()),
    );
    ExitCode::SUCCESS
}

fn validate(
    cli: &Cli,
    adapter: &str,
    doc_type: &str,
    content_type: Option<&str>,
    files: &[PathBuf],
) -> ExitCode {
    let config = match load(cli, false) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let mut any_invalid = false;
    let mut reports = Vec::new();
    for file in files {
        let body = match std::fs::read(file) {
            Ok(b) => b,
            Err(error) => {
                eprintln!("cannot read {}: {error}", file.display());
                return ExitCode::from(2);
            }
        };
        let message_id = format!("validate:{}", file.display());
        let inbound = Inbound {
            adapter,
            doc_type,
            body: &body,
            content_type,
            message_id: &message_id,
            correlation_id: None,
            received_at: jiff::Timestamp::now(),
            source_timestamp: None,
        };
        let processed = pipeline::process(&config, &inbound);
        if !processed.document_violations.is_empty()
            && config.adapters.get(adapter).is_none_or(|a| !a.inbound.contains_key(doc_type))
        {
            for v in &processed.document_violations {
                eprintln!("{}", v.message);
            }
            return ExitCode::from(2);
        }
        any_invalid |= processed.status == pipeline::ReceiptStatus::Rejected
            || processed.records.iter().any(|r| r.status == RecordStatus::Rejected);
        reports.push((file.clone(), processed.receipt(&inbound)));
    }
    if cli.output == OutputFormat::Json {
        let list: Vec<_> = reports
            .iter()
            .map(|(file, receipt)| serde_json::json!({"file": file, "status": receipt.status, "violations": receipt.violations, "records": receipt.records}))
            .collect();
        println!("{}", serde_json::to_string_pretty(&list).unwrap_or_default());
    } else {
        for (file, receipt) in &reports {
            print_receipt_table(file, receipt);
        }
    }
    if any_invalid { ExitCode::from(3) } else { ExitCode::SUCCESS }
}

fn print_receipt_table(file: &Path, receipt: &pipeline::Receipt) {
    println!("{}: {:?}", file.display(), receipt.status);
    let mut table = Table::new();
    table.load_preset(UTF8_FULL_CONDENSED);
    table.set_header(["record", "status", "rule", "severity", "field (字段)", "code", "message"]);
    for v in &receipt.violations {
        table.add_row(["document", "rejected", &v.rule, "error", &v.field, "", &v.message]);
    }
    for record in &receipt.records {
        let key = record.record_key.clone().unwrap_or_else(|| format!("#{}", record.index));
        let status = format!("{:?}", record.status);
        if record.violations.is_empty() {
            table.add_row([key.as_str(), &status, "", "", "", "", ""]);
        }
        for v in &record.violations {
            let severity = format!("{:?}", v.severity).to_lowercase();
            let field =
                if v.field.is_empty() { v.path.clone() } else { format!("{} {}", v.field, v.path) };
            table.add_row([
                key.as_str(),
                &status,
                &v.rule,
                &severity,
                &field,
                v.code.as_deref().unwrap_or(""),
                &v.message,
            ]);
        }
    }
    println!("{table}");
}

fn test(cli: &Cli, adapter: Option<&str>, bless: bool) -> ExitCode {
    let config = match load(cli, false) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let results = fixtures::run_all(&config, adapter, bless);
    let mut failed = 0;
    for result in &results {
        let name = format!("{}/{}", result.adapter, result.case);
        match &result.outcome {
            CaseOutcome::Pass => println!("PASS  {name}  {}", result.description),
            CaseOutcome::Blessed => println!("BLESS {name}  {}", result.description),
            CaseOutcome::Fail(diffs) => {
                failed += 1;
                println!("FAIL  {name}  {}", result.description);
                for d in diffs {
                    println!("        {d}");
                }
            }
            CaseOutcome::Error(message) => {
                failed += 1;
                println!("ERROR {name}: {message}");
            }
        }
    }
    let passed = results.len() - failed;
    println!("fixtures: {passed} passed, {failed} failed");
    if results.is_empty() {
        eprintln!("no fixtures found under the adapters directory");
        return ExitCode::from(1);
    }
    if failed == 0 { ExitCode::SUCCESS } else { ExitCode::from(1) }
}

/// The service-side commands: configuration with secrets resolved, and an async runtime.
fn load_with_runtime(cli: &Cli) -> Result<(CompiledConfig, tokio::runtime::Runtime), ExitCode> {
    let config = load(cli, true)?;
    Ok((config, runtime()?))
}

fn runtime() -> Result<tokio::runtime::Runtime, ExitCode> {
    tokio::runtime::Builder::new_multi_thread().enable_all().build().map_err(|error| {
        eprintln!("cannot start the async runtime: {error}");
        ExitCode::from(1)
    })
}

fn service(cli: &Cli) -> ExitCode {
    let config = match load(cli, true) {
        Ok(c) => c,
        Err(code) => return code,
    };
    crate::telemetry::init(
        cli.log_format.map_or(config.process.telemetry.log_format.as_str(), |f| match f {
            LogFormat::Json => "json",
            LogFormat::Pretty => "pretty",
        }),
        &config.process.telemetry.log_level,
    );
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    let result = rt.block_on(async move {
        let shutdown = tokio_util::sync::CancellationToken::new();
        let signals = shutdown.clone();
        tokio::spawn(async move {
            crate::telemetry::wait_for_signal().await;
            tracing::info!("Shutdown requested; draining in-flight work.");
            signals.cancel();
        });
        crate::runtime::app::run(config, shutdown, None).await
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("credgate stopped: {error:#}");
            ExitCode::from(1)
        }
    }
}

fn topology(cli: &Cli, action: TopologyAction) -> ExitCode {
    let (config, rt) = match load_with_runtime(cli) {
        Ok(pair) => pair,
        Err(code) => return code,
    };
    let result: Result<(), String> = rt.block_on(async {
        let connection = crate::broker::connect(&config, "credgate-cli").await.map_err(|e| e.to_string())?;
        let channel = connection.create_channel().await.map_err(|e| e.to_string())?;
        if action == TopologyAction::Declare {
            let summary = crate::broker::declare_topology(&channel, &config).await.map_err(|e| e.to_string())?;
            println!("declared {} exchanges and {} queues", summary.exchanges.len(), summary.queues.len());
        }
        let mut table = Table::new();
        table.load_preset(UTF8_FULL_CONDENSED);
        table.set_header(["queue", "depth", "consumers"]);
        let mut rows = Vec::new();
        for name in crate::broker::queue_names(&config) {
            let passive = lapin::options::QueueDeclareOptions { passive: true, durable: true, ..Default::default() };
            // A passive declare of a missing queue closes the channel; use a fresh one each time.
            let probe = connection.create_channel().await.map_err(|e| e.to_string())?;
            match probe.queue_declare(name.as_str().into(), passive, lapin::types::FieldTable::default()).await {
                Ok(q) => {
                    rows.push(serde_json::json!({"queue": name, "depth": q.message_count(), "consumers": q.consumer_count()}));
                    table.add_row([name.clone(), q.message_count().to_string(), q.consumer_count().to_string()]);
                }
                Err(_) => {
                    rows.push(serde_json::json!({"queue": name, "missing": true}));
                    table.add_row([name.clone(), "missing".to_owned(), String::new()]);
                }
            }
        }
        if cli.output == OutputFormat::Json {
            println!("{}", serde_json::to_string_pretty(&rows).unwrap_or_default());
        } else {
            println!("{table}");
        }
        let _ = connection.close(200, "done".into()).await;
        Ok(())
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("topology: {error}");
            ExitCode::from(1)
        }
    }
}

fn demo(cli: &Cli, once: bool, timeout: u64) -> ExitCode {
    let (config, rt) = match load_with_runtime(cli) {
        Ok(pair) => pair,
        Err(code) => return code,
    };
    match rt.block_on(crate::demo::run(&config, std::time::Duration::from_secs(timeout), !once)) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => {
            eprintln!("demo: not everything settled within {timeout} s (see the report above)");
            ExitCode::from(1)
        }
        Err(error) => {
            eprintln!("demo: {error:#}");
            ExitCode::from(1)
        }
    }
}
