/**
 * The daemon's idle-time trim: one full GC and malloc_trim once calls have stopped for the idle time and the
 * process grew since the last trim; pokes during the wait postpone it, nothing runs without a poke, 0 turns
 * it off. The memory it gives back is measured by the benchmark (exec-memory); here, that the GC really is a
 * full one (garbage goes).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { IdleTrimmer } from '../../shim/idle-trim.js';
import { sleep } from '../harness/util.js';

type Trim = { duration_ms: number; heap_used_kib: [number, number]; malloc_trimmed: boolean };

function recorder(): { log: { debug(obj: unknown, msg?: string): void }; trims: Trim[] } {
  const trims: Trim[] = [];
  return { trims, log: { debug: (obj: unknown) => trims.push(obj as Trim) } };
}

test('trims once, idle time after the last poke; pokes meanwhile postpone it', async () => {
  const { log, trims } = recorder();
  const t = new IdleTrimmer(300, log as never);
  try {
    t.poke();
    for (let i = 0; i < 4; i++) {
      await sleep(150);
      t.poke(); // still busy: 150 ms < 300 ms since the last poke
    }
    assert.equal(trims.length, 0, 'no trim while pokes keep coming');
    await sleep(1500);
    assert.equal(trims.length, 1, 'one trim after the quiet time');
    await sleep(600);
    assert.equal(trims.length, 1, 'nothing more without a new poke');
    t.poke();
    await sleep(1500);
    assert.equal(trims.length, 1, 'a poke without growth since the last trim costs no collection');
    const grown = Buffer.alloc(8 * 1024 * 1024, 1); // touched: counts in RSS
    t.poke();
    await sleep(1500);
    assert.equal(trims.length, 2, 'after 8 MiB of growth, the next quiet time trims');
    assert.equal(grown[0], 1);
  } finally {
    t.stop();
  }
});

test('0 turns it off; trim() without a poke does nothing', async () => {
  const { log, trims } = recorder();
  const off = new IdleTrimmer(0, log as never);
  off.poke();
  off.trim();
  await sleep(200);
  assert.equal(trims.length, 0);
});

test('the collection is a full one: garbage the young generation promoted goes', () => {
  const { log, trims } = recorder();
  const t = new IdleTrimmer(60_000, log as never);
  // Old-generation garbage: objects kept alive long enough to be promoted, then dropped.
  let keep: object[] | null = [];
  for (let i = 0; i < 200_000; i++) keep.push({ i, s: `x${i}` });
  keep = null;
  t.poke();
  t.trim(true);
  t.stop();
  assert.equal(trims.length, 1);
  const [before, after] = trims[0]!.heap_used_kib;
  assert.ok(after < before - 4096, `heap used ${before} KiB -> ${after} KiB`);
});

test('env: CONTAINERD_SHIM_TS_IDLE_TRIM_MS picks the idle time; junk falls back to the default', async () => {
  const { log, trims } = recorder();
  const t = IdleTrimmer.fromEnv({ CONTAINERD_SHIM_TS_IDLE_TRIM_MS: '100' }, log as never);
  t.poke();
  await sleep(1000);
  t.stop();
  assert.equal(trims.length, 1);
  const off = IdleTrimmer.fromEnv({ CONTAINERD_SHIM_TS_IDLE_TRIM_MS: '0' }, log as never);
  off.poke();
  await sleep(300);
  assert.equal(trims.length, 1);
});
