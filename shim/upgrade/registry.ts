/**
 * Where `upgrade` finds the daemons of this host: each serving daemon keeps a file named after its pid in
 * /run/containerd-shim-ts/daemons (tmpfs: gone at reboot, as the daemons), holding its socket address.
 * Stale files (a daemon killed with SIGKILL) are recognised by their pid and removed by whoever reads them.
 */
import { mkdir, readdir, readFile, rename, unlink, writeFile } from 'node:fs/promises';
import { unlinkSync } from 'node:fs';
import { join } from 'node:path';
import { processExists } from '../../reaper/children.js';

export const REGISTRY_DIR = process.env.CONTAINERD_SHIM_TS_REGISTRY ?? '/run/containerd-shim-ts/daemons';

export interface RegisteredDaemon {
  readonly pid: number;
  /** unix://… */
  readonly socket: string;
}

export async function registerDaemon(socket: string, dir = REGISTRY_DIR): Promise<void> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const file = join(dir, String(process.pid));
  await writeFile(`${file}.tmp`, JSON.stringify({ pid: process.pid, socket }), { mode: 0o600 });
  await rename(`${file}.tmp`, file);
}

/** Synchronous: called on the way out (process exit). */
export function unregisterDaemon(dir = REGISTRY_DIR): void {
  try {
    unlinkSync(join(dir, String(process.pid)));
  } catch {
    /* never registered, or already gone */
  }
}

export async function listDaemons(dir = REGISTRY_DIR): Promise<RegisteredDaemon[]> {
  const names = await readdir(dir).catch(() => [] as string[]);
  const out: RegisteredDaemon[] = [];
  for (const name of names) {
    if (!/^\d+$/.test(name)) continue;
    const pid = Number(name);
    if (!processExists(pid)) {
      await unlink(join(dir, name)).catch(() => undefined);
      continue;
    }
    try {
      const entry = JSON.parse(await readFile(join(dir, name), 'utf8')) as RegisteredDaemon;
      if (entry.pid === pid && typeof entry.socket === 'string') out.push(entry);
    } catch {
      /* being rewritten, or not ours */
    }
  }
  return out.sort((a, b) => a.pid - b.pid);
}
