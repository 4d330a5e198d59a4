//! The encode stage: a canonical record → the payload one destination receives, in that
//! destination's format and with its release (masking) policy applied.
//!
//! Masking is bound to the personal-data classes the catalog declares (`x-pii`), never to
//! field names, so a new item is covered by annotating its schema. Pure: no IO.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use regex::Regex;
use serde::Serialize;
use serde_json::{Map, Value};

use crate::catalog::CatalogItem;
use crate::config::raw::Audience;
use crate::domain::ids;
use crate::record::Fields;

/// Payload formats a destination can ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum PayloadFormat {
    /// The canonical record, flat JSON (envelope keys + catalog fields).
    CanonicalJson,
    /// 信用中国 column-code JSON: `{"CF_XDR_MC": …}`; fields without a column code keep their
    /// canonical key; `CZLX` (操作类型) says `U` (upsert) or `D` (retract: stop publicity).
    XinyongColumns,
    /// `<record>` XML with canonical element names.
    Xml,
}

impl PayloadFormat {
    pub fn parse(name: &str) -> Option<PayloadFormat> {
        match name {
            "canonical-json" => Some(PayloadFormat::CanonicalJson),
            "xinyong-columns" => Some(PayloadFormat::XinyongColumns),
            "xml" => Some(PayloadFormat::Xml),
            _ => None,
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            PayloadFormat::Xml => "application/xml",
            _ => "application/json",
        }
    }
}

/// What happens to values of one personal-data class.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum MaskAction {
    Keep,
    Mask,
    Drop,
}

impl MaskAction {
    pub fn parse(name: &str) -> Option<MaskAction> {
        match name {
            "keep" => Some(MaskAction::Keep),
            "mask" => Some(MaskAction::Mask),
            "drop" => Some(MaskAction::Drop),
            _ => None,
        }
    }
}

/// A destination's compiled release policy.
#[derive(Debug, Clone)]
pub struct ReleasePolicy {
    pub audience: Audience,
    pub actions: BTreeMap<String, MaskAction>,
}

/// Classes whose values must never reach a trading or public destination unmasked.
const SENSITIVE: &[&str] = &["resident_id", "phone", "home_address", "bank_account"];

impl ReleasePolicy {
    /// Compiles a policy and checks it covers every class used by the accepted items.
    ///
    /// # Errors
    ///
    /// Every unknown class or action, every class left unhandled, and every sensitive class
    /// kept for a trading or public audience.
    pub fn compile(
        audience: Audience,
        masking: &BTreeMap<String, String>,
        accepted: &[&CatalogItem],
    ) -> Result<ReleasePolicy, Vec<String>> {
        let mut errors = Vec::new();
        let mut actions = BTreeMap::new();
        for (class, action) in masking {
            if !crate::catalog::PII_CLASSES.contains(&class.as_str()) {
                errors.push(format!("masking: unknown personal-data class `{class}`"));
                continue;
            }
            match MaskAction::parse(action) {
                Some(parsed) => {
                    if audience != Audience::Government
                        && parsed == MaskAction::Keep
                        && (SENSITIVE.contains(&class.as_str()) || audience == Audience::Public)
                    {
                        errors.push(format!(
                            "masking: class `{class}` may not be kept for a {audience:?} destination"
                        ));
                    }
                    actions.insert(class.clone(), parsed);
                }
                None => {
                    errors.push(format!("masking: `{class}` = `{action}` is not keep|mask|drop"))
                }
            }
        }
        for item in accepted {
            for (name, meta) in &item.fields {
                if let Some(class) = &meta.pii
                    && !actions.contains_key(class)
                {
                    errors.push(format!(
                        "masking: class `{class}` (field `{}.{name}`) is not handled",
                        item.item
                    ));
                }
            }
        }
        errors.sort();
        errors.dedup();
        if errors.is_empty() { Ok(ReleasePolicy { audience, actions }) } else { Err(errors) }
    }

    /// Applies the policy to a copy of the fields.
    pub fn apply(&self, item: &CatalogItem, fields: &Fields) -> Fields {
        let natural_person =
            fields.get("subject_category").and_then(Value::as_str) == Some("自然人");
        // Names this policy hides must not survive inside free text either.
        let hidden_names: Vec<String> = fields
            .iter()
            .filter_map(|(name, value)| {
                let class = item.fields.get(name)?.pii.as_deref()?;
                let hidden = match class {
                    "subject_name" => natural_person,
                    "person_name" => true,
                    _ => false,
                } && self.actions.get(class).copied().unwrap_or(MaskAction::Drop)
                    != MaskAction::Keep;
                let text = value.as_str()?;
                (hidden && text.chars().count() >= 2).then(|| text.to_owned())
            })
            .collect();
        let mut out = Map::with_capacity(fields.len());
        for (name, value) in fields {
            if name == "extensions" && self.audience != Audience::Government {
                // Unclassified source fields may hold anything: they stay inside government.
                continue;
            }
            let class = item.fields.get(name).and_then(|m| m.pii.as_deref());
            let action = match class {
                Some("subject_name") if !natural_person => MaskAction::Keep,
                Some(class) => self.actions.get(class).copied().unwrap_or(MaskAction::Drop),
                None => MaskAction::Keep,
            };
            match action {
                MaskAction::Keep => {
                    out.insert(name.clone(), value.clone());
                }
                MaskAction::Drop => {}
                MaskAction::Mask => {
                    let mut masked = mask_value(class.unwrap_or_default(), value);
                    if class == Some("third_party")
                        && let Value::String(text) = &mut masked
                    {
                        for hidden in &hidden_names {
                            *text = text.replace(hidden.as_str(), &ids::mask_name(hidden));
                        }
                    }
                    out.insert(name.clone(), masked);
                }
            }
        }
        out
    }
}

/// Masks a value of a class; arrays and objects are masked element-wise.
pub fn mask_value(class: &str, value: &Value) -> Value {
    match value {
        Value::String(text) => Value::String(mask_text(class, text)),
        Value::Array(items) => Value::Array(items.iter().map(|v| mask_value(class, v)).collect()),
        Value::Object(map) => {
            Value::Object(map.iter().map(|(k, v)| (k.clone(), mask_value(class, v))).collect())
        }
        other => other.clone(),
    }
}

fn mask_text(class: &str, text: &str) -> String {
    match class {
        "resident_id" => ids::mask_id(text),
        "phone" => ids::mask_phone(text),
        "person_name" | "subject_name" => ids::mask_name(text),
        "bank_account" => {
            let chars: Vec<char> = text.chars().collect();
            let keep = chars.len().saturating_sub(4);
            chars.iter().enumerate().map(|(i, c)| if i < keep { '*' } else { *c }).collect()
        }
        "home_address" => {
            // Keep the province/city part a reader needs to place the record, hide the rest.
            let visible: String = text.chars().take(6).collect();
            format!("{visible}****")
        }
        _ => scrub_free_text(text),
    }
}

static ID_LIKE: LazyLock<Regex> = LazyLock::new(|| {
    #[allow(clippy::unwrap_used)] // A constant pattern, checked by the tests below.
    Regex::new(r"\d{17}[\dXx]|\d{15,19}|1[3-9]\d{9}").unwrap()
});

/// Removes identifier-shaped numbers (resident IDs, bank cards, mobile numbers) from free text.
pub fn scrub_free_text(text: &str) -> String {
    ID_LIKE.replace_all(text, |caps: &regex::Captures<'_>| "*".repeat(caps[0].len())).into_owned()
}

/// Renders a payload.
///
/// # Errors
///
/// Only when the canonical record cannot be serialised, which would be a bug.
pub fn render(
    format: PayloadFormat,
    item: &CatalogItem,
    envelope: &Map<String, Value>,
    fields: &Fields,
) -> Result<Vec<u8>, serde_json::Error> {
    match format {
        PayloadFormat::CanonicalJson => {
            let mut flat = envelope.clone();
            for (k, v) in fields {
                flat.insert(k.clone(), v.clone());
            }
            serde_json::to_vec(&flat)
        }
        PayloadFormat::XinyongColumns => {
            let mut columns = Map::new();
            for (name, value) in fields {
                let code = item.fields.get(name).and_then(|m| m.code.as_ref()).unwrap_or(name);
                let value = match value {
                    // Multi-valued fields travel joined with the exchange's separator.
                    Value::Array(items) => Value::String(
                        items
                            .iter()
                            .map(|v| crate::map::scalar_text(v).unwrap_or_default())
                            .collect::<Vec<_>>()
                            .join(";"),
                    ),
                    other => other.clone(),
                };
                columns.insert(code.clone(), value);
            }
            let retract = envelope.get("operation").and_then(Value::as_str) == Some("retract");
            columns.insert(
                "CZLX".to_owned(),
                Value::String(if retract { "D" } else { "U" }.to_owned()),
            );
            serde_json::to_vec(&columns)
        }
        PayloadFormat::Xml => Ok(render_xml(item, envelope, fields).into_bytes()),
    }
}

fn render_xml(item: &CatalogItem, envelope: &Map<String, Value>, fields: &Fields) -> String {
    let mut xml = String::with_capacity(1024);
    xml.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<record");
    for key in ["catalog_item", "catalog_version", "record_key", "record_version", "operation"] {
        if let Some(value) = envelope.get(key).and_then(crate::map::scalar_text) {
            xml.push_str(&format!(" {key}=\"{}\"", quick_xml::escape::escape(value.as_str())));
        }
    }
    xml.push('>');
    for (name, value) in fields {
        write_xml_value(&mut xml, name, value);
    }
    let _ = item;
    xml.push_str("</record>\n");
    xml
}

fn write_xml_value(xml: &mut String, name: &str, value: &Value) {
    match value {
        Value::Array(items) => {
            for item in items {
                write_xml_value(xml, name, item);
            }
        }
        Value::Object(map) => {
            xml.push_str(&format!("<{name}>"));
            for (k, v) in map {
                write_xml_value(xml, k, v);
            }
            xml.push_str(&format!("</{name}>"));
        }
        Value::Null => xml.push_str(&format!("<{name}/>")),
        other => {
            let text = crate::map::scalar_text(other).unwrap_or_default();
            xml.push_str(&format!("<{name}>{}</{name}>", quick_xml::escape::escape(text.as_str())));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_text_loses_identifier_shaped_numbers() {
        let text = "当事人身份证420102199003071232，电话13812345678，卡号6222021234567890123";
        let scrubbed = scrub_free_text(text);
        assert!(!scrubbed.contains("420102199003071232"));
        assert!(!scrubbed.contains("13812345678"));
        assert!(!scrubbed.contains("6222021234567890123"));
        assert!(scrubbed.starts_with("当事人身份证"));
    }
}
