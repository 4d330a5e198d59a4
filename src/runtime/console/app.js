// credgate operator console: a client of the admin API. Every value from the server is put
// into the page as text (never as HTML), the token lives in sessionStorage only, and what a
// token may see or do is decided by the API (the buttons merely follow /v1/whoami).
'use strict';

const TOKEN_KEY = 'credgate.console.token';
const state = { me: null, destinations: [], sources: [], lastOverview: null, timer: null };

const LABELS = {
  role: { operator: '操作员', auditor: '审计员', admin: '管理员' },
  kind: { inbound: '入站', outbound: '待投递', retry: '重试', dead_letter: '死信', rejected: '拒收', receipts: '回执', other: '其他' },
  copy: { delivered: '已送达', dead: '死信', superseded: '已被新版本取代', already_delivered: '已送达（重复）', retrying: '重试中', queued: '排队中', held: '异议暂停', unpublished: '未能发布（待来源重发）' },
  outcome: { delivered: '已送达', retry: '重试', retriable: '可重试失败', permanent: '永久失败', dead: '转入死信', superseded: '已被新版本取代', already_delivered: '已送达过，未重复发送', held: '异议处理中，暂停推送' },
  receipt: { accepted: '已接收', accepted_with_warnings: '已接收（有警告）', rejected: '已拒收', duplicate: '重复' },
  reason: { rejected: '目的地拒收', retries_exhausted: '重试耗尽' },
  record: { accepted: '已接收', accepted_with_warnings: '已接收（有警告）', rejected: '已拒收' },
  operation: { upsert: '新增/更新', delete: '删除', retract: '撤销' },
};
const label = (group, value) => (LABELS[group] && LABELS[group][value]) || value || '—';

// ---- DOM helpers ---------------------------------------------------------------------------

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') node.className = v;
    else if (k.startsWith('on')) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v === true ? '' : v);
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}
const $ = (sel) => document.querySelector(sel);
const fmtTime = (t) => (t ? String(t).replace('T', ' ').replace(/\.\d+/, '').replace('+08:00', '') : '—');
const fmtNum = (n) => (n === null || n === undefined ? '—' : Number(n).toLocaleString('zh-CN'));
const badge = (text, tone) => el('span', { class: `badge ${tone || ''}` }, text);
const tone = (status) => ({ delivered: 'ok', already_delivered: 'ok', accepted: 'ok', dead: 'bad', rejected: 'bad', permanent: 'bad', retrying: 'warn', retry: 'warn', retriable: 'warn', accepted_with_warnings: 'warn', queued: 'info', held: 'warn' }[status] || '');

function toast(message, isError) {
  const t = $('#toast');
  t.textContent = message;
  t.className = isError ? 'error' : '';
  t.hidden = false;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => { t.hidden = true; }, 5000);
}

function fillBody(table, rows, empty) {
  const body = table.querySelector('tbody');
  body.replaceChildren(...(rows.length ? rows
    : [el('tr', {}, el('td', { colspan: table.querySelectorAll('thead th').length, class: 'empty' }, empty || '无数据'))]));
}

// ---- API -----------------------------------------------------------------------------------

class ApiError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

async function api(path, options) {
  const token = sessionStorage.getItem(TOKEN_KEY) || '';
  const init = Object.assign({ headers: {} }, options || {});
  init.headers.Authorization = `Bearer ${token}`;
  if (init.json !== undefined) {
    init.method = init.method || 'POST';
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(init.json);
  }
  const response = await fetch(path, init);
  let body = null;
  try { body = await response.json(); } catch (_) { body = null; }
  if (response.status === 401) {
    logout('令牌无效或已失效，请重新登录');
    throw new ApiError(401, '未登录');
  }
  if (!response.ok && !(response.status === 502 && body && body.items)) {
    const message = body && body.error ? body.error : `HTTP ${response.status}`;
    throw new ApiError(response.status, response.status === 403 ? `无权限：${message}` : message);
  }
  return body;
}

const query = (params) => {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== '' && v !== undefined && v !== null && v !== false) q.set(k, v);
  const s = q.toString();
  return s ? `?${s}` : '';
};

// ---- login ---------------------------------------------------------------------------------

async function login(token) {
  sessionStorage.setItem(TOKEN_KEY, token);
  state.me = await api('/v1/whoami');
  $('#who').textContent = `${state.me.name}（${label('role', state.me.role)}）`;
  $('#reveal-wrap').hidden = !state.me.permissions.reveal;
  for (const id of ['#dlq-replay-all']) $(id).disabled = !state.me.permissions.replay;
  $('#login').hidden = true;
  $('#app').hidden = false;
  await loadLists();
  route();
}

function logout(message) {
  sessionStorage.removeItem(TOKEN_KEY);
  state.me = null;
  clearInterval(state.timer);
  $('#app').hidden = true;
  $('#login').hidden = false;
  $('#login-error').textContent = message || '';
  $('#token').value = '';
  $('#token').focus();
}

async function loadLists() {
  const [d, r] = await Promise.all([api('/v1/destinations'), api('/v1/receipts')]);
  state.destinations = d.destinations;
  state.sources = r.sources;
  const options = (items, key) => items.map((i) => el('option', { value: i[key] }, `${i[key]}　${i.name || ''}`));
  $('#dlq-destination').replaceChildren(el('option', { value: '' }, '全部'), ...options(state.destinations, 'destination'));
  $('#dlq-source').replaceChildren(el('option', { value: '' }, '全部'), ...options(state.sources, 'adapter'));
  $('#receipts-source').replaceChildren(...options(state.sources, 'adapter'));
}

// ---- tabs ----------------------------------------------------------------------------------

const TABS = { queues: showQueues, timeline: async () => {}, dlq: loadDlq, receipts: loadReceipts, destinations: loadDestinations, scorecard: loadScorecard };

function route() {
  if (!state.me) return;
  const tab = (location.hash || '#queues').slice(1);
  const name = TABS[tab] ? tab : 'queues';
  for (const section of document.querySelectorAll('.tab')) section.hidden = section.id !== `tab-${name}`;
  for (const a of document.querySelectorAll('#tabs a')) a.classList.toggle('active', a.dataset.tab === name);
  clearInterval(state.timer);
  TABS[name]().catch((e) => toast(e.message, true));
}

// ---- 队列 ----------------------------------------------------------------------------------

async function showQueues() {
  await loadQueues();
  state.timer = setInterval(() => loadQueues().catch((e) => toast(e.message, true)), 5000);
}

// Per-minute rate of a counter between two overviews; none after a restart (counter reset).
function rate(prev, now, pick) {
  if (!prev) return null;
  const a = pick(prev), b = pick(now);
  const minutes = (now.at_ms - prev.at_ms) / 60000;
  if (a === null || a === undefined || b === null || b === undefined || b < a || minutes <= 0) return null;
  return Math.round(((b - a) / minutes) * 10) / 10;
}

async function loadQueues() {
  const o = await api('/v1/queues/overview');
  const prev = state.lastOverview;
  const prevQueue = (name) => (p) => (p.queues.find((q) => q.queue === name) || {}).taken_total;
  $('#queues-at').textContent = `更新于 ${fmtTime(o.at)}${o.broker_up ? '' : '（消息代理未连接）'}`;
  const busyOnly = $('#queues-busy').checked;
  const shown = o.queues.filter((q) => !busyOnly || q.error || q.depth > 0 || q.oldest_age_secs !== null);
  fillBody($('#queues-table'), shown.map((q) => el('tr', { 'data-queue': q.queue },
    el('td', { class: 'mono' }, q.queue),
    el('td', {}, label('kind', q.kind)),
    el('td', {}, q.owner || '—'),
    q.error ? el('td', { colspan: 4, class: 'error' }, q.error) : [
      el('td', { class: `num ${q.kind === 'dead_letter' && q.depth > 0 ? 'alert' : ''}` }, fmtNum(q.depth)),
      el('td', { class: 'num' }, fmtNum(q.consumers)),
      el('td', { class: 'num' }, fmtNum(q.oldest_age_secs)),
      el('td', { class: 'num rate' }, fmtNum(rate(prev, o, prevQueue(q.queue)))),
    ])), busyOnly ? '所有队列均为空' : '消息代理未连接');
  fillBody($('#delivery-table'), o.destinations.map((d) => {
    const pick = (p) => (p.destinations.find((x) => x.destination === d.destination) || {}).delivered_total;
    return el('tr', {},
      el('td', { class: 'mono' }, d.destination), el('td', {}, d.name),
      el('td', {}, d.paused ? badge('已暂停', 'warn') : badge('运行中', 'ok')),
      el('td', { class: 'num' }, fmtNum(d.delivered_total)), el('td', { class: 'num' }, fmtNum(d.retriable_total)),
      el('td', { class: 'num' }, fmtNum(d.permanent_total)), el('td', { class: 'num' }, fmtNum(d.dead_lettered_total)),
      el('td', { class: 'num rate' }, fmtNum(rate(prev, o, pick))));
  }));
  state.lastOverview = o;
}

// ---- 主体时间线 ----------------------------------------------------------------------------

async function searchTimeline(kind, value, reveal) {
  const result = $('#timeline-result');
  result.replaceChildren(el('p', { class: 'muted' }, '查询中…'));
  const data = await api(`/v1/records${query({ [kind]: value, reveal: reveal ? 'true' : '' })}`);
  const records = data.records || [];
  if (!records.length) {
    result.replaceChildren(el('p', { class: 'empty' }, '未找到记录。'));
    return;
  }
  // All versions of all records of the subject, oldest first: the subject's timeline.
  const versions = records.flatMap((r) => r.versions.map((v) => ({ record: r, v })))
    .sort((a, b) => String(a.v.received_at).localeCompare(String(b.v.received_at)));
  result.replaceChildren(
    el('p', { class: 'muted' }, `找到 ${records.length} 条记录、${versions.length} 个版本${reveal ? '；个人标识已完整显示，此次查看已记入审计日志' : '；个人标识已脱敏'}。`),
    el('ol', { class: 'timeline' }, versions.map(({ record, v }, i) => timelineEntry(record, v, i === versions.length - 1,
      v === record.versions[record.versions.length - 1]))),
  );
}

// A field value as text: lists of plain values joined the Chinese way, objects as JSON.
function showValue(value) {
  if (Array.isArray(value) && value.every((x) => typeof x !== 'object')) return value.join('、');
  return typeof value === 'object' && value !== null ? JSON.stringify(value) : String(value ?? '');
}

const LIFECYCLE_LABELS = {
  deadline: { met: '按时', breached: '逾期', due: '未到期', at_risk: '临期', error: '无法计算' },
  holder: { confirmed: '已确认', pending: '待确认', overdue: '逾期未确认' },
  rule: { double_publicity: '双公示 7 个工作日', city_to_province: '市县报省 3 日', province_to_credit_platform: '省报信用平台 2 日', retraction: '撤回时限' },
  cause: { repair: '信用修复', revocation: '撤销', list_removal: '移出名单', publicity_ended: '公示期满', objection: '异议撤销' },
  policy: { mark: '异议标注', suspend: '暂停推送' },
};
const lc = (group, value) => (LIFECYCLE_LABELS[group] && LIFECYCLE_LABELS[group][value]) || value || '—';

// What the credit lifecycle says about a record (publicity, deadlines, retractions, objections),
// shown under its newest version.
function lifecyclePanel(lifecycle) {
  if (!lifecycle) return null;
  const rows = [];
  for (const p of lifecycle.publicity || []) {
    rows.push(el('tr', {}, el('th', {}, '公示'), el('td', {}, p.publish
      ? `${p.tier} · ${p.rule_version} · 最短至 ${p.min_end} · 最长至 ${p.max_end}${p.stopped_at ? ` · 已于 ${fmtTime(p.stopped_at)} 终止` : ''}`
      : `${p.tier} · 不予公示`)));
  }
  for (const d of lifecycle.deadlines || []) {
    rows.push(el('tr', { 'data-deadline': d.rule }, el('th', {}, '报送时限'), el('td', {},
      `${lc('rule', d.rule)} → ${d.destination} · 截止 ${d.due || '—'} `,
      badge(lc('deadline', d.status), { met: 'ok', breached: 'bad', at_risk: 'warn', error: 'bad' }[d.status] || 'info'))));
  }
  for (const r of lifecycle.retractions || []) {
    rows.push(el('tr', { 'data-retraction': r.retract_version }, el('th', {}, '撤回'), el('td', {},
      `${lc('cause', r.cause && r.cause.cause)} · 截止 ${r.due} · `,
      (r.holders || []).map((h) => el('span', {}, `${h.destination} `, badge(lc('holder', h.status), { confirmed: 'ok', overdue: 'bad' }[h.status] || 'info'), ' ')))));
  }
  for (const d of lifecycle.disputes || []) {
    rows.push(el('tr', { 'data-objection': d.objection_id }, el('th', {}, '异议'), el('td', {},
      `${d.objection_id} · `, badge(d.status, d.holding ? 'warn' : 'ok'), d.holding ? ' 暂停中 · ' : ' · ',
      (d.history || []).map(([at, st]) => `${fmtTime(at)} ${st}`).join(' → '),
      (d.holders || []).length ? ` · ${(d.holders || []).map((h) => `${h.destination}：${lc('policy', h.policy)}`).join('，')}` : '')));
  }
  if (!rows.length) return null;
  return el('table', { class: 'fields lifecycle' }, el('caption', {}, `信用生命周期（截至 ${fmtTime(lifecycle.as_of)}）`), el('tbody', {}, rows));
}

// One version of a record on the timeline; the newest one's fields are unfolded, and the
// record's newest version carries its lifecycle.
function timelineEntry(record, v, unfold, newest) {
  const rec = v.record || {};
  const title = rec.title || v.catalog_item;
  const fields = (rec.fields || []).map((f) => el('tr', { 'data-field': f.field },
    el('th', {}, f.label || f.field, f.code ? el('span', { class: 'code' }, f.code) : null),
    el('td', { class: 'value' }, showValue(f.value))));
  const copies = (v.copies || []).map((c) => el('tr', { 'data-destination': c.destination, 'data-status': c.status },
    el('td', { class: 'mono' }, c.destination),
    el('td', {}, badge(label('copy', c.status), tone(c.status))),
    el('td', {}, el('ul', { class: 'attempts' }, (c.attempts || []).map((a) => el('li', {},
      el('span', { class: 'time' }, fmtTime(a.at)), ' ', badge(label('outcome', a.outcome), tone(a.outcome)),
      a.replay_of ? ' （重放）' : '', a.response ? el('span', { class: 'muted' }, ` ${a.response.slice(0, 120)}`) : '')))),
    el('td', {}, (c.dead_letters || []).map((d) => el('a', { href: '#dlq', class: 'mono', onclick: () => { $('#dlq-key').value = record.record_key; $('#dlq-replayed').checked = true; } }, d.dead_id.slice(0, 18))))));
  return el('li', { class: 'entry', 'data-record-key': record.record_key },
    el('div', { class: 'entry-head' },
      el('span', { class: 'time' }, fmtTime(v.received_at)),
      el('strong', {}, title),
      badge(label('record', v.status), tone(v.status)),
      el('span', { class: 'muted' }, `来源 ${v.source_adapter} · ${label('operation', v.operation)} · 版本 ${v.record_version}`)),
    el('div', { class: 'mono muted small' }, `记录键 ${record.record_key}`),
    el('details', { open: unfold }, el('summary', {}, `记录内容（${fields.length} 项）`), el('table', { class: 'fields' }, el('tbody', {}, fields))),
    newest ? lifecyclePanel(record.lifecycle) : null,
    el('table', { class: 'grid copies' },
      el('thead', {}, el('tr', {}, el('th', {}, '目的地'), el('th', {}, '状态'), el('th', {}, '投递记录'), el('th', {}, '死信'))),
      el('tbody', {}, copies.length ? copies : el('tr', {}, el('td', { colspan: 4, class: 'empty' }, '未路由到任何目的地')))));
}

// ---- 死信 ----------------------------------------------------------------------------------

function dlqFilter() {
  return {
    destination: $('#dlq-destination').value, reason: $('#dlq-reason').value, source: $('#dlq-source').value,
    since: $('#dlq-since').value, record_key: $('#dlq-key').value.trim(), include_replayed: $('#dlq-replayed').checked,
  };
}

async function loadDlq() {
  const data = await api(`/v1/dlq${query(Object.assign(dlqFilter(), { limit: 200 }))}`);
  const canReplay = state.me.permissions.replay;
  fillBody($('#dlq-table'), data.dead_letters.map((d) => el('tr', { 'data-dead-id': d.dead_id },
    el('td', {}, fmtTime(d.dead_at)), el('td', { class: 'mono' }, d.destination),
    el('td', { class: 'mono small' }, d.record_key), el('td', { class: 'mono small' }, d.record_version),
    el('td', {}, badge(label('reason', d.reason_class), d.reason_class === 'rejected' ? 'bad' : 'warn')),
    el('td', { class: 'small' }, d.reason),
    el('td', { class: 'num' }, d.attempts), el('td', { class: 'num' }, d.replay_count),
    el('td', {}, el('div', { class: 'actions' },
      el('button', { class: 'ghost', onclick: () => showDeadLetter(d.dead_id).catch((e) => toast(e.message, true)) }, '详情'),
      canReplay ? el('button', { class: 'replay', onclick: () => replay({ dead_ids: [d.dead_id] }, false) }, '重放') : null)))),
  '没有符合条件的死信');
}

async function showDeadLetter(id) {
  const d = await api(`/v1/dlq/${encodeURIComponent(id)}`);
  const fields = ((d.record && d.record.fields) || []).map((f) => el('tr', {},
    el('th', {}, f.label || f.field), el('td', { class: 'value' }, showValue(f.value))));
  $('#dlq-detail').replaceChildren(el('div', { class: 'card detail' },
    el('h3', {}, `死信 ${d.dead_id}`),
    el('dl', {},
      el('dt', {}, '目的地'), el('dd', {}, d.destination),
      el('dt', {}, '记录'), el('dd', { class: 'mono' }, `${d.record_key} @ ${d.record_version}`),
      el('dt', {}, '来源'), el('dd', {}, `${d.source_adapter} / ${d.source_message_id}`),
      el('dt', {}, '原因'), el('dd', {}, `${label('reason', d.reason_class)}：${d.reason}`),
      el('dt', {}, '目的地答复'), el('dd', {}, el('pre', {}, d.response || '—')),
      el('dt', {}, '载荷'), el('dd', { class: 'mono small' }, `${d.content_type}，${d.payload_bytes} 字节，SHA-256 ${d.payload_sha256}`)),
    el('h4', {}, '尝试记录'),
    el('ul', { class: 'attempts' }, (Array.isArray(d.history) ? d.history : []).map((h) => el('li', {},
      `第 ${h.attempt} 次 `, el('span', { class: 'time' }, fmtTime(h.at)), ' ', badge(label('outcome', h.outcome), tone(h.outcome)), ` ${h.reason || ''} ${h.response || ''}`))),
    el('h4', {}, '记录内容'), el('table', { class: 'fields' }, el('tbody', {}, fields))));
}

// Replays (or dry-runs) and then follows each replayed copy until its destination answered.
async function replay(selection, dryRun) {
  const report = $('#dlq-report');
  try {
    const r = await api('/v1/dlq/replay', { json: Object.assign({}, selection, { dry_run: dryRun, rate: 20 }) });
    const items = r.items || [];
    const rows = items.map((i) => el('tr', { 'data-dead-id': i.dead_id },
      el('td', { class: 'mono small' }, i.dead_id), el('td', { class: 'mono' }, i.destination),
      el('td', { class: 'mono small' }, i.record_key),
      el('td', {}, i.outcome === 'would_replay' ? '将重放' : i.outcome === 'replayed' ? '已重放' : i.outcome),
      el('td', { class: 'delivery' }, dryRun ? '—' : i.outcome === 'replayed' ? badge('投递中…', 'info') : '—')));
    report.replaceChildren(el('div', { class: 'card' },
      el('h3', {}, dryRun ? `试运行：将重放 ${r.matched} 条，未发送任何内容` : `已重放 ${r.replayed} / ${r.matched} 条${r.failed ? `，失败 ${r.failed} 条` : ''}`),
      r.audit_seq ? el('p', { class: 'muted' }, `审计日志序号 ${r.audit_seq}`) : null,
      el('table', { class: 'grid', id: 'replay-table' },
        el('thead', {}, el('tr', {}, el('th', {}, '死信'), el('th', {}, '目的地'), el('th', {}, '记录键'), el('th', {}, '结果'), el('th', {}, '投递状态'))),
        el('tbody', {}, rows))));
    if (!dryRun) {
      toast(`已重放 ${r.replayed} 条`);
      followDeliveries(items.filter((i) => i.outcome === 'replayed'));
      await loadDlq();
    }
  } catch (e) {
    toast(e.message, true);
  }
}

async function followDeliveries(items) {
  for (let round = 0; round < 60 && items.length; round++) {
    await new Promise((resolve) => setTimeout(resolve, 1000));
    for (const item of [...items]) {
      const data = await api(`/v1/records${query({ key: item.record_key })}`).catch(() => null);
      const copy = data && data.records.flatMap((r) => r.versions)
        .filter((v) => v.record_version === item.record_version)
        .flatMap((v) => v.copies).find((c) => c.destination === item.destination);
      const cell = document.querySelector(`#replay-table tr[data-dead-id="${CSS.escape(item.dead_id)}"] .delivery`);
      if (!copy || !cell) continue;
      cell.replaceChildren(badge(label('copy', copy.status), tone(copy.status)));
      if (copy.status === 'delivered' || copy.status === 'dead') items.splice(items.indexOf(item), 1);
    }
  }
}

// ---- 回执 ----------------------------------------------------------------------------------

async function loadReceipts() {
  const adapter = $('#receipts-source').value;
  if (!adapter) return;
  const data = await api(`/v1/receipts${query({ adapter, since: $('#receipts-since').value, status: $('#receipts-status').value, limit: 200 })}`);
  $('#receipts-counts').replaceChildren(...Object.entries(data.counts).map(([status, n]) => badge(`${label('receipt', status)} ${fmtNum(n)}`, tone(status))));
  fillBody($('#receipts-table'), data.receipts.map((r) => {
    const receipt = r.receipt || {};
    const problems = (receipt.violations || []).concat(...(receipt.records || []).map((x) => x.violations || []));
    return el('tr', { class: 'clickable', onclick: () => showReceipt(r) },
      el('td', {}, fmtTime(r.received_at)), el('td', { class: 'mono small' }, r.message_id), el('td', {}, r.doc_type),
      el('td', {}, badge(label('receipt', r.status), tone(r.status))),
      el('td', { class: 'num' }, (receipt.records || []).length),
      el('td', {}, (receipt.routed_to || []).join('、') || '—'),
      el('td', { class: 'small' }, problems.length ? `${problems.length} 项：${problems[0].message}` : '—'));
  }), '该来源在此期间没有回执');
}

function showReceipt(r) {
  $('#receipt-detail').replaceChildren(el('div', { class: 'card detail' },
    el('h3', {}, `回执 ${r.message_id}`), el('pre', {}, JSON.stringify(r.receipt, null, 2))));
}

// ---- 目的地 --------------------------------------------------------------------------------

async function loadDestinations() {
  const data = await api('/v1/destinations');
  state.destinations = data.destinations;
  const canPause = state.me.permissions.pause;
  fillBody($('#destinations-table'), data.destinations.map((d) => {
    const reason = el('input', { placeholder: '原因（可选）', size: 14, class: 'reason' });
    const act = async () => {
      try {
        await api(`/v1/destinations/${encodeURIComponent(d.destination)}/${d.paused ? 'resume' : 'pause'}`, { json: { reason: reason.value } });
        toast(`${d.destination} 已${d.paused ? '恢复' : '暂停'}`);
        await loadDestinations();
      } catch (e) { toast(e.message, true); }
    };
    return el('tr', { 'data-destination': d.destination, 'data-paused': d.paused ? 'true' : 'false' },
      el('td', { class: 'mono' }, d.destination), el('td', {}, d.name),
      el('td', {}, d.paused ? badge('已暂停', 'warn') : badge('运行中', 'ok')),
      el('td', {}, d.reason || '—'), el('td', {}, d.changed_by || '—'), el('td', {}, fmtTime(d.changed_at)),
      el('td', {}, el('div', { class: 'actions' }, canPause ? [reason, el('button', { class: d.paused ? 'ok' : 'warn', onclick: act }, d.paused ? '恢复' : '暂停')] : el('span', { class: 'muted' }, '无权限'))));
  }));
}

// ---- 合规评分 ------------------------------------------------------------------------------

function scorecardRange() {
  return { from: $('#scorecard-from').value.trim(), to: $('#scorecard-to').value.trim() };
}

async function loadScorecard() {
  const data = await api(`/v1/scorecard${query(scorecardRange())}`);
  $('#scorecard-from').placeholder = data.from;
  $('#scorecard-to').placeholder = data.to;
  fillBody($('#scorecard-table'), data.rows.map((r) =>
    el('tr', { 'data-source-org': r.source_org },
      el('td', {}, r.day), el('td', { class: 'mono' }, r.source_org), el('td', {}, r.catalog_item),
      el('td', { class: 'num' }, fmtNum(r.received)),
      el('td', { class: 'num' }, fmtNum(r.accepted)), el('td', { class: 'num' }, fmtNum(r.accepted_with_warnings)),
      el('td', { class: 'num' }, fmtNum(r.rejected_records)), el('td', { class: 'num' }, fmtNum(r.rejected_documents)),
      el('td', { class: 'small' }, Object.entries(r.rejected_by_reason || {}).map(([rule, n]) => `${rule} ${n}`).join('；') || '—'),
      el('td', { class: 'num' }, fmtNum(r.deadlines_met)),
      el('td', { class: 'num' }, r.deadlines_breached ? badge(fmtNum(r.deadlines_breached), 'bad') : '0'),
      el('td', { class: 'num' }, r.deadlines_at_risk ? badge(fmtNum(r.deadlines_at_risk), 'warn') : '0'),
      el('td', { class: 'num' }, fmtNum(r.deadlines_open)))), '此期间没有记录');
}

// The CSV goes through fetch (the token is a header, not a cookie), then to a download link.
async function downloadScorecard() {
  const token = sessionStorage.getItem(TOKEN_KEY) || '';
  const response = await fetch(`/v1/scorecard${query(Object.assign(scorecardRange(), { csv: true }))}`,
    { headers: { Authorization: `Bearer ${token}` } });
  if (!response.ok) throw new ApiError(response.status, `HTTP ${response.status}`);
  const link = el('a', { href: URL.createObjectURL(await response.blob()), download: 'scorecard.csv' });
  link.click();
  URL.revokeObjectURL(link.href);
}

// ---- wiring --------------------------------------------------------------------------------

document.addEventListener('DOMContentLoaded', () => {
  $('#login-form').addEventListener('submit', (e) => {
    e.preventDefault();
    login($('#token').value.trim()).catch((err) => {
      sessionStorage.removeItem(TOKEN_KEY);
      $('#login-error').textContent = err.status === 401 ? '令牌无效' : `登录失败：${err.message}`;
    });
  });
  $('#logout').addEventListener('click', () => logout());
  $('#timeline-form').addEventListener('submit', (e) => {
    e.preventDefault();
    searchTimeline($('#timeline-kind').value, $('#timeline-query').value.trim(), $('#timeline-reveal').checked)
      .catch((err) => { $('#timeline-result').replaceChildren(el('p', { class: 'error' }, err.message)); });
  });
  $('#dlq-form').addEventListener('submit', (e) => { e.preventDefault(); loadDlq().catch((err) => toast(err.message, true)); });
  $('#dlq-dry-run').addEventListener('click', () => replay(dlqFilter(), true));
  $('#dlq-replay-all').addEventListener('click', () => {
    if (confirm('按当前筛选条件重放全部死信？')) replay(dlqFilter(), false);
  });
  $('#queues-busy').addEventListener('change', () => loadQueues().catch((err) => toast(err.message, true)));
  $('#receipts-form').addEventListener('submit', (e) => { e.preventDefault(); loadReceipts().catch((err) => toast(err.message, true)); });
  $('#scorecard-form').addEventListener('submit', (e) => { e.preventDefault(); loadScorecard().catch((err) => toast(err.message, true)); });
  $('#scorecard-csv').addEventListener('click', () => downloadScorecard().catch((err) => toast(err.message, true)));
  window.addEventListener('hashchange', route);
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (token) login(token).catch(() => logout());
  else logout();
});
