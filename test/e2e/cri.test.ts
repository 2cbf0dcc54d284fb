/**
 * containerd's CRI plugin driven as the kubelet drives it (gRPC runtime.v1 on containerd's socket), for our
 * runtime handler `ts` and the reference `runc`, same assertions for both, on every selected containerd.
 * Pods: locally built pause image, loopback-only network, cgroupfs parent per pod (test/harness/cri.ts).
 */
import { after, afterEach, before, describe, test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { readdir, readFile, realpath, rmdir } from 'node:fs/promises';
import { join } from 'node:path';
import { ContainerState, PodSandboxState, type ContainerConfig, type PodSandboxConfig } from '../cri/gen/cri.js';
import { listTasks, selectedVersions } from '../harness/containerd.js';
import { CriStream, STDERR, STDOUT, exitCodeOf } from '../harness/cri-stream.js';
import { CRI_IMAGE, HANDLERS, PAUSE_IMAGE, RUNTIME_TYPE, SHIM_BINARY, countShimRuns, startCriContainerd, type CriContainerd, type Handler, type Init } from '../harness/cri.js';
import { isAlive, makeTempDir, mountsUnder, readProc, removeDir, signalPid, uniqueId, waitFor, type ProcInfo } from '../harness/util.js';

const TIMEOUT = { timeout: 300_000 };
const CGROUP_ROOT = '/sys/fs/cgroup';

interface Pod {
  id: string;
  handler: Handler;
  config: Init<PodSandboxConfig>;
  logDir: string;
  /** cgroupfs parent of the pod's containers (one dir per controller on cgroup v1). */
  cgroupParent: string;
  containers: string[];
  /** Mounts under containerd's dirs and shim daemons before the pod: what a failed earlier test left is not ours. */
  mountsBefore: Set<string>;
  daemonsBefore: Set<number>;
}

/** Serve-mode shim daemons of this containerd (not containerd's short-lived start/delete runs). */
async function daemons(env: CriContainerd): Promise<ProcInfo[]> {
  return (await env.cd.shimProcesses()).filter((p) => p.argv.at(-1) !== 'start' && p.argv.at(-1) !== 'delete');
}

/** Shim daemons that appeared since the pod was created. */
async function podDaemons(env: CriContainerd, pod: Pod): Promise<ProcInfo[]> {
  return (await daemons(env)).filter((p) => !pod.daemonsBefore.has(p.pid));
}

/**
 * Whether a shim daemon process is the handler's shim: ours runs as `node <dist>/containerd-shim-ts-v2.cjs ...`,
 * or, a warm spare that took the pod, under the title `containerd-shim-ts-v2 -namespace ...`.
 */
function servedBy(handler: Handler, p: ProcInfo): boolean {
  const name = SHIM_BINARY[handler];
  return p.argv.slice(0, 3).some((a) => a === name || a.endsWith(`/${name}`) || a.endsWith(`/${name}.cjs`));
}

/** cgroup dirs at or below `path` in every hierarchy (v1: per controller; v2: one). */
async function cgroupDirs(path: string): Promise<string[]> {
  // v1 hosts often have symlinks (cpu -> cpu,cpuacct): each hierarchy once.
  const roots = existsSync(join(CGROUP_ROOT, 'cgroup.controllers'))
    ? [CGROUP_ROOT]
    : await Promise.all((await readdir(CGROUP_ROOT)).map((c) => realpath(join(CGROUP_ROOT, c))));
  const found: string[] = [];
  const walk = async (dir: string): Promise<void> => {
    if (!existsSync(dir)) return;
    found.push(dir);
    for (const e of await readdir(dir, { withFileTypes: true }).catch(() => [])) if (e.isDirectory()) await walk(join(dir, e.name));
  };
  for (const r of [...new Set(roots)]) await walk(join(r, path));
  return found;
}

/** StopPodSandbox failures that a retry fixed (printed at the end of the file). */
const transientFailures: string[] = [];

/** Pod cgroup parents not yet removed: a failed test leaves them to afterEach / after (best effort). */
const cgroupParents = new Set<string>();

async function removeCgroupTrees(): Promise<void> {
  for (const parent of [...cgroupParents]) {
    const dirs = await cgroupDirs(parent);
    for (const d of dirs.reverse()) await rmdir(d).catch(() => undefined);
    if ((await cgroupDirs(parent)).length === 0) cgroupParents.delete(parent);
  }
}

async function runPod(env: CriContainerd, handler: Handler, name: string): Promise<Pod> {
  const uid = uniqueId('uid');
  const logDir = await makeTempDir('crilogs-');
  const cgroupParent = `/shimtest-cri-${uid}`;
  cgroupParents.add(cgroupParent);
  const mountsBefore = new Set((await mountsUnder(env.cd.dir)).map((m) => m.mountPoint));
  const daemonsBefore = new Set((await daemons(env)).map((p) => p.pid));
  const config: Init<PodSandboxConfig> = {
    metadata: { name, uid, namespace: 'shimtest', attempt: 0 },
    hostname: name,
    logDirectory: logDir,
    labels: { test: name },
    linux: { cgroupParent },
  };
  const id = await env.client.runPodSandbox(config, handler);
  return { id, handler, config, logDir, cgroupParent, containers: [], mountsBefore, daemonsBefore };
}

async function runContainer(env: CriContainerd, pod: Pod, name: string, args: string[], extra: Init<ContainerConfig> = {}): Promise<string> {
  const id = await env.client.createContainer(
    pod.id,
    { metadata: { name, attempt: 0 }, image: { image: CRI_IMAGE }, command: args, logPath: `${name}.log`, ...extra },
    pod.config,
  );
  pod.containers.push(id);
  await env.client.startContainer(id);
  return id;
}

/** The kubelet's teardown: StopPodSandbox (kills what runs), RemovePodSandbox; then nothing may be left. */
async function removePod(env: CriContainerd, pod: Pod, t: TestContext): Promise<void> {
  try {
    // As the kubelet: a failed StopPodSandbox is retried (it must be idempotent). Each failure is reported.
    for (let attempt = 1; ; attempt++) {
      try {
        await env.client.stopPodSandbox(pod.id);
        break;
      } catch (err) {
        if (attempt === 3) throw err;
        const msg = `containerd ${env.cd.version} ${pod.handler}: StopPodSandbox failed (attempt ${attempt}, retried as the kubelet does): ${(err as Error).message}`;
        t.diagnostic(msg);
        transientFailures.push(msg);
      }
    }
    await env.client.removePodSandbox(pod.id);
  } finally {
    await removeDir(pod.logDir);
  }
}

/** What a removed pod must not leave behind: shim processes, mounts under containerd's dirs, cgroups. */
async function assertNothingLeft(env: CriContainerd, pod: Pod): Promise<void> {
  // The shim exits after answering Shutdown; give it the time a loaded machine needs.
  const newDaemons = () => podDaemons(env, pod);
  await waitFor(async () => (await newDaemons()).length === 0, 30_000, `shim daemons of ${pod.handler} pod gone`).catch(async (e: Error) => {
    throw new Error(`${e.message}: ${(await newDaemons()).map((p) => `${p.pid} ${p.argv.join(' ')}`).join('; ')}`);
  });
  assert.deepEqual(
    (await mountsUnder(env.cd.dir)).map((m) => m.mountPoint).filter((m) => !pod.mountsBefore.has(m)),
    [],
    'no mount left under containerd\'s dirs',
  );
  // Container cgroups are removed by the runtime; the (empty) parent is the kubelet's to remove: rmdir proves it empty.
  const dirs = await cgroupDirs(pod.cgroupParent);
  const leaves = dirs.filter((d) => !d.endsWith(pod.cgroupParent));
  assert.deepEqual(leaves, [], 'no container cgroup left under the pod parent');
  for (const d of dirs) await rmdir(d);
  cgroupParents.delete(pod.cgroupParent);
  const tasks = await listTasks(env.cd);
  assert.deepEqual(tasks.filter((t) => [pod.id, ...pod.containers].includes(t.id)), [], 'no task of the pod in containerd');
}

/** Waits until the container's CRI log (<logDir>/<name>.log) contains `text`. */
async function waitLog(pod: Pod, name: string, text: string): Promise<void> {
  await waitFor(async () => (await readFile(join(pod.logDir, `${name}.log`), 'utf8').catch(() => '')).includes(text), 30_000, `${name} to log ${text}`);
}

/** The memory limit file of a container's cgroup (v1: memory.limit_in_bytes, v2: memory.max). */
async function memoryLimit(pod: Pod, id: string): Promise<string> {
  const v2 = existsSync(join(CGROUP_ROOT, 'cgroup.controllers'));
  const file = v2 ? join(CGROUP_ROOT, pod.cgroupParent, id, 'memory.max') : join(CGROUP_ROOT, 'memory', pod.cgroupParent, id, 'memory.limit_in_bytes');
  return (await readFile(file, 'utf8')).trim();
}

/** Task pid of a container (or sandbox) id, from containerd. */
async function taskPid(env: CriContainerd, id: string): Promise<number> {
  const t = (await listTasks(env.cd)).find((x) => x.id === id);
  assert.ok(t, `task ${id} exists`);
  return t.pid;
}

/** CRI log lines: `<RFC3339Nano timestamp> <stream> <P|F> <content>`. */
interface LogEntry {
  time: string;
  stream: string;
  tag: string;
  content: string;
}
const LOG_LINE = /^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+(?:Z|[+-]\d\d:\d\d)) (stdout|stderr) ([PF]) (.*)$/s;
function parseCriLog(text: string): LogEntry[] {
  assert.ok(text.endsWith('\n'), 'log ends with a newline');
  return text
    .slice(0, -1)
    .split('\n')
    .map((line) => {
      const m = LOG_LINE.exec(line);
      assert.ok(m, `CRI log line format: ${JSON.stringify(line.slice(0, 120))}`);
      return { time: m[1]!, stream: m[2]!, tag: m[3]!, content: m[4]! };
    });
}

/**
 * Writes `input` until `want` shows in the stream's output. Resize and stdin are served by different goroutines
 * of the streaming server, so a resize is only known to have landed when the process reports it.
 */
async function untilShown(s: CriStream, input: string, want: string): Promise<void> {
  await waitFor(
    async () => {
      s.write(input);
      return s.until((x) => x.text().includes(want), 1_000, want).then(() => true, () => false);
    },
    30_000,
    `${JSON.stringify(want)} in the output`,
    0,
  ).catch((e: Error) => {
    throw new Error(`${e.message}; output: ${JSON.stringify(s.text().slice(-400))}`);
  });
}

async function shimRunNote(t: TestContext, env: CriContainerd, pod: Pod): Promise<{ start: number; delete: number }> {
  const runs = await countShimRuns(env.shimDir, SHIM_BINARY[pod.handler], [pod.id, ...pod.containers]);
  t.diagnostic(`containerd ${env.cd.version} ${pod.handler}: ${SHIM_BINARY[pod.handler]} runs for a pod of ${pod.containers.length} containers: start=${runs.start} delete=${runs.delete}`);
  return runs;
}

for (const version of selectedVersions()) {
  describe(`CRI on containerd ${version}`, () => {
    let env: CriContainerd;
    before(async () => {
      env = await startCriContainerd({ version });
    });
    afterEach(removeCgroupTrees);
    after(async () => {
      try {
        await env?.stop();
      } finally {
        await removeCgroupTrees();
        const failures = transientFailures.splice(0);
        if (failures.length > 0) process.stderr.write(`cri.test: transient failures, retried:\n  ${failures.join('\n  ')}\n`);
      }
    });

    test('CRI answers Version and knows the pre-imported images (no pull ever)', TIMEOUT, async () => {
      const v = await env.client.version();
      assert.equal(v.runtimeName, 'containerd');
      assert.equal(v.runtimeApiVersion, 'v1');
      for (const ref of [CRI_IMAGE, PAUSE_IMAGE]) assert.ok((await env.client.imageStatus(ref))?.repoTags.includes(ref), ref);
    });

    for (const handler of HANDLERS) {
      test(`${handler}: RunPodSandbox gives a ready pod with the loopback network; Stop/Remove leave no shim, mount or cgroup`, TIMEOUT, async (t) => {
        const pod = await runPod(env, handler, uniqueId('sb'));
        try {
          const st = await env.client.podSandboxStatus(pod.id, true);
          assert.equal(st.status?.state, PodSandboxState.SANDBOX_READY);
          assert.equal(st.status?.runtimeHandler, handler);
          assert.equal(st.status?.network?.ip, '192.0.2.2');
          const pausePid = await taskPid(env, pod.id);
          // `runc start` returns when runc init was told to exec: the new program can lag behind on a loaded machine.
          const pause = await waitFor(async () => {
            const p = await readProc(pausePid);
            return p?.argv[0] === 'runc' ? undefined : p;
          }, 30_000, 'the pause process to exec');
          assert.deepEqual(pause.argv, ['sleep', '2147483647'], 'the pause image runs');
          const [d, ...more] = await podDaemons(env, pod);
          assert.ok(d, 'a shim daemon serves the sandbox');
          assert.equal(more.length, 0);
          assert.ok(servedBy(handler, d), `the ${handler} shim serves the pod: ${d.argv.join(' ')}`);
          assert.equal(pause.ppid, d.pid, 'the pause process is the shim daemon\'s child');
          const cgroups = await cgroupDirs(pod.cgroupParent);
          assert.ok(cgroups.some((c) => c.endsWith(`${pod.cgroupParent}/${pod.id}`)), `sandbox cgroup under the pod parent: ${cgroups.join(', ')}`);
          const inCgroup = await readFile(`/proc/${pausePid}/cgroup`, 'utf8');
          assert.ok(inCgroup.includes(`${pod.cgroupParent}/${pod.id}`), 'the pause process is in it');
          const info = JSON.parse(st.info.info ?? '{}') as { runtimeType?: string; pid?: number };
          assert.equal(info.runtimeType, RUNTIME_TYPE[handler], 'verbose status names the runtime');
          assert.equal(info.pid, pausePid);

          await env.client.stopPodSandbox(pod.id);
          assert.equal((await env.client.podSandboxStatus(pod.id)).status?.state, PodSandboxState.SANDBOX_NOTREADY);
          assert.ok(!(await isAlive(pausePid)), 'the pause process is gone after StopPodSandbox');
          // removePod stops again: StopPodSandbox must be idempotent (the kubelet calls it more than once).
        } finally {
          await removePod(env, pod, t);
        }
        await assertNothingLeft(env, pod);
        await shimRunNote(t, env, pod);
      });

      test(`${handler}: three containers in one pod share the pod's one shim daemon`, TIMEOUT, async (t) => {
        const pod = await runPod(env, handler, uniqueId('three'));
        try {
          const ids: string[] = [];
          for (const n of ['a', 'b', 'c']) ids.push(await runContainer(env, pod, n, ['sleep', '600']));
          for (const id of ids) assert.equal((await env.client.containerStatus(id)).state, ContainerState.CONTAINER_RUNNING);
          const ds = await podDaemons(env, pod);
          assert.equal(ds.length, 1, `one shim daemon for the pod, saw: ${ds.map((p) => `${p.pid} ${p.argv.join(' ')}`).join('; ')}`);
          assert.ok(servedBy(handler, ds[0]!), `the ${handler} shim: ${ds[0]!.argv.join(' ')}`);
          for (const id of [pod.id, ...ids]) {
            const p = await readProc(await taskPid(env, id));
            assert.equal(p?.ppid, ds[0]!.pid, `task ${id} is a child of the pod's daemon`);
          }
          const listed = await env.client.listContainers(pod.id);
          assert.deepEqual(listed.map((c) => c.id).sort(), [...ids].sort());
          await env.client.stopPodSandbox(pod.id);
          for (const id of ids) {
            const c = await env.client.containerStatus(id);
            assert.equal(c.state, ContainerState.CONTAINER_EXITED, `${id} exited with the pod`);
            assert.equal(c.exitCode, 137, 'killed');
          }
        } finally {
          await removePod(env, pod, t);
        }
        await assertNothingLeft(env, pod);
        const runs = await shimRunNote(t, env, pod);
        // containerd 1.x runs the binary's `start` and `delete` for the sandbox and each container. containerd
        // 2.x does so only for the sandbox with a task API v3 shim (the reference, and ours, which answers 2.x
        // v3): the containers go straight to the sandbox's shim.
        if (version !== '2.1') assert.deepEqual(runs, { start: 4, delete: 4 }, `containerd ${version} runs start/delete per task`);
        else assert.deepEqual(runs, { start: 1, delete: 1 }, `containerd 2.1 with a task API v3 shim (${handler}): once per pod`);
      });

      test(`${handler}: ExecSync returns exit code, stdout and stderr, and enforces its timeout`, TIMEOUT, async (t) => {
        const pod = await runPod(env, handler, uniqueId('exec'));
        try {
          const id = await runContainer(env, pod, 'main', ['sleep', '600']);
          const r = await env.client.execSync(id, ['sh', '-c', 'echo to-stdout; echo to-stderr >&2; exit 3']);
          assert.equal(r.exitCode, 3);
          assert.equal(r.stdout.toString(), 'to-stdout\n');
          assert.equal(r.stderr.toString(), 'to-stderr\n');
          const ok = await env.client.execSync(id, ['true']);
          assert.equal(ok.exitCode, 0);
          assert.equal(ok.stdout.length + ok.stderr.length, 0);
          const big = await env.client.execSync(id, ['sh', '-c', 'head -c 300000 /dev/zero | tr "\\0" x']);
          assert.equal(big.stdout.length, 300000);

          const began = Date.now();
          await assert.rejects(env.client.execSync(id, ['sleep', '120'], 2), (err: Error) => /timeout|deadline/i.test(err.message));
          const took = Date.now() - began;
          assert.ok(took >= 1_900 && took < 60_000, `timed out after ${took} ms`);
          // The timed-out process is killed: the container has only its own sleep left.
          await waitFor(
            async () => !(await env.client.execSync(id, ['ps', '-o', 'args'])).stdout.toString().includes('sleep 120'),
            30_000,
            'the timed-out exec process to be killed',
          );
        } finally {
          await removePod(env, pod, t);
        }
        await assertNothingLeft(env, pod);
      });

      test(`${handler}: container logs in the CRI format: timestamps, streams, full and partial lines`, TIMEOUT, async (t) => {
        const pod = await runPod(env, handler, uniqueId('logs'));
        try {
          // A 20000-byte line is longer than CRI's 16 KiB max line: split into P entries then an F.
          const script = 'echo out-1; echo err-1 >&2; head -c 20000 /dev/zero | tr "\\0" y; echo; printf no-newline-at-end';
          const id = await runContainer(env, pod, 'logger', ['sh', '-c', script]);
          const st = await waitFor(async () => {
            const s = await env.client.containerStatus(id);
            return s.state === ContainerState.CONTAINER_EXITED ? s : undefined;
          }, 60_000, 'logger container to exit');
          assert.equal(st.exitCode, 0);
          assert.equal(st.logPath, join(pod.logDir, 'logger.log'));
          // The log is complete once CRI has drained both pipes (it records the exit after that).
          const entries = parseCriLog(await readFile(st.logPath, 'utf8'));
          const out = entries.filter((e) => e.stream === 'stdout');
          const err = entries.filter((e) => e.stream === 'stderr');
          assert.deepEqual(err.map((e) => [e.tag, e.content]), [['F', 'err-1']]);
          assert.deepEqual(out[0] && [out[0].tag, out[0].content], ['F', 'out-1']);
          const long = out.slice(1, -1);
          assert.ok(long.length >= 2, 'the long line is split');
          assert.deepEqual(long.map((e) => e.tag), [...long.slice(1).map(() => 'P'), 'F']);
          assert.equal(long.map((e) => e.content).join(''), 'y'.repeat(20000));
          assert.deepEqual(out.at(-1) && [out.at(-1)!.tag, out.at(-1)!.content], ['P', 'no-newline-at-end']);
          for (const e of entries) assert.ok(!Number.isNaN(Date.parse(e.time)), `timestamp ${e.time}`);
          const times = entries.map((e) => Date.parse(e.time));
          assert.ok(Math.abs(times[0]! - Date.now()) < 300_000, 'timestamps are now');
        } finally {
          await removePod(env, pod, t);
        }
        await assertNothingLeft(env, pod);
      });

      test(`${handler}: StopContainer: SIGTERM first, SIGKILL after the grace period for a process that ignores it`, TIMEOUT, async (t) => {
        const pod = await runPod(env, handler, uniqueId('stop'));
        try {
          const polite = await runContainer(env, pod, 'polite', ['sh', '-c', 'trap "exit 0" TERM; echo ready; while :; do sleep 0.2; done']);
          const stubborn = await runContainer(env, pod, 'stubborn', ['sh', '-c', 'trap "" TERM; echo ready; while :; do sleep 0.2; done']);
          for (const name of ['polite', 'stubborn']) await waitLog(pod, name, 'ready');
          let began = Date.now();
          await env.client.stopContainer(polite, 30);
          const politeTook = Date.now() - began;
          const p = await env.client.containerStatus(polite);
          assert.equal(p.state, ContainerState.CONTAINER_EXITED);
          assert.equal(p.exitCode, 0, 'exited by its TERM trap');
          assert.ok(politeTook < 25_000, `polite container stopped in ${politeTook} ms, before the grace period`);

          began = Date.now();
          await env.client.stopContainer(stubborn, 3);
          const stubbornTook = Date.now() - began;
          const s = await env.client.containerStatus(stubborn);
          assert.equal(s.state, ContainerState.CONTAINER_EXITED);
          assert.equal(s.exitCode, 137, 'killed by SIGKILL');
          assert.ok(stubbornTook >= 2_500, `waited the grace period (${stubbornTook} ms)`);
          assert.ok(stubbornTook < 60_000, `then killed (${stubbornTook} ms)`);
          for (const id of [polite, stubborn]) await env.client.removeContainer(id);
          assert.deepEqual(await env.client.listContainers(pod.id), []);
        } finally {
          await removePod(env, pod, t);
        }
        await assertNothingLeft(env, pod);
      });

      test(`${handler}: a container over its memory limit is reported as OOMKilled`, TIMEOUT, async (t) => {
        const pod = await runPod(env, handler, uniqueId('oom'));
        try {
          // tail keeps the current line in memory, and /dev/zero has no newline.
          const hog = await runContainer(env, pod, 'hog', ['tail', '/dev/zero'], { linux: { resources: { memoryLimitInBytes: BigInt(32 * 1024 * 1024) } } });
          const bystander = await runContainer(env, pod, 'bystander', ['sleep', '600']);
          const st = await waitFor(async () => {
            const s = await env.client.containerStatus(hog);
            return s.state === ContainerState.CONTAINER_EXITED ? s : undefined;
          }, 120_000, 'the hog to be killed');
          assert.equal(st.reason, 'OOMKilled');
          assert.equal(st.exitCode, 137);
          const other = await env.client.containerStatus(bystander);
          assert.equal(other.state, ContainerState.CONTAINER_RUNNING);
          assert.equal(other.reason, '');
        } finally {
          await removePod(env, pod, t);
        }
        await assertNothingLeft(env, pod);
      });

      test(`${handler}: a container that exits while containerd is down is reported EXITED after the restart; the pod still works`, TIMEOUT, async (t) => {
        const pod = await runPod(env, handler, uniqueId('rst'));
        try {
          const leaving = await runContainer(env, pod, 'leaving', ['sh', '-c', 'trap "exit 7" TERM; echo ready; while :; do sleep 0.2; done']);
          const staying = await runContainer(env, pod, 'staying', ['sleep', '600']);
          await waitLog(pod, 'leaving', 'ready');
          const pid = await taskPid(env, leaving);
          const [daemon] = await podDaemons(env, pod);
          assert.ok(daemon);
          await env.cd.kill('SIGKILL');
          signalPid(pid, 'SIGTERM');
          await waitFor(async () => !(await isAlive(pid)), 30_000, 'the container process to exit while containerd is down');
          await env.cd.restart();
          await waitFor(async () => (await env.client.status()).status?.conditions.every((c) => c.status) === true, 60_000, 'CRI ready after restart');
          const st = await waitFor(async () => {
            const s = await env.client.containerStatus(leaving);
            return s.state === ContainerState.CONTAINER_EXITED ? s : undefined;
          }, 60_000, 'the exit seen after the restart');
          if (version === '1.6') {
            assert.equal(st.exitCode, 7, 'the exit status the shim kept');
          } else {
            // containerd >= 1.7 deletes, at start, a non-sandbox task whose shim lists no pids ("cleaning leaked
            // shim process", containerd#6860): CRI then finds no task and reports an unknown exit. Same with runc.
            assert.equal(st.exitCode, 255);
            assert.equal(st.reason, 'Unknown');
          }
          assert.equal((await env.client.containerStatus(staying)).state, ContainerState.CONTAINER_RUNNING);
          const r = await env.client.execSync(staying, ['echo', 'still-here']);
          assert.equal(r.stdout.toString(), 'still-here\n');
          assert.ok(await isAlive(daemon.pid), 'the same shim daemon serves the pod');
          assert.deepEqual((await podDaemons(env, pod)).map((d) => d.pid), [daemon.pid]);
          const third = await runContainer(env, pod, 'after', ['sleep', '600']);
          assert.equal((await env.client.containerStatus(third)).state, ContainerState.CONTAINER_RUNNING);
        } finally {
          await removePod(env, pod, t);
        }
        await assertNothingLeft(env, pod);
      });

      test(`${handler}: Exec through the streaming server: tty, resize, exit code; without tty: stdout and stderr apart`, TIMEOUT, async (t) => {
        const pod = await runPod(env, handler, uniqueId('sx'));
        try {
          const id = await runContainer(env, pod, 'main', ['sleep', '600']);
          const plain = await CriStream.connect(await env.client.exec({ containerId: id, cmd: ['sh', '-c', 'echo out; echo err >&2; exit 3'], stdout: true, stderr: true }));
          const plainStatus = await plain.status();
          assert.equal(exitCodeOf(plainStatus), 3, JSON.stringify(plainStatus));
          assert.equal(plain.text(STDOUT), 'out\n');
          assert.equal(plain.text(STDERR), 'err\n');

          const script = 'while read l; do [ "$l" = q ] && exit 5; stty size; done';
          const url = await env.client.exec({ containerId: id, cmd: ['sh', '-c', script], tty: true, stdin: true, stdout: true, stderr: false });
          const s = await CriStream.connect(url);
          try {
            s.resize(111, 33);
            await untilShown(s, '\n', '33 111');
            s.resize(120, 44);
            await untilShown(s, '\n', '44 120');
            assert.ok(s.text().includes('\r\n'), 'a terminal (onlcr) wrote the output');
            s.write('q\n');
            const st = await s.status();
            assert.equal(exitCodeOf(st), 5, JSON.stringify(st));
          } finally {
            s.close();
          }
        } finally {
          await removePod(env, pod, t);
        }
        await assertNothingLeft(env, pod);
      });

      test(`${handler}: Attach to a tty container: resize, input, detach and attach again, exit code`, TIMEOUT, async (t) => {
        const pod = await runPod(env, handler, uniqueId('sa'));
        try {
          const id = await runContainer(env, pod, 'shell', ['sh'], { tty: true, stdin: true });
          const attach = () => env.client.attach({ containerId: id, stdin: true, tty: true, stdout: true, stderr: false });
          const first = await CriStream.connect(await attach());
          try {
            first.resize(90, 25);
            await untilShown(first, 'stty size\n', '25 90');
            first.write('echo attached-$((6*7))\n');
            await first.until((x) => x.text().includes('attached-42'), 30_000, 'the shell to answer');
          } finally {
            first.close();
          }
          await first.closed;
          const second = await CriStream.connect(await attach());
          try {
            await untilShown(second, 'echo again-$((2+3))\n', 'again-5');
            second.write('exit 3\n');
            await second.status();
          } finally {
            second.close();
          }
          const st = await waitFor(async () => {
            const c = await env.client.containerStatus(id);
            return c.state === ContainerState.CONTAINER_EXITED ? c : undefined;
          }, 60_000, 'the shell to exit');
          assert.equal(st.exitCode, 3);
        } finally {
          await removePod(env, pod, t);
        }
        await assertNothingLeft(env, pod);
      });

      test(`${handler}: ContainerStats reports cpu and memory; UpdateContainerResources changes the memory limit`, TIMEOUT, async (t) => {
        const pod = await runPod(env, handler, uniqueId('res'));
        try {
          const MiB = 1024 * 1024;
          const spin = 'i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done; echo spun; sleep 600';
          const id = await runContainer(env, pod, 'busy', ['sh', '-c', spin], { linux: { resources: { memoryLimitInBytes: BigInt(128 * MiB) } } });
          await waitLog(pod, 'busy', 'spun');
          const stats = await env.client.containerStats(id);
          assert.equal(stats.attributes?.id, id);
          assert.ok((stats.cpu?.usageCoreNanoSeconds?.value ?? 0n) > 0n, `cpu usage: ${stats.cpu?.usageCoreNanoSeconds?.value}`);
          assert.ok((stats.memory?.usageBytes?.value ?? 0n) > 0n, `memory usage: ${stats.memory?.usageBytes?.value}`);
          assert.equal(await memoryLimit(pod, id), String(128 * MiB));
          await env.client.updateContainerResources(id, { memoryLimitInBytes: BigInt(64 * MiB) });
          assert.equal(await memoryLimit(pod, id), String(64 * MiB));
          assert.equal((await env.client.execSync(id, ['echo', 'fine'])).stdout.toString(), 'fine\n');
        } finally {
          await removePod(env, pod, t);
        }
        await assertNothingLeft(env, pod);
      });
    }
  });
}
