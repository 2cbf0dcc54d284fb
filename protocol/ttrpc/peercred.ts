/**
 * SO_PEERCRED of a connected unix socket (koffi). getsockopt never blocks, so a synchronous call is fine.
 * Kept in its own module: the only native binding of the ttrpc package.
 */
import koffi from 'koffi';
import type { Socket } from 'node:net';
import { endianness } from 'node:os';

export interface PeerCredentials {
  readonly pid: number;
  readonly uid: number;
  readonly gid: number;
}

const SOL_SOCKET = 1;
const SO_PEERCRED = 17;
const UCRED_SIZE = 12; // struct ucred { pid_t pid; uid_t uid; gid_t gid; }

type GetSockOpt = (fd: number, level: number, name: number, value: Buffer, length: number[]) => number;
let getsockopt: GetSockOpt | undefined;

function bind(): GetSockOpt {
  if (!getsockopt) {
    const libc = koffi.load('libc.so.6');
    getsockopt = libc.func(
      'int getsockopt(int fd, int level, int optname, _Out_ uint8_t *optval, _Inout_ uint32_t *optlen)',
    ) as GetSockOpt;
  }
  return getsockopt;
}

/** The fd behind a net.Socket; libuv exposes it on the handle (-1 or absent when unknown). */
function socketFd(socket: Socket): number {
  const handle = (socket as unknown as { _handle?: { fd?: unknown } })._handle;
  return typeof handle?.fd === 'number' ? handle.fd : -1;
}

/** Reads the peer's credentials; throws when the socket has no fd or the call fails. */
export function peerCredentials(socket: Socket): PeerCredentials {
  const fd = socketFd(socket);
  if (fd < 0) throw new Error('peer credentials: socket has no file descriptor');
  const buf = Buffer.alloc(UCRED_SIZE);
  const len = [UCRED_SIZE];
  if (bind()(fd, SOL_SOCKET, SO_PEERCRED, buf, len) !== 0) {
    throw new Error(`peer credentials: getsockopt(SO_PEERCRED) failed, errno ${koffi.errno()}`);
  }
  // struct ucred is in host byte order.
  const le = endianness() === 'LE';
  const u32 = (off: number) => (le ? buf.readUInt32LE(off) : buf.readUInt32BE(off));
  return { pid: u32(0) | 0, uid: u32(4), gid: u32(8) };
}

/** ttrpc's UnixSocketRequireSameUser: both uid and gid must equal ours (effective ids). */
export function isSameUser(cred: PeerCredentials): boolean {
  const euid = process.geteuid?.() ?? -1;
  const egid = process.getegid?.() ?? -1;
  return cred.uid === euid && cred.gid === egid;
}
