/**
 * A spare's warm-up (shim/spare/warm-up.ts) runs the daemon's first-call code on throwaway data: it must not
 * throw, write anything, or leave an fd open, and it loads node:cluster (net.Server.listen needs it on first use).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { warmUp } from '../../shim/spare/warm-up.js';

test('runs cleanly: no throw, no fd left open, node:cluster loaded', () => {
  const fds = readdirSync('/proc/self/fd').length;
  warmUp();
  warmUp(); // twice is harmless
  assert.equal(readdirSync('/proc/self/fd').length, fds, 'an fd was left open');
  const loaded = (process as unknown as { moduleLoadList: string[] }).moduleLoadList;
  assert.ok(loaded.includes('NativeModule cluster'), 'node:cluster was not loaded');
});
