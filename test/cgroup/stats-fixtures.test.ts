// Stats readers and loadCgroup over fixture trees (plain files shaped like cgroupfs), for both versions.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { Metrics as V1Metrics } from '../../protocol/gen/cgroups/stats/v1/metrics.js';
import { Metrics as V2Metrics } from '../../protocol/gen/cgroups/v2/stats/metrics.js';
import { MAX_UINT64 } from '../../shim/platform/cgroup-files.js';
import { readV1Metrics } from '../../shim/platform/cgroup-v1.js';
import { readV2Metrics } from '../../shim/platform/cgroup-v2.js';
import { loadCgroup, v1Cgroup, v2Cgroup } from '../../shim/platform/cgroup.js';

const silent = pino({ level: 'silent' });

async function tree(files: Record<string, string>): Promise<string> {
  const root = await mkdtemp(join(tmpdir(), 'cgroup-fixture-'));
  for (const [rel, content] of Object.entries(files)) {
    const path = join(root, rel);
    await mkdir(join(path, '..'), { recursive: true });
    await writeFile(path, content);
  }
  return root;
}

const V2_FILES: Record<string, string> = {
  'cgroup.controllers': 'cpu io memory pids hugetlb\n',
  'pids.current': '3\n',
  'pids.max': 'max\n',
  'cpu.stat': 'usage_usec 1500\nuser_usec 1000\nsystem_usec 500\nnr_periods 10\nnr_throttled 2\nthrottled_usec 77\n',
  'memory.stat': 'anon 4096\nfile 8192\nkernel_stack 16384\nslab 100\nsock 0\nshmem 1\nfile_mapped 2\nfile_dirty 3\n'
    + 'file_writeback 4\nanon_thp 0\ninactive_anon 5\nactive_anon 6\ninactive_file 7\nactive_file 8\nunevictable 9\n'
    + 'slab_reclaimable 10\nslab_unreclaimable 11\npgfault 12\npgmajfault 13\nworkingset_refault 14\n'
    + 'workingset_activate 15\nworkingset_nodereclaim 16\npgrefill 17\npgscan 18\npgsteal 19\npgactivate 20\n'
    + 'pgdeactivate 21\npglazyfree 22\npglazyfreed 23\nthp_fault_alloc 24\nthp_collapse_alloc 25\nzswap 99\n',
  'memory.current': '1048576\n',
  'memory.max': '16777216\n',
  'memory.swap.current': '0\n',
  'memory.swap.max': 'max\n',
  'memory.events': 'low 0\nhigh 1\nmax 2\noom 3\noom_kill 4\n',
  'io.stat': '254:0 rbytes=100 wbytes=200 rios=3 wios=4 dbytes=0 dios=0\n',
  'rdma.current': 'mlx4_0 hca_handle=1 hca_object=2\n',
  'rdma.max': 'mlx4_0 hca_handle=max hca_object=10\n',
  'hugetlb.2MB.current': '0\n',
  'hugetlb.2MB.max': 'max\n',
  'hugetlb.2MB.rsvd.current': '999\n',
  'hugetlb.2MB.rsvd.max': '999\n',
  'hugetlb.2MB.events': 'max 0\n',
  'hugetlb.1GB.current': '1073741824\n',
  'hugetlb.1GB.max': '2147483648\n',
};

test('v2: every field read from its file, max → 2^64-1, round trip through protobuf', async () => {
  const dir = await tree(V2_FILES);
  try {
    const m = await readV2Metrics(dir);
    assert.deepEqual(m.pids, { current: 3n, limit: MAX_UINT64 });
    assert.deepEqual(m.cpu, {
      usageUsec: 1500n, userUsec: 1000n, systemUsec: 500n, nrPeriods: 10n, nrThrottled: 2n, throttledUsec: 77n,
    });
    assert.equal(m.memory?.anon, 4096n);
    assert.equal(m.memory?.kernelStack, 16384n);
    assert.equal(m.memory?.thpCollapseAlloc, 25n);
    assert.equal(m.memory?.pglazyfreed, 23n);
    assert.equal(m.memory?.usage, 1048576n);
    assert.equal(m.memory?.usageLimit, 16777216n);
    assert.equal(m.memory?.swapUsage, 0n);
    assert.equal(m.memory?.swapLimit, MAX_UINT64);
    assert.deepEqual(m.memoryEvents, { low: 0n, high: 1n, max: 2n, oom: 3n, oomKill: 4n });
    assert.deepEqual(m.io?.usage, [{ major: 254n, minor: 0n, rbytes: 100n, wbytes: 200n, rios: 3n, wios: 4n }]);
    assert.deepEqual(m.rdma, {
      current: [{ device: 'mlx4_0', hcaHandles: 1, hcaObjects: 2 }],
      limit: [{ device: 'mlx4_0', hcaHandles: 0xffffffff, hcaObjects: 10 }],
    });
    const huge = [...m.hugetlb].sort((a, b) => a.pagesize.localeCompare(b.pagesize));
    assert.deepEqual(huge, [
      { pagesize: '1GB', current: 1073741824n, max: 2147483648n },
      { pagesize: '2MB', current: 0n, max: MAX_UINT64 },
    ]);

    const handle = v2Cgroup('/ctr', dir);
    const { typeUrl, value } = await handle.stats();
    assert.equal(typeUrl, 'io.containerd.cgroups.v2.Metrics');
    assert.deepEqual(V2Metrics.decode(value), m);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('v2: an empty directory yields zeros, no memory_events, never a throw', async () => {
  const dir = await tree({});
  try {
    const m = await readV2Metrics(dir);
    assert.deepEqual(m.pids, { current: 0n, limit: 0n });
    assert.equal(m.cpu?.usageUsec, 0n);
    assert.equal(m.memory?.usage, 0n);
    assert.equal(m.memoryEvents, undefined);
    assert.deepEqual(m.hugetlb, []);
    assert.deepEqual(m.io, { usage: [] });
    const gone = await readV2Metrics(join(dir, 'does-not-exist'));
    assert.deepEqual(gone.pids, { current: 0n, limit: 0n });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('v1: controllers from separate dirs, missing files → 0, round trip through protobuf', async () => {
  const root = await tree({
    'memory/ctr/memory.stat': 'cache 4096\nrss 8192\nrss_huge 0\nmapped_file 1\npgpgin 5\npgpgout 6\npgfault 7\n'
      + 'pgmajfault 8\nhierarchical_memory_limit 16777216\nhierarchical_memsw_limit 9223372036854771712\n'
      + 'total_cache 4096\ntotal_rss 8192\ntotal_unevictable 3\n',
    'memory/ctr/memory.usage_in_bytes': '12288\n',
    'memory/ctr/memory.max_usage_in_bytes': '20480\n',
    'memory/ctr/memory.limit_in_bytes': '16777216\n',
    'memory/ctr/memory.failcnt': '2\n',
    // no memsw (swap accounting off): swap entry stays zero, the rest is still read
    'memory/ctr/memory.kmem.usage_in_bytes': '100\n',
    'memory/ctr/memory.kmem.tcp.limit_in_bytes': '9223372036854771712\n',
    'memory/ctr/memory.oom_control': 'oom_kill_disable 0\nunder_oom 0\noom_kill 1\n',
    'cpu/ctr/cpu.stat': 'nr_periods 4\nnr_throttled 1\nthrottled_time 999\nnr_bursts 0\n',
    'cpuacct/ctr/cpuacct.stat': 'user 3\nsystem 2\n',
    'cpuacct/ctr/cpuacct.usage': '55000000\n',
    'cpuacct/ctr/cpuacct.usage_percpu': '50000000 5000000 \n',
    'pids/ctr/pids.current': '2\n',
    'pids/ctr/pids.max': 'max\n',
    'blkio/ctr/blkio.throttle.io_serviced': '254:0 Read 3\n254:0 Write 4\nTotal 7\n',
    'blkio/ctr/blkio.throttle.io_service_bytes': '254:0 Read 300\nTotal 300\n',
    'hugetlb/ctr/hugetlb.2MB.usage_in_bytes': '0\n',
    'hugetlb/ctr/hugetlb.2MB.max_usage_in_bytes': '2097152\n',
    'hugetlb/ctr/hugetlb.2MB.failcnt': '1\n',
    'proc/partitions': 'major minor  #blocks  name\n\n 254        0  268435456 vda\n',
    'hugepages/hugepages-2048kB/nr_hugepages': '0\n',
  });
  try {
    const dirs = {
      memory: join(root, 'memory/ctr'), cpu: join(root, 'cpu/ctr'), cpuacct: join(root, 'cpuacct/ctr'),
      pids: join(root, 'pids/ctr'), blkio: join(root, 'blkio/ctr'), hugetlb: join(root, 'hugetlb/ctr'),
    };
    const m = await readV1Metrics(dirs, { procRoot: join(root, 'proc'), hugepagesDir: join(root, 'hugepages') });
    assert.deepEqual(m.pids, { current: 2n, limit: 0n }, 'v1 reports unlimited pids as 0');
    assert.deepEqual(m.cpu, {
      usage: { total: 55000000n, user: 30_000_000n, kernel: 20_000_000n, perCpu: [50000000n, 5000000n] },
      throttling: { periods: 4n, throttledPeriods: 1n, throttledTime: 999n },
    });
    const mem = m.memory;
    assert.ok(mem);
    assert.equal(mem.cache, 4096n);
    assert.equal(mem.rss, 8192n);
    assert.equal(mem.pgPgIn, 5n);
    assert.equal(mem.pgMajFault, 8n);
    assert.equal(mem.hierarchicalMemoryLimit, 16777216n);
    assert.equal(mem.hierarchicalSwapLimit, 9223372036854771712n);
    assert.equal(mem.totalUnevictable, 3n);
    assert.equal(mem.dirty, 0n, 'absent key reads 0');
    assert.deepEqual(mem.usage, { usage: 12288n, max: 20480n, limit: 16777216n, failcnt: 2n });
    assert.deepEqual(mem.swap, { usage: 0n, max: 0n, limit: 0n, failcnt: 0n });
    assert.deepEqual(mem.kernel, { usage: 100n, max: 0n, limit: 0n, failcnt: 0n });
    assert.equal(mem.kernelTcp?.limit, 9223372036854771712n);
    assert.deepEqual(m.memoryOomControl, { oomKillDisable: 0n, underOom: 0n, oomKill: 1n });
    assert.deepEqual(m.blkio?.ioServicedRecursive, [
      { op: 'Read', device: '/dev/vda', major: 254n, minor: 0n, value: 3n },
      { op: 'Write', device: '/dev/vda', major: 254n, minor: 0n, value: 4n },
    ]);
    assert.deepEqual(m.blkio?.ioServiceBytesRecursive, [
      { op: 'Read', device: '/dev/vda', major: 254n, minor: 0n, value: 300n },
    ]);
    assert.deepEqual(m.hugetlb, [{ pagesize: '2MB', usage: 0n, max: 2097152n, failcnt: 1n }]);

    const { typeUrl, value } = await v1Cgroup('/ctr', dirs).stats();
    assert.equal(typeUrl, 'io.containerd.cgroups.v1.Metrics');
    const decoded = V1Metrics.decode(value);
    assert.deepEqual(decoded.memory, m.memory);
    assert.deepEqual(decoded.cpu, m.cpu);
    assert.deepEqual(decoded.pids, m.pids);
  } finally {
    await rm(root, { recursive: true, force: true });
  }
});

test('v1: the CFQ files win over throttle when they report something', async () => {
  const root = await tree({
    'blkio/blkio.io_serviced_recursive': '254:0 Read 1\nTotal 1\n',
    'blkio/blkio.io_service_bytes_recursive': '254:0 Read 512\nTotal 512\n',
    'blkio/blkio.sectors_recursive': '254:0 1\n',
    'blkio/blkio.throttle.io_serviced': '254:0 Read 1000\nTotal 1000\n',
    'proc/partitions': '',
  });
  try {
    const m = await readV1Metrics({ blkio: join(root, 'blkio') }, { procRoot: join(root, 'proc'), hugepagesDir: root });
    assert.deepEqual(m.blkio?.ioServicedRecursive.map((e) => e.value), [1n]);
    assert.deepEqual(m.blkio?.sectorsRecursive, [{ op: '', device: '', major: 254n, minor: 0n, value: 1n }]);
    assert.equal(m.memory, undefined);
    assert.equal(m.pids, undefined);
    assert.ok(m.cpu, 'cpu is always present, as upstream');
  } finally {
    await rm(root, { recursive: true, force: true });
  }
});

test('loadCgroup: v1 per-controller dirs via mountinfo (nested mount root), missing dirs skipped', async () => {
  const root = await tree({
    'proc/4242/cgroup': '5:memory:/kube/pod/ctr\n4:cpu,cpuacct:/kube/pod/ctr\n3:pids:/kube/pod/ctr\n0::/\n',
    'fs/memory/ctr/memory.stat': 'rss 4096\n',
    'fs/cpu,cpuacct/ctr/cpu.stat': 'nr_periods 1\n',
  });
  try {
    const fs = join(root, 'fs');
    await mkdir(join(root, 'proc/self'), { recursive: true });
    await writeFile(join(root, 'proc/self/mountinfo'), [
      `31 30 0:28 /kube/pod ${fs}/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct`,
      `34 30 0:31 /kube/pod ${fs}/memory rw - cgroup cgroup rw,memory`,
      `35 30 0:32 /kube/pod ${fs}/pids rw - cgroup cgroup rw,pids`,
    ].join('\n'));
    const h = await loadCgroup(4242, silent, { procRoot: join(root, 'proc'), cgroupRoot: fs, mode: 'hybrid' });
    assert.ok(h);
    assert.equal(h.version, 1);
    assert.equal(h.path, '/kube/pod/ctr');
    const m = V1Metrics.decode((await h.stats()).value);
    assert.equal(m.memory?.rss, 4096n);
    assert.equal(m.cpu?.throttling?.periods, 1n);
    assert.equal(m.pids, undefined, 'pids dir is missing → controller skipped');

    assert.equal(await loadCgroup(4243, silent, { procRoot: join(root, 'proc'), cgroupRoot: fs, mode: 'hybrid' }), undefined);
  } finally {
    await rm(root, { recursive: true, force: true });
  }
});

test('loadCgroup: v2 from the 0:: entry; undefined (logged) when the directory is gone', async () => {
  const root = await tree({
    'proc/77/cgroup': '0::/system.slice/ctr\n',
    'proc/78/cgroup': '0::/gone\n',
    'fs/system.slice/ctr/pids.current': '1\n',
  });
  const lines: string[] = [];
  const logger = pino({ level: 'warn' }, { write: (l: string) => void lines.push(l) });
  try {
    const where = { procRoot: join(root, 'proc'), cgroupRoot: join(root, 'fs'), mode: 'unified' as const };
    const h = await loadCgroup(77, logger, where);
    assert.ok(h);
    assert.equal(h.version, 2);
    assert.equal(h.path, '/system.slice/ctr');
    const m = V2Metrics.decode((await h.stats()).value);
    assert.equal(m.pids?.current, 1n);
    assert.equal(await loadCgroup(78, logger, where), undefined);
    assert.equal(await loadCgroup(79, logger, where), undefined, 'no such pid');
    assert.equal(lines.length, 2, 'each failure is logged');
  } finally {
    await rm(root, { recursive: true, force: true });
  }
});
