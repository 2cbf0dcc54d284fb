// Pure parsers of the cgroup layer: cgroupfs file formats, /proc/<pid>/cgroup, mountinfo, path helpers.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MAX_UINT64, parseCgroupUint, parseFlatKeyed, parseRdma } from '../../shim/platform/cgroup-files.js';
import {
  hugePageSizeName, parseBlkioFile, parseCpuacctStat, parsePercpu, parseProcPartitions,
} from '../../shim/platform/cgroup-v1.js';
import { parseIoStat } from '../../shim/platform/cgroup-v2.js';
import { cgroupDir, parseCgroupMounts, parseProcCgroup } from '../../shim/platform/cgroup-paths.js';
import { ancestorsOf } from '../../shim/platform/cgroup.js';

test('parseCgroupUint: numbers, max, negatives, garbage', () => {
  assert.equal(parseCgroupUint('42\n'), 42n);
  assert.equal(parseCgroupUint('9223372036854771712'), 9223372036854771712n);
  assert.equal(parseCgroupUint('max'), MAX_UINT64);
  assert.equal(parseCgroupUint('-1'), 0n);
  assert.equal(parseCgroupUint('99999999999999999999999'), MAX_UINT64);
  assert.equal(parseCgroupUint('abc'), undefined);
  assert.equal(parseCgroupUint(''), undefined);
});

test('parseFlatKeyed skips malformed lines', () => {
  const kv = parseFlatKeyed('cache 4096\nrss 8192\nbroken\nthree f i\nmax max\n\n');
  assert.deepEqual([...kv], [['cache', 4096n], ['rss', 8192n], ['max', MAX_UINT64]]);
});

test('parseRdma: devices, max → 2^32-1, short lines skipped', () => {
  assert.deepEqual(parseRdma('mlx4_0 hca_handle=2 hca_object=2000\nocrdma1 hca_handle=3 hca_object=max\nbad\n'), [
    { device: 'mlx4_0', hcaHandles: 2, hcaObjects: 2000 },
    { device: 'ocrdma1', hcaHandles: 3, hcaObjects: 0xffffffff },
  ]);
});

test('cpuacct.stat ticks → ns (USER_HZ 100), percpu list', () => {
  assert.deepEqual(parseCpuacctStat('user 8811\nsystem 7347\n'), { user: 88_110_000_000n, kernel: 73_470_000_000n });
  assert.deepEqual(parseCpuacctStat(''), { user: 0n, kernel: 0n });
  assert.deepEqual(parsePercpu('67108721460 94480606014 \n'), [67108721460n, 94480606014n]);
  assert.deepEqual(parsePercpu('\n'), []);
});

test('blkio files with and without op, Total skipped, device names from /proc/partitions', () => {
  const devices = parseProcPartitions('major minor  #blocks  name\n\n 254        0  268435456 vda\n 254 1 1000 vda1\n');
  assert.deepEqual([...devices], [['254:0', '/dev/vda'], ['254:1', '/dev/vda1']]);
  const withOp = parseBlkioFile('254:0 Read 4096\n254:0 Write 512\n8:0 Sync 1\nTotal 4609\n', devices);
  assert.deepEqual(withOp, [
    { op: 'Read', device: '/dev/vda', major: 254n, minor: 0n, value: 4096n },
    { op: 'Write', device: '/dev/vda', major: 254n, minor: 0n, value: 512n },
    { op: 'Sync', device: '', major: 8n, minor: 0n, value: 1n },
  ]);
  assert.deepEqual(parseBlkioFile('254:1 77\n', devices), [
    { op: '', device: '/dev/vda1', major: 254n, minor: 1n, value: 77n },
  ]);
  assert.deepEqual(parseBlkioFile('Total 0\n', devices), []);
});

test('huge page directory names → go-units sizes', () => {
  assert.equal(hugePageSizeName('hugepages-2048kB'), '2MB');
  assert.equal(hugePageSizeName('hugepages-1048576kB'), '1GB');
  assert.equal(hugePageSizeName('hugepages-64kB'), '64KB');
  assert.equal(hugePageSizeName('hugepages-32768kB'), '32MB');
  assert.equal(hugePageSizeName('other'), undefined);
});

test('io.stat: per device counters, unknown keys ignored', () => {
  const text = '8:16 rbytes=1459200 wbytes=314773504 rios=192 wios=353 dbytes=0 dios=0\n254:0 rbytes=5 wbytes=6 rios=7 wios=8\n\n';
  assert.deepEqual(parseIoStat(text), [
    { major: 8n, minor: 16n, rbytes: 1459200n, wbytes: 314773504n, rios: 192n, wios: 353n },
    { major: 254n, minor: 0n, rbytes: 5n, wbytes: 6n, rios: 7n, wios: 8n },
  ]);
});

test('/proc/<pid>/cgroup: v1 controllers (co-mounted and named) and the v2 entry', () => {
  const p = parseProcCgroup('12:cpu,cpuacct:/ctr\n4:memory:/ctr:with:colons\n1:name=systemd:/sys\n0::/unified/ctr\n');
  assert.equal(p.v1.get('cpu'), '/ctr');
  assert.equal(p.v1.get('cpuacct'), '/ctr');
  assert.equal(p.v1.get('memory'), '/ctr:with:colons');
  assert.equal(p.v1.get('name=systemd'), '/sys');
  assert.equal(p.unified, '/unified/ctr');
  assert.equal(parseProcCgroup('0::/\n').v1.size, 0);
});

test('mountinfo: v1 controllers, named hierarchies, cgroup2, escaped paths, nested roots', () => {
  const info = [
    '30 22 0:27 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755',
    '31 30 0:28 /kube/pod1 /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct',
    '34 30 0:31 / /sys/fs/cgroup/memory rw,relatime shared:1 - cgroup cgroup rw,memory',
    '39 30 0:36 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,release_agent=/x,name=systemd',
    '40 30 0:37 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw,nsdelegate',
    '41 30 0:38 / /tmp/with\\040space rw - cgroup cgroup rw,pids',
    '42 30 0:31 / /other/memory rw - cgroup cgroup rw,memory',
  ].join('\n');
  const m = parseCgroupMounts(info);
  assert.deepEqual(m.v1.get('cpu'), { root: '/kube/pod1', mountPoint: '/sys/fs/cgroup/cpu,cpuacct' });
  assert.deepEqual(m.v1.get('cpuacct'), { root: '/kube/pod1', mountPoint: '/sys/fs/cgroup/cpu,cpuacct' });
  assert.deepEqual(m.v1.get('memory'), { root: '/', mountPoint: '/sys/fs/cgroup/memory' }, 'first mount wins');
  assert.ok(m.v1.has('name=systemd'));
  assert.ok(!m.v1.has('release_agent=/x'));
  assert.deepEqual(m.v1.get('pids'), { root: '/', mountPoint: '/tmp/with space' });
  assert.deepEqual(m.v2, [{ root: '/', mountPoint: '/sys/fs/cgroup/unified' }]);

  const cpu = m.v1.get('cpu');
  assert.ok(cpu);
  assert.equal(cgroupDir(cpu, '/kube/pod1/ctr'), '/sys/fs/cgroup/cpu,cpuacct/ctr');
  assert.equal(cgroupDir(cpu, '/kube/pod1'), '/sys/fs/cgroup/cpu,cpuacct');
  assert.equal(cgroupDir(cpu, '/elsewhere'), undefined);
});

test('ancestorsOf: root and every ancestor, not the cgroup itself', () => {
  assert.deepEqual(ancestorsOf('/a/b/c'), ['/', '/a', '/a/b']);
  assert.deepEqual(ancestorsOf('/a'), ['/']);
  assert.deepEqual(ancestorsOf('/'), []);
});
