//! The credit lifecycle wired into the running gateway (issue 6), against the real broker and
//! store, with the lifecycle clock moved through the test-only admin endpoint:
//!
//! 1. a penalty reaches the credit platform; a credit repair of it retracts it there (found
//!    from lineage, not from today's routes), and `/v1/records` shows the holder confirmed;
//!    a paused holder stays pending, and becomes overdue once the clock passes the due day;
//! 2. a severe-dishonesty listing and its removal become list events: the list as of an
//!    instant, the delta since a version, the snapshot; the removal retracts the entry at
//!    every trading platform that held it;
//! 3. a bid naming the listed company as a candidate, at a time it was listed, yields a
//!    credit warning to smart supervision, the regulator and the trading platforms.

use std::time::Duration;

use serde_json::Value;

use super::support::{self, Rig, RigSetup};

const PENALTY_KEY: &str = "admin_penalty:11420000MB0P1Q2R33|鄂公管罚〔2026〕12号";
const LIST_KEY: &str = "dishonest_list_entry:HBXY-HMD-2026-000045";
const LISTED_USCC: &str = "91420106MA4R2T6U2E";

/// The lifecycle retractions of a record key, from `/v1/records`.
pub(crate) async fn retractions(admin: &support::Admin, key: &str) -> Vec<Value> {
    let (status, body) = admin.records_by_key(key).await;
    assert_eq!(status, 200, "{body}");
    body["records"][0]["lifecycle"]["retractions"].as_array().cloned().unwrap_or_default()
}

pub(crate) fn holder_status(retraction: &Value, destination: &str) -> String {
    retraction["holders"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["destination"] == destination)
        .map(|h| h["status"].as_str().unwrap_or_default().to_owned())
        .unwrap_or_default()
}

pub(crate) fn fixture(adapter: &str, case: &str, file: &str) -> Vec<u8> {
    std::fs::read(format!("{}/adapters/fixtures/{adapter}/{case}/{file}", support::REPO)).unwrap()
}

/// A credit repair of the penalty, decided `on` (YYYY-MM-DD).
pub(crate) fn repair(on: &str) -> Vec<u8> {
    let mut doc: Value =
        serde_json::from_slice(&fixture("hb-credit", "repair-ok", "input.json")).unwrap();
    doc["XFRQ"] = on.into();
    serde_json::to_vec(&doc).unwrap()
}

pub(crate) fn received(bodies: &[(String, Vec<u8>)]) -> Vec<Value> {
    bodies.iter().filter_map(|(_, b)| serde_json::from_slice(b).ok()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repair_retracts_everywhere_list_is_versioned_and_bids_are_warned() {
    support::within(Duration::from_secs(420), async {
        let Some(broker) = support::shared_broker() else { return };
        let rig = RigSetup::new(&broker, "lifecycle").regulator().lifecycle().start().await;
        let hb_trading = rig.collect("hb-ggzy-trading", "t").await;
        let wh_trading = rig.collect("wh-ggzy-trading", "t").await;
        let supervision = rig.collect("hb-smart-supervision", "t").await;
        let _clean_gov = rig.collect("hb-clean-gov", "t").await;
        // Bound in the order the test declared them, so they are dropped in reverse: the
        // vhost last.
        let Rig {
            vhost: _vhost,
            stop,
            credit,
            regulator,
            webhook,
            config,
            mut gateway,
            admin,
            connection,
            publisher,
        } = rig;

        // --- 1. Retraction reaching every holder -------------------------------------------
        publisher.json("wh-ggzy", "penalty", "lc-penalty", support::penalty(12)).await;
        let credit_ref = &credit;
        support::eventually(
            Duration::from_secs(60),
            "penalty delivered to hb-credit",
            || async move { credit_ref.accepted().len() == 1 },
        )
        .await;
        // The repair is decided today, so its deadline (3 working days) lies ahead.
        let today = jiff::Timestamp::now().to_zoned(credgate::pipeline::shanghai()).date();
        publisher.json("hb-credit", "repair", "lc-repair", repair(&today.to_string())).await;
        support::eventually(
            Duration::from_secs(60),
            "retraction delivered to hb-credit",
            || async move { credit_ref.accepted().len() == 2 },
        )
        .await;
        // The retract copy is the 信用中国 column format with 操作类型 D.
        let retract_body = credit
            .requests()
            .into_iter()
            .filter_map(|r| serde_json::from_slice::<Value>(&r.body).ok())
            .find(|b| b["CZLX"] == "D");
        assert!(retract_body.is_some(), "hb-credit got no retract copy: {:?}", credit.requests());
        let admin_ref = &admin;
        support::eventually(Duration::from_secs(30), "hb-credit confirmed", || async move {
            retractions(admin_ref, PENALTY_KEY)
                .await
                .first()
                .is_some_and(|r| holder_status(r, "hb-credit") == "confirmed")
        })
        .await;
        let retraction = retractions(&admin, PENALTY_KEY).await.remove(0);
        assert_eq!(retraction["cause"]["cause"], "repair", "{retraction}");
        assert!(
            retraction["retract_version"].as_str().unwrap().contains("~retract:credit_repair:"),
            "{retraction}"
        );

        // --- 5. Working-day deadlines of the copy: 双公示 from the decision (2026-09-28) was
        // breached long ago; province → credit platform from today's receipt was met.
        let (_, shown) = admin.records_by_key(PENALTY_KEY).await;
        let deadlines = shown["records"][0]["lifecycle"]["deadlines"].as_array().unwrap().clone();
        let status_of = |rule: &str| {
            deadlines
                .iter()
                .find(|d| d["rule"] == rule && d["destination"] == "hb-credit")
                .map(|d| d["status"].as_str().unwrap().to_owned())
                .unwrap_or_default()
        };
        assert_eq!(status_of("double_publicity"), "breached", "{deadlines:?}");
        assert_eq!(status_of("province_to_credit_platform"), "met", "{deadlines:?}");
        let webhook_ref = &webhook;
        support::eventually(Duration::from_secs(30), "deadline alert webhook", || async move {
            webhook_ref.requests().iter().any(|r| {
                serde_json::from_slice::<Value>(&r.body)
                    .is_ok_and(|b| b["status"] == "breached" && b["record_key"] == PENALTY_KEY)
            })
        })
        .await;
        support::eventually(Duration::from_secs(30), "deadline metric", || async move {
            let text = reqwest::get(format!("{}/metrics", admin_ref.base))
                .await
                .unwrap()
                .text()
                .await
                .unwrap();
            text.lines().any(|l| {
                l.starts_with("credgate_deadline_obligations")
                    && l.contains("source_org=\"11420000MB0P1Q2R33\"")
                    && l.contains("status=\"breached\"")
            })
        })
        .await;

        // The CLI shows the same: the retraction with the holder confirmed, the deadlines.
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_credgate"))
            .args(["--config", config.path().to_str().unwrap(), "records", "show", PENALTY_KEY])
            .output()
            .unwrap();
        let shown_cli = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        assert!(shown_cli.contains("retraction") && shown_cli.contains("confirmed"), "{shown_cli}");
        assert!(
            shown_cli.contains("double_publicity") && shown_cli.contains("breached"),
            "{shown_cli}"
        );

        // --- 2. Versioned severe-dishonesty list -------------------------------------------
        publisher
            .json(
                "hb-credit",
                "blacklist",
                "lc-listing",
                fixture("hb-credit", "blacklist-listing-ok", "input.json"),
            )
            .await;
        support::eventually(Duration::from_secs(60), "listing on the list", || async move {
            let (status, body) =
                admin_ref.get("/v1/lists/dishonest?as_of=2026-07-01T00:00:00%2B08:00").await;
            status == 200 && body["entries"].as_array().is_some_and(|e| e.len() == 1)
        })
        .await;
        let (_, before) = admin.get("/v1/lists/dishonest?as_of=2026-06-14T12:00:00%2B08:00").await;
        assert_eq!(
            before["entries"].as_array().unwrap().len(),
            0,
            "not in force before listing: {before}"
        );
        let (_, delta) = admin.get("/v1/lists/dishonest?since_version=0").await;
        assert_eq!(delta["list_version"], 1, "{delta}");
        assert_eq!(delta["changes"][0]["blacklist_id"], "HBXY-HMD-2026-000045");
        assert_eq!(
            delta["changes"][0]["effective_from"], "2026-06-15T00:00:00.000+08:00",
            "{delta}"
        );

        // --- 3. Bid-time credit warning (the listed company is candidate no. 2) -------------
        let bid = fixture("hb-ggzy-trading", "bid-result-ok", "input.xml");
        publisher.send("hb-ggzy-trading", "bid_result", "lc-bid", "application/xml", &bid).await;
        let regulator_ref = &regulator;
        support::eventually(
            Duration::from_secs(60),
            "credit warning at the regulator",
            || async move { !regulator_ref.accepted().is_empty() },
        )
        .await;
        let alert: Value = serde_json::from_slice(&regulator.requests()[0].body).unwrap();
        assert_eq!(alert["catalog_item"], "supervision_alert", "{alert}");
        assert_eq!(alert["alert_kind"], "信用预警", "{alert}");
        assert_eq!(alert["severity"], "高", "{alert}");
        assert_eq!(alert["matched_records"][0]["record_key"], LIST_KEY, "{alert}");
        assert_eq!(alert["subject_uscc"], LISTED_USCC, "{alert}");
        let supervision_ref = &supervision;
        support::eventually(
            Duration::from_secs(30),
            "credit warning at smart supervision",
            || async move {
                received(&supervision_ref.lock().unwrap()).iter().any(|b| {
                    b["catalog_item"] == "supervision_alert" && b["alert_kind"] == "信用预警"
                })
            },
        )
        .await;
        let hb_ref = &hb_trading;
        support::eventually(
            Duration::from_secs(30),
            "credit warning at the trading platform",
            || async move {
                received(&hb_ref.lock().unwrap()).iter().any(|b| b["alert_kind"] == "信用预警")
            },
        )
        .await;

        // --- 2b. Removal: list delta with effective-to, retraction at every holder ----------
        publisher
            .json(
                "hb-credit",
                "blacklist",
                "lc-removal",
                fixture("hb-credit", "blacklist-removal-ok", "input.json"),
            )
            .await;
        support::eventually(
            Duration::from_secs(60),
            "removal retracted at both trading platforms",
            || async move {
                retractions(admin_ref, LIST_KEY).await.first().is_some_and(|r| {
                    holder_status(r, "hb-ggzy-trading") == "confirmed"
                        && holder_status(r, "wh-ggzy-trading") == "confirmed"
                })
            },
        )
        .await;
        let (_, after) = admin.get("/v1/lists/dishonest?as_of=2026-11-20T00:00:00%2B08:00").await;
        assert_eq!(after["entries"].as_array().unwrap().len(), 0, "removed: {after}");
        let (_, past) = admin.get("/v1/lists/dishonest?as_of=2026-07-01T00:00:00%2B08:00").await;
        assert_eq!(past["entries"].as_array().unwrap().len(), 1, "still listed back then: {past}");
        let (_, delta) = admin.get("/v1/lists/dishonest?since_version=1").await;
        assert_eq!(delta["list_version"], 2, "{delta}");
        assert_eq!(delta["changes"][0]["effective_to"], "2026-11-16T00:00:00.000+08:00", "{delta}");
        let (_, snapshot) = admin.get("/v1/lists/dishonest").await;
        assert_eq!(snapshot["list_version"], 2, "{snapshot}");
        for platform in [&hb_trading, &wh_trading] {
            let bodies = received(&platform.lock().unwrap());
            let retract = bodies
                .iter()
                .find(|b| b["record_key"] == LIST_KEY && b["operation"] == "retract")
                .unwrap_or_else(|| panic!("no list retraction at a trading platform: {bodies:?}"));
            assert_eq!(retract["retraction"]["actions"][0], "停止共享", "{retract}");
            let removal = bodies
                .iter()
                .find(|b| {
                    b["record_key"] == LIST_KEY
                        && b["removed_on"] == "2026-11-16"
                        && b["operation"] == "upsert"
                })
                .unwrap_or_else(|| panic!("no removal at a trading platform: {bodies:?}"));
            assert_eq!(
                removal["list_change"]["effective_to"], "2026-11-16T00:00:00.000+08:00",
                "{removal}"
            );
        }

        // --- 1b. A paused holder stays pending, then becomes overdue ------------------------
        let (status, _) = admin
            .post("/v1/destinations/hb-credit/pause", serde_json::json!({"reason": "test"}))
            .await;
        assert_eq!(status, 200);
        tokio::time::sleep(Duration::from_secs(2)).await;
        publisher.json("wh-ggzy", "penalty", "lc-penalty-2", support::penalty(13)).await;
        let key13 = "admin_penalty:11420000MB0P1Q2R33|鄂公管罚〔2026〕13号";
        let mut repair13: Value = serde_json::from_slice(&repair(&today.to_string())).unwrap();
        repair13["XFBH"] = "HBXF2026000108".into();
        repair13["MBJLBS"] = key13.into();
        // The repair must find the penalty's lineage (committed before its source is acked).
        support::eventually(Duration::from_secs(60), "second penalty stored", || async move {
            let (status, body) = admin_ref.records_by_key(key13).await;
            status == 200 && body["records"].as_array().is_some_and(|r| !r.is_empty())
        })
        .await;
        publisher
            .json("hb-credit", "repair", "lc-repair-2", serde_json::to_vec(&repair13).unwrap())
            .await;
        support::eventually(Duration::from_secs(60), "pending retraction", || async move {
            retractions(admin_ref, key13)
                .await
                .first()
                .is_some_and(|r| holder_status(r, "hb-credit") == "pending")
        })
        .await;
        let (status, clock) = admin
            .post("/v1/lifecycle/clock", serde_json::json!({"now": "2026-12-31T12:00:00+08:00"}))
            .await;
        assert_eq!(status, 200, "{clock}");
        let overdue = retractions(&admin, key13).await.remove(0);
        assert_eq!(holder_status(&overdue, "hb-credit"), "overdue", "{overdue}");
        // Resumed, the holder gets the retraction and confirms it (late).
        let (status, _) = admin
            .post("/v1/destinations/hb-credit/resume", serde_json::json!({"reason": "test"}))
            .await;
        assert_eq!(status, 200);
        support::eventually(Duration::from_secs(60), "late confirmation", || async move {
            retractions(admin_ref, key13)
                .await
                .first()
                .is_some_and(|r| holder_status(r, "hb-credit") == "confirmed")
        })
        .await;

        // The queued original reached hb-credit first, the retraction after it, never the reverse.
        let order: Vec<String> = credit
            .requests()
            .into_iter()
            .filter_map(|r| serde_json::from_slice::<Value>(&r.body).ok())
            .filter(|b| b["CF_WSH"] == "鄂公管罚〔2026〕13号")
            .map(|b| b["CZLX"].as_str().unwrap_or_default().to_owned())
            .collect();
        assert_eq!(order, ["U", "D"], "original then retraction");

        // --- 4. Publicity at runtime -------------------------------------------------------
        // A 一般 penalty decided 2025-12-20 (527号: publicity up to one year, to 2026-12-20); the
        // clock already stands at 2026-12-31, so the timer stops its publicity at once.
        let mut old_penalty: Value = serde_json::from_slice(&support::penalty(14)).unwrap();
        old_penalty["CF_JDRQ"] = "2025-12-20".into();
        old_penalty["CF_YXQ"] = "2026-12-20".into();
        publisher
            .json("wh-ggzy", "penalty", "lc-penalty-3", serde_json::to_vec(&old_penalty).unwrap())
            .await;
        let key14 = "admin_penalty:11420000MB0P1Q2R33|鄂公管罚〔2026〕14号";
        support::eventually(
            Duration::from_secs(60),
            "publicity stopped by the timer",
            || async move {
                retractions(admin_ref, key14).await.first().is_some_and(|r| {
                    r["cause"]["cause"] == "publicity_ended"
                        && holder_status(r, "hb-credit") == "confirmed"
                })
            },
        )
        .await;
        let (_, shown) = admin.records_by_key(key14).await;
        let publicity = &shown["records"][0]["lifecycle"]["publicity"][0];
        assert_eq!(publicity["tier"], "一般", "{publicity}");
        assert_eq!(publicity["rule_version"], "ndrc-527-2019", "{publicity}");
        assert_eq!(publicity["max_end"], "2026-12-20", "{publicity}");
        assert!(publicity["stopped_at"].as_str().is_some_and(|s| !s.is_empty()), "{publicity}");
        // A 轻微 penalty (a warning only) is not forwarded to the credit platform.
        let mut minor: Value = serde_json::from_slice(&support::penalty(15)).unwrap();
        minor["CF_CFLB"] = "警告".into();
        minor["CF_NR"] = "警告".into();
        minor.as_object_mut().unwrap().remove("CF_NR_FK");
        publisher
            .json("wh-ggzy", "penalty", "lc-penalty-minor", serde_json::to_vec(&minor).unwrap())
            .await;
        let key15 = "admin_penalty:11420000MB0P1Q2R33|鄂公管罚〔2026〕15号";
        support::eventually(Duration::from_secs(60), "minor penalty stored", || async move {
            let (_, body) = admin_ref.records_by_key(key15).await;
            body["records"].as_array().is_some_and(|r| !r.is_empty())
        })
        .await;
        let (_, shown) = admin.records_by_key(key15).await;
        let record = &shown["records"][0];
        assert_eq!(record["lifecycle"]["publicity"][0]["publish"], false, "{record}");
        assert_eq!(record["lifecycle"]["publicity"][0]["tier"], "轻微", "{record}");
        assert!(record["versions"][0]["copies"].as_array().unwrap().is_empty(), "{record}");
        assert_eq!(record["versions"][0]["receipt_status"], "accepted_with_warnings", "{record}");

        // --- 3b. A serious (严重) publicised penalty of the winner warns a later bid (中) ------
        let mut serious: Value = serde_json::from_slice(&support::penalty(16)).unwrap();
        serious["CF_NR"] = "罚款人民币150万元".into();
        serious["CF_NR_FK"] = 150.0.into();
        publisher
            .json("wh-ggzy", "penalty", "lc-penalty-serious", serde_json::to_vec(&serious).unwrap())
            .await;
        let key16 = "admin_penalty:11420000MB0P1Q2R33|鄂公管罚〔2026〕16号";
        support::eventually(Duration::from_secs(60), "serious penalty stored", || async move {
            let (_, body) = admin_ref.records_by_key(key16).await;
            body["records"][0]["lifecycle"]["publicity"][0]["tier"] == "严重"
        })
        .await;
        let second_bid = String::from_utf8(bid.clone())
            .unwrap()
            .replace("20261109-000087-R", "20261109-000088-R")
            .replace("E4206000002001234001001", "E4206000002001234002001");
        publisher
            .send(
                "hb-ggzy-trading",
                "bid_result",
                "lc-bid-2",
                "application/xml",
                second_bid.as_bytes(),
            )
            .await;
        support::eventually(
            Duration::from_secs(60),
            "serious-penalty warning at the regulator",
            || async move {
                regulator_ref.requests().iter().any(|r| {
                    serde_json::from_slice::<Value>(&r.body).is_ok_and(|b| {
                        b["rule_code"] == "CREDIT-SERIOUS-PENALTY"
                            && b["severity"] == "中"
                            && b["matched_records"][0]["record_key"] == key16
                    })
                })
            },
        )
        .await;

        // --- 6. Compliance scorecard: the city bureau's five penalties of today (12–16), the
        // 双公示 deadline of each copy to hb-credit breached (decided weeks ago).
        // Today and tomorrow (Asia/Shanghai): a run across midnight splits the rows by day.
        // Plus one penalty rejected for its subject's USCC checksum: received 6.
        let mut bad: Value = serde_json::from_slice(&support::penalty(17)).unwrap();
        bad["CF_XDR_SHXYM"] = "91420100MA4P7Q8R8X".into();
        publisher
            .json("wh-ggzy", "penalty", "lc-penalty-bad", serde_json::to_vec(&bad).unwrap())
            .await;
        let tomorrow = today.tomorrow().unwrap();
        let scorecard_path = format!("/v1/scorecard?from={today}&to={tomorrow}");
        let penalty_rows = |card: &Value| -> Vec<Value> {
            card["rows"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|r| {
                    r["source_org"] == "11420000MB0P1Q2R33" && r["catalog_item"] == "admin_penalty"
                })
                .cloned()
                .collect()
        };
        let scorecard_ref = &scorecard_path;
        support::eventually(Duration::from_secs(30), "rejection on the scorecard", || async move {
            let (_, card) = admin_ref.get(scorecard_ref).await;
            penalty_rows(&card).iter().any(|r| r["rejected_records"].as_u64() == Some(1))
        })
        .await;
        let (status, card) = admin.get(&scorecard_path).await;
        assert_eq!(status, 200, "{card}");
        let rows = penalty_rows(&card);
        let sum = |k: &str| rows.iter().map(|r| r[k].as_u64().unwrap()).sum::<u64>();
        assert_eq!(sum("accepted") + sum("accepted_with_warnings"), 5, "{card}");
        assert_eq!(sum("rejected_records"), 1, "{card}");
        assert_eq!(sum("received"), 6, "{card}");
        assert!(sum("deadlines_breached") >= 1, "{card}");
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_credgate"))
            .args(["--config", config.path().to_str().unwrap(), "scorecard", "--csv"])
            .args(["--from", &today.to_string(), "--to", &tomorrow.to_string()])
            .output()
            .unwrap();
        let csv = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        assert!(csv.starts_with("day,source_org,catalog_item,"), "{csv}");
        assert!(csv.lines().any(|l| l.contains(",11420000MB0P1Q2R33,admin_penalty,")), "{csv}");

        stop.cancel();
        assert_eq!(gateway.terminate(), Some(0), "{}", gateway.log_text());
        drop(connection);
    })
    .await
}

/// An objection (异议) to a penalty, filed with 信用湖北 (`hb-credit` objection documents), for
/// a penalty number `n` of `support::penalty`, at `status`.
pub(crate) fn objection(id: &str, n: usize, status: &str) -> Vec<u8> {
    let mut doc = serde_json::json!({
        "YYBH": id,
        "MBML": "admin_penalty",
        "MBJLBS": format!("admin_penalty:11420000MB0P1Q2R33|鄂公管罚〔2026〕{n}号"),
        "YYLY": "处罚决定书认定的事实与招标文件记载不符，申请核查。",
        "SQSJ": "2026-11-10T09:00:00+08:00",
        "CLZT": status,
        "ZTMC": "湖北示例建设工程有限公司",
        "ZTLB": "法人及非法人组织",
        "ZTDM": "91420100MA4P7Q8R8N",
        "JBRXM": "李四",
        "JBRDH": "13800001234",
    });
    if status != "待受理" {
        doc["SLSJ"] = "2026-11-11T10:00:00+08:00".into();
    }
    serde_json::to_vec(&doc).unwrap()
}

/// The copy statuses (`held`, `delivered` …) of a record key's versions, from `/v1/records`.
pub(crate) async fn copy_statuses(admin: &support::Admin, key: &str) -> Vec<String> {
    let (_, body) = admin.records_by_key(key).await;
    body["records"][0]["versions"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|v| v["copies"].as_array().cloned().unwrap_or_default())
        .filter_map(|c| c["status"].as_str().map(str::to_owned))
        .collect()
}

/// The objection hold against the running gateway, with `hb-credit` configured to suspend
/// held records (`dispute_hold = "suspend"`):
///
/// A. the credit platform has the penalty when the objection is accepted: it gets a
///    suspension notice (暂停公示); a corrected version sent by the source while the
///    objection is open is parked, not delivered; the outcome 已更正 releases the corrected
///    version (恢复公示);
/// B. the penalty is still queued (the destination is paused) when the objection is accepted:
///    the queued copy is parked once the destination resumes, nothing reaches the platform,
///    and the outcome 维持 delivers it — held, never lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_objection_holds_the_record_until_its_outcome() {
    support::within(Duration::from_secs(360), async {
        let Some(broker) = support::shared_broker() else { return };
        let setup = RigSetup::new(&broker, "dispute").configure().await;
        let adapter = setup.config.path().join("adapters/hb-credit.toml");
        let text = std::fs::read_to_string(&adapter).unwrap();
        let text = text.replacen(
            "audience = \"government\"",
            "audience = \"government\"\ndispute_hold = \"suspend\"",
            1,
        );
        std::fs::write(&adapter, text).unwrap();
        let rig = setup.spawn().await;
        for platform in ["hb-ggzy-trading", "wh-ggzy-trading"] {
            rig.collect(platform, "d").await;
        }
        let Rig { vhost: _vhost, stop, credit, mut gateway, admin, connection, publisher, .. } =
            rig;
        let publish = |doc_type: &'static str, id: &'static str, body: Vec<u8>| {
            let adapter = if doc_type == "penalty" { "wh-ggzy" } else { "hb-credit" };
            let publisher = publisher.clone();
            async move { publisher.json(adapter, doc_type, id, body).await }
        };
        let credit_ref = &credit;
        let admin_ref = &admin;
        let bodies = || -> Vec<Value> {
            credit_ref
                .requests()
                .iter()
                .filter_map(|r| serde_json::from_slice::<Value>(&r.body).ok())
                .collect()
        };
        let delivered = |n: usize| async move {
            support::eventually(Duration::from_secs(60), "copies at hb-credit", || async move {
                credit_ref.accepted().len() >= n
            })
            .await;
        };

        // --- A. Held after delivery -----------------------------------------------------
        let key_a = "admin_penalty:11420000MB0P1Q2R33|鄂公管罚〔2026〕31号";
        publish("penalty", "dp-penalty-31", support::penalty(31)).await;
        delivered(1).await;
        publish("objection", "dp-objection-a1", objection("HBYY-A", 31, "已受理")).await;
        delivered(2).await;
        let suspension = bodies().remove(1);
        assert_eq!(suspension["YYCL"], "暂停公示", "{suspension}");
        assert_eq!(suspension["YYZT"], "已受理", "{suspension}");
        assert_eq!(suspension["CF_WSH"], "鄂公管罚〔2026〕31号", "{suspension}");

        // The source corrects the penalty while the objection is open: parked, not sent.
        // (Versions are the receipt instant to the second, then the message id: a correction
        // in the same second as the hold would sort before the hold's own copy.)
        tokio::time::sleep(Duration::from_millis(1100)).await;
        let mut corrected: Value = serde_json::from_slice(&support::penalty(31)).unwrap();
        corrected["CF_NR"] = "罚款人民币10000元".into();
        publish("penalty", "dp-penalty-31-corrected", serde_json::to_vec(&corrected).unwrap())
            .await;
        support::eventually(Duration::from_secs(60), "corrected copy held", || async move {
            copy_statuses(admin_ref, key_a).await.iter().any(|s| s == "held")
        })
        .await;
        assert_eq!(credit.accepted().len(), 2, "a held copy reached the platform");

        publish("objection", "dp-objection-a2", objection("HBYY-A", 31, "已更正")).await;
        delivered(3).await;
        let release = bodies().remove(2);
        assert_eq!(release["YYCL"], "恢复公示", "{release}");
        assert_eq!(release["YYZT"], "已更正", "{release}");
        assert_eq!(release["CF_NR"], "罚款人民币10000元", "the corrected version: {release}");
        let (_, shown) = admin.records_by_key(key_a).await;
        let dispute = &shown["records"][0]["lifecycle"]["disputes"][0];
        assert_eq!(dispute["status"], "已更正", "{shown}");
        assert_eq!(dispute["holding"], false, "{dispute}");
        assert_eq!(dispute["holders"][0]["policy"], "suspend", "{dispute}");
        let history: Vec<&str> =
            dispute["history"].as_array().unwrap().iter().map(|h| h[1].as_str().unwrap()).collect();
        assert_eq!(history, ["待受理", "已受理", "已更正"], "{dispute}");

        // --- B. Held while queued -------------------------------------------------------
        let key_b = "admin_penalty:11420000MB0P1Q2R33|鄂公管罚〔2026〕32号";
        let (status, body) =
            admin.post("/v1/destinations/hb-credit/pause", serde_json::json!({})).await;
        assert_eq!(status, 200, "{body}");
        // Delivery workers see a pause within their 1 s poll of the store.
        tokio::time::sleep(Duration::from_millis(2500)).await;
        publish("penalty", "dp-penalty-32", support::penalty(32)).await;
        // Objections come days after the record; here, at least after it was stored (the two
        // documents are consumed from different queues).
        support::eventually(Duration::from_secs(60), "penalty 32 stored", || async move {
            !copy_statuses(admin_ref, key_b).await.is_empty()
        })
        .await;
        publish("objection", "dp-objection-b1", objection("HBYY-B", 32, "已受理")).await;
        support::eventually(Duration::from_secs(60), "objection B holds", || async move {
            let (_, shown) = admin_ref.records_by_key(key_b).await;
            shown["records"][0]["lifecycle"]["disputes"][0]["holding"] == true
        })
        .await;
        let (status, body) =
            admin.post("/v1/destinations/hb-credit/resume", serde_json::json!({})).await;
        assert_eq!(status, 200, "{body}");
        support::eventually(Duration::from_secs(60), "queued copy held", || async move {
            copy_statuses(admin_ref, key_b).await.iter().any(|s| s == "held")
        })
        .await;
        assert_eq!(credit.accepted().len(), 3, "the held penalty reached the platform");

        publish("objection", "dp-objection-b2", objection("HBYY-B", 32, "维持")).await;
        delivered(4).await;
        let released = bodies().remove(3);
        assert_eq!(released["CF_WSH"], "鄂公管罚〔2026〕32号", "{released}");
        assert_eq!(released["YYZT"], "维持", "{released}");
        assert_eq!(released["YYCL"], "恢复公示", "{released}");
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert_eq!(credit.accepted().len(), 4, "nothing else reached the platform");

        stop.cancel();
        assert_eq!(gateway.terminate(), Some(0), "{}", gateway.log_text());
        drop(connection);
    })
    .await
}
