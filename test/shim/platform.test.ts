import { test } from 'node:test';
import assert from 'node:assert/strict';
import { socketAddress } from '../../shim/platform/socket-address.js';
import { groupKey, TS_GROUP_ENV } from '../../shim/platform/bundle.js';
import { parseMountOptions } from '../../shim/platform/mount.js';
import { validateId, validatePath } from '../../shim/task/validate.js';
import { ShimError } from '../../protocol/errdefs.js';

test('socket address uses the reference hash (spec test vector)', () => {
  assert.equal(
    socketAddress('/run/containerd/containerd.sock', 'default', 'redis'),
    'unix:///run/containerd/s/f6b99128c07bdbd0902363ba979c22f8ef053e683a7ce24dd016a1ab17092c33',
  );
});

test('grouping: reference annotations first, then ours, then the env var, else the id', () => {
  assert.equal(groupKey('c1', {}, {}), 'c1');
  assert.equal(groupKey('c1', { 'io.kubernetes.cri.sandbox-id': 'pod' }, {}), 'pod');
  assert.equal(groupKey('c1', { 'io.containerd.runc.v2.group': 'g', 'io.kubernetes.cri.sandbox-id': 'pod' }, {}), 'g');
  assert.equal(groupKey('c1', { 'io.containerd.ts.v2.group': 'mine' }, {}), 'mine');
  assert.equal(groupKey('c1', {}, { [TS_GROUP_ENV]: 'all' }), 'all');
});

test('mount options split into flags and data like containerd', () => {
  const o = parseMountOptions(['ro', 'rbind', 'nosuid', 'lowerdir=/a:/b', 'upperdir=/u', 'rprivate']);
  assert.equal(o.flags & 0x1, 0x1); // MS_RDONLY
  assert.equal(o.flags & 0x1000, 0x1000); // MS_BIND
  assert.equal(o.flags & 0x4000, 0x4000); // MS_REC
  assert.equal(o.data, 'lowerdir=/a:/b,upperdir=/u');
  assert.equal(o.propagation, 0x40000 | 0x4000);
  assert.equal(parseMountOptions(['ro', 'rw']).flags & 0x1, 0);
});

test('ids and paths that could escape are InvalidArgument', () => {
  for (const bad of ['', '..', 'a/b', 'a\0b', 'x'.repeat(77), '-a', 'a..b', '.hidden']) {
    assert.throws(() => validateId('container id', bad), (e: unknown) => e instanceof ShimError && e.kind === 'InvalidArgument', bad);
  }
  for (const good of ['a', 'my-container_1.2', 'A'.repeat(76)]) validateId('container id', good);
  for (const bad of ['relative/path', '/a/../b', '/a\0', '/a//b']) {
    assert.throws(() => validatePath('bundle', bad), (e: unknown) => e instanceof ShimError && e.kind === 'InvalidArgument', bad);
  }
  validatePath('bundle', '/run/containerd/io.containerd.runtime.v2.task/default/c1');
});
