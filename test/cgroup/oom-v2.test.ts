// cgroup v2 OOM watcher. This host's memory controller is bound to v1, so no cgroup2 here can have
// memory.events: the counting logic runs against plain files (fs.watch = inotify IN_MODIFY either way), and the
// kernfs side is checked by bind-mounting a real cgroup2 `cgroup.events` into the watched directory.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm, rmdir, writeFile, unlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { promisify } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';
import pino from 'pino';
import { watchOomV2 } from '../../shim/platform/oom-v2.js';

const run = promisify(execFile);

function capture() {
  const lines: string[] = [];
  return { lines, logger: pino({ level: 'debug' }, { write: (l: string) => void lines.push(l) }) };
}

async function waitFor(cond: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

const events = (oomKill: number, high = 0) => `low 0\nhigh ${high}\nmax 0\noom ${oomKill}\noom_kill ${oomKill}\n`;

async function fixture(oomKill = 0): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'oom-v2-'));
  await writeFile(join(dir, 'memory.events'), events(oomKill));
  await writeFile(join(dir, 'cgroup.events'), 'populated 1\nfrozen 0\n');
  return dir;
}

test('v2: fires once per oom_kill increase, not for other counters, not for old kills', { timeout: 30_000 }, async () => {
  const dir = await fixture(5); // kills before arming are not re-reported
  const { logger } = capture();
  let count = 0;
  const stop = await watchOomV2(dir, () => count++, logger);
  try {
    await sleep(200);
    assert.equal(count, 0, 'baseline is the count at arming time');
    await writeFile(join(dir, 'memory.events'), events(6));
    await waitFor(() => count === 1, 10_000, 'first OOM');
    await writeFile(join(dir, 'memory.events'), events(6, 42)); // memory.high events only
    await sleep(300);
    assert.equal(count, 1, 'no OOM for other counters');
    await writeFile(join(dir, 'memory.events'), events(9)); // three kills seen in one read → one event
    await waitFor(() => count === 2, 10_000, 'second OOM');
    await sleep(300);
    assert.equal(count, 2);
  } finally {
    stop();
    await rm(dir, { recursive: true, force: true });
  }
});

test('v2: stop() ends notifications; a throwing listener does not kill the watcher', { timeout: 30_000 }, async () => {
  const dir = await fixture();
  const { logger, lines } = capture();
  let count = 0;
  const stop = await watchOomV2(dir, () => {
    count++;
    throw new Error('listener bug');
  }, logger);
  try {
    await writeFile(join(dir, 'memory.events'), events(1));
    await waitFor(() => count === 1, 10_000, 'first OOM');
    await writeFile(join(dir, 'memory.events'), events(2));
    await waitFor(() => count === 2, 10_000, 'second OOM after a throwing listener');
    assert.ok(lines.some((l) => l.includes('OOM listener threw')));
    stop();
    stop();
    await writeFile(join(dir, 'memory.events'), events(3));
    await sleep(500);
    assert.equal(count, 2, 'nothing after stop');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('v2: the watcher ends when the cgroup empties or disappears', { timeout: 30_000 }, async () => {
  const dir = await fixture();
  const { logger, lines } = capture();
  let count = 0;
  await watchOomV2(dir, () => count++, logger);
  await writeFile(join(dir, 'cgroup.events'), 'populated 0\nfrozen 0\n');
  await waitFor(() => lines.some((l) => l.includes('cgroup empty')), 10_000, 'stop on empty');
  await writeFile(join(dir, 'memory.events'), events(1));
  await sleep(300);
  assert.equal(count, 0, 'stopped watchers report nothing');

  await writeFile(join(dir, 'cgroup.events'), 'populated 1\nfrozen 0\n');
  const second = capture();
  await watchOomV2(dir, () => count++, second.logger);
  await unlink(join(dir, 'memory.events'));
  await waitFor(() => second.lines.some((l) => l.includes('cgroup removed')), 10_000, 'stop on removal');
  assert.equal(count, 0);
  await rm(dir, { recursive: true, force: true });
});

test('v2: arming fails without memory.events (memory controller not enabled)', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'oom-v2-'));
  try {
    await assert.rejects(watchOomV2(dir, () => undefined, pino({ level: 'silent' })));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

const UNIFIED = '/sys/fs/cgroup/unified';
const skipKernfs =
  process.getuid?.() !== 0 ? 'needs root' : !existsSync(`${UNIFIED}/cgroup.procs`) ? 'needs a cgroup2 mount at ' + UNIFIED : false;

test('v2: kernfs notifications on a real cgroup.events reach the watcher (bind mount)', { skip: skipKernfs, timeout: 60_000 }, async () => {
  const cgroup = join(UNIFIED, `shimtest-${randomBytes(4).toString('hex')}`);
  const dir = await fixture();
  const child = spawn('sleep', ['60'], { stdio: 'ignore' });
  const exited = new Promise((resolve) => child.on('exit', resolve));
  let mounted = false;
  try {
    await mkdir(cgroup);
    await writeFile(join(cgroup, 'cgroup.procs'), String(child.pid));
    await run('mount', ['--bind', join(cgroup, 'cgroup.events'), join(dir, 'cgroup.events')]);
    mounted = true;
    const { logger, lines } = capture();
    let count = 0;
    await watchOomV2(dir, () => count++, logger);
    await sleep(200);
    assert.ok(!lines.some((l) => l.includes('cgroup empty')), 'still populated');
    child.kill('SIGKILL');
    await exited;
    // The kernel flips populated to 0 and notifies; only inotify on the real file can tell us.
    await waitFor(() => lines.some((l) => l.includes('cgroup empty')), 20_000, 'kernfs notification');
    assert.equal(count, 0);
  } finally {
    child.kill('SIGKILL');
    await exited;
    if (mounted) await run('umount', [join(dir, 'cgroup.events')]);
    for (let i = 0; existsSync(cgroup); i++) {
      try {
        await rmdir(cgroup);
      } catch (err) {
        if (i > 100) throw err;
        await sleep(100);
      }
    }
    await rm(dir, { recursive: true, force: true });
  }
});
