/**
 * The pty master of a terminal process, wrapped for non-blocking IO. Node's tty streams block the loop when
 * writing to a master and net.Socket({fd}) refuses TTY fds. A libuv Pipe handle (`pipe_wrap`) reads fine but
 * loses the tail: when the slave closes, libuv sees POLLHUP after a partial read and reports EOF without
 * reading the rest (measured: 3 of 10 runs of `seq 1 20000` truncated). So the master is a Duplex on koffi's
 * uv_poll with non-blocking read/write, which reads until EIO (the kernel flushes pending input first).
 */
import { readSync, writeSync } from 'node:fs';
import { Duplex } from 'node:stream';
import koffi from 'koffi';
import type { Logger } from 'pino';
import * as sys from './sys.js';
import { STREAM_FD, type EndpointRef } from './handoff.js';

/**
 * Duplex over a non-blocking fd using koffi's uv_poll (undocumented koffi API, kept in this module only).
 * readSync/writeSync on an O_NONBLOCK fd never block; EAGAIN waits for the next poll event; EIO is EOF.
 */
class PolledFdDuplex extends Duplex {
  readonly #fd: number;
  #poll: ReturnType<typeof koffi.node.poll> | undefined;
  #wantRead = false;
  #pendingWrite: { chunk: Buffer; cb: (err?: Error | null) => void } | undefined;
  readonly #log: Logger | undefined;
  /** Debug only: the first reads are logged (enough to follow a terminal's start without flooding). */
  #readsLogged = 0;

  constructor(fd: number, log?: Logger) {
    super({ allowHalfOpen: true });
    this.#fd = fd;
    this.#log = log?.isLevelEnabled('debug') ? log : undefined;
    sys.setNonBlocking(fd, true);
    Object.defineProperty(this, STREAM_FD, { get: (): EndpointRef => ({ fd: this.destroyed ? -1 : this.#fd, type: 'pty' }) });
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
    const buf = Buffer.allocUnsafe(16 * 1024); // pty reads return at most a few KiB
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
      if (this.#log && this.#readsLogged < 16) {
        this.#readsLogged++;
        this.#log.debug({ bytes: n }, 'console: output read from the master');
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
      this.#log?.debug({ bytes: pending.chunk.length, written: n }, 'console: input written to the master');
      if (n < pending.chunk.length) {
        pending.chunk = pending.chunk.subarray(n);
        return;
      }
      this.#pendingWrite = undefined;
      pending.cb();
    } catch (err) {
      this.#log?.debug({ bytes: pending.chunk.length, code: sys.errnoCode(err) }, 'console: input write to the master failed');
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
  static open(masterFd: number, log: Logger): Console {
    return new Console(masterFd, new PolledFdDuplex(masterFd, log), log);
  }

  /** TIOCSWINSZ (ws_row = height, ws_col = width); the kernel sends SIGWINCH to the foreground group. */
  resize(width: number, height: number): void {
    if (this.#closed) return;
    sys.setWinsize(this.fd, height, width);
  }

  /**
   * Ends output once everything the container wrote was read. Normally EOF (EIO) arrives by itself when the
   * last slave fd closes; the kernel flushes pending input before it reports EIO, and nothing is cut short
   * while the master reports a hang-up. When something still holds the slave (a daemonised child), output ends
   * after a quiet period instead: no bytes received, none unread in the master (FIONREAD) and none buffered in
   * our stream for `quietMs`. Then `onQuiet` runs, which should end the destination and close the console.
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
      // All slave fds closed: the kernel hands over every pending byte and then EIO ends the stream, so a
      // quiet spell means nothing here (on a loaded host the pty flush can lag behind for longer than quietMs).
      let slaveOpen = true;
      try {
        slaveOpen = !sys.hungUp(this.fd);
      } catch {
        // poll failed: keep the quiet rule
      }
      const now = performance.now();
      if (pending > 0 || !slaveOpen) quietSince = now;
      else if (now - quietSince >= quietMs) {
        this.#stopDrain();
        this.stream.off('data', onData);
        this.log.debug({ received }, 'console quiet after exit, ending output');
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
