// Compiled, never run (npm test: tsc -p test): the public types as a game
// would use them. A line marked @ts-expect-error must stay an error.

import { connect, type Connection, type ConnectionEventMap, type ReconnectReason } from '../dist/index.js';

// The DOM's WebSocket fits the WebSocket option.
const conn: Connection = connect({ api: 'https://api.example.com', tenant: 'acme', app: 'arena', WebSocket });
connect({ socket: 'wss://gw.example.com/s/acme/arena/9d00cc18/r-0/ws', binaryType: 'blob', backoff: { maxMs: 2000 } });

// Each event's listener gets its own detail.
const off: () => void = conn.on('moved', (e) => {
  const to: string = e.toReplica;
  const from: string | null = e.fromReplica;
  void [to, from];
});
off();
conn.on('reconnecting', (e) => {
  const r: ReconnectReason = e.reason;
  const code: number | undefined = e.code;
  void [r, code, e.attempt + e.delayMs];
});
conn.on('reconnected', (e) => void (e.sameReplica && e.handoff));
conn.on('closed', (e) => {
  const never: false = e.willReconnect;
  void [never, e.error?.message];
});
conn.on('message', (e) => {
  if (typeof e.data === 'string') JSON.parse(e.data);
});
// @ts-expect-error no such event
conn.on('error', () => {});
// @ts-expect-error moved has no code
conn.on('moved', (e) => e.code);

const sent: boolean = conn.send(new Uint8Array([1, 2]));
const state: 'connecting' | 'open' | 'reconnecting' | 'closed' = conn.readyState;
const replica: string | undefined = conn.endpoint?.replica;
const events: (keyof ConnectionEventMap)[] = ['open', 'message', 'reconnecting', 'reconnected', 'draining', 'moved', 'closed'];
void [sent, state, replica, events];
conn.close(1000, 'bye');
