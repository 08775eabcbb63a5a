// The console's shell: sign-in, navigation and the hash router.
//
// Routes: #/requests[?filters], #/requests/<id>, #/spend[?from=&to=], #/budgets, #/fleet.
// Each navigation renders into a fresh section; a load still under way for a view the user
// has left writes into a detached section and is never seen.

import { token, forget } from './api.js';
import * as requests from './requests.js';
import * as detail from './detail.js';
import * as spend from './spend.js';
import * as budgets from './budgets.js';
import * as fleet from './fleet.js';

const $ = (id) => document.getElementById(id);

const VIEWS = {
  requests: { title: 'Requests', render: (root, r) => (r.id ? detail.render(root, r.id) : requests.render(root, r.params)) },
  spend: { title: 'Spend', render: (root, r) => spend.render(root, r.params) },
  budgets: { title: 'Budgets', render: (root) => budgets.render(root) },
  fleet: { title: 'Fleet', render: (root) => fleet.render(root) },
};

/** The current hash as `{view, id, params}`. */
function route() {
  const hash = location.hash.replace(/^#\/?/, '');
  const cut = hash.indexOf('?');
  const path = cut < 0 ? hash : hash.slice(0, cut);
  const parts = path.split('/').filter(Boolean);
  const view = VIEWS[parts[0]] ? parts[0] : 'requests';
  return {
    view,
    id: parts[1] ? decodeURIComponent(parts[1]) : null,
    params: new URLSearchParams(cut < 0 ? '' : hash.slice(cut + 1)),
  };
}

function show() {
  const signedIn = token.get() !== '';
  $('sign-in').hidden = signedIn;
  $('nav').hidden = !signedIn;
  $('sign-out').hidden = !signedIn;
  if (!signedIn) {
    $('view').replaceChildren();
    document.title = 'Switchyard console';
    $('token').focus();
    return;
  }
  const r = route();
  for (const link of document.querySelectorAll('#nav a')) {
    if (link.dataset.view === r.view) link.setAttribute('aria-current', 'page');
    else link.removeAttribute('aria-current');
  }
  document.title = `${VIEWS[r.view].title} · Switchyard console`;
  const root = document.createElement('section');
  root.className = 'view';
  root.id = `view-${r.id ? 'request' : r.view}`;
  $('view').replaceChildren(root);
  VIEWS[r.view].render(root, r);
}

$('sign-in').addEventListener('submit', (event) => {
  event.preventDefault();
  const value = $('token').value.trim();
  if (!value) return;
  forget();
  token.set(value);
  $('token').value = '';
  $('sign-in-error').textContent = '';
  show();
});

$('sign-out').addEventListener('click', () => {
  token.clear();
  forget();
  show();
});

window.addEventListener('console:unauthorized', () => {
  forget();
  $('sign-in-error').textContent = 'The control plane refused that token. Sign in again.';
  show();
});

window.addEventListener('hashchange', show);
show();
