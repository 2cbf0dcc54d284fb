/**
 * Rootfs mounts from containerd's snapshotter (CreateTaskRequest.rootfs), applied with mount(2) through koffi
 * as containerd's mount package does: known options become MS_* flags, the rest is the data string.
 * mount(2) and umount2(2) return promptly for overlay and bind mounts (no I/O wait), so they are called
 * synchronously; they are only used for the rootfs.
 */
import koffi from 'koffi';
import { mkdirSync } from 'node:fs';
import { ShimError, invalidArgument } from '../../protocol/errdefs.js';

export interface MountSpec {
  readonly type: string;
  readonly source: string;
  readonly target?: string;
  readonly options: readonly string[];
}

const MS_RDONLY = 0x1;
const MS_NOSUID = 0x2;
const MS_NODEV = 0x4;
const MS_NOEXEC = 0x8;
const MS_SYNCHRONOUS = 0x10;
const MS_REMOUNT = 0x20;
const MS_MANDLOCK = 0x40;
const MS_DIRSYNC = 0x80;
const MS_NOATIME = 0x400;
const MS_NODIRATIME = 0x800;
const MS_BIND = 0x1000;
const MS_REC = 0x4000;
const MS_UNBINDABLE = 0x20000;
const MS_PRIVATE = 0x40000;
const MS_SLAVE = 0x80000;
const MS_SHARED = 0x100000;
const MS_RELATIME = 0x200000;
const MS_STRICTATIME = 0x1000000;

// [clear?, flag]: the table of containerd's mount_linux.go parseMountOptions.
const FLAGS: Record<string, [boolean, number]> = {
  async: [true, MS_SYNCHRONOUS],
  atime: [true, MS_NOATIME],
  bind: [false, MS_BIND],
  defaults: [false, 0],
  dev: [true, MS_NODEV],
  diratime: [true, MS_NODIRATIME],
  dirsync: [false, MS_DIRSYNC],
  exec: [true, MS_NOEXEC],
  mand: [false, MS_MANDLOCK],
  noatime: [false, MS_NOATIME],
  nodev: [false, MS_NODEV],
  nodiratime: [false, MS_NODIRATIME],
  noexec: [false, MS_NOEXEC],
  nomand: [true, MS_MANDLOCK],
  norelatime: [true, MS_RELATIME],
  nostrictatime: [true, MS_STRICTATIME],
  nosuid: [false, MS_NOSUID],
  rbind: [false, MS_BIND | MS_REC],
  relatime: [false, MS_RELATIME],
  remount: [false, MS_REMOUNT],
  ro: [false, MS_RDONLY],
  rw: [true, MS_RDONLY],
  strictatime: [false, MS_STRICTATIME],
  suid: [true, MS_NOSUID],
  sync: [false, MS_SYNCHRONOUS],
};
const PROPAGATION: Record<string, number> = {
  private: MS_PRIVATE,
  rprivate: MS_PRIVATE | MS_REC,
  shared: MS_SHARED,
  rshared: MS_SHARED | MS_REC,
  slave: MS_SLAVE,
  rslave: MS_SLAVE | MS_REC,
  unbindable: MS_UNBINDABLE,
  runbindable: MS_UNBINDABLE | MS_REC,
};

export interface ParsedOptions {
  readonly flags: number;
  readonly propagation: number;
  readonly data: string;
}

export function parseMountOptions(options: readonly string[]): ParsedOptions {
  let flags = 0;
  let propagation = 0;
  const data: string[] = [];
  for (const o of options) {
    const f = FLAGS[o];
    if (f) {
      flags = f[0] ? flags & ~f[1] : flags | f[1];
      continue;
    }
    const p = PROPAGATION[o];
    if (p !== undefined) {
      propagation |= p;
      continue;
    }
    data.push(o);
  }
  return { flags, propagation, data: data.join(',') };
}

interface Libc {
  mount(source: string, target: string, fstype: string | null, flags: number, data: string | null): number;
  umount2(target: string, flags: number): number;
}
let libc: Libc | undefined;
function sys(): Libc {
  if (!libc) {
    const lib = koffi.load('libc.so.6');
    libc = {
      mount: lib.func('int mount(const char *src, const char *target, const char *fstype, unsigned long flags, const char *data)'),
      umount2: lib.func('int umount2(const char *target, int flags)'),
    } as Libc;
  }
  return libc;
}

function errnoError(op: string, target: string): ShimError {
  const errno = koffi.errno();
  const e = new ShimError('Unknown', `${op} ${target}: errno ${errno}`);
  (e as ShimError & { errno: number }).errno = errno;
  return e;
}

const EINVAL = 22;
const ENOENT = 2;
const EBUSY = 16;
const MNT_DETACH = 2;

export function mountOne(m: MountSpec, target: string): void {
  if (m.source.includes('\0') || target.includes('\0') || m.options.some((o) => o.includes('\0'))) {
    throw invalidArgument('mount arguments contain NUL');
  }
  const { flags, propagation, data } = parseMountOptions(m.options);
  const fstype = m.type === 'bind' ? null : m.type;
  const bind = (flags & MS_BIND) !== 0;
  if (sys().mount(m.source, target, fstype, flags, data || null) !== 0) {
    throw errnoError(`mount ${m.type} ${m.source} on`, target);
  }
  // A read-only bind needs a remount (the kernel ignores MS_RDONLY on the first bind call).
  if (bind && (flags & MS_RDONLY) !== 0) {
    if (sys().mount('', target, null, flags | MS_REMOUNT, null) !== 0) throw errnoError('remount ro', target);
  }
  if (propagation !== 0 && sys().mount('', target, null, propagation, null) !== 0) {
    throw errnoError('set propagation of', target);
  }
}

/** Mounts every rootfs entry, in order, onto `<bundle>/rootfs` (created 0711 when missing). */
export async function mountRootfs(mounts: readonly MountSpec[], rootfs: string): Promise<void> {
  mkdirSync(rootfs, { mode: 0o711, recursive: true }); // the bundle: local, as the mounts below
  let done = 0;
  try {
    for (const m of mounts) {
      mountOne(m, rootfs);
      done++;
    }
  } catch (err) {
    if (done > 0) unmountAll(rootfs);
    throw new ShimError('Unknown', `failed to mount rootfs component: ${(err as Error).message}`, { cause: err });
  }
}

/**
 * Unmounts everything stacked on target (repeats until EINVAL/ENOENT: nothing mounted); EBUSY falls back to
 * a lazy detach so a stuck reader never leaves the mount behind.
 */
export function unmountAll(target: string): void {
  for (let i = 0; i < 64; i++) {
    if (sys().umount2(target, 0) === 0) continue;
    const errno = koffi.errno();
    if (errno === EINVAL || errno === ENOENT) return;
    if (errno === EBUSY && sys().umount2(target, MNT_DETACH) === 0) continue;
    throw new ShimError('Unknown', `failed rootfs umount: ${target}: errno ${errno}`);
  }
}
