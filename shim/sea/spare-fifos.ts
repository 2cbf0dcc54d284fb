/** The spares of this build and session that wait now, found synchronously (the single executable's early start path). */
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { SHIM_SOCKET_DIR } from '../platform/socket-address.js';
import { sparePrefix } from '../spare/spare-files.js';
import { processExists as isAlive } from '../../reaper/children.js';

/** FIFO path and pid of each live spare of this build started in our session (spare-files.ts says why). */
export function liveSpareFifos(dir = SHIM_SOCKET_DIR): Array<{ fifo: string; pid: number }> {
  const prefix = sparePrefix();
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return [];
  }
  const out: Array<{ fifo: string; pid: number }> = [];
  for (const name of names.sort()) {
    if (!name.startsWith(prefix)) continue;
    const digits = name.slice(prefix.length);
    if (!/^[0-9]+$/.test(digits)) continue;
    const pid = Number(digits);
    const fifo = join(dir, name);
    try {
      if (statSync(fifo).isFIFO() && isAlive(pid)) out.push({ fifo, pid });
    } catch {
      /* removed meanwhile */
    }
  }
  return out;
}
