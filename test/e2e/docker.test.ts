/**
 * Docker on our shim: a private dockerd (test/harness/docker.ts) on a private containerd, driven by the docker
 * CLI of the same version. dockerd 20.10 (Debian 12) runs io.containerd.runc.v2 tasks and gets our shim as a
 * drop-in (`containerd-shim-runc-v2` first in containerd's PATH); dockerd 28 (Debian sid) names it in
 * daemon.json (`runtimes: {ts: {runtimeType: io.containerd.ts.v2}}`, `docker run --runtime ts`), and every case
 * runs there against the reference too (`--runtime runc`, containerd's own containerd-shim-runc-v2). Images are
 * loaded with `docker load`, never pulled; containers run with --network none.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, readFile, readlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { spawn as ptySpawn, type IPty } from 'node-pty';
import { shimBinDir, startContainerd, type Containerd } from '../harness/containerd.js';
import {
  containerdFor,
  DOCKER_VERSIONS,
  dropInShimDir,
  anyDockerdRunning,
  hostPathsDockerdMayTouch,
  selectedDockerVersions,
  startDockerd,
  type Dockerd,
  type DockerVersion,
} from '../harness/docker.js';
import { exec, isAlive, listProcesses, sleep, uniqueId, waitFor, type ExecOptions, type ExecResult } from '../harness/util.js';

const TIMEOUT = { timeout: 180_000 };

/** The memory and freezer controllers: v1 hierarchies when mounted (hybrid), else the unified one. */
const CGROUP_V1 = existsSync('/sys/fs/cgroup/memory/memory.limit_in_bytes');

interface RuntimeCase {
  /** Label in test names. */
  label: string;
  /** `docker run` flags that select it. */
  args: string[];
  /** Our shim (else the reference). */
  ours: boolean;
}

/** A containerd + dockerd pair and the runtimes its cases run on. */
interface Stack {
  version: DockerVersion;
  /** Our shim first in containerd's PATH as containerd-shim-runc-v2. */
  dropIn: boolean;
  runtimes: RuntimeCase[];
  title: string;
}

/**
 * dockerd 20.10 knows only io.containerd.runc.v2: ours as a drop-in on one containerd, the reference on another.
 * dockerd 28: both on one, by daemon.json runtime.
 */
function stacksFor(version: DockerVersion): Stack[] {
  const on = `docker ${version} on a private containerd ${containerdFor(version)}`;
  if (version === '20.10') {
    return [
      { version, dropIn: true, title: `${on}, our shim as containerd-shim-runc-v2`, runtimes: [{ label: 'ts (drop-in for io.containerd.runc.v2)', args: [], ours: true }] },
      { version, dropIn: false, title: `${on}, the reference shim`, runtimes: [{ label: 'reference runc', args: [], ours: false }] },
    ];
  }
  return [
    {
      version,
      dropIn: false,
      title: `${on}, runtimes ts and runc`,
      runtimes: [
        { label: 'ts (runtimeType io.containerd.ts.v2)', args: ['--runtime', 'ts'], ours: true },
        { label: 'reference runc', args: ['--runtime', 'runc'], ours: false },
      ],
    },
  ];
}

/** The docker CLI on a fresh pseudo-terminal, as a user would run it. */
class DockerPty {
  readonly pty: IPty;
  #out = '';
  #done = false;
  readonly exited: Promise<{ exitCode: number; signal?: number }>;

  constructor(d: Dockerd, args: string[], cols = 100, rows = 40) {
    this.pty = ptySpawn(d.binaries.docker, args, { name: 'xterm', cols, rows, cwd: '/', env: { ...d.cliEnv, TERM: 'xterm' } as Record<string, string> });
    this.pty.onData((data) => {
      this.#out += data;
    });
    this.exited = new Promise((resolve) =>
      this.pty.onExit((e) => {
        this.#done = true;
        resolve(e);
      }),
    );
  }

  /** Everything received, line ends as \n, without the CSI sequences (busybox sh asks for the cursor position). */
  text(): string {
    return this.#out.replace(/\x1b\[[0-9;?]*[A-Za-z]/g, '').replace(/\r+\n/g, '\n');
  }

  write(s: string): void {
    this.pty.write(s);
  }

  async expect(re: RegExp, what: string, from = 0, timeoutMs = 20_000): Promise<RegExpMatchArray> {
    try {
      return await waitFor(() => this.text().slice(from).match(re) ?? undefined, timeoutMs, what);
    } catch (err) {
      throw new Error(`${(err as Error).message}; output so far: ${JSON.stringify(this.text().slice(-300))}`);
    }
  }

  /** Types `stty size` until the shell answers `want` (a resize reaches the container asynchronously). */
  async sizeBecomes(want: string): Promise<void> {
    await waitFor(
      async () => {
        const from = this.text().length;
        this.write('stty size\r');
        const m = await this.expect(/(\d+ \d+)\n/, 'stty size', from, 5000);
        return m[1] === want;
      },
      30_000,
      `stty size to be ${want}; output so far: ${JSON.stringify(this.text().slice(-300))}`,
    );
  }

  async exit(timeoutMs = 30_000): Promise<{ exitCode: number; signal?: number }> {
    const e = await Promise.race([this.exited, sleep(timeoutMs).then(() => undefined)]);
    if (!e) throw new Error(`docker CLI did not exit; output: ${JSON.stringify(this.text().slice(-300))}`);
    return e;
  }

  async kill(): Promise<void> {
    if (this.#done) return;
    this.pty.kill('SIGKILL');
    await Promise.race([this.exited, sleep(5000)]);
  }
}

/** A long-running CLI command (e.g. `docker logs -f`) whose output is watched while it runs. */
function follow(d: Dockerd, args: string[]): { output: () => string; exited: Promise<number | null>; kill: () => void } {
  const child = spawn(d.binaries.docker, args, { env: d.cliEnv, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (b: Buffer) => (out += b.toString()));
  child.stderr.on('data', (b: Buffer) => (out += b.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('close', (code) => resolve(code)));
  return { output: () => out, exited, kill: () => child.kill('SIGKILL') };
}

/**
 * What a dockerd could change on the host, to show that ours changed none of it: paths, Docker's network links
 * and iptables chains, IP forwarding. Only Docker-named links and rules count: other tests share the machine.
 */
async function hostState(shared: boolean): Promise<string[]> {
  const state = hostPathsDockerdMayTouch(shared)
    .filter((p) => existsSync(p))
    .map((p) => `path ${p}`);
  const links = await exec('ip', ['-o', 'link', 'show'], { allowFail: true });
  for (const line of links.stdout.split('\n')) {
    const link = line.split(':')[1]?.trim() ?? '';
    if (/^(docker|veth|br-)/.test(link)) state.push(`link ${link}`);
  }
  for (const table of ['filter', 'nat']) {
    const rules = await exec('iptables', ['-t', table, '-S'], { allowFail: true }).catch(() => undefined);
    for (const rule of (rules?.stdout ?? '').split('\n')) if (/DOCKER/.test(rule)) state.push(`iptables ${table} ${rule}`);
  }
  state.push(`ip_forward ${(await readFile('/proc/sys/net/ipv4/ip_forward', 'utf8')).trim()}`);
  return state;
}

// A version not installed is reported as skipped, not silently left out (SHIM_TEST_DOCKER set: only those).
const selected = selectedDockerVersions();
if (!process.env.SHIM_TEST_DOCKER?.trim()) {
  for (const v of DOCKER_VERSIONS.filter((x) => !selected.includes(x))) {
    const how = v === '28' ? 'run scripts/fetch-docker.sh' : 'apt-get install docker.io';
    test(`docker ${v}`, { skip: `dockerd ${v} is not installed: ${how}` }, () => undefined);
  }
}

for (const stack of selected.flatMap(stacksFor)) {
  const { version } = stack;
  describe(stack.title, () => {
    let cd: Containerd;
    let dockerd: Dockerd;
    let image: string;
    let stopped = false;
    /** The host before, with and without the dirs all dockerds share (see hostPathsDockerdMayTouch). */
    let hostBefore = { withShared: [] as string[], withoutShared: [] as string[] };
    /** No other dockerd ran when we started. */
    let alone = false;
    let t0 = 0;

    before(async () => {
      t0 = Date.now();
      alone = !(await anyDockerdRunning());
      hostBefore = { withShared: await hostState(true), withoutShared: await hostState(false) };
      cd = await startContainerd({
        version: containerdFor(version),
        shimDirs: stack.dropIn ? [dropInShimDir(), shimBinDir()] : [shimBinDir()],
      });
      dockerd = await startDockerd({
        version,
        containerd: cd,
        runtimes: version === '20.10' ? undefined : { ts: { runtimeType: 'io.containerd.ts.v2' } },
      });
      image = await dockerd.loadImage();
      console.log(`dockerd ${dockerd.serverVersion} on containerd ${cd.serverVersion}: up in ${Date.now() - t0} ms`);
    });
    after(async () => {
      if (stopped) return;
      try {
        await dockerd?.stop();
      } finally {
        await cd?.stop();
      }
    });

    const docker = (args: string[], opts?: ExecOptions): Promise<ExecResult> => dockerd.docker(args, opts);
    const inspect = async (name: string, format: string): Promise<string> => (await docker(['inspect', '-f', format, name])).stdout.trim();
    const remove = (name: string) => docker(['rm', '-f', name], { allowFail: true });

    /** The shim process serving container `id` (full id): its pid and whether its executable is node (ours). */
    async function shimOf(id: string): Promise<{ pid: number; exe: string }> {
      const p = await waitFor(
        async () =>
          (await cd.shimProcesses()).find((x) => {
            const i = x.argv.indexOf('-id');
            return i >= 0 && x.argv[i + 1] === id;
          }),
        10_000,
        `the shim of ${id}`,
      );
      return { pid: p.pid, exe: await readlink(`/proc/${p.pid}/exe`) };
    }

    /** A v1 controller file (hybrid host) or the unified file of the container's cgroup. */
    function cgroupFile(controller: string, id: string, v1File: string, v2File: string): string {
      return CGROUP_V1 ? join('/sys/fs/cgroup', controller, dockerd.cgroupParent, id, v1File) : join('/sys/fs/cgroup', dockerd.cgroupParent, id, v2File);
    }

    /** A host dir bind-mounted at /sig: the test signals the container by creating files there. */
    async function signalDir(name: string): Promise<string> {
      const dir = join(dockerd.dir, `sig-${name}`);
      await mkdir(dir);
      return dir;
    }

    /** Script for a container that says `before`, then `during` once /sig/go1 exists, then `after` and exits 4 once /sig/go2 exists. */
    const STAGED = 'echo before; until [ -e /sig/go1 ]; do sleep 0.1; done; echo during; touch /sig/said-during; until [ -e /sig/go2 ]; do sleep 0.1; done; echo after; exit 4';

    for (const rt of stack.runtimes) {
      const run = (args: string[], opts?: ExecOptions) => docker(['run', '--network', 'none', ...rt.args, ...args], opts);

      test(`${rt.label}: run prints and exits with the container's code; the task is on the expected shim`, TIMEOUT, async () => {
        const name = uniqueId('run');
        const busy = uniqueId('busy');
        try {
          const r = await run(['--name', name, image, 'sh', '-c', 'echo hello; echo oops >&2; exit 7'], { allowFail: true });
          assert.equal(r.code, 7, r.stderr);
          assert.equal(r.stdout, 'hello\n');
          assert.equal(r.stderr, 'oops\n');
          assert.equal(await inspect(name, '{{.State.ExitCode}}'), '7');
          // While one runs: whose shim serves it.
          await run(['-d', '--name', busy, image, 'sleep', '600']);
          const id = await inspect(busy, '{{.Id}}');
          const shim = await shimOf(id);
          if (rt.ours) assert.match(shim.exe, /\/node$/, `shim ${shim.pid} of ${id} is ${shim.exe}, not our Node shim`);
          else assert.match(shim.exe, /containerd-shim-runc-v2$/);
        } finally {
          await remove(name);
          await remove(busy);
        }
      });

      test(`${rt.label}: run -i passes stdin through to EOF`, TIMEOUT, async () => {
        const input = Array.from({ length: 2000 }, (_, i) => `line ${i}`).join('\n') + '\n';
        const r = await run(['--rm', '-i', image, 'sh', '-c', 'wc -l; echo done'], { input });
        assert.equal(r.stdout.replace(/ +/g, ''), '2000\ndone\n');
        const r2 = await run(['--rm', '-i', image, 'cat'], { input });
        assert.equal(r2.stdout, input);
      });

      test(`${rt.label}: large output arrives complete, attached and in the logs`, TIMEOUT, async () => {
        const want = (n: number) => Array.from({ length: n }, (_, i) => `${i + 1}\n`).join('');
        const r = await run(['--rm', image, 'seq', '1', '200000'], { timeoutMs: 120_000 });
        assert.equal(r.stdout.length, want(200000).length, `tail: ${JSON.stringify(r.stdout.slice(-40))}`);
        assert.equal(r.stdout, want(200000));
        const name = uniqueId('out');
        try {
          await run(['-d', '--name', name, image, 'seq', '1', '50000']);
          await waitFor(async () => (await inspect(name, '{{.State.Running}}')) === 'false', 30_000, 'seq to finish');
          assert.equal((await docker(['logs', name], { timeoutMs: 60_000 })).stdout, want(50000));
        } finally {
          await remove(name);
        }
      });

      test(`${rt.label}: run -it gets a tty of the client's size and follows a resize; exit code through the tty`, TIMEOUT, async () => {
        const name = uniqueId('tty');
        const c = new DockerPty(dockerd, ['run', '-it', '--name', name, '--network', 'none', ...rt.args, image, 'sh'], 100, 40);
        try {
          await c.expect(/# $/, 'shell prompt');
          c.write('[ -t 0 ] && [ -t 1 ] && echo "IS-A-""TTY"\r');
          await c.expect(/IS-A-TTY\n/, 'stdin and stdout are a tty');
          await c.sizeBecomes('40 100');
          c.pty.resize(120, 50);
          await c.sizeBecomes('50 120');
          c.write('exit 3\r');
          assert.equal((await c.exit()).exitCode, 3, c.text().slice(-300));
          assert.equal(await inspect(name, '{{.State.ExitCode}}'), '3');
        } finally {
          await c.kill();
          await remove(name);
        }
      });

      test(`${rt.label}: exec -it gets its own tty, follows a resize, exits with its code`, TIMEOUT, async () => {
        const name = uniqueId('exec');
        await run(['-d', '--name', name, image, 'sleep', '600']);
        const c = new DockerPty(dockerd, ['exec', '-it', name, 'sh'], 90, 30);
        try {
          await c.expect(/# $/, 'shell prompt');
          await c.sizeBecomes('30 90');
          c.pty.resize(132, 43);
          await c.sizeBecomes('43 132');
          c.write('exit 5\r');
          assert.equal((await c.exit()).exitCode, 5, c.text().slice(-300));
          assert.equal(await inspect(name, '{{.State.Running}}'), 'true');
        } finally {
          await c.kill();
          await remove(name);
        }
      });

      test(`${rt.label}: logs -f follows new output and ends when the container exits`, TIMEOUT, async () => {
        const name = uniqueId('logs');
        const sig = await signalDir(name);
        await run(['-d', '--name', name, '-v', `${sig}:/sig`, image, 'sh', '-c', STAGED]);
        const f = follow(dockerd, ['logs', '-f', name]);
        try {
          await waitFor(() => f.output() === 'before\n', 20_000, `logs -f to show "before"; got ${JSON.stringify(f.output())}`);
          await writeFile(join(sig, 'go1'), '');
          await waitFor(() => f.output() === 'before\nduring\n', 20_000, `logs -f to show "during"; got ${JSON.stringify(f.output())}`);
          await writeFile(join(sig, 'go2'), '');
          const code = await Promise.race([f.exited, sleep(30_000).then(() => 'timeout')]);
          assert.equal(code, 0, `logs -f ended with ${String(code)}; output ${JSON.stringify(f.output())}`);
          assert.equal(f.output(), 'before\nduring\nafter\n');
          assert.equal(await inspect(name, '{{.State.ExitCode}}'), '4');
        } finally {
          f.kill();
          await remove(name);
        }
      });

      test(`${rt.label}: detach keys leave the container running; attach reaches it again; its exit ends attach`, TIMEOUT, async () => {
        const name = uniqueId('attach');
        try {
          await detachAttach(name);
        } finally {
          await remove(name);
        }
      });

      async function detachAttach(name: string): Promise<void> {
        const c = new DockerPty(dockerd, ['run', '-it', '--name', name, '--network', 'none', ...rt.args, image, 'sh']);
        try {
          await c.expect(/# $/, 'shell prompt');
          c.write('echo first-""session\r');
          await c.expect(/first-session\n/, 'echo in the first session');
          c.write('\x10\x11'); // the default detach keys: ctrl-p ctrl-q
          const e = await c.exit();
          assert.equal(e.exitCode, 0, `docker run after detaching: ${JSON.stringify(c.text().slice(-200))}`);
          assert.equal(await inspect(name, '{{.State.Running}}'), 'true');
        } finally {
          await c.kill();
        }
        const a = new DockerPty(dockerd, ['attach', '--detach-keys', 'ctrl-x,y', name]);
        try {
          await waitFor(async () => {
            const from = a.text().length;
            a.write('echo second-""session\r');
            await a.expect(/second-session\n/, 'echo after attach', from, 3000);
            return true;
          }, 30_000, 'attach to reach the shell');
          a.write('\x18y');
          await a.exit();
          assert.equal(await inspect(name, '{{.State.Running}}'), 'true');
        } finally {
          await a.kill();
        }
        const b = new DockerPty(dockerd, ['attach', name]);
        try {
          await waitFor(async () => {
            const from = b.text().length;
            b.write('echo third-""session\r');
            await b.expect(/third-session\n/, 'echo after attach', from, 3000);
            return true;
          }, 30_000, 'attach to reach the shell');
          b.write('exit 6\r');
          assert.equal((await b.exit()).exitCode, 6, b.text().slice(-300));
          assert.equal(await inspect(name, '{{.State.ExitCode}}'), '6');
        } finally {
          await b.kill();
        }
      }

      test(`${rt.label}: stop delivers SIGTERM (trapped: its exit code; ignored: SIGKILL after the timeout); kill SIGKILLs (137); kill -s delivers the signal`, TIMEOUT, async () => {
        const trapper = uniqueId('stop');
        const sleeper = uniqueId('kill');
        const stubborn = uniqueId('stubborn');
        try {
          await run(['-d', '--name', trapper, image, 'sh', '-c', 'trap "echo got-USR1" USR1; trap "echo got-TERM; exit 3" TERM; echo ready; while true; do sleep 0.1; done']);
          await waitFor(async () => (await docker(['logs', trapper])).stdout.includes('ready'), 20_000, 'trapper ready');
          await docker(['kill', '-s', 'USR1', trapper]);
          await waitFor(async () => (await docker(['logs', trapper])).stdout.includes('got-USR1'), 20_000, 'USR1 handled');
          await docker(['stop', '-t', '60', trapper], { timeoutMs: 90_000 });
          assert.equal(await inspect(trapper, '{{.State.ExitCode}}'), '3');
          assert.match((await docker(['logs', trapper])).stdout, /got-TERM\n$/);

          // SIGTERM ignored: stop SIGKILLs once its timeout passes.
          await run(['-d', '--name', stubborn, image, 'sh', '-c', 'trap "" TERM; echo ready; while true; do sleep 0.1; done']);
          await waitFor(async () => (await docker(['logs', stubborn])).stdout.includes('ready'), 20_000, 'stubborn ready');
          await docker(['stop', '-t', '1', stubborn], { timeoutMs: 90_000 });
          assert.equal(await inspect(stubborn, '{{.State.ExitCode}}'), '137');

          await run(['-d', '--name', sleeper, image, 'sleep', '600']);
          const pid = Number(await inspect(sleeper, '{{.State.Pid}}'));
          await docker(['kill', sleeper]);
          await waitFor(async () => (await inspect(sleeper, '{{.State.Running}}')) === 'false', 20_000, 'killed');
          assert.equal(await inspect(sleeper, '{{.State.ExitCode}}'), '137');
          assert.equal(await isAlive(pid), false);
        } finally {
          await remove(trapper);
          await remove(sleeper);
          await remove(stubborn);
        }
      });

      test(`${rt.label}: pause freezes the container's cgroup, unpause thaws it`, TIMEOUT, async () => {
        const name = uniqueId('pause');
        try {
          await run(['-d', '--name', name, image, 'sleep', '600']);
          const id = await inspect(name, '{{.Id}}');
          await docker(['pause', name]);
          assert.equal(await inspect(name, '{{.State.Status}}'), 'paused');
          const state = cgroupFile('freezer', id, 'freezer.state', 'cgroup.freeze');
          assert.equal((await readFile(state, 'utf8')).trim(), CGROUP_V1 ? 'FROZEN' : '1');
          const r = await docker(['exec', name, 'true'], { allowFail: true });
          assert.notEqual(r.code, 0, 'exec into a paused container must fail');
          await docker(['unpause', name]);
          assert.equal(await inspect(name, '{{.State.Status}}'), 'running');
          assert.equal((await readFile(state, 'utf8')).trim(), CGROUP_V1 ? 'THAWED' : '0');
          await docker(['exec', name, 'true']);
        } finally {
          await remove(name);
        }
      });

      test(`${rt.label}: update --memory changes the cgroup's limit`, TIMEOUT, async () => {
        const name = uniqueId('update');
        try {
          await run(['-d', '--name', name, '--memory', '64m', '--memory-swap', '128m', image, 'sleep', '600']);
          const id = await inspect(name, '{{.Id}}');
          const limit = cgroupFile('memory', id, 'memory.limit_in_bytes', 'memory.max');
          assert.equal((await readFile(limit, 'utf8')).trim(), String(64 * 1024 * 1024));
          await docker(['update', '--memory', '96m', '--memory-swap', '192m', name]);
          assert.equal((await readFile(limit, 'utf8')).trim(), String(96 * 1024 * 1024));
          assert.equal(await inspect(name, '{{.HostConfig.Memory}}'), String(96 * 1024 * 1024));
        } finally {
          await remove(name);
        }
      });

      test(`${rt.label}: restart=always restarts an exiting container`, TIMEOUT, async () => {
        const name = uniqueId('always');
        try {
          await run(['-d', '--name', name, '--restart', 'always', image, 'sh', '-c', 'echo run; sleep 0.5; exit 1']);
          await waitFor(async () => Number(await inspect(name, '{{.RestartCount}}')) >= 2, 90_000, 'two restarts', 200);
          // Each run's output reaches the logs (the count is raised before the new run has printed).
          const runs = async () => (await docker(['logs', name])).stdout.split('\n').filter((l) => l === 'run').length;
          await waitFor(async () => (await runs()) >= 3, 30_000, 'three runs in the logs', 200);
        } finally {
          await remove(name);
        }
      });

      test(`${rt.label}: top, stats, exec (-i, -u, exit code), restart and wait`, TIMEOUT, async () => {
        const name = uniqueId('misc');
        try {
          await run(['-d', '--name', name, image, 'sh', '-c', 'trap "exit 9" TERM; sleep 600 & wait']);
          await waitFor(async () => (await docker(['top', name])).stdout.includes('sleep 600'), 20_000, 'top to list sleep 600');
          const mem = (await docker(['stats', '--no-stream', '--format', '{{.MemUsage}}', name])).stdout.trim();
          assert.match(mem, /^[\d.]+[KMG]i?B \/ /, `stats: ${mem}`);
          assert.doesNotMatch(mem, /^0B/, `stats: ${mem}`);
          const input = 'x'.repeat(100_000);
          assert.equal((await docker(['exec', '-i', name, 'wc', '-c'], { input })).stdout.trim(), '100000');
          assert.equal((await docker(['exec', '-u', '1000', name, 'id', '-u'])).stdout.trim(), '1000');
          assert.equal((await docker(['exec', name, 'sh', '-c', 'exit 42'], { allowFail: true })).code, 42);

          const pid = await inspect(name, '{{.State.Pid}}');
          await docker(['restart', '-t', '30', name], { timeoutMs: 90_000 });
          assert.equal(await inspect(name, '{{.State.Running}}'), 'true');
          assert.notEqual(await inspect(name, '{{.State.Pid}}'), pid, 'restart runs a new process');
          await waitFor(async () => (await docker(['top', name])).stdout.includes('sleep 600'), 20_000, 'top to list sleep 600 after restart');

          const w = follow(dockerd, ['wait', name]);
          try {
            // Whether `docker wait` is already waiting when the stop lands or not, it prints the exit code.
            await docker(['stop', '-t', '30', name], { timeoutMs: 90_000 });
            const code = await Promise.race([w.exited, sleep(30_000).then(() => 'timeout')]);
            assert.equal(code, 0, `docker wait: ${w.output()}`);
            assert.equal(w.output().trim(), '9');
          } finally {
            w.kill();
          }
        } finally {
          await remove(name);
        }
      });

      test(`${rt.label}: a container over its memory limit is OOM-killed: exit 137, State.OOMKilled true`, TIMEOUT, async () => {
        const name = uniqueId('oom');
        try {
          const r = await run(['--name', name, '--memory', '32m', '--memory-swap', '32m', image, 'tail', '/dev/zero'], { allowFail: true, timeoutMs: 120_000 });
          assert.equal(r.code, 137, r.stderr);
          assert.equal(await inspect(name, '{{.State.ExitCode}}'), '137');
          assert.equal(await inspect(name, '{{.State.OOMKilled}}'), 'true');
        } finally {
          await remove(name);
        }
      });

      test(`${rt.label}: live-restore: the container outlives a dockerd SIGKILL; its output and exit are seen after dockerd restarts`, TIMEOUT, async () => {
        const name = uniqueId('live');
        const sig = await signalDir(name);
        try {
          await run(['-d', '--name', name, '-v', `${sig}:/sig`, image, 'sh', '-c', STAGED]);
          const pid = Number(await inspect(name, '{{.State.Pid}}'));
          await waitFor(async () => (await docker(['logs', name])).stdout === 'before\n', 20_000, '"before" logged');
          await dockerd.kill('SIGKILL');
          // While dockerd is down the container runs on and writes.
          await writeFile(join(sig, 'go1'), '');
          await waitFor(() => existsSync(join(sig, 'said-during')), 20_000, 'the container to go on while dockerd is down');
          assert.equal(await isAlive(pid), true);
          await dockerd.start();
          assert.equal(await inspect(name, '{{.State.Running}}'), 'true');
          assert.equal(Number(await inspect(name, '{{.State.Pid}}')), pid);
          await writeFile(join(sig, 'go2'), '');
          await waitFor(async () => (await inspect(name, '{{.State.Running}}')) === 'false', 30_000, 'the exit to reach the restarted dockerd');
          assert.equal(await inspect(name, '{{.State.ExitCode}}'), '4');
          await waitFor(async () => (await docker(['logs', name])).stdout === 'before\nduring\nafter\n', 10_000, 'all output in the logs');
        } finally {
          await remove(name);
        }
      });

      test(`${rt.label}: containerd SIGKILLed with containers running: they survive, dockerd reconnects, exec/exit work`, TIMEOUT, async () => {
        const name = uniqueId('cdkill');
        const sig = await signalDir(name);
        try {
          await run(['-d', '--name', name, '-v', `${sig}:/sig`, image, 'sh', '-c', STAGED]);
          const pid = Number(await inspect(name, '{{.State.Pid}}'));
          const id = await inspect(name, '{{.Id}}');
          const shim = await shimOf(id);
          await waitFor(async () => (await docker(['logs', name])).stdout === 'before\n', 20_000, '"before" logged');
          await cd.restart();
          assert.equal(await isAlive(pid), true, 'the container died with containerd');
          assert.equal(await isAlive(shim.pid), true, 'the shim died with containerd');
          // dockerd reconnects on its own; exec goes dockerd → containerd → shim.
          const r = await waitFor(async () => {
            const x = await docker(['exec', name, 'echo', 'exec-ok'], { allowFail: true });
            return x.code === 0 ? x : undefined;
          }, 60_000, 'docker exec to work after containerd restarted');
          assert.equal(r.stdout, 'exec-ok\n');
          await writeFile(join(sig, 'go1'), '');
          await writeFile(join(sig, 'go2'), '');
          await waitFor(async () => (await inspect(name, '{{.State.Running}}')) === 'false', 30_000, 'the exit to reach dockerd');
          assert.equal(await inspect(name, '{{.State.ExitCode}}'), '4');
          await waitFor(async () => (await docker(['logs', name])).stdout === 'before\nduring\nafter\n', 10_000, 'all output in the logs');
        } finally {
          await remove(name);
        }
      });
    }

    test('nothing left behind: no containers, shims, container processes, mounts, cgroups, temp dirs; host paths and network untouched', TIMEOUT, async () => {
      const ps = await docker(['ps', '-aq']);
      assert.equal(ps.stdout.trim(), '', 'every test removed its containers');
      const dirs = [dockerd.dir, cd.dir];
      const dockerdPid = dockerd.pid;
      stopped = true;
      try {
        await dockerd.stop(); // throws on leftover mounts, cgroups, dirs or a live dockerd
      } finally {
        await cd.stop(); // throws on leftover shims, mounts, dirs
      }
      for (const d of dirs) assert.equal(existsSync(d), false, `${d} removed`);
      assert.equal(await isAlive(dockerdPid), false);
      const strays = (await listProcesses()).filter((p) => p.argv.some((a) => dirs.some((d) => a.includes(d))));
      assert.deepEqual(strays.map((p) => `${p.pid} ${p.argv.join(' ')}`), []);
      // /run/docker counts only when no other dockerd ran meanwhile (e.g. another test process's).
      const shared = alone && !(await anyDockerdRunning());
      const before = shared ? hostBefore.withShared : hostBefore.withoutShared;
      assert.deepEqual(await hostState(shared), before, 'host paths, links, iptables rules, forwarding');
      console.log(`${stack.title}: whole suite ${Math.round((Date.now() - t0) / 1000)} s`);
    });
  });
}
