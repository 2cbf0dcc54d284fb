// Helpers for the reaper tests: orphan launchers (shell scripts that fork and exit, so their children
// re-parent to the test process, which is the subreaper), zombie checks, polling.
import { mkdtemp, open, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { listChildPids, processState } from '../../reaper/children.js';
import type { Reaper } from '../../reaper/reaper.js';

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

export async function waitFor(cond: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(20);
  }
}

/** Our children in state Z (after giving libuv and the reaper time to collect). */
export async function expectNoZombies(timeoutMs = 10_000): Promise<void> {
  const zombies = (): number[] => listChildPids().filter((pid) => processState(pid) === 'Z');
  const deadline = Date.now() + timeoutMs;
  let left = zombies();
  while (left.length > 0 && Date.now() < deadline) {
    await sleep(50);
    left = zombies();
  }
  if (left.length > 0) throw new Error(`zombies left: ${left.join(' ')}`);
}

export function killQuietly(pids: Iterable<number>, signal: NodeJS.Signals = 'SIGKILL'): void {
  for (const pid of pids) {
    try {
      process.kill(pid, signal);
    } catch {
      // already gone
    }
  }
}

export interface Launched {
  /** The numbers the script printed, one per line (the orphans' pids). */
  readonly pids: number[];
  /** Opens the barrier: every process reading fd 3 sees EOF at the same moment. */
  release(): Promise<void>;
}

/**
 * Runs a shell script through the reaper with fd 3 open on a FIFO barrier, waits for the script to exit,
 * and returns what it printed. The test holds the FIFO's only writer (opened O_RDWR, which never blocks);
 * closing it gives EOF to all readers at once. (The script's stdin cannot be the barrier: child_process
 * destroys a child's stdin pipe when the child exits.)
 */
export async function launch(reaper: Reaper, script: string): Promise<Launched> {
  const dir = await mkdtemp(join(tmpdir(), 'reaper-'));
  const fifo = join(dir, 'barrier');
  const made = await reaper.run('mkfifo', [fifo]);
  if (made.exit.status !== 0) throw new Error(`mkfifo: ${made.stderr.toString()}`);
  const writer = await open(fifo, 'r+');
  let released = false;
  const release = async (): Promise<void> => {
    if (released) return;
    released = true;
    await writer.close();
    await rm(dir, { recursive: true, force: true });
  };
  try {
    const r = await reaper.run('sh', ['-c', `exec 3<${fifo}\n${script}`], { stdio: ['ignore', 'pipe', 2] });
    if (r.exit.status !== 0) throw new Error(`launcher exited with ${r.exit.status}`);
    const pids = r.stdout
      .toString()
      .split('\n')
      .filter((l) => l.trim() !== '')
      .map((l) => Number(l));
    return { pids, release };
  } catch (err) {
    await release();
    throw err;
  }
}

/** A sh snippet that starts `cmd` in the background, detached from our pipes except fd 3, and prints its pid. */
export function orphanLine(cmd: string): string {
  return `sh -c '${cmd}' </dev/null >/dev/null 2>&1 & echo $!`;
}
