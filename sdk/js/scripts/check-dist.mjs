// Fails when dist/ differs from what tsc builds from src/ now: dist/ is
// committed (the arena binary embeds dist/index.js), so it must never go stale.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const tmp = mkdtempSync(join(tmpdir(), 'discovery-dist-'));
try {
  const tsc = join(root, 'node_modules', 'typescript', 'bin', 'tsc');
  execFileSync(process.execPath, [tsc, '-p', join(root, 'tsconfig.json'), '--outDir', tmp], { stdio: 'inherit' });
  const want = readdirSync(tmp).sort();
  let have = [];
  try {
    have = readdirSync(join(root, 'dist')).sort();
  } catch {
    // no dist at all: reported below
  }
  const stale = [];
  for (const f of new Set([...want, ...have])) {
    if (!want.includes(f)) stale.push(`dist/${f}: not built from src any more`);
    else if (!have.includes(f)) stale.push(`dist/${f}: missing`);
    else if (!readFileSync(join(tmp, f)).equals(readFileSync(join(root, 'dist', f)))) stale.push(`dist/${f}: differs`);
  }
  if (stale.length) {
    console.error(`dist/ is stale; run \`npm run build\` in sdk/js (then \`go generate ./examples/arena\`) and commit:\n  ${stale.join('\n  ')}`);
    process.exit(1);
  }
  console.log(`dist/ is up to date (${want.length} files)`);
} finally {
  rmSync(tmp, { recursive: true, force: true });
}
