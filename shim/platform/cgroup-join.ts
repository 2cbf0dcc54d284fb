import { readdir, writeFile, stat } from 'node:fs/promises';
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
