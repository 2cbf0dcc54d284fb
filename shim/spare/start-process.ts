/**
 * What a spare knows of the wrapper's `start` that asked it to take a container, read from /proc: its command
 * line, environment, cwd (the bundle) and parent (containerd). Its stdout (containerd's pipe for the answer)
 * is opened through /proc/<pid>/fd/1.
 */
import { closeSync, constants, openSync, readFileSync, readlinkSync, writeSync } from 'node:fs';
import { basename } from 'node:path';
import { procStatFields } from '../../reaper/children.js';

export interface StartProcess {
  readonly pid: number;
  /** The wrapper's arguments (after `sh <wrapper>`), action last. */
  readonly args: string[];
  readonly env: NodeJS.ProcessEnv;
  readonly cwd: string;
  /** containerd, which ran the wrapper. */
  readonly ppid: number;
}

/**
 * Reads the requester; refuses anything that is not a `start` of this user's wrapper. Synchronous: procfs
 * reads never wait for I/O, the spare serves nothing else while it takes a start, and five threadpool round
 * trips cost 2-3 ms of the start's path (measured: 0.2 ms this way).
 */
export function readStartProcess(pid: number): StartProcess {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
  const environ = readFileSync(`/proc/${pid}/environ`, 'utf8');
  const cwd = readlinkSync(`/proc/${pid}/cwd`);
  const uid = Number(/^Uid:\s+(\d+)/m.exec(status)?.[1]);
  if (uid !== process.getuid?.()) throw new Error(`start request from pid ${pid} of another user (${uid})`);
  const argv = cmdline.split('\0');
  if (argv.at(-1) === '') argv.pop();
  // The kernel runs the wrapper as `<interpreter> <wrapper path> <args...>`; the single executable is itself.
  const program = /containerd-shim/.test(basename(argv[0] ?? '')) ? 0 : 1;
  const args = argv.slice(program + 1);
  if (args.at(-1) !== 'start' || !/containerd-shim/.test(argv[program] ?? '')) {
    throw new Error(`pid ${pid} is not a shim start: ${JSON.stringify(argv.slice(0, 3))}`);
  }
  const env: NodeJS.ProcessEnv = {};
  for (const entry of environ.split('\0')) {
    const eq = entry.indexOf('=');
    if (eq > 0) env[entry.slice(0, eq)] = entry.slice(eq + 1);
  }
  const stat = procStatFields(pid);
  if (!stat) throw new Error(`start request from pid ${pid}: the process is gone`);
  const ppid = Number(stat[1]);
  return { pid, args, env, cwd, ppid: Number.isInteger(ppid) ? ppid : 0 };
}

/** Writes `data` to the requester's stdout (containerd's pipe) through a descriptor of our own. */
export async function writeStdoutOf(pid: number, data: string): Promise<void> {
  // Non-blocking: the pipe containerd reads (an open for writing would wait for a reader that is gone, ENXIO
  // instead); the answer is far below PIPE_BUF, so the write goes in whole into the empty pipe.
  const fd = openSync(`/proc/${pid}/fd/1`, constants.O_WRONLY | constants.O_NONBLOCK);
  try {
    writeSync(fd, data);
  } finally {
    closeSync(fd);
  }
}
