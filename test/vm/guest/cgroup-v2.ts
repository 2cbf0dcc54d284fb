// Runs INSIDE the test VM (pure cgroup v2), started by test/e2e/vm-containerd.test.ts: `node --test` on its
// compiled form build/test/vm/guest/cgroup-v2.js (not a *.test.js, so the host's run never picks it up).
// Per containerd version (SHIM_TEST_CONTAINERD; 1.6: the guest's Debian package, 2.1: the checkout's
// .cache/containerd, shared) ONE private containerd and image import, on which each shim (io.containerd.ts.v2,
// ours; io.containerd.runc.v2, the reference) runs: a container's lifecycle on cgroup v2 (Stats answered with
// io.containerd.cgroups.v2.Metrics matching the cgroup files, Update of memory/cpu/pids landing in them,
// pause/resume through cgroup.freeze, kill, the cgroup removed on delete) and an exec with a tty.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { after, before, describe, test } from 'node:test';
import * as api from '../../../protocol/gen/containerd/runtime/v2/task/shim.js';
import { Metrics } from '../../../protocol/gen/cgroups/v2/stats/metrics.js';
import { Empty } from '../../../protocol/gen/google/protobuf/empty.js';
import { RUNTIMES, listTasks, pauseTask, selectedVersions, shimBinDir, startContainerd, waitTaskStatus, type Containerd, type Runtime } from '../../harness/containerd.js';
import { DEFAULT_IMAGE, importImage } from '../../harness/image.js';
import { connectShim } from '../../harness/shim-client.js';
import { uniqueId, waitFor } from '../../harness/util.js';
import { ptyCtr } from '../../harness/pty-terminal.js';
import { PTY_SLOW, typeUntil } from './pty-ctr.js';

const pureV2 = existsSync('/sys/fs/cgroup/cgroup.controllers');
const short = (rt: Runtime) => (rt === 'io.containerd.ts.v2' ? 'ts' : 'runc');
const MEMORY_LIMIT = 64 * 1024 * 1024;
/** Under TCG, beside a busy host, everything is 10-30x slower than on the host. */
const SLOW = 120_000;
/** A case that takes longer fails (and the file goes on) rather than waiting for the host's bounds. */
const CASE = { timeout: 8 * 60_000 };

/** The container's cgroup directory from /proc/<pid>/cgroup (`0::/path` on cgroup v2). */
async function cgroupDir(pid: number): Promise<string> {
  const line = (await readFile(`/proc/${pid}/cgroup`, 'utf8')).split('\n').find((l) => l.startsWith('0::'));
  assert.ok(line, `no cgroup v2 line in /proc/${pid}/cgroup`);
  return `/sys/fs/cgroup${line.slice(3)}`;
}

/** A single-value cgroup file; "max" is 2^64-1 in Metrics, as containerd's cgroups package reads it. */
const readNumber = async (dir: string, file: string) => {
  const text = (await readFile(`${dir}/${file}`, 'utf8')).trim();
  return text === 'max' ? 2n ** 64n - 1n : BigInt(text);
};
const statField = async (dir: string, file: string, key: string) => {
  const line = (await readFile(`${dir}/${file}`, 'utf8')).split('\n').find((l) => l.startsWith(`${key} `));
  assert.ok(line, `${key} in ${file}`);
  return BigInt(line.split(' ')[1]!);
};

for (const version of selectedVersions()) describe(`containerd ${version} in the test VM: both shims on cgroup v2`, { skip: pureV2 ? false : 'needs a pure cgroup v2 host (the test VM)', timeout: 30 * 60_000 }, () => {
  let cd: Containerd;

  before(async () => {
    cd = await startContainerd({ version, shimDirs: [shimBinDir()], readyTimeoutMs: SLOW });
    await importImage(cd);
  });
  after(async () => {
    await cd?.stop();
  });

  async function removeTask(id: string): Promise<void> {
    await cd.ctr(['task', 'kill', '-s', 'SIGKILL', id], { allowFail: true, timeoutMs: SLOW });
    await waitFor(async () => !(await listTasks(cd)).some((t) => t.id === id && t.status === 'RUNNING'), SLOW, `${id} stopped`).catch(() => undefined);
    await cd.ctr(['task', 'rm', '-f', id], { allowFail: true, timeoutMs: SLOW });
    await cd.ctr(['container', 'rm', id], { allowFail: true, timeoutMs: SLOW });
  }

  for (const rt of RUNTIMES) {
    test(`containerd ${version}, ${short(rt)}: lifecycle on cgroup v2: Stats (v2 Metrics = the cgroup files), Update of memory, cpu, pids, pause/resume (cgroup.freeze), kill, delete`, CASE, async (t) => {
      const id = uniqueId('c');
      await cd.ctr(['run', '-d', '--runtime', rt, '--memory-limit', String(MEMORY_LIMIT), DEFAULT_IMAGE, id, 'sleep', '600'], { timeoutMs: SLOW });
      try {
        const task = await waitTaskStatus(cd, id, 'RUNNING', SLOW);
        const dir = await cgroupDir(task.pid);
        assert.ok(dir.endsWith(`/${id}`), `the container's own cgroup: ${dir}`);
        const shim = await connectShim(cd, id);
        try {
          // Stats: v2 Metrics whose figures are the cgroup files'.
          const cpuBefore = await statField(dir, 'cpu.stat', 'usage_usec');
          const res = await shim.call('Stats', { id }, api.StatsRequest, api.StatsResponse, SLOW);
          const cpuAfter = await statField(dir, 'cpu.stat', 'usage_usec');
          assert.ok(res.stats, 'Stats answered no metrics');
          assert.equal(res.stats.typeUrl, 'io.containerd.cgroups.v2.Metrics');
          const m = Metrics.decode(res.stats.value);
          assert.ok(m.memory && m.pids && m.cpu, 'memory, pids and cpu in the metrics');
          assert.equal(m.memory.usageLimit, BigInt(MEMORY_LIMIT));
          assert.equal(m.memory.usageLimit, await readNumber(dir, 'memory.max'));
          assert.ok(m.memory.usage > 0n && m.memory.usage <= m.memory.usageLimit, `memory.usage ${m.memory.usage}`);
          assert.equal(m.pids.current, 1n, 'sleep alone in the container');
          assert.equal(m.pids.current, await readNumber(dir, 'pids.current'));
          assert.equal(m.pids.limit, await readNumber(dir, 'pids.max'));
          assert.ok(m.cpu.usageUsec >= cpuBefore && m.cpu.usageUsec <= cpuAfter, `cpu usage ${m.cpu.usageUsec} within [${cpuBefore}, ${cpuAfter}]`);
          assert.equal(m.memoryEvents?.oomKill ?? 0n, await statField(dir, 'memory.events', 'oom_kill'));

          // Update as containerd sends it: LinuxResources JSON; the limits land in the v2 files and in Stats.
          const resources = { memory: { limit: 96 * 1024 * 1024 }, cpu: { quota: 50_000, period: 100_000 }, pids: { limit: 50 } };
          await shim.call(
            'Update',
            { id, resources: { typeUrl: 'types.containerd.io/opencontainers/runtime-spec/1/LinuxResources', value: Buffer.from(JSON.stringify(resources)) }, annotations: {} },
            api.UpdateTaskRequest,
            Empty,
            SLOW,
          );
          assert.equal(await readNumber(dir, 'memory.max'), BigInt(96 * 1024 * 1024));
          assert.equal((await readFile(`${dir}/cpu.max`, 'utf8')).trim(), '50000 100000');
          assert.equal(await readNumber(dir, 'pids.max'), 50n);
          const updated = Metrics.decode((await shim.call('Stats', { id }, api.StatsRequest, api.StatsResponse, SLOW)).stats!.value);
          assert.equal(updated.memory?.usageLimit, BigInt(96 * 1024 * 1024));
          assert.equal(updated.pids?.limit, 50n);
        } finally {
          shim.close();
        }

        // pause/resume: cgroup.freeze written, cgroup.events follows.
        const frozen = async () => (await readFile(`${dir}/cgroup.events`, 'utf8')).match(/^frozen (\d)$/m)?.[1];
        assert.equal(await frozen(), '0');
        await pauseTask(cd, id, rt, (msg) => t.diagnostic(msg));
        await waitTaskStatus(cd, id, 'PAUSED', SLOW);
        assert.equal((await readFile(`${dir}/cgroup.freeze`, 'utf8')).trim(), '1');
        await waitFor(async () => (await frozen()) === '1', SLOW, 'cgroup.events: frozen 1');
        await cd.ctr(['task', 'resume', id], { timeoutMs: SLOW });
        await waitTaskStatus(cd, id, 'RUNNING', SLOW);
        assert.equal((await readFile(`${dir}/cgroup.freeze`, 'utf8')).trim(), '0');
        await waitFor(async () => (await frozen()) === '0', SLOW, 'cgroup.events: frozen 0');

        // kill and delete: the container's cgroup goes with it.
        await cd.ctr(['task', 'kill', '-s', 'SIGKILL', id], { timeoutMs: SLOW });
        await waitTaskStatus(cd, id, 'STOPPED', SLOW);
        await cd.ctr(['task', 'rm', id], { timeoutMs: SLOW });
        await waitFor(() => !existsSync(dir) || undefined, SLOW, `${dir} removed with the task`);
      } finally {
        await removeTask(id);
      }
    });

    test(`containerd ${version}, ${short(rt)}: ctr task exec -t: a tty of the client's size, resize, exit code`, CASE, async () => {
      const id = uniqueId('etty');
      await cd.ctr(['run', '-d', '--runtime', rt, DEFAULT_IMAGE, id, 'sleep', '600'], { timeoutMs: SLOW });
      const c = ptyCtr(cd, ['task', 'exec', '-t', '--exec-id', 'sh1', id, 'sh', '-c', 'echo READY-$((6*7)); while read c; do eval "$c"; done'], 90, 30);
      try {
        await waitTaskStatus(cd, id, 'RUNNING', SLOW);
        await c.expect(/READY-42\n/, 'exec shell ready', 0, PTY_SLOW);
        await typeUntil(c, '[ -t 0 ] && echo "IS-A-""TTY $(stty size)"', /IS-A-TTY (\d+ \d+)\n/, '30 90');
        c.pty.resize(132, 43);
        await typeUntil(c, 'echo "SIZE-""$(stty size)"', /SIZE-(\d+ \d+)\n/, '43 132');
        c.write('exit 5\r');
        assert.equal(await c.exitCode(PTY_SLOW), 5, c.text().slice(-300));
        assert.equal((await listTasks(cd)).find((x) => x.id === id)?.status, 'RUNNING', 'the container outlives its exec');
      } finally {
        await c.kill();
        await removeTask(id);
      }
    });
  }
});
