//! Lineage: every accepted record version (canonical JSON, hash of the raw bytes, where it came
//! from), the copies routed from it, every delivery attempt with the destination's answer, and
//! an index by business identifiers — so an operator can answer "what did we receive about this
//! company, and where did each version go, when, with what answer".
//!
//! Identifier index: fields whose canonical name ends in `uscc`, `id_no`, `doc_no` or
//! `deal_code` (the catalog's naming convention, which record keys already rely on for
//! `doc_no`) are indexed, including properties of arrays of objects (bid candidates).
//! 统一社会信用代码 and ID numbers are stored only as a keyed hash (HMAC-SHA256 with a random
//! key kept in the store), so the index can be searched without holding, or ever logging,
//! the numbers themselves; document numbers and deal codes are stored in identity form.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fmt;
use std::sync::Arc;

use hmac::Mac;
use serde::Serialize;
use serde_json::Value;

use super::backend::{Conn, Tx, on_conn};
use super::{Pool, Store, StoreError, Write};
use crate::domain::ids;
use crate::pipeline::{
    CanonicalRecord, Inbound, OutboundCopy, Processed, ProcessedRecord, Receipt, RecordStatus,
};

/// Which identifier an index entry holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum IndexKind {
    /// 统一社会信用代码 (keyed hash).
    Uscc,
    /// ID number of a natural person (keyed hash).
    IdNo,
    /// 文书号 in identity form.
    DocNo,
    /// 统一交易标识码 (uppercase).
    DealCode,
}

impl IndexKind {
    pub fn as_str(self) -> &'static str {
        match self {
            IndexKind::Uscc => "uscc",
            IndexKind::IdNo => "id_no",
            IndexKind::DocNo => "doc_no",
            IndexKind::DealCode => "deal_code",
        }
    }

    /// The kind a canonical field name is indexed as, if any.
    pub fn of_field(name: &str) -> Option<IndexKind> {
        if name == "uscc" || name.ends_with("_uscc") {
            Some(IndexKind::Uscc)
        } else if name == "id_no" || name.ends_with("_id_no") {
            Some(IndexKind::IdNo)
        } else if name.ends_with("doc_no") {
            Some(IndexKind::DocNo)
        } else if name.ends_with("deal_code") {
            Some(IndexKind::DealCode)
        } else {
            None
        }
    }

    /// Values of these kinds identify persons or companies: only their keyed hash is stored.
    fn hashed(self) -> bool {
        matches!(self, IndexKind::Uscc | IndexKind::IdNo)
    }

    /// The form a value is compared in (what the index holds before hashing).
    pub fn normalise(self, value: &str) -> String {
        match self {
            IndexKind::DocNo => ids::doc_no_identity(value),
            _ => ids::normalize_code_upper(value).value,
        }
    }
}

/// One identifier of a record: kind, the field it came from (`/candidates/0/uscc` →
/// `candidates.uscc`), and its normalised value.
#[derive(Clone, PartialEq, Eq)]
pub struct IndexEntry {
    pub kind: IndexKind,
    pub field: String,
    pub value: String,
}

impl fmt::Debug for IndexEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The value may be an ID number: never print it.
        write!(f, "IndexEntry({} {})", self.kind.as_str(), self.field)
    }
}

/// A copy routed from a record version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoutedCopy {
    pub destination: String,
    pub idempotency_key: String,
}

impl From<&OutboundCopy> for RoutedCopy {
    /// What lineage keeps of a copy published for a record: where it went, under which key.
    fn from(copy: &OutboundCopy) -> RoutedCopy {
        RoutedCopy {
            destination: copy.destination.clone(),
            idempotency_key: copy.idempotency_key.clone(),
        }
    }
}

/// One accepted record version as the store keeps it.
///
/// Short text is shared (`Arc<str>`): binding it to a statement then costs a reference count
/// instead of a copy of each value (sqlx-sqlite copies a borrowed `String` into a new
/// `Arc<String>` per bind), and the values of one document (message id, source, receipt time,
/// raw hash) are allocated once for all its records. The canonical record stays a `String`:
/// most rows of a re-sent record store [`SAME_BODY`] instead, so it is copied for a bind only
/// when it is stored, rather than into an `Arc` for every record.
#[derive(Clone)]
pub struct RecordLineage {
    pub message_id: Arc<str>,
    pub record_index: i64,
    pub record_key: Arc<str>,
    pub record_version: Arc<str>,
    pub source_adapter: Arc<str>,
    pub doc_type: Arc<str>,
    pub catalog_item: Arc<str>,
    pub catalog_version: Arc<str>,
    pub operation: Arc<str>,
    /// `accepted` or `accepted_with_warnings`.
    pub status: Arc<str>,
    pub raw_sha256: Arc<str>,
    /// The canonical record (contract §3 flat JSON).
    pub canonical: String,
    /// The body digest of the canonical record ([`serialise`]), or empty when its body is never
    /// shared (see [`SAME_BODY`]).
    pub body_sha256: Arc<str>,
    pub received_at: Arc<str>,
    pub index: Vec<IndexEntry>,
    pub copies: Vec<RoutedCopy>,
}

impl fmt::Debug for RecordLineage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The canonical record carries personal identifiers: only its coordinates are printed.
        f.debug_struct("RecordLineage")
            .field("message_id", &self.message_id)
            .field("record_index", &self.record_index)
            .field("record_key", &self.record_key)
            .field("record_version", &self.record_version)
            .field("copies", &self.copies)
            .finish_non_exhaustive()
    }
}

/// One delivery attempt of one copy.
#[derive(Debug, Clone)]
pub struct Attempt {
    pub idempotency_key: String,
    pub destination: String,
    pub record_key: String,
    pub record_version: String,
    /// 1 for the first try; replays start again at 1.
    pub attempt: i64,
    /// `delivered`, `retry`, `dead`, `superseded`, `already_delivered`, `held` or
    /// `unpublished` (attempt 0: the source's document could not be routed, see
    /// [`unpublished_attempts`]).
    pub outcome: String,
    pub reason: String,
    /// The destination's answer (truncated).
    pub response: String,
    /// The dead letter this copy was replayed from, or empty.
    pub replay_of: String,
    pub at: String,
}

/// The lineage writes for one processed inbound document: one per accepted record (with its
/// index entries and routed copies), and the original bytes when anything was rejected.
/// Written before the dedup key, so a crash in between re-ingests and re-writes them; every
/// write is idempotent.
pub fn lineage_writes(
    inbound: &Inbound<'_>,
    processed: &Processed,
    receipt: &Receipt,
) -> Vec<Write> {
    let mut out = Vec::new();
    // One allocation per document for what all its records share.
    let message_id: Arc<str> = inbound.message_id.into();
    let source_adapter: Arc<str> = inbound.adapter.into();
    let doc_type: Arc<str> = inbound.doc_type.into();
    let raw_sha256: Arc<str> = processed.raw_sha256.as_str().into();
    let received_at: Arc<str> = receipt.received_at.as_str().into();
    for (record, canonical) in accepted_records(processed) {
        let row = PerRow {
            message_id: inbound.message_id,
            received_at: &receipt.received_at,
            raw_sha256: &processed.raw_sha256,
            record_version: canonical.record_version(),
        };
        let serialised = serialise(canonical, &row);
        out.push(Write::Lineage(Box::new(RecordLineage {
            message_id: message_id.clone(),
            record_index: i64::try_from(record.index).unwrap_or(i64::MAX),
            record_key: serialised.record_key.into(),
            record_version: row.record_version.into(),
            source_adapter: source_adapter.clone(),
            doc_type: doc_type.clone(),
            catalog_item: serialised.catalog_item.into(),
            catalog_version: serialised.catalog_version.into(),
            operation: serialised.operation.into(),
            status: record_status(record.status).into(),
            raw_sha256: raw_sha256.clone(),
            canonical: serialised.canonical,
            body_sha256: serialised.body_sha256.into(),
            received_at: received_at.clone(),
            index: index_entries(&canonical.fields),
            copies: record.copies.iter().map(RoutedCopy::from).collect(),
        })));
    }
    let any_rejected = !processed.document_violations.is_empty()
        || processed.records.iter().any(|r| r.status == RecordStatus::Rejected);
    if any_rejected {
        out.push(Write::Rejected(Box::new(super::dlq::RejectedInput {
            message_id: inbound.message_id.to_owned(),
            adapter: inbound.adapter.to_owned(),
            doc_type: inbound.doc_type.to_owned(),
            content_type: inbound.content_type.unwrap_or_default().to_owned(),
            body: inbound.body.to_vec(),
            receipt: serde_json::to_string(receipt).unwrap_or_default(),
            received_at: receipt.received_at.clone(),
            // The organisation the data names as its source, when the rejected record got far
            // enough to be mapped: the scorecard counts rejections against it like acceptances.
            source_org: processed
                .records
                .iter()
                .filter(|r| r.status == RecordStatus::Rejected)
                .filter_map(|r| r.record.as_ref())
                .map(|c| c.get_str("source_org_uscc"))
                .find(|org| !org.is_empty())
                .unwrap_or_default()
                .to_owned(),
        })));
    }
    out
}

/// What `record_versions.canonical` holds for a version received again with the same
/// content: the body stays in the row that has it (the *holder*: same record key, version and
/// body digest, [`serialise`]) and this row names only what differs between receipts, in its
/// own columns ([`PerRow`]). A source that re-sends its whole list every day (common for 双公示 feeds)
/// then costs a small row per record a day, not the record again. Readers put the body back
/// with [`own_envelope`]; retention hands it to a row it keeps before it empties or deletes
/// the holder (`store::retention`).
pub const SAME_BODY: &str = "=";

/// Envelope fields of a canonical record that belong to the receipt, not to the content, in
/// [`PerRow::values`] order; each is also a column of `record_versions`.
const PER_ROW: [&str; 4] = ["message_id", "received_at", "raw_sha256", "record_version"];

/// A version row's own [`PER_ROW`] columns.
#[derive(Debug)]
pub struct PerRow<'a> {
    pub message_id: &'a str,
    pub received_at: &'a str,
    pub raw_sha256: &'a str,
    pub record_version: &'a str,
}

impl PerRow<'_> {
    fn values(&self) -> [&str; 4] {
        [self.message_id, self.received_at, self.raw_sha256, self.record_version]
    }
}

/// A record as lineage keeps it, from one pass over it ([`serialise`]).
struct Serialised<'a> {
    /// [`CanonicalRecord::to_json_string`]'s bytes.
    canonical: String,
    /// The body digest when the body can be shared, else empty: SHA-256 of `canonical` without
    /// the [`PER_ROW`] entries, so two receipts with the same digest carry the same content.
    body_sha256: String,
    record_key: &'a str,
    catalog_item: &'a str,
    catalog_version: &'a str,
    operation: &'a str,
}

/// The canonical JSON of a received record, its body digest when the body can be shared (its
/// envelope's [`PER_ROW`] fields are exactly `row`'s columns, so [`own_envelope`] rebuilds the
/// record as received, and no field shadows them; otherwise that row always keeps its body),
/// and the envelope values lineage keeps in columns: the record is serialised once and the
/// digest hashes those bytes.
fn serialise<'a>(record: &'a CanonicalRecord, row: &PerRow<'_>) -> Serialised<'a> {
    let mut out = Vec::with_capacity(2048);
    let mut per_row: Vec<std::ops::Range<usize>> = Vec::with_capacity(PER_ROW.len());
    let mut own_fields = 0;
    let mut text = [""; 4];
    record.write_json(&mut out, |entry| {
        if let Some(at) = PER_ROW.iter().position(|k| *k == entry.key) {
            per_row.push(entry.span);
            if !entry.shadowed && entry.value.as_str() == Some(row.values()[at]) {
                own_fields += 1;
            }
        } else if let Some(at) = COLUMNS.iter().position(|k| *k == entry.key) {
            text[at] = entry.value.as_str().unwrap_or_default();
        }
    });
    let body_sha256 =
        if own_fields == PER_ROW.len() { digest_without(&out, &per_row) } else { String::new() };
    let [record_key, catalog_item, catalog_version, operation] = text;
    Serialised {
        // serde_json writes UTF-8 only.
        canonical: String::from_utf8(out).unwrap_or_default(),
        body_sha256,
        record_key,
        catalog_item,
        catalog_version,
        operation,
    }
}

/// Envelope fields [`serialise`] picks up on its way, in [`Serialised`] order.
const COLUMNS: [&str; 4] = ["record_key", "catalog_item", "catalog_version", "operation"];

/// SHA-256 (hex) of `bytes` without the `left_out` spans (in order, not overlapping).
fn digest_without(bytes: &[u8], left_out: &[std::ops::Range<usize>]) -> String {
    use sha2::Digest;
    let mut hasher = sha2::Sha256::new();
    let mut from = 0;
    for span in left_out {
        hasher.update(&bytes[from..span.start]);
        from = span.end;
    }
    hasher.update(&bytes[from..]);
    hex::encode(hasher.finalize())
}

/// A version row's canonical record as received: `body` is the row's own (returned as it is)
/// or, when the row holds [`SAME_BODY`], its holder's ([`with_own_fields`]). Empty when the
/// body is gone (retention).
pub fn own_envelope(stored: &str, body: String, row: &PerRow<'_>) -> String {
    if stored == SAME_BODY { with_own_fields(&body, row) } else { body }
}

/// A holder's body with its [`PER_ROW`] fields replaced by `row`'s: the record as `row`
/// received it. Empty when the body is not a JSON object (gone to retention).
pub fn with_own_fields(body: &str, row: &PerRow<'_>) -> String {
    let Ok(Value::Object(mut record)) = serde_json::from_str::<Value>(body) else {
        return String::new();
    };
    for (key, value) in PER_ROW.iter().zip(row.values()) {
        if let Some(slot) = record.get_mut(*key) {
            *slot = Value::String(value.to_owned());
        }
    }
    Value::Object(record).to_string()
}

/// SQL for the body of the version row `alias`: its own canonical record, or its holder's
/// when it holds [`SAME_BODY`] (empty if the holder's is gone); pass it with the row's
/// `canonical` and [`PerRow`] columns to [`own_envelope`].
pub fn body_sql(alias: &str) -> String {
    format!(
        "CASE WHEN {alias}.canonical = '=' THEN COALESCE((SELECT h.canonical FROM record_versions h \
         WHERE h.record_key = {alias}.record_key AND h.record_version = {alias}.record_version \
         AND h.body_sha256 = {alias}.body_sha256 AND h.canonical NOT IN ('', '=') LIMIT 1), '') \
         ELSE {alias}.canonical END"
    )
}

/// Attempts for the copies of a document whose publish to `credgate.route` failed after its
/// lineage was written: outcome `unpublished`, attempt 0 (before any delivery), the broker's
/// error as the reason. The source's redelivery publishes the same copies again (same
/// idempotency keys), and their delivery attempts follow these.
pub fn unpublished_attempts(processed: &Processed, error: &str, at: &str) -> Vec<Write> {
    accepted_records(processed)
        .flat_map(|(record, canonical)| {
            record.copies.iter().map(move |copy| {
                Write::Attempt(Box::new(Attempt {
                    idempotency_key: copy.idempotency_key.clone(),
                    destination: copy.destination.clone(),
                    record_key: canonical.record_key().to_owned(),
                    record_version: canonical.record_version().to_owned(),
                    attempt: 0,
                    outcome: "unpublished".to_owned(),
                    reason: format!(
                        "publishing to credgate.route failed, the source's redelivery routes it again: {error}"
                    ),
                    response: String::new(),
                    replay_of: String::new(),
                    at: at.to_owned(),
                }))
            })
        })
        .collect()
}

/// The records of a document that lineage keeps: accepted (with or without warnings), with
/// their canonical form.
fn accepted_records(
    processed: &Processed,
) -> impl Iterator<Item = (&ProcessedRecord, &CanonicalRecord)> {
    processed
        .records
        .iter()
        .filter(|record| record.status != RecordStatus::Rejected)
        .filter_map(|record| record.record.as_ref().map(|canonical| (record, canonical)))
}

fn record_status(status: RecordStatus) -> &'static str {
    match status {
        RecordStatus::Accepted => "accepted",
        RecordStatus::AcceptedWithWarnings => "accepted_with_warnings",
        RecordStatus::Rejected => "rejected",
    }
}

/// The identifiers of a record's fields (top level and inside arrays of objects).
pub fn index_entries(fields: &serde_json::Map<String, Value>) -> Vec<IndexEntry> {
    let mut seen = BTreeSet::new();
    let mut push = |kind: IndexKind, field: String, raw: &str| {
        let value = kind.normalise(raw);
        if value.is_empty() || (kind == IndexKind::Uscc && ids::is_uscc_placeholder(&value)) {
            return;
        }
        seen.insert((kind, field, value));
    };
    for (name, value) in fields {
        match value {
            Value::String(s) => {
                if let Some(kind) = IndexKind::of_field(name) {
                    push(kind, name.clone(), s);
                }
            }
            Value::Array(items) => {
                for item in items.iter().filter_map(Value::as_object) {
                    for (inner, v) in item {
                        if let (Some(kind), Some(s)) = (IndexKind::of_field(inner), v.as_str()) {
                            push(kind, format!("{name}.{inner}"), s);
                        }
                    }
                }
            }
            _ => {}
        }
    }
    seen.into_iter().map(|(kind, field, value)| IndexEntry { kind, field, value }).collect()
}

/// The key of the identifier index: created at random on first use and kept in the store, so
/// every instance sharing the store hashes alike and a copy of the index alone reveals nothing.
async fn index_key(conn: Conn<'_>) -> Result<String, sqlx::Error> {
    let select = "SELECT value FROM store_meta WHERE name = 'index_key'";
    on_conn!(conn, c => {
        let found: Option<(String,)> = sqlx::query_as(select).fetch_optional(&mut *c).await?;
        if let Some((key,)) = found {
            return Ok(key);
        }
        let fresh = format!("{}{}", uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple());
        sqlx::query("INSERT INTO store_meta (name, value) VALUES ('index_key', $1) ON CONFLICT (name) DO NOTHING")
            .bind(fresh)
            .execute(&mut *c)
            .await?;
        let (key,): (String,) = sqlx::query_as(select).fetch_one(&mut *c).await?;
        Ok(key)
    })
}

/// What the index holds for a value: the keyed hash for persons and companies, else the
/// normalised value itself.
fn index_value(key: &str, kind: IndexKind, normalised: &str) -> String {
    IndexHasher::new(key).value(kind, normalised)
}

/// `index_value` with the key set up once for many values (HMAC keying hashes the key).
struct IndexHasher(Option<hmac::Hmac<sha2::Sha256>>);

impl IndexHasher {
    fn new(key: &str) -> IndexHasher {
        // HMAC accepts keys of any length: `None` cannot happen.
        IndexHasher(hmac::Hmac::<sha2::Sha256>::new_from_slice(key.as_bytes()).ok())
    }

    fn value(&self, kind: IndexKind, normalised: &str) -> String {
        if !kind.hashed() {
            return normalised.to_owned();
        }
        let Some(keyed) = &self.0 else { return String::new() };
        let mut mac = keyed.clone();
        mac.update(kind.as_str().as_bytes());
        mac.update(b":");
        mac.update(normalised.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }
}

/// The index rows of one record: one per distinct (kind, value), with every field it was
/// found in (`authority_uscc,source_org_uscc`), so a value named twice costs one row.
fn index_rows(entries: &[IndexEntry]) -> Vec<(IndexKind, &str, String)> {
    let mut rows: Vec<(IndexKind, &str, String)> = Vec::with_capacity(entries.len());
    for entry in entries {
        match rows.iter_mut().find(|(k, v, _)| *k == entry.kind && *v == entry.value) {
            Some((_, _, fields)) => {
                fields.push(FIELD_SEPARATOR);
                fields.push_str(&entry.field);
            }
            None => rows.push((entry.kind, &entry.value, entry.field.clone())),
        }
    }
    rows
}

/// Separates the fields of one index row; field names are catalog names (`[a-z0-9_.]`).
const FIELD_SEPARATOR: char = ',';

/// Splits `items` into chunks of `max`, the rest into chunks of decreasing powers of two, so a
/// multi-row INSERT has one of a few shapes and its prepared statement stays cached.
pub(super) fn shaped_chunks<T>(items: &[T], max: usize) -> Vec<&[T]> {
    let mut out = Vec::new();
    let mut rest = items;
    while !rest.is_empty() {
        let n = if rest.len() >= max { max } else { 1 << rest.len().ilog2() };
        let (head, tail) = rest.split_at(n);
        out.push(head);
        rest = tail;
    }
    out
}

/// Rows per multi-row INSERT: a batch of records costs a handful of statements instead of
/// several per record (each statement is a round trip to the database thread).
pub(super) const ROWS_PER_INSERT: usize = 64;

/// Commits the lineage of a batch of records: the versions into `record_versions`, and their
/// index rows (keyed-hashed) and copies (JSON) into the backlog (0008), one small row per
/// version at the end of one B-tree, a few pages per commit whatever the keys.
/// [`index_backlog`] sorts them into `record_index` and `routed_copies` later.
///
/// A version received again with the same content (0009) keeps no second body
/// ([`SAME_BODY`]) and adds no backlog row once its copies are recorded (in `routed_copies`,
/// or in a backlog row this transaction appended): the holder's backlog row, committed with
/// the holder, carries the same index rows (they come from the same fields), and the copies'
/// idempotency keys name the same version. A copy not recorded yet (routing changed, the
/// holder's row still in the backlog) gets a row as usual, without the index rows.
///
/// Returns how many backlog rows it appended (what the writer counts toward its next pass).
pub(super) async fn append_backlog<T: Tx>(
    tx: &mut T,
    records: &[&RecordLineage],
) -> Result<usize, sqlx::Error> {
    if records.is_empty() {
        return Ok(0);
    }
    let key = if records.iter().flat_map(|w| &w.index).any(|e| e.kind.hashed()) {
        index_key(tx.conn()).await?
    } else {
        String::new()
    };
    let hasher = IndexHasher::new(&key);
    let same_body: Arc<str> = SAME_BODY.into();
    // (record key, version, body digest) of the rows this call inserts or found held.
    let mut bodies: HashSet<(&str, &str, &str)> = HashSet::new();
    // Copies (record key, idempotency key) in the backlog rows this call appended.
    let mut appended: HashSet<(&str, &str)> = HashSet::new();
    let mut rows_appended = 0;
    on_conn!(tx.conn(), c => {
        for chunk in shaped_chunks(records, ROWS_PER_INSERT) {
            // Which records' bodies are already held, by position in the chunk. The first row
            // of each (record key, version, digest) in this call is looked up: one seek on
            // `record_versions_key`, where the rows of a version are few and the holder, the
            // oldest, comes first (the page it reads is the one the insert below writes). Each
            // later row of the same body is held by that row or by its holder: the rows of one
            // delivery batch share their receipt time, so a record re-sent without a version
            // field repeats one version many times in a call, and its body is stored once.
            // (Were the first row a redelivery already stored, its stored row keeps the body or
            // has a holder, like any row; only retention could have emptied it, and a delivery
            // outliving its own lineage's retention unanswered does not happen.)
            let mut held = vec![false; chunk.len()];
            let mut first_seen: Vec<(i64, &RecordLineage)> = Vec::new();
            for ((at, w), slot) in (0_i64..).zip(chunk.iter().copied()).zip(held.iter_mut()) {
                if w.body_sha256.is_empty() {
                    continue;
                }
                let body = (&*w.record_key, &*w.record_version, &*w.body_sha256);
                if bodies.insert(body) {
                    first_seen.push((at, w));
                } else {
                    *slot = true;
                }
            }
            // In a few shapes, like every multi-row statement here: a statement of a new
            // shape is parsed and planned again, and shapes beyond the connection's cache of
            // prepared statements are parsed every time.
            for part in shaped_chunks(&first_seen, ROWS_PER_INSERT) {
                let mut q = sqlx::QueryBuilder::new("SELECT v.column1 FROM (");
                q.push_values(part, |mut row, (at, w)| {
                    row.push_bind(*at).push_bind(w.record_key.clone()).push_bind(w.record_version.clone()).push_bind(w.body_sha256.clone());
                });
                q.push(") AS v WHERE EXISTS (SELECT 1 FROM record_versions r WHERE r.record_key = v.column2 AND r.record_version = v.column3 AND r.body_sha256 = v.column4 AND r.canonical NOT IN ('', '='))");
                let found: Vec<(i64,)> = q.build_query_as().fetch_all(&mut *c).await?;
                for (at,) in found {
                    if let Some(slot) = usize::try_from(at).ok().and_then(|at| held.get_mut(at)) {
                        *slot = true;
                    }
                }
            }
            let mut q = sqlx::QueryBuilder::new("INSERT INTO record_versions (message_id, record_index, record_key, record_version, source_adapter, doc_type, catalog_item, catalog_version, operation, status, raw_sha256, canonical, body_sha256, received_at) ");
            q.push_values(chunk.iter().zip(&held), |mut row, (w, held)| {
                // Shared text is bound by reference count, not copied (see `RecordLineage`); a
                // body is copied only where it is stored.
                let body = if *held { same_body.clone() } else { Arc::from(w.canonical.as_str()) };
                row.push_bind(w.message_id.clone()).push_bind(w.record_index).push_bind(w.record_key.clone())
                    .push_bind(w.record_version.clone()).push_bind(w.source_adapter.clone()).push_bind(w.doc_type.clone())
                    .push_bind(w.catalog_item.clone()).push_bind(w.catalog_version.clone()).push_bind(w.operation.clone())
                    .push_bind(w.status.clone()).push_bind(w.raw_sha256.clone()).push_bind(body)
                    .push_bind(w.body_sha256.clone()).push_bind(w.received_at.clone());
            });
            q.push(" ON CONFLICT (message_id, record_index) DO NOTHING");
            q.build().execute(&mut *c).await?;
            // Of the records whose body is held, which have every copy recorded already: in
            // `routed_copies`, or in a backlog row appended by this transaction.
            let held_copies: Vec<(i64, &str, &str)> = (0_i64..)
                .zip(chunk.iter().zip(&held))
                .filter(|(_, (_, held))| **held)
                .flat_map(|(at, (w, _))| {
                    w.copies.iter().map(move |copy| (at, &*w.record_key, copy.idempotency_key.as_str()))
                })
                .filter(|(_, record_key, key)| !appended.contains(&(*record_key, *key)))
                .collect();
            // (position in the chunk, idempotency key) of the copies found.
            let mut recorded: HashSet<(i64, &str)> = HashSet::new();
            let mut offset = 0_i64;
            for part in shaped_chunks(&held_copies, ROWS_PER_INSERT) {
                let mut q = sqlx::QueryBuilder::new("SELECT v.column1 FROM (");
                q.push_values((offset..).zip(part), |mut row, (n, (_, record_key, idempotency_key))| {
                    row.push_bind(n).push_bind(*record_key).push_bind(*idempotency_key);
                });
                offset += i64::try_from(part.len()).unwrap_or(i64::MAX);
                q.push(") AS v WHERE EXISTS (SELECT 1 FROM routed_copies rc WHERE rc.record_key = v.column2 AND rc.idempotency_key = v.column3)");
                let found: Vec<(i64,)> = q.build_query_as().fetch_all(&mut *c).await?;
                recorded.extend(
                    found
                        .into_iter()
                        .filter_map(|(n,)| held_copies.get(usize::try_from(n).ok()?))
                        .map(|(at, _, key)| (*at, *key)),
                );
            }
            // Index rows (keyed-hashed) and copies as JSON, built only for the rows that go
            // into the backlog; a held body's index rows came with its holder's backlog row.
            let mut backlog: Vec<(&RecordLineage, String, String)> = Vec::new();
            for ((at, w), held) in (0_i64..).zip(chunk.iter().copied()).zip(&held) {
                let all_recorded = w.copies.iter().all(|copy| {
                    let key = copy.idempotency_key.as_str();
                    appended.contains(&(&*w.record_key, key)) || recorded.contains(&(at, key))
                });
                if *held && all_recorded {
                    continue;
                }
                appended.extend(w.copies.iter().map(|copy| (&*w.record_key, copy.idempotency_key.as_str())));
                let index = if *held { "[]".to_owned() } else { backlog_index_rows(w, &hasher) };
                backlog.push((w, index, backlog_copies(w)));
            }
            rows_appended += backlog.len();
            for part in shaped_chunks(&backlog, ROWS_PER_INSERT) {
                let mut q = sqlx::QueryBuilder::new("INSERT INTO lineage_backlog (message_id, record_index, record_key, record_version, received_at, index_rows, copies) ");
                q.push_values(part, |mut row, (w, index, copies)| {
                    row.push_bind(w.message_id.clone()).push_bind(w.record_index).push_bind(w.record_key.clone())
                        .push_bind(w.record_version.clone()).push_bind(w.received_at.clone()).push_bind(index).push_bind(copies);
                });
                q.build().execute(&mut *c).await?;
            }
        }
        Ok(rows_appended)
    })
}

/// A version's index rows as its backlog row holds them: JSON `[[kind, value, fields], …]`,
/// persons' and companies' identifiers keyed-hashed.
fn backlog_index_rows(w: &RecordLineage, hasher: &IndexHasher) -> String {
    let index: Vec<(&str, String, String)> = index_rows(&w.index)
        .into_iter()
        .map(|(kind, value, fields)| (kind.as_str(), hasher.value(kind, value), fields))
        .collect();
    // Plain strings: serialising them cannot fail.
    serde_json::to_string(&index).unwrap_or_default()
}

/// A version's copies as its backlog row holds them: JSON `[[destination, idempotency key], …]`.
fn backlog_copies(w: &RecordLineage) -> String {
    let copies: Vec<(&str, &str)> =
        w.copies.iter().map(|c| (c.destination.as_str(), c.idempotency_key.as_str())).collect();
    serde_json::to_string(&copies).unwrap_or_default()
}

/// A backlog row as [`index_backlog`] reads it.
struct BacklogRow {
    seq: i64,
    record_key: String,
    record_version: String,
    message_id: String,
    record_index: i64,
    received_at: String,
    index_rows: String,
    copies: String,
}

/// The columns [`index_backlog`] selects, in order.
type BacklogColumns = (i64, String, String, String, i64, String, String, String);

impl From<BacklogColumns> for BacklogRow {
    fn from(c: BacklogColumns) -> BacklogRow {
        BacklogRow {
            seq: c.0,
            record_key: c.1,
            record_version: c.2,
            message_id: c.3,
            record_index: c.4,
            received_at: c.5,
            index_rows: c.6,
            copies: c.7,
        }
    }
}

/// Moves up to `limit` of the oldest backlog rows into `record_index` and `routed_copies`, in
/// the transaction that deletes them: a crash before the commit leaves them
/// in the backlog, after it they are indexed (every insert is `ON CONFLICT DO NOTHING`, so a
/// row moved twice changes nothing). Rows go in sorted by each table's key, so a batch visits
/// each B-tree page once, in order, however randomly the keys arrived. On PostgreSQL several
/// instances share the backlog: each takes rows the others have not locked. Returns how many
/// rows were moved.
pub(super) async fn index_backlog<T: Tx>(tx: &mut T, limit: i64) -> Result<usize, sqlx::Error> {
    let postgres = matches!(tx.conn(), Conn::Postgres(_));
    let lock = if postgres { " FOR UPDATE SKIP LOCKED" } else { "" };
    let select = format!(
        "SELECT seq, record_key, record_version, message_id, record_index, received_at, index_rows, copies FROM lineage_backlog ORDER BY seq LIMIT $1{lock}"
    );
    let taken: Vec<BacklogColumns> = on_conn!(tx.conn(), c => {
        sqlx::query_as(sqlx::AssertSqlSafe(select)).bind(limit).fetch_all(&mut *c).await?
    });
    let taken: Vec<BacklogRow> = taken.into_iter().map(BacklogRow::from).collect();
    let (Some(first), Some(last)) = (taken.first(), taken.last()) else { return Ok(0) };
    // SQLite has one writer and numbers rows in commit order: the rows taken are a range.
    // PostgreSQL's sequence numbers can commit out of order and other instances lock rows of
    // their own: the rows taken are named.
    let seqs: Vec<i64> = taken.iter().map(|row| row.seq).collect();
    let (first, last) = (first.seq, last.seq);
    let which = if postgres { "seq = ANY($1)" } else { "seq BETWEEN $1 AND $2" };
    let mut index: Vec<(String, String, &str, String)> = Vec::new();
    let mut copies: Vec<(&str, String, &BacklogRow, String)> = Vec::new();
    for row in &taken {
        // Written by `append_backlog` a moment ago: unreadable only if the database was edited
        // by hand. The version is kept all the same; the warning names what is missing.
        let rows: Vec<(String, String, String)> = serde_json::from_str(&row.index_rows).unwrap_or_else(|e| {
            tracing::warn!(seq = row.seq, record_key = %row.record_key, error = %e, "lineage backlog row has unreadable index rows; the version is kept without them");
            Vec::new()
        });
        index.extend(
            rows.into_iter()
                .map(|(kind, value, fields)| (kind, value, row.record_key.as_str(), fields)),
        );
        let routed: Vec<(String, String)> = serde_json::from_str(&row.copies).unwrap_or_else(|e| {
            tracing::warn!(seq = row.seq, record_key = %row.record_key, error = %e, "lineage backlog row has unreadable copies; the version is kept without them");
            Vec::new()
        });
        copies.extend(
            routed
                .into_iter()
                .map(|(destination, key)| (row.record_key.as_str(), key, row, destination)),
        );
    }
    index.sort();
    index.dedup();
    // Stable: of two documents routing the same copy, the first one's row stays.
    copies.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
    let delete = sqlx::AssertSqlSafe(format!("DELETE FROM lineage_backlog WHERE {which}"));
    match tx.conn() {
        Conn::Sqlite(c) => {
            sqlx::query(delete).bind(first).bind(last).execute(&mut *c).await?;
        }
        Conn::Postgres(c) => {
            sqlx::query(delete).bind(&seqs).execute(&mut *c).await?;
        }
    }
    on_conn!(tx.conn(), c => {
        // One index row per record key, not per version (0007): a new version naming the same
        // identifiers in the same fields conflicts and adds nothing.
        for chunk in shaped_chunks(&index, ROWS_PER_INSERT) {
            let mut q = sqlx::QueryBuilder::new("INSERT INTO record_index (kind, value, record_key, field) ");
            q.push_values(chunk, |mut row, (kind, value, key, fields)| {
                row.push_bind(kind).push_bind(value).push_bind(*key).push_bind(fields);
            });
            q.push(" ON CONFLICT DO NOTHING");
            q.build().execute(&mut *c).await?;
        }
        // One row per copy (0007: its idempotency key names destination, record key and
        // version), kept from the first document that routed it.
        for chunk in shaped_chunks(&copies, ROWS_PER_INSERT) {
            let mut q = sqlx::QueryBuilder::new("INSERT INTO routed_copies (idempotency_key, message_id, record_index, destination, record_key, record_version, routed_at) ");
            q.push_values(chunk, |mut row, (key, idempotency_key, w, destination)| {
                row.push_bind(idempotency_key).push_bind(&w.message_id).push_bind(w.record_index).push_bind(destination)
                    .push_bind(*key).push_bind(&w.record_version).push_bind(&w.received_at);
            });
            q.push(" ON CONFLICT DO NOTHING");
            q.build().execute(&mut *c).await?;
        }
    });
    Ok(taken.len())
}

pub(super) async fn commit_attempt<T: Tx>(tx: &mut T, w: &Attempt) -> Result<(), sqlx::Error> {
    let id = uuid::Uuid::now_v7().to_string();
    on_conn!(tx.conn(), c => {
        sqlx::query("INSERT INTO delivery_attempts (attempt_id, idempotency_key, destination, record_key, record_version, attempt, outcome, reason, response, replay_of, at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)")
            .bind(id).bind(&w.idempotency_key).bind(&w.destination).bind(&w.record_key)
            .bind(&w.record_version).bind(w.attempt).bind(&w.outcome).bind(&w.reason)
            .bind(&w.response).bind(&w.replay_of).bind(&w.at)
            .execute(&mut *c).await?;
        Ok(())
    })
}

/// What to look records up by.
#[derive(Clone, PartialEq, Eq)]
pub enum RecordQuery {
    Uscc(String),
    IdNo(String),
    DocNo(String),
    DealCode(String),
    Key(String),
    MessageId(String),
}

impl fmt::Debug for RecordQuery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            // An ID number is never printed, not even in a debug line.
            RecordQuery::IdNo(v) => write!(f, "IdNo({})", ids::mask_id(v)),
            RecordQuery::Uscc(v) => write!(f, "Uscc({v})"),
            RecordQuery::DocNo(v) => write!(f, "DocNo({v})"),
            RecordQuery::DealCode(v) => write!(f, "DealCode({v})"),
            RecordQuery::Key(v) => write!(f, "Key({v})"),
            RecordQuery::MessageId(v) => write!(f, "MessageId({v})"),
        }
    }
}

/// One delivery attempt as shown in a record's history.
#[derive(Debug, Clone, Serialize)]
pub struct AttemptView {
    pub attempt: i64,
    pub outcome: String,
    pub reason: String,
    pub response: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub replay_of: String,
    pub at: String,
}

/// A dead letter as shown in a record's history.
#[derive(Debug, Clone, Serialize)]
pub struct DeadView {
    pub dead_id: String,
    pub reason_class: String,
    pub reason: String,
    pub dead_at: String,
    pub replay_count: i64,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub replayed_at: String,
}

/// One copy of a version for one destination, with everything that happened to it.
#[derive(Debug, Clone, Serialize)]
pub struct CopyView {
    pub destination: String,
    pub idempotency_key: String,
    pub routed_at: String,
    /// `delivered`, `dead`, `superseded`, `already_delivered`, `retrying` or `queued`.
    pub status: String,
    pub attempts: Vec<AttemptView>,
    pub dead_letters: Vec<DeadView>,
}

/// One received version of a record.
#[derive(Debug, Clone, Serialize)]
pub struct VersionView {
    pub record_version: String,
    pub message_id: String,
    pub record_index: i64,
    pub source_adapter: String,
    pub doc_type: String,
    pub catalog_item: String,
    pub catalog_version: String,
    pub operation: String,
    pub status: String,
    /// The status of the inbound message's receipt (`accepted`, `accepted_with_warnings`…).
    pub receipt_status: Option<String>,
    pub raw_sha256: String,
    pub received_at: String,
    /// The canonical record, unmasked: callers mask before showing it.
    pub canonical: Value,
    pub copies: Vec<CopyView>,
}

/// Everything the store knows about one record key.
#[derive(Debug, Clone, Serialize)]
pub struct RecordHistory {
    pub record_key: String,
    /// The fields the query matched in (`subject_uscc`, `candidates.uscc`), for index queries.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub matched_fields: Vec<String>,
    pub versions: Vec<VersionView>,
    /// The highest version delivered, per destination.
    pub delivered: BTreeMap<String, String>,
}

/// A `record_versions` row as `history_caught_up` selects it.
#[rustfmt::skip]
type VersionRow =
    (String, i64, String, String, String, String, String, String, String, String, String, String, String);
type AttemptRow = (String, String, i64, String, String, String, String, String);
type DeadRow = (String, String, String, String, String, i64, String);

impl Store {
    /// Record keys matching a query (at most `limit`), each with the fields it matched in.
    ///
    /// # Errors
    ///
    /// The query failed.
    pub async fn find_record_keys(
        &self,
        query: &RecordQuery,
        limit: i64,
    ) -> Result<Vec<(String, Vec<String>)>, StoreError> {
        self.catch_up_lineage().await?;
        let (kind, raw) = match query {
            RecordQuery::Key(key) => return Ok(vec![(key.clone(), Vec::new())]),
            RecordQuery::MessageId(id) => {
                let sql = "SELECT DISTINCT record_key FROM record_versions WHERE message_id = $1 ORDER BY record_key LIMIT $2";
                let rows: Vec<(String,)> = on_pool!(&self.pool, p => sqlx::query_as(sql).bind(id).bind(limit).fetch_all(p).await?);
                return Ok(rows.into_iter().map(|(k,)| (k, Vec::new())).collect());
            }
            RecordQuery::Uscc(v) => (IndexKind::Uscc, v),
            RecordQuery::IdNo(v) => (IndexKind::IdNo, v),
            RecordQuery::DocNo(v) => (IndexKind::DocNo, v),
            RecordQuery::DealCode(v) => (IndexKind::DealCode, v),
        };
        let normalised = kind.normalise(raw);
        let value = if kind.hashed() {
            let sql = "SELECT value FROM store_meta WHERE name = 'index_key'";
            let key: Option<(String,)> =
                on_pool!(&self.pool, p => sqlx::query_as(sql).fetch_optional(p).await?);
            // No key yet: nothing was ever indexed.
            let Some((key,)) = key else { return Ok(Vec::new()) };
            index_value(&key, kind, &normalised)
        } else {
            normalised
        };
        let sql = "SELECT record_key, field FROM record_index WHERE kind = $1 AND value = $2 ORDER BY record_key, field";
        let rows: Vec<(String, String)> = on_pool!(&self.pool, p => sqlx::query_as(sql).bind(kind.as_str()).bind(value).fetch_all(p).await?);
        let mut keys: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (key, fields) in rows {
            let limit = usize::try_from(limit).unwrap_or(usize::MAX);
            if keys.len() >= limit && !keys.contains_key(&key) {
                continue;
            }
            // A row names every field the value was found in (0005); older rows name one.
            let entry = keys.entry(key).or_default();
            entry.extend(fields.split(FIELD_SEPARATOR).map(str::to_owned));
        }
        Ok(keys.into_iter().map(|(k, f)| (k, f.into_iter().collect())).collect())
    }

    /// Histories of the records matching a query (at most `limit` record keys).
    ///
    /// # Errors
    ///
    /// A query failed.
    pub async fn search_records(
        &self,
        query: &RecordQuery,
        limit: i64,
    ) -> Result<Vec<RecordHistory>, StoreError> {
        let mut out = Vec::new();
        // `find_record_keys` caught the backlog up for every history read after it.
        for (key, matched) in self.find_record_keys(query, limit).await? {
            if let Some(mut history) = self.history_caught_up(&key).await? {
                history.matched_fields = matched;
                out.push(history);
            }
        }
        Ok(out)
    }

    /// Every version of a record key, each with its copies, their attempts and dead letters;
    /// `None` when the store never saw the key.
    ///
    /// # Errors
    ///
    /// A query failed.
    pub async fn record_history(
        &self,
        record_key: &str,
    ) -> Result<Option<RecordHistory>, StoreError> {
        self.catch_up_lineage().await?;
        self.history_caught_up(record_key).await
    }

    /// [`Store::record_history`] once the backlog has been caught up.
    async fn history_caught_up(
        &self,
        record_key: &str,
    ) -> Result<Option<RecordHistory>, StoreError> {
        let sql = "SELECT record_version, record_index, message_id, source_adapter, doc_type, catalog_item, catalog_version, operation, status, raw_sha256, received_at, canonical, body_sha256 FROM record_versions WHERE record_key = $1 ORDER BY record_version, received_at";
        let versions: Vec<VersionRow> =
            on_pool!(&self.pool, p => sqlx::query_as(sql).bind(record_key).fetch_all(p).await?);
        if versions.is_empty() {
            return Ok(None);
        }
        let sql = "SELECT idempotency_key, destination, record_version, routed_at FROM routed_copies WHERE record_key = $1 ORDER BY routed_at, destination";
        let copies: Vec<(String, String, String, String)> =
            on_pool!(&self.pool, p => sqlx::query_as(sql).bind(record_key).fetch_all(p).await?);
        let sql = "SELECT idempotency_key, destination, attempt, outcome, reason, response, replay_of, at FROM delivery_attempts WHERE record_key = $1 ORDER BY at, attempt_id";
        let attempts: Vec<AttemptRow> =
            on_pool!(&self.pool, p => sqlx::query_as(sql).bind(record_key).fetch_all(p).await?);
        let sql = "SELECT idempotency_key, dead_id, reason_class, reason, dead_at, replay_count, replayed_at FROM dead_letters WHERE record_key = $1 ORDER BY dead_at";
        let dead: Vec<DeadRow> =
            on_pool!(&self.pool, p => sqlx::query_as(sql).bind(record_key).fetch_all(p).await?);
        let sql = "SELECT destination, record_version FROM delivered WHERE record_key = $1";
        let delivered: Vec<(String, String)> =
            on_pool!(&self.pool, p => sqlx::query_as(sql).bind(record_key).fetch_all(p).await?);

        // Bodies by version and digest, for the rows that share one (`SAME_BODY`): every row
        // of the key is here, so is the holder unless retention emptied it.
        let bodies: std::collections::HashMap<(String, String), String> = versions
            .iter()
            .filter(|row| !row.12.is_empty() && !row.11.is_empty() && row.11 != SAME_BODY)
            .map(|row| ((row.0.clone(), row.12.clone()), row.11.clone()))
            .collect();
        let mut views = Vec::with_capacity(versions.len());
        for row in versions {
            let holder = (row.11 == SAME_BODY)
                .then(|| bodies.get(&(row.0.clone(), row.12.clone())))
                .flatten();
            let canonical = match holder {
                Some(body) => {
                    let own = PerRow {
                        message_id: &row.2,
                        received_at: &row.10,
                        raw_sha256: &row.9,
                        record_version: &row.0,
                    };
                    with_own_fields(body, &own)
                }
                None => row.11,
            };
            let (version, record_index, message_id, source_adapter, doc_type, catalog_item) =
                (row.0, row.1, row.2, row.3, row.4, row.5);
            let (catalog_version, operation, status, raw_sha256, received_at) =
                (row.6, row.7, row.8, row.9, row.10);
            let sql = "SELECT status FROM inbound_messages WHERE message_id = $1";
            let receipt: Option<(String,)> = on_pool!(&self.pool, p => sqlx::query_as(sql).bind(&message_id).fetch_optional(p).await?);
            let mut version_copies = Vec::new();
            let mut seen = BTreeSet::new();
            for (idempotency_key, destination, copy_version, routed_at) in &copies {
                if *copy_version != version || !seen.insert(idempotency_key.clone()) {
                    continue;
                }
                let copy_attempts: Vec<AttemptView> = attempts
                    .iter()
                    .filter(|a| a.0 == *idempotency_key)
                    .map(|a| AttemptView {
                        attempt: a.2,
                        outcome: a.3.clone(),
                        reason: a.4.clone(),
                        response: a.5.clone(),
                        replay_of: a.6.clone(),
                        at: a.7.clone(),
                    })
                    .collect();
                let dead_letters: Vec<DeadView> = dead
                    .iter()
                    .filter(|d| d.0 == *idempotency_key)
                    .map(|d| DeadView {
                        dead_id: d.1.clone(),
                        reason_class: d.2.clone(),
                        reason: d.3.clone(),
                        dead_at: d.4.clone(),
                        replay_count: d.5,
                        replayed_at: d.6.clone(),
                    })
                    .collect();
                let status = copy_status(&copy_attempts);
                version_copies.push(CopyView {
                    destination: destination.clone(),
                    idempotency_key: idempotency_key.clone(),
                    routed_at: routed_at.clone(),
                    status,
                    attempts: copy_attempts,
                    dead_letters,
                });
            }
            views.push(VersionView {
                record_version: version,
                message_id,
                record_index,
                source_adapter,
                doc_type,
                catalog_item,
                catalog_version,
                operation,
                status,
                receipt_status: receipt.map(|(s,)| s),
                raw_sha256,
                received_at,
                canonical: serde_json::from_str(&canonical).unwrap_or(Value::Null),
                copies: version_copies,
            });
        }
        Ok(Some(RecordHistory {
            record_key: record_key.to_owned(),
            matched_fields: Vec::new(),
            versions: views,
            delivered: delivered.into_iter().collect(),
        }))
    }
}

/// Where a copy stands, from its attempts: a delivered copy stays delivered whatever a later
/// replay found; otherwise the last attempt says.
fn copy_status(attempts: &[AttemptView]) -> String {
    if attempts.iter().any(|a| a.outcome == "delivered") {
        return "delivered".to_owned();
    }
    match attempts.last().map(|a| a.outcome.as_str()) {
        None => "queued".to_owned(),
        Some("retry") => "retrying".to_owned(),
        Some(other) => other.to_owned(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// The body digest by its definition: SHA-256 of `to_json_string` without the [`PER_ROW`]
    /// entries, whatever the row (what [`serialise`] must agree with).
    fn body_digest(record: &CanonicalRecord) -> String {
        let mut out = Vec::new();
        let mut per_row = Vec::new();
        record.write_json(&mut out, |entry| {
            if PER_ROW.contains(&entry.key) {
                per_row.push(entry.span);
            }
        });
        digest_without(&out, &per_row)
    }

    fn record(envelope: Value, fields: Value) -> CanonicalRecord {
        let map = |v: Value| v.as_object().cloned().unwrap_or_default();
        CanonicalRecord { envelope: map(envelope), fields: map(fields) }
    }

    /// One pass gives the same bytes as `to_json_string`, the digest of those bytes without
    /// the receipt's own entries, and the envelope values kept in columns; a record whose
    /// receipt entries differ from the row's, or are shadowed by a field, keeps its body.
    #[test]
    fn serialise_is_to_json_string_and_its_body_digest() {
        let envelope = |message_id: &str| {
            serde_json::json!({
                "catalog_item": "admin_penalty", "catalog_version": "1.0", "record_key": "admin_penalty:k",
                "record_version": "v1", "operation": "upsert", "source_org_uscc": "E",
                "received_at": "t1", "message_id": message_id, "raw_sha256": "r1"
            })
        };
        let fields = serde_json::json!({"source_org_uscc": "F", "penalty_content": "罚款\"一万\"", "amount": 1.5});
        let row = |message_id| PerRow {
            message_id,
            received_at: "t1",
            raw_sha256: "r1",
            record_version: "v1",
        };
        let first = record(envelope("m-1"), fields.clone());
        let one = serialise(&first, &row("m-1"));
        assert_eq!(one.canonical, first.to_json_string());
        assert!(one.canonical.contains(r#""source_org_uscc":"F""#), "the field shadows");
        assert_eq!(one.body_sha256, body_digest(&first));
        assert_eq!(
            (one.record_key, one.catalog_item, one.catalog_version, one.operation),
            ("admin_penalty:k", "admin_penalty", "1.0", "upsert")
        );
        // The same content under another message id: the same digest, other bytes.
        let second = record(envelope("m-2"), fields.clone());
        let two = serialise(&second, &row("m-2"));
        assert_eq!(two.body_sha256, one.body_sha256);
        assert_ne!(two.canonical, one.canonical);
        // Other content: another digest.
        let other = record(envelope("m-1"), serde_json::json!({"penalty_content": "警告"}));
        assert_ne!(serialise(&other, &row("m-1")).body_sha256, one.body_sha256);
        // The row's own fields must be the envelope's, unshadowed, for the body to be shared.
        assert_eq!(serialise(&first, &row("m-9")).body_sha256, "");
        let shadowed = record(envelope("m-1"), serde_json::json!({"message_id": "m-1"}));
        assert_eq!(serialise(&shadowed, &row("m-1")).body_sha256, "");
        let unshadowed = record(envelope("m-1"), serde_json::json!({}));
        let three = serialise(&unshadowed, &row("m-1"));
        assert_eq!(three.canonical, unshadowed.to_json_string());
        assert_eq!(three.body_sha256.len(), 64);
    }

    #[test]
    fn identifiers_are_found_by_field_name_including_nested_ones() {
        let fields: serde_json::Map<String, Value> = serde_json::from_value(serde_json::json!({
            "subject_uscc": " 91420100ma4p7q8r8n ",
            "legal_rep_id_no": "420111198501011234",
            "decision_doc_no": "鄂公管罚[2026]第0032号",
            "unified_deal_code": "a1",
            "transfer_from_uscc": "00000000000000000X",
            "candidates": [{"uscc": "91420100MA4P7Q8R8N", "rank": 1}],
            "subject_name": "某公司"
        }))
        .unwrap();
        let entries = index_entries(&fields);
        let found: Vec<(IndexKind, &str, &str)> =
            entries.iter().map(|e| (e.kind, e.field.as_str(), e.value.as_str())).collect();
        assert_eq!(
            found,
            vec![
                (IndexKind::Uscc, "candidates.uscc", "91420100MA4P7Q8R8N"),
                (IndexKind::Uscc, "subject_uscc", "91420100MA4P7Q8R8N"),
                (IndexKind::IdNo, "legal_rep_id_no", "420111198501011234"),
                (IndexKind::DocNo, "decision_doc_no", "鄂公管罚〔2026〕32号"),
                (IndexKind::DealCode, "unified_deal_code", "A1"),
            ]
        );
        // Debug output of an entry never carries the value.
        assert!(!format!("{entries:?}").contains("420111198501011234"));
    }

    #[test]
    fn one_index_row_per_distinct_value_naming_every_field() {
        let entry = |kind, field: &str, value: &str| IndexEntry {
            kind,
            field: field.into(),
            value: value.into(),
        };
        let entries = vec![
            entry(IndexKind::Uscc, "authority_uscc", "A"),
            entry(IndexKind::Uscc, "source_org_uscc", "A"),
            entry(IndexKind::Uscc, "subject_uscc", "B"),
            entry(IndexKind::DocNo, "decision_doc_no", "A"),
        ];
        assert_eq!(
            index_rows(&entries).iter().map(|(k, v, f)| (*k, *v, f.clone())).collect::<Vec<_>>(),
            vec![
                (IndexKind::Uscc, "A", "authority_uscc,source_org_uscc".to_owned()),
                (IndexKind::Uscc, "B", "subject_uscc".to_owned()),
                (IndexKind::DocNo, "A", "decision_doc_no".to_owned()),
            ]
        );
    }

    #[test]
    fn chunks_come_in_few_shapes() {
        let items: Vec<usize> = (0..250).collect();
        let sizes: Vec<usize> = shaped_chunks(&items, 64).iter().map(|c| c.len()).collect();
        assert_eq!(sizes, vec![64, 64, 64, 32, 16, 8, 2]);
        assert_eq!(sizes.iter().sum::<usize>(), 250);
        assert!(shaped_chunks::<usize>(&[], 64).is_empty());
        let flat: Vec<usize> = shaped_chunks(&items, 64).concat();
        assert_eq!(flat, items);
    }

    #[test]
    fn hasher_matches_index_value() {
        let hasher = IndexHasher::new("k1");
        assert_eq!(
            hasher.value(IndexKind::Uscc, "91420100MA4P7Q8R8N"),
            index_value("k1", IndexKind::Uscc, "91420100MA4P7Q8R8N")
        );
    }

    #[test]
    fn persons_and_companies_are_hashed_with_the_key_documents_are_not() {
        let a = index_value("k1", IndexKind::IdNo, "420111198501011234");
        let b = index_value("k2", IndexKind::IdNo, "420111198501011234");
        assert_ne!(a, b, "the hash depends on the store's key");
        assert!(!a.contains("4201"));
        assert_eq!(index_value("k1", IndexKind::DocNo, "x〔2026〕1号"), "x〔2026〕1号");
    }
}
