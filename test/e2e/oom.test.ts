/**
 * OOM (shim-v2-protocol.md §9): a container hitting its memory limit raises /tasks/oom for that container and
 * no other, Stats count the kill, and the killed process's exit status is 137 — ours and the reference.
 * cgroup v1 (memory.oom_control through cgroup.event_control) or v2 (memory.events), whichever holds the
 * memory controller on this host; the stats field checked follows. The hog is `tail /dev/zero`: tail keeps
 * the last "line" of a stream without newlines, so it grows until the limit.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { RUNTIMES, listTasks, selectedVersions, shimBinDir, startContainerd, waitTaskStatus, type Containerd, type Runtime } from '../harness/containerd.js';
import { DEFAULT_IMAGE, importImage } from '../harness/image.js';
import { sleep, uniqueId, waitFor } from '../harness/util.js';
import { watchEventsReady, type EventStream } from '../harness/events.js';

const TIMEOUT = { timeout: 180_000 };
const IMG = DEFAULT_IMAGE;
const LIMIT = String(32 * 1024 * 1024);
const short = (rt: Runtime) => (rt === 'io.containerd.ts.v2' ? 'ts' : 'runc');
/** The memory controller is on cgroup v2 only on a unified host (no v1 memory hierarchy mounted). */
const MEMORY_V2 = !existsSync('/sys/fs/cgroup/memory') && existsSync('/sys/fs/cgroup/cgroup.controllers');

async function removeTask(cd: Containerd, id: string): Promise<void> {
  await cd.ctr(['task', 'kill', '-s', 'SIGKILL', id], { allowFail: true });
  await waitFor(async () => !(await listTasks(cd)).some((t) => t.id === id && t.status !== 'STOPPED'), 15_000, `${id} stopped`).catch(() => undefined);
  await cd.ctr(['task', 'rm', '-f', id], { allowFail: true });
  await cd.ctr(['container', 'rm', id], { allowFail: true });
}

/** The kernel's OOM-kill counter for the task, from `ctr task metrics --format json` (v1 or v2 metrics). */
async function oomKills(cd: Containerd, id: string): Promise<{ kills: number; raw: string }> {
  const r = await cd.ctr(['task', 'metrics', '--format', 'json', id], { allowFail: true });
  if (r.code !== 0) return { kills: -1, raw: r.stderr.trim() };
  const m = JSON.parse(r.stdout) as { memory_oom_control?: { oom_kill?: number }; memory_events?: { oom_kill?: number } };
  const kills = MEMORY_V2 ? m.memory_events?.oom_kill : m.memory_oom_control?.oom_kill;
  return { kills: kills ?? 0, raw: JSON.stringify(MEMORY_V2 ? m.memory_events : m.memory_oom_control) };
}

function topicLines(events: EventStream, topic: string, id: string): string[] {
  return events.lines().filter((l) => l.includes(` ${topic} `) && l.includes(`"${id}"`));
}

for (const version of selectedVersions()) {
  describe(`OOM on containerd ${version} (memory controller on cgroup v${MEMORY_V2 ? 2 : 1})`, () => {
    let cd: Containerd;
    before(async () => {
      cd = await startContainerd({ version, shimDirs: [shimBinDir()] });
      await importImage(cd);
    });
    after(async () => {
      await cd?.stop();
    });

    for (const rt of RUNTIMES) {
      test(`${short(rt)}: an exec hitting the limit is killed (137), /tasks/oom names only its container, Stats count the kill`, TIMEOUT, async (t) => {
        const events = await watchEventsReady(cd);
        const id = uniqueId(`oom-${short(rt)}`);
        const bystander = uniqueId(`by-${short(rt)}`);
        try {
          await cd.ctr(['run', '-d', '--runtime', rt, '--memory-limit', LIMIT, IMG, id, 'sleep', '600']);
          await cd.ctr(['run', '-d', '--runtime', rt, '--memory-limit', LIMIT, IMG, bystander, 'sleep', '600']);
          await waitTaskStatus(cd, id, 'RUNNING');
          await waitTaskStatus(cd, bystander, 'RUNNING');
          const before = await oomKills(cd, id);
          assert.equal(before.kills, 0, before.raw);
          const hog = await cd.ctr(['task', 'exec', '--exec-id', 'hog', id, 'tail', '/dev/zero'], { allowFail: true, timeoutMs: 120_000 });
          assert.equal(hog.code, 137, `exec exit status: ${JSON.stringify(hog)}`);
          await waitFor(() => topicLines(events, '/tasks/oom', id).length > 0, 20_000, '/tasks/oom');
          const after = await waitFor(async () => {
            const k = await oomKills(cd, id);
            return k.kills >= 1 ? k : undefined;
          }, 10_000, 'oom_kill counted in Stats');
          assert.equal((await listTasks(cd)).find((x) => x.id === id)?.status, 'RUNNING', 'the init survives its exec being killed');
          await sleep(500);
          assert.deepEqual(topicLines(events, '/tasks/oom', bystander), [], 'no OOM event for the other container');
          const bystanderStats = await oomKills(cd, bystander);
          assert.equal(bystanderStats.kills, 0, bystanderStats.raw);
          const exits = topicLines(events, '/tasks/exit', id).filter((l) => l.includes('"hog"'));
          assert.equal(exits.length, 1);
          assert.match(exits[0]!, /"exit_status":137/);
          t.diagnostic(`${short(rt)}: ${topicLines(events, '/tasks/oom', id).length} /tasks/oom event(s); stats ${after.raw}`);
        } finally {
          events.stop();
          await Promise.all([removeTask(cd, id), removeTask(cd, bystander)]);
        }
      });

      test(`${short(rt)}: an init hitting the limit exits 137 with /tasks/oom before /tasks/exit; Stats still readable until delete`, TIMEOUT, async (t) => {
        const events = await watchEventsReady(cd);
        const id = uniqueId(`oomi-${short(rt)}`);
        try {
          await sleep(300);
          await cd.ctr(['run', '-d', '--runtime', rt, '--memory-limit', LIMIT, IMG, id, 'tail', '/dev/zero']);
          await waitTaskStatus(cd, id, 'STOPPED', 60_000);
          const exit = await waitFor(() => topicLines(events, '/tasks/exit', id)[0], 20_000, '/tasks/exit');
          assert.match(exit, /"exit_status":137/);
          const oom = await waitFor(() => topicLines(events, '/tasks/oom', id)[0], 20_000, '/tasks/oom');
          const lines = events.lines();
          if (short(rt) === 'ts' || lines.indexOf(oom) < lines.indexOf(exit)) {
            assert.ok(lines.indexOf(oom) < lines.indexOf(exit), 'the OOM event comes before the exit');
          } else {
            // The reference publishes its OOM events from a separate watcher loop, not ordered with the exit:
            // seen once on 2.1 in a full run under load. Ours flushes the OOM watcher before TaskExit.
            t.diagnostic('reference: /tasks/oom after /tasks/exit');
          }
          const stats = await oomKills(cd, id);
          t.diagnostic(`${short(rt)}: stats of the stopped task: ${stats.kills >= 0 ? stats.raw : `unavailable (${stats.raw})`}`);
          if (stats.kills >= 0) assert.ok(stats.kills >= 1, stats.raw);
          const rm = await cd.ctr(['task', 'rm', id]);
          assert.match(rm.stdout + rm.stderr, /137|^$/);
        } finally {
          events.stop();
          await removeTask(cd, id);
        }
      });
    }
  });
}
