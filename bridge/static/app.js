// Bridge: Discovery's dashboard. A page that routes itself (#/…) and calls the
// REST API with the operator's token; every rule (who may do what, which state
// may follow which) lives in the platform, never here.
'use strict';

const $ = (sel, root = document) => root.querySelector(sel);
const main = $('#main');
const TOKEN_KEY = 'bridge.token';
const HISTORY_MS = 60 * 60 * 1000; // the sessions chart's window, at most (the platform keeps 24 h)
const MIN_SPAN_MS = 10 * 1000; // and at least: a fresh page uses the whole width
const COLORS = ['#0b6bcb', '#d97706', '#15803d', '#be185d', '#0e7490', '#b91c1c'];
window.__bridgeLoadedAt = Date.now(); // tests check the page never reloads

// h builds an element: h('a', {href: '#/'}, 'text', child…). Text is always
// a text node, so nothing the API returns is ever parsed as HTML.
function h(tag, attrs, ...kids) {
  const svg = ['svg', 'polyline', 'line', 'text', 'circle', 'title'].includes(tag);
  const el = svg ? document.createElementNS('http://www.w3.org/2000/svg', tag) : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === false || v == null) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? '' : v);
  }
  for (const kid of kids.flat(Infinity)) if (kid != null && kid !== false) el.append(kid instanceof Node ? kid : String(kid));
  return el;
}

// ---- the API -------------------------------------------------------------

class APIError extends Error {
  constructor(status, code, message) { super(message); this.status = status; this.code = code; }
}

async function api(method, path, body, signal) {
  const headers = { Authorization: 'Bearer ' + sessionStorage.getItem(TOKEN_KEY) };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const res = await fetch('/api/v1' + path, { method, headers, signal, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await res.text();
  const json = (res.headers.get('Content-Type') || '').includes('json');
  const data = json && text ? JSON.parse(text) : text; // text: a replica's log
  if (res.status === 401 && path !== '/whoami?login=1') { signOut('Your token was refused; sign in again.'); }
  if (!res.ok) {
    const e = (data && data.error) || {};
    throw new APIError(res.status, e.code || 'error', e.message || res.statusText);
  }
  return data;
}

const enc = encodeURIComponent;
const appPath = (t, a) => `/tenants/${enc(t)}/apps/${enc(a)}`;

// ---- small helpers -------------------------------------------------------

function flash(msg, kind = 'ok') {
  const f = $('#flash');
  flash.at = Date.now();
  f.replaceChildren(h('p', { class: kind }, msg));
  f.setAttribute('role', kind === 'err' ? 'alert' : 'status');
  clearTimeout(flash.timer);
  if (kind === 'ok') flash.timer = setTimeout(() => f.replaceChildren(), 6000);
}

function age(iso) {
  const s = Math.max(0, (Date.now() - Date.parse(iso)) / 1000);
  if (s < 60) return Math.floor(s) + 's';
  if (s < 3600) return Math.floor(s / 60) + 'm';
  if (s < 86400) return Math.floor(s / 3600) + 'h';
  return Math.floor(s / 86400) + 'd';
}

const clock = iso => new Date(iso).toLocaleTimeString([], { hour12: false });
const plural = (n, one) => `${n} ${one}${n === 1 ? '' : 's'}`;

// bytes prints a byte count short: 512 B, 1.5 KiB, 4 MiB.
function bytes(n) {
  const units = ['B', 'KiB', 'MiB', 'GiB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return (i === 0 ? n : Math.round(n * 10) / 10) + ' ' + units[i];
}

// seconds reads a Go duration ("1m30s", "41s", "1.5s") as seconds.
function seconds(d) {
  const unit = { h: 3600, m: 60, s: 1, ms: 1e-3, us: 1e-6, 'µs': 1e-6, ns: 1e-9 };
  let total = 0;
  for (const [, n, u] of String(d || '').matchAll(/([\d.]+)(h|ms|m|s|us|µs|ns)/g)) total += Number(n) * unit[u];
  return total;
}

// left prints a time left short: 41s, 2m 05s, 1h 00m.
function left(s) {
  s = Math.max(0, Math.round(s));
  const pad = n => String(n).padStart(2, '0');
  if (s < 60) return s + 's';
  if (s < 3600) return `${Math.floor(s / 60)}m ${pad(s % 60)}s`;
  return `${Math.floor(s / 3600)}h ${pad(Math.floor(s / 60) % 60)}m`;
}

function confirmAction(title, text, okLabel) {
  const d = $('#confirm');
  if (typeof d.showModal !== 'function') return Promise.resolve(window.confirm(title + '\n' + text));
  $('#confirm-title').textContent = title;
  $('#confirm-text').textContent = text;
  $('#confirm-ok').textContent = okLabel;
  d.returnValue = 'cancel';
  d.showModal();
  $('#confirm-ok').focus();
  return new Promise(resolve => d.addEventListener('close', () => resolve(d.returnValue === 'ok'), { once: true }));
}

// busy disables a button while its request runs, and reports the outcome.
async function busy(button, work, done) {
  if (button) button.disabled = true;
  try { const out = await work(); if (done) flash(done(out)); return out; }
  catch (e) { flash(e.message, 'err'); }
  finally { if (button) button.disabled = false; }
}

function field(label, name, attrs = {}, hint) {
  const id = 'f-' + name;
  return h('div', { class: 'field' },
    h('label', { for: id }, label),
    attrs.rows ? h('textarea', { id, name, ...attrs }) : h('input', { id, name, type: 'text', ...attrs }),
    hint && h('small', { id: id + '-hint', class: 'hint' }, hint));
}

function formValues(form) { return Object.fromEntries(new FormData(form).entries()); }

function setPage(title, crumbs) {
  document.title = title + ' · Bridge';
  $('#crumbs').replaceChildren(h('ol', null, crumbs.map(([text, href], i) =>
    h('li', null, i === crumbs.length - 1 ? h('span', { 'aria-current': 'page' }, text) : h('a', { href }, text)))));
}

// whoami tells what the caller may do in a tenant: pages show no button it
// may not use (the API refuses them anyway).
async function who(tenant) {
  return api('GET', '/whoami' + (tenant ? '?tenant=' + enc(tenant) : ''));
}

function showWho(me) {
  const role = me.admin ? ' admin' : me.role ? ' ' + me.role : '';
  $('#who').replaceChildren(h('span', null, me.subject, h('small', null, role, me.scope && h('span', { class: 'scope', title: `This token is bound to tenant ${me.scope}: it grants nothing elsewhere.` }, ` · ${me.scope} only`))),
    h('button', { type: 'button', class: 'secondary small', onclick: () => signOut('Signed out.') }, 'Sign out'));
}

function signOut(msg) {
  sessionStorage.removeItem(TOKEN_KEY);
  $('#who').replaceChildren();
  if (location.hash !== '#/login') location.hash = '#/login';
  else route();
  if (msg) flash(msg);
}

// ---- router --------------------------------------------------------------

let current = null; // the view's stop handles

function route() {
  const hash = location.hash || '#/';
  if (!hash.startsWith('#/')) { // an in-page anchor (the skip link); on load, the start page
    if (!current) location.hash = '#/';
    return;
  }
  if (current) current.abort();
  current = new AbortController();
  if (Date.now() - (flash.at || 0) > 1500) $('#flash').replaceChildren(); // not news from the action that led here
  const view = { signal: current.signal, every(fn, ms) { const t = setInterval(fn, ms); view.signal.addEventListener('abort', () => clearInterval(t)); } };
  const parts = hash.slice(2).split('/').filter(Boolean).map(decodeURIComponent);
  const nav = $('#nav-images');
  if (parts[0] === 'images') nav.setAttribute('aria-current', 'page'); else nav.removeAttribute('aria-current');
  let page;
  if (!sessionStorage.getItem(TOKEN_KEY) || parts[0] === 'login') page = loginPage(view);
  else if (parts[0] === 't' && parts[2] === 'a' && parts[4] === 'logs') page = logsPage(view, parts[1], parts[3], parts[5], parts[6]);
  else if (parts[0] === 't' && parts[2] === 'a') page = appPage(view, parts[1], parts[3]);
  else if (parts[0] === 't') page = appsPage(view, parts[1]);
  else if (parts[0] === 'images') page = imagesPage(view);
  else page = tenantsPage(view);
  page.catch(e => { if (!view.signal.aborted) main.replaceChildren(h('h1', null, 'Something went wrong'), h('p', { class: 'err' }, e.message)); });
}

window.addEventListener('hashchange', route);
window.addEventListener('DOMContentLoaded', route);

function show(...kids) {
  main.replaceChildren(...kids);
  const h1 = $('h1', main);
  if (h1) { h1.tabIndex = -1; h1.focus({ preventScroll: true }); }
}

// ---- pages ---------------------------------------------------------------

async function loginPage() {
  setPage('Sign in', [['Sign in', '#/login']]);
  const form = h('form', { id: 'login-form', class: 'card narrow' },
    field('API token', 'token', { type: 'password', autocomplete: 'off', required: true, 'aria-describedby': 'f-token-hint' },
      'A bearer token: the first start writes the admin\'s to data/admin.token.'),
    h('button', { type: 'submit' }, 'Sign in'));
  form.addEventListener('submit', async ev => {
    ev.preventDefault();
    sessionStorage.setItem(TOKEN_KEY, form.token.value.trim());
    try {
      const me = await api('GET', '/whoami?login=1');
      flash('Signed in as ' + me.subject + '.');
      // Back to the page that asked for a sign-in (a shared link), if any.
      const next = !location.hash.startsWith('#/') || location.hash === '#/login' ? '#/' : location.hash;
      if (location.hash === next) route(); else location.hash = next;
    } catch (e) {
      sessionStorage.removeItem(TOKEN_KEY);
      flash('That token was refused: ' + e.message, 'err');
    }
  });
  show(h('h1', null, 'Sign in to Bridge'), h('p', { class: 'muted' }, 'Discovery\'s dashboard: apps, rollouts, sessions, live.'), form);
  form.token.focus();
}

function bar(label, used, max, fmt = String) {
  const pct = max > 0 ? Math.min(100, Math.round(100 * used / max)) : 0;
  const fill = h('span', { class: 'fill' + (pct >= 90 ? ' hot' : pct >= 70 ? ' warm' : '') });
  fill.style.width = pct + '%';
  return h('div', { class: 'bar' }, h('span', { class: 'bar-label' }, label, h('b', null, `${fmt(used)} / ${fmt(max)}`)),
    h('span', { class: 'track', role: 'meter', 'aria-label': label, 'aria-valuemin': 0, 'aria-valuemax': max, 'aria-valuenow': used,
      'aria-valuetext': `${fmt(used)} of ${fmt(max)}` }, fill));
}

// quotaView is a tenant's quota with its usage: bars for what fills up, a
// line for the per-replica and per-revision bounds.
function quotaView(q) {
  const u = q.usage;
  return [bar('Apps', u.apps, q.max_apps), bar('Replicas', u.replicas, q.max_replicas),
    bar('Stored specs', u.stored_bytes || 0, q.max_stored_bytes, bytes),
    h('p', { class: 'muted small', 'data-field': 'quota-limits' }, `${plural(u.revisions || 0, 'revision')} stored; each app keeps ${q.max_revisions} old ones. ` +
      `Per replica at most ${q.max_cpu_millis} mCPU, ${q.max_memory_mb} MB; at most ${plural(q.max_leases_per_revision, 'lease')} per revision.`)];
}

async function tenantsPage(view) {
  setPage('Tenants', [['Tenants', '#/']]);
  const [me, list] = await Promise.all([who(), api('GET', '/tenants')]);
  showWho(me);
  const cards = await Promise.all(list.tenants.map(async t => {
    const q = await api('GET', `/tenants/${enc(t.name)}/quota`).catch(() => null);
    return h('li', { class: 'card tenant', 'data-tenant': t.name },
      h('h2', null, h('a', { href: `#/t/${enc(t.name)}` }, t.name), t.deleting && h('span', { class: 'badge retired' }, 'deleting'),
        t.allow_commands && h('span', { class: 'badge trusted', title: 'An admin allowed this tenant to deploy raw commands.' }, 'commands allowed')),
      q && quotaView(q),
      me.can['quota:write'] && q && quotaForm(t.name, q));
  }));
  show(h('h1', null, 'Tenants'),
    cards.length ? h('ul', { class: 'grid' }, cards) : h('p', { class: 'muted' }, 'You have a role in no tenant yet.'));
}

// quotaForm changes a tenant's quota (admins): only the fields changed are
// sent; the platform keeps the others.
function quotaForm(tenant, q) {
  const labels = { max_apps: 'Apps', max_replicas: 'Replicas', max_revisions: 'Old revisions kept', max_cpu_millis: 'mCPU per replica',
    max_memory_mb: 'MB per replica', max_leases_per_revision: 'Leases per revision', max_stored_bytes: 'Stored bytes' };
  const keys = Object.keys(labels);
  const form = h('form', { class: 'fields quota-form' }, keys.map(k => field(labels[k], `${tenant}-${k}`,
    { type: 'number', min: k.startsWith('max_leases') || k === 'max_stored_bytes' ? 1 : 0, value: q[k], 'data-key': k,
      'aria-describedby': k === 'max_stored_bytes' ? `f-${tenant}-${k}-hint` : null }, k === 'max_stored_bytes' ? `Now ${bytes(q[k])}: revision specs (image, command, env) kept.` : null)),
  h('button', { type: 'submit' }, 'Save quota'));
  form.addEventListener('submit', ev => {
    ev.preventDefault();
    const body = {};
    for (const k of keys) {
      const v = Number($(`[data-key=${k}]`, form).value);
      if (v !== q[k]) body[k] = v;
    }
    if (!Object.keys(body).length) { flash(`Nothing changed in the quota of ${tenant}.`); return; }
    busy($('button', form), () => api('PUT', `/tenants/${enc(tenant)}/quota`, body), () => `Quota of ${tenant} saved.`).then(out => out && route());
  });
  return h('details', null, h('summary', null, 'Change quota'), form);
}

async function appsPage(view, tenant) {
  setPage(`Apps of ${tenant}`, [['Tenants', '#/'], [tenant, `#/t/${enc(tenant)}`]]);
  const [me, list, t] = await Promise.all([who(tenant), api('GET', `/tenants/${enc(tenant)}/apps`), api('GET', `/tenants/${enc(tenant)}`).catch(() => null)]);
  showWho(me);
  const rows = list.apps.map(a => h('tr', { 'data-app': a.name },
    h('th', { scope: 'row' }, h('a', { href: `#/t/${enc(tenant)}/a/${enc(a.name)}` }, a.name)),
    h('td', { 'data-label': 'Replicas' }, a.target_sessions ? `${a.min_replicas}–${a.max_replicas} (autoscaled)` : a.replicas),
    h('td', { 'data-label': 'Health' }, a.health_path || 'TCP'),
    h('td', { 'data-label': 'Created' }, age(a.created_at) + ' ago'),
    h('td', { 'data-label': 'State' }, appState(a))));
  const table = rows.length ? h('table', { class: 'list' }, h('caption', { class: 'sr-only' }, `Apps of tenant ${tenant}`),
    h('thead', null, h('tr', null, ['App', 'Replicas', 'Health check', 'Created', 'State'].map(c => h('th', { scope: 'col' }, c)))),
    h('tbody', null, rows)) : h('p', { class: 'muted' }, 'No apps yet.');
  show(h('h1', null, 'Apps', h('small', null, ' of ' + tenant)), table, t && trustSection(me, t), me.can['apps:write'] && createAppForm(tenant));
}

// appState is an app's badge in the apps list: deleting, its last deploy
// failed (flagged, with the reason), a deploy on its way, or ok.
function appState(a) {
  const d = a.last_deploy;
  if (a.deleting) return h('span', { class: 'badge retired' }, 'deleting');
  if (d && d.failed) {
    return h('span', { class: 'badge failed', 'data-field': 'last-deploy', title: d.reason || '' },
      `last deploy failed (${d.label || d.revision})`);
  }
  if (d && (d.state === 'pending' || d.state === 'starting')) return h('span', { class: 'badge starting', 'data-field': 'last-deploy' }, `deploying ${d.label || d.revision}`);
  return h('span', { class: 'badge active' }, 'ok');
}

// trustSection says what the tenant may deploy; a platform admin toggles
// whether it may deploy raw commands (they run on the platform's machine).
function trustSection(me, t) {
  const say = allowed => allowed ? 'This tenant deploys images from the catalog, or raw commands: an admin trusts it.'
    : 'This tenant deploys images from the catalog; raw commands are a platform admin\'s.';
  const text = h('p', { id: 'trust-text', class: 'muted' }, say(t.allow_commands));
  if (!me.can['tenants:write']) return h('section', { id: 'trust', 'aria-label': 'What this tenant deploys' }, text);
  const box = h('input', { type: 'checkbox', id: 'allow-commands', checked: !!t.allow_commands, 'aria-describedby': 'trust-text' });
  box.addEventListener('change', async () => {
    const want = box.checked;
    if (want && !await confirmAction(`Allow ${t.name} to deploy commands?`,
      `Its deployers can then run any program on the platform's machine, as the tenant's own user. Only for a tenant you trust.`, 'Allow commands')) {
      box.checked = false;
      return;
    }
    const out = await busy(box, () => api('PATCH', `/tenants/${enc(t.name)}`, { allow_commands: want }),
      out => out.allow_commands ? `${t.name} may deploy commands.` : `${t.name} deploys catalog images only.`);
    box.checked = out ? !!out.allow_commands : !want;
    text.textContent = say(box.checked);
  });
  return h('section', { id: 'trust', class: 'card', 'aria-labelledby': 'h-trust' }, h('h2', { id: 'h-trust' }, 'Trust'), text,
    h('label', { class: 'check' }, box, ' Allow raw commands'));
}

function createAppForm(tenant) {
  const form = h('form', { id: 'create-app-form', class: 'card' }, h('h2', null, 'Create an app'),
    h('div', { class: 'fields' },
      field('Name', 'name', { required: true, pattern: '[a-z0-9]([a-z0-9\\-]*[a-z0-9])?', maxlength: 63, 'aria-describedby': 'f-name-hint' }, 'Lower case letters, digits and dashes.'),
      field('Health check path', 'health_path', { value: '/healthz', 'aria-describedby': 'f-health_path-hint' }, 'Empty: a TCP connect.'),
      field('Replicas', 'replicas', { type: 'number', min: 0, value: 1 }),
      field('Max sessions per replica', 'max_sessions', { type: 'number', min: 0, value: 0, 'aria-describedby': 'f-max_sessions-hint' }, '0: no cap.'),
      field('Reconnect grace', 'reconnect_grace', { value: '30s', 'aria-describedby': 'f-reconnect_grace-hint' }, 'How long a drained revision waits, empty, for players to return.')),
    h('button', { type: 'submit', id: 'create-app-btn' }, 'Create app'));
  form.addEventListener('submit', async ev => {
    ev.preventDefault();
    const v = formValues(form);
    const body = { name: v.name, health_path: v.health_path, replicas: Number(v.replicas), max_sessions: Number(v.max_sessions) };
    if (v.reconnect_grace) body.reconnect_grace = v.reconnect_grace;
    const a = await busy($('button', form), () => api('POST', `/tenants/${enc(tenant)}/apps`, body), a => `App ${a.name} created.`);
    if (a) location.hash = `#/t/${enc(tenant)}/a/${enc(a.name)}`;
  });
  return form;
}

// ---- the app page: revisions, sessions chart, live activity log ---------

async function appPage(view, tenant, name) {
  const base = appPath(tenant, name);
  setPage(name, [['Tenants', '#/'], [tenant, `#/t/${enc(tenant)}`], [name, `#/t/${enc(tenant)}/a/${enc(name)}`]]);
  const [me, app] = await Promise.all([who(tenant), api('GET', base)]);
  showWho(me);
  const can = me.can;
  // What the deploy form offers: the catalog's images, and a command field
  // when the caller may deploy commands (shown too when that is unknown: the
  // API then says why it refuses).
  const [catalog, t] = can['revisions:write'] ? await Promise.all([api('GET', '/images').then(r => r.images, () => null),
    api('GET', `/tenants/${enc(tenant)}`).catch(() => null)]) : [null, null];
  const st = { tenant, name, base, me, app, revs: [], sessions: { revisions: {}, replicas: {} }, samples: [], watch: null, key: '',
    leases: [], leaseKey: '', catalog, mayCommand: me.admin || !t || !!t.allow_commands };
  const revTable = h('div', { id: 'revisions' });
  const chart = h('figure', { id: 'chart', class: 'chart' });
  const log = h('ol', { id: 'activity', class: 'log', 'aria-live': 'polite', 'aria-relevant': 'additions' });
  const logFilter = activityFilter(log);
  const live = h('span', { id: 'live', class: 'live off' }, 'connecting…');
  const settings = h('p', { id: 'settings', class: 'muted' });
  const progress = h('div', { id: 'progress', 'aria-live': 'polite' });
  const leases = h('div', { id: 'leases' });
  const readOnly = !can['revisions:write'] && !can['apps:write'] &&
    h('p', { class: 'note' }, `Read-only: as ${me.role || 'a member without a role'} in ${tenant} you see everything here but change nothing.`);
  show(h('div', { class: 'app-head' }, h('h1', null, name), settings, readOnly),
    h('div', { class: 'cols' },
      h('div', { class: 'col-main' },
        h('section', { 'aria-labelledby': 'h-revs' }, h('h2', { id: 'h-revs' }, 'Revisions'), revTable, progress),
        h('section', { 'aria-labelledby': 'h-chart' }, h('h2', { id: 'h-chart' }, 'Sessions per revision ', h('small', null, 'the last hour')), chart),
        can['leases:read'] && h('section', { 'aria-labelledby': 'h-leases' }, h('h2', { id: 'h-leases' }, 'Leases ',
          h('small', null, 'a held revision counts as having a session: it is neither retired nor scaled down')), leases),
        can['revisions:write'] && deployForm(st, refresh),
        can['apps:write'] && scaleForm(st, refresh),
        can['apps:write'] && protocolForm(st),
        can['apps:write'] && deleteSection(st)),
      h('section', { class: 'col-side', 'aria-labelledby': 'h-log' }, h('h2', { id: 'h-log' }, 'Activity ', live), logFilter.form, log)));
  renderSettings(st);

  let pending = null;
  async function refresh() {
    clearTimeout(pending);
    try {
      const [revs, sessions, held] = await Promise.all([api('GET', base + '/revisions', undefined, view.signal), api('GET', base + '/sessions', undefined, view.signal),
        can['leases:read'] ? api('GET', base + '/leases', undefined, view.signal) : { leases: [] }]);
      st.revs = revs.revisions.sort((a, b) => b.generation - a.generation);
      st.leases = held.leases;
      st.sessions = sessions;
      st.samples.push({ t: Date.now(), counts: sessions.revisions });
      while (st.samples.length && st.samples[0].t < Date.now() - HISTORY_MS) st.samples.shift();
      renderRevisions(st, revTable, refresh);
      if (can['leases:read']) renderLeases(st, leases, refresh);
      renderProgress(st, progress);
      renderChart(st, chart);
    } catch (e) {
      if (view.signal.aborted || e.status === 401) return;
      if (e.status === 404) gone(); else flash(e.message, 'err');
    }
  }
  const gone = () => { flash(`App ${name} is gone: it was deleted.`); location.hash = `#/t/${enc(tenant)}`; };
  const soon = () => { clearTimeout(pending); pending = setTimeout(refresh, 150); };
  st.refreshApp = async () => { st.app = await api('GET', base, undefined, view.signal); renderSettings(st); };
  st.samples = await sessionHistory(base, view.signal);
  await refresh();
  view.every(refresh, 2000);
  view.every(() => main.querySelectorAll('[data-age]').forEach(el => { el.textContent = age(el.dataset.age); }), 5000);
  streamEvents(view, base + '/events/stream', live, ev => {
    const line = logLine(ev);
    line.hidden = !logFilter.matches(line);
    log.prepend(line);
    while (log.children.length > 300) log.lastChild.remove();
    if (ev.type === 'app_updated') st.refreshApp().catch(() => {});
    soon();
  }, gone);
}

const STEPS = ['pending', 'starting', 'active'];

// renderProgress follows the revision deployed from this page: pending ->
// starting -> active (or failed), without a reload; the outcome stays shown.
function renderProgress(st, el) {
  const w = st.watch;
  const rev = w && st.revs.find(r => r.id === w.id);
  if (!rev || w.done) return;
  const failed = rev.state === 'failed' || rev.state === 'retired';
  const at = STEPS.indexOf(rev.state);
  el.replaceChildren(h('span', { class: 'small muted' }, 'Rollout of ', h('code', null, rev.id)), h('ol', { class: 'steps' }, STEPS.map((s, i) =>
    h('li', { class: i < at || rev.state === 'active' ? 'done' : i === at ? 'now' : '' }, s)),
  failed && h('li', { class: 'failed' }, rev.state + (rev.reason ? ': ' + rev.reason : ''))),
  failed && rev.last_output && h('pre', { class: 'log last-output', 'aria-label': 'the last output of its last crashed replica' }, rev.last_output));
  if ((rev.state === 'active' || failed) && !w.done) {
    w.done = true;
    flash(rev.state === 'active' ? `Revision ${rev.id} is active.` : `Revision ${rev.id} ${rev.state}: ${rev.reason || ''}`, rev.state === 'active' ? 'ok' : 'err');
  }
}

function renderRevisions(st, el, refresh) {
  const key = JSON.stringify([st.revs, st.sessions.revisions, st.sessions.replicas, st.sessions.revision_kinds, st.sessions.replica_kinds]);
  if (key === st.key) return;
  st.key = key;
  const focused = document.activeElement && document.activeElement.dataset.focus;
  if (!st.revs.length) { el.replaceChildren(h('p', { class: 'muted' }, 'No revision deployed yet.')); return; }
  const can = st.me.can['revisions:write'];
  const rows = st.revs.map(r => {
    const n = st.sessions.revisions[r.id];
    const kinds = revisionKinds(st, r.id);
    const open = kinds ? plural(kinds.connections, 'open connection') : plural(n, 'open session');
    const what = r.image || (r.command || []).join(' ');
    const act = async (verb, title, text, label, done) => {
      if (!await confirmAction(title, text, label)) return;
      await busy(document.querySelector(`[data-focus="${verb}:${r.id}"]`), () => api('POST', `${st.base}/revisions/${r.id}/${verb}`), () => done);
      refresh();
    };
    return h('tr', { 'data-rev': r.id, 'data-state': r.state, class: r.state === 'retired' || r.state === 'failed' ? 'dim' : '' },
      h('th', { scope: 'row', 'data-label': 'Revision' }, h('code', null, r.id),
        r.label && h('span', { class: 'rev-label', 'data-field': 'label', title: r.note || '' }, ' ' + r.label),
        h('small', { class: 'sub' }, `#${r.generation} · `, h('span', { 'data-age': r.created_at }, age(r.created_at)), ' ago')),
      h('td', { 'data-label': 'State' }, h('span', { class: 'badge ' + r.state, 'data-field': 'state' }, r.state), r.reason && h('small', { class: 'reason' }, r.reason),
        r.state === 'failed' && r.last_output && h('details', { class: 'last-output' }, h('summary', null, 'last output'), h('pre', { class: 'log' }, r.last_output))),
      h('td', { 'data-label': 'Runs', class: 'what' }, h('code', { title: what }, what), r.env && h('small', null, Object.entries(r.env).map(([k, v]) => `${k}=${v}`).join(' '))),
      h('td', { 'data-label': 'Sessions', class: 'sessions' }, n == null ? h('span', { 'data-field': 'sessions' }, '–') : sessionKinds(kinds, n)),
      h('td', { 'data-label': 'Replicas' }, r.replicas.length ? h('ul', { class: 'replicas' }, r.replicas.map(p => h('li', { 'data-replica': p.id },
        h('span', { class: 'dot ' + (p.stopping ? 'stopping' : p.state), title: p.stopping ? 'stopping' : p.state }),
        h('code', null, p.id), ' ', h('span', { class: 'muted' }, p.stopping ? 'stopping' : p.state), ' ',
        h('span', { class: 'replica-kinds', 'data-field': 'replica-sessions' }, sessionKinds(replicaKinds(st, p.id), st.sessions.replicas[p.id] || 0)),
        h('small', { class: 'sub' }, p.address && h('span', { class: 'addr' }, p.address + ' · '),
          h('span', { class: 'usage', 'data-field': 'usage', 'data-cpu': p.usage ? p.usage.cpu_percent : '', title: 'CPU (share of one core, since the last refresh) and resident memory' },
            p.usage ? `${p.usage.cpu_percent.toFixed(1)}% CPU · ${(p.usage.rss_bytes / 1048576).toFixed(1)} MB · ` : 'CPU/memory n/a · '),
          h('a', { href: `#/t/${enc(st.tenant)}/a/${enc(st.name)}/logs/${r.id}/${p.id}`, 'aria-label': `log of replica ${p.id}` }, 'log'))))) : h('span', { class: 'muted' }, 'none')),
      can && h('td', { 'data-label': 'Actions', class: 'actions' },
        can && r.state === 'draining' && h('button', { type: 'button', 'data-action': 'activate', 'data-focus': 'activate:' + r.id,
          onclick: () => act('activate', `Roll back to ${r.id}?`, `Revision ${r.id} becomes active again at once (its replicas still run); the active revision drains.`, 'Roll back',
            `Rolled back: revision ${r.id} is active again.`) }, 'Roll back'),
        can && !['active', 'retired', 'failed'].includes(r.state) && h('button', { type: 'button', class: 'danger', 'data-action': 'retire', 'data-focus': 'retire:' + r.id,
          onclick: () => act('retire', `Retire ${r.id}?`, `Its replicas are stopped now${n ? `, cutting ${open}` : ''}.`, 'Retire',
            `Revision ${r.id} retired: its replicas are stopping.`) }, 'Retire')));
  });
  el.replaceChildren(h('div', { class: 'scroll' }, h('table', { class: 'list revs' }, h('caption', { class: 'sr-only' }, 'Revisions, newest first'),
    h('thead', null, h('tr', null, ['Revision', 'State', 'Runs', 'Sessions', 'Replicas', can && 'Actions'].filter(Boolean).map(c => h('th', { scope: 'col' }, c)))),
    h('tbody', null, rows))));
  if (focused) { const again = el.querySelector(`[data-focus="${focused}"]`); if (again) again.focus(); }
}

// sessionHistory turns the platform's session history (each revision's
// count where it changed, GET .../sessions/history) into the chart's samples
// over its window: one per point in time, each with the count in force of
// every revision that had started by then. [] when it has none.
async function sessionHistory(base, signal) {
  let h;
  try { h = await api('GET', base + '/sessions/history', undefined, signal); } catch { return []; }
  const from = Date.now() - HISTORY_MS;
  const series = Object.entries(h.revisions || {});
  const times = [...new Set(series.flatMap(([, pts]) => pts.map(p => Math.max(p.t, from))))].sort((a, b) => a - b);
  return times.map(t => {
    const counts = {};
    for (const [rev, pts] of series) {
      let n = null;
      for (const p of pts) { if (p.t <= t) n = p.n; else break; }
      if (n !== null) counts[rev] = n;
    }
    return { t, counts };
  });
}

// renderChart draws sessions per revision (every kind: what keeps a
// revision alive) over the last minutes as step lines, so a rollout's
// hand-over (old falls, new rises) shows at a glance; the legend splits the
// latest counts by kind.
function renderChart(st, fig) {
  const W = 600, H = 160, L = 34, B = 18, now = Date.now();
  const span = Math.min(HISTORY_MS, Math.max(MIN_SPAN_MS, now - (st.samples.length ? st.samples[0].t : now)));
  const revs = st.revs.filter(r => st.samples.some(s => s.counts[r.id] > 0) || ['active', 'draining', 'starting'].includes(r.state)).reverse();
  const top = Math.max(1, ...st.samples.flatMap(s => Object.values(s.counts)));
  const x = t => L + (W - L - 4) * (1 - (now - t) / span);
  const y = n => 6 + (H - B - 6) * (1 - n / top);
  const svg = h('svg', { viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-labelledby': 'chart-title' },
    h('title', { id: 'chart-title' }, 'Sessions per revision: ' + (revs.map(r => `${r.id} ${st.sessions.revisions[r.id] || 0} (${kindsText(revisionKinds(st, r.id), st.sessions.revisions[r.id])})`).join(', ') || 'none')),
    [0, top].map(v => [h('line', { x1: L, x2: W - 4, y1: y(v), y2: y(v), class: 'grid' }), h('text', { x: L - 6, y: y(v) + 4, 'text-anchor': 'end' }, v)]),
    h('text', { x: L, y: H - 3 }, span >= 60000 ? `−${Math.round(span / 60000)} min` : `−${Math.round(span / 1000)} s`),
    h('text', { x: W - 4, y: H - 3, 'text-anchor': 'end' }, 'now'));
  revs.forEach(r => {
    const color = COLORS[r.generation % COLORS.length];
    const pts = [];
    let prev = null;
    for (const s of st.samples) {
      if (prev === null && !(r.id in s.counts)) continue; // not deployed yet
      const n = s.counts[r.id] || 0;
      if (prev !== null) pts.push(`${x(s.t).toFixed(1)},${y(prev).toFixed(1)}`);
      pts.push(`${x(s.t).toFixed(1)},${y(n).toFixed(1)}`);
      prev = n;
    }
    if (pts.length) {
      const peak = Math.max(...st.samples.map(s => s.counts[r.id] || 0));
      svg.append(h('polyline', { points: pts.join(' '), fill: 'none', stroke: color, 'stroke-width': 2.5, 'data-rev': r.id, 'data-peak': peak }));
      const last = pts[pts.length - 1].split(',');
      svg.append(h('circle', { cx: last[0], cy: last[1], r: 3.5, fill: color }));
    }
  });
  fig.replaceChildren(svg, h('figcaption', null, h('ul', { class: 'legend' }, revs.map(r => {
    const sw = h('span', { class: 'swatch', 'aria-hidden': 'true' });
    sw.style.background = COLORS[r.generation % COLORS.length];
    const n = st.sessions.revisions[r.id] || 0;
    const kinds = revisionKinds(st, r.id);
    return h('li', { 'data-rev': r.id }, sw, h('code', null, r.id), ` ${r.state} · ${plural(n, 'session')}`, kinds && n > 0 && h('span', { class: 'muted' }, ` (${kindsText(kinds, n)})`));
  }))));
}

// deployForm deploys a new revision: an image of the catalog (what tenants
// deploy on the process runtime), or a command for those who may run one.
function deployForm(st, refresh) {
  const imgs = st.catalog || [];
  const image = imgs.length
    ? h('div', { class: 'field' }, h('label', { for: 'f-image' }, 'Image'),
      h('select', { id: 'f-image', name: 'image', 'aria-describedby': 'f-image-hint' },
        h('option', { value: '' }, st.mayCommand ? '— none: run the command below —' : '— choose an image —'),
        imgs.map(i => h('option', { value: i.image, title: (i.command || []).join(' ') }, i.image + (i.description ? ' — ' + i.description : '')))),
      h('small', { id: 'f-image-hint', class: 'hint' }, 'From the ', h('a', { href: '#/images' }, 'image catalog'), '.'))
    : field('Image', 'image', { placeholder: 'example/arena:0.2', 'aria-describedby': 'f-image-hint' },
      st.catalog ? 'The image catalog is empty: a platform admin adds images to it.' : 'An image reference.');
  const errLine = h('p', { id: 'deploy-error', class: 'err', role: 'alert' });
  const form = h('form', { id: 'deploy-form', class: 'card' }, h('h2', null, 'Deploy a new revision'),
    h('p', { class: 'muted small' }, 'It starts beside the active revision and takes over once healthy; the old one keeps its sessions.'),
    h('div', { class: 'fields' }, image,
      st.mayCommand && field('Command', 'command', { placeholder: '/srv/bin/arena --verbose', 'aria-describedby': 'f-command-hint' },
        'Process runtime: the program and its arguments, separated by spaces. Runs on the platform\'s machine: a platform admin\'s right, or a trusted tenant\'s.'),
      field('Environment', 'env', { rows: 2, placeholder: 'RESPAWN=false', 'aria-describedby': 'f-env-hint' }, 'One NAME=value a line.')),
    errLine, h('button', { type: 'submit', id: 'deploy-btn' }, 'Deploy'));
  form.addEventListener('submit', async ev => {
    ev.preventDefault();
    const v = formValues(form);
    const body = {};
    if ((v.image || '').trim()) body.image = v.image.trim();
    if ((v.command || '').trim()) body.command = v.command.trim().split(/\s+/);
    const env = v.env.split('\n').map(l => l.trim()).filter(Boolean);
    if (env.length) body.env = Object.fromEntries(env.map(l => [l.split('=')[0], l.split('=').slice(1).join('=')]));
    errLine.textContent = '';
    const btn = $('#deploy-btn');
    btn.disabled = true;
    try {
      const rev = await api('POST', st.base + '/revisions', body);
      flash(`Revision ${rev.id} deployed: starting…`);
      st.watch = { id: rev.id };
      refresh();
    } catch (e) {
      errLine.textContent = e.message; // next to the form: why the platform refused
      flash(e.message, 'err');
    } finally { btn.disabled = false; }
  });
  return form;
}

function deleteSection(st) {
  const btn = h('button', { type: 'button', class: 'danger', id: 'delete-app-btn' }, 'Delete app');
  btn.addEventListener('click', async () => {
    if (!await confirmAction(`Delete ${st.name}?`, 'Every revision is retired (open sessions are cut), then the app is removed.', 'Delete app')) return;
    if (await busy(btn, () => api('DELETE', st.base + '?force=true'), () => `Deleting ${st.name}: retiring every revision…`)) st.refreshApp().catch(() => {});
  });
  return h('section', { class: 'card danger-zone', 'aria-labelledby': 'h-danger' }, h('h2', { id: 'h-danger' }, 'Delete'), btn);
}

// ---- a replica's log ------------------------------------------------------

async function logsPage(view, tenant, app, rev, replica) {
  const appHref = `#/t/${enc(tenant)}/a/${enc(app)}`;
  setPage(`Log of ${replica}`, [['Tenants', '#/'], [tenant, `#/t/${enc(tenant)}`], [app, appHref], [`log ${replica}`, location.hash]]);
  const me = await who(tenant);
  showWho(me);
  const pre = h('pre', { id: 'log-tail', class: 'tail', tabindex: 0, 'aria-label': 'Replica output' });
  const follow = h('input', { type: 'checkbox', id: 'follow', checked: true });
  const size = h('select', { id: 'tail-size' }, [['4096', '4 KB'], ['16384', '16 KB'], ['65536', '64 KB']].map(([v, t]) => h('option', { value: v, selected: v === '16384' }, t)));
  const load = async () => {
    try {
      const text = await api('GET', `${appPath(tenant, app)}/revisions/${enc(rev)}/replicas/${enc(replica)}/logs?tail=${size.value}`, undefined, view.signal);
      const atEnd = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 8;
      pre.textContent = typeof text === 'string' ? (text || '(no output yet)') : JSON.stringify(text);
      if (atEnd) pre.scrollTop = pre.scrollHeight;
    } catch (e) { if (!view.signal.aborted) pre.textContent = e.message; }
  };
  size.addEventListener('change', load);
  show(h('h1', null, 'Replica log ', h('code', null, replica)),
    h('p', { class: 'muted' }, 'Revision ', h('code', null, rev), ' of ', h('a', { href: appHref }, app), '. The end of its output.'),
    h('div', { class: 'toolbar' }, h('label', { for: 'tail-size' }, 'Show the last'), size,
      h('label', { class: 'check' }, follow, ' Follow (every 2 s)'),
      h('button', { type: 'button', class: 'secondary', onclick: load }, 'Refresh')), pre);
  await load();
  pre.scrollTop = pre.scrollHeight;
  view.every(() => { if (follow.checked) load(); }, 2000);
}
