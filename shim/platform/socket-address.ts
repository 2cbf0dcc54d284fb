import { createHash } from 'node:crypto';
import { posix } from 'node:path';

/** containerd's compile-time state dir: shim sockets live here whatever containerd's own root is. */
export const SHIM_SOCKET_DIR = '/run/containerd/s';

/**
 * The reference shim's socket address: unix:///run/containerd/s/<sha256(path.Join(address, ns, group))>.
 * Using the same hash keeps grouping semantics identical and the path well under sun_path's 108 bytes.
 */
export function socketAddress(grpcAddress: string, namespace: string, group: string, dir = SHIM_SOCKET_DIR): string {
  // Go's path.Join cleans the result (collapses slashes, resolves . and ..).
  const joined = posix.join(grpcAddress, namespace, group);
  const hash = createHash('sha256').update(joined).digest('hex');
  return `unix://${dir}/${hash}`;
}

/** Path of a `unix://` address; undefined for abstract names (no scheme), which we never create. */
export function socketPath(address: string): string | undefined {
  return address.startsWith('unix://') ? address.slice('unix://'.length) : undefined;
}
