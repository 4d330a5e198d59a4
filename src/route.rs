//! The route stage: a canonical record → the destination adapters that must receive it, from
//! the ordered rules of `config/routes.toml`. Every matching rule contributes (fan-out); a
//! record no rule matches is the explicit outcome `Unmatched`, never a silent drop.
//!
//! Pure: the router is compiled once and is a function of the record alone.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use crate::config::raw::{RouteWhen, RoutesFile};
use crate::record::Fields;

/// What the router decided for one record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteDecision {
    /// Destination adapter ids, sorted, without duplicates, never empty.
    To(Vec<String>),
    /// No rule matched (or every matching destination refused the item).
    Unmatched,
}

/// Facts about a record that rules can test.
#[derive(Debug)]
pub struct RouteInput<'a> {
    pub catalog_item: &'a str,
    pub operation: &'a str,
    pub source_adapter: &'a str,
    pub fields: &'a Fields,
}

#[derive(Debug)]
struct CompiledRule {
    name: String,
    when: RouteWhen,
    to: Vec<String>,
}

/// Compiled routing rules plus what each destination accepts.
#[derive(Debug)]
pub struct Router {
    rules: Vec<CompiledRule>,
    accepts: BTreeMap<String, BTreeSet<String>>,
}

impl Router {
    /// Compiles the rules against the known destinations (`id → accepted catalog items`).
    ///
    /// # Errors
    ///
    /// Every rule naming an unknown destination, an unknown catalog item, or an item its
    /// destination does not accept.
    pub fn compile(
        file: &RoutesFile,
        destinations: &BTreeMap<String, BTreeSet<String>>,
        catalog_items: &[String],
    ) -> Result<Router, Vec<String>> {
        let mut errors = Vec::new();
        let mut names = BTreeSet::new();
        for rule in &file.routes {
            if !names.insert(rule.name.clone()) {
                errors.push(format!("route `{}`: duplicate name", rule.name));
            }
            if rule.to.is_empty() {
                errors.push(format!("route `{}`: `to` is empty", rule.name));
            }
            for item in &rule.when.catalog_item {
                if !catalog_items.contains(item) {
                    errors.push(format!("route `{}`: unknown catalog item `{item}`", rule.name));
                }
            }
            for op in &rule.when.operation {
                if op != "upsert" && op != "retract" {
                    errors.push(format!(
                        "route `{}`: operation `{op}` is not upsert|retract",
                        rule.name
                    ));
                }
            }
            for status in &rule.when.list_status {
                if status != "listed" && status != "removed" {
                    errors.push(format!(
                        "route `{}`: list_status `{status}` is not listed|removed",
                        rule.name
                    ));
                }
            }
            for dest in &rule.to {
                match destinations.get(dest) {
                    None => errors.push(format!(
                        "route `{}`: `{dest}` is not an adapter with an [outbound] section",
                        rule.name
                    )),
                    Some(accepted) => {
                        for item in &rule.when.catalog_item {
                            if !accepted.contains(item) {
                                errors.push(format!(
                                    "route `{}`: destination `{dest}` does not accept `{item}`",
                                    rule.name
                                ));
                            }
                        }
                    }
                }
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(Router {
            rules: file
                .routes
                .iter()
                .map(|r| CompiledRule {
                    name: r.name.clone(),
                    when: r.when.clone(),
                    to: r.to.clone(),
                })
                .collect(),
            accepts: destinations.clone(),
        })
    }

    /// A router that matches nothing (used while reporting a broken routes file).
    pub fn empty() -> Router {
        Router { rules: Vec::new(), accepts: BTreeMap::new() }
    }

    /// Routes one record.
    pub fn route(&self, input: &RouteInput<'_>) -> RouteDecision {
        let mut out = BTreeSet::new();
        for rule in &self.rules {
            if !matches(&rule.when, input) {
                continue;
            }
            for dest in &rule.to {
                // A record never goes back to the platform it came from, and a destination
                // only receives the items it declared.
                let accepts =
                    self.accepts.get(dest).is_some_and(|a| a.contains(input.catalog_item));
                if dest != input.source_adapter && accepts {
                    out.insert(dest.clone());
                }
            }
        }
        if out.is_empty() {
            RouteDecision::Unmatched
        } else {
            RouteDecision::To(out.into_iter().collect())
        }
    }

    /// Names of the rules that match a record (for `credgate test` and tracing).
    pub fn matching_rules(&self, input: &RouteInput<'_>) -> Vec<&str> {
        self.rules.iter().filter(|r| matches(&r.when, input)).map(|r| r.name.as_str()).collect()
    }
}

fn matches(when: &RouteWhen, input: &RouteInput<'_>) -> bool {
    // The record's value is only looked up when the rule lists values for it: most rules
    // name two or three conditions, and each lookup hashes the name.
    fn any<'v>(list: &[String], value: impl FnOnce() -> Option<&'v str>) -> bool {
        list.is_empty() || value().is_some_and(|v| list.iter().any(|x| x == v))
    }
    let text = |name: &str| input.fields.get(name).and_then(Value::as_str);
    any(&when.catalog_item, || Some(input.catalog_item))
        && any(&when.operation, || Some(input.operation))
        && any(&when.source_adapter, || Some(input.source_adapter))
        && any(&when.subject_category, || text("subject_category"))
        && any(&when.severity, || text("severity").or_else(|| text("publicity_tier")))
        && any(&when.list_status, || Some(list_status(input.fields)))
        && (when.region_prefix.is_empty()
            || region_of(input.fields).is_some_and(|region| {
                when.region_prefix.iter().any(|p| region.starts_with(p.as_str()))
            }))
        && when.fields.iter().all(|(name, values)| {
            input.fields.get(name).is_some_and(|v| {
                let v = crate::map::scalar_text(v).unwrap_or_default();
                values.contains(&v)
            })
        })
}

/// `removed` when a list entry records its removal or revocation, `listed` otherwise.
fn list_status(fields: &Fields) -> &'static str {
    let revoked = fields.get("revoked").and_then(Value::as_bool).unwrap_or(false);
    if revoked || fields.get("removed_on").is_some() { "removed" } else { "listed" }
}

/// The record's region: its own `region_code`, else the division code inside the deciding
/// authority's USCC (characters 3–8).
pub fn region_of(fields: &Fields) -> Option<String> {
    if let Some(region) = fields.get("region_code").and_then(Value::as_str) {
        return Some(region.to_owned());
    }
    const AUTHORITY_FIELDS: &[&str] = &[
        "authority_uscc",
        "deciding_authority_uscc",
        "repair_authority_uscc",
        "scoring_authority_uscc",
        "accepting_authority_uscc",
        "responsible_regulator_uscc",
        "source_org_uscc",
    ];
    AUTHORITY_FIELDS
        .iter()
        .filter_map(|f| fields.get(*f).and_then(Value::as_str))
        .find_map(|uscc| uscc.get(2..8).filter(|d| d.bytes().all(|b| b.is_ascii_digit())))
        .map(str::to_owned)
}
