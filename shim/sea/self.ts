/**
 * How this program runs itself again (a daemon for `start`, a spare): as the single executable
 * (scripts/package.mjs), where process.execPath is the program and every argument is ours, or as a script run
 * by node, where the script and node's own options come first.
 */
import { isSea } from 'node:sea';

export const IN_SEA = isSea();

/** Node options of the daemons the single executable starts (the script form has them on node's command line). */
export const DAEMON_NODE_OPTIONS = '--v8-pool-size=1';

/** The file that is this program: the single executable, or the script node runs. */
export function selfPath(): string {
  return IN_SEA ? process.execPath : process.argv[1]!;
}

/** The command that runs this program again with `args`. */
export function selfCommand(args: readonly string[]): { file: string; args: string[] } {
  if (IN_SEA) return { file: process.execPath, args: [...args] };
  return { file: process.execPath, args: [...process.execArgv, process.argv[1]!, ...args] };
}
