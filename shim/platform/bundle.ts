import { readFileSync } from 'node:fs';
import { join } from 'node:path';

/** Annotations that put containers into one shim, in the order the reference checks them. */
export const GROUP_ANNOTATIONS = ['io.containerd.runc.v2.group', 'io.kubernetes.cri.sandbox-id'] as const;
/** Our opt-in grouping beyond the pod (see README "Grouping"). */
export const TS_GROUP_ANNOTATION = 'io.containerd.ts.v2.group';
export const TS_GROUP_ENV = 'CONTAINERD_SHIM_TS_GROUP';

export interface BundleSpec {
  readonly annotations: Readonly<Record<string, string>>;
  /** True when the container has no private PID namespace: its init's exit does not kill the rest. */
  readonly sharedPidNamespace: boolean;
}

interface OciSpecSubset {
  annotations?: Record<string, unknown>;
  linux?: { namespaces?: { type?: unknown; path?: unknown }[] };
}

/** Read synchronously: the bundle is containerd's local state (see task/bundle-files.ts). */
export async function readBundleSpec(bundle: string): Promise<BundleSpec> {
  const raw = readFileSync(join(bundle, 'config.json'), 'utf8');
  const spec = JSON.parse(raw) as OciSpecSubset;
  const annotations: Record<string, string> = {};
  for (const [k, v] of Object.entries(spec.annotations ?? {})) if (typeof v === 'string') annotations[k] = v;
  const pidNs = (spec.linux?.namespaces ?? []).find((n) => n.type === 'pid');
  const sharedPidNamespace = !pidNs || (typeof pidNs.path === 'string' && pidNs.path !== '');
  return { annotations, sharedPidNamespace };
}

/**
 * The grouping key: the reference's annotations first (pods), then our opt-in annotation, then the
 * CONTAINERD_SHIM_TS_GROUP environment variable (set in containerd's environment to put every container of a
 * namespace in one shim), else the container id.
 */
export function groupKey(id: string, annotations: Readonly<Record<string, string>>, env: NodeJS.ProcessEnv): string {
  for (const key of [...GROUP_ANNOTATIONS, TS_GROUP_ANNOTATION]) {
    const v = annotations[key];
    if (v) return v;
  }
  const fromEnv = env[TS_GROUP_ENV];
  if (fromEnv) return fromEnv;
  return id;
}
