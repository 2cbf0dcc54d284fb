// A private dockerd per test file, on a private containerd (./containerd.ts): its own data root, exec root,
// pidfile, API socket, daemon.json and CLI config under a fresh temp dir; no networking that touches the host
// (no bridge, no iptables, no masquerading: containers run with --network none); the vfs storage driver (no
// mounts of its own but the containers' /dev/shm); containers' cgroups under a cgroup parent of its own. The
// system's docker service is never used. dockerd 20.10 is Debian 12's docker.io (/usr/sbin/dockerd); dockerd
// 28 is Debian sid's, unpacked by scripts/fetch-docker.sh. Each version is driven by its own docker CLI.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { copyFile, mkdir, open, readdir, readFile, rmdir, writeFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { CONTAINERD_VERSIONS, containerdBinaries, type Containerd, type ContainerdVersion } from './containerd.js';
import { buildDockerArchive, DEFAULT_IMAGE } from './image.js';
import {
  exec,
  isAlive,
  listProcesses,
  makeTempDir,
  mountsUnder,
  removeDir,
  repoRoot,
  signalPid,
  tempBase,
  unmountUnder,
  waitFor,
  type ExecOptions,
  type ExecResult,
} from './util.js';

export type DockerVersion = '20.10' | '28';
export const DOCKER_VERSIONS: readonly DockerVersion[] = ['20.10', '28'];

/** Where scripts/fetch-docker.sh unpacks dockerd 28 (override: DOCKER_CACHE). */
export function dockerCacheDir(): string {
  return process.env.DOCKER_CACHE ?? join(repoRoot(), '.cache', 'docker');
}

export interface DockerBinaries {
  dockerd: string;
  docker: string;
}

/** The binaries of a version, or undefined when they are not there. */
export function dockerBinaries(version: DockerVersion): DockerBinaries | undefined {
  const b =
    version === '20.10'
      ? { dockerd: '/usr/sbin/dockerd', docker: '/usr/bin/docker' }
      : { dockerd: join(dockerCacheDir(), '28', 'usr', 'sbin', 'dockerd'), docker: join(dockerCacheDir(), '28', 'usr', 'bin', 'docker') };
  return existsSync(b.dockerd) && existsSync(b.docker) ? b : undefined;
}

/**
 * dockerd versions to test: env SHIM_TEST_DOCKER=20.10,28 (a listed version that is missing is an error),
 * default every available one.
 */
export function selectedDockerVersions(): DockerVersion[] {
  const env = process.env.SHIM_TEST_DOCKER?.trim();
  if (!env) return DOCKER_VERSIONS.filter((v) => dockerBinaries(v) !== undefined);
  return env
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)
    .map((w) => {
      if (!(DOCKER_VERSIONS as readonly string[]).includes(w)) throw new Error(`SHIM_TEST_DOCKER: unknown version ${w} (known: ${DOCKER_VERSIONS.join(', ')})`);
      const v = w as DockerVersion;
      if (!dockerBinaries(v)) {
        throw new Error(`SHIM_TEST_DOCKER asks for ${v} but it is missing: ${v === '28' ? 'run scripts/fetch-docker.sh' : 'apt-get install docker.io'}`);
      }
      return v;
    });
}

/**
 * The containerd each dockerd runs on. 20.10: Debian 12's 1.6, its own package's dependency. 28: 1.7 when
 * scripts/fetch-containerd.sh has fetched it (Docker's own packages for 28 require containerd ≥ 1.7.27), else
 * 1.6; dockerd 28 does not check the version and the tests pass on 1.6, 1.7 and 2.1 alike
 * (SHIM_TEST_DOCKER28_CONTAINERD=1.6|1.7|2.1 picks one).
 */
export function containerdFor(version: DockerVersion): ContainerdVersion {
  if (version === '20.10') return '1.6';
  const env = process.env.SHIM_TEST_DOCKER28_CONTAINERD?.trim();
  if (env) {
    if (!(CONTAINERD_VERSIONS as readonly string[]).includes(env)) throw new Error(`SHIM_TEST_DOCKER28_CONTAINERD: unknown version ${env}`);
    return env as ContainerdVersion;
  }
  return containerdBinaries('1.7') ? '1.7' : '1.6';
}

let dropInDir: string | undefined;

/**
 * A dir (one per test process, removed at exit) where the built shim is named `containerd-shim-runc-v2`: first
 * in a containerd's PATH, every io.containerd.runc.v2 task (all of Docker 20.10's) runs on our shim.
 */
export function dropInShimDir(): string {
  if (dropInDir) return dropInDir;
  const target = join(repoRoot(), 'dist', 'containerd-shim-ts-v2');
  if (!existsSync(target)) throw new Error(`${target} is missing: run \`npm run build\` first`);
  const dir = mkdtempSync(join(tempBase(), 'dropin-'));
  symlinkSync(target, join(dir, 'containerd-shim-runc-v2'));
  process.once('exit', () => rmSync(dir, { recursive: true, force: true }));
  dropInDir = dir;
  return dir;
}

/** A runtime entry of daemon.json's `runtimes`: a containerd shim by runtime type (dockerd ≥ 23). */
export interface DockerRuntime {
  runtimeType: string;
  options?: Record<string, unknown>;
}

export interface StartDockerOptions {
  version: DockerVersion;
  containerd: Containerd;
  /** daemon.json `runtimes`. */
  runtimes?: Record<string, DockerRuntime>;
  /** daemon.json `live-restore` (default true: the tests kill dockerd and expect containers to live on). */
  liveRestore?: boolean;
  debug?: boolean;
  /** How long to wait for dockerd to answer (default 60 s). */
  readyTimeoutMs?: number;
}

export interface Dockerd {
  readonly version: DockerVersion;
  /** Server version as reported by `docker version`, e.g. 20.10.24+dfsg1. */
  readonly serverVersion: string;
  readonly binaries: DockerBinaries;
  readonly containerd: Containerd;
  readonly dir: string;
  readonly socket: string;
  readonly dataRoot: string;
  readonly execRoot: string;
  readonly configFile: string;
  readonly logFile: string;
  /** The cgroup parent of every container, e.g. /dk-Ab12Cd (one per instance). */
  readonly cgroupParent: string;
  /** Current dockerd pid (changes on restart). */
  readonly pid: number;
  /** The environment the docker CLI runs with (DOCKER_HOST, DOCKER_CONFIG). */
  readonly cliEnv: NodeJS.ProcessEnv;
  /** Runs this version's docker CLI against this dockerd. */
  docker(args: string[], opts?: ExecOptions): Promise<ExecResult>;
  /** `docker load` of the busybox image built from busybox-static; returns its repo:tag. */
  loadImage(ref?: string): Promise<string>;
  /** Sends a signal to dockerd; for SIGKILL/SIGTERM waits until it has exited. */
  kill(signal?: NodeJS.Signals): Promise<void>;
  /** Starts dockerd again (after kill) with the same dirs and config. */
  start(): Promise<void>;
  /** Removes every container, stops dockerd, unmounts and removes its dirs and cgroups; throws if something is left. */
  stop(): Promise<void>;
  logTail(lines?: number): Promise<string>;
}

const OWNER_FILE = 'owner.json';
const live = new Set<DockerdInstance>();
let exitHookInstalled = false;

class DockerdInstance implements Dockerd {
  readonly socket: string;
  readonly dataRoot: string;
  readonly execRoot: string;
  readonly configFile: string;
  readonly logFile: string;
  readonly pidFile: string;
  readonly cgroupParent: string;
  readonly cliEnv: NodeJS.ProcessEnv;
  serverVersion = '';
  child: ChildProcess | undefined;
  private exited: Promise<void> = Promise.resolve();
  private stopped = false;

  constructor(
    readonly version: DockerVersion,
    readonly binaries: DockerBinaries,
    readonly containerd: Containerd,
    readonly dir: string,
    private readonly opts: Partial<StartDockerOptions>,
  ) {
    this.socket = join(dir, 'docker.sock');
    this.dataRoot = join(dir, 'data');
    this.execRoot = join(dir, 'x');
    this.configFile = join(dir, 'daemon.json');
    this.logFile = join(dir, 'dockerd.log');
    this.pidFile = join(dir, 'dockerd.pid');
    this.cgroupParent = '/' + dir.split('/').at(-1)!;
    this.cliEnv = { PATH: process.env.PATH ?? '/usr/bin:/bin', DOCKER_HOST: `unix://${this.socket}`, DOCKER_CONFIG: join(dir, 'cli') };
  }

  get pid(): number {
    return this.child?.pid ?? -1;
  }

  async init(): Promise<void> {
    await writeFile(join(this.dir, OWNER_FILE), JSON.stringify({ pid: process.pid }));
    await mkdir(join(this.dir, 'cli'));
    const config: Record<string, unknown> = {
      'live-restore': this.opts.liveRestore ?? true,
      'exec-opts': ['native.cgroupdriver=cgroupfs'],
    };
    if (this.opts.runtimes) config.runtimes = this.opts.runtimes;
    // dockerd 20.10 would otherwise write its trust key to /etc/docker/key.json (a daemon.json-only key, gone in 28).
    if (this.version === '20.10') config['deprecated-key-path'] = join(this.dir, 'key.json');
    await writeFile(this.configFile, JSON.stringify(config, null, 2));
    await this.start();
  }

  private args(): string[] {
    return [
      '--config-file', this.configFile,
      '--data-root', this.dataRoot,
      '--exec-root', this.execRoot,
      '--pidfile', this.pidFile,
      '-H', `unix://${this.socket}`,
      '--containerd', this.containerd.address,
      '--storage-driver', 'vfs',
      '--cgroup-parent', this.cgroupParent,
      // Nothing that touches the host's network.
      '--bridge', 'none',
      '--iptables=false',
      '--ip6tables=false',
      '--ip-masq=false',
      '--userland-proxy=false',
      '--log-level', this.opts.debug || process.env.SHIM_TEST_DEBUG === '1' ? 'debug' : 'info',
    ];
  }

  async start(): Promise<void> {
    if (this.stopped) throw new Error('start after stop');
    const log = await open(this.logFile, 'a');
    let child: ChildProcess;
    try {
      child = spawn(this.binaries.dockerd, this.args(), {
        stdio: ['ignore', log.fd, log.fd],
        env: { PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin' },
        cwd: this.dir,
        detached: true,
      });
    } finally {
      await log.close();
    }
    this.child = child;
    child.unref();
    let hasExited = false;
    this.exited = new Promise((resolve) => {
      child.once('exit', () => {
        hasExited = true;
        resolve();
      });
      child.once('error', () => {
        hasExited = true;
        resolve();
      });
    });
    try {
      const exitedEarly = Symbol('exited');
      const answer = await waitFor(
        async () => {
          if (hasExited) return exitedEarly;
          const r = await this.docker(['version', '--format', '{{.Server.Version}}'], { allowFail: true, timeoutMs: 10_000 });
          if (hasExited) return exitedEarly;
          return r.code === 0 ? r.stdout.trim() : '';
        },
        this.opts.readyTimeoutMs ?? 60_000,
        `dockerd ${this.version} to answer on ${this.socket}`,
        200,
      );
      if (answer === exitedEarly) throw new Error(`dockerd ${this.version} exited at start`);
      this.serverVersion = answer;
    } catch (err) {
      throw new Error(`${(err as Error).message}\n--- ${this.logFile} (tail) ---\n${await this.logTail(30)}`);
    }
  }

  docker(args: string[], opts: ExecOptions = {}): Promise<ExecResult> {
    return exec(this.binaries.docker, args, { timeoutMs: 60_000, ...opts, env: { ...this.cliEnv, ...opts.env } });
  }

  async loadImage(ref = DEFAULT_IMAGE): Promise<string> {
    const { tarball, repoTag } = await buildDockerArchive(ref);
    await this.docker(['load', '-i', tarball], { timeoutMs: 120_000 });
    return repoTag;
  }

  private running(): boolean {
    const c = this.child;
    return !!c?.pid && c.exitCode === null && c.signalCode === null;
  }

  async kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    if (!this.running()) return;
    signalPid(this.child!.pid!, signal);
    if (signal === 'SIGKILL' || signal === 'SIGTERM' || signal === 'SIGINT') await this.waitExit();
  }

  private async waitExit(timeoutMs?: number): Promise<boolean> {
    const child = this.child;
    if (!child || !this.running()) return true;
    child.ref();
    try {
      let timer: NodeJS.Timeout | undefined;
      const timedOut = new Promise<boolean>((resolve) => (timer = timeoutMs === undefined ? undefined : setTimeout(() => resolve(false), timeoutMs)));
      const done = await Promise.race([this.exited.then(() => true), timedOut]);
      clearTimeout(timer);
      return done;
    } finally {
      child.unref();
    }
  }

  logTail(lines = 40): Promise<string> {
    return readFile(this.logFile, 'utf8').then(
      (t) => t.split('\n').slice(-lines - 1).join('\n'),
      () => '(no log)',
    );
  }

  /** Leaf-first cgroup dirs under our cgroup parent, in every hierarchy. */
  async cgroupDirs(): Promise<string[]> {
    const result: string[] = [];
    const walk = async (dir: string): Promise<void> => {
      const entries = await readdir(dir, { withFileTypes: true }).catch(() => []);
      for (const e of entries) if (e.isDirectory()) await walk(join(dir, e.name));
      result.push(dir);
    };
    for (const ctl of await readdir('/sys/fs/cgroup').catch(() => [] as string[])) {
      const dir = join('/sys/fs/cgroup', ctl, this.cgroupParent);
      if (existsSync(dir)) await walk(dir);
    }
    return result;
  }

  /** Kills every process in our cgroups and removes them. */
  async removeCgroups(): Promise<void> {
    for (const dir of await this.cgroupDirs()) {
      const pids = (await readFile(join(dir, 'cgroup.procs'), 'utf8').catch(() => '')).split('\n').filter(Boolean).map(Number);
      for (const pid of pids) signalPid(pid, 'SIGKILL');
      // A frozen (paused) container's processes die only once thawed.
      await writeFile(join(dir, 'freezer.state'), 'THAWED').catch(() => undefined);
      await waitFor(() => rmdir(dir).then(() => true), 10_000, `rmdir ${dir}`).catch(() => undefined);
    }
  }

  /** A dockerd of a dead owner: kill it (by pidfile) and what it ran, unmount, remove. */
  async forceCleanup(): Promise<void> {
    this.stopped = true;
    const pid = Number((await readFile(this.pidFile, 'utf8').catch(() => '')).trim());
    if (pid > 0) {
      const p = (await listProcesses()).find((x) => x.pid === pid);
      if (p?.argv.includes(this.configFile)) signalPid(pid, 'SIGKILL');
    }
    await this.removeCgroups();
    await unmountUnder(this.dir);
    if ((await mountsUnder(this.dir)).length === 0) await removeDir(this.dir);
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    const problems: string[] = [];
    try {
      if (this.running()) {
        // live-restore keeps containers running past dockerd's exit: remove them first.
        const ids = await this.docker(['ps', '-aq'], { allowFail: true, timeoutMs: 20_000 }).catch(() => undefined);
        const list = (ids?.stdout ?? '').split('\n').map((s) => s.trim()).filter(Boolean);
        if (list.length > 0) {
          const r = await this.docker(['rm', '-f', ...list], { allowFail: true, timeoutMs: 60_000 }).catch((e: Error) => ({ code: -1, stderr: e.message }));
          if (r.code !== 0) problems.push(`docker rm -f: ${r.stderr.trim()}`);
        }
        signalPid(this.pid, 'SIGTERM');
        if (!(await this.waitExit(20_000))) {
          problems.push('dockerd did not exit on SIGTERM within 20 s');
          await this.kill('SIGKILL');
        }
      }
      await this.removeCgroups();
      await unmountUnder(this.dir);
    } finally {
      live.delete(this);
    }
    await removeHostDirs();
    // SHIM_TEST_SAVE_LOGS=<dir>: keep dockerd's log, as the containerd harness keeps containerd's.
    const saveTo = process.env.SHIM_TEST_SAVE_LOGS;
    if (saveTo) {
      await mkdir(saveTo, { recursive: true }).catch(() => undefined);
      await copyFile(this.logFile, join(saveTo, `${basename(this.dir)}.log`)).catch(() => undefined);
    }
    const mounts = await mountsUnder(this.dir);
    const cgroups = await this.cgroupDirs();
    const alive = this.pid > 0 && (await isAlive(this.pid));
    if (mounts.length === 0) await removeDir(this.dir).catch((e: Error) => problems.push(`rm ${this.dir}: ${e.message}`));
    const left: string[] = [];
    if (alive) left.push(`dockerd ${this.pid} still running`);
    if (mounts.length > 0) left.push(`mounts: ${mounts.map((m) => m.mountPoint).join(', ')}`);
    if (cgroups.length > 0) left.push(`cgroups: ${cgroups.join(', ')}`);
    if (existsSync(this.dir)) left.push(`dir ${this.dir} still exists`);
    if (left.length > 0 || problems.length > 0) {
      throw new Error(`dockerd ${this.version} stop() left things behind or failed: ${[...left, ...problems].join(' | ')}`);
    }
  }
}

/**
 * dockerd creates /run/docker/plugins (v1 plugin discovery; not configurable) if missing. Removed when empty
 * and no dockerd runs at all (so never from under the system's docker).
 */
const HOST_DIRS = ['/run/docker/plugins', '/run/docker'];

async function removeHostDirs(): Promise<void> {
  if (live.size > 0 || (await anyDockerdRunning())) return;
  for (const d of HOST_DIRS) await rmdir(d).catch(() => undefined);
}

/** Any dockerd on the host (ours of another test process, or the system's). */
export async function anyDockerdRunning(): Promise<boolean> {
  return (await listProcesses()).some((p) => p.argv[0]?.endsWith('dockerd'));
}

/**
 * What a dockerd of ours must not leave on the host (checked by the tests). `shared`: also the dirs every
 * dockerd uses (/run/docker/plugins), which only mean something when no other dockerd runs.
 */
export function hostPathsDockerdMayTouch(shared: boolean): string[] {
  return ['/etc/docker/key.json', '/var/lib/docker', '/var/run/docker.sock', '/run/docker.sock', '/root/.docker', ...(shared ? HOST_DIRS : [])];
}

/** Cleans up dockerds left by test processes that died without stop(): temp dirs `dk-*` whose owner is gone. */
export async function cleanupStaleDockerds(containerd: Containerd): Promise<void> {
  const base = tempBase();
  for (const name of await readdir(base).catch(() => [] as string[])) {
    if (!name.startsWith('dk-')) continue;
    const dir = join(base, name);
    let owner: { pid: number };
    try {
      owner = JSON.parse(await readFile(join(dir, OWNER_FILE), 'utf8')) as typeof owner;
    } catch {
      continue;
    }
    if (owner.pid === process.pid || (await isAlive(owner.pid))) continue;
    await new DockerdInstance('20.10', { dockerd: '', docker: '' }, containerd, dir, {}).forceCleanup().catch(() => undefined);
  }
}

/** Starts a private dockerd on `containerd` and waits until it answers. Always pair with `stop()`. */
export async function startDockerd(opts: StartDockerOptions): Promise<Dockerd> {
  const binaries = dockerBinaries(opts.version);
  if (!binaries) throw new Error(`dockerd ${opts.version} not found`);
  await cleanupStaleDockerds(opts.containerd);
  const dir = await makeTempDir('dk-');
  const instance = new DockerdInstance(opts.version, binaries, opts.containerd, dir, opts);
  live.add(instance);
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    process.once('exit', () => {
      for (const d of live) if (d.child?.pid) signalPid(d.child.pid, 'SIGKILL');
    });
  }
  try {
    await instance.init();
  } catch (err) {
    await instance.stop().catch(() => undefined);
    throw err;
  }
  return instance;
}
