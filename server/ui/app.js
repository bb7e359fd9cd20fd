/*
 * The couchjobs dashboard. Plain JavaScript, no build step, no other origin.
 *
 * Job data is shown as text only: every node is built with textContent or
 * createTextNode, never from HTML, so nothing a job holds can run as script.
 *
 * Live updates come as Server-Sent Events read with fetch() (EventSource
 * cannot send the Authorization header): /ui/events for the types and the
 * job list, /v1/jobs/{type}/{id}/events for the open job. The overview
 * carries the schedules too (a schedule changed elsewhere sends a new
 * one), so nothing is polled: an idle dashboard makes no request. The open
 * type's settings are read again on each overview.
 */
'use strict';

(function () {
  const PAGE = 20;
  const TOKEN_KEY = 'couchjobs.token';
  const BASE_STATES = ['pending', 'scheduled', 'running', 'finished'];
  const RATE_WINDOW = 300; /* seconds of finished counts behind the throughput */

  const $ = (id) => document.getElementById(id);

  /* ---- DOM helpers: text only ---------------------------------------- */

  function el(tag, props, ...kids) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(props || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k === 'className') e.className = v;
      else if (k === 'text') e.textContent = v;
      else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
      else e.setAttribute(k, v === true ? '' : String(v));
    }
    for (const kid of kids) {
      if (kid === null || kid === undefined || kid === false) continue;
      e.appendChild(typeof kid === 'string' || typeof kid === 'number'
        ? document.createTextNode(String(kid)) : kid);
    }
    return e;
  }

  function clear(node) {
    while (node.firstChild) node.removeChild(node.firstChild);
  }

  /* A function that runs `run` once at a time: a call while a run is in
   * flight runs it again after (so what a caller just changed is read),
   * and returns the promise of the runs. */
  function coalesced(run) {
    let inFlight = null;
    let again = false;
    return function go() {
      if (inFlight) { again = true; return inFlight; }
      inFlight = (async () => {
        do {
          again = false;
          await run();
        } while (again);
        inFlight = null;
      })();
      return inFlight;
    };
  }

  /* A danger button that asks "Confirm LABEL" on the first press and calls
   * onConfirm on the second; leaving it cancels. */
  function confirmButton(label, props, onConfirm) {
    const b = el('button', Object.assign({ type: 'button', className: 'danger' }, props), label);
    b.addEventListener('click', () => {
      if (!b.classList.contains('confirm')) {
        b.classList.add('confirm');
        b.textContent = 'Confirm ' + label.toLowerCase();
        return;
      }
      onConfirm();
    });
    b.addEventListener('blur', () => { b.classList.remove('confirm'); b.textContent = label; });
    return b;
  }

  /* Brings the rows of `body` to `rows` ([{key, sig, build}]), replacing
   * only those whose signature changed: a live update does not rebuild
   * the row under the pointer, so a click in progress is not lost. The
   * focused control is focused again if its row was rebuilt. */
  function patchRows(body, rows) {
    const keep = document.activeElement && document.activeElement.dataset
      ? document.activeElement.dataset.focus : null;
    const old = new Map([...body.children].map((tr) => [tr.dataset.key, tr]));
    rows.forEach((r, i) => {
      let tr = old.get(r.key);
      old.delete(r.key);
      if (!tr || tr.dataset.sig !== r.sig) {
        const fresh = r.build();
        fresh.dataset.key = r.key;
        fresh.dataset.sig = r.sig;
        if (tr) tr.replaceWith(fresh);
        tr = fresh;
      }
      if (body.children[i] !== tr) body.insertBefore(tr, body.children[i] || null);
    });
    for (const tr of old.values()) tr.remove();
    if (keep && (!document.activeElement || document.activeElement === document.body)) focusKey(keep);
  }

  let toastTimer = null;
  function toast(msg, isError) {
    const t = $('toast');
    t.textContent = msg;
    t.className = 'toast' + (isError ? ' error' : '');
    t.hidden = false;
    clearTimeout(toastTimer);
    toastTimer = setTimeout(() => { t.hidden = true; }, isError ? 6000 : 3000);
  }

  /* ---- time ---------------------------------------------------------- */

  let clockSkew = 0; /* server seconds minus ours */
  const serverNow = () => Date.now() / 1000 + clockSkew;

  function span(seconds) {
    const s = Math.abs(Math.round(seconds));
    if (s < 60) return s + ' s';
    if (s < 3600) return Math.round(s / 60) + ' min';
    if (s < 86400 * 2) return (s / 3600).toFixed(s < 36000 ? 1 : 0) + ' h';
    return Math.round(s / 86400) + ' d';
  }

  function when(t) {
    if (!t || t <= serverNow()) return 'now';
    return 'in ' + span(t - serverNow());
  }

  const iso = (t) => new Date(t * 1000).toISOString().replace('.000Z', 'Z');

  /* A duration in milliseconds, for settings. */
  const spanMs = (ms) => (ms < 1000 ? ms + ' ms' : span(ms / 1000));

  /* ---- the token and requests ---------------------------------------- */

  let token = sessionStorage.getItem(TOKEN_KEY) || '';
  let tokenWaiters = [];

  function headers(extra) {
    const h = Object.assign({}, extra);
    if (token) h.Authorization = 'Bearer ' + token;
    return h;
  }

  function askToken() {
    const d = $('token-dialog');
    if (d.open) return;
    $('token-input').value = '';
    d.showModal();
    $('token-input').focus();
  }

  function tokenChanged() {
    const w = tokenWaiters;
    tokenWaiters = [];
    w.forEach((f) => f());
  }

  const untilToken = () => new Promise((resolve) => tokenWaiters.push(resolve));

  class ApiError extends Error {
    constructor(status, body) {
      super((body && (body.detail || body.message)) || ('HTTP ' + status));
      this.status = status;
    }
  }

  async function api(method, path, body) {
    const init = { method, headers: headers(body ? { 'Content-Type': 'application/json' } : {}) };
    if (body) init.body = JSON.stringify(body);
    const r = await fetch(path, init);
    const text = await r.text();
    let parsed = null;
    try { parsed = text ? JSON.parse(text) : null; } catch (e) { parsed = null; }
    if (r.status === 401) {
      needToken = true;
      showLive();
      askToken();
    }
    if (!r.ok) throw new ApiError(r.status, parsed);
    if (needToken) {
      needToken = false;
      showLive();
    }
    return parsed;
  }

  const seg = (s) => encodeURIComponent(s);
  const jobPath = (type, id) => '/v1/jobs/' + seg(type) + '/' + seg(id);

  /* ---- Server-Sent Events over fetch ---------------------------------- */

  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

  /* Reads `path` as an event stream, reconnecting with Last-Event-ID.
   * h.event(name, data); h.status(state); h.ended() true: do not reconnect. */
  function stream(path, h) {
    let closed = false;
    let ctrl = null;
    let lastId = null;
    let backoff = 500;
    (async function run() {
      while (!closed) {
        ctrl = new AbortController();
        try {
          const hd = headers({ Accept: 'text/event-stream' });
          if (lastId) hd['Last-Event-ID'] = lastId;
          const r = await fetch(path, { headers: hd, signal: ctrl.signal, cache: 'no-store' });
          if (r.status === 401) {
            if (h.status) h.status('auth');
            askToken();
            await untilToken();
            continue;
          }
          if (!r.ok) throw new Error('HTTP ' + r.status);
          if (h.status) h.status('live');
          backoff = 500;
          const reader = r.body.pipeThrough(new TextDecoderStream()).getReader();
          let buf = '';
          for (;;) {
            const { value, done } = await reader.read();
            if (done) break;
            buf += value;
            let i;
            while ((i = buf.indexOf('\n\n')) >= 0) {
              const block = buf.slice(0, i);
              buf = buf.slice(i + 2);
              let name = 'message';
              let data = null;
              for (const line of block.split('\n')) {
                if (line.startsWith(':')) continue;
                const c = line.indexOf(':');
                const k = c < 0 ? line : line.slice(0, c);
                const v = c < 0 ? '' : line.slice(c + 1).replace(/^ /, '');
                if (k === 'id') lastId = v;
                else if (k === 'event') name = v;
                else if (k === 'data') data = data === null ? v : data + '\n' + v;
              }
              if (data !== null) h.event(name, JSON.parse(data));
            }
          }
          if (h.ended && h.ended()) return;
        } catch (e) {
          if (closed) return;
        }
        if (h.status) h.status('down');
        await sleep(backoff);
        backoff = Math.min(backoff * 2, 15000);
      }
    })();
    return { close() { closed = true; if (ctrl) ctrl.abort(); } };
  }

  /* The indicator: the overview stream's state, or a refused token. */
  let liveState = 'down';
  let needToken = false;
  function showLive() {
    const s = needToken ? 'auth' : liveState;
    $('live').dataset.state = s;
    $('live-text').textContent = s === 'live' ? 'live' : s === 'auth' ? 'token needed' : 'reconnecting';
  }

  /* ---- types --------------------------------------------------------- */

  let types = [];          /* the last overview's types */
  let extraStates = [];    /* states beyond the four known ones (dead, ...) */
  const history = new Map(); /* type -> [[time, finished], ...] */
  let editing = null;      /* the type whose timeout is being edited */
  let editValue = '';      /* what its field holds */

  /* The age of the oldest pending job, when the server gives it. */
  const oldestAge = (t) => (typeof t.oldest_pending_age === 'number' ? t.oldest_pending_age : null);

  function throughput(type) {
    const h = history.get(type);
    if (!h || h.length < 2) return null;
    const [t0, f0] = h[0];
    const [, f1] = h[h.length - 1];
    const dt = serverNow() - t0;
    return dt >= 1 ? ((f1 - f0) / dt) * 60 : null;
  }

  function remember(time) {
    for (const t of types) {
      const f = t.counts.finished || 0;
      let h = history.get(t.type);
      if (!h || (h.length && f < h[h.length - 1][1])) h = []; /* re-added or removed: restart */
      h.push([time, f]);
      while (h.length > 2 && h[1][0] <= time - RATE_WINDOW) h.shift();
      history.set(t.type, h);
    }
  }

  function onOverview(o) {
    clockSkew = o.time - Date.now() / 1000;
    types = o.types;
    const seen = new Set(BASE_STATES);
    extraStates = [];
    for (const t of types)
      for (const k of Object.keys(t.counts))
        if (!seen.has(k)) { seen.add(k); extraStates.push(k); }
    remember(o.time);
    renderTypes();
    renderFilters();
    loadJobs();
    rewatchEnded();
    if (Array.isArray(o.schedules)) {
      schedules = o.schedules;
      renderSchedules();
    }
    if (settingsOf !== null) loadSettings(settingsOf);
  }

  function renderTypes() {
    const showAge = types.some((t) => oldestAge(t) !== null);
    const states = BASE_STATES.concat(extraStates);
    const head = $('types-head');
    const hsig = JSON.stringify([states, showAge]);
    if (head.dataset.sig !== hsig) {
      head.dataset.sig = hsig;
      clear(head);
      head.appendChild(el('th', { scope: 'col' }, 'Type'));
      head.appendChild(el('th', { scope: 'col' }, 'Timeout'));
      for (const s of states) head.appendChild(el('th', { scope: 'col', className: 'num' }, s));
      if (showAge) head.appendChild(el('th', { scope: 'col', className: 'num' }, 'Oldest pending'));
      head.appendChild(el('th', { scope: 'col', className: 'num', title: 'finished jobs per minute, over the last 5 minutes' }, 'Finished / min'));
    }
    let total = 0;
    for (const t of types)
      for (const s of states) total += t.counts[s] || 0;
    patchRows($('types-body'), types.map((t) => {
      const rate = throughput(t.type);
      const rateText = rate === null ? '—' : rate.toFixed(rate < 10 ? 1 : 0);
      const age = oldestAge(t);
      const ageText = age === null ? '—' : span(age);
      return {
        key: t.type,
        sig: JSON.stringify([t, states, showAge, rateText, ageText, editing === t.type]),
        build: () => typeRow(t, states, showAge, rateText, ageText),
      };
    }));
    $('types-empty').hidden = types.length > 0;
    $('types').hidden = types.length === 0;
    $('types-meta').textContent = types.length
      ? types.length + (types.length === 1 ? ' type, ' : ' types, ') + total.toLocaleString('en') + ' jobs'
      : '';
  }

  function typeRow(t, states, showAge, rateText, ageText) {
    const tr = el('tr', { 'data-type': t.type });
    tr.appendChild(el('td', {}, el('button', {
      type: 'button', className: 'link', 'data-focus': 'type:' + t.type,
      title: 'Show the jobs of this type',
      onclick: () => { $('f-type').value = t.type; filtersChanged(); },
    }, t.type), ' ', el('button', {
      type: 'button', className: 'ghost type-settings', 'data-focus': 'settings:' + t.type,
      'aria-label': 'Settings of ' + t.type, title: 'Timeout, retry policy, limits and retention',
      onclick: () => openSettings(t.type),
    }, 'Settings')));
    tr.appendChild(timeoutCell(t));
    for (const s of states) {
      const n = t.counts[s] || 0;
      const td = el('td', { className: 'num c-' + s + (n ? '' : ' zero') },
        el('span', { className: 'count' }, n.toLocaleString('en')));
      if (s === 'dead' && n)
        td.prepend(el('button', {
          type: 'button', className: 'ghost retry-all', 'data-focus': 'retry-dead:' + t.type,
          'aria-label': 'Retry all dead jobs of ' + t.type,
          title: 'Make every dead job of this type pending again',
          onclick: () => retryDead(t.type),
        }, 'Retry all'));
      tr.appendChild(td);
    }
    if (showAge)
      tr.appendChild(el('td', { className: 'num' + (ageText === '—' ? ' zero' : '') }, ageText));
    tr.appendChild(el('td', { className: 'num' + (rateText === '—' || Number(rateText) === 0 ? ' zero' : '') }, rateText));
    return tr;
  }

  function timeoutCell(t) {
    const td = el('td', {});
    const box = el('div', { className: 'timeout' });
    td.appendChild(box);
    if (editing === t.type) {
      const input = el('input', {
        type: 'number', min: 1, step: 1, value: editValue, 'aria-label': 'Timeout of ' + t.type + ' in seconds',
        'data-focus': 'timeout-input:' + t.type,
      });
      const save = () => setTimeoutOf(t.type, input.value);
      const cancel = () => { editing = null; renderTypes(); focusKey('timeout:' + t.type); };
      input.addEventListener('input', () => { editValue = input.value; });
      input.addEventListener('keydown', (e) => {
        if (e.key === 'Enter') { e.preventDefault(); save(); }
        if (e.key === 'Escape') { e.preventDefault(); e.stopPropagation(); cancel(); }
      });
      box.append(input, el('span', { className: 'muted' }, 's'),
        el('button', { type: 'button', className: 'primary', onclick: save }, 'Save'),
        el('button', { type: 'button', className: 'ghost', onclick: cancel }, 'Cancel'));
    } else {
      box.append(el('span', {}, t.timeout ? span(t.timeout) : 'none'),
        el('button', {
          type: 'button', className: 'ghost', 'data-focus': 'timeout:' + t.type,
          'aria-label': 'Set the timeout of ' + t.type,
          onclick: () => {
            editing = t.type;
            editValue = t.timeout ? String(t.timeout) : '';
            renderTypes();
            focusKey('timeout-input:' + t.type);
          },
        }, 'Set'));
    }
    return td;
  }

  function focusKey(key) {
    const f = document.querySelector('[data-focus="' + CSS.escape(key) + '"]');
    if (f) f.focus();
  }

  async function setTimeoutOf(type, value) {
    const n = Number(value);
    if (!Number.isInteger(n) || n < 1) {
      toast('The timeout is whole seconds, at least 1.', true);
      return;
    }
    try {
      await api('PUT', '/v1/types/' + seg(type), { timeout: n });
      editing = null;
      const t = types.find((x) => x.type === type);
      if (t) t.timeout = n;
      renderTypes();
      focusKey('timeout:' + type);
      toast('Timeout of ' + type + ' set to ' + span(n) + '.');
    } catch (e) {
      toast('Could not set the timeout: ' + e.message, true);
    }
  }

  /* Redrives every dead job of the type (their attempts reset). */
  async function retryDead(type) {
    try {
      const r = await api('POST', '/v1/types/' + seg(type) + '/retry', { keep_attempts: false });
      toast('Retrying ' + r.retried.toLocaleString('en') + ' dead ' +
        (r.retried === 1 ? 'job' : 'jobs') + ' of ' + type + '.');
      loadJobs();
    } catch (e) {
      toast('Retry all dead refused: ' + e.message, true);
    }
  }

  /* ---- a type's settings ---------------------------------------------- */

  let settingsOf = null; /* the type whose settings are shown */

  function policyText(p) {
    if (!p) return 'none: a failed attempt makes the job dead at once';
    return (p.max_attempts ? p.max_attempts + ' attempts' : 'attempts without end') +
      ', backoff ' + span(p.backoff_min) + ' to ' + span(p.backoff_max) +
      ' (×' + p.multiplier + ', ' + p.jitter + ' jitter)';
  }

  function limitsText(l) {
    const parts = [];
    if (l && l.max_running) parts.push('at most ' + l.max_running + ' running at once');
    if (l && l.rate) parts.push('at most ' + l.rate + ' accepted per ' + spanMs(l.rate_period_ms));
    return parts.length ? parts.join('; ') : 'none';
  }

  function retentionText(k) {
    if (!k) return 'none: finished and dead jobs are kept until removed';
    const side = (name, keepMs, keepMax) => {
      const p = [];
      if (keepMs !== null) p.push('for ' + spanMs(keepMs));
      if (keepMax !== null) p.push('the last ' + keepMax.toLocaleString('en'));
      return name + (p.length ? ' kept ' + p.join(', at most ') : ' kept');
    };
    return side('finished', k.keep_ms, k.keep_max) + '; ' + side('dead', k.dead_keep_ms, k.dead_keep_max);
  }

  function openSettings(type) {
    settingsOf = type;
    $('settings').hidden = false;
    $('settings-h').textContent = 'Settings of ' + type;
    clear($('settings-facts'));
    loadSettings(type).then(() => $('settings-h').focus());
  }

  function closeSettings() {
    if (settingsOf === null) return;
    const type = settingsOf;
    settingsOf = null;
    $('settings').hidden = true;
    focusKey('settings:' + type);
  }

  /* Reads the type's whole configuration (GET /v1/types/{type}; without a
   * timeout, its limits and retention alone). */
  async function loadSettings(type) {
    let t;
    try {
      t = await api('GET', '/v1/types/' + seg(type));
    } catch (e) {
      if (e.status !== 404) {
        if (e.status !== 401) toast('Could not read the settings: ' + e.message, true);
        return;
      }
      try {
        const [l, k] = await Promise.all([api('GET', '/v1/types/' + seg(type) + '/limits'),
          api('GET', '/v1/types/' + seg(type) + '/retention')]);
        t = { type, timeout: null, retry_policy: undefined, limits: l.limits, retention: k.retention };
      } catch (e2) {
        return;
      }
    }
    if (settingsOf !== type) return;
    const dl = $('settings-facts');
    clear(dl);
    fact(dl, 'Timeout', t.timeout ? span(t.timeout) + ' (' + t.timeout + ' s)' : 'none: jobs cannot be added');
    fact(dl, 'Retry policy', t.retry_policy === undefined ? '—' : policyText(t.retry_policy));
    fact(dl, 'Limits', limitsText(t.limits));
    fact(dl, 'Retention', retentionText(t.retention));
  }

  /* ---- schedules ------------------------------------------------------ */

  let schedules = [];
  let schedEditing = null; /* the name being edited, '' for a new one, null: no form */

  const loadSchedules = coalesced(async () => {
    try {
      schedules = (await api('GET', '/v1/schedules')).schedules;
      renderSchedules();
    } catch (e) {
      if (e.status !== 401) toast('Could not list the schedules: ' + e.message, true);
    }
  });

  function specText(s) {
    if (s.cron) return s.cron + (s.zone ? ' (' + s.zone + ')' : ' (UTC)');
    return 'every ' + span(s.every_s) + (s.anchor ? ' from ' + iso(s.anchor) : '');
  }

  function renderSchedules() {
    patchRows($('sched-body'), schedules.map((s) => ({
      key: s.name,
      sig: JSON.stringify([s, when(s.next)]),
      build: () => schedRow(s),
    })));
    $('sched-empty').hidden = schedules.length > 0;
    $('sched-table').hidden = schedules.length === 0;
    $('sched-meta').textContent = schedules.length
      ? schedules.length + (schedules.length === 1 ? ' schedule' : ' schedules') : '';
  }

  function schedRow(s) {
    const tr = el('tr', { 'data-schedule': s.name });
    tr.appendChild(el('td', { className: 'id' }, s.name,
      s.disabled ? el('span', { className: 'off' }, 'disabled') : null));
    tr.appendChild(el('td', { className: 'spec' }, specText(s)));
    tr.appendChild(el('td', {}, s.type));
    tr.appendChild(el('td', { className: 'next', title: s.next ? iso(s.next) : '' },
      s.next ? iso(s.next) + ' (' + when(s.next) + ')' : 'none'));
    tr.appendChild(el('td', { className: 'fired' }, s.fired ? iso(s.fired) : 'never'));
    tr.appendChild(el('td', {}, s.catch_up === 'last' ? 'last missed tick' : 'skip'));
    const rm = confirmButton('Remove', {
      className: 'danger sched-rm', 'data-focus': 'sched-rm:' + s.name,
      'aria-label': 'Remove schedule ' + s.name,
    }, () => removeSchedule(s.name));
    tr.appendChild(el('td', { className: 'acts' }, el('button', {
      type: 'button', className: 'ghost sched-edit', 'data-focus': 'sched-edit:' + s.name,
      'aria-label': 'Edit schedule ' + s.name, onclick: () => editSchedule(s),
    }, 'Edit'), rm));
    return tr;
  }

  /* Opens the form for a new schedule (s undefined) or to edit s. */
  function editSchedule(s) {
    schedEditing = s ? s.name : '';
    setOptions($('s-type'), '', types.map((t) => t.type).concat(s && !types.some((t) => t.type === s.type) ? [s.type] : []));
    $('s-type').options[0].textContent = 'choose a type';
    $('sched-form-h').textContent = s ? 'Edit schedule ' + s.name : 'New schedule';
    $('s-name').value = s ? s.name : '';
    $('s-name').readOnly = !!s;
    $('s-type').value = s ? s.type : (types[0] ? types[0].type : '');
    $('s-cron').value = s && s.cron ? s.cron : '';
    $('s-zone').value = s && s.zone ? s.zone : '';
    $('s-every').value = s && s.every_s ? String(s.every_s) : '';
    $('s-catch').value = s ? s.catch_up : 'skip';
    $('s-data').value = s ? JSON.stringify(s.data) : '{}';
    $('s-disabled').checked = !!(s && s.disabled);
    $('sched-form').hidden = false;
    (s ? $('s-cron') : $('s-name')).focus();
  }

  function closeScheduleForm() {
    const name = schedEditing;
    schedEditing = null;
    $('sched-form').hidden = true;
    if (name) focusKey('sched-edit:' + name); else $('sched-new').focus();
  }

  async function saveSchedule() {
    const name = $('s-name').value;
    let data;
    try {
      data = JSON.parse($('s-data').value || '{}');
    } catch (e) {
      toast('The data is not valid JSON: ' + e.message, true);
      $('s-data').focus();
      return;
    }
    const body = { type: $('s-type').value, data, catch_up: $('s-catch').value, disabled: $('s-disabled').checked };
    const cron = $('s-cron').value.trim();
    const every = $('s-every').value.trim();
    if (!name) { toast('Give the schedule a name.', true); $('s-name').focus(); return; }
    if (!!cron === !!every) { toast('Give a cron expression or an interval, one of them.', true); $('s-cron').focus(); return; }
    if (cron) {
      body.cron = cron;
      if ($('s-zone').value.trim()) body.zone = $('s-zone').value.trim();
    } else {
      body.every_s = Number(every);
    }
    try {
      const s = await api('PUT', '/v1/schedules/' + seg(name), body);
      toast('Schedule ' + name + ' saved; next tick ' + (s.next ? iso(s.next) : 'none') + '.');
      closeScheduleForm();
      await loadSchedules();
      focusKey('sched-edit:' + name);
    } catch (e) {
      toast('Saving the schedule refused: ' + e.message, true);
    }
  }

  async function removeSchedule(name) {
    try {
      await api('DELETE', '/v1/schedules/' + seg(name));
      toast('Removed schedule ' + name + '.');
      await loadSchedules();
      $('sched-h').focus();
    } catch (e) {
      toast('Removing the schedule refused: ' + e.message, true);
    }
  }

  /* ---- filters and the job list --------------------------------------- */

  let cursors = [null]; /* cursors[i]: where page i starts */
  let page = 0;
  let nextCursor = null;
  let selected = null; /* {type, id} of the open job */

  /* Gives a <select> the choices `values` after `allLabel` (value ""),
   * keeping the chosen one (added if it is no longer among them). */
  function setOptions(sel, allLabel, values) {
    const chosen = sel.value;
    const vals = chosen && !values.includes(chosen) ? values.concat([chosen]) : values;
    if ([...sel.options].map((o) => o.value).join('\n') === [''].concat(vals).join('\n')) return;
    clear(sel);
    sel.appendChild(el('option', { value: '' }, allLabel));
    for (const v of vals) sel.appendChild(el('option', { value: v }, v));
    sel.value = chosen;
  }

  function renderFilters() {
    setOptions($('f-type'), 'all types', types.map((t) => t.type));
    setOptions($('f-state'), 'any state', ['pending', 'running', 'finished'].concat(extraStates));
  }

  function filtersChanged() {
    cursors = [null];
    page = 0;
    loadJobs();
  }

  /* Loads the current page; a call while one is in flight loads again after. */
  const loadJobs = coalesced(async () => {
    const q = new URLSearchParams({ limit: String(PAGE) });
    if ($('f-type').value) q.set('type', $('f-type').value);
    if ($('f-state').value) q.set('state', $('f-state').value);
    if (cursors[page]) q.set('cursor', cursors[page]);
    try {
      const r = await api('GET', '/v1/jobs?' + q.toString());
      if (r.jobs.length === 0 && page > 0) { page--; loadJobs(); return; }
      nextCursor = r.next;
      renderJobs(r.jobs);
    } catch (e) {
      if (e.status !== 401) toast('Could not list the jobs: ' + e.message, true);
    }
  });

  function preview(data) {
    const s = JSON.stringify(data);
    return s.length > 120 ? s.slice(0, 119) + '…' : s;
  }

  function badge(job) {
    const state = job.state === 'pending' && job.sched_time > serverNow() ? 'scheduled' : job.state;
    return el('span', { className: 'badge ' + state }, state);
  }

  function renderJobs(jobs) {
    patchRows($('jobs-body'), jobs.map((j) => {
      const isSel = !!(selected && selected.type === j.type && selected.id === j.id);
      return {
        key: JSON.stringify([j.type, j.id]),
        sig: JSON.stringify([j, isSel, when(j.sched_time)]),
        build: () => jobRow(j, isSel),
      };
    }));
    $('jobs-empty').hidden = jobs.length > 0;
    $('jobs-table').hidden = jobs.length === 0;
    $('prev').disabled = page === 0;
    $('next').disabled = !nextCursor;
    $('page-info').textContent = jobs.length ? 'page ' + (page + 1) : '';
  }

  function jobRow(j, isSel) {
    const key = 'job:' + JSON.stringify([j.type, j.id]);
    const tr = el('tr', { className: isSel ? 'selected' : '', 'data-job': JSON.stringify([j.type, j.id]) });
    tr.appendChild(el('td', { className: 'id' }, el('button', {
      type: 'button', className: 'link job-open', 'data-focus': key, title: j.id,
      'aria-label': 'Open job ' + j.id,
      onclick: () => openJob(j.type, j.id),
    }, j.id)));
    tr.appendChild(el('td', {}, j.type));
    tr.appendChild(el('td', {}, badge(j), j.resubmit ? el('span', { className: 'flag', title: 'runs again when its processor finishes' }, 'again') : null));
    tr.appendChild(el('td', { title: j.sched_time ? iso(j.sched_time) : '' },
      j.state === 'pending' ? when(j.sched_time) : '—'));
    tr.appendChild(el('td', { className: 'preview' }, preview(j.data)));
    return tr;
  }

  /* ---- one job -------------------------------------------------------- */

  let jobStream = null;
  let job = null; /* the open job as last read */
  const KNOWN = new Set(['type', 'id', 'state', 'sched_time', 'resubmit', 'data', 'errors']);

  function openJob(type, id) {
    if (jobStream) jobStream.close();
    selected = { type, id, opener: 'job:' + JSON.stringify([type, id]) };
    job = null;
    $('detail').hidden = false;
    $('detail').parentElement.classList.add('open');
    $('detail-id').textContent = id;
    clear($('detail-facts'));
    clear($('detail-actions'));
    $('detail-data').textContent = '';
    $('detail-errors').hidden = true;
    for (const tr of document.querySelectorAll('#jobs-body tr'))
      tr.classList.toggle('selected', tr.dataset.job === JSON.stringify([type, id]));
    $('detail-h').focus();
    watchJob(type, id);
  }

  /* Reads the open job and follows its event stream. The stream ends
   * when the job finishes or is removed; a finished job that runs again
   * (re-added by anyone) is noticed at the next overview and followed
   * again. jobEnded: false, 'finished' or 'removed'. */
  let jobEnded = false;
  function watchJob(type, id) {
    if (jobStream) jobStream.close();
    jobEnded = false;
    api('GET', jobPath(type, id)).then(showJob, (e) => {
      if (e.status === 404) {
        jobEnded = 'removed';
        showGone('removed');
      }
      else toast('Could not read the job: ' + e.message, true);
    });
    const mine = () => selected && selected.type === type && selected.id === id;
    jobStream = stream(jobPath(type, id) + '/events', {
      event: (name, ev) => {
        if (!mine()) return;
        if (ev.state === 'removed') { jobEnded = 'removed'; showGone('removed'); return; }
        if (ev.state === 'finished') jobEnded = 'finished';
        /* the event has state and data; the rest is read again */
        api('GET', jobPath(type, id)).then(showJob, () => {});
      },
      ended: () => !!jobEnded,
    });
  }

  function rewatchEnded() {
    if (!selected || jobEnded !== 'finished') return;
    const { type, id } = selected;
    api('GET', jobPath(type, id)).then((j) => {
      if (j.state !== 'finished' && selected && selected.type === type && selected.id === id) watchJob(type, id);
      else showJob(j);
    }, () => {});
  }

  function closeJob() {
    if (!selected) return;
    const opener = selected.opener;
    if (jobStream) jobStream.close();
    jobStream = null;
    selected = null;
    job = null;
    $('detail').hidden = true;
    $('detail').parentElement.classList.remove('open');
    for (const tr of document.querySelectorAll('#jobs-body tr.selected')) tr.classList.remove('selected');
    const f = document.querySelector('[data-focus="' + CSS.escape(opener) + '"]');
    if (f) f.focus(); else $('jobs-h').focus();
  }

  function fact(dl, name, ...value) {
    dl.appendChild(el('dt', {}, name));
    dl.appendChild(el('dd', {}, ...value));
  }

  function showJob(j) {
    if (!selected || selected.type !== j.type || selected.id !== j.id) return;
    job = j;
    const dl = $('detail-facts');
    clear(dl);
    fact(dl, 'Type', j.type);
    fact(dl, 'State', badge(j), j.resubmit ? el('span', { className: 'flag' }, 'runs again when finished') : null);
    fact(dl, 'Scheduled', j.sched_time ? iso(j.sched_time) + (j.state === 'pending' ? ' (' + when(j.sched_time) + ')' : '') : 'none');
    /* fields of later servers (attempts, times...) as they come */
    for (const [k, v] of Object.entries(j)) {
      if (KNOWN.has(k) || v === null || typeof v === 'object') continue;
      fact(dl, k.replace(/_/g, ' '), String(v));
    }
    const errs = Array.isArray(j.errors) ? j.errors : [];
    $('detail-errors').hidden = errs.length === 0;
    const ol = $('detail-errors-list');
    clear(ol);
    for (const e of errs) ol.appendChild(el('li', {}, el('pre', {}, JSON.stringify(e, null, 2))));
    $('detail-data').textContent = JSON.stringify(j.data, null, 2);
    renderActions(j);
  }

  function showGone(state) {
    if (!selected) return;
    const dl = $('detail-facts');
    clear(dl);
    fact(dl, 'Type', selected.type);
    fact(dl, 'State', el('span', { className: 'badge' }, state));
    clear($('detail-actions'));
    $('detail-data').textContent = '';
  }

  function renderActions(j) {
    const box = $('detail-actions');
    const hadFocus = box.contains(document.activeElement) ? document.activeElement.dataset.focus : null;
    clear(box);
    const path = jobPath(j.type, j.id);
    const act = async (what, method, p, body, done) => {
      try {
        await api(method, p, body);
        toast(done);
        loadJobs();
        if (method !== 'DELETE' && selected && selected.type === j.type && selected.id === j.id)
          watchJob(j.type, j.id);
      } catch (e) {
        toast(what + ' refused: ' + e.message, true);
      }
    };
    if (j.state === 'dead')
      box.appendChild(el('button', {
        type: 'button', className: 'primary', 'data-focus': 'act:retry',
        onclick: () => act('Retry', 'POST', path + '/retry', {}, 'Retrying ' + j.id + '.'),
      }, 'Retry'));
    box.appendChild(el('button', {
      type: 'button', 'data-focus': 'act:readd',
      title: j.state === 'running' ? 'Runs again once its processor finishes' : 'Make it pending again with its data',
      onclick: () => act('Re-add', 'PUT', path, { data: j.data }, 'Added ' + j.id + ' again.'),
    }, j.state === 'pending' ? 'Re-add' : 'Run again'));
    box.appendChild(confirmButton('Remove', { 'data-focus': 'act:remove' },
      () => act('Remove', 'DELETE', path, null, 'Removed ' + j.id + '.')));
    if (hadFocus) focusKey(hadFocus);
  }

  /* ---- wiring --------------------------------------------------------- */

  function start() {
    $('f-type').addEventListener('change', filtersChanged);
    $('f-state').addEventListener('change', filtersChanged);
    $('filters').addEventListener('submit', (e) => e.preventDefault());
    $('prev').addEventListener('click', () => { if (page > 0) { page--; loadJobs(); } });
    $('next').addEventListener('click', () => {
      if (!nextCursor) return;
      cursors[page + 1] = nextCursor;
      page++;
      loadJobs();
    });
    $('detail-close').addEventListener('click', closeJob);
    document.addEventListener('keydown', (e) => {
      if (e.key !== 'Escape' || $('token-dialog').open) return;
      /* the panel that holds the focus closes first */
      const inside = (id) => $(id).contains(document.activeElement);
      if (schedEditing !== null && inside('sched-form')) closeScheduleForm();
      else if (settingsOf !== null && inside('settings')) closeSettings();
      else if (selected) closeJob();
      else if (settingsOf !== null) closeSettings();
    });
    $('settings-close').addEventListener('click', closeSettings);
    $('sched-new').addEventListener('click', () => editSchedule());
    $('s-cancel').addEventListener('click', closeScheduleForm);
    $('sched-form').addEventListener('submit', (e) => { e.preventDefault(); saveSchedule(); });

    $('token-btn').addEventListener('click', askToken);
    $('token-form').addEventListener('submit', (e) => {
      e.preventDefault();
      token = $('token-input').value.trim();
      if (token) sessionStorage.setItem(TOKEN_KEY, token);
      else sessionStorage.removeItem(TOKEN_KEY);
      $('token-dialog').close();
      needToken = false;
      showLive();
      tokenChanged();
      loadJobs();
      loadSchedules();
    });
    $('token-cancel').addEventListener('click', () => $('token-dialog').close());
    /* Escape closes it even when the browser holds back its own close
     * (a dialog opened by a refused request, not by the user's gesture) */
    $('token-dialog').addEventListener('keydown', (e) => {
      if (e.key !== 'Escape') return;
      e.preventDefault();
      e.stopPropagation();
      $('token-dialog').close();
    });
    $('token-forget').addEventListener('click', () => {
      token = '';
      sessionStorage.removeItem(TOKEN_KEY);
      $('token-dialog').close();
      toast('Token forgotten.');
    });

    /* ages and rates move on without events */
    setInterval(() => { if (types.length && !editing) renderTypes(); }, 5000);
    stream('/ui/events', {
      event: (name, data) => { if (name === 'types') onOverview(data); },
      status: (s) => {
        liveState = s;
        if (s === 'live') needToken = false;
        showLive();
      },
    });
  }

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', start);
  else start();
})();
