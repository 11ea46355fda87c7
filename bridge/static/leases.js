// Bridge: the app page's leases. An app that runs with nobody connected
// holds its revision open with an app-held lease; the page lists them with
// their time left, and those who may (leases:write) release one.
'use strict';

// renderLeases draws st.leases into el. The table is rebuilt only when the
// set of leases changes; between, only the time left moves, so a button
// being clicked is never swapped under the pointer.
function renderLeases(st, el, refresh) {
  const key = JSON.stringify(st.leases.map(l => [l.lease, l.revision, l.replica, l.holder]));
  if (key === st.leaseKey) {
    for (const l of st.leases) {
      const cell = el.querySelector(`tr[data-lease="${CSS.escape(l.lease)}"] [data-field="left"]`);
      if (cell) cell.textContent = left(seconds(l.expires_in));
    }
    return;
  }
  st.leaseKey = key;
  if (!st.leases.length) {
    el.replaceChildren(h('p', { class: 'muted' }, 'No app-held lease: a draining revision retires once its sessions are gone.'));
    return;
  }
  const can = st.me.can['leases:write'];
  const release = async l => {
    if (!await confirmAction(`Release lease ${l.lease}?`,
      `Revision ${l.revision} is no longer held by ${l.holder || 'its holder'}; a draining revision retires once nothing else holds it.`, 'Release')) return;
    await busy(el.querySelector(`[data-focus="release:${CSS.escape(l.lease)}"]`), () => api('DELETE', `${st.base}/leases/${enc(l.lease)}`),
      () => `Lease ${l.lease} released.`);
    refresh();
  };
  const rows = st.leases.map(l => h('tr', { 'data-lease': l.lease, 'data-revision': l.revision },
    h('th', { scope: 'row', 'data-label': 'Lease' }, h('code', null, l.lease),
      h('small', { class: 'sub' }, 'taken ', h('span', { 'data-age': l.created_at }, age(l.created_at)), ' ago')),
    h('td', { 'data-label': 'Holder', 'data-field': 'holder' }, l.holder || '–'),
    h('td', { 'data-label': 'Revision' }, h('code', { 'data-field': 'revision' }, l.revision)),
    h('td', { 'data-label': 'Replica', 'data-field': 'replica' }, l.replica ? h('code', null, l.replica) : h('span', { class: 'muted' }, 'any')),
    h('td', { 'data-label': 'Time left', class: 'num' }, h('span', { 'data-field': 'left', title: `renewed to ${l.ttl} by each keep-alive` }, left(seconds(l.expires_in)))),
    can && h('td', { 'data-label': 'Actions', class: 'actions' },
      h('button', { type: 'button', class: 'secondary', 'data-action': 'release-lease', 'data-focus': 'release:' + l.lease, onclick: () => release(l) }, 'Release'))));
  const focused = document.activeElement && document.activeElement.dataset.focus;
  el.replaceChildren(h('div', { class: 'scroll' }, h('table', { class: 'list leases' }, h('caption', { class: 'sr-only' }, 'App-held leases'),
    h('thead', null, h('tr', null, ['Lease', 'Holder', 'Revision', 'Replica', 'Time left', can && 'Actions'].filter(Boolean).map(c => h('th', { scope: 'col' }, c)))),
    h('tbody', null, rows))));
  if (focused) { const again = el.querySelector(`[data-focus="${CSS.escape(focused)}"]`); if (again) again.focus(); }
}
