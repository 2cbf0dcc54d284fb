/**
 * Which task API to announce in `start`'s answer. containerd 2.x accepts a bootstrap JSON with version 3
 * (containerd.task.v3.Task, which we also serve): with it, CRI puts a pod's other containers on the
 * sandbox's daemon without running our binary at all (no `start`, and no `delete` when they go), as it does
 * for the reference runc shim. containerd 1.7 refuses version 3 ("unsupported shim version") and 1.6 reads
 * the answer as a plain address, while both tell the shim the same MAX_SHIM_VERSION=2 as 2.x (1.6 none): so
 * we look at the containerd that runs us, whose path containerd passes as `-publish-binary`, and answer 3
 * only when its Go build info names containerd's v2 module. Anything unclear keeps version 2, which every
 * containerd accepts.
 */
import { stat } from 'node:fs/promises';
import { readGoBuildInfo } from './platform/go-buildinfo.js';

export type TaskApiVersion = 2 | 3;

/** Operators can force the answer: CONTAINERD_SHIM_TS_TASK_API=2 (or 3). */
export const TASK_API_ENV = 'CONTAINERD_SHIM_TS_TASK_API';
const CONTAINERD_V2_MODULE = 'github.com/containerd/containerd/v2';

/** Per binary identity: a long-lived spare answers many starts of the same containerd. */
const cache = new Map<string, TaskApiVersion>();

export function isContainerdV2Build(info: { path: string; modules: readonly string[] }): boolean {
  return info.path.startsWith(`${CONTAINERD_V2_MODULE}/`) || info.modules.includes(CONTAINERD_V2_MODULE);
}

export async function taskApiVersion(publishBinary: string, env: NodeJS.ProcessEnv): Promise<TaskApiVersion> {
  const forced = env[TASK_API_ENV];
  if (forced === '2' || forced === '3') return Number(forced) as TaskApiVersion;
  // containerd 1.6 sets no MAX_SHIM_VERSION and knows only version 2.
  const max = Number.parseInt(env.MAX_SHIM_VERSION ?? '', 10);
  if (!Number.isInteger(max) || max < 2 || !publishBinary) return 2;
  let key: string;
  try {
    const st = await stat(publishBinary);
    key = `${publishBinary}\0${st.dev}:${st.ino}:${st.size}:${st.mtimeMs}`;
  } catch {
    return 2;
  }
  const known = cache.get(key);
  if (known) return known;
  const info = await readGoBuildInfo(publishBinary);
  const version: TaskApiVersion = info && isContainerdV2Build(info) ? 3 : 2;
  cache.set(key, version);
  return version;
}

/** What `start` prints: a plain address (version 2, what every containerd reads) or the bootstrap JSON. */
export function startAnswer(address: string, version: TaskApiVersion): string {
  if (version === 2) return address;
  return JSON.stringify({ version, address, protocol: 'ttrpc' });
}
