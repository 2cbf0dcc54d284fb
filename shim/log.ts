/**
 * pino loggers. The daemon writes to the bundle's `log` FIFO, which containerd holds open O_RDWR and copies
 * to its own stderr. The fd is non-blocking and the buffer bounded: when containerd stops reading, log lines
 * are dropped (and counted) rather than blocking the event loop or growing memory.
 */
import { constants, openSync } from 'node:fs';
import { join } from 'node:path';
import pino, { type Logger } from 'pino';
import { FifoLogDestination } from './log-destination.js';
import { RUNTIME_NAME } from './version.js';

const MAX_BUFFERED_LOG_BYTES = 1024 * 1024;

function openLogFifo(bundle: string): number | undefined {
  const path = join(bundle, 'log');
  // Opening a FIFO O_NONBLOCK never waits; ENXIO means no reader (containerd gone), then fall back.
  for (const flags of [constants.O_WRONLY | constants.O_NONBLOCK, constants.O_RDWR | constants.O_NONBLOCK]) {
    try {
      return openSync(path, flags); // libuv opens with O_CLOEXEC
    } catch {
      /* try the next way */
    }
  }
  return undefined;
}

/** The daemon logger's pino options (also used by a spare's warm-up, spare/warm-up.ts). */
export function daemonLoggerOptions(opts: { namespace: string; id: string; debug: boolean }): pino.LoggerOptions {
  return {
    level: opts.debug ? 'debug' : 'info',
    base: { runtime: RUNTIME_NAME, namespace: opts.namespace, shim_pid: process.pid, shim_id: opts.id },
    timestamp: pino.stdTimeFunctions.isoTime,
  };
}

/** `fd`: a log FIFO already open (an in-place upgrade hands it over); else the bundle's is opened. */
export function createDaemonLogger(opts: { bundle: string; namespace: string; id: string; debug: boolean; fd?: number }): Logger {
  const fd = opts.fd !== undefined && opts.fd >= 0 ? opts.fd : (openLogFifo(opts.bundle) ?? 2);
  const dest = new FifoLogDestination(fd, MAX_BUFFERED_LOG_BYTES);
  const log = pino(daemonLoggerOptions(opts), dest);
  const timer = setInterval(() => {
    const dropped = dest.takeDropped();
    if (dropped > 0) log.warn({ dropped }, 'log lines dropped: containerd is not reading the shim log');
  }, 10_000);
  timer.unref();
  return log;
}

/** For `start`/`delete`: stdout is the answer to containerd, so logs go to stderr (delete) or nowhere. */
export function createStderrLogger(debug: boolean, silent = false): Logger {
  return pino(
    { level: silent ? 'silent' : debug ? 'debug' : 'warn', base: { runtime: RUNTIME_NAME }, timestamp: pino.stdTimeFunctions.isoTime },
    pino.destination({ fd: 2, sync: true }),
  );
}

/** The daemon logger's destination (for the in-place upgrade), if it is the log FIFO's. */
export function logDestination(log: Logger): FifoLogDestination | undefined {
  const dest = (log as unknown as Record<symbol, unknown>)[pino.symbols.streamSym];
  return dest instanceof FifoLogDestination ? dest : undefined;
}

/** Writes what the log takes at once, without waiting; called right before process.exit. */
export function flushLogger(log: Logger): void {
  const dest = (log as unknown as Record<symbol, unknown>)[pino.symbols.streamSym];
  if (dest instanceof FifoLogDestination) dest.flushOnce();
}
