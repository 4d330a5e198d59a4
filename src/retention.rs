//! Retention policy (issue 5 item 5): how long the store keeps each catalog item's bodies
//! (canonical records, dead-lettered payloads, rejected originals) and its metadata (lineage
//! rows, copies, attempts, dead-letter rows), and the statutory minimums no configuration may
//! go below. Pure: `config::compile` checks it, `runtime::retention` applies it with the
//! store's batched purges.
//!
//! Statutory minimums (domain-standards §3, reliability.md "Audit trail"):
//! - metadata of every item ≥ 184 days: 网络安全法 art. 21 requires network logs to be kept at
//!   least 6 months (the longest 6 months are 184 days);
//! - bodies of failed information (`lifecycle::publicity::FAILED_INFO_ANCHORS`) ≥ the longest
//!   maximum publicity period of the configured rule versions (3 years under 527号 and
//!   Order 36): the record must still be there when its publicity ends, is repaired or
//!   retracted; counted as 366 days a year and 31 a month, so never short;
//! - metadata ≥ bodies: a body lives in its metadata row.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::domain::calendar::PeriodUnit;
use crate::lifecycle::publicity::{FAILED_INFO_ANCHORS, PublicityConfig};

/// 网络安全法 art. 21: network logs ≥ 6 months.
pub const METADATA_MIN_DAYS: u32 = 184;

/// `[retention]` of `credgate.toml` as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionSection {
    /// Off: nothing is ever purged.
    #[serde(default = "default_true")]
    pub enabled: bool,
    #[serde(default = "default_days")]
    pub bodies_days: u32,
    #[serde(default = "default_days")]
    pub metadata_days: u32,
    /// Rows per statement: short transactions that never hold ingest's writes for long.
    #[serde(default = "default_batch")]
    pub batch_rows: u32,
    /// Pause between two batches.
    #[serde(default = "default_pause")]
    pub pause_ms: u64,
    /// How often a purge pass runs.
    #[serde(default = "default_interval")]
    pub interval_secs: u64,
    /// Per catalog item overrides.
    #[serde(default)]
    pub items: BTreeMap<String, ItemOverride>,
}

impl Default for RetentionSection {
    fn default() -> Self {
        RetentionSection {
            enabled: true,
            bodies_days: default_days(),
            metadata_days: default_days(),
            batch_rows: default_batch(),
            pause_ms: default_pause(),
            interval_secs: default_interval(),
            items: BTreeMap::new(),
        }
    }
}

/// `[retention.items.<catalog item>]`.
#[derive(Debug, Clone, Copy, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ItemOverride {
    pub bodies_days: Option<u32>,
    pub metadata_days: Option<u32>,
}

fn default_true() -> bool {
    true
}
/// Five years: above every statutory minimum, so the default configuration passes `check`.
fn default_days() -> u32 {
    1827
}
fn default_batch() -> u32 {
    500
}
fn default_pause() -> u64 {
    200
}
fn default_interval() -> u64 {
    3600
}

/// Days one item is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct ItemRetention {
    pub bodies_days: u32,
    pub metadata_days: u32,
}

/// The compiled policy.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RetentionPolicy {
    pub enabled: bool,
    /// Every catalog item, with its days.
    pub items: BTreeMap<String, ItemRetention>,
    /// For what has no catalog item (rejected originals, dedup keys).
    pub default: ItemRetention,
    pub batch_rows: u32,
    pub pause_ms: u64,
    pub interval_secs: u64,
}

impl Default for RetentionPolicy {
    fn default() -> Self {
        let section = RetentionSection::default();
        RetentionPolicy {
            enabled: false,
            items: BTreeMap::new(),
            default: ItemRetention {
                bodies_days: section.bodies_days,
                metadata_days: section.metadata_days,
            },
            batch_rows: section.batch_rows,
            pause_ms: section.pause_ms,
            interval_secs: section.interval_secs,
        }
    }
}

/// The statutory minimum of one item, with why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Minimum {
    pub bodies_days: u32,
    pub bodies_why: String,
    pub metadata_days: u32,
}

/// The minimums for `item` under the configured publicity rules.
pub fn minimum(item: &str, publicity: &PublicityConfig) -> Minimum {
    let failed_info = FAILED_INFO_ANCHORS.iter().any(|(i, _)| *i == item);
    let (bodies_days, bodies_why) = if failed_info {
        let longest = publicity
            .rule_versions
            .iter()
            .flat_map(|v| [v.general.max, v.serious.max])
            .map(|l| match l.unit {
                PeriodUnit::Years => l.amount.saturating_mul(366),
                PeriodUnit::Months => l.amount.saturating_mul(31),
            })
            .max()
            .unwrap_or(0);
        (longest, "the longest maximum publicity period of [publicity] rule_versions".to_owned())
    } else {
        (1, String::new())
    };
    Minimum { bodies_days, bodies_why, metadata_days: METADATA_MIN_DAYS }
}

impl RetentionPolicy {
    /// Resolves the days of every catalog item and checks them against the minimums.
    ///
    /// # Errors
    ///
    /// Every item below a minimum (naming the item and the minimum), unknown items, bad sizes.
    pub fn compile(
        section: &RetentionSection,
        publicity: &PublicityConfig,
        catalog_items: &[String],
    ) -> Result<RetentionPolicy, Vec<String>> {
        let mut errors = Vec::new();
        for name in section.items.keys() {
            if !catalog_items.contains(name) {
                errors.push(format!("retention.items.{name}: not a catalog item"));
            }
        }
        if section.batch_rows == 0 || section.batch_rows > 10_000 {
            errors.push("retention.batch_rows: 1..=10000".into());
        }
        if section.interval_secs == 0 {
            errors.push("retention.interval_secs: at least 1".into());
        }
        let default = ItemRetention {
            bodies_days: section.bodies_days,
            metadata_days: section.metadata_days,
        };
        if default.metadata_days < METADATA_MIN_DAYS {
            errors.push(format!(
                "retention.metadata_days = {}: below the statutory minimum of {METADATA_MIN_DAYS} days (网络安全法 art. 21, logs ≥ 6 months)",
                default.metadata_days
            ));
        }
        let mut items = BTreeMap::new();
        for item in catalog_items {
            let over = section.items.get(item).copied().unwrap_or_default();
            let days = ItemRetention {
                bodies_days: over.bodies_days.unwrap_or(default.bodies_days),
                metadata_days: over.metadata_days.unwrap_or(default.metadata_days),
            };
            let min = minimum(item, publicity);
            let key = if section.items.contains_key(item) {
                format!("retention.items.{item}")
            } else {
                "retention".to_owned()
            };
            if days.bodies_days < min.bodies_days {
                errors.push(format!(
                    "{key}: bodies_days = {} for `{item}` is below the statutory minimum of {} days ({})",
                    days.bodies_days, min.bodies_days, min.bodies_why
                ));
            }
            if days.metadata_days < min.metadata_days {
                errors.push(format!(
                    "{key}: metadata_days = {} for `{item}` is below the statutory minimum of {} days (网络安全法 art. 21, logs ≥ 6 months)",
                    days.metadata_days, min.metadata_days
                ));
            }
            if days.metadata_days < days.bodies_days {
                errors.push(format!(
                    "{key}: metadata_days = {} for `{item}` is below its bodies_days = {} (a body lives in its metadata row)",
                    days.metadata_days, days.bodies_days
                ));
            }
            items.insert(item.clone(), days);
        }
        if errors.is_empty() {
            Ok(RetentionPolicy {
                enabled: section.enabled,
                items,
                default,
                batch_rows: section.batch_rows,
                pause_ms: section.pause_ms,
                interval_secs: section.interval_secs,
            })
        } else {
            Err(errors)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn items() -> Vec<String> {
        ["admin_penalty", "bid_result"].iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn defaults_pass_and_failed_information_keeps_its_publicity_maximum() {
        let p = PublicityConfig::default();
        let policy = RetentionPolicy::compile(&RetentionSection::default(), &p, &items()).unwrap();
        assert_eq!(policy.items["bid_result"].bodies_days, 1827);
        // 3 years (serious, 527号 and Order 36) counted as 366 days a year.
        assert_eq!(minimum("admin_penalty", &p).bodies_days, 1098);
        assert_eq!(minimum("bid_result", &p).bodies_days, 1);
    }

    #[test]
    fn statutory_minimums_win_and_are_named() {
        let p = PublicityConfig::default();
        let mut section = RetentionSection::default();
        section.items.insert(
            "admin_penalty".into(),
            ItemOverride { bodies_days: Some(90), metadata_days: None },
        );
        section.items.insert(
            "bid_result".into(),
            ItemOverride { bodies_days: Some(7), metadata_days: Some(30) },
        );
        let errors = RetentionPolicy::compile(&section, &p, &items()).unwrap_err();
        assert!(
            errors.iter().any(|e| e.contains("admin_penalty") && e.contains("1098 days")),
            "{errors:?}"
        );
        assert!(
            errors.iter().any(|e| e.contains("bid_result") && e.contains("184 days")),
            "{errors:?}"
        );
        // Short bodies are fine where no minimum applies.
        section.items.remove("admin_penalty");
        section.items.insert(
            "bid_result".into(),
            ItemOverride { bodies_days: Some(7), metadata_days: Some(200) },
        );
        let policy = RetentionPolicy::compile(&section, &p, &items()).unwrap();
        assert_eq!(
            policy.items["bid_result"],
            ItemRetention { bodies_days: 7, metadata_days: 200 }
        );
    }

    #[test]
    fn unknown_items_are_refused() {
        let mut section = RetentionSection::default();
        section.items.insert("nope".into(), ItemOverride::default());
        let errors =
            RetentionPolicy::compile(&section, &PublicityConfig::default(), &items()).unwrap_err();
        assert!(errors[0].contains("retention.items.nope"));
    }
}
