/**
 * What a spare knows of the wrapper's `start` that asked it to take a container, read from /proc: its command
 * line, environment, cwd (the bundle) and parent (containerd). Its stdin (the runtime options) and stdout
 * (containerd's pipe for the answer) are opened through /proc/<pid>/fd.
 */
import { close, constants, createReadStream, fstat, open as openCb } from 'node:fs';
import { promisify } from 'node:util';
import { open, readFile, readlink } from 'node:fs/promises';
import { Socket } from 'node:net';

const openFd = promisify(openCb) as (path: string, flags: number) => Promise<number>;
const fstatFd = promisify(fstat);
const closeFd = promisify(close);

export interface StartProcess {
  readonly pid: number;
  /** The wrapper's arguments (after `sh <wrapper>`), action last. */
  readonly args: string[];
  readonly env: NodeJS.ProcessEnv;
  readonly cwd: string;
  /** containerd, which ran the wrapper. */
  readonly ppid: number;
}

/** Reads the requester; refuses anything that is not a `start` of this user's wrapper. */
export async function readStartProcess(pid: number): Promise<StartProcess> {
  const [status, cmdline, environ, cwd, stat] = await Promise.all([
    readFile(`/proc/${pid}/status`, 'utf8'),
    readFile(`/proc/${pid}/cmdline`, 'utf8'),
    readFile(`/proc/${pid}/environ`, 'utf8'),
    readlink(`/proc/${pid}/cwd`),
    readFile(`/proc/${pid}/stat`, 'utf8'),
  ]);
  const uid = Number(/^Uid:\s+(\d+)/m.exec(status)?.[1]);
  if (uid !== process.getuid?.()) throw new Error(`start request from pid ${pid} of another user (${uid})`);
  const argv = cmdline.split('\0');
  if (argv.at(-1) === '') argv.pop();
  // The kernel runs the wrapper as `<interpreter> <wrapper path> <args...>`.
  const args = argv.slice(2);
  if (args.at(-1) !== 'start' || !/containerd-shim/.test(argv[1] ?? '')) {
    throw new Error(`pid ${pid} is not a shim start: ${JSON.stringify(argv.slice(0, 3))}`);
  }
  const env: NodeJS.ProcessEnv = {};
  for (const entry of environ.split('\0')) {
    const eq = entry.indexOf('=');
    if (eq > 0) env[entry.slice(0, eq)] = entry.slice(eq + 1);
  }
  const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
  return { pid, args, env, cwd, ppid: Number.isInteger(ppid) ? ppid : 0 };
}

/**
 * All of the requester's stdin: containerd writes the options into a pipe and closes it. A terminal (a start
 * run by hand) or anything but a pipe or a file is read as empty, as `start` itself does for a terminal.
 */
export async function readStdinOf(pid: number): Promise<Uint8Array> {
  const fd = await openFd(`/proc/${pid}/fd/0`, constants.O_RDONLY | constants.O_NONBLOCK);
  let owned = true;
  try {
    const st = await fstatFd(fd);
    if (st.isFIFO() || st.isSocket()) {
      // A socket on the pipe reads with epoll, never holding a threadpool thread while containerd writes.
      owned = false;
      const sock = new Socket({ fd, readable: true, writable: false });
      const chunks: Buffer[] = [];
      await new Promise<void>((resolve, reject) => {
        sock.on('data', (c: Buffer) => chunks.push(c));
        sock.once('end', resolve);
        sock.once('error', reject);
      }).finally(() => sock.destroy());
      return Buffer.concat(chunks);
    }
    if (!st.isFile()) return new Uint8Array();
    const chunks: Buffer[] = [];
    owned = false;
    for await (const c of createReadStream('', { fd })) chunks.push(c as Buffer);
    return Buffer.concat(chunks);
  } finally {
    if (owned) await closeFd(fd).catch(() => undefined);
  }
}

/** Writes `data` to the requester's stdout (containerd's pipe) through a descriptor of our own. */
export async function writeStdoutOf(pid: number, data: string): Promise<void> {
  const fh = await open(`/proc/${pid}/fd/1`, constants.O_WRONLY);
  try {
    await fh.write(data);
  } finally {
    await fh.close();
  }
}
