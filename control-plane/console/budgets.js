// Budgets with what they used and what remains in the current period
// (GET /admin/budgets/usage, summed from the ledger). A tag budget has a line per value of
// its tag that spent this period, each with the whole amount to itself.

import { get, teamNames } from './api.js';
import { h, fill, table, note, money, bar, when, failure } from './dom.js';

function appliesTo(b, pool, teams) {
  if (b.scope === 'team') return teams.get(b.target) || b.target;
  if (b.scope === 'key') return h('span', { class: 'mono' }, b.target);
  return h('code', { class: 'tag' }, pool ? `${b.target}=${pool.scope_value}` : `${b.target}=*`);
}

function period(b) {
  const since = when(b.period_start).slice(0, 10);
  if (b.period === 'total') return 'total';
  return `${b.period}, since ${since}`;
}

function line(b, pool, teams) {
  const amount = parseFloat(b.amount_usd);
  const spent = pool ? parseFloat(pool.spent_usd) : 0;
  const share = amount > 0 ? spent / amount : NaN;
  const percent = Number.isFinite(share) ? `${(share * 100).toFixed(1)}%` : '—';
  return h('tr', { 'data-budget-id': b.id },
    h('td', {}, b.name),
    h('td', {}, b.scope),
    h('td', {}, appliesTo(b, pool, teams)),
    h('td', {}, period(b)),
    h('td', {}, b.hard ? 'hard' : 'soft'),
    h('td', { class: 'num' }, money(b.amount_usd)),
    h('td', { class: 'num used' }, pool ? money(pool.spent_usd) : '$0'),
    h('td', { class: 'num remaining' }, pool ? money(pool.remaining_usd) : money(b.amount_usd)),
    h('td', { class: 'num' }, percent),
    h('td', { class: 'barcell' }, bar(share, percent, true)));
}

/** Renders every budget this token sees into `root`. */
export async function render(root) {
  const body = h('div', {}, note('Loading…'));
  root.append(h('h1', {}, 'Budgets'), body);
  let page;
  let teams;
  try {
    [page, teams] = await Promise.all([get('/admin/budgets/usage', { limit: 1000 }), teamNames()]);
  } catch (e) {
    fill(body, failure(e));
    return;
  }
  if (page.data.length === 0) {
    fill(body, note('No budgets.'));
    return;
  }
  const rows = page.data.flatMap((b) => (b.pools.length === 0 ? [line(b, null, teams)] : b.pools.map((p) => line(b, p, teams))));
  fill(body,
    note('Used is the folded spend of the current period (UTC), so it trails traffic by a moment. Hard budgets refuse requests once used up; soft ones only alert.'),
    table('budgets', ['Budget', 'Scope', 'Applies to', 'Period', 'Kind', { label: 'Amount', num: true },
      { label: 'Used', num: true }, { label: 'Remaining', num: true }, { label: 'Used %', num: true }, ''], rows),
    page.next ? note('Only the first 1,000 budgets are shown.') : null);
}
