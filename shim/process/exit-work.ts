/**
 * Exit handling that is under way (an exit was reaped and is being drained, ordered and published). An
 * in-place upgrade waits for it to finish before the daemon's state is taken: a half-handled exit has no
 * form in that state.
 */
const running = new Set<Promise<unknown>>();

export function trackExitWork<T>(work: Promise<T>): Promise<T> {
  running.add(work);
  const forget = (): void => void running.delete(work);
  work.then(forget, forget);
  return work;
}

/** Resolves once no exit handling is running (including work that starts while waiting). */
export async function exitWorkSettled(): Promise<void> {
  while (running.size > 0) await Promise.allSettled([...running]);
}
