//! Reporting obligations of a routed copy: which named deadlines (双公示 7 working days, province
//! → credit platform) a copy of a record to a destination is subject to, and where each stands
//! (due / at-risk / met / breached) at an instant. Pure: the caller passes the record, the
//! destination, when (if ever) the destination accepted the copy, and "now".
//!
//! Reading: the 双公示 items (`admin_penalty`, `admin_license`) owe both deadlines to every
//! government destination (the credit platforms that publish them); other items and other
//! audiences owe none. A deadline that cannot be computed (no calendar for its year) is an
//! error for the operator, never a guess.

use jiff::Timestamp;
use serde::Serialize;

use crate::config::CompiledConfig;
use crate::config::raw::Audience;
use crate::domain::calendar::DeadlineStatus;
use crate::lifecycle::deadlines::{
    self, Assessment, DOUBLE_PUBLICITY, PROVINCE_TO_CREDIT_PLATFORM,
};
use crate::pipeline::CanonicalRecord;

/// Items whose copies to government destinations carry reporting deadlines.
const DOUBLE_PUBLICITY_ITEMS: [&str; 2] = ["admin_penalty", "admin_license"];

/// One obligation of one copy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Obligation {
    pub record_key: String,
    pub record_version: String,
    pub destination: String,
    pub source_org: String,
    /// When the gateway received the record (RFC 3339, Asia/Shanghai).
    pub received_at: String,
    pub rule: String,
    /// The assessment, or why there is none (e.g. the calendar of a year is missing).
    pub assessment: Result<Assessment, String>,
}

impl Obligation {
    /// `due`, `at_risk`, `met`, `breached`, or `error`.
    pub fn status(&self) -> &'static str {
        match &self.assessment {
            Ok(a) => match a.status {
                DeadlineStatus::Due => "due",
                DeadlineStatus::AtRisk => "at_risk",
                DeadlineStatus::Met => "met",
                DeadlineStatus::Breached => "breached",
            },
            Err(_) => "error",
        }
    }
}

/// The obligations of the copy of `record` to `destination`.
pub fn of_copy(
    config: &CompiledConfig,
    record: &CanonicalRecord,
    destination: &str,
    delivered_at: Option<Timestamp>,
    now: Timestamp,
) -> Vec<Obligation> {
    let item = record.get_str("catalog_item");
    let audience = config
        .adapters
        .get(destination)
        .and_then(|a| a.destination.as_ref())
        .map(|d| d.raw.audience);
    if record.get_str("operation") != "upsert"
        || !DOUBLE_PUBLICITY_ITEMS.contains(&item)
        || audience != Some(Audience::Government)
    {
        return Vec::new();
    }
    [DOUBLE_PUBLICITY, PROVINCE_TO_CREDIT_PLATFORM]
        .into_iter()
        .filter_map(|rule| {
            let start = deadlines::start_for(rule, record)?;
            let assessment = config
                .lifecycle
                .deadlines
                .assess(&config.calendar, rule, start, now, delivered_at)
                .map_err(|e| e.to_string());
            Some(Obligation {
                record_key: record.record_key().to_owned(),
                record_version: record.record_version().to_owned(),
                destination: destination.to_owned(),
                source_org: record.get_str("source_org_uscc").to_owned(),
                received_at: record.get_str("received_at").to_owned(),
                rule: rule.to_owned(),
                assessment,
            })
        })
        .collect()
}
