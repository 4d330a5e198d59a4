//! CSV with a required header row. Values are strings exactly as sent (empty cells are `""`);
//! header names are trimmed because exports from spreadsheet tools often pad them.
//!
//! A bad row (wrong number of cells, an oversized cell, a NUL byte) rejects that row only: the
//! reader runs in flexible mode so ragged rows reach us instead of aborting the file.

use std::collections::HashSet;

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
    let mut reader = ::csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(true)
        .delimiter(opts.delimiter)
        .from_reader(text.as_bytes());

    let headers = reader.headers().map_err(syntax)?.clone();
    let names = header_names(&headers, limits)?;

    let mut out = Vec::new();
    let mut row = ::csv::StringRecord::new();
    while reader.read_record(&mut row).map_err(syntax)? {
        let index = out.len();
        if index >= limits.max_records {
            return Err(DecodeError::TooManyRecords { limit: limits.max_records });
        }
        out.push(build_row(index, &row, &names, limits));
    }
    Ok(out)
}

fn header_names(
    headers: &::csv::StringRecord,
    limits: &DecodeLimits,
) -> Result<Vec<String>, DecodeError> {
    if headers.len() > limits.max_fields {
        return Err(DecodeError::TooManyFields {
            limit: limits.max_fields,
            position: "row 1".to_owned(),
        });
    }
    let mut seen = HashSet::with_capacity(headers.len());
    let mut names = Vec::with_capacity(headers.len());
    for (i, raw) in headers.iter().enumerate() {
        // The BOM was stripped with the charset, but a second one pasted into a header is common
        // enough in hand-edited exports to strip as well.
        let name = raw.trim_start_matches('\u{feff}').trim();
        if name.is_empty() {
            return Err(DecodeError::Header {
                message: format!("column {} has an empty name", i + 1),
            });
        }
        if name.len() > limits.max_field_bytes || name.contains('\0') {
            return Err(DecodeError::Header {
                message: format!("column {} has an invalid name", i + 1),
            });
        }
        if !seen.insert(name) {
            return Err(DecodeError::Header {
                message: format!("duplicate column name {:?}", truncate(name, 40)),
            });
        }
        names.push(name.to_owned());
    }
    Ok(names)
}

fn build_row(
    index: usize,
    row: &::csv::StringRecord,
    names: &[String],
    limits: &DecodeLimits,
) -> RecordResult {
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

/// The input is valid UTF-8 and comes from memory, so the csv reader can hardly fail; keep the
/// position if it does.
fn syntax(e: ::csv::Error) -> DecodeError {
    let position = e
        .position()
        .map_or_else(|| "unknown position".to_owned(), |p| format!("line {}", p.line()));
    DecodeError::Syntax { codec: Codec::Csv, position, message: e.to_string() }
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
