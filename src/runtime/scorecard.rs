//! The compliance scorecard: per day (Asia/Shanghai), source organisation and catalog item,
//! how many records were accepted (with warnings), how many documents were rejected and for
//! which rules, and how their reporting obligations stand (met / breached / due / at-risk). Answers "which bureau
//! reports late or badly" for `GET /v1/scorecard` and `credgate scorecard`.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

use crate::config::CompiledConfig;
use crate::store::{Store, StoreError};

/// One row of the scorecard.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ScoreRow {
    pub day: String,
    pub source_org: String,
    pub catalog_item: String,
    /// Records received: accepted, accepted with warnings and rejected (a rejected document
    /// that yielded no record at all — undecodable — counts as one).
    pub received: u64,
    pub accepted: u64,
    pub accepted_with_warnings: u64,
    /// Records rejected (the rejected share of `received`).
    pub rejected_records: u64,
    /// Documents rejected (counted per document: a rejected document may hold several records).
    pub rejected_documents: u64,
    /// Rejected documents by the rule of their errors (`required`, `SG-04`, `DECODE`…); a
    /// document counts once per distinct rule it broke.
    pub rejected_by_reason: BTreeMap<String, u64>,
    pub deadlines_met: u64,
    pub deadlines_breached: u64,
    pub deadlines_open: u64,
    pub deadlines_at_risk: u64,
}

impl ScoreRow {
    pub const CSV_HEADER: &'static str = "day,source_org,catalog_item,received,accepted,accepted_with_warnings,rejected_records,rejected_documents,rejected_by_reason,deadlines_met,deadlines_breached,deadlines_open,deadlines_at_risk";

    pub fn csv(&self) -> String {
        // `rule:n` pairs joined by `;` (rule ids contain neither `,` nor `;`).
        let reasons: Vec<String> =
            self.rejected_by_reason.iter().map(|(rule, n)| format!("{rule}:{n}")).collect();
        format!(
            "{},{},{},{},{},{},{},{},{},{},{},{},{}",
            self.day,
            self.source_org,
            self.catalog_item,
            self.received,
            self.accepted,
            self.accepted_with_warnings,
            self.rejected_records,
            self.rejected_documents,
            reasons.join(";"),
            self.deadlines_met,
            self.deadlines_breached,
            self.deadlines_open,
            self.deadlines_at_risk
        )
    }
}

/// The scorecard of the days `from..=to` as of `now`.
///
/// # Errors
///
/// A store query failed.
pub async fn scorecard(
    config: &CompiledConfig,
    store: &Store,
    from: jiff::civil::Date,
    to: jiff::civil::Date,
    now: jiff::Timestamp,
) -> Result<Vec<ScoreRow>, StoreError> {
    let start = crate::pipeline::rfc3339_shanghai(crate::lifecycle::shanghai_midnight(from));
    let end = crate::pipeline::rfc3339_shanghai(crate::lifecycle::shanghai_midnight(
        to.tomorrow().unwrap_or(to),
    ));
    let mut rows: BTreeMap<(String, String, String), ScoreRow> = BTreeMap::new();
    fn row<'a>(
        rows: &'a mut BTreeMap<(String, String, String), ScoreRow>,
        day: &str,
        org: &str,
        item: &str,
    ) -> &'a mut ScoreRow {
        rows.entry((day.to_owned(), org.to_owned(), item.to_owned())).or_insert_with(|| ScoreRow {
            day: day.to_owned(),
            source_org: org.to_owned(),
            catalog_item: item.to_owned(),
            ..ScoreRow::default()
        })
    }
    let day_of = |at: &str| at.get(..10).unwrap_or_default().to_owned();
    for (received_at, status, canonical) in store.received_between(&start, &end).await? {
        let flat: Value = serde_json::from_str(&canonical).unwrap_or(Value::Null);
        let text = |k: &str| flat.get(k).and_then(Value::as_str).unwrap_or_default().to_owned();
        let r =
            row(&mut rows, &day_of(&received_at), &text("source_org_uscc"), &text("catalog_item"));
        if status == "accepted_with_warnings" {
            r.accepted_with_warnings += 1;
        } else {
            r.accepted += 1;
        }
        r.received += 1;
    }
    for (received_at, adapter, doc_type, receipt, source_org) in
        store.rejected_between(&start, &end).await?
    {
        let found = config.adapters.get(&adapter);
        // Against the organisation the data names, like accepted records; a document too
        // broken to say counts against the platform that sent it.
        let org = if source_org.is_empty() {
            found.map(|a| a.org_uscc.clone()).unwrap_or(adapter.clone())
        } else {
            source_org
        };
        let item = found
            .and_then(|a| a.inbound.get(&doc_type))
            .map_or(doc_type.clone(), |d| d.mapper.item.item.clone());
        let r = row(&mut rows, &day_of(&received_at), &org, &item);
        r.rejected_documents += 1;
        let records = rejected_records(&receipt);
        r.rejected_records += records;
        r.received += records;
        for rule in rejection_rules(&receipt) {
            *r.rejected_by_reason.entry(rule).or_default() += 1;
        }
    }
    let copies = store.copy_deliveries(None, &start).await?;
    for o in crate::runtime::lifecycle::obligations(config, copies, now) {
        let day = o.received_at.clone();
        if day.as_str() < start.as_str() || day.as_str() >= end.as_str() {
            continue;
        }
        let item = o.record_key.split(':').next().unwrap_or_default().to_owned();
        let r = row(&mut rows, &day_of(&day), &o.source_org, &item);
        match o.status() {
            "met" => r.deadlines_met += 1,
            "breached" => r.deadlines_breached += 1,
            "at_risk" => {
                r.deadlines_at_risk += 1;
                r.deadlines_open += 1;
            }
            "due" => r.deadlines_open += 1,
            _ => {}
        }
    }
    Ok(rows.into_values().collect())
}

/// The rejected records of a stored receipt of a rejected document, at least one (a document
/// that could not be decoded into records is still one thing received and refused).
fn rejected_records(receipt: &str) -> u64 {
    let count = serde_json::from_str::<crate::pipeline::Receipt>(receipt).map_or(0, |r| {
        r.records.iter().filter(|r| r.status == crate::pipeline::RecordStatus::Rejected).count()
    });
    u64::try_from(count).unwrap_or(u64::MAX).max(1)
}

/// The distinct rules of the errors in a stored receipt (document-level and per record).
fn rejection_rules(receipt: &str) -> std::collections::BTreeSet<String> {
    let Ok(receipt) = serde_json::from_str::<crate::pipeline::Receipt>(receipt) else {
        return std::collections::BTreeSet::from(["unreadable_receipt".to_owned()]);
    };
    receipt
        .violations
        .iter()
        .chain(receipt.records.iter().flat_map(|r| &r.violations))
        .filter(|v| v.severity == crate::record::Severity::Error)
        .map(|v| v.rule.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejections_count_each_broken_rule_once_per_document() {
        let receipt = serde_json::json!({
            "message_id": "m", "correlation_id": null, "adapter": "wh-ggzy", "doc_type": "penalty",
            "status": "rejected", "routed_to": [], "received_at": "2026-11-23T10:00:00.000+08:00",
            "records": [
                {"index": 0, "record_key": null, "status": "rejected", "violations": [
                    {"rule": "required", "path": "/a", "field": "甲", "message": "缺少", "severity": "error"},
                    {"rule": "required", "path": "/b", "field": "乙", "message": "缺少", "severity": "error"},
                    {"rule": "SG-12", "path": "", "field": "", "message": "迟报", "severity": "warning"}]},
                {"index": 1, "record_key": null, "status": "rejected", "violations": [
                    {"rule": "SG-04", "path": "/c", "field": "丙", "message": "校验码", "severity": "error"}]}
            ]
        });
        assert_eq!(rejected_records(&receipt.to_string()), 2);
        assert_eq!(rejected_records("not json"), 1);
        let rules = rejection_rules(&receipt.to_string());
        assert_eq!(rules.into_iter().collect::<Vec<_>>(), ["SG-04", "required"]);
        let mut row =
            ScoreRow { day: "2026-11-23".into(), rejected_documents: 1, ..ScoreRow::default() };
        row.rejected_by_reason = BTreeMap::from([("SG-04".into(), 1), ("required".into(), 1)]);
        assert!(row.csv().contains(",1,SG-04:1;required:1,"), "{}", row.csv());
        assert_eq!(row.csv().split(',').count(), ScoreRow::CSV_HEADER.split(',').count());
        assert_eq!(
            rejection_rules("not json").into_iter().collect::<Vec<_>>(),
            ["unreadable_receipt"]
        );
    }
}
