//! `credgate-ceiling`: the broker-side ceiling and the measuring tools of `bench/run.sh`
//! (issue 4).
//!
//! The ceiling is the least work a gateway must do per message: consume from a queue, publish
//! the same bytes with a publisher confirm (persistent, mandatory) to another queue, and ack
//! the delivery once the confirm arrived. Nothing is decoded. Whatever credgate reaches on the
//! same broker, relative to this, is the gateway's own cost.
//!
//! ```text
//! credgate-ceiling setup   --amqp URL --queue-type quorum|classic
//! credgate-ceiling fill    --amqp URL [--exchange EX] --key KEY --count N [--prefix P]
//! credgate-ceiling drain   --amqp URL --prefetch P --ack-every K [--count N]
//! credgate-ceiling watch   --amqp URL --in Q --out Q --count N [--pid PID] [--timeout S]
//! credgate-ceiling latency --amqp URL [--exchange EX] --key KEY --out Q [--rate R] [--secs S]
//! credgate-ceiling depth   --amqp URL QUEUE...
//! ```
//!
//! Results are printed as `key=value` lines for the script.

use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, anyhow, bail};
use futures_util::StreamExt;
use lapin::PublisherConfirm;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions,
    ConfirmSelectOptions, QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::{AMQPValue, FieldTable, ShortString};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties};

/// The §7.1 penalty record, the body of every message.
const BODY: &[u8] = include_bytes!("samples/penalty-7.1.json");
/// The ceiling's queues.
const CEIL_IN: &str = "bench.ceil.in";
const CEIL_OUT: &str = "bench.ceil.out";
/// Header carrying the publisher's clock (Unix nanoseconds).
const SENT_HEADER: &str = "x-bench-sent-ns";
/// credgate does not copy inbound headers onto its outbound copies, but it does carry the
/// source message id; the latency probe therefore also encodes the send time in it.
const SOURCE_ID_HEADER: &str = "x-credgate-source-message-id";

#[derive(Debug, Default)]
struct Opts {
    values: HashMap<String, String>,
    positional: Vec<String>,
}

impl Opts {
    fn parse(args: impl Iterator<Item = String>) -> Result<Opts> {
        let mut opts = Opts::default();
        let mut it = args.peekable();
        while let Some(arg) = it.next() {
            if let Some(name) = arg.strip_prefix("--") {
                let value = it.next().with_context(|| format!("--{name} needs a value"))?;
                opts.values.insert(name.to_owned(), value);
            } else {
                opts.positional.push(arg);
            }
        }
        Ok(opts)
    }
    fn str(&self, name: &str) -> Result<&str> {
        self.values.get(name).map(String::as_str).with_context(|| format!("--{name} required"))
    }
    fn or<'a>(&'a self, name: &str, default: &'a str) -> &'a str {
        self.values.get(name).map_or(default, String::as_str)
    }
    fn num<T: std::str::FromStr>(&self, name: &str, default: T) -> Result<T>
    where
        T::Err: std::fmt::Display,
    {
        match self.values.get(name) {
            None => Ok(default),
            Some(v) => v.parse().map_err(|e| anyhow!("--{name} {v}: {e}")),
        }
    }
}

fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let command = args.next().unwrap_or_default();
    let opts = Opts::parse(args)?;
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    rt.block_on(async {
        match command.as_str() {
            "setup" => setup(&opts).await,
            "fill" => fill(&opts).await,
            "drain" => drain(&opts).await,
            "watch" => watch(&opts).await,
            "latency" => latency(&opts).await,
            "depth" => depth(&opts).await,
            _ => bail!("usage: credgate-ceiling setup|fill|drain|watch|latency|depth [--options] (see bench/README.md)"),
        }
    })
}

async fn connect(opts: &Opts) -> Result<Connection> {
    let url = opts.str("amqp")?;
    if !url.contains("127.0.0.1") && !url.contains("localhost") {
        bail!("the benchmark only talks to a local broker");
    }
    Ok(Connection::connect(url, ConnectionProperties::default()).await?)
}

fn now_ns() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as i64)
}

fn persistent(message_id: String) -> BasicProperties {
    BasicProperties::default()
        .with_delivery_mode(2)
        .with_content_type("application/json".into())
        .with_message_id(message_id.into())
}

async fn confirm_ok(confirm: PublisherConfirm) -> Result<()> {
    let confirmation = confirm.await?;
    if confirmation.is_nack() {
        bail!("publish nacked by the broker");
    }
    if confirmation.take_message().is_some() {
        bail!("publish returned as unroutable");
    }
    Ok(())
}

/// (Re)creates the ceiling's two queues with the given type.
async fn setup(opts: &Opts) -> Result<()> {
    let kind = opts.or("queue-type", "quorum");
    if kind != "quorum" && kind != "classic" {
        bail!("--queue-type quorum|classic");
    }
    let conn = connect(opts).await?;
    let ch = conn.create_channel().await?;
    for q in [CEIL_IN, CEIL_OUT] {
        ch.queue_delete(q.into(), QueueDeleteOptions::default()).await?;
        let mut args = FieldTable::default();
        args.insert("x-queue-type".into(), AMQPValue::LongString(kind.into()));
        ch.queue_declare(
            q.into(),
            QueueDeclareOptions { durable: true, ..QueueDeclareOptions::default() },
            args,
        )
        .await?;
    }
    println!("queue_type={kind}");
    let _ = conn.close(200, "done".into()).await;
    Ok(())
}

/// Publishes `count` copies of the §7.1 record with unique message ids, confirmed, keeping at
/// most 2 000 confirms outstanding. `--records distinct`: each one a record of its own (its
/// own 文书号 in no particular order, so its own record key), as real traffic is; the default
/// `same` re-sends one record.
async fn fill(opts: &Opts) -> Result<()> {
    let count: u64 = opts.num("count", 50_000)?;
    let distinct = match opts.or("records", "same") {
        "same" => false,
        "distinct" => true,
        other => anyhow::bail!("--records {other}: expected same or distinct"),
    };
    let template = String::from_utf8_lossy(BODY).into_owned();
    let exchange = opts.or("exchange", "").to_owned();
    let key = opts.str("key")?.to_owned();
    let prefix = opts.or("prefix", "fill").to_owned();
    let conn = connect(opts).await?;
    let ch = conn.create_channel().await?;
    ch.confirm_select(ConfirmSelectOptions::default()).await?;
    let started = Instant::now();
    let mut pending = std::collections::VecDeque::new();
    for i in 0..count {
        let body = if distinct {
            let number = i.wrapping_mul(2_654_435_761) % 10_000_000;
            template.replace("〔2026〕12号", &format!("〔2026〕{number}号")).into_bytes()
        } else {
            BODY.to_vec()
        };
        let confirm = ch
            .basic_publish(
                ShortString::from(exchange.as_str()),
                ShortString::from(key.as_str()),
                BasicPublishOptions { mandatory: true, ..BasicPublishOptions::default() },
                &body,
                persistent(format!("{prefix}-{i:08}")),
            )
            .await?;
        pending.push_back(confirm);
        if pending.len() >= 2000
            && let Some(c) = pending.pop_front()
        {
            confirm_ok(c).await?;
        }
    }
    for c in pending {
        confirm_ok(c).await?;
    }
    let secs = started.elapsed().as_secs_f64();
    println!("filled={count} secs={secs:.2} rate={:.0}", count as f64 / secs);
    let _ = conn.close(200, "done".into()).await;
    Ok(())
}

/// The ceiling consumer: bench.ceil.in → publish (confirmed) to bench.ceil.out → ack.
async fn drain(opts: &Opts) -> Result<()> {
    let prefetch: u16 = opts.num("prefetch", 200)?;
    let ack_every: u64 = opts.num("ack-every", 1)?;
    let count: u64 = opts.num("count", 0)?; // 0: until killed
    let conn = connect(opts).await?;
    let consume_ch = conn.create_channel().await?;
    consume_ch.basic_qos(prefetch, BasicQosOptions::default()).await?;
    let publish_ch = conn.create_channel().await?;
    publish_ch.confirm_select(ConfirmSelectOptions::default()).await?;
    let mut consumer = consume_ch
        .basic_consume(
            CEIL_IN.into(),
            "credgate-ceiling".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<(u64, PublisherConfirm)>();
    let acker = tokio::spawn(ack_loop(consume_ch.clone(), rx, ack_every, count));
    let started = Instant::now();
    let forward = async {
        while let Some(delivery) = consumer.next().await {
            let delivery = delivery?;
            let confirm = publish_ch
                .basic_publish(
                    "".into(),
                    CEIL_OUT.into(),
                    BasicPublishOptions { mandatory: true, ..BasicPublishOptions::default() },
                    &delivery.data,
                    delivery.properties.clone(),
                )
                .await?;
            if tx.send((delivery.delivery_tag, confirm)).is_err() {
                break;
            }
        }
        Ok::<(), anyhow::Error>(())
    };
    tokio::select! {
        r = forward => r?,
        r = acker => { r??; }
    }
    let secs = started.elapsed().as_secs_f64();
    if count > 0 {
        println!("drained={count} secs={secs:.2} rate={:.0}", count as f64 / secs);
        // Stay alive a moment so `watch` can read this process's CPU time and peak RSS.
        tokio::time::sleep(Duration::from_millis(opts.num("linger-ms", 1500)?)).await;
    }
    let _ = conn.close(200, "done".into()).await;
    Ok(())
}

/// Awaits confirms in publish order and acks: each delivery, or `multiple` every `ack_every`
/// (and whenever no further confirm is pending, so a tail is never held back).
async fn ack_loop(
    channel: Channel,
    mut rx: tokio::sync::mpsc::UnboundedReceiver<(u64, PublisherConfirm)>,
    ack_every: u64,
    count: u64,
) -> Result<()> {
    let mut done: u64 = 0;
    let mut since: u64 = 0;
    while let Some((tag, confirm)) = rx.recv().await {
        confirm_ok(confirm).await?;
        done += 1;
        since += 1;
        if ack_every <= 1 {
            channel.basic_ack(tag, BasicAckOptions { multiple: false }).await?;
        } else if since >= ack_every || rx.is_empty() {
            channel.basic_ack(tag, BasicAckOptions { multiple: true }).await?;
            since = 0;
        }
        if count > 0 && done >= count {
            return Ok(());
        }
    }
    Ok(())
}

async fn queue_depth(channel: &Channel, queue: &str) -> Result<u32> {
    let q = channel
        .queue_declare(
            queue.into(),
            QueueDeclareOptions { passive: true, durable: true, ..QueueDeclareOptions::default() },
            FieldTable::default(),
        )
        .await?;
    Ok(q.message_count())
}

/// utime + stime of a process in microseconds (clock ticks of 10 ms).
fn cpu_us(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) * 1e6 / 100.0)
}

/// Context switches (voluntary + involuntary) of all threads of a process so far.
fn ctx_switches(pid: u32) -> Option<u64> {
    let mut total = 0;
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).ok()? {
        let status = std::fs::read_to_string(task.ok()?.path().join("status")).ok()?;
        for line in status.lines() {
            if let Some(v) = line
                .strip_prefix("voluntary_ctxt_switches:")
                .or_else(|| line.strip_prefix("nonvoluntary_ctxt_switches:"))
            {
                total += v.trim().parse::<u64>().ok()?;
            }
        }
    }
    Some(total)
}

fn status_kib(pid: u32, key: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// Measures a drain from the outside: starts when the input queue's ready count first drops
/// below `count`, ends when the output queue holds `count` messages (every copy confirmed).
/// With `--pid`, also the CPU time that process used in between and its peak RSS.
async fn watch(opts: &Opts) -> Result<()> {
    let input = opts.str("in")?;
    let output = opts.str("out")?;
    let count: u32 = opts.num("count", 50_000)?;
    let pid: Option<u32> = opts.values.get("pid").map(|p| p.parse()).transpose()?;
    let broker: Option<u32> = opts.values.get("broker-pid").map(|p| p.parse()).transpose()?;
    let timeout = Duration::from_secs(opts.num("timeout", 300)?);
    let out_base: u32 = opts.num("out-base", 0)?;
    let conn = connect(opts).await?;
    let ch = conn.create_channel().await?;
    let poll = Duration::from_millis(20);
    let deadline = Instant::now() + timeout;
    // Start.
    let (started, cpu_start, cs_start) = loop {
        let cpu = pid.and_then(cpu_us);
        let cs = pid.and_then(ctx_switches);
        let bcpu = broker.and_then(cpu_us);
        if queue_depth(&ch, input).await? < count {
            break (Instant::now(), cpu, (cs, bcpu));
        }
        if Instant::now() > deadline {
            bail!("timeout: {input} never started draining");
        }
        tokio::time::sleep(poll).await;
    };
    // End.
    let mut last_out = 0;
    let (secs, cpu_end, cs_end) = loop {
        let out = queue_depth(&ch, output).await?.saturating_sub(out_base);
        if out >= count {
            break (
                started.elapsed().as_secs_f64(),
                pid.and_then(cpu_us),
                (pid.and_then(ctx_switches), broker.and_then(cpu_us)),
            );
        }
        if Instant::now() > deadline {
            bail!("timeout: {output} reached {out} of {count} (last {last_out})");
        }
        last_out = out;
        tokio::time::sleep(poll).await;
    };
    println!("count={count} secs={secs:.3} rate={:.0}", f64::from(count) / secs);
    let ((cs_start, broker_start), (cs_end, broker_end)) = (cs_start, cs_end);
    if let (Some(a), Some(b)) = (broker_start, broker_end) {
        println!("broker_cpu_us_per_msg={:.1}", (b - a) / f64::from(count));
    }
    if let (Some(pid), Some(a), Some(b)) = (pid, cpu_start, cpu_end) {
        println!("cpu_us_per_msg={:.1}", (b - a) / f64::from(count));
        println!("cpu_cores={:.2}", (b - a) / 1e6 / secs);
        if let (Some(a), Some(b)) = (cs_start, cs_end) {
            println!("ctx_switches_per_msg={:.2}", (b - a) as f64 / f64::from(count));
        }
        if let Some(hwm) = status_kib(pid, "VmHWM:") {
            println!("vmhwm_kib={hwm}");
        }
        if let Some(rss) = status_kib(pid, "VmRSS:") {
            println!("vmrss_kib={rss}");
        }
    }
    let _ = conn.close(200, "done".into()).await;
    Ok(())
}

/// Offered load at a fixed rate; a consumer on the output queue measures end-to-end latency.
async fn latency(opts: &Opts) -> Result<()> {
    let exchange = opts.or("exchange", "").to_owned();
    let key = opts.str("key")?.to_owned();
    let output = opts.str("out")?.to_owned();
    let rate: f64 = opts.num("rate", 1000.0)?;
    let secs: f64 = opts.num("secs", 30.0)?;
    let warmup: f64 = opts.num("warmup", 2.0)?;
    let run = format!("lat{}", now_ns() / 1_000_000 % 1_000_000);

    // Consumer first (auto-ack: measuring must not add to the broker's work per message).
    let consume_conn = connect(opts).await?;
    let cch = consume_conn.create_channel().await?;
    let mut consumer = cch
        .basic_consume(
            output.as_str().into(),
            "credgate-latency-probe".into(),
            BasicConsumeOptions { no_ack: true, ..BasicConsumeOptions::default() },
            FieldTable::default(),
        )
        .await?;
    let run_prefix = format!("{run}-");
    let collector = tokio::spawn(async move {
        let mut samples: Vec<(i64, i64)> = Vec::new(); // (sent, latency) ns
        let mut foreign = 0u64;
        while let Some(Ok(delivery)) = consumer.next().await {
            let received = now_ns();
            let headers = delivery.properties.headers().as_ref();
            let id = delivery.properties.message_id().as_ref().map(|m| m.as_str().to_owned());
            let source_id = headers.and_then(|h| match h.inner().get(SOURCE_ID_HEADER) {
                Some(AMQPValue::LongString(s)) => {
                    Some(String::from_utf8_lossy(s.as_bytes()).into_owned())
                }
                _ => None,
            });
            let ours = [id.as_deref(), source_id.as_deref()]
                .into_iter()
                .flatten()
                .find(|i| i.starts_with(&run_prefix));
            let sent = headers
                .and_then(|h| match h.inner().get(SENT_HEADER) {
                    Some(AMQPValue::LongLongInt(n)) => Some(*n),
                    _ => None,
                })
                .filter(|_| ours.is_some())
                .or_else(|| ours.and_then(|i| i.rsplit('-').next()?.parse().ok()));
            match sent {
                Some(sent) => samples.push((sent, received - sent)),
                None => foreign += 1,
            }
        }
        (samples, foreign)
    });

    let publish_conn = connect(opts).await?;
    let pch = publish_conn.create_channel().await?;
    pch.confirm_select(ConfirmSelectOptions::default()).await?;
    let (ctx, mut crx) = tokio::sync::mpsc::unbounded_channel::<PublisherConfirm>();
    let confirmer = tokio::spawn(async move {
        let mut failed = 0u64;
        while let Some(c) = crx.recv().await {
            if confirm_ok(c).await.is_err() {
                failed += 1;
            }
        }
        failed
    });
    let total = (rate * secs).round() as u64;
    let mut ticker = tokio::time::interval(Duration::from_secs_f64(1.0 / rate));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let started_ns = now_ns();
    let started = Instant::now();
    for seq in 0..total {
        ticker.tick().await;
        let sent = now_ns();
        let mut headers = FieldTable::default();
        headers.insert(SENT_HEADER.into(), AMQPValue::LongLongInt(sent));
        let confirm = pch
            .basic_publish(
                ShortString::from(exchange.as_str()),
                ShortString::from(key.as_str()),
                BasicPublishOptions { mandatory: true, ..BasicPublishOptions::default() },
                BODY,
                persistent(format!("{run}-{seq:07}-{sent}")).with_headers(headers),
            )
            .await?;
        let _ = ctx.send(confirm);
    }
    let offered = total as f64 / started.elapsed().as_secs_f64();
    drop(ctx);
    let failed = confirmer.await?;
    // Let the tail arrive (at most 15 s), then stop the consumer.
    let tail_deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let probe = publish_conn.create_channel().await?;
        let pending = queue_depth(&probe, &output).await.unwrap_or(0);
        let _ = probe.close(200, "ok".into()).await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        if (pending == 0 && Instant::now() > tail_deadline - Duration::from_secs(13))
            || Instant::now() > tail_deadline
        {
            break;
        }
    }
    let _ = consume_conn.close(200, "done".into()).await;
    let (samples, foreign) = collector.await?;
    let _ = publish_conn.close(200, "done".into()).await;
    let cutoff = started_ns + (warmup * 1e9) as i64;
    let mut lat: Vec<i64> = samples.iter().filter(|(s, _)| *s >= cutoff).map(|(_, l)| *l).collect();
    lat.sort_unstable();
    let pct = |p: f64| -> f64 {
        if lat.is_empty() {
            return f64::NAN;
        }
        let i = ((p / 100.0) * (lat.len() as f64 - 1.0)).round() as usize;
        lat[i.min(lat.len() - 1)] as f64 / 1e6
    };
    println!("sent={total} offered_rate={offered:.0} nacked={failed}");
    println!(
        "received={} measured={} (first {warmup} s excluded) foreign={foreign}",
        samples.len(),
        lat.len()
    );
    println!(
        "p50_ms={:.2} p90_ms={:.2} p99_ms={:.2} p999_ms={:.2} max_ms={:.2}",
        pct(50.0),
        pct(90.0),
        pct(99.0),
        pct(99.9),
        pct(100.0)
    );
    Ok(())
}

async fn depth(opts: &Opts) -> Result<()> {
    let conn = connect(opts).await?;
    for q in &opts.positional {
        let ch = conn.create_channel().await?;
        match queue_depth(&ch, q).await {
            Ok(n) => println!("{q}={n}"),
            Err(_) => println!("{q}=missing"),
        }
    }
    let _ = conn.close(200, "done".into()).await;
    Ok(())
}
