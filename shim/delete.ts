/**
 * `containerd-shim-ts-v2 delete`: run by containerd after every teardown and after a shim died. Kills and
 * removes the runc container if it is still there, unmounts the rootfs, and answers a DeleteResponse on
 * stdout (exit status 137, as the reference: the process was killed, or is gone with no status to report).
 */
import { readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { Logger } from 'pino';
import { DeleteResponse } from '../protocol/gen/containerd/runtime/v2/task/shim.js';
import { toTimestamp } from '../protocol/timestamp.js';
import type { Reaper } from '../reaper/reaper.js';
import type { ShimFlags } from './flags.js';
import { unmountAll } from './platform/mount.js';
import { parseOptionsJson } from './runtime/options.js';
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
  await runc.delete(flags.id, true).catch((err: unknown) => log.warn({ err, container_id: flags.id }, 'runc delete --force'));
  try {
    unmountAll(join(bundle, 'rootfs'));
  } catch (err) {
    log.warn({ err, container_id: flags.id }, 'unmount rootfs');
  }
  let pid = -1;
  try {
    pid = parseInt((await readFile(join(bundle, 'init.pid'), 'utf8')).trim(), 10);
    if (!Number.isInteger(pid)) pid = -1;
  } catch {
    /* no pid file: -1, as the reference */
  }
  return DeleteResponse.encode({ pid: pid >>> 0, exitStatus: 128 + 9, exitedAt: toTimestamp(new Date()) }).finish();
}
