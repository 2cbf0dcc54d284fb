// A private containerd per test: own root, state, sockets and config under a fresh temp dir, so
// tests never touch a system containerd and can run side by side. Supports the installed 1.6 and
// the 1.7 / 2.1 binaries fetched by scripts/fetch-containerd.sh.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, rmSync, symlinkSync, mkdtempSync } from 'node:fs';
import { copyFile, mkdir, open, readdir, readFile, readlink, rm, rmdir, writeFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
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
  type ExecResult,
  type ProcInfo,
} from './util.js';

export type ContainerdVersion = '1.6' | '1.7' | '2.1';
export const CONTAINERD_VERSIONS: readonly ContainerdVersion[] = ['1.6', '1.7', '2.1'];

/** The reference runtime and ours; tests run the same case against both. */
export const RUNTIMES = ['io.containerd.runc.v2', 'io.containerd.ts.v2'] as const;
export type Runtime = (typeof RUNTIMES)[number];

export const DEFAULT_NAMESPACE = 'shimtest';

/** Where scripts/fetch-containerd.sh unpacks the other versions (override: CONTAINERD_CACHE). */
export function containerdCacheDir(): string {
  return process.env.CONTAINERD_CACHE ?? join(repoRoot(), '.cache', 'containerd');
}

export interface ContainerdBinaries {
  /** Dir holding containerd, ctr and the matching containerd-shim-runc-v2. */
  binDir: string;
  containerd: string;
  ctr: string;
  runcShim: string;
}

/** The binaries for a version, or undefined when they are not there. 1.6 is the system install. */
export function containerdBinaries(version: ContainerdVersion): ContainerdBinaries | undefined {
  const binDir = version === '1.6' ? '/usr/bin' : join(containerdCacheDir(), version, 'usr', 'bin');
  const b = {
    binDir,
    containerd: join(binDir, 'containerd'),
    ctr: join(binDir, 'ctr'),
    runcShim: join(binDir, 'containerd-shim-runc-v2'),
  };
  return existsSync(b.containerd) && existsSync(b.ctr) && existsSync(b.runcShim) ? b : undefined;
}

/** Versions whose binaries are present. */
export function availableVersions(): ContainerdVersion[] {
  return CONTAINERD_VERSIONS.filter((v) => containerdBinaries(v) !== undefined);
}

/**
 * Versions the e2e tests should run against: env SHIM_TEST_CONTAINERD=1.6,1.7,2.1 (a listed version
 * that is missing is an error), default every available version (1.6 always is).
 */
export function selectedVersions(): ContainerdVersion[] {
  const env = process.env.SHIM_TEST_CONTAINERD?.trim();
  if (!env) return availableVersions();
  const wanted = env.split(',').map((s) => s.trim()).filter(Boolean);
  const result: ContainerdVersion[] = [];
  for (const w of wanted) {
    if (!(CONTAINERD_VERSIONS as readonly string[]).includes(w)) {
      throw new Error(`SHIM_TEST_CONTAINERD: unknown version ${w} (known: ${CONTAINERD_VERSIONS.join(', ')})`);
    }
    const v = w as ContainerdVersion;
    if (!containerdBinaries(v)) {
      throw new Error(`SHIM_TEST_CONTAINERD asks for ${v} but its binaries are missing: run scripts/fetch-containerd.sh ${v}`);
    }
    result.push(v);
  }
  return result;
}

let shimDir: string | undefined;

/**
 * Which form of our shim the tests run: SHIM_TEST_BINARY=sea is the single executable (`npm run package`,
 * dist/sea/), which must then run with node out of reach (scripts/run-tests.mjs hides it in a private mount
 * namespace, and startContainerd checks); otherwise the script form `npm run build` makes.
 */
export function testsSingleExecutable(): boolean {
  return process.env.SHIM_TEST_BINARY === 'sea';
}

/** The `containerd-shim-ts-v2` the tests run. */
export function shimBinaryPath(): string {
  if (testsSingleExecutable()) {
    const sea = join(repoRoot(), 'dist', 'sea', 'containerd-shim-ts-v2');
    if (!existsSync(sea)) throw new Error(`${sea} is missing: run \`npm run package\` first`);
    return sea;
  }
  const target = join(repoRoot(), 'dist', 'containerd-shim-ts-v2');
  if (!existsSync(target)) throw new Error(`${target} is missing: run \`npm run build\` first`);
  return target;
}

/**
 * Throws unless node cannot be run by containerd or the shims: not by name on their PATH, nor at any path
 * scripts/run-tests.mjs hid (SHIM_TEST_HIDDEN_NODE, the paths node was installed at).
 */
function assertNodeUnreachable(env: NodeJS.ProcessEnv): void {
  const hidden = (process.env.SHIM_TEST_HIDDEN_NODE ?? '').split(':').filter(Boolean);
  if (hidden.length === 0) throw new Error('SHIM_TEST_BINARY=sea runs only under scripts/run-tests.mjs, which hides node');
  for (const cmd of ['node', 'nodejs', ...hidden]) {
    const r = spawnSync(cmd, ['-e', 'process.stdout.write("ran")'], { env, encoding: 'utf8', timeout: 30_000 });
    if (r.stdout === 'ran' || r.status === 0) throw new Error(`node is still executable as ${cmd} (PATH=${env.PATH ?? ''})`);
  }
}

/**
 * A dir (one per test process, removed at exit) holding a `containerd-shim-ts-v2` symlink to the
 * shim under test, to pass in `shimDirs` so containerd finds our runtime via PATH.
 */
export function shimBinDir(): string {
  if (shimDir) return shimDir;
  const target = shimBinaryPath();
  const dir = mkdtempSync(join(tempBase(), 'shimbin-'));
  symlinkSync(target, join(dir, 'containerd-shim-ts-v2'));
  process.once('exit', () => rmSync(dir, { recursive: true, force: true }));
  shimDir = dir;
  return dir;
}

export interface StartOptions {
  version?: ContainerdVersion;
  /** Prepended to containerd's PATH (so it finds containerd-shim-ts-v2), before the version's bin dir. */
  shimDirs?: string[];
  /** containerd log level debug (also with env SHIM_TEST_DEBUG=1); shims then get -debug. */
  debug?: boolean;
  /** Overrides `debug`: e.g. trace, the level at which containerd ≥ 1.7 logs "event forwarded" (1.6: debug). */
  logLevel?: 'info' | 'debug' | 'trace';
  /** Extra environment for containerd (and so for the shims it starts). */
  env?: Record<string, string>;
  /** Default namespace for ctr(). */
  namespace?: string;
  /** How long to wait for containerd to answer (default 30 s). */
  readyTimeoutMs?: number;
  /** Keep the CRI plugins (and, on 2.x, the pod sandbox controller) enabled; see test/harness/cri.ts. */
  enableCri?: boolean;
  /** TOML appended to the generated config (plugin sections; must not repeat the top-level keys). */
  extraConfig?: string;
}

export interface CtrOptions {
  /** Written to ctr's stdin, which is then closed (without it: /dev/null). */
  input?: string | Buffer;
  /**
   * Delay closing stdin until this resolves. Needed for `ctr run`/`ctr task exec` with input: ctr
   * only calls CloseIO on stdin EOF once its task exists, so an EOF that arrives earlier is lost and
   * the process never sees EOF (a ctr race seen with 1.6 and 2.1). E.g. wait for the task to be RUNNING.
   */
  closeStdinAfter?: () => Promise<unknown>;
  /** Default 60 s. */
  timeoutMs?: number;
  /** Resolve on non-zero exit instead of rejecting. */
  allowFail?: boolean;
  /** Overrides the instance's default namespace. */
  namespace?: string;
}

export interface Containerd {
  readonly version: ContainerdVersion;
  /** Server version as reported by `ctr version`, e.g. `1.6.20~ds1`. */
  readonly serverVersion: string;
  readonly binaries: ContainerdBinaries;
  /** The temp dir holding everything below. */
  readonly dir: string;
  /** gRPC socket path (no scheme), as containerd passes it to shims in -address. */
  readonly address: string;
  /** ttrpc socket path (address + ".ttrpc"), TTRPC_ADDRESS for shims. */
  readonly ttrpcAddress: string;
  readonly root: string;
  readonly state: string;
  readonly configFile: string;
  /** containerd's stdout+stderr (appended across restarts). */
  readonly logFile: string;
  readonly namespace: string;
  /** Current containerd pid (changes on restart). */
  readonly pid: number;
  /** Runs the matching ctr with --address and --namespace. */
  ctr(args: string[], opts?: CtrOptions): Promise<ExecResult>;
  /** Sends a signal to containerd; for SIGKILL/SIGTERM/SIGINT waits until it has exited. */
  kill(signal?: NodeJS.Signals): Promise<void>;
  /** SIGKILL (if running) and start again with the same dirs and config: shims keep running. */
  restart(): Promise<void>;
  /** Removes all tasks/containers, kills leftover shims and their children, stops containerd,
   *  unmounts everything under its dirs and removes them. Throws if something could not be cleaned. */
  stop(): Promise<void>;
  /** Last lines of the log file. */
  logTail(lines?: number): Promise<string>;
  /** Live shim processes started for this containerd (matched by -address or bundle cwd). */
  shimProcesses(): Promise<ProcInfo[]>;
  /** The socket path a runc-style shim uses for (namespace, grouping id) of this containerd. */
  shimSocketPath(namespace: string, id: string): string;
}

const live = new Set<ContainerdInstance>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  // Last resort for a test that forgot stop(): at least do not leave containerd running.
  process.once('exit', () => {
    for (const c of live) if (c.child?.pid) signalPid(c.child.pid, 'SIGKILL');
  });
}

async function tail(file: string, lines: number): Promise<string> {
  try {
    const text = await readFile(file, 'utf8');
    return text.split('\n').slice(-lines - 1).join('\n');
  } catch {
    return '(no log)';
  }
}

function tomlString(s: string): string {
  return JSON.stringify(s);
}

/** CRI and what only CRI needs: off unless a test sets up CRI's network and images (test/harness/cri.ts). */
function criPlugins(version: ContainerdVersion): string[] {
  if (version !== '2.1') return ['io.containerd.grpc.v1.cri'];
  return [
    'io.containerd.grpc.v1.cri',
    'io.containerd.cri.v1.images',
    'io.containerd.cri.v1.runtime',
    'io.containerd.podsandbox.controller.v1.podsandbox', // CRI's pause-container sandboxes
    'io.containerd.grpc.v1.sandbox-controllers', // needs podsandbox
  ];
}

/** Plugins we never want: global paths, other snapshotters; CRI unless asked for. */
function disabledPlugins(version: ContainerdVersion, enableCri: boolean): string[] {
  const common = [
    ...(enableCri ? [] : criPlugins(version)),
    'io.containerd.snapshotter.v1.aufs',
    'io.containerd.snapshotter.v1.btrfs',
    'io.containerd.snapshotter.v1.devmapper',
    'io.containerd.snapshotter.v1.zfs',
    'io.containerd.snapshotter.v1.blockfile',
    'io.containerd.internal.v1.opt', // would create /opt/containerd
    'io.containerd.nri.v1.nri', // would listen on /var/run/nri/nri.sock
    'io.containerd.tracing.processor.v1.otlp',
    'io.containerd.internal.v1.tracing',
  ];
  if (version !== '2.1') return common;
  return [
    ...common,
    'io.containerd.snapshotter.v1.erofs',
    'io.containerd.differ.v1.erofs',
  ];
}

function configToml(
  version: ContainerdVersion,
  p: { root: string; state: string; tmp: string; address: string; ttrpcAddress: string; level: string; enableCri: boolean; extra: string },
): string {
  // The top-level keys and sections we use are the same in v2 (1.6/1.7) and v3 (2.x) configs.
  return [
    `version = ${version === '2.1' ? 3 : 2}`,
    `root = ${tomlString(p.root)}`,
    `state = ${tomlString(p.state)}`,
    `temp = ${tomlString(p.tmp)}`,
    `oom_score = 0`,
    `disabled_plugins = [${disabledPlugins(version, p.enableCri).map(tomlString).join(', ')}]`,
    '',
    '[grpc]',
    `  address = ${tomlString(p.address)}`,
    '',
    '[ttrpc]',
    `  address = ${tomlString(p.ttrpcAddress)}`,
    '',
    '[debug]',
    `  level = ${tomlString(p.level)}`,
    '',
    ...(version === '2.1'
      ? [
          // The transfer service (ctr import/pull in 2.x) needs the verifier; keep it off /opt.
          `[plugins.${tomlString('io.containerd.image-verifier.v1.bindir')}]`,
          `  bin_dir = ${tomlString(join(p.tmp, 'image-verifier'))}`,
          '',
        ]
      : []),
    p.extra,
  ].join('\n');
}

class ContainerdInstance implements Containerd {
  child: ChildProcess | undefined;
  private exited: Promise<void> = Promise.resolve();
  private stopped = false;
  serverVersion = '';

  readonly address: string;
  readonly ttrpcAddress: string;
  readonly root: string;
  readonly state: string;
  readonly configFile: string;
  readonly logFile: string;
  private readonly env: NodeJS.ProcessEnv;

  constructor(
    readonly version: ContainerdVersion,
    readonly binaries: ContainerdBinaries,
    readonly dir: string,
    readonly namespace: string,
    private readonly opts: StartOptions,
  ) {
    this.address = join(dir, 'c.sock');
    this.ttrpcAddress = this.address + '.ttrpc';
    this.root = join(dir, 'root');
    this.state = join(dir, 'state');
    this.configFile = join(dir, 'config.toml');
    this.logFile = join(dir, 'containerd.log');
    const env: NodeJS.ProcessEnv = { ...process.env, ...(opts.env ?? {}) };
    delete env.NODE_TEST_CONTEXT; // our Node shim must not think it runs under the test runner
    const path = [...(opts.shimDirs ?? []), binaries.binDir, env.PATH ?? '/usr/local/bin:/usr/bin:/bin', '/usr/sbin', '/sbin'];
    env.PATH = path.join(':');
    this.env = env;
  }

  get pid(): number {
    return this.child?.pid ?? -1;
  }

  async init(): Promise<void> {
    if (testsSingleExecutable()) assertNodeUnreachable(this.env);
    const debug = this.opts.debug ?? process.env.SHIM_TEST_DEBUG === '1';
    const level = this.opts.logLevel ?? (debug ? 'debug' : 'info');
    await Promise.all([mkdir(this.root), mkdir(this.state), mkdir(join(this.dir, 'tmp'))]);
    await writeFile(
      this.configFile,
      configToml(this.version, {
        root: this.root,
        state: this.state,
        tmp: join(this.dir, 'tmp'),
        address: this.address,
        ttrpcAddress: this.ttrpcAddress,
        level,
        enableCri: this.opts.enableCri ?? false,
        extra: this.opts.extraConfig ?? '',
      }),
    );
    // Lets cleanupStale() recognise an instance whose test process died without stop().
    await writeFile(join(this.dir, OWNER_FILE), JSON.stringify({ pid: process.pid, version: this.version, namespace: this.namespace }));
    await this.launch();
  }

  private async launch(): Promise<void> {
    const log = await open(this.logFile, 'a');
    let child: ChildProcess;
    try {
      child = spawn(this.binaries.containerd, ['--config', this.configFile], {
        stdio: ['ignore', log.fd, log.fd],
        env: this.env,
        cwd: this.dir,
        detached: true, // own process group: a ^C on the test runner goes through stop(), not straight to it
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
    const timeout = this.opts.readyTimeoutMs ?? 30_000;
    try {
      const out = await waitFor(
        async () => {
          if (hasExited) throw new Error('containerd exited');
          const r = await this.ctr(['version'], { allowFail: true, timeoutMs: 10_000 });
          if (hasExited) throw new Error('containerd exited');
          return r.code === 0 ? r.stdout : '';
        },
        timeout,
        `containerd ${this.version} to answer on ${this.address}`,
        100,
      );
      const server = out.split(/\nServer:\n/)[1] ?? '';
      this.serverVersion = /Version:\s*(\S+)/.exec(server)?.[1] ?? '';
    } catch (err) {
      throw new Error(`${(err as Error).message}\n--- ${this.logFile} (tail) ---\n${await this.logTail(30)}`);
    }
  }

  ctr(args: string[], opts: CtrOptions = {}): Promise<ExecResult> {
    return exec(this.binaries.ctr, ['--address', this.address, '--namespace', opts.namespace ?? this.namespace, ...args], {
      input: opts.input,
      closeStdinAfter: opts.closeStdinAfter,
      timeoutMs: opts.timeoutMs ?? 60_000,
      allowFail: opts.allowFail,
      env: this.env,
    });
  }

  async kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    const child = this.child;
    if (!child?.pid || child.exitCode !== null || child.signalCode !== null) return;
    signalPid(child.pid, signal);
    if (signal === 'SIGKILL' || signal === 'SIGTERM' || signal === 'SIGINT') await this.waitExit();
  }

  /** Waits for containerd to exit (the child is unref'ed, so hold the event loop meanwhile). */
  private async waitExit(timeoutMs?: number): Promise<boolean> {
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return true;
    child.ref();
    try {
      if (timeoutMs === undefined) {
        await this.exited;
        return true;
      }
      let timer: NodeJS.Timeout | undefined;
      const timedOut = new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), timeoutMs)));
      const done = await Promise.race([this.exited.then(() => true), timedOut]);
      clearTimeout(timer);
      return done;
    } finally {
      child.unref();
    }
  }

  async restart(): Promise<void> {
    if (this.stopped) throw new Error('restart after stop');
    await this.kill('SIGKILL');
    await this.launch();
  }

  logTail(lines = 40): Promise<string> {
    return tail(this.logFile, lines);
  }

  shimSocketPath(namespace: string, id: string): string {
    const hash = createHash('sha256').update(join(this.address, namespace, id)).digest('hex');
    return join('/run/containerd/s', hash);
  }

  async shimProcesses(): Promise<ProcInfo[]> {
    const procs = await listProcesses();
    const result: ProcInfo[] = [];
    const bundles = join(this.state, 'io.containerd.runtime.v2.task') + '/';
    for (const p of procs) {
      if (p.pid === process.pid || p.pid === this.pid) continue;
      const i = p.argv.indexOf('-address');
      const byArg = (i >= 0 && p.argv[i + 1] === this.address) || p.argv.includes(`-address=${this.address}`);
      if (byArg && p.argv.some((a) => a === '-namespace' || a.startsWith('-namespace='))) {
        result.push(p);
        continue;
      }
      // A shim daemon's cwd is its bundle; catches shims whatever their argv looks like.
      try {
        const cwd = await readlink(`/proc/${p.pid}/cwd`);
        if (cwd.startsWith(bundles) && p.state !== 'Z') result.push(p);
      } catch {
        // gone or not ours to read
      }
    }
    return result;
  }

  /** (namespace, id) of every bundle still in the state dir. */
  private async bundles(): Promise<Array<{ ns: string; id: string; path: string }>> {
    const base = join(this.state, 'io.containerd.runtime.v2.task');
    const result: Array<{ ns: string; id: string; path: string }> = [];
    for (const ns of await readdir(base).catch(() => [] as string[])) {
      for (const id of await readdir(join(base, ns)).catch(() => [] as string[])) {
        result.push({ ns, id, path: join(base, ns, id) });
      }
    }
    return result;
  }

  /** The orderly way: through containerd, with timeouts, ignoring failures. */
  private async removeAllViaApi(problems: string[]): Promise<void> {
    const nsList = await this.ctr(['namespaces', 'ls', '-q'], { allowFail: true, timeoutMs: 15_000 }).catch((e: Error) => {
      problems.push(`namespaces ls: ${e.message}`);
      return undefined;
    });
    if (!nsList || nsList.code !== 0) return;
    for (const ns of nsList.stdout.split('\n').map((s) => s.trim()).filter(Boolean)) {
      const run = (args: string[], timeoutMs = 20_000) =>
        this.ctr(args, { namespace: ns, allowFail: true, timeoutMs }).catch((e: Error) => {
          problems.push(`ctr -n ${ns} ${args.join(' ')}: ${e.message.split('\n')[0]}`);
          return undefined;
        });
      // Per container in parallel: each step waits on a shim round trip.
      const [tasks, containers] = await Promise.all([run(['tasks', 'ls', '-q']), run(['containers', 'ls', '-q'])]);
      const lines = (r: ExecResult | undefined) => (r?.stdout ?? '').split('\n').map((s) => s.trim()).filter(Boolean);
      const taskIds = new Set(lines(tasks));
      const ids = new Set([...taskIds, ...lines(containers)]);
      await Promise.all(
        [...ids].map(async (id) => {
          if (taskIds.has(id)) await run(['tasks', 'delete', '--force', id]); // SIGKILLs all its processes first
          await run(['containers', 'delete', id]);
        }),
      );
    }
  }

  /** The hard way: for whatever is left after containerd is gone. */
  private async killLeftovers(): Promise<void> {
    for (let round = 0; round < 3; round++) {
      const shims = await this.shimProcesses();
      if (shims.length === 0) break;
      const procs = await listProcesses();
      // Children first (container processes would otherwise be reparented away from us), then shims.
      const shimPids = new Set(shims.map((s) => s.pid));
      const victims: number[] = [];
      let frontier = [...shimPids];
      while (frontier.length > 0) {
        const next = procs.filter((p) => frontier.includes(p.ppid)).map((p) => p.pid);
        victims.push(...next);
        frontier = next;
      }
      for (const pid of victims) signalPid(pid, 'SIGKILL');
      for (const pid of shimPids) signalPid(pid, 'SIGKILL');
      await waitFor(async () => {
        for (const pid of [...victims, ...shimPids]) if (await isAlive(pid)) return false;
        return true;
      }, 10_000, 'leftover shim processes to die').catch(() => undefined);
    }
    // runc state, cgroups and shim sockets of tasks whose shim died without cleaning up.
    for (const b of await this.bundles()) {
      const runcRoot = join('/run/containerd/runc', b.ns);
      if (existsSync(join(runcRoot, b.id))) {
        await exec('runc', ['--root', runcRoot, 'delete', '--force', b.id], { allowFail: true, timeoutMs: 15_000, env: this.env }).catch(() => undefined);
      }
      await this.removeCgroups(b.path);
      await rm(this.shimSocketPath(b.ns, b.id), { force: true }).catch(() => undefined);
    }
  }

  /** Kills what is left in the task's cgroup (from its config.json) and removes the leaf cgroups. */
  private async removeCgroups(bundle: string): Promise<void> {
    let cgroupsPath: string | undefined;
    try {
      const spec = JSON.parse(await readFile(join(bundle, 'config.json'), 'utf8')) as { linux?: { cgroupsPath?: string } };
      cgroupsPath = spec.linux?.cgroupsPath;
    } catch {
      return;
    }
    if (!cgroupsPath || !cgroupsPath.startsWith('/')) return; // systemd-style paths are not used by our tests
    for (const ctl of await readdir('/sys/fs/cgroup').catch(() => [] as string[])) {
      const dir = join('/sys/fs/cgroup', ctl, cgroupsPath);
      if (!existsSync(dir)) continue;
      const pids = (await readFile(join(dir, 'cgroup.procs'), 'utf8').catch(() => '')).split('\n').filter(Boolean).map(Number);
      for (const pid of pids) signalPid(pid, 'SIGKILL');
      await waitFor(() => rmdir(dir).then(() => true), 5_000, `rmdir ${dir}`).catch(() => undefined);
    }
  }

  /** Cleanup for an instance whose owner is gone: no API, just kill containerd, shims, tasks; unmount; remove. */
  async forceCleanup(): Promise<void> {
    this.stopped = true;
    for (const p of await listProcesses()) {
      if (p.argv[0]?.endsWith('/containerd') && p.argv.includes(this.configFile)) signalPid(p.pid, 'SIGKILL');
    }
    await this.killLeftovers();
    await unmountUnder(this.dir);
    if ((await mountsUnder(this.dir)).length === 0) await removeDir(this.dir);
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    const problems: string[] = [];
    try {
      if (this.child?.pid && this.child.exitCode === null && this.child.signalCode === null) {
        await this.removeAllViaApi(problems);
        signalPid(this.child.pid, 'SIGTERM');
        if (!(await this.waitExit(10_000))) await this.kill('SIGKILL');
      }
      const leftovers = await this.shimProcesses();
      if (leftovers.length > 0) problems.push(`shims left after containerd stopped: ${leftovers.map((p) => p.pid).join(', ')}`);
      await this.killLeftovers();
      await unmountUnder(this.dir);
    } finally {
      live.delete(this);
    }
    if (problems.length > 0 && process.env.SHIM_TEST_DEBUG === '1') {
      process.stderr.write(`containerd ${this.version} stop(): ${problems.join('\n  ')}\n`);
    }
    const shims = await this.shimProcesses();
    const mounts = await mountsUnder(this.dir);
    // SHIM_TEST_SAVE_LOGS=<dir>: keep each containerd's log (with the shims' lines) for a post-mortem.
    const saveTo = process.env.SHIM_TEST_SAVE_LOGS;
    if (saveTo) {
      await mkdir(saveTo, { recursive: true }).catch(() => undefined);
      await copyFile(this.logFile, join(saveTo, `${basename(this.dir)}.log`)).catch(() => undefined);
    }
    if (mounts.length === 0) await removeDir(this.dir).catch((e: Error) => problems.push(`rm ${this.dir}: ${e.message}`));
    const left: string[] = [];
    if (shims.length > 0) left.push(`processes: ${shims.map((p) => `${p.pid} ${p.argv.join(' ')}`).join('; ')}`);
    if (mounts.length > 0) left.push(`mounts: ${mounts.map((m) => m.mountPoint).join(', ')}`);
    if (existsSync(this.dir)) left.push(`dir ${this.dir} still exists`);
    if (left.length > 0) {
      throw new Error(`containerd ${this.version} stop() left things behind: ${left.join(' | ')}` + (problems.length ? `\n(${problems.join('; ')})` : ''));
    }
  }
}

export interface TaskInfo {
  id: string;
  pid: number;
  /** RUNNING, STOPPED, CREATED, PAUSED, ... as printed by `ctr task ls`. */
  status: string;
}

/** `ctr task ls`, parsed. */
export async function listTasks(cd: Containerd, namespace?: string): Promise<TaskInfo[]> {
  const r = await cd.ctr(['tasks', 'ls'], { namespace });
  return r.stdout
    .split('\n')
    .slice(1)
    .map((l) => l.trim().split(/\s+/))
    .filter((f) => f.length >= 3 && f[0])
    .map(([id = '', pid = '', status = '']) => ({ id, pid: Number(pid), status }));
}

/** Polls `ctr task ls` until task `id` has `status`; returns it. */
export function waitTaskStatus(cd: Containerd, id: string, status: string, timeoutMs = 20_000, namespace?: string): Promise<TaskInfo> {
  return waitFor(
    async () => (await listTasks(cd, namespace)).find((t) => t.id === id && t.status === status),
    timeoutMs,
    `task ${id} to be ${status}`,
    100,
  );
}

const OWNER_FILE = 'owner.json';

/**
 * Cleans up instances left by test processes that died without stop() (e.g. killed by a timeout):
 * temp dirs `cd-*` whose owner process is gone. Called by startContainerd(); safe with concurrent tests.
 */
export async function cleanupStale(): Promise<void> {
  const base = tempBase();
  for (const name of await readdir(base).catch(() => [] as string[])) {
    if (!name.startsWith('cd-')) continue;
    const dir = join(base, name);
    let owner: { pid: number; version: ContainerdVersion; namespace: string };
    try {
      owner = JSON.parse(await readFile(join(dir, OWNER_FILE), 'utf8')) as typeof owner;
    } catch {
      continue; // not ours, or still being set up
    }
    if (owner.pid === process.pid || (await isAlive(owner.pid))) continue;
    const binaries = containerdBinaries(owner.version) ?? { binDir: '/usr/bin', containerd: '', ctr: '', runcShim: '' };
    await new ContainerdInstance(owner.version, binaries, dir, owner.namespace, {}).forceCleanup().catch(() => undefined);
  }
}

/** Starts a private containerd and waits until it answers. Always pair with `stop()` (e.g. in `after`). */
export async function startContainerd(opts: StartOptions = {}): Promise<Containerd> {
  const version = opts.version ?? '1.6';
  const binaries = containerdBinaries(version);
  if (!binaries) throw new Error(`containerd ${version} binaries not found; run scripts/fetch-containerd.sh ${version}`);
  await cleanupStale();
  const dir = await makeTempDir('cd-');
  if (join(dir, 'c.sock.ttrpc').length >= 100) throw new Error(`socket path under ${dir} too long; set SHIM_TEST_TMPDIR`);
  const instance = new ContainerdInstance(version, binaries, dir, opts.namespace ?? DEFAULT_NAMESPACE, opts);
  live.add(instance);
  installExitHook();
  try {
    await instance.init();
  } catch (err) {
    await instance.stop().catch(() => undefined);
    throw err;
  }
  return instance;
}

/**
 * `ctr task pause`. On cgroup v1 runc can give up freezing a busy container ("unable to freeze"); ours retries
 * that itself (Runc.pause), the reference hands it to the client. For the reference this retries as its
 * clients must, reporting each such failure through `report`; for ours one call must do.
 */
export async function pauseTask(cd: Containerd, id: string, runtime: Runtime, report: (msg: string) => void): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    const r = await cd.ctr(['task', 'pause', id], { allowFail: true });
    if (r.code === 0) return;
    const retry = runtime !== 'io.containerd.ts.v2' && attempt < 3 && r.stderr.includes('unable to freeze');
    if (!retry) throw new Error(`ctr task pause ${id} (${runtime}): exit ${r.code}: ${r.stderr}`);
    report(`${runtime}: pause failed, runc could not freeze (attempt ${attempt}): ${r.stderr.trim()}`);
  }
}
