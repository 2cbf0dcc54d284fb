/** Talks to a running shim (ours or the reference) directly over ttrpc, as containerd does. */
import { TtrpcClient } from '../../protocol/ttrpc/client.js';
import type { MessageCodec } from '../../protocol/ttrpc/service.js';
import { ShimError } from '../../protocol/errdefs.js';
import { ConnectRequest } from '../../protocol/gen/containerd/runtime/v2/task/shim.js';
import type { Containerd } from './containerd.js';

export const TASK_SERVICE = 'containerd.task.v2.Task';
const TASK_SERVICE_V3 = 'containerd.task.v3.Task';

export interface ShimConnection {
  readonly client: TtrpcClient;
  /** The Task service name the shim answers: v2, or v3 for the containerd 2.x reference shim (v3 only). */
  readonly service: string;
  call<Req, Res>(method: string, req: Req, reqCodec: MessageCodec<Req>, resCodec: MessageCodec<Res>, timeoutMs?: number): Promise<Res>;
  /** Like call, but resolves with the error (a ShimError with grpcCode) instead of throwing. */
  fails<Req>(method: string, req: Req, reqCodec: MessageCodec<Req>): Promise<ShimError>;
  close(): void;
}

export async function connectShim(cd: Containerd, id: string, namespace = cd.namespace, group = id): Promise<ShimConnection> {
  const client = await TtrpcClient.connect(cd.shimSocketPath(namespace, group), { timeoutMs: 5000 });
  const metadata = { 'containerd-namespace-ttrpc': namespace };
  // Connect never fails for a known service (unknown ids answer task_pid 0): use it to pick v2 or v3.
  let service = TASK_SERVICE;
  try {
    await client.call(service, 'Connect', ConnectRequest.encode({ id }).finish(), { metadata, timeoutMs: 10_000 });
  } catch (err) {
    if (!(err instanceof ShimError && err.grpcCode === 12)) throw err;
    service = TASK_SERVICE_V3;
  }
  const call = <Req, Res>(method: string, req: Req, reqCodec: MessageCodec<Req>, resCodec: MessageCodec<Res>, timeoutMs = 30_000) =>
    client.callTyped(service, method, req, reqCodec, resCodec, { metadata, timeoutMs });
  return {
    client,
    service,
    call,
    async fails(method, req, reqCodec) {
      try {
        await client.call(service, method, reqCodec.encode(req).finish(), { metadata, timeoutMs: 30_000 });
      } catch (err) {
        if (err instanceof ShimError) return err;
        throw err;
      }
      throw new Error(`${method} was expected to fail`);
    },
    close: () => client.close(),
  };
}
