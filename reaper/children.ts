/**
 * Our direct children, from /proc/self/task/<tid>/children (one file per thread: a child, and an orphan
 * re-parented to us as subreaper, hangs under the thread that is its parent). The kernel lists zombies too.
 * The kernel documents the list as unreliable while tasks are running (entries can be skipped during
 * concurrent fork/exit), so callers use it as a fallback and re-check later, never as the only source.
 * procfs reads never wait for I/O, so synchronous reads are fine on the event loop.
 */
import { readdirSync, readFileSync } from 'node:fs';

export function listChildPids(): number[] {
  const pids: number[] = [];
  let tids: string[];
  try {
    tids = readdirSync('/proc/self/task');
  } catch {
    return pids;
  }
  for (const tid of tids) {
    let text: string;
    try {
      text = readFileSync(`/proc/self/task/${tid}/children`, 'latin1');
    } catch {
      continue; // the thread ended between readdir and read
    }
    for (const field of text.split(' ')) {
      const pid = Number.parseInt(field, 10);
      if (pid > 0) pids.push(pid);
    }
  }
  return pids;
}

/**
 * The fields of /proc/<pid>/stat that follow the command name: [0] state, [1] ppid, [2] process group,
 * [3] session, …; undefined if the process is gone.
 */
export function procStatFields(pid: number | 'self'): string[] | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
    // comm is in parentheses and may contain spaces or ')'; the fields follow the last ')'.
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  } catch {
    return undefined;
  }
}

/** The one-letter state of a process (R, S, Z, …) from /proc/<pid>/stat, or undefined if it is gone. */
export function processState(pid: number): string | undefined {
  return procStatFields(pid)?.[0] || undefined;
}

/** kill(pid, 0): true while the pid exists (a zombie counts), also when it is not ours to signal. */
export function processExists(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
