/**
 * `delete` after a killed daemon kills the runtime calls it left (shim/runtime/leftover-calls.ts): found by the
 * bundle's `--log <bundle>/log.json` in their argv, stopped with their descendants, killed, and waited for.
 * A stand-in "runtime call" here is a shell carrying those arguments, with a child of its own; a process
 * with another log path is left alone. No root needed.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { findRuntimeCalls, killRuntimeCalls } from '../../shim/runtime/leftover-calls.js';
import { isAlive, waitFor } from '../harness/util.js';

function fakeCall(logArgs: string[]): { pid: number; child: () => number | undefined; exited: Promise<void> } {
  // `sh -c SCRIPT arg0 args...`: the args stay in the shell's argv; the shell waits on a sleep of its own.
  const p = spawn('sh', ['-c', 'sleep 60 & echo $!; wait', 'runc', '--root', '/run/x', ...logArgs, 'create', 'id'], { stdio: ['ignore', 'pipe', 'ignore'] });
  let childPid: number | undefined;
  p.stdout.on('data', (b: Buffer) => (childPid = Number(b.toString().trim())));
  return { pid: p.pid!, child: () => childPid, exited: new Promise((r) => p.once('exit', () => r())) };
}

test('finds the calls of this log path (both spellings), not others', async () => {
  const a = fakeCall(['--log', '/b/one/log.json']);
  const b = fakeCall(['--log=/b/one/log.json']);
  const other = fakeCall(['--log', '/b/two/log.json']);
  try {
    await waitFor(() => a.child() && b.child() && other.child(), 5000, 'the fake calls to start');
    assert.deepEqual(findRuntimeCalls('/b/one/log.json').sort(), [a.pid, b.pid].sort());
    assert.deepEqual(findRuntimeCalls('/b/none/log.json'), []);
  } finally {
    for (const c of [a, b, other]) for (const pid of [c.pid, c.child()]) if (pid) try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ }
  }
});

test('kills them and their descendants, waits until they are dead, leaves the rest', async () => {
  const a = fakeCall(['--log', '/b/three/log.json']);
  const other = fakeCall(['--log', '/b/four/log.json']);
  try {
    await waitFor(() => a.child() && other.child(), 5000, 'the fake calls to start');
    const killed = await killRuntimeCalls('/b/three/log.json');
    assert.deepEqual(killed.sort(), [a.pid, a.child()!].sort());
    await a.exited;
    await waitFor(async () => !(await isAlive(a.child()!)), 5000, 'the descendant to be gone');
    assert.ok(await isAlive(other.pid), 'a call of another bundle was killed');
    assert.ok(await isAlive(other.child()!));
    assert.deepEqual(await killRuntimeCalls('/b/three/log.json'), [], 'nothing left the second time');
  } finally {
    for (const c of [a, other]) for (const pid of [c.pid, c.child()]) if (pid) try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ }
  }
});
