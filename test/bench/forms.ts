/**
 * The shim's two forms compared (a script, not a test): the script form (`npm run build`: the sh wrapper
 * dist/containerd-shim-ts-v2 running node on dist/*.cjs) and the single file (`npm run package`:
 * dist/sea/containerd-shim-ts-v2, the same wrapper followed by the executable it unpacks once). Run in the same
 * session, rounds alternating the forms.
 *
 *   node build/test/bench/forms.js [--runs N] [--daemons N]
 *
 *   start    `start` by hand in a bundle (as test/bench/bench.ts does): until it exits and until the daemon
 *            answers Connect; with a spare waiting, and with spares off
 *   delete   `delete` by hand in a bundle as a clean teardown leaves it (the fast path), and the full delete
 *            (CONTAINERD_SHIM_TS_NO_FAST_DELETE=1)
 *   memory   PSS and Pss_Anon (smaps_rollup) summed over the idle daemons of N `sleep` containers run by a
 *            private containerd 1.6, one daemon each; spares on (the default), then off
 *
 * Needs root, runc, `npm run build` (the wrapper must be in dist/, not the packaged executable) and
 * `npm run package -- --no-install`.
 */
import { readFile, readdir, readlink, writeFile } from 'node:fs/promises';
import { mkdtempSync, readdirSync, rmSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import * as api from '../../protocol/gen/containerd/runtime/v2/task/shim.js';
import { Empty } from '../../protocol/gen/google/protobuf/empty.js';
import { startContainerd, waitTaskStatus, type Containerd } from '../harness/containerd.js';
import { DEFAULT_IMAGE, importImage } from '../harness/image.js';
import { isAlive, makeTempDir, removeDir, repoRoot, sleep, tempBase, uniqueId, waitFor } from '../harness/util.js';
import { FifoReader, cleanupByHand, connectTask, makeBundle, runShim, shimSocket } from '../fixtures/shim-by-hand.js';

type Form = 'script' | 'sea';
const FORMS: readonly Form[] = ['script', 'sea'];
const BIN: Record<Form, string> = {
  script: join(repoRoot(), 'dist', 'containerd-shim-ts-v2'),
  sea: join(repoRoot(), 'dist', 'sea', 'containerd-shim-ts-v2'),
};
const LOADER = join(repoRoot(), 'dist', 'containerd-shim-ts-v2.cjs');
const WARMUP = 2;

/**
 * containerd's environment as a systemd unit gives it: no NODE_EXTRA_CA_CERTS (Node 20 reads that file at every
 * start, ~40 ms; the wrapper unsets it before node runs, the single executable cannot) and no NODE_OPTIONS.
 */
delete process.env.NODE_EXTRA_CA_CERTS; // the private containerds get this process's environment
delete process.env.NODE_OPTIONS;
// The single file unpacks its executable there (once; the first round is a warm-up).
const SEA_CACHE = mkdtempSync(join(tempBase(), 'forms-sea-cache-'));
process.env.CONTAINERD_SHIM_TS_CACHE = SEA_CACHE;
process.on('exit', () => rmSync(SEA_CACHE, { recursive: true, force: true }));
const BASE_ENV: NodeJS.ProcessEnv = { ...process.env };

/** The single file's unpacked executable (what its daemons and spares run). */
function seaExecutable(): string {
  const [build] = readdirSync(SEA_CACHE);
  return join(SEA_CACHE, build ?? 'not-unpacked-yet', 'containerd-shim-ts-v2');
}

const { values } = parseArgs({ options: { runs: { type: 'string', default: '15' }, daemons: { type: 'string', default: '10' } } });
const RUNS = Number(values.runs);
const DAEMONS = Number(values.daemons);

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}
const fmt = (xs: number[]): string => `${median(xs).toFixed(1)} (${Math.min(...xs).toFixed(1)}–${Math.max(...xs).toFixed(1)})`;

/** Rounds alternating the forms (who goes first alternates too); the first WARMUP rounds are not counted. */
async function alternate<T extends Record<string, number>>(measure: (form: Form) => Promise<T>): Promise<Record<Form, Record<keyof T, number[]>>> {
  const out = { script: {}, sea: {} } as Record<Form, Record<keyof T, number[]>>;
  for (let i = 0; i < WARMUP + RUNS; i++) {
    for (const form of i % 2 ? [...FORMS].reverse() : FORMS) {
      const r = await measure(form);
      if (i < WARMUP) continue;
      for (const [k, v] of Object.entries(r)) ((out[form] as Record<string, number[]>)[k] ??= []).push(v);
    }
  }
  return out;
}

function print<T extends Record<string, number[]>>(title: string, r: Record<Form, T>): void {
  console.log(`\n${title} (ms, median (min–max) of ${RUNS})`);
  for (const k of Object.keys(r.script)) console.log(`  ${k.padEnd(10)} script ${fmt(r.script[k]!).padEnd(26)} sea ${fmt(r.sea[k]!)}`);
}

/** Whether a spare of `form` waits now. */
async function spareWaits(form: Form): Promise<boolean> {
  for (const n of await readdir('/run/containerd/s').catch(() => [] as string[])) {
    const m = /^ts-spare-[0-9a-f]+-(?:s\d+-)?(\d+)$/.exec(n);
    if (!m || !(await isAlive(Number(m[1])))) continue;
    const pid = m[1]!;
    if (form === 'sea' && (await readlink(`/proc/${pid}/exe`).catch(() => '')) === seaExecutable()) return true;
    if (form === 'script' && (await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '')).includes(LOADER)) return true;
  }
  return false;
}

interface ByHand {
  tmp: string;
  address: string;
  namespace: string;
  ids: string[];
  sockets: string[];
}

async function startOnce(h: ByHand, form: Form, env: NodeJS.ProcessEnv): Promise<{ exit: number; connect: number }> {
  const id = uniqueId('fs');
  h.ids.push(id);
  h.sockets.push(shimSocket(h.address, h.namespace, id));
  const bundle = await makeBundle(join(h.tmp, h.namespace), id, { args: ['sleep', '600'] });
  const log = new FifoReader(join(bundle, 'log'));
  try {
    const args = ['-namespace', h.namespace, '-address', h.address, '-publish-binary', '/usr/bin/containerd', '-id', id, 'start'];
    const t0 = performance.now();
    const r = await runShim(args, { cwd: bundle, input: '', binary: BIN[form], env });
    const exit = performance.now() - t0;
    if (r.code !== 0) throw new Error(`${form} start: exit ${r.code}: ${r.stderr}`);
    const conn = await connectTask(r.stdout.trim(), h.namespace);
    try {
      const res = await conn.call('Connect', { id }, api.ConnectRequest, api.ConnectResponse);
      const connect = performance.now() - t0;
      await conn.call('Shutdown', { id, now: false }, api.ShutdownRequest, Empty).catch(() => undefined);
      await waitFor(async () => !(await isAlive(res.shimPid)), 20_000, `${form} daemon ${res.shimPid} to exit`);
      return { exit, connect };
    } finally {
      conn.close();
    }
  } finally {
    log.close();
    await removeDir(bundle);
  }
}

async function startSection(): Promise<void> {
  const tmp = await makeTempDir('fs-');
  const h: ByHand = { tmp, address: join(tmp, 'c.sock'), namespace: uniqueId('fs'), ids: [], sockets: [] };
  const env = { ...BASE_ENV, TTRPC_ADDRESS: `${h.address}.ttrpc`, GRPC_ADDRESS: h.address, NAMESPACE: h.namespace };
  try {
    await (await import('node:fs/promises')).mkdir(join(tmp, h.namespace));
    let missed = 0;
    const warm = await alternate(async (form) => {
      if (!(await waitFor(() => spareWaits(form), 10_000, 'spare').catch(() => false))) missed++;
      return startOnce(h, form, env);
    });
    print('start, a spare waiting', warm);
    if (missed) console.log(`  (no spare waited before ${missed} starts)`);
    const cold = await alternate((form) => startOnce(h, form, { ...env, CONTAINERD_SHIM_TS_SPARE: '0' }));
    print('start, spares off', cold);
  } finally {
    await cleanupByHand({ address: h.address, namespace: h.namespace, tmp, ids: h.ids, sockets: h.sockets });
  }
}

/** A bundle as a clean teardown leaves it: no runc state, nothing mounted, the daemon's socket gone. */
async function tornDownBundle(parent: string): Promise<{ id: string; bundle: string }> {
  const id = uniqueId('fd');
  const bundle = await makeBundle(parent, id, { args: ['true'] });
  await writeFile(join(bundle, 'runtime'), 'runc');
  await writeFile(join(bundle, 'address'), `unix:///run/containerd/s/${'0'.repeat(64)}`);
  await writeFile(join(bundle, 'init.pid'), '4242');
  await writeFile(join(bundle, 'options.json'), '{}');
  return { id, bundle };
}

async function deleteSection(): Promise<void> {
  const tmp = await makeTempDir('fd-');
  const ns = uniqueId('fd');
  try {
    const cases = [
      ['delete after a clean teardown (fast path)', {}],
      ['delete, fast path off (full delete)', { CONTAINERD_SHIM_TS_NO_FAST_DELETE: '1' }],
      ['delete after a clean teardown, NODE_EXTRA_CA_CERTS set in containerd', { NODE_EXTRA_CA_CERTS: '/etc/ssl/certs/ca-certificates.crt' }],
    ] as const;
    for (const [title, extra] of cases) {
      const r = await alternate(async (form) => {
        const { id, bundle } = await tornDownBundle(join(tmp, ns));
        const args = ['-namespace', ns, '-address', join(tmp, 'c.sock'), '-publish-binary', '/usr/bin/containerd', '-id', id, '-bundle', bundle, 'delete'];
        const t0 = performance.now();
        const res = await runShim(args, { cwd: bundle, binary: BIN[form], env: { ...BASE_ENV, ...extra } });
        const ms = performance.now() - t0;
        if (res.code !== 0) throw new Error(`${form} delete: ${res.code} ${res.stderr}`);
        await removeDir(bundle);
        return { delete: ms };
      });
      print(title, r);
    }
  } finally {
    await removeDir(tmp);
  }
}

type Pss = Record<'pss' | 'anon' | 'file' | 'shmem', number>;

async function pss(pid: number): Promise<Pss> {
  const text = await readFile(`/proc/${pid}/smaps_rollup`, 'utf8');
  const field = (name: string): number => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(text)?.[1] ?? NaN);
  return { pss: field('Pss'), anon: field('Pss_Anon'), file: field('Pss_File'), shmem: field('Pss_Shmem') };
}

/** How many processes on the machine map `file`. */
async function mappers(file: string): Promise<number> {
  let n = 0;
  for (const pid of await readdir('/proc')) {
    if (!/^\d+$/.test(pid)) continue;
    const maps = await readFile(`/proc/${pid}/maps`, 'utf8').catch(() => '');
    if (maps.includes(` ${file}\n`)) n++;
  }
  return n;
}

async function memoryOnce(form: Form, spares: boolean): Promise<string> {
  const dir = mkdtempSync(join(tempBase(), 'formbin-'));
  symlinkSync(BIN[form], join(dir, 'containerd-shim-ts-v2'));
  const cd: Containerd = await startContainerd({ version: '1.6', shimDirs: [dir], env: spares ? {} : { CONTAINERD_SHIM_TS_SPARE: '0' } });
  try {
    await importImage(cd);
    const ids = Array.from({ length: DAEMONS }, () => uniqueId(`m${form}`));
    for (const id of ids) {
      await cd.ctr(['run', '-d', '--runtime', 'io.containerd.ts.v2', DEFAULT_IMAGE, id, 'sleep', '600']);
      await waitTaskStatus(cd, id, 'RUNNING', 60_000);
    }
    await sleep(3000);
    const daemons = (await cd.shimProcesses()).filter((p) => p.argv.some((a) => a.includes('containerd-shim-ts-v2')) && !['start', 'delete'].includes(p.argv.at(-1) ?? ''));
    const all = await Promise.all(daemons.map((p) => pss(p.pid)));
    const sum = (k: keyof Pss): string => (all.reduce((s, m) => s + m[k], 0) / 1024).toFixed(1);
    // PSS splits a file's shared pages between every process mapping it: node's are shared with every node process
    // on the machine, the single executable's only with its own processes.
    const program = form === 'sea' ? seaExecutable() : process.execPath;
    return `${daemons.length} daemons: PSS ${sum('pss')} MiB, Pss_Anon ${sum('anon')}, Pss_File ${sum('file')}, Pss_Shmem ${sum('shmem')}; ${await mappers(program)} processes map ${program}`;
  } finally {
    await cd.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

async function memorySection(): Promise<void> {
  for (const spares of [true, false]) {
    console.log(`\nmemory, ${DAEMONS} idle daemons, spares ${spares ? 'on' : 'off'} (sum over the daemons)`);
    for (const form of FORMS) console.log(`  ${form.padEnd(6)} ${await memoryOnce(form, spares)}`);
  }
}

const head = await readFile(BIN.script, 'latin1').then((t) => t.slice(0, 2));
if (head !== '#!') throw new Error(`${BIN.script} is not the script form's wrapper: run npm run build`);
console.log(`forms: script ${BIN.script}, sea ${BIN.sea}; ${RUNS} runs after ${WARMUP} warm-up rounds`);
await startSection();
await deleteSection();
await memorySection();
