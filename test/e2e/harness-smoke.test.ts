// Smoke test of the e2e harness itself, with the reference runtime only: a private containerd per
// selected version, the local busybox image, run/kill/wait/restart, and a stop() that leaves nothing.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { listTasks, selectedVersions, startContainerd, waitTaskStatus, type Containerd } from '../harness/containerd.js';
import { DEFAULT_IMAGE, importImage } from '../harness/image.js';
import { isAlive, mountsUnder, uniqueId, waitFor } from '../harness/util.js';

const RUNC = 'io.containerd.runc.v2';
// sh as pid 1 only dies from SIGTERM with a trap; `wait` is interrupted by the trapped signal at once.
const TRAP_TERM = ['sh', '-c', 'trap "exit 7" TERM; sleep 1000 & wait'];

/** Asserts that nothing of a stopped instance is left: shims, container processes, mounts, dir, runc state. */
async function assertNothingLeft(cd: Containerd, pids: number[], ids: string[]): Promise<void> {
  assert.deepEqual(await cd.shimProcesses(), []);
  for (const pid of pids) assert.equal(await isAlive(pid), false, `pid ${pid} still alive`);
  assert.deepEqual(await mountsUnder(cd.dir), []);
  assert.equal(existsSync(cd.dir), false, `${cd.dir} still exists`);
  for (const id of ids) {
    assert.equal(existsSync(join('/run/containerd/runc', cd.namespace, id)), false, `runc state of ${id} left`);
    assert.equal(existsSync(join('/sys/fs/cgroup/memory', cd.namespace, id)), false, `memory cgroup of ${id} left`);
    assert.equal(existsSync(cd.shimSocketPath(cd.namespace, id)), false, `shim socket of ${id} left`);
  }
}

async function startDetached(cd: Containerd, id: string, args: string[]): Promise<number> {
  await cd.ctr(['run', '-d', '--runtime', RUNC, DEFAULT_IMAGE, id, ...args]);
  return (await waitTaskStatus(cd, id, 'RUNNING')).pid;
}

for (const version of selectedVersions()) {
  describe(`harness with containerd ${version}`, { timeout: 120_000 }, () => {
    let cd: Containerd;

    before(async () => {
      cd = await startContainerd({ version });
      await importImage(cd);
    });
    after(async () => {
      await cd?.stop();
    });

    test('serves the expected version', () => {
      assert.match(cd.serverVersion, new RegExp(`^v?${version.replace('.', '\\.')}\\.`));
      assert.equal(cd.ttrpcAddress, cd.address + '.ttrpc');
      assert.ok(cd.address.length < 100);
    });

    test('ctr run --rm: output and exit status', async () => {
      const id = uniqueId('run');
      const r = await cd.ctr(['run', '--rm', '--runtime', RUNC, DEFAULT_IMAGE, id, 'sh', '-c', 'echo hello; exit 3'], { allowFail: true });
      assert.equal(r.stdout, 'hello\n');
      assert.equal(r.code, 3);
      assert.deepEqual(await listTasks(cd), []);
    });

    test('stdin input reaches the container', async () => {
      const id = uniqueId('cat');
      const r = await cd.ctr(['run', '--rm', '--runtime', RUNC, DEFAULT_IMAGE, id, 'cat'], {
        input: 'via stdin\n',
        closeStdinAfter: () => waitTaskStatus(cd, id, 'RUNNING'),
      });
      assert.equal(r.stdout, 'via stdin\n');
    });

    test('detached run: RUNNING, uses this version\'s runc shim, kill, wait, delete', async () => {
      const id = uniqueId('det');
      const pid = await startDetached(cd, id, TRAP_TERM);
      const shims = (await cd.shimProcesses()).filter((p) => p.argv.includes(id));
      assert.equal(shims.length, 1);
      assert.equal(shims[0]?.argv[0], cd.binaries.runcShim);
      // The shell is PID 1 of the container: a TERM that comes before its trap is set is ignored, so wait until
      // it has started its `sleep` (it is past the trap then). Seen once under load on containerd 2.1.
      await waitFor(async () => (await cd.ctr(['task', 'ps', id])).stdout.trim().split('\n').length >= 3 || undefined, 20_000, 'the shell past its trap');
      await cd.ctr(['tasks', 'kill', id]);
      const stopped = await waitTaskStatus(cd, id, 'STOPPED');
      assert.equal(stopped.pid, pid);
      const del = await cd.ctr(['tasks', 'delete', id]);
      assert.match(del.stderr, /exit code 7/);
      await cd.ctr(['containers', 'delete', id]);
      assert.deepEqual(await listTasks(cd), []);
    });

    test('restart(): containerd comes back and still knows the running task', async () => {
      const id = uniqueId('live');
      const pid = await startDetached(cd, id, ['sleep', '1000']);
      const oldPid = cd.pid;
      await cd.restart();
      assert.notEqual(cd.pid, oldPid);
      const t = await waitTaskStatus(cd, id, 'RUNNING');
      assert.equal(t.pid, pid);
      await cd.ctr(['tasks', 'kill', '--signal', 'SIGKILL', id]);
      await waitTaskStatus(cd, id, 'STOPPED');
      await cd.ctr(['tasks', 'delete', id]);
      await cd.ctr(['containers', 'delete', id]);
    });
  });

  describe(`harness stop() with containerd ${version}`, { timeout: 120_000 }, () => {
    test('removes running tasks, shims, mounts and the temp dir', async () => {
      const cd = await startContainerd({ version });
      let stopped = false;
      try {
        await importImage(cd);
        const ids = [uniqueId('a'), uniqueId('b')];
        const pids = [await startDetached(cd, ids[0]!, ['sleep', '1000']), await startDetached(cd, ids[1]!, TRAP_TERM)];
        pids.push(...(await cd.shimProcesses()).map((p) => p.pid));
        assert.ok((await mountsUnder(cd.state)).length >= 2, 'rootfs mounts expected');
        stopped = true;
        await cd.stop();
        await assertNothingLeft(cd, pids, ids);
      } finally {
        if (!stopped) await cd.stop();
      }
    });

    test('cleans up even after containerd was SIGKILLed with a task running', async () => {
      const cd = await startContainerd({ version });
      let stopped = false;
      try {
        await importImage(cd);
        const id = uniqueId('orphan');
        const pids = [await startDetached(cd, id, ['sleep', '1000'])];
        pids.push(...(await cd.shimProcesses()).map((p) => p.pid));
        await cd.kill('SIGKILL');
        assert.equal(await isAlive(pids[0]!), true, 'the container outlives containerd');
        stopped = true;
        await cd.stop();
        await assertNothingLeft(cd, pids, [id]);
      } finally {
        if (!stopped) await cd.stop();
      }
    });
  });
}
