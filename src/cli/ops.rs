//! Operator commands over the store: `records`, `dlq`, `destinations`, `audit`.
//! They open the store named in the configuration directly (SQLite file or PostgreSQL), so
//! they work whether or not a gateway is running; `dlq replay` also connects to the broker.

use std::process::ExitCode;

use clap::{Args, Subcommand};
use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};
use serde_json::Value;

use super::{Cli, OutputFormat, load, runtime};
use crate::config::CompiledConfig;
use crate::runtime::ops::{self, ReplayOptions};
use crate::store::Store;
use crate::store::backend::parse_instant;
use crate::store::dlq::DlqFilter;
use crate::store::lineage::RecordQuery;

#[derive(Debug, Subcommand)]
pub enum RecordsCommand {
    /// Records mentioning an identifier: every version, destination, attempt and answer.
    Search {
        #[arg(long, group = "by")]
        uscc: Option<String>,
        #[arg(long, group = "by")]
        id_no: Option<String>,
        #[arg(long, group = "by")]
        doc_no: Option<String>,
        #[arg(long, group = "by")]
        deal_code: Option<String>,
        #[arg(long, group = "by")]
        message_id: Option<String>,
        /// Show personal identifiers unmasked.
        #[arg(long)]
        reveal: bool,
        #[arg(long, default_value_t = 50)]
        limit: i64,
    },
    /// One record key's lineage.
    Show {
        key: String,
        #[arg(long)]
        reveal: bool,
    },
}

#[derive(Debug, Args, Clone, Default)]
pub struct DlqArgs {
    #[arg(long, default_value = "")]
    destination: String,
    /// Reason class: `rejected` or `retries_exhausted`.
    #[arg(long, default_value = "")]
    reason: String,
    /// From this instant (RFC 3339 or YYYY-MM-DD, Asia/Shanghai).
    #[arg(long, default_value = "")]
    since: String,
    /// Before this instant.
    #[arg(long, default_value = "")]
    until: String,
    #[arg(long, default_value = "")]
    record_key: String,
    /// Source adapter.
    #[arg(long, default_value = "")]
    source: String,
    /// Include dead letters that were replayed already.
    #[arg(long)]
    include_replayed: bool,
    #[arg(long, default_value_t = 1000)]
    limit: i64,
}

impl DlqArgs {
    fn filter(&self) -> Result<DlqFilter, String> {
        let instant = |s: &str| if s.is_empty() { Ok(String::new()) } else { parse_instant(s) };
        Ok(DlqFilter {
            destination: self.destination.clone(),
            reason: self.reason.clone(),
            since: instant(&self.since)?,
            until: instant(&self.until)?,
            record_key: self.record_key.clone(),
            source: self.source.clone(),
            include_replayed: self.include_replayed,
            limit: self.limit,
        })
    }
}

#[derive(Debug, Subcommand)]
pub enum DlqCommand {
    /// Dead letters matching the filters (not yet replayed unless --include-replayed).
    List(DlqArgs),
    /// One dead letter: reason, answer, attempts, the record (masked unless --reveal).
    Show {
        id: String,
        #[arg(long)]
        reveal: bool,
    },
    /// Publish matching dead letters again to their destination, linked to the original.
    Replay {
        #[command(flatten)]
        filter: DlqArgs,
        /// Only list what would be replayed.
        #[arg(long)]
        dry_run: bool,
        /// Copies per second (0: unlimited).
        #[arg(long, default_value_t = 10.0)]
        rate: f64,
        /// Operator name for the audit log (default: cli:$USER).
        #[arg(long, env = "CREDGATE_ACTOR")]
        actor: Option<String>,
    },
    /// Delete matching dead letters from the store (audited); the filters of `list`.
    Purge {
        #[command(flatten)]
        filter: DlqArgs,
        /// Only list what would be purged.
        #[arg(long)]
        dry_run: bool,
        /// Operator name for the audit log (default: cli:$USER).
        #[arg(long, env = "CREDGATE_ACTOR")]
        actor: Option<String>,
    },
    /// Re-ingest rejected documents (after a mapping or catalog fix) from their stored bytes.
    Reingest {
        #[arg(long, default_value = "")]
        adapter: String,
        #[arg(long, default_value = "")]
        since: String,
        #[arg(long)]
        dry_run: bool,
        #[arg(long, default_value_t = 100)]
        limit: i64,
        #[arg(long, env = "CREDGATE_ACTOR")]
        actor: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum DestinationsCommand {
    /// Every destination with its pause state.
    List,
    /// Stop delivering to a destination (survives restarts) until resumed.
    Pause {
        id: String,
        #[arg(long, default_value = "")]
        reason: String,
        #[arg(long, env = "CREDGATE_ACTOR")]
        actor: Option<String>,
    },
    /// Deliver to a paused destination again.
    Resume {
        id: String,
        #[arg(long, env = "CREDGATE_ACTOR")]
        actor: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Check the hash chain; exit 1 naming the first broken entry.
    Verify,
    /// Audit entries.
    List {
        #[arg(long, default_value_t = 1)]
        from: i64,
        #[arg(long, default_value_t = 100)]
        limit: i64,
    },
}

fn actor_name(given: Option<&str>) -> String {
    match given.map(str::trim).filter(|a| !a.is_empty()) {
        Some(a) => format!("cli:{a}"),
        None => format!("cli:{}", std::env::var("USER").unwrap_or_else(|_| "unknown".to_owned())),
    }
}

/// Config (with or without secrets), a runtime and the open store; or the exit code.
fn open(
    cli: &Cli,
    secrets: bool,
) -> Result<(CompiledConfig, tokio::runtime::Runtime, Store), ExitCode> {
    let config = load(cli, secrets)?;
    let rt = runtime()?;
    let store = rt.block_on(Store::open(&config.process.store.url, &config.data_dir())).map_err(
        |error| {
            eprintln!("cannot open the store: {error}");
            ExitCode::from(1)
        },
    )?;
    Ok((config, rt, store))
}

fn print_json(value: &impl serde::Serialize) {
    println!("{}", serde_json::to_string_pretty(value).unwrap_or_default());
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

pub(super) fn records(cli: &Cli, command: &RecordsCommand) -> ExitCode {
    let (query, reveal, limit) = match command {
        RecordsCommand::Show { key, reveal } => (RecordQuery::Key(key.clone()), *reveal, 1),
        RecordsCommand::Search { uscc, id_no, doc_no, deal_code, message_id, reveal, limit } => {
            let query = if let Some(v) = uscc {
                RecordQuery::Uscc(v.clone())
            } else if let Some(v) = id_no {
                RecordQuery::IdNo(v.clone())
            } else if let Some(v) = doc_no {
                RecordQuery::DocNo(v.clone())
            } else if let Some(v) = deal_code {
                RecordQuery::DealCode(v.clone())
            } else if let Some(v) = message_id {
                RecordQuery::MessageId(v.clone())
            } else {
                eprintln!(
                    "records search: give one of --uscc, --id-no, --doc-no, --deal-code, --message-id"
                );
                return ExitCode::from(2);
            };
            (query, *reveal, *limit)
        }
    };
    let (config, rt, store) = match open(cli, false) {
        Ok(t) => t,
        Err(code) => return code,
    };
    let histories = match rt.block_on(store.search_records(&query, limit)) {
        Ok(h) => h,
        Err(error) => {
            eprintln!("records: {error}");
            return ExitCode::from(1);
        }
    };
    let mut shown: Vec<Value> =
        histories.iter().map(|h| ops::present_history(&config.catalog, h, reveal)).collect();
    for record in &mut shown {
        let annotated =
            crate::runtime::lifecycle::annotate(&config, &store, record, jiff::Timestamp::now());
        if let Err(error) = rt.block_on(annotated) {
            eprintln!("records: {error}");
            return ExitCode::from(1);
        }
    }
    if cli.output == OutputFormat::Json {
        print_json(&serde_json::json!({ "records": shown }));
    } else if shown.is_empty() {
        println!("no records found");
    } else {
        for record in &shown {
            print_record(record);
        }
    }
    if matches!(command, RecordsCommand::Show { .. }) && shown.is_empty() {
        return ExitCode::from(1);
    }
    ExitCode::SUCCESS
}

fn print_record(record: &Value) {
    println!("record {}", text(&record["record_key"]));
    if let Some(fields) = record["matched_fields"].as_array().filter(|f| !f.is_empty()) {
        let fields: Vec<String> = fields.iter().map(text).collect();
        println!("  matched in: {}", fields.join(", "));
    }
    let mut table = Table::new();
    table.load_preset(UTF8_FULL_CONDENSED);
    table.set_header([
        "version",
        "received",
        "source / message",
        "operation",
        "destination",
        "status",
        "attempts (last answer)",
    ]);
    let empty = Vec::new();
    for version in record["versions"].as_array().unwrap_or(&empty) {
        let source =
            format!("{} / {}", text(&version["source_adapter"]), text(&version["message_id"]));
        let copies = version["copies"].as_array().unwrap_or(&empty);
        let base = [
            text(&version["record_version"]),
            text(&version["received_at"]),
            source,
            text(&version["operation"]),
        ];
        if copies.is_empty() {
            let mut row = base.to_vec();
            row.extend(["(not routed)".to_owned(), text(&version["status"]), String::new()]);
            table.add_row(row);
        }
        for copy in copies {
            let attempts = copy["attempts"].as_array().unwrap_or(&empty);
            let last = attempts.last().map_or(String::new(), |a| {
                let answer: String = text(&a["response"]).chars().take(60).collect();
                format!("{} at {} {}", text(&a["outcome"]), text(&a["at"]), answer)
            });
            let mut row = base.to_vec();
            row.extend([
                text(&copy["destination"]),
                text(&copy["status"]),
                format!("{} ({last})", attempts.len()),
            ]);
            table.add_row(row);
        }
    }
    println!("{table}");
    // The latest version's fields, with their Chinese labels.
    if let Some(latest) = record["versions"].as_array().and_then(|v| v.last()) {
        let mut fields = Table::new();
        fields.load_preset(UTF8_FULL_CONDENSED);
        fields.set_header(["字段", "field", "value"]);
        for field in latest["record"]["fields"].as_array().unwrap_or(&empty) {
            fields.add_row([text(&field["label"]), text(&field["field"]), text(&field["value"])]);
        }
        println!("{}  {}", text(&latest["record"]["title"]), text(&latest["record_version"]));
        println!("{fields}");
    }
    print_lifecycle(&record["lifecycle"]);
}

/// Publicity decisions and retractions (with each holder's acknowledgement) of a record.
fn print_lifecycle(lifecycle: &Value) {
    let empty = Vec::new();
    for p in lifecycle["publicity"].as_array().unwrap_or(&empty) {
        let window = if p["publish"].as_bool() == Some(true) {
            format!("公示 {} – {}", text(&p["min_end"]), text(&p["max_end"]))
        } else {
            "不予公示".to_owned()
        };
        println!(
            "publicity {}: {} {} ({})",
            text(&p["record_version"]),
            text(&p["tier"]),
            window,
            text(&p["rule_version"])
        );
    }
    let deadlines = lifecycle["deadlines"].as_array().unwrap_or(&empty);
    if !deadlines.is_empty() {
        let mut table = Table::new();
        table.load_preset(UTF8_FULL_CONDENSED);
        table.set_header(["version", "destination", "deadline", "due", "status", "delivered"]);
        for d in deadlines {
            table.add_row([
                text(&d["record_version"]),
                text(&d["destination"]),
                text(&d["rule"]),
                text(&d["due"]),
                text(&d["status"]),
                text(&d["delivered_on"]),
            ]);
        }
        println!("deadlines:\n{table}");
    }
    for r in lifecycle["retractions"].as_array().unwrap_or(&empty) {
        println!(
            "retraction {} ({}), due {}:",
            text(&r["retract_version"]),
            text(&r["cause"]["cause"]),
            text(&r["due"])
        );
        let mut table = Table::new();
        table.load_preset(UTF8_FULL_CONDENSED);
        table.set_header(["holder", "acknowledgement", "confirmed at"]);
        for h in r["holders"].as_array().unwrap_or(&empty) {
            table.add_row([text(&h["destination"]), text(&h["status"]), text(&h["confirmed_at"])]);
        }
        println!("{table}");
    }
}

pub(super) fn dlq(cli: &Cli, command: &DlqCommand) -> ExitCode {
    let secrets = matches!(command, DlqCommand::Replay { .. } | DlqCommand::Reingest { .. });
    let (config, rt, store) = match open(cli, secrets) {
        Ok(t) => t,
        Err(code) => return code,
    };
    match command {
        DlqCommand::List(args) => {
            let filter = match args.filter() {
                Ok(f) => f,
                Err(message) => {
                    eprintln!("dlq list: {message}");
                    return ExitCode::from(2);
                }
            };
            let letters = match rt.block_on(store.dead_letters(&filter)) {
                Ok(l) => l,
                Err(error) => {
                    eprintln!("dlq list: {error}");
                    return ExitCode::from(1);
                }
            };
            if cli.output == OutputFormat::Json {
                print_json(&letters);
            } else {
                let mut table = Table::new();
                table.load_preset(UTF8_FULL_CONDENSED);
                table.set_header([
                    "id",
                    "dead at",
                    "destination",
                    "record",
                    "reason",
                    "attempts",
                    "source",
                    "replays",
                ]);
                for l in &letters {
                    table.add_row([
                        l.dead_id.clone(),
                        l.dead_at.clone(),
                        l.destination.clone(),
                        format!("{} @ {}", l.record_key, l.record_version),
                        format!("{}: {}", l.reason_class, l.reason),
                        l.attempts.to_string(),
                        format!("{} / {}", l.source_adapter, l.source_message_id),
                        l.replay_count.to_string(),
                    ]);
                }
                println!("{table}");
                println!("{} dead letters", letters.len());
            }
            ExitCode::SUCCESS
        }
        DlqCommand::Purge { filter, dry_run, actor } => {
            let filter = match filter.filter() {
                Ok(f) => f,
                Err(message) => {
                    eprintln!("dlq purge: {message}");
                    return ExitCode::from(2);
                }
            };
            let actor = actor_name(actor.as_deref());
            match rt.block_on(store.purge_dead_letters(&filter, *dry_run, &actor)) {
                Ok(report) => {
                    if cli.output == OutputFormat::Json {
                        print_json(&report);
                    } else {
                        for id in &report.dead_ids {
                            println!("{id}");
                        }
                        println!(
                            "{} matched, {} purged{}{}",
                            report.matched,
                            report.purged,
                            report.audit_seq.map(|s| format!(", audit #{s}")).unwrap_or_default(),
                            if report.dry_run { " (dry run)" } else { "" }
                        );
                    }
                    ExitCode::SUCCESS
                }
                Err(error) => {
                    eprintln!("dlq purge: {error}");
                    ExitCode::from(1)
                }
            }
        }
        DlqCommand::Show { id, reveal } => {
            match rt.block_on(ops::dead_letter_view(&store, &config.catalog, id, *reveal)) {
                Ok(Some(view)) => {
                    print_json(&view);
                    ExitCode::SUCCESS
                }
                Ok(None) => {
                    eprintln!("no dead letter {id}");
                    ExitCode::from(1)
                }
                Err(error) => {
                    eprintln!("dlq show: {error}");
                    ExitCode::from(1)
                }
            }
        }
        DlqCommand::Replay { filter, dry_run, rate, actor } => {
            let filter = match filter.filter() {
                Ok(f) => f,
                Err(message) => {
                    eprintln!("dlq replay: {message}");
                    return ExitCode::from(2);
                }
            };
            let options = ReplayOptions {
                dry_run: *dry_run,
                rate: *rate,
                actor: actor_name(actor.as_deref()),
            };
            let result = rt.block_on(async {
                let connection = if *dry_run {
                    None
                } else {
                    Some(crate::broker::connect(&config, "credgate-cli-replay").await?)
                };
                let channel = match &connection {
                    Some(c) => Some(crate::broker::confirm_channel(c).await?),
                    None => None,
                };
                let report =
                    ops::replay(&store, channel.as_ref(), &filter, &options, |done, total| {
                        eprint!("\rreplayed {done}/{total}");
                        if done == total {
                            eprintln!();
                        }
                    })
                    .await;
                if let Some(c) = connection {
                    let _ = c.close(200, "done".into()).await;
                }
                report.map_err(anyhow::Error::from)
            });
            match result {
                Ok(report) => {
                    if cli.output == OutputFormat::Json {
                        print_json(&report);
                    } else {
                        let mut table = Table::new();
                        table.load_preset(UTF8_FULL_CONDENSED);
                        table.set_header(["id", "destination", "record", "outcome", "replay"]);
                        for i in &report.items {
                            table.add_row([
                                i.dead_id.clone(),
                                i.destination.clone(),
                                format!("{} @ {}", i.record_key, i.record_version),
                                i.outcome.clone(),
                                i.replay_id.clone(),
                            ]);
                        }
                        println!("{table}");
                        println!(
                            "{} matched, {} replayed, {} failed{}",
                            report.matched,
                            report.replayed,
                            report.failed,
                            if report.dry_run { " (dry run)" } else { "" }
                        );
                    }
                    if report.failed > 0 { ExitCode::from(1) } else { ExitCode::SUCCESS }
                }
                Err(error) => {
                    eprintln!("dlq replay: {error:#}");
                    ExitCode::from(1)
                }
            }
        }
        DlqCommand::Reingest { adapter, since, dry_run, limit, actor } => {
            let since = if since.is_empty() {
                String::new()
            } else {
                match parse_instant(since) {
                    Ok(s) => s,
                    Err(message) => {
                        eprintln!("dlq reingest: {message}");
                        return ExitCode::from(2);
                    }
                }
            };
            let actor = actor_name(actor.as_deref());
            let result = rt.block_on(ops::reingest(
                &store, &config, adapter, &since, *limit, *dry_run, &actor,
            ));
            match result {
                Ok(report) => {
                    print_json(&report);
                    ExitCode::SUCCESS
                }
                Err(error) => {
                    eprintln!("dlq reingest: {error:#}");
                    ExitCode::from(1)
                }
            }
        }
    }
}

pub(super) fn destinations(cli: &Cli, command: &DestinationsCommand) -> ExitCode {
    let (config, rt, store) = match open(cli, false) {
        Ok(t) => t,
        Err(code) => return code,
    };
    let (id, paused, reason, actor) = match command {
        DestinationsCommand::List => {
            let list = match rt.block_on(ops::destination_list(&store, &config, None)) {
                Ok(l) => l,
                Err(error) => {
                    eprintln!("destinations: {error}");
                    return ExitCode::from(1);
                }
            };
            if cli.output == OutputFormat::Json {
                print_json(&list);
            } else {
                let mut table = Table::new();
                table.load_preset(UTF8_FULL_CONDENSED);
                table.set_header(["destination", "name", "state", "reason", "changed by", "at"]);
                for d in &list {
                    let state = if d["paused"] == true { "paused" } else { "delivering" };
                    table.add_row([
                        text(&d["destination"]),
                        text(&d["name"]),
                        state.to_owned(),
                        text(&d["reason"]),
                        text(&d["changed_by"]),
                        text(&d["changed_at"]),
                    ]);
                }
                println!("{table}");
            }
            return ExitCode::SUCCESS;
        }
        DestinationsCommand::Pause { id, reason, actor } => (id, true, reason.as_str(), actor),
        DestinationsCommand::Resume { id, actor } => (id, false, "", actor),
    };
    if config.adapters.get(id).is_none_or(|a| a.destination.is_none()) {
        eprintln!("unknown destination `{id}`");
        return ExitCode::from(2);
    }
    match rt.block_on(store.set_destination_paused(
        id,
        paused,
        reason,
        &actor_name(actor.as_deref()),
    )) {
        Ok(entry) => {
            println!(
                "{id} {} (audit entry {})",
                if paused { "paused" } else { "resumed" },
                entry.seq
            );
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("destinations: {error}");
            ExitCode::from(1)
        }
    }
}

pub(super) fn audit(cli: &Cli, command: &AuditCommand) -> ExitCode {
    let (_config, rt, store) = match open(cli, false) {
        Ok(t) => t,
        Err(code) => return code,
    };
    match command {
        AuditCommand::Verify => match rt.block_on(store.verify_audit()) {
            Ok(verdict) => {
                if cli.output == OutputFormat::Json {
                    print_json(&verdict);
                }
                match &verdict.first_broken {
                    None => {
                        if cli.output == OutputFormat::Table {
                            println!("audit log intact: {} entries", verdict.entries);
                        }
                        ExitCode::SUCCESS
                    }
                    Some(broken) => {
                        eprintln!("audit log broken at entry {}: {}", broken.seq, broken.problem);
                        ExitCode::from(1)
                    }
                }
            }
            Err(error) => {
                eprintln!("audit verify: {error}");
                ExitCode::from(1)
            }
        },
        AuditCommand::List { from, limit } => match rt.block_on(store.audit_entries(*from, *limit))
        {
            Ok(entries) => {
                if cli.output == OutputFormat::Json {
                    print_json(&entries);
                } else {
                    let mut table = Table::new();
                    table.load_preset(UTF8_FULL_CONDENSED);
                    table.set_header(["seq", "at", "actor", "action", "target", "details"]);
                    for e in &entries {
                        table.add_row([
                            e.seq.to_string(),
                            e.at.clone(),
                            e.actor.clone(),
                            e.action.clone(),
                            e.target.clone(),
                            e.details.chars().take(120).collect(),
                        ]);
                    }
                    println!("{table}");
                }
                ExitCode::SUCCESS
            }
            Err(error) => {
                eprintln!("audit list: {error}");
                ExitCode::from(1)
            }
        },
    }
}

/// `credgate scorecard`: the compliance scorecard from the store.
pub(super) fn scorecard(cli: &Cli, from: Option<&str>, to: Option<&str>, csv: bool) -> ExitCode {
    let now = jiff::Timestamp::now();
    let Ok((from, to)) = crate::runtime::lifecycle_api::scorecard_days(from, to, now) else {
        eprintln!("scorecard: --from / --to must be dates (YYYY-MM-DD)");
        return ExitCode::from(2);
    };
    let (config, rt, store) = match open(cli, false) {
        Ok(t) => t,
        Err(code) => return code,
    };
    let rows =
        match rt.block_on(crate::runtime::scorecard::scorecard(&config, &store, from, to, now)) {
            Ok(rows) => rows,
            Err(error) => {
                eprintln!("scorecard: {error}");
                return ExitCode::from(1);
            }
        };
    if csv {
        println!("{}", crate::runtime::scorecard::ScoreRow::CSV_HEADER);
        for row in &rows {
            println!("{}", row.csv());
        }
    } else if cli.output == OutputFormat::Json {
        print_json(
            &serde_json::json!({ "from": from.to_string(), "to": to.to_string(), "rows": rows }),
        );
    } else {
        let mut table = Table::new();
        table.load_preset(UTF8_FULL_CONDENSED);
        table.set_header([
            "day",
            "source org",
            "item",
            "received",
            "accepted",
            "warnings",
            "rejected",
            "rejected docs",
            "rejected by rule",
            "met",
            "breached",
            "open",
            "at risk",
        ]);
        for r in &rows {
            table.add_row([
                r.day.clone(),
                r.source_org.clone(),
                r.catalog_item.clone(),
                r.received.to_string(),
                r.accepted.to_string(),
                r.accepted_with_warnings.to_string(),
                r.rejected_records.to_string(),
                r.rejected_documents.to_string(),
                r.rejected_by_reason
                    .iter()
                    .map(|(rule, n)| format!("{rule} {n}"))
                    .collect::<Vec<_>>()
                    .join("; "),
                r.deadlines_met.to_string(),
                r.deadlines_breached.to_string(),
                r.deadlines_open.to_string(),
                r.deadlines_at_risk.to_string(),
            ]);
        }
        println!("{table}");
    }
    ExitCode::SUCCESS
}
