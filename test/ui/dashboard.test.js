#!/usr/bin/env node
/*
 * The dashboard of `cjobs serve` in Debian's headless Chromium, driven with
 * puppeteer-core: the page loads without console errors or CSP violations,
 * asks for the token, filters and pages the job list, shows a job, shows a
 * job added by another process (the cjobs CLI) without a reload, performs
 * actions (a job's, and "Retry all dead" on a type) with the token and is
 * refused without it, and renders a job whose id and data hold markup as
 * text, running nothing; shows a type's settings (limits and retention set
 * by the CLI); lists the schedules, one made by the CLI whose name holds
 * markup (as text), and creates and removes one with the token; idle, it
 * makes no request, and a schedule added by the CLI reaches it.
 *
 *   node test/ui/dashboard.test.js path/to/cjobs
 *
 * Environment: CJ_TEST_URL picks the engine (unset: the embedded one);
 * CJ_TEST_TIMEOUT_MULTIPLIER stretches every bound; CJ_UI_SCREENSHOTS=DIR
 * saves the screenshots there (the README's are made with DIR=doc);
 * CJ_CHROMIUM names the browser (default /usr/bin/chromium). Without
 * puppeteer-core (npm ci --prefix test/ui) or Chromium the test is skipped
 * (exit 77), unless CJ_UI_REQUIRED=1 (scripts/test.sh), when it fails.
 */
'use strict';

const { execFileSync, spawn } = require('child_process');
const fs = require('fs');
const os = require('os');
const path = require('path');

const SKIP = 77;
const MULT = Number(process.env.CJ_TEST_TIMEOUT_MULTIPLIER || 1) || 1;
const ms = (seconds) => Math.round(seconds * 1000 * MULT);
const CHROMIUM = process.env.CJ_CHROMIUM || '/usr/bin/chromium';

function skip(why) {
  if (process.env.CJ_UI_REQUIRED === '1') {
    console.error('FAIL dashboard: ' + why);
    process.exit(1);
  }
  console.log('SKIP dashboard: ' + why);
  process.exit(SKIP);
}

let puppeteer;
try {
  puppeteer = require('puppeteer-core');
} catch (e) {
  skip('puppeteer-core is not installed (npm ci --prefix test/ui)');
}
if (!fs.existsSync(CHROMIUM)) skip(CHROMIUM + ' is missing (apt-get install chromium)');

const cjobs = path.resolve(process.argv[2] || '');
if (!process.argv[2] || !fs.existsSync(cjobs)) {
  console.error('usage: dashboard.test.js CJOBS');
  process.exit(2);
}

function check(cond, what) {
  if (!cond) throw new Error(what);
}

function storeUrl(scratch) {
  const u = process.env.CJ_TEST_URL || '';
  if (!u || u === 'lmdb' || u.startsWith('lmdb:')) return 'lmdb:' + path.join(scratch, 'store');
  const rand = Math.floor(Math.random() * 0xffffffff).toString(16).padStart(8, '0');
  return u + (u.includes('?') ? '&' : '?') + 'schema=cjs_' + process.pid + '_' + rand;
}

/* `cjobs serve` on port 0; resolves with its URL once it prints it. */
function serve(db, tokenFile) {
  return new Promise((resolve, reject) => {
    const p = spawn(cjobs, ['--db', db, 'serve', '--listen', '127.0.0.1:0', '--token-file', tokenFile],
      { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    const timer = setTimeout(() => reject(new Error('cjobs serve did not start: ' + err)), ms(60));
    p.stderr.on('data', (d) => { err += d; });
    p.stdout.on('data', (d) => {
      out += d;
      const m = out.match(/listening on (http:\/\/\S+)\n/);
      if (m) {
        clearTimeout(timer);
        resolve({ p, url: m[1], stderr: () => err });
      }
    });
    p.on('exit', (code) => reject(new Error('cjobs serve exited ' + code + ': ' + err)));
  });
}

function stop(srv) {
  return new Promise((resolve, reject) => {
    if (srv.p.exitCode !== null) {
      reject(new Error('cjobs serve had exited ' + srv.p.exitCode + ': ' + srv.stderr()));
      return;
    }
    const timer = setTimeout(() => { srv.p.kill('SIGKILL'); reject(new Error('no stop on SIGTERM')); }, ms(60));
    srv.p.removeAllListeners('exit');
    srv.p.on('exit', (code) => {
      clearTimeout(timer);
      if (code === 0) resolve();
      else reject(new Error('cjobs serve exited ' + code + ': ' + srv.stderr()));
    });
    srv.p.kill('SIGTERM');
  });
}

const T0 = Date.now();
async function main() {
  const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'cjui-'));
  const shots = process.env.CJ_UI_SCREENSHOTS ? path.resolve(process.env.CJ_UI_SCREENSHOTS) : scratch;
  const db = storeUrl(scratch);
  const cli = (...args) => execFileSync(cjobs, ['--db', db, ...args], { encoding: 'utf8', timeout: ms(60) });
  const TOKEN = 'dash-' + Math.random().toString(36).slice(2);
  const tokenFile = path.join(scratch, 'token');
  fs.writeFileSync(tokenFile, TOKEN + '\n');

  /* a store with a few types, jobs in every state, and one job made of markup */
  const EVIL_ID = '<img src=x onerror="window.__pwned=1;alert(1)">"\'<script>window.__pwned=2;alert(2)</script>';
  const EVIL_DATA = {
    html: '<script>window.__pwned=3;alert(3)</script>',
    img: '<img src=x onerror="window.__pwned=4;alert(4)">',
    quotes: '"\'`',
    attr: '" onmouseover="alert(5)',
  };
  const srv = await serve(db, tokenFile);
  const api = async (method, p, body, token = TOKEN) => {
    const h = { Authorization: 'Bearer ' + token };
    const r = await fetch(srv.url + p, { method, headers: h, body: body ? JSON.stringify(body) : undefined });
    return { status: r.status, body: await r.text() };
  };
  const put = async (p, body) => {
    const r = await api('PUT', p, body);
    check(r.status === 200, 'PUT ' + p + ': ' + r.status + ' ' + r.body);
  };
  await Promise.all([['email', 60], ['thumbnail', 300], ['report', 30]].map(
    ([t, s]) => put('/v1/types/' + t, { timeout: s })));
  const adds = [];
  for (let i = 1; i <= 6; i++)
    adds.push(['email', 'welcome-' + i, { to: 'user' + i + '@example.com', template: 'welcome' }]);
  adds.push(['email', EVIL_ID, EVIL_DATA]);
  for (let i = 1; i <= 4; i++) adds.push(['thumbnail', 'img-' + i, { src: 'photos/' + i + '.jpg', size: 256 }]);
  for (let i = 1; i <= 25; i++)
    adds.push(['report', 'r-' + String(i).padStart(2, '0'), { period: '2026-' + String(1 + (i % 12)).padStart(2, '0'), format: 'pdf' }]);
  await Promise.all(adds.map(([t, id, data]) =>
    put('/v1/jobs/' + t + '/' + encodeURIComponent(id), { data })));
  /* a scheduled job, img-1 finished and img-2 running, by other processes */
  cli('add', 'email', 'digest-7', JSON.stringify({ to: 'team@example.com', template: 'digest' }), '--in', '2h');
  const take = () => JSON.parse(cli('accept', 'thumbnail', '--timeout', '0'));
  const j1 = take();
  cli('finish', 'thumbnail', j1.id, j1.lock, JSON.stringify({ src: 'photos/1.jpg', size: 256, thumb: 'thumbs/1.jpg' }));
  const j2 = take();
  cli('update', 'thumbnail', j2.id, j2.lock, JSON.stringify({ src: 'photos/2.jpg', size: 256, progress: 40 }));
  /* a schedule whose name is markup, a type's limits and retention: by the CLI */
  const EVIL_SCHED = '<script>window.__pwned=6</script>"\'<b>';
  cli('schedule', 'add', EVIL_SCHED, '--cron', '0 2 * * *', '--tz', 'Europe/Paris', '--type', 'report',
    '--data', JSON.stringify({ kind: '<img src=x onerror="window.__pwned=7">' }), '--catch-up', 'last');
  cli('limit', 'report', '--concurrency', '5', '--rate', '10/s');
  cli('retention', 'report', '--keep-for', '7d', '--dead-keep', '100');

  /* the page's files: served without the token, with their type, ETag,
   * no-cache and the CSP; 304 when unchanged; the data needs the token */
  for (const [p, type] of [['/', 'text/html'], ['/ui/app.js', 'text/javascript'],
    ['/ui/style.css', 'text/css'], ['/ui/icon.svg', 'image/svg+xml']]) {
    const r = await fetch(srv.url + p);
    check(r.status === 200, p + ' without the token: ' + r.status);
    check((r.headers.get('content-type') || '').startsWith(type), p + ': ' + r.headers.get('content-type'));
    check(r.headers.get('cache-control') === 'no-cache', p + ' cache-control');
    check(r.headers.get('x-content-type-options') === 'nosniff', p + ' nosniff');
    const etag = r.headers.get('etag');
    check(/^"[0-9a-f]{32}"$/.test(etag || ''), p + ' etag ' + etag);
    await r.arrayBuffer();
    const again = await fetch(srv.url + p, { headers: { 'If-None-Match': etag } });
    check(again.status === 304, p + ' unchanged: ' + again.status);
  }
  check((await fetch(srv.url + '/ui/nothing.js')).status === 401, 'no such file, no token: 401');
  check((await api('GET', '/ui/nothing.js')).status === 404, 'no such file: 404');
  check((await fetch(srv.url + '/ui/events')).status === 401, 'the overview needs the token');
  check((await api('GET', '/ui/events', null, 'wrong')).status === 401, 'and the right one');

  const browser = await puppeteer.launch({
    executablePath: CHROMIUM,
    headless: true,
    userDataDir: path.join(scratch, 'chromium'),
    args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync'],
    timeout: ms(60),
  });
  const consoleErrors = [];
  const dialogs = [];
  const failed = []; /* requests that failed: for the diagnosis of a failure */
  let expect401 = false; /* the browser logs each 401 it gets as a console error */
  let expect400 = false; /* and each 400 */
  let page = null;
  try {
    page = await browser.newPage();
    page.setDefaultTimeout(ms(30));
    await page.setViewport({ width: 1360, height: 860 });
    page.on('console', (m) => {
      if (m.type() !== 'error') return;
      if (expect401 && /status of 401/.test(m.text())) return;
      if (expect400 && /status of 400/.test(m.text())) return;
      consoleErrors.push(m.text());
    });
    page.on('pageerror', (e) => consoleErrors.push('page error: ' + e.message));
    page.on('requestfailed', (r) => failed.push(((Date.now() - T0) / 1000).toFixed(1) + ' s: ' + r.url() + ' ' + r.failure().errorText));
    page.on('dialog', async (d) => { dialogs.push(d.message()); await d.dismiss(); });
    await page.evaluateOnNewDocument(() => {
      window.__csp = [];
      document.addEventListener('securitypolicyviolation',
        (e) => window.__csp.push(e.violatedDirective + ' ' + e.blockedURI));
    });

    const rows = () => page.$$eval('#jobs-body tr', (trs) => trs.map((tr) => JSON.parse(tr.dataset.job)));
    const waitRows = (pred, what) => page.waitForFunction(pred, { timeout: ms(30) }).catch(async (e) => {
      throw new Error('timed out waiting for ' + what + ' (rows: ' + JSON.stringify(await rows()) + '): ' + e.message);
    });
    const select = async (sel, value) => { await page.select(sel, value); };
    /* live updates may replace a row between finding a button and clicking it */
    const click = async (sel) => {
      for (let i = 0; ; i++) {
        try {
          await (await page.waitForSelector(sel)).click();
          return;
        } catch (e) {
          if (i >= 4 || !/detached|not clickable|not attached/i.test(e.message)) throw e;
        }
      }
    };
    /* forgets the token: the dialog closes, seen by its close event (a
     * request of the page's, refused from then on, may open it again at
     * once) */
    const forgetToken = async () => {
      await page.evaluate(() => {
        window.__tokenClosed = false;
        document.getElementById('token-dialog').addEventListener('close',
          () => { window.__tokenClosed = true; }, { once: true });
      });
      await click('#token-forget');
      await page.waitForFunction(() => window.__tokenClosed);
    };
    /* runs act, which ends refused for want of the token. A request the
     * page makes on its own (a reload on an overview) may be refused first
     * and open the dialog, over the page: then act misses. Close it and act
     * again; the next try's refusal is act's */
    const refusedWithoutToken = async (act) => {
      for (let attempt = 1; ; attempt++) {
        if (await act({ timeout: ms(5) }).then(() => true, (e) => { if (attempt >= 3) throw e; return false; })) return;
        if (await page.evaluate(() => document.getElementById('token-dialog').open)) {
          await page.keyboard.press('Escape');
          await page.waitForFunction(() => !document.getElementById('token-dialog').open);
        }
      }
    };
    const countOf = (type, state) => page.$eval('#types-body tr[data-type="' + type + '"] td.c-' + state + ' .count',
      (c) => Number(c.textContent));

    /* 1. the page loads and asks for the token: its files need none, its data does */
    expect401 = true;
    const resp = await page.goto(srv.url + '/', { waitUntil: 'load' });
    check(resp.status() === 200, 'the page: ' + resp.status());
    const csp = resp.headers()['content-security-policy'] || '';
    check(/script-src 'self'/.test(csp) && !/unsafe/.test(csp), 'a strict CSP: ' + csp);
    await page.waitForSelector('#token-dialog[open]');
    check(await page.$eval('#types-body', (b) => b.children.length === 0), 'no data without the token');
    await page.type('#token-input', TOKEN);
    await page.keyboard.press('Enter');
    expect401 = false;
    await page.waitForFunction(() => document.querySelectorAll('#types-body tr').length === 3);
    await page.waitForFunction(() => document.getElementById('live').dataset.state === 'live');
    const counts = await page.$$eval('#types-body tr', (trs) => Object.fromEntries(trs.map((tr) => [
      tr.dataset.type, [...tr.querySelectorAll('td.num .count')].slice(0, 4).map((c) => Number(c.textContent))])));
    check(JSON.stringify(counts.email) === '[7,1,0,0]', 'email counts ' + JSON.stringify(counts.email));
    check(JSON.stringify(counts.thumbnail) === '[2,0,1,1]', 'thumbnail counts ' + JSON.stringify(counts.thumbnail));
    check(JSON.stringify(counts.report) === '[25,0,0,0]', 'report counts ' + JSON.stringify(counts.report));
    check(!(await page.evaluate(() => sessionStorage.getItem('couchjobs.token') === null)), 'token in sessionStorage');
    check(!page.url().includes(TOKEN), 'the token is not in the URL');

    /* 2. filters and paging */
    await select('#f-type', 'thumbnail');
    await waitRows(() => {
      const r = [...document.querySelectorAll('#jobs-body tr')].map((tr) => JSON.parse(tr.dataset.job));
      return r.length === 4 && r.every(([t]) => t === 'thumbnail');
    }, 'the thumbnail jobs');
    await select('#f-state', 'finished');
    await waitRows(() => {
      const r = [...document.querySelectorAll('#jobs-body tr')].map((tr) => JSON.parse(tr.dataset.job));
      return r.length === 1 && r[0][1] === 'img-1';
    }, 'the finished thumbnail');
    await select('#f-state', 'running');
    await waitRows(() => {
      const r = [...document.querySelectorAll('#jobs-body tr')].map((tr) => JSON.parse(tr.dataset.job));
      return r.length === 1 && r[0][1] === 'img-2';
    }, 'the running thumbnail');
    await select('#f-state', '');
    await select('#f-type', 'report');
    await waitRows(() => document.querySelectorAll('#jobs-body tr').length === 20 &&
      document.querySelector('#jobs-body tr').dataset.job === '["report","r-01"]', 'page 1 of report');
    await click('#next');
    await waitRows(() => document.querySelectorAll('#jobs-body tr').length === 5 &&
      document.querySelector('#jobs-body tr').dataset.job === '["report","r-21"]', 'page 2 of report');
    check(await page.$eval('#next', (b) => b.disabled), 'no page 3');
    await click('#prev');
    await waitRows(() => document.querySelectorAll('#jobs-body tr').length === 20, 'page 1 again');

    /* 3. a job added by another process appears without a reload */
    await select('#f-type', 'email');
    await waitRows(() => document.querySelectorAll('#jobs-body tr').length === 8, 'the email jobs');
    await page.evaluate(() => { window.__sameDocument = true; });
    cli('add', 'email', 'from-cli', JSON.stringify({ to: 'cli@example.com', template: 'receipt' }));
    await waitRows(() => [...document.querySelectorAll('#jobs-body tr')]
      .some((tr) => tr.dataset.job === '["email","from-cli"]'), 'the job added by the CLI');
    await page.waitForFunction(() => {
      const tr = document.querySelector('#types-body tr[data-type="email"] td.c-pending .count');
      return tr && tr.textContent === '8';
    });
    /* and so do another process's accept and finish, in the counts */
    const j3 = take();
    cli('finish', 'thumbnail', j3.id, j3.lock, JSON.stringify({ src: 'photos/3.jpg', size: 256, thumb: 'thumbs/3.jpg' }));
    await page.waitForFunction(() => {
      const c = document.querySelector('#types-body tr[data-type="thumbnail"] td.c-finished .count');
      return c && c.textContent === '2';
    });
    check(await page.evaluate(() => window.__sameDocument === true), 'no reload');

    /* 4. a job's detail, opened and closed with the keyboard */
    /* a JSON string is a CSS string too */
    const openSel = (type, id) => '#jobs-body tr[data-job=' + JSON.stringify(JSON.stringify([type, id])) + '] button.job-open';
    await page.focus(openSel('email', 'welcome-3'));
    await page.keyboard.press('Enter');
    await page.waitForFunction(() => !document.getElementById('detail').hidden &&
      document.getElementById('detail-id').textContent === 'welcome-3' &&
      document.getElementById('detail-data').textContent.includes('"to": "user3@example.com"'));
    const facts = await page.$eval('#detail-facts', (d) => d.textContent);
    check(/State\s*pending/.test(facts), 'the state in the detail: ' + facts);
    await page.keyboard.press('Escape');
    await page.waitForFunction(() => document.getElementById('detail').hidden);
    check(await page.evaluate(() => document.activeElement && document.activeElement.textContent === 'welcome-3'),
      'the focus is back on the job');
    /* the open job follows another process's changes */
    await click(openSel('email', 'welcome-4'));
    await page.waitForFunction(() => document.getElementById('detail-id').textContent === 'welcome-4' &&
      document.getElementById('detail-data').textContent.includes('welcome'));
    cli('rm', 'email', 'welcome-4');
    await page.waitForFunction(() => document.getElementById('detail-facts').textContent.includes('removed'));
    /* the list follows: wait for it before clicking in it, or the rows move under the pointer */
    await waitRows(() => ![...document.querySelectorAll('#jobs-body tr')]
      .some((tr) => tr.dataset.job === '["email","welcome-4"]'), 'welcome-4 to go');

    /* 5. actions with the token: remove, set a timeout */
    await click(openSel('email', 'welcome-5'));
    await page.waitForFunction(() => document.getElementById('detail-id').textContent === 'welcome-5' &&
      document.querySelector('#detail-actions button.danger'));
    await click('#detail-actions button.danger');
    await click('#detail-actions button.danger.confirm');
    await waitRows(() => ![...document.querySelectorAll('#jobs-body tr')]
      .some((tr) => tr.dataset.job === '["email","welcome-5"]'), 'welcome-5 to go');
    check((await api('GET', '/v1/jobs/email/welcome-5')).status === 404, 'welcome-5 was removed');
    await page.waitForFunction(() => document.querySelector(
      '#types-body tr[data-type="email"] td.c-pending .count').textContent === '6');
    await click('#types-body tr[data-type="email"] td .timeout button');
    await page.waitForSelector('#types-body tr[data-type="email"] input');
    await page.$eval('#types-body tr[data-type="email"] input', (i) => { i.select(); });
    await page.keyboard.type('120');
    await page.keyboard.press('Enter');
    await page.waitForFunction(() => !document.querySelector('#types-body tr[data-type="email"] input'));
    check(JSON.parse((await api('GET', '/v1/types/email')).body).timeout === 120, 'the timeout was set');

    /* 6. the same action without the token is refused and changes nothing */
    await click(openSel('email', 'welcome-6'));
    await page.waitForFunction(() => document.getElementById('detail-id').textContent === 'welcome-6' &&
      document.querySelector('#detail-actions button.danger'));
    await click('#token-btn');
    await page.waitForSelector('#token-dialog[open]');
    expect401 = true;
    await forgetToken();
    check(await page.evaluate(() => sessionStorage.getItem('couchjobs.token') === null), 'token forgotten');
    await refusedWithoutToken(async (wait) => {
      await (await page.waitForSelector('#detail-actions button.danger', wait)).click();
      await (await page.waitForSelector('#detail-actions button.danger.confirm', wait)).click();
      await page.waitForSelector('#token-dialog[open]', wait);
      await page.waitForFunction(() => /refused/.test(document.getElementById('toast').textContent), wait);
    });
    check((await api('GET', '/v1/jobs/email/welcome-6')).status === 200, 'welcome-6 is still there');
    await page.keyboard.press('Escape');
    await page.waitForFunction(() => !document.getElementById('token-dialog').open);
    check(await page.evaluate(() => !document.getElementById('detail').hidden), 'Escape closed the dialog only');
    await click('#token-btn');
    await page.waitForSelector('#token-dialog[open]');
    await page.type('#token-input', TOKEN);
    await page.keyboard.press('Enter');
    expect401 = false;

    /* 7. markup in a job's id and data is shown as text and runs nothing */
    await click(openSel('email', EVIL_ID));
    await page.waitForFunction(() => document.getElementById('detail-data').textContent.includes('<script>'));
    const injected = await page.evaluate(() => ({
      detailId: document.getElementById('detail-id').textContent,
      pwned: window.__pwned,
      scripts: document.scripts.length,
      imgs: [...document.images].map((i) => i.getAttribute('src')).filter((s) => s !== 'ui/icon.svg'),
      handlers: [...document.querySelectorAll('*')].filter((e) =>
        [...e.attributes].some((a) => a.name.startsWith('on'))).length,
      rowText: document.querySelector('#jobs-body button.job-open').textContent,
    }));
    check(injected.pwned === undefined, 'script ran: __pwned=' + injected.pwned);
    check(injected.scripts === 1, 'injected script elements: ' + injected.scripts);
    check(injected.imgs.length === 0, 'injected images: ' + JSON.stringify(injected.imgs));
    check(injected.handlers === 0, 'elements with event handler attributes: ' + injected.handlers);
    check(injected.rowText === EVIL_ID, 'the id as text in the list: ' + injected.rowText);
    check(injected.detailId === EVIL_ID, 'the id as text in the detail: ' + injected.detailId);
    check(dialogs.length === 0, 'dialogs opened: ' + JSON.stringify(dialogs));
    await page.keyboard.press('Escape');

    /* 8. screenshots: the overview, and a running job */
    check((await api('DELETE', '/v1/jobs/email/' + encodeURIComponent(EVIL_ID))).status === 200, 'cleanup');
    await waitRows(() => document.querySelectorAll('#jobs-body tr').length === 6, 'the email jobs left');
    await page.waitForFunction(() => document.querySelector(
      '#types-body tr[data-type="email"] td.c-pending .count').textContent === '5');
    await page.mouse.move(0, 0);
    await page.evaluate(() => { document.getElementById('toast').hidden = true; });
    await page.screenshot({ path: path.join(shots, 'dashboard.png') });
    await select('#f-type', 'thumbnail');
    await click(openSel('thumbnail', 'img-2'));
    await page.waitForFunction(() => document.getElementById('detail-data').textContent.includes('progress'));
    await page.mouse.move(0, 0);
    await page.evaluate(() => { document.getElementById('toast').hidden = true; });
    await page.screenshot({ path: path.join(shots, 'dashboard-job.png') });

    /* 9. a finished job runs again, with its data */
    await click(openSel('thumbnail', 'img-1'));
    await page.waitForFunction(() => document.getElementById('detail-id').textContent === 'img-1' &&
      document.getElementById('detail-data').textContent.includes('thumbs/1.jpg'));
    await click('#detail-actions button[data-focus="act:readd"]');
    await page.waitForFunction(() => document.getElementById('detail-facts').textContent.includes('pending'));
    const again = JSON.parse((await api('GET', '/v1/jobs/thumbnail/img-1')).body);
    check(again.state === 'pending' && again.data.thumb === 'thumbs/1.jpg', 'img-1 again: ' + JSON.stringify(again));

    /* 10. "Retry all dead" on a type, with the keyboard: refused without
     * the token (nothing changes), done with it */
    for (let i = 0; i < 2; i++) {
      const j = JSON.parse(cli('accept', 'report', '--timeout', '0'));
      cli('fail', 'report', j.id, j.lock, JSON.stringify({ why: 'test' }));
    }
    const retryAll = '#types-body tr[data-type="report"] button.retry-all';
    await page.waitForFunction(() => {
      const c = document.querySelector('#types-body tr[data-type="report"] td.c-dead .count');
      return c && c.textContent === '2';
    });
    const deadReports = async () => JSON.parse((await api('GET', '/v1/jobs?type=report&state=dead')).body).jobs.length;
    await click('#token-btn');
    await page.waitForSelector('#token-dialog[open]');
    expect401 = true;
    await forgetToken();
    await refusedWithoutToken(async (wait) => {
      await page.focus(retryAll);
      await page.keyboard.press('Enter');
      await page.waitForSelector('#token-dialog[open]', wait);
      await page.waitForFunction(() => /Retry all dead refused/.test(document.getElementById('toast').textContent), wait);
    });
    check(await deadReports() === 2, 'refused without the token: still dead');
    await page.type('#token-input', TOKEN);
    await page.keyboard.press('Enter');
    expect401 = false;
    await page.waitForFunction(() => !document.getElementById('token-dialog').open);
    await page.focus(retryAll);
    await page.keyboard.press('Enter');
    await page.waitForFunction(() => /Retrying 2 dead jobs of report/.test(document.getElementById('toast').textContent));
    check(await deadReports() === 0, 'no dead report left');
    await page.waitForFunction((sel) => !document.querySelector(sel) && document.querySelector(
      '#types-body tr[data-type="report"] td.c-dead .count').textContent === '0', {}, retryAll);

    /* 11. a type's settings, opened and closed with the keyboard */
    await page.focus('#types-body tr[data-type="report"] button.type-settings');
    await page.keyboard.press('Enter');
    await page.waitForFunction(() => /at most 5 running at once; at most 10 accepted per 1 s/
      .test(document.getElementById('settings-facts').textContent));
    const settings = await page.$eval('#settings', (d) => d.innerText);
    check(/Settings of report/.test(settings) && /finished kept for 7 d; dead kept the last 100/.test(settings) &&
      /Timeout\s*30 s/.test(settings), 'the settings of report: ' + settings);
    await page.keyboard.press('Escape');
    await page.waitForFunction(() => document.getElementById('settings').hidden);
    check(await page.evaluate(() => document.activeElement.dataset.focus === 'settings:report'),
      'the focus is back on the settings button');

    /* 12. schedules: the CLI's is listed with its next tick, its name as text */
    const schedRows = () => page.$$eval('#sched-body tr', (trs) => trs.map((tr) => tr.dataset.schedule));
    await page.waitForFunction((n) => [...document.querySelectorAll('#sched-body tr')]
      .some((tr) => tr.dataset.schedule === n), {}, EVIL_SCHED);
    const cliSched = JSON.parse((await api('GET', '/v1/schedules/' + encodeURIComponent(EVIL_SCHED))).body);
    const listed = await page.$eval('#sched-body tr', (tr) => ({
      name: tr.querySelector('td.id').firstChild.textContent,
      text: tr.innerText,
    }));
    check(listed.name === EVIL_SCHED, 'the schedule name as text: ' + listed.name);
    check(listed.text.includes('0 2 * * * (Europe/Paris)') && listed.text.includes(
      new Date(cliSched.next * 1000).toISOString().replace('.000Z', 'Z')) && /never/.test(listed.text),
    'the schedule row: ' + listed.text);
    /* one made now, with the token, with the keyboard */
    await page.focus('#sched-new');
    await page.keyboard.press('Enter');
    await page.waitForFunction(() => !document.getElementById('sched-form').hidden &&
      document.activeElement === document.getElementById('s-name'));
    await page.keyboard.type('nightly "report"');
    await page.select('#s-type', 'report');
    await page.type('#s-cron', '30 3 * * *');
    await page.type('#s-zone', 'Europe/Berlin');
    await page.select('#s-catch', 'last');
    await page.$eval('#s-data', (t) => { t.value = ''; });
    await page.type('#s-data', '{"kind":"nightly"}');
    await page.focus('#s-zone');
    await page.keyboard.press('Enter');
    await page.waitForFunction(() => [...document.querySelectorAll('#sched-body tr')]
      .some((tr) => tr.dataset.schedule === 'nightly "report"'));
    const made = JSON.parse((await api('GET', '/v1/schedules/' + encodeURIComponent('nightly "report"'))).body);
    check(made.cron === '30 3 * * *' && made.zone === 'Europe/Berlin' && made.type === 'report' &&
      made.catch_up === 'last' && made.data.kind === 'nightly' && made.next > Date.now() / 1000,
    'the schedule made: ' + JSON.stringify(made));
    check(await page.evaluate(() => document.getElementById('sched-form').hidden), 'the form closed');
    check(cli('schedule', 'list').includes('nightly "report"\tcron 30 3 * * * Europe/Berlin'), 'the CLI sees it');
    /* a bad cron expression is refused, with the reason, and changes nothing */
    const mine = '#sched-body tr[data-schedule="nightly \\"report\\""] ';
    await page.focus(mine + 'button.sched-edit');
    await page.keyboard.press('Enter');
    await page.waitForFunction(() => !document.getElementById('sched-form').hidden);
    await page.$eval('#s-cron', (i) => { i.value = ''; });
    await page.type('#s-cron', '61 3 * * *');
    expect400 = true;
    await page.keyboard.press('Enter');
    await page.waitForFunction(() => /refused.*minute/.test(document.getElementById('toast').textContent));
    expect400 = false;
    check(JSON.parse((await api('GET', '/v1/schedules/' + encodeURIComponent('nightly "report"'))).body).cron ===
      '30 3 * * *', 'unchanged by the bad cron');
    await page.keyboard.press('Escape');
    await page.waitForFunction(() => document.getElementById('sched-form').hidden);
    /* removed with a confirmation */
    check(await page.evaluate(() => document.activeElement.dataset.focus === 'sched-edit:nightly "report"'),
      'the focus is back on the schedule');
    await page.focus(mine + 'button.sched-rm');
    await page.keyboard.press('Enter');
    await page.waitForSelector(mine + 'button.sched-rm.confirm');
    await page.keyboard.press('Enter');
    await page.waitForFunction(() => document.querySelectorAll('#sched-body tr').length === 1);
    check((await api('GET', '/v1/schedules/' + encodeURIComponent('nightly "report"'))).status === 404, 'removed');
    check(JSON.stringify(await schedRows()) === JSON.stringify([EVIL_SCHED]), 'the CLI\'s stays');
    check(await page.evaluate(() => window.__pwned === undefined &&
      document.scripts.length === 1 && ![...document.querySelectorAll('*')].some((e) =>
        [...e.attributes].some((a) => a.name.startsWith('on')))), 'nothing of the schedules ran');

    /* 13. an idle dashboard asks nothing (it polled the schedules every
     * 5 s): once 1.5 s passed without a request (what the removal above
     * set off is done), none comes for 6.5 s; then a schedule added by
     * another process (the CLI) reaches the page over the overview's
     * stream, with no request for the schedules */
    const asked = [];
    const onRequest = (r) => asked.push({ t: Date.now(), what: r.method() + ' ' + r.url() });
    page.on('request', onRequest);
    const pause = (n) => new Promise((r) => setTimeout(r, n));
    const quietFrom = Date.now();
    for (;;) {
      await pause(250);
      const last = asked.length ? asked[asked.length - 1].t : quietFrom;
      if (Date.now() - last >= 1500) break;
      check(Date.now() - quietFrom < ms(60), 'the page never went quiet: ' + JSON.stringify(asked));
    }
    const idleFrom = asked.length;
    await pause(6500);
    const idle = asked.slice(idleFrom).map((a) => a.what);
    check(idle.length === 0, 'an idle dashboard asked ' + JSON.stringify(idle));
    cli('schedule', 'add', 'pushed', '--every', '1h', '--type', 'report');
    await page.waitForFunction(() => [...document.querySelectorAll('#sched-body tr')]
      .some((tr) => tr.dataset.schedule === 'pushed'));
    const polled = asked.slice(idleFrom).map((a) => a.what).filter((w) => w.includes('/v1/schedules'));
    check(polled.length === 0, 'the schedules were asked for: ' + JSON.stringify(polled));
    page.off('request', onRequest);

    const csps = await page.evaluate(() => window.__csp);
    check(csps.length === 0, 'CSP violations: ' + JSON.stringify(csps));
    check(consoleErrors.length === 0, 'console errors: ' + JSON.stringify(consoleErrors));
    check(dialogs.length === 0, 'dialogs opened: ' + JSON.stringify(dialogs));
  } catch (e) {
    srv.p.kill('SIGKILL');
    if (page) {
      const shot = path.join(scratch, 'failure.png');
      await page.screenshot({ path: shot }).catch(() => {});
      const seen = await page.evaluate(() => ({
        toast: document.getElementById('toast').textContent,
        detail: document.getElementById('detail').innerText,
      })).catch(() => ({}));
      e.message += ' at ' + ((Date.now() - T0) / 1000).toFixed(1) + ' (page: ' + JSON.stringify(seen) + '; console errors: ' +
        JSON.stringify(consoleErrors) + '; failed requests: ' + JSON.stringify(failed) + '; screenshot: ' + shot + ')';
    }
    throw e;
  } finally {
    await browser.close();
  }
  await stop(srv);
  fs.rmSync(scratch, { recursive: true, force: true });
}

const t0 = Date.now();
main().then(() => {
  console.log('ok   dashboard (' + ((Date.now() - t0) / 1000).toFixed(1) + 's)');
  console.log('1 passed, 0 failed');
}, (e) => {
  console.error(e && e.stack ? e.stack : e);
  console.log('FAIL dashboard: ' + (e && e.message));
  process.exit(1);
});
