/**
 * Runtime calls a killed daemon left running. The daemon starts runc without a parent-death signal (setpriv in
 * front of every create and exec cost 2-3 ms each), so when it is SIGKILLed mid-`runc create` that runc goes
 * on and would create a container after containerd's clean-up (`delete`) ran. `delete` therefore kills, before
 * its `runc delete --force`, every process whose arguments carry this container's runc log (`--log
 * <bundle>/log.json`: only the daemon of this bundle runs runc with it), and their descendants (`runc init`,
 * which waits for a parent that will never answer).
 */
import { readdirSync, readFileSync } from 'node:fs';
import { processState } from '../../reaper/children.js';

// Synchronous /proc reads: this runs in the short-lived `delete` process, never in the daemon, and a few
// hundred procfs reads through the threadpool took ~20 ms more than read directly.
const read = (path: string): string => {
  try {
    return readFileSync(path, 'latin1');
  } catch {
    return ''; // gone meanwhile
  }
};
const list = (path: string): string[] => {
  try {
    return readdirSync(path);
  } catch {
    return [];
  }
};

const WAIT_MS = 5000;
const POLL_MS = 10;

/** Pids of processes other than this one whose argv has `--log <logPath>` or `--log=<logPath>`. */
export function findRuntimeCalls(logPath: string): number[] {
  const found: number[] = [];
  for (const name of list('/proc')) {
    if (!/^[0-9]+$/.test(name)) continue;
    const pid = Number(name);
    if (pid === process.pid) continue;
    const argv = read(`/proc/${pid}/cmdline`).split('\0');
    const at = argv.indexOf('--log');
    if ((at >= 0 && argv[at + 1] === logPath) || argv.includes(`--log=${logPath}`)) found.push(pid);
  }
  return found;
}

/**
 * Stops `pids` and, one generation after the other, every descendant of theirs (a stopped process cannot fork
 * another, and its children are still listed as its own); returns them all, parents first.
 */
function stopWithDescendants(pids: readonly number[]): number[] {
  const all: number[] = [];
  const seen = new Set<number>();
  const queue = [...pids];
  for (let pid = queue.shift(); pid !== undefined; pid = queue.shift()) {
    if (seen.has(pid)) continue;
    seen.add(pid);
    try {
      process.kill(pid, 'SIGSTOP');
    } catch {
      continue; // gone
    }
    all.push(pid);
    for (const tid of list(`/proc/${pid}/task`)) {
      const children = read(`/proc/${pid}/task/${tid}/children`);
      for (const c of children.split(' ')) if (/^[0-9]+$/.test(c)) queue.push(Number(c));
    }
  }
  return all;
}

/** Gone, or a zombie (dead; its parent, no longer the daemon, collects it). */
function isDead(pid: number): boolean {
  const state = processState(pid);
  return state === undefined || state === 'Z' || state === 'X';
}

/**
 * SIGKILLs the runtime calls of `logPath` and their descendants (all stopped and listed first: an orphan moves
 * to another parent and could no longer be found), then waits until they are dead (bounded, 5 s). Returns
 * the pids killed.
 */
export async function killRuntimeCalls(logPath: string): Promise<number[]> {
  const calls = findRuntimeCalls(logPath);
  if (calls.length === 0) return [];
  const victims = stopWithDescendants(calls);
  for (const pid of victims) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      /* already gone */
    }
  }
  const deadline = Date.now() + WAIT_MS;
  let alive = victims;
  while (alive.length > 0 && Date.now() < deadline) {
    alive = alive.filter((pid) => !isDead(pid));
    if (alive.length > 0) await new Promise((r) => setTimeout(r, POLL_MS));
  }
  return victims;
}
