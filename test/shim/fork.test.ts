/**
 * A spare forks its daemons (shim/spare/fork.ts). Real forks of a real Node process: a small "spare" script
 * (node --single-threaded, as the wrapper starts spares) becomes a subreaper, so that the forked daemon is
 * re-parented to it and its exit status can be read, forks, and reports what each side saw: the daemon's loop
 * (timers, the threadpool, a socket, a child process), its pid, its exit code through Node's exit paths; the
 * spare's loop after the fork. Runs without root.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { forkableRanges, canForkDaemons, SPARE_FORK_ENV } from '../../shim/spare/fork.js';

const forkModule = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'shim', 'spare', 'fork.js');

/** The spare's side: fork, then wait for the daemon (re-parented to us) and print its status. */
const SPARE_SCRIPT = `
import koffi from 'koffi';
import { forkDaemon, prepareFork } from ${JSON.stringify(forkModule)};
import { createServer, connect } from 'node:net';
import { readFile } from 'node:fs/promises';
import { execFile } from 'node:child_process';
import { writeSync } from 'node:fs';
const libc = koffi.load('libc.so.6');
const prctl = libc.func('int prctl(int, unsigned long, unsigned long, unsigned long, unsigned long)');
const waitpid = libc.func('int waitpid(int, _Out_ int *, int)');
const getpid = libc.func('int getpid()');
const say = (s) => writeSync(1, s + '\\n');
prctl(36, 1, 0, 0, 0); // PR_SET_CHILD_SUBREAPER: the daemon comes back to us
prepareFork();
const mode = process.argv[1]; // node -e SCRIPT args: the args follow node
const garbage = [];
for (let i = 0; i < 20000; i++) garbage.push({ i, s: 'x' + i }); // a heap with old objects in it
setTimeout(() => {
  const role = forkDaemon();
  if (role === 'daemon') {
    say('daemon pid ' + process.pid + ' getpid ' + getpid() + ' objects ' + garbage.length);
    if (mode === 'throw') setTimeout(() => { throw new Error('boom'); }, 10);
    else if (mode === 'drain') setTimeout(() => say('daemon drained'), 10); // the loop runs dry
    else {
      const sock = process.argv[2];
      const server = createServer((s) => s.pipe(s)).listen(sock, () => {
        const c = connect(sock, () => c.write('ping'));
        c.on('data', async (d) => {
          say('daemon echo ' + d);
          say('daemon read ' + (await readFile('/proc/self/stat', 'utf8')).split(' ')[0]);
          execFile('/bin/echo', ['child'], (err, out) => {
            say('daemon exec ' + (err ? err.message : out.trim()));
            const more = [];
            for (let i = 0; i < 300000; i++) more.push({ i }); // collections in the daemon
            say('daemon allocated ' + more.length);
            c.destroy(); server.close();
            process.exitCode = 0;
            process.exit(7);
          });
        });
      });
    }
    return;
  }
  say('spare forked');
  setTimeout(() => {
    say('spare timer');
    const status = [0];
    for (let i = 0; i < 400; i++) {
      const r = waitpid(-1, status, 1); // WNOHANG
      if (r > 0) { say('spare reaped ' + r + ' status ' + status[0]); break; }
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 25);
    }
    process.exit(0);
  }, 50);
}, 20);
`;

function runSpare(mode: string, extra: string[] = []): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, ['--single-threaded', '--input-type=module', '-e', SPARE_SCRIPT, mode, ...extra], {
      cwd: join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..'),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    p.stdout.on('data', (b: Buffer) => (out += b.toString()));
    p.stderr.on('data', (b: Buffer) => (out += b.toString()));
    p.on('error', reject);
    p.on('close', (code) => resolve({ code, out }));
  });
}

const line = (out: string, prefix: string) => out.split('\n').find((l) => l.startsWith(prefix)) ?? '';

test('the forked daemon has a working loop, its own pid, and exits with its code; the spare goes on', async () => {
  const sock = join('/tmp', `fork-test-${process.pid}.sock`);
  const r = await runSpare('serve', [sock]);
  assert.equal(r.code, 0, r.out);
  const [, pid, getpid] = /^daemon pid (\d+) getpid (\d+) objects 20000$/m.exec(r.out) ?? [];
  assert.ok(pid && pid === getpid, `process.pid is the daemon's own: ${r.out}`);
  assert.equal(line(r.out, 'daemon echo'), 'daemon echo ping', r.out);
  assert.equal(line(r.out, 'daemon read'), `daemon read ${pid}`, r.out);
  assert.equal(line(r.out, 'daemon exec'), 'daemon exec child', r.out);
  assert.equal(line(r.out, 'daemon allocated'), 'daemon allocated 300000', r.out);
  assert.ok(r.out.includes('spare forked') && r.out.includes('spare timer'), r.out);
  // Re-parented to the spare (the middle process went): exit status 7, not a signal of a crashed teardown.
  assert.equal(line(r.out, 'spare reaped'), `spare reaped ${pid} status ${7 << 8}`, r.out);
});

test('a daemon whose loop runs dry, or that throws, exits with Node\'s code instead of crashing in teardown', async () => {
  const drained = await runSpare('drain');
  const pid = /^daemon pid (\d+)/m.exec(drained.out)?.[1];
  assert.ok(drained.out.includes('daemon drained'), drained.out);
  assert.equal(line(drained.out, 'spare reaped'), `spare reaped ${pid} status 0`, drained.out);
  const thrown = await runSpare('throw');
  const pid2 = /^daemon pid (\d+)/m.exec(thrown.out)?.[1];
  assert.match(thrown.out, /Error: boom/);
  assert.equal(line(thrown.out, 'spare reaped'), `spare reaped ${pid2} status ${1 << 8}`, thrown.out);
});

test('the address ranges skip the kernel\'s [vvar] pages and cover the rest', () => {
  const maps = [
    '00400000-00452000 r-xp 00000000 08:02 173521 /usr/bin/node',
    '7ffd5c3c5000-7ffd5c3e6000 rw-p 00000000 00:00 0 [stack]',
    '7ffd5c3f0000-7ffd5c3f4000 r--p 00000000 00:00 0 [vvar]',
    '7ffd5c3f4000-7ffd5c3f6000 r--p 00000000 00:00 0 [vvar_vclock]',
    '7ffd5c3f6000-7ffd5c3f8000 r-xp 00000000 00:00 0 [vdso]',
  ].join('\n');
  assert.deepEqual(forkableRanges(maps), [
    [0x1000n, 0x7ffd5c3f0000n - 0x1000n],
    [0x7ffd5c3f6000n, (1n << 47n) - 0x7ffd5c3f6000n],
  ]);
  assert.deepEqual(forkableRanges('00400000-00452000 r-xp 00000000 08:02 1 /bin/x\n'), [[0x1000n, (1n << 47n) - 0x1000n]]);
});

test('only a spare started single-threaded forks, and CONTAINERD_SHIM_TS_SPARE_FORK=0 turns it off', () => {
  // This test process runs without --single-threaded.
  assert.equal(canForkDaemons({}), process.execArgv.includes('--single-threaded'));
  assert.equal(canForkDaemons({ [SPARE_FORK_ENV]: '0' }), false);
});
