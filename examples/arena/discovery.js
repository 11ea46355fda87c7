// @discovery/client: connect a game client to an app hosted on Discovery and
// keep it connected the way sdk/PROTOCOL.md (section 2) says: get-endpoint,
// then the socket; the same socket again after a drop, with backoff; a new
// endpoint when the replica is gone (410) or asks the client to leave (4902);
// the handoff ticket of a 4901 close. No runtime dependencies: the global
// WebSocket and fetch (browsers, Node >= 20) or injected ones.
//
// Source: sdk/js/src/index.ts. sdk/js/dist/index.js is built from it by
// `npm run build` (tsc) and examples/arena/discovery.js copied from that by
// `go generate`: never edit either by hand.
/** The defaults of {@link ConnectOptions.backoff}. */
export const defaultBackoff = Object.freeze({
    initialMs: 100,
    maxMs: 5000,
    jitter: 0.5,
    maxAttempts: Infinity,
});
/**
 * A connection that lived less than this did not prove the server well: the
 * next attempt continues the backoff where it was instead of going at once,
 * so a server that accepts and closes at once is not hammered.
 */
export const stableMs = 1000;
const defaultConnectTimeoutMs = 10_000;
const OPEN = 1; // WebSocket.OPEN
/**
 * The wait before reconnect attempt `attempt` (1-based): 0 for the first,
 * then initialMs doubling up to maxMs, each spread by ±jitter.
 */
export function backoffDelay(attempt, backoff, random) {
    if (attempt <= 1)
        return 0;
    const base = Math.min(backoff.maxMs, backoff.initialMs * 2 ** (attempt - 2));
    return Math.round(base * (1 + backoff.jitter * (2 * random() - 1)));
}
/** The get-endpoint URL of an app (sdk/PROTOCOL.md section 1). */
export function getEndpointURL(api, tenant, app) {
    const base = api.replace(/\/+$/, '');
    return `${base}/api/v1/tenants/${encodeURIComponent(tenant)}/apps/${encodeURIComponent(app)}/endpoint`;
}
/** Close codes after which the game decided: no reconnect. */
export function isFinalCloseCode(code) {
    return code === 1000 || code === 1008 || code === 1009 || (code >= 4000 && code <= 4899);
}
/** Connect to an app; see {@link Connection}. Listeners added right after this call miss nothing. */
export function connect(options) {
    return new Connection(options);
}
/** A get-endpoint failure: fatal ones end the connection, others are retried. */
export class EndpointError extends Error {
    status;
    fatal;
    retryAfterMs;
    constructor(message, status, fatal, retryAfterMs) {
        super(message);
        this.status = status;
        this.fatal = fatal;
        this.retryAfterMs = retryAfterMs;
        this.name = 'EndpointError';
    }
}
/**
 * One player's connection to an app, across reconnects and replicas.
 *
 * Events (see {@link ConnectionEventMap}): `open` on every open socket (the
 * game sends its hello or resume there), `message`, `reconnecting` before each
 * attempt, `reconnected` (before `open`) when a socket opens again, `draining`
 * on close 4902, `moved` when a 4901 ticket led to a new replica, `closed`
 * once, at the end.
 *
 * Nothing is queued while no socket is open: {@link send} then returns false
 * and drops the message; the game resumes on `open`.
 */
export class Connection {
    #o;
    #ownGetEndpoint; // from api/tenant/app
    #learnedGetEndpoint = null; // from a 410 body, when we have no own
    #listeners = new Map();
    #state = 'connecting';
    #closed = false;
    #endpoint = null; // the last get-endpoint answer
    #ws = null; // the socket being dialled or open
    #socket = null; // what a drop re-dials: the last socket, ticket removed
    #openKey = null; // replica of the last open socket
    #opened = false; // a socket has opened at least once
    #attempt = 0; // attempts since the last open
    #attemptAtOpen = 0;
    #openedAt = 0;
    #timer = null; // the one pending timer: backoff or dial timeout
    #abort = null; // the one fetch in flight
    constructor(options) {
        const WS = options.WebSocket ?? globalThis.WebSocket;
        if (!WS) {
            throw new TypeError('discovery: no WebSocket: pass the WebSocket option (Node 20 also has one with --experimental-websocket)');
        }
        const f = options.fetch ?? (globalThis.fetch ? (url, init) => globalThis.fetch(url, init) : undefined);
        if (!f)
            throw new TypeError('discovery: no fetch: pass the fetch option');
        const { api, tenant, app, socket } = options;
        if (api !== undefined || tenant !== undefined || app !== undefined) {
            if (!api || !tenant || !app)
                throw new TypeError('discovery: api, tenant and app go together');
            this.#ownGetEndpoint = getEndpointURL(api, tenant, app);
        }
        else {
            this.#ownGetEndpoint = null;
        }
        if (!this.#ownGetEndpoint && !socket)
            throw new TypeError('discovery: give api, tenant and app, or socket');
        const clock = options.clock ?? {};
        this.#o = {
            WebSocket: WS,
            fetch: f,
            protocols: options.protocols,
            binaryType: options.binaryType ?? 'arraybuffer',
            backoff: { ...defaultBackoff, ...options.backoff },
            connectTimeoutMs: options.connectTimeoutMs ?? defaultConnectTimeoutMs,
            random: options.random ?? Math.random,
            clock: {
                setTimeout: clock.setTimeout?.bind(clock) ?? ((fn, ms) => globalThis.setTimeout(fn, ms)),
                clearTimeout: clock.clearTimeout?.bind(clock) ?? ((h) => globalThis.clearTimeout(h)),
                now: clock.now?.bind(clock) ?? (() => Date.now()),
            },
        };
        const first = socket ? { kind: 'socket', socket } : { kind: 'endpoint', url: null };
        // Start after the caller's synchronous code, so its listeners see everything.
        queueMicrotask(() => void this.#try(first));
    }
    /** Where the connection is; "closed" is final. */
    get readyState() {
        return this.#state;
    }
    /** The last get-endpoint answer, null before the first one. */
    get endpoint() {
        return this.#endpoint;
    }
    /** The socket URL open now, or last dialled. */
    get socket() {
        return this.#socket;
    }
    /** Listen to an event; returns a function that removes the listener. */
    on(type, listener) {
        let set = this.#listeners.get(type);
        if (!set)
            this.#listeners.set(type, (set = new Set()));
        const fn = listener;
        set.add(fn);
        return () => void set.delete(fn);
    }
    /**
     * Send on the open socket. Returns false, and drops the message, when no
     * socket is open (connecting, reconnecting, closed): the SDK never replays
     * game messages on another socket, where they could mean something else.
     */
    send(data) {
        const ws = this.#ws;
        if (this.#state !== 'open' || !ws || ws.readyState !== OPEN)
            return false;
        ws.send(data);
        return true;
    }
    /**
     * Close for good: no reconnect, every timer and request stopped. Emits
     * `closed` with this code and reason before returning.
     */
    close(code = 1000, reason = '') {
        if (code !== 1000 && (code < 3000 || code > 4999)) {
            throw new RangeError(`discovery: close code ${code}: want 1000 or 3000-4999`);
        }
        if (this.#closed)
            return;
        const ws = this.#ws;
        this.#stop();
        if (ws) {
            detach(ws);
            try {
                ws.close(code, reason);
            }
            catch {
                // Already closing: nothing more to do.
            }
        }
        this.#state = 'closed';
        this.#emit('closed', { code, reason, willReconnect: false });
    }
    // One attempt: find the socket the plan leads to, then dial it.
    async #try(plan) {
        if (this.#closed)
            return;
        if (plan.kind === 'socket') {
            this.#dial(plan, plan.socket, false);
            return;
        }
        const from = this.#endpoint;
        let ep;
        try {
            ep = await this.#fetchEndpoint(plan.kind === 'endpoint' ? plan.url : null, plan.kind === 'ticket' ? plan.ticket : null);
        }
        catch (err) {
            if (this.#closed)
                return;
            const e = err instanceof EndpointError ? err : new EndpointError(`get-endpoint: ${String(err)}`, 0, false, 0);
            if (plan.kind === 'ticket') {
                this.#retry({ kind: 'endpoint', url: null }, 'ticket_failed', { now: true });
            }
            else if (e.fatal) {
                this.#finish(1006, e.message, e);
            }
            else {
                // A hint from a 410 that fails: our own URL next, when we have one.
                const next = this.#ownGetEndpoint ? { kind: 'endpoint', url: null } : plan;
                this.#retry(next, 'endpoint_failed', { minDelayMs: e.retryAfterMs });
            }
            return;
        }
        if (this.#closed)
            return;
        if (plan.kind === 'ticket') {
            this.#emit('moved', { ticket: plan.ticket, fromReplica: from?.replica ?? null, toReplica: ep.replica });
            if (this.#closed)
                return;
        }
        this.#dial(plan, ep.socket, plan.kind === 'ticket');
    }
    #dial(plan, socket, handoff) {
        let ws;
        try {
            ws = new this.#o.WebSocket(socket, this.#o.protocols);
        }
        catch (err) {
            this.#finish(1006, `cannot dial ${socket}: ${String(err)}`, err instanceof Error ? err : new Error(String(err)));
            return;
        }
        ws.binaryType = this.#o.binaryType;
        this.#ws = ws;
        this.#socket = withoutTicket(socket);
        let opened = false;
        const failed = (abandon) => {
            this.#clearTimer();
            detach(ws);
            this.#ws = null;
            if (abandon) {
                try {
                    ws.close();
                }
                catch {
                    // Closing a socket still connecting may throw in some implementations.
                }
            }
            this.#dialFailed(plan, socket);
        };
        if (this.#o.connectTimeoutMs > 0)
            this.#setTimer(() => failed(true), this.#o.connectTimeoutMs);
        ws.onopen = () => {
            if (this.#ws !== ws)
                return;
            this.#clearTimer();
            opened = true;
            this.#onOpen(socket, handoff);
        };
        ws.onmessage = (ev) => {
            if (this.#ws === ws)
                this.#emit('message', { data: ev.data });
        };
        ws.onclose = (ev) => {
            if (this.#ws !== ws)
                return;
            if (!opened) {
                failed(false);
                return;
            }
            detach(ws);
            this.#ws = null;
            this.#onDrop(ev.code, ev.reason);
        };
        // A close event follows an error, says the standard; but Node 20's
        // WebSocket leaves a failed handshake CONNECTING without one, so an error
        // before open fails the dial by itself. After open, close decides.
        ws.onerror = () => {
            if (this.#ws === ws && !opened)
                failed(true);
        };
    }
    #onOpen(socket, handoff) {
        const key = withoutTicket(socket);
        const reconnect = this.#opened;
        const sameReplica = reconnect && key === this.#openKey;
        this.#openKey = key;
        this.#opened = true;
        this.#attemptAtOpen = this.#attempt;
        this.#attempt = 0;
        this.#openedAt = this.#o.clock.now();
        this.#state = 'open';
        if (reconnect) {
            this.#emit('reconnected', { sameReplica, handoff });
            if (this.#closed)
                return; // a listener closed it
        }
        this.#emit('open', { socket, endpoint: this.#endpoint, reconnect });
    }
    // An open socket closed (not by us): PROTOCOL.md section 2, rules 1, 3, 4, 5.
    #onDrop(code, reason) {
        if (this.#o.clock.now() - this.#openedAt < stableMs)
            this.#attempt = this.#attemptAtOpen;
        if (isFinalCloseCode(code)) {
            this.#finish(code, reason);
            return;
        }
        const canAsk = this.#getEndpoint() !== null;
        if (code === 4901) {
            const m = /^ticket=(\S+)$/.exec(reason);
            if (m && canAsk) {
                this.#retry({ kind: 'ticket', ticket: m[1] }, 'moved', { code, now: true });
                return;
            }
        }
        if (code === 4902) {
            this.#emit('draining', { code, reason });
            if (this.#closed)
                return;
            if (canAsk) {
                this.#retry({ kind: 'endpoint', url: null }, 'draining', { code });
                return;
            }
        }
        // Without a get-endpoint URL a 4901/4902 can only be waited out: the
        // replica's socket keeps being dialled until it answers 410.
        this.#retry({ kind: 'socket', socket: this.#socket }, 'dropped', { code });
    }
    // A dial never opened: rule 2 (ask the replica's URL whether it is gone),
    // or rule 3's fallback for a ticket's socket.
    #dialFailed(plan, socket) {
        if (plan.kind === 'ticket') {
            this.#retry({ kind: 'endpoint', url: null }, 'ticket_failed', { now: true });
            return;
        }
        void this.#probe(this.#probeURL(socket)).then((gone) => {
            if (this.#closed)
                return;
            if (!gone) {
                this.#retry({ kind: 'socket', socket: withoutTicket(socket) }, 'dial_failed');
                return;
            }
            if (gone.getEndpoint && !this.#ownGetEndpoint)
                this.#learnedGetEndpoint = gone.getEndpoint;
            const url = gone.getEndpoint ?? this.#getEndpoint();
            if (!url) {
                this.#finish(1006, 'replica gone', new Error(`discovery: ${socket} is gone and no get-endpoint URL is known`));
                return;
            }
            this.#retry({ kind: 'endpoint', url }, 'gone');
        });
    }
    // The replica's HTTP base for a socket: the get-endpoint answer's url when
    // the socket came from it, else the socket's own URL over http.
    #probeURL(socket) {
        const plain = withoutTicket(socket);
        const ep = this.#endpoint;
        if (ep && withoutTicket(ep.socket) === plain && ep.url)
            return ep.url;
        return plain.replace(/^ws(s?):/i, 'http$1:');
    }
    // GET url: 410 means gone, with the body's get_endpoint when it has one.
    async #probe(url) {
        let res;
        try {
            res = await this.#get(url);
        }
        catch {
            return null; // unreachable is not gone
        }
        if (res.status !== 410)
            return null;
        let hint = null;
        try {
            const body = JSON.parse(res.body);
            if (typeof body.get_endpoint === 'string' && body.get_endpoint)
                hint = new URL(body.get_endpoint, url).href;
        }
        catch {
            // Not JSON: gone all the same.
        }
        return { getEndpoint: hint };
    }
    async #fetchEndpoint(url, ticket) {
        const base = url ?? this.#getEndpoint();
        if (!base)
            throw new EndpointError('get-endpoint: no URL (give api, tenant and app)', 0, true, 0);
        const u = new URL(base);
        if (ticket)
            u.searchParams.set('ticket', ticket);
        const res = await this.#get(u.href);
        if (res.status === 200) {
            let ep = null;
            try {
                ep = JSON.parse(res.body);
            }
            catch {
                // handled below
            }
            if (!ep || typeof ep.socket !== 'string' || !ep.socket) {
                throw new EndpointError('get-endpoint: 200 without a socket', 200, false, 0);
            }
            this.#endpoint = ep;
            return ep;
        }
        let detail = '';
        try {
            const e = JSON.parse(res.body).error;
            if (e)
                detail = `: ${e.code ?? ''}: ${e.message ?? ''}`;
        }
        catch {
            // not JSON
        }
        const s = res.status;
        // A request the platform refuses as such will be refused again; load,
        // limits, outages and gone tickets pass.
        const fatal = s >= 400 && s < 500 && s !== 408 && s !== 410 && s !== 425 && s !== 429;
        throw new EndpointError(`get-endpoint: ${s}${detail}`, s, fatal, res.retryAfterMs);
    }
    async #get(url) {
        const ac = new AbortController();
        this.#abort = ac;
        try {
            const res = await this.#o.fetch(url, { signal: ac.signal });
            const body = await res.text();
            return { status: res.status, body, retryAfterMs: retryAfterMs(res.headers.get('retry-after')) };
        }
        finally {
            if (this.#abort === ac)
                this.#abort = null;
        }
    }
    #getEndpoint() {
        return this.#ownGetEndpoint ?? this.#learnedGetEndpoint;
    }
    #retry(plan, reason, opt = {}) {
        if (this.#closed)
            return;
        this.#state = this.#opened ? 'reconnecting' : 'connecting';
        const attempt = ++this.#attempt;
        if (attempt > this.#o.backoff.maxAttempts) {
            const n = attempt - 1;
            this.#finish(opt.code ?? 1006, `gave up after ${n} attempts`, new Error(`discovery: gave up after ${n} attempts (${reason})`));
            return;
        }
        const delayMs = Math.max(opt.now ? 0 : backoffDelay(attempt, this.#o.backoff, this.#o.random), opt.minDelayMs ?? 0);
        this.#emit('reconnecting', opt.code === undefined ? { attempt, delayMs, reason } : { attempt, delayMs, reason, code: opt.code });
        if (this.#closed)
            return;
        this.#setTimer(() => void this.#try(plan), delayMs);
    }
    #finish(code, reason, error) {
        if (this.#closed)
            return;
        this.#stop();
        this.#state = 'closed';
        this.#emit('closed', error ? { code, reason, willReconnect: false, error } : { code, reason, willReconnect: false });
    }
    #stop() {
        this.#closed = true;
        this.#ws = null;
        this.#clearTimer();
        this.#abort?.abort();
        this.#abort = null;
    }
    #setTimer(fn, ms) {
        this.#clearTimer();
        const t = { handle: undefined };
        t.handle = this.#o.clock.setTimeout(() => {
            if (this.#timer !== t)
                return;
            this.#timer = null;
            fn();
        }, ms);
        this.#timer = t;
    }
    #clearTimer() {
        if (this.#timer)
            this.#o.clock.clearTimeout(this.#timer.handle);
        this.#timer = null;
    }
    #emit(type, event) {
        const set = this.#listeners.get(type);
        if (!set)
            return;
        for (const fn of [...set]) {
            try {
                fn(event);
            }
            catch (err) {
                // A listener's bug must not stop the connection; report it like an
                // EventTarget would, outside our stack.
                queueMicrotask(() => {
                    throw err;
                });
            }
        }
    }
}
function noop() { }
function detach(ws) {
    ws.onopen = null;
    ws.onmessage = null;
    ws.onclose = null;
    ws.onerror = noop; // some implementations throw on an unheard error
}
// A handoff ticket is used once: a later re-dial of that socket goes without it.
function withoutTicket(socket) {
    if (!socket.includes('discovery_ticket='))
        return socket;
    const u = new URL(socket);
    u.searchParams.delete('discovery_ticket');
    return u.href;
}
function retryAfterMs(header) {
    if (!header)
        return 0;
    const s = Number(header);
    if (Number.isFinite(s))
        return Math.max(0, s * 1000);
    const at = Date.parse(header);
    return Number.isFinite(at) ? Math.max(0, at - Date.now()) : 0;
}
