/**
 * Shim failures (shim-v2-protocol.md §11.3, §11.5, §11.6, §13 items 33–34) and the orphan rule:
 * - the shim SIGKILLed: containerd's dead-shim cleanup runs `delete`; no container process, mount, runc
 *   state or task is left, and the container can be removed (both runtimes, through containerd).
 * - SIGTERM to the shim: it shuts down in order and removes its socket; containerd then cleans up (both).
 * - orphaned shim (ours, by hand, CONTAINERD_SHIM_TS_ORPHAN_TIMEOUT=2): no container and no client → it
 *   exits by itself; a client connection keeps it; a running container keeps it forever; a Create cut off
 *   by containerd dying leaves nothing behind. The reference has no such rule (reported, not asserted).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import {
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
import { exec, isAlive, listProcesses, makeTempDir, mountsUnder, signalPid, sleep, uniqueId, waitFor } from '../harness/util.js';
import { watchEventsReady } from '../harness/events.js';
import {
  FifoReader,
  REFERENCE_SHIM,
  RUNC_STATE_ROOT,
  cleanupByHand,
  connectTask,
  createAndStart,
  daemonsFor,
  makeBundle,
  runShim,
  runcOptionsAny,
  shimSocket,
  type TaskConn,
} from '../fixtures/shim-by-hand.js';
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

/** Pids of the container's processes, from `ctr task ps`. */
async function containerPids(cd: Containerd, id: string, n: number): Promise<number[]> {
  return waitFor(async () => {
    const out = (await cd.ctr(['task', 'ps', id])).stdout;
    const pids = out.split('\n').slice(1).map((l) => parseInt(l.trim().split(/\s+/)[0] ?? '', 10)).filter((p) => p > 0);
    return pids.length >= n ? pids : undefined;
  }, 10_000, `${n} processes in ${id}`);
}

/** The shim daemon serving `id` (its cwd is the bundle). */
async function shimOf(cd: Containerd, id: string): Promise<number> {
  const shims = await cd.shimProcesses();
  assert.equal(shims.length, 1, `expected one shim, found ${shims.map((s) => `${s.pid} ${s.argv.join(' ')}`).join('; ')}`);
  return shims[0]!.pid;
}

async function runcHas(cd: Containerd, id: string): Promise<boolean> {
  const root = join(RUNC_STATE_ROOT, cd.namespace);
  if (!existsSync(root)) return false;
  const r = await exec('runc', ['--root', root, 'list', '-q'], { allowFail: true });
  return r.stdout.split('\n').map((s) => s.trim()).includes(id);
}

/** After the shim died: containerd has run `delete`; nothing of the container is left. */
async function assertCleanedUp(cd: Containerd, id: string, pids: number[]): Promise<void> {
  // containerd unregisters the task of a dead shim (cleanupAfterDeadShim).
  await waitFor(async () => !(await listTasks(cd)).some((t) => t.id === id), 30_000, `task ${id} to disappear from task ls`);
  for (const pid of pids) await waitFor(async () => !(await isAlive(pid)), 15_000, `container process ${pid} to be gone`);
  const bundle = join(cd.state, 'io.containerd.runtime.v2.task', cd.namespace, id);
  await waitFor(async () => (await mountsUnder(bundle)).length === 0, 15_000, `no mount under ${bundle}`);
  await waitFor(async () => !(await runcHas(cd, id)), 15_000, `runc state of ${id} to be gone`);
  // The container record stays; its task is gone, so it can be removed.
  const rm = await cd.ctr(['task', 'rm', id], { allowFail: true });
  assert.ok(rm.code === 0 || /not found/i.test(rm.stderr), `task rm: ${rm.code} ${rm.stderr}`);
  await cd.ctr(['container', 'rm', id]);
}

for (const version of selectedVersions()) {
  describe(`shim failures on containerd ${version}`, () => {
    let cd: Containerd;
    before(async () => {
      cd = await startContainerd({ version, shimDirs: [shimBinDir()] });
      await importImage(cd);
    });
    after(async () => {
      await cd?.stop();
    });

    for (const rt of RUNTIMES) {
      test(`${short(rt)}: shim SIGKILLed: containerd's delete path leaves no process, mount, runc state or task; /tasks/exit 137`, async (t) => {
        const id = uniqueId('sk');
        const events = await watchEventsReady(cd);
        await cd.ctr(['run', '-d', '--runtime', rt, IMG, id, 'sh', '-c', 'sleep 600 & sleep 600 & wait']);
        try {
          await waitTaskStatus(cd, id, 'RUNNING');
          const pids = await containerPids(cd, id, 3);
          const shim = await shimOf(cd, id);
          const socket = cd.shimSocketPath(cd.namespace, id);
          assert.ok(existsSync(socket));
          signalPid(shim, 'SIGKILL');
          await waitFor(async () => !(await isAlive(shim)), 10_000, 'the shim to die');
          await assertCleanedUp(cd, id, pids);
          // containerd publishes the exit itself, with the status from `delete` (137).
          const exitLine = await waitFor(() => events.lines().find((l) => l.includes('/tasks/exit') && l.includes(id)), 15_000, '/tasks/exit from containerd');
          assert.match(exitLine, /"?exit_status"?[:=]\s*137|137/);
          await waitFor(() => events.lines().some((l) => l.includes('/tasks/delete') && l.includes(id)), 15_000, '/tasks/delete from containerd');
          // The reference leaves it (a later `start` of the same group replaces it); our `delete` removes it.
          t.diagnostic(`${short(rt)}: socket file after SIGKILL + cleanup: ${existsSync(socket) ? 'left behind' : 'removed'}`);
          if (rt === 'io.containerd.ts.v2') assert.equal(existsSync(socket), false, 'our delete removes the dead daemon\'s socket');
          await rm(socket, { force: true });
        } finally {
          events.stop();
          await cleanup(cd, id);
        }
        await waitFor(async () => (await cd.shimProcesses()).length === 0, 15_000, 'no shim left');
      });

      test(`${short(rt)}: SIGTERM to the shim: it exits in order and removes its socket; containerd cleans up the container`, async () => {
        const id = uniqueId('st');
        await cd.ctr(['run', '-d', '--runtime', rt, IMG, id, 'sh', '-c', 'sleep 600 & wait']);
        try {
          await waitTaskStatus(cd, id, 'RUNNING');
          const pids = await containerPids(cd, id, 2);
          const shim = await shimOf(cd, id);
          const socket = cd.shimSocketPath(cd.namespace, id);
          signalPid(shim, 'SIGTERM');
          await waitFor(async () => !(await isAlive(shim)), 20_000, 'the shim to exit on SIGTERM');
          await waitFor(() => !existsSync(socket), 10_000, 'the socket file to be removed');
          await assertCleanedUp(cd, id, pids);
        } finally {
          await cleanup(cd, id);
        }
        await waitFor(async () => (await cd.shimProcesses()).length === 0, 15_000, 'no shim left');
      });
    }
  });
}

// ---------------------------------------------------------------------------------------------------------
// The orphan rule, with the shim started by hand the way containerd starts it, and no containerd at all.

describe('orphaned shim (by hand, CONTAINERD_SHIM_TS_ORPHAN_TIMEOUT=2)', () => {
  const ns = uniqueId('orph');
  let tmp: string;
  let address: string;
  const ids: string[] = [];
  const sockets: string[] = [];
  before(async () => {
    tmp = await makeTempDir('orph-');
    address = join(tmp, 'c.sock'); // nothing listens there: containerd "died"
  });
  after(async () => {
    await cleanupByHand({ address, namespace: ns, tmp, ids, sockets });
  });

  /** `start` in a fresh bundle; the daemon's pid and socket. */
  async function startShim(args: string[], binary?: string): Promise<{ id: string; bundle: string; pid: number; socket: string }> {
    const id = uniqueId('o');
    ids.push(id);
    const bundle = await makeBundle(tmp, id, { args });
    const socket = shimSocket(address, ns, id);
    sockets.push(socket);
    const env = { ...process.env, TTRPC_ADDRESS: `${address}.ttrpc`, CONTAINERD_SHIM_TS_ORPHAN_TIMEOUT: '2' };
    const r = await runShim(['-namespace', ns, '-id', id, '-address', address, 'start'], { cwd: bundle, env, ...(binary ? { binary } : {}) });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.trim(), `unix://${socket}`);
    const daemon = await waitFor(async () => (await daemonsFor(address)).find((p) => p.argv.includes(id)), 10_000, 'the daemon');
    return { id, bundle, pid: daemon.pid, socket };
  }

  test('no container and no client: the daemon exits by itself and removes its socket', async () => {
    const s = await startShim(['sleep', '600']);
    await waitFor(async () => !(await isAlive(s.pid)), 30_000, 'the orphaned daemon to exit');
    assert.equal(existsSync(s.socket), false, 'socket left behind');
  });

  test('a client connection keeps it; once the client goes, it exits', async () => {
    const s = await startShim(['sleep', '600']);
    const conn = await connectTask(s.socket, ns);
    try {
      await sleep(6000); // 3 × the timeout
      assert.ok(await isAlive(s.pid), 'exited although a client was connected');
      // still serving
      const c = await conn.call('Connect', { id: s.id }, api.ConnectRequest, api.ConnectResponse);
      assert.equal(c.shimPid, s.pid);
    } finally {
      conn.close();
    }
    await waitFor(async () => !(await isAlive(s.pid)), 30_000, 'the daemon to exit after the client left');
  });

  test('a running container keeps it alive with no client (containerd died); after the task is deleted it exits', async () => {
    const s = await startShim(['sleep', '600']);
    let conn = await connectTask(s.socket, ns);
    const initPid = await createAndStart(conn, s.id, s.bundle);
    conn.close(); // containerd is gone
    await sleep(6000);
    assert.ok(await isAlive(s.pid), 'the shim exited while its container runs');
    assert.ok(await isAlive(initPid), 'the container died');
    // containerd comes back: everything still works.
    conn = await connectTask(s.socket, ns);
    try {
      const st = await conn.call('State', { id: s.id, execId: '' }, api.StateRequest, api.StateResponse);
      assert.equal(st.pid, initPid);
      assert.equal(st.status, 2); // RUNNING
      await conn.call('Kill', { id: s.id, execId: '', signal: 9, all: false }, api.KillRequest, Empty);
      const w = await conn.call('Wait', { id: s.id, execId: '' }, api.WaitRequest, api.WaitResponse);
      assert.equal(w.exitStatus, 137);
      // a stopped but not deleted task still counts as a task: no exit
    } finally {
      conn.close();
    }
    await sleep(5000);
    assert.ok(await isAlive(s.pid), 'the shim exited while it still had an (exited) task');
    conn = await connectTask(s.socket, ns);
    try {
      await conn.call('Delete', { id: s.id, execId: '' }, api.DeleteRequest, api.DeleteResponse);
    } finally {
      conn.close(); // no Shutdown: the orphan rule must end it
    }
    await waitFor(async () => !(await isAlive(s.pid)), 30_000, 'the daemon to exit once no task and no client are left');
    assert.equal(existsSync(s.socket), false);
  });

  test('containerd dies during Create (stdout FIFO never opened): the Create is abandoned and the shim exits, leaving no runc container', async (t) => {
    const s = await startShim(['sh', '-c', 'echo hi; sleep 600']);
    const fifo = join(tmp, `${s.id}-stdout`);
    await exec('mkfifo', [fifo]);
    const conn = await connectTask(s.socket, ns);
    const create = conn
      .call('Create', api.CreateTaskRequest.fromPartial({ id: s.id, bundle: s.bundle, stdout: fifo, stderr: '' }), api.CreateTaskRequest, api.CreateTaskResponse)
      .then(
        () => 'created',
        (e: Error) => e.message,
      );
    await sleep(1500);
    conn.close(); // containerd dies mid-Create
    t.diagnostic(`Create after the client left: ${await create}`);
    const started = Date.now();
    await waitFor(async () => !(await isAlive(s.pid)), 60_000, 'the daemon to exit after the abandoned Create');
    const took = Date.now() - started;
    assert.equal(await exec('runc', ['--root', join(RUNC_STATE_ROOT, ns), 'state', s.id], { allowFail: true }).then((r) => r.code !== 0), true, 'runc container left');
    assert.equal(existsSync(s.socket), false);
    assert.ok(took < 45_000, `took ${took} ms`);
  });

  test('for the record: the reference shim started by hand with nobody connecting', async (t) => {
    // The reference daemon opens the log FIFO for writing, blocking until a reader exists: be containerd.
    const id = uniqueId('ref');
    ids.push(id);
    const bundle = await makeBundle(tmp, id, { args: ['sleep', '600'] });
    const log = new FifoReader(join(bundle, 'log'));
    try {
      sockets.push(shimSocket(address, ns, id));
      const r = await runShim(['-namespace', ns, '-id', id, '-address', address, 'start'], { cwd: bundle, binary: REFERENCE_SHIM, env: { ...process.env, TTRPC_ADDRESS: `${address}.ttrpc` } });
      assert.equal(r.code, 0, r.stderr);
      const daemon = await waitFor(async () => (await daemonsFor(address)).find((p) => p.argv.includes(id)), 10_000, 'the reference daemon');
      await sleep(6000);
      t.diagnostic(`reference daemon ${daemon.pid} with no container and no client after 6 s: ${(await isAlive(daemon.pid)) ? 'still running (no orphan rule)' : 'exited'}`);
    } finally {
      log.close();
    }
  });
});

// ---------------------------------------------------------------------------------------------------------
// Runtime calls in flight when the daemon goes. The daemon starts runc create/exec without a parent-death
// signal (no setpriv in front: 2-3 ms a call); what stands in for it: its orderly exit kills them, and
// `delete` after a killed daemon kills what it left (shim/runtime/leftover-calls.ts). A slow runc wrapper
// (sleeps before create/exec) holds the call in flight; the test then checks that it never went on.

describe('runtime calls in flight when the daemon goes (ours, by hand)', () => {
  const ns = uniqueId('infl');
  let tmp: string;
  let address: string;
  let slowRunc: string;
  const ids: string[] = [];
  const sockets: string[] = [];
  before(async () => {
    tmp = await makeTempDir('infl-');
    address = join(tmp, 'c.sock');
    slowRunc = join(tmp, 'slow-runc');
    // Notes each call before its pause and again when it goes on to the real runc.
    await writeFile(
      slowRunc,
      [
        '#!/bin/sh',
        'for a; do case $a in create|exec) printf "%s\\n" "$a" >> "$0.before"; sleep 3; printf "%s\\n" "$a" >> "$0.after" ;; esac; done',
        'exec runc "$@"',
        '',
      ].join('\n'),
      { mode: 0o755 },
    );
  });
  after(async () => {
    await cleanupByHand({ address, namespace: ns, tmp, ids, sockets });
  });

  const notes = async (which: 'before' | 'after'): Promise<string[]> => (await readFile(`${slowRunc}.${which}`, 'utf8').catch(() => '')).split('\n').filter(Boolean);
  /** Processes whose argv carries this bundle's runc log (the daemon's runc calls, and the wrapper). */
  const callsOf = async (bundle: string): Promise<number[]> =>
    (await listProcesses()).filter((p) => p.argv.includes(join(bundle, 'log.json'))).map((p) => p.pid);
  const runcHasState = async (id: string): Promise<boolean> => (await exec('runc', ['--root', join(RUNC_STATE_ROOT, ns), 'state', id], { allowFail: true })).code === 0;

  async function startShim(args: string[]): Promise<{ id: string; bundle: string; pid: number; socket: string; conn: TaskConn }> {
    const id = uniqueId('f');
    ids.push(id);
    const bundle = await makeBundle(tmp, id, { args });
    const socket = shimSocket(address, ns, id);
    sockets.push(socket);
    const env = { ...process.env, TTRPC_ADDRESS: `${address}.ttrpc` };
    const r = await runShim(['-namespace', ns, '-id', id, '-address', address, 'start'], { cwd: bundle, env });
    assert.equal(r.code, 0, r.stderr);
    const daemon = await waitFor(async () => (await daemonsFor(address)).find((p) => p.argv.includes(id)), 10_000, 'the daemon');
    return { id, bundle, pid: daemon.pid, socket, conn: await connectTask(socket, ns) };
  }

  const clearNotes = async (): Promise<void> => {
    await rm(`${slowRunc}.before`, { force: true });
    await rm(`${slowRunc}.after`, { force: true });
  };

  /** A daemon whose Create is held in the slow wrapper's `runc create` when `sig` reaches it; once it is gone. */
  async function signalDuringCreate(sig: 'SIGKILL' | 'SIGTERM', exitTimeoutMs: number): Promise<Awaited<ReturnType<typeof startShim>>> {
    await clearNotes();
    const s = await startShim(['sleep', '600']);
    const create = s.conn
      .call('Create', api.CreateTaskRequest.fromPartial({ id: s.id, bundle: s.bundle, options: runcOptionsAny({ binaryName: slowRunc }) }), api.CreateTaskRequest, api.CreateTaskResponse)
      .catch(() => undefined); // cut off with the daemon
    await waitFor(async () => (await notes('before')).includes('create'), 20_000, 'runc create to be in flight');
    signalPid(s.pid, sig);
    await waitFor(async () => !(await isAlive(s.pid)), exitTimeoutMs, `the daemon to go on ${sig}`);
    s.conn.close();
    await create;
    return s;
  }

  test('SIGKILL during `runc create`, then containerd\'s `delete`: the call is killed, no container is ever made', async () => {
    const s = await signalDuringCreate('SIGKILL', 10_000);
    assert.ok((await callsOf(s.bundle)).length > 0, 'the create was still in flight when the daemon died (test premise)');
    const d = await runShim(['-namespace', ns, '-id', s.id, '-address', address, 'delete'], { cwd: s.bundle });
    assert.equal(d.code, 0, d.stderr);
    assert.deepEqual(await callsOf(s.bundle), [], 'delete left a runtime call of the dead daemon running');
    await sleep(4000); // past the wrapper's pause
    assert.deepEqual(await notes('after'), [], 'the killed create went on');
    assert.equal(await runcHasState(s.id), false, 'a runc container was made after the clean-up');
    assert.equal(existsSync(s.socket), false, 'the dead daemon\'s socket is removed');
  });

  test('SIGTERM during `runc create`: the daemon kills the call as it exits', async () => {
    const s = await signalDuringCreate('SIGTERM', 20_000);
    await waitFor(async () => (await callsOf(s.bundle)).length === 0, 5000, 'the runtime call to be gone');
    await sleep(4000);
    assert.deepEqual(await notes('after'), [], 'the create went on after the daemon exited');
    assert.equal(await runcHasState(s.id), false, 'a runc container was made after the daemon exited');
  });

  test('SIGKILL during `runc exec`, then `delete`: the exec is killed with the container, its process never runs', async () => {
    await clearNotes();
    const s = await startShim(['sleep', '600']);
    // The container made with the wrapper (its create pauses too), then an exec held in flight.
    const init = await createAndStart(s.conn, s.id, s.bundle, { options: runcOptionsAny({ binaryName: slowRunc }) });
    const spec = { args: ['sleep', '4321'], cwd: '/', env: ['PATH=/bin'], user: { uid: 0, gid: 0 } };
    const execCall = s.conn
      .call('Exec', api.ExecProcessRequest.fromPartial({ id: s.id, execId: 'x1', spec: { typeUrl: 'types.containerd.io/opencontainers/runtime-spec/1/Process', value: Buffer.from(JSON.stringify(spec)) } }), api.ExecProcessRequest, Empty)
      .then(() => s.conn.call('Start', { id: s.id, execId: 'x1' }, api.StartRequest, api.StartResponse))
      .then(
        () => 'started',
        (e: Error) => e.message,
      );
    await waitFor(async () => (await notes('before')).includes('exec'), 20_000, 'runc exec to be in flight');
    signalPid(s.pid, 'SIGKILL');
    await waitFor(async () => !(await isAlive(s.pid)), 10_000, 'the daemon to die');
    s.conn.close();
    await execCall;
    const d = await runShim(['-namespace', ns, '-id', s.id, '-address', address, 'delete'], { cwd: s.bundle });
    assert.equal(d.code, 0, d.stderr);
    assert.deepEqual(await callsOf(s.bundle), [], 'delete left a runtime call of the dead daemon running');
    await waitFor(async () => !(await isAlive(init)), 10_000, 'the container to be killed by delete');
    await sleep(4000);
    assert.ok(!(await notes('after')).includes('exec'), 'the killed exec went on');
    assert.ok(!(await listProcesses()).some((p) => p.argv.join(' ') === 'sleep 4321'), 'the exec\'s process runs');
    assert.equal(await runcHasState(s.id), false);
  });
});
