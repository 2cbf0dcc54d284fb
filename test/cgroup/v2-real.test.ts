// Real cgroup2 (root): the hybrid host's unified hierarchy at /sys/fs/cgroup/unified, treated as the v2 root.
// Only controllers not bound to v1 exist there (hugetlb on this VM), so this covers path lookup, cpu.stat
// (present in every cgroup2), hugetlb files and enableV2Controllers; memory/pids are covered by fixtures.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, readFile, rmdir, writeFile } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import pino from 'pino';
import { Metrics } from '../../protocol/gen/cgroups/v2/stats/metrics.js';
import { enableV2Controllers, loadCgroup } from '../../shim/platform/cgroup.js';

const UNIFIED = '/sys/fs/cgroup/unified';
const skip =
  process.getuid?.() !== 0 ? 'needs root' : !existsSync(`${UNIFIED}/cgroup.procs`) ? `needs cgroup2 at ${UNIFIED}` : false;
const where = { cgroupRoot: UNIFIED, mode: 'unified' as const };

const words = async (path: string) => (await readFile(path, 'utf8')).split(/\s+/).filter(Boolean);

async function removeDir(dir: string): Promise<void> {
  for (let i = 0; existsSync(dir); i++) {
    try {
      await rmdir(dir);
    } catch (err) {
      if (i > 100) throw err;
      await sleep(100);
    }
  }
}

test('v2: loadCgroup, stats and enableV2Controllers on a real cgroup2 hierarchy', { skip, timeout: 60_000 }, async () => {
  const parentName = `shimtest-${randomBytes(4).toString('hex')}`;
  const parent = `${UNIFIED}/${parentName}`;
  const ctr = `${parent}/ctr`;
  const rootControllers = await words(`${UNIFIED}/cgroup.controllers`);
  const rootEnabledBefore = await words(`${UNIFIED}/cgroup.subtree_control`);
  const lines: string[] = [];
  const logger = pino({ level: 'debug' }, { write: (l: string) => void lines.push(l) });
  const child = spawn('sh', ['-c', 'read go; exec sleep 60'], { stdio: ['pipe', 'ignore', 'ignore'] });
  const exited = new Promise((resolve) => child.on('exit', resolve));
  try {
    await mkdir(parent);
    await mkdir(ctr);
    await writeFile(`${ctr}/cgroup.procs`, String(child.pid));
    child.stdin?.write('go\n');

    const h = await loadCgroup(child.pid!, logger, where);
    assert.ok(h);
    assert.equal(h.version, 2);
    assert.equal(h.path, `/${parentName}/ctr`);

    await enableV2Controllers(h.path, logger, where);
    const rootNow = await words(`${UNIFIED}/cgroup.subtree_control`);
    const parentNow = await words(`${parent}/cgroup.subtree_control`);
    for (const c of rootControllers) {
      assert.ok(rootNow.includes(c), `${c} enabled at the root`);
      assert.ok(parentNow.includes(c), `${c} enabled in the parent`);
    }
    assert.deepEqual(await words(`${ctr}/cgroup.subtree_control`), [], 'the container cgroup itself is not touched');

    const { typeUrl, value } = await h.stats();
    assert.equal(typeUrl, 'io.containerd.cgroups.v2.Metrics');
    const m = Metrics.decode(value);
    assert.ok(m.cpu && m.cpu.usageUsec >= 0n && m.cpu.usageUsec >= m.cpu.userUsec);
    assert.ok(m.pids, 'pids present (zeros without the controller)');
    assert.ok(m.memory, 'memory present (zeros without the controller)');
    assert.equal(m.memoryEvents, undefined, 'no memory.events without the memory controller');
    if (rootControllers.includes('hugetlb')) {
      assert.ok(m.hugetlb.length >= 1, 'hugetlb stats once the controller is enabled');
      for (const e of m.hugetlb) assert.match(e.pagesize, /^\d+[KMG]B$/);
    }

    // An ancestor that cannot be written is only logged.
    await enableV2Controllers('/shimtest-missing-parent/x/y', logger, where);
    assert.ok(lines.some((l) => l.includes('failed to enable cgroup controllers')));
  } finally {
    child.kill('SIGKILL');
    await exited;
    await removeDir(ctr);
    await removeDir(parent);
    // Put the host's root subtree_control back as it was.
    const added = (await words(`${UNIFIED}/cgroup.subtree_control`)).filter((c) => !rootEnabledBefore.includes(c));
    if (added.length > 0) {
      await writeFile(`${UNIFIED}/cgroup.subtree_control`, added.map((c) => '-' + c).join(' ')).catch(() => undefined);
    }
  }
});
