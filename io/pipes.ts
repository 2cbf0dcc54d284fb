/**
 * OS pipes between the runtime (runc) and the shim. child_process `stdio: 'pipe'` is unusable for the
 * container's stdin (Node destroys it when runc exits), so we make pipe2(O_CLOEXEC) pipes ourselves, pass
 * the container ends as plain fds (libuv dup2s them into runc) and wrap our ends in net.Socket (epoll).
 */
import net from 'node:net';
import * as sys from './sys.js';

/** One pipe with explicit ownership of both ends, so no fd is ever closed twice. */
export class OsPipe {
  #r: number;
  #w: number;

  private constructor(r: number, w: number) {
    this.#r = r;
    this.#w = w;
  }

  static create(): OsPipe {
    const [r, w] = sys.pipe();
    return new OsPipe(r, w);
  }

  /** The raw read end (-1 once closed or handed over). */
  get readFd(): number {
    return this.#r;
  }

  get writeFd(): number {
    return this.#w;
  }

  /** Gives the container end to the io uid/gid, so user-namespaced containers can use it. */
  chownEnd(end: 'read' | 'write', uid: number, gid: number): void {
    if (uid === 0 && gid === 0) return; // root already owns it; avoids a syscall per pipe
    sys.fchown(end === 'read' ? this.#r : this.#w, uid, gid);
  }

  closeRead(): void {
    sys.closeQuietly(this.#r);
    this.#r = -1;
  }

  closeWrite(): void {
    sys.closeQuietly(this.#w);
    this.#w = -1;
  }

  /** Our read end as a stream; the socket now owns the fd. */
  takeReader(): net.Socket {
    const fd = this.#r;
    if (fd < 0) throw new Error('pipe read end already closed');
    this.#r = -1;
    return new net.Socket({ fd, readable: true, writable: false });
  }

  /** Our write end as a stream; the socket now owns the fd. */
  takeWriter(): net.Socket {
    const fd = this.#w;
    if (fd < 0) throw new Error('pipe write end already closed');
    this.#w = -1;
    return new net.Socket({ fd, readable: false, writable: true });
  }

  close(): void {
    this.closeRead();
    this.closeWrite();
  }
}

/** Streams the runtime gets (`'pipe'` in RuntimeStdio means: capture the runtime's own output). */
export type ChildStdio = 'ignore' | 'pipe' | number;

/**
 * Pipes for the non-terminal modes: stdin (container reads), stdout and stderr (container writes).
 * The container ends are fchown'ed to the io uid/gid, as the reference does.
 */
export class PipeSet {
  readonly stdin: OsPipe | undefined;
  readonly stdout: OsPipe;
  readonly stderr: OsPipe;

  constructor(withStdin: boolean, uid: number, gid: number) {
    const made: OsPipe[] = [];
    try {
      this.stdin = withStdin ? OsPipe.create() : undefined;
      if (this.stdin) made.push(this.stdin);
      this.stdout = OsPipe.create();
      made.push(this.stdout);
      this.stderr = OsPipe.create();
      made.push(this.stderr);
      this.stdin?.chownEnd('read', uid, gid);
      this.stdout.chownEnd('write', uid, gid);
      this.stderr.chownEnd('write', uid, gid);
    } catch (err) {
      for (const p of made) p.close();
      throw err;
    }
  }

  /** fds 0, 1, 2 for the runtime's spawn. */
  childStdio(): ChildStdio[] {
    return [this.stdin ? this.stdin.readFd : 'ignore', this.stdout.writeFd, this.stderr.writeFd];
  }

  /**
   * After the runtime was spawned: drop our copies of the output write ends, so EOF arrives when the
   * container side closes. The stdin read end stays open until close(), as in the reference: writes to a
   * container that closed its stdin then block (backpressure) instead of failing.
   */
  closeChildEnds(): void {
    this.stdout.closeWrite();
    this.stderr.closeWrite();
  }

  close(): void {
    this.stdin?.close();
    this.stdout.close();
    this.stderr.close();
  }
}
