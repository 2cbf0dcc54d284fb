/**
 * The daemon's log destination never blocks and never hangs the exit: a reader that stopped reading (EAGAIN)
 * and a reader that is gone (EPIPE) cost dropped lines, not a stuck daemon (pino's sonic-boom looped forever
 * on EPIPE in its exit-time flush).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { closeSync, readSync } from 'node:fs';
import { FifoLogDestination } from '../../shim/log-destination.js';
import { pipe, setNonBlocking } from '../../io/sys.js';
import { sleep } from '../harness/util.js';

const settle = () => sleep(100);

function drain(fd: number): string {
  const buf = Buffer.alloc(1 << 20);
  let out = '';
  for (;;) {
    try {
      const n = readSync(fd, buf);
      if (n <= 0) break;
      out += buf.toString('utf8', 0, n);
    } catch {
      break;
    }
  }
  return out;
}

test('lines reach a reading FIFO in order; flushOnce writes what is still queued', async () => {
  const [r, w] = pipe();
  setNonBlocking(w, true);
  setNonBlocking(r, true);
  const dest = new FifoLogDestination(w, 1 << 20);
  for (let i = 0; i < 100; i++) dest.write(`line ${i}\n`);
  await settle();
  dest.write('last\n');
  dest.flushOnce();
  await settle();
  const text = drain(r);
  assert.ok(text.startsWith('line 0\nline 1\n'), text.slice(0, 40));
  assert.ok(text.includes('line 99\n') && text.includes('last\n'));
  closeSync(r);
  closeSync(w);
});

test('a reader that stopped reading: writes are dropped past the bound, flushOnce returns at once', async () => {
  const [r, w] = pipe();
  setNonBlocking(w, true);
  const dest = new FifoLogDestination(w, 256 * 1024);
  const line = 'x'.repeat(1023) + '\n';
  for (let i = 0; i < 2000; i++) dest.write(line); // 2 MB into a 64 KiB pipe
  await settle();
  assert.ok(dest.takeDropped() > 0, 'lines past the bound are dropped and counted');
  const t0 = performance.now();
  dest.flushOnce();
  assert.ok(performance.now() - t0 < 500, 'flushOnce never waits for the reader');
  closeSync(r);
  closeSync(w);
});

test('a reader that is gone (EPIPE): logging stops, flushOnce returns', async () => {
  const [r, w] = pipe();
  setNonBlocking(w, true);
  closeSync(r);
  const dest = new FifoLogDestination(w, 1 << 20);
  dest.write('to nobody\n');
  await settle();
  dest.write('after EPIPE\n');
  dest.flushOnce();
  closeSync(w);
});

test('a process whose log reader is gone exits at once (no sync retry loop at exit)', () => {
  // The scenario that hung daemons: lines still queued at exit, containerd already closed its end.
  const script = `
    const { FifoLogDestination } = await import(${JSON.stringify(new URL('../../shim/log-destination.js', import.meta.url).href)});
    const { pipe, setNonBlocking } = await import(${JSON.stringify(new URL('../../io/sys.js', import.meta.url).href)});
    const { closeSync } = await import('node:fs');
    const [r, w] = pipe(); setNonBlocking(w, true);
    const d = new FifoLogDestination(w, 1 << 20);
    for (let i = 0; i < 100; i++) d.write('x'.repeat(1000) + '\\n');
    closeSync(r);
    d.flushOnce();
    process.exit(0);`;
  const res = spawnSync(process.execPath, ['--input-type=module', '-e', script], { timeout: 10_000 });
  assert.equal(res.error, undefined, 'it did not time out');
  assert.equal(res.status, 0, res.stderr.toString());
});
