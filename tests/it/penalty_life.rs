//! One serious penalty's whole life through the running gateway (issue 6's closing scenario),
//! against the real broker and store, printed as a timeline:
//!
//! 1. a city bureau's penalty (fine 150万元: 严重) reaches the provincial credit platform
//!    within its 双公示 deadline, with its publicity window decided;
//! 2. the company is put on the severe-dishonesty list;
//! 3. it wins a bid: a credit warning goes to smart supervision, the regulator and the trading
//!    platforms, and the regulator's disposal feedback flows back to smart supervision;
//! 4. it objects (异议): the credit platform shows the penalty marked until the objection is
//!    dismissed (驳回), then plainly again;
//! 5. its credit is repaired: the penalty is retracted at every holder, which confirms; the list
//!    entry is removed everywhere it was sent, and the list as of each instant says so.

use std::time::Duration;

use serde_json::Value;

use super::lifecycle_e2e::{fixture, holder_status, objection, received, repair, retractions};
use super::support::{self, Rig, RigSetup};

const PENALTY_KEY: &str = "admin_penalty:11420000MB0P1Q2R33|鄂公管罚〔2026〕12号";
const LIST_KEY: &str = "dishonest_list_entry:HBXY-HMD-2026-000045";
const SUBJECT: &str = "91420100MA4P7Q8R8N";

/// A timeline line: wall-clock offset from the start, step, what was seen.
struct Timeline {
    started: std::time::Instant,
    lines: Vec<String>,
}

impl Timeline {
    fn note(&mut self, step: &str, seen: String) {
        let line = format!("{:>6.1} s  {step:<34} {seen}", self.started.elapsed().as_secs_f64());
        eprintln!("{line}");
        self.lines.push(line);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_serious_penalty_from_publication_to_repair() {
    support::within(Duration::from_secs(420), async {
        let Some(broker) = support::shared_broker() else { return };
        let rig = RigSetup::new(&broker, "penalty-life").regulator().lifecycle().start().await;
        let hb_trading = rig.collect("hb-ggzy-trading", "p").await;
        let wh_trading = rig.collect("wh-ggzy-trading", "p").await;
        let supervision = rig.collect("hb-smart-supervision", "p").await;
        let _clean_gov = rig.collect("hb-clean-gov", "p").await;
        // Bound in the order the test declared them, so they are dropped in reverse: the
        // vhost last.
        let Rig {
            vhost: _vhost,
            stop,
            credit,
            regulator,
            webhook: _webhook,
            config: _config,
            mut gateway,
            admin,
            connection,
            publisher,
        } = rig;
        const JSON: &str = "application/json";
        let mut timeline = Timeline { started: std::time::Instant::now(), lines: Vec::new() };
        let today = jiff::Timestamp::now().to_zoned(credgate::pipeline::shanghai()).date();
        let yesterday = today.yesterday().unwrap();
        let (credit_ref, admin_ref, regulator_ref) = (&credit, &admin, &regulator);
        let credit_bodies = || -> Vec<Value> {
            credit_ref
                .requests()
                .iter()
                .filter_map(|r| serde_json::from_slice::<Value>(&r.body).ok())
                .collect()
        };
        let record = |key: &'static str| async move {
            let (_, body) = admin_ref.records_by_key(key).await;
            body["records"][0].clone()
        };

        // --- 1. Published upward within its deadline ---------------------------------------
        let mut penalty: Value = serde_json::from_slice(&support::penalty(12)).unwrap();
        penalty["CF_JDRQ"] = yesterday.to_string().into();
        penalty["CF_NR"] = "罚款人民币150万元".into();
        penalty["CF_NR_FK"] = 150.0.into();
        publisher.send("wh-ggzy", "penalty", "life-penalty", JSON, serde_json::to_vec(&penalty).unwrap())
            .await;
        support::eventually(Duration::from_secs(60), "penalty at hb-credit", || async move {
            credit_ref.accepted().len() == 1
        })
        .await;
        let shown = record(PENALTY_KEY).await;
        let publicity = &shown["lifecycle"]["publicity"][0];
        assert_eq!(publicity["tier"], "严重", "{shown}");
        let deadline = |rule: &str| {
            shown["lifecycle"]["deadlines"]
                .as_array()
                .unwrap()
                .iter()
                .find(|d| d["rule"] == rule && d["destination"] == "hb-credit")
                .cloned()
                .unwrap_or(Value::Null)
        };
        let double = deadline("double_publicity");
        assert_eq!(double["status"], "met", "{shown}");
        timeline.note(
            "1 penalty published upward",
            format!(
                "hb-credit accepted it; 双公示 due {} → {}; publicity {} {}..{} ({})",
                double["due"],
                double["status"],
                publicity["tier"],
                publicity["decision"]["anchor"],
                publicity["max_end"],
                publicity["rule_version"]
            ),
        );

        // --- 2. On the severe-dishonesty list ------------------------------------------------
        let mut listing: Value =
            serde_json::from_slice(&fixture("hb-credit", "blacklist-listing-ok", "input.json"))
                .unwrap();
        listing["ZTDM"] = SUBJECT.into();
        listing["ZTMC"] = "湖北示例建设工程有限公司".into();
        listing["LRRQ"] = yesterday.to_string().into();
        listing["XZQXQ"] = yesterday.to_string().into();
        listing["SJC"] = format!("{yesterday}T17:00:00+08:00").into();
        publisher.send("hb-credit", "blacklist", "life-listing", JSON, serde_json::to_vec(&listing).unwrap())
            .await;
        let as_of_yesterday = format!("{yesterday}T12:00:00%2B08:00");
        let as_of_ref = &as_of_yesterday;
        support::eventually(Duration::from_secs(60), "listed", || async move {
            let (_, list) = admin_ref.get(&format!("/v1/lists/dishonest?as_of={as_of_ref}")).await;
            list["entries"].as_array().is_some_and(|e| e.len() == 1)
        })
        .await;
        timeline.note(
            "2 listed as severely dishonest",
            format!("/v1/lists/dishonest?as_of={yesterday}T12:00 → 1 entry ({LIST_KEY})"),
        );

        // --- 3. Credit warning at bid time, and the disposal feedback -------------------------
        let bid = String::from_utf8(fixture("hb-ggzy-trading", "bid-result-ok", "input.xml"))
            .unwrap()
            .replace("<WIN_DATE>2026-11-09</WIN_DATE>", &format!("<WIN_DATE>{today}</WIN_DATE>"));
        publisher.send("hb-ggzy-trading", "bid_result", "life-bid", "application/xml", bid.into_bytes())
            .await;
        support::eventually(Duration::from_secs(60), "warning at the regulator", || async move {
            regulator_ref.requests().iter().any(|r| {
                serde_json::from_slice::<Value>(&r.body)
                    .is_ok_and(|b| b["subject_uscc"] == SUBJECT && b["alert_kind"] == "信用预警")
            })
        })
        .await;
        let alert = regulator
            .requests()
            .iter()
            .filter_map(|r| serde_json::from_slice::<Value>(&r.body).ok())
            .find(|b| b["subject_uscc"] == SUBJECT)
            .unwrap();
        let matched: Vec<&str> = alert["matched_records"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|m| m["record_key"].as_str())
            .collect();
        assert!(matched.contains(&PENALTY_KEY) && matched.contains(&LIST_KEY), "{alert}");
        let alert_ref = &alert;
        for (name, platform) in [("hb-ggzy-trading", &hb_trading), ("wh-ggzy-trading", &wh_trading)]
        {
            support::eventually(Duration::from_secs(30), name, || async move {
                received(&platform.lock().unwrap())
                    .iter()
                    .any(|b| b["alert_id"] == alert_ref["alert_id"])
            })
            .await;
        }
        let mut disposal: Value =
            serde_json::from_slice(&fixture("hb-housing-regulator", "disposal-ok", "input.json"))
                .unwrap();
        disposal["alert_id"] = alert["alert_id"].clone();
        disposal["related"] = serde_json::json!([PENALTY_KEY]);
        disposal["handled_on"] = today.to_string().into();
        publisher.send(
            "hb-housing-regulator",
            "disposal",
            "life-disposal",
            JSON,
            serde_json::to_vec(&disposal).unwrap(),
        )
        .await;
        let supervision_ref = &supervision;
        let alert_id = alert["alert_id"].clone();
        let alert_id_ref = &alert_id;
        support::eventually(Duration::from_secs(60), "disposal at supervision", || async move {
            received(&supervision_ref.lock().unwrap()).iter().any(|b| {
                b["catalog_item"] == "alert_disposal" && b["alert_id"] == *alert_id_ref
            })
        })
        .await;
        timeline.note(
            "3 credit warning at bid time",
            format!(
                "alert {} ({}, {}) matched {matched:?}; at regulator, supervision, both trading platforms; disposal 已处置 back at supervision",
                alert["alert_id"], alert["alert_kind"], alert["severity"]
            ),
        );

        // --- 4. Objection: marked while open, plain again once dismissed ----------------------
        publisher.send("hb-credit", "objection", "life-objection-1", JSON, objection("YY-LIFE", 12, "已受理"))
            .await;
        support::eventually(Duration::from_secs(60), "marked copy", || async move {
            credit_bodies().iter().any(|b| b["YYCL"] == "异议标注")
        })
        .await;
        publisher.send("hb-credit", "objection", "life-objection-2", JSON, objection("YY-LIFE", 12, "驳回"))
            .await;
        support::eventually(Duration::from_secs(60), "released copy", || async move {
            credit_bodies().iter().any(|b| b["YYCL"] == "恢复公示" && b["YYZT"] == "驳回")
        })
        .await;
        let shown = record(PENALTY_KEY).await;
        let dispute = &shown["lifecycle"]["disputes"][0];
        assert_eq!(dispute["status"], "驳回", "{dispute}");
        assert_eq!(dispute["holding"], false, "{dispute}");
        timeline.note(
            "4 objection (异议)",
            format!(
                "已受理 → hb-credit got it marked (YYCL 异议标注, policy {}); 驳回 → released (恢复公示)",
                dispute["holders"][0]["policy"]
            ),
        );

        // --- 5. Repair: retracted at every holder, removed from the list ----------------------
        publisher.send("hb-credit", "repair", "life-repair", JSON, repair(&today.to_string())).await;
        support::eventually(Duration::from_secs(60), "retraction confirmed", || async move {
            retractions(admin_ref, PENALTY_KEY)
                .await
                .first()
                .is_some_and(|r| holder_status(r, "hb-credit") == "confirmed")
        })
        .await;
        let retraction = retractions(&admin, PENALTY_KEY).await.remove(0);
        let retract_body = credit_bodies().into_iter().find(|b| b["CZLX"] == "D").unwrap();
        assert_eq!(retract_body["CF_WSH"], "鄂公管罚〔2026〕12号", "{retract_body}");
        timeline.note(
            "5a repair retracts the penalty",
            format!(
                "cause {}; holders {:?}; due {}",
                retraction["cause"]["cause"],
                retraction["holders"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|h| format!("{}={}", h["destination"], h["status"]).replace('"', ""))
                    .collect::<Vec<_>>(),
                retraction["due"]
            ),
        );
        let mut removal = listing.clone();
        removal["YCRQ"] = today.to_string().into();
        removal["YCYY"] = "信用修复移出".into();
        removal["SJC"] = format!("{today}T16:00:00+08:00").into();
        publisher.send("hb-credit", "blacklist", "life-removal", JSON, serde_json::to_vec(&removal).unwrap())
            .await;
        support::eventually(Duration::from_secs(60), "list entry retracted", || async move {
            retractions(admin_ref, LIST_KEY).await.first().is_some_and(|r| {
                // The list came from hb-credit: a record never returns to its source.
                ["hb-ggzy-trading", "wh-ggzy-trading"]
                    .iter()
                    .all(|d| holder_status(r, d) == "confirmed")
            })
        })
        .await;
        let (_, then) = admin.get(&format!("/v1/lists/dishonest?as_of={as_of_yesterday}")).await;
        let tomorrow = today.tomorrow().unwrap();
        let (_, now) =
            admin.get(&format!("/v1/lists/dishonest?as_of={tomorrow}T00:00:00%2B08:00")).await;
        assert_eq!(then["entries"].as_array().unwrap().len(), 1, "{then}");
        assert_eq!(now["entries"].as_array().unwrap().len(), 0, "{now}");
        timeline.note(
            "5b removed from the list",
            format!(
                "list entry retracted and confirmed at both trading platforms (its holders); as_of {yesterday}T12:00 → {} entry, as_of {tomorrow}T00:00 → {} entries",
                then["entries"].as_array().unwrap().len(),
                now["entries"].as_array().unwrap().len()
            ),
        );
        eprintln!("\nA penalty's life:\n{}", timeline.lines.join("\n"));

        stop.cancel();
        assert_eq!(gateway.terminate(), Some(0), "{}", gateway.log_text());
        drop(connection);
    })
    .await
}
