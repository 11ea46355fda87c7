import type { BackoffOptions, ConnectOptions, ConnectionEventMap, Endpoint, ReadyState } from './types.js';
export type * from './types.js';
/** The defaults of {@link ConnectOptions.backoff}. */
export declare const defaultBackoff: Readonly<BackoffOptions>;
/**
 * A connection that lived less than this did not prove the server well: the
 * next attempt continues the backoff where it was instead of going at once,
 * so a server that accepts and closes at once is not hammered.
 */
export declare const stableMs = 1000;
/**
 * The wait before reconnect attempt `attempt` (1-based): 0 for the first,
 * then initialMs doubling up to maxMs, each spread by ±jitter.
 */
export declare function backoffDelay(attempt: number, backoff: BackoffOptions, random: () => number): number;
/** The get-endpoint URL of an app (sdk/PROTOCOL.md section 1). */
export declare function getEndpointURL(api: string, tenant: string, app: string): string;
/** Close codes after which the game decided: no reconnect. */
export declare function isFinalCloseCode(code: number): boolean;
/** Connect to an app; see {@link Connection}. Listeners added right after this call miss nothing. */
export declare function connect(options: ConnectOptions): Connection;
/** A get-endpoint failure: fatal ones end the connection, others are retried. */
export declare class EndpointError extends Error {
    readonly status: number;
    readonly fatal: boolean;
    readonly retryAfterMs: number;
    constructor(message: string, status: number, fatal: boolean, retryAfterMs: number);
}
type Listener<K extends keyof ConnectionEventMap> = (event: ConnectionEventMap[K]) => void;
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
export declare class Connection {
    #private;
    constructor(options: ConnectOptions);
    /** Where the connection is; "closed" is final. */
    get readyState(): ReadyState;
    /** The last get-endpoint answer, null before the first one. */
    get endpoint(): Endpoint | null;
    /** The socket URL open now, or last dialled. */
    get socket(): string | null;
    /** Listen to an event; returns a function that removes the listener. */
    on<K extends keyof ConnectionEventMap>(type: K, listener: Listener<K>): () => void;
    /**
     * Send on the open socket. Returns false, and drops the message, when no
     * socket is open (connecting, reconnecting, closed): the SDK never replays
     * game messages on another socket, where they could mean something else.
     */
    send(data: string | ArrayBufferLike | ArrayBufferView | Blob): boolean;
    /**
     * Close for good: no reconnect, every timer and request stopped. Emits
     * `closed` with this code and reason before returning.
     */
    close(code?: number, reason?: string): void;
}
