/**
 * Binds the TaskService to ttrpc: every method of containerd.task.v2.Task with its request and response
 * codecs, registered under the v2 name and containerd 2.x's identical containerd.task.v3.Task.
 */
import { unary, type RawHandler } from '../../protocol/ttrpc/service.js';
import type { TtrpcServer } from '../../protocol/ttrpc/server.js';
import * as api from '../../protocol/gen/containerd/runtime/v2/task/shim.js';
import { Empty } from '../../protocol/gen/google/protobuf/empty.js';
import type { Logger } from 'pino';
import type { TaskService } from './service.js';

export const TASK_SERVICE_V2 = 'containerd.task.v2.Task';
export const TASK_SERVICE_V3 = 'containerd.task.v3.Task';

const empty = async (p: Promise<void>): Promise<Empty> => {
  await p;
  return {};
};

export function taskMethods(svc: TaskService): Record<string, RawHandler> {
  return {
    State: unary(api.StateRequest, api.StateResponse, (r) => svc.state(r)),
    Create: unary(api.CreateTaskRequest, api.CreateTaskResponse, (r, ctx) => svc.create(r, ctx.signal)),
    Start: unary(api.StartRequest, api.StartResponse, (r) => svc.start(r)),
    Delete: unary(api.DeleteRequest, api.DeleteResponse, (r) => svc.delete(r)),
    Pids: unary(api.PidsRequest, api.PidsResponse, (r) => svc.pids(r)),
    Pause: unary(api.PauseRequest, Empty, (r) => empty(svc.pause(r))),
    Resume: unary(api.ResumeRequest, Empty, (r) => empty(svc.resume(r))),
    Checkpoint: unary(api.CheckpointTaskRequest, Empty, (r) => empty(svc.checkpoint(r))),
    Kill: unary(api.KillRequest, Empty, (r) => empty(svc.kill(r))),
    Exec: unary(api.ExecProcessRequest, Empty, (r) => empty(svc.exec(r))),
    ResizePty: unary(api.ResizePtyRequest, Empty, (r) => empty(svc.resizePty(r))),
    CloseIO: unary(api.CloseIORequest, Empty, (r) => empty(svc.closeIO(r))),
    Update: unary(api.UpdateTaskRequest, Empty, (r) => empty(svc.update(r))),
    Wait: unary(api.WaitRequest, api.WaitResponse, (r, ctx) => svc.wait(r, ctx.signal)),
    Stats: unary(api.StatsRequest, api.StatsResponse, (r) => svc.stats(r)),
    Connect: unary(api.ConnectRequest, api.ConnectResponse, (r) => svc.connect(r)),
    Shutdown: unary(api.ShutdownRequest, Empty, (r) => empty(svc.shutdown(r))),
  };
}

/** Requests whose field 2 is the exec id (elsewhere it is a bundle, a path or a message). */
const WITH_EXEC_ID = new Set(['State', 'Start', 'Delete', 'Kill', 'Exec', 'ResizePty', 'CloseIO', 'Wait']);

/** Debug line per call with the ids it names: what an operator needs to follow a container through the log. */
function traced(methods: Record<string, RawHandler>, log: Logger): Record<string, RawHandler> {
  const out: Record<string, RawHandler> = {};
  for (const [name, handler] of Object.entries(methods)) {
    out[name] = (payload, ctx) => {
      if (log.isLevelEnabled('debug')) {
        const ids = peekIds(payload);
        const execId = WITH_EXEC_ID.has(name) ? ids.execId : undefined;
        log.debug({ method: name, ...(ids.id ? { container_id: ids.id } : {}), ...(execId ? { exec_id: execId } : {}) }, 'task call');
      }
      return handler(payload, ctx);
    };
  }
  return out;
}

/**
 * Fields 1 (id) and 2 (exec_id) when they are strings, as in every Task request that names a process;
 * only for the log, so anything unexpected yields nothing.
 */
function peekIds(payload: Uint8Array): { id?: string; execId?: string } {
  const out: { id?: string; execId?: string } = {};
  let i = 0;
  const varint = (): number => {
    let v = 0;
    for (let shift = 0; i < payload.length && shift < 35; shift += 7) {
      const b = payload[i++]!;
      v += (b & 0x7f) * 2 ** shift;
      if (b < 0x80) return v;
    }
    return -1;
  };
  while (i < payload.length) {
    const key = varint();
    if (key < 0) break;
    const field = Math.floor(key / 8);
    const wire = key & 7;
    if (wire === 0) {
      if (varint() < 0) break;
    } else if (wire === 2) {
      const len = varint();
      if (len < 0 || i + len > payload.length) break;
      if (field === 1 || field === 2) {
        const text = Buffer.from(payload.subarray(i, i + len)).toString('utf8');
        if (field === 1) out.id = text;
        else out.execId = text;
      }
      i += len;
    } else if (wire === 1) i += 8;
    else if (wire === 5) i += 4;
    else break;
  }
  return out;
}

export function registerTaskService(server: TtrpcServer, svc: TaskService, log?: Logger): void {
  const methods = log ? traced(taskMethods(svc), log) : taskMethods(svc);
  server.register(TASK_SERVICE_V2, methods);
  server.register(TASK_SERVICE_V3, methods);
}
