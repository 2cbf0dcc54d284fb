/**
 * The few libc calls the cgroup v1 OOM watcher needs (koffi), and readiness polling on the Node loop.
 * All calls are non-blocking: the eventfd is created with EFD_NONBLOCK, so `read` returns EAGAIN instead of
 * parking the thread, and readiness comes from a libuv poll handle (epoll), never from a threadpool read.
 */
import { constants as osConstants } from 'node:os';
import koffi from 'koffi';

const libc = koffi.load('libc.so.6');
const c = {
  eventfd: libc.func('int eventfd(unsigned int initval, int flags)'),
  read: libc.func('intptr_t read(int fd, void *buf, size_t count)'),
  close: libc.func('int close(int fd)'),
};

const EFD_NONBLOCK = 0o4000;
const EFD_CLOEXEC = 0o2000000;
const EAGAIN = 11;
const EINTR = 4;

const ERRNO_NAMES = new Map(Object.entries(osConstants.errno).map(([name, no]) => [no, name]));

/** Shaped like Node's system errors (code, errno, syscall), so kindOf() classifies it. */
function sysError(syscall: string, errno: number): Error {
  const code = ERRNO_NAMES.get(errno) ?? `E${errno}`;
  return Object.assign(new Error(`${syscall}: ${code}`), { code, errno, syscall });
}

/** A fresh non-blocking, close-on-exec eventfd. */
export function createEventfd(): number {
  const fd = c.eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK) as number;
  if (fd < 0) throw sysError('eventfd', koffi.errno());
  return fd;
}

/**
 * Drains the eventfd: the counter accumulated since the last read (the kernel resets it to 0 on read),
 * or 0n when nothing is pending (EAGAIN).
 */
export function readEventfd(fd: number): bigint {
  const buf = Buffer.alloc(8);
  for (;;) {
    const n = Number(c.read(fd, buf, 8));
    if (n === 8) return buf.readBigUInt64LE(0);
    if (n < 0) {
      const errno = koffi.errno();
      if (errno === EINTR) continue;
      if (errno === EAGAIN) return 0n;
      throw sysError('read', errno);
    }
    throw sysError('read', 0);
  }
}

export function closeFd(fd: number): void {
  c.close(fd);
}

export interface Readiness {
  /** Stops polling; call before closing the fd (libuv must drop it from epoll first). */
  close(): void;
}

type PollEvents = { readable: boolean; writable: boolean; disconnect: boolean };
type PollHandle = { close(): void; unref(): void };
/** koffi's (undocumented, "might change") uv_poll binding; its d.ts omits the status argument. */
type PollFn = (fd: number, opts: { readable: boolean }, cb: (status: number, ev: PollEvents) => void) => PollHandle;

/**
 * Calls `onReadable` whenever `fd` is readable (level-triggered: the callback must drain the fd), or with an
 * error status. The handle is unref'd: a watcher alone must not keep a process alive.
 */
export function pollReadable(fd: number, onReadable: (status: number) => void): Readiness {
  const poll = koffi.node.poll as unknown as PollFn;
  const handle = poll(fd, { readable: true }, (status) => onReadable(status));
  handle.unref();
  return { close: () => handle.close() };
}
