/**
 * Hand-written codec for ttrpc's own messages (`request.proto`, package ttrpc) and google.rpc.Status.
 * Proto3 rules as Go's protobuf applies them: default values are not written, unknown fields are skipped,
 * a field with an unexpected wire type is treated as unknown, truncation and invalid UTF-8 are errors.
 */
import { BinaryReader, BinaryWriter, WireType } from '@bufbuild/protobuf/wire';

export interface KeyValue {
  key: string;
  value: string;
}

export interface Request {
  service: string;
  method: string;
  payload: Uint8Array;
  /** Nanoseconds; 0 means no deadline. */
  timeoutNano: bigint;
  metadata: KeyValue[];
}

export interface AnyMessage {
  typeUrl: string;
  value: Uint8Array;
}

export interface Status {
  code: number;
  message: string;
  details: AnyMessage[];
}

export interface Response {
  /** Absent on success: the Go server sends no status field then. */
  status?: Status;
  payload: Uint8Array;
}

const EMPTY = new Uint8Array(0);

/** Reads fields until `end`, handing each one to `field`; returns false from `field` to skip it. */
function readFields(
  reader: BinaryReader,
  end: number,
  field: (fieldNo: number, wireType: WireType) => boolean,
): void {
  while (reader.pos < end) {
    const [fieldNo, wireType] = reader.tag();
    if (fieldNo === 0) throw new Error('invalid field number 0');
    if (!field(fieldNo, wireType)) reader.skip(wireType, fieldNo);
  }
  if (reader.pos !== end) throw new Error('premature EOF');
}

const readString = (reader: BinaryReader): string => reader.string(true);

function subReader(reader: BinaryReader): { reader: BinaryReader; end: number } {
  const len = reader.uint32();
  const end = reader.pos + len;
  if (end > reader.len) throw new RangeError('premature EOF');
  return { reader, end };
}

function decodeKeyValue(reader: BinaryReader, end: number): KeyValue {
  const kv: KeyValue = { key: '', value: '' };
  readFields(reader, end, (no, wt) => {
    if (wt !== WireType.LengthDelimited) return false;
    if (no === 1) kv.key = readString(reader);
    else if (no === 2) kv.value = readString(reader);
    else return false;
    return true;
  });
  return kv;
}

export function encodeRequest(req: Request): Uint8Array {
  const w = new BinaryWriter();
  if (req.service !== '') w.tag(1, WireType.LengthDelimited).string(req.service);
  if (req.method !== '') w.tag(2, WireType.LengthDelimited).string(req.method);
  if (req.payload.length > 0) w.tag(3, WireType.LengthDelimited).bytes(req.payload);
  if (req.timeoutNano !== 0n) w.tag(4, WireType.Varint).int64(req.timeoutNano);
  for (const kv of req.metadata) {
    w.tag(5, WireType.LengthDelimited).fork();
    if (kv.key !== '') w.tag(1, WireType.LengthDelimited).string(kv.key);
    if (kv.value !== '') w.tag(2, WireType.LengthDelimited).string(kv.value);
    w.join();
  }
  return w.finish();
}

export function decodeRequest(bytes: Uint8Array): Request {
  const reader = new BinaryReader(bytes);
  const req: Request = { service: '', method: '', payload: EMPTY, timeoutNano: 0n, metadata: [] };
  readFields(reader, reader.len, (no, wt) => {
    if (no === 4) {
      if (wt !== WireType.Varint) return false;
      req.timeoutNano = BigInt(reader.int64());
      return true;
    }
    if (wt !== WireType.LengthDelimited) return false;
    switch (no) {
      case 1:
        req.service = readString(reader);
        return true;
      case 2:
        req.method = readString(reader);
        return true;
      case 3:
        req.payload = reader.bytes();
        return true;
      case 5: {
        const sub = subReader(reader);
        req.metadata.push(decodeKeyValue(sub.reader, sub.end));
        return true;
      }
      default:
        return false;
    }
  });
  return req;
}

function writeStatus(w: BinaryWriter, st: Status): void {
  if (st.code !== 0) w.tag(1, WireType.Varint).int32(st.code);
  if (st.message !== '') w.tag(2, WireType.LengthDelimited).string(st.message);
  for (const d of st.details) {
    w.tag(3, WireType.LengthDelimited).fork();
    if (d.typeUrl !== '') w.tag(1, WireType.LengthDelimited).string(d.typeUrl);
    if (d.value.length > 0) w.tag(2, WireType.LengthDelimited).bytes(d.value);
    w.join();
  }
}

function decodeAny(reader: BinaryReader, end: number): AnyMessage {
  const any: AnyMessage = { typeUrl: '', value: EMPTY };
  readFields(reader, end, (no, wt) => {
    if (wt !== WireType.LengthDelimited) return false;
    if (no === 1) any.typeUrl = readString(reader);
    else if (no === 2) any.value = reader.bytes();
    else return false;
    return true;
  });
  return any;
}

function decodeStatus(reader: BinaryReader, end: number): Status {
  const st: Status = { code: 0, message: '', details: [] };
  readFields(reader, end, (no, wt) => {
    if (no === 1 && wt === WireType.Varint) {
      st.code = reader.int32();
      return true;
    }
    if (wt !== WireType.LengthDelimited) return false;
    if (no === 2) st.message = readString(reader);
    else if (no === 3) {
      const sub = subReader(reader);
      st.details.push(decodeAny(sub.reader, sub.end));
    } else return false;
    return true;
  });
  return st;
}

export function encodeResponse(res: Response): Uint8Array {
  const w = new BinaryWriter();
  if (res.status) {
    // An empty sub-message is still written when present, as Go does for a non-nil pointer.
    w.tag(1, WireType.LengthDelimited).fork();
    writeStatus(w, res.status);
    w.join();
  }
  if (res.payload.length > 0) w.tag(2, WireType.LengthDelimited).bytes(res.payload);
  return w.finish();
}

export function decodeResponse(bytes: Uint8Array): Response {
  const reader = new BinaryReader(bytes);
  const res: Response = { payload: EMPTY };
  readFields(reader, reader.len, (no, wt) => {
    if (wt !== WireType.LengthDelimited) return false;
    if (no === 1) {
      const sub = subReader(reader);
      res.status = decodeStatus(sub.reader, sub.end);
    } else if (no === 2) res.payload = reader.bytes();
    else return false;
    return true;
  });
  return res;
}
