/** Files the shim reads and writes in a bundle: runc's pid files, options.json and runtime. */
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ShimError } from '../../protocol/errdefs.js';

export async function readPidFile(path: string): Promise<number> {
  const text = await readFile(path, 'utf8');
  const pid = parseInt(text.trim(), 10);
  if (!Number.isInteger(pid) || pid <= 0) throw new ShimError('Internal', `invalid pid file ${path}: ${JSON.stringify(text.slice(0, 32))}`);
  return pid;
}

/** options.json and runtime, as the reference writes them (the `delete` action reads them back). */
export async function writeBundleOptions(bundle: string, optionsJsonText: string, runtimeBinary: string): Promise<void> {
  await Promise.all([
    writeFile(join(bundle, 'options.json'), optionsJsonText, { mode: 0o600 }),
    writeFile(join(bundle, 'runtime'), runtimeBinary, { mode: 0o600 }),
  ]);
}
