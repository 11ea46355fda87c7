// A small stand-in for the Discovery platform, on a real loopback port: the
// get-endpoint API, a gateway that answers 410 for gone replicas, handoff
// tickets, and replicas that speak WebSocket through a minimal RFC 6455
// server (handshake, unmasking, text/close/ping frames) written here because
// Node has no WebSocket server of its own.

import { createHash } from 'node:crypto';
import { createServer } from 'node:http';

const GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';
export const tenant = 'acme';
export const app = 'arena';
const revision = '9d00cc18';

/**
 * @typedef {'up' | 'gone' | 'refuse' | 'hang'} ReplicaState
 * up: accepts WebSockets; gone: 410 for every request under its prefix;
 * refuse: drops the TCP connection of a WebSocket dial (HTTP still 200);
 * hang: accepts the TCP connection and never answers.
 */

export async function startPlatform() {
  const server = createServer();
  const sockets = new Set();
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const host = `127.0.0.1:${server.address().port}`;
  const api = `http://${host}`;
  const endpointPath = `/api/v1/tenants/${tenant}/apps/${app}/endpoint`;

  const p = {
    api,
    tenant,
    app,
    getEndpointURL: api + endpointPath,
    /** @type {Map<string, ReplicaState>} */
    replicas: new Map([['r-0', 'up'], ['r-1', 'up']]),
    /** The replica get-endpoint hands out. */
    active: 'r-0',
    /** Answers for the next get-endpoint calls, before the normal one: {status, body, headers}. */
    endpointAnswers: [],
    /** Every get-endpoint call: {ticket}. */
    endpointCalls: [],
    /** Every plain HTTP request under a replica prefix: its path. */
    probes: [],
    /** Every WebSocket dial: {replica, ticket, outcome}. */
    dials: [],
    /** ticket -> {replica, used} */
    tickets: new Map(),
    /** Accepted connections, in order. */
    conns: [],
    /** When set, get-endpoint requests wait here unanswered: each gets {req, res}. */
    holdEndpoint: null,
    socketURL: (replica) => `ws://${host}/s/${tenant}/${app}/${revision}/${replica}/ws`,
    /** A single-use ticket to replica, as the handoff API would make. */
    ticket(replica) {
      const t = `T${Math.random().toString(36).slice(2, 12).toUpperCase()}`;
      p.tickets.set(t, { replica, used: false });
      return t;
    },
    /** Resolves with the next accepted connection this has not returned yet. */
    nextConnection() {
      if (claimed < p.conns.length) return Promise.resolve(p.conns[claimed++]);
      return new Promise((resolve) => waiters.push(resolve));
    },
    async close() {
      for (const c of p.conns) c.drop();
      for (const s of sockets) s.destroy();
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    },
  };
  const waiters = [];
  let claimed = 0;

  const endpointBody = (replica, ticket) => {
    const base = `/s/${tenant}/${app}/${revision}/${replica}/`;
    return {
      socket: p.socketURL(replica) + (ticket ? `?discovery_ticket=${ticket}` : ''),
      endpoint: `ws://${host}${base}`,
      url: `http://${host}${base}`,
      tenant,
      app,
      revision,
      replica,
      expires_in: ticket ? 60 : 10,
    };
  };
  const goneBody = (msg) =>
    JSON.stringify({ error: { code: 'gone', message: msg }, get_endpoint: api + endpointPath });

  server.on('request', (req, res) => {
    const url = new URL(req.url, api);
    const json = (status, body, headers = {}) => {
      res.writeHead(status, { 'content-type': 'application/json', 'access-control-allow-origin': '*', ...headers });
      res.end(typeof body === 'string' ? body : JSON.stringify(body));
    };
    if (url.pathname === endpointPath) {
      const ticket = url.searchParams.get('ticket');
      p.endpointCalls.push({ ticket });
      if (p.holdEndpoint) return p.holdEndpoint({ req, res });
      const canned = p.endpointAnswers.shift();
      if (canned) return json(canned.status, canned.body ?? {}, canned.headers);
      if (ticket) {
        const t = p.tickets.get(ticket);
        if (!t || t.used) return json(410, { error: { code: 'gone', message: 'ticket unknown, used or expired' } });
        return json(200, endpointBody(t.replica, ticket));
      }
      return json(200, endpointBody(p.active));
    }
    const m = /^\/s\/[^/]+\/[^/]+\/[^/]+\/([^/]+)\//.exec(url.pathname);
    if (m) {
      p.probes.push(url.pathname);
      if ((p.replicas.get(m[1]) ?? 'gone') === 'gone') return json(410, goneBody(`replica ${m[1]} is gone`));
      res.writeHead(200, { 'content-type': 'text/plain' });
      return res.end('a replica page');
    }
    json(404, { error: { code: 'not_found', message: 'no route' } });
  });

  server.on('upgrade', (req, socket) => {
    const url = new URL(req.url, api);
    const m = /^\/s\/[^/]+\/[^/]+\/[^/]+\/([^/]+)\/ws$/.exec(url.pathname);
    const replica = m ? m[1] : '';
    const ticket = url.searchParams.get('discovery_ticket');
    const state = p.replicas.get(replica) ?? 'gone';
    const dial = { replica, ticket, outcome: state };
    p.dials.push(dial);
    const refuseHTTP = (status, text, body) => {
      socket.end(`HTTP/1.1 ${status} ${text}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`);
    };
    if (state === 'gone') return refuseHTTP(410, 'Gone', goneBody(`replica ${replica} is gone`));
    if (state === 'refuse') return socket.destroy();
    if (state === 'hang') return;
    if (ticket) {
      const t = p.tickets.get(ticket);
      if (!t || t.used || t.replica !== replica) {
        dial.outcome = 'bad ticket';
        return refuseHTTP(410, 'Gone', goneBody('ticket unknown, used or expired'));
      }
      t.used = true;
    }
    const accept = createHash('sha1').update(req.headers['sec-websocket-key'] + GUID).digest('base64');
    socket.write(
      `HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\n\r\n`,
    );
    const conn = new Conn(socket, replica, ticket);
    p.conns.push(conn);
    const w = waiters.shift();
    if (w) {
      claimed++;
      w(conn);
    }
  });

  return p;
}

/** One accepted WebSocket, server side. */
class Conn {
  constructor(socket, replica, ticket) {
    this.socket = socket;
    this.replica = replica;
    this.ticket = ticket;
    /** Text messages received, in order. */
    this.messages = [];
    this.msgWaiters = [];
    this.closeSent = false;
    this.closed = new Promise((resolve) => socket.on('close', resolve));
    /** The client's close frame, when one came: {code, reason}. */
    this.clientClose = null;
    let buf = Buffer.alloc(0);
    socket.on('data', (chunk) => {
      buf = Buffer.concat([buf, chunk]);
      for (;;) {
        const f = parseFrame(buf);
        if (!f) break;
        buf = buf.subarray(f.size);
        this.#frame(f.op, f.payload);
      }
    });
    socket.on('error', () => {});
  }

  #frame(op, payload) {
    if (op === 0x1) {
      const text = payload.toString('utf8');
      this.messages.push(text);
      const w = this.msgWaiters.shift();
      if (w) w(text);
    } else if (op === 0x8) {
      const code = payload.length >= 2 ? payload.readUInt16BE(0) : 1005;
      this.clientClose = { code, reason: payload.subarray(2).toString('utf8') };
      if (!this.closeSent) this.socket.write(frame(0x8, payload));
      this.socket.end();
    } else if (op === 0x9) {
      this.socket.write(frame(0xa, payload));
    }
  }

  /** Resolves with the next text message (or one already received and not taken). */
  nextMessage() {
    if (this.taken === undefined) this.taken = 0;
    if (this.taken < this.messages.length) return Promise.resolve(this.messages[this.taken++]);
    return new Promise((resolve) => this.msgWaiters.push((m) => { this.taken++; resolve(m); }));
  }

  send(text) {
    this.socket.write(frame(0x1, Buffer.from(text)));
  }

  sendBinary(bytes) {
    this.socket.write(frame(0x2, Buffer.from(bytes)));
  }

  /** Sends a close frame; the TCP connection ends when the client answers. */
  close(code, reason = '') {
    const r = Buffer.from(reason);
    const payload = Buffer.alloc(2 + r.length);
    payload.writeUInt16BE(code, 0);
    r.copy(payload, 2);
    this.closeSent = true;
    this.socket.write(frame(0x8, payload));
  }

  /** Drops the TCP connection without a close frame (the client sees 1006). */
  drop() {
    this.socket.destroy();
  }
}

function parseFrame(buf) {
  if (buf.length < 2) return null;
  const op = buf[0] & 0x0f;
  const masked = (buf[1] & 0x80) !== 0;
  let len = buf[1] & 0x7f;
  let off = 2;
  if (len === 126) {
    if (buf.length < 4) return null;
    len = buf.readUInt16BE(2);
    off = 4;
  } else if (len === 127) {
    if (buf.length < 10) return null;
    len = Number(buf.readBigUInt64BE(2));
    off = 10;
  }
  const maskAt = off;
  if (masked) off += 4;
  if (buf.length < off + len) return null;
  const payload = Buffer.from(buf.subarray(off, off + len));
  if (masked) for (let i = 0; i < len; i++) payload[i] ^= buf[maskAt + (i % 4)];
  return { op, payload, size: off + len };
}

function frame(op, payload) {
  const len = payload.length;
  const head = len < 126 ? Buffer.from([0x80 | op, len]) : Buffer.alloc(4);
  if (len >= 126) {
    if (len > 0xffff) throw new Error('test frames stay small');
    head[0] = 0x80 | op;
    head[1] = 126;
    head.writeUInt16BE(len, 2);
  }
  return Buffer.concat([head, payload]);
}

/**
 * A clock for the SDK that records every delay asked for, knows which timers
 * are still pending, and (with compress) fires each after 1 ms so backoff
 * tests do not sleep.
 */
export function testClock({ compress = false, now = () => Date.now() } = {}) {
  const pending = new Set();
  const delays = [];
  return {
    delays,
    pending,
    now,
    setTimeout(fn, ms) {
      delays.push(ms);
      const h = setTimeout(() => {
        pending.delete(h);
        fn();
      }, compress ? Math.min(ms, 1) : ms);
      pending.add(h);
      return h;
    },
    clearTimeout(h) {
      pending.delete(h);
      clearTimeout(h);
    },
  };
}

/** Records every event of a connection, in order, and waits for them. */
export function recorder(conn) {
  const log = [];
  const waiters = [];
  const types = ['open', 'message', 'reconnecting', 'reconnected', 'draining', 'moved', 'closed'];
  for (const type of types) {
    conn.on(type, (ev) => {
      log.push({ type, ...ev });
      for (const w of [...waiters]) {
        if (w.type === type && (!w.pred || w.pred(ev))) {
          waiters.splice(waiters.indexOf(w), 1);
          clearTimeout(w.timer);
          w.resolve(ev);
        }
      }
    });
  }
  const seen = new Map(); // type -> index in log past the last event next() returned
  const rec = {
    log,
    /** Event types so far, e.g. ['open', 'reconnecting', 'reconnected', 'open']. */
    types: () => log.map((e) => e.type).filter((t) => t !== 'message'),
    /**
     * Resolves with the next event of this type (matching pred) not returned
     * before, whether it already happened or not; fails after 5 s.
     */
    next(type, pred) {
      for (let i = seen.get(type) ?? 0; i < log.length; i++) {
        const { type: ty, ...ev } = log[i];
        if (ty !== type) continue;
        seen.set(type, i + 1);
        if (!pred || pred(ev)) return Promise.resolve(ev);
      }
      seen.set(type, log.length);
      return new Promise((resolve, reject) => {
        const w = { type, pred, resolve: (ev) => { seen.set(type, log.length); resolve(ev); } };
        w.timer = setTimeout(() => {
          waiters.splice(waiters.indexOf(w), 1);
          reject(new Error(`no ${type} event within 5 s; got ${JSON.stringify(rec.types())}`));
        }, 5000);
        waiters.push(w);
      });
    },
  };
  return rec;
}
