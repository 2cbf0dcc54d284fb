// A busybox test image built locally from the host's static busybox (no registry access): one
// uncompressed layer and an OCI image layout tarball, written byte-for-byte deterministically and
// cached by content under .cache/images/.
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Containerd } from './containerd.js';
import { exec, repoRoot } from './util.js';

export const DEFAULT_IMAGE = 'docker.io/library/busybox:test';

/** Where built image tarballs are kept: .cache/images/, or SHIM_TEST_IMAGE_CACHE (the test VM's checkout is read-only). */
function imageCacheDir(): string {
  return process.env.SHIM_TEST_IMAGE_CACHE ?? join(repoRoot(), '.cache', 'images');
}

/** Bumped whenever the image layout below changes, so cached tarballs are rebuilt. */
const FORMAT = 'busybox-image-v1';

/** Applets that tests rely on; all other applets of the binary get a link too. */
export const REQUIRED_APPLETS = [
  'sh', 'echo', 'cat', 'sleep', 'true', 'false', 'ls', 'ps', 'stty', 'id', 'seq', 'yes', 'head', 'dd', 'wc',
  'printf', 'kill', 'env', 'grep',
] as const;

export const PASSWD = 'root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000:user:/home/user:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n';
export const GROUP = 'root:x:0:\nuser:x:1000:\nnogroup:x:65534:\n';

// ---------------------------------------------------------------------------------------------
// Minimal ustar writer: fixed owner root:root, mtime 0, no extended headers — deterministic.

type TarEntry =
  | { type: 'dir'; name: string; mode: number; uid?: number; gid?: number }
  | { type: 'file'; name: string; mode: number; data: Buffer; uid?: number; gid?: number }
  | { type: 'symlink'; name: string; target: string };

function octal(value: number, width: number): string {
  return value.toString(8).padStart(width - 1, '0') + '\0';
}

function tarHeader(e: TarEntry, size: number): Buffer {
  const h = Buffer.alloc(512);
  const name = e.type === 'dir' ? e.name.replace(/\/?$/, '/') : e.name;
  if (Buffer.byteLength(name) > 100) throw new Error(`tar: name too long: ${name}`);
  h.write(name, 0, 100, 'utf8');
  h.write(octal(e.type === 'symlink' ? 0o777 : e.mode, 8), 100, 'ascii');
  h.write(octal(e.type === 'symlink' ? 0 : (e.uid ?? 0), 8), 108, 'ascii');
  h.write(octal(e.type === 'symlink' ? 0 : (e.gid ?? 0), 8), 116, 'ascii');
  h.write(octal(size, 12), 124, 'ascii');
  h.write(octal(0, 12), 136, 'ascii'); // mtime
  h.write(e.type === 'file' ? '0' : e.type === 'dir' ? '5' : '2', 156, 'ascii');
  if (e.type === 'symlink') h.write(e.target, 157, 100, 'utf8');
  h.write('ustar\0', 257, 'ascii');
  h.write('00', 263, 'ascii');
  h.write('root', 265, 'ascii');
  h.write('root', 297, 'ascii');
  h.fill(' ', 148, 156); // checksum is computed with its own field as spaces
  let sum = 0;
  for (const b of h) sum += b;
  h.write(sum.toString(8).padStart(6, '0') + '\0 ', 148, 'ascii');
  return h;
}

export function makeTar(entries: readonly TarEntry[]): Buffer {
  const parts: Buffer[] = [];
  for (const e of entries) {
    const data = e.type === 'file' ? e.data : Buffer.alloc(0);
    parts.push(tarHeader(e, data.length), data);
    const pad = (512 - (data.length % 512)) % 512;
    if (pad) parts.push(Buffer.alloc(pad));
  }
  parts.push(Buffer.alloc(1024));
  return Buffer.concat(parts);
}

// ---------------------------------------------------------------------------------------------

function sha256(data: Buffer | string): string {
  return createHash('sha256').update(data).digest('hex');
}

/** The image platform matching this host, e.g. linux/amd64. */
export function hostPlatform(): { os: 'linux'; architecture: string } {
  const arch: Record<string, string> = { x64: 'amd64', arm64: 'arm64', arm: 'arm', ppc64: 'ppc64le', s390x: 's390x', riscv64: 'riscv64' };
  return { os: 'linux', architecture: arch[process.arch] ?? process.arch };
}

function busyboxPath(): string {
  return process.env.SHIM_TEST_BUSYBOX ?? '/usr/bin/busybox';
}

/** True if the ELF file has a PT_INTERP program header (i.e. is dynamically linked). */
function isDynamicElf(elf: Buffer): boolean {
  if (elf.readUInt32BE(0) !== 0x7f454c46 || elf[4] !== 2 || elf[5] !== 1) return false; // only 64-bit LE checked
  const phoff = Number(elf.readBigUInt64LE(0x20));
  const phentsize = elf.readUInt16LE(0x36);
  const phnum = elf.readUInt16LE(0x38);
  for (let i = 0; i < phnum; i++) if (elf.readUInt32LE(phoff + i * phentsize) === 3) return true;
  return false;
}

/** Applet names the busybox binary provides. */
async function appletList(busybox: string): Promise<string[]> {
  const r = await exec(busybox, ['--list']);
  return r.stdout.split('\n').map((s) => s.trim()).filter((s) => s && s !== 'busybox' && !s.includes('/'));
}

export interface BuiltImage {
  /** The OCI image layout tarball. */
  tarball: string;
  ref: string;
  /** sha256:... of the uncompressed layer == the chain id of the unpacked snapshot. */
  diffId: string;
  manifestDigest: string;
  platform: string;
}

function rootfsEntries(busybox: Buffer, applets: readonly string[]): TarEntry[] {
  const dirs = ['bin', 'dev', 'etc', 'home', 'home/user', 'proc', 'root', 'run', 'sys', 'tmp', 'usr', 'usr/bin', 'var', 'var/tmp'];
  const entries: TarEntry[] = dirs.map((d) => ({
    type: 'dir',
    name: d,
    mode: d === 'tmp' || d === 'var/tmp' ? 0o1777 : d === 'root' ? 0o700 : 0o755,
    ...(d === 'home/user' ? { uid: 1000, gid: 1000 } : {}),
  }));
  entries.push({ type: 'file', name: 'bin/busybox', mode: 0o755, data: busybox });
  for (const a of [...new Set(applets)].sort()) entries.push({ type: 'symlink', name: `bin/${a}`, target: 'busybox' });
  entries.push({ type: 'symlink', name: 'usr/bin/env', target: '../../bin/busybox' });
  const text = (name: string, content: string): TarEntry => ({ type: 'file', name, mode: 0o644, data: Buffer.from(content) });
  entries.push(
    text('etc/passwd', PASSWD),
    text('etc/group', GROUP),
    text('etc/hosts', '127.0.0.1\tlocalhost\n::1\tlocalhost\n'),
    text('etc/hostname', 'busybox\n'),
    text('etc/os-release', 'NAME=busybox\nID=busybox\n'),
  );
  return entries;
}

function json(value: unknown): Buffer {
  return Buffer.from(JSON.stringify(value));
}

/**
 * Builds (or reuses from .cache/images/) the busybox OCI image layout tarball for `ref`.
 * The content depends only on the busybox binary, `ref` and the harness format.
 */
const building = new Map<string, Promise<BuiltImage>>();

export interface ImageOptions {
  /** The image config's Cmd (default ['sh']); e.g. a pause image: ['sleep', '2147483647']. */
  cmd?: string[];
}

export function buildBusyboxImage(ref = DEFAULT_IMAGE, opts: ImageOptions = {}): Promise<BuiltImage> {
  // Concurrent callers in one process share one build.
  const cmd = opts.cmd ?? ['sh'];
  const key = JSON.stringify([ref, cmd]);
  let p = building.get(key);
  if (!p) {
    p = buildBusyboxImageOnce(ref, cmd);
    building.set(key, p);
    p.catch(() => building.delete(key));
  }
  return p;
}

/** The image's blobs (layer, config, manifest) and the OCI index naming it `ref`, from the host's busybox. */
interface ImageParts {
  layer: Buffer;
  config: Buffer;
  manifest: Buffer;
  index: Buffer;
  diffId: string;
  manifestDigest: string;
  platform: { os: 'linux'; architecture: string };
}

async function busyboxImageParts(bbPath: string, busybox: Buffer, ref: string, cmd: readonly string[] = ['sh']): Promise<ImageParts> {
  const platform = hostPlatform();
  const applets = [...new Set([...(await appletList(bbPath)), ...REQUIRED_APPLETS])];
  const layer = makeTar(rootfsEntries(busybox, applets));
  const diffId = `sha256:${sha256(layer)}`;
  const config = json({
    architecture: platform.architecture,
    os: platform.os,
    config: {
      Env: ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'],
      Cmd: cmd,
      WorkingDir: '/',
    },
    rootfs: { type: 'layers', diff_ids: [diffId] },
    history: [{ created_by: 'containerd-shim-ts test harness (busybox-static)' }],
  });
  const manifest = json({
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: `sha256:${sha256(config)}`, size: config.length },
    layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: diffId, size: layer.length }],
  });
  const manifestDigest = `sha256:${sha256(manifest)}`;
  const tag = ref.includes(':') && !ref.slice(ref.lastIndexOf(':')).includes('/') ? ref.slice(ref.lastIndexOf(':') + 1) : 'latest';
  const index = json({
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.index.v1+json',
    manifests: [
      {
        mediaType: 'application/vnd.oci.image.manifest.v1+json',
        digest: manifestDigest,
        size: manifest.length,
        platform,
        annotations: { 'io.containerd.image.name': ref, 'org.opencontainers.image.ref.name': tag },
      },
    ],
  });
  return { layer, config, manifest, index, diffId, manifestDigest, platform };
}

const blobEntry = (data: Buffer): TarEntry => ({ type: 'file', name: `blobs/sha256/${sha256(data)}`, mode: 0o644, data });

/** Writes `data` to `file` atomically: concurrent test files (and one process, twice) may build the same file. */
async function publish(file: string, data: Buffer | string): Promise<void> {
  const tmp = `${file}.${process.pid}.${Math.random().toString(36).slice(2)}.tmp`;
  await writeFile(tmp, data);
  await rename(tmp, file);
}

async function buildBusyboxImageOnce(ref: string, cmd: string[]): Promise<BuiltImage> {
  const bbPath = busyboxPath();
  const busybox = await readFile(bbPath);
  if (isDynamicElf(busybox)) throw new Error(`${bbPath} is dynamically linked; the image needs busybox-static`);
  const platform = hostPlatform();
  // The default Cmd keeps the key it always had (cached tarballs stay valid).
  const cmdKey = cmd.length === 1 && cmd[0] === 'sh' ? '' : `\0${JSON.stringify(cmd)}`;
  const key = sha256(`${FORMAT}\0${ref}\0${platform.architecture}\0${sha256(busybox)}${cmdKey}`).slice(0, 20);
  const cacheDir = imageCacheDir();
  const tarball = join(cacheDir, `busybox-${key}.tar`);
  const metaFile = tarball + '.json';
  if (existsSync(tarball) && existsSync(metaFile)) {
    return JSON.parse(await readFile(metaFile, 'utf8')) as BuiltImage;
  }

  const parts = await busyboxImageParts(bbPath, busybox, ref, cmd);
  const archive = makeTar([
    { type: 'file', name: 'oci-layout', mode: 0o644, data: json({ imageLayoutVersion: '1.0.0' }) },
    { type: 'file', name: 'index.json', mode: 0o644, data: parts.index },
    { type: 'dir', name: 'blobs', mode: 0o755 },
    { type: 'dir', name: 'blobs/sha256', mode: 0o755 },
    blobEntry(parts.config),
    blobEntry(parts.layer),
    blobEntry(parts.manifest),
  ]);

  const built: BuiltImage = { tarball, ref, diffId: parts.diffId, manifestDigest: parts.manifestDigest, platform: `${platform.os}/${platform.architecture}` };
  await mkdir(cacheDir, { recursive: true });
  await publish(tarball, archive);
  await publish(metaFile, JSON.stringify(built, null, 2));
  return built;
}

/** The repository:tag Docker shows for `ref` (Docker drops the docker.io/library/ prefix). */
export function dockerRepoTag(ref: string): string {
  return ref.replace(/^docker\.io\/library\//, '').replace(/^docker\.io\//, '');
}

/**
 * The busybox image as a tarball for `docker load`: the `docker save` layout (manifest.json naming the config
 * and layer files, which Docker 20.10 reads) and in the same tar the OCI image layout (oci-layout, index.json,
 * blobs/sha256/), as `docker save` of Docker ≥ 25 writes it. Cached under .cache/images/ like the OCI tarball.
 */
export async function buildDockerArchive(ref = DEFAULT_IMAGE): Promise<{ tarball: string; repoTag: string }> {
  const bbPath = busyboxPath();
  const busybox = await readFile(bbPath);
  if (isDynamicElf(busybox)) throw new Error(`${bbPath} is dynamically linked; the image needs busybox-static`);
  const platform = hostPlatform();
  const key = sha256(`docker-archive\0${FORMAT}\0${ref}\0${platform.architecture}\0${sha256(busybox)}`).slice(0, 20);
  const cacheDir = imageCacheDir();
  const tarball = join(cacheDir, `busybox-docker-${key}.tar`);
  const repoTag = dockerRepoTag(ref);
  if (existsSync(tarball)) return { tarball, repoTag };
  const parts = await busyboxImageParts(bbPath, busybox, ref);
  const blobPath = (data: Buffer) => `blobs/sha256/${sha256(data)}`;
  const dockerManifest = json([{ Config: blobPath(parts.config), RepoTags: [repoTag], Layers: [blobPath(parts.layer)] }]);
  const archive = makeTar([
    { type: 'file', name: 'oci-layout', mode: 0o644, data: json({ imageLayoutVersion: '1.0.0' }) },
    { type: 'file', name: 'index.json', mode: 0o644, data: parts.index },
    { type: 'file', name: 'manifest.json', mode: 0o644, data: dockerManifest },
    { type: 'dir', name: 'blobs', mode: 0o755 },
    { type: 'dir', name: 'blobs/sha256', mode: 0o755 },
    blobEntry(parts.config),
    blobEntry(parts.layer),
    blobEntry(parts.manifest),
  ]);
  await mkdir(cacheDir, { recursive: true });
  await publish(tarball, archive);
  return { tarball, repoTag };
}

/**
 * Imports the busybox image into `cd` (default namespace) and makes sure it is unpacked into the
 * overlayfs snapshotter, so `ctr run <ref>` works. Returns the image facts.
 */
export async function importImage(cd: Containerd, ref = DEFAULT_IMAGE, namespace?: string, opts: ImageOptions = {}): Promise<BuiltImage> {
  const img = await buildBusyboxImage(ref, opts);
  // Same flags on 1.6, 1.7 and 2.x; 2.x imports through the transfer service and unpacks there too.
  await cd.ctr(['images', 'import', '--platform', img.platform, '--snapshotter', 'overlayfs', img.tarball], { namespace, timeoutMs: 120_000 });
  // A single-layer image's chain id is its diff id: the snapshot exists once unpacked.
  const snap = await cd.ctr(['snapshots', '--snapshotter', 'overlayfs', 'info', img.diffId], { namespace, allowFail: true });
  if (snap.code !== 0) {
    throw new Error(`image ${ref} imported but not unpacked on containerd ${cd.version}: ${snap.stderr.trim()}`);
  }
  return img;
}
