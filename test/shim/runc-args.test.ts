import { test } from 'node:test';
import assert from 'node:assert/strict';
import { checkpointArgs, createArgs, execArgs, globalArgs, killArgs, restoreArgs } from '../../shim/runtime/runc.js';
import { classifyKillError } from '../../shim/runtime/runtime-error.js';
import { optionsJson, parseOptionsJson, decodeRuntimeOptions } from '../../shim/runtime/options.js';
import { Options } from '../../protocol/gen/containerd/runtime/v2/runc/options/oci.js';
import { Any } from '../../protocol/gen/google/protobuf/any.js';

const cfg = { binary: 'runc', root: '/run/containerd/runc/default', logPath: '/b/log.json', systemdCgroup: false };

test('global flags in the reference order', () => {
  assert.deepEqual(globalArgs(cfg), ['--root', '/run/containerd/runc/default', '--log', '/b/log.json', '--log-format', 'json']);
  assert.deepEqual(globalArgs({ ...cfg, systemdCgroup: true, criuPath: '/c' }).slice(-3), ['--criu', '/c', '--systemd-cgroup']);
});

test('command lines match the reference shim', () => {
  assert.deepEqual(createArgs('c1', { bundle: '/b', pidFile: '/b/init.pid', consoleSocket: '/s', noPivot: true, noNewKeyring: true }), [
    'create', '--bundle', '/b', '--pid-file', '/b/init.pid', '--console-socket', '/s', '--no-pivot', '--no-new-keyring', 'c1',
  ]);
  assert.deepEqual(execArgs('c1', { processSpecPath: '/p', pidFile: '/b/e.pid' }), ['exec', '--process', '/p', '--detach', '--pid-file', '/b/e.pid', 'c1']);
  assert.deepEqual(killArgs('c1', 9, true), ['kill', '--all', 'c1', '9']);
  assert.deepEqual(killArgs('c1', 15, false), ['kill', 'c1', '15']);
  assert.deepEqual(
    restoreArgs('c1', { bundle: '/b', pidFile: '/b/init.pid', imagePath: '/img', workPath: '/w' }),
    ['restore', '--image-path', '/img', '--work-path', '/w', '--detach', '--pid-file', '/b/init.pid', '-no-subreaper', '--bundle', '/b', 'c1'],
  );
  assert.deepEqual(
    checkpointArgs('c1', { imagePath: '/img', workPath: '/w', leaveRunning: true, openTcp: true, emptyNamespaces: ['network'] }),
    ['checkpoint', '--image-path', '/img', '--work-path', '/w', '--tcp-established', '--empty-ns', 'network', '--leave-running', 'c1'],
  );
});

test('kill errors are classified like containerd checkKillError', () => {
  assert.equal(classifyKillError(new Error('x'), 'container not running').kind, 'NotFound');
  assert.equal(classifyKillError(new Error('x'), 'container "c" does not exist').message, 'no such container');
  assert.equal(classifyKillError(new Error('boom')).kind, 'Unknown');
});

test('options.json round trip with Go field names, zero values omitted', () => {
  const o = Options.fromPartial({ binaryName: 'crun', root: '/r', systemdCgroup: true, ioUid: 1000 });
  const text = optionsJson(o);
  assert.deepEqual(JSON.parse(text), { binary_name: 'crun', root: '/r', systemd_cgroup: true, io_uid: 1000 });
  assert.deepEqual(parseOptionsJson(text), o);
  assert.equal(optionsJson(Options.fromPartial({})), '{}');
});

test('start stdin options: runc Options Any, empty, garbage', () => {
  const any = Any.encode({ typeUrl: 'containerd.runc.v1.Options', value: Buffer.from(Options.encode(Options.fromPartial({ shimCgroup: '/x' })).finish()) }).finish();
  assert.equal(decodeRuntimeOptions(any).shimCgroup, '/x');
  assert.equal(decodeRuntimeOptions(new Uint8Array()).binaryName, '');
  assert.throws(() => decodeRuntimeOptions(Any.encode({ typeUrl: 'foo.Bar', value: Buffer.alloc(0) }).finish()), /unsupported/);
});
