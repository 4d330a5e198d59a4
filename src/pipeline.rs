//! The pure pipeline: raw document → decode → map → validate → route → encode, producing the
//! canonical records, the outbound copies per destination and the receipt — without any IO.
//! The runtime (AMQP and HTTP ingest) and the offline commands (`validate`, `test`, `import`)
//! all call `process`, so they cannot disagree.

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::config::CompiledConfig;
use crate::decode::{self, DecodeOptions};
use crate::domain::ids;
use crate::domain::rules::RuleContext;
use crate::encode;
use crate::record::{Fields, Finding, Severity, Violation};
use crate::route::{RouteDecision, RouteInput};

/// China has kept UTC+8 without daylight saving since 1991; a fixed offset avoids depending on
/// the host's tz database for `received_at`.
pub fn shanghai() -> jiff::tz::TimeZone {
    jiff::tz::TimeZone::fixed(jiff::tz::offset(8))
}

/// RFC 3339 in Asia/Shanghai offset, e.g. `2026-11-23T17:28:30.123+08:00`.
pub fn rfc3339_shanghai(ts: jiff::Timestamp) -> String {
    let tz = shanghai();
    let dt = tz.to_datetime(ts);
    if let (Ok(year), Ok(millis)) =
        (u16::try_from(dt.year()), u16::try_from(dt.subsec_nanosecond() / 1_000_000))
        && year <= 9999
    {
        // What the `strftime` below writes, digit by digit instead of through its format
        // interpreter (test `rfc3339_matches_strftime`): four-digit year, truncated
        // milliseconds, the fixed +08:00 offset.
        let mut out = String::with_capacity(29);
        push_digits(&mut out, year, 4);
        out.push('-');
        push_digits(&mut out, dt.month().unsigned_abs().into(), 2);
        out.push('-');
        push_digits(&mut out, dt.day().unsigned_abs().into(), 2);
        out.push('T');
        push_digits(&mut out, dt.hour().unsigned_abs().into(), 2);
        out.push(':');
        push_digits(&mut out, dt.minute().unsigned_abs().into(), 2);
        out.push(':');
        push_digits(&mut out, dt.second().unsigned_abs().into(), 2);
        out.push('.');
        push_digits(&mut out, millis, 3);
        out.push_str("+08:00");
        return out;
    }
    ts.to_zoned(tz).strftime("%Y-%m-%dT%H:%M:%S%.3f%:z").to_string()
}

/// `value` in decimal, zero-padded to `width` digits (the value has at most that many).
fn push_digits(out: &mut String, value: u16, width: u32) {
    for place in (0..width).rev() {
        let digit = (value / 10u16.pow(place)) % 10;
        out.push(char::from(b'0' + digit as u8));
    }
}

/// One inbound document with its transport metadata.
#[derive(Debug, Clone)]
pub struct Inbound<'a> {
    pub adapter: &'a str,
    pub doc_type: &'a str,
    pub body: &'a [u8],
    /// `content_type` property or header, if any (`application/json; charset=gb18030`).
    pub content_type: Option<&'a str>,
    pub message_id: &'a str,
    pub correlation_id: Option<&'a str>,
    pub received_at: jiff::Timestamp,
    /// When the source published the document (AMQP `timestamp`), if it said. Without a
    /// version field in the mapping this is the record version, so a redelivery of the same
    /// message yields the same version — and the same outbound idempotency keys.
    pub source_timestamp: Option<jiff::Timestamp>,
}

/// Status of a whole inbound message in its receipt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReceiptStatus {
    Accepted,
    AcceptedWithWarnings,
    Rejected,
    Duplicate,
}

/// Status of one record in a receipt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecordStatus {
    Accepted,
    AcceptedWithWarnings,
    Rejected,
}

/// An envelope entry as [`CanonicalRecord::write_json`] wrote it.
#[derive(Debug)]
pub struct EnvelopeEntry<'a> {
    pub key: &'a str,
    /// The envelope's value (what was written, unless `shadowed`).
    pub value: &'a Value,
    /// A field of the same name supplied the value written.
    pub shadowed: bool,
    /// Where the entry is in the output, with the comma before it if any.
    pub span: std::ops::Range<usize>,
}

/// A validated canonical record: envelope keys and catalog fields.
#[derive(Debug, Clone, PartialEq)]
pub struct CanonicalRecord {
    pub envelope: Map<String, Value>,
    pub fields: Fields,
}

impl CanonicalRecord {
    pub fn get_str(&self, key: &str) -> &str {
        self.envelope.get(key).and_then(Value::as_str).unwrap_or_default()
    }

    pub fn record_key(&self) -> &str {
        self.get_str("record_key")
    }

    pub fn record_version(&self) -> &str {
        self.get_str("record_version")
    }

    /// `serde_json::to_string(&self.to_json())`, the same bytes, without building the merged
    /// map first (lineage stores this for every accepted record): envelope keys in their order,
    /// a field of the same name supplying the value, then the other fields.
    pub fn to_json_string(&self) -> String {
        let mut out = Vec::with_capacity(2048);
        self.write_json(&mut out, |_| {});
        // serde_json writes UTF-8 only.
        String::from_utf8(out).unwrap_or_default()
    }

    /// Writes [`Self::to_json_string`]'s bytes to `out` and tells `seen` about each envelope
    /// entry as written: one pass over the record for callers that also want a few envelope
    /// values or the byte span of an entry (lineage's body digest leaves some out).
    pub fn write_json<'a>(&'a self, out: &mut Vec<u8>, mut seen: impl FnMut(EnvelopeEntry<'a>)) {
        let CanonicalRecord { envelope, fields } = self;
        // The envelope keys a field of the same name shadows (usually `source_org_uscc` or
        // none): one lookup per envelope key, and the fields are then told apart by comparing
        // with those few names instead of a hash lookup each (SipHash lookups were a third of
        // lineage's row building).
        let shadowed: Vec<(&str, &Value)> = envelope
            .keys()
            .filter_map(|key| fields.get_key_value(key))
            .map(|(key, value)| (key.as_str(), value))
            .collect();
        out.push(b'{');
        let entry = |out: &mut Vec<u8>, key: &str, value: &Value| {
            if out.len() > 1 {
                out.push(b',');
            }
            // Writing strings and JSON values into a Vec cannot fail.
            let _ = serde_json::to_writer(&mut *out, key);
            out.push(b':');
            let _ = serde_json::to_writer(&mut *out, value);
        };
        for (key, value) in envelope {
            let start = out.len();
            let field = shadowed.iter().find(|(name, _)| name == key).map(|(_, value)| *value);
            entry(out, key, field.unwrap_or(value));
            seen(EnvelopeEntry { key, value, shadowed: field.is_some(), span: start..out.len() });
        }
        for (key, value) in fields {
            if !shadowed.iter().any(|(name, _)| name == key) {
                entry(out, key, value);
            }
        }
        out.push(b'}');
    }

    /// The flat JSON of contract §3.
    pub fn to_json(&self) -> Value {
        let mut flat = self.envelope.clone();
        for (k, v) in &self.fields {
            flat.insert(k.clone(), v.clone());
        }
        Value::Object(flat)
    }
}

/// One copy of a record for one destination.
#[derive(Debug, Clone)]
pub struct OutboundCopy {
    pub destination: String,
    /// Stable across redeliveries: destination + record key + record version.
    pub idempotency_key: String,
    pub content_type: &'static str,
    pub payload: Vec<u8>,
}

/// What the pipeline made of one record of the document.
#[derive(Debug, Clone)]
pub struct ProcessedRecord {
    pub index: usize,
    /// Where the record is in the input when that is more useful than its index (`row 4`).
    pub location: Option<String>,
    pub status: RecordStatus,
    pub violations: Vec<Violation>,
    pub record: Option<CanonicalRecord>,
    pub route: Option<RouteDecision>,
    pub copies: Vec<OutboundCopy>,
}

/// What the pipeline made of one inbound document.
#[derive(Debug, Clone)]
pub struct Processed {
    pub status: ReceiptStatus,
    /// Violations that reject the whole document (undecodable, unknown document type).
    pub document_violations: Vec<Violation>,
    pub records: Vec<ProcessedRecord>,
    pub raw_sha256: String,
}

/// The receipt (回执) of contract §5.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Receipt {
    pub message_id: String,
    pub correlation_id: Option<String>,
    pub adapter: String,
    pub doc_type: String,
    pub status: ReceiptStatus,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub violations: Vec<Violation>,
    pub records: Vec<ReceiptRecord>,
    pub routed_to: Vec<String>,
    pub received_at: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ReceiptRecord {
    pub index: usize,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    pub record_key: Option<String>,
    pub status: RecordStatus,
    pub violations: Vec<Violation>,
}

/// Runs the whole pure pipeline on one document.
pub fn process(config: &CompiledConfig, inbound: &Inbound<'_>) -> Processed {
    let raw_sha256 = hex::encode(Sha256::digest(inbound.body));
    let reject = |rule: &str, message: String| Processed {
        status: ReceiptStatus::Rejected,
        document_violations: vec![Violation {
            rule: rule.to_owned(),
            path: String::new(),
            field: String::new(),
            code: None,
            message,
            severity: Severity::Error,
        }],
        records: Vec::new(),
        raw_sha256: raw_sha256.clone(),
    };
    let Some(adapter) = config.adapters.get(inbound.adapter) else {
        return reject("ADAPTER", format!("未知的适配器 {}", inbound.adapter));
    };
    let Some(doc) = adapter.inbound.get(inbound.doc_type) else {
        return reject(
            "DOC-TYPE",
            format!("适配器 {} 未声明文档类型 {}", inbound.adapter, inbound.doc_type),
        );
    };
    // Borrowed: a copy is only needed when the content type names another charset.
    let mut options: Cow<'_, DecodeOptions> = Cow::Borrowed(&doc.decode);
    if let Some(content_type) = inbound.content_type {
        match decode::parse_content_type(content_type) {
            Ok((codec, charset)) => {
                if let Some(codec) = codec
                    && codec != options.codec
                {
                    return reject(
                        "DECODE",
                        format!("content_type {content_type} 与文档类型声明的编码格式不符"),
                    );
                }
                if charset.is_some() && charset != options.charset {
                    options.to_mut().charset = charset;
                }
            }
            Err(error) => return reject("DECODE", format!("content_type 无效：{error}")),
        }
    }
    let decoded = match decode::decode(inbound.body, &options) {
        Ok(d) => d,
        Err(error) => {
            return reject("DECODE", format!("文档无法解析（{}）：{error}", error.code()));
        }
    };

    let received_at = rfc3339_shanghai(inbound.received_at);
    let received_date = inbound.received_at.to_zoned(shanghai()).date();
    let rule_ctx =
        RuleContext { received_at_date: received_date, working_days: Some(&config.calendar) };
    let item = &doc.mapper.item;
    let is_csv = options.codec == decode::Codec::Csv;
    // CSV rows are what people open in a spreadsheet: the header is row 1.
    let location = |index: usize| is_csv.then(|| format!("row {}", index + 2));
    let mut records = Vec::with_capacity(decoded.len());
    for (index, result) in decoded.into_iter().enumerate() {
        let document = match result {
            Ok(d) => d,
            Err(error) => {
                records.push(ProcessedRecord {
                    index,
                    location: location(index),
                    status: RecordStatus::Rejected,
                    violations: vec![Violation {
                        rule: "DECODE".into(),
                        path: error.location.clone(),
                        field: String::new(),
                        code: None,
                        message: error.message.clone(),
                        severity: Severity::Error,
                    }],
                    record: None,
                    route: None,
                    copies: Vec::new(),
                });
                continue;
            }
        };
        let mut mapped = doc.mapper.map(&document);
        let mut violations: Vec<Violation> =
            mapped.findings.into_iter().map(|f| crate::validate::label(item, f)).collect();
        violations.extend(crate::validate::validate(item, &mut mapped.fields, &rule_ctx));
        if mapped.retract {
            // The publication deadline concerns publishing, not withdrawing.
            violations.retain(|v| v.rule != "SG-12");
        }
        let has_error = violations.iter().any(|v| v.severity == Severity::Error);
        let record_key = record_key(item, &mapped.fields);
        if has_error {
            records.push(ProcessedRecord {
                index,
                location: location(index),
                status: RecordStatus::Rejected,
                violations,
                // Only coordinates: the record key, and the organisation the data names as its
                // source (what the compliance scorecard counts the rejection against).
                record: record_key.map(|key| CanonicalRecord {
                    envelope: Map::from_iter([
                        ("record_key".to_owned(), Value::String(key)),
                        (
                            "source_org_uscc".to_owned(),
                            mapped
                                .fields
                                .get("source_org_uscc")
                                .and_then(Value::as_str)
                                .unwrap_or(&adapter.org_uscc)
                                .into(),
                        ),
                    ]),
                    fields: Map::new(),
                }),
                route: None,
                copies: Vec::new(),
            });
            continue;
        }
        let record_key = record_key.unwrap_or_default();
        let operation = if mapped.retract { "retract" } else { "upsert" };
        let source_org = mapped
            .fields
            .get("source_org_uscc")
            .and_then(Value::as_str)
            .unwrap_or(&adapter.org_uscc)
            .to_owned();
        // Ten keys, eleven with `normalized_from`: no growing and rehashing on the way.
        let mut envelope = Map::with_capacity(11);
        envelope.insert("catalog_item".into(), item.item.clone().into());
        envelope.insert("catalog_version".into(), item.version.clone().into());
        envelope.insert("record_key".into(), record_key.clone().into());
        envelope.insert(
            "record_version".into(),
            mapped
                .version
                .clone()
                // The publisher's clock has second resolution: the message id breaks ties
                // so two documents of one second stay two versions, while a redelivery of
                // the same message keeps its version (and its outbound idempotency keys).
                .or_else(|| {
                    inbound
                        .source_timestamp
                        .map(|ts| format!("{}#{}", rfc3339_shanghai(ts), inbound.message_id))
                })
                .unwrap_or_else(|| received_at.clone())
                .into(),
        );
        envelope.insert("operation".into(), operation.into());
        envelope.insert("source_adapter".into(), adapter.id.clone().into());
        envelope.insert("source_org_uscc".into(), source_org.into());
        envelope.insert("received_at".into(), received_at.clone().into());
        envelope.insert("message_id".into(), inbound.message_id.into());
        envelope.insert("raw_sha256".into(), raw_sha256.clone().into());
        if !mapped.normalized_from.is_empty() {
            envelope.insert(
                "normalized_from".into(),
                Value::Object(
                    mapped
                        .normalized_from
                        .iter()
                        .map(|(k, v)| (k.clone(), v.clone().into()))
                        .collect(),
                ),
            );
        }
        let record = CanonicalRecord { envelope, fields: mapped.fields };
        let decision = config.router.route(&RouteInput {
            catalog_item: &item.item,
            operation,
            source_adapter: &adapter.id,
            fields: &record.fields,
        });
        let mut copies = Vec::new();
        match &decision {
            RouteDecision::To(destinations) => {
                for dest_id in destinations {
                    let key = idempotency_key(dest_id, &record_key, record.record_version());
                    copies.extend(encode_copy(config, item, &record, dest_id, key));
                }
            }
            RouteDecision::Unmatched => violations.push(crate::validate::label(
                item,
                Finding::warning(
                    "ROUTE-UNMATCHED",
                    "",
                    "没有路由规则匹配该记录，已转入未路由队列待处理",
                ),
            )),
        }
        let status = if violations.is_empty() {
            RecordStatus::Accepted
        } else {
            RecordStatus::AcceptedWithWarnings
        };
        records.push(ProcessedRecord {
            index,
            location: location(index),
            status,
            violations,
            record: Some(record),
            route: Some(decision),
            copies,
        });
    }
    let status = overall_status(&records);
    Processed { status, document_violations: Vec::new(), records, raw_sha256 }
}

fn overall_status(records: &[ProcessedRecord]) -> ReceiptStatus {
    if records.is_empty() || records.iter().all(|r| r.status == RecordStatus::Rejected) {
        ReceiptStatus::Rejected
    } else if records.iter().all(|r| r.status == RecordStatus::Accepted) {
        ReceiptStatus::Accepted
    } else {
        ReceiptStatus::AcceptedWithWarnings
    }
}

/// `<item>:<identity values joined by |>`, with document numbers in their identity form so
/// that bracket and `第` variants of the same decision share a key.
pub fn record_key(item: &crate::catalog::CatalogItem, fields: &Fields) -> Option<String> {
    // Written straight into the key: no list of parts, no join, no copy of plain values.
    let mut key = String::with_capacity(item.item.len() + 64);
    key.push_str(&item.item);
    key.push(':');
    for (i, name) in item.identity.iter().enumerate() {
        let value = match fields.get(name)? {
            Value::String(s) => Cow::Borrowed(s.as_str()),
            other => Cow::Owned(crate::map::scalar_text(other)?),
        };
        if value.is_empty() {
            return None;
        }
        if i > 0 {
            key.push('|');
        }
        if name.ends_with("doc_no") {
            key.push_str(&ids::doc_no_identity(&value));
        } else {
            key.push_str(&value);
        }
    }
    Some(key)
}

/// One destination's copy of a record: released (masked) and rendered with that destination's
/// policy and format. `None` when `dest_id` is not a destination. The lifecycle step renders
/// the records it generates (retractions, credit warnings) through this too.
pub fn encode_copy(
    config: &CompiledConfig,
    item: &crate::catalog::CatalogItem,
    record: &CanonicalRecord,
    dest_id: &str,
    idempotency_key: String,
) -> Option<OutboundCopy> {
    let dest = config.adapters.get(dest_id).and_then(|a| a.destination.as_ref())?;
    let released = dest.policy.release(item, &record.fields);
    let payload =
        encode::render_released(dest.format, item, &record.envelope, &released).unwrap_or_default();
    Some(OutboundCopy {
        destination: dest_id.to_owned(),
        idempotency_key,
        content_type: dest.format.content_type(),
        payload,
    })
}

/// The outbound idempotency key: a digest of destination, record key and record version.
pub fn idempotency_key(destination: &str, record_key: &str, record_version: &str) -> String {
    let mut hasher = Sha256::new();
    hasher.update(destination.as_bytes());
    hasher.update([0]);
    hasher.update(record_key.as_bytes());
    hasher.update([0]);
    hasher.update(record_version.as_bytes());
    hex::encode(&hasher.finalize()[..16])
}

impl Processed {
    /// The receipt answering the source.
    pub fn receipt(&self, inbound: &Inbound<'_>) -> Receipt {
        let mut routed: Vec<String> = self
            .records
            .iter()
            .flat_map(|r| r.copies.iter().map(|c| c.destination.clone()))
            .collect();
        routed.sort();
        routed.dedup();
        Receipt {
            message_id: inbound.message_id.to_owned(),
            correlation_id: inbound.correlation_id.map(str::to_owned),
            adapter: inbound.adapter.to_owned(),
            doc_type: inbound.doc_type.to_owned(),
            status: self.status,
            violations: self.document_violations.clone(),
            records: self
                .records
                .iter()
                .map(|r| ReceiptRecord {
                    index: r.index,
                    location: r.location.clone(),
                    record_key: r.record.as_ref().map(|c| c.record_key().to_owned()),
                    status: r.status,
                    violations: r.violations.clone(),
                })
                .collect(),
            routed_to: routed,
            received_at: rfc3339_shanghai(inbound.received_at),
        }
    }

    /// Copies per destination, for reporting.
    pub fn copies_by_destination(&self) -> BTreeMap<String, usize> {
        let mut counts = BTreeMap::new();
        for copy in self.records.iter().flat_map(|r| &r.copies) {
            *counts.entry(copy.destination.clone()).or_insert(0) += 1;
        }
        counts
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn canonical_string_is_the_flat_json() {
        let map = |v: Value| v.as_object().unwrap().clone();
        let record = CanonicalRecord {
            envelope: map(serde_json::json!({
                "record_key": "k", "source_org_uscc": "envelope", "catalog_item": "admin_penalty",
                "note": "引号\"与\n换行"
            })),
            fields: map(serde_json::json!({
                "subject_name": "某公司", "source_org_uscc": "field", "amount": 1.5,
                "candidates": [{"uscc": "X", "rank": 1}], "empty": null
            })),
        };
        let expected = serde_json::to_string(&record.to_json()).unwrap();
        assert_eq!(record.to_json_string(), expected);
        assert!(expected.starts_with(r#"{"record_key":"k","source_org_uscc":"field","#));
        let empty = CanonicalRecord { envelope: Map::new(), fields: Map::new() };
        assert_eq!(empty.to_json_string(), "{}");
    }

    #[test]
    fn rfc3339_matches_strftime() {
        let reference = |ts: jiff::Timestamp| {
            ts.to_zoned(shanghai()).strftime("%Y-%m-%dT%H:%M:%S%.3f%:z").to_string()
        };
        let mut seconds: i64 = -62_167_219_200 - 86_400; // just before 0000-01-01 (UTC)
        let mut nanos: i32 = 0;
        while seconds < 253_402_300_800 + 86_400 {
            let ts = jiff::Timestamp::new(seconds, nanos).unwrap();
            assert_eq!(rfc3339_shanghai(ts), reference(ts), "{seconds} {nanos}");
            seconds += 7_777_777;
            nanos = (nanos + 123_456_789) % 1_000_000_000;
        }
        for (s, n) in [(0, 0), (0, 999_999_999), (-1, 999_000_000), (1_790_000_000, 1_000_000)] {
            let ts = jiff::Timestamp::new(s, n).unwrap();
            assert_eq!(rfc3339_shanghai(ts), reference(ts));
        }
        assert_eq!(
            rfc3339_shanghai("2026-09-30T02:00:00.123456Z".parse().unwrap()),
            "2026-09-30T10:00:00.123+08:00"
        );
    }
}
