/**
 * cgroup v1 OOM notifications (containerd pkg/oom/v1): an eventfd registered through `cgroup.event_control`
 * against `memory.oom_control`. The kernel increments the eventfd counter once per OOM notification, and once
 * more when the cgroup is removed — that last one is not an OOM, so a wakeup whose cgroup is gone stops the
 * watcher instead of reporting.
 */
import { closeSync, openSync, writeFileSync } from 'node:fs';
import { access } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { closeFd, createEventfd, pollReadable, readEventfd, type Readiness } from './cgroup-sys.js';
import { notify } from './oom-v2.js';
import type { StopOomWatch } from './cgroup.js';

/**
 * Arms the watcher on the memory cgroup directory `dir`; `onOom` runs once per kernel notification.
 * Rejects when registration fails (no memory controller, cgroup gone). Returns an idempotent stop function.
 */
export async function watchOomV1(dir: string, onOom: () => void, logger: Logger): Promise<StopOomWatch> {
  const efd = createEventfd();
  let readiness: Readiness | undefined;
  let stopped = false;
  let pending = 0n;
  /** Taken from `pending` by deliver() and waiting on its existence check. */
  let checking = 0n;
  const stop: StopOomWatch = (opts) => {
    if (stopped) return;
    if (opts?.flush) {
      // The caller vouches that the cgroup is still there: every count is an OOM, none its removal.
      let count = pending + checking;
      try {
        count += readEventfd(efd);
      } catch (err) {
        logger.warn({ cgroup: dir, err }, 'OOM eventfd read at flush failed');
      }
      pending = 0n;
      checking = 0n;
      for (let i = 0n; i < count; i++) notify(onOom, dir, logger);
    }
    stopped = true;
    readiness?.close();
    // Closing the eventfd also unregisters the kernel-side event (the memcg listener sees EPOLLHUP).
    closeFd(efd);
  };
  try {
    // Synchronous, as loadCgroup's reads: cgroupfs answers from memory, and Start waits on this registration.
    const control = openSync(join(dir, 'memory.oom_control'), 'r');
    try {
      writeFileSync(join(dir, 'cgroup.event_control'), `${efd} ${control}`);
    } finally {
      closeSync(control);
    }
  } catch (err) {
    stop();
    throw err;
  }

  let delivering = false;
  const deliver = async () => {
    // One existence check at a time; notifications arriving meanwhile are added to `pending`.
    if (delivering) return;
    delivering = true;
    try {
      while (pending > 0n && !stopped) {
        checking = pending;
        pending = 0n;
        const present = await exists(join(dir, 'memory.oom_control'));
        if (stopped) return; // a flushing stop has reported `checking` meanwhile
        const count = checking;
        checking = 0n;
        if (!present) {
          logger.debug({ cgroup: dir }, 'memory cgroup removed; OOM watcher stopped');
          stop();
          return;
        }
        for (let i = 0n; i < count && !stopped; i++) notify(onOom, dir, logger);
      }
    } finally {
      delivering = false;
    }
  };

  readiness = pollReadable(efd, (status) => {
    if (stopped) return;
    if (status < 0) {
      logger.warn({ cgroup: dir, status }, 'OOM eventfd poll failed; watcher stopped');
      stop();
      return;
    }
    try {
      pending += readEventfd(efd);
    } catch (err) {
      logger.warn({ cgroup: dir, err }, 'OOM eventfd read failed; watcher stopped');
      stop();
      return;
    }
    deliver().catch((err: unknown) => logger.error({ cgroup: dir, err }, 'OOM delivery failed'));
  });
  return stop;
}

async function exists(path: string): Promise<boolean> {
  try {
    await access(path);
    return true;
  } catch {
    return false;
  }
}
