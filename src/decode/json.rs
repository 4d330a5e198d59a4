//! JSON: a top-level object (one record), an array of objects (one record per element), or JSON
//! lines (one value per line). In JSON lines a bad line rejects only its record; the first line
//! decides the layout, so a first line that does not parse rejects the document.
//!
//! Policies: duplicate keys reject the document (two readers of the same bytes must never see
//! different records); depth is checked by a byte pre-scan before serde_json runs, so a depth bomb
//! costs one linear pass and no allocation; numbers stay JSON numbers.
//!
//! Field and record counts and string sizes are checked by the visitor while it builds the values:
//! a separate walk afterwards would re-read every record once it has left the cache, which cost
//! about a quarter of the throughput on large batches.

use std::borrow::Cow;
use std::cell::{Cell, RefCell};
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::map::Entry;
use serde_json::{Map, Value};

use super::{DecodeError, DecodeLimits, RecordDecodeError, RecordResult, line_col, truncate};
use crate::decode::Codec;

// Prefixes of our own visitor errors, told apart from serde_json's messages after the fact
// (serde_json appends the position to custom errors, which we want to keep).
const DUPLICATE_KEY: &str = "duplicate key ";
const TOO_MANY_FIELDS: &str = "\u{1}too many fields";
const TOO_MANY_RECORDS: &str = "\u{1}too many records";

pub(super) fn decode(text: &str, limits: &DecodeLimits) -> Result<Vec<RecordResult>, DecodeError> {
    check_depth(text.as_bytes(), limits.max_depth).map_err(|at| DecodeError::Depth {
        limit: limits.max_depth,
        position: line_col(text, at),
    })?;
    let start = text.len() - text.trim_start().len();
    if start == text.len() {
        return Err(DecodeError::Empty);
    }

    let ctx = Ctx::new(limits);
    let mut de = serde_json::Deserializer::from_str(text);
    let first = Seed { ctx: &ctx, role: Role::Top }.deserialize(&mut de);
    let first = first.map_err(|e| doc_error(&e, limits))?;
    if de.end().is_ok() {
        return single(first, &ctx, limits);
    }

    // More follows. It is JSON lines only if the first value sat on one line and a newline
    // separates it from the next; anything else is trailing garbage. This path is rare, so
    // re-scanning the first value to find where it ended is fine.
    let mut stream = serde_json::Deserializer::from_str(text).into_iter::<IgnoredAny>();
    let _first = stream.next();
    let end = stream.byte_offset();
    let rest = &text[end..];
    let next = rest.len() - rest.trim_start().len();
    if !text[start..end].contains('\n') && rest[..next].contains('\n') {
        return lines(text, &ctx, limits);
    }
    Err(DecodeError::Syntax {
        codec: Codec::Json,
        position: line_col(text, end + next),
        message: "trailing characters after the top-level value".to_owned(),
    })
}

/// A single top-level value: an object is one record, an array holds one record per element.
fn single(
    value: Value,
    ctx: &Ctx,
    limits: &DecodeLimits,
) -> Result<Vec<RecordResult>, DecodeError> {
    match value {
        Value::Object(doc) => Ok(vec![record(0, doc, ctx.long_key.take(), limits)]),
        Value::Array(items) => {
            let long = ctx.long_per_element.take();
            Ok(items
                .into_iter()
                .zip(long)
                .enumerate()
                .map(|(index, (item, long))| match item {
                    Value::Object(doc) => record(index, doc, long, limits),
                    other => Err(not_object(index, &other)),
                })
                .collect())
        }
        other => Err(DecodeError::Shape {
            message: format!(
                "top-level json value must be an object or an array of objects, found {}",
                kind(&other)
            ),
        }),
    }
}

/// JSON lines: each non-blank line is one record, and a bad line rejects only that record.
fn lines(text: &str, ctx: &Ctx, limits: &DecodeLimits) -> Result<Vec<RecordResult>, DecodeError> {
    let mut out = Vec::new();
    for (line_no, line) in text.split('\n').enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let index = out.len();
        if index >= limits.max_records {
            return Err(DecodeError::TooManyRecords { limit: limits.max_records });
        }
        ctx.reset();
        let mut de = serde_json::Deserializer::from_str(line);
        let parsed = Seed { ctx, role: Role::Record }.deserialize(&mut de).and_then(|v| {
            de.end()?;
            Ok(v)
        });
        out.push(match parsed {
            Ok(Value::Object(doc)) => record(index, doc, ctx.long_key.take(), limits),
            Ok(other) => Err(not_object(index, &other)),
            Err(e) => match doc_error(&e, limits) {
                // Structural limits keep their document-wide meaning in every layout.
                err @ (DecodeError::TooManyFields { .. } | DecodeError::TooManyRecords { .. }) => {
                    return Err(err);
                }
                _ => Err(RecordDecodeError::record(
                    index,
                    format!(
                        "invalid json on line {}, column {}: {}",
                        line_no + 1,
                        e.column(),
                        msg(&e)
                    ),
                )),
            },
        });
    }
    Ok(out)
}

/// An oversized string rejects only its record, as an oversized CSV cell does.
fn record(
    index: usize,
    doc: Map<String, Value>,
    long: Option<String>,
    l: &DecodeLimits,
) -> RecordResult {
    match long {
        Some(key) => Err(RecordDecodeError::record(
            index,
            format!("field {key:?} is longer than {} bytes", l.max_field_bytes),
        )),
        None => Ok(doc),
    }
}

fn not_object(index: usize, v: &Value) -> RecordDecodeError {
    RecordDecodeError::record(index, format!("expected a json object, found {}", kind(v)))
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Depth pre-scan: counts brackets outside strings and returns the offset of the first bracket
/// past `max`. serde_json's own limit (128) is too generous and is only hit after allocating the
/// levels above it.
fn check_depth(b: &[u8], max: usize) -> Result<(), usize> {
    // Depth can never exceed the number of opening brackets. Counting them is a vectorised pass,
    // and settles the question for single records and small documents.
    if count_openers(b, max) <= max {
        return Ok(());
    }
    let mut depth = 0usize;
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'"' => i = string_end(b, i + 1),
            b'{' | b'[' => {
                depth += 1;
                if depth > max {
                    return Err(i);
                }
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
        i += 1;
    }
    Ok(())
}

/// Number of `{` and `[` bytes, counted up to just past `max`. Narrow per-chunk counters let the
/// loop vectorise well; `{` and `[` differ only in bit 0x20.
fn count_openers(b: &[u8], max: usize) -> usize {
    let mut n = 0usize;
    for chunk in b.chunks(255) {
        n += usize::from(chunk.iter().fold(0u8, |acc, &c| acc + u8::from(c | 0x20 == b'{')));
        if n > max {
            break;
        }
    }
    n
}

/// Offset of the quote closing a string whose content starts at `i` (or `b.len()` if
/// unterminated: that is serde_json's error to report). Most bytes of a record are inside
/// strings, so they are skipped eight at a time.
fn string_end(b: &[u8], mut i: usize) -> usize {
    loop {
        for chunk in b.get(i..).unwrap_or_default().chunks_exact(8) {
            let Ok(word) = <[u8; 8]>::try_from(chunk) else {
                break;
            };
            let w = u64::from_le_bytes(word);
            if has_byte(w, b'"') || has_byte(w, b'\\') {
                break;
            }
            i += 8;
        }
        match b.get(i) {
            None | Some(b'"') => return i,
            Some(b'\\') => i += 2,
            Some(_) => i += 1,
        }
    }
}

/// Whether any byte of `w` equals `b` (the classic "has zero byte" bit trick).
fn has_byte(w: u64, b: u8) -> bool {
    const LO: u64 = u64::from_ne_bytes([0x01; 8]);
    const HI: u64 = u64::from_ne_bytes([0x80; 8]);
    let x = w ^ (LO * u64::from(b));
    x.wrapping_sub(LO) & !x & HI != 0
}

fn doc_error(e: &serde_json::Error, limits: &DecodeLimits) -> DecodeError {
    let position = format!("line {}, column {}", e.line(), e.column());
    let m = msg(e);
    if let Some(key) = m.strip_prefix(DUPLICATE_KEY) {
        return DecodeError::DuplicateKey { key: key.to_owned(), position };
    }
    if m.starts_with(TOO_MANY_FIELDS) {
        return DecodeError::TooManyFields { limit: limits.max_fields, position };
    }
    if m.starts_with(TOO_MANY_RECORDS) {
        return DecodeError::TooManyRecords { limit: limits.max_records };
    }
    DecodeError::Syntax { codec: Codec::Json, position, message: m }
}

/// serde_json's message without its trailing " at line L column C" (we report position apart).
fn msg(e: &serde_json::Error) -> String {
    let s = e.to_string();
    match s.rfind(" at line ") {
        Some(i) if e.line() > 0 => s[..i].to_owned(),
        _ => s,
    }
}

/// Per-parse state shared by the seeds: limits and the running counts of the current record.
struct Ctx {
    max_fields: usize,
    max_field_bytes: usize,
    max_records: usize,
    fields: Cell<usize>,
    /// A string of the current record is over `max_field_bytes`.
    long: Cell<bool>,
    /// The key under which the first oversized string of the current record sits.
    long_key: RefCell<Option<String>>,
    /// For a top-level array: `long_key` of each element, in order.
    long_per_element: RefCell<Vec<Option<String>>>,
    /// Number of keys of the last record, the capacity hint for the next.
    last_record_len: Cell<usize>,
}

impl Ctx {
    fn new(l: &DecodeLimits) -> Self {
        Ctx {
            max_fields: l.max_fields,
            max_field_bytes: l.max_field_bytes,
            max_records: l.max_records,
            fields: Cell::new(0),
            long: Cell::new(false),
            long_key: RefCell::new(None),
            long_per_element: RefCell::new(Vec::new()),
            // Typical credit records have 20-odd fields; later records use the real size.
            last_record_len: Cell::new(24),
        }
    }

    fn reset(&self) {
        self.fields.set(0);
        self.long.set(false);
        self.long_key.replace(None);
    }

    fn count_field<E: de::Error>(&self) -> Result<(), E> {
        let n = self.fields.get() + 1;
        self.fields.set(n);
        if n > self.max_fields {
            return Err(E::custom(TOO_MANY_FIELDS));
        }
        Ok(())
    }

    fn check_len(&self, len: usize) {
        if len > self.max_field_bytes {
            self.long.set(true);
        }
    }

    /// Called after each key/value: remembers the key of the first oversized value.
    fn note_key(&self, key: &str) {
        if self.long.get() && self.long_key.borrow().is_none() {
            // Cold: only for the first oversized value of a record.
            self.long_key.replace(Some(truncate(key, 40).to_owned()));
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Role {
    /// The top-level value: an array here holds records.
    Top,
    /// A record candidate (array element or JSON line): counts start afresh.
    Record,
    /// Anything nested inside a record.
    Inner,
}

/// Builds a `serde_json::Value` like serde_json's own, but refuses duplicate object keys
/// (serde_json keeps the last one silently) and applies the per-record limits on the way.
#[derive(Clone, Copy)]
struct Seed<'c> {
    ctx: &'c Ctx,
    role: Role,
}

impl<'de> DeserializeSeed<'de> for Seed<'_> {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Seed<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any json value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        // serde_json never yields non-finite floats from text, so Null is unreachable in practice.
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        self.ctx.check_len(v.len());
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        self.ctx.check_len(v.len());
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let ctx = self.ctx;
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
        if self.role == Role::Top {
            let mut long = Vec::new();
            loop {
                ctx.reset();
                let Some(v) = seq.next_element_seed(Seed { ctx, role: Role::Record })? else {
                    break;
                };
                if items.len() >= ctx.max_records {
                    return Err(de::Error::custom(TOO_MANY_RECORDS));
                }
                items.push(v);
                long.push(ctx.long_key.take());
            }
            ctx.long_per_element.replace(long);
        } else {
            while let Some(v) = seq.next_element_seed(Seed { ctx, role: Role::Inner })? {
                ctx.count_field()?;
                items.push(v);
            }
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let ctx = self.ctx;
        // Records of one batch share their shape, so sizing a record's map like the previous
        // one saves the rehashing and regrowth that otherwise show up in profiles.
        let mut out = match self.role {
            Role::Inner => Map::new(),
            Role::Top | Role::Record => Map::with_capacity(ctx.last_record_len.get()),
        };
        while let Some(key) = map.next_key_seed(KeySeed)? {
            ctx.count_field()?;
            ctx.check_len(key.len());
            let value = map.next_value_seed(Seed { ctx, role: Role::Inner })?;
            ctx.note_key(&key);
            match key {
                // The common case: one hash and probe via `insert`, with the borrowed key kept
                // for the message.
                Cow::Borrowed(k) => {
                    if out.insert(k.to_owned(), value).is_some() {
                        return Err(duplicate(k));
                    }
                }
                // Keys with escapes are rare: keep the key for the message via `entry`.
                Cow::Owned(k) => match out.entry(k) {
                    Entry::Vacant(slot) => {
                        slot.insert(value);
                    }
                    Entry::Occupied(slot) => return Err(duplicate(slot.key())),
                },
            }
        }
        if self.role != Role::Inner {
            ctx.last_record_len.set(out.len());
        }
        Ok(Value::Object(out))
    }
}

fn duplicate<E: de::Error>(key: &str) -> E {
    E::custom(format_args!("{DUPLICATE_KEY}{}", truncate(key, 64)))
}

/// Object keys, borrowed from the input when they have no escapes.
struct KeySeed;

impl<'de> DeserializeSeed<'de> for KeySeed {
    type Value = Cow<'de, str>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeySeed {
    type Value = Cow<'de, str>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object key")
    }

    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Cow::Borrowed(v))
    }

    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::{DecodeOptions, decode as decode_bytes};
    use serde_json::json;

    fn run(s: &str) -> Result<Vec<RecordResult>, DecodeError> {
        decode_bytes(s.as_bytes(), &DecodeOptions::new(Codec::Json))
    }

    fn values(s: &str) -> Vec<Value> {
        run(s).unwrap().into_iter().map(|r| Value::Object(r.unwrap())).collect()
    }

    const PENALTY: &str = r#"{"CF_XDR_MC":"湖北示例建设工程有限公司","CF_NR_FK":1.234567,"BZ":""}"#;

    #[test]
    fn single_object_keeps_order_and_numbers() {
        let v = values(PENALTY);
        assert_eq!(v.len(), 1);
        assert_eq!(v[0]["CF_NR_FK"], json!(1.234567));
        let keys: Vec<_> = v[0].as_object().unwrap().keys().cloned().collect();
        assert_eq!(keys, ["CF_XDR_MC", "CF_NR_FK", "BZ"]);
        assert_eq!(values(r#"{"n": 18446744073709551615, "i": -3}"#)[0]["n"], json!(u64::MAX));
    }

    #[test]
    fn array_non_object_element_rejects_only_that_record() {
        let res = run(r#"[{"a":1}, 7, {"a":2}, "x"]"#).unwrap();
        assert_eq!(res.len(), 4);
        assert!(res[0].is_ok() && res[2].is_ok());
        let e = res[1].as_ref().unwrap_err();
        assert_eq!((e.index, e.location.as_str()), (1, "record 2"));
        assert!(e.message.contains("a number"), "{e}");
        assert!(res[3].is_err());
        assert!(run("[]").unwrap().is_empty());
    }

    #[test]
    fn json_lines() {
        let res = run("{\"a\":1}\n\n{\"a\":2}\r\n{\"a\":\n[1]\n").unwrap();
        assert_eq!(res.len(), 4);
        assert_eq!(Value::Object(res[1].clone().unwrap()), json!({"a": 2}));
        let bad = res[2].as_ref().unwrap_err();
        assert_eq!(bad.location, "record 3");
        assert!(bad.message.contains("line 4"), "{bad}");
        assert!(res[3].as_ref().unwrap_err().message.contains("an array"));
    }

    #[test]
    fn trailing_garbage_is_a_syntax_error() {
        let err = run("{\"a\":1} x").unwrap_err();
        assert_eq!(err.code(), "syntax");
        assert_eq!(
            err.to_string(),
            "json syntax error at line 1, column 9: trailing characters after the top-level value"
        );
        // A multi-line first value followed by more is not JSON lines either.
        assert_eq!(run("{\n\"a\":1}\n{\"a\":2}").unwrap_err().code(), "syntax");
    }

    #[test]
    fn syntax_error_has_position() {
        let err = run("{\n  \"a\": tru }").unwrap_err();
        let DecodeError::Syntax { position, .. } = &err else { panic!("{err:?}") };
        assert_eq!(position, "line 2, column 11");
    }

    #[test]
    fn duplicate_keys_reject_the_document() {
        let err = run(r#"{"a":1,"b":2,"a":3}"#).unwrap_err();
        assert_eq!(err.code(), "duplicate_key");
        assert!(err.to_string().starts_with("duplicate key \"a\" at line 1"), "{err}");
        assert_eq!(run(r#"[{"x":{"k":1,"k":1}}]"#).unwrap_err().code(), "duplicate_key");
        assert_eq!(run("{\"a\":1}\n{\"b\":1,\"b\":2}").unwrap()[1].as_ref().unwrap_err().index, 1);
    }

    #[test]
    fn lone_surrogate_is_an_error_not_a_panic() {
        let err = run(r#"{"a":"\ud800"}"#).unwrap_err();
        assert_eq!(err.code(), "syntax");
        // A proper pair is fine.
        assert_eq!(values(r#"{"a":"\ud842\udfb7"}"#)[0]["a"], "𠮷");
    }

    #[test]
    fn depth_limit_and_bomb() {
        let nest = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
        // 31 arrays inside the record object: depth 32 is allowed.
        assert!(run(&format!("{{\"a\":{}}}", nest(31))).is_ok());
        assert_eq!(run(&format!("{{\"a\":{}}}", nest(32))).unwrap_err().code(), "depth");
        let bomb = "[".repeat(1_000_000);
        let t = std::time::Instant::now();
        let err = run(&bomb).unwrap_err();
        assert!(matches!(err, DecodeError::Depth { limit: 32, .. }), "{err:?}");
        assert!(t.elapsed().as_millis() < 500);
        // Brackets inside strings, escaped quotes included, do not count.
        let s = format!("{{\"a\":\"\\\"{}\"}}", "[".repeat(100));
        assert!(run(&s).is_ok());
    }

    #[test]
    fn shape_and_empty() {
        assert_eq!(run("42").unwrap_err().code(), "shape");
        assert_eq!(run("  \n").unwrap_err().code(), "empty");
        assert_eq!(run("").unwrap_err().code(), "empty");
    }

    #[test]
    fn field_and_record_limits() {
        let mut o = DecodeOptions::new(Codec::Json);
        o.limits.max_field_bytes = 4;
        let res = decode_bytes(br#"[{"a":"1234"},{"a":"12345"}]"#, &o).unwrap();
        assert!(res[0].is_ok());
        assert!(res[1].as_ref().unwrap_err().message.contains("longer than 4 bytes"));

        let mut o = DecodeOptions::new(Codec::Json);
        o.limits.max_fields = 3;
        assert!(decode_bytes(br#"{"a":1,"b":[1,2]}"#, &o).is_err());
        assert!(decode_bytes(br#"{"a":1,"b":[1]}"#, &o).is_ok());
        assert_eq!(
            decode_bytes(br#"{"a":{"b":{"c":{}}},"d":0}"#, &o).unwrap_err().code(),
            "too_many_fields"
        );

        let mut o = DecodeOptions::new(Codec::Json);
        o.limits.max_records = 2;
        assert_eq!(decode_bytes(b"[{},{},{}]", &o).unwrap_err().code(), "too_many_records");
        assert_eq!(decode_bytes(b"{}\n{}\n{}", &o).unwrap_err().code(), "too_many_records");
    }
}
