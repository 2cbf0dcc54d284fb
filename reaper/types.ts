/** The reaper's public types. */
import type { Readable, Writable } from 'node:stream';

/** One collected exit. */
export interface Exit {
  readonly pid: number;
  /** The exit code, or 128 + N when killed by signal N (containerd's convention). */
  readonly status: number;
  /** The killing signal, only when the process was killed by one. */
  readonly signal?: number;
  /** When the reaper collected the exit. */
  readonly at: Date;
}

export type StdioEntry = 'pipe' | 'ignore' | number;

export interface SpawnOptions {
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  /** Default ['ignore', 'pipe', 'pipe'] (run() uses 'pipe' for stdin when `input` is given). */
  stdio?: StdioEntry[];
  /** Written to stdin, then stdin is closed. Needs stdio[0] = 'pipe'. */
  input?: string | Uint8Array;
  /** Abort → SIGKILL to the process. spawn().exited still resolves with the real exit (137). */
  signal?: AbortSignal;
  /**
   * Default true: the process must not outlive the shim. It gets SIGKILL from killDependents() (the daemon's
   * orderly exit) and from a process 'exit' hook; where the Reaper has a setpriv, also from the kernel when
   * the shim dies any other way (prctl PR_SET_PDEATHSIG, set through `setpriv --pdeathsig KILL`, which then
   * execs the command: same pid, same exit status).
   */
  parentDeathSignal?: boolean;
}

export interface RunOptions extends SpawnOptions {
  /** Bytes kept per stream (the rest is read and discarded so the child never blocks). Default 4 MiB. */
  maxOutput?: number;
  /**
   * After the exit, how long to wait for stdout/stderr to reach EOF. A daemonized grandchild may keep the
   * pipes open forever; after this the streams are destroyed and the output read so far is returned.
   * Default 2000 ms.
   */
  drainTimeoutMs?: number;
}

export interface TrackedChild {
  readonly pid: number;
  readonly stdin: Writable | null;
  readonly stdout: Readable | null;
  readonly stderr: Readable | null;
  /** Resolves once with the exit; never rejects. */
  readonly exited: Promise<Exit>;
  /** Sends a signal (default SIGKILL); false when the process is already gone. */
  kill(signal?: NodeJS.Signals | number): boolean;
}

export interface RunResult {
  readonly exit: Exit;
  readonly stdout: Buffer;
  readonly stderr: Buffer;
  /** True when a stream hit maxOutput and the rest was discarded. */
  readonly truncated: boolean;
}

export interface WatchOptions {
  /** Stops waiting (the promise rejects with Canceled/DeadlineExceeded); the process is not touched. */
  signal?: AbortSignal;
}

/** Counters for diagnostics and the benchmark. */
export interface ReaperStats {
  /** Exits reaped by us (orphans, container processes). */
  readonly reaped: number;
  /** Exits of child_process children, collected by libuv and relayed. */
  readonly relayed: number;
  /** Drains run (one per SIGCHLD, plus re-checks and the periodic sweep). */
  readonly drains: number;
  /** Drains that had to list /proc/self/task/*\/children because a libuv-owned zombie came first. */
  readonly scans: number;
  /** Wall time spent in drains, in nanoseconds (includes being descheduled on a busy machine). */
  readonly drainNs: number;
  /** CPU time of the process during drains, in microseconds (all threads; the main thread dominates). */
  readonly drainCpuUs: number;
  /** Exits held for a later watch() right now, and dropped unclaimed so far. */
  readonly held: number;
  readonly dropped: number;
}
