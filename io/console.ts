/**
 * The pty master of a terminal process, wrapped for non-blocking IO. Node's tty streams block the loop when
 * writing to a master, and net.Socket({fd}) refuses TTY fds, so the master is opened as a libuv Pipe handle
 * (`process.binding('pipe_wrap')`, measured best in the platform notes) inside a net.Socket subclass that
 * turns EIO (slave side closed: all output was read) into a clean end of stream. Fallback without pipe_wrap:
 * a Duplex on koffi's uv_poll.
 */
import { readSync, writeSync } from 'node:fs';
import net from 'node:net';
import { Duplex } from 'node:stream';
import koffi from 'koffi';
import type { Logger } from 'pino';
import * as sys from './sys.js';

interface PipeHandle {
  open(fd: number): number;
}
type PipeCtor = new (type: number) => PipeHandle;

function loadPipeWrap(): { Pipe: PipeCtor; SOCKET: number } | undefined {
  try {
    // DEP0111 (documentation-only deprecation; a warning only with --pending-deprecation).
    const binding = (process as unknown as { binding(name: string): unknown }).binding('pipe_wrap') as {
      Pipe?: PipeCtor;
      constants?: { SOCKET?: number };
    };
    if (typeof binding.Pipe !== 'function' || binding.constants?.SOCKET === undefined) return undefined;
    return { Pipe: binding.Pipe, SOCKET: binding.constants.SOCKET };
  } catch {
    return undefined;
  }
}

const pipeWrap = loadPipeWrap();

/** net.Socket on a pty master: EIO on read means the slave closed after all data, i.e. EOF. */
class PtySocket extends net.Socket {
  override destroy(error?: Error): this {
    if (error && (error as NodeJS.ErrnoException).code === 'EIO' && !this.readableEnded && !this.destroyed) {
      // Buffered chunks are still delivered before 'end'; the read side is finished in libuv already.
      this.push(null);
      return this;
    }
    return super.destroy(error);
  }
}

/**
 * Duplex over a non-blocking fd using koffi's uv_poll (fallback; undocumented koffi API, kept here only).
 * Reads are readSync/writeSync on an O_NONBLOCK fd, so they never block; EIO is EOF.
 */
class PolledFdDuplex extends Duplex {
  readonly #fd: number;
  #poll: ReturnType<typeof koffi.node.poll> | undefined;
  #wantRead = false;
  #pendingWrite: { chunk: Buffer; cb: (err?: Error | null) => void } | undefined;

  constructor(fd: number) {
    super({ allowHalfOpen: true });
    this.#fd = fd;
    sys.setNonBlocking(fd, true);
  }

  #rearm(): void {
    const readable = this.#wantRead;
    const writable = this.#pendingWrite !== undefined;
    if (!readable && !writable) {
      this.#poll?.stop();
      return;
    }
    const opts = { readable, writable, disconnect: false };
    const cb = (): void => this.#onEvents();
    if (this.#poll) this.#poll.start(opts, cb);
    else this.#poll = koffi.node.poll(this.#fd, opts, cb);
  }

  #onEvents(): void {
    if (this.#pendingWrite) this.#tryWrite();
    if (this.#wantRead) this.#tryRead();
    if (!this.destroyed) this.#rearm();
  }

  #tryRead(): void {
    const buf = Buffer.allocUnsafe(64 * 1024);
    for (;;) {
      let n: number;
      try {
        n = readFd(this.#fd, buf);
      } catch (err) {
        const code = sys.errnoCode(err);
        if (code === 'EAGAIN') return;
        this.#wantRead = false;
        if (code === 'EIO') this.push(null);
        else this.destroy(err as Error);
        return;
      }
      if (n === 0) {
        this.#wantRead = false;
        this.push(null);
        return;
      }
      if (!this.push(Buffer.from(buf.subarray(0, n)))) {
        this.#wantRead = false;
        return;
      }
    }
  }

  #tryWrite(): void {
    const pending = this.#pendingWrite;
    if (!pending) return;
    try {
      const n = writeFd(this.#fd, pending.chunk);
      if (n < pending.chunk.length) {
        pending.chunk = pending.chunk.subarray(n);
        return;
      }
      this.#pendingWrite = undefined;
      pending.cb();
    } catch (err) {
      if (sys.errnoCode(err) === 'EAGAIN') return;
      this.#pendingWrite = undefined;
      pending.cb(err as Error);
    }
  }

  override _read(): void {
    this.#wantRead = true;
    this.#tryRead();
    if (!this.destroyed) this.#rearm();
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    this.#pendingWrite = { chunk, cb };
    this.#tryWrite();
    if (!this.destroyed) this.#rearm();
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    this.#poll?.close();
    this.#poll = undefined;
    sys.closeQuietly(this.#fd);
    cb(err);
  }
}

// Non-blocking fd: these return at once (or throw EAGAIN); they never wait.
const readFd = (fd: number, buf: Buffer): number => readSync(fd, buf, 0, buf.length, null);
const writeFd = (fd: number, buf: Buffer): number => writeSync(fd, buf, 0, buf.length, null);

/** A pty master: one duplex stream (output out, input in), resize, and drain-then-close. */
export class Console {
  readonly stream: Duplex;
  #closed = false;
  #drainTimer: NodeJS.Timeout | undefined;

  private constructor(
    readonly fd: number,
    stream: Duplex,
    private readonly log: Logger,
  ) {
    this.stream = stream;
    // EIO is mapped to EOF; anything else is logged and ends output the same way.
    stream.on('error', (err: Error) => log.debug({ err }, 'console stream error'));
  }

  /** Takes ownership of the master fd. */
  static open(masterFd: number, log: Logger, forceFallback = false): Console {
    if (pipeWrap && !forceFallback) {
      const handle = new pipeWrap.Pipe(pipeWrap.SOCKET);
      const rc = handle.open(masterFd);
      if (rc === 0) {
        const sock = new PtySocket({ handle, readable: true, writable: true } as net.SocketConstructorOpts);
        return new Console(masterFd, sock, log);
      }
      log.debug({ rc }, 'pipe_wrap open failed on the pty master, using the poll fallback');
    }
    return new Console(masterFd, new PolledFdDuplex(masterFd), log);
  }

  /** TIOCSWINSZ (ws_row = height, ws_col = width); the kernel sends SIGWINCH to the foreground group. */
  resize(width: number, height: number): void {
    if (this.#closed) return;
    sys.setWinsize(this.fd, height, width);
  }

  /**
   * Ends output once everything the container wrote was read. Normally EOF (EIO) arrives by itself when the
   * last slave fd closes; the kernel flushes pending input before it reports EIO. When something still holds
   * the slave (a daemonised child), output ends after a quiet period instead: no bytes received, none unread
   * in the master (FIONREAD) and none buffered in our stream for `quietMs`. Then `onQuiet` runs, which should
   * end the destination and close the console.
   */
  drainThen(onQuiet: () => void, quietMs = 300, intervalMs = 25): void {
    if (this.#drainTimer || this.#closed) return;
    let received = 0;
    const onData = (c: Buffer): void => {
      received += c.length;
    };
    this.stream.on('data', onData); // pipe() is attached already: this listener only counts
    let quietSince = performance.now();
    let seen = 0;
    const check = (): void => {
      if (this.#closed || this.stream.readableEnded || this.stream.destroyed) return this.#stopDrain();
      let pending = this.stream.readableLength + (received - seen);
      seen = received;
      try {
        pending += sys.bytesReadable(this.fd);
      } catch {
        // the master is gone: nothing more can arrive
      }
      const now = performance.now();
      if (pending > 0) quietSince = now;
      else if (now - quietSince >= quietMs) {
        this.#stopDrain();
        this.stream.off('data', onData);
        onQuiet();
      }
    };
    this.#drainTimer = setInterval(check, intervalMs);
    this.#drainTimer.unref();
    this.stream.once('end', () => {
      this.#stopDrain();
      this.stream.off('data', onData);
    });
  }

  #stopDrain(): void {
    if (this.#drainTimer) clearInterval(this.#drainTimer);
  }

  /** Closes the master (the container's terminal hangs up). Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#stopDrain();
    this.stream.destroy();
  }
}
