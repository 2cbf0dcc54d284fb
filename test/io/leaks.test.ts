import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { test } from 'node:test';
import { pino } from 'pino';
import { createProcessIO } from '../../io/process-io.js';
import * as sys from '../../io/sys.js';

const logger = pino({ level: 'silent' });
const fdCount = async (): Promise<number> => (await readdir('/proc/self/fd')).length;

function drainReader(path: string): Promise<void> {
  const sock = new net.Socket({ fd: sys.open(path, sys.O_RDONLY | sys.O_NONBLOCK), readable: true, writable: false });
  sock.resume();
  return new Promise((r) => sock.once('close', () => r()));
}

test('no fd leak across 50 create/start/close cycles (fifo, file, null modes, with stdin)', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'io-leak-'));
  try {
    const f = { stdin: join(dir, 'in'), stdout: join(dir, 'out'), stderr: join(dir, 'err') };
    for (const p of Object.values(f)) sys.mkfifo(p);
    const cycle = async (i: number): Promise<void> => {
      const mode = i % 3;
      const cfg =
        mode === 0
          ? { ...f, terminal: false }
          : mode === 1
            ? { stdin: '', stdout: `file://${dir}/log`, stderr: `file://${dir}/log`, terminal: false }
            : { stdin: '', stdout: '', stderr: '', terminal: false };
      const readers = mode === 0 ? [drainReader(f.stdout), drainReader(f.stderr)] : [];
      const io = await createProcessIO(cfg, { id: `c${i}`, namespace: 'n', uid: 0, gid: 0, logger });
      try {
        const child = spawn('sh', ['-c', 'echo hi; echo ho >&2'], { stdio: io.runtime.stdio });
        const exited = once(child, 'exit');
        io.afterSpawn();
        await io.start(AbortSignal.timeout(10_000));
        io.closeStdin();
        await exited;
        await io.drained(5000);
      } finally {
        await io.close();
      }
      await Promise.all(readers);
    };
    await cycle(0); // warm up lazily created handles
    await sleep(50);
    const before = await fdCount();
    for (let i = 1; i <= 50; i++) await cycle(i);
    await sleep(100);
    assert.equal(await fdCount(), before);
    // A create that fails after partial setup and a close without start release everything too.
    for (let i = 0; i < 5; i++) {
      await assert.rejects(createProcessIO({ stdin: '', stdout: f.stdout, stderr: join(dir, 'nope'), terminal: false }, { id: 'x', namespace: 'n', uid: 0, gid: 0, logger }));
      const io = await createProcessIO({ ...f, terminal: false }, { id: 'y', namespace: 'n', uid: 0, gid: 0, logger });
      await io.close();
      await io.close();
    }
    await sleep(100);
    assert.equal(await fdCount(), before);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('no fd leak across console cycles', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'io-leak-tty-'));
  try {
    const helper = join(dir, 'h.py');
    await writeFile(
      helper,
      "import os, socket, sys, subprocess\nm, s = os.openpty()\nc = socket.socket(socket.AF_UNIX)\nc.connect(sys.argv[1])\n" +
        "socket.send_fds(c, [b'/dev/ptmx'], [m])\nc.close(); os.close(m)\np = subprocess.Popen(['echo', 'hi'], stdin=s, stdout=s, stderr=s)\nos.close(s)\nsys.exit(p.wait())\n",
    );
    const out = join(dir, 'out');
    sys.mkfifo(out);
    const cycle = async (): Promise<void> => {
      const reader = drainReader(out);
      const io = await createProcessIO({ stdin: '', stdout: out, stderr: '', terminal: true }, { id: 'c', namespace: 'n', uid: 0, gid: 0, logger });
      try {
        const child = spawn('python3', [helper, io.runtime.consoleSocket as string], { stdio: io.runtime.stdio });
        const exited = once(child, 'exit');
        child.stdout?.resume();
        child.stderr?.resume();
        io.afterSpawn();
        await io.start(AbortSignal.timeout(10_000));
        await exited;
        io.processExited();
        assert.equal(await io.drained(10_000), true);
      } finally {
        await io.close();
      }
      await reader;
    };
    await cycle();
    await sleep(50);
    const before = await fdCount();
    for (let i = 0; i < 10; i++) await cycle();
    await sleep(100);
    assert.equal(await fdCount(), before);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
