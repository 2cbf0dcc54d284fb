/**
 * holdYoungGeneration(): V8's new space stops growing under a churn where much survives each scavenge (the
 * shape of an Exec burst). Each case runs in its own node process, since the flag is process-wide.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { repoRoot } from '../harness/util.js';

const run = promisify(execFile);
const MiB = 1024 * 1024;

async function newSpaceAfterChurn(hold: boolean): Promise<number> {
  const heap = join(repoRoot(), 'build', 'shim', 'heap.js');
  const script = `
    import { getHeapSpaceStatistics } from 'node:v8';
    import { holdYoungGeneration } from ${JSON.stringify(heap)};
    if (${hold}) holdYoungGeneration();
    const ring = new Array(100_000);
    for (let i = 0; i < 3_000_000; i++) ring[i % ring.length] = { i, s: 'x' + i };
    console.log(getHeapSpaceStatistics().find((x) => x.space_name === 'new_space').space_size);`;
  const { stdout } = await run(process.execPath, ['--input-type=module', '-e', script], { timeout: 60_000 });
  return Number(stdout.trim());
}

test('holdYoungGeneration keeps new space near its start-up size; without it V8 grows it many times', async (t) => {
  const [held, grown] = await Promise.all([newSpaceAfterChurn(true), newSpaceAfterChurn(false)]);
  t.diagnostic(`new space after churn: held ${held / MiB} MiB, default ${grown / MiB} MiB`);
  assert.ok(grown >= 8 * MiB, `the churn makes V8 grow new space (${grown})`);
  assert.ok(held <= 4 * MiB, `held at ${held}`);
});
