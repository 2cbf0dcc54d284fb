/**
 * What a booting spare runs once (at idle priority, before it settles), so that the code every container's
 * first calls go through is compiled before a start comes, not on the start's time: V8 compiles a function
 * the first time it runs, and a fresh daemon's first Create paid for that (a CPU profile of a spare's
 * take-over: ~1 ms loading node:cluster, which net.Server.listen requires on first use; ~1.7 ms creating the
 * daemon logger). Pure code only, on throwaway data: the logger writes nowhere, codecs round-trip empty
 * messages.
 */
// net.Server.listen requires node:cluster on first use; loaded with this module (a spare's), not on a start's time.
// (A dynamic import() cannot do it: the shim runs in a vm.Script, which has no dynamic import.)
import cluster from 'node:cluster';
import pino from 'pino';
import { daemonLoggerOptions } from '../log.js';
import * as api from '../../protocol/gen/containerd/runtime/v2/task/shim.js';
import { Envelope, ForwardRequest } from '../../protocol/gen/containerd/api/services/ttrpc/events/v1/events.js';
import { decodeRequest, encodeRequest, encodeResponse } from '../../protocol/ttrpc/messages.js';
import { encodeFrame, FrameDecoder, MessageType } from '../../protocol/ttrpc/frame.js';
import { eventAny } from '../../protocol/typeurl.js';
import { toTimestamp } from '../../protocol/timestamp.js';

interface Codec<T> {
  fromPartial(o: object): T;
  encode(m: T): { finish(): Uint8Array };
  decode(b: Uint8Array): T;
}

export function warmUp(): void {
  void cluster.isPrimary;
  // A destination that drops the lines: no fd (an asynchronous write to a closed, reused fd would land elsewhere).
  const log = pino(daemonLoggerOptions({ namespace: 'warm-up', id: 'warm-up', debug: false }), { write: () => undefined });
  const child = log.child({ container_id: 'warm-up' }).child({ exec_id: 'warm-up' });
  child.info({ pid: 1 }, 'warm-up');
  child.debug('warm-up');
  const codecs: Codec<unknown>[] = [
    api.CreateTaskRequest, api.CreateTaskResponse, api.StartRequest, api.StartResponse, api.StateRequest, api.StateResponse,
    api.DeleteRequest, api.DeleteResponse, api.WaitRequest, api.WaitResponse, api.KillRequest, api.ExecProcessRequest,
    api.ConnectRequest, api.ConnectResponse, api.ShutdownRequest,
  ] as Codec<unknown>[];
  for (const c of codecs) c.decode(c.encode(c.fromPartial({})).finish());
  const payload = encodeRequest({ service: 'containerd.task.v2.Task', method: 'State', payload: new Uint8Array(0), timeoutNano: 0n, metadata: [{ key: 'k', value: 'v' }] });
  const decoder = new FrameDecoder();
  for (const item of decoder.push(encodeFrame(1, MessageType.Request, payload))) if (item.kind === 'frame') decodeRequest(item.frame.data);
  encodeFrame(1, MessageType.Response, encodeResponse({ payload: new Uint8Array(0) }));
  const ev = { type: 'TaskExit', event: { containerId: 'w', id: 'w', pid: 1, exitStatus: 0, exitedAt: toTimestamp(new Date()) } } as const;
  ForwardRequest.encode({ envelope: Envelope.fromPartial({ timestamp: toTimestamp(new Date()), namespace: 'w', topic: '/tasks/exit', event: eventAny(ev) }) }).finish();
}
