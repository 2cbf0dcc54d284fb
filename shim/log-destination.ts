/**
 * Where the daemon's pino lines go: the bundle's `log` FIFO, written without ever blocking. Writes are
 * asynchronous and queued up to a bound (lines past it are dropped and counted); EAGAIN (containerd not
 * reading) is retried later, any other error (EPIPE: containerd closed its end after the shim disconnected)
 * ends logging. At exit one synchronous attempt writes what the FIFO takes at once, nothing more: the sync
 * flush of pino's own destination (sonic-boom) loops forever on EPIPE at exit, which hung daemons here.
 */
import { write, writeSync } from 'node:fs';

const EAGAIN_RETRY_MS = 50;

export class FifoLogDestination {
  private queue: Buffer[] = [];
  private queuedBytes = 0;
  private writing = false;
  private closed = false;
  /** Lines dropped since the last read of this counter (see takeDropped). */
  private dropped = 0;

  constructor(
    readonly fd: number,
    private readonly maxQueuedBytes: number,
  ) {}

  /** pino's destination interface. */
  write(line: string): boolean {
    if (this.closed) return true;
    const chunk = Buffer.from(line);
    if (this.queuedBytes + chunk.length > this.maxQueuedBytes) {
      this.dropped++;
      return true;
    }
    this.queue.push(chunk);
    this.queuedBytes += chunk.length;
    if (!this.writing) this.pump();
    return true;
  }

  takeDropped(): number {
    const n = this.dropped;
    this.dropped = 0;
    return n;
  }

  private pump(): void {
    if (this.closed || this.queue.length === 0) {
      this.writing = false;
      return;
    }
    this.writing = true;
    const data = this.queue.length === 1 ? this.queue[0]! : Buffer.concat(this.queue);
    this.queue = [data];
    write(this.fd, data, 0, data.length, null, (err, n) => {
      if (this.closed) return; // flushOnce or an error ended logging meanwhile
      if (err) {
        if (err.code === 'EAGAIN') {
          setTimeout(() => this.pump(), EAGAIN_RETRY_MS).unref();
          return;
        }
        this.stop();
        return;
      }
      this.consume(n);
      this.pump();
    });
  }

  private consume(n: number): void {
    const head = this.queue[0]!;
    this.queuedBytes -= n;
    if (n >= head.length) this.queue.shift();
    else this.queue[0] = head.subarray(n);
  }

  private stop(): void {
    this.closed = true;
    this.writing = false;
    this.dropped += this.queue.length;
    this.queue = [];
    this.queuedBytes = 0;
  }

  /** Resolves once no write is in flight (at most `timeoutMs`): before an execve, which would cut one short. */
  async idle(timeoutMs: number): Promise<void> {
    const until = Date.now() + timeoutMs;
    while (this.writing && !this.closed && Date.now() < until) await new Promise((r) => setTimeout(r, 2));
  }

  /** Synchronously writes what is queued (no write in flight: see idle()), as far as the FIFO takes it now. */
  flushQueued(): void {
    if (this.closed || this.writing) return;
    while (this.queue.length > 0) {
      const head = this.queue[0]!;
      let n = 0;
      try {
        n = writeSync(this.fd, head);
      } catch {
        return;
      }
      this.consume(n);
      if (n < head.length) return;
    }
  }

  /** Right before exit: what the FIFO takes now, without waiting or retrying; then nothing more is written. */
  flushOnce(): void {
    if (this.closed) return;
    // An async write may be in flight with the head of the queue: writing it again could duplicate a line,
    // so only the lines queued behind it go out here (the in-flight one completes or is lost with the exit).
    const pending = this.writing ? this.queue.slice(1) : this.queue;
    for (const chunk of pending) {
      try {
        if (writeSync(this.fd, chunk) < chunk.length) break;
      } catch {
        break;
      }
    }
    this.stop();
  }
}
