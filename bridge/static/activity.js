// Bridge: the app page's activity log. Each event is a line; drain notices
// and handoffs, which the platform writes with their counts in the message,
// get a mark and those counts as chips (how many replicas were told; how
// many players moved, how many fell back to get-endpoint). The log streams
// live (Server-Sent Events read with fetch).
'use strict';

// The counts the platform writes into notice and handoff messages
// (deployer/notify.go, endpoint/handoff.go; the Go client reads them alike).
const NOTICE_RE = /^drain notice \((\w+), new players go to (\S+)\): told (\d+) of (\d+) replicas at (\S+?)(?:; not told: (.*))?$/;
const HANDOFF_RE = /^handoff (\S+) -> (.+?): (\d+) players? moved(?:, (\d+) could not be)?/;

// readNotice and readHandoff read the counts the event records (its notice
// or handoff figures), else from its message; null when neither can be
// read (the event is then shown as it came).
function readNotice(ev) {
  const f = ev.type === 'notice' && ev.notice;
  if (f) {
    const failures = (/; not told: (.*)$/.exec(ev.message) || [])[1] || '';
    return { state: f.state, active: f.active_revision || 'none', told: f.told, replicas: f.replicas, hook: f.hook, failures };
  }
  const m = ev.type === 'notice' && NOTICE_RE.exec(ev.message);
  return m ? { state: m[1], active: m[2], told: Number(m[3]), replicas: Number(m[4]), hook: m[5], failures: m[6] || '' } : null;
}

function readHandoff(ev) {
  const f = ev.type === 'handoff' && ev.handoff;
  if (f) return { from: ev.revision, to: f.to || 'the active revision', moved: f.moved, fellBack: f.failed };
  const m = ev.type === 'handoff' && HANDOFF_RE.exec(ev.message);
  return m ? { from: m[1], to: m[2], moved: Number(m[3]), fellBack: Number(m[4] || 0) } : null;
}

const chip = (field, text, kind, title) => h('span', { class: 'chip ' + kind, 'data-field': field, title }, text);
const mark = (symbol, label) => h('span', { class: 'ev-type' }, h('span', { class: 'ev-mark', 'aria-hidden': 'true' }, symbol), label);

function logLine(ev) {
  const li = (...kids) => h('li', { class: 'ev ev-' + ev.type, 'data-type': ev.type, 'data-revision': ev.revision || '', title: ev.message },
    h('time', { datetime: ev.time }, clock(ev.time)), ...kids);
  const n = readNotice(ev);
  if (n) {
    const all = n.told === n.replicas;
    return li(mark('⚑', n.state === 'active' ? 'active-again notice' : 'drain notice'), h('code', null, ev.revision || ''),
      n.state === 'active' ? 'told it is active again' : 'told it drains', ` at ${n.hook}; new players go to `, h('code', null, n.active), ' ',
      chip('told', `${n.told}/${n.replicas} replicas told`, all ? 'good' : 'bad', all ? 'every replica answered the hook' : 'some replicas did not answer the hook'),
      n.failures && h('small', { class: 'sub' }, 'not told: ' + n.failures));
  }
  const m = readHandoff(ev);
  if (m) {
    return li(mark('⇄', 'handoff'), h('code', null, m.from), '→ ', /^[0-9a-f]{8}$/.test(m.to) ? h('code', null, m.to) : m.to, ' ',
      chip('moved', plural(m.moved, 'player') + ' moved', 'good', 'their state reached the new revision; they reconnect with a ticket'),
      chip('fell-back', `${m.fellBack} fell back`, m.fellBack ? 'bad' : 'none', 'could not be moved: they reconnect through get-endpoint and start afresh'));
  }
  return li(h('span', { class: 'ev-type' }, ev.to ? ev.to : ev.type.replace(/_/g, ' ')),
    ev.revision && !ev.message.includes(ev.revision) && h('code', null, ev.revision), ' ', ev.message,
    ev.actor && ev.actor !== 'platform' && h('small', { class: 'sub ev-actor', 'data-field': 'actor' }, ' by ' + ev.actor));
}

// streamEvents reads the SSE activity stream with fetch (EventSource cannot
// send the Authorization header) and reconnects after the last event seen.
async function streamEvents(view, path, live, onEvent, onDeleted) {
  let after = '';
  while (!view.signal.aborted) {
    try {
      const res = await fetch('/api/v1' + path + (after ? '?after=' + enc(after) : ''),
        { headers: { Authorization: 'Bearer ' + sessionStorage.getItem(TOKEN_KEY) }, signal: view.signal });
      if (res.status === 401) return signOut('Your token was refused; sign in again.');
      if (!res.ok) throw new Error('stream: ' + res.status);
      live.textContent = 'live'; live.className = 'live on';
      const reader = res.body.getReader();
      const dec = new TextDecoder();
      let buf = '';
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += dec.decode(value, { stream: true });
        let i;
        while ((i = buf.indexOf('\n\n')) >= 0) {
          const msg = { data: '' };
          for (const line of buf.slice(0, i).split('\n')) {
            const m = /^(id|event|data): ?(.*)$/.exec(line);
            if (m) msg[m[1]] = m[1] === 'data' ? msg.data + m[2] : m[2];
          }
          buf = buf.slice(i + 2);
          if (msg.event === 'deleted') return onDeleted();
          if (msg.data) { after = msg.id || after; onEvent(JSON.parse(msg.data)); }
        }
      }
    } catch (e) { if (view.signal.aborted) return; }
    live.textContent = 'reconnecting…'; live.className = 'live off';
    await new Promise(r => setTimeout(r, 2000));
  }
}

// activityFilter is the search over an activity log: words that must all
// appear in a line (its type, revision, who did it, what it says), and a
// type to keep; lines that do not match are hidden, new ones too.
function activityFilter(log) {
  const q = h('input', { type: 'search', id: 'activity-search', placeholder: 'search: revision, who, words…', 'aria-label': 'Search the activity log' });
  const type = h('select', { id: 'activity-type', 'aria-label': 'Only events of type' }, h('option', { value: '' }, 'every type'),
    ['deployed', 'transition', 'app_updated', 'app_created', 'app_deleting', 'replica_crashed', 'replica_started', 'replica_stopped',
      'notice', 'handoff', 'capped', 'error', 'etcd_outage', 'store_full'].map(t => h('option', { value: t }, t.replace(/_/g, ' '))));
  const matches = li => {
    const words = q.value.toLowerCase().split(/\s+/).filter(Boolean);
    const text = (li.textContent + ' ' + li.dataset.type + ' ' + li.dataset.revision).toLowerCase();
    return (!type.value || li.dataset.type === type.value) && words.every(w => text.includes(w));
  };
  const apply = () => { for (const li of log.children) li.hidden = !matches(li); };
  q.addEventListener('input', apply);
  type.addEventListener('change', apply);
  const form = h('form', { class: 'activity-filter', role: 'search', onsubmit: e => e.preventDefault() }, q, type);
  return { form, matches };
}
