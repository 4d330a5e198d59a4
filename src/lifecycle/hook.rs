//! The lifecycle step of ingest (`after_accept`): what accepted records set off beyond their
//! own routed copies — retractions at every holder (a credit repair, a source's revocation, a
//! removal from the severe-dishonesty list), list events, bid-time credit warnings and the
//! publicity decision of failed information.
//!
//! Pure like the pipeline: the runtime asks [`needs`] what to look up, loads it from the store
//! into [`Known`], and calls [`after_accept`] *before* publishing, so the generated copies go
//! out under the same confirm wait as the document's own copies and the source is acknowledged
//! only after all of them were confirmed (a crash before that re-runs the whole step, and the
//! generated copies carry stable idempotency keys).

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::config::CompiledConfig;
use crate::config::raw::Audience;
use crate::domain::rules::RuleContext;
use crate::lifecycle::bid_warning::{self, ListAndPenalties, PublicisedPenalty};
use crate::lifecycle::dishonest_list::{DishonestList, ListEvent};
use crate::lifecycle::dispute::Dispute;
use crate::lifecycle::publicity::{FAILED_INFO_ANCHORS, PublicityDecision};
use crate::lifecycle::retraction::{
    self, AckTracker, CauseKind, Holder, RetractAction, RetractionCause,
};
use crate::lifecycle::{fields, shanghai_date};
use crate::pipeline::{self, CanonicalRecord, OutboundCopy, Processed, RecordStatus};
use crate::record::{Finding, Severity};
use crate::route::{RouteDecision, RouteInput};

/// A destination that was routed some version of a record (from the store's lineage).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HolderRow {
    pub destination: String,
    /// The highest version it accepted, `None` while nothing was delivered.
    pub delivered_version: Option<String>,
    /// The highest version routed to it.
    pub routed_version: String,
}

/// What the store knows about a record a retraction targets.
#[derive(Debug, Clone, Default)]
pub struct Target {
    /// Its newest stored canonical record.
    pub latest: Option<CanonicalRecord>,
    pub holders: Vec<HolderRow>,
}

/// The store lookups [`after_accept`] works on.
#[derive(Debug, Clone, Default)]
pub struct Known {
    pub targets: BTreeMap<String, Target>,
    /// The severe-dishonesty list as stored (only loaded when a bid is checked).
    pub list: DishonestList,
    /// Publicised penalties of the subjects of the bids being checked.
    pub penalties: Vec<PublicisedPenalty>,
    /// Stored objections by `objection_id`: those named by the batch's objections and every
    /// other one on their targets.
    pub disputes: BTreeMap<String, Dispute>,
}

/// What the runtime must look up before calling [`after_accept`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Needs {
    /// Record keys whose latest version and holders are needed.
    pub targets: BTreeSet<String>,
    /// Whether the dishonest list (and penalties of `subjects`) is needed.
    pub list: bool,
    /// USCCs named by bids (winner and candidates), for the penalty index.
    pub subjects: BTreeSet<String>,
    /// `objection_id`s of the batch's objections, whose stored state is needed.
    pub objections: BTreeSet<String>,
}

/// A record the step generated, with its routed copies.
#[derive(Debug, Clone)]
pub struct Generated {
    /// The canonical record as stored in lineage (for a retraction: the first holder's copy).
    pub record: CanonicalRecord,
    pub copies: Vec<OutboundCopy>,
    /// `retraction`, `credit_warning`, `dispute_hold` or `dispute_release` (lineage
    /// `doc_type` is `lifecycle:<kind>`).
    pub kind: &'static str,
}

/// A planned retraction with its acknowledgement tracker (the store keeps both).
#[derive(Debug, Clone)]
pub struct PlannedRetraction {
    pub cause: RetractionCause,
    pub tracker: AckTracker,
}

/// The publicity decision of one failed-information record version.
#[derive(Debug, Clone, Serialize)]
pub struct PublicityRow {
    pub record_key: String,
    pub record_version: String,
    pub catalog_item: String,
    pub source_org: String,
    pub decision: PublicityDecision,
}

/// Everything the step decided for one document.
#[derive(Debug, Clone, Default)]
pub struct Step {
    pub generated: Vec<Generated>,
    pub retractions: Vec<PlannedRetraction>,
    /// (record key, event) per accepted list entry.
    pub list_events: Vec<(String, ListEvent)>,
    pub publicity: Vec<PublicityRow>,
    /// What could not be done (logged by the runtime; never silently dropped).
    pub notes: Vec<String>,
    /// Warnings put on the document's records (record key, rule, message), already applied to
    /// the document: its receipt carries them.
    pub warnings: Vec<(String, &'static str, String)>,
    /// Objections whose state moved, with whether they now hold their record.
    pub disputes: Vec<DisputeRow>,
}

/// An objection's new state, as the store keeps it.
#[derive(Debug, Clone, Serialize)]
pub struct DisputeRow {
    pub dispute: Dispute,
    /// Whether the target record is held (the delivery workers of suspending destinations
    /// park its copies while it is).
    pub holding: bool,
}

/// Records of the batch so far by key: the newest record and (destination, version) of every
/// copy routed in the batch.
pub(super) type InBatch = BTreeMap<String, (CanonicalRecord, Vec<(String, String)>)>;

fn accepted(processed: &Processed) -> impl Iterator<Item = &CanonicalRecord> {
    processed
        .records
        .iter()
        .filter(|r| r.status != RecordStatus::Rejected)
        .filter_map(|r| r.record.as_ref())
}

/// The record key a record asks to retract, if it is a cause.
fn target_of(record: &CanonicalRecord) -> Option<String> {
    let item = record.get_str("catalog_item");
    if record.get_str("operation") == "retract" {
        return Some(record.record_key().to_owned());
    }
    match item {
        "credit_repair" => fields::text(&record.fields, "target_record_key").map(str::to_owned),
        "dishonest_list_entry" if fields::date(&record.fields, "removed_on").is_some() => {
            Some(record.record_key().to_owned())
        }
        _ => None,
    }
}

/// The lookups the documents of a batch need.
pub fn needs(docs: &[&Processed]) -> Needs {
    let mut needs = Needs::default();
    for record in docs.iter().flat_map(|p| accepted(p)) {
        if let Some(target) = target_of(record) {
            needs.targets.insert(target);
        }
        if record.get_str("catalog_item") == "credit_objection" {
            if let Some(target) = fields::text(&record.fields, "target_record_key") {
                needs.targets.insert(target.to_owned());
            }
            if let Some(id) = fields::text(&record.fields, "objection_id") {
                needs.objections.insert(id.to_owned());
            }
        }
        if record.get_str("catalog_item") == "bid_result" {
            needs.list = true;
            if let Some(uscc) = fields::text(&record.fields, "winner_uscc") {
                needs.subjects.insert(uscc.to_owned());
            }
            let candidates = record.fields.get("candidates").and_then(|v| v.as_array());
            for c in candidates.into_iter().flatten().filter_map(|c| c.as_object()) {
                if let Some(uscc) = fields::text(c, "uscc") {
                    needs.subjects.insert(uscc.to_owned());
                }
            }
        }
    }
    needs
}

/// Whether a destination publishes what it receives (public sites, and government credit
/// platforms, which publish and share onwards): 轻微 information is not sent to it.
fn publishes(config: &CompiledConfig, destination: &str) -> bool {
    let audience = config
        .adapters
        .get(destination)
        .and_then(|a| a.destination.as_ref())
        .map_or(Audience::Government, |d| d.raw.audience);
    RetractAction::for_audience(audience).contains(&RetractAction::EndPublicity)
}

pub(super) fn audience_of(config: &CompiledConfig, destination: &str) -> Audience {
    config
        .adapters
        .get(destination)
        .and_then(|a| a.destination.as_ref())
        .map_or(Audience::Government, |d| d.raw.audience)
}

/// Runs the lifecycle step over the documents of a batch, in order: one [`Step`] per
/// document. Documents are changed in place only to hold back copies of information that is
/// not publicised (轻微), with a warning on the record saying so.
///
/// Records earlier in the batch count as known: a repair right behind its target in the same
/// batch still finds it (its copies as queued holders).
pub fn after_accept(
    config: &CompiledConfig,
    docs: &mut [&mut Processed],
    known: &Known,
) -> Vec<Step> {
    let mut list = known.list.clone();
    // Objections moved earlier in the batch (a redelivered pair of status updates).
    let mut disputes: BTreeMap<String, Dispute> = BTreeMap::new();
    // Record key → (latest record, destinations routed in this batch with the version).
    let mut in_batch: InBatch = BTreeMap::new();
    let mut steps = Vec::with_capacity(docs.len());
    for processed in docs.iter_mut() {
        let mut step = Step::default();
        publicity(config, processed, &mut step);
        list_change(config, processed);
        for record in processed.records.iter().filter(|r| r.status != RecordStatus::Rejected) {
            let Some(canonical) = &record.record else { continue };
            let entry = in_batch
                .entry(canonical.record_key().to_owned())
                .or_insert_with(|| (canonical.clone(), Vec::new()));
            if canonical.record_version() >= entry.0.record_version() {
                entry.0 = canonical.clone();
            }
            entry.1.extend(
                record
                    .copies
                    .iter()
                    .map(|c| (c.destination.clone(), canonical.record_version().to_owned())),
            );
        }
        for canonical in accepted(processed) {
            if canonical.get_str("catalog_item") == "dishonest_list_entry" {
                match ListEvent::from_record(
                    canonical.record_version(),
                    canonical.get_str("operation"),
                    &canonical.fields,
                ) {
                    Ok(event) => {
                        list.apply(event.clone());
                        step.list_events.push((canonical.record_key().to_owned(), event));
                    }
                    Err(e) => step
                        .notes
                        .push(format!("{}: not a list event: {e}", canonical.record_key())),
                }
            }
            retraction_for(config, canonical, known, &in_batch, &mut step);
            if canonical.get_str("catalog_item") == "credit_objection" {
                super::objection::on_objection(
                    config,
                    canonical,
                    known,
                    &in_batch,
                    &mut disputes,
                    &mut step,
                );
            }
            if canonical.get_str("catalog_item") == "bid_result" {
                warnings_for(config, canonical, &list, &known.penalties, &mut step);
            }
        }
        for (key, rule, message) in &step.warnings {
            warn_record(config, processed, key, rule, message);
        }
        steps.push(step);
    }
    steps
}

/// Adds a warning to the document's record with `key` (and the document's status follows).
fn warn_record(
    config: &CompiledConfig,
    processed: &mut Processed,
    key: &str,
    rule: &'static str,
    message: &str,
) {
    for record in processed.records.iter_mut().filter(|r| r.status != RecordStatus::Rejected) {
        let Some(canonical) = &record.record else { continue };
        if canonical.record_key() != key {
            continue;
        }
        let finding = Finding::warning(rule, "", message);
        let violation = match config.catalog.latest(canonical.get_str("catalog_item")) {
            Some(meta) => crate::validate::label(meta, finding),
            None => crate::record::Violation {
                rule: rule.to_owned(),
                path: String::new(),
                field: String::new(),
                code: None,
                message: message.to_owned(),
                severity: Severity::Warning,
            },
        };
        record.violations.push(violation);
        record.status = RecordStatus::AcceptedWithWarnings;
    }
    if processed.status == crate::pipeline::ReceiptStatus::Accepted
        && processed.records.iter().any(|r| r.status == RecordStatus::AcceptedWithWarnings)
    {
        processed.status = crate::pipeline::ReceiptStatus::AcceptedWithWarnings;
    }
}

/// Publicity of failed information: the decision is kept; a record not publicised (轻微) is
/// not forwarded to publishing destinations, and its receipt says so.
fn publicity(config: &CompiledConfig, processed: &mut Processed, step: &mut Step) {
    for record in processed.records.iter_mut().filter(|r| r.status != RecordStatus::Rejected) {
        let Some(canonical) = &record.record else { continue };
        let item = canonical.get_str("catalog_item");
        if canonical.get_str("operation") != "upsert"
            || !FAILED_INFO_ANCHORS.iter().any(|(i, _)| *i == item)
        {
            continue;
        }
        let decision = match config.lifecycle.publicity.decide(
            &config.calendar,
            item,
            &canonical.fields,
            None,
        ) {
            Ok(d) => d,
            Err(e) => {
                step.notes.push(format!("{}: no publicity decision: {e}", canonical.record_key()));
                continue;
            }
        };
        if matches!(decision, PublicityDecision::DoNotPublish { .. }) {
            let before = record.copies.len();
            record.copies.retain(|c| !publishes(config, &c.destination));
            if record.copies.len() != before {
                let item_meta = config.catalog.latest(item);
                let finding = Finding::warning(
                    "LIFECYCLE-NOT-PUBLICISED",
                    "",
                    "轻微失信信息不予公示：未转发至公示平台",
                );
                record.violations.push(match item_meta {
                    Some(meta) => crate::validate::label(meta, finding),
                    None => crate::record::Violation {
                        rule: finding.rule.to_owned(),
                        path: String::new(),
                        field: String::new(),
                        code: None,
                        message: finding.message,
                        severity: Severity::Warning,
                    },
                });
                record.status = RecordStatus::AcceptedWithWarnings;
            }
        }
        step.publicity.push(PublicityRow {
            record_key: canonical.record_key().to_owned(),
            record_version: canonical.record_version().to_owned(),
            catalog_item: item.to_owned(),
            source_org: canonical.get_str("source_org_uscc").to_owned(),
            decision,
        });
    }
    if processed.records.iter().any(|r| r.status == RecordStatus::AcceptedWithWarnings)
        && processed.status == crate::pipeline::ReceiptStatus::Accepted
    {
        processed.status = crate::pipeline::ReceiptStatus::AcceptedWithWarnings;
    }
}

/// List entries travel as list changes: their copies carry `list_change` with the entry's
/// effective period (from 00:00 of the listing day; to the end of the restriction, the
/// removal, or the listing itself when revoked), so a trading platform applies them as a
/// delta without re-deriving the period from the fields.
fn list_change(config: &CompiledConfig, processed: &mut Processed) {
    for record in processed.records.iter_mut().filter(|r| r.status != RecordStatus::Rejected) {
        let Some(canonical) = record.record.as_mut() else { continue };
        if canonical.get_str("catalog_item") != "dishonest_list_entry" {
            continue;
        }
        let Ok(event) = ListEvent::from_record(
            canonical.record_version(),
            canonical.get_str("operation"),
            &canonical.fields,
        ) else {
            continue;
        };
        let Some(entry) = event.entry else { continue };
        let mut change = serde_json::Map::new();
        change.insert(
            "effective_from".into(),
            pipeline::rfc3339_shanghai(entry.effective_from()).into(),
        );
        change.insert(
            "effective_to".into(),
            entry
                .effective_to()
                .map_or(serde_json::Value::Null, |t| pipeline::rfc3339_shanghai(t).into()),
        );
        canonical.envelope.insert("list_change".into(), serde_json::Value::Object(change));
        let Some(item) = config.catalog.latest("dishonest_list_entry") else { continue };
        let canonical = &*canonical;
        record.copies = record
            .copies
            .iter()
            .filter_map(|c| {
                pipeline::encode_copy(
                    config,
                    item,
                    canonical,
                    &c.destination,
                    c.idempotency_key.clone(),
                )
            })
            .collect();
    }
}

/// Plans the retraction a record causes, if any.
fn retraction_for(
    config: &CompiledConfig,
    record: &CanonicalRecord,
    known: &Known,
    in_batch: &InBatch,
    step: &mut Step,
) {
    let Some(target_key) = target_of(record) else { return };
    // Generated retractions are never causes of further ones.
    if record.get_str("source_adapter") == bid_warning::GENERATED_BY {
        return;
    }
    let cause = match record.get_str("catalog_item") {
        "credit_repair" if record.get_str("operation") != "retract" => {
            match RetractionCause::from_repair(record) {
                Ok((cause, _)) => cause,
                Err(e) => {
                    step.notes.push(format!("{}: repair not applied: {e}", record.record_key()));
                    return;
                }
            }
        }
        "dishonest_list_entry" if record.get_str("operation") != "retract" => {
            match RetractionCause::from_list_removal(record) {
                Ok(Some(cause)) => cause,
                Ok(None) => return,
                Err(e) => {
                    step.notes.push(format!("{}: removal not applied: {e}", record.record_key()));
                    return;
                }
            }
        }
        _ => {
            let received: Option<jiff::Timestamp> = record.get_str("received_at").parse().ok();
            let Some(received) = received else {
                step.notes.push(format!("{}: revocation without received_at", record.record_key()));
                return;
            };
            RetractionCause {
                kind: CauseKind::Revocation,
                basis_record_key: record.record_key().to_owned(),
                basis_record_version: record.record_version().to_owned(),
                decided_on: shanghai_date(received),
            }
        }
    };
    let (latest, mut holders) = target_view(config, &target_key, known, in_batch);
    if cause.kind == CauseKind::Revocation {
        // A source's own retract already goes where today's routes send it: those holders get
        // that copy (its version supersedes what they hold), not a second, generated one.
        let own: BTreeSet<&str> = in_batch
            .get(&target_key)
            .map(|(_, copies)| {
                copies
                    .iter()
                    .filter(|(_, version)| version == record.record_version())
                    .map(|(destination, _)| destination.as_str())
                    .collect()
            })
            .unwrap_or_default();
        holders.retain(|h| !own.contains(h.destination.as_str()));
        if holders.is_empty() {
            return;
        }
    }
    let Some(latest) = latest else {
        step.notes.push(format!(
            "{}: retraction target {target_key} was never received; nothing to retract",
            record.record_key()
        ));
        return;
    };
    // 527号: repair only after the minimum publicity period. The deciding body has decided,
    // so the record is still withdrawn, but the early repair is reported to the source.
    if let CauseKind::Repair { .. } = cause.kind
        && let Ok(decision) = config.lifecycle.publicity.decide(
            &config.calendar,
            latest.get_str("catalog_item"),
            &latest.fields,
            None,
        )
        && let Err(early) = decision.check_repair(cause.decided_on)
    {
        step.warnings.push((
            record.record_key().to_owned(),
            "LIFECYCLE-REPAIR-EARLY",
            format!(
                "信用修复决定日期 {} 早于最短公示期届满日 {}（{}）",
                early.on,
                early.min_end,
                decision.rule_version()
            ),
        ));
    }
    plan_at_holders(config, &target_key, &latest, cause, &holders, step);
}

/// The newest version of a record (stored or earlier in the batch) and every destination that
/// was ever routed any version of it (lineage), plus this batch's copies.
pub(super) fn target_view(
    config: &CompiledConfig,
    target_key: &str,
    known: &Known,
    in_batch: &InBatch,
) -> (Option<CanonicalRecord>, Vec<Holder>) {
    let stored = known.targets.get(target_key);
    let batch = in_batch.get(target_key);
    let latest = [stored.and_then(|t| t.latest.as_ref()), batch.map(|b| &b.0)]
        .into_iter()
        .flatten()
        .max_by(|a, b| a.record_version().cmp(b.record_version()))
        .cloned();
    let mut holders: BTreeMap<String, Holder> = BTreeMap::new();
    let rows = stored.map(|t| t.holders.as_slice()).unwrap_or_default();
    let batch_rows = batch.map(|b| b.1.as_slice()).unwrap_or_default();
    for (destination, delivered, routed) in rows
        .iter()
        .map(|h| (&h.destination, h.delivered_version.clone(), h.routed_version.clone()))
        .chain(batch_rows.iter().map(|(d, v)| (d, None, v.clone())))
    {
        let holder = holders.entry(destination.clone()).or_insert_with(|| Holder {
            destination: destination.clone(),
            audience: audience_of(config, destination),
            delivered_version: None,
            queued_version: None,
        });
        if delivered > holder.delivered_version {
            holder.delivered_version = delivered;
        }
        if Some(&routed) > holder.queued_version.as_ref() {
            holder.queued_version = Some(routed);
        }
    }
    (latest, holders.into_values().collect())
}

/// Plans a retraction of `latest` at `holders` and renders each holder's retract copy into
/// `step`; problems become notes.
pub(super) fn plan_at_holders(
    config: &CompiledConfig,
    target_key: &str,
    latest: &CanonicalRecord,
    cause: RetractionCause,
    holders: &[Holder],
    step: &mut Step,
) {
    if holders.is_empty() {
        step.notes
            .push(format!("{target_key}: no destination ever received it; nothing to retract"));
        return;
    }
    let plan = match retraction::plan(
        target_key,
        latest,
        &cause,
        holders,
        &config.lifecycle.deadlines,
        &config.calendar,
    ) {
        Ok(plan) => plan,
        Err(e) => {
            step.notes.push(format!("{target_key}: retraction not planned: {e}"));
            return;
        }
    };
    let Some(item) = config.catalog.latest(latest.get_str("catalog_item")) else {
        step.notes.push(format!("{target_key}: unknown catalog item"));
        return;
    };
    // Every holder gets the retract record, also one whose copy still looked queued: it may be
    // delivered between this lookup and the commit, and a copy still queued ahead of the
    // retraction is delivered first (same queue, same lane), never after it.
    let copies: Vec<OutboundCopy> = plan
        .operations
        .iter()
        .filter_map(|op| {
            pipeline::encode_copy(
                config,
                item,
                &op.record,
                &op.destination,
                op.idempotency_key.clone(),
            )
        })
        .collect();
    if let Some(first) = plan.operations.first() {
        let mut record = first.record.clone();
        // The stored copy names no single holder's actions.
        if let Some(serde_json::Value::Object(r)) = record.envelope.get_mut("retraction") {
            r.remove("actions");
            r.remove("supersedes_version");
        }
        step.generated.push(Generated { record, copies, kind: "retraction" });
    }
    step.retractions.push(PlannedRetraction { cause: plan.cause, tracker: plan.tracker });
}

/// The stop-publicity retraction of a failed-information record whose maximum publicity
/// period ended on `stop_on - 1` (the publicity timer calls this with the store's view of the
/// record and its holders).
pub fn publicity_ended(
    config: &CompiledConfig,
    latest: &CanonicalRecord,
    holders: &[HolderRow],
    stop_on: jiff::civil::Date,
) -> Step {
    let mut step = Step::default();
    let cause = RetractionCause {
        kind: CauseKind::PublicityEnded,
        basis_record_key: latest.record_key().to_owned(),
        basis_record_version: latest.record_version().to_owned(),
        decided_on: stop_on,
    };
    let holders: Vec<Holder> = holders
        .iter()
        .map(|h| Holder {
            destination: h.destination.clone(),
            audience: audience_of(config, &h.destination),
            delivered_version: h.delivered_version.clone(),
            queued_version: Some(h.routed_version.clone()),
        })
        .collect();
    plan_at_holders(config, latest.record_key(), latest, cause, &holders, &mut step);
    step
}

/// Bid-time credit warnings for an accepted bid.
fn warnings_for(
    config: &CompiledConfig,
    bid: &CanonicalRecord,
    list: &DishonestList,
    penalties: &[PublicisedPenalty],
    step: &mut Step,
) {
    let Some(bw) = &config.lifecycle.bid_warning else { return };
    let Some(alert_item) = config.catalog.latest("supervision_alert") else {
        step.notes.push("supervision_alert is not in the catalog: no credit warnings".into());
        return;
    };
    let lookup = ListAndPenalties { list, penalties };
    let check = match bid_warning::check_bid(bid, &lookup, bw, alert_item) {
        Ok(check) => check,
        Err(e) => {
            step.notes.push(format!("{}: credit check not done: {e}", bid.record_key()));
            return;
        }
    };
    for name in &check.unchecked {
        step.notes.push(format!("{}: {name} has no USCC; not checked", bid.record_key()));
    }
    let received_at_date = bid
        .get_str("received_at")
        .parse::<jiff::Timestamp>()
        .map(shanghai_date)
        .unwrap_or_else(|_| shanghai_date(check.as_of));
    let ctx = RuleContext { received_at_date, working_days: Some(&config.calendar) };
    for warning in check.warnings {
        let mut record = warning.record;
        let mut validated = record.fields.clone();
        let violations = crate::validate::validate(alert_item, &mut validated, &ctx);
        if violations.iter().any(|v| v.severity == Severity::Error) {
            let rules: Vec<&str> = violations.iter().map(|v| v.rule.as_str()).collect();
            step.notes.push(format!(
                "{}: generated credit warning failed validation ({}); not sent",
                record.record_key(),
                rules.join(", ")
            ));
            continue;
        }
        record.fields = validated;
        let decision = config.router.route(&RouteInput {
            catalog_item: &alert_item.item,
            operation: "upsert",
            source_adapter: bid_warning::GENERATED_BY,
            fields: &record.fields,
        });
        let RouteDecision::To(destinations) = decision else {
            step.notes.push(format!("{}: credit warning matched no route", record.record_key()));
            continue;
        };
        let copies = destinations
            .iter()
            .filter_map(|dest| {
                let key =
                    pipeline::idempotency_key(dest, record.record_key(), record.record_version());
                pipeline::encode_copy(config, alert_item, &record, dest, key)
            })
            .collect();
        step.generated.push(Generated { record, copies, kind: "credit_warning" });
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::pipeline::Inbound;

    fn config() -> CompiledConfig {
        CompiledConfig::load(
            &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config"),
            &crate::config::LoadOptions::default(),
        )
        .unwrap()
    }

    fn fixture(adapter: &str, case: &str, file: &str) -> Vec<u8> {
        std::fs::read(format!(
            "{}/adapters/fixtures/{adapter}/{case}/{file}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap()
    }

    fn process(
        config: &CompiledConfig,
        adapter: &str,
        doc_type: &str,
        body: &[u8],
        id: &str,
    ) -> Processed {
        pipeline::process(
            config,
            &Inbound {
                adapter,
                doc_type,
                body,
                content_type: None,
                message_id: id,
                correlation_id: None,
                received_at: "2026-11-17T09:00:00+08:00".parse().unwrap(),
                source_timestamp: None,
            },
        )
    }

    /// The pipeline's result for a shipped fixture case's `input.json`, sent by the adapter
    /// the case belongs to.
    fn process_fixture(
        config: &CompiledConfig,
        adapter: &str,
        doc_type: &str,
        case: &str,
        id: &str,
    ) -> Processed {
        process(config, adapter, doc_type, &fixture(adapter, case, "input.json"), id)
    }

    #[test]
    fn a_repair_right_behind_its_target_in_one_batch_retracts_the_queued_copy() {
        let config = config();
        let mut penalty =
            process_fixture(&config, "wh-ggzy", "penalty", "penalty-company-ok", "m1");
        let mut repair = process_fixture(&config, "hb-credit", "repair", "repair-ok", "m2");
        let needs = needs(&[&penalty, &repair]);
        assert!(needs.targets.contains("admin_penalty:11420000MB0P1Q2R33|鄂公管罚〔2026〕12号"));
        let steps = after_accept(&config, &mut [&mut penalty, &mut repair], &Known::default());
        assert!(steps[0].generated.is_empty());
        assert_eq!(steps[0].publicity.len(), 1, "the penalty's publicity decision is kept");
        let retraction = &steps[1].generated[0];
        assert_eq!(retraction.kind, "retraction");
        let destinations: Vec<&str> =
            retraction.copies.iter().map(|c| c.destination.as_str()).collect();
        assert_eq!(destinations, ["hb-credit"]);
        assert_eq!(retraction.record.get_str("operation"), "retract");
        let held = penalty.records[0].record.as_ref().unwrap().record_version().to_owned();
        assert!(retraction.record.record_version() > held.as_str());
        // Planning again gives the same idempotency keys (a redelivered repair).
        let again = after_accept(&config, &mut [&mut penalty, &mut repair], &Known::default());
        assert_eq!(
            again[1].generated[0].copies[0].idempotency_key,
            retraction.copies[0].idempotency_key
        );
    }

    #[test]
    fn a_repair_of_an_unknown_record_is_a_note_not_a_retraction() {
        let config = config();
        let mut repair = process_fixture(&config, "hb-credit", "repair", "repair-ok", "m2");
        let steps = after_accept(&config, &mut [&mut repair], &Known::default());
        assert!(steps[0].generated.is_empty() && steps[0].retractions.is_empty());
        assert!(steps[0].notes[0].contains("never received"), "{:?}", steps[0].notes);
    }
}
