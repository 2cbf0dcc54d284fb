/**
 * Which containers share a shim daemon (shim-v2-protocol.md §2.8, §12.2, README "Grouping"): one daemon per
 * container by default; one per value of the reference's annotations or our opt-in annotation
 * io.containerd.ts.v2.group; one per namespace with CONTAINERD_SHIM_TS_GROUP in containerd's environment.
 * A group's daemon outlives the deletion of all but its last container. containerd 2.x sends Create for
 * containers the daemon never saw in `start`, on new connections, with bundles elsewhere.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdir, readdir, rm, rmdir } from 'node:fs/promises';
import { join } from 'node:path';
import * as api from '../../protocol/gen/containerd/runtime/v2/task/shim.js';
import { Empty } from '../../protocol/gen/google/protobuf/empty.js';
import { listTasks, selectedVersions, shimBinDir, startContainerd, waitTaskStatus, type Containerd } from '../harness/containerd.js';
import { DEFAULT_IMAGE, importImage } from '../harness/image.js';
import { exec, isAlive, makeTempDir, sleep, uniqueId, unmountUnder, waitFor } from '../harness/util.js';
import { RUNC_STATE_ROOT, cleanupByHand, connectTask, createAndStart, daemonsFor, makeBundle, runShim, shimSocket } from '../fixtures/shim-by-hand.js';
import type { ProcInfo } from '../harness/util.js';

const TIMEOUT = { timeout: 240_000 };
const IMG = DEFAULT_IMAGE;
const TS = 'io.containerd.ts.v2';

/** Serve-mode shim daemons of this containerd (not the short-lived start/delete runs). */
async function daemons(cd: Containerd): Promise<ProcInfo[]> {
  return (await cd.shimProcesses()).filter((p) => p.argv.at(-1) !== 'start' && p.argv.at(-1) !== 'delete');
}

async function run(cd: Containerd, id: string, extra: string[] = [], namespace?: string): Promise<void> {
  await cd.ctr(['run', '-d', '--runtime', TS, ...extra, IMG, id, 'sleep', '600'], { namespace });
  await waitTaskStatus(cd, id, 'RUNNING', 20_000, namespace);
}

async function remove(cd: Containerd, id: string, namespace?: string): Promise<void> {
  await cd.ctr(['task', 'rm', '-f', id], { allowFail: true, namespace });
  await cd.ctr(['container', 'rm', id], { allowFail: true, namespace });
}

describe('grouping by hand', () => {
  test('concurrent starts of one group (a pod\'s containers at once): one address, one daemon', TIMEOUT, async () => {
    const tmp = await makeTempDir('gp-');
    const ns = uniqueId('gp');
    const address = join(tmp, 'c.sock');
    const group = uniqueId('pod');
    const ids = Array.from({ length: 6 }, () => uniqueId('m'));
    try {
      await mkdir(join(tmp, ns));
      const bundles = await Promise.all(ids.map((id) => makeBundle(join(tmp, ns), id, { args: ['true'], annotations: { 'io.kubernetes.cri.sandbox-id': group } })));
      const results = await Promise.all(
        ids.map((id, i) => runShim(['-namespace', ns, '-address', address, '-publish-binary', '/usr/bin/containerd', '-id', id, 'start'], { cwd: bundles[i]! })),
      );
      const expected = `unix://${shimSocket(address, ns, group)}`;
      for (const r of results) {
        assert.equal(r.code, 0, r.stderr);
        assert.equal(r.stdout, expected);
      }
      assert.equal((await daemonsFor(address)).length, 1);
    } finally {
      await cleanupByHand({ address, namespace: ns, tmp, sockets: [shimSocket(address, ns, group)] });
    }
  });
});

for (const version of selectedVersions()) {
  describe(`grouping on containerd ${version}`, () => {
    let cd: Containerd;
    before(async () => {
      cd = await startContainerd({ version, shimDirs: [shimBinDir()] });
      await importImage(cd);
    });
    after(async () => {
      await cd?.stop();
    });

    test('default: one daemon per container', TIMEOUT, async () => {
      const ids = [uniqueId('solo'), uniqueId('solo')];
      try {
        for (const id of ids) await run(cd, id);
        const ds = await daemons(cd);
        assert.equal(ds.length, 2);
        for (const id of ids) assert.ok(existsSync(cd.shimSocketPath(cd.namespace, id)), `socket of ${id}`);
      } finally {
        for (const id of ids) await remove(cd, id);
      }
      await waitFor(async () => (await daemons(cd)).length === 0, 20_000, 'daemons gone');
    });

    test('annotation io.containerd.ts.v2.group: one daemon; it survives the first delete and exits after the last', TIMEOUT, async () => {
      const group = uniqueId('grp');
      const ids = [uniqueId('ga'), uniqueId('gb')];
      const socket = cd.shimSocketPath(cd.namespace, group);
      try {
        for (const id of ids) await run(cd, id, ['--annotation', `io.containerd.ts.v2.group=${group}`]);
        const [d, ...more] = await daemons(cd);
        assert.ok(d);
        assert.equal(more.length, 0, 'one daemon for the group');
        assert.ok(existsSync(socket), 'socket named after the group key');
        await remove(cd, ids[0]!);
        await sleep(500);
        assert.ok(await isAlive(d.pid), 'daemon alive after the first delete');
        const left = await listTasks(cd);
        assert.equal(left.find((t) => t.id === ids[1])?.status, 'RUNNING');
        assert.ok(!left.some((t) => t.id === ids[0]));
        await remove(cd, ids[1]!);
        await waitFor(async () => !(await isAlive(d.pid)), 20_000, 'daemon exits after the last delete');
        assert.ok(!existsSync(socket), 'socket removed');
      } finally {
        for (const id of ids) await remove(cd, id);
      }
    });

    test('containerd 2.x sandbox-style join: Create for an unknown id on a new connection, bundle elsewhere', TIMEOUT, async () => {
      // The first container comes through containerd; the second is what containerd 2.x does for a CRI
      // container of an existing pod: no `start`, a new connection to the pod's socket, Create with its own
      // bundle (here one made by hand next to nothing containerd knows: config.json + a busybox rootfs).
      const first = uniqueId('pod');
      const second = uniqueId('join');
      const tmp = await makeTempDir('gj-');
      const runcRoot = join(RUNC_STATE_ROOT, cd.namespace);
      try {
        await run(cd, first);
        const [d] = await daemons(cd);
        assert.ok(d);
        const bundle = await makeBundle(tmp, second, { args: ['sleep', '600'] });
        const conn = await connectTask(cd.shimSocketPath(cd.namespace, first), cd.namespace);
        try {
          const pid = await createAndStart(conn, second, bundle);
          assert.ok(await isAlive(pid));
          // Another fresh connection sees both containers.
          const other = await connectTask(cd.shimSocketPath(cd.namespace, first), cd.namespace);
          try {
            const st = await other.call('State', { id: second, execId: '' }, api.StateRequest, api.StateResponse);
            assert.equal(st.pid, pid);
            assert.equal(st.bundle, bundle);
            const c = await other.call('Connect', { id: second }, api.ConnectRequest, api.ConnectResponse);
            assert.equal(c.shimPid, d.pid);
            assert.equal(c.taskPid, pid);
          } finally {
            other.close();
          }
          await conn.call('Kill', { id: second, execId: '', signal: 9, all: false }, api.KillRequest, Empty);
          const w = await conn.call('Wait', { id: second, execId: '' }, api.WaitRequest, api.WaitResponse);
          assert.equal(w.exitStatus, 137);
          await conn.call('Delete', { id: second, execId: '' }, api.DeleteRequest, api.DeleteResponse);
          // As containerd 1.x would after a delete: Shutdown must not stop the daemon while `first` runs.
          await conn.call('Shutdown', { id: second, now: false }, api.ShutdownRequest, Empty);
        } finally {
          conn.close();
        }
        await sleep(500);
        assert.ok(await isAlive(d.pid), 'daemon still serves the first container');
        assert.equal((await listTasks(cd)).find((t) => t.id === first)?.status, 'RUNNING');
        await remove(cd, first);
        await waitFor(async () => !(await isAlive(d.pid)), 20_000, 'daemon exits after the last container');
      } finally {
        await remove(cd, first);
        await exec('runc', ['--root', runcRoot, 'delete', '--force', second], { allowFail: true });
        await unmountUnder(tmp);
        await rm(tmp, { recursive: true, force: true });
      }
    });
  });

  describe(`grouping by CONTAINERD_SHIM_TS_GROUP in containerd ${version}'s environment`, () => {
    let cd: Containerd;
    const other = uniqueId('shimtest-ns');
    before(async () => {
      cd = await startContainerd({ version, shimDirs: [shimBinDir()], env: { CONTAINERD_SHIM_TS_GROUP: 'k' } });
      await importImage(cd);
      await importImage(cd, IMG, other);
    });
    after(async () => {
      await cd?.stop();
      // ctr's cgroups are /<namespace>/<id>: runc removes the leaves, the namespace level is ours to remove.
      for (const ctl of await readdir('/sys/fs/cgroup').catch(() => [] as string[])) await rmdir(join('/sys/fs/cgroup', ctl, other)).catch(() => undefined);
      await rmdir(join(RUNC_STATE_ROOT, other)).catch(() => undefined); // runc's (empty) state root of that namespace
    });

    test('every container of a namespace in one daemon, one daemon per namespace', TIMEOUT, async () => {
      const ids = [uniqueId('e1'), uniqueId('e2'), uniqueId('e3')];
      const elsewhere = uniqueId('eo');
      try {
        for (const id of ids) await run(cd, id);
        const ds = await daemons(cd);
        assert.equal(ds.length, 1, 'one daemon for the namespace');
        assert.ok(existsSync(cd.shimSocketPath(cd.namespace, 'k')));
        await run(cd, elsewhere, [], other);
        assert.equal((await daemons(cd)).length, 2, 'another namespace, another daemon');
        assert.ok(existsSync(cd.shimSocketPath(other, 'k')));
        for (const id of ids.slice(0, 2)) await remove(cd, id);
        await sleep(500);
        assert.ok(await isAlive(ds[0]!.pid));
        assert.equal((await listTasks(cd)).find((t) => t.id === ids[2])?.status, 'RUNNING');
        await remove(cd, ids[2]!);
        await waitFor(async () => !(await isAlive(ds[0]!.pid)), 20_000, 'namespace daemon exits after its last container');
      } finally {
        for (const id of ids) await remove(cd, id);
        await remove(cd, elsewhere, other);
      }
      await waitFor(async () => (await daemons(cd)).length === 0, 20_000, 'no daemon left');
    });
  });
}
