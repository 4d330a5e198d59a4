//! Compiles the configuration files and the catalog into the runtime configuration,
//! collecting every problem (with its file and key) instead of stopping at the first.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::catalog::Catalog;
use crate::config::raw::{self, AdapterFile, Audience, ProcessFile, RoutesFile};
use crate::config::secrets::{self, Secret};
use crate::decode::{Codec, CsvOptions, DecodeLimits, DecodeOptions, XmlOptions};
use crate::domain::calendar::Calendar;
use crate::encode::{PayloadFormat, ReleasePolicy};
use crate::map::Mapper;
use crate::route::Router;

/// One configuration problem.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}: {message}")]
pub struct ConfigError {
    pub file: String,
    pub message: String,
}

/// How to load.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// Resolve secret references now (the service); `check` only checks their form and reports
    /// unresolvable ones as warnings, so it runs where the secrets are not present.
    pub resolve_secrets: bool,
}

/// An inbound document type, ready to run.
#[derive(Debug)]
pub struct InboundDoc {
    pub mapper: Mapper,
    pub decode: DecodeOptions,
}

/// A destination, ready to run.
#[derive(Debug)]
pub struct Destination {
    pub raw: raw::OutboundSection,
    pub format: PayloadFormat,
    pub policy: ReleasePolicy,
    pub accepts: BTreeSet<String>,
    pub http_secret: Option<Secret>,
}

/// One compiled adapter.
#[derive(Debug)]
pub struct Adapter {
    pub id: String,
    pub name: String,
    pub org_uscc: String,
    pub file: PathBuf,
    pub inbound: BTreeMap<String, InboundDoc>,
    pub inbound_transports: Vec<String>,
    pub inbound_auth: Option<(String, Option<Secret>)>,
    pub destination: Option<Destination>,
}

/// Everything the runtime needs, validated.
#[derive(Debug)]
pub struct CompiledConfig {
    pub config_dir: PathBuf,
    pub process: ProcessFile,
    pub catalog: Catalog,
    pub adapters: BTreeMap<String, Arc<Adapter>>,
    pub router: Router,
    pub calendar: Calendar,
    /// Publicity, deadline, objection and bid-warning settings (issue 6).
    pub lifecycle: crate::lifecycle::LifecycleConfig,
    pub amqp_password: Option<Secret>,
    pub admin_token: Option<Secret>,
    /// The named `[[admin.tokens]]`, resolved (those whose secret did not resolve during
    /// `check` are left out).
    pub admin_tokens: Vec<AdminToken>,
    /// Non-fatal findings (unresolved secrets during `check`).
    pub warnings: Vec<ConfigError>,
}

impl CompiledConfig {
    /// Loads and compiles the configuration in `config_dir`.
    ///
    /// # Errors
    ///
    /// Every problem found in any file.
    pub fn load(
        config_dir: &Path,
        options: &LoadOptions,
    ) -> Result<CompiledConfig, Vec<ConfigError>> {
        let mut errors = Vec::new();
        let mut warnings = Vec::new();
        let process_path = config_dir.join("credgate.toml");
        let process = match load_process(&process_path) {
            Ok(p) => p,
            Err(e) => {
                errors.push(e);
                ProcessFile::default()
            }
        };
        let resolve_dir = |p: &str| config_dir.join(p);

        let catalog = match Catalog::load(&resolve_dir(&process.paths.schemas)) {
            Ok(c) => c,
            Err(errs) => {
                errors.extend(
                    errs.into_iter().map(|e| ConfigError { file: e.path, message: e.message }),
                );
                Catalog::default()
            }
        };
        let calendar = match Calendar::load_dir(resolve_dir(&process.paths.calendars)) {
            Ok(c) => c,
            Err(e) => {
                errors.push(ConfigError {
                    file: resolve_dir(&process.paths.calendars).display().to_string(),
                    message: e.to_string(),
                });
                Calendar::from_years(Vec::new()).unwrap_or_default()
            }
        };

        let mut secrets_ctx =
            SecretCtx { config_dir, resolve: options.resolve_secrets, warnings: &mut warnings };
        let amqp_password =
            secrets_ctx.get(&mut errors, &process_path, "amqp.password", &process.amqp.password);
        let admin_token =
            secrets_ctx.get(&mut errors, &process_path, "admin.token", &process.admin.token);
        let admin_tokens = admin_tokens(
            &process,
            admin_token.as_ref(),
            &process_path,
            &mut secrets_ctx,
            &mut errors,
        );
        if process.amqp.url.contains('@') {
            errors.push(ConfigError {
                file: process_path.display().to_string(),
                message: "amqp.url: credentials must not be inline; use amqp.username and amqp.password = \"${env:…}\"".into(),
            });
        }
        if process.amqp.heartbeat_secs == 0 || process.amqp.heartbeat_secs > 15 {
            errors.push(ConfigError {
                file: process_path.display().to_string(),
                message:
                    "amqp.heartbeat_secs: must be 1..=15 so a dead broker is noticed within 45 s"
                        .into(),
            });
        }

        let adapters_dir = resolve_dir(&process.paths.adapters);
        let limits = DecodeLimits {
            max_bytes: process.limits.max_document_bytes,
            max_depth: process.limits.max_depth,
            max_fields: process.limits.max_fields_per_record,
            max_records: process.limits.max_records_per_document,
            ..DecodeLimits::default()
        };
        let mut adapters = BTreeMap::new();
        for path in adapter_files(&adapters_dir, &mut errors) {
            let file = path.display().to_string();
            let err = |message: String| ConfigError { file: file.clone(), message };
            let text = match std::fs::read_to_string(&path) {
                Ok(t) => t,
                Err(e) => {
                    errors.push(err(format!("cannot read: {e}")));
                    continue;
                }
            };
            let raw: AdapterFile = match toml::from_str(&text) {
                Ok(r) => r,
                Err(e) => {
                    errors.push(err(e.to_string()));
                    continue;
                }
            };
            let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or_default();
            if raw.id != stem {
                errors.push(err(format!("id `{}` must equal the file name `{stem}`", raw.id)));
            }
            if !raw.id.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-') {
                errors.push(err(format!("id `{}`: use lowercase letters, digits and `-`", raw.id)));
            }
            if crate::domain::ids::check_uscc(&raw.org_uscc).is_err() {
                errors.push(err(format!("org_uscc `{}` is not a valid USCC", raw.org_uscc)));
            }
            let mut inbound = BTreeMap::new();
            let mut inbound_auth = None;
            let mut transports = Vec::new();
            if let Some(section) = &raw.inbound {
                transports = section.transports.clone();
                for t in &transports {
                    if t != "amqp" && t != "http" {
                        errors.push(err(format!("inbound.transports: `{t}` is not amqp|http")));
                    }
                }
                if transports.iter().any(|t| t == "http") && section.auth.is_none() {
                    errors.push(err("inbound: http transport needs [inbound.auth]".into()));
                }
                if let Some(auth) = &section.auth {
                    if auth.kind != "hmac-sha256" {
                        errors.push(err(format!(
                            "inbound.auth.kind `{}`: only hmac-sha256",
                            auth.kind
                        )));
                    }
                    let s = secrets_ctx.get(
                        &mut errors,
                        &path,
                        "inbound.auth.secret",
                        &Some(auth.secret.clone()),
                    );
                    inbound_auth = Some((auth.key_id.clone(), s));
                }
                for doc in &section.documents {
                    let Some(item) = catalog.get(&doc.catalog_item, &doc.catalog_version) else {
                        errors.push(err(format!(
                            "document `{}`: unknown catalog item `{}` version `{}`",
                            doc.doc_type, doc.catalog_item, doc.catalog_version
                        )));
                        continue;
                    };
                    if !doc
                        .doc_type
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
                    {
                        errors.push(err(format!(
                            "document `{}`: doc_type must be [A-Za-z0-9_-]",
                            doc.doc_type
                        )));
                    }
                    let delimiter = match doc.delimiter.as_deref() {
                        None => b',',
                        Some(d) if d.len() == 1 => d.as_bytes()[0],
                        Some(d) => {
                            errors.push(err(format!(
                                "document `{}`: delimiter `{d}` must be one ASCII character",
                                doc.doc_type
                            )));
                            b','
                        }
                    };
                    if doc.record_element.is_some() && doc.codec != Codec::Xml {
                        errors.push(err(format!(
                            "document `{}`: record_element is only for xml",
                            doc.doc_type
                        )));
                    }
                    match Mapper::compile(doc, item.clone(), &raw.code_tables) {
                        Ok(mapper) => {
                            let decode = DecodeOptions {
                                codec: doc.codec,
                                charset: doc.charset,
                                limits,
                                xml: XmlOptions { record_element: doc.record_element.clone() },
                                csv: CsvOptions { delimiter },
                            };
                            if inbound
                                .insert(doc.doc_type.clone(), InboundDoc { mapper, decode })
                                .is_some()
                            {
                                errors.push(err(format!(
                                    "document `{}`: declared twice",
                                    doc.doc_type
                                )));
                            }
                        }
                        Err(errs) => errors.extend(
                            errs.into_iter()
                                .map(|m| err(format!("document `{}`: {m}", doc.doc_type))),
                        ),
                    }
                }
            }
            let mut destination = None;
            if let Some(out) = &raw.outbound {
                let mut accepted_items = Vec::new();
                for item in &out.accepts {
                    match catalog.latest(item) {
                        Some(compiled) => accepted_items.push(compiled.clone()),
                        None => errors
                            .push(err(format!("outbound.accepts: unknown catalog item `{item}`"))),
                    }
                }
                let format = PayloadFormat::parse(&out.format).unwrap_or_else(|| {
                    errors.push(err(format!(
                        "outbound.format `{}`: use canonical-json|xinyong-columns|xml",
                        out.format
                    )));
                    PayloadFormat::CanonicalJson
                });
                let refs: Vec<&crate::catalog::CatalogItem> =
                    accepted_items.iter().map(|a| a.as_ref()).collect();
                let policy = match ReleasePolicy::compile(out.audience, &out.masking, &refs) {
                    Ok(p) => p,
                    Err(errs) => {
                        errors.extend(errs.into_iter().map(|m| err(format!("outbound.{m}"))));
                        ReleasePolicy { audience: Audience::Public, actions: BTreeMap::new() }
                    }
                };
                let mut http_secret = None;
                match out.sink.as_str() {
                    "http" => match &out.http {
                        None => {
                            errors.push(err("outbound: sink `http` needs [outbound.http]".into()))
                        }
                        Some(http) => {
                            if !(http.endpoint.starts_with("http://")
                                || http.endpoint.starts_with("https://"))
                            {
                                errors.push(err(format!(
                                    "outbound.http.endpoint `{}` is not an http(s) URL",
                                    http.endpoint
                                )));
                            }
                            if let Some(auth) = &http.auth {
                                http_secret = secrets_ctx.get(
                                    &mut errors,
                                    &path,
                                    "outbound.http.auth.secret",
                                    &Some(auth.secret.clone()),
                                );
                            }
                        }
                    },
                    "amqp" => {
                        if out.amqp.is_none() {
                            errors.push(err("outbound: sink `amqp` needs [outbound.amqp]".into()));
                        }
                    }
                    "file" => {
                        if out.file.is_none() {
                            errors.push(err("outbound: sink `file` needs [outbound.file]".into()));
                        }
                    }
                    other => {
                        errors.push(err(format!("outbound.sink `{other}`: use amqp|http|file")))
                    }
                }
                if out.retry.max_attempts == 0 || out.retry.tiers_secs.is_empty() {
                    errors
                        .push(err("outbound.retry: max_attempts ≥ 1 and at least one tier".into()));
                }
                destination = Some(Destination {
                    raw: out.clone(),
                    format,
                    policy,
                    accepts: out.accepts.iter().cloned().collect(),
                    http_secret,
                });
            }
            if raw.inbound.is_none() && raw.outbound.is_none() {
                errors.push(err("adapter has neither [inbound] nor [outbound]".into()));
            }
            adapters.insert(
                raw.id.clone(),
                Arc::new(Adapter {
                    id: raw.id.clone(),
                    name: raw.name.clone(),
                    org_uscc: raw.org_uscc.clone(),
                    file: path.clone(),
                    inbound,
                    inbound_transports: transports,
                    inbound_auth,
                    destination,
                }),
            );
        }

        let routes_path = config_dir.join("routes.toml");
        let routes: RoutesFile = match std::fs::read_to_string(&routes_path) {
            Ok(text) => toml::from_str(&text).unwrap_or_else(|e| {
                errors.push(ConfigError {
                    file: routes_path.display().to_string(),
                    message: e.to_string(),
                });
                RoutesFile::default()
            }),
            Err(e) => {
                errors.push(ConfigError {
                    file: routes_path.display().to_string(),
                    message: format!("cannot read: {e}"),
                });
                RoutesFile::default()
            }
        };
        let destinations: BTreeMap<String, BTreeSet<String>> = adapters
            .values()
            .filter_map(|a| Some((a.id.clone(), a.destination.as_ref()?.accepts.clone())))
            .collect();
        let router = match Router::compile(&routes, &destinations, &catalog.item_names()) {
            Ok(r) => r,
            Err(errs) => {
                errors.extend(errs.into_iter().map(|message| ConfigError {
                    file: routes_path.display().to_string(),
                    message,
                }));
                Router::empty()
            }
        };
        let lifecycle =
            crate::lifecycle::LifecycleConfig::compile(&process).unwrap_or_else(|errs| {
                errors.extend(errs.into_iter().map(|message| ConfigError {
                    file: process_path.display().to_string(),
                    message,
                }));
                crate::lifecycle::LifecycleConfig::default()
            });
        if errors.is_empty() {
            Ok(CompiledConfig {
                config_dir: config_dir.to_owned(),
                process,
                catalog,
                adapters,
                router,
                calendar,
                lifecycle,
                amqp_password,
                admin_token,
                admin_tokens,
                warnings,
            })
        } else {
            Err(errors)
        }
    }

    pub fn data_dir(&self) -> PathBuf {
        self.config_dir.join(&self.process.paths.data)
    }
}

/// A named admin token with its role.
#[derive(Debug, Clone)]
pub struct AdminToken {
    pub name: String,
    pub role: raw::Role,
    pub token: Secret,
}

/// Validates and resolves `[[admin.tokens]]`: names are unique, short and plain (they become
/// the audit log's actor), and no two tokens are equal (a token must say who holds it).
fn admin_tokens(
    process: &ProcessFile,
    admin_token: Option<&Secret>,
    file: &Path,
    secrets_ctx: &mut SecretCtx<'_>,
    errors: &mut Vec<ConfigError>,
) -> Vec<AdminToken> {
    let mut out: Vec<AdminToken> = Vec::new();
    let error = |message: String| ConfigError { file: file.display().to_string(), message };
    for (i, entry) in process.admin.tokens.iter().enumerate() {
        let plain = |c: char| c.is_ascii_alphanumeric() || "._-".contains(c);
        if entry.name.is_empty() || entry.name.len() > 64 || !entry.name.chars().all(plain) {
            errors.push(error(format!(
                "admin.tokens[{i}].name: `{}` must be 1–64 of A–Z a–z 0–9 . _ -",
                entry.name
            )));
            continue;
        }
        if entry.name == "admin" || out.iter().any(|t| t.name == entry.name) {
            errors.push(error(format!(
                "admin.tokens[{i}].name: `{}` is taken (`admin` is the admin.token's holder)",
                entry.name
            )));
            continue;
        }
        let key = format!("admin.tokens[{i}].token");
        let Some(token) = secrets_ctx.get(errors, file, &key, &Some(entry.token.clone())) else {
            continue;
        };
        let clash = out.iter().any(|t| t.token == token) || admin_token == Some(&token);
        if token.expose().is_empty() || clash {
            errors.push(error(format!(
                "{key}: empty, or the same as another admin token (a token must name its holder)"
            )));
            continue;
        }
        out.push(AdminToken { name: entry.name.clone(), role: entry.role, token });
    }
    out
}

/// Resolves secret references, collecting failures as errors (service) or warnings (`check`).
struct SecretCtx<'a> {
    config_dir: &'a Path,
    resolve: bool,
    warnings: &'a mut Vec<ConfigError>,
}

impl SecretCtx<'_> {
    fn get(
        &mut self,
        errors: &mut Vec<ConfigError>,
        file: &Path,
        key: &str,
        value: &Option<String>,
    ) -> Option<Secret> {
        let value = value.as_ref()?;
        let error = |message: String| ConfigError {
            file: file.display().to_string(),
            message: format!("{key}: {message}"),
        };
        let reference = match secrets::parse_ref(value) {
            Ok(r) => r,
            Err(message) => {
                errors.push(error(message));
                return None;
            }
        };
        match secrets::resolve(&reference, self.config_dir) {
            Ok(s) => Some(s),
            Err(message) => {
                if self.resolve {
                    errors.push(error(message))
                } else {
                    self.warnings.push(error(message))
                }
                None
            }
        }
    }
}

fn adapter_files(dir: &Path, errors: &mut Vec<ConfigError>) -> Vec<PathBuf> {
    match std::fs::read_dir(dir) {
        Ok(entries) => {
            let mut files: Vec<PathBuf> = entries
                .filter_map(|e| e.ok())
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|e| e == "toml"))
                .collect();
            files.sort();
            files
        }
        Err(e) => {
            errors.push(ConfigError {
                file: dir.display().to_string(),
                message: format!("cannot read adapters directory: {e}"),
            });
            Vec::new()
        }
    }
}

/// Reads `credgate.toml` and applies `CREDGATE_<SECTION>__<KEY>` environment overrides.
fn load_process(path: &Path) -> Result<ProcessFile, ConfigError> {
    let err = |message: String| ConfigError { file: path.display().to_string(), message };
    let text = std::fs::read_to_string(path).map_err(|e| err(format!("cannot read: {e}")))?;
    let mut table: toml::Table = toml::from_str(&text).map_err(|e| err(e.to_string()))?;
    apply_env_overrides(&mut table, std::env::vars());
    table.try_into().map_err(|e: toml::de::Error| err(e.to_string()))
}

/// `CREDGATE_AMQP__PREFETCH=50` sets `[amqp] prefetch = 50`. Values are read as TOML literals
/// when they parse as one (numbers, booleans), else as strings.
pub fn apply_env_overrides(table: &mut toml::Table, vars: impl Iterator<Item = (String, String)>) {
    for (name, value) in vars {
        let Some(rest) = name.strip_prefix("CREDGATE_") else { continue };
        let Some((section, key)) = rest.split_once("__") else { continue };
        let section = section.to_ascii_lowercase();
        let key = key.to_ascii_lowercase();
        let parsed = format!("v = {value}")
            .parse::<toml::Table>()
            .ok()
            .and_then(|mut t| t.remove("v"))
            .unwrap_or(toml::Value::String(value));
        let entry = table.entry(section).or_insert_with(|| toml::Value::Table(toml::Table::new()));
        if let toml::Value::Table(section_table) = entry {
            section_table.insert(key, parsed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_overrides_reach_their_section() {
        let mut table: toml::Table = toml::from_str("[amqp]\nprefetch = 10\n").unwrap();
        apply_env_overrides(
            &mut table,
            vec![
                ("CREDGATE_AMQP__PREFETCH".to_owned(), "50".to_owned()),
                ("CREDGATE_STORE__URL".to_owned(), "postgres://db/test".to_owned()),
                ("OTHER".to_owned(), "x".to_owned()),
            ]
            .into_iter(),
        );
        let process: ProcessFile = table.try_into().unwrap();
        assert_eq!(process.amqp.prefetch, 50);
        assert_eq!(process.store.url, "postgres://db/test");
    }

    #[test]
    fn admin_tokens_are_named_distinct_and_never_inline() {
        let dir = tempfile::tempdir().unwrap();
        for (file, token) in [("admin", "t-admin"), ("a", "t-a"), ("b", "t-b"), ("c", "t-a")] {
            std::fs::write(dir.path().join(file), token).unwrap();
        }
        let process: ProcessFile = toml::from_str(
            r#"
[admin]
token = "${file:admin}"
tokens = [
  { name = "wang", role = "operator", token = "${file:a}" },
  { name = "li", role = "auditor", token = "${file:b}" },
  { name = "wang", role = "admin", token = "${file:b}" },
  { name = "admin", role = "admin", token = "${file:b}" },
  { name = "zhao liu", role = "admin", token = "${file:b}" },
  { name = "inline", role = "admin", token = "t-inline" },
  { name = "same", role = "admin", token = "${file:c}" },
  { name = "same-as-admin", role = "admin", token = "${file:admin}" },
]
"#,
        )
        .unwrap();
        let (mut errors, mut warnings) = (Vec::new(), Vec::new());
        let mut ctx = SecretCtx { config_dir: dir.path(), resolve: true, warnings: &mut warnings };
        let admin = Secret::new("t-admin");
        let file = Path::new("credgate.toml");
        let tokens = admin_tokens(&process, Some(&admin), file, &mut ctx, &mut errors);
        let named: Vec<(&str, raw::Role)> =
            tokens.iter().map(|t| (t.name.as_str(), t.role)).collect();
        assert_eq!(named, [("wang", raw::Role::Operator), ("li", raw::Role::Auditor)]);
        let messages: Vec<String> = errors.iter().map(|e| e.message.clone()).collect();
        assert_eq!(messages.len(), 6, "{messages:?}");
        assert!(messages[0].contains("tokens[2].name: `wang` is taken"), "{messages:?}");
        assert!(messages[1].contains("tokens[3].name: `admin` is taken"), "{messages:?}");
        assert!(messages[2].contains("tokens[4].name"), "{messages:?}");
        assert!(messages[3].contains("never inline"), "{messages:?}");
        assert!(messages[4].contains("tokens[6].token: empty, or the same"), "{messages:?}");
        assert!(messages[5].contains("tokens[7].token: empty, or the same"), "{messages:?}");
        // A role that does not exist is a parse error of the file.
        let bad = toml::from_str::<ProcessFile>(
            "[[admin.tokens]]\nname = \"x\"\nrole = \"root\"\ntoken = \"${env:X}\"\n",
        );
        assert!(bad.is_err());
    }
}
