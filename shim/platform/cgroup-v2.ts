/**
 * cgroup v2 statistics → `io.containerd.cgroups.v2.Metrics`, filled like containerd/cgroups v2 `Manager.Stat`
 * (v1.0.4): pids, cpu, memory, io and rdma are always present (zeros when the files are missing), hugetlb is a
 * list, memory_events only when `memory.events` exists.
 *
 * One deliberate difference: upstream reads `cpu.stat` only when `cpu` is in `cgroup.controllers`; the kernel
 * provides usage_usec/user_usec/system_usec in every cgroup, so we read it whenever it exists.
 */
import { join } from 'node:path';
import {
  listOptional, parseCgroupUint, parseRdma, readFlatKeyed, readOptional, readUint,
} from './cgroup-files.js';
import {
  V2_MEMORY_STAT_FIELDS,
  type V2HugeTlbStat, type V2IOEntry, type V2MemoryStat, type V2MemoryStatKey, type V2Metrics,
} from './cgroup-metrics.js';

export async function readV2Metrics(dir: string): Promise<V2Metrics> {
  const file = (name: string) => join(dir, name);
  const [pidsCurrent, pidsMax, cpuStat, memStat, current, max, swapCurrent, swapMax, events, io, rdmaCur, rdmaMax,
    hugetlb] = await Promise.all([
    readUint(file('pids.current')),
    readUint(file('pids.max')),
    readFlatKeyed(file('cpu.stat')),
    readFlatKeyed(file('memory.stat')),
    readUint(file('memory.current')),
    readUint(file('memory.max')),
    readUint(file('memory.swap.current')),
    readUint(file('memory.swap.max')),
    readFlatKeyed(file('memory.events')),
    readOptional(file('io.stat')),
    readOptional(file('rdma.current')),
    readOptional(file('rdma.max')),
    readV2Hugetlb(dir),
  ]);
  const cpu = cpuStat ?? new Map<string, bigint>();
  const metrics: V2Metrics = {
    pids: { current: pidsCurrent ?? 0n, limit: pidsMax ?? 0n },
    cpu: {
      usageUsec: cpu.get('usage_usec') ?? 0n,
      userUsec: cpu.get('user_usec') ?? 0n,
      systemUsec: cpu.get('system_usec') ?? 0n,
      nrPeriods: cpu.get('nr_periods') ?? 0n,
      nrThrottled: cpu.get('nr_throttled') ?? 0n,
      throttledUsec: cpu.get('throttled_usec') ?? 0n,
    },
    memory: {
      ...v2MemoryStatFields(memStat ?? new Map()),
      usage: current ?? 0n,
      usageLimit: max ?? 0n,
      swapUsage: swapCurrent ?? 0n,
      swapLimit: swapMax ?? 0n,
    } satisfies V2MemoryStat,
    io: { usage: parseIoStat(io ?? '') },
    rdma: { current: parseRdma(rdmaCur ?? ''), limit: parseRdma(rdmaMax ?? '') },
    hugetlb,
    memoryEvents: undefined,
  };
  if (events && events.size > 0) {
    metrics.memoryEvents = {
      low: events.get('low') ?? 0n,
      high: events.get('high') ?? 0n,
      max: events.get('max') ?? 0n,
      oom: events.get('oom') ?? 0n,
      oomKill: events.get('oom_kill') ?? 0n,
    };
  }
  return metrics;
}

export function v2MemoryStatFields(stat: Map<string, bigint>): Record<V2MemoryStatKey, bigint> {
  const out = {} as Record<V2MemoryStatKey, bigint>;
  for (const [field, key] of V2_MEMORY_STAT_FIELDS) out[field] = stat.get(key) ?? 0n;
  return out;
}

/** io.stat: "maj:min rbytes=… wbytes=… rios=… wios=… dbytes=… dios=…" per device; unknown keys ignored. */
export function parseIoStat(text: string): V2IOEntry[] {
  const out: V2IOEntry[] = [];
  for (const line of text.split('\n')) {
    const [dev, ...pairs] = line.trim().split(/\s+/);
    const m = /^(\d+):(\d+)$/.exec(dev ?? '');
    if (!m || pairs.length === 0) continue;
    const entry: V2IOEntry = { major: BigInt(m[1] ?? 0), minor: BigInt(m[2] ?? 0), rbytes: 0n, wbytes: 0n, rios: 0n, wios: 0n };
    for (const pair of pairs) {
      const [key, raw] = pair.split('=');
      const v = raw === undefined ? undefined : parseCgroupUint(raw);
      if (v === undefined) continue;
      if (key === 'rbytes' || key === 'wbytes' || key === 'rios' || key === 'wios') entry[key] = v;
    }
    out.push(entry);
  }
  return out;
}

/** `hugetlb.<size>.current` / `.max` pairs (the `.rsvd.*`, `.events`, `.numa_stat` files are not stats here). */
async function readV2Hugetlb(dir: string): Promise<V2HugeTlbStat[]> {
  const bySize = new Map<string, V2HugeTlbStat>();
  const names = (await listOptional(dir)).filter((n) => /^hugetlb\.[^.]+\.(current|max)$/.test(n)).sort();
  const values = await Promise.all(names.map((n) => readUint(join(dir, n))));
  names.forEach((name, i) => {
    const [, pagesize = '', kind] = name.split('.');
    const value = values[i];
    if (value === undefined) return;
    const entry = bySize.get(pagesize) ?? { current: 0n, max: 0n, pagesize };
    if (kind === 'current') entry.current = value;
    else entry.max = value;
    bySize.set(pagesize, entry);
  });
  return [...bySize.values()];
}

