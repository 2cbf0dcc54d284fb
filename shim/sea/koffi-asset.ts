/**
 * What `koffi` resolves to in the single executable's bundle (scripts/package.mjs): koffi's native module,
 * embedded as the asset `koffi.node`. dlopen needs a file, so it is written once to a root-only file named
 * after its content hash under /run (tmpfs: gone at reboot, never stale across versions), through a temp file
 * and an atomic rename, and every process checks that file's hash before loading it. Daemons share its pages.
 */
import { createHash } from 'node:crypto';
import { closeSync, constants, lstatSync, mkdirSync, openSync, readFileSync, renameSync, unlinkSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { getRawAsset } from 'node:sea';

declare const __KOFFI_SHA256__: string;
declare const __KOFFI_VERSION__: string;

const ASSET = 'koffi.node';

function sha256(data: Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}

/** Root: /run/containerd-shim-ts. Anyone else: a dir of their own (tests, by hand). Refuses a dir others can write. */
function extractDir(): string {
  const uid = process.getuid?.() ?? 0;
  const dir = uid === 0 ? '/run/containerd-shim-ts' : join(process.env.XDG_RUNTIME_DIR || tmpdir(), `containerd-shim-ts-${uid}`);
  try {
    mkdirSync(dir, { mode: 0o700 });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  }
  const st = lstatSync(dir);
  if (!st.isDirectory() || st.uid !== uid || (st.mode & 0o022) !== 0) {
    throw new Error(`koffi: ${dir} is not a directory that only uid ${uid} can write`);
  }
  return dir;
}

/** The file is ours, only we can change it, and it holds exactly the embedded module. */
function isIntact(file: string, uid: number): boolean {
  try {
    const st = lstatSync(file);
    if (!st.isFile() || st.uid !== uid || (st.mode & 0o022) !== 0) return false;
    return sha256(readFileSync(file)) === __KOFFI_SHA256__;
  } catch {
    return false;
  }
}

function extract(file: string): void {
  const data = new Uint8Array(getRawAsset(ASSET) as ArrayBuffer);
  if (sha256(data) !== __KOFFI_SHA256__) throw new Error('koffi: the embedded native module does not match its hash');
  const tmp = `${file}.${process.pid}.tmp`;
  const fd = openSync(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o500);
  try {
    for (let off = 0; off < data.length; ) off += writeSync(fd, data, off);
  } catch (err) {
    closeSync(fd);
    unlinkSync(tmp);
    throw err;
  }
  closeSync(fd);
  renameSync(tmp, file); // atomic: concurrent processes see the old file or the whole new one
}

function loadKoffi(): unknown {
  const uid = process.getuid?.() ?? 0;
  const file = join(extractDir(), `koffi-${__KOFFI_SHA256__}.node`);
  if (!isIntact(file, uid)) extract(file);
  const mod = { exports: {} as { version?: string } };
  process.dlopen(mod, file);
  if (mod.exports.version !== __KOFFI_VERSION__) {
    throw new Error(`koffi: native module ${String(mod.exports.version)}, expected ${__KOFFI_VERSION__}`);
  }
  return mod.exports;
}

/** Typed as the koffi package where it is imported (the build resolves `koffi` here). */
const koffi: any = loadKoffi();
export default koffi;
