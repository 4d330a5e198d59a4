//! `credgate test`: runs every adapter's fixtures offline through the pure pipeline and
//! compares what comes out — canonical records, routes, per-destination payloads, rejection
//! lists — with the expectation stored beside each input.
//!
//! Layout: `adapters/fixtures/<adapter>/<case>/case.toml` (document type, input file, receipt
//! time, content type), the input file, and `expected.json`. `--bless` rewrites
//! `expected.json` from the current output, to be reviewed in the diff like any snapshot.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::config::CompiledConfig;
use crate::pipeline::{self, Inbound};
use crate::route::RouteDecision;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CaseFile {
    doc_type: String,
    input: String,
    #[serde(default)]
    content_type: Option<String>,
    /// The instant the gateway "received" the document, so date rules are reproducible.
    received_at: String,
    #[serde(default)]
    description: String,
    /// Runs the lifecycle step (`lifecycle::hook`) too, over what earlier documents left in
    /// the store; its output appears under `lifecycle` in the expectation.
    #[serde(default)]
    lifecycle: Option<LifecycleCase>,
}

/// What the store is assumed to know before the case's document arrives.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct LifecycleCase {
    #[serde(default)]
    prior: Vec<PriorDocument>,
}

/// An earlier document, processed like the case's own; its copies are holders of its records
/// (delivered to the destinations named in `delivered`, still queued elsewhere), and its list
/// entries are on the list.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PriorDocument {
    adapter: String,
    doc_type: String,
    input: String,
    received_at: String,
    #[serde(default)]
    delivered: Vec<String>,
}

/// The outcome of one fixture.
#[derive(Debug)]
pub struct CaseResult {
    pub adapter: String,
    pub case: String,
    pub description: String,
    pub outcome: CaseOutcome,
}

#[derive(Debug)]
pub enum CaseOutcome {
    Pass,
    Blessed,
    /// JSON pointers where actual and expected differ (first few).
    Fail(Vec<String>),
    Error(String),
}

/// Runs all fixtures (optionally of one adapter).
pub fn run_all(
    config: &CompiledConfig,
    only_adapter: Option<&str>,
    bless: bool,
) -> Vec<CaseResult> {
    let root = config.config_dir.join(&config.process.paths.adapters).join("fixtures");
    let mut results = Vec::new();
    for adapter_dir in sorted_dirs(&root) {
        let adapter = dir_name(&adapter_dir);
        if only_adapter.is_some_and(|a| a != adapter) {
            continue;
        }
        for case_dir in sorted_dirs(&adapter_dir) {
            let case = dir_name(&case_dir);
            let (description, outcome) = match run_case(config, &adapter, &case_dir, bless) {
                Ok(r) => r,
                Err(message) => (String::new(), CaseOutcome::Error(message)),
            };
            results.push(CaseResult { adapter: adapter.clone(), case, description, outcome });
        }
    }
    results
}

fn run_case(
    config: &CompiledConfig,
    adapter: &str,
    dir: &Path,
    bless: bool,
) -> Result<(String, CaseOutcome), String> {
    let case_text = std::fs::read_to_string(dir.join("case.toml"))
        .map_err(|e| format!("cannot read case.toml: {e}"))?;
    let case: CaseFile = toml::from_str(&case_text).map_err(|e| format!("case.toml: {e}"))?;
    let body = std::fs::read(dir.join(&case.input))
        .map_err(|e| format!("cannot read {}: {e}", case.input))?;
    let received_at: jiff::Timestamp =
        case.received_at.parse().map_err(|e| format!("received_at `{}`: {e}", case.received_at))?;
    let message_id = format!("fixture:{adapter}:{}", dir_name(dir));
    let inbound = Inbound {
        adapter,
        doc_type: &case.doc_type,
        body: &body,
        content_type: case.content_type.as_deref(),
        message_id: &message_id,
        correlation_id: None,
        received_at,
        source_timestamp: None,
    };
    let mut processed = pipeline::process(config, &inbound);
    let lifecycle = match &case.lifecycle {
        Some(lc) => Some(run_lifecycle(config, dir, lc, &mut processed)?),
        None => None,
    };
    let mut actual = describe(&processed, &inbound);
    if let Some(lifecycle) = lifecycle {
        actual["lifecycle"] = lifecycle;
    }
    let expected_path = dir.join("expected.json");
    if bless {
        let text = serde_json::to_string_pretty(&actual).map_err(|e| e.to_string())?;
        std::fs::write(&expected_path, text + "\n").map_err(|e| e.to_string())?;
        return Ok((case.description, CaseOutcome::Blessed));
    }
    let expected_text = std::fs::read_to_string(&expected_path).map_err(|e| {
        format!("cannot read expected.json ({e}); run `credgate test --bless` and review")
    })?;
    let expected: Value =
        serde_json::from_str(&expected_text).map_err(|e| format!("expected.json: {e}"))?;
    let mut diffs = Vec::new();
    diff("", &expected, &actual, &mut diffs);
    Ok((
        case.description,
        if diffs.is_empty() { CaseOutcome::Pass } else { CaseOutcome::Fail(diffs) },
    ))
}

/// The lifecycle step over the case's document, with the prior documents as the store.
fn run_lifecycle(
    config: &CompiledConfig,
    dir: &Path,
    case: &LifecycleCase,
    processed: &mut pipeline::Processed,
) -> Result<Value, String> {
    use crate::lifecycle::hook::{self, HolderRow, Known, Target};
    let mut known = Known::default();
    for (n, prior) in case.prior.iter().enumerate() {
        let body = std::fs::read(dir.join(&prior.input))
            .map_err(|e| format!("cannot read {}: {e}", prior.input))?;
        let received_at: jiff::Timestamp = prior
            .received_at
            .parse()
            .map_err(|e| format!("received_at `{}`: {e}", prior.received_at))?;
        let message_id = format!("fixture-prior:{n}");
        let inbound = Inbound {
            adapter: &prior.adapter,
            doc_type: &prior.doc_type,
            body: &body,
            content_type: None,
            message_id: &message_id,
            correlation_id: None,
            received_at,
            source_timestamp: None,
        };
        let mut earlier = pipeline::process(config, &inbound);
        // A prior objection moves its state machine as at runtime; its new state is "stored".
        let objection = earlier.records.iter().any(|r| {
            r.record.as_ref().is_some_and(|c| c.get_str("catalog_item") == "credit_objection")
        });
        if objection {
            for step in hook::after_accept(config, &mut [&mut earlier], &known) {
                for row in step.disputes {
                    known.disputes.insert(row.dispute.objection_id.clone(), row.dispute);
                }
            }
        }
        for record in &earlier.records {
            let Some(canonical) = &record.record else { continue };
            if record.status == pipeline::RecordStatus::Rejected {
                return Err(format!("prior {} was rejected", prior.input));
            }
            if canonical.get_str("catalog_item") == "dishonest_list_entry"
                && let Ok(event) = crate::lifecycle::dishonest_list::ListEvent::from_record(
                    canonical.record_version(),
                    canonical.get_str("operation"),
                    &canonical.fields,
                )
            {
                known.list.apply(event);
            }
            // Publicised penalties of prior documents feed the bid checks, like the store's
            // publicity table does at runtime.
            if canonical.get_str("catalog_item") == "admin_penalty"
                && let Ok(decision) = config.lifecycle.publicity.decide(
                    &config.calendar,
                    canonical.get_str("catalog_item"),
                    &canonical.fields,
                    None,
                )
                && let Some(uscc) = canonical.fields.get("subject_uscc").and_then(Value::as_str)
                && let Some(penalty) =
                    crate::lifecycle::bid_warning::PublicisedPenalty::from_decision(
                        canonical.record_key(),
                        uscc,
                        &canonical.fields,
                        &decision,
                    )
            {
                known.penalties.push(penalty);
            }
            let target = known
                .targets
                .entry(canonical.record_key().to_owned())
                .or_insert_with(Target::default);
            target.latest = Some(canonical.clone());
            for copy in &record.copies {
                let version = canonical.record_version().to_owned();
                target.holders.push(HolderRow {
                    destination: copy.destination.clone(),
                    delivered_version: prior
                        .delivered
                        .contains(&copy.destination)
                        .then(|| version.clone()),
                    routed_version: version,
                });
            }
        }
    }
    let step = hook::after_accept(config, &mut [processed], &known).pop().unwrap_or_default();
    let generated: Vec<Value> = step
        .generated
        .iter()
        .map(|g| {
            let payloads: Map<String, Value> = g
                .copies
                .iter()
                .map(|c| {
                    let body = serde_json::from_slice::<Value>(&c.payload).unwrap_or_else(|_| {
                        Value::String(String::from_utf8_lossy(&c.payload).into_owned())
                    });
                    (
                        c.destination.clone(),
                        json!({"idempotency_key": c.idempotency_key, "body": body}),
                    )
                })
                .collect();
            json!({
                "kind": g.kind,
                "record_key": g.record.record_key(),
                "record_version": g.record.record_version(),
                "payloads": payloads,
            })
        })
        .collect();
    let retractions: Vec<Value> =
        step.retractions.iter().map(|r| json!({"cause": r.cause, "tracker": r.tracker})).collect();
    let list_events: Vec<Value> = step
        .list_events
        .iter()
        .map(|(key, event)| json!({"record_key": key, "event": event}))
        .collect();
    Ok(json!({
        "generated": generated,
        "retractions": retractions,
        "list_events": list_events,
        "publicity": step.publicity,
        "disputes": step.disputes,
        "notes": step.notes,
    }))
}

/// Everything a fixture pins down, as one JSON document.
pub fn describe(processed: &pipeline::Processed, inbound: &Inbound<'_>) -> Value {
    let receipt = processed.receipt(inbound);
    let records: Vec<Value> = processed
        .records
        .iter()
        .map(|r| {
            let mut out = Map::new();
            out.insert("index".into(), r.index.into());
            out.insert("status".into(), serde_json::to_value(r.status).unwrap_or_default());
            out.insert(
                "violations".into(),
                serde_json::to_value(&r.violations).unwrap_or_default(),
            );
            if let Some(record) = &r.record {
                if !record.fields.is_empty() {
                    out.insert("canonical".into(), record.to_json());
                } else {
                    out.insert("record_key".into(), record.record_key().into());
                }
            }
            if let Some(route) = &r.route {
                out.insert(
                    "routes".into(),
                    match route {
                        RouteDecision::To(d) => json!(d),
                        RouteDecision::Unmatched => json!("unmatched"),
                    },
                );
            }
            let payloads: Map<String, Value> = r
                .copies
                .iter()
                .map(|c| {
                    let payload =
                        serde_json::from_slice::<Value>(&c.payload).unwrap_or_else(|_| {
                            Value::String(String::from_utf8_lossy(&c.payload).into_owned())
                        });
                    (
                        c.destination.clone(),
                        json!({"idempotency_key": c.idempotency_key, "body": payload}),
                    )
                })
                .collect();
            if !payloads.is_empty() {
                out.insert("payloads".into(), Value::Object(payloads));
            }
            Value::Object(out)
        })
        .collect();
    json!({
        "status": receipt.status,
        "document_violations": receipt.violations,
        "routed_to": receipt.routed_to,
        "records": records,
    })
}

fn diff(path: &str, expected: &Value, actual: &Value, out: &mut Vec<String>) {
    if out.len() >= 8 {
        return;
    }
    match (expected, actual) {
        (Value::Object(e), Value::Object(a)) => {
            for key in e.keys().chain(a.keys().filter(|k| !e.contains_key(*k))) {
                let child = format!("{path}/{key}");
                match (e.get(key), a.get(key)) {
                    (Some(ev), Some(av)) => diff(&child, ev, av, out),
                    (Some(_), None) => out.push(format!("{child}: missing in output")),
                    (None, Some(_)) => out.push(format!("{child}: not expected")),
                    (None, None) => {}
                }
            }
        }
        (Value::Array(e), Value::Array(a)) if e.len() == a.len() => {
            for (i, (ev, av)) in e.iter().zip(a).enumerate() {
                diff(&format!("{path}/{i}"), ev, av, out);
            }
        }
        _ if expected != actual => out.push(format!("{path}: expected {expected}, got {actual}")),
        _ => {}
    }
}

fn sorted_dirs(dir: &Path) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|entries| {
            entries.filter_map(|e| e.ok()).map(|e| e.path()).filter(|p| p.is_dir()).collect()
        })
        .unwrap_or_default();
    dirs.sort();
    dirs
}

fn dir_name(path: &Path) -> String {
    path.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_owned()
}
