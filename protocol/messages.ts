/**
 * The protobuf messages the shim speaks, re-exported from the generated code in ./gen (see SOURCES.md;
 * regenerate with `npm run gen`). Each export is both a TS interface and its codec:
 * `StateResponse.encode(msg).finish()`, `CreateTaskRequest.decode(bytes)`, `Mount.create({ ... })`.
 *
 * Why ts-proto (runtime `@bufbuild/protobuf/wire`): the shim binary is started once per container, so startup
 * cost counts. Measured in node-platform-notes.md §7 (shim.proto + mount.proto + task.proto, Node 20):
 *   ts-proto                        17 KB minified bundle, 26.4 ms to the first round-trip (+6 ms over bare node)
 *   protobufjs static, gogo kept   367 KB, 40.2 ms (+20);   gogo stripped 162 KB, 34.0 ms (+13)
 *   @bufbuild/protobuf v2 (es)      82 KB, 43.1 ms (+23);   gogo stripped  74 KB, 41.2 ms (+21)
 * ts-proto emits static encode/decode code and plain interfaces; protobuf-es boots a reflection runtime from
 * an embedded descriptor at load. Encode/decode cost (2.8-8 µs for a 1.2 KB CreateTaskRequest) is noise next
 * to runc's tens of milliseconds for every library.
 *
 * Conventions of the generated code: camelCase fields (`exec_id` -> `execId`, `type_url` -> `typeUrl`);
 * proto3 defaults are omitted on the wire; message-typed fields are `T | undefined` and required keys, so an
 * object literal must name them (forgetting `exitedAt` is a compile error — it must always be sent, use
 * timestamp.ts); `bytes` are Buffers; int64 are numbers, except the cgroup metrics (bigint, values reach
 * 2^64-1).
 */

// containerd.task.v2 (runtime/v2/task/shim.proto)
export {
  CheckpointTaskRequest,
  CloseIORequest,
  ConnectRequest,
  ConnectResponse,
  CreateTaskRequest,
  CreateTaskResponse,
  DeleteRequest,
  DeleteResponse,
  ExecProcessRequest,
  ExecProcessResponse,
  KillRequest,
  PauseRequest,
  PidsRequest,
  PidsResponse,
  ResizePtyRequest,
  ResumeRequest,
  ShutdownRequest,
  StartRequest,
  StartResponse,
  StateRequest,
  StateResponse,
  StatsRequest,
  StatsResponse,
  UpdateTaskRequest,
  WaitRequest,
  WaitResponse,
  /** Method table: `TaskDefinition.methods.create.requestType.decode(...)`; fullName 'containerd.task.v2.Task'. */
  TaskDefinition,
} from './gen/containerd/runtime/v2/task/shim.js';

// containerd.types / containerd.v1.types
export { Mount } from './gen/containerd/api/types/mount.js';
export { ProcessInfo, Status } from './gen/containerd/api/types/task/task.js';

// containerd.events (api/events/task.proto)
export {
  TaskCheckpointed,
  TaskCreate,
  TaskDelete,
  TaskExecAdded,
  TaskExecStarted,
  TaskExit,
  TaskIO,
  TaskOOM,
  TaskPaused,
  TaskResumed,
  TaskStart,
} from './gen/containerd/api/events/task.js';

// containerd.services.events.ttrpc.v1: Events/Forward, the shim's event publishing call
export { Envelope, ForwardRequest, EventsDefinition } from './gen/containerd/api/services/ttrpc/events/v1/events.js';

// containerd.runc.v1 (runtime/v2/runc/options/oci.proto)
export {
  Options as RuncOptions,
  CheckpointOptions as RuncCheckpointOptions,
  ProcessDetails,
} from './gen/containerd/runtime/v2/runc/options/oci.js';

// containerd.linux.runc (runtime/linux/runctypes/runc.proto): sent by containerd for non io.containerd.runc.* runtimes
export {
  CreateOptions as LinuxRuncCreateOptions,
  CheckpointOptions as LinuxRuncCheckpointOptions,
  RuncOptions as LinuxRuncOptions,
} from './gen/containerd/runtime/linux/runctypes/runc.js';

// cgroup metrics for Stats: the top-level messages, and each package whole for the nested stat messages
export { Metrics as CgroupsV1Metrics } from './gen/cgroups/stats/v1/metrics.js';
export { Metrics as CgroupsV2Metrics } from './gen/cgroups/v2/stats/metrics.js';
export * as cgroupsV1 from './gen/cgroups/stats/v1/metrics.js';
export * as cgroupsV2 from './gen/cgroups/v2/stats/metrics.js';

// containerd.types.RuntimeInfo for `-info` (containerd 2.x; hand-written proto, see SOURCES.md)
export { RuntimeInfo, RuntimeVersion } from './gen/extra/introspection.js';

// google.protobuf
export { Any } from './gen/google/protobuf/any.js';
export { Empty } from './gen/google/protobuf/empty.js';
export { Timestamp } from './gen/google/protobuf/timestamp.js';
