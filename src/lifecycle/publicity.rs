//! Publicity tiers and periods of failed information (失信信息, domain-standards §3.2–§3.4).
//!
//! For a failed-information record (catalog items annotated `x-failed-info`: `admin_penalty`,
//! `dishonest_list_entry`, `violation_score`) this decides
//! - its tier — 轻微 / 一般 / 严重 — from the record's fields,
//! - the rule version that governs it, chosen by the record's decision date (发改委令2025年第36号
//!   from 2026-04-01, 发改办财金〔2019〕527号 before), and
//! - the minimum and maximum publicity end under that version,
//!
//! or that the record is not forwarded for publicity at all (轻微).
//!
//! Period arithmetic is `domain::calendar`'s (民法典 art. 201–203): start day not counted,
//! corresponding day or the month's last day; the inclusive/exclusive convention and rest-day
//! roll-over come from the process configuration (`[publicity]`).
//!
//! Classification of penalties (our encoding of the §3.2 examples, thresholds configurable):
//! 1. a tier declared by the source in `extensions.失信严重程度` wins — the deciding body
//!    classifies (谁认定谁修复), the gateway only derives a tier when none was sent;
//! 2. 严重: any category of `serious_categories` (吊销许可证件, 责令关闭, 限制从业 …), or fines plus
//!    confiscations of at least `serious_amount_min_10k_cny`;
//! 3. 轻微: only 警告 / 通报批评, optionally with a fine small enough for the simplified procedure
//!    (行政处罚法 art. 51: ≤ 200 CNY for a natural person, ≤ 3 000 CNY for an organisation);
//! 4. 一般: everything else (larger fines, confiscation, 暂扣许可证件 …).
//!
//! A `dishonest_list_entry` is 严重 by definition (严重失信主体名单). A `violation_score` has no
//! tier in the standards: it takes the configured `violation_score_tier`, and without one the
//! decision is an explicit error rather than a guess.

use std::collections::BTreeSet;

use jiff::civil::Date;
use serde::{Deserialize, Serialize};

use crate::domain::calendar::{Calendar, PeriodConvention, PeriodError, PeriodRule, PeriodUnit};
use crate::lifecycle::fields;
use crate::record::Fields;

/// Catalog items carrying failed information, with the field their period is anchored on
/// (their schema's `x-decision-date`; a test keeps the two in step).
pub const FAILED_INFO_ANCHORS: [(&str, &str); 3] = [
    ("admin_penalty", "decision_date"),
    ("dishonest_list_entry", "listed_on"),
    ("violation_score", "scored_on"),
];

/// The 2021 and pre-2021 category that may be either a suspension or a revocation; it is 严重
/// only when the penalty content says a licence was revoked (domain-fixtures §7.4).
const OLD_SUSPEND_OR_REVOKE: &str = "暂扣或者吊销许可证、暂扣或者吊销执照";
const REVOKE_MARKER: &str = "吊销";
const FINE: &str = "罚款";
const NATURAL_PERSON: &str = "自然人";

/// Publicity tier of failed information (Order 36 three-tier classification).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Tier {
    #[serde(rename = "轻微")]
    Minor,
    #[serde(rename = "一般")]
    General,
    #[serde(rename = "严重")]
    Serious,
}

impl Tier {
    /// The Chinese label used in records and routes (`severity = ["严重"]`).
    pub fn label(self) -> &'static str {
        match self {
            Tier::Minor => "轻微",
            Tier::General => "一般",
            Tier::Serious => "严重",
        }
    }

    pub fn from_label(label: &str) -> Option<Tier> {
        match label.trim() {
            "轻微" => Some(Tier::Minor),
            "一般" => Some(Tier::General),
            "严重" => Some(Tier::Serious),
            _ => None,
        }
    }
}

/// A publicity length such as `{ amount = 3, unit = "months" }`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Length {
    pub amount: u32,
    pub unit: PeriodUnit,
}

impl Length {
    fn months(self) -> u64 {
        match self.unit {
            PeriodUnit::Months => u64::from(self.amount),
            PeriodUnit::Years => u64::from(self.amount) * 12,
        }
    }
}

/// Minimum (repair possible after it) and maximum (publicity stops at it) of one tier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TierPeriods {
    pub min: Length,
    pub max: Length,
}

/// What the publicity period is counted from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Anchor {
    /// "自…决定之日起" (527号 ✅, Order 36 ○).
    #[default]
    DecisionDate,
    /// "自公示之日起" (SAMR 总局令第45号); needs the publication date from the caller.
    PublicationDate,
}

/// One version of the publicity rules, in force for decisions from `effective_from`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleVersionConfig {
    /// Stored with every computed date, e.g. `ndrc-order-36-2025`.
    pub id: String,
    pub effective_from: Date,
    #[serde(default)]
    pub anchor: Anchor,
    pub general: TierPeriods,
    pub serious: TierPeriods,
}

/// How penalties are classified; amounts in 万元 like the catalog.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClassificationConfig {
    /// Extension key a source may use to declare the tier itself.
    #[serde(default = "default_tier_extension_key")]
    pub tier_extension_key: String,
    /// Categories that alone make a penalty 轻微 (if nothing heavier is present).
    #[serde(default = "default_minor_categories")]
    pub minor_categories: Vec<String>,
    /// Categories that make a penalty 严重.
    #[serde(default = "default_serious_categories")]
    pub serious_categories: Vec<String>,
    /// Simplified-procedure fine limits (行政处罚法 art. 51): 200 CNY and 3 000 CNY.
    #[serde(default = "default_simplified_person")]
    pub simplified_fine_max_person_10k_cny: f64,
    #[serde(default = "default_simplified_org")]
    pub simplified_fine_max_org_10k_cny: f64,
    /// Fines plus confiscations from which a penalty is 严重 ("very large fines").
    #[serde(default = "default_serious_amount")]
    pub serious_amount_min_10k_cny: f64,
    /// Tier of a `violation_score` without a declared tier; `None` makes that an error.
    #[serde(default)]
    pub violation_score_tier: Option<Tier>,
}

fn default_tier_extension_key() -> String {
    "失信严重程度".to_owned()
}
fn default_minor_categories() -> Vec<String> {
    ["警告", "通报批评"].map(str::to_owned).to_vec()
}
fn default_serious_categories() -> Vec<String> {
    [
        "吊销许可证件",
        "降低资质等级",
        "限制开展生产经营活动",
        "责令停产停业",
        "责令关闭",
        "限制从业",
        "行政拘留",
    ]
    .map(str::to_owned)
    .to_vec()
}
fn default_simplified_person() -> f64 {
    0.02
}
fn default_simplified_org() -> f64 {
    0.3
}
fn default_serious_amount() -> f64 {
    100.0
}

impl Default for ClassificationConfig {
    fn default() -> Self {
        ClassificationConfig {
            tier_extension_key: default_tier_extension_key(),
            minor_categories: default_minor_categories(),
            serious_categories: default_serious_categories(),
            simplified_fine_max_person_10k_cny: default_simplified_person(),
            simplified_fine_max_org_10k_cny: default_simplified_org(),
            serious_amount_min_10k_cny: default_serious_amount(),
            violation_score_tier: None,
        }
    }
}

/// `[publicity]` of `config/credgate.toml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PublicityConfig {
    /// `corresponding_day` (2026-03-15 + 1 year = 2027-03-15) or `inclusive_day_before`
    /// (= 2027-03-14), for systems that count the start day.
    #[serde(default)]
    pub convention: PeriodConvention,
    /// Move an end on a statutory rest day to the next working day (民法典 art. 203). Off by
    /// default: the end of publicity is not an act anyone must perform by that day, and
    /// rolling over needs the end year's calendar, which is years away.
    #[serde(default)]
    pub roll_over_if_rest_day: bool,
    #[serde(default)]
    pub classification: ClassificationConfig,
    #[serde(default = "default_rule_versions")]
    pub rule_versions: Vec<RuleVersionConfig>,
}

impl Default for PublicityConfig {
    fn default() -> Self {
        PublicityConfig {
            convention: PeriodConvention::default(),
            roll_over_if_rest_day: false,
            classification: ClassificationConfig::default(),
            rule_versions: default_rule_versions(),
        }
    }
}

fn months(amount: u32) -> Length {
    Length { amount, unit: PeriodUnit::Months }
}
fn years(amount: u32) -> Length {
    Length { amount, unit: PeriodUnit::Years }
}

/// The two versions of domain-standards §3.1/§3.2; a date before both has no rule.
pub fn default_rule_versions() -> Vec<RuleVersionConfig> {
    vec![
        RuleVersionConfig {
            id: "ndrc-527-2019".to_owned(),
            // 527号 applies from 2019-07-01.
            effective_from: jiff::civil::date(2019, 7, 1),
            anchor: Anchor::DecisionDate,
            general: TierPeriods { min: months(3), max: years(1) },
            serious: TierPeriods { min: months(6), max: years(3) },
        },
        RuleVersionConfig {
            id: "ndrc-order-36-2025".to_owned(),
            effective_from: jiff::civil::date(2026, 4, 1),
            anchor: Anchor::DecisionDate,
            general: TierPeriods { min: months(3), max: years(1) },
            serious: TierPeriods { min: years(1), max: years(3) },
        },
    ]
}

/// Why a tier was chosen, kept with the decision for audit and for answering the subject.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "basis", rename_all = "snake_case")]
pub enum TierBasis {
    /// The source declared it in the named extension field.
    Declared {
        key: String,
    },
    /// 严重失信主体名单 entries are serious by definition.
    SevereList,
    /// Configured tier of an item without its own classification (`violation_score`).
    ItemDefault,
    SeriousCategory {
        category: String,
    },
    SeriousAmount {
        amount_10k_cny: f64,
        threshold_10k_cny: f64,
    },
    /// Only minor categories (警告, 通报批评).
    MinorCategories,
    /// Minor categories and a fine within the simplified-procedure limit.
    SimplifiedFine {
        amount_10k_cny: f64,
        limit_10k_cny: f64,
    },
    /// None of the above: larger fines, confiscation, suspension, other.
    General,
}

/// Why a record is not forwarded for publicity.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum NoPublicityReason {
    /// 轻微 failed information is not published (Order 36; warning-only penalties are not
    /// published under SAMR Order 45 either).
    MinorTier { basis: TierBasis },
}

/// The publicity outcome of one failed-information record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "decision", rename_all = "snake_case")]
pub enum PublicityDecision {
    Publish {
        tier: Tier,
        basis: TierBasis,
        rule_version: String,
        /// The day the period is counted from (decision or publication date).
        anchor: Date,
        /// Earliest end: repair can end publicity from this day on.
        min_end: Date,
        /// Publicity stops at this day at the latest.
        max_end: Date,
        /// `publicity_end_date` (CF_GSJZQ) as sent, when it differs from `max_end`, so the
        /// discrepancy can be reported to the source instead of silently overwritten.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        declared_end_differs: Option<Date>,
    },
    DoNotPublish {
        rule_version: String,
        reason: NoPublicityReason,
    },
}

/// How publicity of a record ended early.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "ended_by", rename_all = "snake_case")]
pub enum EarlyEnd {
    /// A credit repair took effect on this day.
    Repaired { on: Date },
    /// The decision was revoked (or the record retracted) on this day.
    Revoked { on: Date },
}

/// `publicity_status` of §3.2.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum PublicityStatus {
    /// Never forwarded for publicity (轻微).
    #[serde(rename = "不公示")]
    NotPublished,
    #[serde(rename = "公示中")]
    Active,
    #[serde(rename = "期满停止公示")]
    Expired,
    #[serde(rename = "已修复终止公示")]
    Repaired,
    #[serde(rename = "撤销")]
    Revoked,
}

/// A repair requested before the minimum period has run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("publicity can end by repair from {min_end} on, not on {on}")]
pub struct RepairTooEarly {
    pub on: Date,
    pub min_end: Date,
}

impl PublicityDecision {
    pub fn rule_version(&self) -> &str {
        match self {
            PublicityDecision::Publish { rule_version, .. }
            | PublicityDecision::DoNotPublish { rule_version, .. } => rule_version,
        }
    }

    /// The first day the record is no longer publicised when nothing ends it early: the day
    /// after `max_end` (publicity runs through its last day). The expiry timer fires then.
    pub fn stop_on(&self) -> Option<Date> {
        match self {
            PublicityDecision::Publish { max_end, .. } => {
                Some(max_end.tomorrow().unwrap_or(*max_end))
            }
            PublicityDecision::DoNotPublish { .. } => None,
        }
    }

    /// Whether a repair may end publicity on `on` (527号 and Order 36: only after the minimum
    /// period). Revocations are not limited by it.
    ///
    /// # Errors
    ///
    /// `on` is before `min_end`.
    pub fn check_repair(&self, on: Date) -> Result<(), RepairTooEarly> {
        match self {
            PublicityDecision::Publish { min_end, .. } if on < *min_end => {
                Err(RepairTooEarly { on, min_end: *min_end })
            }
            _ => Ok(()),
        }
    }

    /// The status on day `today`, given how (if at all) publicity ended early.
    pub fn status_on(&self, today: Date, early_end: Option<EarlyEnd>) -> PublicityStatus {
        let PublicityDecision::Publish { max_end, .. } = self else {
            return PublicityStatus::NotPublished;
        };
        match early_end {
            Some(EarlyEnd::Revoked { on }) if on <= today => PublicityStatus::Revoked,
            Some(EarlyEnd::Repaired { on }) if on <= today && on <= *max_end => {
                PublicityStatus::Repaired
            }
            _ if today > *max_end => PublicityStatus::Expired,
            _ => PublicityStatus::Active,
        }
    }
}

/// Why no decision could be computed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PublicityError {
    #[error("catalog item {0} carries no failed information")]
    NotFailedInfo(String),
    #[error("{field} is missing or not a date")]
    MissingAnchor { field: &'static str },
    #[error("the rule version {rule_version} counts from the publication date, which is unknown")]
    MissingPublicationDate { rule_version: String },
    #[error("no publicity rule version is in force on {0}")]
    NoRuleVersion(Date),
    #[error("declared tier `{value}` in extensions.{key} is not 轻微, 一般 or 严重")]
    UnknownDeclaredTier { key: String, value: String },
    #[error("no tier is configured for {0} records without a declared tier")]
    NoTierForItem(String),
    #[error(transparent)]
    Period(#[from] PeriodError),
}

/// A configuration problem found by [`PublicityPolicy::new`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("publicity: {0}")]
pub struct PublicityConfigError(pub String);

/// The compiled `[publicity]` configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct PublicityPolicy {
    convention: PeriodConvention,
    roll_over: bool,
    classification: ClassificationConfig,
    minor: BTreeSet<String>,
    serious: BTreeSet<String>,
    /// Sorted by `effective_from`, ascending, distinct.
    versions: Vec<RuleVersionConfig>,
}

impl Default for PublicityPolicy {
    fn default() -> Self {
        // The defaults are checked by a test, so this cannot fail; an empty policy would only
        // report "no rule version" for everything.
        PublicityPolicy::new(PublicityConfig::default()).unwrap_or_else(|_| PublicityPolicy {
            convention: PeriodConvention::default(),
            roll_over: false,
            classification: ClassificationConfig::default(),
            minor: BTreeSet::new(),
            serious: BTreeSet::new(),
            versions: Vec::new(),
        })
    }
}

impl PublicityPolicy {
    /// Validates the configuration: distinct version ids and start dates, non-zero lengths,
    /// `min ≤ max` per tier, finite non-negative thresholds.
    ///
    /// # Errors
    ///
    /// Every problem found.
    pub fn new(config: PublicityConfig) -> Result<PublicityPolicy, Vec<PublicityConfigError>> {
        let mut errors = Vec::new();
        let mut err = |m: String| errors.push(PublicityConfigError(m));
        let mut versions = config.rule_versions;
        versions.sort_by_key(|v| v.effective_from);
        if versions.is_empty() {
            err("rule_versions is empty".into());
        }
        let mut ids = BTreeSet::new();
        for pair in versions.windows(2) {
            if pair[0].effective_from == pair[1].effective_from {
                err(format!(
                    "rule versions {} and {} both start on {}",
                    pair[0].id, pair[1].id, pair[0].effective_from
                ));
            }
        }
        for v in &versions {
            if v.id.trim().is_empty() {
                err("a rule version has an empty id".into());
            }
            if !ids.insert(v.id.clone()) {
                err(format!("rule version id {} is used twice", v.id));
            }
            for (tier, p) in [("general", v.general), ("serious", v.serious)] {
                if p.min.amount == 0 || p.max.amount == 0 {
                    err(format!("{}.{tier}: lengths must be positive", v.id));
                }
                if p.min.months() > p.max.months() {
                    err(format!("{}.{tier}: min is longer than max", v.id));
                }
            }
        }
        let c = &config.classification;
        for (name, value) in [
            ("simplified_fine_max_person_10k_cny", c.simplified_fine_max_person_10k_cny),
            ("simplified_fine_max_org_10k_cny", c.simplified_fine_max_org_10k_cny),
            ("serious_amount_min_10k_cny", c.serious_amount_min_10k_cny),
        ] {
            if !value.is_finite() || value < 0.0 {
                err(format!("classification.{name} must be a non-negative number"));
            }
        }
        let minor: BTreeSet<String> = c.minor_categories.iter().cloned().collect();
        let serious: BTreeSet<String> = c.serious_categories.iter().cloned().collect();
        if let Some(both) = minor.intersection(&serious).next() {
            err(format!("classification: {both} is both a minor and a serious category"));
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(PublicityPolicy {
            convention: config.convention,
            roll_over: config.roll_over_if_rest_day,
            classification: config.classification,
            minor,
            serious,
            versions,
        })
    }

    /// The rule version in force on `date`: the latest one that started on or before it.
    pub fn version_for(&self, date: Date) -> Option<&RuleVersionConfig> {
        self.versions.iter().rev().find(|v| v.effective_from <= date)
    }

    /// The tier of a record of catalog item `item` and why.
    ///
    /// # Errors
    ///
    /// An item without failed information, an unknown declared tier, or a `violation_score`
    /// without a configured default tier.
    pub fn classify(
        &self,
        item: &str,
        fields: &Fields,
    ) -> Result<(Tier, TierBasis), PublicityError> {
        if !FAILED_INFO_ANCHORS.iter().any(|(i, _)| *i == item) {
            return Err(PublicityError::NotFailedInfo(item.to_owned()));
        }
        let key = &self.classification.tier_extension_key;
        let declared = fields
            .get("extensions")
            .and_then(|e| e.get(key.as_str()))
            .and_then(serde_json::Value::as_str)
            .map(str::trim)
            .filter(|s| !s.is_empty());
        if let Some(value) = declared {
            let tier = Tier::from_label(value).ok_or_else(|| {
                PublicityError::UnknownDeclaredTier { key: key.clone(), value: value.to_owned() }
            })?;
            return Ok((tier, TierBasis::Declared { key: key.clone() }));
        }
        match item {
            "dishonest_list_entry" => Ok((Tier::Serious, TierBasis::SevereList)),
            "admin_penalty" => Ok(self.classify_penalty(fields)),
            _ => self
                .classification
                .violation_score_tier
                .map(|t| (t, TierBasis::ItemDefault))
                .ok_or_else(|| PublicityError::NoTierForItem(item.to_owned())),
        }
    }

    fn classify_penalty(&self, fields: &Fields) -> (Tier, TierBasis) {
        let c = &self.classification;
        let categories = fields::list(fields, "penalty_categories");
        let content = fields::text(fields, "penalty_content").unwrap_or_default();
        for &cat in &categories {
            let revoked_old_style = cat == OLD_SUSPEND_OR_REVOKE && content.contains(REVOKE_MARKER);
            if self.serious.contains(cat) || revoked_old_style {
                return (Tier::Serious, TierBasis::SeriousCategory { category: cat.to_owned() });
            }
        }
        let fine = fields::number(fields, "fine_amount_10k_cny").unwrap_or(0.0);
        let confiscated = fields::number(fields, "confiscation_amount_10k_cny").unwrap_or(0.0);
        let amount = fine + confiscated;
        if amount >= c.serious_amount_min_10k_cny {
            return (
                Tier::Serious,
                TierBasis::SeriousAmount {
                    amount_10k_cny: amount,
                    threshold_10k_cny: c.serious_amount_min_10k_cny,
                },
            );
        }
        let has_fine = categories.contains(&FINE);
        let only_minor_or_fine = !categories.is_empty()
            && categories.iter().all(|c| *c == FINE || self.minor.contains(*c));
        if only_minor_or_fine && !has_fine {
            return (Tier::Minor, TierBasis::MinorCategories);
        }
        if only_minor_or_fine {
            let person = fields::text(fields, "subject_category") == Some(NATURAL_PERSON);
            let limit = if person {
                c.simplified_fine_max_person_10k_cny
            } else {
                c.simplified_fine_max_org_10k_cny
            };
            // A fine without an amount cannot be shown to be small (SG-10 reports it).
            if let Some(fine) = fields::number(fields, "fine_amount_10k_cny")
                && fine <= limit
                && confiscated == 0.0
            {
                return (
                    Tier::Minor,
                    TierBasis::SimplifiedFine { amount_10k_cny: fine, limit_10k_cny: limit },
                );
            }
        }
        (Tier::General, TierBasis::General)
    }

    /// The publicity decision for a record of `item`.
    ///
    /// `publication_date` is only needed by rule versions anchored on publication. The
    /// calendar is only consulted when roll-over is configured.
    ///
    /// # Errors
    ///
    /// See [`PublicityError`]; an end in a year without calendar data under roll-over is
    /// reported, never guessed.
    pub fn decide(
        &self,
        cal: &Calendar,
        item: &str,
        fields: &Fields,
        publication_date: Option<Date>,
    ) -> Result<PublicityDecision, PublicityError> {
        let Some(&(_, anchor_field)) = FAILED_INFO_ANCHORS.iter().find(|(i, _)| *i == item) else {
            return Err(PublicityError::NotFailedInfo(item.to_owned()));
        };
        let decided = fields::date(fields, anchor_field)
            .ok_or(PublicityError::MissingAnchor { field: anchor_field })?;
        // The rule version follows the decision date, whatever the period is counted from:
        // the rules in force when the authority decided apply (standards §3.2 "rule versioning").
        let version = self.version_for(decided).ok_or(PublicityError::NoRuleVersion(decided))?;
        let (tier, basis) = self.classify(item, fields)?;
        let periods = match tier {
            Tier::Minor => {
                return Ok(PublicityDecision::DoNotPublish {
                    rule_version: version.id.clone(),
                    reason: NoPublicityReason::MinorTier { basis },
                });
            }
            Tier::General => version.general,
            Tier::Serious => version.serious,
        };
        let anchor = match version.anchor {
            Anchor::DecisionDate => decided,
            Anchor::PublicationDate => publication_date.ok_or_else(|| {
                PublicityError::MissingPublicationDate { rule_version: version.id.clone() }
            })?,
        };
        let min_end = self.end(cal, anchor, periods.min)?;
        let max_end = self.end(cal, anchor, periods.max)?;
        let declared = fields::date(fields, "publicity_end_date");
        Ok(PublicityDecision::Publish {
            tier,
            basis,
            rule_version: version.id.clone(),
            anchor,
            min_end,
            max_end,
            declared_end_differs: declared.filter(|d| *d != max_end),
        })
    }

    fn end(&self, cal: &Calendar, anchor: Date, length: Length) -> Result<Date, PeriodError> {
        PeriodRule {
            amount: length.amount,
            unit: length.unit,
            convention: self.convention,
            roll_over_if_rest_day: self.roll_over,
        }
        .end(cal, anchor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const CALENDAR_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/config/calendars");

    fn cal() -> Calendar {
        Calendar::load_dir(CALENDAR_DIR).expect("shipped calendars load")
    }

    fn d(s: &str) -> Date {
        s.parse().expect("date")
    }

    fn fields(v: serde_json::Value) -> Fields {
        match v {
            serde_json::Value::Object(m) => m,
            _ => panic!("object expected"),
        }
    }

    /// domain-fixtures §7.1 as a canonical record.
    fn penalty_7_1() -> Fields {
        fields(json!({
            "subject_name": "湖北示例建设工程有限公司",
            "subject_category": "法人及非法人组织",
            "subject_uscc": "91420100MA4P7Q8R8N",
            "decision_doc_no": "鄂公管罚〔2026〕12号",
            "penalty_categories": ["罚款"],
            "penalty_content": "罚款人民币12345.67元",
            "fine_amount_10k_cny": 1.234567,
            "decision_date": "2026-09-28",
            "penalty_valid_until": "2026-10-28",
            "publicity_end_date": "2027-09-28",
            "authority_uscc": "11420000MB0P1Q2R33",
        }))
    }

    fn policy() -> PublicityPolicy {
        PublicityPolicy::new(PublicityConfig::default()).expect("defaults are valid")
    }

    fn with(mut f: Fields, key: &str, value: serde_json::Value) -> Fields {
        f.insert(key.to_owned(), value);
        f
    }

    #[test]
    fn fixture_7_1_general_under_order_36_matches_declared_end() {
        let decision = policy().decide(&cal(), "admin_penalty", &penalty_7_1(), None).unwrap();
        assert_eq!(
            decision,
            PublicityDecision::Publish {
                tier: Tier::General,
                basis: TierBasis::General,
                rule_version: "ndrc-order-36-2025".into(),
                anchor: d("2026-09-28"),
                min_end: d("2026-12-28"),
                max_end: d("2027-09-28"),
                declared_end_differs: None,
            }
        );
    }

    #[test]
    fn status_expiry_and_repair_window() {
        let decision = policy().decide(&cal(), "admin_penalty", &penalty_7_1(), None).unwrap();
        // min_end 2026-12-28, max_end 2027-09-28.
        assert_eq!(decision.stop_on(), Some(d("2027-09-29")));
        assert_eq!(decision.status_on(d("2027-09-28"), None), PublicityStatus::Active);
        assert_eq!(decision.status_on(d("2027-09-29"), None), PublicityStatus::Expired);
        assert_eq!(
            decision.check_repair(d("2026-12-27")),
            Err(RepairTooEarly { on: d("2026-12-27"), min_end: d("2026-12-28") })
        );
        assert_eq!(decision.check_repair(d("2026-12-28")), Ok(()));
        let repaired = Some(EarlyEnd::Repaired { on: d("2027-01-05") });
        assert_eq!(decision.status_on(d("2027-01-04"), repaired), PublicityStatus::Active);
        assert_eq!(decision.status_on(d("2027-01-05"), repaired), PublicityStatus::Repaired);
        let revoked = Some(EarlyEnd::Revoked { on: d("2026-10-20") });
        assert_eq!(decision.status_on(d("2028-01-01"), revoked), PublicityStatus::Revoked);
        // A repair recorded after expiry does not rewrite history.
        let late = Some(EarlyEnd::Repaired { on: d("2027-10-10") });
        assert_eq!(decision.status_on(d("2027-10-11"), late), PublicityStatus::Expired);
        let minor = PublicityDecision::DoNotPublish {
            rule_version: "x".into(),
            reason: NoPublicityReason::MinorTier { basis: TierBasis::MinorCategories },
        };
        assert_eq!(minor.status_on(d("2027-01-01"), None), PublicityStatus::NotPublished);
        assert_eq!(minor.stop_on(), None);
        assert_eq!(serde_json::to_value(PublicityStatus::Repaired).unwrap(), "已修复终止公示");
    }

    #[test]
    fn fixture_7_2_warning_to_natural_person_is_not_published() {
        let f = fields(json!({
            "subject_category": "自然人",
            "penalty_categories": ["警告"],
            "decision_date": "2026-10-09",
        }));
        let decision = policy().decide(&cal(), "admin_penalty", &f, None).unwrap();
        assert_eq!(
            decision,
            PublicityDecision::DoNotPublish {
                rule_version: "ndrc-order-36-2025".into(),
                reason: NoPublicityReason::MinorTier { basis: TierBasis::MinorCategories },
            }
        );
    }

    #[test]
    fn rule_version_follows_decision_date() {
        let p = policy();
        assert_eq!(p.version_for(d("2026-03-31")).map(|v| v.id.as_str()), Some("ndrc-527-2019"));
        assert_eq!(
            p.version_for(d("2026-04-01")).map(|v| v.id.as_str()),
            Some("ndrc-order-36-2025")
        );
        assert_eq!(p.version_for(d("2019-07-01")).map(|v| v.id.as_str()), Some("ndrc-527-2019"));
        assert!(p.version_for(d("2019-06-30")).is_none());
        let old = with(penalty_7_1(), "decision_date", json!("2019-06-30"));
        assert_eq!(
            p.decide(&cal(), "admin_penalty", &old, None),
            Err(PublicityError::NoRuleVersion(d("2019-06-30")))
        );
    }

    /// domain-standards §3.4: decision 2026-03-15 + 1 year → 2027-03-15, or 2027-03-14 when the
    /// start day is counted. 2026-03-15 is before Order 36, so 527号 periods apply: serious
    /// min 6 months, max 3 years; general min 3 months, max 1 year.
    #[test]
    fn worked_example_3_4_both_conventions_and_both_versions() {
        let general = with(penalty_7_1(), "decision_date", json!("2026-03-15"));
        let general = with(general, "publicity_end_date", json!("2027-03-15"));
        let serious = with(general.clone(), "penalty_categories", json!(["罚款", "吊销许可证件"]));
        let ends =
            |p: &PublicityPolicy, f: &Fields| match p.decide(&cal(), "admin_penalty", f, None) {
                Ok(PublicityDecision::Publish { rule_version, min_end, max_end, tier, .. }) => {
                    (rule_version, tier, min_end, max_end)
                }
                other => panic!("expected publish, got {other:?}"),
            };
        let p = policy();
        assert_eq!(
            ends(&p, &general),
            ("ndrc-527-2019".into(), Tier::General, d("2026-06-15"), d("2027-03-15"))
        );
        assert_eq!(
            ends(&p, &serious),
            ("ndrc-527-2019".into(), Tier::Serious, d("2026-09-15"), d("2029-03-15"))
        );
        let inclusive = PublicityPolicy::new(PublicityConfig {
            convention: PeriodConvention::InclusiveDayBefore,
            ..PublicityConfig::default()
        })
        .unwrap();
        assert_eq!(
            ends(&inclusive, &general),
            ("ndrc-527-2019".into(), Tier::General, d("2026-06-14"), d("2027-03-14"))
        );
        // The inclusive end differs from the CF_GSJZQ sent, and the decision says so.
        match inclusive.decide(&cal(), "admin_penalty", &general, None).unwrap() {
            PublicityDecision::Publish { declared_end_differs, .. } => {
                assert_eq!(declared_end_differs, Some(d("2027-03-15")));
            }
            other => panic!("{other:?}"),
        }
        // Same record decided under Order 36: serious minimum becomes one year.
        let serious_36 = with(serious, "decision_date", json!("2026-04-15"));
        assert_eq!(
            ends(&p, &serious_36),
            ("ndrc-order-36-2025".into(), Tier::Serious, d("2027-04-15"), d("2029-04-15"))
        );
    }

    /// §3.4's 信用中国 sample: CF_JDRQ 2019-10-10, CF_GSJZQ 2020-10-17. The standards say "decision
    /// date + 1 year", but 2020-10-17 is CF_YXQ (2019-10-17) + 1 year; we anchor on the decision
    /// date as 527号 says and surface the mismatch instead of adopting the sample's anchor.
    #[test]
    fn xinyong_sample_declared_end_mismatch_is_reported() {
        let f = fields(json!({
            "subject_category": "法人及非法人组织",
            "penalty_categories": ["罚款"],
            "penalty_content": "罚款2000元",
            "fine_amount_10k_cny": 0.2,
            "decision_date": "2019-10-10",
            "penalty_valid_until": "2019-10-17",
            "publicity_end_date": "2020-10-17",
        }));
        // 2 000 CNY ≤ 3 000 CNY for an organisation: simplified procedure, 轻微 under our
        // classification; make the threshold lower to exercise the 一般 path of the sample.
        let strict = PublicityPolicy::new(PublicityConfig {
            classification: ClassificationConfig {
                simplified_fine_max_org_10k_cny: 0.1,
                ..ClassificationConfig::default()
            },
            ..PublicityConfig::default()
        })
        .unwrap();
        match strict.decide(&cal(), "admin_penalty", &f, None).unwrap() {
            PublicityDecision::Publish { max_end, declared_end_differs, rule_version, .. } => {
                assert_eq!(rule_version, "ndrc-527-2019");
                assert_eq!(max_end, d("2020-10-10"));
                assert_eq!(declared_end_differs, Some(d("2020-10-17")));
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            policy().decide(&cal(), "admin_penalty", &f, None),
            Ok(PublicityDecision::DoNotPublish { .. })
        ));
    }

    #[test]
    fn month_end_and_leap_day_periods() {
        let p = policy();
        // 2026-08-31 + 3 months → 11-30 (no 31st); + 1 year → 2027-08-31.
        let f = with(penalty_7_1(), "decision_date", json!("2026-08-31"));
        match p.decide(&cal(), "admin_penalty", &f, None).unwrap() {
            PublicityDecision::Publish { min_end, max_end, .. } => {
                assert_eq!((min_end, max_end), (d("2026-11-30"), d("2027-08-31")));
            }
            other => panic!("{other:?}"),
        }
        // A serious list entry listed on 2028-02-29: +1 year → 2029-02-28, +3 years → 2031-02-28.
        let entry = fields(json!({ "listed_on": "2028-02-29" }));
        match p.decide(&cal(), "dishonest_list_entry", &entry, None).unwrap() {
            PublicityDecision::Publish { tier, basis, min_end, max_end, .. } => {
                assert_eq!((tier, basis), (Tier::Serious, TierBasis::SevereList));
                assert_eq!((min_end, max_end), (d("2029-02-28"), d("2031-02-28")));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn roll_over_uses_calendar_and_reports_missing_years() {
        let rolling = PublicityPolicy::new(PublicityConfig {
            roll_over_if_rest_day: true,
            ..PublicityConfig::default()
        })
        .unwrap();
        // Decided 2026-07-04 (Sat, Order 36, general): min end 2026-10-04 is inside the 国庆
        // block → 2026-10-08; the max end falls in 2027, which has no calendar yet.
        let f = with(penalty_7_1(), "decision_date", json!("2026-07-04"));
        assert_eq!(
            rolling.decide(&cal(), "admin_penalty", &f, None),
            Err(PublicityError::Period(PeriodError::CalendarUnavailable(
                crate::domain::calendar::CalendarUnavailable { year: 2027 }
            )))
        );
        let short = PublicityPolicy::new(PublicityConfig {
            roll_over_if_rest_day: true,
            rule_versions: vec![RuleVersionConfig {
                id: "short".into(),
                effective_from: d("2026-01-01"),
                anchor: Anchor::DecisionDate,
                general: TierPeriods { min: months(3), max: months(4) },
                serious: TierPeriods { min: months(3), max: months(4) },
            }],
            ..PublicityConfig::default()
        })
        .unwrap();
        match short.decide(&cal(), "admin_penalty", &f, None).unwrap() {
            PublicityDecision::Publish { min_end, max_end, .. } => {
                assert_eq!(min_end, d("2026-10-08"));
                assert_eq!(max_end, d("2026-11-04"));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn penalty_classification() {
        let p = policy();
        let tier = |f: Fields| p.classify("admin_penalty", &f).unwrap();
        let base = penalty_7_1();
        // Serious by category, also the old combined category when content says 吊销.
        assert_eq!(
            tier(with(base.clone(), "penalty_categories", json!(["罚款", "限制从业"]))),
            (Tier::Serious, TierBasis::SeriousCategory { category: "限制从业".into() })
        );
        let old = with(base.clone(), "penalty_categories", json!([OLD_SUSPEND_OR_REVOKE]));
        assert_eq!(tier(old.clone()).0, Tier::General);
        let old = with(old, "penalty_content", json!("吊销安全生产许可证"));
        assert_eq!(tier(old).0, Tier::Serious);
        // Serious by amount: fine + confiscation ≥ 100 万元.
        let big = with(base.clone(), "fine_amount_10k_cny", json!(60.0));
        let big = with(big, "penalty_categories", json!(["罚款", "没收违法所得"]));
        assert_eq!(tier(big.clone()).0, Tier::General);
        let big = with(big, "confiscation_amount_10k_cny", json!(40.0));
        assert_eq!(
            tier(big),
            (
                Tier::Serious,
                TierBasis::SeriousAmount { amount_10k_cny: 100.0, threshold_10k_cny: 100.0 }
            )
        );
        // Simplified-procedure fines: 3 000 CNY for an organisation, 200 CNY for a person.
        let small = with(base.clone(), "fine_amount_10k_cny", json!(0.3));
        let small = with(small, "penalty_categories", json!(["警告", "罚款"]));
        assert_eq!(
            tier(small.clone()),
            (Tier::Minor, TierBasis::SimplifiedFine { amount_10k_cny: 0.3, limit_10k_cny: 0.3 })
        );
        let person = with(small.clone(), "subject_category", json!("自然人"));
        assert_eq!(tier(person.clone()).0, Tier::General);
        assert_eq!(tier(with(person, "fine_amount_10k_cny", json!(0.02))).0, Tier::Minor);
        // A fine without amount cannot be shown small.
        let mut no_amount = small.clone();
        no_amount.remove("fine_amount_10k_cny");
        assert_eq!(tier(no_amount).0, Tier::General);
        // 通报批评 alone is minor; with confiscation it is general.
        assert_eq!(
            tier(with(base.clone(), "penalty_categories", json!(["通报批评"]))).0,
            Tier::Minor
        );
        assert_eq!(
            tier(with(base.clone(), "penalty_categories", json!(["通报批评", "没收非法财物"]))).0,
            Tier::General
        );
        // No categories at all (schema error upstream) is not silently minor.
        assert_eq!(tier(with(base, "penalty_categories", json!([]))).0, Tier::General);
    }

    #[test]
    fn declared_tier_wins_and_unknown_is_an_error() {
        let p = policy();
        let f = with(penalty_7_1(), "extensions", json!({ "失信严重程度": "严重" }));
        assert_eq!(
            p.classify("admin_penalty", &f).unwrap(),
            (Tier::Serious, TierBasis::Declared { key: "失信严重程度".into() })
        );
        let f = with(penalty_7_1(), "extensions", json!({ "失信严重程度": "很严重" }));
        assert_eq!(
            p.classify("admin_penalty", &f),
            Err(PublicityError::UnknownDeclaredTier {
                key: "失信严重程度".into(),
                value: "很严重".into()
            })
        );
        let declared_minor = with(penalty_7_1(), "extensions", json!({ "失信严重程度": "轻微" }));
        assert!(matches!(
            p.decide(&cal(), "admin_penalty", &declared_minor, None),
            Ok(PublicityDecision::DoNotPublish { .. })
        ));
    }

    #[test]
    fn items_without_classification() {
        let p = policy();
        let score = fields(json!({ "scored_on": "2026-05-06", "points": 3 }));
        assert_eq!(
            p.decide(&cal(), "violation_score", &score, None),
            Err(PublicityError::NoTierForItem("violation_score".into()))
        );
        let configured = PublicityPolicy::new(PublicityConfig {
            classification: ClassificationConfig {
                violation_score_tier: Some(Tier::General),
                ..ClassificationConfig::default()
            },
            ..PublicityConfig::default()
        })
        .unwrap();
        assert!(matches!(
            configured.decide(&cal(), "violation_score", &score, None),
            Ok(PublicityDecision::Publish { tier: Tier::General, .. })
        ));
        assert_eq!(
            p.decide(&cal(), "admin_license", &penalty_7_1(), None),
            Err(PublicityError::NotFailedInfo("admin_license".into()))
        );
        let no_date = with(penalty_7_1(), "decision_date", json!("2026-13-01"));
        assert_eq!(
            p.decide(&cal(), "admin_penalty", &no_date, None),
            Err(PublicityError::MissingAnchor { field: "decision_date" })
        );
    }

    #[test]
    fn publication_anchor_needs_the_publication_date() {
        let mut versions = default_rule_versions();
        versions[1].anchor = Anchor::PublicationDate;
        let p = PublicityPolicy::new(PublicityConfig {
            rule_versions: versions,
            ..PublicityConfig::default()
        })
        .unwrap();
        assert_eq!(
            p.decide(&cal(), "admin_penalty", &penalty_7_1(), None),
            Err(PublicityError::MissingPublicationDate {
                rule_version: "ndrc-order-36-2025".into()
            })
        );
        match p.decide(&cal(), "admin_penalty", &penalty_7_1(), Some(d("2026-10-09"))).unwrap() {
            PublicityDecision::Publish { anchor, max_end, .. } => {
                assert_eq!((anchor, max_end), (d("2026-10-09"), d("2027-10-09")));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn config_from_toml_and_validation() {
        let text = r#"
convention = "inclusive_day_before"
[classification]
serious_amount_min_10k_cny = 50.0
violation_score_tier = "一般"
[[rule_versions]]
id = "a"
effective_from = "2019-07-01"
general = { min = { amount = 3, unit = "months" }, max = { amount = 1, unit = "years" } }
serious = { min = { amount = 6, unit = "months" }, max = { amount = 3, unit = "years" } }
"#;
        let cfg: PublicityConfig = toml::from_str(text).expect("parses");
        assert_eq!(cfg.classification.violation_score_tier, Some(Tier::General));
        assert_eq!(cfg.classification.serious_categories, default_serious_categories());
        assert!(PublicityPolicy::new(cfg.clone()).is_ok());

        let mut bad = cfg.clone();
        bad.rule_versions[0].general.min = years(2);
        bad.rule_versions
            .push(RuleVersionConfig { id: "a".into(), ..bad.rule_versions[0].clone() });
        bad.classification.serious_amount_min_10k_cny = f64::NAN;
        bad.classification.minor_categories.push("责令关闭".into());
        let errors = PublicityPolicy::new(bad).unwrap_err();
        let text: Vec<String> = errors.iter().map(ToString::to_string).collect();
        assert!(text.iter().any(|e| e.contains("both start on")), "{text:?}");
        assert!(text.iter().any(|e| e.contains("used twice")), "{text:?}");
        assert!(text.iter().any(|e| e.contains("min is longer than max")), "{text:?}");
        assert!(text.iter().any(|e| e.contains("non-negative")), "{text:?}");
        assert!(text.iter().any(|e| e.contains("both a minor and a serious")), "{text:?}");
        assert!(toml::from_str::<PublicityConfig>("unknown = 1").is_err());
        assert_eq!(PublicityPolicy::default(), policy());
    }

    /// The anchor table must match each schema's `x-decision-date` and `x-failed-info`.
    #[test]
    fn anchors_match_schema_annotations() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/schemas");
        let mut failed = Vec::new();
        for entry in std::fs::read_dir(dir).expect("schemas dir") {
            let path = entry.expect("entry").path().join("1.schema.json");
            let text = std::fs::read_to_string(&path).expect("schema");
            let schema: serde_json::Value = serde_json::from_str(&text).expect("json");
            if schema["x-failed-info"] == json!(true) {
                let item = path.parent().and_then(|p| p.file_name()).expect("item dir");
                failed.push((
                    item.to_string_lossy().into_owned(),
                    schema["x-decision-date"].as_str().unwrap_or_default().to_owned(),
                ));
            }
        }
        failed.sort();
        let mut ours: Vec<(String, String)> =
            FAILED_INFO_ANCHORS.iter().map(|(i, f)| ((*i).to_owned(), (*f).to_owned())).collect();
        ours.sort();
        assert_eq!(failed, ours);
    }

    proptest::proptest! {
        /// For any decision day from 527号 on, both conventions, any fine: the window is
        /// ordered (anchor < min_end ≤ max_end), the version is the one in force on the
        /// decision day, and the inclusive end is exactly one day before the corresponding one.
        #[test]
        fn windows_are_ordered_and_versioned(offset in 0i64..3000, fine in 0.0f64..200.0, person in proptest::bool::ANY) {
            let decided = d("2019-07-01").checked_add(jiff::Span::new().days(offset)).expect("date");
            let f = fields(json!({
                "subject_category": if person { "自然人" } else { "法人及非法人组织" },
                "penalty_categories": ["罚款"],
                "fine_amount_10k_cny": fine,
                "decision_date": decided.to_string(),
            }));
            let corresponding = policy();
            let inclusive = PublicityPolicy::new(PublicityConfig {
                convention: PeriodConvention::InclusiveDayBefore,
                ..PublicityConfig::default()
            }).expect("valid");
            let a = corresponding.decide(&cal(), "admin_penalty", &f, None).expect("decides");
            let b = inclusive.decide(&cal(), "admin_penalty", &f, None).expect("decides");
            let expected_version = if decided >= d("2026-04-01") { "ndrc-order-36-2025" } else { "ndrc-527-2019" };
            proptest::prop_assert_eq!(a.rule_version(), expected_version);
            match (a, b) {
                (
                    PublicityDecision::Publish { anchor, min_end, max_end, tier, .. },
                    PublicityDecision::Publish { min_end: min_i, max_end: max_i, tier: tier_i, .. },
                ) => {
                    proptest::prop_assert_eq!(tier, tier_i);
                    proptest::prop_assert!(anchor < min_end && min_end <= max_end);
                    proptest::prop_assert_eq!(min_i.tomorrow().expect("date"), min_end);
                    proptest::prop_assert_eq!(max_i.tomorrow().expect("date"), max_end);
                    proptest::prop_assert_eq!(tier == Tier::Serious, fine >= 100.0);
                }
                (PublicityDecision::DoNotPublish { .. }, PublicityDecision::DoNotPublish { .. }) => {
                    let limit = if person { 0.02 } else { 0.3 };
                    proptest::prop_assert!(fine <= limit, "{} above {}", fine, limit);
                }
                (a, b) => proptest::prop_assert!(false, "conventions disagree on publishing: {a:?} / {b:?}"),
            }
        }
    }

    #[test]
    fn decision_serialises_with_chinese_tier() {
        let decision = policy().decide(&cal(), "admin_penalty", &penalty_7_1(), None).unwrap();
        let v = serde_json::to_value(&decision).unwrap();
        assert_eq!(v["decision"], "publish");
        assert_eq!(v["tier"], "一般");
        assert_eq!(v["max_end"], "2027-09-28");
        let back: PublicityDecision = serde_json::from_value(v).unwrap();
        assert_eq!(back, decision);
    }
}
