/**
 * Hostile input against a server in its own process: random and mutated frames, oversize headers, a peer that
 * never reads. The server must survive, keep answering, and keep its memory bounded.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { TtrpcClient } from '../../protocol/ttrpc/client.js';
import { encodeFrame, encodeHeader, MAX_MESSAGE, MessageType } from '../../protocol/ttrpc/frame.js';
import { encodeRequest } from '../../protocol/ttrpc/messages.js';
import { prng, RawPeer, sleep, tempSocket } from './fixtures/harness.js';

const SVC = 'fuzz.v1.Echo';
const serverScript = fileURLToPath(new URL('./fixtures/echo-server.js', import.meta.url));

interface Mem {
  rss: number;
  heapUsed: number;
  external: number;
  connections: number;
}

async function startChild(t: { after(fn: () => Promise<void> | void): void }) {
  const tmp = await tempSocket();
  const child: ChildProcess = spawn(process.execPath, ['--expose-gc', serverScript, tmp.path], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let exited = false;
  child.once('exit', () => (exited = true));
  t.after(async () => {
    if (!exited) {
      child.kill('SIGKILL');
      await new Promise((r) => child.once('exit', r));
    }
    await tmp.cleanup();
  });
  await new Promise<void>((resolve, reject) => {
    child.stdout?.on('data', (d: Buffer) => d.toString().includes('ready') && resolve());
    child.once('exit', (code) => reject(new Error(`server exited early: ${code}`)));
  });
  const client = await TtrpcClient.connect(tmp.path);
  t.after(() => client.close());
  const mem = async (): Promise<Mem> =>
    JSON.parse(Buffer.from(await client.call(SVC, 'Mem', new Uint8Array(0), { timeoutMs: 30_000 })).toString()) as Mem;
  return { path: tmp.path, child, client, mem, alive: () => !exited };
}

const req = (service: string, method: string, payload: Uint8Array = new Uint8Array(0), timeoutNano = 0n) =>
  encodeRequest({ service, method, payload, timeoutNano, metadata: [] });

test('5,000+ random and mutated frames: the server survives, answers, and stays bounded', async (t) => {
  const s = await startChild(t);
  const before = await s.mem();
  const rand = prng(0xc0ffee);
  const int = (n: number) => Math.floor(rand() * n);
  const bytes = (n: number) => Buffer.from(Array.from({ length: n }, () => int(256)));
  const methods = ['Echo', 'Wait', 'Throw', 'Nope', ''];
  const services = [SVC, SVC, 'x.Y', ''];
  let sent = 0;

  for (let c = 0; c < 60; c++) {
    const peer = await RawPeer.open(s.path);
    let id = 1;
    const frames: Buffer[] = [];
    for (let i = 0; i < 90; i++) {
      const valid = Buffer.from(
        req(services[int(services.length)] ?? SVC, methods[int(methods.length)] ?? 'Echo', bytes(int(64)), BigInt(int(3)) * 50_000_000n),
      );
      const kind = int(8);
      id += 2;
      switch (kind) {
        case 0: // valid request
          frames.push(encodeFrame(id, MessageType.Request, valid));
          break;
        case 1: // random data
          frames.push(encodeFrame(id, MessageType.Request, bytes(int(300))));
          break;
        case 2: {
          // mutated request bytes
          for (let k = 0; k <= int(4); k++) if (valid.length) valid[int(valid.length)] = int(256);
          frames.push(encodeFrame(id, MessageType.Request, valid));
          break;
        }
        case 3: // random type and flags, random id (even ids included)
          frames.push(encodeFrame(int(0xffffffff), int(256), bytes(int(100)), int(256)));
          break;
        case 4: // data frames
          frames.push(encodeFrame(id, MessageType.Data, bytes(int(50)), int(8)));
          break;
        case 5: // reused or decreasing id
          frames.push(encodeFrame(Math.max(1, id - 2 * (1 + int(10))), MessageType.Request, valid));
          break;
        case 6: // truncated request (length field covers only part of the message)
          frames.push(encodeFrame(id, MessageType.Request, valid.subarray(0, int(valid.length))));
          break;
        default: // valid request with random flags
          frames.push(encodeFrame(id, MessageType.Request, valid, int(256)));
      }
    }
    sent += frames.length;
    // A well-formed call at the end must be answered: the framing above stayed aligned.
    const last = 0xffffffff; // above any id used, random ones included
    frames.push(encodeFrame(last, MessageType.Request, req(SVC, 'Echo', Buffer.from('still here'))));
    // Send in random chunk sizes.
    const all = Buffer.concat(frames);
    for (let pos = 0; pos < all.length; ) {
      const n = 1 + int(4096);
      peer.send(all.subarray(pos, pos + n));
      pos += n;
    }
    let answered = false;
    for (;;) {
      const f = await peer.next(30_000);
      if (f.streamId === last) {
        assert.equal(Buffer.from(f.data).subarray(2).toString(), 'still here');
        answered = true;
        break;
      }
    }
    assert.ok(answered);
    // End some connections with a header-level mess: random header garbage, or an oversized length.
    if (c % 3 === 0) peer.send(bytes(int(40)));
    if (c % 3 === 1) peer.send(encodeHeader(MAX_MESSAGE + 1 + int(1000), 1 + 2 * int(100), MessageType.Request));
    sent += 1;
    peer.destroy();
  }
  assert.ok(sent >= 5000, `sent ${sent} frames`);

  await sleep(200);
  assert.ok(s.alive());
  assert.equal(Buffer.from(await s.client.call(SVC, 'Echo', Buffer.from('ok'))).toString(), 'ok');
  const after = await s.mem();
  t.diagnostic(`rss ${(before.rss / 2 ** 20).toFixed(1)} -> ${(after.rss / 2 ** 20).toFixed(1)} MiB, heap ${(before.heapUsed / 2 ** 20).toFixed(1)} -> ${(after.heapUsed / 2 ** 20).toFixed(1)} MiB, connections ${after.connections}`);
  assert.ok(after.heapUsed < before.heapUsed + 32 * 2 ** 20, 'heap bounded');
  assert.ok(after.rss < before.rss + 128 * 2 ** 20, 'rss bounded');
  for (let i = 0; i < 100 && (await s.mem()).connections > 1; i++) await sleep(20);
  assert.equal((await s.mem()).connections, 1);
});

test('a peer that sends but never reads cannot make the server buffer without bound', async (t) => {
  const s = await startChild(t);
  const before = await s.mem();
  const peer = await RawPeer.open(s.path);
  peer.socket.pause(); // never read the answers
  const payload = Buffer.alloc(64 << 10, 0x33);
  let id = 1;
  let written = 0;
  // Push ~256 MiB of echo requests, respecting our own socket's backpressure so we do not measure ourselves.
  for (let i = 0; i < 4096; i++) {
    const ok = peer.socket.write(encodeFrame(id, MessageType.Request, req(SVC, 'Echo', payload)));
    id += 2;
    written += payload.length;
    if (!ok) {
      const drained = await Promise.race([
        new Promise<boolean>((r) => peer.socket.once('drain', () => r(true))),
        sleep(1500).then(() => false),
      ]);
      if (!drained) break; // the server stopped reading: that is the point
    }
  }
  const during = await s.mem();
  t.diagnostic(`wrote ${(written / 2 ** 20).toFixed(0)} MiB; server rss ${(before.rss / 2 ** 20).toFixed(1)} -> ${(during.rss / 2 ** 20).toFixed(1)} MiB`);
  assert.ok(written < 200 * 2 ** 20, 'the server should have stopped reading');
  assert.ok(during.rss < before.rss + 160 * 2 ** 20, 'rss bounded');
  peer.destroy();
  assert.equal(Buffer.from(await s.client.call(SVC, 'Echo', Buffer.from('ok'))).toString(), 'ok');
});

test('many connections holding never-returning calls are all cancelled when they close', async (t) => {
  const s = await startChild(t);
  const clients = await Promise.all(Array.from({ length: 20 }, () => TtrpcClient.connect(s.path)));
  const waits = clients.flatMap((c) => Array.from({ length: 50 }, () => c.call(SVC, 'Wait', new Uint8Array(0)).catch((e: unknown) => e)));
  await sleep(100);
  for (const c of clients) c.close();
  const errs = await Promise.all(waits);
  assert.ok(errs.every((e) => e instanceof Error && e.message === 'ttrpc: closed'));
  for (let i = 0; i < 100 && (await s.mem()).connections > 1; i++) await sleep(20);
  assert.equal((await s.mem()).connections, 1);
});
