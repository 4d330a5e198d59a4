//! Bid-time credit warnings (信用预警, seed 000 "信用风险预警组件"): a `bid_result` whose
//! winner or candidates were, at bid time, on the severe-dishonesty list or under publicity
//! for a serious (严重) penalty yields a canonical `supervision_alert` record per subject.
//!
//! - As of when: the bid's `bid_open_at` (开标时间); without it, the start of its `award_date`
//!   (Asia/Shanghai) — the check is then as of the award day and says so in the alert.
//! - Addressed to the smart-supervision system, the industry regulator responsible for the
//!   project (`supervising_dept_*` of the bid, else the configured fallback) and the trading
//!   platform the bid came from (`platform_code`); the routes send `alert_kind = 信用预警`
//!   accordingly and `recipients` names them for the receivers.
//! - Deterministic: the alert id is a digest of deal, section and subject, and the alert's
//!   record version is the bid's, so a redelivered bid yields the same alert (same key and
//!   version, same outbound idempotency keys) and a corrected bid updates it.
//! - Severity: 高 for a list entry (participation should be refused), 中 for a serious penalty
//!   only (a risk to weigh, not a bar).

use jiff::Timestamp;
use jiff::civil::Date;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::catalog::CatalogItem;
use crate::lifecycle::dishonest_list::DishonestList;
use crate::lifecycle::publicity::Tier;
use crate::lifecycle::{fields, shanghai_date, shanghai_midnight};
use crate::pipeline::{CanonicalRecord, rfc3339_shanghai};
use crate::record::Fields;

/// `alert_kind` of every record made here (the routes match on it).
pub const ALERT_KIND: &str = "信用预警";
/// `rule_code` when a subject is on the severe-dishonesty list.
pub const RULE_DISHONEST_LIST: &str = "CREDIT-DISHONEST-LIST";
/// `rule_code` when a subject only has publicised serious penalties.
pub const RULE_SERIOUS_PENALTY: &str = "CREDIT-SERIOUS-PENALTY";
/// `source_adapter` of generated records: they come from the gateway itself.
pub const GENERATED_BY: &str = "credgate";

const RECIPIENT_SUPERVISION: &str = "智慧监管监督系统";
const RECIPIENT_REGULATOR: &str = "行业监管部门";
const RECIPIENT_TRADING: &str = "交易平台";

/// `[lifecycle.bid_warning]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BidWarningConfig {
    /// The organisation issuing the warnings (`source_org_*` of the alerts), e.g. the
    /// provincial public-resource trading supervision bureau operating the gateway.
    pub issuer_name: String,
    pub issuer_uscc: String,
    /// Regulator addressed when a bid does not name its supervising department.
    #[serde(default)]
    pub fallback_regulator_name: Option<String>,
    #[serde(default)]
    pub fallback_regulator_uscc: Option<String>,
}

/// A severe-dishonesty list entry naming a subject at the instant asked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListHit {
    pub record_key: String,
    pub list_name: Option<String>,
    pub reason: Option<String>,
    pub decision_doc_no: Option<String>,
    pub deciding_authority: Option<String>,
    /// Last day in force, `None` while open-ended.
    pub in_force_until: Option<Date>,
}

/// A serious penalty of a subject under publicity at the instant asked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PenaltyHit {
    pub record_key: String,
    pub decision_doc_no: Option<String>,
    pub authority_name: Option<String>,
    /// Last day of publicity.
    pub publicity_until: Date,
}

/// What the credit state of a subject was at an instant. The store implements it for the
/// runtime; [`ListAndPenalties`] implements it over the in-memory models.
pub trait CreditLookup {
    fn listed(&self, uscc: &str, at: Timestamp) -> Vec<ListHit>;
    fn serious_penalties(&self, uscc: &str, at: Timestamp) -> Vec<PenaltyHit>;
}

/// One publicised penalty as the lifecycle knows it (from a `Publish` decision).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublicisedPenalty {
    pub record_key: String,
    pub subject_uscc: String,
    pub tier: Tier,
    pub decision_doc_no: Option<String>,
    pub authority_name: Option<String>,
    /// First and last day of publicity (the period's anchor and maximum end).
    pub publicity_from: Date,
    pub publicity_until: Date,
    /// Publicity ended early on this day (repair, revocation, retraction).
    #[serde(default)]
    pub ended_on: Option<Date>,
}

impl PublicisedPenalty {
    /// The index entry of a penalty the lifecycle decided to publish; `None` for 轻微 ones,
    /// which are never publicised.
    pub fn from_decision(
        record_key: &str,
        subject_uscc: &str,
        fields: &Fields,
        decision: &crate::lifecycle::publicity::PublicityDecision,
    ) -> Option<PublicisedPenalty> {
        let crate::lifecycle::publicity::PublicityDecision::Publish {
            tier, anchor, max_end, ..
        } = decision
        else {
            return None;
        };
        Some(PublicisedPenalty {
            record_key: record_key.to_owned(),
            subject_uscc: subject_uscc.to_owned(),
            tier: *tier,
            decision_doc_no: fields::text(fields, "decision_doc_no").map(str::to_owned),
            authority_name: fields::text(fields, "authority_name").map(str::to_owned),
            publicity_from: *anchor,
            publicity_until: *max_end,
            ended_on: None,
        })
    }

    fn active_on(&self, day: Date) -> bool {
        self.publicity_from <= day
            && day <= self.publicity_until
            && self.ended_on.is_none_or(|end| day < end)
    }
}

/// The in-memory lookup: the dishonest list plus publicised penalties.
#[derive(Debug, Clone, Copy)]
pub struct ListAndPenalties<'a> {
    pub list: &'a DishonestList,
    pub penalties: &'a [PublicisedPenalty],
}

impl CreditLookup for ListAndPenalties<'_> {
    fn listed(&self, uscc: &str, at: Timestamp) -> Vec<ListHit> {
        self.list
            .listed(uscc, at)
            .into_iter()
            .map(|e| ListHit {
                record_key: format!("dishonest_list_entry:{}", e.blacklist_id),
                in_force_until: e.data.effective_to().map(|end| {
                    let day = shanghai_date(end);
                    day.yesterday().unwrap_or(day)
                }),
                list_name: e.data.list_name,
                reason: e.data.reason,
                decision_doc_no: e.data.decision_doc_no,
                deciding_authority: e.data.deciding_authority,
            })
            .collect()
    }

    fn serious_penalties(&self, uscc: &str, at: Timestamp) -> Vec<PenaltyHit> {
        let day = shanghai_date(at);
        self.penalties
            .iter()
            .filter(|p| p.subject_uscc == uscc && p.tier == Tier::Serious && p.active_on(day))
            .map(|p| PenaltyHit {
                record_key: p.record_key.clone(),
                decision_doc_no: p.decision_doc_no.clone(),
                authority_name: p.authority_name.clone(),
                publicity_until: p.publicity_until,
            })
            .collect()
    }
}

/// Who a warning is for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "recipient", rename_all = "snake_case")]
pub enum Recipient {
    SmartSupervision,
    IndustryRegulator { name: String, uscc: Option<String> },
    TradingPlatform { platform_code: String },
}

/// One warning: the canonical `supervision_alert` and its addressees.
#[derive(Debug, Clone, PartialEq)]
pub struct BidWarning {
    pub record: CanonicalRecord,
    pub recipients: Vec<Recipient>,
}

/// The instant a bid was checked as of, and from which field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AsOfBasis {
    BidOpenAt,
    AwardDate,
}

/// The result of checking one bid.
#[derive(Debug, Clone, PartialEq)]
pub struct BidCheck {
    pub as_of: Timestamp,
    pub basis: AsOfBasis,
    pub warnings: Vec<BidWarning>,
    /// Names of candidates without a USCC, which cannot be matched (reported, not skipped
    /// silently).
    pub unchecked: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BidWarningError {
    #[error("bid record is not a bid_result but {0}")]
    NotABid(String),
    #[error("bid has neither bid_open_at nor award_date to check credit as of")]
    NoBidTime,
    #[error("bid lacks {0}")]
    Missing(&'static str),
    #[error("the supervision_alert catalog item has no identity for the generated alert")]
    NoAlertKey,
}

/// A subject to check: USCC, name, role.
struct Participant<'a> {
    uscc: &'a str,
    name: &'a str,
    role: String,
}

fn participants(bid: &Fields) -> (Vec<Participant<'_>>, Vec<String>) {
    let mut out: Vec<Participant<'_>> = Vec::new();
    let mut unchecked = Vec::new();
    let winner_name = fields::text(bid, "winner_name").unwrap_or_default();
    match fields::text(bid, "winner_uscc") {
        Some(uscc) => out.push(Participant { uscc, name: winner_name, role: "中标人".into() }),
        None => unchecked.push(winner_name.to_owned()),
    }
    let candidates = bid.get("candidates").and_then(Value::as_array).map(Vec::as_slice);
    for c in candidates.unwrap_or_default() {
        let Some(c) = c.as_object() else { continue };
        let name = fields::text(c, "name").unwrap_or_default();
        let rank = c.get("rank").and_then(Value::as_i64);
        match fields::text(c, "uscc") {
            // The winner is usually also candidate no. 1: one warning, as the winner.
            Some(uscc) if out.iter().any(|p| p.uscc == uscc) => {}
            Some(uscc) => out.push(Participant {
                uscc,
                name,
                role: match rank {
                    Some(r) => format!("中标候选人（第{r}名）"),
                    None => "中标候选人".to_owned(),
                },
            }),
            None => unchecked.push(name.to_owned()),
        }
    }
    unchecked.retain(|n| !n.is_empty());
    (out, unchecked)
}

/// A stable alert id for (deal, section, subject).
pub fn alert_id(unified_deal_code: &str, bid_section_code: &str, uscc: &str) -> String {
    let mut h = Sha256::new();
    for part in ["credit-warning", unified_deal_code, bid_section_code, uscc] {
        h.update(part.as_bytes());
        h.update([0]);
    }
    format!("XYYJ-{}", hex::encode_upper(&h.finalize()[..12]))
}

/// Checks one canonical `bid_result` record against the credit state at bid time.
///
/// `alert_item` is the `supervision_alert` catalog item the records are built for (its
/// version and identity give the envelope).
///
/// # Errors
///
/// Not a bid, no bid time, a bid without its identity fields, or an alert item whose
/// identity the generated fields do not cover.
pub fn check_bid(
    bid: &CanonicalRecord,
    lookup: &dyn CreditLookup,
    config: &BidWarningConfig,
    alert_item: &CatalogItem,
) -> Result<BidCheck, BidWarningError> {
    let item = bid.get_str("catalog_item");
    if item != "bid_result" {
        return Err(BidWarningError::NotABid(item.to_owned()));
    }
    let f = &bid.fields;
    let (as_of, basis) = match (fields::timestamp(f, "bid_open_at"), fields::date(f, "award_date"))
    {
        (Some(t), _) => (t, AsOfBasis::BidOpenAt),
        (None, Some(d)) => (shanghai_midnight(d), AsOfBasis::AwardDate),
        (None, None) => return Err(BidWarningError::NoBidTime),
    };
    let deal = fields::text(f, "unified_deal_code")
        .ok_or(BidWarningError::Missing("unified_deal_code"))?;
    let section =
        fields::text(f, "bid_section_code").ok_or(BidWarningError::Missing("bid_section_code"))?;
    let platform =
        fields::text(f, "platform_code").ok_or(BidWarningError::Missing("platform_code"))?;

    let regulator = match fields::text(f, "supervising_dept_name") {
        Some(name) => {
            Some((name.to_owned(), fields::text(f, "supervising_dept_uscc").map(str::to_owned)))
        }
        None => config
            .fallback_regulator_name
            .clone()
            .map(|n| (n, config.fallback_regulator_uscc.clone())),
    };
    let mut recipients = vec![Recipient::SmartSupervision];
    if let Some((name, uscc)) = &regulator {
        recipients.push(Recipient::IndustryRegulator { name: name.clone(), uscc: uscc.clone() });
    }
    recipients.push(Recipient::TradingPlatform { platform_code: platform.to_owned() });
    let recipient_labels: Vec<Value> = recipients
        .iter()
        .map(|r| {
            Value::from(match r {
                Recipient::SmartSupervision => RECIPIENT_SUPERVISION,
                Recipient::IndustryRegulator { .. } => RECIPIENT_REGULATOR,
                Recipient::TradingPlatform { .. } => RECIPIENT_TRADING,
            })
        })
        .collect();

    let as_of_text = rfc3339_shanghai(as_of);
    let basis_text = match basis {
        AsOfBasis::BidOpenAt => format!("开标时间 {as_of_text}"),
        AsOfBasis::AwardDate => format!("中标日期 {} 零时（未提供开标时间）", shanghai_date(as_of)),
    };
    let (people, unchecked) = participants(f);
    let mut warnings = Vec::new();
    for p in people {
        let listed = lookup.listed(p.uscc, as_of);
        let penalties = lookup.serious_penalties(p.uscc, as_of);
        if listed.is_empty() && penalties.is_empty() {
            continue;
        }
        let mut matched = Vec::new();
        let mut lines = Vec::new();
        for hit in &listed {
            matched.push(matched_record(
                "dishonest_list_entry",
                &hit.record_key,
                hit.decision_doc_no.as_deref(),
                hit.deciding_authority.as_deref(),
                hit.in_force_until,
            ));
            lines.push(format!(
                "列入{}（{}，认定单位：{}，有效期至：{}）",
                hit.list_name.as_deref().unwrap_or("严重失信主体名单"),
                hit.decision_doc_no.as_deref().unwrap_or("文号未提供"),
                hit.deciding_authority.as_deref().unwrap_or("未提供"),
                hit.in_force_until.map_or_else(|| "长期".to_owned(), |d| d.to_string()),
            ));
        }
        for hit in &penalties {
            matched.push(matched_record(
                "admin_penalty",
                &hit.record_key,
                hit.decision_doc_no.as_deref(),
                hit.authority_name.as_deref(),
                Some(hit.publicity_until),
            ));
            lines.push(format!(
                "严重失信行政处罚公示期内（{}，处罚机关：{}，公示至：{}）",
                hit.decision_doc_no.as_deref().unwrap_or("文号未提供"),
                hit.authority_name.as_deref().unwrap_or("未提供"),
                hit.publicity_until,
            ));
        }
        let on_list = !listed.is_empty();
        let (rule_code, rule_name, severity) = if on_list {
            (RULE_DISHONEST_LIST, "投标主体处于严重失信主体名单", "高")
        } else {
            (RULE_SERIOUS_PENALTY, "投标主体存在公示期内的严重失信行政处罚", "中")
        };
        let id = alert_id(deal, section, p.uscc);
        let mut alert = Map::new();
        let mut put = |k: &str, v: Value| {
            alert.insert(k.to_owned(), v);
        };
        put("alert_id", id.clone().into());
        put("alert_kind", ALERT_KIND.into());
        put("rule_code", rule_code.into());
        put("rule_name", rule_name.into());
        for key in [
            "tender_project_code",
            "bid_section_code",
            "unified_deal_code",
            "tender_project_name",
            "region_code",
            "platform_code",
            "data_timestamp",
        ] {
            if let Some(v) = fields::text(f, key) {
                put(key, v.into());
            }
        }
        put("detected_at", as_of_text.clone().into());
        put("severity", severity.into());
        put("subject_name", p.name.into());
        // Registration category 9-2 (and the 个体户 placeholder) is a 个体工商户; every other
        // USCC holder is an organisation (GB 32100 table, domain-standards §2.1).
        let category =
            if p.uscc.starts_with("92") || crate::domain::ids::is_uscc_placeholder(p.uscc) {
                "个体工商户"
            } else {
                "法人及非法人组织"
            };
        put("subject_category", category.into());
        put("subject_uscc", p.uscc.into());
        put("subject_role", p.role.clone().into());
        put(
            "description",
            format!("{}{}于{}：{}。", p.role, p.name, basis_text, lines.join("；")).into(),
        );
        if let Some((name, uscc)) = &regulator {
            put("responsible_regulator", name.clone().into());
            if let Some(uscc) = uscc {
                put("responsible_regulator_uscc", uscc.clone().into());
            }
        }
        put("recipients", Value::Array(recipient_labels.clone()));
        put("matched_records", Value::Array(matched));
        put("source_org_name", config.issuer_name.clone().into());
        put("source_org_uscc", config.issuer_uscc.clone().into());

        let record_key =
            crate::pipeline::record_key(alert_item, &alert).ok_or(BidWarningError::NoAlertKey)?;
        let mut envelope = Map::new();
        envelope.insert("catalog_item".into(), alert_item.item.clone().into());
        envelope.insert("catalog_version".into(), alert_item.version.clone().into());
        envelope.insert("record_key".into(), record_key.into());
        // The bid's version: a redelivery repeats it, a corrected bid supersedes the alert.
        envelope.insert("record_version".into(), bid.record_version().into());
        envelope.insert("operation".into(), "upsert".into());
        envelope.insert("source_adapter".into(), GENERATED_BY.into());
        envelope.insert("source_org_uscc".into(), config.issuer_uscc.clone().into());
        envelope.insert("received_at".into(), bid.get_str("received_at").into());
        envelope.insert(
            "message_id".into(),
            format!("{}/credit-warning/{id}", bid.get_str("message_id")).into(),
        );
        envelope.insert("raw_sha256".into(), bid.get_str("raw_sha256").into());
        envelope.insert("derived_from".into(), bid.record_key().into());
        warnings.push(BidWarning {
            record: CanonicalRecord { envelope, fields: alert },
            recipients: recipients.clone(),
        });
    }
    Ok(BidCheck { as_of, basis, warnings, unchecked })
}

fn matched_record(
    item: &str,
    key: &str,
    doc_no: Option<&str>,
    authority: Option<&str>,
    until: Option<Date>,
) -> Value {
    let mut m = Map::new();
    m.insert("catalog_item".into(), item.into());
    m.insert("record_key".into(), key.into());
    if let Some(doc) = doc_no {
        m.insert("decision_doc_no".into(), doc.into());
    }
    if let Some(a) = authority {
        m.insert("deciding_authority".into(), a.into());
    }
    if let Some(d) = until {
        m.insert("in_force_until".into(), d.to_string().into());
    }
    Value::Object(m)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::Catalog;
    use crate::domain::rules::RuleContext;
    use crate::lifecycle::dishonest_list::{EntryData, ListEvent, RemovalReason, Subject};
    use crate::record::Severity;
    use serde_json::json;

    const WINNER: &str = "91420100MA4P7Q8R8N";
    const SECOND: &str = "91420106MA4R2T6U2E";
    const THIRD: &str = "91330106MA2K8L3M9H";

    fn catalog() -> Catalog {
        Catalog::load(std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/schemas")))
            .expect("catalog loads")
    }

    fn d(s: &str) -> Date {
        s.parse().expect("date")
    }

    fn bid(extra: Value) -> CanonicalRecord {
        let mut fields: Fields = serde_json::from_value(json!({
            "tender_project_code": "E4201000001003456001",
            "bid_section_code": "E4201000001003456001001",
            "unified_deal_code": "12420100MB1R5T8W6C-20261109-000123-B",
            "tender_project_name": "武汉市示例道路改造工程",
            "region_code": "420100",
            "winner_name": "湖北示例建设工程有限公司",
            "winner_uscc": WINNER,
            "candidates": [
                { "name": "湖北示例建设工程有限公司", "uscc": WINNER, "rank": 1 },
                { "name": "武汉测试市政工程有限公司", "uscc": SECOND, "rank": 2 },
                { "name": "杭州样例信息技术有限公司", "uscc": THIRD, "rank": 3 },
                { "name": "某联合体", "rank": 4 }
            ],
            "award_date": "2026-11-12",
            "bid_open_at": "2026-11-09T09:30:00+08:00",
            "supervising_dept_name": "武汉市住房和城乡建设局",
            "supervising_dept_uscc": "11420100MB1E9F0G6Q",
            "platform_code": "WHGGZY01",
            "data_timestamp": "2026-11-12T10:00:00+08:00",
        }))
        .unwrap();
        if let Value::Object(extra) = extra {
            for (k, v) in extra {
                if v.is_null() {
                    fields.remove(&k);
                } else {
                    fields.insert(k, v);
                }
            }
        }
        let envelope: Map<String, Value> = serde_json::from_value(json!({
            "catalog_item": "bid_result",
            "catalog_version": "1",
            "record_key": "bid_result:12420100MB1R5T8W6C-20261109-000123-B|E4201000001003456001001",
            "record_version": "2026-11-12T10:00:00.000+08:00#m-1",
            "operation": "upsert",
            "source_adapter": "wh-ggzy-trading",
            "source_org_uscc": "12420100MB1H2J3K3P",
            "received_at": "2026-11-12T10:00:01.000+08:00",
            "message_id": "m-1",
            "raw_sha256": "ab",
        }))
        .unwrap();
        CanonicalRecord { envelope, fields }
    }

    fn entry(uscc: &str, listed_on: &str) -> EntryData {
        EntryData {
            subject: Subject {
                name: "x".into(),
                category: None,
                uscc: Some(uscc.into()),
                id_no: None,
            },
            list_name: Some("招标投标黑名单".into()),
            reason: Some("串通投标".into()),
            deciding_authority: Some("湖北省公共资源交易监督管理局".into()),
            decision_doc_no: Some("鄂公管信〔2026〕5号".into()),
            restricted_actions: vec![],
            listed_on: d(listed_on),
            restriction_to: Some(d("2027-03-31")),
            removed_on: None,
            removal_reason: None,
            revoked: false,
        }
    }

    fn config() -> BidWarningConfig {
        BidWarningConfig {
            issuer_name: "湖北省公共资源交易监督管理局".into(),
            issuer_uscc: "11420000MB0P1Q2R33".into(),
            fallback_regulator_name: None,
            fallback_regulator_uscc: None,
        }
    }

    fn penalties() -> Vec<PublicisedPenalty> {
        vec![
            PublicisedPenalty {
                record_key: "admin_penalty:11420000MB0P1Q2R33|鄂公管罚〔2026〕12号".into(),
                subject_uscc: SECOND.into(),
                tier: Tier::Serious,
                decision_doc_no: Some("鄂公管罚〔2026〕12号".into()),
                authority_name: Some("湖北省公共资源交易监督管理局".into()),
                publicity_from: d("2026-04-15"),
                publicity_until: d("2029-04-15"),
                ended_on: None,
            },
            // A general penalty of the third bidder does not warn.
            PublicisedPenalty {
                record_key: "admin_penalty:11420000MB0P1Q2R33|鄂公管罚〔2026〕13号".into(),
                subject_uscc: THIRD.into(),
                tier: Tier::General,
                decision_doc_no: None,
                authority_name: None,
                publicity_from: d("2026-04-15"),
                publicity_until: d("2027-04-15"),
                ended_on: None,
            },
        ]
    }

    #[test]
    fn penalty_index_entry_from_a_publicity_decision() {
        use crate::lifecycle::publicity::{PublicityDecision, TierBasis};
        let fields: Fields = serde_json::from_value(json!({
            "decision_doc_no": "鄂公管罚〔2026〕12号",
            "authority_name": "湖北省公共资源交易监督管理局",
        }))
        .unwrap();
        let decision = PublicityDecision::Publish {
            tier: Tier::Serious,
            basis: TierBasis::SevereList,
            rule_version: "ndrc-order-36-2025".into(),
            anchor: d("2026-04-15"),
            min_end: d("2027-04-15"),
            max_end: d("2029-04-15"),
            declared_end_differs: None,
        };
        let p = PublicisedPenalty::from_decision("k", SECOND, &fields, &decision).unwrap();
        assert_eq!(p, PublicisedPenalty { record_key: "k".into(), ..penalties()[0].clone() });
        // Publicity is inclusive of its last day and ends early on a repair day.
        assert!(p.active_on(d("2029-04-15")) && !p.active_on(d("2029-04-16")));
        let repaired = PublicisedPenalty { ended_on: Some(d("2027-05-01")), ..p };
        assert!(repaired.active_on(d("2027-04-30")) && !repaired.active_on(d("2027-05-01")));
    }

    fn list() -> DishonestList {
        let mut list = DishonestList::new();
        list.apply(ListEvent {
            blacklist_id: "HB-BL-5".into(),
            record_version: "v1".into(),
            entry: Some(entry(WINNER, "2026-03-01")),
        });
        list
    }

    #[test]
    fn winner_on_list_and_candidate_with_serious_penalty() {
        let catalog = catalog();
        let item = catalog.get("supervision_alert", "1").expect("item");
        let list = list();
        let penalties = penalties();
        let lookup = ListAndPenalties { list: &list, penalties: &penalties };
        let check = check_bid(&bid(json!({})), &lookup, &config(), item).unwrap();
        assert_eq!(check.basis, AsOfBasis::BidOpenAt);
        assert_eq!(check.unchecked, vec!["某联合体".to_owned()]);
        assert_eq!(check.warnings.len(), 2);

        let winner = &check.warnings[0].record;
        assert_eq!(winner.fields["subject_uscc"], WINNER);
        assert_eq!(winner.fields["subject_role"], "中标人");
        assert_eq!(winner.fields["subject_category"], "法人及非法人组织");
        assert_eq!(winner.fields["severity"], "高");
        assert_eq!(winner.fields["rule_code"], RULE_DISHONEST_LIST);
        assert_eq!(winner.fields["detected_at"], "2026-11-09T09:30:00.000+08:00");
        assert_eq!(
            winner.fields["matched_records"][0]["record_key"],
            "dishonest_list_entry:HB-BL-5"
        );
        assert_eq!(winner.fields["matched_records"][0]["in_force_until"], "2027-03-31");
        assert_eq!(winner.fields["responsible_regulator"], "武汉市住房和城乡建设局");
        assert_eq!(
            winner.fields["recipients"],
            json!(["智慧监管监督系统", "行业监管部门", "交易平台"])
        );
        assert_eq!(winner.get_str("record_version"), "2026-11-12T10:00:00.000+08:00#m-1");
        assert_eq!(
            winner.record_key(),
            format!("supervision_alert:{}", winner.fields["alert_id"].as_str().unwrap())
        );
        assert_eq!(
            check.warnings[0].recipients,
            vec![
                Recipient::SmartSupervision,
                Recipient::IndustryRegulator {
                    name: "武汉市住房和城乡建设局".into(),
                    uscc: Some("11420100MB1E9F0G6Q".into())
                },
                Recipient::TradingPlatform { platform_code: "WHGGZY01".into() },
            ]
        );

        let second = &check.warnings[1].record;
        assert_eq!(second.fields["subject_role"], "中标候选人（第2名）");
        assert_eq!(second.fields["severity"], "中");
        assert_eq!(second.fields["rule_code"], RULE_SERIOUS_PENALTY);
        assert!(second.fields["description"].as_str().unwrap().contains("公示至：2029-04-15"));

        // Every generated alert is a valid supervision_alert record.
        for w in &check.warnings {
            let mut fields = w.record.fields.clone();
            let violations =
                crate::validate::validate(item, &mut fields, &RuleContext::new(d("2026-11-12")));
            let errors: Vec<_> =
                violations.iter().filter(|v| v.severity == Severity::Error).collect();
            assert!(errors.is_empty(), "{errors:?}");
        }
    }

    #[test]
    fn redelivered_bid_gives_identical_alerts() {
        let catalog = catalog();
        let item = catalog.get("supervision_alert", "1").expect("item");
        let list = list();
        let penalties = penalties();
        let lookup = ListAndPenalties { list: &list, penalties: &penalties };
        let a = check_bid(&bid(json!({})), &lookup, &config(), item).unwrap();
        let b = check_bid(&bid(json!({})), &lookup, &config(), item).unwrap();
        assert_eq!(a, b);
        // The id depends on deal, section and subject only.
        let other_section = check_bid(
            &bid(json!({ "bid_section_code": "E4201000001003456001002" })),
            &lookup,
            &config(),
            item,
        )
        .unwrap();
        assert_ne!(
            a.warnings[0].record.fields["alert_id"],
            other_section.warnings[0].record.fields["alert_id"]
        );
        assert_eq!(
            a.warnings[0].record.fields["alert_id"],
            alert_id("12420100MB1R5T8W6C-20261109-000123-B", "E4201000001003456001001", WINNER)
                .as_str()
        );
    }

    #[test]
    fn as_of_bid_time_not_now() {
        let catalog = catalog();
        let item = catalog.get("supervision_alert", "1").expect("item");
        // Listed after the bid opened: no warning. Repaired before it: no warning either.
        let mut list = DishonestList::new();
        list.apply(ListEvent {
            blacklist_id: "L1".into(),
            record_version: "v1".into(),
            entry: Some(entry(WINNER, "2026-11-10")),
        });
        let mut repaired = entry(SECOND, "2026-03-01");
        repaired.removed_on = Some(d("2026-11-09"));
        repaired.removal_reason = Some(RemovalReason::Repaired);
        list.apply(ListEvent {
            blacklist_id: "L2".into(),
            record_version: "v1".into(),
            entry: Some(repaired),
        });
        let lookup = ListAndPenalties { list: &list, penalties: &[] };
        let check = check_bid(&bid(json!({})), &lookup, &config(), item).unwrap();
        assert!(check.warnings.is_empty());
        // Without an opening time the award day (11-12, 00:00) is the instant: L1 now counts.
        let check =
            check_bid(&bid(json!({ "bid_open_at": null })), &lookup, &config(), item).unwrap();
        assert_eq!(check.basis, AsOfBasis::AwardDate);
        assert_eq!(check.warnings.len(), 1);
        assert!(
            check.warnings[0].record.fields["description"]
                .as_str()
                .unwrap()
                .contains("未提供开标时间")
        );
        assert_eq!(
            check_bid(
                &bid(json!({ "bid_open_at": null, "award_date": null })),
                &lookup,
                &config(),
                item
            ),
            Err(BidWarningError::NoBidTime)
        );
    }

    #[test]
    fn regulator_fallback_and_errors() {
        let catalog = catalog();
        let item = catalog.get("supervision_alert", "1").expect("item");
        let list = list();
        let lookup = ListAndPenalties { list: &list, penalties: &[] };
        let no_dept = bid(json!({ "supervising_dept_name": null, "supervising_dept_uscc": null }));
        let check = check_bid(&no_dept, &lookup, &config(), item).unwrap();
        assert_eq!(check.warnings[0].recipients.len(), 2);
        assert_eq!(
            check.warnings[0].record.fields["recipients"],
            json!(["智慧监管监督系统", "交易平台"])
        );
        let cfg = BidWarningConfig {
            fallback_regulator_name: Some("湖北省住房和城乡建设厅".into()),
            fallback_regulator_uscc: Some("11420000MB0X5Y6A0T".into()),
            ..config()
        };
        let check = check_bid(&no_dept, &lookup, &cfg, item).unwrap();
        assert_eq!(
            check.warnings[0].record.fields["responsible_regulator_uscc"],
            "11420000MB0X5Y6A0T"
        );

        let mut not_bid = bid(json!({}));
        not_bid.envelope.insert("catalog_item".into(), "admin_penalty".into());
        assert_eq!(
            check_bid(&not_bid, &lookup, &config(), item),
            Err(BidWarningError::NotABid("admin_penalty".into()))
        );
        assert_eq!(
            check_bid(&bid(json!({ "platform_code": null })), &lookup, &config(), item),
            Err(BidWarningError::Missing("platform_code"))
        );
    }
}
