/**
 * Interop of our protocol layer with real Go peers, on every selected containerd version:
 * - our ttrpc client against the reference shim (containerd-shim-runc-v2) and ours, each serving a real
 *   container that containerd (a Go ttrpc client) created through it;
 * - our client publishing through containerd's own ttrpc Events/Forward service, seen by `ctr events`;
 * - byte-level: the raw response frames of both shims for the same hand-made requests, plus fixtures
 *   captured from the Go shim.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readlink } from 'node:fs/promises';
import { RUNTIMES, listTasks, selectedVersions, shimBinDir, startContainerd, waitTaskStatus, type Containerd, type Runtime } from '../harness/containerd.js';
import { DEFAULT_IMAGE, importImage } from '../harness/image.js';
import { isAlive, readProc, uniqueId, waitFor } from '../harness/util.js';
import { watchEvents } from '../harness/events.js';
import { TASK_SERVICE_V2, taskServiceFor } from '../harness/task-service.js';
import { bytesField, parseFields, RawTtrpcConn, TYPE_RESPONSE, type PbField, type RawFrame } from '../harness/raw-ttrpc.js';
import { TtrpcClient } from '../../protocol/ttrpc/client.js';
import { ShimError } from '../../protocol/errdefs.js';
import { eventAny } from '../../protocol/typeurl.js';
import { nowTimestamp } from '../../protocol/timestamp.js';
import * as api from '../../protocol/gen/containerd/runtime/v2/task/shim.js';
import { Status } from '../../protocol/gen/containerd/api/types/task/task.js';
import { ForwardRequest } from '../../protocol/gen/containerd/api/services/ttrpc/events/v1/events.js';
import { Empty } from '../../protocol/gen/google/protobuf/empty.js';

const IMG = DEFAULT_IMAGE;
const EVENTS_SERVICE = 'containerd.services.events.ttrpc.v1.Events';
const short = (rt: Runtime) => (rt === 'io.containerd.ts.v2' ? 'ts' : 'runc');

/** ttrpc Response bytes the Go shim (1.6.20, ttrpc v1.1.1) sends; re-checked live against every version below. */
const goStatus = (code: number, message: string): string => {
  const status = Buffer.concat([Buffer.from([0x08, code]), bytesField(2, message)]);
  return bytesField(1, status).toString('hex');
};
const FIXTURES = {
  stateUnknownId: '0a2408051220' + Buffer.from('container not created: not found').toString('hex'),
  unknownService: '0a13080c120f' + Buffer.from('service foo.Bar').toString('hex'),
  unknownMethod: '0a0f080c120b' + Buffer.from('method Nope').toString('hex'),
};
// The literals above are written out byte by byte; the builder cross-checks them.
assert.equal(FIXTURES.stateUnknownId, goStatus(5, 'container not created: not found'));
assert.equal(FIXTURES.unknownService, goStatus(12, 'service foo.Bar'));
assert.equal(FIXTURES.unknownMethod, goStatus(12, 'method Nope'));

async function cleanup(cd: Containerd, id: string): Promise<void> {
  await cd.ctr(['task', 'kill', '-s', 'SIGKILL', id], { allowFail: true });
  await waitFor(async () => !(await listTasks(cd)).some((t) => t.id === id && t.status === 'RUNNING'), 20_000, `${id} stopped`).catch(() => undefined);
  await cd.ctr(['task', 'rm', '-f', id], { allowFail: true });
  await cd.ctr(['container', 'rm', id], { allowFail: true });
}

async function callFails(p: Promise<unknown>): Promise<ShimError> {
  try {
    await p;
  } catch (err) {
    if (err instanceof ShimError) return err;
    throw err;
  }
  throw new Error('the call was expected to fail');
}

function expectedShimBinary(rt: Runtime): RegExp {
  return rt === 'io.containerd.ts.v2' ? /containerd-shim-ts-v2/ : /(^|\/)containerd-shim-runc-v2$/;
}

/** The shim daemon serving `id`, found without asking it: its cwd is the task's bundle. */
async function shimPidOf(cd: Containerd, id: string): Promise<number> {
  for (const p of await cd.shimProcesses()) {
    const cwd = await readlink(`/proc/${p.pid}/cwd`).catch(() => '');
    if (cwd.endsWith(`/${cd.namespace}/${id}`)) return p.pid;
  }
  throw new Error(`no shim process with bundle ${id}`);
}

/** The ttrpc Response of a successful call: exactly one field, the payload (2). */
function payloadOf(f: RawFrame): Buffer {
  const fields = parseFields(f.data);
  assert.deepEqual(fields.map((x) => x.no), [2], `expected a payload-only Response, got ${f.data.toString('hex')}`);
  return fields[0]!.value as Buffer;
}

const shape = (fields: PbField[]) => fields.map((f) => `${f.no}/${f.wire}`);
const field = (fields: PbField[], no: number) => fields.find((f) => f.no === no)?.value;

interface Capture {
  id: string;
  shimPid: number;
  taskPid: number;
  frames: Record<string, RawFrame>;
}

/** The same raw requests, with containerd's metadata, to one shim; every answer as read off the socket. */
async function capture(cd: Containerd, id: string, service: string): Promise<Omit<Capture, 'shimPid' | 'taskPid'>> {
  const conn = await RawTtrpcConn.open(cd.shimSocketPath(cd.namespace, id));
  const metadata = { 'containerd-namespace-ttrpc': cd.namespace };
  const timeoutNano = 10_000_000_000n;
  const task = (method: string, payload: Uint8Array) => ({ service, method, payload, metadata, timeoutNano });
  try {
    const frames: Record<string, RawFrame> = {};
    frames.stateUnknownId = await conn.call(1, task('State', api.StateRequest.encode({ id: 'nope', execId: '' }).finish()));
    frames.connect = await conn.call(3, task('Connect', api.ConnectRequest.encode({ id }).finish()));
    frames.unknownService = await conn.call(5, { ...task('State', new Uint8Array(0)), service: 'foo.Bar' });
    frames.unknownMethod = await conn.call(7, task('Nope', new Uint8Array(0)));
    frames.pidsUnknownId = await conn.call(9, task('Pids', api.PidsRequest.encode({ id: 'nope' }).finish()));
    frames.state = await conn.call(11, task('State', api.StateRequest.encode({ id, execId: '' }).finish()));
    // With a container still there, Shutdown is a no-op that answers Empty: a zero-length frame.
    frames.shutdown = await conn.call(13, task('Shutdown', api.ShutdownRequest.encode({ id, now: false }).finish()));
    return { id, frames };
  } finally {
    conn.close();
  }
}

for (const version of selectedVersions()) {
  describe(`interop with Go peers on containerd ${version}`, () => {
    let cd: Containerd;
    before(async () => {
      cd = await startContainerd({ version, shimDirs: [shimBinDir()] });
      await importImage(cd);
    });
    after(async () => {
      await cd?.stop();
    });

    for (const rt of RUNTIMES) {
      test(`${short(rt)}: our ttrpc client — Connect/State match ctr task ls, kill -9 gives STOPPED 137, unknown names give 12`, { timeout: 180_000 }, async (t) => {
        const id = uniqueId('ic');
        // containerd's Go ttrpc client creates and starts the task through the shim's server.
        await cd.ctr(['run', '-d', '--runtime', rt, IMG, id, 'sleep', '600'], { timeoutMs: 120_000 });
        // The 2.x reference shim serves only containerd.task.v3.Task (same messages); containerd picks by bootstrap.json.
        const service = await taskServiceFor(cd, id);
        t.diagnostic(`task service: ${service}`);
        const client = await TtrpcClient.connect(cd.shimSocketPath(cd.namespace, id), { timeoutMs: 10_000 });
        const opts = { metadata: { 'containerd-namespace-ttrpc': cd.namespace }, timeoutMs: 30_000 };
        try {
          const listed = await waitTaskStatus(cd, id, 'RUNNING');
          assert.ok(listed.pid > 0);

          const conn = await client.callTyped(service, 'Connect', { id }, api.ConnectRequest, api.ConnectResponse, opts);
          assert.equal(conn.taskPid, listed.pid);
          assert.ok(conn.shimPid > 0 && conn.shimPid !== conn.taskPid);
          assert.ok(await isAlive(conn.shimPid), `shim pid ${conn.shimPid} is not alive`);
          const shimProc = await readProc(conn.shimPid);
          assert.ok(shimProc?.argv.some((a) => expectedShimBinary(rt).test(a)), `shim argv: ${shimProc?.argv.join(' ')}`);
          assert.ok((await cd.shimProcesses()).some((p) => p.pid === conn.shimPid), 'the shim pid is one of this containerd\'s shims');

          const st = await client.callTyped(service, 'State', { id, execId: '' }, api.StateRequest, api.StateResponse, opts);
          assert.equal(st.id, id);
          assert.equal(st.pid, listed.pid);
          assert.equal(st.status, Status.RUNNING);
          assert.equal(Status[st.status], listed.status);

          const unknownMethod = await callFails(client.call(service, 'Nope', new Uint8Array(0), opts));
          assert.equal(unknownMethod.grpcCode, 12);
          assert.equal(unknownMethod.message, 'method Nope');
          const unknownService = await callFails(client.call('foo.Bar', 'State', new Uint8Array(0), opts));
          assert.equal(unknownService.grpcCode, 12);
          assert.equal(unknownService.message, 'service foo.Bar');
          const unknownId = await callFails(client.callTyped(service, 'State', { id: 'nope', execId: '' }, api.StateRequest, api.StateResponse, opts));
          assert.equal(unknownId.grpcCode, 5);
          assert.equal(unknownId.message, 'container not created');

          await client.callTyped(service, 'Kill', { id, execId: '', signal: 9, all: false }, api.KillRequest, Empty, opts);
          const stopped = await waitFor(async () => {
            const s = await client.callTyped(service, 'State', { id, execId: '' }, api.StateRequest, api.StateResponse, opts);
            return s.status === Status.STOPPED ? s : undefined;
          }, 20_000, `${id} STOPPED over ttrpc`);
          assert.equal(stopped.exitStatus, 137);
          assert.equal(stopped.pid, listed.pid);
          await waitTaskStatus(cd, id, 'STOPPED');
          // Connect still names the (dead) init pid.
          const again = await client.callTyped(service, 'Connect', { id }, api.ConnectRequest, api.ConnectResponse, opts);
          assert.equal(again.shimPid, conn.shimPid);
          assert.equal(again.taskPid, listed.pid);
        } finally {
          client.close();
          await cleanup(cd, id);
        }
      });
    }

    test('our client publishes through containerd\'s ttrpc Events/Forward; ctr events shows topic and namespace', { timeout: 120_000 }, async (t) => {
      const events = watchEvents(cd);
      const client = await TtrpcClient.connect(`unix://${cd.ttrpcAddress}`, { timeoutMs: 10_000 });
      try {
        const forward = (namespace: string, topic: string, containerId: string) =>
          client.callTyped(
            EVENTS_SERVICE,
            'Forward',
            { envelope: { timestamp: nowTimestamp(), namespace, topic, event: eventAny({ type: 'TaskOOM', event: { containerId } }) } },
            ForwardRequest,
            Empty,
            { metadata: { 'containerd-namespace-ttrpc': namespace }, timeoutMs: 5_000 },
          );
        const cases = [
          { namespace: cd.namespace, topic: '/tasks/oom', containerId: uniqueId('interop-x') },
          { namespace: 'interop-ns', topic: '/tasks/oom', containerId: uniqueId('interop-y') },
        ];
        for (const c of cases) {
          // `ctr events` subscribes asynchronously: publish again until its line shows up.
          const line = await waitFor(async () => {
            const seen = events.lines().find((l) => l.includes(c.containerId));
            if (seen) return seen;
            await forward(c.namespace, c.topic, c.containerId);
            return events.lines().find((l) => l.includes(c.containerId));
          }, 30_000, `ctr events to show ${c.containerId}`, 1_000);
          t.diagnostic(`ctr events: ${line}`);
          const words = line.trim().split(/\s+/);
          assert.ok(words.includes(c.topic), line);
          assert.ok(words.includes(c.namespace), line);
          assert.ok(line.includes(`"container_id":"${c.containerId}"`) || line.includes(c.containerId), line);
        }

        // containerd validates the envelope: topic must start with '/', namespace must be an identifier.
        const badTopic = await callFails(forward(cd.namespace, 'no-slash', 'interop-z'));
        t.diagnostic(`bad topic: code ${badTopic.grpcCode} ${JSON.stringify(badTopic.message)}`);
        assert.equal(badTopic.grpcCode, 3);
        assert.match(badTopic.message, /must start with '\/'/);
        const badNamespace = await callFails(forward('Not A Namespace!', '/tasks/oom', 'interop-z'));
        t.diagnostic(`bad namespace: code ${badNamespace.grpcCode} ${JSON.stringify(badNamespace.message)}`);
        assert.equal(badNamespace.grpcCode, 3);
        const unknownMethod = await callFails(client.call(EVENTS_SERVICE, 'Nope', new Uint8Array(0), { timeoutMs: 5_000 }));
        assert.equal(unknownMethod.grpcCode, 12);
        assert.equal(unknownMethod.message, 'method Nope');
        assert.ok(!events.lines().some((l) => l.includes('interop-z')), 'a rejected event was published');
      } finally {
        client.close();
        events.stop();
      }
    });

    test('byte level: both shims answer the same raw requests with the same bytes (the Go shim\'s fixtures)', { timeout: 240_000 }, async (t) => {
      const captures: Partial<Record<Runtime, Capture>> = {};
      const ids: string[] = [];
      // Identical requests to both: the service name the reference shim serves (v3 on 2.x; ours serves both).
      let service = TASK_SERVICE_V2;
      try {
        for (const rt of RUNTIMES) {
          const id = uniqueId(`raw-${short(rt)}`);
          ids.push(id);
          await cd.ctr(['run', '-d', '--runtime', rt, IMG, id, 'sleep', '600'], { timeoutMs: 120_000 });
          if (rt === 'io.containerd.runc.v2') service = await taskServiceFor(cd, id);
          const listed = await waitTaskStatus(cd, id, 'RUNNING');
          const shimPid = await shimPidOf(cd, id);
          captures[rt] = { ...(await capture(cd, id, service)), shimPid, taskPid: listed.pid };
        }
        const go = captures['io.containerd.runc.v2']!;
        const ours = captures['io.containerd.ts.v2']!;
        t.diagnostic(`task service: ${service}`);
        for (const [name, f] of Object.entries(go.frames)) t.diagnostic(`go ${name}: ${f.raw.toString('hex')}`);

        // Headers: same stream id back, response type, no flags, length = data length.
        for (const c of [go, ours]) {
          for (const f of Object.values(c.frames)) {
            assert.equal(f.type, TYPE_RESPONSE);
            assert.equal(f.flags, 0);
            assert.equal(f.length, f.data.length);
          }
        }

        // Errors: identical bytes, and equal to the fixtures captured from the Go shim.
        for (const name of ['stateUnknownId', 'unknownService', 'unknownMethod'] as const) {
          assert.equal(go.frames[name]!.data.toString('hex'), FIXTURES[name], `go ${name}`);
          assert.equal(ours.frames[name]!.data.toString('hex'), FIXTURES[name], `ours ${name}`);
        }
        assert.equal(ours.frames.pidsUnknownId!.raw.toString('hex'), go.frames.pidsUnknownId!.raw.toString('hex'), 'Pids unknown id');
        assert.equal(ours.frames.stateUnknownId!.raw.toString('hex'), go.frames.stateUnknownId!.raw.toString('hex'));

        // Connect: Response{payload: ConnectResponse{shim_pid, task_pid}}, no version; only the pid varints differ.
        for (const c of [go, ours]) {
          const fields = parseFields(payloadOf(c.frames.connect!));
          assert.deepEqual(shape(fields), ['1/0', '2/0'], `connect ${c.id}: ${c.frames.connect!.data.toString('hex')}`);
          assert.equal(Number(field(fields, 2)), c.taskPid);
          assert.equal(Number(field(fields, 1)), c.shimPid);
        }

        // State of a running task: same fields in the same order (zero-time exited_at included), same values
        // except those that embed the container id or pid (id, bundle, pid, stdio paths).
        const stateFields = (c: Capture) => parseFields(payloadOf(c.frames.state!));
        const goState = stateFields(go);
        const ourState = stateFields(ours);
        assert.deepEqual(shape(ourState), shape(goState), `State: go ${payloadOf(go.frames.state!).toString('hex')} ours ${payloadOf(ours.frames.state!).toString('hex')}`);
        for (const c of [go, ours]) {
          const f = stateFields(c);
          assert.equal((field(f, 1) as Buffer).toString(), c.id);
          assert.ok((field(f, 2) as Buffer).toString().endsWith(`/${c.id}`));
          assert.equal(Number(field(f, 3)), c.taskPid);
          assert.equal(Number(field(f, 4)), Status.RUNNING);
          // stdio: the FIFO paths ctr made, which embed the id (and a random dir).
          for (const [no, name] of [[5, 'stdin'], [6, 'stdout'], [7, 'stderr']] as const) {
            assert.ok((field(f, no) as Buffer).toString().endsWith(`/${c.id}-${name}`));
          }
        }
        const rest = (f: PbField[]) => f.filter((x) => x.no > 7).map((x) => `${x.no}:${Buffer.isBuffer(x.value) ? x.value.toString('hex') : x.value}`);
        assert.deepEqual(rest(ourState), rest(goState));

        // Shutdown with a live container: a zero-length Response, and both daemons stay.
        assert.equal(go.frames.shutdown!.length, 0);
        assert.equal(ours.frames.shutdown!.length, 0);
        for (const id of ids) assert.equal((await listTasks(cd)).find((x) => x.id === id)?.status, 'RUNNING');
      } finally {
        for (const id of ids) await cleanup(cd, id);
      }
    });
  });
}
