/**
 * Byte-level ttrpc for interop checks: hand-made protobuf and frames over a plain unix socket, written
 * independently of protocol/ttrpc so that captured bytes are judged by a second implementation.
 */
import { connect, type Socket } from 'node:net';

export const HEADER_SIZE = 10;
export const TYPE_REQUEST = 1;
export const TYPE_RESPONSE = 2;

const WIRE_VARINT = 0;
const WIRE_BYTES = 2;

export function varint(value: number | bigint): Buffer {
  let v = BigInt.asUintN(64, BigInt(value));
  const out: number[] = [];
  do {
    let byte = Number(v & 0x7fn);
    v >>= 7n;
    if (v > 0n) byte |= 0x80;
    out.push(byte);
  } while (v > 0n);
  return Buffer.from(out);
}

const tag = (no: number, wire: number): Buffer => varint((no << 3) | wire);

/** A length-delimited field (string, bytes, embedded message). */
export function bytesField(no: number, value: string | Uint8Array): Buffer {
  const data = typeof value === 'string' ? Buffer.from(value, 'utf8') : Buffer.from(value);
  return Buffer.concat([tag(no, WIRE_BYTES), varint(data.length), data]);
}

export function varintField(no: number, value: number | bigint | boolean): Buffer {
  return Buffer.concat([tag(no, WIRE_VARINT), varint(typeof value === 'boolean' ? Number(value) : value)]);
}

export interface RawRequest {
  service: string;
  method: string;
  payload?: Uint8Array;
  timeoutNano?: bigint;
  metadata?: Record<string, string>;
}

/** ttrpc.Request, field by field, as the Go client lays it out (service, method, payload, timeout, metadata). */
export function encodeRequest(r: RawRequest): Buffer {
  const parts = [bytesField(1, r.service), bytesField(2, r.method)];
  if (r.payload && r.payload.length > 0) parts.push(bytesField(3, r.payload));
  if (r.timeoutNano) parts.push(varintField(4, r.timeoutNano));
  for (const [key, value] of Object.entries(r.metadata ?? {})) {
    parts.push(bytesField(5, Buffer.concat([bytesField(1, key), bytesField(2, value)])));
  }
  return Buffer.concat(parts);
}

export function frame(streamId: number, type: number, data: Uint8Array, flags = 0): Buffer {
  const header = Buffer.alloc(HEADER_SIZE);
  header.writeUInt32BE(data.length, 0);
  header.writeUInt32BE(streamId, 4);
  header.writeUInt8(type, 8);
  header.writeUInt8(flags, 9);
  return Buffer.concat([header, data]);
}

export interface RawFrame {
  length: number;
  streamId: number;
  type: number;
  flags: number;
  data: Buffer;
  /** Header and data exactly as read. */
  raw: Buffer;
}

export interface PbField {
  no: number;
  wire: number;
  /** varint fields as bigint, length-delimited ones as bytes. */
  value: bigint | Buffer;
}

function readVarint(buf: Buffer, pos: number): [bigint, number] {
  let result = 0n;
  let shift = 0n;
  for (;;) {
    if (pos >= buf.length) throw new Error('truncated varint');
    const b = buf[pos++]!;
    result |= BigInt(b & 0x7f) << shift;
    if ((b & 0x80) === 0) return [result, pos];
    shift += 7n;
  }
}

/** Splits a protobuf message into its top-level fields (varint and length-delimited only). */
export function parseFields(buf: Buffer): PbField[] {
  const fields: PbField[] = [];
  let pos = 0;
  while (pos < buf.length) {
    const [key, p1] = readVarint(buf, pos);
    const no = Number(key >> 3n);
    const wire = Number(key & 7n);
    if (wire === WIRE_VARINT) {
      const [v, p2] = readVarint(buf, p1);
      fields.push({ no, wire, value: v });
      pos = p2;
    } else if (wire === WIRE_BYTES) {
      const [len, p2] = readVarint(buf, p1);
      const end = p2 + Number(len);
      if (end > buf.length) throw new Error('truncated field');
      fields.push({ no, wire, value: buf.subarray(p2, end) });
      pos = end;
    } else {
      throw new Error(`unexpected wire type ${wire}`);
    }
  }
  return fields;
}

/** A raw client connection: send bytes, read whole frames keyed by stream id. */
export class RawTtrpcConn {
  private buffer = Buffer.alloc(0);
  private readonly frames: RawFrame[] = [];
  private readonly waiters: (() => void)[] = [];
  private closed = false;

  private constructor(private readonly socket: Socket) {
    socket.on('data', (chunk: Buffer) => {
      this.buffer = Buffer.concat([this.buffer, chunk]);
      while (this.buffer.length >= HEADER_SIZE) {
        const length = this.buffer.readUInt32BE(0);
        if (this.buffer.length < HEADER_SIZE + length) break;
        const raw = Buffer.from(this.buffer.subarray(0, HEADER_SIZE + length));
        this.buffer = this.buffer.subarray(HEADER_SIZE + length);
        this.frames.push({ length, streamId: raw.readUInt32BE(4), type: raw[8]!, flags: raw[9]!, data: raw.subarray(HEADER_SIZE), raw });
      }
      this.wake();
    });
    socket.on('error', () => undefined);
    socket.once('close', () => {
      this.closed = true;
      this.wake();
    });
  }

  static open(path: string, timeoutMs = 10_000): Promise<RawTtrpcConn> {
    return new Promise((resolve, reject) => {
      const s = connect(path);
      const timer = setTimeout(() => {
        s.destroy();
        reject(new Error(`connect ${path}: timed out`));
      }, timeoutMs);
      s.once('error', (err) => {
        clearTimeout(timer);
        reject(err);
      });
      s.once('connect', () => {
        clearTimeout(timer);
        resolve(new RawTtrpcConn(s));
      });
    });
  }

  private wake(): void {
    for (const w of this.waiters.splice(0)) w();
  }

  send(bytes: Uint8Array): void {
    this.socket.write(bytes);
  }

  /** The next frame on `streamId` (frames on other ids stay queued). */
  async next(streamId: number, timeoutMs = 30_000): Promise<RawFrame> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const i = this.frames.findIndex((f) => f.streamId === streamId);
      if (i >= 0) return this.frames.splice(i, 1)[0]!;
      if (this.closed) throw new Error(`connection closed before a frame on stream ${streamId}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no frame on stream ${streamId} after ${timeoutMs} ms`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  /** Sends one request frame and returns the response frame on the same stream. */
  async call(streamId: number, req: RawRequest): Promise<RawFrame> {
    this.send(frame(streamId, TYPE_REQUEST, encodeRequest(req)));
    return this.next(streamId);
  }

  close(): void {
    this.socket.destroy();
  }
}
