// Runs test/*.test.mjs with node's own test runner, with the global
// WebSocket switched on where Node still hides it (Node 20).
import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const major = Number(process.versions.node.split('.')[0]);
if (major < 20) {
  console.error(`node ${process.versions.node}: the SDK and its tests need Node >= 20`);
  process.exit(1);
}
const dir = fileURLToPath(new URL('../test', import.meta.url));
const files = readdirSync(dir).filter((f) => f.endsWith('.test.mjs')).sort().map((f) => join(dir, f));
const flags = typeof globalThis.WebSocket === 'undefined' ? ['--experimental-websocket'] : [];
const r = spawnSync(process.execPath, [...flags, '--test', '--test-reporter=spec', ...files], { stdio: 'inherit' });
process.exit(r.status ?? 1);
