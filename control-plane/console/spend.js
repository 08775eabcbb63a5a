// Spend over a range of UTC days, by team, by model and by tag, from the ledger
// (GET /admin/spend). Each tag row counts every request carrying that tag once, so the tag
// table need not add up to the total. Amounts are the ledger's exact decimals; the bars are
// only a picture of them.

import { get, teamNames } from './api.js';
import { h, fill, table, note, money, count, bar, field, failure } from './dom.js';

const DAY = 86400000;

/** `YYYY-MM-DD` of a time (UTC). */
function day(t) {
  return new Date(t).toISOString().slice(0, 10);
}

/** The first day and the last day (inclusive) of the current UTC month. */
function thisMonth() {
  const now = new Date();
  const first = Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), 1);
  const next = Date.UTC(now.getUTCFullYear(), now.getUTCMonth() + 1, 1);
  return [day(first), day(next - DAY)];
}

function presets() {
  const today = day(Date.now());
  const back = (n) => day(Date.now() - n * DAY);
  const [first, last] = thisMonth();
  const link = (label, from, to) => h('a', { href: `#/spend?from=${from}&to=${to}`, class: 'button secondary small' }, label);
  return h('div', { class: 'presets' },
    link('Today', today, today), link('Last 7 days', back(6), today),
    link('This month', first, last), link('Last 30 days', back(29), today));
}

function rangeForm(from, to) {
  const form = h('form', { class: 'filters', id: 'spend-range' },
    field('From (UTC day)', h('input', { type: 'date', name: 'from', value: from, required: true })),
    field('To (UTC day, included)', h('input', { type: 'date', name: 'to', value: to, required: true })),
    h('div', { class: 'actions' }, h('button', { type: 'submit' }, 'Show')),
    presets());
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    const data = new FormData(form);
    location.hash = `#/spend?from=${encodeURIComponent(data.get('from'))}&to=${encodeURIComponent(data.get('to'))}`;
  });
  return form;
}

const COLUMNS = [{ label: 'Requests', num: true }, { label: 'Refused', num: true },
  { label: 'Prompt tokens', num: true }, { label: 'Completion tokens', num: true }, { label: 'Cost', num: true }, ''];

function groupTable(id, label, rows, name) {
  if (rows.length === 0) return note('No spend in this range.');
  const top = Math.max(...rows.map((r) => parseFloat(r.cost_usd) || 0));
  return table(`spend ${id}`, [label, ...COLUMNS], rows.map((r) => h('tr', {},
    h('td', {}, name(r)),
    h('td', { class: 'num' }, count(r.requests)),
    h('td', { class: 'num' }, count(r.refused)),
    h('td', { class: 'num' }, count(r.prompt_tokens)),
    h('td', { class: 'num' }, count(r.completion_tokens)),
    h('td', { class: 'num' }, money(r.cost_usd)),
    h('td', { class: 'barcell' }, bar(top > 0 ? (parseFloat(r.cost_usd) || 0) / top : 0, money(r.cost_usd))))));
}

/** Renders spend for the days in `params` (`from`, `to`: UTC days, both included). */
export async function render(root, params) {
  const [first, last] = thisMonth();
  const valid = (d) => /^\d{4}-\d{2}-\d{2}$/.test(d || '');
  const from = valid(params.get('from')) ? params.get('from') : first;
  const to = valid(params.get('to')) ? params.get('to') : last;
  const body = h('div', {}, note('Loading…'));
  root.append(h('h1', {}, 'Spend'), rangeForm(from, to), body);
  const range = { from: `${from}T00:00:00Z`, to: `${day(Date.parse(`${to}T00:00:00Z`) + DAY)}T00:00:00Z` };
  let teams;
  let reports;
  try {
    [teams, ...reports] = await Promise.all([teamNames(),
      ...['team', 'model', 'tag'].map((g) => get('/admin/spend', { group_by: g, ...range }))]);
  } catch (e) {
    fill(body, failure(e));
    return;
  }
  const [byTeam, byModel, byTag] = reports;
  const total = byTeam.total;
  const truncated = reports.some((r) => r.truncated);
  fill(body,
    h('p', { class: 'total', id: 'spend-total' },
      `${money(total.cost_usd)} over ${count(total.requests)} requests (${count(total.prompt_tokens)} prompt and `,
      `${count(total.completion_tokens)} completion tokens), ${from} to ${to} UTC.`),
    truncated ? note('Some tables hold only their 10,000 largest rows.') : null,
    h('h2', {}, 'By team'),
    groupTable('by-team', 'Team', byTeam.rows, (r) => (r.team_id ? teams.get(r.team_id) || r.team_id : '(no team)')),
    h('h2', {}, 'By model'),
    groupTable('by-model', 'Model', byModel.rows, (r) => r.model || '(none)'),
    h('h2', {}, 'By tag'),
    groupTable('by-tag', 'Tag', byTag.rows, (r) => h('code', { class: 'tag' }, r.tag)));
}
