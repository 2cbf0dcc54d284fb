import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FlagError, parseFlags } from '../../shim/flags.js';

test('parses the start command line containerd builds', () => {
  const f = parseFlags(['-namespace', 'default', '-address', '/run/containerd/containerd.sock', '-publish-binary', '/usr/bin/containerd', '-id', 'c1', '-debug', 'start']);
  assert.equal(f.namespace, 'default');
  assert.equal(f.address, '/run/containerd/containerd.sock');
  assert.equal(f.publishBinary, '/usr/bin/containerd');
  assert.equal(f.id, 'c1');
  assert.equal(f.debug, true);
  assert.equal(f.action, 'start');
});

test('Go flag syntax: -x=v, --x v, -bool=false, no action = serve', () => {
  const f = parseFlags(['--namespace=ns', '--id', 'x', '-debug=false', '-bundle', '/b']);
  assert.equal(f.namespace, 'ns');
  assert.equal(f.id, 'x');
  assert.equal(f.debug, false);
  assert.equal(f.bundle, '/b');
  assert.equal(f.action, 'serve');
  assert.equal(parseFlags(['-namespace', 'n', 'delete']).action, 'delete');
  assert.equal(parseFlags(['-v']).version, true);
  assert.equal(parseFlags(['-info']).info, true);
});

test('unknown flags, missing values and unknown actions are errors', () => {
  assert.throws(() => parseFlags(['-bogus']), FlagError);
  assert.throws(() => parseFlags(['-namespace']), FlagError);
  assert.throws(() => parseFlags(['-debug=maybe']), FlagError);
  assert.throws(() => parseFlags(['explode']), FlagError);
});
