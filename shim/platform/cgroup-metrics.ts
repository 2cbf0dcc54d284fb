/**
 * Metrics message types for Stats: the generated ts-proto messages of `io.containerd.cgroups.v1.Metrics` and
 * `io.containerd.cgroups.v2.Metrics` (protocol/gen, uint64 as bigint so limits up to 2^64-1 survive), plus the
 * memory.stat key tables both readers fill them from. An absent sub-message is `undefined` (not sent), exactly
 * as a nil pointer in the Go library.
 */
import type { MemoryStat as V1MemoryStat } from '../../protocol/gen/cgroups/stats/v1/metrics.js';
import type { MemoryStat as V2MemoryStat } from '../../protocol/gen/cgroups/v2/stats/metrics.js';

export {
  Metrics as V1MetricsMessage,
  type Metrics as V1Metrics,
  type HugetlbStat as V1HugetlbStat,
  type PidsStat as V1PidsStat,
  type CPUStat as V1CpuStat,
  type MemoryStat as V1MemoryStat,
  type MemoryEntry as V1MemoryEntry,
  type BlkIOStat as V1BlkIOStat,
  type BlkIOEntry as V1BlkIOEntry,
  type RdmaStat as V1RdmaStat,
} from '../../protocol/gen/cgroups/stats/v1/metrics.js';
export {
  Metrics as V2MetricsMessage,
  type Metrics as V2Metrics,
  type MemoryStat as V2MemoryStat,
  type IOEntry as V2IOEntry,
  type HugeTlbStat as V2HugeTlbStat,
  type RdmaEntry,
} from '../../protocol/gen/cgroups/v2/stats/metrics.js';

export const V1_METRICS_TYPE_URL = 'io.containerd.cgroups.v1.Metrics';
export const V2_METRICS_TYPE_URL = 'io.containerd.cgroups.v2.Metrics';

/** memory.stat keys in proto field order (fields 1–32); `hierarchical_swap_limit` reads `hierarchical_memsw_limit`. */
export const V1_MEMORY_STAT_FIELDS = [
  ['cache', 'cache'], ['rss', 'rss'], ['rssHuge', 'rss_huge'], ['mappedFile', 'mapped_file'], ['dirty', 'dirty'],
  ['writeback', 'writeback'], ['pgPgIn', 'pgpgin'], ['pgPgOut', 'pgpgout'], ['pgFault', 'pgfault'],
  ['pgMajFault', 'pgmajfault'], ['inactiveAnon', 'inactive_anon'], ['activeAnon', 'active_anon'],
  ['inactiveFile', 'inactive_file'], ['activeFile', 'active_file'], ['unevictable', 'unevictable'],
  ['hierarchicalMemoryLimit', 'hierarchical_memory_limit'], ['hierarchicalSwapLimit', 'hierarchical_memsw_limit'],
  ['totalCache', 'total_cache'], ['totalRss', 'total_rss'], ['totalRssHuge', 'total_rss_huge'],
  ['totalMappedFile', 'total_mapped_file'], ['totalDirty', 'total_dirty'], ['totalWriteback', 'total_writeback'],
  ['totalPgPgIn', 'total_pgpgin'], ['totalPgPgOut', 'total_pgpgout'], ['totalPgFault', 'total_pgfault'],
  ['totalPgMajFault', 'total_pgmajfault'], ['totalInactiveAnon', 'total_inactive_anon'],
  ['totalActiveAnon', 'total_active_anon'], ['totalInactiveFile', 'total_inactive_file'],
  ['totalActiveFile', 'total_active_file'], ['totalUnevictable', 'total_unevictable'],
] as const;
export type V1MemoryStatKey = (typeof V1_MEMORY_STAT_FIELDS)[number][0] & keyof V1MemoryStat;

/** memory.stat keys in proto field order (fields 1–31); the proto name is the camelCase of the key. */
export const V2_MEMORY_STAT_FIELDS = [
  ['anon', 'anon'], ['file', 'file'], ['kernelStack', 'kernel_stack'], ['slab', 'slab'], ['sock', 'sock'],
  ['shmem', 'shmem'], ['fileMapped', 'file_mapped'], ['fileDirty', 'file_dirty'],
  ['fileWriteback', 'file_writeback'], ['anonThp', 'anon_thp'], ['inactiveAnon', 'inactive_anon'],
  ['activeAnon', 'active_anon'], ['inactiveFile', 'inactive_file'], ['activeFile', 'active_file'],
  ['unevictable', 'unevictable'], ['slabReclaimable', 'slab_reclaimable'],
  ['slabUnreclaimable', 'slab_unreclaimable'], ['pgfault', 'pgfault'], ['pgmajfault', 'pgmajfault'],
  ['workingsetRefault', 'workingset_refault'], ['workingsetActivate', 'workingset_activate'],
  ['workingsetNodereclaim', 'workingset_nodereclaim'], ['pgrefill', 'pgrefill'], ['pgscan', 'pgscan'],
  ['pgsteal', 'pgsteal'], ['pgactivate', 'pgactivate'], ['pgdeactivate', 'pgdeactivate'],
  ['pglazyfree', 'pglazyfree'], ['pglazyfreed', 'pglazyfreed'], ['thpFaultAlloc', 'thp_fault_alloc'],
  ['thpCollapseAlloc', 'thp_collapse_alloc'],
] as const;
export type V2MemoryStatKey = (typeof V2_MEMORY_STAT_FIELDS)[number][0] & keyof V2MemoryStat;
