// The request log: filters, the list (newest first, a page at a time through `next`), and a
// row click that opens the request's detail (detail.js). Filters and the page live in the
// hash (#/requests?model=...&after=...), so the browser's back button and links keep them.

import { get, query, teamNames } from './api.js';
import { h, fill, table, note, money, count, when, field, failure } from './dom.js';

const PAGE = 50;
const FILTERS = ['team_id', 'key_id', 'model', 'provider', 'status', 'outcome', 'tag', 'from', 'to'];

let lastList = '#/requests';

/** The hash of the list the user last looked at (the detail view's way back). */
export function listHash() {
  return lastList;
}

/** `YYYY-MM-DDTHH:MM[:SS]` (UTC, as typed) → RFC 3339. */
function toIso(local) {
  if (!local) return '';
  return `${local.length === 16 ? `${local}:00` : local}Z`;
}

/** RFC 3339 → what a datetime-local input shows (UTC). */
function fromIso(iso) {
  const d = new Date(iso || '');
  return Number.isNaN(d.getTime()) ? '' : d.toISOString().slice(0, 19);
}

function filterForm(params, teams) {
  const value = (name) => params.get(name) || '';
  const text = (name, placeholder) => h('input', { name, value: value(name), placeholder, autocomplete: 'off' });
  const teamSelect = h('select', { name: 'team_id' }, h('option', { value: '' }, 'All teams'),
    [...teams].map(([id, name]) => h('option', { value: id, selected: id === value('team_id') }, name)));
  const outcome = h('select', { name: 'outcome' }, ['', 'ok', 'upstream_error', 'refused'].map(
    (o) => h('option', { value: o, selected: o === value('outcome') }, o || 'Any outcome')));
  const time = (name) => h('input', { name, type: 'datetime-local', step: 1, value: fromIso(value(name)) });
  const form = h('form', { class: 'filters', id: 'request-filters' },
    field('Team', teamSelect),
    field('Key id', text('key_id', 'key uuid')),
    field('Model', text('model', 'upstream model')),
    field('Provider', text('provider', 'provider id')),
    field('Status', h('input', { name: 'status', value: value('status'), inputmode: 'numeric', placeholder: '200' })),
    field('Outcome', outcome),
    field('Tag', text('tag', 'name=value')),
    field('From (UTC)', time('from')),
    field('To (UTC)', time('to')),
    h('div', { class: 'actions' },
      h('button', { type: 'submit' }, 'Apply'),
      h('a', { href: '#/requests', class: 'button secondary' }, 'Clear')));
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    const data = new FormData(form);
    const chosen = {};
    for (const name of FILTERS) chosen[name] = data.get(name);
    chosen.from = toIso(chosen.from);
    chosen.to = toIso(chosen.to);
    location.hash = `#/requests${query(chosen)}`;
  });
  return form;
}

function statusCell(r) {
  const label = r.outcome === 'ok' ? String(r.status) : `${r.status} ${r.outcome}`;
  const why = r.refused_code ? ` (${r.refused_code})` : '';
  return h('td', { class: r.status >= 400 ? 'status bad' : 'status' }, label + why);
}

function row(r, teams) {
  const href = `#/requests/${encodeURIComponent(r.id)}`;
  const tr = h('tr', { class: 'link', 'data-request-id': r.id, tabindex: 0 },
    h('td', { class: 'time' }, when(r.time)),
    h('td', {}, h('a', { href, class: 'mono' }, r.id)),
    h('td', {}, teams.get(r.team_id) || r.team_id || '—'),
    h('td', {}, r.key_name || r.key_id || '—'),
    h('td', {}, r.model || r.alias, r.model && r.alias !== r.model ? h('span', { class: 'dim' }, ` via ${r.alias}`) : null),
    h('td', {}, r.provider || '—'),
    statusCell(r),
    h('td', { class: 'num' }, `${count(r.prompt_tokens)} / ${count(r.completion_tokens)}`),
    h('td', { class: 'num' }, money(r.cost_usd)),
    h('td', { class: 'num' }, `${count(r.latency_ms)} ms`));
  const open = () => { location.hash = href; };
  tr.addEventListener('click', (event) => {
    if (!event.target.closest('a')) open();
  });
  tr.addEventListener('keydown', (event) => {
    if (event.key === 'Enter') open();
  });
  return tr;
}

function pager(params, next) {
  const here = Object.fromEntries(params);
  const links = [];
  if (params.get('after')) {
    links.push(h('a', { href: `#/requests${query({ ...here, after: '' })}`, class: 'button secondary' }, '« Newest'));
  }
  if (next) {
    links.push(h('a', { href: `#/requests${query({ ...here, after: next })}`, class: 'button secondary', id: 'older' }, 'Older »'));
  }
  return h('div', { class: 'pager' }, links);
}

/** Renders the list for the filters in `params` into `root`. */
export async function render(root, params) {
  lastList = location.hash || '#/requests';
  const teams = await teamNames();
  const list = h('div', { class: 'list' }, note('Loading…'));
  root.append(h('h1', {}, 'Requests'), filterForm(params, teams), list);
  const wanted = { limit: PAGE, after: params.get('after') };
  for (const name of FILTERS) wanted[name] = params.get(name);
  let page;
  try {
    page = await get('/admin/requests', wanted);
  } catch (e) {
    fill(list, failure(e));
    return;
  }
  if (page.data.length === 0) {
    fill(list, note('No logged requests match. (Keys and teams whose log policy is off are metered but never listed.)'));
    return;
  }
  const columns = ['Time', 'Request', 'Team', 'Key', 'Model', 'Provider', 'Status',
    { label: 'Tokens in / out', num: true }, { label: 'Cost', num: true }, { label: 'Latency', num: true }];
  fill(list,
    table('requests', columns, page.data.map((r) => row(r, teams))),
    pager(params, page.next));
}
