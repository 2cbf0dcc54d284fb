/**
 * An ordered, bounded outbox for task events. The reference publisher re-queues a failed event behind newer
 * ones and drops it after ~15 s of retries, so containerd can see /tasks/exit before /tasks/start, or never
 * (containerd issues #6771, #6860). Here the head of the queue stays the head until it is delivered: retries
 * back off (100 ms doubling to 5 s, with jitter) forever, and nothing is reordered.
 *
 * Bound: `capacity` events (default 16384; a container produces a handful). Past it the oldest event that is
 * not critical (exit, delete) is dropped with an error log; if all are critical the oldest is dropped. A
 * dropped event is the only way an event is lost, and it is always logged.
 */
import type { Logger } from 'pino';
import { sleep } from '../sync.js';

export interface OutboxOptions<T> {
  readonly send: (item: T) => Promise<void>;
  readonly describe: (item: T) => string;
  readonly isCritical: (item: T) => boolean;
  readonly logger: Logger;
  readonly capacity?: number;
  readonly initialBackoffMs?: number;
  readonly maxBackoffMs?: number;
}

export class OrderedOutbox<T> {
  private readonly queue: T[] = [];
  private running = false;
  private closed = false;
  private readonly stop = new AbortController();
  /** Cuts the current backoff sleep short (kick, drain). */
  private wake = new AbortController();
  private kicked = false;
  private idleWaiters: Array<() => void> = [];
  private delivered = 0;
  private dropped = 0;
  private failures = 0;
  /** Set by pause(): no new send starts (a hand-over to another process is being prepared). */
  private paused = false;
  private stoppedWaiters: Array<() => void> = [];
  /** A pump is due on the next turn of the loop (push: see there). */
  private pumpScheduled = false;

  constructor(private readonly opts: OutboxOptions<T>) {}

  get size(): number {
    return this.queue.length;
  }

  get stats(): { delivered: number; dropped: number; queued: number; failures: number } {
    return { delivered: this.delivered, dropped: this.dropped, queued: this.queue.length, failures: this.failures };
  }

  /** Events not delivered yet, oldest first (the head may be in flight unless paused). */
  items(): readonly T[] {
    return [...this.queue];
  }

  /** Lets the send in flight finish, then sends nothing until resume(). */
  async pause(): Promise<void> {
    this.paused = true;
    if (this.running) {
      // Cut a backoff sleep short; the loop then sees `paused` and stops.
      this.kicked = true;
      this.wake.abort();
      await new Promise<void>((resolve) => this.stoppedWaiters.push(resolve));
    }
  }

  resume(): void {
    if (!this.paused) return;
    this.paused = false;
    if (!this.running && this.queue.length > 0) void this.pump();
  }

  /** Enqueue; never throws, never waits. */
  push(item: T): void {
    if (this.closed) {
      this.opts.logger.error({ event: this.opts.describe(item) }, 'event produced after the outbox closed, dropped');
      this.dropped++;
      return;
    }
    const capacity = this.opts.capacity ?? 16384;
    if (this.queue.length >= capacity) this.evictOne();
    this.queue.push(item);
    // Sent from the next turn of the loop, not from inside the call that published it: the answer to that
    // call (written a few microtasks later) then goes first, as the reference's publisher goroutine has it.
    // Written first, the event woke containerd before the answer it waits for (~0.3-0.5 ms an event here).
    if (!this.running && !this.paused && !this.pumpScheduled) {
      this.pumpScheduled = true;
      setImmediate(() => {
        this.pumpScheduled = false;
        if (!this.running && !this.paused) void this.pump();
      });
    }
  }

  private evictOne(): void {
    // Never evict the head while it may be in flight (index 0); prefer the oldest non-critical event.
    let idx = this.queue.findIndex((e, i) => i > 0 && !this.opts.isCritical(e));
    if (idx < 0) idx = this.queue.length > 1 ? 1 : 0;
    const [victim] = this.queue.splice(idx, 1);
    this.dropped++;
    if (victim !== undefined) {
      this.opts.logger.error({ event: this.opts.describe(victim) }, 'event outbox full, oldest event dropped');
    }
  }

  private async pump(): Promise<void> {
    this.running = true;
    let backoff = this.opts.initialBackoffMs ?? 100;
    const maxBackoff = this.opts.maxBackoffMs ?? 5000;
    while (this.queue.length > 0 && !this.stop.signal.aborted && !this.paused) {
      const head = this.queue[0] as T;
      try {
        await this.opts.send(head);
        if (this.queue[0] === head) this.queue.shift();
        this.delivered++;
        backoff = this.opts.initialBackoffMs ?? 100;
      } catch (err) {
        this.failures++;
        this.opts.logger.warn(
          { err, event: this.opts.describe(head), queued: this.queue.length, retryInMs: backoff },
          'publishing event failed, will retry',
        );
        // Kicked (the endpoint is probably back, or we are about to exit): retry now, backoff from the start.
        if (this.consumeKick()) {
          backoff = this.opts.initialBackoffMs ?? 100;
          continue;
        }
        await sleep(backoff * (0.75 + Math.random() * 0.5), AbortSignal.any([this.stop.signal, this.wake.signal]));
        backoff = this.consumeKick() ? (this.opts.initialBackoffMs ?? 100) : Math.min(maxBackoff, backoff * 2);
      }
    }
    this.running = false;
    const stopped = this.stoppedWaiters;
    this.stoppedWaiters = [];
    for (const w of stopped) w();
    if (this.queue.length === 0) {
      const waiters = this.idleWaiters;
      this.idleWaiters = [];
      for (const w of waiters) w();
    }
  }

  private consumeKick(): boolean {
    if (!this.kicked) return false;
    this.kicked = false;
    this.wake = new AbortController();
    return true;
  }

  /**
   * Retry the head now instead of after the pending backoff (e.g. containerd reconnected to us, so its events
   * endpoint is likely back). One immediate attempt; if it fails, backoff restarts from its initial value.
   */
  kick(): void {
    if (this.queue.length === 0 || this.closed) return;
    this.kicked = true;
    this.wake.abort();
  }

  /** Waits until everything queued so far is delivered, or the timeout passes; then stops retrying. */
  async drain(timeoutMs: number): Promise<{ undelivered: number }> {
    if (this.queue.length > 0) {
      // Do not sit out a backoff sleep of up to ~6 s: the budget may be shorter than that.
      this.kick();
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, timeoutMs);
        this.idleWaiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
    this.closed = true;
    this.stop.abort();
    const undelivered = this.queue.length;
    for (const item of this.queue) {
      this.opts.logger.error({ event: this.opts.describe(item) }, 'event not delivered before shutdown');
    }
    return { undelivered };
  }
}
