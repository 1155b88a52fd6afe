// services.js: the Services page: every service name with its instances
// counted by health and the tags they carry, each linking to its
// instances, and the registry replicas with their leader. Redrawn from the
// in-memory catalog on every change event.
import { byService, state } from './api.js';
import { badge, h } from './dom.js';

const HEALTHS = ['passing', 'warning', 'critical'];

// One line: the replicas (oldest first), the leader marked, and which one
// this page talks to.
function replicas() {
  const r = state.replicas;
  if (!r || !Array.isArray(r.replicas)) {
    return null;
  }
  const items = r.replicas.map((m) => h('li', { 'data-replica': m.id },
    h('code', {}, m.id), ' ', m.url || '', m.leader ? [' ', h('strong', {}, 'leader')] : null,
    m.self ? ' (this page)' : null));
  return h('section.replicas', { 'aria-label': 'Replicas' },
    h('p', {}, r.replicas.length + (r.replicas.length === 1 ? ' replica' : ' replicas') +
      (r.membership === 'local' && r.reason ? ' (' + r.reason + ')' : '') +
      (r.leader ? '' : ', no leader yet')),
    h('ul', {}, items));
}

export function render(root) {
  root.append(h('h2', {}, 'Services'));
  const rep = replicas();
  if (rep) {
    root.append(rep);
  }
  if (!state.loaded) {
    root.append(h('p', {}, state.auth.error ? 'The registry shows its catalog only with a token (above).'
      : 'Reading the catalog…'));
    return;
  }
  const groups = byService();
  if (groups.size === 0) {
    root.append(h('p', {}, 'No instance is registered.'));
    return;
  }
  const rows = [];
  for (const [name, list] of groups) {
    const counts = { passing: 0, warning: 0, critical: 0 };
    const tags = new Set();
    for (const inst of list) {
      counts[inst.health] = (counts[inst.health] || 0) + 1;
      for (const t of inst.tags || []) {
        tags.add(t);
      }
    }
    rows.push(h('tr', { 'data-service': name },
      h('th', { scope: 'row' }, h('a', { href: '#/service/' + encodeURIComponent(name) }, name)),
      h('td.num', {}, String(list.length)),
      HEALTHS.map((s) => h('td', {}, counts[s] ? [badge(s), ' ', String(counts[s])] : '–')),
      h('td', {}, [...tags].sort().map((t) => h('span.tag', {}, t)))));
  }
  root.append(h('div.scroll', {}, h('table.grid', {},
    h('caption', {}, groups.size + ' services, ' + state.instances.size + ' instances'),
    h('thead', {}, h('tr', {},
      h('th', { scope: 'col' }, 'Service'),
      h('th', { scope: 'col' }, 'Instances'),
      HEALTHS.map((s) => h('th', { scope: 'col' }, s[0].toUpperCase() + s.slice(1))),
      h('th', { scope: 'col' }, 'Tags'))),
    h('tbody', {}, rows))));
}
