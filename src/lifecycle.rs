//! Credit lifecycle (issue 6): what happens to a credit record after it was validated and
//! routed — how long it is publicised, by when it must have reached each platform, how the
//! severe-dishonesty list stood at a given instant, which bids it warns about, how an
//! objection holds it and how a repair or revocation withdraws it from every holder.
//!
//! Everything here is pure: no IO, no clock, no global state. "Now", the calendar, the list
//! and the holders of a record are passed in; results are plain serialisable data the runtime
//! and the store act on. The modules:
//!
//! - [`publicity`] — tier (轻微/一般/严重), rule version and publicity window of failed
//!   information (domain-standards §3.2, §3.4).
//! - [`deadlines`] — named reporting deadlines (双公示, county → province, province → credit
//!   platform, retraction) and their due / at-risk / breached status (§6).
//! - [`dishonest_list`] — the versioned severe-dishonesty list with as-of, delta and snapshot.
//! - [`bid_warning`] — bid-time credit warnings (`supervision_alert` records).
//! - [`dispute`] — the objection (异议) state machine and per-destination hold actions.
//! - [`objection`] — the lifecycle step of an accepted objection: the hold at every holder
//!   of its record, and the release, correction or retraction that ends it.
//! - [`retraction`] — retract operations per holder and their acknowledgement tracker.

pub mod bid_warning;
pub mod deadlines;
pub mod dishonest_list;
pub mod dispute;
pub mod hook;
pub mod objection;
pub mod obligations;
pub mod publicity;
pub mod retraction;

mod fields;

use crate::pipeline::shanghai;

/// Whether a copy's version is one the lifecycle generated (an objection's hold or release, a
/// retraction): such copies carry out a hold and are never parked by it.
pub fn is_generated_version(version: &str) -> bool {
    version.contains(dispute::HOLD_COPY_MARKER) || version.contains(retraction::RETRACT_MARKER)
}

/// The Asia/Shanghai calendar day of an instant: every "day" of the lifecycle is one
/// (domain-standards §2.5).
pub fn shanghai_date(ts: jiff::Timestamp) -> jiff::civil::Date {
    ts.to_zoned(shanghai()).date()
}

/// Midnight at the start of an Asia/Shanghai day, as an instant.
pub fn shanghai_midnight(date: jiff::civil::Date) -> jiff::Timestamp {
    // A fixed offset has no gaps or folds, so the conversion cannot be ambiguous; the only
    // failure would be a date at the edge of jiff's range, which saturates.
    date.to_zoned(shanghai()).map(|z| z.timestamp()).unwrap_or(if date.year() < 0 {
        jiff::Timestamp::MIN
    } else {
        jiff::Timestamp::MAX
    })
}

/// The lifecycle settings of `config/credgate.toml`, validated (`[publicity]`, `[deadlines]`,
/// `[lifecycle]`).
#[derive(Debug, Clone, Default)]
pub struct LifecycleConfig {
    pub publicity: publicity::PublicityPolicy,
    pub deadlines: deadlines::DeadlinePolicy,
    pub dispute: dispute::DisputeConfig,
    pub bid_warning: Option<bid_warning::BidWarningConfig>,
}

impl LifecycleConfig {
    /// # Errors
    ///
    /// Every problem of the three sections, as `section.key: message` lines.
    pub fn compile(
        process: &crate::config::raw::ProcessFile,
    ) -> Result<LifecycleConfig, Vec<String>> {
        let mut errors = Vec::new();
        let publicity = publicity::PublicityPolicy::new(process.publicity.clone())
            .map_err(|errs| errors.extend(errs.into_iter().map(|e| e.to_string())))
            .ok();
        let deadlines = deadlines::DeadlinePolicy::new(
            process.deadlines.clone(),
            process.lifecycle.at_risk.clone(),
        )
        .map_err(|errs| errors.extend(errs))
        .ok();
        let bid_warning = process.lifecycle.bid_warning.clone();
        if let Some(bw) = &bid_warning {
            let codes = [
                ("issuer_uscc", Some(&bw.issuer_uscc)),
                ("fallback_regulator_uscc", bw.fallback_regulator_uscc.as_ref()),
            ];
            for (key, code) in codes {
                if let Some(code) = code
                    && crate::domain::ids::check_uscc(code).is_err()
                {
                    errors
                        .push(format!("lifecycle.bid_warning.{key}: `{code}` is not a valid USCC"));
                }
            }
            if bw.fallback_regulator_uscc.is_some() && bw.fallback_regulator_name.is_none() {
                errors.push(
                    "lifecycle.bid_warning: fallback_regulator_uscc without fallback_regulator_name"
                        .to_owned(),
                );
            }
        }
        match (publicity, deadlines) {
            (Some(publicity), Some(deadlines)) if errors.is_empty() => Ok(LifecycleConfig {
                publicity,
                deadlines,
                dispute: process.lifecycle.dispute,
                bid_warning,
            }),
            _ => Err(errors),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::raw::ProcessFile;

    #[test]
    fn shipped_configuration_compiles() {
        let text =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config/credgate.toml"))
                .expect("config");
        let process: ProcessFile = toml::from_str(&text).expect("parses");
        let config = LifecycleConfig::compile(&process).expect("valid");
        assert!(config.bid_warning.is_some());
        assert_eq!(config.publicity, publicity::PublicityPolicy::new(process.publicity).unwrap());
        // An empty file gets the documented defaults and no bid warnings.
        let empty: ProcessFile = toml::from_str("").expect("parses");
        let config = LifecycleConfig::compile(&empty).expect("defaults are valid");
        assert!(config.bid_warning.is_none());
    }

    #[test]
    fn problems_are_all_reported() {
        let text = r#"
[deadlines.double_publicity]
amount = 7
unit = "working_days"
[lifecycle.bid_warning]
issuer_name = "x"
issuer_uscc = "91420100MA4K3R7QXX"
fallback_regulator_uscc = "11420000MB0X5Y6A0T"
[[publicity.rule_versions]]
id = "a"
effective_from = "2019-07-01"
general = { min = { amount = 2, unit = "years" }, max = { amount = 1, unit = "years" } }
serious = { min = { amount = 6, unit = "months" }, max = { amount = 3, unit = "years" } }
"#;
        let process: ProcessFile = toml::from_str(text).expect("parses");
        let errors = LifecycleConfig::compile(&process).unwrap_err();
        assert_eq!(errors.len(), 6, "{errors:?}");
        assert!(errors.iter().any(|e| e.contains("min is longer than max")));
        assert!(errors.iter().any(|e| e.contains("deadlines.retraction is not configured")));
        assert!(errors.iter().any(|e| e.contains("issuer_uscc")));
        assert!(errors.iter().any(|e| e.contains("without fallback_regulator_name")));
    }

    #[test]
    fn shanghai_days() {
        let ts: jiff::Timestamp = "2026-10-13T16:30:00Z".parse().unwrap();
        assert_eq!(shanghai_date(ts), jiff::civil::date(2026, 10, 14));
        assert_eq!(
            shanghai_midnight(jiff::civil::date(2026, 10, 14)),
            "2026-10-13T16:00:00Z".parse::<jiff::Timestamp>().unwrap()
        );
    }
}
