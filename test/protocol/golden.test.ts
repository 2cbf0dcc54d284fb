// Golden bytes: every fixture below was produced by protoc itself from the ORIGINAL Debian protos (gogo.proto on
// the include path), i.e. the bytes a Go shim / containerd 1.6.20 produce and expect:
//   protoc --encode=<message> -I /usr/share/gocode/src/github.com/gogo/protobuf -I /usr/share/gocode/src \
//     -I /usr/include <file.proto> <<< '<textproto>' | xxd -p
// The last test re-runs protoc for a few of them when protoc and the Debian packages are installed.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { promisify } from 'node:util';
import {
  cgroupsV1,
  cgroupsV2,
  CgroupsV1Metrics,
  CgroupsV2Metrics,
  ConnectResponse,
  CreateTaskRequest,
  DeleteResponse,
  ForwardRequest,
  Mount,
  PidsResponse,
  ProcessDetails,
  RuncOptions,
  RuntimeInfo,
  StateResponse,
  Status,
  TaskCreate,
  UpdateTaskRequest,
} from '../../protocol/messages.js';
import { fromTimestamp, isZeroTime, toTimestamp, ZERO_TIME } from '../../protocol/timestamp.js';
import {
  eventAny,
  JsonTypeUrl,
  packJsonAny,
  packKnownAny,
  TypeUrl,
  unpackAnyAs,
  unpackJsonAny,
} from '../../protocol/typeurl.js';

const hexOf = (bytes: Uint8Array) => Buffer.from(bytes).toString('hex');
const bytesOf = (hex: string) => Buffer.from(hex, 'hex');

const GOLDEN = {
  // pid 4294967295 (init.pid missing -> -1 as uint32), exit_status 137, exited_at 1700000000.123456789
  deleteResponse: '08ffffffff0f1089011a0b0880e2cfaa0610959aef3a',
  // pid 0, exit_status 0, exited_at = Go zero time: the field is present, seconds is a 10-byte varint
  deleteResponseZero: '1a0b088092b8c398feffffff01',
  // shim_pid 4242, task_pid 4243, version "1.0.0"
  connectResponse: '0892211093211a05312e302e30',
  stateResponse:
    '0a02633112382f72756e2f636f6e7461696e6572642f696f2e636f6e7461696e6572642e72756e74696d652e76322e7461736b2f6465' +
    '6661756c742f633118932120022a1f2f72756e2f636f6e7461696e6572642f6669666f2f312f63312d737464696e32202f72756e2f63' +
    '6f6e7461696e6572642f6669666f2f312f63312d7374646f75744001520b088092b8c398feffffff01',
  // binary_name "crun", root "/run/containerd/runc", systemd_cgroup, io_uid/io_gid 1000
  runcOptions: '20e80728e80732046372756e3a142f72756e2f636f6e7461696e6572642f72756e634801',
  createTaskRequest:
    '0a02633112052f622f63311a480a076f7665726c617912076f7665726c61792209696e6465783d6f6666220a776f726b6469723d2f7722' +
    '0b75707065726469723d2f7522106c6f7765726469723d2f6c313a2f6c321a1d0a0462696e6412042f7372631a042f64737422057262' +
    '696e642202726f2a052f662f696e32062f662f6f75743a062f662f65727252420a1a636f6e7461696e6572642e72756e632e76312e4f' +
    '7074696f6e73122420e80728e80732046372756e3a142f72756e2f636f6e7461696e6572642f72756e634801',
  pidsResponse:
    '0a2d080a12290a21636f6e7461696e6572642e72756e632e76312e50726f6365737344657461696c7312040a0265310a02080b',
  updateTaskRequest: '0a0263311a060a01611201311a060a0162120132',
  taskExit: '0a026331120263311893212089012a080880e2cfaa061005',
  taskCreate:
    '0a02633112052f622f63311a160a076f7665726c617912076f7665726c61792202726f22110a052f662f696e12062f662f6f75742001309321',
  forwardRequest:
    '0a560a060881e2cfaa06120764656661756c741a0b2f7461736b732f6578697422360a1a636f6e7461696e6572642e6576656e74732e' +
    '5461736b4578697412180a026331120263311893212089012a080880e2cfaa061005',
  // pids {current 3, limit max}, memory {usage 1 MiB, usage_limit max}, memory_events {oom_kill 1}
  cgroupsV2Metrics: '0a0d080310ffffffffffffffffff01221180028080408802ffffffffffffffffff0142022801',
  // pids {current 3}, cpu {usage {total 123, per_cpu [100, 23]}}, memory {usage {limit 2^63-4096, usage 4096}}
  cgroupsV1Metrics: '120208031a080a06087b2202641722108a020d0880e0ffffffffffff7f108020',
};

const RUNC_OPTIONS = RuncOptions.create({
  binaryName: 'crun',
  root: '/run/containerd/runc',
  systemdCgroup: true,
  ioUid: 1000,
  ioGid: 1000,
});

function exitedAt1700() {
  return { seconds: 1700000000, nanos: 123456789 };
}

test('DeleteResponse without init.pid: pid -1 as uint32, exit 137', () => {
  const msg: DeleteResponse = { pid: -1 >>> 0, exitStatus: 137, exitedAt: exitedAt1700() };
  assert.equal(msg.pid, 4294967295);
  assert.equal(hexOf(DeleteResponse.encode(msg).finish()), GOLDEN.deleteResponse);
  assert.deepEqual(DeleteResponse.decode(bytesOf(GOLDEN.deleteResponse)), msg);
});

test('DeleteResponse with Go zero time keeps exited_at on the wire', () => {
  const msg: DeleteResponse = { pid: 0, exitStatus: 0, exitedAt: toTimestamp(undefined) };
  assert.equal(hexOf(DeleteResponse.encode(msg).finish()), GOLDEN.deleteResponseZero);
  const back = DeleteResponse.decode(bytesOf(GOLDEN.deleteResponseZero));
  assert.deepEqual(back.exitedAt, ZERO_TIME);
  assert.ok(isZeroTime(back.exitedAt));
  // A peer that omits the field: decoders read the same zero time.
  const omitted = DeleteResponse.decode(new Uint8Array(0));
  assert.equal(omitted.exitedAt, undefined);
  assert.equal(fromTimestamp(omitted.exitedAt).toISOString(), '0001-01-01T00:00:00.000Z');
});

test('ConnectResponse', () => {
  const msg = ConnectResponse.create({ shimPid: 4242, taskPid: 4243, version: '1.0.0' });
  assert.equal(hexOf(ConnectResponse.encode(msg).finish()), GOLDEN.connectResponse);
  assert.deepEqual(ConnectResponse.decode(bytesOf(GOLDEN.connectResponse)), msg);
});

test('StateResponse (running, terminal, zero exited_at)', () => {
  const msg: StateResponse = {
    id: 'c1',
    bundle: '/run/containerd/io.containerd.runtime.v2.task/default/c1',
    pid: 4243,
    status: Status.RUNNING,
    stdin: '/run/containerd/fifo/1/c1-stdin',
    stdout: '/run/containerd/fifo/1/c1-stdout',
    stderr: '',
    terminal: true,
    exitStatus: 0,
    exitedAt: toTimestamp(undefined),
    execId: '',
  };
  assert.equal(hexOf(StateResponse.encode(msg).finish()), GOLDEN.stateResponse);
  assert.deepEqual(StateResponse.decode(bytesOf(GOLDEN.stateResponse)), msg);
});

test('CreateTaskRequest with mounts and a runc Options Any round-trips', () => {
  const msg = CreateTaskRequest.create({
    id: 'c1',
    bundle: '/b/c1',
    rootfs: [
      Mount.create({
        type: 'overlay',
        source: 'overlay',
        options: ['index=off', 'workdir=/w', 'upperdir=/u', 'lowerdir=/l1:/l2'],
      }),
      Mount.create({ type: 'bind', source: '/src', target: '/dst', options: ['rbind', 'ro'] }),
    ],
    stdin: '/f/in',
    stdout: '/f/out',
    stderr: '/f/err',
    options: packKnownAny(TypeUrl.RuncOptions, RUNC_OPTIONS),
  });
  assert.equal(hexOf(RuncOptions.encode(RUNC_OPTIONS).finish()), GOLDEN.runcOptions);
  const bytes = CreateTaskRequest.encode(msg).finish();
  assert.equal(hexOf(bytes), GOLDEN.createTaskRequest);

  const back = CreateTaskRequest.decode(bytes);
  assert.deepEqual(back, msg);
  assert.equal(back.rootfs[1]?.target, '/dst');
  assert.ok(back.options);
  assert.deepEqual(unpackAnyAs(back.options, 'containerd.runc.v1.Options'), RUNC_OPTIONS);
});

test('PidsResponse with ProcessDetails info', () => {
  const msg = PidsResponse.create({
    processes: [
      { pid: 10, info: packKnownAny(TypeUrl.RuncProcessDetails, ProcessDetails.create({ execId: 'e1' })) },
      { pid: 11, info: undefined },
    ],
  });
  assert.equal(hexOf(PidsResponse.encode(msg).finish()), GOLDEN.pidsResponse);
  const info = PidsResponse.decode(bytesOf(GOLDEN.pidsResponse)).processes[0]?.info;
  assert.ok(info);
  assert.equal(unpackAnyAs(info, 'containerd.runc.v1.ProcessDetails').execId, 'e1');
});

test('UpdateTaskRequest annotations map', () => {
  const msg = UpdateTaskRequest.create({ id: 'c1', annotations: { a: '1', b: '2' } });
  assert.equal(hexOf(UpdateTaskRequest.encode(msg).finish()), GOLDEN.updateTaskRequest);
  assert.deepEqual(UpdateTaskRequest.decode(bytesOf(GOLDEN.updateTaskRequest)).annotations, { a: '1', b: '2' });
});

test('TaskExit event Any and its ForwardRequest envelope', () => {
  const event = eventAny({
    type: 'TaskExit',
    event: { containerId: 'c1', id: 'c1', pid: 4243, exitStatus: 137, exitedAt: { seconds: 1700000000, nanos: 5 } },
  });
  assert.equal(event.typeUrl, 'containerd.events.TaskExit');
  assert.equal(hexOf(event.value), GOLDEN.taskExit);
  const fwd = ForwardRequest.create({
    envelope: { timestamp: { seconds: 1700000001, nanos: 0 }, namespace: 'default', topic: '/tasks/exit', event },
  });
  assert.equal(hexOf(ForwardRequest.encode(fwd).finish()), GOLDEN.forwardRequest);
  assert.deepEqual(ForwardRequest.decode(bytesOf(GOLDEN.forwardRequest)), fwd);
});

test('TaskCreate event with rootfs and TaskIO', () => {
  const msg = TaskCreate.create({
    containerId: 'c1',
    bundle: '/b/c1',
    rootfs: [{ type: 'overlay', source: 'overlay', target: '', options: ['ro'] }],
    io: { stdin: '/f/in', stdout: '/f/out', stderr: '', terminal: true },
    pid: 4243,
  });
  assert.equal(hexOf(TaskCreate.encode(msg).finish()), GOLDEN.taskCreate);
  assert.deepEqual(TaskCreate.decode(bytesOf(GOLDEN.taskCreate)), msg);
});

test('cgroup v2 metrics carry uint64 max as bigint', () => {
  const max = 2n ** 64n - 1n;
  const msg = CgroupsV2Metrics.create({
    pids: { current: 3n, limit: max },
    memory: cgroupsV2.MemoryStat.create({ usage: 1048576n, usageLimit: max }),
    memoryEvents: { oomKill: 1n },
  });
  const bytes = CgroupsV2Metrics.encode(msg).finish();
  assert.equal(hexOf(bytes), GOLDEN.cgroupsV2Metrics);
  const back = CgroupsV2Metrics.decode(bytes);
  assert.equal(back.pids?.limit, max);
  assert.equal(back.memory?.usageLimit, max);
  assert.equal(back.memoryEvents?.oomKill, 1n);
  const any = packKnownAny(TypeUrl.CgroupsV2Metrics, msg);
  assert.equal(any.typeUrl, 'io.containerd.cgroups.v2.Metrics');
  assert.deepEqual(unpackAnyAs(any, 'io.containerd.cgroups.v2.Metrics'), back);
});

test('cgroup v1 metrics', () => {
  const msg = CgroupsV1Metrics.create({
    pids: { current: 3n, limit: 0n },
    cpu: { usage: cgroupsV1.CPUUsage.create({ total: 123n, perCpu: [100n, 23n] }) },
    memory: cgroupsV1.MemoryStat.create({ usage: { limit: 9223372036854771712n, usage: 4096n } }),
  });
  assert.equal(hexOf(CgroupsV1Metrics.encode(msg).finish()), GOLDEN.cgroupsV1Metrics);
  const back = CgroupsV1Metrics.decode(bytesOf(GOLDEN.cgroupsV1Metrics));
  assert.deepEqual(back.cpu?.usage?.perCpu, [100n, 23n]);
  assert.equal(back.memory?.usage?.limit, 9223372036854771712n);
});

test('RuntimeInfo (containerd 2.x -info) round-trips with a features JSON Any', () => {
  const features = { ociVersionMin: '1.0.0', ociVersionMax: '1.1.0', hooks: ['prestart'] };
  const msg = RuntimeInfo.create({
    name: 'io.containerd.ts.v2',
    version: { version: '0.1.0', revision: 'abc' },
    features: packJsonAny(JsonTypeUrl.Features, features),
    annotations: { 'io.containerd.ts.node': 'v20' },
  });
  const bytes = RuntimeInfo.encode(msg).finish();
  // Field 1 is the name; field 2 the version message; field 4 the features Any.
  assert.equal(bytes[0], 0x0a);
  const back = RuntimeInfo.decode(bytes);
  assert.deepEqual(back, msg);
  assert.ok(back.features);
  assert.deepEqual(unpackJsonAny(back.features, JsonTypeUrl.Features), features);
});

const GOSRC = '/usr/share/gocode/src';
const SHIM_PROTO = 'github.com/containerd/containerd/runtime/v2/task/shim.proto';
const haveProtoc = existsSync('/usr/bin/protoc') && existsSync(`${GOSRC}/${SHIM_PROTO}`);

test('fixtures match what protoc encodes from the Debian protos', { skip: !haveProtoc && 'no protoc/Debian protos' }, async () => {
  const encode = async (message: string, file: string, text: string): Promise<string> => {
    const run = promisify(execFile);
    const child = run(
      'protoc',
      [`--encode=${message}`, `-I${GOSRC}/github.com/gogo/protobuf`, `-I${GOSRC}`, '-I/usr/include', file],
      { encoding: 'buffer', timeout: 30_000 },
    );
    child.child.stdin?.end(text);
    return hexOf((await child).stdout);
  };
  assert.equal(
    await encode('containerd.task.v2.DeleteResponse', SHIM_PROTO, 'pid: 4294967295 exit_status: 137 exited_at { seconds: 1700000000 nanos: 123456789 }'),
    GOLDEN.deleteResponse,
  );
  assert.equal(await encode('containerd.task.v2.DeleteResponse', SHIM_PROTO, 'exited_at { seconds: -62135596800 }'), GOLDEN.deleteResponseZero);
  assert.equal(
    await encode('containerd.task.v2.ConnectResponse', SHIM_PROTO, 'shim_pid: 4242 task_pid: 4243 version: "1.0.0"'),
    GOLDEN.connectResponse,
  );
  assert.equal(
    await encode(
      'io.containerd.cgroups.v2.Metrics',
      'github.com/containerd/cgroups/v2/stats/metrics.proto',
      'pids { current: 3 limit: 18446744073709551615 } memory { usage: 1048576 usage_limit: 18446744073709551615 } memory_events { oom_kill: 1 }',
    ),
    GOLDEN.cgroupsV2Metrics,
  );
});
