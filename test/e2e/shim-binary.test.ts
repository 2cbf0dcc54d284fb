/**
 * The shim binary's contract with containerd (shim-v2-protocol.md §2, §11, §12, checklist 1–7, 33–35):
 * first run by hand in bundles laid out like containerd's (the reference binary run the same way where
 * the answers must match), then through real containerd.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdir, readFile, readlink, stat } from 'node:fs/promises';
import { join } from 'node:path';
import * as api from '../../protocol/gen/containerd/runtime/v2/task/shim.js';
import { Empty } from '../../protocol/gen/google/protobuf/empty.js';
import { RuntimeInfo } from '../../protocol/gen/extra/introspection.js';
import { RUNTIMES, containerdBinaries, listTasks, selectedVersions, shimBinDir, startContainerd, waitTaskStatus, type Containerd, type Runtime } from '../harness/containerd.js';
import { DEFAULT_IMAGE, importImage } from '../harness/image.js';
import { exec, isAlive, makeTempDir, mountsUnder, openFds, sleep, uniqueId, waitFor } from '../harness/util.js';
import { connectShim } from '../harness/shim-client.js';
import { watchEventsReady } from '../harness/events.js';
import {
  FifoReader,
  REFERENCE_SHIM,
  RUNC_STATE_ROOT,
  SHIM_BIN,
  cleanupByHand,
  connectTask,
  createAndStart,
  daemonsFor,
  encodeAny,
  makeBundle,
  procGroup,
  runShim,
  shimSocket,
} from '../fixtures/shim-by-hand.js';

const TIMEOUT = { timeout: 180_000 };

function withoutTestContext(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  delete env.NODE_TEST_CONTEXT;
  return env;
}

describe('shim binary run by hand', () => {
  let tmp: string;
  const ns = uniqueId('sb');
  let address: string; // containerd's gRPC address as passed in -address (nobody listens there)
  let parent: string; // <state>/io.containerd.runtime.v2.task/<ns>, as containerd lays it out
  const ids: string[] = [];
  const sockets: string[] = [];

  /** A bundle `<parent>/<id>` plus bookkeeping for cleanup. */
  async function bundle(id: string, args = ['sleep', '600'], annotations: Record<string, string> = {}): Promise<string> {
    ids.push(id);
    return makeBundle(parent, id, { args, annotations });
  }

  function startArgs(id: string, debug = false): string[] {
    return ['-namespace', ns, '-address', address, '-publish-binary', '/usr/bin/containerd', '-id', id, ...(debug ? ['-debug'] : []), 'start'];
  }

  /** `start` as containerd runs it: cwd = bundle, stdout+stderr read to EOF. */
  async function start(id: string, b: string, opts: { debug?: boolean; input?: Buffer } = {}) {
    const r = await runShim(startArgs(id, opts.debug), { cwd: b, input: opts.input });
    sockets.push(shimSocket(address, ns, id));
    return r;
  }

  before(async () => {
    tmp = await makeTempDir('sb-');
    address = join(tmp, 'c.sock');
    parent = join(tmp, ns);
    await mkdir(parent);
  });
  after(async () => {
    await cleanupByHand({ address, namespace: ns, tmp, ids, sockets });
  });

  test('-v exits 0 without a namespace; no namespace → exit 1; unknown flag → exit 2', async () => {
    const v = await runShim(['-v'], { cwd: tmp });
    assert.equal(v.code, 0, v.stderr);
    assert.match(v.stdout, /Version:\s+\S+/);
    const noNs = await runShim(['-id', 'x', 'start'], { cwd: tmp });
    assert.equal(noNs.code, 1);
    assert.match(noNs.stderr, /shim namespace cannot be empty/);
    assert.equal(noNs.stdout, '');
    const bad = await runShim(['-namespace', ns, '-no-such-flag', 'start'], { cwd: tmp });
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /flag provided but not defined: -no-such-flag/);
    const ref = await runShim(['-no-such-flag'], { cwd: tmp, binary: REFERENCE_SHIM });
    assert.equal(ref.code, 2, 'the reference exits 2 too');
  });

  test('start: prints only the address, writes <bundle>/address, 0600 socket, detached daemon with cwd = bundle and OOM score + 1', TIMEOUT, async () => {
    const id = uniqueId('st');
    const b = await bundle(id);
    // As containerd: combined stdout+stderr captured until EOF. The `$(…)` returns only when every holder of
    // the pipe has closed it, so a daemon inheriting it would hang here (exec's timeout fails the test).
    // The capturing subshell gets oom_score_adj 7; the daemon must get 8.
    const script = 'echo 7 > /proc/self/oom_score_adj; out=$("$@" 2>&1); rc=$?; printf "%s" "$out"; exit $rc';
    const r = await exec('sh', ['-c', script, 'sh', SHIM_BIN, ...startArgs(id)], { cwd: b, allowFail: true, timeoutMs: 60_000, env: withoutTestContext() });
    sockets.push(shimSocket(address, ns, id));
    assert.equal(r.code, 0, r.stdout + r.stderr);
    const expected = `unix://${shimSocket(address, ns, id)}`;
    assert.match(r.stdout, /^unix:\/\/\/run\/containerd\/s\/[0-9a-f]{64}$/);
    assert.equal(r.stdout, expected, 'stdout+stderr is exactly the address');
    assert.equal(await readFile(join(b, 'address'), 'utf8'), expected);
    assert.ok(!existsSync(join(b, '.address')), 'temp file renamed away');

    const sock = await stat(shimSocket(address, ns, id));
    assert.ok(sock.isSocket());
    assert.equal(sock.mode & 0o777, 0o600);

    const [daemon, ...more] = await daemonsFor(address);
    assert.ok(daemon, 'a daemon runs');
    assert.equal(more.length, 0);
    assert.ok(!daemon.argv.includes('start') && daemon.argv.includes(ns) && daemon.argv.includes(id));
    const g = await procGroup(daemon.pid);
    const mine = await procGroup(process.pid);
    assert.equal(g.pgrp, daemon.pid, 'daemon leads its own process group');
    assert.notEqual(g.pgrp, mine.pgrp);
    // No session of its own, as the reference's daemon (a spare, shared by the host, may have been started from
    // another session than this test's, so only that).
    assert.notEqual(g.session, daemon.pid, 'no session of its own');
    assert.equal(await readlink(`/proc/${daemon.pid}/cwd`), b);
    assert.equal((await readFile(`/proc/${daemon.pid}/oom_score_adj`, 'utf8')).trim(), '8');
    const fds = await openFds(daemon.pid);
    assert.equal(fds.get(0), '/dev/null');
    assert.equal(fds.get(1), '/dev/null');
    assert.ok([...fds.values()].some((t) => t.startsWith('socket:')), 'holds the listening socket');
    // SIGPIPE ignored: log writes to a FIFO containerd no longer reads must not kill the daemon.
    const sigIgn = BigInt('0x' + (/^SigIgn:\s*([0-9a-f]+)$/m.exec(await readFile(`/proc/${daemon.pid}/status`, 'utf8'))?.[1] ?? '0'));
    assert.equal((sigIgn >> 12n) & 1n, 1n, 'SIGPIPE (13) ignored');

    // A second start for the same group (same id, and another bundle carrying the group annotation).
    const again = await start(id, b);
    assert.equal(again.code, 0, again.stderr);
    assert.equal(again.stdout, expected);
    assert.equal(again.stderr, '');
    const id2 = uniqueId('st2');
    const b2 = await bundle(id2, ['sleep', '600'], { 'io.containerd.runc.v2.group': id });
    const joined = await start(id2, b2);
    assert.equal(joined.code, 0, joined.stderr);
    assert.equal(joined.stdout, expected);
    assert.equal(await readFile(join(b2, 'address'), 'utf8'), expected);
    assert.deepEqual((await daemonsFor(address)).map((p) => p.pid), [daemon.pid], 'no new daemon');
  });

  // containerd 2.x takes the bootstrap JSON with task API v3 (then CRI runs no start/delete for a pod's other
  // containers); 1.7 refuses it. Both set MAX_SHIM_VERSION=2, so the answer follows -publish-binary's build.
  const v21 = containerdBinaries('2.1');
  const v17 = containerdBinaries('1.7');
  test('start answers task API v3 (bootstrap JSON) to containerd 2.1 only: with Node started, through a spare, and for a live group', { ...TIMEOUT, skip: v21 && v17 ? false : 'containerd 1.7/2.1 not fetched' }, async () => {
    const envFor = (spare: boolean): NodeJS.ProcessEnv => ({ ...withoutTestContext(), MAX_SHIM_VERSION: '2', CONTAINERD_SHIM_TS_SPARE: spare ? '1' : '0' });
    const argsFor = (id: string, publish: string) => ['-namespace', ns, '-address', address, '-publish-binary', publish, '-id', id, 'start'];
    for (const spare of [false, true]) {
      const id = uniqueId(spare ? 'v3s' : 'v3n');
      const b = await bundle(id);
      const r = await runShim(argsFor(id, v21!.containerd), { cwd: b, env: envFor(spare) });
      sockets.push(shimSocket(address, ns, id));
      assert.equal(r.code, 0, r.stderr);
      const expected = `unix://${shimSocket(address, ns, id)}`;
      assert.deepEqual(JSON.parse(r.stdout), { version: 3, address: expected, protocol: 'ttrpc' }, `spare ${spare}: ${r.stdout}`);
      assert.equal(await readFile(join(b, 'address'), 'utf8'), expected, 'the address file holds the bare address');
      // The daemon serves the v3 service it announced.
      const conn = await connectTask(shimSocket(address, ns, id), ns);
      try {
        const c = await conn.call('Connect', { id }, api.ConnectRequest, api.ConnectResponse, 'containerd.task.v3.Task');
        assert.ok(c.shimPid > 0);
      } finally {
        conn.close();
      }
      // A second start of the same group is answered the live daemon's address, in the same form.
      const again = await runShim(argsFor(id, v21!.containerd), { cwd: b, env: envFor(spare) });
      assert.equal(again.code, 0, again.stderr);
      assert.deepEqual(JSON.parse(again.stdout), { version: 3, address: expected, protocol: 'ttrpc' });
      // The same daemon asked by containerd 1.7 (or 1.6: no MAX_SHIM_VERSION): the plain address.
      const old = await runShim(argsFor(id, v17!.containerd), { cwd: b, env: envFor(spare) });
      assert.equal(old.stdout, expected, old.stderr);
      const env16 = envFor(spare);
      delete env16.MAX_SHIM_VERSION;
      const older = await runShim(argsFor(id, '/usr/bin/containerd'), { cwd: b, env: env16 });
      assert.equal(older.stdout, expected, older.stderr);
    }
    // A new daemon started for containerd 1.7 answers the plain address too.
    const id = uniqueId('v2');
    const b = await bundle(id);
    const r = await runShim(argsFor(id, v17!.containerd), { cwd: b, env: envFor(true) });
    sockets.push(shimSocket(address, ns, id));
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, `unix://${shimSocket(address, ns, id)}`);
  });

  test('start replaces a stale socket (nobody listening)', TIMEOUT, async () => {
    const id = uniqueId('stale');
    const b = await bundle(id);
    const first = await start(id, b);
    assert.equal(first.code, 0, first.stderr);
    const path = shimSocket(address, ns, id);
    const [d1] = (await daemonsFor(address)).filter((p) => p.argv.includes(id));
    assert.ok(d1);
    process.kill(d1.pid, 'SIGKILL');
    await waitFor(async () => !(await isAlive(d1.pid)), 10_000, 'daemon killed');
    assert.ok(existsSync(path), 'SIGKILL leaves the socket file behind');
    const second = await start(id, b);
    assert.equal(second.code, 0, second.stderr);
    assert.equal(second.stdout, first.stdout);
    const [d2] = (await daemonsFor(address)).filter((p) => p.argv.includes(id));
    assert.ok(d2 && d2.pid !== d1.pid, 'a new daemon');
    const conn = await connectTask(path, ns);
    try {
      const c = await conn.call('Connect', { id }, api.ConnectRequest, api.ConnectResponse);
      assert.equal(c.shimPid, d2.pid);
    } finally {
      conn.close();
    }
  });

  test('start with undecodable options on stdin fails (exit 1) and leaves no daemon and no socket', TIMEOUT, async () => {
    const id = uniqueId('badopt');
    const b = await bundle(id);
    const r = await start(id, b, { input: encodeAny({ typeUrl: 'example.com/no.Such', value: Buffer.from([1, 2, 3]) }) });
    assert.equal(r.code, 1);
    assert.equal(r.stdout, '');
    assert.match(r.stderr, /no\.Such/);
    await waitFor(async () => (await daemonsFor(address)).every((p) => !p.argv.includes(id)), 10_000, 'daemon killed after the failed start');
    assert.ok(!existsSync(shimSocket(address, ns, id)));
  });

  test('both containerd.task.v2.Task and containerd.task.v3.Task answer; SIGTERM with no container exits and removes the socket', TIMEOUT, async () => {
    const id = uniqueId('svc');
    const b = await bundle(id);
    assert.equal((await start(id, b)).code, 0);
    const path = shimSocket(address, ns, id);
    const [d] = (await daemonsFor(address)).filter((p) => p.argv.includes(id));
    assert.ok(d);
    const conn = await connectTask(path, ns);
    try {
      for (const service of ['containerd.task.v2.Task', 'containerd.task.v3.Task']) {
        const c = await conn.call('Connect', { id }, api.ConnectRequest, api.ConnectResponse, service);
        assert.equal(c.shimPid, d.pid, service);
        assert.equal(c.taskPid, 0, `${service}: unknown id → task pid 0`);
      }
    } finally {
      conn.close();
    }
    process.kill(d.pid, 'SIGTERM');
    await waitFor(async () => !(await isAlive(d.pid)), 20_000, 'daemon exits on SIGTERM');
    assert.ok(!existsSync(path), 'socket removed');
  });

  test('Shutdown with no container makes the daemon exit and remove its socket', TIMEOUT, async () => {
    const id = uniqueId('shut');
    const b = await bundle(id);
    assert.equal((await start(id, b)).code, 0);
    const path = shimSocket(address, ns, id);
    const [d] = (await daemonsFor(address)).filter((p) => p.argv.includes(id));
    assert.ok(d);
    const conn = await connectTask(path, ns);
    try {
      await conn.call('Shutdown', { id, now: false }, api.ShutdownRequest, Empty);
    } finally {
      conn.close();
    }
    await waitFor(async () => !(await isAlive(d.pid)), 20_000, 'daemon exits after Shutdown');
    assert.ok(!existsSync(path));
  });

  test('-info prints a containerd.types.RuntimeInfo with our name and the OCI features', async () => {
    const r = await runShim(['-info'], { cwd: '/' });
    assert.equal(r.code, 0, r.stderr);
    const info = RuntimeInfo.decode(r.stdoutBytes);
    assert.equal(info.name, 'io.containerd.ts.v2');
    assert.ok(info.version?.version);
    assert.ok(info.features, 'features Any present');
    assert.match(info.features.typeUrl, /opencontainers\/runtime-spec\/1\/features\/Features$/);
    const features = JSON.parse(Buffer.from(info.features.value).toString()) as { ociVersionMin?: string };
    assert.ok(features.ociVersionMin);
  });

  test('delete without a runc container: same DeleteResponse as the reference (status 137), exit 0; no runtime file → exit 1', TIMEOUT, async () => {
    const id = uniqueId('del');
    const b = await bundle(id);
    const args = ['-namespace', ns, '-address', address, '-publish-binary', '/usr/bin/containerd', '-id', id, '-bundle', b, 'delete'];
    const missing = await runShim(args, { cwd: b });
    const refMissing = await runShim(args, { cwd: b, binary: REFERENCE_SHIM });
    assert.equal(refMissing.code, 1);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /runtime/);
    await exec('sh', ['-c', ': > runtime'], { cwd: b });
    const before = Date.now();
    const ours = await runShim(args, { cwd: b });
    const ref = await runShim(args, { cwd: b, binary: REFERENCE_SHIM });
    assert.equal(ours.code, 0, ours.stderr);
    assert.equal(ref.code, 0, ref.stderr);
    const o = api.DeleteResponse.decode(ours.stdoutBytes);
    const rf = api.DeleteResponse.decode(ref.stdoutBytes);
    assert.equal(o.exitStatus, 137);
    assert.equal(o.pid, rf.pid);
    assert.equal(o.pid, 4294967295, 'no init.pid: -1 as uint32');
    assert.equal(o.exitStatus, rf.exitStatus);
    assert.ok(o.exitedAt && rf.exitedAt);
    assert.ok(Math.abs(o.exitedAt.seconds * 1000 - before) < 60_000, 'exited_at is now');
  });

  test('delete after the daemon was SIGKILLed with a running container: kills it, removes runc state, pid from init.pid', TIMEOUT, async () => {
    const id = uniqueId('kd');
    const b = await bundle(id);
    assert.equal((await start(id, b)).code, 0);
    const conn = await connectTask(shimSocket(address, ns, id), ns);
    let initPid: number;
    try {
      initPid = await createAndStart(conn, id, b);
    } finally {
      conn.close();
    }
    assert.ok(await isAlive(initPid));
    const [d] = (await daemonsFor(address)).filter((p) => p.argv.includes(id));
    assert.ok(d);
    process.kill(d.pid, 'SIGKILL');
    await waitFor(async () => !(await isAlive(d.pid)), 10_000, 'daemon killed');
    const r = await runShim(['-namespace', ns, '-address', address, '-publish-binary', '/usr/bin/containerd', '-id', id, '-bundle', b, 'delete'], { cwd: b });
    assert.equal(r.code, 0, r.stderr);
    const res = api.DeleteResponse.decode(r.stdoutBytes);
    assert.equal(res.pid, initPid);
    assert.equal(res.exitStatus, 137);
    await waitFor(async () => !(await isAlive(initPid)), 10_000, 'container process gone');
    const list = await exec('runc', ['--root', join(RUNC_STATE_ROOT, ns), 'list', '-q'], { allowFail: true });
    assert.ok(!list.stdout.split('\n').includes(id), `runc still knows ${id}`);
    assert.deepEqual(await mountsUnder(join(b, 'rootfs')), []);
    assert.equal(existsSync(shimSocket(address, ns, id)), false, 'the dead daemon\'s socket is removed');
  });

  test('delete keeps the socket of a live daemon (another container of its group may use it)', TIMEOUT, async () => {
    const id = uniqueId('kl');
    const b = await bundle(id);
    assert.equal((await start(id, b)).code, 0);
    const [d] = (await daemonsFor(address)).filter((p) => p.argv.includes(id));
    assert.ok(d);
    await exec('sh', ['-c', ': > runtime'], { cwd: b }); // written by Create; delete needs it
    const r = await runShim(['-namespace', ns, '-address', address, '-publish-binary', '/usr/bin/containerd', '-id', id, '-bundle', b, 'delete'], { cwd: b });
    assert.equal(r.code, 0, r.stderr);
    assert.ok(existsSync(shimSocket(address, ns, id)), 'socket kept');
    assert.ok(await isAlive(d.pid));
    const conn = await connectTask(shimSocket(address, ns, id), ns);
    try {
      await conn.call('Connect', { id }, api.ConnectRequest, api.ConnectResponse);
    } finally {
      conn.close();
    }
    process.kill(d.pid, 'SIGTERM');
    await waitFor(async () => !(await isAlive(d.pid)), 20_000, 'daemon exits on SIGTERM');
  });

  test('daemon logs go to the bundle log FIFO with container_id; debug lines only with -debug', TIMEOUT, async () => {
    for (const debug of [false, true]) {
      const id = uniqueId(debug ? 'logd' : 'logi');
      const b = await bundle(id, ['sleep', '600']);
      const fifo = new FifoReader(join(b, 'log'));
      try {
        assert.equal((await start(id, b, { debug })).code, 0);
        const conn = await connectTask(shimSocket(address, ns, id), ns);
        try {
          const pid = await createAndStart(conn, id, b);
          await conn.call('Kill', { id, execId: '', signal: 9, all: false }, api.KillRequest, Empty);
          await conn.call('Wait', { id, execId: '' }, api.WaitRequest, api.WaitResponse);
          await conn.call('Delete', { id, execId: '' }, api.DeleteRequest, api.DeleteResponse);
          assert.ok(!(await isAlive(pid)));
        } finally {
          conn.close();
        }
        const lines = await waitFor(() => {
          const l = fifo.lines();
          return l.some((x) => x.container_id === id) ? l : undefined;
        }, 10_000, 'log lines with container_id');
        assert.ok(lines.every((l) => l.runtime === 'io.containerd.ts.v2'));
        const levels = new Set(lines.map((l) => l.level));
        if (debug) assert.ok(levels.has(20), `no debug line with -debug: ${fifo.text()}`);
        else assert.ok(![...levels].some((lv) => typeof lv === 'number' && lv < 30), `debug lines without -debug: ${fifo.text()}`);
      } finally {
        fifo.close();
      }
    }
  });
});

const IMG = DEFAULT_IMAGE;
const short = (rt: Runtime) => (rt === 'io.containerd.ts.v2' ? 'ts' : 'runc');

async function cleanupTask(cd: Containerd, id: string): Promise<void> {
  await cd.ctr(['task', 'rm', '-f', id], { allowFail: true });
  await cd.ctr(['container', 'rm', id], { allowFail: true });
}

async function shimOf(cd: Containerd, id: string) {
  const p = (await cd.shimProcesses()).find((s) => {
    const i = s.argv.indexOf('-id');
    return i >= 0 && s.argv[i + 1] === id && !s.argv.includes('start') && !s.argv.includes('delete');
  });
  assert.ok(p, `shim daemon of ${id}`);
  return p;
}

for (const version of selectedVersions()) {
  describe(`shim binary through containerd ${version}`, () => {
    let cd: Containerd;
    before(async () => {
      cd = await startContainerd({ version, shimDirs: [shimBinDir()], debug: true });
      await importImage(cd);
    });
    after(async () => {
      await cd?.stop();
    });

    test('daemon log lines reach containerd\'s log with container_id; -debug is passed and debug lines appear', TIMEOUT, async () => {
      const id = uniqueId('log');
      await cd.ctr(['run', '-d', '--runtime', 'io.containerd.ts.v2', IMG, id, 'sleep', '600']);
      try {
        await waitTaskStatus(cd, id, 'RUNNING');
        const shim = await shimOf(cd, id);
        assert.ok(shim.argv.includes('-debug'), 'containerd at debug level passes -debug');
      } finally {
        await cleanupTask(cd, id);
      }
      const lines = await waitFor(async () => {
        const l = (await readFile(cd.logFile, 'utf8')).split('\n').filter((x) => x.includes(`"container_id":"${id}"`) && x.includes('"runtime":"io.containerd.ts.v2"'));
        return l.length > 0 ? l : undefined;
      }, 15_000, 'shim log lines in containerd\'s log');
      assert.ok(lines.some((l) => l.includes('"level":20')), 'a debug line');
      assert.ok(lines.some((l) => l.includes('"level":30')), 'an info line');
    });

    test(`ts: containerd ${version} is answered the task API it speaks (${version === '2.1' ? 'v3, bootstrap.json' : 'v2'}), and uses it`, TIMEOUT, async () => {
      const id = uniqueId('api');
      await cd.ctr(['run', '-d', '--runtime', 'io.containerd.ts.v2', IMG, id, 'sleep', '600']);
      try {
        await waitTaskStatus(cd, id, 'RUNNING');
        const bundleDir = join(cd.state, 'io.containerd.runtime.v2.task', cd.namespace, id);
        const address = await readFile(join(bundleDir, 'address'), 'utf8');
        if (version === '2.1') {
          // containerd 2.x records what `start` answered; 1.6 and 1.7 write no bootstrap.json.
          const boot = JSON.parse(await readFile(join(bundleDir, 'bootstrap.json'), 'utf8')) as Record<string, unknown>;
          assert.equal(boot.version, 3);
          assert.equal(boot.protocol, 'ttrpc');
          assert.equal(boot.address, address);
        } else {
          assert.ok(!existsSync(join(bundleDir, 'bootstrap.json')));
        }
        // The task API containerd picked works end to end: exec, kill, wait.
        const r = await cd.ctr(['task', 'exec', '--exec-id', 'e1', id, 'sh', '-c', 'echo api-ok']);
        assert.equal(r.stdout.trim(), 'api-ok');
      } finally {
        await cleanupTask(cd, id);
      }
    });

    test('ts: Shutdown while a container runs does not stop the daemon', TIMEOUT, async () => {
      const id = uniqueId('sd');
      await cd.ctr(['run', '-d', '--runtime', 'io.containerd.ts.v2', IMG, id, 'sleep', '600']);
      try {
        const t = await waitTaskStatus(cd, id, 'RUNNING');
        const shim = await shimOf(cd, id);
        const conn = await connectShim(cd, id);
        try {
          await conn.call('Shutdown', { id, now: false }, api.ShutdownRequest, Empty);
          await sleep(500);
          assert.ok(await isAlive(shim.pid), 'daemon still alive');
          const st = await conn.call('State', { id, execId: '' }, api.StateRequest, api.StateResponse);
          assert.equal(st.pid, t.pid);
          assert.equal(st.status, 2); // RUNNING
        } finally {
          conn.close();
        }
      } finally {
        await cleanupTask(cd, id);
      }
    });

    for (const rt of RUNTIMES) {
      test(`${short(rt)}: shim SIGKILLed while its container runs → containerd's cleanup (delete action) leaves nothing`, TIMEOUT, async () => {
        const id = uniqueId('kill');
        const events = await watchEventsReady(cd);
        await cd.ctr(['run', '-d', '--runtime', rt, IMG, id, 'sleep', '600']);
        try {
          const t = await waitTaskStatus(cd, id, 'RUNNING');
          const shim = await shimOf(cd, id);
          const bundleDir = join(cd.state, 'io.containerd.runtime.v2.task', cd.namespace, id);
          assert.ok((await mountsUnder(join(bundleDir, 'rootfs'))).length > 0, 'rootfs mounted');
          process.kill(shim.pid, 'SIGKILL');
          await waitFor(async () => !(await listTasks(cd)).some((x) => x.id === id), 30_000, 'task unregistered');
          await waitFor(async () => !(await isAlive(t.pid)), 15_000, 'container process gone');
          await waitFor(async () => (await mountsUnder(bundleDir)).length === 0, 15_000, 'no mount under the bundle');
          await waitFor(() => !existsSync(bundleDir), 15_000, 'bundle removed');
          const list = await exec('runc', ['--root', join(RUNC_STATE_ROOT, cd.namespace), 'list', '-q'], { allowFail: true });
          assert.ok(!list.stdout.split('\n').includes(id), `runc still knows ${id}`);
          const exit = await waitFor(() => events.lines().find((l) => l.includes('/tasks/exit') && l.includes(id)), 15_000, '/tasks/exit published by containerd');
          assert.match(exit, /137/);
        } finally {
          events.stop();
          await cleanupTask(cd, id);
        }
      });
    }

    test('ts: SIGTERM to the daemon while a container runs → it exits, removes its socket, containerd cleans up', TIMEOUT, async () => {
      const id = uniqueId('term');
      await cd.ctr(['run', '-d', '--runtime', 'io.containerd.ts.v2', IMG, id, 'sleep', '600']);
      try {
        const t = await waitTaskStatus(cd, id, 'RUNNING');
        const shim = await shimOf(cd, id);
        const socket = cd.shimSocketPath(cd.namespace, id);
        assert.ok(existsSync(socket));
        process.kill(shim.pid, 'SIGTERM');
        await waitFor(async () => !(await isAlive(shim.pid)), 30_000, 'daemon exits');
        assert.ok(!existsSync(socket), 'socket removed');
        await waitFor(async () => !(await listTasks(cd)).some((x) => x.id === id), 30_000, 'task unregistered');
        await waitFor(async () => !(await isAlive(t.pid)), 15_000, 'container process gone');
      } finally {
        await cleanupTask(cd, id);
      }
    });
  });
}
