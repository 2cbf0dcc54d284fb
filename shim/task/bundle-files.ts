/**
 * Files the shim reads and writes in a bundle: runc's pid files, options.json and runtime.
 *
 * Synchronously, on purpose: the bundle is in containerd's state dir, local by necessity (it holds the
 * rootfs mount, sockets and FIFOs; a tmpfs under /run in a standard install), and these files are a few
 * bytes. A read through fs/promises is open, fstat, read and close, each a threadpool round trip with two
 * thread wake-ups (0.1-1 ms each on a busy 2-core VM); a synchronous read is a few microseconds.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ShimError } from '../../protocol/errdefs.js';

export async function readPidFile(path: string): Promise<number> {
  const text = readFileSync(path, 'utf8');
  const pid = parseInt(text.trim(), 10);
  if (!Number.isInteger(pid) || pid <= 0) throw new ShimError('Internal', `invalid pid file ${path}: ${JSON.stringify(text.slice(0, 32))}`);
  return pid;
}

/** options.json and runtime, as the reference writes them (the `delete` action reads them back). */
export async function writeBundleOptions(bundle: string, optionsJsonText: string, runtimeBinary: string): Promise<void> {
  writeFileSync(join(bundle, 'options.json'), optionsJsonText, { mode: 0o600 });
  writeFileSync(join(bundle, 'runtime'), runtimeBinary, { mode: 0o600 });
}
