// Prints the size of the bundle a browser loads: dist/index.js, raw and gzipped.
import { readFileSync } from 'node:fs';
import { gzipSync } from 'node:zlib';

const js = readFileSync(new URL('../dist/index.js', import.meta.url));
console.log(`dist/index.js: ${js.length} bytes, ${gzipSync(js, { level: 9 }).length} bytes gzipped`);
