/**
 * Gives memory back once the daemon goes quiet. A burst of calls (Create, or a run of Exec) leaves V8's heap
 * and glibc's malloc arenas at their high-water mark: V8 has no idle-time GC in Node and glibc returns freed
 * heap pages only when the top of the heap is free. A daemon then idles for hours holding them, once per
 * container. So, a second after the last call, if the process grew by 2 MiB since the last time: one full
 * GC, then malloc_trim(0). Both run while nothing is asked of the daemon; the pair takes 5-20 ms.
 */
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import koffi from 'koffi';
import type { Logger } from 'pino';

/** Quiet time before trimming; CONTAINERD_SHIM_TS_IDLE_TRIM_MS=0 turns trimming off. */
export const IDLE_TRIM_ENV = 'CONTAINERD_SHIM_TS_IDLE_TRIM_MS';
const DEFAULT_IDLE_MS = 1000;
/**
 * Only worth a full GC when the process grew since the last trim: a lone call now and then (an exec probe
 * every 10 s) must not cost a full collection each time.
 */
const MIN_GROWTH_BYTES = 2 * 1024 * 1024;

/** V8's `gc()`: with no argument, a full (major, compacting) collection. */
type GcFunction = () => void;

let gcFn: GcFunction | undefined | null;
/** `gc()` without --expose-gc on the command line (which would make V8 reject Node's code cache). */
function gc(): GcFunction | undefined {
  if (gcFn === undefined) {
    try {
      setFlagsFromString('--expose-gc');
      gcFn = runInNewContext('gc') as GcFunction;
    } catch {
      gcFn = null;
    }
  }
  return gcFn ?? undefined;
}

let mallocTrim: ((pad: number) => number) | undefined | null;
function trimMalloc(): boolean {
  if (mallocTrim === undefined) {
    try {
      mallocTrim = koffi.load('libc.so.6').func('int malloc_trim(size_t pad)') as (pad: number) => number;
    } catch {
      mallocTrim = null; // not glibc
    }
  }
  return mallocTrim ? mallocTrim(0) === 1 : false;
}

export class IdleTrimmer {
  private timer: NodeJS.Timeout | undefined;
  private pending = false;
  /** RSS right after the last trim (0: never trimmed, so the first quiet time trims). */
  private settledRss = 0;

  constructor(
    private readonly idleMs: number,
    private readonly log?: Pick<Logger, 'debug'>,
  ) {}

  static fromEnv(env: NodeJS.ProcessEnv, log?: Pick<Logger, 'debug'>): IdleTrimmer {
    const raw = env[IDLE_TRIM_ENV];
    const ms = raw === undefined || raw === '' ? DEFAULT_IDLE_MS : Number(raw);
    return new IdleTrimmer(Number.isFinite(ms) && ms >= 0 ? ms : DEFAULT_IDLE_MS, log);
  }

  /** Something happened: trim once things have been quiet for the idle time. */
  poke(): void {
    if (this.idleMs === 0) return;
    this.pending = true;
    if (this.timer) {
      this.timer.refresh();
      return;
    }
    this.timer = setTimeout(() => this.trim(), this.idleMs);
    this.timer.unref();
  }

  /** Runs now (tests, and the timer). `force`: even without growth since the last trim. */
  trim(force = false): void {
    if (!this.pending) return;
    this.pending = false;
    if (!force && process.memoryUsage.rss() < this.settledRss + MIN_GROWTH_BYTES) return;
    const began = performance.now();
    const before = process.memoryUsage();
    // Twice: the first collection frees the objects, but their pages go back to the OS only once sweeping is
    // done (concurrently, seconds later here); the second finishes the sweep and releases the empty pages.
    gc()?.();
    gc()?.();
    const trimmed = trimMalloc();
    const after = process.memoryUsage();
    this.settledRss = after.rss;
    this.log?.debug(
      {
        duration_ms: Math.round((performance.now() - began) * 10) / 10,
        heap_used_kib: [Math.round(before.heapUsed / 1024), Math.round(after.heapUsed / 1024)],
        rss_kib: [Math.round(before.rss / 1024), Math.round(after.rss / 1024)],
        malloc_trimmed: trimmed,
      },
      'idle: memory given back',
    );
  }

  /** Trims now, whatever the growth (a process done with its start-up); nothing when trimming is off. */
  trimNow(): void {
    if (this.idleMs === 0) return;
    this.stop();
    this.pending = true;
    this.trim(true);
  }

  stop(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }
}
