//! The values that cross the pipeline's arrows: decoded documents, canonical records and the
//! violations found on the way.
//!
//! A canonical record is a flat JSON object: the catalog fields (whose shape lives only in
//! `schemas/`, never in Rust) plus the envelope keys every record carries (contract §3).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// How serious a violation is: errors reject the record, warnings are reported in the receipt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, PartialOrd, Ord, Hash)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Warning,
    Error,
}

/// One problem with one field of one record, in the shape of contract §3.
///
/// `message` never carries the unmasked value of a personal identifier.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Violation {
    /// `SG-01`…`SG-14`, a JSON Schema keyword (`required`, `format`, `enum`…), or a stage rule
    /// such as `DECODE`, `MAP`, `ROUTE`.
    pub rule: String,
    /// JSON pointer into the canonical record (`/subject_uscc`), or into the input for
    /// decode errors (`/3/CF_XDR_MC`, `row 7`).
    pub path: String,
    /// The field's Chinese label from the schema `title` (empty when no field applies).
    pub field: String,
    /// The 信用中国 column code (`x-code`) where the field has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    pub message: String,
    pub severity: Severity,
}

/// A finding of a domain rule before the catalog adds the field's label and column code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub rule: &'static str,
    /// JSON pointer of the offending field in the canonical record, e.g. `/subject_uscc`.
    pub path: String,
    pub message: String,
    pub severity: Severity,
}

impl Finding {
    pub fn error(rule: &'static str, path: impl Into<String>, message: impl Into<String>) -> Self {
        Finding { rule, path: path.into(), message: message.into(), severity: Severity::Error }
    }

    pub fn warning(
        rule: &'static str,
        path: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Finding { rule, path: path.into(), message: message.into(), severity: Severity::Warning }
    }
}

/// A decoded input document: one JSON-like object per record, before mapping.
pub type Document = Map<String, Value>;

/// Catalog fields of a canonical record, keyed by canonical snake_case names.
pub type Fields = Map<String, Value>;
