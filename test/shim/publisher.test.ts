/**
 * The event publisher + ordered outbox against a fake containerd events endpoint (our own ttrpc server
 * serving containerd.services.events.ttrpc.v1.Events/Forward) that is down, refusing, hung or flapping.
 * No containerd: this checks order, no loss, the bound, and that publishing never waits.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, unlink } from 'node:fs/promises';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { TtrpcServer } from '../../protocol/ttrpc/server.js';
import { ShimError } from '../../protocol/errdefs.js';
import { ForwardRequest } from '../../protocol/gen/containerd/api/services/ttrpc/events/v1/events.js';
import { Empty } from '../../protocol/gen/google/protobuf/empty.js';
import { fromTimestamp } from '../../protocol/timestamp.js';
import { EVENTS_SERVICE, EventPublisher, NAMESPACE_METADATA_KEY } from '../../shim/events/publisher.js';
import type { TaskEvent } from '../../shim/events/task-events.js';

const silent = pino({ level: 'silent' });
const NS = 'pubtest';
let dir: string;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'pub-'));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

interface Received {
  topic: string;
  namespace: string;
  metaNamespace: string | undefined;
  at: Date;
  typeUrl: string;
  /** The exit's id / the exec id, or the container id: identifies which event of a sequence this was. */
  key: string;
}

/** A fake events endpoint; `failNext` makes the next n Forward calls fail with Unavailable. */
class FakeEvents {
  readonly received: Received[] = [];
  failNext = 0;
  /** While set, Forward calls are accepted but never answered. */
  hang = false;
  private server: TtrpcServer | undefined;

  constructor(readonly path: string) {}

  async up(): Promise<void> {
    const server = new TtrpcServer();
    server.register(EVENTS_SERVICE, {
      Forward: async (payload, ctx) => {
        if (this.hang) await new Promise<void>((resolve) => ctx.signal.addEventListener('abort', () => resolve(), { once: true }));
        if (this.hang || ctx.signal.aborted) throw new ShimError('Canceled', 'hung');
        if (this.failNext > 0) {
          this.failNext--;
          throw new ShimError('Unavailable', 'not now');
        }
        const req = ForwardRequest.decode(payload);
        const env = req.envelope!;
        const value = Buffer.from(env.event?.value ?? new Uint8Array()).toString('latin1');
        this.received.push({
          topic: env.topic,
          namespace: env.namespace,
          metaNamespace: ctx.metadata.get(NAMESPACE_METADATA_KEY)?.[0],
          at: fromTimestamp(env.timestamp!),
          typeUrl: env.event?.typeUrl ?? '',
          key: /k-\d+/.exec(value)?.[0] ?? '',
        });
        return Empty.encode({}).finish();
      },
    });
    await server.listen({ path: this.path });
    this.server = server;
  }

  /** Gone: no listener, no socket file, every connection cut. */
  async down(): Promise<void> {
    const s = this.server;
    this.server = undefined;
    if (s) await s.shutdown({ signal: AbortSignal.timeout(0) }).catch(() => undefined);
    await unlink(this.path).catch(() => undefined);
  }

  keys(): string[] {
    return this.received.map((r) => r.key);
  }
}

async function waitFor(cond: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** exit events carry k-<n> in their id field so the receiver can tell them apart. */
function exitEvent(n: number): TaskEvent {
  return { type: 'TaskExit', event: { containerId: 'c1', id: `k-${n}`, pid: 100 + n, exitStatus: n % 256, exitedAt: undefined } } as TaskEvent;
}

function sequence(n: number): TaskEvent[] {
  return Array.from({ length: n }, (_, i) => exitEvent(i));
}

const expectedKeys = (n: number) => Array.from({ length: n }, (_, i) => `k-${i}`);

test('events published while the endpoint is down are delivered in order, once, after it comes up', async () => {
  const ep = new FakeEvents(join(dir, 'a.sock'));
  const pub = new EventPublisher(ep.path, NS, silent);
  try {
    const before = new Date();
    for (const ev of sequence(50)) pub.publish(ev);
    // publish never waits: everything is queued synchronously.
    assert.equal(pub.stats.queued, 50);
    await waitFor(() => pub.stats.failures >= 3, 10_000, 'a few failed attempts');
    const producedBy = new Date();
    await ep.up();
    await waitFor(() => ep.received.length >= 50, 20_000, '50 events');
    assert.deepEqual(ep.keys(), expectedKeys(50));
    for (const r of ep.received) {
      assert.equal(r.topic, '/tasks/exit');
      assert.equal(r.typeUrl, 'containerd.events.TaskExit');
      assert.equal(r.namespace, NS);
      assert.equal(r.metaNamespace, NS);
      // The envelope time is when the event happened, not when it finally got through.
      assert.ok(r.at >= new Date(before.getTime() - 1) && r.at <= producedBy, `timestamp ${r.at.toISOString()}`);
    }
    assert.equal(pub.stats.dropped, 0);
  } finally {
    assert.equal((await pub.close(5000)).undelivered, 0);
    await ep.down();
  }
});

test('an endpoint that goes away mid-stream and comes back: no loss, no reordering', async () => {
  const ep = new FakeEvents(join(dir, 'b.sock'));
  await ep.up();
  const pub = new EventPublisher(ep.path, NS, silent);
  try {
    const evs = sequence(300);
    for (const ev of evs.slice(0, 100)) pub.publish(ev);
    await waitFor(() => ep.received.length >= 100, 20_000, 'first 100');
    await ep.down();
    for (const ev of evs.slice(100, 200)) pub.publish(ev);
    await waitFor(() => pub.stats.failures >= 2, 10_000, 'failures while down');
    await ep.up();
    await ep.down(); // flap
    await ep.up();
    for (const ev of evs.slice(200)) pub.publish(ev);
    await waitFor(() => ep.received.length >= 300, 30_000, 'all 300');
    assert.deepEqual(ep.keys(), expectedKeys(300));
  } finally {
    await pub.close(5000);
    await ep.down();
  }
});

test('Forward errors are retried: the failed event stays first', async () => {
  const ep = new FakeEvents(join(dir, 'c.sock'));
  await ep.up();
  const pub = new EventPublisher(ep.path, NS, silent);
  try {
    ep.failNext = 4;
    for (const ev of sequence(20)) pub.publish(ev);
    await waitFor(() => ep.received.length >= 20, 20_000, '20 events');
    assert.deepEqual(ep.keys(), expectedKeys(20));
    assert.ok(pub.stats.failures >= 4);
  } finally {
    await pub.close(5000);
    await ep.down();
  }
});

test('a hung endpoint (accepts, never answers) times out after 5 s and the event is sent again', async () => {
  const ep = new FakeEvents(join(dir, 'd.sock'));
  await ep.up();
  ep.hang = true;
  const pub = new EventPublisher(ep.path, NS, silent);
  try {
    for (const ev of sequence(3)) pub.publish(ev);
    await waitFor(() => pub.stats.failures >= 1, 20_000, 'the first Forward to time out');
    ep.hang = false;
    await waitFor(() => ep.received.length >= 3, 20_000, '3 events');
    assert.deepEqual(ep.keys(), expectedKeys(3));
  } finally {
    await pub.close(5000);
    await ep.down();
  }
});

test('a long outage (backoff at its 5 s cap): events flow as soon as the endpoint returns, and close() delivers before giving up', async () => {
  const ep = new FakeEvents(join(dir, 'e.sock'));
  const pub = new EventPublisher(ep.path, NS, silent);
  try {
    for (const ev of sequence(5)) pub.publish(ev);
    // 100+200+400+800+1600+3200 ms: after ~6.3 s the retry interval is at its 5 s cap.
    await waitFor(() => pub.stats.failures >= 7, 30_000, 'backoff to reach its cap');
    await ep.up();
    // A shim told to exit right now (Shutdown after the last Delete) must not sit out its backoff sleep.
    const r = await pub.close(4000);
    assert.equal(r.undelivered, 0, 'close() gave up while the endpoint was reachable');
    assert.deepEqual(ep.keys(), expectedKeys(5));
  } finally {
    await ep.down();
  }
});

test('kick(): after an outage the next attempt is made at once, not after the backoff', async () => {
  const ep = new FakeEvents(join(dir, 'f.sock'));
  const pub = new EventPublisher(ep.path, NS, silent);
  try {
    for (const ev of sequence(3)) pub.publish(ev);
    await waitFor(() => pub.stats.failures >= 7, 30_000, 'backoff to reach its cap');
    await ep.up();
    const t0 = Date.now();
    pub.kick();
    await waitFor(() => ep.received.length >= 3, 20_000, '3 events');
    // Generous: without kick() the pending sleep is 3.75–6.25 s.
    assert.ok(Date.now() - t0 < 3000, `took ${Date.now() - t0} ms`);
    assert.deepEqual(ep.keys(), expectedKeys(3));
  } finally {
    await pub.close(5000);
    await ep.down();
  }
});

test('bound: past capacity the oldest non-critical event is dropped (and counted); critical ones survive', async () => {
  const ep = new FakeEvents(join(dir, 'g.sock'));
  const pub = new EventPublisher(ep.path, NS, silent, 10);
  try {
    // 5 exits (critical) interleaved with 20 exec-added (not critical), endpoint down.
    const evs: TaskEvent[] = [];
    for (let i = 0; i < 25; i++) {
      evs.push(i % 5 === 0 ? exitEvent(i) : ({ type: 'TaskExecAdded', event: { containerId: 'c1', execId: `k-${i}` } } as TaskEvent));
    }
    for (const ev of evs) pub.publish(ev);
    assert.equal(pub.stats.queued, 10);
    assert.equal(pub.stats.dropped, 15);
    await ep.up();
    await waitFor(() => ep.received.length >= 10, 20_000, '10 events');
    const got = ep.keys();
    // every exit kept, in order, and the survivors are the newest exec-added ones (plus the head in flight)
    const exits = ep.received.filter((r) => r.topic === '/tasks/exit').map((r) => r.key);
    assert.deepEqual(exits, ['k-0', 'k-5', 'k-10', 'k-15', 'k-20']);
    const order = got.map((k) => Number(k.slice(2)));
    assert.deepEqual(order, [...order].sort((a, b) => a - b), 'delivered out of order');
  } finally {
    await pub.close(5000);
    await ep.down();
  }
});

test('publishing 20000 events with the endpoint down never blocks or throws', async () => {
  const pub = new EventPublisher(join(dir, 'nowhere.sock'), NS, silent);
  try {
    const evs = sequence(20_000);
    for (const ev of evs) pub.publish(ev);
    assert.equal(pub.stats.queued, 16384);
    assert.equal(pub.stats.dropped, 20_000 - 16384);
  } finally {
    const r = await pub.close(100);
    assert.equal(r.undelivered, 16384);
  }
});

// A raw socket that accepts and closes at once: connection refused-ish flapping without a ttrpc server.
test('an endpoint that accepts and immediately closes is treated as down', async () => {
  const path = join(dir, 'h.sock');
  const conns: Socket[] = [];
  const raw: Server = createServer((s) => {
    conns.push(s);
    s.destroy();
  });
  await new Promise<void>((r) => raw.listen(path, r));
  const pub = new EventPublisher(path, NS, silent);
  const ep = new FakeEvents(path);
  try {
    for (const ev of sequence(4)) pub.publish(ev);
    await waitFor(() => pub.stats.failures >= 2, 20_000, 'failures');
    await new Promise<void>((r) => raw.close(() => r()));
    await ep.up();
    pub.kick();
    await waitFor(() => ep.received.length >= 4, 20_000, '4 events');
    assert.deepEqual(ep.keys(), expectedKeys(4));
  } finally {
    await pub.close(5000);
    await ep.down();
  }
});
