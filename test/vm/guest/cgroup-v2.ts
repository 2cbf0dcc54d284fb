// Runs INSIDE the test VM (pure cgroup v2), started by test/e2e/vm-containerd.test.ts: `node --test` on its
// compiled form build/test/vm/guest/cgroup-v2.js (not a *.test.js, so the host's run never picks it up).
// A private containerd (1.6: the guest's Debian package; 1.7/2.1: the checkout's .cache/containerd, shared),
// picked by SHIM_TEST_CONTAINERD, one container with each shim, and the shim's Stats answered with io.containerd.cgroups.v2.Metrics whose figures match the container's cgroup files.
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

const pureV2 = existsSync('/sys/fs/cgroup/cgroup.controllers');
const short = (rt: Runtime) => (rt === 'io.containerd.ts.v2' ? 'ts' : 'runc');
const MEMORY_LIMIT = 64 * 1024 * 1024;

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

for (const version of selectedVersions()) describe(`containerd ${version} in the test VM: Stats on cgroup v2`, { skip: pureV2 ? false : 'needs a pure cgroup v2 host (the test VM)', timeout: 20 * 60_000 }, () => {
  let cd: Containerd;

  before(async () => {
    cd = await startContainerd({ version, shimDirs: [shimBinDir()], readyTimeoutMs: 120_000 });
    await importImage(cd);
  });
  after(async () => {
    await cd?.stop();
  });

  /** Runs `sleep 600` in a container with a 64 MiB memory limit, gives `body` its id, pid and cgroup dir, removes it. */
  async function withContainer(rt: Runtime, body: (id: string, pid: number, dir: string) => Promise<void>): Promise<void> {
    const id = uniqueId('c');
    await cd.ctr(['run', '-d', '--runtime', rt, '--memory-limit', String(MEMORY_LIMIT), DEFAULT_IMAGE, id, 'sleep', '600'], { timeoutMs: 120_000 });
    try {
      const task = await waitTaskStatus(cd, id, 'RUNNING', 120_000);
      await body(id, task.pid, await cgroupDir(task.pid));
    } finally {
      await cd.ctr(['task', 'kill', '-s', 'SIGKILL', id], { allowFail: true });
      await waitFor(async () => !(await listTasks(cd)).some((t) => t.id === id && t.status === 'RUNNING'), 60_000, `${id} stopped`).catch(() => undefined);
      await cd.ctr(['task', 'rm', '-f', id], { allowFail: true });
      await cd.ctr(['container', 'rm', id], { allowFail: true });
    }
  }

  for (const rt of RUNTIMES) {
    test(`containerd ${version}, ${short(rt)}: Update of memory, cpu and pids shows in the cgroup v2 files and Stats`, async () => {
      await withContainer(rt, async (id, _pid, dir) => {
        const shim = await connectShim(cd, id);
        try {
          const resources = { memory: { limit: 96 * 1024 * 1024 }, cpu: { quota: 50_000, period: 100_000 }, pids: { limit: 50 } };
          await shim.call(
            'Update',
            { id, resources: { typeUrl: 'types.containerd.io/opencontainers/runtime-spec/1/LinuxResources', value: Buffer.from(JSON.stringify(resources)) }, annotations: {} },
            api.UpdateTaskRequest,
            Empty,
            60_000,
          );
          assert.equal(await readNumber(dir, 'memory.max'), BigInt(96 * 1024 * 1024));
          assert.equal((await readFile(`${dir}/cpu.max`, 'utf8')).trim(), '50000 100000');
          assert.equal(await readNumber(dir, 'pids.max'), 50n);
          const res = await shim.call('Stats', { id }, api.StatsRequest, api.StatsResponse, 60_000);
          const m = Metrics.decode(res.stats!.value);
          assert.equal(m.memory?.usageLimit, BigInt(96 * 1024 * 1024));
          assert.equal(m.pids?.limit, 50n);
        } finally {
          shim.close();
        }
      });
    });

    test(`containerd ${version}, ${short(rt)}: pause freezes the cgroup (cgroup.freeze), resume thaws it`, async (t) => {
      await withContainer(rt, async (id, _pid, dir) => {
        const frozen = async () => (await readFile(`${dir}/cgroup.events`, 'utf8')).match(/^frozen (\d)$/m)?.[1];
        assert.equal(await frozen(), '0');
        await pauseTask(cd, id, rt, (msg) => t.diagnostic(msg));
        await waitTaskStatus(cd, id, 'PAUSED', 60_000);
        assert.equal((await readFile(`${dir}/cgroup.freeze`, 'utf8')).trim(), '1');
        await waitFor(async () => (await frozen()) === '1', 60_000, 'cgroup.events: frozen 1');
        await cd.ctr(['task', 'resume', id], { timeoutMs: 60_000 });
        await waitTaskStatus(cd, id, 'RUNNING', 60_000);
        assert.equal((await readFile(`${dir}/cgroup.freeze`, 'utf8')).trim(), '0');
        await waitFor(async () => (await frozen()) === '0', 60_000, 'cgroup.events: frozen 0');
      });
    });

    test(`containerd ${version}, ${short(rt)}: Stats answers v2 Metrics matching the cgroup files`, async () => {
      await withContainer(rt, async (id, _pid, dir) => {
        assert.ok(dir.endsWith(`/${id}`), `the container's own cgroup: ${dir}`);
        const shim = await connectShim(cd, id);
        try {
          const cpuBefore = await statField(dir, 'cpu.stat', 'usage_usec');
          const res = await shim.call('Stats', { id }, api.StatsRequest, api.StatsResponse, 60_000);
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
        } finally {
          shim.close();
        }
      });
    });
  }
});
