/**
 * cgroup v1 statistics → `io.containerd.cgroups.v1.Metrics`, filled the way containerd/cgroups (v1.0.4, used by
 * the 1.6.20 runc shim) fills them. Each controller directory is optional; each file is read on its own, and a
 * missing one reads as zero (the Go library drops the rest of that controller instead — we keep what we can).
 */
import { join } from 'node:path';
import {
  listOptional, parseCgroupUint, parseFlatKeyed, parseRdma, readFlatKeyed, readOptional, readUint,
} from './cgroup-files.js';
import {
  V1_MEMORY_STAT_FIELDS,
  type V1BlkIOEntry, type V1BlkIOStat, type V1CpuStat, type V1HugetlbStat, type V1MemoryEntry,
  type V1MemoryStat, type V1Metrics, type V1MemoryStatKey, type V1PidsStat, type V1RdmaStat,
} from './cgroup-metrics.js';

export type V1Controller = 'memory' | 'cpu' | 'cpuacct' | 'pids' | 'blkio' | 'hugetlb' | 'rdma';
export const V1_CONTROLLERS: readonly V1Controller[] = ['memory', 'cpu', 'cpuacct', 'pids', 'blkio', 'hugetlb', 'rdma'];
/** Absolute directory of the container's cgroup in each mounted v1 hierarchy. */
export type V1Dirs = Partial<Record<V1Controller, string>>;

export interface V1StatsEnv {
  /** For /proc/partitions (blkio device names). */
  procRoot: string;
  /** Huge page sizes are listed here (hugepages-2048kB …). */
  hugepagesDir: string;
}
const DEFAULT_ENV: V1StatsEnv = { procRoot: '/proc', hugepagesDir: '/sys/kernel/mm/hugepages' };

/** USER_HZ: cpuacct.stat is in clock ticks; Linux fixes USER_HZ at 100 on every architecture we run on. */
const CLOCK_TICKS = 100n;
const NS_PER_SEC = 1_000_000_000n;

export async function readV1Metrics(dirs: V1Dirs, env: V1StatsEnv = DEFAULT_ENV): Promise<V1Metrics> {
  const [cpu, memory, oom, pids, blkio, hugetlb, rdma] = await Promise.all([
    readCpu(dirs.cpu, dirs.cpuacct),
    dirs.memory ? readMemory(dirs.memory) : undefined,
    dirs.memory ? readFlatKeyed(join(dirs.memory, 'memory.oom_control')) : undefined,
    dirs.pids ? readPids(dirs.pids) : undefined,
    dirs.blkio ? readBlkio(dirs.blkio, env.procRoot) : undefined,
    dirs.hugetlb ? readHugetlb(dirs.hugetlb, env.hugepagesDir) : [],
    dirs.rdma ? readRdma(dirs.rdma) : undefined,
  ]);
  return {
    hugetlb,
    pids,
    cpu,
    memory,
    blkio,
    rdma,
    network: [], // not filled by the runc shim either
    cgroupStats: undefined,
    memoryOomControl: oom && {
      oomKillDisable: oom.get('oom_kill_disable') ?? 0n,
      underOom: oom.get('under_oom') ?? 0n,
      oomKill: oom.get('oom_kill') ?? 0n,
    },
  };
}

// ---- pids ----

async function readPids(dir: string): Promise<V1PidsStat | undefined> {
  const current = await readUint(join(dir, 'pids.current'));
  if (current === undefined) return undefined;
  const maxText = (await readOptional(join(dir, 'pids.max')))?.trim();
  // v1 reports an unlimited pids.max as 0 (containerd/cgroups pids.go), unlike v2.
  const limit = maxText === undefined || maxText === 'max' ? 0n : (parseCgroupUint(maxText) ?? 0n);
  return { current, limit };
}

// ---- cpu / cpuacct ----

/** Always present, as in the Go library (it pre-allocates CPU.Usage and CPU.Throttling). */
async function readCpu(cpuDir: string | undefined, acctDir: string | undefined): Promise<V1CpuStat> {
  const [stat, acctStat, total, percpu] = await Promise.all([
    cpuDir ? readFlatKeyed(join(cpuDir, 'cpu.stat')) : undefined,
    acctDir ? readOptional(join(acctDir, 'cpuacct.stat')) : undefined,
    acctDir ? readUint(join(acctDir, 'cpuacct.usage')) : undefined,
    acctDir ? readOptional(join(acctDir, 'cpuacct.usage_percpu')) : undefined,
  ]);
  const { user, kernel } = acctStat === undefined ? { user: 0n, kernel: 0n } : parseCpuacctStat(acctStat);
  return {
    usage: { total: total ?? 0n, kernel, user, perCpu: percpu === undefined ? [] : parsePercpu(percpu) },
    throttling: {
      periods: stat?.get('nr_periods') ?? 0n,
      throttledPeriods: stat?.get('nr_throttled') ?? 0n,
      throttledTime: stat?.get('throttled_time') ?? 0n,
    },
  };
}

/** cpuacct.stat ("user <ticks>\nsystem <ticks>") → nanoseconds. */
export function parseCpuacctStat(text: string): { user: bigint; kernel: bigint } {
  const kv = parseFlatKeyed(text);
  const toNs = (ticks: bigint | undefined) => ((ticks ?? 0n) * NS_PER_SEC) / CLOCK_TICKS;
  return { user: toNs(kv.get('user')), kernel: toNs(kv.get('system')) };
}

export function parsePercpu(text: string): bigint[] {
  return text.trim().split(/\s+/).filter(Boolean).map((s) => parseCgroupUint(s) ?? 0n);
}

// ---- memory ----

const MEMORY_ENTRY_FILES = [
  ['usage', 'memory.'], ['swap', 'memory.memsw.'], ['kernel', 'memory.kmem.'], ['kernelTcp', 'memory.kmem.tcp.'],
] as const;

async function readMemory(dir: string): Promise<V1MemoryStat | undefined> {
  const stat = await readFlatKeyed(join(dir, 'memory.stat'));
  if (!stat) return undefined;
  const entries = await Promise.all(MEMORY_ENTRY_FILES.map(([, prefix]) => readMemoryEntry(dir, prefix)));
  const [usage, swap, kernel, kernelTcp] = entries as [V1MemoryEntry, V1MemoryEntry, V1MemoryEntry, V1MemoryEntry];
  return { ...memoryStatFields(stat), usage, swap, kernel, kernelTcp };
}

/** The 32 scalar memory.stat fields; keys absent from the file (newer kernels dropped some) are 0. */
export function memoryStatFields(stat: Map<string, bigint>): Record<V1MemoryStatKey, bigint> {
  const out = {} as Record<V1MemoryStatKey, bigint>;
  for (const [field, key] of V1_MEMORY_STAT_FIELDS) out[field] = stat.get(key) ?? 0n;
  return out;
}

async function readMemoryEntry(dir: string, prefix: string): Promise<V1MemoryEntry> {
  const [usage, max, failcnt, limit] = await Promise.all(
    ['usage_in_bytes', 'max_usage_in_bytes', 'failcnt', 'limit_in_bytes'].map((f) => readUint(join(dir, prefix + f))),
  );
  return { usage: usage ?? 0n, max: max ?? 0n, failcnt: failcnt ?? 0n, limit: limit ?? 0n };
}

// ---- blkio ----

type BlkioField = keyof V1BlkIOStat;
/** The CFQ files, used when `blkio.io_serviced_recursive` exists (containerd/cgroups blkio.go). */
const CFQ_FILES: [BlkioField, string][] = [
  ['sectorsRecursive', 'sectors_recursive'], ['ioServiceBytesRecursive', 'io_service_bytes_recursive'],
  ['ioServicedRecursive', 'io_serviced_recursive'], ['ioQueuedRecursive', 'io_queued_recursive'],
  ['ioServiceTimeRecursive', 'io_service_time_recursive'], ['ioWaitTimeRecursive', 'io_wait_time_recursive'],
  ['ioMergedRecursive', 'io_merged_recursive'], ['ioTimeRecursive', 'time_recursive'],
];
/** Fallback when CFQ is absent or reports nothing: the throttle files (non-recursive, as upstream). */
const THROTTLE_FILES: [BlkioField, string][] = [
  ['ioServicedRecursive', 'throttle.io_serviced'], ['ioServiceBytesRecursive', 'throttle.io_service_bytes'],
];

function emptyBlkio(): V1BlkIOStat {
  return {
    ioServiceBytesRecursive: [], ioServicedRecursive: [], ioQueuedRecursive: [], ioServiceTimeRecursive: [],
    ioWaitTimeRecursive: [], ioMergedRecursive: [], ioTimeRecursive: [], sectorsRecursive: [],
  };
}

async function readBlkio(dir: string, procRoot: string): Promise<V1BlkIOStat> {
  const devices = parseProcPartitions((await readOptional(join(procRoot, 'partitions'))) ?? '');
  const fill = async (files: [BlkioField, string][]): Promise<V1BlkIOStat> => {
    const out = emptyBlkio();
    const texts = await Promise.all(files.map(([, name]) => readOptional(join(dir, 'blkio.' + name))));
    files.forEach(([field], i) => out[field].push(...parseBlkioFile(texts[i] ?? '', devices)));
    return out;
  };
  if ((await readOptional(join(dir, 'blkio.io_serviced_recursive'))) !== undefined) {
    const cfq = await fill(CFQ_FILES);
    if (Object.values(cfq).some((list: V1BlkIOEntry[]) => list.length > 0)) return cfq;
  }
  return fill(THROTTLE_FILES);
}

/** /proc/partitions → "major:minor" → "/dev/<name>" (the first two lines are header and blank). */
export function parseProcPartitions(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of text.split('\n').slice(2)) {
    const f = line.trim().split(/\s+/);
    if (f.length < 4 || !/^\d+$/.test(f[0] ?? '') || !/^\d+$/.test(f[1] ?? '')) continue;
    const key = `${f[0]}:${f[1]}`;
    if (!out.has(key)) out.set(key, `/dev/${f[3]}`);
  }
  return out;
}

/** Lines "maj:min Op value" or "maj:min value"; the "Total n" line is skipped. */
export function parseBlkioFile(text: string, devices: Map<string, string>): V1BlkIOEntry[] {
  const out: V1BlkIOEntry[] = [];
  for (const line of text.split('\n')) {
    const f = line.trim().split(/[\s:]+/).filter(Boolean);
    if (f.length < 3) continue; // blank or "Total n"
    const [maj, min] = f as [string, string];
    if (!/^\d+$/.test(maj) || !/^\d+$/.test(min)) continue;
    const op = f.length === 4 ? (f[2] ?? '') : '';
    const value = parseCgroupUint(f[f.length === 4 ? 3 : 2] ?? '');
    if (value === undefined) continue;
    out.push({ op, device: devices.get(`${maj}:${min}`) ?? '', major: BigInt(maj), minor: BigInt(min), value });
  }
  return out;
}

// ---- hugetlb ----

/** "hugepages-2048kB" → "2MB", "hugepages-1048576kB" → "1GB" (docker/go-units CustomSize with binary steps). */
export function hugePageSizeName(dirName: string): string | undefined {
  const m = /^hugepages-(\d+)kB$/.exec(dirName);
  if (!m) return undefined;
  const units = ['B', 'KB', 'MB', 'GB', 'TB', 'PB'];
  let size = Number(m[1]) * 1024;
  let i = 0;
  while (size >= 1024 && i < units.length - 1) {
    size /= 1024;
    i++;
  }
  return `${size}${units[i]}`;
}

async function readHugetlb(dir: string, hugepagesDir: string): Promise<V1HugetlbStat[]> {
  const sizes = (await listOptional(hugepagesDir)).map(hugePageSizeName).filter((s): s is string => !!s).sort();
  return Promise.all(
    sizes.map(async (pagesize) => {
      const [usage, max, failcnt] = await Promise.all(
        ['usage_in_bytes', 'max_usage_in_bytes', 'failcnt'].map((f) => readUint(join(dir, `hugetlb.${pagesize}.${f}`))),
      );
      return { usage: usage ?? 0n, max: max ?? 0n, failcnt: failcnt ?? 0n, pagesize };
    }),
  );
}

// ---- rdma ----

async function readRdma(dir: string): Promise<V1RdmaStat | undefined> {
  const [current, max] = await Promise.all([
    readOptional(join(dir, 'rdma.current')), readOptional(join(dir, 'rdma.max')),
  ]);
  if (current === undefined || max === undefined) return undefined;
  return { current: parseRdma(current), limit: parseRdma(max) };
}
