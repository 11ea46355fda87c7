// The reconnect rules of sdk/PROTOCOL.md section 2, each against a real
// loopback platform stand-in (test/platform.mjs) and the real WebSocket
// client of the runtime.

import assert from 'node:assert/strict';
import { after, test } from 'node:test';

import { connect, EndpointError } from '../dist/index.js';
import { recorder, startPlatform, testClock } from './platform.mjs';

// setup starts a platform and a connection to it; cleanup closes both and
// checks that the SDK left no timer behind.
async function setup(t, opts = {}, clockOpts = {}) {
  const p = await startPlatform();
  const clock = testClock(clockOpts);
  // A compressed clock would fire the dial timeout at once too: none then.
  const timeout = clockOpts.compress ? { connectTimeoutMs: 0 } : {};
  const conn = connect({ api: p.api, tenant: p.tenant, app: p.app, clock, ...timeout, ...opts(p) });
  const rec = recorder(conn);
  t.after(async () => {
    conn.close();
    assert.equal(clock.pending.size, 0, 'the SDK left a timer pending');
    await p.close();
  });
  return { p, clock, conn, rec };
}
const opts = (o = {}) => () => o;

test('get-endpoint, then its socket; messages both ways; close() ends it', async (t) => {
  const { p, clock, conn, rec } = await setup(t, opts());
  assert.equal(conn.readyState, 'connecting');
  const open = await rec.next('open');
  assert.equal(open.socket, p.socketURL('r-0'));
  assert.equal(open.endpoint.replica, 'r-0');
  assert.equal(open.reconnect, false);
  assert.equal(conn.endpoint.replica, 'r-0');
  assert.equal(conn.readyState, 'open');
  const sc = p.conns[0];

  assert.equal(conn.send('hello'), true);
  assert.equal(await sc.nextMessage(), 'hello');
  sc.send('hi');
  assert.equal((await rec.next('message')).data, 'hi');
  sc.sendBinary([1, 2, 3]);
  const bin = (await rec.next('message')).data;
  assert.ok(bin instanceof ArrayBuffer, 'binary messages arrive as ArrayBuffer by default');
  assert.deepEqual([...new Uint8Array(bin)], [1, 2, 3]);

  conn.close(4321, 'bye');
  assert.equal(conn.readyState, 'closed');
  assert.deepEqual(rec.log.at(-1), { type: 'closed', code: 4321, reason: 'bye', willReconnect: false });
  await sc.closed;
  assert.deepEqual(sc.clientClose, { code: 4321, reason: 'bye' });
  assert.equal(conn.send('late'), false);
  assert.equal(clock.pending.size, 0);
  assert.equal(p.endpointCalls.length, 1);
  assert.deepEqual(rec.types(), ['open', 'closed']);
});

test('a dropped TCP connection reconnects to the same socket at once; send() returns false meanwhile', async (t) => {
  const { p, conn, rec } = await setup(t, opts());
  await rec.next('open');
  let sentWhileDown = null;
  conn.on('reconnecting', () => {
    sentWhileDown = conn.send('lost');
  });
  p.conns[0].drop();
  const r = await rec.next('reconnecting');
  assert.deepEqual(r, { attempt: 1, delayMs: 0, reason: 'dropped', code: 1006 });
  assert.equal(sentWhileDown, false);
  assert.equal(conn.readyState, 'reconnecting');
  assert.deepEqual(await rec.next('reconnected'), { sameReplica: true, handoff: false });
  const open = await rec.next('open');
  assert.equal(open.reconnect, true);
  assert.equal(open.socket, p.socketURL('r-0'));
  assert.equal(p.conns.length, 2);
  assert.equal(p.conns[1].replica, 'r-0');
  assert.equal(p.endpointCalls.length, 1, 'a drop re-dials the socket without get-endpoint');
  assert.deepEqual(rec.types(), ['open', 'reconnecting', 'reconnected', 'open']);
});

test('backoff: failed dials retry the same socket, the first at once, then doubling to maxMs, each within ±jitter', async (t) => {
  const rand = [0, 0.9999, 0.5, 0.25];
  let i = 0;
  const backoff = { initialMs: 100, maxMs: 800, jitter: 0.5 };
  const { p, clock, rec } = await setup(
    t,
    opts({ backoff, random: () => rand[i++ % rand.length] }),
    { compress: true },
  );
  await rec.next('open');
  p.replicas.set('r-0', 'refuse');
  p.conns[0].drop();
  await rec.next('reconnecting', (e) => e.attempt === 8);
  p.replicas.set('r-0', 'up');
  assert.deepEqual(await rec.next('reconnected'), { sameReplica: true, handoff: false });

  const tries = rec.log.filter((e) => e.type === 'reconnecting');
  assert.equal(tries[0].delayMs, 0);
  assert.equal(tries[0].reason, 'dropped');
  for (const e of tries.slice(1)) {
    const base = Math.min(backoff.maxMs, backoff.initialMs * 2 ** (e.attempt - 2));
    assert.equal(e.reason, 'dial_failed');
    assert.ok(e.delayMs >= base * 0.5 && e.delayMs <= base * 1.5, `attempt ${e.attempt}: ${e.delayMs} ms, base ${base}`);
  }
  // The random source drives the spread: 0 gives -50 %, 0.9999 about +50 %.
  assert.deepEqual(tries.slice(1, 8).map((e) => e.delayMs), [50, 300, 400, 600, 400, 1200, 800]);
  // The timers the SDK set are exactly the delays it announced.
  assert.deepEqual(clock.delays.slice(0, tries.length), tries.map((e) => e.delayMs));
  assert.equal(p.endpointCalls.length, 1, 'a replica that is not gone is never left');
  assert.ok(p.probes.length >= 7, 'each failed dial asks the replica URL whether it is gone');
});

test('a failed dial to a gone replica (410) calls get-endpoint and dials the new socket', async (t) => {
  const { p, rec } = await setup(t, opts());
  await rec.next('open');
  p.replicas.set('r-0', 'gone');
  p.active = 'r-1';
  p.conns[0].drop();
  assert.equal((await rec.next('reconnecting')).reason, 'dropped');
  const gone = await rec.next('reconnecting', (e) => e.reason === 'gone');
  assert.equal(gone.attempt, 2);
  assert.deepEqual(await rec.next('reconnected'), { sameReplica: false, handoff: false });
  const open = await rec.next('open');
  assert.equal(open.socket, p.socketURL('r-1'));
  assert.equal(open.endpoint.replica, 'r-1');
  assert.equal(p.endpointCalls.length, 2);
  assert.deepEqual(p.probes, ['/s/acme/arena/9d00cc18/r-0/']);
});

test('a socket dialled directly learns get-endpoint from the 410 body, then follows tickets with it', async (t) => {
  const { p, rec } = await setup(t, (p) => ({ api: undefined, tenant: undefined, app: undefined, socket: p.socketURL('r-0') }));
  const open = await rec.next('open');
  assert.equal(open.endpoint, null);
  assert.equal(p.endpointCalls.length, 0);
  p.replicas.set('r-0', 'gone');
  p.active = 'r-1';
  p.conns[0].drop();
  await rec.next('reconnected');
  assert.equal((await rec.next('open')).endpoint.replica, 'r-1');
  assert.equal(p.endpointCalls.length, 1);

  p.replicas.set('r-2', 'up');
  const ticket = p.ticket('r-2');
  p.conns[1].close(4901, `ticket=${ticket}`);
  assert.deepEqual(await rec.next('moved'), { ticket, fromReplica: 'r-1', toReplica: 'r-2' });
  assert.deepEqual(await rec.next('reconnected'), { sameReplica: false, handoff: true });
  assert.equal(p.conns[2].replica, 'r-2');
});

test('close 4901 follows the ticket at once; a later drop re-dials the new socket without the used ticket', async (t) => {
  const { p, conn, rec } = await setup(t, opts());
  await rec.next('open');
  const ticket = p.ticket('r-1');
  p.conns[0].close(4901, `ticket=${ticket}`);
  assert.deepEqual(await rec.next('reconnecting'), { attempt: 1, delayMs: 0, reason: 'moved', code: 4901 });
  assert.deepEqual(await rec.next('moved'), { ticket, fromReplica: 'r-0', toReplica: 'r-1' });
  assert.deepEqual(await rec.next('reconnected'), { sameReplica: false, handoff: true });
  const open = await rec.next('open');
  assert.equal(open.socket, `${p.socketURL('r-1')}?discovery_ticket=${ticket}`);
  assert.deepEqual(p.endpointCalls.map((c) => c.ticket), [null, ticket]);
  assert.equal(p.conns[1].replica, 'r-1');
  assert.equal(p.conns[1].ticket, ticket);
  assert.deepEqual(rec.types(), ['open', 'reconnecting', 'moved', 'reconnected', 'open']);

  p.conns[1].drop();
  assert.deepEqual(await rec.next('reconnected'), { sameReplica: true, handoff: false });
  assert.equal(p.conns[2].replica, 'r-1');
  assert.equal(p.conns[2].ticket, null, 'the used ticket is not presented again');
  assert.equal(conn.socket, p.socketURL('r-1'));
  assert.equal(p.endpointCalls.length, 2);
});

test('close 4901 with an expired ticket (410) falls back to a fresh get-endpoint at once', async (t) => {
  const { p, rec } = await setup(t, opts());
  await rec.next('open');
  p.active = 'r-1';
  p.conns[0].close(4901, 'ticket=K7Q2M4XW9D3H5JZC8B6N1RTVPA');
  const fallback = await rec.next('reconnecting', (e) => e.reason === 'ticket_failed');
  assert.equal(fallback.delayMs, 0);
  assert.deepEqual(await rec.next('reconnected'), { sameReplica: false, handoff: false });
  assert.equal(p.conns[1].replica, 'r-1');
  assert.deepEqual(p.endpointCalls.map((c) => c.ticket), [null, 'K7Q2M4XW9D3H5JZC8B6N1RTVPA', null]);
  assert.deepEqual(rec.types(), ['open', 'reconnecting', 'reconnecting', 'reconnected', 'open']);
});

test('close 4901 whose target died before the client arrived falls back to a fresh get-endpoint', async (t) => {
  const { p, rec } = await setup(t, opts());
  await rec.next('open');
  const ticket = p.ticket('r-1');
  p.replicas.set('r-1', 'refuse');
  p.replicas.set('r-2', 'up');
  p.active = 'r-2';
  p.conns[0].close(4901, `ticket=${ticket}`);
  assert.equal((await rec.next('moved')).toReplica, 'r-1');
  assert.equal((await rec.next('reconnecting', (e) => e.reason === 'ticket_failed')).delayMs, 0);
  assert.deepEqual(await rec.next('reconnected'), { sameReplica: false, handoff: false });
  assert.equal(p.conns[1].replica, 'r-2');
  assert.deepEqual(p.dials.map((d) => [d.replica, d.ticket]), [['r-0', null], ['r-1', ticket], ['r-2', null]]);
});

test('close 4902 emits draining, then a fresh get-endpoint leads to another replica', async (t) => {
  const { p, rec } = await setup(t, opts());
  await rec.next('open');
  p.active = 'r-1';
  p.conns[0].close(4902, 'draining');
  assert.deepEqual(await rec.next('draining'), { code: 4902, reason: 'draining' });
  assert.deepEqual(await rec.next('reconnecting'), { attempt: 1, delayMs: 0, reason: 'draining', code: 4902 });
  assert.deepEqual(await rec.next('reconnected'), { sameReplica: false, handoff: false });
  assert.equal(p.conns[1].replica, 'r-1');
  assert.equal(p.endpointCalls.length, 2);
});

for (const [code, reason] of [[1000, 'normal'], [1008, 'policy'], [1009, 'too big'], [4000, 'resumed elsewhere'], [4899, 'game over']]) {
  test(`no reconnect after close ${code}`, async (t) => {
    const { p, clock, conn, rec } = await setup(t, opts());
    await rec.next('open');
    p.conns[0].close(code, reason);
    assert.deepEqual(await rec.next('closed'), { code, reason, willReconnect: false });
    assert.equal(conn.readyState, 'closed');
    // Nothing is left that could dial again: no timer, and the log ends here.
    assert.equal(clock.pending.size, 0);
    assert.deepEqual(rec.types(), ['open', 'closed']);
    assert.equal(p.dials.length, 1);
  });
}

test('close() while waiting to retry stops everything', async (t) => {
  const { p, clock, conn, rec } = await setup(t, opts({ backoff: { initialMs: 60_000, maxMs: 60_000 } }));
  await rec.next('open');
  p.replicas.set('r-0', 'refuse');
  p.conns[0].drop();
  const r = await rec.next('reconnecting', (e) => e.attempt === 2);
  assert.ok(r.delayMs >= 30_000);
  assert.equal(clock.pending.size, 1);
  conn.close();
  assert.equal(clock.pending.size, 0);
  assert.deepEqual(rec.log.at(-1), { type: 'closed', code: 1000, reason: '', willReconnect: false });
  assert.equal(p.dials.length, 2);
});

test('close() during get-endpoint aborts the request', async (t) => {
  let held;
  const asked = new Promise((resolve) => {
    held = resolve;
  });
  const { p, clock, conn, rec } = await setup(t, (p) => {
    p.holdEndpoint = held;
    return {};
  });
  const { req, res } = await asked;
  const aborted = new Promise((resolve) => res.on('close', resolve));
  conn.close();
  await aborted;
  assert.equal(req.destroyed, true);
  assert.equal(clock.pending.size, 0);
  assert.deepEqual(rec.types(), ['closed']);
  assert.equal(p.dials.length, 0);
});

test('close() while a dial hangs clears the dial timeout', async (t) => {
  const { p, clock, conn, rec } = await setup(t, (p) => {
    p.replicas.set('r-0', 'hang');
    return {};
  });
  while (p.dials.length === 0) await new Promise((r) => setTimeout(r, 5));
  assert.equal(clock.pending.size, 1, 'the dial timeout');
  conn.close();
  assert.equal(clock.pending.size, 0);
  assert.deepEqual(rec.types(), ['closed']);
});

test('a dial that does not open within connectTimeoutMs counts as failed', async (t) => {
  const { p, conn, rec } = await setup(t, (p) => {
    p.replicas.set('r-0', 'hang');
    return { connectTimeoutMs: 100 };
  });
  conn.on('reconnecting', () => p.replicas.set('r-0', 'up'));
  assert.deepEqual(await rec.next('reconnecting'), { attempt: 1, delayMs: 0, reason: 'dial_failed' });
  const open = await rec.next('open');
  assert.equal(open.reconnect, false, 'the first open is not a reconnect, however many tries it took');
  assert.deepEqual(rec.types(), ['reconnecting', 'open']);
});

test('get-endpoint 503 waits at least its Retry-After; 404 gives up with the error', async (t) => {
  const { p, rec } = await setup(
    t,
    (p) => {
      p.endpointAnswers.push({ status: 503, body: { error: { code: 'no_capacity', message: 'full' } }, headers: { 'retry-after': '2' } });
      return {};
    },
    { compress: true },
  );
  assert.deepEqual(await rec.next('reconnecting'), { attempt: 1, delayMs: 2000, reason: 'endpoint_failed' });
  await rec.next('open');

  const p2 = await startPlatform();
  t.after(() => p2.close());
  p2.endpointAnswers.push({ status: 404, body: { error: { code: 'not_found', message: 'no app acme/nope' } } });
  const conn2 = connect({ api: p2.api, tenant: p2.tenant, app: p2.app, clock: testClock() });
  const closed = await recorder(conn2).next('closed');
  assert.equal(closed.code, 1006);
  assert.ok(closed.error instanceof EndpointError);
  assert.equal(closed.error.status, 404);
  assert.match(closed.reason, /404: not_found: no app acme\/nope/);
  assert.equal(conn2.readyState, 'closed');
  assert.equal(p.dials.length, 1);
});

test('maxAttempts: gives up with closed after that many failed attempts', async (t) => {
  const { p, clock, rec } = await setup(
    t,
    (p) => {
      p.replicas.set('r-0', 'refuse');
      return { backoff: { maxAttempts: 3 } };
    },
    { compress: true },
  );
  const closed = await rec.next('closed');
  assert.equal(closed.code, 1006);
  assert.match(closed.error.message, /gave up after 3 attempts/);
  assert.deepEqual(rec.types(), ['reconnecting', 'reconnecting', 'reconnecting', 'closed']);
  assert.equal(p.dials.length, 4);
  assert.equal(clock.pending.size, 0);
});

test('connections that close right after opening back off instead of reconnecting in a loop', async (t) => {
  // A frozen clock: every connection looks short-lived.
  const { p, conn, rec } = await setup(t, opts({ random: () => 0.5 }), { compress: true, now: () => 0 });
  // Each socket says hello on open, and the server drops it on hearing that.
  conn.on('open', () => conn.send('hello'));
  const stays = (async () => {
    for (let i = 0; ; i++) {
      const c = await p.nextConnection();
      await c.nextMessage();
      if (i === 4) return c;
      c.drop();
    }
  })();
  await stays; // the fifth socket opened, said hello, and stays
  const delays = rec.log.filter((e) => e.type === 'reconnecting').map((e) => [e.attempt, e.delayMs]);
  assert.deepEqual(delays, [[1, 0], [2, 100], [3, 200], [4, 400]]);
});

test('on() returns an unsubscribe; listeners added right after connect() miss nothing', async (t) => {
  const { p, conn, rec } = await setup(t, opts());
  let opens = 0;
  const off = conn.on('open', () => opens++);
  await rec.next('open');
  assert.equal(opens, 1);
  off();
  p.conns[0].drop();
  await rec.next('open');
  assert.equal(opens, 1);
});

test('connect() checks its options; close() checks its code', () => {
  assert.throws(() => connect({}), /give api, tenant and app, or socket/);
  assert.throws(() => connect({ api: 'http://127.0.0.1:1' }), /api, tenant and app go together/);
  const conn = connect({ socket: 'ws://127.0.0.1:1/ws' });
  assert.throws(() => conn.close(1001), RangeError);
  conn.close();
  assert.equal(conn.readyState, 'closed');
});

after(() => {
  // Every SDK timer was cleared (each test checks its clock); nothing else of
  // ours may keep the process alive either.
  const left = process.getActiveResourcesInfo().filter((r) => r === 'Timeout');
  assert.deepEqual(left, [], 'timers still active at the end');
});
