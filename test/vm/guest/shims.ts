// Runs INSIDE the test VM (pure cgroup v2, a kernel CRIU works on), started by test/e2e/vm-shims.test.ts:
// `node --test` on build/test/vm/guest/shims.js (not a *.test.js: the host's run never picks it up).
// For each containerd version (SHIM_TEST_CONTAINERD) two private containerds: one with our binary installed as
// containerd-shim-runc-v2 (the drop-in: ctr's runc flags and checkpoint options reach it as they reach the
// reference) and one with the reference. The same cases run on both, with the runtime io.containerd.runc.v2:
// - crun through binary_name (`ctr run --runc-binary crun`): lifecycle, exec, pause/resume, Update, Stats;
// - a real CRIU checkpoint (`ctr container checkpoint --task`, so --leave-running) and a restore into a new
//   container (`ctr container restore --live`): the counter resumes with its memory; /tasks/checkpointed;
// - shim_cgroup (runc Options on `start`'s stdin and on Create, by hand: ctr cannot send it) and the
//   controllers: the daemon lands in that cgroup, which gets no controllers enabled, and the container's
//   cgroup has every root controller, enabled in each ancestor's cgroup.subtree_control.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { chmod, copyFile, mkdir, readFile, rm, rmdir, symlink } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test, type TestContext } from 'node:test';
import * as api from '../../../protocol/gen/containerd/runtime/v2/task/shim.js';
import { Metrics } from '../../../protocol/gen/cgroups/v2/stats/metrics.js';
import { Empty } from '../../../protocol/gen/google/protobuf/empty.js';
import { listTasks, pauseTask, selectedVersions, shimBinaryPath, startContainerd, waitTaskStatus, type Containerd } from '../../harness/containerd.js';
import { watchEventsReady } from '../../harness/events.js';
import { DEFAULT_IMAGE, importImage } from '../../harness/image.js';
import { connectShim } from '../../harness/shim-client.js';
import { exec, isAlive, makeTempDir, readProc, removeDir, repoRoot, signalPid, uniqueId, waitFor } from '../../harness/util.js';
import { FifoReader, connectTask, encodeAny, makeBundle, runShim, runcOptionsAny, shimSocket } from '../../fixtures/shim-by-hand.js';

const pureV2 = existsSync('/sys/fs/cgroup/cgroup.controllers');
const RUNC_V2 = 'io.containerd.runc.v2';
const IMG = DEFAULT_IMAGE;
const TASK_V2 = 'containerd.task.v2.Task';
const TASK_V3 = 'containerd.task.v3.Task';
/** Under TCG everything is 10-15x slower than on the host. */
const SLOW = 120_000;
/** A case that takes longer fails (and the file goes on) rather than waiting for the host's bounds. */
const CASE = { timeout: 8 * 60_000 };
type Side = 'ts' | 'runc';

const words = (s: string) => s.trim().split(/\s+/).filter(Boolean);

async function cgroupOf(pid: number): Promise<string> {
  const line = (await readFile(`/proc/${pid}/cgroup`, 'utf8')).split('\n').find((l) => l.startsWith('0::'));
  assert.ok(line, `no cgroup v2 line in /proc/${pid}/cgroup`);
  return line.slice(3);
}

/**
 * Clean-up, best effort: a step that times out is reported, not thrown, so that it never hides the error of
 * the test it cleans up after (a `finally` that throws replaces it).
 */
async function removeTask(cd: Containerd, id: string, report: (msg: string) => void = () => undefined): Promise<void> {
  const step = (args: string[]) => cd.ctr(args, { allowFail: true, timeoutMs: SLOW }).catch((err: unknown) => report(`clean-up of ${id}: ${(err as Error).message.split('\n')[0]}`));
  await step(['task', 'kill', '-a', '-s', 'SIGKILL', id]);
  await waitFor(async () => !(await listTasks(cd)).some((t) => t.id === id && t.status !== 'STOPPED'), SLOW, `${id} stopped`).catch(() => report(`clean-up of ${id}: still not stopped after SIGKILL`));
  await step(['task', 'rm', '-f', id]);
  await step(['container', 'rm', id]);
}

for (const version of selectedVersions()) describe(`containerd ${version} in the test VM: both shims as io.containerd.runc.v2`, { skip: pureV2 ? false : 'needs a pure cgroup v2 host (the test VM)', timeout: 30 * 60_000 }, () => {
  let dir: string;
  let crun: string;
  const cds = {} as Record<Side, Containerd>;

  before(async () => {
    dir = await makeTempDir('vmshims-');
    const drop = join(dir, 'bin');
    await mkdir(drop);
    crun = join(dir, 'crun-oci11');
    await copyFile(join(repoRoot(), 'test', 'fixtures', 'crun-oci11.sh'), crun);
    await chmod(crun, 0o755);
    await symlink(shimBinaryPath(), join(drop, 'containerd-shim-runc-v2'));
    cds.ts = await startContainerd({ version, shimDirs: [drop], readyTimeoutMs: SLOW });
    cds.runc = await startContainerd({ version, readyTimeoutMs: SLOW });
    await Promise.all([importImage(cds.ts), importImage(cds.runc)]);
  });
  after(async () => {
    await cds.ts?.stop();
    await cds.runc?.stop();
    if (dir) await removeDir(dir);
  });

  for (const side of ['ts', 'runc'] as const) {
    test(`containerd ${version}, ${side}: crun via binary_name: run, exec, pause/resume, Update, Stats, kill`, CASE, async (t) => {
      const cd = cds[side];
      const id = uniqueId('crun');
      const crunRoot = `/run/containerd/runc/${cd.namespace}`;
      // containerd 2.x writes an OCI 1.2 spec, which Debian 12's crun refuses: crun then goes through a wrapper
      // that marks the spec 1.1.0 (test/fixtures/crun-oci11.sh); 1.6's spec (1.0.2-dev) goes to crun itself.
      const binary = version === '1.6' ? 'crun' : crun;
      await cd.ctr(['run', '-d', '--runc-binary', binary, '--memory-limit', String(64 << 20), IMG, id, 'sleep', '600'], { timeoutMs: SLOW });
      try {
        const task = await waitTaskStatus(cd, id, 'RUNNING', SLOW);
        const bundle = join(cd.state, 'io.containerd.runtime.v2.task', cd.namespace, id);
        assert.deepEqual(JSON.parse(await readFile(join(bundle, 'options.json'), 'utf8')), { binary_name: binary });
        if (side === 'ts') assert.ok((await cd.shimProcesses()).some((p) => p.argv.some((a) => a.includes('containerd-shim-ts-v2'))), 'the drop-in is our binary');
        // crun, not runc, holds the container.
        const state = JSON.parse((await exec('crun', ['--root', crunRoot, 'state', id])).stdout) as { pid: number; status: string };
        assert.equal(state.pid, task.pid);
        assert.equal(state.status, 'running');
        assert.notEqual((await exec('runc', ['--root', crunRoot, 'state', id], { allowFail: true })).code, 0, 'runc does not know it');
        const dir = `/sys/fs/cgroup${await cgroupOf(task.pid)}`;
        assert.equal((await readFile(`${dir}/memory.max`, 'utf8')).trim(), String(64 << 20));

        const ex = await cd.ctr(['task', 'exec', '--exec-id', 'e1', id, 'sh', '-c', 'echo exec-out-$((6*7)); exit 3'], { allowFail: true, timeoutMs: SLOW });
        assert.equal(ex.code, 3, ex.stderr);
        assert.match(ex.stdout, /exec-out-42/);

        await pauseTask(cd, id, side === 'ts' ? 'io.containerd.ts.v2' : RUNC_V2, (m) => t.diagnostic(m));
        await waitTaskStatus(cd, id, 'PAUSED', SLOW);
        await waitFor(async () => /^frozen 1$/m.test(await readFile(`${dir}/cgroup.events`, 'utf8')), SLOW, 'cgroup.events: frozen 1');
        assert.equal(JSON.parse((await exec('crun', ['--root', crunRoot, 'state', id])).stdout).status, 'paused');
        await cd.ctr(['task', 'resume', id], { timeoutMs: SLOW });
        await waitTaskStatus(cd, id, 'RUNNING', SLOW);
        await waitFor(async () => /^frozen 0$/m.test(await readFile(`${dir}/cgroup.events`, 'utf8')), SLOW, 'cgroup.events: frozen 0');

        // Update as containerd sends it (ctr has no command for it): LinuxResources JSON, applied by crun update.
        const shim = await connectShim(cd, id);
        try {
          const resources = { memory: { limit: 96 << 20 }, cpu: { quota: 50_000, period: 100_000 }, pids: { limit: 50 } };
          const any = { typeUrl: 'types.containerd.io/opencontainers/runtime-spec/1/LinuxResources', value: Buffer.from(JSON.stringify(resources)) };
          await shim.call('Update', { id, resources: any, annotations: {} }, api.UpdateTaskRequest, Empty, SLOW);
          assert.equal((await readFile(`${dir}/memory.max`, 'utf8')).trim(), String(96 << 20));
          assert.equal((await readFile(`${dir}/cpu.max`, 'utf8')).trim(), '50000 100000');
          assert.equal((await readFile(`${dir}/pids.max`, 'utf8')).trim(), '50');
          const res = await shim.call('Stats', { id }, api.StatsRequest, api.StatsResponse, SLOW);
          assert.equal(res.stats?.typeUrl, 'io.containerd.cgroups.v2.Metrics');
          const m = Metrics.decode(res.stats.value);
          assert.equal(m.memory?.usageLimit, BigInt(96 << 20));
          assert.equal(m.pids?.limit, 50n);
          assert.equal(m.pids?.current, 1n, 'sleep alone in the container');
          assert.ok((m.cpu?.usageUsec ?? 0n) > 0n);
        } finally {
          shim.close();
        }

        await cd.ctr(['task', 'kill', '-s', 'SIGKILL', id], { timeoutMs: SLOW });
        const stopped = await waitTaskStatus(cd, id, 'STOPPED', SLOW);
        assert.equal(stopped.status, 'STOPPED');
        await cd.ctr(['task', 'rm', id], { timeoutMs: SLOW });
        assert.notEqual((await exec('crun', ['--root', crunRoot, 'state', id], { allowFail: true })).code, 0, 'crun deleted it');
      } finally {
        await removeTask(cd, id);
      }
    });

    test(`containerd ${version}, ${side}: real checkpoint (--leave-running, /tasks/checkpointed), restore into a new container with its memory`, CASE, async (t) => {
      const cd = cds[side];
      const id = uniqueId('ck');
      const restored = `${id}-r`;
      const ref = `localhost/shimtest/checkpoint:${id}`;
      // The counter and a token read once at start live in the shell's memory: a restored process goes on with
      // both, a fresh one would draw a new token and count from 1.
      const script = 'read k </proc/sys/kernel/random/uuid; i=0; while true; do i=$((i+1)); echo "$k $i" >/tmp/count; sleep 0.1; done';
      const counter = async (pid: number) => {
        const [k, n] = words(await readFile(`/proc/${pid}/root/tmp/count`, 'utf8').catch(() => ''));
        return { k, n: Number(n ?? 0) };
      };
      const events = await watchEventsReady(cd);
      await cd.ctr(['run', '-d', IMG, id, 'sh', '-c', script], { timeoutMs: SLOW });
      try {
        const pid = (await waitTaskStatus(cd, id, 'RUNNING', SLOW)).pid;
        await waitFor(async () => (await counter(pid)).n > 10, SLOW, 'counter running');
        const before = await counter(pid);
        const r = await cd.ctr(['container', 'checkpoint', '--task', id, ref], { allowFail: true, timeoutMs: 5 * 60_000 });
        assert.equal(r.code, 0, r.stderr);
        // Left running: the same process, still counting.
        const still = await waitTaskStatus(cd, id, 'RUNNING', SLOW);
        assert.equal(still.pid, pid);
        const mark = (await counter(pid)).n;
        await waitFor(async () => (await counter(pid)).n > mark, SLOW, 'the checkpointed task counts on');
        // Ours publishes /tasks/checkpointed (runtime-v2.md: SHOULD); the reference's service has no such event.
        if (side === 'ts') await waitFor(() => events.lines().some((l) => l.includes('/tasks/checkpointed') && l.includes(id)), SLOW, '/tasks/checkpointed');
        else t.diagnostic(`reference ${version}: /tasks/checkpointed ${events.lines().some((l) => l.includes('/tasks/checkpointed')) ? 'seen' : 'not published'}`);
        assert.match((await cd.ctr(['image', 'ls', '-q'])).stdout, new RegExp(`^${ref.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`, 'm'));
        await removeTask(cd, id);

        const rr = await cd.ctr(['container', 'restore', '--live', restored, ref], { allowFail: true, timeoutMs: 5 * 60_000 });
        assert.equal(rr.code, 0, rr.stderr);
        const task = await waitTaskStatus(cd, restored, 'RUNNING', SLOW);
        const resumed = await waitFor(async () => {
          const c = await counter(task.pid);
          return c.n > 0 ? c : undefined;
        }, SLOW, 'the restored counter writes');
        t.diagnostic(`${side}: counted to ${before.n} before the checkpoint; restored and at ${resumed.n}`);
        assert.equal(resumed.k, before.k, 'the token from the checkpointed memory');
        assert.ok(resumed.n > before.n, `counting on from the checkpoint: ${resumed.n} > ${before.n}`);
        if (side === 'ts') assert.ok((await cd.shimProcesses()).some((p) => p.argv.some((a) => a.includes('containerd-shim-ts-v2'))), 'our binary serves the restored task');
      } finally {
        events.stop();
        await removeTask(cd, id, (m) => t.diagnostic(m));
        await removeTask(cd, restored, (m) => t.diagnostic(m));
        await cd.ctr(['image', 'rm', ref], { allowFail: true });
      }
    });

    test(`containerd ${version}, ${side}: shim_cgroup: the daemon joins it; the container's cgroup gets every root controller`, CASE, async (t) => {
      const cd = cds[side];
      const binary = side === 'ts' ? shimBinaryPath() : cd.binaries.runcShim;
      const tmp = await makeTempDir('vmcg-');
      const ns = uniqueId('vmcg');
      const id = uniqueId('cg');
      const tag = id.slice(3);
      const shimCgroup = `/vmshim-${tag}`;
      const containerCgroup = `/vmctr-${tag}/nested/${id}`;
      // As containerd starts it (its address, its ttrpc address for events), under a namespace of its own.
      const address = cd.address;
      const socket = shimSocket(address, ns, id);
      let daemon: number | undefined;
      await mkdir(join('/sys/fs/cgroup', shimCgroup));
      const log = { reader: undefined as FifoReader | undefined };
      const t0 = Date.now();
      const phases: string[] = [];
      const phase = (what: string) => phases.push(`${what} ${Date.now() - t0} ms`);
      try {
        const bundle = await makeBundle(join(tmp, ns), id, { args: ['sleep', '600'], cgroupsPath: containerCgroup });
        log.reader = new FifoReader(join(bundle, 'log'));
        const options = runcOptionsAny({ shimCgroup });
        // As containerd runs it: the runtime options on stdin.
        const r = await runShim(['-namespace', ns, '-address', address, '-publish-binary', cd.binaries.containerd, '-id', id, 'start'], {
          cwd: bundle,
          binary,
          input: encodeAny(options),
          env: { ...process.env, TTRPC_ADDRESS: cd.ttrpcAddress },
          timeoutMs: SLOW,
        });
        assert.equal(r.code, 0, r.stderr);
        phase('start');
        const conn = await connectTask(socket, ns);
        try {
          // containerd 2.x's reference serves only the v3 Task service (Connect tells: Unimplemented on v2).
          const service = await conn.call('Connect', { id }, api.ConnectRequest, api.ConnectResponse).then(
            () => TASK_V2,
            (err: { grpcCode?: number }) => {
              if (err.grpcCode !== 12) throw err;
              return TASK_V3;
            },
          );
          await conn.call('Create', api.CreateTaskRequest.fromPartial({ id, bundle, options }), api.CreateTaskRequest, api.CreateTaskResponse, service);
          const pid = (await conn.call('Start', { id, execId: '' }, api.StartRequest, api.StartResponse, service)).pid;
          phase('create+start');
          // The container's init is the daemon's child (the shim reaps it as a subreaper).
          const ppid = (await readProc(pid))?.ppid;
          assert.ok(ppid && ppid > 1, `parent of ${pid}: ${ppid}`);
          daemon = ppid;
          assert.equal(await cgroupOf(daemon), shimCgroup, 'the daemon is in shim_cgroup');
          assert.equal(await cgroupOf(pid), containerCgroup);
          const procs = words(await readFile(join('/sys/fs/cgroup', shimCgroup, 'cgroup.procs'), 'utf8'));
          assert.ok(procs.includes(String(daemon)), `daemon ${daemon} in ${procs.join(' ')}`);
          assert.equal((await readFile(join('/sys/fs/cgroup', shimCgroup, 'cgroup.subtree_control'), 'utf8')).trim(), '', 'no controllers enabled below the shim cgroup');
          const root = words(await readFile('/sys/fs/cgroup/cgroup.controllers', 'utf8')).sort();
          assert.deepEqual(words(await readFile(join('/sys/fs/cgroup', containerCgroup, 'cgroup.controllers'), 'utf8')).sort(), root);
          for (const ancestor of ['', `/vmctr-${tag}`, `/vmctr-${tag}/nested`]) {
            const enabled = words(await readFile(`/sys/fs/cgroup${ancestor}/cgroup.subtree_control`, 'utf8'));
            for (const c of root) assert.ok(enabled.includes(c), `${c} enabled in ${ancestor || '/'}/cgroup.subtree_control: ${enabled.join(' ')}`);
          }
          t.diagnostic(`${side}: daemon ${daemon} in ${shimCgroup} (procs: ${procs.join(' ')}); root controllers ${root.join(' ')}`);
          await conn.call('Kill', { id, execId: '', signal: 9, all: false }, api.KillRequest, Empty, service);
          await conn.call('Wait', { id, execId: '' }, api.WaitRequest, api.WaitResponse, service);
          await conn.call('Delete', { id, execId: '' }, api.DeleteRequest, api.DeleteResponse, service);
          await conn.call('Shutdown', { id, now: true }, api.ShutdownRequest, Empty, service).catch(() => undefined);
          phase('kill+wait+delete+shutdown');
          await waitFor(async () => !(await isAlive(ppid)), SLOW, 'the daemon exits after Shutdown');
          phase('daemon gone');
        } finally {
          conn.close();
        }
      } finally {
        log.reader?.close();
        // Only what this case made (containerd's own shims share the address).
        if (daemon !== undefined && (await isAlive(daemon))) signalPid(daemon, 'SIGKILL');
        const runcRoot = `/run/containerd/runc/${ns}`;
        await exec('runc', ['--root', runcRoot, 'delete', '--force', id], { allowFail: true, timeoutMs: SLOW });
        await rm(runcRoot, { recursive: true, force: true });
        await rm(socket, { force: true });
        await removeDir(tmp);
        for (const d of [`/vmctr-${tag}/nested/${id}`, `/vmctr-${tag}/nested`, `/vmctr-${tag}`, shimCgroup]) {
          await waitFor(() => rmdir(join('/sys/fs/cgroup', d)).then(() => true, (e: NodeJS.ErrnoException) => (e.code === 'ENOENT' ? true : undefined)), 30_000, `rmdir ${d}`).catch(() => undefined);
        }
        phase('cleanup');
        t.diagnostic(`${side}: ${phases.join(', ')}`);
      }
    });
  }
});
