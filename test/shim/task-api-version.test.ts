/**
 * `start` announces task API v3 only to a containerd 2.x: read from the Go build info of the real containerd
 * binaries (1.6 from Debian 12, 1.7 and 2.1 from the fetched .debs), never from a guess. 1.7 refuses v3, so a
 * wrong "3" would break every start there.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseBuildInfo, readGoBuildInfo } from '../../shim/platform/go-buildinfo.js';
import { startAnswer, taskApiVersion } from '../../shim/task-api-version.js';
import { containerdBinaries, type ContainerdVersion } from '../harness/containerd.js';

const ENV_17_21 = { MAX_SHIM_VERSION: '2' }; // what 1.7 and 2.1 both set

function uvarint(n: number): Buffer {
  const out: number[] = [];
  while (n >= 0x80) {
    out.push((n & 0x7f) | 0x80);
    n = Math.floor(n / 128);
  }
  out.push(n);
  return Buffer.from(out);
}

function section(goVersion: string, modinfo: string, flags = 2): Buffer {
  const header = Buffer.alloc(32);
  Buffer.from('\xff Go buildinf:', 'latin1').copy(header);
  header[14] = 8;
  header[15] = flags;
  const v = Buffer.from(goVersion);
  const m = Buffer.from(modinfo);
  return Buffer.concat([header, uvarint(v.length), v, uvarint(m.length), m]);
}

test('parses inline build info: go version, main path, modules', () => {
  const sentinel = '0123456789abcdef';
  const modinfo = `${sentinel}path\tgithub.com/x/y/cmd/z\nmod\tgithub.com/x/y\tv1.0.0\th1:abc\ndep\tgithub.com/containerd/containerd/v2\tv2.1.0\th1:def\nbuild\tGOOS=linux\n${sentinel}`;
  const info = parseBuildInfo(section('go1.24.1', modinfo));
  assert.deepEqual(info, { goVersion: 'go1.24.1', path: 'github.com/x/y/cmd/z', modules: ['github.com/x/y', 'github.com/containerd/containerd/v2'] });
});

test('rejects what is not inline build info (bad magic, pointer form, truncated)', () => {
  assert.equal(parseBuildInfo(Buffer.alloc(64)), undefined);
  assert.equal(parseBuildInfo(section('go1.16', 'x', 0)), undefined);
  assert.equal(parseBuildInfo(section('go1.24', 'path\ta\n').subarray(0, 36)), undefined);
});

test('a file that is not an ELF, or does not exist, gives no build info and task API 2', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'buildinfo-'));
  try {
    const file = join(dir, 'not-elf');
    writeFileSync(file, '#!/bin/sh\necho hi\n');
    assert.equal(await readGoBuildInfo(file), undefined);
    assert.equal(await readGoBuildInfo(join(dir, 'missing')), undefined);
    assert.equal(await taskApiVersion(file, ENV_17_21), 2);
    assert.equal(await taskApiVersion(join(dir, 'missing'), ENV_17_21), 2);
    // node itself is an ELF without Go build info
    assert.equal(await readGoBuildInfo(process.execPath), undefined);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

const expected: Record<ContainerdVersion, 2 | 3> = { '1.6': 2, '1.7': 2, '2.1': 3 };
for (const version of ['1.6', '1.7', '2.1'] as const) {
  const bins = containerdBinaries(version);
  test(`containerd ${version}'s own binary: task API ${expected[version]}`, { skip: bins ? false : `containerd ${version} not fetched` }, async () => {
    const info = await readGoBuildInfo(bins!.containerd);
    assert.ok(info, 'Debian builds carry Go build info');
    assert.match(info.goVersion, /^go1\.\d+/);
    assert.match(info.path, /^github\.com\/containerd\/containerd(\/v2)?\/cmd\/containerd$/);
    // 1.6 sets no MAX_SHIM_VERSION at all; 1.7 and 2.1 set 2.
    const env = version === '1.6' ? {} : ENV_17_21;
    assert.equal(await taskApiVersion(bins!.containerd, env), expected[version]);
    // The operator's override wins either way.
    assert.equal(await taskApiVersion(bins!.containerd, { ...env, CONTAINERD_SHIM_TS_TASK_API: '2' }), 2);
  });
}

test('the answer: a plain address for v2, the bootstrap JSON for v3', () => {
  assert.equal(startAnswer('unix:///run/containerd/s/abc', 2), 'unix:///run/containerd/s/abc');
  assert.deepEqual(JSON.parse(startAnswer('unix:///run/containerd/s/abc', 3)), { version: 3, address: 'unix:///run/containerd/s/abc', protocol: 'ttrpc' });
});
