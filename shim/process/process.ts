/**
 * State shared by the init and exec processes: status, pid, exit, waiters, IO. Transitions are synchronous
 * (the daemon is single-threaded); async work happens around them and re-checks state afterwards.
 */
import type { Logger } from 'pino';
import type { ProcessIO } from '../../io/process-io.js';
import { Deferred } from '../sync.js';
import type { ExitInfo, ProcessSnapshot, ProcessStatus, StdioStrings } from './types.js';

export abstract class ProcessBase {
  status: ProcessStatus = 'created';
  pid = 0;
  exit: ExitInfo | undefined;
  io: ProcessIO | undefined;
  /** Set while a Start is running: the exit of this process is handled only after it settles. */
  starting: Promise<unknown> | undefined;
  private readonly exitedDeferred = new Deferred<ExitInfo>();

  constructor(
    readonly id: string,
    readonly stdio: StdioStrings,
    readonly log: Logger,
  ) {}

  /** Resolves when the process has exited (or was deleted without running). */
  get exited(): Promise<ExitInfo> {
    return this.exitedDeferred.promise;
  }

  /** Records the exit: status → stopped, waiters released. Synchronous; idempotent. */
  markExited(exit: ExitInfo): void {
    if (this.exit) return;
    this.exit = exit;
    if (this.status !== 'deleted') this.status = 'stopped';
    this.exitedDeferred.resolve(exit);
  }

  snapshot(): ProcessSnapshot {
    return { id: this.id, pid: this.pid, status: this.status, stdio: this.stdio, exit: this.exit };
  }
}
