// ctr on a pseudo-terminal (node-pty), as a user's terminal runs it: for the guest files' tty exec case.
import { spawn as ptySpawn, type IPty } from 'node-pty';
import type { Containerd } from '../../harness/containerd.js';
import { waitFor } from '../../harness/util.js';

/** Under TCG everything is 10-15x slower than on the host. */
const SLOW = 120_000;

/** ctr on a fresh pseudo-terminal, as a user's terminal. */
export class PtyCtr {
  readonly pty: IPty;
  #out = '';
  #done = false;
  readonly exited: Promise<{ exitCode: number }>;
  constructor(cd: Containerd, args: string[], cols: number, rows: number) {
    this.pty = ptySpawn(cd.binaries.ctr, ['--address', cd.address, '--namespace', cd.namespace, ...args], {
      name: 'xterm',
      cols,
      rows,
      cwd: '/',
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', TERM: 'xterm' },
    });
    this.pty.onData((d) => (this.#out += d));
    this.exited = new Promise((resolve) =>
      this.pty.onExit((e) => {
        this.#done = true;
        resolve(e);
      }),
    );
  }
  text(): string {
    return this.#out.replace(/\r+\n/g, '\n');
  }
  write(s: string): void {
    this.pty.write(s);
  }
  expect(re: RegExp, what: string, from = 0, timeoutMs = SLOW): Promise<RegExpMatchArray> {
    return waitFor(() => this.text().slice(from).match(re) ?? undefined, timeoutMs, `${what}; output so far: ${JSON.stringify(this.text().slice(-300))}`);
  }
  /**
   * ctr's exit code, or undefined if it has not exited within `timeoutMs`. The timer is cleared: a pending one
   * would keep the guest's test process, and so the VM, alive for its whole length after the last test.
   */
  async exitCode(timeoutMs = SLOW): Promise<number | undefined> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<undefined>((resolve) => (timer = setTimeout(() => resolve(undefined), timeoutMs)));
    try {
      return (await Promise.race([this.exited, timeout]))?.exitCode;
    } finally {
      clearTimeout(timer);
    }
  }
  async kill(): Promise<void> {
    if (this.#done) return;
    this.pty.kill('SIGKILL');
    await this.exitCode(5000);
  }
}

/**
 * Types `command` until what it prints (the first group of `re`) is `want`: ctr sends the first ResizePty only
 * after Start, so the first answers can still show a 0x0 terminal.
 */
export async function typeUntil(c: PtyCtr, command: string, re: RegExp, want: string): Promise<void> {
  let last: string | undefined;
  await waitFor(
    async () => {
      const from = c.text().length;
      c.write(`${command}\r`);
      // A command typed while ctr was still setting up its terminal can be lost: typed again after 5 s.
      last = (await c.expect(re, `an answer to ${command}`, from, 5_000).catch(() => undefined))?.[1];
      return last === want || undefined;
    },
    SLOW,
    `${command} printing ${want} (last: ${last})`,
  );
}
