/**
 * Pause against a scripted runtime: runc's "unable to freeze" (cgroup v1 freezer still FREEZING when runc
 * gives up, after it has thawed the cgroup) is retried up to PAUSE_ATTEMPTS times; other errors are not. And which
 * commands get the parent-death signal.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { Reaper } from '../../reaper/reaper.js';
import { PAUSE_ATTEMPTS, Runc } from '../../shim/runtime/runc.js';

let dir: string;
let reaper: Reaper;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'runc-pause-'));
  reaper = Reaper.start();
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** A runtime that fails its first `fails` calls with `msg` in its JSON log (as runc does), then succeeds. */
async function scriptedRuntime(name: string, fails: number, msg: string): Promise<{ runc: Runc; calls: () => Promise<string[]> }> {
  const calls = join(dir, `${name}.calls`);
  const bin = join(dir, name);
  await writeFile(
    bin,
    `#!/bin/sh
echo "$*" >> '${calls}'
if [ "$(wc -l < '${calls}')" -le ${fails} ]; then
  echo '{"level":"error","msg":"${msg}","time":"2026-01-01T00:00:00Z"}' >> "$4"
  exit 1
fi
`,
  );
  await chmod(bin, 0o755);
  const runc = new Runc({ binary: bin, root: join(dir, 'root'), logPath: join(dir, `${name}.log.json`), systemdCgroup: false }, reaper, pino({ level: 'silent' }));
  return { runc, calls: async () => (await readFile(calls, 'utf8').catch(() => '')).split('\n').filter(Boolean) };
}

test('a pause that runc could not freeze is run again, and succeeds when the freezer settles', async () => {
  const { runc, calls } = await scriptedRuntime('settles', PAUSE_ATTEMPTS - 1, 'unable to freeze');
  await runc.pause('c1');
  const seen = await calls();
  assert.equal(seen.length, PAUSE_ATTEMPTS);
  for (const c of seen) assert.match(c, / pause c1$/);
});

test('a freezer that never settles fails after PAUSE_ATTEMPTS with runc\'s message', async () => {
  const { runc, calls } = await scriptedRuntime('never', 100, 'unable to freeze');
  await assert.rejects(runc.pause('c1'), /OCI runtime pause failed: unable to freeze/);
  assert.equal((await calls()).length, PAUSE_ATTEMPTS);
});

test('other pause errors are not retried', async () => {
  const { runc, calls } = await scriptedRuntime('other', 100, 'container not running');
  await assert.rejects(runc.pause('c1'), /OCI runtime pause failed: container not running/);
  assert.equal((await calls()).length, 1);
});

test('only the commands that start container processes die with the daemon (parent-death signal)', async () => {
  // A runtime that records each call's PR_GET_PDEATHSIG (9: SIGKILL, 0: none).
  const calls = join(dir, 'pdeath.calls');
  const bin = join(dir, 'pdeath');
  await writeFile(
    bin,
    `#!/usr/bin/python3
import ctypes, sys
sig = ctypes.c_int(0)
ctypes.CDLL(None).prctl(2, ctypes.byref(sig), 0, 0, 0)
args = sys.argv[1:]
sub = next(a for a in args if a in ('create', 'start', 'exec', 'kill', 'delete'))
open('${calls}', 'a').write(sub + ' ' + str(sig.value) + '\\n')
`,
  );
  await chmod(bin, 0o755);
  const runc = new Runc({ binary: bin, root: join(dir, 'root'), logPath: join(dir, 'pdeath.log.json'), systemdCgroup: false }, reaper, pino({ level: 'silent' }));
  await runc.create('c1', { bundle: dir, pidFile: join(dir, 'c1.pid') }, { stdio: ['ignore', 'pipe', 'pipe'] });
  await runc.start('c1');
  await runc.exec('c1', { args: ['true'] }, join(dir, 'e1.pid'), undefined, { stdio: ['ignore', 'pipe', 'pipe'] });
  await runc.kill('c1', 9, false);
  await runc.delete('c1', true);
  const seen = Object.fromEntries((await readFile(calls, 'utf8')).trim().split('\n').map((l) => l.split(' ')));
  assert.deepEqual(seen, { create: '9', start: '0', exec: '9', kill: '0', delete: '0' });
});
