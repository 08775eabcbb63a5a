// One request: who sent it, where it went and why (route reason, attempts, fallbacks), what
// it used and cost, and for a `full` request its bodies as kept: text as text (exactly as
// sent and received), other bytes as base64, with the cut noted when the proxy kept only
// the first bytes.

import { get, teamNames } from './api.js';
import { h, facts, table, note, money, count, when, failure } from './dom.js';
import { listHash } from './requests.js';

function yes(flag) {
  return flag ? 'yes' : 'no';
}

function tags(t) {
  const pairs = Object.entries(t || {});
  return pairs.length === 0 ? '—' : h('span', {}, pairs.map(([k, v]) => h('code', { class: 'tag' }, `${k}=${v}`)));
}

/** The length in bytes of what the log kept of a body. */
function keptBytes(b) {
  if (b.base64) return Math.floor((b.body.replace(/=+$/, '').length * 3) / 4);
  return new TextEncoder().encode(b.body).length;
}

function body(title, b, id) {
  const heading = h('h3', {}, title);
  if (!b) return h('section', { class: 'body' }, heading, note('None: the gateway answered with its own error.'));
  const about = [`${count(b.bytes)} bytes`];
  if (b.truncated) about.push(`only the first ${count(keptBytes(b))} were kept`);
  if (b.base64) about.push('not UTF-8 text: shown as base64');
  const pre = h('pre', { class: 'payload', id }, b.body);
  const tools = [];
  let parsed = null;
  if (!b.base64) {
    try {
      parsed = JSON.parse(b.body);
    } catch (e) {
      parsed = null;
    }
  }
  if (parsed !== null && typeof parsed === 'object') {
    let formatted = false;
    const toggle = h('button', { type: 'button', class: 'secondary small' }, 'Format JSON');
    toggle.addEventListener('click', () => {
      formatted = !formatted;
      pre.textContent = formatted ? JSON.stringify(parsed, null, 2) : b.body;
      toggle.textContent = formatted ? 'As kept' : 'Format JSON';
    });
    tools.push(toggle);
  }
  return h('section', { class: 'body' }, heading, h('p', { class: 'note' }, about.join('; '), ' ', tools), pre);
}

function payloads(d) {
  if (d.log_payloads !== 'full') {
    return [h('h2', {}, 'Bodies'), note('Not kept: this request was logged with the `metadata` policy.')];
  }
  if (!d.payload) {
    return [h('h2', {}, 'Bodies'), note('Not stored yet: they arrive a moment after the request. Reload to see them.')];
  }
  const p = d.payload;
  const headers = Object.entries(p.request_headers || {});
  return [
    h('h2', {}, 'Bodies'),
    h('section', { class: 'body' },
      h('h3', {}, 'Request headers'),
      headers.length === 0
        ? note('none')
        : table('headers', ['Header', 'Value'], headers.map(([k, v]) => h('tr', {}, h('td', { class: 'mono' }, k), h('td', { class: 'mono' }, v)))),
      note('Headers that can carry a credential never leave the proxy.')),
    body('Request body', p.request, 'request-body'),
    body(p.streamed ? 'Response (the stream as the client received it)' : 'Response body', p.response, 'response-body'),
  ];
}

/** Renders request `id` into `root`. */
export async function render(root, id) {
  root.append(h('p', {}, h('a', { href: listHash() }, '« Requests')));
  let d;
  let teams;
  try {
    [d, teams] = await Promise.all([get(`/admin/requests/${encodeURIComponent(id)}`), teamNames()]);
  } catch (e) {
    root.append(h('h1', {}, 'Request'), e.status === 404 ? note('No such request in the log (or not visible to this token).') : failure(e));
    return;
  }
  const refused = d.refused_code ? `${d.refused_code}${d.refused_limit ? ` (${d.refused_limit})` : ''}` : null;
  root.append(
    h('h1', {}, 'Request ', h('span', { class: 'mono', id: 'request-id' }, d.id)),
    h('div', { class: 'columns' },
      h('section', {}, h('h2', {}, 'Request'), facts([
        ['Time', when(d.time)],
        ['Status', `${d.status} (${d.outcome})`],
        ['Refused', refused],
        ['Endpoint', d.endpoint],
        ['Team', d.team_id ? `${teams.get(d.team_id) || ''} ${d.team_id}`.trim() : null],
        ['Key', d.key_id ? `${d.key_name || ''} ${d.key_id}`.trim() : null],
        ['Tags', tags(d.tags)],
        ['Proxy', d.proxy],
        ['Streamed', yes(d.streamed)],
        ['Abandoned by the client', yes(d.abandoned)],
        ['Log policy', d.log_payloads],
      ])),
      h('section', {}, h('h2', {}, 'Route'), facts([
        ['Alias asked for', d.alias],
        ['Provider', d.provider],
        ['Deployment', d.deployment],
        ['Upstream model', h('span', { id: 'request-model' }, d.model || '—')],
        ['Why this deployment', d.route_reason],
        ['Attempts', count(d.attempts)],
        ['Fallbacks', count(d.fallbacks)],
        ['Latency', `${count(d.latency_ms)} ms`],
        ['Time to first token', d.ttft_ms === null ? null : `${count(d.ttft_ms)} ms`],
      ])),
      h('section', {}, h('h2', {}, 'Usage and cost'), facts([
        ['Prompt tokens', count(d.prompt_tokens)],
        ['of which cache reads', count(d.cached_input_tokens)],
        ['of which cache writes (5 min / 1 h)', `${count(d.cache_write_5m_tokens)} / ${count(d.cache_write_1h_tokens)}`],
        ['Completion tokens', count(d.completion_tokens)],
        ['of which reasoning', count(d.reasoning_tokens)],
        ['Usage estimated', yes(d.usage_estimated)],
        ['Cost (ledger)', h('span', { id: 'request-cost' }, money(d.cost_usd))],
        ['Cost (proxy estimate)', money(d.proxy_cost_usd)],
        ['Cache hit', yes(d.cache_hit)],
      ]))),
    ...payloads(d));
}
