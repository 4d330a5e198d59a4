//! Retraction planning (product-anchors D3): when a record's publicity and sharing must end —
//! a credit repair (信用修复), the revocation of a penalty decision, a removal from the
//! severe-dishonesty list — every destination that holds the record gets a retraction, a
//! copy still queued is cancelled, and each holder's acknowledgement is tracked against a
//! deadline.
//!
//! Order 36 art. 3 (✅): repair means 终止公示 (no credit information system keeps publishing the
//! item) *and* 停止共享 (the sharing platforms stop passing it on). `repair_kind` records what
//! the decision says, but every holder is retracted; what the retraction means to the holder
//! follows its audience: a public site stops publicity, a trading platform stops using the
//! shared item, a government credit platform — which both publishes and shares onwards — does
//! both.
//!
//! The retract record is the target record with `operation = retract`, a `retraction` envelope
//! object (cause, actions, basis record, decision day) and a record version that sorts after
//! every version any holder has or has queued (versions compare as strings, like the store's
//! supersession), so a queued older copy is dropped as superseded rather than overtaking it.

use std::collections::BTreeMap;

use jiff::Timestamp;
use jiff::civil::Date;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::config::raw::Audience;
use crate::domain::calendar::Calendar;
use crate::lifecycle::deadlines::{DeadlineError, DeadlinePolicy, RETRACTION};
use crate::lifecycle::dishonest_list::RemovalReason;
use crate::lifecycle::{fields, shanghai_date};
use crate::pipeline::{CanonicalRecord, idempotency_key};

/// `repair_kind` of a `credit_repair` record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum RepairKind {
    #[serde(rename = "终止公示")]
    EndPublicity,
    #[serde(rename = "停止共享")]
    StopSharing,
    #[serde(rename = "移出名单")]
    RemoveFromList,
}

impl RepairKind {
    pub fn from_label(s: &str) -> Option<RepairKind> {
        match s.trim() {
            "终止公示" => Some(RepairKind::EndPublicity),
            "停止共享" => Some(RepairKind::StopSharing),
            "移出名单" => Some(RepairKind::RemoveFromList),
            _ => None,
        }
    }
}

/// Why a record is withdrawn.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "cause", rename_all = "snake_case")]
pub enum CauseKind {
    Repair {
        kind: RepairKind,
    },
    /// The decision was revoked, changed or confirmed illegal or void (SAMR Order 45).
    Revocation,
    ListRemoval {
        reason: RemovalReason,
    },
    /// The maximum publicity period ended (the publicity timer): publicity stops everywhere.
    PublicityEnded,
    /// An objection (异议) ended with the record withdrawn (撤销).
    Objection {
        objection_id: String,
    },
}

/// The decision behind a retraction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetractionCause {
    #[serde(flatten)]
    pub kind: CauseKind,
    /// Record key and version of the record that carried the decision (the `credit_repair`,
    /// the revoking retract, the list entry with its removal).
    pub basis_record_key: String,
    pub basis_record_version: String,
    /// Day of the decision: the retraction deadline runs from it.
    pub decided_on: Date,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CauseError {
    #[error("expected a {expected} record, got {got}")]
    WrongItem { expected: &'static str, got: String },
    #[error("{0} is missing or malformed")]
    Field(&'static str),
}

impl RetractionCause {
    /// The cause carried by a canonical `credit_repair` record, and the key of the record it
    /// repairs.
    ///
    /// # Errors
    ///
    /// Not a `credit_repair`, or a missing/unknown `repair_kind`, `repair_date`,
    /// `target_record_key`.
    pub fn from_repair(repair: &CanonicalRecord) -> Result<(RetractionCause, String), CauseError> {
        let item = repair.get_str("catalog_item");
        if item != "credit_repair" {
            return Err(CauseError::WrongItem { expected: "credit_repair", got: item.to_owned() });
        }
        let f = &repair.fields;
        let kind = fields::text(f, "repair_kind")
            .and_then(RepairKind::from_label)
            .ok_or(CauseError::Field("repair_kind"))?;
        let decided_on = fields::date(f, "repair_date").ok_or(CauseError::Field("repair_date"))?;
        let target =
            fields::text(f, "target_record_key").ok_or(CauseError::Field("target_record_key"))?;
        Ok((
            RetractionCause {
                kind: CauseKind::Repair { kind },
                basis_record_key: repair.record_key().to_owned(),
                basis_record_version: repair.record_version().to_owned(),
                decided_on,
            },
            target.to_owned(),
        ))
    }

    /// The cause carried by a `dishonest_list_entry` record that records a removal
    /// (`removed_on`); the entry itself is the target. `None` when it records no removal.
    ///
    /// # Errors
    ///
    /// Not a list entry, or an unknown `removal_reason`.
    pub fn from_list_removal(
        entry: &CanonicalRecord,
    ) -> Result<Option<RetractionCause>, CauseError> {
        let item = entry.get_str("catalog_item");
        if item != "dishonest_list_entry" {
            return Err(CauseError::WrongItem {
                expected: "dishonest_list_entry",
                got: item.to_owned(),
            });
        }
        let f = &entry.fields;
        let Some(removed_on) = fields::date(f, "removed_on") else { return Ok(None) };
        // A removal without a stated reason is an expiry unless the entry says it was revoked.
        let reason = match fields::text(f, "removal_reason") {
            Some(label) => {
                RemovalReason::from_label(label).ok_or(CauseError::Field("removal_reason"))?
            }
            None if fields::boolean(f, "revoked") == Some(true) => RemovalReason::Revoked,
            None => RemovalReason::Expired,
        };
        Ok(Some(RetractionCause {
            kind: CauseKind::ListRemoval { reason },
            basis_record_key: entry.record_key().to_owned(),
            basis_record_version: entry.record_version().to_owned(),
            decided_on: removed_on,
        }))
    }

    /// Labels for the envelope.
    fn label(&self) -> &'static str {
        match &self.kind {
            CauseKind::Repair { .. } => "信用修复",
            CauseKind::Revocation => "撤销",
            CauseKind::ListRemoval { reason: RemovalReason::Expired } => "期满移出",
            CauseKind::ListRemoval { reason: RemovalReason::Repaired } => "信用修复移出",
            CauseKind::ListRemoval { reason: RemovalReason::Revoked } => "撤销",
            CauseKind::PublicityEnded => "公示期满",
            CauseKind::Objection { .. } => "异议撤销",
        }
    }
}

/// What a retraction asks a holder to do (Order 36 art. 3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum RetractAction {
    #[serde(rename = "终止公示")]
    EndPublicity,
    #[serde(rename = "停止共享")]
    StopSharing,
}

impl RetractAction {
    pub fn label(self) -> &'static str {
        match self {
            RetractAction::EndPublicity => "终止公示",
            RetractAction::StopSharing => "停止共享",
        }
    }

    /// Public sites publish, trading platforms use shared items, government credit platforms
    /// publish and share onwards.
    pub fn for_audience(audience: Audience) -> Vec<RetractAction> {
        match audience {
            Audience::Public => vec![RetractAction::EndPublicity],
            Audience::Trading => vec![RetractAction::StopSharing],
            Audience::Government => vec![RetractAction::EndPublicity, RetractAction::StopSharing],
        }
    }
}

/// A destination that was routed the target record (from lineage).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holder {
    pub destination: String,
    pub audience: Audience,
    /// The version it acknowledged; `None` while its copy is still queued.
    pub delivered_version: Option<String>,
    /// The newest version routed to it (queued or delivered), if newer than the delivered one.
    #[serde(default)]
    pub queued_version: Option<String>,
}

/// How a holder is retracted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OpKind {
    /// It has the record: send the retract record.
    Send,
    /// It never got the record: record the retract version as delivered so the queued copy
    /// is dropped as superseded, and send nothing.
    SuppressQueued,
}

/// One holder's retraction.
#[derive(Debug, Clone, PartialEq)]
pub struct RetractOp {
    pub destination: String,
    pub kind: OpKind,
    pub actions: Vec<RetractAction>,
    /// destination + record key + retract version: a re-planned retraction is recognisable.
    pub idempotency_key: String,
    pub record: CanonicalRecord,
}

/// The retraction of one record at every holder.
#[derive(Debug, Clone, PartialEq)]
pub struct RetractionPlan {
    pub target_record_key: String,
    pub retract_version: String,
    pub cause: RetractionCause,
    pub operations: Vec<RetractOp>,
    pub tracker: AckTracker,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RetractionError {
    #[error("the target record has key {got}, the retraction is for {expected}")]
    TargetMismatch { expected: String, got: String },
    #[error(transparent)]
    Deadline(#[from] DeadlineError),
}

/// What the version of a retraction contains.
pub const RETRACT_MARKER: &str = "~retract:";

/// The version of a retraction: after the target's own version and every version any holder
/// has or has queued, and stable for one cause (a redelivered repair plans the same thing).
pub fn retract_version(
    target: &CanonicalRecord,
    holders: &[Holder],
    cause: &RetractionCause,
) -> String {
    let newest = holders
        .iter()
        .flat_map(|h| [h.delivered_version.as_deref(), h.queued_version.as_deref()])
        .flatten()
        .chain([target.record_version()])
        .max()
        .unwrap_or_default();
    format!("{newest}{RETRACT_MARKER}{}", cause.basis_record_key)
}

/// Plans the retraction of `target` (its latest canonical record) at every holder.
///
/// # Errors
///
/// `target_record_key` does not match `target`, or the retraction deadline cannot be computed
/// (rule missing, or no calendar for its year — never guessed).
pub fn plan(
    target_record_key: &str,
    target: &CanonicalRecord,
    cause: &RetractionCause,
    holders: &[Holder],
    deadlines: &DeadlinePolicy,
    cal: &Calendar,
) -> Result<RetractionPlan, RetractionError> {
    if target.record_key() != target_record_key {
        return Err(RetractionError::TargetMismatch {
            expected: target_record_key.to_owned(),
            got: target.record_key().to_owned(),
        });
    }
    let due = deadlines.due(cal, RETRACTION, cause.decided_on)?;
    let version = retract_version(target, holders, cause);
    let mut sorted: Vec<&Holder> = holders.iter().collect();
    sorted.sort_by(|a, b| a.destination.cmp(&b.destination));
    sorted.dedup_by(|a, b| a.destination == b.destination);

    let mut operations = Vec::with_capacity(sorted.len());
    let mut acks = BTreeMap::new();
    for holder in sorted {
        let kind =
            if holder.delivered_version.is_some() { OpKind::Send } else { OpKind::SuppressQueued };
        let actions = RetractAction::for_audience(holder.audience);
        let mut envelope = target.envelope.clone();
        envelope.insert("operation".into(), "retract".into());
        envelope.insert("record_version".into(), version.clone().into());
        envelope.insert(
            "message_id".into(),
            format!("retract/{}/{}", cause.basis_record_key, target_record_key).into(),
        );
        let mut retraction = Map::new();
        retraction.insert("cause".into(), cause.label().into());
        retraction.insert(
            "actions".into(),
            Value::Array(actions.iter().map(|a| Value::from(a.label())).collect()),
        );
        retraction.insert("basis_record_key".into(), cause.basis_record_key.clone().into());
        retraction.insert("decided_on".into(), cause.decided_on.to_string().into());
        if let Some(delivered) = &holder.delivered_version {
            retraction.insert("supersedes_version".into(), delivered.clone().into());
        }
        envelope.insert("retraction".into(), Value::Object(retraction));
        acks.insert(holder.destination.clone(), AckEntry { kind, confirmed_at: None });
        operations.push(RetractOp {
            destination: holder.destination.clone(),
            kind,
            actions,
            idempotency_key: idempotency_key(&holder.destination, target_record_key, &version),
            record: CanonicalRecord { envelope, fields: target.fields.clone() },
        });
    }
    Ok(RetractionPlan {
        target_record_key: target_record_key.to_owned(),
        retract_version: version.clone(),
        cause: cause.clone(),
        operations,
        tracker: AckTracker {
            target_record_key: target_record_key.to_owned(),
            retract_version: version,
            due,
            acks,
        },
    })
}

/// One holder's acknowledgement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AckEntry {
    pub kind: OpKind,
    pub confirmed_at: Option<Timestamp>,
}

/// Where one holder's acknowledgement stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum AckState {
    Confirmed { at: Timestamp, on_time: bool },
    Pending,
    Overdue,
}

/// Acknowledgements of one retraction, against its due day (end of day, Asia/Shanghai).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AckTracker {
    pub target_record_key: String,
    pub retract_version: String,
    pub due: Date,
    pub acks: BTreeMap<String, AckEntry>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{destination} holds no retraction of {record_key}")]
pub struct UnknownHolder {
    pub destination: String,
    pub record_key: String,
}

impl AckTracker {
    /// Records that `destination` accepted the retraction (for `suppress_queued`: that the
    /// store recorded it). Repeated confirmations keep the first instant.
    ///
    /// # Errors
    ///
    /// The destination is not one of the holders.
    pub fn confirm(&mut self, destination: &str, at: Timestamp) -> Result<(), UnknownHolder> {
        let entry = self.acks.get_mut(destination).ok_or_else(|| UnknownHolder {
            destination: destination.to_owned(),
            record_key: self.target_record_key.clone(),
        })?;
        entry.confirmed_at.get_or_insert(at);
        Ok(())
    }

    /// Every holder's state at `now`.
    pub fn status(&self, now: Timestamp) -> BTreeMap<String, AckState> {
        let today = shanghai_date(now);
        self.acks
            .iter()
            .map(|(dest, e)| {
                let state = match e.confirmed_at {
                    Some(at) => AckState::Confirmed { at, on_time: shanghai_date(at) <= self.due },
                    None if today > self.due => AckState::Overdue,
                    None => AckState::Pending,
                };
                (dest.clone(), state)
            })
            .collect()
    }

    /// Every holder confirmed.
    pub fn is_complete(&self) -> bool {
        self.acks.values().all(|e| e.confirmed_at.is_some())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::raw::ProcessFile;
    use serde_json::json;

    const TARGET: &str = "admin_penalty:11420000MB0P1Q2R33|鄂公管罚〔2026〕12号";

    fn cal() -> Calendar {
        Calendar::load_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/config/calendars"))
            .expect("calendars")
    }

    fn deadlines() -> DeadlinePolicy {
        let text =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config/credgate.toml"))
                .expect("config");
        let p: ProcessFile = toml::from_str(&text).expect("parses");
        DeadlinePolicy::new(p.deadlines, p.lifecycle.at_risk).expect("complete")
    }

    fn record(item: &str, key: &str, version: &str, fields: Value) -> CanonicalRecord {
        let envelope = serde_json::from_value(json!({
            "catalog_item": item,
            "catalog_version": "1",
            "record_key": key,
            "record_version": version,
            "operation": "upsert",
            "source_adapter": "hb-credit",
            "source_org_uscc": "11420000MB0P1Q2R33",
            "received_at": "2026-10-09T10:00:00.000+08:00",
            "message_id": "m-target",
            "raw_sha256": "00",
        }))
        .expect("envelope");
        CanonicalRecord { envelope, fields: serde_json::from_value(fields).expect("fields") }
    }

    fn target() -> CanonicalRecord {
        record(
            "admin_penalty",
            TARGET,
            "2026-10-09T10:00:00.000+08:00",
            json!({
                "subject_name": "湖北示例建设工程有限公司",
                "decision_doc_no": "鄂公管罚〔2026〕12号",
                "decision_date": "2026-09-28",
            }),
        )
    }

    fn repair() -> CanonicalRecord {
        record(
            "credit_repair",
            "credit_repair:XF-2026-7",
            "2026-12-01T09:00:00.000+08:00",
            json!({
                "repair_id": "XF-2026-7",
                "target_catalog_item": "admin_penalty",
                "target_record_key": TARGET,
                "repair_kind": "终止公示",
                "repair_date": "2026-11-30",
                "repair_decision_doc_no": "武公管修〔2026〕7号",
                "repair_authority": "湖北省公共资源交易监督管理局",
                "subject_name": "湖北示例建设工程有限公司",
            }),
        )
    }

    fn holders() -> Vec<Holder> {
        vec![
            Holder {
                destination: "hb-credit".into(),
                audience: Audience::Government,
                delivered_version: Some("2026-10-09T10:00:00.000+08:00".into()),
                queued_version: None,
            },
            Holder {
                destination: "wh-ggzy-trading".into(),
                audience: Audience::Trading,
                delivered_version: Some("2026-10-09T10:00:00.000+08:00~dispute:YY-1:0002".into()),
                queued_version: None,
            },
            Holder {
                destination: "xinyong-public".into(),
                audience: Audience::Public,
                delivered_version: None,
                queued_version: Some("2026-10-09T10:00:00.000+08:00".into()),
            },
        ]
    }

    fn t(s: &str) -> Timestamp {
        s.parse().expect("timestamp")
    }

    #[test]
    fn repair_retracts_every_holder_by_audience() {
        let (cause, key) = RetractionCause::from_repair(&repair()).unwrap();
        assert_eq!(key, TARGET);
        assert_eq!(cause.kind, CauseKind::Repair { kind: RepairKind::EndPublicity });
        let plan = plan(&key, &target(), &cause, &holders(), &deadlines(), &cal()).unwrap();
        // Newer than the dispute copy delivered to the trading platform.
        assert_eq!(
            plan.retract_version,
            "2026-10-09T10:00:00.000+08:00~dispute:YY-1:0002~retract:credit_repair:XF-2026-7"
        );
        for h in holders() {
            for v in [h.delivered_version, h.queued_version].into_iter().flatten() {
                assert!(plan.retract_version > v);
            }
        }
        let ops: Vec<(&str, OpKind, Vec<RetractAction>)> = plan
            .operations
            .iter()
            .map(|o| (o.destination.as_str(), o.kind, o.actions.clone()))
            .collect();
        use RetractAction::*;
        assert_eq!(
            ops,
            vec![
                ("hb-credit", OpKind::Send, vec![EndPublicity, StopSharing]),
                ("wh-ggzy-trading", OpKind::Send, vec![StopSharing]),
                ("xinyong-public", OpKind::SuppressQueued, vec![EndPublicity]),
            ]
        );
        let op = &plan.operations[0];
        assert_eq!(op.record.get_str("operation"), "retract");
        assert_eq!(op.record.record_version(), plan.retract_version);
        assert_eq!(op.record.envelope["retraction"]["actions"], json!(["终止公示", "停止共享"]));
        assert_eq!(op.record.envelope["retraction"]["cause"], "信用修复");
        assert_eq!(op.record.envelope["retraction"]["decided_on"], "2026-11-30");
        assert_eq!(op.record.fields, target().fields);
        assert_eq!(op.idempotency_key, idempotency_key("hb-credit", TARGET, &plan.retract_version));
        // Redelivered repair: the same plan.
        let again = super::plan(&key, &target(), &cause, &holders(), &deadlines(), &cal()).unwrap();
        assert_eq!(again, plan);
    }

    #[test]
    fn acknowledgements_confirmed_pending_overdue() {
        let (cause, key) = RetractionCause::from_repair(&repair()).unwrap();
        let mut tracker =
            plan(&key, &target(), &cause, &holders(), &deadlines(), &cal()).unwrap().tracker;
        // Decided Mon 2026-11-30: 3 working days → Thu 2026-12-03.
        assert_eq!(tracker.due, "2026-12-03".parse::<Date>().unwrap());
        tracker.confirm("hb-credit", t("2026-12-01T10:00:00+08:00")).unwrap();
        tracker.confirm("hb-credit", t("2026-12-09T10:00:00+08:00")).unwrap();
        tracker.confirm("wh-ggzy-trading", t("2026-12-04T08:00:00+08:00")).unwrap();
        assert!(tracker.confirm("nobody", t("2026-12-01T10:00:00+08:00")).is_err());
        let status = tracker.status(t("2026-12-03T23:00:00+08:00"));
        assert_eq!(
            status["hb-credit"],
            AckState::Confirmed { at: t("2026-12-01T10:00:00+08:00"), on_time: true }
        );
        assert_eq!(
            status["wh-ggzy-trading"],
            AckState::Confirmed { at: t("2026-12-04T08:00:00+08:00"), on_time: false }
        );
        assert_eq!(status["xinyong-public"], AckState::Pending);
        assert_eq!(
            tracker.status(t("2026-12-04T00:00:01+08:00"))["xinyong-public"],
            AckState::Overdue
        );
        assert!(!tracker.is_complete());
        tracker.confirm("xinyong-public", t("2026-12-05T00:00:00+08:00")).unwrap();
        assert!(tracker.is_complete());
        let back: AckTracker =
            serde_json::from_value(serde_json::to_value(&tracker).unwrap()).unwrap();
        assert_eq!(back, tracker);
    }

    #[test]
    fn list_removal_and_revocation_causes() {
        let entry = record(
            "dishonest_list_entry",
            "dishonest_list_entry:HB-BL-5",
            "v3",
            json!({
                "blacklist_id": "HB-BL-5",
                "listed_on": "2026-03-01",
                "removed_on": "2026-09-01",
                "removal_reason": "信用修复移出",
            }),
        );
        let cause = RetractionCause::from_list_removal(&entry).unwrap().unwrap();
        assert_eq!(cause.kind, CauseKind::ListRemoval { reason: RemovalReason::Repaired });
        assert_eq!(cause.decided_on, "2026-09-01".parse::<Date>().unwrap());
        let holders = vec![Holder {
            destination: "hb-ggzy-trading".into(),
            audience: Audience::Trading,
            delivered_version: Some("v2".into()),
            queued_version: None,
        }];
        let removal =
            plan("dishonest_list_entry:HB-BL-5", &entry, &cause, &holders, &deadlines(), &cal())
                .unwrap();
        assert_eq!(removal.retract_version, "v3~retract:dishonest_list_entry:HB-BL-5");
        assert_eq!(removal.operations[0].record.envelope["retraction"]["cause"], "信用修复移出");

        let still_listed = record(
            "dishonest_list_entry",
            "dishonest_list_entry:HB-BL-6",
            "v1",
            json!({
                "blacklist_id": "HB-BL-6", "listed_on": "2026-03-01"
            }),
        );
        assert_eq!(RetractionCause::from_list_removal(&still_listed), Ok(None));
        assert!(matches!(
            RetractionCause::from_list_removal(&target()),
            Err(CauseError::WrongItem { .. })
        ));

        let revocation = RetractionCause {
            kind: CauseKind::Revocation,
            basis_record_key: TARGET.into(),
            basis_record_version: "2026-12-30T09:00:00.000+08:00".into(),
            decided_on: "2026-12-30".parse().unwrap(),
        };
        // Three working days from Wed 2026-12-30 reach 2027, which has no calendar yet.
        assert_eq!(
            plan(TARGET, &target(), &revocation, &[], &deadlines(), &cal()),
            Err(RetractionError::Deadline(DeadlineError::CalendarUnavailable(
                crate::domain::calendar::CalendarUnavailable { year: 2027 }
            )))
        );
        assert!(matches!(
            plan("admin_penalty:other", &target(), &revocation, &[], &deadlines(), &cal()),
            Err(RetractionError::TargetMismatch { .. })
        ));
    }

    #[test]
    fn cause_serialises_flat() {
        let (cause, _) = RetractionCause::from_repair(&repair()).unwrap();
        let v = serde_json::to_value(&cause).unwrap();
        assert_eq!(v["cause"], "repair");
        assert_eq!(v["kind"], "终止公示");
        assert_eq!(v["decided_on"], "2026-11-30");
        assert_eq!(serde_json::from_value::<RetractionCause>(v).unwrap(), cause);
    }

    proptest::proptest! {
        /// Whatever versions the holders have, the retraction sorts after each of them, so no
        /// holder's copy, delivered or queued, can supersede it.
        #[test]
        fn retract_version_sorts_after_every_holder(
            versions in proptest::collection::vec(
                (proptest::option::of("[0-9A-Za-z:~#.+-]{0,24}"), proptest::option::of("[0-9A-Za-z:~#.+-]{0,24}")),
                0..5,
            ),
            own in "[0-9A-Za-z:~#.+-]{0,24}",
        ) {
            let holders: Vec<Holder> = versions
                .iter()
                .enumerate()
                .map(|(i, (delivered, queued))| Holder {
                    destination: format!("d{i}"),
                    audience: Audience::Government,
                    delivered_version: delivered.clone(),
                    queued_version: queued.clone(),
                })
                .collect();
            let mut t = target();
            t.envelope.insert("record_version".into(), own.clone().into());
            let (cause, _) = RetractionCause::from_repair(&repair()).expect("cause");
            let v = retract_version(&t, &holders, &cause);
            proptest::prop_assert!(v > own);
            for (delivered, queued) in versions {
                for x in [delivered, queued].into_iter().flatten() {
                    proptest::prop_assert!(v > x);
                }
            }
        }
    }

    #[test]
    fn malformed_repairs_are_rejected() {
        let mut r = repair();
        r.fields.insert("repair_kind".into(), json!("删除"));
        assert_eq!(RetractionCause::from_repair(&r), Err(CauseError::Field("repair_kind")));
        let mut r = repair();
        r.fields.remove("target_record_key");
        assert_eq!(RetractionCause::from_repair(&r), Err(CauseError::Field("target_record_key")));
        assert!(matches!(
            RetractionCause::from_repair(&target()),
            Err(CauseError::WrongItem { .. })
        ));
    }
}
