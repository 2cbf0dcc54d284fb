/**
 * The ttrpc server's hand-over (in-place upgrade): a server is held, its connections handed over with what
 * they had not handled yet, and another server (here in the same process, on dup'ed fds, as the next image
 * would be after execve) serves them on. No client notices anything but a delay.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { TtrpcClient } from '../../protocol/ttrpc/client.js';
import { FrameDecoder, MessageType, encodeFrame } from '../../protocol/ttrpc/frame.js';
import { TtrpcServer, type ServerHandoff } from '../../protocol/ttrpc/server.js';
import type { RawHandler } from '../../protocol/ttrpc/service.js';
import * as sys from '../../io/sys.js';
import { sleep, startServer } from './fixtures/harness.js';

const SVC = 'test.v1.Handoff';

test('FrameDecoder.pendingBytes gives back a partial frame as it arrived, without consuming it', () => {
  const frame = encodeFrame(7, MessageType.Request, Buffer.from('hello world'));
  for (const cut of [0, 3, 10, 15]) {
    const d = new FrameDecoder();
    assert.deepEqual(d.push(frame.subarray(0, cut)), []);
    assert.deepEqual(d.pendingBytes(), frame.subarray(0, cut));
    const rest = d.push(frame.subarray(cut));
    assert.equal(rest.length, 1);
    assert.equal(d.pendingBytes()?.length, 0);
  }
});

test('held requests and a handed-over call are answered by the server that adopts the connection', async (t) => {
  let answered = 0;
  const echo = (prefix: string): RawHandler => async (p) => {
    answered++;
    return Buffer.concat([Buffer.from(prefix), Buffer.from(p)]);
  };
  const srv = await startServer({ [SVC]: { Echo: echo('old:'), Wait: () => new Promise<Uint8Array>(() => undefined) } });
  t.after(() => srv.stop());
  const client = await TtrpcClient.connect(`unix://${srv.path}`);
  t.after(() => client.close());
  assert.equal(Buffer.from(await client.call(SVC, 'Echo', Buffer.from('a'))).toString(), 'old:a');

  const waiting = client.call(SVC, 'Wait', Buffer.from('w'));
  await sleep(50);
  srv.server.hold();
  const held = [client.call(SVC, 'Echo', Buffer.from('b')), client.call(SVC, 'Echo', Buffer.from('c'))];
  await sleep(100);
  assert.equal(answered, 1, 'nothing is handled while held');
  await srv.server.untilAnswered((_s, m) => m === 'Wait');
  const state = srv.server.handoff((_s, m) => m === 'Wait');
  assert.ok(typeof state !== 'string', String(state));
  assert.equal(state.connections.length, 1);
  assert.equal(state.connections[0]!.calls.length, 1, 'the Wait call is handed over');

  // The next image gets the same descriptors; here, copies of them, and the old objects let go of theirs.
  const dup = (fd: number): number => sys.dupCloexec(fd);
  const moved: ServerHandoff = { listenerFd: dup(state.listenerFd), connections: state.connections.map((c) => ({ ...c, fd: dup(c.fd) })) };
  const next = new TtrpcServer();
  next.register(SVC, { Echo: echo('new:'), Wait: async (p) => Buffer.concat([Buffer.from('resumed:'), Buffer.from(p)]) });
  await next.adopt(moved);
  t.after(() => next.shutdown({ signal: AbortSignal.timeout(1000) }));
  const replies = await Promise.all(held);
  assert.deepEqual(replies.map((r) => Buffer.from(r).toString()), ['new:b', 'new:c']);
  assert.equal(Buffer.from(await waiting).toString(), 'resumed:w');
  assert.equal(Buffer.from(await client.call(SVC, 'Echo', Buffer.from('d'))).toString(), 'new:d');
});

test('release() after hold() handles what arrived meanwhile, in order', async (t) => {
  const seen: string[] = [];
  const srv = await startServer({ [SVC]: { Echo: async (p) => (seen.push(Buffer.from(p).toString()), p) } });
  t.after(() => srv.stop());
  const client = await TtrpcClient.connect(`unix://${srv.path}`);
  t.after(() => client.close());
  srv.server.hold();
  const calls = ['1', '2', '3'].map((v) => client.call(SVC, 'Echo', Buffer.from(v)));
  await sleep(50);
  assert.deepEqual(seen, []);
  srv.server.release();
  await Promise.all(calls);
  assert.deepEqual(seen, ['1', '2', '3']);
});
