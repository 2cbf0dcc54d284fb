/**
 * The temporary `--console-socket` (go-runc NewTempConsoleSocket): a `pty*` directory under
 * $XDG_RUNTIME_DIR (or the temp dir) with a listening unix socket `pty.sock`. runc connects during
 * create/exec and sends one message whose single SCM_RIGHTS fd is the pty master.
 */
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { ShimError, kindOf } from '../protocol/errdefs.js';
import * as sys from './sys.js';

interface HandleWithFd {
  readonly fd?: number;
}

export class ConsoleSocket {
  #connections: net.Socket[] = [];
  #waiters: Array<() => void> = [];
  #closed: Promise<void> | undefined;

  private constructor(
    readonly dir: string,
    readonly path: string,
    private readonly server: net.Server,
  ) {
    // pauseOnConnect: libuv must never read() the connection, or the control message (and the fd) is lost.
    server.on('connection', (sock: net.Socket) => {
      sock.on('error', () => undefined);
      this.#connections.push(sock);
      for (const w of this.#waiters.splice(0)) w();
    });
  }

  static async create(): Promise<ConsoleSocket> {
    const runtimeDir = process.env['XDG_RUNTIME_DIR'];
    const dir = await mkdtemp(join(runtimeDir || tmpdir(), 'pty'));
    const path = join(dir, 'pty.sock');
    const server = net.createServer({ pauseOnConnect: true });
    try {
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(path, () => {
          server.off('error', reject);
          resolve();
        });
      });
      // Sticky and world-accessible like the reference, for runtimes running as another user.
      if (runtimeDir) await chmod(path, 0o755 | 0o1000);
    } catch (err) {
      server.close();
      await rm(dir, { recursive: true, force: true });
      throw err;
    }
    server.on('error', () => undefined);
    return new ConsoleSocket(dir, path, server);
  }

  /**
   * Accepts runc's connection and returns the received pty master fd (close-on-exec). Exactly one
   * SCM_RIGHTS fd is accepted and it must be a terminal. The caller owns the returned fd.
   */
  async receiveMaster(signal: AbortSignal): Promise<number> {
    const conn = await this.#nextConnection(signal);
    try {
      const fd = (conn as unknown as { _handle?: HandleWithFd })._handle?.fd;
      if (fd === undefined || fd < 0) throw new ShimError('Internal', 'console socket connection has no fd');
      for (let delay = 1; ; delay = Math.min(delay * 2, 20)) {
        let msg: sys.ReceivedFds | undefined;
        try {
          msg = sys.recvFds(fd, 4096, 4);
        } catch (err) {
          if (sys.errnoCode(err) !== 'EAGAIN') throw new ShimError(kindOf(err), `receive console master: ${(err as Error).message}`, { cause: err });
        }
        if (msg) return validateMaster(msg);
        await sleep(delay, undefined, { signal }).catch(() => {
          throw abortError(signal);
        });
      }
    } finally {
      conn.destroy();
    }
  }

  async #nextConnection(signal: AbortSignal): Promise<net.Socket> {
    for (;;) {
      const conn = this.#connections.shift();
      if (conn) return conn;
      if (signal.aborted) throw abortError(signal);
      await new Promise<void>((resolve) => {
        const onAbort = (): void => resolve();
        signal.addEventListener('abort', onAbort, { once: true });
        this.#waiters.push(() => {
          signal.removeEventListener('abort', onAbort);
          resolve();
        });
      });
    }
  }

  /** Stops listening and removes the directory. Idempotent. */
  close(): Promise<void> {
    this.#closed ??= (async () => {
      for (const c of this.#connections.splice(0)) c.destroy();
      for (const w of this.#waiters.splice(0)) w();
      await new Promise<void>((resolve) => this.server.close(() => resolve()));
      await rm(this.dir, { recursive: true, force: true });
    })();
    return this.#closed;
  }
}

function abortError(signal: AbortSignal): ShimError {
  const timedOut = kindOf(signal.reason) === 'DeadlineExceeded';
  return new ShimError(timedOut ? 'DeadlineExceeded' : 'Canceled', `failed to retrieve console master: ${timedOut ? 'timed out' : 'canceled'}`, {
    cause: signal.reason,
  });
}

function validateMaster(msg: sys.ReceivedFds): number {
  const bad = (why: string): never => {
    for (const fd of msg.fds) sys.closeQuietly(fd);
    throw new ShimError('Internal', `failed to retrieve console master: ${why}`);
  };
  if (msg.data.length === 0 && msg.fds.length === 0) bad('runtime closed the console socket without sending a master');
  if (msg.truncated) bad('control message truncated');
  if (msg.controlMessages !== 1 || msg.fds.length !== 1) bad(`expected 1 fd in 1 control message, got ${msg.fds.length} in ${msg.controlMessages}`);
  const fd = msg.fds[0] as number;
  if (!sys.isTerminal(fd)) bad('received fd is not a terminal');
  return fd;
}
