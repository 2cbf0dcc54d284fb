// The single executable's `delete` fast path (shim/sea/fast-delete.ts): answers exactly what the full delete
// answers, and only when there is nothing to do; real files in a temp bundle, a real listening socket.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { deleteResponse, fastDelete } from '../../shim/sea/fast-delete.js';
import { DeleteResponse } from '../../protocol/gen/containerd/runtime/v2/task/shim.js';
import { toTimestamp } from '../../protocol/timestamp.js';
import { exec, makeTempDir, removeDir, uniqueId } from '../harness/util.js';

let tmp: string;
before(async () => {
  tmp = await makeTempDir('fastdel-');
});
after(async () => {
  await removeDir(tmp);
});

/** A bundle as a clean teardown leaves it. */
async function bundle(files: Record<string, string> = {}): Promise<{ id: string; dir: string }> {
  const id = uniqueId('fd');
  const dir = join(tmp, 'ns', id);
  await mkdir(join(dir, 'rootfs'), { recursive: true });
  const all = { runtime: 'runc', address: `unix://${join(tmp, 'gone.sock')}`, 'init.pid': '4242', ...files };
  for (const [name, text] of Object.entries(all)) await writeFile(join(dir, name), text);
  return { id, dir };
}

const args = (id: string, dir: string): string[] => ['-namespace', 'ns', '-address', '/run/c.sock', '-publish-binary', '/usr/bin/containerd', '-id', id, '-bundle', dir, 'delete'];

test('encodes the DeleteResponse the full delete encodes (generated codec)', () => {
  for (const [pid, ms] of [
    [4242, 1_765_000_000_123],
    [0, 1_765_000_000_000],
    [4294967295, 1_765_000_000_999],
  ] as const) {
    const ours = deleteResponse(pid, 137, ms);
    const generated = DeleteResponse.encode({ pid, exitStatus: 137, exitedAt: toTimestamp(new Date(ms)) }).finish();
    assert.deepEqual(Buffer.from(ours), Buffer.from(generated), `pid ${pid} at ${ms}`);
  }
});

test('nothing to do: answers with init.pid and 137; without init.pid, -1', async () => {
  const b = await bundle();
  const before = Date.now();
  const out = DeleteResponse.decode(fastDelete(args(b.id, b.dir), '/')!);
  assert.equal(out.pid, 4242);
  assert.equal(out.exitStatus, 137);
  const secs = Number(out.exitedAt!.seconds);
  assert.ok(secs >= Math.floor(before / 1000) && secs <= Math.ceil(Date.now() / 1000));
  const c = await bundle({ 'init.pid': 'garbage' });
  assert.equal(DeleteResponse.decode(fastDelete(args(c.id, c.dir), '/')!).pid, 4294967295);
});

test('the bundle defaults to <parent of cwd>/<id>, as the full delete', async () => {
  const b = await bundle();
  const argv = args(b.id, b.dir).filter((_, i, a) => a[i] !== '-bundle' && a[i - 1] !== '-bundle');
  assert.ok(fastDelete(argv, join(tmp, 'ns', 'elsewhere')));
  assert.equal(fastDelete(argv, join(tmp, 'other', 'elsewhere')), undefined); // no runtime file there
});

test('falls back to the full delete whenever there may be something to do', async () => {
  const cases: Array<[string, () => Promise<string[]>]> = [
    ['no runtime file', async () => { const b = await bundle(); await rm(join(b.dir, 'runtime')); return args(b.id, b.dir); }],
    ['path with ..', async () => { const b = await bundle(); return args(b.id, `${tmp}/ns/../ns/${b.id}`); }],
    ['own runc root', async () => { const b = await bundle({ 'options.json': '{"root":"/x"}' }); return args(b.id, b.dir); }],
    ['unsafe id', async () => { const b = await bundle(); return args(b.id, b.dir).map((a) => (a === b.id ? 'a b' : a)); }],
    ['relative bundle', async () => { const b = await bundle(); return args(b.id, 'rel/' + b.id); }],
    ['unknown flag', async () => { const b = await bundle(); return ['-socket', '/x', ...args(b.id, b.dir)]; }],
    ['not delete', async () => { const b = await bundle(); return [...args(b.id, b.dir).slice(0, -1), 'start']; }],
  ];
  for (const [name, make] of cases) assert.equal(fastDelete(await make(), '/'), undefined, name);

  // The rootfs is still a mount point.
  const m = await bundle();
  await exec('mount', ['-t', 'tmpfs', 'fastdel', join(m.dir, 'rootfs')]);
  try {
    assert.equal(fastDelete(args(m.id, m.dir), '/'), undefined, 'rootfs mounted');
  } finally {
    await exec('umount', [join(m.dir, 'rootfs')]);
  }
  assert.ok(fastDelete(args(m.id, m.dir), '/'), 'once unmounted');

  // The daemon's socket is still there (a live daemon, or one killed without cleaning up).
  const sock = join(tmp, `live-${uniqueId('s')}.sock`);
  const server: Server = await new Promise((resolve) => {
    const s = createServer();
    s.listen(sock, () => resolve(s));
  });
  try {
    const b = await bundle({ address: `unix://${sock}` });
    assert.equal(fastDelete(args(b.id, b.dir), '/'), undefined, 'socket present');
  } finally {
    server.close();
  }
});
