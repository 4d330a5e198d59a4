//! CSV with a required header row. Values are strings exactly as sent (empty cells are `""`);
//! header names are trimmed because exports from spreadsheet tools often pad them.
//!
//! A bad row (wrong number of cells, an oversized cell, a NUL byte) rejects that row only: the
//! reader runs in flexible mode so ragged rows reach us instead of aborting the file.

use std::cell::RefCell;
use std::rc::Rc;

use serde_json::Value;

use super::{CsvOptions, DecodeError, DecodeLimits, RecordDecodeError, RecordResult, truncate};
use crate::decode::Codec;
use crate::record::Document;

pub(super) fn decode(
    text: &str,
    limits: &DecodeLimits,
    opts: &CsvOptions,
) -> Result<Vec<RecordResult>, DecodeError> {
    if text.trim().is_empty() {
        return Err(DecodeError::Empty);
    }
    let mut rows = Rows::new(text.as_bytes(), opts.delimiter);

    // No first row at all (only blank lines) reads as a header without columns, as before.
    let names = match rows.next_row()? {
        Some(headers) => cached_header_names(&headers, limits)?,
        None => Rc::from(header_names(&Row::default(), limits)?),
    };

    let mut out = Vec::new();
    while let Some(row) = rows.next_row()? {
        let index = out.len();
        if index >= limits.max_records {
            return Err(DecodeError::TooManyRecords { limit: limits.max_records });
        }
        out.push(build_row(index, &row, &names, limits));
    }
    Ok(out)
}

/// A csv-core parser for `delimiter`: this thread's cached one, else a new one.
///
/// Building a parser compiles its DFA (~270k instructions), which cost more than decoding,
/// mapping and validating a one-record document together, so each thread keeps its parsers
/// and [`Rows`] hands them back, reset, when done. (Cloning a built parser is no way out:
/// csv-core 0.1.13's `Clone` for its DFA copies only the transition table, and the clone
/// then reads every row as one empty field.) The configuration is what
/// `csv::ReaderBuilder::new().flexible(true).delimiter(d)` gave (default quoting,
/// CRLF-or-LF terminators, no comments, no trimming, a leading UTF-8 BOM skipped by csv-core
/// itself), so records are parsed exactly as before; `flexible` only switched off the `csv`
/// crate's own row-length check, and ragged rows are ours to report.
fn take_parser(delimiter: u8) -> ::csv_core::Reader {
    PARSERS
        .with_borrow_mut(|cached| {
            let at = cached.iter().position(|(d, _)| *d == delimiter)?;
            Some(cached.swap_remove(at).1)
        })
        .unwrap_or_else(|| ::csv_core::ReaderBuilder::new().delimiter(delimiter).build())
}

thread_local! {
    /// Parsers not in use, by delimiter (see [`take_parser`]).
    static PARSERS: RefCell<Vec<(u8, ::csv_core::Reader)>> = const { RefCell::new(Vec::new()) };
}

/// One parsed row, borrowed from the reader's buffers: the unescaped fields back to back and
/// where each field ends.
#[derive(Debug, Default)]
struct Row<'r> {
    text: &'r str,
    ends: &'r [usize],
}

impl<'r> Row<'r> {
    fn len(&self) -> usize {
        self.ends.len()
    }

    fn iter(&self) -> impl Iterator<Item = &'r str> + use<'r> {
        let text = self.text;
        let starts = std::iter::once(0).chain(self.ends.iter().copied());
        // `ends` come from the parser over `text`, so every range is in bounds and on a char
        // boundary (only ASCII delimiters and quotes are ever removed); `get` cannot fail.
        starts.zip(self.ends).map(move |(start, &end)| text.get(start..end).unwrap_or_default())
    }
}

/// The rows of a CSV text, read with csv-core directly over the in-memory input; the field
/// buffers are reused from row to row.
struct Rows<'a> {
    delimiter: u8,
    /// Always `Some` until dropped.
    parser: Option<::csv_core::Reader>,
    input: &'a [u8],
    fields: Vec<u8>,
    ends: Vec<usize>,
    done: bool,
}

impl<'a> Rows<'a> {
    fn new(input: &'a [u8], delimiter: u8) -> Self {
        Rows {
            delimiter,
            parser: Some(take_parser(delimiter)),
            input,
            // Grown on demand; a row's unescaped bytes never outnumber the input's.
            fields: vec![0; input.len().clamp(1, 4096)],
            ends: vec![0; 32],
            done: false,
        }
    }

    /// The next row, `None` at the end of the input (blank lines are skipped by the parser).
    fn next_row(&mut self) -> Result<Option<Row<'_>>, DecodeError> {
        use ::csv_core::ReadRecordResult;
        if self.done {
            return Ok(None);
        }
        let Some(parser) = self.parser.as_mut() else { return Ok(None) };
        let (mut out_len, mut ends_len) = (0, 0);
        loop {
            let (result, read, written, ended) = parser.read_record(
                self.input,
                &mut self.fields[out_len..],
                &mut self.ends[ends_len..],
            );
            self.input = &self.input[read..];
            out_len += written;
            ends_len += ended;
            match result {
                ReadRecordResult::InputEmpty => {}
                ReadRecordResult::OutputFull => self.fields.resize(self.fields.len() * 2, 0),
                ReadRecordResult::OutputEndsFull => self.ends.resize(self.ends.len() * 2, 0),
                ReadRecordResult::Record => break,
                ReadRecordResult::End => {
                    self.done = true;
                    return Ok(None);
                }
            }
        }
        // The input is a `str` and the parser removes only ASCII bytes, so this cannot fail;
        // keep the line if it ever does.
        let text =
            std::str::from_utf8(&self.fields[..out_len]).map_err(|e| DecodeError::Syntax {
                codec: Codec::Csv,
                position: format!("line {}", parser.line()),
                message: format!("invalid UTF-8 in CSV record: {e}"),
            })?;
        Ok(Some(Row { text, ends: &self.ends[..ends_len] }))
    }
}

impl Drop for Rows<'_> {
    /// Hands the parser back to this thread's cache, reset for the next document.
    fn drop(&mut self) {
        if let Some(mut parser) = self.parser.take() {
            parser.reset();
            PARSERS.with_borrow_mut(|cached| cached.push((self.delimiter, parser)));
        }
    }
}

/// [`header_names`], remembered per thread for the last few header rows seen: a source sends
/// the same header in every document, and checking it (trim, BOM, NUL, repeats, a copy of
/// every name) cost as much as parsing the rest of a one-row document. Only accepted headers
/// are remembered; the limits are part of the key.
fn cached_header_names(
    headers: &Row<'_>,
    limits: &DecodeLimits,
) -> Result<Rc<[String]>, DecodeError> {
    let same = |h: &HeaderNames| {
        h.text == headers.text
            && h.ends == headers.ends
            && h.max_fields == limits.max_fields
            && h.max_field_bytes == limits.max_field_bytes
    };
    if let Some(names) =
        HEADERS.with_borrow(|cached| cached.iter().find(|h| same(h)).map(|h| Rc::clone(&h.names)))
    {
        return Ok(names);
    }
    let names: Rc<[String]> = Rc::from(header_names(headers, limits)?);
    HEADERS.with_borrow_mut(|cached| {
        if cached.len() >= HEADER_CACHE_SIZE {
            cached.remove(0);
        }
        cached.push(HeaderNames {
            text: headers.text.to_owned(),
            ends: headers.ends.to_vec(),
            max_fields: limits.max_fields,
            max_field_bytes: limits.max_field_bytes,
            names: Rc::clone(&names),
        });
    });
    Ok(names)
}

/// Header rows remembered per thread (one per CSV source a thread serves, typically).
const HEADER_CACHE_SIZE: usize = 8;

/// An accepted header row (as parsed) with the limits it was checked against, and its names.
struct HeaderNames {
    text: String,
    ends: Vec<usize>,
    max_fields: usize,
    max_field_bytes: usize,
    names: Rc<[String]>,
}

thread_local! {
    static HEADERS: RefCell<Vec<HeaderNames>> = const { RefCell::new(Vec::new()) };
}

fn header_names(headers: &Row<'_>, limits: &DecodeLimits) -> Result<Vec<String>, DecodeError> {
    if headers.len() > limits.max_fields {
        return Err(DecodeError::TooManyFields {
            limit: limits.max_fields,
            position: "row 1".to_owned(),
        });
    }
    let mut names = Vec::with_capacity(headers.len());
    for (i, raw) in headers.iter().enumerate() {
        // The BOM was stripped with the charset, but a second one pasted into a header is common
        // enough in hand-edited exports to strip as well.
        let name = raw.trim_start_matches('\u{feff}').trim();
        let invalid = if name.is_empty() {
            Some(format!("column {} has an empty name", i + 1))
        } else if name.len() > limits.max_field_bytes || name.contains('\0') {
            Some(format!("column {} has an invalid name", i + 1))
        } else {
            None
        };
        if let Some(message) = invalid {
            // Columns are reported in order: a repeated name before this column comes first.
            return Err(first_duplicate(&names).unwrap_or(DecodeError::Header { message }));
        }
        names.push(name);
    }
    if let Some(duplicate) = first_duplicate(&names) {
        return Err(duplicate);
    }
    Ok(names.into_iter().map(str::to_owned).collect())
}

/// The first column (in order) whose name an earlier column already has. Sorting instead of
/// a hash set: cheaper for the few dozen columns of an export, and still `n log n` for a
/// hostile header of `max_fields` names.
fn first_duplicate(names: &[&str]) -> Option<DecodeError> {
    let mut sorted: Vec<(&str, usize)> = names.iter().copied().zip(0..).collect();
    sorted.sort_unstable();
    // Within a run of equal names the second-lowest column is the first repeat.
    let column = sorted.windows(2).filter(|w| w[0].0 == w[1].0).map(|w| w[1].1).min()?;
    let name = names.get(column)?;
    Some(DecodeError::Header { message: format!("duplicate column name {:?}", truncate(name, 40)) })
}

fn build_row(index: usize, row: &Row<'_>, names: &[String], limits: &DecodeLimits) -> RecordResult {
    let err = |message: String| RecordDecodeError {
        index,
        location: format!("row {}", index + 2),
        message,
    };
    if row.len() != names.len() {
        return Err(err(format!("expected {} fields, found {}", names.len(), row.len())));
    }
    let mut doc = Document::with_capacity(names.len());
    for (name, cell) in names.iter().zip(row.iter()) {
        if cell.len() > limits.max_field_bytes {
            return Err(err(format!(
                "field {:?} is longer than {} bytes",
                truncate(name, 40),
                limits.max_field_bytes
            )));
        }
        if cell.contains('\0') {
            return Err(err(format!("field {:?} contains a NUL byte", truncate(name, 40))));
        }
        doc.insert(name.clone(), Value::String(cell.to_owned()));
    }
    Ok(doc)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::{Charset, DecodeOptions, decode as decode_bytes};
    use serde_json::json;

    fn run(s: &str) -> Result<Vec<RecordResult>, DecodeError> {
        decode_bytes(s.as_bytes(), &DecodeOptions::new(Codec::Csv))
    }

    #[test]
    fn header_and_quoted_fields() {
        let res = run(
            " CF_XDR_MC , CF_NR ,BZ\r\n\"湖北示例,有限公司\",\"罚款\n\"\"12345.67\"\"元\",\r\n",
        )
        .unwrap();
        assert_eq!(
            Value::Object(res[0].clone().unwrap()),
            json!({"CF_XDR_MC": "湖北示例,有限公司", "CF_NR": "罚款\n\"12345.67\"元", "BZ": ""})
        );
        assert!(run("a,b\n").unwrap().is_empty());
    }

    #[test]
    fn ragged_row_rejects_only_that_row() {
        let res = run("a,b\n1,2\n3\n4,5,6\n7,8\n").unwrap();
        assert_eq!(res.len(), 4);
        assert!(res[0].is_ok() && res[3].is_ok());
        let e = res[1].as_ref().unwrap_err();
        assert_eq!((e.index, e.location.as_str()), (1, "row 3"));
        assert_eq!(e.to_string(), "row 3: expected 2 fields, found 1");
        assert_eq!(res[2].as_ref().unwrap_err().location, "row 4");
    }

    #[test]
    fn nul_and_oversized_cells_reject_the_row() {
        let mut o = DecodeOptions::new(Codec::Csv);
        o.limits.max_field_bytes = 3;
        let res = decode_bytes(b"a,b\n1,2\n1234,2\nx,\0\n", &o).unwrap();
        assert!(res[0].is_ok());
        assert!(res[1].as_ref().unwrap_err().message.contains("longer than 3 bytes"));
        assert!(res[2].as_ref().unwrap_err().message.contains("NUL"));
    }

    #[test]
    fn remembered_headers_respect_the_limits() {
        let mut o = DecodeOptions::new(Codec::Csv);
        assert!(decode_bytes(b"a,b,c\n1,2,3\n", &o).is_ok());
        assert!(decode_bytes(b"a,b,c\n1,2,3\n", &o).is_ok());
        o.limits.max_fields = 2;
        assert_eq!(decode_bytes(b"a,b,c\n1,2,3\n", &o).unwrap_err().code(), "too_many_fields");
        o.limits.max_fields = 512;
        o.limits.max_field_bytes = 0;
        assert_eq!(decode_bytes(b"a,b,c\n,,\n", &o).unwrap_err().code(), "header");
        // Same names, other quoting: the parsed row is the same, and so are the names.
        let res = run("\"a\",b,c\n1,2,3\n").unwrap();
        assert_eq!(res[0].as_ref().unwrap().keys().collect::<Vec<_>>(), ["a", "b", "c"]);
    }

    #[test]
    fn header_errors_name_the_first_bad_column() {
        let message = |s: &str| match run(s).unwrap_err() {
            DecodeError::Header { message } => message,
            other => panic!("{other:?}"),
        };
        assert_eq!(message("a,b,a,b\n1,2,3,4\n"), "duplicate column name \"a\"");
        assert_eq!(message("b,a,a,b\n1,2,3,4\n"), "duplicate column name \"a\"");
        assert_eq!(message("a,a,,b\n1,2,3,4\n"), "duplicate column name \"a\"");
        assert_eq!(message("a,,a\n1,2,3\n"), "column 2 has an empty name");
        assert_eq!(message("x, y ,y\n1,2,3\n"), "duplicate column name \"y\"");
        assert!(run("a,b,c\n1,2,3\n").is_ok());
    }

    #[test]
    fn bad_headers_reject_the_document() {
        assert_eq!(run("a,,b\n1,2,3\n").unwrap_err().code(), "header");
        assert_eq!(run("a, a\n1,2\n").unwrap_err().code(), "header");
        assert_eq!(run("\n\n").unwrap_err().code(), "empty");
        let mut o = DecodeOptions::new(Codec::Csv);
        o.limits.max_fields = 2;
        assert_eq!(decode_bytes(b"a,b,c\n", &o).unwrap_err().code(), "too_many_fields");
        o.limits.max_records = 1;
        assert_eq!(decode_bytes(b"a\n1\n2\n", &o).unwrap_err().code(), "too_many_records");
    }

    #[test]
    fn delimiter_bom_and_gb18030() {
        let mut o = DecodeOptions::new(Codec::Csv).with_charset(Some(Charset::Gb18030));
        o.csv.delimiter = b';';
        let mut bytes = b"\x84\x31\x95\x33".to_vec();
        bytes.extend_from_slice(&encoding_rs::GB18030.encode("名称;金额\n𠮷,公司;1\n").0);
        let res = decode_bytes(&bytes, &o).unwrap();
        assert_eq!(Value::Object(res[0].clone().unwrap()), json!({"名称": "𠮷,公司", "金额": "1"}));
    }
}
