//! `credgate import`: a file of records (CSV, xlsx, JSON, XML) checked offline row by row and
//! published into the gateway the way a platform would publish it.
//!
//! The file is cut into inbound documents the gateway ingests unchanged:
//!
//! * **CSV and xlsx**: one document per row, the header row plus that row as UTF-8 CSV
//!   (`text/csv; charset=utf-8`), for a CSV document type of the adapter. An xlsx's first
//!   worksheet is read into the same rows ([`xlsx`]), so the adapter's CSV mapping applies to
//!   spreadsheets without an adapter change. Rows whose cells are all empty are skipped.
//! * **JSON**: one document per record (a top-level array, an object or JSON lines, as the
//!   JSON decoder reads them), each re-serialised as one JSON object.
//! * **XML**: the whole file is one document: records cannot be cut out of an arbitrary
//!   XML layout faithfully, so it is published only when every record in it is valid.
//!
//! Every document goes through [`pipeline::process`] offline, with the message id, timestamp
//! and content type it will be published with, so the report says what the gateway will
//! decide. Row numbers are the ones a spreadsheet shows (the header is row 1; with blank
//! lines and multi-line cells accounted for in CSV).
//!
//! Publishing: valid documents only (rejected rows are reported, not published: the report
//! is their receipt, and nothing known to be bad lands in `credgate.rejected.<adapter>` or
//! the store's rejected originals), to `credgate.in` with routing key `<adapter>.<doc_type>`,
//! persistent, `mandatory`, in batches of `batch` messages with one wait for the publisher
//! confirms per batch. A message id is derived from the adapter, document type and the
//! document's bytes, so importing the same file again (or after fixing some rows) is
//! answered `duplicate` for what was already ingested; a row identical to an earlier row of
//! the same file is published once.

pub mod xlsx;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::broker::{self, Outgoing};
use crate::config::CompiledConfig;
use crate::decode::{self, Codec};
use crate::pipeline::{self, Inbound, Receipt, ReceiptStatus, RecordStatus};
use crate::record::{Severity, Violation};

/// Size of the file, whatever its format (an xlsx's uncompressed size has its own cap).
pub const MAX_FILE_BYTES: u64 = 64 * 1024 * 1024;
/// How long connecting to the broker may take.
const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);
/// Messages published per wait for confirms.
pub const DEFAULT_BATCH: usize = 200;

/// The format of the file, from its extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FileFormat {
    Csv,
    Xlsx,
    Json,
    Xml,
}

impl FileFormat {
    /// `None` for an extension import does not read.
    pub fn from_path(path: &Path) -> Option<FileFormat> {
        let ext = path.extension()?.to_str()?.to_ascii_lowercase();
        match ext.as_str() {
            "csv" => Some(FileFormat::Csv),
            "xlsx" => Some(FileFormat::Xlsx),
            "json" | "jsonl" | "ndjson" => Some(FileFormat::Json),
            "xml" => Some(FileFormat::Xml),
            _ => None,
        }
    }

    /// The codec of the document types that can take this format.
    pub fn codec(self) -> Codec {
        match self {
            FileFormat::Csv | FileFormat::Xlsx => Codec::Csv,
            FileFormat::Json => Codec::Json,
            FileFormat::Xml => Codec::Xml,
        }
    }
}

/// Why an import stopped; each maps to an exit code of contract §7.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImportError {
    /// Exit 2: unknown adapter or document type, unsupported extension, unreadable or
    /// oversized file.
    #[error("{0}")]
    Usage(String),
    /// Exit 1: the broker is unreachable, refuses or does not confirm.
    #[error("{0}")]
    Runtime(String),
}

impl ImportError {
    pub fn exit_code(&self) -> u8 {
        match self {
            ImportError::Usage(_) => 2,
            ImportError::Runtime(_) => 1,
        }
    }
}

/// What import was asked to read.
#[derive(Debug, Clone)]
pub struct ImportRequest<'a> {
    pub adapter: &'a str,
    /// Required only when the adapter has several document types of the file's codec.
    pub doc_type: Option<&'a str>,
    pub file: &'a Path,
}

/// The outcome of one row (CSV, xlsx), record (JSON, XML) or of the whole file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RowReport {
    /// The spreadsheet row (CSV, xlsx) or the 1-based record number (JSON, XML); 0 for the
    /// whole file.
    pub row: usize,
    /// `row 7`, `record 3` or `file`.
    pub location: String,
    /// The record key, with personal identifiers masked.
    pub record_key: Option<String>,
    pub outcome: RecordStatus,
    /// Field-level violations, values of personal identifiers masked.
    pub violations: Vec<Violation>,
    /// The destinations the gateway will send the record to (by `routes.toml` and the
    /// publicity decision).
    pub routed_to: Vec<String>,
    /// The inbound message id the row is (or would be) published under.
    pub message_id: Option<String>,
    /// Confirmed by the broker in this run.
    pub published: bool,
    /// The status of the gateway's receipt (`accepted`, `accepted_with_warnings`, `rejected`,
    /// `duplicate`), when the import waited for receipts (`--wait`) and one came.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub receipt: Option<ReceiptStatus>,
}

/// Counts for the summary line.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    pub rows: usize,
    pub accepted: usize,
    pub accepted_with_warnings: usize,
    pub rejected: usize,
    /// Rows whose cells were all empty.
    pub skipped_empty: usize,
    /// Messages to publish (rows identical to an earlier row are published once).
    pub to_publish: usize,
    pub published: usize,
    /// With `--wait`: receipts the gateway sent for this run's messages, and those that
    /// did not come in time.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub receipts: Option<ReceiptCounts>,
}

/// The gateway's receipts for the published messages, by status.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ReceiptCounts {
    pub accepted: usize,
    pub accepted_with_warnings: usize,
    pub rejected: usize,
    pub duplicate: usize,
    pub missing: usize,
}

/// One inbound document to publish.
#[derive(Debug, Clone)]
struct Unit {
    message_id: String,
    correlation_id: String,
    content_type: &'static str,
    body: Vec<u8>,
    /// Indices into [`ImportReport::rows`] of the rows it carries.
    rows: Vec<usize>,
}

/// The report of an import, and the documents it publishes.
#[derive(Debug, Clone, Serialize)]
pub struct ImportReport {
    pub file: PathBuf,
    pub adapter: String,
    pub doc_type: String,
    pub format: FileFormat,
    /// `credgate.in` routing key.
    pub routing_key: String,
    pub dry_run: bool,
    pub summary: Summary,
    pub rows: Vec<RowReport>,
    #[serde(skip)]
    units: Vec<Unit>,
    #[serde(skip)]
    timestamp: jiff::Timestamp,
}

impl ImportReport {
    /// Whether any row (or the whole file) was rejected, offline or by the gateway: exit 3.
    pub fn any_rejected(&self) -> bool {
        self.summary.rejected > 0 || self.summary.receipts.as_ref().is_some_and(|r| r.rejected > 0)
    }

    /// Published messages without a receipt after `--wait`.
    pub fn missing_receipts(&self) -> usize {
        self.summary.receipts.as_ref().map_or(0, |r| r.missing)
    }

    fn recount(&mut self) {
        let mut s = Summary {
            skipped_empty: self.summary.skipped_empty,
            to_publish: self.units.len(),
            receipts: self.summary.receipts.clone(),
            ..Summary::default()
        };
        for row in &self.rows {
            s.rows += usize::from(row.row > 0);
            match row.outcome {
                RecordStatus::Accepted => s.accepted += 1,
                RecordStatus::AcceptedWithWarnings => s.accepted_with_warnings += 1,
                RecordStatus::Rejected => s.rejected += 1,
            }
        }
        s.published = self
            .units
            .iter()
            .filter(|u| u.rows.first().is_some_and(|&i| self.rows[i].published))
            .count();
        self.summary = s;
    }
}

/// Reads, splits and checks the file offline: the report with every row's outcome, and the
/// documents [`publish`] would send. Publishes nothing. `progress(done, total)` is called
/// before each row is checked.
///
/// # Errors
///
/// [`ImportError::Usage`] for an unknown adapter or document type, an unsupported extension,
/// an unreadable or oversized file. Invalid data is no error: it is in the report.
pub fn prepare(
    config: &CompiledConfig,
    request: &ImportRequest<'_>,
    progress: &dyn Fn(usize, usize),
) -> Result<ImportReport, ImportError> {
    let usage = ImportError::Usage;
    let file = request.file;
    let format = FileFormat::from_path(file).ok_or_else(|| {
        usage(format!(
            "{}: unsupported file type (import reads .csv, .xlsx, .json, .jsonl and .xml)",
            file.display()
        ))
    })?;
    let adapter = config.adapters.get(request.adapter).ok_or_else(|| {
        usage(format!(
            "unknown adapter {:?} (configured: {})",
            request.adapter,
            config.adapters.keys().cloned().collect::<Vec<_>>().join(", ")
        ))
    })?;
    let size = std::fs::metadata(file)
        .map_err(|e| usage(format!("cannot read {}: {e}", file.display())))?
        .len();
    if size > MAX_FILE_BYTES {
        return Err(usage(format!(
            "{} is {size} bytes, over the import limit of {MAX_FILE_BYTES}; split the file",
            file.display()
        )));
    }
    let bytes =
        std::fs::read(file).map_err(|e| usage(format!("cannot read {}: {e}", file.display())))?;

    let codec = format.codec();
    let doc_type = match request.doc_type {
        Some(doc_type) => {
            let doc = adapter.inbound.get(doc_type).ok_or_else(|| {
                usage(format!(
                    "adapter {} has no inbound document type {doc_type:?} (it has: {})",
                    adapter.id,
                    adapter.inbound.keys().cloned().collect::<Vec<_>>().join(", ")
                ))
            })?;
            if doc.decode.codec != codec {
                return Err(usage(format!(
                    "document type {doc_type} of adapter {} is {}, not {codec}: a {} file \
                     cannot be imported as it",
                    adapter.id,
                    doc.decode.codec,
                    ext_name(format)
                )));
            }
            doc_type.to_owned()
        }
        None => {
            let candidates: Vec<&String> = adapter
                .inbound
                .iter()
                .filter(|(_, doc)| doc.decode.codec == codec)
                .map(|(name, _)| name)
                .collect();
            match candidates.as_slice() {
                [one] => (*one).clone(),
                [] => {
                    return Err(usage(format!(
                        "adapter {} has no {codec} document type, so a {} file cannot be \
                         imported for it",
                        adapter.id,
                        ext_name(format)
                    )));
                }
                several => match by_header(adapter, several, format, &bytes) {
                    Some(doc_type) => doc_type,
                    None => {
                        return Err(usage(format!(
                            "adapter {} has several {codec} document types and the file's \
                             header row does not tell which; choose one with --doc-type ({})",
                            adapter.id,
                            several.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
                        )));
                    }
                },
            }
        }
    };
    let doc = &adapter.inbound[&doc_type];

    let mut report = ImportReport {
        file: file.to_owned(),
        adapter: adapter.id.clone(),
        doc_type: doc_type.clone(),
        format,
        routing_key: format!("{}.{doc_type}", adapter.id),
        dry_run: true,
        summary: Summary::default(),
        rows: Vec::new(),
        units: Vec::new(),
        // Second resolution, as the AMQP `timestamp` property carries it.
        timestamp: jiff::Timestamp::from_second(jiff::Timestamp::now().as_second())
            .unwrap_or_else(|_| jiff::Timestamp::now()),
    };
    let max_records = doc.decode.limits.max_records;
    let too_many = |n: usize| {
        usage(format!(
            "{} has {n} or more records, over the limit of {max_records} for {}/{doc_type}; \
             split the file",
            file.display(),
            adapter.id
        ))
    };
    let file_name = file.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();

    match format {
        FileFormat::Csv | FileFormat::Xlsx => {
            let table = match format {
                FileFormat::Csv => match csv_rows(&bytes, &doc.decode) {
                    Ok(table) => table,
                    Err(violation) => {
                        report.file_rejected(*violation);
                        return Ok(report);
                    }
                },
                _ => {
                    let limits = xlsx::XlsxLimits {
                        max_rows: max_records,
                        max_columns: doc.decode.limits.max_fields,
                        ..xlsx::XlsxLimits::default()
                    };
                    let sheet = xlsx::read_first_sheet(&bytes, &limits).map_err(|e| match e {
                        xlsx::XlsxError::TooManyRows { .. } => usage(format!(
                            "{}: more than {max_records} data rows, over the limit for \
                             {}/{doc_type}; split the file",
                            file.display(),
                            adapter.id
                        )),
                        other => usage(format!("{}: {other}", file.display())),
                    })?;
                    sheet_table(sheet)
                }
            };
            if table.rows.len() > max_records {
                return Err(too_many(table.rows.len()));
            }
            report.summary.skipped_empty = table.skipped_empty;
            let header_doc = csv_document(&table.header, None, doc.decode.csv.delimiter);
            // A bad header (duplicate or empty column names) rejects the file once, not each row.
            let processed = run(config, &report, &doc_type, &header_doc, CSV_UTF8, "header");
            if let Some(v) = processed.document_violations.into_iter().next() {
                report.file_rejected(v);
                return Ok(report);
            }
            let total = table.rows.len();
            for (done, row) in table.rows.into_iter().enumerate() {
                progress(done, total);
                let body = csv_document(&table.header, Some(&row.cells), doc.decode.csv.delimiter);
                let location = format!("row {}", row.row);
                let pre = (!row.errors.is_empty()).then(|| Violation {
                    rule: "DECODE".into(),
                    path: location.clone(),
                    field: String::new(),
                    code: None,
                    message: format!("单元格的值是错误值，不能导入：{}", row.errors.join("、")),
                    severity: Severity::Error,
                });
                report.add_unit(
                    config,
                    doc,
                    &doc_type,
                    body,
                    CSV_UTF8,
                    row.row as usize,
                    &location,
                    pre,
                );
            }
        }
        FileFormat::Json => {
            // The file is cut into one document per record, so the gateway's size limit
            // applies to each record's document, not to the file.
            let mut options = doc.decode.clone();
            options.limits.max_bytes = options.limits.max_bytes.max(MAX_FILE_BYTES as usize);
            let decoded = match decode::decode(&bytes, &options) {
                Ok(decoded) => decoded,
                Err(decode::DecodeError::TooManyRecords { .. }) => {
                    return Err(too_many(max_records + 1));
                }
                Err(error) => {
                    report.file_rejected(decode_violation(&error));
                    return Ok(report);
                }
            };
            if decoded.len() > max_records {
                return Err(too_many(decoded.len()));
            }
            let total = decoded.len();
            for (index, record) in decoded.into_iter().enumerate() {
                progress(index, total);
                let location = format!("record {}", index + 1);
                match record {
                    Ok(document) => {
                        let body = serde_json::to_vec(&document).unwrap_or_default();
                        report.add_unit(
                            config,
                            doc,
                            &doc_type,
                            body,
                            JSON_UTF8,
                            index + 1,
                            &location,
                            None,
                        );
                    }
                    Err(error) => report.rows.push(RowReport {
                        row: index + 1,
                        location,
                        record_key: None,
                        outcome: RecordStatus::Rejected,
                        violations: vec![Violation {
                            rule: "DECODE".into(),
                            path: error.location.clone(),
                            field: String::new(),
                            code: None,
                            message: error.message,
                            severity: Severity::Error,
                        }],
                        routed_to: Vec::new(),
                        message_id: None,
                        published: false,
                        receipt: None,
                    }),
                }
            }
        }
        FileFormat::Xml => {
            // Published whole: it must fit the gateway's limit for one document.
            let limit = doc.decode.limits.max_bytes;
            if bytes.len() > limit {
                return Err(usage(format!(
                    "{} is {} bytes, over the limit of {limit} for one {}/{doc_type} document \
                     (an XML file is published whole); split the file",
                    file.display(),
                    bytes.len(),
                    adapter.id
                )));
            }
            let message_id = message_id(&adapter.id, &doc_type, &bytes);
            let processed = run(config, &report, &doc_type, &bytes, XML, &message_id);
            if let Some(v) = processed.document_violations.into_iter().next() {
                report.file_rejected(v);
                return Ok(report);
            }
            let valid = processed.records.iter().all(|r| r.status != RecordStatus::Rejected);
            let mut indices = Vec::new();
            for record in processed.records {
                indices.push(report.rows.len());
                report.rows.push(RowReport {
                    row: record.index + 1,
                    location: format!("record {}", record.index + 1),
                    record_key: record
                        .record
                        .as_ref()
                        .map(|r| mask_key(&doc.mapper.item, r.record_key())),
                    outcome: record.status,
                    routed_to: destinations(&record),
                    violations: record.violations,
                    message_id: valid.then(|| message_id.clone()),
                    published: false,
                    receipt: None,
                });
            }
            if valid && !indices.is_empty() {
                report.units.push(Unit {
                    message_id,
                    correlation_id: format!("import:{file_name}"),
                    content_type: XML,
                    body: bytes,
                    rows: indices,
                });
            }
        }
    }
    if report.rows.is_empty() {
        report.file_rejected(Violation {
            rule: "EMPTY".into(),
            path: String::new(),
            field: String::new(),
            code: None,
            message: "文件中没有记录".into(),
            severity: Severity::Error,
        });
    }
    for unit in &mut report.units {
        if format != FileFormat::Xml {
            let row = unit.rows.first().map_or(0, |&i| report.rows[i].row);
            unit.correlation_id = format!("import:{file_name}:{row}");
        }
    }
    flag_repeats(&mut report);
    report.recount();
    Ok(report)
}

const CSV_UTF8: &str = "text/csv; charset=utf-8";
const JSON_UTF8: &str = "application/json; charset=utf-8";
const XML: &str = "application/xml";

fn ext_name(format: FileFormat) -> &'static str {
    match format {
        FileFormat::Csv => ".csv",
        FileFormat::Xlsx => ".xlsx",
        FileFormat::Json => ".json",
        FileFormat::Xml => ".xml",
    }
}

/// For a table file and several CSV document types: the one whose mapping consumes every
/// column of the file's header row, when exactly one does.
fn by_header(
    adapter: &crate::config::Adapter,
    candidates: &[&String],
    format: FileFormat,
    bytes: &[u8],
) -> Option<String> {
    let header_of = |doc: &crate::config::compile::InboundDoc| -> Option<Vec<String>> {
        match format {
            FileFormat::Csv => {
                let text = decode::to_text(bytes, doc.decode.charset).ok()?;
                let mut reader = csv::ReaderBuilder::new()
                    .has_headers(false)
                    .flexible(true)
                    .delimiter(doc.decode.csv.delimiter)
                    .from_reader(text.as_bytes());
                let mut record = csv::StringRecord::new();
                reader.read_record(&mut record).ok()?;
                Some(record.iter().map(|c| c.trim().to_owned()).collect())
            }
            FileFormat::Xlsx => {
                let sheet = xlsx::read_first_sheet(bytes, &xlsx::XlsxLimits::default()).ok()?;
                Some(sheet.header.cells.iter().map(|c| c.trim().to_owned()).collect())
            }
            FileFormat::Json | FileFormat::Xml => None,
        }
    };
    let mut fitting = candidates.iter().filter(|name| {
        let doc = &adapter.inbound[name.as_str()];
        header_of(doc).is_some_and(|header| {
            !header.is_empty()
                && header.iter().all(|column| column.is_empty() || doc.mapper.consumes(column))
        })
    });
    match (fitting.next(), fitting.next()) {
        (Some(one), None) => Some((*one).clone()),
        _ => None,
    }
}

/// `import-` and 32 hex digits of SHA-256 over adapter, document type and bytes: the same
/// row imported twice is the same message, which the gateway answers `duplicate`.
fn message_id(adapter: &str, doc_type: &str, body: &[u8]) -> String {
    let mut hasher = Sha256::new();
    hasher.update(adapter.as_bytes());
    hasher.update([0]);
    hasher.update(doc_type.as_bytes());
    hasher.update([0]);
    hasher.update(body);
    format!("import-{}", hex::encode(&hasher.finalize()[..16]))
}

/// The pipeline on one document exactly as the gateway will see it, with the pure part of
/// its lifecycle step (publicity: 轻微 failed information is not sent to publishing
/// destinations) over an empty store: what the store knows (earlier versions, holders to
/// retract from, the dishonest list for bid warnings) only the gateway can add.
fn run(
    config: &CompiledConfig,
    report: &ImportReport,
    doc_type: &str,
    body: &[u8],
    content_type: &str,
    message_id: &str,
) -> pipeline::Processed {
    let mut processed = pipeline::process(
        config,
        &Inbound {
            adapter: &report.adapter,
            doc_type,
            body,
            content_type: Some(content_type),
            message_id,
            correlation_id: None,
            received_at: jiff::Timestamp::now(),
            source_timestamp: Some(report.timestamp),
        },
    );
    let known = crate::lifecycle::hook::Known::default();
    let _ = crate::lifecycle::hook::after_accept(config, &mut [&mut processed], &known);
    processed
}

impl ImportReport {
    /// The whole file is rejected: one row 0 with the reason, nothing to publish.
    fn file_rejected(&mut self, violation: Violation) {
        self.rows = vec![RowReport {
            row: 0,
            location: "file".into(),
            record_key: None,
            outcome: RecordStatus::Rejected,
            violations: vec![violation],
            routed_to: Vec::new(),
            message_id: None,
            published: false,
            receipt: None,
        }];
        self.units.clear();
        self.recount();
    }

    /// Checks one single-record document and queues it for publishing when valid.
    #[allow(clippy::too_many_arguments)]
    fn add_unit(
        &mut self,
        config: &CompiledConfig,
        doc: &crate::config::compile::InboundDoc,
        doc_type: &str,
        body: Vec<u8>,
        content_type: &'static str,
        row: usize,
        location: &str,
        pre: Option<Violation>,
    ) {
        let message_id = message_id(&self.adapter, doc_type, &body);
        let (outcome, record_key, violations, routed_to) = match pre {
            Some(v) => (RecordStatus::Rejected, None, vec![v], Vec::new()),
            None => {
                let processed = run(config, self, doc_type, &body, content_type, &message_id);
                match processed.records.into_iter().next() {
                    Some(record) => {
                        let routed_to = destinations(&record);
                        (
                            record.status,
                            record
                                .record
                                .as_ref()
                                .map(|r| mask_key(&doc.mapper.item, r.record_key())),
                            record
                                .violations
                                .into_iter()
                                .map(|mut v| {
                                    // The decoder numbers the single row of its document `row 2`.
                                    if v.rule == "DECODE" {
                                        v.path = location.to_owned();
                                    }
                                    v
                                })
                                .collect(),
                            routed_to,
                        )
                    }
                    None => {
                        (RecordStatus::Rejected, None, processed.document_violations, Vec::new())
                    }
                }
            }
        };
        let index = self.rows.len();
        let valid = outcome != RecordStatus::Rejected;
        self.rows.push(RowReport {
            row,
            location: location.to_owned(),
            record_key,
            outcome,
            violations,
            routed_to,
            message_id: valid.then(|| message_id.clone()),
            published: false,
            receipt: None,
        });
        if valid {
            self.units.push(Unit {
                message_id,
                correlation_id: String::new(),
                content_type,
                body,
                rows: vec![index],
            });
        }
    }
}

/// Warns about rows repeated within the file: an identical row is published once; two rows
/// with one record key are two versions of that record.
fn flag_repeats(report: &mut ImportReport) {
    let mut first_by_id: HashMap<String, usize> = HashMap::new();
    let mut duplicate_units = std::collections::HashSet::new();
    for (u, unit) in report.units.iter().enumerate() {
        if report.format == FileFormat::Xml {
            break;
        }
        let Some(&index) = unit.rows.first() else { continue };
        match first_by_id.get(&unit.message_id) {
            Some(&first) => {
                let first_location = report.rows[first].location.clone();
                let row = &mut report.rows[index];
                row.violations.push(warning(
                    "IMPORT-DUPLICATE",
                    format!("与 {first_location} 内容完全相同，只发布一次"),
                ));
                duplicate_units.insert(u);
            }
            None => {
                first_by_id.insert(unit.message_id.clone(), index);
            }
        }
    }
    let mut u = 0;
    report.units.retain(|_| {
        u += 1;
        !duplicate_units.contains(&(u - 1))
    });
    let mut first_by_key: HashMap<String, usize> = HashMap::new();
    for index in 0..report.rows.len() {
        let row = &report.rows[index];
        let (Some(key), true) = (row.record_key.clone(), row.outcome != RecordStatus::Rejected)
        else {
            continue;
        };
        if row.violations.iter().any(|v| v.rule == "IMPORT-DUPLICATE") {
            continue;
        }
        match first_by_key.get(&key) {
            Some(&first) => {
                let first_location = report.rows[first].location.clone();
                report.rows[index].violations.push(warning(
                    "IMPORT-REPEATED-KEY",
                    format!(
                        "与 {first_location} 的记录键相同：同一记录的两个版本都会发布，\
                         以记录版本较新者为准"
                    ),
                ));
            }
            None => {
                first_by_key.insert(key, index);
            }
        }
    }
    for row in &mut report.rows {
        if row.outcome == RecordStatus::Accepted && !row.violations.is_empty() {
            row.outcome = RecordStatus::AcceptedWithWarnings;
        }
    }
}

/// The destinations of a record's copies, sorted.
fn destinations(record: &pipeline::ProcessedRecord) -> Vec<String> {
    let mut out: Vec<String> = record.copies.iter().map(|c| c.destination.clone()).collect();
    out.sort();
    out.dedup();
    out
}

fn warning(rule: &str, message: String) -> Violation {
    Violation {
        rule: rule.to_owned(),
        path: String::new(),
        field: String::new(),
        code: None,
        message,
        severity: Severity::Warning,
    }
}

fn decode_violation(error: &decode::DecodeError) -> Violation {
    Violation {
        rule: "DECODE".into(),
        path: String::new(),
        field: String::new(),
        code: None,
        message: format!("文件无法解析（{}）：{error}", error.code()),
        severity: Severity::Error,
    }
}

/// The record key with the parts that are personal identifiers masked, as in logs.
fn mask_key(item: &crate::catalog::CatalogItem, key: &str) -> String {
    let Some(values) = key.strip_prefix(&format!("{}:", item.item)) else {
        return key.to_owned();
    };
    let parts: Vec<&str> = values.split('|').collect();
    if parts.len() != item.identity.len() {
        return key.to_owned();
    }
    let masked: Vec<String> = parts
        .iter()
        .zip(&item.identity)
        .map(|(value, field)| {
            let pii = item.field(field).and_then(|m| m.pii.as_deref());
            match crate::runtime::ops::mask_value(pii, field, &(*value).into()) {
                serde_json::Value::String(s) => s,
                _ => (*value).to_owned(),
            }
        })
        .collect();
    format!("{}:{}", item.item, masked.join("|"))
}

/// Header and data rows of a table file.
#[derive(Debug)]
struct Table {
    header: Vec<String>,
    rows: Vec<xlsx::SheetRow>,
    skipped_empty: usize,
}

/// The rows of a CSV file in the adapter's charset and delimiter, numbered as a spreadsheet
/// shows them: a blank line is a row, a multi-line cell is one row.
fn csv_rows(bytes: &[u8], options: &decode::DecodeOptions) -> Result<Table, Box<Violation>> {
    let text =
        decode::to_text(bytes, options.charset).map_err(|e| Box::new(decode_violation(&e)))?;
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .delimiter(options.csv.delimiter)
        .from_reader(text.as_bytes());
    let mut header: Option<Vec<String>> = None;
    let mut rows = Vec::new();
    let mut skipped_empty = 0;
    // (sheet row, physical line, newlines inside its cells) of the previous record.
    let mut previous: Option<(usize, u64, u64)> = None;
    let mut record = csv::StringRecord::new();
    loop {
        match reader.read_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {}
            Err(error) => {
                return Err(Box::new(Violation {
                    rule: "DECODE".into(),
                    path: String::new(),
                    field: String::new(),
                    code: None,
                    message: format!("CSV 文件无法解析：{error}"),
                    severity: Severity::Error,
                }));
            }
        }
        // The position is where the read began: blank lines the reader skipped come first.
        let (line, byte) = record.position().map_or((1, 0), |p| (p.line(), p.byte()));
        let skipped = text
            .as_bytes()
            .get(usize::try_from(byte).unwrap_or(usize::MAX)..)
            .unwrap_or_default()
            .iter()
            .take_while(|&&b| b == b'\r' || b == b'\n')
            .filter(|&&b| b == b'\n')
            .count() as u64;
        let line = line + skipped;
        let sheet_row = match previous {
            // Leading blank lines are rows of the sheet too.
            None => line as usize,
            Some((row, prev_line, inner)) => {
                row + (line.saturating_sub(prev_line).saturating_sub(inner)) as usize
            }
        };
        let inner = record.iter().map(|f| f.matches('\n').count() as u64).sum();
        previous = Some((sheet_row, line, inner));
        let cells: Vec<String> = record.iter().map(str::to_owned).collect();
        if header.is_none() {
            header = Some(cells);
            continue;
        }
        if cells.iter().all(|c| c.trim().is_empty()) {
            skipped_empty += 1;
            continue;
        }
        rows.push(xlsx::SheetRow { row: sheet_row as u32, cells, errors: Vec::new() });
    }
    let header = header.ok_or_else(|| Box::new(decode_violation(&decode::DecodeError::Empty)))?;
    Ok(Table { header, rows, skipped_empty })
}

/// A worksheet as a table: the header without trailing empty cells, data rows padded to it.
fn sheet_table(sheet: xlsx::Sheet) -> Table {
    let header = sheet.header.cells;
    let width = header.len();
    let rows = sheet
        .rows
        .into_iter()
        .map(|mut row| {
            if row.cells.len() < width {
                row.cells.resize(width, String::new());
            }
            row
        })
        .collect();
    Table { header, rows, skipped_empty: 0 }
}

/// The header and (optionally) one row as a UTF-8 CSV document.
fn csv_document(header: &[String], row: Option<&[String]>, delimiter: u8) -> Vec<u8> {
    let mut writer =
        csv::WriterBuilder::new().flexible(true).delimiter(delimiter).from_writer(Vec::new());
    // Writing into a Vec cannot fail.
    let _ = writer.write_record(header);
    if let Some(row) = row {
        let _ = writer.write_record(row);
    }
    writer.into_inner().unwrap_or_default()
}

/// Whether the gateway consumes the adapter's documents from `credgate.in` at all: an
/// adapter whose `inbound.transports` lacks `amqp` has no `credgate.in.<adapter>` queue, so
/// there is nothing to publish to (a dry run still works).
///
/// # Errors
///
/// [`ImportError::Usage`] naming the reason; unknown adapters are left to [`prepare`].
pub fn check_publishable(config: &CompiledConfig, adapter: &str) -> Result<(), ImportError> {
    match config.adapters.get(adapter) {
        Some(a) if !a.inbound_transports.iter().any(|t| t == "amqp") => {
            Err(ImportError::Usage(format!(
                "adapter {adapter} does not receive over AMQP (inbound.transports = {:?}); \
                 import publishes to credgate.in, so only --dry-run works for it",
                a.inbound_transports
            )))
        }
        _ => Ok(()),
    }
}

/// The broker URI with the credentials of `[amqp]`. Only the broker password is resolved:
/// the configuration may be loaded without the other secrets (HTTP signing keys, admin
/// tokens), which import never uses.
///
/// # Errors
///
/// [`ImportError::Usage`] when `amqp.password` cannot be resolved (unset variable, unreadable
/// file): call this before [`prepare`] to fail before any work.
pub fn broker_uri(config: &CompiledConfig) -> Result<String, ImportError> {
    let amqp = &config.process.amqp;
    let password = match (&config.amqp_password, &amqp.password) {
        (Some(secret), _) => Some(secret.expose().to_owned()),
        (None, Some(reference)) => Some(
            crate::config::secrets::parse_ref(reference)
                .and_then(|r| crate::config::secrets::resolve(&r, &config.config_dir))
                .map_err(|e| ImportError::Usage(format!("amqp.password: {e}")))?
                .expose()
                .to_owned(),
        ),
        (None, None) => None,
    };
    Ok(broker::amqp_uri(&amqp.url, &amqp.username, password.as_deref(), amqp.heartbeat_secs))
}

/// What [`publish`] reports while it works.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// Messages confirmed by the broker so far.
    Confirmed(usize),
    /// With `--wait`: receipts matched so far.
    Receipts { received: usize, expected: usize },
}

/// Publishes the report's valid documents to `credgate.in` in confirmed batches, marking
/// each row published once its batch was confirmed, then, with `wait`, takes the gateway's
/// receipts; `progress` is told the messages confirmed and receipts matched so far.
///
/// # Errors
///
/// [`ImportError::Runtime`] when the broker cannot be reached or a batch is not confirmed
/// (nacked, unroutable because the gateway's topology is missing, timed out). The rows of
/// the batches confirmed before stay marked; importing again publishes the rest, the
/// confirmed ones being answered `duplicate`.
pub async fn publish(
    config: &CompiledConfig,
    report: &mut ImportReport,
    batch: usize,
    wait: Option<std::time::Duration>,
    progress: &dyn Fn(Progress),
) -> Result<(), ImportError> {
    report.dry_run = false;
    if report.units.is_empty() {
        return Ok(());
    }
    check_publishable(config, &report.adapter)?;
    let uri = broker_uri(config)?;
    let amqp = &config.process.amqp;
    let properties = lapin::ConnectionProperties::default()
        .with_connection_name(lapin::types::LongString::from("credgate-import"));
    let unreachable = |e: String| {
        ImportError::Runtime(format!(
            "cannot connect to RabbitMQ at {}: {e}; nothing was published",
            amqp.url
        ))
    };
    let connection =
        tokio::time::timeout(CONNECT_TIMEOUT, lapin::Connection::connect(&uri, properties))
            .await
            .map_err(|_| unreachable(format!("no answer within {} s", CONNECT_TIMEOUT.as_secs())))?
            .map_err(|e| unreachable(e.to_string()))?;
    // Receipts are listened for on a queue of this run's own (exclusive, gone with the
    // connection), bound before the first publish so none is missed; the platform's own
    // receipts queue is left alone.
    let listener = match wait {
        Some(_) => Some(listen_for_receipts(&connection, &report.adapter).await?),
        None => None,
    };
    let mut result = publish_on(&connection, report, batch.max(1), progress).await;
    if let (Some(wait), Some(listener), Ok(())) = (wait, listener, &result) {
        result = collect_receipts(report, listener, wait, progress).await;
    }
    let _ = connection.close(200, "import done".into()).await;
    report.recount();
    result
}

async fn publish_on(
    connection: &lapin::Connection,
    report: &mut ImportReport,
    batch: usize,
    progress: &dyn Fn(Progress),
) -> Result<(), ImportError> {
    let runtime = |e: broker::BrokerError| ImportError::Runtime(e.to_string());
    check_topology(connection, &report.adapter).await?;
    let channel = broker::confirm_channel(connection).await.map_err(runtime)?;
    let timestamp = report.timestamp.as_second().max(0) as u64;
    let mut done = 0;
    for start in (0..report.units.len()).step_by(batch) {
        let end = (start + batch).min(report.units.len());
        let messages = report.units[start..end]
            .iter()
            .map(|unit| Outgoing {
                exchange: broker::IN_EXCHANGE.to_owned(),
                routing_key: report.routing_key.clone(),
                body: unit.body.clone(),
                properties: broker::properties(&unit.message_id, unit.content_type)
                    .with_timestamp(timestamp)
                    .with_correlation_id(unit.correlation_id.as_str().into())
                    .with_type(report.doc_type.as_str().into()),
                mandatory: true,
            })
            .collect();
        broker::publish_all(&channel, messages).await.map_err(|e| {
            let hint = match e {
                broker::BrokerError::Returned { .. } => {
                    " (no queue is bound for it: start the gateway or run `credgate topology declare`)"
                }
                _ => "",
            };
            ImportError::Runtime(format!(
                "publishing messages {}–{} failed after {done} confirmed messages: {e}{hint}",
                start + 1,
                end
            ))
        })?;
        for unit in &report.units[start..end] {
            for &index in &unit.rows {
                report.rows[index].published = true;
            }
        }
        done = end;
        progress(Progress::Confirmed(done));
    }
    Ok(())
}

/// `credgate.in` and `credgate.in.<adapter>` exist (the gateway declared its topology), checked
/// with passive declares on a throwaway channel (a failed one closes its channel).
async fn check_topology(connection: &lapin::Connection, adapter: &str) -> Result<(), ImportError> {
    use lapin::options::{ExchangeDeclareOptions, QueueDeclareOptions};
    use lapin::types::FieldTable;
    let queue = broker::inbound_queue(adapter);
    let missing = |what: String| {
        ImportError::Runtime(format!(
            "{what} does not exist on the broker: start the gateway (or run `credgate topology \
             declare`) against this broker and vhost first; nothing was published"
        ))
    };
    let channel = connection
        .create_channel()
        .await
        .map_err(|e| ImportError::Runtime(format!("cannot open a channel: {e}")))?;
    channel
        .exchange_declare(
            broker::IN_EXCHANGE.into(),
            lapin::ExchangeKind::Topic,
            ExchangeDeclareOptions { passive: true, durable: true, ..Default::default() },
            FieldTable::default(),
        )
        .await
        .map_err(|_| missing(format!("the exchange {}", broker::IN_EXCHANGE)))?;
    channel
        .queue_declare(
            queue.as_str().into(),
            QueueDeclareOptions { passive: true, durable: true, ..Default::default() },
            FieldTable::default(),
        )
        .await
        .map_err(|_| missing(format!("the queue {queue}")))?;
    let _ = channel.close(200, "checked".into()).await;
    Ok(())
}

async fn listen_for_receipts(
    connection: &lapin::Connection,
    adapter: &str,
) -> Result<lapin::Consumer, ImportError> {
    use lapin::options::{BasicConsumeOptions, QueueBindOptions, QueueDeclareOptions};
    use lapin::types::FieldTable;
    let runtime = |e: lapin::Error| {
        ImportError::Runtime(format!("cannot listen for receipts on credgate.receipts: {e}"))
    };
    let channel = connection.create_channel().await.map_err(runtime)?;
    let queue = channel
        .queue_declare(
            "".into(),
            QueueDeclareOptions { exclusive: true, auto_delete: true, ..Default::default() },
            FieldTable::default(),
        )
        .await
        .map_err(runtime)?;
    channel
        .queue_bind(
            queue.name().clone(),
            broker::RECEIPTS_EXCHANGE.into(),
            adapter.into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .map_err(runtime)?;
    channel
        .basic_consume(
            queue.name().clone(),
            "credgate-import".into(),
            BasicConsumeOptions { no_ack: true, exclusive: true, ..Default::default() },
            FieldTable::default(),
        )
        .await
        .map_err(runtime)
}

/// Takes receipts until every published message has one or `wait` has passed; fills in each
/// row's `receipt` and the summary's counts. Receipts of other messages of the adapter (the
/// platform's own traffic) are skipped.
async fn collect_receipts(
    report: &mut ImportReport,
    mut consumer: lapin::Consumer,
    wait: std::time::Duration,
    progress: &dyn Fn(Progress),
) -> Result<(), ImportError> {
    use futures_util::StreamExt;
    let mut pending: HashMap<String, usize> = report
        .units
        .iter()
        .enumerate()
        .filter(|(_, u)| u.rows.first().is_some_and(|&i| report.rows[i].published))
        .map(|(n, u)| (u.message_id.clone(), n))
        .collect();
    let mut counts = ReceiptCounts::default();
    let expected = pending.len();
    progress(Progress::Receipts { received: 0, expected });
    let deadline = tokio::time::Instant::now() + wait;
    while !pending.is_empty() {
        let next = match tokio::time::timeout_at(deadline, consumer.next()).await {
            Err(_) | Ok(None) => break,
            Ok(Some(Err(e))) => {
                return Err(ImportError::Runtime(format!("receipts: {e}")));
            }
            Ok(Some(Ok(delivery))) => delivery,
        };
        let Ok(receipt) = serde_json::from_slice::<Receipt>(&next.data) else { continue };
        let Some(unit) = pending.remove(&receipt.message_id) else { continue };
        progress(Progress::Receipts { received: expected - pending.len(), expected });
        match receipt.status {
            ReceiptStatus::Accepted => counts.accepted += 1,
            ReceiptStatus::AcceptedWithWarnings => counts.accepted_with_warnings += 1,
            ReceiptStatus::Rejected => counts.rejected += 1,
            ReceiptStatus::Duplicate => counts.duplicate += 1,
        }
        for (position, &index) in report.units[unit].rows.iter().enumerate() {
            // A document of several records (XML) has one receipt with a status per record.
            let status = match (receipt.status, receipt.records.get(position)) {
                (ReceiptStatus::Duplicate, _) | (_, None) => receipt.status,
                (_, Some(record)) => match record.status {
                    RecordStatus::Accepted => ReceiptStatus::Accepted,
                    RecordStatus::AcceptedWithWarnings => ReceiptStatus::AcceptedWithWarnings,
                    RecordStatus::Rejected => ReceiptStatus::Rejected,
                },
            };
            report.rows[index].receipt = Some(status);
        }
    }
    counts.missing = pending.len();
    report.summary.receipts = Some(counts);
    Ok(())
}

/// The number of documents [`publish`] sends.
impl ImportReport {
    pub fn units_to_publish(&self) -> usize {
        self.units.len()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn formats_by_extension() {
        assert_eq!(FileFormat::from_path(Path::new("a.CSV")), Some(FileFormat::Csv));
        assert_eq!(FileFormat::from_path(Path::new("x/y.xlsx")), Some(FileFormat::Xlsx));
        assert_eq!(FileFormat::from_path(Path::new("r.jsonl")), Some(FileFormat::Json));
        assert_eq!(FileFormat::from_path(Path::new("r.xml")), Some(FileFormat::Xml));
        assert_eq!(FileFormat::from_path(Path::new("r.xls")), None);
        assert_eq!(FileFormat::from_path(Path::new("noext")), None);
    }

    #[test]
    fn csv_rows_are_numbered_as_a_spreadsheet_shows_them() {
        let text = "a,b\n1,2\n\n\"multi\nline\",3\n4,5\n,\n6,7\n";
        let options = decode::DecodeOptions::new(Codec::Csv);
        let table = csv_rows(text.as_bytes(), &options).unwrap();
        assert_eq!(table.header, ["a", "b"]);
        let rows: Vec<(u32, &str)> =
            table.rows.iter().map(|r| (r.row, r.cells[0].as_str())).collect();
        // Row 3 is the blank line; the multi-line cell is one row (4); `,` (row 6) is empty.
        assert_eq!(rows, [(2, "1"), (4, "multi\nline"), (5, "4"), (7, "6")]);
        assert_eq!(table.skipped_empty, 1);
    }

    #[test]
    fn csv_document_round_trips_through_the_decoder() {
        let header = vec!["名称".to_owned(), "备注".to_owned()];
        let row = vec!["a,\"b\"".to_owned(), "x\ny".to_owned()];
        let body = csv_document(&header, Some(&row), b',');
        let decoded = decode::decode(&body, &decode::DecodeOptions::new(Codec::Csv)).unwrap();
        let doc = decoded[0].as_ref().unwrap();
        assert_eq!(doc["名称"], "a,\"b\"");
        assert_eq!(doc["备注"], "x\ny");
    }

    #[test]
    fn message_ids_depend_on_content_only() {
        let a = message_id("gc", "penalty_csv", b"x");
        assert_eq!(a, message_id("gc", "penalty_csv", b"x"));
        assert_ne!(a, message_id("gc", "license_csv", b"x"));
        assert!(a.starts_with("import-") && a.len() == 39);
    }

    fn config() -> CompiledConfig {
        CompiledConfig::load(
            &Path::new(env!("CARGO_MANIFEST_DIR")).join("config"),
            &crate::config::LoadOptions::default(),
        )
        .unwrap()
    }

    fn prepare_file(name: &str, bytes: &[u8], adapter: &str, doc_type: &str) -> ImportReport {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join(name);
        std::fs::write(&file, bytes).unwrap();
        let request = ImportRequest { adapter, doc_type: Some(doc_type), file: &file };
        prepare(&config(), &request, &|_, _| {}).unwrap()
    }

    /// The county office's sample CSV as UTF-8 lines (header first).
    fn county_lines() -> Vec<String> {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("docs/import/gc-county-credit-penalties.csv");
        let bytes = std::fs::read(path).unwrap();
        let (text, _, bad) = encoding_rs::GB18030.decode(&bytes);
        assert!(!bad);
        text.lines().map(str::to_owned).collect()
    }

    fn gb18030(text: &str) -> Vec<u8> {
        encoding_rs::GB18030.encode(text).0.into_owned()
    }

    #[test]
    fn repeated_rows_and_keys_are_flagged_and_empty_rows_skipped() {
        let l = county_lines();
        // Row 2 valid, row 3 identical to it, row 4 empty, row 5 row 2 with another amount
        // (same record key), row 6 the rejected one.
        let changed = l[1].replace("30000", "30001");
        let empty = ",".repeat(20);
        let text = [&l[0], &l[1], &l[1], &empty, &changed, &l[2]].map(String::as_str).join("\r\n");
        let report = prepare_file("p.csv", &gb18030(&text), "gc-county-credit", "penalty_csv");
        let rows: Vec<(usize, RecordStatus)> =
            report.rows.iter().map(|r| (r.row, r.outcome)).collect();
        assert_eq!(
            rows,
            [
                (2, RecordStatus::Accepted),
                (3, RecordStatus::AcceptedWithWarnings),
                (5, RecordStatus::AcceptedWithWarnings),
                (6, RecordStatus::Rejected),
            ]
        );
        assert_eq!(report.rows[1].violations[0].rule, "IMPORT-DUPLICATE");
        assert!(report.rows[1].violations[0].message.contains("与 row 2 内容完全相同"));
        assert_eq!(report.rows[2].violations[0].rule, "IMPORT-REPEATED-KEY");
        assert_eq!(report.rows[0].message_id, report.rows[1].message_id);
        // The duplicate is published once; the rejected row not at all.
        assert_eq!(report.units_to_publish(), 2);
        assert_eq!(report.summary.skipped_empty, 1);
        assert_eq!(report.summary.rows, 4);
        assert!(report.any_rejected());
        // The rejected row's ID number is masked in its message.
        let message = &report.rows[3].violations[0].message;
        assert!(message.contains("4201************30"), "{message}");
    }

    #[test]
    fn xlsx_rows_map_like_csv_rows() {
        use xlsx::testing::{TestCell, workbook};
        let l = county_lines();
        let cells = |line: &str| -> Vec<Option<TestCell>> {
            csv::ReaderBuilder::new()
                .has_headers(false)
                .from_reader(line.as_bytes())
                .records()
                .next()
                .unwrap()
                .unwrap()
                .iter()
                .map(|c| (!c.is_empty()).then(|| TestCell::Text(c.to_owned())))
                .collect()
        };
        let mut with_error = cells(&l[3]);
        with_error[14] = Some(TestCell::Error("#DIV/0!"));
        let bytes = workbook(&[cells(&l[0]), cells(&l[1]), vec![], with_error]);
        let report = prepare_file("p.xlsx", &bytes, "gc-county-credit", "penalty_csv");
        assert_eq!(report.format, FileFormat::Xlsx);
        assert_eq!(report.rows.len(), 2);
        assert_eq!((report.rows[0].row, report.rows[0].outcome), (2, RecordStatus::Accepted));
        assert_eq!(report.rows[0].routed_to, ["hb-credit"]);
        // The same row as in the CSV file: the same document, the same message id.
        let csv_report =
            prepare_file("p.csv", &gb18030(&l[..2].join("\n")), "gc-county-credit", "penalty_csv");
        assert_eq!(report.rows[0].message_id, csv_report.rows[0].message_id);
        assert_eq!((report.rows[1].row, report.rows[1].outcome), (4, RecordStatus::Rejected));
        assert!(report.rows[1].violations[0].message.contains("O4 #DIV/0!"));
        assert_eq!(report.units_to_publish(), 1);
    }

    #[test]
    fn a_bad_header_rejects_the_file_once() {
        let text = "行政相对人名称,行政相对人名称\r\na,b\r\nc,d\r\n";
        let report = prepare_file("p.csv", &gb18030(text), "gc-county-credit", "penalty_csv");
        assert_eq!(report.rows.len(), 1);
        assert_eq!((report.rows[0].row, report.rows[0].location.as_str()), (0, "file"));
        assert!(report.rows[0].violations[0].message.contains("duplicate column name"));
        assert_eq!(report.units_to_publish(), 0);
        assert!(report.any_rejected());
    }

    #[test]
    fn the_header_row_picks_the_document_type() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("p.csv");
        std::fs::write(&file, gb18030(&county_lines().join("\n"))).unwrap();
        let request = ImportRequest { adapter: "gc-county-credit", doc_type: None, file: &file };
        let report = prepare(&config(), &request, &|_, _| {}).unwrap();
        assert_eq!(report.doc_type, "penalty_csv");
        assert_eq!(report.routing_key, "gc-county-credit.penalty_csv");
    }

    #[test]
    fn json_records_are_published_one_by_one() {
        let bytes = std::fs::read(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("adapters/fixtures/wh-ggzy/penalty-batch-one-bad/input.json"),
        )
        .unwrap();
        let report = prepare_file("p.json", &bytes, "wh-ggzy", "penalty");
        let outcomes: Vec<RecordStatus> = report.rows.iter().map(|r| r.outcome).collect();
        assert_eq!(outcomes[1], RecordStatus::Rejected);
        assert_eq!(report.rows.iter().map(|r| r.row).collect::<Vec<_>>(), [1, 2, 3]);
        assert_eq!(report.units_to_publish(), 2);
        let body: serde_json::Value = serde_json::from_slice(&report.units[0].body).unwrap();
        assert!(body.is_object());
    }
}
