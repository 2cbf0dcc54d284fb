/**
 * `containerd-shim-ts-v2 delete`: run by containerd after every teardown and after a shim died. When the
 * daemon is dead, kills the runtime calls it left running (runtime/leftover-calls.ts); kills and removes the
 * runc container if it is still there, unmounts the rootfs, removes the socket a killed daemon left (the
 * reference leaves it), and answers a DeleteResponse on stdout (exit status 137, as the reference: the
 * process was killed, or is gone with no status to report).
 */
import { readFile, stat, unlink } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { Logger } from 'pino';
import { DeleteResponse } from '../protocol/gen/containerd/runtime/v2/task/shim.js';
import { toTimestamp } from '../protocol/timestamp.js';
import type { Reaper } from '../reaper/reaper.js';
import type { ShimFlags } from './flags.js';
import { unmountAll } from './platform/mount.js';
import { socketPath } from './platform/socket-address.js';
import { isSocketLive } from './platform/socket-probe.js';
import { parseOptionsJson } from './runtime/options.js';
import { killRuntimeCalls } from './runtime/leftover-calls.js';
import { DEFAULT_RUNC_ROOT, Runc } from './runtime/runc.js';
import { validateId } from './task/validate.js';

export async function runDelete(flags: ShimFlags, reaper: Reaper, log: Logger): Promise<Uint8Array> {
  validateId('container id', flags.id);
  // As the reference: the bundle is <parent of cwd>/<id>; -bundle is only a hint containerd also passes.
  const bundle = flags.bundle || join(dirname(process.cwd()), flags.id);
  const binary = await readFile(join(bundle, 'runtime'), 'utf8'); // missing → fail, as the reference
  const options = parseOptionsJson(await readFile(join(bundle, 'options.json'), 'utf8').catch(() => '{}'));
  const runc = new Runc(
    {
      binary: binary || options.binaryName || 'runc',
      root: join(options.root || DEFAULT_RUNC_ROOT, flags.namespace),
      logPath: join(bundle, 'log.json'),
      systemdCgroup: options.systemdCgroup,
    },
    reaper,
    log,
  );
  const daemon = await probeDaemon(bundle);
  if (!daemon.live) {
    // The daemon was killed: a runc create/exec it had running must not finish after this clean-up.
    const killed = await killRuntimeCalls(join(bundle, 'log.json'));
    if (killed.length > 0) log.warn({ container_id: flags.id, pids: killed }, 'runtime calls of the dead shim killed');
  }
  await runc.delete(flags.id, true).catch((err: unknown) => log.warn({ err, container_id: flags.id }, 'runc delete --force'));
  try {
    unmountAll(join(bundle, 'rootfs'));
  } catch (err) {
    log.warn({ err, container_id: flags.id }, 'unmount rootfs');
  }
  if (daemon.stale) await removeStaleSocket(daemon.stale, log, flags.id);
  let pid = -1;
  try {
    pid = parseInt((await readFile(join(bundle, 'init.pid'), 'utf8')).trim(), 10);
    if (!Number.isInteger(pid)) pid = -1;
  } catch {
    /* no pid file: -1, as the reference */
  }
  return DeleteResponse.encode({ pid: pid >>> 0, exitStatus: 128 + 9, exitedAt: toTimestamp(new Date()) }).finish();
}

interface DaemonProbe {
  /** A daemon answers on the bundle's socket (its own, or its group's). */
  live: boolean;
  /** The socket file nobody answers on, as probed. */
  stale?: { path: string; dev: number; ino: number };
}

/** Whether the daemon of this bundle still serves: the address it wrote, connected to. */
async function probeDaemon(bundle: string): Promise<DaemonProbe> {
  const path = socketPath((await readFile(join(bundle, 'address'), 'utf8').catch(() => '')).trim());
  if (!path) return { live: false };
  const probed = await stat(path).catch(() => undefined);
  if (!probed?.isSocket()) return { live: false };
  if (await isSocketLive(path, 2000)) return { live: true };
  return { live: false, stale: { path, dev: probed.dev, ino: probed.ino } };
}

/**
 * The socket of a daemon that was killed stays in /run/containerd/s otherwise. Removed only when a connection
 * to it was refused (a live daemon of the same group keeps it) and the file is still the one probed (a `start`
 * of the group may have replaced it meanwhile).
 */
async function removeStaleSocket(probed: { path: string; dev: number; ino: number }, log: Logger, id: string): Promise<void> {
  const { path } = probed;
  const now = await stat(path).catch(() => undefined);
  if (now?.ino !== probed.ino || now.dev !== probed.dev) return;
  await unlink(path).then(
    () => log.info({ container_id: id, socket: path }, 'stale shim socket removed'),
    (err: unknown) => log.warn({ err, container_id: id, socket: path }, 'stale shim socket not removed'),
  );
}
