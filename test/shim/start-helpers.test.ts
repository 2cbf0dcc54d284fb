/** Pieces of `start`: the address file, the daemon's environment, legacy options on stdin, shim_cgroup placement. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Any } from '../../protocol/gen/google/protobuf/any.js';
import { CreateOptions } from '../../protocol/gen/containerd/runtime/linux/runctypes/runc.js';
import { Options } from '../../protocol/gen/containerd/runtime/v2/runc/options/oci.js';
import { ShimError } from '../../protocol/errdefs.js';
import { daemonEnv, writeAddressFile } from '../../shim/start.js';
import { decodeRuntimeOptions, optionsFromAny } from '../../shim/runtime/options.js';
import { joinCgroup } from '../../shim/platform/cgroup-join.js';

async function withTemp(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'start-helpers-'));
  try {
    await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

test('address file: exact content (no newline), replaces an old one, survives a leftover .address, mode 0666 & ~umask', () =>
  withTemp(async (bundle) => {
    await writeFile(join(bundle, 'address'), 'unix:///old');
    await writeFile(join(bundle, '.address'), 'left by a start that was killed');
    const addr = 'unix:///run/containerd/s/' + 'a'.repeat(64);
    await writeAddressFile(bundle, addr);
    assert.equal(await readFile(join(bundle, 'address'), 'utf8'), addr);
    assert.deepEqual((await readdir(bundle)).sort(), ['address']);
    const mode = (await stat(join(bundle, 'address'))).mode & 0o777;
    assert.equal(mode, 0o666 & ~process.umask());
  }));

test('daemon environment: ours minus the Node variables that slow or alter its start; containerd variables kept', () => {
  const env = daemonEnv({ PATH: '/bin', NODE_OPTIONS: '--inspect', NODE_EXTRA_CA_CERTS: '/x.pem', TTRPC_ADDRESS: '/t', CONTAINERD_SHIM_TS_GROUP: 'k' });
  assert.deepEqual(env, { PATH: '/bin', TTRPC_ADDRESS: '/t', CONTAINERD_SHIM_TS_GROUP: 'k' });
});

test('legacy containerd.linux.runc.CreateOptions on stdin or in Create maps onto runc Options', () => {
  const legacy = CreateOptions.fromPartial({ noPivotRoot: true, noNewKeyring: true, shimCgroup: '/s', ioUid: 7, ioGid: 8, criuWorkPath: '/w', criuImagePath: '/i' });
  const any = { typeUrl: 'containerd.linux.runc.CreateOptions', value: Buffer.from(CreateOptions.encode(legacy).finish()) };
  const expected = Options.fromPartial({ noPivotRoot: true, noNewKeyring: true, shimCgroup: '/s', ioUid: 7, ioGid: 8, criuWorkPath: '/w', criuImagePath: '/i' });
  assert.deepEqual(optionsFromAny(any), expected);
  assert.deepEqual(decodeRuntimeOptions(Any.encode(any).finish()), expected);
  // typeurl prefixes are accepted (types.containerd.io/…), as containerd's typeurl registry resolves them.
  assert.deepEqual(optionsFromAny({ ...any, typeUrl: 'types.containerd.io/containerd.linux.runc.CreateOptions' }), expected);
});

test('unknown options type → InvalidArgument; undecodable stdin → InvalidArgument', () => {
  const isInvalid = (err: unknown) => err instanceof ShimError && err.kind === 'InvalidArgument';
  assert.throws(() => optionsFromAny({ typeUrl: 'example.com/x.Y', value: Buffer.alloc(0) }), isInvalid);
  assert.throws(() => decodeRuntimeOptions(Buffer.from([0xff, 0xff, 0xff])), isInvalid);
  assert.throws(() => optionsFromAny({ typeUrl: 'containerd.runc.v1.Options', value: Buffer.from([0x0a, 0x05, 0x01]) }), isInvalid);
});

test('shim_cgroup on cgroup v1: the pid goes into every hierarchy that has the path, not the unified one', () =>
  withTemp(async (root) => {
    for (const ctl of ['cpu', 'memory', 'pids', 'systemd', 'unified']) await mkdir(join(root, ctl, 'shims'), { recursive: true });
    await mkdir(join(root, 'blkio')); // hierarchy without the path: skipped
    await joinCgroup(4242, '/shims', root);
    for (const ctl of ['cpu', 'memory', 'pids', 'systemd']) assert.equal(await readFile(join(root, ctl, 'shims', 'cgroup.procs'), 'utf8'), '4242');
    await assert.rejects(readFile(join(root, 'unified', 'shims', 'cgroup.procs')));
    await assert.rejects(joinCgroup(4242, '/missing', root), /not found/);
  }));

test('shim_cgroup on cgroup v2: the pid goes into <root>/<path>/cgroup.procs', () =>
  withTemp(async (root) => {
    await writeFile(join(root, 'cgroup.controllers'), 'cpu memory pids');
    await mkdir(join(root, 'shims'));
    await joinCgroup(4242, '/shims', root);
    assert.equal(await readFile(join(root, 'shims', 'cgroup.procs'), 'utf8'), '4242');
  }));
