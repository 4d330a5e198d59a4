//! The catalog: loads `schemas/<item>/<version>.schema.json`, compiles one validator per item
//! and version, and reads the annotations the rest of the pipeline relies on (Chinese labels,
//! 信用中国 column codes, personal-data classes, record identity, applicable rules).
//!
//! `schemas/` is the single source of truth for record shape: no Rust code lists fields.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::Value;

use crate::domain::ids;
use crate::fasthash::FxHashMap;

/// Named formats registered with the validator (contract §3).
pub const FORMATS: &[&str] = &[
    "uscc",
    "uscc-or-placeholder",
    "org-code",
    "cn-resident-id",
    "gb2260-area",
    "cn-date",
    "amount-10k-cny",
];

/// Cross-field rules a schema may list in `x-rules` (domain-standards §1.6).
pub const KNOWN_RULES: &[&str] = &[
    "SG-01", "SG-02", "SG-03", "SG-04", "SG-05", "SG-06", "SG-07", "SG-08", "SG-09", "SG-10",
    "SG-11", "SG-12", "SG-13", "SG-14",
];

/// Personal-data classes a property may carry in `x-pii`.
pub const PII_CLASSES: &[&str] = &[
    "resident_id",
    "phone",
    "home_address",
    "bank_account",
    "person_name",
    "subject_name",
    "third_party",
];

/// What the pipeline knows about one property of an item.
#[derive(Debug, Clone)]
pub struct FieldMeta {
    pub title: String,
    pub code: Option<String>,
    pub pii: Option<String>,
    /// `string`, `number`, `integer`, `boolean`, `array`, `object`.
    pub json_type: String,
    pub format: Option<String>,
    /// For arrays: the item type.
    pub item_type: Option<String>,
    /// For arrays of objects: each property's (type, Chinese title).
    pub item_properties: BTreeMap<String, (String, String)>,
}

/// One compiled catalog item version.
#[derive(Debug)]
pub struct CatalogItem {
    pub item: String,
    pub version: String,
    pub id: String,
    pub title: String,
    pub fields: BTreeMap<String, FieldMeta>,
    pub identity: Vec<String>,
    pub rules: Vec<String>,
    pub required: Vec<String>,
    pub failed_info: bool,
    /// Which fields name the subject (`name`, `uscc`, `id_no`, `category`).
    pub subject: BTreeMap<String, String>,
    pub validator: jsonschema::Validator,
    pub path: PathBuf,
    /// No two properties share a 信用中国 column key (`x-code`, else the property name) and
    /// none is `CZLX`, so the column payload can be written field by field (`encode`).
    pub column_keys_distinct: bool,
    /// `fields` again, for [`CatalogItem::field`]: every stage looks fields up by name
    /// several times per record, and a B-tree walk of string compares cost more than the
    /// work done with the result.
    field_index: FxHashMap<String, FieldMeta>,
}

impl CatalogItem {
    /// The property `name`, as `fields.get(name)`.
    pub fn field(&self, name: &str) -> Option<&FieldMeta> {
        self.field_index.get(name)
    }

    /// The Chinese label and column code for a JSON pointer like `/subject_uscc` or
    /// `/penalty_categories/0`.
    pub fn label_for(&self, pointer: &str) -> (String, Option<String>) {
        let mut parts = pointer.trim_start_matches('/').split('/');
        let top = parts.next().unwrap_or_default();
        let Some(meta) = self.field(top) else { return (String::new(), None) };
        // `/candidates/0/rank`: the nested property's own label, after the parent's.
        if let (Some(_index), Some(nested)) = (parts.next(), parts.next())
            && let Some((_, title)) = meta.item_properties.get(nested)
        {
            return (format!("{}·{title}", meta.title), meta.code.clone());
        }
        (meta.title.clone(), meta.code.clone())
    }

    /// The JSON type expected at a pointer (top-level field or array-of-object property).
    pub fn type_for(&self, pointer: &str) -> Option<&str> {
        let mut parts = pointer.trim_start_matches('/').split('/');
        let meta = self.field(parts.next()?)?;
        match (parts.next(), parts.next()) {
            (Some(_), Some(nested)) => meta.item_properties.get(nested).map(|(t, _)| t.as_str()),
            (Some(_), None) => meta.item_type.as_deref(),
            _ => Some(meta.json_type.as_str()),
        }
    }
}

/// All catalog items, keyed by `(item, version)`.
#[derive(Debug, Default)]
pub struct Catalog {
    items: BTreeMap<(String, String), Arc<CatalogItem>>,
}

/// A problem with one schema file.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{path}: {message}")]
pub struct CatalogError {
    pub path: String,
    pub message: String,
}

impl Catalog {
    /// Loads and compiles every schema under `dir`.
    ///
    /// # Errors
    ///
    /// Every unreadable, malformed or inconsistent schema file, all at once.
    pub fn load(dir: &Path) -> Result<Catalog, Vec<CatalogError>> {
        let mut errors = Vec::new();
        let mut catalog = Catalog::default();
        let entries = match std::fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(error) => {
                return Err(vec![CatalogError {
                    path: dir.display().to_string(),
                    message: format!("cannot read catalog directory: {error}"),
                }]);
            }
        };
        let mut item_dirs: Vec<PathBuf> =
            entries.filter_map(|e| e.ok()).map(|e| e.path()).filter(|p| p.is_dir()).collect();
        item_dirs.sort();
        for item_dir in item_dirs {
            let Some(item) = item_dir.file_name().and_then(|n| n.to_str()).map(str::to_owned)
            else {
                continue;
            };
            let Ok(files) = std::fs::read_dir(&item_dir) else { continue };
            let mut files: Vec<PathBuf> = files.filter_map(|e| e.ok()).map(|e| e.path()).collect();
            files.sort();
            for file in files {
                let Some(name) = file.file_name().and_then(|n| n.to_str()) else { continue };
                let Some(version) = name.strip_suffix(".schema.json") else { continue };
                match compile_item(&item, version, &file) {
                    Ok(compiled) => {
                        catalog
                            .items
                            .insert((item.clone(), version.to_owned()), Arc::new(compiled));
                    }
                    Err(mut errs) => errors.append(&mut errs),
                }
            }
        }
        if errors.is_empty() { Ok(catalog) } else { Err(errors) }
    }

    pub fn get(&self, item: &str, version: &str) -> Option<&Arc<CatalogItem>> {
        self.items.get(&(item.to_owned(), version.to_owned()))
    }

    /// The newest version of an item (versions compare as numbers where they are numbers).
    pub fn latest(&self, item: &str) -> Option<&Arc<CatalogItem>> {
        self.items
            .iter()
            .filter(|((name, _), _)| name == item)
            .max_by_key(|((_, version), _)| version.parse::<u64>().unwrap_or(0))
            .map(|(_, compiled)| compiled)
    }

    pub fn items(&self) -> impl Iterator<Item = &Arc<CatalogItem>> {
        self.items.values()
    }

    pub fn item_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.items.keys().map(|(item, _)| item.clone()).collect();
        names.dedup();
        names
    }
}

fn compile_item(item: &str, version: &str, path: &Path) -> Result<CatalogItem, Vec<CatalogError>> {
    let err = |message: String| CatalogError { path: path.display().to_string(), message };
    let text = std::fs::read_to_string(path).map_err(|e| vec![err(format!("cannot read: {e}"))])?;
    let schema: Value =
        serde_json::from_str(&text).map_err(|e| vec![err(format!("not JSON: {e}"))])?;
    let mut errors = Vec::new();

    let expected_id = format!("urn:credgate:catalog:{item}:{version}");
    let id = schema.get("$id").and_then(Value::as_str).unwrap_or_default().to_owned();
    if id != expected_id {
        errors.push(err(format!("$id is `{id}`, expected `{expected_id}`")));
    }
    let title = schema.get("title").and_then(Value::as_str).unwrap_or_default().to_owned();

    let mut fields = BTreeMap::new();
    if let Some(properties) = schema.get("properties").and_then(Value::as_object) {
        for (name, prop) in properties {
            let meta = field_meta(prop);
            if meta.title.is_empty() && name != "extensions" {
                errors.push(err(format!("property `{name}` has no Chinese `title`")));
            }
            if let Some(pii) = &meta.pii
                && !PII_CLASSES.contains(&pii.as_str())
            {
                errors.push(err(format!("property `{name}`: unknown x-pii class `{pii}`")));
            }
            if let Some(format) = &meta.format
                && !FORMATS.contains(&format.as_str())
                && !is_builtin_format(format)
            {
                errors.push(err(format!("property `{name}`: unknown format `{format}`")));
            }
            fields.insert(name.clone(), meta);
        }
    } else {
        errors.push(err("schema has no `properties`".to_owned()));
    }

    let strings = |key: &str| -> Vec<String> {
        schema
            .get(key)
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).map(str::to_owned).collect())
            .unwrap_or_default()
    };
    let identity = strings("x-identity");
    let required = strings("required");
    let rules = strings("x-rules");
    if identity.is_empty() {
        errors.push(err("`x-identity` names no field".to_owned()));
    }
    for field in &identity {
        if !fields.contains_key(field) {
            errors.push(err(format!("x-identity field `{field}` is not a property")));
        } else if !required.contains(field) {
            errors.push(err(format!("x-identity field `{field}` is not required")));
        }
    }
    for rule in &rules {
        if !KNOWN_RULES.contains(&rule.as_str()) {
            errors.push(err(format!("x-rules names unknown rule `{rule}`")));
        }
    }
    let subject = schema
        .get("x-subject")
        .and_then(Value::as_object)
        .map(|o| o.iter().filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned()))).collect())
        .unwrap_or_default();
    let failed_info = schema.get("x-failed-info").and_then(Value::as_bool).unwrap_or(false);

    let validator = match build_validator(&schema) {
        Ok(v) => Some(v),
        Err(message) => {
            errors.push(err(message));
            None
        }
    };
    let column_keys_distinct = column_keys_distinct(&fields);
    let field_index = fields.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    match validator {
        Some(validator) if errors.is_empty() => Ok(CatalogItem {
            item: item.to_owned(),
            version: version.to_owned(),
            id,
            title,
            fields,
            identity,
            rules,
            required,
            failed_info,
            subject,
            validator,
            path: path.to_owned(),
            column_keys_distinct,
            field_index,
        }),
        _ => Err(errors),
    }
}

fn column_keys_distinct(fields: &BTreeMap<String, FieldMeta>) -> bool {
    let mut keys = std::collections::BTreeSet::from([crate::encode::CZLX]);
    fields.iter().all(|(name, meta)| keys.insert(meta.code.as_deref().unwrap_or(name)))
}

fn field_meta(prop: &Value) -> FieldMeta {
    let s = |key: &str| prop.get(key).and_then(Value::as_str).map(str::to_owned);
    FieldMeta {
        title: s("title").unwrap_or_default(),
        code: s("x-code"),
        pii: s("x-pii"),
        json_type: s("type").unwrap_or_else(|| "string".to_owned()),
        format: s("format"),
        item_type: prop
            .get("items")
            .and_then(|items| items.get("type"))
            .and_then(Value::as_str)
            .map(str::to_owned),
        item_properties: prop
            .get("items")
            .and_then(|items| items.get("properties"))
            .and_then(Value::as_object)
            .map(|props| {
                props
                    .iter()
                    .map(|(name, p)| {
                        let get = |k: &str| {
                            p.get(k).and_then(Value::as_str).unwrap_or_default().to_owned()
                        };
                        (name.clone(), (get("type"), get("title")))
                    })
                    .collect()
            })
            .unwrap_or_default(),
    }
}

fn is_builtin_format(format: &str) -> bool {
    matches!(format, "date-time" | "date" | "email" | "uri" | "uuid")
}

/// Compiles a schema with the named formats registered and format assertion on.
///
/// # Errors
///
/// The schema is not valid JSON Schema 2020-12.
pub fn build_validator(schema: &Value) -> Result<jsonschema::Validator, String> {
    jsonschema::options()
        .with_draft(jsonschema::Draft::Draft202012)
        .should_validate_formats(true)
        // `is_valid_uscc` is `check_uscc(s).is_ok()` without building the parts: the schema
        // runs it on every USCC field of every record, and SG-04 checks the same values again.
        .with_format("uscc", ids::is_valid_uscc)
        .with_format("uscc-or-placeholder", |s: &str| {
            ids::is_uscc_placeholder(s) || ids::is_valid_uscc(s)
        })
        .with_format("org-code", |s: &str| ids::check_org_code(s).is_ok())
        .with_format("cn-resident-id", |s: &str| ids::check_resident_id(s).is_ok())
        .with_format("gb2260-area", |s: &str| ids::check_gb2260_area(s).is_ok())
        .with_format("cn-date", is_iso_date)
        .with_format("amount-10k-cny", is_amount_10k_text)
        .build(schema)
        .map_err(|e| format!("invalid JSON Schema: {e}"))
}

/// An ISO `YYYY-MM-DD` date that exists on the calendar.
pub fn is_iso_date(s: &str) -> bool {
    s.len() == 10 && s.parse::<jiff::civil::Date>().is_ok()
}

/// A non-negative decimal with at most six fractional digits (万元 to the yuan cent).
pub fn is_amount_10k_text(s: &str) -> bool {
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    !int.is_empty()
        && int.bytes().all(|b| b.is_ascii_digit())
        && frac.len() <= 6
        && frac.bytes().all(|b| b.is_ascii_digit())
        && !(s.contains('.') && frac.is_empty())
}

/// Number of fractional digits of a JSON number as written (serde_json keeps the shortest
/// round-trip representation, which is what the platform sent for decimal inputs).
pub fn amount_decimals(n: &serde_json::Number) -> usize {
    let text = n.to_string();
    if text.contains(['e', 'E']) {
        return usize::MAX;
    }
    text.split_once('.').map_or(0, |(_, frac)| frac.len())
}
