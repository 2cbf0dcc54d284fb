/** Talks to a running shim (ours or the reference) directly over ttrpc, as containerd does. */
import { TtrpcClient } from '../../protocol/ttrpc/client.js';
import type { MessageCodec } from '../../protocol/ttrpc/service.js';
import { ShimError } from '../../protocol/errdefs.js';
import type { Containerd } from './containerd.js';

export const TASK_SERVICE = 'containerd.task.v2.Task';

export interface ShimConnection {
  readonly client: TtrpcClient;
  call<Req, Res>(method: string, req: Req, reqCodec: MessageCodec<Req>, resCodec: MessageCodec<Res>, timeoutMs?: number): Promise<Res>;
  /** Like call, but resolves with the error (a ShimError with grpcCode) instead of throwing. */
  fails<Req>(method: string, req: Req, reqCodec: MessageCodec<Req>): Promise<ShimError>;
  close(): void;
}

export async function connectShim(cd: Containerd, id: string, namespace = cd.namespace, group = id): Promise<ShimConnection> {
  const client = await TtrpcClient.connect(cd.shimSocketPath(namespace, group), { timeoutMs: 5000 });
  const metadata = { 'containerd-namespace-ttrpc': namespace };
  const call = <Req, Res>(method: string, req: Req, reqCodec: MessageCodec<Req>, resCodec: MessageCodec<Res>, timeoutMs = 30_000) =>
    client.callTyped(TASK_SERVICE, method, req, reqCodec, resCodec, { metadata, timeoutMs });
  return {
    client,
    call,
    async fails(method, req, reqCodec) {
      try {
        await client.call(TASK_SERVICE, method, reqCodec.encode(req).finish(), { metadata, timeoutMs: 30_000 });
      } catch (err) {
        if (err instanceof ShimError) return err;
        throw err;
      }
      throw new Error(`${method} was expected to fail`);
    },
    close: () => client.close(),
  };
}
