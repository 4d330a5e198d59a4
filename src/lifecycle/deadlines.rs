//! Named reporting deadlines and their status for one record (domain-standards §6).
//!
//! The rules themselves are `domain::calendar::DeadlineRule`s configured under `[deadlines]`
//! (amount, `working_days` | `calendar_days`, roll-over); this module names them, adds the
//! at-risk threshold of `[lifecycle]`, and turns instants into Asia/Shanghai days so the
//! runtime can ask "where does record X stand against rule R now?".
//!
//! Which rules are working days (§6.1): 双公示 is explicitly 7个工作日 (✅). The provincial
//! document (seed 001, item 6) says "3日内" (city/county → province) and "2日内" (province →
//! credit platform) without 工作日; the shipped configuration reads them as calendar days with
//! rest-day roll-over — the reading of the §6.2 worked examples — until the product owner
//! confirms (§8 q5). Retraction follows SAMR 总局令第45号: withdraw within 3 working days.
//!
//! A due date in a year without calendar data is [`DeadlineError::CalendarUnavailable`], never
//! a guess.

use std::collections::BTreeMap;

use jiff::Timestamp;
use jiff::civil::Date;
use serde::{Deserialize, Serialize};

use crate::domain::calendar::{Calendar, CalendarUnavailable, DeadlineRule, DeadlineStatus};
use crate::lifecycle::shanghai_date;

/// 双公示: published within 7 working days of the decision.
pub const DOUBLE_PUBLICITY: &str = "double_publicity";
/// City/county bureau → provincial bureau ("3日内").
pub const COUNTY_TO_PROVINCE: &str = "county_to_province";
/// Provincial bureau → provincial credit platform ("2日内").
pub const PROVINCE_TO_CREDIT_PLATFORM: &str = "province_to_credit_platform";
/// Every holder acknowledged a retraction (SAMR 总局令第45号: 3 working days).
pub const RETRACTION: &str = "retraction";

/// The rules the lifecycle relies on; `credgate check` reports any that is not configured.
pub const REQUIRED_RULES: [&str; 4] =
    [DOUBLE_PUBLICITY, COUNTY_TO_PROVINCE, PROVINCE_TO_CREDIT_PLATFORM, RETRACTION];

/// The rules used when `[deadlines]` is absent altogether: the shipped readings of §6.1 (a
/// `[deadlines]` table that is present must name every required rule itself).
pub fn default_rules() -> BTreeMap<String, DeadlineRule> {
    use crate::domain::calendar::DayUnit::{CalendarDays, WorkingDays};
    let rule = |amount, unit, roll| DeadlineRule { amount, unit, roll_over_if_rest_day: roll };
    BTreeMap::from([
        (DOUBLE_PUBLICITY.to_owned(), rule(7, WorkingDays, false)),
        (COUNTY_TO_PROVINCE.to_owned(), rule(3, CalendarDays, true)),
        (PROVINCE_TO_CREDIT_PLATFORM.to_owned(), rule(2, CalendarDays, true)),
        (RETRACTION.to_owned(), rule(3, WorkingDays, false)),
    ])
}

/// `[lifecycle]` settings for deadline status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AtRiskConfig {
    /// A pending obligation is at risk when at most this many working days are left.
    #[serde(default = "default_at_risk")]
    pub at_risk_within_working_days: u32,
    /// Per-rule thresholds, by rule name.
    #[serde(default)]
    pub at_risk_overrides: BTreeMap<String, u32>,
}

fn default_at_risk() -> u32 {
    2
}

impl Default for AtRiskConfig {
    fn default() -> Self {
        AtRiskConfig {
            at_risk_within_working_days: default_at_risk(),
            at_risk_overrides: BTreeMap::new(),
        }
    }
}

/// Why a deadline could not be assessed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeadlineError {
    #[error("no deadline rule named {0} is configured")]
    UnknownRule(String),
    #[error(transparent)]
    CalendarUnavailable(#[from] CalendarUnavailable),
}

/// Where one obligation stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Assessment {
    pub rule: String,
    /// Asia/Shanghai day of the start event (day 0).
    pub start: Date,
    /// Last day on which the obligation is on time (until 24:00 Asia/Shanghai).
    pub due: Date,
    pub status: DeadlineStatus,
    /// Working days from today (exclusive) to the due date (inclusive); negative once overdue.
    /// `None` once delivered.
    pub working_days_left: Option<i64>,
    pub delivered_on: Option<Date>,
}

/// The compiled deadline rules and thresholds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadlinePolicy {
    rules: BTreeMap<String, DeadlineRule>,
    at_risk: AtRiskConfig,
}

impl Default for DeadlinePolicy {
    fn default() -> Self {
        DeadlinePolicy { rules: default_rules(), at_risk: AtRiskConfig::default() }
    }
}

impl DeadlinePolicy {
    /// # Errors
    ///
    /// A required rule missing from `[deadlines]`, or an at-risk override for an unknown rule.
    pub fn new(
        rules: BTreeMap<String, DeadlineRule>,
        at_risk: AtRiskConfig,
    ) -> Result<DeadlinePolicy, Vec<String>> {
        let mut errors = Vec::new();
        for name in REQUIRED_RULES {
            if !rules.contains_key(name) {
                errors.push(format!("deadlines.{name} is not configured"));
            }
        }
        for name in at_risk.at_risk_overrides.keys() {
            if !rules.contains_key(name) {
                errors.push(format!("lifecycle.at_risk_overrides.{name}: no such deadline rule"));
            }
        }
        if errors.is_empty() { Ok(DeadlinePolicy { rules, at_risk }) } else { Err(errors) }
    }

    pub fn rule(&self, name: &str) -> Option<&DeadlineRule> {
        self.rules.get(name)
    }

    pub fn at_risk_threshold(&self, name: &str) -> u32 {
        self.at_risk
            .at_risk_overrides
            .get(name)
            .copied()
            .unwrap_or(self.at_risk.at_risk_within_working_days)
    }

    /// The due date of rule `name` for an obligation that started on `start`.
    ///
    /// # Errors
    ///
    /// Unknown rule, or the count reaches a year without calendar data.
    pub fn due(&self, cal: &Calendar, name: &str, start: Date) -> Result<Date, DeadlineError> {
        let rule = self.rules.get(name).ok_or_else(|| DeadlineError::UnknownRule(name.into()))?;
        Ok(rule.due(cal, start)?)
    }

    /// Status of rule `name` for an obligation started on `start`, at instant `now`,
    /// delivered (if it was) at `delivered_at`. Instants are judged by their Asia/Shanghai day:
    /// a deadline runs to the end of its due day (民法典 art. 203).
    ///
    /// # Errors
    ///
    /// Unknown rule, or a year without calendar data between start and now/due.
    pub fn assess(
        &self,
        cal: &Calendar,
        name: &str,
        start: Date,
        now: Timestamp,
        delivered_at: Option<Timestamp>,
    ) -> Result<Assessment, DeadlineError> {
        let rule = self.rules.get(name).ok_or_else(|| DeadlineError::UnknownRule(name.into()))?;
        let due = rule.due(cal, start)?;
        let today = shanghai_date(now);
        let delivered_on = delivered_at.map(shanghai_date);
        let status = rule.status(cal, start, today, delivered_on, self.at_risk_threshold(name))?;
        let working_days_left = match delivered_on {
            Some(_) => None,
            None => Some(cal.working_days_between(today, due)?),
        };
        Ok(Assessment {
            rule: name.to_owned(),
            start,
            due,
            status,
            working_days_left,
            delivered_on,
        })
    }
}

/// Day 0 of rule `name` for a canonical record, or `None` when the record lacks it.
///
/// 双公示 and city/county → province run from the decision: the bureau "produced or holds"
/// the information from that day (seed 001 item 6). Province → credit platform runs from the
/// day the province received it — the gateway's `received_at` of the county's record.
/// Retraction runs from the cause's decision day (see `lifecycle::retraction`), not from a
/// record.
pub fn start_for(name: &str, record: &crate::pipeline::CanonicalRecord) -> Option<Date> {
    match name {
        DOUBLE_PUBLICITY | COUNTY_TO_PROVINCE => {
            let item = record.get_str("catalog_item");
            let field = crate::lifecycle::publicity::FAILED_INFO_ANCHORS
                .iter()
                .find(|(i, _)| *i == item)
                .map(|(_, f)| *f)
                // 行政许可 is 双公示 too but carries no failed information.
                .or((item == "admin_license").then_some("decision_date"))?;
            crate::lifecycle::fields::date(&record.fields, field)
        }
        PROVINCE_TO_CREDIT_PLATFORM => {
            record.get_str("received_at").parse::<Timestamp>().ok().map(shanghai_date)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::raw::ProcessFile;
    use crate::domain::calendar::DayUnit;

    const CALENDAR_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/config/calendars");
    const PROCESS_FILE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/config/credgate.toml");

    fn cal() -> Calendar {
        Calendar::load_dir(CALENDAR_DIR).expect("shipped calendars load")
    }

    fn d(s: &str) -> Date {
        s.parse().expect("date")
    }

    fn ts(s: &str) -> Timestamp {
        s.parse().expect("timestamp")
    }

    /// The policy exactly as shipped in `config/credgate.toml`.
    fn shipped() -> DeadlinePolicy {
        let text = std::fs::read_to_string(PROCESS_FILE).expect("config");
        let process: ProcessFile = toml::from_str(&text).expect("parses");
        DeadlinePolicy::new(process.deadlines, process.lifecycle.at_risk).expect("complete")
    }

    /// domain-standards §6.2, every row, plus the extra rows of domain-fixtures §6.1, through
    /// the shipped rule names (so the configuration, not just the arithmetic, is tested).
    #[test]
    fn worked_examples_6_2() {
        let p = shipped();
        let cal = cal();
        let rows = [
            (DOUBLE_PUBLICITY, "2026-09-28", "2026-10-13"),
            (DOUBLE_PUBLICITY, "2026-02-12", "2026-02-28"),
            (DOUBLE_PUBLICITY, "2026-04-30", "2026-05-13"),
            (DOUBLE_PUBLICITY, "2025-09-26", "2025-10-13"),
            (COUNTY_TO_PROVINCE, "2026-09-29", "2026-10-08"),
            (COUNTY_TO_PROVINCE, "2026-02-12", "2026-02-24"),
            (PROVINCE_TO_CREDIT_PLATFORM, "2026-09-30", "2026-10-08"),
        ];
        for (rule, start, due) in rows {
            assert_eq!(p.due(&cal, rule, d(start)), Ok(d(due)), "{rule} from {start}");
        }
        assert_eq!(
            p.due(&cal, DOUBLE_PUBLICITY, d("2026-12-28")),
            Err(DeadlineError::CalendarUnavailable(CalendarUnavailable { year: 2027 }))
        );
        assert_eq!(
            p.due(&cal, "weekly_report", d("2026-01-05")),
            Err(DeadlineError::UnknownRule("weekly_report".into()))
        );
    }

    #[test]
    fn absent_table_means_defaults_equal_to_the_shipped_file() {
        let process: ProcessFile = toml::from_str("").expect("empty config parses");
        assert_eq!(process.deadlines, default_rules());
        assert_eq!(DeadlinePolicy::default(), shipped());
        assert_eq!(
            DeadlinePolicy::new(default_rules(), AtRiskConfig::default()),
            Ok(DeadlinePolicy::default())
        );
    }

    #[test]
    fn shipped_units_are_as_documented() {
        let p = shipped();
        let unit = |n| p.rule(n).map(|r| (r.amount, r.unit, r.roll_over_if_rest_day));
        assert_eq!(unit(DOUBLE_PUBLICITY), Some((7, DayUnit::WorkingDays, false)));
        assert_eq!(unit(COUNTY_TO_PROVINCE), Some((3, DayUnit::CalendarDays, true)));
        assert_eq!(unit(PROVINCE_TO_CREDIT_PLATFORM), Some((2, DayUnit::CalendarDays, true)));
        assert_eq!(unit(RETRACTION), Some((3, DayUnit::WorkingDays, false)));
    }

    /// Fixture §7.1: decided 2026-09-28, 双公示 due 2026-10-13 (+08:00 end of day).
    #[test]
    fn status_due_at_risk_breached_met() {
        use DeadlineStatus::*;
        let p = shipped();
        let cal = cal();
        let start = d("2026-09-28");
        let at = |now: &str, delivered: Option<&str>| {
            p.assess(&cal, DOUBLE_PUBLICITY, start, ts(now), delivered.map(ts)).unwrap()
        };
        let a = at("2026-09-29T09:00:00+08:00", None);
        assert_eq!((a.due, a.status, a.working_days_left), (d("2026-10-13"), Due, Some(6)));
        // 10-10 is an adjusted working Saturday: 10-12 and 10-13 remain → at risk (≤ 2).
        let a = at("2026-10-10T09:00:00+08:00", None);
        assert_eq!((a.status, a.working_days_left), (AtRisk, Some(2)));
        // 23:59 on the due day (Shanghai) is still on time; that is 15:59 UTC.
        assert_eq!(at("2026-10-13T15:59:00Z", None).status, AtRisk);
        let a = at("2026-10-13T16:01:00Z", None);
        assert_eq!((a.status, a.working_days_left), (Breached, Some(-1)));
        let a = at("2026-10-20T10:00:00+08:00", Some("2026-10-13T23:30:00+08:00"));
        assert_eq!(
            (a.status, a.working_days_left, a.delivered_on),
            (Met, None, Some(d("2026-10-13")))
        );
        assert_eq!(at("2026-10-20T10:00:00+08:00", Some("2026-10-13T16:30:00Z")).status, Breached);
    }

    #[test]
    fn at_risk_threshold_is_configurable_per_rule() {
        let text = std::fs::read_to_string(PROCESS_FILE).expect("config");
        let process: ProcessFile = toml::from_str(&text).expect("parses");
        let at_risk = AtRiskConfig {
            at_risk_within_working_days: 0,
            at_risk_overrides: BTreeMap::from([(DOUBLE_PUBLICITY.to_owned(), 6)]),
        };
        let p = DeadlinePolicy::new(process.deadlines.clone(), at_risk).unwrap();
        let cal = cal();
        let now = ts("2026-09-29T09:00:00+08:00");
        let a = p.assess(&cal, DOUBLE_PUBLICITY, d("2026-09-28"), now, None).unwrap();
        assert_eq!(a.status, DeadlineStatus::AtRisk);
        // County → province from 09-28: due 10-08 (10-01 holiday rolls over); 1 working day
        // left on 09-29 is not at risk with threshold 0.
        let a = p.assess(&cal, COUNTY_TO_PROVINCE, d("2026-09-28"), now, None).unwrap();
        assert_eq!((a.due, a.status), (d("2026-10-08"), DeadlineStatus::Due));

        let bad = AtRiskConfig {
            at_risk_within_working_days: 2,
            at_risk_overrides: BTreeMap::from([("nope".to_owned(), 1)]),
        };
        let mut rules = process.deadlines;
        rules.remove(RETRACTION);
        let errors = DeadlinePolicy::new(rules, bad).unwrap_err();
        assert_eq!(
            errors,
            vec![
                "deadlines.retraction is not configured".to_owned(),
                "lifecycle.at_risk_overrides.nope: no such deadline rule".to_owned()
            ]
        );
    }

    #[test]
    fn start_events_of_records() {
        use crate::pipeline::CanonicalRecord;
        let rec = |item: &str, fields: serde_json::Value| CanonicalRecord {
            envelope: serde_json::from_value(serde_json::json!({
                "catalog_item": item,
                "received_at": "2026-10-09T23:30:00.000+08:00",
            }))
            .unwrap(),
            fields: serde_json::from_value(fields).unwrap(),
        };
        let penalty = rec("admin_penalty", serde_json::json!({ "decision_date": "2026-09-28" }));
        assert_eq!(start_for(DOUBLE_PUBLICITY, &penalty), Some(d("2026-09-28")));
        assert_eq!(start_for(COUNTY_TO_PROVINCE, &penalty), Some(d("2026-09-28")));
        assert_eq!(start_for(PROVINCE_TO_CREDIT_PLATFORM, &penalty), Some(d("2026-10-09")));
        assert_eq!(start_for(RETRACTION, &penalty), None);
        let license = rec("admin_license", serde_json::json!({ "decision_date": "2026-02-12" }));
        assert_eq!(start_for(DOUBLE_PUBLICITY, &license), Some(d("2026-02-12")));
        let entry = rec("dishonest_list_entry", serde_json::json!({ "listed_on": "2026/03/01" }));
        assert_eq!(start_for(COUNTY_TO_PROVINCE, &entry), Some(d("2026-03-01")));
        let alert = rec("supervision_alert", serde_json::json!({}));
        assert_eq!(start_for(DOUBLE_PUBLICITY, &alert), None);
    }

    #[test]
    fn missing_calendar_year_is_an_error_not_a_guess() {
        let p = shipped();
        let cal = cal();
        let now = ts("2026-12-29T09:00:00+08:00");
        assert_eq!(
            p.assess(&cal, DOUBLE_PUBLICITY, d("2026-12-28"), now, None),
            Err(DeadlineError::CalendarUnavailable(CalendarUnavailable { year: 2027 }))
        );
        // Even a delivered obligation cannot be judged without its due date.
        assert!(p.assess(&cal, DOUBLE_PUBLICITY, d("2026-12-28"), now, Some(now)).is_err());
    }
}
