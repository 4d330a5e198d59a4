//! Identifier normalisation and checks: 统一社会信用代码 (GB 32100), 组织机构代码 (GB 11714),
//! 公民身份号码 (GB 11643), 工商注册号 (ISO 7064 MOD 11,10), 统一交易标识码 (ISO 7064 MOD 37,2),
//! GB/T 2260 area codes, other ID document shapes, 文号 and masking for messages.
//!
//! Everything here is pure: no IO, no clock, no mutable global state. The only statics are
//! compiled regular expressions, which are immutable once built.
//!
//! Checks take the value *as stored*: they never normalise on their own, so a caller can tell
//! "invalid" from "valid after normalisation" (the latter is a warning, see SG-14). Run
//! [`normalize_code`] / [`normalize_code_upper`] first when the contract allows it.
//!
//! Positions in errors are 1-based character positions, as the standards number them.

use std::borrow::Cow;
use std::fmt;
use std::sync::LazyLock;

use jiff::civil::Date;
use regex::Regex;
use unicode_normalization::UnicodeNormalization;

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

/// Why an identifier failed its check. `Display` is a lowercase English message for logs;
/// [`IdError::message_zh`] is the message shown to data providers.
///
/// No variant carries the identifier itself, so an error can be logged without masking.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("empty value")]
    Empty,
    /// `expected` is text because some identifiers allow several lengths ("9 or 11").
    #[error("wrong length: expected {expected} characters, got {got}")]
    Length { expected: &'static str, got: usize },
    #[error("character '{ch}' at position {pos} is not allowed")]
    BadChar { pos: usize, ch: char },
    /// A lowercase letter whose uppercase form would be allowed: normalisable, so it is kept
    /// apart from [`IdError::BadChar`].
    #[error("lowercase letter '{ch}' at position {pos}")]
    Lowercase { pos: usize, ch: char },
    #[error("area code (positions 3-8) must be digits")]
    AreaNotDigits,
    #[error("checksum mismatch: check character should be {expected}")]
    Checksum { expected: char },
    /// Resident ID ending in `x`: the caller normalises to `X` and warns.
    #[error("check character must be uppercase X")]
    LowercaseX,
    #[error("birth date is not a real calendar date between 1800 and 2100")]
    BirthDate,
    /// A 15-digit first-generation ID; see [`upgrade_legacy_resident_id`].
    #[error("legacy 15-digit resident id, upgrade it to 18 digits")]
    Legacy15,
    #[error("unknown province prefix {prefix:02}")]
    Province { prefix: u8 },
    /// Shape mismatch; `expected` is a regex-like pattern (language-neutral on purpose).
    #[error("does not match the format {expected}")]
    Format { expected: &'static str },
    #[error("embedded uscc is invalid: {0}")]
    EmbeddedUscc(Box<IdError>),
    /// Kept apart from [`IdError::Checksum`] because the 统一交易标识码 check input is not yet
    /// confirmed (standards §4.3): callers report it as a warning, not an error.
    #[error("unified deal code checksum mismatch: check character should be {expected}")]
    DealCodeChecksum { expected: char },
}

impl IdError {
    /// Chinese message for receipts, e.g. `校验码错误，应为 Y`.
    pub fn message_zh(&self) -> String {
        match self {
            IdError::Empty => "值为空".to_owned(),
            IdError::Length { expected, got } => {
                format!("长度错误：应为 {expected} 位，实际 {got} 位")
            }
            IdError::BadChar { pos, ch } => format!("第 {pos} 位字符“{ch}”不合法"),
            IdError::Lowercase { pos, ch } => {
                format!("第 {pos} 位为小写字母“{ch}”，应为大写")
            }
            IdError::AreaNotDigits => "第 3–8 位登记管理机关行政区划码应为数字".to_owned(),
            IdError::Checksum { expected } => format!("校验码错误，应为 {expected}"),
            IdError::LowercaseX => "末位校验码应为大写 X".to_owned(),
            IdError::BirthDate => "出生日期无效".to_owned(),
            IdError::Legacy15 => "为 15 位旧版身份证号码，应升级为 18 位".to_owned(),
            IdError::Province { prefix } => format!("省级行政区划代码 {prefix:02} 不存在"),
            IdError::Format { expected } => format!("格式错误，应符合 {expected}"),
            IdError::EmbeddedUscc(inner) => {
                format!("其中的统一社会信用代码有误：{}", inner.message_zh())
            }
            IdError::DealCodeChecksum { expected } => {
                format!("统一交易标识码校验码不符，应为 {expected}")
            }
        }
    }
}

fn length_err(expected: &'static str, got: usize) -> IdError {
    if got == 0 { IdError::Empty } else { IdError::Length { expected, got } }
}

// ---------------------------------------------------------------------------------------------
// Normalisation (SG-14)
// ---------------------------------------------------------------------------------------------

/// Note: NFKC turned full-width forms (`９`, `Ａ`, U+3000) into ASCII.
pub const NOTE_FULL_WIDTH: &str = "full-width characters";
/// Note: NFKC changed something other than full-width forms (ligatures, circled digits…).
pub const NOTE_COMPATIBILITY: &str = "compatibility characters";
/// Note: zero-width / format characters were removed.
pub const NOTE_ZERO_WIDTH: &str = "zero-width characters";
/// Note: leading or trailing whitespace was removed.
pub const NOTE_OUTER_WHITESPACE: &str = "outer whitespace";
/// Note: ASCII lowercase letters were uppercased ([`normalize_code_upper`] only).
pub const NOTE_LOWERCASE: &str = "lowercase letters";

/// Result of normalising a code field; `value` is what checks run on, the caller keeps the raw
/// input for audit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Normalized {
    pub value: String,
    pub changed: bool,
    /// One of the `NOTE_*` constants per kind of change, in the order applied.
    pub notes: Vec<&'static str>,
}

impl Normalized {
    /// Chinese summary of what changed, e.g. `已规范化：全角字符、首尾空白`; empty if nothing did.
    pub fn message_zh(&self) -> String {
        if !self.changed {
            return String::new();
        }
        let parts: Vec<&str> = self
            .notes
            .iter()
            .map(|n| match *n {
                NOTE_FULL_WIDTH => "全角字符",
                NOTE_COMPATIBILITY => "兼容字符",
                NOTE_ZERO_WIDTH => "零宽字符",
                NOTE_OUTER_WHITESPACE => "首尾空白",
                NOTE_LOWERCASE => "小写字母",
                _ => "其他",
            })
            .collect();
        format!("已规范化：{}", parts.join("、"))
    }
}

/// Characters that are invisible in spreadsheets and copy-pastes but break exact matching.
fn is_zero_width(c: char) -> bool {
    matches!(c, '\u{200B}'..='\u{200D}' | '\u{FEFF}' | '\u{2060}')
}

fn is_full_width_form(c: char) -> bool {
    matches!(c, '\u{FF01}'..='\u{FF5E}' | '\u{3000}')
}

/// Zero-width removal, then NFKC, then trim. Zero-width characters go first because removing
/// them after NFKC could bring a base and a combining mark together and leave a non-NFKC
/// string, which would break idempotence.
fn normalize_inner(raw: &str, notes: &mut Vec<&'static str>) -> String {
    // Fast path (the common case on the hot path): text that is already NFKC, has no
    // zero-width characters and no outer whitespace comes back unchanged.
    if is_already_normal(raw) {
        return raw.to_owned();
    }
    let stripped: String = raw.chars().filter(|&c| !is_zero_width(c)).collect();
    if stripped.len() != raw.len() {
        notes.push(NOTE_ZERO_WIDTH);
    }
    let nfkc: String = stripped.nfkc().collect();
    if nfkc != stripped {
        if stripped.chars().any(is_full_width_form) {
            notes.push(NOTE_FULL_WIDTH);
        } else {
            notes.push(NOTE_COMPATIBILITY);
        }
    }
    let trimmed = nfkc.trim();
    if trimmed.len() != nfkc.len() {
        notes.push(NOTE_OUTER_WHITESPACE);
    }
    trimmed.to_owned()
}

/// True when [`normalize_inner`] would return `raw` unchanged.
fn is_already_normal(raw: &str) -> bool {
    let Some(first) = raw.chars().next() else { return true };
    let last = raw.chars().next_back().unwrap_or(first);
    if first.is_whitespace() || last.is_whitespace() {
        return false;
    }
    if raw.is_ascii() {
        // ASCII is NFKC-invariant and holds no zero-width characters.
        return true;
    }
    if raw.chars().all(is_nfkc_stable_common) {
        // What Chinese text is made of: `is_nfkc_quick` would look each one up in its tables
        // to say the same (test `common_chars_are_nfkc_stable`).
        return true;
    }
    !raw.chars().any(is_zero_width)
        && unicode_normalization::is_nfkc_quick(raw.chars())
            == unicode_normalization::IsNormalized::Yes
}

/// ASCII, CJK unified ideographs (basic block) and the CJK punctuation and brackets of 文号
/// and names: each is its own NFKC form in any context (NFKC quick check `Yes`, canonical
/// combining class 0) and none is zero-width.
fn is_nfkc_stable_common(c: char) -> bool {
    matches!(
        c,
        '\u{0}'..='\u{7F}'
            | '\u{4E00}'..='\u{9FFF}'
            | '\u{3001}'..='\u{3002}'
            | '\u{3008}'..='\u{3011}'
            | '\u{3014}'..='\u{3015}'
            | '\u{2014}'
            | '\u{2018}'..='\u{2019}'
            | '\u{201C}'..='\u{201D}'
            | '\u{00B7}'
    )
}

/// NFKC, zero-width removal and outer trim; case is kept because lowercase input is technically
/// invalid and the contract decides whether to accept it (see [`normalize_code_upper`]).
/// Inner whitespace is kept so that the format check still rejects it.
pub fn normalize_code(raw: &str) -> Normalized {
    let mut notes = Vec::new();
    let value = normalize_inner(raw, &mut notes);
    Normalized { changed: value != raw, value, notes }
}

/// [`normalize_code`] without the notes, borrowing `raw` when nothing changes (the common
/// case): `(value, changed)`.
pub fn normalize_code_cow(raw: &str) -> (Cow<'_, str>, bool) {
    if is_already_normal(raw) {
        return (Cow::Borrowed(raw), false);
    }
    let n = normalize_code(raw);
    (Cow::Owned(n.value), n.changed)
}

/// [`normalize_code`] plus ASCII uppercasing. Only ASCII is uppercased: every code alphabet is
/// ASCII, and Unicode uppercasing can change lengths (`ß` → `SS`).
pub fn normalize_code_upper(raw: &str) -> Normalized {
    let mut notes = Vec::new();
    let mut value = normalize_inner(raw, &mut notes);
    if value.bytes().any(|b| b.is_ascii_lowercase()) {
        value.make_ascii_uppercase();
        notes.push(NOTE_LOWERCASE);
    }
    Normalized { changed: value != raw, value, notes }
}

// ---------------------------------------------------------------------------------------------
// 统一社会信用代码 (GB 32100-2015)
// ---------------------------------------------------------------------------------------------

/// The 31 symbols of GB 32100, in value order (no I, O, S, V, Z).
pub const USCC_ALPHABET: &str = "0123456789ABCDEFGHJKLMNPQRTUWXY";

/// Placeholder some provinces use for 个体工商户 without a USCC. It fails the checksum
/// (expected `0`) by design, so callers test [`is_uscc_placeholder`] before [`check_uscc`].
pub const USCC_PLACEHOLDER: &str = "00000000000000000X";

/// `3^(i-1) mod 31` for i = 1..=17.
const USCC_WEIGHTS: [u32; 17] = [1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28];

pub fn is_uscc_placeholder(s: &str) -> bool {
    s == USCC_PLACEHOLDER
}

/// Value of each byte in [`USCC_ALPHABET`], `NOT_USCC` for every other byte: a table lookup
/// instead of a linear search, since every record checks several codes.
const USCC_VALUES: [u8; 256] = {
    let mut table = [NOT_USCC; 256];
    let alphabet = USCC_ALPHABET.as_bytes();
    let mut i = 0;
    while i < alphabet.len() {
        table[alphabet[i] as usize] = i as u8;
        i += 1;
    }
    table
};
const NOT_USCC: u8 = u8::MAX;

fn uscc_byte_value(b: u8) -> Option<u32> {
    match USCC_VALUES[usize::from(b)] {
        NOT_USCC => None,
        v => Some(u32::from(v)),
    }
}

fn uscc_value(c: char) -> Option<u32> {
    u8::try_from(c).ok().and_then(uscc_byte_value)
}

/// Check character of 17 bytes already known to be symbols of the alphabet.
fn uscc_check_byte(first17: &[u8]) -> Option<u8> {
    let mut sum = 0u32;
    for (&b, w) in first17.iter().zip(USCC_WEIGHTS) {
        sum += uscc_byte_value(b)? * w;
    }
    USCC_ALPHABET.as_bytes().get(((31 - sum % 31) % 31) as usize).copied()
}

/// `check_uscc(s).is_ok()` without building the [`UsccInfo`] or an error: what the schema's
/// `uscc` format asks, several times per record.
pub fn is_valid_uscc(s: &str) -> bool {
    let b = s.as_bytes();
    // 18 characters from an ASCII alphabet are exactly 18 bytes.
    b.len() == 18
        && b.iter().enumerate().all(|(i, &c)| {
            if (2..8).contains(&i) { c.is_ascii_digit() } else { uscc_byte_value(c).is_some() }
        })
        && uscc_check_byte(&b[..17]) == Some(b[17])
}

fn uscc_symbol(v: u32) -> char {
    // `v < 31` by construction (mod 31), so the fallback is unreachable.
    USCC_ALPHABET.as_bytes().get(v as usize).map_or('?', |&b| b as char)
}

/// Check character for the first 17 characters of a USCC, `None` if `first17` is not 17
/// symbols of the 31-symbol alphabet.
pub fn uscc_check_char(first17: &str) -> Option<char> {
    if first17.chars().count() != 17 {
        return None;
    }
    let mut sum = 0u32;
    for (c, w) in first17.chars().zip(USCC_WEIGHTS) {
        sum += uscc_value(c)? * w;
    }
    Some(uscc_symbol((31 - sum % 31) % 31))
}

/// Something about a valid USCC worth reporting but not rejecting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UsccWarning {
    /// Registration department (char 1) not in the GB 32100 table; tables grow, so not an error.
    UnknownDepartment { dept: char },
    /// Department known, category (char 2) not listed for it.
    UnknownCategory { dept: char, category: char },
    /// The embedded 组织机构代码 (chars 9–17) fails GB 11714 (SG-05).
    OrgCodeChecksum { expected: char },
}

impl UsccWarning {
    pub fn message_zh(&self) -> String {
        match self {
            UsccWarning::UnknownDepartment { dept } => {
                format!("登记管理部门码“{dept}”不在 GB 32100 代码表中")
            }
            UsccWarning::UnknownCategory { dept, category } => {
                format!("登记管理部门“{dept}”下无机构类别码“{category}”")
            }
            UsccWarning::OrgCodeChecksum { expected } => {
                format!("第 9–17 位组织机构代码校验码不符（GB 11714），应为 {expected}")
            }
        }
    }
}

impl fmt::Display for UsccWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UsccWarning::UnknownDepartment { dept } => {
                write!(f, "unknown registration department '{dept}'")
            }
            UsccWarning::UnknownCategory { dept, category } => {
                write!(f, "unknown category '{category}' for registration department '{dept}'")
            }
            UsccWarning::OrgCodeChecksum { expected } => {
                write!(f, "embedded organisation code checksum mismatch, expected {expected}")
            }
        }
    }
}

/// Parts of a USCC that passed [`check_uscc`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsccInfo {
    /// 登记管理部门码 (char 1).
    pub dept: char,
    /// 机构类别码 (char 2).
    pub category: char,
    /// Department name from the GB 32100 table, `None` if unknown.
    pub dept_name: Option<&'static str>,
    /// Category name, `None` if unknown for this department.
    pub category_name: Option<&'static str>,
    /// 登记管理机关行政区划码 (chars 3–8).
    pub area: String,
    /// 组织机构代码 (chars 9–17, without hyphen).
    pub org_code: String,
    pub warnings: Vec<UsccWarning>,
}

/// GB 32100 department table with the later A and N additions (standards §2.1).
fn uscc_department(dept: char) -> Option<(&'static str, &'static [(char, &'static str)])> {
    Some(match dept {
        '1' => (
            "机构编制",
            &[
                ('1', "机关"),
                ('2', "事业单位"),
                ('3', "中央编办直接管理机构编制的群众团体"),
                ('9', "其他"),
            ],
        ),
        '2' => ("外交", &[('1', "外国常驻新闻机构"), ('9', "其他")]),
        '3' => (
            "司法行政",
            &[
                ('1', "律师执业机构"),
                ('2', "公证处"),
                ('3', "基层法律服务所"),
                ('4', "司法鉴定机构"),
                ('5', "仲裁委员会"),
                ('9', "其他"),
            ],
        ),
        '4' => ("文化", &[('1', "外国在华文化中心"), ('9', "其他")]),
        '5' => {
            ("民政", &[('1', "社会团体"), ('2', "民办非企业单位"), ('3', "基金会"), ('9', "其他")])
        }
        '6' => (
            "旅游",
            &[
                ('1', "外国旅游部门常驻代表机构"),
                ('2', "港澳台地区旅游部门常驻内地（大陆）代表机构"),
                ('9', "其他"),
            ],
        ),
        '7' => ("宗教", &[('1', "宗教活动场所"), ('2', "宗教院校"), ('9', "其他")]),
        '8' => ("工会", &[('1', "基层工会"), ('9', "其他")]),
        '9' => ("工商", &[('1', "企业"), ('2', "个体工商户"), ('3', "农民专业合作社")]),
        'A' => ("中央军委改革和编制办公室", &[('1', "军队事业单位"), ('9', "其他")]),
        'N' => (
            "农业",
            &[
                ('1', "组级集体经济组织"),
                ('2', "村级集体经济组织"),
                ('3', "乡镇级集体经济组织"),
                ('9', "其他"),
            ],
        ),
        'Y' => ("其他", &[('1', "其他")]),
        _ => return None,
    })
}

/// Full GB 32100 check of an already normalised code. Letters are allowed in positions 1–2
/// (`N2…`, `Y1…` are real), digits only in 3–8. Unknown department/category and a bad embedded
/// organisation code are warnings in [`UsccInfo::warnings`]; the placeholder is rejected here
/// (checksum) and must be special-cased by the caller.
pub fn check_uscc(s: &str) -> Result<UsccInfo, IdError> {
    if !is_valid_uscc(s) {
        return Err(uscc_error(s));
    }
    // Valid, hence 18 ASCII symbols: byte slicing below is on char boundaries.
    let (dept, category) = (char::from(s.as_bytes()[0]), char::from(s.as_bytes()[1]));
    let (dept_name, category_name, warnings) = uscc_parts(s);
    Ok(UsccInfo {
        dept,
        category,
        dept_name,
        category_name,
        area: s[2..8].to_owned(),
        org_code: s[8..17].to_owned(),
        warnings,
    })
}

/// [`check_uscc`] when only the warnings matter (SG-04/SG-05): nothing else is built.
pub fn check_uscc_warnings(s: &str) -> Result<Vec<UsccWarning>, IdError> {
    if !is_valid_uscc(s) {
        return Err(uscc_error(s));
    }
    Ok(uscc_parts(s).2)
}

/// Department and category names and the warnings of a code that passed [`is_valid_uscc`].
fn uscc_parts(s: &str) -> (Option<&'static str>, Option<&'static str>, Vec<UsccWarning>) {
    let (dept, category) = (char::from(s.as_bytes()[0]), char::from(s.as_bytes()[1]));
    let mut warnings = Vec::new();
    let (dept_name, category_name) = match uscc_department(dept) {
        None => {
            warnings.push(UsccWarning::UnknownDepartment { dept });
            (None, None)
        }
        Some((name, cats)) => {
            let cat = cats.iter().find(|(c, _)| *c == category).map(|(_, n)| *n);
            if cat.is_none() {
                warnings.push(UsccWarning::UnknownCategory { dept, category });
            }
            (Some(name), cat)
        }
    };
    let org_code = &s[8..17];
    if let Some(expected) = org_code_check_char(&org_code[..8])
        && org_code.as_bytes()[8] as char != expected
    {
        warnings.push(UsccWarning::OrgCodeChecksum { expected });
    }
    (dept_name, category_name, warnings)
}

/// Why `s` fails [`check_uscc`] (called only when [`is_valid_uscc`] said it does): the first
/// problem in reading order, as the checks report it.
fn uscc_error(s: &str) -> IdError {
    let chars: Vec<char> = s.chars().collect();
    if chars.len() != 18 {
        return length_err("18", chars.len());
    }
    for (i, &ch) in chars.iter().enumerate() {
        let pos = i + 1;
        if (3..=8).contains(&pos) {
            if ch.is_ascii_digit() {
                continue;
            }
            // A letter here is the typical `O`-for-`0` typo: say what the position needs.
            return if ch.is_ascii_alphabetic() {
                IdError::AreaNotDigits
            } else {
                IdError::BadChar { pos, ch }
            };
        }
        if uscc_value(ch).is_none() {
            let upper_ok = ch.is_ascii_lowercase() && uscc_value(ch.to_ascii_uppercase()).is_some();
            return if upper_ok {
                IdError::Lowercase { pos, ch }
            } else {
                IdError::BadChar { pos, ch }
            };
        }
    }
    // All 18 are ASCII symbols now, so byte slicing is on char boundaries.
    match uscc_check_char(&s[..17]) {
        Some(expected) => IdError::Checksum { expected },
        None => {
            IdError::Format { expected: "^[0-9A-HJ-NPQRTUWXY]{2}[0-9]{6}[0-9A-HJ-NPQRTUWXY]{10}$" }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// 组织机构代码 (GB 11714-1997)
// ---------------------------------------------------------------------------------------------

const ORG_WEIGHTS: [u32; 8] = [3, 7, 9, 10, 5, 8, 4, 2];

/// GB 11714 check character for an 8-character body (`0-9` and the full `A-Z`, unlike USCC);
/// `None` if the body is not 8 such characters.
pub fn org_code_check_char(body8: &str) -> Option<char> {
    if body8.len() != 8 {
        return None;
    }
    let mut sum = 0u32;
    for (b, w) in body8.bytes().zip(ORG_WEIGHTS) {
        let v = match b {
            b'0'..=b'9' => u32::from(b - b'0'),
            b'A'..=b'Z' => u32::from(b - b'A') + 10,
            _ => return None,
        };
        sum += v * w;
    }
    Some(match 11 - sum % 11 {
        10 => 'X',
        11 => '0',
        d => char::from(b'0' + d as u8),
    })
}

/// Checks a 组织机构代码 written `D2143569-X` or `D2143569X`.
pub fn check_org_code(s: &str) -> Result<(), IdError> {
    let chars: Vec<char> = s.chars().collect();
    let compact: Vec<(usize, char)> = match chars.len() {
        9 => chars.iter().copied().enumerate().collect(),
        10 if chars[8] == '-' => {
            chars.iter().copied().enumerate().filter(|&(i, _)| i != 8).collect()
        }
        10 => {
            return Err(IdError::BadChar { pos: 9, ch: chars[8] });
        }
        n => return Err(length_err("9 or 10 with hyphen", n)),
    };
    for &(i, ch) in &compact {
        let last = compact.last().is_some_and(|&(j, _)| j == i);
        let ok = if last {
            ch.is_ascii_digit() || ch == 'X'
        } else {
            ch.is_ascii_digit() || ch.is_ascii_uppercase()
        };
        if !ok {
            let upper_ok = ch.is_ascii_lowercase() && (!last || ch == 'x');
            return Err(if upper_ok {
                IdError::Lowercase { pos: i + 1, ch }
            } else {
                IdError::BadChar { pos: i + 1, ch }
            });
        }
    }
    let body: String = compact[..8].iter().map(|&(_, c)| c).collect();
    let expected = org_code_check_char(&body).ok_or(IdError::Format { expected: "XXXXXXXX-X" })?;
    if compact[8].1 != expected {
        return Err(IdError::Checksum { expected });
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// 公民身份号码 (GB 11643-1999)
// ---------------------------------------------------------------------------------------------

/// `2^(18-i) mod 11` for i = 1..=17.
const RESIDENT_WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
const RESIDENT_CHECK: &[u8; 11] = b"10X98765432";

/// GB 11643 check character for 17 digits; `None` if not 17 ASCII digits.
pub fn resident_id_check_char(body17: &str) -> Option<char> {
    if body17.len() != 17 || !body17.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let sum: u32 = body17.bytes().zip(RESIDENT_WEIGHTS).map(|(b, w)| u32::from(b - b'0') * w).sum();
    Some(RESIDENT_CHECK[(sum % 11) as usize] as char)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sex {
    Male,
    Female,
}

/// Parts of a resident ID that passed [`check_resident_id`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResidentIdInfo {
    /// 6-digit address code; deliberately not checked against a region table because retired
    /// codes stay on old IDs for life.
    pub region: String,
    pub birth_date: Date,
    /// From the parity of the sequence number (odd = male).
    pub sex: Sex,
    /// 港澳台居民居住证 style number (address code 810000 / 820000 / 830000).
    pub residence_permit: bool,
}

/// Parses `YYYYMMDD` (ASCII digits already checked) into a real date in 1800..=2100. The range
/// is fixed instead of "not after today" because this module never reads the clock.
fn birth_date(yyyymmdd: &str) -> Option<Date> {
    let year: i16 = yyyymmdd.get(0..4)?.parse().ok()?;
    let month: i8 = yyyymmdd.get(4..6)?.parse().ok()?;
    let day: i8 = yyyymmdd.get(6..8)?.parse().ok()?;
    if !(1800..=2100).contains(&year) {
        return None;
    }
    Date::new(year, month, day).ok()
}

/// Full GB 11643 check of an 18-character number: digits, real birth date, checksum. The
/// address code is only required to be 6 digits. A trailing lowercase `x` is
/// [`IdError::LowercaseX`] so the caller can normalise and warn; a 15-digit number is
/// [`IdError::Legacy15`].
pub fn check_resident_id(s: &str) -> Result<ResidentIdInfo, IdError> {
    let b = s.as_bytes();
    // The usual shape, 17 digits and a digit or `X`, is settled on bytes; anything else goes
    // through the character checks, which say what is wrong.
    let plain = b.len() == 18
        && b[..17].iter().all(u8::is_ascii_digit)
        && (b[17].is_ascii_digit() || b[17] == b'X');
    if !plain {
        resident_id_shape(s)?;
    }
    // 18 ASCII characters from here on.
    let birth = birth_date(&s[6..14]).ok_or(IdError::BirthDate)?;
    let expected = resident_id_check_char(&s[..17]).ok_or(IdError::BirthDate)?;
    if char::from(b[17]) != expected {
        return Err(IdError::Checksum { expected });
    }
    let seq_last = s.as_bytes()[16] - b'0';
    Ok(ResidentIdInfo {
        region: s[..6].to_owned(),
        birth_date: birth,
        sex: if seq_last % 2 == 1 { Sex::Male } else { Sex::Female },
        residence_permit: matches!(&s[..6], "810000" | "820000" | "830000"),
    })
}

/// The shape checks of [`check_resident_id`], character by character: `Ok` only for 17 ASCII
/// digits followed by a digit or `X`.
fn resident_id_shape(s: &str) -> Result<(), IdError> {
    let chars: Vec<char> = s.chars().collect();
    if chars.len() == 15 && chars.iter().all(char::is_ascii_digit) {
        return Err(IdError::Legacy15);
    }
    if chars.len() != 18 {
        return Err(length_err("18", chars.len()));
    }
    for (i, &ch) in chars.iter().enumerate() {
        if i < 17 && !ch.is_ascii_digit() {
            return Err(IdError::BadChar { pos: i + 1, ch });
        }
    }
    match chars[17] {
        c if c.is_ascii_digit() || c == 'X' => Ok(()),
        'x' => Err(IdError::LowercaseX),
        ch => Err(IdError::BadChar { pos: 18, ch }),
    }
}

/// Converts a first-generation 15-digit ID (YYMMDD birth, no check) to 18 digits by inserting
/// `19` before the year and appending the check. `None` if not 15 digits or the birth date is
/// not real. First-generation cards were issued 1984–2004, so the century is always 19.
pub fn upgrade_legacy_resident_id(s15: &str) -> Option<String> {
    if s15.len() != 15 || !s15.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let body = format!("{}19{}", &s15[..6], &s15[6..]);
    birth_date(&body[6..14])?;
    let check = resident_id_check_char(&body)?;
    Some(format!("{body}{check}"))
}

// ---------------------------------------------------------------------------------------------
// 工商注册号 (ISO 7064 MOD 11,10) and 统一交易标识码 (ISO 7064 MOD 37,2)
// ---------------------------------------------------------------------------------------------

/// ISO 7064 MOD 11,10 running value after `digits` (hybrid system, start value 10).
fn mod11_10_state(digits: &[u8]) -> u32 {
    let mut p = 10u32;
    for &d in digits {
        let s = (p + u32::from(d)) % 10;
        let s = if s == 0 { 10 } else { s };
        p = (s * 2) % 11;
    }
    p
}

/// ISO 7064 MOD 11,10 check digit for a string of ASCII digits; `None` if empty or not digits.
pub fn mod11_10_check_digit(body: &str) -> Option<char> {
    if body.is_empty() || !body.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let digits: Vec<u8> = body.bytes().map(|b| b - b'0').collect();
    let p = mod11_10_state(&digits);
    // The check digit c makes (p + c) mod 10 == 1.
    Some(char::from(b'0' + ((11 - p) % 10) as u8))
}

/// 15-digit 工商注册号 (GS 15-2006) with its MOD 11,10 check digit. Older 13-digit numbers have
/// no check and fail here with [`IdError::Length`]; callers decide whether to accept them.
pub fn check_business_reg_no(s: &str) -> Result<(), IdError> {
    let chars: Vec<char> = s.chars().collect();
    if chars.len() != 15 {
        return Err(length_err("15", chars.len()));
    }
    if let Some((i, &ch)) = chars.iter().enumerate().find(|(_, c)| !c.is_ascii_digit()) {
        return Err(IdError::BadChar { pos: i + 1, ch });
    }
    let expected =
        mod11_10_check_digit(&s[..14]).ok_or(IdError::Format { expected: "[0-9]{15}" })?;
    if chars[14] != expected {
        return Err(IdError::Checksum { expected });
    }
    Ok(())
}

const MOD37_ALPHABET: &str = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ*";

/// ISO 7064 MOD 37,2 (pure system, alphabet `0-9 A-Z *`) check character; `None` if `body` is
/// empty or has a character outside `0-9 A-Z` (`*` is a check-only symbol).
pub fn mod37_2_check_char(body: &str) -> Option<char> {
    if body.is_empty() {
        return None;
    }
    let mut p = 0u32;
    for c in body.chars() {
        let v = MOD37_ALPHABET[..36].find(c)? as u32;
        p = (p * 2 + v) % 37;
    }
    // Choose c so that the whole string (body + c) folds to 1.
    let c = (1 + 37 * 2 - (p * 2) % 37) % 37;
    MOD37_ALPHABET.chars().nth(c as usize)
}

const DEAL_CODE_FORMAT: &str = "USCC-YYYYMMDD-NNNNNN-C";

/// 统一交易标识码 `USCC-YYYYMMDD-NNNNNN-C` (also accepted without hyphens, 33 chars): embedded
/// USCC fully checked ([`IdError::EmbeddedUscc`]), date real, sequence 6 digits, MOD 37,2 check
/// over the 32 characters without hyphens ([`IdError::DealCodeChecksum`], a warning for now).
pub fn check_unified_deal_code(s: &str) -> Result<(), IdError> {
    let chars: Vec<char> = s.chars().collect();
    let compact: String = match chars.len() {
        36 => {
            let hyphens_ok =
                chars.iter().enumerate().all(|(i, &c)| (c == '-') == matches!(i, 18 | 27 | 34));
            if !hyphens_ok {
                return Err(IdError::Format { expected: DEAL_CODE_FORMAT });
            }
            chars.iter().filter(|&&c| c != '-').collect()
        }
        33 if !chars.contains(&'-') => s.to_owned(),
        n => return Err(length_err("36 (33 without hyphens)", n)),
    };
    if !compact.is_ascii() {
        return Err(IdError::Format { expected: DEAL_CODE_FORMAT });
    }
    check_uscc(&compact[..18]).map_err(|e| IdError::EmbeddedUscc(Box::new(e)))?;
    let date = &compact[18..26];
    let date_ok = date.bytes().all(|b| b.is_ascii_digit()) && birth_date(date).is_some();
    let seq_ok = compact[26..32].bytes().all(|b| b.is_ascii_digit());
    if !date_ok || !seq_ok {
        return Err(IdError::Format { expected: DEAL_CODE_FORMAT });
    }
    let check = compact.as_bytes()[32] as char;
    if !MOD37_ALPHABET.contains(check) {
        return Err(IdError::BadChar { pos: chars.len(), ch: check });
    }
    let expected =
        mod37_2_check_char(&compact[..32]).ok_or(IdError::Format { expected: DEAL_CODE_FORMAT })?;
    if check != expected {
        return Err(IdError::DealCodeChecksum { expected });
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// GB/T 2260 area codes
// ---------------------------------------------------------------------------------------------

/// Province-level prefixes of GB/T 2260 plus 71 Taiwan, 81 Hong Kong, 82 Macao.
fn is_province_prefix(p: u8) -> bool {
    matches!(p, 11..=15 | 21..=23 | 31..=37 | 41..=46 | 50..=54 | 61..=65 | 71 | 81 | 82)
}

fn check_area(s: &str, allow_83: bool) -> Result<(), IdError> {
    let chars: Vec<char> = s.chars().collect();
    if chars.len() != 6 {
        return Err(length_err("6", chars.len()));
    }
    if let Some((i, &ch)) = chars.iter().enumerate().find(|(_, c)| !c.is_ascii_digit()) {
        return Err(IdError::BadChar { pos: i + 1, ch });
    }
    let prefix: u8 = s[..2].parse().map_err(|_| IdError::Format { expected: "[0-9]{6}" })?;
    if is_province_prefix(prefix) || (allow_83 && prefix == 83) {
        Ok(())
    } else {
        Err(IdError::Province { prefix })
    }
}

/// 6 digits whose first two are a province-level prefix. No finer table on purpose: codes are
/// retired and reassigned over time and no dated table is available.
pub fn check_gb2260_area(s: &str) -> Result<(), IdError> {
    check_area(s, false)
}

/// As [`check_gb2260_area`] but also accepting `83`, which occurs only as the address code of
/// 台湾居民居住证 numbers. Optional for callers: [`check_resident_id`] does not check regions.
pub fn check_resident_region(s: &str) -> Result<(), IdError> {
    check_area(s, true)
}

// ---------------------------------------------------------------------------------------------
// Other ID documents (format only, standards §2.4 — several shapes are ○, hence no checksums)
// ---------------------------------------------------------------------------------------------

fn all_digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

/// Chinese ordinary passport: `E` + 8 digits, `E` + letter (no I/O) + 7 digits (since 2017),
/// or old `G` + 8 digits. Foreign passports have no common shape, so callers should apply this
/// only when the passport is known to be Chinese.
pub fn check_cn_passport(s: &str) -> Result<(), IdError> {
    const FORMAT: &str = "^(E[0-9]{8}|E[A-HJ-NP-Z][0-9]{7}|G[0-9]{8})$";
    let n = s.chars().count();
    if n != 9 {
        return Err(length_err("9", n));
    }
    let ok = match (s.as_bytes()[0], s.as_bytes()[1]) {
        (b'E' | b'G', _) if all_digits(&s[1..]) => true,
        (b'E', l) if l.is_ascii_uppercase() && l != b'I' && l != b'O' => all_digits(&s[2..]),
        _ => false,
    };
    if ok { Ok(()) } else { Err(IdError::Format { expected: FORMAT }) }
}

/// 港澳居民来往内地通行证: `H`/`M` + 8 digits, optionally + the 2-digit renewal count printed on
/// the card.
pub fn check_hk_macao_permit(s: &str) -> Result<(), IdError> {
    const FORMAT: &str = "^[HM][0-9]{8}([0-9]{2})?$";
    let n = s.chars().count();
    if n != 9 && n != 11 {
        return Err(length_err("9 or 11", n));
    }
    if matches!(s.as_bytes()[0], b'H' | b'M') && all_digits(&s[1..]) {
        Ok(())
    } else {
        Err(IdError::Format { expected: FORMAT })
    }
}

/// 台湾居民来往大陆通行证: 8 digits (○ — confirm against the issuing rules).
pub fn check_taiwan_permit(s: &str) -> Result<(), IdError> {
    let n = s.chars().count();
    if n != 8 {
        return Err(length_err("8", n));
    }
    if all_digits(s) { Ok(()) } else { Err(IdError::Format { expected: "^[0-9]{8}$" }) }
}

/// 外国人永久居留身份证: old card 3 letters (country) + 12 digits, 2023 card 18 characters
/// starting `9` (17 digits + digit/X). Shape only (○).
pub fn check_foreigner_permanent_id(s: &str) -> Result<(), IdError> {
    const FORMAT: &str = "^([A-Z]{3}[0-9]{12}|9[0-9]{16}[0-9X])$";
    let n = s.chars().count();
    let ok = match n {
        15 => {
            s.is_ascii() && s.bytes().take(3).all(|b| b.is_ascii_uppercase()) && all_digits(&s[3..])
        }
        18 => {
            s.is_ascii()
                && s.starts_with('9')
                && all_digits(&s[..17])
                && (s.as_bytes()[17].is_ascii_digit() || s.ends_with('X'))
        }
        _ => return Err(length_err("15 or 18", n)),
    };
    if ok { Ok(()) } else { Err(IdError::Format { expected: FORMAT }) }
}

// ---------------------------------------------------------------------------------------------
// 文号 (document numbers)
// ---------------------------------------------------------------------------------------------

/// A bracketed year followed by the sequence. Only this bracket pair is unified: parentheses
/// elsewhere (`某某（集团）…`) are part of the issuing body's name. `[0-9]` rather than `\d`
/// because `\d` is Unicode-aware and would accept e.g. Arabic-Indic digits.
static DOC_NO_YEAR_BRACKETS: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"[〔\[【﹝（(［](\s*)([0-9]{2}|(?:19|20)[0-9]{2})(\s*)[〕\]】﹞）)］](\s*第?\s*[0-9]+\s*号?)",
    )
    .expect("static regex")
});

/// Fixtures §5.2 pattern, with `[0-9]` for `\d` (see above).
static DOC_NO: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(concat!(
        r"^(?P<org>[\p{Han}A-Za-z0-9·（）()]+?)",
        r"[〔\[【﹝（(［](?P<year>(?:19|20)[0-9]{2})[〕\]】﹞）)］]",
        r"第?(?P<seq>[0-9]+)号$",
    ))
    .expect("static regex")
});

/// `〕第0032` → `〕32`: identity ignores `第` and zero padding of the sequence.
static DOC_NO_SEQ: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"〔([0-9]{2,4})〕第?0*([0-9])").expect("static regex"));

/// Display form of a 文号: zero-width removal, NFKC (full-width digits → ASCII), year bracket
/// variants → `〔〕`, trim. `第` and zero padding are kept because they are what the document
/// says; use [`doc_no_identity`] to compare.
pub fn normalize_doc_no(raw: &str) -> String {
    let mut notes = Vec::new();
    let nfkc = normalize_inner(raw, &mut notes);
    if !nfkc.contains(ALTERNATE_BRACKETS) {
        // Every match of the bracket pattern then already uses `〔〕`, which the replacement
        // writes back unchanged, and `normalize_inner` trimmed: the regex would change nothing.
        return nfkc;
    }
    DOC_NO_YEAR_BRACKETS.replace_all(&nfkc, "〔${1}${2}${3}〕${4}").trim().to_owned()
}

/// The brackets of [`DOC_NO_YEAR_BRACKETS`] other than `〔` and `〕`.
const ALTERNATE_BRACKETS: [char; 12] =
    ['[', '【', '﹝', '（', '(', '［', ']', '】', '﹞', '）', ')', '］'];

/// Comparison key for record identity: [`normalize_doc_no`], all whitespace removed, `第` after
/// the year bracket dropped and the sequence's leading zeros stripped, so
/// `武建罚字[2026]第0032号` and `武建罚字〔2026〕32号` are the same document.
pub fn doc_no_identity(raw: &str) -> String {
    let compact = compact_doc_no(raw);
    if !compact.contains("〕第") && !compact.contains("〕0") {
        // Without `第` or a zero after a closing bracket, every match of the sequence pattern
        // is replaced by itself.
        return compact;
    }
    DOC_NO_SEQ.replace_all(&compact, "〔${1}〕${2}").into_owned()
}

/// [`normalize_doc_no`] without any whitespace. NFKC runs again because NFKC can leave a space
/// before a combining mark (`¸` → space + U+0327); once the space is gone the pair composes,
/// and without this second pass the key would change when computed again.
fn compact_doc_no(raw: &str) -> String {
    let display = normalize_doc_no(raw);
    if !display.chars().any(char::is_whitespace) {
        // Already NFKC (normalize_doc_no ran it) and nothing was removed: no second pass.
        return display;
    }
    display.chars().filter(|c| !c.is_whitespace()).nfkc().collect()
}

/// A 文号 split into its parts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DocNo {
    /// Issuing-body abbreviation, e.g. `鄂公管罚`, `武建罚字`.
    pub org: String,
    /// Four-digit year; two-digit years do not parse (the caller warns).
    pub year: u16,
    /// Sequence number without padding.
    pub seq: u32,
}

/// Parses a 文号 in the standard or a tolerated variant form (any bracket style, optional `第`,
/// zero padding, surrounding whitespace). `None` for anything else, including 2-digit years.
pub fn parse_doc_no(raw: &str) -> Option<DocNo> {
    let compact = compact_doc_no(raw);
    let caps = DOC_NO.captures(&compact)?;
    Some(DocNo {
        org: caps.name("org")?.as_str().to_owned(),
        year: caps.name("year")?.as_str().parse().ok()?,
        seq: caps.name("seq")?.as_str().parse().ok()?,
    })
}

// ---------------------------------------------------------------------------------------------
// Masking for messages and logs
// ---------------------------------------------------------------------------------------------

/// Masks an ID number: first 4 and last 2 characters kept (`4201************30`). Values under
/// 10 characters are fully masked, because keeping 6 of 8 or 9 characters would reveal most of
/// the number. The length is kept so a reader can still tell an 18-digit ID from a passport.
pub fn mask_id(s: &str) -> String {
    let chars: Vec<char> = s.chars().collect();
    let n = chars.len();
    if n < 10 {
        return "*".repeat(n);
    }
    chars.iter().enumerate().map(|(i, &c)| if i < 4 || i >= n - 2 { c } else { '*' }).collect()
}

/// Masks a person's name: first character kept (`张*`, `欧阳**`); a one-character name is fully
/// masked since keeping it would keep everything.
pub fn mask_name(s: &str) -> String {
    let n = s.chars().count();
    match s.chars().next() {
        None => String::new(),
        Some(_) if n == 1 => "*".to_owned(),
        Some(first) => std::iter::once(first).chain(std::iter::repeat_n('*', n - 1)).collect(),
    }
}

/// Masks an 11-digit mobile number to `138****5678`; anything else (landlines, malformed) is
/// fully masked because its structure is unknown.
pub fn mask_phone(s: &str) -> String {
    if s.len() == 11 && s.bytes().all(|b| b.is_ascii_digit()) {
        format!("{}****{}", &s[..3], &s[7..])
    } else {
        "*".repeat(s.chars().count())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn common_chars_are_nfkc_stable() {
        use unicode_normalization::char::canonical_combining_class;
        for c in (0..=0x10FFFF_u32).filter_map(char::from_u32).filter(|&c| is_nfkc_stable_common(c))
        {
            let one = c.to_string();
            assert_eq!(
                unicode_normalization::is_nfkc_quick(one.chars()),
                unicode_normalization::IsNormalized::Yes,
                "U+{:04X}",
                u32::from(c)
            );
            assert_eq!(canonical_combining_class(c), 0, "U+{:04X}", u32::from(c));
            assert!(!is_zero_width(c), "U+{:04X}", u32::from(c));
        }
    }
    use proptest::prelude::*;

    // --- fixtures §1: USCC ------------------------------------------------------------------

    const USCC_SYNTHETIC: [&str; 17] = [
        "91420100MA4K3R7QXY",
        "91420100MA4P7Q8R8N",
        "91420106MA4R2T6U2E",
        "91330106MA2K8L3M9H",
        "91330106MA2H4N8P61",
        "92420102MA4L6U1X4N",
        "92420111MA4W1X2YX8",
        "93420115MA4N2C5E5J",
        "51420000MJY0001AX2",
        "52420106MJY3072B6L",
        "52420102MJY5T1C2XL",
        "N2420117MF1234ABXT",
        "Y1420100MG5678CD68",
        "11420000MB1A2C3D0Q",
        "11420100MB0K7P2Q0T",
        "12420100MB1R5T8W6C",
        "11330100MB3F6H9J12",
    ];

    const USCC_AUTHORITIES: [&str; 9] = [
        "11420000MB0P1Q2R33",
        "11420000MB0T3U4W2B",
        "11420000MB0X5Y6A0T",
        "11420100MB1B7C8D0K",
        "11420100MB1E9F0G6Q",
        "12420100MB1H2J3K3P",
        "11420600MB3T8U9W7F",
        "11330000MB2P6Q7R69",
        "11330100MB2L4M5N50",
    ];

    const USCC_PUBLIC: [&str; 15] = [
        "91350200776049653A",
        "91350500798359476R",
        "91350503MA31DKY80A",
        "91350200MA31E12PXF",
        "91440101MA5CJQ4N59",
        "913502000728319549",
        "123502001549897397",
        "9135021359498494XQ",
        "91350213678251743X",
        "91230500MA1B3N1N2M",
        "11230500001755309F",
        "11420000MB15291767",
        "91320105780688132K",
        "91330000755918469E",
        "91110000600037341L",
    ];

    #[test]
    fn valid_usccs_from_fixtures_pass() {
        for code in USCC_SYNTHETIC.iter().chain(&USCC_AUTHORITIES).chain(&USCC_PUBLIC) {
            let info = check_uscc(code).unwrap_or_else(|e| panic!("{code}: {e}"));
            let unknown = info.warnings.iter().any(|w| {
                matches!(
                    w,
                    UsccWarning::UnknownDepartment { .. } | UsccWarning::UnknownCategory { .. }
                )
            });
            assert!(!unknown, "{code}: {:?}", info.warnings);
        }
    }

    #[test]
    fn synthetic_usccs_have_valid_embedded_org_code() {
        for code in USCC_SYNTHETIC.iter().chain(&USCC_AUTHORITIES) {
            let info = check_uscc(code).unwrap();
            assert!(info.warnings.is_empty(), "{code}: {:?}", info.warnings);
        }
    }

    #[test]
    fn letter_first_usccs_are_valid_and_named() {
        let n2 = check_uscc("N2420117MF1234ABXT").unwrap();
        assert_eq!((n2.dept_name, n2.category_name), (Some("农业"), Some("村级集体经济组织")));
        let y1 = check_uscc("Y1420100MG5678CD68").unwrap();
        assert_eq!((y1.dept, y1.category), ('Y', '1'));
        assert_eq!(y1.dept_name, Some("其他"));
    }

    #[test]
    fn uscc_info_parts() {
        let info = check_uscc("91420100MA4K3R7QXY").unwrap();
        assert_eq!(info.area, "420100");
        assert_eq!(info.org_code, "MA4K3R7QX");
        assert_eq!(info.dept_name, Some("工商"));
        assert_eq!(info.category_name, Some("企业"));
    }

    #[test]
    fn uscc_worked_example_check_char() {
        assert_eq!(uscc_check_char("91420100MA4K3R7QX"), Some('Y'));
        assert_eq!(uscc_check_char("91420100MA4K3R7Q"), None);
        assert_eq!(uscc_check_char("91420100MA4K3R7QI"), None);
    }

    #[test]
    fn uscc_wrong_check_char() {
        assert_eq!(check_uscc("91420100MA4K3R7QXX"), Err(IdError::Checksum { expected: 'Y' }));
        assert_eq!(check_uscc("91350203M0001QAY9B"), Err(IdError::Checksum { expected: '9' }));
    }

    #[test]
    fn uscc_placeholder_fails_checksum_and_is_recognised() {
        assert_eq!(check_uscc(USCC_PLACEHOLDER), Err(IdError::Checksum { expected: '0' }));
        assert!(is_uscc_placeholder("00000000000000000X"));
        assert!(!is_uscc_placeholder("000000000000000000"));
        assert!(!is_uscc_placeholder(" 00000000000000000X"));
    }

    #[test]
    fn uscc_format_errors() {
        assert_eq!(check_uscc("91420100MA4K3R7IXY"), Err(IdError::BadChar { pos: 16, ch: 'I' }));
        assert_eq!(check_uscc("914201O0MA4K3R7QXY"), Err(IdError::AreaNotDigits));
        assert_eq!(check_uscc("91420100ma4k3r7qxy"), Err(IdError::Lowercase { pos: 9, ch: 'm' }));
        assert_eq!(
            check_uscc("91420100MA4K3R7QX"),
            Err(IdError::Length { expected: "18", got: 17 })
        );
        assert_eq!(
            check_uscc("91420100MA4K3R7QXY0"),
            Err(IdError::Length { expected: "18", got: 19 })
        );
        assert_eq!(check_uscc(""), Err(IdError::Empty));
        assert_eq!(
            check_uscc("91420100 MA4K3R7QXY"),
            Err(IdError::Length { expected: "18", got: 19 })
        );
        assert_eq!(check_uscc("9142010 MA4K3R7QXY"), Err(IdError::BadChar { pos: 8, ch: ' ' }));
        // `i` is lowercase but `I` is not in the alphabet either: not merely a case problem.
        assert_eq!(check_uscc("91420100MA4K3R7iXY"), Err(IdError::BadChar { pos: 16, ch: 'i' }));
    }

    #[test]
    fn uscc_z_is_rejected_anywhere() {
        let base = "91420100MA4K3R7QXY";
        for pos in 0..18 {
            let mut s: Vec<char> = base.chars().collect();
            s[pos] = 'Z';
            let s: String = s.into_iter().collect();
            let err = check_uscc(&s).unwrap_err();
            assert!(
                matches!(err, IdError::BadChar { ch: 'Z', .. } | IdError::AreaNotDigits),
                "{s}: {err:?}"
            );
        }
    }

    #[test]
    fn uscc_full_width_normalises_to_valid() {
        let n = normalize_code("９1420100MA4K3R7QXY");
        assert!(check_uscc("９1420100MA4K3R7QXY").is_err());
        assert_eq!(n.value, "91420100MA4K3R7QXY");
        assert!(n.changed);
        assert_eq!(n.notes, vec![NOTE_FULL_WIDTH]);
        assert!(check_uscc(&n.value).is_ok());
    }

    #[test]
    fn uscc_whitespace_outer_trimmed_inner_rejected() {
        let outer = normalize_code(" 91420100MA4K3R7QXY ");
        assert_eq!(outer.notes, vec![NOTE_OUTER_WHITESPACE]);
        assert!(check_uscc(&outer.value).is_ok());
        let inner = normalize_code("91420100 MA4K3R7QXY");
        assert!(!inner.changed);
        assert!(check_uscc(&inner.value).is_err());
    }

    #[test]
    fn uscc_lowercase_normalises_with_upper_variant_only() {
        assert!(check_uscc(&normalize_code("91420100ma4k3r7qxy").value).is_err());
        let up = normalize_code_upper("91420100ma4k3r7qxy");
        assert_eq!(up.notes, vec![NOTE_LOWERCASE]);
        assert!(check_uscc(&up.value).is_ok());
    }

    #[test]
    fn uscc_embedded_org_code_bad_is_warning() {
        let info = check_uscc("91420100MA4K3R7Q05").unwrap();
        assert_eq!(info.warnings, vec![UsccWarning::OrgCodeChecksum { expected: 'X' }]);
    }

    #[test]
    fn uscc_unknown_department_is_warning() {
        let body = "B1420100MA4K3R7QX";
        let code = format!("{body}{}", uscc_check_char(body).unwrap());
        let info = check_uscc(&code).unwrap();
        assert_eq!(info.warnings, vec![UsccWarning::UnknownDepartment { dept: 'B' }]);
        assert_eq!(info.dept_name, None);
    }

    #[test]
    fn uscc_unknown_category_is_warning() {
        let body = "94420100MA4K3R7QX";
        let code = format!("{body}{}", uscc_check_char(body).unwrap());
        let info = check_uscc(&code).unwrap();
        assert_eq!(info.warnings, vec![UsccWarning::UnknownCategory { dept: '9', category: '4' }]);
        assert_eq!(info.dept_name, Some("工商"));
    }

    // --- fixtures §2: GB 11714 ----------------------------------------------------------------

    #[test]
    fn org_code_check_chars() {
        assert_eq!(org_code_check_char("D2143569"), Some('X'));
        assert_eq!(org_code_check_char("60003734"), Some('1'));
        assert_eq!(org_code_check_char("MA4K3R7Q"), Some('X'));
        assert_eq!(org_code_check_char("71526726"), Some('X'));
        assert_eq!(org_code_check_char("d2143569"), None);
        assert_eq!(org_code_check_char("D214356"), None);
    }

    #[test]
    fn org_code_with_and_without_hyphen() {
        assert_eq!(check_org_code("D2143569-X"), Ok(()));
        assert_eq!(check_org_code("D2143569X"), Ok(()));
        assert_eq!(check_org_code("60003734-1"), Ok(()));
        assert_eq!(check_org_code("MA4K3R7Q0"), Err(IdError::Checksum { expected: 'X' }));
        assert_eq!(check_org_code("D2143569x"), Err(IdError::Lowercase { pos: 9, ch: 'x' }));
        assert_eq!(check_org_code("D2143569_X"), Err(IdError::BadChar { pos: 9, ch: '_' }));
        assert!(matches!(check_org_code("D214356"), Err(IdError::Length { got: 7, .. })));
    }

    // --- fixtures §3: GB 11643 ----------------------------------------------------------------

    const RESIDENT_VALID: [&str; 12] = [
        "420102199003071232",
        "420106198504120021",
        "420111198501011234",
        "420105199209154569",
        "420682197607043216",
        "42010219991231000X",
        "330106198002290010",
        "11010519491231002X",
        "440524188001010014",
        "330106197801012311",
        "810000199001010019",
        "830000198812120026",
    ];

    #[test]
    fn valid_resident_ids_from_fixtures_pass() {
        for id in RESIDENT_VALID {
            check_resident_id(id).unwrap_or_else(|e| panic!("{}: {e}", mask_id(id)));
        }
    }

    #[test]
    fn resident_id_info() {
        let info = check_resident_id("420102199003071232").unwrap();
        assert_eq!(info.region, "420102");
        assert_eq!(info.birth_date, Date::new(1990, 3, 7).unwrap());
        assert_eq!(info.sex, Sex::Male);
        assert!(!info.residence_permit);
        assert_eq!(check_resident_id("420106198504120021").unwrap().sex, Sex::Female);
        assert!(check_resident_id("830000198812120026").unwrap().residence_permit);
        assert_eq!(
            check_resident_id("440524188001010014").unwrap().birth_date,
            Date::new(1880, 1, 1).unwrap()
        );
    }

    #[test]
    fn resident_id_worked_example() {
        assert_eq!(resident_id_check_char("42010219900307123"), Some('2'));
        assert_eq!(resident_id_check_char("4201021990030712"), None);
    }

    #[test]
    fn resident_id_errors() {
        assert_eq!(
            check_resident_id("420102199003071230"),
            Err(IdError::Checksum { expected: '2' })
        );
        assert_eq!(check_resident_id("42010219991231000x"), Err(IdError::LowercaseX));
        assert_eq!(check_resident_id("420102199002301234"), Err(IdError::BirthDate));
        assert_eq!(check_resident_id("420102900307123"), Err(IdError::Legacy15));
        assert_eq!(
            check_resident_id("42010219900307123"),
            Err(IdError::Length { expected: "18", got: 17 })
        );
        assert_eq!(
            check_resident_id("4201021990030712３2"),
            Err(IdError::BadChar { pos: 17, ch: '３' })
        );
        assert_eq!(
            check_resident_id("42010219900307123Y"),
            Err(IdError::BadChar { pos: 18, ch: 'Y' })
        );
        assert_eq!(check_resident_id(""), Err(IdError::Empty));
    }

    #[test]
    fn resident_id_birth_year_range() {
        for (body, ok) in [
            ("42010217991231123", false),
            ("42010218000101123", true),
            ("42010221001231123", true),
            ("42010221010101123", false),
            ("42010219000229123", false), // 1900 is not a leap year
            ("42010220000229123", true),
        ] {
            let id = format!("{body}{}", resident_id_check_char(body).unwrap());
            assert_eq!(check_resident_id(&id).is_ok(), ok, "{body}");
        }
    }

    #[test]
    fn resident_id_lowercase_x_normalises() {
        let n = normalize_code_upper("42010219991231000x");
        assert!(check_resident_id(&n.value).is_ok());
    }

    #[test]
    fn resident_id_full_width_normalises() {
        let n = normalize_code("4201021990030712３2");
        assert_eq!(n.notes, vec![NOTE_FULL_WIDTH]);
        assert!(check_resident_id(&n.value).is_ok());
    }

    #[test]
    fn legacy_resident_id_upgrade() {
        assert_eq!(
            upgrade_legacy_resident_id("420102900307123").as_deref(),
            Some("420102199003071232")
        );
        assert_eq!(upgrade_legacy_resident_id("420102900230123"), None); // 1990-02-30
        assert_eq!(upgrade_legacy_resident_id("42010290030712"), None);
        assert_eq!(upgrade_legacy_resident_id("42010290030712X"), None);
    }

    // --- fixtures §3.3: other ID documents ------------------------------------------------------

    #[test]
    fn other_id_document_shapes() {
        assert_eq!(check_hk_macao_permit("H12345678"), Ok(()));
        assert_eq!(check_hk_macao_permit("M12345678"), Ok(()));
        assert_eq!(check_hk_macao_permit("H1234567801"), Ok(()));
        assert!(check_hk_macao_permit("X12345678").is_err());
        assert!(check_hk_macao_permit("H123456789").is_err());
        assert!(check_hk_macao_permit("Ｈ12345678").is_err());

        assert_eq!(check_taiwan_permit("12345678"), Ok(()));
        assert!(check_taiwan_permit("1234567A").is_err());
        assert!(check_taiwan_permit("123456789").is_err());

        for ok in ["E12345678", "EA1234567", "G12345678"] {
            assert_eq!(check_cn_passport(ok), Ok(()), "{ok}");
        }
        for bad in ["EI1234567", "EO1234567", "P12345678", "E1234567", "e12345678", "É1234567"] {
            assert!(check_cn_passport(bad).is_err(), "{bad}");
        }

        assert_eq!(check_foreigner_permanent_id("USA123456789012"), Ok(()));
        assert_eq!(check_foreigner_permanent_id("911000199001010012"), Ok(()));
        assert!(check_foreigner_permanent_id("811000199001010012").is_err());
        assert!(check_foreigner_permanent_id("US1123456789012").is_err());
        assert!(check_foreigner_permanent_id("USA12345678901").is_err());
    }

    // --- fixtures §4: other identifiers ---------------------------------------------------------

    #[test]
    fn business_reg_no() {
        assert_eq!(check_business_reg_no("420100000123453"), Ok(()));
        assert_eq!(check_business_reg_no("330106000045679"), Ok(()));
        assert_eq!(
            check_business_reg_no("420100000123454"),
            Err(IdError::Checksum { expected: '3' })
        );
        assert!(matches!(check_business_reg_no("4201000001234"), Err(IdError::Length { .. })));
        assert_eq!(
            check_business_reg_no("42010000012345A"),
            Err(IdError::BadChar { pos: 15, ch: 'A' })
        );
        assert_eq!(mod11_10_check_digit("42010000012345"), Some('3'));
        assert_eq!(mod11_10_check_digit(""), None);
    }

    #[test]
    fn mod37_2_reference_vector() {
        assert_eq!(mod37_2_check_char("G123489654321"), Some('Y'));
        assert_ne!(mod37_2_check_char("G123489654321"), Some('Z'));
        assert_eq!(mod37_2_check_char("g123"), None);
        assert_eq!(mod37_2_check_char(""), None);
    }

    #[test]
    fn unified_deal_code() {
        assert_eq!(check_unified_deal_code("12420100MB1R5T8W6C-20261109-000123-B"), Ok(()));
        assert_eq!(check_unified_deal_code("12420100MB1R5T8W6C20261109000123B"), Ok(()));
        assert_eq!(
            check_unified_deal_code("12420100MB1R5T8W6C-20261109-000123-A"),
            Err(IdError::DealCodeChecksum { expected: 'B' })
        );
        assert!(matches!(
            check_unified_deal_code("12420100MB1R5T8W6D-20261109-000123-B"),
            Err(IdError::EmbeddedUscc(inner)) if *inner == IdError::Checksum { expected: 'C' }
        ));
        assert_eq!(
            check_unified_deal_code("12420100MB1R5T8W6C-20260230-000123-B"),
            Err(IdError::Format { expected: DEAL_CODE_FORMAT })
        );
        assert_eq!(
            check_unified_deal_code("12420100MB1R5T8W6C-2026110-9000123-B"),
            Err(IdError::Format { expected: DEAL_CODE_FORMAT })
        );
        assert!(matches!(
            check_unified_deal_code("12420100MB1R5T8W6C-20261109-000123"),
            Err(IdError::Length { .. })
        ));
    }

    #[test]
    fn gb2260_area() {
        assert_eq!(check_gb2260_area("420100"), Ok(()));
        assert_eq!(check_gb2260_area("710000"), Ok(()));
        assert_eq!(check_gb2260_area("820000"), Ok(()));
        assert_eq!(check_gb2260_area("830000"), Err(IdError::Province { prefix: 83 }));
        assert_eq!(check_resident_region("830000"), Ok(()));
        assert_eq!(check_gb2260_area("160000"), Err(IdError::Province { prefix: 16 }));
        assert_eq!(check_gb2260_area("000000"), Err(IdError::Province { prefix: 0 }));
        assert_eq!(check_gb2260_area("42010A"), Err(IdError::BadChar { pos: 6, ch: 'A' }));
        assert!(matches!(check_gb2260_area("4201"), Err(IdError::Length { got: 4, .. })));
        for p in [11, 15, 21, 23, 31, 37, 41, 46, 50, 54, 61, 65, 71, 81, 82] {
            assert_eq!(check_gb2260_area(&format!("{p}0000")), Ok(()), "{p}");
        }
        for p in [10, 16, 20, 24, 30, 38, 40, 47, 49, 55, 60, 66, 70, 72, 80, 84, 99] {
            assert!(check_gb2260_area(&format!("{p}0000")).is_err(), "{p}");
        }
    }

    // --- fixtures §5: document numbers ----------------------------------------------------------

    #[test]
    fn doc_no_bracket_variants_normalise() {
        for raw in [
            "鄂公管罚〔2026〕12号",
            "鄂公管罚[2026]12号",
            "鄂公管罚【2026】12号",
            "鄂公管罚﹝2026﹞12号",
            "鄂公管罚（2026）12号",
            "鄂公管罚(2026)12号",
            "鄂公管罚［2026］12号",
            "鄂公管罚〔２０２６〕１２号",
            " 鄂公管罚〔2026〕12号 ",
        ] {
            assert_eq!(normalize_doc_no(raw), "鄂公管罚〔2026〕12号", "{raw}");
            assert_eq!(
                parse_doc_no(raw),
                Some(DocNo { org: "鄂公管罚".into(), year: 2026, seq: 12 }),
                "{raw}"
            );
        }
    }

    #[test]
    fn doc_no_display_keeps_di_and_padding_identity_drops_them() {
        let raw = "武建罚字[2026]第0032号";
        assert_eq!(normalize_doc_no(raw), "武建罚字〔2026〕第0032号");
        assert_eq!(doc_no_identity(raw), "武建罚字〔2026〕32号");
        assert_eq!(doc_no_identity("武建罚字〔2026〕32号"), "武建罚字〔2026〕32号");
        assert_eq!(doc_no_identity("武建罚字 〔2026〕 第 0032 号"), "武建罚字〔2026〕32号");
        assert_eq!(doc_no_identity("武政务许字〔2026〕第00451号"), "武政务许字〔2026〕451号");
        assert_eq!(doc_no_identity("某〔2026〕第000号"), "某〔2026〕0号");
        assert_eq!(
            parse_doc_no("武建罚字〔2026〕第0032号"),
            Some(DocNo { org: "武建罚字".into(), year: 2026, seq: 32 })
        );
        assert_eq!(
            parse_doc_no("市场【2019】1号"),
            Some(DocNo { org: "市场".into(), year: 2019, seq: 1 })
        );
    }

    #[test]
    fn doc_no_parentheses_in_org_name_are_kept() {
        let raw = "某某（集团）罚（2026）3号";
        assert_eq!(normalize_doc_no(raw), "某某(集团)罚〔2026〕3号");
        assert_eq!(
            parse_doc_no(raw),
            Some(DocNo { org: "某某(集团)罚".into(), year: 2026, seq: 3 })
        );
        assert_eq!(normalize_doc_no("十二(12)队〔2026〕3号"), "十二(12)队〔2026〕3号");
    }

    #[test]
    fn doc_no_real_examples_parse() {
        for (raw, org, year, seq) in [
            ("杭信办〔2023〕4号", "杭信办", 2023, 4),
            ("鄂公管委发〔2018〕4号", "鄂公管委发", 2018, 4),
            ("发改办财金〔2019〕527号", "发改办财金", 2019, 527),
            ("国办发〔2025〕22号", "国办发", 2025, 22),
            ("鄂交罚决〔2026〕1108号", "鄂交罚决", 2026, 1108),
        ] {
            assert_eq!(parse_doc_no(raw), Some(DocNo { org: org.into(), year, seq }), "{raw}");
        }
    }

    #[test]
    fn doc_no_two_digit_year_and_junk_do_not_parse() {
        assert_eq!(parse_doc_no("鄂公管罚〔26〕12号"), None);
        assert_eq!(normalize_doc_no("鄂公管罚[26]12号"), "鄂公管罚〔26〕12号");
        assert_eq!(parse_doc_no("鄂公管罚〔2026〕号"), None);
        assert_eq!(parse_doc_no("鄂公管罚2026年12号"), None);
        assert_eq!(parse_doc_no(""), None);
        assert_eq!(parse_doc_no("鄂公管罚〔2026〕99999999999号"), None);
    }

    #[test]
    fn doc_no_identity_stable_when_nfkc_leaves_a_space() {
        // Shrunk proptest case: `¸` becomes space + U+0327, which composes once the space goes.
        let id = doc_no_identity("K¸");
        assert_eq!(id, "Ķ");
        assert_eq!(doc_no_identity(&id), id);
    }

    // --- normalisation ---------------------------------------------------------------------------

    #[test]
    fn normalize_reports_each_change() {
        let n = normalize_code("\u{200B}９1420100MA4K3R7QXY\u{3000}");
        assert_eq!(n.value, "91420100MA4K3R7QXY");
        assert_eq!(n.notes, vec![NOTE_ZERO_WIDTH, NOTE_FULL_WIDTH, NOTE_OUTER_WHITESPACE]);
        assert_eq!(n.message_zh(), "已规范化：零宽字符、全角字符、首尾空白");
        let same = normalize_code("91420100MA4K3R7QXY");
        assert!(!same.changed);
        assert!(same.notes.is_empty());
        assert_eq!(same.message_zh(), "");
        assert_eq!(normalize_code("①").notes, vec![NOTE_COMPATIBILITY]);
        for zw in ['\u{200B}', '\u{200C}', '\u{200D}', '\u{FEFF}', '\u{2060}'] {
            assert_eq!(normalize_code(&format!("A{zw}B")).value, "AB");
        }
    }

    // --- masking ---------------------------------------------------------------------------------

    #[test]
    fn masking() {
        assert_eq!(mask_id("420102199003071230"), "4201************30");
        assert_eq!(mask_id("420102900307123"), "4201*********23");
        assert_eq!(mask_id("H12345678"), "*********");
        assert_eq!(mask_id(""), "");
        assert_eq!(mask_name("张三"), "张*");
        assert_eq!(mask_name("欧阳娜娜"), "欧***");
        assert_eq!(mask_name("张"), "*");
        assert_eq!(mask_name(""), "");
        assert_eq!(mask_phone("13812345678"), "138****5678");
        assert_eq!(mask_phone("027-8765432"), "***********");
    }

    #[test]
    fn messages() {
        assert_eq!(IdError::Checksum { expected: 'Y' }.message_zh(), "校验码错误，应为 Y");
        assert_eq!(
            IdError::Checksum { expected: 'Y' }.to_string(),
            "checksum mismatch: check character should be Y"
        );
        let inner = IdError::EmbeddedUscc(Box::new(IdError::Checksum { expected: 'C' }));
        assert_eq!(inner.message_zh(), "其中的统一社会信用代码有误：校验码错误，应为 C");
        assert_eq!(
            UsccWarning::OrgCodeChecksum { expected: 'X' }.to_string(),
            "embedded organisation code checksum mismatch, expected X"
        );
    }

    // --- properties ------------------------------------------------------------------------------

    fn substitutions(valid: &str, alphabet: &str) -> Vec<String> {
        let chars: Vec<char> = valid.chars().collect();
        let mut out = Vec::new();
        for i in 0..chars.len() {
            for c in alphabet.chars().filter(|&c| c != chars[i]) {
                let mut v = chars.clone();
                v[i] = c;
                out.push(v.into_iter().collect());
            }
        }
        out
    }

    /// Exhaustive version of the property below, so a regression is caught deterministically.
    #[test]
    fn every_single_substitution_is_detected_exhaustively() {
        for code in USCC_SYNTHETIC.iter().chain(&USCC_PUBLIC) {
            for s in substitutions(code, USCC_ALPHABET) {
                assert!(check_uscc(&s).is_err(), "{code} -> {s}");
            }
        }
        for id in RESIDENT_VALID {
            for s in substitutions(id, "0123456789X") {
                assert!(check_resident_id(&s).is_err(), "{}", mask_id(&s));
            }
        }
    }

    /// Replaces the character at `pos` by the symbol `shift` places after it in `alphabet`
    /// (cyclically), so every generated case is a real substitution and none is rejected.
    fn substitute(valid: &str, pos: usize, alphabet: &str, shift: usize) -> String {
        let symbols: Vec<char> = alphabet.chars().collect();
        let mut v: Vec<char> = valid.chars().collect();
        let i = symbols.iter().position(|&c| c == v[pos]).unwrap();
        v[pos] = symbols[(i + shift) % symbols.len()];
        v.into_iter().collect()
    }

    fn valid_uscc() -> impl Strategy<Value = String> {
        let sym = proptest::sample::select(USCC_ALPHABET.chars().collect::<Vec<_>>());
        (proptest::collection::vec(sym.clone(), 2), "[0-9]{6}", proptest::collection::vec(sym, 9))
            .prop_map(|(head, area, tail)| {
                let body: String =
                    head.into_iter().chain(area.chars()).chain(tail).collect::<String>();
                let check = uscc_check_char(&body).unwrap();
                format!("{body}{check}")
            })
    }

    fn valid_resident_id() -> impl Strategy<Value = String> {
        ("[0-9]{6}", 1800i16..=2100, 1i8..=12, 1i8..=28, "[0-9]{3}").prop_map(
            |(region, y, m, d, seq)| {
                let body = format!("{region}{y:04}{m:02}{d:02}{seq}");
                let check = resident_id_check_char(&body).unwrap();
                format!("{body}{check}")
            },
        )
    }

    proptest! {
        #[test]
        fn generated_usccs_are_valid(code in valid_uscc()) {
            prop_assert!(check_uscc(&code).is_ok());
            prop_assert!(is_valid_uscc(&code));
            prop_assert_eq!(check_uscc_warnings(&code), Ok(check_uscc(&code).unwrap().warnings));
        }

        #[test]
        fn byte_check_agrees_with_full_check(
            code in valid_uscc(),
            pos in 0usize..18,
            ch in "[0-9A-Za-z IOSVZ０-９ａ中-]",
        ) {
            let mut chars: Vec<char> = code.chars().collect();
            if let Some(c) = ch.chars().next() {
                chars[pos] = c;
            }
            let mutated: String = chars.into_iter().collect();
            let shorter: String = mutated.chars().skip(1).collect();
            for s in [mutated.as_str(), shorter.as_str(), code.as_str()] {
                prop_assert_eq!(is_valid_uscc(s), check_uscc(s).is_ok(), "{}", s);
                prop_assert_eq!(
                    check_uscc_warnings(s).map_err(|e| e.to_string()),
                    check_uscc(s).map(|i| i.warnings).map_err(|e| e.to_string())
                );
            }
        }

        #[test]
        fn uscc_single_substitution_detected(
            code in valid_uscc(),
            pos in 0usize..18,
            shift in 1usize..31,
        ) {
            let s = substitute(&code, pos, USCC_ALPHABET, shift);
            prop_assert!(check_uscc(&s).is_err(), "{} -> {}", code, s);
        }

        #[test]
        fn resident_id_single_substitution_detected(
            id in valid_resident_id(),
            pos in 0usize..18,
            shift in 1usize..11,
        ) {
            prop_assert!(check_resident_id(&id).is_ok());
            let s = substitute(&id, pos, "0123456789X", shift);
            prop_assert!(check_resident_id(&s).is_err());
        }

        #[test]
        fn normalize_is_idempotent(raw in any::<String>()) {
            let once = normalize_code(&raw);
            let twice = normalize_code(&once.value);
            prop_assert_eq!(&twice.value, &once.value);
            prop_assert!(!twice.changed);
            prop_assert_eq!(once.changed, once.value != raw);
            let up = normalize_code_upper(&raw);
            prop_assert_eq!(&normalize_code_upper(&up.value).value, &up.value);
        }

        #[test]
        fn normalize_is_idempotent_on_code_like_input(
            raw in "[ \u{3000}\u{200B}\u{FEFF}\u{2060}0-9A-Za-z０-９Ａ-Ｚａ-ｚ\u{0301}\u{00A8}]{0,24}"
        ) {
            let once = normalize_code(&raw);
            prop_assert_eq!(normalize_code(&once.value).value, once.value);
        }

        #[test]
        fn doc_no_normalisation_is_idempotent(raw in any::<String>()) {
            let display = normalize_doc_no(&raw);
            prop_assert_eq!(normalize_doc_no(&display), display.clone());
            let id = doc_no_identity(&raw);
            prop_assert_eq!(doc_no_identity(&id), id.clone());
            prop_assert_eq!(doc_no_identity(&display), id);
        }

        #[test]
        fn doc_no_variants_share_identity(
            org in "[鄂武杭][公建发][管罚改]{1,2}",
            year in 1990u16..2100,
            seq in 1u32..100_000,
            pad in 0usize..4,
            di in any::<bool>(),
            brackets in proptest::sample::select(vec![
                ('〔', '〕'), ('[', ']'), ('【', '】'), ('﹝', '﹞'), ('（', '）'), ('(', ')'), ('［', '］'),
            ]),
        ) {
            let standard = format!("{org}〔{year}〕{seq}号");
            let variant = format!(
                "{org}{}{year}{}{}{}{seq}号 ",
                brackets.0, brackets.1, if di { "第" } else { "" }, "0".repeat(pad)
            );
            prop_assert_eq!(doc_no_identity(&variant), doc_no_identity(&standard));
            prop_assert_eq!(parse_doc_no(&variant), Some(DocNo { org, year, seq }));
        }

        #[test]
        fn mask_id_hides_the_middle(s in "[0-9X]{10,20}") {
            let m = mask_id(&s);
            prop_assert_eq!(m.chars().count(), s.chars().count());
            prop_assert_eq!(&m[..4], &s[..4]);
            prop_assert_eq!(&m[m.len() - 2..], &s[s.len() - 2..]);
            prop_assert!(m[4..m.len() - 2].chars().all(|c| c == '*'));
        }

        #[test]
        fn legacy_upgrade_yields_valid_ids(
            region in "[0-9]{6}", yy in 0u8..100, m in 1u8..=12, d in 1u8..=28, seq in "[0-9]{3}"
        ) {
            let s15 = format!("{region}{yy:02}{m:02}{d:02}{seq}");
            let s18 = upgrade_legacy_resident_id(&s15).unwrap();
            prop_assert!(check_resident_id(&s18).is_ok());
            prop_assert_eq!(check_resident_id(&s15), Err(IdError::Legacy15));
        }

        #[test]
        /// Every identifier format is ASCII, so no check may accept anything else, and none
        /// may panic on arbitrary input.
        #[test]
        fn checks_accept_only_ascii_and_never_panic(s in any::<String>()) {
            let accepted = [
                check_uscc(&s).is_ok(),
                check_org_code(&s).is_ok(),
                check_resident_id(&s).is_ok(),
                check_business_reg_no(&s).is_ok(),
                check_unified_deal_code(&s).is_ok(),
                check_gb2260_area(&s).is_ok(),
                check_cn_passport(&s).is_ok(),
                check_hk_macao_permit(&s).is_ok(),
                check_taiwan_permit(&s).is_ok(),
                check_foreigner_permanent_id(&s).is_ok(),
                upgrade_legacy_resident_id(&s).is_some(),
            ];
            prop_assert!(s.is_ascii() || !accepted.contains(&true));
            if let Some(doc) = parse_doc_no(&s) {
                prop_assert!(!doc.org.is_empty());
            }
            let n = s.chars().count();
            prop_assert_eq!(mask_id(&s).chars().count(), n);
            prop_assert_eq!(mask_name(&s).chars().count(), n);
            prop_assert_eq!(mask_phone(&s).chars().count(), n);
        }
    }
}
