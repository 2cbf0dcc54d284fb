/**
 * Task lifecycle through real containerd + ctr + runc, each case run against the reference shim
 * (io.containerd.runc.v2) and ours (io.containerd.ts.v2), on every selected containerd version.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import {
  pauseTask,
  RUNTIMES,
  listTasks,
  selectedVersions,
  shimBinDir,
  startContainerd,
  waitTaskStatus,
  type Containerd,
  type Runtime,
} from '../harness/containerd.js';
import { DEFAULT_IMAGE, importImage } from '../harness/image.js';
import { isAlive, sleep, uniqueId, waitFor } from '../harness/util.js';
import { connectShim } from '../harness/shim-client.js';
import { watchEventsReady } from '../harness/events.js';
import * as api from '../../protocol/gen/containerd/runtime/v2/task/shim.js';
import { Empty } from '../../protocol/gen/google/protobuf/empty.js';

const IMG = DEFAULT_IMAGE;
const OURS: Runtime = 'io.containerd.ts.v2';
const short = (rt: Runtime) => (rt === OURS ? 'ts' : 'runc');

async function cleanup(cd: Containerd, id: string): Promise<void> {
  await cd.ctr(['task', 'kill', '-s', 'SIGKILL', id], { allowFail: true });
  await waitFor(async () => !(await listTasks(cd)).some((t) => t.id === id && t.status === 'RUNNING'), 10_000, `${id} stopped`).catch(() => undefined);
  await cd.ctr(['task', 'rm', '-f', id], { allowFail: true });
  await cd.ctr(['container', 'rm', id], { allowFail: true });
}

async function bundleCgroupFile(pid: number, controller: string, file: string): Promise<string> {
  const lines = (await readFile(`/proc/${pid}/cgroup`, 'utf8')).split('\n');
  const line = lines.find((l) => l.split(':')[1]?.split(',').includes(controller));
  assert.ok(line, `no ${controller} cgroup for ${pid}`);
  const path = line.split(':').slice(2).join(':');
  return readFile(join('/sys/fs/cgroup', controller, path, file), 'utf8');
}

for (const version of selectedVersions()) {
  describe(`task lifecycle on containerd ${version}`, () => {
    let cd: Containerd;
    before(async () => {
      cd = await startContainerd({ version, shimDirs: [shimBinDir()] });
      await importImage(cd);
    });
    after(async () => {
      await cd?.stop();
    });

    for (const rt of RUNTIMES) {
      test(`${short(rt)}: run --rm returns the exit status (0, 3, 137)`, async (t) => {
        const ok = await cd.ctr(['run', '--rm', '--runtime', rt, IMG, uniqueId('ok'), 'sh', '-c', 'echo out; echo err >&2'], { allowFail: true });
        assert.equal(ok.code, 0, ok.stderr);
        if (rt !== OURS && version !== '1.6' && (ok.stdout !== 'out\n' || ok.stderr !== 'err\n')) {
          // The reference publishes the exit before the output is copied, and ctr >= 1.7 closes its FIFOs on the
          // exit: under load its tail is lost (ours waits for the output to be read, README "Exits wait...").
          t.diagnostic(`reference: output lost at the exit (stdout ${JSON.stringify(ok.stdout)}, stderr ${JSON.stringify(ok.stderr)})`);
        } else {
          assert.equal(ok.stdout, 'out\n');
          assert.equal(ok.stderr, 'err\n');
        }
        const three = await cd.ctr(['run', '--rm', '--runtime', rt, IMG, uniqueId('e3'), 'sh', '-c', 'exit 3'], { allowFail: true });
        assert.equal(three.code, 3);
        // PID 1 of a namespace ignores signals it has no handler for, even SIGKILL from inside:
        // kill it from outside and read the status containerd recorded.
        const id = uniqueId('k');
        await cd.ctr(['run', '-d', '--runtime', rt, IMG, id, 'sleep', '600']);
        await cd.ctr(['task', 'kill', '-s', 'SIGKILL', id]);
        await waitTaskStatus(cd, id, 'STOPPED');
        const rm = await cd.ctr(['task', 'rm', id]);
        assert.match(rm.stdout + rm.stderr, /137|^$/);
        await cd.ctr(['container', 'rm', id]);
      });

      test(`${short(rt)}: detached run, task ls, pids, kill --all, rm; the shim exits after the last delete`, async () => {
        const id = uniqueId('d');
        await cd.ctr(['run', '-d', '--runtime', rt, IMG, id, 'sh', '-c', 'sleep 600 & sleep 600 & wait']);
        try {
          const t = await waitTaskStatus(cd, id, 'RUNNING');
          assert.ok(t.pid > 0);
          const ps = await waitFor(async () => {
            const out = (await cd.ctr(['task', 'ps', id])).stdout;
            const pids = out.split('\n').slice(1).map((l) => parseInt(l.trim().split(/\s+/)[0] ?? '', 10)).filter((n) => n > 0);
            return pids.length === 3 ? pids : undefined;
          }, 10_000, '3 processes in ps');
          assert.ok(ps.includes(t.pid));
          const shims = await cd.shimProcesses();
          assert.ok(shims.length >= 1);
          await cd.ctr(['task', 'kill', '-a', '-s', 'SIGKILL', id]);
          await waitTaskStatus(cd, id, 'STOPPED');
          for (const pid of ps) await waitFor(async () => !(await isAlive(pid)), 10_000, `pid ${pid} gone`);
          await cd.ctr(['task', 'rm', id]);
          await cd.ctr(['container', 'rm', id]);
          await waitFor(async () => (await cd.shimProcesses()).length === 0, 15_000, 'no shim left');
          assert.deepEqual(await listTasks(cd), []);
        } finally {
          await cleanup(cd, id);
        }
      });

      test(`${short(rt)}: pause freezes every process, resume thaws them`, async (ctx) => {
        const id = uniqueId('p');
        await cd.ctr(['run', '-d', '--runtime', rt, IMG, id, 'sh', '-c', 'i=0; while true; do i=$((i+1)); echo $i > /tmp/count; sleep 0.05; done']);
        try {
          const t = await waitTaskStatus(cd, id, 'RUNNING');
          const countFile = join(cd.state, 'io.containerd.runtime.v2.task', cd.namespace, id, 'rootfs', 'tmp', 'count');
          const read = async () => parseInt(await readFile(countFile, 'utf8').catch(() => '0'), 10) || 0;
          await waitFor(async () => (await read()) > 0, 10_000, 'counter running');
          await pauseTask(cd, id, rt, (m) => ctx.diagnostic(m));
          await waitTaskStatus(cd, id, 'PAUSED');
          assert.equal((await bundleCgroupFile(t.pid, 'freezer', 'freezer.state')).trim(), 'FROZEN');
          const frozen = await read();
          await sleep(500);
          assert.equal(await read(), frozen, 'the counter moved while paused');
          await cd.ctr(['task', 'resume', id]);
          await waitTaskStatus(cd, id, 'RUNNING');
          await waitFor(async () => (await read()) > frozen, 10_000, 'counter moving again');
        } finally {
          await cleanup(cd, id);
        }
      });

      test(`${short(rt)}: metrics and Update of the memory limit`, async () => {
        const id = uniqueId('m');
        await cd.ctr(['run', '-d', '--runtime', rt, IMG, id, 'sleep', '600']);
        try {
          const t = await waitTaskStatus(cd, id, 'RUNNING');
          // Right after Start, runc init's threads can still be counted in the pids cgroup (they exec `sleep`
          // a moment later): wait until the count is the container's one process.
          const m = await waitFor(async () => {
            const r = await cd.ctr(['task', 'metrics', id], { allowFail: true });
            return r.code === 0 && /pids\.current\s+1\b/.test(r.stdout) ? r : undefined;
          }, 10_000, 'metrics with pids.current 1');
          assert.match(m.stdout, /memory\.usage_in_bytes|memory/);
          assert.match(m.stdout, /pids\.current\s+1/);
          const shim = await connectShim(cd, id);
          try {
            const limit = 96 * 1024 * 1024;
            await shim.call(
              'Update',
              { id, resources: { typeUrl: 'types.containerd.io/opencontainers/runtime-spec/1/LinuxResources', value: Buffer.from(JSON.stringify({ memory: { limit } })) }, annotations: {} },
              api.UpdateTaskRequest,
              Empty,
            );
            assert.equal(parseInt(await bundleCgroupFile(t.pid, 'memory', 'memory.limit_in_bytes'), 10), limit);
          } finally {
            shim.close();
          }
        } finally {
          await cleanup(cd, id);
        }
      });

      test(`${short(rt)}: wrong-state calls fail with the reference's messages (and proper codes for ours)`, async () => {
        const id = uniqueId('w');
        await cd.ctr(['run', '-d', '--runtime', rt, IMG, id, 'sleep', '600']);
        const shim = await connectShim(cd, id);
        try {
          await waitTaskStatus(cd, id, 'RUNNING');
          const ours = rt === 'io.containerd.ts.v2';
          const startAgain = await shim.fails('Start', { id, execId: '' }, api.StartRequest);
          assert.match(startAgain.message, /cannot start a running process/);
          assert.equal(startAgain.grpcCode, ours ? 9 : 2);
          const del = await shim.fails('Delete', { id, execId: '' }, api.DeleteRequest);
          assert.match(del.message, /cannot delete a running process/);
          assert.equal(del.grpcCode, ours ? 9 : 2);
          const resume = await shim.fails('Resume', { id }, api.ResumeRequest);
          assert.match(resume.message, /cannot resume a running process/);
          const unknown = await shim.fails('State', { id: 'nope', execId: '' }, api.StateRequest);
          assert.equal(unknown.grpcCode, 5);
          assert.equal(unknown.message, 'container not created');
          const noExec = await shim.fails('State', { id, execId: 'nope' }, api.StateRequest);
          assert.equal(noExec.grpcCode, 5);
          await cd.ctr(['task', 'kill', '-s', 'SIGKILL', id]);
          await waitTaskStatus(cd, id, 'STOPPED');
          const killStopped = await shim.fails('Kill', { id, execId: '', signal: 9, all: false }, api.KillRequest);
          assert.equal(killStopped.grpcCode, 5, killStopped.message);
          await shim.call('Kill', { id, execId: '', signal: 9, all: true }, api.KillRequest, Empty);
          const st = await shim.call('State', { id, execId: '' }, api.StateRequest, api.StateResponse);
          assert.equal(st.exitStatus, 137);
          assert.equal(st.status, 3); // STOPPED
        } finally {
          shim.close();
          await cleanup(cd, id);
        }
      });

      test(`${short(rt)}: ctr events show create, start, exit, delete in order`, async (t) => {
        const id = uniqueId('ev');
        const events = await watchEventsReady(cd);
        try {
          const r = await cd.ctr(['run', '--rm', '--runtime', rt, IMG, id, 'true'], { allowFail: true });
          assert.equal(r.code, 0, r.stderr);
          const mine = () => events.lines().filter((l) => l.includes(id)).map((l) => l.match(/\/tasks\/[a-z-]+/)?.[0]).filter(Boolean);
          const seen = await waitFor(() => (mine().includes('/tasks/delete') ? mine() : undefined), 30_000, `task events of ${id}`).catch(() => undefined);
          if (!seen && rt !== OURS) {
            // Seen twice on containerd 2.1 under load with the reference shim: reported, asserted for ours only.
            t.diagnostic(`reference: ctr events showed only ${JSON.stringify(mine())} for ${id} within 30 s`);
            return;
          }
          assert.deepEqual(seen ?? mine(), ['/tasks/create', '/tasks/start', '/tasks/exit', '/tasks/delete']);
        } finally {
          events.stop();
        }
      });

      test(`${short(rt)}: 20 containers started in parallel`, async () => {
        const ids = Array.from({ length: 20 }, () => uniqueId('par'));
        try {
          const results = await Promise.all(ids.map((id) => cd.ctr(['run', '-d', '--runtime', rt, IMG, id, 'sleep', '600'], { allowFail: true, timeoutMs: 120_000 })));
          results.forEach((r, i) => assert.equal(r.code, 0, `${ids[i]}: ${r.stderr}`));
          const running = (await listTasks(cd)).filter((t) => ids.includes(t.id) && t.status === 'RUNNING');
          assert.equal(running.length, 20);
        } finally {
          await Promise.all(ids.map((id) => cleanup(cd, id)));
        }
        await waitFor(async () => (await cd.shimProcesses()).length === 0, 30_000, 'no shim left');
      });

      test(`${short(rt)}: grouped containers share one daemon`, async () => {
        const group = uniqueId('g');
        const ids = [uniqueId('g1'), uniqueId('g2')];
        try {
          for (const id of ids) {
            await cd.ctr(['run', '-d', '--runtime', rt, '--annotation', `io.containerd.runc.v2.group=${group}`, IMG, id, 'sleep', '600']);
          }
          for (const id of ids) await waitTaskStatus(cd, id, 'RUNNING');
          assert.equal((await cd.shimProcesses()).length, 1);
          // Deleting the first keeps the daemon for the second.
          await cleanup(cd, ids[0]!);
          await sleep(300);
          assert.equal((await cd.shimProcesses()).length, 1);
          assert.equal((await listTasks(cd)).find((t) => t.id === ids[1])?.status, 'RUNNING');
        } finally {
          for (const id of ids) await cleanup(cd, id);
        }
        await waitFor(async () => (await cd.shimProcesses()).length === 0, 15_000, 'no shim left');
      });
    }
  });
}
