/**
 * A container's cgroup, as the runc shim uses it: found from the init pid, read for `Stats`, watched for OOM
 * kills. v2 when the host is unified (cgroup2 at /sys/fs/cgroup); v1 otherwise, including hybrid hosts, like
 * containerd's runc shim (runtime/v2/runc/container.go @ v1.6.20).
 */
import { lstatSync, readFileSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { posix } from 'node:path';
import type { Logger } from 'pino';
import { notFound } from '../../protocol/errdefs.js';
import {
  V1MetricsMessage, V1_METRICS_TYPE_URL, V2MetricsMessage, V2_METRICS_TYPE_URL,
} from './cgroup-metrics.js';
import { cachedCgroupMode, cgroupDir, parseCgroupMounts, parseProcCgroup, type CgroupMode } from './cgroup-paths.js';
import { V1_CONTROLLERS, readV1Metrics, type V1Dirs } from './cgroup-v1.js';
import { readV2Metrics } from './cgroup-v2.js';
import { watchOomV1 } from './oom-v1.js';
import { watchOomV2 } from './oom-v2.js';

export type MetricsTypeUrl = typeof V1_METRICS_TYPE_URL | typeof V2_METRICS_TYPE_URL;

export interface CgroupHandle {
  readonly version: 1 | 2;
  /** Container cgroup path as in /proc/<pid>/cgroup (v1: the memory controller's, else the first found). */
  readonly path: string;
  /** Protobuf-encoded Metrics for the Stats `Any`; unreadable files read as zero, never a throw per file. */
  stats(): Promise<{ typeUrl: MetricsTypeUrl; value: Uint8Array }>;
  /**
   * Calls `onOom` for each OOM kill in this cgroup until the returned stop function is called (or the cgroup
   * goes away). Rejects when the watch cannot be armed (e.g. no memory controller).
   */
  watchOom(onOom: () => void, logger: Logger): Promise<StopOomWatch>;
}

/**
 * Stops an OOM watcher. `flush`: first report, synchronously, what the kernel has signalled and the watcher has
 * not yet reported (a notification still queued in the event loop, or waiting on its check) — for the init's
 * exit, before its TaskExit: the cgroup still exists then (runc delete comes after), and a kill that raced the
 * exit must not be lost (Docker sets State.OOMKilled from TaskOOM).
 */
export type StopOomWatch = (opts?: { flush?: boolean }) => void;

export interface CgroupLocation {
  /** Where /proc lives (tests). Default `/proc`. */
  procRoot?: string;
  /** The cgroup mount root. Default `/sys/fs/cgroup`. */
  cgroupRoot?: string;
  /** Overrides the detected hierarchy mode (tests). */
  mode?: CgroupMode;
}

/** A v1 handle over per-controller directories (absolute paths). */
export function v1Cgroup(path: string, dirs: V1Dirs): CgroupHandle {
  return {
    version: 1,
    path,
    async stats() {
      const metrics = await readV1Metrics(dirs);
      return { typeUrl: V1_METRICS_TYPE_URL, value: V1MetricsMessage.encode(metrics).finish() };
    },
    async watchOom(onOom, logger) {
      if (!dirs.memory) throw notFound(`cannot watch for OOM: no memory cgroup for ${path}`);
      return watchOomV1(dirs.memory, onOom, logger);
    },
  };
}

/** A v2 handle over the cgroup directory `dir`. */
export function v2Cgroup(path: string, dir: string): CgroupHandle {
  return {
    version: 2,
    path,
    async stats() {
      const metrics = await readV2Metrics(dir);
      return { typeUrl: V2_METRICS_TYPE_URL, value: V2MetricsMessage.encode(metrics).finish() };
    },
    watchOom: (onOom, logger) => watchOomV2(dir, onOom, logger),
  };
}

/**
 * The cgroup of `pid`, from /proc/<pid>/cgroup. Undefined (logged at warn) when it cannot be found: the process
 * is gone, or none of its cgroup directories exist. Never throws; Stats then reports NotFound upstream.
 */
export async function loadCgroup(pid: number, logger: Logger, where: CgroupLocation = {}): Promise<CgroupHandle | undefined> {
  const procRoot = where.procRoot ?? '/proc';
  const cgroupRoot = where.cgroupRoot ?? '/sys/fs/cgroup';
  // Not `pid`: that base field is the shim's own pid.
  const log = logger.child({ target_pid: pid });
  // Synchronous: procfs and cgroupfs answer from the kernel's memory, never from storage, and Start waits on
  // this (the OOM watcher is armed before runc start). Through the threadpool, the chain of round trips here
  // and in the watcher's registration took 5-10 ms in a fresh daemon; these calls take microseconds.
  const mode = where.mode ?? cachedCgroupMode(cgroupRoot);
  let procText: string;
  try {
    procText = readFileSync(posix.join(procRoot, String(pid), 'cgroup'), 'utf8');
  } catch (err) {
    log.warn({ err }, 'cannot read the process cgroup; stats and OOM events are unavailable');
    return undefined;
  }
  const proc = parseProcCgroup(procText);

  if (mode === 'unified') {
    if (proc.unified === undefined) {
      log.warn('no cgroup v2 entry in /proc/<pid>/cgroup');
      return undefined;
    }
    const dir = posix.join(cgroupRoot, proc.unified);
    if (!isDir(dir)) {
      log.warn({ cgroup: dir }, 'cgroup directory does not exist');
      return undefined;
    }
    return v2Cgroup(proc.unified, dir);
  }

  let mountinfo = '';
  try {
    mountinfo = readFileSync(posix.join(procRoot, 'self', 'mountinfo'), 'utf8');
  } catch (err) {
    log.warn({ err }, 'cannot read mountinfo');
  }
  const mounts = parseCgroupMounts(mountinfo).v1;
  const found = V1_CONTROLLERS.map((controller) => {
    const cgPath = proc.v1.get(controller);
    const mount = mounts.get(controller);
    if (cgPath === undefined || mount === undefined) return undefined;
    const dir = cgroupDir(mount, cgPath);
    // Like containerd's Load: a controller whose directory is missing is skipped, not an error.
    return dir !== undefined && isDir(dir) ? { controller, dir, cgPath } : undefined;
  });
  const dirs: V1Dirs = {};
  let path: string | undefined;
  for (const f of found) {
    if (!f) continue;
    dirs[f.controller] = f.dir;
    if (f.controller === 'memory' || path === undefined) path = f.cgPath;
  }
  if (path === undefined) {
    log.warn('none of the process cgroup directories exist');
    return undefined;
  }
  return v1Cgroup(path, dirs);
}

/**
 * cgroup v2: enable every root controller (`<root>/cgroup.controllers`) in `cgroup.subtree_control` of each
 * ancestor of `path` (root included, `path` itself excluded), one write per ancestor, as the runc shim does at
 * init Start so the container's cgroup gets all controllers. Failures are only logged.
 */
export async function enableV2Controllers(path: string, logger: Logger, where: CgroupLocation = {}): Promise<void> {
  const root = where.cgroupRoot ?? '/sys/fs/cgroup';
  let controllers: string[];
  try {
    controllers = (await readFile(posix.join(root, 'cgroup.controllers'), 'utf8')).split(/\s+/).filter(Boolean);
  } catch (err) {
    logger.error({ err }, 'failed to get root controllers');
    return;
  }
  if (controllers.length === 0) return;
  const line = controllers.map((c) => '+' + c).join(' ');
  for (const ancestor of ancestorsOf(path)) {
    const file = posix.join(root, ancestor, 'cgroup.subtree_control');
    try {
      await writeFile(file, line);
    } catch (err) {
      // Upstream only reports the last failure; the rootless EPERM on a parent is expected there.
      logger.warn({ err, file, controllers }, 'failed to enable cgroup controllers');
    }
  }
}

/** "/a/b/c" → ["/", "/a", "/a/b"]. */
export function ancestorsOf(path: string): string[] {
  const parts = path.split('/').filter(Boolean);
  const out: string[] = [];
  for (let i = 0; i < parts.length; i++) out.push('/' + parts.slice(0, i).join('/'));
  return out;
}

function isDir(path: string): boolean {
  try {
    return lstatSync(path).isDirectory();
  } catch {
    return false;
  }
}
