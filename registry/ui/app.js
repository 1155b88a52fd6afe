// app.js: the dashboard's entry point: the hash router (#/services,
// #/service/<name>, #/callers, #/kv/<prefix>, #/events), the banner that
// says when the registry is unreachable (the last data stays, with its
// age), the token form when the registry has ACLs, and re-rendering the
// page when the state changes.
import { setToken, start, state, subscribe, token } from './api.js';
import { ago } from './dom.js';
import * as services from './services.js';
import * as instances from './instances.js';
import * as callers from './callers.js';
import * as kv from './kv.js';
import * as events from './events.js';

const view = document.getElementById('view');
const banner = document.getElementById('banner');
const live = document.getElementById('live');
const auth = document.getElementById('auth');
const authInput = document.getElementById('token');
const authMsg = document.getElementById('auth-msg');

// The current page: {module, arg}; a module has render(root, arg) and may
// have update(kind, detail) (live changes) and leave().
let current = null;

function route() {
  let hash = location.hash.replace(/^#\/?/, '');
  try {
    hash = decodeURIComponent(hash);
  } catch (err) {
    // a malformed %-escape: take the hash as it is
  }
  const [page, ...rest] = hash.split('/');
  const arg = rest.join('/');
  const pages = { services, service: instances, callers, kv, events };
  const mod = pages[page] || services;
  if (current && current.module.leave) {
    current.module.leave();
  }
  current = { module: mod, arg };
  for (const a of document.querySelectorAll('nav a')) {
    const on = a.dataset.page === (mod === instances ? 'services' : page || 'services');
    if (on) {
      a.setAttribute('aria-current', 'page');
    } else {
      a.removeAttribute('aria-current');
    }
  }
  view.replaceChildren();
  mod.render(view, arg, redraw);
}

// Redraw after a change, at most once a frame, keeping the focus and
// what was typed into the fields that have an id.
let pending = false;
function refresh(kind, detail) {
  if (!current) {
    return;
  }
  if (current.module.update) {
    current.module.update(kind, detail);
    return;
  }
  if (pending) {
    return;
  }
  pending = true;
  requestAnimationFrame(() => {
    pending = false;
    redraw();
  });
}

export function redraw() {
  const focused = document.activeElement && document.activeElement.id;
  const kept = new Map();
  for (const el of view.querySelectorAll('input[id], textarea[id], select[id]')) {
    kept.set(el.id, el.value);
  }
  view.replaceChildren();
  current.module.render(view, current.arg, redraw);
  for (const [id, value] of kept) {
    const el = document.getElementById(id);
    if (el) {
      el.value = value;
    }
  }
  if (focused) {
    const el = document.getElementById(focused);
    if (el) {
      el.focus();
    }
  }
}

// The banner and the status line: the only timer of the page, and it
// asks nothing of the registry (it ages the text).
function status() {
  if (state.downSince) {
    banner.hidden = false;
    // The data was live until the stream was lost: that is its age.
    const age = state.loaded ? 'The data shown is from ' + ago(Date.now() - state.downSince) : 'No data yet';
    banner.textContent = 'Registry unreachable: ' + state.error + '. ' + age + '.';
    live.textContent = '✕ offline';
    live.className = 'live off';
  } else {
    banner.hidden = true;
    live.textContent = state.up ? '● live (index ' + state.index + ')' : 'connecting…';
    live.className = state.up ? 'live on' : 'live';
  }
}

// The token form: shown once the registry refused a request (401/403);
// it says why, or that the token given was accepted.
function showAuth() {
  if (!state.auth.shown) {
    auth.hidden = true;
    return;
  }
  auth.hidden = false;
  if (state.auth.error) {
    authMsg.className = 'note error';
    authMsg.textContent = (token() ? 'The registry refused this token: ' : 'The registry needs a token: ')
      + state.auth.error + '.';
  } else {
    authMsg.className = 'note';
    authMsg.textContent = token() ? 'Token accepted (kept for this tab only).' : '';
  }
}

auth.addEventListener('submit', (ev) => {
  ev.preventDefault();
  setToken(authInput.value.trim());
  authInput.value = '';
});
document.getElementById('token-forget').addEventListener('click', () => {
  authInput.value = '';
  setToken('');
});

subscribe((kind, detail) => {
  status();
  if (kind === 'auth') {
    showAuth(); // and the page, which may say that it waits for a token
  }
  if (kind !== 'status') {
    refresh(kind, detail);
  }
});
setInterval(status, 1000);
window.addEventListener('hashchange', route);
// The skip link moves the focus to the page, not the route.
document.querySelector('.skip').addEventListener('click', (ev) => {
  ev.preventDefault();
  view.focus();
});
route();
showAuth();
start();
