// The guest files' tty exec case: ctr on a pseudo-terminal (test/harness/pty-terminal.ts), with the guest's
// slower timings (under TCG everything is 10-15x slower than on the host).
import type { PtyTerminal } from '../../harness/pty-terminal.js';
import { waitFor } from '../../harness/util.js';

export const PTY_SLOW = 120_000;

/**
 * Types `command` until what it prints (the first group of `re`) is `want`: ctr sends the first ResizePty only
 * after Start, so the first answers can still show a 0x0 terminal.
 */
export async function typeUntil(c: PtyTerminal, command: string, re: RegExp, want: string): Promise<void> {
  let last: string | undefined;
  await waitFor(
    async () => {
      const from = c.text().length;
      c.write(`${command}\r`);
      // A command typed while ctr was still setting up its terminal can be lost: typed again after 5 s.
      last = (await c.expect(re, `an answer to ${command}`, from, 5_000).catch(() => undefined))?.[1];
      return last === want || undefined;
    },
    PTY_SLOW,
    `${command} printing ${want} (last: ${last})`,
  );
}
