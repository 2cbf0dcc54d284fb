import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, test } from 'node:test';
import { pino } from 'pino';
import { createProcessIO, type ProcessIO } from '../../io/process-io.js';
import * as sys from '../../io/sys.js';

const logger = pino({ level: process.env['IO_TEST_LOG'] ?? 'silent' });
const dirs: string[] = [];
const children: ChildProcess[] = [];
after(async () => {
  for (const c of children) if (c.pid && c.exitCode === null) try { process.kill(-c.pid, 'SIGKILL'); } catch { /* gone */ }
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

// A runc stand-in: opens a pty, sends the master over the console socket (one message, one fd, like runc),
// then runs the "container" on the slave as session leader with it as controlling terminal.
const FAKE_RUNC = `
import os, socket, sys, fcntl, termios, subprocess
m, s = os.openpty()
c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
c.connect(sys.argv[1])
socket.send_fds(c, [b'/dev/ptmx'], [m])
c.close(); os.close(m)
def setup():
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)
p = subprocess.Popen(["sh", "-c", sys.argv[2]], stdin=s, stdout=s, stderr=s, start_new_session=True, preexec_fn=setup if os.environ.get("CTTY", "1") == "1" else None)
os.close(s)
sys.exit(p.wait())
`;

async function setup(): Promise<{ dir: string; stdin: string; stdout: string; helper: string }> {
  const dir = await mkdtemp(join(tmpdir(), 'io-console-'));
  dirs.push(dir);
  const helper = join(dir, 'fake-runc.py');
  await writeFile(helper, FAKE_RUNC);
  const p = { dir, stdin: join(dir, 'stdin'), stdout: join(dir, 'stdout'), helper };
  sys.mkfifo(p.stdin);
  sys.mkfifo(p.stdout);
  return p;
}

function clientReader(path: string): { text: () => string; ended: Promise<void> } {
  const sock = new net.Socket({ fd: sys.open(path, sys.O_RDONLY | sys.O_NONBLOCK), readable: true, writable: false });
  const chunks: Buffer[] = [];
  sock.on('data', (c: Buffer) => chunks.push(c));
  return { text: () => Buffer.concat(chunks).toString(), ended: new Promise((r) => sock.once('close', () => r())) };
}

function run(io: ProcessIO, helper: string, script: string): { exit: Promise<number | null>; stderr: () => string } {
  assert.deepEqual(io.runtime.stdio, ['ignore', 'pipe', 'pipe']);
  const child = spawn('python3', [helper, io.runtime.consoleSocket as string, script], { stdio: io.runtime.stdio, detached: true });
  children.push(child);
  let err = '';
  child.stderr?.on('data', (c: Buffer) => (err += c.toString()));
  child.stdout?.resume();
  io.afterSpawn();
  const exit = once(child, 'exit').then(([code]) => {
    io.processExited();
    return code as number | null;
  });
  return { exit, stderr: () => err };
}

const waitFor = async (cond: () => boolean, what: string): Promise<void> => {
  for (let i = 0; i < 1000 && !cond(); i++) await sleep(10);
  assert.ok(cond(), `timed out waiting for ${what}`);
};

test('terminal: master received, resize visible in the child, output drained after exit', async () => {
  const p = await setup();
  const out = clientReader(p.stdout);
  const io = await createProcessIO({ stdin: p.stdin, stdout: p.stdout, stderr: '', terminal: true }, { id: 'c', namespace: 'n', uid: 0, gid: 0, logger });
  try {
    const r = run(io, p.helper, 'read x; stty size; seq 1 20000; exit 5');
    await io.start(AbortSignal.timeout(10_000));
    io.resize(100, 40);
    const w = new net.Socket({ fd: sys.open(p.stdin, sys.O_WRONLY | sys.O_NONBLOCK), readable: false, writable: true });
    w.end('go\n');
    assert.equal(await r.exit, 5, r.stderr());
    assert.equal(await io.drained(10_000), true);
    await out.ended;
  } finally {
    await io.close();
  }
  const lines = out.text().split('\r\n');
  assert.ok(lines.includes('40 100'), 'stty size shows height width');
  assert.equal(lines.at(-2), '20000', 'tail not truncated');
  assert.equal(lines.filter((l) => /^\d+$/.test(l)).length, 20000);
});

test('terminal: a background process holding the slave does not keep output open after exit', async () => {
  const p = await setup();
  const out = clientReader(p.stdout);
  const io = await createProcessIO({ stdin: '', stdout: p.stdout, stderr: '', terminal: true }, { id: 'c', namespace: 'n', uid: 0, gid: 0, logger });
  try {
    const r = run(io, p.helper, `sleep 30 & echo $! > ${p.dir}/bg.pid; seq 1 3000`);
    await io.start(AbortSignal.timeout(10_000));
    assert.equal(await r.exit, 0);
    assert.equal(await io.drained(10_000), true);
    await out.ended;
  } finally {
    await io.close();
    const { readFile } = await import('node:fs/promises');
    const bg = Number(await readFile(join(p.dir, 'bg.pid'), 'utf8').catch(() => '0'));
    if (bg > 0) try { process.kill(bg, 'SIGKILL'); } catch { /* already gone (SIGHUP) */ }
  }
  assert.ok(out.text().endsWith('3000\r\n'));
});

test('terminal: CloseIO (stdin EOF) hangs up the terminal after draining output', async () => {
  const p = await setup();
  const out = clientReader(p.stdout);
  const io = await createProcessIO({ stdin: p.stdin, stdout: p.stdout, stderr: '', terminal: true }, { id: 'c', namespace: 'n', uid: 0, gid: 0, logger });
  try {
    const r = run(io, p.helper, 'echo started; cat');
    await io.start(AbortSignal.timeout(10_000));
    const w = new net.Socket({ fd: sys.open(p.stdin, sys.O_WRONLY | sys.O_NONBLOCK), readable: false, writable: true });
    w.write('hi\n');
    await waitFor(() => out.text().split('hi\r\n').length >= 3 && out.text().includes('started'), 'echo and cat output');
    w.end();
    io.closeStdin();
    await out.ended; // the master was closed
    const code = await r.exit; // cat got SIGHUP (or EIO)
    assert.notEqual(code, null);
    assert.equal(await io.drained(1000), true);
  } finally {
    await io.close();
  }
  assert.ok(out.text().includes('started\r\n'), JSON.stringify(out.text()));
});

test('terminal with binary:// logger: output reaches the logger', async () => {
  const p = await setup();
  const script = join(p.dir, 'logger.sh');
  await writeFile(script, `#!/bin/sh\ncat <&3 > ${p.dir}/logged 5>&- &\nexec 5>&-\nwait\n`, { mode: 0o755 });
  const io = await createProcessIO({ stdin: '', stdout: `binary://${script}`, stderr: '', terminal: true }, { id: 'c', namespace: 'n', uid: 0, gid: 0, logger });
  try {
    const r = run(io, p.helper, 'echo via-logger');
    await io.start(AbortSignal.timeout(10_000));
    assert.equal(await r.exit, 0);
    assert.equal(await io.drained(10_000), true);
  } finally {
    await io.close();
  }
  const { readFile } = await import('node:fs/promises');
  assert.equal(await readFile(join(p.dir, 'logged'), 'utf8'), 'via-logger\r\n');
});

test('terminal: no master within the timeout fails start', async () => {
  const p = await setup();
  const io = await createProcessIO({ stdin: '', stdout: p.stdout, stderr: '', terminal: true }, { id: 'c', namespace: 'n', uid: 0, gid: 0, logger, openTimeoutMs: 300 });
  try {
    await assert.rejects(io.start(AbortSignal.timeout(10_000)), (e: Error & { kind?: string }) => e.kind === 'DeadlineExceeded');
  } finally {
    await io.close();
  }
});
