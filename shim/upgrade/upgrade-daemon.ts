/**
 * The old image's side of an in-place upgrade: check the new build, quiesce (no request handled, calls in
 * flight answered, exit handling finished, stdio copies stopped with nothing lost, events paused), write the
 * state, clear close-on-exec on the fds it names and execve the new build in resume mode (shim/upgrade/
 * resume.ts). Any failure before the exec undoes the quiesce and the daemon serves on as before.
 */
import { constants, writeFileSync } from 'node:fs';
import { access, mkdir } from 'node:fs/promises';
import { isAbsolute, join } from 'node:path';
import type { Logger } from 'pino';
import { fdsOf } from '../../io/handoff.js';
import { ShimError } from '../../protocol/errdefs.js';
import type { TtrpcServer } from '../../protocol/ttrpc/server.js';
import type { Reaper } from '../../reaper/reaper.js';
import type { EventPublisher } from '../events/publisher.js';
import type { ShimFlags } from '../flags.js';
import { INLINE_START_ENV } from '../inline-start-env.js';
import { logDestination } from '../log.js';
import { closeAtExec, execve, keepAcrossExec } from '../platform/exec.js';
import { exitWorkSettled } from '../process/exit-work.js';
import type { TaskService } from '../task/service.js';
import { TASK_SERVICE_V2, TASK_SERVICE_V3 } from '../task/task-api.js';
import { ADMIN_SERVICE, decodeJson, type CheckResponse, type UpgradeReport } from './messages.js';
import { RESUME_ENV, ROLLBACK_ENV, ROLLED_BACK_ENV, preserveOwnCode, thisBuild } from './rollback.js';
import { STATE_FORMAT, handoffFds, type DaemonHandoff } from './state.js';

export const STATE_DIR = process.env.CONTAINERD_SHIM_TS_UPGRADE_DIR ?? '/run/containerd-shim-ts/upgrade';
/** Bounds of the quiesce: past them the upgrade is refused and the daemon serves on. */
const CALLS_MS = 10_000;
const EXITS_MS = 15_000;
const FLUSH_MS = 5_000;
const CHECK_MS = 30_000;

export interface UpgradeContext {
  readonly flags: ShimFlags;
  readonly log: Logger;
  readonly reaper: Reaper;
  readonly publisher: EventPublisher;
  readonly server: TtrpcServer;
  readonly service: TaskService;
  readonly ttrpcAddress: string;
  readonly address: () => string;
}

/** Calls that wait rather than work: handed to the next image and answered there. */
const handedOver = (service: string, method: string): boolean =>
  ((service === TASK_SERVICE_V2 || service === TASK_SERVICE_V3) && method === 'Wait') || (service === ADMIN_SERVICE && method === 'Upgrade');

function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    p,
    new Promise<T>((_, reject) => (timer = setTimeout(() => reject(new ShimError('DeadlineExceeded', `${what} took longer than ${ms} ms`)), ms))),
  ]).finally(() => clearTimeout(timer));
}

/** Runs `<binary> upgrade-check`: the build must load and resume our state format. */
async function checkBuild(ctx: UpgradeContext, binary: string): Promise<CheckResponse> {
  const env = { ...process.env };
  for (const k of [INLINE_START_ENV, RESUME_ENV, ROLLBACK_ENV, ROLLED_BACK_ENV]) delete env[k];
  const r = await ctx.reaper.run(binary, ['upgrade-check'], { env, signal: AbortSignal.timeout(CHECK_MS), cwd: '/' });
  let check: CheckResponse;
  try {
    check = decodeJson<CheckResponse>(r.stdout);
  } catch {
    throw new ShimError('FailedPrecondition', `${binary} upgrade-check did not answer (${r.stdout.toString().slice(0, 200)})`);
  }
  if (!Array.isArray(check.formats) || !check.formats.includes(STATE_FORMAT)) {
    throw new ShimError('FailedPrecondition', `${binary} (${check.build?.version}) cannot resume state format ${STATE_FORMAT}`);
  }
  return check;
}

let upgrading = false;

/**
 * Replaces this daemon's code with `binary`. Returns only when it did not happen (refused, nothing changed);
 * on success the next image answers the Upgrade call itself.
 */
export async function upgradeInPlace(ctx: UpgradeContext, binary: string): Promise<UpgradeReport> {
  const refuse = (reason: string): UpgradeReport => ({
    pid: process.pid,
    result: 'refused',
    from: thisBuild(),
    to: thisBuild(),
    containers: ctx.service.ids(),
    reason,
  });
  if (upgrading) throw new ShimError('Unavailable', 'an upgrade of this daemon is already running');
  if (!isAbsolute(binary)) throw new ShimError('InvalidArgument', `binary must be an absolute path: ${JSON.stringify(binary)}`);
  await access(binary, constants.X_OK).catch((err: Error) => {
    throw new ShimError('InvalidArgument', `binary ${binary}: ${err.message}`);
  });
  upgrading = true;
  const log = ctx.log.child({ upgrade_to: binary });
  try {
    // A file that is not a build we can move to (or fails its check) changes nothing: refused, not an error.
    let check: CheckResponse;
    try {
      check = await checkBuild(ctx, binary);
    } catch (err) {
      return refuse(err instanceof Error ? err.message : String(err));
    }
    log.info({ from: thisBuild(), to: check.build }, 'upgrade: new build checked; pausing');
    const code = preserveOwnCode();
    if (typeof code === 'string') return refuse(code);
    await mkdir(STATE_DIR, { recursive: true, mode: 0o700 });
    const statePath = join(STATE_DIR, `${process.pid}.json`);
    const pausedAt = Date.now();
    const quiesced = await quiesce(ctx).catch((err: Error) => err.message);
    if (typeof quiesced === 'string') return refuse(quiesced);
    // From here to the exec, nothing else runs: the state is taken and the process replaced in one go.
    const failed = (reason: string): UpgradeReport => {
      unquiesce(ctx);
      log.warn({ reason }, 'upgrade: refused, serving on');
      return refuse(reason);
    };
    const server = ctx.server.handoff(handedOver);
    if (typeof server === 'string') return failed(server);
    const containers = ctx.service.handoff();
    if (typeof containers === 'string') return failed(containers);
    const dest = logDestination(ctx.log);
    const base: DaemonHandoff = {
      format: STATE_FORMAT,
      from: thisBuild(),
      pid: process.pid,
      pausedAt,
      flags: ctx.flags,
      address: ctx.address(),
      ttrpcAddress: ctx.ttrpcAddress,
      logFd: dest?.fd ?? -1,
      server,
      events: ctx.publisher.handoff(),
      heldExits: ctx.reaper.heldExits().map((e) => ({ pid: e.pid, status: e.status, ...(e.signal ? { signal: e.signal } : {}), at: e.at.getTime() })),
      containers,
      rollback: code,
      keepFds: [],
    };
    const state: DaemonHandoff = { ...base, keepFds: handoffFds(base, fdsOf) };
    // Synchronous on purpose, as the exec that follows: the loop must not run between taking the state and
    // replacing the process (a small file on tmpfs).
    try {
      writeFileSync(statePath, JSON.stringify(state), { mode: 0o600 });
      for (const fd of state.keepFds) keepAcrossExec(fd);
    } catch (err) {
      return failed((err as Error).message);
    }
    log.info({ containers: containers.length, connections: server.connections.length, events: state.events.length, state: statePath }, 'upgrade: state written, executing the new build');
    dest?.flushQueued();
    const env: Record<string, string | undefined> = { ...process.env, [RESUME_ENV]: statePath, [ROLLBACK_ENV]: JSON.stringify(code.argv) };
    delete env[INLINE_START_ENV];
    delete env[ROLLED_BACK_ENV];
    // The daemon's flags stay in its command line (what ps shows); `resume` reads the rest from the state.
    const f = ctx.flags;
    const argv = [binary, '-namespace', f.namespace, '-id', f.id, '-address', f.address, ...(f.debug ? ['-debug'] : []), 'resume'];
    const errno = execve(binary, argv, env);
    for (const fd of state.keepFds) if (fd > 2) closeAtExec(fd);
    return failed(`execve ${binary}: errno ${errno}`);
  } finally {
    upgrading = false;
  }
}

/** Everything stops moving, in an order that lets what is under way finish. Rejects (undone) past a bound. */
async function quiesce(ctx: UpgradeContext): Promise<void> {
  ctx.server.hold();
  try {
    await within(ctx.server.untilAnswered(handedOver), CALLS_MS, 'answering the calls in flight');
    await within(ctx.publisher.pause(), CALLS_MS, 'the event being sent');
    ctx.reaper.pause();
    await within(exitWorkSettled(), EXITS_MS, 'handling the exits under way');
    ctx.service.holdIO();
    await within(ctx.service.ioFlushed(), FLUSH_MS, 'writing the output already read (a client that does not read?)');
    await within(ctx.server.writesFlushed(), FLUSH_MS, 'sending the replies');
    await logDestination(ctx.log)?.idle(1000);
  } catch (err) {
    unquiesce(ctx);
    throw err;
  }
}

function unquiesce(ctx: UpgradeContext): void {
  ctx.service.releaseIO();
  ctx.reaper.resume();
  ctx.publisher.resume();
  ctx.server.release();
}
