//! The versioned severe-dishonesty list (严重失信主体名单 / 黑名单) as a pure, serialisable model.
//!
//! Two clocks, kept apart on purpose:
//! - **effective time**: each entry is in force on `[effective_from, effective_to)` — from its
//!   listing day until the day after its restriction ends, or until the day it was removed
//!   (repair, expiry) or, if revoked without a removal date, never (a revoked listing was
//!   void from the start);
//! - **knowledge time**: the list's own version counts accepted events. Trading platforms
//!   follow it with [`DishonestList::delta`] from the last version they hold, and audits ask
//!   what the list said at a past version with [`DishonestList::as_of_known`].
//!
//! Events are the canonical `dishonest_list_entry` records: each is the full state of one entry
//! at one `record_version` (or a retraction). They may arrive in any order and more than once:
//! per entry the event with the greatest `record_version` wins, compared as strings exactly
//! like the store's supersession; a tie between different contents at the same version is
//! broken by a content digest, so the final list never depends on arrival order.

use std::collections::BTreeMap;

use jiff::Timestamp;
use jiff::civil::Date;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::lifecycle::{fields, shanghai_midnight};
use crate::record::Fields;

/// Why an entry left the list (the catalog's `removal_reason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum RemovalReason {
    #[serde(rename = "期满移出")]
    Expired,
    #[serde(rename = "信用修复移出")]
    Repaired,
    #[serde(rename = "撤销")]
    Revoked,
}

impl RemovalReason {
    pub fn from_label(s: &str) -> Option<RemovalReason> {
        match s.trim() {
            "期满移出" => Some(RemovalReason::Expired),
            "信用修复移出" => Some(RemovalReason::Repaired),
            "撤销" => Some(RemovalReason::Revoked),
            _ => None,
        }
    }
}

/// Who is listed. For natural persons `id_no` is the identity; it never leaves the gateway
/// unmasked except to destinations whose release policy allows it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Subject {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uscc: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id_no: Option<String>,
}

/// The state of one entry at one record version.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct EntryData {
    pub subject: Subject,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub list_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deciding_authority: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decision_doc_no: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub restricted_actions: Vec<String>,
    pub listed_on: Date,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restriction_to: Option<Date>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub removed_on: Option<Date>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub removal_reason: Option<RemovalReason>,
    #[serde(default)]
    pub revoked: bool,
}

impl EntryData {
    /// Start of the listing day, Asia/Shanghai.
    pub fn effective_from(&self) -> Timestamp {
        shanghai_midnight(self.listed_on)
    }

    /// Exclusive end of the entry's force, `None` while open-ended.
    pub fn effective_to(&self) -> Option<Timestamp> {
        let revoked = self.revoked || self.removal_reason == Some(RemovalReason::Revoked);
        if revoked && self.removed_on.is_none() {
            return Some(self.effective_from());
        }
        // The restriction's last day still counts in full: the entry ends at the next midnight.
        let restriction_end = self.restriction_to.map(|d| shanghai_midnight(next_day(d)));
        let removal = self.removed_on.map(shanghai_midnight);
        let end = match (restriction_end, removal) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        // A removal dated before the listing means the entry never took effect.
        end.map(|e| e.max(self.effective_from()))
    }

    /// Whether the entry is in force at `at`.
    pub fn in_force_at(&self, at: Timestamp) -> bool {
        self.effective_from() <= at && self.effective_to().is_none_or(|end| at < end)
    }

    /// Whether the entry names this subject code (USCC or ID number, compared as given).
    pub fn names(&self, code: &str) -> bool {
        let code = code.trim();
        !code.is_empty()
            && (self.subject.uscc.as_deref() == Some(code)
                || self.subject.id_no.as_deref() == Some(code))
    }
}

fn next_day(d: Date) -> Date {
    d.tomorrow().unwrap_or(d)
}

/// One event: an entry's full state at a record version, or its retraction (`None`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ListEvent {
    pub blacklist_id: String,
    pub record_version: String,
    pub entry: Option<EntryData>,
}

/// A canonical record that cannot be turned into a list event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ListRecordError {
    #[error("{0} is missing")]
    Missing(&'static str),
    #[error("{field} is not a date: {value}")]
    BadDate { field: &'static str, value: String },
    #[error("removal_reason `{0}` is not 期满移出, 信用修复移出 or 撤销")]
    BadRemovalReason(String),
}

fn opt_date(f: &Fields, key: &'static str) -> Result<Option<Date>, ListRecordError> {
    match fields::text(f, key) {
        None => Ok(None),
        Some(v) => fields::parse_date(v)
            .map(Some)
            .ok_or_else(|| ListRecordError::BadDate { field: key, value: v.to_owned() }),
    }
}

impl ListEvent {
    /// The event of a canonical `dishonest_list_entry` record (its catalog fields, its
    /// `record_version` and `operation` envelope values).
    ///
    /// # Errors
    ///
    /// A missing `blacklist_id`, `listed_on` or `subject_name`, or malformed dates.
    pub fn from_record(
        record_version: &str,
        operation: &str,
        f: &Fields,
    ) -> Result<ListEvent, ListRecordError> {
        let id = fields::text(f, "blacklist_id").ok_or(ListRecordError::Missing("blacklist_id"))?;
        let event = |entry| ListEvent {
            blacklist_id: id.to_owned(),
            record_version: record_version.to_owned(),
            entry,
        };
        if operation == "retract" {
            return Ok(event(None));
        }
        let listed_on = opt_date(f, "listed_on")?.ok_or(ListRecordError::Missing("listed_on"))?;
        let name =
            fields::text(f, "subject_name").ok_or(ListRecordError::Missing("subject_name"))?;
        let removal_reason = match fields::text(f, "removal_reason") {
            None => None,
            Some(v) => Some(
                RemovalReason::from_label(v)
                    .ok_or_else(|| ListRecordError::BadRemovalReason(v.to_owned()))?,
            ),
        };
        let owned = |k| fields::text(f, k).map(str::to_owned);
        Ok(event(Some(EntryData {
            subject: Subject {
                name: name.to_owned(),
                category: owned("subject_category"),
                uscc: owned("subject_uscc"),
                id_no: owned("subject_id_no"),
            },
            list_name: owned("list_name"),
            reason: owned("reason"),
            deciding_authority: owned("deciding_authority"),
            decision_doc_no: owned("decision_doc_no"),
            restricted_actions: fields::list(f, "restricted_actions")
                .into_iter()
                .map(str::to_owned)
                .collect(),
            listed_on,
            restriction_to: opt_date(f, "restriction_to")?,
            removed_on: opt_date(f, "removed_on")?,
            removal_reason,
            revoked: fields::boolean(f, "revoked").unwrap_or(false),
        })))
    }

    fn digest(&self) -> String {
        // Serialising our own derive-only types cannot fail; an empty digest would only make
        // two conflicting contents tie, which `apply` then treats as a duplicate.
        let bytes = serde_json::to_vec(&self.entry).unwrap_or_default();
        hex::encode(&Sha256::digest(&bytes)[..16])
    }
}

/// One accepted state of an entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Revision {
    list_version: u64,
    record_version: String,
    digest: String,
    entry: Option<EntryData>,
}

impl Revision {
    fn key(&self) -> (&str, &str) {
        (&self.record_version, &self.digest)
    }
}

/// What [`DishonestList::apply`] did with an event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum ApplyOutcome {
    /// The event is the entry's new state; the list moved to `list_version`.
    Applied {
        list_version: u64,
        /// It replaced a different content carrying the same record version (a source error
        /// worth reporting; the digest decided).
        conflict: bool,
    },
    /// Exactly this event was already applied (a redelivery).
    Duplicate,
    /// A newer state is already known; the event is kept out of the list.
    Superseded { current_version: String, conflict: bool },
}

/// An entry as it currently stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub blacklist_id: String,
    pub record_version: String,
    /// The list version at which this state was accepted.
    pub list_version: u64,
    #[serde(flatten)]
    pub data: EntryData,
}

/// The changes since a list version, for trading platforms that keep their own copy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delta {
    pub since: u64,
    pub list_version: u64,
    /// One item per changed entry, its latest state; `data: None` means retracted.
    pub changes: Vec<Change>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    pub blacklist_id: String,
    pub record_version: String,
    pub list_version: u64,
    pub data: Option<EntryData>,
}

/// The whole list at one version (every known, non-retracted entry with its effective
/// period; as-of filtering is the holder's, so snapshot + deltas stay exact).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    pub list_version: u64,
    pub entries: Vec<Entry>,
}

impl Snapshot {
    /// Brings a snapshot forward with a delta taken at (or before) its version.
    ///
    /// # Errors
    ///
    /// The delta starts after this snapshot's version, so changes would be missed.
    pub fn apply(&mut self, delta: &Delta) -> Result<(), DeltaError> {
        if delta.since > self.list_version {
            return Err(DeltaError::Gap { have: self.list_version, since: delta.since });
        }
        let mut by_id: BTreeMap<String, Entry> = std::mem::take(&mut self.entries)
            .into_iter()
            .map(|e| (e.blacklist_id.clone(), e))
            .collect();
        for change in &delta.changes {
            match &change.data {
                None => {
                    by_id.remove(&change.blacklist_id);
                }
                Some(data) => {
                    by_id.insert(
                        change.blacklist_id.clone(),
                        Entry {
                            blacklist_id: change.blacklist_id.clone(),
                            record_version: change.record_version.clone(),
                            list_version: change.list_version,
                            data: data.clone(),
                        },
                    );
                }
            }
        }
        self.entries = by_id.into_values().collect();
        self.list_version = self.list_version.max(delta.list_version);
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeltaError {
    #[error("list version {since} is newer than the list ({current})")]
    FutureVersion { since: u64, current: u64 },
    #[error("delta since {since} cannot be applied to a snapshot at {have}")]
    Gap { have: u64, since: u64 },
}

/// The list: every entry's accepted states, newest last.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DishonestList {
    list_version: u64,
    entries: BTreeMap<String, Vec<Revision>>,
}

impl DishonestList {
    pub fn new() -> DishonestList {
        DishonestList::default()
    }

    /// The current list version (0 before any event).
    pub fn version(&self) -> u64 {
        self.list_version
    }

    /// Applies one event; see [`ApplyOutcome`].
    pub fn apply(&mut self, event: ListEvent) -> ApplyOutcome {
        let digest = event.digest();
        let history = self.entries.entry(event.blacklist_id.clone()).or_default();
        let mut conflict = false;
        if let Some(current) = history.last() {
            let new_key = (event.record_version.as_str(), digest.as_str());
            if new_key == current.key() {
                return ApplyOutcome::Duplicate;
            }
            conflict = current.record_version == event.record_version;
            if new_key < current.key() {
                return ApplyOutcome::Superseded {
                    current_version: current.record_version.clone(),
                    conflict,
                };
            }
        }
        self.list_version += 1;
        history.push(Revision {
            list_version: self.list_version,
            record_version: event.record_version,
            digest,
            entry: event.entry,
        });
        ApplyOutcome::Applied { list_version: self.list_version, conflict }
    }

    fn entries_at(&self, known_at: u64) -> impl Iterator<Item = Entry> + '_ {
        self.entries.iter().filter_map(move |(id, history)| {
            let rev = history.iter().rev().find(|r| r.list_version <= known_at)?;
            let data = rev.entry.clone()?;
            Some(Entry {
                blacklist_id: id.clone(),
                record_version: rev.record_version.clone(),
                list_version: rev.list_version,
                data,
            })
        })
    }

    /// The entries in force at `at`, as currently known, ordered by `blacklist_id`.
    pub fn as_of(&self, at: Timestamp) -> Vec<Entry> {
        self.as_of_known(at, self.list_version)
    }

    /// The entries in force at `at` as the list knew them at `list_version` (an audit of what
    /// a platform was told at bid time).
    pub fn as_of_known(&self, at: Timestamp, list_version: u64) -> Vec<Entry> {
        self.entries_at(list_version).filter(|e| e.data.in_force_at(at)).collect()
    }

    /// Entries naming `code` (USCC or ID number) that are in force at `at`.
    pub fn listed(&self, code: &str, at: Timestamp) -> Vec<Entry> {
        self.entries_at(self.list_version)
            .filter(|e| e.data.names(code) && e.data.in_force_at(at))
            .collect()
    }

    /// Every current entry (retracted ones omitted), for a platform's first load.
    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            list_version: self.list_version,
            entries: self.entries_at(self.list_version).collect(),
        }
    }

    /// The latest state of every entry changed after list version `since`.
    ///
    /// # Errors
    ///
    /// `since` is newer than the list: the caller's copy comes from elsewhere and must reload.
    pub fn delta(&self, since: u64) -> Result<Delta, DeltaError> {
        if since > self.list_version {
            return Err(DeltaError::FutureVersion { since, current: self.list_version });
        }
        let changes = self
            .entries
            .iter()
            .filter_map(|(id, history)| {
                let rev = history.last().filter(|r| r.list_version > since)?;
                Some(Change {
                    blacklist_id: id.clone(),
                    record_version: rev.record_version.clone(),
                    list_version: rev.list_version,
                    data: rev.entry.clone(),
                })
            })
            .collect();
        Ok(Delta { since, list_version: self.list_version, changes })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn d(s: &str) -> Date {
        s.parse().expect("date")
    }

    fn at(s: &str) -> Timestamp {
        s.parse().expect("timestamp")
    }

    fn data(uscc: &str, listed_on: &str) -> EntryData {
        EntryData {
            subject: Subject {
                name: "湖北示例建设工程有限公司".into(),
                category: Some("法人及非法人组织".into()),
                uscc: Some(uscc.into()),
                id_no: None,
            },
            list_name: Some("招标投标黑名单".into()),
            reason: Some("串通投标".into()),
            deciding_authority: Some("湖北省公共资源交易监督管理局".into()),
            decision_doc_no: Some("鄂公管信〔2026〕5号".into()),
            restricted_actions: vec!["取消投标资格".into()],
            listed_on: d(listed_on),
            restriction_to: None,
            removed_on: None,
            removal_reason: None,
            revoked: false,
        }
    }

    fn event(id: &str, version: &str, entry: Option<EntryData>) -> ListEvent {
        ListEvent { blacklist_id: id.into(), record_version: version.into(), entry }
    }

    const USCC: &str = "91420100MA4P7Q8R8N";

    #[test]
    fn effective_period_listing_restriction_removal() {
        let mut e = data(USCC, "2026-03-01");
        e.restriction_to = Some(d("2027-02-28"));
        assert!(!e.in_force_at(at("2026-02-28T23:59:59+08:00")));
        assert!(e.in_force_at(at("2026-03-01T00:00:00+08:00")));
        assert!(e.in_force_at(at("2027-02-28T23:59:59+08:00")));
        assert!(!e.in_force_at(at("2027-03-01T00:00:00+08:00")));
        // Repaired on 2026-09-01: out of force from that day on.
        e.removed_on = Some(d("2026-09-01"));
        e.removal_reason = Some(RemovalReason::Repaired);
        assert!(e.in_force_at(at("2026-08-31T12:00:00+08:00")));
        assert!(!e.in_force_at(at("2026-09-01T00:00:00+08:00")));
        // Revoked without a removal date: never in force.
        let mut r = data(USCC, "2026-03-01");
        r.revoked = true;
        assert!(!r.in_force_at(at("2026-03-01T00:00:00+08:00")));
        assert_eq!(r.effective_to(), Some(r.effective_from()));
    }

    #[test]
    fn events_in_any_order_and_redelivered() {
        let listed = event("B1", "2026-03-01T10:00:00+08:00", Some(data(USCC, "2026-03-01")));
        let mut repaired_data = data(USCC, "2026-03-01");
        repaired_data.removed_on = Some(d("2026-09-01"));
        repaired_data.removal_reason = Some(RemovalReason::Repaired);
        let repaired = event("B1", "2026-09-01T10:00:00+08:00", Some(repaired_data));

        let mut list = DishonestList::new();
        assert_eq!(
            list.apply(repaired.clone()),
            ApplyOutcome::Applied { list_version: 1, conflict: false }
        );
        assert_eq!(
            list.apply(listed.clone()),
            ApplyOutcome::Superseded {
                current_version: "2026-09-01T10:00:00+08:00".into(),
                conflict: false
            }
        );
        assert_eq!(list.apply(repaired.clone()), ApplyOutcome::Duplicate);
        assert_eq!(list.version(), 1);
        assert_eq!(list.listed(USCC, at("2026-05-01T09:00:00+08:00")).len(), 1);
        assert!(list.listed(USCC, at("2026-09-02T09:00:00+08:00")).is_empty());
        assert!(list.listed("91420106MA4R2T6U2E", at("2026-05-01T09:00:00+08:00")).is_empty());

        // Retraction of the record removes the entry from every answer.
        let retract = event("B1", "2026-10-01T10:00:00+08:00", None);
        assert!(matches!(list.apply(retract), ApplyOutcome::Applied { list_version: 2, .. }));
        assert!(list.as_of(at("2026-05-01T09:00:00+08:00")).is_empty());
        assert!(list.snapshot().entries.is_empty());
        // ... while the list as known at version 1 still had it.
        assert_eq!(list.as_of_known(at("2026-05-01T09:00:00+08:00"), 1).len(), 1);
    }

    #[test]
    fn same_version_conflict_is_resolved_by_digest_whatever_the_order() {
        let a = event("B1", "v1", Some(data(USCC, "2026-03-01")));
        let b = event("B1", "v1", Some(data(USCC, "2026-03-02")));
        let mut ab = DishonestList::new();
        ab.apply(a.clone());
        let second = ab.apply(b.clone());
        let mut ba = DishonestList::new();
        ba.apply(b);
        let second_rev = ba.apply(a);
        // Same winner; only the knowledge-time list version differs with arrival order.
        assert_eq!(ids_and_data(ab.snapshot().entries), ids_and_data(ba.snapshot().entries));
        let conflicted = |o: &ApplyOutcome| match o {
            ApplyOutcome::Applied { conflict, .. } | ApplyOutcome::Superseded { conflict, .. } => {
                *conflict
            }
            ApplyOutcome::Duplicate => false,
        };
        assert!(conflicted(&second) && conflicted(&second_rev));
    }

    #[test]
    fn delta_and_snapshot() {
        let mut list = DishonestList::new();
        list.apply(event("B1", "v1", Some(data(USCC, "2026-03-01"))));
        list.apply(event("B2", "v1", Some(data("91420106MA4R2T6U2E", "2026-04-01"))));
        let mut platform = list.snapshot();
        assert_eq!(platform.list_version, 2);
        list.apply(event("B2", "v2", None));
        list.apply(event("B3", "v1", Some(data(USCC, "2026-05-01"))));
        let delta = list.delta(2).unwrap();
        assert_eq!(
            delta
                .changes
                .iter()
                .map(|c| (c.blacklist_id.as_str(), c.data.is_some()))
                .collect::<Vec<_>>(),
            vec![("B2", false), ("B3", true)]
        );
        platform.apply(&delta).unwrap();
        assert_eq!(platform, list.snapshot());
        assert_eq!(list.delta(4).unwrap().changes, vec![]);
        assert_eq!(list.delta(5), Err(DeltaError::FutureVersion { since: 5, current: 4 }));
        let mut stale = Snapshot { list_version: 1, entries: vec![] };
        assert_eq!(
            stale.apply(&list.delta(3).unwrap()),
            Err(DeltaError::Gap { have: 1, since: 3 })
        );
    }

    #[test]
    fn from_canonical_record_and_serde_round_trip() {
        let fields: Fields = serde_json::from_value(json!({
            "blacklist_id": "HB-BL-2026-0005",
            "list_name": "招标投标黑名单",
            "subject_name": "湖北示例建设工程有限公司",
            "subject_category": "法人及非法人组织",
            "subject_uscc": USCC,
            "reason": "串通投标",
            "decision_doc_no": "鄂公管信〔2026〕5号",
            "listed_on": "2026/03/01",
            "deciding_authority": "湖北省公共资源交易监督管理局",
            "restricted_actions": ["取消投标资格"],
            "restriction_from": "2026-03-01",
            "restriction_to": "2028-02-29",
            "removed_on": "2026-09-01",
            "removal_reason": "信用修复移出",
        }))
        .unwrap();
        let ev = ListEvent::from_record("2026-09-01T10:00:00+08:00", "upsert", &fields).unwrap();
        let entry = ev.entry.clone().unwrap();
        assert_eq!(entry.listed_on, d("2026-03-01"));
        assert_eq!(entry.removal_reason, Some(RemovalReason::Repaired));
        assert_eq!(entry.effective_to(), Some(at("2026-09-01T00:00:00+08:00")));
        let retract = ListEvent::from_record("v9", "retract", &fields).unwrap();
        assert_eq!(retract.entry, None);

        let mut bad = fields.clone();
        bad.insert("removal_reason".into(), json!("到期"));
        assert_eq!(
            ListEvent::from_record("v", "upsert", &bad),
            Err(ListRecordError::BadRemovalReason("到期".into()))
        );
        bad.insert("listed_on".into(), json!("2026-02-30"));
        assert!(matches!(
            ListEvent::from_record("v", "upsert", &bad),
            Err(ListRecordError::BadDate { field: "listed_on", .. })
        ));
        bad.remove("blacklist_id");
        assert_eq!(
            ListEvent::from_record("v", "upsert", &bad),
            Err(ListRecordError::Missing("blacklist_id"))
        );

        let mut list = DishonestList::new();
        list.apply(ev);
        let json = serde_json::to_string(&list).unwrap();
        let back: DishonestList = serde_json::from_str(&json).unwrap();
        assert_eq!(back, list);
        let snap = serde_json::to_value(list.snapshot()).unwrap();
        assert_eq!(snap["entries"][0]["removal_reason"], "信用修复移出");
        assert_eq!(snap["entries"][0]["blacklist_id"], "HB-BL-2026-0005");
    }

    // ---- properties ----

    fn arb_entry() -> impl Strategy<Value = Option<EntryData>> {
        let uscc = prop::sample::select(vec![USCC, "91420106MA4R2T6U2E"]);
        prop::option::weighted(
            0.85,
            (
                uscc,
                0i64..120,
                prop::option::of(0i64..200),
                prop::option::of(0i64..200),
                any::<bool>(),
                0u8..4,
            )
                .prop_map(|(uscc, listed, restr, removed, revoked, reason)| {
                    let base = d("2026-01-01");
                    let day =
                        |n: i64| base.checked_add(jiff::Span::new().days(n)).expect("in range");
                    let mut e = data(uscc, "2026-01-01");
                    e.listed_on = day(listed);
                    e.restriction_to = restr.map(|n| day(listed + n));
                    e.removed_on = removed.map(day);
                    e.revoked = revoked && reason == 0;
                    e.removal_reason = match reason {
                        1 => Some(RemovalReason::Expired),
                        2 => Some(RemovalReason::Repaired),
                        3 => Some(RemovalReason::Revoked),
                        _ => None,
                    };
                    e
                }),
        )
    }

    fn arb_events() -> impl Strategy<Value = Vec<ListEvent>> {
        prop::collection::vec(
            (prop::sample::select(vec!["B1", "B2", "B3"]), 0u8..6, arb_entry()).prop_map(
                |(id, v, entry)| ListEvent {
                    blacklist_id: id.into(),
                    record_version: format!("2026-0{}-01T00:00:00+08:00", v + 1),
                    entry,
                },
            ),
            0..14,
        )
    }

    fn instants() -> Vec<Timestamp> {
        (0..330)
            .step_by(7)
            .map(|n| {
                shanghai_midnight(
                    d("2025-12-25").checked_add(jiff::Span::new().days(n)).expect("date"),
                )
                .checked_add(jiff::Span::new().hours(n % 24))
                .expect("instant")
            })
            .collect()
    }

    /// Naive oracle: per entry the greatest (version, digest) event, then filter by interval.
    fn naive_as_of(events: &[ListEvent], at: Timestamp) -> Vec<(String, EntryData)> {
        let mut best: BTreeMap<&str, &ListEvent> = BTreeMap::new();
        for e in events {
            let replace = best.get(e.blacklist_id.as_str()).is_none_or(|cur| {
                (e.record_version.as_str(), e.digest())
                    > (cur.record_version.as_str(), cur.digest())
            });
            if replace {
                best.insert(&e.blacklist_id, e);
            }
        }
        best.into_iter()
            .filter_map(|(id, e)| {
                e.entry.clone().filter(|d| d.in_force_at(at)).map(|d| (id.to_owned(), d))
            })
            .collect()
    }

    fn ids_and_data(entries: Vec<Entry>) -> Vec<(String, EntryData)> {
        entries.into_iter().map(|e| (e.blacklist_id, e.data)).collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        #[test]
        fn as_of_matches_replay_in_any_order(events in arb_events(), seed in any::<u64>()) {
            let mut list = DishonestList::new();
            for e in &events {
                list.apply(e.clone());
            }
            // Another arrival order, with redeliveries.
            let mut shuffled = events.clone();
            shuffled.extend(events.iter().take(3).cloned());
            let n = shuffled.len().max(1);
            for i in 0..shuffled.len() {
                let j = (seed as usize).wrapping_mul(i + 7).wrapping_add(i * 31) % n;
                shuffled.swap(i, j);
            }
            let mut other = DishonestList::new();
            for e in &shuffled {
                other.apply(e.clone());
            }
            for t in instants() {
                let expected = naive_as_of(&events, t);
                prop_assert_eq!(&ids_and_data(list.as_of(t)), &expected);
                prop_assert_eq!(&ids_and_data(other.as_of(t)), &expected);
            }
            prop_assert_eq!(ids_and_data(list.snapshot().entries), ids_and_data(other.snapshot().entries));
        }

        #[test]
        fn history_and_deltas_are_consistent(events in arb_events(), cut in 0usize..14) {
            let cut = cut.min(events.len());
            let mut list = DishonestList::new();
            let mut prefix = DishonestList::new();
            for e in &events[..cut] {
                list.apply(e.clone());
                prefix.apply(e.clone());
            }
            let v = list.version();
            let mut platform = list.snapshot();
            for e in &events[cut..] {
                list.apply(e.clone());
            }
            // What the list knew at version v is what a list fed only the prefix says.
            for t in instants() {
                prop_assert_eq!(list.as_of_known(t, v), prefix.as_of(t));
            }
            // A platform at version v catches up exactly with one delta.
            platform.apply(&list.delta(v).expect("not in the future")).expect("no gap");
            prop_assert_eq!(platform, list.snapshot());
            // Serialisation loses nothing.
            let back: DishonestList = serde_json::from_str(&serde_json::to_string(&list).expect("ser")).expect("de");
            prop_assert_eq!(back, list);
        }
    }
}
