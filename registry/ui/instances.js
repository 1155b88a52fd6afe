// instances.js: the page of one service's instances: address, health,
// every check (type, status, output, last change), metadata, and the two
// writes: maintenance on/off with a reason, and deregister after a
// confirmation. Redrawn from the in-memory catalog on every change event.
import { byService, deregister, describe, setMaintenance, state } from './api.js';
import { badge, h, when } from './dom.js';

const confirming = new Set(); // ids whose deregistration awaits a yes
const notes = new Map(); // id -> {text, error}: what the last write answered
let redrawPage = () => {};

function addr(inst) {
  return (inst.host.includes(':') ? '[' + inst.host + ']' : inst.host) + ':' + inst.port;
}

async function toggleMaintenance(inst) {
  const on = !inst.maintenance;
  const field = document.getElementById('reason-' + inst.id);
  const reason = (field && field.value.trim()) || 'set from the dashboard';
  const reply = await setMaintenance(inst.id, on, reason);
  notes.set(inst.id, reply.status === 200
    ? { text: on ? 'in maintenance' : 'maintenance ended' }
    : { text: 'maintenance not changed: ' + describe(reply), error: true });
  redrawPage();
}

async function confirmDeregister(inst) {
  confirming.delete(inst.id);
  const reply = await deregister(inst.id);
  if (reply.status !== 200) {
    notes.set(inst.id, { text: 'not deregistered: ' + describe(reply), error: true });
  }
  redrawPage();
}

function checks(inst) {
  const list = inst.checks || [];
  if (list.length === 0) {
    return h('p', {}, 'No checks: passing until deregistered.');
  }
  return h('div.scroll', {}, h('table.grid.checks', {},
    h('caption', {}, 'Checks'),
    h('thead', {}, h('tr', {},
      ['Check', 'Type', 'Status', 'Output', 'Last change'].map((t) => h('th', { scope: 'col' }, t)))),
    h('tbody', {}, list.map((c) => h('tr', {},
      // A check's id is mostly its instance's: show what differs.
      h('td.id', { 'data-label': 'Check', title: c.id },
        c.id.startsWith(inst.id) && c.id.length > inst.id.length ? '…' + c.id.slice(inst.id.length) : c.id),
      h('td', { 'data-label': 'Type' }, c.type),
      h('td', { 'data-label': 'Status' }, badge(c.status)),
      h('td.out', { 'data-label': 'Output' }, c.output || '—'),
      h('td', { 'data-label': 'Last change' }, when(c.last_change)))))));
}

function metadata(inst) {
  const entries = Object.entries(inst.metadata || {});
  if (entries.length === 0) {
    return null;
  }
  return h('dl.meta', {}, entries.map(([k, v]) => [h('dt', {}, k),
    h('dd', {}, typeof v === 'string' ? v : JSON.stringify(v))]));
}

function actions(inst) {
  const note = notes.get(inst.id);
  const reasonId = 'reason-' + inst.id;
  const parts = [];
  if (inst.maintenance) {
    parts.push(h('p', {}, 'In maintenance since ' + when(inst.maintenance.since) + ': ' +
      (inst.maintenance.reason || '(no reason)')));
    parts.push(h('button', { type: 'button', id: 'maint-' + inst.id, onclick: () => toggleMaintenance(inst) }, 'End maintenance'));
  } else {
    parts.push(h('label', { for: reasonId }, 'Reason '));
    parts.push(h('input', { id: reasonId, type: 'text', maxlength: 256, placeholder: 'deploy 42' }));
    parts.push(h('button', { type: 'button', id: 'maint-' + inst.id, onclick: () => toggleMaintenance(inst) }, 'Enter maintenance'));
  }
  if (confirming.has(inst.id)) {
    parts.push(h('span.confirm', { role: 'group', 'aria-label': 'Confirm deregistration' },
      'Deregister ' + inst.id + '? ',
      h('button.danger', { type: 'button', id: 'yes-' + inst.id, onclick: () => confirmDeregister(inst) },
        'Yes, deregister'),
      h('button', { type: 'button', id: 'cancel-' + inst.id, onclick: () => { confirming.delete(inst.id); redrawPage(); } }, 'Cancel')));
  } else {
    parts.push(h('button.danger', {
      type: 'button',
      id: 'dereg-' + inst.id,
      onclick: () => {
        confirming.add(inst.id);
        redrawPage();
        const yes = document.getElementById('yes-' + inst.id);
        if (yes) {
          yes.focus();
        }
      },
    }, 'Deregister…'));
  }
  if (note) {
    parts.push(h(note.error ? 'p.note.error' : 'p.note', { role: 'status' }, note.text));
  }
  return h('div.actions', {}, parts);
}

export function render(root, name, redraw) {
  redrawPage = redraw;
  root.append(h('p.crumbs', {}, h('a', { href: '#/services' }, 'Services'), ' › ', name));
  root.append(h('h2', {}, name));
  if (!state.loaded) {
    root.append(h('p', {}, 'Reading the catalog…'));
    return;
  }
  const list = byService().get(name) || [];
  if (list.length === 0) {
    root.append(h('p', {}, 'No instance of ' + name + ' is registered now.'));
    return;
  }
  for (const inst of list) {
    root.append(h('section.card.h-' + inst.health, { 'data-id': inst.id, 'aria-label': inst.id },
      h('h3', {}, badge(inst.health), ' ', h('span.id', {}, inst.id)),
      h('p', {}, 'Address ', h('code', {}, addr(inst)), ' · type ', inst.type,
        inst.ttl ? ' · ttl ' + inst.ttl + ' s' : '',
        (inst.tags || []).map((t) => [' ', h('span.tag', {}, t)])),
      checks(inst),
      metadata(inst),
      actions(inst)));
  }
}
