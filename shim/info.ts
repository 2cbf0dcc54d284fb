/**
 * `-info` (containerd 2.x): a serialized containerd.types.RuntimeInfo on stdout — our name and version, the
 * options we were given, and the OCI runtime's `features` JSON (from `runc features`).
 */
import { execFile } from 'node:child_process';
import { RuntimeInfo } from '../protocol/gen/extra/introspection.js';
import { Any } from '../protocol/gen/google/protobuf/any.js';
import { optionsFromAny } from './runtime/options.js';
import { RUNTIME_NAME, SHIM_REVISION, SHIM_VERSION } from './version.js';

const FEATURES_URL = 'types.containerd.io/opencontainers/runtime-spec/1/features/Features';

function runtimeFeatures(binary: string): Promise<Buffer | undefined> {
  return new Promise((resolve) => {
    execFile(binary, ['features'], { timeout: 5000, encoding: 'buffer' }, (err, stdout) => resolve(err ? undefined : stdout));
  });
}

export async function runInfo(stdin: Buffer): Promise<Uint8Array> {
  let options: Any | undefined;
  if (stdin.length > 0) options = Any.decode(stdin);
  const runc = optionsFromAny(options);
  const features = await runtimeFeatures(runc.binaryName || 'runc');
  return RuntimeInfo.encode(
    RuntimeInfo.fromPartial({
      name: RUNTIME_NAME,
      version: { version: SHIM_VERSION, revision: SHIM_REVISION },
      ...(options ? { options } : {}),
      ...(features ? { features: { typeUrl: FEATURES_URL, value: features } } : {}),
    }),
  ).finish();
}
