/**
 * Binds the TaskService to ttrpc: every method of containerd.task.v2.Task with its request and response
 * codecs, registered under the v2 name and containerd 2.x's identical containerd.task.v3.Task.
 */
import { unary, type RawHandler } from '../../protocol/ttrpc/service.js';
import type { TtrpcServer } from '../../protocol/ttrpc/server.js';
import * as api from '../../protocol/gen/containerd/runtime/v2/task/shim.js';
import { Empty } from '../../protocol/gen/google/protobuf/empty.js';
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

export function registerTaskService(server: TtrpcServer, svc: TaskService): void {
  const methods = taskMethods(svc);
  server.register(TASK_SERVICE_V2, methods);
  server.register(TASK_SERVICE_V3, methods);
}
