/**
 * A program on a fresh pseudo-terminal of its own (node-pty), as a user's terminal would run it: what it
 * prints, typed input, waits for output and for its exit. The terminal tests run ctr (ptyCtr) or our
 * examples on it.
 */
import { spawn as ptySpawn, type IPty } from 'node-pty';
import type { Containerd } from './containerd.js';
import { waitFor } from './util.js';

/** `promise`, or undefined after `ms` (the timer is cleared either way: no pending timer keeps node alive). */
export async function within<T>(promise: Promise<T>, ms: number): Promise<T | undefined> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<undefined>((resolve) => (timer = setTimeout(resolve, ms, undefined)));
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

export class PtyTerminal {
  readonly pty: IPty;
  readonly exited: Promise<{ exitCode: number; signal?: number }>;
  #out = '';
  #done = false;

  constructor(file: string, args: string[], cols: number, rows: number) {
    this.pty = ptySpawn(file, args, { name: 'xterm', cols, rows, cwd: '/', env: { PATH: process.env.PATH ?? '/usr/bin:/bin', TERM: 'xterm' } });
    this.pty.onData((d) => (this.#out += d));
    this.exited = new Promise((resolve) =>
      this.pty.onExit((e) => {
        this.#done = true;
        resolve(e);
      }),
    );
  }

  /** Everything received, line ends as \n (the container's tty and this terminal each add a \r). */
  text(): string {
    return this.#out.replace(/\r+\n/g, '\n');
  }

  /** Everything received, as received. */
  raw(): string {
    return this.#out;
  }

  write(s: string): void {
    this.pty.write(s);
  }

  /** Waits until the output (from `from` on) matches; the error carries the output's tail. */
  async expect(re: RegExp, what: string, from = 0, timeoutMs = 30_000): Promise<RegExpMatchArray> {
    return waitFor(() => this.text().slice(from).match(re) ?? undefined, timeoutMs, what).catch((err: Error) => {
      throw new Error(`${err.message}; output so far: ${JSON.stringify(this.text().slice(-400))}`);
    });
  }

  async exitCode(timeoutMs = 30_000): Promise<number | undefined> {
    return (await within(this.exited, timeoutMs))?.exitCode;
  }

  async kill(): Promise<void> {
    if (this.#done) return;
    this.pty.kill('SIGKILL');
    await within(this.exited, 5000);
  }
}

/** ctr of `cd` on a fresh pseudo-terminal: the client terminal a user would have. */
export function ptyCtr(cd: Containerd, args: string[], cols = 100, rows = 40): PtyTerminal {
  return new PtyTerminal(cd.binaries.ctr, ['--address', cd.address, '--namespace', cd.namespace, ...args], cols, rows);
}
