/** Exact bytes on the wire, checked with hand-made frames over a raw socket. */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { link } from 'node:fs/promises';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { notFound } from '../../protocol/errdefs.js';
import { TtrpcClient } from '../../protocol/ttrpc/client.js';
import { encodeFrame, encodeHeader, MAX_MESSAGE, MessageType } from '../../protocol/ttrpc/frame.js';
import { decodeResponse, encodeRequest, type Request } from '../../protocol/ttrpc/messages.js';
import { unary, type CallContext } from '../../protocol/ttrpc/service.js';
import { ConnectResponseCodec, hex, RawPeer, sleep, startServer, tempSocket, TextCodec } from './fixtures/harness.js';

const TASK = 'containerd.task.v2.Task';

const request = (r: Partial<Request> & { service: string; method: string }): Uint8Array =>
  encodeRequest({ payload: new Uint8Array(0), timeoutNano: 0n, metadata: [], ...r });

async function withServer(t: { after(fn: () => Promise<void>): void }) {
  let lastCtx: CallContext | undefined;
  const srv = await startServer({
    [TASK]: {
      State: async () => {
        throw notFound('container not created');
      },
      Connect: unary(TextCodec, ConnectResponseCodec, async () => ({ shimPid: 100000, taskPid: 0, version: '' })),
      Shutdown: async () => new Uint8Array(0),
      Hang: async (_p, ctx) => {
        lastCtx = ctx;
        return new Promise<Uint8Array>(() => undefined);
      },
      Ctx: async (_p, ctx) => {
        lastCtx = ctx;
        return new Uint8Array(0);
      },
    },
  });
  t.after(() => srv.stop());
  const peer = await RawPeer.open(srv.path);
  t.after(async () => peer.destroy());
  return { srv, peer, ctx: () => lastCtx };
}

test('golden: State error, Connect success, empty success', async (t) => {
  const { peer } = await withServer(t);
  peer.send(encodeFrame(1, MessageType.Request, request({ service: TASK, method: 'State', payload: Buffer.from('0a0378797a', 'hex') })));
  const state = await peer.next();
  const msg = Buffer.from('container not created: not found').toString('hex');
  assert.equal(hex(encodeHeader(state.length, state.streamId, state.type, state.flags)), '00000026' + '00000001' + '02' + '00');
  assert.equal(hex(state.data), '0a24' + '0805' + '1220' + msg);

  peer.send(encodeFrame(3, MessageType.Request, request({ service: TASK, method: 'Connect' })));
  const conn = await peer.next();
  assert.equal(conn.streamId, 3);
  assert.equal(hex(conn.data), '1204' + '08a08d06');

  peer.send(encodeFrame(5, MessageType.Request, request({ service: TASK, method: 'Shutdown' })));
  const empty = await peer.next();
  assert.equal(hex(encodeHeader(empty.length, empty.streamId, empty.type, empty.flags)), '00000000' + '00000005' + '02' + '00');
  assert.equal(empty.data.length, 0);
});

async function expectStatus(peer: RawPeer, streamId: number, code: number, message: string | RegExp): Promise<void> {
  const f = await peer.next();
  assert.equal(f.type, MessageType.Response);
  assert.equal(f.streamId, streamId);
  const st = decodeResponse(f.data).status;
  assert.equal(st?.code, code);
  if (typeof message === 'string') assert.equal(st?.message, message);
  else assert.match(st?.message ?? '', message);
}

test('Go server texts: unknown service/method, even id, reused id, bad request, data frame', async (t) => {
  const { peer } = await withServer(t);
  peer.send(encodeFrame(1, MessageType.Request, request({ service: 'x.Y', method: 'State' })));
  await expectStatus(peer, 1, 12, 'service x.Y');
  peer.send(encodeFrame(3, MessageType.Request, request({ service: TASK, method: 'Nope' })));
  await expectStatus(peer, 3, 12, 'method Nope');
  peer.send(encodeFrame(4, MessageType.Request, request({ service: TASK, method: 'Shutdown' })));
  await expectStatus(peer, 4, 3, 'StreamID must be odd for client initiated streams');
  peer.send(encodeFrame(3, MessageType.Request, request({ service: TASK, method: 'Shutdown' })));
  await expectStatus(peer, 3, 3, 'StreamID cannot be re-used and must increment');
  peer.send(encodeFrame(7, MessageType.Request, Buffer.from('0a05', 'hex')));
  await expectStatus(peer, 7, 3, /^unmarshal request error: /);
  peer.send(encodeFrame(9, MessageType.Data, Buffer.from('abc')));
  await expectStatus(peer, 9, 3, 'StreamID is no longer active');
  // Unknown type and a stray response frame on odd ids are ignored; the next request is answered normally.
  peer.send(encodeFrame(11, 0x7f, Buffer.from('zz')));
  peer.send(encodeFrame(13, MessageType.Response, new Uint8Array(0)));
  // Streaming flags on a unary method: run as unary, as ttrpc does.
  peer.send(encodeFrame(15, MessageType.Request, request({ service: TASK, method: 'Shutdown' }), 0x02));
  const f = await peer.next();
  assert.equal(f.streamId, 15);
  assert.equal(f.data.length, 0);
});

test('oversized request frame: ResourceExhausted on its stream id, the connection keeps working', async (t) => {
  const { peer } = await withServer(t);
  const len = MAX_MESSAGE + 1;
  peer.send(encodeHeader(len, 21, MessageType.Request));
  const chunk = Buffer.alloc(1 << 20, 0x41);
  for (let left = len; left > 0; left -= chunk.length) peer.send(chunk.subarray(0, Math.min(left, chunk.length)));
  await expectStatus(peer, 21, 8, 'message length 4194305 exceed maximum message size of 4194304');
  peer.send(encodeFrame(23, MessageType.Request, request({ service: TASK, method: 'Connect' })));
  const ok = await peer.next();
  assert.equal(ok.streamId, 23);
  assert.equal(hex(ok.data), '120408a08d06');
});

test('timeout_nano: answered DeadlineExceeded; negative timeout is already expired; metadata lower-cased', async (t) => {
  const { peer, ctx } = await withServer(t);
  peer.send(encodeFrame(1, MessageType.Request, request({ service: TASK, method: 'Hang', timeoutNano: 150_000_000n })));
  await expectStatus(peer, 1, 4, 'context deadline exceeded');
  assert.equal(ctx()?.signal.aborted, true);
  peer.send(encodeFrame(3, MessageType.Request, request({ service: TASK, method: 'Hang', timeoutNano: -5n })));
  await expectStatus(peer, 3, 4, 'context deadline exceeded');
  // A deadline beyond setTimeout's range must not fire early.
  peer.send(encodeFrame(5, MessageType.Request, request({ service: TASK, method: 'Hang', timeoutNano: 9_000_000_000_000_000_000n })));
  peer.send(
    encodeFrame(
      7,
      MessageType.Request,
      request({ service: TASK, method: 'Ctx', metadata: [{ key: 'Containerd-Namespace-TTRPC', value: 'k8s.io' }, { key: 'a', value: '1' }, { key: 'A', value: '2' }] }),
    ),
  );
  const f = await peer.next();
  assert.equal(f.streamId, 7);
  assert.deepEqual([...(ctx()?.metadata ?? new Map())], [
    ['containerd-namespace-ttrpc', ['k8s.io']],
    ['a', ['1', '2']],
  ]);
  await sleep(100);
  assert.deepEqual(peer.drainReceived(), []);
});

test('truncated header then close does not disturb the server', async (t) => {
  const { srv } = await withServer(t);
  const p = await RawPeer.open(srv.path);
  p.send(Buffer.from([0, 0, 0, 5, 0]));
  await sleep(20);
  p.socket.end();
  await p.closedPromise;
  const p2 = await RawPeer.open(srv.path);
  p2.send(encodeHeader(100, 1, MessageType.Request)); // header with a promised body that never comes
  p2.send(Buffer.alloc(10));
  p2.destroy();
  const client = await TtrpcClient.connect(srv.path);
  t.after(() => client.close());
  assert.equal((await client.call(TASK, 'Shutdown', new Uint8Array(0))).length, 0);
});

test('listen on an inherited listening fd (fd 3 in a child process)', async (t) => {
  const tmp = await tempSocket();
  t.after(() => tmp.cleanup());
  const holder = createServer();
  await new Promise<void>((r) => holder.listen(tmp.path, r));
  // closing the holder unlinks its path; a hard link keeps the socket reachable
  const linked = join(tmp.dir, 'linked.sock');
  await link(tmp.path, linked);
  const fd = (holder as unknown as { _handle: { fd: number } })._handle.fd;
  const serverModule = fileURLToPath(new URL('../../protocol/ttrpc/server.js', import.meta.url));
  const script = `
    const { TtrpcServer } = await import(${JSON.stringify(serverModule)});
    const s = new TtrpcServer();
    s.register('t.S', { Pid: async () => Buffer.from(String(process.pid)) });
    await s.listen({ fd: 3 });
    process.stdout.write('ready\\n');`;
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit', fd] });
  t.after(() => {
    child.kill('SIGKILL');
  });
  holder.close();
  await new Promise<void>((resolve, reject) => {
    child.stdout?.on('data', (d: Buffer) => d.toString().includes('ready') && resolve());
    child.once('exit', (code) => reject(new Error(`child exited ${code}`)));
  });
  const client = await TtrpcClient.connect(linked);
  t.after(() => client.close());
  assert.equal(Buffer.from(await client.call('t.S', 'Pid', new Uint8Array(0))).toString(), String(child.pid));
});
