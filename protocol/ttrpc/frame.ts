/**
 * ttrpc framing: a 10-byte header (BE uint32 data length, BE uint32 stream id, u8 type, u8 flags) followed by
 * `length` data bytes. No preface, handshake or flow control (containerd/ttrpc `channel.go`, `PROTOCOL.md`).
 */

export const HEADER_SIZE = 10;
/** ttrpc's `messageLengthMax`: a frame with a *longer* data part is refused. */
export const MAX_MESSAGE = 4 << 20;

export const MessageType = {
  Request: 1,
  Response: 2,
  /** Streaming data (ttrpc >= 1.2). */
  Data: 3,
} as const;

/** Frame flags of ttrpc >= 1.2 streams; unary calls use 0. */
export const Flags = {
  RemoteClosed: 0x01,
  RemoteOpen: 0x02,
  NoData: 0x04,
} as const;

export interface FrameHeader {
  readonly length: number;
  readonly streamId: number;
  readonly type: number;
  readonly flags: number;
}

export interface Frame extends FrameHeader {
  readonly data: Buffer;
}

/** What the decoder reports: a complete frame, or a frame whose data was too long and has been skipped. */
export type DecodedItem =
  | { readonly kind: 'frame'; readonly frame: Frame }
  | { readonly kind: 'oversize'; readonly header: FrameHeader };

/** The status message ttrpc uses for oversized frames, in either direction. */
export function oversizeMessage(length: number, max = MAX_MESSAGE): string {
  return `message length ${length} exceed maximum message size of ${max}`;
}

export function encodeHeader(length: number, streamId: number, type: number, flags = 0): Buffer {
  const header = Buffer.allocUnsafe(HEADER_SIZE);
  header.writeUInt32BE(length, 0);
  header.writeUInt32BE(streamId >>> 0, 4);
  header.writeUInt8(type & 0xff, 8);
  header.writeUInt8(flags & 0xff, 9);
  return header;
}

/** One buffer holding header and data, ready for a single socket write. */
export function encodeFrame(streamId: number, type: number, data: Uint8Array = new Uint8Array(0), flags = 0): Buffer {
  const frame = Buffer.allocUnsafe(HEADER_SIZE + data.length);
  encodeHeader(data.length, streamId, type, flags).copy(frame, 0);
  frame.set(data, HEADER_SIZE);
  return frame;
}

/**
 * Chunk-safe frame decoder. Memory is bounded: it holds at most one header and one frame's data (<= maxMessage);
 * the data of an oversized frame is counted off as it arrives and never stored.
 */
export class FrameDecoder {
  private readonly header = Buffer.alloc(HEADER_SIZE);
  private headerFill = 0;
  private current: FrameHeader | undefined;
  private data: Buffer | undefined;
  private dataFill = 0;
  /** Bytes still to throw away for an oversized frame. */
  private discarding = 0;

  constructor(private readonly maxMessage = MAX_MESSAGE) {}

  /** True when no partial frame is pending, i.e. the peer stopped at a frame boundary. */
  get idle(): boolean {
    return this.headerFill === 0 && this.current === undefined && this.discarding === 0;
  }

  /**
   * The bytes of the partial frame received so far, as they arrived (header, then data), without changing
   * the decoder: what a process handing the connection over must pass on. undefined while the data of an
   * oversized frame is being skipped (it cannot be re-sent).
   */
  pendingBytes(): Buffer | undefined {
    if (this.discarding > 0) return undefined;
    if (this.current === undefined) return Buffer.from(this.header.subarray(0, this.headerFill));
    const head = encodeHeader(this.current.length, this.current.streamId, this.current.type, this.current.flags);
    return Buffer.concat([head, (this.data as Buffer).subarray(0, this.dataFill)]);
  }

  /** Feeds one chunk; returns everything it completed, in order. */
  push(chunk: Uint8Array): DecodedItem[] {
    const out: DecodedItem[] = [];
    let pos = 0;
    while (pos < chunk.length) {
      if (this.discarding > 0) {
        const n = Math.min(this.discarding, chunk.length - pos);
        this.discarding -= n;
        pos += n;
        continue;
      }
      if (this.current === undefined) {
        const n = Math.min(HEADER_SIZE - this.headerFill, chunk.length - pos);
        this.header.set(chunk.subarray(pos, pos + n), this.headerFill);
        this.headerFill += n;
        pos += n;
        if (this.headerFill < HEADER_SIZE) break;
        this.headerFill = 0;
        const header: FrameHeader = {
          length: this.header.readUInt32BE(0),
          streamId: this.header.readUInt32BE(4),
          type: this.header.readUInt8(8),
          flags: this.header.readUInt8(9),
        };
        if (header.length > this.maxMessage) {
          // Reported at once; the data is skipped afterwards, as ttrpc's recv() discards it.
          this.discarding = header.length;
          out.push({ kind: 'oversize', header });
          continue;
        }
        if (header.length === 0) {
          out.push({ kind: 'frame', frame: { ...header, data: Buffer.alloc(0) } });
          continue;
        }
        this.current = header;
        this.data = Buffer.allocUnsafe(header.length);
        this.dataFill = 0;
        continue;
      }
      const data = this.data as Buffer;
      const n = Math.min(data.length - this.dataFill, chunk.length - pos);
      data.set(chunk.subarray(pos, pos + n), this.dataFill);
      this.dataFill += n;
      pos += n;
      if (this.dataFill === data.length) {
        out.push({ kind: 'frame', frame: { ...this.current, data } });
        this.current = undefined;
        this.data = undefined;
      }
    }
    return out;
  }
}
