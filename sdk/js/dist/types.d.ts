/** The 200 answer of get-endpoint (sdk/PROTOCOL.md section 1). */
export interface Endpoint {
    /** The WebSocket URL to dial as it is; with a ticket it carries `?discovery_ticket=`. */
    socket: string;
    /** The replica's base as a ws:// or wss:// URL. */
    endpoint: string;
    /** The replica's base as an http:// or https:// URL. */
    url: string;
    tenant: string;
    app: string;
    revision: string;
    replica: string;
    /** Seconds the reservation (or the ticket) stays valid: dial before. */
    expires_in: number;
}
/** Reconnect timing. Attempt 1 after an open connection goes at once. */
export interface BackoffOptions {
    /** Base delay of attempt 2; it doubles with each attempt after. Default 100. */
    initialMs: number;
    /** Cap of the base delay. Default 5000. */
    maxMs: number;
    /** Each delay is the base times 1 ± jitter, uniformly. Default 0.5. */
    jitter: number;
    /** Failed attempts in a row before giving up with `closed`. Default Infinity. */
    maxAttempts: number;
}
type Handler<E> = {
    bivarianceHack(ev: E): void;
}['bivarianceHack'];
/** The part of the WHATWG WebSocket this SDK uses. */
export interface WebSocketLike {
    readonly readyState: number;
    binaryType: string;
    onopen: Handler<unknown> | null;
    onmessage: Handler<{
        data: any;
    }> | null;
    onclose: Handler<{
        code: number;
        reason: string;
    }> | null;
    onerror: Handler<unknown> | null;
    send(data: any): void;
    close(code?: number, reason?: string): void;
}
/** A WebSocket constructor: the global one, or e.g. the `ws` package's. */
export type WebSocketConstructor = new (url: string, protocols?: string | string[]) => WebSocketLike;
/** The part of fetch this SDK uses (GET requests only). */
export type FetchLike = (url: string, init: {
    signal: AbortSignal;
}) => Promise<{
    status: number;
    headers: {
        get(name: string): string | null;
    };
    text(): Promise<string>;
}>;
/** Time as the SDK sees it; tests inject their own. */
export interface Clock {
    setTimeout(fn: () => void, ms: number): unknown;
    clearTimeout(handle: unknown): void;
    /** Milliseconds, only ever subtracted from each other. */
    now(): number;
}
/** Options of {@link connect}. Give `api`, `tenant` and `app`, or `socket`, or all four. */
export interface ConnectOptions {
    /** The platform API base as clients reach it, e.g. `https://api.example.com`. */
    api?: string;
    tenant?: string;
    app?: string;
    /**
     * A socket URL to dial first instead of calling get-endpoint, e.g. the page's
     * own replica. With `api`, `tenant` and `app` as well, get-endpoint still
     * serves every fallback (410, 4901, 4902); alone, the SDK only learns a
     * get-endpoint URL from a 410 answer's `get_endpoint`.
     */
    socket?: string;
    /** WebSocket subprotocols, passed to every dial. */
    protocols?: string | string[];
    /** Defaults to the global WebSocket (Node 20 needs --experimental-websocket). */
    WebSocket?: WebSocketConstructor;
    /** Default "arraybuffer" (unlike the browser's "blob"). */
    binaryType?: 'arraybuffer' | 'blob';
    backoff?: Partial<BackoffOptions>;
    /** A dial not open by then counts as failed. Default 10000; 0 waits forever. */
    connectTimeoutMs?: number;
    /** Defaults to the global fetch. */
    fetch?: FetchLike;
    /** Source of jitter in [0, 1). Default Math.random. */
    random?: () => number;
    /** Timers and time. Default the global setTimeout/clearTimeout and Date.now. */
    clock?: Partial<Clock>;
}
/** Where a Connection is; only "closed" is final. */
export type ReadyState = 'connecting' | 'open' | 'reconnecting' | 'closed';
/**
 * Why the next attempt is made:
 * - `dropped`: an open connection closed (network, 1001, 1006, 1011, ...): same socket;
 * - `dial_failed`: a dial failed and its replica is not gone: same socket;
 * - `gone`: a dial failed and `GET {url}` answered 410: get-endpoint;
 * - `moved`: close 4901 with a ticket: get-endpoint?ticket, at once;
 * - `ticket_failed`: the ticket answered 410 or its socket failed: fresh get-endpoint, at once;
 * - `draining`: close 4902: fresh get-endpoint;
 * - `endpoint_failed`: get-endpoint could not answer (network, 429, 5xx): again.
 */
export type ReconnectReason = 'dropped' | 'dial_failed' | 'gone' | 'moved' | 'ticket_failed' | 'draining' | 'endpoint_failed';
export interface OpenEvent {
    /** The socket URL now open. */
    socket: string;
    /** The get-endpoint answer it came from, null when dialled directly. */
    endpoint: Endpoint | null;
    /** False for the first open, true for every reconnect. */
    reconnect: boolean;
}
export interface MessageEventDetail {
    /** A string for text frames; an ArrayBuffer (or Blob, per binaryType) for binary ones. */
    data: string | ArrayBuffer | Blob;
}
export interface ReconnectingEvent {
    /** 1 for the first attempt since the last open connection. */
    attempt: number;
    /** Wait before this attempt. */
    delayMs: number;
    reason: ReconnectReason;
    /** The close code that ended the connection, when one did. */
    code?: number;
}
export interface ReconnectedEvent {
    /** True when the new socket is on the replica of the previous one (the session may resume). */
    sameReplica: boolean;
    /** True when it was reached through a handoff ticket (the new replica holds the state). */
    handoff: boolean;
}
export interface DrainingEvent {
    /** 4902. */
    code: number;
    reason: string;
}
export interface MovedEvent {
    ticket: string;
    /** Replica of the previous get-endpoint answer, null when unknown. */
    fromReplica: string | null;
    /** Replica the ticket leads to. */
    toReplica: string;
}
export interface ClosedEvent {
    /** The close code that ended it, the code given to close(), or 1006 when the SDK gave up. */
    code: number;
    reason: string;
    willReconnect: false;
    /** Why the SDK gave up, when it did (get-endpoint refused, attempts exhausted, replica gone). */
    error?: Error;
}
/** Event name → what its listeners receive. */
export interface ConnectionEventMap {
    open: OpenEvent;
    message: MessageEventDetail;
    reconnecting: ReconnectingEvent;
    reconnected: ReconnectedEvent;
    draining: DrainingEvent;
    moved: MovedEvent;
    closed: ClosedEvent;
}
export {};
