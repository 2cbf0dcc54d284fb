/**
 * One Create never stalls calls for other containers of the same shim: a Create that waits for its client
 * to open the stdout FIFO (up to 30 s, as the reference) must not hold up State/Pids of a running neighbour.
 * The reference shim of containerd 1.6.20 holds one service-wide lock across Create; ours has none.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdir, open, readFile, writeFile } from 'node:fs/promises';
import { constants } from 'node:fs';
import { join } from 'node:path';
import { selectedVersions, shimBinDir, startContainerd, waitTaskStatus, type Containerd } from '../harness/containerd.js';
import { DEFAULT_IMAGE, importImage } from '../harness/image.js';
import { makeTempDir, removeDir, uniqueId } from '../harness/util.js';
import { connectShim } from '../harness/shim-client.js';
import * as api from '../../protocol/gen/containerd/runtime/v2/task/shim.js';
import { Empty } from '../../protocol/gen/google/protobuf/empty.js';

const RT = 'io.containerd.ts.v2';

for (const version of selectedVersions()) {
  describe(`concurrency in one shim on containerd ${version}`, () => {
    let cd: Containerd;
    before(async () => {
      cd = await startContainerd({ version, shimDirs: [shimBinDir()] });
      await importImage(cd);
    });
    after(async () => {
      await cd?.stop();
    });

    test('ts: a Create waiting for its FIFO reader does not stall State of another container', async () => {
      const group = uniqueId('grp');
      const a = uniqueId('a');
      const b = uniqueId('b');
      await cd.ctr(['run', '-d', '--runtime', RT, '--annotation', `io.containerd.ts.v2.group=${group}`, DEFAULT_IMAGE, a, 'sleep', '600']);
      const dir = await makeTempDir('conc-');
      const shim = await connectShim(cd, a, cd.namespace, group);
      try {
        const taskA = await waitTaskStatus(cd, a, 'RUNNING');
        // Bundle for B: A's spec with an absolute, read-only rootfs (A's) and its own cgroup.
        const bundleA = join(cd.state, 'io.containerd.runtime.v2.task', cd.namespace, a);
        const spec = JSON.parse(await readFile(join(bundleA, 'config.json'), 'utf8')) as {
          root: { path: string; readonly?: boolean };
          process: { args: string[] };
          linux: { cgroupsPath?: string };
        };
        spec.root = { path: join(bundleA, 'rootfs'), readonly: true };
        spec.process.args = ['sleep', '600'];
        spec.linux.cgroupsPath = `/${cd.namespace}/${b}`;
        const bundleB = join(dir, b);
        await mkdir(bundleB, { recursive: true });
        await writeFile(join(bundleB, 'config.json'), JSON.stringify(spec));
        const stdout = join(dir, 'stdout');
        const stderr = join(dir, 'stderr');
        execFileSync('mkfifo', [stdout, stderr]);

        let createSettled = false;
        const create = shim
          .call('Create', api.CreateTaskRequest.fromPartial({ id: b, bundle: bundleB, stdout, stderr }), api.CreateTaskRequest, api.CreateTaskResponse, 60_000)
          .finally(() => {
            createSettled = true;
          });
        // B's Create is now blocked waiting for a reader on its stdout FIFO; A must still answer.
        const st = await shim.call('State', { id: a, execId: '' }, api.StateRequest, api.StateResponse);
        assert.equal(st.pid, taskA.pid);
        const pids = await shim.call('Pids', { id: a }, api.PidsRequest, api.PidsResponse);
        assert.ok(pids.processes.some((p) => p.pid === taskA.pid));
        assert.equal(createSettled, false, 'Create should still be waiting for the FIFO reader');

        // Now be the client: open the read ends; Create completes and B runs.
        const readers = await Promise.all([stdout, stderr].map((p) => open(p, constants.O_RDONLY | constants.O_NONBLOCK)));
        try {
          const created = await create;
          assert.ok(created.pid > 0);
          await shim.call('Start', { id: b, execId: '' }, api.StartRequest, api.StartResponse);
          const wait = shim.call('Wait', { id: b, execId: '' }, api.WaitRequest, api.WaitResponse, 60_000);
          await shim.call('Kill', { id: b, execId: '', signal: 9, all: false }, api.KillRequest, Empty);
          assert.equal((await wait).exitStatus, 137);
          await shim.call('Delete', { id: b, execId: '' }, api.DeleteRequest, api.DeleteResponse);
        } finally {
          await Promise.all(readers.map((r) => r.close()));
        }
      } finally {
        shim.close();
        await cd.ctr(['task', 'kill', '-s', 'SIGKILL', a], { allowFail: true });
        await waitTaskStatus(cd, a, 'STOPPED').catch(() => undefined);
        await cd.ctr(['task', 'rm', a], { allowFail: true });
        await cd.ctr(['container', 'rm', a], { allowFail: true });
        await removeDir(dir);
      }
    });
  });
}
