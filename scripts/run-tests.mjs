// Runs every compiled test file (build/test/**/*.test.js) with node's test runner, one file at a time:
// the e2e files start their own containerd and containers, which a 2-core machine should not overlap.
// Extra arguments filter files by substring: `npm test -- ttrpc reaper`.
import { spawnSync } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';

const root = new URL('..', import.meta.url).pathname;
const testRoot = join(root, 'build', 'test');

function walk(dir) {
  const out = [];
  for (const name of readdirSync(dir).sort()) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...walk(p));
    else if (name.endsWith('.test.js')) out.push(p);
  }
  return out;
}

const filters = process.argv.slice(2);
let files = walk(testRoot);
if (filters.length > 0) files = files.filter((f) => filters.some((s) => relative(testRoot, f).includes(s)));
if (files.length === 0) {
  console.error('no test files matched');
  process.exit(1);
}
// Node 20 loads NODE_EXTRA_CA_CERTS eagerly in every process (~40 ms each); the tests need no TLS.
const env = { ...process.env };
delete env.NODE_EXTRA_CA_CERTS;
const r = spawnSync(process.execPath, ['--test', '--test-concurrency=1', '--test-reporter=spec', ...files], {
  stdio: 'inherit',
  env,
});
process.exit(r.status ?? 1);
