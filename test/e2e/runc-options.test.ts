/**
 * runc options (shim-v2-protocol.md §6.5): containerd.runc.v1.Options and the older
 * containerd.linux.runc.CreateOptions. `ctr` passes runc options only to a runtime named
 * io.containerd.runc.v2, so through containerd our binary is installed under that name (the drop-in mode);
 * the rest calls Create directly on shims started by hand, ours and the reference side by side.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, readFile, readdir, rmdir, stat, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import * as api from '../../protocol/gen/containerd/runtime/v2/task/shim.js';
import { Empty } from '../../protocol/gen/google/protobuf/empty.js';
import { listTasks, selectedVersions, startContainerd, waitTaskStatus, type Containerd } from '../harness/containerd.js';
import { DEFAULT_IMAGE, importImage } from '../harness/image.js';
import { exec, isAlive, makeTempDir, processPostMortem, removeDir, uniqueId, waitFor } from '../harness/util.js';
import {
  FifoReader,
  REFERENCE_SHIM,
  SHIM_BIN,
  cleanupByHand,
  connectTask,
  createAndStart,
  daemonsFor,
  encodeAny,
  installRecorder,
  legacyOptionsAny,
  makeBundle,
  runShim,
  runcOptionsAny,
  shimSocket,
} from '../fixtures/shim-by-hand.js';

const TIMEOUT = { timeout: 240_000 };
const IMG = DEFAULT_IMAGE;
const BINARIES = [
  { name: 'ts', path: SHIM_BIN },
  { name: 'reference', path: REFERENCE_SHIM },
] as const;

async function bundleFile(cd: Containerd, id: string, name: string): Promise<string> {
  return readFile(join(cd.state, 'io.containerd.runtime.v2.task', cd.namespace, id, name), 'utf8');
}

async function removeTask(cd: Containerd, id: string): Promise<void> {
  await cd.ctr(['task', 'rm', '-f', id], { allowFail: true });
  await cd.ctr(['container', 'rm', id], { allowFail: true });
}

/** The runc subcommand of a recorded command line (first word that is not a global flag or its value). */
function subcommand(line: string): string {
  const words = line.split(' ');
  for (let i = 0; i < words.length; i++) {
    const w = words[i]!;
    if (w === '--root' || w === '--log' || w === '--log-format' || w === '--criu') i++;
    else if (!w.startsWith('--')) return w;
  }
  return '';
}

for (const version of selectedVersions()) {
  describe(`runc options through containerd ${version}, our binary installed as containerd-shim-runc-v2`, () => {
    let dir: string;
    let ours: Containerd;
    let ref: Containerd;
    let rec: Awaited<ReturnType<typeof installRecorder>>;

    before(async () => {
      dir = await makeTempDir('ro-');
      const drop = join(dir, 'bin');
      await mkdir(drop);
      await symlink(SHIM_BIN, join(drop, 'containerd-shim-runc-v2'));
      await symlink(SHIM_BIN, join(drop, 'containerd-shim-ts-v2'));
      rec = await installRecorder(dir, 'runc-rec');
      ours = await startContainerd({ version, shimDirs: [drop] });
      ref = await startContainerd({ version });
      await Promise.all([importImage(ours), importImage(ref)]);
    });
    after(async () => {
      await ours?.stop();
      await ref?.stop();
      if (dir) await removeDir(dir);
    });

    test('--runc-binary and --runc-root reach runc; runtime and options.json as the reference writes them', TIMEOUT, async () => {
      const runcRoot = join(dir, 'runc-root');
      const files: Record<string, { runtime: string; options: string; calls: string[] }> = {};
      for (const [name, cd] of [['ts', ours], ['reference', ref]] as const) {
        const id = uniqueId(`rb-${name}`);
        const before = (await rec.calls()).length;
        await cd.ctr(['run', '-d', '--runc-binary', rec.path, '--runc-root', runcRoot, IMG, id, 'sleep', '600']);
        try {
          await waitTaskStatus(cd, id, 'RUNNING');
          if (name === 'ts') {
            const shims = await cd.shimProcesses();
            assert.ok(shims.some((p) => p.argv.some((a) => a.includes('containerd-shim-ts-v2'))), 'the drop-in is our binary');
          }
          files[name] = { runtime: await bundleFile(cd, id, 'runtime'), options: await bundleFile(cd, id, 'options.json'), calls: [] };
        } finally {
          await removeTask(cd, id);
        }
        // The delete action containerd runs after the teardown reads runtime/options.json back.
        await waitFor(async () => (await rec.calls()).slice(before).some((l) => l.includes(` delete --force ${id}`)), 15_000, `delete --force of ${id}`);
        files[name]!.calls = (await rec.calls()).slice(before).filter((l) => l.endsWith(` ${id}`));
      }
      const o = files.ts!;
      const r = files.reference!;
      assert.equal(o.runtime, rec.path);
      assert.equal(o.runtime, r.runtime);
      assert.equal(o.options, r.options);
      assert.deepEqual(JSON.parse(o.options), { binary_name: rec.path, root: runcRoot });
      for (const line of o.calls) assert.ok(line.startsWith(`--root ${join(runcRoot, ours.namespace)} `), line);
      const subs = o.calls.map(subcommand);
      for (const s of ['create', 'start', 'delete']) assert.ok(subs.includes(s), `${s} in ${subs.join(',')}`);
      assert.deepEqual(new Set(subs), new Set(r.calls.map(subcommand)), 'same runc subcommands as the reference');
    });

    test('--no-pivot: runc Options for io.containerd.runc.v2, legacy CreateOptions for io.containerd.ts.v2', TIMEOUT, async (t) => {
      for (const runtime of ['io.containerd.runc.v2', 'io.containerd.ts.v2']) {
        const id = uniqueId('np');
        // ctr needs our runtime on PATH for io.containerd.ts.v2: the drop-in dir has it too.
        await ours.ctr(['run', '-d', '--runtime', runtime, '--no-pivot', IMG, id, 'sleep', '600']);
        try {
          await waitTaskStatus(ours, id, 'RUNNING');
          assert.deepEqual(JSON.parse(await bundleFile(ours, id, 'options.json')), { no_pivot_root: true }, runtime);
          assert.equal(await bundleFile(ours, id, 'runtime'), '');
        } finally {
          await removeTask(ours, id);
        }
      }
      t.diagnostic('ctr sends containerd.linux.runc.CreateOptions for runtimes not named io.containerd.runc.*');
    });

    test('--runc-systemd-cgroup reaches runc (runs only where systemd does)', TIMEOUT, async (t) => {
      const id = uniqueId('sdc');
      const before = (await rec.calls()).length;
      const r = await ours.ctr(['run', '-d', '--runc-binary', rec.path, '--runc-systemd-cgroup', '--cgroup', `shimtest.slice:shimtest:${id}`, IMG, id, 'sleep', '600'], {
        allowFail: true,
        timeoutMs: 120_000,
      });
      try {
        const create = (await rec.calls()).slice(before).find((l) => subcommand(l) === 'create' && l.endsWith(` ${id}`));
        assert.ok(create, 'runc create was called');
        assert.match(create, / --systemd-cgroup /);
        if (r.code === 0) {
          await waitTaskStatus(ours, id, 'RUNNING');
        } else {
          assert.match(r.stderr, /systemd/);
          t.diagnostic(`systemd cgroups unavailable on this host, as expected: ${r.stderr.trim()}`);
        }
      } finally {
        await removeTask(ours, id);
      }
    });

    test('--runc-binary crun: runs where the host allows, otherwise fails promptly with crun\'s error, like the reference', TIMEOUT, async (t) => {
      const outcome: Record<string, { code: number | null; stderr: string }> = {};
      for (const [name, cd] of [['ts', ours], ['reference', ref]] as const) {
        const id = uniqueId(`crun-${name}`);
        const r = await cd.ctr(['run', '-d', '--runc-binary', 'crun', IMG, id, 'sleep', '600'], { allowFail: true, timeoutMs: 120_000 });
        try {
          if (r.code === 0) await waitTaskStatus(cd, id, 'RUNNING');
          outcome[name] = { code: r.code, stderr: r.stderr.trim() };
        } finally {
          await removeTask(cd, id);
        }
      }
      assert.equal(outcome.ts!.code === 0, outcome.reference!.code === 0, JSON.stringify(outcome));
      if (outcome.ts!.code !== 0) {
        assert.match(outcome.ts!.stderr, /OCI runtime create failed/);
        t.diagnostic(`crun refused on this host: ours: ${outcome.ts!.stderr} | reference: ${outcome.reference!.stderr}`);
      }
      await waitFor(async () => (await ours.shimProcesses()).length === 0, 20_000, 'no shim left after the crun attempt');
      assert.deepEqual((await listTasks(ours)).filter((x) => x.id.startsWith('crun-')), []);
    });
  });
}

describe('runc options on Create, by hand (ours and the reference)', () => {
  let tmp: string;
  const ns = uniqueId('ro');
  let address: string;
  let parent: string;
  const ids: string[] = [];
  const sockets: string[] = [];
  // Every daemon gets a reader on its bundle's log FIFO, as containerd provides (the reference blocks in
  // opening it otherwise, and then does not even act on SIGTERM).
  const logs: FifoReader[] = [];

  before(async () => {
    tmp = await makeTempDir('rh-');
    address = join(tmp, 'c.sock');
    parent = join(tmp, ns);
    await mkdir(parent);
  });
  after(async () => {
    for (const l of logs) l.close();
    await cleanupByHand({ address, namespace: ns, tmp, ids, sockets });
  });

  /** start by hand (binary, env) for a fresh bundle; returns the bundle and a task connection. */
  async function shimFor(binary: string, id: string, env?: NodeJS.ProcessEnv, user?: { uid: number; gid: number }) {
    ids.push(id);
    const b = await makeBundle(parent, id, { args: ['sh', '-c', 'echo hello; sleep 600'], ...(user ? { user } : {}) });
    logs.push(new FifoReader(join(b, 'log')));
    const r = await runShim(['-namespace', ns, '-address', address, '-publish-binary', '/usr/bin/containerd', '-id', id, 'start'], { cwd: b, binary, env });
    sockets.push(shimSocket(address, ns, id));
    assert.equal(r.code, 0, r.stderr);
    return { bundle: b, conn: await connectTask(shimSocket(address, ns, id), ns) };
  }

  async function stopContainer(conn: Awaited<ReturnType<typeof connectTask>>, id: string): Promise<void> {
    await conn.call('Kill', { id, execId: '', signal: 9, all: false }, api.KillRequest, Empty).catch(() => undefined);
    await conn.call('Wait', { id, execId: '' }, api.WaitRequest, api.WaitResponse).catch(() => undefined);
    await conn.call('Delete', { id, execId: '' }, api.DeleteRequest, api.DeleteResponse).catch(() => undefined);
  }

  test('Options{no_pivot_root, no_new_keyring, io_uid, io_gid, binary_name}: runc flags, pipe owners, files — same as the reference', TIMEOUT, async () => {
    const rec = await installRecorder(tmp, 'runc-rec');
    const seen: Record<string, { create: string; options: string; runtime: string; owner: string }> = {};
    for (const bin of BINARIES) {
      const id = uniqueId(`opt-${bin.name}`);
      // The container runs as the io uid/gid (the user-namespace use case): runc re-chowns stdio to the
      // process uid otherwise (keeping the gid), which would hide what the shim did.
      const { bundle, conn } = await shimFor(bin.path, id, undefined, { uid: 1000, gid: 1001 });
      const out = join(tmp, `${id}.out`);
      const err = join(tmp, `${id}.err`);
      await exec('mkfifo', [out, err]);
      const outReader = new FifoReader(out);
      const errReader = new FifoReader(err);
      try {
        const options = runcOptionsAny({ noPivotRoot: true, noNewKeyring: true, ioUid: 1000, ioGid: 1001, binaryName: rec.path });
        const pid = await createAndStart(conn, id, bundle, { options, stdout: out, stderr: err });
        await waitFor(() => outReader.text().includes('hello'), 15_000, 'container output');
        const owners = await Promise.all([1, 2].map(async (fd) => {
          const s = await stat(`/proc/${pid}/fd/${fd}`);
          assert.ok(s.isFIFO(), `fd ${fd} is a pipe`);
          return `${s.uid}:${s.gid}`;
        }));
        assert.deepEqual(owners, ['1000:1001', '1000:1001'], `${bin.name}: pipe owners`);
        const create = (await rec.calls()).find((l) => subcommand(l) === 'create' && l.endsWith(` ${id}`));
        assert.ok(create, `${bin.name}: runc create recorded`);
        seen[bin.name] = {
          create: create.replaceAll(id, '<id>'),
          options: await readFile(join(bundle, 'options.json'), 'utf8'),
          runtime: await readFile(join(bundle, 'runtime'), 'utf8'),
          owner: owners[0]!,
        };
      } finally {
        await stopContainer(conn, id);
        conn.close();
        outReader.close();
        errReader.close();
      }
    }
    const o = seen.ts!;
    assert.match(o.create, / create .*--no-pivot/);
    assert.match(o.create, / create .*--no-new-keyring/);
    assert.equal(o.runtime, rec.path);
    assert.deepEqual(JSON.parse(o.options), { no_pivot_root: true, no_new_keyring: true, io_uid: 1000, io_gid: 1001, binary_name: rec.path });
    assert.equal(o.options, seen.reference!.options, 'options.json byte for byte');
    assert.equal(o.runtime, seen.reference!.runtime);
    // Same runc command line (ids, and the bundle paths containing them, replaced).
    assert.equal(o.create, seen.reference!.create);
  });

  test('legacy containerd.linux.runc.CreateOptions is accepted (runc from PATH gets --no-pivot --no-new-keyring)', TIMEOUT, async () => {
    const pathDir = join(tmp, 'path-runc');
    await mkdir(pathDir, { recursive: true });
    const rec = await installRecorder(pathDir, 'runc'); // execs /usr/sbin/runc by absolute path: no loop
    const env = { ...process.env, PATH: `${pathDir}:${process.env.PATH ?? '/usr/bin:/bin'}` };
    const id = uniqueId('legacy');
    const { bundle, conn } = await shimFor(SHIM_BIN, id, env);
    try {
      const pid = await createAndStart(conn, id, bundle, { options: legacyOptionsAny({ noPivotRoot: true, noNewKeyring: true, ioUid: 1000, ioGid: 1000 }) });
      assert.ok(await isAlive(pid));
      assert.deepEqual(JSON.parse(await readFile(join(bundle, 'options.json'), 'utf8')), { no_pivot_root: true, no_new_keyring: true, io_uid: 1000, io_gid: 1000 });
      const create = (await rec.calls()).find((l) => subcommand(l) === 'create' && l.endsWith(` ${id}`));
      assert.ok(create);
      assert.match(create, /--no-pivot/);
      assert.match(create, /--no-new-keyring/);
    } finally {
      await stopContainer(conn, id);
      conn.close();
    }
  });

  test('an unknown options type URL on Create is InvalidArgument (3)', TIMEOUT, async () => {
    const id = uniqueId('badurl');
    const { bundle, conn } = await shimFor(SHIM_BIN, id);
    try {
      const err = await conn.fails(
        'Create',
        api.CreateTaskRequest.fromPartial({ id, bundle, options: { typeUrl: 'example.com/not.Options', value: Buffer.from([8, 1]) } }),
        api.CreateTaskRequest,
      );
      assert.equal(err.grpcCode, 3, err.message);
      assert.match(err.message, /not\.Options/);
      const st = await conn.fails('State', { id, execId: '' }, api.StateRequest);
      assert.equal(st.grpcCode, 5, 'nothing was created');
    } finally {
      conn.close();
    }
  });

  test('start with Options{shim_cgroup} on stdin moves the daemon into that cgroup, in every v1 hierarchy (as the reference)', TIMEOUT, async (t) => {
    const unified = await stat('/sys/fs/cgroup/cgroup.controllers').then(() => true, () => false);
    const cg = `/shimtest-cg-${uniqueId('x').slice(2)}`;
    const made: string[] = [];
    try {
      if (unified) {
        await mkdir(join('/sys/fs/cgroup', cg));
        made.push(join('/sys/fs/cgroup', cg));
      } else {
        for (const ctl of await readdir('/sys/fs/cgroup')) {
          if (ctl === 'unified') continue;
          const d = join('/sys/fs/cgroup', ctl, cg);
          await mkdir(d);
          made.push(d);
          // A new cpuset cgroup starts with no cpus/mems and refuses tasks until given some.
          if (ctl === 'cpuset') {
            for (const f of ['cpuset.cpus', 'cpuset.mems']) await writeFile(join(d, f), await readFile(join('/sys/fs/cgroup/cpuset', f), 'utf8'));
          }
        }
      }
      const placements: Record<string, string[]> = {};
      for (const bin of BINARIES) {
        const id = uniqueId(`cg-${bin.name}`);
        ids.push(id);
        const b = await makeBundle(parent, id, { args: ['true'] });
        logs.push(new FifoReader(join(b, 'log')));
        const r = await runShim(['-namespace', ns, '-address', address, '-id', id, 'start'], { cwd: b, binary: bin.path, input: encodeAny(runcOptionsAny({ shimCgroup: cg })) });
        sockets.push(shimSocket(address, ns, id));
        assert.equal(r.code, 0, r.stderr);
        const [d] = (await daemonsFor(address)).filter((p) => p.argv.includes(id));
        assert.ok(d, `${bin.name} daemon`);
        placements[bin.name] = (await readFile(`/proc/${d.pid}/cgroup`, 'utf8')).split('\n').filter(Boolean).sort();
        process.kill(d.pid, 'SIGTERM');
        // The reference drops a SIGTERM that lands in its first milliseconds (1.6: registered for the reaper's
        // channel, which ignores it, before the exit handler exists; see hostile.test.ts): stopped with SIGKILL.
        const limit = bin.name === 'ts' ? 20_000 : 5_000;
        await waitFor(async () => !(await isAlive(d.pid)), limit, `${bin.name} daemon exit after SIGTERM`).catch(async (err: Error) => {
          if (bin.name !== 'ts') {
            t.diagnostic(`reference daemon ignored SIGTERM ${limit} ms after its start; SIGKILL`);
            process.kill(d.pid, 'SIGKILL');
            return;
          }
          const log = logs.at(-1)!.text().split('\n').slice(-15).join('\n');
          throw new Error(`${err.message}\n${await processPostMortem(d.pid)}\ndaemon log (tail):\n${log}`);
        });
      }
      const lines = placements.ts!;
      const v1 = lines.filter((l) => !l.startsWith('0::'));
      if (!unified) {
        assert.ok(v1.length > 0);
        for (const l of v1) assert.ok(l.endsWith(`:${cg}`), l);
      } else {
        assert.deepEqual(lines, [`0::${cg}`]);
      }
      assert.deepEqual(lines, placements.reference, 'same placement as the reference');
      t.diagnostic(lines.join(' '));
    } finally {
      for (const d of await daemonsFor(address)) if (d.argv.some((a) => a.startsWith('cg-'))) process.kill(d.pid, 'SIGKILL');
      for (const d of made.reverse()) await waitFor(() => rmdir(d).then(() => true), 10_000, `rmdir ${d}`).catch(() => undefined);
    }
  });
});
