/**
 * Client FIFOs, opened without ever blocking the event loop (no blocking open(2), no threadpool):
 * fds are opened O_NONBLOCK and wrapped in net.Socket, which uses epoll.
 */
import { stat } from 'node:fs/promises';
import net from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { ShimError, kindOf } from '../protocol/errdefs.js';
import * as sys from './sys.js';

/** FIFO buffer we ask for (the default pipe-max-size); a detached client then costs 1 MiB before backpressure. */
export const FIFO_BUFFER_SIZE = 1 << 20;

export async function isFifo(path: string): Promise<boolean> {
  return (await stat(path)).isFIFO();
}

/** The shim's write side of a client's stdout/stderr FIFO. */
export interface FifoWriter {
  readonly stream: net.Socket;
  /** Closes the held read fd; call after `stream` finished (the write fd closes with the stream). */
  releaseReader(): void;
  /** Bytes in the FIFO the client has not read yet (0 once the held reader is released). */
  unread(): number;
  /** The held read fd, -1 once released. */
  readonly heldFd: number;
}

function abortError(signal: AbortSignal, what: string): ShimError {
  const kind = kindOf(signal.reason);
  return new ShimError(kind === 'DeadlineExceeded' ? 'DeadlineExceeded' : 'Canceled', `${what}: ${kind === 'DeadlineExceeded' ? 'timed out' : 'canceled'}`, {
    cause: signal.reason,
  });
}

/**
 * Waits until the client has the FIFO open for reading, then opens it for writing, like the reference's
 * blocking O_WRONLY open (Create does not return before the client reads). A blocking open would park the
 * loop or a threadpool thread, so this polls open(O_WRONLY|O_NONBLOCK), which fails with ENXIO while there is
 * no reader, with a 1 → 25 ms backoff. A client's pending blocking O_RDONLY open already counts as a reader.
 *
 * Then it also holds a read fd, so a client that detaches never makes our writes fail (no EPIPE): output
 * stays in the FIFO and, once it is full, backpressure reaches the container.
 */
export async function openFifoWriter(path: string, signal: AbortSignal): Promise<FifoWriter> {
  let wfd = -1;
  for (let delay = 1; ; delay = Math.min(delay * 2, 25)) {
    if (signal.aborted) throw abortError(signal, `open fifo ${path} for writing: no reader`);
    try {
      wfd = sys.open(path, sys.O_WRONLY | sys.O_NONBLOCK);
      break;
    } catch (err) {
      if (sys.errnoCode(err) !== 'ENXIO') throw new ShimError(kindOf(err), `open fifo ${path}: ${(err as Error).message}`, { cause: err });
    }
    try {
      await sleep(delay, undefined, { signal });
    } catch {
      throw abortError(signal, `open fifo ${path} for writing: no reader`);
    }
  }
  let rfd = -1;
  try {
    rfd = sys.open(path, sys.O_RDONLY | sys.O_NONBLOCK);
    sys.trySetPipeSize(wfd, FIFO_BUFFER_SIZE);
    const stream = new net.Socket({ fd: wfd, readable: false, writable: true });
    let held = rfd;
    return {
      stream,
      get heldFd() {
        return held;
      },
      releaseReader() {
        sys.closeQuietly(held);
        held = -1;
      },
      unread() {
        if (held < 0) return 0;
        try {
          return sys.bytesReadable(held);
        } catch {
          return 0;
        }
      },
    };
  } catch (err) {
    sys.closeQuietly(wfd);
    sys.closeQuietly(rfd);
    throw err;
  }
}

/** The shim's read side of a client's stdin FIFO. */
export interface FifoReader {
  readonly stream: net.Socket;
  /**
   * Closes the held writer (CloseIO). EOF reaches `stream` once every client writer is gone too. Idempotent.
   */
  closeWriter(): void;
  /** The held writer, -1 once closed. */
  readonly writerFd: number;
}

/**
 * Opens a stdin FIFO for reading (O_RDONLY|O_NONBLOCK never blocks) and holds a write fd, the "stdin closer",
 * so a detaching client does not deliver EOF to the container.
 */
export function openFifoReader(path: string, holdWriter = true): FifoReader {
  const rfd = sys.open(path, sys.O_RDONLY | sys.O_NONBLOCK);
  let wfd = -1;
  try {
    // Cannot fail with ENXIO: we are a reader ourselves.
    if (holdWriter) wfd = sys.open(path, sys.O_WRONLY | sys.O_NONBLOCK);
    sys.trySetPipeSize(rfd, FIFO_BUFFER_SIZE);
    const stream = new net.Socket({ fd: rfd, readable: true, writable: false });
    return {
      stream,
      get writerFd() {
        return wfd;
      },
      closeWriter() {
        sys.closeQuietly(wfd);
        wfd = -1;
      },
    };
  } catch (err) {
    sys.closeQuietly(rfd);
    sys.closeQuietly(wfd);
    throw err;
  }
}
