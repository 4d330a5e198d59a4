#!/usr/bin/env python3
"""Dev aid: static checks of the catalog schemas in schemas/<item>/<version>.schema.json.

Checks every schema file for:
  * a valid JSON Schema 2020-12 document (Draft202012Validator.check_schema);
  * `$schema`, and an `$id` that matches its path (urn:credgate:catalog:<item>:<version>);
  * the catalog conventions the Rust code relies on: closed object, free-form `extensions`,
    a `title` on every property (nested ones included), known `x-pii` classes and formats,
    `x-identity` fields that exist and are required, `x-subject` / `x-decision-date` pointing
    at existing properties, `x-rules` drawn from SG-01..SG-14, `x-failed-info` on exactly the
    failed-information items;
  * the sample records of reference/domain-fixtures.md §7.1 (penalty) and §7.3 (licence),
    mapped to canonical keys by hand, validate (formats not asserted), the by-hand mapping
    agrees with the schemas' `x-code` annotations, and the §7.3 negative variants fail.

Usage: python3 scripts/check_schemas.py [--summary] [schemas-dir]
Needs the `jsonschema` package (pip install jsonschema). Exit status 1 on any problem.
"""
import json
import sys
from pathlib import Path

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError

ITEMS = {
    "admin_penalty", "admin_license", "dishonest_list_entry", "red_list_entry", "credit_commitment",
    "credit_repair", "violation_score", "performance_evaluation", "bid_result", "supervision_alert",
    "alert_disposal", "integrity_case", "credit_objection",
}
FAILED_INFO = {"admin_penalty", "dishonest_list_entry", "violation_score"}
IDENTITY = {
    "admin_penalty": ["authority_uscc", "decision_doc_no"],
    "admin_license": ["authority_uscc", "decision_doc_no"],
    "dishonest_list_entry": ["blacklist_id"],
    "red_list_entry": ["list_id"],
    "credit_commitment": ["commitment_id"],
    "credit_repair": ["repair_id"],
    "violation_score": ["score_id"],
    "performance_evaluation": ["evaluation_id"],
    "bid_result": ["unified_deal_code", "bid_section_code"],
    "supervision_alert": ["alert_id"],
    "alert_disposal": ["alert_id", "disposal_seq"],
    "integrity_case": ["case_id"],
    "credit_objection": ["objection_id"],
}
PII_CLASSES = {"resident_id", "phone", "home_address", "bank_account", "person_name", "subject_name", "third_party"}
FORMATS = {"uscc", "uscc-or-placeholder", "org-code", "cn-resident-id", "gb2260-area", "cn-date",
           "amount-10k-cny", "date-time"}
RULES = {f"SG-{i:02d}" for i in range(1, 15)}
SUBJECT_KEYS = {"name", "uscc", "id_no", "category"}
ENVELOPE = {"catalog_item", "catalog_version", "record_key", "record_version", "operation", "source_adapter",
            "received_at", "message_id", "raw_sha256"}

# domain-fixtures.md §7.1, as exchanged (信用中国 column codes) ...
PENALTY_RAW = {
    "CF_XDR_MC": "湖北示例建设工程有限公司",
    "CF_XDR_LB": "法人及非法人组织",
    "CF_XDR_SHXYM": "91420100MA4P7Q8R8N",
    "CF_FRDB": "张三",
    "CF_FR_ZJLX": "身份证",
    "CF_FR_ZJHM": "420111198501011234",
    "CF_WSH": "鄂公管罚〔2026〕12号",
    "CF_WFXW": "投标人相互串通投标",
    "CF_SY": "在某标段投标中与其他投标人的投标文件异常一致……",
    "CF_YJ": "《中华人民共和国招标投标法》第五十三条",
    "CF_CFLB": "罚款",
    "CF_NR": "罚款人民币12345.67元",
    "CF_NR_FK": 1.234567,
    "CF_JDRQ": "2026-09-28",
    "CF_YXQ": "2026-10-28",
    "CF_GSJZQ": "2027-09-28",
    "CF_CFJG": "湖北省公共资源交易监督管理局",
    "CF_CFJGDM": "11420000MB0P1Q2R33",
    "CF_SJLY": "湖北省公共资源交易监督管理局",
    "CF_SJLYDM": "11420000MB0P1Q2R33",
    "BZ": "",
}
# ... and mapped to canonical keys by hand (amounts as numbers, categories as arrays).
PENALTY = {
    "subject_name": "湖北示例建设工程有限公司",
    "subject_category": "法人及非法人组织",
    "subject_uscc": "91420100MA4P7Q8R8N",
    "legal_rep_name": "张三",
    "legal_rep_id_type": "身份证",
    "legal_rep_id_no": "420111198501011234",
    "decision_doc_no": "鄂公管罚〔2026〕12号",
    "violation_type": "投标人相互串通投标",
    "violation_facts": "在某标段投标中与其他投标人的投标文件异常一致……",
    "legal_basis": "《中华人民共和国招标投标法》第五十三条",
    "penalty_categories": ["罚款"],
    "penalty_content": "罚款人民币12345.67元",
    "fine_amount_10k_cny": 1.234567,
    "decision_date": "2026-09-28",
    "penalty_valid_until": "2026-10-28",
    "publicity_end_date": "2027-09-28",
    "authority_name": "湖北省公共资源交易监督管理局",
    "authority_uscc": "11420000MB0P1Q2R33",
    "source_org_name": "湖北省公共资源交易监督管理局",
    "source_org_uscc": "11420000MB0P1Q2R33",
    "remarks": "",
}

# domain-fixtures.md §7.3 (个体工商户 with the placeholder USCC).
LICENSE_RAW = {
    "XK_XDR_MC": "武汉市洪山区示例建材经营部",
    "XK_XDR_LB": "个体工商户",
    "XK_XDR_SHXYM": "00000000000000000X",
    "XK_XDR_GSZC": "420100000123453",
    "XK_FRDB": "李四",
    "XK_XKWS": "准予行政许可决定书",
    "XK_WSH": "武政务许字〔2026〕第00451号",
    "XK_XKLB": "普通",
    "XK_XKZS": "示例经营许可证",
    "XK_XKBH": "WH2026-000451",
    "XK_NR": "准予从事……经营",
    "XK_JDRQ": "2026-02-12",
    "XK_YXQZ": "2026-02-12",
    "XK_YXQZI": "2099-12-31",
    "XK_XKJG": "武汉市政务服务和大数据管理局",
    "XK_XKJGDM": "11420100MB0K7P2Q0T",
    "XK_ZT": "1",
    "XK_LYDW": "武汉市政务服务和大数据管理局",
    "XK_LYDWDM": "11420100MB0K7P2Q0T",
    "BZ": "",
}
LICENSE = {
    "subject_name": "武汉市洪山区示例建材经营部",
    "subject_category": "个体工商户",
    "subject_uscc": "00000000000000000X",
    "subject_business_reg_no": "420100000123453",
    "legal_rep_name": "李四",
    "decision_doc_name": "准予行政许可决定书",
    "decision_doc_no": "武政务许字〔2026〕第00451号",
    "license_category": "普通",
    "license_cert_name": "示例经营许可证",
    "license_no": "WH2026-000451",
    "license_content": "准予从事……经营",
    "decision_date": "2026-02-12",
    "valid_from": "2026-02-12",
    "valid_to": "2099-12-31",
    "authority_name": "武汉市政务服务和大数据管理局",
    "authority_uscc": "11420100MB0K7P2Q0T",
    "status": "1",
    "source_org_name": "武汉市政务服务和大数据管理局",
    "source_org_uscc": "11420100MB0K7P2Q0T",
    "remarks": "",
}


class Checker:
    def __init__(self):
        self.problems = []

    def fail(self, where, msg):
        self.problems.append(f"{where}: {msg}")

    def check_property(self, where, name, prop, top_level):
        if not isinstance(prop, dict):
            self.fail(where, f"property {name!r} is not an object")
            return
        if not isinstance(prop.get("title"), str) or not prop["title"].strip():
            self.fail(where, f"property {name!r} has no title")
        pii = prop.get("x-pii")
        if pii is not None and pii not in PII_CLASSES:
            self.fail(where, f"property {name!r}: unknown x-pii class {pii!r}")
        code = prop.get("x-code")
        if code is not None and (not isinstance(code, str) or not code):
            self.fail(where, f"property {name!r}: x-code must be a non-empty string")
        self.check_formats(where, name, prop)
        if prop.get("type") == "array" and top_level and name != "extensions":
            if prop.get("minItems", 0) < 1:
                self.fail(where, f"array property {name!r} lacks minItems >= 1")
        # nested objects (e.g. bid_result.candidates[*]) follow the same rules
        items = prop.get("items")
        for sub in ([prop] + ([items] if isinstance(items, dict) else [])):
            for sub_name, sub_prop in (sub.get("properties") or {}).items():
                if sub is prop and name == "extensions":
                    continue
                self.check_property(where, f"{name}/{sub_name}", sub_prop, False)

    def check_formats(self, where, name, node):
        if isinstance(node, dict):
            fmt = node.get("format")
            if fmt is not None and fmt not in FORMATS:
                self.fail(where, f"property {name!r}: unknown format {fmt!r}")
            if fmt == "amount-10k-cny" and node.get("type") != "number":
                self.fail(where, f"property {name!r}: amount-10k-cny must be on a number")
            if fmt in ("uscc", "uscc-or-placeholder") and node.get("maxLength") != 18:
                self.fail(where, f"property {name!r}: USCC field without maxLength 18")

    def check_schema_file(self, path: Path, root: Path):
        where = str(path.relative_to(root.parent))
        try:
            schema = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            self.fail(where, f"unreadable: {e}")
            return None, None
        try:
            Draft202012Validator.check_schema(schema)
        except SchemaError as e:
            self.fail(where, f"not a valid 2020-12 schema: {e.message}")
            return None, None
        item = path.parent.name
        version = path.name.removesuffix(".schema.json")
        if schema.get("$schema") != "https://json-schema.org/draft/2020-12/schema":
            self.fail(where, "$schema is not 2020-12")
        if schema.get("$id") != f"urn:credgate:catalog:{item}:{version}":
            self.fail(where, f"$id {schema.get('$id')!r} does not match path ({item}, {version})")
        if item not in ITEMS:
            self.fail(where, f"unknown catalog item {item!r}")
        for key in ("title", "description"):
            if not isinstance(schema.get(key), str) or not schema[key]:
                self.fail(where, f"top-level {key} missing")
        if schema.get("type") != "object" or schema.get("additionalProperties") is not False:
            self.fail(where, 'must be "type": "object" with "additionalProperties": false')
        props = schema.get("properties") or {}
        ext = props.get("extensions")
        if not isinstance(ext, dict) or ext.get("type") != "object":
            self.fail(where, "missing free-form object property 'extensions'")
        if "extensions" in schema.get("required", []):
            self.fail(where, "'extensions' must be optional")
        for env in ENVELOPE & props.keys():
            self.fail(where, f"envelope key {env!r} must not be a catalog property")
        for name, prop in props.items():
            self.check_property(where, name, prop, True)
        required = schema.get("required", [])
        for r in required:
            if r not in props:
                self.fail(where, f"required field {r!r} is not a property")
        if len(set(required)) != len(required):
            self.fail(where, "duplicate entries in required")
        # annotations
        identity = schema.get("x-identity")
        if not isinstance(identity, list) or not identity:
            self.fail(where, "x-identity missing or empty")
            identity = []
        for f in identity:
            if f not in props:
                self.fail(where, f"x-identity field {f!r} is not a property")
            if f not in required:
                self.fail(where, f"x-identity field {f!r} is not required")
        if item in IDENTITY and identity != IDENTITY[item]:
            self.fail(where, f"x-identity {identity} differs from contract §3 {IDENTITY[item]}")
        rules = schema.get("x-rules")
        if not isinstance(rules, list) or not set(rules) <= RULES or len(set(rules)) != len(rules):
            self.fail(where, f"x-rules must be a list of distinct SG-01..SG-14 ids: {rules!r}")
        elif "SG-06" in rules and "subject_id_type" not in props:
            self.fail(where, "SG-06 listed but no subject_id_type property")
        subject = schema.get("x-subject")
        if not isinstance(subject, dict) or not set(subject) <= SUBJECT_KEYS:
            self.fail(where, f"x-subject must be an object with keys from {sorted(SUBJECT_KEYS)}")
        else:
            for k, f in subject.items():
                if f not in props:
                    self.fail(where, f"x-subject.{k} -> {f!r} is not a property")
        dd = schema.get("x-decision-date")
        if dd is not None and dd not in props:
            self.fail(where, f"x-decision-date {dd!r} is not a property")
        failed = schema.get("x-failed-info", False)
        if failed is not (item in FAILED_INFO):
            self.fail(where, f"x-failed-info should be {item in FAILED_INFO}")
        return item, schema

    def check_fixture(self, where, schema, record, expect_valid=True):
        validator = Draft202012Validator(schema)  # formats are annotations only: not asserted
        errors = sorted(validator.iter_errors(record), key=lambda e: list(e.path))
        if expect_valid and errors:
            for e in errors:
                self.fail(where, f"fixture invalid at /{'/'.join(map(str, e.path))}: {e.message}")
        if not expect_valid and not errors:
            self.fail(where, "negative fixture unexpectedly valid")
        return errors

    def check_xcode_mapping(self, where, schema, raw, canonical):
        by_code = {p["x-code"]: name for name, p in schema["properties"].items() if "x-code" in p}
        for code, value in raw.items():
            key = by_code.get(code)
            if key is None:
                self.fail(where, f"column {code} has no property with that x-code")
            elif key not in canonical:
                self.fail(where, f"column {code} -> {key}, missing from the hand-mapped fixture")
            elif canonical[key] != value and canonical[key] != [value]:
                self.fail(where, f"column {code} -> {key}: {value!r} vs {canonical[key]!r}")


def summary(schemas):
    for item in sorted(schemas):
        s = schemas[item]
        pii = [f"{n}:{p['x-pii']}" for n, p in s["properties"].items() if "x-pii" in p]
        for n, p in s["properties"].items():
            for sn, sp in ((p.get("items") or {}).get("properties") or {}).items():
                if "x-pii" in sp:
                    pii.append(f"{n}[].{sn}:{sp['x-pii']}")
        print(f"{item}\n  required: {', '.join(s.get('required', []))}\n  x-pii:    {', '.join(pii)}")


def main(argv):
    show_summary = "--summary" in argv
    args = [a for a in argv if not a.startswith("--")]
    root = Path(args[0]) if args else Path(__file__).resolve().parent.parent / "schemas"
    c = Checker()
    schemas = {}
    files = sorted(root.glob("*/*.schema.json"))
    for path in files:
        item, schema = c.check_schema_file(path, root)
        if schema is not None and path.name == "1.schema.json":
            schemas[item] = schema
    missing = ITEMS - set(schemas)
    if missing:
        c.fail(str(root), f"missing version-1 schemas for {sorted(missing)}")

    if "admin_penalty" in schemas:
        s = schemas["admin_penalty"]
        c.check_fixture("fixture §7.1 penalty", s, PENALTY)
        c.check_xcode_mapping("fixture §7.1 penalty", s, PENALTY_RAW, PENALTY)
        c.check_fixture("fixture §7.1 penalty, category as string", s,
                        {**PENALTY, "penalty_categories": "罚款"}, expect_valid=False)
        c.check_fixture("fixture §7.1 penalty, envelope key", s,
                        {**PENALTY, "record_key": "x"}, expect_valid=False)
    if "admin_license" in schemas:
        s = schemas["admin_license"]
        c.check_fixture("fixture §7.3 licence", s, LICENSE)
        c.check_xcode_mapping("fixture §7.3 licence", s, LICENSE_RAW, LICENSE)
        for label, patch in (("XK_ZT=3", {"status": "3"}), ("XK_XKLB=审批", {"license_category": "审批"})):
            errs = c.check_fixture(f"fixture §7.3 licence, {label}", s, {**LICENSE, **patch}, expect_valid=False)
            if errs and not any(e.validator == "enum" for e in errs):
                c.fail(f"fixture §7.3 licence, {label}", "expected an enum violation")
        without_name = {k: v for k, v in LICENSE.items() if k != "subject_name"}
        c.check_fixture("fixture §7.3 licence, no subject_name", s, without_name, expect_valid=False)

    if show_summary:
        summary(schemas)
    if c.problems:
        print(f"{len(c.problems)} problem(s):", file=sys.stderr)
        for p in c.problems:
            print(f"  {p}", file=sys.stderr)
        return 1
    print(f"ok: {len(files)} schema file(s), {len(schemas)} catalog items, fixtures §7.1 and §7.3 validate")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
