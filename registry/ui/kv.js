// kv.js: the KV page: browse the keys under a prefix, open one to view
// and edit it, create a key, delete one. Every write carries ?cas= with
// the ModifyIndex the page read, so a change someone else made meanwhile
// is not overwritten: the page shows the conflict (their value beside
// yours) and lets the person choose. The list follows the "kv" events.
import { kvDelete, kvGet, kvList, kvPut } from './api.js';
import { h } from './dom.js';

let root = null;
let prefix = '';
let list = null; // {ok, keys | error} of the last read
let editing = null; // {key, index, text, conflict?: {entry}, changed?: index, confirmDelete?}
let note = null; // {text, error}
let reading = false;
let again = false; // a kv event came while reading: read once more

async function load() {
  if (reading) {
    again = true;
    return;
  }
  reading = true;
  do {
    again = false;
    try {
      list = await kvList(prefix);
    } catch (err) {
      list = list || { ok: false, error: 'the registry cannot be reached' };
    }
  } while (again);
  reading = false;
  drawList();
}

// Only the key list again (the editor and what is typed there stay).
function drawList() {
  const holder = document.getElementById('kv-list');
  if (root && holder) {
    holder.replaceChildren(keys());
  } else {
    draw();
  }
}

async function open(key) {
  note = null;
  const r = await kvGet(key);
  if (!r.ok) {
    note = { text: r.error, error: true };
  } else if (!r.entry) {
    note = { text: key + ' does not exist (any more)', error: true };
    editing = null;
  } else {
    editing = { key, index: r.entry.ModifyIndex, text: r.entry.Text };
  }
  draw();
  const area = document.getElementById('kv-value');
  if (area) {
    area.focus();
  }
}

function typed() {
  const area = document.getElementById('kv-value');
  return area ? area.value : editing.text;
}

async function save(cas) {
  editing.text = typed();
  const r = await kvPut(editing.key, editing.text, cas);
  if (r.ok) {
    note = { text: 'Saved ' + editing.key + '.' };
    editing = null;
  } else if (r.conflict) {
    const now = await kvGet(editing.key);
    editing.conflict = { entry: now.ok ? now.entry : null };
  } else {
    note = { text: 'Not saved: ' + r.error, error: true };
  }
  draw();
  load();
}

async function remove() {
  const r = await kvDelete(editing.key, editing.index);
  if (r.ok) {
    note = { text: 'Deleted ' + editing.key + '.' };
    editing = null;
  } else if (r.conflict) {
    editing.confirmDelete = false;
    const now = await kvGet(editing.key);
    editing.conflict = { entry: now.ok ? now.entry : null };
  } else {
    note = { text: 'Not deleted: ' + r.error, error: true };
  }
  draw();
  load();
}

async function create(ev) {
  ev.preventDefault();
  const key = document.getElementById('kv-new-key').value.trim();
  const text = document.getElementById('kv-new-value').value;
  if (!key) {
    note = { text: 'A key is needed.', error: true };
    draw();
    return;
  }
  const r = await kvPut(key, text, 0);
  if (r.ok) {
    note = { text: 'Created ' + key + '.' };
    document.getElementById('kv-new-key').value = '';
    document.getElementById('kv-new-value').value = '';
  } else if (r.conflict) {
    note = { text: 'Not created: ' + key + ' exists already (open it to edit it).', error: true };
  } else {
    note = { text: 'Not created: ' + r.error, error: true };
  }
  draw();
  load();
}

function conflictBox() {
  const theirs = editing.conflict.entry;
  return h('div.conflict', { role: 'alert', id: 'kv-conflict' },
    h('p', {}, h('strong', {}, 'Conflict: '), theirs
      ? editing.key + ' was changed by someone else after you opened it (you read ModifyIndex ' +
        editing.index + ', it is now ' + theirs.ModifyIndex + '). Nothing was written.'
      : editing.key + ' was deleted by someone else after you opened it. Nothing was written.'),
    theirs ? [h('p', {}, 'Their value:'), h('pre.value', {}, theirs.Text)] : null,
    h('div.actions', {},
      theirs ? h('button', { type: 'button', onclick: () => open(editing.key) }, 'Load their version') : null,
      h('button.danger', { type: 'button', onclick: () => save(theirs ? theirs.ModifyIndex : 0) },
        'Write mine over it')));
}

function changedText() {
  return editing.changed ? ' · changed meanwhile (' + editing.changed + '): saving will conflict' : '';
}

function editor() {
  if (!editing) {
    return null;
  }
  return h('section.card', { 'aria-label': 'Edit ' + editing.key },
    h('h3', {}, 'Key ', h('code', {}, editing.key)),
    h('p', {}, 'ModifyIndex ' + editing.index, h('span.warn', { id: 'kv-changed' }, changedText())),
    h('label', { for: 'kv-value' }, 'Value'),
    h('textarea', { id: 'kv-value', rows: 6, value: editing.text }),
    editing.conflict ? conflictBox() : null,
    h('div.actions', {},
      h('button', { type: 'button', id: 'kv-save', onclick: () => save(editing.index) }, 'Save'),
      editing.confirmDelete
        ? h('span.confirm', {}, 'Delete ' + editing.key + '? ',
          h('button.danger', { type: 'button', id: 'kv-delete-yes', onclick: remove }, 'Yes, delete'),
          h('button', { type: 'button', onclick: () => { editing.confirmDelete = false; draw(); } }, 'Cancel'))
        : h('button.danger', {
          type: 'button',
          id: 'kv-delete',
          onclick: () => { editing.text = typed(); editing.confirmDelete = true; draw(); },
        }, 'Delete…'),
      h('button', { type: 'button', onclick: () => { editing = null; draw(); } }, 'Close')));
}

function keys() {
  if (!list) {
    return h('p', {}, 'Reading…');
  }
  if (!list.ok) {
    return h('p.note.error', {}, list.error);
  }
  if (list.keys.length === 0) {
    return h('p', {}, prefix ? 'No key under ' + prefix + '.' : 'No key yet.');
  }
  return h('div.scroll', {}, h('table.grid', {},
    h('caption', {}, list.keys.length + ' keys' + (prefix ? ' under ' + prefix : '')),
    h('thead', {}, h('tr', {}, ['Key', 'Value', 'ModifyIndex'].map((t) => h('th', { scope: 'col' }, t)))),
    h('tbody', {}, list.keys.map((k) => h('tr', { 'data-key': k.Key },
      h('td', {}, h('button.link', { type: 'button', onclick: () => open(k.Key) }, k.Key)),
      h('td.out', {}, k.Text.length > 80 ? k.Text.slice(0, 80) + '…' : k.Text),
      h('td.num', {}, String(k.ModifyIndex)))))));
}

function draw() {
  if (!root) {
    return;
  }
  if (editing && document.getElementById('kv-value')) {
    editing.text = typed();
  }
  const focused = document.activeElement && document.activeElement.id;
  const newKey = document.getElementById('kv-new-key');
  const newValue = document.getElementById('kv-new-value');
  const kept = [newKey ? newKey.value : '', newValue ? newValue.value : ''];
  const parts = [
    h('h2', {}, 'KV'),
    h('form.row', {
      onsubmit: (ev) => {
        ev.preventDefault();
        location.hash = '#/kv/' + document.getElementById('kv-prefix').value.trim();
      },
    }, h('label', { for: 'kv-prefix' }, 'Prefix '), h('input', { id: 'kv-prefix', type: 'text', value: prefix }),
    h('button', { type: 'submit' }, 'Browse')),
    note ? h(note.error ? 'p.note.error' : 'p.note', { role: 'status' }, note.text) : null,
    editor(),
    h('div', { id: 'kv-list' }, keys()),
    h('form.card', { onsubmit: create, 'aria-label': 'New key' },
      h('h3', {}, 'New key'),
      h('label', { for: 'kv-new-key' }, 'Key'), h('input', { id: 'kv-new-key', type: 'text', value: kept[0] }),
      h('label', { for: 'kv-new-value' }, 'Value'), h('textarea', { id: 'kv-new-value', rows: 3, value: kept[1] }),
      h('div.actions', {}, h('button', { type: 'submit' }, 'Create'))),
  ];
  root.replaceChildren(...parts.filter((p) => p !== null));
  if (focused && document.getElementById(focused)) {
    document.getElementById(focused).focus();
  }
}

export function render(el, arg) {
  root = el;
  if (arg !== prefix) {
    editing = null;
    note = null;
  }
  prefix = arg || '';
  draw();
  load();
}

// A "kv" event: read the list again when it touches the prefix; tell the
// editor when its key changed.
export function update(kind, data) {
  if (kind !== 'kv' || !data) {
    return;
  }
  if (editing && data.key === editing.key && data.modify_index !== editing.index) {
    editing.changed = data.op === 'delete' ? 'deleted' : 'index ' + data.modify_index;
    const span = document.getElementById('kv-changed');
    if (span) {
      span.textContent = changedText();
    }
  }
  if (String(data.key).startsWith(prefix)) {
    load();
  }
}

export function leave() {
  root = null;
}
