// Small helpers shared by the e2e tests: temp dirs, polling, child processes with timeouts, and
// /proc readers (processes, zombies, mounts, fds).
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, readdir, readFile, readlink, rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository root, found from this file's location (works from build/ and .cache/build-x/). */
export function repoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const pkg = join(dir, 'package.json');
    if (existsSync(pkg)) {
      try {
        if ((JSON.parse(readFileSync(pkg, 'utf8')) as { name?: string }).name === 'containerd-shim-ts') return dir;
      } catch {
        // not ours, keep walking
      }
    }
    const parent = dirname(dir);
    if (parent === dir) throw new Error('repoRoot: no containerd-shim-ts package.json above ' + fileURLToPath(import.meta.url));
    dir = parent;
  }
}

/**
 * Base for temp dirs. Kept short on purpose: unix socket paths must stay below 108 bytes.
 * Override with SHIM_TEST_TMPDIR.
 */
export function tempBase(): string {
  return process.env.SHIM_TEST_TMPDIR ?? '/tmp';
}

/** A fresh temp dir under tempBase(), e.g. /tmp/cd-Ab12Cd. */
export function makeTempDir(prefix = 'st-'): Promise<string> {
  return mkdtemp(join(tempBase(), prefix));
}

/** Removes a dir tree; never throws for a missing path. */
export async function removeDir(path: string): Promise<void> {
  await rm(path, { recursive: true, force: true, maxRetries: 3 });
}

/** A short random id, e.g. `ctr-3f9a1c2b`, for container ids that must not clash between tests. */
export function uniqueId(prefix = 'c'): string {
  return `${prefix}-${randomBytes(4).toString('hex')}`;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * Polls `cond` until it returns a truthy value (returned) or `timeoutMs` passes (throws with `what`).
 * Errors thrown by `cond` count as "not yet"; the last one is included in the timeout error.
 */
export async function waitFor<T>(
  cond: () => T | Promise<T>,
  timeoutMs = 10_000,
  what = 'condition',
  intervalMs = 50,
): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const v = await cond();
      if (v) return v as NonNullable<T>;
    } catch (err) {
      lastError = err;
    }
    if (Date.now() >= deadline) {
      const why = lastError instanceof Error ? `: last error: ${lastError.message}` : '';
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${why}`);
    }
    await sleep(intervalMs);
  }
}

export interface ExecOptions {
  /** Written to stdin, then stdin is closed. Without it stdin is /dev/null. */
  input?: string | Buffer;
  /** Keep stdin open after writing `input` until this resolves (see CtrOptions.closeStdinAfter). */
  closeStdinAfter?: () => Promise<unknown>;
  /** SIGKILL the child after this long (default 30 s) and fail. */
  timeoutMs?: number;
  /** Resolve instead of rejecting on a non-zero exit (a timeout still rejects). */
  allowFail?: boolean;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
}

export interface ExecResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export class ExecError extends Error {
  constructor(
    message: string,
    readonly result: ExecResult,
  ) {
    super(message);
    this.name = 'ExecError';
  }
}

/** Runs a command to completion (asynchronously) with a timeout; collects stdout/stderr as text. */
export function exec(file: string, args: readonly string[], opts: ExecOptions = {}): Promise<ExecResult> {
  const timeoutMs = opts.timeoutMs ?? 30_000;
  const line = [file, ...args].join(' ');
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, {
      stdio: [opts.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
      env: opts.env ?? process.env,
      cwd: opts.cwd,
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout?.on('data', (b: Buffer) => out.push(b));
    child.stderr?.on('data', (b: Buffer) => err.push(b));
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, timeoutMs);
    if (opts.input !== undefined && child.stdin) {
      child.stdin.on('error', () => {
        // the child may exit without reading its input (EPIPE); its exit status tells the story
      });
      if (opts.closeStdinAfter) {
        const stdin = child.stdin;
        stdin.write(opts.input);
        opts.closeStdinAfter().then(
          () => stdin.end(),
          () => stdin.end(),
        );
      } else {
        child.stdin.end(opts.input);
      }
    }
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(new Error(`${line}: ${e.message}`));
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      const result: ExecResult = {
        code,
        signal,
        stdout: Buffer.concat(out).toString(),
        stderr: Buffer.concat(err).toString(),
      };
      if (timedOut) {
        reject(new ExecError(`${line}: timed out after ${timeoutMs} ms\nstdout: ${result.stdout}\nstderr: ${result.stderr}`, result));
      } else if (code !== 0 && !opts.allowFail) {
        reject(new ExecError(`${line}: exit ${code ?? signal}\nstdout: ${result.stdout}\nstderr: ${result.stderr}`, result));
      } else {
        resolve(result);
      }
    });
  });
}

// ---------------------------------------------------------------------------------------------
// /proc readers

export interface ProcInfo {
  pid: number;
  ppid: number;
  /** One-letter state from /proc/<pid>/stat: R, S, D, Z, T, ... */
  state: string;
  comm: string;
  /** argv, empty for zombies and kernel threads. */
  argv: string[];
}

/** comm, state and ppid from the text of a /proc/<pid>/stat (or /proc/<pid>/task/<tid>/stat). */
function parseStat(stat: string): { comm: string; state: string; ppid: number } {
  // comm is in parentheses and may itself contain spaces or ')': split at the LAST ')'.
  const close = stat.lastIndexOf(')');
  const rest = stat.slice(close + 2).split(' ');
  return { comm: stat.slice(stat.indexOf('(') + 1, close), state: rest[0] ?? '?', ppid: Number(rest[1]) };
}

/** Reads one process, or undefined when it is gone. */
export async function readProc(pid: number): Promise<ProcInfo | undefined> {
  try {
    const stat = parseStat(await readFile(`/proc/${pid}/stat`, 'utf8'));
    let argv: string[] = [];
    try {
      argv = (await readFile(`/proc/${pid}/cmdline`, 'utf8')).split('\0');
      while (argv.at(-1) === '') argv.pop();
      // A process that set its title (a spare daemon serving a container) shows it as one string.
      if (argv.length === 1 && argv[0]!.includes(' ')) argv = argv[0]!.split(' ').filter((a) => a !== '');
    } catch {
      // raced with exit
    }
    return { pid, ...stat, argv };
  } catch {
    return undefined;
  }
}

/** A snapshot of all processes. */
export async function listProcesses(): Promise<ProcInfo[]> {
  const pids = (await readdir('/proc')).filter((n) => /^\d+$/.test(n)).map(Number);
  const infos = await Promise.all(pids.map((p) => readProc(p)));
  return infos.filter((i): i is ProcInfo => i !== undefined);
}

/** Direct children of `pid`. */
export async function childrenOf(pid: number, procs?: ProcInfo[]): Promise<ProcInfo[]> {
  return (procs ?? (await listProcesses())).filter((p) => p.ppid === pid);
}

/** All descendants of `pid` (not including it), parents before children. */
export async function descendantsOf(pid: number, procs?: ProcInfo[]): Promise<ProcInfo[]> {
  const all = procs ?? (await listProcesses());
  const result: ProcInfo[] = [];
  let frontier = [pid];
  while (frontier.length > 0) {
    const next = all.filter((p) => frontier.includes(p.ppid));
    result.push(...next);
    frontier = next.map((p) => p.pid);
  }
  return result;
}

/** Children of `pid` in state Z (exited but not reaped): should be empty for a well-behaved reaper. */
export async function zombieChildren(pid: number): Promise<ProcInfo[]> {
  return (await childrenOf(pid)).filter((p) => p.state === 'Z');
}

/** True while the process exists and is not a zombie. */
export async function isAlive(pid: number): Promise<boolean> {
  const p = await readProc(pid);
  return p !== undefined && p.state !== 'Z' && p.state !== 'X';
}

/**
 * What a process that should have exited is doing: its state and, per thread, state, kernel wait channel,
 * current syscall and kernel stack (for a timeout's message; each part best effort).
 */
export async function processPostMortem(pid: number): Promise<string> {
  const read = (path: string): Promise<string> => readFile(path, 'utf8').then((s) => s.trim(), (e: Error) => `(${e.message})`);
  const parts = [`pid ${pid}: ${JSON.stringify(await readProc(pid))}`];
  let tids: string[] = [];
  try {
    tids = await readdir(`/proc/${pid}/task`);
  } catch {
    return parts.join('\n');
  }
  for (const tid of tids) {
    const base = `/proc/${pid}/task/${tid}`;
    const { comm, state } = parseStat(await read(`${base}/stat`));
    parts.push(`  tid ${tid} (${comm}) ${state} wchan=${await read(`${base}/wchan`)} syscall=${await read(`${base}/syscall`)}`);
    const stack = await read(`${base}/stack`);
    if (stack) parts.push(stack.split('\n').slice(0, 8).map((l) => `      ${l}`).join('\n'));
  }
  return parts.join('\n');
}

/** Number of open file descriptors of `pid`. */
export async function fdCount(pid: number): Promise<number> {
  return (await readdir(`/proc/${pid}/fd`)).length;
}

/** The open fds of `pid` with their targets (e.g. `pipe:[123]`, `/dev/null`). */
export async function openFds(pid: number): Promise<Map<number, string>> {
  const result = new Map<number, string>();
  for (const fd of await readdir(`/proc/${pid}/fd`)) {
    try {
      result.set(Number(fd), await readlink(`/proc/${pid}/fd/${fd}`));
    } catch {
      // closed meanwhile
    }
  }
  return result;
}

export interface MountInfo {
  mountPoint: string;
  fsType: string;
  source: string;
}

// mountinfo escapes space, tab, newline and backslash as octal \ooo.
function unescapeMountField(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, oct: string) => String.fromCharCode(parseInt(oct, 8)));
}

/** Mounts in our mount namespace whose mount point is `path` or below it, deepest first. */
export async function mountsUnder(path: string): Promise<MountInfo[]> {
  const base = path.replace(/\/+$/, '');
  const text = await readFile('/proc/self/mountinfo', 'utf8');
  const result: MountInfo[] = [];
  for (const line of text.split('\n')) {
    if (!line) continue;
    const [left, right] = line.split(' - ');
    const fields = left?.split(' ') ?? [];
    const mountPoint = unescapeMountField(fields[4] ?? '');
    if (mountPoint !== base && !mountPoint.startsWith(base + '/')) continue;
    const [fsType = '', source = ''] = (right ?? '').split(' ');
    result.push({ mountPoint, fsType, source: unescapeMountField(source) });
  }
  // Deepest (and, for stacked mounts, latest) first, so they can be unmounted in this order.
  return result.reverse().sort((a, b) => b.mountPoint.length - a.mountPoint.length);
}

/** Unmounts everything under `path` (deepest first); lazily when a plain unmount fails. */
export async function unmountUnder(path: string): Promise<void> {
  for (let round = 0; round < 5; round++) {
    const mounts = await mountsUnder(path);
    if (mounts.length === 0) return;
    for (const m of mounts) {
      const r = await exec('umount', [m.mountPoint], { allowFail: true, timeoutMs: 10_000 });
      if (r.code !== 0) await exec('umount', ['-l', m.mountPoint], { allowFail: true, timeoutMs: 10_000 });
    }
  }
}

/** Sends a signal, ignoring "no such process". */
export function signalPid(pid: number, signal: NodeJS.Signals | number): boolean {
  try {
    process.kill(pid, signal);
    return true;
  } catch {
    return false;
  }
}
