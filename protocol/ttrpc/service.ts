/**
 * What a ttrpc method handler sees: the call context and the raw or typed handler shapes.
 */
import type { BinaryReader, BinaryWriter } from '@bufbuild/protobuf/wire';
import { ShimError } from '../errdefs.js';

export interface CallContext {
  readonly service: string;
  readonly method: string;
  readonly streamId: number;
  /** Request metadata, keys lower-cased (ttrpc's MD lookups are case-insensitive). */
  readonly metadata: ReadonlyMap<string, string[]>;
  /** Aborted at the deadline (reason: DeadlineExceeded) or when the connection closes (reason: Canceled). */
  readonly signal: AbortSignal;
  /** Epoch milliseconds, from the request's timeout_nano. */
  readonly deadline?: number;
}

/** Serialized request in, serialized response out; a thrown error becomes the call's status. */
export type RawHandler = (payload: Uint8Array, ctx: CallContext) => Promise<Uint8Array>;

/** The message shape ts-proto generates (`Msg.encode(m).finish()`, `Msg.decode(bytes)`). */
export interface MessageCodec<T> {
  encode(message: T, writer?: BinaryWriter): BinaryWriter;
  decode(input: Uint8Array | BinaryReader, length?: number): T;
}

const errorText = (err: unknown): string => (err instanceof Error ? err.message : String(err));

/** Wraps a typed handler: decode errors are Internal as in ttrpc's unaryCall, a missing result is Unknown. */
export function unary<Req, Res>(
  req: MessageCodec<Req>,
  res: MessageCodec<Res>,
  fn: (req: Req, ctx: CallContext) => Promise<Res>,
): RawHandler {
  return async (payload, ctx) => {
    let decoded: Req;
    try {
      decoded = req.decode(payload);
    } catch (err) {
      throw new ShimError('Internal', `ttrpc: error unmarshalling payload: ${errorText(err)}`, { cause: err });
    }
    const result = await fn(decoded, ctx);
    if (result === null || result === undefined) throw new ShimError('Unknown', 'ttrpc: marshal called with nil');
    return res.encode(result).finish();
  };
}
