//! Test harness: temporary gateway configurations derived from the shipped sample, gateways run
//! as child processes (so they can be SIGKILLed), private RabbitMQ nodes for fault tests, mock
//! destinations and the loss checker of reliability.md §11.4.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use lapin::options::{BasicAckOptions, BasicConsumeOptions, QueueDeclareOptions};
use lapin::types::FieldTable;

mod rig;
pub use rig::{Publisher, Rig, RigSetup};

pub const REPO: &str = env!("CARGO_MANIFEST_DIR");

/// The shared broker of this machine kind (127.0.0.1:5672), or the node `scripts/test.sh` started
/// in its place when that one did not answer (`CREDGATE_BROKER_PORT`, `CREDGATE_BROKER_NODE`),
/// or `None` (tests then skip, unless the suite runs under `scripts/test.sh`, which requires it).
pub fn shared_broker() -> Option<Broker> {
    let port: u16 =
        std::env::var("CREDGATE_BROKER_PORT").ok().and_then(|p| p.parse().ok()).unwrap_or(5672);
    let reachable = std::net::TcpStream::connect_timeout(
        &format!("127.0.0.1:{port}").parse().ok()?,
        Duration::from_secs(1),
    )
    .is_ok();
    if !reachable {
        assert!(
            std::env::var("CREDGATE_REQUIRE_BROKER").is_err(),
            "RabbitMQ on 127.0.0.1:{port} is required"
        );
        eprintln!("skipping: no RabbitMQ on 127.0.0.1:{port}");
        return None;
    }
    let node = std::env::var("CREDGATE_BROKER_NODE").ok().filter(|n| !n.is_empty());
    Some(Broker { port, node, dir: None, server: std::sync::Mutex::new(None) })
}

/// Runs a test body under a deadline, so a wedged broker or a stuck gateway fails the test
/// (unwinding, so its gateways and private nodes are stopped by their guards) instead of
/// hanging CI.
pub async fn within<F: std::future::Future<Output = ()>>(limit: Duration, body: F) {
    if tokio::time::timeout(limit, body).await.is_err() {
        panic!("test did not finish within {limit:?}");
    }
}

/// `rabbitmqctl`, bounded in time: a broker that stopped answering must fail the test, not hang it.
fn rabbitmqctl() -> Command {
    let mut cmd = Command::new("timeout");
    cmd.args(["--kill-after=10", "150", "rabbitmqctl"]);
    cmd
}

/// A RabbitMQ node: the shared one, or a private one started for fault injection.
#[derive(Debug)]
pub struct Broker {
    pub port: u16,
    node: Option<String>,
    dir: Option<PathBuf>,
    /// The `rabbitmq-server` process of a private node, reaped when the node stops.
    server: std::sync::Mutex<Option<Child>>,
}

impl Broker {
    /// Starts a private node on its own ports and data directory (never the shared node).
    pub fn start_private(tag: &str) -> Broker {
        let base = 20000 + (std::process::id() % 2000) as u16 * 10 + (tag.len() as u16 % 10);
        let port = free_port_near(base);
        let dir = std::env::temp_dir().join(format!("credgate-rmq-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let node = format!("credgate{tag}{}@localhost", std::process::id());
        let broker =
            Broker { port, node: Some(node), dir: Some(dir), server: std::sync::Mutex::new(None) };
        broker.boot();
        broker
    }

    fn env(&self, cmd: &mut Command) {
        let dir = self.dir.as_ref().unwrap();
        let node = self.node.as_ref().unwrap();
        std::fs::write(dir.join("enabled_plugins"), "[].\n").unwrap();
        // RabbitMQ 3.10 does not create its data and log directories itself.
        std::fs::create_dir_all(dir.join("mnesia")).unwrap();
        std::fs::create_dir_all(dir.join("log")).unwrap();
        // Debian's wrapper drops root to the `rabbitmq` user, which must own the node's files.
        let _ = Command::new("chown").args(["-R", "rabbitmq:rabbitmq"]).arg(dir).status();
        // `rabbitmq-server` started as root drops to the `rabbitmq` user, which must own the
        // node's directories (root-owned ones make the node exit at once).
        let _ = Command::new("chown")
            .args(["-R", "rabbitmq:rabbitmq", dir.to_str().unwrap()])
            .stderr(Stdio::null())
            .status();
        cmd.env("RABBITMQ_NODENAME", node)
            .env("RABBITMQ_NODE_IP_ADDRESS", "127.0.0.1")
            .env("RABBITMQ_NODE_PORT", self.port.to_string())
            // Ephemeral AMQP ports reach 60999: `port + 20000` would overflow u16.
            .env(
                "RABBITMQ_DIST_PORT",
                self.port.checked_add(20000).unwrap_or(self.port - 20000).to_string(),
            )
            .env("RABBITMQ_MNESIA_BASE", dir.join("mnesia"))
            .env("RABBITMQ_LOG_BASE", dir.join("log"))
            .env("RABBITMQ_ENABLED_PLUGINS_FILE", dir.join("enabled_plugins"))
            .env("RABBITMQ_PID_FILE", dir.join("node.pid"))
            .env("RABBITMQ_CONFIG_FILE", dir.join("rabbitmq"));
    }

    fn boot(&self) {
        let mut cmd = Command::new("rabbitmq-server");
        self.env(&mut cmd);
        let child =
            cmd.stdout(Stdio::null()).stderr(Stdio::null()).spawn().expect("rabbitmq-server");
        if let Some(mut old) = self.server.lock().unwrap().replace(child) {
            let _ = old.wait();
        }
        let mut wait = rabbitmqctl();
        self.env(&mut wait);
        let status = wait
            .args([
                "-n",
                self.node.as_ref().unwrap(),
                "wait",
                "--timeout",
                "120",
                self.dir.as_ref().unwrap().join("node.pid").to_str().unwrap(),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("rabbitmqctl wait");
        assert!(status.success(), "private broker did not start");
        wait_port(self.port, Duration::from_secs(60));
    }

    /// SIGKILLs the private node's Erlang VM.
    pub fn kill9(&self) {
        let pid = std::fs::read_to_string(self.dir.as_ref().unwrap().join("node.pid")).unwrap();
        let _ = Command::new("kill").args(["-9", pid.trim()]).status();
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Starts the private node again on the same data (after `kill9`).
    pub fn restart(&self) {
        self.boot();
    }

    pub fn amqp_url(&self, vhost: &str) -> String {
        format!("amqp://127.0.0.1:{}/{}", self.port, vhost.replace('/', "%2f"))
    }

    pub fn ctl(&self, args: &[&str]) -> bool {
        let mut cmd = rabbitmqctl();
        if let Some(node) = &self.node {
            if self.dir.is_some() {
                self.env(&mut cmd);
            }
            cmd.args(["-n", node]);
        }
        cmd.args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    /// A fresh vhost (so every test has its own `credgate.*` topology).
    pub fn vhost(&self, name: &str) -> String {
        let vhost = format!("credgate-test-{name}-{}", std::process::id());
        self.ctl(&["delete_vhost", &vhost]);
        assert!(self.ctl(&["add_vhost", &vhost]), "add_vhost {vhost}");
        assert!(
            self.ctl(&["set_permissions", "-p", &vhost, "guest", ".*", ".*", ".*"]),
            "set_permissions"
        );
        vhost
    }

    pub fn delete_vhost(&self, vhost: &str) {
        self.ctl(&["delete_vhost", vhost]);
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        // Only a node this process started (it has a data dir) is stopped here.
        if let (Some(node), Some(_)) = (&self.node, &self.dir) {
            let mut cmd = rabbitmqctl();
            self.env(&mut cmd);
            let _ = cmd
                .args(["-n", node, "shutdown"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
            if let Some(dir) = &self.dir {
                if let Ok(pid) = std::fs::read_to_string(dir.join("node.pid")) {
                    let _ = Command::new("kill").args(["-9", pid.trim()]).status();
                }
                let _ = std::fs::remove_dir_all(dir);
            }
            if let Some(mut server) = self.server.lock().unwrap().take() {
                let _ = server.wait();
            }
        }
    }
}

pub fn free_port_near(_hint: u16) -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

pub fn wait_port(port: u16, timeout: Duration) {
    let started = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(started.elapsed() < timeout, "port {port} did not open");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A temporary configuration derived from the sample: its own broker URL/vhost, store,
/// listeners on free ports, HTTP destinations pointed at the given mocks, short retry tiers,
/// and secrets from files.
pub struct TestConfig {
    pub dir: tempfile::TempDir,
    pub ingest_port: u16,
    pub admin_port: u16,
}

pub const SECRET: &str = "test-secret";

impl TestConfig {
    /// `endpoints`: destination id → base URL of its mock.
    pub fn new(
        broker: &Broker,
        vhost: &str,
        endpoints: &BTreeMap<&str, String>,
        tiers: &str,
        max_attempts: u32,
    ) -> TestConfig {
        let dir = tempfile::tempdir().unwrap();
        let ingest_port = free_port_near(0);
        let admin_port = free_port_near(0);
        let root = Path::new(REPO);
        std::fs::write(dir.path().join("secret.txt"), SECRET).unwrap();
        std::fs::write(dir.path().join("guest.txt"), "guest").unwrap();
        let process = format!(
            r#"[amqp]
url = "{url}"
username = "guest"
password = "${{file:guest.txt}}"
prefetch = 100
heartbeat_secs = 5
delivery_limit = 4

[http]
listen = "127.0.0.1:{ingest_port}"

[admin]
listen = "127.0.0.1:{admin_port}"
token = "${{file:secret.txt}}"

[store]
url = "sqlite://{store}"

[telemetry]
log_format = "json"
log_level = "info"

[paths]
schemas = "{schemas}"
adapters = "adapters"
calendars = "{calendars}"
data = "data"
"#,
            url = broker.amqp_url(vhost),
            store = dir.path().join("data/credgate.db").display(),
            schemas = root.join("schemas").display(),
            calendars = root.join("config/calendars").display(),
        );
        std::fs::write(dir.path().join("credgate.toml"), process).unwrap();
        std::fs::copy(root.join("config/routes.toml"), dir.path().join("routes.toml")).unwrap();
        let adapters = dir.path().join("adapters");
        std::fs::create_dir_all(&adapters).unwrap();
        let env_ref = regex::Regex::new(r#"\$\{env:[A-Z_]+\}"#).unwrap();
        let endpoint_re = regex::Regex::new(r#"endpoint = "[^"]+""#).unwrap();
        let tiers_re = regex::Regex::new(r"tiers_secs = \[[^\]]*\]").unwrap();
        let attempts_re = regex::Regex::new(r"max_attempts = \d+").unwrap();
        for entry in std::fs::read_dir(root.join("adapters")).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_none_or(|e| e != "toml") {
                continue;
            }
            let id = path.file_stem().unwrap().to_str().unwrap().to_owned();
            let mut text = std::fs::read_to_string(&path).unwrap();
            text = env_ref.replace_all(&text, "$${file:secret.txt}").into_owned();
            if let Some(url) = endpoints.get(id.as_str()) {
                text = endpoint_re
                    .replace(&text, format!(r#"endpoint = "{url}""#).as_str())
                    .into_owned();
            }
            text =
                tiers_re.replace_all(&text, format!("tiers_secs = {tiers}").as_str()).into_owned();
            text = attempts_re
                .replace_all(&text, format!("max_attempts = {max_attempts}").as_str())
                .into_owned();
            std::fs::write(adapters.join(format!("{id}.toml")), text).unwrap();
        }
        TestConfig { dir, ingest_port, admin_port }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn load(&self) -> credgate::config::CompiledConfig {
        credgate::config::CompiledConfig::load(
            self.path(),
            &credgate::config::LoadOptions { resolve_secrets: true },
        )
        .unwrap_or_else(|e| panic!("test config invalid: {e:?}"))
    }
}

/// A gateway running as a child process.
pub struct Gateway {
    child: Option<Child>,
    config_dir: PathBuf,
    pub admin_port: u16,
    log: PathBuf,
}

impl Gateway {
    pub fn spawn(config: &TestConfig) -> Gateway {
        let mut gateway = Gateway {
            child: None,
            config_dir: config.path().to_owned(),
            admin_port: config.admin_port,
            log: config.path().join("gateway.log"),
        };
        gateway.start();
        gateway
    }

    pub fn start(&mut self) {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&self.log).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_credgate"))
            .args(["--config", self.config_dir.to_str().unwrap(), "run"])
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("spawn credgate");
        self.child = Some(child);
        self.wait_ready(Duration::from_secs(60));
    }

    pub fn wait_ready(&self, timeout: Duration) {
        let started = Instant::now();
        loop {
            let ok = std::process::Command::new("curl")
                .args(["-sf", &format!("http://127.0.0.1:{}/readyz", self.admin_port)])
                .stdout(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if ok {
                return;
            }
            assert!(started.elapsed() < timeout, "gateway not ready; log:\n{}", self.log_text());
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM and wait; returns the exit code.
    pub fn terminate(&mut self) -> Option<i32> {
        let mut child = self.child.take()?;
        let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
        let started = Instant::now();
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return status.code();
            }
            if started.elapsed() > Duration::from_secs(60) {
                let _ = child.kill();
                return None;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// Closes a test's connection, bounded: lapin's close waits for the broker's close-ok, which
/// never comes when the broker has already dropped the connection (a busy run's missed
/// heartbeats), and a test must not hang on its last line.
pub async fn close(connection: &lapin::Connection) {
    let _ = tokio::time::timeout(Duration::from_secs(5), connection.close(200, "".into())).await;
}

/// Connects to a vhost.
pub async fn connect(broker: &Broker, vhost: &str) -> lapin::Connection {
    let uri = credgate::broker::amqp_uri(&broker.amqp_url(vhost), "guest", Some("guest"), 5);
    lapin::Connection::connect(&uri, lapin::ConnectionProperties::default()).await.expect("connect")
}

/// Depth of a queue (passive declare on a throwaway channel).
pub async fn depth(connection: &lapin::Connection, queue: &str) -> u32 {
    let Ok(channel) = connection.create_channel().await else { return u32::MAX };
    let passive = QueueDeclareOptions { passive: true, durable: true, ..Default::default() };
    let depth = channel
        .queue_declare(queue.into(), passive, FieldTable::default())
        .await
        .map(|q| q.message_count())
        .unwrap_or(u32::MAX);
    let _ = channel.close(200, "".into()).await;
    depth
}

/// Waits until `check` holds, polling.
pub async fn eventually<F, Fut>(timeout: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    while !check().await {
        assert!(started.elapsed() < timeout, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Reads every message of a queue (acking them): `(message_id, headers-as-json, body)`.
pub async fn drain_queue(
    connection: &lapin::Connection,
    queue: &str,
) -> Vec<(String, BTreeMap<String, String>, Vec<u8>)> {
    let channel = connection.create_channel().await.unwrap();
    let expected = depth(connection, queue).await;
    let mut out = Vec::new();
    if expected == 0 || expected == u32::MAX {
        return out;
    }
    let mut consumer = channel
        .basic_consume(
            queue.into(),
            "drain".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    while out.len() < expected as usize {
        let Ok(Some(Ok(delivery))) =
            tokio::time::timeout(Duration::from_secs(5), consumer.next()).await
        else {
            break;
        };
        let id = delivery
            .properties
            .message_id()
            .as_ref()
            .map(|m| m.as_str().to_owned())
            .unwrap_or_default();
        let mut headers = BTreeMap::new();
        if let Some(h) = delivery.properties.headers() {
            for k in h.inner().keys() {
                if let Some(v) = credgate::broker::header_str(h, k.as_str()) {
                    headers.insert(k.as_str().to_owned(), v);
                }
            }
        }
        out.push((id, headers, delivery.data.clone()));
        delivery.ack(BasicAckOptions::default()).await.unwrap();
    }
    let _ = channel.close(200, "".into()).await;
    out
}

/// The loss checker (reliability.md §11.4) for one destination.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Accounting {
    pub expected: usize,
    pub delivered: usize,
    pub dead_lettered: usize,
    pub lost: usize,
    pub unexpected: usize,
    pub raw_duplicates: usize,
}

/// `expected`: idempotency keys that must reach the destination; `accepted`: key → times the
/// destination answered 2xx; `dead`: keys found in its dead-letter queue.
pub fn account(
    expected: &BTreeSet<String>,
    accepted: &BTreeMap<String, usize>,
    dead: &BTreeSet<String>,
) -> Accounting {
    let delivered: BTreeSet<&String> = accepted.keys().collect();
    Accounting {
        expected: expected.len(),
        delivered: delivered.len(),
        dead_lettered: dead.len(),
        lost: expected.iter().filter(|k| !delivered.contains(k) && !dead.contains(*k)).count(),
        unexpected: delivered.iter().filter(|k| !expected.contains(**k)).count(),
        raw_duplicates: accepted.values().map(|n| n - 1).sum(),
    }
}

/// A penalty document of the wh-ggzy adapter (fixtures §7.1 shape) with its own decision
/// number, so each has its own record key.
pub fn penalty(n: usize) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "CF_XDR_MC": "湖北示例建设工程有限公司",
        "CF_XDR_LB": "法人及非法人组织",
        "CF_XDR_SHXYM": "91420100MA4P7Q8R8N",
        "CF_FRDB": "张三",
        "CF_FR_ZJLX": "身份证",
        "CF_FR_ZJHM": "420111198501011234",
        "CF_WSH": format!("鄂公管罚〔2026〕{n}号"),
        "CF_WFXW": "投标人相互串通投标",
        "CF_SY": "在某标段投标中与其他投标人的投标文件异常一致",
        "CF_YJ": "《中华人民共和国招标投标法》第五十三条",
        "CF_CFLB": "罚款",
        "CF_NR": "罚款人民币12345.67元",
        "CF_NR_FK": 1.234567,
        "CF_JDRQ": "2026-09-28",
        "CF_YXQ": "2026-10-28",
        "CF_CFJG": "湖北省公共资源交易监督管理局",
        "CF_CFJGDM": "11420000MB0P1Q2R33",
        "CF_SJLY": "湖北省公共资源交易监督管理局",
        "CF_SJLYDM": "11420000MB0P1Q2R33"
    }))
    .unwrap()
}

/// The idempotency key credgate gives the copy of penalty `n` for a destination.
pub fn penalty_key(destination: &str, n: usize, version: &str) -> String {
    credgate::pipeline::idempotency_key(
        destination,
        &format!("admin_penalty:11420000MB0P1Q2R33|鄂公管罚〔2026〕{n}号"),
        version,
    )
}

/// The admin API of a test gateway, called with the admin token; every call is bounded in
/// time. `acting_as` names the operator that changing calls (POST) report for the audit log.
pub struct Admin {
    pub client: reqwest::Client,
    pub base: String,
    actor: Option<String>,
}

impl Admin {
    pub fn new(config: &TestConfig) -> Admin {
        Admin {
            client: reqwest::Client::new(),
            base: format!("http://127.0.0.1:{}", config.admin_port),
            actor: None,
        }
    }

    pub fn acting_as(mut self, actor: &str) -> Admin {
        self.actor = Some(actor.to_owned());
        self
    }

    pub async fn get(&self, path: &str) -> (u16, serde_json::Value) {
        let request = self.client.get(format!("{}{path}", self.base)).bearer_auth(SECRET);
        Self::answer(request).await
    }

    /// `GET /v1/records?key=…`: every version of one record with its lineage and lifecycle.
    pub async fn records_by_key(&self, key: &str) -> (u16, serde_json::Value) {
        self.get(&format!("/v1/records?key={}", urlencode(key))).await
    }

    pub async fn post(&self, path: &str, body: serde_json::Value) -> (u16, serde_json::Value) {
        let mut request =
            self.client.post(format!("{}{path}", self.base)).bearer_auth(SECRET).json(&body);
        if let Some(actor) = &self.actor {
            request = request.header("x-credgate-actor", actor);
        }
        Self::answer(request).await
    }

    async fn answer(request: reqwest::RequestBuilder) -> (u16, serde_json::Value) {
        let response = tokio::time::timeout(Duration::from_secs(30), request.send())
            .await
            .expect("admin API answers within 30 s")
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(serde_json::Value::Null))
    }
}

/// The provincial credit site (hb-credit) refusing every copy with a 400 while the returned
/// flag is set, and the endpoints map for `TestConfig`: how the dead-letter tests make dead
/// letters, then fix the destination.
pub async fn refusing_credit_site(
    stop: &tokio_util::sync::CancellationToken,
) -> (
    credgate::testkit::MockDestination,
    std::sync::Arc<std::sync::atomic::AtomicBool>,
    BTreeMap<&'static str, String>,
) {
    let broken = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let credit = credit_mock(credgate::testkit::Behaviour::RejectWhile(broken.clone()), stop).await;
    let endpoints =
        BTreeMap::from([("hb-credit", format!("http://{}/api/credit/push", credit.addr))]);
    (credit, broken, endpoints)
}

/// Waits until `done` holds or `timeout` passes; no panic, so the caller can report figures.
pub async fn wait_for(timeout: Duration, mut done: impl FnMut() -> bool) -> bool {
    let started = Instant::now();
    while !done() {
        if started.elapsed() > timeout {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    true
}

/// A test's own vhost, deleted when the test ends, also when it fails.
pub struct Vhost<'a> {
    broker: &'a Broker,
    pub name: String,
}

impl Vhost<'_> {
    pub fn new<'a>(broker: &'a Broker, name: &str) -> Vhost<'a> {
        Vhost { broker, name: broker.vhost(name) }
    }
}

impl Drop for Vhost<'_> {
    fn drop(&mut self) {
        self.broker.delete_vhost(&self.name);
    }
}

/// A fresh PostgreSQL database of a test's own on 127.0.0.1:5432 (trust auth), dropped when
/// the guard goes, also when the test fails. `None`, with a message, when PostgreSQL is not
/// running here, unless `CREDGATE_REQUIRE_POSTGRES` makes that a failure.
pub struct PgDatabase {
    pub name: String,
}

impl PgDatabase {
    const ADMIN_URL: &'static str = "postgres://postgres@127.0.0.1:5432/test";

    pub async fn create(name: &str) -> Option<PgDatabase> {
        if std::net::TcpStream::connect("127.0.0.1:5432").is_err() {
            assert!(
                std::env::var("CREDGATE_REQUIRE_POSTGRES").is_err(),
                "PostgreSQL on 127.0.0.1:5432 is required"
            );
            eprintln!("skipping: no PostgreSQL on 127.0.0.1:5432");
            return None;
        }
        let admin = sqlx::PgPool::connect(Self::ADMIN_URL).await.unwrap();
        let drop = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
        sqlx::query(sqlx::AssertSqlSafe(drop)).execute(&admin).await.unwrap();
        let create = format!("CREATE DATABASE {name}");
        sqlx::query(sqlx::AssertSqlSafe(create)).execute(&admin).await.unwrap();
        admin.close().await;
        Some(PgDatabase { name: name.to_owned() })
    }

    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:5432/{}", self.name)
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        // Drop runs outside the async context; psql is the simplest synchronous client here.
        let _ = Command::new("psql")
            .args(["-h", "127.0.0.1", "-U", "postgres", "-d", "test", "-qc"])
            .arg(format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// A mock of the provincial credit site on a free loopback port, checking the gateway's HMAC
/// signature with the test secret.
pub async fn credit_mock(
    behaviour: credgate::testkit::Behaviour,
    stop: &tokio_util::sync::CancellationToken,
) -> credgate::testkit::MockDestination {
    credit_mock_at(0, behaviour, stop).await
}

/// [`credit_mock`] on a given loopback port: for tests that write the port into the
/// configuration and start the gateway before the site comes up.
pub async fn credit_mock_at(
    port: u16,
    behaviour: credgate::testkit::Behaviour,
    stop: &tokio_util::sync::CancellationToken,
) -> credgate::testkit::MockDestination {
    credgate::testkit::MockDestination::start(
        &format!("127.0.0.1:{port}"),
        behaviour,
        Some(SECRET.into()),
        stop.clone(),
    )
    .await
    .unwrap()
}

/// Percent-encodes a query parameter value (record keys carry `|`, `:` and Chinese).
pub fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
