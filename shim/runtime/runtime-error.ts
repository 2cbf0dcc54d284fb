/**
 * Error text from runc (or crun): the reference reports the `msg` of the last `"level":"error"` line of the
 * bundle's log.json, since runc's own stderr is the container's when IO is attached. Kill errors are
 * classified by text exactly as containerd's checkKillError does; containerd relies on NotFound there.
 */
import { open } from 'node:fs/promises';
import { ShimError, notFound } from '../../protocol/errdefs.js';

const TAIL_BYTES = 64 * 1024;

/** Reads the last error message from runc's JSON log, or undefined if there is none. */
export async function lastRuntimeError(logPath: string): Promise<string | undefined> {
  let fh;
  try {
    fh = await open(logPath, 'r');
  } catch {
    return undefined;
  }
  try {
    const { size } = await fh.stat();
    const len = Math.min(size, TAIL_BYTES);
    const buf = Buffer.alloc(len);
    await fh.read(buf, 0, len, size - len);
    const lines = buf.toString('utf8').split('\n');
    for (let i = lines.length - 1; i >= 0; i--) {
      const line = lines[i]!.trim();
      if (!line.startsWith('{')) continue;
      try {
        const entry = JSON.parse(line) as { level?: unknown; msg?: unknown };
        if (entry.level === 'error' && typeof entry.msg === 'string') return entry.msg;
      } catch {
        /* a partial first line of the tail */
      }
    }
    return undefined;
  } finally {
    await fh.close();
  }
}

/** A failed runtime invocation: the command's own failure text plus runc's logged error, if any. */
export class RuntimeCommandError extends Error {
  constructor(
    message: string,
    readonly exitStatus: number,
    readonly output: string,
  ) {
    super(message);
    this.name = 'RuntimeCommandError';
  }
}

/**
 * Wraps a runtime failure as the reference does: "<prefix>: <runc's logged error>" (or the command error),
 * kind Unknown unless the caller classifies it.
 */
export async function runtimeError(prefix: string, err: unknown, logPath: string): Promise<ShimError> {
  if (err instanceof ShimError) return err;
  const logged = await lastRuntimeError(logPath);
  const plain = err instanceof Error ? err.message : String(err);
  return new ShimError('Unknown', `${prefix}: ${logged ?? plain}`, { cause: err });
}

/** containerd's checkKillError: "already finished"-like texts become NotFound, which clients rely on. */
export function classifyKillError(err: unknown, logged?: string): ShimError {
  if (err instanceof ShimError) return err;
  const text = `${err instanceof Error ? err.message : String(err)} ${logged ?? ''}`;
  if (
    text.includes('os: process already finished') ||
    text.includes('container not running') ||
    text.toLowerCase().includes('no such process') ||
    (err as NodeJS.ErrnoException | undefined)?.code === 'ESRCH'
  ) {
    return notFound('process already finished', err);
  }
  if (text.includes('does not exist')) return notFound('no such container', err);
  return new ShimError('Unknown', `unknown error after kill: ${logged ?? (err instanceof Error ? err.message : String(err))}`, {
    cause: err,
  });
}
