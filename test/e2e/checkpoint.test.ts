/**
 * Checkpoint / restore (shim-v2-protocol.md §4.5.8, §6.2, §6.6), ours against the reference:
 * - through containerd (our binary installed as containerd-shim-runc-v2, so ctr sends the same
 *   containerd.runc.v1 options and --runc-binary reaches both): `ctr task checkpoint` gives the same runc
 *   command lines and the same error text to the client; a successful dump (a fake CRIU runc here)
 *   publishes /tasks/checkpointed from our shim;
 * - by hand over ttrpc: every CheckpointOptions flag, Create-with-checkpoint → `runc restore` at Start;
 * - a real dump and restore, which runs by itself only where `criu check` passes (Debian bookworm's CRIU 3.17
 *   cannot initialise on this kernel: "vdso: Failed to fill self vdso symtable").
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { chmod, copyFile, mkdir, readFile, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import * as api from '../../protocol/gen/containerd/runtime/v2/task/shim.js';
import { Empty } from '../../protocol/gen/google/protobuf/empty.js';
import { CheckpointOptions } from '../../protocol/gen/containerd/runtime/v2/runc/options/oci.js';
import { CheckpointOptions as LegacyCheckpointOptions } from '../../protocol/gen/containerd/runtime/linux/runctypes/runc.js';
import { selectedVersions, startContainerd, waitTaskStatus, listTasks, type Containerd } from '../harness/containerd.js';
import { DEFAULT_IMAGE, importImage } from '../harness/image.js';
import { exec, isAlive, makeTempDir, removeDir, repoRoot, sleep, uniqueId, waitFor } from '../harness/util.js';
import { watchEventsReady } from '../harness/events.js';
import {
  FifoReader,
  REFERENCE_SHIM,
  SHIM_BIN,
  cleanupByHand,
  connectTask,
  createAndStart,
  installRecorder,
  makeBundle,
  runShim,
  runcOptionsAny,
  shimSocket,
  type TaskConn,
} from '../fixtures/shim-by-hand.js';

const TIMEOUT = { timeout: 300_000 };
const IMG = DEFAULT_IMAGE;
const SIDES = [
  { name: 'ts', path: SHIM_BIN },
  { name: 'reference', path: REFERENCE_SHIM },
] as const;

/** Whether CRIU can work on this host at all. */
async function criuWorks(): Promise<{ ok: boolean; why: string }> {
  const r = await exec('criu', ['check'], { allowFail: true, timeoutMs: 60_000 }).catch((e: Error) => ({ code: -1, stdout: '', stderr: e.message }));
  const text = `${r.stdout}${r.stderr}`.trim().split('\n').slice(-3).join(' | ');
  return { ok: r.code === 0, why: text };
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

/** Replaces every (longest first) key by its placeholder; containerd's temp image dirs by a fixed name. */
function normalize(text: string, map: Record<string, string>): string {
  let out = text;
  for (const key of Object.keys(map).sort((a, b) => b.length - a.length)) out = out.split(key).join(map[key]!);
  return out.replace(/\bc[a-z]*-checkpoint\d+/g, '<checkpoint-tmp>').replace(/\s+$/, '');
}

async function removeTask(cd: Containerd, id: string): Promise<void> {
  await cd.ctr(['task', 'kill', '-s', 'SIGKILL', id], { allowFail: true });
  await waitFor(async () => !(await listTasks(cd)).some((t) => t.id === id && t.status !== 'STOPPED'), 15_000, `${id} stopped`).catch(() => undefined);
  await cd.ctr(['task', 'rm', '-f', id], { allowFail: true });
  await cd.ctr(['container', 'rm', id], { allowFail: true });
}

async function installFakeCriu(dir: string): Promise<{ path: string; calls(): Promise<string[]> }> {
  const path = join(dir, 'runc-fake');
  await copyFile(join(repoRoot(), 'test', 'fixtures', 'runc-fake-criu.sh'), path);
  await chmod(path, 0o755);
  return { path, calls: async () => (await readFile(`${path}.log`, 'utf8').catch(() => '')).split('\n').filter(Boolean) };
}

let criu: { ok: boolean; why: string } | undefined;
async function criuState(): Promise<{ ok: boolean; why: string }> {
  criu ??= await criuWorks();
  return criu;
}

for (const version of selectedVersions()) {
  describe(`checkpoint through containerd ${version}: ours (installed as containerd-shim-runc-v2) vs the reference`, () => {
    let dir: string;
    let ours: Containerd;
    let ref: Containerd;
    let rec: Awaited<ReturnType<typeof installRecorder>>;
    let fake: Awaited<ReturnType<typeof installFakeCriu>>;

    before(async () => {
      dir = await makeTempDir('ck-');
      const drop = join(dir, 'bin');
      await mkdir(drop);
      await symlink(SHIM_BIN, join(drop, 'containerd-shim-runc-v2'));
      await symlink(SHIM_BIN, join(drop, 'containerd-shim-ts-v2'));
      rec = await installRecorder(dir, 'runc-rec');
      fake = await installFakeCriu(dir);
      ours = await startContainerd({ version, shimDirs: [drop] });
      ref = await startContainerd({ version });
      await Promise.all([importImage(ours), importImage(ref)]);
    });
    after(async () => {
      await ours?.stop();
      await ref?.stop();
      if (dir) await removeDir(dir);
    });

    test('ctr task checkpoint (default, and --exit --image-path --work-path): same runc command lines, same result for the client', TIMEOUT, async (t) => {
      const { ok: criuOk, why } = await criuState();
      type Outcome = { code: number | null; stderr: string; argv: string[]; dumpLog: boolean; after: string };
      const seen: Record<string, Outcome[]> = {};
      for (const [name, cd] of [['ts', ours], ['reference', ref]] as const) {
        const id = uniqueId(`ck-${name}`);
        const side = join(dir, name);
        await mkdir(side, { recursive: true });
        const bundle = join(cd.state, 'io.containerd.runtime.v2.task', cd.namespace, id);
        const map = { [id]: '<id>', [cd.dir]: '<cd>', [side]: '<side>', [rec.path]: '<runc>' };
        await cd.ctr(['run', '-d', '--runc-binary', rec.path, IMG, id, 'sleep', '600']);
        seen[name] = [];
        try {
          await waitTaskStatus(cd, id, 'RUNNING');
          for (const args of [[], ['--exit', '--image-path', join(side, 'img'), '--work-path', join(side, 'work')]]) {
            const before = (await rec.calls()).length;
            const r = await cd.ctr(['task', 'checkpoint', ...args, id], { allowFail: true, timeoutMs: 120_000 });
            const argv = (await rec.calls()).slice(before).filter((l) => subcommand(l) === 'checkpoint').map((l) => normalize(l, map));
            const status = (await listTasks(cd)).find((x) => x.id === id)?.status ?? 'gone';
            seen[name]!.push({ code: r.code, stderr: normalize(r.stderr, map), argv, dumpLog: existsSync(join(bundle, 'criu-dump.log')), after: status });
            if (r.code === 0 && args.includes('--exit')) await waitTaskStatus(cd, id, 'STOPPED');
          }
        } finally {
          await removeTask(cd, id);
        }
      }
      const o = seen.ts!;
      const r = seen.reference!;
      t.diagnostic(`ours: ${JSON.stringify(o)}`);
      t.diagnostic(`reference: ${JSON.stringify(r)}`);
      for (let i = 0; i < o.length; i++) {
        assert.equal(o[i]!.argv.length, 1, `one runc checkpoint per request: ${JSON.stringify(o[i])}`);
        assert.deepEqual(o[i]!.argv, r[i]!.argv, 'same runc checkpoint command line');
        assert.equal(o[i]!.code, r[i]!.code, 'same ctr exit code');
        assert.equal(o[i]!.stderr, r[i]!.stderr, 'same error text for the client');
        assert.equal(o[i]!.dumpLog, r[i]!.dumpLog, 'criu-dump.log copied into the bundle alike');
        assert.equal(o[i]!.after, r[i]!.after, 'same task status afterwards');
      }
      assert.match(o[0]!.argv[0]!, / checkpoint --image-path \S*<checkpoint-tmp> /);
      assert.match(o[0]!.argv[0]!, /--work-path <cd>\/state\/io\.containerd\.runtime\.v2\.task\/shimtest\/<id>\/work\/criu-work --leave-running <id>$/);
      assert.match(o[1]!.argv[0]!, /checkpoint --image-path <side>\/img --work-path <side>\/work <id>$/);
      if (!criuOk) {
        t.diagnostic(`CRIU cannot run here (${why}): both fail the same way`);
        for (const x of o) {
          assert.notEqual(x.code, 0);
          assert.match(x.stderr, /path= <cd>\/state\/io\.containerd\.runtime\.v2\.task\/shimtest\/<id>\/criu-dump\.log/);
          assert.equal(x.after, 'RUNNING', 'ctr resumes the paused task after the failed checkpoint');
        }
      }
    });

    test('a successful dump publishes /tasks/checkpointed {container_id, checkpoint} from ours (fake CRIU); --exit stops the task', TIMEOUT, async (t) => {
      const found: Record<string, { events: string[]; after: string; image: boolean }> = {};
      for (const [name, cd] of [['ts', ours], ['reference', ref]] as const) {
        const events = await watchEventsReady(cd);
        const id = uniqueId(`cke-${name}`);
        const image = join(dir, `fake-${name}`, 'img');
        await cd.ctr(['run', '-d', '--runc-binary', fake.path, IMG, id, 'sleep', '600']);
        try {
          await waitTaskStatus(cd, id, 'RUNNING');
          const r = await cd.ctr(['task', 'checkpoint', '--image-path', image, id], { allowFail: true, timeoutMs: 120_000 });
          assert.equal(r.code, 0, r.stderr);
          assert.equal((await waitTaskStatus(cd, id, 'RUNNING')).status, 'RUNNING');
          const rx = await cd.ctr(['task', 'checkpoint', '--exit', '--image-path', `${image}2`, id], { allowFail: true, timeoutMs: 120_000 });
          assert.equal(rx.code, 0, rx.stderr);
          await waitTaskStatus(cd, id, 'STOPPED');
          if (name === 'ts') await waitFor(() => events.lines().filter((l) => l.includes('/tasks/checkpointed')).length >= 2, 15_000, '/tasks/checkpointed events');
          else await sleep(1000);
          found[name] = {
            events: events.lines().filter((l) => l.includes(id) && /\/tasks\/(checkpointed|paused|resumed|exit)/.test(l)).map((l) => l.replace(/^.*?(\/tasks\/)/, '$1')),
            after: (await listTasks(cd)).find((x) => x.id === id)?.status ?? 'gone',
            image: existsSync(join(image, 'inventory.img')),
          };
        } finally {
          events.stop();
          await removeTask(cd, id);
        }
      }
      t.diagnostic(`ours: ${JSON.stringify(found.ts)}`);
      t.diagnostic(`reference: ${JSON.stringify(found.reference)}`);
      const cp = found.ts!.events.filter((l) => l.startsWith('/tasks/checkpointed'));
      assert.equal(cp.length, 2);
      assert.ok(cp[0]!.includes(join(dir, 'fake-ts', 'img')), cp[0]);
      assert.ok(cp[1]!.includes(join(dir, 'fake-ts', 'img2')), cp[1]);
      assert.ok(found.ts!.image && found.reference!.image);
      assert.equal(found.ts!.after, found.reference!.after);
      // Pause / checkpointed / resume in that order (ctr pauses around the dump).
      const order = found.ts!.events.map((l) => l.split(' ')[0]);
      assert.deepEqual(order.slice(0, 3), ['/tasks/paused', '/tasks/checkpointed', '/tasks/resumed'], order.join(','));
      if (version === '1.6') assert.ok(!found.reference!.events.some((l) => l.startsWith('/tasks/checkpointed')), 'the 1.6 reference does not publish it');
    });

    test('our own runtime name: ctr sends no checkpoint options (they are only for io.containerd.runc.*); same CRIU result', TIMEOUT, async () => {
      const id = uniqueId('ckl');
      await ours.ctr(['run', '-d', '--runtime', 'io.containerd.ts.v2', IMG, id, 'sleep', '600']);
      try {
        await waitTaskStatus(ours, id, 'RUNNING');
        const r = await ours.ctr(['task', 'checkpoint', id], { allowFail: true, timeoutMs: 120_000 });
        if ((await criuState()).ok) {
          assert.equal(r.code, 0, r.stderr);
        } else {
          assert.notEqual(r.code, 0);
          assert.match(r.stderr, /^ctr: runc did not terminate successfully: exit status 1: criu failed: type DUMP errno 0 path= \S+\/criu-dump\.log(: unknown)?$/m);
        }
        assert.equal((await waitTaskStatus(ours, id, 'RUNNING')).status, 'RUNNING');
      } finally {
        await removeTask(ours, id);
      }
    });
  });
}

describe('checkpoint and restore over ttrpc, by hand: ours vs the reference', () => {
  let tmp: string;
  const ns = uniqueId('ck');
  let address: string;
  let parent: string;
  const ids: string[] = [];
  const sockets: string[] = [];
  const logs: FifoReader[] = [];

  before(async () => {
    tmp = await makeTempDir('ckh-');
    address = join(tmp, 'c.sock');
    parent = join(tmp, ns);
    await mkdir(parent);
  });
  after(async () => {
    for (const l of logs) l.close();
    await cleanupByHand({ address, namespace: ns, tmp, ids, sockets });
  });

  async function shimFor(binary: string, id: string, args: string[]): Promise<{ bundle: string; conn: TaskConn }> {
    ids.push(id);
    const b = await makeBundle(parent, id, { args });
    logs.push(new FifoReader(join(b, 'log')));
    const r = await runShim(['-namespace', ns, '-address', address, '-id', id, 'start'], { cwd: b, binary });
    sockets.push(shimSocket(address, ns, id));
    assert.equal(r.code, 0, r.stderr);
    return { bundle: b, conn: await connectTask(shimSocket(address, ns, id), ns) };
  }

  async function teardown(conn: TaskConn, id: string): Promise<void> {
    await conn.call('Kill', { id, execId: '', signal: 9, all: true }, api.KillRequest, Empty).catch(() => undefined);
    await conn.call('Wait', { id, execId: '' }, api.WaitRequest, api.WaitResponse).catch(() => undefined);
    await conn.call('Delete', { id, execId: '' }, api.DeleteRequest, api.DeleteResponse).catch(() => undefined);
    await conn.call('Shutdown', { id, now: false }, api.ShutdownRequest, Empty).catch(() => undefined);
    conn.close();
  }

  const checkpointAny = (o: Partial<CheckpointOptions>) => ({
    typeUrl: 'containerd.runc.v1.CheckpointOptions',
    value: Buffer.from(CheckpointOptions.encode(CheckpointOptions.fromPartial(o)).finish()),
  });

  test('every CheckpointOptions flag reaches runc as the reference passes it; a failed dump gives the same error and leaves criu-dump.log', TIMEOUT, async (t) => {
    const rec = await installRecorder(tmp, 'runc-ck');
    type Outcome = { argv: string[]; error: string; code: number; dumpLog: boolean; running: boolean };
    const seen: Record<string, Outcome[]> = {};
    for (const side of SIDES) {
      const id = uniqueId(`cko-${side.name}`);
      const d = join(tmp, `o-${side.name}`);
      await mkdir(d);
      const { bundle, conn } = await shimFor(side.path, id, ['sleep', '600']);
      const map = { [id]: '<id>', [d]: '<d>', [bundle]: '<bundle>', [rec.path]: '<runc>' };
      seen[side.name] = [];
      try {
        const pid = await createAndStart(conn, id, bundle, { options: runcOptionsAny({ binaryName: rec.path }) });
        const cases: Array<Partial<CheckpointOptions> | undefined> = [
          undefined,
          { openTcp: true, externalUnixSockets: true, terminal: true, fileLocks: true, emptyNamespaces: ['network', 'ipc'], workPath: join(d, 'work'), imagePath: join(d, 'ignored'), cgroupsMode: 'soft' },
          { exit: true, workPath: join(d, 'work2') },
        ];
        for (const [i, o] of cases.entries()) {
          const before = (await rec.calls()).length;
          let error = '';
          let code = 0;
          try {
            await conn.call('Checkpoint', api.CheckpointTaskRequest.fromPartial({ id, path: join(d, `img${i}`), ...(o ? { options: checkpointAny(o) } : {}) }), api.CheckpointTaskRequest, Empty);
          } catch (err) {
            const e = err as { grpcCode?: number; message: string };
            code = e.grpcCode ?? -1;
            error = normalize(e.message, map);
          }
          const argv = (await rec.calls()).slice(before).filter((l) => subcommand(l) === 'checkpoint').map((l) => normalize(l, map));
          seen[side.name]!.push({ argv, error, code, dumpLog: existsSync(join(bundle, 'criu-dump.log')), running: await isAlive(pid) });
        }
      } finally {
        await teardown(conn, id);
      }
    }
    t.diagnostic(`ours: ${JSON.stringify(seen.ts)}`);
    t.diagnostic(`reference: ${JSON.stringify(seen.reference)}`);
    assert.deepEqual(seen.ts, seen.reference);
    const o = seen.ts!;
    assert.match(o[0]!.argv[0]!, /checkpoint --image-path <d>\/img0 --work-path <bundle>\/work\/criu-work --leave-running <id>$/);
    assert.match(o[1]!.argv[0]!, /--tcp-established/);
    assert.match(o[1]!.argv[0]!, /--ext-unix-sk/);
    assert.match(o[1]!.argv[0]!, /--shell-job/);
    assert.match(o[1]!.argv[0]!, /--file-locks/);
    assert.match(o[1]!.argv[0]!, /--empty-ns/);
    assert.doesNotMatch(o[1]!.argv[0]!, /ignored|manage-cgroups/, 'image_path and cgroups_mode are not passed');
    assert.doesNotMatch(o[2]!.argv[0]!, /--leave-running/);
    if (!(await criuState()).ok) {
      for (const x of o) {
        assert.equal(x.code, 2, 'Unknown, as the reference');
        assert.match(x.error, / path= <bundle>\/criu-dump\.log$/);
        assert.ok(x.running, 'the container survives a failed dump');
      }
    }
  });

  test('ours also takes containerd.linux.runc.CheckpointOptions (the older type other clients send); an unknown type is InvalidArgument', TIMEOUT, async () => {
    const rec = await installRecorder(tmp, 'runc-lg');
    const id = uniqueId('ckl');
    const d = join(tmp, 'legacy');
    await mkdir(d);
    const { bundle, conn } = await shimFor(SHIM_BIN, id, ['sleep', '600']);
    try {
      await createAndStart(conn, id, bundle, { options: runcOptionsAny({ binaryName: rec.path }) });
      const legacy = { typeUrl: 'containerd.linux.runc.CheckpointOptions', value: Buffer.from(LegacyCheckpointOptions.encode(LegacyCheckpointOptions.fromPartial({ exit: true, fileLocks: true, workPath: join(d, 'work') })).finish()) };
      const before = (await rec.calls()).length;
      // Where CRIU works (the test VM) the dump succeeds; elsewhere it fails in CRIU, an Unknown error as the reference's.
      const outcome = await conn
        .call('Checkpoint', api.CheckpointTaskRequest.fromPartial({ id, path: join(d, 'img'), options: legacy }), api.CheckpointTaskRequest, Empty)
        .then(() => undefined, (e: unknown) => e);
      const argv = (await rec.calls()).slice(before).filter((l) => subcommand(l) === 'checkpoint');
      assert.equal(argv.length, 1);
      assert.ok(argv[0]!.endsWith(` checkpoint --image-path ${join(d, 'img')} --work-path ${join(d, 'work')} --file-locks ${id}`), argv[0]);
      if ((await criuState()).ok) assert.equal(outcome, undefined, `the dump failed where CRIU works: ${String(outcome)}`);
      else assert.equal((outcome as { grpcCode?: number } | undefined)?.grpcCode, 2, String(outcome));
      const bad = await conn.fails('Checkpoint', api.CheckpointTaskRequest.fromPartial({ id, path: join(d, 'img2'), options: { typeUrl: 'example.com/Nope', value: Buffer.from([8, 1]) } }), api.CheckpointTaskRequest);
      assert.equal(bad.grpcCode, 3, bad.message);
      assert.equal((await rec.calls()).length, before + 1, 'no runc call for the refused request');
    } finally {
      await teardown(conn, id);
    }
  });

  test('Create with a checkpoint restores at Start (runc restore, with and without a parent): same command line, same error as the reference', TIMEOUT, async (t) => {
    const rec = await installRecorder(tmp, 'runc-rs');
    type Outcome = { createPid: number; argv: string[]; startError: string; startCode: number; state: number; deleteCode: number };
    const seen: Record<string, Outcome[]> = {};
    if ((await criuState()).ok) t.diagnostic('CRIU works here: the restore of an empty image fails in CRIU itself');
    for (const side of SIDES) {
      seen[side.name] = [];
      for (const withParent of [true, false]) {
        const id = uniqueId(`ckr-${side.name}`);
        const d = join(tmp, `r-${id}`);
        await mkdir(join(d, 'img'), { recursive: true });
        await mkdir(join(d, 'parent'), { recursive: true });
        // runc reads the stdio descriptors first; with them present the failure is CRIU's own.
        await writeFile(join(d, 'img', 'descriptors.json'), JSON.stringify(['/dev/null', '/dev/null', '/dev/null']));
        const { bundle, conn } = await shimFor(side.path, id, ['sleep', '600']);
        const map = { [id]: '<id>', [d]: '<d>', [bundle]: '<bundle>', [rec.path]: '<runc>' };
        try {
          const created: api.CreateTaskResponse = await conn.call(
            'Create',
            api.CreateTaskRequest.fromPartial({ id, bundle, checkpoint: join(d, 'img'), ...(withParent ? { parentCheckpoint: join(d, 'parent') } : {}), options: runcOptionsAny({ binaryName: rec.path }) }),
            api.CreateTaskRequest,
            api.CreateTaskResponse,
          );
          const before = (await rec.calls()).length;
          const err = await conn.fails('Start', { id, execId: '' }, api.StartRequest);
          const argv = (await rec.calls()).slice(before).filter((l) => subcommand(l) === 'restore').map((l) => normalize(l, map));
          const st = await conn.call('State', { id, execId: '' }, api.StateRequest, api.StateResponse);
          let deleteCode = 0;
          await conn.call('Delete', { id, execId: '' }, api.DeleteRequest, api.DeleteResponse).catch((e: { grpcCode?: number }) => (deleteCode = e.grpcCode ?? -1));
          seen[side.name]!.push({ createPid: created.pid, argv, startError: normalize(err.message, map), startCode: err.grpcCode ?? -1, state: st.status, deleteCode });
        } finally {
          await teardown(conn, id);
        }
      }
    }
    t.diagnostic(`ours: ${JSON.stringify(seen.ts)}`);
    t.diagnostic(`reference: ${JSON.stringify(seen.reference)}`);
    assert.deepEqual(seen.ts, seen.reference);
    const [parent, plain] = seen.ts!;
    assert.match(parent!.argv[0]!, /restore --image-path <d>\/img --work-path <bundle>\/work --parent-path <d>\/parent --detach --pid-file <bundle>\/init\.pid -no-subreaper --bundle <bundle> <id>$/);
    assert.match(plain!.argv[0]!, /restore --image-path <d>\/img --work-path <bundle>\/work --detach --pid-file <bundle>\/init\.pid -no-subreaper --bundle <bundle> <id>$/);
    assert.equal(parent!.createPid, 0, 'nothing runs before Start');
    assert.match(plain!.startError, /^OCI runtime restore failed: /);
  });

  test('a real dump and restore: the process resumes with its memory (runs where `criu check` passes)', TIMEOUT, async (t) => {
    const { ok, why } = await criuState();
    if (!ok) {
      t.skip(`criu check fails on this host: ${why}`);
      return;
    }
    for (const side of SIDES) {
      const id = uniqueId(`ckx-${side.name}`);
      const img = join(tmp, `x-${side.name}`, 'img');
      // The counter lives in the shell's memory; a file shows progress.
      const { bundle, conn } = await shimFor(side.path, id, ['sh', '-c', 'i=0; while true; do i=$((i+1)); echo $i > /tmp/count; sleep 0.1; done']);
      const count = async () => parseInt(await readFile(join(bundle, 'rootfs', 'tmp', 'count'), 'utf8').catch(() => '0'), 10) || 0;
      try {
        await createAndStart(conn, id, bundle);
        await waitFor(async () => (await count()) > 5, 20_000, 'counter running');
        await conn.call('Checkpoint', api.CheckpointTaskRequest.fromPartial({ id, path: img, options: checkpointAny({ exit: true }) }), api.CheckpointTaskRequest, Empty, );
        assert.ok(existsSync(join(img, 'inventory.img')), 'CRIU image written');
        await conn.call('Wait', { id, execId: '' }, api.WaitRequest, api.WaitResponse);
        await conn.call('Delete', { id, execId: '' }, api.DeleteRequest, api.DeleteResponse);
        const at = await count();
        await writeFile(join(bundle, 'rootfs', 'tmp', 'count'), '0');
        await conn.call('Create', api.CreateTaskRequest.fromPartial({ id, bundle, checkpoint: img }), api.CreateTaskRequest, api.CreateTaskResponse);
        const pid = (await conn.call('Start', { id, execId: '' }, api.StartRequest, api.StartResponse)).pid;
        assert.ok(pid > 0 && (await isAlive(pid)));
        const resumed = await waitFor(async () => {
          const n = await count();
          return n > at ? n : undefined;
        }, 20_000, 'counter continuing from its checkpointed value');
        t.diagnostic(`${side.name}: checkpointed at ${at}, restored and counting: ${resumed}`);
      } finally {
        await teardown(conn, id);
      }
    }
  });
});
