/**
 * `runc exec` reads its process spec from a pipe (`/proc/self/fd/N`) when the spec fits the pipe at once;
 * a bigger one goes through a temp file. Here: the pipe holds exactly the spec and reads to EOF (its write
 * end closed), a spec bigger than the pipe is refused without blocking, and a real reader opening it by its
 * /proc path (as runc does) gets the same bytes.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { closeSync, readFileSync } from 'node:fs';
import { specInPipe } from '../../shim/runtime/runc.js';

test('a spec that fits is in the pipe, complete, with EOF after it', () => {
  const spec = Buffer.from(JSON.stringify({ args: ['sh', '-c', 'true'], env: Array.from({ length: 200 }, (_, i) => `V${i}=${'x'.repeat(50)}`) }));
  const fd = specInPipe(spec);
  assert.ok(fd !== undefined && fd > 2);
  try {
    assert.deepEqual(readFileSync(`/proc/self/fd/${fd}`), spec);
  } finally {
    closeSync(fd);
  }
});

test('opened by path in a child, as runc opens --process /proc/self/fd/3', () => {
  const spec = Buffer.from('{"args":["true"],"cwd":"/"}');
  const fd = specInPipe(spec)!;
  try {
    const r = spawnSync('cat', ['/proc/self/fd/3'], { stdio: ['ignore', 'pipe', 'pipe', fd] });
    assert.equal(r.status, 0, r.stderr.toString());
    assert.equal(r.stdout.toString(), spec.toString());
  } finally {
    closeSync(fd);
  }
});

test('a spec bigger than the pipe is refused at once (then a temp file carries it)', () => {
  const big = Buffer.alloc(4 * 1024 * 1024, 0x61);
  const began = performance.now();
  assert.equal(specInPipe(big), undefined);
  assert.ok(performance.now() - began < 5000, 'did not block');
});
