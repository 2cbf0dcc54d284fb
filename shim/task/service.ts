/**
 * The Task API (containerd.task.v2.Task, also served as v3): look up, validate, delegate to the container,
 * answer. There is no service-wide lock: containers are independent, so a slow Create (waiting up to 30 s
 * for a client's FIFO readers) never stalls calls for other containers of the same shim.
 */
import { statSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from 'pino';
import {
  ShimError,
  alreadyExists,
  invalidArgument,
  notFound,
  notImplemented,
} from '../../protocol/errdefs.js';
import type * as api from '../../protocol/gen/containerd/runtime/v2/task/shim.js';
import { CheckpointOptions, ProcessDetails } from '../../protocol/gen/containerd/runtime/v2/runc/options/oci.js';
import { CheckpointOptions as LegacyCheckpointOptions } from '../../protocol/gen/containerd/runtime/linux/runctypes/runc.js';
import { toTimestamp } from '../../protocol/timestamp.js';
import type { Reaper } from '../../reaper/reaper.js';
import type { EventSink } from '../events/task-events.js';
import { readBundleSpec } from '../platform/bundle.js';
import { enableV2Controllers, loadCgroup } from '../platform/cgroup.js';
import { mountRootfs, unmountAll } from '../platform/mount.js';
import { statusToProto, type ExitInfo } from '../process/types.js';
import { GO_ZERO_TIME } from '../process/process.js';
import { optionsFromAny, optionsJson } from '../runtime/options.js';
import { DEFAULT_RUNC_ROOT, Runc } from '../runtime/runc.js';
import { writeBundleOptions } from './bundle-files.js';
import { Container } from './container.js';
import { validateId, validatePath } from './validate.js';
import type { ContainerHandoff } from '../upgrade/state.js';

export interface TaskServiceDeps {
  readonly namespace: string;
  readonly reaper: Reaper;
  readonly events: EventSink;
  readonly log: Logger;
  /** Called when Shutdown finds no container left. */
  /** Runs before Shutdown is answered (the socket can go first); the process exits after the answer. */
  readonly onShutdown: () => void | Promise<void>;
}


export class TaskService {
  private readonly containers = new Map<string, Container>();
  private readonly creating = new Set<string>();
  private shuttingDown = false;

  constructor(private readonly deps: TaskServiceDeps) {}

  get size(): number {
    return this.containers.size + this.creating.size;
  }

  private get(id: string): Container {
    const c = this.containers.get(id);
    if (!c) throw notFound('container not created');
    return c;
  }

  async create(req: api.CreateTaskRequest, signal: AbortSignal): Promise<api.CreateTaskResponse> {
    validateId('container id', req.id);
    validatePath('bundle', req.bundle);
    if (req.checkpoint) validatePath('checkpoint', req.checkpoint);
    if (req.parentCheckpoint) validatePath('parent checkpoint', req.parentCheckpoint);
    if (this.shuttingDown) throw new ShimError('FailedPrecondition', 'shim is shutting down');
    if (this.containers.has(req.id) || this.creating.has(req.id)) throw alreadyExists(`container ${req.id}`);
    let isDir = false;
    try {
      isDir = statSync(req.bundle).isDirectory(); // the bundle: local state (bundle-files.ts)
    } catch {
      /* missing or unreadable: not a directory we can use */
    }
    if (!isDir) throw invalidArgument(`bundle ${req.bundle} is not a directory`);
    const options = optionsFromAny(req.options);
    this.creating.add(req.id);
    const log = this.deps.log.child({ container_id: req.id });
    let container: Container | undefined;
    const rootfs = join(req.bundle, 'rootfs');
    let mounted = false;
    try {
      // Independent steps (synchronous file work in the local bundle, the mounts).
      const [spec] = await Promise.all([
        readBundleSpec(req.bundle).catch((err: unknown) => {
          throw invalidArgument(`read OCI spec in ${req.bundle}: ${(err as Error).message}`, err);
        }),
        writeBundleOptions(req.bundle, optionsJson(options), options.binaryName),
        req.rootfs.length > 0 ? mountRootfs(req.rootfs, rootfs).then(() => (mounted = true)) : undefined,
      ]);
      const runc = new Runc(
        {
          binary: options.binaryName || 'runc',
          root: join(options.root || DEFAULT_RUNC_ROOT, this.deps.namespace),
          logPath: join(req.bundle, 'log.json'),
          systemdCgroup: options.systemdCgroup,
          ...(options.criuPath ? { criuPath: options.criuPath } : {}),
        },
        this.deps.reaper,
        log,
      );
      container = new Container(
        {
          id: req.id,
          bundle: req.bundle,
          spec,
          options,
          runc,
          rootfsMounted: req.rootfs.length > 0,
          stdio: { stdin: req.stdin, stdout: req.stdout, stderr: req.stderr, terminal: req.terminal },
          checkpoint: req.checkpoint,
          parentCheckpoint: req.parentCheckpoint,
        },
        { namespace: this.deps.namespace, reaper: this.deps.reaper, events: this.deps.events, log: this.deps.log },
      );
      await container.createInit(AbortSignal.any([signal, AbortSignal.timeout(30_000)]));
    } catch (err) {
      this.creating.delete(req.id);
      if (container) await container.abortCreate();
      else if (mounted) {
        // The mount succeeded beside a step that failed (mountRootfs undoes its own partial work).
        try {
          unmountAll(rootfs);
        } catch (umountErr) {
          log.warn({ err: umountErr }, 'unmount after failed create');
        }
      }
      throw err;
    }
    this.creating.delete(req.id);
    this.containers.set(req.id, container);
    const c = container;
    this.deps.events.publish({
      type: 'TaskCreate',
      event: {
        containerId: req.id,
        bundle: req.bundle,
        rootfs: req.rootfs,
        io: { stdin: req.stdin, stdout: req.stdout, stderr: req.stderr, terminal: req.terminal },
        checkpoint: req.checkpoint,
        pid: c.init.pid,
      },
    });
    c.watchInit();
    // Armed while containerd goes on to Start, and awaited there before `runc start`: the init is parked in
    // `runc init` until then, so even an OOM in its first milliseconds cannot come before the watcher
    // listens (arming costs ~10 ms that Create no longer waits for). attachCgroup never throws.
    if (c.init.pid > 0) c.cgroupAttached = this.attachCgroup(c);
    log.info({ pid: c.init.pid }, 'container created');
    return { pid: c.init.pid };
  }

  private async attachCgroup(c: Container): Promise<void> {
    try {
      c.cgroup = await loadCgroup(c.init.pid, c.log);
      if (c.cgroup && !c.stopOomWatch) {
        c.stopOomWatch = await c.cgroup.watchOom(() => {
          c.log.info('container OOM event');
          this.deps.events.publish({ type: 'TaskOOM', event: { containerId: c.id } });
        }, c.log);
        c.log.debug({ cgroup: c.cgroup.path }, 'OOM watcher armed');
      }
    } catch (err) {
      c.log.warn({ err }, 'loading the container cgroup failed');
    }
  }

  async start(req: api.StartRequest): Promise<api.StartResponse> {
    const c = this.get(req.id);
    if (req.execId) {
      const pid = await c.execs.start(c.execs.get(req.execId));
      return { pid };
    }
    await c.cgroupAttached;
    const pid = await c.startInit();
    if (!c.cgroup) await this.attachCgroup(c);
    // As the reference at init Start: on cgroup v2, let the container's cgroup use every root controller.
    if (c.cgroup?.version === 2) void enableV2Controllers(c.cgroup.path, c.log);
    return { pid };
  }

  async state(req: api.StateRequest): Promise<api.StateResponse> {
    const c = this.get(req.id);
    const p = c.process(req.execId);
    const snap = p.snapshot();
    let status = snap.status;
    // An exec reports the init's paused/pausing state (the reference does the same).
    if (req.execId && (c.init.status === 'paused' || c.init.status === 'pausing') && status === 'running') {
      status = c.init.status;
    }
    return {
      id: snap.id,
      bundle: c.bundle,
      pid: snap.pid,
      status: statusToProto(status),
      stdin: snap.stdio.stdin,
      stdout: snap.stdio.stdout,
      stderr: snap.stdio.stderr,
      terminal: snap.stdio.terminal,
      exitStatus: snap.exit?.status ?? 0,
      exitedAt: toTimestamp(snap.exit?.exitedAt ?? GO_ZERO_TIME),
      execId: '',
    };
  }

  async delete(req: api.DeleteRequest): Promise<api.DeleteResponse> {
    const c = this.get(req.id);
    let exit: ExitInfo;
    if (req.execId) {
      exit = await c.execs.delete(c.execs.get(req.execId));
    } else {
      exit = await c.deleteInit();
      this.containers.delete(req.id);
      this.deps.events.publish({
        type: 'TaskDelete',
        event: { containerId: req.id, pid: exit.pid, exitStatus: exit.status, exitedAt: toTimestamp(exit.exitedAt), id: '' },
      });
      c.log.info('container deleted');
    }
    return { pid: exit.pid, exitStatus: exit.status, exitedAt: toTimestamp(exit.exitedAt) };
  }

  async pids(req: api.PidsRequest): Promise<api.PidsResponse> {
    const c = this.get(req.id);
    const pids = await c.runc.ps(req.id);
    const execs = c.execs.idsByPid();
    return {
      processes: pids.map((pid) => {
        const execId = execs.get(pid);
        return {
          pid,
          info: execId
            ? { typeUrl: 'containerd.runc.v1.ProcessDetails', value: Buffer.from(ProcessDetails.encode({ execId }).finish()) }
            : undefined,
        };
      }),
    };
  }

  async pause(req: api.PauseRequest): Promise<void> {
    await this.get(req.id).pause();
  }

  async resume(req: api.ResumeRequest): Promise<void> {
    await this.get(req.id).resume();
  }

  async checkpoint(req: api.CheckpointTaskRequest): Promise<void> {
    const c = this.get(req.id);
    validatePath('checkpoint path', req.path);
    let o = CheckpointOptions.fromPartial({});
    if (req.options?.typeUrl) {
      const url = req.options.typeUrl.slice(req.options.typeUrl.lastIndexOf('/') + 1);
      // ctr sends the older containerd.linux.runc.CheckpointOptions to runtimes not named io.containerd.runc.*
      // (as for Create's options): same fields, image/work path numbers swapped.
      const codec = url === 'containerd.runc.v1.CheckpointOptions' ? CheckpointOptions : url === 'containerd.linux.runc.CheckpointOptions' ? LegacyCheckpointOptions : undefined;
      if (!codec) throw invalidArgument(`unsupported checkpoint options type ${req.options.typeUrl}`);
      try {
        o = codec.decode(req.options.value);
      } catch (err) {
        throw invalidArgument('invalid checkpoint options', err);
      }
    }
    if (o.workPath) validatePath('checkpoint work path', o.workPath);
    await c.checkpoint(req.path, o);
  }

  async kill(req: api.KillRequest): Promise<void> {
    const c = this.get(req.id);
    if (req.signal <= 0 || req.signal > 64) throw invalidArgument(`invalid signal ${req.signal}`);
    if (req.execId) c.execs.kill(c.execs.get(req.execId), req.signal);
    else await c.killInit(req.signal, req.all);
  }

  async exec(req: api.ExecProcessRequest): Promise<void> {
    const c = this.get(req.id);
    validateId('exec id', req.execId);
    if (!req.spec) throw invalidArgument('exec spec is required');
    let spec: unknown;
    try {
      spec = JSON.parse(Buffer.from(req.spec.value).toString('utf8'));
    } catch (err) {
      throw invalidArgument('exec spec is not valid JSON', err);
    }
    if (!spec || typeof spec !== 'object' || Array.isArray(spec)) throw invalidArgument('exec spec must be a JSON object');
    c.execs.add(req.execId, { stdin: req.stdin, stdout: req.stdout, stderr: req.stderr, terminal: req.terminal }, spec as Record<string, unknown>);
    this.deps.events.publish({ type: 'TaskExecAdded', event: { containerId: req.id, execId: req.execId } });
  }

  async resizePty(req: api.ResizePtyRequest): Promise<void> {
    const c = this.get(req.id);
    const p = c.process(req.execId);
    if (req.execId && (p.status === 'stopped' || p.status === 'deleted')) {
      throw new ShimError(p.status === 'deleted' ? 'NotFound' : 'FailedPrecondition', `cannot resize a ${p.status} ${p.status === 'deleted' ? 'process' : 'container'}`);
    }
    p.io?.resize(req.width & 0xffff, req.height & 0xffff);
  }

  async closeIO(req: api.CloseIORequest): Promise<void> {
    const c = this.get(req.id);
    c.process(req.execId).io?.closeStdin();
  }

  async update(req: api.UpdateTaskRequest): Promise<void> {
    const c = this.get(req.id);
    if (!req.resources) throw invalidArgument('resources are required');
    let resources: unknown;
    try {
      resources = JSON.parse(Buffer.from(req.resources.value).toString('utf8'));
    } catch (err) {
      throw invalidArgument('resources are not valid JSON (LinuxResources)', err);
    }
    if (!resources || typeof resources !== 'object' || Array.isArray(resources)) throw invalidArgument('resources must be a JSON object');
    await c.update(resources);
  }

  async wait(req: api.WaitRequest, signal: AbortSignal): Promise<api.WaitResponse> {
    const c = this.get(req.id);
    const p = c.process(req.execId);
    const exit = await abortable(p.exited, signal);
    return { exitStatus: exit.status, exitedAt: toTimestamp(exit.exitedAt) };
  }

  async stats(req: api.StatsRequest): Promise<api.StatsResponse> {
    const c = this.get(req.id);
    await c.cgroupAttached;
    if (!c.cgroup) throw notFound('cgroup does not exist');
    const s = await c.cgroup.stats();
    return { stats: { typeUrl: s.typeUrl, value: Buffer.from(s.value) } };
  }

  async connect(req: api.ConnectRequest): Promise<api.ConnectResponse> {
    const c = this.containers.get(req.id);
    return { shimPid: process.pid, taskPid: c?.init.pid ?? 0, version: '' };
  }

  /** Exits only when no container is left (and never while a task lives, whatever `now` says). */
  async shutdown(_req: api.ShutdownRequest): Promise<void> {
    if (this.size > 0) return;
    this.shuttingDown = true;
    await this.deps.onShutdown();
  }

  // ---- in-place upgrade (shim/upgrade) ------------------------------------------------------------------

  private allIO() {
    const ios = [];
    for (const c of this.containers.values()) {
      if (c.init.io) ios.push(c.init.io);
      for (const e of c.execs.all()) if (e.io) ios.push(e.io);
    }
    return ios;
  }

  /** Stops every stdio copy (nothing ends, nothing is lost); releaseIO() undoes it. */
  holdIO(): void {
    for (const io of this.allIO()) io.hold();
  }

  async ioFlushed(): Promise<void> {
    await Promise.all(this.allIO().map((io) => io.flushed()));
  }

  releaseIO(): void {
    for (const io of this.allIO()) io.release();
  }

  /** Synchronously: every container as the next image rebuilds it, or why that cannot be done now. */
  handoff(): ContainerHandoff[] | string {
    if (this.creating.size > 0) return 'a container is being created';
    if (this.shuttingDown) return 'the shim is shutting down';
    const out: ContainerHandoff[] = [];
    for (const c of this.containers.values()) {
      if (c.init.mutations.busy) return `container ${c.id} has an operation running`;
      const h = c.handoff();
      if (typeof h === 'string') return `container ${c.id}: ${h}`;
      out.push(h);
    }
    return out;
  }

  /** Rebuilds the containers handed over by the previous image (before any call is served). */
  adoptContainers(handed: readonly ContainerHandoff[]): void {
    for (const h of handed) {
      const log = this.deps.log.child({ container_id: h.id });
      const runc = new Runc(h.runc, this.deps.reaper, log);
      const c = Container.adopt(h, runc, { namespace: this.deps.namespace, reaper: this.deps.reaper, events: this.deps.events, log: this.deps.log });
      this.containers.set(h.id, c);
      const live = c.init.pid > 0 && !c.init.exit && c.init.status !== 'deleted';
      c.cgroupAttached = live ? this.attachCgroup(c) : Promise.resolve();
      log.info({ pid: c.init.pid, status: c.init.status, execs: h.execs.length }, 'container taken over from the previous shim image');
    }
  }

  notImplemented(method: string): never {
    throw notImplemented(`${method} is not implemented`);
  }

  /** Containers alive (for the daemon's lifetime rules and for tests). */
  ids(): string[] {
    return [...this.containers.keys()];
  }
}

function abortable<T>(p: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(new ShimError('Canceled', 'wait canceled'));
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(new ShimError(signal.reason?.name === 'TimeoutError' || (signal.reason as ShimError | undefined)?.kind === 'DeadlineExceeded' ? 'DeadlineExceeded' : 'Canceled', 'wait canceled'));
    signal.addEventListener('abort', onAbort, { once: true });
    p.then(
      (v) => {
        signal.removeEventListener('abort', onAbort);
        resolve(v);
      },
      (e: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(e);
      },
    );
  });
}

