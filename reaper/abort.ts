/** Errors for aborted waits and runs: Canceled, or DeadlineExceeded for AbortSignal.timeout(). */
import { ShimError, kindOf } from '../protocol/errdefs.js';

export function abortError(what: string, signal: AbortSignal): ShimError {
  const reason: unknown = signal.reason;
  const kind = kindOf(reason);
  return new ShimError(kind, `${what}: ${kind === 'DeadlineExceeded' ? 'timed out' : 'canceled'}`, { cause: reason });
}
