/**
 * ttrpc client over a unix socket: unary calls, many in flight, odd stream ids from 1 (containerd/ttrpc
 * `client.go`). A lost connection fails every pending call with `ttrpc: closed`, like ttrpc.ErrClosed.
 */
import { connect as netConnect, type Socket } from 'node:net';
import { fromStatus, ShimError } from '../errdefs.js';
import { encodeFrame, FrameDecoder, MAX_MESSAGE, MessageType, oversizeMessage, type Frame } from './frame.js';
import { silentLogger, type TtrpcLogger } from './logger.js';
import { decodeResponse, encodeRequest, type KeyValue, type Response } from './messages.js';
import type { MessageCodec } from './service.js';

export interface ConnectOptions {
  /** Dial timeout. */
  timeoutMs?: number;
  logger?: TtrpcLogger;
}

export interface CallOptions {
  /** Sent as timeout_nano; the call also fails locally with DeadlineExceeded when it passes. */
  timeoutMs?: number;
  metadata?: Record<string, string>;
  signal?: AbortSignal;
}

interface Pending {
  resolve(payload: Uint8Array): void;
  reject(err: Error): void;
}

const MAX_STREAM_ID = 0xffffffff;
const MAX_TIMER_MS = 0x7fffffff;

const closedError = (): ShimError => new ShimError('Unavailable', 'ttrpc: closed');

function resourceExhausted(length: number): ShimError {
  const err = new ShimError('ResourceExhausted', oversizeMessage(length));
  err.grpcCode = 8;
  return err;
}

/** Accepts `unix:///path`, `unix://\0abstract` and plain paths. */
export function socketPath(address: string): string {
  return address.startsWith('unix://') ? address.slice('unix://'.length) : address;
}

export class TtrpcClient {
  private nextStreamId = 1;
  private readonly pending = new Map<number, Pending>();
  private readonly decoder = new FrameDecoder();
  private readonly closeCallbacks: (() => void)[] = [];
  private isClosed = false;
  /** Resolves when the connection is gone (closed by either side). */
  readonly closed: Promise<void>;

  private constructor(
    private readonly socket: Socket,
    private readonly log: TtrpcLogger,
  ) {
    this.closed = new Promise((done) => socket.once('close', () => done()));
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('error', (err) => this.log.debug({ err }, 'ttrpc client: connection error'));
    socket.on('close', () => this.onClosed());
  }

  static connect(address: string, opts: ConnectOptions = {}): Promise<TtrpcClient> {
    const path = socketPath(address);
    return new Promise((resolve, reject) => {
      const socket = netConnect(path);
      let timer: NodeJS.Timeout | undefined;
      const fail = (err: Error): void => {
        if (timer) clearTimeout(timer);
        socket.destroy();
        reject(new ShimError('Unavailable', `ttrpc: dial unix ${path}: ${err.message}`, { cause: err }));
      };
      socket.once('error', fail);
      if (opts.timeoutMs !== undefined) {
        timer = setTimeout(() => fail(new ShimError('DeadlineExceeded', 'context deadline exceeded')), opts.timeoutMs);
      }
      socket.once('connect', () => {
        if (timer) clearTimeout(timer);
        socket.off('error', fail);
        resolve(new TtrpcClient(socket, opts.logger ?? silentLogger));
      });
    });
  }

  /** Calls `service/method` with a serialized request; resolves with the serialized response. */
  call(service: string, method: string, payload: Uint8Array, opts: CallOptions = {}): Promise<Uint8Array> {
    if (this.isClosed) return Promise.reject(closedError());
    const { signal } = opts;
    if (signal?.aborted) return Promise.reject(new ShimError('Canceled', 'context canceled', { cause: signal.reason }));
    // A non-finite timeout means none; setTimeout cannot wait longer than ~24.8 days.
    const timeoutMs = opts.timeoutMs !== undefined && Number.isFinite(opts.timeoutMs) ? opts.timeoutMs : undefined;
    if (timeoutMs !== undefined && timeoutMs <= 0) {
      return Promise.reject(new ShimError('DeadlineExceeded', 'context deadline exceeded'));
    }
    // ttrpc lower-cases metadata keys (MD.Set).
    const metadata: KeyValue[] = Object.entries(opts.metadata ?? {}).map(([k, v]) => ({ key: k.toLowerCase(), value: v }));
    const data = encodeRequest({
      service,
      method,
      payload,
      timeoutNano: timeoutMs !== undefined ? BigInt(Math.ceil(timeoutMs * 1e6)) : 0n,
      metadata,
    });
    // ttrpc >= 1.2 refuses oversized messages before sending them.
    if (data.length > MAX_MESSAGE) return Promise.reject(resourceExhausted(data.length));
    if (this.nextStreamId > MAX_STREAM_ID) {
      return Promise.reject(new ShimError('ResourceExhausted', 'ttrpc: stream ids exhausted'));
    }
    const streamId = this.nextStreamId;
    this.nextStreamId += 2;

    return new Promise<Uint8Array>((resolve, reject) => {
      let timer: NodeJS.Timeout | undefined;
      const onAbort = (): void => settle(new ShimError('Canceled', 'context canceled', { cause: signal?.reason }));
      const settle = (err: Error | undefined, result?: Uint8Array): void => {
        if (!this.pending.delete(streamId)) return;
        if (timer) clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        if (err) reject(err);
        else resolve(result ?? new Uint8Array(0));
      };
      this.pending.set(streamId, { resolve: (p) => settle(undefined, p), reject: (e) => settle(e) });
      if (timeoutMs !== undefined && timeoutMs <= MAX_TIMER_MS) {
        timer = setTimeout(() => settle(new ShimError('DeadlineExceeded', 'context deadline exceeded')), timeoutMs);
      }
      signal?.addEventListener('abort', onAbort, { once: true });
      this.socket.write(encodeFrame(streamId, MessageType.Request, data));
    });
  }

  /** Typed call with ts-proto style codecs. */
  async callTyped<Req, Res>(
    service: string,
    method: string,
    req: Req,
    reqCodec: MessageCodec<Req>,
    resCodec: MessageCodec<Res>,
    opts?: CallOptions,
  ): Promise<Res> {
    const payload = await this.call(service, method, reqCodec.encode(req).finish(), opts);
    try {
      return resCodec.decode(payload);
    } catch (err) {
      const text = err instanceof Error ? err.message : String(err);
      throw new ShimError('Internal', `ttrpc: error unmarshalling response: ${text}`, { cause: err });
    }
  }

  /** Closes the connection; pending calls fail with `ttrpc: closed`. */
  close(): void {
    this.socket.destroy();
  }

  /** Registers a callback for when the connection goes away (ttrpc WithOnClose). */
  onClose(cb: () => void): void {
    if (this.isClosed) queueMicrotask(cb);
    else this.closeCallbacks.push(cb);
  }

  private onData(chunk: Buffer): void {
    try {
      for (const item of this.decoder.push(chunk)) {
        if (item.kind === 'oversize') this.pending.get(item.header.streamId)?.reject(resourceExhausted(item.header.length));
        else this.onFrame(item.frame);
      }
    } catch (err) {
      this.log.error({ err }, 'ttrpc client: failed handling input, closing connection');
      this.socket.destroy();
    }
  }

  private onFrame(frame: Frame): void {
    const pending = this.pending.get(frame.streamId);
    if (frame.type !== MessageType.Response || !pending) {
      this.log.debug({ stream_id: frame.streamId, type: frame.type }, 'ttrpc client: ignoring frame');
      return;
    }
    let res: Response;
    try {
      res = decodeResponse(frame.data);
    } catch (err) {
      const text = err instanceof Error ? err.message : String(err);
      pending.reject(new ShimError('Internal', `ttrpc: error unmarshalling response: ${text}`, { cause: err }));
      return;
    }
    if (res.status && res.status.code !== 0) pending.reject(fromStatus(res.status));
    else pending.resolve(res.payload);
  }

  private onClosed(): void {
    if (this.isClosed) return;
    this.isClosed = true;
    for (const p of [...this.pending.values()]) p.reject(closedError());
    for (const cb of this.closeCallbacks.splice(0)) {
      try {
        cb();
      } catch (err) {
        this.log.error({ err }, 'ttrpc client: onClose callback failed');
      }
    }
  }
}
