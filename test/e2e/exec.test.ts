/**
 * Exec processes through real containerd + ctr, and by hand over the shim's ttrpc Task API (shim-v2-protocol.md
 * §4.4, §4.5, §5.3), each case against the reference shim (io.containerd.runc.v2) and ours (io.containerd.ts.v2),
 * on every selected containerd version.
 */
import { after, before, describe, test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { constants } from 'node:fs';
import { open as openCb } from 'node:fs';
import { open, readFile, readdir, readlink } from 'node:fs/promises';
import net from 'node:net';
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
import { exec, fdCount, makeTempDir, openFds, removeDir, repoRoot, sleep, uniqueId, waitFor, zombieChildren } from '../harness/util.js';
import { connectShim, type ShimConnection } from '../harness/shim-client.js';
import { watchEventsReady, type EventStream } from '../harness/events.js';
import * as api from '../../protocol/gen/containerd/runtime/v2/task/shim.js';
import { Empty } from '../../protocol/gen/google/protobuf/empty.js';

const IMG = DEFAULT_IMAGE;
const OURS: Runtime = 'io.containerd.ts.v2';
const short = (rt: Runtime) => (rt === OURS ? 'ts' : 'runc');
const LOGGER = join(repoRoot(), 'test', 'fixtures', 'binary-logger.sh');
const PROCESS_TYPE_URL = 'types.containerd.io/opencontainers/runtime-spec/1/Process';
const STATUS = { CREATED: 1, RUNNING: 2, STOPPED: 3 } as const;

async function cleanup(cd: Containerd, id: string): Promise<void> {
  await cd.ctr(['task', 'kill', '-a', '-s', 'SIGKILL', id], { allowFail: true });
  await waitFor(async () => !(await listTasks(cd)).some((t) => t.id === id && t.status === 'RUNNING'), 10_000, `${id} stopped`).catch(() => undefined);
  await cd.ctr(['task', 'rm', '-f', id], { allowFail: true });
  await cd.ctr(['container', 'rm', id], { allowFail: true });
}

function bundleOf(cd: Containerd, id: string): string {
  return join(cd.state, 'io.containerd.runtime.v2.task', cd.namespace, id);
}

/** The shim daemon serving `id` (its cwd is the bundle). */
async function shimPidOf(cd: Containerd, id: string): Promise<number> {
  const bundle = bundleOf(cd, id);
  for (const p of await cd.shimProcesses()) {
    if ((await readlink(`/proc/${p.pid}/cwd`).catch(() => '')) === bundle) return p.pid;
  }
  throw new Error(`no shim for ${id}`);
}

/** An exec spec: the container's own process (user, env, caps, ...) with other args. */
async function processSpec(cd: Containerd, id: string, args: string[]): Promise<api.ExecProcessRequest['spec']> {
  const spec = JSON.parse(await readFile(join(bundleOf(cd, id), 'config.json'), 'utf8')) as { process: Record<string, unknown> };
  return { typeUrl: PROCESS_TYPE_URL, value: Buffer.from(JSON.stringify({ ...spec.process, args, terminal: false })) };
}

type TaskConn = Pick<ShimConnection, 'call' | 'fails' | 'close'>;

/**
 * A Task API connection to the shim of `id`. The 2.x reference shim serves the same messages as
 * `containerd.task.v3.Task` only; ours (and the 1.6/1.7 reference) answer `containerd.task.v2.Task`.
 */
/** Our ttrpc client on the task's shim, speaking whichever Task service name the shim answers. */
function taskConn(cd: Containerd, id: string): Promise<TaskConn> {
  return connectShim(cd, id);
}

interface Ev {
  topic: string;
  body: Record<string, unknown>;
}

/** `ctr events` lines of one container, parsed: `<time> <ns> <topic> {json}`. */
function eventsOf(stream: EventStream, id: string): Ev[] {
  const result: Ev[] = [];
  for (const line of stream.lines()) {
    const topic = /\s(\/tasks\/[a-z-]+)\s/.exec(line)?.[1];
    const brace = line.indexOf('{');
    if (!topic || brace < 0) continue;
    let body: Record<string, unknown>;
    try {
      body = JSON.parse(line.slice(brace)) as Record<string, unknown>;
    } catch {
      continue;
    }
    if (body.container_id === id) result.push({ topic, body });
  }
  return result;
}

const label = (e: Ev) => {
  const who = (e.body.exec_id as string | undefined) ?? (e.body.id !== e.body.container_id ? (e.body.id as string | undefined) : undefined);
  return who ? `${e.topic}(${who})` : e.topic;
};

/** mkfifo in `dir`; returns the path. */
async function mkfifo(dir: string, name: string): Promise<string> {
  const path = join(dir, name);
  await exec('mkfifo', ['-m', '0600', path]);
  return path;
}

/** Reads a FIFO (opened non-blocking, no writer needed yet) until EOF. */
async function fifoReader(path: string): Promise<{ text(): string; ended: Promise<void>; destroy(): void }> {
  // A raw fd (not a FileHandle, which would close it again on garbage collection): the socket owns it.
  const fd = await new Promise<number>((resolve, reject) => openCb(path, constants.O_RDONLY | constants.O_NONBLOCK, (err, f) => (err ? reject(err) : resolve(f))));
  const sock = new net.Socket({ fd, readable: true, writable: false });
  const chunks: Buffer[] = [];
  sock.on('data', (b: Buffer) => chunks.push(b));
  const ended = new Promise<void>((resolve) => {
    sock.once('end', resolve);
    sock.once('close', () => resolve());
    sock.once('error', () => resolve());
  });
  return { text: () => Buffer.concat(chunks).toString(), ended, destroy: () => sock.destroy() };
}

/**
 * Checks a short `ctr task exec`'s output. ctr's cio can drop a stream whose FIFO open had not returned when
 * the process exited (see the 50-exec case): ours holds the exit until the client read its FIFOs, the
 * reference does not, and lost "hi" once on 1.6 in CI. For the reference an empty stream is reported; for ours
 * it fails.
 */
function expectOutput(t: TestContext, rt: Runtime, what: string, r: { stdout: string; stderr: string }, want: { stdout: string; stderr?: string }): void {
  const wantErr = want.stderr ?? '';
  if (rt !== OURS) {
    const lostOut = r.stdout === '' && want.stdout !== '';
    const lostErr = r.stderr === '' && wantErr !== '';
    if ((lostOut || r.stdout === want.stdout) && (lostErr || r.stderr === wantErr) && (lostOut || lostErr)) {
      t.diagnostic(`reference ${what}: ctr returned an empty stream (client-side race): ${JSON.stringify(r)}`);
      return;
    }
  }
  assert.equal(r.stdout, want.stdout, `${what} stdout`);
  assert.equal(r.stderr, wantErr, `${what} stderr`);
}

for (const version of selectedVersions()) {
  describe(`exec on containerd ${version}`, () => {
    let cd: Containerd;
    let tmp: string;
    before(async () => {
      cd = await startContainerd({ version, shimDirs: [shimBinDir()] });
      await importImage(cd);
      tmp = await makeTempDir('ex-');
    });
    after(async () => {
      await cd?.stop();
      if (tmp) await removeDir(tmp);
    });

    for (const rt of RUNTIMES) {
      test(`${short(rt)}: exit codes and output, exec-id reuse, an exec id in use, a missing binary`, async (t) => {
        const id = uniqueId('ex');
        await cd.ctr(['run', '-d', '--runtime', rt, IMG, id, 'sleep', '600']);
        try {
          await waitTaskStatus(cd, id, 'RUNNING');
          const r7 = await cd.ctr(['task', 'exec', '--exec-id', 'e1', id, 'sh', '-c', 'echo hi; echo oops >&2; exit 7'], { allowFail: true });
          assert.equal(r7.code, 7, r7.stderr);
          expectOutput(t, rt, 'exit 7', r7, { stdout: 'hi\n', stderr: 'oops\n' });
          // ctr deleted e1 after it exited: the id is free again.
          const again = await cd.ctr(['task', 'exec', '--exec-id', 'e1', id, 'sh', '-c', 'echo again'], { allowFail: true });
          assert.equal(again.code, 0, again.stderr);
          expectOutput(t, rt, 'again', again, { stdout: 'again\n' });
          const killed = await cd.ctr(['task', 'exec', '--exec-id', 'e2', id, 'sh', '-c', 'kill -9 $$'], { allowFail: true });
          assert.equal(killed.code, 137, killed.stderr);

          // A detached exec keeps its id until it is deleted.
          await cd.ctr(['task', 'exec', '-d', '--exec-id', 'long', id, 'sleep', '600']);
          const dup = await cd.ctr(['task', 'exec', '--exec-id', 'long', id, 'true'], { allowFail: true });
          assert.notEqual(dup.code, 0);
          assert.match(dup.stderr, /already exists/);
          await cd.ctr(['task', 'kill', '--exec-id', 'long', '-s', 'SIGKILL', id]);
          // `ctr task rm --exec-id` exits with the process's exit status.
          await waitFor(async () => (await cd.ctr(['task', 'rm', '--exec-id', 'long', id], { allowFail: true })).code === 137, 10_000, 'delete exec long');
          const reused = await cd.ctr(['task', 'exec', '--exec-id', 'long', id, 'echo', 'reused'], { allowFail: true });
          assert.equal(reused.code, 0, reused.stderr);
          expectOutput(t, rt, 'reused', reused, { stdout: 'reused\n' });

          const missing = await cd.ctr(['task', 'exec', '--exec-id', 'nobin', id, '/no/such/binary'], { allowFail: true });
          assert.notEqual(missing.code, 0);
          assert.match(missing.stderr, /no such file or directory|not found/i);
          assert.equal((await listTasks(cd)).find((t) => t.id === id)?.status, 'RUNNING');
          const after = await cd.ctr(['task', 'exec', '--exec-id', 'after', id, 'echo', 'still-ok'], { allowFail: true });
          assert.equal(after.code, 0, after.stderr);
          expectOutput(t, rt, 'after', after, { stdout: 'still-ok\n' });
        } finally {
          await cleanup(cd, id);
        }
      });

      test(`${short(rt)}: exec stdin echo to EOF, and a binary:// logger with CONTAINER_ID = exec id`, async () => {
        const id = uniqueId('exi');
        await cd.ctr(['run', '-d', '--runtime', rt, IMG, id, 'sleep', '600']);
        try {
          await waitTaskStatus(cd, id, 'RUNNING');
          const input = Array.from({ length: 2000 }, (_, i) => `in ${i}\n`).join('');
          const shim = await taskConn(cd, id);
          let echoed;
          try {
            echoed = await cd.ctr(['task', 'exec', '--exec-id', 'cat', id, 'cat'], {
              input,
              // Keep ctr's stdin open until the exec runs (ctr drops an earlier EOF).
              closeStdinAfter: () =>
                waitFor(async () => (await shim.call('State', { id, execId: 'cat' }, api.StateRequest, api.StateResponse)).status === STATUS.RUNNING, 20_000, 'exec running'),
              allowFail: true,
            });
          } finally {
            shim.close();
          }
          assert.equal(echoed.code, 0, echoed.stderr);
          assert.equal(echoed.stdout, input);

          const dir = join(tmp, `exlog-${short(rt)}`);
          const r = await cd.ctr(['task', 'exec', '--exec-id', 'logged', '--log-uri', `binary://${LOGGER}?dir=${dir}`, id, 'sh', '-c', 'seq 1 1000; echo E >&2; exit 4'], {
            allowFail: true,
          });
          assert.equal(r.code, 4, r.stderr);
          await waitFor(async () => (await readdir(dir)).some((f) => f.startsWith('done.')), 20_000, 'logger done');
          assert.equal(await readFile(join(dir, 'stdout'), 'utf8'), Array.from({ length: 1000 }, (_, i) => `${i + 1}\n`).join(''));
          assert.equal(await readFile(join(dir, 'stderr'), 'utf8'), 'E\n');
          const envFile = (await readdir(dir)).find((f) => f.startsWith('env.'))!;
          assert.match(await readFile(join(dir, envFile), 'utf8'), /^CONTAINER_ID=logged$/m);
        } finally {
          await cleanup(cd, id);
        }
      });

      test(`${short(rt)}: 50 execs in a row leave the shim's fd count and children as they were`, { timeout: 240_000 }, async (t) => {
        const id = uniqueId('fd');
        await cd.ctr(['run', '-d', '--runtime', rt, IMG, id, 'sleep', '600']);
        try {
          await waitTaskStatus(cd, id, 'RUNNING');
          const shimPid = await shimPidOf(cd, id);
          // ctr (containerd's cio) cancels a stdout/stderr FIFO reader whose open has not returned yet when the
          // process exits, so under CPU load a short exec's output can come back empty. The reference publishes
          // the exit at once and loses a stream now and then (11 in 48 loaded runs of this case); such a loss
          // (exit 0, a stream empty) is reported for it. Ours publishes an exit only once the client has read
          // its FIFOs (0 losses in 48 runs, 2400 execs), so for ours it fails.
          const one = async (n: number) => {
            const r = await cd.ctr(['task', 'exec', '--exec-id', `x${n}`, id, 'sh', '-c', `echo ${n}; echo e${n} >&2`], { allowFail: true });
            assert.equal(r.code, 0, r.stderr);
            expectOutput(t, rt, `exec x${n}`, r, { stdout: `${n}\n`, stderr: `e${n}\n` });
          };
          for (let i = 0; i < 3; i++) await one(i); // warm-up: lazily opened fds (event connection, ...)
          await sleep(500);
          const before = await fdCount(shimPid);
          const beforeFds = await openFds(shimPid);
          for (let i = 3; i < 53; i++) await one(i);
          const settled = await waitFor(async () => ((await fdCount(shimPid)) <= before ? true : undefined), 10_000, 'fd count back').catch(() => false);
          if (!settled) {
            const now = await openFds(shimPid);
            const extra = [...now].filter(([fd, target]) => beforeFds.get(fd) !== target).map(([fd, t]) => `${fd}->${t}`);
            const msg = `shim fds grew from ${before} to ${now.size}: ${extra.join(', ')}`;
            // The 1.7 reference (Go with pidfd support) keeps a few pidfds around for a while: report, don't fail.
            if (rt === OURS) assert.fail(msg);
            t.diagnostic(`reference: ${msg}`);
          }
          assert.deepEqual(await zombieChildren(shimPid), []);
        } finally {
          await cleanup(cd, id);
        }
      });

      test(`${short(rt)}: Exec API by hand: Exec/State/Kill/Start/ResizePty/Wait/Delete, AlreadyExists, events`, async () => {
        const id = uniqueId('api');
        const events = await watchEventsReady(cd);
        await cd.ctr(['run', '-d', '--runtime', rt, IMG, id, 'sleep', '600']);
        let shim: TaskConn | undefined;
        try {
          await waitTaskStatus(cd, id, 'RUNNING');
          shim = await taskConn(cd, id);
          const s = shim;
          const execReq = async (execId: string, args: string[], io: Partial<api.ExecProcessRequest> = {}): Promise<api.ExecProcessRequest> => ({
            id,
            execId,
            terminal: false,
            stdin: '',
            stdout: '',
            stderr: '',
            spec: await processSpec(cd, id, args),
            ...io,
          });
          await s.call('Exec', await execReq('a1', ['sh', '-c', 'exit 5']), api.ExecProcessRequest, Empty);
          const dup = await s.fails('Exec', await execReq('a1', ['true']), api.ExecProcessRequest);
          assert.equal(dup.grpcCode, 6, dup.message);
          assert.match(dup.message, /id a1/);
          const created = await s.call('State', { id, execId: 'a1' }, api.StateRequest, api.StateResponse);
          assert.equal(created.status, STATUS.CREATED);
          assert.equal(created.id, 'a1');
          assert.equal(created.pid, 0);
          const killCreated = await s.fails('Kill', { id, execId: 'a1', signal: 9, all: false }, api.KillRequest);
          assert.equal(killCreated.grpcCode, 9, killCreated.message);
          // Null IO: ResizePty and CloseIO are accepted and do nothing.
          await s.call('ResizePty', { id, execId: 'a1', width: 80, height: 24 }, api.ResizePtyRequest, Empty);
          const wait = s.call('Wait', { id, execId: 'a1' }, api.WaitRequest, api.WaitResponse, 60_000);
          const started = await s.call('Start', { id, execId: 'a1' }, api.StartRequest, api.StartResponse);
          assert.ok(started.pid > 0);
          const w = await wait;
          assert.equal(w.exitStatus, 5);
          const stopped = await s.call('State', { id, execId: 'a1' }, api.StateRequest, api.StateResponse);
          assert.equal(stopped.status, STATUS.STOPPED);
          assert.equal(stopped.exitStatus, 5);
          assert.equal(stopped.pid, started.pid);
          const startAgain = await s.fails('Start', { id, execId: 'a1' }, api.StartRequest);
          assert.match(startAgain.message, /cannot start a stopped process/);
          const resizeStopped = await s.fails('ResizePty', { id, execId: 'a1', width: 80, height: 24 }, api.ResizePtyRequest);
          assert.match(resizeStopped.message, /cannot resize a stopped container/);
          const killStopped = await s.fails('Kill', { id, execId: 'a1', signal: 9, all: false }, api.KillRequest);
          assert.equal(killStopped.grpcCode, 5, killStopped.message);
          const del = await s.call('Delete', { id, execId: 'a1' }, api.DeleteRequest, api.DeleteResponse);
          assert.equal(del.exitStatus, 5);
          assert.equal(del.pid, started.pid);
          const gone = await s.fails('State', { id, execId: 'a1' }, api.StateRequest);
          assert.equal(gone.grpcCode, 5);
          assert.match(gone.message, /process does not exist a1/);

          // Kill of a running exec signals it directly.
          await s.call('Exec', await execReq('a2', ['sleep', '600']), api.ExecProcessRequest, Empty);
          const p2 = await s.call('Start', { id, execId: 'a2' }, api.StartRequest, api.StartResponse);
          const running = await s.call('State', { id, execId: 'a2' }, api.StateRequest, api.StateResponse);
          assert.equal(running.status, STATUS.RUNNING);
          assert.equal(running.pid, p2.pid);
          const delRunning = await s.fails('Delete', { id, execId: 'a2' }, api.DeleteRequest);
          assert.match(delRunning.message, /cannot delete a running process/);
          await s.call('Kill', { id, execId: 'a2', signal: 15, all: false }, api.KillRequest, Empty);
          const w2 = await s.call('Wait', { id, execId: 'a2' }, api.WaitRequest, api.WaitResponse, 60_000);
          assert.equal(w2.exitStatus, 143);
          await s.call('Delete', { id, execId: 'a2' }, api.DeleteRequest, api.DeleteResponse);

          // A missing binary fails Start; the container keeps running.
          await s.call('Exec', await execReq('a3', ['/no/such/binary']), api.ExecProcessRequest, Empty);
          const bad = await s.fails('Start', { id, execId: 'a3' }, api.StartRequest);
          assert.match(bad.message, /no such file or directory|not found/i);
          assert.equal((await s.call('State', { id, execId: '' }, api.StateRequest, api.StateResponse)).status, STATUS.RUNNING);
          await s.call('Delete', { id, execId: 'a3' }, api.DeleteRequest, api.DeleteResponse).catch(() => undefined);

          const evs = await waitFor(() => {
            const e = eventsOf(events, id).map(label);
            return e.filter((l) => l === '/tasks/exit(a2)').length === 1 ? e : undefined;
          }, 15_000, 'exec events');
          const mine = evs.filter((l) => /\((a1|a2|a3)\)/.test(l));
          assert.deepEqual(mine.filter((l) => l.includes('(a1)')), ['/tasks/exec-added(a1)', '/tasks/exec-started(a1)', '/tasks/exit(a1)']);
          assert.deepEqual(mine.filter((l) => l.includes('(a2)')), ['/tasks/exec-added(a2)', '/tasks/exec-started(a2)', '/tasks/exit(a2)']);
          assert.deepEqual(mine.filter((l) => l.includes('(a3)')), ['/tasks/exec-added(a3)']);
          const exitA1 = eventsOf(events, id).find((e) => e.topic === '/tasks/exit' && e.body.id === 'a1');
          assert.equal(exitA1?.body.exit_status, 5);
          assert.equal(exitA1?.body.pid, started.pid);
        } finally {
          shim?.close();
          events.stop();
          await cleanup(cd, id);
        }
      });

      test(`${short(rt)}: exec stdin CloseIO and a tty exec resized by ResizePty (FIFOs by hand)`, async () => {
        const id = uniqueId('fio');
        await cd.ctr(['run', '-d', '--runtime', rt, IMG, id, 'sleep', '600']);
        const dir = await makeTempDir('exfifo-');
        let shim: TaskConn | undefined;
        const toClose: Array<() => void> = [];
        try {
          await waitTaskStatus(cd, id, 'RUNNING');
          shim = await taskConn(cd, id);
          const s = shim;
          // stdin → cat → stdout; EOF after CloseIO and our writer closed.
          const [stdin, stdout, stderr] = await Promise.all(['c-stdin', 'c-stdout', 'c-stderr'].map((n) => mkfifo(dir, n)));
          const out = await fifoReader(stdout!);
          const err = await fifoReader(stderr!);
          toClose.push(out.destroy, err.destroy);
          await s.call('Exec', { id, execId: 'c', terminal: false, stdin: stdin!, stdout: stdout!, stderr: stderr!, spec: await processSpec(cd, id, ['cat']) }, api.ExecProcessRequest, Empty);
          await s.call('Start', { id, execId: 'c' }, api.StartRequest, api.StartResponse);
          const w = await open(stdin!, constants.O_RDWR);
          await w.write('hello through the fifo\n');
          await waitFor(() => out.text() === 'hello through the fifo\n', 10_000, 'echo');
          await w.close();
          assert.equal((await s.call('State', { id, execId: 'c' }, api.StateRequest, api.StateResponse)).status, STATUS.RUNNING, 'our writer closing alone is no EOF');
          await s.call('CloseIO', { id, execId: 'c', stdin: true }, api.CloseIORequest, Empty);
          const wc = await s.call('Wait', { id, execId: 'c' }, api.WaitRequest, api.WaitResponse, 30_000);
          assert.equal(wc.exitStatus, 0);
          await Promise.all([out.ended, err.ended]);
          assert.equal(out.text(), 'hello through the fifo\n');
          assert.equal(err.text(), '');
          await s.call('Delete', { id, execId: 'c' }, api.DeleteRequest, api.DeleteResponse);

          // tty exec: the size set by ResizePty shows in `stty size`.
          const [tin, tout] = await Promise.all(['t-stdin', 't-stdout'].map((n) => mkfifo(dir, n)));
          const tty = await fifoReader(tout!);
          toClose.push(tty.destroy);
          await s.call(
            'Exec',
            { id, execId: 't', terminal: true, stdin: tin!, stdout: tout!, stderr: '', spec: await processSpec(cd, id, ['sh', '-c', 'read x; stty size; tty; exit 3']) },
            api.ExecProcessRequest,
            Empty,
          );
          await s.call('Start', { id, execId: 't' }, api.StartRequest, api.StartResponse);
          await s.call('ResizePty', { id, execId: 't', width: 100, height: 40 }, api.ResizePtyRequest, Empty);
          const tw = await open(tin!, constants.O_RDWR);
          toClose.push(() => void tw.close().catch(() => undefined));
          await tw.write('go\n');
          const wt = await s.call('Wait', { id, execId: 't' }, api.WaitRequest, api.WaitResponse, 30_000);
          assert.equal(wt.exitStatus, 3);
          await waitFor(() => /\/dev\/pts\/\d+\r\n/.test(tty.text()), 10_000, 'tty output');
          assert.match(tty.text(), /^go\r\n40 100\r\n\/dev\/pts\/\d+\r\n$/);
          const st = await s.call('State', { id, execId: 't' }, api.StateRequest, api.StateResponse);
          assert.equal(st.terminal, true);
          assert.equal(st.stdin, tin);
          assert.equal(st.stdout, tout);
          await s.call('Delete', { id, execId: 't' }, api.DeleteRequest, api.DeleteResponse);
        } finally {
          for (const f of toClose) f();
          shim?.close();
          await cleanup(cd, id);
          await removeDir(dir);
        }
      });

      test(`${short(rt)}: exec exits are published before the init exit; no exec starts after init exited`, async () => {
        const id = uniqueId('ord');
        const events = await watchEventsReady(cd);
        await cd.ctr(['run', '-d', '--runtime', rt, IMG, id, 'sleep', '600']);
        let shim: TaskConn | undefined;
        try {
          await waitTaskStatus(cd, id, 'RUNNING');
          shim = await taskConn(cd, id);
          const s = shim;
          for (const e of ['r1', 'r2', 'r3']) {
            await s.call('Exec', { id, execId: e, terminal: false, stdin: '', stdout: '', stderr: '', spec: await processSpec(cd, id, ['sleep', '600']) }, api.ExecProcessRequest, Empty);
            await s.call('Start', { id, execId: e }, api.StartRequest, api.StartResponse);
          }
          // Added before the init dies, started after.
          await s.call('Exec', { id, execId: 'late', terminal: false, stdin: '', stdout: '', stderr: '', spec: await processSpec(cd, id, ['true']) }, api.ExecProcessRequest, Empty);
          await s.call('Kill', { id, execId: '', signal: 9, all: false }, api.KillRequest, Empty);
          const w = await s.call('Wait', { id, execId: '' }, api.WaitRequest, api.WaitResponse, 30_000);
          assert.equal(w.exitStatus, 137);
          const labels = await waitFor(() => {
            const l = eventsOf(events, id).map(label);
            return l.includes(`/tasks/exit`) ? l : undefined;
          }, 15_000, 'init exit event');
          const initExit = labels.indexOf('/tasks/exit');
          for (const e of ['r1', 'r2', 'r3']) {
            const i = labels.indexOf(`/tasks/exit(${e})`);
            assert.ok(i >= 0 && i < initExit, `exit of ${e} before the init exit: ${labels.join(' ')}`);
          }
          const late = await s.fails('Start', { id, execId: 'late' }, api.StartRequest);
          assert.ok(late.message.length > 0);
          const addStopped = await s.fails('Exec', { id, execId: 'late2', terminal: false, stdin: '', stdout: '', stderr: '', spec: await processSpec(cd, id, ['true']) }, api.ExecProcessRequest);
          assert.match(addStopped.message, /cannot exec in a stopped state/);
          assert.ok(!eventsOf(events, id).map(label).includes('/tasks/exec-started(late)'));
        } finally {
          shim?.close();
          events.stop();
          await cleanup(cd, id);
        }
      });
    }
  });
}
