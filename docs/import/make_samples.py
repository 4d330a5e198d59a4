#!/usr/bin/env python3
"""Writes the sample import files for the gc-county-credit adapter (penalty_csv):
gc-county-credit-penalties.xlsx (three valid rows; dates as date cells, amounts as numbers)
and gc-county-credit-penalties.csv (GB18030, as the county office exports; three valid rows
and one with a bad ID check digit). Standard library only: python3 make_samples.py"""
import datetime
import os
import zipfile
from xml.sax.saxutils import escape

HERE = os.path.dirname(os.path.abspath(__file__))
HEADER = ["行政相对人名称", "行政相对人类别", "统一社会信用代码", "工商注册号", "法定代表人",
          "证件类型", "证件号码", "行政处罚决定书文号", "违法行为类型", "违法事实", "处罚依据",
          "处罚类别", "处罚内容", "罚款金额（元）", "没收金额（元）", "暂扣或吊销证照名称及编号",
          "处罚决定日期", "处罚有效期", "处罚机关", "处罚机关统一社会信用代码", "备注"]
AUTH = ["谷城县发展和改革局", "11420625MB15228045"]


def penalty(name, cat, uscc, rep, id_type, id_no, no, kind, facts, basis, cats, content,
            fine, confiscated, decided, until, remark=""):
    return [name, cat, uscc, "", rep, id_type, id_no, f"谷发改罚〔2026〕{no}号", kind, facts,
            basis, cats, content, fine, confiscated, "", decided, until] + AUTH + [remark]


XLSX_ROWS = [
    penalty("湖北示例建设工程有限公司", "1", "91420100MA4P7Q8R8N", "张三", "", "", 21,
            "违反招标投标法规定，弄虚作假骗取中标", "在县城区道路改造工程招标中提供虚假业绩证明材料。",
            "《中华人民共和国招标投标法》第五十四条", "罚款;没收违法所得",
            "罚款人民币20000元，没收违法所得3500.50元", 20000, 3500.5,
            datetime.date(2026, 11, 17), "2027/11/17"),
    penalty("谷城县𠮷祥建材经营部", "3", "92420102MA4L6U1X4N", "李四", "", "", 22,
            "提供虚假材料谋取成交", "作为供应商在县级政府采购项目中提供虚假材料。",
            "《中华人民共和国政府采购法》第七十七条", "罚款", "罚款人民币1500元", 1500, None,
            datetime.date(2026, 11, 18), "2027/11/18", "名称含扩展汉字"),
    penalty("王五", "自然人", "", "", "身份证", "420682197607043216", 23,
            "投标人项目负责人违规", "作为拟任项目负责人同时在其他在建项目任职。",
            "《湖北省招标投标管理办法》第六十条", "罚款", "罚款人民币500元", 500, None,
            datetime.date(2026, 11, 19), "2027/11/19"),
]

CSV_ROWS = [
    penalty("湖北示例建设工程有限公司", "1", "91420100MA4P7Q8R8N", "张三", "", "", 31,
            "违反招标投标法规定，弄虚作假骗取中标", "在乡镇供水工程招标中提供虚假业绩证明材料。",
            "《中华人民共和国招标投标法》第五十四条", "罚款", "罚款人民币30000元", "30000", "",
            "2026/11/16", "2027/11/16"),
    penalty("张三", "2", "", "", "身份证", "420102199003071230", 32,
            "评标专家违规评标", "在乡镇供水工程评标中未按评标办法评审。",
            "《中华人民共和国招标投标法实施条例》第七十一条", "警告", "给予警告", "", "",
            "2026/11/17", "2026/12/17"),
    penalty("谷城县𠮷祥建材经营部", "3", "92420102MA4L6U1X4N", "李四", "", "", 33,
            "提供虚假材料谋取成交", "作为供应商在县级政府采购项目中提供虚假材料。",
            "《中华人民共和国政府采购法》第七十七条", "罚款", "罚款人民币1,500元", "1,500", "",
            "2026/11/18", "2027/11/18"),
    penalty("王五", "自然人", "", "", "身份证", "420682197607043216", 34,
            "投标人项目负责人违规", "作为拟任项目负责人同时在其他在建项目任职。",
            "《湖北省招标投标管理办法》第六十条", "罚款", "罚款人民币800元", "800", "",
            "2026/11/19", "2027/11/19"),
]


def col(c):
    s = ""
    c += 1
    while c:
        c, r = divmod(c - 1, 26)
        s = chr(65 + r) + s
    return s


def cell(r, c, v):
    at = f"{col(c)}{r}"
    if v is None or v == "":
        return ""
    if isinstance(v, datetime.date):
        serial = (v - datetime.date(1899, 12, 30)).days
        return f'<c r="{at}" s="1"><v>{serial}</v></c>'
    if isinstance(v, (int, float)):
        return f'<c r="{at}"><v>{v}</v></c>'
    return f'<c r="{at}" t="inlineStr"><is><t>{escape(v)}</t></is></c>'


def xlsx(path, rows):
    sheet = ['<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
             '<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData>']
    for r, row in enumerate(rows, start=1):
        sheet.append(f'<row r="{r}">' + "".join(cell(r, c, v) for c, v in enumerate(row)) + "</row>")
    sheet.append("</sheetData></worksheet>")
    ns = "http://schemas.openxmlformats.org"
    parts = {
        "[Content_Types].xml": f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?><Types xmlns="{ns}/package/2006/content-types"><Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/><Default Extension="xml" ContentType="application/xml"/><Override PartName="/xl/workbook.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/><Override PartName="/xl/worksheets/sheet1.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/><Override PartName="/xl/styles.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.styles+xml"/></Types>',
        "_rels/.rels": f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?><Relationships xmlns="{ns}/package/2006/relationships"><Relationship Id="rId1" Type="{ns}/officeDocument/2006/relationships/officeDocument" Target="xl/workbook.xml"/></Relationships>',
        "xl/workbook.xml": f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?><workbook xmlns="{ns}/spreadsheetml/2006/main" xmlns:r="{ns}/officeDocument/2006/relationships"><sheets><sheet name="行政处罚" sheetId="1" r:id="rId1"/></sheets></workbook>',
        "xl/_rels/workbook.xml.rels": f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?><Relationships xmlns="{ns}/package/2006/relationships"><Relationship Id="rId1" Type="{ns}/officeDocument/2006/relationships/worksheet" Target="worksheets/sheet1.xml"/><Relationship Id="rId2" Type="{ns}/officeDocument/2006/relationships/styles" Target="styles.xml"/></Relationships>',
        "xl/styles.xml": f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?><styleSheet xmlns="{ns}/spreadsheetml/2006/main"><cellXfs count="2"><xf numFmtId="0"/><xf numFmtId="14" applyNumberFormat="1"/></cellXfs></styleSheet>',
        "xl/worksheets/sheet1.xml": "".join(sheet),
    }
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for name, text in parts.items():
            info = zipfile.ZipInfo(name, date_time=(2026, 11, 23, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            z.writestr(info, text.encode("utf-8"))


def csv(path, rows):
    import csv as csvmod
    import io
    out = io.StringIO()
    w = csvmod.writer(out, lineterminator="\r\n")
    w.writerow(HEADER)
    for row in rows:
        w.writerow(row)
    with open(path, "wb") as f:
        f.write(out.getvalue().encode("gb18030"))


xlsx(os.path.join(HERE, "gc-county-credit-penalties.xlsx"), [HEADER] + XLSX_ROWS)
csv(os.path.join(HERE, "gc-county-credit-penalties.csv"), CSV_ROWS)
