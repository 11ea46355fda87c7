// Bridge: the app's settings: the lines under its name, the scale form, and
// the form of what game clients and servers rely on (sdk/PROTOCOL.md): the
// client path get-endpoint's socket ends with, the drain hook notices are
// POSTed to, the handoff path handed-off players' state goes to, and how long
// a get-endpoint answer holds its place. The platform validates them; its
// refusal is shown next to the form.
'use strict';

// PROTOCOL_FIELDS are the settings protocolForm edits: [key, label, hint, what empty means].
const PROTOCOL_FIELDS = [
  ['client_path', 'Client path', 'Where game clients connect under a replica\'s endpoint: get-endpoint\'s socket ends with it (e.g. /ws).', 'the endpoint itself'],
  ['drain_hook', 'Drain hook', 'POSTed a notice when a revision starts draining or is re-activated (e.g. /discovery/drain).', 'none'],
  ['handoff_path', 'Handoff path', 'Receives the state of players handed off from a draining revision (e.g. /discovery/handoff).', 'none'],
  ['reservation_ttl', 'Reservation TTL', 'How long a get-endpoint answer holds its place on a replica: 1s to 2m.', 'the platform\'s default'],
];

function renderSettings(st) {
  const a = st.app;
  const scale = a.target_sessions ? `autoscaled ${a.min_replicas}–${a.max_replicas} replicas at ${a.target_sessions} sessions each` : plural(a.replicas, 'replica');
  const setting = (key, label) => {
    const v = a[key];
    return h('span', { 'data-setting': key }, label + ' ', v ? h('code', null, v) : h('span', { class: 'unset' }, PROTOCOL_FIELDS.find(f => f[0] === key)[3]));
  };
  $('#settings').replaceChildren(`${scale} · health ${a.health_path || 'TCP'} · max sessions ${a.max_sessions || 'no cap'} · reconnect grace ${a.reconnect_grace}`,
    a.deleting ? h('span', { class: 'badge retired' }, 'deleting') : '',
    h('span', { class: 'protocol' }, setting('client_path', 'clients dial'), ' · ', setting('drain_hook', 'drain hook'), ' · ',
      setting('handoff_path', 'handoff path'), ' · ', setting('reservation_ttl', 'reservations held')));
}

// scaleForm shows the fields the app has: the autoscaler's (min, max, target)
// when the platform knows them, and the fixed replica count.
function scaleForm(st, refresh) {
  const a = st.app;
  const fields = [['replicas', 'Replicas', 'Fixed count, when the autoscaler is off.']];
  if ('min_replicas' in a) fields.push(['min_replicas', 'Min replicas', '0 allows scale-to-zero.'], ['max_replicas', 'Max replicas', ''],
    ['target_sessions', 'Target sessions per replica', '0 turns the autoscaler off.']);
  const form = h('form', { id: 'scale-form', class: 'card' }, h('h2', null, 'Scale'),
    h('div', { class: 'fields' }, fields.map(([k, label, hint]) => field(label, k, { type: 'number', min: 0, value: a[k] || 0, required: true, 'aria-describedby': hint ? `f-${k}-hint` : null }, hint))),
    h('button', { type: 'submit', id: 'scale-btn' }, 'Apply'));
  form.addEventListener('submit', async ev => {
    ev.preventDefault();
    const body = Object.fromEntries(fields.map(([k]) => [k, Number(form.elements[k].value)]));
    const out = await busy($('#scale-btn'), () => api('PATCH', st.base, body), () => 'Scale settings saved.');
    if (out) { st.app = out; renderSettings(st); refresh(); }
  });
  return form;
}

// protocolForm edits the protocol settings; only those changed are sent. An
// emptied path is cleared; an emptied TTL is left as it is.
function protocolForm(st) {
  const a = st.app;
  const errLine = h('p', { id: 'settings-error', class: 'err', role: 'alert' });
  const form = h('form', { id: 'protocol-form', class: 'card' }, h('h2', null, 'Clients, drains and handoffs'),
    h('p', { class: 'muted small' }, 'What game clients and servers rely on (sdk/PROTOCOL.md). Paths start with /; empty turns one off.'),
    h('div', { class: 'fields' }, PROTOCOL_FIELDS.map(([k, label, hint, empty]) =>
      field(label, k, { value: a[k] || '', placeholder: empty, 'aria-describedby': `f-${k}-hint` }, hint))),
    errLine, h('button', { type: 'submit', id: 'protocol-btn' }, 'Save'));
  form.addEventListener('submit', async ev => {
    ev.preventDefault();
    const body = {};
    for (const [k] of PROTOCOL_FIELDS) {
      const v = form.elements[k].value.trim();
      const same = k === 'reservation_ttl' ? !v || seconds(v) === seconds(st.app[k]) : v === (st.app[k] || '');
      if (same) continue;
      body[k] = v;
    }
    errLine.textContent = '';
    if (!Object.keys(body).length) { flash('Nothing changed in the settings.'); return; }
    const btn = $('#protocol-btn');
    btn.disabled = true;
    try {
      st.app = await api('PATCH', st.base, body);
      renderSettings(st);
      flash('Settings saved: ' + Object.keys(body).join(', ') + '.');
    } catch (e) {
      errLine.textContent = e.message; // next to the form: why the platform refused
      flash(e.message, 'err');
    } finally { btn.disabled = false; }
  });
  return form;
}
