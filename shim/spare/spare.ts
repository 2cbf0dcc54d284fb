/**
 * A warm spare daemon: Node started and every module a daemon needs loaded, waiting for the next `start` of
 * its build. The wrapper's `start` finds it by its FIFO (spare-files.ts), writes its own pid into it and waits
 * for a signal: SIGUSR1 = answered (the address is on containerd's pipe), SIGUSR2 = refused (start Node
 * yourself). Taking a container costs the start a few milliseconds instead of a Node start-up.
 *
 * A spare run `--single-threaded` (the script form's) forks that container's daemon and stays a spare (fork.ts);
 * otherwise (the single executable, CONTAINERD_SHIM_TS_SPARE_FORK=0, a start that keeps no spare) it becomes
 * the daemon itself. Either way the daemon is set up exactly as if `start` had run it: the start's cwd
 * (bundle), environment and cgroups, containerd's OOM score + 1, the runtime options from the start's stdin.
 * If anything fails before it answered, it refuses or exits (a forked daemon refuses as it exits), and the
 * wrapper falls back to starting Node (which reads the options the wrapper saved). The wrapper starts spares;
 * a spare never starts another.
 * A spare exits when its build is replaced on disk, after CONTAINERD_SHIM_TS_SPARE_IDLE_TIMEOUT seconds
 * without taking a container (default 600), when the containerd whose start started it is gone, on
 * SIGTERM, or when another spare of the build and session is alive.
 */
import type { IdleTrimmer } from '../idle-trim.js';
import { closeSync, constants, open as openCb, openSync, readFileSync, unlinkSync } from 'node:fs';
import { getPriority } from 'node:os';
import { promisify } from 'node:util';
import { mkdir, stat, unlink } from 'node:fs/promises';
import { Socket } from 'node:net';
import { dirname, join } from 'node:path';
import { parseFlags, type ShimFlags } from '../flags.js';
import { decodeRuntimeOptions } from '../runtime/options.js';
import { joinCgroupsOf } from '../platform/cgroup-join.js';
import { warmUp } from './warm-up.js';
import { canForkDaemons, forkDaemon, prepareFork } from './fork.js';
import { applyDaemonV8Flags } from '../heap.js';
import { answerLiveGroup, becomeDaemon, groupSocket, type StartCall } from '../start.js';
import { keepsSpare, listSpares, ownSession, SPARE_OWNER_ENV, spareBootingPath, spareFifoPath } from './spare-files.js';
import { processExists } from '../../reaper/children.js';
import { readStartProcess, writeStdoutOf, type StartProcess } from './start-process.js';
import { selfPath } from '../sea/self.js';
import * as sched from '../platform/sched.js';

const DEFAULT_IDLE_TIMEOUT_S = 600;
const SPARE_SIGNALS = ['SIGTERM', 'SIGINT', 'SIGHUP'] as const;
const openFd = promisify(openCb) as (path: string, flags: number) => Promise<number>;
const WATCH_INTERVAL_MS = 5000;
/** After start-up, when the spare trims its memory and goes to normal priority (sched.ts says why). */
const SETTLE_MS = 1000;
/** Late requests (wrappers that found the FIFO just before it was removed) are refused for this long. */
const REFUSE_LATE_MS = 5000;
/** Created in the bundle by whoever answers the start (the spare, or the wrapper giving up on it). */
const answerClaim = (wrapperPid: number): string => `.start-answer.${wrapperPid}`;
/** Where the wrapper saved its stdin (the runtime options) before asking us: in the bundle, its cwd. */
const START_OPTIONS_FILE = '.start-options';

function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    /* the start is gone: containerd gave up on it */
  }
}

function priorityOf(pid: number): number {
  try {
    return getPriority(pid);
  } catch {
    return 0;
  }
}

function replaceEnvironment(env: NodeJS.ProcessEnv): void {
  for (const key of Object.keys(process.env)) delete process.env[key];
  Object.assign(process.env, env);
}

/** What `ps` shows: the daemon's arguments as a daemon started by `start` would have them. */
function daemonTitle(flags: ShimFlags): string {
  const parts = ['containerd-shim-ts-v2', '-namespace', flags.namespace, '-id', flags.id, '-address', flags.address];
  if (flags.debug) parts.push('-debug');
  return parts.join(' ');
}

class Spare {
  private readonly session = ownSession();
  /** The containerd whose start started us (SPARE_OWNER_ENV, set by the wrapper), 0 when not known. */
  private readonly owner = Number(process.env[SPARE_OWNER_ENV]) || 0;
  private readonly fifo = spareFifoPath(process.pid, this.session);
  private reader: Socket | undefined;
  private taken = false;
  private pending = '';
  private idleSince = Date.now();
  private scriptStat: FileId | undefined;
  private watchTimer: NodeJS.Timeout | undefined;
  private trimmer: IdleTrimmer | undefined;
  private settleTimer: NodeJS.Timeout | undefined;
  /** Whether each start gets a daemon forked off this spare (fork.ts), the spare staying a spare. */
  private readonly forks = canForkDaemons();

  async run(): Promise<void> {
    this.scriptStat = await fileId(selfPath());
    // Started in the background of a wrapper's start: a process group of our own, as any daemon.
    (await import('../platform/detach.js')).leadOwnProcessGroup();
    // Start-up at idle priority (the wrapper starts Node so already where chrt exists; the single file cannot).
    sched.background();
    // What the spare is for: the daemon's modules evaluated and koffi bound before any start comes.
    await import('../serve.js');
    (await import('../../reaper/sys.js')).isSubreaper();
    if (this.forks) prepareFork();

    await mkdir(dirname(this.fifo), { recursive: true, mode: 0o700 });
    (await import('../../io/sys.js')).mkfifo(this.fifo, 0o600);
    // O_RDWR: the FIFO always has a writer (us), so it never reports EOF between requests.
    // A raw fd, owned by the socket from here on (a FileHandle would close it again when collected).
    const fd = await openFd(this.fifo, constants.O_RDWR | constants.O_NONBLOCK);
    this.reader = new Socket({ fd, readable: true, writable: false });
    this.reader.on('data', (chunk: Buffer) => this.onData(chunk));
    this.reader.on('error', () => {
      if (!this.taken) this.exit(0); // once serving a container, the FIFO is nothing to us
    });

    // One spare per build: of two started at once, the younger goes. Dead spares' FIFOs are removed.
    const { live, stale } = await listSpares(this.session);
    await Promise.all(stale.map((path) => unlink(path).catch(() => undefined)));
    if (live.some((pid) => pid < process.pid)) return this.exit(0);
    await unlink(spareBootingPath(this.session)).catch(() => undefined); // ready: the next start may start another

    for (const sig of SPARE_SIGNALS) process.on(sig, this.onSignal);
    const idleMs = idleTimeoutMs(process.env);
    // Not unref'd: waiting is this process's job.
    this.watchTimer = setInterval(() => void this.watch(idleMs), WATCH_INTERVAL_MS);
    // Boot's garbage goes before the spare settles down to wait (and before a container inherits it); then it
    // only waits, at normal priority, so that a start is answered at once on a busy host too.
    // Compiled now, not on a start's time (warm-up.ts); a failure there costs nothing but that.
    try {
      warmUp();
    } catch {
      /* nothing is lost but the warm-up */
    }
    const { IdleTrimmer } = await import('../idle-trim.js');
    this.trimmer = IdleTrimmer.fromEnv(process.env);
    this.settleTimer = setTimeout(() => {
      applyDaemonV8Flags(); // after the boot and the warm-up, as a daemon sets them once serving (heap.ts)
      this.trimmer?.trimNow();
      sched.foreground();
    }, SETTLE_MS);
  }

  /**
   * Exits when idle too long, when our FIFO is gone, when the build on disk is no longer ours, or when the
   * containerd whose start started us is gone (its successor runs in a session, and so gets a spare, of its own).
   */
  private async watch(idleMs: number): Promise<void> {
    if (this.taken) return;
    const now = await fileId(selfPath());
    const replaced = !now || !this.scriptStat || now.ino !== this.scriptStat.ino || now.mtimeMs !== this.scriptStat.mtimeMs;
    const fifoGone = !(await stat(this.fifo).then((s) => s.isFIFO(), () => false));
    const orphaned = this.owner > 0 && !processExists(this.owner);
    // A start may have been taken while we looked (and the FIFO removed for it): then we serve, not exit.
    if (this.taken) return;
    if (replaced || fifoGone || orphaned || Date.now() - this.idleSince >= idleMs) this.exit(0);
  }

  private onData(chunk: Buffer): void {
    this.pending += chunk.toString('latin1');
    let nl: number;
    while ((nl = this.pending.indexOf('\n')) >= 0) {
      const line = this.pending.slice(0, nl).trim();
      this.pending = this.pending.slice(nl + 1);
      const pid = Number(line);
      if (!Number.isInteger(pid) || pid <= 0) continue;
      if (this.taken) signal(pid, 'SIGUSR2');
      else void this.take(pid);
    }
  }

  /** Serves the start of `pid`, or answers it the live daemon of its group and stays a spare. */
  private async take(pid: number): Promise<void> {
    this.taken = true;
    // A start waits on us now, which idle priority would starve on a busy host (a forking spare settles later
    // if it has not yet; its daemon takes the start's priority below).
    if (this.forks) sched.foreground();
    else this.stopSpareWork(pid);
    let start: StartProcess;
    let call: StartCall;
    let socket: Awaited<ReturnType<typeof groupSocket>>;
    try {
      start = readStartProcess(pid);
      const flags = parseFlags(start.args);
      if (!flags.namespace) throw new Error('no namespace');
      // The wrapper saved its stdin (the runtime options) there; it is still there if we refuse.
      const options = readFileSync(join(start.cwd, START_OPTIONS_FILE)); // the bundle: local (start.ts)
      decodeRuntimeOptions(options); // undecodable: Node's start says so, with the exit status containerd expects
      call = {
        flags,
        bundle: start.cwd,
        env: start.env,
        containerdPid: start.ppid,
        readOptions: () => Promise.resolve(options),
        answer: (address) => this.answer(start, address),
      };
      socket = await groupSocket(call);
      if (socket.live) {
        await answerLiveGroup(call, socket.address);
        if (this.answered) signal(pid, 'SIGUSR1');
        this.taken = false;
        this.idleSince = Date.now();
        return;
      }
    } catch {
      // Not a start we can serve as asked: the wrapper starts Node, which will say what is wrong.
      signal(pid, 'SIGUSR2');
      this.taken = false;
      return;
    }
    // A start that keeps no spare (CONTAINERD_SHIM_TS_GROUP: spare-files.ts says why) uses this one up: it
    // becomes the daemon instead of forking one, and no other is started after it.
    const forks = this.forks && keepsSpare(start.env);
    const refuse = (): void => signal(pid, 'SIGUSR2');
    if (forks) {
      try {
        if (forkDaemon() === 'spare') {
          // The daemon is on its way (it answers the start itself): wait for the next start.
          this.taken = false;
          this.idleSince = Date.now();
          return;
        }
      } catch {
        signal(pid, 'SIGUSR2'); // no daemon came of it: the wrapper starts Node
        this.taken = false;
        return;
      }
      // The forked daemon: the FIFO, its timers and signals are the spare's, which goes on; closed before the
      // loop runs again, so that no request meant for the spare is read here.
      // The wrapper watches the spare, which lives on: should this process end before it answered, it says no
      // (the wrapper starts Node at once instead of waiting out its 5 s).
      process.once('exit', refuse);
      this.reader?.destroy();
      this.reader = undefined;
      this.stopSpareWork(pid);
      (await import('../platform/detach.js')).leadOwnProcessGroup();
    } else {
      // From here on this process is that container's daemon; the FIFO is not offered to anyone else.
      if (this.forks) this.stopSpareWork(pid); // a forking spare used up: not stopped above
      try {
        unlinkSync(this.fifo);
      } catch {
        /* gone already */
      }
      setTimeout(() => this.reader?.destroy(), REFUSE_LATE_MS).unref();
    }
    // Signals are the daemon's to handle (a graceful exit), not the spare's.
    if (this.watchTimer) clearInterval(this.watchTimer);
    for (const sig of SPARE_SIGNALS) process.off(sig, this.onSignal);
    process.chdir(start.cwd);
    replaceEnvironment(start.env);
    await joinCgroupsOf(process.pid, pid).catch(() => undefined);
    const result = await becomeDaemon(call, socket, () => {
      // The title first: once signalled, the start returns, and whoever looks at the processes then (containerd,
      // ps, a test) must see a daemon, not a spare.
      process.title = daemonTitle(call.flags);
      process.off('exit', refuse);
      if (this.answered) signal(pid, 'SIGUSR1');
    });
    if (result !== 'serving') process.exit(0);
  }

  /**
   * What a spare does while it waits, stopped in the process that becomes a daemon: no settling (no GC pause in
   * the start's path: the daemon trims once it is quiet), no trimming; and it takes the priority of the start
   * that ran it (that of the start's process, 0 when it is gone already).
   */
  private stopSpareWork(startPid: number): void {
    clearTimeout(this.settleTimer);
    this.trimmer?.stop();
    sched.foreground(priorityOf(startPid));
  }

  /**
   * The answer goes to containerd's pipe, once. If the wrapper stopped waiting for us, it has claimed the
   * answer and started Node, which answers instead: then nothing is written here. We still serve when we hold
   * the group's socket: that Node found it live and answered our address.
   */
  private async answer(start: StartProcess, address: string): Promise<void> {
    this.answered = false;
    try {
      closeSync(openSync(join(start.cwd, answerClaim(start.pid)), 'wx', 0o600));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EEXIST') return;
      throw err;
    }
    await writeStdoutOf(start.pid, address);
    this.answered = true;
  }

  private answered = false;

  private readonly onSignal = (): void => this.exit(0);

  private exit(code: number): void {
    void unlink(this.fifo)
      .catch(() => undefined)
      .finally(() => process.exit(code));
  }
}

interface FileId {
  readonly ino: number;
  readonly mtimeMs: number;
}

async function fileId(path: string | undefined): Promise<FileId | undefined> {
  if (!path) return undefined;
  return stat(path).then(
    (s) => ({ ino: s.ino, mtimeMs: s.mtimeMs }),
    () => undefined,
  );
}

function idleTimeoutMs(env: NodeJS.ProcessEnv): number {
  const v = Number(env.CONTAINERD_SHIM_TS_SPARE_IDLE_TIMEOUT);
  return (Number.isFinite(v) && v > 0 ? v : DEFAULT_IDLE_TIMEOUT_S) * 1000;
}

export async function runSpare(): Promise<void> {
  process.stdout.on('error', () => undefined);
  process.stderr.on('error', () => undefined);
  await new Spare().run();
}
