/** SO_PEERCRED: peers with another uid or gid are dropped before a byte is read; the same user is served. */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { chmod } from 'node:fs/promises';
import { test } from 'node:test';
import { TtrpcClient } from '../../protocol/ttrpc/client.js';
import { encodeFrame, MessageType } from '../../protocol/ttrpc/frame.js';
import { encodeRequest } from '../../protocol/ttrpc/messages.js';
import { peerCredentials } from '../../protocol/ttrpc/peercred.js';
import { startServer } from './fixtures/harness.js';

const isRoot = process.geteuid?.() === 0;
const SVC = 'cred.v1.S';

/** Runs a tiny node client under other credentials; it prints "answered" or "closed". */
function connectAs(setprivArgs: string[], path: string): Promise<string> {
  const frame = encodeFrame(1, MessageType.Request, encodeRequest({ service: SVC, method: 'Ping', payload: new Uint8Array(0), timeoutNano: 0n, metadata: [] }));
  const script = `
    const s = require('net').connect(${JSON.stringify(path)});
    let out = 'closed';
    s.on('connect', () => s.write(Buffer.from(${JSON.stringify(frame.toString('hex'))}, 'hex')));
    s.on('data', () => { out = 'answered'; s.destroy(); });
    s.on('error', () => {}); // EPIPE or ECONNRESET: closed on us
    s.on('close', () => { console.log(out); });
    setTimeout(() => { console.log('timeout'); process.exit(0); }, 10000).unref();`;
  return new Promise((resolve, reject) => {
    const child = spawn('setpriv', [...setprivArgs, process.execPath, '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
    let stdout = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.once('error', reject);
    child.once('exit', () => resolve(stdout.trim()));
  });
}

test('peer credentials of a same-process connection are ours', async (t) => {
  let cred: { uid: number; gid: number; pid: number } | undefined;
  const srv = await startServer({ [SVC]: { Ping: async () => new Uint8Array(0) } });
  t.after(() => srv.stop());
  const { createServer, connect } = await import('node:net');
  const probe = createServer({ pauseOnConnect: true }, (sock) => {
    cred = peerCredentials(sock);
    sock.destroy();
  });
  const path = srv.path + '.probe';
  await new Promise<void>((r) => probe.listen(path, r));
  t.after(() => void probe.close());
  const c = connect(path);
  c.on('error', () => undefined);
  await new Promise((r) => c.once('close', r));
  assert.deepEqual(cred, { pid: process.pid, uid: process.geteuid?.(), gid: process.getegid?.() });
});

test('another uid, or only another gid, is closed without an answer; the same user is served', { skip: !isRoot && 'needs root for setpriv' }, async (t) => {
  let calls = 0;
  const srv = await startServer({ [SVC]: { Ping: async () => { calls++; return Buffer.from('pong'); } } });
  t.after(() => srv.stop());
  await chmod(srv.dir, 0o755);
  await chmod(srv.path, 0o777);
  assert.equal(await connectAs(['--reuid=65534', '--regid=65534', '--clear-groups'], srv.path), 'closed');
  assert.equal(await connectAs(['--regid=65534', '--clear-groups'], srv.path), 'closed');
  assert.equal(await connectAs(['--reuid=65534', '--clear-groups'], srv.path), 'closed');
  assert.equal(calls, 0);
  assert.equal(await connectAs(['--clear-groups'], srv.path), 'answered');
  assert.equal(calls, 1);
  const client = await TtrpcClient.connect(srv.path);
  t.after(() => client.close());
  assert.equal(Buffer.from(await client.call(SVC, 'Ping', new Uint8Array(0))).toString(), 'pong');
});

test('requireSameUser: false lets other users in', { skip: !isRoot && 'needs root for setpriv' }, async (t) => {
  const srv = await startServer({ [SVC]: { Ping: async () => Buffer.from('pong') } }, { requireSameUser: false });
  t.after(() => srv.stop());
  await chmod(srv.dir, 0o755);
  await chmod(srv.path, 0o777);
  assert.equal(await connectAs(['--reuid=65534', '--regid=65534', '--clear-groups'], srv.path), 'answered');
});
