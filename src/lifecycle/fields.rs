//! Reading canonical record fields with the conventions of `domain::rules`: `""`,
//! whitespace-only strings, `null` and `[]` count as absent, and a value of the wrong JSON type
//! is treated as absent (the schema reports it; lifecycle code must not panic on it).

use jiff::civil::Date;
use serde_json::Value;

use crate::record::Fields;

pub(crate) fn text<'a>(fields: &'a Fields, key: &str) -> Option<&'a str> {
    fields.get(key).and_then(Value::as_str).map(str::trim).filter(|s| !s.is_empty())
}

/// A `cn-date` field: ISO `YYYY-MM-DD`, or the legacy `YYYY/MM/DD` the catalog also accepts.
pub(crate) fn date(fields: &Fields, key: &str) -> Option<Date> {
    parse_date(text(fields, key)?)
}

pub(crate) fn parse_date(s: &str) -> Option<Date> {
    s.replace('/', "-").parse().ok()
}

pub(crate) fn number(fields: &Fields, key: &str) -> Option<f64> {
    fields.get(key).and_then(Value::as_f64)
}

pub(crate) fn list<'a>(fields: &'a Fields, key: &str) -> Vec<&'a str> {
    match fields.get(key) {
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(Value::as_str)
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .collect(),
        Some(Value::String(s)) if !s.trim().is_empty() => vec![s.trim()],
        _ => Vec::new(),
    }
}

pub(crate) fn boolean(fields: &Fields, key: &str) -> Option<bool> {
    fields.get(key).and_then(Value::as_bool)
}

/// A date-time field (RFC 3339 with offset).
pub(crate) fn timestamp(fields: &Fields, key: &str) -> Option<jiff::Timestamp> {
    text(fields, key)?.parse().ok()
}
