// api.js: everything the dashboard says to the registry. It keeps the
// catalog in memory (read once with GET /v1/services, then kept current by
// the Server-Sent Events of GET /v1/events), a bounded list of the events
// (the registry's recent history read once, then the live ones), the access
// token when the registry has ACLs, and whether the registry is reachable;
// views read that state and subscribe to its changes. No timer here asks
// the registry anything: new data comes only when the registry sends an
// event.

const EVENTS_KEPT = 500; // events the feed remembers (newest first)
const HISTORY_READ = 100; // past events read at start (the registry may hold fewer)
const TOKEN_KEY = 'registry-token'; // the token's sessionStorage key
const REPLICAS_EVERY_MS = 5000; // GET /v1/replicas again (leadership makes no event)

// The shared state. Views read it; only this module writes it.
export const state = {
  instances: new Map(), // id -> instance, as GET /v1/services/{id} shows it
  index: 0, // the registry index the catalog reflects
  events: [], // newest first, at most EVENTS_KEPT
  loaded: false, // the catalog was read at least once
  up: false, // the event stream is open
  lastOk: 0, // Date.now() of the last answer or event from the registry
  downSince: 0, // Date.now() when the stream was lost (0: not lost)
  error: '', // why it is down, for the banner
  // ACLs: shown once the registry refused a request for want of a right;
  // error is its refusal ('' when the last catalog read was allowed).
  auth: { shown: token() !== '', error: '' }, // a kept token: the form shows, to change it
  replicas: null, // GET /v1/replicas as last read; null: not read (yet)
};

const listeners = new Set();

// Call fn(kind, detail) on each change: kind is "catalog", "event", "kv",
// "status" or "auth". Returns the function that unsubscribes it.
export function subscribe(fn) {
  listeners.add(fn);
  return () => listeners.delete(fn);
}

function emit(kind, detail) {
  for (const fn of listeners) {
    fn(kind, detail);
  }
}

function markOk() {
  state.lastOk = Date.now();
  if (state.downSince) {
    state.downSince = 0;
    state.error = '';
    emit('status');
  }
}

function markDown(why) {
  if (!state.downSince) {
    state.downSince = Date.now();
  }
  state.error = why;
  state.up = false;
  emit('status');
}

// One request to the registry: {status, body, headers}; body is parsed
// JSON when the answer is JSON, else text. Throws only when the registry
// cannot be reached (the banner then says so).
export async function call(method, path, body) {
  const init = { method, headers: {} };
  const tok = token();
  if (tok) {
    init.headers['X-Registry-Token'] = tok;
  }
  if (body !== undefined) {
    init.body = body;
    init.headers['Content-Type'] = typeof body === 'string' ? 'text/plain' : 'application/json';
  }
  let resp;
  try {
    resp = await fetch(path, init);
  } catch (err) {
    markDown('the registry cannot be reached (' + err.message + ')');
    throw err;
  }
  markOk();
  const type = resp.headers.get('Content-Type') || '';
  const text = await resp.text();
  let parsed = text;
  if (type.startsWith('application/json') && text !== '') {
    try {
      parsed = JSON.parse(text);
    } catch (err) {
      parsed = text;
    }
  }
  const reply = { status: resp.status, body: parsed, headers: resp.headers };
  if (reply.status === 401 || reply.status === 403) {
    state.auth = { shown: true, error: describe(reply) };
    emit('auth');
  }
  return reply;
}

// The token the person gave (kept for this tab's session only), or ''.
export function token() {
  try {
    return sessionStorage.getItem(TOKEN_KEY) || '';
  } catch (err) {
    return ''; // storage disabled: no token
  }
}

// Keep text as the token ('' forgets it) and read everything again with it.
export function setToken(text) {
  try {
    if (text) {
      sessionStorage.setItem(TOKEN_KEY, text);
    } else {
      sessionStorage.removeItem(TOKEN_KEY);
    }
  } catch (err) {
    // storage disabled: the token lasts as long as this call
  }
  clearTimeout(retry);
  retry = null;
  reload();
}

// The error text of a failed answer, for a view to show.
export function describe(reply) {
  if (reply.body && typeof reply.body === 'object' && reply.body.error) {
    return reply.status + ': ' + reply.body.error;
  }
  return 'HTTP ' + reply.status;
}

let source = null;
let retry = null; // the timer of the next reload after a failure

function retryLater() {
  clearTimeout(retry);
  retry = setTimeout(reload, 3000);
}

// Read the whole catalog, the recent events before it, and (re)start the
// event stream after its index. A refusal (401/403) waits for a token
// (setToken) instead of asking again.
async function reload() {
  retry = null;
  if (source) {
    source.close();
    source = null;
  }
  let reply;
  try {
    reply = await call('GET', '/v1/services');
  } catch (err) {
    retryLater(); // the registry is away: try again, slowly
    return;
  }
  if (reply.status === 401 || reply.status === 403) {
    state.up = false;
    emit('status');
    return;
  }
  if (reply.status !== 200) {
    markDown('GET /v1/services answered ' + describe(reply));
    retryLater();
    return;
  }
  if (state.auth.error) {
    state.auth = { shown: true, error: '' };
    emit('auth');
  }
  state.instances = new Map(reply.body.services.map((s) => [s.id, s]));
  state.index = Number(reply.headers.get('X-Registry-Index') || 0);
  state.loaded = true;
  emit('catalog');
  await readHistory(state.index);
  stream();
}

// The events up to index upTo that the registry's history still holds
// (at most HISTORY_READ of them), into state.events; the stream then goes
// on after upTo, so no event is listed twice. The history is bounded: an
// index it no longer holds answers 410 with the oldest one it does. A
// failure leaves the feed as it was (the live events still come).
async function readHistory(upTo) {
  let from = Math.max(1, upTo - HISTORY_READ);
  for (let tries = 0; tries < 2 && from < upTo; tries++) {
    let reply;
    try {
      reply = await call('GET', '/v1/events?wait=0&index=' + from);
    } catch (err) {
      return;
    }
    if (reply.status === 410 && reply.body && reply.body.oldest_index) {
      from = Math.max(from + 1, reply.body.oldest_index - 1);
      continue;
    }
    if (reply.status === 200 && Array.isArray(reply.body.events)) {
      addEvents(reply.body.events.filter((ev) => ev.index <= upTo));
    }
    return;
  }
}

// Merge events into state.events: newest first, one entry per index, at
// most EVENTS_KEPT. Returns whether any was new.
function addEvents(list) {
  const have = new Set(state.events.map((ev) => ev.index));
  const fresh = list.filter((ev) => !have.has(ev.index));
  if (fresh.length === 0) {
    return false;
  }
  state.events = state.events.concat(fresh).sort((a, b) => b.index - a.index);
  if (state.events.length > EVENTS_KEPT) {
    state.events.length = EVENTS_KEPT;
  }
  emit('event', fresh[0]);
  return true;
}

// Follow GET /v1/events as Server-Sent Events from state.index. The
// browser reconnects by itself with Last-Event-ID, so no event is missed;
// an "reset" event (the history passed us) reads the catalog again.
function stream() {
  if (source) {
    source.close();
  }
  // EventSource cannot send a header: the token goes as ?token=, which the
  // registry reads when no header carries one.
  const tok = token();
  source = new EventSource('/v1/events?index=' + state.index + (tok ? '&token=' + encodeURIComponent(tok) : ''));
  source.onopen = () => {
    state.up = true;
    markOk();
    emit('status');
  };
  source.onerror = () => {
    markDown('the event stream from the registry was lost; reconnecting');
    if (source.readyState === EventSource.CLOSED) {
      // An answer that was no stream (a 503, a 403): the browser gives up
      // on it, so start again from a fresh read, a few seconds later.
      source = null;
      retryLater();
    }
  };
  for (const type of ['register', 'deregister', 'expire', 'health', 'maintenance', 'kv']) {
    source.addEventListener(type, onEvent);
  }
  source.addEventListener('reset', () => {
    source.close();
    source = null;
    reload();
  });
}

function onEvent(msg) {
  let ev;
  try {
    ev = JSON.parse(msg.data);
  } catch (err) {
    return;
  }
  markOk();
  if (!state.up) {
    state.up = true;
    emit('status');
  }
  state.index = Math.max(state.index, ev.index || 0);
  const fresh = state.events.length === 0 || !state.events.some((e) => e.index === ev.index);
  if (fresh) {
    state.events.unshift(ev);
    if (state.events.length > EVENTS_KEPT) {
      state.events.length = EVENTS_KEPT;
    }
  }
  const data = ev.data || {};
  if (ev.type === 'kv') {
    emit('kv', data);
  } else if (data.service_id) {
    if (ev.type === 'deregister' || ev.type === 'expire') {
      state.instances.delete(data.service_id);
    } else if (data.service_info) {
      state.instances.set(data.service_id, data.service_info);
    }
    emit('catalog');
  }
  if (fresh) {
    emit('event', ev);
  }
}

// Read the replicas and their leader; a change redraws like the catalog.
async function readReplicas() {
  let reply;
  try {
    reply = await call('GET', '/v1/replicas');
  } catch (err) {
    return;
  }
  if (reply.status !== 200 || typeof reply.body !== 'object') {
    return;
  }
  if (JSON.stringify(reply.body) !== JSON.stringify(state.replicas)) {
    state.replicas = reply.body;
    emit('catalog');
  }
}

// Start: read the catalog, then follow its events; the replicas now and
// every REPLICAS_EVERY_MS.
export function start() {
  reload();
  readReplicas();
  setInterval(readReplicas, REPLICAS_EVERY_MS);
}

// The instances grouped by service name: Map name -> [instance], names
// in order.
export function byService() {
  const groups = new Map();
  for (const inst of state.instances.values()) {
    if (!groups.has(inst.name)) {
      groups.set(inst.name, []);
    }
    groups.get(inst.name).push(inst);
  }
  return new Map([...groups.entries()].sort((a, b) => (a[0] < b[0] ? -1 : 1)));
}

// --- writes and reads the views ask for ---------------------------------

export function setMaintenance(id, enable, reason) {
  const body = enable ? { enable: true, reason } : { enable: false };
  return call('PUT', '/v1/services/' + encodeURIComponent(id) + '/maintenance', JSON.stringify(body));
}

export function deregister(id) {
  return call('DELETE', '/v1/services/' + encodeURIComponent(id));
}

// The key path of a KV key: each segment encoded, the slashes kept.
function kvPath(key) {
  return '/v1/kv/' + key.split('/').map(encodeURIComponent).join('/');
}

// Every key under prefix: [{Key, Value (decoded text), ModifyIndex, ...}];
// [] when there is none.
export async function kvList(prefix) {
  const reply = await call('GET', kvPath(prefix) + '?recurse');
  if (reply.status === 404) {
    return { ok: true, keys: [] };
  }
  if (reply.status !== 200) {
    return { ok: false, error: describe(reply) };
  }
  return { ok: true, keys: reply.body.map((k) => ({ ...k, Text: decodeValue(k.Value) })) };
}

// One key, or null when it does not exist.
export async function kvGet(key) {
  const reply = await call('GET', kvPath(key));
  if (reply.status === 404) {
    return { ok: true, entry: null };
  }
  if (reply.status !== 200) {
    return { ok: false, error: describe(reply) };
  }
  const k = reply.body[0];
  return { ok: true, entry: { ...k, Text: decodeValue(k.Value) } };
}

// Write key = text only if its ModifyIndex is still cas (0: only if it
// does not exist). {ok: true} written, {conflict: true} someone else
// changed it, {ok: false, error} refused.
export async function kvPut(key, text, cas) {
  const reply = await call('PUT', kvPath(key) + '?cas=' + cas, text);
  if (reply.status !== 200) {
    return { ok: false, error: describe(reply) };
  }
  return reply.body === true ? { ok: true } : { ok: false, conflict: true };
}

export async function kvDelete(key, cas) {
  const reply = await call('DELETE', kvPath(key) + '?cas=' + cas);
  if (reply.status !== 200) {
    return { ok: false, error: describe(reply) };
  }
  return reply.body === true ? { ok: true } : { ok: false, conflict: true };
}

// A KV value (base64 or null) as text (UTF-8; bytes that are not shown as
// U+FFFD).
function decodeValue(b64) {
  if (!b64) {
    return '';
  }
  const bin = atob(b64);
  const bytes = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) {
    bytes[i] = bin.charCodeAt(i);
  }
  return new TextDecoder().decode(bytes);
}

// The most ids one relayBatch takes (LIM_UI_RELAY_IDS of common/core/limits.h).
export const RELAY_IDS = 64;

// The /stats of the instances statsIds and the /metrics of metricsIds (ids,
// either list may be empty, not both) in one request through the relay.
// The reply's body, when 200, maps each id to its /stats JSON, its
// /metrics text (a string), or {error, status} for that instance alone.
export function relayBatch(statsIds, metricsIds) {
  const q = [];
  if (statsIds.length) {
    q.push('stats=' + statsIds.map(encodeURIComponent).join(','));
  }
  if (metricsIds.length) {
    q.push('metrics=' + metricsIds.map(encodeURIComponent).join(','));
  }
  return call('GET', '/ui/relay?' + q.join('&'));
}

// Is v (an entry of a relayBatch reply) the relay's error for that
// instance rather than its answer?
export function relayFailed(v) {
  return !!v && typeof v === 'object' && typeof v.error === 'string' && typeof v.status === 'number';
}
