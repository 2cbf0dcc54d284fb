/**
 * containerd restarts and event outages (shim-v2-protocol.md §5.6, §11.1–11.2, §13 item 32), each case run
 * against the reference shim (io.containerd.runc.v2) and ours (io.containerd.ts.v2):
 * - live restore: containerd SIGKILLed and restarted while containers run, a stream is attached and an exec
 *   runs; everything keeps running and works afterwards.
 * - exits never lost: processes that exit while containerd is down, or while its ttrpc events endpoint is
 *   unreachable (containerd up), for longer than the reference's ~15 s retry window. The shims' events go
 *   through a recording proxy (TTRPC_ADDRESS points at it), so the test sees exactly what containerd
 *   accepted and in which order. Asserted for ours; the reference's outcome is reported (t.diagnostic).
 */
import { after, before, describe, test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, mkdir, readFile, unlink, writeFile } from 'node:fs/promises';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import {
  pauseTask,
  RUNTIMES,
  containerdBinaries,
  listTasks,
  selectedVersions,
  shimBinDir,
  shimBinaryPath,
  startContainerd,
  waitTaskStatus,
  type Containerd,
  type ContainerdVersion,
  type Runtime,
} from '../harness/containerd.js';
import { DEFAULT_IMAGE, importImage } from '../harness/image.js';
import { isAlive, makeTempDir, removeDir, signalPid, sleep, uniqueId, waitFor } from '../harness/util.js';
import { connectShim } from '../harness/shim-client.js';
import { FifoReader } from '../fixtures/shim-by-hand.js';
import * as api from '../../protocol/gen/containerd/runtime/v2/task/shim.js';
import { ForwardRequest } from '../../protocol/gen/containerd/api/services/ttrpc/events/v1/events.js';
import { FrameDecoder, MessageType } from '../../protocol/ttrpc/frame.js';
import { decodeRequest, decodeResponse } from '../../protocol/ttrpc/messages.js';
import { fromTimestamp, isZeroTime } from '../../protocol/timestamp.js';
import { decodeEventAny, type TaskEvent } from '../../protocol/typeurl.js';

const IMG = DEFAULT_IMAGE;
const OURS: Runtime = 'io.containerd.ts.v2';
const short = (rt: Runtime) => (rt === OURS ? 'ts' : 'runc');
/** Longer than the reference's retry window (1+2+3+4+5 s of sleeps, dropped ~6 s after the last try). */
const OUTAGE_MS = 25_000;
const STATUS_STOPPED = 3;

function rootfs(cd: Containerd, id: string): string {
  return join(cd.state, 'io.containerd.runtime.v2.task', cd.namespace, id, 'rootfs');
}

/** Waits for `name` under the container's rootfs (the container writes it). */
function waitFile(cd: Containerd, id: string, name: string, timeoutMs = 20_000): Promise<boolean> {
  return waitFor(() => existsSync(join(rootfs(cd, id), name)), timeoutMs, `${name} in ${id}`);
}

/** Releases a container (or exec) waiting in `waitScript(name)`. */
async function release(cd: Containerd, id: string, name: string): Promise<void> {
  await writeFile(join(rootfs(cd, id), 'tmp', name), '');
}

/** A shell loop that waits for /tmp/<name> (written from the host), then exits with `code`. */
function waitScript(name: string, code: number, marker?: string): string {
  return `while [ ! -e /tmp/${name} ]; do sleep 0.1; done; ${marker ? `touch /tmp/${marker}; ` : ''}exit ${code}`;
}

async function cleanup(cd: Containerd, id: string): Promise<void> {
  await cd.ctr(['task', 'kill', '-s', 'SIGKILL', id], { allowFail: true });
  await waitFor(async () => !(await listTasks(cd)).some((t) => t.id === id && t.status === 'RUNNING'), 10_000, `${id} stopped`).catch(() => undefined);
  await cd.ctr(['task', 'rm', '-f', id], { allowFail: true });
  await cd.ctr(['container', 'rm', id], { allowFail: true });
}

/** State straight from the shim: task API v2, or v3 (the reference shim of containerd 2.x serves only v3). */
async function stateOf(cd: Containerd, id: string, execId = ''): Promise<api.StateResponse> {
  const shim = await connectShim(cd, id);
  const metadata = { 'containerd-namespace-ttrpc': cd.namespace };
  try {
    for (const service of ['containerd.task.v2.Task', 'containerd.task.v3.Task']) {
      try {
        return await shim.client.callTyped(service, 'State', { id, execId }, api.StateRequest, api.StateResponse, { metadata, timeoutMs: 30_000 });
      } catch (err) {
        if ((err as { grpcCode?: number }).grpcCode !== 12) throw err;
      }
    }
    throw new Error('no task service');
  } finally {
    shim.close();
  }
}

// ---------------------------------------------------------------------------------------------------------
// A recording proxy in front of containerd's ttrpc socket: passes bytes through unchanged and notes every
// Events/Forward that containerd answered without an error. `down()` makes the endpoint unreachable (no socket
// file, existing connections cut) while containerd keeps running.

interface Delivered {
  topic: string;
  ev: TaskEvent;
  /** Which runtime's shim sent it (by the wrapper's marker in the connecting process): not known here, so
   *  events are matched by container id instead. */
  containerId: string;
}

class EventsProxy {
  readonly delivered: Delivered[] = [];
  private server: Server | undefined;
  private readonly sockets = new Set<Socket>();

  constructor(
    readonly path: string,
    private readonly upstream: string,
  ) {}

  async up(): Promise<void> {
    if (this.server) return;
    await unlink(this.path).catch(() => undefined);
    const server = createServer((client) => this.accept(client));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.path, () => resolve());
    });
    this.server = server;
  }

  async down(): Promise<void> {
    const s = this.server;
    this.server = undefined;
    // Cut the connections first: close() waits for them to end.
    for (const sock of this.sockets) sock.destroy();
    this.sockets.clear();
    if (s) await new Promise<void>((resolve) => s.close(() => resolve()));
    await unlink(this.path).catch(() => undefined);
  }

  /** Delivered events of one container (init and exec), in delivery order. */
  of(containerId: string): Delivered[] {
    return this.delivered.filter((d) => d.containerId === containerId);
  }

  private accept(client: Socket): void {
    const upstream = connect(this.upstream);
    this.sockets.add(client);
    this.sockets.add(upstream);
    const pending = new Map<number, Delivered>();
    const fromShim = new FrameDecoder();
    const fromContainerd = new FrameDecoder();
    const end = () => {
      client.destroy();
      upstream.destroy();
      this.sockets.delete(client);
      this.sockets.delete(upstream);
    };
    client.on('error', end).on('close', end);
    upstream.on('error', end).on('close', end);
    client.pause();
    upstream.once('connect', () => client.resume());
    client.on('data', (chunk: Buffer) => {
      for (const item of fromShim.push(chunk)) {
        if (item.kind !== 'frame' || item.frame.type !== MessageType.Request) continue;
        try {
          const req = decodeRequest(item.frame.data);
          if (req.method !== 'Forward') continue;
          const env = ForwardRequest.decode(req.payload).envelope;
          if (!env?.event) continue;
          const ev = decodeEventAny(env.event);
          pending.set(item.frame.streamId, { topic: env.topic, ev, containerId: (ev.event as { containerId: string }).containerId });
        } catch {
          // not an event: just pass it on
        }
      }
      upstream.write(chunk);
    });
    upstream.on('data', (chunk: Buffer) => {
      for (const item of fromContainerd.push(chunk)) {
        if (item.kind !== 'frame' || item.frame.type !== MessageType.Response) continue;
        const d = pending.get(item.frame.streamId);
        if (!d) continue;
        pending.delete(item.frame.streamId);
        try {
          const res = decodeResponse(item.frame.data);
          if (!res.status || res.status.code === 0) this.delivered.push(d);
        } catch {
          // undecodable response: not counted as delivered
        }
      }
      client.write(chunk);
    });
  }
}

/** Shim wrappers that point TTRPC_ADDRESS at the proxy, for both runtimes, in a dir to put first on PATH. */
async function wrapperDir(dir: string, version: ContainerdVersion, proxyPath: string): Promise<string> {
  const bin = join(dir, 'bin');
  await mkdir(bin);
  const bins = containerdBinaries(version)!;
  const wrap = async (name: string, target: string) => {
    await writeFile(join(bin, name), `#!/bin/sh\nTTRPC_ADDRESS=${proxyPath}\nexport TTRPC_ADDRESS\nexec ${target} "$@"\n`);
    await chmod(join(bin, name), 0o755);
  };
  await wrap('containerd-shim-ts-v2', shimBinaryPath());
  await wrap('containerd-shim-runc-v2', bins.runcShim);
  return bin;
}

function exitsOf(d: Delivered[]): Array<{ id: string; status: number }> {
  return d
    .filter((x) => x.ev.type === 'TaskExit')
    .map((x) => {
      const e = x.ev.event as { id: string; exitStatus: number };
      return { id: e.id, status: e.exitStatus };
    });
}

function topicsOf(d: Delivered[]): string[] {
  return d.map((x) => {
    const e = x.ev.event as { id?: string; execId?: string; containerId: string };
    const who = e.execId || (e.id && e.id !== e.containerId ? e.id : '');
    return who ? `${x.topic}(${who})` : x.topic;
  });
}

// ---------------------------------------------------------------------------------------------------------

for (const version of selectedVersions()) {
  describe(`live restore on containerd ${version}`, () => {
    let cd: Containerd;
    before(async () => {
      cd = await startContainerd({ version, shimDirs: [shimBinDir()] });
      await importImage(cd);
    });
    after(async () => {
      await cd?.stop();
    });

    for (const rt of RUNTIMES) {
      test(`${short(rt)}: containerd SIGKILL + restart with an attached stream and a running exec; everything keeps working`, async (ctx) => {
        const id = uniqueId('lr');
        const ticker = 'i=0; while true; do i=$((i+1)); echo $i > /tmp/count; echo tick-$i; sleep 0.2; done';
        await cd.ctr(['run', '-d', '--runtime', rt, IMG, id, 'sh', '-c', ticker]);
        try {
          const before = await waitTaskStatus(cd, id, 'RUNNING');
          const shimsBefore = (await cd.shimProcesses()).map((p) => p.pid).sort();
          assert.equal(shimsBefore.length, 1);
          const count = async () => parseInt(await readFile(join(rootfs(cd, id), 'tmp', 'count'), 'utf8').catch(() => '0'), 10) || 0;
          await waitFor(async () => (await count()) > 0, 10_000, 'counter running');

          // A stream attached when containerd dies: a reader on the task's stdout FIFO, as ctr/CRI attach (ctr
          // itself cannot stay: it exits with containerd and removes the FIFO dir on its way out).
          const stdoutPath = (await stateOf(cd, id)).stdout;
          assert.ok(stdoutPath, 'no stdout FIFO');
          const reader = new FifoReader(stdoutPath);
          const ticks = () => [...reader.text().matchAll(/tick-(\d+)/g)].map((m) => Number(m[1]));
          const lastTick = () => Math.max(0, ...ticks());
          try {
            await waitFor(() => lastTick() > 0, 10_000, 'output on the attached stream');
            // ... and a running exec.
            await cd.ctr(['task', 'exec', '-d', '--exec-id', 'long', id, 'sh', '-c', waitScript('exec-go', 5, 'exec-done')]);
            await waitFor(async () => (await cd.ctr(['task', 'ps', id])).stdout.trim().split('\n').length >= 3, 10_000, 'exec running');

            await cd.kill('SIGKILL');
            // containerd is gone: the container, its output, its exec and the shim go on.
            const t0 = lastTick();
            await waitFor(() => lastTick() > t0 + 3, 10_000, 'output flowing while containerd is down');
            await release(cd, id, 'exec-go');
            await waitFile(cd, id, 'tmp/exec-done');
            assert.ok(await isAlive(before.pid), 'the init died with containerd');
            for (const pid of shimsBefore) assert.ok(await isAlive(pid), `shim ${pid} died with containerd`);

            await cd.restart();
            const afterRestart = await waitTaskStatus(cd, id, 'RUNNING', 30_000);
            assert.equal(afterRestart.pid, before.pid);
            assert.deepEqual((await cd.shimProcesses()).map((p) => p.pid).sort(), shimsBefore, 'the shim was replaced');
            const t1 = lastTick();
            await waitFor(() => lastTick() > t1 + 3, 10_000, 'output flowing after the restart');
            // No gap: every tick arrived, in order.
            const all = ticks();
            assert.deepEqual(all, Array.from({ length: all.length }, (_, i) => all[0]! + i), 'output lost or reordered');
          } finally {
            reader.close();
          }

          // exec and pause still work; `ctr task attach` gets the output produced meanwhile and afterwards.
          const lastBefore = await count();
          // (Spawned by hand: `ctr task attach` deletes the task when it exits, so it is killed once it has output.)
          const attach = spawn(cd.binaries.ctr, ['--address', cd.address, '--namespace', cd.namespace, 'task', 'attach', id], { stdio: ['ignore', 'pipe', 'pipe'] });
          let attached = '';
          attach.stdout.on('data', (b: Buffer) => (attached += b.toString()));
          attach.stderr.on('data', (b: Buffer) => (attached += b.toString()));
          const ex = await cd.ctr(['task', 'exec', '--exec-id', 'after', id, 'sh', '-c', 'echo hello-after'], { allowFail: true });
          assert.equal(ex.code, 0, ex.stderr);
          if (ex.stdout === '' && rt !== OURS) {
            // The reference publishes the exit without waiting for the output to be read (ours waits: README),
            // and ctr ≥ 1.7 closes its FIFOs as soon as it sees the exit, so its output can be lost under load
            // (seen once on 1.6 as well, in a full run beside the VM files; the mechanism there is not known).
            ctx.diagnostic('reference: exec output lost (ctr closed its FIFOs at the exit)');
          } else {
            assert.equal(ex.stdout, 'hello-after\n');
          }
          await pauseTask(cd, id, rt, (m) => ctx.diagnostic(m));
          await waitTaskStatus(cd, id, 'PAUSED');
          await cd.ctr(['task', 'resume', id]);
          await waitTaskStatus(cd, id, 'RUNNING');
          // The exec that exited while containerd was down: its status is kept.
          const longState = await stateOf(cd, id, 'long');
          assert.equal(longState.status, STATUS_STOPPED);
          assert.equal(longState.exitStatus, 5);
          assert.ok(!isZeroTime(longState.exitedAt));
          try {
            await waitFor(
              () => [...attached.matchAll(/tick-(\d+)/g)].some((m) => Number(m[1]) > lastBefore + 2),
              15_000,
              `ctr task attach to get new output (counter was ${lastBefore})`,
            );
          } finally {
            attach.kill('SIGKILL');
          }

          await cd.ctr(['task', 'kill', '-s', 'SIGKILL', id]);
          await waitTaskStatus(cd, id, 'STOPPED');
          const st = await stateOf(cd, id);
          assert.equal(st.exitStatus, 137);
          const rm = await cd.ctr(['task', 'rm', id], { allowFail: true });
          assert.ok(rm.code === 0 || rm.code === 137, `task rm: ${rm.code} ${rm.stderr}`);
          await cd.ctr(['container', 'rm', id]);
          await waitFor(async () => (await cd.shimProcesses()).length === 0, 15_000, 'the shim to exit after the last delete');
        } finally {
          await cleanup(cd, id);
        }
      });
    }

    test('two restarts in a row with containers of both runtimes; task ls shows them RUNNING each time', async () => {
      const ids = RUNTIMES.map((rt) => ({ rt, id: uniqueId(`rr-${short(rt)}`) }));
      try {
        for (const { rt, id } of ids) await cd.ctr(['run', '-d', '--runtime', rt, IMG, id, 'sleep', '600']);
        const pids = new Map<string, number>();
        for (const { id } of ids) pids.set(id, (await waitTaskStatus(cd, id, 'RUNNING')).pid);
        for (let round = 0; round < 2; round++) {
          await cd.restart();
          for (const { id } of ids) assert.equal((await waitTaskStatus(cd, id, 'RUNNING', 30_000)).pid, pids.get(id));
        }
        for (const { id } of ids) {
          await cd.ctr(['task', 'kill', '-s', 'SIGTERM', id]); // sleep as PID 1 ignores it
        }
        await sleep(500);
        for (const { id } of ids) assert.equal((await listTasks(cd)).find((t) => t.id === id)?.status, 'RUNNING');
        for (const { id } of ids) await cd.ctr(['task', 'kill', '-s', 'SIGKILL', id]);
        for (const { id } of ids) {
          await waitTaskStatus(cd, id, 'STOPPED');
          assert.equal((await stateOf(cd, id)).exitStatus, 137);
        }
      } finally {
        for (const { id } of ids) await cleanup(cd, id);
      }
      await waitFor(async () => (await cd.shimProcesses()).length === 0, 15_000, 'no shim left');
    });
  });
}

// The versions run side by side here: each case mostly waits out a 25 s outage of its own containerd.
describe('exits are never lost, every containerd version at once', { concurrency: true }, () => {
  for (const version of selectedVersions()) {
    describe(`exits are never lost on containerd ${version} (events through a recording proxy)`, { concurrency: 1 }, () => {
      let cd: Containerd;
      let dir: string;
      let proxy: EventsProxy;
      before(async () => {
        dir = await makeTempDir('evp-');
        const bin = await wrapperDir(dir, version, join(dir, 'ev.sock'));
        cd = await startContainerd({ version, shimDirs: [bin] });
        proxy = new EventsProxy(join(dir, 'ev.sock'), cd.ttrpcAddress);
        await proxy.up();
        await importImage(cd);
      });
      after(async () => {
        await cd?.stop();
        await proxy?.down();
        if (dir) await removeDir(dir);
      });

      /** Per runtime: a container whose init exits 42 and whose exec exits 7 on cue, and one to SIGKILL. */
      async function setup(): Promise<Array<{ rt: Runtime; id: string; k: string; initPid: number; kPid: number }>> {
        const out = [];
        for (const rt of RUNTIMES) {
          const id = uniqueId(`x-${short(rt)}`);
          const k = uniqueId(`k-${short(rt)}`);
          await cd.ctr(['run', '-d', '--runtime', rt, IMG, id, 'sh', '-c', waitScript('go', 42)]);
          await cd.ctr(['run', '-d', '--runtime', rt, IMG, k, 'sleep', '600']);
          const initPid = (await waitTaskStatus(cd, id, 'RUNNING')).pid;
          const kPid = (await waitTaskStatus(cd, k, 'RUNNING')).pid;
          await cd.ctr(['task', 'exec', '-d', '--exec-id', 'e1', id, 'sh', '-c', waitScript('goexec', 7, 'exec-leaving')]);
          out.push({ rt, id, k, initPid, kPid });
        }
        for (const { id } of out) {
          await waitFor(() => proxy.of(id).some((d) => d.ev.type === 'TaskExecStarted'), 20_000, `${id}: exec-started delivered`);
        }
        return out;
      }

      /** Exec exits first, then the init; the other container is SIGKILLed from outside. */
      async function exitAll(cs: Array<{ id: string; k: string; initPid: number; kPid: number }>): Promise<void> {
        for (const c of cs) await release(cd, c.id, 'goexec');
        for (const c of cs) await waitFile(cd, c.id, 'tmp/exec-leaving');
        await sleep(500);
        for (const c of cs) {
          await release(cd, c.id, 'go');
          signalPid(c.kPid, 'SIGKILL');
        }
        for (const c of cs) {
          await waitFor(async () => !(await isAlive(c.initPid)) && !(await isAlive(c.kPid)), 20_000, `${c.id} and ${c.k} to exit`);
        }
      }

      /** The three exits and their order, for ours asserted, for the reference reported. */
      async function checkDelivery(t: TestContext, cs: Array<{ rt: Runtime; id: string; k: string }>, what: string): Promise<void> {
        const ours = cs.find((c) => c.rt === OURS)!;
        await waitFor(
          () => exitsOf(proxy.of(ours.id)).length >= 2 && exitsOf(proxy.of(ours.k)).length >= 1,
          30_000,
          `ours: exits delivered after ${what}`,
        );
        await sleep(2000); // give the reference the same chance, and catch duplicates
        for (const c of cs) {
          const main = exitsOf(proxy.of(c.id));
          const killed = exitsOf(proxy.of(c.k));
          const summary = `${short(c.rt)} after ${what}: ${c.id} events ${JSON.stringify(topicsOf(proxy.of(c.id)))}, exits ${JSON.stringify(main)}; ${c.k} exits ${JSON.stringify(killed)}`;
          t.diagnostic(summary);
          if (c.rt !== OURS) continue;
          assert.deepEqual(main, [{ id: 'e1', status: 7 }, { id: c.id, status: 42 }], summary);
          assert.deepEqual(killed, [{ id: c.k, status: 137 }], summary);
          // Whole order for the container: nothing reordered around the outage. (containerd ≥ 1.7 deletes a task
          // whose exit arrives after a restart by itself: then /tasks/delete follows.)
          const topics = topicsOf(proxy.of(c.id));
          if (topics.at(-1) === '/tasks/delete') topics.pop();
          assert.deepEqual(topics, ['/tasks/create', '/tasks/start', '/tasks/exec-added(e1)', '/tasks/exec-started(e1)', '/tasks/exit(e1)', '/tasks/exit'], summary);
        }
      }

      /**
       * State shows STOPPED with the right status and a real exit time; rm works; the shims exit. A task that
       * containerd (≥ 1.7) already deleted on its own after the exit arrived is checked through /tasks/delete.
       */
      async function checkStateAndRemove(t: TestContext, cs: Array<{ rt: Runtime; id: string; k: string }>, from: Date, to: Date): Promise<void> {
        const inRange = (at: Date, who: string) =>
          assert.ok(at.getTime() >= from.getTime() - 1000 && at.getTime() <= to.getTime() + 1000, `${who}: exited_at ${at.toISOString()} not in [${from.toISOString()}, ${to.toISOString()}]`);
        for (const c of cs) {
          for (const [id, status] of [[c.id, 42], [c.k, 137]] as const) {
            const who = `${short(c.rt)} ${id}`;
            if (c.rt !== OURS) {
              // Asserted for ours only; for the reference, report what containerd shows.
              try {
                await waitTaskStatus(cd, id, 'STOPPED', 10_000);
                const st = await stateOf(cd, id);
                t.diagnostic(`${who}: task ls STOPPED, State exit_status ${st.exitStatus}, exited_at ${fromTimestamp(st.exitedAt).toISOString()}`);
              } catch (err) {
                const shown = (await listTasks(cd)).find((x) => x.id === id);
                t.diagnostic(`${who}: ${(err as Error).message.split('\n')[0]}; task ls shows ${shown ? shown.status : 'no task'}`);
              }
              await cleanup(cd, id);
              continue;
            }
            const deleted = proxy.of(id).find((d) => d.ev.type === 'TaskDelete');
            if (deleted) {
              const e = deleted.ev.event as { exitStatus: number; exitedAt: Parameters<typeof fromTimestamp>[0] };
              t.diagnostic(`${who}: deleted by containerd itself once the exit arrived`);
              assert.equal(e.exitStatus, status, who);
              inRange(fromTimestamp(e.exitedAt), who);
              continue;
            }
            let st: api.StateResponse;
            try {
              await waitTaskStatus(cd, id, 'STOPPED', 30_000);
              st = await stateOf(cd, id);
              if (id === c.id) assert.equal((await stateOf(cd, id, 'e1')).exitStatus, 7, who);
            } catch (err) {
              if (proxy.of(id).some((d) => d.ev.type === 'TaskDelete')) continue; // deleted meanwhile (see above)
              throw err;
            }
            assert.equal(st.status, 3, who);
            assert.equal(st.exitStatus, status, who);
            inRange(fromTimestamp(st.exitedAt), who);
            const rm = await cd.ctr(['task', 'rm', id], { allowFail: true });
            assert.ok(rm.code === 0 || rm.code === status, `${who} task rm: ${rm.code} ${rm.stderr}`);
          }
          for (const id of [c.id, c.k]) await cd.ctr(['container', 'rm', id], { allowFail: c.rt !== OURS });
        }
        const oursLeft = async () => (await cd.shimProcesses()).filter((p) => p.argv.some((x) => x.includes('containerd-shim-ts-v2')));
        await waitFor(async () => (await oursLeft()).length === 0, 20_000, 'our shims to exit after their last delete');
        const ours = cs.find((c) => c.rt === OURS)!;
        await waitFor(() => proxy.of(ours.id).some((d) => d.ev.type === 'TaskDelete'), 10_000, 'ours: /tasks/delete delivered');
      }

      test(`processes that exit while containerd is down for ${OUTAGE_MS / 1000} s are reported after it comes back`, async (t) => {
        const cs = await setup();
        try {
          const down = new Date();
          await cd.kill('SIGKILL');
          await exitAll(cs);
          await sleep(Math.max(0, OUTAGE_MS - (Date.now() - down.getTime())));
          const up = new Date();
          await cd.restart();
          await checkDelivery(t, cs, `containerd down ${Math.round((up.getTime() - down.getTime()) / 1000)} s`);
          await checkStateAndRemove(t, cs, down, up);
        } finally {
          for (const c of cs) {
            await cleanup(cd, c.id);
            await cleanup(cd, c.k);
          }
        }
      });

      test(`processes that exit while containerd's events endpoint is unreachable for ${OUTAGE_MS / 1000} s (containerd up): reported once it is back; the Task API is not blocked meanwhile`, async (t) => {
        const cs = await setup();
        let quickId = '';
        try {
          const down = new Date();
          await proxy.down();
          await exitAll(cs);
          // containerd itself still answers: State shows the exits at once.
          for (const c of cs) {
            await waitTaskStatus(cd, c.id, 'STOPPED');
            await waitTaskStatus(cd, c.k, 'STOPPED');
          }
          // The Task API is not held up by undeliverable events: create, start, wait, state all answer.
          const quick = uniqueId('q-ts');
          quickId = quick;
          await cd.ctr(['run', '-d', '--runtime', OURS, IMG, quick, 'sh', '-c', 'exit 5'], { timeoutMs: 60_000 });
          await waitTaskStatus(cd, quick, 'STOPPED');
          const qs = await connectShim(cd, quick);
          try {
            const w = await qs.call('Wait', { id: quick, execId: '' }, api.WaitRequest, api.WaitResponse);
            assert.equal(w.exitStatus, 5);
          } finally {
            qs.close();
          }
          // For the record: a task run and deleted entirely inside the outage (`ctr run --rm`).
          const gone = uniqueId('g-ts');
          const rr = await cd.ctr(['run', '--rm', '--runtime', OURS, IMG, gone, 'sh', '-c', 'exit 3'], { allowFail: true, timeoutMs: 60_000 });
          assert.equal(rr.code, 3, rr.stderr);
          await sleep(Math.max(0, OUTAGE_MS - (Date.now() - down.getTime())));
          const up = new Date();
          await proxy.up();
          await checkDelivery(t, cs, `events endpoint unreachable ${Math.round((up.getTime() - down.getTime()) / 1000)} s`);
          await waitFor(() => proxy.of(quick).some((d) => d.ev.type === 'TaskExit'), 30_000, 'the quick run\'s events');
          await cd.ctr(['task', 'rm', quick], { allowFail: true });
          await cd.ctr(['container', 'rm', quick]);
          await waitFor(() => proxy.of(quick).some((d) => d.ev.type === 'TaskDelete'), 10_000, 'the quick run\'s delete event');
          assert.deepEqual(topicsOf(proxy.of(quick)), ['/tasks/create', '/tasks/start', '/tasks/exit', '/tasks/delete']);
          // Its shim released its socket at Shutdown but stayed to deliver what was queued (≤ 60 s by default).
          await waitFor(() => proxy.of(gone).some((d) => d.ev.type === 'TaskDelete'), 30_000, 'the events of the task run and deleted during the outage');
          assert.deepEqual(topicsOf(proxy.of(gone)), ['/tasks/create', '/tasks/start', '/tasks/exit', '/tasks/delete']);
          assert.deepEqual(exitsOf(proxy.of(gone)), [{ id: gone, status: 3 }]);
          await checkStateAndRemove(t, cs, down, up);
        } finally {
          await proxy.up();
          if (quickId) await cleanup(cd, quickId);
          for (const c of cs) {
            await cleanup(cd, c.id);
            await cleanup(cd, c.k);
          }
        }
      });
    });
  }
});
