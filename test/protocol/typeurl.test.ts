import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ShimError } from '../../protocol/errdefs.js';
import * as cgroupsV1Gen from '../../protocol/gen/cgroups/stats/v1/metrics.js';
import * as cgroupsV2Gen from '../../protocol/gen/cgroups/v2/stats/metrics.js';
import * as eventsGen from '../../protocol/gen/containerd/api/events/task.js';
import * as runctypesGen from '../../protocol/gen/containerd/runtime/linux/runctypes/runc.js';
import * as ociGen from '../../protocol/gen/containerd/runtime/v2/runc/options/oci.js';
import { LinuxRuncCreateOptions, RuncCheckpointOptions, RuncOptions, TaskOOM } from '../../protocol/messages.js';
import {
  decodeEventAny,
  eventAny,
  eventTopic,
  eventTypeOfTopic,
  JsonTypeUrl,
  normalizeTypeUrl,
  packAny,
  packJsonAny,
  packKnownAny,
  TASK_EVENTS,
  TypeUrl,
  unpackAny,
  unpackAnyAs,
  unpackJsonAny,
  type TaskEventType,
} from '../../protocol/typeurl.js';

const isInvalidArgument = (pattern: RegExp) => (e: unknown) =>
  e instanceof ShimError && e.kind === 'InvalidArgument' && pattern.test(e.message);

test('type URLs are the proto full names from the generated packages, without a prefix', () => {
  assert.equal(TypeUrl.RuncOptions, `${ociGen.protobufPackage}.Options`);
  assert.equal(TypeUrl.RuncCheckpointOptions, `${ociGen.protobufPackage}.CheckpointOptions`);
  assert.equal(TypeUrl.RuncProcessDetails, `${ociGen.protobufPackage}.ProcessDetails`);
  assert.equal(TypeUrl.LinuxRuncCreateOptions, `${runctypesGen.protobufPackage}.CreateOptions`);
  assert.equal(TypeUrl.LinuxRuncCheckpointOptions, `${runctypesGen.protobufPackage}.CheckpointOptions`);
  assert.equal(TypeUrl.CgroupsV1Metrics, `${cgroupsV1Gen.protobufPackage}.Metrics`);
  assert.equal(TypeUrl.CgroupsV2Metrics, `${cgroupsV2Gen.protobufPackage}.Metrics`);
  for (const [type, { typeUrl }] of Object.entries(TASK_EVENTS)) {
    assert.equal(typeUrl, `${eventsGen.protobufPackage}.${type}`);
  }
  assert.equal(TypeUrl.CgroupsV1Metrics, 'io.containerd.cgroups.v1.Metrics');
  assert.equal(TypeUrl.RuncOptions, 'containerd.runc.v1.Options');
});

test('packAny / unpackAny round-trip, with and without type.googleapis.com/', () => {
  const opts = RuncOptions.create({ noPivotRoot: true, criuWorkPath: '/w' });
  const any = packAny('containerd.runc.v1.Options', RuncOptions, opts);
  assert.ok(Buffer.isBuffer(any.value));
  const un = unpackAny(any);
  assert.equal(un.typeUrl, 'containerd.runc.v1.Options');
  if (un.typeUrl !== 'containerd.runc.v1.Options') throw new Error('narrowing');
  assert.equal(un.message.criuWorkPath, '/w');

  const prefixed = { typeUrl: 'type.googleapis.com/containerd.runc.v1.Options', value: any.value };
  assert.equal(unpackAny(prefixed).typeUrl, 'containerd.runc.v1.Options');
  assert.deepEqual(unpackAnyAs(prefixed, 'containerd.runc.v1.Options'), opts);
  assert.equal(normalizeTypeUrl('type.googleapis.com/x.Y'), 'x.Y');
  assert.equal(normalizeTypeUrl(JsonTypeUrl.Spec), JsonTypeUrl.Spec);
});

test('legacy containerd.linux.runc options are registered', () => {
  const any = packKnownAny('containerd.linux.runc.CreateOptions', LinuxRuncCreateOptions.create({ shimCgroup: '/x', ioUid: 7 }));
  const un = unpackAnyAs(any, 'containerd.linux.runc.CreateOptions');
  assert.equal(un.shimCgroup, '/x');
  assert.equal(un.ioUid, 7);
  const cp = packKnownAny(TypeUrl.RuncCheckpointOptions, RuncCheckpointOptions.create({ exit: true, emptyNamespaces: ['network'] }));
  assert.deepEqual(unpackAnyAs(cp, 'containerd.runc.v1.CheckpointOptions').emptyNamespaces, ['network']);
});

test('an empty Any value decodes to the default message (Go does the same)', () => {
  assert.deepEqual(unpackAnyAs({ typeUrl: TypeUrl.RuncOptions, value: new Uint8Array(0) }, TypeUrl.RuncOptions), RuncOptions.create());
});

test('unknown type URL -> InvalidArgument naming the URL', () => {
  assert.throws(
    () => unpackAny({ typeUrl: 'example.com.Unknown', value: new Uint8Array(0) }),
    isInvalidArgument(/unsupported type URL "example\.com\.Unknown"/),
  );
  assert.throws(
    () => unpackAny({ typeUrl: JsonTypeUrl.Process, value: Buffer.from('{}') }),
    isInvalidArgument(/JSON type: use unpackJsonAny/),
  );
  assert.throws(
    () => unpackAny({ typeUrl: 'toString', value: new Uint8Array(0) }),
    isInvalidArgument(/unsupported type URL/),
  );
  const wire = (() => {
    try {
      unpackAny({ typeUrl: 'x.Y', value: new Uint8Array(0) });
    } catch (e) {
      return (e as ShimError).wireMessage();
    }
    return '';
  })();
  assert.equal(wire, 'unsupported type URL "x.Y" in Any: invalid argument');
});

test('garbage payload -> InvalidArgument', () => {
  // field 6 (binary_name), length-delimited, claims 100 bytes but has 1
  assert.throws(
    () => unpackAny({ typeUrl: TypeUrl.RuncOptions, value: Uint8Array.from([0x32, 100, 0x41]) }),
    isInvalidArgument(/cannot decode Any of type "containerd\.runc\.v1\.Options"/),
  );
  // truncated varint
  assert.throws(
    () => unpackAny({ typeUrl: 'containerd.events.TaskExit', value: Uint8Array.from([0x18, 0xff]) }),
    isInvalidArgument(/cannot decode/),
  );
});

test('unpackAnyAs with the wrong type -> InvalidArgument', () => {
  const any = packKnownAny(TypeUrl.RuncCheckpointOptions, RuncCheckpointOptions.create({ exit: true }));
  assert.throws(() => unpackAnyAs(any, 'containerd.runc.v1.Options'), isInvalidArgument(/expected an Any of type "containerd\.runc\.v1\.Options"/));
});

test('JSON Anys: OCI Process, LinuxResources, Spec, Features', () => {
  const process = { terminal: false, user: { uid: 0, gid: 0 }, args: ['sh', '-c', 'echo hi'], cwd: '/' };
  const any = packJsonAny(JsonTypeUrl.Process, process);
  assert.equal(any.typeUrl, 'types.containerd.io/opencontainers/runtime-spec/1/Process');
  assert.equal(any.value.toString('utf8'), JSON.stringify(process));
  assert.deepEqual(unpackJsonAny(any, JsonTypeUrl.Process), process);

  const resources = { memory: { limit: 1 << 30 }, cpu: { shares: 512 } };
  const r = packJsonAny(JsonTypeUrl.LinuxResources, resources);
  assert.equal(r.typeUrl, 'types.containerd.io/opencontainers/runtime-spec/1/LinuxResources');
  assert.deepEqual(unpackJsonAny(r, [JsonTypeUrl.LinuxResources, JsonTypeUrl.WindowsResources]), resources);
  assert.equal(JsonTypeUrl.Spec, 'types.containerd.io/opencontainers/runtime-spec/1/Spec');
  assert.equal(JsonTypeUrl.Features, 'types.containerd.io/opencontainers/runtime-spec/1/features/Features');

  // Like the Go shim, no type check unless asked for one.
  assert.deepEqual(unpackJsonAny({ typeUrl: 'anything', value: Buffer.from('{"a":1}') }), { a: 1 });
});

test('JSON Any errors -> InvalidArgument', () => {
  assert.throws(
    () => unpackJsonAny({ typeUrl: JsonTypeUrl.Spec, value: Buffer.from('{"a":1}') }, JsonTypeUrl.Process),
    isInvalidArgument(/expected an Any of type ".*\/1\/Process", got ".*\/1\/Spec"/),
  );
  assert.throws(
    () => unpackJsonAny({ typeUrl: JsonTypeUrl.Process, value: Buffer.from('{"args": [') }),
    isInvalidArgument(/cannot decode JSON Any of type ".*\/1\/Process"/),
  );
  assert.throws(() => packJsonAny(JsonTypeUrl.Process, undefined), isInvalidArgument(/cannot encode/));
});

test('task event topic table', () => {
  const expected: Record<TaskEventType, string> = {
    TaskCreate: '/tasks/create',
    TaskStart: '/tasks/start',
    TaskExit: '/tasks/exit',
    TaskDelete: '/tasks/delete',
    TaskExecAdded: '/tasks/exec-added',
    TaskExecStarted: '/tasks/exec-started',
    TaskPaused: '/tasks/paused',
    TaskResumed: '/tasks/resumed',
    TaskOOM: '/tasks/oom',
    TaskCheckpointed: '/tasks/checkpointed',
  };
  assert.deepEqual(Object.keys(TASK_EVENTS).sort(), Object.keys(expected).sort());
  for (const [type, topic] of Object.entries(expected) as [TaskEventType, string][]) {
    assert.equal(eventTopic(type), topic);
    assert.equal(eventTypeOfTopic(topic), type);
    assert.equal(TASK_EVENTS[type].typeUrl, `containerd.events.${type}`);
  }
  assert.equal(eventTypeOfTopic('/tasks/?'), undefined);
  assert.equal(eventTypeOfTopic('/containers/create'), undefined);
});

test('eventAny / decodeEventAny', () => {
  const oom = eventAny({ type: 'TaskOOM', event: { containerId: 'c1' } });
  assert.equal(oom.typeUrl, 'containerd.events.TaskOOM');
  assert.deepEqual(TaskOOM.decode(oom.value), { containerId: 'c1' });
  assert.deepEqual(decodeEventAny(oom), { type: 'TaskOOM', event: { containerId: 'c1' } });

  const del = eventAny({
    type: 'TaskDelete',
    event: { containerId: 'c1', pid: 5, exitStatus: 0, exitedAt: { seconds: 1, nanos: 2 }, id: '' },
  });
  const back = decodeEventAny(del);
  assert.equal(back.type, 'TaskDelete');
  if (back.type !== 'TaskDelete') throw new Error('narrowing');
  assert.deepEqual(back.event.exitedAt, { seconds: 1, nanos: 2 });

  assert.throws(() => decodeEventAny(packKnownAny(TypeUrl.RuncOptions, RuncOptions.create())), isInvalidArgument(/not a task event/));
});
