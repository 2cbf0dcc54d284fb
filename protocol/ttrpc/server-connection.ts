/**
 * One accepted ttrpc connection on the server side: decode frames, run unary calls concurrently, answer each
 * stream exactly once. Mirrors containerd/ttrpc `server.go` (serverConn.run) and `services.go`.
 */
import type { Socket } from 'node:net';
import { Code, toStatus, ShimError, type WireStatus } from '../errdefs.js';
import { encodeFrame, FrameDecoder, MessageType, oversizeMessage, type Frame } from './frame.js';
import type { TtrpcLogger } from './logger.js';
import { decodeRequest, encodeResponse, type Request } from './messages.js';
import type { CallContext, RawHandler } from './service.js';

/** How the server resolves a method: a handler, or the status ttrpc answers for an unknown name. */
export type Resolve = (service: string, method: string) => RawHandler | WireStatus;

/** Stop reading requests while this many response bytes wait for a peer that does not read. */
const WRITE_HIGH_WATER = 1 << 20;
/** setTimeout's limit; a later deadline gets no timer (it cannot matter for a live call). */
const MAX_TIMER_MS = 0x7fffffff;

interface ActiveCall {
  readonly controller: AbortController;
  timer?: NodeJS.Timeout;
}

const errorText = (err: unknown): string => (err instanceof Error ? err.message : String(err));

export class ServerConnection {
  private readonly decoder: FrameDecoder;
  private readonly calls = new Map<number, ActiveCall>();
  private lastStreamId = 0;
  private closing = false;
  private draining = false;
  private pausedForWrites = false;
  /** Resolves once the socket is closed and every call has been cancelled. */
  readonly closed: Promise<void>;

  constructor(
    private readonly socket: Socket,
    private readonly resolve: Resolve,
    private readonly log: TtrpcLogger,
    private readonly maxMessage: number,
  ) {
    this.decoder = new FrameDecoder(maxMessage);
    this.closed = new Promise((done) => socket.once('close', () => done()));
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('drain', () => this.onDrain());
    socket.on('error', (err) => this.log.debug({ err }, 'ttrpc: connection error'));
    // Like the Go server: EOF from the client cancels what is still running; nothing more can be answered.
    socket.on('end', () => this.cancelAll('end'));
    socket.on('close', () => this.cancelAll('close'));
  }

  /** Calls that have not been answered yet. */
  get activeCalls(): number {
    return this.calls.size;
  }

  start(): void {
    this.socket.resume();
  }

  /** Shutdown: read no more requests, close once the active calls are answered. */
  drain(): Promise<void> {
    this.draining = true;
    this.socket.pause();
    this.endIfIdle();
    return this.closed;
  }

  destroy(): void {
    this.socket.destroy();
  }

  private onData(chunk: Buffer): void {
    try {
      for (const item of this.decoder.push(chunk)) {
        if (this.closing) return;
        if (item.kind === 'oversize') {
          this.sendStatus(item.header.streamId, {
            code: Code.ResourceExhausted,
            message: oversizeMessage(item.header.length, this.maxMessage),
          });
        } else {
          this.onFrame(item.frame);
        }
      }
    } catch (err) {
      // A bug on our side must cost this connection only, never the process.
      this.log.error({ err }, 'ttrpc: failed handling input, closing connection');
      this.socket.destroy();
    }
  }

  private onFrame(frame: Frame): void {
    const { streamId, type } = frame;
    if (streamId % 2 !== 1) {
      this.sendStatus(streamId, {
        code: Code.InvalidArgument,
        message: 'StreamID must be odd for client initiated streams',
      });
      return;
    }
    if (type === MessageType.Data) {
      // We serve unary methods only, so no stream is ever open for data (ttrpc >= 1.2 answers the same).
      this.sendStatus(streamId, { code: Code.InvalidArgument, message: 'StreamID is no longer active' });
      return;
    }
    if (type !== MessageType.Request) {
      this.log.debug({ stream_id: streamId, type }, 'ttrpc: ignoring frame of unexpected type');
      return;
    }
    if (streamId <= this.lastStreamId) {
      this.sendStatus(streamId, { code: Code.InvalidArgument, message: 'StreamID cannot be re-used and must increment' });
      return;
    }
    this.lastStreamId = streamId;
    let req: Request;
    try {
      req = decodeRequest(frame.data);
    } catch (err) {
      this.sendStatus(streamId, { code: Code.InvalidArgument, message: `unmarshal request error: ${errorText(err)}` });
      return;
    }
    // Request flags only matter for streaming methods, which we do not have; ttrpc runs unary methods the same.
    const handler = this.resolve(req.service, req.method);
    if (typeof handler !== 'function') {
      this.sendStatus(streamId, handler);
      return;
    }
    this.startCall(streamId, req, handler);
  }

  private startCall(streamId: number, req: Request, handler: RawHandler): void {
    const controller = new AbortController();
    const call: ActiveCall = { controller };
    this.calls.set(streamId, call);

    let deadline: number | undefined;
    if (req.timeoutNano !== 0n) {
      deadline = Date.now() + Number(req.timeoutNano / 1_000_000n);
      const delay = Math.max(0, deadline - Date.now());
      if (delay <= MAX_TIMER_MS) {
        call.timer = setTimeout(() => {
          const err = new ShimError('DeadlineExceeded', 'context deadline exceeded');
          controller.abort(err);
          this.fail(streamId, call, err, req);
        }, delay);
        call.timer.unref();
      }
    }

    const metadata = new Map<string, string[]>();
    for (const { key, value } of req.metadata) {
      const k = key.toLowerCase();
      const values = metadata.get(k);
      if (values) values.push(value);
      else metadata.set(k, [value]);
    }
    const ctx: CallContext = {
      service: req.service,
      method: req.method,
      streamId,
      metadata,
      signal: controller.signal,
      ...(deadline !== undefined ? { deadline } : {}),
    };

    let result: Promise<Uint8Array>;
    try {
      result = Promise.resolve(handler(req.payload, ctx));
    } catch (err) {
      result = Promise.reject(err);
    }
    result
      .then(
        (payload) => this.succeed(streamId, call, payload),
        (err: unknown) => this.fail(streamId, call, err, req),
      )
      .catch((err: unknown) => {
        // Only reachable through a bug or a bizarre thrown value; never let it become an unhandled rejection.
        this.log.error({ err, stream_id: streamId }, 'ttrpc: failed to answer call, closing connection');
        this.socket.destroy();
      });
  }

  /** Claims the right to answer a call; false when it was answered (deadline) or the connection is gone. */
  private settle(streamId: number, call: ActiveCall): boolean {
    if (this.calls.get(streamId) !== call) return false;
    this.calls.delete(streamId);
    if (call.timer) clearTimeout(call.timer);
    return true;
  }

  private succeed(streamId: number, call: ActiveCall, payload: unknown): void {
    if (!this.settle(streamId, call)) return;
    if (!(payload instanceof Uint8Array)) {
      this.sendStatus(streamId, { code: Code.Unknown, message: 'ttrpc: marshal called with nil' });
    } else {
      const data = encodeResponse({ payload });
      if (data.length > this.maxMessage) {
        // Go closes the connection here; answering the stream keeps it usable.
        this.sendStatus(streamId, { code: Code.ResourceExhausted, message: oversizeMessage(data.length, this.maxMessage) });
      } else {
        this.write(encodeFrame(streamId, MessageType.Response, data));
      }
    }
    this.endIfIdle();
  }

  private fail(streamId: number, call: ActiveCall, err: unknown, req: Request): void {
    if (!this.settle(streamId, call)) return;
    const status = toStatus(err);
    const fields = { err, service: req.service, method: req.method, stream_id: streamId, code: status.code };
    if (status.code === Code.Unknown || status.code === Code.Internal) this.log.error(fields, 'ttrpc: call failed');
    else this.log.debug(fields, 'ttrpc: call failed');
    this.sendStatus(streamId, status);
    this.endIfIdle();
  }

  private sendStatus(streamId: number, status: WireStatus): void {
    const data = encodeResponse({ status: { ...status, details: [] }, payload: new Uint8Array(0) });
    this.write(encodeFrame(streamId, MessageType.Response, data));
  }

  private write(frame: Buffer): void {
    if (this.closing || !this.socket.writable) return;
    this.socket.write(frame);
    if (this.socket.writableLength > WRITE_HIGH_WATER && !this.pausedForWrites) {
      this.pausedForWrites = true;
      this.socket.pause();
    }
  }

  private onDrain(): void {
    if (!this.pausedForWrites) return;
    this.pausedForWrites = false;
    if (!this.draining && !this.closing) this.socket.resume();
  }

  private endIfIdle(): void {
    if (this.draining && this.calls.size === 0 && !this.closing) {
      this.closing = true;
      this.socket.end();
    }
  }

  private cancelAll(why: 'end' | 'close'): void {
    if (why === 'close' && !this.decoder.idle) this.log.debug('ttrpc: connection closed in the middle of a frame');
    this.closing = true;
    const reason = new ShimError('Canceled', 'context canceled');
    for (const call of this.calls.values()) {
      if (call.timer) clearTimeout(call.timer);
      call.controller.abort(reason);
    }
    this.calls.clear();
  }
}
