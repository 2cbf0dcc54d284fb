/**
 * `delete` of the single executable when there is provably nothing to do, answered before the daemon's
 * modules are loaded: the checks and the answer of scripts/shim-wrapper.sh's fast_delete (no runc state dir,
 * so no container to kill or remove; the rootfs is not a mount point; the daemon's socket file is gone). The
 * answer is what the full delete (shim/delete.ts) answers: DeleteResponse{pid from init.pid, exit_status 137,
 * exited_at now}. Anything not recognised returns undefined: the full delete runs.
 */
import { existsSync, lstatSync, readFileSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { parseFlags } from '../flags.js';

const SAFE_WORD = /^[A-Za-z0-9._-]+$/;
/** mountinfo escapes other bytes: a bundle path with them is left to the full delete. */
const PLAIN_PATH = /^\/[A-Za-z0-9._/:@+=,-]*$/;
const RUNC_STATE = '/run/containerd/runc';

export function fastDelete(argv: readonly string[], cwd: string): Uint8Array | undefined {
  let flags;
  try {
    flags = parseFlags(argv);
  } catch {
    return undefined;
  }
  if (flags.action !== 'delete' || flags.version || flags.info || flags.socket || flags.debugSocket) return undefined;
  const { namespace: ns, id } = flags;
  if (!SAFE_WORD.test(ns) || !SAFE_WORD.test(id)) return undefined;
  const bundle = flags.bundle || join(dirname(cwd), id); // as the full delete: <parent of cwd>/<id>
  if (!PLAIN_PATH.test(bundle) || bundle.includes('/../') || bundle.endsWith('/..')) return undefined;
  if (!isFile(join(bundle, 'runtime'))) return undefined;
  const options = readText(join(bundle, 'options.json'));
  if (options?.includes('"root"')) return undefined; // a runc root of its own: the full delete looks there
  if (exists(join(RUNC_STATE, ns, id))) return undefined;
  const address = (readText(join(bundle, 'address')) ?? '').split('\n')[0]!;
  if (address.startsWith('unix://') && exists(address.slice('unix://'.length))) return undefined;
  const mountinfo = readText('/proc/self/mountinfo');
  if (mountinfo === undefined || mountinfo.includes(` ${bundle}/rootfs `) || mountinfo.includes(` ${bundle}/rootfs/`)) return undefined;
  let pid = 4294967295; // -1 as uint32, as the full delete without init.pid
  const p = (readText(join(bundle, 'init.pid')) ?? '').split('\n')[0]!;
  if (/^(0|[1-9][0-9]{0,8})$/.test(p)) pid = Number(p);
  return deleteResponse(pid, 137, Date.now());
}

function exists(path: string): boolean {
  try {
    lstatSync(path);
    return true;
  } catch {
    return existsSync(path);
  }
}

function isFile(path: string): boolean {
  try {
    return statSync(path).isFile();
  } catch {
    return false;
  }
}

function readText(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
}

function varint(out: number[], value: number): void {
  let v = value;
  while (v >= 128) {
    out.push((v % 128) | 128);
    v = Math.floor(v / 128);
  }
  out.push(v);
}

/** DeleteResponse{pid=1, exit_status=2, exited_at=3: Timestamp{seconds=1, nanos=2}}, proto3 (zeros omitted). */
export function deleteResponse(pid: number, exitStatus: number, epochMs: number): Uint8Array {
  const ts: number[] = [];
  const seconds = Math.floor(epochMs / 1000);
  const nanos = (epochMs % 1000) * 1_000_000;
  if (seconds !== 0) {
    ts.push(8);
    varint(ts, seconds);
  }
  if (nanos !== 0) {
    ts.push(16);
    varint(ts, nanos);
  }
  const out: number[] = [];
  if (pid !== 0) {
    out.push(8);
    varint(out, pid);
  }
  out.push(16);
  varint(out, exitStatus);
  out.push(26);
  varint(out, ts.length);
  out.push(...ts);
  return Uint8Array.from(out);
}
