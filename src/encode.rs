//! The encode stage: a canonical record → the payload one destination receives, in that
//! destination's format and with its release (masking) policy applied.
//!
//! Masking is bound to the personal-data classes the catalog declares (`x-pii`), never to
//! field names, so a new item is covered by annotating its schema. Pure: no IO.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::LazyLock;

use regex::Regex;
use serde::Serialize;
use serde::ser::{SerializeMap, Serializer};
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
        self.release(item, fields)
            .into_iter()
            .map(|(name, value)| (name.to_owned(), value.into_owned()))
            .collect()
    }

    /// Applies the policy, borrowing every value it leaves unchanged: the fields a destination
    /// may see, in record order. [`ReleasePolicy::apply`] is this, copied into a map.
    pub fn release<'a>(&self, item: &CatalogItem, fields: &'a Fields) -> Released<'a> {
        let natural_person =
            fields.get("subject_category").and_then(Value::as_str) == Some("自然人");
        // Names this policy hides must not survive inside free text either. Only masked
        // free text needs them, so they are collected when the first such field comes up.
        let mut hidden_names: Option<Vec<String>> = None;
        let mut out = Vec::with_capacity(fields.len());
        for (name, value) in fields {
            if name == "extensions" && self.audience != Audience::Government {
                // Unclassified source fields may hold anything: they stay inside government.
                continue;
            }
            let class = item.field(name).and_then(|m| m.pii.as_deref());
            let action = match class {
                Some("subject_name") if !natural_person => MaskAction::Keep,
                Some(class) => self.actions.get(class).copied().unwrap_or(MaskAction::Drop),
                None => MaskAction::Keep,
            };
            match action {
                MaskAction::Keep => out.push((name.as_str(), Cow::Borrowed(value))),
                MaskAction::Drop => {}
                MaskAction::Mask => {
                    let mut masked = mask_value(class.unwrap_or_default(), value);
                    if class == Some("third_party")
                        && let Value::String(text) = &mut masked
                    {
                        let hidden = hidden_names
                            .get_or_insert_with(|| self.hidden_names(item, fields, natural_person));
                        for hidden in hidden.iter() {
                            *text = text.replace(hidden.as_str(), &ids::mask_name(hidden));
                        }
                    }
                    out.push((name.as_str(), Cow::Owned(masked)));
                }
            }
        }
        out
    }

    /// Person names (of at least two characters) whose class this policy does not keep.
    fn hidden_names(
        &self,
        item: &CatalogItem,
        fields: &Fields,
        natural_person: bool,
    ) -> Vec<String> {
        fields
            .iter()
            .filter_map(|(name, value)| {
                let class = item.field(name)?.pii.as_deref()?;
                let hidden = match class {
                    "subject_name" => natural_person,
                    "person_name" => true,
                    _ => false,
                } && self.actions.get(class).copied().unwrap_or(MaskAction::Drop)
                    != MaskAction::Keep;
                let text = value.as_str()?;
                (hidden && text.chars().count() >= 2).then(|| text.to_owned())
            })
            .collect()
    }
}

/// The fields a destination may see after its release policy, in record order: unchanged
/// values borrowed from the record, masked ones owned.
pub type Released<'a> = Vec<(&'a str, Cow<'a, Value>)>;

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
    let released: Released<'_> =
        fields.iter().map(|(name, value)| (name.as_str(), Cow::Borrowed(value))).collect();
    render_released(format, item, envelope, &released)
}

/// [`render`] from the output of [`ReleasePolicy::release`], serialising straight from the
/// borrowed values instead of building the payload object first. The bytes are those of the
/// map [`render`] used to build: same keys, same order, a later key replacing an earlier one's
/// value in place.
///
/// # Errors
///
/// Only when the canonical record cannot be serialised, which would be a bug.
pub fn render_released(
    format: PayloadFormat,
    item: &CatalogItem,
    envelope: &Map<String, Value>,
    fields: &[(&str, Cow<'_, Value>)],
) -> Result<Vec<u8>, serde_json::Error> {
    match format {
        PayloadFormat::CanonicalJson => {
            let mut out = Vec::with_capacity(1024);
            let mut ser = serde_json::Serializer::new(&mut out);
            let mut map = ser.serialize_map(None)?;
            // Envelope keys first; a field with an envelope key's name (`source_org_uscc`)
            // takes that key's place, as inserting it into a copy of the envelope did.
            for (key, value) in envelope {
                let value = fields
                    .iter()
                    .find(|(name, _)| *name == key.as_str())
                    .map_or(value, |(_, field)| field.as_ref());
                map.serialize_entry(key, value)?;
            }
            for (name, value) in fields {
                if !envelope.contains_key(*name) {
                    map.serialize_entry(name, value.as_ref())?;
                }
            }
            map.end()?;
            Ok(out)
        }
        PayloadFormat::XinyongColumns => {
            let retract = envelope.get("operation").and_then(Value::as_str) == Some("retract");
            let czlx = Value::String(if retract { "D" } else { "U" }.to_owned());
            let dispute = dispute_columns(envelope);
            // Every field of the item has its own column key (checked when the catalog was
            // loaded); a field outside the item keys by its name and might collide.
            let mut distinct = item.column_keys_distinct;
            let mut columns = Vec::with_capacity(fields.len());
            for (name, value) in fields {
                let code = match item.field(name) {
                    Some(meta) => meta.code.as_deref().unwrap_or(name),
                    None => {
                        distinct = false;
                        name
                    }
                };
                let value = match value.as_ref() {
                    // Multi-valued fields travel joined with the exchange's separator.
                    Value::Array(items) => Cow::Owned(Value::String(
                        items
                            .iter()
                            .map(|v| crate::map::scalar_text(v).unwrap_or_default())
                            .collect::<Vec<_>>()
                            .join(";"),
                    )),
                    other => Cow::Borrowed(other),
                };
                columns.push((code, value));
            }
            if distinct {
                let mut out = Vec::with_capacity(1024);
                let mut ser = serde_json::Serializer::new(&mut out);
                let mut map = ser.serialize_map(None)?;
                for (code, value) in &columns {
                    map.serialize_entry(code, value.as_ref())?;
                }
                map.serialize_entry(CZLX, &czlx)?;
                for (code, value) in &dispute {
                    map.serialize_entry(code, value)?;
                }
                map.end()?;
                Ok(out)
            } else {
                // Keys may repeat: a map keeps the first position and the last value.
                let mut map = Map::new();
                for (code, value) in columns {
                    map.insert(code.to_owned(), value.into_owned());
                }
                map.insert(CZLX.to_owned(), czlx);
                for (code, value) in dispute {
                    map.insert(code.to_owned(), value);
                }
                serde_json::to_vec(&map)
            }
        }
        PayloadFormat::Xml => Ok(render_xml(envelope, fields).into_bytes()),
    }
}

/// 操作类型 column of the 信用中国 format.
pub const CZLX: &str = "CZLX";

/// The objection (异议) columns of a copy sent because of a hold (`lifecycle::objection`):
/// `YYBH` the objection number, `YYZT` its status (已受理, 维持 …), `YYCL` what the platform is
/// asked to do — 异议标注 (show it marked), 暂停公示 (hide it until resolved), 恢复公示 (the
/// objection ended; show it plainly again).
fn dispute_columns(envelope: &Map<String, Value>) -> Vec<(&'static str, Value)> {
    let Some(dispute) = envelope.get("dispute").and_then(Value::as_object) else {
        return Vec::new();
    };
    let text = |key: &str| dispute.get(key).and_then(Value::as_str).unwrap_or_default();
    let action = match text("action") {
        "mark" => "异议标注",
        "suspend" => "暂停公示",
        _ => "恢复公示",
    };
    vec![
        ("YYBH", Value::String(text("objection_id").to_owned())),
        ("YYZT", Value::String(text("status").to_owned())),
        ("YYCL", Value::String(action.to_owned())),
    ]
}

fn render_xml(envelope: &Map<String, Value>, fields: &[(&str, Cow<'_, Value>)]) -> String {
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

    /// `render` as it was before it streamed from borrowed values: build the payload map,
    /// then serialise it. The streamed bytes must be these bytes.
    fn render_via_map(
        format: PayloadFormat,
        item: &CatalogItem,
        envelope: &Map<String, Value>,
        fields: &Fields,
    ) -> Vec<u8> {
        match format {
            PayloadFormat::CanonicalJson => {
                let mut flat = envelope.clone();
                for (k, v) in fields {
                    flat.insert(k.clone(), v.clone());
                }
                serde_json::to_vec(&flat).unwrap()
            }
            PayloadFormat::XinyongColumns => {
                let mut columns = Map::new();
                for (name, value) in fields {
                    let code = item.fields.get(name).and_then(|m| m.code.as_ref()).unwrap_or(name);
                    let value = match value {
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
                serde_json::to_vec(&columns).unwrap()
            }
            PayloadFormat::Xml => render(format, item, envelope, fields).unwrap(),
        }
    }

    #[test]
    fn streamed_payloads_are_the_map_built_bytes() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas");
        let catalog = crate::catalog::Catalog::load(&dir).unwrap();
        let item = catalog.latest("admin_penalty").unwrap();
        let Value::Object(fields) = serde_json::json!({
            "subject_name": "湖北示例建设工程有限公司",
            "subject_category": "法人及非法人组织",
            "subject_uscc": "91420100MA4P7Q8R8N",
            "legal_rep_name": "张三",
            "penalty_categories": ["罚款", "警告"],
            "penalty_content": "罚款人民币12345.67元\n\"引号\"",
            "fine_amount_10k_cny": 1.234567,
            "decision_date": "2026-09-28",
            // Also an envelope key: takes the envelope key's place in canonical JSON.
            "source_org_uscc": "11420000MB0P1Q2R33",
            "extensions": {"X": 1},
        }) else {
            unreachable!()
        };
        for operation in ["upsert", "retract"] {
            let Value::Object(envelope) = serde_json::json!({
                "catalog_item": "admin_penalty",
                "record_key": "admin_penalty:k",
                "source_org_uscc": "11420100MB1B7C8D0K",
                "operation": operation,
                "received_at": "2026-09-30T10:00:00.000+08:00",
            }) else {
                unreachable!()
            };
            for format in
                [PayloadFormat::CanonicalJson, PayloadFormat::XinyongColumns, PayloadFormat::Xml]
            {
                let released: Released<'_> =
                    fields.iter().map(|(k, v)| (k.as_str(), Cow::Borrowed(v))).collect();
                let streamed = render_released(format, item, &envelope, &released).unwrap();
                let via_map = render_via_map(format, item, &envelope, &fields);
                assert_eq!(
                    String::from_utf8(streamed).unwrap(),
                    String::from_utf8(via_map).unwrap(),
                    "{format:?} {operation}"
                );
            }
        }
    }

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
