/**
 * Reads the build information a Go toolchain (1.18+) embeds in an executable: the `.go.buildinfo` ELF
 * section holds a 16-byte header ("\xff Go buildinf:", pointer size, flags) and, when the strings are inline
 * (flag bit 2), the Go version and the module information, each prefixed with its length as a uvarint.
 * Used to tell which containerd runs `start` (its binary is `-publish-binary`). A few small reads, no
 * whole-file scan; anything unexpected gives `undefined`, never an exception.
 */
import { open, type FileHandle } from 'node:fs/promises';

export interface GoBuildInfo {
  /** e.g. "go1.24.4" */
  readonly goVersion: string;
  /** The main package's import path (`path` line), e.g. "github.com/containerd/containerd/v2/cmd/containerd". */
  readonly path: string;
  /** The main module (`mod` line) and dependencies (`dep` lines), without versions. */
  readonly modules: readonly string[];
}

const MAGIC = Buffer.from('\xff Go buildinf:', 'latin1');
const FLAG_INLINE_STRINGS = 0x2;
const SECTION_NAME = '.go.buildinfo';
/** Bounds on what we read: a sane ELF has far fewer sections, and modinfo is a few KiB at most. */
const MAX_SECTIONS = 4096;
const MAX_INFO_BYTES = 256 * 1024;

async function readAt(fh: FileHandle, offset: number, length: number): Promise<Buffer> {
  const buf = Buffer.alloc(length);
  const { bytesRead } = await fh.read(buf, 0, length, offset);
  return buf.subarray(0, bytesRead);
}

/** Decodes a uvarint at `pos`; returns [value, next position] or undefined if truncated/oversized. */
function uvarint(buf: Buffer, pos: number): [number, number] | undefined {
  let value = 0;
  let shift = 0;
  for (let i = pos; i < buf.length && shift < 35; i++) {
    const b = buf[i]!;
    value += (b & 0x7f) * 2 ** shift;
    if ((b & 0x80) === 0) return [value, i + 1];
    shift += 7;
  }
  return undefined;
}

/** File offset and size of the `.go.buildinfo` section of a 64-bit little-endian ELF, if any. */
async function findSection(fh: FileHandle): Promise<{ offset: number; size: number } | undefined> {
  const header = await readAt(fh, 0, 64);
  if (header.length < 64 || header.readUInt32BE(0) !== 0x7f454c46) return undefined; // "\x7fELF"
  if (header[4] !== 2 || header[5] !== 1) return undefined; // ELFCLASS64, little-endian
  const shoff = Number(header.readBigUInt64LE(0x28));
  const shentsize = header.readUInt16LE(0x3a);
  const shnum = header.readUInt16LE(0x3c);
  const shstrndx = header.readUInt16LE(0x3e);
  if (shoff === 0 || shentsize < 64 || shnum === 0 || shnum > MAX_SECTIONS || shstrndx >= shnum) return undefined;
  const table = await readAt(fh, shoff, shnum * shentsize);
  if (table.length < shnum * shentsize) return undefined;
  const section = (i: number) => ({
    name: table.readUInt32LE(i * shentsize),
    offset: Number(table.readBigUInt64LE(i * shentsize + 24)),
    size: Number(table.readBigUInt64LE(i * shentsize + 32)),
  });
  const strtab = section(shstrndx);
  const names = await readAt(fh, strtab.offset, Math.min(strtab.size, 64 * 1024));
  for (let i = 0; i < shnum; i++) {
    const s = section(i);
    const end = names.indexOf(0, s.name);
    if (end >= 0 && names.toString('latin1', s.name, end) === SECTION_NAME) return { offset: s.offset, size: s.size };
  }
  return undefined;
}

/** Parses the section contents (header + inline strings). */
export function parseBuildInfo(data: Buffer): GoBuildInfo | undefined {
  if (data.length < 32 || !data.subarray(0, MAGIC.length).equals(MAGIC)) return undefined;
  const flags = data[15]!;
  if ((flags & FLAG_INLINE_STRINGS) === 0) return undefined; // Go < 1.18 stores pointers: not worth reading
  const version = uvarint(data, 32);
  if (!version || version[1] + version[0] > data.length) return undefined;
  const goVersion = data.toString('utf8', version[1], version[1] + version[0]);
  const info = uvarint(data, version[1] + version[0]);
  if (!info || info[1] + info[0] > data.length) return undefined;
  // modinfo is framed by 16-byte sentinels; the lines between are tab-separated.
  const text = data.toString('utf8', info[1], info[1] + info[0]);
  let path = '';
  const modules: string[] = [];
  for (const line of text.split('\n')) {
    const [kind, value] = line.split('\t');
    if (value === undefined) continue;
    if (kind?.endsWith('path')) path = value;
    else if (kind === 'mod' || kind === 'dep') modules.push(value);
  }
  return { goVersion, path, modules };
}

export async function readGoBuildInfo(file: string): Promise<GoBuildInfo | undefined> {
  let fh: FileHandle | undefined;
  try {
    fh = await open(file, 'r');
    const section = await findSection(fh);
    if (!section) return undefined;
    // With inline strings the section holds everything; read a little more in case a linker sized it oddly.
    const length = Math.min(Math.max(section.size, 4096), MAX_INFO_BYTES);
    return parseBuildInfo(await readAt(fh, section.offset, length));
  } catch {
    return undefined;
  } finally {
    await fh?.close().catch(() => undefined);
  }
}
