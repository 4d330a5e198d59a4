//! `credgate import`: the command around [`crate::import`] — exit codes, the progress bar and
//! the per-row report.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::{Cli, OutputFormat, load, runtime};
use crate::import::{self, ImportReport, ImportRequest};
use crate::pipeline::{ReceiptStatus, RecordStatus};

#[derive(Debug, clap::Args)]
pub struct ImportArgs {
    /// The adapter (platform) the file comes from.
    #[arg(long)]
    pub adapter: String,
    /// The document type; needed only when the adapter has several of the file's codec
    /// (an .xlsx or .csv file goes to a csv document type).
    #[arg(long)]
    pub doc_type: Option<String>,
    /// Report only: decode, map and validate every row; connect to nothing, publish nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Messages published per wait for the broker's confirms.
    #[arg(long, default_value_t = import::DEFAULT_BATCH, value_parser = batch_size)]
    pub batch: usize,
    /// After publishing, wait up to this many seconds for the gateway's receipts and report
    /// them per row (exit 1 if some do not come: is the gateway running?).
    #[arg(long, value_name = "SECS")]
    pub wait: Option<u64>,
    /// No progress bar (it is also hidden when stderr is not a terminal).
    #[arg(long, short)]
    pub quiet: bool,
    /// The file: .csv, .xlsx (first worksheet), .json / .jsonl, or .xml.
    pub file: PathBuf,
}

fn batch_size(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(n) if (1..=5000).contains(&n) => Ok(n),
        _ => Err("a number from 1 to 5000".to_owned()),
    }
}

pub(super) fn import(cli: &Cli, args: &ImportArgs) -> ExitCode {
    // Of the secrets only the broker password is needed, and only to publish:
    // `import::publish` resolves it.
    let config = match load(cli, false) {
        Ok(c) => c,
        Err(code) => return code,
    };
    if !args.dry_run
        && let Err(error) = import::check_publishable(&config, &args.adapter)
            .and_then(|()| import::broker_uri(&config))
    {
        eprintln!("import: {error}");
        return ExitCode::from(error.exit_code());
    }
    let request = ImportRequest {
        adapter: &args.adapter,
        doc_type: args.doc_type.as_deref(),
        file: &args.file,
    };
    let checking = progress_bar(0, args.quiet, "checking");
    let on_row = |done: usize, total: usize| {
        if done == 0 {
            checking.set_length(total as u64);
        }
        checking.set_position(done as u64);
    };
    let prepared = import::prepare(&config, &request, &on_row);
    checking.finish_and_clear();
    let mut report = match prepared {
        Ok(report) => report,
        Err(error) => {
            eprintln!("import: {error}");
            return ExitCode::from(error.exit_code());
        }
    };
    let mut failure = None;
    if !args.dry_run && report.units_to_publish() > 0 {
        let rt = match runtime() {
            Ok(rt) => rt,
            Err(code) => return code,
        };
        let bar = progress_bar(report.units_to_publish() as u64, args.quiet, "publishing");
        let progress = |p: import::Progress| match p {
            import::Progress::Confirmed(n) => bar.set_position(n as u64),
            import::Progress::Receipts { received, expected } => {
                if received == 0 {
                    bar.reset();
                    bar.set_style(style("  receipts", "receipts"));
                    bar.set_length(expected as u64);
                }
                bar.set_position(received as u64);
            }
        };
        let wait = args.wait.map(std::time::Duration::from_secs);
        failure =
            rt.block_on(import::publish(&config, &mut report, args.batch, wait, &progress)).err();
        bar.finish_and_clear();
    } else if !args.dry_run {
        // Nothing valid to publish: no connection needed, but the report is not a dry run.
        report.dry_run = false;
    }
    if cli.output == OutputFormat::Json {
        println!("{}", serde_json::to_string_pretty(&report).unwrap_or_default());
    } else {
        print_report(&report);
    }
    if let Some(error) = failure {
        eprintln!("import: {error}");
        return ExitCode::from(error.exit_code());
    }
    if report.missing_receipts() > 0 {
        eprintln!(
            "import: {} of {} published messages got no receipt within {} s; they wait in \
             credgate.in.{} until a gateway consumes them (is it running?)",
            report.missing_receipts(),
            report.summary.published,
            args.wait.unwrap_or_default(),
            report.adapter
        );
        return ExitCode::from(1);
    }
    if report.any_rejected() { ExitCode::from(3) } else { ExitCode::SUCCESS }
}

/// The bar on stderr; hidden with `--quiet` or when stderr is not a terminal.
fn progress_bar(len: u64, quiet: bool, what: &str) -> ProgressBar {
    if quiet || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr());
    let unit = if what == "publishing" { "messages" } else { "rows" };
    bar.set_style(style(what, unit));
    bar
}

fn style(what: &str, unit: &str) -> ProgressStyle {
    ProgressStyle::with_template(&format!(
        "{what:>10} {{bar:40.cyan/blue}} {{pos}}/{{len}} {unit} ({{per_sec}}, {{eta}} left)"
    ))
    .map(|style| style.progress_chars("=> "))
    .unwrap_or_else(|_| ProgressStyle::default_bar())
}

fn outcome(status: RecordStatus) -> &'static str {
    match status {
        RecordStatus::Accepted => "accepted",
        RecordStatus::AcceptedWithWarnings => "accepted with warnings",
        RecordStatus::Rejected => "rejected",
    }
}

fn receipt_name(status: ReceiptStatus) -> &'static str {
    match status {
        ReceiptStatus::Accepted => "accepted",
        ReceiptStatus::AcceptedWithWarnings => "accepted with warnings",
        ReceiptStatus::Rejected => "rejected",
        ReceiptStatus::Duplicate => "duplicate",
    }
}

fn print_report(report: &ImportReport) {
    let mut table = Table::new();
    table.load_preset(UTF8_FULL_CONDENSED);
    table.set_header([
        "row",
        "record key",
        "outcome",
        "rule",
        "severity",
        "field (字段)",
        "message",
        "routed to",
        "published",
    ]);
    for row in &report.rows {
        let key = row.record_key.as_deref().unwrap_or("");
        let published = if report.dry_run {
            "dry run".to_owned()
        } else {
            match (row.published, row.receipt) {
                (false, _) => "no".to_owned(),
                (true, None) => "yes".to_owned(),
                (true, Some(status)) => format!("yes, receipt: {}", receipt_name(status)),
            }
        };
        let published = published.as_str();
        let place = if row.row == 0 { row.location.clone() } else { row.row.to_string() };
        let routed = row.routed_to.join(", ");
        if row.violations.is_empty() {
            table.add_row([&place, key, outcome(row.outcome), "", "", "", "", &routed, published]);
        }
        for v in &row.violations {
            let severity = format!("{:?}", v.severity).to_lowercase();
            let field = match (v.field.is_empty(), v.path.is_empty()) {
                (true, _) => v.path.clone(),
                (false, true) => v.field.clone(),
                (false, false) => format!("{} {}", v.field, v.path),
            };
            table.add_row([
                place.as_str(),
                key,
                outcome(row.outcome),
                &v.rule,
                &severity,
                &field,
                &v.message,
                &routed,
                published,
            ]);
        }
    }
    println!("{table}");
    let s = &report.summary;
    let mut line = format!(
        "{}: {} {} for {}/{} — {} accepted, {} accepted with warnings, {} rejected",
        report.file.display(),
        s.rows,
        if s.rows == 1 { "row" } else { "rows" },
        report.adapter,
        report.doc_type,
        s.accepted,
        s.accepted_with_warnings,
        s.rejected,
    );
    if s.skipped_empty > 0 {
        line.push_str(&format!("; {} empty rows skipped", s.skipped_empty));
    }
    println!("{line}");
    if report.dry_run {
        println!(
            "dry run: {} messages would be published to credgate.in with routing key {}",
            s.to_publish, report.routing_key
        );
    } else if s.published < s.to_publish {
        println!(
            "published {} of {} messages to credgate.in with routing key {}; the rest was not \
             published (see the error below): import the file again, rows already published are \
             answered `duplicate`",
            s.published, s.to_publish, report.routing_key
        );
    } else {
        println!(
            "published {} of {} messages to credgate.in with routing key {} (confirmed by the broker); \
             the gateway answers each on credgate.receipts",
            s.published, s.to_publish, report.routing_key
        );
    }
    if let Some(r) = &s.receipts {
        println!(
            "receipts: {} accepted, {} accepted with warnings, {} rejected, {} duplicate, {} missing",
            r.accepted, r.accepted_with_warnings, r.rejected, r.duplicate, r.missing
        );
    }
}
