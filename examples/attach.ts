/**
 * attach: connects this terminal to the stdio of a running container (or of one of its execs) through
 * containerd's own gRPC Tasks API, like `ctr task attach`, with docker's detach keys.
 *
 *   node dist/examples/attach.js [--address /run/containerd/containerd.sock] [--namespace default]
 *                                [--exec-id EXEC] [--detach-keys ctrl-p,ctrl-q] CONTAINER
 *
 * How: Tasks.Get names the process's stdio FIFOs (the shim keeps them open); we open them, put our terminal in
 * raw mode when the process has a tty, copy our stdin to its stdin and its output to our stdout, send
 * Tasks.ResizePty at attach and on every SIGWINCH, and Tasks.Wait tells when it exits.
 *
 * Exit status: the process's own when it exits; 0 after the detach keys (the process keeps running, its later
 * output waits in the FIFO for the next attach); 128+n after signal n; 125 when attaching failed.
 */
import { constants as os } from 'node:os';
import type { Readable } from 'node:stream';
import { TasksClient } from './attach/tasks-client.js';
import { openProcessStdio, type ProcessStdio } from './attach/stdio.js';
import { openLocalTerminal, type LocalTerminal } from './attach/local-terminal.js';
import { DetachKeyScanner, parseDetachKeys } from './attach/detach-keys.js';
import { Status, type Process } from '../protocol/gen/containerd/api/types/task/task.js';

const USAGE = `usage: attach [--address PATH] [--namespace NS] [--exec-id EXEC] [--detach-keys KEYS] CONTAINER

  --address      containerd's gRPC socket (default $CONTAINERD_ADDRESS or /run/containerd/containerd.sock)
  --namespace    containerd namespace (default $CONTAINERD_NAMESPACE or "default")
  --exec-id      attach to this exec of the container instead of its init process
  --detach-keys  key sequence that detaches and leaves the process running (default ctrl-p,ctrl-q)`;

/** Exit status when we could not attach (docker's choice for its own failures). */
const FAILED = 125;
/** How long to wait for the rest of the output once the process exited; the shim closes the FIFO after it. */
const OUTPUT_DRAIN_MS = 2000;

interface Args {
  address: string;
  namespace: string;
  id: string;
  execId: string;
  /** The detach sequence's bytes, parsed up front: a bad one fails before the terminal changes. */
  detachKeys: Buffer;
}

function parseArgs(argv: string[]): Args {
  const a: Args = {
    address: process.env.CONTAINERD_ADDRESS || '/run/containerd/containerd.sock',
    namespace: process.env.CONTAINERD_NAMESPACE || 'default',
    id: '',
    execId: '',
    detachKeys: parseDetachKeys('ctrl-p,ctrl-q'),
  };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const value = (): string => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${arg} needs a value`);
      return v;
    };
    switch (arg) {
      case '--address': a.address = value(); break;
      case '--namespace': case '-n': a.namespace = value(); break;
      case '--exec-id': a.execId = value(); break;
      case '--detach-keys': a.detachKeys = parseDetachKeys(value()); break;
      case '-h': case '--help': process.stdout.write(`${USAGE}\n`); process.exit(0);
      // falls through
      default:
        if (arg.startsWith('-') || a.id) throw new Error(`unexpected argument ${arg}\n${USAGE}`);
        a.id = arg;
    }
  }
  if (!a.id) throw new Error(`a CONTAINER is required\n${USAGE}`);
  return a;
}

function describe(args: Args): string {
  return args.execId ? `exec ${args.execId} of ${args.id}` : args.id;
}

type Outcome = { kind: 'exited'; status: number } | { kind: 'detached' } | { kind: 'signal'; signal: NodeJS.Signals };

/** Resolves once the readable ends (or fails), or after `ms`. */
function ended(stream: Readable | undefined, ms: number): Promise<void> {
  if (!stream || stream.readableEnded || stream.destroyed) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    const done = (): void => {
      clearTimeout(timer);
      resolve();
    };
    stream.once('end', done);
    stream.once('close', done);
  });
}

/** Copies until the process exits, the detach keys are typed or a signal comes. */
function runSession(args: Args, tasks: TasksClient, proc: Process, stdio: ProcessStdio, terminal: LocalTerminal): Promise<Outcome> {
  const ids = { containerId: args.id, execId: args.execId };
  const scanner = new DetachKeyScanner(args.detachKeys);
  return new Promise((resolve, reject) => {
    // The process went away under us (EPIPE on stdin, ...): Wait reports how it ended.
    for (const s of [stdio.stdin, stdio.stdout, stdio.stderr]) s?.on('error', () => undefined);

    stdio.stdout?.pipe(process.stdout, { end: false });
    stdio.stderr?.pipe(process.stderr, { end: false });

    process.stdin.on('data', (chunk: Buffer) => {
      const { forward, detach } = scanner.scan(chunk);
      if (forward.length > 0) stdio.stdin?.write(forward);
      if (detach) resolve({ kind: 'detached' });
    });

    if (proc.terminal) {
      const resize = (): void => {
        const size = terminal.size();
        if (!size) return;
        tasks.resizePty({ ...ids, width: size.cols, height: size.rows }).catch((err: Error) => {
          process.stderr.write(`attach: resize: ${err.message}\r\n`);
        });
      };
      terminal.onResize(resize);
      resize();
    }

    for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.once(signal, () => resolve({ kind: 'signal', signal }));

    tasks.wait(ids).then(async (r) => {
      await Promise.all([ended(stdio.stdout, OUTPUT_DRAIN_MS), ended(stdio.stderr, OUTPUT_DRAIN_MS)]);
      resolve({ kind: 'exited', status: r.exitStatus });
    }, reject);
  });
}

/** Sends what was typed before the detach keys, without waiting long for a process that does not read. */
function flushStdin(stdio: ProcessStdio): Promise<void> {
  const stdin = stdio.stdin;
  if (!stdin || stdin.writableLength === 0) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, 1000);
    stdin.end(() => {
      clearTimeout(timer);
      resolve();
    });
  });
}

async function main(): Promise<number> {
  const args = parseArgs(process.argv.slice(2));
  const tasks = new TasksClient(args.address, args.namespace);
  try {
    const { process: proc } = await tasks.get({ containerId: args.id, execId: args.execId });
    if (!proc) throw new Error('containerd answered Get without a process');
    // Like docker: nothing to attach to (its stdio may be closed already); `ctr task rm` shows the status too.
    if (proc.status === Status.STOPPED) throw new Error(`${describe(args)} has exited (status ${proc.exitStatus}): nothing to attach to`);
    const stdio = openProcessStdio(proc);
    const terminal = openLocalTerminal(proc.terminal);
    try {
      const outcome = await runSession(args, tasks, proc, stdio, terminal);
      if (outcome.kind === 'detached') await flushStdin(stdio);
      terminal.restore();
      switch (outcome.kind) {
        case 'exited':
          return outcome.status;
        case 'detached':
          process.stderr.write(`\r\nattach: detached from ${describe(args)}, still running\r\n`);
          return 0;
        case 'signal':
          return 128 + os.signals[outcome.signal];
      }
    } finally {
      terminal.restore();
      stdio.close();
    }
  } finally {
    tasks.close();
  }
}

/** process.exit once stdout has taken everything (writes to a pipe are asynchronous). */
function exit(code: number): void {
  process.stdout.write('', () => process.exit(code));
}

main().then(exit, (err: unknown) => {
  process.stderr.write(`attach: ${err instanceof Error ? err.message : String(err)}\n`);
  exit(FAILED);
});
