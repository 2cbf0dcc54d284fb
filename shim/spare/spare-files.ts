/**
 * Where warm spare daemons wait. A spare is a daemon started ahead of time (Node started, modules loaded)
 * that takes the next `start` of its build: the wrapper's `start` writes its own pid into the spare's FIFO and
 * the spare serves the container (scripts/shim-wrapper.sh, spare.ts). The FIFO's name carries the build id,
 * the session the spare was started in and the spare's pid, so the wrapper finds a live spare of its own build
 * and session with a glob and `kill -0`. The wrapper also starts spares (after a start, when none is alive),
 * so that no spare is a daemon's child.
 *
 * One spare per session: a spare is started from a start, in the session of the containerd that ran it, and
 * what it forks inherits what the spare got from that containerd (session, resource limits, umask). Another
 * containerd (a restart, or a second instance on the host) runs its starts in a session of its own and gets a
 * spare of its own; the other's exits once its containerd is gone (SPARE_OWNER_ENV), or idles out.
 */
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { TS_GROUP_ENV } from '../platform/bundle.js';
import { SHIM_SOCKET_DIR } from '../platform/socket-address.js';
import { SHIM_BUILD_ID } from '../version.js';
import { procStatFields, processExists as isAlive } from '../../reaper/children.js';

/** CONTAINERD_SHIM_TS_SPARE=0 in containerd's environment: no spare, every start starts Node. */
export const SPARE_ENV = 'CONTAINERD_SHIM_TS_SPARE';

/**
 * Set by whoever starts a spare: the pid of the containerd whose start it was (the start's parent, unless the
 * start's environment already names one: tests whose starts run from short-lived shells); the spare exits
 * once that process is gone.
 */
export const SPARE_OWNER_ENV = 'CONTAINERD_SHIM_TS_SPARE_OWNER';

export function sparesEnabled(env: NodeJS.ProcessEnv): boolean {
  return env[SPARE_ENV] !== '0';
}

/**
 * Whether a start keeps a spare waiting for the next one. Not by default under CONTAINERD_SHIM_TS_GROUP: every
 * container of a namespace then joins one daemon, a new daemon is needed once per namespace and key, and an
 * idle spare would cost as much memory as that daemon (about 10 MiB anonymous) to save 40-60 ms once.
 * CONTAINERD_SHIM_TS_SPARE=1 keeps one anyway. (scripts/shim-wrapper.sh's spawn_spare decides the same.)
 */
export function keepsSpare(env: NodeJS.ProcessEnv): boolean {
  const set = env[SPARE_ENV];
  if (set !== undefined && set !== '') return set !== '0';
  return !env[TS_GROUP_ENV];
}

/** This process's session id (from /proc/self/stat, as the wrapper reads its own), 0 when unreadable. */
export function ownSession(): number {
  const session = Number(procStatFields('self')?.[3]);
  return Number.isInteger(session) && session >= 0 ? session : 0;
}

/** The names of this build's spares of `session`: `ts-spare-<build>-s<session>-<pid>`. */
export function sparePrefix(session = ownSession()): string {
  return `ts-spare-${SHIM_BUILD_ID}-s${session}-`;
}

export function spareFifoPath(pid: number, session = ownSession(), dir = SHIM_SOCKET_DIR): string {
  return join(dir, `${sparePrefix(session)}${pid}`);
}

/** The wrapper's mark that a spare of this build and session is booting (holds its pid); the spare removes it. */
export function spareBootingPath(session = ownSession(), dir = SHIM_SOCKET_DIR): string {
  return join(dir, `ts-spare-${SHIM_BUILD_ID}-s${session}.booting`);
}

/** Pids of live spares of this build and session, and FIFOs of dead ones (to remove). */
export async function listSpares(session = ownSession(), dir = SHIM_SOCKET_DIR): Promise<{ live: number[]; stale: string[] }> {
  const live: number[] = [];
  const stale: string[] = [];
  let names: string[];
  try {
    names = await readdir(dir);
  } catch {
    return { live, stale };
  }
  for (const name of names) {
    // Any build's FIFO whose spare is dead is stale (killed spares of older builds too); live ones count
    // only for this build.
    const m = /^ts-spare-[0-9a-z]+-(?:s\d+-)?(\d+)$/.exec(name);
    const pid = Number(m?.[1]);
    if (!m || !Number.isInteger(pid) || pid <= 0) continue;
    if (!isAlive(pid)) stale.push(join(dir, name));
    else if (name.startsWith(sparePrefix(session))) live.push(pid);
  }
  return { live, stale };
}
