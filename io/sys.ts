/**
 * libc bindings (koffi) for the io layer. Only non-blocking syscalls are called synchronously here:
 * FIFOs are opened with O_NONBLOCK, sockets are read with MSG_DONTWAIT. Variadic libc functions
 * (open, fcntl, ioctl) are declared with a fixed arity, which is fine on x86_64 and arm64 Linux.
 */
import { constants as osConstants } from 'node:os';
import koffi from 'koffi';

const libc = koffi.load('libc.so.6');

const c = {
  open: libc.func('int open(const char *path, int flags, uint32_t mode)'),
  close: libc.func('int close(int fd)'),
  pipe2: libc.func('int pipe2(_Out_ int *fds, int flags)'),
  fcntl: libc.func('int fcntl(int fd, int cmd, int arg)'),
  fchown: libc.func('int fchown(int fd, uint32_t uid, uint32_t gid)'),
  ioctl: libc.func('int ioctl(int fd, unsigned long req, void *arg)'),
  recvmsg: libc.func('intptr_t recvmsg(int fd, void *msg, int flags)'),
  isatty: libc.func('int isatty(int fd)'),
  tcgetattr: libc.func('int tcgetattr(int fd, void *termios)'),
  mkfifo: libc.func('int mkfifo(const char *path, uint32_t mode)'),
  poll: libc.func('int poll(void *fds, unsigned long nfds, int timeout)'),
  unlockpt: libc.func('int unlockpt(int fd)'),
  ptsname_r: libc.func('int ptsname_r(int fd, _Out_ uint8_t *buf, size_t len)'),
};

export const O_RDONLY = 0;
export const O_WRONLY = 1;
export const O_RDWR = 2;
export const O_CREAT = 0o100;
export const O_NOCTTY = 0o400;
export const O_APPEND = 0o2000;
export const O_NONBLOCK = 0o4000;
export const O_CLOEXEC = 0o2000000;
export const F_GETFL = 3;
export const F_SETFL = 4;
export const F_DUPFD_CLOEXEC = 1030;
export const F_SETPIPE_SZ = 1031;
export const F_GETPIPE_SZ = 1032;
export const TIOCGWINSZ = 0x5413;
export const TIOCSWINSZ = 0x5414;
export const FIONREAD = 0x541b;
export const MSG_DONTWAIT = 0x40;
export const MSG_CTRUNC = 0x8;
export const MSG_CMSG_CLOEXEC = 0x40000000;
const SOL_SOCKET = 1;
const SCM_RIGHTS = 1;

// First name wins, so 11 is EAGAIN (not EWOULDBLOCK) and 35 EDEADLK, as Node reports them.
const ERRNO_NAMES = new Map<number, string>();
for (const [name, no] of Object.entries(osConstants.errno)) if (!ERRNO_NAMES.has(no)) ERRNO_NAMES.set(no, name);

/** An errno failure shaped like Node's own system errors (code, errno, syscall). */
export class SysError extends Error {
  readonly code: string;
  readonly errno: number;
  readonly syscall: string;
  constructor(syscall: string, errno: number, detail?: string) {
    const code = ERRNO_NAMES.get(errno) ?? `E${errno}`;
    super(`${syscall}${detail ? ` ${detail}` : ''}: ${code}`);
    this.name = 'SysError';
    this.code = code;
    this.errno = errno;
    this.syscall = syscall;
  }
}

function check(ret: number | bigint, syscall: string, detail?: string): number {
  const n = Number(ret);
  if (n < 0) throw new SysError(syscall, koffi.errno(), detail);
  return n;
}

export const errnoCode = (err: unknown): string | undefined =>
  typeof err === 'object' && err !== null ? ((err as { code?: unknown }).code as string | undefined) : undefined;

/** open(2); never call it with flags that can block (FIFOs need O_NONBLOCK or O_RDWR). */
export function open(path: string, flags: number, mode = 0): number {
  return check(c.open(path, flags | O_CLOEXEC, mode) as number, 'open', JSON.stringify(path));
}

export function close(fd: number): void {
  check(c.close(fd) as number, 'close');
}

/** close(2) that ignores errors: for cleanup paths. */
export function closeQuietly(fd: number | undefined): void {
  if (fd !== undefined && fd >= 0) c.close(fd);
}

/** A close-on-exec OS pipe: [readEnd, writeEnd]. */
export function pipe(): [number, number] {
  const fds = [0, 0];
  check(c.pipe2(fds, O_CLOEXEC) as number, 'pipe2');
  return [fds[0] as number, fds[1] as number];
}

export function fcntl(fd: number, cmd: number, arg = 0): number {
  return check(c.fcntl(fd, cmd, arg) as number, 'fcntl');
}

/** Grows a pipe/FIFO buffer; returns the new size or undefined when the limit forbids it. */
export function trySetPipeSize(fd: number, size: number): number | undefined {
  const r = c.fcntl(fd, F_SETPIPE_SZ, size) as number;
  return r < 0 ? undefined : r;
}

export function setNonBlocking(fd: number, on: boolean): void {
  const fl = fcntl(fd, F_GETFL);
  fcntl(fd, F_SETFL, on ? fl | O_NONBLOCK : fl & ~O_NONBLOCK);
}

export function dupCloexec(fd: number): number {
  return fcntl(fd, F_DUPFD_CLOEXEC, 0);
}

export function fchown(fd: number, uid: number, gid: number): void {
  check(c.fchown(fd, uid, gid) as number, 'fchown');
}

export function mkfifo(path: string, mode = 0o600): void {
  check(c.mkfifo(path, mode) as number, 'mkfifo', JSON.stringify(path));
}

export function isatty(fd: number): boolean {
  return (c.isatty(fd) as number) === 1;
}

/** tcgetattr as a terminal check (the reference validates the received master this way). */
export function isTerminal(fd: number): boolean {
  const termios = Buffer.alloc(64);
  return (c.tcgetattr(fd, termios) as number) === 0;
}

/** TIOCSWINSZ: struct winsize { ws_row, ws_col, ws_xpixel, ws_ypixel } (u16 each). */
export function setWinsize(fd: number, rows: number, cols: number): void {
  const ws = Buffer.alloc(8);
  ws.writeUInt16LE(rows & 0xffff, 0);
  ws.writeUInt16LE(cols & 0xffff, 2);
  check(c.ioctl(fd, TIOCSWINSZ, ws) as number, 'ioctl', 'TIOCSWINSZ');
}

export function getWinsize(fd: number): { rows: number; cols: number } {
  const ws = Buffer.alloc(8);
  check(c.ioctl(fd, TIOCGWINSZ, ws) as number, 'ioctl', 'TIOCGWINSZ');
  return { rows: ws.readUInt16LE(0), cols: ws.readUInt16LE(2) };
}

/** Bytes waiting to be read (FIONREAD); works on pipes, sockets and pty masters. */
export function bytesReadable(fd: number): number {
  const n = Buffer.alloc(4);
  check(c.ioctl(fd, FIONREAD, n) as number, 'ioctl', 'FIONREAD');
  return n.readInt32LE(0);
}

const POLLHUP = 0x10;

/**
 * Whether the other end hung up (POLLHUP), asked with a zero timeout so it never waits. On a pty master:
 * every slave fd is closed, so the kernel delivers what is pending and then EIO.
 */
export function hungUp(fd: number): boolean {
  const pfd = Buffer.alloc(8); // struct pollfd { int fd; short events; short revents; }
  pfd.writeInt32LE(fd, 0);
  pfd.writeInt16LE(0, 4);
  check(c.poll(pfd, 1, 0) as number, 'poll');
  return (pfd.readInt16LE(6) & POLLHUP) !== 0;
}

/** unlockpt(3) on a /dev/ptmx fd. */
export function unlockPt(master: number): void {
  check(c.unlockpt(master) as number, 'unlockpt');
}

/** The slave's path of a pty master (ptsname_r(3)). */
export function ptsName(master: number): string {
  const buf = Buffer.alloc(128);
  const err = c.ptsname_r(master, buf, buf.length) as number;
  if (err !== 0) throw new SysError('ptsname_r', err);
  return buf.subarray(0, buf.indexOf(0)).toString();
}

export interface ReceivedFds {
  readonly data: Buffer;
  readonly fds: number[];
  /** Number of control messages (the console protocol allows exactly one). */
  readonly controlMessages: number;
  /** MSG_CTRUNC: the control buffer was too small, fds may have been dropped. */
  readonly truncated: boolean;
}

/**
 * One non-blocking recvmsg(2) for SCM_RIGHTS (MSG_DONTWAIT | MSG_CMSG_CLOEXEC, so received fds never leak
 * into later children). Throws SysError EAGAIN when nothing is queued yet.
 * Layout (x86_64/arm64): msghdr 56 B, iovec 16 B, cmsghdr 16 B with data at +16.
 */
export function recvFds(sockFd: number, maxData = 4096, maxFds = 4): ReceivedFds {
  const data = Buffer.alloc(maxData);
  const iov = Buffer.alloc(16);
  iov.writeBigUInt64LE(koffi.address(data), 0);
  iov.writeBigUInt64LE(BigInt(maxData), 8);
  const controlLen = 16 + ((maxFds * 4 + 7) & ~7);
  const control = Buffer.alloc(controlLen);
  const msg = Buffer.alloc(56);
  msg.writeBigUInt64LE(koffi.address(iov), 16);
  msg.writeBigUInt64LE(1n, 24);
  msg.writeBigUInt64LE(koffi.address(control), 32);
  msg.writeBigUInt64LE(BigInt(controlLen), 40);
  const n = check(c.recvmsg(sockFd, msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC) as number | bigint, 'recvmsg');
  const flags = msg.readInt32LE(48);
  const usedControl = Number(msg.readBigUInt64LE(40));
  const fds: number[] = [];
  let controlMessages = 0;
  let off = 0;
  while (off + 16 <= usedControl) {
    const len = Number(control.readBigUInt64LE(off));
    const level = control.readInt32LE(off + 8);
    const type = control.readInt32LE(off + 12);
    if (len < 16) break;
    controlMessages++;
    if (level === SOL_SOCKET && type === SCM_RIGHTS) {
      for (let p = off + 16; p + 4 <= off + len; p += 4) fds.push(control.readInt32LE(p));
    }
    off += (len + 7) & ~7;
  }
  return { data: data.subarray(0, n), fds, controlMessages, truncated: (flags & MSG_CTRUNC) !== 0 };
}
