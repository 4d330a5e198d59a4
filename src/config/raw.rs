//! Serde mirrors of the configuration files, exactly as written: `config/credgate.toml`,
//! `config/routes.toml` and `adapters/<id>.toml`.
//!
//! Nothing here is validated beyond what serde checks; `config::compile` turns these into the
//! runtime configuration and reports every problem with its file and key.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::decode::{Charset, Codec};

/// `config/credgate.toml`: process settings.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ProcessFile {
    #[serde(default)]
    pub amqp: AmqpSection,
    #[serde(default)]
    pub http: HttpSection,
    #[serde(default)]
    pub admin: AdminSection,
    #[serde(default)]
    pub store: StoreSection,
    #[serde(default)]
    pub limits: LimitsSection,
    #[serde(default)]
    pub telemetry: TelemetrySection,
    #[serde(default)]
    pub paths: PathsSection,
    /// Reporting deadlines by rule name; absent → `lifecycle::deadlines::default_rules`.
    #[serde(default = "crate::lifecycle::deadlines::default_rules")]
    pub deadlines: BTreeMap<String, crate::domain::calendar::DeadlineRule>,
    #[serde(default)]
    pub runtime: RuntimeSection,
    /// Publicity tiers, periods and rule versions of failed information (issue 6).
    #[serde(default)]
    pub publicity: crate::lifecycle::publicity::PublicityConfig,
    #[serde(default)]
    pub lifecycle: LifecycleSection,
    /// Defaults every destination inherits (`[outbound.breaker]`).
    #[serde(default)]
    pub outbound: ProcessOutboundSection,
    /// How long the store keeps bodies and metadata, per catalog item (`retention`).
    #[serde(default)]
    pub retention: crate::retention::RetentionSection,
}

/// `[outbound]` of `credgate.toml`: delivery defaults; an adapter's `[outbound]` overrides them.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ProcessOutboundSection {
    #[serde(default)]
    pub breaker: BreakerSettings,
}

/// The circuit breaker of a destination's delivery worker (`runtime::breaker`).
#[derive(Debug, Clone, Copy, Deserialize, serde::Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct BreakerSettings {
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Consecutive retriable failures (connect error, timeout, 5xx) that open the breaker.
    #[serde(default = "default_breaker_threshold")]
    pub failure_threshold: u32,
    /// How long the breaker stays open the first time; doubled after each failed trial.
    #[serde(default = "default_breaker_open")]
    pub open_secs: u64,
    /// Cap of the doubling.
    #[serde(default = "default_breaker_max_open")]
    pub max_open_secs: u64,
}

impl Default for BreakerSettings {
    fn default() -> Self {
        BreakerSettings {
            enabled: true,
            failure_threshold: default_breaker_threshold(),
            open_secs: default_breaker_open(),
            max_open_secs: default_breaker_max_open(),
        }
    }
}

impl BreakerSettings {
    /// These settings with a destination's overrides applied.
    pub fn with(self, over: Option<&BreakerOverride>) -> BreakerSettings {
        let Some(o) = over else { return self };
        BreakerSettings {
            enabled: o.enabled.unwrap_or(self.enabled),
            failure_threshold: o.failure_threshold.unwrap_or(self.failure_threshold),
            open_secs: o.open_secs.unwrap_or(self.open_secs),
            max_open_secs: o.max_open_secs.unwrap_or(self.max_open_secs),
        }
    }
}

/// An adapter's `[outbound.breaker]`: any key set replaces the process default.
#[derive(Debug, Clone, Copy, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct BreakerOverride {
    pub enabled: Option<bool>,
    pub failure_threshold: Option<u32>,
    pub open_secs: Option<u64>,
    pub max_open_secs: Option<u64>,
}

fn default_true() -> bool {
    true
}
fn default_breaker_threshold() -> u32 {
    5
}
fn default_breaker_open() -> u64 {
    5
}
fn default_breaker_max_open() -> u64 {
    60
}

/// `[lifecycle]`: deadline status thresholds and objection handling (issue 6).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LifecycleSection {
    #[serde(default)]
    pub at_risk: crate::lifecycle::deadlines::AtRiskConfig,
    #[serde(default)]
    pub dispute: crate::lifecycle::dispute::DisputeConfig,
    /// Issuer and fallback regulator of bid-time credit warnings; without it no warnings
    /// are generated.
    #[serde(default)]
    pub bid_warning: Option<crate::lifecycle::bid_warning::BidWarningConfig>,
    /// Tests and demos only: lets `POST /v1/lifecycle/clock` move the lifecycle's "now"
    /// forward, so publicity expiry and deadlines can be shown without waiting.
    #[serde(default)]
    pub test_clock: bool,
    /// Seconds between ticks of the lifecycle timers (publicity expiry); default 60.
    #[serde(default = "default_timer_interval")]
    pub timer_interval_secs: u64,
    /// Seconds between runs of the deadline clock (gauge and alerts); default 600. Each run
    /// reads every 双公示 copy of the last 120 days from the store, and deadlines are counted
    /// in days, so a few minutes' delay in an alert costs nothing and saves the store.
    #[serde(default = "default_deadline_interval")]
    pub deadline_interval_secs: u64,
    /// Optional webhook (HTTP POST, JSON) told of every reporting obligation that becomes
    /// at-risk or breached (they are always logged).
    #[serde(default)]
    pub deadline_webhook: Option<String>,
}

fn default_timer_interval() -> u64 {
    60
}

fn default_deadline_interval() -> u64 {
    600
}

impl Default for LifecycleSection {
    fn default() -> Self {
        LifecycleSection {
            at_risk: Default::default(),
            dispute: Default::default(),
            bid_warning: None,
            test_clock: false,
            timer_interval_secs: default_timer_interval(),
            deadline_interval_secs: default_deadline_interval(),
            deadline_webhook: None,
        }
    }
}

/// `[runtime]`: which workers this instance runs.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuntimeSection {
    /// `ingest` (inbound consumers and HTTP push) and/or `delivery` (destination workers);
    /// instances can specialise to scale the two sides separately.
    #[serde(default = "default_roles")]
    pub roles: Vec<String>,
    /// Seconds to let in-flight work finish on SIGTERM before channels close (unfinished
    /// deliveries are then requeued by the broker).
    #[serde(default = "default_grace")]
    pub shutdown_grace_secs: u64,
}

impl Default for RuntimeSection {
    fn default() -> Self {
        RuntimeSection { roles: default_roles(), shutdown_grace_secs: default_grace() }
    }
}

fn default_roles() -> Vec<String> {
    vec!["ingest".to_owned(), "delivery".to_owned()]
}
fn default_grace() -> u64 {
    20
}

/// `[amqp]`: the broker connection.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AmqpSection {
    /// Broker URL without credentials, e.g. `amqp://127.0.0.1:5672/%2f`.
    #[serde(default = "default_amqp_url")]
    pub url: String,
    #[serde(default = "default_amqp_username")]
    pub username: String,
    /// A secret reference (`${env:NAME}` or `${file:path}`), never the password itself.
    #[serde(default)]
    pub password: Option<String>,
    /// Unacknowledged deliveries per consumer (`basic.qos`).
    #[serde(default = "default_prefetch")]
    pub prefetch: u16,
    /// Heartbeat interval in seconds; ≤ 15 so a dead broker is noticed within 45 s.
    #[serde(default = "default_heartbeat")]
    pub heartbeat_secs: u16,
    /// `x-delivery-limit` of every quorum queue (RabbitMQ 3.10 has no default).
    #[serde(default = "default_delivery_limit")]
    pub delivery_limit: u32,
}

impl Default for AmqpSection {
    fn default() -> Self {
        AmqpSection {
            url: default_amqp_url(),
            username: default_amqp_username(),
            password: None,
            prefetch: default_prefetch(),
            heartbeat_secs: default_heartbeat(),
            delivery_limit: default_delivery_limit(),
        }
    }
}

fn default_amqp_url() -> String {
    "amqp://127.0.0.1:5672/%2f".to_owned()
}
fn default_amqp_username() -> String {
    "guest".to_owned()
}
fn default_prefetch() -> u16 {
    200
}
fn default_heartbeat() -> u16 {
    10
}
fn default_delivery_limit() -> u32 {
    5
}

/// `[http]`: the ingest listener for platforms that push.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSection {
    #[serde(default = "default_http_listen")]
    pub listen: String,
    /// Largest accepted request body in bytes.
    #[serde(default = "default_max_body")]
    pub max_body_bytes: usize,
    /// Allowed clock skew of signed pushes, in seconds.
    #[serde(default = "default_signature_window")]
    pub signature_window_secs: u64,
}

impl Default for HttpSection {
    fn default() -> Self {
        HttpSection {
            listen: default_http_listen(),
            max_body_bytes: default_max_body(),
            signature_window_secs: default_signature_window(),
        }
    }
}

fn default_http_listen() -> String {
    "127.0.0.1:8440".to_owned()
}
fn default_max_body() -> usize {
    8 * 1024 * 1024
}
fn default_signature_window() -> u64 {
    300
}

/// `[admin]`: the operator listener (operations API, metrics, console).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminSection {
    #[serde(default = "default_admin_listen")]
    pub listen: String,
    /// Bearer token for the operations API, as a secret reference; its holder has the
    /// `admin` role.
    #[serde(default)]
    pub token: Option<String>,
    /// Further named tokens with a role each (`[[admin.tokens]]`), for the console's operators
    /// and auditors.
    #[serde(default)]
    pub tokens: Vec<AdminTokenEntry>,
}

impl Default for AdminSection {
    fn default() -> Self {
        AdminSection { listen: default_admin_listen(), token: None, tokens: Vec::new() }
    }
}

/// One `[[admin.tokens]]` entry: who holds the token (named in the audit log), what the holder
/// may do (`runtime::access` has the permission table), and the token as a secret reference.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminTokenEntry {
    pub name: String,
    pub role: Role,
    pub token: String,
}

/// What the holder of an admin token may do; the permissions of each role are in
/// `runtime::access`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Runs the gateway: sees everything with personal identifiers masked, replays dead
    /// letters, pauses and resumes destinations.
    Operator,
    /// Checks what happened: reads everything and may reveal personal identifiers (audited),
    /// changes nothing.
    Auditor,
    /// Everything.
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Operator => "operator",
            Role::Auditor => "auditor",
            Role::Admin => "admin",
        }
    }
}

fn default_admin_listen() -> String {
    "127.0.0.1:8441".to_owned()
}

/// `[store]`: where lineage, dead letters and audit live.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreSection {
    #[serde(default = "default_store_url")]
    pub url: String,
    /// Record lineage (record versions, identifier index, routed copies) with each accepted
    /// document. Off, the store keeps only what delivery needs: dedup keys with their receipts,
    /// delivered versions, attempts and dead letters. For pure relays, and to measure what
    /// lineage costs (bench/run.sh `STORE_LINEAGE=0`).
    #[serde(default = "default_true")]
    pub lineage: bool,
}

impl Default for StoreSection {
    fn default() -> Self {
        StoreSection { url: default_store_url(), lineage: true }
    }
}

fn default_store_url() -> String {
    "sqlite://credgate.db".to_owned()
}

/// `[limits]`: bounds applied before and during decoding.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsSection {
    #[serde(default = "default_max_document")]
    pub max_document_bytes: usize,
    #[serde(default = "default_max_records")]
    pub max_records_per_document: usize,
    #[serde(default = "default_max_depth")]
    pub max_depth: usize,
    #[serde(default = "default_max_fields")]
    pub max_fields_per_record: usize,
}

impl Default for LimitsSection {
    fn default() -> Self {
        LimitsSection {
            max_document_bytes: default_max_document(),
            max_records_per_document: default_max_records(),
            max_depth: default_max_depth(),
            max_fields_per_record: default_max_fields(),
        }
    }
}

fn default_max_document() -> usize {
    8 * 1024 * 1024
}
fn default_max_records() -> usize {
    100_000
}
fn default_max_depth() -> usize {
    32
}
fn default_max_fields() -> usize {
    512
}

/// `[telemetry]`: logging.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TelemetrySection {
    /// `json` (one event per line) or `pretty`.
    #[serde(default = "default_log_format")]
    pub log_format: String,
    /// An `EnvFilter` directive such as `info` or `credgate=debug`.
    #[serde(default = "default_log_level")]
    pub log_level: String,
}

impl Default for TelemetrySection {
    fn default() -> Self {
        TelemetrySection { log_format: default_log_format(), log_level: default_log_level() }
    }
}

fn default_log_format() -> String {
    "json".to_owned()
}
fn default_log_level() -> String {
    "info".to_owned()
}

/// `[paths]`: where the catalog, adapters and calendars are, relative to the config directory.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PathsSection {
    #[serde(default = "default_schemas_dir")]
    pub schemas: String,
    #[serde(default = "default_adapters_dir")]
    pub adapters: String,
    #[serde(default = "default_calendars_dir")]
    pub calendars: String,
    #[serde(default = "default_data_dir")]
    pub data: String,
}

impl Default for PathsSection {
    fn default() -> Self {
        PathsSection {
            schemas: default_schemas_dir(),
            adapters: default_adapters_dir(),
            calendars: default_calendars_dir(),
            data: default_data_dir(),
        }
    }
}

fn default_schemas_dir() -> String {
    "../schemas".to_owned()
}
fn default_adapters_dir() -> String {
    "../adapters".to_owned()
}
fn default_calendars_dir() -> String {
    "calendars".to_owned()
}
fn default_data_dir() -> String {
    "../data".to_owned()
}

/// `config/routes.toml`.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RoutesFile {
    #[serde(default, rename = "route")]
    pub routes: Vec<RouteRule>,
}

/// One routing rule: every condition given must hold (a list means "any of").
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteRule {
    pub name: String,
    #[serde(default)]
    pub when: RouteWhen,
    /// Destination adapter ids.
    pub to: Vec<String>,
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RouteWhen {
    #[serde(default)]
    pub catalog_item: Vec<String>,
    #[serde(default)]
    pub operation: Vec<String>,
    /// Prefixes of the record's region: the division code inside the authority's USCC
    /// (characters 3–8), or the record's own `region_code`.
    #[serde(default)]
    pub region_prefix: Vec<String>,
    #[serde(default)]
    pub subject_category: Vec<String>,
    #[serde(default)]
    pub source_adapter: Vec<String>,
    /// Values of `severity` (alerts) or publicity tier (failed information).
    #[serde(default)]
    pub severity: Vec<String>,
    /// List status of list entries: `listed` or `removed`.
    #[serde(default)]
    pub list_status: Vec<String>,
    /// Arbitrary field equality: `{ alert_kind = ["信用预警"] }`.
    #[serde(default)]
    pub fields: BTreeMap<String, Vec<String>>,
}

/// `adapters/<id>.toml`: one platform connection.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdapterFile {
    /// Must equal the file stem.
    pub id: String,
    /// Human name of the platform, e.g. 武汉市公共资源交易平台.
    pub name: String,
    /// The operating organisation's USCC (`source_org_uscc` of the records it sends).
    pub org_uscc: String,
    /// GB/T 2260 division code of the platform's area.
    #[serde(default)]
    pub region: Option<String>,
    #[serde(default)]
    pub code_tables: BTreeMap<String, BTreeMap<String, String>>,
    #[serde(default)]
    pub inbound: Option<InboundSection>,
    #[serde(default)]
    pub outbound: Option<OutboundSection>,
}

/// The adapter as a source.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InboundSection {
    /// `amqp`, `http` or both.
    #[serde(default = "default_transports")]
    pub transports: Vec<String>,
    #[serde(default)]
    pub auth: Option<AuthConfig>,
    pub documents: Vec<DocumentSpec>,
}

fn default_transports() -> Vec<String> {
    vec!["amqp".to_owned()]
}

/// Credentials of an HTTP peer; the secret is a reference.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// `hmac-sha256`.
    pub kind: String,
    pub key_id: String,
    pub secret: String,
}

/// One inbound document type and its mapping onto a catalog item.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DocumentSpec {
    pub doc_type: String,
    pub catalog_item: String,
    #[serde(default = "default_catalog_version")]
    pub catalog_version: String,
    pub codec: Codec,
    #[serde(default)]
    pub charset: Option<Charset>,
    /// XML: name of the element that holds one record.
    #[serde(default)]
    pub record_element: Option<String>,
    /// CSV: field delimiter (one ASCII character).
    #[serde(default)]
    pub delimiter: Option<String>,
    /// Source field holding the record version (data timestamp); the receipt time otherwise.
    #[serde(default)]
    pub version_field: Option<String>,
    /// Source field saying whether the record is a retraction.
    #[serde(default)]
    pub operation_field: Option<String>,
    /// Values of `operation_field` that mean retract.
    #[serde(default)]
    pub retract_values: Vec<String>,
    /// What to do with source fields the mapping does not mention.
    #[serde(default)]
    pub unmapped: UnmappedPolicy,
    /// Canonical key → source field (a string) or a detailed spec.
    pub fields: BTreeMap<String, FieldSpec>,
}

fn default_catalog_version() -> String {
    "1".to_owned()
}

#[derive(Debug, Clone, Copy, Deserialize, Default, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum UnmappedPolicy {
    /// Drop them silently (the platform sends fields the catalog does not know).
    Ignore,
    /// Drop them and say so in the receipt.
    #[default]
    Warn,
    /// Reject the record.
    Reject,
    /// Keep them under `extensions` (never sent to public destinations).
    Extensions,
}

/// How one canonical field is filled.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum FieldSpec {
    /// The source field name.
    From(String),
    Detailed(FieldDetail),
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct FieldDetail {
    /// Source field name(s); the first present and non-empty one wins (old and new exports).
    #[serde(default)]
    pub from: Option<OneOrMany>,
    /// A constant value instead of a source field.
    #[serde(default, rename = "const")]
    pub constant: Option<toml::Value>,
    /// Name of a code table of this adapter translating source codes to catalog values.
    #[serde(default)]
    pub codes: Option<String>,
    /// Separators for multi-valued fields (each character is a separator).
    #[serde(default)]
    pub split: Option<String>,
    /// Source date format(s) in strftime syntax, tried in order.
    #[serde(default)]
    pub date_format: Option<OneOrMany>,
    /// `yuan` converts 元 to 万元 (divide by 10 000).
    #[serde(default)]
    pub unit: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    pub fn to_vec(&self) -> Vec<String> {
        match self {
            OneOrMany::One(s) => vec![s.clone()],
            OneOrMany::Many(v) => v.clone(),
        }
    }
}

/// The adapter as a destination.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutboundSection {
    /// `amqp`, `http` or `file`.
    pub sink: String,
    /// Catalog items this destination takes; a route to it for another item is a `check` error.
    pub accepts: Vec<String>,
    /// `canonical-json`, `xinyong-columns` (信用中国 column-code JSON) or `xml`.
    #[serde(default = "default_payload_format")]
    pub format: String,
    /// Whether the destination publishes to the public (stricter masking is then required).
    #[serde(default)]
    pub audience: Audience,
    /// How a record under objection (异议) is held for this destination: `suspend` or `mark`;
    /// absent → `suspend` for public audiences, `mark` otherwise (`lifecycle::dispute`).
    #[serde(default)]
    pub dispute_hold: Option<crate::lifecycle::dispute::HoldPolicy>,
    /// Personal-data class → action (`keep`, `mask`, `drop`). Every class used by an accepted
    /// item must be handled.
    #[serde(default)]
    pub masking: BTreeMap<String, String>,
    #[serde(default)]
    pub http: Option<HttpSinkConfig>,
    #[serde(default)]
    pub amqp: Option<AmqpSinkConfig>,
    #[serde(default)]
    pub file: Option<FileSinkConfig>,
    #[serde(default)]
    pub retry: RetryConfig,
    /// Deliveries per second at most (0 = unlimited).
    #[serde(default)]
    pub rate_per_second: u32,
    /// Overrides of the process's `[outbound.breaker]` for this destination.
    #[serde(default)]
    pub breaker: Option<BreakerOverride>,
}

fn default_payload_format() -> String {
    "canonical-json".to_owned()
}

#[derive(Debug, Clone, Copy, Deserialize, serde::Serialize, Default, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Audience {
    /// A credit platform or regulator that is entitled to the full record.
    #[default]
    Government,
    /// A trading platform: sees subjects, not personal identifiers.
    Trading,
    /// Anything published to the public.
    Public,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSinkConfig {
    pub endpoint: String,
    #[serde(default = "default_timeout_secs")]
    pub timeout_secs: u64,
    #[serde(default)]
    pub auth: Option<AuthConfig>,
    /// JSON pointer in a 2xx answer that must hold a success value (e.g. `/code`), for
    /// platforms that answer 200 with an error body.
    #[serde(default)]
    pub success_pointer: Option<String>,
    #[serde(default)]
    pub success_values: Vec<String>,
}

fn default_timeout_secs() -> u64 {
    10
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AmqpSinkConfig {
    pub exchange: String,
    /// May contain `{catalog_item}` and `{operation}`.
    pub routing_key: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSinkConfig {
    pub dir: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetryConfig {
    #[serde(default = "default_max_attempts")]
    pub max_attempts: u32,
    /// Delays of the retry tiers in seconds, shortest first; attempt n waits tier min(n, last).
    #[serde(default = "default_tiers")]
    pub tiers_secs: Vec<u64>,
}

impl Default for RetryConfig {
    fn default() -> Self {
        RetryConfig { max_attempts: default_max_attempts(), tiers_secs: default_tiers() }
    }
}

fn default_max_attempts() -> u32 {
    6
}
fn default_tiers() -> Vec<u64> {
    vec![2, 10, 60, 300]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_destination_overrides_only_the_breaker_keys_it_sets() {
        let process: ProcessFile =
            toml::from_str("[outbound.breaker]\nfailure_threshold = 7\nopen_secs = 2\n").unwrap();
        let defaults = process.outbound.breaker;
        assert_eq!(
            defaults,
            BreakerSettings {
                enabled: true,
                failure_threshold: 7,
                open_secs: 2,
                max_open_secs: 60
            }
        );
        let over: BreakerOverride = toml::from_str("open_secs = 10\nenabled = false").unwrap();
        assert_eq!(
            defaults.with(Some(&over)),
            BreakerSettings {
                enabled: false,
                failure_threshold: 7,
                open_secs: 10,
                max_open_secs: 60
            }
        );
        assert_eq!(defaults.with(None), defaults);
    }
}
