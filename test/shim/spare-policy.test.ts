// Whether a start keeps a warm spare (shim/spare/spare-files.ts): the single executable's start decides with
// keepsSpare, the script form's wrapper with the same rule in shell (test/e2e/fast-paths covers that one).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { keepsSpare, sparesEnabled } from '../../shim/spare/spare-files.js';

test('a spare is kept by default, not under CONTAINERD_SHIM_TS_GROUP, and CONTAINERD_SHIM_TS_SPARE decides when set', () => {
  assert.equal(keepsSpare({}), true);
  assert.equal(keepsSpare({ CONTAINERD_SHIM_TS_GROUP: 'all' }), false);
  assert.equal(keepsSpare({ CONTAINERD_SHIM_TS_GROUP: '' }), true, 'an empty key groups nothing');
  assert.equal(keepsSpare({ CONTAINERD_SHIM_TS_GROUP: 'all', CONTAINERD_SHIM_TS_SPARE: '1' }), true);
  assert.equal(keepsSpare({ CONTAINERD_SHIM_TS_SPARE: '0' }), false);
  assert.equal(keepsSpare({ CONTAINERD_SHIM_TS_GROUP: 'all', CONTAINERD_SHIM_TS_SPARE: '' }), false);
});

test('a spare already waiting is used unless CONTAINERD_SHIM_TS_SPARE=0, grouping or not', () => {
  assert.equal(sparesEnabled({ CONTAINERD_SHIM_TS_GROUP: 'all' }), true);
  assert.equal(sparesEnabled({ CONTAINERD_SHIM_TS_SPARE: '0' }), false);
});

test('spares are found per build and session: ownSession is the session in /proc/self/stat, as the wrapper reads it', async () => {
  const { execFileSync } = await import('node:child_process');
  const { mkdtemp, rm } = await import('node:fs/promises');
  const { tmpdir } = await import('node:os');
  const { join } = await import('node:path');
  const { ownSession, sparePrefix, spareFifoPath, spareBootingPath, listSpares } = await import('../../shim/spare/spare-files.js');
  const { liveSpareFifos } = await import('../../shim/sea/spare-fifos.js');
  const ps = Number(execFileSync('ps', ['-o', 'sid=', '-p', String(process.pid)], { encoding: 'utf8' }).trim());
  assert.equal(ownSession(), ps);
  const dir = await mkdtemp(join(tmpdir(), 'spares-'));
  try {
    const mine = spareFifoPath(process.pid, ps, dir);
    assert.equal(mine, join(dir, `${sparePrefix(ps)}${process.pid}`));
    assert.match(mine, new RegExp(`/ts-spare-[0-9a-z]+-s${ps}-${process.pid}$`));
    assert.match(spareBootingPath(ps, dir), new RegExp(`/ts-spare-[0-9a-z]+-s${ps}\\.booting$`));
    const otherSession = spareFifoPath(process.pid, ps + 1, dir); // alive, but another containerd's
    const dead = spareFifoPath(999_999_999, ps, dir);
    const deadOldForm = join(dir, 'ts-spare-0123abcd-999999998'); // an older build's name, without the session
    for (const path of [mine, otherSession, dead, deadOldForm]) execFileSync('mkfifo', [path]);
    const { live, stale } = await listSpares(ps, dir);
    assert.deepEqual(live, [process.pid]);
    assert.deepEqual(stale.sort(), [dead, deadOldForm].sort());
    assert.deepEqual(liveSpareFifos(dir), [{ fifo: mine, pid: process.pid }]);
    assert.deepEqual((await listSpares(ps + 1, dir)).live, [process.pid]);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
