//! The first worksheet of an xlsx file as a header row and data rows of text, the form the CSV
//! decoder produces, so a CSV document type's mapping applies unchanged (`credgate import`).
//!
//! An xlsx is a zip archive of XML parts, and calamine places no bound on decompression: a
//! 500 KB file can expand to gigabytes, and one cell at `XFD1048576` makes a dense range of
//! seventeen billion cells. So, before calamine sees the bytes:
//!
//! * the file size is capped ([`XlsxLimits::max_file_bytes`]);
//! * the archive's central directory is read with `zip` and the declared uncompressed total
//!   capped ([`XlsxLimits::max_uncompressed_bytes`]); declared sizes are the file's own claim,
//!   so every entry is then inflated into a sink, stopping as soon as the real total passes
//!   the cap;
//!
//! and while reading, the sheet is streamed cell by cell (`worksheet_cells_reader`, never
//! `worksheet_range`), only non-empty cells are kept, and rows and columns are capped.
//!
//! Cell values become text as a person reads them in the spreadsheet: whole numbers without
//! a decimal point, dates as `YYYY-MM-DD` (`YYYY-MM-DD HH:MM:SS` with a time), booleans as
//! `TRUE`/`FALSE`. A cell holding an error value (`#N/A`, `#REF!`) rejects its row.
//! Long digit strings typed as numbers (ID numbers, USCCs) have already lost digits inside
//! Excel; such columns must be text cells in the workbook.

use std::collections::BTreeMap;
use std::io::{Cursor, Read};

use calamine::{DataRef, Reader, Xlsx};

/// Bounds on one xlsx file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct XlsxLimits {
    /// Size of the file itself.
    pub max_file_bytes: u64,
    /// Sum of the uncompressed sizes of all parts, declared and real.
    pub max_uncompressed_bytes: u64,
    /// Zip entries (parts) in the archive.
    pub max_entries: usize,
    /// Non-empty data rows, the header row not counted.
    pub max_rows: usize,
    /// Columns; a non-empty cell further right is an error.
    pub max_columns: usize,
}

impl Default for XlsxLimits {
    fn default() -> Self {
        XlsxLimits {
            max_file_bytes: 64 * 1024 * 1024,
            max_uncompressed_bytes: 256 * 1024 * 1024,
            max_entries: 10_000,
            max_rows: 100_000,
            max_columns: 512,
        }
    }
}

/// Why an xlsx file cannot be read at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum XlsxError {
    #[error("xlsx file is {size} bytes, over the limit of {limit}")]
    TooLarge { size: u64, limit: u64 },
    #[error(
        "xlsx parts declare {declared} bytes uncompressed, over the limit of {limit} \
         (a decompression bomb, or a workbook to split)"
    )]
    DeclaredTooLarge { declared: u64, limit: u64 },
    #[error(
        "xlsx parts expand to more than {limit} bytes although they declare {declared} \
         (sizes in the archive are false)"
    )]
    ExpandsTooLarge { declared: u64, limit: u64 },
    #[error("xlsx archive has {entries} parts, over the limit of {limit}")]
    TooManyEntries { entries: usize, limit: usize },
    #[error("not a readable xlsx file: {0}")]
    Unreadable(String),
    #[error("the workbook has no worksheet")]
    NoSheet,
    #[error("the first worksheet ({sheet}) is empty")]
    Empty { sheet: String },
    #[error("more than {limit} data rows in worksheet {sheet}")]
    TooManyRows { sheet: String, limit: usize },
    #[error("cell {cell} of worksheet {sheet} is beyond the limit of {limit} columns")]
    TooManyColumns { sheet: String, cell: String, limit: usize },
}

/// One non-empty row of the sheet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SheetRow {
    /// The row number a spreadsheet shows (1-based).
    pub row: u32,
    /// Cell texts from column A on; trailing empty cells are not included.
    pub cells: Vec<String>,
    /// Cells holding an error value, e.g. `C7 #N/A`: the row cannot be imported.
    pub errors: Vec<String>,
}

/// The first worksheet: its name, header row and data rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sheet {
    pub name: String,
    pub header: SheetRow,
    pub rows: Vec<SheetRow>,
}

/// Reads the first worksheet of an xlsx file held in memory.
///
/// # Errors
///
/// The file is over a limit, is no xlsx, or its first sheet is empty or too large.
pub fn read_first_sheet(bytes: &[u8], limits: &XlsxLimits) -> Result<Sheet, XlsxError> {
    check_archive(bytes, limits)?;
    let unreadable = |e: calamine::XlsxError| XlsxError::Unreadable(e.to_string());
    let mut workbook: Xlsx<_> = Xlsx::new(Cursor::new(bytes)).map_err(unreadable)?;
    let name = workbook.sheet_names().into_iter().next().ok_or(XlsxError::NoSheet)?;
    let mut cells = workbook.worksheet_cells_reader(&name).map_err(unreadable)?;
    // Only non-empty rows are kept, keyed by row: cells far down or out of order cost one
    // entry each, never a dense range.
    let mut rows: BTreeMap<u32, SheetRow> = BTreeMap::new();
    while let Some(cell) = cells.next_cell().map_err(unreadable)? {
        let (row, col) = cell.get_position();
        let (text, error) = match cell.get_value() {
            DataRef::Error(e) => (String::new(), Some(e.to_string())),
            value => (cell_text(value), None),
        };
        if text.trim().is_empty() && error.is_none() {
            continue;
        }
        let col = col as usize;
        if col >= limits.max_columns {
            return Err(XlsxError::TooManyColumns {
                sheet: name.clone(),
                cell: cell_ref(row, col),
                limit: limits.max_columns,
            });
        }
        if !rows.contains_key(&row) && rows.len() > limits.max_rows {
            return Err(XlsxError::TooManyRows { sheet: name.clone(), limit: limits.max_rows });
        }
        let entry = rows.entry(row).or_insert_with(|| SheetRow {
            row: row.saturating_add(1),
            cells: Vec::new(),
            errors: Vec::new(),
        });
        if entry.cells.len() <= col {
            entry.cells.resize(col + 1, String::new());
        }
        match error {
            Some(error) => entry.errors.push(format!("{} {error}", cell_ref(row, col))),
            None => entry.cells[col] = text,
        }
    }
    let mut rows = rows.into_values();
    let header = rows.next().ok_or_else(|| XlsxError::Empty { sheet: name.clone() })?;
    Ok(Sheet { name, header, rows: rows.collect() })
}

/// The size checks before the archive is handed to calamine.
fn check_archive(bytes: &[u8], limits: &XlsxLimits) -> Result<(), XlsxError> {
    let size = bytes.len() as u64;
    if size > limits.max_file_bytes {
        return Err(XlsxError::TooLarge { size, limit: limits.max_file_bytes });
    }
    let unreadable = |e: zip::result::ZipError| XlsxError::Unreadable(e.to_string());
    let mut archive = zip::ZipArchive::new(Cursor::new(bytes)).map_err(unreadable)?;
    if archive.len() > limits.max_entries {
        return Err(XlsxError::TooManyEntries {
            entries: archive.len(),
            limit: limits.max_entries,
        });
    }
    let cap = limits.max_uncompressed_bytes;
    let mut declared: u64 = 0;
    for index in 0..archive.len() {
        let entry = archive.by_index_raw(index).map_err(unreadable)?;
        declared = declared.saturating_add(entry.size());
    }
    if declared > cap {
        return Err(XlsxError::DeclaredTooLarge { declared, limit: cap });
    }
    // The declared sizes are the attacker's claim: inflate for real, never past the cap.
    let mut total: u64 = 0;
    for index in 0..archive.len() {
        let entry = archive.by_index(index).map_err(unreadable)?;
        let allowance = cap - total + 1;
        let read = std::io::copy(&mut entry.take(allowance), &mut std::io::sink())
            .map_err(|e| XlsxError::Unreadable(e.to_string()))?;
        total += read;
        if total > cap {
            return Err(XlsxError::ExpandsTooLarge { declared, limit: cap });
        }
    }
    Ok(())
}

/// A cell value as the spreadsheet shows it.
fn cell_text(value: &DataRef<'_>) -> String {
    match value {
        DataRef::String(s) | DataRef::DateTimeIso(s) | DataRef::DurationIso(s) => s.clone(),
        DataRef::SharedString(s) => (*s).to_owned(),
        DataRef::Int(i) => i.to_string(),
        DataRef::Float(f) => number_text(*f),
        DataRef::Bool(b) => if *b { "TRUE" } else { "FALSE" }.to_owned(),
        DataRef::DateTime(dt) if dt.is_datetime() => {
            let (y, mo, d, h, mi, s, ms) = dt.to_ymd_hms_milli();
            if (h, mi, s, ms) == (0, 0, 0, 0) {
                format!("{y:04}-{mo:02}-{d:02}")
            } else {
                format!("{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02}")
            }
        }
        DataRef::DateTime(dt) => number_text(dt.as_f64()),
        DataRef::Error(e) => e.to_string(),
        DataRef::Empty => String::new(),
    }
}

/// Whole numbers without `.0` (an amount of 20000 is `20000`), others in the shortest form
/// that reads back as the same number.
fn number_text(f: f64) -> String {
    if f.fract() == 0.0 && f.abs() < 1e15 { format!("{}", f as i64) } else { format!("{f}") }
}

/// `C7` for row index 6, column index 2.
pub fn cell_ref(row: u32, col: usize) -> String {
    let mut letters = Vec::new();
    let mut n = col + 1;
    while n > 0 {
        let rem = (n - 1) % 26;
        letters.push(char::from(b'A' + rem as u8));
        n = (n - 1) / 26;
    }
    letters.reverse();
    format!("{}{}", letters.into_iter().collect::<String>(), u64::from(row) + 1)
}

/// A minimal xlsx writer for tests: one sheet of inline-string and number cells, built with
/// `zip` so the tests need no spreadsheet library. `None` leaves a cell out.
#[cfg(test)]
pub(crate) mod testing {
    use std::io::Write;

    /// A cell of the test sheet.
    #[derive(Debug, Clone)]
    pub(crate) enum TestCell {
        Text(String),
        Number(f64),
        /// A number with the built-in date format (serial days since 1899-12-30).
        Date(f64),
        Error(&'static str),
    }

    pub(crate) fn text(s: &str) -> Option<TestCell> {
        Some(TestCell::Text(s.to_owned()))
    }

    /// `rows[i]` is sheet row `i + 1`; an empty row is left out of the sheet XML.
    pub(crate) fn workbook(rows: &[Vec<Option<TestCell>>]) -> Vec<u8> {
        let mut sheet = String::from(
            r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?><worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData>"#,
        );
        for (r, row) in rows.iter().enumerate() {
            if row.iter().all(Option::is_none) {
                continue;
            }
            sheet.push_str(&format!(r#"<row r="{}">"#, r + 1));
            for (c, cell) in row.iter().enumerate() {
                let at = super::cell_ref(r as u32, c);
                match cell {
                    None => {}
                    Some(TestCell::Text(s)) => sheet.push_str(&format!(
                        r#"<c r="{at}" t="inlineStr"><is><t>{}</t></is></c>"#,
                        s.replace('&', "&amp;").replace('<', "&lt;")
                    )),
                    Some(TestCell::Number(n)) => {
                        sheet.push_str(&format!(r#"<c r="{at}"><v>{n}</v></c>"#))
                    }
                    Some(TestCell::Date(n)) => {
                        sheet.push_str(&format!(r#"<c r="{at}" s="1"><v>{n}</v></c>"#))
                    }
                    Some(TestCell::Error(e)) => {
                        sheet.push_str(&format!(r#"<c r="{at}" t="e"><v>{e}</v></c>"#))
                    }
                }
            }
            sheet.push_str("</row>");
        }
        sheet.push_str("</sheetData></worksheet>");
        archive(&[
            ("[Content_Types].xml", CONTENT_TYPES.as_bytes()),
            ("_rels/.rels", RELS.as_bytes()),
            ("xl/workbook.xml", WORKBOOK.as_bytes()),
            ("xl/_rels/workbook.xml.rels", WORKBOOK_RELS.as_bytes()),
            ("xl/styles.xml", STYLES.as_bytes()),
            ("xl/worksheets/sheet1.xml", sheet.as_bytes()),
        ])
    }

    /// A zip archive of the given parts, deflated.
    #[allow(clippy::unwrap_used)]
    pub(crate) fn archive(parts: &[(&str, &[u8])]) -> Vec<u8> {
        let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        let options = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated);
        for (name, bytes) in parts {
            zip.start_file(*name, options).unwrap();
            zip.write_all(bytes).unwrap();
        }
        zip.finish().unwrap().into_inner()
    }

    const CONTENT_TYPES: &str = r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"><Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/><Default Extension="xml" ContentType="application/xml"/><Override PartName="/xl/workbook.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/><Override PartName="/xl/worksheets/sheet1.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/><Override PartName="/xl/styles.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.styles+xml"/></Types>"#;
    const RELS: &str = r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" Target="xl/workbook.xml"/></Relationships>"#;
    const WORKBOOK: &str = r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?><workbook xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships"><sheets><sheet name="处罚" sheetId="1" r:id="rId1"/></sheets></workbook>"#;
    const WORKBOOK_RELS: &str = r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet" Target="worksheets/sheet1.xml"/><Relationship Id="rId2" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/styles" Target="styles.xml"/></Relationships>"#;
    const STYLES: &str = r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?><styleSheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><cellXfs count="2"><xf numFmtId="0"/><xf numFmtId="14" applyNumberFormat="1"/></cellXfs></styleSheet>"#;
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::testing::{TestCell, archive, text, workbook};
    use super::*;

    #[test]
    fn reads_header_and_rows_as_text() {
        let bytes = workbook(&[
            vec![text("名称"), text("金额（元）"), text("日期"), text("代码")],
            vec![
                text("湖北示例建设工程有限公司"),
                Some(TestCell::Number(20000.0)),
                Some(TestCell::Date(46293.0)),
                text("91420100MA4P7Q8R8N"),
            ],
            vec![],
            vec![text("谷城县𠮷祥建材经营部"), Some(TestCell::Number(3500.5))],
            vec![text("坏行"), None, Some(TestCell::Error("#N/A"))],
        ]);
        let sheet = read_first_sheet(&bytes, &XlsxLimits::default()).unwrap();
        assert_eq!(sheet.name, "处罚");
        assert_eq!(sheet.header.row, 1);
        assert_eq!(sheet.header.cells, ["名称", "金额（元）", "日期", "代码"]);
        assert_eq!(sheet.rows.len(), 3);
        assert_eq!(sheet.rows[0].row, 2);
        assert_eq!(
            sheet.rows[0].cells,
            ["湖北示例建设工程有限公司", "20000", "2026-09-28", "91420100MA4P7Q8R8N"]
        );
        // The empty row 3 is skipped; row numbers stay the sheet's.
        assert_eq!(sheet.rows[1].row, 4);
        assert_eq!(sheet.rows[1].cells, ["谷城县𠮷祥建材经营部", "3500.5"]);
        assert_eq!(sheet.rows[2].row, 5);
        assert_eq!(sheet.rows[2].errors, ["C5 #N/A"]);
    }

    #[test]
    fn cell_refs() {
        assert_eq!(cell_ref(0, 0), "A1");
        assert_eq!(cell_ref(6, 2), "C7");
        assert_eq!(cell_ref(0, 25), "Z1");
        assert_eq!(cell_ref(0, 26), "AA1");
        assert_eq!(cell_ref(1_048_575, 16_383), "XFD1048576");
    }

    #[test]
    fn declared_size_over_the_cap_is_refused_before_calamine() {
        // 4 MiB of zeros deflate to a few KB: a small bomb against a 1 MiB cap.
        let zeros = vec![b'0'; 4 * 1024 * 1024];
        let bytes = archive(&[("xl/worksheets/sheet1.xml", &zeros)]);
        assert!(bytes.len() < 64 * 1024, "{}", bytes.len());
        let limits = XlsxLimits { max_uncompressed_bytes: 1024 * 1024, ..XlsxLimits::default() };
        match read_first_sheet(&bytes, &limits) {
            Err(XlsxError::DeclaredTooLarge { declared, limit }) => {
                assert_eq!(declared, 4 * 1024 * 1024);
                assert_eq!(limit, 1024 * 1024);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn false_declared_sizes_are_caught_while_inflating() {
        let zeros = vec![b'0'; 2 * 1024 * 1024];
        let mut bytes = archive(&[("a.xml", &zeros)]);
        // Rewrite the declared uncompressed size (local header at offset 22, central directory
        // entry at +24) to 1000 bytes.
        let lie = 1000u32.to_le_bytes();
        bytes[22..26].copy_from_slice(&lie);
        let central = bytes.windows(4).rposition(|w| w == b"PK\x01\x02").unwrap();
        bytes[central + 24..central + 28].copy_from_slice(&lie);
        let limits = XlsxLimits { max_uncompressed_bytes: 1024 * 1024, ..XlsxLimits::default() };
        let error = read_first_sheet(&bytes, &limits).unwrap_err();
        // Either the inflater stops at the cap or zip refuses the inconsistent entry: both
        // refuse the file before calamine runs.
        assert!(
            matches!(error, XlsxError::ExpandsTooLarge { .. } | XlsxError::Unreadable(_)),
            "{error:?}"
        );
    }

    #[test]
    fn file_size_rows_and_columns_are_capped() {
        let bytes = workbook(&[vec![text("a")], vec![text("1")], vec![text("2")]]);
        let small = XlsxLimits { max_file_bytes: 10, ..XlsxLimits::default() };
        assert!(matches!(read_first_sheet(&bytes, &small), Err(XlsxError::TooLarge { .. })));
        let two_rows = XlsxLimits { max_rows: 1, ..XlsxLimits::default() };
        assert!(matches!(
            read_first_sheet(&bytes, &two_rows),
            Err(XlsxError::TooManyRows { limit: 1, .. })
        ));
        // One cell far to the right: refused without allocating the columns in between.
        let mut wide = vec![None; 600];
        wide[599] = text("x");
        let bytes = workbook(&[vec![text("a")], wide]);
        match read_first_sheet(&bytes, &XlsxLimits::default()) {
            Err(XlsxError::TooManyColumns { cell, limit, .. }) => {
                assert_eq!(cell, "WB2");
                assert_eq!(limit, 512);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn not_a_workbook() {
        assert!(matches!(
            read_first_sheet(b"name,amount\n", &XlsxLimits::default()),
            Err(XlsxError::Unreadable(_))
        ));
        let empty = workbook(&[]);
        assert!(matches!(
            read_first_sheet(&empty, &XlsxLimits::default()),
            Err(XlsxError::Empty { .. })
        ));
    }
}
