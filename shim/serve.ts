/**
 * The shim daemon: subreaper, Task API over ttrpc on the socket `start` handed us (fd 3, or -socket), events
 * to containerd. Lives while it serves a container; exits after Shutdown finds none, or on SIGTERM/SIGINT.
 */
import { readFile, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { TtrpcServer, type ListenTarget } from '../protocol/ttrpc/server.js';
import { Reaper } from '../reaper/reaper.js';
import { EventPublisher } from './events/publisher.js';
import type { ShimFlags } from './flags.js';
import { applyDaemonV8Flags, holdYoungGeneration } from './heap.js';
import { IdleTrimmer } from './idle-trim.js';
import { createDaemonLogger, flushLogger } from './log.js';
import { socketPath } from './platform/socket-address.js';
import { TaskService } from './task/service.js';
import { registerTaskService } from './task/task-api.js';
import { SHIM_REVISION, SHIM_VERSION } from './version.js';
import { ADMIN_SERVICE, adminMethods } from './upgrade/admin.js';
import type { UpgradeReport } from './upgrade/messages.js';
import { registerDaemon, unregisterDaemon } from './upgrade/registry.js';
import { preserveOwnCode } from './upgrade/rollback.js';
import { IN_SEA } from './sea/self.js';
import type { DaemonHandoff } from './upgrade/state.js';

/** On SIGTERM/SIGINT (someone wants us gone now): queued events get this long. */
const SIGNAL_DRAIN_MS = 5000;
/**
 * After Shutdown with no container left, the socket is released at once (containerd sees the shim gone) but the
 * process stays until its queued events are delivered, at most this long: a task created and deleted while
 * containerd's events endpoint was unreachable still has its events reported. Override with
 * CONTAINERD_SHIM_TS_EVENT_DRAIN_TIMEOUT (seconds).
 */
const DEFAULT_SHUTDOWN_DRAIN_S = 60;

function secondsFromEnv(value: string | undefined, fallback: number): number {
  const v = Number(value);
  return (Number.isFinite(v) && v > 0 ? v : fallback) * 1000;
}
/**
 * The orphan rule: a daemon that serves no container and has had no client connection for this long exits
 * (containerd died during Create and never came back, or `start` succeeded but containerd gave up). It never
 * exits while a container lives. Override with CONTAINERD_SHIM_TS_ORPHAN_TIMEOUT (seconds).
 */
const DEFAULT_ORPHAN_TIMEOUT_S = 60;

function orphanTimeoutMs(env: NodeJS.ProcessEnv): number {
  return secondsFromEnv(env.CONTAINERD_SHIM_TS_ORPHAN_TIMEOUT, DEFAULT_ORPHAN_TIMEOUT_S);
}

/** A daemon whose objects are built and whose socket is not yet served: `start` (inline) listens itself. */
export interface PreparedDaemon {
  /** Listens on `target` (EADDRINUSE reaches the caller, who may find a live daemon of the group there). */
  listen(target: ListenTarget): Promise<void>;
  /** From here on the daemon serves `address`: arms the orphan rule and logs that it started. */
  serving(address: string): void;
  /** Gives up before serving (start failed): releases what was taken, exits with `code`. */
  abandon(reason: string, code: number): Promise<never>;
  /**
   * In-place upgrade, the new image: takes the containers and the socket the previous image handed over and
   * serves them; `report` answers the Upgrade call that asked for it.
   */
  adopt(state: DaemonHandoff, report: UpgradeReport): Promise<void>;
}

/**
 * Builds the daemon: logger (the bundle's `log` FIFO), reaper (we become the subreaper here), event publisher,
 * Task service and signal handlers. Everything a Create needs is loaded before the socket is served.
 */
export function prepareDaemon(flags: ShimFlags, resume?: DaemonHandoff): PreparedDaemon {
  const bundle = process.cwd();
  const log = createDaemonLogger({ bundle, namespace: flags.namespace, id: flags.id, debug: flags.debug, ...(resume ? { fd: resume.logFd } : {}) });
  // posix_spawn unless told otherwise: kept switchable to compare the two in the benchmark (reaper.ts).
  // No setpriv in front of runc create/exec (2-3 ms each): exit() kills the calls in flight, and `delete` after
  // a killed daemon kills what it left (runtime/leftover-calls.ts). CONTAINERD_SHIM_TS_PDEATHSIG=setpriv adds it.
  const reaper = Reaper.start({
    logger: log,
    spawner: process.env.CONTAINERD_SHIM_TS_SPAWN === 'libuv' ? 'libuv' : 'posix',
    ...(process.env.CONTAINERD_SHIM_TS_PDEATHSIG === 'setpriv' ? {} : { setpriv: null }),
  });
  // Exits the previous image had collected and nobody claimed yet (the processes that ended during the
  // switch are still zombies: this reaper collects them itself).
  if (resume) reaper.adoptExits(resume.heldExits.map((e) => ({ pid: e.pid, status: e.status, ...(e.signal ? { signal: e.signal } : {}), at: new Date(e.at) })));
  const ttrpcAddress = resume?.ttrpcAddress || process.env.TTRPC_ADDRESS || `${flags.address}.ttrpc`;
  const publisher = new EventPublisher(ttrpcAddress, flags.namespace, log);
  // Undelivered events of the previous image go first, in their order.
  if (resume) publisher.restore(resume.events);
  const server = new TtrpcServer({ logger: log });
  let address = '';

  let exiting = false;
  /** `drainMs`: how long queued events may still take; the socket is released before that wait. */
  const exit = async (reason: string, code: number, drainMs: number): Promise<never> => {
    if (exiting) return new Promise<never>(() => undefined);
    exiting = true;
    log.info({ reason, queued_events: publisher.stats.queued }, 'shim shutting down');
    reaper.killDependents(); // a runc create finishing after we are gone would leave a container unmanaged
    server.close();
    await server.shutdown({ signal: AbortSignal.timeout(2000) }).catch(() => undefined);
    const path = socketPath(address);
    if (path) await unlink(path).catch(() => undefined);
    const { undelivered } = await publisher.close(drainMs);
    reaper.stop();
    unregisterDaemon();
    log.info({ undelivered }, 'shim exited');
    flushLogger(log);
    process.exit(undelivered > 0 && code === 0 ? 1 : code);
  };

  const service = new TaskService({
    namespace: flags.namespace,
    reaper,
    events: publisher,
    log,
    // The socket goes before Shutdown is answered: containerd runs `delete` right after the answer, and its
    // fast path needs the socket gone. Then answer, then go.
    onShutdown: async () => {
      server.close();
      const path = socketPath(address);
      if (path) await unlink(path).catch(() => undefined);
      setImmediate(() => void exit('shutdown requested with no container left', 0, secondsFromEnv(process.env.CONTAINERD_SHIM_TS_EVENT_DRAIN_TIMEOUT, DEFAULT_SHUTDOWN_DRAIN_S)));
    },
  });
  const trimmer = IdleTrimmer.fromEnv(process.env, log);
  registerTaskService(server, service, log, () => trimmer.poke());
  const upgradeReport: { pending?: UpgradeReport } = {};
  server.register(ADMIN_SERVICE, adminMethods({ flags, log, reaper, publisher, server, service, ttrpcAddress, address: () => address }, upgradeReport));
  // containerd (re)connecting to us means its events endpoint is most likely back: stop waiting out the backoff.
  server.on('connection', () => publisher.kick());

  process.on('SIGHUP', () => log.info('SIGHUP ignored'));
  for (const sig of ['SIGTERM', 'SIGINT'] as const) {
    process.on(sig, () => void exit(`${sig} received`, 0, SIGNAL_DRAIN_MS));
  }
  process.on('uncaughtException', (err) => {
    // Losing the shim loses nothing on disk, but it would orphan containers: log loudly and keep serving.
    log.error({ err }, 'uncaught exception');
  });
  process.on('unhandledRejection', (err) => {
    log.error({ err }, 'unhandled rejection');
  });
  process.stdout.on('error', () => undefined);
  process.stderr.on('error', () => undefined);

  const daemon: PreparedDaemon = {
    listen: (target) => server.listen(target),
    serving(served: string): void {
      address = served;
      void registerDaemon(served).catch((err: unknown) => log.warn({ err }, 'cannot register for upgrades'));
      // This build's code is kept aside once per host, so that an upgrade away from it can roll back to it
      // even after a new install replaced the files (one stat per daemon once kept).
      if (!IN_SEA) {
        setTimeout(() => {
          const kept = preserveOwnCode();
          if (typeof kept === 'string') log.warn({ reason: kept }, 'this build cannot be kept for rollbacks');
        }, 2000).unref();
      }
      holdYoungGeneration();
      applyDaemonV8Flags();
      trimmer.poke(); // start-up's garbage goes once the first calls are done
      // Orphan rule: checked periodically rather than with per-event timers; cheap and never early.
      const orphanAfter = orphanTimeoutMs(process.env);
      let idleSince = Date.now();
      const orphanCheck = setInterval(() => {
        if (service.size > 0 || server.connectionCount > 0) {
          idleSince = Date.now();
        } else if (Date.now() - idleSince >= orphanAfter) {
          void exit(`no container and no client for ${Math.round(orphanAfter / 1000)}s (orphaned)`, 0, SIGNAL_DRAIN_MS);
        }
      }, Math.min(5000, Math.max(250, orphanAfter / 4)));
      orphanCheck.unref();
      log.info({ version: SHIM_VERSION, revision: SHIM_REVISION, address, ttrpc_address: ttrpcAddress, startup_ms: Math.round(performance.now()) }, 'shim started');
    },
    abandon: (reason, code) => exit(reason, code, 0),
    async adopt(state, report) {
      service.adoptContainers(state.containers);
      upgradeReport.pending = report;
      await server.adopt(state.server);
      daemon.serving(state.address);
    },
  };
  return daemon;
}

/** The daemon spawned by a `start` that listened for it: the socket is fd 3 (or -socket). */
export async function runServe(flags: ShimFlags): Promise<void> {
  const bundle = process.cwd();
  // The address file is written by `start` before we are spawned; read it now, our cwd may be deleted later.
  const address = flags.socket ? `unix://${flags.socket}` : (await readFile(join(bundle, 'address'), 'utf8').catch(() => '')).trim();
  const daemon = prepareDaemon(flags);
  await daemon.listen(flags.socket ? { path: flags.socket } : { fd: 3 });
  daemon.serving(address);
}
