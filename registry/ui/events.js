// events.js: the Events page: the registry's change events as they come
// (register, deregister, expire, health, maintenance, kv), newest first,
// filtered by type and by service name. The events are those api.js keeps
// (the registry's recent history, read when the page opened, then the live
// ones; the last 500).
import { state } from './api.js';
import { badge, h } from './dom.js';

const TYPES = ['register', 'deregister', 'expire', 'health', 'maintenance', 'kv'];
const SHOWN = 200;

let root = null;
let type = '';
let service = '';

function describe(ev) {
  const d = ev.data || {};
  const info = d.service_info || {};
  switch (ev.type) {
    case 'kv':
      return [d.op || 'set', ' ', h('code', {}, d.key || '')];
    case 'health':
      return [h('code', {}, d.check_id || ''), ' ', d.previous || '?', ' → ', badge(d.status)];
    case 'maintenance':
      return [d.enable ? 'on' : 'off', info.maintenance ? ': ' + info.maintenance.reason : ''];
    default:
      return [info.host ? info.host + ':' + info.port : ''];
  }
}

function matches(ev) {
  if (type && ev.type !== type) {
    return false;
  }
  if (service) {
    const info = (ev.data && ev.data.service_info) || {};
    return (info.name || '').includes(service);
  }
  return true;
}

function rows() {
  const shown = state.events.filter(matches).slice(0, SHOWN);
  if (shown.length === 0) {
    return h('p', {}, state.events.length ? 'No event matches the filter.' : 'No event in the registry\'s recent history.');
  }
  return h('ol.feed', { reversed: true }, shown.map((ev) => {
    const d = ev.data || {};
    return h('li', { 'data-type': ev.type },
      h('span.when', {}, new Date(ev.timestamp * 1000).toLocaleTimeString()),
      h('span.type.t-' + ev.type, {}, ev.type),
      h('span.idx', {}, '#' + ev.index),
      d.service_id ? h('a', {
        href: '#/service/' + encodeURIComponent((d.service_info && d.service_info.name) || ''),
      }, d.service_id) : null,
      h('span.what', {}, describe(ev)));
  }));
}

function draw() {
  if (!root) {
    return;
  }
  const list = rows();
  const holder = root.querySelector('#feed');
  if (holder) {
    holder.replaceChildren(list);
    return;
  }
  root.replaceChildren(
    h('h2', {}, 'Events'),
    h('form.row', { onsubmit: (ev) => ev.preventDefault(), 'aria-label': 'Filter' },
      h('label', { for: 'ev-type' }, 'Type '),
      h('select', {
        id: 'ev-type',
        onchange: (ev) => { type = ev.target.value; draw(); },
      }, h('option', { value: '' }, 'all'), TYPES.map((t) => h('option', { value: t, selected: t === type }, t))),
      h('label', { for: 'ev-service' }, 'Service '),
      h('input', {
        id: 'ev-service',
        type: 'search',
        value: service,
        oninput: (ev) => { service = ev.target.value.trim(); draw(); },
      })),
    h('div', { id: 'feed', 'aria-live': 'polite' }, list));
}

export function render(el) {
  root = el;
  draw();
}

// Any new event: only the list is redrawn (the filters keep their focus).
export function update(kind) {
  if (kind === 'event') {
    draw();
  }
}

export function leave() {
  root = null;
}
