/**
 * Tolerant readers and parsers for cgroupfs files, shared by the v1 and v2 stats code.
 *
 * Values are bigint: cgroup counters and limits are u64 ("unlimited" on v1 is 2^63-4096 rounded, on v2 `max`
 * maps to 2^64-1), which a JS number cannot hold exactly.
 */
import { readFile, readdir } from 'node:fs/promises';

export const MAX_UINT64 = (1n << 64n) - 1n;

/**
 * The file's text, or undefined when it cannot be read. A controller that is not mounted, a kernel without the
 * file, or a cgroup removed meanwhile (ENOENT, ENODEV on a removed kernfs node) must not fail a whole Stats call;
 * containerd's library ignores "not exist" the same way.
 */
export async function readOptional(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, 'utf8');
  } catch {
    return undefined;
  }
}

/** Directory entries, or [] when the directory cannot be read. */
export async function listOptional(path: string): Promise<string[]> {
  try {
    return await readdir(path);
  } catch {
    return [];
  }
}

/**
 * Parses one cgroup number. `max` → 2^64-1 (v2 convention); negative values (e.g. v1 `-1` written as a limit
 * on some kernels) → 0, as containerd's parseUint does; anything unparsable → undefined.
 */
export function parseCgroupUint(raw: string): bigint | undefined {
  const s = raw.trim();
  if (s === 'max') return MAX_UINT64;
  if (/^\d+$/.test(s)) {
    const v = BigInt(s);
    return v > MAX_UINT64 ? MAX_UINT64 : v;
  }
  if (/^-\d+$/.test(s)) return 0n;
  return undefined;
}

/** Reads a single-value file; missing or unparsable → undefined. */
export async function readUint(path: string): Promise<bigint | undefined> {
  const text = await readOptional(path);
  return text === undefined ? undefined : parseCgroupUint(text);
}

/**
 * Parses a flat-keyed file ("key value" per line: memory.stat, cpu.stat, memory.events, memory.oom_control).
 * Lines that are not exactly two fields with a numeric value are skipped.
 */
export function parseFlatKeyed(text: string): Map<string, bigint> {
  const out = new Map<string, bigint>();
  for (const line of text.split('\n')) {
    const parts = line.trim().split(/\s+/);
    if (parts.length !== 2) continue;
    const [key, raw] = parts as [string, string];
    const v = parseCgroupUint(raw);
    if (v !== undefined) out.set(key, v);
  }
  return out;
}

/** Reads a flat-keyed file; undefined when missing. */
export async function readFlatKeyed(path: string): Promise<Map<string, bigint> | undefined> {
  const text = await readOptional(path);
  return text === undefined ? undefined : parseFlatKeyed(text);
}

/**
 * Parses rdma.current / rdma.max ("<device> hca_handle=<n> hca_object=<n>" per line; `max` → 2^32-1).
 * Shared by v1 and v2: both controllers use the same format.
 */
export function parseRdma(text: string): { device: string; hcaHandles: number; hcaObjects: number }[] {
  const out: { device: string; hcaHandles: number; hcaObjects: number }[] = [];
  for (const line of text.split('\n')) {
    const parts = line.trim().split(/\s+/);
    if (parts.length !== 3) continue;
    const entry = { device: parts[0] ?? '', hcaHandles: 0, hcaObjects: 0 };
    for (const kv of parts.slice(1)) {
      const [key, raw] = kv.split('=');
      if (raw === undefined) continue;
      const value = raw === 'max' ? 0xffffffff : Number.parseInt(raw, 10);
      if (!Number.isFinite(value)) continue;
      if (key === 'hca_handle') entry.hcaHandles = value;
      else if (key === 'hca_object') entry.hcaObjects = value;
    }
    out.push(entry);
  }
  return out;
}
