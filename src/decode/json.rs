//! JSON: a top-level object (one record), an array of objects (one record per element), or JSON
//! lines (one value per line).
//!
//! Policies: duplicate keys reject the document (two readers of the same bytes must never see
//! different records); depth is checked by a byte pre-scan before serde_json runs, so a depth bomb
//! costs one linear pass and no allocation; numbers stay JSON numbers.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::map::Entry;
use serde_json::{Map, Value};

use super::{DecodeError, DecodeLimits, RecordDecodeError, RecordResult, line_col, truncate};
use crate::decode::Codec;

const DUPLICATE_KEY: &str = "duplicate key ";

pub(super) fn decode(text: &str, limits: &DecodeLimits) -> Result<Vec<RecordResult>, DecodeError> {
    check_depth(text, limits.max_depth)?;
    let start = text.len() - text.trim_start().len();
    if start == text.len() {
        return Err(DecodeError::Empty);
    }

    let mut stream = serde_json::Deserializer::from_str(text).into_iter::<Node>();
    let first = match stream.next() {
        Some(Ok(Node(v))) => v,
        Some(Err(e)) => return Err(doc_error(&e)),
        None => return Err(DecodeError::Empty),
    };
    let end = stream.byte_offset();
    let rest = &text[end..];
    let next = rest.len() - rest.trim_start().len();
    if next == rest.len() {
        return single(first, limits);
    }
    // More follows. It is JSON lines only if the first value sat on one line and a newline
    // separates it from the next; anything else is trailing garbage.
    let first_on_one_line = !text[start..end].contains('\n');
    if first_on_one_line && rest[..next].contains('\n') {
        return lines(text, limits);
    }
    Err(DecodeError::Syntax {
        codec: Codec::Json,
        position: line_col(text, end + next),
        message: "trailing characters after the top-level value".to_owned(),
    })
}

/// A single top-level value: an object is one record, an array holds one record per element.
fn single(value: Value, limits: &DecodeLimits) -> Result<Vec<RecordResult>, DecodeError> {
    match value {
        Value::Object(doc) => Ok(vec![check_record(0, doc, limits)?]),
        Value::Array(items) => {
            if items.len() > limits.max_records {
                return Err(DecodeError::TooManyRecords { limit: limits.max_records });
            }
            let mut out = Vec::with_capacity(items.len());
            for (index, item) in items.into_iter().enumerate() {
                out.push(match item {
                    Value::Object(doc) => check_record(index, doc, limits)?,
                    other => Err(not_object(index, &other)),
                });
            }
            Ok(out)
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
fn lines(text: &str, limits: &DecodeLimits) -> Result<Vec<RecordResult>, DecodeError> {
    let mut out = Vec::new();
    for (line_no, line) in text.split('\n').enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let index = out.len();
        if index >= limits.max_records {
            return Err(DecodeError::TooManyRecords { limit: limits.max_records });
        }
        out.push(match serde_json::from_str::<Node>(line) {
            Ok(Node(Value::Object(doc))) => check_record(index, doc, limits)?,
            Ok(Node(other)) => Err(not_object(index, &other)),
            Err(e) => Err(RecordDecodeError::record(
                index,
                format!("invalid json on line {}, column {}: {}", line_no + 1, e.column(), msg(&e)),
            )),
        });
    }
    Ok(out)
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

/// Applies the per-record limits. Too many fields rejects the document (like the other structural
/// limits); an oversized string rejects only its record, as an oversized CSV cell does.
fn check_record(
    index: usize,
    doc: Map<String, Value>,
    limits: &DecodeLimits,
) -> Result<RecordResult, DecodeError> {
    let mut fields = 0usize;
    let mut too_long = None;
    walk_map(&doc, limits, &mut fields, &mut too_long);
    if fields > limits.max_fields {
        return Err(DecodeError::TooManyFields {
            limit: limits.max_fields,
            position: format!("record {}", index + 1),
        });
    }
    Ok(match too_long {
        Some(key) => Err(RecordDecodeError::record(
            index,
            format!("field {key:?} is longer than {} bytes", limits.max_field_bytes),
        )),
        None => Ok(doc),
    })
}

fn walk_map(
    m: &Map<String, Value>,
    l: &DecodeLimits,
    fields: &mut usize,
    long: &mut Option<String>,
) {
    for (k, v) in m {
        *fields += 1;
        if long.is_none() && k.len() > l.max_field_bytes {
            *long = Some(truncate(k, 40).to_owned());
        }
        walk_value(k, v, l, fields, long);
    }
}

fn walk_value(
    key: &str,
    v: &Value,
    l: &DecodeLimits,
    fields: &mut usize,
    long: &mut Option<String>,
) {
    match v {
        Value::String(s) if long.is_none() && s.len() > l.max_field_bytes => {
            *long = Some(truncate(key, 40).to_owned());
        }
        Value::Array(items) => {
            for item in items {
                *fields += 1;
                walk_value(key, item, l, fields, long);
            }
        }
        Value::Object(m) => walk_map(m, l, fields, long),
        _ => {}
    }
}

/// Depth pre-scan: counts brackets outside strings. serde_json's own limit (128) is too generous
/// and is only hit after allocating the levels above it.
fn check_depth(text: &str, max: usize) -> Result<(), DecodeError> {
    let b = text.as_bytes();
    let mut depth = 0usize;
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'"' => {
                // Skip the string; an unterminated one is serde_json's error to report.
                i += 1;
                while i < b.len() {
                    match b[i] {
                        b'\\' => i += 2,
                        b'"' => break,
                        _ => i += 1,
                    }
                }
            }
            b'{' | b'[' => {
                depth += 1;
                if depth > max {
                    return Err(DecodeError::Depth { limit: max, position: line_col(text, i) });
                }
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
        i += 1;
    }
    Ok(())
}

fn doc_error(e: &serde_json::Error) -> DecodeError {
    let position = format!("line {}, column {}", e.line(), e.column());
    let m = msg(e);
    if let Some(key) = m.strip_prefix(DUPLICATE_KEY) {
        return DecodeError::DuplicateKey { key: key.to_owned(), position };
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

/// A `serde_json::Value` built by a visitor that refuses duplicate object keys (serde_json's own
/// `Value` keeps the last one silently).
struct Node(Value);

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(NodeVisitor).map(Node)
    }
}

struct NodeVisitor;

impl<'de> Visitor<'de> for NodeVisitor {
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
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(NodeVisitor)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
        while let Some(Node(v)) = seq.next_element()? {
            items.push(v);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            match out.entry(key) {
                Entry::Vacant(slot) => {
                    slot.insert(map.next_value::<Node>()?.0);
                }
                Entry::Occupied(slot) => {
                    return Err(de::Error::custom(format_args!(
                        "{DUPLICATE_KEY}{}",
                        truncate(slot.key(), 64)
                    )));
                }
            }
        }
        Ok(Value::Object(out))
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
