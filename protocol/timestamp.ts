/**
 * google.protobuf.Timestamp helpers with Go's conventions.
 *
 * Every `exited_at` in the shim API and in task events is non-nullable on the Go side: it is always on the
 * wire, and a process that has not exited carries Go's zero time (0001-01-01T00:00:00Z). Decoders must
 * treat a missing timestamp as that same zero time (shim-v2-protocol.md §4.1).
 */
import { invalidArgument } from './errdefs.js';
import { Timestamp } from './gen/google/protobuf/timestamp.js';

export { Timestamp };

/** Seconds from 0001-01-01T00:00:00Z to the Unix epoch, negated: Go's `time.Time{}` as a Timestamp. */
const GO_ZERO_SECONDS = -62135596800;

/** Go's zero time. Encodes as `08 80 92 b8 c3 98 fe ff ff ff 01` (a 10-byte negative varint, no nanos). */
export const ZERO_TIME: Readonly<Timestamp> = Object.freeze({ seconds: GO_ZERO_SECONDS, nanos: 0 });

/**
 * A Timestamp for a Date or for epoch milliseconds (fractions of a millisecond kept to the microsecond);
 * `undefined` gives the zero time (a fresh object, safe to mutate).
 */
export function toTimestamp(d: Date | number | undefined): Timestamp {
  if (d === undefined) return { ...ZERO_TIME };
  const ms = typeof d === 'number' ? d : d.getTime();
  if (!Number.isFinite(ms)) throw invalidArgument(`cannot convert ${String(d)} to a timestamp`);
  // floor, not trunc: nanos are always 0..999999999, also before 1970 (Go's normalisation).
  let seconds = Math.floor(ms / 1000);
  // Microsecond resolution: a double holding epoch ms today is only exact to ~0.25 µs.
  let nanos = Math.round((ms - seconds * 1000) * 1e3) * 1e3;
  if (nanos >= 1e9) {
    seconds += 1;
    nanos -= 1e9;
  }
  return { seconds, nanos };
}

/** Now, as a Timestamp (millisecond resolution). */
export function nowTimestamp(): Timestamp {
  return toTimestamp(Date.now());
}

/** The Date of a Timestamp (millisecond resolution); a missing timestamp is Go's zero time. */
export function fromTimestamp(ts: Timestamp | undefined): Date {
  const t = ts ?? ZERO_TIME;
  return new Date(t.seconds * 1000 + Math.floor(t.nanos / 1e6));
}

/** True for Go's zero time, and for a missing timestamp (which decoders must read as zero time). */
export function isZeroTime(ts: Timestamp | undefined): boolean {
  return ts === undefined || (ts.seconds === GO_ZERO_SECONDS && ts.nanos === 0);
}
