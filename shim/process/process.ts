/**
 * State shared by the init and exec processes: status, pid, exit, waiters, IO. Transitions are synchronous
 * (the daemon is single-threaded); async work happens around them and re-checks state afterwards.
 */
import type { Logger } from 'pino';
import type { ProcessIO } from '../../io/process-io.js';
import { Deferred } from '../sync.js';
import type { ExitInfo, ProcessSnapshot, ProcessStatus, StdioStrings } from './types.js';

/** How long Delete waits for a process's output to be copied (the reference: 2 s). */
export const DRAIN_ON_DELETE_MS = 2000;
/**
 * An exit is published once the output reached the client: containerd ≥ 1.7 clients (ctr, and any user of
 * its cio) close their FIFOs when they see the exit, dropping whatever is still in flight. We wait while the
 * output moves, and give up after DELIVER_IDLE_MS without progress (a client that stopped reading) or
 * DELIVER_MAX_MS in all.
 */
const DELIVER_IDLE_MS = 1000;
const DELIVER_MAX_MS = 10_000;
/** Go's zero time: what the reference reports as exited_at of a process that never exited. */
export const GO_ZERO_TIME = new Date(-62135596800000);

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

  /**
   * Called once the exit is known, before it is published: consoles stop waiting for more output, and the
   * output is delivered (bounded, see DELIVER_IDLE_MS) so that clients see the whole tail before the exit.
   */
  async drainAfterExit(): Promise<void> {
    const io = this.io;
    if (!io) return;
    io.processExited();
    if (!(await io.delivered(DELIVER_IDLE_MS, DELIVER_MAX_MS))) {
      this.log.debug({ copied: io.copiedBytes() }, 'output not fully read by the client at exit; publishing the exit anyway');
    }
  }

  /**
   * Before Delete closes the IO: wait for the output copy to finish. Like the reference we give up after
   * DRAIN_ON_DELETE_MS without progress (a daemonized grandchild may hold the pipe forever), but unlike it we
   * keep waiting while bytes still flow, so a slow client never loses the tail of a large output.
   */
  async drainBeforeDelete(): Promise<boolean> {
    const io = this.io;
    if (!io) return true;
    let last = io.copiedBytes();
    for (;;) {
      if (await io.drained(DRAIN_ON_DELETE_MS)) return true;
      const now = io.copiedBytes();
      if (now === last) return false;
      last = now;
    }
  }

  snapshot(): ProcessSnapshot {
    return { id: this.id, pid: this.pid, status: this.status, stdio: this.stdio, exit: this.exit };
  }
}
