//! Official mainland-China working-day calendar, deadline rules and legal period arithmetic.
//!
//! Everything here is pure: no clock reads (callers pass "today" explicitly) and no IO except
//! [`Calendar::load_dir`], which reads the versioned year files (`config/calendars/cn-YYYY.toml`).
//!
//! The calendar only knows the years it was given. The State Council publishes each year's
//! holiday schedule in the preceding autumn, and weekends are routinely swapped for working days
//! (调休), so any date in a year without data yields [`CalendarUnavailable`] instead of a guess:
//! a wrong legal deadline is worse than a visible "not yet computable".
//!
//! Conventions (domain-standards §3.4, §6):
//! - working days: the start day is day 0 and the following working days are counted
//!   (行政处罚法 art. 85, 行政许可法 art. 82, 双公示 "7个工作日");
//! - month/year periods (民法典 art. 201–203): the start day is not counted, the period ends on
//!   the corresponding day of the final month, or that month's last day if there is none; a
//!   rest-day end may roll over to the next working day.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use jiff::Span;
use jiff::civil::{Date, Weekday};
use serde::{Deserialize, Serialize};

/// Prefix and suffix of the year files read by [`Calendar::load_dir`].
const FILE_PREFIX: &str = "cn-";
const FILE_SUFFIX: &str = ".toml";

/// A date fell in a year for which no official holiday schedule is loaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
#[error("no official holiday calendar is loaded for {year}")]
pub struct CalendarUnavailable {
    pub year: i16,
}

/// The notice a year file was transcribed from, kept so computed deadlines can cite it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Source {
    /// Notice title, e.g. 国务院办公厅关于2026年部分节假日安排的通知.
    pub title: String,
    /// Publication date of the notice.
    pub published: Date,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

/// One year of the official schedule, as stored in `cn-YYYY.toml`.
///
/// Only the exceptions to the plain Mon–Fri week are listed; validated by
/// [`Calendar::from_years`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct YearData {
    pub year: i16,
    pub source: Source,
    /// Every day of each holiday block, weekend days inside the blocks included.
    pub off_days: Vec<Date>,
    /// Saturdays/Sundays that are working days (调休上班).
    pub adjusted_working_days: Vec<Date>,
}

/// Which list of a [`YearData`] a validation error refers to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DayList {
    OffDays,
    AdjustedWorkingDays,
}

impl std::fmt::Display for DayList {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            DayList::OffDays => "off_days",
            DayList::AdjustedWorkingDays => "adjusted_working_days",
        })
    }
}

/// Inconsistent year data. Each case is a likely transcription slip from the notice, so it is
/// rejected at start-up rather than silently producing wrong deadlines.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum YearDataError {
    #[error("year {year} is outside the supported date range")]
    YearOutOfRange { year: i16 },
    #[error("year {year} is defined more than once")]
    DuplicateYear { year: i16 },
    #[error("{list} of year {year} contains {date}, which is in another year")]
    DateOutsideYear { year: i16, list: DayList, date: Date },
    #[error("{list} lists {date} more than once")]
    DuplicateDay { list: DayList, date: Date },
    #[error("{date} is listed both as an off day and as an adjusted working day")]
    OffAndWorking { date: Date },
    #[error("adjusted working day {date} is not a weekend day ({weekday:?})")]
    AdjustedNotWeekend { date: Date, weekday: Weekday },
}

/// Errors building or loading a [`Calendar`].
#[derive(Debug, thiserror::Error)]
pub enum CalendarError {
    #[error("cannot read calendar directory {}: {source}", dir.display())]
    ReadDir { dir: PathBuf, source: std::io::Error },
    #[error("cannot read calendar file {}: {source}", path.display())]
    ReadFile { path: PathBuf, source: std::io::Error },
    #[error("no calendar files (cn-YYYY.toml) in {}", dir.display())]
    NoFiles { dir: PathBuf },
    #[error("calendar file name {} is not of the form cn-YYYY.toml", path.display())]
    BadFileName { path: PathBuf },
    #[error("malformed calendar file {}: {source}", path.display())]
    Parse { path: PathBuf, source: Box<toml::de::Error> },
    #[error("calendar file {} is named for {named} but declares year {declared}", path.display())]
    FileYearMismatch { path: PathBuf, named: i16, declared: i16 },
    #[error("invalid calendar file {}: {source}", path.display())]
    InvalidFile { path: PathBuf, source: YearDataError },
    #[error("invalid calendar data: {0}")]
    Invalid(#[from] YearDataError),
}

#[derive(Debug, Clone)]
struct Year {
    off: BTreeSet<Date>,
    work: BTreeSet<Date>,
    source: Source,
}

/// The official working-day calendar for the loaded years.
#[derive(Debug, Clone, Default)]
pub struct Calendar {
    years: BTreeMap<i16, Year>,
}

fn is_weekend(date: Date) -> bool {
    matches!(date.weekday(), Weekday::Saturday | Weekday::Sunday)
}

/// The day after `date`. Only 9999-12-31 has no successor; reporting the (necessarily
/// unloaded) following year keeps callers on the same error path as any other missing year.
fn next_day(date: Date) -> Result<Date, CalendarUnavailable> {
    date.tomorrow().map_err(|_| CalendarUnavailable { year: date.year().saturating_add(1) })
}

fn collect_days(year: i16, list: DayList, days: &[Date]) -> Result<BTreeSet<Date>, YearDataError> {
    let mut set = BTreeSet::new();
    for &date in days {
        if date.year() != year {
            return Err(YearDataError::DateOutsideYear { year, list, date });
        }
        if !set.insert(date) {
            return Err(YearDataError::DuplicateDay { list, date });
        }
    }
    Ok(set)
}

impl YearData {
    fn validate(self) -> Result<Year, YearDataError> {
        let year = self.year;
        if Date::new(year, 1, 1).is_err() {
            return Err(YearDataError::YearOutOfRange { year });
        }
        let off = collect_days(year, DayList::OffDays, &self.off_days)?;
        let work = collect_days(year, DayList::AdjustedWorkingDays, &self.adjusted_working_days)?;
        if let Some(&date) = off.intersection(&work).next() {
            return Err(YearDataError::OffAndWorking { date });
        }
        if let Some(&date) = work.iter().find(|d| !is_weekend(**d)) {
            return Err(YearDataError::AdjustedNotWeekend { date, weekday: date.weekday() });
        }
        Ok(Year { off, work, source: self.source })
    }
}

/// Year encoded in a `cn-YYYY.toml` file name; `None` if the name does not match the pattern
/// at all, `Some(None)` if it matches `cn-*.toml` but the middle is not a year.
fn year_from_file_name(name: &str) -> Option<Option<i16>> {
    let middle = name.strip_prefix(FILE_PREFIX)?.strip_suffix(FILE_SUFFIX)?;
    let valid = !middle.is_empty() && middle.bytes().all(|b| b.is_ascii_digit());
    Some(if valid { middle.parse().ok() } else { None })
}

impl Calendar {
    /// Builds a calendar from already-parsed year data, validating every year.
    pub fn from_years(years: Vec<YearData>) -> Result<Calendar, CalendarError> {
        let mut map = BTreeMap::new();
        for data in years {
            let year = data.year;
            if map.contains_key(&year) {
                return Err(YearDataError::DuplicateYear { year }.into());
            }
            map.insert(year, data.validate()?);
        }
        Ok(Calendar { years: map })
    }

    /// Reads every `cn-YYYY.toml` in `dir` (other files are ignored).
    ///
    /// An empty directory is an error: a gateway without any calendar would report every
    /// deadline as uncomputable, which is a deployment mistake better caught at start-up.
    pub fn load_dir(dir: impl AsRef<Path>) -> Result<Calendar, CalendarError> {
        let dir = dir.as_ref();
        let read_dir_err = |source| CalendarError::ReadDir { dir: dir.to_path_buf(), source };
        let mut files = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(read_dir_err)? {
            let path = entry.map_err(read_dir_err)?.path();
            let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
                continue;
            };
            match year_from_file_name(name) {
                None => {}
                Some(None) => return Err(CalendarError::BadFileName { path }),
                Some(Some(year)) => files.push((year, path)),
            }
        }
        if files.is_empty() {
            return Err(CalendarError::NoFiles { dir: dir.to_path_buf() });
        }
        // Sorted so that the first error reported does not depend on directory order.
        files.sort();

        let mut years = BTreeMap::new();
        for (named, path) in files {
            let text = std::fs::read_to_string(&path)
                .map_err(|source| CalendarError::ReadFile { path: path.clone(), source })?;
            let data: YearData = toml::from_str(&text).map_err(|source| CalendarError::Parse {
                path: path.clone(),
                source: Box::new(source),
            })?;
            if data.year != named {
                return Err(CalendarError::FileYearMismatch { path, named, declared: data.year });
            }
            let year = data
                .validate()
                .map_err(|source| CalendarError::InvalidFile { path: path.clone(), source })?;
            // File names are unique and each declares its own year, so no duplicates here.
            years.insert(named, year);
        }
        Ok(Calendar { years })
    }

    /// The latest year with data; operators add the next year's file once the notice is out.
    pub fn last_year_loaded(&self) -> Option<i16> {
        self.years.keys().next_back().copied()
    }

    /// All loaded years, ascending.
    pub fn years(&self) -> impl Iterator<Item = i16> + '_ {
        self.years.keys().copied()
    }

    /// The notice a loaded year was transcribed from.
    pub fn source(&self, year: i16) -> Option<&Source> {
        self.years.get(&year).map(|y| &y.source)
    }

    pub fn is_working_day(&self, date: Date) -> Result<bool, CalendarUnavailable> {
        let year = date.year();
        let data = self.years.get(&year).ok_or(CalendarUnavailable { year })?;
        Ok(if data.off.contains(&date) {
            false
        } else if data.work.contains(&date) {
            true
        } else {
            !is_weekend(date)
        })
    }

    /// `date` itself if it is a working day, otherwise the next working day
    /// (民法典 art. 203: a period ending on a rest day ends the day after the rest ends).
    pub fn roll_forward(&self, date: Date) -> Result<Date, CalendarUnavailable> {
        let mut day = date;
        while !self.is_working_day(day)? {
            day = next_day(day)?;
        }
        Ok(day)
    }

    /// The `n`-th working day after `start`; `start` is day 0 and is returned unchanged when
    /// `n == 0`, whether or not it is a working day.
    pub fn add_working_days(&self, start: Date, n: u32) -> Result<Date, CalendarUnavailable> {
        let mut day = start;
        let mut remaining = n;
        while remaining > 0 {
            day = next_day(day)?;
            if self.is_working_day(day)? {
                remaining -= 1;
            }
        }
        Ok(day)
    }

    /// Number of working days in `(start, end]`; the negated count of `(end, start]` when
    /// `end < start`, so the result is antisymmetric and 0 for equal dates.
    pub fn working_days_between(&self, start: Date, end: Date) -> Result<i64, CalendarUnavailable> {
        if end < start {
            return self.working_days_between(end, start).map(|n| -n);
        }
        let mut count = 0;
        let mut day = start;
        while day < end {
            day = next_day(day)?;
            if self.is_working_day(day)? {
                count += 1;
            }
        }
        Ok(count)
    }

    /// `start + n` calendar days; with `roll_over`, a rest-day result moves to the next working
    /// day. Without `roll_over` the calendar is not consulted, so no year data is needed.
    pub fn add_calendar_days_roll_over(
        &self,
        start: Date,
        n: u32,
        roll_over: bool,
    ) -> Result<Date, CalendarUnavailable> {
        // Overflow means past 9999-12-31 (n is never negative): report the year after it.
        let past_max = CalendarUnavailable { year: Date::MAX.year().saturating_add(1) };
        let span = Span::new().try_days(i64::from(n)).map_err(|_| past_max)?;
        let nominal = start.checked_add(span).map_err(|_| past_max)?;
        if roll_over { self.roll_forward(nominal) } else { Ok(nominal) }
    }
}

/// Unit of a deadline's amount.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DayUnit {
    WorkingDays,
    CalendarDays,
}

/// A configurable deadline, e.g. `{ amount = 7, unit = "working_days" }`.
///
/// The unit is per rule because source documents often say "3日" without "工作日"; the product
/// owner decides each rule's reading (domain-standards §6.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeadlineRule {
    pub amount: u32,
    pub unit: DayUnit,
    /// Move a rest-day due date to the next working day. A working-day count with a non-zero
    /// amount already ends on a working day, so this matters for calendar days (and amount 0).
    #[serde(default)]
    pub roll_over_if_rest_day: bool,
}

/// Where an obligation stands relative to its deadline on a given day.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeadlineStatus {
    /// Not delivered, more than the at-risk margin left.
    Due,
    /// Not delivered, due within the at-risk margin (or today).
    AtRisk,
    /// Delivered on or before the due date.
    Met,
    /// Delivered late, or not delivered and the due date has passed.
    Breached,
}

impl DeadlineRule {
    /// The last day on which the obligation is still on time.
    pub fn due(&self, cal: &Calendar, start: Date) -> Result<Date, CalendarUnavailable> {
        let due = match self.unit {
            DayUnit::WorkingDays => cal.add_working_days(start, self.amount)?,
            DayUnit::CalendarDays => cal.add_calendar_days_roll_over(start, self.amount, false)?,
        };
        if self.roll_over_if_rest_day { cal.roll_forward(due) } else { Ok(due) }
    }

    /// Status on `now_date` (the caller's "today" in Asia/Shanghai). The at-risk margin is
    /// counted in working days from `now_date` (exclusive) to the due date (inclusive), because
    /// that is the time staff actually have to act, whatever the rule's unit.
    pub fn status(
        &self,
        cal: &Calendar,
        start: Date,
        now_date: Date,
        delivered_on: Option<Date>,
        at_risk_within_working_days: u32,
    ) -> Result<DeadlineStatus, CalendarUnavailable> {
        let due = self.due(cal, start)?;
        if let Some(delivered) = delivered_on {
            return Ok(if delivered <= due {
                DeadlineStatus::Met
            } else {
                DeadlineStatus::Breached
            });
        }
        if now_date > due {
            return Ok(DeadlineStatus::Breached);
        }
        let left = cal.working_days_between(now_date, due)?;
        Ok(if left <= i64::from(at_risk_within_working_days) {
            DeadlineStatus::AtRisk
        } else {
            DeadlineStatus::Due
        })
    }
}

/// How the end of a month/year period is expressed (domain-standards §3.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PeriodConvention {
    /// 民法典 art. 201–202: start day excluded, ends on the corresponding day
    /// (2026-03-15 + 1 year = 2027-03-15).
    #[default]
    CorrespondingDay,
    /// One day before the corresponding-day end (2026-03-15 + 1 year = 2027-03-14), as some
    /// systems store it by counting the start day.
    InclusiveDayBefore,
}

/// A period end fell outside the dates `jiff` can represent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("period of {months} months from {start} ends outside the supported date range")]
pub struct PeriodOutOfRange {
    pub start: Date,
    pub months: u64,
}

/// Errors from [`PeriodRule::end`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PeriodError {
    #[error(transparent)]
    OutOfRange(#[from] PeriodOutOfRange),
    #[error(transparent)]
    CalendarUnavailable(#[from] CalendarUnavailable),
}

fn add_months_u64(
    start: Date,
    months: u64,
    convention: PeriodConvention,
) -> Result<Date, PeriodOutOfRange> {
    let err = PeriodOutOfRange { start, months };
    let months_i = i64::try_from(months).map_err(|_| err)?;
    let index = (i64::from(start.year()) * 12 + i64::from(start.month()) - 1)
        .checked_add(months_i)
        .ok_or(err)?;
    let year = i16::try_from(index.div_euclid(12)).map_err(|_| err)?;
    let month = i8::try_from(index.rem_euclid(12) + 1).map_err(|_| err)?;
    let first = Date::new(year, month, 1).map_err(|_| err)?;
    // No corresponding day (e.g. 02-29 or 31 into a shorter month): last day of that month.
    let end = Date::new(year, month, start.day().min(first.days_in_month())).map_err(|_| err)?;
    match convention {
        PeriodConvention::CorrespondingDay => Ok(end),
        PeriodConvention::InclusiveDayBefore => end.yesterday().map_err(|_| err),
    }
}

/// `start` plus `months` calendar months under `convention`; no rest-day roll-over.
pub fn add_months(
    start: Date,
    months: u32,
    convention: PeriodConvention,
) -> Result<Date, PeriodOutOfRange> {
    add_months_u64(start, u64::from(months), convention)
}

/// `start` plus `years` years under `convention` (2028-02-29 + 1 year = 2029-02-28).
pub fn add_years(
    start: Date,
    years: u32,
    convention: PeriodConvention,
) -> Result<Date, PeriodOutOfRange> {
    add_months_u64(start, u64::from(years) * 12, convention)
}

/// Unit of a publicity period.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PeriodUnit {
    Months,
    Years,
}

/// A configurable publicity period, e.g.
/// `{ amount = 1, unit = "years", convention = "corresponding_day" }`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeriodRule {
    pub amount: u32,
    pub unit: PeriodUnit,
    #[serde(default)]
    pub convention: PeriodConvention,
    /// 民法典 art. 203: a period ending on a statutory rest day ends on the next working day.
    #[serde(default)]
    pub roll_over_if_rest_day: bool,
}

impl PeriodRule {
    /// End of the period started on `start`. The calendar is consulted only for roll-over, so
    /// periods ending in a year without data still compute when roll-over is off.
    pub fn end(&self, cal: &Calendar, start: Date) -> Result<Date, PeriodError> {
        let months = match self.unit {
            PeriodUnit::Months => u64::from(self.amount),
            PeriodUnit::Years => u64::from(self.amount) * 12,
        };
        let end = add_months_u64(start, months, self.convention)?;
        Ok(if self.roll_over_if_rest_day { cal.roll_forward(end)? } else { end })
    }
}

/// The calendar is what the publication-lag rule (SG-12) counts working days with.
impl crate::domain::rules::WorkingDays for Calendar {
    fn working_days_between(&self, start: Date, end: Date) -> Result<i64, String> {
        Calendar::working_days_between(self, start, end).map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::civil::date;

    const CALENDAR_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/config/calendars");

    fn shipped() -> Calendar {
        Calendar::load_dir(CALENDAR_DIR).expect("shipped calendars load")
    }

    fn d(s: &str) -> Date {
        s.parse().expect("valid test date")
    }

    fn year_2026_minimal() -> YearData {
        YearData {
            year: 2026,
            source: Source { title: "t".into(), published: date(2025, 11, 4), url: None },
            off_days: vec![date(2026, 1, 1)],
            adjusted_working_days: vec![date(2026, 1, 4)],
        }
    }

    // ---- shipped files ----

    #[test]
    fn shipped_files_load_with_sources() {
        let cal = shipped();
        assert_eq!(cal.years().collect::<Vec<_>>(), vec![2025, 2026]);
        assert_eq!(cal.last_year_loaded(), Some(2026));
        let s26 = cal.source(2026).expect("2026 source");
        assert_eq!(s26.title, "国务院办公厅关于2026年部分节假日安排的通知");
        assert_eq!(s26.published, date(2025, 11, 4));
        assert_eq!(cal.source(2025).expect("2025 source").published, date(2024, 11, 12));
        assert!(cal.source(2027).is_none());
    }

    #[test]
    fn shipped_2026_special_days_match_fixture_seed() {
        // domain-fixtures §6.1 seed list.
        let cal = shipped();
        for (from, to) in [
            ("2026-01-01", "2026-01-03"),
            ("2026-02-15", "2026-02-23"),
            ("2026-04-04", "2026-04-06"),
            ("2026-05-01", "2026-05-05"),
            ("2026-06-19", "2026-06-21"),
            ("2026-09-25", "2026-09-27"),
            ("2026-10-01", "2026-10-07"),
        ] {
            let mut day = d(from);
            while day <= d(to) {
                assert_eq!(cal.is_working_day(day), Ok(false), "{day}");
                day = day.tomorrow().expect("in range");
            }
        }
        for s in
            ["2026-01-04", "2026-02-14", "2026-02-28", "2026-05-09", "2026-09-20", "2026-10-10"]
        {
            assert_eq!(cal.is_working_day(d(s)), Ok(true), "{s}");
        }
        // Ordinary days either side of the blocks.
        assert_eq!(cal.is_working_day(d("2026-10-08")), Ok(true));
        assert_eq!(cal.is_working_day(d("2026-10-11")), Ok(false));
    }

    #[test]
    fn working_day_counts_per_year() {
        // 2025: 365 days, 104 weekend days, 5 adjusted weekends, 18 weekday off days → 248.
        // 2026: 365 days, 104 weekend days, 6 adjusted weekends, 19 weekday off days → 248.
        let cal = shipped();
        assert_eq!(cal.working_days_between(d("2024-12-31"), d("2025-12-31")), Ok(248));
        assert_eq!(cal.working_days_between(d("2025-12-31"), d("2026-12-31")), Ok(248));
    }

    // ---- fixtures §6.1 and standards §6.2 ----

    #[test]
    fn fixture_working_day_rows() {
        let cal = shipped();
        for (start, expected) in [
            ("2026-09-28", "2026-10-13"),
            ("2026-02-12", "2026-02-28"),
            ("2026-04-30", "2026-05-13"),
            ("2025-09-26", "2025-10-13"),
        ] {
            assert_eq!(cal.add_working_days(d(start), 7), Ok(d(expected)), "{start} + 7wd");
        }
    }

    #[test]
    fn fixture_calendar_day_roll_over_rows() {
        let cal = shipped();
        for (start, n, nominal, expected) in [
            ("2026-09-29", 3, "2026-10-02", "2026-10-08"),
            ("2026-09-30", 2, "2026-10-02", "2026-10-08"),
            ("2026-02-12", 3, "2026-02-15", "2026-02-24"),
        ] {
            assert_eq!(cal.add_calendar_days_roll_over(d(start), n, true), Ok(d(expected)));
            assert_eq!(cal.add_calendar_days_roll_over(d(start), n, false), Ok(d(nominal)));
        }
    }

    #[test]
    fn fixture_2027_is_unavailable() {
        let cal = shipped();
        assert_eq!(
            cal.add_working_days(d("2026-12-28"), 7),
            Err(CalendarUnavailable { year: 2027 })
        );
        // The last days of 2026 are still computable.
        assert_eq!(cal.add_working_days(d("2026-12-28"), 3), Ok(d("2026-12-31")));
    }

    // ---- calendar behaviour ----

    #[test]
    fn unavailable_years_are_never_guessed() {
        let cal = shipped();
        assert_eq!(cal.is_working_day(d("2027-01-04")), Err(CalendarUnavailable { year: 2027 }));
        assert_eq!(cal.is_working_day(d("2024-12-31")), Err(CalendarUnavailable { year: 2024 }));
        assert_eq!(
            cal.working_days_between(d("2026-12-01"), d("2027-01-05")),
            Err(CalendarUnavailable { year: 2027 })
        );
        assert_eq!(
            cal.add_calendar_days_roll_over(d("2026-12-30"), 3, true),
            Err(CalendarUnavailable { year: 2027 })
        );
        // Without roll-over the calendar is not needed.
        assert_eq!(cal.add_calendar_days_roll_over(d("2026-12-30"), 3, false), Ok(d("2027-01-02")));
        let empty = Calendar::from_years(vec![]).expect("empty is valid");
        assert_eq!(empty.last_year_loaded(), None);
        assert_eq!(empty.is_working_day(d("2026-01-05")), Err(CalendarUnavailable { year: 2026 }));
    }

    #[test]
    fn add_working_days_zero_is_start() {
        let cal = shipped();
        assert_eq!(cal.add_working_days(d("2026-10-03"), 0), Ok(d("2026-10-03")));
        assert_eq!(cal.add_working_days(d("2026-10-03"), 1), Ok(d("2026-10-08")));
    }

    #[test]
    fn working_days_between_is_half_open_and_antisymmetric() {
        let cal = shipped();
        assert_eq!(cal.working_days_between(d("2026-09-28"), d("2026-10-13")), Ok(7));
        assert_eq!(cal.working_days_between(d("2026-10-13"), d("2026-09-28")), Ok(-7));
        assert_eq!(cal.working_days_between(d("2026-10-13"), d("2026-10-13")), Ok(0));
        // Holiday block only: nothing to count.
        assert_eq!(cal.working_days_between(d("2026-09-30"), d("2026-10-07")), Ok(0));
        // Crosses the year boundary within loaded data.
        assert_eq!(cal.working_days_between(d("2025-12-30"), d("2026-01-05")), Ok(3));
    }

    #[test]
    fn working_days_between_inverts_add_working_days() {
        let cal = shipped();
        let mut start = d("2025-01-01");
        while start < d("2026-11-01") {
            for n in [1, 3, 7, 20] {
                let end = cal.add_working_days(start, n).expect("in loaded years");
                assert_eq!(cal.working_days_between(start, end), Ok(i64::from(n)), "{start}+{n}");
                assert_eq!(cal.is_working_day(end), Ok(true));
            }
            start = start.tomorrow().expect("in range");
        }
    }

    #[test]
    fn end_of_representable_range_is_unavailable_not_a_panic() {
        let data = YearData {
            year: 9999,
            source: Source { title: "t".into(), published: date(9998, 11, 1), url: None },
            off_days: vec![],
            adjusted_working_days: vec![],
        };
        let cal = Calendar::from_years(vec![data]).expect("valid");
        assert_eq!(
            cal.add_working_days(d("9999-12-30"), 5),
            Err(CalendarUnavailable { year: 10000 })
        );
        assert_eq!(
            cal.add_calendar_days_roll_over(d("2026-01-01"), u32::MAX, false),
            Err(CalendarUnavailable { year: 10000 })
        );
    }

    // ---- deadline rules ----

    #[test]
    fn deadline_rule_from_toml() {
        let rule: DeadlineRule = toml::from_str(
            r#"amount = 7
unit = "working_days""#,
        )
        .expect("parses");
        assert_eq!(
            rule,
            DeadlineRule { amount: 7, unit: DayUnit::WorkingDays, roll_over_if_rest_day: false }
        );

        #[derive(Deserialize)]
        struct Rules {
            rules: BTreeMap<String, DeadlineRule>,
        }
        let rules: Rules = toml::from_str(
            r#"rules.publish = { amount = 7, unit = "working_days" }
rules.forward = { amount = 3, unit = "calendar_days", roll_over_if_rest_day = true }"#,
        )
        .expect("parses");
        assert_eq!(
            rules.rules["forward"],
            DeadlineRule { amount: 3, unit: DayUnit::CalendarDays, roll_over_if_rest_day: true }
        );
        assert!(toml::from_str::<DeadlineRule>("amount = 7\nunit = \"days\"").is_err());
        assert!(
            toml::from_str::<DeadlineRule>("amount = 7\nunit = \"working_days\"\nx = 1").is_err()
        );
    }

    #[test]
    fn deadline_due_dates() {
        let cal = shipped();
        let wd =
            DeadlineRule { amount: 7, unit: DayUnit::WorkingDays, roll_over_if_rest_day: false };
        assert_eq!(wd.due(&cal, d("2026-09-28")), Ok(d("2026-10-13")));
        let cd =
            DeadlineRule { amount: 3, unit: DayUnit::CalendarDays, roll_over_if_rest_day: true };
        assert_eq!(cd.due(&cal, d("2026-09-29")), Ok(d("2026-10-08")));
        let cd_plain = DeadlineRule { roll_over_if_rest_day: false, ..cd };
        assert_eq!(cd_plain.due(&cal, d("2026-09-29")), Ok(d("2026-10-02")));
        assert_eq!(wd.due(&cal, d("2026-12-28")), Err(CalendarUnavailable { year: 2027 }));
    }

    #[test]
    fn deadline_status() {
        use DeadlineStatus::*;
        let cal = shipped();
        let rule =
            DeadlineRule { amount: 7, unit: DayUnit::WorkingDays, roll_over_if_rest_day: false };
        let start = d("2026-09-28"); // due 2026-10-13
        let st = |now: &str, delivered: Option<&str>, margin| {
            rule.status(&cal, start, d(now), delivered.map(d), margin)
        };
        // 2026-09-29 → 10-13: 30, 08, 09, 10(Sat), 12, 13 = 6 working days left.
        assert_eq!(st("2026-09-29", None, 2), Ok(Due));
        assert_eq!(st("2026-09-29", None, 6), Ok(AtRisk));
        // During the holiday only two working days (10-12, 10-13) separate 10-10 from due.
        assert_eq!(st("2026-10-10", None, 2), Ok(AtRisk));
        assert_eq!(st("2026-10-13", None, 0), Ok(AtRisk));
        assert_eq!(st("2026-10-14", None, 2), Ok(Breached));
        assert_eq!(st("2026-10-20", Some("2026-10-13"), 2), Ok(Met));
        assert_eq!(st("2026-10-20", Some("2026-10-14"), 2), Ok(Breached));
        assert_eq!(st("2026-09-29", Some("2026-09-29"), 2), Ok(Met));
        assert_eq!(
            rule.status(&cal, d("2026-12-28"), d("2026-12-29"), None, 2),
            Err(CalendarUnavailable { year: 2027 })
        );
    }

    // ---- periods ----

    #[test]
    fn period_fixture_rows() {
        use PeriodConvention::*;
        // domain-fixtures §6: leap-day anniversary and the 1-year publicity rows.
        assert_eq!(add_years(d("2028-02-29"), 1, CorrespondingDay), Ok(d("2029-02-28")));
        assert_eq!(add_years(d("2026-03-15"), 1, CorrespondingDay), Ok(d("2027-03-15")));
        assert_eq!(add_years(d("2026-03-15"), 1, InclusiveDayBefore), Ok(d("2027-03-14")));
        // domain-standards §3.4: 信用中国 CF_GSJZQ sample.
        assert_eq!(add_years(d("2019-10-17"), 1, CorrespondingDay), Ok(d("2020-10-17")));
    }

    #[test]
    fn period_month_ends_and_conventions() {
        use PeriodConvention::*;
        assert_eq!(add_months(d("2026-01-31"), 1, CorrespondingDay), Ok(d("2026-02-28")));
        assert_eq!(add_months(d("2028-01-31"), 1, CorrespondingDay), Ok(d("2028-02-29")));
        assert_eq!(add_months(d("2026-08-31"), 3, CorrespondingDay), Ok(d("2026-11-30")));
        assert_eq!(add_months(d("2026-11-30"), 3, CorrespondingDay), Ok(d("2027-02-28")));
        assert_eq!(add_months(d("2026-03-15"), 6, CorrespondingDay), Ok(d("2026-09-15")));
        assert_eq!(add_months(d("2026-03-15"), 36, CorrespondingDay), Ok(d("2029-03-15")));
        assert_eq!(add_years(d("2028-02-29"), 4, CorrespondingDay), Ok(d("2032-02-29")));
        // Inclusive is always the day before the corresponding-day end.
        assert_eq!(add_years(d("2028-02-29"), 1, InclusiveDayBefore), Ok(d("2029-02-27")));
        assert_eq!(add_months(d("2026-03-01"), 1, InclusiveDayBefore), Ok(d("2026-03-31")));
        assert_eq!(add_months(d("2026-03-15"), 0, CorrespondingDay), Ok(d("2026-03-15")));
        assert_eq!(
            add_years(d("9999-01-01"), 1, CorrespondingDay),
            Err(PeriodOutOfRange { start: d("9999-01-01"), months: 12 })
        );
        assert!(add_years(d("2026-01-01"), u32::MAX, CorrespondingDay).is_err());
    }

    #[test]
    fn period_rule_roll_over() {
        let cal = shipped();
        let rule: PeriodRule = toml::from_str(
            "amount = 1\nunit = \"years\"\nconvention = \"corresponding_day\"\n\
             roll_over_if_rest_day = true",
        )
        .expect("parses");
        // 2025-10-04 + 1 year = 2026-10-04, inside the 国庆 block → next working day 10-08.
        assert_eq!(rule.end(&cal, d("2025-10-04")), Ok(d("2026-10-08")));
        // 2025-02-14 + 1 year = 2026-02-14, a Saturday that is an adjusted working day.
        assert_eq!(rule.end(&cal, d("2025-02-14")), Ok(d("2026-02-14")));
        let inclusive = PeriodRule { convention: PeriodConvention::InclusiveDayBefore, ..rule };
        // 2025-10-09 + 1y = 2026-10-09 (Fri, working); inclusive 10-08 (Thu, working).
        assert_eq!(inclusive.end(&cal, d("2025-10-09")), Ok(d("2026-10-08")));
        // Roll-over needs the end year's calendar; without roll-over it does not.
        assert_eq!(
            rule.end(&cal, d("2026-05-01")),
            Err(PeriodError::CalendarUnavailable(CalendarUnavailable { year: 2027 }))
        );
        let plain = PeriodRule { roll_over_if_rest_day: false, ..rule };
        assert_eq!(plain.end(&cal, d("2026-05-01")), Ok(d("2027-05-01")));
        let months: PeriodRule =
            toml::from_str("amount = 3\nunit = \"months\"").expect("defaults apply");
        assert_eq!(months.convention, PeriodConvention::CorrespondingDay);
        assert_eq!(months.end(&cal, d("2026-03-15")), Ok(d("2026-06-15")));
    }

    // ---- validation and loader ----

    #[test]
    fn from_years_validation() {
        let ok = Calendar::from_years(vec![year_2026_minimal()]).expect("valid");
        assert_eq!(ok.is_working_day(d("2026-01-04")), Ok(true));

        type Mutation = fn(&mut YearData);
        let cases: Vec<(Mutation, YearDataError)> = vec![
            (
                |y| y.off_days.push(date(2025, 12, 31)),
                YearDataError::DateOutsideYear {
                    year: 2026,
                    list: DayList::OffDays,
                    date: date(2025, 12, 31),
                },
            ),
            (
                |y| y.adjusted_working_days.push(date(2027, 1, 2)),
                YearDataError::DateOutsideYear {
                    year: 2026,
                    list: DayList::AdjustedWorkingDays,
                    date: date(2027, 1, 2),
                },
            ),
            (
                |y| y.off_days.push(date(2026, 1, 1)),
                YearDataError::DuplicateDay { list: DayList::OffDays, date: date(2026, 1, 1) },
            ),
            (
                |y| y.off_days.push(date(2026, 1, 4)),
                YearDataError::OffAndWorking { date: date(2026, 1, 4) },
            ),
            (
                |y| y.adjusted_working_days.push(date(2026, 1, 5)),
                YearDataError::AdjustedNotWeekend {
                    date: date(2026, 1, 5),
                    weekday: Weekday::Monday,
                },
            ),
            (|y| y.year = 10000, YearDataError::YearOutOfRange { year: 10000 }),
        ];
        for (mutate, expected) in cases {
            let mut data = year_2026_minimal();
            mutate(&mut data);
            match Calendar::from_years(vec![data]) {
                Err(CalendarError::Invalid(e)) => assert_eq!(e, expected),
                other => panic!("expected {expected:?}, got {other:?}"),
            }
        }
        match Calendar::from_years(vec![year_2026_minimal(), year_2026_minimal()]) {
            Err(CalendarError::Invalid(YearDataError::DuplicateYear { year: 2026 })) => {}
            other => panic!("expected duplicate year, got {other:?}"),
        }
    }

    const GOOD_2026: &str = r#"
year = 2026
source = { title = "国务院办公厅关于2026年部分节假日安排的通知", published = "2025-11-04" }
off_days = ["2026-01-01", "2026-01-02", "2026-01-03"]
adjusted_working_days = ["2026-01-04"]
"#;

    fn load_one(name: &str, text: &str) -> Result<Calendar, CalendarError> {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join(name), text).expect("write");
        Calendar::load_dir(dir.path())
    }

    #[test]
    fn loader_accepts_good_file_and_ignores_others() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("cn-2026.toml"), GOOD_2026).expect("write");
        std::fs::write(dir.path().join("README.md"), "not a calendar").expect("write");
        std::fs::write(dir.path().join("hk-2026.toml"), "garbage").expect("write");
        let cal = Calendar::load_dir(dir.path()).expect("loads");
        assert_eq!(cal.last_year_loaded(), Some(2026));
        assert_eq!(cal.is_working_day(d("2026-01-02")), Ok(false));
    }

    #[test]
    fn loader_rejects_malformed_files() {
        let invalid = |text: String| match load_one("cn-2026.toml", &text) {
            Err(CalendarError::InvalidFile { source, .. }) => source,
            other => panic!("expected invalid file, got {other:?}"),
        };
        assert_eq!(
            invalid(GOOD_2026.replace("\"2026-01-03\"", "\"2025-01-03\"")),
            YearDataError::DateOutsideYear {
                year: 2026,
                list: DayList::OffDays,
                date: date(2025, 1, 3)
            }
        );
        assert_eq!(
            invalid(GOOD_2026.replace("\"2026-01-03\"", "\"2026-01-02\"")),
            YearDataError::DuplicateDay { list: DayList::OffDays, date: date(2026, 1, 2) }
        );
        assert_eq!(
            invalid(GOOD_2026.replace("[\"2026-01-04\"]", "[\"2026-01-04\", \"2026-01-03\"]")),
            YearDataError::OffAndWorking { date: date(2026, 1, 3) }
        );
        assert_eq!(
            invalid(GOOD_2026.replace("[\"2026-01-04\"]", "[\"2026-01-05\"]")),
            YearDataError::AdjustedNotWeekend { date: date(2026, 1, 5), weekday: Weekday::Monday }
        );

        let parse = |text: String| {
            assert!(
                matches!(load_one("cn-2026.toml", &text), Err(CalendarError::Parse { .. })),
                "{text}"
            );
        };
        parse(GOOD_2026.replace("\"2026-01-03\"", "\"2026-02-30\"")); // impossible date
        parse(GOOD_2026.replace("\"2026-01-03\"", "\"2026-1-3\"")); // not ISO
        parse(GOOD_2026.replace("adjusted_working_days", "adjusted_workdays")); // typo'd key
        parse(GOOD_2026.replace("year = 2026", "")); // missing key
        parse("year = ".into()); // not TOML

        match load_one("cn-2025.toml", GOOD_2026) {
            Err(CalendarError::FileYearMismatch { named: 2025, declared: 2026, .. }) => {}
            other => panic!("expected year mismatch, got {other:?}"),
        }
        match load_one("cn-latest.toml", GOOD_2026) {
            Err(CalendarError::BadFileName { .. }) => {}
            other => panic!("expected bad file name, got {other:?}"),
        }
    }

    #[test]
    fn loader_rejects_empty_or_missing_dir() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert!(matches!(Calendar::load_dir(dir.path()), Err(CalendarError::NoFiles { .. })));
        let missing = dir.path().join("nope");
        assert!(matches!(Calendar::load_dir(&missing), Err(CalendarError::ReadDir { .. })));
    }

    #[test]
    fn error_messages_are_lowercase() {
        let e = CalendarUnavailable { year: 2027 };
        assert_eq!(e.to_string(), "no official holiday calendar is loaded for 2027");
        let e =
            YearDataError::AdjustedNotWeekend { date: date(2026, 1, 5), weekday: Weekday::Monday };
        assert_eq!(e.to_string(), "adjusted working day 2026-01-05 is not a weekend day (Monday)");
    }
}
