//! The map stage: one decoded document of a platform → the catalog fields of one canonical
//! record, as declared by the adapter's mapping (renames, code tables, splitting, units,
//! dates, constants) and driven by the target field's type in the catalog.
//!
//! Pure: no IO, no clock. Mappings are compiled once (`Mapper::compile`) so a bad mapping is a
//! `credgate check` error that names the file, document type and field.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use serde_json::{Map, Number, Value};

use crate::catalog::{CatalogItem, FieldMeta};
use crate::config::raw::{DocumentSpec, FieldSpec, UnmappedPolicy};
use crate::domain::ids;
use crate::fasthash::FxHashMap;
use crate::record::{Document, Fields, Finding};

/// Default separators of multi-valued fields when the mapping names none.
const DEFAULT_SEPARATORS: &str = ";；、,，";

/// Date layouts tried when the mapping names none (after the ISO form).
const DEFAULT_DATE_FORMATS: &[&str] = &["%Y/%m/%d", "%Y%m%d", "%Y年%m月%d日", "%Y.%m.%d"];

/// A mapping compiled against its catalog item.
#[derive(Debug)]
pub struct Mapper {
    pub doc_type: String,
    pub item: Arc<CatalogItem>,
    fields: Vec<CompiledField>,
    /// Source field names the mapping consumes, each with its slot in [`Mapper::map`]'s
    /// table of the document's values: the document is walked once, one cheap hash per key,
    /// instead of a map lookup per mapped name and a set lookup per key for the
    /// unmapped-field policy.
    sources: FxHashMap<String, usize>,
    unmapped: UnmappedPolicy,
    version_slot: Option<usize>,
    operation_slot: Option<usize>,
    retract_values: Vec<String>,
}

#[derive(Debug)]
struct CompiledField {
    target: String,
    /// Slots of the source names (see [`Mapper::sources`]), in the mapping's order.
    slots: Vec<usize>,
    /// `/<target>`, the JSON pointer of findings and normalisation notes.
    pointer: String,
    /// Which normalisation a string value gets.
    kind: StringKind,
    meta: FieldMeta,
    source: Source,
    codes: Option<BTreeMap<String, String>>,
    separators: Vec<char>,
    date_formats: Vec<String>,
    yuan_to_10k: bool,
}

/// How a string field is normalised, decided once from its format, personal-data class and
/// name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StringKind {
    /// Identifier codes: SG-14 normalisation and uppercasing.
    Code,
    /// `cn-date`: common layouts to ISO.
    Date,
    /// 文号: bracket variants unified.
    DocNo,
    /// Anything else: trimmed.
    Text,
}

impl StringKind {
    fn of(target: &str, meta: &FieldMeta) -> StringKind {
        let is_code = matches!(
            meta.format.as_deref(),
            Some("uscc" | "uscc-or-placeholder" | "org-code" | "cn-resident-id" | "gb2260-area")
        ) || meta.pii.as_deref() == Some("resident_id")
            || target.ends_with("_uscc")
            || target.ends_with("_code");
        if is_code {
            StringKind::Code
        } else if meta.format.as_deref() == Some("cn-date") {
            StringKind::Date
        } else if target.ends_with("doc_no") {
            StringKind::DocNo
        } else {
            StringKind::Text
        }
    }
}

#[derive(Debug)]
enum Source {
    Fields(Vec<String>),
    Constant(Value),
}

/// The result of mapping one document.
#[derive(Debug, Default)]
pub struct Mapped {
    pub fields: Fields,
    /// Warnings and errors found while mapping (code not in table, unmapped field…).
    pub findings: Vec<Finding>,
    /// Raw values that normalisation changed, by JSON pointer, kept for audit (SG-14).
    pub normalized_from: BTreeMap<String, String>,
    /// The source's record version, if the mapping names a version field.
    pub version: Option<String>,
    pub retract: bool,
}

impl Mapper {
    /// Compiles one document mapping.
    ///
    /// # Errors
    ///
    /// Every problem, as `field: message` strings (the caller adds file and document type).
    pub fn compile(
        spec: &DocumentSpec,
        item: Arc<CatalogItem>,
        code_tables: &BTreeMap<String, BTreeMap<String, String>>,
    ) -> Result<Mapper, Vec<String>> {
        let mut errors = Vec::new();
        let mut fields = Vec::new();
        let mut consumed = BTreeSet::new();
        for (target, field_spec) in &spec.fields {
            let Some(meta) = item.fields.get(target) else {
                errors.push(format!(
                    "field `{target}`: not a property of catalog item `{}`",
                    item.item
                ));
                continue;
            };
            let detail = match field_spec {
                FieldSpec::From(name) => crate::config::raw::FieldDetail {
                    from: Some(crate::config::raw::OneOrMany::One(name.clone())),
                    ..Default::default()
                },
                FieldSpec::Detailed(detail) => detail.clone(),
            };
            let source = match (&detail.from, &detail.constant) {
                (Some(from), None) => {
                    let names = from.to_vec();
                    if names.iter().any(|n| n.trim().is_empty()) {
                        errors.push(format!("field `{target}`: empty source field name"));
                    }
                    consumed.extend(names.iter().cloned());
                    Source::Fields(names)
                }
                (None, Some(constant)) => match toml_to_json(constant) {
                    Some(value) => Source::Constant(value),
                    None => {
                        errors.push(format!("field `{target}`: constant cannot be a datetime"));
                        continue;
                    }
                },
                (Some(_), Some(_)) => {
                    errors.push(format!("field `{target}`: give `from` or `const`, not both"));
                    continue;
                }
                (None, None) => {
                    errors.push(format!("field `{target}`: needs `from` or `const`"));
                    continue;
                }
            };
            let codes = match &detail.codes {
                Some(table) => match code_tables.get(table) {
                    Some(codes) => Some(codes.clone()),
                    None => {
                        errors.push(format!("field `{target}`: unknown code table `{table}`"));
                        None
                    }
                },
                None => None,
            };
            let yuan_to_10k = match detail.unit.as_deref() {
                None | Some("10k_cny") => false,
                Some("yuan") => {
                    if meta.json_type != "number" {
                        errors.push(format!(
                            "field `{target}`: unit `yuan` needs a number field, not {}",
                            meta.json_type
                        ));
                    }
                    true
                }
                Some(other) => {
                    errors.push(format!("field `{target}`: unknown unit `{other}` (use `yuan`)"));
                    false
                }
            };
            if detail.split.is_some() && meta.json_type != "array" {
                errors.push(format!("field `{target}`: `split` needs an array field"));
            }
            let date_formats = detail.date_format.as_ref().map(|f| f.to_vec()).unwrap_or_default();
            for layout in &date_formats {
                if jiff::fmt::strtime::format(layout, jiff::civil::date(2026, 1, 2)).is_err() {
                    errors.push(format!("field `{target}`: bad date format `{layout}`"));
                }
            }
            fields.push(CompiledField {
                target: target.clone(),
                slots: Vec::new(),
                pointer: format!("/{target}"),
                kind: StringKind::of(target, meta),
                meta: meta.clone(),
                source,
                codes,
                separators: detail.split.as_deref().unwrap_or(DEFAULT_SEPARATORS).chars().collect(),
                date_formats,
                yuan_to_10k,
            });
        }
        for required in &item.required {
            if !spec.fields.contains_key(required) {
                errors.push(format!(
                    "field `{required}`: required by catalog item `{}` but not mapped",
                    item.item
                ));
            }
        }
        if let Some(version_field) = &spec.version_field {
            consumed.insert(version_field.clone());
        }
        if let Some(operation_field) = &spec.operation_field {
            consumed.insert(operation_field.clone());
            if spec.retract_values.is_empty() {
                errors.push("operation_field is set but retract_values is empty".to_owned());
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        let sources: FxHashMap<String, usize> =
            consumed.into_iter().enumerate().map(|(slot, name)| (name, slot)).collect();
        for field in &mut fields {
            if let Source::Fields(names) = &field.source {
                field.slots = names.iter().filter_map(|n| sources.get(n).copied()).collect();
            }
        }
        let slot_of = |name: &Option<String>| name.as_ref().and_then(|n| sources.get(n).copied());
        Ok(Mapper {
            doc_type: spec.doc_type.clone(),
            item,
            version_slot: slot_of(&spec.version_field),
            operation_slot: slot_of(&spec.operation_field),
            fields,
            sources,
            unmapped: spec.unmapped,
            retract_values: spec.retract_values.clone(),
        })
    }

    /// Whether the mapping consumes the source field `name` (a CSV column, a JSON key).
    pub fn consumes(&self, name: &str) -> bool {
        self.sources.contains_key(name)
    }

    /// Maps one document.
    pub fn map(&self, doc: &Document) -> Mapped {
        // Sized for every mapped field up front: growing the map rehashes every key so far.
        let mut out =
            Mapped { fields: Fields::with_capacity(self.fields.len()), ..Mapped::default() };
        // The document's value for each consumed source name, and the keys it has beyond them.
        let mut values: Vec<Option<&Value>> = vec![None; self.sources.len()];
        let mut unmapped = Vec::new();
        for (name, value) in doc {
            match self.sources.get(name.as_str()) {
                Some(&slot) => {
                    if let Some(entry) = values.get_mut(slot) {
                        *entry = Some(value);
                    }
                }
                None => {
                    if self.unmapped != UnmappedPolicy::Ignore && !is_empty(value) {
                        unmapped.push((name, value));
                    }
                }
            }
        }
        let value_at = |slot: usize| values.get(slot).copied().flatten();
        for field in &self.fields {
            let value = match &field.source {
                Source::Constant(value) => Some(value),
                Source::Fields(_) => {
                    field.slots.iter().filter_map(|&slot| value_at(slot)).find(|v| !is_empty(v))
                }
            };
            let Some(value) = value else { continue };
            if let Some(converted) = self.convert(field, value, &mut out)
                && !is_empty(&converted)
            {
                out.fields.insert(field.target.clone(), converted);
            }
        }
        self.handle_unmapped(&unmapped, &mut out);
        if let Some(slot) = self.version_slot {
            out.version = value_at(slot).and_then(scalar_text).filter(|v| !v.is_empty());
        }
        if let Some(slot) = self.operation_slot {
            out.retract = value_at(slot)
                .and_then(scalar_text)
                .is_some_and(|op| self.retract_values.iter().any(|r| r == op.trim()));
        }
        upgrade_legacy_ids(&self.item, &mut out);
        out
    }

    fn convert(&self, field: &CompiledField, value: &Value, out: &mut Mapped) -> Option<Value> {
        let pointer = field.pointer.as_str();
        match field.meta.json_type.as_str() {
            "array" => {
                let parts: Vec<Cow<'_, Value>> = match value {
                    Value::Array(items) => items.iter().map(Cow::Borrowed).collect(),
                    Value::String(text) => text
                        .split(|c| field.separators.contains(&c))
                        .map(|p| Cow::Owned(Value::String(p.to_owned())))
                        .collect(),
                    other => vec![Cow::Borrowed(other)],
                };
                let is_string_items =
                    field.meta.item_type.as_deref().unwrap_or("string") == "string";
                let mut items = Vec::with_capacity(parts.len());
                for (idx, part) in parts.into_iter().enumerate() {
                    if !is_string_items {
                        items.push(coerce_object(part.into_owned(), &field.meta));
                        continue;
                    }
                    let Some(text) = scalar_text_cow(&part) else {
                        items.push(part.into_owned());
                        continue;
                    };
                    let text = text.trim();
                    if text.is_empty() {
                        continue;
                    }
                    let item = translate(field, text, out, || format!("{pointer}/{idx}"));
                    items.push(Value::String(item.into_owned()));
                }
                Some(Value::Array(items))
            }
            "number" | "integer" => {
                let text = match value {
                    Value::Number(n) => n.to_string(),
                    Value::String(s) => {
                        let (normal, _) = ids::normalize_code_cow(s);
                        normal.replace([',', '，'], "")
                    }
                    _ => return Some(value.clone()),
                };
                let text =
                    if field.yuan_to_10k { shift_decimal_left(&text, 4) } else { Some(text) };
                match text.as_deref().and_then(|t| serde_json::from_str::<Number>(t).ok()) {
                    Some(number) => Some(Value::Number(number)),
                    // Keep the raw text: the schema's `type` check reports it with the label.
                    None => Some(value.clone()),
                }
            }
            "boolean" => match value {
                Value::Bool(_) => Some(value.clone()),
                _ => match scalar_text_cow(value).as_deref().map(str::trim) {
                    Some("是" | "true" | "TRUE" | "1" | "Y" | "y") => Some(Value::Bool(true)),
                    Some("否" | "false" | "FALSE" | "0" | "N" | "n") => Some(Value::Bool(false)),
                    _ => Some(value.clone()),
                },
            },
            "string" => {
                let Some(text) = scalar_text_cow(value) else { return Some(value.clone()) };
                let text = translate(field, &text, out, || pointer.to_owned());
                Some(Value::String(self.normalise_string(field, text, pointer, out)))
            }
            _ => Some(value.clone()),
        }
    }

    fn normalise_string(
        &self,
        field: &CompiledField,
        text: Cow<'_, str>,
        pointer: &str,
        out: &mut Mapped,
    ) -> String {
        match field.kind {
            StringKind::Code => {
                let (normal, changed) = ids::normalize_code_cow(&text);
                // `to_uppercase` is ASCII uppercasing on ASCII text: skip the second copy.
                let (upper, case_changed) = if normal.is_ascii() {
                    let lowercase = normal.bytes().any(|b| b.is_ascii_lowercase());
                    let mut upper = normal.into_owned();
                    upper.make_ascii_uppercase();
                    (upper, lowercase)
                } else {
                    let upper = normal.to_uppercase();
                    let case_changed = upper != normal;
                    (upper, case_changed)
                };
                if changed || case_changed {
                    let masked = field.meta.pii.is_some();
                    out.findings.push(Finding::warning(
                        "SG-14",
                        pointer,
                        "代码字段已规范化（全角转半角、去除首尾空白或转为大写），原值已留存",
                    ));
                    out.normalized_from.insert(
                        pointer.to_owned(),
                        if masked { ids::mask_id(&text) } else { text.into_owned() },
                    );
                }
                upper
            }
            StringKind::Date => {
                let trimmed = text.trim();
                normalise_date(trimmed, &field.date_formats).unwrap_or_else(|| trimmed.to_owned())
            }
            StringKind::DocNo => {
                let normal = ids::normalize_doc_no(&text);
                if normal != text {
                    out.normalized_from.insert(pointer.to_owned(), text.into_owned());
                }
                normal
            }
            StringKind::Text => {
                let trimmed = text.trim();
                if trimmed.len() != text.len() {
                    return trimmed.to_owned();
                }
                text.into_owned()
            }
        }
    }

    /// The policy for the document's non-empty keys that the mapping does not consume, in
    /// document order.
    fn handle_unmapped(&self, unmapped: &[(&String, &Value)], out: &mut Mapped) {
        if self.unmapped == UnmappedPolicy::Ignore {
            return;
        }
        let mut extensions = Map::new();
        for &(name, value) in unmapped {
            match self.unmapped {
                UnmappedPolicy::Warn => out.findings.push(Finding::warning(
                    "MAP-UNMAPPED",
                    format!("/{name}"),
                    format!("来源字段 {name} 未在映射中声明，已忽略"),
                )),
                UnmappedPolicy::Reject => out.findings.push(Finding::error(
                    "MAP-UNMAPPED",
                    format!("/{name}"),
                    format!("来源字段 {name} 未在映射中声明"),
                )),
                UnmappedPolicy::Extensions => {
                    extensions.insert(name.clone(), value.clone());
                }
                UnmappedPolicy::Ignore => {}
            }
        }
        if !extensions.is_empty() {
            out.fields.insert("extensions".to_owned(), Value::Object(extensions));
        }
    }
}

/// Translates a source code through the field's code table. A value that already is one of the
/// table's catalog values passes; an unknown code is kept and reported. The pointer is only
/// built for a report.
fn translate<'t>(
    field: &'t CompiledField,
    text: &'t str,
    out: &mut Mapped,
    pointer: impl FnOnce() -> String,
) -> Cow<'t, str> {
    let Some(codes) = &field.codes else { return Cow::Borrowed(text) };
    let key = text.trim();
    if let Some(mapped) = codes.get(key) {
        return Cow::Borrowed(mapped);
    }
    if codes.values().any(|v| v == key) {
        return Cow::Borrowed(key);
    }
    out.findings.push(Finding::error("MAP-CODE", pointer(), format!("代码 {key} 不在代码表中")));
    Cow::Borrowed(key)
}

/// Converts legacy 15-digit resident IDs to 18 digits where the ID type says 身份证 (or is
/// absent), keeping the raw value masked for audit.
fn upgrade_legacy_ids(item: &CatalogItem, out: &mut Mapped) {
    for (name, meta) in &item.fields {
        if meta.pii.as_deref() != Some("resident_id") {
            continue;
        }
        // The length first: it rules out nearly every record without building the type key.
        let Some(Value::String(value)) = out.fields.get(name) else { continue };
        if value.len() != 15 {
            continue;
        }
        let type_field = name.replace("_no", "_type");
        let is_id_card =
            out.fields.get(&type_field).and_then(Value::as_str).is_none_or(|t| t == "身份证");
        if !is_id_card {
            continue;
        }
        if let Some(upgraded) = ids::upgrade_legacy_resident_id(value) {
            let pointer = format!("/{name}");
            out.normalized_from.insert(pointer.clone(), ids::mask_id(value));
            out.findings.push(Finding::warning(
                "SG-14",
                pointer,
                "15 位旧身份证号码已升位为 18 位",
            ));
            out.fields.insert(name.clone(), Value::String(upgraded));
        }
    }
}

fn normalise_date(text: &str, formats: &[String]) -> Option<String> {
    // A datetime such as `2026-09-28 00:00:00` or `2026-09-28T00:00:00+08:00` names its day.
    let head = text.get(..10).unwrap_or(text);
    if formats.is_empty() && crate::catalog::is_iso_date(head) {
        return Some(head.to_owned());
    }
    let layouts: Vec<&str> = if formats.is_empty() {
        DEFAULT_DATE_FORMATS.to_vec()
    } else {
        formats.iter().map(String::as_str).collect()
    };
    layouts
        .iter()
        .find_map(|layout| jiff::civil::Date::strptime(layout, text).ok().map(|d| d.to_string()))
}

/// Divides a decimal text by 10^places without going through floating point.
fn shift_decimal_left(text: &str, places: usize) -> Option<String> {
    let text = text.trim();
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
    if int.is_empty() || !int.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let padded = format!("{int:0>width$}", width = places + 1);
    let split_at = padded.len() - places;
    let new_int = padded[..split_at].trim_start_matches('0');
    let new_frac = format!("{}{frac}", &padded[split_at..]);
    let new_frac = new_frac.trim_end_matches('0');
    let mut result = String::new();
    if negative {
        result.push('-');
    }
    result.push_str(if new_int.is_empty() { "0" } else { new_int });
    if !new_frac.is_empty() {
        result.push('.');
        result.push_str(new_frac);
    }
    Some(result)
}

/// Array-of-object items (bid candidates): text values become numbers or booleans where the
/// catalog says so (XML and CSV carry everything as text).
fn coerce_object(value: Value, meta: &FieldMeta) -> Value {
    let Value::Object(map) = value else { return value };
    Value::Object(
        map.into_iter()
            .filter(|(_, v)| !is_empty(v))
            .map(|(name, v)| {
                let wanted = meta.item_properties.get(&name).map(|(t, _)| t.as_str());
                let converted = match (wanted, &v) {
                    (Some("integer" | "number"), Value::String(text)) => {
                        serde_json::from_str::<Number>(text.trim()).map(Value::Number).unwrap_or(v)
                    }
                    (Some("boolean"), Value::String(text)) => match text.trim() {
                        "是" | "true" | "1" => Value::Bool(true),
                        "否" | "false" | "0" => Value::Bool(false),
                        _ => v,
                    },
                    (Some("string"), Value::String(text)) => Value::String(text.trim().to_owned()),
                    _ => v,
                };
                (name, converted)
            })
            .collect(),
    )
}

fn is_empty(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::String(s) => s.trim().is_empty(),
        Value::Array(a) => a.is_empty(),
        _ => false,
    }
}

/// [`scalar_text`], borrowing strings.
fn scalar_text_cow(value: &Value) -> Option<Cow<'_, str>> {
    match value {
        Value::String(s) => Some(Cow::Borrowed(s)),
        other => scalar_text(other).map(Cow::Owned),
    }
}

/// The text of a scalar value (numbers and booleans as written).
pub fn scalar_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn toml_to_json(value: &toml::Value) -> Option<Value> {
    Some(match value {
        toml::Value::String(s) => Value::String(s.clone()),
        toml::Value::Integer(i) => Value::from(*i),
        toml::Value::Float(f) => Number::from_f64(*f).map(Value::Number)?,
        toml::Value::Boolean(b) => Value::Bool(*b),
        toml::Value::Array(a) => Value::Array(a.iter().map(toml_to_json).collect::<Option<_>>()?),
        toml::Value::Table(t) => Value::Object(
            t.iter().map(|(k, v)| Some((k.clone(), toml_to_json(v)?))).collect::<Option<_>>()?,
        ),
        toml::Value::Datetime(_) => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yuan_to_10k_is_exact() {
        assert_eq!(shift_decimal_left("2000", 4).as_deref(), Some("0.2"));
        assert_eq!(shift_decimal_left("12345.67", 4).as_deref(), Some("1.234567"));
        assert_eq!(shift_decimal_left("123456.78", 4).as_deref(), Some("12.345678"));
        assert_eq!(shift_decimal_left("10000", 4).as_deref(), Some("1"));
        assert_eq!(shift_decimal_left("5", 4).as_deref(), Some("0.0005"));
        assert_eq!(shift_decimal_left("abc", 4), None);
    }

    #[test]
    fn dates_in_common_layouts_become_iso() {
        assert_eq!(normalise_date("2026/03/15", &[]).as_deref(), Some("2026-03-15"));
        assert_eq!(normalise_date("20260315", &[]).as_deref(), Some("2026-03-15"));
        assert_eq!(normalise_date("2026年03月15日", &[]).as_deref(), Some("2026-03-15"));
        assert_eq!(normalise_date("2026-03-15 08:00:00", &[]).as_deref(), Some("2026-03-15"));
        assert_eq!(normalise_date("2026-02-29", &[]), None);
        assert_eq!(normalise_date("2099/12/31", &[]).as_deref(), Some("2099-12-31"));
    }
}
