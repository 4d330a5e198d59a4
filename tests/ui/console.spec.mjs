// The operator console in headless Chromium, driven by tests/it/console_ui.rs (which starts the
// gateway, makes the dead letters and checks the store afterwards). Uses playwright-core with
// the system's Chromium (`CHROMIUM`), never a downloaded browser. Screenshots → `SCREENSHOTS`.
import { chromium } from 'playwright-core';
import assert from 'node:assert/strict';
import path from 'node:path';

const env = (name) => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
};
const URL = env('CONSOLE_URL');
const USCC = env('USCC');
const PERSON_ID = env('PERSON_ID');
const MASKED_ID = `${PERSON_ID.slice(0, 4)}${'*'.repeat(PERSON_ID.length - 6)}${PERSON_ID.slice(-2)}`;
const REPLAY_ID = env('REPLAY_DEAD_ID');
const KEEP_ID = env('KEEP_DEAD_ID');
const SHOTS = env('SCREENSHOTS');

const started = Date.now();
const step = (what) => console.log(`[${((Date.now() - started) / 1000).toFixed(1)}s] ${what}`);
const shot = async (page, name, options) => {
  await page.screenshot(Object.assign({ path: path.join(SHOTS, `${name}.png`) }, options || {}));
  step(`screenshot ${name}.png`);
};

const context = await chromium.launchPersistentContext(env('USER_DATA_DIR'), {
  executablePath: env('CHROMIUM'),
  headless: true,
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  viewport: { width: 1360, height: 860 },
  locale: 'zh-CN',
  timezoneId: 'Asia/Shanghai',
});
const page = context.pages()[0] || (await context.newPage());
page.setDefaultTimeout(30000);
const problems = [];
page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
// A refused request (the wrong token at login) is logged by Chromium itself; that is expected.
page.on('console', (m) => {
  if (m.type() === 'error' && !m.text().startsWith('Failed to load resource')) problems.push(`console: ${m.text()}`);
});

async function login(token) {
  await page.goto(URL);
  await page.waitForSelector('#login-form');
  await page.fill('#token', token);
  await page.click('#login-submit');
  await page.waitForSelector('#app:not([hidden])');
}

async function logout() {
  await page.click('#logout');
  await page.waitForSelector('#login:not([hidden])');
}

try {
  // Login: a wrong token is refused, the operator's is accepted.
  await page.goto(URL);
  await page.waitForSelector('#login-form');
  await page.fill('#token', 'wrong-token');
  await page.click('#login-submit');
  await page.waitForFunction(() => document.querySelector('#login-error').textContent.includes('令牌无效'));
  await shot(page, '01-login');
  await login(env('OPERATOR_TOKEN'));
  assert.match(await page.textContent('#who'), /wang-operator（操作员）/);
  step('logged in as operator');

  // 队列: the table, then a second poll so the rates are filled in.
  await page.waitForSelector('#queues-table tr[data-queue="credgate.out.hb-credit"]');
  await page.waitForFunction(() => [...document.querySelectorAll('#queues-table td.rate')].some((td) => td.textContent !== '—'), null, { timeout: 20000 });
  const dlqDepth = await page.textContent('#queues-table tr[data-queue="credgate.dlq.hb-credit"] td:nth-child(4)');
  assert.equal(dlqDepth.trim(), '2', 'both dead letters are in the broker queue too');
  await shot(page, '02-queues', { fullPage: true });
  await page.check('#queues-busy');
  await page.waitForFunction(() => !document.querySelector('#queues-table tr[data-queue="credgate.in.wh-ggzy"]'));
  assert.equal(await page.locator('#queues-table tr[data-queue="credgate.dlq.hb-credit"]').count(), 1);
  await shot(page, '02b-queues-busy');

  // 主体时间线 by USCC, as operator: labels in Chinese, the ID number masked, no reveal.
  await page.click('#tabs a[data-tab="timeline"]');
  assert.equal(await page.isVisible('#reveal-wrap'), false, 'an operator cannot reveal');
  await page.fill('#timeline-query', USCC);
  await page.click('#timeline-search');
  await page.waitForSelector('#timeline-result li.entry');
  assert.equal(await page.locator('#timeline-result li.entry').count(), 2);
  const timeline = await page.textContent('#timeline-result');
  assert.ok(timeline.includes('法定代表人证件号码'), 'Chinese field labels');
  assert.ok(timeline.includes(MASKED_ID), 'the ID number is shown masked');
  assert.ok(!timeline.includes(PERSON_ID), 'the ID number must not be shown to an operator');
  assert.ok(timeline.includes('死信'), 'the refused copies show as dead letters');
  // Each record's lifecycle: its publicity window and the 双公示 deadline (decided 2026-09-28,
  // never delivered: breached).
  assert.equal(await page.locator('#timeline-result table.lifecycle').count(), 2, 'a lifecycle panel per record');
  const deadline = await page.textContent('#timeline-result table.lifecycle tr[data-deadline="double_publicity"]');
  assert.ok(deadline.includes('双公示') && deadline.includes('逾期'), `双公示 deadline shown breached: ${deadline}`);
  await shot(page, '03-timeline-operator');
  step('timeline found by USCC, ID masked');

  // 死信: list, detail, a dry run, then replay one dead letter and see it delivered.
  await page.click('#tabs a[data-tab="dlq"]');
  await page.waitForSelector(`#dlq-table tr[data-dead-id="${REPLAY_ID}"]`);
  assert.equal(await page.locator('#dlq-table tbody tr[data-dead-id]').count(), 2);
  await page.selectOption('#dlq-destination', 'hb-credit');
  await page.selectOption('#dlq-reason', 'rejected');
  await page.click('#dlq-search');
  await page.waitForSelector(`#dlq-table tr[data-dead-id="${KEEP_ID}"]`);
  await page.click(`#dlq-table tr[data-dead-id="${REPLAY_ID}"] button:has-text("详情")`);
  await page.waitForSelector('#dlq-detail .detail');
  const detail = await page.textContent('#dlq-detail');
  assert.ok(detail.includes('400'), "the destination's answer is shown");
  assert.ok(!detail.includes(PERSON_ID), 'dead-letter detail is masked for an operator');
  await page.click('#dlq-dry-run');
  await page.waitForFunction(() => document.querySelector('#dlq-report').textContent.includes('试运行：将重放 2 条'));
  await shot(page, '04-dlq-dry-run', { fullPage: true });
  await page.click(`#dlq-table tr[data-dead-id="${REPLAY_ID}"] button.replay`);
  await page.waitForFunction(() => document.querySelector('#dlq-report').textContent.includes('已重放 1 / 1 条'));
  await page.waitForFunction((id) => {
    const cell = document.querySelector(`#replay-table tr[data-dead-id="${id}"] .delivery`);
    return cell && cell.textContent.includes('已送达');
  }, REPLAY_ID, { timeout: 60000 });
  // The replayed one left the list of open dead letters; the other is still there.
  await page.waitForFunction((id) => !document.querySelector(`#dlq-table tr[data-dead-id="${id}"]`), REPLAY_ID);
  assert.equal(await page.locator(`#dlq-table tr[data-dead-id="${KEEP_ID}"]`).count(), 1);
  await shot(page, '05-dlq-replayed-delivered', { fullPage: true });
  step('dead letter replayed and delivered');

  // The timeline now shows the copy delivered after the replay.
  await page.click('#tabs a[data-tab="timeline"]');
  await page.click('#timeline-search');
  await page.waitForSelector('#timeline-result tr[data-destination="hb-credit"][data-status="delivered"]');
  assert.equal(await page.locator('#timeline-result tr[data-destination="hb-credit"][data-status="dead"]').count(), 1);

  // 回执 of the source.
  await page.click('#tabs a[data-tab="receipts"]');
  await page.selectOption('#receipts-source', 'wh-ggzy');
  await page.click('#receipts-search');
  await page.waitForSelector('#receipts-table tr.clickable');
  assert.equal(await page.locator('#receipts-table tr.clickable').count(), 2);
  assert.match(await page.textContent('#receipts-counts'), /已接收/);
  await page.click('#receipts-table tr.clickable >> nth=0');
  await page.waitForSelector('#receipt-detail pre');
  await shot(page, '06-receipts');

  // 目的地: pause with a reason, then resume.
  await page.click('#tabs a[data-tab="destinations"]');
  const row = '#destinations-table tr[data-destination="hb-credit"]';
  await page.waitForSelector(`${row}[data-paused="false"]`);
  await page.fill(`${row} input.reason`, '平台升级维护');
  await page.click(`${row} button:has-text("暂停")`);
  await page.waitForSelector(`${row}[data-paused="true"]`);
  assert.match(await page.textContent(row), /平台升级维护/);
  assert.match(await page.textContent(row), /api:wang-operator/);
  await shot(page, '07-destinations-paused');
  await page.click(`${row} button:has-text("恢复")`);
  await page.waitForSelector(`${row}[data-paused="false"]`);
  step('destination paused and resumed');

  // 合规评分: the source organisation of the penalties, per day and catalog item.
  await page.click('#tabs a[data-tab="scorecard"]');
  const org = '#scorecard-table tr[data-source-org="11420000MB0P1Q2R33"]';
  await page.waitForSelector(org);
  assert.match(await page.textContent(org), /admin_penalty/);
  await shot(page, '09-scorecard');
  step('scorecard shows the source organisation');
  await logout();

  // As auditor: may reveal (audited), may not pause.
  await login(env('AUDITOR_TOKEN'));
  await page.click('#tabs a[data-tab="destinations"]');
  await page.waitForSelector(`${row}`);
  assert.equal(await page.locator(`${row} button`).count(), 0, 'an auditor gets no pause button');
  await page.click('#tabs a[data-tab="timeline"]');
  await page.fill('#timeline-query', USCC);
  await page.check('#timeline-reveal');
  await page.click('#timeline-search');
  await page.waitForSelector('#timeline-result li.entry');
  assert.ok((await page.textContent('#timeline-result')).includes(PERSON_ID), 'an auditor may reveal');
  await shot(page, '08-timeline-auditor-revealed');
  step('auditor revealed the ID number');

  assert.deepEqual(problems, [], 'no script errors in the page');
  step('console e2e ok');
} catch (e) {
  await page.screenshot({ path: path.join(SHOTS, 'failure.png'), fullPage: true }).catch(() => {});
  console.error(`console e2e failed: ${e.stack || e}`);
  console.error(problems.join('\n'));
  process.exitCode = 1;
} finally {
  await context.close();
}
