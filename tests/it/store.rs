//! The store behaves the same on SQLite and PostgreSQL: dedup keys with their first receipt,
//! and the highest delivered version per destination and record key (older ones never win).

use std::time::Duration;

use credgate::store::{Store, Write};

async fn exercise(store: &Store, tag: &str) {
    let id = format!("store-test-{tag}-{}", std::process::id());
    assert_eq!(store.receipt_for(&id).await.unwrap(), None);
    let message = |receipt: &str| Write::Message {
        message_id: id.clone(),
        adapter: "wh-ggzy".into(),
        doc_type: "penalty".into(),
        status: "accepted".into(),
        receipt: receipt.into(),
        received_at: "2026-11-23T10:00:00.000+08:00".into(),
    };
    store.write(message("{\"first\":true}")).await.unwrap();
    // A second write of the same id keeps the first receipt (the answer to a duplicate).
    store.write(message("{\"first\":false}")).await.unwrap();
    assert_eq!(store.receipt_for(&id).await.unwrap().as_deref(), Some("{\"first\":true}"));
    // Receipts per source (the console's 回执 tab), on both backends.
    let since = "2026-11-23T00:00:00.000+08:00";
    let receipts = store.receipts("wh-ggzy", since, "accepted", 10_000).await.unwrap();
    assert!(receipts.iter().any(|r| r.message_id == id), "{receipts:?}");
    assert!(
        store
            .receipts("wh-ggzy", since, "rejected", 10_000)
            .await
            .unwrap()
            .iter()
            .all(|r| r.message_id != id)
    );
    let counts = store.receipt_counts("wh-ggzy", since).await.unwrap();
    assert!(counts.iter().any(|(status, n)| status == "accepted" && *n >= 1), "{counts:?}");

    let key = format!("admin_penalty:{id}");
    let delivered = |version: &str| Write::Delivered {
        destination: "hb-credit".into(),
        record_key: key.clone(),
        record_version: version.into(),
        idempotency_key: format!("k-{version}"),
        delivered_at: "2026-11-23T10:00:01.000+08:00".into(),
        response: "200".into(),
    };
    store.write(delivered("2026-11-02")).await.unwrap();
    store.write(delivered("2026-11-01")).await.unwrap();
    assert_eq!(
        store.delivered_version("hb-credit", &key).await.unwrap().as_deref(),
        Some("2026-11-02")
    );
    store.write(delivered("2026-11-03")).await.unwrap();
    assert_eq!(
        store.delivered_version("hb-credit", &key).await.unwrap().as_deref(),
        Some("2026-11-03")
    );

    // Group commit: many concurrent writers, each answered after its batch committed.
    let writes = (0..200).map(|i| {
        let store = store.clone();
        let id = format!("{id}-{i}");
        async move {
            store
                .write(Write::Message {
                    message_id: id.clone(),
                    adapter: "a".into(),
                    doc_type: "d".into(),
                    status: "accepted".into(),
                    receipt: "{}".into(),
                    received_at: "t".into(),
                })
                .await
                .unwrap();
            id
        }
    });
    for id in futures_util::future::join_all(writes).await {
        assert!(store.receipt_for(&id).await.unwrap().is_some());
    }
}

#[tokio::test]
async fn sqlite_store() {
    support::within(Duration::from_secs(300), async {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open("sqlite://store.db", dir.path()).await.unwrap();
        assert_eq!(store.backend(), "sqlite");
        exercise(&store, "sqlite").await;
    })
    .await
}

#[tokio::test]
async fn postgres_store() {
    support::within(Duration::from_secs(300), async {
        // A database of its own: the shared `test` database would record this branch's migrations
        // as applied for every other branch testing against it.
        let Some((store, raw)) = postgres_backend("basic").await else { return };
        assert_eq!(store.backend(), "postgres");
        exercise(&store, "postgres").await;
        raw.drop_database().await;
    })
    .await
}

// ---------------------------------------------------------------------------------------------
// Lineage, dead letters, audit log and pause state, on both backends. Each backend gets a
// database of its own (a temporary SQLite file; a fresh PostgreSQL database), because the
// audit chain is one per store and the tamper checks must see only their own entries.
// ---------------------------------------------------------------------------------------------

use credgate::config::{CompiledConfig, LoadOptions};
use credgate::pipeline::{self, Inbound};
use credgate::store::dlq::{DeadLetter, DlqFilter, Replayed};
use credgate::store::lineage::{Attempt, RecordQuery, lineage_writes};

use super::support;

/// A store on a backend of its own, plus a raw pool for tampering with it.
enum Raw {
    Sqlite(sqlx::SqlitePool),
    Postgres(sqlx::PgPool, support::PgDatabase),
}

impl Raw {
    async fn exec(&self, sql: &'static str) {
        match self {
            Raw::Sqlite(p) => sqlx::query(sql).execute(p).await.map(|_| ()).unwrap(),
            Raw::Postgres(p, _) => sqlx::query(sql).execute(p).await.map(|_| ()).unwrap(),
        }
    }

    /// Rows of `table` for a record key, once the store's lineage backlog is indexed.
    async fn rows_for_key(&self, store: &Store, table: &str, key: &str) -> i64 {
        store.catch_up_lineage().await.unwrap();
        let sql = format!("SELECT COUNT(*) FROM {table} WHERE record_key = $1");
        let sql = sqlx::AssertSqlSafe(sql);
        match self {
            Raw::Sqlite(p) => sqlx::query_scalar(sql).bind(key).fetch_one(p).await.unwrap(),
            Raw::Postgres(p, _) => sqlx::query_scalar(sql).bind(key).fetch_one(p).await.unwrap(),
        }
    }

    /// Version rows of a record key whose `canonical` is `stored`.
    async fn versions_storing(&self, key: &str, stored: &str) -> i64 {
        let sql = "SELECT COUNT(*) FROM record_versions WHERE record_key = $1 AND canonical = $2";
        match self {
            Raw::Sqlite(p) => {
                sqlx::query_scalar(sql).bind(key).bind(stored).fetch_one(p).await.unwrap()
            }
            Raw::Postgres(p, _) => {
                sqlx::query_scalar(sql).bind(key).bind(stored).fetch_one(p).await.unwrap()
            }
        }
    }

    /// Closes the raw pool; the database guard then drops the database.
    async fn drop_database(self) {
        if let Raw::Postgres(pool, database) = self {
            pool.close().await;
            drop(database);
        }
    }
}

async fn sqlite_backend(dir: &tempfile::TempDir) -> (Store, Raw) {
    let store = Store::open("sqlite://lineage.db", dir.path()).await.unwrap();
    let raw =
        sqlx::SqlitePool::connect(&format!("sqlite://{}", dir.path().join("lineage.db").display()))
            .await
            .unwrap();
    (store, Raw::Sqlite(raw))
}

/// A fresh PostgreSQL database, or `None` when PostgreSQL is not running here.
async fn postgres_backend(tag: &str) -> Option<(Store, Raw)> {
    let database =
        support::PgDatabase::create(&format!("credgate_store_{tag}_{}", std::process::id()))
            .await?;
    let store = Store::open(&database.url(), std::path::Path::new(".")).await.unwrap();
    let raw = sqlx::PgPool::connect(&database.url()).await.unwrap();
    Some((store, Raw::Postgres(raw, database)))
}

fn sample_config() -> CompiledConfig {
    CompiledConfig::load(
        &std::path::Path::new(support::REPO).join("config"),
        &LoadOptions::default(),
    )
    .unwrap()
}

/// Ingests penalty `n` (as message `id`, published at `second`) into the store's lineage the
/// way the runtime does; returns (record key, record version, idempotency key to hb-credit).
async fn ingest_penalty(
    store: &Store,
    config: &CompiledConfig,
    n: usize,
    id: &str,
    second: i64,
) -> (String, String, String) {
    ingest_document(store, config, &support::penalty(n), id, second).await
}

/// Penalty `n` as its source versions it (`DATA_TIMESTAMP`): every receipt of it is the same
/// version, whatever the message.
fn versioned_penalty(n: usize) -> Vec<u8> {
    let mut body: serde_json::Value = serde_json::from_slice(&support::penalty(n)).unwrap();
    body["DATA_TIMESTAMP"] = "2026-09-28 10:00:00".into();
    serde_json::to_vec(&body).unwrap()
}

/// Ingests one document into the store's lineage the way the runtime does; returns (record
/// key, record version, idempotency key to hb-credit).
async fn ingest_document(
    store: &Store,
    config: &CompiledConfig,
    body: &[u8],
    id: &str,
    second: i64,
) -> (String, String, String) {
    let inbound = Inbound {
        adapter: "wh-ggzy",
        doc_type: "penalty",
        body,
        content_type: Some("application/json"),
        message_id: id,
        correlation_id: None,
        received_at: jiff::Timestamp::from_second(second).unwrap(),
        source_timestamp: Some(jiff::Timestamp::from_second(second).unwrap()),
    };
    let processed = pipeline::process(config, &inbound);
    let receipt = processed.receipt(&inbound);
    let writes = lineage_writes(&inbound, &processed, &receipt);
    assert!(
        matches!(writes.as_slice(), [Write::Lineage(_)]),
        "one accepted record, nothing rejected: {:?}",
        processed.records[0].violations
    );
    for w in writes {
        store.write(w).await.unwrap();
    }
    store
        .write(Write::Message {
            message_id: id.into(),
            adapter: "wh-ggzy".into(),
            doc_type: "penalty".into(),
            status: credgate::runtime::ingest::status_name(receipt.status).into(),
            receipt: serde_json::to_string(&receipt).unwrap(),
            received_at: receipt.received_at.clone(),
        })
        .await
        .unwrap();
    let record = processed.records[0].record.as_ref().unwrap();
    let copy = processed.records[0].copies.iter().find(|c| c.destination == "hb-credit").unwrap();
    (
        record.record_key().to_owned(),
        record.record_version().to_owned(),
        copy.idempotency_key.clone(),
    )
}

fn attempt(key: &str, version: &str, idem: &str, n: i64, outcome: &str, replay_of: &str) -> Write {
    Write::Attempt(Box::new(Attempt {
        idempotency_key: idem.into(),
        destination: "hb-credit".into(),
        record_key: key.into(),
        record_version: version.into(),
        attempt: n,
        outcome: outcome.into(),
        reason: if outcome == "delivered" { String::new() } else { "http 400".into() },
        response: format!("answer {n}"),
        replay_of: replay_of.into(),
        at: pipeline::rfc3339_shanghai(jiff::Timestamp::now()),
    }))
}

fn dead_letter(
    key: &str,
    version: &str,
    idem: &str,
    class: &str,
    source: &str,
    at: &str,
) -> DeadLetter {
    DeadLetter {
        dead_id: credgate::store::dlq::dead_id(idem, 1, ""),
        idempotency_key: idem.into(),
        destination: "hb-credit".into(),
        record_key: key.into(),
        record_version: version.into(),
        catalog_item: "admin_penalty".into(),
        operation: "upsert".into(),
        source_adapter: source.into(),
        source_message_id: "m".into(),
        content_type: "application/json".into(),
        payload: vec![0xe9, 0x84, 0x82, 0, 1, 2],
        reason_class: class.into(),
        reason: "http 400".into(),
        response: "400 {\"code\":\"E400\"}".into(),
        attempts: 1,
        history: "[]".into(),
        replay_of: String::new(),
        dead_at: at.into(),
    }
}

async fn exercise_lineage(store: &Store) {
    let config = sample_config();
    // Two versions of one penalty (a correction a minute later) and another penalty.
    let (key, v1, idem1) = ingest_penalty(store, &config, 7001, "lin-1", 1_795_184_000).await;
    let (key_b, v2, idem2) = ingest_penalty(store, &config, 7001, "lin-2", 1_795_184_060).await;
    assert_eq!(key, key_b);
    assert!(v2 > v1);
    let (other_key, _, _) = ingest_penalty(store, &config, 7002, "lin-3", 1_795_184_100).await;
    // Re-writing the same lineage (a redelivery before the dedup key committed) changes nothing.
    ingest_penalty(store, &config, 7001, "lin-1", 1_795_184_000).await;

    store.write(attempt(&key, &v1, &idem1, 1, "retry", "")).await.unwrap();
    store.write(attempt(&key, &v1, &idem1, 2, "delivered", "")).await.unwrap();
    store.write(attempt(&key, &v2, &idem2, 1, "dead", "")).await.unwrap();
    store
        .write(Write::DeadLetter(Box::new(dead_letter(
            &key,
            &v2,
            &idem2,
            "rejected",
            "wh-ggzy",
            "2026-11-23T10:00:00.000+08:00",
        ))))
        .await
        .unwrap();

    // By USCC (any spelling of it): both record keys, each version with where it went.
    let found =
        store.search_records(&RecordQuery::Uscc("91420100ma4p7q8r8n".into()), 50).await.unwrap();
    let keys: Vec<&str> = found.iter().map(|h| h.record_key.as_str()).collect();
    assert_eq!(keys.len(), 2, "{keys:?}");
    assert!(keys.contains(&key.as_str()) && keys.contains(&other_key.as_str()));
    let history = found.iter().find(|h| h.record_key == key).unwrap();
    assert_eq!(history.matched_fields, vec!["subject_uscc".to_owned()]);
    assert_eq!(history.versions.len(), 2, "the redelivered lineage was not stored twice");
    let first = &history.versions[0];
    assert_eq!(first.record_version, v1);
    assert_eq!(first.message_id, "lin-1");
    assert_eq!(first.source_adapter, "wh-ggzy");
    assert!(first.receipt_status.as_deref().is_some_and(|s| s.starts_with("accepted")));
    assert_eq!(first.canonical["decision_doc_no"], "鄂公管罚〔2026〕7001号");
    let copy = first.copies.iter().find(|c| c.destination == "hb-credit").unwrap();
    assert_eq!(copy.status, "delivered");
    let outcomes: Vec<&str> = copy.attempts.iter().map(|a| a.outcome.as_str()).collect();
    assert_eq!(outcomes, ["retry", "delivered"]);
    assert_eq!(copy.attempts[1].response, "answer 2");
    let second = &history.versions[1];
    let copy = second.copies.iter().find(|c| c.destination == "hb-credit").unwrap();
    assert_eq!(copy.status, "dead");
    assert_eq!(copy.dead_letters.len(), 1);

    // By ID number (legal representative), 文书号 in a variant spelling, message id, key.
    let by_id =
        store.find_record_keys(&RecordQuery::IdNo("420111198501011234".into()), 50).await.unwrap();
    assert_eq!(by_id.len(), 2);
    assert_eq!(by_id[0].1, vec!["legal_rep_id_no".to_owned()]);
    let by_doc = store
        .find_record_keys(&RecordQuery::DocNo("鄂公管罚[2026]第07001号".into()), 50)
        .await
        .unwrap();
    assert_eq!(by_doc.iter().map(|(k, _)| k.clone()).collect::<Vec<_>>(), vec![key.clone()]);
    let by_message =
        store.find_record_keys(&RecordQuery::MessageId("lin-3".into()), 50).await.unwrap();
    assert_eq!(by_message[0].0, other_key);
    assert!(store.record_history("admin_penalty:nothing").await.unwrap().is_none());

    // A rejected document is kept with its original bytes, once, for re-ingest.
    let body = b"{not json".to_vec();
    let inbound = Inbound {
        adapter: "wh-ggzy",
        doc_type: "penalty",
        body: &body,
        content_type: Some("application/json"),
        message_id: "lin-garbage",
        correlation_id: None,
        received_at: jiff::Timestamp::from_second(1_795_184_200).unwrap(),
        source_timestamp: None,
    };
    let processed = pipeline::process(&config, &inbound);
    let receipt = processed.receipt(&inbound);
    for _ in 0..2 {
        for w in lineage_writes(&inbound, &processed, &receipt) {
            assert!(matches!(w, Write::Rejected(_)));
            store.write(w).await.unwrap();
        }
    }
    let rejected = store.rejected_inputs("wh-ggzy", "", 10).await.unwrap();
    assert_eq!(rejected.len(), 1);
    assert_eq!(rejected[0].body, body);
    // With the configuration unchanged it would still be rejected: nothing is published.
    let report = credgate::runtime::ops::reingest(store, &config, "wh-ggzy", "", 10, true, "cli:t")
        .await
        .unwrap();
    assert_eq!(report.len(), 1);
    assert_eq!(report[0].outcome, "still_rejected");
    assert!(
        store
            .search_records(&RecordQuery::Uscc("91350100M000100Y43".into()), 50)
            .await
            .unwrap()
            .is_empty()
    );
}

/// A platform re-sending a document under a new message id: a version of its own (the message
/// id breaks the tie between equal times) with its own copies, but no new index row (0007: the
/// index is per record key); a document whose copies could not be published shows them
/// `unpublished` until the source's redelivery gets them delivered.
async fn exercise_resent_and_unpublished(store: &Store, raw: &Raw) {
    let config = sample_config();
    let (key, version, _) = ingest_penalty(store, &config, 7003, "resent-1", 1_795_184_300).await;
    let copies = raw.rows_for_key(store, "routed_copies", &key).await;
    let index = raw.rows_for_key(store, "record_index", &key).await;
    assert!(copies >= 1 && index >= 2, "copies {copies}, index rows {index}");
    let (again, other_version, _) =
        ingest_penalty(store, &config, 7003, "resent-2", 1_795_184_300).await;
    assert_eq!(again, key);
    assert_ne!(other_version, version);
    assert_eq!(
        raw.rows_for_key(store, "record_versions", &key).await,
        2,
        "one version row per message"
    );
    assert_eq!(
        raw.rows_for_key(store, "routed_copies", &key).await,
        2 * copies,
        "each version's copies"
    );
    assert_eq!(
        raw.rows_for_key(store, "record_index", &key).await,
        index,
        "the same identifiers again"
    );
    assert_eq!(raw.versions_storing(&key, "=").await, 0, "a new version keeps its body");
    // The same message again (a redelivery before its dedup key committed) adds nothing.
    ingest_penalty(store, &config, 7003, "resent-2", 1_795_184_300).await;
    assert_eq!(raw.rows_for_key(store, "record_versions", &key).await, 2);
    assert_eq!(raw.rows_for_key(store, "routed_copies", &key).await, 2 * copies);
    let history = store.record_history(&key).await.unwrap().unwrap();
    let messages: Vec<&str> = history.versions.iter().map(|v| v.message_id.as_str()).collect();
    assert_eq!(messages, ["resent-1", "resent-2"]);
    let by_doc = store
        .find_record_keys(&RecordQuery::DocNo("鄂公管罚〔2026〕7003号".into()), 50)
        .await
        .unwrap();
    assert_eq!(by_doc.len(), 1);

    // Penalty 7004: lineage written, then its publish failed.
    let body = support::penalty(7004);
    let inbound = Inbound {
        adapter: "wh-ggzy",
        doc_type: "penalty",
        body: &body,
        content_type: Some("application/json"),
        message_id: "unpublished-1",
        correlation_id: None,
        received_at: jiff::Timestamp::from_second(1_795_184_400).unwrap(),
        source_timestamp: Some(jiff::Timestamp::from_second(1_795_184_400).unwrap()),
    };
    let processed = pipeline::process(&config, &inbound);
    let receipt = processed.receipt(&inbound);
    let at = pipeline::rfc3339_shanghai(jiff::Timestamp::now());
    let failed = credgate::store::lineage::unpublished_attempts(
        &processed,
        "returned by credgate.route",
        &at,
    );
    let record = processed.records[0].record.as_ref().unwrap();
    assert_eq!(failed.len(), processed.records[0].copies.len());
    for w in lineage_writes(&inbound, &processed, &receipt).into_iter().chain(failed) {
        store.write(w).await.unwrap();
    }
    let history = store.record_history(record.record_key()).await.unwrap().unwrap();
    let copy = history.versions[0].copies.iter().find(|c| c.destination == "hb-credit").unwrap();
    assert_eq!(copy.status, "unpublished");
    assert_eq!(copy.attempts[0].attempt, 0);
    assert!(copy.attempts[0].reason.contains("returned by credgate.route"), "{:?}", copy.attempts);
    // The redelivery published it and the site took it.
    let idem = copy.idempotency_key.clone();
    store
        .write(attempt(record.record_key(), record.record_version(), &idem, 1, "delivered", ""))
        .await
        .unwrap();
    let history = store.record_history(record.record_key()).await.unwrap().unwrap();
    let copy = history.versions[0].copies.iter().find(|c| c.destination == "hb-credit").unwrap();
    assert_eq!(copy.status, "delivered");
    let outcomes: Vec<&str> = copy.attempts.iter().map(|a| a.outcome.as_str()).collect();
    assert_eq!(outcomes, ["unpublished", "delivered"]);
}

/// The history of `key`, checking that every version with a body reads as received; `want` is
/// the message ids of those versions.
async fn read_shared(
    store: &Store,
    key: &str,
    want: &[&str],
) -> credgate::store::lineage::RecordHistory {
    let history = store.record_history(key).await.unwrap().unwrap();
    let mut got = Vec::new();
    for v in &history.versions {
        let record = &v.canonical;
        if record.is_null() {
            continue;
        }
        // Each receipt reads as received: its own message id, time and raw hash.
        assert_eq!(record["message_id"], v.message_id.as_str());
        assert_eq!(record["received_at"], v.received_at.as_str());
        assert_eq!(record["raw_sha256"], v.raw_sha256.as_str());
        assert_eq!(record["decision_doc_no"], "鄂公管罚〔2026〕7200号");
        got.push(v.message_id.clone());
    }
    got.sort();
    assert_eq!(got, want, "versions with a body");
    history
}

/// A source re-sending the same version (a daily full push): its body is stored once and every
/// receipt still reads as received; retention hands the body on before it empties or deletes
/// the row holding it.
async fn exercise_shared_bodies(store: &Store, raw: &Raw) {
    let config = sample_config();
    let old = 1_790_784_000; // 2026-10-01T00:00:00+08:00
    let body = versioned_penalty(7200);
    let (key, version, _) = ingest_document(store, &config, &body, "daily-1", old).await;
    let copies = raw.rows_for_key(store, "routed_copies", &key).await;
    assert!(copies >= 1);
    for (day, id) in [(1, "daily-2"), (2, "daily-3")] {
        let (again, same, _) = ingest_document(store, &config, &body, id, old + day * 86_400).await;
        assert_eq!((again.as_str(), same.as_str()), (key.as_str(), version.as_str()));
    }
    assert_eq!(raw.rows_for_key(store, "record_versions", &key).await, 3);
    assert_eq!(raw.versions_storing(&key, "=").await, 2, "the body is stored once");
    // The same version with other content (a correction without a new version) keeps its own.
    let mut corrected: serde_json::Value = serde_json::from_slice(&body).unwrap();
    corrected["CF_NR"] = "罚款人民币12345.68元".into();
    let corrected = serde_json::to_vec(&corrected).unwrap();
    ingest_document(store, &config, &corrected, "daily-4", old + 3 * 86_400).await;
    assert_eq!(raw.versions_storing(&key, "=").await, 2, "a corrected body is a body of its own");
    assert_eq!(
        raw.rows_for_key(store, "routed_copies", &key).await,
        copies,
        "one version's copies"
    );

    let history = read_shared(store, &key, &["daily-1", "daily-2", "daily-3", "daily-4"]).await;
    let fine = |id: &str| {
        let v = history.versions.iter().find(|v| v.message_id == id).unwrap();
        v.canonical["penalty_content"].clone()
    };
    assert_eq!(fine("daily-3"), fine("daily-1"));
    assert_ne!(fine("daily-4"), fine("daily-1"));
    // The scorecard's and the deadline clock's readers see the records as received too.
    let since = "2026-10-01T00:00:00.000+08:00";
    let until = "2026-10-10T00:00:00.000+08:00";
    let received = store.received_between(since, until).await.unwrap();
    let ids: Vec<String> = received
        .iter()
        .filter_map(|(_, _, c)| serde_json::from_str::<serde_json::Value>(c).ok())
        .filter(|c| c["record_key"] == key.as_str())
        .map(|c| c["message_id"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(ids.len(), 4, "{ids:?}");
    assert!(ids.iter().all(|id| id.starts_with("daily-")), "{ids:?}");

    // Retention empties the bodies received before 2026-10-02T12:00 (daily-1, the holder, and
    // daily-2): the newest row sharing the body (daily-3) takes it over first.
    let cut = "2026-10-02T12:00:00.000+08:00";
    assert!(store.purge_bodies("admin_penalty", cut, 100).await.unwrap() >= 2);
    assert_eq!(raw.versions_storing(&key, "=").await, 0);
    read_shared(store, &key, &["daily-3", "daily-4"]).await;
    // A receipt after that shares daily-3's body.
    ingest_document(store, &config, &body, "daily-5", old + 5 * 86_400).await;
    assert_eq!(raw.versions_storing(&key, "=").await, 1);
    read_shared(store, &key, &["daily-3", "daily-4", "daily-5"]).await;
    // Deleting the rows received before 2026-10-03T12:00 (daily-1 to daily-3, the holder)
    // hands the body to daily-5.
    let cut = "2026-10-03T12:00:00.000+08:00";
    assert!(store.purge_metadata("admin_penalty", cut, 100).await.unwrap() >= 3);
    assert_eq!(raw.rows_for_key(store, "record_versions", &key).await, 2);
    read_shared(store, &key, &["daily-4", "daily-5"]).await;
    assert!(store.latest_canonical(&key).await.unwrap().is_some_and(|c| c.contains("daily-")));
}

async fn exercise_dead_letters(store: &Store) {
    for (i, (class, source, at)) in [
        ("rejected", "wh-ggzy", "2026-11-20T09:00:00.000+08:00"),
        ("retries_exhausted", "wh-ggzy", "2026-11-21T09:00:00.000+08:00"),
        ("rejected", "gc-county-credit", "2026-11-22T09:00:00.000+08:00"),
    ]
    .into_iter()
    .enumerate()
    {
        let letter =
            dead_letter(&format!("k{i}"), "v1", &format!("dl-test-{i}"), class, source, at);
        store.write(Write::DeadLetter(Box::new(letter.clone()))).await.unwrap();
        // The same death stored twice (redelivery after a crash) stays one dead letter.
        store.write(Write::DeadLetter(Box::new(letter))).await.unwrap();
    }
    let all = DlqFilter { destination: "hb-credit".into(), ..DlqFilter::default() };
    let listed = store.dead_letters(&all).await.unwrap();
    let mine: Vec<_> =
        listed.iter().filter(|l| l.idempotency_key.starts_with("dl-test-")).collect();
    assert_eq!(mine.len(), 3);
    let count = |filter: DlqFilter| async move {
        store
            .dead_letters(&filter)
            .await
            .unwrap()
            .iter()
            .filter(|l| l.idempotency_key.starts_with("dl-test-"))
            .count()
    };
    assert_eq!(count(DlqFilter { reason: "rejected".into(), ..DlqFilter::default() }).await, 2);
    assert_eq!(
        count(DlqFilter { source: "gc-county-credit".into(), ..DlqFilter::default() }).await,
        1
    );
    assert_eq!(count(DlqFilter { record_key: "k1".into(), ..DlqFilter::default() }).await, 1);
    let since = credgate::store::backend::parse_instant("2026-11-21").unwrap();
    let until = credgate::store::backend::parse_instant("2026-11-22T00:00:00+08:00").unwrap();
    assert_eq!(count(DlqFilter { since: since.clone(), until, ..DlqFilter::default() }).await, 1);
    assert_eq!(
        count(DlqFilter { destination: "elsewhere".into(), ..DlqFilter::default() }).await,
        0
    );

    // The bytes come back as stored; a replay is linked to its original and counted once.
    let id = credgate::store::dlq::dead_id("dl-test-0", 1, "");
    let detail = store.dead_letter(&id).await.unwrap().unwrap();
    assert_eq!(detail.payload, vec![0xe9, 0x84, 0x82, 0, 1, 2]);
    let replayed = Replayed {
        replay_id: "rp-test-0".into(),
        replay_of: id.clone(),
        idempotency_key: "dl-test-0".into(),
        destination: "hb-credit".into(),
        actor: "cli:test".into(),
        at: "2026-11-23T11:00:00.000+08:00".into(),
    };
    store.write(Write::Replayed(Box::new(replayed.clone()))).await.unwrap();
    store.write(Write::Replayed(Box::new(replayed))).await.unwrap();
    let detail = store.dead_letter(&id).await.unwrap().unwrap();
    assert_eq!(detail.summary.replay_count, 1);
    assert_eq!(count(DlqFilter { record_key: "k0".into(), ..DlqFilter::default() }).await, 0);
    assert_eq!(
        count(DlqFilter {
            record_key: "k0".into(),
            include_replayed: true,
            ..DlqFilter::default()
        })
        .await,
        1
    );
}

/// Appends four entries, checks the chain, then applies `tamper` and expects the first broken
/// entry to be `broken_at`.
async fn exercise_audit(store: &Store, raw: &Raw, tamper: &[&'static str], broken_at: i64) {
    for i in 0..4 {
        let details = serde_json::json!({ "n": i, "note": "审计" });
        let entry = store.audit("cli:tester", "dlq.replay", "hb-credit", &details).await.unwrap();
        assert_eq!(entry.seq, i + 1);
    }
    let verdict = store.verify_audit().await.unwrap();
    assert_eq!(verdict.entries, 4);
    assert_eq!(verdict.first_broken, None);
    for sql in tamper {
        raw.exec(sql).await;
    }
    let verdict = store.verify_audit().await.unwrap();
    let broken = verdict.first_broken.expect("tampering must be found");
    assert_eq!(broken.seq, broken_at, "{}", broken.problem);
}

const ALTER: &[&str] = &["UPDATE audit_log SET details = '{\"n\":9}' WHERE seq = 2"];
const REMOVE: &[&str] = &["DELETE FROM audit_log WHERE seq = 3"];
const REORDER: &[&str] = &[
    "UPDATE audit_log SET seq = 100 WHERE seq = 2",
    "UPDATE audit_log SET seq = 2 WHERE seq = 3",
    "UPDATE audit_log SET seq = 3 WHERE seq = 100",
];
const TRUNCATE: &[&str] = &["DELETE FROM audit_log WHERE seq = 4"];

async fn exercise_pause(store: &Store) {
    assert!(!store.destination_paused("hb-credit").await.unwrap());
    let entry =
        store.set_destination_paused("hb-credit", true, "维护窗口", "cli:ops").await.unwrap();
    assert_eq!(entry.action, "destination.pause");
    assert!(store.destination_paused("hb-credit").await.unwrap());
    store.set_destination_paused("hb-credit", false, "", "api:ops").await.unwrap();
    assert!(!store.destination_paused("hb-credit").await.unwrap());
    let states = store.destination_states().await.unwrap();
    assert_eq!(states.len(), 1);
    assert_eq!(states[0].changed_by, "api:ops");
    let entries = store.audit_entries(1, 100).await.unwrap();
    let actions: Vec<&str> = entries.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(actions, ["destination.pause", "destination.resume"]);
    assert_eq!(store.verify_audit().await.unwrap().first_broken, None);
}

#[tokio::test]
async fn sqlite_lineage_dlq_pause() {
    support::within(Duration::from_secs(300), async {
        let dir = tempfile::tempdir().unwrap();
        let (store, raw) = sqlite_backend(&dir).await;
        exercise_lineage(&store).await;
        exercise_resent_and_unpublished(&store, &raw).await;
        exercise_dead_letters(&store).await;
        exercise_pause(&store).await;
        // Last: its retention purges would reach older records of the other exercises.
        exercise_shared_bodies(&store, &raw).await;
    })
    .await
}

#[tokio::test]
async fn postgres_lineage_dlq_pause() {
    support::within(Duration::from_secs(300), async {
        let Some((store, raw)) = postgres_backend("lineage").await else { return };
        exercise_lineage(&store).await;
        exercise_resent_and_unpublished(&store, &raw).await;
        exercise_dead_letters(&store).await;
        exercise_pause(&store).await;
        // Last: its retention purges would reach older records of the other exercises.
        exercise_shared_bodies(&store, &raw).await;
        raw.drop_database().await;
    })
    .await
}

#[tokio::test]
async fn sqlite_audit_tampering_is_found() {
    support::within(Duration::from_secs(300), async {
        for (tamper, at) in [(ALTER, 2), (REMOVE, 3), (REORDER, 2), (TRUNCATE, 4)] {
            let dir = tempfile::tempdir().unwrap();
            let (store, raw) = sqlite_backend(&dir).await;
            exercise_audit(&store, &raw, tamper, at).await;
        }
    })
    .await
}

#[tokio::test]
async fn postgres_audit_tampering_is_found() {
    support::within(Duration::from_secs(300), async {
        for (i, (tamper, at)) in
            [(ALTER, 2), (REMOVE, 3), (REORDER, 2), (TRUNCATE, 4)].into_iter().enumerate()
        {
            let Some((store, raw)) = postgres_backend(&format!("audit{i}")).await else { return };
            exercise_audit(&store, &raw, tamper, at).await;
            raw.drop_database().await;
        }
    })
    .await
}

/// Concurrent appenders (two handles on one store: as a CLI and a gateway would be) never fork
/// the chain.
#[tokio::test]
async fn audit_appends_from_two_handles_stay_one_chain() {
    support::within(Duration::from_secs(300), async {
        let dir = tempfile::tempdir().unwrap();
        let a = Store::open("sqlite://audit.db", dir.path()).await.unwrap();
        let b = Store::open("sqlite://audit.db", dir.path()).await.unwrap();
        let appends = (0..20).map(|i| {
            let store = if i % 2 == 0 { a.clone() } else { b.clone() };
            async move {
                store
                    .audit("cli:t", "destination.pause", "x", &serde_json::json!({ "i": i }))
                    .await
                    .unwrap()
            }
        });
        let entries = futures_util::future::join_all(appends).await;
        let mut seqs: Vec<i64> = entries.iter().map(|e| e.seq).collect();
        seqs.sort();
        assert_eq!(seqs, (1..=20).collect::<Vec<_>>());
        let verdict = a.verify_audit().await.unwrap();
        assert_eq!((verdict.entries, verdict.first_broken), (20, None));
    })
    .await
}

// ---------------------------------------------------------------------------------------------
// Retention, delivery claims and dead-letter purge (issue 5), on both backends.
// ---------------------------------------------------------------------------------------------

/// Penalties received 2026-10-01 (five of them, to take several batches of two) and one
/// received 2029-06-01; admin_penalty keeps bodies 1098 days (its statutory minimum) and
/// metadata 1500 days.
async fn exercise_retention(store: &Store) {
    use credgate::retention::{ItemOverride, RetentionPolicy, RetentionSection};
    let config = sample_config();
    let old = 1_790_784_000; // 2026-10-01T00:00:00+08:00
    let recent = 1_874_937_600; // 2029-06-01T00:00:00+08:00
    let mut old_keys = Vec::new();
    for i in 0..5 {
        let (key, _, idem) =
            ingest_penalty(store, &config, 8000 + i, &format!("ret-old-{i}"), old).await;
        store.write(attempt(&key, "v", &idem, 1, "delivered", "")).await.unwrap();
        old_keys.push(key);
    }
    let (recent_key, _, _) = ingest_penalty(store, &config, 8100, "ret-recent", recent).await;
    let mut section =
        RetentionSection { batch_rows: 2, pause_ms: 1, ..RetentionSection::default() };
    section.items.insert(
        "admin_penalty".into(),
        ItemOverride { bodies_days: Some(1098), metadata_days: Some(1500) },
    );
    let policy =
        RetentionPolicy::compile(&section, &config.process.publicity, &config.catalog.item_names())
            .unwrap();
    let stop = tokio_util::sync::CancellationToken::new();
    let body_of = |key: String| async move {
        let history = store.record_history(&key).await.unwrap();
        history.map(|h| h.versions[0].canonical.clone())
    };

    // 2030-01-01: the old bodies are past 1098 days, their rows are not past 1500.
    let now: jiff::Timestamp = "2030-01-01T00:00:00+08:00".parse().unwrap();
    let report = credgate::runtime::retention::pass(store, &policy, now, &stop).await.unwrap();
    assert_eq!(report["admin_penalty"].bodies, 5, "{report:?}");
    assert_eq!(report["admin_penalty"].rows, 0, "{report:?}");
    for key in &old_keys {
        assert_eq!(body_of(key.clone()).await, Some(serde_json::Value::Null), "body kept: {key}");
    }
    assert!(body_of(recent_key.clone()).await.unwrap().is_object(), "recent body purged");
    // Idempotent: a second pass (another instance) finds nothing more.
    let again = credgate::runtime::retention::pass(store, &policy, now, &stop).await.unwrap();
    assert_eq!(again["admin_penalty"].total(), 0, "{again:?}");

    // 2031-01-01: the old rows are past 1500 days and go with their index, copies and attempts.
    let now: jiff::Timestamp = "2031-01-01T00:00:00+08:00".parse().unwrap();
    let report = credgate::runtime::retention::pass(store, &policy, now, &stop).await.unwrap();
    assert!(report["admin_penalty"].rows >= 5, "{report:?}");
    for key in &old_keys {
        assert!(store.record_history(key).await.unwrap().is_none(), "row kept: {key}");
        assert!(store.holders(key).await.unwrap().is_empty(), "routed copies kept: {key}");
    }
    // Their index rows went with their last version; the recent record is still found.
    let doc = |n: usize| RecordQuery::DocNo(format!("鄂公管罚〔2026〕{n}号"));
    assert!(store.find_record_keys(&doc(8000), 10).await.unwrap().is_empty(), "index rows kept");
    assert_eq!(store.find_record_keys(&doc(8100), 10).await.unwrap().len(), 1);
    let recent_history = store.record_history(&recent_key).await.unwrap().unwrap();
    assert!(recent_history.versions[0].canonical.is_object());
    // Dedup keys of the old messages went with the default metadata days (1827) only later.
    assert!(store.receipt_for("ret-old-0").await.unwrap().is_some());
}

async fn exercise_claims(store: &Store) {
    use std::time::Duration;
    let lease = Duration::from_secs(30);
    let claim = |owner: &'static str, lease: Duration| async move {
        store.claim_delivery("hb-credit", "claim-k1", owner, lease).await.unwrap()
    };
    assert!(claim("a", lease).await);
    assert!(!claim("b", lease).await, "a live claim of another owner is refused");
    assert!(claim("a", lease).await, "an owner renews its own claim");
    // Released with the outcome: the next attempt anywhere may claim.
    let release = credgate::store::claims::Release {
        destination: "hb-credit".into(),
        idempotency_key: "claim-k1".into(),
        owner: "a".into(),
    };
    store.write(Write::ReleaseClaim(Box::new(release))).await.unwrap();
    assert!(claim("b", Duration::from_millis(1)).await);
    // b died holding it: once its lease ran out, a takes over.
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert!(claim("a", lease).await);
    assert!(!claim("b", lease).await);
}

async fn exercise_dlq_purge(store: &Store) {
    for i in 0..3 {
        let letter = dead_letter(
            &format!("pk{i}"),
            "v1",
            &format!("purge-test-{i}"),
            if i == 2 { "retries_exhausted" } else { "rejected" },
            "wh-ggzy",
            "2026-11-20T09:00:00.000+08:00",
        );
        store.write(Write::DeadLetter(Box::new(letter))).await.unwrap();
    }
    let filter = DlqFilter {
        destination: "hb-credit".into(),
        reason: "rejected".into(),
        source: "wh-ggzy".into(),
        ..DlqFilter::default()
    };
    let mine = |ids: &[String]| {
        let ours: Vec<String> = (0..3)
            .map(|i| credgate::store::dlq::dead_id(&format!("purge-test-{i}"), 1, ""))
            .collect();
        ids.iter().filter(|id| ours.contains(id)).count()
    };
    let dry = store.purge_dead_letters(&filter, true, "cli:tester").await.unwrap();
    assert_eq!(mine(&dry.dead_ids), 2);
    assert_eq!((dry.purged, dry.audit_seq), (0, None));
    let left = store.dead_letters(&DlqFilter::default()).await.unwrap();
    assert_eq!(mine(&left.iter().map(|l| l.dead_id.clone()).collect::<Vec<_>>()), 3);

    let done = store.purge_dead_letters(&filter, false, "cli:tester").await.unwrap();
    assert_eq!(done.purged as usize, done.matched);
    let seq = done.audit_seq.expect("purge audited");
    let left = store.dead_letters(&DlqFilter::default()).await.unwrap();
    assert_eq!(mine(&left.iter().map(|l| l.dead_id.clone()).collect::<Vec<_>>()), 1);
    let entries = store.audit_entries(seq, 1).await.unwrap();
    assert_eq!(entries[0].action, "dlq.purge");
    assert_eq!(entries[0].actor, "cli:tester");
    assert!(entries[0].details.contains("\"count\""));
    assert_eq!(store.verify_audit().await.unwrap().first_broken, None);
}

#[tokio::test]
async fn sqlite_retention_claims_purge() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _raw) = sqlite_backend(&dir).await;
    exercise_retention(&store).await;
    exercise_claims(&store).await;
    exercise_dlq_purge(&store).await;
}

#[tokio::test]
async fn postgres_retention_claims_purge() {
    let Some((store, raw)) = postgres_backend("retention").await else { return };
    exercise_retention(&store).await;
    exercise_claims(&store).await;
    exercise_dlq_purge(&store).await;
    raw.drop_database().await;
}

/// A purge of 5 000 expired records (bodies, then rows) while ingest keeps committing dedup
/// keys: the purge goes in batches of 500 with a pause, so no commit waits long for it.
async fn purge_beside_ingest(store: &Store, raw: &Raw, what: &str) {
    use credgate::retention::{RetentionPolicy, RetentionSection};
    use std::time::{Duration, Instant};
    raw.exec(match raw {
        Raw::Sqlite(_) => "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 5000) INSERT INTO record_versions (message_id, record_index, record_key, record_version, source_adapter, doc_type, catalog_item, catalog_version, operation, status, raw_sha256, canonical, received_at) SELECT 'bulk-' || i, 0, 'admin_penalty:bulk-' || i, 'v', 'wh-ggzy', 'penalty', 'admin_penalty', '1', 'upsert', 'accepted', 'x', '{\"a\":1}', '2020-01-01T00:00:00.000+08:00' FROM n",
        Raw::Postgres(..) => "INSERT INTO record_versions (message_id, record_index, record_key, record_version, source_adapter, doc_type, catalog_item, catalog_version, operation, status, raw_sha256, canonical, received_at) SELECT 'bulk-' || i, 0, 'admin_penalty:bulk-' || i, 'v', 'wh-ggzy', 'penalty', 'admin_penalty', '1', 'upsert', 'accepted', 'x', '{\"a\":1}', '2020-01-01T00:00:00.000+08:00' FROM generate_series(1, 5000) AS i",
    })
    .await;
    let config = sample_config();
    let section = RetentionSection { pause_ms: 20, ..RetentionSection::default() };
    let mut section = section;
    section.items.insert(
        "admin_penalty".into(),
        credgate::retention::ItemOverride { bodies_days: Some(1098), metadata_days: Some(1500) },
    );
    let policy =
        RetentionPolicy::compile(&section, &config.process.publicity, &config.catalog.item_names())
            .unwrap();
    let stop = tokio_util::sync::CancellationToken::new();
    let purge = {
        let (store, policy, stop) = (store.clone(), policy.clone(), stop.clone());
        tokio::spawn(async move {
            let started = Instant::now();
            let now: jiff::Timestamp = "2026-11-23T12:00:00+08:00".parse().unwrap();
            let report = credgate::runtime::retention::pass(&store, &policy, now, &stop).await;
            (report.unwrap(), started.elapsed())
        })
    };
    let mut worst = Duration::ZERO;
    let mut writes = 0;
    while !purge.is_finished() {
        let started = Instant::now();
        store
            .write(Write::Message {
                message_id: format!("beside-purge-{writes}"),
                adapter: "wh-ggzy".into(),
                doc_type: "penalty".into(),
                status: "accepted".into(),
                receipt: "{}".into(),
                received_at: "2026-11-23T12:00:00.000+08:00".into(),
            })
            .await
            .unwrap();
        worst = worst.max(started.elapsed());
        writes += 1;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let (report, took) = purge.await.unwrap();
    eprintln!(
        "[purge beside ingest, {what}] purged {:?} in {:.2} s; {writes} dedup commits meanwhile, \
         slowest {:.1} ms",
        report["admin_penalty"],
        took.as_secs_f64(),
        worst.as_secs_f64() * 1000.0
    );
    assert_eq!(report["admin_penalty"].bodies, 5000);
    assert_eq!(report["admin_penalty"].rows, 5000);
    assert!(writes > 10, "ingest made no progress during the purge");
    assert!(worst < Duration::from_secs(1), "a commit waited {worst:?} for the purge");
}

#[tokio::test]
async fn sqlite_purge_beside_ingest() {
    let dir = tempfile::tempdir().unwrap();
    let (store, raw) = sqlite_backend(&dir).await;
    purge_beside_ingest(&store, &raw, "sqlite").await;
}

#[tokio::test]
async fn postgres_purge_beside_ingest() {
    let Some((store, raw)) = postgres_backend("purge").await else { return };
    purge_beside_ingest(&store, &raw, "postgres").await;
    raw.drop_database().await;
}

// ---------------------------------------------------------------------------------------------
// Lifecycle state (issue 6) on both backends: list events in any order and repeated rebuild
// the same list; retraction acknowledgements come from the retract copies' attempts; a lease
// is held by one owner at a time until it expires.
// ---------------------------------------------------------------------------------------------

use credgate::lifecycle::dishonest_list::ListEvent;
use credgate::lifecycle::retraction::{AckEntry, AckTracker, CauseKind, OpKind, RetractionCause};
use credgate::store::lifecycle::LifecycleWrite;

fn list_event(id: &str, version: &str, removed_on: Option<&str>) -> Write {
    let mut fields = serde_json::json!({
        "blacklist_id": id,
        "subject_name": "武汉测试市政工程有限公司",
        "subject_uscc": "91420106MA4R2T6U2E",
        "listed_on": "2026-06-15",
    });
    if let Some(day) = removed_on {
        fields["removed_on"] = day.into();
        fields["removal_reason"] = "信用修复移出".into();
    }
    let event = ListEvent::from_record(version, "upsert", fields.as_object().unwrap()).unwrap();
    Write::Lifecycle(Box::new(LifecycleWrite::ListEvent {
        record_key: format!("dishonest_list_entry:{id}"),
        event,
        accepted_at: "2026-11-23T10:00:00.000+08:00".into(),
    }))
}

async fn exercise_lifecycle(store: &Store) {
    // The removal arrives before the listing it removes, then the listing twice.
    store.write(list_event("A", "2026-11-16", Some("2026-11-16"))).await.unwrap();
    store.write(list_event("A", "2026-06-15", None)).await.unwrap();
    store.write(list_event("A", "2026-06-15", None)).await.unwrap();
    store.write(list_event("B", "2026-07-01", None)).await.unwrap();
    let list = store.dishonest_list().await.unwrap();
    assert_eq!(list.version(), 2, "the late listing is superseded, the repeat is a duplicate");
    let july: jiff::Timestamp = "2026-07-02T00:00:00+08:00".parse().unwrap();
    let december: jiff::Timestamp = "2026-12-01T00:00:00+08:00".parse().unwrap();
    assert_eq!(list.as_of(july).len(), 2);
    let ids: Vec<String> = list.as_of(december).into_iter().map(|e| e.blacklist_id).collect();
    assert_eq!(ids, ["B"]);
    assert_eq!(list.delta(1).unwrap().changes.len(), 1);

    // A retraction at two holders; one has delivered its retract copy.
    let key = "admin_penalty:X|鄂公管罚〔2026〕1号";
    let version = "2026-11-01~retract:credit_repair:R1";
    let tracker = AckTracker {
        target_record_key: key.into(),
        retract_version: version.into(),
        due: "2026-11-19".parse().unwrap(),
        acks: [
            ("hb-credit".to_owned(), AckEntry { kind: OpKind::Send, confirmed_at: None }),
            ("wh-ggzy-trading".to_owned(), AckEntry { kind: OpKind::Send, confirmed_at: None }),
        ]
        .into_iter()
        .collect(),
    };
    let cause = RetractionCause {
        kind: CauseKind::Revocation,
        basis_record_key: key.into(),
        basis_record_version: version.into(),
        decided_on: "2026-11-16".parse().unwrap(),
    };
    let write = || {
        Write::Lifecycle(Box::new(LifecycleWrite::Retraction {
            cause: cause.clone(),
            tracker: tracker.clone(),
            planned_at: "2026-11-16T10:00:00.000+08:00".into(),
        }))
    };
    store.write(write()).await.unwrap();
    store.write(write()).await.unwrap();
    let idem = pipeline::idempotency_key("hb-credit", key, version);
    store.write(attempt(key, version, &idem, 1, "delivered", "")).await.unwrap();
    let before_due: jiff::Timestamp = "2026-11-18T12:00:00+08:00".parse().unwrap();
    let shown = store.retractions(key, before_due).await.unwrap();
    assert_eq!(shown.len(), 1);
    let status: Vec<(&str, &str)> =
        shown[0].holders.iter().map(|h| (h.destination.as_str(), h.status.as_str())).collect();
    assert_eq!(status, [("hb-credit", "confirmed"), ("wh-ggzy-trading", "pending")]);
    let after_due: jiff::Timestamp = "2026-11-21T12:00:00+08:00".parse().unwrap();
    let shown = store.retractions(key, after_due).await.unwrap();
    assert_eq!(shown[0].holders[1].status, "overdue");

    // Publicity, deadlines, penalty index and scorecard queries over an ingested penalty made
    // serious (fine ≥ 100 万元), decided 2023-06-01 (527号: up to 3 years, to 2026-06-01).
    let config = sample_config();
    let mut doc: serde_json::Value = serde_json::from_slice(&support::penalty(4100)).unwrap();
    doc["CF_NR_FK"] = 150.0.into();
    doc["CF_JDRQ"] = "2023-06-01".into();
    doc["CF_YXQ"] = "2026-06-01".into();
    let body = serde_json::to_vec(&doc).unwrap();
    let received = jiff::Timestamp::from_second(1_795_000_000).unwrap();
    let inbound = Inbound {
        adapter: "wh-ggzy",
        doc_type: "penalty",
        body: &body,
        content_type: Some("application/json"),
        message_id: "lc-store-1",
        correlation_id: None,
        received_at: received,
        source_timestamp: None,
    };
    let mut processed = pipeline::process(&config, &inbound);
    let step = credgate::lifecycle::hook::after_accept(
        &config,
        &mut [&mut processed],
        &credgate::lifecycle::hook::Known::default(),
    )
    .pop()
    .unwrap();
    let receipt = processed.receipt(&inbound);
    let mut writes = lineage_writes(&inbound, &processed, &receipt);
    writes.extend(
        step.publicity
            .iter()
            .map(|p| Write::Lifecycle(Box::new(LifecycleWrite::Publicity(p.clone())))),
    );
    store.write_all(writes).await.unwrap();
    let pkey = processed.records[0].record.as_ref().unwrap().record_key().to_owned();
    let shown = store.publicity(&pkey).await.unwrap();
    assert_eq!((shown[0].tier.as_str(), shown[0].max_end.as_str()), ("严重", "2026-06-01"));
    assert!(store.publicity_due("2026-06-01", 10).await.unwrap().is_empty());
    let due = store.publicity_due("2026-06-02", 10).await.unwrap();
    assert_eq!(due, [(pkey.clone(), "2026-06-01".to_owned())]);
    let penalties = store.serious_penalties("91420100MA4P7Q8R8N").await.unwrap();
    assert!(penalties.iter().any(|p| p.record_key == pkey), "{penalties:?}");
    let copies = store.copy_deliveries(Some(&pkey), "").await.unwrap();
    assert_eq!(copies.len(), 1);
    assert_eq!((copies[0].1.as_str(), copies[0].2.as_deref()), ("hb-credit", None));
    let since = pipeline::rfc3339_shanghai(
        received.checked_sub(jiff::SignedDuration::from_hours(1)).unwrap(),
    );
    assert!(!store.copy_deliveries(None, &since).await.unwrap().is_empty());
    let until = pipeline::rfc3339_shanghai(
        received.checked_add(jiff::SignedDuration::from_hours(1)).unwrap(),
    );
    assert_eq!(store.received_between(&since, &until).await.unwrap().len(), 1);
    store
        .write(Write::Lifecycle(Box::new(LifecycleWrite::PublicityStopped {
            record_key: pkey.clone(),
            stopped_at: "2026-06-02T00:00:01.000+08:00".into(),
        })))
        .await
        .unwrap();
    assert!(store.publicity_due("2026-06-03", 10).await.unwrap().is_empty());

    // Leases: one owner until expiry, renewable by its owner.
    let t = |s: &str| s.to_owned();
    assert!(store.take_lease("publicity", "a", &t("10:00"), &t("10:30")).await.unwrap());
    assert!(!store.take_lease("publicity", "b", &t("10:10"), &t("10:40")).await.unwrap());
    assert!(store.take_lease("publicity", "a", &t("10:20"), &t("10:50")).await.unwrap());
    assert!(store.take_lease("publicity", "b", &t("10:51"), &t("11:20")).await.unwrap());
    assert!(!store.take_lease("publicity", "a", &t("10:52"), &t("11:20")).await.unwrap());
}

#[tokio::test]
async fn sqlite_lifecycle_state() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _raw) = sqlite_backend(&dir).await;
    exercise_lifecycle(&store).await;
}

#[tokio::test]
async fn postgres_lifecycle_state() {
    let Some((store, raw)) = postgres_backend("lifecycle").await else { return };
    exercise_lifecycle(&store).await;
    raw.drop_database().await;
}
