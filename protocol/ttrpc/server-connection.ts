/**
 * One accepted ttrpc connection on the server side: decode frames, run unary calls concurrently, answer each
 * stream exactly once. Mirrors containerd/ttrpc `server.go` (serverConn.run) and `services.go`.
 */
import { Socket } from 'node:net';
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
  /** The request as it arrived: a call handed to another process is re-run from it. */
  readonly raw: Uint8Array;
  readonly service: string;
  readonly method: string;
  readonly deadline?: number;
}

/** A call that is not answered here but by the process this connection is handed to. */
export interface HandedCall {
  readonly streamId: number;
  /** The ttrpc Request, base64. */
  readonly request: string;
  /** Epoch ms, when the request had a timeout. */
  readonly deadline?: number;
}

/** Everything another process needs to go on serving this connection (see ServerConnection.adopt). */
export interface ConnectionHandoff {
  readonly fd: number;
  readonly lastStreamId: number;
  /** Bytes received and not handled yet (a partial frame, then whatever followed), base64. */
  readonly unread: string;
  readonly calls: readonly HandedCall[];
}

/** Which calls in flight may be handed over instead of answered here (e.g. Wait). */
export type KeepCall = (service: string, method: string) => boolean;

const errorText = (err: unknown): string => (err instanceof Error ? err.message : String(err));

export class ServerConnection {
  private readonly decoder: FrameDecoder;
  private readonly calls = new Map<number, ActiveCall>();
  private lastStreamId = 0;
  private closing = false;
  private draining = false;
  private pausedForWrites = false;
  /** While held (a hand-over is being prepared): chunks received, in order, not decoded. */
  private held: Buffer[] | undefined;
  private settleWaiters: Array<() => void> = [];
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
    if (this.held) this.release();
    else this.socket.resume();
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

  /** Stops handling requests: the socket is paused and whatever still arrives is kept, undecoded. */
  hold(): void {
    this.held ??= [];
    this.socket.pause();
  }

  /** Undoes hold(): handles what was kept, then reads on. */
  release(): void {
    const chunks = this.held;
    if (!chunks) return;
    this.held = undefined;
    for (const c of chunks) this.onData(c);
    if (!this.draining && !this.pausedForWrites && !this.closing) this.socket.resume();
  }

  /** Resolves once every call in flight that `keep` does not accept has been answered. */
  async untilAnswered(keep: KeepCall): Promise<void> {
    const busy = (): boolean => [...this.calls.values()].some((c) => !keep(c.service, c.method));
    while (busy()) await new Promise<void>((resolve) => this.settleWaiters.push(resolve));
  }

  /** Resolves once everything written has gone to the kernel (or the connection is gone). */
  async writesFlushed(): Promise<void> {
    while (this.socket.writableLength > 0 && !this.socket.destroyed) {
      await new Promise<void>((resolve) => {
        const done = (): void => {
          this.socket.off('drain', done);
          this.socket.off('close', done);
          resolve();
        };
        this.socket.once('drain', done);
        this.socket.once('close', done);
      });
    }
  }

  /**
   * What another process needs to serve this connection on, taken synchronously right before the hand-over
   * (call hold() first, and let the other calls be answered: untilAnswered). The calls `keep` accepts are
   * handed over: this process will not answer them. Returns a reason instead when the connection cannot be
   * handed over. Changes nothing that release() cannot undo.
   */
  handoff(keep: KeepCall): ConnectionHandoff | string {
    const fd = (this.socket as unknown as { _handle?: { fd?: number } })._handle?.fd;
    if (typeof fd !== 'number' || fd < 0) return 'connection has no file descriptor';
    if (this.socket.writableLength > 0) return 'connection has unsent replies';
    const partial = this.decoder.pendingBytes();
    if (!partial) return 'connection is skipping an oversized frame';
    // What the paused socket buffered goes behind what was held (read() hands each chunk to onData, which
    // holds it): both are replayed here on release().
    const held = (this.held ??= []);
    while (this.socket.read() !== null);
    const calls: HandedCall[] = [];
    for (const [streamId, call] of this.calls) {
      if (!keep(call.service, call.method)) return `call ${call.service}/${call.method} still running`;
      calls.push({ streamId, request: Buffer.from(call.raw).toString('base64'), ...(call.deadline !== undefined ? { deadline: call.deadline } : {}) });
    }
    return { fd, lastStreamId: this.lastStreamId, unread: Buffer.concat([partial, ...held]).toString('base64'), calls };
  }

  /**
   * Serves a connection handed over by another process: its calls are re-run, then the unread bytes are
   * handled, then the socket is read again. Call start() afterwards, as for an accepted connection.
   */
  static adopt(state: ConnectionHandoff, resolve: Resolve, log: TtrpcLogger, maxMessage: number): ServerConnection {
    const socket = new Socket({ fd: state.fd, readable: true, writable: true });
    socket.pause();
    const conn = new ServerConnection(socket, resolve, log, maxMessage);
    conn.lastStreamId = state.lastStreamId;
    conn.held = [Buffer.from(state.unread, 'base64')];
    for (const call of state.calls) {
      let req: Request;
      try {
        req = decodeRequest(Buffer.from(call.request, 'base64'));
      } catch (err) {
        log.error({ err, stream_id: call.streamId }, 'ttrpc: handed-over call cannot be decoded');
        continue;
      }
      if (call.deadline !== undefined) req.timeoutNano = BigInt(Math.max(1, call.deadline - Date.now())) * 1_000_000n;
      const handler = resolve(req.service, req.method);
      if (typeof handler !== 'function') conn.sendStatus(call.streamId, handler);
      else conn.startCall(call.streamId, req, handler, Buffer.from(call.request, 'base64'));
    }
    return conn;
  }

  private onData(chunk: Buffer): void {
    if (this.held) {
      this.held.push(chunk);
      return;
    }
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
    this.startCall(streamId, req, handler, frame.data);
  }

  private startCall(streamId: number, req: Request, handler: RawHandler, raw: Uint8Array): void {
    const controller = new AbortController();
    const deadline = req.timeoutNano !== 0n ? Date.now() + Number(req.timeoutNano / 1_000_000n) : undefined;
    const call: ActiveCall = { controller, raw, service: req.service, method: req.method, ...(deadline !== undefined ? { deadline } : {}) };
    this.calls.set(streamId, call);

    if (deadline !== undefined) {
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
    this.wakeSettleWaiters();
    return true;
  }

  private wakeSettleWaiters(): void {
    if (this.settleWaiters.length === 0) return;
    const waiters = this.settleWaiters;
    this.settleWaiters = [];
    for (const w of waiters) w();
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
    this.wakeSettleWaiters();
  }
}
