import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  alreadyExists,
  failedPrecondition,
  invalidArgument,
  notFound,
  notImplemented,
  ShimError,
} from '../../protocol/errdefs.js';
import { TtrpcClient } from '../../protocol/ttrpc/client.js';
import { MAX_MESSAGE } from '../../protocol/ttrpc/frame.js';
import { unary, type CallContext, type RawHandler } from '../../protocol/ttrpc/service.js';
import { prng, sleep, startServer, TextCodec } from './fixtures/harness.js';

const SVC = 'test.v1.Echo';

function isShimError(err: unknown, kind: string, code: number | undefined, message?: string): boolean {
  assert.ok(err instanceof ShimError, `expected ShimError, got ${String(err)}`);
  assert.equal(err.kind, kind);
  assert.equal(err.grpcCode, code);
  if (message !== undefined) assert.equal(err.message, message);
  return true;
}

test('round trip: raw and typed calls, many concurrent calls completing out of order', async (t) => {
  const rand = prng(42);
  const delays = Array.from({ length: 200 }, () => Math.floor(rand() * 50));
  const finished: number[] = [];
  const srv = await startServer({
    [SVC]: {
      Echo: unary(TextCodec, TextCodec, async (req) => ({ value: `echo:${req.value}` })),
      Slow: unary(TextCodec, TextCodec, async (req) => {
        const i = Number(req.value);
        await sleep(delays[i] ?? 0);
        finished.push(i);
        return { value: String(i * 2) };
      }),
      Raw: async (payload) => Buffer.concat([Buffer.from(payload), Buffer.from('!')]),
    },
  });
  t.after(() => srv.stop());
  const client = await TtrpcClient.connect(`unix://${srv.path}`);
  t.after(() => client.close());

  assert.deepEqual(await client.callTyped(SVC, 'Echo', { value: 'hi' }, TextCodec, TextCodec), { value: 'echo:hi' });
  assert.equal(Buffer.from(await client.call(SVC, 'Raw', Buffer.from('x'))).toString(), 'x!');
  assert.equal((await client.call(SVC, 'Raw', new Uint8Array(0))).length, 1);

  const results = await Promise.all(
    delays.map((_, i) => client.callTyped(SVC, 'Slow', { value: String(i) }, TextCodec, TextCodec)),
  );
  results.forEach((r, i) => assert.equal(r.value, String(i * 2)));
  assert.notDeepEqual(finished, [...finished].sort((a, b) => a - b), 'completions should be out of order');
});

test('a handler that never returns blocks nothing; closing the client rejects it and aborts its signal', async (t) => {
  let blockedSignal: AbortSignal | undefined;
  const srv = await startServer({
    [SVC]: {
      Wait: async (_p, ctx) => {
        blockedSignal = ctx.signal;
        return new Promise<Uint8Array>(() => undefined);
      },
      Echo: async (p) => p,
    },
  });
  t.after(() => srv.stop());
  const client = await TtrpcClient.connect(srv.path);
  const waiting = client.call(SVC, 'Wait', new Uint8Array(0));
  for (let i = 0; i < 20; i++) {
    assert.equal(Buffer.from(await client.call(SVC, 'Echo', Buffer.from(`m${i}`))).toString(), `m${i}`);
  }
  let closedCb = false;
  client.onClose(() => (closedCb = true));
  client.close();
  await assert.rejects(waiting, (err) => {
    assert.ok(err instanceof ShimError);
    assert.equal(err.kind, 'Unavailable');
    assert.equal(err.message, 'ttrpc: closed');
    return true;
  });
  await client.closed;
  assert.ok(closedCb);
  await assert.rejects(client.call(SVC, 'Echo', new Uint8Array(0)), /ttrpc: closed/);
  for (let i = 0; i < 100 && !blockedSignal?.aborted; i++) await sleep(20);
  assert.equal(blockedSignal?.aborted, true);
  assert.equal((blockedSignal?.reason as ShimError).kind, 'Canceled');
});

test('deadline from timeout_nano: the signal aborts and the call is answered DeadlineExceeded', async (t) => {
  let seen: CallContext | undefined;
  const srv = await startServer({
    [SVC]: {
      Hang: async (_p, ctx) => {
        seen = ctx;
        return new Promise<Uint8Array>(() => undefined);
      },
      NoDeadline: async (_p, ctx) => Buffer.from(String(ctx.deadline)),
    },
  });
  t.after(() => srv.stop());
  const client = await TtrpcClient.connect(srv.path);
  t.after(() => client.close());
  const before = Date.now();
  await assert.rejects(client.call(SVC, 'Hang', new Uint8Array(0), { timeoutMs: 300 }), (err) => {
    assert.ok(err instanceof ShimError);
    assert.equal(err.kind, 'DeadlineExceeded');
    return true;
  });
  assert.ok(seen?.deadline !== undefined && seen.deadline >= before + 250 && seen.deadline <= Date.now() + 1000);
  for (let i = 0; i < 100 && !seen.signal.aborted; i++) await sleep(20);
  assert.equal((seen.signal.reason as ShimError).kind, 'DeadlineExceeded');
  assert.equal(Buffer.from(await client.call(SVC, 'NoDeadline', new Uint8Array(0))).toString(), 'undefined');
});

test('metadata arrives with lower-cased keys', async (t) => {
  let md: ReadonlyMap<string, string[]> | undefined;
  const srv = await startServer({
    [SVC]: {
      Md: async (_p, ctx) => {
        md = ctx.metadata;
        return new Uint8Array(0);
      },
    },
  });
  t.after(() => srv.stop());
  const client = await TtrpcClient.connect(srv.path);
  t.after(() => client.close());
  await client.call(SVC, 'Md', new Uint8Array(0), {
    metadata: { 'Containerd-Namespace-TTRPC': 'default', 'X-Other': 'V' },
  });
  assert.deepEqual([...(md ?? new Map())], [
    ['containerd-namespace-ttrpc', ['default']],
    ['x-other', ['V']],
  ]);
});

test('unknown service and method give Unimplemented with Go texts', async (t) => {
  const srv = await startServer({ [SVC]: { Echo: async (p) => p } });
  t.after(() => srv.stop());
  const client = await TtrpcClient.connect(srv.path);
  t.after(() => client.close());
  await assert.rejects(client.call('no.Such', 'Echo', new Uint8Array(0)), (e) =>
    isShimError(e, 'NotImplemented', 12, 'service no.Such'),
  );
  await assert.rejects(client.call(SVC, 'Nope', new Uint8Array(0)), (e) =>
    isShimError(e, 'NotImplemented', 12, 'method Nope'),
  );
});

test('handler errors map to codes once, kind suffix stripped by the client', async (t) => {
  const throwing = (err: unknown): RawHandler => async () => {
    throw err;
  };
  const enoent = Object.assign(new Error('open /x: no such file or directory'), { code: 'ENOENT' });
  const srv = await startServer({
    [SVC]: {
      NotFound: throwing(notFound('container not created')),
      Exists: throwing(alreadyExists('id exec1')),
      Precondition: throwing(failedPrecondition('process not created')),
      Invalid: throwing(invalidArgument('bad id')),
      NotImpl: throwing(notImplemented('checkpoint')),
      Plain: throwing(new Error('boom')),
      Errno: throwing(enoent),
      Sync: (() => {
        throw notFound('sync throw');
      }) as RawHandler,
      Nil: (async () => undefined) as unknown as RawHandler,
      Decode: unary(TextCodec, TextCodec, async (r) => r),
    },
  });
  t.after(() => srv.stop());
  const client = await TtrpcClient.connect(srv.path);
  t.after(() => client.close());
  const cases: [string, string, number, string][] = [
    ['NotFound', 'NotFound', 5, 'container not created'],
    ['Exists', 'AlreadyExists', 6, 'id exec1'],
    ['Precondition', 'FailedPrecondition', 9, 'process not created'],
    ['Invalid', 'InvalidArgument', 3, 'bad id'],
    ['NotImpl', 'NotImplemented', 12, 'checkpoint'],
    ['Plain', 'Unknown', 2, 'boom'],
    ['Errno', 'NotFound', 5, 'open /x: no such file or directory'],
    ['Sync', 'NotFound', 5, 'sync throw'],
    ['Nil', 'Unknown', 2, 'ttrpc: marshal called with nil'],
  ];
  for (const [method, kind, code, message] of cases) {
    await assert.rejects(client.call(SVC, method, new Uint8Array(0)), (e) => isShimError(e, kind, code, message));
  }
  await assert.rejects(client.call(SVC, 'Decode', Buffer.from('0a05', 'hex')), (e) => {
    isShimError(e, 'Internal', 13);
    assert.match((e as Error).message, /^ttrpc: error unmarshalling payload: /);
    return true;
  });
});

test('over 4 MiB: the client refuses to send; a too large response is ResourceExhausted; the connection lives', async (t) => {
  const srv = await startServer({
    [SVC]: {
      Echo: async (p) => p,
      Big: async () => Buffer.alloc(MAX_MESSAGE + 10),
    },
  });
  t.after(() => srv.stop());
  const client = await TtrpcClient.connect(srv.path);
  t.after(() => client.close());
  await assert.rejects(client.call(SVC, 'Echo', Buffer.alloc(MAX_MESSAGE)), (e) => {
    isShimError(e, 'ResourceExhausted', 8);
    assert.match((e as Error).message, /^message length \d+ exceed maximum message size of 4194304$/);
    return true;
  });
  await assert.rejects(client.call(SVC, 'Big', new Uint8Array(0)), (e) => isShimError(e, 'ResourceExhausted', 8));
  // Just under the limit goes through both ways.
  const near = Buffer.alloc(MAX_MESSAGE - 64, 0x5a);
  const back = await client.call(SVC, 'Echo', near);
  assert.equal(back.length, near.length);
  assert.equal(Buffer.from(await client.call(SVC, 'Echo', Buffer.from('ok'))).toString(), 'ok');
});

test('connection events, count, and shutdown waiting for in-flight calls', async (t) => {
  const srv = await startServer({
    [SVC]: {
      Slow: async (p) => {
        await sleep(300);
        return p;
      },
    },
  });
  t.after(() => srv.stop());
  const events: string[] = [];
  srv.server.on('connection', (n: number) => events.push(`+${n}`));
  srv.server.on('disconnect', (n: number) => events.push(`-${n}`));
  const a = await TtrpcClient.connect(srv.path);
  const b = await TtrpcClient.connect(srv.path);
  for (let i = 0; i < 100 && srv.server.connectionCount < 2; i++) await sleep(10);
  assert.equal(srv.server.connectionCount, 2);
  b.close();
  for (let i = 0; i < 100 && srv.server.connectionCount > 1; i++) await sleep(10);
  assert.equal(srv.server.connectionCount, 1);

  const inflight = a.call(SVC, 'Slow', Buffer.from('late'));
  await sleep(50);
  const shut = srv.server.shutdown();
  assert.equal(Buffer.from(await inflight).toString(), 'late');
  await shut;
  await a.closed;
  assert.equal(srv.server.connectionCount, 0);
  assert.deepEqual(events, ['+1', '+2', '-1', '-0']);
  await assert.rejects(TtrpcClient.connect(srv.path, { timeoutMs: 2000 }), (e) => e instanceof ShimError);
});

test('a server going away rejects pending calls with ttrpc: closed and fires onClose', async (t) => {
  let resolveLate: ((v: Uint8Array) => void) | undefined;
  const srv = await startServer({
    [SVC]: { Wait: () => new Promise<Uint8Array>((r) => (resolveLate = r)) },
  });
  t.after(() => srv.stop());
  const client = await TtrpcClient.connect(srv.path);
  let fired = 0;
  client.onClose(() => fired++);
  const pending = Promise.allSettled([client.call(SVC, 'Wait', new Uint8Array(0)), client.call(SVC, 'Wait', new Uint8Array(0))]);
  await sleep(50);
  const ac = new AbortController();
  ac.abort();
  await srv.server.shutdown({ signal: ac.signal });
  for (const r of await pending) {
    assert.equal(r.status, 'rejected');
    isShimError(r.status === 'rejected' ? r.reason : undefined, 'Unavailable', undefined, 'ttrpc: closed');
  }
  assert.equal(fired, 1);
  // A handler finishing after its connection is gone is dropped quietly.
  resolveLate?.(Buffer.from('too late'));
  await sleep(20);
});

test('call options: abort signal cancels locally; timeoutMs <= 0 fails at once', async (t) => {
  const srv = await startServer({ [SVC]: { Wait: () => new Promise<Uint8Array>(() => undefined), Echo: async (p) => p } });
  t.after(() => srv.stop());
  const client = await TtrpcClient.connect(srv.path);
  t.after(() => client.close());
  const ac = new AbortController();
  const p = client.call(SVC, 'Wait', new Uint8Array(0), { signal: ac.signal });
  ac.abort();
  await assert.rejects(p, (e) => e instanceof ShimError && e.kind === 'Canceled');
  await assert.rejects(client.call(SVC, 'Echo', new Uint8Array(0), { timeoutMs: 0 }), (e) => e instanceof ShimError && e.kind === 'DeadlineExceeded');
  assert.equal(Buffer.from(await client.call(SVC, 'Echo', Buffer.from('y'), { timeoutMs: 5000 })).toString(), 'y');
  assert.equal(Buffer.from(await client.call(SVC, 'Echo', Buffer.from('z'), { timeoutMs: Infinity })).toString(), 'z');
  assert.equal(Buffer.from(await client.call(SVC, 'Echo', Buffer.from('w'), { timeoutMs: 2 ** 40 })).toString(), 'w');
});
