// Helpers for the reaper tests: orphan launchers (shell scripts that fork and exit, so their children
// re-parent to the test process, which is the subreaper), zombie checks, polling.
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

/**
 * Runs a shell script through the reaper with stdin as an open pipe (a barrier: its children read
 * fd 3 = that pipe and exit at EOF), waits for the script to exit, and returns the numbers it printed,
 * one per line, plus a function that releases the barrier.
 */
export async function launch(
  reaper: Reaper,
  script: string,
): Promise<{ pids: number[]; release: () => void }> {
  const child = reaper.spawn('sh', ['-c', script], { stdio: ['pipe', 'pipe', 2] });
  const chunks: Buffer[] = [];
  child.stdout?.on('data', (c: Buffer) => chunks.push(c));
  const stdoutDone = new Promise<void>((resolve) => child.stdout?.once('close', () => resolve()));
  const exit = await child.exited;
  await stdoutDone;
  if (exit.status !== 0) throw new Error(`launcher exited with ${exit.status}`);
  const pids = Buffer.concat(chunks)
    .toString()
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => Number(l));
  return { pids, release: () => void child.stdin?.end() };
}

/** A sh snippet that starts `cmd` in the background, detached from our pipes except fd 3, and prints its pid. */
export function orphanLine(cmd: string): string {
  return `sh -c '${cmd}' </dev/null >/dev/null 2>&1 & echo $!`;
}
