//! The lifecycle step of an accepted objection (`credit_objection`, domain-standards §3.6):
//! moves the objection's state machine (`lifecycle::dispute`) to the status the platform
//! reports, and when that starts or ends the hold on the target record, decides what each
//! holder of the record (from lineage, like a retraction) gets:
//!
//! - hold start: a destination that *marks* gets the record again with an `dispute` annotation
//!   (异议标注); one that *suspends* and already has it gets a suspension notice (暂停公示); one
//!   that suspends and has it only queued gets nothing — its delivery worker parks the queued
//!   copy while the store says the record is held;
//! - hold end: 维持 / 驳回 / 撤回 release the record (the newest version, annotated with the
//!   outcome) at every holder; 已更正 delivers the corrected version once it has arrived; 撤销
//!   retracts the record at every holder (a `retraction` with cause 异议撤销 and its deadline).
//!
//! Pure like the rest of the step: the runtime loads the stored objection and the target's
//! holders, and commits the new state with the document's lineage.

use std::collections::BTreeMap;

use jiff::Timestamp;
use serde_json::{Map, Value};

use super::dispute::{
    Dispute, DisputeEvent, DisputeState, HoldPolicy, HolderState, Outcome, STEP_HOLD, STEP_RELEASE,
    hold_copy_version,
};
use super::hook::{DisputeRow, Generated, InBatch, Known, Step, audience_of, plan_at_holders};
use super::retraction::{CauseKind, Holder, RetractionCause};
use super::{fields, shanghai_date};
use crate::config::CompiledConfig;
use crate::pipeline::{self, CanonicalRecord, OutboundCopy};

/// The state a reported `status` label stands for (`corrected` is the corrected version named
/// with 已更正, if any).
pub fn state_of_label(label: &str, corrected: Option<&str>) -> Option<DisputeState> {
    Some(match label.trim() {
        "待受理" => DisputeState::Submitted,
        "已受理" => DisputeState::Accepted,
        "核查中" => DisputeState::UnderReview,
        "维持" => DisputeState::Resolved(Outcome::Release),
        "已更正" => DisputeState::Resolved(Outcome::Correct {
            new_version: corrected.unwrap_or_default().to_owned(),
        }),
        "撤销" => DisputeState::Resolved(Outcome::Retract),
        "驳回" => DisputeState::Rejected,
        "撤回" => DisputeState::Withdrawn,
        _ => return None,
    })
}

/// Moves `dispute` to `target` through the events the platform skipped reporting (an
/// objection reported first as 核查中 was accepted on the way). `Ok(false)` when it is there
/// already (a repeated status), `Err` when `target` cannot follow the current state; on error
/// the dispute is unchanged.
///
/// # Errors
///
/// The reported status does not follow from the stored one (e.g. 已受理 after 驳回).
pub fn advance(
    dispute: &mut Dispute,
    target: &DisputeState,
    at: Timestamp,
) -> Result<bool, super::dispute::TransitionError> {
    use DisputeState as S;
    if &dispute.state == target {
        return Ok(false);
    }
    let events: Vec<DisputeEvent> = match (target, &dispute.state) {
        (S::Accepted, S::Submitted) => vec![DisputeEvent::Accept],
        (S::UnderReview, S::Submitted) => vec![DisputeEvent::Accept, DisputeEvent::StartReview],
        (S::UnderReview, _) => vec![DisputeEvent::StartReview],
        (S::Resolved(o), S::Submitted) => {
            vec![DisputeEvent::Accept, DisputeEvent::Resolve(o.clone())]
        }
        (S::Resolved(o), _) => vec![DisputeEvent::Resolve(o.clone())],
        (S::Rejected, _) => vec![DisputeEvent::Reject],
        (S::Withdrawn, _) => vec![DisputeEvent::Withdraw],
        // Anything else (back to 待受理, 已受理 after review…) is refused by the state machine.
        (S::Submitted, _) | (S::Accepted, _) => vec![DisputeEvent::Accept],
    };
    let mut moved = dispute.clone();
    for event in events {
        moved.apply(event, at)?;
    }
    *dispute = moved;
    Ok(true)
}

/// How a destination holds a disputed record: its `dispute_hold`, else by audience.
pub fn policy_of(config: &CompiledConfig, destination: &str) -> HoldPolicy {
    config
        .adapters
        .get(destination)
        .and_then(|a| a.destination.as_ref())
        .and_then(|d| d.raw.dispute_hold)
        .unwrap_or_else(|| HoldPolicy::default_for(audience_of(config, destination)))
}

/// The lifecycle step for one accepted `credit_objection` record.
pub fn on_objection(
    config: &CompiledConfig,
    record: &CanonicalRecord,
    known: &Known,
    in_batch: &InBatch,
    moved: &mut BTreeMap<String, Dispute>,
    step: &mut Step,
) {
    let f = &record.fields;
    let key = record.record_key().to_owned();
    let (Some(objection_id), Some(target_key), Some(status)) = (
        fields::text(f, "objection_id"),
        fields::text(f, "target_record_key"),
        fields::text(f, "status"),
    ) else {
        step.notes.push(format!("{key}: objection without id, target or status"));
        return;
    };
    let Some(target_state) = state_of_label(status, fields::text(f, "corrected_record_version"))
    else {
        step.notes.push(format!("{key}: unknown objection status {status}"));
        return;
    };
    let (latest, holders) = super::hook::target_view(config, target_key, known, in_batch);
    let Some(latest) = latest else {
        step.warnings.push((
            key,
            "LIFECYCLE-OBJECTION-UNKNOWN-TARGET",
            format!("异议对象记录 {target_key} 未曾收到：无可暂停或标注的记录"),
        ));
        return;
    };
    let received: Timestamp =
        record.get_str("received_at").parse().unwrap_or_else(|_| Timestamp::now());
    let submitted =
        fields::text(f, "submitted_at").and_then(|t| t.parse().ok()).unwrap_or(received);
    let mut dispute = moved
        .get(objection_id)
        .or_else(|| known.disputes.get(objection_id))
        .cloned()
        .unwrap_or_else(|| {
            let held = fields::text(f, "target_record_version").unwrap_or(latest.record_version());
            Dispute::submit(objection_id, target_key, held, submitted)
        });
    if dispute.target_record_key != target_key {
        step.warnings.push((
            key,
            "LIFECYCLE-OBJECTION-TARGET-CHANGED",
            format!(
                "异议 {objection_id} 的对象为 {}，不能改为 {target_key}",
                dispute.target_record_key
            ),
        ));
        return;
    }
    let hold = config.lifecycle.dispute;
    let held_before = dispute.holds(hold);
    match advance(&mut dispute, &target_state, received) {
        Ok(false) => return,
        Ok(true) => {}
        Err(e) => {
            step.warnings.push((
                key,
                "LIFECYCLE-OBJECTION-TRANSITION",
                format!("异议处理状态不能从 {} 变为 {status}（{e}）", dispute.state.label()),
            ));
            return;
        }
    }
    let held_after = dispute.holds(hold);
    moved.insert(objection_id.to_owned(), dispute.clone());
    step.disputes.push(DisputeRow { dispute: dispute.clone(), holding: held_after });
    // Another open objection on the same record: the record is held already, and stays held
    // after this one ends; only the last one to end releases it. A withdrawal (撤销) of the
    // record ends every hold at once.
    let retracted = matches!(dispute.state, DisputeState::Resolved(Outcome::Retract));
    let held_by_another = !retracted
        && known
            .disputes
            .values()
            .filter(|d| !moved.contains_key(&d.objection_id))
            .chain(moved.values())
            .any(|d| {
                d.target_record_key == target_key && d.objection_id != objection_id && d.holds(hold)
            });
    if held_by_another {
        step.notes.push(format!(
            "{target_key}: objection {objection_id} is now {}; another open objection holds the record",
            dispute.state.label()
        ));
        return;
    }
    match (held_before, held_after) {
        (false, true) => hold_start(config, &dispute, &latest, &holders, step),
        (true, false) => {
            // The retraction deadline runs from the decision (处理时间), else from receipt.
            let decided =
                fields::text(f, "result_at").and_then(|t| t.parse().ok()).unwrap_or(received);
            hold_end(config, &dispute, record, &latest, &holders, decided, step);
        }
        _ => {}
    }
}

fn holder_state(holder: &Holder) -> HolderState {
    if holder.delivered_version.is_some() { HolderState::Delivered } else { HolderState::Queued }
}

/// The target record again, at `version`, with the objection's annotation.
fn annotated(
    latest: &CanonicalRecord,
    dispute: &Dispute,
    version: &str,
    action: &str,
) -> CanonicalRecord {
    let mut record = latest.clone();
    record.envelope.insert("record_version".into(), version.to_owned().into());
    record.envelope.insert(
        "message_id".into(),
        format!("dispute/{}/{}", dispute.objection_id, latest.record_key()).into(),
    );
    let mut mark = match dispute.mark() {
        Value::Object(m) => m,
        _ => Map::new(),
    };
    mark.insert("action".into(), action.into());
    record.envelope.insert("dispute".into(), Value::Object(mark));
    record
}

/// Renders `record` for each `(destination, action)`, grouped by action into generated
/// records (one lineage row each).
fn send(
    config: &CompiledConfig,
    latest: &CanonicalRecord,
    dispute: &Dispute,
    version: &str,
    kind: &'static str,
    to: &[(String, &'static str)],
    step: &mut Step,
) {
    let Some(item) = config.catalog.latest(latest.get_str("catalog_item")) else {
        step.notes.push(format!("{}: unknown catalog item", latest.record_key()));
        return;
    };
    let mut by_action: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (destination, action) in to {
        by_action.entry(action).or_default().push(destination);
    }
    for (action, destinations) in by_action {
        let record = annotated(latest, dispute, version, action);
        let copies: Vec<OutboundCopy> = destinations
            .iter()
            .filter_map(|dest| {
                let key = pipeline::idempotency_key(dest, record.record_key(), version);
                pipeline::encode_copy(config, item, &record, dest, key)
            })
            .collect();
        if !copies.is_empty() {
            step.generated.push(Generated { record, copies, kind });
        }
    }
}

/// Action labels of the annotation (`dispute.action`).
const MARK: &str = "mark";
const SUSPEND: &str = "suspend";
const RELEASE: &str = "release";

fn hold_start(
    config: &CompiledConfig,
    dispute: &Dispute,
    latest: &CanonicalRecord,
    holders: &[Holder],
    step: &mut Step,
) {
    use super::dispute::HoldStart;
    let version = hold_copy_version(latest.record_version(), &dispute.objection_id, STEP_HOLD);
    let mut to = Vec::new();
    for holder in holders {
        let policy = policy_of(config, &holder.destination);
        match dispute.on_hold(policy, holder_state(holder)) {
            HoldStart::Nothing | HoldStart::HoldQueued => {}
            HoldStart::DeliverMarked { .. } | HoldStart::SendMark { .. } => {
                to.push((holder.destination.clone(), MARK));
            }
            HoldStart::SendSuspension { .. } => to.push((holder.destination.clone(), SUSPEND)),
        }
    }
    send(config, latest, dispute, &version, "dispute_hold", &to, step);
}

fn hold_end(
    config: &CompiledConfig,
    dispute: &Dispute,
    objection: &CanonicalRecord,
    latest: &CanonicalRecord,
    holders: &[Holder],
    at: Timestamp,
    step: &mut Step,
) {
    use super::dispute::HoldEnd;
    let mut release = Vec::new();
    let mut retract = false;
    for holder in holders {
        let policy = policy_of(config, &holder.destination);
        match dispute.on_end(policy, holder_state(holder)) {
            None | Some(HoldEnd::Nothing) => {}
            Some(HoldEnd::ReleaseHeld { .. } | HoldEnd::DeliverCorrected { .. }) => {
                release.push((holder.destination.clone(), RELEASE));
            }
            Some(HoldEnd::Retract | HoldEnd::DropQueued) => retract = true,
        }
    }
    if retract {
        let cause = RetractionCause {
            kind: CauseKind::Objection { objection_id: dispute.objection_id.clone() },
            basis_record_key: objection.record_key().to_owned(),
            basis_record_version: objection.record_version().to_owned(),
            decided_on: shanghai_date(at),
        };
        plan_at_holders(config, &dispute.target_record_key, latest, cause, holders, step);
        return;
    }
    if let DisputeState::Resolved(Outcome::Correct { new_version }) = &dispute.state
        && latest.record_version() <= dispute.held_version.as_str()
    {
        // The corrected version has not arrived: the disputed one stays suspended or marked,
        // and the correction goes out like any new version when it comes.
        let expected = if new_version.is_empty() { "（未注明版本）" } else { new_version };
        step.notes.push(format!(
            "{}: objection {} corrected, but the corrected version {expected} has not been received; the record stays held where it was suspended",
            dispute.target_record_key, dispute.objection_id
        ));
        return;
    }
    let version = hold_copy_version(latest.record_version(), &dispute.objection_id, STEP_RELEASE);
    send(config, latest, dispute, &version, "dispute_release", &release, step);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn labels_map_to_states() {
        assert_eq!(state_of_label("已受理", None), Some(DisputeState::Accepted));
        assert_eq!(
            state_of_label("已更正", Some("v2")),
            Some(DisputeState::Resolved(Outcome::Correct { new_version: "v2".into() }))
        );
        assert_eq!(state_of_label("处理中", None), None);
    }

    #[test]
    fn skipped_statuses_are_walked_and_impossible_ones_refused() {
        let mut d = Dispute::submit("YY-1", "k", "v1", t("2026-10-12T09:00:00Z"));
        assert!(advance(&mut d, &DisputeState::UnderReview, t("2026-10-13T09:00:00Z")).unwrap());
        assert_eq!(
            d.history.iter().map(|(_, s)| s.label()).collect::<Vec<_>>(),
            ["待受理", "已受理", "核查中"]
        );
        // A repeated status changes nothing.
        assert!(!advance(&mut d, &DisputeState::UnderReview, t("2026-10-14T09:00:00Z")).unwrap());
        let resolved = DisputeState::Resolved(Outcome::Release);
        assert!(advance(&mut d, &resolved, t("2026-10-15T09:00:00Z")).unwrap());
        let before = d.clone();
        assert!(advance(&mut d, &DisputeState::Accepted, t("2026-10-16T09:00:00Z")).is_err());
        assert!(advance(&mut d, &DisputeState::Withdrawn, t("2026-10-16T09:00:00Z")).is_err());
        assert_eq!(d, before);
        // Straight to a resolution from submission: accepted on the way.
        let mut d = Dispute::submit("YY-2", "k", "v1", t("2026-10-12T09:00:00Z"));
        let retract = DisputeState::Resolved(Outcome::Retract);
        assert!(advance(&mut d, &retract, t("2026-10-13T09:00:00Z")).unwrap());
        assert_eq!(d.history.len(), 3);
    }
}
