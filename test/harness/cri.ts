// A private containerd with its CRI plugin on, driven as the kubelet drives it: gRPC runtime.v1 over the
// containerd socket, runtime handlers `ts` (ours) and `runc` (reference), a locally built pause image as the
// sandbox image, and a loopback-only pod network (no bridge, no host interface). Nothing is ever pulled.
import { credentials, Metadata, type CallOptions, type Client, type ClientUnaryCall, type ServiceError } from '@grpc/grpc-js';
import { existsSync, mkdtempSync, rmSync, symlinkSync, writeFileSync, chmodSync } from 'node:fs';
import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import * as cri from '../cri/gen/cri.js';
import { containerdBinaries, startContainerd, type Containerd, type ContainerdVersion } from './containerd.js';
import { DEFAULT_IMAGE, importImage } from './image.js';
import { makeTempDir, removeDir, repoRoot, tempBase, waitFor } from './util.js';

/** The containerd namespace CRI keeps its pods in. */
export const CRI_NAMESPACE = 'k8s.io';
/** The pause image: the busybox image whose command sleeps forever (busybox-static's `sleep`). */
export const PAUSE_IMAGE = 'localhost/shimtest/pause:test';
export const PAUSE_CMD = ['sleep', '2147483647'];
/** The image the tests' containers run. */
export const CRI_IMAGE = DEFAULT_IMAGE;
/** Runtime handlers configured (RuntimeClass handler names): ours and the reference. */
export const HANDLERS = ['ts', 'runc'] as const;
export type Handler = (typeof HANDLERS)[number];
export const RUNTIME_TYPE: Record<Handler, string> = { ts: 'io.containerd.ts.v2', runc: 'io.containerd.runc.v2' };
/** The shim binary containerd runs for each handler. */
export const SHIM_BINARY: Record<Handler, string> = { ts: 'containerd-shim-ts-v2', runc: 'containerd-shim-runc-v2' };
/** The Debian package containernetworking-plugins installs `loopback` here. */
export const LOOPBACK_PLUGIN = process.env.SHIM_TEST_CNI_LOOPBACK ?? '/usr/lib/cni/loopback';
/** Our CNI plugin (test/fixtures/cni-test-eth0.sh), named in the conflist by this type. */
const TEST_CNI_TYPE = 'cni-test-eth0';

export interface CriPaths {
  cniBinDir: string;
  cniConfDir: string;
  pauseImage: string;
}

function q(s: string): string {
  return JSON.stringify(s);
}

/**
 * The CRI part of containerd's config. 1.6/1.7: config version 2, all in plugins."io.containerd.grpc.v1.cri".
 * 2.x: config version 3, split into io.containerd.cri.v1.images (sandbox image: pinned_images.sandbox) and
 * io.containerd.cri.v1.runtime (runtimes, cni, security). Same meaning in both:
 * - restrict_oom_score_adj: the pause container asks for oom_score_adj -998, which an unprivileged-looking
 *   parent cannot lower to (runc fails); restricted, it is clamped to our own score.
 * - netns_mounts_under_state_dir: pod netns bind mounts under containerd's state dir, not /var/run/netns.
 * - selinux and apparmor off, no CDI: nothing of the host is read or changed for them.
 */
export function criConfigToml(version: ContainerdVersion, p: CriPaths): string {
  const runtimes = (base: string) =>
    HANDLERS.flatMap((h) => [`[${base}.containerd.runtimes.${h}]`, `  runtime_type = ${q(RUNTIME_TYPE[h])}`]);
  const security = [
    'enable_selinux = false',
    'disable_apparmor = true',
    'restrict_oom_score_adj = true',
    'netns_mounts_under_state_dir = true',
  ];
  if (version !== '2.1') {
    const base = `plugins.${q('io.containerd.grpc.v1.cri')}`;
    return [
      `[${base}]`,
      `  sandbox_image = ${q(p.pauseImage)}`,
      ...security.map((l) => '  ' + l),
      `[${base}.containerd]`,
      '  snapshotter = "overlayfs"',
      '  default_runtime_name = "runc"',
      ...runtimes(base),
      `[${base}.cni]`,
      `  bin_dir = ${q(p.cniBinDir)}`,
      `  conf_dir = ${q(p.cniConfDir)}`,
      '',
    ].join('\n');
  }
  const images = `plugins.${q('io.containerd.cri.v1.images')}`;
  const runtime = `plugins.${q('io.containerd.cri.v1.runtime')}`;
  return [
    `[${images}]`,
    '  snapshotter = "overlayfs"',
    `[${images}.pinned_images]`,
    `  sandbox = ${q(p.pauseImage)}`,
    `[${runtime}]`,
    ...security.map((l) => '  ' + l),
    '  enable_cdi = false',
    `[${runtime}.containerd]`,
    '  default_runtime_name = "runc"',
    ...runtimes(runtime),
    `[${runtime}.cni]`,
    `  bin_dirs = [${q(p.cniBinDir)}]`,
    `  conf_dir = ${q(p.cniConfDir)}`,
    '',
  ].join('\n');
}

// ---------------------------------------------------------------------------------------------
// gRPC client

type Unary<Req, Res> = (
  request: Req,
  metadata: Metadata,
  options: Partial<CallOptions>,
  callback: (error: ServiceError | null, response: Res) => void,
) => ClientUnaryCall;

function unary<Req, Res>(client: Client, method: Unary<Req, Res>, request: Req, timeoutMs: number): Promise<Res> {
  return new Promise((resolve, reject) => {
    method.call(client, request, new Metadata(), { deadline: Date.now() + timeoutMs }, (err, res) => (err ? reject(err) : resolve(res)));
  });
}

/** Request fields the caller leaves out get their proto3 defaults (Codec.fromPartial). */
export type Init<T> = T extends string | number | bigint | boolean | Buffer
  ? T
  : T extends Array<infer U>
    ? Array<Init<U>>
    : T extends object
      ? { [K in keyof T]?: Init<T[K]> }
      : T;
interface Codec<T> {
  fromPartial(object: never): T;
}
function make<T>(codec: Codec<T>, init: Init<T>): T {
  return codec.fromPartial(init as never);
}

/** The kubelet's view of containerd: RuntimeService and ImageService on containerd's gRPC socket. */
export class CriClient {
  readonly runtime: cri.RuntimeServiceClient;
  readonly images: cri.ImageServiceClient;

  constructor(address: string, private readonly timeoutMs = 120_000) {
    this.runtime = new cri.RuntimeServiceClient(`unix://${address}`, credentials.createInsecure());
    this.images = new cri.ImageServiceClient(`unix://${address}`, credentials.createInsecure());
  }

  close(): void {
    this.runtime.close();
    this.images.close();
  }

  private rt<Req, Res>(method: Unary<Req, Res>, codec: Codec<Req>, init: Init<Req>, timeoutMs = this.timeoutMs): Promise<Res> {
    return unary(this.runtime, method, make(codec, init), timeoutMs);
  }

  version(): Promise<cri.VersionResponse> {
    return this.rt(this.runtime.version, cri.VersionRequest, { version: 'v1' });
  }
  status(): Promise<cri.StatusResponse> {
    return this.rt(this.runtime.status, cri.StatusRequest, {}, 10_000);
  }
  async runPodSandbox(config: Init<cri.PodSandboxConfig>, runtimeHandler: string): Promise<string> {
    return (await this.rt(this.runtime.runPodSandbox, cri.RunPodSandboxRequest, { config, runtimeHandler })).podSandboxId;
  }
  async stopPodSandbox(podSandboxId: string): Promise<void> {
    await this.rt(this.runtime.stopPodSandbox, cri.StopPodSandboxRequest, { podSandboxId });
  }
  async removePodSandbox(podSandboxId: string): Promise<void> {
    await this.rt(this.runtime.removePodSandbox, cri.RemovePodSandboxRequest, { podSandboxId });
  }
  podSandboxStatus(podSandboxId: string, verbose = false): Promise<cri.PodSandboxStatusResponse> {
    return this.rt(this.runtime.podSandboxStatus, cri.PodSandboxStatusRequest, { podSandboxId, verbose });
  }
  async createContainer(podSandboxId: string, config: Init<cri.ContainerConfig>, sandboxConfig: Init<cri.PodSandboxConfig>): Promise<string> {
    return (await this.rt(this.runtime.createContainer, cri.CreateContainerRequest, { podSandboxId, config, sandboxConfig })).containerId;
  }
  async startContainer(containerId: string): Promise<void> {
    await this.rt(this.runtime.startContainer, cri.StartContainerRequest, { containerId });
  }
  /** `timeout` in seconds, as the kubelet's grace period; the call lasts at least that long if the process ignores SIGTERM. */
  async stopContainer(containerId: string, timeout: number): Promise<void> {
    await this.rt(this.runtime.stopContainer, cri.StopContainerRequest, { containerId, timeout: BigInt(timeout) }, this.timeoutMs + timeout * 1000);
  }
  async removeContainer(containerId: string): Promise<void> {
    await this.rt(this.runtime.removeContainer, cri.RemoveContainerRequest, { containerId });
  }
  async listContainers(podSandboxId?: string): Promise<cri.Container[]> {
    return (await this.rt(this.runtime.listContainers, cri.ListContainersRequest, { filter: { podSandboxId: podSandboxId ?? '' } })).containers;
  }
  async containerStatus(containerId: string): Promise<cri.ContainerStatus> {
    const r = await this.rt(this.runtime.containerStatus, cri.ContainerStatusRequest, { containerId });
    if (!r.status) throw new Error(`ContainerStatus ${containerId}: no status`);
    return r.status;
  }
  async updateContainerResources(containerId: string, linux: Init<cri.LinuxContainerResources>): Promise<void> {
    await this.rt(this.runtime.updateContainerResources, cri.UpdateContainerResourcesRequest, { containerId, linux });
  }
  async containerStats(containerId: string): Promise<cri.ContainerStats> {
    const r = await this.rt(this.runtime.containerStats, cri.ContainerStatsRequest, { containerId });
    if (!r.stats) throw new Error(`ContainerStats ${containerId}: no stats`);
    return r.stats;
  }
  /** `timeout` in seconds (0: none). */
  execSync(containerId: string, cmd: string[], timeout = 0): Promise<cri.ExecSyncResponse> {
    return this.rt(this.runtime.execSync, cri.ExecSyncRequest, { containerId, cmd, timeout: BigInt(timeout) }, this.timeoutMs + timeout * 1000);
  }
  /** The streaming URL for an exec (test/harness/cri-stream.ts connects to it). */
  async exec(req: Init<cri.ExecRequest>): Promise<string> {
    return (await this.rt(this.runtime.exec, cri.ExecRequest, req)).url;
  }
  async attach(req: Init<cri.AttachRequest>): Promise<string> {
    return (await this.rt(this.runtime.attach, cri.AttachRequest, req)).url;
  }
  async imageStatus(image: string): Promise<cri.Image | undefined> {
    const r = await unary(this.images, this.images.imageStatus, make(cri.ImageStatusRequest, { image: { image } }), this.timeoutMs);
    return r.image;
  }
}

// ---------------------------------------------------------------------------------------------
// Counting shim binaries

/**
 * A dir for containerd's PATH with `containerd-shim-ts-v2` and `containerd-shim-runc-v2` wrappers that append
 * their argv to `<dir>/invocations.log` and exec the real binary (ours from dist/, the reference of `version`).
 * Shim daemons re-exec /proc/self/exe or run Node directly, so only containerd's own runs are counted.
 */
export function countingShimDir(version: ContainerdVersion): string {
  const ours = join(repoRoot(), 'dist', 'containerd-shim-ts-v2');
  if (!existsSync(ours)) throw new Error(`${ours} is missing: run \`npm run build\` first`);
  const reference = containerdBinaries(version)?.runcShim;
  if (!reference) throw new Error(`containerd ${version} binaries not found`);
  const dir = mkdtempSync(join(tempBase(), 'crishim-'));
  const log = join(dir, 'invocations.log');
  for (const [name, target] of [
    [SHIM_BINARY.ts, ours],
    [SHIM_BINARY.runc, reference],
  ] as const) {
    const file = join(dir, name);
    // One write per run, below PIPE_BUF, O_APPEND: lines from concurrent runs do not mix.
    writeFileSync(file, `#!/bin/sh\necho "${name} $*" >>${q(log)}\nexec ${q(target)} "$@"\n`);
    chmodSync(file, 0o755);
  }
  process.once('exit', () => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

export interface ShimRun {
  binary: string;
  action: string;
  id: string;
  argv: string[];
}

/** Every run of a shim binary by containerd so far, in order (from countingShimDir's log). */
export async function shimRuns(dir: string): Promise<ShimRun[]> {
  const text = await readFile(join(dir, 'invocations.log'), 'utf8').catch(() => '');
  return text
    .split('\n')
    .filter(Boolean)
    .map((line) => {
      const [binary = '', ...argv] = line.split(' ');
      const i = argv.indexOf('-id');
      return { binary, action: argv.at(-1) ?? '', id: i >= 0 ? (argv[i + 1] ?? '') : '', argv };
    });
}

/** How many times containerd ran `binary start` and `binary delete` for the given ids (all ids if omitted). */
export async function countShimRuns(dir: string, binary: string, ids?: readonly string[]): Promise<{ start: number; delete: number }> {
  const runs = (await shimRuns(dir)).filter((r) => r.binary === binary && (!ids || ids.includes(r.id)));
  return { start: runs.filter((r) => r.action === 'start').length, delete: runs.filter((r) => r.action === 'delete').length };
}

// ---------------------------------------------------------------------------------------------
// containerd with CRI

export interface CriContainerd {
  readonly cd: Containerd;
  readonly client: CriClient;
  /** PATH dir with the counting shim wrappers (countShimRuns). */
  readonly shimDir: string;
  /** Temp dir of the CNI config and plugins. */
  readonly cniDir: string;
  stop(): Promise<void>;
}

/** The CNI dirs: `loopback` from containernetworking-plugins plus our eth0 answerer, one conflist. */
async function makeCniDirs(): Promise<{ dir: string; binDir: string; confDir: string }> {
  if (!existsSync(LOOPBACK_PLUGIN)) {
    throw new Error(`${LOOPBACK_PLUGIN} is missing: apt-get install containernetworking-plugins`);
  }
  const dir = await makeTempDir('cni-');
  const binDir = join(dir, 'bin');
  const confDir = join(dir, 'net.d');
  await Promise.all([mkdir(binDir), mkdir(confDir)]);
  symlinkSync(LOOPBACK_PLUGIN, join(binDir, 'loopback'));
  symlinkSync(join(repoRoot(), 'test', 'fixtures', 'cni-test-eth0.sh'), join(binDir, TEST_CNI_TYPE));
  writeFileSync(
    join(confDir, '10-shimtest.conflist'),
    JSON.stringify({ cniVersion: '1.0.0', name: 'shimtest-loopback', plugins: [{ type: TEST_CNI_TYPE }] }, null, 2) + '\n',
  );
  return { dir, binDir, confDir };
}

export interface StartCriOptions {
  version: ContainerdVersion;
  debug?: boolean;
}

/**
 * Starts a private containerd with CRI, imports the busybox and pause images into k8s.io (unpacked for
 * overlayfs), and waits until CRI reports RuntimeReady and NetworkReady. Pair with stop().
 */
export async function startCriContainerd(opts: StartCriOptions): Promise<CriContainerd> {
  const shimDir = countingShimDir(opts.version);
  const cni = await makeCniDirs();
  let cd: Containerd | undefined;
  let client: CriClient | undefined;
  try {
    cd = await startContainerd({
      version: opts.version,
      shimDirs: [shimDir],
      debug: opts.debug,
      namespace: CRI_NAMESPACE,
      enableCri: true,
      extraConfig: criConfigToml(opts.version, { cniBinDir: cni.binDir, cniConfDir: cni.confDir, pauseImage: PAUSE_IMAGE }),
    });
    await importImage(cd, CRI_IMAGE, CRI_NAMESPACE);
    await importImage(cd, PAUSE_IMAGE, CRI_NAMESPACE, { cmd: PAUSE_CMD });
    const c = new CriClient(cd.address);
    client = c;
    await waitFor(
      async () => {
        const conditions = (await c.status()).status?.conditions ?? [];
        const ready = (type: string) => conditions.find((x) => x.type === type)?.status === true;
        return ready('RuntimeReady') && ready('NetworkReady');
      },
      60_000,
      `CRI of containerd ${opts.version} to be ready`,
      200,
    );
    // CRI learns of images through containerd's image events: wait until both are known to it.
    for (const ref of [CRI_IMAGE, PAUSE_IMAGE]) {
      await waitFor(async () => (await c.imageStatus(ref)) !== undefined, 30_000, `CRI to know image ${ref}`, 200);
    }
  } catch (err) {
    client?.close();
    await cd?.stop().catch(() => undefined);
    await removeDir(cni.dir);
    const log = cd ? `\n--- containerd log (tail) ---\n${await cd.logTail(40)}` : '';
    throw new Error(`${(err as Error).message}${log}`);
  }
  const started = cd;
  const connected = client;
  return {
    cd: started,
    client: connected,
    shimDir,
    cniDir: cni.dir,
    async stop() {
      connected.close();
      try {
        await started.stop();
      } finally {
        await removeDir(cni.dir);
      }
    },
  };
}
