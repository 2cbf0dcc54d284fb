/** Probing a shim's unix socket: is a daemon behind it, or is the file stale? */
import { createConnection } from 'node:net';

/**
 * Whether a live daemon listens on `path`. Only a refused connection (or a missing file) proves the file stale:
 * a full backlog (EAGAIN) or a slow answer while many `start`s run at once (a grouped burst on a loaded host)
 * still means a live daemon, and replacing its socket would split the group between two daemons.
 */
export async function isSocketLive(path: string, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const outcome = await new Promise<'yes' | 'no' | 'busy'>((resolve) => {
      const sock = createConnection({ path });
      const timer = setTimeout(() => {
        sock.destroy();
        resolve('busy');
      }, Math.max(50, deadline - Date.now()));
      sock.once('connect', () => {
        clearTimeout(timer);
        sock.destroy();
        resolve('yes');
      });
      sock.once('error', (err: NodeJS.ErrnoException) => {
        clearTimeout(timer);
        resolve(err.code === 'EAGAIN' ? 'busy' : 'no');
      });
    });
    if (outcome !== 'busy') return outcome === 'yes';
    if (Date.now() >= deadline) return true; // never refused: something is there; do not steal its path
    await new Promise((r) => setTimeout(r, 20));
  }
}
