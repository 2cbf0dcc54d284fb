/**
 * Stream copies with backpressure (Readable.pipe pauses the source while the destination is full, so a
 * detached client stalls the container instead of growing our memory) and a `done` promise that resolves
 * only after the destination flushed everything: no truncated tails when a process exits.
 */
import { constants as fsConstants } from 'node:fs';
import { mkdir, open, type FileHandle } from 'node:fs/promises';
import { dirname } from 'node:path';
import { Writable, type Readable } from 'node:stream';
import type { Logger } from 'pino';
import { ShimError, kindOf } from '../protocol/errdefs.js';
import { STREAM_FD, type EndpointRef } from './handoff.js';

export interface Copy {
  /** Resolves when the source ended and everything was written (or the copy failed/was stopped). */
  readonly done: Promise<void>;
  /** Stops at once, dropping what is in flight (used by close() after a bounded drain). */
  stop(): void;
  /** Stops reading and ends the destination gracefully (what was written is flushed). */
  end(): void;
  /** Bytes read from the source so far: lets callers tell a slow drain from a stuck one. */
  readonly bytes: number;
  /** Absent on a copy that was already finished when it was handed over. */
  readonly src?: Readable;
  readonly dst?: Writable;
  readonly finished: boolean;
  readonly endsDestination: boolean;
  /** Stops moving bytes, ending nothing (a hand-over to another process is being prepared). */
  hold(): void;
  /** After hold(): resolves once the destination has written everything it was given (or the copy ended). */
  flushed(): Promise<void>;
  /**
   * After hold() and flushed(), synchronously: the bytes the source has read and not passed on. They stay
   * with this copy too: release() writes them first.
   */
  unwritten(): Buffer;
  /** Undoes hold(). */
  release(): void;
}

export interface CopyOptions {
  readonly name: string;
  readonly logger: Logger;
  /** End the destination when the source ends (default true). */
  readonly endDestination?: boolean;
  /** Called once after the copy finished, before `done` resolves: release held fds here. */
  readonly onDone?: () => void;
}

const isEnded = (s: Readable): boolean => s.readableEnded;

/**
 * Copies src → dst. A source error ends the copy as if it were EOF (what was read is still flushed);
 * a destination error stops reading, and the source is destroyed so the writer sees EPIPE, as the reference
 * does when its copy loop fails.
 */
export function startCopy(src: Readable, dst: Writable, opts: CopyOptions): Copy {
  let finished = false;
  let bytes = 0;
  // Counting with a 'data' listener keeps the source flowing: it is removed whenever the pipe is undone.
  // Debug only: the first chunks are logged with what the destination still holds after taking them.
  let chunksLogged = opts.logger.isLevelEnabled('debug') ? 0 : Infinity;
  const count = (chunk: Buffer): void => {
    bytes += chunk.length;
    if (chunksLogged < 16) {
      chunksLogged++;
      opts.logger.debug({ stream: opts.name, bytes: chunk.length, dst_pending: dst.writableLength }, 'copy: chunk handed to the destination');
    }
  };
  let resolveDone!: () => void;
  const done = new Promise<void>((resolve) => (resolveDone = resolve));
  const finish = (): void => {
    if (finished) return;
    finished = true;
    src.off('end', onSourceEnd);
    src.off('data', count);
    opts.logger.debug({ stream: opts.name, bytes, pending: dst.writableLength }, 'copy finished');
    try {
      opts.onDone?.();
    } finally {
      resolveDone();
    }
  };
  const onSourceEnd = (): void => {
    if (opts.endDestination === false) return finish();
    if (dst.writableFinished || dst.destroyed) return finish();
    dst.end();
  };
  src.on('error', (err: NodeJS.ErrnoException) => {
    opts.logger.debug({ err, stream: opts.name }, 'copy source failed, treating it as end of output');
    onSourceEnd();
  });
  dst.on('error', (err: NodeJS.ErrnoException) => {
    opts.logger.warn({ err, stream: opts.name }, 'copy destination failed');
    src.unpipe(dst);
    src.destroy();
    finish();
  });
  if (opts.endDestination !== false) {
    dst.once('finish', finish);
    dst.once('close', finish);
  }
  src.once('end', onSourceEnd);
  src.pipe(dst, { end: false });
  src.on('data', count);
  if (isEnded(src)) onSourceEnd();
  let holding = false;
  let carry: Buffer[] = [];
  return {
    done,
    src,
    dst,
    endsDestination: opts.endDestination !== false,
    get finished() {
      return finished;
    },
    get bytes() {
      return bytes;
    },
    hold() {
      if (finished || holding) return;
      holding = true;
      src.off('data', count);
      src.unpipe(dst);
      src.pause();
    },
    async flushed() {
      while (!finished && (dst.writableLength > 0 || (dst.writableEnded && !dst.writableFinished))) {
        await new Promise<void>((resolve) => {
          const wake = (): void => {
            for (const e of ['drain', 'finish', 'close']) dst.off(e, wake);
            resolve();
          };
          for (const e of ['drain', 'finish', 'close']) dst.once(e, wake);
        });
      }
    },
    unwritten() {
      for (let c: Buffer | null; (c = src.read() as Buffer | null) !== null; ) carry.push(c);
      return Buffer.concat(carry);
    },
    release() {
      if (!holding) return;
      holding = false;
      if (finished) return;
      const pending = carry;
      carry = [];
      for (const c of pending) {
        bytes += c.length;
        dst.write(c);
      }
      src.pipe(dst, { end: false });
      src.on('data', count);
    },
    end() {
      src.off('data', count);
      src.unpipe(dst);
      onSourceEnd();
    },
    stop() {
      src.unpipe(dst);
      src.destroy();
      if (opts.endDestination !== false) dst.destroy();
      finish();
    },
  };
}

/** A copy that had finished before its process's IO was handed over (nothing left to move). */
export function finishedCopy(bytes: number): Copy {
  return {
    done: Promise.resolve(),
    bytes,
    finished: true,
    endsDestination: true,
    stop() {},
    end() {},
    hold() {},
    flushed: () => Promise.resolve(),
    unwritten: () => Buffer.alloc(0),
    release() {},
  };
}

/**
 * One append-mode fd shared by several writers (stdout and stderr to the same file): the reference's
 * counting closer. The fd closes when the last writer finished.
 */
export class SharedFile {
  #refs = 0;
  #closed = false;

  private constructor(
    readonly path: string,
    private readonly handle: FileHandle,
  ) {}

  /**
   * `create`: file:// semantics (mkdir -p 0755, create 0644, append). Otherwise the file must exist
   * (a plain stdio path that is a regular file).
   */
  static async open(path: string, create: boolean): Promise<SharedFile> {
    if (create) await mkdir(dirname(path), { recursive: true, mode: 0o755 });
    try {
      const flags = create ? 'a' : fsConstants.O_WRONLY | fsConstants.O_APPEND; // no create for plain paths
      return new SharedFile(path, await open(path, flags, 0o644));
    } catch (err) {
      throw new ShimError(kindOf(err), `containerd-shim: opening file ${JSON.stringify(path)} failed: ${(err as Error).message}`, { cause: err });
    }
  }

  /** A new writer on the shared fd; regular-file writes go through the threadpool but never block for long. */
  writer(): Writable {
    this.#refs++;
    let released = false;
    const release = (): void => {
      if (released) return;
      released = true;
      this.release();
    };
    const handle = this.handle;
    const w = new Writable({
      highWaterMark: 64 * 1024,
      write(chunk: Buffer, _enc, cb) {
        const writeAll = async (): Promise<void> => {
          for (let off = 0; off < chunk.length; ) {
            const { bytesWritten } = await handle.write(chunk, off, chunk.length - off);
            off += bytesWritten;
          }
        };
        writeAll().then(() => cb(), cb);
      },
      final(cb) {
        release();
        cb();
      },
      destroy(err, cb) {
        release();
        cb(err);
      },
    });
    Object.defineProperty(w, STREAM_FD, { get: (): EndpointRef => ({ fd: this.#closed ? -1 : handle.fd, type: 'file' }) });
    return w;
  }

  private release(): void {
    if (--this.#refs > 0 || this.#closed) return;
    this.close();
  }

  /** The open fd, or -1 once closed. */
  get fd(): number {
    return this.#closed ? -1 : this.handle.fd;
  }

  /** Closes the fd now (also when writers are still attached: Delete after a bounded wait). */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.handle.close().catch(() => undefined);
  }
}
