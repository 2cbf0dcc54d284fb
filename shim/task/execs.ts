/**
 * The exec processes of one container. Ordering rules (shim-v2-protocol.md §5.3, §12.4): an exec's exit is
 * handled only after its Start settled, so /tasks/exec-started always precedes its /tasks/exit; no exec
 * starts once the init's exit has been seen; `settled()` lets the init's exit wait for every exec's exit.
 */
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { ShimError, alreadyExists, failedPrecondition, notFound } from '../../protocol/errdefs.js';
import { toTimestamp } from '../../protocol/timestamp.js';
import { createProcessIO, type ProcessIOOptions } from '../../io/process-io.js';
import type { Reaper } from '../../reaper/reaper.js';
import type { EventSink } from '../events/task-events.js';
import { DRAIN_ON_DELETE_MS, GO_ZERO_TIME, ProcessBase } from '../process/process.js';
import { wrongState } from '../process/state.js';
import type { ExitInfo, ProcessStatus, StdioStrings } from '../process/types.js';
import type { Runc } from '../runtime/runc.js';
import { readPidFile } from './bundle-files.js';
import { trackExitWork } from '../process/exit-work.js';
import { adoptProcessState, processHandoff } from '../process/process-handoff.js';
import type { ExecHandoff } from '../upgrade/state.js';

export class ExecProcess extends ProcessBase {
  constructor(
    id: string,
    stdio: StdioStrings,
    log: Logger,
    readonly spec: Record<string, unknown>,
  ) {
    super(id, stdio, log);
  }
}

export interface ExecSetDeps {
  readonly containerId: string;
  readonly bundle: string;
  readonly runc: Runc;
  readonly reaper: Reaper;
  readonly events: EventSink;
  readonly log: Logger;
  readonly ioOptions: (id: string, log: Logger) => ProcessIOOptions;
  /** The init's status, and whether its exit has been seen (execs may not start after it). */
  readonly init: () => { status: ProcessStatus; exitSeen: boolean };
}

export class ExecSet {
  private readonly execs = new Map<string, ExecProcess>();

  constructor(private readonly deps: ExecSetDeps) {}

  add(execId: string, stdio: StdioStrings, spec: Record<string, unknown>): ExecProcess {
    if (this.execs.has(execId)) throw alreadyExists(`id ${execId}`);
    const init = this.deps.init();
    if (init.status !== 'created' && init.status !== 'running') throw wrongState('exec', init.status);
    if (init.exitSeen) throw failedPrecondition(`container ${this.deps.containerId} init process is not running`);
    // The request's terminal flag wins over the spec's, as with the reference.
    const proc = new ExecProcess(execId, stdio, this.deps.log.child({ exec_id: execId }), { ...spec, terminal: stdio.terminal });
    this.execs.set(execId, proc);
    return proc;
  }

  get(execId: string): ExecProcess {
    const e = this.execs.get(execId);
    if (!e) throw notFound(`process does not exist ${execId}`);
    return e;
  }

  all(): IterableIterator<ExecProcess> {
    return this.execs.values();
  }

  async start(e: ExecProcess): Promise<number> {
    if (e.status !== 'created' || e.starting) throw wrongState('start', e.status === 'created' ? 'running' : e.status);
    const init = this.deps.init();
    if (init.exitSeen || init.status !== 'running') {
      throw failedPrecondition(`container ${this.deps.containerId} init process is not running`);
    }
    const run = this.launch(e);
    e.starting = run;
    try {
      return await run;
    } finally {
      e.starting = undefined;
    }
  }

  private async launch(e: ExecProcess): Promise<number> {
    const { containerId, bundle, runc, events } = this.deps;
    const pidFile = join(bundle, `${e.id}.pid`);
    const io = await createProcessIO(e.stdio, this.deps.ioOptions(e.id, e.log));
    e.io = io;
    try {
      await runc.exec(containerId, e.spec, pidFile, io.runtime.consoleSocket, { stdio: io.runtime.stdio, afterSpawn: () => io.afterSpawn() });
      // Independent once runc returned: the copy's start and the pid file's read.
      const [, pid] = await Promise.all([io.start(AbortSignal.timeout(30_000)), readPidFile(pidFile)]);
      e.pid = pid;
    } catch (err) {
      await io.close().catch(() => undefined);
      // Never started: nothing to report as an exit; Wait returns at once, as with the reference.
      e.markExited({ pid: 0, status: 255, exitedAt: new Date() });
      throw err;
    }
    e.status = 'running';
    const pid = e.pid;
    this.watch(e);
    events.publish({ type: 'TaskExecStarted', event: { containerId, execId: e.id, pid } });
    return pid;
  }

  private watch(e: ExecProcess): void {
    const pid = e.pid;
    this.deps.reaper.watch(pid).then(
      (exit) => trackExitWork(this.onExit(e, { pid, status: exit.status, exitedAt: new Date() })),
      (err: unknown) => e.log.error({ err, pid }, 'watching exec process failed'),
    );
  }

  handoff(): ExecHandoff[] | string {
    const out: ExecHandoff[] = [];
    for (const e of this.execs.values()) {
      const h = processHandoff(e);
      if (typeof h === 'string') return h;
      out.push({ ...h, spec: e.spec });
    }
    return out;
  }

  /** Rebuilds the execs handed over by the previous image; running ones are watched again. */
  adopt(execs: readonly ExecHandoff[]): void {
    for (const h of execs) {
      const e = new ExecProcess(h.id, h.stdio, this.deps.log.child({ exec_id: h.id }), h.spec);
      adoptProcessState(e, h, this.deps.ioOptions(h.id, e.log));
      this.execs.set(h.id, e);
      if (e.status === 'running' && !e.exit && e.pid > 0) this.watch(e);
    }
  }

  private async onExit(e: ExecProcess, exit: ExitInfo): Promise<void> {
    if (e.starting) await e.starting.catch(() => undefined);
    if (e.status === 'deleted' || e.exit) return;
    e.log.debug({ pid: exit.pid, exit_status: exit.status }, 'exec process exited');
    await e.drainAfterExit();
    e.markExited({ ...exit, exitedAt: new Date() });
    this.deps.events.publish({
      type: 'TaskExit',
      event: { containerId: this.deps.containerId, id: e.id, pid: exit.pid, exitStatus: exit.status, exitedAt: toTimestamp(e.exit!.exitedAt) },
    });
  }

  /** Resolves when every exec has failed to start, been deleted, or had its exit published. */
  async settled(): Promise<void> {
    await Promise.all(
      [...this.execs.values()].map(async (e) => {
        if (e.starting) await e.starting.catch(() => undefined);
        if (e.status === 'running') await e.exited;
      }),
    );
  }

  /** Execs are signalled directly, not through runc (as the reference); `all` does not apply. */
  kill(e: ExecProcess, signal: number): void {
    switch (e.status) {
      case 'deleted':
        throw notFound('cannot kill a deleted process');
      case 'stopped':
        throw notFound('process already finished');
      case 'created':
        throw failedPrecondition('process not created');
      default:
        break;
    }
    try {
      process.kill(e.pid, signal);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ESRCH') throw notFound('exec kill error: process already finished', err);
      throw new ShimError('Unknown', `exec kill error: ${(err as Error).message}`, { cause: err });
    }
  }

  async delete(e: ExecProcess): Promise<ExitInfo> {
    if (e.status === 'deleted') throw notFound('cannot delete a deleted process');
    if (e.status === 'running' || e.starting) throw wrongState('delete', 'running');
    if (!(await e.drainBeforeDelete())) {
      e.log.warn({ idle_ms: DRAIN_ON_DELETE_MS }, 'exec output stopped flowing before it ended; closing anyway');
    }
    await e.io?.close();
    e.status = 'deleted';
    this.execs.delete(e.id);
    rmSync(join(this.deps.bundle, `${e.id}.pid`), { force: true }); // bundle-files.ts: local, a few bytes
    const exit = e.exit ?? { pid: e.pid, status: 0, exitedAt: GO_ZERO_TIME };
    if (!e.exit) e.markExited(exit);
    return exit;
  }

  /** Exec ids by pid, for Pids' ProcessDetails. */
  idsByPid(): Map<number, string> {
    const m = new Map<number, string>();
    for (const e of this.execs.values()) if (e.pid > 0) m.set(e.pid, e.id);
    return m;
  }

  async closeAll(): Promise<void> {
    for (const e of this.execs.values()) await e.io?.close();
  }
}
