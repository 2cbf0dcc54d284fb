/**
 * The stdio of a process in the form another image of the shim can take over after an in-place upgrade
 * (execve keeps every fd whose close-on-exec flag is cleared): which fds copy into which, bytes read and not
 * yet written, and the fds held for their side effects (a FIFO's stdin closer, readers kept on output FIFOs).
 */
import net from 'node:net';
import type { Readable, Writable } from 'node:stream';

/** Set on our own fd-backed streams (pty masters, file writers): their fd and how to reopen them. */
export const STREAM_FD = Symbol('containerd-shim-ts.stream-fd');

export type EndpointType = 'socket' | 'pty' | 'file';

export interface EndpointRef {
  readonly fd: number;
  /** socket: a pipe or FIFO under net.Socket; pty: a terminal master; file: append writes to a regular file. */
  readonly type: EndpointType;
}

export interface CopyHandoff {
  readonly name: string;
  /** output: from the process to the client (awaited before an exit is published); input: stdin. */
  readonly role: 'output' | 'input';
  readonly done: boolean;
  readonly src?: EndpointRef;
  readonly dst?: EndpointRef;
  readonly endsDestination: boolean;
  readonly bytes: number;
  /** Read from the source and not written yet, base64: written first by the next image. */
  readonly unwritten: string;
}

export interface IOHandoff {
  readonly copies: readonly CopyHandoff[];
  /** Our write fd on the stdin FIFO (keeps the container's stdin open across client detaches), or -1. */
  readonly stdinCloser: number;
  readonly stdinClosed: boolean;
  /** Read fds held on output FIFOs: how much the client has not read yet is asked of them. */
  readonly probes: readonly number[];
  /** Other fds held until the IO is closed (the container's stdin pipe end, files). */
  readonly held: readonly number[];
  readonly console?: { readonly fd: number; readonly exited: boolean };
}

export function endpointOf(stream: Readable | Writable): EndpointRef | undefined {
  const own = (stream as unknown as Record<symbol, EndpointRef | undefined>)[STREAM_FD];
  if (own) return own.fd >= 0 ? own : undefined;
  if (stream instanceof net.Socket) {
    const fd = (stream as unknown as { _handle?: { fd?: number } })._handle?.fd;
    return typeof fd === 'number' && fd >= 0 ? { fd, type: 'socket' } : undefined;
  }
  return undefined;
}

/** Every fd an IOHandoff names (they must survive the execve). */
export function fdsOf(h: IOHandoff): number[] {
  const fds = new Set<number>([...h.probes, ...h.held]);
  if (h.stdinCloser >= 0) fds.add(h.stdinCloser);
  if (h.console) fds.add(h.console.fd);
  for (const c of h.copies) {
    if (c.src) fds.add(c.src.fd);
    if (c.dst) fds.add(c.dst.fd);
  }
  return [...fds];
}
