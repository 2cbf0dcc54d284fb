// Runs every compiled test file (build/test/**/*.test.js) with node's test runner. Files run in parallel
// (SHIM_TEST_JOBS, default 3): each e2e file starts its own private containerd(s) and mostly waits on them
// (outages, timeouts, containers), so three at a time fit a loaded 2-core machine; SHIM_TEST_JOBS=1 runs one
// file at a time. The longest files start first so the whole run is as short as its longest file allows.
// Extra arguments filter files by substring: `npm test -- ttrpc reaper`. The full run (no filter) also runs the
// single executable's e2e files alongside (below; SHIM_TEST_SEA=0 leaves them out).
// The test VM's files (e2e/vm-*: a Debian 12 guest under qemu, test/harness/vm.ts) run by default where the VM
// can: root, x86_64 Linux, qemu-system-x86_64 on PATH (SHIM_TEST_VM unset or `auto`); elsewhere they report a
// skip with the reason. SHIM_TEST_VM=0 turns them off, =require fails them where the VM cannot run. In the full
// run they go in a run of their own alongside the main one (below), so the main run never waits for them.
// SHIM_TEST_BINARY=sea runs the tests against the single executable (`npm run package`, dist/sea/) with node
// hidden from containerd and the shims: the run goes on in a private mount namespace where every installed
// node is /dev/null, and the test runner itself uses a copy of node only it knows the path of.
import { spawn, spawnSync } from 'node:child_process';
import { closeSync, existsSync, mkdtempSync, openSync, readFileSync, readdirSync, realpathSync, rmSync, rmdirSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, join, relative } from 'node:path';

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
if (process.env.SHIM_TEST_BINARY === 'sea' && !process.env.SHIM_TEST_HIDDEN_NODE) process.exit(runWithNodeHidden());
const isVmFile = (f) => relative(testRoot, f).startsWith('e2e/vm-');
// SHIM_TEST_VM unset or `auto`: on where the VM can run; elsewhere left `auto`, and the VM files skip with the
// reason (test/harness/vm.ts vmTestSkip). Not under the single executable (node hidden; the guest runs node).
if ((process.env.SHIM_TEST_VM ?? 'auto') === 'auto') {
  process.env.SHIM_TEST_VM = process.env.SHIM_TEST_BINARY ? '0' : vmCanRun() ? '1' : 'auto';
}

let files = walk(testRoot);
if (filters.length > 0) files = files.filter((f) => filters.some((s) => relative(testRoot, f).includes(s)));
/** Longest first (measured serial: restart ~290 s, docker ~160–230 s, exec ~160 s, task-lifecycle ~150 s, load ~100 s, cri ~100 s, …). */
const LONGEST_FIRST = ['e2e/restart', 'e2e/docker', 'e2e/exec', 'e2e/task-lifecycle', 'e2e/load', 'e2e/cri', 'e2e/terminal', 'e2e/io', 'e2e/grouping', 'e2e/faults', 'e2e/checkpoint', 'e2e/oom'];
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
// The full run (no filter) also runs the single executable's e2e files alongside, node hidden (CI and
// `npm test` both come here); SHIM_TEST_SEA=0 leaves them out.
/** What the single executable must pass with node hidden: the lifecycle, io, terminal and restart files. */
const SEA_FILES = ['e2e/task-lifecycle', 'e2e/io', 'e2e/terminal', 'e2e/restart'];
const withSea = filters.length === 0 && !process.env.SHIM_TEST_BINARY && process.env.SHIM_TEST_SEA !== '0';
const seaRun = withSea ? startSideRun(SEA_FILES, { SHIM_TEST_BINARY: 'sea', SHIM_TEST_JOBS: '2' }) : undefined;
// The VM files in a run of their own alongside (full run, VM on): each boots the guest once and then mostly
// waits for it; the VMs take turns (a lock in test/harness/vm.ts) and qemu runs at a lower CPU priority
// (SHIM_VM_NICE), so the host's files keep the CPU they need on a small machine.
const withVm = filters.length === 0 && !process.env.SHIM_TEST_BINARY && ['1', 'require'].includes(process.env.SHIM_TEST_VM ?? '') && files.some(isVmFile);
const vmFiles = withVm ? files.filter(isVmFile).map((f) => relative(testRoot, f).replace(/\.test\.js$/, '')) : [];
if (withVm) files = files.filter((f) => !isVmFile(f));
const vmRun = withVm ? startSideRun(vmFiles, { SHIM_TEST_JOBS: String(vmFiles.length) }) : undefined;
const started = Date.now();
const r = spawnSync(process.execPath, ['--test', `--test-concurrency=${jobs}`, '--test-reporter=spec', ...files], {
  stdio: 'inherit',
  env,
});
const mainMs = Date.now() - started;
stopSpares();
let status = r.status ?? 1;
for (const [run, what] of [
  [seaRun, `the single executable's e2e files (SHIM_TEST_BINARY=sea: ${SEA_FILES.join(' ')})`],
  [vmRun, `the test VM's files (${vmFiles.join(' ')})`],
]) {
  if (!run) continue;
  const side = await run;
  // A side run that ended while spawnSync held this process is seen ending with the main run.
  console.log(`\n== ${what}, exit ${side.status}, done ${Math.round(side.ms / 1000)} s after the start (main run: ${Math.round(mainMs / 1000)} s)`);
  process.stdout.write(side.output);
  if (side.status !== 0) status = status || 1;
  // A guest that went silent was booted once more (test/harness/vm.ts): infrastructure trouble, shown here again.
  const retries = side.output.split('\n').filter((l) => l.includes('VM INFRASTRUCTURE RETRY'));
  if (retries.length > 0) console.log(`\n!!! ${retries.length} VM guest(s) went silent and were booted once more:\n${retries.join('\n')}`);
}
process.exit(status);

/** Whether the test VM can boot here at all: qemu on PATH, root, x86_64 Linux (test/harness/vm.ts vmPrecheck). */
function vmCanRun() {
  if (process.platform !== 'linux' || process.arch !== 'x64' || process.getuid?.() !== 0) return false;
  return (process.env.PATH ?? '').split(delimiter).some((d) => d && existsSync(join(d, 'qemu-system-x86_64')));
}

/**
 * This script again on `filters` with `extraEnv` (the single executable's files; the VM's files), alongside the
 * main run. Its output goes to a file (a pipe would fill while the main run blocks this process) and is shown
 * at the end.
 */
function startSideRun(filters, extraEnv) {
  const dir = mkdtempSync(join(tmpdir(), 'side-tests-'));
  const logPath = join(dir, 'output.log');
  const fd = openSync(logPath, 'w');
  const t0 = Date.now();
  const child = spawn(process.execPath, [join(root, 'scripts', 'run-tests.mjs'), ...filters], { env: { ...env, ...extraEnv }, stdio: ['ignore', fd, fd] });
  closeSync(fd);
  return new Promise((resolve) => {
    const done = (status, extra = '') => {
      const output = readFileSync(logPath, 'utf8') + extra;
      rmSync(dir, { recursive: true, force: true });
      resolve({ status, output, ms: Date.now() - t0 });
    };
    child.on('error', (err) => done(1, `could not run: ${err.message}\n`));
    child.on('close', (code) => done(code ?? 1));
  });
}

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
    // The single file runs its unpacked executable from CONTAINERD_SHIM_TS_CACHE (set per run below).
    const seaCache = process.env.CONTAINERD_SHIM_TS_CACHE;
    const ofThisForm = process.env.SHIM_TEST_BINARY === 'sea' ? !!seaCache && (argv[0] ?? '').startsWith(`${seaCache}/`) : argv.includes(loader);
    if (ofThisForm && argv.includes('spare')) {
      try {
        process.kill(Number(pid), 'SIGTERM');
      } catch {
        /* gone */
      }
    }
  }
}

/**
 * Runs this script again inside `unshare -m` (a private mount namespace: nothing done there reaches the host)
 * with /dev/null bind-mounted over every node binary: the one running us, and each `node`/`nodejs` on PATH.
 * The runner gets a bind mount of node on a private tmpfs (its own path, on no PATH). The harness checks that
 * node cannot be run (test/harness/containerd.ts).
 */
function runWithNodeHidden() {
  const sea = join(root, 'dist', 'sea', 'containerd-shim-ts-v2');
  if (!existsSync(sea)) {
    console.error(`${sea} is missing: run \`npm run package\` first`);
    return 1;
  }
  const candidates = [process.execPath];
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    for (const name of ['node', 'nodejs']) candidates.push(join(dir || '.', name));
  }
  const hide = [...new Set(candidates.filter((p) => existsSync(p)).map((p) => realpathSync(p)))];
  const runnerDir = mkdtempSync(join(tmpdir(), 'runner-node-'));
  // Where the single file unpacks its executable: this run's own (not the host's /var/lib), removed after.
  const seaCache = mkdtempSync(join(tmpdir(), 'shim-ts-cache-'));
  const script = [
    'set -e',
    'mount -t tmpfs -o mode=0700 runner-node "$RUNNER_DIR"',
    ': > "$RUNNER_DIR/node"',
    'mount --bind "$NODE" "$RUNNER_DIR/node"',
    'IFS=:; for p in $SHIM_TEST_HIDDEN_NODE; do mount --bind /dev/null "$p"; done; unset IFS',
    'if node -e 0 2>/dev/null || "$NODE" -e 0 2>/dev/null; then echo "node still runs in the namespace" >&2; exit 1; fi',
    'exec "$RUNNER_DIR/node" "$@"',
  ].join('\n');
  console.log(`run-tests: single executable ${sea}; node hidden in a private mount namespace: ${hide.join(', ')}`);
  const r = spawnSync('unshare', ['-m', '--propagation', 'private', '--', '/bin/sh', '-c', script, 'sh', join(root, 'scripts', 'run-tests.mjs'), ...filters], {
    stdio: 'inherit',
    env: { ...process.env, RUNNER_DIR: runnerDir, NODE: process.execPath, SHIM_TEST_HIDDEN_NODE: hide.join(':'), CONTAINERD_SHIM_TS_CACHE: seaCache },
  });
  rmdirSync(runnerDir);
  rmSync(seaCache, { recursive: true, force: true });
  return r.status ?? 1;
}
