/**
 * cgroup v2 OOM notifications (containerd pkg/oom/v2 + cgroups v2 `EventChan`): inotify (fs.watch) on
 * `memory.events` and `cgroup.events`. On each change `memory.events` is re-read and `onOom` fires once when
 * `oom_kill` has grown since the last read. The watcher ends by itself when `memory.events` can no longer be
 * read (cgroup removed) or `cgroup.events` says `populated 0` (nothing left to be killed).
 */
import { readFileSync, watch, type FSWatcher } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { readFlatKeyed } from './cgroup-files.js';
import { notFound } from '../../protocol/errdefs.js';
import type { StopOomWatch } from './cgroup.js';

/** `oom_kill` of a memory.events file, read synchronously (for a flushing stop); undefined when unreadable. */
function oomKillsNow(eventsPath: string): bigint | undefined {
  try {
    const line = readFileSync(eventsPath, 'utf8')
      .split('\n')
      .find((l) => l.startsWith('oom_kill '));
    return line ? BigInt(line.slice('oom_kill '.length).trim()) : 0n;
  } catch {
    return undefined;
  }
}

/**
 * Arms the watcher on the v2 cgroup directory `dir`. The baseline is the `oom_kill` count at arming time, so a
 * late arm (after a shim restart) does not re-report old kills; upstream starts from 0, which is the same for a
 * freshly started container. Rejects when `memory.events` is absent (memory controller not enabled).
 */
export async function watchOomV2(dir: string, onOom: () => void, logger: Logger): Promise<StopOomWatch> {
  const eventsPath = join(dir, 'memory.events');
  const initial = await readFlatKeyed(eventsPath);
  if (!initial) throw notFound(`cannot watch for OOM: ${eventsPath} is not readable`);
  let lastKills = initial.get('oom_kill') ?? 0n;

  const watchers: FSWatcher[] = [];
  let stopped = false;
  const stop: StopOomWatch = (opts) => {
    if (stopped) return;
    if (opts?.flush) {
      // A change inotify has not delivered (or a check still reading): read the count now.
      const kills = oomKillsNow(eventsPath);
      if (kills !== undefined && kills > lastKills) {
        lastKills = kills;
        notify(onOom, dir, logger);
      }
    }
    stopped = true;
    for (const w of watchers) w.close();
  };

  let running = false;
  let again = false;
  const check = async () => {
    // Serialised: a burst of inotify events collapses into re-reads until the file is quiet.
    if (running) {
      again = true;
      return;
    }
    running = true;
    try {
      do {
        again = false;
        const events = await readFlatKeyed(eventsPath);
        if (stopped) return;
        if (!events) {
          logger.debug({ cgroup: dir }, 'cgroup removed; OOM watcher stopped');
          stop();
          return;
        }
        const kills = events.get('oom_kill') ?? 0n;
        if (kills > lastKills) {
          lastKills = kills;
          notify(onOom, dir, logger);
        }
        const populated = (await readFlatKeyed(join(dir, 'cgroup.events')))?.get('populated');
        if (populated === 0n && !again) {
          logger.debug({ cgroup: dir }, 'cgroup empty; OOM watcher stopped');
          stop();
          return;
        }
      } while (again && !stopped);
    } finally {
      running = false;
    }
  };
  const onChange = () => {
    if (!stopped) check().catch((err: unknown) => logger.error({ cgroup: dir, err }, 'OOM check failed'));
  };

  try {
    for (const name of ['memory.events', 'cgroup.events']) {
      const w = watch(join(dir, name), { persistent: false }, onChange);
      // The watched file vanishing with its cgroup surfaces as an error on some kernels; the check sees it.
      w.on('error', onChange);
      watchers.push(w);
    }
  } catch (err) {
    stop();
    throw err;
  }
  // An OOM between the baseline read and the watch being armed would otherwise go unnoticed.
  onChange();
  return stop;
}

/** A throwing listener must not kill the watcher. */
export function notify(onOom: () => void, cgroup: string, logger: Logger): void {
  try {
    onOom();
  } catch (err) {
    logger.error({ cgroup, err }, 'OOM listener threw');
  }
}
