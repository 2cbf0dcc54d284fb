import { readFileSync, writeFileSync } from 'node:fs';
import { readdir, writeFile, stat } from 'node:fs/promises';
import { cgroupDir, parseCgroupMounts, parseProcCgroup } from './cgroup-paths.js';
import { join } from 'node:path';

/**
 * Moves a pid into a static cgroup path (runc Options.shim_cgroup): on cgroup v2 the single hierarchy, on
 * v1 every mounted hierarchy that has that path (as the reference's cgroups.Load(Static(path)).Add does).
 */
export async function joinCgroup(pid: number, cgroupPath: string, root = '/sys/fs/cgroup'): Promise<void> {
  const unified = await stat(join(root, 'cgroup.controllers')).then(
    () => true,
    () => false,
  );
  if (unified) {
    await writeFile(join(root, cgroupPath, 'cgroup.procs'), String(pid));
    return;
  }
  let joined = 0;
  for (const entry of await readdir(root, { withFileTypes: true })) {
    if (!entry.isDirectory() || entry.name === 'unified') continue;
    const procs = join(root, entry.name, cgroupPath, 'cgroup.procs');
    try {
      await writeFile(procs, String(pid));
      joined++;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
  }
  if (joined === 0) throw new Error(`shim cgroup ${cgroupPath} not found in any hierarchy under ${root}`);
}

/**
 * Moves `pid` into every cgroup `other` is in (each v1 hierarchy and the v2 one), as if it had been started
 * by `other`: a spare daemon taking a container goes where a daemon started by that `start` would be.
 * Best effort per hierarchy (a cgroup may be gone or not writable); returns the hierarchies not joined.
 */
export async function joinCgroupsOf(pid: number, other: number): Promise<string[]> {
  // procfs and cgroupfs, read and written synchronously (memory-backed; a spare's take-over, no call served yet).
  const theirs = readFileSync(`/proc/${other}/cgroup`, 'utf8');
  const ours = readFileSync(`/proc/${pid}/cgroup`, 'utf8');
  // Usually so (a spare waits in containerd's cgroups): moving costs a write per v1 hierarchy.
  if (theirs === ours) return [];
  const mountinfo = readFileSync('/proc/self/mountinfo', 'utf8');
  const wanted = parseProcCgroup(theirs);
  const mounts = parseCgroupMounts(mountinfo);
  const dirs = new Set<string>();
  for (const [controller, path] of wanted.v1) {
    const mount = mounts.v1.get(controller);
    const dir = mount && cgroupDir(mount, path);
    if (dir) dirs.add(dir);
  }
  if (wanted.unified !== undefined) {
    for (const mount of mounts.v2) {
      const dir = cgroupDir(mount, wanted.unified);
      if (dir) dirs.add(dir);
    }
  }
  const failed: string[] = [];
  for (const dir of dirs) {
    try {
      writeFileSync(join(dir, 'cgroup.procs'), String(pid));
    } catch {
      failed.push(dir);
    }
  }
  return failed;
}
