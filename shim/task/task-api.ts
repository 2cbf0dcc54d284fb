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

/**
 * A debug line per call with the ids it names (read from the decoded request): what an operator needs to
 * follow a container through the log.
 */
function tracer(log: Logger | undefined, onCall?: () => void): <R extends object>(method: string, req: R) => R {
  return (method, req) => {
    onCall?.();
    if (log?.isLevelEnabled('debug')) {
      const { id, execId } = req as { id?: unknown; execId?: unknown };
      log.debug({ method, ...(typeof id === 'string' && id ? { container_id: id } : {}), ...(typeof execId === 'string' && execId ? { exec_id: execId } : {}) }, 'task call');
    }
    return req;
  };
}

/** `onCall` runs at every call (the daemon's idle-time memory trim counts activity with it). */
export function taskMethods(svc: TaskService, log?: Logger, onCall?: () => void): Record<string, RawHandler> {
  const t = tracer(log, onCall);
  return {
    State: unary(api.StateRequest, api.StateResponse, (r) => svc.state(t('State', r))),
    Create: unary(api.CreateTaskRequest, api.CreateTaskResponse, (r, ctx) => svc.create(t('Create', r), ctx.signal)),
    Start: unary(api.StartRequest, api.StartResponse, (r) => svc.start(t('Start', r))),
    Delete: unary(api.DeleteRequest, api.DeleteResponse, (r) => svc.delete(t('Delete', r))),
    Pids: unary(api.PidsRequest, api.PidsResponse, (r) => svc.pids(t('Pids', r))),
    Pause: unary(api.PauseRequest, Empty, (r) => empty(svc.pause(t('Pause', r)))),
    Resume: unary(api.ResumeRequest, Empty, (r) => empty(svc.resume(t('Resume', r)))),
    Checkpoint: unary(api.CheckpointTaskRequest, Empty, (r) => empty(svc.checkpoint(t('Checkpoint', r)))),
    Kill: unary(api.KillRequest, Empty, (r) => empty(svc.kill(t('Kill', r)))),
    Exec: unary(api.ExecProcessRequest, Empty, (r) => empty(svc.exec(t('Exec', r)))),
    ResizePty: unary(api.ResizePtyRequest, Empty, (r) => empty(svc.resizePty(t('ResizePty', r)))),
    CloseIO: unary(api.CloseIORequest, Empty, (r) => empty(svc.closeIO(t('CloseIO', r)))),
    Update: unary(api.UpdateTaskRequest, Empty, (r) => empty(svc.update(t('Update', r)))),
    Wait: unary(api.WaitRequest, api.WaitResponse, (r, ctx) => svc.wait(t('Wait', r), ctx.signal)),
    Stats: unary(api.StatsRequest, api.StatsResponse, (r) => svc.stats(t('Stats', r))),
    Connect: unary(api.ConnectRequest, api.ConnectResponse, (r) => svc.connect(t('Connect', r))),
    Shutdown: unary(api.ShutdownRequest, Empty, (r) => empty(svc.shutdown(t('Shutdown', r)))),
  };
}

export function registerTaskService(server: TtrpcServer, svc: TaskService, log?: Logger, onCall?: () => void): void {
  const methods = taskMethods(svc, log, onCall);
  server.register(TASK_SERVICE_V2, methods);
  server.register(TASK_SERVICE_V3, methods);
}
