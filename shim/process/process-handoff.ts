/** A process (init or exec) in the in-place upgrade's state: taken from one image, given to the next. */
import { adoptProcessIO, type ProcessIOOptions } from '../../io/process-io.js';
import type { ProcessHandoff } from '../upgrade/state.js';
import type { ProcessBase } from './process.js';

/** One process's state for the hand-over; IO held and flushed before (ProcessIO.hold/flushed). */
export function processHandoff(p: ProcessBase): ProcessHandoff | string {
  if (p.starting) return `process ${p.id} is starting`;
  const io = p.io?.handoff();
  if (typeof io === 'string') return `process ${p.id}: ${io}`;
  return {
    id: p.id,
    stdio: p.stdio,
    status: p.status,
    pid: p.pid,
    ...(p.exit ? { exit: { pid: p.exit.pid, status: p.exit.status, exitedAt: p.exit.exitedAt.getTime() } } : {}),
    ...(io ? { io } : {}),
  };
}

/** Gives a fresh process object the handed-over state (status, pid, exit, IO). */
export function adoptProcessState(p: ProcessBase, h: ProcessHandoff, ioOptions: ProcessIOOptions): void {
  p.pid = h.pid;
  if (h.exit) p.markExited({ pid: h.exit.pid, status: h.exit.status, exitedAt: new Date(h.exit.exitedAt) });
  p.status = h.status;
  if (h.io) p.io = adoptProcessIO(h.io, ioOptions);
}

