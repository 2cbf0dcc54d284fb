/** Exit status conventions shared by the Go shim and containerd: a code, or 128 + the killing signal. */
import { constants } from 'node:os';

export interface DecodedStatus {
  /** The exit code, or 128 + signal when the process was killed by a signal. */
  readonly status: number;
  /** The signal number, only when killed by a signal. */
  readonly signal?: number;
}

/** Decodes a raw wait(2) status word (WIFEXITED / WIFSIGNALED; the core-dump bit is ignored). */
export function decodeWaitStatus(raw: number): DecodedStatus {
  const low = raw & 0x7f;
  if (low === 0) return { status: (raw >> 8) & 0xff };
  if (low !== 0x7f) return { status: 128 + low, signal: low };
  // Stopped (0x7f) is only reported with WUNTRACED, which we never pass; keep the raw stop signal visible.
  return { status: 128 + ((raw >> 8) & 0xff), signal: (raw >> 8) & 0xff };
}

/** The same convention from child_process's ('exit', code, signalName) pair. */
export function decodeChildExit(code: number | null, signal: NodeJS.Signals | null): DecodedStatus {
  if (signal) {
    const n = (constants.signals as Record<string, number | undefined>)[signal] ?? 0;
    return { status: 128 + n, signal: n };
  }
  return { status: code ?? 0 };
}
