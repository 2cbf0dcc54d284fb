/** Which ttrpc Task service name containerd uses for a task's shim (v2, or v3 for 2.x shims that say so). */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Containerd } from './containerd.js';

export const TASK_SERVICE_V2 = 'containerd.task.v2.Task';
export const TASK_SERVICE_V3 = 'containerd.task.v3.Task';

/** The bundle containerd made for `id`. */
export function bundleDir(cd: Containerd, id: string, namespace = cd.namespace): string {
  return join(cd.state, 'io.containerd.runtime.v2.task', namespace, id);
}

/**
 * As containerd 2.x decides it: `<bundle>/bootstrap.json` (written by 2.x from the shim's start output) with
 * version 3 means `containerd.task.v3.Task`; anything else (no file: 1.6/1.7, version 2) the v2 service.
 */
export async function taskServiceFor(cd: Containerd, id: string, namespace = cd.namespace): Promise<string> {
  let text: string;
  try {
    text = await readFile(join(bundleDir(cd, id, namespace), 'bootstrap.json'), 'utf8');
  } catch {
    return TASK_SERVICE_V2;
  }
  const boot = JSON.parse(text) as { version?: number; protocol?: string };
  if (boot.protocol !== undefined && boot.protocol !== 'ttrpc') throw new Error(`task ${id}: shim protocol ${boot.protocol}, not ttrpc`);
  return boot.version === 3 ? TASK_SERVICE_V3 : TASK_SERVICE_V2;
}
