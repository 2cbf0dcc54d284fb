import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ExitHold, type DropReason } from '../../reaper/exit-hold.js';
import type { Exit } from '../../reaper/types.js';

const exitAt = (pid: number, ms: number, status = 0): Exit => ({ pid, status, at: new Date(ms) });

function hold(max: number, ageMs: number): { h: ExitHold; drops: Array<[number, DropReason]> } {
  const drops: Array<[number, DropReason]> = [];
  return { h: new ExitHold(max, ageMs, (e, r) => drops.push([e.pid, r])), drops };
}

test('take hands an exit out once', () => {
  const { h } = hold(4, 1000);
  h.put(exitAt(10, 0, 3));
  assert.equal(h.take(10, 1)?.status, 3);
  assert.equal(h.take(10, 2), undefined);
});

test('count bound drops the oldest, logged as overflow', () => {
  const { h, drops } = hold(2, 1_000_000);
  h.put(exitAt(1, 0));
  h.put(exitAt(2, 1));
  h.put(exitAt(3, 2));
  assert.deepEqual(drops, [[1, 'overflow']]);
  assert.equal(h.size, 2);
  assert.equal(h.dropped, 1);
  assert.equal(h.take(1, 3), undefined);
  assert.ok(h.take(3, 3));
});

test('age bound drops expired exits', () => {
  const { h, drops } = hold(10, 100);
  h.put(exitAt(1, 0));
  h.put(exitAt(2, 50));
  assert.equal(h.take(2, 120)?.pid, 2);
  assert.deepEqual(drops, [[1, 'expired']]);
});

test('a reused pid replaces the older unclaimed exit', () => {
  const { h, drops } = hold(10, 1000);
  h.put(exitAt(7, 0, 1));
  h.put(exitAt(7, 5, 2));
  assert.deepEqual(drops, [[7, 'replaced']]);
  assert.equal(h.take(7, 6)?.status, 2);
});

test('holdMax 0 keeps nothing', () => {
  const { h, drops } = hold(0, 1000);
  h.put(exitAt(1, 0));
  assert.equal(h.size, 0);
  assert.deepEqual(drops, [[1, 'overflow']]);
});
