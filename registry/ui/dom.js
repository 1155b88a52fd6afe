// dom.js: small helpers to build the page from data without HTML strings:
// every text goes in as a text node, so nothing from the registry is ever
// parsed as markup.

// h('tag.class', {attr: value, onclick: fn}, child, ...): an element.
// Children are nodes, strings (text) or arrays of them; null is skipped.
export function h(spec, attrs, ...children) {
  const [tag, ...classes] = spec.split('.');
  const el = document.createElement(tag);
  if (classes.length) {
    el.className = classes.join(' ');
  }
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) {
      continue;
    }
    if (name.startsWith('on')) {
      el.addEventListener(name.slice(2), value);
    } else if (name === 'value') {
      el.value = value;
    } else {
      el.setAttribute(name, value === true ? '' : String(value));
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) {
      continue;
    }
    if (Array.isArray(child)) {
      append(el, child);
    } else if (child instanceof Node) {
      el.appendChild(child);
    } else {
      el.appendChild(document.createTextNode(String(child)));
    }
  }
}

// A health (passing, warning, critical, or a breaker state) as a badge:
// a symbol and the word, coloured; the word carries the meaning, the
// colour only repeats it.
const SYMBOLS = {
  passing: '✓', warning: '!', critical: '✕',
  closed: '✓', 'half-open': '!', open: '✕',
};
export function badge(status) {
  const s = String(status || 'unknown');
  return h('span.badge.s-' + s.replace(/[^a-z-]/g, ''), {}, (SYMBOLS[s] || '?') + ' ' + s);
}

// Unix seconds as local time, with how long ago.
export function when(seconds) {
  if (!seconds) {
    return '';
  }
  const d = new Date(seconds * 1000);
  return d.toLocaleTimeString() + ' (' + ago(Date.now() - d.getTime()) + ')';
}

// A duration in ms as "5 s ago", "3 min ago", ...
export function ago(ms) {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 90) {
    return s + ' s ago';
  }
  if (s < 5400) {
    return Math.round(s / 60) + ' min ago';
  }
  return Math.round(s / 3600) + ' h ago';
}
