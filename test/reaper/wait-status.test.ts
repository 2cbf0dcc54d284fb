import assert from 'node:assert/strict';
import { test } from 'node:test';
import { decodeChildExit, decodeWaitStatus } from '../../reaper/wait-status.js';

test('decodeWaitStatus: exit codes and signals (128+N), core bit ignored', () => {
  assert.deepEqual(decodeWaitStatus(0), { status: 0 });
  assert.deepEqual(decodeWaitStatus(42 << 8), { status: 42 });
  assert.deepEqual(decodeWaitStatus(255 << 8), { status: 255 });
  assert.deepEqual(decodeWaitStatus(9), { status: 137, signal: 9 });
  assert.deepEqual(decodeWaitStatus(15), { status: 143, signal: 15 });
  assert.deepEqual(decodeWaitStatus(0x80 | 11), { status: 139, signal: 11 });
  assert.deepEqual(decodeWaitStatus(64), { status: 192, signal: 64 });
});

test('decodeChildExit: child_process (code, signal) pairs', () => {
  assert.deepEqual(decodeChildExit(3, null), { status: 3 });
  assert.deepEqual(decodeChildExit(null, 'SIGKILL'), { status: 137, signal: 9 });
  assert.deepEqual(decodeChildExit(null, 'SIGTERM'), { status: 143, signal: 15 });
});
