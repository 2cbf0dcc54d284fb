/**
 * The stdio of one container process (init or exec), as the shim uses it:
 *   createProcessIO → spawn the runtime with `runtime` → afterSpawn() → runtime returned → start(signal)
 *   … resize / closeStdin … processExited() → drained(2000) → close().
 * Modes (see uri.ts): null, pipes (client FIFOs or files), binary logger, console (pty via console socket).
 */
import { statSync } from 'node:fs';
import type { Writable } from 'node:stream';
import type { Logger } from 'pino';
import { ShimError, kindOf } from '../protocol/errdefs.js';
import { BinaryLogger, childProcessSpawner, type SpawnLogger } from './binary-logger.js';
import { Console } from './console.js';
import { ConsoleSocket } from './console-socket.js';
import { SharedFile, finishedCopy, startCopy, type Copy } from './copy.js';
import { endpointOf, type CopyHandoff, type EndpointRef, type IOHandoff } from './handoff.js';
import net from 'node:net';
import { write as writeFd } from 'node:fs';
import { Writable as WritableStream, type Readable } from 'node:stream';
import { openFifoReader, openFifoWriter, type FifoReader } from './fifo.js';
import { PipeSet, type ChildStdio } from './pipes.js';
import * as sys from './sys.js';
import { parseStdio, type OutputTarget, type StdioPlan } from './uri.js';

export interface StdioConfig {
  readonly stdin: string;
  readonly stdout: string;
  readonly stderr: string;
  readonly terminal: boolean;
}

export interface ProcessIOOptions {
  /** Container id for init, exec id for execs: CONTAINER_ID for binary loggers. */
  readonly id: string;
  readonly namespace: string;
  /** Owner of the container ends of the stdio pipes (runc Options io_uid/io_gid). */
  readonly uid: number;
  readonly gid: number;
  readonly logger: Logger;
  /** Bound for waiting on client FIFO readers, the pty master and logger readiness (default 30000). */
  readonly openTimeoutMs?: number;
  /** How binary loggers are spawned (the shim passes its reaper's spawn); default: child_process. */
  readonly spawnLogger?: SpawnLogger;
}

export interface RuntimeStdio {
  /** The runtime's fds 0, 1, 2 ('pipe' = capture the runtime's own output for error text). */
  readonly stdio: ChildStdio[];
  readonly consoleSocket?: string;
}

export interface ProcessIO {
  readonly runtime: RuntimeStdio;
  /** The runtime was spawned: close our copies of the child ends. */
  afterSpawn(): void;
  /** The runtime returned successfully: receive the pty master / open client FIFOs (bounded) and copy. */
  start(signal: AbortSignal): Promise<void>;
  /** Terminal size; no-op without a console. */
  resize(width: number, height: number): void;
  /** CloseIO: drop the shim's own stdin writer. Idempotent. */
  closeStdin(): void;
  /** The process exited: a console drains, then ends its output. */
  processExited(): void;
  /** true once all output was copied; false if `timeoutMs` passed first. */
  drained(timeoutMs: number): Promise<boolean>;
  /** Output bytes copied so far (all streams), to tell a slow drain from a stuck one. */
  copiedBytes(): number;
  /**
   * After the exit: resolves true once every output copy ended and the clients read everything we put in
   * their FIFOs; false when nothing moved for `idleMs` (a client that stopped reading) or after `maxMs`.
   */
  delivered(idleMs: number, maxMs: number): Promise<boolean>;
  /** Releases everything (Delete, failed Create). Idempotent. */
  close(): Promise<void>;
  /** In-place upgrade: stop moving bytes, ending and losing nothing (release() undoes it). */
  hold(): void;
  /** After hold(): resolves once every destination has written what it was given. */
  flushed(): Promise<void>;
  /** Synchronously, after flushed(): what the next image of the shim needs, or why it cannot be handed over. */
  handoff(): IOHandoff | string;
  release(): void;
}

export async function createProcessIO(cfg: StdioConfig, opts: ProcessIOOptions): Promise<ProcessIO> {
  const plan = parseStdio(cfg);
  const timeoutMs = opts.openTimeoutMs ?? 30_000;
  switch (plan.mode) {
    case 'null':
      return new NullIO();
    case 'pipes':
      return PipesIO.create(plan, opts);
    case 'binary': {
      const logger = await BinaryLogger.start(plan.logger, loggerOptions(opts, timeoutMs));
      return new BinaryIO(logger, opts);
    }
    case 'console':
      return ConsoleIO.create(plan, opts, timeoutMs);
  }
}

const loggerOptions = (opts: ProcessIOOptions, timeoutMs: number) => ({
  id: opts.id,
  namespace: opts.namespace,
  logger: opts.logger,
  spawnLogger: opts.spawnLogger ?? childProcessSpawner(),
  readyTimeoutMs: timeoutMs,
});

const withTimeout = (signal: AbortSignal, ms: number): AbortSignal => AbortSignal.any([signal, AbortSignal.timeout(ms)]);

/** Bookkeeping shared by the modes: output copies to wait for and undo steps for close(). */
abstract class BaseIO implements ProcessIO {
  abstract readonly runtime: RuntimeStdio;
  protected readonly outputs: Copy[] = [];
  protected readonly others: Copy[] = [];
  protected readonly undo: Array<() => void | Promise<void>> = [];
  protected stdinClosed = false;
  protected stdinReader: FifoReader | undefined;
  /** Bytes written into client FIFOs and not read yet, one probe per output FIFO. */
  protected readonly unreadProbes: Array<() => number> = [];
  /** For a hand-over: the fds behind unreadProbes, and other fds held until close(). */
  protected readonly probeFds: Array<() => number> = [];
  protected readonly heldFds: Array<() => number> = [];
  #closing: Promise<void> | undefined;

  hold(): void {
    for (const c of [...this.outputs, ...this.others]) c.hold();
  }

  async flushed(): Promise<void> {
    await Promise.all([...this.outputs, ...this.others].map((c) => c.flushed()));
  }

  release(): void {
    for (const c of [...this.outputs, ...this.others]) c.release();
  }

  handoff(): IOHandoff | string {
    const copies: CopyHandoff[] = [];
    for (const [role, list] of [['output', this.outputs], ['input', this.others]] as const) {
      for (const c of list) {
        if (c.finished || !c.src || !c.dst) {
          copies.push({ name: 'done', role, done: true, endsDestination: c.endsDestination, bytes: c.bytes, unwritten: '' });
          continue;
        }
        const src = endpointOf(c.src);
        const dst = endpointOf(c.dst);
        if (!src || !dst) return `a ${role} copy has no file descriptor to hand over`;
        if (c.dst.writableEnded) return `a ${role} copy is still ending`;
        copies.push({ name: role, role, done: false, src, dst, endsDestination: c.endsDestination, bytes: c.bytes, unwritten: c.unwritten().toString('base64') });
      }
    }
    const live = (fns: Array<() => number>): number[] => fns.map((f) => f()).filter((fd) => fd >= 0);
    return {
      copies,
      stdinCloser: this.stdinReader?.writerFd ?? -1,
      stdinClosed: this.stdinClosed,
      probes: live(this.probeFds),
      held: live(this.heldFds),
      ...this.consoleHandoff(),
    };
  }

  protected consoleHandoff(): { console?: { fd: number; exited: boolean } } {
    return {};
  }

  afterSpawn(): void {}
  async start(_signal: AbortSignal): Promise<void> {}
  resize(_width: number, _height: number): void {}
  processExited(): void {}

  closeStdin(): void {
    this.stdinClosed = true;
    this.stdinReader?.closeWriter();
  }

  copiedBytes(): number {
    return this.outputs.reduce((n, c) => n + c.bytes, 0);
  }

  /** Sum of what clients have not read yet from our output FIFOs. */
  clientUnread(): number {
    let n = 0;
    for (const probe of this.unreadProbes) n += probe();
    return n;
  }

  async delivered(idleMs: number, maxMs: number): Promise<boolean> {
    let copiesDone = false;
    const allCopied = Promise.all(this.outputs.map((c) => c.done)).then(() => {
      copiesDone = true;
    });
    // Polls the client's unread bytes (no event tells when a FIFO is read): soon at first, as most exits
    // have nothing left in flight, then every 10 ms. The copies' end wakes it at once.
    let pollMs = 1;
    const start = performance.now();
    let progressAt = start;
    let copied = this.copiedBytes();
    let unread = this.clientUnread();
    for (;;) {
      // One event-loop turn lets an already settled Promise.all above set copiesDone.
      await new Promise<void>((resolve) => setImmediate(resolve));
      const nowCopied = this.copiedBytes();
      const nowUnread = this.clientUnread();
      if (copiesDone && nowUnread === 0) return true;
      const now = performance.now();
      if (nowCopied !== copied || nowUnread !== unread) {
        progressAt = now;
        copied = nowCopied;
        unread = nowUnread;
      }
      if (now - progressAt >= idleMs || now - start >= maxMs) return false;
      let timer: NodeJS.Timeout | undefined;
      const tick = new Promise<void>((resolve) => (timer = setTimeout(resolve, pollMs)));
      await (copiesDone ? tick : Promise.race([tick, allCopied]));
      clearTimeout(timer);
      pollMs = Math.min(pollMs * 2, 10);
    }
  }

  async drained(timeoutMs: number): Promise<boolean> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<boolean>((resolve) => (timer = setTimeout(resolve, timeoutMs, false)));
    try {
      return await Promise.race([Promise.all(this.outputs.map((c) => c.done)).then(() => true), timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  close(): Promise<void> {
    this.#closing ??= (async () => {
      this.stdinReader?.closeWriter();
      for (const c of [...this.others, ...this.outputs]) c.stop();
      for (const fn of this.undo.splice(0).reverse()) {
        try {
          await fn();
        } catch {
          // best effort: close() must release everything it can
        }
      }
    })();
    return this.#closing;
  }

  /** Opens the stdin FIFO and copies it into `dst`; EOF arrives after closeStdin() and all client writers. */
  protected startStdin(path: string, dst: Writable, log: Logger, endDestination: boolean, onEnd?: () => void): void {
    const reader = openFifoReader(path, !this.stdinClosed);
    this.stdinReader = reader;
    this.undo.push(() => {
      reader.closeWriter();
      reader.stream.destroy();
    });
    // The first client input is where a broken stdin path shows: one debug line when it arrives.
    reader.stream.once('data', (chunk: Buffer) =>
      log.debug({ bytes: chunk.length, dst_buffered: dst.writableLength, dst_need_drain: dst.writableNeedDrain, dst_destroyed: dst.destroyed }, 'stdin: first client input'),
    );
    this.others.push(startCopy(reader.stream, dst, { name: 'stdin', logger: log, endDestination, onDone: onEnd }));
  }

  /** Opens an output target (waiting ≤ the signal for a FIFO reader) and returns the writable and its release. */
  protected async openOutput(
    target: OutputTarget | { kind: 'path'; path: string },
    signal: AbortSignal,
    files: Map<string, SharedFile>,
  ): Promise<{ stream: Writable; release: () => void }> {
    if (target.kind === 'path' && (await statKind(target.path)) === 'fifo') {
      const w = await openFifoWriter(target.path, signal);
      this.undo.push(() => {
        w.stream.destroy();
        w.releaseReader();
      });
      this.unreadProbes.push(() => w.unread());
      this.probeFds.push(() => w.heldFd);
      // The held reader stays until close(): it is how we see whether the client has read everything.
      return { stream: w.stream, release: () => undefined };
    }
    let file = files.get(target.path);
    if (!file) {
      file = await SharedFile.open(target.path, target.kind === 'file');
      files.set(target.path, file);
      const f = file;
      this.undo.push(() => f.close());
      this.heldFds.push(() => f.fd);
    }
    return { stream: file.writer(), release: () => undefined };
  }
}

/**
 * Synchronous: a stdio path is the client's FIFO in its local fifo dir (containerd's, ctr's, dockerd's, under
 * /run); a stat there costs microseconds, a threadpool round trip two thread wake-ups (0.1-1 ms when busy),
 * and Start paid five of them in a row before and after runc. The stdin FIFO is opened synchronously already.
 */
async function statKind(path: string): Promise<'fifo' | 'other'> {
  try {
    return statSync(path).isFIFO() ? 'fifo' : 'other';
  } catch (err) {
    throw new ShimError(kindOf(err), `containerd-shim: opening file ${JSON.stringify(path)} failed: ${(err as Error).message}`, { cause: err });
  }
}

/** No stdio: runc gets /dev/null opened read-only for all three (go-runc NullIO; output writes fail). */
class NullIO extends BaseIO {
  readonly runtime: RuntimeStdio;
  #devNull: number;

  constructor() {
    super();
    this.#devNull = sys.open('/dev/null', sys.O_RDONLY);
    this.runtime = { stdio: [this.#devNull, this.#devNull, this.#devNull] };
    this.undo.push(() => this.afterSpawn());
  }

  override afterSpawn(): void {
    sys.closeQuietly(this.#devNull);
    this.#devNull = -1;
  }
}

class PipesIO extends BaseIO {
  readonly runtime: RuntimeStdio;
  readonly #files = new Map<string, SharedFile>();

  private constructor(
    private readonly plan: Extract<StdioPlan, { mode: 'pipes' }>,
    private readonly pipes: PipeSet,
    private readonly opts: ProcessIOOptions,
  ) {
    super();
    this.runtime = { stdio: pipes.childStdio() };
    this.undo.push(() => pipes.close());
    if (pipes.stdin) {
      const stdin = pipes.stdin;
      this.heldFds.push(() => stdin.readFd);
    }
  }

  static async create(plan: Extract<StdioPlan, { mode: 'pipes' }>, opts: ProcessIOOptions): Promise<PipesIO> {
    // Fail before the runtime runs where the reference would fail after it: missing paths.
    for (const t of [plan.stdout, plan.stderr]) if (t.kind === 'path') await statKind(t.path);
    if (plan.stdin !== undefined) await statKind(plan.stdin);
    const io = new PipesIO(plan, new PipeSet(plan.stdin !== undefined, opts.uid, opts.gid), opts);
    try {
      // file://: created at Create, like the reference.
      if (plan.stdout.kind === 'file') {
        const f = await SharedFile.open(plan.stdout.path, true);
        io.#files.set(plan.stdout.path, f);
        io.undo.push(() => f.close());
        io.heldFds.push(() => f.fd);
      }
    } catch (err) {
      await io.close();
      throw err;
    }
    return io;
  }

  override afterSpawn(): void {
    this.pipes.closeChildEnds();
  }

  override async start(signal: AbortSignal): Promise<void> {
    const sig = withTimeout(signal, this.opts.openTimeoutMs ?? 30_000);
    const log = this.opts.logger;
    if (this.plan.stdin !== undefined && this.pipes.stdin) {
      this.startStdin(this.plan.stdin, this.pipes.stdin.takeWriter(), log, true);
    }
    const streams = [
      ['stdout', this.plan.stdout, this.pipes.stdout],
      ['stderr', this.plan.stderr, this.pipes.stderr],
    ] as const;
    for (const [name, target, pipe] of streams) {
      const out = await this.openOutput(target, sig, this.#files);
      this.outputs.push(startCopy(pipe.takeReader(), out.stream, { name, logger: log, onDone: out.release }));
    }
  }
}

/** binary://: the logger reads the container's pipes itself; the shim copies nothing (and no stdin). */
class BinaryIO extends BaseIO {
  readonly runtime: RuntimeStdio;

  constructor(
    private readonly logger: BinaryLogger,
    opts: ProcessIOOptions,
  ) {
    super();
    this.undo.push(() => logger.close());
    logger.stdout.chownEnd('write', opts.uid, opts.gid);
    logger.stderr.chownEnd('write', opts.uid, opts.gid);
    this.runtime = { stdio: ['ignore', logger.stdout.writeFd, logger.stderr.writeFd] };
  }

  /**
   * Unlike the reference, which keeps the write ends until Delete, we drop them now, so the logger sees EOF
   * when the container (and its descendants) close their output, not only when SIGTERM arrives.
   */
  override afterSpawn(): void {
    this.logger.stdout.closeWrite();
    this.logger.stderr.closeWrite();
  }

  override handoff(): string {
    return 'binary:// logging cannot be handed over yet';
  }
}

/** What a process with a terminal adds: the pty master, whose output ends once drained after the exit. */
abstract class TerminalIO extends BaseIO {
  protected console: Console | undefined;
  protected outputCopy: Copy | undefined;
  protected exited = false;

  override resize(width: number, height: number): void {
    this.console?.resize(width, height);
  }

  override processExited(): void {
    this.exited = true;
    this.endWhenDrained();
  }

  protected override consoleHandoff(): { console?: { fd: number; exited: boolean } } {
    return this.console ? { console: { fd: this.console.fd, exited: this.exited } } : {};
  }

  protected endWhenDrained(): void {
    const cons = this.console;
    const copy = this.outputCopy;
    if (!cons || !copy) return;
    cons.drainThen(() => copy.end());
  }
}

class ConsoleIO extends TerminalIO {
  readonly runtime: RuntimeStdio;

  private constructor(
    private readonly plan: Extract<StdioPlan, { mode: 'console' }>,
    private readonly socket: ConsoleSocket,
    private readonly logger: BinaryLogger | undefined,
    private readonly opts: ProcessIOOptions,
    private readonly timeoutMs: number,
  ) {
    super();
    this.runtime = { stdio: ['ignore', 'pipe', 'pipe'], consoleSocket: socket.path };
    this.undo.push(() => socket.close());
    if (logger) this.undo.push(() => logger.close());
    this.undo.push(() => this.console?.close());
  }

  static async create(plan: Extract<StdioPlan, { mode: 'console' }>, opts: ProcessIOOptions, timeoutMs: number): Promise<ConsoleIO> {
    if (plan.stdout.kind === 'path') await statKind(plan.stdout.path);
    if (plan.stdin !== undefined) await statKind(plan.stdin);
    const socket = await ConsoleSocket.create();
    let logger: BinaryLogger | undefined;
    try {
      if (plan.stdout.kind === 'binary') {
        logger = await BinaryLogger.start(plan.stdout.logger, loggerOptions(opts, timeoutMs));
        logger.stderr.closeWrite(); // fd 4 exists for the logger but a pty has one output stream
      }
    } catch (err) {
      await socket.close();
      throw err;
    }
    return new ConsoleIO(plan, socket, logger, opts, timeoutMs);
  }

  override async start(signal: AbortSignal): Promise<void> {
    const sig = withTimeout(signal, this.timeoutMs);
    const log = this.opts.logger;
    const master = await this.socket.receiveMaster(sig);
    log.debug({ fd: master }, 'console: pty master received');
    await this.socket.close();
    const cons = Console.open(master, log);
    this.console = cons;
    const out =
      this.plan.stdout.kind === 'binary' && this.logger
        ? { stream: this.logger.stdout.takeWriter(), release: () => undefined }
        : await this.openOutput(this.plan.stdout as OutputTarget, sig, new Map());
    this.outputCopy = startCopy(cons.stream, out.stream, {
      name: 'console',
      logger: log,
      onDone: () => {
        out.release();
        cons.close();
      },
    });
    this.outputs.push(this.outputCopy);
    if (this.plan.stdin !== undefined) {
      // Stdin EOF hangs up the terminal, as the reference does; we drain pending output first.
      this.startStdin(this.plan.stdin, cons.stream, log, false, () => this.endWhenDrained());
    }
    if (this.exited) this.endWhenDrained();
  }

  override handoff(): IOHandoff | string {
    if (this.logger) return 'binary:// logging of a terminal cannot be handed over yet';
    return super.handoff();
  }

}

/** Append writes to an inherited regular-file fd (the fd is closed by the IO, not by the writer). */
function fileWriter(fd: number): WritableStream {
  return new WritableStream({
    highWaterMark: 64 * 1024,
    write(chunk: Buffer, _enc, cb) {
      const writeAll = (off: number): void => {
        if (off >= chunk.length) return cb();
        writeFd(fd, chunk, off, chunk.length - off, null, (err, n) => (err ? cb(err) : writeAll(off + n)));
      };
      writeAll(0);
    },
  });
}

/** The stdio of a process handed over by the previous image of the shim: the same fds, copying on. */
class AdoptedIO extends TerminalIO {
  readonly runtime: RuntimeStdio = { stdio: [] };

  constructor(state: IOHandoff, opts: ProcessIOOptions) {
    super();
    const log = opts.logger;
    const sockets: net.Socket[] = [];
    const writers: WritableStream[] = [];
    const endpoint = (ref: EndpointRef, dir: 'src' | 'dst'): Readable | WritableStream => {
      if (ref.type === 'pty') {
        this.console ??= Console.open(ref.fd, log);
        return this.console.stream;
      }
      if (ref.type === 'file') {
        const w = fileWriter(ref.fd);
        writers.push(w);
        return w;
      }
      const s = new net.Socket({ fd: ref.fd, readable: dir === 'src', writable: dir === 'dst' });
      sockets.push(s);
      return s;
    };
    if (state.console && !state.copies.some((c) => c.src?.type === 'pty' || c.dst?.type === 'pty')) {
      this.console = Console.open(state.console.fd, log);
    }
    this.stdinClosed = state.stdinClosed;
    let closer = state.stdinCloser;
    let stdinSource: net.Socket | undefined;
    for (const c of state.copies) {
      const list = c.role === 'output' ? this.outputs : this.others;
      if (c.done || !c.src || !c.dst) {
        list.push(finishedCopy(c.bytes));
        continue;
      }
      const src = endpoint(c.src, 'src') as Readable;
      const dst = endpoint(c.dst, 'dst') as WritableStream;
      if (c.role === 'input' && src instanceof net.Socket) stdinSource = src;
      const unwritten = Buffer.from(c.unwritten, 'base64');
      if (unwritten.length > 0) dst.write(unwritten);
      const consoleOutput = c.role === 'output' && c.src.type === 'pty';
      const consoleInput = c.role === 'input' && c.dst.type === 'pty';
      const copy = startCopy(src, dst, {
        name: c.name,
        logger: log,
        endDestination: c.endsDestination,
        ...(consoleOutput ? { onDone: () => this.console?.close() } : consoleInput ? { onDone: () => this.endWhenDrained() } : {}),
      });
      if (consoleOutput) this.outputCopy = copy;
      list.push(copy);
    }
    if (closer >= 0 || stdinSource) {
      this.stdinReader = {
        stream: stdinSource ?? new net.Socket(),
        get writerFd() {
          return closer;
        },
        closeWriter() {
          sys.closeQuietly(closer);
          closer = -1;
        },
      };
    }
    for (const fd of state.probes) {
      let held = fd;
      this.unreadProbes.push(() => {
        if (held < 0) return 0;
        try {
          return sys.bytesReadable(held);
        } catch {
          return 0;
        }
      });
      this.probeFds.push(() => held);
      this.undo.push(() => {
        sys.closeQuietly(held);
        held = -1;
      });
    }
    for (const fd of state.held) {
      let open = fd;
      this.heldFds.push(() => open);
      this.undo.push(() => {
        sys.closeQuietly(open);
        open = -1;
      });
    }
    this.undo.push(() => {
      for (const s of sockets) s.destroy();
      for (const w of writers) w.destroy();
      this.console?.close();
    });
    if (state.console?.exited) this.processExited();
  }
}

/** Rebuilds the stdio of a process from what the previous image of the shim handed over. */
export function adoptProcessIO(state: IOHandoff, opts: ProcessIOOptions): ProcessIO {
  return new AdoptedIO(state, opts);
}
