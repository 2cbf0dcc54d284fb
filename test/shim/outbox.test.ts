import { test } from 'node:test';
import assert from 'node:assert/strict';
import pino from 'pino';
import { OrderedOutbox } from '../../shim/events/outbox.js';

const silent = pino({ level: 'silent' });

test('outbox delivers in order and keeps the head until it is delivered', async () => {
  const delivered: number[] = [];
  let failuresLeft = 5;
  const box = new OrderedOutbox<number>({
    send: async (n) => {
      if (n === 3 && failuresLeft-- > 0) throw new Error('containerd unreachable');
      delivered.push(n);
    },
    describe: String,
    isCritical: () => true,
    logger: silent,
    initialBackoffMs: 1,
    maxBackoffMs: 4,
  });
  for (let i = 0; i < 10; i++) box.push(i);
  const r = await box.drain(5000);
  assert.equal(r.undelivered, 0);
  assert.deepEqual(delivered, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  assert.equal(box.stats.failures, 5);
});

test('outbox bound: drops the oldest non-critical event, never the critical ones first', async () => {
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  const delivered: string[] = [];
  const box = new OrderedOutbox<string>({
    send: async (s) => {
      await gate;
      delivered.push(s);
    },
    describe: (s) => s,
    isCritical: (s) => s.startsWith('exit'),
    logger: silent,
    capacity: 3,
  });
  box.push('exit-a'); // in flight
  box.push('oom-1');
  box.push('exit-b');
  box.push('exit-c'); // full: oom-1 goes
  release();
  await box.drain(5000);
  assert.deepEqual(delivered, ['exit-a', 'exit-b', 'exit-c']);
  assert.equal(box.stats.dropped, 1);
});
