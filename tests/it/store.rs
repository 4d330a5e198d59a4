//! The store behaves the same on SQLite and PostgreSQL: dedup keys with their first receipt,
//! and the highest delivered version per destination and record key (older ones never win).

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
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open("sqlite://store.db", dir.path()).await.unwrap();
    assert_eq!(store.backend(), "sqlite");
    exercise(&store, "sqlite").await;
}

#[tokio::test]
async fn postgres_store() {
    let reachable = std::net::TcpStream::connect("127.0.0.1:5432").is_ok();
    if !reachable {
        assert!(
            std::env::var("CREDGATE_REQUIRE_POSTGRES").is_err(),
            "PostgreSQL on 127.0.0.1:5432 is required"
        );
        eprintln!("skipping: no PostgreSQL on 127.0.0.1:5432");
        return;
    }
    let store = Store::open("postgres://postgres@127.0.0.1:5432/test", std::path::Path::new("."))
        .await
        .unwrap();
    assert_eq!(store.backend(), "postgres");
    exercise(&store, "postgres").await;
}
