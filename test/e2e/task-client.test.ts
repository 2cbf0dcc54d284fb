/**
 * examples/task-client (the operator's `ctr shim`-like tool, run as the built dist/examples/task-client.js)
 * against the reference shim and ours, each serving a real container, on every selected containerd version.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { RUNTIMES, listTasks, selectedVersions, shimBinDir, startContainerd, waitTaskStatus, type Containerd, type Runtime } from '../harness/containerd.js';
import { DEFAULT_IMAGE, importImage } from '../harness/image.js';
import { TASK_SERVICE_V2, TASK_SERVICE_V3, taskServiceFor } from '../harness/task-service.js';
import { exec, isAlive, repoRoot, uniqueId, waitFor, type ExecResult } from '../harness/util.js';

const IMG = DEFAULT_IMAGE;
const TOOL = join(repoRoot(), 'dist', 'examples', 'task-client.js');
const short = (rt: Runtime) => (rt === 'io.containerd.ts.v2' ? 'ts' : 'runc');

async function cleanup(cd: Containerd, id: string): Promise<void> {
  await cd.ctr(['task', 'kill', '-s', 'SIGKILL', id], { allowFail: true });
  await waitFor(async () => !(await listTasks(cd)).some((t) => t.id === id && t.status === 'RUNNING'), 20_000, `${id} stopped`).catch(() => undefined);
  await cd.ctr(['task', 'rm', '-f', id], { allowFail: true });
  await cd.ctr(['container', 'rm', id], { allowFail: true });
}

interface ToolError {
  error: { code: number | null; kind: string; message: string };
}

for (const version of selectedVersions()) {
  describe(`task-client against both shims on containerd ${version}`, () => {
    let cd: Containerd;
    before(async () => {
      assert.ok(existsSync(TOOL), `${TOOL} is missing: run \`npm run build\` first`);
      cd = await startContainerd({ version, shimDirs: [shimBinDir()] });
      await importImage(cd);
    });
    after(async () => {
      await cd?.stop();
    });

    /** Runs the tool against the shim of `id`; the exit code is the caller's to check. */
    const tool = (id: string, args: string[], extra: string[] = []): Promise<ExecResult> =>
      exec(process.execPath, [TOOL, '--address', `unix://${cd.shimSocketPath(cd.namespace, id)}`, '--namespace', cd.namespace, ...extra, ...args], {
        allowFail: true,
        timeoutMs: 60_000,
      });
    const json = <T>(r: ExecResult): T => {
      assert.equal(r.code, 0, `task-client failed: ${r.stderr}`);
      return JSON.parse(r.stdout) as T;
    };
    const toolError = (r: ExecResult): ToolError['error'] => {
      assert.equal(r.code, 1, `expected exit 1, got ${r.code}: ${r.stdout}${r.stderr}`);
      assert.equal(r.stdout, '');
      return (JSON.parse(r.stderr) as ToolError).error;
    };

    for (const rt of RUNTIMES) {
      test(`${short(rt)}: connect, state, pids, stats, shutdown (kept), kill 9 + wait (137), errors`, { timeout: 240_000 }, async (t) => {
        const id = uniqueId(`tc-${short(rt)}`);
        await cd.ctr(['run', '-d', '--runtime', rt, IMG, id, 'sleep', '600'], { timeoutMs: 120_000 });
        try {
          const listed = await waitTaskStatus(cd, id, 'RUNNING');
          const idArgs = ['--id', id];

          const conn = json<{ shimPid: number; taskPid: number; version: string }>(await tool(id, [...idArgs, 'connect']));
          assert.equal(conn.taskPid, listed.pid);
          assert.ok(conn.shimPid > 0 && (await isAlive(conn.shimPid)));
          assert.equal(conn.version, '');

          const state = json<{ id: string; pid: number; status: string; exitStatus: number; exitedAt: string }>(await tool(id, [...idArgs, 'state']));
          assert.equal(state.id, id);
          assert.equal(state.pid, listed.pid);
          assert.equal(state.status, 'RUNNING');
          assert.equal(state.exitStatus, 0);
          assert.equal(state.exitedAt, '0001-01-01T00:00:00Z');

          const pids = json<{ processes: { pid: number }[] }>(await tool(id, [...idArgs, 'pids']));
          assert.deepEqual(pids.processes.map((p) => p.pid), [listed.pid]);

          const stats = json<{ stats: { typeUrl: string; message: { pids?: { current?: number }; memory?: { usage?: { usage?: number } } } } }>(
            await tool(id, [...idArgs, 'stats']),
          );
          assert.equal(stats.stats.typeUrl, 'io.containerd.cgroups.v1.Metrics', JSON.stringify(stats).slice(0, 300));
          assert.equal(stats.stats.message.pids?.current, 1);
          assert.ok((stats.stats.message.memory?.usage?.usage ?? 0) > 0, 'memory usage in the metrics');

          // Shutdown while the container exists answers Empty and the shim stays.
          assert.deepEqual(json(await tool(id, [...idArgs, 'shutdown'])), {});
          assert.ok(await isAlive(conn.shimPid), 'the shim exited on Shutdown with a live container');
          assert.equal((await listTasks(cd)).find((x) => x.id === id)?.status, 'RUNNING');

          // Errors: JSON on stderr with the wire code, exit status 1.
          const unknownId = toolError(await tool(id, ['--id', 'nope', 'state']));
          assert.equal(unknownId.code, 5);
          assert.equal(unknownId.kind, 'NotFound');
          assert.equal(unknownId.message, 'container not created');
          const unknownExec = toolError(await tool(id, [...idArgs, '--exec-id', 'nope', 'state']));
          assert.equal(unknownExec.code, 5);
          t.diagnostic(`unknown exec: ${JSON.stringify(unknownExec)}`);
          const unknownService = toolError(await tool(id, [...idArgs, '--service', 'foo.Bar', 'state']));
          assert.deepEqual(unknownService, { code: 12, kind: 'NotImplemented', message: 'service foo.Bar' });
          // The service containerd itself uses for this shim, named explicitly, works too (v3 for the 2.x reference).
          const service = await taskServiceFor(cd, id);
          t.diagnostic(`task service: ${service}`);
          assert.equal(json<{ pid: number }>(await tool(id, [...idArgs, '--service', service, 'state'])).pid, listed.pid);
          if (service === TASK_SERVICE_V3 && rt === 'io.containerd.runc.v2') {
            // The 2.x reference serves only v3: an explicit v2 is not retried. (Ours serves both, one binary
            // for containerd 1.6 to 2.x: see below.)
            const v2 = toolError(await tool(id, [...idArgs, '--service', TASK_SERVICE_V2, 'state']));
            assert.deepEqual(v2, { code: 12, kind: 'NotImplemented', message: `service ${TASK_SERVICE_V2}` });
          }
          if (rt === 'io.containerd.ts.v2') {
            // Ours answers v2 and v3 whichever containerd started it (2.x is told v3, 1.6/1.7 v2).
            for (const s of [TASK_SERVICE_V2, TASK_SERVICE_V3]) {
              assert.equal(json<{ pid: number }>(await tool(id, [...idArgs, '--service', s, 'state'])).pid, listed.pid, s);
            }
            if (version === '2.1') assert.equal(service, TASK_SERVICE_V3, 'containerd 2.1 uses v3 with ours');
          }

          // wait blocks until the kill; started first so it really waits.
          const waiting = tool(id, [...idArgs, 'wait']);
          const killed = json(await tool(id, [...idArgs, 'kill', '9']));
          assert.deepEqual(killed, {});
          const waited = json<{ exitStatus: number; exitedAt: string }>(await waiting);
          assert.equal(waited.exitStatus, 137);
          assert.ok(Date.parse(waited.exitedAt) > Date.now() - 10 * 60_000, `exitedAt ${waited.exitedAt}`);
          await waitTaskStatus(cd, id, 'STOPPED');
          const stopped = json<{ status: string; exitStatus: number; exitedAt: string }>(await tool(id, [...idArgs, 'state']));
          assert.equal(stopped.status, 'STOPPED');
          assert.equal(stopped.exitStatus, 137);
          assert.equal(stopped.exitedAt, waited.exitedAt);
          // wait on an exited process returns at once; kill by name of a dead process is NotFound.
          assert.equal(json<{ exitStatus: number }>(await tool(id, [...idArgs, 'wait'])).exitStatus, 137);
          const killDead = toolError(await tool(id, [...idArgs, 'kill', 'SIGTERM']));
          assert.equal(killDead.code, 5, killDead.message);
        } finally {
          await cleanup(cd, id);
        }
      });
    }

    test('usage errors and a dead address exit 1 with a message', { timeout: 60_000 }, async () => {
      const noSocket = await exec(process.execPath, [TOOL, '--address', 'unix:///nonexistent/shim.sock', '--id', 'x', 'connect'], { allowFail: true });
      assert.equal(noSocket.code, 1);
      const dial = (JSON.parse(noSocket.stderr) as ToolError).error;
      assert.equal(dial.kind, 'Unavailable');
      assert.match(dial.message, /^ttrpc: dial unix \/nonexistent\/shim\.sock: .*ENOENT/);
      const noCommand = await exec(process.execPath, [TOOL, '--address', 'unix:///x'], { allowFail: true });
      assert.equal(noCommand.code, 1);
      assert.match(noCommand.stderr, /a command are required/);
      const help = await exec(process.execPath, [TOOL, '--help'], { allowFail: true });
      assert.equal(help.code, 0);
      assert.match(help.stdout, /^usage: task-client/);
    });
  });
}
