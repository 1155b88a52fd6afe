// callers.js: the callers' side: each facade instance's upstreams (breaker
// state, counts, retries, mean latency, from its GET /stats) and each
// logging instance's stored message count (logging_messages_stored of its
// GET /metrics), both read through the registry's relay (/ui/relay), so the
// page never talks to another origin. These numbers change without any
// registry event, so this page alone reads them on a timer: every
// POLL_MS, only while it is shown and the tab is visible, all of them in
// one batched relay request a round, however many instances there are.
import { RELAY_IDS, byService, describe, relayBatch, relayFailed, state } from './api.js';
import { badge, h } from './dom.js';

const POLL_MS = 2000;
const FACADE = 'facade-service';
const LOGGING = 'logging-service';

let timer = null;
let polling = false; // a round of relays is in flight
let root = null;
const results = new Map(); // instance id -> {stats | count | error, at}

async function poll() {
  timer = null;
  if (polling) {
    return;
  }
  polling = true;
  const groups = byService();
  const facades = (groups.get(FACADE) || []).map((inst) => inst.id);
  const logs = (groups.get(LOGGING) || []).map((inst) => inst.id);
  // One batch a round; more instances than a batch takes: one per
  // RELAY_IDS of them, sent together.
  const batches = [];
  const all = facades.map((id) => [id, false]).concat(logs.map((id) => [id, true]));
  for (let i = 0; i < all.length; i += RELAY_IDS) {
    const part = all.slice(i, i + RELAY_IDS);
    batches.push({ stats: part.filter((p) => !p[1]).map((p) => p[0]), metrics: part.filter((p) => p[1]).map((p) => p[0]) });
  }
  const entries = new Map(); // instance id -> {value} | {failed}
  await Promise.all(batches.map(async (b) => {
    let r;
    try {
      r = await relayBatch(b.stats, b.metrics);
    } catch (err) {
      return; // the registry is gone: the banner says so, the last numbers stay
    }
    const ok = r.status === 200 && r.body && typeof r.body === 'object';
    for (const id of b.stats.concat(b.metrics)) {
      // an entry's error reads as a single relay's did: "<status>: <why>"
      entries.set(id, !ok ? { failed: describe(r) }
        : !(id in r.body) ? { failed: 'not in the relay\'s answer' }
          : relayFailed(r.body[id]) ? { failed: describe({ status: r.body[id].status, body: r.body[id] }) }
            : { value: r.body[id] });
    }
  }));
  for (const id of facades) {
    const e = entries.get(id);
    if (e) {
      results.set(id, e.failed ? { error: e.failed } : { stats: e.value, at: Date.now() });
    }
  }
  for (const id of logs) {
    const e = entries.get(id);
    if (e) {
      const m = e.failed || typeof e.value !== 'string' ? null
        : /^logging_messages_stored(?:\{[^}]*\})? (\d+)/m.exec(e.value);
      results.set(id, m ? { count: Number(m[1]), at: Date.now() }
        : { error: e.failed || 'no logging_messages_stored in /metrics' });
    }
  }
  polling = false;
  if (root) {
    draw();
    schedule();
  }
}

function schedule() {
  if (!timer && root && !document.hidden) {
    timer = setTimeout(poll, POLL_MS);
  }
}

function onVisibility() {
  if (document.hidden) {
    clearTimeout(timer);
    timer = null;
  } else if (root && !timer && !polling) {
    poll();
  }
}

function num(v, digits) {
  return typeof v === 'number' ? v.toFixed(digits || 0) : '—';
}

function facadeCard(inst) {
  const r = results.get(inst.id);
  let body;
  if (!r) {
    body = h('p', {}, 'Reading its /stats…');
  } else if (r.error) {
    body = h('p.note.error', {}, '/stats not read: ' + r.error);
  } else {
    const ups = (r.stats && r.stats.upstreams) || [];
    body = ups.length === 0 ? h('p', {}, 'No upstream called yet.') : h('div.scroll', {}, h('table.grid.breakers', {},
      h('caption', {}, 'Upstreams of ' + inst.id),
      h('thead', {}, h('tr', {}, ['Service', 'Instance', 'Breaker', 'Total', 'Success', 'Failure', 'Retries',
        'Mean latency (ms)'].map((t) => h('th', { scope: 'col' }, t)))),
      h('tbody', {}, ups.map((u) => h('tr', { 'data-upstream': u.instance },
        h('td', {}, u.service), h('td', {}, h('code', {}, u.instance)), h('td', {}, badge(u.breaker)),
        h('td.num', {}, num(u.total_requests)), h('td.num', {}, num(u.successful_requests)),
        h('td.num', {}, num(u.failure_requests)), h('td.num', {}, num(u.retries)),
        h('td.num', {}, num(u.mean_latency_ms, 2)))))));
  }
  return h('section.card', { 'data-id': inst.id }, h('h3', {}, badge(inst.health), ' ', h('span.id', {}, inst.id)), body);
}

function draw() {
  if (!root) {
    return;
  }
  root.replaceChildren(h('h2', {}, 'Callers'));
  if (!state.loaded) {
    root.append(h('p', {}, 'Reading the catalog…'));
    return;
  }
  const groups = byService();
  const facades = groups.get(FACADE) || [];
  root.append(h('h3', {}, 'Facades and their breakers'));
  root.append(...(facades.length ? facades.map(facadeCard) : [h('p', {}, 'No ' + FACADE + ' is registered.')]));
  const logs = groups.get(LOGGING) || [];
  root.append(h('h3', {}, 'Logging instances'));
  if (logs.length === 0) {
    root.append(h('p', {}, 'No ' + LOGGING + ' is registered.'));
    return;
  }
  root.append(h('div.scroll', {}, h('table.grid', {},
    h('thead', {}, h('tr', {}, ['Instance', 'Health', 'Messages held'].map((t) => h('th', { scope: 'col' }, t)))),
    h('tbody', {}, logs.map((inst) => {
      const r = results.get(inst.id);
      // the id too: a restarted instance shares its address with the old
      // entry until that one expires
      return h('tr', { 'data-id': inst.id }, h('td', {}, h('code', {}, inst.host + ':' + inst.port),
        h('br', {}), h('small.id', {}, inst.id)),
        h('td', {}, badge(inst.health)),
        h('td.num', {}, !r ? '…' : r.error ? r.error : String(r.count)));
    })))));
}

export function render(el) {
  root = el;
  document.addEventListener('visibilitychange', onVisibility);
  draw();
  if (!timer && !polling) {
    poll();
  }
}

// A catalog change: draw the new set of instances (their numbers follow
// at the next poll).
export function update(kind) {
  if (kind === 'catalog') {
    draw();
  }
}

export function leave() {
  root = null;
  clearTimeout(timer);
  timer = null;
  document.removeEventListener('visibilitychange', onVisibility);
}
