//! XML via quick-xml's event reader (not serde), so every limit is enforced while reading.
//!
//! # Security policy
//! Any `DOCTYPE` rejects the document: with no DTD there are no user-defined entities, hence no
//! billion-laughs expansion and no external-entity fetch. Only the five predefined entities and
//! numeric character references are accepted. Depth, attributes per element and fields per record
//! are counted as events arrive, so a 10k-attribute tag stops at attribute `max_fields + 1`.
//!
//! # Mapping convention (XML → record object)
//! * Each record element becomes an object.
//! * A child element with only text becomes `"name": "text"` (text kept verbatim).
//! * An empty element (`<a/>`, `<a></a>`) becomes `"name": ""`.
//! * A repeated child element becomes an array, in document order: `"name": [v1, v2]`.
//! * A child element with attributes or children becomes a nested object.
//! * Attributes become `"@attr": "value"` (value normalised as XML requires).
//! * Text of an element that also has attributes or children goes to `"$text"`: verbatim when the
//!   element has no child elements, trimmed (and omitted when blank) when it has — there it is
//!   mostly indentation.
//! * Namespace prefixes are dropped (`<ns:Name>` → `Name`); `xmlns` declarations are not kept.
//!   Two attributes that collide after dropping prefixes reject the document.
//! * A record element with only text becomes `{"$text": "..."}`; an empty one `{}`.
//!
//! # Record selection
//! With `record_element` set, every outermost element of that local name is a record, wherever
//! it sits; everything outside records is only checked for well-formedness. Without it, the
//! root's children are the records when there are at least two and they all share one name;
//! otherwise the root itself is the one record. Batch feeds should configure `record_element`
//! so that a batch of one is not read as a single record holding the batch.
//!
//! # Encoding
//! The `encoding` of the XML declaration counts as a declaration when the adapter declared none;
//! a declaration that contradicts the adapter's is an error (see [`effective_charset`]).

use std::mem;

use quick_xml::Reader;
use quick_xml::XmlVersion;
use quick_xml::escape::{EscapeError, resolve_predefined_entity};
use quick_xml::events::{BytesStart, Event};
use serde_json::Value;
use serde_json::map::Entry;

use super::{
    Charset, Codec, DecodeError, DecodeLimits, RecordDecodeError, RecordResult, XmlOptions,
    line_col, truncate,
};
use crate::record::Document;

/// Charset to decode with: the adapter's declaration, else the XML declaration's `encoding`.
///
/// The declaration is read from the raw bytes: `<?xml ... encoding="..."?>` is ASCII in both
/// UTF-8 and GB18030, so it can be sniffed before the text is decoded.
pub(super) fn effective_charset(
    bytes: &[u8],
    declared: Option<Charset>,
) -> Result<Option<Charset>, DecodeError> {
    let body = bytes.strip_prefix(super::UTF8_BOM).unwrap_or(bytes);
    let Some(label) = sniff_encoding(body) else {
        return Ok(declared);
    };
    let from_xml: Charset = label.parse().map_err(|_| DecodeError::Charset {
        offset: None,
        message: format!("unsupported xml declaration encoding {:?}", truncate(label, 40)),
    })?;
    match declared {
        Some(d) if d != from_xml => Err(DecodeError::Charset {
            offset: None,
            message: format!(
                "xml declaration says encoding {:?} but {d} was declared",
                truncate(label, 40)
            ),
        }),
        _ => Ok(Some(from_xml)),
    }
}

/// The `encoding` pseudo-attribute of a leading XML declaration, if any.
fn sniff_encoding(body: &[u8]) -> Option<&str> {
    let rest = body.strip_prefix(b"<?xml")?;
    if !rest.first().is_some_and(u8::is_ascii_whitespace) {
        return None;
    }
    // Declarations are short; bounding the search keeps a hostile prefix from costing a scan.
    let window = &rest[..rest.len().min(256)];
    let end = window.windows(2).position(|w| w == b"?>")?;
    let decl = &window[..end];
    let at = decl.windows(8).position(|w| w == b"encoding")?;
    let mut s = decl[at + 8..].trim_ascii_start();
    s = s.strip_prefix(b"=")?.trim_ascii_start();
    let quote = *s.first().filter(|q| matches!(q, b'"' | b'\''))?;
    let value = &s[1..];
    let close = value.iter().position(|&b| b == quote)?;
    std::str::from_utf8(&value[..close]).ok()
}

/// An element being built inside a record.
struct Frame {
    name: String,
    obj: Document,
    text: String,
    has_children: bool,
}

impl Frame {
    fn new(name: String) -> Self {
        Frame { name, obj: Document::new(), text: String::new(), has_children: false }
    }

    fn finish(mut self) -> Value {
        if self.obj.is_empty() {
            return Value::String(self.text);
        }
        let text = if self.has_children { self.text.trim() } else { self.text.as_str() };
        if !text.is_empty() {
            let text = text.to_owned();
            self.obj.insert("$text".to_owned(), Value::String(text));
        }
        Value::Object(self.obj)
    }
}

/// A record in progress: its element stack, field count and first per-record problem.
struct Builder {
    stack: Vec<Frame>,
    fields: usize,
    error: Option<String>,
}

/// A finished candidate record.
struct Done {
    name: String,
    value: Value,
    fields: usize,
    error: Option<String>,
}

struct Parser<'a, 'o> {
    text: &'a str,
    limits: &'o DecodeLimits,
    record_element: Option<&'o str>,
    reader: Reader<&'a [u8]>,
    /// Open elements, all of them (inside and outside records).
    depth: usize,
    root_done: bool,
    current: Option<Builder>,
    /// Depth at which `current` started.
    record_depth: usize,
    /// Auto mode: the root element (attributes and text) while its children are collected.
    root: Option<Frame>,
    root_fields: usize,
    /// Auto mode: a per-record problem of the root's own attributes.
    root_error: Option<String>,
    done: Vec<Done>,
    /// Number of keys of the last record, the capacity hint for the next.
    last_record_len: usize,
}

pub(super) fn decode(
    text: &str,
    limits: &DecodeLimits,
    opts: &XmlOptions,
) -> Result<Vec<RecordResult>, DecodeError> {
    if text.trim().is_empty() {
        return Err(DecodeError::Empty);
    }
    let mut reader = Reader::from_str(text);
    let cfg = reader.config_mut();
    cfg.check_end_names = true;
    cfg.allow_unmatched_ends = false;
    cfg.allow_dangling_amp = false;
    cfg.expand_empty_elements = false;
    let mut p = Parser {
        text,
        limits,
        record_element: opts.record_element.as_deref(),
        reader,
        // Typical credit records have 20-odd fields; later records use the real size.
        last_record_len: 24,
        depth: 0,
        root_done: false,
        current: None,
        record_depth: 0,
        root: None,
        root_fields: 0,
        root_error: None,
        done: Vec::new(),
    };
    p.run()?;
    p.finish()
}

impl<'a> Parser<'a, '_> {
    fn position(&self) -> String {
        line_col(self.text, usize::try_from(self.reader.buffer_position()).unwrap_or(usize::MAX))
    }

    fn run(&mut self) -> Result<(), DecodeError> {
        loop {
            let event = match self.reader.read_event() {
                Ok(e) => e,
                Err(e) => {
                    let at = usize::try_from(self.reader.error_position()).unwrap_or(usize::MAX);
                    return Err(DecodeError::Syntax {
                        codec: Codec::Xml,
                        position: line_col(self.text, at),
                        message: e.to_string(),
                    });
                }
            };
            match event {
                Event::Start(e) => self.start(&e, false)?,
                Event::Empty(e) => self.start(&e, true)?,
                Event::End(_) => self.end(),
                Event::Text(t) => self.text(&t.xml10_content())?,
                Event::CData(t) => self.text(&t.xml10_content())?,
                Event::GeneralRef(r) => {
                    let ch;
                    let resolved: &str = if r.is_char_ref() {
                        match r.resolve_char_ref() {
                            Ok(Some(c)) if is_xml_char(c) => {
                                ch = c.to_string();
                                &ch
                            }
                            _ => return Err(self.entity(&r)),
                        }
                    } else {
                        match resolve_predefined_entity(&r) {
                            Some(s) => s,
                            None => return Err(self.entity(&r)),
                        }
                    };
                    self.text(resolved)?;
                }
                Event::DocType(_) => return Err(DecodeError::Doctype),
                Event::Decl(_) | Event::PI(_) | Event::Comment(_) => {}
                Event::Eof => break,
            }
        }
        if self.depth > 0 {
            return Err(DecodeError::Syntax {
                codec: Codec::Xml,
                position: line_col(self.text, self.text.len()),
                message: "unexpected end of document: unclosed element".to_owned(),
            });
        }
        if !self.root_done {
            return Err(DecodeError::Shape {
                message: "xml document has no root element".to_owned(),
            });
        }
        Ok(())
    }

    fn entity(&self, name: &str) -> DecodeError {
        DecodeError::Entity { name: truncate(name, 40).to_owned(), position: self.position() }
    }

    fn start(&mut self, e: &BytesStart<'_>, empty: bool) -> Result<(), DecodeError> {
        if self.depth == 0 && self.root_done {
            return Err(DecodeError::Syntax {
                codec: Codec::Xml,
                position: self.position(),
                message: "more than one root element".to_owned(),
            });
        }
        self.depth += 1;
        if self.depth > self.limits.max_depth {
            return Err(DecodeError::Depth {
                limit: self.limits.max_depth,
                position: self.position(),
            });
        }
        let local_name = e.local_name();
        let name: &str = local_name.as_ref();

        let starts_record = self.current.is_none()
            && match self.record_element {
                Some(r) => name == r,
                None => self.depth == 2,
            };
        if starts_record {
            if self.record_element.is_some() && self.done.len() >= self.limits.max_records {
                return Err(DecodeError::TooManyRecords { limit: self.limits.max_records });
            }
            if self.record_element.is_none() {
                self.check_auto_children()?;
            }
            self.current = Some(Builder { stack: Vec::new(), fields: 0, error: None });
            self.record_depth = self.depth;
        }

        if let Some(b) = self.current.as_mut() {
            if !b.stack.is_empty() {
                b.fields += 1; // the child element itself
            }
            let mut frame = Frame::new(name.to_owned());
            if b.stack.is_empty() {
                // The record element: size its map like the previous record's (records of a
                // feed share their shape), sparing the regrowth and rehashing per child.
                frame.obj = Document::with_capacity(self.last_record_len);
            }
            let attrs = read_attributes(e, self.limits, &mut frame.obj, Some(&mut b.error))
                .map_err(|err| err.at(self.text, &self.reader))?;
            b.fields += attrs;
            if b.fields > self.limits.max_fields {
                return Err(DecodeError::TooManyFields {
                    limit: self.limits.max_fields,
                    position: self.position(),
                });
            }
            if let Some(parent) = b.stack.last_mut() {
                parent.has_children = true;
            }
            b.stack.push(frame);
        } else if self.depth == 1 && self.record_element.is_none() {
            // Auto mode root: keep its attributes in case the root turns out to be the record.
            let mut frame = Frame::new(name.to_owned());
            self.root_fields =
                read_attributes(e, self.limits, &mut frame.obj, Some(&mut self.root_error))
                    .map_err(|err| err.at(self.text, &self.reader))?;
            self.root = Some(frame);
        } else {
            // Outside any record: only bound and check the attributes.
            read_attributes(e, self.limits, &mut Document::new(), None)
                .map_err(|err| err.at(self.text, &self.reader))?;
        }

        if empty {
            self.end();
        }
        Ok(())
    }

    /// Auto mode counts root children as they come, so a flood of them stops early.
    fn check_auto_children(&self) -> Result<(), DecodeError> {
        let n = self.done.len();
        if n >= self.limits.max_records && n >= self.limits.max_fields {
            let same = self.done.windows(2).all(|w| w[0].name == w[1].name);
            return Err(if same {
                DecodeError::TooManyRecords { limit: self.limits.max_records }
            } else {
                DecodeError::TooManyFields {
                    limit: self.limits.max_fields,
                    position: self.position(),
                }
            });
        }
        Ok(())
    }

    fn end(&mut self) {
        self.depth = self.depth.saturating_sub(1);
        if self.depth == 0 {
            self.root_done = true;
        }
        let Some(b) = self.current.as_mut() else {
            return;
        };
        let Some(mut frame) = b.stack.pop() else { return };
        let name = mem::take(&mut frame.name);
        let value = frame.finish();
        match b.stack.last_mut() {
            Some(parent) => insert_child(&mut parent.obj, name, value),
            None => {
                if let Value::Object(record) = &value {
                    self.last_record_len = record.len();
                }
                if let Some(b) = self.current.take() {
                    self.done.push(Done { name, value, fields: b.fields, error: b.error });
                }
            }
        }
    }

    fn text(&mut self, s: &str) -> Result<(), DecodeError> {
        let max = self.limits.max_field_bytes;
        let target = match self.current.as_mut() {
            Some(b) => match b.stack.last_mut() {
                Some(f) => {
                    if f.text.len() + s.len() > max {
                        if b.error.is_none() {
                            b.error = Some(format!(
                                "text of <{}> is longer than {max} bytes",
                                truncate(&f.name, 40)
                            ));
                        }
                        return Ok(());
                    }
                    &mut f.text
                }
                None => return Ok(()),
            },
            None if self.depth == 1 && self.record_element.is_none() => match self.root.as_mut() {
                Some(root) if root.text.len() + s.len() <= max => &mut root.text,
                _ => return Ok(()),
            },
            None if self.depth == 0 => {
                if s.trim().is_empty() {
                    return Ok(());
                }
                return Err(DecodeError::Syntax {
                    codec: Codec::Xml,
                    position: self.position(),
                    message: "text outside the root element".to_owned(),
                });
            }
            None => return Ok(()),
        };
        target.push_str(s);
        Ok(())
    }

    fn finish(mut self) -> Result<Vec<RecordResult>, DecodeError> {
        let limits = self.limits;
        let done = mem::take(&mut self.done);
        let as_records = match self.record_element {
            Some(_) => true,
            None => done.len() >= 2 && done.windows(2).all(|w| w[0].name == w[1].name),
        };
        if as_records {
            if done.len() > limits.max_records {
                return Err(DecodeError::TooManyRecords { limit: limits.max_records });
            }
            return Ok(done
                .into_iter()
                .enumerate()
                .map(|(i, d)| match d.error {
                    Some(msg) => Err(RecordDecodeError::record(i, msg)),
                    None => Ok(into_record(d.value)),
                })
                .collect());
        }
        // The root is the one record.
        let mut root = self.root.take().unwrap_or_else(|| Frame::new(String::new()));
        let mut fields = self.root_fields;
        let mut error = self.root_error.take();
        for d in done {
            fields += 1 + d.fields;
            error = error.or(d.error);
            root.has_children = true;
            insert_child(&mut root.obj, d.name, d.value);
        }
        if fields > limits.max_fields {
            return Err(DecodeError::TooManyFields {
                limit: limits.max_fields,
                position: "record 1".to_owned(),
            });
        }
        Ok(vec![match error {
            Some(msg) => Err(RecordDecodeError::record(0, msg)),
            None => Ok(into_record(root.finish())),
        }])
    }
}

fn into_record(v: Value) -> Document {
    match v {
        Value::Object(m) => m,
        Value::String(s) if s.is_empty() => Document::new(),
        other => {
            let mut m = Document::new();
            m.insert("$text".to_owned(), other);
            m
        }
    }
}

/// Adds a child's value; a repeated name turns into an array. Element values are never arrays
/// themselves, so an existing array always means "repeated".
fn insert_child(obj: &mut Document, name: String, value: Value) {
    // One lookup (one hash of the name) per child instead of a lookup and an insert.
    match obj.entry(name) {
        Entry::Vacant(vacant) => {
            vacant.insert(value);
        }
        Entry::Occupied(mut occupied) => match occupied.get_mut() {
            Value::Array(items) => items.push(value),
            existing => {
                let first = mem::take(existing);
                *existing = Value::Array(vec![first, value]);
            }
        },
    }
}

/// A failure inside a tag, positioned later (the reader is borrowed while attributes are read).
enum AttrFailure {
    TooMany(usize),
    Syntax(String),
    Entity(String),
    Duplicate(String),
}

impl AttrFailure {
    fn at(self, text: &str, reader: &Reader<&[u8]>) -> DecodeError {
        let position =
            line_col(text, usize::try_from(reader.buffer_position()).unwrap_or(usize::MAX));
        match self {
            AttrFailure::TooMany(limit) => DecodeError::TooManyFields { limit, position },
            AttrFailure::Syntax(message) => {
                DecodeError::Syntax { codec: Codec::Xml, position, message }
            }
            AttrFailure::Entity(name) => DecodeError::Entity { name, position },
            AttrFailure::Duplicate(key) => DecodeError::DuplicateKey { key, position },
        }
    }
}

/// Reads the attributes of a tag and, inside a record (`record_error` given), stores them as
/// `@name`; returns how many fields were added. An oversized value is a per-record problem,
/// noted in `record_error`. Stops at `max_fields + 1` so the scan stays bounded whatever the tag.
fn read_attributes(
    e: &BytesStart<'_>,
    limits: &DecodeLimits,
    obj: &mut Document,
    record_error: Option<&mut Option<String>>,
) -> Result<usize, AttrFailure> {
    let Some(record_error) = record_error else {
        return check_attributes(e, limits).map(|()| 0);
    };
    let mut count = 0usize;
    let mut kept = 0usize;
    for attr in e.attributes() {
        count += 1;
        if count > limits.max_fields {
            return Err(AttrFailure::TooMany(limits.max_fields));
        }
        let attr = attr.map_err(|err| AttrFailure::Syntax(err.to_string()))?;
        let qname: &str = attr.key.as_ref();
        if qname == "xmlns" || qname.starts_with("xmlns:") {
            continue; // prefixes are dropped, so their declarations carry nothing
        }
        let value = attr.normalized_value(XmlVersion::Implicit1_0).map_err(attr_value_error)?;
        if value.len() > limits.max_field_bytes {
            if record_error.is_none() {
                *record_error = Some(format!(
                    "attribute {:?} is longer than {} bytes",
                    truncate(qname, 40),
                    limits.max_field_bytes
                ));
            }
            continue;
        }
        let key = format!("@{}", attr.key.local_name().as_ref());
        if obj.contains_key(&key) {
            return Err(AttrFailure::Duplicate(truncate(&key, 40).to_owned()));
        }
        obj.insert(key, Value::String(value.into_owned()));
        kept += 1;
    }
    Ok(kept)
}

/// Attributes outside records: counted, and checked for syntax and entities, but not kept.
fn check_attributes(e: &BytesStart<'_>, limits: &DecodeLimits) -> Result<(), AttrFailure> {
    for (count, attr) in e.attributes().enumerate() {
        if count >= limits.max_fields {
            return Err(AttrFailure::TooMany(limits.max_fields));
        }
        let attr = attr.map_err(|err| AttrFailure::Syntax(err.to_string()))?;
        attr.normalized_value(XmlVersion::Implicit1_0).map_err(attr_value_error)?;
    }
    Ok(())
}

fn attr_value_error(err: quick_xml::Error) -> AttrFailure {
    match err {
        quick_xml::Error::Escape(EscapeError::UnrecognizedEntity(_, name)) => {
            AttrFailure::Entity(truncate(&name, 40).to_owned())
        }
        other => AttrFailure::Syntax(other.to_string()),
    }
}

/// XML 1.0 `Char` production (character references must name one).
fn is_xml_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::{DecodeOptions, decode as decode_bytes};
    use serde_json::json;

    fn opts(record_element: Option<&str>) -> DecodeOptions {
        let mut o = DecodeOptions::new(Codec::Xml);
        o.xml.record_element = record_element.map(str::to_owned);
        o
    }

    fn run(s: &str) -> Result<Vec<RecordResult>, DecodeError> {
        decode_bytes(s.as_bytes(), &opts(None))
    }

    fn values(s: &str, rec: Option<&str>) -> Vec<Value> {
        decode_bytes(s.as_bytes(), &opts(rec))
            .unwrap()
            .into_iter()
            .map(|r| Value::Object(r.unwrap()))
            .collect()
    }

    #[test]
    fn repeated_root_children_are_records() {
        let v = values(
            "<?xml version=\"1.0\"?>\n<list>\n  <row><MC>甲</MC><NR/></row>\n  <row><MC>乙</MC><NR>x</NR></row>\n</list>",
            None,
        );
        assert_eq!(v, [json!({"MC": "甲", "NR": ""}), json!({"MC": "乙", "NR": "x"})]);
    }

    #[test]
    fn convention() {
        let doc = r#"<p:rec xmlns:p="urn:x" id="7">
            <name lang="zh">张三</name>
            <tag>a</tag><tag>b</tag><tag/>
            <addr><city>武汉</city><zip>430000</zip></addr>
            <note>a &lt; b &amp; c &#x20BB7; &#21513;<![CDATA[<raw>]]></note>
            <p:empty></p:empty>
            tail text
        </p:rec>"#;
        let v = values(doc, None);
        assert_eq!(
            v,
            [json!({
                "@id": "7",
                "name": {"@lang": "zh", "$text": "张三"},
                "tag": ["a", "b", ""],
                "addr": {"city": "武汉", "zip": "430000"},
                "note": "a < b & c 𠮷 吉<raw>",
                "empty": "",
                "$text": "tail text"
            })]
        );
    }

    #[test]
    fn record_element_option() {
        let doc = "<resp><code>0</code><data><item><a>1</a></item></data><data><item><a>2</a></item></data></resp>";
        assert_eq!(values(doc, Some("item")), [json!({"a": "1"}), json!({"a": "2"})]);
        assert!(values("<resp><code>0</code></resp>", Some("item")).is_empty());
        // Without it, one child (or mixed children) means the root is the record.
        assert_eq!(values("<r><item><a>1</a></item></r>", None), [json!({"item": {"a": "1"}})]);
        assert_eq!(values("<r>text</r>", None), [json!({"$text": "text"})]);
        assert_eq!(values("<r/>", None), [json!({})]);
    }

    #[test]
    fn doctype_is_rejected_billion_laughs_and_xxe() {
        let laughs = r#"<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
]>
<lolz>&lol2;</lolz>"#;
        assert_eq!(run(laughs).unwrap_err().code(), "doctype");
        let xxe = r#"<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]><r>&x;</r>"#;
        assert_eq!(run(xxe).unwrap_err(), DecodeError::Doctype);
    }

    #[test]
    fn only_predefined_entities_and_char_refs() {
        let err = run("<r><a>&x;</a></r>").unwrap_err();
        assert_eq!(err.code(), "entity");
        assert!(err.to_string().contains("&x;"), "{err}");
        assert_eq!(run("<r a=\"&nbsp;\"/>").unwrap_err().code(), "entity");
        assert_eq!(run("<r>&#0;</r>").unwrap_err().code(), "entity");
        assert_eq!(run("<r>&#x1;</r>").unwrap_err().code(), "entity");
        assert_eq!(values("<r a='&quot;&apos;&#65;'/>", None), [json!({"@a": "\"'A"})]);
    }

    #[test]
    fn many_attributes_stop_at_the_field_limit() {
        let attrs: String = (0..10_000).map(|i| format!(" a{i}=\"v\"")).collect();
        let doc = format!("<r><x{attrs}/></r>");
        let t = std::time::Instant::now();
        let err = run(&doc).unwrap_err();
        assert!(matches!(err, DecodeError::TooManyFields { limit: 512, .. }), "{err:?}");
        assert!(t.elapsed().as_millis() < 500, "{:?}", t.elapsed());
        // Also outside records, and for xmlns floods.
        let ns: String = (0..10_000).map(|i| format!(" xmlns:n{i}=\"u{i}\"")).collect();
        let err = decode_bytes(format!("<r{ns}><item/></r>").as_bytes(), &opts(Some("item")));
        assert_eq!(err.unwrap_err().code(), "too_many_fields");
    }

    #[test]
    fn fields_are_counted_per_record() {
        let mut o = opts(None);
        o.limits.max_fields = 3;
        let ok = "<l><r><a/><b/><c/></r><r><a/><b/><c/></r></l>";
        assert_eq!(decode_bytes(ok.as_bytes(), &o).unwrap().len(), 2);
        let bad = "<l><r><a/><b/><c x='1'/></r><r/></l>";
        assert_eq!(decode_bytes(bad.as_bytes(), &o).unwrap_err().code(), "too_many_fields");
        // Root as the record: all children count.
        let root = "<r><a/><b/><c/><d/></r>";
        assert_eq!(decode_bytes(root.as_bytes(), &o).unwrap_err().code(), "too_many_fields");
    }

    #[test]
    fn depth_bomb() {
        let bomb = "<a>".repeat(100_000);
        let err = run(&bomb).unwrap_err();
        assert!(matches!(err, DecodeError::Depth { limit: 32, .. }), "{err:?}");
        let ok = format!("{}{}", "<a>".repeat(32), "</a>".repeat(32));
        assert!(run(&ok).is_ok());
    }

    #[test]
    fn malformed_documents() {
        let err = run("<r>\n  <a>1</b>\n</r>").unwrap_err();
        assert_eq!(err.code(), "syntax");
        assert!(err.to_string().contains("line 2"), "{err}");
        assert_eq!(run("<r><a>").unwrap_err().code(), "syntax");
        assert_eq!(run("<r/><r/>").unwrap_err().code(), "syntax");
        assert_eq!(run("junk<r/>").unwrap_err().code(), "syntax");
        assert_eq!(run("<?xml version='1.0'?>").unwrap_err().code(), "shape");
        assert_eq!(run("  ").unwrap_err().code(), "empty");
        assert_eq!(run("<r a='1' a='2'/>").unwrap_err().code(), "syntax");
        assert_eq!(run("<r p:a='1' q:a='2'/>").unwrap_err().code(), "duplicate_key");
    }

    #[test]
    fn oversized_text_rejects_only_its_record() {
        let mut o = opts(Some("r"));
        o.limits.max_field_bytes = 4;
        let res = decode_bytes(b"<l><r><a>1234</a></r><r><a>12345</a></r><r/></l>", &o).unwrap();
        assert!(res[0].is_ok() && res[2].is_ok());
        let e = res[1].as_ref().unwrap_err();
        assert_eq!(e.location, "record 2");
        assert!(e.message.contains("<a>"), "{e}");
        let res = decode_bytes(b"<l><r x='12345'/><r x='1'/></l>", &o).unwrap();
        assert!(res[0].as_ref().unwrap_err().message.contains("attribute \"x\""));
        assert!(res[1].is_ok());
    }

    #[test]
    fn too_many_records() {
        let mut o = opts(Some("r"));
        o.limits.max_records = 2;
        assert_eq!(
            decode_bytes(b"<l><r/><r/><r/></l>", &o).unwrap_err().code(),
            "too_many_records"
        );
    }

    #[test]
    fn xml_declared_encoding() {
        let (body, _, _) = encoding_rs::GB18030.encode("<r><MC>𠮷示例</MC></r>");
        let mut doc = b"<?xml version=\"1.0\" encoding=\"GBK\"?>\n".to_vec();
        doc.extend_from_slice(&body);
        assert_eq!(values_bytes(&doc, None), [json!({"MC": "𠮷示例"})]);
        assert_eq!(values_bytes(&doc, Some(Charset::Gb18030)), [json!({"MC": "𠮷示例"})]);
        let err = decode_bytes(&doc, &opts(None).with_charset(Some(Charset::Utf8))).unwrap_err();
        assert_eq!(err.code(), "charset");
        assert!(err.to_string().contains("utf-8 was declared"), "{err}");
        let latin = b"<?xml version='1.0' encoding='ISO-8859-1'?><r/>";
        assert_eq!(decode_bytes(latin, &opts(None)).unwrap_err().code(), "charset");
        // A UTF-8 declaration in a GB18030-declared feed is a conflict too.
        let utf8 = "<?xml version='1.0' encoding='UTF-8'?><r/>".as_bytes();
        let err = decode_bytes(utf8, &opts(None).with_charset(Some(Charset::Gb18030)));
        assert_eq!(err.unwrap_err().code(), "charset");
        assert_eq!(
            sniff_encoding(b"<?xml version = '1.0' encoding = \"gb2312\" ?><r/>"),
            Some("gb2312")
        );
        assert_eq!(sniff_encoding(b"<?xml-stylesheet encoding='x'?>"), None);
    }

    fn values_bytes(b: &[u8], cs: Option<Charset>) -> Vec<Value> {
        decode_bytes(b, &opts(None).with_charset(cs))
            .unwrap()
            .into_iter()
            .map(|r| Value::Object(r.unwrap()))
            .collect()
    }
}
