// The reaper with real processes: orphans re-parented to the test process (a subreaper), libuv's own
// children next to them, exits before subscription, the parent-death signal. Needs Linux; root is not
// required for these tests but they are run as root in CI.
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { after, before, test } from 'node:test';
import { Reaper, type Exit } from '../../reaper/reaper.js';
import { isSubreaper } from '../../reaper/sys.js';
import { expectNoZombies, killQuietly, launch, orphanLine, sleep, waitFor } from './helpers.js';

let reaper: Reaper;
const seen = new Map<number, Exit[]>();

before(() => {
  reaper = Reaper.start();
  reaper.onExit((e) => {
    const list = seen.get(e.pid) ?? [];
    list.push(e);
    seen.set(e.pid, list);
  });
});

after(() => reaper.stop());

// Signals whose default action is to terminate without a core dump, and that a background sh does not
// ignore (SIGINT and SIGQUIT are ignored in asynchronous lists).
const TERMINATING = [1, 9, 10, 12, 13, 14, 15, 26, 27, 29, 30, ...Array.from({ length: 31 }, (_, i) => 34 + i)];

test('start is idempotent and makes the process a child subreaper', () => {
  assert.equal(Reaper.start(), reaper);
  assert.equal(isSubreaper(), true);
});

test('500 orphans exiting at the same moment: every status right, each dispatched once, no zombie', { timeout: 120_000 }, async () => {
  const N = 500;
  const SIGNALLED_FROM = 300;
  // Each orphan blocks reading fd 3 (the launcher's stdin, our pipe) and exits when we close it.
  const lines: string[] = [];
  for (let i = 0; i < SIGNALLED_FROM; i++) lines.push(orphanLine(`read _ <&3; exit ${i % 256}`));
  lines.push(`i=${SIGNALLED_FROM}; while [ $i -lt ${N} ]; do ${orphanLine('read _ <&3; exit 0')}; i=$((i+1)); done`);
  const { pids, release } = await launch(reaper, lines.join('\n'));
  try {
    assert.equal(pids.length, N);
    const expected = new Map<number, number>();
    pids.forEach((pid, i) => {
      const sig = TERMINATING[(i - SIGNALLED_FROM) % TERMINATING.length] as number;
      expected.set(pid, i < SIGNALLED_FROM ? i % 256 : 128 + sig);
    });
    const watched = pids.map((pid) => reaper.watch(pid));
    // The same moment: signal the last 200, release the first 300, in one synchronous burst.
    pids.forEach((pid, i) => {
      if (i >= SIGNALLED_FROM) process.kill(pid, TERMINATING[(i - SIGNALLED_FROM) % TERMINATING.length] as number);
    });
    await release();
    const exits = await Promise.all(watched);
    exits.forEach((exit, i) => {
      assert.equal(exit.pid, pids[i]);
      assert.equal(exit.status, expected.get(exit.pid), `status of ${exit.pid}`);
      assert.ok(exit.at instanceof Date);
      assert.equal(exit.signal, i < SIGNALLED_FROM ? undefined : exit.status - 128);
    });
    await sleep(200); // give a duplicate dispatch the chance to show up
    for (const pid of pids) assert.equal(seen.get(pid)?.length, 1, `dispatch count of ${pid}`);
    await expectNoZombies();
  } finally {
    await release();
    killQuietly(pids);
  }
});

test('double-forked orphans (runc create and daemon shapes) are reaped with their status', { timeout: 60_000 }, async () => {
  const script = [
    // parent exits, child re-parents to us (runc create leaving runc init behind)
    orphanLine('read _ <&3; exit 7'),
    // a subshell forks and exits: the grandchild re-parents past it
    `( ${orphanLine('read _ <&3; exit 5')} ) ; true`,
    // a daemon: new session, double fork
    `( setsid ${orphanLine('read _ <&3; exit 6')} ) ; true`,
    // unknown orphans nobody will watch
    ...Array.from({ length: 20 }, (_, i) => `( ${orphanLine(`read _ <&3; exit ${100 + i}`)} ) ; true`),
  ].join('\n');
  const { pids, release } = await launch(reaper, script);
  try {
    assert.equal(pids.length, 23);
    const [a, b, c] = pids as [number, number, number];
    const watched = Promise.all([reaper.watch(a), reaper.watch(b), reaper.watch(c)]);
    await release();
    assert.deepEqual((await watched).map((e) => e.status), [7, 5, 6]);
    const unknown = pids.slice(3);
    await waitFor(() => unknown.every((pid) => seen.has(pid)), 30_000, 'unwatched orphans reaped');
    unknown.forEach((pid, i) => assert.equal(seen.get(pid)?.[0]?.status, 100 + i));
    await expectNoZombies();
  } finally {
    await release();
    killQuietly(pids);
  }
});

test('200 runs (Reaper.run and plain child_process) interleaved with 200 orphan exits: every exit code right', { timeout: 120_000 }, async () => {
  const N = 200;
  // Orphans exit spread over ~1.5 s while the runs go on.
  const lines = Array.from({ length: N }, (_, i) =>
    orphanLine(`read _ <&3; sleep ${(((i * 37) % 150) / 100).toFixed(2)}; exit ${(i * 7) % 256}`),
  );
  const { pids, release } = await launch(reaper, lines.join('\n'));
  try {
    const orphanExits = Promise.all(pids.map((pid) => reaper.watch(pid).catch(() => undefined)));
    await release();
    const codes = Array.from({ length: N }, (_, i) => (i * 13) % 256);
    let next = 0;
    const results: number[] = [];
    const worker = async (): Promise<void> => {
      while (next < N) {
        const i = next++;
        const code = codes[i] as number;
        if (i % 4 === 3) {
          // Third-party code using child_process directly is protected too (no Reaper.spawn).
          results[i] = await new Promise<number>((resolve) => {
            execFile('sh', ['-c', `exit ${code}`], (err) => resolve(err ? Number((err as { code?: unknown }).code) : 0));
          });
        } else {
          const r = await reaper.run('sh', ['-c', `echo ${i}; exit ${code}`]);
          assert.equal(r.stdout.toString().trim(), String(i));
          results[i] = r.exit.status;
        }
      }
    };
    await Promise.all(Array.from({ length: 6 }, worker));
    assert.deepEqual(results, codes);
    const exits = await orphanExits;
    exits.forEach((e, i) => {
      // A pid not found at watch() time would be an exit that was lost: fail on it.
      assert.ok(e, `orphan ${pids[i]} exit delivered`);
      assert.equal(e.status, (i * 7) % 256, `orphan ${pids[i]}`);
    });
    await expectNoZombies();
  } finally {
    await release();
    killQuietly(pids);
  }
});

test('an exit that happens before its subscription is still delivered, once', { timeout: 30_000 }, async () => {
  const { pids, release } = await launch(reaper, orphanLine('read _ <&3; exit 42'));
  const pid = pids[0] as number;
  await release();
  await waitFor(() => seen.has(pid), 10_000, 'early exit reaped');
  await sleep(100);
  const exit = await reaper.watch(pid);
  assert.equal(exit.status, 42);
  assert.equal(exit.pid, pid);
  // Handed out once; the process is gone, so a second watch is NotFound.
  await assert.rejects(reaper.watch(pid), { name: 'ShimError', kind: 'NotFound' });
});

test('watch: bad pid, unknown pid, abort', async () => {
  await assert.rejects(reaper.watch(0), { kind: 'InvalidArgument' });
  await assert.rejects(reaper.watch(4_194_303), { kind: 'NotFound' });
  const child = reaper.spawn('sleep', ['30']);
  try {
    const ac = new AbortController();
    const w = reaper.watch(child.pid, { signal: ac.signal });
    ac.abort();
    await assert.rejects(w, { kind: 'Canceled' });
    // watch() of a pid we spawned works while it runs.
    const viaWatch = reaper.watch(child.pid);
    child.kill('SIGTERM');
    assert.equal((await viaWatch).status, 143);
    assert.deepEqual(await child.exited, await viaWatch);
  } finally {
    child.kill();
  }
});

test('parent-death signal: a process started by a shim that dies is killed', { timeout: 60_000 }, async () => {
  // A stand-in shim: starts its own Reaper, spawns `sleep`, prints the pid, and is SIGKILLed by us.
  const reaperUrl = new URL('../../reaper/reaper.js', import.meta.url).href;
  const startShim = async (pdeath: boolean): Promise<number> => {
    const code = `import { Reaper } from ${JSON.stringify(reaperUrl)};
      const c = Reaper.start().spawn('sleep', ['60'], { parentDeathSignal: ${pdeath} });
      console.log(c.pid); setInterval(() => {}, 1000);`;
    const shim = spawn(process.execPath, ['--input-type=module', '-e', code], { stdio: ['ignore', 'pipe', 'inherit'] });
    const pid = await new Promise<number>((resolve, reject) => {
      shim.stdout.once('data', (d: Buffer) => resolve(Number(d.toString())));
      shim.once('exit', () => reject(new Error('stand-in shim exited early')));
    });
    const gone = new Promise((resolve) => shim.once('exit', resolve));
    shim.kill('SIGKILL');
    await gone;
    return pid;
  };
  const withSignal = await startShim(true);
  // The orphan re-parents to us (subreaper), so we collect its death.
  assert.equal((await reaper.watch(withSignal)).status, 137);

  const without = await startShim(false);
  try {
    await sleep(300);
    assert.doesNotThrow(() => process.kill(without, 0), 'still running without the parent-death signal');
  } finally {
    killQuietly([without]);
  }
  await expectNoZombies();
});
