// Runs every compiled test file (build/test/**/*.test.js) with node's test runner. Files run in parallel
// (SHIM_TEST_JOBS, default 3): each e2e file starts its own private containerd(s) and mostly waits on them
// (outages, timeouts, containers), so three at a time fit a loaded 2-core machine; SHIM_TEST_JOBS=1 runs one
// file at a time. The longest files start first so the whole run is as short as its longest file allows.
// Extra arguments filter files by substring: `npm test -- ttrpc reaper`.
import { spawnSync } from 'node:child_process';
import { readFileSync, readdirSync, statSync } from 'node:fs';
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
/** Longest first (measured serial: restart ~290 s, docker ~160–230 s, exec ~160 s, task-lifecycle ~150 s, load ~100 s, …). */
const LONGEST_FIRST = ['e2e/restart', 'e2e/docker', 'e2e/exec', 'e2e/task-lifecycle', 'e2e/load', 'e2e/terminal', 'e2e/io', 'e2e/grouping', 'e2e/faults', 'e2e/checkpoint', 'e2e/oom'];
const rank = (f) => {
  const i = LONGEST_FIRST.findIndex((s) => relative(testRoot, f).startsWith(s));
  return i < 0 ? LONGEST_FIRST.length : i;
};
files = files.map((f, i) => ({ f, i })).sort((a, b) => rank(a.f) - rank(b.f) || a.i - b.i).map((x) => x.f);
const jobs = Math.max(1, Number.parseInt(process.env.SHIM_TEST_JOBS ?? '3', 10) || 3);
if (files.length === 0) {
  console.error('no test files matched');
  process.exit(1);
}
// Node 20 loads NODE_EXTRA_CA_CERTS eagerly in every process (~40 ms each); the tests need no TLS.
const env = { ...process.env };
delete env.NODE_EXTRA_CA_CERTS;
const r = spawnSync(process.execPath, ['--test', `--test-concurrency=${jobs}`, '--test-reporter=spec', ...files], {
  stdio: 'inherit',
  env,
});
stopSpares();
process.exit(r.status ?? 1);

/**
 * The shims the tests ran leave a spare daemon waiting (shim/spare): it would wait for 10 minutes, holding
 * whatever descriptors the test run inherited. Spares of this checkout's build are stopped (SIGTERM: a spare
 * removes its FIFO and exits; one serving a container has another title and is not matched).
 */
function stopSpares() {
  const loader = join(root, 'dist', 'containerd-shim-ts-v2.cjs');
  for (const pid of readdirSync('/proc').filter((n) => /^\d+$/.test(n))) {
    let argv;
    try {
      argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
    } catch {
      continue;
    }
    if (argv.includes(loader) && argv.includes('spare')) {
      try {
        process.kill(Number(pid), 'SIGTERM');
      } catch {
        /* gone */
      }
    }
  }
}
