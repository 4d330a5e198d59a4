//! Cross-field rules SG-01…SG-14 (standards §1.6) over one canonical record.
//!
//! Pure: the receipt date and the working-day calendar are injected through [`RuleContext`],
//! so the same record and context always give the same findings. JSON Schema handles types,
//! enums and plain required-ness; these rules cover what a schema cannot say well (checksums,
//! conditional blocks, date order, heuristics).
//!
//! Conventions: `""`, whitespace-only strings, `null` and `[]` count as absent; a value of the
//! wrong JSON type is left to the schema and ignored here. Messages are Chinese and never carry
//! an unmasked personal ID.

use std::fmt;

use jiff::civil::Date;
use serde_json::{Map, Value};

use crate::domain::ids::{self, IdError, UsccWarning};
use crate::fasthash::FxHashMap;
use crate::record::Finding;

/// 行政相对人类别 values (standards §1.5 A).
pub const CATEGORY_ORG: &str = "法人及非法人组织";
pub const CATEGORY_PERSON: &str = "自然人";
pub const CATEGORY_INDIVIDUAL_BUSINESS: &str = "个体工商户";
/// 证件类型 value that triggers the GB 11643 check.
pub const ID_TYPE_RESIDENT: &str = "身份证";

/// Items subject to 双公示 rules (SG-01…03, 07, 08, 10…13).
pub const SHUANG_GONGSHI_ITEMS: [&str; 2] = ["admin_penalty", "admin_license"];

/// 双公示 publication limit (国发〔2014〕20号 and later, standards §1.1).
pub const PUBLICATION_LIMIT_WORKING_DAYS: i64 = 7;

/// SG-11 only fires from this amount (in 万元) up: a ≥ 1 000 000 CNY fine is rare enough that a
/// matching yuan figure in the text is strong evidence of a unit mistake, while small amounts
/// coincide with unrelated yuan figures too often.
pub const SG11_MIN_SUSPICIOUS_AMOUNT: f64 = 100.0;

/// USCC prefixes expected for a 许可/处罚机关 (SG-13): 机关, 事业单位, 群众团体, 其他机构编制,
/// 社会团体, 民办非企业单位, 基金会, 其他民政 — the latter because authorised organisations do
/// hold penalty powers.
pub const AUTHORITY_USCC_PREFIXES: [&str; 8] = ["11", "12", "13", "19", "51", "52", "53", "59"];

/// Date fields that must not lie after the receipt date (SG-09).
pub const SG09_DATE_FIELDS: [&str; 7] = [
    "decision_date",
    "listed_on",
    "scored_on",
    "committed_on",
    "repair_date",
    "evaluated_on",
    "decided_on",
];

/// The 行政相对人代码 block that must be empty for 自然人 (SG-01).
const SUBJECT_CODE_FIELDS: [&str; 6] = [
    "subject_uscc",
    "subject_business_reg_no",
    "subject_org_code",
    "subject_tax_reg_no",
    "subject_public_institution_cert_no",
    "subject_social_org_reg_no",
];
const LEGAL_REP_FIELDS: [&str; 3] = ["legal_rep_name", "legal_rep_id_type", "legal_rep_id_no"];

/// Working-day counting supplied by the caller (the calendar module); this crate part holds no
/// holiday data and never guesses one.
pub trait WorkingDays {
    /// Number of working days in `(start, end]`. `Err` (e.g. the year's holiday notice is not
    /// loaded) carries a human-readable reason.
    fn working_days_between(&self, start: Date, end: Date) -> Result<i64, String>;
}

/// Everything time-dependent the rules need.
#[derive(Clone, Copy)]
pub struct RuleContext<'a> {
    /// Day the record was received, already converted to Asia/Shanghai by the caller.
    pub received_at_date: Date,
    /// Calendar for SG-12. `None` skips SG-12 entirely (e.g. replaying history without a
    /// calendar); an `Err` from it yields an SG-12 warning instead.
    pub working_days: Option<&'a dyn WorkingDays>,
}

impl<'a> RuleContext<'a> {
    pub fn new(received_at_date: Date) -> Self {
        RuleContext { received_at_date, working_days: None }
    }

    pub fn with_working_days(mut self, calendar: &'a dyn WorkingDays) -> Self {
        self.working_days = Some(calendar);
        self
    }
}

impl fmt::Debug for RuleContext<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RuleContext")
            .field("received_at_date", &self.received_at_date)
            .field("working_days", &self.working_days.map(|_| "<calendar>"))
            .finish()
    }
}

/// SG-14: code-field normalisation for the mapper, `(normalised, changed)`. Case is kept; see
/// [`ids::normalize_code_upper`] when the contract allows uppercasing.
pub fn sg14_normalize(value: &str) -> (String, bool) {
    let n = ids::normalize_code(value);
    (n.value, n.changed)
}

/// Runs every applicable rule on one canonical record of catalog item `item`.
pub fn check_record(
    item: &str,
    fields: &Map<String, Value>,
    ctx: &RuleContext<'_>,
) -> Vec<Finding> {
    let r = Record::new(fields);
    let mut out = Vec::new();
    let shuang_gongshi = SHUANG_GONGSHI_ITEMS.contains(&item);
    if shuang_gongshi {
        sg01_natural_person(&r, &mut out);
        sg02_organisation(&r, &mut out);
        sg03_placeholder(&r, &mut out);
    }
    sg04_sg05_uscc_fields(&r, &mut out);
    sg06_resident_ids(&r, &mut out);
    if shuang_gongshi {
        sg07_legal_rep_id(&r, &mut out);
        sg08_validity(&r, &mut out);
    }
    sg09_future_dates(&r, ctx, &mut out);
    if shuang_gongshi {
        sg10_penalty_details(&r, &mut out);
        sg11_yuan_amounts(&r, &mut out);
        sg12_publication_lag(&r, ctx, &mut out);
        sg13_authority_prefix(&r, &mut out);
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Field access
// ---------------------------------------------------------------------------------------------

struct Record<'a> {
    fields: &'a Map<String, Value>,
    /// The fields again, keyed with a cheap hash: the rules look up about thirty names per
    /// record, and the record map's SipHash cost more than the checks themselves.
    index: FxHashMap<&'a str, &'a Value>,
}

impl<'a> Record<'a> {
    fn new(fields: &'a Map<String, Value>) -> Self {
        let mut index = FxHashMap::with_capacity_and_hasher(fields.len(), Default::default());
        index.extend(fields.iter().map(|(k, v)| (k.as_str(), v)));
        Record { fields, index }
    }

    fn get(&self, key: &str) -> Option<&'a Value> {
        self.index.get(key).copied()
    }

    fn present(&self, key: &str) -> bool {
        match self.get(key) {
            None | Some(Value::Null) => false,
            Some(Value::String(s)) => !s.trim().is_empty(),
            Some(Value::Array(a)) => !a.is_empty(),
            Some(_) => true,
        }
    }

    /// Non-blank string value.
    fn text(&self, key: &str) -> Option<&str> {
        match self.get(key) {
            Some(Value::String(s)) if !s.trim().is_empty() => Some(s.as_str()),
            _ => None,
        }
    }

    fn date(&self, key: &str) -> Option<Date> {
        // Unparseable dates are the schema's `format: date` finding, not ours.
        self.text(key)?.trim().parse().ok()
    }

    /// A number, or a string holding one (some upstreams quote decimals).
    fn number(&self, key: &str) -> Option<f64> {
        match self.get(key)? {
            Value::Number(n) => n.as_f64(),
            Value::String(s) => s.trim().parse().ok(),
            _ => None,
        }
    }

    /// `penalty_categories` as a list. A lone string is split on `;` and `,` (either width) but
    /// not on `、`, because the pre-2021 values `没收违法所得、没收非法财物` and
    /// `其他（法律、行政法规…）` contain `、` themselves.
    fn list(&self, key: &str) -> Vec<&str> {
        let items: Vec<&str> = match self.get(key) {
            Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).collect(),
            Some(Value::String(s)) => s.split([';', '；', ',', '，']).collect(),
            _ => Vec::new(),
        };
        items.into_iter().map(str::trim).filter(|s| !s.is_empty()).collect()
    }
}

/// JSON pointer of a top-level key (RFC 6901 escaping).
fn ptr(key: &str) -> String {
    if !key.contains(['~', '/']) {
        // Nothing to escape (every catalog key): skip the two `replace` copies.
        return format!("/{key}");
    }
    format!("/{}", key.replace('~', "~0").replace('/', "~1"))
}

// ---------------------------------------------------------------------------------------------
// Rules
// ---------------------------------------------------------------------------------------------

fn sg01_natural_person(r: &Record<'_>, out: &mut Vec<Finding>) {
    if r.text("subject_category").map(str::trim) != Some(CATEGORY_PERSON) {
        return;
    }
    for key in ["subject_id_type", "subject_id_no"] {
        if !r.present(key) {
            out.push(Finding::error(
                "SG-01",
                ptr(key),
                "行政相对人类别为自然人时，证件类型和证件号码必填",
            ));
        }
    }
    for key in SUBJECT_CODE_FIELDS.iter().chain(&LEGAL_REP_FIELDS) {
        if r.present(key) {
            out.push(Finding::error(
                "SG-01",
                ptr(key),
                "行政相对人类别为自然人时，行政相对人代码和法定代表人信息应为空",
            ));
        }
    }
}

fn sg02_organisation(r: &Record<'_>, out: &mut Vec<Finding>) {
    let Some(category) = r.text("subject_category").map(str::trim) else {
        return;
    };
    if category != CATEGORY_ORG && category != CATEGORY_INDIVIDUAL_BUSINESS {
        return;
    }
    if !r.present("subject_uscc") {
        out.push(Finding::error(
            "SG-02",
            "/subject_uscc",
            format!("行政相对人类别为{category}时，统一社会信用代码必填"),
        ));
    }
    if !r.present("legal_rep_name") {
        out.push(Finding::error(
            "SG-02",
            "/legal_rep_name",
            format!("行政相对人类别为{category}时，法定代表人必填"),
        ));
    }
}

fn sg03_placeholder(r: &Record<'_>, out: &mut Vec<Finding>) {
    if !r.text("subject_uscc").is_some_and(|s| ids::is_uscc_placeholder(s.trim())) {
        return;
    }
    if r.text("subject_category").map(str::trim) != Some(CATEGORY_INDIVIDUAL_BUSINESS) {
        out.push(Finding::error(
            "SG-03",
            "/subject_category",
            format!(
                "统一社会信用代码为占位码 {} 时，行政相对人类别须为个体工商户",
                ids::USCC_PLACEHOLDER
            ),
        ));
    }
    match r.text("subject_business_reg_no").map(str::trim) {
        None => out.push(Finding::error(
            "SG-03",
            "/subject_business_reg_no",
            "统一社会信用代码为占位码时，工商注册号必填",
        )),
        // The registration number is then the only identifier, so a bad check digit matters;
        // it stays a warning because 13-digit numbers without a check digit are legitimate.
        Some(no) => {
            if let Err(e) = ids::check_business_reg_no(no) {
                out.push(Finding::warning(
                    "SG-03",
                    "/subject_business_reg_no",
                    format!("工商注册号未通过校验：{}", e.message_zh()),
                ));
            }
        }
    }
}

/// SG-04 / SG-05 on one USCC value. The path is built only for a finding: most codes are
/// fine.
fn check_uscc_value(path: impl Fn() -> String, value: &str, out: &mut Vec<Finding>) {
    match ids::check_uscc_warnings(value) {
        Err(e) => out.push(Finding::error(
            "SG-04",
            path(),
            format!("统一社会信用代码无效：{}", e.message_zh()),
        )),
        Ok(warnings) => {
            for w in &warnings {
                let rule = match w {
                    UsccWarning::OrgCodeChecksum { .. } => "SG-05",
                    UsccWarning::UnknownDepartment { .. } | UsccWarning::UnknownCategory { .. } => {
                        "SG-04"
                    }
                };
                out.push(Finding::warning(
                    rule,
                    path(),
                    format!("统一社会信用代码：{}", w.message_zh()),
                ));
            }
        }
    }
}

fn sg04_sg05_uscc_fields(r: &Record<'_>, out: &mut Vec<Finding>) {
    for key in r.fields.keys() {
        if !key.ends_with("_uscc") {
            continue;
        }
        let Some(value) = r.text(key) else { continue };
        if ids::is_uscc_placeholder(value) {
            // On the subject it is SG-03's business; anywhere else a placeholder is no code.
            if key != "subject_uscc" {
                out.push(Finding::error(
                    "SG-04",
                    ptr(key),
                    "占位码 00000000000000000X 仅可用于个体工商户的行政相对人统一社会信用代码",
                ));
            }
            continue;
        }
        check_uscc_value(|| ptr(key), value, out);
    }

    // List entries carry one `subject_code` whose kind follows the category.
    let Some(code) = r.text("subject_code") else {
        return;
    };
    match r.text("subject_category").map(str::trim) {
        Some(CATEGORY_ORG) | Some(CATEGORY_INDIVIDUAL_BUSINESS) => {
            if ids::is_uscc_placeholder(code) {
                if r.text("subject_category").map(str::trim) != Some(CATEGORY_INDIVIDUAL_BUSINESS) {
                    out.push(Finding::error(
                        "SG-04",
                        "/subject_code",
                        "占位码 00000000000000000X 仅可用于个体工商户",
                    ));
                }
            } else {
                check_uscc_value(|| "/subject_code".to_owned(), code, out);
            }
        }
        // Only an 18-character mostly-digit code is taken for a resident ID: a natural person's
        // code may also be a passport or permit number, which has no checksum to verify.
        Some(CATEGORY_PERSON) if looks_like_resident_id(code) => {
            check_resident_id_value("SG-06", || "/subject_code".to_owned(), code, out);
        }
        _ => {}
    }
}

fn looks_like_resident_id(s: &str) -> bool {
    s.len() == 18 && s.bytes().take(17).all(|b| b.is_ascii_digit())
}

/// SG-06 logic on one resident ID value; messages carry only the masked number. Path and
/// masked number are built only for a finding.
fn check_resident_id_value(
    rule: &'static str,
    path: impl Fn() -> String,
    value: &str,
    out: &mut Vec<Finding>,
) {
    if ids::check_resident_id(value).is_ok() {
        return;
    }
    let masked = ids::mask_id(value);
    let path = path();
    match ids::check_resident_id(value) {
        Ok(_) => {}
        Err(IdError::LowercaseX) => match ids::check_resident_id(&value.to_ascii_uppercase()) {
            Ok(_) => out.push(Finding::warning(
                rule,
                path,
                format!("身份证号码 {masked} 末位校验码应为大写 X"),
            )),
            Err(e) => out.push(Finding::error(
                rule,
                path,
                format!("身份证号码 {masked} 无效：{}", e.message_zh()),
            )),
        },
        // A first-generation number is still a real ID; the mapper should upgrade it.
        Err(IdError::Legacy15) if ids::upgrade_legacy_resident_id(value).is_some() => {
            out.push(Finding::warning(
                rule,
                path,
                format!("身份证号码 {masked} 为 15 位旧版号码，应升级为 18 位"),
            ));
        }
        Err(e) => out.push(Finding::error(
            rule,
            path,
            format!("身份证号码 {masked} 无效：{}", e.message_zh()),
        )),
    }
}

/// SG-06 for the subject and, per SG-07's "SG-06 logic if 身份证", the legal representative.
/// Both are reported as SG-06 so that one rule id means "ID checksum".
fn sg06_resident_ids(r: &Record<'_>, out: &mut Vec<Finding>) {
    for (type_key, no_key) in
        [("subject_id_type", "subject_id_no"), ("legal_rep_id_type", "legal_rep_id_no")]
    {
        if r.text(type_key).map(str::trim) != Some(ID_TYPE_RESIDENT) {
            continue;
        }
        if let Some(no) = r.text(no_key) {
            check_resident_id_value("SG-06", || ptr(no_key), no, out);
        }
    }
}

fn sg07_legal_rep_id(r: &Record<'_>, out: &mut Vec<Finding>) {
    if r.present("legal_rep_id_type") && !r.present("legal_rep_id_no") {
        out.push(Finding::error(
            "SG-07",
            "/legal_rep_id_no",
            "已填写法定代表人证件类型时，法定代表人证件号码必填",
        ));
    }
}

fn sg08_validity(r: &Record<'_>, out: &mut Vec<Finding>) {
    let from = r.date("valid_from");
    if let (Some(from), Some(to)) = (from, r.date("valid_to"))
        && from > to
    {
        out.push(Finding::error(
            "SG-08",
            "/valid_to",
            format!("有效期至 {to} 早于有效期自 {from}"),
        ));
    }
    // Licences may take effect before the written decision (e.g. renewals), hence a warning.
    if let (Some(decided), Some(from)) = (r.date("decision_date"), from)
        && decided > from
    {
        out.push(Finding::warning(
            "SG-08",
            "/valid_from",
            format!("有效期自 {from} 早于许可决定日期 {decided}，请核实"),
        ));
    }
}

fn sg09_future_dates(r: &Record<'_>, ctx: &RuleContext<'_>, out: &mut Vec<Finding>) {
    for key in SG09_DATE_FIELDS {
        if let Some(d) = r.date(key)
            && d > ctx.received_at_date
        {
            out.push(Finding::error(
                "SG-09",
                ptr(key),
                format!("日期 {d} 晚于接收日期 {}", ctx.received_at_date),
            ));
        }
    }
}

fn sg10_penalty_details(r: &Record<'_>, out: &mut Vec<Finding>) {
    let cats = r.list("penalty_categories");
    if cats.is_empty() {
        return;
    }
    if cats.contains(&"罚款") {
        match r.number("fine_amount_10k_cny") {
            Some(x) if x > 0.0 => {}
            Some(_) => out.push(Finding::error(
                "SG-10",
                "/fine_amount_10k_cny",
                "处罚类别含罚款时，罚款金额（万元）须大于 0",
            )),
            None => out.push(Finding::error(
                "SG-10",
                "/fine_amount_10k_cny",
                "处罚类别含罚款时，罚款金额（万元）必填",
            )),
        }
    }
    // Both the 2021 values (没收违法所得 / 没收非法财物) and the combined pre-2021 value.
    if cats.iter().any(|c| c.starts_with("没收")) && !r.present("confiscation_amount_10k_cny") {
        out.push(Finding::error(
            "SG-10",
            "/confiscation_amount_10k_cny",
            "处罚类别含没收违法所得或没收非法财物时，没收金额（万元）必填",
        ));
    }
    // 暂扣许可证件 / 吊销许可证件 (2021) and 暂扣或者吊销许可证、暂扣或者吊销执照 (pre-2021).
    if cats.iter().any(|c| c.starts_with("暂扣") || c.starts_with("吊销"))
        && !r.present("suspended_revoked_licenses")
    {
        out.push(Finding::error(
            "SG-10",
            "/suspended_revoked_licenses",
            "处罚类别含暂扣或吊销证照时，暂扣或吊销证照名称及编号必填",
        ));
    }
}

/// Yuan figures written in `text`: `2000元`, `12,345.67 元`, and `1.5万元` converted to yuan.
fn yuan_figures(text: &str) -> Vec<f64> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        if !chars[i].is_ascii_digit() {
            i += 1;
            continue;
        }
        let start = i;
        while i < chars.len() && (chars[i].is_ascii_digit() || matches!(chars[i], ',' | '，' | '.'))
        {
            i += 1;
        }
        let number: String =
            chars[start..i].iter().filter(|c| c.is_ascii_digit() || **c == '.').collect();
        let mut j = i;
        while j < chars.len() && chars[j].is_whitespace() {
            j += 1;
        }
        let Ok(value) = number.trim_end_matches('.').parse::<f64>() else {
            continue;
        };
        match (chars.get(j), chars.get(j + 1)) {
            (Some('元'), _) => out.push(value),
            (Some('万'), Some('元')) => out.push(value * 10_000.0),
            _ => {}
        }
    }
    out
}

fn sg11_yuan_amounts(r: &Record<'_>, out: &mut Vec<Finding>) {
    let Some(content) = r.text("penalty_content") else {
        return;
    };
    // Read from the text only for a suspicious amount: most fines are far below it.
    let mut figures: Option<Vec<f64>> = None;
    for key in ["fine_amount_10k_cny", "confiscation_amount_10k_cny"] {
        let Some(amount) = r.number(key) else {
            continue;
        };
        if amount < SG11_MIN_SUSPICIOUS_AMOUNT {
            continue;
        }
        let figures = figures.get_or_insert_with(|| yuan_figures(content));
        if figures.iter().any(|&y| (y - amount).abs() < 1e-6) {
            out.push(Finding::warning(
                "SG-11",
                ptr(key),
                format!(
                    "金额 {amount} 与处罚内容中的 {amount} 元一致，疑似以元而非万元填报（应为 {} 万元）",
                    amount / 10_000.0
                ),
            ));
        }
    }
}

fn sg12_publication_lag(r: &Record<'_>, ctx: &RuleContext<'_>, out: &mut Vec<Finding>) {
    let (Some(calendar), Some(decided)) = (ctx.working_days, r.date("decision_date")) else {
        return;
    };
    // A future decision date is SG-09's error; counting backwards would be meaningless.
    if decided >= ctx.received_at_date {
        return;
    }
    match calendar.working_days_between(decided, ctx.received_at_date) {
        Ok(days) if days > PUBLICATION_LIMIT_WORKING_DAYS => out.push(Finding::warning(
            "SG-12",
            "/decision_date",
            format!(
                "决定日期 {decided} 后第 {days} 个工作日（{received}）才接收，\
                 超过 {limit} 个工作日的公示时限",
                received = ctx.received_at_date,
                limit = PUBLICATION_LIMIT_WORKING_DAYS
            ),
        )),
        Ok(_) => {}
        Err(reason) => out.push(Finding::warning(
            "SG-12",
            "/decision_date",
            format!(
                "无法判断是否逾期公示：{decided} 至 {} 的工作日历不可用（{reason}）",
                ctx.received_at_date
            ),
        )),
    }
}

fn sg13_authority_prefix(r: &Record<'_>, out: &mut Vec<Finding>) {
    let Some(code) = r.text("authority_uscc") else {
        return;
    };
    let code = code.trim();
    // The first two characters, borrowed.
    let prefix = code.char_indices().nth(2).map_or(code, |(end, _)| &code[..end]);
    if !AUTHORITY_USCC_PREFIXES.contains(&prefix) {
        out.push(Finding::warning(
            "SG-13",
            "/authority_uscc",
            format!("机关统一社会信用代码前两位为 {prefix}，通常应为机关或事业单位等（11、12、13、19、51、52、53、59），请核实"),
        ));
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::record::Severity;
    use jiff::ToSpan;
    use proptest::prelude::*;
    use serde_json::json;

    fn d(s: &str) -> Date {
        s.parse().unwrap()
    }

    fn obj(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => panic!("not an object"),
        }
    }

    /// Fixtures §7.1, mapped to canonical keys.
    fn penalty_company() -> Map<String, Value> {
        obj(json!({
            "subject_name": "湖北示例建设工程有限公司",
            "subject_category": "法人及非法人组织",
            "subject_uscc": "91420100MA4P7Q8R8N",
            "legal_rep_name": "张三",
            "legal_rep_id_type": "身份证",
            "legal_rep_id_no": "420111198501011234",
            "decision_doc_no": "鄂公管罚〔2026〕12号",
            "penalty_categories": ["罚款"],
            "penalty_content": "罚款人民币12345.67元",
            "fine_amount_10k_cny": 1.234567,
            "decision_date": "2026-09-28",
            "penalty_valid_until": "2026-10-28",
            "authority_name": "湖北省公共资源交易监督管理局",
            "authority_uscc": "11420000MB0P1Q2R33",
            "source_org_name": "湖北省公共资源交易监督管理局",
            "source_org_uscc": "11420000MB0P1Q2R33",
            "remarks": "",
        }))
    }

    /// Fixtures §7.2.
    fn penalty_person() -> Map<String, Value> {
        obj(json!({
            "subject_name": "王五",
            "subject_category": "自然人",
            "subject_uscc": "",
            "subject_business_reg_no": null,
            "legal_rep_name": "",
            "subject_id_type": "身份证",
            "subject_id_no": "420105199209154569",
            "penalty_categories": ["警告"],
            "penalty_content": "警告",
            "decision_date": "2026-09-28",
            "authority_uscc": "11420000MB0P1Q2R33",
            "source_org_uscc": "11420000MB0P1Q2R33",
        }))
    }

    /// Fixtures §7.3.
    fn license_individual_business() -> Map<String, Value> {
        obj(json!({
            "subject_name": "武汉市洪山区示例建材经营部",
            "subject_category": "个体工商户",
            "subject_uscc": "00000000000000000X",
            "subject_business_reg_no": "420100000123453",
            "legal_rep_name": "李四",
            "decision_doc_no": "武政务许字〔2026〕第00451号",
            "license_category": "普通",
            "decision_date": "2026-02-12",
            "valid_from": "2026-02-12",
            "valid_to": "2099-12-31",
            "authority_uscc": "11420100MB0K7P2Q0T",
            "status": "1",
            "source_org_uscc": "11420100MB0K7P2Q0T",
        }))
    }

    /// 2026 calendar of fixtures §6.1; other years are "unavailable", like the real module.
    struct Cal2026;

    impl WorkingDays for Cal2026 {
        fn working_days_between(&self, start: Date, end: Date) -> Result<i64, String> {
            const OFF: [(i8, i8, i8); 7] = [
                (1, 1, 3),
                (2, 15, 23),
                (4, 4, 6),
                (5, 1, 5),
                (6, 19, 21),
                (9, 25, 27),
                (10, 1, 7),
            ];
            const ON: [(i8, i8); 6] = [(1, 4), (2, 14), (2, 28), (5, 9), (9, 20), (10, 10)];
            let mut n = 0;
            let mut day = start;
            while day < end {
                day = day.tomorrow().map_err(|e| e.to_string())?;
                if day.year() != 2026 {
                    return Err(format!("{} 年节假日安排未加载", day.year()));
                }
                let (m, dd) = (day.month(), day.day());
                let off = OFF.iter().any(|&(om, a, b)| om == m && (a..=b).contains(&dd));
                let on = ON.contains(&(m, dd));
                let weekend = matches!(
                    day.weekday(),
                    jiff::civil::Weekday::Saturday | jiff::civil::Weekday::Sunday
                );
                if on || (!weekend && !off) {
                    n += 1;
                }
            }
            Ok(n)
        }
    }

    fn ctx(received: &str) -> RuleContext<'static> {
        RuleContext::new(d(received))
    }

    fn rules_of(findings: &[Finding]) -> Vec<(&'static str, &str, Severity)> {
        findings.iter().map(|f| (f.rule, f.path.as_str(), f.severity)).collect()
    }

    fn run(item: &str, rec: &Map<String, Value>, received: &str) -> Vec<Finding> {
        check_record(item, rec, &ctx(received))
    }

    fn has(findings: &[Finding], rule: &str, path: &str, sev: Severity) -> bool {
        findings.iter().any(|f| f.rule == rule && f.path == path && f.severity == sev)
    }

    #[test]
    fn fixture_records_are_clean() {
        let cal = Cal2026;
        let c = RuleContext::new(d("2026-10-13")).with_working_days(&cal);
        assert_eq!(check_record("admin_penalty", &penalty_company(), &c), vec![]);
        assert_eq!(check_record("admin_penalty", &penalty_person(), &c), vec![]);
        let c = RuleContext::new(d("2026-02-24")).with_working_days(&cal);
        assert_eq!(check_record("admin_license", &license_individual_business(), &c), vec![]);
    }

    // SG-01 --------------------------------------------------------------------------------------

    #[test]
    fn sg01_person_needs_id_and_no_org_block() {
        let mut rec = penalty_person();
        rec.remove("subject_id_no");
        rec.insert("subject_uscc".into(), json!("91420100MA4P7Q8R8N"));
        rec.insert("legal_rep_name".into(), json!("张三"));
        let f = run("admin_penalty", &rec, "2026-10-01");
        assert_eq!(
            rules_of(&f).into_iter().filter(|r| r.0 == "SG-01").collect::<Vec<_>>(),
            vec![
                ("SG-01", "/subject_id_no", Severity::Error),
                ("SG-01", "/subject_uscc", Severity::Error),
                ("SG-01", "/legal_rep_name", Severity::Error),
            ]
        );
    }

    #[test]
    fn sg01_not_applied_to_other_items_or_organisations() {
        let mut rec = penalty_person();
        rec.remove("subject_id_no");
        assert!(run("blacklist", &rec, "2026-10-01").is_empty());
        assert!(
            !run("admin_penalty", &penalty_company(), "2026-10-01")
                .iter()
                .any(|f| f.rule == "SG-01")
        );
    }

    // SG-02 --------------------------------------------------------------------------------------

    #[test]
    fn sg02_organisation_needs_uscc_and_legal_rep() {
        let mut rec = penalty_company();
        rec.insert("subject_uscc".into(), json!(""));
        rec.insert("legal_rep_name".into(), Value::Null);
        let f = run("admin_penalty", &rec, "2026-10-01");
        assert!(has(&f, "SG-02", "/subject_uscc", Severity::Error));
        assert!(has(&f, "SG-02", "/legal_rep_name", Severity::Error));
        assert!(f.iter().all(|x| x.message.contains("法人及非法人组织")));
    }

    #[test]
    fn sg02_passes_for_complete_individual_business() {
        let f = run("admin_license", &license_individual_business(), "2026-03-01");
        assert!(!f.iter().any(|x| x.rule == "SG-02"));
    }

    // SG-03 --------------------------------------------------------------------------------------

    #[test]
    fn sg03_placeholder_needs_business_reg_no() {
        let mut rec = license_individual_business();
        rec.remove("subject_business_reg_no");
        let f = run("admin_license", &rec, "2026-03-01");
        assert_eq!(rules_of(&f), vec![("SG-03", "/subject_business_reg_no", Severity::Error)]);
    }

    #[test]
    fn sg03_placeholder_needs_individual_business_category() {
        let mut rec = license_individual_business();
        rec.insert("subject_category".into(), json!("法人及非法人组织"));
        let f = run("admin_license", &rec, "2026-03-01");
        assert_eq!(rules_of(&f), vec![("SG-03", "/subject_category", Severity::Error)]);
    }

    #[test]
    fn sg03_bad_business_reg_no_with_placeholder_is_warning() {
        let mut rec = license_individual_business();
        rec.insert("subject_business_reg_no".into(), json!("420100000123454"));
        let f = run("admin_license", &rec, "2026-03-01");
        assert_eq!(rules_of(&f), vec![("SG-03", "/subject_business_reg_no", Severity::Warning)]);
        assert!(f[0].message.contains("应为 3"));
    }

    // SG-04 / SG-05 -------------------------------------------------------------------------------

    #[test]
    fn sg04_every_uscc_field_is_checked() {
        let mut rec = penalty_company();
        rec.insert("subject_uscc".into(), json!("91420100MA4K3R7QXX"));
        rec.insert("source_org_uscc".into(), json!("91420100MA4K3R7IXY"));
        rec.insert("deciding_authority_uscc".into(), json!("00000000000000000X"));
        let f = run("admin_penalty", &rec, "2026-10-01");
        assert!(has(&f, "SG-04", "/subject_uscc", Severity::Error));
        assert!(has(&f, "SG-04", "/source_org_uscc", Severity::Error));
        assert!(has(&f, "SG-04", "/deciding_authority_uscc", Severity::Error));
        let msg = &f.iter().find(|x| x.path == "/subject_uscc").unwrap().message;
        assert_eq!(msg, "统一社会信用代码无效：校验码错误，应为 Y");
    }

    #[test]
    fn sg04_applies_to_every_item_and_unknown_dept_warns() {
        let body = "B1420100MA4K3R7QX";
        let code = format!("{body}{}", ids::uscc_check_char(body).unwrap());
        let rec =
            obj(json!({ "platform_uscc": code, "trading_center_uscc": "12420100MB1R5T8W6C" }));
        let f = run("bid_evaluation", &rec, "2026-10-01");
        assert_eq!(rules_of(&f), vec![("SG-04", "/platform_uscc", Severity::Warning)]);
    }

    #[test]
    fn sg05_embedded_org_code_is_warning() {
        let rec = obj(json!({ "subject_uscc": "91420100MA4K3R7Q05" }));
        let f = run("blacklist", &rec, "2026-10-01");
        assert_eq!(rules_of(&f), vec![("SG-05", "/subject_uscc", Severity::Warning)]);
        assert!(f[0].message.contains("应为 X"));
        let ok = obj(json!({ "subject_uscc": "91420100MA4K3R7QXY" }));
        assert!(run("blacklist", &ok, "2026-10-01").is_empty());
    }

    #[test]
    fn sg04_subject_code_follows_category() {
        let org = obj(
            json!({ "subject_category": "法人及非法人组织", "subject_code": "91420100MA4K3R7QXX" }),
        );
        assert_eq!(
            rules_of(&run("blacklist", &org, "2026-10-01")),
            vec![("SG-04", "/subject_code", Severity::Error)]
        );
        let person =
            obj(json!({ "subject_category": "自然人", "subject_code": "420102199003071230" }));
        let f = run("blacklist", &person, "2026-10-01");
        assert_eq!(rules_of(&f), vec![("SG-06", "/subject_code", Severity::Error)]);
        let passport = obj(json!({ "subject_category": "自然人", "subject_code": "E12345678" }));
        assert!(run("blacklist", &passport, "2026-10-01").is_empty());
        let good =
            obj(json!({ "subject_category": "个体工商户", "subject_code": "92420102MA4L6U1X4N" }));
        assert!(run("blacklist", &good, "2026-10-01").is_empty());
    }

    // SG-06 / SG-07 -------------------------------------------------------------------------------

    #[test]
    fn sg06_resident_id_checksum_with_masked_message() {
        let mut rec = penalty_person();
        rec.insert("subject_id_no".into(), json!("420102199003071230"));
        let f = run("admin_penalty", &rec, "2026-10-01");
        assert_eq!(rules_of(&f), vec![("SG-06", "/subject_id_no", Severity::Error)]);
        assert_eq!(f[0].message, "身份证号码 4201************30 无效：校验码错误，应为 2");
        assert!(!f[0].message.contains("420102199003071230"));
    }

    #[test]
    fn sg06_only_for_resident_id_type() {
        let mut rec = penalty_person();
        rec.insert("subject_id_type".into(), json!("护照号"));
        rec.insert("subject_id_no".into(), json!("E12345678"));
        assert!(run("admin_penalty", &rec, "2026-10-01").is_empty());
    }

    #[test]
    fn sg06_lowercase_x_and_legacy_are_warnings() {
        let mut rec = penalty_person();
        rec.insert("subject_id_no".into(), json!("42010219991231000x"));
        let f = run("admin_penalty", &rec, "2026-10-01");
        assert_eq!(rules_of(&f), vec![("SG-06", "/subject_id_no", Severity::Warning)]);
        rec.insert("subject_id_no".into(), json!("420102900307123"));
        let f = run("admin_penalty", &rec, "2026-10-01");
        assert_eq!(rules_of(&f), vec![("SG-06", "/subject_id_no", Severity::Warning)]);
        rec.insert("subject_id_no".into(), json!("420102900230123"));
        let f = run("admin_penalty", &rec, "2026-10-01");
        assert_eq!(rules_of(&f), vec![("SG-06", "/subject_id_no", Severity::Error)]);
    }

    #[test]
    fn sg06_applies_to_legal_rep_and_every_item() {
        let mut rec = penalty_company();
        rec.insert("legal_rep_id_no".into(), json!("420102199002301234"));
        let f = run("admin_penalty", &rec, "2026-10-01");
        assert_eq!(rules_of(&f), vec![("SG-06", "/legal_rep_id_no", Severity::Error)]);
        assert!(f[0].message.contains("出生日期无效"));
        let other =
            obj(json!({ "subject_id_type": "身份证", "subject_id_no": "4201021990030712" }));
        assert_eq!(
            rules_of(&run("credit_commitment", &other, "2026-10-01")),
            vec![("SG-06", "/subject_id_no", Severity::Error)]
        );
    }

    #[test]
    fn sg07_legal_rep_id_type_needs_number() {
        let mut rec = penalty_company();
        rec.remove("legal_rep_id_no");
        let f = run("admin_penalty", &rec, "2026-10-01");
        assert_eq!(rules_of(&f), vec![("SG-07", "/legal_rep_id_no", Severity::Error)]);
        rec.remove("legal_rep_id_type");
        assert!(run("admin_penalty", &rec, "2026-10-01").is_empty());
    }

    // SG-08 ---------------------------------------------------------------------------------------

    #[test]
    fn sg08_validity_order() {
        let mut rec = license_individual_business();
        rec.insert("valid_from".into(), json!("2026-05-01"));
        rec.insert("valid_to".into(), json!("2026-04-30"));
        let f = run("admin_license", &rec, "2026-06-01");
        assert_eq!(rules_of(&f), vec![("SG-08", "/valid_to", Severity::Error)]);
        rec.insert("valid_to".into(), json!("2026-05-01"));
        rec.insert("decision_date".into(), json!("2026-05-01"));
        assert!(run("admin_license", &rec, "2026-06-01").is_empty());
    }

    #[test]
    fn sg08_decision_after_valid_from_is_only_a_warning() {
        let mut rec = license_individual_business();
        rec.insert("decision_date".into(), json!("2026-02-13"));
        let f = run("admin_license", &rec, "2026-03-01");
        assert_eq!(rules_of(&f), vec![("SG-08", "/valid_from", Severity::Warning)]);
    }

    // SG-09 ---------------------------------------------------------------------------------------

    #[test]
    fn sg09_future_dates_on_any_item() {
        let rec = penalty_company();
        let f = run("admin_penalty", &rec, "2026-09-27");
        assert_eq!(rules_of(&f), vec![("SG-09", "/decision_date", Severity::Error)]);
        assert!(run("admin_penalty", &rec, "2026-09-28").is_empty());
        let list = obj(json!({ "listed_on": "2026-11-23", "repair_date": "2026-11-22" }));
        assert_eq!(
            rules_of(&run("blacklist", &list, "2026-11-22")),
            vec![("SG-09", "/listed_on", Severity::Error)]
        );
    }

    // SG-10 ---------------------------------------------------------------------------------------

    #[test]
    fn sg10_fine_needs_positive_amount() {
        let mut rec = penalty_company();
        rec.insert("fine_amount_10k_cny".into(), json!(0));
        assert_eq!(
            rules_of(&run("admin_penalty", &rec, "2026-10-01")),
            vec![("SG-10", "/fine_amount_10k_cny", Severity::Error)]
        );
        rec.remove("fine_amount_10k_cny");
        assert_eq!(
            rules_of(&run("admin_penalty", &rec, "2026-10-01")),
            vec![("SG-10", "/fine_amount_10k_cny", Severity::Error)]
        );
        rec.insert("fine_amount_10k_cny".into(), json!("0.2"));
        assert!(run("admin_penalty", &rec, "2026-10-01").is_empty());
    }

    #[test]
    fn sg10_confiscation_and_licences_both_generations() {
        for cats in [
            json!(["没收违法所得", "暂扣许可证件"]),
            json!(["没收违法所得、没收非法财物", "暂扣或者吊销许可证、暂扣或者吊销执照"]),
            json!("没收违法所得、没收非法财物；吊销许可证件"),
        ] {
            let mut rec = penalty_company();
            rec.insert("penalty_categories".into(), cats.clone());
            let f = run("admin_penalty", &rec, "2026-10-01");
            let paths: Vec<_> = rules_of(&f);
            assert!(
                paths.contains(&("SG-10", "/confiscation_amount_10k_cny", Severity::Error)),
                "{cats}"
            );
            assert!(
                paths.contains(&("SG-10", "/suspended_revoked_licenses", Severity::Error)),
                "{cats}"
            );
            rec.insert("confiscation_amount_10k_cny".into(), json!(0.5));
            rec.insert("suspended_revoked_licenses".into(), json!("建筑业企业资质证书 D123"));
            assert!(run("admin_penalty", &rec, "2026-10-01").is_empty(), "{cats}");
        }
    }

    // SG-11 ---------------------------------------------------------------------------------------

    #[test]
    fn sg11_yuan_instead_of_wan() {
        let mut rec = penalty_company();
        rec.insert("penalty_content".into(), json!("罚款2000元"));
        rec.insert("fine_amount_10k_cny".into(), json!(2000));
        let f = run("admin_penalty", &rec, "2026-10-01");
        assert_eq!(rules_of(&f), vec![("SG-11", "/fine_amount_10k_cny", Severity::Warning)]);
        rec.insert("penalty_content".into(), json!("罚款人民币12,345.67 元"));
        rec.insert("fine_amount_10k_cny".into(), json!(12345.67));
        assert_eq!(run("admin_penalty", &rec, "2026-10-01").len(), 1);
    }

    #[test]
    fn sg11_no_warning_for_correct_units() {
        let mut rec = penalty_company();
        rec.insert("penalty_content".into(), json!("罚款2000元"));
        rec.insert("fine_amount_10k_cny".into(), json!(0.2));
        assert!(run("admin_penalty", &rec, "2026-10-01").is_empty());
        // 200万元 written in the text and 200 (万元) in the field is correct.
        rec.insert("penalty_content".into(), json!("罚款200万元"));
        rec.insert("fine_amount_10k_cny".into(), json!(200));
        assert!(run("admin_penalty", &rec, "2026-10-01").is_empty());
        // Below the threshold the heuristic stays quiet.
        rec.insert("penalty_content".into(), json!("罚款50元"));
        rec.insert("fine_amount_10k_cny".into(), json!(50));
        assert!(run("admin_penalty", &rec, "2026-10-01").is_empty());
    }

    #[test]
    fn yuan_figures_extraction() {
        assert_eq!(yuan_figures("罚款2000元"), vec![2000.0]);
        assert_eq!(yuan_figures("罚款1.5万元，没收300 元。"), vec![15000.0, 300.0]);
        assert_eq!(yuan_figures("第3条"), Vec::<f64>::new());
        assert_eq!(yuan_figures("12,345.67元"), vec![12345.67]);
    }

    // SG-12 ---------------------------------------------------------------------------------------

    #[test]
    fn sg12_publication_lag() {
        let cal = Cal2026;
        let rec = penalty_company(); // decided 2026-09-28, due 2026-10-13
        let on_time = RuleContext::new(d("2026-10-13")).with_working_days(&cal);
        assert!(check_record("admin_penalty", &rec, &on_time).is_empty());
        let late = RuleContext::new(d("2026-10-14")).with_working_days(&cal);
        let f = check_record("admin_penalty", &rec, &late);
        assert_eq!(rules_of(&f), vec![("SG-12", "/decision_date", Severity::Warning)]);
        assert!(f[0].message.contains("第 8 个工作日"), "{}", f[0].message);
    }

    #[test]
    fn sg12_adjusted_saturday_counts() {
        let cal = Cal2026;
        let mut rec = penalty_company();
        rec.insert("decision_date".into(), json!("2026-02-12"));
        let c = RuleContext::new(d("2026-02-28")).with_working_days(&cal);
        assert!(check_record("admin_penalty", &rec, &c).is_empty());
        let c = RuleContext::new(d("2026-03-02")).with_working_days(&cal);
        assert_eq!(check_record("admin_penalty", &rec, &c).len(), 1);
    }

    #[test]
    fn sg12_unavailable_calendar_warns_and_does_not_guess() {
        let cal = Cal2026;
        let mut rec = penalty_company();
        rec.insert("decision_date".into(), json!("2026-12-28"));
        let c = RuleContext::new(d("2027-01-05")).with_working_days(&cal);
        let f = check_record("admin_penalty", &rec, &c);
        assert_eq!(rules_of(&f), vec![("SG-12", "/decision_date", Severity::Warning)]);
        assert!(f[0].message.contains("2027 年节假日安排未加载"), "{}", f[0].message);
    }

    #[test]
    fn sg12_skipped_without_calendar_or_for_other_items() {
        let rec = penalty_company();
        assert!(run("admin_penalty", &rec, "2026-12-01").is_empty());
        let cal = Cal2026;
        let c = RuleContext::new(d("2026-12-01")).with_working_days(&cal);
        assert!(check_record("blacklist", &rec, &c).is_empty());
    }

    // SG-13 ---------------------------------------------------------------------------------------

    #[test]
    fn sg13_authority_prefix() {
        let mut rec = penalty_company();
        rec.insert("authority_uscc".into(), json!("91420100MA4K3R7QXY"));
        let f = run("admin_penalty", &rec, "2026-10-01");
        assert_eq!(rules_of(&f), vec![("SG-13", "/authority_uscc", Severity::Warning)]);
        for ok in ["11420000MB0P1Q2R33", "12420100MB1H2J3K3P", "52420102MJY5T1C2XL"] {
            rec.insert("authority_uscc".into(), json!(ok));
            assert!(run("admin_penalty", &rec, "2026-10-01").is_empty(), "{ok}");
        }
    }

    // SG-14 ---------------------------------------------------------------------------------------

    #[test]
    fn sg14_normalize_wraps_normalize_code() {
        assert_eq!(sg14_normalize(" ９1420100MA4K3R7QXY"), ("91420100MA4K3R7QXY".into(), true));
        assert_eq!(sg14_normalize("91420100MA4K3R7QXY"), ("91420100MA4K3R7QXY".into(), false));
        assert_eq!(sg14_normalize("91420100ma4k3r7qxy"), ("91420100ma4k3r7qxy".into(), false));
    }

    // Misc ----------------------------------------------------------------------------------------

    #[test]
    fn json_pointer_escaping() {
        assert_eq!(ptr("a/b~c"), "/a~1b~0c");
        assert_eq!(ptr("subject_uscc"), "/subject_uscc");
    }

    #[test]
    fn context_debug_hides_calendar() {
        let cal = Cal2026;
        let c = RuleContext::new(d("2026-10-01")).with_working_days(&cal);
        assert!(format!("{c:?}").contains("<calendar>"));
    }

    proptest! {
        /// Fixed record and context give the same findings, and no message leaks an ID.
        #[test]
        fn deterministic_and_masked(
            offset in -400i32..400,
            id_pos in 0usize..18,
            digit in 0u8..10,
        ) {
            let mut rec = penalty_person();
            let mut id: Vec<u8> = b"420105199209154569".to_vec();
            id[id_pos] = b'0' + digit;
            let id = String::from_utf8(id).unwrap();
            rec.insert("subject_id_no".into(), json!(id));
            let received = d("2026-09-28").checked_add(offset.days()).unwrap();
            let c = RuleContext::new(received);
            let a = check_record("admin_penalty", &rec, &c);
            prop_assert_eq!(&a, &check_record("admin_penalty", &rec, &c));
            prop_assert!(a.iter().all(|f| !f.message.contains(&id)));
            prop_assert_eq!(a.iter().any(|f| f.rule == "SG-09"), offset < 0);
        }
    }
}
