//! The set-up most end-to-end tests share, as one fixture: mock destinations, a test
//! configuration (optionally with the lifecycle sections and a movable clock), a gateway
//! process, an admin client, a broker connection, collectors on the platforms' exchanges and a
//! publisher that sends documents as a platform would.
//!
//! Built in two steps so a test can act between them: [`RigSetup::configure`] starts the mocks
//! and writes the configuration (a test may edit it, or run the CLI before any gateway declared
//! the topology); [`Configured::spawn`] starts the gateway and connects.
//!
//! ```ignore
//! let Some(broker) = support::shared_broker() else { return };
//! let rig = RigSetup::new(&broker, "lifecycle").regulator().lifecycle().start().await;
//! let trading = rig.collect("hb-ggzy-trading", "t").await;
//! ```

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use credgate::testkit::{self, Behaviour, MockDestination};
use tokio_util::sync::CancellationToken;

use super::{Admin, Broker, Gateway, REPO, TestConfig, Vhost};

/// What a collector on a platform's exchange has received: (routing key, body) pairs.
pub type Collected = Arc<Mutex<Vec<(String, Vec<u8>)>>>;

/// How the fixture is to be configured; every option defaults to off.
pub struct RigSetup<'a> {
    broker: &'a Broker,
    vhost: &'a str,
    tiers: &'a str,
    regulator: bool,
    lifecycle: bool,
}

impl<'a> RigSetup<'a> {
    /// A fixture in a vhost of its own named after `vhost`, with the credit site's mock as its
    /// only HTTP destination and retry tiers `[1, 2]`.
    pub fn new(broker: &'a Broker, vhost: &'a str) -> RigSetup<'a> {
        RigSetup { broker, vhost, tiers: "[1, 2]", regulator: false, lifecycle: false }
    }

    /// Other retry tiers (seconds, as written in the configuration).
    pub fn tiers(mut self, tiers: &'a str) -> RigSetup<'a> {
        self.tiers = tiers;
        self
    }

    /// Points `hb-housing-regulator` at the regulator's mock too.
    pub fn regulator(mut self) -> RigSetup<'a> {
        self.regulator = true;
        self
    }

    /// Appends the shipped lifecycle sections with the movable test clock, sends deadline
    /// alerts to the webhook's mock and uses the test calendars.
    pub fn lifecycle(mut self) -> RigSetup<'a> {
        self.lifecycle = true;
        self
    }

    /// Starts the mocks and writes the configuration; no gateway yet.
    pub async fn configure(self) -> Configured<'a> {
        let vhost = Vhost::new(self.broker, self.vhost);
        let stop = CancellationToken::new();
        let credit = super::credit_mock(Behaviour::Accept, &stop).await;
        // The regulator and the webhook are started even when not configured: an idle mock on
        // a loopback port costs nothing and keeps the fixture's fields plain values.
        let regulator = plain_mock(&stop).await;
        let webhook = plain_mock(&stop).await;
        let mut endpoints =
            BTreeMap::from([("hb-credit", format!("http://{}/api/credit/push", credit.addr))]);
        if self.regulator {
            endpoints.insert(
                "hb-housing-regulator",
                format!("http://{}/regulator/alerts", regulator.addr),
            );
        }
        let config = TestConfig::new(self.broker, &vhost.name, &endpoints, self.tiers, 3);
        if self.lifecycle {
            let process = config.path().join("credgate.toml");
            let mut text = std::fs::read_to_string(&process).unwrap();
            text.push_str(&lifecycle_sections(&format!("http://{}/deadlines", webhook.addr)));
            std::fs::write(&process, text).unwrap();
            with_test_calendars(&config);
        }
        Configured { broker: self.broker, config, webhook, regulator, credit, stop, vhost }
    }

    /// [`configure`](Self::configure), then [`spawn`](Configured::spawn).
    pub async fn start(self) -> Rig<'a> {
        self.configure().await.spawn().await
    }
}

async fn plain_mock(stop: &CancellationToken) -> MockDestination {
    MockDestination::start("127.0.0.1:0", Behaviour::Accept, None, stop.clone()).await.unwrap()
}

/// Mocks running and the configuration written; the gateway not started.
pub struct Configured<'a> {
    broker: &'a Broker,
    pub config: TestConfig,
    pub webhook: MockDestination,
    pub regulator: MockDestination,
    pub credit: MockDestination,
    pub stop: CancellationToken,
    pub vhost: Vhost<'a>,
}

impl<'a> Configured<'a> {
    /// Starts the gateway, an admin client, a connection to the vhost and a confirm channel.
    pub async fn spawn(self) -> Rig<'a> {
        let Configured { broker, config, webhook, regulator, credit, stop, vhost } = self;
        let gateway = Gateway::spawn(&config);
        let admin = Admin::new(&config);
        let connection = super::connect(broker, &vhost.name).await;
        let channel = credgate::broker::confirm_channel(&connection).await.unwrap();
        Rig {
            publisher: Publisher { channel },
            connection,
            admin,
            gateway,
            config,
            webhook,
            regulator,
            credit,
            stop,
            vhost,
        }
    }
}

/// A running gateway with everything around it. The fields are in the order they are dropped:
/// the connection before the gateway is killed, the gateway before its vhost is deleted.
pub struct Rig<'a> {
    pub publisher: Publisher,
    pub connection: lapin::Connection,
    pub admin: Admin,
    pub gateway: Gateway,
    pub config: TestConfig,
    pub webhook: MockDestination,
    pub regulator: MockDestination,
    pub credit: MockDestination,
    pub stop: CancellationToken,
    pub vhost: Vhost<'a>,
}

impl Rig<'_> {
    /// Collects what the gateway sends to an AMQP platform: binds a queue `{tag}.{platform}`
    /// to the exchange `platform.{platform}` (declaring it, so nothing sent before the gateway
    /// declares it is lost) until the fixture's stop token is cancelled.
    pub async fn collect(&self, platform: &str, tag: &str) -> Collected {
        let exchange = format!("platform.{platform}");
        let queue = format!("{tag}.{platform}");
        testkit::collect_exchange(&self.connection, &exchange, &queue, self.stop.clone())
            .await
            .unwrap()
    }
}

/// Publishes documents as a platform would, with publisher confirms.
#[derive(Clone)]
pub struct Publisher {
    pub channel: lapin::Channel,
}

impl Publisher {
    /// One document on `credgate.in` for `adapter`, confirmed by the broker.
    pub async fn send(
        &self,
        adapter: &str,
        doc_type: &str,
        message_id: &str,
        content_type: &str,
        body: impl AsRef<[u8]>,
    ) {
        testkit::publish_document(
            &self.channel,
            adapter,
            doc_type,
            message_id,
            content_type,
            body.as_ref(),
        )
        .await
        .unwrap();
    }

    /// [`send`](Self::send) with `application/json`.
    pub async fn json(
        &self,
        adapter: &str,
        doc_type: &str,
        message_id: &str,
        body: impl AsRef<[u8]>,
    ) {
        self.send(adapter, doc_type, message_id, "application/json", body).await;
    }
}

/// The shipped configuration's lifecycle sections, and the movable clock.
fn lifecycle_sections(webhook: &str) -> String {
    let shipped = std::fs::read_to_string(format!("{REPO}/config/credgate.toml")).unwrap();
    let start = shipped.find("[deadlines.").expect("deadline sections in the shipped config");
    format!(
        "\n[lifecycle]\ntest_clock = true\ntimer_interval_secs = 1\ndeadline_interval_secs = 1\ndeadline_webhook = \"{webhook}\"\n\n{}",
        &shipped[start..]
    )
}

/// Points the test configuration at a calendar directory holding the shipped years plus, for
/// this year and the next when no official file ships for them, a *synthetic* plain Mon–Fri
/// year: the test's deadlines run from today's date, and the gateway rightly refuses to guess
/// a year it has no notice for. (The shipped calendars stay official-only.)
fn with_test_calendars(config: &TestConfig) {
    let dir = config.path().join("calendars");
    std::fs::create_dir_all(&dir).unwrap();
    let shipped = std::path::Path::new(REPO).join("config/calendars");
    for entry in std::fs::read_dir(&shipped).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, dir.join(path.file_name().unwrap())).unwrap();
    }
    let this_year = jiff::Timestamp::now().to_zoned(credgate::pipeline::shanghai()).year();
    for year in [this_year, this_year + 1] {
        let file = dir.join(format!("cn-{year}.toml"));
        if !file.exists() {
            std::fs::write(
                &file,
                format!(
                    "year = {year}\nsource = {{ title = \"synthetic test calendar (plain Mon–Fri week)\", published = \"{}-11-01\" }}\noff_days = []\nadjusted_working_days = []\n",
                    year - 1
                ),
            )
            .unwrap();
        }
    }
    let process = config.path().join("credgate.toml");
    let text = std::fs::read_to_string(&process).unwrap();
    let calendars = regex::Regex::new(r#"calendars = "[^"]*""#).unwrap();
    let text = calendars.replace(&text, format!("calendars = \"{}\"", dir.display()).as_str());
    std::fs::write(&process, text.as_ref()).unwrap();
}
