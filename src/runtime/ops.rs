//! Operations shared by the admin API and the CLI: record histories as shown to people (Chinese
//! field labels from the catalog, personal identifiers masked unless asked), dead-letter
//! replay (filtered, rate-limited, linked to the original, audited), and re-ingest of
//! rejected documents after a mapping or catalog fix.

use std::time::Duration;

use lapin::types::FieldTable;
use serde::Serialize;
use serde_json::{Map, Value};

use crate::broker::{self, BrokerError, Outgoing};
use crate::catalog::Catalog;
use crate::domain::ids;
use crate::runtime::delivery::REPLAY_OF;
use crate::runtime::ingest::headers;
use crate::store::dlq::{DlqFilter, Replayed};
use crate::store::lineage::RecordHistory;
use crate::store::{Store, StoreError, Write};

/// Masks one value by the field's personal-data class (`x-pii`), or by its name when the
/// catalog does not know the field: ID numbers and accounts keep their ends, names their
/// first character.
pub fn mask_value(pii: Option<&str>, field: &str, value: &Value) -> Value {
    let Value::String(s) = value else {
        return match value {
            Value::Array(items) => Value::Array(
                items
                    .iter()
                    .map(|item| match item {
                        Value::Object(o) => Value::Object(
                            o.iter().map(|(k, v)| (k.clone(), mask_value(None, k, v))).collect(),
                        ),
                        other => mask_value(pii, field, other),
                    })
                    .collect(),
            ),
            other => other.clone(),
        };
    };
    let class =
        pii.or_else(|| (field == "id_no" || field.ends_with("_id_no")).then_some("resident_id"));
    Value::String(match class {
        Some("resident_id" | "bank_account") => ids::mask_id(s),
        Some("phone") => ids::mask_phone(s),
        Some("person_name" | "home_address") => ids::mask_name(s),
        _ => s.clone(),
    })
}

/// A canonical record for display: every field with its Chinese label (and 信用中国 column
/// code), values masked unless `reveal`.
pub fn present_record(catalog: &Catalog, canonical: &Value, reveal: bool) -> Value {
    let Some(object) = canonical.as_object() else { return canonical.clone() };
    let item = catalog.get(
        object.get("catalog_item").and_then(Value::as_str).unwrap_or_default(),
        object.get("catalog_version").and_then(Value::as_str).unwrap_or_default(),
    );
    // A subject's name is a person's name when the subject is a natural person (自然人).
    let natural_person = item
        .and_then(|i| i.subject.get("category"))
        .and_then(|field| object.get(field))
        .and_then(Value::as_str)
        .is_some_and(|category| category.contains("自然人"));
    let pii_of = |name: &str| {
        let pii = item.and_then(|i| i.fields.get(name)).and_then(|m| m.pii.as_deref());
        match pii {
            Some("subject_name") if natural_person => Some("person_name"),
            other => other,
        }
    };
    let mut fields = Vec::new();
    let mut envelope = Map::new();
    for (name, value) in object {
        let shown = if reveal { value.clone() } else { mask_value(pii_of(name), name, value) };
        match item.filter(|i| i.fields.contains_key(name)) {
            Some(item) => {
                let (label, code) = item.label_for(&format!("/{name}"));
                fields.push(serde_json::json!({
                    "field": name, "label": label, "code": code, "value": shown,
                }));
            }
            None if name == "normalized_from" && !reveal => {
                // What a value was before normalisation is as personal as the value.
                let masked: Map<String, Value> = value
                    .as_object()
                    .map(|o| {
                        o.iter().map(|(k, v)| (k.clone(), mask_value(pii_of(k), k, v))).collect()
                    })
                    .unwrap_or_default();
                envelope.insert(name.clone(), Value::Object(masked));
            }
            None => {
                envelope.insert(name.clone(), shown);
            }
        }
    }
    serde_json::json!({
        "title": item.map(|i| i.title.clone()),
        "envelope": envelope,
        "fields": fields,
    })
}

/// A record history for display: each version's canonical record through [`present_record`].
pub fn present_history(catalog: &Catalog, history: &RecordHistory, reveal: bool) -> Value {
    let mut value = serde_json::to_value(history).unwrap_or(Value::Null);
    if let Some(versions) = value.get_mut("versions").and_then(Value::as_array_mut) {
        for version in versions {
            if let Some(canonical) = version.get("canonical").cloned() {
                version["record"] = present_record(catalog, &canonical, reveal);
            }
            if let Some(object) = version.as_object_mut() {
                object.remove("canonical");
            }
        }
    }
    value
}

/// How a replay runs.
#[derive(Debug, Clone, PartialEq)]
pub struct ReplayOptions {
    /// Only report what would be replayed.
    pub dry_run: bool,
    /// Copies per second (0: as fast as the broker confirms).
    pub rate: f64,
    /// Who asked (for the audit log).
    pub actor: String,
}

/// One dead letter in a replay report.
#[derive(Debug, Clone, Serialize)]
pub struct ReplayItem {
    pub dead_id: String,
    pub destination: String,
    pub record_key: String,
    pub record_version: String,
    pub reason_class: String,
    /// `replayed`, `would_replay` (dry run) or `failed: …`.
    pub outcome: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub replay_id: String,
}

/// What a replay did.
#[derive(Debug, Clone, Serialize)]
pub struct ReplayReport {
    pub dry_run: bool,
    pub matched: usize,
    pub replayed: usize,
    pub failed: usize,
    pub items: Vec<ReplayItem>,
    /// The audit entry of this replay.
    pub audit_seq: Option<i64>,
}

#[derive(Debug, thiserror::Error)]
pub enum OpsError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Broker(#[from] BrokerError),
    #[error("broker connection is down")]
    NotConnected,
    #[error("no dead letter {0}")]
    NotFound(String),
}

/// Publishes the dead letters matching `filter` to `credgate.route` again (routing key = the
/// destination, the same idempotency key, publisher confirms, mandatory), in pipelined chunks
/// paced to `rate` copies per second (0: unlimited), each marked with the dead letter it came from (`x-credgate-replay-of`) and recorded
/// as a replay. Delivery skips a version that was delivered meanwhile, so replaying twice never
/// delivers twice. A broker failure stops the replay (what was confirmed stays replayed).
/// `progress(done, total)` is called after each copy.
///
/// # Errors
///
/// The dead letters could not be read.
pub async fn replay(
    store: &Store,
    channel: Option<&lapin::Channel>,
    filter: &DlqFilter,
    options: &ReplayOptions,
    progress: impl FnMut(usize, usize),
) -> Result<ReplayReport, OpsError> {
    let letters = store.dead_letters(filter).await?;
    let target = if filter.destination.is_empty() { "*" } else { filter.destination.as_str() };
    let selection = serde_json::json!({ "filter": filter_json(filter) });
    replay_letters(store, channel, letters, selection, target, options, progress).await
}

/// Replays exactly the named dead letters, whether or not they were replayed before (the
/// console's button on one dead letter); otherwise as [`replay`].
///
/// # Errors
///
/// A dead letter is unknown ([`OpsError::NotFound`]) or the store failed.
pub async fn replay_ids(
    store: &Store,
    channel: Option<&lapin::Channel>,
    dead_ids: &[String],
    options: &ReplayOptions,
) -> Result<ReplayReport, OpsError> {
    let mut letters = Vec::with_capacity(dead_ids.len());
    for id in dead_ids {
        let letter = store.dead_letter(id).await?.ok_or_else(|| OpsError::NotFound(id.clone()))?;
        letters.push(letter.summary);
    }
    let destinations: std::collections::BTreeSet<&str> =
        letters.iter().map(|l| l.destination.as_str()).collect();
    let target = match destinations.into_iter().collect::<Vec<_>>().as_slice() {
        [only] => (*only).to_owned(),
        _ => "*".to_owned(),
    };
    let selection = serde_json::json!({ "requested": dead_ids });
    replay_letters(store, channel, letters, selection, &target, options, |_, _| {}).await
}

/// Publishes the given dead letters and audits the replay (`selection` says how they were
/// chosen, `target` is the destination or `*`).
async fn replay_letters(
    store: &Store,
    channel: Option<&lapin::Channel>,
    letters: Vec<crate::store::dlq::DeadLetterSummary>,
    selection: Value,
    target: &str,
    options: &ReplayOptions,
    mut progress: impl FnMut(usize, usize),
) -> Result<ReplayReport, OpsError> {
    let total = letters.len();
    let mut report = ReplayReport {
        dry_run: options.dry_run,
        matched: total,
        replayed: 0,
        failed: 0,
        items: Vec::with_capacity(total),
        audit_seq: None,
    };
    // Copies go out in chunks published under one wait for confirms, and each chunk's replay
    // links commit in one transaction: one confirm round trip and one commit per letter made a
    // 10,000-letter replay take minutes. A rate limit paces the chunks (small ones, so the
    // pacing stays smooth); a failure stops the replay (the rest is reported, not attempted).
    let chunk_size =
        if options.rate > 0.0 { (options.rate / 5.0).clamp(1.0, 200.0) as usize } else { 200 };
    let mut next = tokio::time::Instant::now();
    let mut stopped: Option<String> = None;
    let mut done = 0;
    let mut letters = letters.into_iter().peekable();
    while letters.peek().is_some() {
        let chunk: Vec<_> = letters.by_ref().take(chunk_size).collect();
        let mut items: Vec<ReplayItem> = chunk
            .iter()
            .map(|letter| ReplayItem {
                dead_id: letter.dead_id.clone(),
                destination: letter.destination.clone(),
                record_key: letter.record_key.clone(),
                record_version: letter.record_version.clone(),
                reason_class: letter.reason_class.clone(),
                outcome: "would_replay".to_owned(),
                replay_id: String::new(),
            })
            .collect();
        if !options.dry_run {
            if options.rate > 0.0 {
                tokio::time::sleep_until(next).await;
                next = tokio::time::Instant::now()
                    + Duration::from_secs_f64(chunk.len() as f64 / options.rate);
            }
            if stopped.is_none()
                && let Err(error) = replay_chunk(store, channel, &mut items, &options.actor).await
            {
                stopped = Some(error.to_string());
            }
            for item in &mut items {
                if item.outcome == "replayed" {
                    report.replayed += 1;
                } else {
                    if item.outcome == "would_replay" {
                        let why = stopped.as_deref().unwrap_or("unknown");
                        item.outcome =
                            format!("failed: not attempted after an earlier failure ({why})");
                    }
                    report.failed += 1;
                }
            }
        }
        done += items.len();
        report.items.extend(items);
        if !options.dry_run {
            progress(done, total);
        }
    }
    if !options.dry_run && total > 0 {
        let ids: Vec<&str> = report
            .items
            .iter()
            .filter(|i| i.outcome == "replayed")
            .map(|i| i.dead_id.as_str())
            .take(1000)
            .collect();
        let mut details = serde_json::json!({
            "rate": options.rate,
            "matched": report.matched,
            "replayed": report.replayed,
            "failed": report.failed,
            "dead_ids": ids,
        });
        if let (Some(details), Value::Object(selection)) = (details.as_object_mut(), selection) {
            details.extend(selection);
        }
        report.audit_seq =
            Some(store.audit(&options.actor, "dlq.replay", target, &details).await?.seq);
    }
    Ok(report)
}

/// The filter as the audit log records it.
pub fn filter_json(filter: &DlqFilter) -> Value {
    serde_json::json!({
        "destination": filter.destination,
        "reason": filter.reason,
        "since": filter.since,
        "until": filter.until,
        "record_key": filter.record_key,
        "source": filter.source,
        "include_replayed": filter.include_replayed,
        "limit": filter.limit,
    })
}

/// Publishes one chunk of dead letters again (pipelined, one wait for confirms) and commits
/// the replay links of those confirmed in one transaction; marks each item `replayed` or
/// `failed: …`. An error that makes going on pointless (no channel, the store) is returned.
async fn replay_chunk(
    store: &Store,
    channel: Option<&lapin::Channel>,
    items: &mut [ReplayItem],
    actor: &str,
) -> Result<(), OpsError> {
    let channel = channel.ok_or(OpsError::NotConnected)?;
    let mut groups = Vec::with_capacity(items.len());
    let mut letters = Vec::with_capacity(items.len());
    let ids: Vec<&str> = items.iter().map(|i| i.dead_id.as_str()).collect();
    let found = store.dead_letters_by_id(&ids).await?;
    for item in items.iter() {
        let Some(letter) = found.get(&item.dead_id).cloned() else {
            return Err(OpsError::NotFound(item.dead_id.clone()));
        };
        let s = &letter.summary;
        let mut h = FieldTable::default();
        broker::put_str(&mut h, headers::RECORD_KEY, &s.record_key);
        broker::put_str(&mut h, headers::RECORD_VERSION, &s.record_version);
        broker::put_str(&mut h, headers::CATALOG_ITEM, &s.catalog_item);
        broker::put_str(&mut h, headers::OPERATION, &letter.operation);
        broker::put_str(&mut h, headers::SOURCE_MESSAGE_ID, &s.source_message_id);
        broker::put_str(&mut h, headers::SOURCE_ADAPTER, &s.source_adapter);
        broker::put_int(&mut h, headers::ATTEMPT, 0);
        broker::put_str(&mut h, REPLAY_OF, &s.dead_id);
        groups.push(vec![Outgoing {
            exchange: broker::ROUTE_EXCHANGE.to_owned(),
            routing_key: s.destination.clone(),
            body: letter.payload.clone(),
            properties: broker::properties(&s.idempotency_key, &letter.content_type)
                .with_headers(h),
            mandatory: true,
        }]);
        letters.push(letter);
    }
    let published = broker::publish_groups(channel, groups).await;
    let at = crate::pipeline::rfc3339_shanghai(jiff::Timestamp::now());
    let mut links = Vec::with_capacity(items.len());
    let mut first_error = None;
    for ((item, letter), outcome) in items.iter_mut().zip(&letters).zip(published) {
        match outcome {
            Ok(()) => {
                let s = &letter.summary;
                item.replay_id = format!("rp-{}", uuid::Uuid::now_v7().simple());
                links.push(Write::Replayed(Box::new(Replayed {
                    replay_id: item.replay_id.clone(),
                    replay_of: s.dead_id.clone(),
                    idempotency_key: s.idempotency_key.clone(),
                    destination: s.destination.clone(),
                    actor: actor.to_owned(),
                    at: at.clone(),
                })));
            }
            Err(error) => {
                item.outcome = format!("failed: {error}");
                first_error.get_or_insert(OpsError::from(error));
            }
        }
    }
    // Published but not linked (the commit failed) is reported as failed: the copy may still
    // arrive, and delivery recognises it by its idempotency key.
    store.write_all(links).await?;
    for item in items.iter_mut().filter(|i| !i.replay_id.is_empty()) {
        item.outcome = "replayed".to_owned();
    }
    first_error.map_or(Ok(()), Err)
}

/// A dead letter for display: its summary, history and the destination's answer, the record
/// it carried (labelled, masked unless `reveal`), and the bytes only when `reveal`.
///
/// # Errors
///
/// A query failed.
pub async fn dead_letter_view(
    store: &Store,
    catalog: &Catalog,
    dead_id: &str,
    reveal: bool,
) -> Result<Option<Value>, StoreError> {
    let Some(letter) = store.dead_letter(dead_id).await? else { return Ok(None) };
    let mut view = serde_json::to_value(&letter).unwrap_or(Value::Null);
    let record = store
        .record_history(&letter.summary.record_key)
        .await?
        .and_then(|h| {
            h.versions.into_iter().find(|v| v.record_version == letter.summary.record_version)
        })
        .map(|v| present_record(catalog, &v.canonical, reveal));
    view["record"] = record.unwrap_or(Value::Null);
    view["payload_bytes"] = letter.payload.len().into();
    view["payload_sha256"] =
        hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&letter.payload)).into();
    if reveal {
        // The copy as the destination got it (already masked by its release policy).
        view["payload"] = String::from_utf8_lossy(&letter.payload).into_owned().into();
    }
    Ok(Some(view))
}

/// Every configured destination with its pause state.
///
/// # Errors
///
/// The query failed.
pub async fn destination_list(
    store: &Store,
    config: &crate::config::CompiledConfig,
    breakers: Option<
        &std::collections::HashMap<String, std::sync::Arc<crate::runtime::breaker::Breaker>>,
    >,
) -> Result<Vec<Value>, StoreError> {
    let states = store.destination_states().await?;
    Ok(config
        .adapters
        .values()
        .filter(|a| a.destination.is_some())
        .map(|a| {
            let state = states.iter().find(|s| s.destination == a.id);
            serde_json::json!({
                "destination": a.id,
                "name": a.name,
                "paused": state.is_some_and(|s| s.paused),
                "reason": state.map(|s| s.reason.clone()).unwrap_or_default(),
                "changed_by": state.map(|s| s.changed_by.clone()).unwrap_or_default(),
                "changed_at": state.map(|s| s.changed_at.clone()).unwrap_or_default(),
                // Only a running gateway knows its breakers (the CLI reports none).
                "breaker": breakers.and_then(|b| b.get(&a.id)).map(|b| b.state()),
            })
        })
        .collect())
}

/// One rejected document in a re-ingest report.
#[derive(Debug, Clone, Serialize)]
pub struct ReingestItem {
    pub message_id: String,
    pub adapter: String,
    pub doc_type: String,
    /// What the pipeline makes of the stored bytes with the current configuration.
    pub status_now: String,
    /// `reingested as <id>`, `would_reingest`, `still_rejected` or `failed: …`.
    pub outcome: String,
}

/// Re-ingests rejected documents after a mapping or catalog fix: each stored original is run
/// through the current pipeline first, and only those it now accepts (wholly or in part) are
/// published to `credgate.in` again, under a new message id `<original>#reingest-<n>` (the
/// original id is already answered by dedup). Audited.
///
/// # Errors
///
/// The store or the broker failed.
pub async fn reingest(
    store: &Store,
    config: &crate::config::CompiledConfig,
    adapter: &str,
    since: &str,
    limit: i64,
    dry_run: bool,
    actor: &str,
) -> Result<Vec<ReingestItem>, OpsError> {
    let inputs = store.rejected_inputs(adapter, since, limit).await?;
    let connection = if dry_run || inputs.is_empty() {
        None
    } else {
        Some(broker::connect(config, "credgate-cli-reingest").await?)
    };
    let channel = match &connection {
        Some(c) => Some(broker::confirm_channel(c).await?),
        None => None,
    };
    let mut items = Vec::with_capacity(inputs.len());
    for input in inputs {
        let content_type = (!input.content_type.is_empty()).then_some(input.content_type.as_str());
        let inbound = crate::pipeline::Inbound {
            adapter: &input.adapter,
            doc_type: &input.doc_type,
            body: &input.body,
            content_type,
            message_id: &input.message_id,
            correlation_id: None,
            received_at: jiff::Timestamp::now(),
            source_timestamp: None,
        };
        let processed = crate::pipeline::process(config, &inbound);
        let status_now = crate::runtime::ingest::status_name(processed.status).to_owned();
        let mut item = ReingestItem {
            message_id: input.message_id.clone(),
            adapter: input.adapter.clone(),
            doc_type: input.doc_type.clone(),
            status_now: status_now.clone(),
            outcome: String::new(),
        };
        if processed.status == crate::pipeline::ReceiptStatus::Rejected {
            item.outcome = "still_rejected".to_owned();
        } else if let Some(channel) = &channel {
            let new_id = format!("{}#reingest-{}", input.message_id, input.reingest_count + 1);
            let message = Outgoing {
                exchange: broker::IN_EXCHANGE.to_owned(),
                routing_key: format!("{}.{}", input.adapter, input.doc_type),
                body: input.body.clone(),
                properties: broker::properties(
                    &new_id,
                    content_type.unwrap_or("application/octet-stream"),
                ),
                mandatory: true,
            };
            match broker::publish_all(channel, vec![message]).await {
                Ok(()) => {
                    store.mark_reingested(&input.message_id).await?;
                    item.outcome = format!("reingested as {new_id}");
                }
                Err(error) => item.outcome = format!("failed: {error}"),
            }
        } else {
            item.outcome = "would_reingest".to_owned();
        }
        items.push(item);
    }
    if let Some(c) = connection {
        let _ = c.close(200, "done".into()).await;
    }
    let done: Vec<&ReingestItem> =
        items.iter().filter(|i| i.outcome.starts_with("reingested")).collect();
    if !dry_run && !done.is_empty() {
        let details = serde_json::json!({
            "adapter": adapter, "since": since,
            "reingested": done.iter().map(|i| &i.message_id).collect::<Vec<_>>(),
        });
        let target = if adapter.is_empty() { "*" } else { adapter };
        store.audit(actor, "rejected.reingest", target, &details).await?;
    }
    Ok(items)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn catalog() -> Catalog {
        Catalog::load(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas")).unwrap()
    }

    fn shown(record: &Value, field: &str) -> Value {
        record["fields"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["field"] == field)
            .map(|f| f["value"].clone())
            .unwrap_or(Value::Null)
    }

    #[test]
    fn records_are_shown_with_labels_and_personal_identifiers_masked() {
        let catalog = catalog();
        let canonical = serde_json::json!({
            "catalog_item": "admin_penalty", "catalog_version": "1",
            "subject_name": "张三丰", "subject_category": "自然人",
            "subject_id_no": "420111198501011234",
            "decision_doc_no": "鄂公管罚〔2026〕1号",
            "normalized_from": {"subject_id_no": "４２０１１１１９８５０１０１１２３４"}
        });
        let record = present_record(&catalog, &canonical, false);
        assert_eq!(shown(&record, "subject_id_no"), "4201************34");
        assert_eq!(shown(&record, "subject_name"), "张**");
        assert_eq!(shown(&record, "decision_doc_no"), "鄂公管罚〔2026〕1号");
        assert!(!record.to_string().contains("1985"), "{record}");
        let label =
            record["fields"].as_array().unwrap().iter().find(|f| f["field"] == "subject_id_no");
        assert_eq!(label.unwrap()["label"], "证件号码");
        // Asked for: shown as stored.
        let revealed = present_record(&catalog, &canonical, true);
        assert_eq!(shown(&revealed, "subject_id_no"), "420111198501011234");
        // A company's name is not personal data.
        let company = serde_json::json!({
            "catalog_item": "admin_penalty", "catalog_version": "1",
            "subject_name": "湖北示例建设工程有限公司", "subject_category": "法人及非法人组织",
        });
        let record = present_record(&catalog, &company, false);
        assert_eq!(shown(&record, "subject_name"), "湖北示例建设工程有限公司");
    }
}
