/**
 * The state one image of the daemon hands to the next across execve (in-place upgrade, shim/upgrade/).
 * Versioned: an image resumes only formats it knows (RESUMABLE_FORMATS) and otherwise rolls back. Plain
 * JSON; byte strings are base64; times are epoch milliseconds; fds are numbers valid in the same process.
 */
import type { IOHandoff } from '../../io/handoff.js';
import type { ServerHandoff } from '../../protocol/ttrpc/server.js';
import type { BundleSpec } from '../platform/bundle.js';
import type { ShimFlags } from '../flags.js';
import type { SerializedEvent } from '../events/publisher.js';
import type { ProcessStatus, StdioStrings } from '../process/types.js';
import type { RuncOptions } from '../runtime/options.js';
import type { RuncConfig } from '../runtime/runc.js';

/** The format this build writes. */
export const STATE_FORMAT = 1;
/** The formats this build can resume from. */
export const RESUMABLE_FORMATS: readonly number[] = [1];

export interface ExitHandoff {
  readonly pid: number;
  readonly status: number;
  readonly exitedAt: number;
}

export interface ProcessHandoff {
  readonly id: string;
  readonly stdio: StdioStrings;
  readonly status: ProcessStatus;
  readonly pid: number;
  readonly exit?: ExitHandoff;
  readonly io?: IOHandoff;
}

export interface ExecHandoff extends ProcessHandoff {
  readonly spec: Record<string, unknown>;
}

export interface ContainerHandoff {
  readonly id: string;
  readonly bundle: string;
  readonly spec: BundleSpec;
  readonly options: RuncOptions;
  readonly runc: RuncConfig;
  readonly rootfsMounted: boolean;
  readonly stdio: StdioStrings;
  readonly checkpoint: string;
  readonly parentCheckpoint: string;
  readonly initExitSeen: boolean;
  readonly init: ProcessHandoff;
  readonly execs: readonly ExecHandoff[];
}

export interface BuildInfo {
  readonly version: string;
  readonly revision: string;
  readonly build: string;
}

export interface DaemonHandoff {
  readonly format: number;
  readonly from: BuildInfo;
  readonly pid: number;
  /** When serving stopped (epoch ms): the pause is measured from here. */
  readonly pausedAt: number;
  readonly flags: ShimFlags;
  /** Our socket (unix://…) and containerd's events socket. */
  readonly address: string;
  readonly ttrpcAddress: string;
  /** The bundle's log FIFO, or -1 (stderr). */
  readonly logFd: number;
  readonly server: ServerHandoff;
  readonly events: readonly SerializedEvent[];
  readonly heldExits: readonly { pid: number; status: number; signal?: number; at: number }[];
  readonly containers: readonly ContainerHandoff[];
  /** How to start the previous image again (rollback): argv[0] is executed. */
  readonly rollback: { readonly argv: readonly string[]; readonly fds: readonly number[] };
  /** Every fd above, close-on-exec cleared (a rollback clears them again). */
  readonly keepFds: readonly number[];
}

/** Every fd the state names, so that their close-on-exec flags can be cleared. */
export function handoffFds(s: DaemonHandoff, ioFds: (io: IOHandoff) => number[]): number[] {
  const fds = new Set<number>([0, 1, 2, s.server.listenerFd, ...s.server.connections.map((c) => c.fd), ...s.rollback.fds]);
  if (s.logFd >= 0) fds.add(s.logFd);
  for (const c of s.containers) {
    for (const p of [c.init, ...c.execs]) if (p.io) for (const fd of ioFds(p.io)) fds.add(fd);
  }
  return [...fds];
}
