// Bridge: the app page's session counts, split by kind. A revision's (or
// replica's) sessions are open connections (sockets through the gateways),
// reservations (get-endpoint answers no socket has used yet: each holds a
// place for the app's reservation TTL) and app-held leases; all of them
// keep a draining revision from retiring, but only connections are players.
'use strict';

// sessionKinds shows one count split: connections and reservations always,
// leases when there are any. kinds is null from a platform that does not
// split its counts: the total is shown then.
function sessionKinds(kinds, total) {
  if (!kinds) return h('span', { class: 'kinds total', 'data-field': 'sessions' }, plural(total || 0, 'session'));
  return h('span', { class: 'kinds', 'data-field': 'sessions', 'data-total': total, title: `${plural(total || 0, 'session')} in all` },
    h('span', { class: 'kind conn', 'data-field': 'connections' }, plural(kinds.connections, 'connection')),
    h('span', { class: 'kind resv' + (kinds.reservations ? '' : ' zero'), 'data-field': 'reservations', title: 'get-endpoint answers no socket has used yet' },
      plural(kinds.reservations, 'reservation')),
    kinds.leases > 0 && h('span', { class: 'kind lease', 'data-field': 'leases', title: 'app-held leases' }, plural(kinds.leases, 'lease')));
}

// kindsText is the same in words: "1 connection, 1 reservation".
function kindsText(kinds, total) {
  if (!kinds) return plural(total || 0, 'session');
  return [plural(kinds.connections, 'connection'), plural(kinds.reservations, 'reservation'),
    kinds.leases > 0 && plural(kinds.leases, 'lease')].filter(Boolean).join(', ');
}

// revisionKinds and replicaKinds read the sessions view (null: not split).
const revisionKinds = (st, id) => (st.sessions.revision_kinds || {})[id] || null;
const replicaKinds = (st, id) => (st.sessions.replica_kinds || {})[id] || null;
