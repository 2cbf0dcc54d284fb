/**
 * Locating a process's cgroup: the hierarchy mode of the host, `/proc/<pid>/cgroup`, and the cgroup mounts of
 * `/proc/self/mountinfo` (so a shim whose cgroupfs mounts have a non-/ root, e.g. nested, still finds dirs).
 */
import { statfsSync } from 'node:fs';
import { posix } from 'node:path';

const CGROUP2_SUPER_MAGIC = 0x63677270;

export type CgroupMode = 'unified' | 'hybrid' | 'legacy';

const modes = new Map<string, CgroupMode>();

/**
 * containerd's cgroups.Mode(): cgroup2 at the root → unified; cgroup2 at `<root>/unified` → hybrid; else
 * legacy. The runc shim treats hybrid as v1. Found once per root and process (a host does not change its
 * hierarchy under a running shim), with statfs(2) called directly: a cgroup mount answers from memory, and
 * Start waits on the OOM watcher's arming.
 */
export function cachedCgroupMode(root = '/sys/fs/cgroup'): CgroupMode {
  let mode = modes.get(root);
  if (mode === undefined) {
    const isCgroup2 = (p: string): boolean => {
      try {
        return statfsSync(p).type === CGROUP2_SUPER_MAGIC;
      } catch {
        return false;
      }
    };
    mode = isCgroup2(root) ? 'unified' : isCgroup2(posix.join(root, 'unified')) ? 'hybrid' : 'legacy';
    modes.set(root, mode);
  }
  return mode;
}

export interface ProcCgroup {
  /** v1 controller (or `name=systemd`) → path. */
  v1: Map<string, string>;
  /** The `0::<path>` entry, if any. */
  unified?: string;
}

/** Parses `/proc/<pid>/cgroup` ("id:controllers:path" per line; controllers empty for the v2 entry). */
export function parseProcCgroup(text: string): ProcCgroup {
  const out: ProcCgroup = { v1: new Map() };
  for (const line of text.split('\n')) {
    if (!line) continue;
    const first = line.indexOf(':');
    const second = line.indexOf(':', first + 1);
    if (first < 0 || second < 0) continue;
    const controllers = line.slice(first + 1, second);
    const path = line.slice(second + 1);
    if (controllers === '') {
      out.unified = path;
      continue;
    }
    for (const c of controllers.split(',')) out.v1.set(c, path);
  }
  return out;
}

export interface CgroupMount {
  /** The cgroup path that the mount shows at its mount point (field 4 of mountinfo). */
  root: string;
  mountPoint: string;
}

/** v1 controller → its (first) cgroup mount; the cgroup2 mounts separately. */
export interface CgroupMounts {
  v1: Map<string, CgroupMount>;
  v2: CgroupMount[];
}

/** mountinfo escapes space, tab, newline and backslash as octal. */
const unescapeMountinfo = (s: string) => s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));

export function parseCgroupMounts(mountinfo: string): CgroupMounts {
  const out: CgroupMounts = { v1: new Map(), v2: [] };
  for (const line of mountinfo.split('\n')) {
    const sep = line.indexOf(' - ');
    if (sep < 0) continue;
    const pre = line.slice(0, sep).split(' ');
    const [fstype, , superOptions = ''] = line.slice(sep + 3).split(' ');
    const root = pre[3];
    const mountPoint = pre[4];
    if (root === undefined || mountPoint === undefined) continue;
    const mount = { root: unescapeMountinfo(root), mountPoint: unescapeMountinfo(mountPoint) };
    if (fstype === 'cgroup2') out.v2.push(mount);
    else if (fstype === 'cgroup') {
      for (const opt of superOptions.split(',')) {
        if (opt === 'rw' || opt === 'ro' || (opt.includes('=') && !opt.startsWith('name='))) continue;
        if (!out.v1.has(opt)) out.v1.set(opt, mount);
      }
    }
  }
  return out;
}

/**
 * The directory of cgroup `path` under `mount`, or undefined when the path is outside what the mount shows
 * (containerd's existingPath makes the path relative to the mount root the same way).
 */
export function cgroupDir(mount: CgroupMount, path: string): string | undefined {
  const rel = posix.relative(mount.root, path);
  if (rel.startsWith('..')) return undefined;
  return posix.join(mount.mountPoint, rel);
}
