//! The decode stage: raw bytes plus the declared content metadata in, one result per record out.
//!
//! This stage is pure (no IO, no clock, no async) so it can run inside `spawn_blocking` and be
//! fuzzed and property-tested in isolation. Everything an untrusted source can send is bounded
//! here before any record reaches mapping (reliability.md §9):
//!
//! * size is checked before a single byte is decoded ([`DecodeLimits::max_bytes`]);
//! * text must be valid in the declared charset — malformed bytes are an error with their byte
//!   offset, never U+FFFD mojibake; undeclared input must be UTF-8;
//! * nesting depth, fields per record, records per document and bytes per field are capped;
//! * XML `DOCTYPE`s, and with them every entity-expansion and external-entity attack, are refused.
//!
//! Errors come in two grains: [`DecodeError`] rejects the whole document (the caller answers 4xx
//! and nothing is forwarded), [`RecordDecodeError`] rejects one record and its siblings go on.

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

use encoding_rs::{DecoderResult, GB18030};
use serde::{Deserialize, Deserializer, Serialize};

use crate::record::Document;

mod csv;
mod json;
mod xml;

/// Wire format of a document.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Codec {
    Json,
    Xml,
    Csv,
}

impl Codec {
    pub fn as_str(self) -> &'static str {
        match self {
            Codec::Json => "json",
            Codec::Xml => "xml",
            Codec::Csv => "csv",
        }
    }
}

impl fmt::Display for Codec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Text encoding of a document. GBK and GB2312 labels map to [`Charset::Gb18030`]: GB18030 is a
/// superset of both, so decoding with it accepts every valid GBK byte sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String")]
pub enum Charset {
    #[serde(rename = "utf-8")]
    Utf8,
    #[serde(rename = "gb18030")]
    Gb18030,
}

impl Charset {
    pub fn as_str(self) -> &'static str {
        match self {
            Charset::Utf8 => "utf-8",
            Charset::Gb18030 => "gb18030",
        }
    }
}

impl fmt::Display for Charset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Charset {
    type Err = DecodeError;

    /// Accepts labels case-insensitively; anything we cannot decode without loss is refused
    /// rather than guessed.
    fn from_str(label: &str) -> Result<Self, Self::Err> {
        let l = label.trim().trim_matches('"');
        if ["utf-8", "utf8", "us-ascii", "ascii"].iter().any(|c| l.eq_ignore_ascii_case(c)) {
            Ok(Charset::Utf8)
        } else if ["gb18030", "gbk", "gb2312", "x-gbk", "cp936"]
            .iter()
            .any(|c| l.eq_ignore_ascii_case(c))
        {
            Ok(Charset::Gb18030)
        } else {
            Err(DecodeError::Charset {
                offset: None,
                message: format!("unsupported charset {:?}", truncate(l, 40)),
            })
        }
    }
}

impl TryFrom<String> for Charset {
    type Error = String;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse().map_err(|e: DecodeError| e.to_string())
    }
}

/// Everything [`decode`] needs besides the bytes.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DecodeOptions {
    pub codec: Codec,
    /// Declared by the adapter config or the `Content-Type`; `None` means the input must be
    /// UTF-8 (for XML, an `encoding` in the XML declaration may still declare GB18030).
    #[serde(default)]
    pub charset: Option<Charset>,
    #[serde(default)]
    pub limits: DecodeLimits,
    #[serde(default)]
    pub xml: XmlOptions,
    #[serde(default)]
    pub csv: CsvOptions,
}

impl DecodeOptions {
    /// Options for `codec` with default limits and no declared charset.
    pub fn new(codec: Codec) -> Self {
        DecodeOptions {
            codec,
            charset: None,
            limits: DecodeLimits::default(),
            xml: XmlOptions::default(),
            csv: CsvOptions::default(),
        }
    }

    pub fn with_charset(mut self, charset: Option<Charset>) -> Self {
        self.charset = charset;
        self
    }
}

/// Hard bounds on untrusted input. Every limit is checked while reading, so an attack document
/// costs at most a linear pass over `max_bytes`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DecodeLimits {
    /// Size of the raw input, checked before decoding.
    pub max_bytes: usize,
    /// Nesting of objects/arrays (JSON) or elements (XML); the document's top level is depth 1.
    pub max_depth: usize,
    /// Keys, array elements and XML attributes/child elements in one record, nested ones
    /// included; for CSV, the number of columns.
    pub max_fields: usize,
    pub max_records: usize,
    /// Bytes of one string value (UTF-8, after decoding).
    pub max_field_bytes: usize,
}

impl Default for DecodeLimits {
    fn default() -> Self {
        DecodeLimits {
            max_bytes: 8 * 1024 * 1024,
            max_depth: 32,
            max_fields: 512,
            max_records: 100_000,
            max_field_bytes: 64 * 1024,
        }
    }
}

/// XML record selection.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct XmlOptions {
    /// Local name of the element whose occurrences are records (outermost occurrences only).
    /// `None`: the root's children if there are at least two and all share one name,
    /// otherwise the root itself is the single record.
    pub record_element: Option<String>,
}

/// CSV dialect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CsvOptions {
    /// Field separator; configured as a one-character ASCII string (`","`, `";"`, `"\t"`).
    #[serde(deserialize_with = "de_delimiter")]
    pub delimiter: u8,
}

impl Default for CsvOptions {
    fn default() -> Self {
        CsvOptions { delimiter: b',' }
    }
}

fn de_delimiter<'de, D: Deserializer<'de>>(d: D) -> Result<u8, D::Error> {
    let s = String::deserialize(d)?;
    match s.as_bytes() {
        [b] if b.is_ascii() && !matches!(b, b'"' | b'\r' | b'\n') => Ok(*b),
        _ => Err(serde::de::Error::custom(format!(
            "csv delimiter must be one ASCII character other than a quote or newline, got {s:?}"
        ))),
    }
}

/// The whole document is rejected; nothing from it may be forwarded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    #[error("input is {size} bytes, over the limit of {limit}")]
    TooLarge { size: usize, limit: usize },
    #[error("unusable content type {value:?}: {message}")]
    ContentType { value: String, message: String },
    /// Bytes that are not valid text in the (declared or required) charset, or an unsupported
    /// or conflicting charset declaration (`offset` is then `None`).
    #[error("{message}{}", offset.map(|o| format!(" (at byte {o})")).unwrap_or_default())]
    Charset { offset: Option<usize>, message: String },
    #[error("document is empty")]
    Empty,
    #[error("{codec} syntax error at {position}: {message}")]
    Syntax { codec: Codec, position: String, message: String },
    #[error("nesting deeper than {limit} levels at {position}")]
    Depth { limit: usize, position: String },
    #[error("more than {limit} fields in one record at {position}")]
    TooManyFields { limit: usize, position: String },
    #[error("more than {limit} records in one document")]
    TooManyRecords { limit: usize },
    #[error("duplicate key {key:?} at {position}")]
    DuplicateKey { key: String, position: String },
    #[error("xml document type declarations (DOCTYPE) are not accepted")]
    Doctype,
    #[error("xml entity or character reference &{name}; is not allowed at {position}")]
    Entity { name: String, position: String },
    #[error("bad csv header: {message}")]
    Header { message: String },
    #[error("unexpected document shape: {message}")]
    Shape { message: String },
}

impl DecodeError {
    /// Stable, low-cardinality code for metrics labels and receipts.
    pub fn code(&self) -> &'static str {
        match self {
            DecodeError::TooLarge { .. } => "too_large",
            DecodeError::ContentType { .. } => "content_type",
            DecodeError::Charset { .. } => "charset",
            DecodeError::Empty => "empty",
            DecodeError::Syntax { .. } => "syntax",
            DecodeError::Depth { .. } => "depth",
            DecodeError::TooManyFields { .. } => "too_many_fields",
            DecodeError::TooManyRecords { .. } => "too_many_records",
            DecodeError::DuplicateKey { .. } => "duplicate_key",
            DecodeError::Doctype => "doctype",
            DecodeError::Entity { .. } => "entity",
            DecodeError::Header { .. } => "header",
            DecodeError::Shape { .. } => "shape",
        }
    }
}

/// One record is rejected; the others in the document are unaffected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{location}: {message}")]
pub struct RecordDecodeError {
    /// 0-based position among the document's records (CSV: data rows).
    pub index: usize,
    /// Human-facing, 1-based: `"row 7"` for CSV (the header is row 1, so the first data row is
    /// row 2), `"record 3"` otherwise (the third record, `index` 2).
    pub location: String,
    pub message: String,
}

impl RecordDecodeError {
    pub(crate) fn record(index: usize, message: impl Into<String>) -> Self {
        RecordDecodeError {
            index,
            location: format!("record {}", index + 1),
            message: message.into(),
        }
    }
}

/// What [`decode`] yields per record.
pub type RecordResult = Result<Document, RecordDecodeError>;

/// Parses a `Content-Type` header value into the codec (if the media type names one) and the
/// charset parameter (if present). Unknown media types give `None` so the adapter's configured
/// codec decides; an unknown charset is an error because decoding with a guess corrupts text.
pub fn parse_content_type(ct: &str) -> Result<(Option<Codec>, Option<Charset>), DecodeError> {
    let bad = |message: &str| DecodeError::ContentType {
        value: truncate(ct, 80).to_owned(),
        message: message.to_owned(),
    };
    let mut parts = ct.split(';');
    let media = parts.next().unwrap_or_default().trim().to_ascii_lowercase();
    let Some((kind, sub)) = media.split_once('/') else {
        return Err(bad("media type must look like type/subtype"));
    };
    if kind.is_empty() || sub.is_empty() {
        return Err(bad("media type must look like type/subtype"));
    }
    let codec = match (kind, sub) {
        (_, "json" | "x-ndjson" | "ndjson" | "jsonl" | "x-jsonlines" | "jsonlines") => {
            Some(Codec::Json)
        }
        (_, "xml") => Some(Codec::Xml),
        ("text" | "application", "csv" | "x-csv") => Some(Codec::Csv),
        (_, s) if s.ends_with("+json") => Some(Codec::Json),
        (_, s) if s.ends_with("+xml") => Some(Codec::Xml),
        _ => None,
    };
    let mut charset = None;
    for param in parts {
        let param = param.trim();
        if param.is_empty() {
            continue;
        }
        let Some((name, value)) = param.split_once('=') else {
            return Err(bad("parameter without '='"));
        };
        if name.trim().eq_ignore_ascii_case("charset") {
            let parsed: Charset = value.trim().parse()?;
            if charset.is_some_and(|c| c != parsed) {
                return Err(bad("conflicting charset parameters"));
            }
            charset = Some(parsed);
        }
    }
    Ok((codec, charset))
}

/// Decodes one document into records.
///
/// `Err` rejects the whole document; `Ok` holds one entry per record in document order, each
/// either the decoded [`Document`] or the reason that one record was rejected.
pub fn decode(bytes: &[u8], opts: &DecodeOptions) -> Result<Vec<RecordResult>, DecodeError> {
    let limits = &opts.limits;
    if bytes.len() > limits.max_bytes {
        return Err(DecodeError::TooLarge { size: bytes.len(), limit: limits.max_bytes });
    }
    let charset = match opts.codec {
        Codec::Xml => xml::effective_charset(bytes, opts.charset)?,
        _ => opts.charset,
    };
    let text = to_text(bytes, charset)?;
    match opts.codec {
        Codec::Json => json::decode(&text, limits),
        Codec::Xml => xml::decode(&text, limits, &opts.xml),
        Codec::Csv => csv::decode(&text, limits, &opts.csv),
    }
}

const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";
const GB18030_BOM: &[u8] = b"\x84\x31\x95\x33";

/// Turns the raw bytes into text, borrowing when the input already is UTF-8 (the common case)
/// and rejecting malformed bytes instead of replacing them.
pub fn to_text(bytes: &[u8], charset: Option<Charset>) -> Result<Cow<'_, str>, DecodeError> {
    let has_utf8_bom = bytes.starts_with(UTF8_BOM);
    match charset {
        None | Some(Charset::Utf8) => {
            let (body, skipped) =
                if has_utf8_bom { (&bytes[UTF8_BOM.len()..], UTF8_BOM.len()) } else { (bytes, 0) };
            match std::str::from_utf8(body) {
                Ok(s) => Ok(Cow::Borrowed(s)),
                Err(e) => Err(not_utf8(bytes, skipped + e.valid_up_to(), charset.is_none())),
            }
        }
        Some(Charset::Gb18030) => {
            if has_utf8_bom {
                // A UTF-8 signature contradicts the declaration; decoding either way would
                // guess, and a wrong guess stores mojibake.
                return Err(DecodeError::Charset {
                    offset: Some(0),
                    message: "utf-8 byte order mark in input declared as gb18030".to_owned(),
                });
            }
            let (body, skipped) = if bytes.starts_with(GB18030_BOM) {
                (&bytes[GB18030_BOM.len()..], GB18030_BOM.len())
            } else {
                (bytes, 0)
            };
            // Fast path borrows pure-ASCII input; the slow path only runs to locate the error.
            match GB18030.decode_without_bom_handling_and_without_replacement(body) {
                Some(text) => Ok(text),
                None => Err(DecodeError::Charset {
                    offset: Some(skipped + gb18030_error_offset(body)),
                    message: "malformed gb18030 byte sequence".to_owned(),
                }),
            }
        }
    }
}

fn not_utf8(bytes: &[u8], offset: usize, undeclared: bool) -> DecodeError {
    let message = if bytes.starts_with(b"\xFF\xFE") || bytes.starts_with(b"\xFE\xFF") {
        "utf-16 input is not supported".to_owned()
    } else if undeclared {
        "input is not valid utf-8 and no charset was declared \
         (declare charset=gb18030 for GBK/GB18030 sources)"
            .to_owned()
    } else {
        "invalid utf-8 byte sequence".to_owned()
    };
    DecodeError::Charset { offset: Some(offset), message }
}

/// Byte offset of the first malformed sequence in GB18030 input.
fn gb18030_error_offset(body: &[u8]) -> usize {
    let mut decoder = GB18030.new_decoder_without_bom_handling();
    let mut out = String::with_capacity(
        decoder.max_utf8_buffer_length_without_replacement(body.len()).unwrap_or(body.len() * 2),
    );
    let mut read_total = 0;
    loop {
        let (result, read) =
            decoder.decode_to_string_without_replacement(&body[read_total..], &mut out, true);
        read_total += read;
        match result {
            // `read` counts the malformed bytes and `extra` bytes after them.
            DecoderResult::Malformed(bad, extra) => {
                return read_total.saturating_sub(bad as usize + extra as usize);
            }
            DecoderResult::OutputFull => {
                out.clear();
                out.reserve(body.len().max(16));
            }
            DecoderResult::InputEmpty => return body.len(),
        }
    }
}

/// `line L, column C` (both 1-based, column in characters) of a byte offset in decoded text.
pub(crate) fn line_col(text: &str, offset: usize) -> String {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.bytes().filter(|&b| b == b'\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    format!("line {line}, column {column}")
}

/// Cuts `s` to at most `max` characters for error messages (input is untrusted and unbounded).
pub(crate) fn truncate(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::{Value, json};

    fn opts(codec: Codec, charset: Option<Charset>) -> DecodeOptions {
        DecodeOptions::new(codec).with_charset(charset)
    }

    fn gb(s: &str) -> Vec<u8> {
        let (bytes, _, had_errors) = GB18030.encode(s);
        assert!(!had_errors);
        bytes.into_owned()
    }

    fn ok_docs(res: Vec<RecordResult>) -> Vec<Document> {
        res.into_iter().map(|r| r.expect("record decodes")).collect()
    }

    #[test]
    fn too_large_is_checked_before_decoding() {
        let mut o = opts(Codec::Json, None);
        o.limits.max_bytes = 4;
        // Invalid UTF-8 too, but size wins: nothing is decoded.
        let err = decode(b"\xFF\xFF\xFF\xFF\xFF", &o).unwrap_err();
        assert_eq!(err.code(), "too_large");
        assert_eq!(err.to_string(), "input is 5 bytes, over the limit of 4");
    }

    #[test]
    fn utf8_bom_is_stripped() {
        let docs = ok_docs(decode(b"\xEF\xBB\xBF{\"a\":1}", &opts(Codec::Json, None)).unwrap());
        assert_eq!(Value::Object(docs[0].clone()), json!({"a": 1}));
        let docs = ok_docs(
            decode(b"\xEF\xBB\xBFa,b\n1,2\n", &opts(Codec::Csv, Some(Charset::Utf8))).unwrap(),
        );
        assert!(docs[0].contains_key("a"));
    }

    #[test]
    fn gb18030_bom_is_stripped_when_declared() {
        let mut bytes = GB18030_BOM.to_vec();
        bytes.extend(gb("{\"名称\":\"𠮷\"}"));
        let docs = ok_docs(decode(&bytes, &opts(Codec::Json, Some(Charset::Gb18030))).unwrap());
        assert_eq!(docs[0]["名称"], "𠮷");
    }

    #[test]
    fn gb18030_four_byte_char_declared_decodes() {
        let bytes = gb("{\"CF_XDR_MC\":\"𠮷野家示例有限公司\"}");
        // 𠮷 (U+20BB7) is a four-byte GB18030 sequence.
        assert!(bytes.windows(4).any(|w| w == b"\x95\x34\xB2\x35"));
        let docs = ok_docs(decode(&bytes, &opts(Codec::Json, Some(Charset::Gb18030))).unwrap());
        assert_eq!(docs[0]["CF_XDR_MC"], "𠮷野家示例有限公司");
    }

    #[test]
    fn gb18030_undeclared_is_a_charset_error_with_offset() {
        let bytes = gb("{\"a\":\"𠮷\"}");
        let err = decode(&bytes, &opts(Codec::Json, None)).unwrap_err();
        assert_eq!(err.code(), "charset");
        assert!(matches!(err, DecodeError::Charset { offset: Some(6), .. }), "{err:?}");
        assert!(err.to_string().contains("no charset was declared"), "{err}");
        // Declared UTF-8 is no better.
        let err = decode(&bytes, &opts(Codec::Json, Some(Charset::Utf8))).unwrap_err();
        assert!(matches!(err, DecodeError::Charset { offset: Some(6), .. }), "{err:?}");
    }

    #[test]
    fn gb18030_malformed_is_rejected_not_replaced() {
        // A four-byte sequence cut after its second byte, then a quote.
        let bytes = b"{\"a\":\"\x95\x32\"}";
        let err = decode(bytes, &opts(Codec::Json, Some(Charset::Gb18030))).unwrap_err();
        assert_eq!(err.code(), "charset");
        assert!(matches!(err, DecodeError::Charset { offset: Some(6), .. }), "{err:?}");
        // 0xFF is never valid in GB18030.
        let err = decode(b"a,b\n1,\xFF\n", &opts(Codec::Csv, Some(Charset::Gb18030))).unwrap_err();
        assert!(matches!(err, DecodeError::Charset { offset: Some(6), .. }), "{err:?}");
        // With the BOM the offset still counts from the start of the raw input.
        let mut bytes = GB18030_BOM.to_vec();
        bytes.extend_from_slice(b"[\x81 ]");
        let err = decode(&bytes, &opts(Codec::Json, Some(Charset::Gb18030))).unwrap_err();
        assert!(matches!(err, DecodeError::Charset { offset: Some(5), .. }), "{err:?}");
    }

    #[test]
    fn utf8_bom_contradicting_gb18030_is_rejected() {
        let err =
            decode(b"\xEF\xBB\xBF{}", &opts(Codec::Json, Some(Charset::Gb18030))).unwrap_err();
        assert_eq!(err.code(), "charset");
    }

    #[test]
    fn invalid_utf8_reports_offset() {
        let err = decode(b"{\"a\":\"\xC3\x28\"}", &opts(Codec::Json, None)).unwrap_err();
        assert!(matches!(err, DecodeError::Charset { offset: Some(6), .. }), "{err:?}");
        let err = decode(b"\xEF\xBB\xBF[\xC0]", &opts(Codec::Json, None)).unwrap_err();
        assert!(matches!(err, DecodeError::Charset { offset: Some(4), .. }), "{err:?}");
        let err = decode(b"\xFF\xFE{\x00}\x00", &opts(Codec::Json, None)).unwrap_err();
        assert!(err.to_string().contains("utf-16"), "{err}");
    }

    #[test]
    fn utf8_input_is_borrowed() {
        assert!(matches!(to_text(b"{}", None).unwrap(), Cow::Borrowed(_)));
        assert!(matches!(to_text(b"{}", Some(Charset::Gb18030)).unwrap(), Cow::Borrowed(_)));
        assert!(matches!(to_text(&gb("中"), Some(Charset::Gb18030)).unwrap(), Cow::Owned(_)));
    }

    #[test]
    fn content_type_parsing() {
        let p = |s| parse_content_type(s).unwrap();
        assert_eq!(
            p("application/json; charset=gb18030"),
            (Some(Codec::Json), Some(Charset::Gb18030))
        );
        assert_eq!(p("text/csv;charset=GBK"), (Some(Codec::Csv), Some(Charset::Gb18030)));
        assert_eq!(p("application/xml"), (Some(Codec::Xml), None));
        assert_eq!(p("Text/XML; Charset=\"UTF-8\""), (Some(Codec::Xml), Some(Charset::Utf8)));
        assert_eq!(p("application/problem+json"), (Some(Codec::Json), None));
        assert_eq!(p("application/x-ndjson"), (Some(Codec::Json), None));
        assert_eq!(p("application/octet-stream; charset=gb2312"), (None, Some(Charset::Gb18030)));
        assert_eq!(parse_content_type("json").unwrap_err().code(), "content_type");
        assert_eq!(parse_content_type("text/csv; charset=big5").unwrap_err().code(), "charset");
        assert_eq!(
            parse_content_type("text/csv; charset=utf-8; charset=gbk").unwrap_err().code(),
            "content_type"
        );
    }

    #[test]
    fn options_deserialize_from_config() {
        let o: DecodeOptions = serde_json::from_value(json!({
            "codec": "csv", "charset": "gbk", "csv": {"delimiter": ";"},
            "limits": {"max_records": 10}
        }))
        .unwrap();
        assert_eq!(o.codec, Codec::Csv);
        assert_eq!(o.charset, Some(Charset::Gb18030));
        assert_eq!(o.csv.delimiter, b';');
        assert_eq!(o.limits.max_records, 10);
        assert_eq!(o.limits.max_depth, 32);
        let c: Charset = serde_json::from_value(json!("utf-8")).unwrap();
        assert_eq!(c, Charset::Utf8);
        assert!(serde_json::from_value::<Charset>(json!("latin1")).is_err());
        assert!(serde_json::from_value::<DecodeOptions>(json!({"codec": "yaml"})).is_err());
        assert_eq!(serde_json::to_value(Charset::Gb18030).unwrap(), json!("gb18030"));
    }

    #[test]
    fn error_codes_are_stable() {
        let e = DecodeError::Doctype;
        assert_eq!(e.code(), "doctype");
        assert_eq!(DecodeError::Empty.code(), "empty");
        assert_eq!(DecodeError::Shape { message: String::new() }.code(), "shape");
    }

    #[test]
    fn line_col_counts_characters() {
        assert_eq!(line_col("ab\n中文x", 9), "line 2, column 3");
        assert_eq!(line_col("ab", 99), "line 1, column 3");
        assert_eq!(line_col("中", 1), "line 1, column 1");
    }

    fn flat_record() -> impl Strategy<Value = Vec<(String, String)>> {
        proptest::collection::btree_map(
            "[A-Z][A-Z0-9_]{0,10}",
            "[\\u{4e00}-\\u{9fa5}a-zA-Z0-9 ，。、（）〔〕《》𠮷𡈽,\"\n-]{0,16}",
            1..12,
        )
        .prop_map(|m| m.into_iter().collect())
    }

    fn as_document(fields: &[(String, String)]) -> Document {
        fields.iter().map(|(k, v)| (k.clone(), Value::String(v.clone()))).collect()
    }

    fn to_csv(fields: &[(String, String)]) -> String {
        let mut w = ::csv::Writer::from_writer(Vec::new());
        w.write_record(fields.iter().map(|(k, _)| k)).unwrap();
        w.write_record(fields.iter().map(|(_, v)| v)).unwrap();
        String::from_utf8(w.into_inner().unwrap()).unwrap()
    }

    fn to_xml(fields: &[(String, String)]) -> String {
        let mut x = String::from("<?xml version=\"1.0\"?>\n<r>");
        for (k, v) in fields {
            x += &format!("<{k}>{}</{k}>", quick_xml::escape::escape(v.as_str()));
        }
        x + "</r>"
    }

    const ALL: [Codec; 3] = [Codec::Json, Codec::Xml, Codec::Csv];

    proptest! {
        #[test]
        fn never_panics_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            for codec in ALL {
                for cs in [None, Some(Charset::Gb18030)] {
                    drop(decode(&bytes, &opts(codec, cs)));
                }
            }
        }

        #[test]
        fn never_panics_on_syntax_soup(s in "[{}\\[\\]<>/?!&;#:=\"', \n\\\\a-c0-9\u{4e2d}-]{0,256}") {
            for codec in ALL {
                drop(decode(s.as_bytes(), &opts(codec, None)));
            }
        }

        #[test]
        fn flat_chinese_records_round_trip(fields in flat_record()) {
            let expected = as_document(&fields);
            let json = serde_json::to_string(&expected).unwrap();
            let csv = to_csv(&fields);
            let xml = to_xml(&fields);
            for (codec, text) in [(Codec::Json, &json), (Codec::Csv, &csv), (Codec::Xml, &xml)] {
                let utf8 = decode(text.as_bytes(), &opts(codec, None)).unwrap();
                prop_assert_eq!(ok_docs(utf8), vec![expected.clone()]);
                let gbk = decode(&gb(text), &opts(codec, Some(Charset::Gb18030))).unwrap();
                prop_assert_eq!(ok_docs(gbk), vec![expected.clone()]);
            }
        }
    }
}
