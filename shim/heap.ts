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

/** scripts/shim-bundle.mjs SHIM_V8_FLAGS, defined by the bundler (none when run from tsc's output). */
declare const __SHIM_V8_FLAGS__: readonly string[] | undefined;

/**
 * The V8 flags of a daemon (SHIM_V8_FLAGS: no Sparkplug, a 4x interrupt budget, so that what runs once per call
 * stays interpreted instead of leaving baseline and optimized code in the heap), set once it serves, or once a
 * spare has booted. Not on node's command line: any V8 flag there makes V8 reject Node's built-in code cache
 * (as above), which cost every short-lived `delete` ~18 ms (207 vs 190 ms after a killed daemon, 12 runs).
 */
export function applyDaemonV8Flags(): void {
  for (const flag of typeof __SHIM_V8_FLAGS__ === 'undefined' ? [] : __SHIM_V8_FLAGS__) setFlagsFromString(flag);
}
