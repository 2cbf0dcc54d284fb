import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ShimError } from '../../protocol/errdefs.js';
import { Timestamp } from '../../protocol/messages.js';
import { fromTimestamp, isZeroTime, nowTimestamp, toTimestamp, ZERO_TIME } from '../../protocol/timestamp.js';

test('ZERO_TIME is Go time.Time{} and encodes as a 10-byte negative varint', () => {
  assert.deepEqual(ZERO_TIME, { seconds: -62135596800, nanos: 0 });
  assert.equal(fromTimestamp(ZERO_TIME).toISOString(), '0001-01-01T00:00:00.000Z');
  const bytes = Timestamp.encode(ZERO_TIME).finish();
  // tag 0x08, then 10 varint bytes (two's complement of a negative int64), nanos omitted
  assert.equal(Buffer.from(bytes).toString('hex'), '088092b8c398feffffff01');
  assert.equal(bytes.length, 11);
  assert.deepEqual(Timestamp.decode(bytes), ZERO_TIME);
  assert.ok(Object.isFrozen(ZERO_TIME));
});

test('toTimestamp: undefined is a fresh zero time', () => {
  const t = toTimestamp(undefined);
  assert.deepEqual(t, ZERO_TIME);
  t.seconds = 1; // a copy, not the frozen constant
  assert.equal(ZERO_TIME.seconds, -62135596800);
});

test('toTimestamp: Date and epoch milliseconds', () => {
  assert.deepEqual(toTimestamp(new Date('2023-11-14T22:13:20.123Z')), { seconds: 1700000000, nanos: 123000000 });
  assert.deepEqual(toTimestamp(1700000000123), { seconds: 1700000000, nanos: 123000000 });
  assert.deepEqual(toTimestamp(1700000000123.456), { seconds: 1700000000, nanos: 123456000 });
  assert.deepEqual(toTimestamp(0), { seconds: 0, nanos: 0 });
  // Before 1970 nanos stay positive, as Go normalises them.
  assert.deepEqual(toTimestamp(-1500), { seconds: -2, nanos: 500000000 });
  assert.deepEqual(toTimestamp(new Date('0001-01-01T00:00:00Z')), ZERO_TIME);
});

test('toTimestamp rejects invalid dates with InvalidArgument', () => {
  assert.throws(
    () => toTimestamp(new Date('garbage')),
    (e: unknown) => e instanceof ShimError && e.kind === 'InvalidArgument',
  );
  assert.throws(() => toTimestamp(Number.NaN), ShimError);
});

test('fromTimestamp: missing means zero time; ms resolution', () => {
  assert.equal(fromTimestamp(undefined).getTime(), -62135596800000);
  assert.equal(fromTimestamp({ seconds: 1700000000, nanos: 123999999 }).toISOString(), '2023-11-14T22:13:20.123Z');
  assert.equal(fromTimestamp({ seconds: -2, nanos: 500000000 }).getTime(), -1500);
});

test('isZeroTime and nowTimestamp', () => {
  assert.ok(isZeroTime(undefined));
  assert.ok(isZeroTime({ seconds: -62135596800, nanos: 0 }));
  assert.ok(!isZeroTime({ seconds: 0, nanos: 0 }));
  const before = Date.now();
  const now = nowTimestamp();
  assert.ok(!isZeroTime(now));
  assert.ok(Math.abs(fromTimestamp(now).getTime() - before) < 60_000);
  assert.ok(now.nanos >= 0 && now.nanos < 1e9);
});
