import { readFile } from 'node:fs/promises';

/**
 * Set by the single executable's early `start` (shim/sea/entry.ts) when it read stdin for a spare that did
 * not take the start: the file in the bundle that holds what stdin held.
 */
export const SAVED_OPTIONS_ENV = 'CONTAINERD_SHIM_TS_SAVED_OPTIONS';

/** All of stdin (runtime options for `start` and `-info`); empty for a terminal. */
export async function readStdin(): Promise<Buffer> {
  const saved = process.env[SAVED_OPTIONS_ENV];
  if (saved) {
    delete process.env[SAVED_OPTIONS_ENV]; // not the daemon's: it must not read it again
    return readFile(saved);
  }
  if (process.stdin.isTTY) return Buffer.alloc(0);
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}
