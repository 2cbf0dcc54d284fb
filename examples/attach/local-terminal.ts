/**
 * The user's terminal: raw mode while attached to a process that has a tty (every key, ctrl-c included, goes to
 * the process, whose own tty does the echoing and line editing), and always put back as it was before we exit.
 */
export interface LocalTerminal {
  /** Columns and rows of our terminal, or undefined when stdout is not a terminal. */
  size(): { cols: number; rows: number } | undefined;
  /** Calls `listener` after each SIGWINCH that changed our size (Node re-reads the size on SIGWINCH). */
  onResize(listener: () => void): void;
  /** Leaves raw mode; idempotent, safe to call from exit paths. */
  restore(): void;
}

export function openLocalTerminal(raw: boolean): LocalTerminal {
  const stdin = process.stdin;
  const stdout = process.stdout;
  const wasRaw = stdin.isTTY ? stdin.isRaw : false;
  const madeRaw = raw && stdin.isTTY && !wasRaw;
  if (madeRaw) stdin.setRawMode(true);
  let restored = false;
  return {
    size: () => (stdout.isTTY && stdout.columns > 0 ? { cols: stdout.columns, rows: stdout.rows } : undefined),
    onResize: (listener) => {
      if (stdout.isTTY) stdout.on('resize', listener);
    },
    restore: () => {
      if (restored) return;
      restored = true;
      if (madeRaw) stdin.setRawMode(false);
    },
  };
}
