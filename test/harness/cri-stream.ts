// A client for CRI's streaming server (the URL that Exec and Attach return), as `kubectl exec` reaches it
// through the kubelet: a WebSocket (RFC 6455) with subprotocol v4.channel.k8s.io. Every binary message starts
// with a channel byte: 0 stdin, 1 stdout, 2 stderr, 3 error (a JSON metav1.Status when the process ends),
// 4 resize (JSON {"Width","Height"}). Just enough WebSocket for that: masked client frames, no extensions.
import { randomBytes } from 'node:crypto';
import { request } from 'node:http';
import type { Socket } from 'node:net';

export const STDIN = 0;
export const STDOUT = 1;
export const STDERR = 2;
export const ERROR = 3;
export const RESIZE = 4;
const PROTOCOL = 'v4.channel.k8s.io';

/** The end of the process as the error channel reports it. */
export interface StreamStatus {
  status?: string;
  reason?: string;
  message?: string;
  details?: { causes?: Array<{ reason?: string; message?: string }> };
}

/** Exit code from a v4 status: 0 on Success, the ExitCode cause otherwise (undefined if absent). */
export function exitCodeOf(s: StreamStatus): number | undefined {
  if (s.status === 'Success') return 0;
  const cause = s.details?.causes?.find((c) => c.reason === 'ExitCode');
  return cause?.message === undefined ? undefined : Number(cause.message);
}

export class CriStream {
  private buffered = Buffer.alloc(0);
  private fragments: Buffer[] = [];
  private readonly output = new Map<number, Buffer[]>();
  private waiters: Array<() => void> = [];
  private statusText = '';
  private ended = false;
  /** Resolves when the server closes the connection. */
  readonly closed: Promise<void>;
  private markClosed!: () => void;

  private constructor(private readonly socket: Socket) {
    this.closed = new Promise((resolve) => (this.markClosed = resolve));
    socket.on('data', (d: Buffer) => this.onData(d));
    const end = () => {
      if (this.ended) return;
      this.ended = true;
      this.markClosed();
      this.wake();
    };
    socket.on('close', end);
    socket.on('end', end);
    socket.on('error', end);
  }

  /** Opens the WebSocket to an Exec/Attach URL (http://host:port/exec/<token>). */
  static connect(url: string, timeoutMs = 30_000): Promise<CriStream> {
    return new Promise((resolve, reject) => {
      const req = request(url, {
        method: 'GET',
        timeout: timeoutMs,
        headers: {
          Connection: 'Upgrade',
          Upgrade: 'websocket',
          'Sec-WebSocket-Version': '13',
          'Sec-WebSocket-Key': randomBytes(16).toString('base64'),
          'Sec-WebSocket-Protocol': PROTOCOL,
          Origin: new URL(url).origin,
        },
      });
      req.on('upgrade', (res, socket, head) => {
        const proto = res.headers['sec-websocket-protocol'];
        if (proto !== PROTOCOL) {
          socket.destroy();
          reject(new Error(`streaming server chose subprotocol ${String(proto)}`));
          return;
        }
        const s = new CriStream(socket);
        if (head.length > 0) s.onData(head);
        resolve(s);
      });
      req.on('response', (res) => {
        let body = '';
        res.on('data', (d: Buffer) => (body += d.toString()));
        res.on('end', () => reject(new Error(`no upgrade: HTTP ${res.statusCode} ${body.slice(0, 300)}`)));
      });
      req.on('timeout', () => req.destroy(new Error(`connect to ${url} timed out`)));
      req.on('error', reject);
      req.end();
    });
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  private onData(d: Buffer): void {
    this.buffered = Buffer.concat([this.buffered, d]);
    for (;;) {
      const b = this.buffered;
      if (b.length < 2) return;
      const fin = (b[0]! & 0x80) !== 0;
      const opcode = b[0]! & 0x0f;
      const masked = (b[1]! & 0x80) !== 0;
      let len = b[1]! & 0x7f;
      let off = 2;
      if (len === 126) {
        if (b.length < 4) return;
        len = b.readUInt16BE(2);
        off = 4;
      } else if (len === 127) {
        if (b.length < 10) return;
        len = Number(b.readBigUInt64BE(2));
        off = 10;
      }
      const maskOff = off;
      if (masked) off += 4;
      if (b.length < off + len) return;
      let payload = Buffer.from(b.subarray(off, off + len));
      if (masked) for (let i = 0; i < payload.length; i++) payload[i]! ^= b[maskOff + (i % 4)]!;
      this.buffered = b.subarray(off + len);
      if (opcode === 0x8) {
        this.sendFrame(0x8, Buffer.alloc(0));
        this.socket.end();
        continue;
      }
      if (opcode === 0x9) {
        this.sendFrame(0xa, payload);
        continue;
      }
      if (opcode === 0xa) continue;
      this.fragments.push(payload);
      if (!fin) continue;
      payload = Buffer.concat(this.fragments);
      this.fragments = [];
      if (payload.length === 0) continue;
      const channel = payload[0]!;
      const data = payload.subarray(1);
      if (channel === ERROR) this.statusText += data.toString();
      else {
        const list = this.output.get(channel) ?? [];
        list.push(data);
        this.output.set(channel, list);
      }
      this.wake();
    }
  }

  private sendFrame(opcode: number, payload: Buffer): void {
    const mask = randomBytes(4);
    const len = payload.length;
    const head = len < 126 ? Buffer.from([0x80 | opcode, 0x80 | len]) : Buffer.alloc(4);
    if (len >= 126) {
      if (len > 0xffff) throw new Error('frame too large for this client');
      head[0] = 0x80 | opcode;
      head[1] = 0x80 | 126;
      head.writeUInt16BE(len, 2);
    }
    const body = Buffer.from(payload);
    for (let i = 0; i < body.length; i++) body[i]! ^= mask[i % 4]!;
    if (!this.socket.destroyed) this.socket.write(Buffer.concat([head, mask, body]));
  }

  /** Sends data on a channel (stdin, resize). */
  send(channel: number, data: string | Buffer): void {
    this.sendFrame(0x2, Buffer.concat([Buffer.from([channel]), Buffer.from(data)]));
  }

  write(text: string): void {
    this.send(STDIN, text);
  }

  resize(width: number, height: number): void {
    this.send(RESIZE, JSON.stringify({ Width: width, Height: height }));
  }

  /** Everything received on a channel so far. */
  text(channel = STDOUT): string {
    return Buffer.concat(this.output.get(channel) ?? []).toString();
  }

  /** Waits until `cond` holds for the received output (re-checked on every message), or throws. */
  async until(cond: (stream: CriStream) => boolean, timeoutMs: number, what: string): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!cond(this)) {
      if (this.ended) throw new Error(`stream closed while waiting for ${what}; stdout: ${JSON.stringify(this.text().slice(-500))}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out waiting for ${what}; stdout: ${JSON.stringify(this.text().slice(-500))}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, Math.min(left, 250));
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  /** The status from the error channel once the server closed the stream. */
  async status(timeoutMs = 60_000): Promise<StreamStatus> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error('stream did not end')), timeoutMs)));
    try {
      await Promise.race([this.closed, timeout]);
    } finally {
      clearTimeout(timer);
    }
    return this.statusText ? (JSON.parse(this.statusText) as StreamStatus) : {};
  }

  close(): void {
    if (this.ended) return;
    this.sendFrame(0x8, Buffer.alloc(0));
    this.socket.end();
    setTimeout(() => this.socket.destroy(), 2_000).unref();
  }
}
