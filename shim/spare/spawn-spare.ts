/**
 * A serving daemon starts the next spare (when none of its build is alive), a moment after it answered its
 * own `start`, so that Node's start-up does not compete with the container's create for the CPU.
 */
import { spawn } from 'node:child_process';
import { setPriority } from 'node:os';
import { unlink } from 'node:fs/promises';
import { SPARE_CGROUP_OF_ENV, listSpares, sparesEnabled } from './spare-files.js';

/**
 * Delay between answering a start and starting the next spare. Short: a container that only runs `true`
 * has its daemon gone ~100 ms later, and the next start should find a spare.
 */
const SPAWN_DELAY_MS = Number(process.env.CONTAINERD_SHIM_TS_SPARE_DELAY_MS ?? 0) || 0;
const SPARE_NICE = 19;
/** Room in the spare's argv for the title it takes once it serves a container (process.title cannot grow). */
const TITLE_ROOM = 200;

/** Starts a spare of this build unless one is alive; `containerdPid`: whose cgroups the spare waits in. */
export async function spawnSpareIfNone(containerdPid: number, env: NodeJS.ProcessEnv = process.env): Promise<number | undefined> {
  if (!sparesEnabled(env)) return undefined;
  const { live, stale } = await listSpares();
  await Promise.all(stale.map((path) => unlink(path).catch(() => undefined)));
  if (live.length > 0) return undefined;
  const script = process.argv[1];
  if (!script) return undefined;
  const child = spawn(process.execPath, [...process.execArgv, script, 'spare', ' '.repeat(TITLE_ROOM)], {
    cwd: '/',
    detached: true,
    stdio: 'ignore',
    env: { ...env, [SPARE_CGROUP_OF_ENV]: String(containerdPid) },
  });
  child.on('error', () => undefined);
  child.unref();
  // Node's start-up would compete with the container being created right now: the spare starts at the
  // lowest priority and takes the start's own once it serves (spare.ts).
  if (child.pid !== undefined) {
    try {
      setPriority(child.pid, SPARE_NICE);
    } catch {
      /* gone already, or not allowed: it just starts at our priority */
    }
  }
  return child.pid;
}

export function spawnSpareSoon(containerdPid: number): void {
  setTimeout(() => void spawnSpareIfNone(containerdPid).catch(() => undefined), SPAWN_DELAY_MS);
}
