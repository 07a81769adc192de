// The live status page of `cascade run`: polls /status and draws it. Plain DOM, no framework,
// nothing fetched from anywhere else, so it works offline. Every string from the document may be
// vendor data, so it only ever reaches the page through textContent or an attribute value.
'use strict';

(function () {
  const POLL_MS = 2000;
  const TIMEOUT_MS = 5000;
  const SVG_NS = 'http://www.w3.org/2000/svg';

  let lastDoc = null;
  let lastOk = null;  // Date of the last successful fetch

  function byTestId(id) {
    return document.querySelector('[data-testid="' + id + '"]');
  }

  // An element with text set safely; attrs become attributes (values are never parsed as markup).
  function el(tag, attrs, text) {
    const e = document.createElement(tag);
    if (attrs) for (const k of Object.keys(attrs)) e.setAttribute(k, String(attrs[k]));
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }

  function svg(tag, attrs, text) {
    const e = document.createElementNS(SVG_NS, tag);
    if (attrs) for (const k of Object.keys(attrs)) e.setAttribute(k, String(attrs[k]));
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }

  function num(v) {
    const n = Number(v);
    return Number.isFinite(n) ? n : 0;
  }

  function count(v) {
    return num(v).toLocaleString('en-US');
  }

  function str(v) {
    return v === undefined || v === null ? '' : String(v);
  }

  function seconds(s) {
    s = num(s);
    if (s < 1) return Math.round(s * 1000) + ' ms';
    if (s < 60) return s.toFixed(s < 10 ? 1 : 0) + ' s';
    const m = Math.floor(s / 60);
    if (m < 60) return m + ' min ' + Math.round(s % 60) + ' s';
    const h = Math.floor(m / 60);
    if (h < 48) return h + ' h ' + (m % 60) + ' min';
    return Math.floor(h / 24) + ' d ' + (h % 24) + ' h';
  }

  function span(minutes) {
    minutes = Math.round(minutes);
    if (minutes < 120) return minutes + ' min';
    return Math.floor(minutes / 60) + ' h' + (minutes % 60 ? ' ' + (minutes % 60) + ' min' : '');
  }

  function time(iso) {
    const t = Date.parse(iso);
    if (!Number.isFinite(t)) return str(iso);
    return new Date(t).toISOString().replace('T', ' ').replace(/\.\d+Z$/, 'Z');
  }

  // The time alone when it falls on the server's day: the tables stay narrow.
  function shortTime(iso, nowIso) {
    const full = time(iso);
    return full.slice(0, 10) === time(nowIso).slice(0, 10) ? full.slice(11) : full;
  }

  // Relative to the server's clock, so a skewed browser clock does not lie about "in 30 s".
  function relative(iso, nowIso) {
    const t = Date.parse(iso);
    const now = Date.parse(nowIso);
    if (!Number.isFinite(t) || !Number.isFinite(now)) return '';
    const d = (t - now) / 1000;
    if (Math.abs(d) < 1) return 'now';
    return d > 0 ? 'in ' + seconds(d) : seconds(-d) + ' ago';
  }

  function list(v) {
    return Array.isArray(v) ? v : [];
  }

  function stat(label, value, testid, cls) {
    const d = el('div', { class: 'stat' + (cls ? ' ' + cls : '') });
    d.appendChild(el('span', { class: 'value', 'data-testid': testid }, value));
    d.appendChild(el('span', { class: 'label' }, label));
    return d;
  }

  function stageCard(s) {
    const card = el('div', { class: 'stage', 'data-testid': 'stage', 'data-stage': str(s.name) });
    const head = el('div', { class: 'stage-head' });
    head.appendChild(el('span', { class: 'stage-name', 'data-testid': 'stage-name' }, s.name));
    head.appendChild(el('span', { class: 'muted' }, s.table));
    card.appendChild(head);
    const q = el('div', { class: 'stats' });
    q.appendChild(stat('queued', count(s.queue_depth), 'queue-depth'));
    q.appendChild(stat('in flight', count(s.in_flight), 'in-flight'));
    q.appendChild(stat('DLQ', count(s.dlq_depth), 'dlq-depth', num(s.dlq_depth) > 0 ? 'bad' : ''));
    q.appendChild(stat('records', count(s.records), 'records'));
    card.appendChild(q);
    const c = el('div', { class: 'counts muted' });
    const parts = [
      count(s.messages) + ' messages',
      count(s.new) + ' new',
      count(s.changed) + ' changed',
      count(s.gone) + ' gone',
      count(s.errors) + ' errors',
      count(s.throttles) + ' throttles',
    ];
    if (num(s.oldest_age_seconds) > 0) parts.push('oldest ' + seconds(s.oldest_age_seconds));
    c.textContent = parts.join(' · ');
    if (num(s.errors) > 0) c.classList.add('warn');
    card.appendChild(c);
    return card;
  }

  function renderStages(doc) {
    const stages = list(doc.stages);
    const byName = new Map(stages.map((s) => [str(s.name), s]));
    const seen = new Set();
    function branch(s) {
      const li = el('li');
      seen.add(str(s.name));
      li.appendChild(stageCard(s));
      const kids = list(s.children).map((n) => byName.get(str(n))).filter((k) => k && !seen.has(str(k.name)));
      if (kids.length) {
        const ul = el('ul');
        for (const k of kids) ul.appendChild(branch(k));
        li.appendChild(ul);
      }
      return li;
    }
    const root = el('ul');
    for (const s of stages) if (s.parent === null || s.parent === undefined || !byName.has(str(s.parent))) root.appendChild(branch(s));
    // A stage reached by no root (never expected) is still shown rather than hidden.
    for (const s of stages) if (!seen.has(str(s.name))) root.appendChild(branch(s));
    let total = 0;
    for (const s of stages) total += num(s.records);
    const tree = byTestId('stage-tree');
    tree.replaceChildren(root);
    tree.setAttribute('data-records-total', String(total));
  }

  function renderChart(doc) {
    const box = byTestId('chart');
    const points = list(doc.records_per_minute)
      .map((p) => ({ t: Date.parse(p.minute), n: num(p.records) }))
      .filter((p) => Number.isFinite(p.t));
    const now = Date.parse(doc.now);
    const end = Number.isFinite(now) ? Math.floor(now / 60000) * 60000 : Date.now();
    // At least half an hour wide, at most the six hours the daemon keeps.
    let start = end - 30 * 60000;
    for (const p of points) start = Math.min(start, p.t);
    start = Math.max(start, end - 6 * 3600000);
    const W = 720, H = 160, L = 48, B = 20, T = 8, R = 8;
    const minutes = Math.max(1, (end - start) / 60000 + 1);
    let max = 0, total = 0;
    for (const p of points) {
      if (p.t < start) continue;
      max = Math.max(max, p.n);
      total += p.n;
    }
    const top = max > 0 ? max : 1;
    const s = svg('svg', { viewBox: '0 0 ' + W + ' ' + H, role: 'img', class: 'chart-svg', 'data-testid': 'chart-svg' });
    s.appendChild(svg('title', null, 'Records per minute, ' + count(total) + ' in the window'));
    const plotW = W - L - R, plotH = H - T - B;
    s.appendChild(svg('line', { x1: L, y1: T + plotH, x2: W - R, y2: T + plotH, class: 'axis' }));
    s.appendChild(svg('line', { x1: L, y1: T, x2: L, y2: T + plotH, class: 'axis' }));
    s.appendChild(svg('text', { x: L - 6, y: T + 10, 'text-anchor': 'end', class: 'tick' }, count(top)));
    s.appendChild(svg('text', { x: L - 6, y: T + plotH, 'text-anchor': 'end', class: 'tick' }, '0'));
    s.appendChild(svg('text', { x: L, y: H - 4, class: 'tick' }, time(new Date(start).toISOString()).slice(11, 16) + 'Z'));
    s.appendChild(svg('text', { x: W - R, y: H - 4, 'text-anchor': 'end', class: 'tick' }, time(new Date(end).toISOString()).slice(11, 16) + 'Z'));
    const bw = plotW / minutes;
    for (const p of points) {
      if (p.t < start || p.n <= 0) continue;
      const i = (p.t - start) / 60000;
      const h = Math.max(1, (p.n / top) * plotH);
      const r = svg('rect', {
        x: (L + i * bw).toFixed(2), y: (T + plotH - h).toFixed(2),
        width: Math.max(1, bw - 1).toFixed(2), height: h.toFixed(2), class: 'bar',
      });
      r.appendChild(svg('title', null, time(new Date(p.t).toISOString()) + ': ' + count(p.n) + ' records'));
      s.appendChild(r);
    }
    box.replaceChildren(s);
    byTestId('chart-summary').textContent =
      count(total) + ' records in the last ' + span((end - start) / 60000 + 1) + ', peak ' + count(max) + '/min';
  }

  function renderAlarms(doc) {
    const ul = byTestId('alarms');
    const alarms = list(doc.alarms);
    const items = [];
    let firing = 0;
    // Alarms that fire come first: that is what the page is opened for.
    const order = { ALARM: 0, INSUFFICIENT_DATA: 1, OK: 2 };
    const sorted = alarms.slice().sort((a, b) => (order[a.state] ?? 1) - (order[b.state] ?? 1));
    for (const a of sorted) {
      const state = str(a.state);
      if (state === 'ALARM') firing++;
      const li = el('li', { class: 'alarm', 'data-testid': 'alarm', 'data-alarm': str(a.name), 'data-state': state });
      const head = el('div', { class: 'alarm-head' });
      head.appendChild(el('span', { class: 'badge state-' + state.replace(/[^A-Z_]/g, ''), 'data-testid': 'alarm-state' }, state));
      head.appendChild(el('span', { class: 'alarm-name', 'data-testid': 'alarm-name' }, a.name));
      if (a.stage) head.appendChild(el('span', { class: 'muted' }, a.stage));
      li.appendChild(head);
      li.appendChild(el('div', { class: 'muted small' }, a.condition));
      if (a.reason) li.appendChild(el('div', { class: 'small' }, a.reason));
      const hist = list(a.history).slice(-5).reverse();
      if (hist.length) {
        const h = el('ol', { class: 'history small', 'data-testid': 'alarm-history' });
        for (const t of hist) {
          const item = el('li', { title: str(t.reason) });
          item.appendChild(el('time', null, time(t.time)));
          item.appendChild(document.createTextNode(' ' + str(t.from) + ' → ' + str(t.to)));
          h.appendChild(item);
        }
        li.appendChild(h);
      }
      items.push(li);
    }
    if (!items.length) items.push(el('li', { class: 'muted' }, 'no alarms configured'));
    ul.replaceChildren(...items);
    byTestId('alarm-summary').textContent = alarms.length ? firing + ' of ' + alarms.length + ' in ALARM' : '';
  }

  function row(cells) {
    const tr = el('tr');
    for (const c of cells) {
      if (c instanceof Node) {
        const td = el('td');
        td.appendChild(c);
        tr.appendChild(td);
      } else {
        tr.appendChild(el('td', null, c));
      }
    }
    return tr;
  }

  function renderRuns(doc) {
    const body = byTestId('runs').tBodies[0];
    const runs = list(doc.runs).slice().reverse().slice(0, 20);
    const rows = runs.map((r) => {
      const outcome = el('span', { class: 'badge outcome-' + str(r.outcome).replace(/[^a-z_]/g, ''), 'data-testid': 'run-outcome' }, r.outcome);
      const tr = row([str(r.run_id), list(r.roots).map(str).join(', '), time(r.started), seconds(r.seconds), outcome,
        count(r.records), count(r.new), count(r.changed), count(r.gone), count(r.dead_lettered)]);
      tr.setAttribute('data-testid', 'run');
      return tr;
    });
    if (!rows.length) {
      const tr = el('tr');
      tr.appendChild(el('td', { colspan: 10, class: 'muted' }, 'no run finished yet'));
      rows.push(tr);
    }
    body.replaceChildren(...rows);
  }

  function renderSchedules(doc) {
    const body = byTestId('schedules').tBodies[0];
    const rows = list(doc.schedules).map((s) => {
      const next = el('span', { 'data-testid': 'next-fire' }, s.next_fire ? shortTime(s.next_fire, doc.now) + ' (' + relative(s.next_fire, doc.now) + ')' : '—');
      const expr = str(s.expression) + (s.timezone && s.timezone !== 'UTC' ? ' ' + str(s.timezone) : '');
      return row([str(s.stage), expr, next, s.last_fire ? relative(s.last_fire, doc.now) : '—',
        count(s.fired), count(s.coalesced), count(s.missed)]);
    });
    if (!rows.length) {
      const tr = el('tr');
      tr.appendChild(el('td', { colspan: 7, class: 'muted' }, 'no scheduled stage'));
      rows.push(tr);
    }
    body.replaceChildren(...rows);
  }

  function renderQuota(doc) {
    const box = byTestId('quota');
    const items = list(doc.quota).map((q) => {
      const used = num(q.used), left = num(q.left);
      const d = el('div', { class: 'quota-item' });
      d.appendChild(el('div', null, str(q.window)));
      d.appendChild(el('meter', { min: 0, max: Math.max(1, used + left), value: used, low: 0.7 * (used + left), high: 0.9 * (used + left) }));
      d.appendChild(el('div', { 'data-testid': 'quota-left' }, count(left) + ' left (' + count(used) + ' used)'));
      return d;
    });
    if (!items.length) items.push(el('div', { class: 'muted' }, 'no quota configured'));
    box.replaceChildren(...items);
  }

  function render(doc) {
    byTestId('pipeline').textContent = str(doc.pipeline);
    document.title = str(doc.pipeline) + ' — cascade';
    byTestId('version').textContent = doc.version ? 'v' + str(doc.version) : '';
    byTestId('uptime').textContent = doc.started ? 'up ' + relative(doc.started, doc.now).replace(/ ago$/, '') : '';
    const paused = byTestId('paused');
    if (doc.paused_until) {
      paused.textContent = 'Paused: the quota is spent until ' + time(doc.paused_until) + ' (' + relative(doc.paused_until, doc.now) + ')';
      paused.hidden = false;
    } else {
      paused.hidden = true;
    }
    // Each part draws on its own: a surprise in one does not blank the others.
    for (const f of [renderStages, renderChart, renderAlarms, renderRuns, renderSchedules, renderQuota]) {
      try {
        f(doc);
      } catch (e) {
        console.error(f.name, e);
      }
    }
  }

  function setConnection(ok, why) {
    const badge = byTestId('connection');
    document.body.classList.remove('connecting');
    document.body.classList.toggle('disconnected', !ok);
    badge.textContent = ok ? 'live' : 'disconnected';
    badge.title = ok ? '' : why;
    const err = byTestId('error');
    if (ok) {
      err.hidden = true;
    } else {
      err.textContent = 'Disconnected: ' + why + (lastOk ? '. Showing data from ' + lastOk.toLocaleTimeString() + '.' : '.') + ' Retrying.';
      err.hidden = false;
    }
  }

  async function poll() {
    const ctl = new AbortController();
    const timer = setTimeout(() => ctl.abort(), TIMEOUT_MS);
    try {
      const res = await fetch('/status', { cache: 'no-store', signal: ctl.signal, credentials: 'same-origin' });
      if (!res.ok) throw new Error('/status answered ' + res.status);
      const doc = await res.json();
      lastDoc = doc;
      lastOk = new Date();
      render(doc);
      const t = byTestId('last-updated');
      t.textContent = lastOk.toLocaleTimeString();
      t.setAttribute('datetime', lastOk.toISOString());
      setConnection(true, '');
    } catch (e) {
      setConnection(false, e && e.name === 'AbortError' ? 'no answer within ' + TIMEOUT_MS / 1000 + ' s' : String(e && e.message ? e.message : e));
    } finally {
      clearTimeout(timer);
      // The next poll starts after this one ended: a slow server is never asked twice at once.
      setTimeout(poll, POLL_MS);
    }
  }

  // "last updated" ages visibly even when nothing else changes.
  setInterval(() => {
    if (!lastOk || !lastDoc) return;
    const age = (Date.now() - lastOk.getTime()) / 1000;
    byTestId('last-updated').title = Math.round(age) + ' s ago';
  }, 1000);

  poll();
})();
