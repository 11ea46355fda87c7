// The SDK (dist/index.js) against the real platform, playing the real arena
// (examples/arena, handoff mode) as a game client would. sdk/js/platform_test.go
// starts the platform, the network between them (a TCP proxy in front of the
// gateway that it can cut or take down) and this script, then checks what it
// prints. Not one of the unit tests (scripts/test.mjs runs test/*.test.mjs).
//
// Environment: DISCOVERY_API, DISCOVERY_TENANT, DISCOVERY_APP, DISCOVERY_TOKEN
// (to deploy, change and retire revisions, as an operator would),
// ARENA_COMMAND (the arena binary), NET_CONTROL (POST /cut, /down, /up).
//
// Story: join and walk on v1; the TCP connection is cut (1); the network is
// down for a few reconnect attempts (2); v2 is deployed and v1 hands the
// player over with a ticket (3); the handoff path is switched off, v3
// deployed, the network goes down and v2 is retired meanwhile: back up, the
// replica answers 410 and the SDK finds v3 through get-endpoint (4).
// Progress goes to stderr; the findings, one JSON object, to stdout; any
// step that does not happen in time exits 1 with a message.

import { connect, stableMs } from '../../dist/index.js';

const need = (k) => {
  const v = process.env[k];
  if (!v) fail(`${k} is not set`);
  return v;
};
function fail(msg) {
  console.error(`real.mjs: ${msg}`);
  process.exit(1);
}
const api = need('DISCOVERY_API');
const tenant = need('DISCOVERY_TENANT');
const app = need('DISCOVERY_APP');
const token = need('DISCOVERY_TOKEN');
const arena = need('ARENA_COMMAND');
const netControl = need('NET_CONTROL');
const log = (...a) => console.error(`[${(performance.now() / 1000).toFixed(3)}s]`, ...a);

const within = 20_000; // for each step
const backoff = { initialMs: 200, maxMs: 1600, jitter: 0.5 };

// --- the platform's API and the network, as the operator's side -----------

async function call(method, path, body) {
  const res = await fetch(`${api}/api/v1/tenants/${tenant}/apps/${app}${path}`, {
    method,
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  if (res.status >= 300) fail(`${method} ${path}: ${res.status} ${text}`);
  return text ? JSON.parse(text) : null;
}

async function until(what, cond, ms = within) {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await cond();
    if (v) return v;
    if (Date.now() > deadline) fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50)); // poll interval
  }
}

async function waitState(rev, state) {
  await until(`revision ${rev} ${state}`, async () => (await call('GET', `/revisions/${rev}`)).state === state);
}

async function deploy(version) {
  const env = { HANDOFF: '1', ARENA_HP: '3', RESPAWN: 'false', VERSION: version };
  const rev = await call('POST', '/revisions', { command: [arena], env });
  await waitState(rev.id, 'active');
  log(`v${version} is ${rev.id}, active`);
  return rev.id;
}

async function net(op) {
  const res = await fetch(`${netControl}/${op}`, { method: 'POST' });
  if (res.status !== 204) fail(`network ${op}: ${res.status}`);
  log(`network: ${op}`);
}

// --- the game client --------------------------------------------------------

// Every socket the SDK dials, when: to measure its backoff waits.
const dials = [];
class RecordingWebSocket extends globalThis.WebSocket {
  constructor(url, protocols) {
    super(url, protocols);
    dials.push({ at: performance.now(), url: String(url) });
  }
}

const events = []; // what the SDK reported, with when
const messages = []; // what the arena sent
let player = null; // {id, token}
const name = 'node';

const v1 = await deploy('1');
const conn = connect({ api, tenant, app, backoff, WebSocket: RecordingWebSocket, connectTimeoutMs: 5000 });
for (const type of ['open', 'reconnecting', 'reconnected', 'draining', 'moved', 'closed']) {
  conn.on(type, (ev) => {
    events.push({ type, at: performance.now(), ...ev });
    log(type, JSON.stringify({ ...ev, endpoint: undefined }));
  });
}
conn.on('open', () => conn.send(JSON.stringify(player ? { type: 'join', ...player } : { type: 'join', name })));
conn.on('message', (ev) => {
  const m = JSON.parse(ev.data);
  messages.push(m);
  if (m.type === 'welcome') player = { id: m.id, token: m.token };
  if (m.type === 'error' && m.code === 'resume_failed') {
    // The replica that knew this player is gone, and its state with it.
    player = null;
    conn.send(JSON.stringify({ type: 'join', name }));
  }
});
const unexpectedEnd = conn.on('closed', (ev) => fail(`the connection ended: ${ev.code} ${ev.reason} ${ev.error ?? ''}`));

// next waits for an arena message matching pred, after the from'th.
async function next(what, from, pred) {
  return until(what, () => messages.slice(from).find(pred));
}
const welcome = (from) => next('a welcome', from, (m) => m.type === 'welcome');
const mine = (m) => m.players?.find((p) => p.id === player?.id);
const stateOf = (p) => ({ name: p.name, x: p.x, y: p.y, hp: p.hp, alive: p.alive, score: p.score, deaths: p.deaths });
async function state(what, from, pred = () => true) {
  const m = await next(what, from, (m) => m.type === 'state' && mine(m) && pred(mine(m)));
  return stateOf(mine(m));
}
// stable waits until the open socket has lived stableMs: a drop sooner
// continues the backoff where it was (the SDK's rule), a drop later starts
// it afresh, which is what each fault below is about.
async function stable() {
  const open = events.findLast((e) => e.type === 'open');
  await until('a stable connection', () => performance.now() - open.at >= stableMs);
}
const eventsSince = (mark) => events.slice(mark).map(({ at: _, endpoint: __, ...e }) => e);
const waitEvent = (what, mark, pred) => until(what, () => events.slice(mark).find(pred));

const out = {};

// v1: join and walk right (to the wall at most), so the state is its own.
let w = await welcome(0);
const spawn = await state('the first state', 0);
let from = messages.length;
for (let i = 0; i < 3; i++) conn.send(JSON.stringify({ type: 'move', dir: 'right' }));
const before = await state('three steps right', from, (p) => p.x === Math.min(spawn.x + 3, w.size - 1));
out.v1 = { revision: v1, welcome: w, state: before };

// 1. The TCP connection cut (no close frame): the same socket again, the
// same replica resumes the player.
await stable();
let mark = events.length;
from = messages.length;
await net('cut');
w = await welcome(from);
out.drop = { events: eventsSince(mark), welcome: w, state: await state('the state after the cut', from) };

// 2. The network down: each attempt fails, the SDK waits longer each time;
// back up after five attempts, the same replica again.
await stable();
mark = events.length;
from = messages.length;
const dialsAt = dials.length;
await net('down');
await waitEvent('the fifth reconnect attempt', mark, (e) => e.type === 'reconnecting' && e.attempt >= 5);
await net('up');
w = await welcome(from);
out.backoff = {
  options: backoff,
  // each attempt: the wait the SDK announced, and the time from its
  // announcement to the dial that followed
  attempts: events
    .slice(mark)
    .filter((e) => e.type === 'reconnecting')
    .map((e) => {
      const d = dials.slice(dialsAt).find((d) => d.at >= e.at);
      return { attempt: e.attempt, reason: e.reason, delayMs: e.delayMs, waitedMs: d ? Math.round(d.at - e.at) : null };
    }),
  events: eventsSince(mark),
  welcome: w,
  state: await state('the state after the outage', from),
};

// 3. v2 in handoff mode: v1 moves the player there with its state; the
// SDK follows the ticket.
mark = events.length;
from = messages.length;
const ticketDials = dials.length;
const v2 = await deploy('2');
w = await welcome(from);
out.handoff = {
  revision: v2,
  events: eventsSince(mark),
  ticketDialled: dials.slice(ticketDials).some((d) => d.url.includes('discovery_ticket=')),
  welcome: w,
  state: await state('the state on v2', from),
};

// 4. No handoff any more (the app's handoff_path switched off), v3
// deployed: v2 drains, keeping its player. The network goes down, v2 is
// retired meanwhile; back up, its replica answers 410 and the SDK finds v3.
await call('PATCH', '', { handoff_path: '' });
const v3 = await deploy('3');
await waitState(v2, 'draining');
await stable();
mark = events.length;
from = messages.length;
await net('down');
await waitEvent('a reconnect attempt', mark, (e) => e.type === 'reconnecting' && e.reason === 'dial_failed');
await call('POST', `/revisions/${v2}/retire`);
await waitState(v2, 'retired');
await net('up');
w = await welcome(from);
out.gone = {
  revision: v3,
  events: eventsSince(mark),
  endpoint: events.findLast((e) => e.type === 'open').endpoint,
  welcome: w,
  state: await state('the state on v3', from),
};

unexpectedEnd();
conn.close();
console.log(JSON.stringify(out));
