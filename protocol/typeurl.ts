/**
 * google.protobuf.Any the way containerd's typeurl package does it (shim-v2-protocol.md §4.3):
 * - protobuf messages: type_url = the fully qualified message name, with NO `type.googleapis.com/` prefix
 *   (we still accept that prefix when decoding); value = protobuf bytes.
 * - OCI runtime-spec structs: type_url = `types.containerd.io/opencontainers/runtime-spec/1/<Type>`,
 *   value = JSON.
 * Also the task event table (topic <-> message) and `eventAny` for the publisher.
 *
 * Errors: an Any whose type URL we do not know, or whose payload does not decode, is the peer's mistake in
 * the request, so both are ShimError InvalidArgument.
 */
import type { BinaryReader, BinaryWriter } from '@bufbuild/protobuf/wire';
import { invalidArgument } from './errdefs.js';
import { Metrics as CgroupsV1Metrics } from './gen/cgroups/stats/v1/metrics.js';
import { Metrics as CgroupsV2Metrics } from './gen/cgroups/v2/stats/metrics.js';
import {
  TaskCheckpointed,
  TaskCreate,
  TaskDelete,
  TaskExecAdded,
  TaskExecStarted,
  TaskExit,
  TaskOOM,
  TaskPaused,
  TaskResumed,
  TaskStart,
} from './gen/containerd/api/events/task.js';
import {
  CheckpointOptions as LinuxRuncCheckpointOptions,
  CreateOptions as LinuxRuncCreateOptions,
  ProcessDetails as LinuxRuncProcessDetails,
  RuncOptions as LinuxRuncOptions,
} from './gen/containerd/runtime/linux/runctypes/runc.js';
import {
  CheckpointOptions as RuncCheckpointOptions,
  Options as RuncOptions,
  ProcessDetails as RuncProcessDetails,
} from './gen/containerd/runtime/v2/runc/options/oci.js';
import { Any } from './gen/google/protobuf/any.js';

export { Any };

/** What ts-proto generates for every message (`Foo.encode` / `Foo.decode`). */
export interface MessageCodec<T> {
  encode(message: T, writer?: BinaryWriter): BinaryWriter;
  decode(input: BinaryReader | Uint8Array, length?: number): T;
}

/** The Any fields we read; accepts generated `Any`s and anything shaped like one. */
export interface AnyLike {
  typeUrl: string;
  value: Uint8Array;
}

// ---- protobuf Anys ----------------------------------------------------------------------------------------

/** Protobuf messages the shim packs or unpacks, keyed by containerd's exact type URL. */
const PROTO_TYPES = {
  'containerd.runc.v1.Options': RuncOptions,
  'containerd.runc.v1.CheckpointOptions': RuncCheckpointOptions,
  'containerd.runc.v1.ProcessDetails': RuncProcessDetails,
  // containerd's client still sends these for runtimes whose name is not io.containerd.runc.*.
  'containerd.linux.runc.CreateOptions': LinuxRuncCreateOptions,
  'containerd.linux.runc.CheckpointOptions': LinuxRuncCheckpointOptions,
  'containerd.linux.runc.RuncOptions': LinuxRuncOptions,
  'containerd.linux.runc.ProcessDetails': LinuxRuncProcessDetails,
  'io.containerd.cgroups.v1.Metrics': CgroupsV1Metrics,
  'io.containerd.cgroups.v2.Metrics': CgroupsV2Metrics,
  'containerd.events.TaskCreate': TaskCreate,
  'containerd.events.TaskStart': TaskStart,
  'containerd.events.TaskExit': TaskExit,
  'containerd.events.TaskDelete': TaskDelete,
  'containerd.events.TaskExecAdded': TaskExecAdded,
  'containerd.events.TaskExecStarted': TaskExecStarted,
  'containerd.events.TaskPaused': TaskPaused,
  'containerd.events.TaskResumed': TaskResumed,
  'containerd.events.TaskOOM': TaskOOM,
  'containerd.events.TaskCheckpointed': TaskCheckpointed,
} as const satisfies Record<string, MessageCodec<unknown>>;

type ProtoTypes = typeof PROTO_TYPES;
export type ProtoTypeUrl = keyof ProtoTypes;
/** The decoded message type for a registered type URL. */
export type ProtoMessage<K extends ProtoTypeUrl> = ReturnType<ProtoTypes[K]['decode']>;
/** Result of `unpackAny`: switch on `typeUrl` to get a typed `message`. */
export type UnpackedAny = { [K in ProtoTypeUrl]: { typeUrl: K; message: ProtoMessage<K> } }[ProtoTypeUrl];

/** Type URL constants for the protobuf types (handy for comparisons). */
export const TypeUrl = {
  RuncOptions: 'containerd.runc.v1.Options',
  RuncCheckpointOptions: 'containerd.runc.v1.CheckpointOptions',
  RuncProcessDetails: 'containerd.runc.v1.ProcessDetails',
  LinuxRuncCreateOptions: 'containerd.linux.runc.CreateOptions',
  LinuxRuncCheckpointOptions: 'containerd.linux.runc.CheckpointOptions',
  LinuxRuncOptions: 'containerd.linux.runc.RuncOptions',
  LinuxRuncProcessDetails: 'containerd.linux.runc.ProcessDetails',
  CgroupsV1Metrics: 'io.containerd.cgroups.v1.Metrics',
  CgroupsV2Metrics: 'io.containerd.cgroups.v2.Metrics',
} as const satisfies Record<string, ProtoTypeUrl>;

const GOOGLE_PREFIX = 'type.googleapis.com/';
const JSON_TYPE_PREFIX = 'types.containerd.io/';

/** The type URL containerd would use: drops a `type.googleapis.com/` prefix (Go's typeurl never writes it). */
export function normalizeTypeUrl(url: string): string {
  return url.startsWith(GOOGLE_PREFIX) ? url.slice(GOOGLE_PREFIX.length) : url;
}

function isProtoTypeUrl(url: string): url is ProtoTypeUrl {
  return Object.prototype.hasOwnProperty.call(PROTO_TYPES, url);
}

function asBuffer(bytes: Uint8Array): Buffer {
  return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** Packs any protobuf message under the given type URL (not checked against the registry). */
export function packAny<T>(typeUrl: string, codec: MessageCodec<T>, msg: T): Any {
  return { typeUrl, value: asBuffer(codec.encode(msg).finish()) };
}

/** Packs a registered message; the type URL picks the codec, so the two cannot disagree. */
export function packKnownAny<K extends ProtoTypeUrl>(typeUrl: K, msg: ProtoMessage<K>): Any {
  const codec: MessageCodec<unknown> = PROTO_TYPES[typeUrl];
  return packAny(typeUrl, codec, msg);
}

/**
 * Decodes a protobuf Any of a registered type. Unknown type URL (including the JSON OCI types, see
 * `unpackJsonAny`) or undecodable payload -> ShimError InvalidArgument.
 */
export function unpackAny(any: AnyLike): UnpackedAny {
  const typeUrl = normalizeTypeUrl(any.typeUrl);
  if (!isProtoTypeUrl(typeUrl)) {
    const hint = typeUrl.startsWith(JSON_TYPE_PREFIX) ? ' (a JSON type: use unpackJsonAny)' : '';
    throw invalidArgument(`unsupported type URL "${any.typeUrl}" in Any${hint}`);
  }
  const codec: MessageCodec<unknown> = PROTO_TYPES[typeUrl];
  try {
    return { typeUrl, message: codec.decode(any.value) } as UnpackedAny;
  } catch (err) {
    throw invalidArgument(`cannot decode Any of type "${typeUrl}": ${(err as Error).message}`, err);
  }
}

/** Decodes an Any that must be of one registered type, e.g. the runc Options of CreateTaskRequest. */
export function unpackAnyAs<K extends ProtoTypeUrl>(any: AnyLike, typeUrl: K): ProtoMessage<K> {
  const got = normalizeTypeUrl(any.typeUrl);
  if (got !== typeUrl) throw invalidArgument(`expected an Any of type "${typeUrl}", got "${any.typeUrl}"`);
  return unpackAny(any).message as ProtoMessage<K>;
}

// ---- JSON Anys (OCI runtime-spec structs) -----------------------------------------------------------------

/** containerd's JSON type URLs for runtime-spec structs (major version 1). */
export const JsonTypeUrl = {
  Spec: 'types.containerd.io/opencontainers/runtime-spec/1/Spec',
  Process: 'types.containerd.io/opencontainers/runtime-spec/1/Process',
  LinuxResources: 'types.containerd.io/opencontainers/runtime-spec/1/LinuxResources',
  WindowsResources: 'types.containerd.io/opencontainers/runtime-spec/1/WindowsResources',
  Features: 'types.containerd.io/opencontainers/runtime-spec/1/features/Features',
} as const;
export type JsonTypeUrl = (typeof JsonTypeUrl)[keyof typeof JsonTypeUrl];

/** Packs a JSON-serialisable value (an OCI struct) as containerd does: value = JSON text. */
export function packJsonAny(typeUrl: JsonTypeUrl, obj: unknown): Any {
  const json = JSON.stringify(obj);
  if (json === undefined) throw invalidArgument(`cannot encode ${typeof obj} as JSON for "${typeUrl}"`);
  return { typeUrl, value: Buffer.from(json, 'utf8') };
}

/**
 * Parses a JSON Any. Like the Go runc shim (which JSON-decodes Exec's spec and Update's resources without
 * looking at the type URL), any type URL is accepted unless `expected` is given; then a different one is
 * InvalidArgument. Invalid JSON -> InvalidArgument. The result is unvalidated JSON: check its shape.
 */
export function unpackJsonAny<T = unknown>(any: AnyLike, expected?: JsonTypeUrl | readonly JsonTypeUrl[]): T {
  if (expected !== undefined) {
    const allowed: readonly string[] = typeof expected === 'string' ? [expected] : expected;
    if (!allowed.includes(any.typeUrl)) {
      throw invalidArgument(`expected an Any of type ${allowed.map((u) => `"${u}"`).join(' or ')}, got "${any.typeUrl}"`);
    }
  }
  try {
    return JSON.parse(asBuffer(any.value).toString('utf8')) as T;
  } catch (err) {
    throw invalidArgument(`cannot decode JSON Any of type "${any.typeUrl}": ${(err as Error).message}`, err);
  }
}

// ---- task events --------------------------------------------------------------------------------------------

/** Task events: topic and type URL per message (`runtime/events.go`, `api/events/task.proto` @ v1.6.20). */
export const TASK_EVENTS = {
  TaskCreate: { topic: '/tasks/create', typeUrl: 'containerd.events.TaskCreate' },
  TaskStart: { topic: '/tasks/start', typeUrl: 'containerd.events.TaskStart' },
  TaskExit: { topic: '/tasks/exit', typeUrl: 'containerd.events.TaskExit' },
  TaskDelete: { topic: '/tasks/delete', typeUrl: 'containerd.events.TaskDelete' },
  TaskExecAdded: { topic: '/tasks/exec-added', typeUrl: 'containerd.events.TaskExecAdded' },
  TaskExecStarted: { topic: '/tasks/exec-started', typeUrl: 'containerd.events.TaskExecStarted' },
  TaskPaused: { topic: '/tasks/paused', typeUrl: 'containerd.events.TaskPaused' },
  TaskResumed: { topic: '/tasks/resumed', typeUrl: 'containerd.events.TaskResumed' },
  TaskOOM: { topic: '/tasks/oom', typeUrl: 'containerd.events.TaskOOM' },
  TaskCheckpointed: { topic: '/tasks/checkpointed', typeUrl: 'containerd.events.TaskCheckpointed' },
} as const satisfies Record<string, { topic: `/tasks/${string}`; typeUrl: ProtoTypeUrl }>;

export type TaskEventType = keyof typeof TASK_EVENTS;
export type TaskEventTopic = (typeof TASK_EVENTS)[TaskEventType]['topic'];
/** A task event tagged with its message type, e.g. `{ type: 'TaskExit', event: { containerId, ... } }`. */
export type TaskEvent = {
  [K in TaskEventType]: { type: K; event: ProtoMessage<(typeof TASK_EVENTS)[K]['typeUrl']> };
}[TaskEventType];

/** containerd's topic for an event type. */
export function eventTopic(type: TaskEventType): TaskEventTopic {
  return TASK_EVENTS[type].topic;
}

/** The event type for a topic, or undefined (containerd itself falls back to `/tasks/?` for unknown types). */
export function eventTypeOfTopic(topic: string): TaskEventType | undefined {
  return (Object.keys(TASK_EVENTS) as TaskEventType[]).find((t) => TASK_EVENTS[t].topic === topic);
}

/** The Envelope's `event` field: `Any{type_url: 'containerd.events.<Type>', value: protobuf}`. */
export function eventAny(ev: TaskEvent): Any {
  const { typeUrl } = TASK_EVENTS[ev.type];
  const codec: MessageCodec<unknown> = PROTO_TYPES[typeUrl];
  return packAny(typeUrl, codec, ev.event);
}

/** The inverse of `eventAny` (tests, clients): InvalidArgument if the Any is not a task event. */
export function decodeEventAny(any: AnyLike): TaskEvent {
  const unpacked = unpackAny(any);
  const type = unpacked.typeUrl.startsWith('containerd.events.')
    ? (unpacked.typeUrl.slice('containerd.events.'.length) as TaskEventType)
    : undefined;
  if (type === undefined || !(type in TASK_EVENTS)) throw invalidArgument(`"${any.typeUrl}" is not a task event`);
  return { type, event: unpacked.message } as TaskEvent;
}
