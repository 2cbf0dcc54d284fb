/**
 * Drives the OCI runtime binary (runc, or crun through Options.binary_name) with the reference's exact
 * command lines (shim-v2-protocol.md §6). Argument building is pure; running goes through the reaper so
 * that runc's exit status is never stolen by the subreaper's catch-all collection.
 */
import { writeSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { collect, drained } from '../../reaper/output.js';
import type { Logger } from 'pino';
import type { Exit, Reaper, SpawnOptions } from '../../reaper/reaper.js';
import { sleep } from '../sync.js';
import { closeQuietly, pipe, setNonBlocking } from '../../io/sys.js';
import { RuntimeCommandError, classifyKillError, lastRuntimeError, runtimeError } from './runtime-error.js';

export const DEFAULT_RUNC_ROOT = '/run/containerd/runc';
const MAX_CAPTURE = 1024 * 1024;
/** How long the output of an exited runtime is awaited (reaper/output.ts drained). */
const OUTPUT_DRAIN_MS = 2000;

export interface RuncConfig {
  /** Executable: Options.binary_name or "runc". */
  readonly binary: string;
  /** --root: <Options.root or /run/containerd/runc>/<namespace>. */
  readonly root: string;
  /** --log: <bundle>/log.json. */
  readonly logPath: string;
  readonly systemdCgroup: boolean;
  readonly criuPath?: string;
}

export interface CreateArgs {
  readonly bundle: string;
  readonly pidFile: string;
  readonly consoleSocket?: string;
  readonly noPivot?: boolean;
  readonly noNewKeyring?: boolean;
}

export interface ExecArgs {
  readonly processSpecPath: string;
  readonly pidFile: string;
  readonly consoleSocket?: string;
}

export interface RestoreArgs extends CreateArgs {
  readonly imagePath: string;
  readonly workPath: string;
  readonly parentPath?: string;
}

export interface CheckpointArgs {
  readonly imagePath: string;
  readonly workPath: string;
  readonly leaveRunning: boolean;
  readonly openTcp?: boolean;
  readonly externalUnixSockets?: boolean;
  readonly terminal?: boolean;
  readonly fileLocks?: boolean;
  readonly emptyNamespaces?: readonly string[];
}

/** How the runtime's own stdio is wired: fds (the container's pipes) and a hook run right after spawn. */
export interface RuntimeIo {
  readonly stdio: Array<'ignore' | 'pipe' | number>;
  readonly afterSpawn?: () => void;
}

/** Pure: the global flags in the reference's order. */
export function globalArgs(cfg: RuncConfig): string[] {
  const args = ['--root', cfg.root, '--log', cfg.logPath, '--log-format', 'json'];
  if (cfg.criuPath) args.push('--criu', cfg.criuPath);
  if (cfg.systemdCgroup) args.push('--systemd-cgroup');
  return args;
}

export function createArgs(id: string, a: CreateArgs): string[] {
  const args = ['create', '--bundle', a.bundle, '--pid-file', a.pidFile];
  if (a.consoleSocket) args.push('--console-socket', a.consoleSocket);
  if (a.noPivot) args.push('--no-pivot');
  if (a.noNewKeyring) args.push('--no-new-keyring');
  args.push(id);
  return args;
}

export function restoreArgs(id: string, a: RestoreArgs): string[] {
  const args = ['restore', '--image-path', a.imagePath, '--work-path', a.workPath];
  if (a.parentPath) args.push('--parent-path', a.parentPath);
  args.push('--detach', '--pid-file', a.pidFile);
  if (a.consoleSocket) args.push('--console-socket', a.consoleSocket);
  if (a.noPivot) args.push('--no-pivot');
  args.push('-no-subreaper', '--bundle', a.bundle, id);
  return args;
}

export function execArgs(id: string, a: ExecArgs): string[] {
  const args = ['exec', '--process', a.processSpecPath];
  if (a.consoleSocket) args.push('--console-socket', a.consoleSocket);
  args.push('--detach', '--pid-file', a.pidFile, id);
  return args;
}

export function checkpointArgs(id: string, a: CheckpointArgs): string[] {
  const args = ['checkpoint', '--image-path', a.imagePath, '--work-path', a.workPath];
  if (a.openTcp) args.push('--tcp-established');
  if (a.externalUnixSockets) args.push('--ext-unix-sk');
  if (a.terminal) args.push('--shell-job');
  if (a.fileLocks) args.push('--file-locks');
  for (const ns of a.emptyNamespaces ?? []) args.push('--empty-ns', ns);
  if (a.leaveRunning) args.push('--leave-running');
  args.push(id);
  return args;
}

export function killArgs(id: string, signal: number, all: boolean): string[] {
  return all ? ['kill', '--all', id, String(signal)] : ['kill', id, String(signal)];
}

/**
 * The read end of a pipe already holding all of `data` and closed for writing, or undefined when it does not
 * fit at once (the pipe is non-blocking for the write: never a blocked event loop).
 */
export function specInPipe(data: Buffer): number | undefined {
  let fds: [number, number];
  try {
    fds = pipe();
  } catch {
    return undefined;
  }
  const [r, w] = fds;
  try {
    setNonBlocking(w, true);
    if (writeSync(w, data) === data.length) return r;
  } catch {
    /* EAGAIN: bigger than the pipe */
  } finally {
    closeQuietly(w);
  }
  closeQuietly(r);
  return undefined;
}

/**
 * Runtime commands that must not outlive the daemon: those that start processes in the container. A `create`
 * finishing after containerd's clean-up (`delete`: runc delete --force) would leave a created container nobody
 * manages. The daemon kills them when it exits (Reaper.killDependents), and `delete` after a killed daemon
 * kills the ones it left (leftover-calls.ts), instead of the reference's parent-death signal (ours would cost
 * a `setpriv` exec, 2-3 ms a call; CONTAINERD_SHIM_TS_PDEATHSIG=setpriv adds it). The others (start, kill,
 * delete, pause, resume, update, ps, checkpoint) are harmless to finish, and containerd's clean-up after a
 * dead daemon deletes the container either way.
 */
const DIE_WITH_DAEMON = new Set(['create', 'restore', 'exec', 'run']);

/** How often Pause runs `runc pause` when runc could not freeze the cgroup in time. */
export const PAUSE_ATTEMPTS = 3;

export class Runc {
  constructor(
    readonly cfg: RuncConfig,
    private readonly reaper: Reaper,
    private readonly log: Logger,
  ) {}

  /** Runs one invocation; resolves with its stdout, rejects with a RuntimeCommandError on failure. */
  async run(
    args: readonly string[],
    opts: { io?: RuntimeIo; input?: string | Uint8Array; signal?: AbortSignal; cwd?: string } = {},
  ): Promise<Buffer> {
    const full = [...globalArgs(this.cfg), ...args];
    this.log.debug({ argv: [this.cfg.binary, ...full] }, 'runtime invocation');
    const stdio = opts.io?.stdio ?? [opts.input !== undefined ? 'pipe' : 'ignore', 'pipe', 'pipe'];
    const spawnOpts: SpawnOptions = {
      stdio,
      env: runtimeEnv(process.env),
      parentDeathSignal: DIE_WITH_DAEMON.has(args[0] ?? ''),
      ...(opts.input !== undefined ? { input: opts.input } : {}),
      ...(opts.signal ? { signal: opts.signal } : {}),
      ...(opts.cwd ? { cwd: opts.cwd } : {}),
    };
    const child = this.reaper.spawn(this.cfg.binary, full, spawnOpts);
    opts.io?.afterSpawn?.();
    const out = collect(child.stdout, MAX_CAPTURE);
    const err = collect(child.stderr, MAX_CAPTURE);
    const began = performance.now();
    const exit: Exit = await child.exited;
    await drained([out, err], [child.stdout, child.stderr], OUTPUT_DRAIN_MS);
    this.log.debug({ subcommand: args[0], status: exit.status, duration_ms: Math.round(performance.now() - began) }, 'runtime exited');
    const stdout = out.buffer();
    if (exit.status !== 0) {
      const combined = Buffer.concat([stdout, err.buffer()]).toString('utf8').trim();
      const captured = stdio[1] === 'pipe' || stdio[2] === 'pipe';
      const message = captured && combined
        ? `${this.cfg.binary} did not terminate successfully: exit status ${exit.status}: ${combined}`
        : `${this.cfg.binary} did not terminate successfully: exit status ${exit.status}`;
      throw new RuntimeCommandError(message, exit.status, combined);
    }
    return stdout;
  }

  async create(id: string, a: CreateArgs, io: RuntimeIo, signal?: AbortSignal): Promise<void> {
    try {
      await this.run(createArgs(id, a), { io, ...(signal ? { signal } : {}) });
    } catch (err) {
      throw await runtimeError('OCI runtime create failed', err, this.cfg.logPath);
    }
  }

  async restore(id: string, a: RestoreArgs, io: RuntimeIo): Promise<void> {
    try {
      await this.run(restoreArgs(id, a), { io });
    } catch (err) {
      throw await runtimeError('OCI runtime restore failed', err, this.cfg.logPath);
    }
  }

  async start(id: string): Promise<void> {
    try {
      await this.run(['start', id]);
    } catch (err) {
      throw await runtimeError('OCI runtime start failed', err, this.cfg.logPath);
    }
  }

  /**
   * `runc exec --detach`. The process spec goes through a pipe runc reads as `/proc/self/fd/N` (runc only
   * opens and decodes the file it is given): no temp dir to make, write and remove around every exec, which
   * were five thread-pool round trips on the Start path. A spec that does not fit the pipe at once goes
   * through a private temp file as before.
   */
  async exec(id: string, processSpec: unknown, pidFile: string, consoleSocket: string | undefined, io: RuntimeIo): Promise<void> {
    const spec = Buffer.from(JSON.stringify(processSpec));
    const specFd = specInPipe(spec);
    if (specFd !== undefined) {
      // Closed exactly once: a number closed twice may by then be another descriptor of ours.
      let open = true;
      const release = (): void => {
        if (open) closeQuietly(specFd);
        open = false;
      };
      const fdInChild = io.stdio.length;
      try {
        await this.run(execArgs(id, { processSpecPath: `/proc/self/fd/${fdInChild}`, pidFile, ...(consoleSocket ? { consoleSocket } : {}) }), {
          io: {
            stdio: [...io.stdio, specFd],
            afterSpawn: () => {
              release(); // runc has its own copy
              io.afterSpawn?.();
            },
          },
        });
      } catch (err) {
        throw await runtimeError('OCI runtime exec failed', err, this.cfg.logPath);
      } finally {
        release(); // spawn failed before afterSpawn
      }
      return;
    }
    const dir = await mkdtemp(join(process.env.XDG_RUNTIME_DIR || tmpdir(), 'runc-process'));
    const specPath = join(dir, 'process.json');
    try {
      await writeFile(specPath, JSON.stringify(processSpec), { mode: 0o600 });
      await this.run(execArgs(id, { processSpecPath: specPath, pidFile, ...(consoleSocket ? { consoleSocket } : {}) }), { io });
    } catch (err) {
      throw await runtimeError('OCI runtime exec failed', err, this.cfg.logPath);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }

  async kill(id: string, signal: number, all: boolean): Promise<void> {
    try {
      await this.run(killArgs(id, signal, all));
    } catch (err) {
      throw classifyKillError(err, await lastRuntimeError(this.cfg.logPath));
    }
  }

  /** `runc delete [--force]`; "does not exist" is success (normal after checkpoint --exit or a dead shim). */
  async delete(id: string, force: boolean): Promise<void> {
    try {
      await this.run(force ? ['delete', '--force', id] : ['delete', id]);
    } catch (err) {
      const logged = await lastRuntimeError(this.cfg.logPath);
      const text = `${err instanceof Error ? err.message : ''} ${logged ?? ''}`;
      if (text.includes('does not exist') || text.includes('not exist')) return;
      throw await runtimeError('failed to delete task', err, this.cfg.logPath);
    }
  }

  /**
   * On cgroup v1 runc gives up freezing after a bounded number of tries ("unable to freeze": tasks still
   * FREEZING, seen on a loaded host), thaws the cgroup and fails; runc's maintainers leave the retry to the
   * caller (opencontainers/runc#4388), so a pause is attempted up to PAUSE_ATTEMPTS times.
   */
  async pause(id: string): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      try {
        await this.run(['pause', id]);
        return;
      } catch (err) {
        const failure = await runtimeError('OCI runtime pause failed', err, this.cfg.logPath);
        if (attempt >= PAUSE_ATTEMPTS || !failure.message.includes('unable to freeze')) throw failure;
        this.log.warn({ container_id: id, attempt }, 'runc could not freeze the container; pausing again');
        await sleep(100 * attempt);
      }
    }
  }

  async resume(id: string): Promise<void> {
    try {
      await this.run(['resume', id]);
    } catch (err) {
      throw await runtimeError('OCI runtime resume failed', err, this.cfg.logPath);
    }
  }

  async ps(id: string): Promise<number[]> {
    let out: Buffer;
    try {
      out = await this.run(['ps', '--format', 'json', id]);
    } catch (err) {
      throw await runtimeError('failed to list processes', err, this.cfg.logPath);
    }
    const parsed: unknown = JSON.parse(out.toString('utf8') || '[]');
    return Array.isArray(parsed) ? parsed.filter((p): p is number => typeof p === 'number') : [];
  }

  /**
   * `runc update --resources -`, the resources on stdin. stdin is a pipe, as the reference's (Go's os.Pipe):
   * crun opens `/dev/stdin`, which fails with ENXIO on the socket pair Node's 'pipe' stdio would be.
   */
  async update(id: string, resourcesJson: string): Promise<void> {
    const data = Buffer.from(resourcesJson);
    const stdinFd = specInPipe(data);
    let open = stdinFd !== undefined;
    const release = (): void => {
      if (open) closeQuietly(stdinFd!);
      open = false;
    };
    try {
      if (stdinFd !== undefined) {
        await this.run(['update', '--resources', '-', id], { io: { stdio: [stdinFd, 'pipe', 'pipe'], afterSpawn: release } });
      } else {
        // Larger than a pipe holds at once (never seen: resources are a few hundred bytes).
        await this.run(['update', '--resources', '-', id], { input: data });
      }
    } catch (err) {
      throw await runtimeError('OCI runtime update failed', err, this.cfg.logPath);
    } finally {
      release();
    }
  }

  async checkpoint(id: string, a: CheckpointArgs): Promise<void> {
    await this.run(checkpointArgs(id, a));
  }
}

/** runc gets the shim's environment minus NOTIFY_SOCKET (as go-runc). */
export function runtimeEnv(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const out = { ...env };
  delete out.NOTIFY_SOCKET;
  return out;
}
