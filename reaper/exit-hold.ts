/**
 * Exits that nobody was waiting for yet, kept for a later watch(pid): a container's init can exit before
 * `runc create` has returned and the shim has read its pid file. Bounded in count and age so unknown
 * orphans (daemonized grandchildren in a shared pid namespace) cost nothing in the long run.
 */
import type { Exit } from './types.js';

export type DropReason = 'expired' | 'overflow' | 'replaced';

export class ExitHold {
  // Map iteration order is insertion order, so the first entry is always the oldest.
  private readonly exits = new Map<number, Exit>();
  private dropCount = 0;

  constructor(
    private readonly maxCount: number,
    private readonly maxAgeMs: number,
    private readonly onDrop: (exit: Exit, reason: DropReason) => void,
  ) {}

  get size(): number {
    return this.exits.size;
  }

  get dropped(): number {
    return this.dropCount;
  }

  put(exit: Exit): void {
    this.prune(exit.at.getTime());
    const stale = this.exits.get(exit.pid);
    if (stale) {
      // The pid was reused after an unclaimed exit: the newer exit is the one a watcher can mean.
      this.exits.delete(exit.pid);
      this.drop(stale, 'replaced');
    }
    if (this.maxCount <= 0) {
      this.drop(exit, 'overflow');
      return;
    }
    while (this.exits.size >= this.maxCount) {
      const oldest = this.exits.values().next().value as Exit;
      this.exits.delete(oldest.pid);
      this.drop(oldest, 'overflow');
    }
    this.exits.set(exit.pid, exit);
  }

  /** Removes and returns the held exit of `pid`, if any (each exit is handed out once). */
  take(pid: number, now = Date.now()): Exit | undefined {
    this.prune(now);
    const exit = this.exits.get(pid);
    if (exit) this.exits.delete(pid);
    return exit;
  }

  /** Drops exits older than maxAgeMs. */
  prune(now = Date.now()): void {
    for (const exit of this.exits.values()) {
      if (now - exit.at.getTime() < this.maxAgeMs) break;
      this.exits.delete(exit.pid);
      this.drop(exit, 'expired');
    }
  }

  /** Every held exit, oldest first (nothing is removed). */
  all(): Exit[] {
    return [...this.exits.values()];
  }

  clear(): void {
    this.exits.clear();
  }

  private drop(exit: Exit, reason: DropReason): void {
    this.dropCount++;
    this.onDrop(exit, reason);
  }
}
