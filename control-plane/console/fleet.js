// Fleet health: whether this control plane is ready (its database answers; the event
// position its snapshots have reached), and each deployment's circuit breaker as the proxies
// last announced it (GET /admin/health). A deployment no proxy reported is closed.

import { get } from './api.js';
import { h, fill, table, note, when, failure } from './dom.js';

function badge(state) {
  return h('span', { class: `badge ${state}` }, state.replace('_', '-'));
}

async function readiness() {
  try {
    const response = await fetch('/readyz', { cache: 'no-store', credentials: 'omit' });
    const body = await response.json();
    return body.ready
      ? h('p', { class: 'ok', id: 'control-plane-ready' }, `Control plane ready; event log at position ${body.position}.`)
      : h('p', { class: 'error', id: 'control-plane-ready' }, 'Control plane not ready: its database does not answer.');
  } catch (e) {
    return h('p', { class: 'error', id: 'control-plane-ready' }, 'Control plane readiness unknown.');
  }
}

function proxies(list) {
  return h('ul', { class: 'proxies' }, list.map((p) => h('li', {},
    h('span', { class: 'mono' }, p.proxy), ' ', badge(p.state),
    p.error ? ` ${p.error}` : '', h('span', { class: 'dim' }, ` since ${when(p.changed_at)}`))));
}

/** Renders the fleet's health into `root`. */
export async function render(root) {
  const body = h('div', {}, note('Loading…'));
  root.append(h('h1', {}, 'Fleet'), body);
  let report;
  let ready;
  try {
    [report, ready] = await Promise.all([get('/admin/health'), readiness()]);
  } catch (e) {
    fill(body, failure(e));
    return;
  }
  const deployments = report.deployments;
  const open = deployments.filter((d) => d.state === 'open').length;
  const probing = deployments.filter((d) => d.state === 'half_open').length;
  const shown = deployments.length === 0
    ? [note('No proxy has reported a breaker change: every deployment is closed as far as the control plane knows.')]
    : [
      note(`${deployments.length} deployment(s) reported by the proxies: ${open} open, ${probing} half-open.`),
      table('health', ['Deployment', 'Provider', 'State', 'Proxies'], deployments.map((d) => h('tr', { 'data-deployment': d.deployment },
        h('td', { class: 'mono' }, d.deployment),
        h('td', {}, d.provider),
        h('td', {}, badge(d.state)),
        h('td', {}, proxies(d.proxies))))),
    ];
  fill(body, ready, h('h2', {}, 'Deployments'), ...shown);
}
