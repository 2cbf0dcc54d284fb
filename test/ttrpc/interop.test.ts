/**
 * Differential check against a real Go ttrpc server: the installed containerd-shim-runc-v2 (ttrpc v1.1.1),
 * started in a scratch bundle. The same hand-made frames go to it and to our server; answers must match byte
 * for byte where both versions agree. Needs root and the binary; skipped otherwise.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { access, mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { notFound } from '../../protocol/errdefs.js';
import { TtrpcClient } from '../../protocol/ttrpc/client.js';
import { encodeFrame, encodeHeader, MAX_MESSAGE, MessageType, type Frame } from '../../protocol/ttrpc/frame.js';
import { decodeResponse, encodeRequest } from '../../protocol/ttrpc/messages.js';
import { unary } from '../../protocol/ttrpc/service.js';
import { ConnectResponseCodec, hex, RawPeer, sleep, startServer, tempSocket, TextCodec } from './fixtures/harness.js';

const SHIM = '/usr/bin/containerd-shim-runc-v2';
const TASK = 'containerd.task.v2.Task';

const canRun = async (): Promise<boolean> => {
  if (process.geteuid?.() !== 0) return false;
  try {
    await access(SHIM);
    return true;
  } catch {
    return false;
  }
};

function run(cmd: string, args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { ...opts, stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.once('error', reject);
    child.once('exit', (code) => (code === 0 ? resolve(out) : reject(new Error(`${cmd} exited ${code}`))));
  });
}

const frameBytes = (f: Frame): string => hex(encodeHeader(f.length, f.streamId, f.type, f.flags)) + hex(f.data);
const req = (method: string, payload: Uint8Array = new Uint8Array(0), service = TASK) =>
  encodeRequest({ service, method, payload, timeoutNano: 0n, metadata: [] });

/** The same exchanges, sent to any server; returns each answer as hex. */
async function probe(path: string): Promise<Record<string, string>> {
  const peer = await RawPeer.open(path);
  const out: Record<string, string> = {};
  const ask = async (name: string, bytes: Uint8Array[], view: (f: Frame) => string = frameBytes) => {
    for (const b of bytes) peer.send(b);
    out[name] = view(await peer.next());
  };
  await ask('state-unknown', [encodeFrame(1, MessageType.Request, req('State', TextCodec.encode({ value: 'nope' }).finish()))]);
  await ask('unknown-method', [encodeFrame(3, MessageType.Request, req('Foo'))]);
  await ask('unknown-service', [encodeFrame(5, MessageType.Request, req('State', new Uint8Array(0), 'no.Such'))]);
  await ask('even-id', [encodeFrame(6, MessageType.Request, req('State'))]);
  await ask('oversize', [encodeHeader(MAX_MESSAGE + 1, 7, MessageType.Request), Buffer.alloc(MAX_MESSAGE + 1)]);
  // The decoder's error text differs (Go: "unexpected EOF"); stream, code and prefix must not.
  await ask('bad-request', [encodeFrame(9, MessageType.Request, Buffer.from('0a05', 'hex'))], (f) => {
    const st = decodeResponse(f.data).status;
    return `${f.streamId} ${st?.code} ${st?.message.split(':')[0]}`;
  });
  // Connect carries a pid: compare the shape, Response{payload(2): ConnectResponse{shim_pid(1): varint}}.
  await ask('connect-shape', [encodeFrame(11, MessageType.Request, req('Connect'))], (f) => `${f.streamId} ${hex(f.data.subarray(0, 1))} ${hex(f.data.subarray(2, 3))}`);
  peer.destroy();
  return out;
}

test('our server answers like the Go shim (ttrpc v1.1.1) on the same frames', { skip: !(await canRun()) && 'needs root and containerd-shim-runc-v2' }, async (t) => {
  const tmp = await tempSocket();
  t.after(() => tmp.cleanup());
  const bundle = join(tmp.dir, 'bundle');
  await mkdir(bundle);
  await writeFile(join(bundle, 'config.json'), '{}');
  await run('mkfifo', [join(bundle, 'log')]);
  // The Go shim opens its "log" FIFO for writing and needs a reader.
  const logReader: ChildProcess = spawn('cat', [join(bundle, 'log')], { stdio: 'ignore' });
  t.after(() => {
    logReader.kill('SIGKILL');
  });
  const ns = `ttrpc-interop-${process.pid}`;
  const address = (
    await run(SHIM, ['-namespace', ns, '-id', 'itest', '-address', join(tmp.dir, 'none.sock'), 'start'], {
      cwd: bundle,
      env: { ...process.env, TTRPC_ADDRESS: join(tmp.dir, 'none.sock') },
    })
  ).trim();
  const goPath = address.replace(/^unix:\/\//, '');
  const client = await TtrpcClient.connect(address, { timeoutMs: 5000 });
  const conn = await client.callTyped(TASK, 'Connect', { value: 'itest' }, TextCodec, ConnectResponseCodec);
  t.after(async () => {
    await client.call(TASK, 'Shutdown', TextCodec.encode({ value: 'itest' }).finish()).catch(() => undefined);
    client.close();
    for (let i = 0; i < 100; i++) {
      try {
        process.kill(conn.shimPid, 0);
        await sleep(20);
      } catch {
        break;
      }
    }
    try {
      process.kill(conn.shimPid, 'SIGKILL');
    } catch {
      // already gone
    }
    await rm(goPath, { force: true });
  });

  const ours = await startServer({
    [TASK]: {
      State: async () => {
        throw notFound('container not created');
      },
      Connect: unary(TextCodec, ConnectResponseCodec, async () => ({ shimPid: process.pid, taskPid: 0, version: '' })),
    },
  });
  t.after(() => ours.stop());

  const goAnswers = await probe(goPath);
  const ourAnswers = await probe(ours.path);
  t.diagnostic(JSON.stringify(goAnswers));
  assert.deepEqual(ourAnswers, goAnswers);
  assert.equal(goAnswers['connect-shape'], '11 12 08');
});
