import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, test } from 'node:test';
import { pino } from 'pino';
import { createProcessIO, type ProcessIO, type StdioConfig } from '../../io/process-io.js';
import * as sys from '../../io/sys.js';

const logger = pino({ level: 'silent' });
const dirs: string[] = [];
after(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

async function tempDir(): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'io-test-'));
  dirs.push(d);
  return d;
}

async function fifos(dir: string): Promise<{ stdin: string; stdout: string; stderr: string }> {
  const p = { stdin: join(dir, 'c-stdin'), stdout: join(dir, 'c-stdout'), stderr: join(dir, 'c-stderr') };
  for (const f of Object.values(p)) sys.mkfifo(f, 0o700);
  return p;
}

/** The client's read side: non-blocking open (as containerd's cio), collects everything until EOF. */
function clientReader(path: string): { sock: net.Socket; text: () => string; ended: Promise<void>; bytes: () => number } {
  const fd = sys.open(path, sys.O_RDONLY | sys.O_NONBLOCK);
  const sock = new net.Socket({ fd, readable: true, writable: false });
  const chunks: Buffer[] = [];
  let n = 0;
  sock.on('data', (c: Buffer) => {
    chunks.push(c);
    n += c.length;
  });
  const ended = new Promise<void>((resolve) => sock.once('close', () => resolve()));
  return { sock, text: () => Buffer.concat(chunks).toString(), ended, bytes: () => n };
}

function clientWriter(path: string): net.Socket {
  const fd = sys.open(path, sys.O_WRONLY | sys.O_NONBLOCK);
  return new net.Socket({ fd, readable: false, writable: true });
}

/** A "runc" stand-in that is the container itself: sh with the RuntimeStdio fds. */
function runContainer(io: ProcessIO, script: string): { child: ChildProcess; exit: Promise<number | null> } {
  const child = spawn('sh', ['-c', script], { stdio: io.runtime.stdio });
  const exit = once(child, 'exit').then(([code]) => code as number | null);
  io.afterSpawn();
  return { child, exit };
}

const opts = { id: 'c1', namespace: 'test', uid: 0, gid: 0, logger };

async function withIO(cfg: StdioConfig, fn: (io: ProcessIO) => Promise<void>, extra: object = {}): Promise<void> {
  const io = await createProcessIO(cfg, { ...opts, ...extra });
  try {
    await fn(io);
  } finally {
    await io.close();
  }
}

test('fifo mode: exact stdout and stderr content, in order', async () => {
  const dir = await tempDir();
  const f = await fifos(dir);
  const out = clientReader(f.stdout);
  const err = clientReader(f.stderr);
  await withIO({ stdin: '', stdout: f.stdout, stderr: f.stderr, terminal: false }, async (io) => {
    const c = runContainer(io, 'i=1; while [ $i -le 2000 ]; do echo out$i; echo err$i >&2; i=$((i+1)); done');
    await io.start(AbortSignal.timeout(10_000));
    assert.equal(await c.exit, 0);
    assert.equal(await io.drained(10_000), true);
    await Promise.all([out.ended, err.ended]);
  });
  const expect = (p: string) => Array.from({ length: 2000 }, (_, i) => `${p}${i + 1}\n`).join('');
  assert.equal(out.text(), expect('out'));
  assert.equal(err.text(), expect('err'));
});

test('start waits for the client reader without blocking the loop; times out without one', async () => {
  const dir = await tempDir();
  const f = await fifos(dir);
  let maxLag = 0;
  let last = performance.now();
  const lagTimer = setInterval(() => {
    const now = performance.now();
    maxLag = Math.max(maxLag, now - last - 10);
    last = now;
  }, 10);
  try {
    await withIO({ stdin: '', stdout: f.stdout, stderr: f.stderr, terminal: false }, async (io) => {
      const c = runContainer(io, 'echo hello; echo oops >&2');
      let started = false;
      const p = io.start(AbortSignal.timeout(20_000)).then(() => (started = true));
      await sleep(400);
      assert.equal(started, false, 'start must wait for a reader');
      const out = clientReader(f.stdout);
      await sleep(200);
      assert.equal(started, false, 'stderr has no reader yet');
      const err = clientReader(f.stderr);
      await p;
      await c.exit;
      await Promise.all([out.ended, err.ended]);
      assert.equal(out.text(), 'hello\n');
      assert.equal(err.text(), 'oops\n');
    });
    await withIO({ stdin: '', stdout: f.stdout, stderr: f.stderr, terminal: false }, async (io) => {
      const c = runContainer(io, 'true');
      await assert.rejects(io.start(AbortSignal.timeout(60_000)), (e: Error & { kind?: string }) => e.kind === 'DeadlineExceeded');
      await c.exit;
    }, { openTimeoutMs: 300 });
  } finally {
    clearInterval(lagTimer);
  }
  assert.ok(maxLag < 250, `event loop lag ${maxLag} ms while waiting for a reader`);
});

test('64 MiB through a FIFO arrive complete (checksum), loop stays responsive', async () => {
  const dir = await tempDir();
  const f = await fifos(dir);
  const data = randomBytes(64 << 20);
  const src = join(dir, 'blob');
  await writeFile(src, data);
  const want = createHash('sha256').update(data).digest('hex');
  // The client is another process (as containerd would be), so the figure measures the shim's copy.
  const reader = spawn('sh', ['-c', `sha256sum < ${f.stdout}`], { stdio: ['ignore', 'pipe', 'inherit'] });
  let sum = '';
  reader.stdout.on('data', (c: Buffer) => (sum += c.toString()));
  const readerExit = once(reader, 'exit');
  const err = clientReader(f.stderr);
  let maxLag = 0;
  let last = performance.now();
  const lagTimer = setInterval(() => {
    const now = performance.now();
    maxLag = Math.max(maxLag, now - last - 10);
    last = now;
  }, 10);
  const t0 = performance.now();
  await withIO({ stdin: '', stdout: f.stdout, stderr: f.stderr, terminal: false }, async (io) => {
    const c = runContainer(io, `cat ${src}`);
    await io.start(AbortSignal.timeout(10_000));
    assert.equal(await c.exit, 0);
    assert.equal(await io.drained(60_000), true);
    await Promise.all([readerExit, err.ended]);
  });
  const secs = (performance.now() - t0) / 1000;
  clearInterval(lagTimer);
  assert.equal(sum.split(' ')[0], want);
  console.log(`# 64 MiB FIFO copy: ${(64 / secs).toFixed(0)} MiB/s, max loop lag ${maxLag.toFixed(1)} ms`);
  assert.ok(maxLag < 500, `event loop lag ${maxLag} ms during the copy`);
});

test('client detach and re-attach: nothing lost, the writer never gets EPIPE', async () => {
  const dir = await tempDir();
  const f = await fifos(dir);
  let out = clientReader(f.stdout);
  const err = clientReader(f.stderr);
  const marker = join(dir, 'go');
  let firstPart = '';
  await withIO({ stdin: '', stdout: f.stdout, stderr: f.stderr, terminal: false }, async (io) => {
    // 2000 lines while detached, then wait for the marker file, then a tail line.
    const c = runContainer(
      io,
      `echo first; while [ ! -e ${dir}/detached ]; do sleep 0.01; done; i=1; while [ $i -le 2000 ]; do echo line$i; i=$((i+1)); done; ` +
        `while [ ! -e ${marker} ]; do sleep 0.02; done; echo tail`,
    );
    await io.start(AbortSignal.timeout(10_000));
    while (!out.text().includes('first\n')) await sleep(10);
    out.sock.destroy(); // detach: the client closes its read end
    firstPart = out.text();
    await writeFile(join(dir, 'detached'), '');
    await sleep(500); // the container writes while nobody reads
    out = clientReader(f.stdout); // re-attach
    await writeFile(marker, '');
    assert.equal(await c.exit, 0, 'no SIGPIPE/EPIPE in the container');
    assert.equal(await io.drained(10_000), true);
    await Promise.all([out.ended, err.ended]);
  });
  const lines = Array.from({ length: 2000 }, (_, i) => `line${i + 1}\n`).join('');
  assert.equal(firstPart + out.text(), `first\n${lines}tail\n`);
});

test('stdin: echo via cat; EOF only after closeStdin and the client writer closed', async () => {
  const dir = await tempDir();
  const f = await fifos(dir);
  const out = clientReader(f.stdout);
  const err = clientReader(f.stderr);
  await withIO({ stdin: f.stdin, stdout: f.stdout, stderr: f.stderr, terminal: false }, async (io) => {
    const c = runContainer(io, 'cat');
    let exited = false;
    void c.exit.then(() => (exited = true));
    await io.start(AbortSignal.timeout(10_000));
    let w = clientWriter(f.stdin);
    w.write('hello\n');
    while (!out.text().includes('hello\n')) await sleep(10);
    w.end();
    await sleep(300);
    assert.equal(exited, false, 'client detach must not deliver EOF');
    w = clientWriter(f.stdin);
    w.write('again\n');
    while (!out.text().includes('again\n')) await sleep(10);
    io.closeStdin();
    await sleep(300);
    assert.equal(exited, false, 'a client writer is still open');
    w.end();
    assert.equal(await c.exit, 0);
    io.closeStdin(); // twice is harmless
    await Promise.all([out.ended, err.ended]);
  });
  assert.equal(out.text(), 'hello\nagain\n');
});

test('stdin: CloseIO with no client writer gives EOF at once', async () => {
  const dir = await tempDir();
  const f = await fifos(dir);
  const out = clientReader(f.stdout);
  const err = clientReader(f.stderr);
  await withIO({ stdin: f.stdin, stdout: f.stdout, stderr: f.stderr, terminal: false }, async (io) => {
    const c = runContainer(io, 'cat; echo done');
    await io.start(AbortSignal.timeout(10_000));
    io.closeStdin();
    assert.equal(await c.exit, 0);
    await Promise.all([out.ended, err.ended]);
  });
  assert.equal(out.text(), 'done\n');
});

test('file://: mkdir -p, both streams appended to one file', async () => {
  const dir = await tempDir();
  const file = join(dir, 'logs', 'sub', 'c.log');
  const uri = `file://${file}`;
  await withIO({ stdin: '', stdout: uri, stderr: uri, terminal: false }, async (io) => {
    const c = runContainer(io, 'echo one; sleep 0.2; echo two >&2; sleep 0.2; echo three');
    await io.start(AbortSignal.timeout(10_000));
    assert.equal(await c.exit, 0);
    assert.equal(await io.drained(10_000), true);
  });
  assert.equal(await readFile(file, 'utf8'), 'one\ntwo\nthree\n');
  await withIO({ stdin: '', stdout: uri, stderr: '', terminal: false }, async (io) => {
    const c = runContainer(io, 'echo four; echo five >&2');
    await io.start(AbortSignal.timeout(10_000));
    await c.exit;
    assert.equal(await io.drained(10_000), true);
  });
  const text = await readFile(file, 'utf8');
  assert.ok(text.startsWith('one\ntwo\nthree\n'), 'appended, not truncated');
  assert.deepEqual(text.slice(14).split('\n').sort(), ['', 'five', 'four']);
});

test('plain path that is a regular file: appended, shared fd; missing path fails before the runtime', async () => {
  const dir = await tempDir();
  const file = join(dir, 'plain.log');
  await writeFile(file, 'old\n');
  await withIO({ stdin: '', stdout: file, stderr: file, terminal: false }, async (io) => {
    const c = runContainer(io, 'echo new; sleep 0.1; echo err >&2');
    await io.start(AbortSignal.timeout(10_000));
    await c.exit;
    assert.equal(await io.drained(10_000), true);
  });
  assert.equal(await readFile(file, 'utf8'), 'old\nnew\nerr\n');
  await assert.rejects(
    createProcessIO({ stdin: '', stdout: join(dir, 'missing'), stderr: file, terminal: false }, opts),
    (e: Error & { kind?: string }) => e.kind === 'NotFound' && /opening file/.test(e.message),
  );
});

test('null mode: /dev/null read-only for the runtime; output writes fail', async () => {
  await withIO({ stdin: '', stdout: '', stderr: '', terminal: false }, async (io) => {
    const c = runContainer(io, 'echo x || exit 3');
    assert.equal(await c.exit, 3);
    await io.start(AbortSignal.timeout(1000));
    assert.equal(await io.drained(100), true);
  });
});

test('delivered(): true only once the client has read everything we put in its FIFO; false when it stops reading', async () => {
  const dir = await tempDir();
  const f = await fifos(dir);
  const out = clientReader(f.stdout);
  const err = clientReader(f.stderr);
  out.sock.pause(); // a client that is behind when the process exits (ctr ≥ 1.7 then closes its FIFOs)
  await withIO({ stdin: '', stdout: f.stdout, stderr: f.stderr, terminal: false }, async (io) => {
    const c = runContainer(io, 'head -c 300000 /dev/zero');
    await io.start(AbortSignal.timeout(10_000));
    assert.equal(await c.exit, 0);
    io.processExited();
    // Nobody reads: no progress for idleMs → false, and the bytes are still there for the client.
    assert.equal(await io.delivered(300, 5000), false);
    assert.ok(out.bytes() < 300000);
    // The client catches up while we wait: true, and by then it has every byte.
    setTimeout(() => out.sock.resume(), 200);
    assert.equal(await io.delivered(2000, 20_000), true);
    assert.equal(out.bytes(), 300000);
    await Promise.all([out.ended, err.ended]);
  });
});
