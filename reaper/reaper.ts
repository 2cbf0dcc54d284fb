/**
 * Reaper: the one owner of every wait(2) in the shim, next to Node's child_process.
 *
 * The shim is PR_SET_CHILD_SUBREAPER, so it inherits the container's init when `runc create` exits, exec
 * processes, and daemonized grandchildren of containers in the host pid namespace. All of them must be
 * collected exactly once with their exact status, and no zombie may stay. At the same time libuv collects
 * the children it started (runc invocations) itself, with waitpid(<pid>) on SIGCHLD; a wildcard
 * waitpid(-1) would sometimes take one of those statuses first, libuv would then see ECHILD, and the
 * ChildProcess would never emit 'exit' (a hung runc call).
 *
 * How (chosen from measurements, see below):
 * - Every child_process spawn in the process is recorded as libuv-owned in the same tick (child-registry.ts
 *   wraps ChildProcess.prototype.spawn); their exits come from libuv's 'exit' event and are relayed.
 * - On SIGCHLD (signals coalesce, so each drain collects everything there is): peek at the first exited
 *   child with waitid(P_ALL, WNOHANG|WNOWAIT). Not libuv's → waitpid(that pid, WNOHANG), repeat. Nothing
 *   exited → done (one syscall). A libuv-owned zombie first in line hides the others from the peek, so
 *   then list /proc/self/task/*\/children and waitpid(pid, WNOHANG) every pid libuv does not own. After
 *   each relayed libuv exit the drain runs again, and a slow periodic sweep (default 5 s) backs up the
 *   kernel's "children" list, which is documented as unreliable while tasks run.
 * - Reaper.spawn starts processes with posix_spawn (posix-spawn.ts: no copy of the daemon's page tables,
 *   1.3 instead of 3.2 ms of blocked loop per spawn). Those are not libuv's children: the drain collects
 *   them like orphans, for a waiter set in the same tick as the spawn, and they never hide other exits from
 *   the peek. child_process stays usable by any code (its children are libuv's, as above).
 * - Exits nobody waits for yet are held (default 1024 exits, 60 s) for a later watch(pid); drops are logged.
 * - Processes started with parentDeathSignal (the default) are killed by killDependents() and by a process
 *   'exit' hook. With a setpriv (the default outside the daemon) they also get PR_SET_PDEATHSIG=SIGKILL
 *   through `setpriv --pdeathsig KILL -- <cmd>` (neither child_process nor posix_spawn can run code
 *   between fork and exec); setpriv execs the command, so pid and exit status are the command's own. The
 *   daemon goes without it (2-3 ms per runc call): `delete` after a killed daemon kills what it left running
 *   instead (shim/runtime/leftover-calls.ts).
 *
 * Measurements (Node 20.20, 2 cores, kernel 6.18; the machine was shared with other sessions, load average
 * 13–33 during the runs, so wall times are inflated and noisy; CPU times are the steadier figures):
 * - Correctness first. waitpid(-1) next to child_process lost 3–21 of 400–2000 libuv 'exit' events in the
 *   platform notes' stress test (791 with a slow handler): ruled out. Listing /proc/self/task/*\/children
 *   (ii), peeking with waitid WNOWAIT (iii) and pidfds (iv) lost none. Here (test/reaper/reaper.test.ts,
 *   run repeatedly under that load): 500 simultaneous orphan exits with 300 codes and 200 signals, all
 *   statuses right, each dispatched once; 200 runs (Reaper.run and plain execFile) interleaved with 200
 *   orphan exits, all codes right; no zombies.
 * - Cost (test/bench/reaper-bench.ts, 500 orphans released at once, then 200 orphans + 200 runs):
 *     strategy               burst collected in   CPU per drain   CPU per reaped exit   mixed: CPU per drain
 *     peek + scan fallback   308–872 ms           0.7–7.7 ms      31 µs                 372 µs (48 of 298 scanned)
 *     scan on every drain    736–753 ms           2.6–3.0 ms      60–82 µs              1123 µs
 *   The burst time is bounded by 500 shells waking and exiting on 2 busy cores (570–1600 exits/s), not by
 *   the reaper. The peek costs one syscall on a SIGCHLD with nothing to collect, and halves the CPU per
 *   exit; the scan is kept for the case that needs it (a libuv zombie first in the kernel's list, 16 % of
 *   drains in the mixed run). pidfds need a known pid, so they cannot find unknown orphans; a global
 *   posix_spawn + waitpid(-1) reaper (the Go shim's way) would forbid child_process to every module.
 * - Parent-death signal: child_process cannot run prctl between fork and exec, and neither can
 *   posix_spawn; the wrapper is util-linux setpriv (2.38 here). run(/bin/true) min 9.4–11.8 ms plain vs
 *   11.6–17.8 ms through setpriv (medians 17–28 vs 19–40 ms): about 3–6 ms per spawn, next to runc's
 *   22–32 ms for `runc --version` alone. Set parentDeathSignal: false for spawns that must outlive the shim.
 *
 * Use: start it before anything spawns a child, in the process that must reap (the daemon): children
 * spawned earlier are not known as libuv's and could lose their 'exit'. Do not spawn children from worker
 * threads, and do not use node-pty in a process with a Reaper (both collect their children themselves).
 */
import { spawn as spawnChild, type ChildProcess } from 'node:child_process';
import net from 'node:net';
import { getSystemErrorName } from 'node:util';
import type { Logger } from 'pino';
import { ShimError, kindOf } from '../protocol/errdefs.js';
import { ChildRegistry } from './child-registry.js';
import { abortError } from './abort.js';
import { listChildPids, processExists } from './children.js';
import { findSetpriv, resolveCommand } from './command.js';
import { ExitHold } from './exit-hold.js';
import { collect, drained } from './output.js';
import { closeFd, cloexecPipe, posixSpawn, type ChildFd } from './posix-spawn.js';
import * as sys from './sys.js';
import type { Exit, ReaperStats, RunOptions, RunResult, SpawnOptions, StdioEntry, TrackedChild, WatchOptions } from './types.js';
import { decodeChildExit, decodeWaitStatus } from './wait-status.js';

export type { Exit, ReaperStats, RunOptions, RunResult, SpawnOptions, TrackedChild, WatchOptions } from './types.js';
export { decodeWaitStatus } from './wait-status.js';

export interface ReaperOptions {
  logger?: Logger;
  /** How long an exit nobody waited for is kept for watch(). Default 60 000 ms. */
  holdMs?: number;
  /** How many such exits are kept (the oldest is dropped first). Default 1024. */
  holdMax?: number;
  /** Period of the safety-net drain. Default 5000 ms. */
  sweepMs?: number;
  /**
   * setpriv path for the kernel's parent-death signal; null: never wrap (parentDeathSignal children are then
   * killed only by killDependents() and the 'exit' hook). Default: looked up in PATH.
   */
  setpriv?: string | null;
  /** Benchmarks only: 'scan' skips the waitid peek and lists children on every drain. */
  strategy?: 'peek' | 'scan';
  /**
   * How spawn() starts processes: 'posix' (default) is posix_spawn(3), whose exits this reaper collects;
   * 'libuv' is child_process, whose exits libuv collects. posix_spawn does not copy the daemon's page tables
   * (posix-spawn.ts); 'libuv' is kept for comparison (CONTAINERD_SHIM_TS_SPAWN=libuv in the daemon).
   */
  spawner?: 'posix' | 'libuv';
}

interface Waiter {
  resolve(exit: Exit): void;
  reject(err: unknown): void;
}

const DEFAULT_MAX_OUTPUT = 4 << 20;
const DEFAULT_DRAIN_TIMEOUT_MS = 2000;

export class Reaper {
  private static current: Reaper | undefined;

  /**
   * Makes this process a child subreaper and starts collecting. Idempotent per process: while a reaper
   * runs, it is returned as is (the options of later calls are ignored).
   */
  static start(opts: ReaperOptions = {}): Reaper {
    if (Reaper.current) return Reaper.current;
    const reaper = new Reaper(opts);
    reaper.begin();
    Reaper.current = reaper;
    return reaper;
  }

  private readonly log: Logger | undefined;
  private readonly registry: ChildRegistry;
  private readonly hold: ExitHold;
  private readonly exitOf = new WeakMap<ChildProcess, Promise<Exit>>();
  private readonly waiters = new Map<number, Set<Waiter>>();
  private readonly listeners = new Set<(e: Exit) => void>();
  private readonly setpriv: string | undefined;
  private readonly setprivMissing: boolean;
  private readonly scanAlways: boolean;
  private readonly spawner: 'posix' | 'libuv';
  /** Processes started by posix_spawn whose exit is not collected yet: finished by stop() if it comes first. */
  private readonly ownSpawns = new Map<number, (exit: Exit) => void>();
  /** Running children started with parentDeathSignal: killed when this process goes. */
  private readonly dependents = new Set<TrackedChild>();
  private readonly onProcessExit = (): void => void this.killDependents();
  private readonly sweepMs: number;
  private sweepTimer: NodeJS.Timeout | undefined;
  private stopped = false;
  /** pause(): exits stay in the kernel (zombies) for whoever reaps next, e.g. this process after an execve. */
  private paused = false;
  private draining = false;
  private drainAgain = false;
  private drainQueued = false;
  private counts = { reaped: 0, relayed: 0, drains: 0, scans: 0, drainNs: 0, drainCpuUs: 0 };
  private readonly onSignal = (): void => this.drain();

  private constructor(opts: ReaperOptions) {
    this.log = opts.logger;
    this.sweepMs = opts.sweepMs ?? 5000;
    this.scanAlways = opts.strategy === 'scan';
    this.spawner = opts.spawner ?? 'posix';
    this.setpriv = opts.setpriv === null ? undefined : (opts.setpriv ?? findSetpriv());
    this.setprivMissing = opts.setpriv !== null && this.setpriv === undefined;
    this.hold = new ExitHold(opts.holdMax ?? 1024, opts.holdMs ?? 60_000, (exit, reason) => {
      const fields = { pid: exit.pid, status: exit.status, reason };
      if (reason === 'overflow') this.log?.warn(fields, 'reaper: dropped an unclaimed exit');
      else this.log?.debug(fields, 'reaper: dropped an unclaimed exit');
    });
    this.registry = new ChildRegistry({ added: (child, pid) => this.track(child, pid) });
  }

  private begin(): void {
    sys.becomeSubreaper();
    this.registry.install();
    process.on('SIGCHLD', this.onSignal);
    process.on('exit', this.onProcessExit);
    this.sweepTimer = setInterval(() => {
      this.hold.prune();
      this.drain();
    }, this.sweepMs);
    this.sweepTimer.unref();
    if (this.setprivMissing) {
      this.log?.warn('reaper: setpriv not found; processes are started without a parent-death signal');
    }
  }

  /**
   * Starts a process and tracks its exit (libuv collects it; we never wait for it ourselves).
   * Throws synchronously: ShimError NotFound / PermissionDenied when the command or cwd cannot be used
   * (ENOENT, EACCES), InvalidArgument for bad options, Canceled / DeadlineExceeded when `signal` is
   * already aborted. Once a pid exists, `exited` always resolves and never rejects.
   */
  spawn(cmd: string, args: readonly string[], opts: SpawnOptions = {}): TrackedChild {
    this.assertRunning();
    if (opts.signal?.aborted) throw abortError(cmd, opts.signal);
    const stdio = opts.stdio ?? ['ignore', 'pipe', 'pipe'];
    if (opts.input !== undefined && stdio[0] !== 'pipe') {
      throw new ShimError('InvalidArgument', `${cmd}: input needs stdio[0] = 'pipe'`);
    }
    const env = opts.env ?? process.env;
    let file = cmd;
    let argv = [...args];
    if ((opts.parentDeathSignal ?? true) && this.setpriv) {
      argv = ['--pdeathsig', 'KILL', '--', resolveCommand(cmd, env, opts.cwd), ...args];
      file = this.setpriv;
    }
    const child = this.spawner === 'posix' ? this.spawnPosix(cmd, file, argv, env, stdio, opts.cwd) : this.spawnLibuv(cmd, file, argv, env, stdio, opts.cwd);
    const { signal } = opts;
    if (signal) {
      const onAbort = (): void => void child.kill('SIGKILL');
      signal.addEventListener('abort', onAbort, { once: true });
      void child.exited.then(() => signal.removeEventListener('abort', onAbort));
    }
    if (opts.parentDeathSignal ?? true) {
      this.dependents.add(child);
      void child.exited.then(() => this.dependents.delete(child));
    }
    if (opts.input !== undefined) child.stdin?.end(opts.input);
    return child;
  }

  /**
   * SIGKILLs every running child started with parentDeathSignal (what PR_SET_PDEATHSIG would do), for a
   * daemon about to go: a `runc create` finishing after containerd's clean-up would leave a container nobody
   * manages. Returns how many were signalled.
   */
  killDependents(): number {
    let n = 0;
    for (const child of this.dependents) if (child.kill('SIGKILL')) n++;
    if (n > 0) this.log?.warn({ killed: n }, 'reaper: runtime calls still running killed, the shim is going');
    return n;
  }

  /**
   * posix_spawn: pipes made here (close-on-exec; the child's ends dup2'd into 0–2 and closed here after the
   * spawn), the exit collected by this reaper's drain like an orphan's, handed to `exited` by a waiter that
   * is in place before any SIGCHLD can be handled (same tick).
   */
  private spawnPosix(cmd: string, file: string, argv: string[], env: NodeJS.ProcessEnv, stdio: StdioEntry[], cwd: string | undefined): TrackedChild {
    const path = file === cmd ? resolveCommand(cmd, env, cwd) : file;
    const fds: ChildFd[] = [];
    const ours: (number | undefined)[] = []; // our end of each 'pipe' entry
    const childEnds: number[] = [];
    let pid: number;
    try {
      for (const [i, entry] of stdio.entries()) {
        if (entry === 'pipe' && i > 2) throw new ShimError('InvalidArgument', `${cmd}: 'pipe' only for fds 0-2 (fd ${i})`);
        if (entry === 'pipe') {
          const [r, w] = cloexecPipe();
          const [mine, theirs] = i === 0 ? [w, r] : [r, w];
          ours[i] = mine;
          childEnds.push(theirs);
          fds.push(theirs);
        } else {
          fds.push(entry === 'ignore' ? 'devnull' : entry);
        }
      }
      pid = posixSpawn({ path, argv: [file, ...argv], env, fds, ...(cwd !== undefined ? { cwd } : {}) });
    } catch (err) {
      for (const fd of ours) if (fd !== undefined) closeFd(fd);
      for (const fd of childEnds) closeFd(fd);
      if (err instanceof ShimError) throw err;
      throw new ShimError(kindOf(err), `${cmd}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, { cause: err });
    }
    for (const fd of childEnds) closeFd(fd);
    const stream = (i: number): net.Socket | null => {
      const fd = ours[i];
      if (fd === undefined) return null;
      const s = new net.Socket({ fd, readable: i !== 0, writable: i === 0 });
      s.on('error', (err: Error) => this.log?.debug({ pid, err }, 'reaper: child stdio error'));
      return s;
    };
    let done = false;
    const exited = new Promise<Exit>((resolve) => {
      const finish = (exit: Exit): void => {
        if (done) return;
        done = true;
        this.ownSpawns.delete(pid);
        resolve(exit);
      };
      this.ownSpawns.set(pid, finish);
      let set = this.waiters.get(pid);
      if (!set) this.waiters.set(pid, (set = new Set()));
      set.add({ resolve: finish, reject: () => undefined });
      this.updateTimerRef();
    });
    return {
      pid,
      stdin: stream(0),
      stdout: stream(1),
      stderr: stream(2),
      exited,
      kill: (sig: NodeJS.Signals | number = 'SIGKILL') => {
        if (done) return false; // collected: the pid may belong to someone else by now
        try {
          process.kill(pid, sig);
          return true;
        } catch {
          return false;
        }
      },
    };
  }

  private spawnLibuv(cmd: string, file: string, argv: string[], env: NodeJS.ProcessEnv, stdio: StdioEntry[], cwd: string | undefined): TrackedChild {
    const child = spawnChild(file, argv, { cwd, env, stdio });
    const pid = child.pid;
    if (pid === undefined) {
      child.on('error', () => undefined); // the same failure, emitted next tick; reported here instead
      const errnum = this.registry.spawnFailure(child);
      const code = errnum === undefined ? 'EIO' : getSystemErrorName(errnum);
      const cause = Object.assign(new Error(`spawn ${cmd} ${code}`), { code, errno: errnum, path: cmd });
      throw new ShimError(kindOf(cause), `${cmd}: ${code}`, { cause });
    }
    const exited = this.exitOf.get(child) ?? this.track(child, pid);
    child.on('error', (err) => this.log?.debug({ pid, err }, 'reaper: child process error'));
    for (const stream of [child.stdin, child.stdout, child.stderr]) {
      stream?.on('error', (err: Error) => this.log?.debug({ pid, err }, 'reaper: child stdio error'));
    }
    return {
      pid,
      stdin: child.stdin,
      stdout: child.stdout,
      stderr: child.stderr,
      exited,
      kill: (sig: NodeJS.Signals | number = 'SIGKILL') => child.kill(sig),
    };
  }

  /**
   * spawn + bounded output + exit. Rejects (never throws) with spawn()'s errors, and with Canceled /
   * DeadlineExceeded after the process has exited when `signal` aborted it. A non-zero exit is a result,
   * not an error.
   */
  async run(cmd: string, args: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
    const stdio = opts.stdio ?? [opts.input !== undefined ? 'pipe' : 'ignore', 'pipe', 'pipe'];
    const child = this.spawn(cmd, args, { ...opts, stdio });
    const max = opts.maxOutput ?? DEFAULT_MAX_OUTPUT;
    const out = collect(child.stdout, max);
    const err = collect(child.stderr, max);
    const exit = await child.exited;
    const killedByAbort = opts.signal?.aborted === true; // abort → SIGKILL → this exit
    await drained([out, err], [child.stdout, child.stderr], opts.drainTimeoutMs ?? DEFAULT_DRAIN_TIMEOUT_MS);
    if (killedByAbort && opts.signal) throw abortError(cmd, opts.signal);
    return { exit, stdout: out.buffer(), stderr: err.buffer(), truncated: out.truncated || err.truncated };
  }

  /**
   * Waits for the exit of a process we did not start (container init / exec pid from runc's pid file).
   * An exit already collected and held is delivered at once (and handed out only once). Rejects with
   * NotFound when the pid neither exists nor has a held exit, InvalidArgument for a bad pid,
   * Canceled / DeadlineExceeded when `opts.signal` aborts, Unavailable when the reaper stops.
   * Also works for a pid started by spawn() while it runs.
   */
  watch(pid: number, opts: WatchOptions = {}): Promise<Exit> {
    if (!Number.isInteger(pid) || pid <= 0) {
      return Promise.reject(new ShimError('InvalidArgument', `watch: bad pid ${pid}`));
    }
    if (this.stopped) return Promise.reject(new ShimError('Unavailable', 'reaper stopped'));
    const held = this.hold.take(pid);
    if (held) return Promise.resolve(held);
    if (!this.registry.owns(pid) && !processExists(pid)) {
      return Promise.reject(new ShimError('NotFound', `process ${pid} not found`));
    }
    const { signal } = opts;
    if (signal?.aborted) return Promise.reject(abortError(`watch ${pid}`, signal));
    return new Promise<Exit>((resolve, reject) => {
      let set = this.waiters.get(pid);
      if (!set) this.waiters.set(pid, (set = new Set()));
      const onAbort = (): void => {
        const current = this.waiters.get(pid);
        current?.delete(waiter);
        if (current?.size === 0) this.waiters.delete(pid);
        this.updateTimerRef();
        reject(abortError(`watch ${pid}`, signal as AbortSignal));
      };
      const waiter: Waiter = {
        resolve: (exit) => {
          signal?.removeEventListener('abort', onAbort);
          resolve(exit);
        },
        reject: (err) => {
          signal?.removeEventListener('abort', onAbort);
          reject(err);
        },
      };
      set.add(waiter);
      signal?.addEventListener('abort', onAbort, { once: true });
      this.updateTimerRef();
    });
  }

  /** Every exit, ours and libuv's, synchronously in collection order. Returns the unsubscribe function. */
  onExit(fn: (e: Exit) => void): () => void {
    this.listeners.add(fn);
    return () => void this.listeners.delete(fn);
  }

  stats(): ReaperStats {
    return { ...this.counts, held: this.hold.size, dropped: this.hold.dropped };
  }

  /**
   * Stops reaping: removes the SIGCHLD listener and the spawn hook, clears the subreaper flag (new orphans
   * go to init again), rejects pending watch() calls with Unavailable. Children already started keep
   * their `exited` promises. A later Reaper.start() makes a new reaper.
   */
  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    process.removeListener('SIGCHLD', this.onSignal);
    process.removeListener('exit', this.onProcessExit);
    clearInterval(this.sweepTimer);
    this.registry.uninstall();
    try {
      sys.clearSubreaper();
    } catch (err) {
      this.log?.warn({ err }, 'reaper: could not clear the subreaper flag');
    }
    const stopped = new ShimError('Unavailable', 'reaper stopped');
    for (const set of this.waiters.values()) for (const w of set) w.reject(stopped);
    this.collectOwnSpawnsAfterStop();
    this.waiters.clear();
    this.hold.clear();
    this.listeners.clear();
    if (Reaper.current === this) Reaper.current = undefined;
  }

  /**
   * Processes we started with posix_spawn keep the promise spawn() gave (as libuv's children do): after
   * stop() nobody handles SIGCHLD for them, so they are polled, each pid alone, until all have exited.
   */
  private collectOwnSpawnsAfterStop(): void {
    if (this.ownSpawns.size === 0) return;
    const pending = new Map(this.ownSpawns);
    this.ownSpawns.clear();
    const poll = (): void => {
      for (const [pid, finish] of pending) {
        const r = sys.reapPid(pid);
        if (r.kind === 'running') continue;
        pending.delete(pid);
        // not-child: someone else collected it (a later reaper); its status is unknown here
        finish({ pid, ...(r.kind === 'reaped' ? decodeWaitStatus(r.raw) : { status: 255 }), at: new Date() });
      }
      if (pending.size === 0) clearInterval(timer);
    };
    const timer = setInterval(poll, 20);
    poll();
  }

  /** Relays libuv's exit of a child_process child; called in the tick the child got its pid. */
  private track(child: ChildProcess, pid: number): Promise<Exit> {
    const exited = new Promise<Exit>((resolve) => {
      child.once('exit', (code, signalName) => {
        this.registry.release(pid, child);
        const exit: Exit = { pid, ...decodeChildExit(code, signalName), at: new Date() };
        this.counts.relayed++;
        resolve(exit);
        this.dispatch(exit, true);
        // This zombie may have hidden orphans from the waitid peek: look again.
        this.scheduleDrain();
      });
    });
    this.exitOf.set(child, exited);
    return exited;
  }

  /**
   * Leaves exited children unreaped until resume(): a process about to execve itself reaps them after the
   * exec (it stays their parent and the subreaper). Children of child_process are still collected by libuv.
   */
  pause(): void {
    this.paused = true;
  }

  resume(): void {
    if (!this.paused) return;
    this.paused = false;
    this.scheduleDrain();
  }

  /** Exits reaped that nobody claimed yet, oldest first (to be handed to the next process: adoptExits). */
  heldExits(): Exit[] {
    return this.hold.all();
  }

  /** Takes exits reaped by a previous process image, as if reaped here. */
  adoptExits(exits: readonly Exit[]): void {
    for (const e of exits) this.dispatch(e, false);
  }

  private drain(): void {
    if (this.stopped || this.paused) return;
    if (this.draining) {
      this.drainAgain = true; // a listener caused a SIGCHLD to be handled re-entrantly; loop once more
      return;
    }
    this.draining = true;
    const t0 = process.hrtime.bigint();
    const cpu0 = process.cpuUsage();
    try {
      do {
        this.drainAgain = false;
        this.counts.drains++;
        if (this.scanAlways || this.reapInKernelOrder()) {
          this.counts.scans++;
          for (const pid of listChildPids()) if (!this.registry.owns(pid)) this.reap(pid);
        }
      } while (this.drainAgain && !this.stopped);
    } finally {
      this.counts.drainNs += Number(process.hrtime.bigint() - t0);
      const cpu = process.cpuUsage(cpu0);
      this.counts.drainCpuUs += cpu.user + cpu.system;
      this.draining = false;
    }
  }

  /** Reaps exited children as the kernel lists them; true when a libuv-owned zombie blocks the view. */
  private reapInKernelOrder(): boolean {
    for (;;) {
      const pid = sys.peekExited();
      if (pid <= 0) return false;
      if (this.registry.owns(pid)) return true;
      if (!this.reap(pid)) return true; // cannot happen unless someone else waits too; fall back to the list
    }
  }

  private reap(pid: number): boolean {
    const result = sys.reapPid(pid);
    if (result.kind !== 'reaped') return false;
    this.counts.reaped++;
    this.dispatch({ pid, ...decodeWaitStatus(result.raw), at: new Date() }, false);
    return true;
  }

  private dispatch(exit: Exit, libuvChild: boolean): void {
    if (this.stopped) return;
    const waiting = this.waiters.get(exit.pid);
    if (waiting) {
      this.waiters.delete(exit.pid);
      for (const w of waiting) w.resolve(exit);
      this.updateTimerRef();
    } else if (!libuvChild) {
      this.hold.put(exit);
    }
    for (const fn of this.listeners) {
      try {
        fn(exit);
      } catch (err) {
        this.log?.error({ err, pid: exit.pid }, 'reaper: exit listener threw');
      }
    }
  }

  private scheduleDrain(): void {
    if (this.drainQueued || this.stopped) return;
    this.drainQueued = true;
    setImmediate(() => {
      this.drainQueued = false;
      this.drain();
    });
  }

  /** A pending watch() keeps the process alive, as a running ChildProcess does. */
  private updateTimerRef(): void {
    if (this.waiters.size > 0) this.sweepTimer?.ref();
    else this.sweepTimer?.unref();
  }

  private assertRunning(): void {
    if (this.stopped) throw new ShimError('Unavailable', 'reaper stopped');
  }
}
