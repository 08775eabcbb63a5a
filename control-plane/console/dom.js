// Building the page from data without ever parsing data as markup: every value becomes a
// text node or an attribute value (set with setAttribute), so a model name, a tag or a
// request body is shown as the characters it is, whatever they are.

const SVG_NS = 'http://www.w3.org/2000/svg';

function build(el, attrs, children) {
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (typeof value === 'function' && name.startsWith('on')) {
      el.addEventListener(name.slice(2), value);
    } else {
      el.setAttribute(name, value === true ? '' : String(value));
    }
  }
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

/** An HTML element: `h('td', {class: 'num'}, 'text', otherNode, [more])`. */
export function h(tag, attrs, ...children) {
  return build(document.createElement(tag), attrs, children);
}

/** Replaces what `el` holds with `children` (as for `h`: nested arrays, and null left out). */
export function fill(el, ...children) {
  el.replaceChildren();
  return build(el, {}, children);
}

/** An SVG element, attributes as for `h`. */
export function s(tag, attrs, ...children) {
  return build(document.createElementNS(SVG_NS, tag), attrs, children);
}

/** A horizontal bar `fraction` (0..1) long, for tables of amounts; `limit`: a full bar is an alarm. */
export function bar(fraction, label, limit) {
  const f = Number.isFinite(fraction) ? Math.max(0, Math.min(1, fraction)) : 0;
  return s('svg', { class: 'bar', viewBox: '0 0 100 8', preserveAspectRatio: 'none', role: 'img', 'aria-label': label || '' },
    s('rect', { class: 'bar-track', x: 0, y: 0, width: 100, height: 8 }),
    s('rect', { class: limit && f >= 1 ? 'bar-fill over' : 'bar-fill', x: 0, y: 0, width: (f * 100).toFixed(2), height: 8 }));
}

/** A table: `columns` are header labels (a `num` column is right-aligned), `rows` arrays of cells. */
export function table(className, columns, rows) {
  return h('table', { class: className },
    h('thead', {}, h('tr', {}, columns.map((c) => h('th', { class: c.num ? 'num' : null }, c.label || c)))),
    h('tbody', {}, rows));
}

/** A definition list from `[label, value]` pairs (a value may be a node). */
export function facts(pairs) {
  return h('dl', { class: 'facts' }, pairs.map(([label, value]) => [h('dt', {}, label), h('dd', {}, value ?? '—')]));
}

/** A message in place of a table. */
export function note(text, className) {
  return h('p', { class: className || 'note' }, text);
}

/** Money as the API gives it (an exact decimal string), in dollars. */
export function money(value) {
  return value === undefined || value === null ? '—' : `$${value}`;
}

/** A count with thousands separators. */
export function count(n) {
  return n === undefined || n === null ? '—' : Number(n).toLocaleString('en-US');
}

/** An RFC 3339 time as `YYYY-MM-DD HH:MM:SS UTC`. */
export function when(iso) {
  if (!iso) return '—';
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? String(iso) : `${d.toISOString().slice(0, 19).replace('T', ' ')} UTC`;
}

/** A labelled form control. */
export function field(label, control) {
  return h('label', { class: 'field' }, h('span', {}, label), control);
}

/** An error box for a failed load. */
export function failure(error) {
  return h('p', { class: 'error', role: 'alert' }, `Could not load: ${error.message}`);
}
