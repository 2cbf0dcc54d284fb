/**
 * ttrpc server over unix sockets, wire-compatible with containerd/ttrpc v1.1–v1.2 for unary methods.
 * Emits 'connection' and 'disconnect' (argument: the new connection count) so the shim can notice when
 * containerd has gone away.
 */
import { EventEmitter } from 'node:events';
import { createServer, type Server, type Socket } from 'node:net';
import type { Logger } from 'pino';
import { Code, type WireStatus } from '../errdefs.js';
import { MAX_MESSAGE } from './frame.js';
import { silentLogger, type TtrpcLogger } from './logger.js';
import { isSameUser, peerCredentials } from './peercred.js';
import { ServerConnection, type ConnectionHandoff, type KeepCall } from './server-connection.js';
import type { RawHandler } from './service.js';

export interface TtrpcServerOptions {
  logger?: Logger | TtrpcLogger;
  /** Refuse peers whose uid or gid differs from our effective ids (ttrpc UnixSocketRequireSameUser). */
  requireSameUser?: boolean;
  maxMessageSize?: number;
}

export type ListenTarget = { path: string } | { fd: number };

/** A server handed to another process: its listening socket and every connection (see TtrpcServer.adopt). */
export interface ServerHandoff {
  readonly listenerFd: number;
  readonly connections: readonly ConnectionHandoff[];
}

export interface ShutdownOptions {
  /** When aborted, connections with calls still running are destroyed instead of waited for. */
  signal?: AbortSignal;
}

export class TtrpcServer extends EventEmitter {
  private readonly log: TtrpcLogger;
  private readonly requireSameUser: boolean;
  private readonly maxMessage: number;
  private readonly services = new Map<string, Map<string, RawHandler>>();
  private readonly connections = new Set<ServerConnection>();
  private listener: Server | undefined;
  private accepting = true;
  /** A hand-over is being prepared: connections read nothing, new ones are held as they come. */
  private holding = false;

  constructor(opts: TtrpcServerOptions = {}) {
    super();
    this.log = opts.logger ?? silentLogger;
    this.requireSameUser = opts.requireSameUser ?? true;
    this.maxMessage = opts.maxMessageSize ?? MAX_MESSAGE;
  }

  get connectionCount(): number {
    return this.connections.size;
  }

  /** Adds methods to a service by its full name, e.g. `containerd.task.v2.Task`. */
  register(service: string, methods: Record<string, RawHandler>): void {
    let table = this.services.get(service);
    if (!table) this.services.set(service, (table = new Map()));
    for (const [name, handler] of Object.entries(methods)) table.set(name, handler);
  }

  /** Listens on a socket path, or on an inherited listening socket (e.g. fd 3 from containerd). */
  listen(target: ListenTarget): Promise<void> {
    if (this.listener) return Promise.reject(new Error('ttrpc: server already listening'));
    // Paused until the peer credentials are checked: no byte is read from a refused peer.
    const listener = createServer({ pauseOnConnect: true }, (socket) => this.accept(socket));
    this.listener = listener;
    return new Promise((resolve, reject) => {
      const onError = (err: Error): void => {
        this.listener = undefined;
        reject(err);
      };
      listener.once('error', onError);
      const onListening = (): void => {
        listener.off('error', onError);
        listener.on('error', (err) => this.log.error({ err }, 'ttrpc: listener error'));
        resolve();
      };
      if ('path' in target) listener.listen(target.path, onListening);
      else listener.listen({ fd: target.fd }, onListening);
    });
  }

  /** Stops accepting connections; existing ones keep running. */
  close(): void {
    this.accepting = false;
    this.listener?.close();
  }

  /**
   * Stops accepting, stops reading new requests, waits until each connection's active calls are answered and
   * closes it (as ttrpc's Server.Shutdown). An aborted signal destroys what is left.
   */
  async shutdown(opts: ShutdownOptions = {}): Promise<void> {
    this.close();
    const conns = [...this.connections];
    const drained = Promise.all(conns.map((c) => c.drain()));
    const signal = opts.signal;
    if (!signal) {
      await drained;
      return;
    }
    const force = (): void => conns.forEach((c) => c.destroy());
    if (signal.aborted) force();
    else signal.addEventListener('abort', force, { once: true });
    try {
      await drained;
    } finally {
      signal.removeEventListener('abort', force);
    }
  }

  /** Stops handling requests on every connection (new ones included); what arrives is kept. */
  hold(): void {
    this.holding = true;
    for (const c of this.connections) c.hold();
  }

  /** Undoes hold(). */
  release(): void {
    this.holding = false;
    for (const c of this.connections) c.release();
  }

  /** Resolves once every call in flight that `keep` does not accept has been answered. */
  async untilAnswered(keep: KeepCall): Promise<void> {
    await Promise.all([...this.connections].map((c) => c.untilAnswered(keep)));
  }

  async writesFlushed(): Promise<void> {
    await Promise.all([...this.connections].map((c) => c.writesFlushed()));
  }

  /** Synchronous: the listening socket and each held connection, or why the server cannot be handed over. */
  handoff(keep: KeepCall): ServerHandoff | string {
    const listenerFd = (this.listener as unknown as { _handle?: { fd?: number } } | undefined)?._handle?.fd;
    if (!this.accepting || typeof listenerFd !== 'number' || listenerFd < 0) return 'the server is not listening';
    const connections: ConnectionHandoff[] = [];
    for (const c of this.connections) {
      const h = c.handoff(keep);
      if (typeof h === 'string') return h;
      connections.push(h);
    }
    return { listenerFd, connections };
  }

  /**
   * Serves what another process handed over: listens on its socket and adopts each connection (their calls
   * re-run), then handles what they had not read.
   */
  async adopt(state: ServerHandoff): Promise<void> {
    await this.listen({ fd: state.listenerFd });
    state.connections.forEach((h) => {
      const conn = ServerConnection.adopt(h, (s, m) => this.resolve(s, m), this.log, this.maxMessage);
      this.track(conn);
      conn.start();
    });
  }

  private track(conn: ServerConnection): void {
    this.connections.add(conn);
    void conn.closed.then(() => {
      this.connections.delete(conn);
      this.emit('disconnect', this.connections.size);
    });
    this.emit('connection', this.connections.size);
  }

  private accept(socket: Socket): void {
    if (!this.accepting) {
      socket.destroy();
      return;
    }
    if (this.requireSameUser && !this.peerAllowed(socket)) {
      socket.destroy();
      return;
    }
    const conn = new ServerConnection(socket, (s, m) => this.resolve(s, m), this.log, this.maxMessage);
    this.track(conn);
    if (this.holding) conn.hold();
    else conn.start();
  }

  private peerAllowed(socket: Socket): boolean {
    try {
      const cred = peerCredentials(socket);
      if (isSameUser(cred)) return true;
      this.log.warn({ peer_pid: cred.pid, peer_uid: cred.uid, peer_gid: cred.gid }, 'ttrpc: invalid credentials');
    } catch (err) {
      this.log.warn({ err }, 'ttrpc: cannot read peer credentials');
    }
    return false;
  }

  private resolve(service: string, method: string): RawHandler | WireStatus {
    const table = this.services.get(service);
    if (!table) return { code: Code.Unimplemented, message: `service ${service}` };
    return table.get(method) ?? { code: Code.Unimplemented, message: `method ${method}` };
  }
}
