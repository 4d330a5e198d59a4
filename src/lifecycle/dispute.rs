//! The objection (异议) state machine and the hold it puts on a record (domain-standards §3.6).
//!
//! A subject objects to one version of a record. While the objection is open the record is
//! held, and each destination's policy says how: `suspend` (the copy is not delivered, or is
//! temporarily shielded — 暂时屏蔽 — where it already was) or `mark` (delivered with an
//! 异议标注, which many platforms prefer to hiding). The outcome then releases the held
//! version, replaces it with a corrected version, or retracts the record.
//!
//! States follow §3.6's status list: 待受理 → 已受理 → 核查中 → 维持 / 已更正 / 撤销, or 驳回
//! (not admissible or unfounded) and 撤回 (the applicant withdrew) from any open state.
//!
//! By default the hold starts on acceptance (已受理): otherwise anyone could suppress a
//! publication by filing an objection. `[lifecycle.dispute] hold_from = "submitted"` holds
//! from submission instead. Processing time limits differ by province (§3.6: "do not
//! hard-code"); they belong in `[deadlines]` and are assessed with `lifecycle::deadlines`.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::config::raw::Audience;

/// How a destination treats a held record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HoldPolicy {
    Suspend,
    Mark,
}

impl HoldPolicy {
    /// Public sites suspend (a disputed item must not be shown as established fact); credit
    /// platforms, regulators and trading platforms receive it marked, so that their own
    /// processes know about the objection.
    pub fn default_for(audience: Audience) -> HoldPolicy {
        match audience {
            Audience::Public => HoldPolicy::Suspend,
            Audience::Government | Audience::Trading => HoldPolicy::Mark,
        }
    }
}

/// When the hold begins.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HoldFrom {
    Submitted,
    #[default]
    Accepted,
}

/// `[lifecycle.dispute]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DisputeConfig {
    #[serde(default)]
    pub hold_from: HoldFrom,
}

/// How an objection ended for the record.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    /// 维持: the record stands as it was.
    Release,
    /// 已更正: the source issued a corrected version.
    Correct { new_version: String },
    /// 撤销: the record is withdrawn everywhere.
    Retract,
}

/// Where an objection stands.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum DisputeState {
    /// 待受理
    Submitted,
    /// 已受理
    Accepted,
    /// 核查中
    UnderReview,
    /// 驳回: not admissible or unfounded; the record is released.
    Rejected,
    /// 撤回: the applicant withdrew; the record is released.
    Withdrawn,
    /// 维持 / 已更正 / 撤销.
    Resolved(Outcome),
}

impl DisputeState {
    /// The §3.6 status label.
    pub fn label(&self) -> &'static str {
        match self {
            DisputeState::Submitted => "待受理",
            DisputeState::Accepted => "已受理",
            DisputeState::UnderReview => "核查中",
            DisputeState::Rejected => "驳回",
            DisputeState::Withdrawn => "撤回",
            DisputeState::Resolved(Outcome::Release) => "维持",
            DisputeState::Resolved(Outcome::Correct { .. }) => "已更正",
            DisputeState::Resolved(Outcome::Retract) => "撤销",
        }
    }

    pub fn is_open(&self) -> bool {
        matches!(self, DisputeState::Submitted | DisputeState::Accepted | DisputeState::UnderReview)
    }

    /// What the end of the objection means for the record (`None` while open).
    pub fn outcome(&self) -> Option<Outcome> {
        match self {
            DisputeState::Rejected | DisputeState::Withdrawn => Some(Outcome::Release),
            DisputeState::Resolved(o) => Some(o.clone()),
            _ => None,
        }
    }
}

/// What happened to an objection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum DisputeEvent {
    Accept,
    StartReview,
    Reject,
    Withdraw,
    Resolve(Outcome),
}

/// An event that does not apply in the current state.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("objection {objection_id}: cannot {event} while {state}")]
pub struct TransitionError {
    pub objection_id: String,
    pub state: &'static str,
    pub event: String,
}

/// One objection against one version of one record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dispute {
    pub objection_id: String,
    pub target_record_key: String,
    /// The record version objected to; the one a release lets through.
    pub held_version: String,
    pub state: DisputeState,
    /// Every state with the instant it was entered, oldest first.
    pub history: Vec<(Timestamp, DisputeState)>,
}

impl Dispute {
    pub fn submit(
        objection_id: impl Into<String>,
        target_record_key: impl Into<String>,
        held_version: impl Into<String>,
        at: Timestamp,
    ) -> Dispute {
        Dispute {
            objection_id: objection_id.into(),
            target_record_key: target_record_key.into(),
            held_version: held_version.into(),
            state: DisputeState::Submitted,
            history: vec![(at, DisputeState::Submitted)],
        }
    }

    /// Applies one event at instant `at`.
    ///
    /// # Errors
    ///
    /// The event is not allowed in the current state (e.g. resolving an objection that was not
    /// accepted, or anything after it closed); the dispute is unchanged.
    pub fn apply(&mut self, event: DisputeEvent, at: Timestamp) -> Result<(), TransitionError> {
        use DisputeState as S;
        let next = match (&self.state, &event) {
            (S::Submitted, DisputeEvent::Accept) => S::Accepted,
            (S::Accepted, DisputeEvent::StartReview) => S::UnderReview,
            (S::Accepted | S::UnderReview, DisputeEvent::Resolve(outcome)) => {
                S::Resolved(outcome.clone())
            }
            (s, DisputeEvent::Reject) if s.is_open() => S::Rejected,
            (s, DisputeEvent::Withdraw) if s.is_open() => S::Withdrawn,
            (state, event) => {
                return Err(TransitionError {
                    objection_id: self.objection_id.clone(),
                    state: state.label(),
                    event: format!("{event:?}"),
                });
            }
        };
        self.history.push((at, next.clone()));
        self.state = next;
        Ok(())
    }

    /// Whether the record is currently held by this objection.
    pub fn holds(&self, config: DisputeConfig) -> bool {
        match self.state {
            DisputeState::Submitted => config.hold_from == HoldFrom::Submitted,
            DisputeState::Accepted | DisputeState::UnderReview => true,
            _ => false,
        }
    }

    /// The annotation a marked copy carries (the envelope's `dispute` object).
    pub fn mark(&self) -> serde_json::Value {
        let since = self.history.first().map(|(t, _)| t.to_string()).unwrap_or_default();
        serde_json::json!({
            "objection_id": self.objection_id,
            "status": self.state.label(),
            "submitted_at": since,
        })
    }
}

/// The record version of a copy sent because of a hold (a mark, a shielding, a release). It
/// sorts after the held version and after every earlier step — versions compare as strings,
/// like the store's supersession — so each copy gets its own idempotency key and none is
/// dropped as superseded by the one before it.
pub fn hold_copy_version(held_version: &str, objection_id: &str, step: u32) -> String {
    format!("{held_version}{HOLD_COPY_MARKER}{objection_id}:{step:04}")
}

/// What the version of a copy sent because of a hold contains.
pub const HOLD_COPY_MARKER: &str = "~dispute:";

/// Step numbers for [`hold_copy_version`].
pub const STEP_HOLD: u32 = 1;
pub const STEP_RELEASE: u32 = 2;

/// What a destination has of the disputed record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HolderState {
    /// Never routed there.
    Nothing,
    /// Routed, not yet delivered.
    Queued,
    /// Delivered (before or without a hold).
    Delivered,
}

/// What to do for one destination when a hold starts.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum HoldStart {
    Nothing,
    /// Keep the queued copy back (the lead's delivery worker parks it).
    HoldQueued,
    /// Deliver with the mark instead of plainly.
    DeliverMarked {
        version: String,
    },
    /// Already delivered: send the marked copy.
    SendMark {
        version: String,
    },
    /// Already delivered to a suspending destination: shield it until resolution.
    SendSuspension {
        version: String,
    },
}

/// What to do for one destination when the objection ends.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum HoldEnd {
    Nothing,
    /// Send the held version plainly (lifting a suspension or a mark).
    ReleaseHeld {
        version: String,
    },
    /// Send the corrected version instead (the held one is superseded).
    DeliverCorrected {
        version: String,
    },
    /// Drop the held queued copy; the record is withdrawn and this destination never had it.
    DropQueued,
    /// The destination has it: withdraw it (`lifecycle::retraction` builds the operation).
    Retract,
}

impl Dispute {
    /// The action for a destination with `policy` holding `state` when the hold starts.
    pub fn on_hold(&self, policy: HoldPolicy, state: HolderState) -> HoldStart {
        let version = hold_copy_version(&self.held_version, &self.objection_id, STEP_HOLD);
        match (policy, state) {
            (_, HolderState::Nothing) => HoldStart::Nothing,
            (HoldPolicy::Suspend, HolderState::Queued) => HoldStart::HoldQueued,
            (HoldPolicy::Suspend, HolderState::Delivered) => HoldStart::SendSuspension { version },
            (HoldPolicy::Mark, HolderState::Queued) => HoldStart::DeliverMarked { version },
            (HoldPolicy::Mark, HolderState::Delivered) => HoldStart::SendMark { version },
        }
    }

    /// The action for a destination with `policy` that was in `state` when the hold started;
    /// `None` while the objection is open.
    pub fn on_end(&self, policy: HoldPolicy, state: HolderState) -> Option<HoldEnd> {
        let outcome = self.state.outcome()?;
        // A queued copy under `mark` was delivered marked when the hold started; under
        // `suspend` it was kept back and is still queued.
        let has_copy = match (policy, state) {
            (_, HolderState::Nothing) => return Some(HoldEnd::Nothing),
            (HoldPolicy::Suspend, HolderState::Queued) => false,
            _ => true,
        };
        let release = hold_copy_version(&self.held_version, &self.objection_id, STEP_RELEASE);
        Some(match outcome {
            Outcome::Release => HoldEnd::ReleaseHeld { version: release },
            Outcome::Correct { new_version } => HoldEnd::DeliverCorrected { version: new_version },
            Outcome::Retract if has_copy => HoldEnd::Retract,
            Outcome::Retract => HoldEnd::DropQueued,
        })
    }
}

/// Whether any of a record's objections holds it, for the delivery decision of a new copy.
pub fn is_held(disputes: &[Dispute], config: DisputeConfig) -> bool {
    disputes.iter().any(|d| d.holds(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> Timestamp {
        s.parse().expect("timestamp")
    }

    fn dispute() -> Dispute {
        Dispute::submit(
            "YY-2026-0001",
            "admin_penalty:11420000MB0P1Q2R33|鄂公管罚〔2026〕12号",
            "2026-10-09T10:00:00.000+08:00",
            t("2026-10-12T09:00:00+08:00"),
        )
    }

    #[test]
    fn happy_path_and_labels() {
        let mut d = dispute();
        assert_eq!(d.state.label(), "待受理");
        d.apply(DisputeEvent::Accept, t("2026-10-13T09:00:00+08:00")).unwrap();
        d.apply(DisputeEvent::StartReview, t("2026-10-14T09:00:00+08:00")).unwrap();
        assert_eq!(d.state.label(), "核查中");
        d.apply(DisputeEvent::Resolve(Outcome::Release), t("2026-10-20T09:00:00+08:00")).unwrap();
        assert_eq!(d.state.label(), "维持");
        assert_eq!(
            d.history.iter().map(|(_, s)| s.label()).collect::<Vec<_>>(),
            ["待受理", "已受理", "核查中", "维持"]
        );
        assert!(!d.state.is_open());
    }

    #[test]
    fn invalid_transitions_are_rejected_and_leave_state_unchanged() {
        let mut d = dispute();
        let err = d.apply(DisputeEvent::Resolve(Outcome::Retract), t("2026-10-13T09:00:00Z"));
        assert_eq!(
            err.unwrap_err().to_string(),
            "objection YY-2026-0001: cannot Resolve(Retract) while 待受理"
        );
        assert!(d.apply(DisputeEvent::StartReview, t("2026-10-13T09:00:00Z")).is_err());
        assert_eq!(d.state, DisputeState::Submitted);
        d.apply(DisputeEvent::Reject, t("2026-10-13T09:00:00Z")).unwrap();
        for e in [DisputeEvent::Accept, DisputeEvent::Withdraw, DisputeEvent::Reject] {
            assert!(d.apply(e, t("2026-10-14T09:00:00Z")).is_err());
        }
        assert_eq!(d.history.len(), 2);
        assert_eq!(d.state.outcome(), Some(Outcome::Release));
    }

    #[test]
    fn hold_starts_on_acceptance_unless_configured() {
        let default = DisputeConfig::default();
        let eager = DisputeConfig { hold_from: HoldFrom::Submitted };
        let mut d = dispute();
        assert!(!d.holds(default));
        assert!(d.holds(eager));
        d.apply(DisputeEvent::Accept, t("2026-10-13T09:00:00Z")).unwrap();
        assert!(d.holds(default) && is_held(std::slice::from_ref(&d), default));
        d.apply(DisputeEvent::Withdraw, t("2026-10-14T09:00:00Z")).unwrap();
        assert!(!d.holds(eager));
        assert!(!is_held(&[d], eager));
        let cfg: DisputeConfig = toml::from_str("hold_from = \"submitted\"").unwrap();
        assert_eq!(cfg, eager);
    }

    #[test]
    fn hold_start_actions_per_policy() {
        let d = dispute();
        let v1 = "2026-10-09T10:00:00.000+08:00~dispute:YY-2026-0001:0001".to_owned();
        assert_eq!(d.on_hold(HoldPolicy::Suspend, HolderState::Queued), HoldStart::HoldQueued);
        assert_eq!(
            d.on_hold(HoldPolicy::Suspend, HolderState::Delivered),
            HoldStart::SendSuspension { version: v1.clone() }
        );
        assert_eq!(
            d.on_hold(HoldPolicy::Mark, HolderState::Queued),
            HoldStart::DeliverMarked { version: v1.clone() }
        );
        assert_eq!(
            d.on_hold(HoldPolicy::Mark, HolderState::Delivered),
            HoldStart::SendMark { version: v1 }
        );
        assert_eq!(d.on_hold(HoldPolicy::Mark, HolderState::Nothing), HoldStart::Nothing);
        assert_eq!(d.mark()["status"], "待受理");
        assert_eq!(HoldPolicy::default_for(Audience::Public), HoldPolicy::Suspend);
        assert_eq!(HoldPolicy::default_for(Audience::Trading), HoldPolicy::Mark);
    }

    #[test]
    fn outcomes_per_destination() {
        let accepted = || {
            let mut d = dispute();
            d.apply(DisputeEvent::Accept, t("2026-10-13T09:00:00Z")).unwrap();
            d
        };
        let open = accepted();
        assert_eq!(open.on_end(HoldPolicy::Mark, HolderState::Delivered), None);

        let mut released = accepted();
        released.apply(DisputeEvent::Resolve(Outcome::Release), t("2026-10-20T09:00:00Z")).unwrap();
        let release = HoldEnd::ReleaseHeld {
            version: "2026-10-09T10:00:00.000+08:00~dispute:YY-2026-0001:0002".into(),
        };
        assert_eq!(
            released.on_end(HoldPolicy::Suspend, HolderState::Queued),
            Some(release.clone())
        );
        assert_eq!(released.on_end(HoldPolicy::Mark, HolderState::Delivered), Some(release));
        assert_eq!(released.on_end(HoldPolicy::Mark, HolderState::Nothing), Some(HoldEnd::Nothing));

        let mut corrected = accepted();
        let new_version = "2026-10-21T10:00:00.000+08:00".to_owned();
        corrected
            .apply(
                DisputeEvent::Resolve(Outcome::Correct { new_version: new_version.clone() }),
                t("2026-10-21T09:00:00Z"),
            )
            .unwrap();
        assert_eq!(corrected.state.label(), "已更正");
        assert_eq!(
            corrected.on_end(HoldPolicy::Suspend, HolderState::Queued),
            Some(HoldEnd::DeliverCorrected { version: new_version })
        );

        let mut retracted = accepted();
        retracted.apply(DisputeEvent::StartReview, t("2026-10-14T09:00:00Z")).unwrap();
        retracted
            .apply(DisputeEvent::Resolve(Outcome::Retract), t("2026-10-22T09:00:00Z"))
            .unwrap();
        assert_eq!(
            retracted.on_end(HoldPolicy::Suspend, HolderState::Queued),
            Some(HoldEnd::DropQueued)
        );
        assert_eq!(
            retracted.on_end(HoldPolicy::Suspend, HolderState::Delivered),
            Some(HoldEnd::Retract)
        );
        assert_eq!(retracted.on_end(HoldPolicy::Mark, HolderState::Queued), Some(HoldEnd::Retract));
    }

    #[test]
    fn hold_copy_versions_sort_after_held_and_in_step_order() {
        let held = "2026-10-09T10:00:00.000+08:00";
        let hold = hold_copy_version(held, "YY-1", STEP_HOLD);
        let release = hold_copy_version(held, "YY-1", STEP_RELEASE);
        assert!(held < hold.as_str() && hold < release);
        // A later source version (a correction) sorts after both.
        assert!(release.as_str() < "2026-10-21T10:00:00.000+08:00");
    }

    proptest::proptest! {
        /// Any sequence of events: rejected ones change nothing, accepted ones are recorded in
        /// order, a closed objection never reopens, and only open objections hold.
        #[test]
        fn state_machine_invariants(events in proptest::collection::vec(0u8..7, 0..12)) {
            let mut d = dispute();
            let mut closed = false;
            for (i, e) in events.into_iter().enumerate() {
                let event = match e {
                    0 => DisputeEvent::Accept,
                    1 => DisputeEvent::StartReview,
                    2 => DisputeEvent::Reject,
                    3 => DisputeEvent::Withdraw,
                    4 => DisputeEvent::Resolve(Outcome::Release),
                    5 => DisputeEvent::Resolve(Outcome::Correct { new_version: "v2".into() }),
                    _ => DisputeEvent::Resolve(Outcome::Retract),
                };
                let before = d.clone();
                let at = t("2026-10-12T09:00:00Z").checked_add(jiff::Span::new().hours(i as i64)).expect("ts");
                match d.apply(event, at) {
                    Ok(()) => {
                        proptest::prop_assert!(!closed, "a closed objection moved on");
                        proptest::prop_assert_eq!(d.history.len(), before.history.len() + 1);
                        proptest::prop_assert_eq!(&d.history.last().expect("entry").1, &d.state);
                    }
                    Err(_) => proptest::prop_assert_eq!(&d, &before),
                }
                closed = !d.state.is_open();
                proptest::prop_assert_eq!(d.holds(DisputeConfig { hold_from: HoldFrom::Submitted }), d.state.is_open());
                proptest::prop_assert_eq!(d.state.outcome().is_some(), closed);
            }
        }
    }

    #[test]
    fn serialises() {
        let mut d = dispute();
        d.apply(DisputeEvent::Accept, t("2026-10-13T09:00:00Z")).unwrap();
        let v = serde_json::to_value(&d).unwrap();
        assert_eq!(v["state"]["state"], "accepted");
        let back: Dispute = serde_json::from_value(v).unwrap();
        assert_eq!(back, d);
    }
}
