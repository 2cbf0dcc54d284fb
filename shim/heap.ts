/**
 * Holds the daemon's young generation at the size it has after start-up. V8 doubles new space (up to 16 MiB
 * semi-spaces) whenever many objects survive a scavenge, as in a burst of Exec calls, and keeps it: 1000 exec
 * cycles took the daemon's private memory from 18 to 44 MiB, 23 MiB with this (and 14 MiB after 15 s idle;
 * throughput unchanged). `--max-semi-space-size` on the command line would cap it too, but any heap flag there
 * makes V8 reject Node's built-in code cache and costs 30–50 ms per daemon start (measured); the growth factor
 * is read at each growth, so setting it once serving costs nothing.
 */
import { setFlagsFromString } from 'node:v8';

export function holdYoungGeneration(): void {
  setFlagsFromString('--semi-space-growth-factor=1');
}
