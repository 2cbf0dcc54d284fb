/**
 * A Kill that ends the init is answered before its /tasks/exit is published. Clients delete the task when they
 * see TaskExit, and containerd closes that task's connection then: a Kill still unanswered on it failed with
 * "ttrpc: closed" (CRI's StopPodSandbox, seen under load). Run by hand with our own events endpoint at
 * TTRPC_ADDRESS, which records when each event arrives; the Kill's reply time is taken on the same event loop.
 * runc is wrapped so that `runc kill` returns 300 ms after it signalled (as on a loaded host): without the
 * ordering, the exit would come a clear 300 ms before the reply.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { chmod, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import * as api from '../../protocol/gen/containerd/runtime/v2/task/shim.js';
import { Empty } from '../../protocol/gen/google/protobuf/empty.js';
import { ForwardRequest } from '../../protocol/gen/containerd/api/services/ttrpc/events/v1/events.js';
import { TtrpcServer } from '../../protocol/ttrpc/server.js';
import { EVENTS_SERVICE } from '../../shim/events/publisher.js';
import { makeTempDir, uniqueId, waitFor } from '../harness/util.js';
import { cleanupByHand, connectTask, createAndStart, makeBundle, runShim, runcOptionsAny, shimSocket } from '../fixtures/shim-by-hand.js';

const TIMEOUT = { timeout: 180_000 };
const ROUNDS = 6;

describe('Kill answered before the exit it caused is published', () => {
  let tmp: string;
  let address: string;
  const ns = uniqueId('ko');
  const ids: string[] = [];
  const sockets: string[] = [];
  const events: Array<{ topic: string; at: number; seq: number }> = [];
  let seq = 0;
  let server: TtrpcServer;
  let slowKillRunc: string;

  before(async () => {
    tmp = await makeTempDir('ko-');
    address = join(tmp, 'c.sock');
    await mkdir(join(tmp, ns));
    server = new TtrpcServer();
    server.register(EVENTS_SERVICE, {
      Forward: async (payload) => {
        const env = ForwardRequest.decode(payload).envelope!;
        // Both answers can be readable in the same poll of this process, in either order: two turns of the
        // event loop let a reply already received be handled first. (Without the shim's ordering the exit
        // comes a runc exit and a reap earlier, which this does not hide.)
        await new Promise<void>((resolve) => setImmediate(resolve));
        await new Promise<void>((resolve) => setImmediate(resolve));
        events.push({ topic: env.topic, at: performance.now(), seq: seq++ });
        return Empty.encode({}).finish();
      },
    });
    await server.listen({ path: `${address}.ttrpc` });
    slowKillRunc = join(tmp, 'runc-slow-kill');
    await writeFile(slowKillRunc, '#!/bin/sh\nfor a; do\n  if [ "$a" = kill ]; then runc "$@"; rc=$?; sleep 0.3; exit $rc; fi\ndone\nexec runc "$@"\n');
    await chmod(slowKillRunc, 0o755);
  });
  after(async () => {
    server?.close();
    await cleanupByHand({ address, namespace: ns, tmp, ids, sockets });
  });

  test(`SIGKILL of a running init, ${ROUNDS} containers: the Kill reply comes first every time`, TIMEOUT, async () => {
    const env: NodeJS.ProcessEnv = { ...process.env, TTRPC_ADDRESS: `${address}.ttrpc` };
    delete env.NODE_TEST_CONTEXT;
    for (let round = 0; round < ROUNDS; round++) {
      const id = uniqueId(`ko${round}`);
      ids.push(id);
      const bundle = await makeBundle(join(tmp, ns), id, { args: ['sleep', '600'] });
      const r = await runShim(['-namespace', ns, '-address', address, '-publish-binary', '/usr/bin/containerd', '-id', id, 'start'], { cwd: bundle, input: '', env });
      sockets.push(shimSocket(address, ns, id));
      assert.equal(r.code, 0, r.stderr);
      const conn = await connectTask(shimSocket(address, ns, id), ns);
      try {
        await createAndStart(conn, id, bundle, { options: runcOptionsAny({ binaryName: slowKillRunc }) });
        const first = events.length;
        await conn.call('Kill', { id, execId: '', signal: 9, all: false }, api.KillRequest, Empty);
        const killAnswered = { at: performance.now(), seq: seq++ };
        const exit = await waitFor(() => events.slice(first).find((e) => e.topic === '/tasks/exit'), 30_000, `/tasks/exit of ${id}`);
        assert.ok(exit.seq > killAnswered.seq, `round ${round}: /tasks/exit arrived ${(killAnswered.at - exit.at).toFixed(1)} ms before the Kill reply`);
        await conn.call('Delete', { id, execId: '' }, api.DeleteRequest, api.DeleteResponse);
        await conn.call('Shutdown', { id, now: false }, api.ShutdownRequest, Empty).catch(() => undefined);
      } finally {
        conn.close();
      }
    }
  });
});
