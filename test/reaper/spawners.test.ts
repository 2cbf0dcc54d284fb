// Reaper.spawn/run with both ways of starting a process: posix_spawn (the default) and child_process. The
// same contract for each (errors, abort, output, input, exits), and what the child gets: fds 0-2 as asked,
// no other fd, default signal dispositions (Node ignores SIGPIPE), an empty signal mask, cwd, env, argv.
import assert from 'node:assert/strict';
import { fstatSync, readFileSync, readlinkSync, readdirSync, statSync } from 'node:fs';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { Reaper } from '../../reaper/reaper.js';
import { cloexecPipe, closeFd } from '../../reaper/posix-spawn.js';
import { expectNoZombies, killQuietly, sleep } from './helpers.js';

/** A /proc/PID/status field as a number (hex for the Sig* masks). */
function statusField(pid: number, name: string): bigint {
  const line = readFileSync(`/proc/${pid}/status`, 'latin1').split('\n').find((l) => l.startsWith(`${name}:`));
  assert.ok(line, `${name} in /proc/${pid}/status`);
  return BigInt(`0x${line.split(/\s+/)[1]}`);
}

/**
 * Our fds above 2 without close-on-exec: every child inherits those (the test runner's environment may
 * hand some down); nothing else may reach a child.
 */
function inheritable(): string[] {
  return readdirSync('/proc/self/fd').filter((fd) => {
    if (Number(fd) <= 2) return false;
    try {
      const flags = /flags:\s+(\d+)/.exec(readFileSync(`/proc/self/fdinfo/${fd}`, 'latin1'))?.[1] ?? '0';
      return (Number.parseInt(flags, 8) & 0o2000000) === 0;
    } catch {
      return false; // the directory listing's own fd, closed by now
    }
  });
}

/** The process has exec'd `comm` (posix_spawn returns after the exec; libuv too, but be lenient). */
async function execd(pid: number, comm: string): Promise<void> {
  for (let i = 0; i < 100 && readFileSync(`/proc/${pid}/comm`, 'latin1').trim() !== comm; i++) await sleep(10);
}

for (const spawner of ['posix', 'libuv'] as const) {
  describe(`spawner ${spawner}`, () => {
    let reaper: Reaper;
    const startReaper = (): Reaper => (reaper = Reaper.start({ spawner, setpriv: null }));
    after(() => reaper?.stop());

    test('spawn/run: errors, abort, output, input', { timeout: 30_000 }, async () => {
      startReaper();
      assert.throws(() => reaper.spawn('no-such-command-xyz', []), { name: 'ShimError', kind: 'NotFound' });
      assert.throws(() => reaper.spawn('/no/such/file', [], { parentDeathSignal: false }), { kind: 'NotFound' });
      assert.throws(() => reaper.spawn('sh', [], { cwd: '/no/such/dir' }), { kind: 'NotFound' });
      const notExecutable = join(await mkdtemp(join(tmpdir(), 'spawners-')), 'plain');
      await writeFile(notExecutable, 'echo no\n', { mode: 0o644 });
      assert.throws(() => reaper.spawn(notExecutable, []), { kind: 'PermissionDenied' });
      await assert.rejects(reaper.run('no-such-command-xyz', []), { kind: 'NotFound' });

      const r = await reaper.run('sh', ['-c', 'cat; echo oops >&2; exit 3'], { input: 'hello' });
      assert.equal(r.exit.status, 3);
      assert.equal(r.stdout.toString(), 'hello');
      assert.equal(r.stderr.toString(), 'oops\n');

      const big = await reaper.run('sh', ['-c', 'head -c 300000 /dev/zero'], { maxOutput: 1000 });
      assert.equal(big.stdout.length, 1000);
      assert.equal(big.truncated, true);
      assert.equal(big.exit.status, 0);
      const all = await reaper.run('sh', ['-c', 'head -c 3000000 /dev/zero; exit 4']);
      assert.equal(all.stdout.length, 3_000_000, 'everything written before the exit is read');
      assert.equal(all.exit.status, 4);

      const ac = new AbortController();
      const running = reaper.run('sleep', ['30'], { signal: ac.signal });
      await sleep(100);
      ac.abort();
      await assert.rejects(running, { kind: 'Canceled' });
      await assert.rejects(reaper.run('sleep', ['30'], { signal: AbortSignal.timeout(100) }), { kind: 'DeadlineExceeded' });

      const killed = reaper.spawn('sleep', ['30'], { signal: AbortSignal.timeout(50) });
      assert.deepEqual({ ...(await killed.exited), at: 0 }, { pid: killed.pid, status: 137, signal: 9, at: 0 });
      assert.equal(killed.kill(), false, 'no signal to a pid already collected');

      // A daemonized grandchild holding stdout open does not hang run().
      const held = await reaper.run('sh', ['-c', 'sleep 30 & echo $!'], { drainTimeoutMs: 200 });
      const grandchild = Number(held.stdout.toString());
      assert.ok(grandchild > 0);
      killQuietly([grandchild]);
      assert.equal((await reaper.watch(grandchild)).status, 137);
      await expectNoZombies();
    });

    test('what the child gets: fds, signals, mask, cwd, env, argv', { timeout: 30_000 }, async () => {
      startReaper();
      const [r, w] = cloexecPipe();
      // Child's stdout and stderr are our fds 2 and 1, swapped: a parent fd below 3 that an earlier dup2
      // would overwrite must still arrive as itself.
      const child = reaper.spawn('sleep', ['30'], { stdio: ['ignore', 2, 1], cwd: '/tmp', env: { PATH: process.env.PATH, ONLY: 'this' } });
      const other = reaper.spawn('sleep', ['30'], { stdio: [r, w, 'pipe'] });
      try {
        await execd(child.pid, 'sleep');
        await execd(other.pid, 'sleep');
        const fdTarget = (pid: number, fd: number): string => readlinkSync(`/proc/${pid}/fd/${fd}`);
        assert.equal(fdTarget(child.pid, 0), '/dev/null');
        assert.equal(statSync(`/proc/${child.pid}/fd/1`).ino, fstatSync(2).ino, "child's 1 is our 2");
        assert.equal(statSync(`/proc/${child.pid}/fd/2`).ino, fstatSync(1).ino, "child's 2 is our 1");
        assert.deepEqual(readdirSync(`/proc/${child.pid}/fd`).sort(), ['0', '1', '2', ...inheritable()].sort(), 'no close-on-exec fd leaks');
        assert.equal(statSync(`/proc/${other.pid}/fd/0`).ino, fstatSync(r).ino);
        assert.equal(statSync(`/proc/${other.pid}/fd/1`).ino, fstatSync(w).ino);
        assert.match(fdTarget(other.pid, 2), /^(pipe|socket):/, 'a pipe (libuv makes a socketpair)');
        assert.deepEqual(readdirSync(`/proc/${other.pid}/fd`).sort(), ['0', '1', '2', ...inheritable()].sort());
        assert.ok(statusField(process.pid, 'SigIgn') !== 0n, 'this process ignores SIGPIPE (Node does)');
        assert.equal(statusField(child.pid, 'SigIgn'), 0n, 'no signal ignored in the child');
        assert.equal(statusField(child.pid, 'SigBlk'), 0n, 'no signal blocked in the child');
        assert.equal(readlinkSync(`/proc/${child.pid}/cwd`), '/tmp');
        assert.deepEqual(readFileSync(`/proc/${child.pid}/environ`, 'latin1').split('\0').filter(Boolean).sort(), [`ONLY=this`, `PATH=${process.env.PATH}`].sort());
        assert.deepEqual(readFileSync(`/proc/${child.pid}/cmdline`, 'latin1').split('\0').filter(Boolean), ['sleep', '30']);
      } finally {
        child.kill();
        other.kill();
        closeFd(r);
        closeFd(w);
      }
      assert.equal((await child.exited).status, 137);
      assert.equal((await other.exited).status, 137);
    });

    test('a process still running when the reaper stops keeps its exit promise', { timeout: 30_000 }, async () => {
      startReaper();
      const child = reaper.spawn('sh', ['-c', 'sleep 0.3; exit 7']);
      reaper.stop();
      assert.equal((await child.exited).status, 7);
      await expectNoZombies();
    });
  });
}
