/**
 * The FIFOs of a process's stdio, as containerd's Tasks.Get reports them (the paths the client that created
 * the process chose, e.g. ctr's /run/containerd/fifo/...). The shim keeps its own ends open for the life of
 * the process, and also holds an extra fd on the far end of each (a reader on stdout, a writer on stdin): so
 * our opens never block, a client leaving costs the process nothing (no EOF on its stdin, no EPIPE on its
 * output), and output written while no one is attached waits in the FIFO for the next client.
 *
 * The fds are opened O_NONBLOCK and wrapped in net.Socket, which polls them with epoll: no blocking open(2), no
 * threadpool thread parked on an idle FIFO.
 */
import { constants, openSync } from 'node:fs';
import net from 'node:net';

export interface ProcessStdio {
  /** Undefined when the process has no stdin. */
  stdin: net.Socket | undefined;
  stdout: net.Socket | undefined;
  /** Undefined for a terminal (stdout carries both) or when the process has none. */
  stderr: net.Socket | undefined;
  close(): void;
}

function openFifo(path: string, write: boolean): net.Socket {
  try {
    const fd = openSync(path, (write ? constants.O_WRONLY : constants.O_RDONLY) | constants.O_NONBLOCK);
    return new net.Socket({ fd, readable: !write, writable: write });
  } catch (err) {
    // O_WRONLY|O_NONBLOCK fails with ENXIO when nobody reads: the shim no longer serves this FIFO.
    const why = (err as NodeJS.ErrnoException).code === 'ENXIO' ? 'no reader on the other side (the process\'s stdio is closed)' : (err as Error).message;
    throw new Error(`open ${path}: ${why}`, { cause: err });
  }
}

export function openProcessStdio(paths: { stdin: string; stdout: string; stderr: string }): ProcessStdio {
  const opened: net.Socket[] = [];
  const open = (path: string, write: boolean): net.Socket | undefined => {
    if (!path) return undefined;
    const socket = openFifo(path, write);
    opened.push(socket);
    return socket;
  };
  try {
    return {
      stdin: open(paths.stdin, true),
      stdout: open(paths.stdout, false),
      stderr: paths.stderr && paths.stderr !== paths.stdout ? open(paths.stderr, false) : undefined,
      close: () => opened.forEach((s) => s.destroy()),
    };
  } catch (err) {
    opened.forEach((s) => s.destroy());
    throw err;
  }
}
