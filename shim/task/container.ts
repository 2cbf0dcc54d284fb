/**
 * One container: its init process and every operation on it; its exec processes live in an ExecSet.
 * Ordering rules that containerd relies on (shim-v2-protocol.md §5.3–5.5, §12.4):
 * - /tasks/start is queued before the init's /tasks/exit: an exit is handled only after the Start that
 *   launched the process has settled (`starting`).
 * - exec exits are queued before the init's exit: the init exit waits for every running exec to exit
 *   (after a kill-all when the PID namespace is shared, since then the kernel kills nothing for us).
 * - no exec starts once the init's exit has been seen.
 * - /tasks/delete is queued only after /tasks/exit (Delete requires a stopped process).
 */
import { rm, mkdir, copyFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { ShimError, notFound } from '../../protocol/errdefs.js';
import { createProcessIO, type ProcessIOOptions } from '../../io/process-io.js';
import type { Reaper } from '../../reaper/reaper.js';
import type { EventSink } from '../events/task-events.js';
import type { BundleSpec } from '../platform/bundle.js';
import type { CgroupHandle, StopOomWatch } from '../platform/cgroup.js';
import { unmountAll } from '../platform/mount.js';
import { DRAIN_ON_DELETE_MS, GO_ZERO_TIME, ProcessBase } from '../process/process.js';
import { wrongState } from '../process/state.js';
import type { ExitInfo, StdioStrings } from '../process/types.js';
import type { RuncOptions } from '../runtime/options.js';
import type { Runc } from '../runtime/runc.js';
import { SerialQueue } from '../sync.js';
import { toTimestamp } from '../../protocol/timestamp.js';
import { readPidFile } from './bundle-files.js';
import { ExecSet } from './execs.js';
import { trackExitWork } from '../process/exit-work.js';
import type { ContainerHandoff } from '../upgrade/state.js';
import { adoptProcessState, processHandoff } from '../process/process-handoff.js';

export interface ContainerDeps {
  readonly namespace: string;
  readonly reaper: Reaper;
  readonly events: EventSink;
  readonly log: Logger;
}

export class InitProcess extends ProcessBase {
  readonly mutations = new SerialQueue();
}

export interface ContainerInit {
  readonly id: string;
  readonly bundle: string;
  readonly spec: BundleSpec;
  readonly options: RuncOptions;
  readonly runc: Runc;
  readonly rootfsMounted: boolean;
  readonly stdio: StdioStrings;
  readonly checkpoint: string;
  readonly parentCheckpoint: string;
}

/** The longest an init's TaskExit waits for Kill calls in flight to be answered. */
const KILL_ANSWER_WAIT_MS = 2000;

export class Container {
  readonly id: string;
  readonly bundle: string;
  readonly init: InitProcess;
  readonly execs: ExecSet;
  readonly log: Logger;
  cgroup: CgroupHandle | undefined;
  stopOomWatch: StopOomWatch | undefined;
  /** Loading the cgroup and arming the OOM watcher, begun at Create (never rejects). */
  cgroupAttached: Promise<void> | undefined;
  /** Set the moment the init's exit is seen: no exec may start after it. */
  initExitSeen = false;

  constructor(
    readonly cfg: ContainerInit,
    private readonly deps: ContainerDeps,
  ) {
    this.id = cfg.id;
    this.bundle = cfg.bundle;
    this.log = deps.log.child({ container_id: cfg.id });
    this.init = new InitProcess(cfg.id, cfg.stdio, this.log);
    this.execs = new ExecSet({
      containerId: cfg.id,
      bundle: cfg.bundle,
      runc: cfg.runc,
      reaper: deps.reaper,
      events: deps.events,
      log: this.log,
      ioOptions: (id, log) => this.ioOptions(id, log),
      init: () => ({ status: this.init.status, exitSeen: this.initExitSeen }),
    });
  }

  get runc(): Runc {
    return this.cfg.runc;
  }

  get pidFile(): string {
    return join(this.bundle, 'init.pid');
  }

  ioOptions(id: string, log: Logger): ProcessIOOptions {
    return {
      id,
      namespace: this.deps.namespace,
      uid: this.cfg.options.ioUid,
      gid: this.cfg.options.ioGid,
      logger: log,
    };
  }

  // ---- init lifecycle -------------------------------------------------------------------------------

  /** runc create (or nothing for a checkpointed create: restore happens at Start). */
  async createInit(signal: AbortSignal): Promise<void> {
    if (this.cfg.checkpoint) return;
    const io = await createProcessIO(this.cfg.stdio, this.ioOptions(this.id, this.log));
    this.init.io = io;
    await this.runc.create(
      this.id,
      {
        bundle: this.bundle,
        pidFile: this.pidFile,
        ...(io.runtime.consoleSocket ? { consoleSocket: io.runtime.consoleSocket } : {}),
        noPivot: this.cfg.options.noPivotRoot,
        noNewKeyring: this.cfg.options.noNewKeyring,
      },
      { stdio: io.runtime.stdio, afterSpawn: () => io.afterSpawn() },
      signal,
    );
    // Independent once runc returned: the copy's start and the pid file's read.
    const [, pid] = await Promise.all([io.start(signal), readPidFile(this.pidFile)]);
    this.init.pid = pid;
  }

  /** Starts watching the init's exit; call once the create event is queued. */
  watchInit(): void {
    const pid = this.init.pid;
    if (pid <= 0) return;
    this.deps.reaper.watch(pid).then(
      (exit) => trackExitWork(this.onInitExit({ pid, status: exit.status, exitedAt: new Date() })),
      (err: unknown) => this.log.error({ err, pid }, 'watching init process failed'),
    );
  }

  /** In-place upgrade: this container as the next image rebuilds it (adopt). */
  handoff(): ContainerHandoff | string {
    const init = processHandoff(this.init);
    if (typeof init === 'string') return init;
    const execs = this.execs.handoff();
    if (typeof execs === 'string') return execs;
    const { cfg } = this;
    return {
      id: cfg.id,
      bundle: cfg.bundle,
      spec: cfg.spec,
      options: cfg.options,
      runc: cfg.runc.cfg,
      rootfsMounted: cfg.rootfsMounted,
      stdio: cfg.stdio,
      checkpoint: cfg.checkpoint,
      parentCheckpoint: cfg.parentCheckpoint,
      initExitSeen: this.initExitSeen,
      init,
      execs,
    };
  }

  /**
   * Rebuilds a container handed over by the previous image: same processes, same fds; the exits of processes
   * still running (or that ended during the switch, zombies until now) are watched again.
   */
  static adopt(h: ContainerHandoff, runc: Runc, deps: ContainerDeps): Container {
    const c = new Container(
      {
        id: h.id,
        bundle: h.bundle,
        spec: h.spec,
        options: h.options,
        runc,
        rootfsMounted: h.rootfsMounted,
        stdio: h.stdio,
        checkpoint: h.checkpoint,
        parentCheckpoint: h.parentCheckpoint,
      },
      deps,
    );
    c.initExitSeen = h.initExitSeen;
    adoptProcessState(c.init, h.init, c.ioOptions(c.id, c.log));
    c.execs.adopt(h.execs);
    if (!c.init.exit && c.init.pid > 0 && c.init.status !== 'deleted') c.watchInit();
    return c;
  }

  async startInit(): Promise<number> {
    return this.init.mutations.run(async () => {
      const p = this.init;
      if (p.status !== 'created') throw wrongState('start', p.status);
      const started = (async () => {
        if (this.cfg.checkpoint) await this.restoreInit();
        else await this.runc.start(this.id);
        p.status = p.exit ? 'stopped' : 'running';
        this.deps.events.publish({ type: 'TaskStart', event: { containerId: this.id, pid: p.pid } });
      })();
      p.starting = started;
      try {
        await started;
      } finally {
        p.starting = undefined;
      }
      if (this.cfg.checkpoint) this.watchInit();
      return p.pid;
    });
  }

  private async restoreInit(): Promise<void> {
    const io = await createProcessIO(this.cfg.stdio, this.ioOptions(this.id, this.log));
    this.init.io = io;
    await this.runc.restore(
      this.id,
      {
        bundle: this.bundle,
        pidFile: this.pidFile,
        imagePath: this.cfg.checkpoint,
        workPath: this.cfg.options.criuWorkPath || join(this.bundle, 'work'),
        ...(this.cfg.parentCheckpoint ? { parentPath: this.cfg.parentCheckpoint } : {}),
        ...(io.runtime.consoleSocket ? { consoleSocket: io.runtime.consoleSocket } : {}),
        noPivot: this.cfg.options.noPivotRoot,
      },
      { stdio: io.runtime.stdio, afterSpawn: () => io.afterSpawn() },
    );
    await io.start(AbortSignal.timeout(30_000));
    this.init.pid = await readPidFile(this.pidFile);
  }

  private async onInitExit(exit: ExitInfo): Promise<void> {
    const p = this.init;
    this.initExitSeen = true;
    if (p.starting) await p.starting.catch(() => undefined);
    if (p.status === 'deleted') return;
    this.log.info({ pid: exit.pid, exit_status: exit.status }, 'init process exited');
    if (this.cfg.spec.sharedPidNamespace) {
      // Without a private PID namespace nothing else dies with the init: kill what is left of the container.
      await this.runc.kill(this.id, 9, true).catch((err: unknown) => this.log.debug({ err }, 'kill-all after init exit'));
    }
    // Exec exits come first: wait for every exec that is starting or running to be handled.
    await this.execs.settled();
    if (p.status === 'paused' || p.status === 'pausing') {
      await this.runc.resume(this.id).catch((err: unknown) => this.log.warn({ err }, 'resume of exited paused container'));
    }
    await p.drainAfterExit();
    await this.cgroupAttached; // a watcher still being armed is stopped too
    // A Kill that caused this exit is answered before the exit is published: a client that deletes the task
    // on TaskExit closes the connection the Kill is waiting on (CRI's StopPodSandbox saw "ttrpc: closed").
    await this.killsAnswered();
    // Before the exit is visible: an OOM kill the watcher has not reported yet goes out ahead of TaskExit.
    this.stopOomWatch?.({ flush: true });
    this.stopOomWatch = undefined;
    p.markExited({ ...exit, exitedAt: new Date() });
    this.deps.events.publish({
      type: 'TaskExit',
      event: {
        containerId: this.id,
        id: this.id,
        pid: exit.pid,
        exitStatus: exit.status,
        exitedAt: toTimestamp(p.exit!.exitedAt),
      },
    });
  }

  async killInit(signal: number, all: boolean): Promise<void> {
    const p = this.init;
    if (p.status === 'deleted') throw notFound('cannot kill a deleted process');
    if (p.status === 'stopped' && !all) throw notFound('process already finished');
    const kill = this.runc.kill(this.id, signal, all).catch((err: unknown) => {
      // Kill-all of a stopped container is success, as with runc 1.1 (which signals the empty cgroup).
      if (p.status === 'stopped' && err instanceof ShimError && err.kind === 'NotFound') return;
      throw err;
    });
    this.killsInFlight.add(kill);
    try {
      await kill;
    } finally {
      this.killsInFlight.delete(kill);
    }
  }

  /** Init kills still running `runc kill`. */
  private readonly killsInFlight = new Set<Promise<void>>();

  /**
   * Resolves once every Kill in flight has been answered (its `runc kill` returned, then one turn of the event
   * loop for the reply to be written), or after KILL_ANSWER_WAIT_MS: never holds an exit for long.
   */
  private async killsAnswered(): Promise<void> {
    if (this.killsInFlight.size === 0) return;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      Promise.allSettled([...this.killsInFlight]),
      new Promise<void>((resolve) => (timer = setTimeout(resolve, KILL_ANSWER_WAIT_MS))),
    ]);
    clearTimeout(timer);
    await new Promise<void>((resolve) => setImmediate(resolve));
  }

  async pause(): Promise<void> {
    return this.init.mutations.run(async () => {
      const p = this.init;
      if (p.status !== 'running') throw wrongState('pause', p.status);
      p.status = 'pausing';
      try {
        await this.runc.pause(this.id);
      } catch (err) {
        if (p.status === 'pausing') p.status = 'running';
        throw err;
      }
      if (p.status === 'pausing') p.status = 'paused';
      this.deps.events.publish({ type: 'TaskPaused', event: { containerId: this.id } });
    });
  }

  async resume(): Promise<void> {
    return this.init.mutations.run(async () => {
      const p = this.init;
      if (p.status !== 'paused') throw wrongState('resume', p.status);
      await this.runc.resume(this.id);
      if (p.status === 'paused') p.status = 'running';
      this.deps.events.publish({ type: 'TaskResumed', event: { containerId: this.id } });
    });
  }

  async update(resources: unknown): Promise<void> {
    return this.init.mutations.run(async () => {
      const p = this.init;
      if (p.status === 'stopped' || p.status === 'deleted') throw wrongState('update', p.status);
      await this.runc.update(this.id, JSON.stringify(resources));
    });
  }

  async checkpoint(imagePath: string, opts: CheckpointRequestOptions): Promise<void> {
    return this.init.mutations.run(async () => {
      const p = this.init;
      if (p.status !== 'running' && p.status !== 'paused') throw wrongState('checkpoint', p.status);
      const defaultWork = join(this.bundle, 'work', 'criu-work');
      const workPath = opts.workPath || defaultWork;
      await mkdir(workPath, { recursive: true });
      try {
        await this.runc.checkpoint(this.id, {
          imagePath,
          workPath,
          leaveRunning: !opts.exit,
          openTcp: opts.openTcp,
          externalUnixSockets: opts.externalUnixSockets,
          terminal: opts.terminal,
          fileLocks: opts.fileLocks,
          emptyNamespaces: opts.emptyNamespaces,
        });
      } catch (err) {
        const dumpLog = join(this.bundle, 'criu-dump.log');
        await copyFile(join(workPath, 'dump.log'), dumpLog).catch(() => undefined);
        const first = (err instanceof Error ? err.message : String(err)).split('\n')[0];
        throw new ShimError('Unknown', `${first} path= ${dumpLog}`, { cause: err });
      } finally {
        if (!opts.workPath) await rm(defaultWork, { recursive: true, force: true });
      }
      // Not published by the 1.6 reference; later containerd clients and tools watch for it.
      this.deps.events.publish({ type: 'TaskCheckpointed', event: { containerId: this.id, checkpoint: imagePath } });
    });
  }

  /** Delete of the init: only when created or stopped; releases IO, runc state and the rootfs. */
  async deleteInit(): Promise<ExitInfo> {
    return this.init.mutations.run(async () => {
      const p = this.init;
      if (p.status === 'deleted') throw notFound('cannot delete a deleted process');
      if (p.status !== 'created' && p.status !== 'stopped') throw wrongState('delete', p.status);
      if (!(await p.drainBeforeDelete())) {
        this.log.warn({ idle_ms: DRAIN_ON_DELETE_MS }, 'output stopped flowing before it ended; closing anyway');
      }
      await this.runc.delete(this.id, false);
      p.status = 'deleted';
      await p.io?.close();
      await this.execs.closeAll();
      await this.cgroupAttached;
      this.stopOomWatch?.();
      this.stopOomWatch = undefined;
      if (this.cfg.rootfsMounted) unmountAll(join(this.bundle, 'rootfs'));
      const exit = p.exit ?? { pid: p.pid, status: 0, exitedAt: GO_ZERO_TIME };
      if (!p.exit) p.markExited(exit);
      return exit;
    });
  }

  /** Best-effort teardown after a failed Create. */
  async abortCreate(): Promise<void> {
    await this.init.io?.close().catch(() => undefined);
    await this.runc.delete(this.id, true).catch((err: unknown) => this.log.warn({ err }, 'runc delete after failed create'));
    if (this.cfg.rootfsMounted) {
      try {
        unmountAll(join(this.bundle, 'rootfs'));
      } catch (err) {
        this.log.warn({ err }, 'unmount after failed create');
      }
    }
  }

  /** The process a request names: the init for an empty exec id. */
  process(execId: string): ProcessBase {
    return execId ? this.execs.get(execId) : this.init;
  }
}

export interface CheckpointRequestOptions {
  readonly exit: boolean;
  readonly openTcp: boolean;
  readonly externalUnixSockets: boolean;
  readonly terminal: boolean;
  readonly fileLocks: boolean;
  readonly emptyNamespaces: readonly string[];
  readonly workPath: string;
}
