//! The shipped configuration compiles and every fixture gives its expected outcome; broken
//! configurations are refused with errors that name the file and the field.

use std::path::Path;

use credgate::config::{CompiledConfig, LoadOptions};

fn sample() -> CompiledConfig {
    CompiledConfig::load(&Path::new(support::REPO).join("config"), &LoadOptions::default())
        .unwrap_or_else(|e| panic!("sample configuration invalid: {e:?}"))
}

use super::support;

#[test]
fn shipped_configuration_compiles() {
    let config = sample();
    assert_eq!(config.catalog.items().count(), 13);
    assert!(config.adapters.len() >= 8);
}

#[test]
fn every_fixture_passes() {
    let config = sample();
    let results = credgate::fixtures::run_all(&config, None, false);
    assert!(results.len() >= 50, "expected the full fixture set, found {}", results.len());
    let failed: Vec<String> = results
        .iter()
        .filter(|r| !matches!(r.outcome, credgate::fixtures::CaseOutcome::Pass))
        .map(|r| format!("{}/{}: {:?}", r.adapter, r.case, r.outcome))
        .collect();
    assert!(failed.is_empty(), "fixtures failed:\n{}", failed.join("\n"));
}

/// Copies the sample into a temp dir and applies `edit` to one adapter file.
fn broken(adapter: &str, edit: impl Fn(String) -> String) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    let root = Path::new(support::REPO);
    let config = std::fs::read_to_string(root.join("config/credgate.toml"))
        .unwrap()
        .replace("\"../schemas\"", &format!("\"{}\"", root.join("schemas").display()))
        .replace(
            "calendars = \"calendars\"",
            &format!("calendars = \"{}\"", root.join("config/calendars").display()),
        );
    std::fs::write(dir.path().join("credgate.toml"), config).unwrap();
    std::fs::copy(root.join("config/routes.toml"), dir.path().join("routes.toml")).unwrap();
    std::fs::create_dir_all(dir.path().join("../adapters-tmp")).ok();
    let adapters = dir.path().join("adapters");
    std::fs::create_dir_all(&adapters).unwrap();
    for entry in std::fs::read_dir(root.join("adapters")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            let mut text = std::fs::read_to_string(&path).unwrap();
            if path.file_stem().unwrap() == adapter {
                text = edit(text);
            }
            std::fs::write(adapters.join(path.file_name().unwrap()), text).unwrap();
        }
    }
    let text = std::fs::read_to_string(dir.path().join("credgate.toml"))
        .unwrap()
        .replace("adapters = \"../adapters\"", "adapters = \"adapters\"");
    std::fs::write(dir.path().join("credgate.toml"), text).unwrap();
    match CompiledConfig::load(dir.path(), &LoadOptions::default()) {
        Ok(_) => Vec::new(),
        Err(errors) => errors.into_iter().map(|e| e.to_string()).collect(),
    }
}

#[test]
fn a_mapping_to_an_unknown_field_names_file_document_and_field() {
    let errors = broken("wh-ggzy", |t| {
        t.replace("subject_name = \"CF_XDR_MC\"", "subject_nmae = \"CF_XDR_MC\"")
    });
    assert!(
        errors.iter().any(|e| e.contains("wh-ggzy.toml")
            && e.contains("document `penalty`")
            && e.contains("subject_nmae")),
        "{errors:?}"
    );
    // The required field it should have filled is reported too.
    assert!(
        errors.iter().any(|e| e.contains("subject_name") && e.contains("required")),
        "{errors:?}"
    );
}

#[test]
fn a_public_destination_that_keeps_resident_ids_is_refused() {
    let errors = broken("hb-ggzy-trading", |t| {
        t.replace("resident_id = \"drop\"", "resident_id = \"keep\"")
    });
    assert!(
        errors.iter().any(|e| e.contains("hb-ggzy-trading.toml") && e.contains("resident_id")),
        "{errors:?}"
    );
}

#[test]
fn a_destination_policy_missing_a_personal_data_class_is_refused() {
    let errors = broken("hb-ggzy-trading", |t| t.replace("subject_name = \"mask\", ", ""));
    assert!(
        errors.iter().any(|e| e.contains("subject_name") && e.contains("not handled")),
        "{errors:?}"
    );
}

#[test]
fn inline_secrets_are_refused() {
    let errors = broken("hb-credit", |t| {
        t.replace("secret = \"${env:CREDGATE_HB_CREDIT_SECRET}\"", "secret = \"hunter2\"")
    });
    assert!(errors.iter().any(|e| e.contains("never inline")), "{errors:?}");
}

#[test]
fn the_cli_reports_an_invalid_record_in_chinese_with_masked_ids_and_exit_3() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.json");
    std::fs::write(&file, r#"{"CF_XDR_MC":"王五","CF_XDR_LB":"自然人","CF_XDR_ZJLX":"身份证","CF_XDR_ZJHM":"420102199003071230","CF_WSH":"鄂公管罚〔2026〕99号","CF_WFXW":"x","CF_SY":"y","CF_YJ":"z","CF_CFLB":"罚款","CF_NR":"罚款2000元","CF_JDRQ":"2026-09-28","CF_YXQ":"2026-10-28","CF_CFJG":"湖北省公共资源交易监督管理局","CF_CFJGDM":"11420000MB0P1Q2R3X","CF_SJLY":"湖北省公共资源交易监督管理局","CF_SJLYDM":"11420000MB0P1Q2R33"}"#).unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_credgate"))
        .args([
            "--config",
            &format!("{}/config", support::REPO),
            "--output",
            "json",
            "validate",
            "--adapter",
            "wh-ggzy",
            "--doc-type",
            "penalty",
        ])
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(3));
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert!(!stdout.contains("420102199003071230"), "unmasked resident ID in output");
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let violations = report[0]["records"][0]["violations"].as_array().unwrap();
    let rules: Vec<&str> = violations.iter().map(|v| v["rule"].as_str().unwrap()).collect();
    for expected in ["SG-04", "SG-06", "SG-10"] {
        assert!(rules.contains(&expected), "{expected} missing from {rules:?}");
    }
    let sg04 = violations.iter().find(|v| v["rule"] == "SG-04").unwrap();
    assert_eq!(sg04["field"], "处罚机关统一社会信用代码");
    assert_eq!(sg04["code"], "CF_CFJGDM");
    assert_eq!(sg04["path"], "/authority_uscc");
}

/// `credgate check` refuses retention below a statutory minimum, naming the item and the
/// minimum; the breaker settings are checked too.
#[test]
fn check_refuses_retention_below_the_statutory_minimum() {
    let dir = tempfile::tempdir().unwrap();
    let root = Path::new(support::REPO);
    let config = std::fs::read_to_string(root.join("config/credgate.toml"))
        .unwrap()
        .replace("\"../schemas\"", &format!("\"{}\"", root.join("schemas").display()))
        .replace("\"../adapters\"", &format!("\"{}\"", root.join("adapters").display()))
        .replace(
            "calendars = \"calendars\"",
            &format!("calendars = \"{}\"", root.join("config/calendars").display()),
        );
    std::fs::copy(root.join("config/routes.toml"), dir.path().join("routes.toml")).unwrap();
    let check = |edit: &dyn Fn(&str) -> String| {
        std::fs::write(dir.path().join("credgate.toml"), edit(&config)).unwrap();
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_credgate"))
            .args(["--config", dir.path().to_str().unwrap(), "check"])
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        (output.status.success(), text)
    };
    let (ok, text) = check(&|c| c.to_owned());
    assert!(ok, "the shipped configuration must pass: {text}");
    let (ok, text) =
        check(&|c| format!("{c}\n[retention.items.admin_penalty]\nbodies_days = 90\n"));
    assert!(!ok, "{text}");
    assert!(text.contains("admin_penalty") && text.contains("1098 days"), "{text}");
    let (ok, text) = check(&|c| c.replace("metadata_days = 1827", "metadata_days = 30"));
    assert!(!ok, "{text}");
    assert!(text.contains("184 days"), "{text}");
    let (ok, text) = check(&|c| c.replace("failure_threshold = 5", "failure_threshold = 0"));
    assert!(!ok, "{text}");
    assert!(text.contains("outbound.breaker"), "{text}");
}
