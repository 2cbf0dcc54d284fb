/**
 * runc options as the shim uses them. containerd sends `containerd.runc.v1.Options` for runtimes named
 * io.containerd.runc.*, and its client still sends the older `containerd.linux.runc.CreateOptions` for other
 * runtime names (it maps fields from the same config), so both are accepted.
 */
import { invalidArgument } from '../../protocol/errdefs.js';
import { Any } from '../../protocol/gen/google/protobuf/any.js';
import { Options } from '../../protocol/gen/containerd/runtime/v2/runc/options/oci.js';
import { CreateOptions } from '../../protocol/gen/containerd/runtime/linux/runctypes/runc.js';

export type RuncOptions = Options;

export const RUNC_OPTIONS_URL = 'containerd.runc.v1.Options';
export const LEGACY_CREATE_OPTIONS_URL = 'containerd.linux.runc.CreateOptions';

export function defaultOptions(): RuncOptions {
  return Options.fromPartial({});
}

function stripPrefix(url: string): string {
  const slash = url.lastIndexOf('/');
  return slash >= 0 ? url.slice(slash + 1) : url;
}

/** Decodes the options Any (possibly absent or empty); an unknown type URL is InvalidArgument. */
export function optionsFromAny(any: Any | undefined): RuncOptions {
  if (!any || !any.typeUrl) return defaultOptions();
  const url = stripPrefix(any.typeUrl);
  try {
    if (url === RUNC_OPTIONS_URL) return Options.decode(any.value);
    if (url === LEGACY_CREATE_OPTIONS_URL) {
      const legacy = CreateOptions.decode(any.value);
      return Options.fromPartial({
        noPivotRoot: legacy.noPivotRoot,
        noNewKeyring: legacy.noNewKeyring,
        shimCgroup: legacy.shimCgroup,
        ioUid: legacy.ioUid,
        ioGid: legacy.ioGid,
        criuWorkPath: legacy.criuWorkPath,
        criuImagePath: legacy.criuImagePath,
      });
    }
  } catch (err) {
    throw invalidArgument(`invalid runtime options of type ${any.typeUrl}`, err);
  }
  throw invalidArgument(`unsupported runtime options type ${any.typeUrl}`);
}

/** `start` gets the options as a serialized Any on stdin (or nothing). */
export function decodeRuntimeOptions(raw: Uint8Array): RuncOptions {
  if (raw.length === 0) return defaultOptions();
  let any: Any;
  try {
    any = Any.decode(raw);
  } catch (err) {
    throw invalidArgument('invalid runtime options on stdin', err);
  }
  return optionsFromAny(any);
}

/** options.json as the Go shim writes it: snake_case keys, zero values omitted. */
export function optionsJson(o: RuncOptions): string {
  const out: Record<string, unknown> = {};
  const put = (k: string, v: unknown) => {
    if (v !== '' && v !== 0 && v !== false && v !== undefined) out[k] = v;
  };
  put('no_pivot_root', o.noPivotRoot);
  put('no_new_keyring', o.noNewKeyring);
  put('shim_cgroup', o.shimCgroup);
  put('io_uid', o.ioUid);
  put('io_gid', o.ioGid);
  put('binary_name', o.binaryName);
  put('root', o.root);
  put('criu_path', o.criuPath);
  put('systemd_cgroup', o.systemdCgroup);
  put('criu_image_path', o.criuImagePath);
  put('criu_work_path', o.criuWorkPath);
  return JSON.stringify(out);
}

/** Reads options.json back (the `delete` action needs `root` and `binary_name`). */
export function parseOptionsJson(text: string): RuncOptions {
  const j = JSON.parse(text || '{}') as Record<string, unknown>;
  const s = (k: string) => (typeof j[k] === 'string' ? (j[k] as string) : '');
  const b = (k: string) => j[k] === true;
  const n = (k: string) => (typeof j[k] === 'number' ? (j[k] as number) : 0);
  return Options.fromPartial({
    noPivotRoot: b('no_pivot_root'),
    noNewKeyring: b('no_new_keyring'),
    shimCgroup: s('shim_cgroup'),
    ioUid: n('io_uid'),
    ioGid: n('io_gid'),
    binaryName: s('binary_name'),
    root: s('root'),
    criuPath: s('criu_path'),
    systemdCgroup: b('systemd_cgroup'),
    criuImagePath: s('criu_image_path'),
    criuWorkPath: s('criu_work_path'),
  });
}
