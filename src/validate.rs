//! The validate stage: a record's catalog fields against its JSON Schema (with the named
//! formats) and the cross-field rules SG-01…SG-14 its schema lists in `x-rules`.
//!
//! Pure: time and the working-day calendar are passed in. Returns every violation, not the
//! first, each labelled with the field's Chinese title and column code, values masked.

use jsonschema::error::ValidationErrorKind;
use serde_json::Value;

use crate::catalog::{self, CatalogItem};
use crate::domain::ids;
use crate::domain::rules::{self, RuleContext};
use crate::record::{Fields, Finding, Severity, Violation};

/// Validates the fields of one record. The fields are lent to the schema validator as a
/// JSON object (moved in and back out, not copied) and are unchanged on return.
pub fn validate(item: &CatalogItem, fields: &mut Fields, ctx: &RuleContext<'_>) -> Vec<Violation> {
    let mut violations = Vec::new();
    let instance = Value::Object(std::mem::take(fields));
    if !item.validator.is_valid(&instance) {
        for error in item.validator.iter_errors(&instance) {
            violations.push(schema_violation(item, &instance, &error));
        }
    }
    if let Value::Object(map) = instance {
        *fields = map;
    }
    amount_precision(item, fields, &mut violations);
    for finding in rules::check_record(&item.item, fields, ctx) {
        if item.rules.iter().any(|r| r == finding.rule) {
            violations.push(label(item, finding));
        }
    }
    // A named rule (SG-04 "USCC checksum") says more than the bare `format` keyword on the same
    // field: keep one report per problem.
    let ruled: Vec<String> = violations
        .iter()
        .filter(|v| v.rule.starts_with("SG-") && v.severity == Severity::Error)
        .map(|v| v.path.clone())
        .collect();
    violations.retain(|v| !(v.rule == "format" && ruled.contains(&v.path)));
    violations.sort_by(|a, b| b.severity.cmp(&a.severity).then_with(|| a.path.cmp(&b.path)));
    violations.dedup();
    violations
}

/// Adds the Chinese label and column code of the field a finding points at.
pub fn label(item: &CatalogItem, finding: Finding) -> Violation {
    let (field, code) = item.label_for(&finding.path);
    Violation {
        rule: finding.rule.to_owned(),
        path: finding.path,
        field,
        code,
        message: finding.message,
        severity: finding.severity,
    }
}

/// `amount-10k-cny` on numbers: at most six decimals (JSON Schema formats only see strings).
fn amount_precision(item: &CatalogItem, fields: &Fields, out: &mut Vec<Violation>) {
    for (name, meta) in &item.fields {
        if meta.format.as_deref() != Some("amount-10k-cny") {
            continue;
        }
        if let Some(Value::Number(n)) = fields.get(name)
            && catalog::amount_decimals(n) > 6
        {
            out.push(label(
                item,
                Finding::error("format", format!("/{name}"), "金额（万元）最多保留 6 位小数"),
            ));
        }
    }
}

fn schema_violation(
    item: &CatalogItem,
    instance: &Value,
    error: &jsonschema::ValidationError<'_>,
) -> Violation {
    let mut path = error.instance_path().as_str().to_owned();
    let keyword = error.kind().keyword().to_owned();
    let message = match error.kind() {
        ValidationErrorKind::Required { property } => {
            let name = property.as_str().unwrap_or_default();
            path = format!("{path}/{name}");
            "缺少必填字段".to_owned()
        }
        ValidationErrorKind::AdditionalProperties { unexpected } => {
            if let Some(first) = unexpected.first() {
                path = format!("{path}/{first}");
            }
            format!("目录中没有该字段：{}", unexpected.join("、"))
        }
        ValidationErrorKind::Enum { options } => {
            let allowed: Vec<String> = options
                .as_array()
                .map(|a| {
                    a.iter().map(|v| v.as_str().map_or(v.to_string(), str::to_owned)).collect()
                })
                .unwrap_or_default();
            format!("取值不在代码表中，允许：{}", allowed.join(" / "))
        }
        ValidationErrorKind::MaxLength { limit } => format!("长度超过 {limit} 个字符"),
        ValidationErrorKind::MinLength { limit } => format!("长度少于 {limit} 个字符"),
        ValidationErrorKind::MinItems { limit } => format!("至少需要 {limit} 项"),
        ValidationErrorKind::Minimum { limit } => format!("不能小于 {limit}"),
        ValidationErrorKind::ExclusiveMinimum { limit } => format!("必须大于 {limit}"),
        ValidationErrorKind::Maximum { limit } => format!("不能大于 {limit}"),
        ValidationErrorKind::Type { .. } => {
            let wanted = item.type_for(&path).map_or("正确类型", type_zh);
            format!("类型错误，应为{wanted}")
        }
        ValidationErrorKind::Format { format } => format_message(format, instance, &path),
        ValidationErrorKind::Pattern { .. } => "格式不符合要求".to_owned(),
        _ => {
            // Other keywords: jsonschema's own text, with the instance value masked.
            error.masked().to_string()
        }
    };
    let (field, code) = item.label_for(&path);
    Violation { rule: keyword, path, field, code, message, severity: Severity::Error }
}

fn type_zh(json_type: &str) -> &'static str {
    match json_type {
        "number" => "数值",
        "integer" => "整数",
        "boolean" => "布尔值",
        "array" => "列表",
        "object" => "对象",
        _ => "文本",
    }
}

/// A specific message for a failed named format, from the identifier checks themselves.
fn format_message(format: &str, instance: &Value, pointer: &str) -> String {
    let value = instance.pointer(pointer).and_then(Value::as_str).unwrap_or_default();
    match format {
        "uscc" | "uscc-or-placeholder" => match ids::check_uscc(value) {
            Err(error) => format!("统一社会信用代码 {value} 无效：{}", error.message_zh()),
            Ok(_) => format!("统一社会信用代码 {value} 无效"),
        },
        "org-code" => match ids::check_org_code(value) {
            Err(error) => format!("组织机构代码 {value} 无效：{}", error.message_zh()),
            Ok(_) => format!("组织机构代码 {value} 无效"),
        },
        "cn-resident-id" => match ids::check_resident_id(value) {
            Err(error) => {
                format!("身份证号码 {} 无效：{}", ids::mask_id(value), error.message_zh())
            }
            Ok(_) => format!("身份证号码 {} 无效", ids::mask_id(value)),
        },
        "gb2260-area" => format!("行政区划代码 {value} 无效（应为 6 位数字且省级前缀有效）"),
        "cn-date" => format!("日期 {value} 无效（应为存在的日期，格式 YYYY-MM-DD）"),
        "amount-10k-cny" => format!("金额 {value} 无效（万元，非负，最多 6 位小数）"),
        "date-time" => format!("时间 {value} 无效（应为 RFC 3339 时间）"),
        other => format!("不符合格式 {other}"),
    }
}
