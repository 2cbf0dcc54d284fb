/**
 * `binary://` logging plugins (reference: NewBinaryIO in pkg/process/io.go and the console variant in
 * runtime/v2/runc/platform.go — one implementation here for both). The logger gets stdin/stdout/stderr
 * = /dev/null, fd 3 = container stdout pipe (read end), fd 4 = container stderr pipe (read end), fd 5 = the
 * write end of a ready pipe, and an environment of only CONTAINER_ID and CONTAINER_NAMESPACE.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import net from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from 'pino';
import { ShimError, kindOf } from '../protocol/errdefs.js';
import { OsPipe } from './pipes.js';
import type { BinaryLoggerSpec } from './uri.js';

/** A running logger process, however it was spawned. */
export interface LoggerProcess {
  readonly pid: number;
  /** Sends a signal; must not throw when the process is already gone. */
  signal(sig: NodeJS.Signals): void;
  /** Resolves when the process exited (reaped). */
  readonly exited: Promise<void>;
}

export interface SpawnLoggerOptions {
  readonly env: Readonly<Record<string, string>>;
  /** fds to pass as the child's fds 3, 4, 5, … (0–2 are /dev/null). */
  readonly fds: readonly number[];
}

/** Injected spawner (the shim wires it to its reaper); rejects when the binary cannot be started. */
export type SpawnLogger = (cmd: string, args: readonly string[], o: SpawnLoggerOptions) => Promise<LoggerProcess>;

/** SIGTERM, then SIGKILL after this long (the reference's binaryIOProcTermTimeout). */
export const LOGGER_TERM_TIMEOUT_MS = 12_000;

/**
 * Default spawner: plain child_process. `onSpawn` reports the pid in the same tick as spawn(), so a reaper
 * can mark it as owned by libuv.
 */
export function childProcessSpawner(onSpawn?: (pid: number) => void): SpawnLogger {
  return async (cmd, args, o) => {
    const child = spawn(cmd, args, {
      env: { ...o.env },
      stdio: ['ignore', 'ignore', 'ignore', ...o.fds],
      detached: false,
    });
    if (child.pid !== undefined) onSpawn?.(child.pid);
    const exited = new Promise<void>((resolve) => {
      if (child.exitCode !== null || child.signalCode !== null) resolve();
      else child.once('exit', () => resolve());
    });
    if (child.pid === undefined) {
      const [err] = (await once(child, 'error')) as [Error];
      throw err;
    }
    child.on('error', () => undefined); // late errors (kill on a reaped child) are irrelevant
    const pid = child.pid;
    return {
      pid,
      signal(sig) {
        if (child.exitCode === null && child.signalCode === null) child.kill(sig);
      },
      exited,
    };
  };
}

export interface BinaryLoggerOptions {
  readonly id: string;
  readonly namespace: string;
  readonly logger: Logger;
  readonly spawnLogger: SpawnLogger;
  /** Bound on the readiness wait (the reference waits without limit). */
  readonly readyTimeoutMs: number;
}

/** A started, ready logger and the write ends of its pipes (ours to hand to runc or to copy into). */
export class BinaryLogger {
  #closing: Promise<void> | undefined;

  private constructor(
    readonly process: LoggerProcess,
    /** Container stdout pipe; its read end is the logger's fd 3. */
    readonly stdout: OsPipe,
    /** Container stderr pipe; its read end is the logger's fd 4. */
    readonly stderr: OsPipe,
    private readonly log: Logger,
  ) {}

  /**
   * Starts the logger and waits until it is ready: a byte on, or the close of, fd 5. If the logger dies
   * first the ready pipe reads EOF, which also counts as ready (as in the reference).
   */
  static async start(spec: BinaryLoggerSpec, o: BinaryLoggerOptions): Promise<BinaryLogger> {
    const out = OsPipe.create();
    const err = OsPipe.create();
    const ready = OsPipe.create();
    let proc: LoggerProcess | undefined;
    try {
      const env = { CONTAINER_ID: o.id, CONTAINER_NAMESPACE: o.namespace };
      try {
        proc = await o.spawnLogger(spec.path, spec.args, { env, fds: [out.readFd, err.readFd, ready.writeFd] });
      } catch (e) {
        throw new ShimError(kindOf(e), `failed to start binary process: ${(e as Error).message}`, { cause: e });
      }
      o.logger.debug({ pid: proc.pid, path: spec.path }, 'binary logger started');
      // The logger holds its own copies now: drop ours so its death or readiness shows up as EOF.
      ready.closeWrite();
      out.closeRead();
      err.closeRead();
      await waitReady(ready.takeReader(), o.readyTimeoutMs, spec.path);
      return new BinaryLogger(proc, out, err, o.logger);
    } catch (e) {
      out.close();
      err.close();
      ready.close();
      if (proc) await terminate(proc, o.logger, 1000);
      throw e;
    }
  }

  /** Closes our pipe ends, then SIGTERM, up to 12 s, SIGKILL. Idempotent. */
  close(timeoutMs = LOGGER_TERM_TIMEOUT_MS): Promise<void> {
    this.#closing ??= (async () => {
      this.stdout.close();
      this.stderr.close();
      await terminate(this.process, this.log, timeoutMs);
    })();
    return this.#closing;
  }
}

async function waitReady(stream: net.Socket, timeoutMs: number, path: string): Promise<void> {
  const signal = AbortSignal.timeout(timeoutMs);
  try {
    await new Promise<void>((resolve, reject) => {
      const done = (): void => resolve();
      stream.once('data', done);
      stream.once('end', done);
      stream.once('close', done);
      stream.once('error', done); // a read error on our own pipe: nothing to wait for
      signal.addEventListener('abort', () => reject(new ShimError('DeadlineExceeded', `binary logger ${path} not ready in ${timeoutMs} ms`)), {
        once: true,
      });
    });
  } finally {
    stream.destroy();
  }
}

async function terminate(proc: LoggerProcess, log: Logger, timeoutMs: number): Promise<void> {
  proc.signal('SIGTERM');
  const ac = new AbortController();
  const timedOut = await Promise.race([
    proc.exited.then(() => false),
    sleep(timeoutMs, true, { signal: ac.signal }).catch(() => false),
  ]);
  ac.abort();
  if (timedOut) {
    log.warn({ pid: proc.pid }, 'binary logger did not exit after SIGTERM, killing it');
    proc.signal('SIGKILL');
    await proc.exited;
  }
}
