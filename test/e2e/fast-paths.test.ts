/**
 * The wrapper's fast paths (scripts/shim-wrapper.sh) skip work only when there is nothing to do:
 * - `delete` answers without Node only when no runc state dir, no rootfs mount and no socket file exist (and
 *   no runc root of its own); each of these sends it to the full delete, which does the work.
 * - `start` hands the container to a warm spare daemon of the build; a spare that is gone or silent costs
 *   a fallback to starting Node, never a failed start.
 * A copy of the wrapper whose Node does not exist proves which path ran: the fast path still answers, the
 * full path cannot.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { chmod, mkdir, readFile, readdir, readlink, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import * as api from '../../protocol/gen/containerd/runtime/v2/task/shim.js';
import { Empty } from '../../protocol/gen/google/protobuf/empty.js';
import { exec, isAlive, listProcesses, makeTempDir, mountsUnder, uniqueId, waitFor } from '../harness/util.js';
import { FifoReader, RUNC_STATE_ROOT, SHIM_BIN, SHIM_SOCKET_DIR, cleanupByHand, connectTask, makeBundle, runShim, shimSocket } from '../fixtures/shim-by-hand.js';

const TIMEOUT = { timeout: 120_000 };

function env(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  // The starts here run from short-lived shells: their spares belong to this test process instead (a spare
  // exits once its owner, by default the start's parent, is gone).
  const e: NodeJS.ProcessEnv = { ...process.env, CONTAINERD_SHIM_TS_SPARE_OWNER: String(process.pid), ...extra };
  delete e.NODE_TEST_CONTEXT;
  return e;
}

/** The build id the wrapper looks for in spare FIFO names. */
async function buildId(): Promise<string> {
  const m = /ts-spare-([0-9a-f]+)-s"\$session"/.exec(await readFile(SHIM_BIN, 'utf8'));
  assert.ok(m, 'the wrapper names its build');
  return m[1]!;
}

/**
 * Runs `script` (sh) in a mount namespace of its own with a fresh /run/containerd/s, so that a fake spare
 * there is seen by no other test's start.
 */
function inPrivateSocketDir(script: string, scriptEnv: NodeJS.ProcessEnv): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn('unshare', ['--mount', '--propagation', 'private', 'sh', '-c', `mount -t tmpfs shim-sockets ${SHIM_SOCKET_DIR} || exit 1\n${script}`], {
      env: scriptEnv,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (b: Buffer) => (out += b.toString()));
    child.stderr.on('data', (b: Buffer) => (out += b.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, out }));
  });
}


/**
 * SIGTERM to every process in the mount namespace `mntNs` (`readlink /proc/self/ns/mnt` of an
 * inPrivateSocketDir script): the daemons and spares it left, whose sockets are in its private dir.
 */
async function terminateMountNamespace(mntNs: string): Promise<void> {
  if (!mntNs) return;
  for (const p of await listProcesses()) {
    if ((await readlink(`/proc/${p.pid}/ns/mnt`).catch(() => '')) === mntNs) process.kill(p.pid, 'SIGTERM');
  }
}
describe('delete fast path', () => {
  let tmp: string;
  let noNode: string; // the wrapper with a Node that does not exist
  const ns = uniqueId('fd');
  const address = '/run/fast-paths-test.sock';

  before(async () => {
    tmp = await makeTempDir('fastdel-');
    noNode = join(tmp, 'containerd-shim-ts-v2');
    const text = await readFile(SHIM_BIN, 'utf8');
    assert.match(text, /^node='[^']+'$/m);
    await writeFile(noNode, text.replace(/^node='[^']+'$/m, "node='/nonexistent/node'"));
    await chmod(noNode, 0o755);
  });
  after(async () => {
    await rm(tmp, { recursive: true, force: true });
  });

  /** A bundle as containerd leaves it after a clean teardown: the files the shim wrote, nothing mounted. */
  async function cleanBundle(id: string, initPid = '4242'): Promise<string> {
    const b = join(tmp, ns, id);
    await mkdir(join(b, 'rootfs'), { recursive: true });
    await writeFile(join(b, 'runtime'), 'runc');
    await writeFile(join(b, 'options.json'), '{"binary_name":"runc"}');
    await writeFile(join(b, 'init.pid'), initPid);
    await writeFile(join(b, 'address'), `unix://${shimSocket(address, ns, id)}`);
    return b;
  }

  const args = (id: string, b: string) => ['-namespace', ns, '-address', address, '-publish-binary', '/usr/bin/containerd', '-id', id, '-bundle', b, 'delete'];

  test('nothing to do: answered without Node, as the full delete answers', TIMEOUT, async () => {
    const id = uniqueId('clean');
    const b = await cleanBundle(id);
    const before = Date.now();
    const fast = await runShim(args(id, b), { cwd: b, binary: noNode, env: env() });
    assert.equal(fast.code, 0, fast.stderr);
    assert.equal(fast.stderr, '');
    const r = api.DeleteResponse.decode(fast.stdoutBytes);
    assert.equal(r.pid, 4242);
    assert.equal(r.exitStatus, 137);
    const at = Number(r.exitedAt!.seconds) * 1000 + r.exitedAt!.nanos / 1e6;
    assert.ok(at >= before - 1000 && at <= Date.now() + 1000, `exited_at is now: ${at} vs ${before}`);
    // The full delete gives the same answer (exited_at aside).
    const full = await runShim(args(id, b), { cwd: b, env: env({ CONTAINERD_SHIM_TS_NO_FAST_DELETE: '1' }) });
    assert.equal(full.code, 0, full.stderr);
    const rf = api.DeleteResponse.decode(full.stdoutBytes);
    assert.deepEqual({ pid: rf.pid, exitStatus: rf.exitStatus }, { pid: r.pid, exitStatus: r.exitStatus });
    // Without init.pid: pid -1 as uint32, as the full delete.
    await rm(join(b, 'init.pid'));
    const noPid = api.DeleteResponse.decode((await runShim(args(id, b), { cwd: b, binary: noNode, env: env() })).stdoutBytes);
    assert.equal(noPid.pid, 4294967295);
  });

  test('a runc state dir sends it to the full delete', TIMEOUT, async () => {
    const id = uniqueId('state');
    const b = await cleanBundle(id);
    const state = join(RUNC_STATE_ROOT, ns, id);
    await mkdir(state, { recursive: true });
    try {
      const fast = await runShim(args(id, b), { cwd: b, binary: noNode, env: env() });
      assert.notEqual(fast.code, 0, 'the fast path must not answer while runc has state');
    } finally {
      await rm(join(RUNC_STATE_ROOT, ns), { recursive: true, force: true });
    }
  });

  test('a mounted rootfs sends it to the full delete, which unmounts it', TIMEOUT, async () => {
    const id = uniqueId('mnt');
    const b = await cleanBundle(id);
    await exec('mount', ['-t', 'tmpfs', 'fastpath-test', join(b, 'rootfs')]);
    try {
      const fast = await runShim(args(id, b), { cwd: b, binary: noNode, env: env() });
      assert.notEqual(fast.code, 0, 'the fast path must not answer while the rootfs is mounted');
      assert.equal((await mountsUnder(join(b, 'rootfs'))).length, 1);
      const full = await runShim(args(id, b), { cwd: b, env: env() });
      assert.equal(full.code, 0, full.stderr);
      assert.deepEqual(await mountsUnder(join(b, 'rootfs')), [], 'the full delete unmounted the rootfs');
    } finally {
      await exec('umount', [join(b, 'rootfs')]).catch(() => undefined);
    }
  });

  test('a socket file, a runc root of its own, or odd arguments send it to the full delete', TIMEOUT, async () => {
    const id = uniqueId('sock');
    const b = await cleanBundle(id);
    const sock = shimSocket(address, ns, id);
    await mkdir(SHIM_SOCKET_DIR, { recursive: true });
    await writeFile(sock, '');
    try {
      assert.notEqual((await runShim(args(id, b), { cwd: b, binary: noNode, env: env() })).code, 0, 'socket file present');
    } finally {
      await rm(sock, { force: true });
    }
    assert.equal((await runShim(args(id, b), { cwd: b, binary: noNode, env: env() })).code, 0, 'and without it, the fast path');
    await writeFile(join(b, 'options.json'), '{"binary_name":"runc","root":"/run/elsewhere"}');
    assert.notEqual((await runShim(args(id, b), { cwd: b, binary: noNode, env: env() })).code, 0, 'options.json with a root');
    await writeFile(join(b, 'options.json'), '{"binary_name":"runc"}');
    const odd = ['-namespace', ns, '-unknown-flag', 'x', '-id', id, '-bundle', b, 'delete'];
    assert.notEqual((await runShim(odd, { cwd: b, binary: noNode, env: env() })).code, 0, 'a flag it does not know');
    assert.notEqual((await runShim(args('../x', b), { cwd: b, binary: noNode, env: env() })).code, 0, 'an id that is not an identifier');
    await rm(join(b, 'runtime'));
    assert.notEqual((await runShim(args(id, b), { cwd: b, binary: noNode, env: env() })).code, 0, 'no runtime file');
  });
});

describe('start through a warm spare daemon', () => {
  let tmp: string;
  const ns = uniqueId('sp');
  const address = '/run/spare-test-containerd.sock';
  const ids: string[] = [];
  const sockets: string[] = [];

  before(async () => {
    tmp = await makeTempDir('spare-');
  });
  after(async () => {
    await cleanupByHand({ address, namespace: ns, tmp, ids, sockets });
  });

  async function bundle(id: string): Promise<string> {
    ids.push(id);
    sockets.push(shimSocket(address, ns, id));
    return makeBundle(join(tmp, ns), id, { args: ['sleep', '600'] });
  }

  const startArgs = (id: string) => ['-namespace', ns, '-address', address, '-publish-binary', '/usr/bin/containerd', '-id', id, 'start'];

  async function liveSpares(build: string): Promise<number[]> {
    const names = await readdir(SHIM_SOCKET_DIR).catch(() => [] as string[]);
    const pids = names.map((n) => new RegExp(`^ts-spare-${build}-s\\d+-(\\d+)$`).exec(n)?.[1]).filter((p) => p !== undefined).map(Number);
    const alive = await Promise.all(pids.map((p) => isAlive(p)));
    return pids.filter((_, i) => alive[i]);
  }

  /** Starts `id` by hand (stdin a pipe, as containerd) and returns the daemon's pid from Connect. */
  async function startAndConnect(id: string, b: string, extraEnv: Record<string, string> = {}): Promise<{ pid: number; ms: number }> {
    const log = new FifoReader(join(b, 'log'));
    try {
      const t0 = performance.now();
      const r = await runShim(startArgs(id), { cwd: b, input: '', env: env(extraEnv) });
      const ms = performance.now() - t0;
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout, `unix://${shimSocket(address, ns, id)}`);
      const conn = await connectTask(shimSocket(address, ns, id), ns);
      try {
        const res = await conn.call('Connect', { id }, api.ConnectRequest, api.ConnectResponse);
        return { pid: res.shimPid, ms };
      } finally {
        conn.close();
      }
    } finally {
      log.close();
    }
  }

  async function shutdown(id: string, pid: number): Promise<void> {
    const conn = await connectTask(shimSocket(address, ns, id), ns);
    try {
      await conn.call('Shutdown', { id, now: false }, api.ShutdownRequest, Empty).catch(() => undefined);
    } finally {
      conn.close();
    }
    await waitFor(async () => !(await isAlive(pid)), 20_000, `daemon ${pid} exits after Shutdown`);
  }

  for (const forks of [true, false]) {
    const how = forks ? 'forks a daemon for the start and stays a spare' : 'becomes the daemon (CONTAINERD_SHIM_TS_SPARE_FORK=0)';
    test(`a spare ${how}: same answer, the start's cwd, cgroups, OOM score and a daemon's title`, TIMEOUT, async () => {
      const build = await buildId();
      const id0 = uniqueId('sp0');
      const id1 = uniqueId('sp1');
      const id2 = uniqueId('sp2');
      const [b0, b1, b2] = [await bundle(id0), await bundle(id1), await bundle(id2)];
      // In a socket dir of its own, so that no other test's start takes the spare first. The first start
      // runs Node and leaves a spare; the second is the spare's; the third is the spare's again (forking) or
      // Node's or the next spare's.
      const start = (id: string) => `printf '' | '${SHIM_BIN}' ${startArgs(id).join(' ')}`;
      const script = [
        forks ? '' : 'export CONTAINERD_SHIM_TS_SPARE_FORK=0',
        `exec 9<'${join(b0, 'log')}' 8<'${join(b1, 'log')}' 7<'${join(b2, 'log')}'`.replace(/</g, '<>'),
        `echo "mntns=$(readlink /proc/self/ns/mnt)"`,
        `cd '${b0}' && echo "addr0=$(${start(id0)})"`,
        `i=0; until ls ${SHIM_SOCKET_DIR} | grep -q '^ts-spare-${build}-s[0-9]*-[0-9]*$'; do sleep 0.1; i=$((i+1)); [ $i -lt 300 ] || break; done`,
        `sp=$(ls ${SHIM_SOCKET_DIR} | grep '^ts-spare-${build}-s[0-9]*-[0-9]*$' | head -1); echo "spare=\${sp##*-}"`,
        `cd '${b1}' && echo "addr1=$(${start(id1)})"`,
        `echo "left=$(ls ${SHIM_SOCKET_DIR} | grep -c "^$sp$")"`,
        `cd '${b2}' && echo "addr2=$(${start(id2)})"`,
      ].join('\n');
      const r = await inPrivateSocketDir(script, env());
      const field = (k: string) => new RegExp(`^${k}=(.*)$`, 'm').exec(r.out)?.[1] ?? '';
      try {
        assert.equal(r.code, 0, r.out);
        assert.equal(field('addr0'), `unix://${shimSocket(address, ns, id0)}`, r.out);
        assert.equal(field('addr1'), `unix://${shimSocket(address, ns, id1)}`, r.out);
        assert.equal(field('addr2'), `unix://${shimSocket(address, ns, id2)}`, r.out);
        const spare = Number(field('spare'));
        assert.ok(spare > 0, `a spare was started: ${r.out}`);
        const title = (id: string) => `containerd-shim-ts-v2 -namespace ${ns} -id ${id} -address ${address}`;
        const procs = await listProcesses();
        // A spare's daemon shows the daemon's title; one Node started for a start has node's command line.
        const daemonOf = (id: string) =>
          procs.find((p) => p.argv.join(' ') === title(id) || (p.argv.includes(id) && p.argv.some((a) => a.endsWith('.cjs')) && !p.argv.includes('start')))?.pid ?? 0;
        const [pid, pid2] = [daemonOf(id1), daemonOf(id2)];
        assert.ok(pid > 0 && pid2 > 0, `the daemons of ${id1} and ${id2} run: ${procs.filter((p) => p.argv.join(' ').includes(ns)).map((p) => `${p.pid} ${p.argv.join(' ')}`).join('; ')}`);
        if (forks) {
          assert.equal(field('left'), '1', 'the spare still offers its FIFO');
          assert.ok(await isAlive(spare), 'the spare is still a spare');
          assert.notEqual(pid, spare);
          assert.notEqual(pid2, spare);
          const ppid = procs.find((p) => p.pid === pid)?.ppid;
          assert.notEqual(ppid, spare, 'the daemon is not the spare\'s child');
          assert.equal((await readFile(`/proc/${spare}/cmdline`, 'utf8')).split('\0').includes('spare'), true, 'the spare keeps its title');
        } else {
          assert.equal(field('left'), '0', 'the spare\'s FIFO is gone once it took the start');
          assert.equal(pid, spare, 'the spare became the daemon');
        }
        assert.equal(procs.find((p) => p.pid === pid)?.argv.join(' '), title(id1), 'the spare\'s daemon shows a daemon\'s title');
        assert.equal(await readlink(`/proc/${pid}/cwd`), b1);
        assert.equal(await readlink(`/proc/${pid2}/cwd`), b2);
        // The start's parent (the script, which this test process started) stands for containerd.
        assert.equal(await readFile(`/proc/${pid}/cgroup`, 'utf8'), await readFile('/proc/self/cgroup', 'utf8'));
        const ours = parseInt(await readFile('/proc/self/oom_score_adj', 'utf8'), 10);
        assert.equal(parseInt(await readFile(`/proc/${pid}/oom_score_adj`, 'utf8'), 10), Math.min(1000, ours + 1));
        // Every thread (Linux keeps policy and nice per thread): the spare started at idle priority (SCHED_IDLE,
        // nice 19) and serves at the start's (SCHED_OTHER, nice 0).
        const stat = async (path: string) => (await readFile(path, 'utf8')).split(') ')[1]!.split(' ');
        for (const tid of await readdir(`/proc/${pid}/task`)) {
          const f = await stat(`/proc/${pid}/task/${tid}/stat`);
          assert.deepEqual({ tid, policy: Number(f[38]), nice: Number(f[16]) }, { tid, policy: 0, nice: 0 });
        }
        // Its own process group, in the session of the start's caller (as the reference's daemon: no session of
        // its own, which would be a scheduling group of its own under autogroup; platform/detach.ts).
        const [daemonStat, ourStat] = [await stat(`/proc/${pid}/stat`), await stat('/proc/self/stat')];
        assert.equal(Number(daemonStat[2]), pid, 'leads its own process group');
        assert.equal(daemonStat[3], ourStat[3], 'in the session it was started in');
        // The daemon serves: Shutdown through its socket (in the private dir: reached by the daemon's root).
        const sock = join(`/proc/${pid}/root`, shimSocket(address, ns, id1));
        const conn = await connectTask(sock, ns);
        try {
          const res = await conn.call('Connect', { id: id1 }, api.ConnectRequest, api.ConnectResponse);
          assert.equal(res.shimPid, pid, 'Connect tells the daemon\'s own pid');
          await conn.call('Shutdown', { id: id1, now: false }, api.ShutdownRequest, Empty).catch(() => undefined);
        } finally {
          conn.close();
        }
        // It exits by itself after Shutdown, with no crash of Node's teardown (fork.ts): gone, not a zombie.
        await waitFor(async () => !(await isAlive(pid)), 20_000, `daemon ${pid} exits after Shutdown`);
        if (forks) assert.ok(await isAlive(spare), 'the spare outlives the daemons it forked');
      } finally {
        // Their sockets are in the private dir: no Shutdown from here. The daemons and the spare go on SIGTERM:
        // every process left in that mount namespace.
        await terminateMountNamespace(field('mntns'));
      }
    });
  }

  test('a daemon forked for a start that fails before answering says no at once: Node is started, no 5 s wait', TIMEOUT, async () => {
    const build = await buildId();
    const id0 = uniqueId('fk0');
    const id1 = uniqueId('fk1');
    const [b0, b1] = [await bundle(id0), await bundle(id1)];
    // The second start's socket path is a directory: the forked daemon cannot listen there and ends before it
    // answered; so does the Node the wrapper starts next, which says why.
    const start = (id: string) => `printf '' | '${SHIM_BIN}' ${startArgs(id).join(' ')}`;
    const script = [
      `exec 9<>'${join(b0, 'log')}' 8<>'${join(b1, 'log')}'`,
      `echo "mntns=$(readlink /proc/self/ns/mnt)"`,
      `cd '${b0}' && echo "addr0=$(${start(id0)})"`,
      `i=0; until ls ${SHIM_SOCKET_DIR} | grep -q '^ts-spare-${build}-s[0-9]*-[0-9]*$'; do sleep 0.1; i=$((i+1)); [ $i -lt 300 ] || break; done`,
      `mkdir -p '${shimSocket(address, ns, id1)}'`,
      // Its stdout a pipe, as containerd's (the test's own stdout is a socket, which the wrapper does not hand a spare).
      `cd '${b1}' && out1=$(${start(id1)}); echo "rc1=$?"`,
      `echo "claims=$(ls -a '${b1}' | grep -c '^.start-answer.')"`,
      `echo "spares=$(ls ${SHIM_SOCKET_DIR} | grep -c '^ts-spare-${build}-s[0-9]*-[0-9]*$')"`,
    ].join('\n');
    const r = await inPrivateSocketDir(script, env());
    const field = (k: string) => new RegExp(`^${k}=(.*)$`, 'm').exec(r.out)?.[1] ?? '';
    try {
      assert.equal(r.code, 0, r.out);
      assert.equal(field('addr0'), `unix://${shimSocket(address, ns, id0)}`, r.out);
      assert.equal(field('spares'), '1', `a forking spare waited: ${r.out}`);
      assert.notEqual(field('rc1'), '0', `the start fails: ${r.out}`);
      // Had the wrapper waited out the silence, it would have claimed the answer (.start-answer.<pid>) first.
      assert.equal(field('claims'), '0', `the wrapper did not wait for a silent spare: ${r.out}`);
      assert.match(r.out, /start: /, 'Node said why on stderr');
    } finally {
      await terminateMountNamespace(field('mntns'));
    }
  });

  test('CONTAINERD_SHIM_TS_SPARE=0: Node starts, no spare is used or started', TIMEOUT, async () => {
    const build = await buildId();
    const before = await liveSpares(build);
    const id = uniqueId('nosp');
    const d = await startAndConnect(id, await bundle(id), { CONTAINERD_SHIM_TS_SPARE: '0' });
    assert.ok(!before.includes(d.pid), 'not served by a spare');
    assert.match(await readFile(`/proc/${d.pid}/cmdline`, 'utf8'), /containerd-shim-ts-v2\.cjs\0/);
    await shutdown(id, d.pid);
  });

  test('CONTAINERD_SHIM_TS_GROUP: a start keeps no spare (one daemon per namespace), unless CONTAINERD_SHIM_TS_SPARE=1', TIMEOUT, async () => {
    const build = await buildId();
    const key = uniqueId('grp');
    // Two starts in a socket dir of their own, so that no other test's spare is seen: the wrapper makes its
    // spare (the .booting mark, then the FIFO) before the start exits, so what is there right after is all.
    const ids = [uniqueId('gns'), uniqueId('gsp')];
    const bundles = [await bundle(ids[0]!), await bundle(ids[1]!)];
    const spares = `ls -a ${SHIM_SOCKET_DIR} | grep -c '^ts-spare-${build}'`;
    const start = (i: number, spare: string) =>
      `(cd '${bundles[i]}' && printf '' | CONTAINERD_SHIM_TS_GROUP=${key}-${i} ${spare} '${SHIM_BIN}' ${startArgs(ids[i]!).join(' ')})`;
    const script = [
      `exec 9<>'${join(bundles[0]!, 'log')}' 8<>'${join(bundles[1]!, 'log')}'`,
      `echo "mntns=$(readlink /proc/self/ns/mnt)"`,
      `echo "addr0=$( ${start(0, '')})"`,
      `echo "spares0=$(${spares})"`,
      `echo "addr1=$( ${start(1, 'CONTAINERD_SHIM_TS_SPARE=1')})"`,
      `echo "spares1=$(${spares})"`,
    ].join('\n');
    const r = await inPrivateSocketDir(script, env());
    const field = (k: string) => new RegExp(`^${k}=(.*)$`, 'm').exec(r.out)?.[1] ?? '';
    try {
      assert.equal(r.code, 0, r.out);
      assert.match(field('addr0'), /^unix:\/\//, r.out);
      assert.match(field('addr1'), /^unix:\/\//, r.out);
      assert.equal(field('spares0'), '0', `no spare under CONTAINERD_SHIM_TS_GROUP: ${r.out}`);
      assert.ok(Number(field('spares1')) >= 1, `CONTAINERD_SHIM_TS_SPARE=1 keeps one: ${r.out}`);
    } finally {
      // Both daemons and the spare live in the script's mount namespace (their sockets are in its private dir).
      await terminateMountNamespace(field('mntns'));
    }
  });

  test('a spare that is gone, or takes the start and says nothing, costs a fallback to Node, not the start', TIMEOUT, async () => {
    const build = await buildId();
    const id = uniqueId('fake');
    const b = await bundle(id);
    // One FIFO of a dead pid, one of a live process that never answers (sleep). The start must still
    // succeed: the dead one at once, the silent one after the wrapper's 5 s wait.
    const script = [
      `sleep 60 & silent=$!`,
      // Spares are per session: the start's is this shell's (its comm, sh, has no space to shift the fields).
      `sid=$(cut -d' ' -f6 /proc/$$/stat)`,
      `mkfifo ${SHIM_SOCKET_DIR}/ts-spare-${build}-s$sid-999999 ${SHIM_SOCKET_DIR}/ts-spare-${build}-s$sid-$silent`,
      `cd '${b}'`,
      `t0=$(date +%s%N)`,
      `addr=$(printf '' | CONTAINERD_SHIM_TS_SPARE_DELAY_MS=600000 '${SHIM_BIN}' ${startArgs(id).join(' ')})`,
      `rc=$?`,
      `t1=$(date +%s%N)`,
      `echo "rc=$rc ms=$(( (t1 - t0) / 1000000 )) addr=$addr"`,
      `ls -a | grep -q '^.start-answer.' && echo claimed`,
      `pkill -f '[c]ontainerd-shim-ts-v2.cjs.* -id ${id}'`,
      `kill $silent`,
    ].join('; ');
    const r = await inPrivateSocketDir(script, env());
    assert.equal(r.code, 0, r.out);
    const m = /rc=(\d+) ms=(\d+) addr=(\S*)/.exec(r.out);
    assert.ok(m, r.out);
    assert.equal(m[1], '0', r.out);
    assert.equal(m[3], `unix://${shimSocket(address, ns, id)}`);
    assert.ok(Number(m[2]) >= 4500, `waited for the silent spare before falling back: ${r.out}`);
    assert.match(r.out, /claimed/, 'the wrapper claimed the answer before starting Node');
  });
});

describe('spare lifetime', () => {
  test('a spare exits once the containerd that started it (its owner) is gone', TIMEOUT, async () => {
    const build = await buildId();
    const loader = join(SHIM_BIN, '..', 'containerd-shim-ts-v2.cjs');
    // A sleep stands for the containerd; the spare waits while it lives and goes within a watch (5 s) after.
    const script = [
      `sleep 120 & owner=$!`,
      `CONTAINERD_SHIM_TS_SPARE_OWNER=$owner '${process.execPath}' --v8-pool-size=1 '${loader}' spare </dev/null >/dev/null 2>&1 & p=$!`,
      `sid=$(cut -d' ' -f6 /proc/$$/stat)`,
      `i=0; while [ ! -p ${SHIM_SOCKET_DIR}/ts-spare-${build}-s$sid-$p ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done`,
      `sleep 6; kill -0 $p && echo "alive with its owner"`,
      `kill $owner; t0=$(date +%s)`,
      `wait $p; echo "rc=$? after $(( $(date +%s) - t0 )) s"`,
      `ls -A ${SHIM_SOCKET_DIR} | grep -c . || true`,
    ].join('; ');
    const r = await inPrivateSocketDir(script, env());
    assert.equal(r.code, 0, r.out);
    assert.match(r.out, /alive with its owner\n/, r.out);
    const m = /rc=0 after (\d+) s\n0\n/.exec(r.out);
    // A watch every 5 s; far below the idle timeout (600 s), with room for a loaded machine.
    assert.ok(m && Number(m[1]) <= 20, `exits within a watch or so once its owner is gone, and removes its FIFO: ${r.out}`);
  });

  test('a spare exits after its idle timeout and removes its FIFO', TIMEOUT, async () => {
    const build = await buildId();
    const loader = join(SHIM_BIN, '..', 'containerd-shim-ts-v2.cjs');
    // In a socket dir of its own: no other test's start can take this spare while it waits.
    const script = [
      `CONTAINERD_SHIM_TS_SPARE_IDLE_TIMEOUT=1 '${process.execPath}' --v8-pool-size=1 '${loader}' spare </dev/null >/dev/null 2>&1 & p=$!`,
      `sid=$(cut -d' ' -f6 /proc/$$/stat)`,
      `i=0; while [ ! -p ${SHIM_SOCKET_DIR}/ts-spare-${build}-s$sid-$p ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done`,
      `[ -p ${SHIM_SOCKET_DIR}/ts-spare-${build}-s$sid-$p ] && echo waiting`,
      `wait $p; echo "rc=$?"`,
      `ls -A ${SHIM_SOCKET_DIR} | grep -c . || true`,
    ].join('; ');
    const t0 = performance.now();
    const r = await inPrivateSocketDir(script, env());
    assert.equal(r.code, 0, r.out);
    assert.match(r.out, /waiting\nrc=0\n0\n/, r.out);
    assert.ok(performance.now() - t0 < 30_000);
  });
});
