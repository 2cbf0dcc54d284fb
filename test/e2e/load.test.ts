/**
 * Load: many containers started, exec'ed into and removed concurrently through containerd, one shim per
 * container and all in one grouped shim (annotation io.containerd.ts.v2.group): every step succeeds, no
 * zombie children, fds back to where they were, every shim gone at the end. Then exec cycles
 * (Exec/Start/Wait/Delete over ttrpc) against one container: shim memory and fds stable (numbers reported;
 * the reference is measured the same way for comparison).
 * CI size: 30 containers, 200 exec cycles, on the first selected containerd version (1.6 by default).
 * SHIM_TEST_FULL=1: 100 containers, 1000 exec cycles, on every selected version.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import * as api from '../../protocol/gen/containerd/runtime/v2/task/shim.js';
import { Empty } from '../../protocol/gen/google/protobuf/empty.js';
import { listTasks, selectedVersions, shimBinDir, startContainerd, waitTaskStatus, type Containerd, type Runtime } from '../harness/containerd.js';
import { DEFAULT_IMAGE, importImage } from '../harness/image.js';
import { fdCount, uniqueId, waitFor, zombieChildren } from '../harness/util.js';
import { connectShim } from '../harness/shim-client.js';

const FULL = process.env.SHIM_TEST_FULL === '1';
const CONTAINERS = Number(process.env.SHIM_TEST_LOAD_CONTAINERS ?? (FULL ? 100 : 30));
const EXEC_CYCLES = Number(process.env.SHIM_TEST_EXEC_CYCLES ?? (FULL ? 1000 : 200));
const TIMEOUT = { timeout: FULL ? 1_800_000 : 600_000 };
const IMG = DEFAULT_IMAGE;
const OURS: Runtime = 'io.containerd.ts.v2';

interface Mem {
  rssKb: number;
  privateKb: number;
}

async function memOf(pid: number): Promise<Mem> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const rollup = await readFile(`/proc/${pid}/smaps_rollup`, 'utf8').catch(() => '');
  const kb = (text: string, key: string) => Number(new RegExp(`^${key}:\\s+(\\d+)`, 'm').exec(text)?.[1] ?? -1);
  return { rssKb: kb(status, 'VmRSS'), privateKb: kb(rollup, 'Private_Clean') + kb(rollup, 'Private_Dirty') };
}

/** Runs `fn` over `items` with at most `limit` in flight; collects failures instead of stopping. */
async function pool<T>(items: readonly T[], limit: number, fn: (x: T) => Promise<void>): Promise<string[]> {
  const failures: string[] = [];
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(limit, items.length) }, async () => {
      while (next < items.length) {
        const x = items[next++]!;
        await fn(x).catch((err: Error) => failures.push(`${String(x)}: ${err.message.split('\n').slice(0, 3).join(' | ')}`));
      }
    }),
  );
  return failures;
}

async function shimPidFor(cd: Containerd, id: string): Promise<number> {
  const procs = await cd.shimProcesses();
  const p = procs.find((x) => x.argv.includes(id)) ?? procs.find((x) => x.argv.some((a) => a.endsWith('containerd-shim-ts-v2')));
  assert.ok(p, `shim of ${id}`);
  return p.pid;
}

const versions = FULL ? selectedVersions() : selectedVersions().slice(0, 1);

for (const version of versions) {
  describe(`load on containerd ${version}: ${CONTAINERS} containers, ${EXEC_CYCLES} exec cycles`, () => {
    let cd: Containerd;
    before(async () => {
      cd = await startContainerd({ version, shimDirs: [shimBinDir()] });
      await importImage(cd);
    });
    after(async () => {
      await cd?.stop();
    });

    for (const grouped of [false, true]) {
      test(`${CONTAINERS} containers ${grouped ? 'in one grouped shim' : 'with a shim each'}: run, exec, remove concurrently`, TIMEOUT, async (t) => {
        const group = uniqueId('grp');
        const annotation = grouped ? ['--annotation', `io.containerd.ts.v2.group=${group}`] : [];
        const ids = Array.from({ length: CONTAINERS }, (_, i) => `ld${grouped ? 'g' : 'u'}${i}-${uniqueId('x').slice(2)}`);
        // Grouped: a keeper container holds the daemon so its fds can be compared before and after the load.
        const keeper = uniqueId('keeper');
        let groupShim = 0;
        let fdsBefore = 0;
        const started = Date.now();
        try {
          if (grouped) {
            await cd.ctr(['run', '-d', '--runtime', OURS, ...annotation, IMG, keeper, 'sleep', '600']);
            await waitTaskStatus(cd, keeper, 'RUNNING');
            groupShim = await shimPidFor(cd, keeper);
            fdsBefore = await fdCount(groupShim);
          }
          const runFailures = await pool(ids, CONTAINERS, async (id) => {
            await cd.ctr(['run', '-d', '--runtime', OURS, ...annotation, IMG, id, 'sleep', '600'], { timeoutMs: 300_000 });
          });
          assert.deepEqual(runFailures, [], 'every run succeeds');
          const tasks = await waitFor(async () => {
            const ts = (await listTasks(cd)).filter((x) => ids.includes(x.id) && x.status === 'RUNNING');
            return ts.length === CONTAINERS ? ts : undefined;
          }, 120_000, `${CONTAINERS} RUNNING tasks`);
          assert.equal(new Set(tasks.map((x) => x.pid)).size, CONTAINERS);
          const tRun = Date.now();
          const shims = await cd.shimProcesses();
          if (grouped) assert.equal(shims.length, 1, `one daemon for the group: ${shims.map((s) => s.pid).join(',')}`);
          else assert.equal(shims.length, CONTAINERS, 'one daemon per container');
          const execFailures = await pool(ids, CONTAINERS, async (id) => {
            const r = await cd.ctr(['task', 'exec', '--exec-id', 'e1', id, 'sh', '-c', `echo hi-${id}`], { timeoutMs: 300_000 });
            assert.equal(r.stdout, `hi-${id}\n`);
          });
          assert.deepEqual(execFailures, [], 'every exec succeeds');
          const tExec = Date.now();
          for (const s of shims) assert.deepEqual(await zombieChildren(s.pid), [], `no zombie under shim ${s.pid}`);
          const rmFailures = await pool(ids, CONTAINERS, async (id) => {
            await cd.ctr(['task', 'rm', '-f', id], { timeoutMs: 300_000 });
            await cd.ctr(['container', 'rm', id], { timeoutMs: 300_000 });
          });
          assert.deepEqual(rmFailures, [], 'every removal succeeds');
          const tRm = Date.now();
          assert.deepEqual((await listTasks(cd)).filter((x) => ids.includes(x.id)), []);
          if (grouped) {
            assert.deepEqual(await zombieChildren(groupShim), []);
            const fdsAfter = await waitFor(async () => {
              const n = await fdCount(groupShim);
              return n <= fdsBefore + 2 ? n : undefined;
            }, 30_000, `grouped shim fds back near ${fdsBefore}`);
            const mem = await memOf(groupShim);
            t.diagnostic(`grouped shim ${groupShim}: fds ${fdsBefore} → ${fdsAfter}; RSS ${mem.rssKb} kB, private ${mem.privateKb} kB after ${CONTAINERS} containers`);
          } else {
            await waitFor(async () => (await cd.shimProcesses()).length === 0, 60_000, 'every shim gone');
          }
          t.diagnostic(`run ${((tRun - started) / 1000).toFixed(1)} s, exec ${((tExec - tRun) / 1000).toFixed(1)} s, remove ${((tRm - tExec) / 1000).toFixed(1)} s`);
        } finally {
          await pool([...ids, ...(grouped ? [keeper] : [])], 20, async (id) => {
            await cd.ctr(['task', 'rm', '-f', id], { allowFail: true, timeoutMs: 120_000 });
            await cd.ctr(['container', 'rm', id], { allowFail: true, timeoutMs: 120_000 });
          });
        }
        await waitFor(async () => (await cd.shimProcesses()).length === 0, 60_000, 'no shim left');
      });
    }

    for (const rt of [OURS, 'io.containerd.runc.v2'] as const) {
      test(`${rt === OURS ? 'ts' : 'reference'}: ${EXEC_CYCLES} exec cycles (Exec/Start/Wait/Delete): memory and fds stable, no zombie`, TIMEOUT, async (t) => {
        const id = uniqueId('cyc');
        await cd.ctr(['run', '-d', '--runtime', rt, IMG, id, 'sleep', '600']);
        const shim = await connectShim(cd, id);
        try {
          await waitTaskStatus(cd, id, 'RUNNING');
          const shimPid = (await shim.call('Connect', { id }, api.ConnectRequest, api.ConnectResponse)).shimPid;
          const spec = { typeUrl: 'types.containerd.io/opencontainers/runtime-spec/1/Process', value: Buffer.from(JSON.stringify({ args: ['true'], cwd: '/', env: ['PATH=/bin'], user: { uid: 0, gid: 0 } })) };
          let n = 0;
          const cycle = async (): Promise<void> => {
            const execId = `x${n++}`;
            await shim.call('Exec', api.ExecProcessRequest.fromPartial({ id, execId, spec }), api.ExecProcessRequest, Empty);
            await shim.call('Start', { id, execId }, api.StartRequest, api.StartResponse);
            const w = await shim.call('Wait', { id, execId }, api.WaitRequest, api.WaitResponse);
            assert.equal(w.exitStatus, 0);
            await shim.call('Delete', { id, execId }, api.DeleteRequest, api.DeleteResponse);
          };
          const run = async (count: number) => {
            const failures = await pool(Array.from({ length: count }, (_, i) => i), 4, cycle);
            assert.deepEqual(failures, []);
          };
          await run(50); // warm-up: JIT, pools, lazily loaded code
          const fds0 = await fdCount(shimPid);
          const mem0 = await memOf(shimPid);
          const series: number[] = [mem0.rssKb];
          const step = Math.max(1, Math.floor(EXEC_CYCLES / 5));
          for (let done = 0; done < EXEC_CYCLES; done += step) {
            await run(Math.min(step, EXEC_CYCLES - done));
            series.push((await memOf(shimPid)).rssKb);
          }
          const mem1 = await memOf(shimPid);
          const fds1 = await waitFor(async () => {
            const f = await fdCount(shimPid);
            return f <= fds0 + 2 ? f : undefined;
          }, 30_000, `fds back near ${fds0}`);
          assert.deepEqual(await zombieChildren(shimPid), [], 'no zombie children');
          t.diagnostic(`${rt}: ${EXEC_CYCLES} cycles after warm-up; RSS kB ${series.join(' → ')}; private kB ${mem0.privateKb} → ${mem1.privateKb}; fds ${fds0} → ${fds1}`);
          assert.ok(mem1.rssKb - mem0.rssKb < 64 * 1024, `RSS grew by ${mem1.rssKb - mem0.rssKb} kB`);
        } finally {
          shim.close();
          await cd.ctr(['task', 'rm', '-f', id], { allowFail: true });
          await cd.ctr(['container', 'rm', id], { allowFail: true });
        }
      });
    }
  });
}
